/* lm_validate: see lm_validate.h. */
#include "lm_validate.h"
#include "lm_validate_sharded.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lm_catalog.h"
#include "lm_encode.h"
#include "lm_conn.h"
#include "lm_fs.h"
#include "lm_ns.h"
#include "lm_time.h"
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
    char fcv[16]; /* featureCompatibilityVersion, "" when not reported */
    bool replica_set;
    bool router; /* hello said isdbgrid: a mongos */
    char set_name[128];
    char mechs[128]; /* the SASL mechanisms the server offers the user */
    bool oplog;      /* local.oplog.rs read by change_history: its newest entry */
    lm_optime_t newest;
    int64_t newest_wall;
} side_t;

/* Runs a command (destroying it); reply is always initialised. */
static bool run(mongoc_client_t *c, const char *db, bson_t *command, bson_t *reply, bson_error_t *e)
{
    bool ok = mongoc_client_command_simple(c, db, command, NULL, reply, e);
    bson_destroy(command);
    return ok;
}

static int64_t as_int(const bson_iter_t *it)
{
    return BSON_ITER_HOLDS_NUMBER(it) ? bson_iter_as_int64(it) : 0;
}

static void human_bytes(double b, char *buf, size_t size)
{
    const char *units[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (b >= 1000 && u < 4)
        b /= 1000, u++;
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

/* Connects (the ping authenticates) and reads hello and buildInfo. */
static void reach(const lm_job_t *job, const lm_endpoint_t *ep, side_t *s, lm_checks_t *out)
{
    char name[32];
    lm_error_t err;
    lm_conn_opts_t o = lm_conn_opts_for(job, ep, s->side, NULL, "livemig-validate");
    snprintf(name, sizeof name, "%s-reachable", s->side);
    mongoc_uri_t *uri = lm_conn_uri_new(&o, &err);
    if (uri)
        lm_conn_hosts(uri, s->hosts, sizeof s->hosts);
    const char *insecure = uri ? lm_conn_insecure_tls_option(uri) : NULL;
    if (insecure) { /* only reachable with allow_insecure_tls */
        char tname[40];
        snprintf(tname, sizeof tname, "%s-tls-verification", s->side);
        lm_checks_add(out, tname, LM_PROTO_CHECK_WARN,
                      "the URI option %s=true turns TLS certificate checks off (allowed by "
                      "allow_insecure_tls): anyone on the path can read and change the data",
                      insecure);
    }
    char auth_source[128] = "admin";
    if (uri && mongoc_uri_get_auth_source(uri))
        snprintf(auth_source, sizeof auth_source, "%s", mongoc_uri_get_auth_source(uri));
    s->client = uri ? lm_conn_client_new(&o, &err) : NULL;
    if (uri)
        mongoc_uri_destroy(uri);
    if (!s->client) {
        lm_checks_add(out, name, LM_PROTO_CHECK_FAIL, "%s", err.message);
        return;
    }
    bson_t reply;
    bson_iter_t it, arr;
    char who[300];
    snprintf(who, sizeof who, "%s.%s", auth_source, ep->user ? ep->user : "");
    bson_t *cmd = BCON_NEW("hello", BCON_INT32(1), "saslSupportedMechs", BCON_UTF8(who));
    bool hello_ok = mongoc_client_command_simple(s->client, "admin", cmd, NULL, &reply, NULL);
    s->router = hello_ok && bson_iter_init_find(&it, &reply, "msg") && BSON_ITER_HOLDS_UTF8(&it) &&
                strcmp(bson_iter_utf8(&it, NULL), "isdbgrid") == 0;
    if (hello_ok && bson_iter_init_find(&it, &reply, "setName") && BSON_ITER_HOLDS_UTF8(&it)) {
        s->replica_set = true;
        snprintf(s->set_name, sizeof s->set_name, "%s", bson_iter_utf8(&it, NULL));
    }
    if (bson_iter_init_find(&it, &reply, "saslSupportedMechs") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &arr))
        while (bson_iter_next(&arr))
            if (BSON_ITER_HOLDS_UTF8(&arr) && strlen(s->mechs) + 40 < sizeof s->mechs)
                snprintf(s->mechs + strlen(s->mechs), sizeof s->mechs - strlen(s->mechs), "%s%s",
                         s->mechs[0] ? ", " : "", bson_iter_utf8(&arr, NULL));
    bson_destroy(&reply);
    bson_destroy(cmd);
    if (run(s->client, "admin",
            BCON_NEW("getParameter", BCON_INT32(1), "featureCompatibilityVersion", BCON_INT32(1)),
            &reply, NULL) &&
        bson_iter_init(&it, &reply) &&
        bson_iter_find_descendant(&it, "featureCompatibilityVersion.version", &it) &&
        BSON_ITER_HOLDS_UTF8(&it))
        snprintf(s->fcv, sizeof s->fcv, "%s", bson_iter_utf8(&it, NULL));
    bson_destroy(&reply);
    cmd = BCON_NEW("buildInfo", BCON_INT32(1));
    if (mongoc_client_command_simple(s->client, "admin", cmd, NULL, &reply, NULL) &&
        bson_iter_init_find(&it, &reply, "version") && BSON_ITER_HOLDS_UTF8(&it)) {
        snprintf(s->version, sizeof s->version, "%s", bson_iter_utf8(&it, NULL));
        if (sscanf(s->version, "%d.%d", &s->major, &s->minor) != 2)
            s->major = s->minor = 0;
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    if (ep->user)
        lm_checks_add(out, name, LM_PROTO_CHECK_PASS,
                      "reached %s and authenticated as %s (the server offers %s; libmongoc picks "
                      "SCRAM-SHA-256 where offered, else SCRAM-SHA-1)",
                      s->hosts, ep->user, s->mechs[0] ? s->mechs : "no SCRAM list");
    else
        lm_checks_add(out, name, LM_PROTO_CHECK_PASS, "reached %s (no user given)", s->hosts);
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
static void change_history(const lm_job_t *job, side_t *src, lm_checks_t *out)
{
    if (!src->client) {
        lm_checks_add(out, "change-history", LM_PROTO_CHECK_FAIL,
                      "not checked: the source cannot be reached");
        return;
    }
    if (!src->replica_set) {
        lm_checks_add(out, "change-history", LM_PROTO_CHECK_FAIL,
                      "a standalone server keeps no change history (no oplog, no change "
                      "streams): convert the source to a single-node replica set");
        return;
    }
    bson_error_t be;
    memset(&be, 0, sizeof be);
    /* kept for oplog_window: on some servers every oplog query scans the whole oplog */
    src->oplog = lm_stream_oplog_edge(src->client, -1, &src->newest, &src->newest_wall, &be);
    if (src->oplog && job->capture != LM_JOB_CAPTURE_CHANGESTREAM) {
        lm_checks_add(out, "change-history", LM_PROTO_CHECK_PASS,
                      "local.oplog.rs is readable (newest entry Timestamp(%u, %u))", src->newest.t,
                      src->newest.i);
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
    bson_t pipeline = BSON_INITIALIZER; /* libmongoc refuses NULL */
    mongoc_change_stream_t *cs = mongoc_client_watch(src->client, &pipeline, opts);
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
    bson_destroy(&pipeline);
    bson_destroy(opts);
}

/* The migration paths: a source of 4.2 or later goes to the same major.minor or a newer
 * one (4.2 -> 4.2+, 4.4 -> 4.4+, 5.0 -> 5.0+, 6.0 -> 6.0+, 7.0 -> 7.0+, 8.0 -> 8.0+); both
 * featureCompatibilityVersions are read and compared the same way. */
static int vcmp(int amaj, int amin, int bmaj, int bmin)
{
    return amaj != bmaj ? (amaj < bmaj ? -1 : 1) : (amin < bmin ? -1 : amin > bmin);
}

static void versions(const side_t *src, const side_t *dst, lm_checks_t *out)
{
    int sfmaj = 0, sfmin = 0, dfmaj = 0, dfmin = 0;
    bool sf = sscanf(src->fcv, "%d.%d", &sfmaj, &sfmin) == 2;
    bool df = sscanf(dst->fcv, "%d.%d", &dfmaj, &dfmin) == 2;
    if (!src->client || !dst->client) {
        lm_checks_add(out, "versions", LM_PROTO_CHECK_FAIL, "not checked: the %s cannot be reached",
                      src->client ? "target" : "source");
    } else if (!src->major || !dst->major) {
        lm_checks_add(out, "versions", LM_PROTO_CHECK_WARN,
                      "the %s did not report its version (buildInfo): check by hand that the "
                      "target's version is the source's or newer",
                      src->major ? "target" : "source");
    } else if (vcmp(src->major, src->minor, 4, 2) < 0) {
        lm_checks_add(out, "versions", LM_PROTO_CHECK_FAIL,
                      "the source runs %s: live migration starts from 4.2 or later; upgrade the "
                      "source first",
                      src->version);
    } else if (vcmp(dst->major, dst->minor, src->major, src->minor) < 0) {
        lm_checks_add(out, "versions", LM_PROTO_CHECK_FAIL,
                      "the target runs %s, older than the source's %s: a live migration goes to "
                      "the same version or a newer one (%d.%d -> %d.%d or later); upgrade the "
                      "target",
                      dst->version, src->version, src->major, src->minor, src->major, src->minor);
    } else if (sf && df && vcmp(dfmaj, dfmin, sfmaj, sfmin) < 0) {
        lm_checks_add(out, "versions", LM_PROTO_CHECK_FAIL,
                      "the target's featureCompatibilityVersion %s is older than the source's "
                      "%s: raise it on the target (setFeatureCompatibilityVersion)",
                      dst->fcv, src->fcv);
    } else if (sf && vcmp(sfmaj, sfmin, src->major, src->minor) < 0) {
        lm_checks_add(out, "versions", LM_PROTO_CHECK_WARN,
                      "the source runs %s with featureCompatibilityVersion %s: its upgrade is "
                      "unfinished; finish it (setFeatureCompatibilityVersion) before migrating",
                      src->version, src->fcv);
    } else {
        lm_checks_add(out, "versions", LM_PROTO_CHECK_PASS,
                      "source %s (featureCompatibilityVersion %s) -> target %s (%s): a "
                      "supported path",
                      src->version, sf ? src->fcv : "not reported", dst->version,
                      df ? dst->fcv : "not reported");
    }
}

/* The roles connectionStatus reports, "role@db, ..." ("" when the server asks for none). */
static void roles_of(mongoc_client_t *c, char *buf, size_t size, bool *authenticated)
{
    bson_t reply;
    bson_iter_t it, arr, doc;
    buf[0] = '\0';
    *authenticated = false;
    if (run(c, "admin", BCON_NEW("connectionStatus", BCON_INT32(1)), &reply, NULL) &&
        bson_iter_init(&it, &reply)) {
        bson_iter_t users = it;
        *authenticated = bson_iter_find_descendant(&users, "authInfo.authenticatedUsers.0", &users);
        if (bson_iter_find_descendant(&it, "authInfo.authenticatedUserRoles", &it) &&
            BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr))
            while (bson_iter_next(&arr))
                if (BSON_ITER_HOLDS_DOCUMENT(&arr) && bson_iter_recurse(&arr, &doc)) {
                    const char *role = "?", *db = "?";
                    while (bson_iter_next(&doc)) {
                        if (strcmp(bson_iter_key(&doc), "role") == 0 && BSON_ITER_HOLDS_UTF8(&doc))
                            role = bson_iter_utf8(&doc, NULL);
                        else if (strcmp(bson_iter_key(&doc), "db") == 0 &&
                                 BSON_ITER_HOLDS_UTF8(&doc))
                            db = bson_iter_utf8(&doc, NULL);
                    }
                    size_t n = strlen(buf);
                    snprintf(buf + n, size - n, "%s%s@%s", n ? ", " : "", role, db);
                }
    }
    bson_destroy(&reply);
}

/* The source user must list every database and read every collection: the roles are
 * reported, and the reads themselves are tried (roles differ between servers; a read is
 * the truth). The oplog read is the change-history check's. */
static void source_privileges(const side_t *src, lm_checks_t *out)
{
    if (!src->client) {
        lm_checks_add(out, "source-privileges", LM_PROTO_CHECK_FAIL,
                      "not checked: the source cannot be reached");
        return;
    }
    char roles[400];
    bool authenticated;
    roles_of(src->client, roles, sizeof roles, &authenticated);
    bson_error_t e;
    bson_t *opts = BCON_NEW("nameOnly", BCON_BOOL(true));
    char **dbs = mongoc_client_get_database_names_with_opts(src->client, opts, &e);
    bson_destroy(opts);
    if (!dbs) {
        lm_checks_add(out, "source-privileges", LM_PROTO_CHECK_FAIL,
                      "the source user cannot list databases (%s): grant it readAnyDatabase, "
                      "clusterMonitor and backup (its roles now: %s)",
                      e.message, roles[0] ? roles : "none");
        return;
    }
    lm_strbuf_t refused;
    lm_strbuf_init(&refused, 600);
    size_t n_refused = 0, n_read = 0;
    for (size_t i = 0; dbs[i] && n_read < 64; i++) {
        if (lm_ns_db_is_internal(dbs[i]))
            continue;
        n_read++;
        mongoc_database_t *db = mongoc_client_get_database(src->client, dbs[i]);
        char **colls = mongoc_database_get_collection_names_with_opts(db, NULL, &e);
        bool ok = colls != NULL;
        if (ok && colls[0]) {
            mongoc_collection_t *c = mongoc_client_get_collection(src->client, dbs[i], colls[0]);
            bson_t *fopts = BCON_NEW("limit", BCON_INT64(1));
            bson_t filter = BSON_INITIALIZER;
            mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, &filter, fopts, NULL);
            const bson_t *d;
            mongoc_cursor_next(cur, &d);
            ok = !mongoc_cursor_error(cur, &e);
            mongoc_cursor_destroy(cur);
            bson_destroy(fopts);
            mongoc_collection_destroy(c);
        }
        bson_strfreev(colls);
        mongoc_database_destroy(db);
        if (!ok) {
            if (n_refused < 8)
                lm_strbuf_appendf(&refused, "%s%s", n_refused ? ", " : "", dbs[i]);
            n_refused++;
        }
    }
    bson_strfreev(dbs);
    if (n_refused)
        lm_checks_add(out, "source-privileges", LM_PROTO_CHECK_FAIL,
                      "the source user cannot read %zu database(s): %s (%s): grant it "
                      "readAnyDatabase, clusterMonitor and backup (its roles now: %s)",
                      n_refused, lm_strbuf_str(&refused), e.message, roles[0] ? roles : "none");
    else if (!authenticated)
        lm_checks_add(out, "source-privileges", LM_PROTO_CHECK_PASS,
                      "the source asks for no authentication; every database (%zu) is readable",
                      n_read);
    else
        lm_checks_add(out, "source-privileges", LM_PROTO_CHECK_PASS,
                      "the source user (roles: %s) lists and reads every database (%zu)",
                      roles[0] ? roles : "none reported", n_read);
    lm_strbuf_cleanup(&refused);
}

/* The data the copy moves: the sum of dataSize over the databases to copy (storage sizes
 * are compressed; the copy moves documents). */
static int64_t source_bytes(const side_t *src, const lm_catalog_t *cat)
{
    int64_t total = 0;
    for (size_t i = 0; i < cat->n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(cat->items[j].db, cat->items[i].db) == 0;
        if (seen)
            continue;
        bson_t reply;
        bson_iter_t it;
        if (run(src->client, cat->items[i].db, BCON_NEW("dbStats", BCON_INT32(1)), &reply, NULL) &&
            bson_iter_init_find(&it, &reply, "dataSize"))
            total += as_int(&it);
        bson_destroy(&reply);
    }
    return total;
}

static void target_disk(const side_t *dst, int64_t need, lm_checks_t *out)
{
    bson_t reply;
    bson_iter_t it;
    int64_t fs_total = -1, fs_used = -1;
    char need_s[32], free_s[32];
    if (run(dst->client, "admin", BCON_NEW("dbStats", BCON_INT32(1)), &reply, NULL)) {
        if (bson_iter_init_find(&it, &reply, "fsTotalSize"))
            fs_total = as_int(&it);
        if (bson_iter_init_find(&it, &reply, "fsUsedSize"))
            fs_used = as_int(&it);
    }
    bson_destroy(&reply);
    human_bytes((double)need, need_s, sizeof need_s);
    if (fs_total <= 0 || fs_used < 0) {
        lm_checks_add(out, "target-disk", LM_PROTO_CHECK_WARN,
                      "the target does not report its free disk space (dbStats fsTotalSize): "
                      "could not be checked; make sure it has room for %s of documents plus "
                      "their indexes",
                      need_s);
        return;
    }
    int64_t free_bytes = fs_total - fs_used;
    human_bytes((double)free_bytes, free_s, sizeof free_s);
    if (free_bytes < need)
        lm_checks_add(out, "target-disk", LM_PROTO_CHECK_FAIL,
                      "the target has %s free, the source holds %s of documents: grow the "
                      "target's disk first",
                      free_s, need_s);
    else
        lm_checks_add(out, "target-disk", LM_PROTO_CHECK_PASS,
                      "the target has %s free for %s of documents", free_s, need_s);
}

/* geoHaystack indexes (gone in 5.0), and the index kinds the target refuses, found by
 * building each distinct kind on an empty collection of a scratch database on the target
 * (dropped afterwards). */
static void indexes(const side_t *src, const side_t *dst, const lm_catalog_t *cat, lm_checks_t *out)
{
    lm_strbuf_t haystack, refused;
    lm_strbuf_init(&haystack, 600);
    lm_strbuf_init(&refused, 800);
    size_t n_haystack = 0, n_refused = 0, n_kinds = 0;
    char(*kinds)[512] = calloc(100, sizeof *kinds);
    char scratch[64], hex[17];
    if (!lm_random_hex(hex, 8))
        snprintf(hex, sizeof hex, "%016llx",
                 (unsigned long long)lm_time_now_ms() ^ (unsigned long long)getpid());
    snprintf(scratch, sizeof scratch, "livemig_validate_%s", hex);
    mongoc_database_t *sdb = mongoc_client_get_database(dst->client, scratch);
    for (size_t i = 0; kinds && i < cat->n; i++) {
        bson_iter_t it;
        if (!cat->items[i].indexes || !bson_iter_init(&it, cat->items[i].indexes))
            continue;
        while (bson_iter_next(&it)) {
            bson_t spec;
            const uint8_t *data;
            uint32_t len;
            if (!BSON_ITER_HOLDS_DOCUMENT(&it))
                continue;
            bson_iter_document(&it, &len, &data);
            if (!bson_init_static(&spec, data, len))
                continue;
            bson_iter_t f;
            const char *name = bson_iter_init_find(&f, &spec, "name") && BSON_ITER_HOLDS_UTF8(&f)
                                   ? bson_iter_utf8(&f, NULL)
                                   : "?";
            bson_iter_t key, kv;
            bool hay = false;
            if (bson_iter_init_find(&key, &spec, "key") && BSON_ITER_HOLDS_DOCUMENT(&key) &&
                bson_iter_recurse(&key, &kv))
                while (bson_iter_next(&kv))
                    hay |= BSON_ITER_HOLDS_UTF8(&kv) &&
                           strcmp(bson_iter_utf8(&kv, NULL), "geoHaystack") == 0;
            if (hay) {
                if (n_haystack < 10)
                    lm_strbuf_appendf(&haystack, "%s%s.%s", n_haystack ? ", " : "",
                                      cat->items[i].ns, name);
                n_haystack++;
                continue;
            }
            /* the kind: the spec without name, ns, v */
            bson_t kind = BSON_INITIALIZER;
            bson_copy_to_excluding_noinit(&spec, &kind, "name", "ns", "v", NULL);
            char *json = bson_as_relaxed_extended_json(&kind, NULL);
            bool known = false;
            for (size_t k = 0; json && k < n_kinds && !known; k++)
                known = strcmp(kinds[k], json) == 0;
            if (json && !known && n_kinds < 100) {
                snprintf(kinds[n_kinds], sizeof kinds[0], "%s", json);
                char probe[16];
                snprintf(probe, sizeof probe, "p%zu", n_kinds++);
                BSON_APPEND_UTF8(&kind, "name", probe);
                bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8("probe"), "indexes", "[",
                                       BCON_DOCUMENT(&kind), "]");
                bson_t reply;
                bson_error_t e;
                if (!mongoc_database_command_simple(sdb, cmd, NULL, &reply, &e)) {
                    if (n_refused < 10)
                        lm_strbuf_appendf(&refused, "%s%s.%s (%s)", n_refused ? "; " : "",
                                          cat->items[i].ns, name, e.message);
                    n_refused++;
                }
                bson_destroy(&reply);
                bson_destroy(cmd);
            }
            bson_free(json);
            bson_destroy(&kind);
        }
    }
    bson_error_t e;
    mongoc_database_drop(sdb, &e);
    mongoc_database_destroy(sdb);
    free(kinds);
    if (n_haystack && dst->major >= 5)
        lm_checks_add(out, "indexes", LM_PROTO_CHECK_FAIL,
                      "%zu geoHaystack index(es) on the source cannot exist on the target (%s; "
                      "5.0 removed them): replace them with 2d indexes first: %s",
                      n_haystack, dst->version, lm_strbuf_str(&haystack));
    else if (n_refused)
        lm_checks_add(out, "indexes", LM_PROTO_CHECK_WARN,
                      "the target refuses %zu of the %zu index kinds the source uses; these "
                      "indexes will be missing on the target (tried on a scratch database): %s",
                      n_refused, n_kinds, lm_strbuf_str(&refused));
    else if (vcmp(src->major, src->minor, 4, 2) < 0)
        lm_checks_add(out, "indexes", LM_PROTO_CHECK_WARN,
                      "the source (%s) is older than 4.2: index keys over 1024 bytes it kept "
                      "are refused by newer targets; find them before migrating",
                      src->version);
    else
        lm_checks_add(out, "indexes", LM_PROTO_CHECK_PASS,
                      "the target builds every index kind the source uses (%zu kinds tried on "
                      "a scratch database)",
                      n_kinds);
    lm_strbuf_cleanup(&haystack);
    lm_strbuf_cleanup(&refused);
}

/* Users and roles are not migrated: the list to recreate. */
static void users(const side_t *src, lm_checks_t *out)
{
    bson_t reply;
    bson_iter_t it, arr, doc;
    bson_error_t e;
    if (!run(src->client, "admin",
             BCON_NEW("usersInfo", BCON_INT32(1), "forAllDBs", BCON_BOOL(true)), &reply, &e)) {
        lm_checks_add(out, "users-and-roles", LM_PROTO_CHECK_INFO,
                      "users and roles are not migrated; the source's users could not be listed "
                      "(%s): recreate them on the target by hand",
                      e.message);
        bson_destroy(&reply);
        return;
    }
    lm_strbuf_t list;
    lm_strbuf_init(&list, 800);
    size_t n = 0;
    if (bson_iter_init_find(&it, &reply, "users") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &arr))
        while (bson_iter_next(&arr)) {
            if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &doc))
                continue;
            const char *user = "?", *db = "?";
            while (bson_iter_next(&doc)) {
                if (strcmp(bson_iter_key(&doc), "user") == 0 && BSON_ITER_HOLDS_UTF8(&doc))
                    user = bson_iter_utf8(&doc, NULL);
                else if (strcmp(bson_iter_key(&doc), "db") == 0 && BSON_ITER_HOLDS_UTF8(&doc))
                    db = bson_iter_utf8(&doc, NULL);
            }
            if (n < 30)
                lm_strbuf_appendf(&list, "%s%s@%s", n ? ", " : "", user, db);
            n++;
        }
    bson_destroy(&reply);
    if (n > 30)
        lm_strbuf_appendf(&list, " and %zu more", n - 30);
    if (n)
        lm_checks_add(out, "users-and-roles", LM_PROTO_CHECK_INFO,
                      "users and roles are not migrated: recreate these %zu user(s) and their "
                      "custom roles on the target: %s",
                      n, lm_strbuf_str(&list));
    else
        lm_checks_add(out, "users-and-roles", LM_PROTO_CHECK_INFO,
                      "the source has no users; users and roles are not migrated");
    lm_strbuf_cleanup(&list);
}

