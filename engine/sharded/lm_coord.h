/* lm_coord: a live migration of a sharded cluster, shard to shard (docs/sharded.md).
 *
 * Given a router (mongos) of the source and one of the target, the coordinator reads both
 * clusters' descriptions, refuses a target with another number of shards (nothing
 * written), stops the source's balancer (waiting for a round in progress) and the
 * target's, prepares one lm_engine_t per shard (engine i reads source shard i's replica set
 * and writes target shard i, listShards order; its checkpoint key names the shard), makes
 * the target's metadata match while it is empty (databases with paired primary shards,
 * sharded collections with the same key and uniqueness, chunk maps made equal by split and
 * moveRange), then runs the engines side by side. The overall status is computed from
 * the shards' (lag: the worst shard; readyForCutover: every shard ready); the cutover gate
 * is shared, so every engine cuts over together. A failed shard can be restarted alone
 * (restartable: status->restart_shard) while the others go on. At the end (COMPLETE, CANCELLED or
 * FAILED) the balancers are started again; a refused restart is a warning in the status,
 * the log and the summary (the migration still completes). A signal (STOPPED, resumable)
 * leaves them stopped: run again to resume, or cancel.
 *
 * Threads: lm_coord_run runs on the caller's thread and starts one thread per engine,
 * joined before it returns; it copies the overall status from the shards' every 250 ms. */
#ifndef LM_COORD_H
#define LM_COORD_H

#include <stdatomic.h>
#include <stdbool.h>

#include "lm_cluster.h"
#include "lm_engine.h"
#include "lm_job.h"
#include "lm_status.h"

typedef struct {
    const lm_job_t *job;     /* the source and target are routers; must outlive */
    lm_status_t *status;     /* the overall status: the caller's (served, cancel, cutover) */
    const atomic_bool *stop; /* signals */
    /* An operator can restart a failed shard (a status API serves status->restart_shard):
     * a failed shard then leaves the others running. False: one failure stops them all. */
    bool restartable;
    /* One migration over several agents (docs/sharded.md "Several agents"): the source
     * shards this coordinator runs (NULL or empty: every shard; items may be
     * comma-separated lists), and its role (LM_JOB_ROLE_*). Only the lead (or "all") stops
     * and starts the balancers and makes the target's metadata match; the lead then records
     * "metadata ready" on the target's first shard (__livemig.sharded, _id the job id); a
     * follower prepares its shards and waits for that document (at most lead_wait_ms, 0:
     * 30 min) before copying. The job id must be the same on every agent (job->job_id). */
    const lm_strlist_t *shards;
    int role;
    int64_t lead_wait_ms;
    /* A lead of a migration spread by the control plane (docs/sharded.md "Await mode"):
     * role lead, shards empty. Once the balancers are stopped it measures every source
     * shard (listDatabases on its replica set), reports one row per shard (state ASSIGNING,
     * phase VALIDATING, sizeBytes) and waits (at most lead_wait_ms, 0: 30 min) for the list
     * of its shards through status->assign_check / lm_status_take_assignment; then it runs
     * them as a lead given them with shards. */
    bool await_shards;
} lm_coord_opts_t;

typedef struct lm_coord lm_coord_t;

/* Whether job's source is a sharded cluster's router (hello says isdbgrid). False when the
 * source cannot be reached: the caller then runs the replica-set engine, which says why. */
bool lm_coord_source_is_sharded(const lm_job_t *job);

/* Pure: whether the source shard name is in shards (--shards: items may be comma-separated
 * lists; NULL or empty lists every shard). */
bool lm_coord_shard_listed(const lm_strlist_t *shards, const char *name);

/* Pure: whether list is a well-formed list of shard names: 1 or more names separated by
 * single commas, each 1 to LM_SHARD_NAME_MAX - 1 bytes of printable ASCII without spaces.
 * False with why in msg (the part quoted made printable). */
bool lm_coord_shard_list_check(const char *list, char *msg, size_t msgsz);

lm_coord_t *lm_coord_new(const lm_coord_opts_t *opts);
/* Runs the migration to its end; the overall status's state is set. */
lm_engine_outcome_t lm_coord_run(lm_coord_t *c);
void lm_coord_destroy(lm_coord_t *c);

/* For summaries: the job id, the shards (0 before the clusters were read), each one's
 * names and status, and the balancer restarts that were refused. */
const char *lm_coord_job_id(const lm_coord_t *c);
size_t lm_coord_n_shards(const lm_coord_t *c);
const char *lm_coord_shard_name(const lm_coord_t *c, size_t i);
const char *lm_coord_target_shard_name(const lm_coord_t *c, size_t i);
lm_status_t *lm_coord_shard_status(lm_coord_t *c, size_t i);
bool lm_coord_balancer_restart_refused(const lm_coord_t *c);

#endif
