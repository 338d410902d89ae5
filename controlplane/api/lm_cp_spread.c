/* A live migration spread over several migration hosts (issue 16; docs/agent-daemon.md "One
 * migration over several migration hosts").
 *
 * The migration's row (kind 'migration', host '') is what the API shows; it is never handed
 * to an agent. Each host that runs shards has a part (a job of kind 'part' under it) that
 * is handed out, acknowledged, redelivered and commanded exactly as a one-host migration
 * is. Every part carries the migration's id as its engines' job id, so a shard's checkpoint
 * (`<migration id>.<shard>`, on its target shard) is the same whichever host runs it.
 *
 * - Start: one part, the lead, on the first listed host, waiting for its shards. Its agent
 *   stops the balancers and reports every source shard with its size (state ASSIGNING).
 * - Spread: from those sizes lm_cp_assign_shards gives each shard a host (largest first to
 *   the least loaded, at most maxShardsPerHost each; the lead gets the first); the other
 *   hosts get follower parts with their shards, the lead an assign-shards command.
 * - The migration's row follows its parts: readyForCutover when every part is ready, the
 *   worst lag and gap, the least advanced phase, COMPLETE when every part is.
 * - Cutover: the followers first; the lead (which starts the balancers again at its end)
 *   once they are COMPLETE. Cancel, extend and expire reach every part at once.
 * - A host lost (no heartbeat for host_grace): its parts are released (their agent, if it
 *   comes back, is told 409 PART_REASSIGNED and stops) and their shards handed to the live
 *   listed hosts by the same rule, resuming from their checkpoints; a lost lead's duty goes
 *   with them. Parts carry a lease (host_grace / 2) so an agent cut off from the control
 *   plane stops its engines before its shards can move.
 *
 * Everything here runs with cp->mu held (handlers and the tick). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_cp_assign.h"
#include "lm_cp_http.h"
#include "lm_encode.h"
#include "lm_log.h"
#include "lm_states.h"

#define MAX_HOSTS 16

typedef struct {
    char names[MAX_HOSTS][80];
    size_t n;
    int max_per_host;
} hosts_t;

/* The listed hosts and the per-host maximum of a migration's spec. */
static bool spec_hosts(const char *spec, hosts_t *h)
{
    lm_error_t err;
    memset(h, 0, sizeof *h);
    lm_json_val_t *v = lm_json_parse(spec, strlen(spec), 0, 0, &err);
    lm_json_val_t *list = v ? lm_json_get(v, "migrationHosts") : NULL;
    for (size_t i = 0; list && i < lm_json_len(list) && h->n < MAX_HOSTS; i++) {
        const char *s = lm_json_string(lm_json_at(list, i));
        if (s)
            snprintf(h->names[h->n++], sizeof h->names[0], "%s", s);
    }
    int64_t max = 0;
    if (v && lm_json_get_int(v, "maxShardsPerHost", false, 0, 1000, &max, &err))
        h->max_per_host = (int)max;
    lm_json_free(v);
    return h->n > 0;
}

static int host_index(const hosts_t *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->names[i], name) == 0)
            return (int)i;
    return -1;
}

/* A host with a linked agent that heartbeats (within host_grace) and is not marked lost. */
static bool host_alive(lm_cp_t *cp, const char *org, const char *host)
{
    sqlite3_stmt *st =
        lm_cp_store_host_alive(cp->db, org, host, lm_time_now_ms() - cp->cfg->host_grace_ms);
    bool alive = st != NULL;
    sqlite3_finalize(st);
    return alive;
}

/* One transaction around a spread or a hand-on: all of its parts and rows, or none. */
static void begin(lm_cp_t *cp)
{
    lm_cp_exec(cp->db, "BEGIN IMMEDIATE", "");
}

static bool end(lm_cp_t *cp, bool ok)
{
    return lm_cp_exec(cp->db, ok ? "COMMIT" : "ROLLBACK", "") && ok;
}

static void new_part_id(char out[25])
{
    if (!lm_random_hex(out, 12))
        snprintf(out, 25, "%024llx", (unsigned long long)lm_time_now_ms());
}

/* One event in the migration's history, logged too. */
static void spread_event(lm_cp_t *cp, const char *parent, const char *kind, const char *msg,
                         int64_t now)
{
    lm_cp_event_row_t ev = {.time_ms = now, .kind = kind, .message = msg};
    if (!lm_cp_store_job_events_add(cp->db, parent, "controlplane", &ev, 1))
        lm_log_warn(NULL, "live migration %s: cannot record the event \"%s\"", parent, msg);
    lm_log_info(NULL, "live migration %s: %s", parent, msg);
}

