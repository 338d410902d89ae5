/* lm_proto: see lm_proto.h. */
#include "lm_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_encode.h"
#include "lm_json.h"
#include "lm_states.h"

#define TOKEN_PREFIX "lmlt1."

static const char *const job_kinds[] = {"validation", "migration", NULL};
static const char *const cmd_kinds[] = {"cutover", "cancel",        "extend",        "expire",
                                        "revoked", "restart-shard", "assign-shards", NULL};
static const char *const check_results[] = {"PASS", "WARN", "FAIL", "INFO", NULL};
static const char *const captures[] = {"auto", "oplog", "changestream", NULL};
static const char *const sharded_roles[] = {"all", "lead", "follower", NULL};
static const char *const verify_states[] = {"running", "passed", "failed", "error", NULL};

const char *lm_proto_job_kind_name(lm_proto_job_kind_t k)
{
    return k <= LM_PROTO_JOB_MIGRATION ? job_kinds[k] : "?";
}

const char *lm_proto_cmd_kind_name(lm_proto_cmd_kind_t k)
{
    return k <= LM_PROTO_CMD_ASSIGN_SHARDS ? cmd_kinds[k] : "?";
}

const char *lm_proto_check_result_name(lm_proto_check_result_t r)
{
    return r <= LM_PROTO_CHECK_INFO ? check_results[r] : "?";
}

/* ---- decoding helpers ---- */

/* Parses a message and checks its version. Every tree is freed with lm_json_free_wipe:
 * messages carry passwords (assignments) and secrets (link-tokens, register answers). */
static lm_json_val_t *open_msg(const char *buf, size_t len, const char *what, lm_error_t *err)
{
    lm_json_val_t *v = lm_json_parse(buf, len, LM_PROTO_MAX_BYTES, 16, err);
    int64_t ver = 0;
    if (!v) {
        lm_error_prefix(err, "%s", what);
        return NULL;
    }
    if (lm_json_type(v) != LM_JSON_OBJECT) {
        lm_error_set(err, LM_ERR_INVALID, "%s: expected a JSON object", what);
    } else if (lm_json_get_int(v, "v", true, 1, INT32_MAX, &ver, err)) {
        if (ver <= LM_PROTO_VERSION)
            return v;
        lm_error_set(err, LM_ERR_INVALID,
                     "%s: protocol version %lld is newer than this build speaks (%d): upgrade "
                     "livemig",
                     what, (long long)ver, LM_PROTO_VERSION);
    } else {
        lm_error_prefix(err, "%s", what);
    }
    lm_json_free_wipe(v);
    return NULL;
}

/* A string member copied into buf[size] (longer is refused). Absent and not required: "". */
static bool get_text(const lm_json_val_t *obj, const char *key, bool required, char *buf,
                     size_t size, lm_error_t *err)
{
    const char *s = NULL;
    if (!lm_json_get_str(obj, key, required, size - 1, &s, err))
        return false;
    if (required && !s[0])
        return lm_error_set(err, LM_ERR_INVALID, "field '%s': must not be empty", key);
    snprintf(buf, size, "%s", s ? s : "");
    return true;
}

/* A string member that must be one of names[]; *out gets its index. */
static bool get_enum(const lm_json_val_t *obj, const char *key, bool required,
                     const char *const *names, int *out, lm_error_t *err)
{
    const char *s = NULL;
    if (!lm_json_get_str(obj, key, required, 64, &s, err))
        return false;
    if (!s)
        return true;
    for (int i = 0; names[i]; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return true;
        }
    }
    char list[256] = "";
    for (int i = 0; names[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
    return lm_error_set(err, LM_ERR_INVALID, "field '%s': expected one of %s", key, list);
}

/* Number (int or double) member. */
static bool get_number(const lm_json_val_t *obj, const char *key, bool required, double *out,
                       lm_error_t *err)
{
    return lm_json_get_double(obj, key, required, out, err);
}

/* An array of strings into an allocated [n][size] table. */
static bool get_names(const lm_json_val_t *obj, const char *key, size_t size, size_t cap,
                      char **table, size_t *n, lm_error_t *err)
{
    lm_json_val_t *arr = NULL;
    *n = 0;
    if (!lm_json_get_arr(obj, key, false, cap, &arr, err))
        return false;
    if (!arr || !lm_json_len(arr))
        return true;
    *table = calloc(lm_json_len(arr), size);
    if (!*table)
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < lm_json_len(arr); i++) {
        const char *s = lm_json_string(lm_json_at(arr, i));
        if (!s)
            return lm_error_set(err, LM_ERR_INVALID, "field '%s[%zu]': expected a string", key, i);
        if (strlen(s) >= size)
            return lm_error_set(err, LM_ERR_TOO_LARGE, "field '%s[%zu]': longer than %zu bytes",
                                key, i, size - 1);
        memcpy(*table + i * size, s, strlen(s) + 1);
        (*n)++;
    }
    return true;
}

/* An optional object member, each item of an array member. */
static bool get_items(const lm_json_val_t *obj, const char *key, size_t cap, lm_json_val_t **arr,
                      lm_error_t *err)
{
    if (!lm_json_get_arr(obj, key, false, cap, arr, err))
        return false;
    for (size_t i = 0; *arr && i < lm_json_len(*arr); i++)
        if (lm_json_type(lm_json_at(*arr, i)) != LM_JSON_OBJECT)
            return lm_error_set(err, LM_ERR_INVALID, "field '%s[%zu]': expected an object", key, i);
    return true;
}

/* Prefixes err with the item a failure was found in ("jobs[2]: field 'x': ..."). */
static bool in_item(bool ok, lm_error_t *err, const char *key, size_t i)
{
    if (!ok)
        lm_error_prefix(err, "%s[%zu]", key, i);
    return ok;
}

/* ---- encoding helpers ---- */

static lm_json_writer_t *begin(void)
{
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_map_open(w);
    lm_json_w_key(w, "v");
    lm_json_w_int(w, LM_PROTO_VERSION);
    return w;
}

static void w_str(lm_json_writer_t *w, const char *key, const char *v)
{
    lm_json_w_kv_str(w, key, v);
}

static void w_int(lm_json_writer_t *w, const char *key, int64_t v)
{
    lm_json_w_key(w, key);
    lm_json_w_int(w, v);
}

static void w_bool(lm_json_writer_t *w, const char *key, bool v)
{
    lm_json_w_key(w, key);
    lm_json_w_bool(w, v);
}

