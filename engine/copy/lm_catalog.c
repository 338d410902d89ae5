/* lm_catalog: see lm_catalog.h. */
#include "lm_catalog.h"

#include <stdlib.h>
#include <string.h>

#include "lm_log.h"
#include "lm_mongo_error.h"

#define MAX_COLLECTIONS 100000

bool lm_coll_is_view(const lm_coll_info_t *c)
{
    return strcmp(c->type, "view") == 0;
}

static bool grow(lm_catalog_t *cat, size_t *cap, lm_error_t *err)
{
    if (cat->n < *cap)
        return true;
    if (cat->n >= MAX_COLLECTIONS)
        return lm_error_set(err, LM_ERR_TOO_LARGE, "source has more than %d collections",
                            MAX_COLLECTIONS);
    size_t ncap = *cap ? *cap * 2 : 64;
    lm_coll_info_t *items = realloc(cat->items, ncap * sizeof *items);
    if (!items)
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    cat->items = items;
    *cap = ncap;
    return true;
}

static void describe(const char *what, const bson_error_t *e, lm_error_t *err)
{
    lm_error_set(err, lm_mongo_error_class(e->code), "source: %s failed: %s%s", what, e->message,
                 lm_mongo_unauthorized(e->code)
                     ? ": the source user needs read access to every database (readAnyDatabase)"
                     : "");
}

/* Index specs but _id_, as {"0": spec, ...}. */
static bool load_indexes(mongoc_collection_t *coll, lm_coll_info_t *c, lm_error_t *err)
{
    bson_error_t e;
    const bson_t *spec;
    bson_iter_t it;
    uint32_t i = 0;
    mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(coll, NULL);
    while (mongoc_cursor_next(cur, &spec)) {
        if (bson_iter_init_find(&it, spec, "name") && BSON_ITER_HOLDS_UTF8(&it) &&
            strcmp(bson_iter_utf8(&it, NULL), "_id_") == 0)
            continue;
        char key[16];
        bson_snprintf(key, sizeof key, "%u", i++);
        BSON_APPEND_DOCUMENT(c->indexes, key, spec);
    }
    bool ok = !mongoc_cursor_error(cur, &e);
    if (!ok) {
        char what[LM_NS_MAX + 32];
        bson_snprintf(what, sizeof what, "listIndexes on %s", c->ns);
        describe(what, &e, err);
    }
    mongoc_cursor_destroy(cur);
    return ok;
}

void lm_catalog_estimate(mongoc_client_t *src, lm_coll_info_t *c)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(src, c->db, c->coll);
    int64_t n = mongoc_collection_estimated_document_count(coll, NULL, NULL, NULL, NULL);
    mongoc_collection_destroy(coll);
    c->est_docs = n > 0 ? n : 0;
}

static bool load_db(mongoc_client_t *src, const lm_job_t *job, const char *dbname,
                    bool with_indexes, lm_catalog_t *cat, size_t *cap, lm_error_t *err)
{
    bson_error_t e;
    const bson_t *d;
    bson_iter_t it;
    bool ok = true;
    mongoc_database_t *db = mongoc_client_get_database(src, dbname);
    mongoc_cursor_t *cur = mongoc_database_find_collections_with_opts(db, NULL);

    while (ok && mongoc_cursor_next(cur, &d)) {
        const char *name = bson_iter_init_find(&it, d, "name") && BSON_ITER_HOLDS_UTF8(&it)
                               ? bson_iter_utf8(&it, NULL)
                               : NULL;
        if (!name || !lm_ns_selected(&job->include, &job->exclude, dbname, name))
            continue;
        if (strlen(dbname) + strlen(name) + 2 > LM_NS_MAX) {
            lm_log_warn(NULL, "skipping %s.%s: namespace longer than %d bytes", dbname, name,
                        LM_NS_MAX - 1);
            continue;
        }
        if (!(ok = grow(cat, cap, err)))
            break;
        lm_coll_info_t *c = &cat->items[cat->n];
        memset(c, 0, sizeof *c);
        c->options = bson_new();
        c->indexes = bson_new();
        c->est_docs = -1;
        cat->n++;
        bson_snprintf(c->db, sizeof c->db, "%s", dbname);
        bson_snprintf(c->coll, sizeof c->coll, "%s", name);
        bson_snprintf(c->ns, sizeof c->ns, "%s.%s", dbname, name);
        bson_snprintf(c->type, sizeof c->type, "%s",
                      bson_iter_init_find(&it, d, "type") && BSON_ITER_HOLDS_UTF8(&it)
                          ? bson_iter_utf8(&it, NULL)
                          : "collection");
        if (bson_iter_init_find(&it, d, "options") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            const uint8_t *data;
            uint32_t len;
            bson_t opts;
            bson_iter_document(&it, &len, &data);
            if (bson_init_static(&opts, data, len)) {
                bson_copy_to_excluding_noinit(&opts, c->options, "uuid", NULL);
                bson_iter_t ci;
                c->has_collation = bson_iter_init_find(&ci, &opts, "collation");
            }
        }
        if (lm_coll_is_view(c) || !with_indexes)
            continue;
        mongoc_collection_t *coll = mongoc_database_get_collection(db, name);
        ok = load_indexes(coll, c, err);
        mongoc_collection_destroy(coll);
    }
    if (ok && mongoc_cursor_error(cur, &e)) {
        char what[200];
        bson_snprintf(what, sizeof what, "listCollections on %s", dbname);
        describe(what, &e, err);
        ok = false;
    }
    mongoc_cursor_destroy(cur);
    mongoc_database_destroy(db);
    return ok;
}

