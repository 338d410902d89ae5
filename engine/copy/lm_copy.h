/* lm_copy: the initial-sync pipeline.
 *
 * Reader threads take tasks (one _id range of one collection) and stream the raw BSON of
 * its documents into batches; a queue bounded in bytes (the job's buffer) hands batches
 * to writer threads that send unordered bulk inserts of those exact bytes with
 * bypassDocumentValidation and no client-side validation. Duplicate-key errors (documents
 * already copied by an earlier, interrupted run) are counted and tolerated; any other
 * write error fails the job. When every batch of a task is written, `on_task_done` runs
 * (the engine records the range in the checkpoint).
 *
 * The number of active writers (and readers) is fixed (`workers`) or, with workers 0,
 * chosen while the copy runs from the throughput the target shows (lm_tune.h; the design
 * and which thread owns what are at the top of lm_copy.c). */
#ifndef LM_COPY_H
#define LM_COPY_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#include "lm_conn.h"
#include "lm_error.h"
#include "lm_status.h"

typedef struct lm_copy_task {
    char db[128];
    char coll[LM_NS_MAX];
    char ns[LM_NS_MAX];
    int range;
    bson_t *filter;           /* owned by the caller */
    lm_coll_status_t *status; /* counters of its collection */
    /* set by the pipeline */
    atomic_llong docs;
    atomic_int pending; /* batches queued or being written */
    atomic_bool reader_done;
    atomic_bool done;
} lm_copy_task_t;

typedef void (*lm_copy_done_fn)(void *ud, lm_copy_task_t *task);

/* Starts a thread like pthread_create (0 or an errno value); tests inject failures. */
typedef int (*lm_copy_spawn_fn)(pthread_t *thread, void *(*main)(void *), void *arg);

typedef struct {
    mongoc_client_pool_t *source;
    mongoc_client_pool_t *target;
    lm_conn_caps_t *source_caps; /* what the source refused so far; updated by the readers */
    int workers;                 /* readers and writers each; 0: auto (lm_tune chooses) */
    int workers_max;             /* auto: the most it may choose; 0: LM_TUNE_AUTO_MAX */
    int64_t buffer_bytes;        /* documents in flight, at most */
    lm_status_t *status;
    const atomic_bool *stop;      /* signals: stop reading, finish nothing new */
    lm_copy_done_fn on_task_done; /* called from a writer thread */
    void *ud;
    lm_copy_spawn_fn spawn; /* NULL: pthread_create */
    /* a daemon's part with a lease (lm_job_t's lease_ok_ms, lease_ms; NULL / 0: none): once
     * it ran out no batch is written and no range recorded, as for a stop */
    const atomic_llong *lease_ok_ms;
    int64_t lease_ms;
} lm_copy_opts_t;

/* Copies every task not already marked done. Returns false with err when a read or write failed for
 * good or its threads could not all be started (those that did are stopped and joined), or
 * with LM_ERR_CANCELLED when *stop or status->cancel was set (unfinished tasks stay
 * undone). */
bool lm_copy_run(const lm_copy_opts_t *opts, lm_copy_task_t *tasks, size_t n_tasks,
                 lm_error_t *err);

#endif