static void w_names(lm_json_writer_t *w, const char *key, const char *table, size_t size, size_t n)
{
    lm_json_w_key(w, key);
    lm_json_w_array_open(w);
    for (size_t i = 0; i < n; i++)
        lm_json_w_str(w, table + i * size);
    lm_json_w_array_close(w);
}

static bool finish(lm_json_writer_t *w, lm_strbuf_t *out, lm_error_t *err)
{
    size_t len;
    lm_json_w_map_close(w);
    const char *s = lm_json_writer_result(w, &len, err);
    bool ok = s != NULL;
    if (ok && len > LM_PROTO_MAX_BYTES)
        ok = lm_error_set(err, LM_ERR_TOO_LARGE, "message of %zu bytes: over the %u-byte cap", len,
                          LM_PROTO_MAX_BYTES);
    if (ok)
        lm_strbuf_append_n(out, s, len);
    lm_json_writer_destroy(w);
    return ok;
}

/* ---- link-token ---- */

static bool is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (; *s; s++)
        if (!strchr("0123456789abcdef", *s))
            return false;
    return true;
}

bool lm_proto_link_token_encode(const lm_proto_link_token_t *t, lm_strbuf_t *out, lm_error_t *err)
{
    lm_strbuf_t json;
    lm_strbuf_init(&json, LM_PROTO_MAX_BYTES);
    lm_json_writer_t *w = begin();
    w_str(w, "url", t->url);
    w_str(w, "orgId", t->org_id);
    w_str(w, "tokenId", t->token_id);
    w_str(w, "secret", t->secret);
    w_str(w, "caPin", t->ca_pin);
    bool ok = finish(w, &json, err);
    if (ok) {
        lm_strbuf_append(out, TOKEN_PREFIX);
        lm_base64_encode(lm_strbuf_str(&json), strlen(lm_strbuf_str(&json)), true, out);
    }
    if (json.data)
        lm_wipe(json.data, json.len);
    lm_strbuf_cleanup(&json);
    return ok;
}

bool lm_proto_link_token_decode(const char *text, size_t len, lm_proto_link_token_t *t,
                                lm_error_t *err)
{
    static const char what[] = "link-token refused"; /* not "token:": lm_redact masks after it */
    memset(t, 0, sizeof *t);
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        len--; /* a token file's trailing newline */
    size_t plen = strlen(TOKEN_PREFIX);
    if (len < plen || memcmp(text, TOKEN_PREFIX, plen) != 0)
        return lm_error_set(err, LM_ERR_INVALID,
                            "%s: not a livemig link-token (one starts with \"%s\"): copy the "
                            "whole text that `livemig lm link create` printed",
                            what, TOKEN_PREFIX);
    unsigned char raw[4096];
    size_t n;
    if (len - plen > sizeof raw * 4 / 3 ||
        !lm_base64_decode(text + plen, len - plen, true, raw, sizeof raw, &n))
        return lm_error_set(err, LM_ERR_INVALID,
                            "%s: damaged (not base64url after \"%s\"): copy it again", what,
                            TOKEN_PREFIX);
    lm_json_val_t *v = open_msg((const char *)raw, n, what, err);
    if (!v && !strstr(err->message, "upgrade livemig"))
        lm_error_set(err, LM_ERR_INVALID,
                     "%s: damaged (what it holds is not a link-token): copy the whole token "
                     "again",
                     what);
    bool ok = v && get_text(v, "url", true, t->url, sizeof t->url, err) &&
              get_text(v, "orgId", true, t->org_id, sizeof t->org_id, err) &&
              get_text(v, "tokenId", true, t->token_id, sizeof t->token_id, err) &&
              get_text(v, "secret", true, t->secret, sizeof t->secret, err) &&
              get_text(v, "caPin", true, t->ca_pin, sizeof t->ca_pin, err);
    if (ok && strncmp(t->url, "https://", 8) != 0)
        ok = lm_error_set(err, LM_ERR_INVALID, "%s: field 'url': must be an https:// URL", what);
    if (ok && !is_hex64(t->ca_pin))
        ok = lm_error_set(err, LM_ERR_INVALID,
                          "%s: field 'caPin': expected 64 lowercase hex digits (SHA-256)", what);
    if (v && !ok && strncmp(err->message, what, strlen(what)) != 0)
        lm_error_prefix(err, "%s", what);
    lm_wipe(raw, sizeof raw);
    lm_json_free_wipe(v);
    if (!ok)
        lm_proto_link_token_clear(t);
    return ok;
}

void lm_proto_link_token_clear(lm_proto_link_token_t *t)
{
    lm_wipe(t, sizeof *t);
}

/* ---- register ---- */

bool lm_proto_register_req_encode(const lm_proto_register_req_t *m, lm_strbuf_t *out,
                                  lm_error_t *err)
{
    lm_json_writer_t *w = begin();
    w_str(w, "hostname", m->hostname);
    w_str(w, "agentVersion", m->agent_version);
    w_str(w, "os", m->os);
    return finish(w, out, err);
}

bool lm_proto_register_req_decode(const char *buf, size_t len, lm_proto_register_req_t *m,
                                  lm_error_t *err)
{
    memset(m, 0, sizeof *m);
    lm_json_val_t *v = open_msg(buf, len, "register request", err);
    bool ok = v && get_text(v, "hostname", true, m->hostname, sizeof m->hostname, err) &&
              get_text(v, "agentVersion", true, m->agent_version, sizeof m->agent_version, err) &&
              get_text(v, "os", false, m->os, sizeof m->os, err);
    lm_json_free_wipe(v);
    return ok;
}

bool lm_proto_register_resp_encode(const lm_proto_register_resp_t *m, lm_strbuf_t *out,
                                   lm_error_t *err)
{
    lm_json_writer_t *w = begin();
    w_str(w, "agentId", m->agent_id);
    w_str(w, "orgId", m->org_id);
    w_int(w, "heartbeatSeconds", m->heartbeat_seconds);
    w_int(w, "pollSeconds", m->poll_seconds);
    w_str(w, "agentSecret", m->agent_secret);
    return finish(w, out, err);
}

