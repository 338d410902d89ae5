/* lm_coord: see lm_coord.h. */
#include "lm_coord.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_conn.h"
#include "lm_encode.h"
#include "lm_fs.h"
#include "lm_json.h"
#include "lm_log.h"
#include "lm_time.h"

#define BALANCER_STOP_MS 600000 /* a balancer round may take a while: wait up to 10 min */

typedef struct {
    char name[LM_SHARD_NAME_MAX], target[LM_SHARD_NAME_MAX];
    char src_uri[1200], dst_uri[1200]; /* may hold the URI's credentials: wiped at the end */
    char key[64];
    lm_job_t job; /* the caller's job with this shard's URIs (a shallow copy, never cleaned) */
    lm_status_t st;
    atomic_bool stop;
    lm_engine_t *e;
    pthread_t thread;
    bool started;
    atomic_bool done;
    lm_engine_outcome_t outcome;
    atomic_llong copy_started_ms; /* when the coordinator first saw it copying; 0 before */
    atomic_bool restart;          /* the operator asked to restart it (it failed) */
    bool failure_reported;        /* the coordinator's thread only */
} shard_t;

struct lm_coord {
    lm_coord_opts_t o;
    const lm_job_t *job;
    lm_status_t *st;
    char job_id[64];
    char src_hosts[256], dst_hosts[256];
    mongoc_client_t *src, *dst; /* the routers */
    lm_cluster_t scl, dcl;
    shard_t *shards;
    size_t n;
    bool src_balancer_stopped, dst_balancer_stopped;
    bool fresh_identity; /* this run made the job id: nothing of it is on the target yet */
    atomic_int src_balancer, dst_balancer; /* balancer_state_t, shown in the status */
    bool balancer_refused;
    bool leads;             /* this coordinator stops/starts the balancers, makes the metadata */
    bool meta_ready_before; /* the lead's "metadata ready" was there before the engines prepared */
    /* await mode: the rows reported while the lead waits for its shards (under st->mu),
     * then the list assigned to it (o.shards points at it) */
    struct pending_shard {
        char name[LM_SHARD_NAME_MAX], target[LM_SHARD_NAME_MAX];
        bool has_size;
        int64_t size;
    } * pending;
    size_t n_pending;
    lm_strlist_t assigned;
    lm_error_t err;
};

typedef enum { BAL_UNKNOWN = 0, BAL_STOPPED, BAL_STARTED, BAL_RESTART_REFUSED } balancer_state_t;
static const char *const bal_names[] = {"unchanged", "stopped", "started", "restartRefused"};

/* ---- connecting ---- */

static mongoc_client_t *open_router(const lm_job_t *job, const lm_endpoint_t *ep, const char *side,
                                    char *hosts, size_t hostsz, lm_error_t *err)
{
    lm_conn_opts_t o = lm_conn_opts_for(job, ep, side, NULL, "livemig-coordinator");
    if (strcmp(side, "target") == 0) { /* a daemon's part: nothing past the lease */
        o.lease_ok_ms = job->lease_ok_ms;
        o.lease_ms = job->lease_ms;
    }
    mongoc_uri_t *uri = lm_conn_uri_new(&o, err);
    if (!uri)
        return NULL;
    lm_conn_hosts(uri, hosts, hostsz);
    mongoc_uri_destroy(uri);
    return lm_conn_client_new(&o, err);
}

bool lm_coord_source_is_sharded(const lm_job_t *job)
{
    lm_error_t err;
    char hosts[256];
    bool is = false;
    lm_error_init(&err);
    lm_conn_global_init();
    mongoc_client_t *c = open_router(job, &job->source, "source", hosts, sizeof hosts, &err);
    if (!c)
        return false;
    if (!lm_cluster_is_router(c, &is, &err))
        is = false;
    lm_conn_client_destroy(c);
    return is;
}

/* ---- identity: <state_dir>/sharded.json ---- */

static bool write_identity(lm_coord_t *c, bool cancelled)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/sharded.json", c->job->state_dir);
    lm_json_writer_t *w = lm_json_writer_new(true);
    lm_json_w_map_open(w);
    lm_json_w_kv_str(w, "jobId", c->job_id);
    lm_json_w_kv_str(w, "source", c->src_hosts);
    lm_json_w_kv_str(w, "target", c->dst_hosts);
    lm_json_w_key(w, "sharded");
    lm_json_w_bool(w, true);
    lm_json_w_key(w, "cancelled");
    lm_json_w_bool(w, cancelled);
    lm_json_w_map_close(w);
    size_t len;
    const char *doc = lm_json_writer_result(w, &len, &c->err);
    bool ok = doc && lm_fs_write_atomic(path, doc, len, 0600, &c->err);
    lm_json_writer_destroy(w);
    return ok;
}

/* A new job id (the job's own, unless a cancelled run of this state dir used it). */
static bool new_identity(lm_coord_t *c, bool after_cancel)
{
    if (after_cancel && c->o.role != LM_JOB_ROLE_ALL)
        return lm_error_set(&c->err, LM_ERR_INVALID,
                            "this agent's part of sharded migration %s was cancelled: to start "
                            "again give every agent a new --migration-id (with --drop-target)",
                            c->job->job_id);
    if (c->job->job_id[0] && !after_cancel)
        snprintf(c->job_id, sizeof c->job_id, "%.40s", c->job->job_id);
    else if (!lm_random_hex(c->job_id, 12))
        return lm_error_set(&c->err, LM_ERR_IO, "no randomness for a job id");
    c->fresh_identity = true;
    return write_identity(c, false);
}

/* The job id of this state dir: a new one, the one of a run to resume, or, after a
 * cancelled run, a new one with --drop-target (its checkpoints are not resumed: the
 * balancers ran since) and a refusal without. */
static bool load_identity(lm_coord_t *c)
{
    char path[1024], *text = NULL;
    lm_error_t rerr;
    snprintf(path, sizeof path, "%s/sharded.json", c->job->state_dir);
    if (!lm_fs_mkdir_p(c->job->state_dir, 0700, &c->err))
        return false;
    if (lm_fs_read_file(path, 65536, &text, NULL, &rerr)) {
        lm_json_val_t *v = lm_json_parse(text, strlen(text), 0, 0, &c->err);
        const char *id = NULL, *src = NULL, *dst = NULL;
        bool cancelled = false;
        bool ok = v && lm_json_get_str(v, "jobId", true, 60, &id, &c->err) &&
                  lm_json_get_str(v, "source", true, 255, &src, &c->err) &&
                  lm_json_get_str(v, "target", true, 255, &dst, &c->err) &&
                  lm_json_get_bool(v, "cancelled", false, &cancelled, &c->err);
        if (ok && (strcmp(src, c->src_hosts) != 0 || strcmp(dst, c->dst_hosts) != 0))
            ok = lm_error_set(&c->err, LM_ERR_INVALID,
                              "%s belongs to a sharded migration from %s to %s: use another "
                              "--state-dir for %s -> %s",
                              path, src, dst, c->src_hosts, c->dst_hosts);
        if (ok && cancelled && !c->job->drop_target)
            ok = lm_error_set(&c->err, LM_ERR_INVALID,
                              "sharded migration %s was cancelled: what it copied is still on "
                              "the target and its checkpoints are not resumed (the balancers ran "
                              "since). To start again, run the same command with --drop-target: "
                              "the namespaces to copy are dropped on the target first (through "
                              "its router, on every target shard)",
                              id);
        if (ok && cancelled) {
            lm_log_warn(NULL,
                        "sharded migration %s was cancelled: starting again with --drop-target "
                        "(what it wrote on the target is dropped first)",
                        id);
            ok = new_identity(c, true);
        } else if (ok) {
            snprintf(c->job_id, sizeof c->job_id, "%s", id);
        } else {
            lm_error_prefix(&c->err, "%s", path);
        }
        lm_json_free(v);
        free(text);
        return ok;
    }
    if (rerr.code != LM_ERR_NOT_FOUND) {
        c->err = rerr;
        return false;
    }
    return new_identity(c, false);
}

/* --drop-target (as Atlas's dropDestinationData) on a new start: every collection to copy
 * that the target's router has registered as sharded is dropped through the router (on
 * every target shard, with its registration and chunks), before the metadata step makes
 * them again; the engines then drop, each on its target shard, the other namespaces to copy
 * they find there (lm_engine's check_conflicts). */
static bool reload_target(lm_coord_t *c);