/* Bytes per second one reader gets from the source: up to 2 s or 16 MB of the first
 * collection with documents. */
static double read_rate(const side_t *src, const lm_catalog_t *cat)
{
    for (size_t i = 0; i < cat->n; i++) {
        if (lm_coll_is_view(&cat->items[i]))
            continue;
        mongoc_collection_t *c =
            mongoc_client_get_collection(src->client, cat->items[i].db, cat->items[i].coll);
        bson_t filter = BSON_INITIALIZER;
        bson_t *opts = BCON_NEW("batchSize", BCON_INT32(1000));
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, &filter, opts, NULL);
        const bson_t *d;
        int64_t bytes = 0, start = lm_time_mono_ms();
        while (bytes < (16 << 20) && lm_time_mono_ms() - start < 2000 &&
               mongoc_cursor_next(cur, &d))
            bytes += d->len;
        int64_t took = lm_time_mono_ms() - start;
        mongoc_cursor_destroy(cur);
        bson_destroy(opts);
        mongoc_collection_destroy(c);
        if (bytes > 0)
            return (double)bytes * 1000.0 / (double)(took > 0 ? took : 1);
    }
    return 0;
}

static void duration(double ms, char *buf, size_t size)
{
    lm_time_format_duration((int64_t)ms, buf, size);
    if (ms < 1000)
        snprintf(buf, size, "%.0f ms", ms);
}

