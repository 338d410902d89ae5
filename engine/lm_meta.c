/* lm_meta: see lm_meta.h. */
#include "lm_meta.h"

#include <stdlib.h>
#include <string.h>

#include "lm_mongo_error.h"
#include "lm_ns.h"

#define META_COLL "checkpoints"

static mongoc_collection_t *meta(mongoc_client_t *c)
{
    return mongoc_client_get_collection(c, LM_META_DB, META_COLL);
}

static bool fail(const char *what, const bson_error_t *e, lm_error_t *err)
{
    return lm_error_set(
        err, lm_mongo_error_class(e->code), "target: cannot %s the checkpoint in %s.%s: %s%s", what,
        LM_META_DB, META_COLL, e->message,
        lm_mongo_unauthorized(e->code) ? ": the target user needs readWrite on " LM_META_DB : "");
}

/* Replaces (or inserts) the document with this _id. */
static bool put(mongoc_client_t *c, const char *id, bson_t *doc, lm_error_t *err)
{
    bson_error_t e;
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(id));
    bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
    mongoc_collection_t *coll = meta(c);
    BSON_APPEND_UTF8(doc, "_id", id);
    bool ok = mongoc_collection_replace_one(coll, sel, doc, opts, NULL, &e);
    if (!ok)
        fail("write", &e, err);
    mongoc_collection_destroy(coll);
    bson_destroy(opts);
    bson_destroy(sel);
    return ok;
}

/* The end of every read of the meta collection: the cursor's error (as a read failure),
 * and the cursor, collection and filter freed. */
static bool end_read(mongoc_cursor_t *cur, mongoc_collection_t *coll, bson_t *filter,
                     lm_error_t *err)
{
    bson_error_t e;
    bool ok = !mongoc_cursor_error(cur, &e);
    if (!ok)
        fail("read", &e, err);
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(coll);
    bson_destroy(filter);
    return ok;
}

/* Finds one document by _id into *out (a copy, caller destroys) or NULL. */
static bool get(mongoc_client_t *c, const char *id, bson_t **out, lm_error_t *err)
{
    const bson_t *d;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    mongoc_collection_t *coll = meta(c);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    *out = mongoc_cursor_next(cur, &d) ? bson_copy(d) : NULL;
    return end_read(cur, coll, filter, err);
}

static void copy_str(bson_t *d, const char *key, char *out, size_t outsz)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, d, key) && BSON_ITER_HOLDS_UTF8(&it))
        bson_snprintf(out, outsz, "%s", bson_iter_utf8(&it, NULL));
}

bool lm_meta_load_job(mongoc_client_t *c, const char *job_id, lm_meta_job_t *job, lm_error_t *err)
{
    char id[128];
    bson_t *d;
    bson_iter_t it;
    memset(job, 0, sizeof *job);
    bson_snprintf(id, sizeof id, "job:%s", job_id);
    if (!get(c, id, &d, err))
        return false;
    if (!d)
        return true;
    job->exists = true;
    if (bson_iter_init_find(&it, d, "startOptime") && BSON_ITER_HOLDS_TIMESTAMP(&it))
        bson_iter_timestamp(&it, &job->start_ts, &job->start_inc);
    copy_str(d, "phase", job->phase, sizeof job->phase);
    copy_str(d, "source", job->source, sizeof job->source);
    copy_str(d, "target", job->target, sizeof job->target);
    copy_str(d, "capture", job->capture, sizeof job->capture);
    if (bson_iter_init_find(&it, d, "applied") && BSON_ITER_HOLDS_TIMESTAMP(&it)) {
        bson_iter_timestamp(&it, &job->applied_t, &job->applied_i);
        job->has_applied = true;
    }
    if (bson_iter_init_find(&it, d, "appliedWall") && BSON_ITER_HOLDS_DATE_TIME(&it))
        job->applied_wall_ms = bson_iter_date_time(&it);
    bson_destroy(d);
    return true;
}

bool lm_meta_create_job(mongoc_client_t *c, const char *job_id, const lm_meta_job_t *job,
                        lm_error_t *err)
{
    char id[128];
    bson_snprintf(id, sizeof id, "job:%s", job_id);
    bson_t *d =
        BCON_NEW("kind", BCON_UTF8("job"), "job", BCON_UTF8(job_id), "startOptime",
                 BCON_TIMESTAMP(job->start_ts, job->start_inc), "phase", BCON_UTF8(job->phase),
                 "source", BCON_UTF8(job->source), "target", BCON_UTF8(job->target));
    bson_append_now_utc(d, "created", -1);
    bson_append_now_utc(d, "updated", -1);
    bool ok = put(c, id, d, err);
    bson_destroy(d);
    return ok;
}

