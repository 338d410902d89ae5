/* livemig-controlplane: the HTTPS server, routing (by the tables of lm_cp_admin.c and
 * lm_cp_agent.c, matched by lm_cp_routes.c), authentication and role checks. Thread per connection
 * (libmicrohttpd), so an agent's long poll simply waits on a condition variable; one SQLite
 * connection under one mutex. See controlplane/README.md. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lm_cp_console.h"
#include "lm_cp_http.h"
#include "lm_cp_tls.h"
#include "lm_encode.h"
#include "lm_fs.h"
#include "lm_http.h"
#include "lm_json.h"
#include "lm_log.h"
#include "lm_proto.h"
#include "lm_time.h"

/* GnuTLS priorities: its NORMAL set (ciphers, groups, signatures), versions TLS 1.3 and 1.2
 * only. Debian's GnuTLS still accepts TLS 1.0 and 1.1 under plain NORMAL. */
#define LM_CP_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* The Content-Security-Policy of every answer (the console's pages above all). */
#define LM_CP_CSP                                                                                  \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

/* ---- answers ---- */

static const char *reason_of(unsigned status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Internal Server Error" : "Error";
    }
}

bool cp_fail(resp_t *r, unsigned status, const char *code, const char *fmt, ...)
{
    char detail[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_map_open(w);
    lm_json_w_key(w, "error");
    lm_json_w_int(w, status);
    lm_json_w_kv_str(w, "errorCode", code);
    lm_json_w_kv_str(w, "detail", detail);
    lm_json_w_kv_str(w, "reason", reason_of(status));
    lm_json_w_map_close(w);
    size_t len;
    lm_error_t err;
    const char *s = lm_json_writer_result(w, &len, &err);
    lm_strbuf_cleanup(&r->body);
    lm_strbuf_init_secret(&r->body, 1u << 20);
    if (s)
        lm_strbuf_append_n(&r->body, s, len);
    lm_json_writer_destroy(w);
    r->status = status;
    return false;
}

/* Ends w (its top-level object must be open) into r with status. */
bool cp_answer(resp_t *r, unsigned status, lm_json_writer_t *w)
{
    size_t len;
    lm_error_t err;
    const char *s = lm_json_writer_result(w, &len, &err);
    if (!s) {
        lm_json_writer_destroy(w);
        return cp_fail(r, 500, "INTERNAL", "cannot write the answer: %s", err.message);
    }
    lm_strbuf_append_n(&r->body, s, len);
    lm_json_writer_destroy(w);
    r->status = status;
    return true;
}

/* ---- request bodies ---- */

lm_json_val_t *cp_body_json(const req_t *q, resp_t *r)
{
    lm_error_t err;
    const char *b = lm_strbuf_str(&q->body);
    lm_json_val_t *v = lm_json_parse(b, strlen(b), 1u << 20, 16, &err);
    if (!v) {
        cp_fail(r, 400, "MALFORMED_REQUEST_BODY", "the request body is not valid JSON: %s",
                err.message);
        return NULL;
    }
    if (lm_json_type(v) != LM_JSON_OBJECT) {
        lm_json_free(v);
        cp_fail(r, 400, "MALFORMED_REQUEST_BODY", "the request body must be a JSON object");
        return NULL;
    }
    return v;
}

/* A JSON field error as a 400 answer. */
bool cp_bad_field(resp_t *r, const lm_error_t *err)
{
    return cp_fail(r, 400, "INVALID_ATTRIBUTE", "%s", err->message);
}

/* ---- authentication ---- */

bool cp_check_key(lm_cp_t *cp, const char *id, const char *secret, caller_t *who, resp_t *r)
{
    bool ok = false, expired = false;
    int64_t now = lm_time_now_ms();
    sqlite3_stmt *st = lm_cp_store_api_key(cp->db, id);
    if (st) {
        char hash[65];
        int64_t expires = sqlite3_column_int64(st, 4);
        lm_cp_hash_secret(lm_cp_col(st, 2), secret, hash);
        /* an expired key is told so only when its secret is right */
        if (lm_cp_equal(hash, lm_cp_col(st, 3)) && !(expired = expires && now >= expires)) {
            ok = true;
            snprintf(who->key_id, sizeof who->key_id, "%s", id);
            snprintf(who->org, sizeof who->org, "%s", lm_cp_col(st, 0));
            who->owner = strcmp(lm_cp_col(st, 1), "ORG_OWNER") == 0;
        }
    }
    sqlite3_finalize(st);
    if (expired)
        return cp_fail(r, 401, "API_KEY_EXPIRED",
                       "this API key has expired: use another key, or have an Organization Owner "
                       "create a new one");
    if (!ok)
        return cp_fail(r, 401, "NOT_AUTHENTICATED",
                       "the API key is unknown (or deleted) or its secret is wrong");
    lm_cp_store_api_key_used(cp->db, who->key_id, now);
    return true;
}

bool cp_changes_state(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

/* The web console's session cookie: a live session whose API key is still live (not
 * deleted, not expired: checked on every call, as Basic auth is), and for a call that may
 * change state the session's CSRF token in X-CSRF-Token. */
static bool auth_session(lm_cp_t *cp, struct MHD_Connection *c, const char *method,
                         const char *cookies, caller_t *who, resp_t *r)
{
    char id[LM_CP_SESSION_TOKEN_LEN + 2];
    lm_cp_session_state_t state = LM_CP_SESSION_UNKNOWN;
    lm_cp_session_t *s = NULL;
    if (lm_cp_cookie_get(cookies, LM_CP_SESSION_COOKIE, id, sizeof id))
        s = lm_cp_session_find(cp->sessions, id, lm_time_now_ms(), &state);
    if (!s) {
        lm_wipe(id, sizeof id);
        if (state == LM_CP_SESSION_IDLE_EXPIRED || state == LM_CP_SESSION_TOO_OLD)
            return cp_fail(
                r, 401, "SESSION_EXPIRED",
                state == LM_CP_SESSION_IDLE_EXPIRED
                    ? "the console session expired after %lld s without a request: "
                      "sign in again"
                    : "the console session reached its longest life (%lld s): sign "
                      "in again",
                (long long)((state == LM_CP_SESSION_IDLE_EXPIRED ? cp->cfg->console_idle_ms
                                                                 : cp->cfg->console_lifetime_ms) /
                            1000));
        return cp_fail(r, 401, "NOT_AUTHENTICATED",
                       "no console session (signed out, expired or the control plane restarted): "
                       "sign in again, or send an API key as HTTP Basic auth");
    }
    /* the key behind the session: deleted or expired since the sign-in ends it */
    sqlite3_stmt *st = lm_cp_store_api_key(cp->db, s->key_id);
    int64_t now = lm_time_now_ms(), expires = st ? sqlite3_column_int64(st, 4) : 0;
    bool live = st && !(expires && now >= expires);
    sqlite3_finalize(st);
    if (!live) {
        lm_cp_session_end(cp->sessions, id);
        lm_wipe(id, sizeof id);
        return cp_fail(r, 401, "NOT_AUTHENTICATED",
                       "the API key of this console session was deleted or has expired: sign in "
                       "with another key");
    }
    lm_wipe(id, sizeof id);
    /* the caller is known (the audit log names the key) even when the change is refused */
    snprintf(who->key_id, sizeof who->key_id, "%s", s->key_id);
    snprintf(who->org, sizeof who->org, "%s", s->org);
    who->owner = s->owner;
    if (cp_changes_state(method) &&
        !lm_cp_session_csrf_ok(s, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-CSRF-Token")))
        return cp_fail(r, 403, "CSRF_TOKEN_INVALID",
                       "a change made with the console's session cookie needs the session's "
                       "X-CSRF-Token header (the console sends it): reload the console");
    who->session = true;
    lm_cp_store_api_key_used(cp->db, who->key_id, now);
    return true;
}

/* Admin API: "Authorization: Basic base64(publicKey:privateKey)", or else the web
 * console's session cookie. */
bool cp_auth_admin(lm_cp_t *cp, struct MHD_Connection *c, const char *method, caller_t *who,
                   resp_t *r)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *cookies = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Cookie");
    char plain[256];
    if (!h && cookies && strstr(cookies, LM_CP_SESSION_COOKIE "="))
        return auth_session(cp, c, method, cookies, who, r);
    if (!h || strncmp(h, "Basic ", 6) != 0)
        return cp_fail(
            r, 401, "NOT_AUTHENTICATED",
            "an API key is required: send it as HTTP Basic auth (public key as the user, "
            "private key as the password)");
    char *colon;
    size_t n = 0;
    bool decoded =
        strlen(h + 6) <= 300 &&
        lm_base64_decode(h + 6, strlen(h + 6), false, (unsigned char *)plain, sizeof plain - 1, &n);
    plain[decoded ? n : 0] = '\0';
    if (!decoded || !(colon = strchr(plain, ':')))
        return cp_fail(r, 401, "NOT_AUTHENTICATED", "the Authorization header is malformed");
    *colon = '\0';
    bool ok = cp_check_key(cp, plain, colon + 1, who, r);
    lm_wipe(plain, sizeof plain);
    return ok;
}

bool cp_need_owner(const caller_t *who, resp_t *r)
{
    if (!who->owner)
        return cp_fail(r, 403, "USER_UNAUTHORIZED",
                       "this API key has the Organization Member role, which can only read: use an "
                       "Organization Owner key");
    return true;
}

bool cp_own_org(const caller_t *who, const char *org, resp_t *r)
{
    if (strcmp(who->org, org) != 0)
        return cp_fail(r, 403, "USER_UNAUTHORIZED",
                       "this API key belongs to another organization than %s", org);
    return true;
}

/* The project `group` exists in the caller's organization. */
bool cp_own_group(lm_cp_t *cp, const caller_t *who, const char *group, resp_t *r)
{
    if (!lm_cp_store_project_in_org(cp->db, group, who->org))
        return cp_fail(r, 404, "GROUP_NOT_FOUND", "no project %s in this API key's organization",
                       group);
    return true;
}

/* The client's address as text ("" when unknown). */
static void client_ip(struct MHD_Connection *c, char *ip, size_t size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    ip[0] = '\0';
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, (socklen_t)size);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, (socklen_t)size);
    }
}