static bool wipe_target(lm_coord_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->dcl.n_colls; i++) {
        const char *ns = c->dcl.colls[i].ns;
        char db[128], coll[LM_NS_MAX];
        if (!lm_ns_split(ns, db, sizeof db, coll, sizeof coll) ||
            !lm_ns_selected(&c->job->include, &c->job->exclude, db, coll) ||
            (!lm_cluster_find_db(&c->scl, db) && !lm_cluster_find_coll(&c->scl, ns)))
            continue;
        bson_t *cmd = BCON_NEW("drop", BCON_UTF8(coll));
        bson_t reply;
        bson_error_t be;
        bool ok = mongoc_client_write_command_with_opts(c->dst, db, cmd, NULL, &reply, &be);
        bson_destroy(&reply);
        bson_destroy(cmd);
        if (!ok && be.code != 26) /* NamespaceNotFound: gone already */
            return lm_error_set(&c->err, LM_ERR_SERVER,
                                "target: cannot drop %s through its router (--drop-target): %s", ns,
                                be.message);
        lm_log_warn(NULL,
                    "dropped %s on the target through its router: on every target shard, with "
                    "its sharding registration (--drop-target)",
                    ns);
        n++;
    }
    return n == 0 || reload_target(c);
}

/* ---- several agents: the shards this one runs, the lead's "metadata ready" ---- */

/* Whether name is among the listed shards (every shard when none is listed). */
bool lm_coord_shard_listed(const lm_strlist_t *shards, const char *name)
{
    if (!shards || !shards->n)
        return true;
    size_t n = strlen(name);
    for (size_t i = 0; i < shards->n; i++)
        for (const char *p = shards->items[i]; *p;) {
            size_t k = strcspn(p, ",");
            if (k == n && strncmp(p, name, n) == 0)
                return true;
            p += k;
            if (*p == ',')
                p++;
        }
    return false;
}

static bool runs_shard(const lm_coord_t *c, const char *name)
{
    return lm_coord_shard_listed(c->o.shards, name);
}

/* Every listed shard exists on the source (a typo would leave a shard run by no one). */
static bool check_shard_list(lm_coord_t *c)
{
    if (!c->o.shards)
        return true;
    char all[1024] = "";
    for (size_t i = 0; i < c->scl.n_shards; i++)
        snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? ", " : "",
                 c->scl.shards[i].name);
    size_t runs = 0;
    for (size_t i = 0; i < c->o.shards->n; i++)
        for (const char *p = c->o.shards->items[i]; *p;) {
            size_t k = strcspn(p, ",");
            char name[LM_SHARD_NAME_MAX];
            snprintf(name, sizeof name, "%.*s", (int)(k < sizeof name ? k : sizeof name - 1), p);
            if (k == 0 || k >= sizeof name || lm_cluster_shard_index(&c->scl, name) < 0)
                return lm_error_set(&c->err, LM_ERR_INVALID,
                                    "--shards names '%.*s', which is not a shard of the source "
                                    "(its shards, listShards order: %s): correct the list",
                                    (int)k, p, all);
            p += k;
            if (*p == ',')
                p++;
        }
    for (size_t i = 0; i < c->scl.n_shards; i++)
        runs += runs_shard(c, c->scl.shards[i].name);
    if (!runs)
        return lm_error_set(&c->err, LM_ERR_INVALID, "--shards lists no shard (the source's: %s)",
                            all);
    return true;
}

/* A client of the target's first shard (listShards order), where the lead records
 * "metadata ready": a replica set of its own, so the record survives every restart. */
static mongoc_client_t *ready_client(lm_coord_t *c)
{
    char uri[1200];
    if (!c->dcl.n_shards) {
        lm_error_set(&c->err, LM_ERR_INVALID, "the target has no shard");
        return NULL;
    }
    if (!lm_cluster_shard_uri(c->job->target.uri, c->dcl.shards[0].host, uri, sizeof uri, &c->err))
        return NULL;
    lm_conn_opts_t o =
        lm_conn_opts_for(c->job, &c->job->target, "target", uri, "livemig-coordinator");
    o.lease_ok_ms = c->job->lease_ok_ms; /* a daemon's part: nothing past the lease */
    o.lease_ms = c->job->lease_ms;
    mongoc_client_t *cl = lm_conn_client_new(&o, &c->err);
    lm_wipe(uri, sizeof uri);
    if (!cl)
        lm_error_prefix(&c->err, "target shard %s", c->dcl.shards[0].name);
    return cl;
}

/* Whether the lead recorded "metadata ready" for this job id. */
static bool meta_ready(lm_coord_t *c, mongoc_client_t *cl, bool *ready)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(cl, "__livemig", "sharded");
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(c->job_id), "metadataReady", BCON_BOOL(true));
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
    bson_error_t be;
    int64_t n = mongoc_collection_count_documents(coll, filter, opts, NULL, NULL, &be);
    bson_destroy(opts);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
    if (n < 0)
        return lm_error_set(&c->err, LM_ERR_SERVER,
                            "target shard %s: cannot read __livemig.sharded: %s",
                            c->dcl.shards[0].name, be.message);
    *ready = n > 0;
    return true;
}

static bool record_meta_ready(lm_coord_t *c)
{
    mongoc_client_t *cl = ready_client(c);
    if (!cl)
        return false;
    mongoc_collection_t *coll = mongoc_client_get_collection(cl, "__livemig", "sharded");
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(c->job_id));
    bson_t *upd = BCON_NEW("$set", "{", "metadataReady", BCON_BOOL(true), "balancersStopped",
                           BCON_BOOL(true), "at", BCON_DATE_TIME(lm_time_now_ms()), "}");
    bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true), "writeConcern", "{", "w", "majority", "}");
    bson_error_t be;
    bool ok = mongoc_collection_update_one(coll, sel, upd, opts, NULL, &be);
    bson_destroy(opts);
    bson_destroy(upd);
    bson_destroy(sel);
    mongoc_collection_destroy(coll);
    lm_conn_client_destroy(cl);
    if (!ok)
        return lm_error_set(&c->err, LM_ERR_SERVER,
                            "target shard %s: cannot record \"metadata ready\" in "
                            "__livemig.sharded: %s",
                            c->dcl.shards[0].name, be.message);
    lm_log_info(NULL,
                "sharded migration %s: balancers stopped and the target's metadata made to "
                "match: recorded \"metadata ready\" for the followers",
                c->job_id);
    return true;
}

/* A follower: waits (bounded, stop-able) for the lead's "metadata ready". */
static bool wait_meta_ready(lm_coord_t *c)
{
    mongoc_client_t *cl = ready_client(c);
    if (!cl)
        return false;
    int64_t limit = c->o.lead_wait_ms > 0 ? c->o.lead_wait_ms : 30 * 60 * 1000;
    int64_t t0 = lm_time_mono_ms(), told = 0;
    bool ready = false, ok = true;
    while (ok && !ready) {
        if (!(ok = meta_ready(c, cl, &ready)) || ready)
            break;
        int64_t waited = lm_time_mono_ms() - t0;
        if (atomic_load(&c->st->cancel) || (c->o.stop && atomic_load(c->o.stop))) {
            ok = lm_error_set(&c->err, LM_ERR_CANCELLED, "stopped while waiting for the lead");
            break;
        }
        if (waited >= limit) {
            ok = lm_error_set(&c->err, LM_ERR_INVALID,
                              "the lead agent of sharded migration %s did not record \"metadata "
                              "ready\" within %lld s (--lead-wait): start the lead (livemig-agent "
                              "migrate ... --migration-id %s --sharded-role lead), see its log, "
                              "then run this agent again (nothing was copied)",
                              c->job_id, (long long)(limit / 1000), c->job_id);
            break;
        }
        if (!told || waited - told >= 30000) {
            told = waited ? waited : 1;
            lm_log_info(NULL,
                        "waiting for the lead agent of sharded migration %s to stop the balancers "
                        "and make the target's metadata match (\"metadata ready\" in "
                        "__livemig.sharded on target shard %s): %lld s of at most %lld s; start "
                        "it with --migration-id %s --sharded-role lead",
                        c->job_id, c->dcl.shards[0].name, (long long)(waited / 1000),
                        (long long)(limit / 1000), c->job_id);
        }
        lm_time_sleep_ms(500, NULL);
    }
    lm_conn_client_destroy(cl);
    if (ready)
        lm_log_info(NULL, "the lead recorded \"metadata ready\": copying this agent's shards");
    return ok;
}

/* ---- await mode: the control plane assigns the lead's shards ---- */

