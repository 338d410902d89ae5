/* lm_engine: see lm_engine.h. */
#include "lm_engine.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_catalog.h"
#include "lm_conn.h"
#include "lm_copy.h"
#include "lm_encode.h"
#include "lm_fs.h"
#include "lm_indexes.h"
#include "lm_json.h"
#include "lm_log.h"
#include "lm_meta.h"
#include "lm_mongo_error.h"
#include "lm_plan.h"
#include "lm_stream.h"
#include "lm_time.h"
#include "lm_tune.h"

struct lm_engine {
    lm_engine_opts_t o;
    const lm_job_t *job; /* o.job */
    lm_status_t *st;     /* o.status */
    const atomic_bool *stop;
    mongoc_client_pool_t *src_pool, *dst_pool; /* o.source / o.target, or the engine's own */
    mongoc_client_t *src, *dst;                /* for the engine's own commands */
    lm_conn_caps_t src_caps;                   /* what this job's source refused */
    lm_conn_monitor_t src_mon, dst_mon;        /* the engine's own pools' servers watched */
    char job_id[64];
    char src_hosts[256], dst_hosts[256];
    lm_catalog_t cat;
    lm_meta_job_t meta;
    lm_copy_task_t *tasks;
    size_t n_tasks;
    bson_t **plans; /* per catalog entry */
    lm_error_t err;
    int indexes_refused;
    int options_missing;
    bool streamed; /* the job streamed changes (not a copy-only job) */
    bool prepared, already_complete, resume_streaming;
    /* finished ranges not yet recorded on the target (on_task_done): recorded DONE_BATCH at a
     * time or DONE_FLUSH_MS after the oldest, and all at the end of the copy */
    pthread_mutex_t done_mu;
    lm_copy_task_t *done_buf[64];
    size_t n_done;
    int64_t done_first_ms;
    /* the index specs are read by their own thread while the preparation and the copy run
     * (index_loader_main); the index phase joins it */
    pthread_t idx_thread;
    bool idx_started, idx_ok;
    atomic_bool idx_stop;
    lm_error_t idx_err;
};

typedef struct lm_engine engine_t;

static bool join_index_loader(engine_t *e);

/* ---- identity ---- */

/* Reads or creates <state_dir>/job.json; refuses a state dir that belongs to another pair. */
static bool load_identity(engine_t *e)
{
    char path[1024], *text = NULL;
    lm_error_t rerr;
    if (e->o.checkpoint_key) { /* the caller owns the identity */
        if (!*e->o.checkpoint_key || strlen(e->o.checkpoint_key) >= sizeof e->job_id)
            return lm_error_set(&e->err, LM_ERR_INVALID, "checkpoint key must be 1-%zu bytes",
                                sizeof e->job_id - 1);
        snprintf(e->job_id, sizeof e->job_id, "%s", e->o.checkpoint_key);
        return true;
    }
    snprintf(path, sizeof path, "%s/job.json", e->job->state_dir);
    if (!lm_fs_mkdir_p(e->job->state_dir, 0700, &e->err))
        return false;
    if (lm_fs_read_file(path, 65536, &text, NULL, &rerr)) {
        lm_json_val_t *v = lm_json_parse(text, strlen(text), 0, 0, &e->err);
        const char *id = NULL, *src = NULL, *dst = NULL;
        bool ok = v && lm_json_get_str(v, "jobId", true, 60, &id, &e->err) &&
                  lm_json_get_str(v, "source", true, 255, &src, &e->err) &&
                  lm_json_get_str(v, "target", true, 255, &dst, &e->err);
        if (ok && (strcmp(src, e->src_hosts) != 0 || strcmp(dst, e->dst_hosts) != 0))
            ok = lm_error_set(
                &e->err, LM_ERR_INVALID,
                "%s belongs to a job from %s to %s: use another --state-dir for %s -> %s", path,
                src, dst, e->src_hosts, e->dst_hosts);
        if (ok)
            snprintf(e->job_id, sizeof e->job_id, "%s", id);
        else
            lm_error_prefix(&e->err, "%s", path);
        lm_json_free(v);
        free(text);
        return ok;
    }
    if (rerr.code != LM_ERR_NOT_FOUND) {
        e->err = rerr;
        return false;
    }
    if (e->job->job_id[0])
        snprintf(e->job_id, sizeof e->job_id, "%s", e->job->job_id);
    else if (!lm_random_hex(e->job_id, 12))
        return lm_error_set(&e->err, LM_ERR_IO, "no randomness for a job id");
    lm_json_writer_t *w = lm_json_writer_new(true);
    lm_json_w_map_open(w);
    lm_json_w_kv_str(w, "jobId", e->job_id);
    lm_json_w_kv_str(w, "source", e->src_hosts);
    lm_json_w_kv_str(w, "target", e->dst_hosts);
    lm_json_w_map_close(w);
    size_t len;
    const char *doc = lm_json_writer_result(w, &len, &e->err);
    bool ok = doc && lm_fs_write_atomic(path, doc, len, 0600, &e->err);
    lm_json_writer_destroy(w);
    return ok;
}

/* ---- connecting ---- */

/* The side's pool: the caller's (given) or a new one; hosts gets its host list. */
/* A watched server became unreachable or came back: an event of the fault history. */
static void on_conn_event(void *ud, const char *kind, const char *message)
{
    engine_t *e = ud;
    if (e->st)
        lm_status_event(e->st, kind, "%s", message);
    else
        lm_log_write(LM_LOG_WARN, NULL, "%s", message);
}

