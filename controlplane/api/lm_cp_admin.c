/* The admin API, shaped like the Atlas Admin API v2 push live migration (paths, fields,
 * statuses), plus projects, API keys, a clusters registry, list, cancel, extend and
 * per-collection progress. Its route table (at the end) says who may call what: the server
 * has checked the API key, its role and the organization or project in the path before a
 * handler runs, with cp->mu held. See controlplane/README.md. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lm_encode.h"
#include "lm_cp_http.h"
#include "lm_log.h"
#include "lm_proto.h"
#include "lm_states.h"

static lm_json_writer_t *obj(void)
{
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_map_open(w);
    return w;
}

static bool done(resp_t *r, unsigned status, lm_json_writer_t *w)
{
    lm_json_w_map_close(w);
    return cp_answer(r, status, w);
}

/* The Atlas list shape: {"results": [...], "totalCount": n}. */
static lm_json_writer_t *results_open(void)
{
    lm_json_writer_t *w = obj();
    lm_json_w_key(w, "results");
    lm_json_w_array_open(w);
    return w;
}

static bool results_close(resp_t *r, lm_json_writer_t *w, int n)
{
    lm_json_w_array_close(w);
    lm_json_w_key(w, "totalCount");
    lm_json_w_int(w, n);
    return done(r, 200, w);
}

/* A new id: 24 hex digits, like an ObjectId. */
static void new_id(char out[25])
{
    if (!lm_random_hex(out, 12))
        snprintf(out, 25, "%024llx", (unsigned long long)lm_time_now_ms());
}

/* A string member; `in` names the enclosing object in messages ("source"), or NULL. */
static bool text_in(const char *in, const lm_json_val_t *v, const char *key, bool required,
                    size_t max, const char **out, resp_t *r)
{
    lm_error_t err;
    *out = NULL;
    if (lm_json_get_str(v, key, required, max, out, &err) && (!required || (*out)[0]))
        return true;
    if (required && *out && !(*out)[0])
        lm_error_set(&err, LM_ERR_INVALID, "field '%s': must not be empty", key);
    if (in)
        lm_error_prefix(&err, "%s", in);
    return cp_bad_field(r, &err);
}

static bool text_field(const lm_json_val_t *v, const char *key, bool required, size_t max,
                       const char **out, resp_t *r)
{
    return text_in(NULL, v, key, required, max, out, r);
}

static bool bool_in(const char *in, const lm_json_val_t *v, const char *key, bool *out, resp_t *r)
{
    lm_error_t err;
    if (lm_json_get_bool(v, key, false, out, &err))
        return true;
    if (in)
        lm_error_prefix(&err, "%s", in);
    return cp_bad_field(r, &err);
}

static bool bool_field(const lm_json_val_t *v, const char *key, bool *out, resp_t *r)
{
    return bool_in(NULL, v, key, out, r);
}

/* ---- projects and API keys ---- */

static bool create_group(lm_cp_t *cp, const caller_t *who, const req_t *q, resp_t *r)
{
    lm_json_val_t *v = cp_body_json(q, r);
    const char *name, *org;
    bool ok = v && text_field(v, "name", true, 64, &name, r) &&
              text_field(v, "orgId", true, 64, &org, r) && cp_own_org(who, org, r);
    if (ok && !lm_cp_valid_id(name))
        ok = cp_fail(r, 400, "INVALID_ATTRIBUTE",
                     "field 'name': use 1-64 letters, digits, '_', '-' or '.'");
    char id[25];
    new_id(id);
    if (ok && !lm_cp_store_project_insert(cp->db, id, org, name, lm_time_now_ms()))
        ok = cp_fail(r, 409, "DUPLICATE_GROUP_NAME", "a project named %s exists already", name);
    if (ok) {
        lm_json_writer_t *w = obj();
        lm_json_w_kv_str(w, "id", id);
        lm_json_w_kv_str(w, "name", name);
        lm_json_w_kv_str(w, "orgId", org);
        done(r, 201, w);
    }
    lm_json_free_wipe(v); /* request bodies may carry passwords */
    return ok;
}

static bool list_groups(lm_cp_t *cp, const char *org, resp_t *r)
{
    sqlite3_stmt *st = lm_cp_store_projects(cp->db, org);
    lm_json_writer_t *w = results_open();
    int n = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        lm_json_w_map_open(w);
        lm_json_w_kv_str(w, "id", lm_cp_col(st, 0));
        lm_json_w_kv_str(w, "name", lm_cp_col(st, 1));
        lm_json_w_kv_str(w, "orgId", org);
        lm_json_w_map_close(w);
        n++;
    }
    sqlite3_finalize(st);
    return results_close(r, w, n);
}

/* Writes a new API key for org into the store; its secret goes to secret[65]. expires:
 * epoch ms, 0 for never. */
static bool insert_key(sqlite3 *db, const char *org, const char *role, const char *desc,
                       int64_t expires, char id[25], char secret[65])
{
    char salt[33], hash[65];
    new_id(id);
    if (!lm_random_hex(secret, 32) || !lm_random_hex(salt, 16))
        return false;
    lm_cp_hash_secret(salt, secret, hash);
    return lm_cp_store_api_key_insert(db, id, org, role, salt, hash, desc, expires,
                                      lm_time_now_ms());
}

static bool create_api_key(lm_cp_t *cp, const char *org, const req_t *q, resp_t *r)
{
    lm_json_val_t *v = cp_body_json(q, r), *roles = NULL;
    const char *desc = NULL, *role = NULL;
    lm_error_t err;
    bool ok = v && text_field(v, "desc", false, 250, &desc, r);
    if (ok && !lm_json_get_arr(v, "roles", true, 1, &roles, &err))
        ok = cp_bad_field(r, &err);
    if (ok && (lm_json_len(roles) != 1 || !(role = lm_json_string(lm_json_at(roles, 0))) ||
               (strcmp(role, "ORG_OWNER") != 0 && strcmp(role, "ORG_MEMBER") != 0)))
        ok = cp_fail(r, 400, "INVALID_ATTRIBUTE",
                     "field 'roles': expected [\"ORG_OWNER\"] or [\"ORG_MEMBER\"]");
    /* beyond Atlas: a key that stops working after expiresAfterSeconds (up to 10 years) */
    int64_t after = 0, expires = 0;
    if (ok &&
        !lm_json_get_int(v, "expiresAfterSeconds", false, 1, INT64_C(315360000), &after, &err))
        ok = cp_bad_field(r, &err);
    if (after)
        expires = lm_time_now_ms() + after * 1000;
    char id[25], secret[65];
    if (ok && !insert_key(cp->db, org, role, desc, expires, id, secret))
        ok = cp_fail(r, 500, "INTERNAL", "cannot store the API key");
    if (ok) {
        lm_json_writer_t *w = obj();
        lm_json_w_kv_str(w, "id", id);
        lm_json_w_kv_str(w, "publicKey", id);
        lm_json_w_kv_str(w, "privateKey", secret); /* shown once */
        lm_json_w_kv_str(w, "desc", desc ? desc : "");
        lm_json_w_key(w, "roles");
        lm_json_w_array_open(w);
        lm_json_w_str(w, role);
        lm_json_w_array_close(w);
        if (expires) {
            char when[40];
            lm_time_format_iso8601(expires, when, sizeof when);
            lm_json_w_kv_str(w, "expires", when);
        }
        done(r, 201, w);
        lm_wipe(secret, sizeof secret);
        lm_log_info(NULL, "API key %s (%s) created for organization %s", id, role, org);
    }
    lm_json_free_wipe(v); /* request bodies may carry passwords */
    return ok;
}

/* Writes time `ms` (epoch ms) under key as ISO 8601, or null when 0 (never). */
static void w_time(lm_json_writer_t *w, const char *key, int64_t ms)
{
    char when[40];
    lm_json_w_key(w, key);
    if (!ms) {
        lm_json_w_null(w);
        return;
    }
    lm_time_format_iso8601(ms, when, sizeof when);
    lm_json_w_str(w, when);
}

/* The organization's API keys: the public part, roles, description and times, never the
 * secret nor its hash. */
