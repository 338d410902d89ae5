/* The web console: static assets compiled into the binary and the session API that turns an
 * API key into a browser session (cookie + CSRF token). The console's pages then call the
 * admin API itself with that cookie; the server (cp_auth_admin) authenticates it as the
 * session's API key with that key's role. See controlplane/README.md, "The web console". */
#include "lm_cp_console.h"

#include <stdio.h>
#include <string.h>

#include "lm_encode.h"
#include "lm_log.h"
#include "lm_time.h"

const char *lm_cp_console_content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

bool lm_cp_console_path(const char *url)
{
    return strcmp(url, "/console") == 0 || strncmp(url, "/console/", 9) == 0;
}

static const lm_cp_asset_t *find_asset(const char *name)
{
    for (const lm_cp_asset_t *a = lm_cp_console_assets; a->name; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

static void serve_asset(struct MHD_Connection *c, const char *method, const char *name, resp_t *r)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        cp_fail(r, 405, "METHOD_NOT_ALLOWED", "the console's files are read with GET");
        return;
    }
    const lm_cp_asset_t *a = find_asset(name[0] ? name : "index.html");
    if (!a) {
        cp_fail(r, 404, "RESOURCE_NOT_FOUND", "the console has no file %.100s", name);
        return;
    }
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
    r->etag = a->etag;
    r->content_type = lm_cp_console_content_type(a->name);
    if (inm && strcmp(inm, a->etag) == 0) {
        r->status = 304;
        return;
    }
    r->asset = a->data;
    r->asset_len = a->len;
    r->status = 200;
}

static void session_cookie(resp_t *r, const char *id, int64_t max_age_s)
{
    snprintf(r->set_cookie, sizeof r->set_cookie,
             "%s=%s; Path=/; Max-Age=%lld; HttpOnly; Secure; SameSite=Strict", LM_CP_SESSION_COOKIE,
             id, (long long)max_age_s);
}

/* {publicKey, orgId, roles, csrfToken, idleTimeoutSeconds} of a session. */
static void who_answer(resp_t *r, unsigned status, const lm_cp_session_t *s, int64_t idle_ms)
{
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_map_open(w);
    lm_json_w_kv_str(w, "publicKey", s->key_id);
    lm_json_w_kv_str(w, "orgId", s->org);
    lm_json_w_key(w, "roles");
    lm_json_w_array_open(w);
    lm_json_w_str(w, s->owner ? "ORG_OWNER" : "ORG_MEMBER");
    lm_json_w_array_close(w);
    lm_json_w_kv_str(w, "csrfToken", s->csrf);
    lm_json_w_key(w, "idleTimeoutSeconds");
    lm_json_w_int(w, idle_ms / 1000);
    lm_json_w_map_close(w);
    cp_answer(r, status, w);
}

/* POST /console/api/session {publicKey, privateKey}: the key checked as Basic auth checks
 * it, then a new session. JSON only: a cross-site HTML form cannot send it, so no other
 * site can sign a browser in with a key of its own. */