bool cp_spread_start(lm_cp_t *cp, const char *id, const char *host, lm_error_t *err)
{
    char part[25];
    new_part_id(part);
    lm_cp_part_row_t row = {.id = part, .parent = id, .host = host, .role = "lead"};
    if (!lm_cp_store_part_insert(cp->db, &row, lm_time_now_ms()))
        return lm_error_set(err, LM_ERR_IO, "cannot store the lead part of live migration %s", id);
    lm_log_info(NULL,
                "live migration %s: lead part %s on host %s (the shards are spread once it "
                "has read them)",
                id, part, host);
    return true;
}

bool cp_spread_part_job(lm_cp_t *cp, const char *parent, const char *role, const char *shards,
                        lm_proto_job_t *j, lm_error_t *err)
{
    snprintf(j->migration_id, sizeof j->migration_id, "%s", parent);
    snprintf(j->sharded_role, sizeof j->sharded_role, "%s",
             strcmp(role, "lead") == 0 ? "lead" : "follower");
    j->lease_seconds = cp->cfg->host_grace_ms / 2000;
    if (j->lease_seconds < 1)
        j->lease_seconds = 1;
    if (!shards) { /* a lead waiting for its assignment */
        j->await_shards = true;
        return true;
    }
    lm_json_val_t *v = lm_json_parse(shards, strlen(shards), 0, 0, err);
    size_t n = v ? lm_json_len(v) : 0;
    j->shards = n ? calloc(n, sizeof *j->shards) : NULL;
    for (size_t i = 0; j->shards && i < n; i++) {
        const char *s = lm_json_string(lm_json_at(v, i));
        if (s)
            snprintf(j->shards[j->n_shards++], sizeof j->shards[0], "%s", s);
    }
    lm_json_free(v);
    if (!j->n_shards) {
        free(j->shards);
        j->shards = NULL;
        return lm_error_set(err, LM_ERR_INTERNAL, "part of live migration %s has no shards",
                            parent);
    }
    return true;
}

/* ---- the spread ---- */

/* The JSON array of names. */
static void names_json(const char *const *names, size_t n, char *out, size_t size)
{
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_array_open(w);
    for (size_t i = 0; i < n; i++)
        lm_json_w_str(w, names[i]);
    lm_json_w_array_close(w);
    size_t len;
    lm_error_t err;
    const char *t = lm_json_writer_result(w, &len, &err);
    snprintf(out, size, "%s", t ? t : "[]");
    lm_json_writer_destroy(w);
}

/* Hands the shards of slots whose host changed (from[i] != slots[i].host) to their new
 * hosts: a new part per host (role follower, or lead for the one that takes a lead's
 * duty), or, for the waiting lead itself (lead_part on lead_host), an assign-shards
 * command. Appends "host: a, b; " to what. */
static bool hand_out(lm_cp_t *cp, const char *parent, const hosts_t *h, lm_cp_shard_slot_t *slots,
                     const int *from, size_t n, int lead_to, const char *lead_part,
                     const char *lead_host, bool cutover_asked, char *what, size_t whatsz,
                     int64_t now)
{
    bool ok = true;
    for (size_t host = 0; ok && host < h->n; host++) {
        const char *names[LM_PROTO_MAX_SHARDS];
        size_t k = 0;
        char list[LM_PROTO_TEXT_LEN] = "";
        size_t used = 0;
        for (size_t i = 0; i < n && k < LM_PROTO_MAX_SHARDS; i++)
            if (slots[i].host == (int)host && from[i] != slots[i].host) {
                names[k++] = slots[i].name;
                used += (size_t)snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                                         k > 1 ? "," : "", slots[i].name);
            }
        if (!k)
            continue;
        char part[25], json[LM_PROTO_TEXT_LEN * 4];
        names_json(names, k, json, sizeof json);
        if (used >= sizeof list || strlen(json) + 1 >= sizeof json) {
            lm_log_error(NULL,
                         "live migration %s: the shard list for host %s is longer than %zu "
                         "bytes: not handed out",
                         parent, h->names[host], sizeof list - 1);
            return false;
        }
        if (lead_part && strcmp(h->names[host], lead_host) == 0) {
            /* the waiting lead: told by a command; handed out again, it gets the list */
            snprintf(part, sizeof part, "%s", lead_part);
            ok = lm_cp_store_part_set_shards(cp->db, part, json, now) &&
                 lm_cp_store_command_insert_arg(cp->db, part, "assign-shards", list, now);
        } else {
            new_part_id(part);
            bool lead = (int)host == lead_to;
            lm_cp_part_row_t row = {.id = part,
                                    .parent = parent,
                                    .host = h->names[host],
                                    .role = lead ? "lead" : "follower",
                                    .shards = json};
            ok = lm_cp_store_part_insert(cp->db, &row, now);
            if (ok && cutover_asked && !lead) /* a cutover under way: a follower goes at once */
                ok = lm_cp_store_command_insert(cp->db, part, "cutover", 0, now);
        }
        for (size_t i = 0; ok && i < n; i++)
            if (slots[i].host == (int)host && from[i] != slots[i].host)
                ok = lm_cp_store_job_shard_assign(cp->db, parent, slots[i].name, h->names[host],
                                                  part, now);
        snprintf(what + strlen(what), whatsz - strlen(what), "%s%s: %s (part %s)",
                 what[0] ? "; " : "", h->names[host], list, part);
    }
    return ok;
}