static bool list_api_keys(lm_cp_t *cp, const char *org, resp_t *r)
{
    sqlite3_stmt *st = lm_cp_store_api_keys(cp->db, org);
    lm_json_writer_t *w = results_open();
    int n = 0;
    int64_t now = lm_time_now_ms();
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        int64_t expires = sqlite3_column_int64(st, 5);
        lm_json_w_map_open(w);
        lm_json_w_kv_str(w, "id", lm_cp_col(st, 0));
        lm_json_w_kv_str(w, "publicKey", lm_cp_col(st, 0));
        lm_json_w_kv_str(w, "desc", lm_cp_col(st, 2));
        lm_json_w_key(w, "roles");
        lm_json_w_array_open(w);
        lm_json_w_str(w, lm_cp_col(st, 1));
        lm_json_w_array_close(w);
        w_time(w, "created", sqlite3_column_int64(st, 3));
        w_time(w, "lastUsed", sqlite3_column_int64(st, 4));
        w_time(w, "expires", expires);
        lm_json_w_key(w, "expired");
        lm_json_w_bool(w, expires && now >= expires);
        lm_json_w_map_close(w);
        n++;
    }
    sqlite3_finalize(st);
    return results_close(r, w, n);
}

static bool delete_api_key(lm_cp_t *cp, const char *org, const char *id, resp_t *r)
{
    int had = lm_cp_store_api_key_delete(cp->db, org, id);
    if (had < 0)
        return cp_fail(r, 500, "INTERNAL", "cannot delete the API key");
    if (!had)
        return cp_fail(r, 404, "API_KEY_NOT_FOUND", "no API key %s in organization %s", id, org);
    int ended = lm_cp_session_end_key(cp->sessions, id);
    lm_log_info(NULL, "API key %s of organization %s deleted (%d console session(s) ended)", id,
                org, ended);
    r->status = 204;
    return true;
}

/* ---- the clusters registry ---- */

/* Reads a connection string's query options (names case-insensitive, separated by '&' or
 * ';'): the first one that turns TLS checks off set to true goes to bad (else ""); tls_off
 * is set by tls=false or ssl=false. */
static void uri_tls_options(const char *uri, char *bad, size_t badsz, bool *tls_off)
{
    static const char *const insecure[] = {"tlsInsecure",
                                           "tlsAllowInvalidCertificates",
                                           "tlsAllowInvalidHostnames",
                                           "sslAllowInvalidCertificates",
                                           "sslAllowInvalidHostnames",
                                           "tlsDisableOCSPEndpointCheck",
                                           "tlsDisableCertificateRevocationCheck"};
    const char *p = strchr(uri, '?');
    bad[0] = '\0';
    *tls_off = false;
    while (p && *p) {
        p++;
        size_t n = strcspn(p, "&;");
        const char *eq = memchr(p, '=', n);
        if (eq) {
            size_t klen = (size_t)(eq - p), vlen = n - klen - 1;
            bool on = vlen == 4 && strncasecmp(eq + 1, "true", 4) == 0;
            bool off = vlen == 5 && strncasecmp(eq + 1, "false", 5) == 0;
            for (size_t i = 0; on && !bad[0] && i < sizeof insecure / sizeof insecure[0]; i++)
                if (strlen(insecure[i]) == klen && strncasecmp(p, insecure[i], klen) == 0)
                    snprintf(bad, badsz, "%s", insecure[i]);
            if (off && klen == 3 &&
                (strncasecmp(p, "tls", 3) == 0 || strncasecmp(p, "ssl", 3) == 0))
                *tls_off = true;
        }
        p += n;
    }
}

static bool add_cluster(lm_cp_t *cp, const char *group, const req_t *q, resp_t *r)
{
    lm_json_val_t *v = cp_body_json(q, r);
    const char *name, *uri, *ca = NULL, *user = NULL, *pw = NULL;
    bool tls = false, allow_insecure = false, tls_off = false;
    char insecure[64] = "";
    bool ok = v && text_field(v, "name", true, 64, &name, r) &&
              text_field(v, "connectionString", true, 2047, &uri, r) &&
              text_field(v, "caFile", false, 1023, &ca, r) &&
              text_field(v, "username", false, 128, &user, r) &&
              text_field(v, "password", false, 1023, &pw, r) && bool_field(v, "tls", &tls, r) &&
              bool_field(v, "allowInsecureTls", &allow_insecure, r);
    if (ok && !lm_cp_valid_id(name))
        ok = cp_fail(r, 400, "INVALID_ATTRIBUTE",
                     "field 'name': use 1-64 letters, digits, '_', '-' or '.'");
    if (ok && ca && ca[0] && !lm_proto_ca_name_valid(ca))
        ok = cp_fail(r, 400, "INVALID_ATTRIBUTE",
                     "field 'caFile': a file name in the agent's ca_dir or a plain path into it "
                     "(no '.' or '..' components)");
    if (ok && strncmp(uri, "mongodb://", 10) != 0 && strncmp(uri, "mongodb+srv://", 14) != 0)
        ok = cp_fail(r, 400, "INVALID_ATTRIBUTE",
                     "field 'connectionString': expected a mongodb:// or mongodb+srv:// URI");
    if (ok && strchr(uri, '@'))
        ok = cp_fail(r, 400, "INVALID_ATTRIBUTE",
                     "field 'connectionString': must not carry credentials: give 'username' and "
                     "'password' instead (the password is stored encrypted)");
    if (ok)
        uri_tls_options(uri, insecure, sizeof insecure, &tls_off);
    if (ok && insecure[0] && !allow_insecure)
        ok = cp_fail(r, 400, "INSECURE_TLS_OPTION",
                     "field 'connectionString': the option %s=true turns TLS certificate checks "
                     "off: remove it, or register with 'allowInsecureTls': true (the agent must "
                     "allow it too: allow_insecure_tls)",
                     insecure);
    if (ok && tls && tls_off)
        ok = cp_fail(r, 400, "INVALID_ATTRIBUTE",
                     "field 'connectionString': says tls=false while 'tls' is true: remove the "
                     "option or register without TLS");
    lm_strbuf_t sealed;
    lm_strbuf_init(&sealed, 1u << 16);
    lm_error_t err;
    char ad[200];
    if (ok)
        snprintf(ad, sizeof ad, LM_CP_AD_CLUSTER_PASSWORD, group, name);
    if (ok && pw && pw[0] && !lm_cp_seal(cp->secrets_key, ad, pw, &sealed, &err))
        ok = cp_fail(r, 500, "INTERNAL", "%s", err.message);
    if (ok &&
        !lm_cp_store_cluster_insert(cp->db, group, name, uri, tls, ca, user,
                                    sealed.len ? lm_strbuf_str(&sealed) : NULL, lm_time_now_ms()))
        ok = cp_fail(r, 409, "DUPLICATE_CLUSTER_NAME", "project %s already has a cluster named %s",
                     group, name);
    lm_strbuf_cleanup(&sealed);
    if (ok) {
        lm_json_writer_t *w = obj();
        lm_json_w_kv_str(w, "name", name);
        lm_json_w_kv_str(w, "groupId", group);
        lm_json_w_kv_str(w, "connectionString", uri);
        done(r, 201, w);
    }
    lm_json_free_wipe(v); /* request bodies may carry passwords */
    return ok;
}

static bool list_clusters(lm_cp_t *cp, const char *group, resp_t *r)
{
    sqlite3_stmt *st = lm_cp_store_clusters(cp->db, group);
    lm_json_writer_t *w = results_open();
    int n = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        lm_json_w_map_open(w);
        lm_json_w_kv_str(w, "name", lm_cp_col(st, 0));
        lm_json_w_kv_str(w, "groupId", group);
        lm_json_w_kv_str(w, "connectionString", lm_cp_col(st, 1));
        lm_json_w_key(w, "tls");
        lm_json_w_bool(w, sqlite3_column_int(st, 2) != 0);
        lm_json_w_kv_str(w, "caFile", lm_cp_col(st, 3));
        lm_json_w_kv_str(w, "username", lm_cp_col(st, 4));
        lm_json_w_map_close(w);
        n++;
    }
    sqlite3_finalize(st);
    return results_close(r, w, n);
}

/* ---- link-tokens ---- */