/* $set of fields on the job document, and its update time. */
static bool set_job(mongoc_client_t *c, const char *job_id, const bson_t *fields, lm_error_t *err)
{
    char id[128];
    bson_error_t e;
    bson_snprintf(id, sizeof id, "job:%s", job_id);
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(id));
    bson_t *upd = bson_new();
    BSON_APPEND_DOCUMENT(upd, "$set", fields);
    BCON_APPEND(upd, "$currentDate", "{", "updated", BCON_BOOL(true), "}");
    mongoc_collection_t *coll = meta(c);
    bool ok = mongoc_collection_update_one(coll, sel, upd, NULL, NULL, &e);
    if (!ok)
        fail("update", &e, err);
    mongoc_collection_destroy(coll);
    bson_destroy(upd);
    bson_destroy(sel);
    return ok;
}

bool lm_meta_set_phase(mongoc_client_t *c, const char *job_id, const char *phase, lm_error_t *err)
{
    bson_t *f = BCON_NEW("phase", BCON_UTF8(phase));
    bool ok = set_job(c, job_id, f, err);
    bson_destroy(f);
    return ok;
}

bool lm_meta_save_position(mongoc_client_t *c, const char *job_id, const char *phase, uint32_t t,
                           uint32_t i, int64_t wall_ms, const char *capture, lm_error_t *err)
{
    bson_t *f = BCON_NEW("applied", BCON_TIMESTAMP(t, i), "capture", BCON_UTF8(capture));
    BSON_APPEND_DATE_TIME(f, "appliedWall", wall_ms);
    if (phase)
        BSON_APPEND_UTF8(f, "phase", phase);
    bool ok = set_job(c, job_id, f, err);
    bson_destroy(f);
    return ok;
}

bool lm_meta_save_plan(mongoc_client_t *c, const char *job_id, const char *ns, const bson_t *ranges,
                       lm_error_t *err)
{
    char id[LM_NS_MAX + 128];
    bson_snprintf(id, sizeof id, "plan:%s:%s", job_id, ns);
    bson_t *d = BCON_NEW("kind", BCON_UTF8("plan"), "job", BCON_UTF8(job_id), "ns", BCON_UTF8(ns));
    BSON_APPEND_ARRAY(d, "ranges", ranges);
    bool ok = put(c, id, d, err);
    bson_destroy(d);
    return ok;
}

bool lm_meta_load_plan(mongoc_client_t *c, const char *job_id, const char *ns, bson_t **ranges,
                       lm_error_t *err)
{
    char id[LM_NS_MAX + 128];
    bson_t *d;
    bson_iter_t it;
    *ranges = NULL;
    bson_snprintf(id, sizeof id, "plan:%s:%s", job_id, ns);
    if (!get(c, id, &d, err))
        return false;
    if (d && bson_iter_init_find(&it, d, "ranges") && BSON_ITER_HOLDS_ARRAY(&it)) {
        const uint8_t *data;
        uint32_t len;
        bson_iter_array(&it, &len, &data);
        *ranges = bson_new_from_data(data, len);
    }
    bson_destroy(d);
    return true;
}

bool lm_meta_load_plans(mongoc_client_t *c, const char *job_id, lm_meta_plan_fn fn, void *ud,
                        lm_error_t *err)
{
    const bson_t *d;
    bson_iter_t it;
    bson_t *filter = BCON_NEW("job", BCON_UTF8(job_id), "kind", BCON_UTF8("plan"));
    mongoc_collection_t *coll = meta(c);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    while (mongoc_cursor_next(cur, &d)) {
        char ns[LM_NS_MAX] = "";
        bson_t ranges;
        const uint8_t *data;
        uint32_t len;
        copy_str((bson_t *)d, "ns", ns, sizeof ns);
        if (!*ns || !bson_iter_init_find(&it, d, "ranges") || !BSON_ITER_HOLDS_ARRAY(&it))
            continue;
        bson_iter_array(&it, &len, &data);
        if (bson_init_static(&ranges, data, len))
            fn(ud, ns, &ranges);
    }
    return end_read(cur, coll, filter, err);
}