/* The waiting lead reported the source's shards (state ASSIGNING, with their sizes): they
 * are spread over the listed hosts. */
static void spread_first(lm_cp_t *cp, const char *parent, const lm_proto_status_t *m,
                         const agent_t *a, const char *spec)
{
    lm_cp_shard_slot_t slots[LM_PROTO_MAX_SHARDS];
    int from[LM_PROTO_MAX_SHARDS];
    size_t n = 0;
    for (size_t i = 0; i < m->n_shards && n < LM_PROTO_MAX_SHARDS; i++) {
        if (strcmp(m->shards[i].state, "ASSIGNING") != 0)
            return; /* not the lead's list of every shard */
        slots[n] =
            (lm_cp_shard_slot_t){.name = m->shards[i].name,
                                 .bytes = m->shards[i].has_size ? m->shards[i].size_bytes : 0,
                                 .host = -1};
        from[n++] = -1;
    }
    if (!n)
        return;
    hosts_t h;
    if (!spec_hosts(spec, &h))
        return;
    int64_t now = lm_time_now_ms();
    if (m->shards_clipped) { /* a shard left out would be migrated by no host */
        char msg[300];
        snprintf(msg, sizeof msg,
                 "the source has more than %d shards, or names longer than %d bytes: the "
                 "control plane cannot spread them (run the migration with one host)",
                 LM_PROTO_MAX_SHARDS, LM_PROTO_ID_LEN);
        lm_cp_store_job_refuse(cp->db, parent, msg, now);
        lm_cp_store_job_set_status(cp->db, parent, lm_job_status_name(LM_STATUS_FAILED), now);
        cp_spread_command(cp, parent, "cancel", 0);
        spread_event(cp, parent, "spread_failed", msg, now);
        return;
    }
    /* the lead first: ties go to the first listed host, so it gets the largest shard */
    int lead = host_index(&h, a->host);
    if (lead > 0) {
        char first[sizeof h.names[0]];
        memcpy(first, h.names[0], sizeof first);
        memcpy(h.names[0], h.names[lead], sizeof first);
        memcpy(h.names[lead], first, sizeof first);
    }
    bool alive[MAX_HOSTS];
    for (size_t i = 0; i < h.n; i++)
        alive[i] = strcmp(h.names[i], a->host) == 0 || host_alive(cp, a->org, h.names[i]);
    lm_error_t err;
    char what[2048] = "";
    if (lm_cp_assign_shards(slots, n, alive, h.n, h.max_per_host, &err) < 0) {
        char msg[LM_ERROR_MSG_MAX + 100];
        snprintf(msg, sizeof msg, "the shards cannot be spread over the migration hosts: %s",
                 err.message);
        lm_cp_store_job_refuse(cp->db, parent, msg, now);
        lm_cp_store_job_set_status(cp->db, parent, lm_job_status_name(LM_STATUS_FAILED), now);
        cp_spread_command(cp, parent, "cancel", 0);
        spread_event(cp, parent, "spread_failed", msg, now);
        return;
    }
    begin(cp);
    if (!end(cp, hand_out(cp, parent, &h, slots, from, n, -1, m->job_id, a->host, false, what,
                          sizeof what, now) &&
                     lm_cp_store_spread_assigned(cp->db, parent, now))) {
        lm_log_error(NULL, "live migration %s: cannot store the spread of its shards", parent);
        return;
    }
    char msg[2200];
    snprintf(msg, sizeof msg, "%zu shards spread over the migration hosts, largest first: %s", n,
             what);
    spread_event(cp, parent, "shards_assigned", msg, now);
    pthread_cond_broadcast(&cp->changed);
}