/* The source's history must outlast the copy: otherwise the changes made during the copy
 * are gone before the stream reads them. */
static void oplog_window(const lm_job_t *job, const side_t *src, const lm_catalog_t *cat,
                         int64_t bytes, lm_checks_t *out)
{
    lm_optime_t oldest, newest = src->newest;
    int64_t oldest_wall = 0, newest_wall = src->newest_wall;
    bson_error_t e;
    if (job->capture == LM_JOB_CAPTURE_CHANGESTREAM || !src->oplog ||
        !lm_stream_oplog_edge(src->client, 1, &oldest, &oldest_wall, &e)) {
        lm_checks_add(out, "oplog-window", LM_PROTO_CHECK_WARN,
                      "the source's oplog cannot be read, so its window could not be checked: "
                      "make sure the change history the change stream reads covers the copy");
        return;
    }
    double window_ms = oldest_wall && newest_wall ? (double)(newest_wall - oldest_wall)
                                                  : ((double)newest.t - (double)oldest.t) * 1000.0;
    char win[32], est[32], size_s[32];
    duration(window_ms, win, sizeof win);
    human_bytes((double)bytes, size_s, sizeof size_s);
    double rate = bytes > 0 ? read_rate(src, cat) : 0;
    if (bytes <= 0 || rate <= 0) {
        lm_checks_add(out, "oplog-window", LM_PROTO_CHECK_PASS,
                      "the source's oplog holds %s of history; there is next to nothing to copy",
                      win);
        return;
    }
    double est_ms = (double)bytes / rate * 1000.0;
    duration(est_ms, est, sizeof est);
    if (window_ms < est_ms * 1.5)
        lm_checks_add(out, "oplog-window", LM_PROTO_CHECK_WARN,
                      "the source's oplog holds only %s of history; the copy of %s is estimated "
                      "at %s (%.1f MB/s measured from one reader): changes made during the copy "
                      "may be gone before they are read; grow the oplog (replSetResizeOplog) or "
                      "its retention (oplogMinRetentionHours) to cover the copy with room",
                      win, size_s, est, rate / 1e6);
    else
        lm_checks_add(out, "oplog-window", LM_PROTO_CHECK_PASS,
                      "the source's oplog holds %s of history; the copy of %s is estimated at "
                      "%s (%.1f MB/s measured from one reader)",
                      win, size_s, est, rate / 1e6);
}

