/* lm_validate_sharded: see lm_validate_sharded.h. Nothing is written to either cluster but
 * the index probe's scratch database on each target shard (dropped again, as for a replica
 * set). */
#include "lm_validate_sharded.h"

#include <stdio.h>
#include <string.h>

#include "lm_cluster.h"
#include "lm_conn.h"
#include "lm_encode.h"

typedef struct {
    char version[32];
    int major, minor;
    char fcv[16];
} version_t;

static void read_version(mongoc_client_t *c, version_t *v)
{
    bson_t reply, *cmd;
    bson_iter_t it;
    memset(v, 0, sizeof *v);
    cmd = BCON_NEW("buildInfo", BCON_INT32(1));
    if (mongoc_client_command_simple(c, "admin", cmd, NULL, &reply, NULL) &&
        bson_iter_init_find(&it, &reply, "version") && BSON_ITER_HOLDS_UTF8(&it)) {
        snprintf(v->version, sizeof v->version, "%s", bson_iter_utf8(&it, NULL));
        if (sscanf(v->version, "%d.%d", &v->major, &v->minor) != 2)
            v->major = v->minor = 0;
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    cmd = BCON_NEW("getParameter", BCON_INT32(1), "featureCompatibilityVersion", BCON_INT32(1));
    if (mongoc_client_command_simple(c, "admin", cmd, NULL, &reply, NULL) &&
        bson_iter_init(&it, &reply) &&
        bson_iter_find_descendant(&it, "featureCompatibilityVersion.version", &it) &&
        BSON_ITER_HOLDS_UTF8(&it))
        snprintf(v->fcv, sizeof v->fcv, "%s", bson_iter_utf8(&it, NULL));
    bson_destroy(&reply);
    bson_destroy(cmd);
}

/* getShardMap's map.config: "set/host:port,..." for config servers that are a replica set. */
static void config_servers(const lm_job_t *job, mongoc_client_t *src, lm_checks_t *out)
{
    bson_t reply, *cmd = BCON_NEW("getShardMap", BCON_INT32(1));
    bson_error_t be;
    bson_iter_t it;
    if (!mongoc_client_command_simple(src, "admin", cmd, NULL, &reply, &be)) {
        lm_checks_add(out, "config-servers", LM_PROTO_CHECK_WARN,
                      "the source's router did not say where its config servers are (getShardMap: "
                      "%s): check by hand that they are a replica set (CSRS, MongoDB 3.4+)",
                      be.message);
    } else if (bson_iter_init(&it, &reply) && bson_iter_find_descendant(&it, "map.config", &it) &&
               BSON_ITER_HOLDS_UTF8(&it)) {
        const char *cs = bson_iter_utf8(&it, NULL);
        const char *slash = strchr(cs, '/');
        if (slash && slash != cs) {
            lm_checks_add(out, "config-servers", LM_PROTO_CHECK_PASS,
                          "the config servers are replica set '%.*s' (CSRS): %s", (int)(slash - cs),
                          cs, slash + 1);
            /* the user's roles there, reached with the router's credentials and options */
            char uri[1200];
            lm_error_t err;
            lm_error_init(&err);
            if (lm_cluster_shard_uri(job->source.uri, cs, uri, sizeof uri, &err)) {
                lm_job_t cj = *job;
                cj.source.uri = uri;
                lm_validate_config_user(&cj, out);
            } else {
                lm_checks_add(out, "user-roles@config", LM_PROTO_CHECK_WARN,
                              "the config servers' address cannot be used (%s): check by hand "
                              "that the user has clusterMonitor and read on config there",
                              err.message);
            }
            lm_wipe(uri, sizeof uri);
        } else
            lm_checks_add(out, "config-servers", LM_PROTO_CHECK_FAIL,
                          "the config servers (%s) are not a replica set (mirrored SCCC config "
                          "servers): convert them to a config server replica set first",
                          cs);
    } else {
        lm_checks_add(out, "config-servers", LM_PROTO_CHECK_WARN,
                      "getShardMap names no config servers: check by hand that they are a "
                      "replica set (CSRS)");
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
}

static void balancer(mongoc_client_t *c, const char *side, lm_checks_t *out)
{
    char name[40], mode[32];
    bool in_round = false;
    lm_error_t err;
    lm_error_init(&err);
    snprintf(name, sizeof name, "%s-balancer", side);
    if (!lm_balancer_status(c, mode, sizeof mode, &in_round, &err))
        lm_checks_add(out, name, LM_PROTO_CHECK_FAIL,
                      "the %s's balancer cannot be read (%s): the migration stops and starts it; "
                      "give the user the clusterManager role (balancerStatus, balancerStop, "
                      "balancerStart)",
                      side, err.message);
    else
        lm_checks_add(out, name, LM_PROTO_CHECK_PASS,
                      "balancer mode '%s'%s: the migration stops it for its duration and starts "
                      "it again at the end",
                      mode,
                      in_round ? ", a round is in progress (the migration waits for it)" : "");
}

/* Each source shard's replica set is reached directly with the router's credentials and
 * its oplog read: engine i reads it. */
static void shards_reachable(const lm_job_t *job, const lm_cluster_t *cl, lm_checks_t *out)
{
    for (size_t i = 0; i < cl->n_shards; i++) {
        char uri[1200], name[LM_SHARD_NAME_MAX + 16];
        lm_error_t err;
        lm_error_init(&err);
        snprintf(name, sizeof name, "shard-%s", cl->shards[i].name);
        if (!lm_cluster_shard_uri(job->source.uri, cl->shards[i].host, uri, sizeof uri, &err)) {
            lm_checks_add(out, name, LM_PROTO_CHECK_FAIL, "%s", err.message);
            continue;
        }
        lm_conn_opts_t o =
            lm_conn_opts_for(job, &job->source, "source shard", uri, "livemig-validate");
        mongoc_client_t *c = lm_conn_client_new(&o, &err);
        memset(uri, 0, sizeof uri);
        if (!c) {
            lm_checks_add(out, name, LM_PROTO_CHECK_FAIL,
                          "%s: the agent reads every shard's replica set directly: open the "
                          "network path to it and give the user read on local",
                          err.message);
            continue;
        }
        mongoc_collection_t *oplog = mongoc_client_get_collection(c, "local", "oplog.rs");
        bson_t *f = bson_new(), *opts = BCON_NEW("sort", "{", "$natural", BCON_INT32(-1), "}",
                                                 "limit", BCON_INT64(1));
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(oplog, f, opts, NULL);
        const bson_t *d;
        bson_error_t be;
        bool got = mongoc_cursor_next(cur, &d);
        if (got)
            lm_checks_add(out, name, LM_PROTO_CHECK_PASS,
                          "replica set %s reached directly; its oplog is readable",
                          cl->shards[i].host);
        else if (mongoc_cursor_error(cur, &be))
            lm_checks_add(out, name, LM_PROTO_CHECK_FAIL,
                          "%s: its oplog cannot be read (%s): give the user read on local",
                          cl->shards[i].host, be.message);
        else
            lm_checks_add(out, name, LM_PROTO_CHECK_FAIL,
                          "%s: its oplog is empty or missing: every shard must be a replica set",
                          cl->shards[i].host);
        mongoc_cursor_destroy(cur);
        bson_destroy(f);
        bson_destroy(opts);
        mongoc_collection_destroy(oplog);
        lm_conn_client_destroy(c);
    }
}

/* Source shard i against target shard i, as the engines pair them: the replica-set checks
 * per pair (lm_validate_shard_pair), each line naming its shard. */
static void shard_pairs(const lm_job_t *job, const lm_cluster_t *scl, const lm_cluster_t *dcl,
                        lm_checks_t *out)
{
    for (size_t i = 0; i < scl->n_shards; i++) {
        char su[1200], du[1200], name[LM_SHARD_NAME_MAX + 16];
        lm_error_t err;
        lm_error_init(&err);
        snprintf(name, sizeof name, "shard-%s", scl->shards[i].name);
        if (!lm_cluster_shard_uri(job->source.uri, scl->shards[i].host, su, sizeof su, &err) ||
            !lm_cluster_shard_uri(job->target.uri, dcl->shards[i].host, du, sizeof du, &err)) {
            lm_checks_add(out, name, LM_PROTO_CHECK_FAIL, "%s", err.message);
            continue;
        }
        lm_job_t sj = *job;
        sj.source.uri = su;
        sj.target.uri = du;
        lm_validate_shard_pair(&sj, scl->shards[i].name, dcl->shards[i].name, out);
        lm_wipe(su, sizeof su);
        lm_wipe(du, sizeof du);
    }
}

void lm_validate_sharded(const lm_job_t *job, mongoc_client_t *src, mongoc_client_t *dst,
                         lm_checks_t *out)
{
    lm_cluster_t scl, dcl;
    lm_error_t err;
    bool have_src, have_dst = false, dst_router = false;
    lm_error_init(&err);
    memset(&dcl, 0, sizeof dcl);
    have_src = lm_cluster_load(src, &scl, &err);
    if (!have_src) {
        lm_checks_add(out, "source-sharded", LM_PROTO_CHECK_FAIL,
                      "the source is a mongos but its cluster cannot be read (%s): give the user "
                      "clusterMonitor and read on config",
                      err.message);
    } else {
        char names[512] = "";
        for (size_t i = 0; i < scl.n_shards && strlen(names) + 80 < sizeof names; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     scl.shards[i].name);
        lm_checks_add(out, "source-sharded", LM_PROTO_CHECK_PASS,
                      "the source is a sharded cluster of %zu shards (%s), %zu databases, %zu "
                      "sharded collections: migrated shard to shard",
                      scl.n_shards, names, scl.n_dbs, scl.n_colls);
    }
    config_servers(job, src, out);
    if (dst && lm_cluster_is_router(dst, &dst_router, &err) && dst_router)
        have_dst = lm_cluster_load(dst, &dcl, &err);
    if (!dst)
        lm_checks_add(out, "target-sharded", LM_PROTO_CHECK_FAIL,
                      "not checked: the target cannot be reached");
    else if (!dst_router)
        lm_checks_add(out, "target-sharded", LM_PROTO_CHECK_FAIL,
                      "the target is not a mongos: a sharded source migrates to a sharded "
                      "cluster with the same number of shards; give a mongos of it");
    else if (!have_dst)
        lm_checks_add(out, "target-sharded", LM_PROTO_CHECK_FAIL,
                      "the target's cluster cannot be read (%s): give the user clusterMonitor "
                      "and read on config",
                      err.message);
    else
        lm_checks_add(out, "target-sharded", LM_PROTO_CHECK_PASS,
                      "the target is a sharded cluster of %zu shards", dcl.n_shards);
    if (have_src && have_dst) {
        if (scl.n_shards == dcl.n_shards)
            lm_checks_add(out, "shard-count", LM_PROTO_CHECK_PASS,
                          "source and target have %zu shards each: source shard i goes to "
                          "target shard i (listShards order)",
                          scl.n_shards);
        else
            lm_checks_add(out, "shard-count", LM_PROTO_CHECK_FAIL,
                          "the source has %zu shards and the target %zu: a sharded migration "
                          "copies shard to shard; add or remove shards on the target until the "
                          "counts match (nothing is written before)",
                          scl.n_shards, dcl.n_shards);
        size_t used = 0;
        char names[512] = "";
        for (size_t i = 0; i < dcl.n_dbs; i++)
            if (lm_cluster_find_db(&scl, dcl.dbs[i].name) && strlen(names) + 140 < sizeof names) {
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                         used ? ", " : "", dcl.dbs[i].name);
                used++;
            }
        if (used)
            lm_checks_add(out, "target-namespaces", LM_PROTO_CHECK_FAIL,
                          "the target cluster already has %zu of the source's databases (%s): "
                          "drop them on the target first",
                          used, names);
        else
            lm_checks_add(out, "target-namespaces", LM_PROTO_CHECK_PASS,
                          "none of the source's databases exists on the target");
    } else {
        lm_checks_add(out, "shard-count", LM_PROTO_CHECK_FAIL,
                      "not checked: the %s's cluster cannot be read",
                      have_src ? "target" : "source");
    }
    if (dst) {
        version_t sv, dv;
        read_version(src, &sv);
        read_version(dst, &dv);
        if (!sv.major || !dv.major)
            lm_checks_add(out, "same-version", LM_PROTO_CHECK_WARN,
                          "the %s did not report its version: check by hand that both clusters "
                          "run the same major version and featureCompatibilityVersion",
                          sv.major ? "target" : "source");
        else if (sv.major != dv.major || sv.minor != dv.minor || strcmp(sv.fcv, dv.fcv) != 0)
            lm_checks_add(out, "same-version", LM_PROTO_CHECK_FAIL,
                          "source %s (FCV %s), target %s (FCV %s): a sharded migration needs the "
                          "same major version and featureCompatibilityVersion on both; upgrade "
                          "the older cluster first",
                          sv.version, sv.fcv[0] ? sv.fcv : "?", dv.version,
                          dv.fcv[0] ? dv.fcv : "?");
        else
            lm_checks_add(out, "same-version", LM_PROTO_CHECK_PASS, "both run %d.%d (FCV %s)",
                          sv.major, sv.minor, sv.fcv[0] ? sv.fcv : "not reported");
    }
    balancer(src, "source", out);
    if (dst && dst_router)
        balancer(dst, "target", out);
    if (have_src && have_dst && scl.n_shards == dcl.n_shards)
        shard_pairs(job, &scl, &dcl, out);
    else if (have_src)
        shards_reachable(job, &scl, out);
    if (have_src)
        lm_cluster_cleanup(&scl);
    if (have_dst)
        lm_cluster_cleanup(&dcl);
}