static bool create_link_token(lm_cp_t *cp, const char *org, const req_t *q, resp_t *r)
{
    lm_json_val_t *v = cp_body_json(q, r), *ips = NULL;
    lm_error_t err;
    bool ok = v != NULL;
    if (ok && !lm_json_get_arr(v, "accessListIps", false, 256, &ips, &err))
        ok = cp_bad_field(r, &err);
    lm_json_writer_t *acc = lm_json_writer_new(false);
    lm_json_w_array_open(acc);
    for (size_t i = 0; ok && ips && i < lm_json_len(ips); i++) {
        const char *ip = lm_json_string(lm_json_at(ips, i));
        unsigned char buf[16];
        if (!ip || (inet_pton(AF_INET, ip, buf) != 1 && inet_pton(AF_INET6, ip, buf) != 1))
            ok = cp_fail(r, 400, "INVALID_ATTRIBUTE",
                         "field 'accessListIps[%zu]': expected an IPv4 or IPv6 address", i);
        else
            lm_json_w_str(acc, ip);
    }
    lm_json_w_array_close(acc);
    /* expiresAfter: a duration ("24h"); after it the token enrolls no agent */
    const char *after = NULL;
    int64_t now = lm_time_now_ms(), expires = 0, after_ms = 0;
    if (ok)
        ok = text_field(v, "expiresAfter", false, 32, &after, r);
    if (ok && after) {
        if (!lm_time_parse_duration(after, &after_ms, &err) || after_ms < 1000 ||
            after_ms > INT64_C(31536000000))
            ok = cp_fail(r, 400, "INVALID_ATTRIBUTE",
                         "field 'expiresAfter': a duration from 1s to 365d, like \"24h\"");
        expires = now + after_ms;
    }
    size_t alen;
    const char *access = ok ? lm_json_writer_result(acc, &alen, &err) : NULL;
    if (ok && lm_cp_store_link_token_live(cp->db, org, now))
        ok = cp_fail(r, 409, "LINK_TOKEN_ALREADY_EXISTS",
                     "organization %s has a link-token already: delete it first (that unlinks "
                     "its agents), or let it expire",
                     org);
    lm_proto_link_token_t t;
    memset(&t, 0, sizeof t);
    char salt[33], hash[65];
    if (ok) {
        snprintf(t.url, sizeof t.url, "%s", cp->public_url);
        snprintf(t.org_id, sizeof t.org_id, "%s", org);
        snprintf(t.ca_pin, sizeof t.ca_pin, "%s", cp->ca_pin);
        ok =
            lm_random_hex(t.token_id, 12) && lm_random_hex(t.secret, 32) && lm_random_hex(salt, 16);
        if (!ok)
            cp_fail(r, 500, "INTERNAL", "no randomness for a link-token");
    }
    if (ok) {
        lm_cp_hash_secret(salt, t.secret, hash);
        if (!lm_cp_store_link_token_insert(cp->db, t.token_id, org, salt, hash, access, expires,
                                           now))
            ok = cp_fail(r, 500, "INTERNAL", "cannot store the link-token");
    }
    lm_strbuf_t tok;
    lm_strbuf_init(&tok, 1u << 16);
    if (ok && !lm_proto_link_token_encode(&t, &tok, &err))
        ok = cp_fail(r, 500, "INTERNAL", "%s", err.message);
    if (ok) {
        lm_json_writer_t *w = obj();
        lm_json_w_kv_str(w, "linkToken", lm_strbuf_str(&tok)); /* shown once */
        char when[40] = "never";
        if (expires)
            lm_time_format_iso8601(expires, when, sizeof when);
        if (expires)
            lm_json_w_kv_str(w, "expires", when);
        done(r, 200, w);
        lm_log_info(NULL, "link-token %s created for organization %s (enrolls agents until %s)",
                    t.token_id, org, when);
    }
    if (tok.data)
        lm_wipe(tok.data, tok.len);
    lm_strbuf_cleanup(&tok);
    lm_proto_link_token_clear(&t);
    lm_json_writer_destroy(acc);
    lm_json_free_wipe(v); /* request bodies may carry passwords */
    return ok;
}

static bool delete_link_token(lm_cp_t *cp, const char *org, resp_t *r)
{
    int deleted = lm_cp_store_link_token_delete(cp->db, org, lm_time_now_ms());
    if (deleted < 0)
        return cp_fail(r, 500, "INTERNAL", "cannot delete the link-token");
    if (deleted == 0)
        return cp_fail(r, 404, "LINK_TOKEN_NOT_FOUND", "organization %s has no link-token", org);
    pthread_cond_broadcast(&cp->changed); /* waiting polls answer "revoked" */
    lm_log_info(NULL, "link-token of organization %s deleted: its agents are unlinked", org);
    r->status = 204;
    return true;
}

/* An Organization Owner lets host link again once (a reinstalled host, a lost state_dir):
 * the next registration of host takes it over and the agent there stops working. Without
 * this, registering a host that has a linked agent is refused as a takeover attempt. */
static bool allow_relink(lm_cp_t *cp, const caller_t *who, const char *org, const char *host,
                         resp_t *r)
{
    sqlite3_stmt *st = lm_cp_store_agent_of_host(cp->db, org, host);
    bool known = st != NULL;
    sqlite3_finalize(st);
    if (!known)
        return cp_fail(r, 404, "AGENT_NOT_FOUND",
                       "no agent of organization %s was ever linked on host %s: it can link "
                       "with the link-token as it is",
                       org, host);
    int64_t now = lm_time_now_ms(), expires = now + cp->cfg->relink_ms;
    if (!lm_cp_store_relink_allow(cp->db, org, host, expires, now))
        return cp_fail(r, 500, "INTERNAL", "cannot store the relink");
    char when[40];
    lm_time_format_iso8601(expires, when, sizeof when);
    lm_log_info(NULL, "API key %s allows host %s of organization %s to link again once, until %s",
                who->key_id, host, org, when);
    lm_json_writer_t *w = obj();
    lm_json_w_kv_str(w, "hostname", host);
    lm_json_w_kv_str(w, "orgId", org);
    lm_json_w_kv_str(w, "expires", when);
    return done(r, 200, w);
}

/* The organization's migration hosts (linked agents): host name, version, last heartbeat,
 * free disk, the jobs they run; revoked ones (link-token deleted) say so. Beyond Atlas. */
static bool list_agents(lm_cp_t *cp, const char *org, resp_t *r)
{
    sqlite3_stmt *st = lm_cp_store_agents(cp->db, org);
    lm_json_writer_t *w = results_open();
    int n = 0;
    lm_error_t err;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        lm_json_w_map_open(w);
        lm_json_w_kv_str(w, "hostname", lm_cp_col(st, 0));
        lm_json_w_kv_str(w, "agentId", lm_cp_col(st, 1));
        lm_json_w_kv_str(w, "version", lm_cp_col(st, 2));
        lm_json_w_kv_str(w, "os", lm_cp_col(st, 3));
        w_time(w, "registered", sqlite3_column_int64(st, 4));
        w_time(w, "lastHeartbeat", sqlite3_column_int64(st, 5));
        lm_json_w_key(w, "freeDiskBytes");
        if (sqlite3_column_type(st, 6) == SQLITE_NULL)
            lm_json_w_null(w);
        else
            lm_json_w_int(w, sqlite3_column_int64(st, 6));
        lm_json_w_key(w, "runningJobs");
        lm_json_w_array_open(w);
        const char *running = lm_cp_col(st, 7);
        lm_json_val_t *jobs =
            running[0] ? lm_json_parse(running, strlen(running), 0, 0, &err) : NULL;
        for (size_t i = 0; jobs && i < lm_json_len(jobs); i++) {
            const char *id = lm_json_string(lm_json_at(jobs, i));
            if (id)
                lm_json_w_str(w, id);
        }
        lm_json_free(jobs);
        lm_json_w_array_close(w);
        lm_json_w_key(w, "revoked");
        lm_json_w_bool(w, sqlite3_column_int(st, 8) != 0);
        lm_json_w_map_close(w);
        n++;
    }
    sqlite3_finalize(st);
    return results_close(r, w, n);
}

