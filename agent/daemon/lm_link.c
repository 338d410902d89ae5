/* lm_link: see lm_link.h. */
#include "lm_link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "lm_encode.h"
#include "lm_fs.h"
#include "lm_http.h"
#include "lm_json.h"
#include "lm_log.h"
#include "lm_proto.h"
#include "lm_redact.h"

#define IDENTITY "identity.json"

void lm_identity_clear(lm_identity_t *id)
{
    lm_wipe(id, sizeof *id);
}

static void identity_path(const char *state_dir, char *buf, size_t size)
{
    snprintf(buf, size, "%s/" IDENTITY, state_dir);
}

static bool copy_str(const lm_json_val_t *v, const char *key, char *buf, size_t size,
                     lm_error_t *err)
{
    const char *s = NULL;
    if (!lm_json_get_str(v, key, true, size - 1, &s, err))
        return false;
    snprintf(buf, size, "%s", s);
    return true;
}

bool lm_identity_load(const char *state_dir, lm_identity_t *id, lm_error_t *err)
{
    char path[1200];
    identity_path(state_dir, path, sizeof path);
    memset(id, 0, sizeof *id);
    char *text = NULL;
    if (!lm_fs_read_secret(path, &text, err))
        return false;
    lm_json_val_t *v = lm_json_parse(text, strlen(text), 65536, 8, err);
    bool ok = v && copy_str(v, "url", id->url, sizeof id->url, err) &&
              copy_str(v, "orgId", id->org_id, sizeof id->org_id, err) &&
              copy_str(v, "tokenId", id->token_id, sizeof id->token_id, err) &&
              copy_str(v, "caPin", id->ca_pin, sizeof id->ca_pin, err) &&
              copy_str(v, "agentId", id->agent_id, sizeof id->agent_id, err) &&
              copy_str(v, "hostname", id->hostname, sizeof id->hostname, err) &&
              lm_json_get_int(v, "heartbeatSeconds", true, 1, 3600, &id->heartbeat_seconds, err) &&
              lm_json_get_int(v, "pollSeconds", true, 1, 120, &id->poll_seconds, err);
    /* an older agent's identity: the link-token was its only credential */
    if (ok && !lm_json_get(v, "agentSecret"))
        ok = lm_error_set(err, LM_ERR_AUTH,
                          "this agent was linked by an older livemig-agent and has no credential "
                          "of its own (the control plane takes the link-token for linking only): "
                          "have an Organization Owner run `livemig lm agents relink %s --orgId "
                          "%s`, then link again (`livemig-agent link`, or restart the daemon with "
                          "the link-token configured)",
                          id->hostname, id->org_id);
    else if (ok)
        ok = copy_str(v, "agentSecret", id->agent_secret, sizeof id->agent_secret, err);
    if (!ok)
        lm_error_prefix(err, "%s", path);
    else
        lm_redact_register(id->agent_secret);
    lm_json_free_wipe(v); /* it holds the agent's secret */
    lm_wipe(text, strlen(text));
    free(text);
    return ok;
}

static bool identity_save(const char *state_dir, const lm_identity_t *id, lm_error_t *err)
{
    lm_json_writer_t *w = lm_json_writer_new(false); /* one line: read as a secret file */
    lm_json_w_map_open(w);
    const char *keys[] = {"url", "orgId", "tokenId", "agentSecret", "caPin", "agentId", "hostname"};
    const char *vals[] = {id->url,    id->org_id,   id->token_id, id->agent_secret,
                          id->ca_pin, id->agent_id, id->hostname};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        lm_json_w_kv_str(w, keys[i], vals[i]);
    }
    lm_json_w_key(w, "heartbeatSeconds");
    lm_json_w_int(w, id->heartbeat_seconds);
    lm_json_w_key(w, "pollSeconds");
    lm_json_w_int(w, id->poll_seconds);
    lm_json_w_map_close(w);
    size_t len;
    const char *s = lm_json_writer_result(w, &len, err);
    char path[1200];
    identity_path(state_dir, path, sizeof path);
    bool ok =
        s && lm_fs_mkdir_p(state_dir, 0700, err) && lm_fs_write_atomic(path, s, len, 0600, err);
    if (s)
        lm_wipe((char *)s, len); /* the writer's buffer holds the secret */
    lm_json_writer_destroy(w);
    return ok;
}

