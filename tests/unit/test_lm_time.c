/* lm_time: durations, formatting, backoff bounds, cancellable sleep. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lm_time.h"

Test(time, parse_duration_errors_first)
{
    int64_t ms;
    lm_error_t err;
    cr_assert_not(lm_time_parse_duration("", &ms, &err));
    cr_assert_not(lm_time_parse_duration("5", &ms, &err));
    cr_assert(strstr(err.message, "unit"), "%s", err.message);
    cr_assert_not(lm_time_parse_duration("5 s", &ms, &err));
    cr_assert_not(lm_time_parse_duration("-5s", &ms, &err));
    cr_assert_not(lm_time_parse_duration("5x", &ms, &err));
    cr_assert_not(lm_time_parse_duration("99999999999999999999s", &ms, &err));
    cr_assert_not(lm_time_parse_duration("9223372036854775807d", &ms, &err));
}

Test(time, parse_duration_values)
{
    int64_t ms;
    lm_error_t err;
    cr_assert(lm_time_parse_duration("250ms", &ms, &err));
    cr_assert_eq(ms, 250);
    cr_assert(lm_time_parse_duration("1h30m", &ms, &err));
    cr_assert_eq(ms, 5400000);
    cr_assert(lm_time_parse_duration("2d", &ms, &err));
    cr_assert_eq(ms, 172800000);
    cr_assert(lm_time_parse_duration("0", &ms, &err));
    cr_assert_eq(ms, 0);
}

Test(time, format_duration)
{
    char buf[32];
    lm_time_format_duration(250, buf, sizeof buf);
    cr_assert_str_eq(buf, "250ms");
    lm_time_format_duration(5000, buf, sizeof buf);
    cr_assert_str_eq(buf, "5s");
    lm_time_format_duration(5400000, buf, sizeof buf);
    cr_assert_str_eq(buf, "1h30m");
    lm_time_format_duration(3600000, buf, sizeof buf);
    cr_assert_str_eq(buf, "1h");
}

Test(time, iso8601)
{
    char buf[LM_TIME_ISO8601_LEN];
    lm_time_format_iso8601(1795293239123LL, buf, sizeof buf);
    cr_assert_str_eq(buf, "2026-11-21T20:33:59.123Z");
}

Test(time, backoff_grows_within_bounds)
{
    for (unsigned attempt = 0; attempt < 20; attempt++) {
        for (int i = 0; i < 200; i++) {
            int64_t d = lm_time_backoff_ms(attempt, 100, 5000);
            int64_t ceiling = 100LL << (attempt < 6 ? attempt : 6);
            if (ceiling > 5000)
                ceiling = 5000;
            cr_assert(d >= 50 && d <= ceiling, "attempt %u: %lld", attempt, (long long)d);
        }
    }
}

Test(time, backoff_is_jittered)
{
    int64_t first = lm_time_backoff_ms(5, 100, 5000);
    bool differs = false;
    for (int i = 0; i < 50 && !differs; i++)
        differs = lm_time_backoff_ms(5, 100, 5000) != first;
    cr_assert(differs, "50 delays were all %lld", (long long)first);
}

Test(time, sleep_cancelled)
{
    atomic_bool cancel = 1;
    int64_t t0 = lm_time_mono_ms();
    cr_assert_not(lm_time_sleep_ms(5000, &cancel));
    cr_assert_lt(lm_time_mono_ms() - t0, 1000);
    cancel = 0;
    cr_assert(lm_time_sleep_ms(20, &cancel));
}

Test(time, boot_clock_runs_with_the_monotonic_one_and_is_no_wall_clock)
{
    int64_t b0 = lm_time_boot_ms(), m0 = lm_time_mono_ms();
    cr_assert(lm_time_sleep_ms(60, NULL));
    int64_t b1 = lm_time_boot_ms(), m1 = lm_time_mono_ms();
    cr_assert_geq(b1 - b0, 60, "the boot clock advanced %lld ms in a 60 ms sleep",
                  (long long)(b1 - b0));
    /* no suspend during a test: both clocks moved alike (a wide margin: a loaded machine
     * may preempt between the paired reads) */
    cr_assert_lt(llabs((b1 - b0) - (m1 - m0)), 1000);
    /* time since boot, not since 1970 */
    cr_assert_gt(lm_time_now_ms() - b1, 86400000LL * 365);
}