static bool available_projects(lm_cp_t *cp, const char *org, resp_t *r)
{
    sqlite3_stmt *st = lm_cp_store_projects(cp->db, org);
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_array_open(w);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        lm_json_w_map_open(w);
        lm_json_w_kv_str(w, "id", lm_cp_col(st, 0));
        lm_json_w_kv_str(w, "name", lm_cp_col(st, 1));
        lm_json_w_kv_str(w, "orgId", org);
        lm_json_w_key(w, "deployments");
        lm_json_w_array_open(w);
        sqlite3_stmt *cl = lm_cp_store_cluster_names(cp->db, lm_cp_col(st, 0));
        while (cl && sqlite3_step(cl) == SQLITE_ROW) {
            lm_json_w_map_open(w);
            lm_json_w_kv_str(w, "name", lm_cp_col(cl, 0));
            lm_json_w_map_close(w);
        }
        sqlite3_finalize(cl);
        lm_json_w_array_close(w);
        lm_json_w_map_close(w);
    }
    sqlite3_finalize(st);
    lm_json_w_array_close(w);
    return cp_answer(r, 200, w);
}

/* ---- migrations and validations ---- */

static bool cluster_exists(lm_cp_t *cp, const caller_t *who, const char *group, const char *name,
                           const char *side, resp_t *r)
{
    if (!lm_cp_store_cluster_in_org(cp->db, group, name, who->org))
        return cp_fail(r, 400, "CLUSTER_NOT_FOUND",
                       "%s: project %s has no cluster named %s: register it with `livemig "
                       "clusters add`",
                       side, group, name);
    return true;
}

/* Parses and checks a live-migration request; writes the stored spec (no password) into
 * spec and the source password into *password (owned by v). */
static bool read_request(lm_cp_t *cp, const caller_t *who, const char *group, lm_json_val_t *v,
                         lm_json_writer_t *spec, const char **password, const char **host,
                         size_t *n_hosts, resp_t *r)
{
    lm_json_val_t *src = NULL, *dst = NULL, *hosts = NULL;
    lm_error_t err;
    const char *s_cluster, *s_group, *user = NULL, *ca = NULL, *d_cluster, *d_group = NULL,
                                     *schema = NULL;
    bool ssl = false, managed = false, drop = false, verify = true;
    if (!lm_json_get_obj(v, "source", true, &src, &err) ||
        !lm_json_get_obj(v, "destination", true, &dst, &err) ||
        !lm_json_get_arr(v, "migrationHosts", true, 16, &hosts, &err))
        return cp_bad_field(r, &err);
    if (lm_json_type(src) != LM_JSON_OBJECT || lm_json_type(dst) != LM_JSON_OBJECT)
        return cp_fail(r, 400, "INVALID_ATTRIBUTE", "'source' and 'destination' must be objects");
    if (!text_in("source", src, "clusterName", true, 64, &s_cluster, r) ||
        !text_in("source", src, "groupId", true, 64, &s_group, r) ||
        !text_in("source", src, "username", false, 128, &user, r) ||
        !text_in("source", src, "password", false, 1023, password, r) ||
        !text_in("source", src, "caCertificatePath", false, 1023, &ca, r) ||
        !bool_in("source", src, "ssl", &ssl, r) ||
        !bool_in("source", src, "managedAuthentication", &managed, r) ||
        !text_in("destination", dst, "clusterName", true, 64, &d_cluster, r) ||
        !text_in("destination", dst, "groupId", false, 64, &d_group, r) ||
        !text_in("destination", dst, "hostnameSchemaType", false, 32, &schema, r) ||
        !bool_field(v, "dropDestinationData", &drop, r) || !bool_field(v, "verify", &verify, r))
        return false;
    if (ca && ca[0] && !lm_proto_ca_name_valid(ca))
        return cp_fail(r, 400, "INVALID_ATTRIBUTE",
                       "source.caCertificatePath: a file name in the agent's ca_dir or a plain "
                       "path into it (no '.' or '..' components)");
    if (!lm_cp_valid_id(s_group) || !lm_cp_valid_id(s_cluster) || !lm_cp_valid_id(d_cluster) ||
        (d_group && !lm_cp_valid_id(d_group)))
        return cp_fail(r, 400, "INVALID_ATTRIBUTE",
                       "cluster names and group ids use 1-64 letters, digits, '_', '-' or '.'");
    if (!d_group)
        d_group = group;
    if (strcmp(d_group, group) != 0)
        return cp_fail(r, 400, "INVALID_ATTRIBUTE",
                       "destination.groupId must be the project in the path (%s)", group);
    /* one host, or several for a sharded source (the shards are spread over them) */
    *n_hosts = lm_json_len(hosts);
    if (*n_hosts < 1)
        return cp_fail(r, 400, "INVALID_ATTRIBUTE",
                       "field 'migrationHosts': expected one or more host names (linked agents)");
    for (size_t i = 0; i < *n_hosts; i++) {
        const char *h = lm_json_string(lm_json_at(hosts, i));
        if (!h || !h[0] || strlen(h) > 64 || !lm_cp_valid_id(h))
            return cp_fail(r, 400, "INVALID_ATTRIBUTE",
                           "field 'migrationHosts[%zu]': a host name of a linked agent (letters, "
                           "digits, '_', '-', '.')",
                           i);
        for (size_t k = 0; k < i; k++)
            if (strcmp(h, lm_json_string(lm_json_at(hosts, k))) == 0)
                return cp_fail(r, 400, "INVALID_ATTRIBUTE",
                               "field 'migrationHosts': host %s is listed twice", h);
    }
    *host = lm_json_string(lm_json_at(hosts, 0));
    int64_t max_per_host = 0;
    if (!lm_json_get_int(v, "maxShardsPerHost", false, 1, 1000, &max_per_host, &err))
        return cp_bad_field(r, &err);
    if (!cp_own_group(cp, who, s_group, r) ||
        !cluster_exists(cp, who, s_group, s_cluster, "source", r) ||
        !cluster_exists(cp, who, group, d_cluster, "destination", r))
        return false;
    for (size_t i = 0; i < *n_hosts; i++) {
        const char *h = lm_json_string(lm_json_at(hosts, i));
        if (!lm_cp_store_host_linked(cp->db, who->org, h))
            return cp_fail(r, 400, "MIGRATION_HOST_NOT_FOUND",
                           "no agent on host %s is linked to this organization: link one with a "
                           "link-token first",
                           h);
    }
    lm_json_w_map_open(spec);
    lm_json_w_key(spec, "source");
    lm_json_w_map_open(spec);
    lm_json_w_kv_str(spec, "clusterName", s_cluster);
    lm_json_w_kv_str(spec, "groupId", s_group);
    lm_json_w_key(spec, "ssl");
    lm_json_w_bool(spec, ssl);
    lm_json_w_kv_str(spec, "caCertificatePath", ca ? ca : "");
    lm_json_w_kv_str(spec, "username", user ? user : "");
    lm_json_w_key(spec, "managedAuthentication");
    lm_json_w_bool(spec, managed);
    lm_json_w_map_close(spec);
    lm_json_w_key(spec, "destination");
    lm_json_w_map_open(spec);
    lm_json_w_kv_str(spec, "clusterName", d_cluster);
    lm_json_w_kv_str(spec, "groupId", d_group);
    lm_json_w_kv_str(spec, "hostnameSchemaType", schema ? schema : "PUBLIC");
    lm_json_w_map_close(spec);
    lm_json_w_key(spec, "dropDestinationData");
    lm_json_w_bool(spec, drop);
    lm_json_w_key(spec, "verify");
    lm_json_w_bool(spec, verify);
    lm_json_w_key(spec, "migrationHosts");
    lm_json_w_array_open(spec);
    for (size_t i = 0; i < *n_hosts; i++)
        lm_json_w_str(spec, lm_json_string(lm_json_at(hosts, i)));
    lm_json_w_array_close(spec);
    if (max_per_host) {
        lm_json_w_key(spec, "maxShardsPerHost");
        lm_json_w_int(spec, max_per_host);
    }
    lm_json_w_map_close(spec);
    return true;
}

/* "source" {clusterName, groupId} and "destination" {clusterName, groupId} of a stored
 * spec (which holds no password). */
