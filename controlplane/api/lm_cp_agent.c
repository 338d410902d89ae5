/* The agent API (proto/ messages over HTTPS): register, heartbeat, long-poll assignments,
 * status reports. The link-token only enrolls (register), which gives the agent a
 * credential of its own, bound to its host name; every other call carries that credential.
 * The server checks both as the route table (at the end) says; an agent whose link-token
 * was deleted is told so (401 LINK_TOKEN_REVOKED). A host name has one agent: registering
 * it again is refused unless an Organization Owner allowed a relink. Jobs, their passwords
 * and commands go only to the agent that holds them, and reports come only from it.
 * Handlers run with cp->mu held; a poll waits on cp->changed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_encode.h"
#include "lm_cp_http.h"
#include "lm_log.h"
#include "lm_proto.h"
#include "lm_states.h"

static bool proto_fail(resp_t *r, const lm_error_t *err)
{
    return cp_fail(r, 400, "INVALID_MESSAGE", "%s", err->message);
}

/* Whether a registration may take host name m->hostname of a->org, whose agent is *old
 * ("" when it has none): a new host, a host whose agent was revoked (its link-token was
 * deleted), or a relink an Organization Owner allowed (used up here). Otherwise it is a
 * takeover attempt: logged, and refused with 409 in r. */
static bool may_take_host(lm_cp_t *cp, const agent_t *a, const char *host, char *old, size_t size,
                          resp_t *r)
{
    sqlite3_stmt *st = lm_cp_store_agent_of_host(cp->db, a->org, host);
    bool live = st && sqlite3_column_int(st, 1) != 0;
    snprintf(old, size, "%s", st ? lm_cp_col(st, 0) : "");
    sqlite3_finalize(st);
    if (!old[0])
        return true;
    if (lm_cp_store_relink_take(cp->db, a->org, host, lm_time_now_ms())) {
        lm_log_info(NULL,
                    "host %s of organization %s links again from %s, as an Organization Owner "
                    "allowed: agent %s stops working",
                    host, a->org, a->ip, old);
        return true;
    }
    if (!live) {
        lm_log_info(NULL,
                    "host %s of organization %s links again from %s after its link-token "
                    "was deleted",
                    host, a->org, a->ip);
        return true;
    }
    char window[32];
    lm_time_format_duration(cp->cfg->relink_ms, window, sizeof window);
    lm_log_warn(NULL,
                "takeover attempt: a registration as host %s of organization %s from %s was "
                "refused: agent %s is linked on that host",
                host, a->org, a->ip, old);
    return cp_fail(r, 409, "AGENT_HOST_ALREADY_LINKED",
                   "host %s has a linked agent already. If this is that host (reinstalled, or "
                   "its state_dir lost), an Organization Owner allows one relink with `livemig lm "
                   "agents relink %s --orgId %s`; link again within %s of that",
                   host, host, a->org, window);
}

static bool do_register(lm_cp_t *cp, agent_t *a, const req_t *q, resp_t *r)
{
    lm_proto_register_req_t m;
    lm_error_t err;
    const char *b = lm_strbuf_str(&q->body);
    if (!lm_proto_register_req_decode(b, strlen(b), &m, &err))
        return proto_fail(r, &err);
    if (!lm_cp_valid_id(m.hostname))
        return cp_fail(r, 400, "INVALID_MESSAGE",
                       "register request: field 'hostname': use letters, digits, '_', '-', '.'");
    char old[80];
    if (!may_take_host(cp, a, m.hostname, old, sizeof old, r))
        return false;
    /* the agent's own credential: 256 random bits; only a salted hash is kept */
    lm_proto_register_resp_t resp = {.heartbeat_seconds = cp->cfg->heartbeat_ms / 1000,
                                     .poll_seconds = cp->cfg->poll_ms / 1000};
    char fresh[25], id[80], salt[33], hash[65];
    if (!lm_random_hex(fresh, 12) || !lm_random_hex(resp.agent_secret, 32) ||
        !lm_random_hex(salt, 16)) {
        lm_proto_register_resp_clear(&resp);
        return cp_fail(r, 500, "INTERNAL", "no randomness for an agent credential");
    }
    snprintf(id, sizeof id, "ag_%s", fresh);
    lm_cp_hash_secret(salt, resp.agent_secret, hash);
    lm_cp_agent_row_t row = {.id = id,
                             .org = a->org,
                             .token = a->token,
                             .hostname = m.hostname,
                             .version = m.agent_version,
                             .os = m.os,
                             .cred_salt = salt,
                             .cred_hash = hash};
    int64_t now = lm_time_now_ms();
    bool ok = old[0] ? lm_cp_store_agent_replace(cp->db, old, &row, now)
                     : lm_cp_store_agent_insert(cp->db, &row, now);
    if (!ok) {
        lm_proto_register_resp_clear(&resp);
        return cp_fail(r, 500, "INTERNAL", "cannot store the agent");
    }
    if (old[0])
        pthread_cond_broadcast(&cp->changed); /* the host's jobs go to the new agent */
    lm_log_info(NULL, "agent %s on %s (livemig %s) registered in organization %s from %s", id,
                m.hostname, m.agent_version, a->org, a->ip);
    if (resp.heartbeat_seconds < 1)
        resp.heartbeat_seconds = 1;
    if (resp.poll_seconds < 1)
        resp.poll_seconds = 1;
    snprintf(resp.agent_id, sizeof resp.agent_id, "%s", id);
    snprintf(resp.org_id, sizeof resp.org_id, "%s", a->org);
    r->status = 200;
    ok = lm_proto_register_resp_encode(&resp, &r->body, &err) ||
         cp_fail(r, 500, "INTERNAL", "%s", err.message);
    lm_proto_register_resp_clear(&resp);
    return ok;
}