bool lm_coord_shard_list_check(const char *list, char *msg, size_t msgsz)
{
    if (!list || !*list) {
        snprintf(msg, msgsz, "the list of shards is empty: name at least one source shard");
        return false;
    }
    for (const char *p = list;;) {
        size_t k = strcspn(p, ",");
        bool ok = k > 0 && k < LM_SHARD_NAME_MAX;
        for (size_t i = 0; ok && i < k; i++)
            ok = (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f;
        if (!ok) {
            char shown[64];
            size_t n = 0;
            for (; n < k && n + 1 < sizeof shown; n++)
                shown[n] = (unsigned char)p[n] > 0x20 && (unsigned char)p[n] < 0x7f ? p[n] : '?';
            shown[n] = '\0';
            snprintf(msg, msgsz,
                     k ? "the list of shards has a bad name '%s%s': names are 1-%d printable "
                         "characters without spaces, separated by commas (A,B)"
                       : "the list of shards has an empty name%s%s (at most %d bytes each): "
                         "separate the names by single commas (A,B)",
                     shown, k >= sizeof shown ? "..." : "", LM_SHARD_NAME_MAX - 1);
            return false;
        }
        p += k;
        if (!*p)
            return true;
        p++; /* the comma: a name must follow */
        if (!*p) {
            snprintf(msg, msgsz, "the list of shards ends with a comma: remove it");
            return false;
        }
    }
}

/* status->assign_check (under the status's mutex, while the lead waits): a well-formed
 * list of the source's shards. */
static int assign_check(void *ud, const char *list, char *msg, size_t msgsz)
{
    lm_coord_t *c = ud;
    if (!lm_coord_shard_list_check(list, msg, msgsz))
        return 400;
    char all[1024] = "";
    for (size_t i = 0; i < c->scl.n_shards; i++)
        snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? ", " : "",
                 c->scl.shards[i].name);
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, ",");
        char name[LM_SHARD_NAME_MAX];
        snprintf(name, sizeof name, "%.*s", (int)k, p);
        if (lm_cluster_shard_index(&c->scl, name) < 0) {
            snprintf(msg, msgsz,
                     "'%s' is not a shard of the source (its shards, listShards order: %s): "
                     "correct the list",
                     name, all);
            return 400;
        }
        p += k;
        if (*p == ',')
            p++;
    }
    snprintf(msg, msgsz, "shards %s assigned to the lead of sharded migration %s", list, c->job_id);
    return 202;
}

/* One source shard's data size: the sum of sizeOnDisk of its databases (admin, config,
 * local and __livemig left out) from listDatabases on its replica set. False (why in
 * *why) when it cannot be measured. */
static bool measure_shard(lm_coord_t *c, size_t i, int64_t *size, lm_error_t *why)
{
    char uri[1200];
    if (!lm_cluster_shard_uri(c->job->source.uri, c->scl.shards[i].host, uri, sizeof uri, why))
        return false;
    lm_conn_opts_t o =
        lm_conn_opts_for(c->job, &c->job->source, "source", uri, "livemig-coordinator");
    mongoc_client_t *cl = lm_conn_client_new(&o, why);
    lm_wipe(uri, sizeof uri);
    if (!cl)
        return false;
    bson_t *cmd = BCON_NEW("listDatabases", BCON_INT32(1));
    bson_t reply;
    bson_error_t be;
    bool ok = mongoc_client_read_command_with_opts(cl, "admin", cmd, NULL, NULL, &reply, &be);
    bson_iter_t it, arr, db;
    int64_t sum = 0;
    bool any = false;
    if (!ok) {
        lm_error_set(why, LM_ERR_SERVER, "listDatabases: %s", be.message);
    } else if (bson_iter_init_find(&it, &reply, "databases") && BSON_ITER_HOLDS_ARRAY(&it) &&
               bson_iter_recurse(&it, &arr)) {
        while (bson_iter_next(&arr)) {
            const char *name = NULL;
            int64_t sz = -1;
            if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &db))
                continue;
            while (bson_iter_next(&db)) {
                if (strcmp(bson_iter_key(&db), "name") == 0 && BSON_ITER_HOLDS_UTF8(&db))
                    name = bson_iter_utf8(&db, NULL);
                else if (strcmp(bson_iter_key(&db), "sizeOnDisk") == 0 &&
                         BSON_ITER_HOLDS_NUMBER(&db))
                    sz = bson_iter_as_int64(&db);
            }
            if (!name || sz < 0 || strcmp(name, "admin") == 0 || strcmp(name, "config") == 0 ||
                strcmp(name, "local") == 0 || strcmp(name, "__livemig") == 0)
                continue;
            sum += sz;
            any = true;
        }
        if (!any && bson_iter_init_find(&it, &reply, "totalSize") && BSON_ITER_HOLDS_NUMBER(&it)) {
            sum = bson_iter_as_int64(&it);
            any = true;
        }
        if (!any)
            ok = lm_error_set(why, LM_ERR_SERVER, "listDatabases gave no sizeOnDisk nor totalSize");
    } else {
        ok = lm_error_set(why, LM_ERR_SERVER, "listDatabases gave no databases array");
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    lm_conn_client_destroy(cl);
    *size = sum;
    return ok && any;
}

/* The lead in await mode: measures and reports every source shard, waits for its list. */
static bool await_assignment(lm_coord_t *c)
{
    struct pending_shard *rows = calloc(c->scl.n_shards ? c->scl.n_shards : 1, sizeof *rows);
    if (!rows)
        return lm_error_set(&c->err, LM_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < c->scl.n_shards; i++) {
        lm_error_t why;
        lm_error_init(&why);
        snprintf(rows[i].name, sizeof rows[i].name, "%s", c->scl.shards[i].name);
        snprintf(rows[i].target, sizeof rows[i].target, "%s", c->dcl.shards[i].name);
        rows[i].has_size = measure_shard(c, i, &rows[i].size, &why);
        if (rows[i].has_size)
            lm_log_info(NULL, "source shard %s holds %lld bytes (listDatabases)", rows[i].name,
                        (long long)rows[i].size);
        else
            lm_log_warn(NULL,
                        "source shard %s: its data size cannot be measured (%s): it is reported "
                        "without sizeBytes (the spread counts it as 0)",
                        rows[i].name, why.message);
    }
    pthread_mutex_lock(&c->st->mu);
    c->pending = rows;
    c->n_pending = c->scl.n_shards;
    c->st->assign_check = assign_check;
    pthread_mutex_unlock(&c->st->mu);
    int64_t limit = c->o.lead_wait_ms > 0 ? c->o.lead_wait_ms : 30 * 60 * 1000;
    int64_t t0 = lm_time_mono_ms(), told = 0;
    char list[LM_STATUS_ASSIGNMENT_MAX];
    bool got = false, ok = true;
    while (!(got = lm_status_take_assignment(c->st, list, sizeof list))) {
        int64_t waited = lm_time_mono_ms() - t0;
        if (atomic_load(&c->st->cancel) || (c->o.stop && atomic_load(c->o.stop))) {
            ok = lm_error_set(&c->err, LM_ERR_CANCELLED,
                              "stopped while waiting for the assignment of its shards");
            break;
        }
        if (waited >= limit) {
            ok = lm_error_set(&c->err, LM_ERR_INVALID,
                              "no shards were assigned to the lead of sharded migration %s within "
                              "%lld s (--lead-wait): the control plane assigns them (see its "
                              "log and the migration's events), or POST "
                              "/api/v1/assign-shards?shards=A,B on this agent's status API; "
                              "nothing was copied",
                              c->job_id, (long long)(limit / 1000));
            break;
        }
        if (!told || waited - told >= 30000) {
            told = waited ? waited : 1;
            lm_log_info(NULL,
                        "waiting for the control plane to assign this migration's shards "
                        "(sharded migration %s, %zu source shards reported with their sizes): "
                        "%lld s of at most %lld s",
                        c->job_id, c->scl.n_shards, (long long)(waited / 1000),
                        (long long)(limit / 1000));
        }
        lm_time_sleep_ms(250, NULL);
    }
    pthread_mutex_lock(&c->st->mu);
    c->st->assign_check = NULL;
    c->pending = NULL;
    c->n_pending = 0;
    pthread_mutex_unlock(&c->st->mu);
    free(rows);
    if (!ok || !got)
        return false;
    c->assigned.items = calloc(1, sizeof *c->assigned.items);
    if (!c->assigned.items || !(c->assigned.items[0] = strdup(list)))
        return lm_error_set(&c->err, LM_ERR_INTERNAL, "out of memory");
    c->assigned.n = 1;
    c->o.shards = &c->assigned;
    if (!check_shard_list(c)) /* checked when it came: the same source */
        return false;
    char shown[LM_STATUS_ASSIGNMENT_MAX + 64] = "";
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, ",");
        snprintf(shown + strlen(shown), sizeof shown - strlen(shown), "%s%.*s", *shown ? ", " : "",
                 (int)k, p);
        p += k;
        if (*p == ',')
            p++;
    }
    lm_log_info(NULL, "the control plane assigned shards %s to this agent (lead)", shown);
    return true;
}