bool lm_proto_register_resp_decode(const char *buf, size_t len, lm_proto_register_resp_t *m,
                                   lm_error_t *err)
{
    memset(m, 0, sizeof *m);
    lm_json_val_t *v = open_msg(buf, len, "register response", err);
    bool ok = v && get_text(v, "agentId", true, m->agent_id, sizeof m->agent_id, err) &&
              get_text(v, "orgId", true, m->org_id, sizeof m->org_id, err) &&
              lm_json_get_int(v, "heartbeatSeconds", true, 1, 3600, &m->heartbeat_seconds, err) &&
              lm_json_get_int(v, "pollSeconds", true, 1, 120, &m->poll_seconds, err) &&
              get_text(v, "agentSecret", true, m->agent_secret, sizeof m->agent_secret, err);
    if (!ok && strstr(err->message, "'agentSecret'"))
        lm_error_prefix(err, "the control plane gave this agent no credential of its own (it is "
                             "older than this agent: upgrade it)");
    lm_json_free_wipe(v);
    return ok;
}

void lm_proto_register_resp_clear(lm_proto_register_resp_t *m)
{
    lm_wipe(m, sizeof *m);
}

/* ---- heartbeat ---- */

bool lm_proto_heartbeat_encode(const lm_proto_heartbeat_t *m, lm_strbuf_t *out, lm_error_t *err)
{
    lm_json_writer_t *w = begin();
    w_str(w, "agentId", m->agent_id);
    w_str(w, "hostname", m->hostname);
    w_str(w, "agentVersion", m->agent_version);
    w_int(w, "uptimeSeconds", m->uptime_seconds);
    w_int(w, "stateDirFreeBytes", m->state_dir_free_bytes);
    w_names(w, "runningJobs", m->running[0], sizeof m->running[0],
            m->n_running < LM_PROTO_MAX_JOBS ? m->n_running : LM_PROTO_MAX_JOBS);
    return finish(w, out, err);
}

bool lm_proto_heartbeat_decode(const char *buf, size_t len, lm_proto_heartbeat_t *m,
                               lm_error_t *err)
{
    memset(m, 0, sizeof *m);
    lm_json_val_t *v = open_msg(buf, len, "heartbeat", err);
    char *running = NULL;
    bool ok = v && get_text(v, "agentId", true, m->agent_id, sizeof m->agent_id, err) &&
              get_text(v, "hostname", true, m->hostname, sizeof m->hostname, err) &&
              get_text(v, "agentVersion", true, m->agent_version, sizeof m->agent_version, err) &&
              lm_json_get_int(v, "uptimeSeconds", true, 0, INT64_MAX, &m->uptime_seconds, err) &&
              lm_json_get_int(v, "stateDirFreeBytes", true, 0, INT64_MAX, &m->state_dir_free_bytes,
                              err) &&
              get_names(v, "runningJobs", sizeof m->running[0], LM_PROTO_MAX_JOBS, &running,
                        &m->n_running, err);
    if (ok && m->n_running)
        memcpy(m->running, running, m->n_running * sizeof m->running[0]);
    free(running);
    lm_json_free_wipe(v);
    return ok;
}

/* ---- assignments ---- */

static void w_endpoint(lm_json_writer_t *w, const char *key, const lm_proto_endpoint_t *e)
{
    lm_json_w_key(w, key);
    lm_json_w_map_open(w);
    w_str(w, "uri", e->uri);
    if (e->ca_file[0])
        w_str(w, "caFile", e->ca_file);
    w_bool(w, "tls", e->tls);
    if (e->username[0])
        w_str(w, "username", e->username);
    if (e->password[0])
        w_str(w, "password", e->password);
    lm_json_w_map_close(w);
}

static bool get_endpoint(const lm_json_val_t *obj, const char *key, lm_proto_endpoint_t *e,
                         lm_error_t *err)
{
    lm_json_val_t *v = NULL;
    bool ok = lm_json_get_obj(obj, key, true, &v, err) && lm_json_type(v) == LM_JSON_OBJECT;
    if (!ok) {
        if (v)
            lm_error_set(err, LM_ERR_INVALID, "field '%s': expected an object", key);
        return false;
    }
    ok = get_text(v, "uri", true, e->uri, sizeof e->uri, err) &&
         get_text(v, "caFile", false, e->ca_file, sizeof e->ca_file, err) &&
         lm_json_get_bool(v, "tls", false, &e->tls, err) &&
         get_text(v, "username", false, e->username, sizeof e->username, err) &&
         get_text(v, "password", false, e->password, sizeof e->password, err);
    if (!ok)
        lm_error_prefix(err, "%s", key);
    if (ok && strncmp(e->uri, "mongodb://", 10) != 0 && strncmp(e->uri, "mongodb+srv://", 14) != 0)
        ok = lm_error_set(err, LM_ERR_INVALID, "%s: field 'uri': expected a mongodb:// URI", key);
    return ok;
}

bool lm_proto_assignments_encode(const lm_proto_assignments_t *m, lm_strbuf_t *out, lm_error_t *err)
{
    lm_json_writer_t *w = begin();
    lm_json_w_key(w, "jobs");
    lm_json_w_array_open(w);
    for (size_t i = 0; i < m->n_jobs && i < LM_PROTO_MAX_JOBS; i++) {
        const lm_proto_job_t *j = &m->jobs[i];
        lm_json_w_map_open(w);
        w_str(w, "jobId", j->job_id);
        w_str(w, "kind", lm_proto_job_kind_name(j->kind));
        w_endpoint(w, "source", &j->source);
        w_endpoint(w, "target", &j->target);
        w_bool(w, "dropTarget", j->drop_target);
        w_str(w, "capture", j->capture[0] ? j->capture : "auto");
        w_int(w, "applyWorkers", j->apply_workers);
        w_int(w, "cutoverLagSeconds", j->cutover_lag_seconds);
        w_bool(w, "verify", j->verify);
        if (j->verify_only)
            w_bool(w, "verifyOnly", true);
        w_names(w, "include", j->include ? j->include[0] : NULL, sizeof j->include[0],
                j->n_include);
        w_names(w, "exclude", j->exclude ? j->exclude[0] : NULL, sizeof j->exclude[0],
                j->n_exclude);
        if (j->migration_id[0])
            w_str(w, "migrationId", j->migration_id);
        if (j->sharded_role[0])
            w_str(w, "shardedRole", j->sharded_role);
        if (j->n_shards)
            w_names(w, "shards", j->shards[0], sizeof j->shards[0], j->n_shards);
        if (j->await_shards)
            w_bool(w, "awaitShards", true);
        if (j->lease_seconds > 0)
            w_int(w, "leaseSeconds", j->lease_seconds);
        lm_json_w_map_close(w);
    }
    lm_json_w_array_close(w);
    lm_json_w_key(w, "commands");
    lm_json_w_array_open(w);
    for (size_t i = 0; i < m->n_commands && i < LM_PROTO_MAX_COMMANDS; i++) {
        const lm_proto_command_t *c = &m->commands[i];
        lm_json_w_map_open(w);
        w_str(w, "command", lm_proto_cmd_kind_name(c->kind));
        if (c->job_id[0])
            w_str(w, "jobId", c->job_id);
        if (c->kind == LM_PROTO_CMD_EXTEND)
            w_int(w, "deadlineMs", c->deadline_ms);
        if (c->kind == LM_PROTO_CMD_RESTART_SHARD)
            w_str(w, "shard", c->shard);
        if (c->kind == LM_PROTO_CMD_ASSIGN_SHARDS)
            w_str(w, "shards", c->shards);
        if (c->seq > 0)
            w_int(w, "seq", c->seq);
        lm_json_w_map_close(w);
    }
    lm_json_w_array_close(w);
    return finish(w, out, err);
}

