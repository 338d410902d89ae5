/* lm_plan: see lm_plan.h. */
#include "lm_plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lm_log.h"

typedef enum { K_NONE, K_OID, K_STRING, K_DATE, K_INT } kind_t;

static const char *const kind_type_alias[] = {"", "objectId", "string", "date", "number"};

static kind_t kind_of(const bson_value_t *v)
{
    switch (v->value_type) {
    case BSON_TYPE_OID: return K_OID;
    case BSON_TYPE_UTF8: return K_STRING;
    case BSON_TYPE_DATE_TIME: return K_DATE;
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64: return K_INT;
    default: return K_NONE;
    }
}

static int64_t as_int(const bson_value_t *v)
{
    return v->value_type == BSON_TYPE_INT32 ? v->value.v_int32 : v->value.v_int64;
}

/* A total order within one kind, matching MongoDB's (strings: binary, no collation). */
static int compare(const void *a, const void *b)
{
    const bson_value_t *x = a, *y = b;
    switch (kind_of(x)) {
    case K_OID: return memcmp(x->value.v_oid.bytes, y->value.v_oid.bytes, 12);
    case K_STRING: {
        uint32_t lx = x->value.v_utf8.len, ly = y->value.v_utf8.len;
        int c = memcmp(x->value.v_utf8.str, y->value.v_utf8.str, lx < ly ? lx : ly);
        return c ? c : (lx > ly) - (lx < ly);
    }
    case K_DATE:
        return (x->value.v_datetime > y->value.v_datetime) -
               (x->value.v_datetime < y->value.v_datetime);
    case K_INT: return (as_int(x) > as_int(y)) - (as_int(x) < as_int(y));
    default: return 0;
    }
}

static void add_range(bson_t *ranges, int i, bson_t *filter)
{
    char key[16];
    bson_snprintf(key, sizeof key, "%d", i);
    BSON_APPEND_DOCUMENT(ranges, key, filter);
    bson_destroy(filter);
}

static void single(bson_t *ranges)
{
    add_range(ranges, 0, bson_new());
}

/* Samples up to `size` _ids of c into sample ({"0": _id, "1": _id, ...}); leaves it empty
 * when the server has no $sample. */