/* Marks in dup[] the documents an insert reply refused as duplicate keys; false when it
 * refused one for another reason. */
static bool dups_only(const bson_t *reply, size_t n, bool *dup)
{
    bson_iter_t it, errs, one;
    if (!bson_iter_init_find(&it, reply, "writeErrors") || !bson_iter_recurse(&it, &errs))
        return false;
    while (bson_iter_next(&errs)) {
        int64_t index = -1, code = 0;
        if (!bson_iter_recurse(&errs, &one))
            return false;
        while (bson_iter_next(&one)) {
            if (strcmp(bson_iter_key(&one), "index") == 0)
                index = bson_iter_as_int64(&one);
            else if (strcmp(bson_iter_key(&one), "code") == 0)
                code = bson_iter_as_int64(&one);
        }
        if (index < 0 || (size_t)index >= n || !lm_mongo_duplicate_key((uint32_t)code))
            return false;
        dup[index] = true;
    }
    return true;
}

/* Writes n documents with these _ids (ids[k] becomes docs[k]'s _id), as put() would one by
 * one: first as one unordered insert, which a new record needs (an upsert costs SecantusDB
 * about 5x an insert: 500 upserts 1.1 s, 500 inserts 0.23 s), then the ones that already
 * existed (a repeated record) as replacing upserts. */
static bool put_many(mongoc_client_t *c, size_t n, char *const *ids, bson_t *const *docs,
                     lm_error_t *err)
{
    if (n == 0)
        return true;
    bson_error_t e;
    bson_t reply;
    const bson_t **ptrs = calloc(n, sizeof *ptrs);
    bool *dup = calloc(n, sizeof *dup);
    if (!ptrs || !dup) {
        free(ptrs);
        free(dup);
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        BSON_APPEND_UTF8(docs[i], "_id", ids[i]);
        ptrs[i] = docs[i];
    }
    mongoc_collection_t *coll = meta(c);
    bson_t *iopts = BCON_NEW("ordered", BCON_BOOL(false));
    bool ok = mongoc_collection_insert_many(coll, ptrs, n, iopts, &reply, &e);
    bool redo = !ok && dups_only(&reply, n, dup);
    bson_destroy(&reply);
    bson_destroy(iopts);
    if (!ok && !redo)
        fail("write", &e, err);
    if (redo) {
        bson_t *upsert = BCON_NEW("upsert", BCON_BOOL(true));
        mongoc_bulk_operation_t *bulk =
            mongoc_collection_create_bulk_operation_with_opts(coll, NULL);
        ok = true;
        for (size_t i = 0; ok && i < n; i++) {
            if (!dup[i])
                continue;
            bson_t *sel = BCON_NEW("_id", BCON_UTF8(ids[i]));
            ok = mongoc_bulk_operation_replace_one_with_opts(bulk, sel, docs[i], upsert, &e);
            if (!ok)
                lm_error_set(err, LM_ERR_INTERNAL, "the checkpoint record %s: %s", ids[i],
                             e.message);
            bson_destroy(sel);
        }
        if (ok) {
            ok = mongoc_bulk_operation_execute(bulk, &reply, &e) != 0;
            if (!ok)
                fail("write", &e, err);
            bson_destroy(&reply);
        }
        mongoc_bulk_operation_destroy(bulk);
        bson_destroy(upsert);
    }
    mongoc_collection_destroy(coll);
    free(ptrs);
    free(dup);
    return ok;
}

/* Frees what a put_many caller built: n ids and documents (either array may be NULL, an
 * entry NULL when building stopped early). */
static void free_many(size_t n, char **ids, bson_t **d)
{
    for (size_t i = 0; ids && d && i < n; i++) {
        bson_free(ids[i]);
        if (d[i])
            bson_destroy(d[i]);
    }
    free(ids);
    free(d);
}

bool lm_meta_save_plans(mongoc_client_t *c, const char *job_id, size_t n, const char *const *ns,
                        bson_t *const *ranges, lm_error_t *err)
{
    char **ids = calloc(n ? n : 1, sizeof *ids);
    bson_t **d = calloc(n ? n : 1, sizeof *d);
    bool ok = ids && d;
    if (!ok)
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; ok && i < n; i++) {
        ids[i] = bson_strdup_printf("plan:%s:%s", job_id, ns[i]);
        d[i] =
            BCON_NEW("kind", BCON_UTF8("plan"), "job", BCON_UTF8(job_id), "ns", BCON_UTF8(ns[i]));
        BSON_APPEND_ARRAY(d[i], "ranges", ranges[i]);
    }
    ok = ok && put_many(c, n, ids, d, err);
    free_many(n, ids, d);
    return ok;
}