/* ---- the target's metadata ---- */

static const char *pair_of(void *ud, const char *shard)
{
    lm_coord_t *c = ud;
    int i = lm_cluster_shard_index(&c->scl, shard);
    return i >= 0 && (size_t)i < c->dcl.n_shards ? c->dcl.shards[i].name : NULL;
}

/* A problem with the target's metadata: an error (false) before the copy, a warning (true)
 * in the final pass, when data is on the target and a fix would need to move it. */
static bool meta_problem(lm_coord_t *c, bool final, const char *msg)
{
    if (final) {
        lm_status_warn(c->st, "target metadata: %s", msg);
        return true;
    }
    return lm_error_set(&c->err, LM_ERR_INVALID, "target metadata: %s", msg);
}

static bool reload_target(lm_coord_t *c)
{
    lm_cluster_cleanup(&c->dcl);
    if (!lm_cluster_load(c->dst, &c->dcl, &c->err)) {
        lm_error_prefix(&c->err, "target");
        return false;
    }
    return true;
}

/* Databases with paired primaries, sharded collections with the same key and uniqueness,
 * then the chunk maps (splits, reload, moves). Idempotent: a resumed run finds nothing to do. */
static bool sync_metadata(lm_coord_t *c, bool final)
{
    char msg[1024];
    lm_error_t e;
    size_t splits = 0, moves = 0;
    if (final) {
        lm_cluster_cleanup(&c->scl);
        if (!lm_cluster_load(c->src, &c->scl, &c->err)) {
            lm_error_prefix(&c->err, "source");
            return false;
        }
    }
    if (!reload_target(c))
        return false;
    for (size_t i = 0; i < c->scl.n_dbs; i++) {
        const lm_cluster_db_t *d = &c->scl.dbs[i];
        if (!lm_ns_db_selected(&c->job->include, d->name))
            continue;
        const char *want = pair_of(c, d->primary);
        const lm_cluster_db_t *have = lm_cluster_find_db(&c->dcl, d->name);
        if (!want) {
            snprintf(msg, sizeof msg, "database %s: its primary shard %s is not in listShards",
                     d->name, d->primary);
            if (!meta_problem(c, final, msg))
                return false;
        } else if (have && strcmp(have->primary, want) != 0) {
            snprintf(msg, sizeof msg,
                     "database %s has primary shard %s on the target, %s expected (paired with "
                     "the source's %s): run movePrimary on the target while it is empty, or "
                     "drop the database there",
                     d->name, have->primary, want, d->primary);
            if (!meta_problem(c, final, msg))
                return false;
        } else if (!have) {
            lm_error_init(&e);
            if (!lm_cluster_enable_sharding(c->dst, d->name, want, &e)) {
                if (!meta_problem(c, final, e.message))
                    return false;
            } else {
                lm_log_info(NULL, "target: database %s registered with primary shard %s", d->name,
                            want);
            }
        }
    }
    for (size_t i = 0; i < c->scl.n_colls; i++) {
        const lm_cluster_coll_t *s = &c->scl.colls[i];
        char db[128], coll[LM_NS_MAX];
        if (!lm_ns_split(s->ns, db, sizeof db, coll, sizeof coll) ||
            !lm_ns_selected(&c->job->include, &c->job->exclude, db, coll))
            continue;
        const lm_cluster_coll_t *t = lm_cluster_find_coll(&c->dcl, s->ns);
        if (t && (!bson_equal(t->key, s->key) || t->unique != s->unique)) {
            char *sk = bson_as_relaxed_extended_json(s->key, NULL),
                 *tk = bson_as_relaxed_extended_json(t->key, NULL);
            snprintf(msg, sizeof msg,
                     "%s is sharded on %s (unique: %s) on the target but on %s (unique: %s) on "
                     "the source: drop it on the target",
                     s->ns, tk ? tk : "?", t->unique ? "true" : "false", sk ? sk : "?",
                     s->unique ? "true" : "false");
            bson_free(sk);
            bson_free(tk);
            if (!meta_problem(c, final, msg))
                return false;
            continue;
        }
        if (!t) {
            lm_error_init(&e);
            if (!lm_cluster_shard_collection(c->dst, s->ns, s->key, s->unique, &e)) {
                if (!meta_problem(c, final, e.message))
                    return false;
            } else {
                lm_log_info(NULL, "target: %s sharded with the source's key", s->ns);
            }
        }
    }
    /* chunk maps: splits first, then (after reading the target again) moves */
    for (int pass = 0; pass < 2; pass++) {
        if (!reload_target(c))
            return false;
        for (size_t i = 0; i < c->scl.n_colls; i++) {
            const lm_cluster_coll_t *s = &c->scl.colls[i];
            const lm_cluster_coll_t *t = lm_cluster_find_coll(&c->dcl, s->ns);
            char db[128], coll[LM_NS_MAX];
            if (!t || !lm_ns_split(s->ns, db, sizeof db, coll, sizeof coll) ||
                !lm_ns_selected(&c->job->include, &c->job->exclude, db, coll) ||
                !bson_equal(t->key, s->key))
                continue;
            lm_chunk_diff_t d;
            if (!lm_chunk_diff(s->chunks, s->n_chunks, t->chunks, t->n_chunks, pair_of, c, &d))
                return lm_error_set(&c->err, LM_ERR_INTERNAL, "out of memory");
            bool ok = true;
            if (pass == 0) {
                for (size_t k = 0; ok && k < d.n_splits; k++) {
                    lm_error_init(&e);
                    if (lm_cluster_split(c->dst, s->ns, d.splits[k]->min, &e))
                        splits++;
                    else
                        ok = meta_problem(c, final, e.message);
                }
            } else {
                for (size_t k = 0; ok && k < d.n_moves; k++) {
                    lm_error_init(&e);
                    if (lm_cluster_move_range(c->dst, s->ns, d.moves[k]->min, d.moves[k]->max,
                                              d.move_to[k], &e))
                        moves++;
                    else
                        ok = meta_problem(c, final, e.message);
                }
                if (ok && (d.n_extra || d.n_unmapped || d.n_splits)) {
                    snprintf(msg, sizeof msg,
                             "%s: the target's chunk map still differs (%zu boundaries the "
                             "source does not have, %zu source chunks on unknown shards, %zu "
                             "splits left)",
                             s->ns, d.n_extra, d.n_unmapped, d.n_splits);
                    ok = meta_problem(c, final, msg);
                }
            }
            lm_chunk_diff_cleanup(&d);
            if (!ok)
                return false;
        }
    }
    if (splits || moves)
        lm_log_info(NULL, "target: chunk maps made equal to the source's (%zu splits, %zu moves)",
                    splits, moves);
    return true;
}

/* ---- the overall status ---- */