void cp_spread_after_report(lm_cp_t *cp, const char *parent, const lm_proto_status_t *m,
                            const agent_t *a)
{
    sqlite3_stmt *st = lm_cp_store_spread(cp->db, parent);
    if (!st)
        return;
    bool assigned = sqlite3_column_int64(st, 1) != 0;
    lm_job_status_t s = LM_STATUS_NEW;
    bool ended = lm_job_status_parse(lm_cp_col(st, 0), &s) && lm_job_status_terminal(s);
    char *spec = strdup(lm_cp_col(st, 2));
    sqlite3_finalize(st);
    lm_phase_t phase = LM_PHASE_NEW;
    lm_phase_parse(m->phase, &phase);
    if (!assigned && !ended && spec && m->n_shards) {
        spread_first(cp, parent, m, a, spec);
    } else if (!assigned && !ended && !m->n_shards && phase >= LM_PHASE_COPYING) {
        /* the lead copies without shards: the source is a replica set, which it runs alone */
        lm_cp_store_spread_assigned(cp->db, parent, lm_time_now_ms());
        spread_event(cp, parent, "shards_assigned",
                     "the source is not a sharded cluster: the lead's host runs the whole "
                     "migration (the other listed hosts are not used)",
                     lm_time_now_ms());
    }
    free(spec);
    cp_spread_update(cp, parent);
}

/* ---- the migration's row from its parts ---- */

/* The parts' verifications as one section: failed or error wins, running until each part
 * has one; counts summed, the first differences kept. */
static void merge_verification(lm_cp_t *cp, const char *parent, sqlite3_stmt *parts)
{
    lm_proto_verification_t all;
    memset(&all, 0, sizeof all);
    size_t n = 0, have = 0;
    int rank = -1; /* passed 0, running 1, failed 2, error 3 */
    static const char *const names[] = {"passed", "running", "failed", "error"};
    while (sqlite3_step(parts) == SQLITE_ROW) {
        n++;
        const char *text = lm_cp_col(parts, 12);
        lm_proto_verification_t v;
        lm_error_t err;
        memset(&v, 0, sizeof v);
        if (!text[0] || !lm_proto_verification_decode(text, strlen(text), &v, &err)) {
            lm_proto_verification_cleanup(&v);
            continue;
        }
        have++;
        for (int k = 0; k < 4; k++)
            if (strcmp(v.state, names[k]) == 0 && k > rank)
                rank = k;
        all.namespaces_total += v.namespaces_total;
        all.namespaces_checked += v.namespaces_checked;
        all.namespaces_failed += v.namespaces_failed;
        all.documents_checked += v.documents_checked;
        if (!all.error[0] && v.error[0])
            snprintf(all.error, sizeof all.error, "%s", v.error);
        if (v.n_differences && !all.n_differences) {
            all.differences = v.differences;
            all.n_differences = v.n_differences;
            v.differences = NULL;
            v.n_differences = 0;
        }
        all.clipped = all.clipped || v.clipped;
        lm_proto_verification_cleanup(&v);
    }
    if (!have) {
        lm_proto_verification_cleanup(&all);
        return;
    }
    if (have < n && rank < 1)
        rank = 1; /* a part has not verified yet */
    all.present = true;
    snprintf(all.state, sizeof all.state, "%s", names[rank < 0 ? 1 : rank]);
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_proto_verification_w(w, &all);
    size_t len;
    lm_error_t err;
    const char *text = lm_json_writer_result(w, &len, &err);
    if (text)
        lm_cp_store_job_set_verification(cp->db, parent, text, rank != 1, NULL, lm_time_now_ms());
    lm_json_writer_destroy(w);
    lm_proto_verification_cleanup(&all);
}

