/* lm_meta: the job's checkpoint, kept on the TARGET in LM_META_DB.checkpoints (a database
 * the copy never touches), so a restarted agent resumes from the target's own record.
 *
 *   {_id: "job:<id>",            kind: "job", startOptime, phase, source, target,
 *                                applied, appliedWall, capture, ...}
 *   {_id: "plan:<id>:<ns>",      kind: "plan", job, ns, ranges: [filter, ...]}
 *   {_id: "done:<id>:<ns>:<r>",  kind: "done", job, ns, range: r, docs}
 *   {_id: "idx:<id>:<ns>",       kind: "indexes", job, ns}
 *
 * Plans are written once when the job starts (in batches, lm_meta_save_plans, and read back
 * all at once on resume, lm_meta_load_plans); each finished range adds one small
 * document, so progress is never rewritten as one large document. */
#ifndef LM_META_H
#define LM_META_H

#include <stdbool.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#include "lm_error.h"

typedef struct {
    bool exists;
    uint32_t start_ts, start_inc;
    char phase[32];
    char source[256], target[256];
    bool has_applied; /* the stream's resume point: every change up to it is applied */
    uint32_t applied_t, applied_i;
    int64_t applied_wall_ms;
    char capture[16];
} lm_meta_job_t;

/* Reads the job document; exists=false when the target has none for this id. */
bool lm_meta_load_job(mongoc_client_t *target, const char *job_id, lm_meta_job_t *job,
                      lm_error_t *err);
bool lm_meta_create_job(mongoc_client_t *target, const char *job_id, const lm_meta_job_t *job,
                        lm_error_t *err);
bool lm_meta_set_phase(mongoc_client_t *target, const char *job_id, const char *phase,
                       lm_error_t *err);

/* Records the stream's resume point (and the phase, when not NULL). */
bool lm_meta_save_position(mongoc_client_t *target, const char *job_id, const char *phase,
                           uint32_t t, uint32_t i, int64_t wall_ms, const char *capture,
                           lm_error_t *err);

/* The plan of one collection: `ranges` is {"0": filter, "1": filter, ...}. */
bool lm_meta_save_plan(mongoc_client_t *target, const char *job_id, const char *ns,
                       const bson_t *ranges, lm_error_t *err);
/* Loads it into *ranges (a new bson_t, caller destroys), or NULL when none was saved. */
bool lm_meta_load_plan(mongoc_client_t *target, const char *job_id, const char *ns, bson_t **ranges,
                       lm_error_t *err);

/* Every plan saved for this job, read with ONE query: fn gets each namespace and its ranges
 * (valid during the call only). A document without a ranges array is skipped (that
 * namespace is planned again, as lm_meta_load_plan does). */
typedef void (*lm_meta_plan_fn)(void *ud, const char *ns, const bson_t *ranges);
bool lm_meta_load_plans(mongoc_client_t *target, const char *job_id, lm_meta_plan_fn fn, void *ud,
                        lm_error_t *err);
/* Saves n plans in one bulk write (the driver splits it at the server's batch limits): the
 * same documents, with the same _ids, as n calls of lm_meta_save_plan. */
bool lm_meta_save_plans(mongoc_client_t *target, const char *job_id, size_t n,
                        const char *const *ns, bson_t *const *ranges, lm_error_t *err);

bool lm_meta_mark_range_done(mongoc_client_t *target, const char *job_id, const char *ns, int range,
                             int64_t docs, lm_error_t *err);
bool lm_meta_mark_indexes_done(mongoc_client_t *target, const char *job_id, const char *ns,
                               lm_error_t *err);

/* The same records as n calls of the two above, in one bulk write each (the driver splits
 * it at the server's limits). */
bool lm_meta_mark_ranges_done(mongoc_client_t *target, const char *job_id, size_t n,
                              const char *const *ns, const int *range, const int64_t *docs,
                              lm_error_t *err);
bool lm_meta_mark_indexes_done_many(mongoc_client_t *target, const char *job_id, size_t n,
                                    const char *const *ns, lm_error_t *err);

/* Calls fn for every finished range (range >= 0) and finished index build (range -1). */
typedef void (*lm_meta_done_fn)(void *ud, const char *ns, int range, int64_t docs);
bool lm_meta_each_done(mongoc_client_t *target, const char *job_id, lm_meta_done_fn fn, void *ud,
                       lm_error_t *err);

#endif
