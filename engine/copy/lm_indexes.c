/* lm_indexes: see lm_indexes.h. */
#include "lm_indexes.h"

#include <string.h>

#include "lm_log.h"
#include "lm_mongo_error.h"

/* The spec as createIndexes takes it: without "ns" (refused by newer servers) and "v"
 * (the target picks its own index version), nor SecantusDB's internal "entryFormat". */
static bson_t *clean_spec(const bson_t *spec)
{
    bson_t *out = bson_new();
    bson_copy_to_excluding_noinit(spec, out, "ns", "v", "entryFormat", NULL);
    return out;
}

static bool create(mongoc_collection_t *coll, const char *name, bson_t *specs_array,
                   bson_error_t *e)
{
    bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8(name));
    BSON_APPEND_ARRAY(cmd, "indexes", specs_array);
    bson_t reply;
    bool ok = mongoc_collection_write_command_with_opts(coll, cmd, NULL, &reply, e);
    bson_destroy(&reply);
    bson_destroy(cmd);
    return ok;
}

bool lm_indexes_build(mongoc_client_t *target, const lm_coll_info_t *c, lm_status_t *st,
                      int *refused, lm_error_t *err)
{
    bson_error_t e;
    bson_iter_t it;
    bson_t all = BSON_INITIALIZER;
    uint32_t n = 0;
    bool ok = true;

    *refused = 0;
    if (!bson_iter_init(&it, c->indexes))
        return true;
    while (bson_iter_next(&it)) {
        const uint8_t *data;
        uint32_t len;
        bson_t spec;
        char key[16];
        bson_iter_document(&it, &len, &data);
        bson_init_static(&spec, data, len);
        bson_t *clean = clean_spec(&spec);
        bson_snprintf(key, sizeof key, "%u", n++);
        BSON_APPEND_DOCUMENT(&all, key, clean);
        bson_destroy(clean);
    }
    if (n == 0) {
        bson_destroy(&all);
        return true;
    }
    mongoc_collection_t *coll = mongoc_client_get_collection(target, c->db, c->coll);
    if (create(coll, c->coll, &all, &e)) {
        lm_log_info(NULL, "%s: built %u indexes", c->ns, n);
        goto out;
    }
    if (lm_mongo_unauthorized(e.code)) {
        ok = lm_error_set(err, LM_ERR_AUTH,
                          "target refused createIndexes on %s: %s: the target user needs the "
                          "createIndex privilege",
                          c->ns, e.message);
        goto out;
    }
    /* one at a time, to name the ones the target refuses */
    bson_iter_init(&it, &all);
    while (bson_iter_next(&it)) {
        const uint8_t *data;
        uint32_t len;
        bson_t spec, one = BSON_INITIALIZER;
        bson_iter_t name;
        bson_iter_document(&it, &len, &data);
        bson_init_static(&spec, data, len);
        BSON_APPEND_DOCUMENT(&one, "0", &spec);
        if (!create(coll, c->coll, &one, &e)) {
            (*refused)++;
            lm_status_warn(st, "index '%s' on %s was not built: the target refused it: %s",
                           bson_iter_init_find(&name, &spec, "name") && BSON_ITER_HOLDS_UTF8(&name)
                               ? bson_iter_utf8(&name, NULL)
                               : "?",
                           c->ns, e.message);
        }
        bson_destroy(&one);
    }
out:
    mongoc_collection_destroy(coll);
    bson_destroy(&all);
    return ok;
}