void cp_spread_update(lm_cp_t *cp, const char *parent)
{
    sqlite3_stmt *st = lm_cp_store_spread(cp->db, parent);
    if (!st)
        return;
    lm_job_status_t was = LM_STATUS_NEW;
    lm_job_status_parse(lm_cp_col(st, 0), &was);
    bool assigned = sqlite3_column_int64(st, 1) != 0;
    int64_t window_end = sqlite3_column_int64(st, 4);
    sqlite3_finalize(st);
    sqlite3_stmt *parts = lm_cp_store_parts(cp->db, parent);
    size_t n = 0, reported = 0, complete = 0;
    bool ready = assigned, failed = false, has_lag = true, has_est = false;
    double lag = 0, gap = 0, est = 0;
    lm_phase_t phase = LM_PHASE_COMPLETE;
    char error[1200] = "";
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_map_open(w);
    lm_json_w_key(w, "parts");
    lm_json_w_array_open(w);
    while (parts && sqlite3_step(parts) == SQLITE_ROW) {
        /* LM_CP_PART_COLUMNS: id, host, role, shards, status, ready, lag, gap, phase, error,
         * est, holder, verification, reported */
        n++;
        lm_job_status_t s = LM_STATUS_NEW;
        lm_job_status_parse(lm_cp_col(parts, 4), &s);
        bool gone = sqlite3_column_int(parts, 14) != 0; /* its agent is lost: it waits */
        reported += sqlite3_column_int(parts, 13) != 0;
        complete += s == LM_STATUS_COMPLETE;
        failed = failed || s == LM_STATUS_FAILED;
        ready = ready && !gone && (sqlite3_column_int(parts, 5) != 0 || s == LM_STATUS_COMPLETE);
        if (gone)
            has_lag = false;
        else if (sqlite3_column_type(parts, 6) == SQLITE_NULL)
            has_lag = has_lag && s == LM_STATUS_COMPLETE;
        else if (sqlite3_column_double(parts, 6) > lag)
            lag = sqlite3_column_double(parts, 6);
        if (sqlite3_column_double(parts, 7) > gap)
            gap = sqlite3_column_double(parts, 7);
        if (sqlite3_column_type(parts, 10) != SQLITE_NULL) {
            has_est = true;
            if (sqlite3_column_double(parts, 10) > est)
                est = sqlite3_column_double(parts, 10);
        }
        lm_phase_t p = LM_PHASE_NEW;
        lm_phase_parse(lm_cp_col(parts, 8), &p);
        if (p < phase)
            phase = p;
        if (!error[0] && lm_cp_col(parts, 9)[0])
            snprintf(error, sizeof error, "host %s: %s", lm_cp_col(parts, 1), lm_cp_col(parts, 9));
        lm_json_w_map_open(w);
        lm_json_w_kv_str(w, "partId", lm_cp_col(parts, 0));
        lm_json_w_kv_str(w, "migrationHost", lm_cp_col(parts, 1));
        lm_json_w_kv_str(w, "role", lm_cp_col(parts, 2));
        lm_json_w_kv_str(w, "status", lm_cp_col(parts, 4));
        lm_json_w_kv_str(w, "phase", lm_cp_col(parts, 8)[0] ? lm_cp_col(parts, 8) : "NEW");
        lm_json_w_map_close(w);
    }
    lm_json_w_array_close(w);
    lm_json_w_key(w, "estimatedCutoverSeconds");
    if (has_est)
        lm_json_w_double(w, est);
    else
        lm_json_w_null(w);
    lm_json_w_map_close(w);
    if (parts)
        sqlite3_reset(parts);
    lm_job_status_t status = was;
    if (!lm_job_status_terminal(was))
        status = failed               ? LM_STATUS_FAILED
                 : n && complete == n ? LM_STATUS_COMPLETE
                 : reported           ? LM_STATUS_WORKING
                                      : LM_STATUS_NEW;
    ready = ready && n > 0 && !lm_job_status_terminal(status);
    if (!n || !reported)
        phase = LM_PHASE_NEW;
    int64_t now = lm_time_now_ms();
    lm_cp_window_t win = {.set = window_end >= 0, .end_ms = window_end};
    bool open = lm_cp_window_report(&win, true, ready, now, cp->cfg->cutover_window_ms);
    size_t len;
    lm_error_t err;
    const char *report = lm_json_writer_result(w, &len, &err);
    lm_cp_job_report_t rep = {.status = lm_job_status_name(status),
                              .phase = lm_phase_name(phase),
                              .ready = ready,
                              .has_lag = has_lag && n > 0 && reported == n,
                              .lag = lag,
                              .gap = gap,
                              .report = report,
                              .error = error[0] ? error : NULL,
                              .agent_id = NULL,
                              .open_window = open,
                              .window_end = win.end_ms};
    if (!lm_cp_store_job_report(cp->db, parent, &rep, now))
        lm_log_warn(NULL, "live migration %s: cannot store its status from its parts", parent);
    else if (open)
        lm_log_info(NULL,
                    "live migration %s is ready for cutover on every host: the cutover window "
                    "is open",
                    parent);
    if (status != was && status == LM_STATUS_FAILED) { /* the other parts stop too */
        lm_log_warn(NULL, "live migration %s: FAILED (%s): its other parts are cancelled", parent,
                    error[0] ? error : "a part failed");
        cp_spread_command(cp, parent, "cancel", 0);
    } else if (status != was && lm_job_status_terminal(status)) {
        lm_log_info(NULL, "live migration %s: %s (every part on every host)", parent,
                    lm_job_status_name(status));
    }
    if (parts)
        merge_verification(cp, parent, parts);
    sqlite3_finalize(parts);
    lm_json_writer_destroy(w);
}