static bool get_job(const lm_json_val_t *v, lm_proto_job_t *j, lm_error_t *err)
{
    int kind = 0, capture = 0, role = -1;
    j->verify = true; /* a control plane older than verification after the cutover */
    if (!get_text(v, "jobId", true, j->job_id, sizeof j->job_id, err) ||
        !get_enum(v, "kind", true, job_kinds, &kind, err) ||
        !get_endpoint(v, "source", &j->source, err) ||
        !get_endpoint(v, "target", &j->target, err) ||
        !lm_json_get_bool(v, "dropTarget", false, &j->drop_target, err) ||
        !get_enum(v, "capture", false, captures, &capture, err) ||
        !lm_json_get_int(v, "applyWorkers", false, 0, 256, &j->apply_workers, err) ||
        !lm_json_get_int(v, "cutoverLagSeconds", false, 0, 86400, &j->cutover_lag_seconds, err) ||
        !lm_json_get_bool(v, "verify", false, &j->verify, err) ||
        !lm_json_get_bool(v, "verifyOnly", false, &j->verify_only, err) ||
        !get_names(v, "include", sizeof j->include[0], LM_PROTO_MAX_NAMES, (char **)&j->include,
                   &j->n_include, err) ||
        !get_names(v, "exclude", sizeof j->exclude[0], LM_PROTO_MAX_NAMES, (char **)&j->exclude,
                   &j->n_exclude, err) ||
        !get_text(v, "migrationId", false, j->migration_id, sizeof j->migration_id, err) ||
        !get_enum(v, "shardedRole", false, sharded_roles, &role, err) ||
        !get_names(v, "shards", sizeof j->shards[0], LM_PROTO_MAX_NAMES, (char **)&j->shards,
                   &j->n_shards, err) ||
        !lm_json_get_bool(v, "awaitShards", false, &j->await_shards, err) ||
        !lm_json_get_int(v, "leaseSeconds", false, 0, 86400, &j->lease_seconds, err))
        return false;
    if (role >= 0)
        snprintf(j->sharded_role, sizeof j->sharded_role, "%s", sharded_roles[role]);
    j->kind = (lm_proto_job_kind_t)kind;
    snprintf(j->capture, sizeof j->capture, "%s", captures[capture]);
    return true;
}

bool lm_proto_assignments_decode(const char *buf, size_t len, lm_proto_assignments_t *m,
                                 lm_error_t *err)
{
    memset(m, 0, sizeof *m);
    lm_json_val_t *v = open_msg(buf, len, "assignments", err), *jobs = NULL, *cmds = NULL;
    bool ok = v && get_items(v, "jobs", LM_PROTO_MAX_JOBS, &jobs, err) &&
              get_items(v, "commands", LM_PROTO_MAX_COMMANDS, &cmds, err);
    for (size_t i = 0; ok && jobs && i < lm_json_len(jobs); i++) {
        ok = in_item(get_job(lm_json_at(jobs, i), &m->jobs[i], err), err, "jobs", i);
        m->n_jobs = i + 1; /* so that cleanup frees what this one allocated */
    }
    for (size_t i = 0; ok && cmds && i < lm_json_len(cmds); i++) {
        lm_json_val_t *c = lm_json_at(cmds, i);
        lm_proto_command_t *cmd = &m->commands[i];
        int kind = 0;
        ok = get_enum(c, "command", true, cmd_kinds, &kind, err);
        cmd->kind = (lm_proto_cmd_kind_t)kind;
        ok = ok && get_text(c, "jobId", kind != LM_PROTO_CMD_REVOKED, cmd->job_id,
                            sizeof cmd->job_id, err);
        ok = ok && lm_json_get_int(c, "deadlineMs", kind == LM_PROTO_CMD_EXTEND, 0, INT64_MAX,
                                   &cmd->deadline_ms, err);
        ok = ok && lm_json_get_int(c, "seq", false, 0, INT64_MAX, &cmd->seq, err);
        ok = ok && get_text(c, "shard", kind == LM_PROTO_CMD_RESTART_SHARD, cmd->shard,
                            sizeof cmd->shard, err);
        ok = ok && get_text(c, "shards", kind == LM_PROTO_CMD_ASSIGN_SHARDS, cmd->shards,
                            sizeof cmd->shards, err);
        ok = in_item(ok, err, "commands", i);
        m->n_commands = i + 1;
    }
    if (!ok && v)
        lm_error_prefix(err, "assignments");
    lm_json_free_wipe(v);
    return ok;
}

void lm_proto_assignments_cleanup(lm_proto_assignments_t *m)
{
    for (size_t i = 0; i < m->n_jobs && i < LM_PROTO_MAX_JOBS; i++) {
        free(m->jobs[i].include);
        free(m->jobs[i].exclude);
        free(m->jobs[i].shards);
    }
    lm_wipe(m, sizeof *m);
}

/* ---- status report ---- */

static bool get_verification(const lm_json_val_t *v, lm_proto_verification_t *out, lm_error_t *err);

static void w_opt_double(lm_json_writer_t *w, const char *key, bool has, double v)
{
    lm_json_w_key(w, key);
    if (has)
        lm_json_w_double(w, v);
    else
        lm_json_w_null(w);
}