static void sample_ids(mongoc_client_t *src, const lm_coll_info_t *c, int size, bson_t *sample)
{
    bson_error_t e;
    const bson_t *d;
    bson_iter_t it;
    uint32_t n = 0;
    mongoc_collection_t *coll = mongoc_client_get_collection(src, c->db, c->coll);
    bson_t *pipeline = BCON_NEW("pipeline", "[", "{", "$sample", "{", "size", BCON_INT32(size), "}",
                                "}", "{", "$project", "{", "_id", BCON_INT32(1), "}", "}", "]");
    mongoc_cursor_t *cur =
        mongoc_collection_aggregate(coll, MONGOC_QUERY_NONE, pipeline, NULL, NULL);
    while (n < (uint32_t)size && mongoc_cursor_next(cur, &d)) {
        if (bson_iter_init_find(&it, d, "_id")) {
            char buf[16];
            const char *key;
            size_t klen = bson_uint32_to_string(n, &key, buf, sizeof buf);
            if (!bson_append_value(sample, key, (int)klen, bson_iter_value(&it)))
                break; /* the sample would pass BSON's size limit: split on what we have */
            n++;
        }
    }
    if (mongoc_cursor_error(cur, &e)) {
        lm_log_debug(NULL, "%s: no $sample (%s): copied as one range", c->ns, e.message);
        bson_reinit(sample);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(pipeline);
    mongoc_collection_destroy(coll);
}

/* True when the server answers an _id range with an index scan. A server that plans it
 * as a collection scan (SecantusDB does) would read the whole collection once per range,
 * so splitting would multiply the work instead of sharing it. explain with queryPlanner
 * verbosity only plans; it reads no documents. */
static bool ranges_use_index(mongoc_client_t *src, const lm_coll_info_t *c)
{
    bson_t reply;
    bson_iter_t it;
    bool ixscan = false;
    bson_t *cmd = BCON_NEW("explain", "{", "find", BCON_UTF8(c->coll), "filter", "{", "_id", "{",
                           "$gte", BCON_INT32(0), "$lt", BCON_INT32(1), "}", "}", "}", "verbosity",
                           BCON_UTF8("queryPlanner"));
    if (mongoc_client_command_simple(src, c->db, cmd, NULL, &reply, NULL) &&
        bson_iter_init(&it, &reply) &&
        bson_iter_find_descendant(&it, "queryPlanner.winningPlan", &it) &&
        BSON_ITER_HOLDS_DOCUMENT(&it)) {
        const uint8_t *data;
        uint32_t len;
        bson_t plan;
        bson_iter_document(&it, &len, &data);
        if (bson_init_static(&plan, data, len)) {
            char *json = bson_as_relaxed_extended_json(&plan, NULL);
            ixscan = json && strstr(json, "IXSCAN") != NULL;
            bson_free(json);
        }
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    if (!ixscan)
        lm_log_debug(
            NULL, "%s: the source scans the whole collection for an _id range: copied as one range",
            c->ns);
    return ixscan;
}

static void append_value(bson_t *b, const char *key, const bson_value_t *v)
{
    bson_append_value(b, key, -1, v);
}

int lm_plan_split(const bson_t *sample, int n_ranges, bson_t *ranges, const char **type)
{
    bson_iter_t it;
    size_t counts[5] = {0}, n = 0;
    kind_t kind = K_NONE;
    *type = NULL;
    if (n_ranges > LM_PLAN_MAX_RANGES)
        n_ranges = LM_PLAN_MAX_RANGES;
    if (n_ranges < 2 || !bson_iter_init(&it, sample))
        return 0;
    while (bson_iter_next(&it))
        counts[kind_of(bson_iter_value(&it))]++;
    for (int k = K_OID; k <= K_INT; k++)
        if (counts[k] > counts[kind])
            kind = (kind_t)k;
    if (kind == K_NONE)
        return 0;
    /* shallow copies: strings point into sample, which outlives them */
    bson_value_t *vals = calloc(counts[kind], sizeof *vals);
    if (!vals)
        return 0;
    bson_iter_init(&it, sample);
    while (bson_iter_next(&it))
        if (kind_of(bson_iter_value(&it)) == kind)
            vals[n++] = *bson_iter_value(&it);
    qsort(vals, n, sizeof *vals, compare);
    /* distinct, evenly spaced boundaries */
    bson_value_t *bounds[LM_PLAN_MAX_RANGES];
    int nb = 0;
    for (int r = 1; r < n_ranges; r++) {
        bson_value_t *cand = &vals[(size_t)r * n / (size_t)n_ranges];
        if (nb == 0 || compare(bounds[nb - 1], cand) < 0)
            bounds[nb++] = cand;
    }
    const char *alias = kind_type_alias[kind];
    int r = 0;
    for (int b = 0; b <= nb; b++) {
        bson_t *f = bson_new(), id;
        BSON_APPEND_DOCUMENT_BEGIN(f, "_id", &id);
        if (b > 0)
            append_value(&id, "$gte", bounds[b - 1]);
        if (b < nb)
            append_value(&id, "$lt", bounds[b]);
        bson_append_document_end(f, &id);
        add_range(ranges, r++, f);
    }
    /* every _id of another type (type bracketing keeps them out of the ranges above) */
    add_range(ranges, r++, BCON_NEW("_id", "{", "$not", "{", "$type", BCON_UTF8(alias), "}", "}"));
    /* NaN is a number no $lt/$gte matches; it equals itself in a query */
    if (kind == K_INT)
        add_range(ranges, r, BCON_NEW("_id", BCON_DOUBLE((double)NAN)));
    free(vals);
    *type = alias;
    return nb + 1;
}

bool lm_plan_ranges(mongoc_client_t *src, lm_coll_info_t *c, int64_t split_docs, int split_mode,
                    bson_t *ranges, lm_error_t *err)
{
    return lm_plan_ranges_cached(src, c, split_docs, split_mode, NULL, ranges, err);
}

/* With a cache, the server's answer for the first collection stands for every later one. */
static bool ranges_use_index_cached(mongoc_client_t *src, const lm_coll_info_t *c, int *cache)
{
    if (cache && *cache >= 0)
        return *cache == 1;
    bool ixscan = ranges_use_index(src, c);
    if (cache)
        *cache = ixscan ? 1 : 0;
    return ixscan;
}

bool lm_plan_ranges_cached(mongoc_client_t *src, lm_coll_info_t *c, int64_t split_docs,
                           int split_mode, int *ixscan_cache, bson_t *ranges, lm_error_t *err)
{
    bson_iter_t it;
    (void)err;
    bool capped = bson_iter_init_find(&it, c->options, "capped") && bson_iter_as_bool(&it);
    /* cheapest reasons first: the count may cost a scan of the collection */
    if (split_mode == LM_JOB_SPLIT_NEVER || capped || c->has_collation ||
        strcmp(c->type, "collection") != 0 ||
        (split_mode == LM_JOB_SPLIT_AUTO && !ranges_use_index_cached(src, c, ixscan_cache))) {
        single(ranges);
        return true;
    }
    if (c->est_docs < 0)
        lm_catalog_estimate(src, c);
    if (c->est_docs <= split_docs) {
        single(ranges);
        return true;
    }
    int64_t want = (c->est_docs + split_docs - 1) / split_docs;
    int n_ranges = want > LM_PLAN_MAX_RANGES ? LM_PLAN_MAX_RANGES : (int)want;
    int size = n_ranges * 16 > 1024 ? 1024 : n_ranges * 16;
    bson_t sample = BSON_INITIALIZER;
    const char *type;
    sample_ids(src, c, size, &sample);
    int n = lm_plan_split(&sample, n_ranges, ranges, &type);
    if (n == 0)
        single(ranges);
    else
        lm_log_info(NULL, "%s: %d ranges over %s _ids, plus one for other _id types", c->ns, n,
                    type);
    bson_destroy(&sample);
    return true;
}
