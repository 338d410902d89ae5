/* lm_tune: chooses how many writers the copy runs, from what the target accepts.
 *
 * A pure controller (no threads, no clock, no I/O): the caller feeds it cumulative counters
 * (documents acknowledged, batches acknowledged, writer milliseconds spent in writes) with
 * the time, and it answers with the level (number of active writers) to use from now on.
 * Tests drive it on simulated response curves; lm_copy drives it from its writers.
 *
 * The method is hill climbing on a measured curve: measure a window at the current level,
 * step one level in the current direction, keep stepping while each step raises throughput
 * by more than `margin`, otherwise go back to the best level seen and settle. Settled, it
 * watches for a fall in throughput or a rise in write latency (then it probes downwards
 * first) and re-probes a neighbour now and then (the period doubles after a probe that
 * found nothing better, and returns to the base after one that moved). The first window
 * after every change is not counted: batches started at the old level end in it.
 *
 * Not thread-safe: the caller serialises calls (lm_copy holds its pipe's mutex). */
#ifndef LM_TUNE_H
#define LM_TUNE_H

#include <stdbool.h>
#include <stdint.h>

#define LM_TUNE_AUTO_MAX 8 /* the default ceiling of the level when the copy tunes itself */

/* Cumulative counters since the copy started. */
typedef struct {
    int64_t docs;    /* documents the target acknowledged */
    int64_t batches; /* write commands the target acknowledged */
    int64_t busy_ms; /* summed over writers: time spent inside write commands */
} lm_tune_sample_t;

typedef struct {
    /* settings (lm_tune_init fills defaults; a caller or test may change them after) */
    int min, max;
    int64_t window_ms;      /* a window lasts at least this long */
    int64_t window_batches; /* ... and holds at least this many acknowledged batches */
    double margin;          /* a step must raise throughput by this fraction to be kept */
    double drop;            /* settled: a fall by this fraction is a change */
    double latency_rise;    /* settled: latency above (1 + this) x its reference too */
    int64_t probe_base_ms;  /* first re-probe after settling */
    int64_t probe_max_ms;   /* the re-probe period doubles up to this */
    /* state */
    int level;
    int phase;     /* climbing or settled (lm_tune.c) */
    int dir;       /* +1 or -1 while climbing */
    int probe_dir; /* the next periodic probe's direction (alternates) */
    int origin;    /* the level the climb started from */
    int best_level;
    double best_tp;
    double ref_tp, ref_lat; /* settled: smoothed throughput (docs/s) and ms per document */
    int bad_windows;
    bool discard; /* the current window follows a change: not counted */
    int64_t win_start_ms;
    lm_tune_sample_t win_start;
    int64_t probe_period_ms, next_probe_ms;
    int64_t changes; /* level changes so far (logs, tests) */
    double last_tp;  /* throughput of the last counted window (logs) */
} lm_tune_t;

/* Starts at `start` (clamped to [min, max]) at time now_ms. */
void lm_tune_init(lm_tune_t *t, int min, int max, int start, int64_t now_ms);

/* Feeds the counters at now_ms; returns the level to use from now on. Cheap when the window
 * is not over (call it after every acknowledged batch). */
int lm_tune_step(lm_tune_t *t, int64_t now_ms, const lm_tune_sample_t *s);

/* True while the controller is settled at its level (not climbing or probing). */
bool lm_tune_settled(const lm_tune_t *t);

#endif