void lm_proto_shard_w(lm_json_writer_t *w, const lm_proto_shard_t *s, const char *host)
{
    lm_json_w_map_open(w);
    w_str(w, "name", s->name);
    if (host)
        w_str(w, "migrationHost", host);
    w_str(w, "targetShard", s->target_shard);
    w_str(w, "state", s->state);
    w_str(w, "phase", s->phase);
    w_int(w, "documentsCopied", s->docs_copied);
    w_int(w, "bytesCopied", s->bytes_copied);
    w_opt_double(w, "percentage", s->has_percentage, s->percentage);
    w_opt_double(w, "remainingSeconds", s->has_remaining, s->remaining_seconds);
    w_opt_double(w, "lagTimeSeconds", s->has_lag, s->lag_seconds);
    w_bool(w, "readyForCutover", s->ready_for_cutover);
    lm_json_w_kv_str(w, "lastError", s->last_error[0] ? s->last_error : NULL);
    if (s->has_size)
        w_int(w, "sizeBytes", s->size_bytes);
    lm_json_w_map_close(w);
}

bool lm_proto_status_encode(const lm_proto_status_t *m, lm_strbuf_t *out, lm_error_t *err)
{
    lm_json_writer_t *w = begin();
    w_str(w, "agentId", m->agent_id);
    w_str(w, "jobId", m->job_id);
    w_str(w, "kind", lm_proto_job_kind_name(m->kind));
    if (m->verify_only)
        w_bool(w, "verifyOnly", true);
    w_str(w, "phase", m->phase);
    w_str(w, "state", m->state);
    lm_json_w_key(w, "progress");
    lm_json_w_map_open(w);
    w_int(w, "docsCopied", m->docs_copied);
    w_int(w, "docsTotal", m->docs_total);
    w_int(w, "bytesCopied", m->bytes_copied);
    w_int(w, "bytesTotal", m->bytes_total);
    lm_json_w_map_close(w);
    lm_json_w_key(w, "lagTimeSeconds");
    if (m->has_lag)
        lm_json_w_double(w, m->lag_seconds);
    else
        lm_json_w_null(w);
    if (m->has_lag) {
        lm_json_w_key(w, "estimatedCutoverSeconds");
        lm_json_w_double(w, m->estimated_cutover_seconds);
    }
    w_bool(w, "readyForCutover", m->ready_for_cutover);
    lm_json_w_key(w, "optimeGapSeconds");
    lm_json_w_double(w, m->optime_gap_seconds);
    lm_json_w_key(w, "collections");
    lm_json_w_array_open(w);
    for (size_t i = 0; i < m->n_collections; i++) {
        lm_json_w_map_open(w);
        w_str(w, "ns", m->collections[i].ns);
        w_int(w, "docsCopied", m->collections[i].docs_copied);
        w_int(w, "docsTotal", m->collections[i].docs_total);
        w_bool(w, "done", m->collections[i].done);
        lm_json_w_map_close(w);
    }
    lm_json_w_array_close(w);
    lm_json_w_key(w, "checks");
    lm_json_w_array_open(w);
    for (size_t i = 0; i < m->n_checks; i++) {
        lm_json_w_map_open(w);
        w_str(w, "name", m->checks[i].name);
        w_str(w, "result", lm_proto_check_result_name(m->checks[i].result));
        w_str(w, "message", m->checks[i].message);
        lm_json_w_map_close(w);
    }
    lm_json_w_array_close(w);
    w_names(w, "errors", m->errors ? m->errors[0] : NULL, sizeof m->errors[0], m->n_errors);
    if (m->verification.present) {
        lm_json_w_key(w, "verification");
        lm_proto_verification_w(w, &m->verification);
    }
    if (m->n_events) {
        size_t from = m->n_events > LM_PROTO_MAX_EVENTS ? m->n_events - LM_PROTO_MAX_EVENTS : 0;
        lm_json_w_key(w, "events");
        lm_json_w_array_open(w);
        for (size_t i = from; i < m->n_events; i++) {
            lm_json_w_map_open(w);
            w_int(w, "timeMs", m->events[i].time_ms);
            w_str(w, "kind", m->events[i].kind);
            w_str(w, "message", m->events[i].message);
            lm_json_w_map_close(w);
        }
        lm_json_w_array_close(w);
    }
    if (m->n_shards) {
        lm_json_w_key(w, "shards");
        lm_json_w_array_open(w);
        for (size_t i = 0; i < m->n_shards && i < LM_PROTO_MAX_SHARDS; i++)
            lm_proto_shard_w(w, &m->shards[i], NULL);
        lm_json_w_array_close(w);
    }
    return finish(w, out, err);
}

/* The events section: the last LM_PROTO_MAX_EVENTS, strings clipped; an item that is not
 * {timeMs >= 0, kind (non-empty string), message (string)} refuses the section. */
static bool get_events(const lm_json_val_t *arr, lm_proto_status_t *m, lm_error_t *err)
{
    if (lm_json_type(arr) != LM_JSON_ARRAY)
        return lm_error_set(err, LM_ERR_INVALID, "expected an array");
    size_t n = lm_json_len(arr), from = 0;
    if (n > LM_PROTO_MAX_EVENTS) {
        from = n - LM_PROTO_MAX_EVENTS;
        m->events_clipped = true;
    }
    m->events = n > from ? calloc(n - from, sizeof *m->events) : NULL;
    if (n > from && !m->events)
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    for (size_t i = from; i < n; i++) {
        lm_json_val_t *e = lm_json_at(arr, i);
        lm_proto_event_t *p = &m->events[i - from];
        if (lm_json_type(e) != LM_JSON_OBJECT)
            return lm_error_set(err, LM_ERR_INVALID, "item %zu: expected an object", i);
        const char *kind = lm_json_string(lm_json_get(e, "kind"));
        const char *msg = lm_json_string(lm_json_get(e, "message"));
        if (!lm_json_get_int(e, "timeMs", true, 0, INT64_MAX, &p->time_ms, err))
            return in_item(false, err, "events", i);
        if (!kind || !kind[0])
            return lm_error_set(err, LM_ERR_INVALID, "events[%zu]: field 'kind': expected a name",
                                i);
        if (!msg)
            return lm_error_set(err, LM_ERR_INVALID,
                                "events[%zu]: field 'message': expected a string", i);
        m->events_clipped |= lm_proto_clip_text(kind, p->kind, sizeof p->kind);
        m->events_clipped |= lm_proto_clip_text(msg, p->message, sizeof p->message);
        m->n_events = i - from + 1;
    }
    return true;
}

/* A number member that may be null or absent (*has false then); negative refused. */
static bool get_opt_number(const lm_json_val_t *obj, const char *key, bool *has, double *out,
                           lm_error_t *err)
{
    lm_json_val_t *n = lm_json_get(obj, key);
    *has = false;
    if (!n || lm_json_type(n) == LM_JSON_NULL)
        return true;
    if (!get_number(obj, key, true, out, err))
        return false;
    if (*out < 0)
        return lm_error_set(err, LM_ERR_INVALID, "field '%s': must not be negative", key);
    *has = true;
    return true;
}