/* Whether ip may call: access is a link-token's list, a JSON array of addresses; empty means
 * any, unreadable means none. */
static bool on_access_list(const char *access, const char *ip)
{
    lm_error_t err;
    lm_json_val_t *list = lm_json_parse(access, strlen(access), 0, 0, &err);
    bool allowed = list && lm_json_len(list) == 0;
    for (size_t i = 0; list && i < lm_json_len(list) && !allowed; i++) {
        const char *a = lm_json_string(lm_json_at(list, i));
        allowed = a && strcmp(a, ip) == 0;
    }
    lm_json_free(list);
    return allowed;
}

/* "Authorization: Bearer <id>:<secret>" into cred (the caller wipes it): *secret points
 * into it, after the id. */
static bool bearer(struct MHD_Connection *c, char *cred, size_t size, char **secret, resp_t *r)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    char *colon;
    cred[0] = '\0';
    if (!h || strncmp(h, "Bearer ", 7) != 0 || strlen(h + 7) >= size)
        return cp_fail(r, 401, "NOT_AUTHENTICATED", "an agent credential is required");
    snprintf(cred, size, "%s", h + 7);
    if (!(colon = strchr(cred, ':')))
        return cp_fail(r, 401, "NOT_AUTHENTICATED", "the agent credential is malformed");
    *colon = '\0';
    *secret = colon + 1;
    return true;
}