bool lm_meta_mark_range_done(mongoc_client_t *c, const char *job_id, const char *ns, int range,
                             int64_t docs, lm_error_t *err)
{
    char id[LM_NS_MAX + 160];
    bson_snprintf(id, sizeof id, "done:%s:%s:%d", job_id, ns, range);
    bson_t *d = BCON_NEW("kind", BCON_UTF8("done"), "job", BCON_UTF8(job_id), "ns", BCON_UTF8(ns),
                         "range", BCON_INT32(range), "docs", BCON_INT64(docs));
    bool ok = put(c, id, d, err);
    bson_destroy(d);
    return ok;
}

bool lm_meta_mark_indexes_done(mongoc_client_t *c, const char *job_id, const char *ns,
                               lm_error_t *err)
{
    char id[LM_NS_MAX + 128];
    bson_snprintf(id, sizeof id, "idx:%s:%s", job_id, ns);
    bson_t *d =
        BCON_NEW("kind", BCON_UTF8("indexes"), "job", BCON_UTF8(job_id), "ns", BCON_UTF8(ns));
    bool ok = put(c, id, d, err);
    bson_destroy(d);
    return ok;
}

bool lm_meta_mark_ranges_done(mongoc_client_t *c, const char *job_id, size_t n,
                              const char *const *ns, const int *range, const int64_t *docs,
                              lm_error_t *err)
{
    char **ids = calloc(n ? n : 1, sizeof *ids);
    bson_t **d = calloc(n ? n : 1, sizeof *d);
    bool ok = ids && d;
    if (!ok)
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; ok && i < n; i++) {
        ids[i] = bson_strdup_printf("done:%s:%s:%d", job_id, ns[i], range[i]);
        d[i] = BCON_NEW("kind", BCON_UTF8("done"), "job", BCON_UTF8(job_id), "ns", BCON_UTF8(ns[i]),
                        "range", BCON_INT32(range[i]), "docs", BCON_INT64(docs[i]));
    }
    ok = ok && put_many(c, n, ids, d, err);
    free_many(n, ids, d);
    return ok;
}

bool lm_meta_mark_indexes_done_many(mongoc_client_t *c, const char *job_id, size_t n,
                                    const char *const *ns, lm_error_t *err)
{
    char **ids = calloc(n ? n : 1, sizeof *ids);
    bson_t **d = calloc(n ? n : 1, sizeof *d);
    bool ok = ids && d;
    if (!ok)
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; ok && i < n; i++) {
        ids[i] = bson_strdup_printf("idx:%s:%s", job_id, ns[i]);
        d[i] = BCON_NEW("kind", BCON_UTF8("indexes"), "job", BCON_UTF8(job_id), "ns",
                        BCON_UTF8(ns[i]));
    }
    ok = ok && put_many(c, n, ids, d, err);
    free_many(n, ids, d);
    return ok;
}

bool lm_meta_each_done(mongoc_client_t *c, const char *job_id, lm_meta_done_fn fn, void *ud,
                       lm_error_t *err)
{
    const bson_t *d;
    bson_iter_t it;
    bson_t *filter = BCON_NEW("job", BCON_UTF8(job_id), "kind", "{", "$in", "[", BCON_UTF8("done"),
                              BCON_UTF8("indexes"), "]", "}");
    mongoc_collection_t *coll = meta(c);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    while (mongoc_cursor_next(cur, &d)) {
        char ns[LM_NS_MAX] = "", kind[16] = "";
        int range = -1;
        int64_t docs = 0;
        copy_str((bson_t *)d, "ns", ns, sizeof ns);
        copy_str((bson_t *)d, "kind", kind, sizeof kind);
        if (strcmp(kind, "done") == 0 && bson_iter_init_find(&it, d, "range"))
            range = (int)bson_iter_as_int64(&it);
        if (bson_iter_init_find(&it, d, "docs"))
            docs = bson_iter_as_int64(&it);
        fn(ud, ns, range, docs);
    }
    return end_read(cur, coll, filter, err);
}
