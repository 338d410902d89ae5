/* lm_lag: lagTimeSeconds and readyForCutover as the stream's monitor decides them. */
#include <criterion/criterion.h>

#include "lm_lag.h"

/* An arbitrary wall clock: 2024-06-01T00:00:00Z in ms. */
#define T0 INT64_C(1717200000000)

Test(lag, caught_up_is_zero_whatever_the_times)
{
    cr_assert_float_eq(lm_lag_seconds(true, T0 - 3600000, 0, T0), 0.0, 1e-12);
    cr_assert_float_eq(lm_lag_seconds(true, 0, 0, T0), 0.0, 1e-12);
    cr_assert_float_eq(lm_lag_seconds(true, T0 + 5000, T0, T0), 0.0, 1e-12);
}

Test(lag, behind_counts_from_the_applied_write)
{
    /* caught up long ago, applied a write 2.5 s ago: 2.5 s behind */
    cr_assert_float_eq(lm_lag_seconds(false, T0 - 2500, T0 - 60000, T0), 2.5, 1e-9);
    /* never caught up (0): the applied write alone */
    cr_assert_float_eq(lm_lag_seconds(false, T0 - 42000, 0, T0), 42.0, 1e-9);
    cr_assert_float_eq(lm_lag_seconds(false, T0 - 1, 0, T0), 0.001, 1e-12);
}

Test(lag, behind_counts_from_the_last_moment_caught_up)
{
    /* an idle source: the applied write is an hour old, but the target was caught up
     * 1.2 s ago, so the oldest write not applied is at most 1.2 s old */
    cr_assert_float_eq(lm_lag_seconds(false, T0 - 3600000, T0 - 1200, T0), 1.2, 1e-9);
    /* equal times: either one */
    cr_assert_float_eq(lm_lag_seconds(false, T0 - 700, T0 - 700, T0), 0.7, 1e-9);
}

Test(lag, never_negative)
{
    /* the source's clock ahead of the agent's */
    cr_assert_float_eq(lm_lag_seconds(false, T0 + 3000, 0, T0), 0.0, 1e-12);
    cr_assert_float_eq(lm_lag_seconds(false, T0 - 3000, T0 + 10, T0), 0.0, 1e-12);
    cr_assert_float_eq(lm_lag_seconds(false, T0, 0, T0), 0.0, 1e-12);
}

Test(lag, grows_with_the_clock_while_behind)
{
    /* the monitor's view over a few ticks: caught up at T0, then writes arrive and the
     * applied position stays at a write made at T0 - 5 s (older than the caught-up moment) */
    int64_t caught_up_at = T0;
    double prev = -1;
    for (int tick = 1; tick <= 10; tick++) {
        int64_t now = T0 + tick * 200;
        double lag = lm_lag_seconds(false, T0 - 5000, caught_up_at, now);
        cr_assert_float_eq(lag, tick * 0.2, 1e-9, "tick %d", tick);
        cr_assert_gt(lag, prev);
        prev = lag;
    }
    /* caught up again: back to 0 */
    cr_assert_float_eq(lm_lag_seconds(true, T0 - 5000, T0 + 2200, T0 + 2200), 0.0, 1e-12);
}

Test(ready, within_the_threshold)
{
    cr_assert(lm_lag_ready(0, 0));
    cr_assert(lm_lag_ready(0, 10000));
    cr_assert(lm_lag_ready(9.999, 10000));
    cr_assert(lm_lag_ready(10.0, 10000)); /* the edge is included */
    cr_assert_not(lm_lag_ready(10.001, 10000));
    cr_assert_not(lm_lag_ready(0.001, 0)); /* cutover_lag 0: only when caught up */
    cr_assert_not(lm_lag_ready(3600, 10000));
    cr_assert(lm_lag_ready(86400, 86400000)); /* the largest cutover_lag the config allows */
}

Test(ready, from_the_computed_lag)
{
    /* the two together, as the monitor uses them: 2 s behind, cutover_lag 2s / 1999ms */
    double lag = lm_lag_seconds(false, T0 - 2000, 0, T0);
    cr_assert(lm_lag_ready(lag, 2000));
    cr_assert_not(lm_lag_ready(lag, 1999));
    cr_assert(lm_lag_ready(lm_lag_seconds(true, 0, 0, T0), 0));
}

Test(ready, exactly_at_a_millisecond_threshold)
{
    /* cutover_lag can be given in ms ("2007ms"); a lag of exactly that many ms is within
     * it, although 2.007 * 1000 is 2007.0000000000002 in doubles. (One assertion at the end:
     * Criterion reports every assertion to its runner, 200k of them take seconds.) */
    int64_t not_ready = -1, ready_below = -1;
    for (int64_t ms = 0; ms <= 100000; ms++) {
        double lag = lm_lag_seconds(false, T0 - ms, 0, T0);
        if (not_ready < 0 && !lm_lag_ready(lag, ms))
            not_ready = ms;
        if (ready_below < 0 && lm_lag_ready(lag, ms - 1))
            ready_below = ms;
    }
    cr_assert_eq(not_ready, -1, "a lag of %lld ms is not within a cutover_lag of %lld ms",
                 (long long)not_ready, (long long)not_ready);
    cr_assert_eq(ready_below, -1, "a lag of %lld ms is within a cutover_lag of %lld ms",
                 (long long)ready_below, (long long)(ready_below - 1));
}

/* ---- estimatedCutoverSeconds ---- */