static mongoc_client_pool_t *open_side(engine_t *e, const lm_endpoint_t *ep, const char *side,
                                       char *hosts, size_t hostsz, mongoc_client_pool_t *given)
{
    lm_conn_opts_t o = lm_conn_opts_for(e->job, ep, side, NULL, NULL);
    bool source = strcmp(side, "source") == 0;
    o.monitor = source ? &e->src_mon : &e->dst_mon;
    if (!source) { /* a daemon's part: the target's connections send nothing past the lease */
        o.lease_ok_ms = e->job->lease_ok_ms;
        o.lease_ms = e->job->lease_ms;
    }
    mongoc_uri_t *uri = lm_conn_uri_new(&o, &e->err);
    if (!uri)
        return NULL;
    lm_conn_hosts(uri, hosts, hostsz);
    mongoc_uri_destroy(uri);
    if (given)
        return given;
    mongoc_client_pool_t *pool = lm_conn_pool_new(&o, &e->err);
    if (pool) {
        /* copy_workers 0: the copy tunes itself up to LM_TUNE_AUTO_MAX */
        int64_t copy = e->job->copy_workers > 0 ? e->job->copy_workers : LM_TUNE_AUTO_MAX;
        mongoc_client_pool_max_size(
            pool, (uint32_t)((copy > e->job->apply_workers ? copy : e->job->apply_workers) + 6));
    }
    return pool;
}

/* ---- pinning the start ---- */

static bool pin_start(engine_t *e)
{
    bson_t reply;
    bson_iter_t it;
    bson_error_t be;
    lm_optime_t newest = {0, 0};
    int64_t wall;
    /* The newest oplog entry: a position the stream can resume from exactly (hello's
     * lastWrite may name a time with no entry of its own). */
    lm_stream_oplog_edge(e->src, -1, &newest, &wall, &be);
    uint32_t t = newest.t, i = newest.i;
    if (t == 0) { /* no readable oplog (change streams only): the latest write's time */
        bson_t *cmd = BCON_NEW("hello", BCON_INT32(1));
        if (mongoc_client_command_simple(e->src, "admin", cmd, NULL, &reply, NULL) &&
            bson_iter_init(&it, &reply) &&
            bson_iter_find_descendant(&it, "lastWrite.opTime.ts", &it) &&
            BSON_ITER_HOLDS_TIMESTAMP(&it))
            bson_iter_timestamp(&it, &t, &i);
        bson_destroy(&reply);
        bson_destroy(cmd);
    }
    if (t == 0)
        lm_status_warn(
            e->st,
            "source %s reports no optime (no lastWrite, no readable oplog): the copy works, "
            "but changes made during it cannot be replayed from this source",
            e->src_hosts);
    e->meta.start_ts = t;
    e->meta.start_inc = i;
    lm_status_set_start(e->st, t, i);
    lm_log_info(NULL, "pinned the source's start at Timestamp(%u, %u)", t, i);
    return true;
}

/* ---- target namespaces ---- */

/* Whether c's collection on the target holds no document (false when it cannot say). */
static bool target_empty(engine_t *e, const lm_coll_info_t *c)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(e->dst, c->db, c->coll);
    bson_t filter = BSON_INITIALIZER;
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
    bson_error_t be;
    int64_t n = mongoc_collection_count_documents(coll, &filter, opts, NULL, NULL, &be);
    bson_destroy(opts);
    bson_destroy(&filter);
    mongoc_collection_destroy(coll);
    return n == 0;
}

static bool check_conflicts(engine_t *e)
{
    lm_strbuf_t list;
    size_t n = 0;
    lm_strbuf_init(&list, 4096);
    for (size_t i = 0; i < e->cat.n; i++) {
        const lm_coll_info_t *c = &e->cat.items[i];
        if (!lm_catalog_target_has(e->dst, c))
            continue;
        if (e->o.existing_empty_ok && target_empty(e, c)) {
            lm_log_info(NULL, "%s exists on the target, empty (the sharded metadata step made it)",
                        c->ns);
            continue;
        }
        if (e->job->drop_target) {
            bson_error_t be;
            mongoc_collection_t *coll = mongoc_client_get_collection(e->dst, c->db, c->coll);
            bool ok = mongoc_collection_drop(coll, &be);
            mongoc_collection_destroy(coll);
            if (!ok) {
                lm_strbuf_cleanup(&list);
                return lm_error_set(&e->err, LM_ERR_SERVER, "target: cannot drop %s: %s", c->ns,
                                    be.message);
            }
            lm_log_warn(NULL, "dropped %s on the target (--drop-target)", c->ns);
            continue;
        }
        if (n < 20)
            lm_strbuf_appendf(&list, "%s%s", n ? ", " : "", c->ns);
        n++;
    }
    if (n > 20)
        lm_strbuf_appendf(&list, " and %zu more", n - 20);
    bool ok = n == 0 ||
              lm_error_set(&e->err, LM_ERR_INVALID,
                           "the target already holds %zu of the namespaces to copy: %s: drop them, "
                           "exclude them, or run with --drop-target",
                           n, lm_strbuf_str(&list));
    lm_strbuf_cleanup(&list);
    return ok;
}

/* Top-level option names the target did not keep are warnings (FerretDB ignores some).
 * d is the target's listCollections document of c. */