static void aggregate(lm_coord_t *c)
{
    long long docs = 0, bytes = 0, dups = 0, ops = 0, refetched = 0, ddl = 0, rereads = 0;
    long long writes = 0, linger = 0;
    int wa = 0, wm = 0, aa = 0, am = 0;
    lm_phase_t phase = LM_PHASE_COMPLETE;
    lm_stream_status_t agg, s;
    memset(&agg, 0, sizeof agg);
    bool all_active = c->n > 0;
    int64_t now = lm_time_now_ms();
    for (size_t i = 0; i < c->n; i++) {
        shard_t *sh = &c->shards[i];
        docs += atomic_load(&sh->st.docs);
        bytes += atomic_load(&sh->st.bytes);
        dups += atomic_load(&sh->st.dup_keys);
        ops += atomic_load(&sh->st.ops_applied);
        refetched += atomic_load(&sh->st.ops_refetched);
        ddl += atomic_load(&sh->st.ddl_applied);
        rereads += atomic_load(&sh->st.oplog_rereads);
        wa += atomic_load(&sh->st.copy_writers_active);
        wm += atomic_load(&sh->st.copy_writers_max);
        aa += atomic_load(&sh->st.apply_workers_active);
        am += atomic_load(&sh->st.apply_workers_max);
        writes += atomic_load(&sh->st.apply_batches);
        if (atomic_load(&sh->st.apply_linger_ms) > linger)
            linger = atomic_load(&sh->st.apply_linger_ms);
        lm_phase_t p = lm_status_get_phase(&sh->st);
        if (p == LM_PHASE_COPYING && !atomic_load(&sh->copy_started_ms))
            atomic_store(&sh->copy_started_ms, now);
        if (p < phase)
            phase = p;
        lm_status_get_stream(&sh->st, &s);
        if (!s.active) {
            all_active = false;
            continue;
        }
        if (i == 0 || !agg.active) {
            snprintf(agg.capture, sizeof agg.capture, "%s", s.capture);
            agg.applied_t = s.applied_t, agg.applied_i = s.applied_i;
            agg.applied_wall_ms = s.applied_wall_ms;
        }
        agg.active = true;
        if (s.lag_seconds > agg.lag_seconds)
            agg.lag_seconds = s.lag_seconds;
        if (s.optime_gap_seconds > agg.optime_gap_seconds)
            agg.optime_gap_seconds = s.optime_gap_seconds;
        /* the shards cut over side by side: the slowest one's estimate */
        if (s.estimated_cutover_seconds > agg.estimated_cutover_seconds)
            agg.estimated_cutover_seconds = s.estimated_cutover_seconds;
        if (s.apply_latency_ms > agg.apply_latency_ms)
            agg.apply_latency_ms = s.apply_latency_ms;
        agg.ops_per_second += s.ops_per_second;
        if (s.source_t > agg.source_t || (s.source_t == agg.source_t && s.source_i > agg.source_i))
            agg.source_t = s.source_t, agg.source_i = s.source_i,
            agg.source_wall_ms = s.source_wall_ms;
        /* the applied position overall: the least advanced shard's */
        if (s.applied_t < agg.applied_t ||
            (s.applied_t == agg.applied_t && s.applied_i < agg.applied_i))
            agg.applied_t = s.applied_t, agg.applied_i = s.applied_i,
            agg.applied_wall_ms = s.applied_wall_ms;
        if (s.final_t > agg.final_t || (s.final_t == agg.final_t && s.final_i > agg.final_i))
            agg.final_t = s.final_t, agg.final_i = s.final_i;
        if (s.cutover_requested_ms &&
            (!agg.cutover_requested_ms || s.cutover_requested_ms < agg.cutover_requested_ms))
            agg.cutover_requested_ms = s.cutover_requested_ms;
    }
    agg.ready_for_cutover = all_active;
    for (size_t i = 0; all_active && i < c->n; i++) {
        lm_status_get_stream(&c->shards[i].st, &s);
        agg.ready_for_cutover = agg.ready_for_cutover && s.ready_for_cutover;
    }
    /* readyForCutover and the lag say something only once every shard streams */
    agg.active = all_active;
    atomic_store(&c->st->docs, docs);
    atomic_store(&c->st->bytes, bytes);
    atomic_store(&c->st->dup_keys, dups);
    atomic_store(&c->st->ops_applied, ops);
    atomic_store(&c->st->ops_refetched, refetched);
    atomic_store(&c->st->ddl_applied, ddl);
    atomic_store(&c->st->oplog_rereads, rereads);
    atomic_store(&c->st->copy_writers_active, wa);
    atomic_store(&c->st->copy_writers_max, wm);
    atomic_store(&c->st->apply_workers_active, aa);
    atomic_store(&c->st->apply_workers_max, am);
    atomic_store(&c->st->apply_batches, writes);
    atomic_store(&c->st->apply_linger_ms, linger);
    lm_status_set_stream(c->st, &agg);
    if (c->n && lm_status_get_phase(c->st) != phase)
        lm_status_set_phase(c->st, phase);
}

static const char *last_of(const lm_strlist_t *l)
{
    return l->n ? l->items[l->n - 1] : NULL;
}

/* The "shards" and "balancer" members of the overall status JSON (called under the overall
 * status's mutex; takes each shard's). */
static void json_shards(void *ud, lm_json_writer_t *w)
{
    lm_coord_t *c = ud;
    static const char *const roles[] = {"all", "lead", "follower"};
    lm_json_w_kv_str(w, "shardedRole", roles[c->o.role >= 0 && c->o.role <= 2 ? c->o.role : 0]);
    lm_json_w_key(w, "balancer");
    lm_json_w_map_open(w);
    lm_json_w_kv_str(w, "source", bal_names[atomic_load(&c->src_balancer)]);
    lm_json_w_kv_str(w, "target", bal_names[atomic_load(&c->dst_balancer)]);
    lm_json_w_map_close(w);
    lm_json_w_key(w, "shards");
    lm_json_w_array_open(w);
    for (size_t i = 0; i < c->n_pending; i++) { /* await mode: every source shard, unassigned */
        lm_json_w_map_open(w);
        lm_json_w_kv_str(w, "name", c->pending[i].name);
        lm_json_w_kv_str(w, "targetShard", c->pending[i].target);
        lm_json_w_kv_str(w, "state", "ASSIGNING");
        lm_json_w_kv_str(w, "phase", lm_phase_name(LM_PHASE_VALIDATING));
        lm_json_w_key(w, "documentsCopied");
        lm_json_w_int(w, 0);
        lm_json_w_key(w, "bytesCopied");
        lm_json_w_int(w, 0);
        lm_json_w_key(w, "sizeBytes");
        if (c->pending[i].has_size)
            lm_json_w_int(w, c->pending[i].size);
        else
            lm_json_w_null(w);
        lm_json_w_key(w, "readyForCutover");
        lm_json_w_bool(w, false);
        lm_json_w_map_close(w);
    }
    int64_t now = lm_time_now_ms();
    for (size_t i = 0; i < c->n; i++) {
        shard_t *sh = &c->shards[i];
        lm_stream_status_t s;
        int64_t est_docs, est_bytes;
        lm_status_get_stream(&sh->st, &s);
        pthread_mutex_lock(&sh->st.mu);
        bool known = lm_status_totals(&sh->st, &est_docs, &est_bytes) && sh->st.n_colls > 0;
        lm_phase_t phase = sh->st.phase;
        lm_state_t state = sh->st.state;
        long long docs = atomic_load(&sh->st.docs), bytes = atomic_load(&sh->st.bytes);
        lm_json_w_map_open(w);
        lm_json_w_kv_str(w, "name", sh->name);
        lm_json_w_kv_str(w, "targetShard", sh->target);
        lm_json_w_kv_str(w, "state", lm_state_name(state));
        lm_json_w_kv_str(w, "phase", lm_phase_name(phase));
        lm_json_w_key(w, "documentsCopied");
        lm_json_w_int(w, docs);
        lm_json_w_key(w, "bytesCopied");
        lm_json_w_int(w, bytes);
        lm_json_w_key(w, "documentsEstimated");
        if (known)
            lm_json_w_int(w, est_docs);
        else
            lm_json_w_null(w);
        double pct = -1;
        if (phase > LM_PHASE_COPYING)
            pct = 100;
        else if (known)
            pct = est_bytes > 0 ? 100.0 * (double)bytes / (double)est_bytes : 100;
        lm_json_w_key(w, "percentage");
        if (pct >= 0)
            lm_json_w_double(w, pct > 100 ? 100 : pct);
        else
            lm_json_w_null(w);
        /* remaining: the bytes left at the shard's average rate since its copy started */
        int64_t t0 = atomic_load(&sh->copy_started_ms);
        lm_json_w_key(w, "remainingSeconds");
        if (phase > LM_PHASE_COPYING)
            lm_json_w_double(w, 0);
        else if (known && t0 && bytes > 0 && now > t0)
            lm_json_w_double(w, est_bytes > bytes
                                    ? (double)(est_bytes - bytes) /
                                          ((double)bytes / (double)(now - t0)) / 1000.0
                                    : 0);
        else
            lm_json_w_null(w);
        lm_json_w_key(w, "lagTimeSeconds");
        if (s.active)
            lm_json_w_double(w, s.lag_seconds);
        else
            lm_json_w_null(w);
        lm_json_w_key(w, "readyForCutover");
        lm_json_w_bool(w, s.active && s.ready_for_cutover);
        lm_json_w_key(w, "optimeGapSeconds");
        if (s.active)
            lm_json_w_double(w, s.optime_gap_seconds);
        else
            lm_json_w_null(w);
        lm_json_w_key(w, "opsApplied");
        lm_json_w_int(w, atomic_load(&sh->st.ops_applied));
        lm_json_w_kv_str(w, "lastError", last_of(&sh->st.errors));
        lm_json_w_key(w, "warnings");
        lm_json_w_int(w, (int64_t)sh->st.warnings.n);
        /* this pair's verification after the cutover (lm_run_sharded_verify) */
        lm_json_w_key(w, "verification");
        if (sh->st.verify.state == LM_VERIFY_NONE)
            lm_json_w_null(w);
        else
            lm_json_w_str(w, lm_verify_state_name(sh->st.verify.state));
        lm_json_w_map_close(w);
        pthread_mutex_unlock(&sh->st.mu);
    }
    lm_json_w_array_close(w);
}

