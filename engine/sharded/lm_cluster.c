/* lm_cluster: see lm_cluster.h. */
#include "lm_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lm_time.h"

/* ---- a shard's URI (pure) ---- */

/* Appends s[0..n) to out (pos advanced); false when it does not fit. */
static bool put(char *out, size_t outsz, size_t *pos, const char *s, size_t n)
{
    if (*pos + n + 1 > outsz)
        return false;
    memcpy(out + *pos, s, n);
    *pos += n;
    out[*pos] = '\0';
    return true;
}

static bool dropped_option(const char *opt, size_t n)
{
    const char *drop[] = {"replicaSet", "directConnection", "loadBalanced", "srvServiceName",
                          "srvMaxHosts"};
    const char *eq = memchr(opt, '=', n);
    size_t klen = eq ? (size_t)(eq - opt) : n;
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        if (strlen(drop[i]) == klen && strncasecmp(opt, drop[i], klen) == 0)
            return true;
    return false;
}

static bool names_tls(const char *opt, size_t n)
{
    return (n > 4 && strncasecmp(opt, "tls=", 4) == 0) ||
           (n > 4 && strncasecmp(opt, "ssl=", 4) == 0);
}

bool lm_cluster_shard_uri(const char *router_uri, const char *shard_host, char *out, size_t outsz,
                          lm_error_t *err)
{
    const char *rest;
    bool srv = false, has_tls = false;
    size_t pos = 0;
    if (outsz)
        out[0] = '\0';
    if (strncmp(router_uri, "mongodb://", 10) == 0) {
        rest = router_uri + 10;
    } else if (strncmp(router_uri, "mongodb+srv://", 14) == 0) {
        rest = router_uri + 14;
        srv = true;
    } else {
        return lm_error_set(err, LM_ERR_INVALID,
                            "the router URI must start with mongodb:// or mongodb+srv://");
    }
    const char *slash = strchr(shard_host, '/');
    if (!slash || slash == shard_host || !slash[1])
        return lm_error_set(err, LM_ERR_INVALID,
                            "shard host '%s' is not 'replicaSetName/host:port,...': every shard "
                            "must be a replica set (its oplog is read)",
                            shard_host);
    size_t auth_len = strcspn(rest, "/?");
    const char *at = NULL;
    for (size_t i = 0; i < auth_len; i++)
        if (rest[i] == '@')
            at = rest + i;
    const char *after = rest + auth_len; /* "", "/db?opts", "?opts" */
    const char *path = "", *opts = "";
    size_t path_len = 0;
    if (*after == '/') {
        path = after + 1;
        path_len = strcspn(path, "?");
        opts = path[path_len] == '?' ? path + path_len + 1 : "";
    } else if (*after == '?') {
        opts = after + 1;
    }
    bool ok = put(out, outsz, &pos, "mongodb://", 10);
    if (at)
        ok = ok && put(out, outsz, &pos, rest, (size_t)(at - rest) + 1);
    ok = ok && put(out, outsz, &pos, slash + 1, strlen(slash + 1)) &&
         put(out, outsz, &pos, "/", 1) && put(out, outsz, &pos, path, path_len) &&
         put(out, outsz, &pos, "?", 1);
    while (ok && *opts) {
        size_t n = strcspn(opts, "&;");
        if (n && !dropped_option(opts, n)) {
            has_tls = has_tls || names_tls(opts, n);
            ok = put(out, outsz, &pos, opts, n) && put(out, outsz, &pos, "&", 1);
        }
        opts += n + (opts[n] ? 1 : 0);
    }
    if (ok && srv && !has_tls)
        ok = put(out, outsz, &pos, "tls=true&", 9);
    ok = ok && put(out, outsz, &pos, "replicaSet=", 11) &&
         put(out, outsz, &pos, shard_host, (size_t)(slash - shard_host));
    if (!ok) {
        if (outsz)
            out[0] = '\0';
        return lm_error_set(err, LM_ERR_TOO_LARGE, "the URI of shard '%.*s' is too long",
                            (int)(slash - shard_host), shard_host);
    }
    return true;
}

/* ---- chunk-map difference (pure) ---- */

static const lm_chunk_t *find_min(const lm_chunk_t *c, size_t n, const bson_t *min)
{
    for (size_t i = 0; i < n; i++)
        if (bson_equal(c[i].min, min))
            return &c[i];
    return NULL;
}

