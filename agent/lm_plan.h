/* lm_plan: how one collection is copied: as one range, or split into _id ranges that
 * readers copy in parallel.
 *
 * MongoDB compares _id values only within a type bracket ({_id: {$lt: ObjectId(..)}} never
 * matches a string _id), so a split collection gets ranges over its dominant _id type
 * (ObjectId, string, date, or numbers) plus one more range for every _id of another type:
 * together they cover every document, whatever the mix of types. Boundaries come from a
 * $sample of _ids; where the server has no $sample, or the collection is capped (insertion
 * order matters), has a collation (string order differs) or is small, one range copies it. */
#ifndef LM_PLAN_H
#define LM_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#include "lm_catalog.h"
#include "lm_error.h"

#define LM_PLAN_MAX_RANGES 64

/* Fills `ranges` (initialised by the caller) with {"0": filter, "1": filter, ...}. */
bool lm_plan_ranges(mongoc_client_t *src, const lm_coll_info_t *c, int64_t split_docs,
                    bson_t *ranges, lm_error_t *err);

#endif