/* ---- commands ---- */

bool cp_spread_command(lm_cp_t *cp, const char *id, const char *kind, int64_t deadline)
{
    int64_t now = lm_time_now_ms();
    if (!lm_cp_store_command_insert(cp->db, id, kind, deadline, now))
        return false;
    sqlite3_stmt *st = lm_cp_store_spread(cp->db, id);
    bool spread = st != NULL;
    sqlite3_finalize(st);
    if (!spread)
        return true;
    /* a cutover goes to the followers now and to the lead once they are COMPLETE (the lead
     * starts the balancers again at its end: a chunk moved while a follower still streamed
     * would be lost for the target) */
    bool cutover = strcmp(kind, "cutover") == 0;
    bool ok =
        lm_cp_store_parts_command(cp->db, id, kind, deadline, cutover ? "follower" : NULL, now);
    if (cutover)
        cp_spread_tick(cp, now);
    return ok;
}

static void hand_on(lm_cp_t *cp, const char *part, const char *parent, const char *host,
                    const char *role, bool quiet, int64_t now);

void cp_spread_tick(lm_cp_t *cp, int64_t now)
{
    sqlite3_stmt *st = lm_cp_store_lead_cutovers_due(cp->db);
    char ids[16][2][80];
    int n = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW && n < 16) {
        snprintf(ids[n][0], sizeof ids[n][0], "%s", lm_cp_col(st, 0));
        snprintf(ids[n][1], sizeof ids[n][1], "%s", lm_cp_col(st, 1));
        n++;
    }
    sqlite3_finalize(st);
    for (int i = 0; i < n; i++) {
        if (!lm_cp_store_command_insert(cp->db, ids[i][1], "cutover", 0, now))
            continue;
        spread_event(cp, ids[i][0], "lead_cutover",
                     "every follower part is COMPLETE: the lead part cuts over last (it starts "
                     "the balancers again at its end)",
                     now);
    }
    if (n)
        pthread_cond_broadcast(&cp->changed);
    /* parts no agent took up within host_grace whose host is gone (never polled since it
     * was given them): handed on as a lost host's are, once another host can take them */
    st = lm_cp_store_parts_unheld(cp->db, now - cp->cfg->host_grace_ms);
    struct {
        char id[80], parent[80], host[80], role[16];
    } idle[16];
    int k = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW && k < 16) {
        snprintf(idle[k].id, sizeof idle[k].id, "%s", lm_cp_col(st, 0));
        snprintf(idle[k].parent, sizeof idle[k].parent, "%s", lm_cp_col(st, 1));
        snprintf(idle[k].host, sizeof idle[k].host, "%s", lm_cp_col(st, 2));
        snprintf(idle[k].role, sizeof idle[k].role, "%s", lm_cp_col(st, 3));
        k++;
    }
    sqlite3_finalize(st);
    for (int i = 0; i < k; i++) {
        sqlite3_stmt *sp = lm_cp_store_spread(cp->db, idle[i].parent);
        char org[80];
        snprintf(org, sizeof org, "%s", sp ? lm_cp_col(sp, 3) : "");
        sqlite3_finalize(sp);
        if (!org[0] || host_alive(cp, org, idle[i].host))
            continue;
        hand_on(cp, idle[i].id, idle[i].parent, idle[i].host, idle[i].role, true, now);
        cp_spread_update(cp, idle[i].parent);
    }
}

/* ---- a host lost ---- */

/* Part (role, on lost host `host`) of parent: its shards handed to the live listed hosts
 * (quiet: when none is alive, nothing is recorded; it is tried again later). */
