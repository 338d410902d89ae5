/* lm_validate: see lm_validate.h. */
#include "lm_validate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_catalog.h"
#include "lm_conn.h"
#include "lm_fs.h"
#include "lm_stream.h"

#define LOW_DISK_BYTES (1024LL * 1024 * 1024) /* the state dir holds little, but logs grow */

void lm_checks_add(lm_checks_t *c, const char *name, lm_proto_check_result_t result,
                   const char *fmt, ...)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        lm_proto_check_t *items = realloc(c->items, cap * sizeof *items);
        if (!items)
            return;
        c->items = items;
        c->cap = cap;
    }
    lm_proto_check_t *k = &c->items[c->n++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    k->result = result;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->message, sizeof k->message, fmt, ap);
    va_end(ap);
}

bool lm_checks_failed(const lm_checks_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->items[i].result == LM_PROTO_CHECK_FAIL)
            return true;
    return false;
}

void lm_checks_cleanup(lm_checks_t *c)
{
    free(c->items);
    memset(c, 0, sizeof *c);
}

typedef struct {
    const char *side;
    mongoc_client_t *client;
    char hosts[256];
    char version[32];
    int major, minor;
    bool replica_set;
    char set_name[128];
} side_t;

/* Connects (the ping authenticates) and reads hello and buildInfo. */
static void reach(const lm_job_t *job, const lm_endpoint_t *ep, side_t *s, lm_checks_t *out)
{
    char name[32];
    lm_error_t err;
    lm_conn_opts_t o = {.side = s->side,
                        .uri = ep->uri,
                        .tls_ca_file = ep->tls_ca_file,
                        .username = ep->user,
                        .password = ep->password,
                        .connect_timeout_ms = (int32_t)job->connect_timeout_ms,
                        .app_name = "livemig-validate"};
    snprintf(name, sizeof name, "%s-reachable", s->side);
    mongoc_uri_t *uri = lm_conn_uri_new(&o, &err);
    if (uri) {
        lm_conn_hosts(uri, s->hosts, sizeof s->hosts);
        mongoc_uri_destroy(uri);
    }
    s->client = uri ? lm_conn_client_new(&o, &err) : NULL;
    if (!s->client) {
        lm_checks_add(out, name, LM_PROTO_CHECK_FAIL, "%s", err.message);
        return;
    }
    bson_t reply;
    bson_iter_t it;
    bson_t *cmd = BCON_NEW("hello", BCON_INT32(1));
    if (mongoc_client_command_simple(s->client, "admin", cmd, NULL, &reply, NULL) &&
        bson_iter_init_find(&it, &reply, "setName") && BSON_ITER_HOLDS_UTF8(&it)) {
        s->replica_set = true;
        snprintf(s->set_name, sizeof s->set_name, "%s", bson_iter_utf8(&it, NULL));
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    cmd = BCON_NEW("buildInfo", BCON_INT32(1));
    if (mongoc_client_command_simple(s->client, "admin", cmd, NULL, &reply, NULL) &&
        bson_iter_init_find(&it, &reply, "version") && BSON_ITER_HOLDS_UTF8(&it)) {
        snprintf(s->version, sizeof s->version, "%s", bson_iter_utf8(&it, NULL));
        if (sscanf(s->version, "%d.%d", &s->major, &s->minor) != 2)
            s->major = s->minor = 0;
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    lm_checks_add(out, name, LM_PROTO_CHECK_PASS, "reached %s and authenticated%s%s", s->hosts,
                  ep->user ? " as " : "", ep->user ? ep->user : "");
}

static void replica_set(const side_t *s, lm_checks_t *out)
{
    char name[32];
    snprintf(name, sizeof name, "%s-replica-set", s->side);
    if (!s->client)
        lm_checks_add(out, name, LM_PROTO_CHECK_FAIL, "not checked: %s cannot be reached", s->side);
    else if (s->replica_set)
        lm_checks_add(out, name, LM_PROTO_CHECK_PASS, "%s is replica set '%s'", s->hosts,
                      s->set_name);
    else
        lm_checks_add(out, name, LM_PROTO_CHECK_FAIL,
                      "%s is a standalone server: it keeps no change history; convert it to a "
                      "single-node replica set (start it with --replSet and run rs.initiate())",
                      s->hosts);
}

/* Whether the source's changes can be read the way the job will read them. */
static void change_history(const lm_job_t *job, const side_t *src, lm_checks_t *out)
{
    if (!src->client) {
        lm_checks_add(out, "change-history", LM_PROTO_CHECK_FAIL,
                      "not checked: the source cannot be reached");
        return;
    }
    lm_optime_t newest = {0, 0};
    int64_t wall = 0;
    bson_error_t be;
    memset(&be, 0, sizeof be);
    bool oplog = lm_stream_oplog_edge(src->client, -1, &newest, &wall, &be);
    if (oplog && job->capture != LM_JOB_CAPTURE_CHANGESTREAM) {
        lm_checks_add(out, "change-history", LM_PROTO_CHECK_PASS,
                      "local.oplog.rs is readable (newest entry Timestamp(%u, %u))", newest.t,
                      newest.i);
        return;
    }
    if (job->capture == LM_JOB_CAPTURE_OPLOG) {
        lm_checks_add(out, "change-history", LM_PROTO_CHECK_FAIL,
                      "capture mode oplog, but local.oplog.rs cannot be read%s%s: give the "
                      "source user read access to the local database (the backup or "
                      "readAnyDatabase role), or use capture mode changestream",
                      be.message[0] ? ": " : "", be.message);
        return;
    }
    bson_t *opts = BCON_NEW("maxAwaitTimeMS", BCON_INT64(100));
    mongoc_change_stream_t *cs = mongoc_client_watch(src->client, NULL, opts);
    const bson_t *ev, *errdoc = NULL;
    bson_error_t ce;
    mongoc_change_stream_next(cs, &ev);
    bool failed = mongoc_change_stream_error_document(cs, &ce, &errdoc);
    if (failed)
        lm_checks_add(out, "change-history", LM_PROTO_CHECK_FAIL,
                      "neither local.oplog.rs nor a cluster-wide change stream can be read on the "
                      "source (%s): give the source user the readAnyDatabase and "
                      "clusterMonitor roles, or read access to the local database",
                      ce.message);
    else
        lm_checks_add(out, "change-history", LM_PROTO_CHECK_PASS,
                      "%s: a cluster-wide change stream opens on the source",
                      job->capture == LM_JOB_CAPTURE_CHANGESTREAM
                          ? "capture mode changestream"
                          : "local.oplog.rs is not readable, so changes come from a change "
                            "stream");
    mongoc_change_stream_destroy(cs);
    bson_destroy(opts);
}

static void versions(const side_t *src, const side_t *dst, lm_checks_t *out)
{
    if (!src->client || !dst->client) {
        lm_checks_add(out, "versions", LM_PROTO_CHECK_FAIL, "not checked: the %s cannot be reached",
                      src->client ? "target" : "source");
    } else if (!src->major || !dst->major) {
        lm_checks_add(out, "versions", LM_PROTO_CHECK_WARN,
                      "the %s did not report its version (buildInfo): check by hand that the "
                      "target's version is the source's or newer",
                      src->major ? "target" : "source");
    } else if (dst->major < src->major || (dst->major == src->major && dst->minor < src->minor)) {
        lm_checks_add(out, "versions", LM_PROTO_CHECK_FAIL,
                      "the target runs %s, older than the source's %s: a live migration goes to "
                      "the same version or a newer one; upgrade the target",
                      dst->version, src->version);
    } else {
        lm_checks_add(out, "versions", LM_PROTO_CHECK_PASS, "source %s, target %s", src->version,
                      dst->version);
    }
}

/* Namespaces the job would copy that the target already holds. */
static void namespaces(const lm_job_t *job, const side_t *src, const side_t *dst, lm_checks_t *out)
{
    if (!src->client || !dst->client) {
        lm_checks_add(out, "namespaces", LM_PROTO_CHECK_FAIL,
                      "not checked: the %s cannot be reached", src->client ? "target" : "source");
        return;
    }
    lm_catalog_t cat;
    lm_error_t err;
    memset(&cat, 0, sizeof cat);
    if (!lm_catalog_load(src->client, job, &cat, &err)) {
        lm_checks_add(out, "namespaces", LM_PROTO_CHECK_FAIL, "%s", err.message);
        return;
    }
    lm_strbuf_t list;
    lm_strbuf_init(&list, 800);
    size_t n = 0;
    for (size_t i = 0; i < cat.n; i++) {
        if (!lm_catalog_target_has(dst->client, &cat.items[i]))
            continue;
        if (n < 10)
            lm_strbuf_appendf(&list, "%s%s", n ? ", " : "", cat.items[i].ns);
        n++;
    }
    if (n > 10)
        lm_strbuf_appendf(&list, " and %zu more", n - 10);
    if (n == 0)
        lm_checks_add(out, "namespaces", LM_PROTO_CHECK_PASS,
                      "none of the %zu namespaces to copy exists on the target", cat.n);
    else if (job->drop_target)
        lm_checks_add(out, "namespaces", LM_PROTO_CHECK_WARN,
                      "the target already holds %zu of the namespaces to copy (%s): they are "
                      "DROPPED when the migration starts (dropDestinationData)",
                      n, lm_strbuf_str(&list));
    else
        lm_checks_add(out, "namespaces", LM_PROTO_CHECK_FAIL,
                      "the target already holds %zu of the namespaces to copy (%s): drop them "
                      "on the target, exclude them, or migrate with dropDestinationData",
                      n, lm_strbuf_str(&list));
    lm_strbuf_cleanup(&list);
    lm_catalog_cleanup(&cat);
}

static void host_disk(const char *state_dir, lm_checks_t *out)
{
    uint64_t free_bytes = 0;
    lm_error_t err;
    if (!lm_fs_mkdir_p(state_dir, 0700, &err) || !lm_fs_free_bytes(state_dir, &free_bytes, &err))
        lm_checks_add(out, "host-disk", LM_PROTO_CHECK_FAIL, "state directory %s: %s", state_dir,
                      err.message);
    else if (free_bytes < LOW_DISK_BYTES)
        lm_checks_add(out, "host-disk", LM_PROTO_CHECK_WARN,
                      "only %.0f MB free for the state directory %s: free at least 1 GB",
                      (double)free_bytes / 1e6, state_dir);
    else
        lm_checks_add(out, "host-disk", LM_PROTO_CHECK_PASS, "%.1f GB free for %s",
                      (double)free_bytes / 1e9, state_dir);
}

void lm_validate(const lm_job_t *job, const char *host_state_dir, lm_checks_t *out)
{
    side_t src = {.side = "source"}, dst = {.side = "target"};
    lm_conn_global_init();
    reach(job, &job->source, &src, out);
    reach(job, &job->target, &dst, out);
    replica_set(&src, out);
    replica_set(&dst, out);
    change_history(job, &src, out);
    versions(&src, &dst, out);
    namespaces(job, &src, &dst, out);
    host_disk(host_state_dir, out);
    if (src.client)
        mongoc_client_destroy(src.client);
    if (dst.client)
        mongoc_client_destroy(dst.client);
}
