/* lm_tune: the copy's writer-count controller, driven on SIMULATED response curves.
 *
 * No server of this test bed rewards concurrency (both SecantusDB and FerretDB get slower
 * with more writers: issue 18 measured 30 s with one copy writer and 114 s with four), so
 * the curve of a server that does (mongod) can only be simulated here. The simulation:
 * `level` writers share a throughput curve(level, time) in documents per second; the target
 * acknowledges whole batches of 1000 documents, each taking level x 1000 / throughput
 * seconds of one writer's time; optional noise multiplies the throughput of every 100 ms.
 * The controller sees only what lm_copy gives it: cumulative documents, batches, busy ms. */
#include <criterion/criterion.h>
#include <math.h>

#include "lm_tune.h"

typedef double (*curve_fn)(int level, double t_s);

typedef struct {
    double share[LM_TUNE_AUTO_MAX + 1]; /* fraction of the measured span spent at each level */
    int final_level;
    int64_t changes; /* level changes within the measured span */
} sim_t;

static uint64_t rng = 88172645463325252ull;
static double uniform(void) /* xorshift64: [0, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* Runs `seconds` of simulated copy; shares and changes are counted from `from_s` on. */
static sim_t simulate(curve_fn curve, double seconds, double noise, double from_s)
{
    lm_tune_t t;
    lm_tune_sample_t s = {0};
    sim_t r = {0};
    double acc = 0, factor = 1, busy = 0;
    int64_t changes_at_from = -1;
    lm_tune_init(&t, 1, LM_TUNE_AUTO_MAX, 1, 0);
    int level = t.level;
    for (int64_t ms = 0; ms < (int64_t)(seconds * 1000); ms += 10) {
        if (ms % 100 == 0)
            factor = 1 + noise * (2 * uniform() - 1);
        double tp = curve(level, (double)ms / 1000) * factor;
        acc += tp * 0.01;
        while (acc >= 1000) {
            acc -= 1000;
            s.docs += 1000;
            s.batches++;
            busy += level * 1000.0 / tp * 1000;
            s.busy_ms = (int64_t)busy;
        }
        level = lm_tune_step(&t, ms, &s);
        if ((double)ms / 1000 >= from_s) {
            if (changes_at_from < 0)
                changes_at_from = t.changes;
            r.share[level] += 10 / ((seconds - from_s) * 1000);
        }
    }
    r.final_level = level;
    r.changes = t.changes - changes_at_from;
    return r;
}

/* Like this test bed: every writer added slows the target down (1: 6600 docs/s, 2: 3300). */
static double falling(int level, double t_s)
{
    (void)t_s;
    return 6600.0 / level;
}

/* Like a server that scales: linear up to 6 writers, then a slight decline. */
static double plateau6(int level, double t_s)
{
    (void)t_s;
    return level <= 6 ? 1500.0 * level : 9000.0 - 150.0 * (level - 6);
}

static double plateau_then_falling(int level, double t_s)
{
    return t_s < 150 ? plateau6(level, t_s) : falling(level, t_s);
}

static double falling_then_plateau(int level, double t_s)
{
    return t_s < 150 ? falling(level, t_s) : plateau6(level, t_s);
}

Test(lm_tune, falling_curve_settles_at_one)
{
    sim_t r = simulate(falling, 120, 0, 20);
    cr_assert_eq(r.final_level, 1);
    /* re-probes visit 2 now and then, rarely and briefly */
    cr_assert_geq(r.share[1], 0.9, "share at 1: %.2f", r.share[1]);
}

Test(lm_tune, rising_curve_settles_near_six)
{
    sim_t r = simulate(plateau6, 120, 0, 30);
    cr_assert(r.final_level >= 5 && r.final_level <= 7, "final level %d", r.final_level);
    double near = r.share[5] + r.share[6] + r.share[7];
    cr_assert_geq(near, 0.9, "share at 5-7: %.2f", near);
    cr_assert_geq(r.share[6], 0.6, "share at 6: %.2f", r.share[6]);
}

Test(lm_tune, noisy_curve_does_not_oscillate)
{
    /* +-25% on every 100 ms */
    sim_t r = simulate(plateau6, 600, 0.25, 60);
    double near = r.share[5] + r.share[6] + r.share[7];
    cr_assert_geq(near, 0.85, "share at 5-7: %.2f", near);
    /* probes at most every 20 s, their period doubling: a handful of changes a minute */
    cr_assert_leq(r.changes, 20, "%lld level changes in 540 s", (long long)r.changes);
    r = simulate(falling, 600, 0.25, 60);
    cr_assert_geq(r.share[1], 0.85, "share at 1: %.2f", r.share[1]);
    cr_assert_leq(r.changes, 20, "%lld level changes in 540 s", (long long)r.changes);
}

Test(lm_tune, follows_a_curve_that_changes)
{
    sim_t r = simulate(plateau_then_falling, 150, 0, 60);
    cr_assert(r.final_level >= 5 && r.final_level <= 7, "before: level %d", r.final_level);
    r = simulate(plateau_then_falling, 300, 0, 200);
    cr_assert_eq(r.final_level, 1);
    cr_assert_geq(r.share[1], 0.8, "share at 1 after the change: %.2f", r.share[1]);

    r = simulate(falling_then_plateau, 150, 0, 60);
    cr_assert_eq(r.final_level, 1);
    /* no fall to react to here: the periodic probe upwards finds the new curve */
    r = simulate(falling_then_plateau, 400, 0, 300);
    cr_assert(r.final_level >= 5 && r.final_level <= 7, "after: level %d", r.final_level);
}

Test(lm_tune, fixed_bounds_and_slow_windows)
{
    lm_tune_t t;
    lm_tune_sample_t s = {0};
    lm_tune_init(&t, 3, 3, 1, 0);
    cr_assert_eq(t.level, 3); /* clamped */
    for (int64_t ms = 0; ms < 60000; ms += 100) {
        s.docs += 100;
        s.batches++;
        cr_assert_eq(lm_tune_step(&t, ms, &s), 3);
    }
    /* a window needs its batches: a target that acknowledges nothing moves nothing */
    lm_tune_init(&t, 1, 8, 1, 0);
    s = (lm_tune_sample_t){0};
    for (int64_t ms = 0; ms < 60000; ms += 100)
        cr_assert_eq(lm_tune_step(&t, ms, &s), 1);
}