static void compare_options_with(engine_t *e, const lm_coll_info_t *c, const bson_t *d)
{
    bson_iter_t it, want, got;
    if (bson_iter_init_find(&it, d, "options") && bson_iter_recurse(&it, &got) &&
        bson_iter_init(&want, c->options)) {
        const uint8_t *data;
        uint32_t len;
        bson_t target_opts;
        bson_iter_document(&it, &len, &data);
        bson_init_static(&target_opts, data, len);
        while (bson_iter_next(&want)) {
            bson_iter_t f;
            if (!bson_iter_init_find(&f, &target_opts, bson_iter_key(&want))) {
                e->options_missing++;
                lm_status_warn(e->st, "%s: the target did not keep the collection option '%s'",
                               c->ns, bson_iter_key(&want));
            }
        }
    }
}

/* One namespace's options, with its own listCollections (views, created one by one). */
static void compare_options(engine_t *e, const lm_coll_info_t *c)
{
    mongoc_database_t *db = mongoc_client_get_database(e->dst, c->db);
    bson_t *opts = BCON_NEW("filter", "{", "name", BCON_UTF8(c->coll), "}");
    mongoc_cursor_t *cur = mongoc_database_find_collections_with_opts(db, opts);
    const bson_t *d;
    if (mongoc_cursor_next(cur, &d))
        compare_options_with(e, c, d);
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    mongoc_database_destroy(db);
}

/* create with the source's options; an existing namespace (a resumed plan) is fine. With
 * created NULL the options the target kept are compared at once; else *created tells whether
 * this call made the collection, and the caller compares later (compare_created_options). */
static bool create_on_target(engine_t *e, const lm_coll_info_t *c, bool *created)
{
    bson_error_t be;
    bson_t reply;
    bson_t *cmd = BCON_NEW("create", BCON_UTF8(c->coll));
    bson_concat(cmd, c->options);
    bool ok = mongoc_client_write_command_with_opts(e->dst, c->db, cmd, NULL, &reply, &be);
    bson_destroy(&reply);
    bson_destroy(cmd);
    if (!ok && !lm_mongo_namespace_exists(be.code)) {
        if (lm_coll_is_view(c)) {
            lm_status_warn(e->st, "view %s was not created: the target refused it: %s", c->ns,
                           be.message);
            return true;
        }
        return lm_error_set(&e->err, lm_mongo_error_class(be.code),
                            "target refused to create %s with the source's options: %s", c->ns,
                            be.message);
    }
    if (created)
        *created = ok;
    else if (ok)
        compare_options(e, c);
    return true;
}

/* ---- planning and resuming ---- */

/* Catalog positions sorted by namespace, to find a namespace named by the target. */
typedef struct {
    const char *ns;
    size_t pos;
} ns_entry_t;

typedef struct {
    ns_entry_t *v;
    size_t n;
} ns_index_t;

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const ns_entry_t *)a)->ns, ((const ns_entry_t *)b)->ns);
}

static bool ns_index_build(ns_index_t *x, const lm_catalog_t *cat)
{
    x->n = cat->n;
    x->v = calloc(cat->n ? cat->n : 1, sizeof *x->v);
    if (!x->v)
        return false;
    for (size_t i = 0; i < cat->n; i++)
        x->v[i] = (ns_entry_t){cat->items[i].ns, i};
    qsort(x->v, x->n, sizeof *x->v, cmp_entry);
    return true;
}