static void write_ends(lm_json_writer_t *w, const char *spec)
{
    static const char *const sides[] = {"source", "destination"};
    lm_error_t err;
    lm_json_val_t *v = spec[0] ? lm_json_parse(spec, strlen(spec), 0, 0, &err) : NULL;
    for (size_t i = 0; i < 2; i++) {
        lm_json_val_t *side = v ? lm_json_get(v, sides[i]) : NULL;
        const char *cluster = lm_json_string(lm_json_get(side, "clusterName"));
        const char *group = lm_json_string(lm_json_get(side, "groupId"));
        lm_json_w_key(w, sides[i]);
        lm_json_w_map_open(w);
        lm_json_w_kv_str(w, "clusterName", cluster ? cluster : "");
        lm_json_w_kv_str(w, "groupId", group ? group : "");
        lm_json_w_map_close(w);
    }
    lm_json_free(v);
}

/* The hosts of a stored spec ("migrationHosts"; one listed before several could be, `host`). */
static void write_hosts(lm_json_writer_t *w, const char *spec, const char *host)
{
    lm_error_t err;
    lm_json_val_t *v = spec[0] ? lm_json_parse(spec, strlen(spec), 0, 0, &err) : NULL;
    lm_json_val_t *list = v ? lm_json_get(v, "migrationHosts") : NULL;
    size_t n = 0;
    for (size_t i = 0; list && i < lm_json_len(list); i++) {
        const char *h = lm_json_string(lm_json_at(list, i));
        if (h) {
            lm_json_w_str(w, h);
            n++;
        }
    }
    if (!n)
        lm_json_w_str(w, host);
    lm_json_free(v);
}

/* The Atlas shape of a live migration (and our extra fields). */
/* Member key: column col of st as a number, null when the column is NULL. */
static void w_real_or_null(lm_json_writer_t *w, const char *key, sqlite3_stmt *st, int col)
{
    lm_json_w_key(w, key);
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        lm_json_w_null(w);
    else
        lm_json_w_double(w, sqlite3_column_double(st, col));
}

static void write_job(lm_json_writer_t *w, sqlite3_stmt *st)
{
    /* columns: id, status, ready, lag, host, phase, window_end, error, project_id, kind */
    lm_json_w_kv_str(w, "_id", lm_cp_col(st, 0));
    lm_json_w_kv_str(w, "groupId", lm_cp_col(st, 8));
    bool validation = strcmp(lm_cp_col(st, 9), "validation") == 0;
    const char *status = lm_cp_col(st, 1);
    if (validation) { /* PENDING, SUCCESS or FAILED */
        lm_job_status_t s = LM_STATUS_NEW;
        lm_job_status_parse(status, &s);
        lm_json_w_kv_str(w, "status",
                         s == LM_STATUS_COMPLETE     ? "SUCCESS"
                         : lm_job_status_terminal(s) ? "FAILED"
                                                     : "PENDING");
        lm_json_w_key(w, "errorMessage");
        if (lm_cp_col(st, 7)[0])
            lm_json_w_str(w, lm_cp_col(st, 7));
        else
            lm_json_w_null(w);
        return;
    }
    lm_json_w_kv_str(w, "status", status);
    lm_json_w_key(w, "readyForCutover");
    lm_json_w_bool(w, sqlite3_column_int(st, 2) != 0);
    lm_json_w_key(w, "lagTimeSeconds");
    if (sqlite3_column_type(st, 3) == SQLITE_NULL)
        lm_json_w_null(w);
    else
        lm_json_w_int(w, (int64_t)(sqlite3_column_double(st, 3) + 0.5));
    lm_json_w_key(w, "migrationHosts");
    lm_json_w_array_open(w);
    write_hosts(w, lm_cp_col(st, 11), lm_cp_col(st, 4));
    lm_json_w_array_close(w);
    lm_json_w_kv_str(w, "phase",
                     lm_cp_col(st, 5)[0] ? lm_cp_col(st, 5) : lm_phase_name(LM_PHASE_NEW));
    lm_json_w_key(w, "cutoverWindowEndMs");
    if (sqlite3_column_type(st, 6) == SQLITE_NULL)
        lm_json_w_null(w);
    else
        lm_json_w_int(w, sqlite3_column_int64(st, 6));
    lm_json_w_key(w, "errorMessage");
    if (lm_cp_col(st, 7)[0])
        lm_json_w_str(w, lm_cp_col(st, 7));
    else
        lm_json_w_null(w);
    /* beyond Atlas: the optime gap the agent reports (source's newest entry minus the one
     * applied; null before streaming), and where the migration goes from and to */
    w_real_or_null(w, "optimeGapSeconds", st, 10);
    /* and how long a cutover now would take, by the agent's estimate (queued index builds
     * and DDL, the backlog); null until the changes stream */
    w_real_or_null(w, "estimatedCutoverSeconds", st, 12);
    write_ends(w, lm_cp_col(st, 11));
}

static bool create_job(lm_cp_t *cp, const caller_t *who, const char *group, const char *kind,
                       const req_t *q, resp_t *r)
{
    lm_json_val_t *v = cp_body_json(q, r);
    const char *password = NULL, *host = NULL;
    size_t n_hosts = 0;
    lm_json_writer_t *spec = lm_json_writer_new(false);
    bool ok = v && read_request(cp, who, group, v, spec, &password, &host, &n_hosts, r);
    /* several hosts: the migration is spread over them (its row is never handed out: each
     * host gets a part, the first the lead); a validation runs on the first */
    bool spread = ok && n_hosts > 1;
    bool migration = strcmp(kind, "migration") == 0;
    size_t len;
    lm_error_t err;
    const char *spec_text = ok ? lm_json_writer_result(spec, &len, &err) : NULL;
    if (ok && strcmp(kind, "migration") == 0) {
        /* one live migration per destination cluster at a time */
        lm_json_val_t *dst = lm_json_get(v, "destination");
        const char *d_cluster = lm_json_string(lm_json_get(dst, "clusterName"));
        sqlite3_stmt *st = lm_cp_store_migration_to(cp->db, group, d_cluster);
        if (st)
            ok = cp_fail(r, 409, "MIGRATION_ALREADY_RUNNING",
                         "live migration %s already targets cluster %s: cut it over or cancel "
                         "it first",
                         lm_cp_col(st, 0), d_cluster);
        sqlite3_finalize(st);
    }
    char id[25], ad[100];
    new_id(id);
    snprintf(ad, sizeof ad, LM_CP_AD_JOB_PASSWORD, id);
    lm_strbuf_t sealed;
    lm_strbuf_init(&sealed, 1u << 16);
    if (ok && password && password[0] && !lm_cp_seal(cp->secrets_key, ad, password, &sealed, &err))
        ok = cp_fail(r, 500, "INTERNAL", "%s", err.message);
    int64_t now = lm_time_now_ms();
    if (ok && !lm_cp_store_job_insert(cp->db, id, kind, who->org, group, spread ? "" : host,
                                      spec_text, sealed.len ? lm_strbuf_str(&sealed) : NULL, now))
        ok = cp_fail(r, 500, "INTERNAL", "cannot store the %s", kind);
    if (ok && spread && migration && !cp_spread_start(cp, id, host, &err))
        ok = cp_fail(r, 500, "INTERNAL", "%s", err.message);
    if (ok && spread && !migration) { /* the checks run on every host that will run shards */
        const char *names[16];
        lm_json_val_t *hosts = lm_json_get(v, "migrationHosts");
        for (size_t i = 0; i < n_hosts && i < 16; i++)
            names[i] = lm_json_string(lm_json_at(hosts, i));
        if (!cp_spread_validations(cp, id, names, n_hosts < 16 ? n_hosts : 16, &err))
            ok = cp_fail(r, 500, "INTERNAL", "%s", err.message);
    }
    lm_strbuf_cleanup(&sealed);
    if (ok) {
        pthread_cond_broadcast(&cp->changed);
        lm_log_info(NULL, "%s %s created for host %s%s", kind, id, host,
                    spread ? " and the other listed hosts" : "");
        sqlite3_stmt *st = lm_cp_store_job(cp->db, group, id, kind);
        lm_json_writer_t *w = obj();
        if (st)
            write_job(w, st);
        sqlite3_finalize(st);
        if (strcmp(kind, "validation") == 0) {
            lm_json_val_t *src = lm_json_get(v, "source");
            lm_json_w_kv_str(w, "sourceGroupId", lm_json_string(lm_json_get(src, "groupId")));
        }
        done(r, 200, w);
    }
    lm_json_writer_destroy(spec);
    lm_json_free_wipe(v); /* request bodies may carry passwords */
    return ok;
}