/* Jobs of this host handed out more than a heartbeat ago that the agent no longer runs
 * (it restarted) go out again with the next poll, their commands too: the agent asks for
 * the credentials again instead of keeping them. running: the heartbeat's JSON list. */
static void redeliver(lm_cp_t *cp, const agent_t *a, const char *running)
{
    sqlite3_stmt *st = lm_cp_store_jobs_lost(cp->db, a->org, a->host,
                                             lm_time_now_ms() - cp->cfg->heartbeat_ms, running);
    char ids[LM_PROTO_MAX_JOBS][80];
    int n = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW && n < LM_PROTO_MAX_JOBS)
        snprintf(ids[n++], sizeof ids[0], "%s", lm_cp_col(st, 0));
    sqlite3_finalize(st);
    for (int i = 0; i < n; i++) {
        lm_cp_store_job_undeliver(cp->db, ids[i]);
        lm_log_info(NULL,
                    "job %s: agent %s on %s no longer runs it (restarted?): handing it out again",
                    ids[i], a->agent_id, a->host);
    }
    if (n)
        pthread_cond_broadcast(&cp->changed);
    /* a verification after a cutover that the agent no longer runs (its last report said
     * running; the job leaves the heartbeat only after its last report): it restarted */
    if (lm_cp_store_verifications_lost(cp->db, a->org, a->host, running,
                                       "the agent stopped before the verification finished "
                                       "(restarted?): run `livemig lm verify` to verify again",
                                       lm_time_now_ms()) > 0)
        lm_log_warn(NULL,
                    "agent %s on %s no longer runs a verification it reported running: marked "
                    "error",
                    a->agent_id, a->host);
}

/* An event of the fault history of every live migration agent_id holds (its host lost or
 * back: the control plane sees it, the agent cannot report it). */
static void host_event(lm_cp_t *cp, const char *agent_id, const char *kind, const char *msg,
                       int64_t now)
{
    sqlite3_stmt *st = lm_cp_store_agent_live_migrations(cp->db, agent_id);
    char ids[LM_PROTO_MAX_JOBS][80];
    int n = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW && n < LM_PROTO_MAX_JOBS)
        snprintf(ids[n++], sizeof ids[0], "%s", lm_cp_col(st, 0));
    sqlite3_finalize(st);
    lm_cp_event_row_t ev = {.time_ms = now, .kind = kind, .message = msg};
    for (int i = 0; i < n; i++)
        if (!lm_cp_store_job_events_add(cp->db, ids[i], agent_id, &ev, 1))
            lm_log_warn(NULL, "live migration %s: cannot record the event \"%s\"", ids[i], msg);
}

/* An agent marked lost (host_grace without a heartbeat) heartbeats again: its migrations
 * record it. */
static void host_back(lm_cp_t *cp, const agent_t *a)
{
    sqlite3_stmt *st = lm_cp_store_agent_lost_since(cp->db, a->agent_id);
    int64_t since = st ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (!since)
        return;
    int64_t now = lm_time_now_ms();
    char msg[300];
    snprintf(msg, sizeof msg,
             "migration host %s (agent %s) sends heartbeats again, %.0f s after it was found lost",
             a->host, a->agent_id, (double)(now - since) / 1000.0);
    lm_cp_store_agent_set_lost(cp->db, a->agent_id, 0);
    host_event(cp, a->agent_id, "host_back", msg, now);
    lm_log_info(NULL, "%s", msg);
}

static bool do_heartbeat(lm_cp_t *cp, agent_t *a, const req_t *q, resp_t *r)
{
    lm_proto_heartbeat_t m;
    lm_error_t err;
    const char *b = lm_strbuf_str(&q->body);
    if (!lm_proto_heartbeat_decode(b, strlen(b), &m, &err))
        return proto_fail(r, &err);
    if (strcmp(m.agent_id, a->agent_id) != 0)
        return cp_fail(r, 400, "INVALID_MESSAGE",
                       "heartbeat: field 'agentId' is not the agent of this credential");
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_array_open(w);
    for (size_t i = 0; i < m.n_running; i++)
        lm_json_w_str(w, m.running[i]);
    lm_json_w_array_close(w);
    size_t len;
    const char *running = lm_json_writer_result(w, &len, &err);
    lm_cp_store_agent_heartbeat(cp->db, a->agent_id, lm_time_now_ms(), m.uptime_seconds,
                                m.state_dir_free_bytes, running, m.agent_version);
    host_back(cp, a);
    if (running)
        redeliver(cp, a, running);
    lm_json_writer_destroy(w);
    lm_strbuf_append(&r->body, "{\"v\":1}");
    r->status = 200;
    return true;
}

