/* lm_daemon: see lm_daemon.h. */
#include "lm_daemon.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mongoc/mongoc.h>

#include "lm_agent_config.h"
#include "lm_coord.h"
#include "lm_encode.h"
#include "lm_engine.h"
#include "lm_run.h"
#include "lm_status_http.h"
#include "lm_fs.h"
#include "lm_http.h"
#include "lm_link.h"
#include "lm_log.h"
#include "lm_ns.h"
#include "lm_redact.h"
#include "lm_time.h"
#include "lm_validate.h"
#include "lm_verify.h"

#define REPORT_MS 3000       /* status reports of running jobs */
#define BACKOFF_BASE_MS 1000 /* the control plane away: first retry after ~1 s */
#define BACKOFF_MAX_MS 60000 /* ... growing to ~1 min */
#define UNREACHABLE_LOG_MS 60000

typedef struct daemon daemon_t;

typedef struct djob {
    struct djob *next;
    daemon_t *d;
    char id[LM_PROTO_ID_LEN + 1];
    lm_proto_job_kind_t kind;
    lm_job_t job; /* engine options; the passwords in it are wiped when the run ends */
    lm_status_t st;
    lm_checks_t checks;              /* validation results, written before `finished` */
    char refusal[LM_PROTO_TEXT_LEN]; /* refused before it ran: the reason */
    pthread_t thread;
    bool started;
    atomic_bool finished;
    char final[16];       /* the state to report once finished; "" = stopped, resumes */
    bool verify;          /* verify the target after the cutover (the live migration's verify) */
    bool verify_only;     /* a verification on demand of a finished migration, nothing else */
    atomic_bool cut_over; /* the migration is COMPLETE; the verification after it runs */
    /* the verification's outcome (ver_done), under st.mu: what the reports carry */
    bool ver_done;
    lm_proto_verification_t ver;
    atomic_bool stop; /* the daemon stops: checkpoint, not an end */
    atomic_bool expired;
    bool final_sent;
    /* a part of a migration spread over several hosts: its shared migration id ("" none),
     * its lease (0: none), and why it was stopped without a final report: the lease ran
     * out, or the control plane answered 409 (the part was reassigned) */
    char migration_id[LM_PROTO_ID_LEN + 1];
    int64_t lease_ms;
    /* the lease: renewed only by a heartbeat the control plane answered (it judges hosts by
     * their heartbeats), to the time that heartbeat was sent, and never once it ran out
     * (a process paused past it must not find it fresh again): lm_time_boot_ms, which
     * counts a suspended host's sleep */
    atomic_llong lease_ok_ms;
    atomic_bool lease_lost, reassigned;
} djob_t;

struct daemon {
    const lm_daemon_opts_t *o;
    pthread_mutex_t mu; /* jobs, cfg, id */
    pthread_cond_t wake;
    lm_agent_config_t cfg; /* replaced by a reload: other threads read it under mu */
    char state_dir[1024];  /* cfg.state_dir, fixed for the process (a reload cannot move it) */
    lm_identity_t id;
    djob_t *jobs;
    int64_t started_ms;
    atomic_bool quit; /* the sender ends */
    atomic_bool revoked;
    int64_t acked; /* the highest command seq received (main thread only) */
};

/* ---- pure parts (lm_daemon.h) ---- */

bool lm_daemon_same_migration(const char *a, const char *b)
{
    return a && b && a[0] && strcmp(a, b) == 0;
}

bool lm_daemon_lease_expired(int64_t last_ok_ms, int64_t lease_ms, int64_t now_ms)
{
    return lease_ms > 0 && now_ms - last_ok_ms >= lease_ms;
}

/* ---- configuration, identity ---- */

static void apply_logging(const lm_agent_config_t *cfg)
{
    lm_log_set_level((lm_log_level_t)cfg->log_level);
    lm_log_set_format(cfg->log_format == 1 ? LM_LOG_JSON : LM_LOG_TEXT);
}

/* The configured link-token (link_token or the file's contents), or NULL with *err set
 * when none is configured (code NOT_FOUND) or the file cannot be read. */
static char *configured_token(const lm_agent_config_t *cfg, lm_error_t *err)
{
    char *token = NULL;
    if (cfg->cp.link_token)
        token = strdup(cfg->cp.link_token);
    else if (cfg->cp.link_token_file) {
        if (!lm_fs_read_secret(cfg->cp.link_token_file, &token, err))
            lm_error_prefix(err, "control_plane.link_token_file");
        return token;
    }
    if (!token)
        lm_error_set(err, LM_ERR_NOT_FOUND,
                     "this agent is not linked to a control plane yet: put the link-token from "
                     "`livemig lm link create` in control_plane.link_token_file (mode 0600), or "
                     "run `livemig-agent link`");
    return token;
}

static void free_token(char *token)
{
    if (token) {
        lm_wipe(token, strlen(token));
        free(token);
    }
}

/* Errors a later try may not see: the control plane away or busy. */
static bool transient(const lm_error_t *err)
{
    return err->code == LM_ERR_NET || err->code == LM_ERR_TIMEOUT ||
           (err->code == LM_ERR_HTTP && lm_error_http_5xx(err));
}

/* Links with the configured token when there is no identity yet, or when the token is not
 * the one the identity came from. Transient failures are retried until *stop. */
static bool ensure_linked(daemon_t *d, lm_error_t *err)
{
    lm_identity_t id;
    lm_error_t lerr;
    bool have = lm_identity_load(d->cfg.state_dir, &id, &lerr);
    /* an identity without a credential of the agent's own (an older agent's): linking again
     * with the configured token works once an Owner allowed it; without a token, say so */
    bool stale = !have && lerr.code == LM_ERR_AUTH;
    if (!have && lerr.code != LM_ERR_NOT_FOUND && !stale) {
        *err = lerr;
        return false;
    }
    lm_error_t terr;
    char *token = configured_token(&d->cfg, &terr);
    if (!token && (!have || terr.code != LM_ERR_NOT_FOUND)) {
        *err = stale ? lerr : terr;
        lm_identity_clear(&id);
        return false;
    }
    if (stale)
        lm_log_warn(NULL, "%s; linking again with the configured link-token", lerr.message);
    bool relink = !have;
    if (token && have) {
        lm_proto_link_token_t t;
        if (!lm_proto_link_token_decode(token, strlen(token), &t, err)) {
            lm_error_prefix(err, "the configured link-token");
            free_token(token);
            lm_identity_clear(&id);
            return false;
        }
        relink = strcmp(t.token_id, id.token_id) != 0;
        if (relink)
            lm_log_info(NULL, "the configured link-token is not the one this agent was linked "
                              "with: linking again");
        lm_proto_link_token_clear(&t);
    }
    bool ok = true;
    if (relink) {
        lm_link_opts_t lo = {.token = token,
                             .token_len = strlen(token),
                             .ca_file = d->cfg.cp.ca_file,
                             .state_dir = d->cfg.state_dir,
                             .hostname = d->cfg.hostname,
                             .url = d->cfg.cp.url};
        for (unsigned attempt = 0;; attempt++) {
            lm_identity_clear(&id);
            if ((ok = lm_link(&lo, &id, err)))
                break;
            if (!transient(err) || *d->o->stop)
                break;
            int64_t wait = lm_time_backoff_ms(attempt, BACKOFF_BASE_MS, BACKOFF_MAX_MS);
            lm_log_warn(NULL, "linking failed: %s; trying again in %.0f s", err->message,
                        (double)wait / 1000);
            lm_time_sleep_ms(wait, d->o->stop);
        }
        if (ok)
            lm_log_info(NULL, "linked: agent %s on %s, organization %s", id.agent_id, id.hostname,
                        id.org_id);
    }
    free_token(token);
    ok = ok && lm_link_check_ca(d->cfg.cp.ca_file, &id, err);
    if (ok) {
        if (d->cfg.cp.url) /* the configured URL wins over the one the token named */
            snprintf(id.url, sizeof id.url, "%s", d->cfg.cp.url);
        pthread_mutex_lock(&d->mu);
        d->id = id;
        pthread_mutex_unlock(&d->mu);
        atomic_store(&d->revoked, false);
    }
    lm_identity_clear(&id);
    return ok;
}