/* "verification": the agent's last verification section, {"state": "requested"} while one
 * asked for has not started, or null (none yet, or the migration verifies nothing). */
static void write_verification(lm_cp_t *cp, lm_json_writer_t *w, const char *id)
{
    sqlite3_stmt *st = lm_cp_store_job_verification(cp->db, id);
    lm_proto_verification_t v;
    lm_error_t err;
    memset(&v, 0, sizeof v);
    const char *text = st ? lm_cp_col(st, 0) : "";
    bool requested = st && sqlite3_column_int(st, 1) != 0;
    lm_json_w_key(w, "verification");
    if (text[0] && lm_proto_verification_decode(text, strlen(text), &v, &err)) {
        lm_proto_verification_w(w, &v);
    } else if (requested) {
        lm_json_w_map_open(w);
        lm_json_w_kv_str(w, "state", "requested");
        lm_json_w_map_close(w);
    } else {
        lm_json_w_null(w);
    }
    lm_proto_verification_cleanup(&v);
    sqlite3_finalize(st);
}

/* "events": the migration's fault history, oldest first, as its agents reported it (kept
 * across agent restarts): time, kind, message, agentId. */
static void write_events(lm_cp_t *cp, lm_json_writer_t *w, const char *id)
{
    sqlite3_stmt *st = lm_cp_store_job_events(cp->db, id);
    char ts[LM_TIME_ISO8601_LEN];
    lm_json_w_key(w, "events");
    lm_json_w_array_open(w);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        lm_time_format_iso8601(sqlite3_column_int64(st, 0), ts, sizeof ts);
        lm_json_w_map_open(w);
        lm_json_w_kv_str(w, "time", ts);
        lm_json_w_kv_str(w, "kind", lm_cp_col(st, 1));
        lm_json_w_kv_str(w, "message", lm_cp_col(st, 2));
        lm_json_w_kv_str(w, "agentId", lm_cp_col(st, 3));
        lm_json_w_map_close(w);
    }
    lm_json_w_array_close(w);
    sqlite3_finalize(st);
}

/* "shards": a sharded migration's shards as their agents last reported them, by name, each
 * with the host that runs it (migrationHost); [] for a replica set. A stored row that does
 * not read (it cannot happen short of a damaged database) is left out. */
static void write_shards(lm_cp_t *cp, lm_json_writer_t *w, const char *id)
{
    sqlite3_stmt *st = lm_cp_store_job_shards(cp->db, id);
    lm_json_w_key(w, "shards");
    lm_json_w_array_open(w);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        lm_strbuf_t one;
        lm_strbuf_init(&one, LM_PROTO_MAX_BYTES);
        lm_strbuf_append(&one, "{\"shards\":[");
        lm_strbuf_append(&one, lm_cp_col(st, 4));
        lm_strbuf_append(&one, "]}");
        lm_proto_status_t m;
        lm_error_t err;
        memset(&m, 0, sizeof m);
        if (lm_proto_shards_decode(lm_strbuf_str(&one), one.len, &m, &err) && m.n_shards == 1)
            lm_proto_shard_w(w, &m.shards[0], lm_cp_col(st, 1));
        else
            lm_log_warn(NULL, "live migration %s: stored shard %s does not read: %s", id,
                        lm_cp_col(st, 0), err.message);
        lm_proto_status_cleanup(&m);
        lm_strbuf_cleanup(&one);
    }
    lm_json_w_array_close(w);
    sqlite3_finalize(st);
}

/* "parts": a migration spread over several hosts, one per host that runs shards (its id,
 * host, role lead or follower, status, phase, shards); [] otherwise. */
static void write_parts(lm_cp_t *cp, lm_json_writer_t *w, const char *id)
{
    sqlite3_stmt *st = lm_cp_store_parts(cp->db, id);
    lm_error_t err;
    lm_json_w_key(w, "parts");
    lm_json_w_array_open(w);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        /* LM_CP_PART_COLUMNS: id, host, role, shards, status, ready, lag, gap, phase */
        lm_json_w_map_open(w);
        lm_json_w_kv_str(w, "partId", lm_cp_col(st, 0));
        lm_json_w_kv_str(w, "migrationHost", lm_cp_col(st, 1));
        lm_json_w_kv_str(w, "role", lm_cp_col(st, 2));
        lm_json_w_kv_str(w, "status", lm_cp_col(st, 4));
        lm_json_w_kv_str(w, "phase", lm_cp_col(st, 8)[0] ? lm_cp_col(st, 8) : "NEW");
        lm_json_w_key(w, "readyForCutover");
        lm_json_w_bool(w, sqlite3_column_int(st, 5) != 0);
        lm_json_w_key(w, "shards");
        lm_json_w_array_open(w);
        const char *list = lm_cp_col(st, 3);
        lm_json_val_t *names = list[0] ? lm_json_parse(list, strlen(list), 0, 0, &err) : NULL;
        for (size_t i = 0; names && i < lm_json_len(names); i++)
            if (lm_json_string(lm_json_at(names, i)))
                lm_json_w_str(w, lm_json_string(lm_json_at(names, i)));
        lm_json_free(names);
        lm_json_w_array_close(w);
        lm_json_w_map_close(w);
    }
    lm_json_w_array_close(w);
    sqlite3_finalize(st);
}

static bool get_job(lm_cp_t *cp, const char *group, const char *id, const char *kind, resp_t *r)
{
    sqlite3_stmt *st = lm_cp_store_job(cp->db, group, id, kind);
    if (!st)
        return cp_fail(r, 404, "RESOURCE_NOT_FOUND", "no %s %s in project %s", kind, id, group);
    lm_json_writer_t *w = obj();
    write_job(w, st);
    sqlite3_finalize(st);
    if (strcmp(kind, "validation") == 0) {
        /* the checks, as the agent reported them */
        sqlite3_stmt *rep = lm_cp_store_job_checks(cp->db, id);
        lm_json_w_key(w, "checks");
        lm_error_t err;
        lm_json_val_t *checks = NULL;
        if (rep && lm_cp_col(rep, 0)[0])
            checks = lm_json_parse(lm_cp_col(rep, 0), strlen(lm_cp_col(rep, 0)), 0, 0, &err);
        lm_json_w_array_open(w);
        for (size_t i = 0; checks && i < lm_json_len(checks); i++) {
            lm_json_val_t *c = lm_json_at(checks, i);
            lm_json_w_map_open(w);
            lm_json_w_kv_str(w, "name", lm_json_string(lm_json_get(c, "name")));
            lm_json_w_kv_str(w, "result", lm_json_string(lm_json_get(c, "result")));
            lm_json_w_kv_str(w, "message", lm_json_string(lm_json_get(c, "message")));
            lm_json_w_map_close(w);
        }
        lm_json_w_array_close(w);
        lm_json_free(checks);
        sqlite3_finalize(rep);
    } else {
        write_verification(cp, w, id);
        write_events(cp, w, id);
        write_shards(cp, w, id);
        write_parts(cp, w, id);
    }
    return done(r, 200, w);
}

static bool list_jobs(lm_cp_t *cp, const char *group, resp_t *r)
{
    sqlite3_stmt *st = lm_cp_store_migrations(cp->db, group);
    lm_json_writer_t *w = results_open();
    int n = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        lm_json_w_map_open(w);
        write_job(w, st);
        lm_json_w_map_close(w);
        n++;
    }
    sqlite3_finalize(st);
    return results_close(r, w, n);
}

