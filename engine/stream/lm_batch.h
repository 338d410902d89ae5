/* lm_batch: how the apply groups changes into write commands, and how many workers it runs
 * and how long they gather changes (the self-tuning part). Pure: no threads, no I/O.
 *
 * Grouping (lm_batch_order). A worker takes consecutive changes of one collection (the
 * stream hashes each document's changes to one worker, so they arrive in order). Within a
 * run of changes that touch different _ids, order does not matter: the run is reordered to
 * inserts first (one insert command), then replacements and updates (one update command),
 * then deletes (one delete command). A change to an _id already in the run starts a new run,
 * so the changes of one document stay in the order they were made. An ordered bulk write of
 * the result sends one command per kind per run instead of one per change of kind.
 *
 * Tuning (lm_batch_tune_*). Once a second the caller feeds what the workers did (changes
 * applied, time spent writing, changes still queued) and gets back how many workers are
 * active and how long a worker lets changes gather before it writes (the linger):
 *  - busy (a backlog of more than half a batch per active worker, or the active workers
 *    writing more than 70% of the time): no linger and twice the workers (up to the most);
 *  - quiet (the active workers writing less than 25% of the time, no backlog): half the
 *    workers (down to 1) and the full linger, lag_target / 20 capped at 500 ms (the default
 *    --cutover-lag of 10 s gives 500 ms), so a slow stream arrives in fewer, larger writes;
 *  - otherwise: as it was, the linger back to the full one once there is no backlog.
 * With a fixed number of workers only the linger is chosen. */
#ifndef LM_BATCH_H
#define LM_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lm_change.h"

#define LM_BATCH_LINGER_MAX_MS 500

/* Reorders ops[0..n) (one collection, in the order they were made) in place as above;
 * returns the number of runs. Uses scratch of n entries. */
size_t lm_batch_order(lm_op_t **ops, size_t n, lm_op_t **scratch);

typedef struct {
    int64_t applied; /* changes applied so far */
    int64_t busy_ms; /* summed over workers: time spent writing */
    int64_t queued;  /* changes waiting now */
} lm_batch_sample_t;

typedef struct {
    int max;       /* the most workers */
    bool fixed;    /* the number of workers is not chosen */
    int batch_ops; /* changes per write, at most */
    int64_t linger_full_ms;
    /* state */
    int active;
    int64_t linger_ms;
    int64_t win_start_ms;
    lm_batch_sample_t win;
    double last_util; /* busy fraction of the active workers in the last window */
    double last_rate; /* changes applied per second in the last window */
} lm_batch_tune_t;

/* workers: the most (fixed: the number); lag_target_ms: the job's --cutover-lag. Starts
 * with every worker and no linger (the changes made during the copy wait). */
void lm_batch_tune_init(lm_batch_tune_t *t, int workers, bool fixed, int batch_ops,
                        int64_t lag_target_ms, int64_t now_ms);

/* Feeds the counters at now_ms; true when a window ended (active and linger_ms may have
 * changed). */
bool lm_batch_tune_step(lm_batch_tune_t *t, int64_t now_ms, const lm_batch_sample_t *s);

#endif