/* Collections before views (views are created after their sources), then by name. */
static int by_kind_then_name(const void *a, const void *b)
{
    const lm_coll_info_t *x = a, *y = b;
    if (lm_coll_is_view(x) != lm_coll_is_view(y))
        return lm_coll_is_view(x) ? 1 : -1;
    return strcmp(x->ns, y->ns);
}

bool lm_catalog_load(mongoc_client_t *src, const lm_job_t *job, lm_catalog_t *cat, lm_error_t *err)
{
    return lm_catalog_load_ex(src, job, true, cat, err);
}

bool lm_catalog_load_indexes(mongoc_client_t *src, lm_catalog_t *cat, const atomic_bool *stop,
                             lm_error_t *err)
{
    for (size_t i = 0; i < cat->n; i++) {
        lm_coll_info_t *c = &cat->items[i];
        if (stop && atomic_load(stop))
            return lm_error_set(err, LM_ERR_CANCELLED, "stopped while reading index specs");
        if (lm_coll_is_view(c))
            continue;
        mongoc_collection_t *coll = mongoc_client_get_collection(src, c->db, c->coll);
        bool ok = load_indexes(coll, c, err);
        mongoc_collection_destroy(coll);
        if (!ok)
            return false;
    }
    return true;
}

bool lm_catalog_load_ex(mongoc_client_t *src, const lm_job_t *job, bool with_indexes,
                        lm_catalog_t *cat, lm_error_t *err)
{
    bson_error_t e;
    size_t cap = 0;
    bool ok = true;
    memset(cat, 0, sizeof *cat);
    /* libmongoc asks for nameOnly itself; a second one makes FerretDB drop the connection */
    bson_t *opts = bson_new();
    char **names = mongoc_client_get_database_names_with_opts(src, opts, &e);
    bson_destroy(opts);
    if (!names) {
        describe("listDatabases", &e, err);
        return false;
    }
    for (size_t i = 0; ok && names[i]; i++)
        if (lm_ns_db_selected(&job->include, names[i]))
            ok = load_db(src, job, names[i], with_indexes, cat, &cap, err);
    bson_strfreev(names);
    if (ok && cat->n)
        qsort(cat->items, cat->n, sizeof cat->items[0], by_kind_then_name);
    return ok;
}

void lm_catalog_cleanup(lm_catalog_t *cat)
{
    for (size_t i = 0; i < cat->n; i++) {
        bson_destroy(cat->items[i].options);
        bson_destroy(cat->items[i].indexes);
    }
    free(cat->items);
    memset(cat, 0, sizeof *cat);
}

bool lm_catalog_target_has(mongoc_client_t *target, const lm_coll_info_t *c)
{
    mongoc_database_t *db = mongoc_client_get_database(target, c->db);
    bson_t *opts =
        BCON_NEW("filter", "{", "name", BCON_UTF8(c->coll), "}", "nameOnly", BCON_BOOL(true));
    mongoc_cursor_t *cur = mongoc_database_find_collections_with_opts(db, opts);
    const bson_t *d;
    bool has = mongoc_cursor_next(cur, &d);
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    mongoc_database_destroy(db);
    return has;
}
