/* lm_apply: the parallel appliers of the change stream.
 *
 * Each document op goes to the worker chosen by hash(namespace, _id), so the changes of
 * one document are applied in the order they were made; a worker takes the queued ops of
 * one collection (those of other collections wait behind them) and runs them as one
 * ordered bulk write (insert, replace-upsert, update, delete), with
 * bypassDocumentValidation. Everything applied is idempotent, so replaying from an
 * earlier position converges on the same result.
 *
 * Failures:
 *   - network errors and "not primary": the batch is retried with backoff, for as long as
 *     the job runs (the source's history holds the changes meanwhile);
 *   - an update the target refuses (a path that no longer fits the document, which
 *     happens while replaying over a newer copy): the document is copied from the source;
 *   - a duplicate key on a unique index (two documents trading a value, applied by
 *     different workers): retried while other workers catch up, then the job fails;
 *   - anything else fails the job with the namespace and the server's reason.
 *
 * Batching (lm_batch.h): a worker lets changes gather for up to a linger (chosen once a
 * second against the lag target: none while there is a backlog), writes a run of changes
 * to different _ids as one command per kind (inserts as inserts: one that finds its _id
 * taken is replayed as a replacement), and only as many workers work as the load needs;
 * the number changes only when every queue is empty, so a document's changes never sit in
 * two queues. A drain, a DDL and the cutover write at once.
 *
 * DDL is not queued: the stream drains the workers (lm_apply_drain) and runs it with
 * lm_apply_ddl. */
#ifndef LM_APPLY_H
#define LM_APPLY_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#include "lm_change.h"
#include "lm_error.h"
#include "lm_status.h"

typedef struct lm_apply lm_apply_t;

#define LM_APPLY_AUTO_MAX 8 /* apply_workers 0 (auto): the most workers lm_batch may choose */

typedef struct {
    mongoc_client_pool_t *source; /* for documents that must be copied again */
    mongoc_client_pool_t *target;
    int workers;           /* the most workers (all of them when workers_fixed) */
    bool workers_fixed;    /* false: lm_batch chooses how many of them work (1..workers) */
    int64_t lag_target_ms; /* the job's --cutover-lag: how long changes may gather (lm_batch.h) */
    int64_t buffer_bytes;  /* ops queued, at most (all workers together) */
    int batch_ops;         /* ops per bulk write, at most; 0: 1000 */
    lm_status_t *status;
    const atomic_bool *stop;
    /* a lease (lm_job_t's lease_ok_ms, lease_ms): once lease_ms passed since *lease_ok_ms
     * (monotonic ms), the workers stop as for *stop, before their next write. NULL: none. */
    const atomic_llong *lease_ok_ms;
    int64_t lease_ms;
} lm_apply_opts_t;

lm_apply_t *lm_apply_start(const lm_apply_opts_t *opts, lm_error_t *err);

/* Queues a document op (takes it); waits while its worker's queue is full. False when a
 * worker has failed (err says why) or the job is stopping. */
bool lm_apply_push(lm_apply_t *a, lm_op_t *op, lm_error_t *err);

/* Waits until every queued op is applied. False as for push. */
bool lm_apply_drain(lm_apply_t *a, lm_error_t *err);

/* The position before the oldest op not yet applied (and its wall time); false when
 * nothing is queued or being applied. */
bool lm_apply_pending(lm_apply_t *a, lm_optime_t *before, int64_t *wall_ms);

/* Document ops queued and not yet taken by a worker (all workers together). */
int64_t lm_apply_queued(lm_apply_t *a);

/* True (with err) once a worker failed for good. */
bool lm_apply_failed(lm_apply_t *a, lm_error_t *err);

/* From now on nothing gathers: every change is written as soon as a worker has it (the
 * cutover). Safe from any thread. */
void lm_apply_hurry(lm_apply_t *a);

/* Stops the workers; ops not applied are dropped (the checkpoint is before them). */
void lm_apply_stop(lm_apply_t *a);

/* The worker a document op goes to (exposed for tests). */
int lm_apply_worker_of(const lm_op_t *op, int workers);

/* Runs a DDL op on the target. Index builds and collMod the target refuses are status
 * warnings (as in the copy); a refused create or drop fails the job. DROP_DATABASE drops
 * the collections of that database the job selects (include/exclude), not the database. */
bool lm_apply_ddl(mongoc_client_t *target, const lm_op_t *op, const lm_strlist_t *include,
                  const lm_strlist_t *exclude, lm_status_t *st, lm_error_t *err);

#endif