bool lm_chunk_diff(const lm_chunk_t *src, size_t n_src, const lm_chunk_t *dst, size_t n_dst,
                   const char *(*map)(void *ud, const char *shard), void *ud, lm_chunk_diff_t *out)
{
    memset(out, 0, sizeof *out);
    out->splits = calloc(n_src ? n_src : 1, sizeof *out->splits);
    out->moves = calloc(n_src ? n_src : 1, sizeof *out->moves);
    out->move_to = calloc(n_src ? n_src : 1, sizeof *out->move_to);
    if (!out->splits || !out->moves || !out->move_to) {
        lm_chunk_diff_cleanup(out);
        return false;
    }
    for (size_t i = 0; i < n_src; i++) {
        const char *to = map(ud, src[i].shard);
        const lm_chunk_t *t = find_min(dst, n_dst, src[i].min);
        if (!to) {
            out->n_unmapped++;
            continue;
        }
        if (!t) {
            out->splits[out->n_splits++] = &src[i];
            continue;
        }
        if (strcmp(t->shard, to) != 0) {
            out->moves[out->n_moves] = &src[i];
            out->move_to[out->n_moves++] = to;
        }
    }
    for (size_t i = 0; i < n_dst; i++)
        if (!find_min(src, n_src, dst[i].min))
            out->n_extra++;
    return true;
}

void lm_chunk_diff_cleanup(lm_chunk_diff_t *d)
{
    free(d->splits);
    free(d->moves);
    free(d->move_to);
    memset(d, 0, sizeof *d);
}

/* ---- talking to the router ---- */

/* Runs cmd (destroyed) on db; false with the server's message prefixed by what. */
static bool command(mongoc_client_t *c, const char *db, bson_t *cmd, bson_t *reply,
                    const char *what, lm_error_t *err)
{
    bson_error_t be;
    bson_t local;
    bool ok = mongoc_client_command_simple(c, db, cmd, NULL, reply ? reply : &local, &be);
    bson_destroy(cmd);
    if (!reply)
        bson_destroy(&local);
    if (!ok)
        return lm_error_set(err, LM_ERR_SERVER, "%s: %s (code %u)", what, be.message, be.code);
    return true;
}

bool lm_cluster_is_router(mongoc_client_t *c, bool *is_router, lm_error_t *err)
{
    bson_t reply;
    bson_iter_t it;
    *is_router = false;
    if (!command(c, "admin", BCON_NEW("hello", BCON_INT32(1)), &reply, "hello", err)) {
        bson_destroy(&reply);
        return false;
    }
    *is_router = bson_iter_init_find(&it, &reply, "msg") && BSON_ITER_HOLDS_UTF8(&it) &&
                 strcmp(bson_iter_utf8(&it, NULL), "isdbgrid") == 0;
    bson_destroy(&reply);
    return true;
}

static void copy_str(char *dst, size_t dstsz, const bson_t *doc, const char *key)
{
    bson_iter_t it;
    dst[0] = '\0';
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
        snprintf(dst, dstsz, "%s", bson_iter_utf8(&it, NULL));
}

static bson_t *copy_doc(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    uint32_t len;
    const uint8_t *data;
    bson_t sub;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return NULL;
    bson_iter_document(&it, &len, &data);
    if (!bson_init_static(&sub, data, len))
        return NULL;
    return bson_copy(&sub);
}

/* Every document of config.<coll> matching filter (destroyed) into docs (bson_copy'd). */
static bool read_config(mongoc_client_t *c, const char *coll, bson_t *filter, bson_t ***docs,
                        size_t *n, lm_error_t *err)
{
    mongoc_collection_t *col = mongoc_client_get_collection(c, "config", coll);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, filter, NULL, NULL);
    const bson_t *d;
    bson_error_t be;
    size_t cap = 0;
    bool ok = true;
    *docs = NULL;
    *n = 0;
    while (ok && mongoc_cursor_next(cur, &d)) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            bson_t **grown = realloc(*docs, cap * sizeof **docs);
            if (!grown) {
                ok = lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
                break;
            }
            *docs = grown;
        }
        (*docs)[(*n)++] = bson_copy(d);
    }
    if (ok && mongoc_cursor_error(cur, &be))
        ok = lm_error_set(err, LM_ERR_SERVER, "reading config.%s through the router: %s", coll,
                          be.message);
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
    bson_destroy(filter);
    if (!ok) {
        for (size_t i = 0; i < *n; i++)
            bson_destroy((*docs)[i]);
        free(*docs);
        *docs = NULL;
        *n = 0;
    }
    return ok;
}

static void free_docs(bson_t **docs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bson_destroy(docs[i]);
    free(docs);
}