static void sign_in(lm_cp_t *cp, struct MHD_Connection *c, const req_t *q, resp_t *r, char key[80])
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (!ct || strncmp(ct, "application/json", 16) != 0) {
        cp_fail(r, 415, "UNSUPPORTED_MEDIA_TYPE",
                "sign in with a JSON body {publicKey, privateKey} (Content-Type: "
                "application/json)");
        return;
    }
    lm_json_val_t *v = cp_body_json(q, r);
    lm_error_t err;
    const char *pub = NULL, *priv = NULL;
    if (v && (!lm_json_get_str(v, "publicKey", true, 64, &pub, &err) ||
              !lm_json_get_str(v, "privateKey", true, 128, &priv, &err))) {
        cp_fail(r, 400, "INVALID_ATTRIBUTE", "%s: give the API key's public and private parts",
                err.message);
        v = (lm_json_free_wipe(v), NULL);
    }
    caller_t who;
    memset(&who, 0, sizeof who);
    char id[65], csrf[65];
    pthread_mutex_lock(&cp->mu);
    if (v && cp_check_key(cp, pub, priv, &who, r)) {
        int64_t now = lm_time_now_ms();
        if (!lm_cp_session_new(cp->sessions, who.key_id, who.org, who.owner, now, id, csrf)) {
            cp_fail(r, 500, "INTERNAL", "no randomness for a session");
        } else {
            lm_cp_session_t *s =
                lm_cp_session_find(cp->sessions, id, now, &(lm_cp_session_state_t){0});
            session_cookie(r, id, cp->cfg->console_lifetime_ms / 1000);
            who_answer(r, 201, s, cp->cfg->console_idle_ms);
            snprintf(key, 80, "%s", who.key_id);
            lm_log_info(NULL, "console: API key %s (%s) signed in", who.key_id,
                        who.owner ? "ORG_OWNER" : "ORG_MEMBER");
        }
        lm_wipe(id, sizeof id);
        lm_wipe(csrf, sizeof csrf);
    }
    pthread_mutex_unlock(&cp->mu);
    lm_json_free_wipe(v);
}

/* GET (who is signed in) and DELETE (sign out) of /console/api/session. */
static void session_call(lm_cp_t *cp, struct MHD_Connection *c, const char *method, resp_t *r,
                         char key[80])
{
    caller_t who;
    memset(&who, 0, sizeof who);
    const char *cookies = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Cookie");
    char id[LM_CP_SESSION_TOKEN_LEN + 2] = "";
    pthread_mutex_lock(&cp->mu);
    if (!cookies || !lm_cp_cookie_get(cookies, LM_CP_SESSION_COOKIE, id, sizeof id)) {
        cp_fail(r, 401, "NOT_AUTHENTICATED", "not signed in to the console: sign in");
    } else if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization")) {
        cp_fail(r, 400, "INVALID_REQUEST",
                "the console session is named by its cookie alone: send no Authorization header");
    } else if (cp_auth_admin(cp, c, method, &who, r)) {
        snprintf(key, 80, "%s", who.key_id);
        if (strcmp(method, "DELETE") == 0) {
            lm_cp_session_end(cp->sessions, id);
            session_cookie(r, "", 0);
            r->status = 204;
            lm_log_info(NULL, "console: API key %s signed out", who.key_id);
        } else {
            /* found again: it may have expired since cp_auth_admin looked */
            lm_cp_session_state_t st;
            lm_cp_session_t *s = lm_cp_session_find(cp->sessions, id, lm_time_now_ms(), &st);
            if (s) {
                who_answer(r, 200, s, cp->cfg->console_idle_ms);
            } else {
                cp_fail(r, 401, "SESSION_EXPIRED", "the console session has ended: sign in again");
                session_cookie(r, "", 0);
            }
        }
    } else if (r->status == 401) {
        session_cookie(r, "", 0); /* a dead session: the browser forgets its cookie */
    }
    pthread_mutex_unlock(&cp->mu);
    lm_wipe(id, sizeof id);
}

void lm_cp_console_answer(lm_cp_t *cp, struct MHD_Connection *c, const char *method,
                          const char *url, const req_t *q, resp_t *r, char key[80])
{
    key[0] = '\0';
    if (strcmp(url, "/console") == 0) {
        serve_asset(c, method, "", r);
        return;
    }
    const char *rest = url + strlen("/console/");
    if (strcmp(rest, "api/session") != 0) {
        if (strchr(rest, '/'))
            cp_fail(r, 404, "RESOURCE_NOT_FOUND", "no such console resource");
        else
            serve_asset(c, method, rest, r);
        return;
    }
    if (strcmp(method, "POST") == 0)
        sign_in(cp, c, q, r, key);
    else if (strcmp(method, "GET") == 0 || strcmp(method, "DELETE") == 0)
        session_call(cp, c, method, r, key);
    else
        cp_fail(r, 405, "METHOD_NOT_ALLOWED",
                "the console session takes POST (sign in), GET and DELETE (sign out)");
}