/* The control plane's error detail ("detail" of {error, errorCode, detail, reason}). */
static void detail_of(const lm_http_response_t *r, char *code, size_t csz, char *detail, size_t dsz)
{
    lm_error_t err;
    code[0] = detail[0] = '\0';
    lm_json_val_t *v = r->body ? lm_json_parse(r->body, r->body_len, 0, 0, &err) : NULL;
    const char *c = v ? lm_json_string(lm_json_get(v, "errorCode")) : NULL;
    const char *d = v ? lm_json_string(lm_json_get(v, "detail")) : NULL;
    snprintf(code, csz, "%s", c ? c : "");
    snprintf(detail, dsz, "%s", d ? d : "");
    lm_json_free(v);
}

/* One agent API call as "Bearer id:secret": the link-token's to register (enrolling), the
 * agent's own for everything else, to a server whose certificate chains to the pinned CA of
 * ca_file (lm_http checks it in the handshake, before the credential is written); the
 * answer's body goes to *out (caller frees). Refusals become errors that say what to do; a
 * deleted link-token is LM_ERR_REVOKED "... revoked ...". */
/* Calls that were answered only after lm_http retried them (a short outage it absorbed). */
static atomic_uint retried_calls;

unsigned lm_link_take_retried(void)
{
    return atomic_exchange(&retried_calls, 0);
}

static bool agent_call(const char *base, const char *cred_id, const char *secret, bool enrolling,
                       const char *ca_file, const char *ca_pin, const atomic_bool *cancel,
                       const char *method, const char *path, const char *body, int64_t timeout_ms,
                       char **out, lm_error_t *err)
{
    *out = NULL;
    if (!ca_file || !ca_pin || !ca_pin[0])
        return lm_error_set(err, LM_ERR_CONFIG,
                            "the control plane's CA file and its pin are needed for every call "
                            "(control_plane.ca_file): nothing was sent");
    lm_strbuf_t bearer;
    lm_strbuf_init(&bearer, 1024);
    lm_strbuf_appendf(&bearer, "Authorization: Bearer %s:%s", cred_id, secret);
    const char *headers[] = {lm_strbuf_str(&bearer), "Content-Type: application/json", NULL};
    char url[1400];
    snprintf(url, sizeof url, "%s%s", base, path);
    lm_http_opts_t ho = {.ca_file = ca_file,
                         .ca_pin = ca_pin,
                         .total_timeout_ms = timeout_ms,
                         .max_retries = 3,
                         .cancel = cancel};

    lm_http_response_t r;
    bool ok = lm_http_request(&ho, method, url, headers, body, body ? strlen(body) : 0, &r, err);
    if (ok && r.status != 200) {
        char code[64], detail[600];
        detail_of(&r, code, sizeof code, detail, sizeof detail);
        if (strcmp(code, "LINK_TOKEN_REVOKED") == 0)
            ok = lm_error_set(err, LM_ERR_REVOKED,
                              "the link-token was deleted on the control plane (revoked): ask "
                              "for a new one and link again");
        else if (strcmp(code, "NOT_AUTHENTICATED") == 0 && enrolling)
            ok = lm_error_set(err, LM_ERR_AUTH,
                              "the control plane at %s does not know this link-token: check that "
                              "it is the whole token and the newest one",
                              base);
        else if (strcmp(code, "NOT_AUTHENTICATED") == 0)
            ok = lm_error_set(err, LM_ERR_AUTH,
                              "the control plane at %s does not know this agent's credential "
                              "(another agent took this host over with a relink?): link it again",
                              base);
        else
            ok = lm_error_set_http(
                err, r.status == 403 || r.status == 401 ? LM_ERR_AUTH : LM_ERR_HTTP, (int)r.status,
                "the control plane refused %s %s (HTTP %ld %s): %s", method, path, r.status, code,
                detail[0] ? detail : "no detail");
    }
    if (ok && r.attempts > 1)
        atomic_fetch_add(&retried_calls, 1);
    *out = ok ? strdup(r.body ? r.body : "") : NULL;
    lm_http_response_cleanup(&r);
    lm_wipe(bearer.data, bearer.len);
    lm_strbuf_cleanup(&bearer);
    return ok;
}