/* Whether tokenId:secret is a link-token's credential (deleted or not). */
static bool is_link_token(lm_cp_t *cp, const char *id, const char *secret)
{
    sqlite3_stmt *st = lm_cp_store_link_token(cp->db, id);
    bool ok = false;
    if (st) {
        char hash[65];
        lm_cp_hash_secret(lm_cp_col(st, 1), secret, hash);
        ok = lm_cp_equal(hash, lm_cp_col(st, 2));
    }
    sqlite3_finalize(st);
    return ok;
}

static bool revoked_answer(resp_t *r)
{
    return cp_fail(r, 401, "LINK_TOKEN_REVOKED",
                   "the link-token this agent was linked with has been deleted: link it again "
                   "with a new one");
}

static bool access_answer(resp_t *r, const char *ip)
{
    return cp_fail(r, 403, "IP_ADDRESS_NOT_ON_ACCESS_LIST",
                   "this agent's address %s is not on the link-token's access list", ip);
}

/* Enrolling (register): "Authorization: Bearer <tokenId>:<secret>" of a link-token that is
 * neither deleted nor expired, from an address on its access list. Fills a->org, a->token
 * and a->ip. */
bool cp_auth_enroll(lm_cp_t *cp, struct MHD_Connection *c, agent_t *a, resp_t *r)
{
    char cred[200], *secret = NULL;
    client_ip(c, a->ip, sizeof a->ip);
    if (!bearer(c, cred, sizeof cred, &secret, r))
        return false;
    sqlite3_stmt *st = lm_cp_store_link_token(cp->db, cred);
    bool ok = false, revoked = false;
    int64_t expires = 0;
    char *access = NULL;
    if (st) {
        char hash[65];
        lm_cp_hash_secret(lm_cp_col(st, 1), secret, hash);
        ok = lm_cp_equal(hash, lm_cp_col(st, 2));
        revoked = sqlite3_column_int64(st, 4) != 0;
        expires = sqlite3_column_type(st, 5) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 5);
        snprintf(a->org, sizeof a->org, "%s", lm_cp_col(st, 0));
        access = strdup(lm_cp_col(st, 3));
        snprintf(a->token, sizeof a->token, "%s", cred);
    }
    sqlite3_finalize(st);
    lm_wipe(cred, sizeof cred);
    if (!ok || !access) {
        free(access);
        return cp_fail(r, 401, "NOT_AUTHENTICATED", "the link-token is unknown");
    }
    bool allowed = on_access_list(access, a->ip);
    free(access);
    if (revoked)
        return revoked_answer(r);
    if (expires && lm_time_now_ms() >= expires) {
        char when[40];
        lm_time_format_iso8601(expires, when, sizeof when);
        lm_log_warn(NULL,
                    "registration from %s refused: link-token %s of organization %s expired at %s",
                    a->ip, a->token, a->org, when);
        return cp_fail(r, 401, "LINK_TOKEN_EXPIRED",
                       "this link-token expired at %s and enrolls no more agents (the agents it "
                       "enrolled keep working): an Organization Owner makes a new one with "
                       "`livemig lm link create`",
                       when);
    }
    if (!allowed)
        return access_answer(r, a->ip);
    return true;
}

