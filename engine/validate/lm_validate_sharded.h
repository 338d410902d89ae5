/* lm_validate_sharded: the checks of a sharded source (its router answered hello with
 * isdbgrid), run by lm_validate instead of the replica-set ones (docs/validation.md). */
#ifndef LM_VALIDATE_SHARDED_H
#define LM_VALIDATE_SHARDED_H

#include <mongoc/mongoc.h>

#include "lm_job.h"
#include "lm_validate.h"

/* src and dst are connected routers (dst may be NULL: not reachable; FAIL lines say so). */
void lm_validate_sharded(const lm_job_t *job, mongoc_client_t *src, mongoc_client_t *dst,
                         lm_checks_t *out);

/* The replica-set checks for one shard pair (implemented in lm_validate.c, where they are):
 * job's source is source shard src_shard's replica set, its target target shard dst_shard
 * (lm_cluster_shard_uri). Reached, the source user's roles there, its oplog, the namespaces
 * already on the target shard, index kinds, the target shard's disk against the source
 * shard's data, the source shard's oplog window against its estimated copy time. Each line
 * is named "<check>@<src_shard>" and its message starts with "shard SRC -> DST: ". */
void lm_validate_shard_pair(const lm_job_t *job, const char *src_shard, const char *dst_shard,
                            lm_checks_t *out);
/* The source user's roles on the config server replica set (job's source is its URI):
 * "user-roles@config". */
void lm_validate_config_user(const lm_job_t *job, lm_checks_t *out);

#endif
