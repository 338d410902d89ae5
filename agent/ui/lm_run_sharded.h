/* lm_run_sharded: the agent's presentation of a sharded migration (lm_coord): per-shard
 * progress lines and the summary. lm_run_job calls it when the source is a mongos, with
 * the status API already serving st (its JSON gains "shards" and "balancer"). */
#ifndef LM_RUN_SHARDED_H
#define LM_RUN_SHARDED_H

#include <stdatomic.h>

#include "lm_coord.h"
#include "lm_job.h"
#include "lm_status.h"
#include "lm_verify.h"

/* Runs the sharded migration to its end; returns an exit code (LM_EXIT_*, lm_engine.h).
 * restartable: someone can restart a failed shard (a status API serves st, or a control
 * plane drives the run), so a failed shard leaves the others running; otherwise a failure
 * stops them all (checkpointed). after (may be NULL): called after a COMPLETE cutover in
 * place of the verification (lm_run_job_then's hook: a daemon verifies and reports). */
int lm_run_sharded(const lm_job_t *job, lm_status_t *st, const atomic_bool *stop, bool restartable,
                   void (*after)(void *ud), void *ud);

/* Verification of a sharded target (job's source and target are routers): both clusters'
 * listShards read, source shard i compared with target shard i (the engines' pairs, reached
 * through the same shard URIs) by lm_verify, pair after pair, with the job's verify_*
 * options. Prints a table per pair (or, with json, one JSON document for all) and an
 * overall line. st (may be NULL) keeps the overall verification section (differences
 * prefixed with their pair); coord (may be NULL) gives each shard's status, whose own
 * section the status JSON shows per shard. state_dir/restart: resumable, per pair
 * (lm_verify). Returns LM_EXIT_OK when every pair passed, else fail_code (a difference,
 * or it could not finish: the reason printed). all (may be NULL, zeroed by the caller):
 * receives every pair's namespaces, each named "SHARD:ns", and nothing is printed; why
 * (may be NULL): why it did not finish (code LM_ERR_NONE when it did). */
int lm_run_sharded_verify(const lm_job_t *job, lm_status_t *st, lm_coord_t *coord,
                          const atomic_bool *stop, const char *state_dir, bool restart, bool json,
                          int fail_code, lm_verify_result_t *all, lm_error_t *why);

#endif