Test(estimate, nothing_pending_is_zero)
{
    lm_est_model_t m;
    int queued[LM_DDL_KINDS] = {0};
    lm_est_init(&m);
    cr_assert_float_eq(lm_est_cutover_seconds(&m, 0, queued, -1, 0), 0.0, 1e-12);
    cr_assert_float_eq(lm_est_cutover_seconds(&m, 0, NULL, -1, 0), 0.0, 1e-12);
    cr_assert(lm_est_ready(0, 0, 0));
}

Test(estimate, backlog_at_the_default_then_the_measured_rate)
{
    lm_est_model_t m;
    lm_est_init(&m);
    /* 2000 changes at the default 500/s: 4 s */
    cr_assert_float_eq(lm_est_cutover_seconds(&m, 2000, NULL, -1, 0), 4.0, 1e-9);
    /* an idle second says nothing */
    lm_est_rate(&m, 0);
    cr_assert_float_eq(lm_est_cutover_seconds(&m, 2000, NULL, -1, 0), 4.0, 1e-9);
    /* measured 1000/s replaces the default; then 3000/s is averaged in: 2000/s */
    lm_est_rate(&m, 1000);
    cr_assert_float_eq(lm_est_cutover_seconds(&m, 2000, NULL, -1, 0), 2.0, 1e-9);
    lm_est_rate(&m, 3000);
    cr_assert_float_eq(lm_est_cutover_seconds(&m, 2000, NULL, -1, 0), 1.0, 1e-9);
}

Test(estimate, queued_ddl_costs_what_its_kind_took_here)
{
    lm_est_model_t m;
    int queued[LM_DDL_KINDS] = {0};
    lm_est_init(&m);
    queued[LM_DDL_CREATE_INDEXES] = 3;
    queued[LM_DDL_CREATE] = 1;
    /* defaults: 3 x 10 s + 2 s */
    cr_assert_float_eq(lm_est_cutover_seconds(&m, 0, queued, -1, 0), 32.0, 1e-9);
    /* an index build measured at 5 s replaces the default; a create at 0.1 s */
    lm_est_ddl_took(&m, LM_DDL_CREATE_INDEXES, 5.0);
    lm_est_ddl_took(&m, LM_DDL_CREATE, 0.1);
    cr_assert_float_eq(lm_est_cutover_seconds(&m, 0, queued, -1, 0), 15.1, 1e-9);
    /* the next build took 1 s: averaged, 3 s expected */
    lm_est_ddl_took(&m, LM_DDL_CREATE_INDEXES, 1.0);
    cr_assert_float_eq(lm_est_cutover_seconds(&m, 0, queued, -1, 0), 9.1, 1e-9);
    /* other kinds keep their defaults; nonsense is ignored */
    lm_est_ddl_took(&m, LM_DDL_KINDS, 1.0);
    lm_est_ddl_took(&m, LM_DDL_DROP, -1.0);
    cr_assert_float_eq(m.ddl_s[LM_DDL_DROP], 2.0, 1e-12);
    cr_assert(!m.ddl_measured[LM_DDL_DROP]);
}

Test(estimate, running_ddl_counts_what_is_left_and_never_reaches_zero)
{
    lm_est_model_t m;
    lm_est_init(&m);
    lm_est_ddl_took(&m, LM_DDL_CREATE_INDEXES, 6.0);
    cr_assert_float_eq(lm_est_cutover_seconds(&m, 0, NULL, LM_DDL_CREATE_INDEXES, 0), 6.0, 1e-9);
    cr_assert_float_eq(lm_est_cutover_seconds(&m, 0, NULL, LM_DDL_CREATE_INDEXES, 2), 4.0, 1e-9);
    /* past 2/3 of its expected time: half the time it has run */
    cr_assert_float_eq(lm_est_cutover_seconds(&m, 0, NULL, LM_DDL_CREATE_INDEXES, 5), 2.5, 1e-9);
    cr_assert_float_eq(lm_est_cutover_seconds(&m, 0, NULL, LM_DDL_CREATE_INDEXES, 60), 30.0, 1e-9);
    /* everything together */
    int queued[LM_DDL_KINDS] = {0};
    queued[LM_DDL_DROP] = 2;
    cr_assert_float_eq(lm_est_cutover_seconds(&m, 500, queued, LM_DDL_CREATE_INDEXES, 2),
                       1.0 + 4.0 + 4.0, 1e-9);
}

Test(estimate, ready_needs_both_the_lag_and_the_estimate_within_the_threshold)
{
    /* at the threshold is ready, a hair above is not: each figure on its own */
    cr_assert(lm_est_ready(2.0, 2.0, 2000));
    cr_assert(!lm_est_ready(0.0, 2.001, 2000));
    cr_assert(!lm_est_ready(2.001, 0.0, 2000));
    /* lag near zero, index builds queued: not ready (the demo's 49 s cutover) */
    lm_est_model_t m;
    int queued[LM_DDL_KINDS] = {0};
    lm_est_init(&m);
    queued[LM_DDL_CREATE_INDEXES] = 4;
    lm_est_ddl_took(&m, LM_DDL_CREATE_INDEXES, 5.0);
    cr_assert(!lm_est_ready(0.2, lm_est_cutover_seconds(&m, 0, queued, -1, 0), 10000));
    queued[LM_DDL_CREATE_INDEXES] = 0;
    cr_assert(lm_est_ready(0.2, lm_est_cutover_seconds(&m, 0, queued, -1, 0), 10000));
}