/* The per-shard series of /metrics (called under the overall status's mutex; takes each
 * shard's): labels shard and target_shard. */
static void metrics_labels(lm_strbuf_t *out, const char *metric, const shard_t *sh)
{
    lm_strbuf_appendf(out, "%s{shard=\"", metric);
    lm_status_metrics_label(out, sh->name);
    lm_strbuf_append(out, "\",target_shard=\"");
    lm_status_metrics_label(out, sh->target);
    lm_strbuf_append(out, "\"");
}

static void metrics_shards(void *ud, lm_strbuf_t *out)
{
    lm_coord_t *c = ud;
    static const struct {
        const char *name, *type, *help;
    } series[] = {
        {"livemig_shard_documents_copied", "gauge", "Documents copied by the shard's engine."},
        {"livemig_shard_bytes_copied", "gauge", "BSON bytes copied by the shard's engine."},
        {"livemig_shard_lag_seconds", "gauge",
         "The shard's latest source write minus its last applied write (once it streams)."},
        {"livemig_shard_ready_for_cutover", "gauge",
         "1 when the shard streams within --cutover-lag."},
        {"livemig_shard_failed", "gauge", "1 when the shard's engine failed (restart-shard)."},
        {"livemig_shard_phase", "gauge", "1 for the phase the shard is in."},
    };
    for (size_t k = 0; k < sizeof series / sizeof series[0]; k++) {
        lm_strbuf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", series[k].name, series[k].help,
                          series[k].name, series[k].type);
        for (size_t i = 0; i < c->n; i++) {
            shard_t *sh = &c->shards[i];
            lm_stream_status_t s;
            lm_status_get_stream(&sh->st, &s);
            pthread_mutex_lock(&sh->st.mu);
            lm_phase_t phase = sh->st.phase;
            lm_state_t state = sh->st.state;
            pthread_mutex_unlock(&sh->st.mu);
            switch (k) {
            case 0:
            case 1:
                metrics_labels(out, series[k].name, sh);
                lm_strbuf_appendf(out, "} %lld\n",
                                  (long long)atomic_load(k == 0 ? &sh->st.docs : &sh->st.bytes));
                break;
            case 2:
                if (s.active) {
                    metrics_labels(out, series[k].name, sh);
                    lm_strbuf_appendf(out, "} %.3f\n", s.lag_seconds);
                }
                break;
            case 3:
                metrics_labels(out, series[k].name, sh);
                lm_strbuf_appendf(out, "} %d\n", s.active && s.ready_for_cutover);
                break;
            case 4:
                metrics_labels(out, series[k].name, sh);
                lm_strbuf_appendf(out, "} %d\n", state == LM_STATE_FAILED);
                break;
            default:
                for (int p = 0; p <= LM_PHASE_COMPLETE; p++) {
                    metrics_labels(out, series[k].name, sh);
                    lm_strbuf_appendf(out, ",phase=\"%s\"} %d\n", lm_phase_name((lm_phase_t)p),
                                      phase == (lm_phase_t)p);
                }
            }
        }
    }
}

/* ---- the engines ---- */

static bool gate(void *ud)
{
    lm_coord_t *c = ud;
    return atomic_load(&c->st->cutover);
}

static void *shard_main(void *arg)
{
    shard_t *sh = arg;
    sh->outcome = lm_engine_run(sh->e); /* prepared already: copy, indexes, stream */
    atomic_store(&sh->done, true);
    return NULL;
}

static bool setup_shards(lm_coord_t *c)
{
    shard_t *all = calloc(c->scl.n_shards, sizeof *all);
    if (!all)
        return lm_error_set(&c->err, LM_ERR_INTERNAL, "out of memory");
    pthread_mutex_lock(&c->st->mu); /* the status API reads shards[0, n) */
    c->shards = all;
    pthread_mutex_unlock(&c->st->mu);
    for (size_t i = 0; i < c->scl.n_shards; i++) {
        if (!runs_shard(c, c->scl.shards[i].name))
            continue;
        shard_t *sh = &c->shards[c->n];
        snprintf(sh->name, sizeof sh->name, "%s", c->scl.shards[i].name);
        snprintf(sh->target, sizeof sh->target, "%s", c->dcl.shards[i].name);
        lm_status_init(&sh->st, "");
        pthread_mutex_lock(&c->st->mu);
        c->n++;
        pthread_mutex_unlock(&c->st->mu);
        if (!lm_cluster_shard_uri(c->job->source.uri, c->scl.shards[i].host, sh->src_uri,
                                  sizeof sh->src_uri, &c->err) ||
            !lm_cluster_shard_uri(c->job->target.uri, c->dcl.shards[i].host, sh->dst_uri,
                                  sizeof sh->dst_uri, &c->err)) {
            lm_error_prefix(&c->err, "shard %s", sh->name);
            return false;
        }
        snprintf(sh->key, sizeof sh->key, "%.24s.%.38s", c->job_id, sh->name);
        sh->job = *c->job;
        sh->job.source.uri = sh->src_uri;
        sh->job.target.uri = sh->dst_uri;
        lm_engine_opts_t eo = {.job = &sh->job,
                               .status = &sh->st,
                               .stop = &sh->stop,
                               .checkpoint_key = sh->key,
                               .cutover_gate = gate,
                               .gate_ud = c,
                               .existing_empty_ok = c->meta_ready_before};
        if (!(sh->e = lm_engine_new(&eo)))
            return lm_error_set(&c->err, LM_ERR_INTERNAL, "out of memory");
    }
    return true;
}

/* POST /api/v1/restart-shard (under the overall status's mutex): only a failed shard. */
static int restart_hook(void *ud, const char *name, char *msg, size_t msgsz)
{
    lm_coord_t *c = ud;
    for (size_t i = 0; i < c->n; i++) {
        shard_t *sh = &c->shards[i];
        if (strcmp(sh->name, name) != 0)
            continue;
        if (!atomic_load(&sh->done) || sh->outcome != LM_ENGINE_FAILED) {
            snprintf(msg, msgsz,
                     "shard %s has not failed: only a failed shard is restarted (see its "
                     "state in GET /api/v1/status)",
                     name);
            return 409;
        }
        atomic_store(&sh->restart, true);
        snprintf(msg, msgsz, "shard %s restarts from its checkpoint; the other shards go on", name);
        return 202;
    }
    snprintf(msg, msgsz, "no shard named '%s' in this migration", name);
    return 404;
}

static bool start_shard(lm_coord_t *c, shard_t *sh)
{
    atomic_store(&sh->done, false);
    sh->started = pthread_create(&sh->thread, NULL, shard_main, sh) == 0;
    if (!sh->started) {
        lm_status_error(c->st, "shard %s: cannot start its thread", sh->name);
        sh->outcome = LM_ENGINE_FAILED;
        atomic_store(&sh->done, true);
    }
    return sh->started;
}

/* A failed shard restarted by the operator: a new engine on the same checkpoint key (it
 * resumes where the failed one recorded), its status reset (its errors kept as warnings). */