/* Namespaces the job would copy that the target already holds. */
static void namespaces(const lm_job_t *job, const side_t *dst, const lm_catalog_t *cat,
                       lm_checks_t *out)
{
    lm_strbuf_t list;
    lm_strbuf_init(&list, 800);
    size_t n = 0;
    for (size_t i = 0; i < cat->n; i++) {
        if (!lm_catalog_target_has(dst->client, &cat->items[i]))
            continue;
        if (n < 10)
            lm_strbuf_appendf(&list, "%s%s", n ? ", " : "", cat->items[i].ns);
        n++;
    }
    if (n > 10)
        lm_strbuf_appendf(&list, " and %zu more", n - 10);
    if (n == 0)
        lm_checks_add(out, "namespaces", LM_PROTO_CHECK_PASS,
                      "none of the %zu namespaces to copy exists on the target", cat->n);
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
}

/* Free space where the state dir is (or would be: its nearest existing parent). */
static void host_disk(const char *state_dir, lm_checks_t *out)
{
    uint64_t free_bytes = 0;
    lm_error_t err;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", state_dir);
    while (access(dir, F_OK) != 0 && strrchr(dir, '/') && strrchr(dir, '/') != dir)
        *strrchr(dir, '/') = '\0';
    if (access(dir, F_OK) != 0)
        snprintf(dir, sizeof dir, "%s", state_dir[0] == '/' ? "/" : ".");
    if (!lm_fs_free_bytes(dir, &free_bytes, &err))
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
    if (src.router) { /* a sharded source: its own checks (lm_validate_sharded.c) */
        lm_validate_sharded(job, src.client, dst.client, out);
        host_disk(host_state_dir, out);
        lm_conn_client_destroy(src.client);
        if (dst.client)
            lm_conn_client_destroy(dst.client);
        return;
    }
    source_privileges(&src, out);
    replica_set(&src, out);
    replica_set(&dst, out);
    change_history(job, &src, out);
    versions(&src, &dst, out);
    /* the rest needs both sides and the source's catalog */
    lm_catalog_t cat;
    lm_error_t err;
    memset(&cat, 0, sizeof cat);
    const char *later[] = {"namespaces", "indexes", "target-disk", "oplog-window",
                           "users-and-roles"};
    if (!src.client || !dst.client) {
        for (size_t i = 0; i < sizeof later / sizeof later[0]; i++)
            lm_checks_add(out, later[i], LM_PROTO_CHECK_FAIL,
                          "not checked: the %s cannot be reached",
                          src.client ? "target" : "source");
    } else if (!lm_catalog_load(src.client, job, &cat, &err)) {
        for (size_t i = 0; i < sizeof later / sizeof later[0]; i++)
            lm_checks_add(out, later[i], LM_PROTO_CHECK_FAIL,
                          "not checked: the source's catalog cannot be read: %s", err.message);
    } else {
        int64_t bytes = source_bytes(&src, &cat);
        namespaces(job, &dst, &cat, out);
        indexes(&src, &dst, &cat, out);
        target_disk(&dst, bytes, out);
        oplog_window(job, &src, &cat, bytes, out);
        users(&src, out);
    }
    lm_catalog_cleanup(&cat);
    host_disk(host_state_dir, out);
    if (src.client)
        lm_conn_client_destroy(src.client);
    if (dst.client)
        lm_conn_client_destroy(dst.client);
}