/* cutover / cancel / extend: a command for the agent, checked against the job's state. */
static bool job_command(lm_cp_t *cp, const char *group, const char *id, const char *cmd, resp_t *r)
{
    sqlite3_stmt *st = lm_cp_store_job(cp->db, group, id, "migration");
    if (!st)
        return cp_fail(r, 404, "RESOURCE_NOT_FOUND", "no live migration %s in project %s", id,
                       group);
    char status[16];
    snprintf(status, sizeof status, "%s", lm_cp_col(st, 1));
    bool ready = sqlite3_column_int(st, 2) != 0;
    lm_cp_window_t window = {.set = sqlite3_column_type(st, 6) != SQLITE_NULL,
                             .end_ms = sqlite3_column_int64(st, 6)};
    sqlite3_finalize(st);
    lm_job_status_t s = LM_STATUS_NEW;
    bool terminal = lm_job_status_parse(status, &s) && lm_job_status_terminal(s);
    if (terminal)
        return cp_fail(r, 409, "MIGRATION_NOT_ACTIVE", "live migration %s is %s already", id,
                       status);
    int64_t deadline = 0;
    if (strcmp(cmd, "cutover") == 0 && !ready)
        return cp_fail(r, 409, "MIGRATION_NOT_READY_FOR_CUTOVER",
                       "live migration %s is not ready for cutover yet (readyForCutover is "
                       "false): wait until the lag is within the cutover lag",
                       id);
    if (strcmp(cmd, "extend") == 0) {
        if (!lm_cp_window_extend(&window, cp->cfg->extend_ms))
            return cp_fail(r, 409, "CUTOVER_WINDOW_NOT_OPEN",
                           "live migration %s has no cutover window yet: it opens at the first "
                           "readyForCutover",
                           id);
        deadline = window.end_ms;
        lm_cp_store_job_set_window(cp->db, id, deadline, lm_time_now_ms());
    }
    if (strcmp(cmd, "cancel") == 0)
        lm_cp_store_job_set_status(cp->db, id, lm_job_status_name(LM_STATUS_CANCELLED),
                                   lm_time_now_ms());
    if (!cp_spread_command(cp, id, cmd, deadline))
        return cp_fail(r, 500, "INTERNAL", "cannot store the %s command", cmd);
    pthread_cond_broadcast(&cp->changed);
    lm_log_info(NULL, "live migration %s: %s requested", id, cmd);
    if (strcmp(cmd, "extend") == 0) {
        lm_json_writer_t *w = obj();
        lm_json_w_key(w, "cutoverWindowEndMs");
        lm_json_w_int(w, deadline);
        return done(r, 200, w);
    }
    r->status = 202;
    return true;
}

/* Restart one failed shard of a sharded migration: a restart-shard command for the agent
 * that runs it (acknowledged like cutover and cancel), which restarts the shard from its
 * checkpoint. 404 for a shard the migration's reports never named, 409 unless the shard's
 * last reported state is FAILED or the migration has ended. */
static bool shard_restart(lm_cp_t *cp, const char *group, const char *id, const char *name,
                          resp_t *r)
{
    sqlite3_stmt *st = lm_cp_store_job(cp->db, group, id, "migration");
    if (!st)
        return cp_fail(r, 404, "RESOURCE_NOT_FOUND", "no live migration %s in project %s", id,
                       group);
    char status[16];
    snprintf(status, sizeof status, "%s", lm_cp_col(st, 1));
    sqlite3_finalize(st);
    lm_job_status_t s = LM_STATUS_NEW;
    if (lm_job_status_parse(status, &s) && lm_job_status_terminal(s))
        return cp_fail(r, 409, "MIGRATION_NOT_ACTIVE", "live migration %s is %s already", id,
                       status);
    st = lm_cp_store_job_shard(cp->db, id, name);
    if (!st)
        return cp_fail(r, 404, "SHARD_NOT_FOUND",
                       "live migration %s has no shard named '%s' (`livemig lm describe %s` "
                       "lists its shards)",
                       id, name, id);
    char state[16], host[80], part[80];
    snprintf(state, sizeof state, "%s", lm_cp_col(st, 0));
    snprintf(host, sizeof host, "%s", lm_cp_col(st, 1));
    snprintf(part, sizeof part, "%s", lm_cp_col(st, 2)); /* spread: the part that runs it */
    sqlite3_finalize(st);
    if (strcmp(state, "FAILED") != 0)
        return cp_fail(r, 409, "SHARD_NOT_FAILED",
                       "shard %s of live migration %s is %s: only a FAILED shard is restarted (its "
                       "lastError says why it failed; fix that first)",
                       name, id, state);
    if (!lm_cp_store_command_insert_arg(cp->db, part[0] ? part : id, "restart-shard", name,
                                        lm_time_now_ms()))
        return cp_fail(r, 500, "INTERNAL", "cannot store the restart-shard command");
    pthread_cond_broadcast(&cp->changed);
    lm_log_info(NULL, "live migration %s: restart of shard %s requested (host %s)", id, name, host);
    r->status = 202;
    return true;
}

/* A verification on demand: the finished migration goes to its agent again, to verify
 * only (docs/agent-daemon.md). */
static bool job_verify(lm_cp_t *cp, const char *group, const char *id, resp_t *r)
{
    sqlite3_stmt *st = lm_cp_store_job(cp->db, group, id, "migration");
    if (!st)
        return cp_fail(r, 404, "RESOURCE_NOT_FOUND", "no live migration %s in project %s", id,
                       group);
    char status[16];
    snprintf(status, sizeof status, "%s", lm_cp_col(st, 1));
    sqlite3_finalize(st);
    lm_job_status_t s = LM_STATUS_NEW;
    lm_job_status_parse(status, &s);
    if (s != LM_STATUS_COMPLETE)
        return cp_fail(r, 409, "MIGRATION_NOT_COMPLETE",
                       "live migration %s is %s: a verification on demand compares a target "
                       "after the cutover (COMPLETE); a running migration verifies itself after "
                       "its cutover",
                       id, status);
    st = lm_cp_store_job_verification(cp->db, id);
    bool busy = false;
    if (st) {
        lm_proto_verification_t v;
        lm_error_t err;
        memset(&v, 0, sizeof v);
        const char *text = lm_cp_col(st, 0);
        busy = sqlite3_column_int(st, 1) != 0 ||
               (text[0] && lm_proto_verification_decode(text, strlen(text), &v, &err) &&
                strcmp(v.state, "running") == 0);
        lm_proto_verification_cleanup(&v);
    }
    sqlite3_finalize(st);
    if (busy)
        return cp_fail(r, 409, "VERIFICATION_RUNNING",
                       "live migration %s: a verification is asked for or running already: wait "
                       "for its result (`livemig lm describe %s`)",
                       id, id);
    bool ok = true;
    sqlite3_stmt *parts = lm_cp_store_parts(cp->db, id);
    int n_parts = 0;
    while (ok && parts && sqlite3_step(parts) == SQLITE_ROW) { /* spread: each part verifies */
        ok = lm_cp_store_job_request_verify(cp->db, lm_cp_col(parts, 0), lm_time_now_ms());
        n_parts++;
    }
    sqlite3_finalize(parts);
    if (!ok || !lm_cp_store_job_request_verify(cp->db, id, lm_time_now_ms()))
        return cp_fail(r, 500, "INTERNAL", "cannot store the verification request");
    if (n_parts) /* the migration's own request: its section says "requested" until one runs */
        lm_log_info(NULL, "live migration %s: verification asked of its %d parts", id, n_parts);
    pthread_cond_broadcast(&cp->changed);
    lm_log_info(NULL, "live migration %s: verification requested", id);
    r->status = 202;
    return true;
}

static bool job_progress(lm_cp_t *cp, const char *group, const char *id, resp_t *r)
{
    sqlite3_stmt *st = lm_cp_store_migration_report(cp->db, group, id);
    if (!st)
        return cp_fail(r, 404, "RESOURCE_NOT_FOUND", "no live migration %s in project %s", id,
                       group);
    const char *report = lm_cp_col(st, 0);
    lm_strbuf_append(&r->body, report[0] ? report : "{}");
    sqlite3_finalize(st);
    r->status = 200;
    return true;
}

/* ---- routes ---- */

static bool on_create_group(cp_call_t *k)
{
    return create_group(k->cp, &k->who, k->q, k->r);
}

static bool on_list_groups(cp_call_t *k)
{
    return list_groups(k->cp, cp_arg(k, "orgId"), k->r);
}

static bool on_create_api_key(cp_call_t *k)
{
    return create_api_key(k->cp, cp_arg(k, "orgId"), k->q, k->r);
}

static bool on_list_api_keys(cp_call_t *k)
{
    return list_api_keys(k->cp, cp_arg(k, "orgId"), k->r);
}