static void restart_shard(lm_coord_t *c, shard_t *sh)
{
    if (sh->started)
        pthread_join(sh->thread, NULL);
    sh->started = false;
    lm_engine_destroy(sh->e);
    pthread_mutex_lock(&sh->st.mu);
    for (size_t k = 0; k < sh->st.errors.n; k++) {
        char **items = realloc(sh->st.warnings.items, (sh->st.warnings.n + 1) * sizeof *items);
        if (!items)
            break;
        sh->st.warnings.items = items;
        sh->st.warnings.items[sh->st.warnings.n++] = sh->st.errors.items[k];
        sh->st.errors.items[k] = NULL;
    }
    lm_strlist_cleanup(&sh->st.errors);
    sh->st.state = LM_STATE_RUNNING;
    sh->st.finished_ms = 0;
    sh->st.phase = LM_PHASE_NEW;
    memset(&sh->st.stream, 0, sizeof sh->st.stream);
    pthread_mutex_unlock(&sh->st.mu);
    atomic_store(&sh->st.docs, 0);
    atomic_store(&sh->st.bytes, 0);
    atomic_store(&sh->st.dup_keys, 0);
    atomic_store(&sh->copy_started_ms, 0);
    atomic_store(&sh->stop, false);
    sh->failure_reported = false;
    lm_engine_opts_t eo = {.job = &sh->job,
                           .status = &sh->st,
                           .stop = &sh->stop,
                           .checkpoint_key = sh->key,
                           .cutover_gate = gate,
                           .gate_ud = c,
                           .existing_empty_ok = c->meta_ready_before};
    sh->e = lm_engine_new(&eo);
    atomic_store(&sh->restart, false);
    lm_status_warn(c->st, "shard %s restarted by the operator: it resumes from its checkpoint",
                   sh->name);
    if (!sh->e) {
        sh->outcome = LM_ENGINE_FAILED;
        atomic_store(&sh->done, true);
        return;
    }
    start_shard(c, sh);
}

/* Runs the engines side by side; the overall status follows them. Returns when all ended.
 * A shard that fails: with the status API (restartable), the others go on and the operator
 * restarts it (restart-shard) or cancels; without, the others are stopped (checkpointed:
 * run again to resume). */
static void run_engines(lm_coord_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        start_shard(c, &c->shards[i]);
    pthread_mutex_lock(&c->st->mu);
    c->st->restart_shard = c->o.restartable ? restart_hook : NULL;
    pthread_mutex_unlock(&c->st->mu);
    bool stopping = false;
    for (;;) {
        size_t done = 0;
        bool failed = false;
        for (size_t i = 0; i < c->n; i++) {
            shard_t *sh = &c->shards[i];
            if (!atomic_load(&sh->done))
                continue;
            if (atomic_load(&sh->restart) && !stopping) {
                restart_shard(c, sh);
                continue;
            }
            done++;
            if (sh->outcome != LM_ENGINE_FAILED)
                continue;
            failed = true;
            if (!sh->failure_reported && c->o.restartable)
                lm_status_warn(c->st,
                               "shard %s failed (%s): the other shards go on; fix the cause, "
                               "then run `livemig-agent restart-shard %s` (or POST "
                               "/api/v1/restart-shard?name=%s), or cancel",
                               sh->name, lm_engine_error(sh->e)->message, sh->name, sh->name);
            sh->failure_reported = true;
        }
        aggregate(c);
        bool cancel = atomic_load(&c->st->cancel);
        bool stop = cancel || (c->o.stop && atomic_load(c->o.stop));
        if (done == c->n && (!failed || stopping || !c->o.restartable))
            break;
        if (!stopping && (stop || (failed && !c->o.restartable))) {
            stopping = true;
            if (failed)
                lm_log_warn(NULL, "a shard failed: stopping the other shards (checkpointed)");
            for (size_t i = 0; i < c->n; i++) {
                if (cancel)
                    atomic_store(&c->shards[i].st.cancel, true);
                atomic_store(&c->shards[i].stop, true);
            }
        }
        lm_time_sleep_ms(250, NULL);
    }
    for (size_t i = 0; i < c->n; i++)
        if (c->shards[i].started)
            pthread_join(c->shards[i].thread, NULL);
    aggregate(c);
}

/* ---- the balancers ---- */

static void restart_balancers(lm_coord_t *c)
{
    lm_error_t e;
    struct {
        mongoc_client_t *router;
        bool stopped;
        atomic_int *state;
        const char *side, *hosts;
    } sides[] = {{c->src, c->src_balancer_stopped, &c->src_balancer, "source", c->src_hosts},
                 {c->dst, c->dst_balancer_stopped, &c->dst_balancer, "target", c->dst_hosts}};
    for (size_t i = 0; i < 2; i++) {
        if (!sides[i].stopped)
            continue;
        lm_error_init(&e);
        if (lm_balancer_start(sides[i].router, &e)) {
            atomic_store(sides[i].state, BAL_STARTED);
            lm_log_info(NULL, "%s: balancer started again", sides[i].side);
            continue;
        }
        atomic_store(sides[i].state, BAL_RESTART_REFUSED);
        c->balancer_refused = true;
        lm_status_warn(c->st,
                       "the %s cluster's balancer could not be started again (%s): START IT BY "
                       "HAND through a mongos of the %s (%s): sh.startBalancer() or the "
                       "balancerStart command",
                       sides[i].side, e.message, sides[i].side, sides[i].hosts);
    }
}

/* ---- the run ---- */

static lm_engine_outcome_t outcome_of(lm_coord_t *c)
{
    bool any_failed = false, any_cancelled = false, any_stopped = false, all_already = c->n > 0;
    for (size_t i = 0; i < c->n; i++) {
        lm_engine_outcome_t o = c->shards[i].outcome;
        any_failed = any_failed || o == LM_ENGINE_FAILED;
        any_cancelled = any_cancelled || o == LM_ENGINE_CANCELLED;
        any_stopped = any_stopped || o == LM_ENGINE_STOPPED;
        all_already = all_already && o == LM_ENGINE_ALREADY_COMPLETE;
    }
    if (atomic_load(&c->st->cancel) && (any_failed || any_cancelled || any_stopped))
        return LM_ENGINE_CANCELLED;
    if (any_failed)
        return LM_ENGINE_FAILED;
    if (any_cancelled || atomic_load(&c->st->cancel))
        return any_stopped || any_cancelled ? LM_ENGINE_CANCELLED : LM_ENGINE_COMPLETE;
    if (any_stopped)
        return LM_ENGINE_STOPPED;
    return all_already ? LM_ENGINE_ALREADY_COMPLETE : LM_ENGINE_COMPLETE;
}

static bool stop_balancers(lm_coord_t *c);

/* Connects, reads both clusters, takes the job's identity, stops the balancers (a lead). */
static bool prepare_clusters(lm_coord_t *c)
{
    lm_status_set_phase(c->st, LM_PHASE_VALIDATING);
    if (!(c->src = open_router(c->job, &c->job->source, "source", c->src_hosts, sizeof c->src_hosts,
                               &c->err)) ||
        !(c->dst = open_router(c->job, &c->job->target, "target", c->dst_hosts, sizeof c->dst_hosts,
                               &c->err)))
        return false;
    bool is_router;
    if (!lm_cluster_is_router(c->dst, &is_router, &c->err))
        return false;
    if (!is_router)
        return lm_error_set(&c->err, LM_ERR_INVALID,
                            "the source is a sharded cluster but the target %s is not a mongos: "
                            "give a mongos of a sharded cluster with the same number of shards",
                            c->dst_hosts);
    if (!lm_cluster_load(c->src, &c->scl, &c->err)) {
        lm_error_prefix(&c->err, "source");
        return false;
    }
    if (!reload_target(c))
        return false;
    if (c->scl.n_shards != c->dcl.n_shards)
        return lm_error_set(&c->err, LM_ERR_INVALID,
                            "the source has %zu shards and the target %zu: a sharded migration "
                            "copies shard to shard and needs the same number of shards (add or "
                            "remove shards on the target); nothing was written",
                            c->scl.n_shards, c->dcl.n_shards);
    if (!check_shard_list(c) || !load_identity(c))
        return false;
    lm_status_set_job_id(c->st, c->job_id);
    lm_log_info(NULL, "sharded migration %s: %zu shards, %zu databases, %zu sharded collections",
                c->job_id, c->scl.n_shards, c->scl.n_dbs, c->scl.n_colls);
    if (c->o.role != LM_JOB_ROLE_ALL) {
        char mine[512] = "";
        for (size_t i = 0; i < c->scl.n_shards; i++)
            if (runs_shard(c, c->scl.shards[i].name))
                snprintf(mine + strlen(mine), sizeof mine - strlen(mine), "%s%s", *mine ? ", " : "",
                         c->scl.shards[i].name);
        if (c->o.await_shards)
            lm_log_info(NULL,
                        "this agent is the lead of sharded migration %s and waits for the "
                        "control plane to assign its shards (--await-shards)",
                        c->job_id);
        else
            lm_log_info(NULL, "this agent is the %s of sharded migration %s and runs shards %s",
                        c->o.role == LM_JOB_ROLE_LEAD ? "lead" : "follower", c->job_id, mine);
        mongoc_client_t *cl = ready_client(c);
        bool ok = cl && meta_ready(c, cl, &c->meta_ready_before);
        if (cl)
            lm_conn_client_destroy(cl);
        if (!ok)
            return false;
    }
    if (c->leads && !stop_balancers(c))
        return false;
    return c->o.await_shards && c->o.role == LM_JOB_ROLE_LEAD ? await_assignment(c) : true;
}