/* Fills an endpoint from the clusters registry (and the job's source credentials: job_id
 * names the job whose own password sealed_pw is). A stored password that does not open
 * under its row and field fails with LM_ERR_AUTH. */
static bool fill_endpoint(lm_cp_t *cp, const char *group, const char *cluster, const char *user,
                          const char *job_id, const char *sealed_pw, lm_proto_endpoint_t *e,
                          lm_error_t *err)
{
    sqlite3_stmt *st = lm_cp_store_cluster(cp->db, group, cluster);
    if (!st)
        return lm_error_set(err, LM_ERR_NOT_FOUND, "cluster %s of project %s is gone", cluster,
                            group);
    snprintf(e->uri, sizeof e->uri, "%s", lm_cp_col(st, 0));
    e->tls = sqlite3_column_int(st, 1) != 0;
    snprintf(e->ca_file, sizeof e->ca_file, "%s", lm_cp_col(st, 2));
    const char *u = user && user[0] ? user : lm_cp_col(st, 3);
    const char *pw = sealed_pw ? sealed_pw : lm_cp_col(st, 4);
    snprintf(e->username, sizeof e->username, "%s", u);
    bool ok = true;
    if (pw[0]) {
        char ad[300];
        if (sealed_pw)
            snprintf(ad, sizeof ad, LM_CP_AD_JOB_PASSWORD, job_id);
        else
            snprintf(ad, sizeof ad, LM_CP_AD_CLUSTER_PASSWORD, group, cluster);
        lm_strbuf_t plain;
        lm_strbuf_init_secret(&plain, sizeof e->password - 1);
        ok = lm_cp_open(cp->secrets_key, ad, pw, &plain, err);
        if (ok)
            snprintf(e->password, sizeof e->password, "%s", lm_strbuf_str(&plain));
        lm_strbuf_cleanup(&plain);
    }
    sqlite3_finalize(st);
    return ok;
}

/* The job as the agent needs it: endpoints with credentials, options. */
static bool build_job(lm_cp_t *cp, sqlite3_stmt *st, lm_proto_job_t *j, lm_error_t *err)
{
    /* columns: id, kind, project_id, spec, src_password, verify_only, parent, role, shards */
    snprintf(j->job_id, sizeof j->job_id, "%s", lm_cp_col(st, 0));
    const char *parent = sqlite3_column_type(st, 6) == SQLITE_NULL ? NULL : lm_cp_col(st, 6);
    if (parent && strcmp(lm_cp_col(st, 1), "part") == 0 &&
        !cp_spread_part_job(cp, parent, lm_cp_col(st, 7),
                            sqlite3_column_type(st, 8) == SQLITE_NULL ? NULL : lm_cp_col(st, 8), j,
                            err))
        return false;
    j->kind = strcmp(lm_cp_col(st, 1), "validation") == 0 ? LM_PROTO_JOB_VALIDATION
                                                          : LM_PROTO_JOB_MIGRATION;
    const char *spec_text = lm_cp_col(st, 3);
    lm_json_val_t *spec = lm_json_parse(spec_text, strlen(spec_text), 0, 0, err);
    if (!spec)
        return false;
    lm_json_val_t *src = lm_json_get(spec, "source"), *dst = lm_json_get(spec, "destination");
    const char *s_group = lm_json_string(lm_json_get(src, "groupId"));
    const char *s_cluster = lm_json_string(lm_json_get(src, "clusterName"));
    const char *d_group = lm_json_string(lm_json_get(dst, "groupId"));
    const char *d_cluster = lm_json_string(lm_json_get(dst, "clusterName"));
    const char *user = lm_json_string(lm_json_get(src, "username"));
    const char *ca = lm_json_string(lm_json_get(src, "caCertificatePath"));
    bool ok = s_group && s_cluster && d_group && d_cluster &&
              fill_endpoint(cp, s_group, s_cluster, user, parent ? parent : j->job_id,
                            /* no password of the job's own: the registry's */
                            sqlite3_column_type(st, 4) == SQLITE_NULL ? NULL : lm_cp_col(st, 4),
                            &j->source, err) &&
              fill_endpoint(cp, d_group, d_cluster, NULL, NULL, NULL, &j->target, err);
    if (ok && ca && ca[0])
        snprintf(j->source.ca_file, sizeof j->source.ca_file, "%s", ca);
    bool ssl = false;
    lm_error_t ignored;
    if (ok && lm_json_get_bool(src, "ssl", false, &ssl, &ignored) && ssl)
        j->source.tls = true;
    lm_json_get_bool(spec, "dropDestinationData", false, &j->drop_target, &ignored);
    j->verify = true; /* migrations created before "verify" existed verify too */
    lm_json_get_bool(spec, "verify", false, &j->verify, &ignored);
    j->verify_only = j->kind == LM_PROTO_JOB_MIGRATION && sqlite3_column_int(st, 5) != 0;
    if (j->verify_only) /* never a drop, even for an agent that would not know verifyOnly */
        j->drop_target = false;
    snprintf(j->capture, sizeof j->capture, "auto");
    lm_json_free(spec);
    return ok;
}