/* ---- a sharded source: the replica-set checks per shard (lm_validate_sharded.c) ---- */

/* Whether "role@db, role@db" (roles_of) holds want ("role@db"). */
static bool has_role(const char *roles, const char *want)
{
    size_t n = strlen(want);
    for (const char *p = roles; (p = strstr(p, want)); p += n)
        if ((p == roles || p[-1] == ' ') && (p[n] == '\0' || p[n] == ','))
            return true;
    return false;
}

/* The roles a sharded migration's source user needs where c is connected (a shard's replica
 * set or the config servers): readAnyDatabase, clusterMonitor and backup on admin, read on
 * local (the oplog). The roles connectionStatus reports are compared by name, and the reads
 * are tried (listDatabases, the oplog's newest entry): a role granted through a custom role
 * is not seen by name, so a missing name with working reads is a WARN, with failing reads a
 * FAIL. A server that asks for no authentication needs no role: said so (INFO). */
static void user_roles(mongoc_client_t *c, const char *where, bool oplog, lm_checks_t *out)
{
    char roles[400], missing[200] = "";
    bool authenticated;
    roles_of(c, roles, sizeof roles, &authenticated);
    if (!authenticated) {
        lm_checks_add(out, "user-roles", LM_PROTO_CHECK_INFO,
                      "not checked: %s asks for no authentication, so no role is needed there "
                      "(with authentication the user needs readAnyDatabase, clusterMonitor, "
                      "backup and read on local)",
                      where);
        return;
    }
    bool root = has_role(roles, "root@admin") || has_role(roles, "__system@admin");
    static const char *const need[] = {"readAnyDatabase@admin", "clusterMonitor@admin",
                                       "backup@admin"};
    for (size_t i = 0; !root && i < sizeof need / sizeof need[0]; i++)
        if (!has_role(roles, need[i]))
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%.*s",
                     missing[0] ? ", " : "", (int)(strchr(need[i], '@') - need[i]), need[i]);
    if (!root && !has_role(roles, "read@local") && !has_role(roles, "readWrite@local"))
        snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%sread on local",
                 missing[0] ? ", " : "");
    bson_error_t e;
    memset(&e, 0, sizeof e);
    bson_t *opts = BCON_NEW("nameOnly", BCON_BOOL(true));
    char **dbs = mongoc_client_get_database_names_with_opts(c, opts, &e);
    bson_destroy(opts);
    bool reads = dbs != NULL;
    bson_strfreev(dbs);
    if (reads && oplog) {
        lm_optime_t t;
        int64_t wall;
        reads = lm_stream_oplog_edge(c, -1, &t, &wall, &e);
    }
    if (!missing[0])
        lm_checks_add(out, "user-roles", LM_PROTO_CHECK_PASS, "the user on %s has the roles: %s",
                      where, roles);
    else if (reads)
        lm_checks_add(out, "user-roles", LM_PROTO_CHECK_WARN,
                      "the user on %s is not granted by name: %s (its roles: %s); the reads the "
                      "migration needs work, so a custom role may grant them: grant them by name "
                      "to be sure",
                      where, missing, roles[0] ? roles : "none");
    else
        lm_checks_add(out, "user-roles", LM_PROTO_CHECK_FAIL,
                      "the user on %s lacks %s (its roles: %s; %s): grant them on %s", where,
                      missing, roles[0] ? roles : "none",
                      e.message[0] ? e.message : "a read failed", where);
}