/* Every other agent call: "Authorization: Bearer <agentId>:<agentSecret>", the agent's own
 * credential, whose link-token is not deleted, from an address on that token's access list.
 * Fills a->org, a->token, a->agent_id, a->host and a->ip. A link-token is refused here: it
 * only enrolls. */
bool cp_auth_agent(lm_cp_t *cp, struct MHD_Connection *c, agent_t *a, resp_t *r)
{
    char cred[200], *secret = NULL;
    client_ip(c, a->ip, sizeof a->ip);
    if (!bearer(c, cred, sizeof cred, &secret, r))
        return false;
    sqlite3_stmt *st = lm_cp_store_agent_auth(cp->db, cred);
    bool ok = false, revoked = false;
    char *access = NULL;
    if (st && sqlite3_column_type(st, 4) != SQLITE_NULL) {
        char hash[65];
        lm_cp_hash_secret(lm_cp_col(st, 3), secret, hash);
        ok = lm_cp_equal(hash, lm_cp_col(st, 4));
        revoked = sqlite3_column_int64(st, 5) != 0;
        snprintf(a->org, sizeof a->org, "%s", lm_cp_col(st, 0));
        snprintf(a->token, sizeof a->token, "%s", lm_cp_col(st, 1));
        snprintf(a->host, sizeof a->host, "%s", lm_cp_col(st, 2));
        snprintf(a->agent_id, sizeof a->agent_id, "%s", cred);
        access = strdup(lm_cp_col(st, 6));
    }
    sqlite3_finalize(st);
    bool token = !ok && is_link_token(cp, cred, secret);
    lm_wipe(cred, sizeof cred);
    if (token) {
        lm_log_warn(NULL,
                    "agent API call with a link-token from %s refused: a link-token only "
                    "enrolls agents",
                    a->ip);
        return cp_fail(r, 401, "AGENT_CREDENTIAL_REQUIRED",
                       "a link-token only enrolls an agent (register); every other call needs "
                       "the agent's own credential, which `livemig-agent link` keeps in "
                       "state_dir/identity.json. An agent linked by an older livemig has none: "
                       "upgrade it, have an Organization Owner run `livemig lm agents relink "
                       "HOST --orgId ORG`, then link it again");
    }
    if (!ok || !access) {
        free(access);
        return cp_fail(r, 401, "NOT_AUTHENTICATED",
                       "the agent credential is unknown (was this host relinked since?)");
    }
    bool allowed = on_access_list(access, a->ip);
    free(access);
    if (revoked)
        return revoked_answer(r);
    if (!allowed)
        return access_answer(r, a->ip);
    return true;
}

