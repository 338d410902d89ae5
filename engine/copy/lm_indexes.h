/* lm_indexes: builds every index of a collection (but _id) on the target with all its
 * options. When the target refuses the whole set, each index is tried alone so the ones
 * it refuses are named with the reason (a status warning and the summary); nothing is
 * dropped silently. Only a permission error fails the job. */
#ifndef LM_INDEXES_H
#define LM_INDEXES_H

#include <stdbool.h>

#include <mongoc/mongoc.h>

#include "lm_catalog.h"
#include "lm_error.h"
#include "lm_status.h"

/* *refused counts the indexes the target would not build. */
bool lm_indexes_build(mongoc_client_t *target, const lm_coll_info_t *c, lm_status_t *st,
                      int *refused, lm_error_t *err);

#endif
