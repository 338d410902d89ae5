/* The cutover window: opens at a live migration's first readyForCutover report, for the
 * configured length; later reports leave it; extend moves an open window's end. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "lm_cp.h"

#define HOUR INT64_C(3600000)

Test(cp_window, opens_at_the_first_ready_report_of_a_migration)
{
    lm_cp_window_t w = {.set = false};
    cr_assert_not(lm_cp_window_report(&w, true, false, 1000, 120 * HOUR), "not ready yet");
    cr_assert_not(w.set);
    cr_assert(lm_cp_window_report(&w, true, true, 5000, 120 * HOUR));
    cr_assert(w.set);
    cr_assert_eq(w.end_ms, 5000 + 120 * HOUR);
    /* later reports, ready or not, neither reopen nor move it */
    cr_assert_not(lm_cp_window_report(&w, true, true, 9000, 120 * HOUR));
    cr_assert_not(lm_cp_window_report(&w, true, false, 9000, 120 * HOUR));
    cr_assert_eq(w.end_ms, 5000 + 120 * HOUR);
}

Test(cp_window, validations_have_none)
{
    lm_cp_window_t w = {.set = false};
    cr_assert_not(lm_cp_window_report(&w, false, true, 5000, HOUR));
    cr_assert_not(w.set);
}

Test(cp_window, extend_moves_an_open_window_only)
{
    lm_cp_window_t w = {.set = false};
    cr_assert_not(lm_cp_window_extend(&w, 24 * HOUR), "not open yet");
    cr_assert_not(w.set);
    cr_assert_eq(w.end_ms, 0);
    cr_assert(lm_cp_window_report(&w, true, true, 0, HOUR));
    cr_assert(lm_cp_window_extend(&w, 24 * HOUR));
    cr_assert(lm_cp_window_extend(&w, 24 * HOUR));
    cr_assert_eq(w.end_ms, 49 * HOUR);
}

Test(cp_window, ends_are_held_at_the_int64_limit)
{
    lm_cp_window_t w = {.set = false};
    cr_assert(lm_cp_window_report(&w, true, true, INT64_MAX - 10, HOUR));
    cr_assert_eq(w.end_ms, INT64_MAX);
    cr_assert(lm_cp_window_extend(&w, HOUR));
    cr_assert_eq(w.end_ms, INT64_MAX);
}