/* ---- the poll budget ---- */

bool cp_poll_wait(lm_cp_t *cp, resp_t *r)
{
    if (cp->waiting_polls >= cp->cfg->max_waiting_polls)
        return cp_fail(r, 503, "TOO_MANY_POLLS",
                       "%lld agent polls are waiting already: poll again later",
                       (long long)cp->waiting_polls);
    cp->waiting_polls++;
    return true;
}

void cp_poll_done(lm_cp_t *cp)
{
    cp->waiting_polls--;
}

/* ---- routing ---- */

const char *cp_arg(const cp_call_t *k, const char *name)
{
    const char *v = lm_cp_param(&k->params, name);
    return v ? v : "";
}

/* The role's checks for call k, in the order the handlers made them before the route table
 * did: the caller's credential; for the admin API the project in the path ({groupId}), the
 * Owner role, then the organization in the path ({orgId}); for the agent API a link-token
 * to enroll, the agent's own credential for everything else. A refusal is in k->r. */
static bool authorize(cp_call_t *k, lm_cp_role_t role)
{
    if (!lm_cp_role_is_admin(role))
        return role == LM_CP_ROLE_ENROLL ? cp_auth_enroll(k->cp, k->c, &k->agent, k->r)
                                         : cp_auth_agent(k->cp, k->c, &k->agent, k->r);
    const char *group = lm_cp_param(&k->params, "groupId");
    const char *org = lm_cp_param(&k->params, "orgId");
    return cp_auth_admin(k->cp, k->c, k->method, &k->who, k->r) &&
           (!group || cp_own_group(k->cp, &k->who, group, k->r)) &&
           (lm_cp_role_admits_key(role, k->who.owner) || cp_need_owner(&k->who, k->r)) &&
           (!org || cp_own_org(&k->who, org, k->r));
}

/* Which API a path no route matched belongs to: its callers are authenticated before they
 * learn that it does not exist. */
static bool under(const char *url, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(url, prefix, n) == 0 && url[n] != '\0';
}

/* Who made an admin API call and which route it took: the audit log's subject. */
typedef struct {
    bool admin;        /* an admin API path */
    const char *route; /* the route's pattern; NULL when none matched */
    char key[80];      /* the API key's public part once authenticated, else "" */
} audit_t;

/* The console's requests come before any credential: only the sign-in has a body, a small
 * one with its length announced (411 / 413 at once otherwise), so nobody unauthenticated
 * makes the server read more than LM_CP_SIGN_IN_MAX bytes. */
#define LM_CP_SIGN_IN_MAX 4096
static bool console_body_ok(struct MHD_Connection *c, const char *method, resp_t *r)
{
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding");
    char *end = NULL;
    unsigned long long n = cl ? strtoull(cl, &end, 10) : 0;
    if (strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0 && strcmp(method, "PATCH") != 0 &&
        !te && (!cl || n == 0))
        return true;
    if (!cl || te || !end || *end)
        return cp_fail(r, 411, "LENGTH_REQUIRED",
                       "the console's sign-in takes a body with its Content-Length");
    if (n > LM_CP_SIGN_IN_MAX)
        return cp_fail(r, 413, "PAYLOAD_TOO_LARGE", "the sign-in body is over %d bytes",
                       LM_CP_SIGN_IN_MAX);
    return true;
}

/* Routes one request: finds its route, checks its role and calls its handler under cp->mu
 * (agent polls wait on cp->changed, which releases it). Fills *au. check_only: the
 * headers have come, the body not yet: only the credential and role are checked, so that
 * nobody unauthenticated makes the server read (and buffer) a body. False when the request
 * is refused (the answer is in r). */