static bool load_shards(mongoc_client_t *router, lm_cluster_t *out, lm_error_t *err)
{
    bson_t reply;
    bson_iter_t it, arr;
    if (!command(router, "admin", BCON_NEW("listShards", BCON_INT32(1)), &reply, "listShards",
                 err)) {
        bson_destroy(&reply);
        return false;
    }
    size_t cap = 0;
    bool ok = bson_iter_init_find(&it, &reply, "shards") && BSON_ITER_HOLDS_ARRAY(&it) &&
              bson_iter_recurse(&it, &arr);
    if (!ok)
        lm_error_set(err, LM_ERR_SERVER, "listShards answered without a shards array");
    while (ok && bson_iter_next(&arr)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&arr))
            continue;
        uint32_t len;
        const uint8_t *data;
        bson_t s;
        bson_iter_document(&arr, &len, &data);
        if (!bson_init_static(&s, data, len))
            continue;
        if (out->n_shards == cap) {
            cap = cap ? cap * 2 : 8;
            lm_shard_info_t *g = realloc(out->shards, cap * sizeof *g);
            if (!g) {
                ok = lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
                break;
            }
            out->shards = g;
        }
        lm_shard_info_t *sh = &out->shards[out->n_shards];
        copy_str(sh->name, sizeof sh->name, &s, "_id");
        copy_str(sh->host, sizeof sh->host, &s, "host");
        if (sh->name[0] && sh->host[0])
            out->n_shards++;
    }
    bson_destroy(&reply);
    if (ok && out->n_shards == 0)
        ok = lm_error_set(err, LM_ERR_SERVER, "listShards names no shard");
    return ok;
}

static bool load_chunks(mongoc_client_t *router, const bson_t *coll_doc, lm_cluster_coll_t *cc,
                        lm_error_t *err)
{
    bson_iter_t it;
    bson_t *filter = bson_new();
    /* 5.0+: chunks name their collection by uuid; older ones by ns */
    if (bson_iter_init_find(&it, coll_doc, "uuid"))
        bson_append_iter(filter, "uuid", -1, &it);
    else
        BSON_APPEND_UTF8(filter, "ns", cc->ns);
    bson_t **docs;
    size_t n;
    if (!read_config(router, "chunks", filter, &docs, &n, err))
        return false;
    cc->chunks = calloc(n ? n : 1, sizeof *cc->chunks);
    if (!cc->chunks) {
        free_docs(docs, n);
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        lm_chunk_t *c = &cc->chunks[cc->n_chunks];
        c->min = copy_doc(docs[i], "min");
        c->max = copy_doc(docs[i], "max");
        copy_str(c->shard, sizeof c->shard, docs[i], "shard");
        if (c->min && c->max && c->shard[0]) {
            cc->n_chunks++;
        } else {
            if (c->min)
                bson_destroy(c->min);
            if (c->max)
                bson_destroy(c->max);
            c->min = c->max = NULL;
        }
    }
    free_docs(docs, n);
    return true;
}

bool lm_cluster_load(mongoc_client_t *router, lm_cluster_t *out, lm_error_t *err)
{
    memset(out, 0, sizeof *out);
    bson_t **docs = NULL;
    size_t n = 0;
    if (!load_shards(router, out, err))
        goto fail;
    if (!read_config(router, "databases", bson_new(), &docs, &n, err))
        goto fail;
    out->dbs = calloc(n ? n : 1, sizeof *out->dbs);
    if (!out->dbs) {
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        lm_cluster_db_t *d = &out->dbs[out->n_dbs];
        copy_str(d->name, sizeof d->name, docs[i], "_id");
        copy_str(d->primary, sizeof d->primary, docs[i], "primary");
        if (d->name[0] && !lm_ns_db_is_internal(d->name))
            out->n_dbs++;
    }
    free_docs(docs, n);
    docs = NULL;
    if (!read_config(router, "collections", bson_new(), &docs, &n, err))
        goto fail;
    out->colls = calloc(n ? n : 1, sizeof *out->colls);
    if (!out->colls) {
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        bson_iter_t it;
        lm_cluster_coll_t *cc = &out->colls[out->n_colls];
        char db[128], coll[LM_NS_MAX];
        if (bson_iter_init_find(&it, docs[i], "dropped") && bson_iter_as_bool(&it))
            continue; /* pre-5.0 clusters keep dropped collections with this flag */
        copy_str(cc->ns, sizeof cc->ns, docs[i], "_id");
        if (!lm_ns_split(cc->ns, db, sizeof db, coll, sizeof coll) || lm_ns_db_is_internal(db))
            continue;
        cc->key = copy_doc(docs[i], "key");
        cc->unique = bson_iter_init_find(&it, docs[i], "unique") && bson_iter_as_bool(&it);
        if (!cc->key)
            continue;
        out->n_colls++;
        if (!load_chunks(router, docs[i], cc, err))
            goto fail;
    }
    free_docs(docs, n);
    return true;
fail:
    free_docs(docs, n);
    lm_cluster_cleanup(out);
    return false;
}