/* SIGHUP: the new config replaces the running one only when it is valid. */
static void reload(daemon_t *d)
{
    lm_agent_config_t cfg;
    lm_error_t err;
    if (!lm_agent_config_load(d->o->config_path, &cfg, &err)) {
        lm_log_error(NULL, "reload: %s; keeping the running configuration", err.message);
        lm_agent_config_cleanup(&cfg);
        return;
    }
    if (strcmp(cfg.state_dir, d->cfg.state_dir) != 0) {
        lm_log_error(NULL,
                     "reload: %s: state_dir changed (%s -> %s): that needs a restart; keeping "
                     "the running configuration",
                     d->o->config_path, d->cfg.state_dir, cfg.state_dir);
        lm_agent_config_cleanup(&cfg);
        return;
    }
    pthread_mutex_lock(&d->mu);
    bool same_ca = lm_link_check_ca(cfg.cp.ca_file, &d->id, &err);
    pthread_mutex_unlock(&d->mu);
    if (!same_ca) {
        lm_log_error(NULL,
                     "reload: %s: %s; keeping the running configuration (a control plane with "
                     "another CA needs a restart)",
                     d->o->config_path, err.message);
        lm_agent_config_cleanup(&cfg);
        return;
    }
    pthread_mutex_lock(&d->mu);
    lm_agent_config_t old = d->cfg;
    d->cfg = cfg;
    pthread_mutex_unlock(&d->mu);
    lm_agent_config_cleanup(&old);
    apply_logging(&d->cfg);
    lm_log_info(NULL, "reloaded %s (limits apply to jobs that start from now on)",
                d->o->config_path);
    if (!ensure_linked(d, &err))
        lm_log_error(NULL, "reload: %s", err.message);
}

/* ---- jobs ---- */

