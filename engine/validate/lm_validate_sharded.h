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

#endif