/* Appends tmp's checks to out as "<name>@<tag>", each message after `prefix`. */
static void add_tagged(lm_checks_t *out, const lm_checks_t *tmp, const char *tag,
                       const char *prefix)
{
    for (size_t i = 0; i < tmp->n; i++) {
        char name[LM_PROTO_ID_LEN + 1];
        snprintf(name, sizeof name, "%s@%.*s", tmp->items[i].name,
                 (int)(LM_PROTO_ID_LEN - 1 - strlen(tmp->items[i].name)), tag);
        lm_checks_add(out, name, tmp->items[i].result, "%s%s", prefix, tmp->items[i].message);
    }
}

void lm_validate_config_user(const lm_job_t *job, lm_checks_t *out)
{
    side_t cs = {.side = "config-servers"};
    lm_checks_t tmp;
    memset(&tmp, 0, sizeof tmp);
    reach(job, &job->source, &cs, &tmp);
    if (cs.client) {
        char where[300];
        snprintf(where, sizeof where, "the config server replica set %s", cs.hosts);
        lm_checks_t roles;
        memset(&roles, 0, sizeof roles);
        user_roles(cs.client, where, false, &roles);
        add_tagged(out, &roles, "config", "");
        lm_checks_cleanup(&roles);
        lm_conn_client_destroy(cs.client);
    } else {
        add_tagged(out, &tmp, "config", "the config servers: ");
    }
    lm_checks_cleanup(&tmp);
}