static void hand_on(lm_cp_t *cp, const char *part, const char *parent, const char *host,
                    const char *role, bool quiet, int64_t now)
{
    sqlite3_stmt *st = lm_cp_store_spread(cp->db, parent);
    if (!st)
        return;
    char *spec = strdup(lm_cp_col(st, 2)), org[80];
    snprintf(org, sizeof org, "%s", lm_cp_col(st, 3));
    bool assigned = sqlite3_column_int64(st, 1) != 0;
    sqlite3_finalize(st);
    hosts_t h;
    bool have = spec && spec_hosts(spec, &h);
    free(spec);
    if (!have)
        return;
    bool alive[MAX_HOSTS], any = false;
    for (size_t i = 0; i < h.n; i++) {
        alive[i] = strcmp(h.names[i], host) != 0 && host_alive(cp, org, h.names[i]);
        any = any || alive[i];
    }
    char msg[2400];
    if (!any && quiet)
        return;
    if (!any) {
        snprintf(msg, sizeof msg,
                 "migration host %s is lost and no other listed host is alive: part %s waits "
                 "for it (its shards resume from their checkpoints when it is back)",
                 host, part);
        spread_event(cp, parent, "part_waits", msg, now);
        return;
    }
    bool lead = strcmp(role, "lead") == 0;
    int lead_to = lead ? lm_cp_lead_host(alive, h.n, -1) : -1;
    char what[2048] = "";
    bool ok = true;
    begin(cp);
    if (!assigned) { /* a lead lost before the spread: a new lead waits for the shards */
        char id[25];
        new_part_id(id);
        lm_cp_part_row_t row = {
            .id = id, .parent = parent, .host = h.names[lead_to], .role = "lead"};
        ok = lm_cp_store_part_insert(cp->db, &row, now);
        snprintf(what, sizeof what, "%s: the lead's duty (part %s)", h.names[lead_to], id);
    } else {
        /* every shard of the migration, where it runs; the lost host's move, the rest stay */
        lm_cp_shard_slot_t slots[LM_PROTO_MAX_SHARDS];
        int from[LM_PROTO_MAX_SHARDS];
        char names[LM_PROTO_MAX_SHARDS][LM_PROTO_ID_LEN + 1];
        size_t n = 0;
        sqlite3_stmt *rows = lm_cp_store_job_shards(cp->db, parent);
        while (rows && sqlite3_step(rows) == SQLITE_ROW && n < LM_PROTO_MAX_SHARDS) {
            bool mine = strcmp(lm_cp_col(rows, 6), part) == 0;
            int at = mine ? -1 : host_index(&h, lm_cp_col(rows, 1));
            if (!mine && (at < 0 || !alive[at]))
                continue; /* another part's on a host that is gone: it moves with that part */
            snprintf(names[n], sizeof names[0], "%s", lm_cp_col(rows, 0));
            slots[n] = (lm_cp_shard_slot_t){
                .name = names[n], .bytes = sqlite3_column_int64(rows, 7), .host = at};
            from[n++] = at;
        }
        sqlite3_finalize(rows);
        lm_error_t err;
        if (lm_cp_assign_shards(slots, n, alive, h.n, h.max_per_host, &err) < 0) {
            snprintf(msg, sizeof msg,
                     "migration host %s is lost; its shards cannot move: %s. Part %s waits for "
                     "it",
                     host, err.message, part);
            spread_event(cp, parent, "part_waits", msg, now);
            end(cp, false);
            return;
        }
        if (lead) { /* the lead's duty goes to the first listed host that takes its shards */
            lead_to = -1;
            for (size_t i = 0; i < n; i++)
                if (from[i] != slots[i].host && (lead_to < 0 || slots[i].host < lead_to))
                    lead_to = slots[i].host;
        }
        ok = hand_out(cp, parent, &h, slots, from, n, lead_to, NULL, NULL,
                      lm_cp_store_has_command(cp->db, parent, "cutover"), what, sizeof what, now);
    }
    ok = end(cp, ok && lm_cp_store_part_release(cp->db, part, now));
    if (!ok) {
        lm_log_error(NULL, "live migration %s: cannot hand part %s on", parent, part);
        return;
    }
    snprintf(msg, sizeof msg,
             "migration host %s is lost: its part %s (%s) is handed on, resuming from the "
             "shards' checkpoints: %s",
             host, part, role, what);
    spread_event(cp, parent, "part_reassigned", msg, now);
    pthread_cond_broadcast(&cp->changed);
}