/* A non-negative integer member that may be null or absent (*has false). */
static bool get_opt_int(const lm_json_val_t *obj, const char *key, bool *has, int64_t *out,
                        lm_error_t *err)
{
    lm_json_val_t *n = lm_json_get(obj, key);
    *has = false;
    if (!n || lm_json_type(n) == LM_JSON_NULL)
        return true;
    if (!lm_json_get_int(obj, key, true, 0, INT64_MAX, out, err))
        return false;
    *has = true;
    return true;
}

/* A string member that may be null or absent (""), clipped to buf[size]. */
static bool get_opt_clipped(const lm_json_val_t *obj, const char *key, char *buf, size_t size,
                            bool *clipped, lm_error_t *err)
{
    lm_json_val_t *s = lm_json_get(obj, key);
    buf[0] = '\0';
    if (!s || lm_json_type(s) == LM_JSON_NULL)
        return true;
    if (!lm_json_string(s))
        return lm_error_set(err, LM_ERR_INVALID, "field '%s': expected a string or null", key);
    *clipped |= lm_proto_clip_text(lm_json_string(s), buf, size);
    return true;
}

/* The shards section: the first LM_PROTO_MAX_SHARDS, strings clipped; an item that is not
 * an object with a name, or with a member of the wrong type, refuses the section (m->shards
 * is left empty). */
static bool get_shards(const lm_json_val_t *arr, lm_proto_status_t *m, lm_error_t *err)
{
    free(m->shards);
    m->shards = NULL;
    m->n_shards = 0;
    m->shards_clipped = false;
    if (lm_json_type(arr) != LM_JSON_ARRAY)
        return lm_error_set(err, LM_ERR_INVALID, "expected an array");
    size_t n = lm_json_len(arr);
    if (n > LM_PROTO_MAX_SHARDS) {
        n = LM_PROTO_MAX_SHARDS;
        m->shards_clipped = true;
    }
    lm_proto_shard_t *out = n ? calloc(n, sizeof *out) : NULL;
    if (n && !out)
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    bool clipped = false;
    for (size_t i = 0; i < n; i++) {
        lm_json_val_t *e = lm_json_at(arr, i);
        lm_proto_shard_t *p = &out[i];
        const char *name = lm_json_string(lm_json_get(e, "name"));
        bool ok = lm_json_type(e) == LM_JSON_OBJECT;
        if (!ok) {
            lm_error_set(err, LM_ERR_INVALID, "item %zu: expected an object", i);
        } else if (!name || !name[0] || strlen(name) > LM_PROTO_ID_LEN) {
            ok = lm_error_set(err, LM_ERR_INVALID,
                              "shards[%zu]: field 'name': expected a shard name of 1-%d bytes", i,
                              LM_PROTO_ID_LEN);
        } else {
            snprintf(p->name, sizeof p->name, "%s", name);
            ok = get_opt_clipped(e, "targetShard", p->target_shard, sizeof p->target_shard,
                                 &clipped, err) &&
                 get_opt_clipped(e, "state", p->state, sizeof p->state, &clipped, err) &&
                 get_opt_clipped(e, "phase", p->phase, sizeof p->phase, &clipped, err) &&
                 lm_json_get_int(e, "documentsCopied", false, 0, INT64_MAX, &p->docs_copied, err) &&
                 lm_json_get_int(e, "bytesCopied", false, 0, INT64_MAX, &p->bytes_copied, err) &&
                 get_opt_number(e, "percentage", &p->has_percentage, &p->percentage, err) &&
                 get_opt_number(e, "remainingSeconds", &p->has_remaining, &p->remaining_seconds,
                                err) &&
                 get_opt_number(e, "lagTimeSeconds", &p->has_lag, &p->lag_seconds, err) &&
                 lm_json_get_bool(e, "readyForCutover", false, &p->ready_for_cutover, err) &&
                 get_opt_clipped(e, "lastError", p->last_error, sizeof p->last_error, &clipped,
                                 err) &&
                 get_opt_int(e, "sizeBytes", &p->has_size, &p->size_bytes, err);
            if (ok && p->has_percentage && p->percentage > 100)
                p->percentage = 100;
            if (!ok)
                lm_error_prefix(err, "shards[%zu] (%s)", i, p->name);
        }
        if (!ok) {
            free(out);
            m->shards_clipped = false;
            return false;
        }
    }
    m->shards = out;
    m->n_shards = n;
    m->shards_clipped |= clipped;
    return true;
}