static bool on_delete_api_key(cp_call_t *k)
{
    return delete_api_key(k->cp, cp_arg(k, "orgId"), cp_arg(k, "id"), k->r);
}

static bool on_create_link_token(cp_call_t *k)
{
    return create_link_token(k->cp, cp_arg(k, "orgId"), k->q, k->r);
}

static bool on_delete_link_token(cp_call_t *k)
{
    return delete_link_token(k->cp, cp_arg(k, "orgId"), k->r);
}

static bool on_relink(cp_call_t *k)
{
    return allow_relink(k->cp, &k->who, cp_arg(k, "orgId"), cp_arg(k, "hostname"), k->r);
}

static bool on_list_agents(cp_call_t *k)
{
    return list_agents(k->cp, cp_arg(k, "orgId"), k->r);
}

static bool on_available_projects(cp_call_t *k)
{
    return available_projects(k->cp, cp_arg(k, "orgId"), k->r);
}

static bool on_add_cluster(cp_call_t *k)
{
    return add_cluster(k->cp, cp_arg(k, "groupId"), k->q, k->r);
}

static bool on_list_clusters(cp_call_t *k)
{
    return list_clusters(k->cp, cp_arg(k, "groupId"), k->r);
}

static bool on_create_validation(cp_call_t *k)
{
    return create_job(k->cp, &k->who, cp_arg(k, "groupId"), "validation", k->q, k->r);
}

static bool on_get_validation(cp_call_t *k)
{
    return get_job(k->cp, cp_arg(k, "groupId"), cp_arg(k, "id"), "validation", k->r);
}

static bool on_create_migration(cp_call_t *k)
{
    return create_job(k->cp, &k->who, cp_arg(k, "groupId"), "migration", k->q, k->r);
}

static bool on_list_migrations(cp_call_t *k)
{
    return list_jobs(k->cp, cp_arg(k, "groupId"), k->r);
}

static bool on_get_migration(cp_call_t *k)
{
    return get_job(k->cp, cp_arg(k, "groupId"), cp_arg(k, "id"), "migration", k->r);
}

static bool on_cutover(cp_call_t *k)
{
    return job_command(k->cp, cp_arg(k, "groupId"), cp_arg(k, "id"), "cutover", k->r);
}

static bool on_cancel(cp_call_t *k)
{
    return job_command(k->cp, cp_arg(k, "groupId"), cp_arg(k, "id"), "cancel", k->r);
}

static bool on_extend(cp_call_t *k)
{
    return job_command(k->cp, cp_arg(k, "groupId"), cp_arg(k, "id"), "extend", k->r);
}

static bool on_verify(cp_call_t *k)
{
    return job_verify(k->cp, cp_arg(k, "groupId"), cp_arg(k, "id"), k->r);
}

static bool on_shard_restart(cp_call_t *k)
{
    return shard_restart(k->cp, cp_arg(k, "groupId"), cp_arg(k, "id"), cp_arg(k, "name"), k->r);
}

static bool on_progress(cp_call_t *k)
{
    return job_progress(k->cp, cp_arg(k, "groupId"), cp_arg(k, "id"), k->r);
}

#define V2 "/api/atlas/v2"
#define ORG V2 "/orgs/{orgId}"
#define GROUP V2 "/groups/{groupId}"

/* Owner routes write, member routes read. A {groupId} must be a project of the caller's
 * organization (404 otherwise), an {orgId} the caller's organization (403). */
const lm_cp_route_t lm_cp_admin_routes[] = {
    {"POST", V2 "/groups", LM_CP_ROLE_OWNER, on_create_group},
    {"GET", ORG "/groups", LM_CP_ROLE_MEMBER, on_list_groups},
    {"POST", ORG "/apiKeys", LM_CP_ROLE_OWNER, on_create_api_key},
    {"GET", ORG "/apiKeys", LM_CP_ROLE_MEMBER, on_list_api_keys},
    {"DELETE", ORG "/apiKeys/{id}", LM_CP_ROLE_OWNER, on_delete_api_key},
    {"POST", ORG "/liveMigrations/linkTokens", LM_CP_ROLE_OWNER, on_create_link_token},
    {"DELETE", ORG "/liveMigrations/linkTokens", LM_CP_ROLE_OWNER, on_delete_link_token},
    {"POST", ORG "/liveMigrations/agents/{hostname}/relink", LM_CP_ROLE_OWNER, on_relink},
    {"GET", ORG "/liveMigrations/availableProjects", LM_CP_ROLE_MEMBER, on_available_projects},
    {"GET", ORG "/liveMigrations/agents", LM_CP_ROLE_MEMBER, on_list_agents},
    {"POST", GROUP "/clusters", LM_CP_ROLE_OWNER, on_add_cluster},
    {"GET", GROUP "/clusters", LM_CP_ROLE_MEMBER, on_list_clusters},
    {"POST", GROUP "/liveMigrations/validate", LM_CP_ROLE_OWNER, on_create_validation},
    {"GET", GROUP "/liveMigrations/validate/{id}", LM_CP_ROLE_MEMBER, on_get_validation},
    {"POST", GROUP "/liveMigrations", LM_CP_ROLE_OWNER, on_create_migration},
    {"GET", GROUP "/liveMigrations", LM_CP_ROLE_MEMBER, on_list_migrations},
    {"GET", GROUP "/liveMigrations/{id}", LM_CP_ROLE_MEMBER, on_get_migration},
    {"PUT", GROUP "/liveMigrations/{id}/cutover", LM_CP_ROLE_OWNER, on_cutover},
    {"POST", GROUP "/liveMigrations/{id}/cancel", LM_CP_ROLE_OWNER, on_cancel},
    {"POST", GROUP "/liveMigrations/{id}/extend", LM_CP_ROLE_OWNER, on_extend},
    {"POST", GROUP "/liveMigrations/{id}/verify", LM_CP_ROLE_OWNER, on_verify},
    {"GET", GROUP "/liveMigrations/{id}/progress", LM_CP_ROLE_MEMBER, on_progress},
    {"POST", GROUP "/liveMigrations/{id}/shards/{name}/restart", LM_CP_ROLE_OWNER,
     on_shard_restart},
    {NULL, NULL, LM_CP_ROLE_MEMBER, NULL},
};

/* ---- offline bootstrap ---- */

/* bootstrap run as root: the database it made belongs to the owner of its directory (the
 * service user of the packages, which owns /var/lib/livemig-controlplane), so the service
 * can open it. Run as another user, nothing changes. */
static bool give_to_service(const char *db_path, lm_error_t *err)
{
    if (geteuid() != 0)
        return true;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", db_path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    struct stat st;
    if (stat(dir, &st) != 0 || st.st_uid == 0)
        return true;
    static const char *const sides[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof sides / sizeof sides[0]; i++) {
        char f[4200];
        snprintf(f, sizeof f, "%s%s", db_path, sides[i]);
        if (lchown(f, st.st_uid, st.st_gid) != 0 && errno != ENOENT)
            return lm_error_set(err, LM_ERR_IO, "%s: cannot give it to the owner of %s: %s", f, dir,
                                strerror(errno));
    }
    return true;
}

bool lm_cp_bootstrap(const lm_cp_config_t *cfg, const char *org, const char *desc, lm_error_t *err)
{
    sqlite3 *db;
    if (!lm_cp_valid_id(org))
        return lm_error_set(err, LM_ERR_INVALID,
                            "--org: use 1-64 letters, digits, '_', '-' or '.'");
    if (!lm_cp_store_open(cfg->db_path, NULL, NULL, &db, err)) /* no key: no reseal */
        return false;
    char id[25], secret[65];
    bool ok = lm_cp_store_org_ensure(db, org, lm_time_now_ms()) &&
              insert_key(db, org, "ORG_OWNER", desc, 0, id, secret);
    sqlite3_close(db);
    if (!ok)
        return lm_error_set(err, LM_ERR_IO, "%s: cannot write the API key", cfg->db_path);
    if (!give_to_service(cfg->db_path, err))
        return false;
    printf("organization: %s\npublic key:   %s\nprivate key:  %s\n"
           "(the private key is shown this once; keep it in a file readable only by you)\n",
           org, id, secret);
    lm_wipe(secret, sizeof secret);
    return true;
}