void cp_spread_host_lost(lm_cp_t *cp, const char *agent_id, const char *host, int64_t now)
{
    sqlite3_stmt *st = lm_cp_store_parts_held(cp->db, agent_id);
    struct {
        char id[80], parent[80], role[16];
    } parts[LM_PROTO_MAX_JOBS];
    int n = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW && n < LM_PROTO_MAX_JOBS) {
        snprintf(parts[n].id, sizeof parts[n].id, "%s", lm_cp_col(st, 0));
        snprintf(parts[n].parent, sizeof parts[n].parent, "%s", lm_cp_col(st, 1));
        snprintf(parts[n].role, sizeof parts[n].role, "%s", lm_cp_col(st, 3));
        n++;
    }
    sqlite3_finalize(st);
    for (int i = 0; i < n; i++) {
        hand_on(cp, parts[i].id, parts[i].parent, host, parts[i].role, false, now);
        cp_spread_update(cp, parts[i].parent);
    }
}

/* ---- a validation on several hosts ---- */

bool cp_spread_validations(lm_cp_t *cp, const char *id, const char *const *hosts, size_t n,
                           lm_error_t *err)
{
    for (size_t i = 0; i < n; i++) {
        char child[25];
        new_part_id(child);
        lm_cp_part_row_t row = {.id = child,
                                .parent = id,
                                .host = hosts[i],
                                .role = "validation",
                                .kind = "validation"};
        if (!lm_cp_store_part_insert(cp->db, &row, lm_time_now_ms()))
            return lm_error_set(err, LM_ERR_IO, "cannot store the validation of host %s", hosts[i]);
    }
    return true;
}

void cp_spread_validation_update(lm_cp_t *cp, const char *parent)
{
    sqlite3_stmt *st = lm_cp_store_validation_hosts(cp->db, parent);
    size_t n = 0, ended = 0, reported = 0;
    bool failed = false;
    char error[1200] = "";
    lm_error_t err;
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_map_open(w);
    lm_json_w_key(w, "checks");
    lm_json_w_array_open(w);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        /* id, host, status, error, checks, reported */
        n++;
        lm_job_status_t s = LM_STATUS_NEW;
        lm_job_status_parse(lm_cp_col(st, 2), &s);
        ended += lm_job_status_terminal(s);
        failed = failed || s == LM_STATUS_FAILED;
        reported += sqlite3_column_int(st, 5) != 0;
        const char *host = lm_cp_col(st, 1);
        if (!error[0] && lm_cp_col(st, 3)[0])
            snprintf(error, sizeof error, "host %s: %s", host, lm_cp_col(st, 3));
        const char *checks = lm_cp_col(st, 4);
        lm_json_val_t *v = checks[0] ? lm_json_parse(checks, strlen(checks), 0, 0, &err) : NULL;
        for (size_t i = 0; v && i < lm_json_len(v); i++) {
            lm_json_val_t *c = lm_json_at(v, i);
            const char *name = lm_json_string(lm_json_get(c, "name"));
            const char *result = lm_json_string(lm_json_get(c, "result"));
            const char *msg = lm_json_string(lm_json_get(c, "message"));
            char text[LM_PROTO_TEXT_LEN + 100];
            snprintf(text, sizeof text, "on %s: %s", host, msg ? msg : "");
            lm_json_w_map_open(w);
            lm_json_w_kv_str(w, "name", name ? name : "?");
            lm_json_w_kv_str(w, "result", result ? result : "?");
            lm_json_w_kv_str(w, "message", text);
            lm_json_w_map_close(w);
        }
        lm_json_free(v);
    }
    sqlite3_finalize(st);
    lm_json_w_array_close(w);
    lm_json_w_map_close(w);
    size_t len;
    const char *report = lm_json_writer_result(w, &len, &err);
    lm_job_status_t status = n && ended == n ? (failed ? LM_STATUS_FAILED : LM_STATUS_COMPLETE)
                             : reported      ? LM_STATUS_WORKING
                                             : LM_STATUS_NEW;
    lm_cp_job_report_t rep = {
        .status = lm_job_status_name(status),
        .phase = lm_phase_name(n && ended == n ? LM_PHASE_COMPLETE : LM_PHASE_VALIDATING),
        .report = report,
        .error = error[0] ? error : NULL};
    if (!lm_cp_store_job_report(cp->db, parent, &rep, lm_time_now_ms()))
        lm_log_warn(NULL, "validation %s: cannot store its checks from its hosts", parent);
    lm_json_writer_destroy(w);
}