/* A job build_job could not make (j: what it filled, wiped here) is not handed out. Its
 * error message says why (the admin API shows it), logged once. A stored password that
 * does not open (moved from another row, or another key) refuses the job until it is
 * cancelled or the key is put right; its status stays, so a wrong key fails nothing for
 * good. */
static void refuse_job(lm_cp_t *cp, const char *id, lm_proto_job_t *j, const lm_error_t *err)
{
    free(j->shards); /* a part's list (cp_spread_part_job) */
    lm_wipe(j, sizeof *j);
    char why[LM_ERROR_MSG_MAX + 64];
    snprintf(why, sizeof why, "not handed out to the agent: %s", err->message);
    if (err->code != LM_ERR_AUTH || lm_cp_store_job_refuse(cp->db, id, why, lm_time_now_ms()) != 0)
        lm_log_warn(NULL, "job %s cannot be handed out: %s", id, err->message);
}

static bool do_poll(lm_cp_t *cp, struct MHD_Connection *c, agent_t *a, resp_t *r)
{
    const char *w = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "wait");
    int64_t wait_ms = cp->cfg->poll_ms;
    if (w) {
        char *end;
        long v = strtol(w, &end, 10);
        if (*end || v < 0 || v > 120)
            return cp_fail(r, 400, "INVALID_ATTRIBUTE", "wait: seconds from 0 to 120");
        if (v * 1000 < wait_ms)
            wait_ms = v * 1000;
    }
    /* ?ack=SEQ: the agent has every command up to SEQ; until then they are sent again (a
     * poll whose agent died before reading the answer loses nothing) */
    const char *ack_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ack");
    if (ack_s) {
        char *end;
        long long ack = strtoll(ack_s, &end, 10);
        if (*end || ack < 0)
            return cp_fail(r, 400, "INVALID_ATTRIBUTE", "ack: the highest command seq received");
        if (ack > 0)
            lm_cp_store_commands_ack(cp->db, a->org, a->host, a->agent_id, (int64_t)ack,
                                     lm_time_now_ms());
    }
    int64_t until = lm_time_mono_ms() + wait_ms;
    lm_proto_assignments_t *m = calloc(1, sizeof *m);
    lm_error_t err;
    if (!m)
        return cp_fail(r, 500, "INTERNAL", "out of memory");
    bool ok = true, waiting = false;
    for (;;) {
        /* jobs for this host not handed out yet, or not acknowledged by a heartbeat, that
         * no other agent holds */
        sqlite3_stmt *st = lm_cp_store_jobs_to_deliver(cp->db, a->org, a->host, a->agent_id,
                                                       lm_time_now_ms() - 2 * cp->cfg->heartbeat_ms,
                                                       (int64_t)LM_PROTO_MAX_JOBS);
        while (ok && st && sqlite3_step(st) == SQLITE_ROW && m->n_jobs < LM_PROTO_MAX_JOBS) {
            if (build_job(cp, st, &m->jobs[m->n_jobs], &err))
                m->n_jobs++;
            else
                refuse_job(cp, lm_cp_col(st, 0), &m->jobs[m->n_jobs], &err);
        }
        sqlite3_finalize(st);
        st = lm_cp_store_commands_pending(cp->db, a->org, a->host, a->agent_id,
                                          (int64_t)LM_PROTO_MAX_COMMANDS);
        while (st && sqlite3_step(st) == SQLITE_ROW && m->n_commands < LM_PROTO_MAX_COMMANDS) {
            lm_proto_command_t *cmd = &m->commands[m->n_commands++];
            snprintf(cmd->job_id, sizeof cmd->job_id, "%s", lm_cp_col(st, 1));
            const char *k = lm_cp_col(st, 2);
            cmd->kind = strcmp(k, "cutover") == 0         ? LM_PROTO_CMD_CUTOVER
                        : strcmp(k, "cancel") == 0        ? LM_PROTO_CMD_CANCEL
                        : strcmp(k, "extend") == 0        ? LM_PROTO_CMD_EXTEND
                        : strcmp(k, "restart-shard") == 0 ? LM_PROTO_CMD_RESTART_SHARD
                        : strcmp(k, "assign-shards") == 0 ? LM_PROTO_CMD_ASSIGN_SHARDS
                                                          : LM_PROTO_CMD_EXPIRE;
            cmd->deadline_ms = sqlite3_column_int64(st, 3);
            if (cmd->kind == LM_PROTO_CMD_ASSIGN_SHARDS)
                snprintf(cmd->shards, sizeof cmd->shards, "%s", lm_cp_col(st, 4));
            else
                snprintf(cmd->shard, sizeof cmd->shard, "%s", lm_cp_col(st, 4));
            cmd->seq = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
        if (m->n_jobs || m->n_commands || lm_time_mono_ms() >= until)
            break;
        /* the link-token may have been deleted while waiting */
        if (lm_cp_store_link_token_revoked(cp->db, a->token)) {
            ok = cp_fail(r, 401, "LINK_TOKEN_REVOKED",
                         "the link-token this agent was linked with has been deleted");
            break;
        }
        if (!waiting && !(waiting = cp_poll_wait(cp, r))) {
            ok = false;
            break;
        }
        lm_time_cond_wait_ms(&cp->changed, &cp->mu, until - lm_time_mono_ms());
    }
    if (waiting)
        cp_poll_done(cp);
    for (size_t i = 0; ok && i < m->n_jobs; i++)
        lm_cp_store_job_delivered(cp->db, m->jobs[i].job_id, a->agent_id, lm_time_now_ms());
    if (ok) {
        r->status = 200;
        ok = lm_proto_assignments_encode(m, &r->body, &err) ||
             cp_fail(r, 500, "INTERNAL", "%s", err.message);
    }
    lm_proto_assignments_cleanup(m);
    free(m);
    return ok;
}