bool lm_link(const lm_link_opts_t *o, lm_identity_t *id, lm_error_t *err)
{
    lm_proto_link_token_t t;
    char pin[65];
    memset(id, 0, sizeof *id);
    if (!lm_proto_link_token_decode(o->token, o->token_len, &t, err))
        return false;
    lm_redact_register(t.secret);
    bool ok = true;
    if (!o->ca_file)
        ok = lm_error_set(err, LM_ERR_CONFIG,
                          "the control plane's CA file is needed (--ca-file or "
                          "control_plane.ca_file): the operator of %s gives it out with the "
                          "link-token",
                          t.url);
    else if (!lm_http_ca_pin(o->ca_file, pin, err))
        ok = false;
    else if (strcmp(pin, t.ca_pin) != 0)
        ok = lm_error_set(err, LM_ERR_TLS,
                          "%s is not the CA this link-token pins (its SHA-256 is %.12s..., the "
                          "token's %.12s...): use the CA file of the control plane at %s",
                          o->ca_file, pin, t.ca_pin, t.url);
    /* linking to another organization must be asked for */
    lm_identity_t old;
    lm_error_t ignored;
    bool had = lm_identity_load(o->state_dir, &old, &ignored) || ignored.code == LM_ERR_AUTH;
    if (ok && had && old.org_id[0] && strcmp(old.org_id, t.org_id) != 0 && !o->relink)
        ok = lm_error_set(err, LM_ERR_INVALID,
                          "this agent is linked to organization %s; linking it to %s needs "
                          "--relink (it then stops taking work from %s)",
                          old.org_id, t.org_id, old.org_id);
    lm_identity_clear(&old);

    lm_proto_register_req_t rq;
    memset(&rq, 0, sizeof rq);
    struct utsname u;
    if (o->hostname)
        snprintf(rq.hostname, sizeof rq.hostname, "%s", o->hostname);
    else if (gethostname(rq.hostname, sizeof rq.hostname - 1) != 0)
        snprintf(rq.hostname, sizeof rq.hostname, "localhost");
    snprintf(rq.agent_version, sizeof rq.agent_version, "%s", LM_VERSION);
    if (uname(&u) == 0)
        snprintf(rq.os, sizeof rq.os, "%s %s %s", u.sysname, u.release, u.machine);
    lm_strbuf_t body;
    lm_strbuf_init(&body, 1u << 16);
    char *answer = NULL;
    ok = ok && lm_proto_register_req_encode(&rq, &body, err) &&
         agent_call(o->url ? o->url : t.url, t.token_id, t.secret, true, o->ca_file, t.ca_pin, NULL,
                    "POST", "/api/agent/v1/register", lm_strbuf_str(&body), 30000, &answer, err);
    lm_proto_register_resp_t rs;
    memset(&rs, 0, sizeof rs);
    if (ok && !lm_proto_register_resp_decode(answer, strlen(answer), &rs, err))
        ok = false;
    if (ok)
        lm_redact_register(rs.agent_secret);
    if (ok && strcmp(rs.org_id, t.org_id) != 0)
        ok = lm_error_set(err, LM_ERR_INVALID,
                          "the control plane registered this agent in organization %s, not the "
                          "token's %s",
                          rs.org_id, t.org_id);
    if (ok) {
        snprintf(id->url, sizeof id->url, "%s", o->url ? o->url : t.url);
        snprintf(id->org_id, sizeof id->org_id, "%s", t.org_id);
        snprintf(id->token_id, sizeof id->token_id, "%s", t.token_id);
        snprintf(id->agent_secret, sizeof id->agent_secret, "%s", rs.agent_secret);
        snprintf(id->ca_pin, sizeof id->ca_pin, "%s", t.ca_pin);
        snprintf(id->agent_id, sizeof id->agent_id, "%s", rs.agent_id);
        snprintf(id->hostname, sizeof id->hostname, "%s", rq.hostname);
        id->heartbeat_seconds = rs.heartbeat_seconds;
        id->poll_seconds = rs.poll_seconds;
        ok = identity_save(o->state_dir, id, err);
    }
    if (answer) {
        lm_wipe(answer, strlen(answer)); /* it carries the agent's secret */
        free(answer);
    }
    lm_proto_register_resp_clear(&rs);
    lm_strbuf_cleanup(&body);
    lm_proto_link_token_clear(&t);
    if (!ok)
        lm_identity_clear(id);
    return ok;
}