bool lm_proto_status_decode(const char *buf, size_t len, lm_proto_status_t *m, lm_error_t *err)
{
    memset(m, 0, sizeof *m);
    lm_json_val_t *v = open_msg(buf, len, "status report", err), *prog = NULL, *colls = NULL,
                  *checks = NULL, *lag;
    int kind = 0, state = 0;
    bool ok = v && get_text(v, "agentId", true, m->agent_id, sizeof m->agent_id, err) &&
              get_text(v, "jobId", true, m->job_id, sizeof m->job_id, err) &&
              get_enum(v, "kind", true, job_kinds, &kind, err) &&
              lm_json_get_bool(v, "verifyOnly", false, &m->verify_only, err) &&
              get_text(v, "phase", true, m->phase, sizeof m->phase, err) &&
              get_enum(v, "state", true, lm_agent_state_names, &state, err) &&
              lm_json_get_obj(v, "progress", false, &prog, err) &&
              lm_json_get_bool(v, "readyForCutover", false, &m->ready_for_cutover, err) &&
              get_number(v, "optimeGapSeconds", false, &m->optime_gap_seconds, err) &&
              get_items(v, "collections", LM_PROTO_MAX_NAMES, &colls, err) &&
              get_items(v, "checks", LM_PROTO_MAX_NAMES, &checks, err) &&
              get_names(v, "errors", sizeof m->errors[0], LM_PROTO_MAX_NAMES, (char **)&m->errors,
                        &m->n_errors, err);
    m->kind = (lm_proto_job_kind_t)kind;
    if (ok)
        snprintf(m->state, sizeof m->state, "%s", lm_agent_state_name((lm_agent_state_t)state));
    if (ok && prog) {
        ok = lm_json_type(prog) == LM_JSON_OBJECT &&
             lm_json_get_int(prog, "docsCopied", false, 0, INT64_MAX, &m->docs_copied, err) &&
             lm_json_get_int(prog, "docsTotal", false, 0, INT64_MAX, &m->docs_total, err) &&
             lm_json_get_int(prog, "bytesCopied", false, 0, INT64_MAX, &m->bytes_copied, err) &&
             lm_json_get_int(prog, "bytesTotal", false, 0, INT64_MAX, &m->bytes_total, err);
        if (!ok)
            lm_error_prefix(err, "progress");
    }
    if (ok && (lag = lm_json_get(v, "lagTimeSeconds")) && lm_json_type(lag) != LM_JSON_NULL) {
        ok = get_number(v, "lagTimeSeconds", true, &m->lag_seconds, err);
        m->has_lag = ok;
        if (ok && m->lag_seconds < 0)
            ok = lm_error_set(err, LM_ERR_INVALID, "field 'lagTimeSeconds': must not be negative");
    }
    if (ok && (lag = lm_json_get(v, "estimatedCutoverSeconds")) &&
        lm_json_type(lag) != LM_JSON_NULL) {
        ok = get_number(v, "estimatedCutoverSeconds", true, &m->estimated_cutover_seconds, err);
        if (ok && m->estimated_cutover_seconds < 0)
            ok = lm_error_set(err, LM_ERR_INVALID,
                              "field 'estimatedCutoverSeconds': must not be negative");
    }
    if (ok && colls && lm_json_len(colls)) {
        m->collections = calloc(lm_json_len(colls), sizeof *m->collections);
        ok = m->collections || lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
        for (size_t i = 0; ok && i < lm_json_len(colls); i++) {
            lm_json_val_t *c = lm_json_at(colls, i);
            lm_proto_coll_progress_t *p = &m->collections[i];
            ok = in_item(
                get_text(c, "ns", true, p->ns, sizeof p->ns, err) &&
                    lm_json_get_int(c, "docsCopied", false, 0, INT64_MAX, &p->docs_copied, err) &&
                    lm_json_get_int(c, "docsTotal", false, 0, INT64_MAX, &p->docs_total, err) &&
                    lm_json_get_bool(c, "done", false, &p->done, err),
                err, "collections", i);
            m->n_collections = i + 1;
        }
    }
    if (ok && checks && lm_json_len(checks)) {
        m->checks = calloc(lm_json_len(checks), sizeof *m->checks);
        ok = m->checks || lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
        for (size_t i = 0; ok && i < lm_json_len(checks); i++) {
            lm_json_val_t *c = lm_json_at(checks, i);
            lm_proto_check_t *k = &m->checks[i];
            int r = 0;
            ok = in_item(get_text(c, "name", true, k->name, sizeof k->name, err) &&
                             get_enum(c, "result", true, check_results, &r, err) &&
                             get_text(c, "message", false, k->message, sizeof k->message, err),
                         err, "checks", i);
            k->result = (lm_proto_check_result_t)r;
            m->n_checks = i + 1;
        }
    }
    /* a verification section that cannot be read costs the section, not the report */
    lm_json_val_t *ver = ok ? lm_json_get(v, "verification") : NULL;
    if (ver && lm_json_type(ver) != LM_JSON_NULL) {
        lm_error_t verr;
        if (!get_verification(ver, &m->verification, &verr)) {
            lm_proto_verification_cleanup(&m->verification);
            snprintf(m->verification_refused, sizeof m->verification_refused,
                     "field 'verification': %s", verr.message);
        }
    }
    /* an events section that cannot be read costs the section, not the report */
    lm_json_val_t *evs = ok ? lm_json_get(v, "events") : NULL;
    if (evs && lm_json_type(evs) != LM_JSON_NULL) {
        lm_error_t eerr;
        if (!get_events(evs, m, &eerr)) {
            free(m->events);
            m->events = NULL;
            m->n_events = 0;
            m->events_clipped = false;
            snprintf(m->events_refused, sizeof m->events_refused, "field 'events': %s",
                     eerr.message);
        }
    }
    /* a shards section that cannot be read costs the section, not the report */
    lm_json_val_t *shs = ok ? lm_json_get(v, "shards") : NULL;
    if (shs && lm_json_type(shs) != LM_JSON_NULL) {
        lm_error_t serr;
        if (!get_shards(shs, m, &serr))
            snprintf(m->shards_refused, sizeof m->shards_refused, "field 'shards': %s",
                     serr.message);
    }
    if (!ok && v)
        lm_error_prefix(err, "status report");
    lm_json_free_wipe(v);
    return ok;
}

bool lm_proto_shards_decode(const char *buf, size_t len, lm_proto_status_t *m, lm_error_t *err)
{
    lm_json_val_t *v = lm_json_parse(buf, len, LM_PROTO_MAX_BYTES, 16, err);
    bool ok = v != NULL;
    if (ok && lm_json_type(v) != LM_JSON_OBJECT)
        ok = lm_error_set(err, LM_ERR_INVALID, "expected a JSON object");
    lm_json_val_t *shs = ok ? lm_json_get(v, "shards") : NULL;
    if (ok && shs && lm_json_type(shs) != LM_JSON_NULL && !get_shards(shs, m, err)) {
        lm_error_prefix(err, "field 'shards'");
        ok = false;
    }
    lm_json_free(v);
    return ok;
}

void lm_proto_status_cleanup(lm_proto_status_t *m)
{
    free(m->shards);
    free(m->events);
    free(m->collections);
    free(m->checks);
    free(m->errors);
    lm_proto_verification_cleanup(&m->verification);
    memset(m, 0, sizeof *m);
}

/* ---- the verification section ---- */