/* The check only the control plane can make for a validation: no live migration is
 * running to the same destination cluster. Added to the agent's results. */
static void target_in_use(lm_cp_t *cp, lm_proto_status_t *m)
{
    sqlite3_stmt *st = lm_cp_store_migration_into(cp->db, m->job_id);
    char busy[80] = "", cluster[200] = "";
    if (st) {
        snprintf(busy, sizeof busy, "%s", lm_cp_col(st, 0));
        snprintf(cluster, sizeof cluster, "%s", lm_cp_col(st, 1));
    }
    sqlite3_finalize(st);
    if (m->n_checks >= LM_PROTO_MAX_NAMES)
        return;
    lm_proto_check_t *more = realloc(m->checks, (m->n_checks + 1) * sizeof *more);
    if (!more)
        return;
    m->checks = more;
    lm_proto_check_t *c = &m->checks[m->n_checks++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "target-in-use");
    if (busy[0]) {
        c->result = LM_PROTO_CHECK_FAIL;
        snprintf(c->message, sizeof c->message,
                 "live migration %s is running to cluster %s: cut it over or cancel it before "
                 "migrating to that cluster again",
                 busy, cluster);
    } else {
        c->result = LM_PROTO_CHECK_PASS;
        snprintf(c->message, sizeof c->message,
                 "no live migration is running to the destination cluster");
    }
}

/* Stores the report's verification section (or, when the decoder could not read it, an
 * error saying so: the report itself is taken); logs a verification's end once. ended: the
 * job that verified has ended (clears an on-demand request). */
static bool store_verification(lm_cp_t *cp, const lm_proto_status_t *m, bool ended,
                               const char *agent_id)
{
    lm_proto_verification_t refused;
    const lm_proto_verification_t *v = &m->verification;
    if (!v->present && !m->verification_refused[0] && !(ended && m->n_errors))
        return !ended || lm_cp_store_job_set_verification(cp->db, m->job_id, NULL, true, agent_id,
                                                          lm_time_now_ms());
    if (!v->present && !m->verification_refused[0]) { /* the agent could not run it */
        memset(&refused, 0, sizeof refused);
        refused.present = true;
        snprintf(refused.state, sizeof refused.state, "error");
        lm_proto_clip_text(m->errors[0], refused.error, sizeof refused.error);
        v = &refused;
    } else if (!v->present) {
        lm_log_warn(NULL,
                    "live migration %s: the verification in agent %s's report is refused "
                    "(the rest of the report is taken): %s",
                    m->job_id, agent_id, m->verification_refused);
        memset(&refused, 0, sizeof refused);
        refused.present = true;
        snprintf(refused.state, sizeof refused.state, "error");
        snprintf(refused.error, sizeof refused.error,
                 "the agent's verification report was refused: %s", m->verification_refused);
        v = &refused;
    }
    char old[16] = "";
    sqlite3_stmt *st = lm_cp_store_job_verification(cp->db, m->job_id);
    if (st && lm_cp_col(st, 0)[0]) {
        lm_proto_verification_t prev;
        lm_error_t err;
        const char *t = lm_cp_col(st, 0);
        if (lm_proto_verification_decode(t, strlen(t), &prev, &err))
            snprintf(old, sizeof old, "%s", prev.state);
        lm_proto_verification_cleanup(&prev);
    }
    sqlite3_finalize(st);
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_proto_verification_w(w, v);
    size_t len;
    lm_error_t err;
    const char *text = lm_json_writer_result(w, &len, &err);
    bool ok = text && lm_cp_store_job_set_verification(cp->db, m->job_id, text, ended, agent_id,
                                                       lm_time_now_ms());
    lm_json_writer_destroy(w);
    if (ok && strcmp(old, v->state) != 0 && strcmp(v->state, "running") != 0) {
        if (strcmp(v->state, "passed") == 0)
            lm_log_info(NULL,
                        "live migration %s: verification passed: %lld namespaces, %lld documents",
                        m->job_id, (long long)v->namespaces_total, (long long)v->documents_checked);
        else
            lm_log_warn(NULL,
                        "live migration %s: verification %s: %lld of %lld namespaces differ%s%s%s",
                        m->job_id, strcmp(v->state, "failed") == 0 ? "FAILED" : "did not finish",
                        (long long)v->namespaces_failed, (long long)v->namespaces_total,
                        v->n_differences ? ", first " : "",
                        v->n_differences ? v->differences[0].ns : "", v->error[0] ? v->error : "");
    }
    return ok;
}