static djob_t *find_job(daemon_t *d, const char *id)
{
    for (djob_t *j = d->jobs; j; j = j->next)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

static bool set_key(lm_job_t *job, const char *key, const char *value, lm_error_t *err)
{
    return !value || !value[0] || lm_config_set(lm_job_schema, job, key, value, err);
}

/* text from the control plane made printable for a log line or a message: control
 * characters become '?' (no forged log lines), cut to size. */
static void printable(const char *in, char *out, size_t size)
{
    size_t n = 0;
    for (; in[n] && n + 1 < size; n++)
        out[n] = (unsigned char)in[n] < 0x20 || in[n] == 0x7f ? '?' : in[n];
    out[n] = '\0';
}

static bool path_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* The CA file the control plane named for one side, confined to ca_dir: a file name in
 * it or a path into it, no "." or ".." components (checked before the file system is
 * touched, so a path outside tells nothing about what exists there), then resolved with
 * realpath so that a symlink cannot lead out, and a regular file. The resolved path goes
 * to out. Why a directory and not PEM content from the control plane:
 * docs/security.md (the local status API). */
static bool confine_ca(const char *ca_dir, const char *side, const char *given, char *out,
                       size_t outsz, lm_error_t *err)
{
    char shown[256], joined[PATH_MAX], real_dir[PATH_MAX], real[PATH_MAX];
    struct stat st;
    printable(given, shown, sizeof shown);
    if (!ca_dir || !ca_dir[0])
        return lm_error_set(err, LM_ERR_CONFIG,
                            "%s.caFile '%s': ca_dir is not set in the agent's config", side, shown);
    if (!lm_proto_ca_name_valid(given))
        return lm_error_set(err, LM_ERR_INVALID,
                            "%s.caFile '%s': not a file name or a plain path (no '.' or '..' "
                            "components): name a certificate in the agent's ca_dir (%s)",
                            side, shown, ca_dir);
    if (!realpath(ca_dir, real_dir))
        return lm_error_set(err, LM_ERR_CONFIG, "%s.caFile: ca_dir %s: %s", side, ca_dir,
                            strerror(errno));
    if (given[0] == '/' && !path_under(given, ca_dir) && !path_under(given, real_dir))
        goto outside;
    if (given[0] == '/')
        snprintf(joined, sizeof joined, "%s", given);
    else
        snprintf(joined, sizeof joined, "%s/%s", real_dir, given);
    if (!realpath(joined, real))
        return lm_error_set(err, LM_ERR_NOT_FOUND, "%s.caFile '%s': not found in ca_dir %s: %s",
                            side, shown, ca_dir, strerror(errno));
    if (!path_under(real, real_dir))
        goto outside; /* a symlink in ca_dir that leads out */
    if (stat(real, &st) != 0 || !S_ISREG(st.st_mode))
        return lm_error_set(err, LM_ERR_INVALID, "%s.caFile '%s': not a regular file", side, shown);
    snprintf(out, outsz, "%s", real);
    return true;
outside:
    return lm_error_set(err, LM_ERR_INVALID,
                        "%s.caFile '%s' is outside the agent's ca_dir (%s): the agent reads CA "
                        "certificates only from there; install the certificate in that "
                        "directory and name it in the cluster's caFile",
                        side, shown, ca_dir);
}

static bool set_endpoint(lm_job_t *job, const char *side, lm_endpoint_t *ep,
                         const lm_proto_endpoint_t *pe, const char *ca_dir, lm_error_t *err)
{
    char key[32], ca[PATH_MAX] = "";
    if (pe->ca_file[0] && !confine_ca(ca_dir, side, pe->ca_file, ca, sizeof ca, err))
        return false;
    lm_strbuf_t uri;
    lm_strbuf_init(&uri, sizeof pe->uri + 16);
    lm_strbuf_append(&uri, pe->uri);
    if (pe->tls && !pe->ca_file[0] && !strstr(pe->uri, "tls=") && !strstr(pe->uri, "ssl="))
        lm_strbuf_append(&uri, strchr(pe->uri, '?') ? "&tls=true" : "/?tls=true");
    bool ok = true;
    if (pe->tls) { /* the registry says TLS: a tls=false (or ssl=false) in the URI may not win */
        bson_error_t berr;
        mongoc_uri_t *u = mongoc_uri_new_with_error(pe->uri, &berr);
        bool off = u && ((mongoc_uri_has_option(u, MONGOC_URI_TLS) &&
                          !mongoc_uri_get_option_as_bool(u, MONGOC_URI_TLS, true)) ||
                         (mongoc_uri_has_option(u, MONGOC_URI_SSL) &&
                          !mongoc_uri_get_option_as_bool(u, MONGOC_URI_SSL, true)));
        mongoc_uri_destroy(u);
        if (off)
            ok = lm_error_set(err, LM_ERR_INVALID,
                              "%s: the cluster is registered with tls: true but its connection "
                              "string says tls=false: fix the registration",
                              side);
    }
    snprintf(key, sizeof key, "%s.uri", side);
    ok = ok && set_key(job, key, lm_strbuf_str(&uri), err);
    snprintf(key, sizeof key, "%s.tls_ca_file", side);
    ok = ok && set_key(job, key, ca, err);
    snprintf(key, sizeof key, "%s.user", side);
    ok = ok && set_key(job, key, pe->username, err);
    lm_strbuf_cleanup(&uri);
    if (ok && pe->password[0]) {
        if (!(ep->password = strdup(pe->password)))
            return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    }
    if (ok && !lm_endpoint_hold_secrets(ep))
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    return ok;
}

/* The engine's options from an assignment and the agent's config. */
static bool build_job(daemon_t *d, const lm_proto_job_t *pj, lm_job_t *job, lm_error_t *err)
{
    char dir[1200];
    memset(job, 0, sizeof *job);
    if (!lm_proto_job_id_valid(pj->job_id)) /* take_job refused it already; never a path */
        return lm_error_set(err, LM_ERR_INVALID, "invalid job id");
    if (!lm_config_load_defaults(lm_job_schema, job, err) ||
        !set_endpoint(job, "source", &job->source, &pj->source, d->cfg.ca_dir, err) ||
        !set_endpoint(job, "target", &job->target, &pj->target, d->cfg.ca_dir, err))
        return false;
    for (size_t i = 0; i < pj->n_include; i++)
        if (!lm_ns_pattern_valid(pj->include[i], err) ||
            !lm_config_set(lm_job_schema, job, "include", pj->include[i], err))
            return false;
    for (size_t i = 0; i < pj->n_exclude; i++)
        if (!lm_ns_pattern_valid(pj->exclude[i], err) ||
            !lm_config_set(lm_job_schema, job, "exclude", pj->exclude[i], err))
            return false;
    job->drop_target = pj->drop_target;
    job->allow_insecure_tls = d->cfg.allow_insecure_tls;
    if (pj->capture[0] && !lm_config_set(lm_job_schema, job, "capture", pj->capture, err))
        return false;
    job->copy_workers = d->cfg.limits.copy_workers;
    job->apply_workers = pj->apply_workers > 0 ? pj->apply_workers : d->cfg.limits.apply_workers;
    job->buffer_mb = d->cfg.limits.buffer_mb;
    if (pj->cutover_lag_seconds > 0)
        job->cutover_lag_ms = pj->cutover_lag_seconds * 1000;
    job->log_level = d->cfg.log_level;
    job->log_format = d->cfg.log_format;
    /* the daemon verifies after the cutover itself (after_cutover), to report the outcome to
     * the control plane: lm_run's own verification is not used */
    job->verify = false;
    snprintf(job->job_id, sizeof job->job_id, "%s", pj->job_id);
    /* a part of a sharded migration run by several agents: the engines' shared id, the
     * shards this part runs and its role (docs/sharded.md "Several agents") */
    if (pj->migration_id[0] &&
        (!lm_proto_job_id_valid(pj->migration_id) || strlen(pj->migration_id) > 24))
        return lm_error_set(err, LM_ERR_INVALID,
                            "job %s: migrationId: 1 to 24 letters, digits, '_' or '-' expected",
                            pj->job_id);
    if (pj->migration_id[0] &&
        !lm_config_set(lm_job_schema, job, "migration_id", pj->migration_id, err))
        return false;
    if (pj->migration_id[0])
        snprintf(job->job_id, sizeof job->job_id, "%s", pj->migration_id);
    for (size_t i = 0; i < pj->n_shards; i++)
        if (!lm_config_set(lm_job_schema, job, "shards", pj->shards[i], err))
            return false;
    if (pj->sharded_role[0] &&
        !lm_config_set(lm_job_schema, job, "sharded_role", pj->sharded_role, err))
        return false;
    if (job->sharded_role != LM_JOB_ROLE_ALL && !pj->migration_id[0])
        return lm_error_set(err, LM_ERR_INVALID,
                            "job %s is a part of a sharded migration (shardedRole %s) without a "
                            "migrationId: the control plane must send the id its parts share",
                            pj->job_id, pj->sharded_role);
    if (pj->await_shards && (job->sharded_role != LM_JOB_ROLE_LEAD || pj->n_shards))
        return lm_error_set(err, LM_ERR_INVALID,
                            "job %s: awaitShards is only for a lead part without shards "
                            "(shardedRole lead, shards empty): the control plane sent "
                            "shardedRole '%s' with %zu shards",
                            pj->job_id, pj->sharded_role[0] ? pj->sharded_role : "all",
                            pj->n_shards);
    job->await_shards = pj->await_shards;
    snprintf(dir, sizeof dir, "%s/jobs/%s", d->cfg.state_dir, pj->job_id);
    return lm_config_set(lm_job_schema, job, "state_dir", dir, err) &&
           lm_config_set(lm_job_schema, job, "status_addr",
                         pj->kind == LM_PROTO_JOB_MIGRATION ? d->cfg.status_addr : "0", err);
}

/* The outcome of lm_verify_run as the status report carries it, cut to the protocol's caps. */
static void summarize_verification(const lm_verify_result_t *r, bool ok, const lm_error_t *err,
                                   int64_t checked, lm_proto_verification_t *v)
{
    memset(v, 0, sizeof *v);
    v->present = true;
    snprintf(v->state, sizeof v->state, "%s",
             lm_verify_state_name(!ok           ? LM_VERIFY_ERROR
                                  : r->n_failed ? LM_VERIFY_FAILED
                                                : LM_VERIFY_PASSED));
    v->namespaces_total = (int64_t)r->n;
    v->namespaces_checked = ok ? (int64_t)r->n : checked;
    v->namespaces_failed = (int64_t)r->n_failed;
    v->documents_checked = r->documents;
    if (!ok)
        lm_proto_clip_text(err->message, v->error, sizeof v->error);
    size_t n = r->n_failed < LM_PROTO_VERIFY_MAX_NS ? r->n_failed : LM_PROTO_VERIFY_MAX_NS;
    v->clipped = r->n_failed > n;
    v->differences = n ? calloc(n, sizeof *v->differences) : NULL;
    for (size_t i = 0; v->differences && i < r->n && v->n_differences < n; i++) {
        const lm_verify_ns_t *ns = &r->items[i];
        if (ns->pass)
            continue;
        lm_proto_verify_ns_t *p = &v->differences[v->n_differences++];
        v->clipped |= lm_proto_clip_text(ns->ns, p->ns, sizeof p->ns);
        for (size_t k = 0; k < ns->reasons.n; k++) {
            if (p->n_reasons == LM_PROTO_VERIFY_MAX_REASONS) {
                v->clipped = true;
                break;
            }
            v->clipped |= lm_proto_clip_text(ns->reasons.items[k], p->reasons[p->n_reasons++],
                                             sizeof p->reasons[0]);
        }
        for (size_t k = 0; k < ns->n_ids; k++) {
            if (p->n_ids == LM_PROTO_VERIFY_MAX_IDS) {
                v->clipped = true;
                break;
            }
            char line[LM_PROTO_VERIFY_TEXT * 2];
            snprintf(line, sizeof line, "%s (%s%s%s)", ns->ids[k].id_json,
                     lm_verify_doc_kind_name(ns->ids[k].kind), ns->ids[k].detail ? ": " : "",
                     ns->ids[k].detail ? ns->ids[k].detail : "");
            v->clipped |= lm_proto_clip_text(line, p->ids[p->n_ids++], sizeof p->ids[0]);
        }
    }
}

/* Verifies the target of job j against its source (reads only) and keeps the outcome for
 * the reports; the status sink's verification section shows the progress meanwhile. */
static void run_verification(djob_t *j, const char *why)
{
    lm_verify_result_t r;
    lm_error_t err;
    lm_error_init(&err);
    lm_log_info(NULL,
                "live migration %s: %s: verifying the target against the source (it only "
                "reads)",
                j->id, why);
    bool ok = lm_run_verify(&j->job, &j->st, &j->stop, &r, &err);
    lm_verify_state_t vs;
    lm_verify_progress_t p;
    lm_status_get_verify(&j->st, &vs, &p);
    lm_proto_verification_t v;
    summarize_verification(&r, ok, &err, p.namespaces_done, &v);
    if (!ok)
        lm_log_error(NULL,
                     "live migration %s: the verification did not finish: %s (the migration "
                     "itself is not changed by it; verify changed no data)",
                     j->id, err.message);
    else if (r.n_failed)
        lm_log_error(NULL,
                     "live migration %s: verification FAILED: %zu of %zu namespaces differ, "
                     "first %s: %s; verify changed no data",
                     j->id, r.n_failed, r.n, v.differences ? v.differences[0].ns : "?",
                     v.differences && v.differences[0].n_reasons ? v.differences[0].reasons[0]
                                                                 : "?");
    else
        lm_log_info(NULL,
                    "live migration %s: verification passed: %zu namespaces, %lld documents in "
                    "%.1f s",
                    j->id, r.n, (long long)r.documents, (double)r.elapsed_ms / 1000);
    pthread_mutex_lock(&j->st.mu);
    lm_proto_verification_cleanup(&j->ver);
    j->ver = v;
    j->ver_done = true;
    pthread_mutex_unlock(&j->st.mu);
    lm_verify_result_cleanup(&r);
}

/* lm_run_job_then's hook after a cutover: the verification, while the job's status API
 * still answers (its "verification" section shows the progress). */
static void after_cutover(void *ud)
{
    djob_t *j = ud;
    if (!j->verify)
        return;
    atomic_store(&j->cut_over, true); /* reported COMPLETE while it verifies */
    run_verification(j, "cutover complete");
}

static void *job_main(void *arg)
{
    djob_t *j = arg;
    if (j->verify_only) {
        lm_status_set_phase(&j->st, LM_PHASE_COMPLETE);
        run_verification(j, "verification requested");
        snprintf(j->final, sizeof j->final, "%s", lm_agent_state_name(LM_AGENT_COMPLETE));
    } else if (j->kind == LM_PROTO_JOB_VALIDATION) {
        lm_log_info(NULL, "validation %s: running the checks", j->id);
        lm_status_set_phase(&j->st, LM_PHASE_VALIDATING);
        lm_validate(&j->job, j->d->state_dir, &j->checks);
        snprintf(j->final, sizeof j->final, "%s", lm_agent_state_name(LM_AGENT_COMPLETE));
        lm_log_info(NULL, "validation %s: %s", j->id,
                    lm_checks_failed(&j->checks) ? "a check FAILED" : "passed");
    } else {
        lm_log_info(NULL, "live migration %s: starting (state in %s)", j->id, j->job.state_dir);
        int code = lm_run_job_then(&j->job, &j->st, &j->stop, after_cutover, j);
        lm_agent_state_t s =
            code == LM_EXIT_OK ? LM_AGENT_COMPLETE
            : code == LM_EXIT_CANCELLED
                ? (atomic_load(&j->expired) ? LM_AGENT_EXPIRED : LM_AGENT_CANCELLED)
                : LM_AGENT_FAILED;
        const char *final = code == LM_EXIT_STOPPED ? "" : lm_agent_state_name(s);
        snprintf(j->final, sizeof j->final, "%s", final);
        lm_log_info(NULL, "live migration %s: %s", j->id,
                    final[0] ? final : "stopped (checkpointed; resumes when the agent starts)");
    }
    lm_job_wipe_passwords(&j->job);
    atomic_store(&j->finished, true);
    pthread_mutex_lock(&j->d->mu);
    pthread_cond_broadcast(&j->d->wake);
    pthread_mutex_unlock(&j->d->mu);
    return NULL;
}

static void free_job(djob_t *j)
{
    if (j->started)
        pthread_join(j->thread, NULL);
    lm_job_wipe_passwords(&j->job);
    lm_job_cleanup(&j->job);
    lm_status_cleanup(&j->st);
    lm_checks_cleanup(&j->checks);
    lm_proto_verification_cleanup(&j->ver);
    free(j);
}

/* A part of a migration whose other part (sibling) runs on this agent too (the control plane
 * moved a lost host's shards here): its own state dir (jobs/<job id>), and its status API
 * on a free port of the configured host (its token file names it), not the sibling's. */
static bool beside(const djob_t *sibling, djob_t *j, lm_error_t *err)
{
    char host[128], addr[160];
    int port;
    lm_log_info(NULL,
                "live migration %s: a part of migration %s, as %s running here: both run side by "
                "side (state in %s)",
                j->id, j->migration_id, sibling->id, j->job.state_dir);
    if (strcmp(j->job.status_addr, "0") == 0)
        return true;
    if (!lm_status_addr_parse(j->job.status_addr, host, sizeof host, &port, err))
        return false;
    snprintf(addr, sizeof addr, "%s%s%s:0", strchr(host, ':') ? "[" : "", host,
             strchr(host, ':') ? "]" : "");
    return lm_config_set(lm_job_schema, &j->job, "status_addr", addr, err);
}

/* A new assignment: start it, or refuse it (reported FAILED with the reason). */
static void take_job(daemon_t *d, const lm_proto_job_t *pj)
{
    char shown[LM_PROTO_ID_LEN + 1];
    printable(pj->job_id, shown, sizeof shown);
    pthread_mutex_lock(&d->mu);
    if (find_job(d, pj->job_id)) { /* handed out again while it runs: nothing to do */
        pthread_mutex_unlock(&d->mu);
        return;
    }
    djob_t *j = calloc(1, sizeof *j);
    if (!j) {
        pthread_mutex_unlock(&d->mu);
        lm_log_error(NULL, "out of memory for job %s", shown);
        return;
    }
    j->d = d;
    j->kind = pj->kind;
    j->verify = pj->verify;
    j->verify_only = pj->kind == LM_PROTO_JOB_MIGRATION && pj->verify_only;
    snprintf(j->id, sizeof j->id, "%s", pj->job_id);
    snprintf(j->migration_id, sizeof j->migration_id, "%s", pj->migration_id);
    j->lease_ms = pj->lease_seconds > 0 ? pj->lease_seconds * 1000 : 0;
    lm_status_init(&j->st, pj->job_id);
    const djob_t *busy = NULL, *sibling = NULL;
    /* one migration at a time; a verification (after a cutover, or on demand) only reads */
    for (djob_t *o = d->jobs; o && pj->kind == LM_PROTO_JOB_MIGRATION && !j->verify_only;
         o = o->next)
        if (o->kind == LM_PROTO_JOB_MIGRATION && !o->refusal[0] && !o->verify_only &&
            !atomic_load(&o->finished) && !atomic_load(&o->cut_over) &&
            !lm_daemon_same_migration(o->migration_id, pj->migration_id))
            busy = o;
        else if (o->kind == LM_PROTO_JOB_MIGRATION && !atomic_load(&o->finished) &&
                 lm_daemon_same_migration(o->migration_id, pj->migration_id))
            sibling = o;
    lm_error_t err;
    if (!lm_proto_job_id_valid(pj->job_id))
        snprintf(j->refusal, sizeof j->refusal,
                 "job id '%s' is not valid: ids are 1-64 letters, digits, '_' or '-' (the agent "
                 "names a directory after it); the control plane sent something else",
                 shown);
    else if (busy)
        snprintf(j->refusal, sizeof j->refusal,
                 "agent %s on %s is running live migration %s and runs one migration at a time: "
                 "cut that one over or cancel it first, or choose another migration host",
                 d->id.agent_id, d->id.hostname, busy->id);
    else if (!build_job(d, pj, &j->job, &err) || (sibling && !beside(sibling, j, &err)))
        snprintf(j->refusal, sizeof j->refusal, "the job cannot run: %s", err.message);
    if (!j->refusal[0] && j->lease_ms) { /* the apply checks it before every write too */
        atomic_store(&j->lease_ok_ms, lm_time_boot_ms()); /* handed out just now */
        j->job.lease_ok_ms = &j->lease_ok_ms;
        j->job.lease_ms = j->lease_ms;
    }
    if (!j->refusal[0] && pthread_create(&j->thread, NULL, job_main, j) != 0)
        snprintf(j->refusal, sizeof j->refusal, "the agent cannot start a thread for it");
    if (j->refusal[0]) {
        lm_job_wipe_passwords(&j->job);
        snprintf(j->final, sizeof j->final, "%s", lm_agent_state_name(LM_AGENT_FAILED));
        atomic_store(&j->finished, true);
        lm_log_error(NULL, "%s %s refused: %s", lm_proto_job_kind_name(pj->kind), shown,
                     j->refusal);
    } else {
        j->started = true;
    }
    j->next = d->jobs;
    d->jobs = j;
    pthread_cond_broadcast(&d->wake);
    pthread_mutex_unlock(&d->mu);
}

static void take_command(daemon_t *d, const lm_proto_command_t *c)
{
    if (c->kind == LM_PROTO_CMD_REVOKED) {
        atomic_store(&d->revoked, true);
        return;
    }
    pthread_mutex_lock(&d->mu);
    djob_t *j = find_job(d, c->job_id);
    if (!j || atomic_load(&j->finished)) {
        pthread_mutex_unlock(&d->mu);
        lm_log_debug(NULL, "%s for job %s, which this agent does not run: ignored",
                     lm_proto_cmd_kind_name(c->kind), c->job_id);
        return;
    }
    switch (c->kind) {
    case LM_PROTO_CMD_CUTOVER:
        if (!j->st.cutover)
            lm_log_info(NULL,
                        "live migration %s: cutover requested: applying what is left, "
                        "then completing",
                        j->id);
        j->st.cutover = 1;
        break;
    case LM_PROTO_CMD_CANCEL:
        if (!j->st.cancel)
            lm_log_warn(NULL, "live migration %s: cancelled by the control plane", j->id);
        j->st.cancel = 1;
        break;
    case LM_PROTO_CMD_EXPIRE:
        if (!j->expired)
            lm_log_warn(NULL,
                        "live migration %s: the cutover window closed: syncing stops (what was "
                        "applied stays on the target)",
                        j->id);
        j->expired = 1;
        j->st.cancel = 1;
        break;
    case LM_PROTO_CMD_EXTEND: {
        char when[LM_TIME_ISO8601_LEN];
        lm_time_format_iso8601(c->deadline_ms, when, sizeof when);
        lm_log_info(NULL, "live migration %s: the cutover window now ends at %s", j->id, when);
        break;
    }
    case LM_PROTO_CMD_RESTART_SHARD: {
        /* the coordinator's restart (as POST /api/v1/restart-shard): only a failed shard */
        char name[LM_PROTO_ID_LEN + 1], raw[LM_PROTO_TEXT_LEN], msg[LM_PROTO_TEXT_LEN];
        printable(c->shard, name, sizeof name);
        int code = 404;
        pthread_mutex_lock(&j->st.mu);
        if (j->st.restart_shard)
            code = j->st.restart_shard(j->st.hook_ud, c->shard, raw, sizeof raw);
        else
            snprintf(raw, sizeof raw,
                     "it is not a sharded migration (or has not read its shards yet)");
        pthread_mutex_unlock(&j->st.mu);
        printable(raw, msg, sizeof msg); /* it may quote the name the control plane sent */
        if (code == 202)
            lm_log_info(NULL,
                        "live migration %s: restart of shard %s requested by the control plane: %s",
                        j->id, name, msg);
        else
            lm_log_warn(NULL,
                        "live migration %s: restart of shard %s requested by the control plane, "
                        "not done: %s",
                        j->id, name, msg);
        break;
    }
    case LM_PROTO_CMD_ASSIGN_SHARDS: {
        /* the lead's shards (as POST /api/v1/assign-shards): its coordinator waits for them */
        char list[LM_PROTO_TEXT_LEN], raw[1600], msg[1600];
        printable(c->shards, list, sizeof list);
        int code = lm_coord_shard_list_check(c->shards, raw, sizeof raw)
                       ? lm_status_set_assignment(&j->st, c->shards, raw, sizeof raw)
                       : 400;
        printable(raw, msg, sizeof msg);
        if (code == 202)
            lm_log_info(NULL, "live migration %s: the control plane assigned shards %s: %s", j->id,
                        list, msg);
        else if (code == 409) /* taken already (a command may come twice), or not a lead */
            lm_log_info(NULL, "live migration %s: assign-shards %s ignored: %s", j->id, list, msg);
        else
            lm_log_warn(NULL, "live migration %s: assign-shards %s refused: %s", j->id, list, msg);
        break;
    }
    case LM_PROTO_CMD_REVOKED: break;
    }
    pthread_mutex_unlock(&d->mu);
}

/* ---- reports ---- */

/* The job's fault history (the status's last events). */
static void fill_events(djob_t *j, lm_proto_status_t *m)
{
    lm_status_event_t *ev = calloc(LM_PROTO_MAX_EVENTS, sizeof *ev);
    size_t n = ev ? lm_status_get_events(&j->st, ev, LM_PROTO_MAX_EVENTS) : 0;
    m->events = n ? calloc(n, sizeof *m->events) : NULL;
    for (size_t i = 0; m->events && i < n; i++) {
        m->events[i].time_ms = ev[i].at_ms;
        lm_proto_clip_text(ev[i].kind, m->events[i].kind, sizeof m->events[i].kind);
        lm_proto_clip_text(ev[i].message, m->events[i].message, sizeof m->events[i].message);
    }
    m->n_events = m->events ? n : 0;
    free(ev);
}

/* A sharded migration's per-shard status: the coordinator's "shards" (its status hook, the
 * same members GET /api/v1/status has), read with the protocol's rules. */
static void fill_shards(djob_t *j, lm_proto_status_t *m)
{
    lm_status_t *st = &j->st;
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_map_open(w);
    pthread_mutex_lock(&st->mu);
    bool sharded = st->json_extra != NULL;
    if (sharded)
        st->json_extra(st->hook_ud, w);
    pthread_mutex_unlock(&st->mu);
    lm_json_w_map_close(w);
    size_t len;
    lm_error_t err;
    const char *text = sharded ? lm_json_writer_result(w, &len, &err) : NULL;
    if (text && !lm_proto_shards_decode(text, len, m, &err))
        lm_log_warn(NULL, "live migration %s: the per-shard status is left out of the report: %s",
                    j->id, err.message);
    lm_json_writer_destroy(w);
}

static void fill_migration(djob_t *j, lm_proto_status_t *m)
{
    lm_status_t *st = &j->st;
    pthread_mutex_lock(&st->mu);
    snprintf(m->phase, sizeof m->phase, "%s", lm_phase_name(st->phase));
    size_t n_errors = st->errors.n < LM_PROTO_MAX_NAMES ? st->errors.n : LM_PROTO_MAX_NAMES;
    m->errors = n_errors ? calloc(n_errors, sizeof *m->errors) : NULL;
    for (size_t i = 0; m->errors && i < n_errors; i++)
        snprintf(m->errors[i], sizeof m->errors[i], "%s", st->errors.items[i]);
    m->n_errors = m->errors ? n_errors : 0;
    size_t n = st->n_colls < LM_PROTO_MAX_NAMES ? st->n_colls : LM_PROTO_MAX_NAMES;
    m->collections = n ? calloc(n, sizeof *m->collections) : NULL;
    for (size_t i = 0; m->collections && i < n; i++) {
        lm_coll_status_t *c = &st->colls[i];
        lm_proto_coll_progress_t *p = &m->collections[i];
        snprintf(p->ns, sizeof p->ns, "%s", c->ns);
        p->docs_copied = atomic_load(&c->docs);
        long long est = atomic_load(&c->est_docs);
        p->docs_total = est > p->docs_copied ? est : p->docs_copied;
        int state = atomic_load(&c->state);
        p->done = state == LM_COLL_COPIED || state == LM_COLL_INDEXED;
    }
    m->n_collections = m->collections ? n : 0;
    pthread_mutex_unlock(&st->mu);
    m->docs_copied = atomic_load(&st->docs);
    m->bytes_copied = atomic_load(&st->bytes);
    int64_t docs_total, bytes_total;
    lm_status_totals(st, &docs_total, &bytes_total);
    m->docs_total = docs_total > m->docs_copied ? docs_total : m->docs_copied;
    m->bytes_total = bytes_total > m->bytes_copied ? bytes_total : m->bytes_copied;
    lm_stream_status_t ss;
    lm_status_get_stream(st, &ss);
    m->has_lag = ss.active;
    m->lag_seconds = ss.lag_seconds;
    m->estimated_cutover_seconds = ss.estimated_cutover_seconds;
    m->ready_for_cutover = ss.active && ss.ready_for_cutover;
    m->optime_gap_seconds = ss.optime_gap_seconds;
    fill_events(j, m);
    fill_shards(j, m);
}

/* The verification section: the outcome once there is one, else the progress. */
static void fill_verification(djob_t *j, lm_proto_status_t *m)
{
    lm_proto_verification_t *v = &m->verification;
    lm_status_t *st = &j->st;
    pthread_mutex_lock(&st->mu);
    if (j->ver_done) {
        *v = j->ver;
        v->differences =
            j->ver.n_differences ? calloc(j->ver.n_differences, sizeof *v->differences) : NULL;
        if (v->differences)
            memcpy(v->differences, j->ver.differences,
                   j->ver.n_differences * sizeof *v->differences);
        else
            v->n_differences = 0;
    } else if (st->verify.state != LM_VERIFY_NONE) {
        v->present = true;
        snprintf(v->state, sizeof v->state, "%s", lm_verify_state_name(LM_VERIFY_RUNNING));
        v->namespaces_total = st->verify.progress.namespaces_total;
        v->namespaces_checked = st->verify.progress.namespaces_done;
        v->documents_checked = st->verify.progress.documents_done;
    }
    pthread_mutex_unlock(&st->mu);
}

/* The job's status as the control plane wants it. */
static void build_report(daemon_t *d, djob_t *j, lm_proto_status_t *m)
{
    bool finished = atomic_load(&j->finished);
    memset(m, 0, sizeof *m);
    snprintf(m->agent_id, sizeof m->agent_id, "%s", d->id.agent_id);
    snprintf(m->job_id, sizeof m->job_id, "%s", j->id);
    m->kind = j->kind;
    m->verify_only = j->verify_only;
    lm_agent_state_t running = atomic_load(&j->cut_over) ? LM_AGENT_COMPLETE : LM_AGENT_RUNNING;
    snprintf(m->state, sizeof m->state, "%s",
             finished && j->final[0] ? j->final : lm_agent_state_name(running));
    if (j->refusal[0]) {
        snprintf(m->phase, sizeof m->phase, "%s", lm_phase_name(LM_PHASE_NEW));
        m->errors = calloc(1, sizeof *m->errors);
        if (m->errors) {
            snprintf(m->errors[0], sizeof m->errors[0], "%s", j->refusal);
            m->n_errors = 1;
        }
    } else if (j->kind == LM_PROTO_JOB_VALIDATION) {
        snprintf(m->phase, sizeof m->phase, "%s",
                 lm_phase_name(finished ? LM_PHASE_COMPLETE : LM_PHASE_VALIDATING));
        size_t n = finished ? j->checks.n : 0;
        m->checks = n ? calloc(n, sizeof *m->checks) : NULL;
        if (m->checks) {
            memcpy(m->checks, j->checks.items, n * sizeof *m->checks);
            m->n_checks = n;
        }
    } else if (j->verify_only) {
        snprintf(m->phase, sizeof m->phase, "%s", lm_phase_name(LM_PHASE_COMPLETE));
        fill_verification(j, m);
    } else {
        fill_migration(j, m);
        fill_verification(j, m);
    }
}

typedef struct {
    int failures;
    int64_t next_ms;   /* no call before this (backoff) */
    int64_t logged_ms; /* when "unreachable" was last logged */
    int64_t down_ms;   /* when the first failed call of this outage failed */
} backoff_t;

/* An event of every job's fault history (the control plane unreachable or back): logged
 * once here, recorded in each job's status, so its next report carries it. */
static void jobs_event(daemon_t *d, const char *kind, const char *msg)
{
    pthread_mutex_lock(&d->mu);
    for (djob_t *j = d->jobs; j; j = j->next)
        if (!atomic_load(&j->finished))
            lm_status_record_event(&j->st, kind, msg);
    pthread_mutex_unlock(&d->mu);
}

/* After a call: count failures, wait longer after each, log the outage now and then. */
static void after_call(daemon_t *d, backoff_t *b, bool ok, const lm_error_t *err, const char *what)
{
    int64_t now = lm_time_mono_ms();
    if (ok) {
        if (b->failures) {
            char msg[256];
            snprintf(msg, sizeof msg, "the control plane answers again (%s) after %.1f s", what,
                     (double)(now - b->down_ms) / 1000.0);
            lm_log_warn(NULL, "%s", msg);
            jobs_event(d, "controlplane_back", msg);
        } else {
            unsigned retried = lm_link_take_retried();
            if (retried) { /* an outage lm_http's retries absorbed: seen all the same */
                char msg[256];
                snprintf(msg, sizeof msg,
                         "the control plane did not answer at first (%s): it answered when "
                         "asked again (%u call%s)",
                         what, retried, retried == 1 ? "" : "s");
                lm_log_warn(NULL, "%s", msg);
                jobs_event(d, "controlplane_retried", msg);
            }
        }
        b->failures = 0;
        b->next_ms = 0;
        return;
    }
    if (err->code == LM_ERR_REVOKED) {
        if (!atomic_exchange(&d->revoked, true))
            lm_log_error(NULL,
                         "%s; this agent stops asking for work and stops its jobs "
                         "(checkpointed): put a new link-token in control_plane.link_token_file "
                         "and reload (SIGHUP) or restart",
                         err->message);
        return;
    }
    int64_t wait = lm_time_backoff_ms((unsigned)b->failures, BACKOFF_BASE_MS, BACKOFF_MAX_MS);
    if (b->failures == 0) {
        char msg[LM_STATUS_EVENT_MSG_MAX];
        b->down_ms = now;
        snprintf(msg, sizeof msg, "control plane unreachable (%s failed: %s); jobs go on", what,
                 err->message);
        jobs_event(d, "controlplane_unreachable", msg);
    }
    b->failures++;
    b->next_ms = now + wait;
    if (b->failures == 1 || now - b->logged_ms >= UNREACHABLE_LOG_MS) {
        lm_log_warn(NULL, "%s failed: %s; jobs go on, retrying in %.0f s", what, err->message,
                    (double)wait / 1000);
        b->logged_ms = now;
    }
}

static void send_heartbeat(daemon_t *d, const lm_identity_t *id, const char *ca, backoff_t *b)
{
    lm_proto_heartbeat_t hb;
    memset(&hb, 0, sizeof hb);
    snprintf(hb.agent_id, sizeof hb.agent_id, "%s", id->agent_id);
    snprintf(hb.hostname, sizeof hb.hostname, "%s", id->hostname);
    snprintf(hb.agent_version, sizeof hb.agent_version, "%s", LM_VERSION);
    hb.uptime_seconds = (lm_time_mono_ms() - d->started_ms) / 1000;
    uint64_t free_bytes = 0;
    lm_error_t err;
    if (lm_fs_free_bytes(d->state_dir, &free_bytes, &err))
        hb.state_dir_free_bytes = (int64_t)free_bytes;
    pthread_mutex_lock(&d->mu);
    for (djob_t *j = d->jobs; j && hb.n_running < LM_PROTO_MAX_JOBS; j = j->next)
        snprintf(hb.running[hb.n_running++], sizeof hb.running[0], "%s", j->id);
    pthread_mutex_unlock(&d->mu);
    int64_t sent = lm_time_boot_ms(); /* the lease's clock counts a suspended host's sleep */
    bool ok = lm_link_heartbeat(id, ca, &d->quit, &hb, &err);
    if (ok) { /* the parts' leases: from when this heartbeat left, unless one ran out */
        pthread_mutex_lock(&d->mu);
        for (djob_t *j = d->jobs; j; j = j->next)
            if (j->lease_ms && !atomic_load(&j->lease_lost) &&
                !lm_daemon_lease_expired(atomic_load(&j->lease_ok_ms), j->lease_ms, sent))
                atomic_store(&j->lease_ok_ms, sent);
        pthread_mutex_unlock(&d->mu);
    }
    after_call(d, b, ok, &err, "heartbeat");
}

/* Reports every job; a finished job whose last report landed is dropped. */
static void send_reports(daemon_t *d, const lm_identity_t *id, const char *ca, backoff_t *b)
{
    djob_t *list[LM_PROTO_MAX_JOBS * 4];
    size_t n = 0;
    pthread_mutex_lock(&d->mu);
    for (djob_t *j = d->jobs; j && n < sizeof list / sizeof list[0]; j = j->next)
        list[n++] = j;
    pthread_mutex_unlock(&d->mu);
    for (size_t i = 0; i < n && !d->quit && b->failures == 0; i++) {
        djob_t *j = list[i];
        bool finished = atomic_load(&j->finished);
        if ((finished && !j->final[0]) || atomic_load(&j->reassigned) ||
            atomic_load(&j->lease_lost))
            continue; /* stopped by the daemon: it resumes, nothing final to say */
        lm_proto_status_t m;
        lm_error_t err;
        build_report(d, j, &m);
        bool ok = lm_link_report(id, ca, &d->quit, &m, &err);
        lm_proto_status_cleanup(&m);
        if (!ok && err.code == LM_ERR_HTTP && err.http_status == 404) {
            lm_log_warn(NULL, "job %s: the control plane no longer knows it: dropping its reports",
                        j->id);
            ok = finished; /* nothing more to tell about it */
            if (!finished)
                j->st.cancel = 1;
            err.code = LM_ERR_NONE;
        }
        if (!ok && err.code == LM_ERR_HTTP && err.http_status == 409 &&
            strstr(err.message, "PART_REASSIGNED")) {
            /* the control plane gave this part's shards to another host: stop writing */
            char why[LM_STATUS_EVENT_MSG_MAX];
            printable(err.message, why, sizeof why);
            if (!atomic_exchange(&j->reassigned, true))
                lm_status_event(&j->st, "part_reassigned",
                                "live migration %s: the control plane answered that this part "
                                "was reassigned (%s): its engines stop, write nothing more "
                                "(no checkpoint either: the new host records its own) and it "
                                "sends no more reports",
                                j->id, why);
            /* its lease ends now: the apply writes no batch and the stream no position */
            if (j->lease_ms)
                atomic_store(&j->lease_ok_ms, INT64_MIN / 2);
            atomic_store(&j->stop, true);
            err.code = LM_ERR_NONE;
        }
        after_call(d, b, ok || err.code == LM_ERR_NONE, &err, "status report");
        if (ok && finished)
            j->final_sent = true;
    }
}

/* Drops the jobs whose end the control plane knows, and those stopped (revocation): not
 * running any more, they are handed out again when the agent may work again. */
static void drop_finished(daemon_t *d)
{
    pthread_mutex_lock(&d->mu);
    for (djob_t **p = &d->jobs; *p;) {
        djob_t *j = *p;
        bool silent = atomic_load(&j->reassigned) || atomic_load(&j->lease_lost);
        if (j->final_sent || (atomic_load(&j->finished) && (!j->final[0] || silent))) {
            *p = j->next;
            pthread_mutex_unlock(&d->mu);
            free_job(j);
            pthread_mutex_lock(&d->mu);
        } else {
            p = &j->next;
        }
    }
    pthread_mutex_unlock(&d->mu);
}

/* Parts with a lease: stopped (checkpointed, no final report) once the control plane has
 * not answered for lease_ms, before it may hand their shards to another host. */
static void check_leases(daemon_t *d)
{
    int64_t now = lm_time_boot_ms();
    pthread_mutex_lock(&d->mu);
    for (djob_t *j = d->jobs; j; j = j->next) {
        int64_t last = atomic_load(&j->lease_ok_ms);
        if (!j->lease_ms || atomic_load(&j->finished) || atomic_load(&j->reassigned) ||
            !lm_daemon_lease_expired(last, j->lease_ms, now) || atomic_load(&j->lease_lost))
            continue;
        atomic_store(&j->lease_lost, true);
        atomic_store(&j->stop, true);
        lm_status_event(&j->st, "lease_lost",
                        "no answer from the control plane for %lld s (leaseSeconds %lld): part "
                        "%s stops so that its shards can move to another host safely",
                        (long long)((now - last) / 1000), (long long)(j->lease_ms / 1000), j->id);
    }
    pthread_mutex_unlock(&d->mu);
}

static void *sender_main(void *arg)
{
    daemon_t *d = arg;
    backoff_t b;
    memset(&b, 0, sizeof b);
    int64_t next_heartbeat = 0, next_report = 0;
    while (!d->quit) {
        int64_t now = lm_time_mono_ms();
        if (!atomic_load(&d->revoked) && now >= b.next_ms) {
            pthread_mutex_lock(&d->mu);
            lm_identity_t id = d->id;
            char *ca = d->cfg.cp.ca_file ? strdup(d->cfg.cp.ca_file) : NULL;
            int64_t hb_ms = d->cfg.heartbeat_ms;
            pthread_mutex_unlock(&d->mu);
            if (id.heartbeat_seconds > 0 && id.heartbeat_seconds * 1000 < hb_ms)
                hb_ms = id.heartbeat_seconds * 1000;
            if (now >= next_heartbeat) {
                send_heartbeat(d, &id, ca, &b);
                if (b.failures == 0)
                    next_heartbeat = now + hb_ms;
            }
            if (b.failures == 0 && now >= next_report) {
                send_reports(d, &id, ca, &b);
                next_report = now + REPORT_MS;
            }
            free(ca);
            lm_identity_clear(&id);
        }
        int64_t until = next_report < next_heartbeat ? next_report : next_heartbeat;
        if (b.next_ms > until)
            until = b.next_ms;
        pthread_mutex_lock(&d->mu);
        int64_t wait = until - lm_time_mono_ms();
        if (!d->quit && wait > 0)
            lm_time_cond_wait_ms(&d->wake, &d->mu, wait > 1000 ? 1000 : wait);
        pthread_mutex_unlock(&d->mu);
        check_leases(d);
        drop_finished(d);
        pthread_mutex_lock(&d->mu);
        /* a job that just finished is reported at once */
        for (djob_t *j = d->jobs; j; j = j->next)
            if (atomic_load(&j->finished) && j->final[0] && !j->final_sent)
                next_report = 0;
        pthread_mutex_unlock(&d->mu);
    }
    return NULL;
}

/* ---- the main loop ---- */

static void stop_jobs(daemon_t *d)
{
    pthread_mutex_lock(&d->mu);
    for (djob_t *j = d->jobs; j; j = j->next)
        j->stop = 1;
    pthread_mutex_unlock(&d->mu);
}

static void poll_once(daemon_t *d, backoff_t *b)
{
    pthread_mutex_lock(&d->mu);
    lm_identity_t id = d->id;
    char *ca = d->cfg.cp.ca_file ? strdup(d->cfg.cp.ca_file) : NULL;
    int wait = (int)(d->cfg.poll_ms / 1000);
    pthread_mutex_unlock(&d->mu);
    if (id.poll_seconds > 0 && id.poll_seconds < wait)
        wait = (int)id.poll_seconds;
    lm_proto_assignments_t *m = calloc(1, sizeof *m);
    lm_error_t err;
    bool ok = m && lm_link_poll(&id, ca, d->o->wake, wait, d->acked, m, &err);
    if (!m)
        lm_error_set(&err, LM_ERR_INTERNAL, "out of memory");
    if (ok) {
        for (size_t i = 0; i < m->n_jobs; i++)
            take_job(d, &m->jobs[i]);
        for (size_t i = 0; i < m->n_commands; i++) {
            take_command(d, &m->commands[i]); /* idempotent: a command may come twice */
            if (m->commands[i].seq > d->acked)
                d->acked = m->commands[i].seq;
        }
    }
    if (ok || err.code != LM_ERR_CANCELLED)
        after_call(d, b, ok, &err, "asking the control plane for work");
    if (m) {
        lm_proto_assignments_cleanup(m);
        free(m);
    }
    free(ca);
    lm_identity_clear(&id);
}

int lm_daemon_run(const lm_daemon_opts_t *o)
{
    daemon_t d;
    lm_error_t err;
    memset(&d, 0, sizeof d);
    d.o = o;
    d.started_ms = lm_time_mono_ms();
    if (!lm_agent_config_load(o->config_path, &d.cfg, &err)) {
        fprintf(stderr, "livemig-agent: %s\n", err.message);
        lm_agent_config_cleanup(&d.cfg);
        return LM_EXIT_USAGE;
    }
    apply_logging(&d.cfg);
    snprintf(d.state_dir, sizeof d.state_dir, "%s", d.cfg.state_dir);
    pthread_mutex_init(&d.mu, NULL);
    pthread_cond_init(&d.wake, NULL);
    int code = LM_EXIT_OK;
    pthread_t sender;
    bool sending = false;
    if (!lm_http_global_init(&err) || !ensure_linked(&d, &err)) {
        /* not linked, a damaged or revoked token, the wrong CA: the operator has to act, so
         * a usage code (systemd does not restart on it: RestartPreventExitStatus=2) */
        lm_log_error(NULL, "%s", err.message);
        code = LM_EXIT_USAGE;
        goto out;
    }
    lm_log_info(NULL, "livemig-agent %s: agent %s on %s, control plane %s; state in %s", LM_VERSION,
                d.id.agent_id, d.id.hostname, d.id.url, d.cfg.state_dir);
    sending = pthread_create(&sender, NULL, sender_main, &d) == 0;
    if (!sending) {
        lm_log_error(NULL, "cannot start the sender thread");
        code = LM_EXIT_FAILED;
        goto out;
    }
    backoff_t b;
    memset(&b, 0, sizeof b);
    bool stopped_for_revocation = false;
    while (!*o->stop) {
        *o->wake = 0;
        if (*o->reload) {
            *o->reload = 0;
            reload(&d);
        }
        if (atomic_load(&d.revoked)) {
            if (!stopped_for_revocation)
                stop_jobs(&d);
            stopped_for_revocation = true;
            lm_time_sleep_ms(1000, o->wake);
            continue;
        }
        stopped_for_revocation = false;
        check_leases(&d);
        int64_t wait = b.next_ms - lm_time_mono_ms();
        if (wait > 0) {
            lm_time_sleep_ms(wait, o->wake);
            continue;
        }
        poll_once(&d, &b);
    }
    lm_log_info(NULL, "stopping: jobs checkpoint first");
    stop_jobs(&d);
out:
    pthread_mutex_lock(&d.mu);
    djob_t *jobs = d.jobs;
    d.jobs = NULL;
    pthread_mutex_unlock(&d.mu);
    for (djob_t *j = jobs; j; j = j->next)
        if (j->started)
            pthread_join(j->thread, NULL), j->started = false;
    d.quit = 1;
    pthread_mutex_lock(&d.mu);
    pthread_cond_broadcast(&d.wake);
    pthread_mutex_unlock(&d.mu);
    if (sending)
        pthread_join(sender, NULL);
    while (jobs) {
        djob_t *next = jobs->next;
        free_job(jobs);
        jobs = next;
    }
    lm_identity_clear(&d.id);
    lm_agent_config_cleanup(&d.cfg);
    pthread_cond_destroy(&d.wake);
    pthread_mutex_destroy(&d.mu);
    lm_http_global_cleanup();
    lm_log_info(NULL, "stopped");
    return code;
}