bool lm_proto_clip_text(const char *s, char *buf, size_t size)
{
    size_t n = strlen(s);
    bool cut = n >= size;
    if (cut) {
        n = size - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    return cut;
}

/* An array of strings into table[cap][size]: items past cap and bytes past size are cut
 * (*clipped set); an item that is not a string is refused. */
static bool get_clipped_names(const lm_json_val_t *obj, const char *key, char *table, size_t size,
                              size_t cap, size_t *n, bool *clipped, lm_error_t *err)
{
    lm_json_val_t *arr = lm_json_get(obj, key);
    *n = 0;
    if (!arr || lm_json_type(arr) == LM_JSON_NULL)
        return true;
    if (lm_json_type(arr) != LM_JSON_ARRAY)
        return lm_error_set(err, LM_ERR_INVALID, "field '%s': expected an array of strings", key);
    for (size_t i = 0; i < lm_json_len(arr); i++) {
        const char *s = lm_json_string(lm_json_at(arr, i));
        if (!s)
            return lm_error_set(err, LM_ERR_INVALID, "field '%s[%zu]': expected a string", key, i);
        if (i >= cap) {
            *clipped = true;
            continue;
        }
        *clipped |= lm_proto_clip_text(s, table + i * size, size);
        (*n)++;
    }
    return true;
}

static bool get_verification(const lm_json_val_t *v, lm_proto_verification_t *out, lm_error_t *err)
{
    int state = 0;
    memset(out, 0, sizeof *out);
    if (lm_json_type(v) != LM_JSON_OBJECT)
        return lm_error_set(err, LM_ERR_INVALID, "expected an object");
    if (!get_enum(v, "state", true, verify_states, &state, err) ||
        !lm_json_get_int(v, "namespacesTotal", false, 0, INT64_MAX, &out->namespaces_total, err) ||
        !lm_json_get_int(v, "namespacesChecked", false, 0, INT64_MAX, &out->namespaces_checked,
                         err) ||
        !lm_json_get_int(v, "namespacesFailed", false, 0, INT64_MAX, &out->namespaces_failed,
                         err) ||
        !lm_json_get_int(v, "documentsChecked", false, 0, INT64_MAX, &out->documents_checked,
                         err) ||
        !lm_json_get_bool(v, "clipped", false, &out->clipped, err))
        return false;
    lm_json_val_t *e = lm_json_get(v, "error");
    if (e && lm_json_type(e) != LM_JSON_NULL) {
        if (!lm_json_string(e))
            return lm_error_set(err, LM_ERR_INVALID, "field 'error': expected a string or null");
        out->clipped |= lm_proto_clip_text(lm_json_string(e), out->error, sizeof out->error);
    }
    lm_json_val_t *diffs = lm_json_get(v, "differences");
    if (diffs && lm_json_type(diffs) != LM_JSON_NULL) {
        if (lm_json_type(diffs) != LM_JSON_ARRAY)
            return lm_error_set(err, LM_ERR_INVALID, "field 'differences': expected an array");
        size_t n = lm_json_len(diffs);
        if (n > LM_PROTO_VERIFY_MAX_NS) {
            n = LM_PROTO_VERIFY_MAX_NS;
            out->clipped = true;
        }
        out->differences = n ? calloc(n, sizeof *out->differences) : NULL;
        if (n && !out->differences)
            return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
        for (size_t i = 0; i < n; i++) {
            lm_json_val_t *d = lm_json_at(diffs, i);
            lm_proto_verify_ns_t *p = &out->differences[i];
            const char *ns = lm_json_string(lm_json_get(d, "ns"));
            if (lm_json_type(d) != LM_JSON_OBJECT)
                return lm_error_set(err, LM_ERR_INVALID,
                                    "field 'differences[%zu]': expected an "
                                    "object",
                                    i);
            if (!ns || !ns[0])
                return lm_error_set(err, LM_ERR_INVALID,
                                    "differences[%zu]: field 'ns': expected a namespace", i);
            out->clipped |= lm_proto_clip_text(ns, p->ns, sizeof p->ns);
            if (!get_clipped_names(d, "reasons", p->reasons[0], sizeof p->reasons[0],
                                   LM_PROTO_VERIFY_MAX_REASONS, &p->n_reasons, &out->clipped,
                                   err) ||
                !get_clipped_names(d, "ids", p->ids[0], sizeof p->ids[0], LM_PROTO_VERIFY_MAX_IDS,
                                   &p->n_ids, &out->clipped, err))
                return in_item(false, err, "differences", i);
            out->n_differences = i + 1;
        }
    }
    snprintf(out->state, sizeof out->state, "%s", verify_states[state]);
    out->present = true;
    return true;
}

bool lm_proto_verification_decode(const char *buf, size_t len, lm_proto_verification_t *v,
                                  lm_error_t *err)
{
    memset(v, 0, sizeof *v);
    lm_json_val_t *j = lm_json_parse(buf, len, LM_PROTO_MAX_BYTES, 16, err);
    bool ok = j && get_verification(j, v, err);
    if (!ok)
        lm_proto_verification_cleanup(v);
    lm_json_free(j);
    return ok;
}

void lm_proto_verification_w(lm_json_writer_t *w, const lm_proto_verification_t *v)
{
    lm_json_w_map_open(w);
    w_str(w, "state", v->state[0] ? v->state : "running");
    w_int(w, "namespacesTotal", v->namespaces_total);
    w_int(w, "namespacesChecked", v->namespaces_checked);
    w_int(w, "namespacesFailed", v->namespaces_failed);
    w_int(w, "documentsChecked", v->documents_checked);
    lm_json_w_kv_str(w, "error", v->error[0] ? v->error : NULL);
    lm_json_w_key(w, "differences");
    lm_json_w_array_open(w);
    for (size_t i = 0; i < v->n_differences && i < LM_PROTO_VERIFY_MAX_NS; i++) {
        const lm_proto_verify_ns_t *p = &v->differences[i];
        lm_json_w_map_open(w);
        w_str(w, "ns", p->ns);
        w_names(w, "reasons", p->reasons[0], sizeof p->reasons[0],
                p->n_reasons < LM_PROTO_VERIFY_MAX_REASONS ? p->n_reasons
                                                           : LM_PROTO_VERIFY_MAX_REASONS);
        w_names(w, "ids", p->ids[0], sizeof p->ids[0],
                p->n_ids < LM_PROTO_VERIFY_MAX_IDS ? p->n_ids : LM_PROTO_VERIFY_MAX_IDS);
        lm_json_w_map_close(w);
    }
    lm_json_w_array_close(w);
    if (v->clipped)
        w_bool(w, "clipped", true);
    lm_json_w_map_close(w);
}

void lm_proto_verification_cleanup(lm_proto_verification_t *v)
{
    free(v->differences);
    memset(v, 0, sizeof *v);
}

/* ---- values the agent uses as names on its file system ---- */

bool lm_proto_job_id_valid(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++) {
        char c = id[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok || n >= LM_PROTO_ID_LEN)
            return false;
    }
    return n > 0;
}

bool lm_proto_ca_name_valid(const char *path)
{
    const char *p = path[0] == '/' ? path + 1 : path;
    if (!*p)
        return false;
    for (const char *c = path; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return false;
    while (*p) {
        size_t len = strcspn(p, "/");
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += len;
        if (*p == '/')
            p++;
        if (!*p && p[-1] == '/')
            return false; /* a trailing slash: a directory */
    }
    return true;
}