/* Keeps a sharded migration's per-shard status (one row per shard, with the host that
 * reported it); a section the decoder could not read is logged, the report is taken. The
 * report of the end carries no shards (the coordinator is gone): a COMPLETE or CANCELLED
 * migration's shards still RUNNING in their last report take its state (each shard ended
 * so, or the coordinator would not have). */
static bool store_shards(lm_cp_t *cp, const lm_proto_status_t *m, const agent_t *a,
                         lm_agent_state_t state, const char *parent)
{
    /* a part's shards are the migration's (parent): one row per shard, whichever host runs it */
    const char *job = parent ? parent : m->job_id, *part = parent ? m->job_id : NULL;
    if (!m->n_shards && (state == LM_AGENT_COMPLETE || state == LM_AGENT_CANCELLED))
        return lm_cp_store_job_shards_end(cp->db, job, part, lm_agent_state_name(state),
                                          lm_time_now_ms());
    if (m->shards_refused[0])
        lm_log_warn(NULL, "live migration %s: the shards in agent %s's report are left out: %s",
                    m->job_id, a->agent_id, m->shards_refused);
    bool ok = true;
    for (size_t i = 0; ok && i < m->n_shards; i++) {
        lm_json_writer_t *w = lm_json_writer_new(false);
        lm_proto_shard_w(w, &m->shards[i], NULL);
        size_t len;
        lm_error_t err;
        const char *text = lm_json_writer_result(w, &len, &err);
        ok = text &&
             lm_cp_store_job_shard_report(cp->db, job, m->shards[i].name, a->host, a->agent_id,
                                          part, m->shards[i].state, text, lm_time_now_ms());
        lm_json_writer_destroy(w);
    }
    return ok;
}

/* Keeps the report's events in the job's fault history (each once); a section the decoder
 * could not read is logged, the report is taken. */
static bool store_events(lm_cp_t *cp, const lm_proto_status_t *m, const char *agent_id,
                         const char *parent)
{
    if (m->events_refused[0])
        lm_log_warn(NULL, "live migration %s: the events in agent %s's report are left out: %s",
                    m->job_id, agent_id, m->events_refused);
    if (!m->n_events)
        return true;
    lm_cp_event_row_t *rows = calloc(m->n_events, sizeof *rows);
    if (!rows)
        return false;
    for (size_t i = 0; i < m->n_events; i++)
        rows[i] = (lm_cp_event_row_t){.time_ms = m->events[i].time_ms,
                                      .kind = m->events[i].kind,
                                      .message = m->events[i].message};
    bool ok = lm_cp_store_job_events_add(cp->db, parent ? parent : m->job_id, agent_id, rows,
                                         m->n_events);
    free(rows);
    return ok;
}