void lm_validate_shard_pair(const lm_job_t *job, const char *src_shard, const char *dst_shard,
                            lm_checks_t *out)
{
    side_t src = {.side = "source"}, dst = {.side = "target"};
    lm_checks_t tmp;
    char prefix[2 * LM_PROTO_ID_LEN + 32], where[300];
    memset(&tmp, 0, sizeof tmp);
    snprintf(prefix, sizeof prefix, "shard %.64s -> %.64s: ", src_shard, dst_shard);
    reach(job, &job->source, &src, &tmp);
    reach(job, &job->target, &dst, &tmp);
    if (src.client) {
        snprintf(where, sizeof where, "source shard %s (%s)", src_shard, src.hosts);
        user_roles(src.client, where, true, &tmp);
        change_history(job, &src, &tmp);
    }
    lm_catalog_t cat;
    lm_error_t err;
    memset(&cat, 0, sizeof cat);
    const char *later[] = {"namespaces", "indexes", "target-disk", "oplog-window"};
    if (!src.client || !dst.client) {
        for (size_t i = 0; i < sizeof later / sizeof later[0]; i++)
            lm_checks_add(&tmp, later[i], LM_PROTO_CHECK_FAIL,
                          "not checked: the %s shard cannot be reached",
                          src.client ? "target" : "source");
    } else if (!lm_catalog_load(src.client, job, &cat, &err)) {
        for (size_t i = 0; i < sizeof later / sizeof later[0]; i++)
            lm_checks_add(&tmp, later[i], LM_PROTO_CHECK_FAIL,
                          "not checked: the shard's catalog cannot be read: %s", err.message);
    } else {
        int64_t bytes = source_bytes(&src, &cat);
        namespaces(job, &dst, &cat, &tmp);
        indexes(&src, &dst, &cat, &tmp);
        target_disk(&dst, bytes, &tmp);
        oplog_window(job, &src, &cat, bytes, &tmp);
    }
    lm_catalog_cleanup(&cat);
    add_tagged(out, &tmp, src_shard, prefix);
    lm_checks_cleanup(&tmp);
    if (src.client)
        lm_conn_client_destroy(src.client);
    if (dst.client)
        lm_conn_client_destroy(dst.client);
}