static bool dispatch(lm_cp_t *cp, struct MHD_Connection *c, const char *method, const char *url,
                     const req_t *q, resp_t *r, audit_t *au, bool check_only)
{
    const lm_cp_route_t *const tables[] = {lm_cp_admin_routes, lm_cp_agent_routes};
    cp_call_t k = {.cp = cp, .c = c, .method = method, .q = q, .r = r};
    url = lm_cp_route_path(url);
    if (lm_cp_console_path(url)) {
        /* the web console: its files and its session API (lm_cp_console.c); the sign-in's
         * body (at most LM_CP_SIGN_IN_MAX bytes) is read before anything is checked */
        au->admin = strcmp(url, "/console/api/session") == 0;
        au->route = au->admin ? "/console/api/session" : NULL;
        if (check_only)
            return console_body_ok(c, method, r);
        lm_cp_console_answer(cp, c, method, url, q, r, au->key);
        return r->status < 400;
    }
    const lm_cp_route_t *route = NULL;
    lm_cp_match_t m = LM_CP_ROUTE_NOT_FOUND;
    for (size_t i = 0; i < sizeof tables / sizeof tables[0] && m == LM_CP_ROUTE_NOT_FOUND; i++)
        m = lm_cp_route_match(tables[i], method, url, &route, &k.params);
    bool admin;
    if (m == LM_CP_ROUTE_FOUND)
        admin = lm_cp_role_is_admin(route->role);
    else if (strlen(url) <= LM_CP_PATH_MAX && under(url, "/api/atlas/"))
        admin = true;
    else if (strlen(url) <= LM_CP_PATH_MAX && under(url, "/api/agent/"))
        admin = false;
    else {
        return cp_fail(r, 404, "RESOURCE_NOT_FOUND", "no such resource: %s",
                       strlen(url) < 200 ? url : "(too long)");
    }
    /* a path that matches no route (or not with this method) answers 404 after the
     * caller's credential was checked, as any other path of its API */
    if (m != LM_CP_ROUTE_FOUND)
        memset(&k.params, 0, sizeof k.params);
    au->admin = admin;
    au->route = m == LM_CP_ROUTE_FOUND ? route->pattern : NULL;
    lm_cp_role_t role = m == LM_CP_ROUTE_FOUND ? route->role
                        : admin                ? LM_CP_ROLE_MEMBER
                                               : LM_CP_ROLE_LINKED_AGENT;
    pthread_mutex_lock(&cp->mu);
    bool ok = authorize(&k, role);
    if (ok) {
        /* authenticated: from now on the connection may idle longer than auth_timeout */
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
                                  (unsigned)(cp->cfg->idle_timeout_ms / 1000));
        if (check_only)
            ok = true; /* the handler runs once the body has come */
        else if (m == LM_CP_ROUTE_FOUND)
            route->handler(&k);
        else if (admin)
            cp_fail(r, 404, "RESOURCE_NOT_FOUND", "no such resource (or method)");
        else
            cp_fail(r, 404, "RESOURCE_NOT_FOUND", "no such agent API resource (or method)");
    }
    pthread_mutex_unlock(&cp->mu);
    if (admin)
        snprintf(au->key, sizeof au->key, "%s", k.who.key_id);
    return ok;
}

/* ---- the daemon ---- */

/* An answer's body, once libmicrohttpd has sent it: a poll answer carries passwords. (A
 * body is JSON: no NUL inside.) */
static void wipe_free(void *data)
{
    lm_wipe(data, strlen(data));
    free(data);
}

/* Logs (the audit log for admin calls that may change state, the access log) and queues
 * r as the answer to the request. */