void lm_cluster_cleanup(lm_cluster_t *c)
{
    for (size_t i = 0; i < c->n_colls; i++) {
        lm_cluster_coll_t *cc = &c->colls[i];
        if (cc->key)
            bson_destroy(cc->key);
        for (size_t j = 0; j < cc->n_chunks; j++) {
            bson_destroy(cc->chunks[j].min);
            bson_destroy(cc->chunks[j].max);
        }
        free(cc->chunks);
    }
    free(c->colls);
    free(c->dbs);
    free(c->shards);
    memset(c, 0, sizeof *c);
}

int lm_cluster_shard_index(const lm_cluster_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_shards; i++)
        if (strcmp(c->shards[i].name, name) == 0)
            return (int)i;
    return -1;
}

const lm_cluster_db_t *lm_cluster_find_db(const lm_cluster_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_dbs; i++)
        if (strcmp(c->dbs[i].name, name) == 0)
            return &c->dbs[i];
    return NULL;
}

const lm_cluster_coll_t *lm_cluster_find_coll(const lm_cluster_t *c, const char *ns)
{
    for (size_t i = 0; i < c->n_colls; i++)
        if (strcmp(c->colls[i].ns, ns) == 0)
            return &c->colls[i];
    return NULL;
}

/* ---- the balancer ---- */

bool lm_balancer_status(mongoc_client_t *router, char *mode, size_t modesz, bool *in_round,
                        lm_error_t *err)
{
    bson_t reply;
    bson_iter_t it;
    bool ok = command(router, "admin", BCON_NEW("balancerStatus", BCON_INT32(1)), &reply,
                      "balancerStatus", err);
    if (ok) {
        copy_str(mode, modesz, &reply, "mode");
        *in_round = bson_iter_init_find(&it, &reply, "inBalancerRound") && bson_iter_as_bool(&it);
    }
    bson_destroy(&reply);
    return ok;
}

bool lm_balancer_stop(mongoc_client_t *router, int64_t max_ms, lm_error_t *err)
{
    int64_t deadline = lm_time_mono_ms() + max_ms;
    if (!command(router, "admin",
                 BCON_NEW("balancerStop", BCON_INT32(1), "maxTimeMS", BCON_INT64(max_ms)), NULL,
                 "balancerStop", err))
        return false;
    for (;;) { /* balancerStop waits for the round already; a mongos older than 4.4 did not */
        char mode[32];
        bool in_round;
        if (!lm_balancer_status(router, mode, sizeof mode, &in_round, err))
            return false;
        if (!in_round)
            return true;
        if (lm_time_mono_ms() > deadline)
            return lm_error_set(
                err, LM_ERR_TIMEOUT,
                "the balancer is still in a round after %lld ms: wait for it to end "
                "and start the migration again",
                (long long)max_ms);
        lm_time_sleep_ms(500, NULL);
    }
}

bool lm_balancer_start(mongoc_client_t *router, lm_error_t *err)
{
    return command(router, "admin", BCON_NEW("balancerStart", BCON_INT32(1)), NULL, "balancerStart",
                   err);
}

/* ---- making the target's metadata match ---- */

bool lm_cluster_enable_sharding(mongoc_client_t *router, const char *db, const char *primary,
                                lm_error_t *err)
{
    char what[300];
    snprintf(what, sizeof what, "enableSharding %s (primary shard %s)", db, primary);
    return command(router, "admin",
                   BCON_NEW("enableSharding", BCON_UTF8(db), "primaryShard", BCON_UTF8(primary)),
                   NULL, what, err);
}

bool lm_cluster_shard_collection(mongoc_client_t *router, const char *ns, const bson_t *key,
                                 bool unique, lm_error_t *err)
{
    char what[LM_NS_MAX + 40];
    snprintf(what, sizeof what, "shardCollection %s", ns);
    return command(router, "admin",
                   BCON_NEW("shardCollection", BCON_UTF8(ns), "key", BCON_DOCUMENT(key), "unique",
                            BCON_BOOL(unique)),
                   NULL, what, err);
}

bool lm_cluster_split(mongoc_client_t *router, const char *ns, const bson_t *middle,
                      lm_error_t *err)
{
    char what[LM_NS_MAX + 40];
    snprintf(what, sizeof what, "split %s", ns);
    return command(router, "admin",
                   BCON_NEW("split", BCON_UTF8(ns), "middle", BCON_DOCUMENT(middle)), NULL, what,
                   err);
}

bool lm_cluster_move_range(mongoc_client_t *router, const char *ns, const bson_t *min,
                           const bson_t *max, const char *to, lm_error_t *err)
{
    char what[LM_NS_MAX + 200];
    snprintf(what, sizeof what, "moveRange %s to %s", ns, to);
    return command(router, "admin",
                   BCON_NEW("moveRange", BCON_UTF8(ns), "min", BCON_DOCUMENT(min), "max",
                            BCON_DOCUMENT(max), "toShard", BCON_UTF8(to)),
                   NULL, what, err);
}