/* ---- the agent API once linked ---- */

bool lm_link_check_ca(const char *ca_file, const lm_identity_t *id, lm_error_t *err)
{
    char pin[65];
    if (!ca_file)
        return lm_error_set(err, LM_ERR_CONFIG,
                            "control_plane.ca_file is needed: the control plane's CA certificate "
                            "this agent was linked with (its SHA-256 is %.12s...)",
                            id->ca_pin);
    if (!lm_http_ca_pin(ca_file, pin, err)) {
        lm_error_prefix(err, "control_plane.ca_file");
        return false;
    }
    if (strcmp(pin, id->ca_pin) != 0)
        return lm_error_set(err, LM_ERR_TLS,
                            "control_plane.ca_file %s is not the CA this agent was linked with "
                            "(its SHA-256 is %.12s..., the pinned one %.12s...): the file changed "
                            "since linking; restore the control plane's CA file, or link again "
                            "with a new link-token",
                            ca_file, pin, id->ca_pin);
    return true;
}

static bool call_as(const lm_identity_t *id, const char *ca_file, const atomic_bool *cancel,
                    const char *method, const char *path, const lm_strbuf_t *body,
                    int64_t timeout_ms, char **out, lm_error_t *err)
{
    return agent_call(id->url, id->agent_id, id->agent_secret, false, ca_file, id->ca_pin, cancel,
                      method, path, body ? lm_strbuf_str(body) : NULL, timeout_ms, out, err);
}

/* POSTs an encoded message (encoded false: the encoder failed, err says why). */
static bool post(const lm_identity_t *id, const char *ca_file, const atomic_bool *cancel,
                 const char *path, bool encoded, lm_strbuf_t *body, lm_error_t *err)
{
    char *out = NULL;
    bool ok = encoded && call_as(id, ca_file, cancel, "POST", path, body, 30000, &out, err);
    free(out);
    lm_strbuf_cleanup(body);
    return ok;
}

bool lm_link_heartbeat(const lm_identity_t *id, const char *ca_file, const atomic_bool *cancel,
                       const lm_proto_heartbeat_t *hb, lm_error_t *err)
{
    lm_strbuf_t body;
    lm_strbuf_init(&body, 1u << 16);
    return post(id, ca_file, cancel, "/api/agent/v1/heartbeat",
                lm_proto_heartbeat_encode(hb, &body, err), &body, err);
}

bool lm_link_poll(const lm_identity_t *id, const char *ca_file, const atomic_bool *cancel,
                  int wait_seconds, int64_t ack, lm_proto_assignments_t *m, lm_error_t *err)
{
    char path[96], *out = NULL;
    snprintf(path, sizeof path, "/api/agent/v1/assignments?wait=%d&ack=%lld", wait_seconds,
             (long long)ack);
    bool ok = call_as(id, ca_file, cancel, "GET", path, NULL, (int64_t)(wait_seconds + 30) * 1000,
                      &out, err) &&
              lm_proto_assignments_decode(out, strlen(out), m, err);
    if (out) {
        lm_wipe(out, strlen(out)); /* it carries passwords */
        free(out);
    }
    return ok;
}

bool lm_link_report(const lm_identity_t *id, const char *ca_file, const atomic_bool *cancel,
                    const lm_proto_status_t *st, lm_error_t *err)
{
    lm_strbuf_t body;
    lm_strbuf_init(&body, 1u << 20);
    return post(id, ca_file, cancel, "/api/agent/v1/status", lm_proto_status_encode(st, &body, err),
                &body, err);
}