/* The lead's part (or a lone coordinator's): the balancers stopped, the description read
 * again with them stopped. */
static bool stop_balancers(lm_coord_t *c)
{
    char mode[32] = "";
    bool in_round = false;
    if (!lm_balancer_status(c->src, mode, sizeof mode, &in_round, &c->err)) {
        lm_error_prefix(&c->err, "source balancer");
        return false;
    }
    if (in_round)
        lm_log_info(NULL,
                    "a balancer round is in progress on the source (mode %s): stopping the "
                    "balancer and waiting for the round to end",
                    mode);
    else
        lm_log_info(NULL, "stopping the source's balancer (mode %s)", mode);
    if (!lm_balancer_stop(c->src, BALANCER_STOP_MS, &c->err)) {
        lm_error_prefix(&c->err, "source balancer");
        return false;
    }
    c->src_balancer_stopped = true;
    atomic_store(&c->src_balancer, BAL_STOPPED);
    if (!lm_balancer_stop(c->dst, BALANCER_STOP_MS, &c->err)) {
        lm_error_prefix(&c->err, "target balancer");
        return false;
    }
    c->dst_balancer_stopped = true;
    atomic_store(&c->dst_balancer, BAL_STOPPED);
    lm_log_info(NULL, "balancers stopped on the source and the target");
    /* a round that was in progress may have moved chunks: the description used from here
     * on is read with the balancer stopped */
    lm_cluster_cleanup(&c->scl);
    if (!lm_cluster_load(c->src, &c->scl, &c->err)) {
        lm_error_prefix(&c->err, "source");
        return false;
    }
    if (c->scl.n_shards != c->dcl.n_shards)
        return lm_error_set(&c->err, LM_ERR_INVALID,
                            "the source's shards changed while its balancer was being stopped "
                            "(%zu now, the target has %zu): start the migration again",
                            c->scl.n_shards, c->dcl.n_shards);
    return true;
}

static bool prepare(lm_coord_t *c)
{
    if (!prepare_clusters(c))
        return false;
    if (c->leads && c->job->drop_target && c->fresh_identity && !c->meta_ready_before &&
        !wipe_target(c))
        return false;
    if (!setup_shards(c))
        return false;
    /* each engine pins its shard's start and creates its collections on its target shard;
     * the target's metadata is made to match while every target shard is still empty */
    bool fresh_copy = false;
    for (size_t i = 0; i < c->n; i++) {
        shard_t *sh = &c->shards[i];
        if (!lm_engine_prepare(sh->e)) {
            c->err = *lm_engine_error(sh->e);
            lm_error_prefix(&c->err, "shard %s", sh->name);
            return false;
        }
        fresh_copy = fresh_copy ||
                     (!lm_engine_resumes_streaming(sh->e) && !lm_engine_already_complete(sh->e));
    }
    if (!c->leads) /* a follower copies once the lead has made the metadata */
        return wait_meta_ready(c);
    bool recorded = c->o.role == LM_JOB_ROLE_LEAD && c->meta_ready_before;
    if ((fresh_copy || (c->o.role == LM_JOB_ROLE_LEAD && !recorded)) && !sync_metadata(c, false))
        return false;
    if (c->o.role == LM_JOB_ROLE_LEAD && !recorded && !record_meta_ready(c))
        return false;
    return true;
}

lm_engine_outcome_t lm_coord_run(lm_coord_t *c)
{
    lm_engine_outcome_t out;
    if (!prepare(c)) {
        if (lm_lease_stop(c->job, &c->err, "preparing"))
            out = atomic_load(&c->st->cancel) ? LM_ENGINE_CANCELLED : LM_ENGINE_STOPPED;
        else
            out = LM_ENGINE_FAILED;
    } else {
        run_engines(c);
        out = outcome_of(c);
        for (size_t i = 0; i < c->n; i++) {
            shard_t *sh = &c->shards[i];
            if (sh->outcome == LM_ENGINE_FAILED)
                lm_error_set(&c->err, LM_ERR_SERVER, "shard %s: %s", sh->name,
                             lm_engine_error(sh->e)->message);
        }
        if (out == LM_ENGINE_COMPLETE && c->leads && !sync_metadata(c, true))
            lm_status_warn(c->st, "the target's metadata could not be checked at the end: %s",
                           c->err.message);
    }
    if (out == LM_ENGINE_FAILED)
        lm_status_error(c->st, "%s", c->err.message);
    if (out == LM_ENGINE_STOPPED) {
        if (c->src_balancer_stopped)
            lm_log_warn(NULL, "the balancers stay stopped: run the same command again to resume, "
                              "or cancel to start them again");
    } else {
        restart_balancers(c);
    }
    if (out == LM_ENGINE_COMPLETE || out == LM_ENGINE_ALREADY_COMPLETE)
        lm_status_set_phase(c->st, LM_PHASE_COMPLETE);
    lm_state_t state = out == LM_ENGINE_FAILED      ? LM_STATE_FAILED
                       : out == LM_ENGINE_CANCELLED ? LM_STATE_CANCELLED
                       : out == LM_ENGINE_STOPPED   ? LM_STATE_STOPPED
                                                    : LM_STATE_COMPLETE;
    lm_status_set_state(c->st, state);
    /* a cancelled run is over: the next one with this state dir starts again (--drop-target) */
    if (out == LM_ENGINE_CANCELLED && c->job_id[0]) {
        lm_error_t keep = c->err;
        if (!write_identity(c, true))
            lm_log_warn(NULL, "%s/sharded.json: %s", c->job->state_dir, c->err.message);
        c->err = keep;
    }
    return out;
}

lm_coord_t *lm_coord_new(const lm_coord_opts_t *opts)
{
    lm_coord_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->o = *opts;
    c->job = opts->job;
    c->leads = opts->role != LM_JOB_ROLE_FOLLOWER;
    c->st = opts->status;
    lm_error_init(&c->err);
    lm_conn_global_init();
    pthread_mutex_lock(&c->st->mu);
    c->st->json_extra = json_shards;
    c->st->metrics_extra = metrics_shards;
    c->st->hook_ud = c;
    pthread_mutex_unlock(&c->st->mu);
    return c;
}

void lm_coord_destroy(lm_coord_t *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->st->mu);
    c->st->json_extra = NULL;
    c->st->metrics_extra = NULL;
    c->st->restart_shard = NULL;
    c->st->assign_check = NULL;
    c->st->hook_ud = NULL;
    pthread_mutex_unlock(&c->st->mu);
    for (size_t i = 0; i < c->n; i++) {
        lm_engine_destroy(c->shards[i].e);
        lm_status_cleanup(&c->shards[i].st);
        lm_wipe(c->shards[i].src_uri, sizeof c->shards[i].src_uri);
        lm_wipe(c->shards[i].dst_uri, sizeof c->shards[i].dst_uri);
    }
    free(c->shards);
    lm_strlist_cleanup(&c->assigned);
    lm_cluster_cleanup(&c->scl);
    lm_cluster_cleanup(&c->dcl);
    if (c->src)
        lm_conn_client_destroy(c->src);
    if (c->dst)
        lm_conn_client_destroy(c->dst);
    free(c);
}

const char *lm_coord_job_id(const lm_coord_t *c)
{
    return c->job_id;
}

size_t lm_coord_n_shards(const lm_coord_t *c)
{
    pthread_mutex_lock(&c->st->mu);
    size_t n = c->n;
    pthread_mutex_unlock(&c->st->mu);
    return n;
}

const char *lm_coord_shard_name(const lm_coord_t *c, size_t i)
{
    return c->shards[i].name;
}

const char *lm_coord_target_shard_name(const lm_coord_t *c, size_t i)
{
    return c->shards[i].target;
}

lm_status_t *lm_coord_shard_status(lm_coord_t *c, size_t i)
{
    return &c->shards[i].st;
}

bool lm_coord_balancer_restart_refused(const lm_coord_t *c)
{
    return c->balancer_refused;
}