/* The catalog position of ns, or -1. */
static ptrdiff_t ns_index_find(const ns_index_t *x, const char *ns)
{
    size_t lo = 0, hi = x->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(x->v[mid].ns, ns);
        if (c == 0)
            return (ptrdiff_t)x->v[mid].pos;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

typedef struct {
    engine_t *e;
    ns_index_t *ix;
} saved_plan_ctx_t;

static void on_saved_plan(void *ud, const char *ns, const bson_t *ranges)
{
    saved_plan_ctx_t *x = ud;
    ptrdiff_t i = ns_index_find(x->ix, ns);
    /* a namespace no longer selected, or no longer a collection, is not copied */
    if (i < 0 || lm_coll_is_view(&x->e->cat.items[i]) || x->e->plans[i])
        return;
    x->e->plans[i] = bson_copy(ranges);
}

/* The options the target kept, for every collection this run created: one listCollections
 * per database instead of one per namespace (on SecantusDB a listCollections costs about as
 * much as the database has collections: one per namespace made the preparation quadratic). */
static void compare_created_options(engine_t *e, const ns_index_t *ix, bool *created)
{
    for (size_t i = 0; i < e->cat.n; i++) {
        if (!created[i])
            continue;
        const char *dbname = e->cat.items[i].db;
        mongoc_database_t *db = mongoc_client_get_database(e->dst, dbname);
        mongoc_cursor_t *cur = mongoc_database_find_collections_with_opts(db, NULL);
        const bson_t *d;
        bson_iter_t it;
        while (mongoc_cursor_next(cur, &d)) {
            char ns[LM_NS_MAX];
            if (!bson_iter_init_find(&it, d, "name") || !BSON_ITER_HOLDS_UTF8(&it))
                continue;
            bson_snprintf(ns, sizeof ns, "%s.%s", dbname, bson_iter_utf8(&it, NULL));
            ptrdiff_t j = ns_index_find(ix, ns);
            if (j >= 0 && created[j]) {
                compare_options_with(e, &e->cat.items[j], d);
                created[j] = false;
            }
        }
        mongoc_cursor_destroy(cur);
        mongoc_database_destroy(db);
        /* this database is done, even for a collection the target did not list */
        for (size_t j = i; j < e->cat.n; j++)
            if (created[j] && strcmp(e->cat.items[j].db, dbname) == 0)
                created[j] = false;
    }
}

#define PLAN_BATCH 256 /* plans saved per bulk write: a crash loses at most this much planning */

/* Saves the plans of the catalog positions in batch[0..n). */
static bool save_batch(engine_t *e, const size_t *batch, size_t n)
{
    const char *ns[PLAN_BATCH] = {0};
    bson_t *ranges[PLAN_BATCH] = {0};
    for (size_t k = 0; k < n; k++) {
        ns[k] = e->cat.items[batch[k]].ns;
        ranges[k] = e->plans[batch[k]];
    }
    if (lm_meta_save_plans(e->dst, e->job_id, n, ns, ranges, &e->err))
        return true;
    if (n > 0)
        lm_error_prefix(&e->err, "saving the plans of %s%s%s (%zu namespaces)", ns[0],
                        n > 1 ? " to " : "", n > 1 ? ns[n - 1] : "", n);
    return false;
}

/* Every collection gets a plan (its _id ranges) before any copy starts, saved on the target
 * so a restarted run copies exactly the same ranges. A resumed run reads the saved plans in
 * one query; the rest are created on the target and planned in catalog order, their plans
 * saved PLAN_BATCH at a time. The copy starts only after every plan is saved, so a plan is
 * always saved before any of its ranges is copied; a crash before a batch is saved only
 * repeats that batch's planning (create on an existing namespace is fine). Planning is not
 * spread over threads: measured on 500 collections (docs/benchmarks.md), what remains per
 * namespace is one create on the target and one explain on the source, ~1 ms each, on
 * servers that answer one command at a time. */
static bool plan_all(engine_t *e, bool fresh)
{
    ns_index_t ix = {0};
    size_t batch[PLAN_BATCH], nb = 0, planned = 0;
    int64_t t0 = lm_time_mono_ms(), t_create = 0, t_plan = 0, t_save = 0;
    int ixscan = -1; /* the source's answer for _id ranges, asked once (lm_plan.h) */
    bool ok = true;
    bool *created = calloc(e->cat.n ? e->cat.n : 1, sizeof *created);
    e->plans = calloc(e->cat.n ? e->cat.n : 1, sizeof *e->plans);
    if (!e->plans || !created || !ns_index_build(&ix, &e->cat)) {
        free(created);
        return lm_error_set(&e->err, LM_ERR_INTERNAL, "out of memory");
    }
    saved_plan_ctx_t ctx = {e, &ix};
    ok = fresh || lm_meta_load_plans(e->dst, e->job_id, on_saved_plan, &ctx, &e->err);
    int64_t t_load = lm_time_mono_ms() - t0;
    for (size_t i = 0; ok && i < e->cat.n; i++) {
        lm_coll_info_t *c = &e->cat.items[i];
        if (lm_coll_is_view(c) || e->plans[i])
            continue; /* views come last; a plan comes from an earlier run */
        int64_t a = lm_time_mono_ms();
        if (!(ok = create_on_target(e, c, &created[i])))
            break;
        int64_t b = lm_time_mono_ms();
        e->plans[i] = bson_new();
        if (!(ok = lm_plan_ranges_cached(e->src, c, e->job->split_docs, e->job->split, &ixscan,
                                         e->plans[i], &e->err)))
            break;
        t_create += b - a;
        t_plan += lm_time_mono_ms() - b;
        planned++;
        batch[nb++] = i;
        if (nb == PLAN_BATCH) {
            a = lm_time_mono_ms();
            ok = save_batch(e, batch, nb);
            t_save += lm_time_mono_ms() - a;
            nb = 0;
        }
    }
    if (ok && nb) {
        int64_t a = lm_time_mono_ms();
        ok = save_batch(e, batch, nb);
        t_save += lm_time_mono_ms() - a;
    }
    int64_t a = lm_time_mono_ms();
    if (ok)
        compare_created_options(e, &ix, created);
    lm_log_debug(NULL,
                 "planned %zu of %zu namespaces in %" PRId64 " ms: load saved plans %" PRId64
                 ", create %" PRId64 ", plan ranges %" PRId64 ", save plans %" PRId64
                 ", compare options %" PRId64 " ms",
                 planned, e->cat.n, lm_time_mono_ms() - t0, t_load, t_create, t_plan, t_save,
                 lm_time_mono_ms() - a);
    free(ix.v);
    free(created);
    return ok;
}

static void on_done_record(void *ud, const char *ns, int range, int64_t docs)
{
    engine_t *e = ud;
    (void)docs;
    for (size_t i = 0; i < e->n_tasks; i++) {
        lm_copy_task_t *t = &e->tasks[i];
        if (range >= 0 && t->range == range && strcmp(t->ns, ns) == 0)
            atomic_store(&t->done, true);
    }
    lm_coll_status_t *cs = lm_status_find(e->st, ns);
    if (cs && range < 0) {
        atomic_store(&cs->state, LM_COLL_INDEXED);
        cs->resumed = true;
    }
}

static bool build_tasks(engine_t *e)
{
    size_t n = 0;
    for (size_t i = 0; i < e->cat.n; i++)
        n += e->plans[i] ? bson_count_keys(e->plans[i]) : 0;
    e->tasks = calloc(n ? n : 1, sizeof *e->tasks);
    lm_coll_status_t *cs = calloc(e->cat.n ? e->cat.n : 1, sizeof *cs);
    if (!e->tasks || !cs) {
        free(cs);
        return lm_error_set(&e->err, LM_ERR_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < e->cat.n; i++) {
        const lm_coll_info_t *c = &e->cat.items[i];
        snprintf(cs[i].ns, sizeof cs[i].ns, "%s", c->ns);
        cs[i].is_view = lm_coll_is_view(c);
        atomic_store(&cs[i].est_docs, c->est_docs);
        bson_iter_t it;
        if (!e->plans[i] || !bson_iter_init(&it, e->plans[i]))
            continue;
        while (bson_iter_next(&it)) {
            lm_copy_task_t *t = &e->tasks[e->n_tasks++];
            const uint8_t *data;
            uint32_t len;
            bson_iter_document(&it, &len, &data);
            snprintf(t->db, sizeof t->db, "%s", c->db);
            snprintf(t->coll, sizeof t->coll, "%s", c->coll);
            snprintf(t->ns, sizeof t->ns, "%s", c->ns);
            t->range = (int)strtol(bson_iter_key(&it), NULL, 10);
            t->filter = bson_new_from_data(data, len);
            cs[i].ranges_total++;
        }
    }
    lm_status_set_collections(e->st, cs, e->cat.n);
    for (size_t i = 0; i < e->n_tasks; i++)
        e->tasks[i].status = lm_status_find(e->st, e->tasks[i].ns);
    if (!lm_meta_each_done(e->dst, e->job_id, on_done_record, e, &e->err))
        return false;
    /* what earlier runs finished */
    for (size_t i = 0; i < e->n_tasks; i++) {
        lm_copy_task_t *t = &e->tasks[i];
        if (atomic_load(&t->done)) {
            atomic_fetch_add(&t->status->ranges_done, 1);
            t->status->resumed = true;
        }
    }
    for (size_t i = 0; i < e->cat.n; i++) {
        lm_coll_status_t *c = &e->st->colls[i];
        if (!c->is_view && atomic_load(&c->state) != LM_COLL_INDEXED && c->ranges_total > 0 &&
            atomic_load(&c->ranges_done) == c->ranges_total)
            atomic_store(&c->state, LM_COLL_COPIED);
    }
    return true;
}

/* Estimates what planning did not need, while the copy runs: on servers where collStats
 * scans the collection this would otherwise delay the start of the copy. */
static void *estimator_main(void *arg)
{
    engine_t *e = arg;
    mongoc_client_t *c = lm_conn_pool_pop(e->src_pool);
    for (size_t i = 0; i < e->cat.n && !(e->stop && *e->stop) && !e->st->cancel; i++) {
        lm_coll_info_t *ci = &e->cat.items[i];
        if (lm_coll_is_view(ci)) {
            atomic_store(&e->st->colls[i].est_docs, 0);
            continue;
        }
        if (ci->est_docs < 0)
            lm_catalog_estimate(c, ci);
        atomic_store(&e->st->colls[i].est_docs, ci->est_docs);
    }
    mongoc_client_pool_push(e->src_pool, c);
    return NULL;
}

#define DONE_BATCH 64     /* finished ranges recorded per bulk write */
#define DONE_FLUSH_MS 500 /* ... or this long after the oldest was buffered */
/* ... or at once after a range this large: copying it again costs far more than its record */
#define DONE_BIG_DOCS 1000

/* Records the buffered finished ranges on the target, in one bulk write. A record that is
 * lost (a crash before the flush, a refused write) only means that range is copied again on
 * resume, where duplicates are tolerated; a record is never written before its documents
 * are acknowledged (the buffer is filled after). */
static void flush_done(engine_t *e)
{
    lm_copy_task_t *batch[64];
    const char *ns[64];
    int range[64];
    int64_t docs[64];
    pthread_mutex_lock(&e->done_mu);
    size_t n = e->n_done;
    memcpy(batch, e->done_buf, n * sizeof *batch);
    e->n_done = 0;
    pthread_mutex_unlock(&e->done_mu);
    if (n == 0)
        return;
    if (lm_lease_out(e->job->lease_ok_ms, e->job->lease_ms)) {
        /* the target's connections refuse past the lease (lm_conn_pool_pop): the ranges are
         * copied again by whichever host resumes the part */
        lm_log_debug(NULL, "%zu finished ranges not recorded: the lease ran out", n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ns[i] = batch[i]->ns;
        range[i] = batch[i]->range;
        docs[i] = atomic_load(&batch[i]->docs);
    }
    lm_error_t err;
    lm_error_init(&err);
    mongoc_client_t *c = lm_conn_pool_pop(e->dst_pool);
    bool ok = lm_meta_mark_ranges_done(c, e->job_id, n, ns, range, docs, &err);
    mongoc_client_pool_push(e->dst_pool, c);
    if (!ok) /* not recorded: these ranges are copied again on resume */
        lm_log_warn(NULL, "%s", err.message);
}

/* Called from writer threads when a range is fully written: its record is buffered (one
 * write per range cost ~2 ms of the target each, 1 s of 500 collections at one writer). */
static void on_task_done(void *ud, lm_copy_task_t *t)
{
    engine_t *e = ud;
    int64_t now = lm_time_mono_ms();
    pthread_mutex_lock(&e->done_mu);
    if (e->n_done == 0)
        e->done_first_ms = now;
    e->done_buf[e->n_done++] = t;
    /* checked when a range ends (no timer): a big range is recorded at once, so a crash
     * never costs more than the small ranges of the last DONE_FLUSH_MS */
    bool flush = e->n_done == sizeof e->done_buf / sizeof e->done_buf[0] ||
                 now - e->done_first_ms >= DONE_FLUSH_MS || atomic_load(&t->docs) >= DONE_BIG_DOCS;
    pthread_mutex_unlock(&e->done_mu);
    if (flush)
        flush_done(e);
    if (atomic_fetch_add(&t->status->ranges_done, 1) + 1 == t->status->ranges_total)
        atomic_store(&t->status->state, LM_COLL_COPIED);
}

static bool copy_phase(engine_t *e)
{
    lm_copy_opts_t o = {.source = e->src_pool,
                        .target = e->dst_pool,
                        .source_caps = &e->src_caps,
                        .workers = (int)e->job->copy_workers,
                        .buffer_bytes = e->job->buffer_mb << 20,
                        .status = e->st,
                        .stop = e->stop,
                        .on_task_done = on_task_done,
                        .ud = e,
                        .lease_ok_ms = e->job->lease_ok_ms,
                        .lease_ms = e->job->lease_ms};
    bool ok = lm_copy_run(&o, e->tasks, e->n_tasks, &e->err);
    flush_done(e); /* what finished is recorded, whether the copy ended or stopped */
    return ok;
}

#define IDX_MARK_BATCH 256 /* "indexes done" records per bulk write */

/* Records the collections in batch[0..n) as indexed, on the target and in the status. */
static bool mark_indexed(engine_t *e, const size_t *batch, size_t n)
{
    const char *ns[IDX_MARK_BATCH] = {0};
    for (size_t k = 0; k < n; k++)
        ns[k] = e->cat.items[batch[k]].ns;
    if (!lm_meta_mark_indexes_done_many(e->dst, e->job_id, n, ns, &e->err))
        return false;
    for (size_t k = 0; k < n; k++)
        atomic_store(&e->st->colls[batch[k]].state, LM_COLL_INDEXED);
    return true;
}

/* Builds each collection's indexes (one createIndexes each) and records it as indexed. The
 * records go IDX_MARK_BATCH to a bulk write: one write per collection was most of this phase
 * with many collections that have only _id (4.1 s of 500 on SecantusDB); a crash before a
 * batch is written only builds those collections' indexes again (createIndexes of an index
 * that exists is a no-op). */
static bool index_phase(engine_t *e)
{
    size_t batch[IDX_MARK_BATCH], nb = 0;
    if (!join_index_loader(e))
        return false;
    for (size_t i = 0; i < e->cat.n; i++) {
        const lm_coll_info_t *c = &e->cat.items[i];
        lm_coll_status_t *cs = &e->st->colls[i];
        int refused = 0;
        if (lm_coll_is_view(c) || atomic_load(&cs->state) == LM_COLL_INDEXED)
            continue;
        if ((e->stop && *e->stop) || e->st->cancel) {
            if (nb)
                mark_indexed(e, batch, nb); /* what was built is kept */
            return lm_error_set(&e->err, LM_ERR_CANCELLED, "stopped while building indexes");
        }
        if (!lm_indexes_build(e->dst, c, e->st, &refused, &e->err))
            return false;
        e->indexes_refused += refused;
        batch[nb++] = i;
        if (nb == IDX_MARK_BATCH) {
            if (!mark_indexed(e, batch, nb))
                return false;
            nb = 0;
        }
    }
    if (nb && !mark_indexed(e, batch, nb))
        return false;
    /* views last: their sources exist now */
    for (size_t i = 0; i < e->cat.n; i++) {
        if (lm_coll_is_view(&e->cat.items[i])) {
            if (!create_on_target(e, &e->cat.items[i], NULL))
                return false;
            atomic_store(&e->st->colls[i].state, LM_COLL_INDEXED);
        }
    }
    return true;
}

/* ---- streaming ---- */

/* Replays the source's changes from the checkpoint (or the pinned start) until cutover. */
static bool stream_phase(engine_t *e)
{
    lm_stream_opts_t o = {.source = e->src_pool,
                          .target = e->dst_pool,
                          .job = e->job,
                          .status = e->st,
                          .stop = e->stop,
                          .job_id = e->job_id,
                          .from = {e->meta.start_ts, e->meta.start_inc},
                          .capture = e->meta.capture,
                          .cutover_gate = e->o.cutover_gate,
                          .gate_ud = e->o.gate_ud};
    e->streamed = true;
    if (e->meta.has_applied) {
        o.from = (lm_optime_t){e->meta.applied_t, e->meta.applied_i};
        o.from_wall_ms = e->meta.applied_wall_ms;
    } else {
        if (o.from.t == 0)
            lm_status_warn(e->st, "the source reported no optime when the copy started: every "
                                  "change its oplog holds is replayed");
        if (!lm_meta_save_position(e->dst, e->job_id, lm_phase_name(LM_PHASE_STREAMING), o.from.t,
                                   o.from.i, 0, "", &e->err))
            return false;
    }
    if (!lm_stream_run(&o, &e->err))
        return false;
    lm_status_set_phase(e->st, LM_PHASE_COMPLETE);
    return true;
}

/* ---- index specs, read beside the preparation and the copy ---- */

static void *index_loader_main(void *arg)
{
    engine_t *e = arg;
    int64_t t0 = lm_time_mono_ms();
    mongoc_client_t *c = lm_conn_pool_pop(e->src_pool);
    e->idx_ok = lm_catalog_load_indexes(c, &e->cat, &e->idx_stop, &e->idx_err);
    mongoc_client_pool_push(e->src_pool, c);
    lm_log_debug(NULL, "read the index specs of %zu namespaces in %" PRId64 " ms", e->cat.n,
                 lm_time_mono_ms() - t0);
    return NULL;
}

/* Starts the reader of the index specs (one listIndexes per collection: 0.5-1.5 s of 500
 * collections on SecantusDB, which no longer delays the copy); without a thread, reads them
 * now. */
static bool start_index_loader(engine_t *e)
{
    lm_error_init(&e->idx_err);
    if (pthread_create(&e->idx_thread, NULL, index_loader_main, e) == 0) {
        e->idx_started = true;
        return true;
    }
    if (lm_catalog_load_indexes(e->src, &e->cat, NULL, &e->err))
        return true;
    return false;
}

/* Waits for the index specs; false (e->err) when they could not be read. */
static bool join_index_loader(engine_t *e)
{
    if (!e->idx_started)
        return true;
    pthread_join(e->idx_thread, NULL);
    e->idx_started = false;
    if (!e->idx_ok)
        e->err = e->idx_err;
    return e->idx_ok;
}

/* ---- the phases ---- */

bool lm_engine_prepare(engine_t *e)
{
    if (e->prepared)
        return true;
    lm_status_set_phase(e->st, LM_PHASE_VALIDATING);
    if (!(e->src_pool = open_side(e, &e->job->source, "source", e->src_hosts, sizeof e->src_hosts,
                                  e->o.source)) ||
        !(e->dst_pool = open_side(e, &e->job->target, "target", e->dst_hosts, sizeof e->dst_hosts,
                                  e->o.target)))
        return false;
    e->src = lm_conn_pool_pop(e->src_pool);
    e->dst = lm_conn_pool_pop(e->dst_pool);
    if (!load_identity(e))
        return false;
    lm_status_set_job_id(e->st, e->job_id);
    if (!lm_meta_load_job(e->dst, e->job_id, &e->meta, &e->err))
        return false;
    lm_phase_t saved = LM_PHASE_NEW;
    if (e->meta.exists && !lm_phase_parse(e->meta.phase, &saved))
        return lm_error_set(&e->err, LM_ERR_INVALID,
                            "the checkpoint of job %s on the target names an unknown phase '%s': "
                            "was it written by a newer livemig? Upgrade livemig or use a new "
                            "--state-dir",
                            e->job_id, e->meta.phase);
    if (e->meta.exists && saved == LM_PHASE_COMPLETE) {
        e->already_complete = e->prepared = true;
        return true;
    }
    if (e->meta.exists && (saved == LM_PHASE_STREAMING || saved == LM_PHASE_CUTTING_OVER)) {
        lm_status_set_start(e->st, e->meta.start_ts, e->meta.start_inc);
        lm_status_event_info(e->st, "agent_resumed",
                             "resuming job %s: the copy is done; streaming from the target's "
                             "checkpoint",
                             e->job_id);
        e->resume_streaming = e->prepared = true;
        return true;
    }
    bool fresh = !e->meta.exists;
    if (fresh && !pin_start(e))
        return false;
    if (!fresh) {
        lm_status_set_start(e->st, e->meta.start_ts, e->meta.start_inc);
        lm_status_event_info(e->st, "agent_resumed",
                             "resuming job %s (phase %s) from the target's checkpoint", e->job_id,
                             e->meta.phase);
    }
    if (!lm_catalog_load_ex(e->src, e->job, false, &e->cat, &e->err) || !start_index_loader(e))
        return false;
    lm_log_info(NULL, "%zu namespaces to copy from %s to %s", e->cat.n, e->src_hosts, e->dst_hosts);
    if (fresh) {
        if (!check_conflicts(e))
            return false;
        snprintf(e->meta.phase, sizeof e->meta.phase, "%s", lm_phase_name(LM_PHASE_COPYING));
        snprintf(e->meta.source, sizeof e->meta.source, "%s", e->src_hosts);
        snprintf(e->meta.target, sizeof e->meta.target, "%s", e->dst_hosts);
        if (!lm_meta_create_job(e->dst, e->job_id, &e->meta, &e->err))
            return false;
    }
    if (!plan_all(e, fresh) || !build_tasks(e))
        return false;
    e->prepared = true;
    return true;
}

bool lm_engine_resumes_streaming(const engine_t *e)
{
    return e->resume_streaming;
}

bool lm_engine_already_complete(const engine_t *e)
{
    return e->already_complete;
}

bool lm_engine_copy(engine_t *e)
{
    if (!e->prepared)
        return lm_error_set(&e->err, LM_ERR_INTERNAL, "lm_engine_copy before lm_engine_prepare");
    lm_status_set_phase(e->st, LM_PHASE_COPYING);
    pthread_t estimator;
    bool estimating = pthread_create(&estimator, NULL, estimator_main, e) == 0;
    bool copied = copy_phase(e);
    if (estimating)
        pthread_join(estimator, NULL);
    return copied;
}

bool lm_engine_build_indexes(engine_t *e)
{
    lm_status_set_phase(e->st, LM_PHASE_BUILDING_INDEXES);
    return lm_meta_set_phase(e->dst, e->job_id, lm_phase_name(LM_PHASE_BUILDING_INDEXES),
                             &e->err) &&
           index_phase(e);
}

bool lm_engine_finish_copy(engine_t *e)
{
    if (!lm_meta_set_phase(e->dst, e->job_id, lm_phase_name(LM_PHASE_COMPLETE), &e->err))
        return false;
    lm_status_set_phase(e->st, LM_PHASE_COMPLETE);
    return true;
}

bool lm_engine_stream(engine_t *e)
{
    if (!e->prepared)
        return lm_error_set(&e->err, LM_ERR_INTERNAL, "lm_engine_stream before lm_engine_prepare");
    return stream_phase(e);
}

static bool run_phases(engine_t *e)
{
    if (!lm_engine_prepare(e))
        return false;
    if (e->already_complete)
        return true;
    if (e->resume_streaming)
        return lm_engine_stream(e);
    if (!lm_engine_copy(e) || !lm_engine_build_indexes(e))
        return false;
    return e->job->copy_only ? lm_engine_finish_copy(e) : lm_engine_stream(e);
}

lm_engine_outcome_t lm_engine_run(engine_t *e)
{
    lm_engine_outcome_t out;
    lm_state_t state;
    if (run_phases(e)) {
        out = e->already_complete ? LM_ENGINE_ALREADY_COMPLETE : LM_ENGINE_COMPLETE;
        state = LM_STATE_COMPLETE;
    } else if (lm_lease_stop(e->job, &e->err, "the run")) {
        bool cancelled = atomic_load(&e->st->cancel);
        out = cancelled ? LM_ENGINE_CANCELLED : LM_ENGINE_STOPPED;
        state = cancelled ? LM_STATE_CANCELLED : LM_STATE_STOPPED;
        lm_log_warn(NULL, "%s; progress is checkpointed on the target", e->err.message);
    } else {
        out = LM_ENGINE_FAILED;
        state = LM_STATE_FAILED;
        lm_status_error(e->st, "%s", e->err.message);
    }
    lm_status_set_state(e->st, state);
    return out;
}

int lm_engine_exit_code(lm_engine_outcome_t outcome)
{
    switch (outcome) {
    case LM_ENGINE_COMPLETE:
    case LM_ENGINE_ALREADY_COMPLETE: return LM_EXIT_OK;
    case LM_ENGINE_STOPPED: return LM_EXIT_STOPPED;
    case LM_ENGINE_CANCELLED: return LM_EXIT_CANCELLED;
    case LM_ENGINE_FAILED: break;
    }
    return LM_EXIT_FAILED;
}

const lm_error_t *lm_engine_error(const engine_t *e)
{
    return &e->err;
}

void lm_engine_summary(const engine_t *e, lm_engine_summary_t *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->job_id, sizeof out->job_id, "%s", e->job_id);
    snprintf(out->source, sizeof out->source, "%s", e->src_hosts);
    snprintf(out->target, sizeof out->target, "%s", e->dst_hosts);
    out->streamed = e->streamed;
    out->indexes_refused = e->indexes_refused;
    out->options_missing = e->options_missing;
}

lm_engine_t *lm_engine_new(const lm_engine_opts_t *opts)
{
    engine_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->o = *opts;
    e->job = opts->job;
    e->st = opts->status;
    e->stop = opts->stop;
    lm_error_init(&e->err);
    lm_conn_monitor_init(&e->src_mon, "source", on_conn_event, e);
    lm_conn_monitor_init(&e->dst_mon, "target", on_conn_event, e);
    lm_conn_global_init();
    pthread_mutex_init(&e->done_mu, NULL);
    return e;
}

static void *destroy_pool(void *pool)
{
    lm_conn_pool_destroy(pool);
    return NULL;
}

/* Destroys the engine's own pools side by side: each waits for its server monitor's
 * awaited hello to notice the shutdown (up to 500 ms in libmongoc 1.23), which, one after
 * the other, added up to a second to the end of every run (the cutover's included). */
static void destroy_pools(mongoc_client_pool_t *a, mongoc_client_pool_t *b)
{
    pthread_t t;
    bool threaded = a && b && pthread_create(&t, NULL, destroy_pool, a) == 0;
    if (a && !threaded)
        lm_conn_pool_destroy(a);
    if (b)
        lm_conn_pool_destroy(b);
    if (threaded)
        pthread_join(t, NULL);
}

void lm_engine_destroy(engine_t *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n_tasks; i++)
        bson_destroy(e->tasks[i].filter);
    if (e->idx_started) {
        atomic_store(&e->idx_stop, true);
        join_index_loader(e);
    }
    free(e->tasks);
    for (size_t i = 0; e->plans && i < e->cat.n; i++)
        if (e->plans[i])
            bson_destroy(e->plans[i]);
    free(e->plans);
    lm_catalog_cleanup(&e->cat);
    if (e->src)
        mongoc_client_pool_push(e->src_pool, e->src);
    if (e->dst)
        mongoc_client_pool_push(e->dst_pool, e->dst);
    lm_conn_monitor_close(&e->src_mon); /* the pools' shutdown is no outage */
    lm_conn_monitor_close(&e->dst_mon);
    destroy_pools(e->src_pool != e->o.source ? e->src_pool : NULL,
                  e->dst_pool != e->o.target ? e->dst_pool : NULL);
    lm_conn_monitor_cleanup(&e->src_mon); /* after the pools: their monitors call it */
    lm_conn_monitor_cleanup(&e->dst_mon);
    pthread_mutex_destroy(&e->done_mu);
    free(e);
}
