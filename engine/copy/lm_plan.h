/* lm_plan: how one collection is copied: as one range, or split into _id ranges that
 * readers copy in parallel.
 *
 * MongoDB compares _id values only within a type bracket ({_id: {$lt: ObjectId(..)}} never
 * matches a string _id), so a split collection gets ranges over its dominant _id type
 * (ObjectId, string, date, or numbers) plus one more range for every _id of another type:
 * together they cover every document, whatever the mix of types. Boundaries come from a
 * $sample of _ids. One range copies a collection that is small, capped (insertion order
 * matters) or has a collation (string order differs), and any collection on a server that
 * has no $sample or plans an _id range as a collection scan (each range would then read
 * the whole collection). */
#ifndef LM_PLAN_H
#define LM_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#include "lm_catalog.h"
#include "lm_error.h"
#include "lm_job.h"

#define LM_PLAN_MAX_RANGES 64

/* Fills `ranges` (initialised by the caller) with {"0": filter, "1": filter, ...}.
 * split_mode is LM_JOB_SPLIT_AUTO, _ALWAYS or _NEVER. Fetches c's size estimate when the
 * decision needs it. */
bool lm_plan_ranges(mongoc_client_t *src, lm_coll_info_t *c, int64_t split_docs, int split_mode,
                    bson_t *ranges, lm_error_t *err);

/* The same, for many collections of one source: *ixscan_cache (-1 before the first call)
 * keeps the source's answer to "is an _id range an index scan?" (asked with one explain)
 * from the first collection that needed it, so the later ones do not ask again. How a
 * server plans an _id range is a property of the server, not of one collection (every
 * collection that may be split has the _id index); a wrong guess would only change the
 * number of ranges, never what is copied. NULL asks every time. */
bool lm_plan_ranges_cached(mongoc_client_t *src, lm_coll_info_t *c, int64_t split_docs,
                           int split_mode, int *ixscan_cache, bson_t *ranges, lm_error_t *err);

/* The pure part of the plan: appends to `ranges` (from key "0" on) the filters that split
 * a collection into at most n_ranges (capped at LM_PLAN_MAX_RANGES) ranges, from `sample`,
 * a document whose values are _ids sampled from the collection (keys are ignored): ranges
 * over the most frequent _id type between distinct, evenly spaced boundaries, then one for
 * every _id of another type and, for numbers, one for NaN. Returns how many ranges cover
 * the dominant type, and *type its $type alias ("objectId", "string", "date" or "number");
 * 0 and *type NULL, with nothing appended, when the sample cannot split the collection:
 * n_ranges < 2, no _ids, or more _ids of types ranges do not cover (doubles, documents,
 * binary, ...) than of any one type they do. Nothing to free but `ranges`. */
int lm_plan_split(const bson_t *sample, int n_ranges, bson_t *ranges, const char **type);

#endif