static bool do_status(lm_cp_t *cp, agent_t *a, const req_t *q, resp_t *r)
{
    lm_proto_status_t m;
    lm_error_t err;
    const char *b = lm_strbuf_str(&q->body);
    if (!lm_proto_status_decode(b, strlen(b), &m, &err)) {
        lm_proto_status_cleanup(&m);
        return proto_fail(r, &err);
    }
    bool ok = true;
    if (strcmp(m.agent_id, a->agent_id) != 0)
        ok = cp_fail(r, 400, "INVALID_MESSAGE",
                     "status report: field 'agentId' is not the agent of this credential");
    sqlite3_stmt *st = ok ? lm_cp_store_org_job(cp->db, m.job_id, a->org) : NULL;
    if (ok && !st)
        ok = cp_fail(r, 404, "RESOURCE_NOT_FOUND", "no job %s for host %s", m.job_id, a->host);
    /* reports only from the agent that holds the job (or, before it was handed out, the
     * agent of its host) */
    if (ok &&
        (strcmp(lm_cp_col(st, 3), a->host) != 0 || (sqlite3_column_type(st, 4) != SQLITE_NULL &&
                                                    strcmp(lm_cp_col(st, 4), a->agent_id) != 0))) {
        lm_log_warn(NULL,
                    "status report for job %s from agent %s on %s (%s) refused: another "
                    "agent holds that job",
                    m.job_id, a->agent_id, a->host, a->ip);
        ok = cp_fail(r, 403, "JOB_HELD_BY_ANOTHER_AGENT",
                     "job %s is not this agent's: reports are taken only from the agent that runs "
                     "it",
                     m.job_id);
    }
    /* a part of a migration spread over several hosts: its shards are handed to another host
     * once its host was lost; the agent, back, is told to stop it (it writes nothing more) */
    char parent[80] = "";
    bool host_validation = false; /* one host's validation under a validation of several */
    if (ok) {
        sqlite3_stmt *pt = lm_cp_store_part(cp->db, m.job_id);
        if (pt && sqlite3_column_type(pt, 2) != SQLITE_NULL) {
            lm_log_warn(NULL,
                        "status report for part %s of live migration %s from agent %s on %s "
                        "refused: its shards were handed to another host",
                        m.job_id, lm_cp_col(pt, 0), a->agent_id, a->host);
            ok = cp_fail(r, 409, "PART_REASSIGNED",
                         "part %s of live migration %s was handed to another host after this "
                         "one stopped sending heartbeats: stop it (its shards resume there from "
                         "their checkpoints)",
                         m.job_id, lm_cp_col(pt, 0));
        } else if (pt) {
            snprintf(parent, sizeof parent, "%s", lm_cp_col(pt, 0));
            host_validation = strcmp(lm_cp_col(pt, 4), "validation") == 0;
        }
        sqlite3_finalize(pt);
    }
    char old[16] = "";
    lm_cp_window_t window = {.set = false};
    if (ok) {
        snprintf(old, sizeof old, "%s", lm_cp_col(st, 0));
        window.set = sqlite3_column_type(st, 1) != SQLITE_NULL;
        window.end_ms = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    const char *spread = parent[0] && !host_validation ? parent : NULL;
    lm_agent_state_t state = LM_AGENT_RUNNING; /* the decoder admits only known states */
    lm_agent_state_parse(m.state, &state);
    /* a verification on demand of a finished migration: only its section counts */
    if (ok && m.verify_only) {
        ok = store_verification(cp, &m, state != LM_AGENT_RUNNING, a->agent_id) ||
             cp_fail(r, 500, "INTERNAL", "cannot store the verification");
        if (ok && spread)
            cp_spread_update(cp, spread);
        lm_proto_status_cleanup(&m);
        if (!ok)
            return false;
        lm_strbuf_append(&r->body, "{\"v\":1}");
        r->status = 200;
        return true;
    }
    lm_job_status_t status = lm_job_status_of_agent(state), was = LM_STATUS_NEW;
    bool was_terminal = lm_job_status_parse(old, &was) && lm_job_status_terminal(was);
    if (ok && was_terminal && status == LM_STATUS_WORKING)
        status = was;   /* a late report does not reopen a finished job */
    lm_strbuf_t stored; /* the report as stored: the agent's, plus the control plane's checks */
    lm_strbuf_init(&stored, LM_PROTO_MAX_BYTES * 2);
    if (ok && m.kind == LM_PROTO_JOB_VALIDATION && state != LM_AGENT_RUNNING)
        target_in_use(cp, &m);
    if (ok && !lm_proto_status_encode(&m, &stored, &err))
        ok = cp_fail(r, 500, "INTERNAL", "%s", err.message);
    if (ok)
        b = lm_strbuf_str(&stored);
    char error[1100] = "";
    for (size_t i = 0; i < m.n_errors && !error[0]; i++)
        snprintf(error, sizeof error, "%s", m.errors[i]);
    bool failed_check = false;
    for (size_t i = 0; i < m.n_checks; i++)
        if (m.checks[i].result == LM_PROTO_CHECK_FAIL) {
            if (!failed_check && !error[0])
                snprintf(error, sizeof error, "%s: %s", m.checks[i].name, m.checks[i].message);
            failed_check = true;
        }
    /* a validation that ran to the end with a failed check has FAILED */
    if (ok && failed_check && m.kind == LM_PROTO_JOB_VALIDATION && status == LM_STATUS_COMPLETE)
        status = LM_STATUS_FAILED;
    int64_t now = lm_time_now_ms();
    if (ok) {
        /* the cutover window opens at the first readyForCutover */
        bool open = lm_cp_window_report(&window, m.kind == LM_PROTO_JOB_MIGRATION,
                                        m.ready_for_cutover, now, cp->cfg->cutover_window_ms);
        lm_cp_job_report_t rep = {.status = lm_job_status_name(status),
                                  .phase = m.phase,
                                  .ready = m.ready_for_cutover,
                                  .has_lag = m.has_lag,
                                  .lag = m.lag_seconds,
                                  .gap = m.optime_gap_seconds,
                                  .report = b,
                                  .error = error[0] ? error : NULL,
                                  .agent_id = a->agent_id,
                                  .open_window = open,
                                  .window_end = window.end_ms};
        ok = lm_cp_store_job_report(cp->db, m.job_id, &rep, now) &&
             store_events(cp, &m, a->agent_id, spread) && store_shards(cp, &m, a, state, spread) &&
             (m.kind != LM_PROTO_JOB_MIGRATION ||
              (!m.verification.present && !m.verification_refused[0]) ||
              store_verification(cp, &m, false, NULL));
        if (ok && spread)
            cp_spread_after_report(cp, spread, &m, a);
        if (ok && host_validation)
            cp_spread_validation_update(cp, parent);
        if (!ok)
            cp_fail(r, 500, "INTERNAL", "cannot store the status report");
        else if (open && !spread)
            lm_log_info(NULL, "live migration %s is ready for cutover: the cutover window is open",
                        m.job_id);
    }
    lm_proto_status_cleanup(&m);
    lm_strbuf_cleanup(&stored);
    if (!ok)
        return false;
    lm_strbuf_append(&r->body, "{\"v\":1}");
    r->status = 200;
    return true;
}

/* ---- routes ---- */

static bool on_register(cp_call_t *k)
{
    return do_register(k->cp, &k->agent, k->q, k->r);
}

static bool on_heartbeat(cp_call_t *k)
{
    return do_heartbeat(k->cp, &k->agent, k->q, k->r);
}

static bool on_poll(cp_call_t *k)
{
    return do_poll(k->cp, k->c, &k->agent, k->r);
}

static bool on_status(cp_call_t *k)
{
    return do_status(k->cp, &k->agent, k->q, k->r);
}

/* Register takes the link-token (enrolling); every other call the agent's own credential. */
const lm_cp_route_t lm_cp_agent_routes[] = {
    {"POST", "/api/agent/v1/register", LM_CP_ROLE_ENROLL, on_register},
    {"POST", "/api/agent/v1/heartbeat", LM_CP_ROLE_LINKED_AGENT, on_heartbeat},
    {"GET", "/api/agent/v1/assignments", LM_CP_ROLE_LINKED_AGENT, on_poll},
    {"POST", "/api/agent/v1/status", LM_CP_ROLE_LINKED_AGENT, on_status},
    {NULL, NULL, LM_CP_ROLE_ENROLL, NULL},
};

/* a + b, held at the int64 limits */
static int64_t add_ms(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

bool lm_cp_window_report(lm_cp_window_t *w, bool migration, bool ready, int64_t now_ms,
                         int64_t length_ms)
{
    if (!migration || !ready || w->set)
        return false;
    w->set = true;
    w->end_ms = add_ms(now_ms, length_ms);
    return true;
}

bool lm_cp_window_extend(lm_cp_window_t *w, int64_t by_ms)
{
    if (!w->set)
        return false;
    w->end_ms = add_ms(w->end_ms, by_ms);
    return true;
}

void lm_cp_tick(lm_cp_t *cp)
{
    pthread_mutex_lock(&cp->mu);
    int64_t now = lm_time_now_ms();
    sqlite3_stmt *st = lm_cp_store_windows_closed(cp->db, now);
    char ids[64][80];
    int n = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW && n < 64)
        snprintf(ids[n++], sizeof ids[0], "%s", lm_cp_col(st, 0));
    sqlite3_finalize(st);
    for (int i = 0; i < n; i++) {
        lm_cp_store_job_set_status(cp->db, ids[i], lm_job_status_name(LM_STATUS_EXPIRED), now);
        cp_spread_command(cp, ids[i], "expire", 0);
        lm_log_warn(NULL,
                    "live migration %s: the cutover window closed before a cutover; it is "
                    "EXPIRED and its agent stops syncing",
                    ids[i]);
    }
    if (n)
        pthread_cond_broadcast(&cp->changed);
    /* agents silent for host_grace: the migrations they run record their host lost, once
     * (host_back records its return). Not in the first host_grace after this process
     * started: a control plane that was down heard no heartbeat meanwhile, which says
     * nothing of the agents. (One control plane per process: the start is a static.) */
    static int64_t started_ms;
    if (!started_ms)
        started_ms = now;
    st = now - started_ms >= cp->cfg->host_grace_ms
             ? lm_cp_store_agents_silent(cp->db, now - cp->cfg->host_grace_ms)
             : NULL;
    struct {
        char id[80], host[80];
        int64_t last;
    } lost[64];
    int k = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW && k < 64) {
        snprintf(lost[k].id, sizeof lost[k].id, "%s", lm_cp_col(st, 0));
        snprintf(lost[k].host, sizeof lost[k].host, "%s", lm_cp_col(st, 1));
        lost[k++].last = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    for (int i = 0; i < k; i++) {
        char msg[400], grace[32];
        lm_time_format_duration(cp->cfg->host_grace_ms, grace, sizeof grace);
        snprintf(msg, sizeof msg,
                 "migration host %s (agent %s) has sent no heartbeat for %.0f s (host_grace %s): "
                 "its migrations make no progress there until it is back; check the agent and "
                 "its host",
                 lost[i].host, lost[i].id, (double)(now - lost[i].last) / 1000.0, grace);
        lm_cp_store_agent_set_lost(cp->db, lost[i].id, now);
        host_event(cp, lost[i].id, "host_lost", msg, now);
        lm_log_warn(NULL, "%s", msg);
    }
    /* every lost host marked before any part moves: none goes to a host lost this tick */
    for (int i = 0; i < k; i++)
        cp_spread_host_lost(cp, lost[i].id, lost[i].host, now);
    cp_spread_tick(cp, now);
    pthread_mutex_unlock(&cp->mu);
}
