/* lm_stream: after the copy, replays every change made on the source since the pinned
 * start and keeps the target in sync until cutover.
 *
 * Threads:
 *   - the reader (the caller's thread) tails the oplog (tailable awaitData cursor on
 *     local.oplog.rs) or a cluster-wide change stream, decodes each entry (lm_change),
 *     drops what the job's filters exclude, hands document ops to lm_apply and runs DDL
 *     itself once every earlier op is applied (a barrier);
 *   - the monitor, once every 200 ms: works out the applied position (the entry before
 *     the oldest op not yet applied, or the last entry read), stores it on the target at
 *     least every 2 s, works out the lag, the cutover estimate and readyForCutover (looking
 *     ahead in the source's oplog while behind), checks the source still holds the history
 *     the reader needs, notices a cutover request within 10 ms and decides a change
 *     stream's cutoff. The oplog reader decides its own cutoff (a final sweep of the
 *     source's oplog, lm_stream.c) at its cursor's first empty answer after the request.
 *
 * Resume: the applied position is "everything up to here is on the target". A restart
 * reads from it again (the entry itself is read and skipped) and requires the source to
 * still hold it; when the source no longer does, the job fails with "oplog window
 * exceeded: restart the migration from the beginning" instead of skipping changes.
 * While running, every check asks that the oldest entry the source holds is not newer
 * than the position the reader had reached at the previous check: the source discards
 * its oldest entries first, so this proves no entry was discarded before it was read. */
#ifndef LM_STREAM_H
#define LM_STREAM_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <mongoc/mongoc.h>

#include "lm_change.h"
#include "lm_error.h"
#include "lm_job.h"
#include "lm_status.h"

typedef struct {
    mongoc_client_pool_t *source, *target;
    const lm_job_t *job;
    lm_status_t *status;
    const atomic_bool *stop;
    const char *job_id;
    /* The cutover gate: true once the stream should cut over (drain to the source's newest
     * position and end); asked until it says yes once. NULL: status->cutover (the status
     * API and the daemon set it). */
    bool (*cutover_gate)(void *ud);
    void *gate_ud;
    lm_optime_t from; /* applied through (the pinned start for a new stream) */
    int64_t from_wall_ms;
    const char *capture; /* the mode a previous run used, or NULL */
} lm_stream_opts_t;

/* The oldest (dir 1) or newest (dir -1) entry of the source's local.oplog.rs; false when
 * there is none or it cannot be read (e->code set then). */
bool lm_stream_oplog_edge(mongoc_client_t *c, int dir, lm_optime_t *ts, int64_t *wall,
                          bson_error_t *e);

/* Streams until the cutover completes (true: final position in status->stream.final_*),
 * or fails (err), or stops (err code LM_ERR_CANCELLED: *stop or status->cancel). The
 * applied position is checkpointed on every way out. */
bool lm_stream_run(const lm_stream_opts_t *opts, lm_error_t *err);

#endif