static enum MHD_Result answer(struct MHD_Connection *c, const char *method, const char *url,
                              resp_t *r, const audit_t *au)
{
    /* the audit log: every admin call that may change state, answered or refused; the path
     * only when it matched a route (then it holds ids, nothing else) */
    if (au->admin && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        lm_log_info(NULL, "audit: key=%s method=%s route=%s path=%s status=%u",
                    au->key[0] ? au->key : "-", method, au->route ? au->route : "-",
                    au->route ? lm_cp_route_path(url) : "-", r->status);
    if (r->status >= 500)
        lm_log_error(NULL, "%s %.200s: %u %s", method, url, r->status, lm_strbuf_str(&r->body));
    else /* the access log; paths carry ids, never secrets */
        lm_log_debug(NULL, "%s %.200s: %u", method, url, r->status);
    size_t len = r->body.len;
    char *data = lm_strbuf_steal(&r->body);
    struct MHD_Response *resp;
    if (r->asset) /* a console file compiled in */
        resp =
            MHD_create_response_from_buffer(r->asset_len, (void *)r->asset, MHD_RESPMEM_PERSISTENT);
    else if (data)
        resp = MHD_create_response_from_buffer_with_free_callback(len, data, wipe_free);
    else
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (r->asset)
        free(data);
    if (r->status != 304 && r->status != 204)
        MHD_add_response_header(resp, "Content-Type",
                                r->content_type ? r->content_type : "application/json");
    if (r->etag) { /* console files: the browser asks again each time, cheaply */
        MHD_add_response_header(resp, "ETag", r->etag);
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
    } else {
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    }
    if (r->set_cookie[0])
        MHD_add_response_header(resp, "Set-Cookie", r->set_cookie);
    /* every answer: what a browser may do with it (the console's pages run no inline
     * script, load nothing from elsewhere and may not be framed) */
    MHD_add_response_header(resp, "Content-Security-Policy", LM_CP_CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    enum MHD_Result ret = MHD_queue_response(c, r->status, resp);
    lm_wipe(r->set_cookie, sizeof r->set_cookie);
    MHD_destroy_response(resp);
    return ret;
}

/* A request arrives in calls: headers (q not made yet), body pieces, the end. The caller is
 * authenticated on the first, before any of the body is read: a refusal is answered at once
 * (libmicrohttpd then closes the connection unread; a client that sent Expect:
 * 100-continue never sends the body). The request is authorized again at the end, with
 * its handler. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    lm_cp_t *cp = cls;
    (void)version;
    req_t *q = *con_cls;
    resp_t r = {.status = 200};
    audit_t au = {0};
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q)
            return MHD_NO;
        lm_strbuf_init_secret(&q->body, (size_t)cp->cfg->max_body); /* passwords */
        *con_cls = q;
        lm_strbuf_init_secret(&r.body, 1u << 16);
        if (!dispatch(cp, c, method, url, NULL, &r, &au, true))
            return answer(c, method, url, &r, &au);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        char *end;
        if (cl && (strtoull(cl, &end, 10) > (unsigned long long)cp->cfg->max_body || *end)) {
            cp_fail(&r, 413, "PAYLOAD_TOO_LARGE", "the request body is over %lld bytes",
                    (long long)cp->cfg->max_body);
            return answer(c, method, url, &r, &au);
        }
        lm_strbuf_cleanup(&r.body);
        return MHD_YES;
    }
    if (*upload_size) {
        if (q->body.len + *upload_size > (size_t)cp->cfg->max_body)
            q->too_large = true;
        else
            lm_strbuf_append_n(&q->body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    lm_strbuf_init_secret(&r.body, 1u << 22); /* a poll answer carries passwords */
    if (q->too_large)
        cp_fail(&r, 413, "PAYLOAD_TOO_LARGE", "the request body is over %lld bytes",
                (long long)cp->cfg->max_body);
    else
        dispatch(cp, c, method, url, q, &r, &au, false);
    return answer(c, method, url, &r, &au);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    req_t *q = *con_cls;
    if (q) {
        lm_strbuf_cleanup(&q->body); /* a secret strbuf: wiped */
        free(q);
    }
    *con_cls = NULL;
}

/* The store's migration to secrets bound to their rows, with the key. */
static bool reseal(void *key, const char *ad, const char *sealed, lm_strbuf_t *out, lm_error_t *err)
{
    return lm_cp_reseal(key, ad, sealed, out, err);
}

lm_cp_t *lm_cp_start(const lm_cp_config_t *cfg, lm_error_t *err)
{
    lm_cp_t *cp = calloc(1, sizeof *cp);
    if (!cp) {
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    cp->cfg = cfg;
    snprintf(cp->public_url, sizeof cp->public_url, "%s", cfg->public_url ? cfg->public_url : "");
    pthread_mutex_init(&cp->mu, NULL);
    pthread_cond_init(&cp->changed, NULL);
    cp->sessions = calloc(1, sizeof *cp->sessions);
    if (!cp->sessions) {
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
        pthread_cond_destroy(&cp->changed);
        pthread_mutex_destroy(&cp->mu);
        free(cp);
        return NULL;
    }
    cp->sessions->idle_ms = cfg->console_idle_ms;
    cp->sessions->lifetime_ms = cfg->console_lifetime_ms;
    char host[256];
    int port = 0;
    const char *colon = strrchr(cfg->listen, ':');
    bool ok = colon && (size_t)(colon - cfg->listen) < sizeof host &&
              sscanf(colon + 1, "%d", &port) == 1 && port >= 0 && port < 65536;
    if (!ok)
        lm_error_set(err, LM_ERR_CONFIG, "listen: expected host:port, got \"%s\"", cfg->listen);
    else
        snprintf(host, sizeof host, "%.*s", (int)(colon - cfg->listen), cfg->listen);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (ok && inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        ok = lm_error_set(err, LM_ERR_CONFIG, "listen: %s is not an IPv4 address", host);
    ok = ok && lm_cp_tls_load(cfg->tls.cert_file, cfg->tls.key_file, err) &&
         lm_http_ca_pin(cfg->tls.ca_file, cp->ca_pin, err) &&
         lm_cp_load_key(cfg->secrets_key_file, cp->secrets_key, err) &&
         lm_cp_store_open(cfg->db_path, reseal, cp->secrets_key, &cp->db, err);
    if (ok) {
        cp->d = MHD_start_daemon(
            MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS |
                MHD_USE_ERROR_LOG,
            0, NULL, NULL, on_request, cp, MHD_OPTION_SOCK_ADDR, &addr,
            MHD_OPTION_HTTPS_CERT_CALLBACK, lm_cp_tls_retrieve, MHD_OPTION_HTTPS_PRIORITIES,
            LM_CP_TLS_PRIORITIES, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_per_address,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(cfg->auth_timeout_ms / 1000),
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, cp, MHD_OPTION_END);
        if (!cp->d)
            ok = lm_error_set(err, LM_ERR_NET,
                              "cannot listen on %s with TLS (address in use, or the certificate "
                              "and key do not match)",
                              cfg->listen);
    }
    if (ok) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(cp->d, MHD_DAEMON_INFO_BIND_PORT);
        cp->port = di ? di->port : port;
        return cp;
    }
    lm_cp_stop(cp);
    return NULL;
}

bool lm_cp_reload_tls(lm_cp_t *cp, const lm_cp_config_t *cfg, lm_error_t *err)
{
    char pin[65];
    if (!lm_http_ca_pin(cfg->tls.ca_file, pin, err) ||
        !lm_cp_tls_load(cfg->tls.cert_file, cfg->tls.key_file, err))
        return false;
    pthread_mutex_lock(&cp->mu);
    memcpy(cp->ca_pin, pin, sizeof pin);
    pthread_mutex_unlock(&cp->mu);
    return true;
}

void lm_cp_set_public_url(lm_cp_t *cp, const char *url)
{
    pthread_mutex_lock(&cp->mu);
    snprintf(cp->public_url, sizeof cp->public_url, "%s", url);
    pthread_mutex_unlock(&cp->mu);
}

int lm_cp_port(const lm_cp_t *cp)
{
    return cp->port;
}

void lm_cp_stop(lm_cp_t *cp)
{
    if (!cp)
        return;
    if (cp->d) {
        pthread_mutex_lock(&cp->mu);
        pthread_cond_broadcast(&cp->changed);
        pthread_mutex_unlock(&cp->mu);
        MHD_stop_daemon(cp->d);
    }
    if (cp->db)
        sqlite3_close(cp->db);
    lm_cp_tls_cleanup();
    lm_wipe(cp->secrets_key, sizeof cp->secrets_key);
    if (cp->sessions)
        lm_wipe(cp->sessions, sizeof *cp->sessions);
    free(cp->sessions);
    pthread_cond_destroy(&cp->changed);
    pthread_mutex_destroy(&cp->mu);
    free(cp);
}
