/* lm_run_sharded: the agent's presentation of a sharded migration (lm_coord): per-shard
 * progress lines and the summary. lm_run_job calls it when the source is a mongos, with
 * the status API already serving st (its JSON gains "shards" and "balancer"). */
#ifndef LM_RUN_SHARDED_H
#define LM_RUN_SHARDED_H

#include <stdatomic.h>

#include "lm_job.h"
#include "lm_status.h"

/* Runs the sharded migration to its end; returns an exit code (LM_EXIT_*, lm_engine.h). */
int lm_run_sharded(const lm_job_t *job, lm_status_t *st, const atomic_bool *stop);

#endif
