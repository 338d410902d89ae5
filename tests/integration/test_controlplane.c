/* livemig-controlplane over real HTTPS (a throwaway CA), driven only through the `livemig`
 * CLI and raw HTTPS requests; a scripted agent built on proto/ registers, heartbeats, polls
 * and reports, so that status, lag, cutover and the cutover window are exercised. */
#define _GNU_SOURCE /* strcasestr */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lm_encode.h"
#include "lm_http.h"
#include "lm_json.h"
#include "lm_link.h"
#include "lm_proto.h"
#include "lm_test_cp.h"
#include "lm_test_https.h"
#include "lm_test_proc.h"
#include "lm_test_util.h"
#include "lm_time.h"

static char dir[512], keyfile[700];
static char pub[80];
static lm_test_cp_t cp;
static pid_t daemon_pid;

static void setup(void)
{
    daemon_pid = 0;
    lm_test_mkdtemp(dir, sizeof dir);
    lm_test_cp_init(&cp, dir, "cutover_window: 120h\nextend_by: 24h\n");
}

static void teardown(void)
{
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGKILL);
        lm_test_wait(daemon_pid, 5000);
    }
    lm_test_cp_kill(&cp);
    lm_test_rmtree(dir);
}

TestSuite(controlplane, .init = setup, .fini = teardown, .timeout = 120);

#define CLI(out, ...) lm_test_cp_cli(&cp, pub, keyfile, out, __VA_ARGS__)

/* Raw HTTPS to the control plane; returns the status, body into *body (caller frees). */
static long https(const char *method, const char *path, const char *auth, const char *agent,
                  const char *body, char **out)
{
    char full[512], h1[600], h2[200];
    snprintf(full, sizeof full, "%s%s", cp.url, path);
    const char *headers[4] = {NULL};
    int n = 0;
    if (auth) {
        snprintf(h1, sizeof h1, "Authorization: %s", auth);
        headers[n++] = h1;
    }
    if (agent) {
        snprintf(h2, sizeof h2, "X-Livemig-Agent: %s", agent);
        headers[n++] = h2;
    }
    char ca[600];
    snprintf(ca, sizeof ca, "%s/ca.pem", cp.certs);
    lm_http_opts_t o = {.ca_file = ca, .total_timeout_ms = 30000};
    lm_http_response_t r;
    lm_error_t err;
    cr_assert(lm_http_request(&o, method, full, headers, body, body ? strlen(body) : 0, &r, &err),
              "%s %s: %s", method, path, err.message);
    long status = r.status;
    if (out)
        *out = strdup(r.body ? r.body : "");
    lm_http_response_cleanup(&r);
    return status;
}

/* A 0600 file holding the source password 's3cret-src'. */
static const char *src_pw_file(void)
{
    static char path[700];
    lm_test_write(dir, "src.pw", "s3cret-src\n", path, sizeof path);
    chmod(path, 0600);
    return path;
}

/* ---- the scripted agent ----
 * It enrolls with the link-token and then calls as itself ("Bearer agentId:agentSecret").
 * It reads the register answer leniently: against a control plane from before agents had
 * credentials of their own (no agentSecret) it calls with the link-token and the
 * X-Livemig-Agent header as agents did then, so that the attack tests below can be run
 * against an older control plane (LM_CP_BIN=...) and fail at the attack, not at linking. */

typedef struct {
    char enroll[200]; /* "Bearer tokenId:secret": the link-token */
    char bearer[200]; /* what it calls with: its own credential */
    char id[80];
    char host[80];
    int64_t ack; /* the highest command seq polled: acknowledged by the next poll */
} agent_t;

static char link_token[4096]; /* the organization's, made by prepare() */

/* "Bearer tokenId:secret" of a link-token. */
static void token_bearer(const char *token, char *buf, size_t size)
{
    lm_proto_link_token_t t;
    lm_error_t err;
    cr_assert(lm_proto_link_token_decode(token, strlen(token), &t, &err), "%s", err.message);
    cr_assert_eq(strlen(t.ca_pin), 64);
    snprintf(buf, size, "Bearer %s:%s", t.token_id, t.secret);
    lm_proto_link_token_clear(&t);
}

/* POST /register with the link-token as host; the status, the answer into *resp. */
static long register_as(const char *token, const char *host, char **resp)
{
    char bearer[200], body[300];
    token_bearer(token, bearer, sizeof bearer);
    snprintf(body, sizeof body,
             "{\"v\":1,\"hostname\":\"%s\",\"agentVersion\":\"0.1.0\",\"os\":\"Linux\"}", host);
    return https("POST", "/api/agent/v1/register", bearer, NULL, body, resp);
}

static void agent_link(agent_t *a, const char *token, const char *host)
{
    lm_error_t err;
    memset(a, 0, sizeof *a);
    token_bearer(token, a->enroll, sizeof a->enroll);
    snprintf(a->host, sizeof a->host, "%s", host);
    char *resp;
    long st = register_as(token, host, &resp);
    cr_assert_eq(st, 200, "%s", resp);
    lm_json_val_t *v = lm_json_parse(resp, strlen(resp), 0, 0, &err);
    cr_assert_not_null(v, "%s", err.message);
    const char *id = lm_json_string(lm_json_get(v, "agentId"));
    const char *secret = lm_json_string(lm_json_get(v, "agentSecret"));
    cr_assert_not_null(id, "%s", resp);
    snprintf(a->id, sizeof a->id, "%s", id);
    if (secret) {
        cr_assert_eq(strlen(secret), 64, "a 256-bit secret in hex: %s", resp);
        snprintf(a->bearer, sizeof a->bearer, "Bearer %s:%s", id, secret);
        lm_proto_register_resp_t rs;
        cr_assert(lm_proto_register_resp_decode(resp, strlen(resp), &rs, &err), "%s", err.message);
        cr_assert_eq(rs.heartbeat_seconds, 1);
        lm_proto_register_resp_clear(&rs);
    } else {
        snprintf(a->bearer, sizeof a->bearer, "%s", a->enroll); /* an older control plane */
    }
    lm_json_free(v);
    free(resp);
}

static long agent_heartbeat(agent_t *a, char **resp)
{
    lm_proto_heartbeat_t hb = {.uptime_seconds = 5, .state_dir_free_bytes = 1 << 30};
    snprintf(hb.agent_id, sizeof hb.agent_id, "%s", a->id);
    snprintf(hb.hostname, sizeof hb.hostname, "%s", a->host);
    snprintf(hb.agent_version, sizeof hb.agent_version, "0.1.0");
    lm_strbuf_t b;
    lm_error_t err;
    lm_strbuf_init(&b, 1u << 16);
    cr_assert(lm_proto_heartbeat_encode(&hb, &b, &err));
    long st = https("POST", "/api/agent/v1/heartbeat", a->bearer, a->id, lm_strbuf_str(&b), resp);
    lm_strbuf_cleanup(&b);
    return st;
}

/* GET /assignments as a (wait seconds, acknowledging a->ack): the status, the answer into
 * *resp. */
static long agent_poll_raw(agent_t *a, int wait, char **resp)
{
    char path[100];
    snprintf(path, sizeof path, "/api/agent/v1/assignments?wait=%d&ack=%lld", wait,
             (long long)a->ack);
    return https("GET", path, a->bearer, a->id, NULL, resp);
}

/* Polls once (wait seconds); decodes into m (heap; caller cleans up and frees). */
static lm_proto_assignments_t *agent_poll(agent_t *a, int wait)
{
    char *resp;
    long st = agent_poll_raw(a, wait, &resp);
    cr_assert_eq(st, 200, "%s", resp);
    lm_proto_assignments_t *m = calloc(1, sizeof *m);
    lm_error_t err;
    cr_assert(lm_proto_assignments_decode(resp, strlen(resp), m, &err), "%s: %s", err.message,
              resp);
    for (size_t i = 0; i < m->n_commands; i++)
        if (m->commands[i].seq > a->ack)
            a->ack = m->commands[i].seq;
    free(resp);
    return m;
}

/* The scripted agent sends a status report with credential `bearer`: the status, the
 * answer into *resp. */
static long post_report_as(agent_t *a, const char *bearer, const lm_proto_status_t *s, char **resp)
{
    lm_strbuf_t b;
    lm_error_t err;
    lm_strbuf_init(&b, 1u << 16);
    cr_assert(lm_proto_status_encode(s, &b, &err), "%s", err.message);
    long st = https("POST", "/api/agent/v1/status", bearer, a->id, lm_strbuf_str(&b), resp);
    lm_strbuf_cleanup(&b);
    return st;
}

/* The scripted agent sends a status report; the control plane must take it. */
static void post_report(agent_t *a, const lm_proto_status_t *s)
{
    char *resp;
    long st = post_report_as(a, a->bearer, s, &resp);
    cr_assert_eq(st, 200, "%s", resp);
    free(resp);
}

/* A migration's status report from a (agentId a->id) for job. */
static void migration_report(lm_proto_status_t *s, const agent_t *a, const char *job,
                             const char *state, bool ready, double lag)
{
    memset(s, 0, sizeof *s);
    snprintf(s->agent_id, sizeof s->agent_id, "%s", a->id);
    snprintf(s->job_id, sizeof s->job_id, "%s", job);
    s->kind = LM_PROTO_JOB_MIGRATION;
    snprintf(s->phase, sizeof s->phase, "%s", strcmp(state, "RUNNING") ? "COMPLETE" : "STREAMING");
    snprintf(s->state, sizeof s->state, "%s", state);
    s->has_lag = true;
    s->lag_seconds = lag;
    s->ready_for_cutover = ready;
}

static void agent_report(agent_t *a, const char *job, const char *state, bool ready, double lag)
{
    lm_proto_status_t s;
    migration_report(&s, a, job, state, ready, lag);
    post_report(a, &s);
}

/* An org with a project, two registered clusters and a linked agent; returns the project id
 * (into proj) and the live migration's id (into mig). */
static void prepare(char *proj, size_t psz, agent_t *a, char *mig, size_t msz)
{
    char *out;
    lm_test_cp_bootstrap(&cp, "org1", pub, sizeof pub, keyfile, sizeof keyfile);
    lm_test_cp_start(&cp);
    cr_assert_eq(CLI(&out, "projects create shop --orgId org1 -o json"), 0, "%s", out);
    lm_test_json_field(out, "id", proj, psz);
    free(out);
    char pw[700];
    snprintf(pw, sizeof pw, "%s/dst.pw", dir);
    cr_assert_eq(lm_test_sh("printf 'target-secret' > '%s' && chmod 600 '%s'", pw, pw), 0);
    cr_assert_eq(CLI(&out,
                     "clusters add src --projectId %s --connectionString "
                     "'mongodb://127.0.0.1:1/?replicaSet=rs0'",
                     proj),
                 0, "%s", out);
    free(out);
    cr_assert_eq(CLI(&out,
                     "clusters add dst --projectId %s --connectionString "
                     "'mongodb://127.0.0.1:2/' --username admin --passwordFile '%s' --tls",
                     proj, pw),
                 0, "%s", out);
    free(out);
    cr_assert_eq(CLI(&out, "lm link create --orgId org1 --accessListIp 127.0.0.1"), 0, "%s", out);
    snprintf(link_token, sizeof link_token, "%s", out);
    link_token[strcspn(link_token, "\n")] = '\0';
    free(out);
    agent_link(a, link_token, "mig-host-1");
    if (mig) {
        cr_assert_eq(CLI(&out,
                         "lm create --projectId %s --clusterName dst --migrationHost "
                         "mig-host-1 --sourceClusterName src --sourceProjectId %s "
                         "--sourceUsername reader --sourcePasswordFile '%s' -o json",
                         proj, proj, src_pw_file()),
                     0, "%s", out);
        lm_test_json_field(out, "_id", mig, msz);
        cr_assert(strstr(out, "\"NEW\""), "%s", out);
        cr_assert_not(strstr(out, "s3cret-src"), "the password came back: %s", out);
        free(out);
    }
}

Test(controlplane, a_migration_from_link_to_cutover)
{
    char proj[80], mig[80], *out;
    agent_t a;
    prepare(proj, sizeof proj, &a, mig, sizeof mig);
    char *resp;
    cr_assert_eq(agent_heartbeat(&a, &resp), 200, "%s", resp);
    free(resp);

    /* the job reaches the agent with the credentials it needs */
    lm_proto_assignments_t *m = agent_poll(&a, 2);
    cr_assert_eq(m->n_jobs, 1);
    cr_assert_str_eq(m->jobs[0].job_id, mig);
    cr_assert_str_eq(m->jobs[0].source.password, "s3cret-src");
    cr_assert_str_eq(m->jobs[0].source.username, "reader");
    cr_assert_str_eq(m->jobs[0].target.password, "target-secret");
    cr_assert(m->jobs[0].target.tls);
    lm_proto_assignments_cleanup(m);
    free(m);

    /* not ready: cutover is refused */
    agent_report(&a, mig, "RUNNING", false, 42.4);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "\"WORKING\"") && strstr(out, "\"lagTimeSeconds\": 42"), "%s", out);
    free(out);
    /* the text form names both ends and the optime gap the agent reported */
    lm_proto_status_t gs;
    migration_report(&gs, &a, mig, "RUNNING", false, 42.4);
    gs.optime_gap_seconds = 3.5;
    gs.estimated_cutover_seconds = 12.5;
    post_report(&a, &gs);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", mig, proj), 0, "%s", out);
    char want_src[160], want_dst[160];
    snprintf(want_src, sizeof want_src, "source:           src (project %s)\n", proj);
    snprintf(want_dst, sizeof want_dst, "destination:      dst (project %s)\n", proj);
    cr_assert(strstr(out, want_src) && strstr(out, want_dst) &&
                  strstr(out, "optimeGapSeconds: 3.5\n") &&
                  strstr(out, "estimatedCutover: 12.5 (how long a cutover now would take"),
              "%s", out);
    free(out);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "\"estimatedCutoverSeconds\": 12.5"), "%s", out);
    free(out);
    cr_assert_neq(CLI(&out, "lm cutover %s --projectId %s --force", mig, proj), 0);
    cr_assert(strstr(out, "not ready for cutover"), "%s", out);
    free(out);

    /* ready: the window opens; cutover goes to the agent as a command */
    agent_report(&a, mig, "RUNNING", true, 1.0);
    cr_assert_eq(CLI(&out, "lm list --projectId %s", proj), 0, "%s", out);
    cr_assert(strstr(out, mig) && strstr(out, "true"), "%s", out);
    free(out);
    cr_assert_eq(CLI(&out, "lm cutover %s --projectId %s --force", mig, proj), 0, "%s", out);
    free(out);
    m = agent_poll(&a, 2);
    cr_assert_eq(m->n_commands, 1);
    cr_assert_eq(m->commands[0].kind, LM_PROTO_CMD_CUTOVER);
    cr_assert_str_eq(m->commands[0].job_id, mig);
    int64_t seq = m->commands[0].seq;
    cr_assert_gt(seq, 0);
    lm_proto_assignments_cleanup(m);
    free(m);
    /* an agent that died before reading that answer acknowledged nothing: it comes again */
    a.ack = 0;
    m = agent_poll(&a, 2);
    cr_assert_eq(m->n_commands, 1, "an unacknowledged command was not sent again");
    cr_assert_eq(m->commands[0].seq, seq);
    lm_proto_assignments_cleanup(m);
    free(m);
    m = agent_poll(&a, 1); /* acknowledges seq: nothing more */
    cr_assert_eq(m->n_commands, 0);
    lm_proto_assignments_cleanup(m);
    free(m);
    agent_report(&a, mig, "COMPLETE", true, 0);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "COMPLETE"), "%s", out);
    free(out);
    /* the log never shows a secret */
    char *log = lm_test_slurp(cp.log);
    cr_assert_not(strstr(log, "s3cret-src") || strstr(log, "target-secret"), "%s", log);
    free(log);
}

/* The scripted agent reports a validation as finished with these checks. */
static void report_validation(agent_t *a, const char *vid, lm_proto_check_t *checks, size_t n)
{
    lm_proto_status_t s;
    memset(&s, 0, sizeof s);
    snprintf(s.agent_id, sizeof s.agent_id, "%s", a->id);
    snprintf(s.job_id, sizeof s.job_id, "%s", vid);
    s.kind = LM_PROTO_JOB_VALIDATION;
    snprintf(s.phase, sizeof s.phase, "VALIDATING");
    snprintf(s.state, sizeof s.state, "COMPLETE");
    s.checks = checks;
    s.n_checks = n;
    post_report(a, &s);
}

/* `livemig lm validation create` from src to dst for mig-host-1; its id into vid; the
 * CLI's answer is returned (caller frees). */
static char *create_validation(const char *proj, char *vid, size_t size)
{
    char *out;
    cr_assert_eq(CLI(&out,
                     "lm validation create --projectId %s --clusterName dst "
                     "--migrationHost mig-host-1 --sourceClusterName src --sourceProjectId "
                     "%s -o json",
                     proj, proj),
                 0, "%s", out);
    lm_test_json_field(out, "_id", vid, size);
    return out;
}

Test(controlplane, a_validation_reports_its_checks)
{
    char proj[80], *out, vid[80];
    agent_t a;
    prepare(proj, sizeof proj, &a, NULL, 0);
    out = create_validation(proj, vid, sizeof vid);
    cr_assert(strstr(out, "\"PENDING\"") && strstr(out, "sourceGroupId"), "%s", out);
    free(out);
    lm_proto_assignments_t *m = agent_poll(&a, 2);
    cr_assert_eq(m->n_jobs, 1);
    cr_assert_eq(m->jobs[0].kind, LM_PROTO_JOB_VALIDATION);
    lm_proto_assignments_cleanup(m);
    free(m);
    /* the agent's report: one check fails */
    lm_proto_check_t checks[2] = {
        {.name = "source-replica-set", .result = LM_PROTO_CHECK_PASS, .message = "replica set rs0"},
        {.name = "target-free-disk",
         .result = LM_PROTO_CHECK_FAIL,
         .message = "the target needs 40 GB more: grow its disk"}};
    report_validation(&a, vid, checks, 2);
    cr_assert_eq(CLI(&out, "lm validation describe %s --projectId %s", vid, proj), 0, "%s", out);
    cr_assert(strstr(out, "target-free-disk") && strstr(out, "FAIL") && strstr(out, "FAILED") &&
                  strstr(out, "grow its disk"),
              "%s", out);
    cr_assert(strstr(out, "target-in-use") && strstr(out, "PASS"), "%s", out);
    free(out);
}

Test(controlplane, a_validation_fails_while_a_migration_runs_to_its_target)
{
    char proj[80], mig[80], *out, vid[80];
    agent_t a;
    prepare(proj, sizeof proj, &a, mig, sizeof mig); /* a migration to dst, not finished */
    out = create_validation(proj, vid, sizeof vid);
    free(out);
    lm_proto_check_t checks[1] = {{.name = "source-replica-set",
                                   .result = LM_PROTO_CHECK_PASS,
                                   .message = "replica set rs0"}};
    report_validation(&a, vid, checks, 1);
    cr_assert_eq(CLI(&out, "lm validation describe %s --projectId %s", vid, proj), 0, "%s", out);
    cr_assert(strstr(out, "FAILED") && strstr(out, "target-in-use") && strstr(out, mig), "%s", out);
    free(out);
}

Test(controlplane, the_profile_file_and_every_read_endpoint)
{
    char proj[80], mig[80], *out;
    agent_t a;
    prepare(proj, sizeof proj, &a, mig, sizeof mig);
    /* a profile in $HOME/.config/livemig/config.yaml instead of flags */
    char cfgdir[700], profile[1500], log[700];
    snprintf(cfgdir, sizeof cfgdir, "%s/home/.config/livemig", dir);
    cr_assert_eq(lm_test_sh("mkdir -p '%s'", cfgdir), 0);
    snprintf(profile, sizeof profile,
             "url: %s\nca_file: %s/ca.pem\npublic_key: %s\nprivate_key_file: %s\n"
             "org_id: org1\nproject_id: %s\n",
             cp.url, cp.certs, pub, keyfile, proj);
    char path[800];
    lm_test_write(cfgdir, "config.yaml", profile, path, sizeof path);
    snprintf(log, sizeof log, "%s/profile.out", dir);
#define PROFILE_CLI(args)                                                                          \
    lm_test_sh("HOME='%s/home' '%s' " args " > '%s' 2>&1 < /dev/null", dir, LM_CLI_BIN, log)
    cr_assert_eq(PROFILE_CLI("lm availableProjects"), 0, "%s", lm_test_slurp(log));
    out = lm_test_slurp(log);
    cr_assert(strstr(out, proj) && strstr(out, "shop"), "%s", out);
    free(out);
    cr_assert_eq(PROFILE_CLI("projects list -o json"), 0, "%s", lm_test_slurp(log));
    out = lm_test_slurp(log);
    cr_assert(strstr(out, "\"totalCount\": 1"), "%s", out);
    free(out);
    cr_assert_eq(PROFILE_CLI("clusters list"), 0, "%s", lm_test_slurp(log));
    out = lm_test_slurp(log);
    cr_assert(strstr(out, "src") && strstr(out, "dst") && strstr(out, "admin"), "%s", out);
    cr_assert_not(strstr(out, "target-secret"), "a password came back: %s", out);
    free(out);
    /* progress: the agent's last report; then cancel, which the agent hears about */
    lm_proto_assignments_t *m = agent_poll(&a, 1);
    lm_proto_assignments_cleanup(m);
    free(m);
    agent_report(&a, mig, "RUNNING", false, 3);
    char *body, ppath[200], auth[300], cred[200], *key = lm_test_slurp(keyfile);
    key[strcspn(key, "\n")] = '\0';
    snprintf(cred, sizeof cred, "%s:%s", pub, key);
    free(key);
    cr_assert_eq(lm_test_sh("printf '%%s' '%s' | base64 -w0 > '%s/b64'", cred, dir), 0);
    snprintf(ppath, sizeof ppath, "%s/b64", dir);
    char *b64 = lm_test_slurp(ppath);
    snprintf(auth, sizeof auth, "Basic %s", b64);
    free(b64);
    snprintf(ppath, sizeof ppath, "/api/atlas/v2/groups/%s/liveMigrations/%s/progress", proj, mig);
    cr_assert_eq(https("GET", ppath, auth, NULL, NULL, &body), 200, "%s", body);
    cr_assert(strstr(body, "\"phase\":\"STREAMING\""), "%s", body);
    free(body);
    cr_assert_eq(lm_test_sh("HOME='%s/home' '%s' lm cancel %s --force > '%s' 2>&1 < /dev/null", dir,
                            LM_CLI_BIN, mig, log),
                 0, "%s", lm_test_slurp(log));
    m = agent_poll(&a, 2);
    cr_assert_eq(m->n_commands, 1);
    cr_assert_eq(m->commands[0].kind, LM_PROTO_CMD_CANCEL);
    lm_proto_assignments_cleanup(m);
    free(m);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "CANCELLED"), "%s", out);
    free(out);
#undef PROFILE_CLI
}

Test(controlplane, auth_failures)
{
    char proj[80], *out, *body;
    agent_t a;
    prepare(proj, sizeof proj, &a, NULL, 0);
    char path[200];
    snprintf(path, sizeof path, "/api/atlas/v2/groups/%s/liveMigrations", proj);
    /* no key */
    cr_assert_eq(https("GET", path, NULL, NULL, NULL, &body), 401);
    cr_assert(strstr(body, "\"errorCode\":\"NOT_AUTHENTICATED\"") && strstr(body, "\"reason\""),
              "%s", body);
    free(body);
    /* a wrong secret */
    char wrong[700];
    snprintf(wrong, sizeof wrong, "%s/wrong.key", dir);
    cr_assert_eq(lm_test_sh("echo nope > '%s' && chmod 600 '%s'", wrong, wrong), 0);
    cr_assert_neq(lm_test_cp_cli(&cp, pub, wrong, &out, "lm list --projectId %s", proj), 0);
    cr_assert(strstr(out, "401"), "%s", out);
    free(out);
    /* a member reads but cannot write */
    cr_assert_eq(CLI(&out, "apikeys create --orgId org1 --role ORG_MEMBER -o json"), 0, "%s", out);
    char mpub[80], mpriv[80], mfile[700];
    lm_test_json_field(out, "publicKey", mpub, sizeof mpub);
    lm_test_json_field(out, "privateKey", mpriv, sizeof mpriv);
    free(out);
    snprintf(mfile, sizeof mfile, "%s/member.key", dir);
    cr_assert_eq(lm_test_sh("echo %s > '%s' && chmod 600 '%s'", mpriv, mfile, mfile), 0);
    cr_assert_eq(lm_test_cp_cli(&cp, mpub, mfile, &out, "lm list --projectId %s", proj), 0, "%s",
                 out);
    free(out);
    cr_assert_neq(lm_test_cp_cli(&cp, mpub, mfile, &out,
                                 "clusters add x --projectId %s --connectionString "
                                 "mongodb://h/",
                                 proj),
                  0);
    cr_assert(strstr(out, "403") && strstr(out, "Organization Member"), "%s", out);
    free(out);
    /* a key of another organization sees nothing of this one */
    char pub2[80], file2[700];
    lm_test_cp_bootstrap(&cp, "org2", pub2, sizeof pub2, file2, sizeof file2);
    cr_assert_neq(lm_test_cp_cli(&cp, pub2, file2, &out, "lm list --projectId %s", proj), 0);
    cr_assert(strstr(out, "404"), "%s", out);
    free(out);
    cr_assert_neq(lm_test_cp_cli(&cp, pub2, file2, &out, "lm link delete --orgId org1 --force"), 0);
    cr_assert(strstr(out, "403"), "%s", out);
    free(out);
    /* a private key file others can read is refused before anything is sent */
    cr_assert_eq(lm_test_sh("chmod 644 '%s'", mfile), 0);
    cr_assert_neq(lm_test_cp_cli(&cp, mpub, mfile, &out, "lm list --projectId %s", proj), 0);
    cr_assert(strstr(out, "chmod 600"), "%s", out);
    free(out);
}

/* A new API key of org1 (role, extra CLI flags): its public part into kpub, its private
 * part into a 0600 file kfile. */
static void new_key(const char *role, const char *extra, char *kpub, size_t psz, char *kfile,
                    size_t fsz)
{
    char *out, kpriv[80];
    static int n;
    cr_assert_eq(CLI(&out, "apikeys create --orgId org1 --role %s %s -o json", role, extra), 0,
                 "%s", out);
    lm_test_json_field(out, "publicKey", kpub, psz);
    lm_test_json_field(out, "privateKey", kpriv, sizeof kpriv);
    free(out);
    snprintf(kfile, fsz, "%s/key%d", dir, ++n);
    cr_assert_eq(lm_test_sh("umask 077 && echo %s > '%s'", kpriv, kfile), 0);
}

/* The attacks: a deleted key, an expired key, a member deleting a key; all are
 * refused. The list shows public parts and times, never a secret or its hash. Every
 * state-changing admin call leaves an audit line with the key that asked. */
Test(controlplane, api_keys_are_listed_expire_and_are_deleted)
{
    char proj[80], mig[80], *out, *body;
    agent_t a;
    prepare(proj, sizeof proj, &a, mig, sizeof mig);
    char opub[80], ofile[700], epub[80], efile[700], mpub[80], mfile[700];
    new_key("ORG_OWNER", "--desc doomed", opub, sizeof opub, ofile, sizeof ofile);
    new_key("ORG_MEMBER", "--expiresAfter 2s", epub, sizeof epub, efile, sizeof efile);
    new_key("ORG_MEMBER", "", mpub, sizeof mpub, mfile, sizeof mfile);
    /* the expiring key works until it expires */
    cr_assert_eq(lm_test_cp_cli(&cp, epub, efile, &out, "lm list --projectId %s", proj), 0, "%s",
                 out);
    free(out);
    /* the list: every key, its public part, roles, times; nothing secret */
    cr_assert_eq(CLI(&out, "apikeys list --orgId org1 -o json"), 0, "%s", out);
    cr_assert(strstr(out, pub) && strstr(out, opub) && strstr(out, epub) && strstr(out, mpub), "%s",
              out);
    cr_assert(strstr(out, "\"lastUsed\"") && strstr(out, "\"expires\"") &&
                  strstr(out, "\"created\"") && strstr(out, "doomed"),
              "%s", out);
    cr_assert_not(strstr(out, "privateKey") || strstr(out, "hash") || strstr(out, "salt"), "%s",
                  out);
    char *priv = lm_test_slurp(efile);
    priv[strcspn(priv, "\n")] = '\0';
    cr_assert_not(strstr(out, priv), "a private key is listed: %s", out);
    free(priv);
    free(out);
    /* a member may list keys (as in Atlas: public parts only) but not delete them */
    cr_assert_eq(lm_test_cp_cli(&cp, mpub, mfile, &out, "apikeys list --orgId org1"), 0, "%s", out);
    free(out);
    cr_assert_neq(
        lm_test_cp_cli(&cp, mpub, mfile, &out, "apikeys delete %s --orgId org1 --force", opub), 0);
    cr_assert(strstr(out, "403"), "%s", out);
    free(out);
    /* a deleted key is refused */
    cr_assert_eq(CLI(&out, "apikeys delete %s --orgId org1 --force", opub), 0, "%s", out);
    free(out);
    cr_assert_neq(lm_test_cp_cli(&cp, opub, ofile, &out, "lm list --projectId %s", proj), 0);
    cr_assert(strstr(out, "401"), "%s", out);
    free(out);
    cr_assert_neq(CLI(&out, "apikeys delete %s --orgId org1 --force", opub), 0);
    cr_assert(strstr(out, "404"), "%s", out);
    free(out);
    /* the expired key is refused (bounded wait past its 2 s) */
    int64_t until = lm_time_mono_ms() + 15000;
    int rc = 0;
    do {
        lm_time_sleep_ms(300, NULL);
        rc = lm_test_cp_cli(&cp, epub, efile, &out, "lm list --projectId %s", proj);
        if (rc == 0)
            free(out);
    } while (rc == 0 && lm_time_mono_ms() < until);
    cr_assert_neq(rc, 0, "the key did not expire");
    cr_assert(strstr(out, "401") && strstr(out, "expired"), "%s", out);
    free(out);
    char path[200];
    snprintf(path, sizeof path, "/api/atlas/v2/orgs/org1/apiKeys");
    cr_assert_eq(https("GET", path, NULL, NULL, NULL, &body), 401);
    free(body);
    /* the audit log: who (the key's public part), what (method, route, ids), the status */
    cr_assert_eq(CLI(&out, "lm cancel %s --projectId %s --force", mig, proj), 0, "%s", out);
    free(out);
    cr_assert_neq(
        lm_test_cp_cli(&cp, mpub, mfile, &out, "lm cutover %s --projectId %s --force", mig, proj),
        0);
    free(out);
    char *log = lm_test_slurp(cp.log), want[600];
    snprintf(want, sizeof want,
             "audit: key=%s method=POST route=/api/atlas/v2/groups/{groupId}/liveMigrations/{id}/"
             "cancel path=/api/atlas/v2/groups/%s/liveMigrations/%s/cancel status=202",
             pub, proj, mig);
    cr_assert(strstr(log, want), "no '%s' in:\n%s", want, log);
    snprintf(want, sizeof want, "audit: key=%s method=PUT route=", mpub);
    cr_assert(strstr(log, want) && strstr(log, "status=403"), "no refused cutover in:\n%s", log);
    snprintf(want, sizeof want,
             "audit: key=%s method=DELETE route=/api/atlas/v2/orgs/{orgId}/"
             "apiKeys/{id} path=/api/atlas/v2/orgs/org1/apiKeys/%s status=204",
             pub, opub);
    cr_assert(strstr(log, want), "no '%s' in:\n%s", want, log);
    free(log);
}

Test(controlplane, deleting_the_link_token_revokes_its_agents)
{
    char proj[80], *out, *resp;
    agent_t a;
    prepare(proj, sizeof proj, &a, NULL, 0);
    cr_assert_eq(agent_heartbeat(&a, &resp), 200, "%s", resp);
    free(resp);
    cr_assert_neq(CLI(&out, "lm link create --orgId org1"), 0, "a second token while one lives");
    cr_assert(strstr(out, "409"), "%s", out);
    free(out);
    cr_assert_eq(CLI(&out, "lm link delete --orgId org1 --force"), 0, "%s", out);
    free(out);
    cr_assert_eq(agent_heartbeat(&a, &resp), 401);
    cr_assert(strstr(resp, "LINK_TOKEN_REVOKED"), "%s", resp);
    free(resp);
    /* a new token can be made, and an agent outside its access list is refused */
    cr_assert_eq(CLI(&out, "lm link create --orgId org1 --accessListIp 10.9.8.7"), 0, "%s", out);
    out[strcspn(out, "\n")] = '\0';
    lm_proto_link_token_t t;
    lm_error_t err;
    cr_assert(lm_proto_link_token_decode(out, strlen(out), &t, &err), "%s", err.message);
    char bearer[200];
    snprintf(bearer, sizeof bearer, "Bearer %s:%s", t.token_id, t.secret);
    cr_assert_eq(https("POST", "/api/agent/v1/register", bearer, NULL,
                       "{\"v\":1,\"hostname\":\"h2\",\"agentVersion\":\"0.1.0\"}", &resp),
                 403);
    cr_assert(strstr(resp, "access list"), "%s", resp);
    free(resp);
    free(out);
    /* a long access list (over 4 KiB of JSON) is enforced as well */
    cr_assert_eq(CLI(&out, "lm link delete --orgId org1 --force"), 0, "%s", out);
    free(out);
    char args[11000] = "lm link create --orgId org1";
    for (int i = 0; i < 250; i++)
        snprintf(args + strlen(args), sizeof args - strlen(args),
                 " --accessListIp 2001:db8:aaaa:bbbb::%x", i + 1);
    cr_assert_eq(CLI(&out, "%s", args), 0, "%s", out);
    out[strcspn(out, "\n")] = '\0';
    cr_assert(lm_proto_link_token_decode(out, strlen(out), &t, &err), "%s", err.message);
    snprintf(bearer, sizeof bearer, "Bearer %s:%s", t.token_id, t.secret);
    cr_assert_eq(https("POST", "/api/agent/v1/register", bearer, NULL,
                       "{\"v\":1,\"hostname\":\"h3\",\"agentVersion\":\"0.1.0\"}", &resp),
                 403, "%s", resp);
    free(resp);
    free(out);
}

Test(controlplane, restart_loses_nothing)
{
    char proj[80], mig[80], *out;
    agent_t a;
    prepare(proj, sizeof proj, &a, mig, sizeof mig);
    lm_test_cp_stop(&cp);
    lm_test_cp_start(&cp);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "\"NEW\""), "%s", out);
    free(out);
    /* the stored password still decrypts, the agent's credential still works */
    lm_proto_assignments_t *m = agent_poll(&a, 2);
    cr_assert_eq(m->n_jobs, 1);
    cr_assert_str_eq(m->jobs[0].source.password, "s3cret-src");
    lm_proto_assignments_cleanup(m);
    free(m);
    /* and nothing in the database file is a password in clear */
    cr_assert_neq(lm_test_sh("grep -q s3cret-src '%s'/cp.db*", dir), 0);
}

Test(controlplane, the_cutover_window_expires)
{
    lm_test_cp_config(&cp, "cutover_window: 3s\nextend_by: 3s\n");
    char proj[80], mig[80], *out;
    agent_t a;
    prepare(proj, sizeof proj, &a, mig, sizeof mig);
    lm_proto_assignments_t *m = agent_poll(&a, 1);
    lm_proto_assignments_cleanup(m);
    free(m);
    cr_assert_neq(CLI(&out, "lm extend %s --projectId %s", mig, proj), 0);
    cr_assert(strstr(out, "no cutover window yet"), "%s", out);
    free(out);
    agent_report(&a, mig, "RUNNING", true, 0.5); /* the window opens: 3 s */
    int64_t opened = lm_time_mono_ms();
    cr_assert_eq(CLI(&out, "lm extend %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "cutoverWindowEndMs"), "%s", out); /* now 6 s */
    free(out);
    m = agent_poll(&a, 1);
    cr_assert_eq(m->n_commands, 1);
    cr_assert_eq(m->commands[0].kind, LM_PROTO_CMD_EXTEND);
    lm_proto_assignments_cleanup(m);
    free(m);
    lm_time_sleep_ms(4000 - (lm_time_mono_ms() - opened), NULL);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "WORKING"), "extended, so not expired at 4 s: %s", out);
    free(out);
    int64_t until = lm_time_mono_ms() + 15000;
    bool expired = false;
    while (!expired && lm_time_mono_ms() < until) {
        cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", mig, proj), 0, "%s", out);
        expired = strstr(out, "EXPIRED") != NULL;
        free(out);
        if (!expired)
            lm_time_sleep_ms(300, NULL);
    }
    cr_assert(expired, "the migration never expired");
    m = agent_poll(&a, 2);
    cr_assert_eq(m->n_commands, 1);
    cr_assert_eq(m->commands[0].kind, LM_PROTO_CMD_EXPIRE);
    lm_proto_assignments_cleanup(m);
    free(m);
    /* a late report does not bring it back, and cutover is refused */
    agent_report(&a, mig, "RUNNING", true, 0.5);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "EXPIRED"), "%s", out);
    free(out);
    cr_assert_neq(CLI(&out, "lm cutover %s --projectId %s --force", mig, proj), 0);
    cr_assert(strstr(out, "EXPIRED already"), "%s", out);
    free(out);
}

Test(controlplane, bad_requests_get_clear_errors_and_change_nothing)
{
    char proj[80], *body;
    agent_t a;
    prepare(proj, sizeof proj, &a, NULL, 0);
    char cred[200], auth[300];
    char *key = lm_test_slurp(keyfile);
    key[strcspn(key, "\n")] = '\0';
    snprintf(cred, sizeof cred, "%s:%s", pub, key);
    free(key);
    /* Basic auth by hand */
    char cmd[600], b64file[700];
    snprintf(b64file, sizeof b64file, "%s/b64", dir);
    snprintf(cmd, sizeof cmd, "printf '%%s' '%s' | base64 -w0 > '%s'", cred, b64file);
    cr_assert_eq(lm_test_sh("%s", cmd), 0);
    char *b64 = lm_test_slurp(b64file);
    snprintf(auth, sizeof auth, "Basic %s", b64);
    free(b64);
    char path[200];
    snprintf(path, sizeof path, "/api/atlas/v2/groups/%s/liveMigrations", proj);
    const char *bad[] = {"{",
                         "[]",
                         "{\"source\": 5}",
                         "{\"source\":{},\"destination\":{}}",
                         "{\"source\":{\"clusterName\":\"src\",\"groupId\":\"nope\"},"
                         "\"destination\":{\"clusterName\":\"dst\"},\"migrationHosts\":[\"x\"]}",
                         "{\"source\":{\"clusterName\":\"src\",\"groupId\":\"x\"},\"destination\":"
                         "{\"clusterName\":\"dst\"},\"migrationHosts\":[\"a\",\"b\"]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long st = https("POST", path, auth, NULL, bad[i], &body);
        cr_assert(st == 400 || st == 404, "%s -> %ld %s", bad[i], st, body);
        cr_assert(strstr(body, "\"detail\""), "%s", body);
        free(body);
    }
    /* verify must be a boolean */
    char verify_body[400];
    snprintf(verify_body, sizeof verify_body,
             "{\"source\":{\"clusterName\":\"src\",\"groupId\":\"%s\"},\"destination\":"
             "{\"clusterName\":\"dst\"},\"migrationHosts\":[\"mig-host-1\"],\"verify\":\"no\"}",
             proj);
    cr_assert_eq(https("POST", path, auth, NULL, verify_body, &body), 400, "%s", body);
    cr_assert(strstr(body, "field 'verify'"), "%s", body);
    free(body);
    /* a body over the cap */
    size_t n = 70 * 1024;
    char *huge = malloc(n + 1);
    memset(huge, 'x', n);
    huge[n] = '\0';
    cr_assert_eq(https("POST", path, auth, NULL, huge, &body), 413, "%s", body);
    free(body);
    free(huge);
    /* a migration host that is not linked */
    char good[600];
    snprintf(good, sizeof good,
             "{\"source\":{\"clusterName\":\"src\",\"groupId\":\"%s\"},\"destination\":"
             "{\"clusterName\":\"dst\"},\"migrationHosts\":[\"unknown-host\"]}",
             proj);
    cr_assert_eq(https("POST", path, auth, NULL, good, &body), 400);
    cr_assert(strstr(body, "no agent on host unknown-host"), "%s", body);
    free(body);
    /* nothing was written, and the server still answers */
    cr_assert_eq(https("GET", path, auth, NULL, NULL, &body), 200);
    cr_assert(strstr(body, "\"totalCount\":0"), "%s", body);
    free(body);
    /* malformed agent messages */
    cr_assert_eq(https("POST", "/api/agent/v1/status", a.bearer, a.id, "{\"v\":9}", &body), 400);
    cr_assert(strstr(body, "upgrade livemig"), "%s", body);
    free(body);
    cr_assert_eq(https("POST", "/api/agent/v1/heartbeat", a.bearer, a.id, "not json", &body), 400);
    free(body);
}

/* ---- the real agent's side of linking (issue 6, first part) ---- */

static int agent_link_cmd(const char *token_file, const char *state, const char *ca,
                          const char *extra, char **out)
{
    char log[700];
    snprintf(log, sizeof log, "%s/agent-link.out", dir);
    int rc = lm_test_sh("'%s' link --token-file '%s' --state-dir '%s' --ca-file '%s' %s > '%s' "
                        "2>&1",
                        LM_AGENT_BIN, token_file, state, ca, extra, log);
    *out = lm_test_slurp(log);
    return rc;
}

/* `livemig lm link create` for org into a 0600 token file. */
static void token_file_for(const char *pubkey, const char *file, const char *org, char *path,
                           size_t size)
{
    char *out;
    cr_assert_eq(lm_test_cp_cli(&cp, pubkey, file, &out, "lm link create --orgId %s", org), 0, "%s",
                 out);
    out[strcspn(out, "\n")] = '\0';
    lm_test_write(dir, org, out, path, size);
    chmod(path, 0600);
    free(out);
}

Test(controlplane, livemig_agent_links_with_the_token)
{
    char proj[80], *out, token[800], state[700], ca[700];
    lm_error_t err0;
    lm_test_cp_bootstrap(&cp, "org1", pub, sizeof pub, keyfile, sizeof keyfile);
    lm_test_cp_start(&cp);
    cr_assert_eq(CLI(&out, "projects create shop --orgId org1 -o json"), 0, "%s", out);
    lm_test_json_field(out, "id", proj, sizeof proj);
    free(out);
    snprintf(state, sizeof state, "%s/agent-state", dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", cp.certs);
    token_file_for(pub, keyfile, "org1", token, sizeof token);

    /* a damaged token, a token file others can read, the wrong CA: clear refusals */
    char bad[700];
    lm_test_write(dir, "bad.token", "lmlt1.not-really", bad, sizeof bad);
    chmod(bad, 0600);
    cr_assert_eq(agent_link_cmd(bad, state, ca, "", &out), 1, "%s", out);
    cr_assert(strstr(out, "damaged"), "%s", out);
    free(out);
    chmod(token, 0644);
    cr_assert_eq(agent_link_cmd(token, state, ca, "", &out), 1, "%s", out);
    cr_assert(strstr(out, "chmod 600"), "%s", out);
    free(out);
    chmod(token, 0600);
    char other[700], other_ca[800];
    snprintf(other, sizeof other, "%s/other-ca", dir);
    cr_assert_eq(lm_test_sh("'%s/scripts/mkcerts' '%s'", LM_SOURCE_DIR, other), 0);
    snprintf(other_ca, sizeof other_ca, "%s/ca.pem", other);
    cr_assert_eq(agent_link_cmd(token, state, other_ca, "", &out), 1, "%s", out);
    cr_assert(strstr(out, "is not the CA this link-token pins"), "%s", out);
    free(out);

    /* the daemon's configuration: checked, printed without the token */
    char *tok = lm_test_slurp(token), yaml[6000], cfgpath[800], log[800];
    tok[strcspn(tok, "\n")] = '\0';
    snprintf(yaml, sizeof yaml,
             "control_plane:\n  link_token: \"%s\"\n  ca_file: %s\nstate_dir: %s\n"
             "hostname: agent-host-1\nlimits:\n  apply_workers: 4\n",
             tok, ca, state);
    lm_test_write(dir, "agent.yaml", yaml, cfgpath, sizeof cfgpath);
    snprintf(log, sizeof log, "%s/agent-config.out", dir);
    cr_assert_eq(
        lm_test_sh("'%s' --config '%s' --check-config > '%s' 2>&1", LM_AGENT_BIN, cfgpath, log), 0,
        "%s", lm_test_slurp(log));
    cr_assert_eq(
        lm_test_sh("'%s' --config '%s' --print-config > '%s' 2>&1", LM_AGENT_BIN, cfgpath, log), 0,
        "%s", lm_test_slurp(log));
    out = lm_test_slurp(log);
    cr_assert(strstr(out, "apply_workers: 4") && strstr(out, "<redacted>"), "%s", out);
    cr_assert_not(strstr(out, tok), "the link-token was printed: %s", out);
    free(out);
    free(tok);
    lm_test_write(dir, "agent-bad.yaml", "control_plane:\n  ca_fil: x\n", cfgpath, sizeof cfgpath);
    cr_assert_neq(
        lm_test_sh("'%s' --config '%s' --check-config > '%s' 2>&1", LM_AGENT_BIN, cfgpath, log), 0);
    out = lm_test_slurp(log);
    cr_assert(strstr(out, "agent-bad.yaml:2:") && strstr(out, "ca_file"), "%s", out);
    free(out);

    /* linked: the identity is private, and the host can be named in a migration */
    cr_assert_eq(agent_link_cmd(token, state, ca, "--hostname agent-host-1", &out), 0, "%s", out);
    cr_assert(strstr(out, "linked: agent ag_"), "%s", out);
    cr_assert_not(strstr(out, "lmlt1."), "the token was printed: %s", out);
    free(out);
    char idpath[800];
    snprintf(idpath, sizeof idpath, "%s/identity.json", state);
    struct stat st;
    cr_assert_eq(stat(idpath, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    /* it keeps the agent's own credential, not the link-token's secret */
    char *idtext = lm_test_slurp(idpath), *toktext = lm_test_slurp(token);
    lm_proto_link_token_t lt;
    toktext[strcspn(toktext, "\n")] = '\0';
    cr_assert(lm_proto_link_token_decode(toktext, strlen(toktext), &lt, &err0), "%s", err0.message);
    cr_assert(strstr(idtext, "\"agentSecret\"") && !strstr(idtext, lt.secret), "%s", idtext);
    lm_proto_link_token_clear(&lt);
    free(idtext);
    free(toktext);
    cr_assert_eq(
        CLI(&out, "clusters add src --projectId %s --connectionString mongodb://h:1/", proj), 0,
        "%s", out);
    free(out);
    cr_assert_eq(
        CLI(&out, "clusters add dst --projectId %s --connectionString mongodb://h:2/", proj), 0,
        "%s", out);
    free(out);
    cr_assert_eq(CLI(&out,
                     "lm create --projectId %s --clusterName dst --migrationHost "
                     "agent-host-1 --sourceClusterName src --sourceProjectId %s",
                     proj, proj),
                 0, "%s", out);
    free(out);

    /* the agent's own client (lm_link_*) with the stored identity: poll, report, heartbeat */
    lm_identity_t id;
    lm_error_t err;
    cr_assert(lm_identity_load(state, &id, &err), "%s", err.message);
    lm_proto_assignments_t *m = calloc(1, sizeof *m);
    cr_assert(lm_link_poll(&id, ca, NULL, 2, 0, m, &err), "%s", err.message);
    cr_assert_eq(m->n_jobs, 1);
    cr_assert_eq(m->jobs[0].kind, LM_PROTO_JOB_MIGRATION);
    char job[80];
    snprintf(job, sizeof job, "%s", m->jobs[0].job_id);
    lm_proto_assignments_cleanup(m);
    lm_proto_status_t rep;
    memset(&rep, 0, sizeof rep);
    snprintf(rep.agent_id, sizeof rep.agent_id, "%s", id.agent_id);
    snprintf(rep.job_id, sizeof rep.job_id, "%s", job);
    rep.kind = LM_PROTO_JOB_MIGRATION;
    snprintf(rep.phase, sizeof rep.phase, "COPYING");
    snprintf(rep.state, sizeof rep.state, "RUNNING");
    cr_assert(lm_link_report(&id, ca, NULL, &rep, &err), "%s", err.message);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", job, proj), 0, "%s", out);
    cr_assert(strstr(out, "WORKING") && strstr(out, "COPYING"), "%s", out);
    free(out);
    lm_proto_heartbeat_t hb = {.uptime_seconds = 1, .n_running = 1};
    snprintf(hb.agent_id, sizeof hb.agent_id, "%s", id.agent_id);
    snprintf(hb.hostname, sizeof hb.hostname, "%s", id.hostname);
    snprintf(hb.agent_version, sizeof hb.agent_version, "0.1.0");
    snprintf(hb.running[0], sizeof hb.running[0], "%s", job);
    cr_assert(lm_link_heartbeat(&id, ca, NULL, &hb, &err), "%s", err.message);

    /* another organization's token needs --relink */
    char pub2[80], file2[700], token2[800];
    lm_test_cp_bootstrap(&cp, "org2", pub2, sizeof pub2, file2, sizeof file2);
    token_file_for(pub2, file2, "org2", token2, sizeof token2);
    cr_assert_eq(agent_link_cmd(token2, state, ca, "--hostname agent-host-1", &out), 1, "%s", out);
    cr_assert(strstr(out, "needs --relink"), "%s", out);
    free(out);

    /* a deleted token: revoked */
    cr_assert_eq(CLI(&out, "lm link delete --orgId org1 --force"), 0, "%s", out);
    free(out);
    cr_assert_eq(agent_link_cmd(token, state, ca, "--hostname agent-host-1", &out), 1, "%s", out);
    cr_assert(strstr(out, "revoked"), "%s", out);
    free(out);
    cr_assert_not(lm_link_heartbeat(&id, ca, NULL, &hb, &err));
    cr_assert(err.code == LM_ERR_REVOKED && strstr(err.message, "revoked"), "%s", err.message);
    cr_assert_not(lm_link_poll(&id, ca, NULL, 1, 0, m, &err));
    cr_assert(strstr(err.message, "revoked"), "%s", err.message);
    free(m);
    lm_identity_clear(&id);
    /* and the relink to org2 works */
    cr_assert_eq(agent_link_cmd(token2, state, ca, "--hostname agent-host-1 --relink", &out), 0,
                 "%s", out);
    cr_assert(strstr(out, "organization org2"), "%s", out);
    free(out);
}

/* ---- the CA pin pins (security: docs/security.md, TLS) ---- */

/* A fake control plane: answers 200 "{}" to everything and counts the credentials it got. */
static void fake_cp(void *ud, const char *method, const char *url, unsigned hit,
                    lm_test_https_reply_t *r)
{
    (void)ud, (void)method, (void)url, (void)hit;
    r->body = strdup("{}");
    r->body_len = 2;
}

/* The real token of org1 with its URL replaced by `url` (what a DNS or routing attack does):
 * same pin, same credential, into a 0600 file. */
static void forged_token(const char *token_file, const char *url, char *path, size_t size)
{
    char *text = lm_test_slurp(token_file);
    text[strcspn(text, "\n")] = '\0';
    lm_proto_link_token_t t;
    lm_error_t err;
    cr_assert(lm_proto_link_token_decode(text, strlen(text), &t, &err), "%s", err.message);
    snprintf(t.url, sizeof t.url, "%s", url);
    lm_strbuf_t b;
    lm_strbuf_init(&b, 1u << 16);
    cr_assert(lm_proto_link_token_encode(&t, &b, &err), "%s", err.message);
    lm_test_write(dir, "forged.token", lm_strbuf_str(&b), path, size);
    chmod(path, 0600);
    lm_strbuf_cleanup(&b);
    lm_proto_link_token_clear(&t);
    free(text);
}

static void daemon_config(const char *name, const char *cp_lines, const char *state, char *path,
                          size_t size)
{
    char yaml[3000];
    snprintf(yaml, sizeof yaml,
             "control_plane:\n%sstate_dir: %s\nhostname: agent-host-1\nheartbeat_interval: 1s\n",
             cp_lines, state);
    lm_test_write(dir, name, yaml, path, size);
}

/* The reviewer's attack: a rogue CA that the system store trusts, and a fake control plane
 * with a certificate from it. The agent's link, the daemon and the CLI are all given the
 * real (pinned) CA file; none may send its credential. */
Test(controlplane, a_rogue_ca_in_the_system_store_gets_no_credential, .timeout = 180)
{
    char *out, token[800], state[700], rogue[700], wrapper[700], cert[800], key[800], fake[128];
    lm_test_cp_bootstrap(&cp, "org1", pub, sizeof pub, keyfile, sizeof keyfile);
    lm_test_cp_start(&cp);
    token_file_for(pub, keyfile, "org1", token, sizeof token);
    snprintf(state, sizeof state, "%s/agent-state", dir);

    lm_test_rogue_system_ca(dir, rogue, sizeof rogue, wrapper, sizeof wrapper);
    snprintf(cert, sizeof cert, "%s/server.pem", rogue);
    snprintf(key, sizeof key, "%s/server.key", rogue);
    lm_test_https_t *f = lm_test_https_start(cert, key, fake_cp, NULL);
    snprintf(fake, sizeof fake, "https://127.0.0.1:%d", lm_test_https_port(f));
    /* the attack is real: in the namespace, libcurl given only the pinned CA file through
     * CAINFO (what lm_http did) trusts the fake through the system store */
    cr_assert_eq(lm_test_sh("'%s' curl -sf -o /dev/null --cacert '%s' '%s/' 2>/dev/null", wrapper,
                            cp.ca, fake),
                 0, "the rogue CA is not trusted by the system store in the namespace");
    cr_assert_eq(lm_test_https_hits(f), 1);

    /* livemig-agent link with a token whose URL leads to the fake */
    char forged[800], log[800];
    forged_token(token, fake, forged, sizeof forged);
    snprintf(log, sizeof log, "%s/rogue-link.out", dir);
    int rc = lm_test_sh("'%s' '%s' link --token-file '%s' --state-dir '%s' --ca-file '%s' > '%s' "
                        "2>&1",
                        wrapper, LM_AGENT_BIN, forged, state, cp.ca, log);
    out = lm_test_slurp(log);
    cr_assert_eq(lm_test_https_auth_seen(f), 0, "link sent its credential to the fake: %s", out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "TLS"), "%s", out);
    free(out);

    /* the CLI with --caFile: no API key */
    snprintf(log, sizeof log, "%s/rogue-cli.out", dir);
    rc = lm_test_sh("'%s' '%s' --url '%s' --caFile '%s' --publicKey '%s' --privateKeyFile '%s' "
                    "projects list --orgId org1 > '%s' 2>&1",
                    wrapper, LM_CLI_BIN, fake, cp.ca, pub, keyfile, log);
    out = lm_test_slurp(log);
    cr_assert_eq(lm_test_https_auth_seen(f), 0, "the CLI sent its API key to the fake: %s", out);
    cr_assert_neq(rc, 0, "%s", out);
    cr_assert(strstr(out, "TLS"), "%s", out);
    free(out);

    /* the daemon, linked for real, then pointed at the fake (control_plane.url) */
    cr_assert_eq(agent_link_cmd(token, state, cp.ca, "--hostname agent-host-1", &out), 0, "%s",
                 out);
    free(out);
    char conf[800], lines[1200];
    snprintf(lines, sizeof lines, "  url: %s\n  ca_file: %s\n", fake, cp.ca);
    daemon_config("rogue-agent.yaml", lines, state, conf, sizeof conf);
    snprintf(log, sizeof log, "%s/rogue-daemon.log", dir);
    char *argv[] = {wrapper, (char *)LM_AGENT_BIN, (char *)"--config", conf, NULL};
    daemon_pid = lm_test_spawn(argv, log);
    for (int i = 0; i < 100; i++) { /* it calls at once and again after 1 s of backoff */
        char *l = lm_test_slurp(log);
        bool twice = strstr(l, "TLS") && strstr(strstr(l, "TLS") + 3, "TLS");
        free(l);
        if (twice || lm_test_https_auth_seen(f) > 0)
            break;
        lm_time_sleep_ms(100, NULL);
    }
    kill(daemon_pid, SIGTERM);
    lm_test_wait(daemon_pid, 20000);
    daemon_pid = 0;
    out = lm_test_slurp(log);
    cr_assert_eq(lm_test_https_auth_seen(f), 0, "the daemon sent its credential to the fake: %s",
                 out);
    cr_assert(strstr(out, "does not chain to") || strstr(out, "TLS"), "%s", out);
    free(out);
    cr_assert_eq(lm_test_https_hits(f), 1, "only the curl control reached the fake");
    lm_test_https_stop(f);
}

/* The daemon checks its CA file against the identity's pin at every start. */
Test(controlplane, the_daemon_refuses_a_ca_file_that_is_not_the_pinned_one)
{
    char *out, token[800], state[700], other[700], other_ca[800], conf[800], lines[1200], log[800];
    lm_test_cp_bootstrap(&cp, "org1", pub, sizeof pub, keyfile, sizeof keyfile);
    lm_test_cp_start(&cp);
    token_file_for(pub, keyfile, "org1", token, sizeof token);
    snprintf(state, sizeof state, "%s/agent-state", dir);
    cr_assert_eq(agent_link_cmd(token, state, cp.ca, "--hostname agent-host-1", &out), 0, "%s",
                 out);
    free(out);
    snprintf(other, sizeof other, "%s/other-ca", dir);
    cr_assert_eq(lm_test_sh("'%s/scripts/mkcerts' '%s'", LM_SOURCE_DIR, other), 0);
    snprintf(other_ca, sizeof other_ca, "%s/ca.pem", other);

    /* the CA file replaced since linking */
    snprintf(lines, sizeof lines, "  ca_file: %s\n", other_ca);
    daemon_config("other-ca.yaml", lines, state, conf, sizeof conf);
    snprintf(log, sizeof log, "%s/other-ca.log", dir);
    char *argv[] = {(char *)LM_AGENT_BIN, (char *)"--config", conf, NULL};
    cr_assert_eq(lm_test_run(argv, log, 20000), 2, "%s", lm_test_slurp(log));
    out = lm_test_slurp(log);
    cr_assert(strstr(out, "is not the CA this agent was linked with"), "%s", out);
    free(out);

    /* no CA file at all */
    snprintf(lines, sizeof lines, "state_dir: %s\nhostname: agent-host-1\n", state);
    lm_test_write(dir, "no-ca.yaml", lines, conf, sizeof conf);
    snprintf(log, sizeof log, "%s/no-ca.log", dir);
    cr_assert_eq(lm_test_run(argv, log, 20000), 2, "%s", lm_test_slurp(log));
    out = lm_test_slurp(log);
    cr_assert(strstr(out, "control_plane.ca_file is needed"), "%s", out);
    free(out);

    /* and the right one starts */
    snprintf(lines, sizeof lines, "  ca_file: %s\n", cp.ca);
    daemon_config("right-ca.yaml", lines, state, conf, sizeof conf);
    snprintf(log, sizeof log, "%s/right-ca.log", dir);
    daemon_pid = lm_test_spawn(argv, log);
    bool started = false;
    for (int i = 0; i < 100 && !started; i++) {
        out = lm_test_slurp(log);
        started = strstr(out, "livemig-agent ") && strstr(out, "state in");
        free(out);
        lm_time_sleep_ms(100, NULL);
    }
    cr_assert(started, "%s", lm_test_slurp(log));
}

/* TLS 1.0 and 1.1 are refused by the server itself: the client is told to allow them
 * (-cipher DEFAULT@SECLEVEL=0, else Debian's OpenSSL refuses them on its own side). */
static int s_client(const char *version, const char *log)
{
    return lm_test_sh("timeout 20 openssl s_client -connect 127.0.0.1:%d %s -cipher "
                      "DEFAULT@SECLEVEL=0 -CAfile '%s' -verify_return_error < /dev/null > '%s' "
                      "2>&1",
                      cp.port, version, cp.ca, log);
}

Test(controlplane, the_server_speaks_tls_1_2_and_newer_only)
{
    char log[700];
    lm_test_cp_start(&cp);
    snprintf(log, sizeof log, "%s/s_client.out", dir);
    const char *refused[] = {"-tls1", "-tls1_1"};
    for (size_t i = 0; i < 2; i++) {
        int rc = s_client(refused[i], log);
        char *out = lm_test_slurp(log);
        cr_assert_neq(rc, 0, "%s was negotiated: %s", refused[i], out);
        cr_assert_null(strstr(out, "Cipher is ECDHE"), "%s", out);
        free(out);
    }
    const char *spoken[] = {"-tls1_2", "-tls1_3"};
    for (size_t i = 0; i < 2; i++) {
        int rc = s_client(spoken[i], log);
        char *out = lm_test_slurp(log);
        cr_assert_eq(rc, 0, "%s: %s", spoken[i], out);
        cr_assert(strstr(out, "Verify return code: 0 (ok)"), "%s", out);
        free(out);
    }
}

/* The registry refuses connection strings that turn TLS checks off (unless asked to) and
 * tls=false when the registration says TLS. */
Test(controlplane, insecure_tls_options_in_a_connection_string_are_refused)
{
    char proj[80], *out;
    lm_test_cp_bootstrap(&cp, "org1", pub, sizeof pub, keyfile, sizeof keyfile);
    lm_test_cp_start(&cp);
    cr_assert_eq(CLI(&out, "projects create shop --orgId org1 -o json"), 0, "%s", out);
    lm_test_json_field(out, "id", proj, sizeof proj);
    free(out);
    const char *bad[] = {"tlsInsecure", "tlsAllowInvalidHostnames", "TLSALLOWINVALIDCERTIFICATES",
                         "sslAllowInvalidCertificates", "sslAllowInvalidHostnames"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_neq(CLI(&out,
                          "clusters add c%zu --projectId %s --tls --connectionString "
                          "'mongodb://h:1/?replicaSet=rs&%s=true'",
                          i, proj, bad[i]),
                      0, "%s", out);
        cr_assert(strstr(out, "=true turns TLS certificate checks off") && strcasestr(out, bad[i]),
                  "%s", out);
        free(out);
    }
    cr_assert_neq(CLI(&out,
                      "clusters add off --projectId %s --tls --connectionString "
                      "'mongodb://h:1/?ssl=false'",
                      proj),
                  0, "%s", out);
    cr_assert(strstr(out, "tls=false while 'tls' is true"), "%s", out);
    free(out);
    cr_assert_eq(CLI(&out, "clusters list --projectId %s -o json", proj), 0, "%s", out);
    cr_assert_null(strstr(out, "h:1"), "a refused cluster was stored: %s", out);
    free(out);
    /* allowed on purpose; and tlsInsecure=false is no problem */
    cr_assert_eq(CLI(&out,
                     "clusters add lab --projectId %s --tls --allowInsecureTls "
                     "--connectionString 'mongodb://h:1/?tlsInsecure=true'",
                     proj),
                 0, "%s", out);
    free(out);
    cr_assert_eq(CLI(&out,
                     "clusters add fine --projectId %s --tls --connectionString "
                     "'mongodb://h:1/?tlsInsecure=false'",
                     proj),
                 0, "%s", out);
    free(out);
}

/* A password never comes through the arguments (ps, shell history): --sourcePassword is
 * refused without its value being shown; the file must be private; with neither a file
 * nor a terminal the CLI says what to give. */
Test(controlplane, the_source_password_never_comes_from_the_arguments)
{
    char proj[80], *out;
    lm_test_cp_bootstrap(&cp, "org1", pub, sizeof pub, keyfile, sizeof keyfile);
    lm_test_cp_start(&cp);
    cr_assert_eq(CLI(&out, "projects create shop --orgId org1 -o json"), 0, "%s", out);
    lm_test_json_field(out, "id", proj, sizeof proj);
    free(out);
    const char *create = "lm create --projectId %s --clusterName dst --migrationHost h1 "
                         "--sourceClusterName src --sourceProjectId %s --sourceUsername reader %s";
    char args[600];
    snprintf(args, sizeof args, "--sourcePassword 'hunter2-in-ps'");
    cr_assert_neq(CLI(&out, create, proj, proj, args), 0, "%s", out);
    cr_assert(strstr(out, "--sourcePassword is refused") && strstr(out, "--sourcePasswordFile") &&
                  strstr(out, "terminal"),
              "%s", out);
    cr_assert_null(strstr(out, "hunter2-in-ps"), "%s", out);
    free(out);

    char pw[700];
    lm_test_write(dir, "open.pw", "s3cret-src\n", pw, sizeof pw);
    chmod(pw, 0644);
    snprintf(args, sizeof args, "--sourcePasswordFile '%s'", pw);
    cr_assert_neq(CLI(&out, create, proj, proj, args), 0, "%s", out);
    cr_assert(strstr(out, "chmod 600"), "%s", out);
    free(out);

    /* stdin is not a terminal here (the test runs it from /dev/null or a pipe) */
    cr_assert_neq(CLI(&out, create, proj, proj, "< /dev/null"), 0, "%s", out);
    cr_assert(strstr(out, "--sourcePasswordFile"), "%s", out);
    free(out);
}

/* ---- agent credentials: the attacks of security finding 1 ----
 * The link-token is shared by the organization. Whoever holds it must not be able to act
 * as an agent that is linked already: take over its host name, fetch its job's passwords,
 * report for its job or swallow its commands. Each test performs the attack and sees it
 * refused. */

/* Whether text shows either password of prepare()'s migration. */
static bool shows_password(const char *text)
{
    return strstr(text, "s3cret-src") || strstr(text, "target-secret");
}

Test(controlplane, a_second_registration_of_a_linked_host_is_refused)
{
    char proj[80], mig[80], *resp;
    agent_t a;
    prepare(proj, sizeof proj, &a, mig, sizeof mig);
    lm_proto_assignments_t *m = agent_poll(&a, 2);
    cr_assert_eq(m->n_jobs, 1);
    lm_proto_assignments_cleanup(m);
    free(m);

    /* the token's holder registers as mig-host-1: refused, no agent id, logged */
    long st = register_as(link_token, "mig-host-1", &resp);
    cr_assert_eq(st, 409, "a linked host name was taken over: %s", resp);
    cr_assert(strstr(resp, "AGENT_HOST_ALREADY_LINKED") &&
                  strstr(resp, "livemig lm agents relink mig-host-1"),
              "%s", resp);
    cr_assert_not(strstr(resp, "agentId") || strstr(resp, "agentSecret") || strstr(resp, a.id),
                  "%s", resp);
    free(resp);
    char *log = lm_test_slurp(cp.log);
    cr_assert(strstr(log, "takeover attempt") && strstr(log, "host mig-host-1") &&
                  strstr(log, "from 127.0.0.1"),
              "%s", log);
    free(log);

    /* what handed the job out before: a heartbeat listing no job, then a poll, as that
     * host, with the only credential the attacker has (the link-token, and the agent id) */
    char hb[300];
    snprintf(hb, sizeof hb,
             "{\"v\":1,\"agentId\":\"%s\",\"hostname\":\"mig-host-1\",\"agentVersion\":\"0.1.0\","
             "\"uptimeSeconds\":1,\"stateDirFreeBytes\":1,\"running\":[]}",
             a.id);
    lm_time_sleep_ms(1100, NULL); /* past a heartbeat interval: the job would be "lost" */
    cr_assert_eq(https("POST", "/api/agent/v1/heartbeat", a.enroll, a.id, hb, &resp), 401, "%s",
                 resp);
    free(resp);
    cr_assert_eq(https("GET", "/api/agent/v1/assignments?wait=1", a.enroll, a.id, NULL, &resp), 401,
                 "%s", resp);
    cr_assert_not(shows_password(resp), "%s", resp);
    free(resp);
    /* the job stays with its agent, which goes on */
    cr_assert_eq(agent_heartbeat(&a, &resp), 200, "%s", resp);
    free(resp);
    agent_report(&a, mig, "RUNNING", false, 3);
}

Test(controlplane, the_link_token_alone_cannot_call_the_agent_api)
{
    char proj[80], mig[80], *out, *resp;
    agent_t a;
    prepare(proj, sizeof proj, &a, mig, sizeof mig);
    /* heartbeat, poll (which would carry the passwords), report: 401 with the link-token */
    char hb[300];
    snprintf(hb, sizeof hb,
             "{\"v\":1,\"agentId\":\"%s\",\"hostname\":\"mig-host-1\",\"agentVersion\":\"0.1.0\","
             "\"uptimeSeconds\":1,\"stateDirFreeBytes\":1,\"running\":[]}",
             a.id);
    cr_assert_eq(https("POST", "/api/agent/v1/heartbeat", a.enroll, a.id, hb, &resp), 401, "%s",
                 resp);
    cr_assert(strstr(resp, "AGENT_CREDENTIAL_REQUIRED") && strstr(resp, "only enrolls"), "%s",
              resp);
    free(resp);
    cr_assert_eq(https("GET", "/api/agent/v1/assignments?wait=1", a.enroll, a.id, NULL, &resp), 401,
                 "%s", resp);
    cr_assert_not(shows_password(resp), "%s", resp);
    free(resp);
    lm_proto_status_t s;
    migration_report(&s, &a, mig, "COMPLETE", true, 0);
    cr_assert_eq(post_report_as(&a, a.enroll, &s, &resp), 401, "%s", resp);
    free(resp);
    /* nor the token's secret under the agent's id */
    char forged[300];
    const char *secret = strchr(a.enroll, ':') + 1;
    snprintf(forged, sizeof forged, "Bearer %s:%s", a.id, secret);
    cr_assert_eq(post_report_as(&a, forged, &s, &resp), 401, "%s", resp);
    free(resp);
    /* the false report changed nothing */
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "\"NEW\"") && strstr(out, "\"readyForCutover\": false"), "%s", out);
    free(out);
    /* and the agent's own credential works */
    lm_proto_assignments_t *m = agent_poll(&a, 2);
    cr_assert_eq(m->n_jobs, 1);
    cr_assert_str_eq(m->jobs[0].source.password, "s3cret-src");
    lm_proto_assignments_cleanup(m);
    free(m);
    char *log = lm_test_slurp(cp.log);
    cr_assert_not(strstr(log, secret), "a secret in the log: %s", log);
    free(log);
}

Test(controlplane, an_agent_cannot_touch_another_agents_job)
{
    char proj[80], mig[80], *out, *resp;
    agent_t a, b;
    prepare(proj, sizeof proj, &a, mig, sizeof mig);
    lm_proto_assignments_t *m = agent_poll(&a, 2);
    cr_assert_eq(m->n_jobs, 1);
    lm_proto_assignments_cleanup(m);
    free(m);
    cr_assert_eq(CLI(&out, "lm cancel %s --projectId %s --force", mig, proj), 0, "%s", out);
    free(out);

    /* agent B enrolls legitimately on another host */
    agent_link(&b, link_token, "mig-host-2");
    cr_assert_str_neq(a.id, b.id);
    /* B's polls carry neither A's job nor its passwords nor its command, even when B
     * acknowledges every command there could be */
    b.ack = 1000000;
    cr_assert_eq(agent_poll_raw(&b, 1, &resp), 200, "%s", resp);
    cr_assert_not(strstr(resp, mig) || shows_password(resp), "%s", resp);
    free(resp);
    /* B's credential naming A in the X-Livemig-Agent header (the agent id of the old
     * protocol): the credential decides, so B stays B */
    agent_t posing = b;
    snprintf(posing.id, sizeof posing.id, "%s", a.id);
    cr_assert_eq(agent_poll_raw(&posing, 1, &resp), 200, "%s", resp);
    cr_assert_not(strstr(resp, mig) || shows_password(resp), "%s", resp);
    free(resp);
    /* B's secret under A's id */
    agent_t forged = b;
    const char *b_secret = strchr(b.bearer, ':') + 1;
    snprintf(forged.bearer, sizeof forged.bearer, "Bearer %s:%s", a.id, b_secret);
    snprintf(forged.id, sizeof forged.id, "%s", a.id);
    cr_assert_eq(agent_poll_raw(&forged, 1, &resp), 401, "%s", resp);
    cr_assert_not(shows_password(resp), "%s", resp);
    free(resp);
    /* B reports A's job as complete and ready for cutover: 403, and A's id in it: 400 */
    lm_proto_status_t s;
    migration_report(&s, &b, mig, "COMPLETE", true, 0);
    cr_assert_eq(post_report_as(&b, b.bearer, &s, &resp), 403, "%s", resp);
    cr_assert(strstr(resp, "JOB_HELD_BY_ANOTHER_AGENT"), "%s", resp);
    free(resp);
    snprintf(s.agent_id, sizeof s.agent_id, "%s", a.id);
    cr_assert_eq(post_report_as(&b, b.bearer, &s, &resp), 400, "%s", resp);
    free(resp);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert_not(strstr(out, "COMPLETE") || strstr(out, "\"readyForCutover\": true"), "%s", out);
    free(out);
    /* A still gets its command: B's acknowledgement did not count for it */
    m = agent_poll(&a, 2);
    cr_assert_eq(m->n_commands, 1, "agent B acknowledged agent A's command");
    cr_assert_eq(m->commands[0].kind, LM_PROTO_CMD_CANCEL);
    lm_proto_assignments_cleanup(m);
    free(m);
    char *log = lm_test_slurp(cp.log);
    cr_assert(strstr(log, "another agent holds that job"), "%s", log);
    free(log);
}

Test(controlplane, an_expired_link_token_enrolls_nothing)
{
    char *out, *resp;
    lm_test_cp_bootstrap(&cp, "org1", pub, sizeof pub, keyfile, sizeof keyfile);
    lm_test_cp_start(&cp);
    int64_t made = lm_time_now_ms();
    cr_assert_eq(CLI(&out, "lm link create --orgId org1 --expiresAfter 2s"), 0, "%s", out);
    char token[4096];
    snprintf(token, sizeof token, "%s", out);
    token[strcspn(token, "\n")] = '\0';
    free(out);
    agent_t a;
    agent_link(&a, token, "h1"); /* before it expires */
    lm_time_sleep_ms(made + 2300 - lm_time_now_ms(), NULL);
    cr_assert_eq(register_as(token, "h2", &resp), 401, "an expired link-token enrolled: %s", resp);
    cr_assert(strstr(resp, "LINK_TOKEN_EXPIRED") && strstr(resp, "expired at"), "%s", resp);
    cr_assert_not(strstr(resp, "agentId"), "%s", resp);
    free(resp);
    /* the agent it enrolled keeps working; a new token can be made beside the expired one */
    cr_assert_eq(agent_heartbeat(&a, &resp), 200, "%s", resp);
    free(resp);
    cr_assert_eq(CLI(&out, "lm link create --orgId org1"), 0, "%s", out);
    free(out);
    cr_assert_neq(CLI(&out, "lm link create --orgId org1 --expiresAfter soon"), 0, "%s", out);
    cr_assert(strstr(out, "expiresAfter"), "%s", out);
    free(out);
    /* deleting the tokens revokes the agents they enrolled */
    cr_assert_eq(CLI(&out, "lm link delete --orgId org1 --force"), 0, "%s", out);
    free(out);
    cr_assert_eq(agent_heartbeat(&a, &resp), 401, "%s", resp);
    cr_assert(strstr(resp, "LINK_TOKEN_REVOKED"), "%s", resp);
    free(resp);
}

Test(controlplane, an_owners_relink_lets_the_host_link_once)
{
    char proj[80], mig[80], *out, *resp;
    agent_t a, a2;
    prepare(proj, sizeof proj, &a, mig, sizeof mig);
    lm_proto_assignments_t *m = agent_poll(&a, 2);
    cr_assert_eq(m->n_jobs, 1);
    lm_proto_assignments_cleanup(m);
    free(m);
    cr_assert_neq(CLI(&out, "lm agents relink nowhere-1 --orgId org1"), 0, "%s", out);
    cr_assert(strstr(out, "404"), "%s", out);
    free(out);
    cr_assert_eq(CLI(&out, "lm agents relink mig-host-1 --orgId org1"), 0, "%s", out);
    cr_assert(strstr(out, "may link again once"), "%s", out);
    free(out);
    /* the new agent of mig-host-1 links once and gets the host's job */
    agent_link(&a2, link_token, "mig-host-1");
    cr_assert_str_neq(a2.id, a.id);
    m = agent_poll(&a2, 2);
    cr_assert_eq(m->n_jobs, 1, "the relinked host did not get its job");
    cr_assert_str_eq(m->jobs[0].source.password, "s3cret-src");
    lm_proto_assignments_cleanup(m);
    free(m);
    /* the old agent's credential stops working */
    cr_assert_eq(agent_heartbeat(&a, &resp), 401, "%s", resp);
    free(resp);
    cr_assert_eq(agent_poll_raw(&a, 1, &resp), 401, "%s", resp);
    cr_assert_not(shows_password(resp), "%s", resp);
    free(resp);
    lm_proto_status_t s;
    migration_report(&s, &a, mig, "COMPLETE", true, 0);
    cr_assert_eq(post_report_as(&a, a.bearer, &s, &resp), 401, "%s", resp);
    free(resp);
    /* once only */
    cr_assert_eq(register_as(link_token, "mig-host-1", &resp), 409, "%s", resp);
    free(resp);
    /* and not after it lapsed (relink_window: 3s from here on) */
    lm_test_cp_config(&cp, "cutover_window: 120h\nextend_by: 24h\nrelink_window: 3s\n");
    lm_test_cp_stop(&cp);
    lm_test_cp_start(&cp);
    cr_assert_eq(CLI(&out, "lm agents relink mig-host-1 --orgId org1"), 0, "%s", out);
    free(out);
    lm_time_sleep_ms(3300, NULL);
    cr_assert_eq(register_as(link_token, "mig-host-1", &resp), 409, "%s", resp);
    free(resp);
    cr_assert_eq(agent_heartbeat(&a2, &resp), 200, "%s", resp);
    free(resp);
}

/* An identity written before agents had credentials of their own (the link-token's secret
 * in it, no agentSecret): the agent says how to relink, and the daemon does not start. */
Test(controlplane, an_old_identity_file_asks_for_a_relink)
{
    char state[700], path[800], cfg[800], yaml[2000], log[800];
    snprintf(state, sizeof state, "%s/old-state", dir);
    cr_assert_eq(lm_test_sh("mkdir -m 700 '%s'", state), 0);
    snprintf(path, sizeof path, "%s/identity.json", state);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "{\"url\":\"https://127.0.0.1:1\",\"orgId\":\"org1\",\"tokenId\":\"t1\","
            "\"secret\":\"00ff\",\"caPin\":\"%064d\",\"agentId\":\"ag_1\","
            "\"hostname\":\"mig-host-1\",\"heartbeatSeconds\":1,\"pollSeconds\":3}",
            0);
    fclose(f);
    chmod(path, 0600);
    lm_identity_t id;
    lm_error_t err;
    cr_assert_not(lm_identity_load(state, &id, &err));
    cr_assert(err.code == LM_ERR_AUTH && strstr(err.message, "older livemig-agent") &&
                  strstr(err.message, "livemig lm agents relink mig-host-1 --orgId org1"),
              "%s", err.message);
    snprintf(yaml, sizeof yaml, "control_plane:\n  ca_file: %s\nstate_dir: %s\n", cp.ca, state);
    lm_test_write(dir, "old-agent.yaml", yaml, cfg, sizeof cfg);
    snprintf(log, sizeof log, "%s/old-agent.out", dir);
    cr_assert_eq(lm_test_sh("'%s' --config '%s' > '%s' 2>&1", LM_AGENT_BIN, cfg, log), 2, "%s",
                 lm_test_slurp(log));
    char *out = lm_test_slurp(log);
    cr_assert(strstr(out, "livemig lm agents relink mig-host-1"), "%s", out);
    free(out);
}

/* A database made by a control plane from before agent credentials (schema version 0: no
 * credential, expiry or holder columns, no relinks table) is migrated when opened. */
Test(controlplane, an_older_database_is_migrated)
{
    char proj[80], mig[80], *out;
    cr_assert_eq(
        lm_test_sh(
            "python3 -c \"import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); db.executescript("
            "'CREATE TABLE link_tokens(id TEXT PRIMARY KEY, org_id TEXT NOT NULL, salt TEXT NOT "
            "NULL, hash TEXT NOT NULL, access TEXT NOT NULL, created INTEGER NOT NULL, deleted "
            "INTEGER NOT NULL DEFAULT 0);"
            "CREATE TABLE agents(id TEXT PRIMARY KEY, org_id TEXT NOT NULL, token_id TEXT NOT "
            "NULL, hostname TEXT NOT NULL, version TEXT, os TEXT, registered INTEGER NOT NULL, "
            "last_seen INTEGER, uptime INTEGER, free_bytes INTEGER, running TEXT);"
            "CREATE TABLE jobs(id TEXT PRIMARY KEY, kind TEXT NOT NULL, org_id TEXT NOT NULL, "
            "project_id TEXT NOT NULL, host TEXT NOT NULL, spec TEXT NOT NULL, src_password "
            "TEXT, status TEXT NOT NULL, phase TEXT, ready INTEGER NOT NULL DEFAULT 0, lag REAL, "
            "gap REAL, report TEXT, error TEXT, ready_since INTEGER, window_end INTEGER, "
            "delivered INTEGER, agent_id TEXT, created INTEGER NOT NULL, updated INTEGER NOT "
            "NULL);'); db.commit()\" '%s/cp.db'",
            dir),
        0);
    agent_t a;
    prepare(proj, sizeof proj, &a, mig, sizeof mig);
    lm_proto_assignments_t *m = agent_poll(&a, 2);
    cr_assert_eq(m->n_jobs, 1);
    lm_proto_assignments_cleanup(m);
    free(m);
    cr_assert_eq(register_as(link_token, "mig-host-1", &out), 409, "%s", out);
    free(out);
    cr_assert_eq(CLI(&out, "lm agents relink mig-host-1 --orgId org1"), 0, "%s", out);
    free(out);
}

/* ---- sealed passwords are bound to their rows (finding 13) ---- */

/* Runs python3's sqlite3 on the control plane's database (stopped): `code` sees db and
 * the arguments a, b as sys.argv[2], sys.argv[3]. */
static int db_script(const char *code, const char *a, const char *b)
{
    return lm_test_sh("python3 -c \"import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); %s; "
                      "db.commit()\" '%s/cp.db' '%s' '%s'",
                      code, dir, a ? a : "", b ? b : "");
}

/* A second live migration in proj (to a cluster dst2 of its own: one migration per
 * destination) from src, with the source password `password`; its id into mig. */
static void second_migration(const char *proj, const char *password, char *mig, size_t size)
{
    char *out, pw[700];
    lm_test_write(dir, "src2.pw", password, pw, sizeof pw);
    chmod(pw, 0600);
    cr_assert_eq(CLI(&out,
                     "clusters add dst2 --projectId %s --connectionString "
                     "'mongodb://127.0.0.1:3/'",
                     proj),
                 0, "%s", out);
    free(out);
    cr_assert_eq(CLI(&out,
                     "lm create --projectId %s --clusterName dst2 --migrationHost mig-host-1 "
                     "--sourceClusterName src --sourceProjectId %s --sourceUsername reader "
                     "--sourcePasswordFile '%s' -o json",
                     proj, proj, pw),
                 0, "%s", out);
    lm_test_json_field(out, "_id", mig, size);
    free(out);
}

/* The attack: whoever can write the database (a backup restored by an attacker, a
 * compromised disk) swaps the sealed source passwords of two migrations, so that one job
 * would run with the other's credentials. Neither job may be handed out with the other's
 * password: both are refused, with a message naming the row, and the rest of the poll
 * answer goes on. */
Test(controlplane, a_password_moved_to_another_row_is_not_delivered)
{
    char proj[80], mig[80], mig2[80], *out;
    agent_t a;
    prepare(proj, sizeof proj, &a, mig, sizeof mig); /* source password s3cret-src */
    second_migration(proj, "other-src-pw", mig2, sizeof mig2);
    lm_test_cp_stop(&cp);
    cr_assert_eq(
        db_script("q='SELECT src_password FROM jobs WHERE id=?'; "
                  "pa=db.execute(q,(sys.argv[2],)).fetchone()[0]; "
                  "pb=db.execute(q,(sys.argv[3],)).fetchone()[0]; "
                  "assert pa and pb and pa != pb; "
                  "db.execute('UPDATE jobs SET src_password=? WHERE id=?',(pb,sys.argv[2])); "
                  "db.execute('UPDATE jobs SET src_password=? WHERE id=?',(pa,sys.argv[3]))",
                  mig, mig2),
        0);
    lm_test_cp_start(&cp);
    char *resp;
    cr_assert_eq(agent_poll_raw(&a, 2, &resp), 200, "%s", resp);
    cr_assert_null(strstr(resp, "other-src-pw"), "the swapped password was delivered: %s", resp);
    cr_assert_null(strstr(resp, "s3cret-src"), "the swapped password was delivered: %s", resp);
    lm_proto_assignments_t *m = calloc(1, sizeof *m);
    lm_error_t err;
    cr_assert(lm_proto_assignments_decode(resp, strlen(resp), m, &err), "%s", err.message);
    cr_assert_eq(m->n_jobs, 0, "a job with a moved password was handed out: %s", resp);
    lm_proto_assignments_cleanup(m);
    free(m);
    free(resp);
    /* the operator sees why, naming the row; the job is not running */
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    char row[120];
    snprintf(row, sizeof row, "jobs/%s/sourcePassword", mig);
    cr_assert(strstr(out, row) && strstr(out, "another row or field"), "%s", out);
    cr_assert(strstr(out, "\"NEW\""), "%s", out);
    free(out);
    /* logged once per job, however often the agent polls */
    cr_assert_eq(agent_poll_raw(&a, 1, &resp), 200, "%s", resp);
    free(resp);
    char *log = lm_test_slurp(cp.log);
    const char *p = strstr(log, row);
    cr_assert(p, "%s", log);
    cr_assert_null(strstr(p + 1, row), "logged more than once: %s", log);
    cr_assert_null(strstr(log, "other-src-pw"));
    free(log);
    /* the jobs' own rows put back: both are handed out, each with its own password */
    lm_test_cp_stop(&cp);
    cr_assert_eq(
        db_script("q='SELECT src_password FROM jobs WHERE id=?'; "
                  "pa=db.execute(q,(sys.argv[2],)).fetchone()[0]; "
                  "pb=db.execute(q,(sys.argv[3],)).fetchone()[0]; "
                  "db.execute('UPDATE jobs SET src_password=? WHERE id=?',(pb,sys.argv[2])); "
                  "db.execute('UPDATE jobs SET src_password=? WHERE id=?',(pa,sys.argv[3]))",
                  mig, mig2),
        0);
    lm_test_cp_start(&cp);
    m = agent_poll(&a, 2);
    cr_assert_eq(m->n_jobs, 2);
    for (size_t i = 0; i < 2; i++)
        cr_assert_str_eq(m->jobs[i].source.password,
                         strcmp(m->jobs[i].job_id, mig) == 0 ? "s3cret-src" : "other-src-pw");
    lm_proto_assignments_cleanup(m);
    free(m);
}

/* A registry password moved onto a job's row (or the other way) does not open either. */
Test(controlplane, a_registry_password_moved_to_a_job_is_not_delivered)
{
    char proj[80], mig[80], *out;
    agent_t a;
    prepare(proj, sizeof proj, &a, mig, sizeof mig);
    lm_test_cp_stop(&cp);
    cr_assert_eq(
        db_script("pw=db.execute(\\\"SELECT password FROM clusters WHERE name='dst'\\\")"
                  ".fetchone()[0]; assert pw; "
                  "db.execute('UPDATE jobs SET src_password=? WHERE id=?',(pw,sys.argv[2]))",
                  mig, NULL),
        0);
    lm_test_cp_start(&cp);
    char *resp;
    cr_assert_eq(agent_poll_raw(&a, 2, &resp), 200, "%s", resp);
    cr_assert_null(strstr(resp, "target-secret"), "the registry's password was delivered: %s",
                   resp);
    free(resp);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "another row or field"), "%s", out);
    free(out);
}

/* plain sealed as control planes before the row binding did ("v1:", AES-256-GCM without
 * associated data) under the key of the file key_file (written here from the format). */
static void seal_unbound(const char *key_file, const char *plain, char *out, size_t size)
{
    char *hex = lm_test_slurp(key_file);
    uint8_t key[32], buf[256];
    for (int i = 0; i < 32; i++)
        cr_assert_eq(sscanf(hex + 2 * i, "%2hhx", &key[i]), 1);
    free(hex);
    size_t n = strlen(plain);
    int len = 0, fin = 0;
    cr_assert(12 + n + 16 <= sizeof buf && 3 + 2 * (12 + n + 16) + 1 <= size);
    cr_assert_eq(RAND_bytes(buf, 12), 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    cr_assert(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, buf) == 1 &&
              EVP_EncryptUpdate(ctx, buf + 12, &len, (const uint8_t *)plain, (int)n) == 1 &&
              EVP_EncryptFinal_ex(ctx, buf + 12 + len, &fin) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, buf + 12 + n) == 1);
    EVP_CIPHER_CTX_free(ctx);
    memcpy(out, "v1:", 3);
    lm_hex_encode(buf, 12 + n + 16, out + 3);
}

/* Puts older control planes' secrets (src for the job, dst for cluster dst) into the
 * database and its version back to 2, as an upgrade finds them. */
static void older_secrets(const char *key_file, const char *src, const char *dst)
{
    char a[300], b[300];
    seal_unbound(key_file, src, a, sizeof a);
    seal_unbound(key_file, dst, b, sizeof b);
    cr_assert_eq(db_script("db.execute('UPDATE jobs SET src_password=?',(sys.argv[2],)); "
                           "db.execute(\\\"UPDATE clusters SET password=? WHERE name='dst'\\\","
                           "(sys.argv[3],)); db.execute('PRAGMA user_version=2')",
                           a, b),
                 0);
}

/* An upgrade: secrets sealed by an older control plane (no associated data) are sealed
 * again bound to their rows when the database is opened (schema version 3, then 4), and still
 * deliver their passwords; an unbound secret found after that is refused with what to do;
 * under the wrong key the control plane does not start and changes nothing. */
Test(controlplane, older_secrets_are_bound_to_their_rows_at_start)
{
    char proj[80], mig[80], key_file[700], *out;
    agent_t a;
    prepare(proj, sizeof proj, &a, mig, sizeof mig);
    snprintf(key_file, sizeof key_file, "%s/secrets.key", dir);
    lm_test_cp_stop(&cp);
    older_secrets(key_file, "old-src-pw", "old-dst-pw");
    lm_test_cp_start(&cp);
    lm_proto_assignments_t *m = agent_poll(&a, 2);
    cr_assert_eq(m->n_jobs, 1);
    cr_assert_str_eq(m->jobs[0].source.password, "old-src-pw");
    cr_assert_str_eq(m->jobs[0].target.password, "old-dst-pw");
    lm_proto_assignments_cleanup(m);
    free(m);
    lm_test_cp_stop(&cp);
    cr_assert_eq(db_script("v=db.execute('PRAGMA user_version').fetchone()[0]; assert v == 5, v; "
                           "rows=db.execute('SELECT src_password FROM jobs UNION ALL SELECT "
                           "password FROM clusters').fetchall(); "
                           "assert all(r[0] is None or r[0].startswith('v2:') for r in rows), rows",
                           NULL, NULL),
                 0);
    /* an unbound secret after the migration (an older control plane run on the database
     * again, or a row copied from a backup) is refused, saying what to do */
    char old[300];
    seal_unbound(key_file, "old-src-pw", old, sizeof old);
    cr_assert_eq(db_script("db.execute('UPDATE jobs SET src_password=?, delivered=NULL',"
                           "(sys.argv[2],))",
                           old, NULL),
                 0);
    lm_test_cp_start(&cp);
    char *resp;
    cr_assert_eq(agent_poll_raw(&a, 1, &resp), 200, "%s", resp);
    cr_assert_null(strstr(resp, "old-src-pw"), "%s", resp);
    free(resp);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "enter this password again"), "%s", out);
    free(out);
    lm_test_cp_stop(&cp);
    /* an upgrade under another key: refused at start, naming the row; nothing changed */
    char wrong[700];
    snprintf(wrong, sizeof wrong, "%s/wrong.key", dir);
    cr_assert_eq(lm_test_sh("openssl rand -hex 32 > '%s' && chmod 600 '%s'", wrong, wrong), 0);
    older_secrets(wrong, "x", "y");
    char log[800];
    snprintf(log, sizeof log, "%s/start.log", dir);
    cr_assert_neq(lm_test_sh("timeout 20 '%s' --config '%s' > '%s' 2>&1", LM_CP_BIN, cp.conf, log),
                  0);
    char *text = lm_test_slurp(log);
    char row[120];
    snprintf(row, sizeof row, "jobs/%s/sourcePassword", mig);
    cr_assert(strstr(text, row) && strstr(text, "secrets_key_file") &&
                  strstr(text, "nothing was changed"),
              "%s", text);
    free(text);
    cr_assert_eq(db_script("v=db.execute('PRAGMA user_version').fetchone()[0]; assert v == 2, v; "
                           "assert db.execute('SELECT src_password FROM jobs').fetchone()[0]"
                           ".startswith('v1:')",
                           NULL, NULL),
                 0);
}

/* The verification after the cutover as the agent reports it: stored and shown by GET and
 * the CLI; a section past the caps clipped, a malformed one refused without touching the
 * migration; a verification on demand goes to the agent as a verify-only job, whose
 * reports change nothing but the verification. */
/* Issue 19: the events an agent reports are the migration's fault history in GET and in
 * `lm describe`; a report sent again adds none twice, and a restarted agent (whose report
 * carries only its new events) does not erase the earlier ones. */
Test(controlplane, reported_events_are_kept_once_across_agent_restarts)
{
    char proj[80], mig[80], *out;
    agent_t a;
    prepare(proj, sizeof proj, &a, mig, sizeof mig);
    lm_proto_status_t s;
    lm_proto_event_t ev[2] = {
        {.time_ms = INT64_C(1764495000000),
         .kind = "target_unreachable",
         .message = "target 127.0.0.1:2 unreachable: connection refused; waiting for it"},
        {.time_ms = INT64_C(1764495012300),
         .kind = "target_back",
         .message = "target 127.0.0.1:2 reachable again after 12.3 s"}};
    migration_report(&s, &a, mig, "RUNNING", false, 3);
    s.events = ev;
    s.n_events = 2;
    post_report(&a, &s);
    post_report(&a, &s); /* the same report again (a retry): nothing doubles */
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    lm_error_t err;
    lm_json_val_t *v = lm_json_parse(out, strlen(out), 0, 0, &err), *evs = NULL;
    cr_assert(v && lm_json_get_arr(v, "events", true, 0, &evs, &err), "%s", out);
    cr_assert_eq(lm_json_len(evs), 2, "%s", out);
    cr_assert_str_eq(lm_json_string(lm_json_get(lm_json_at(evs, 0), "kind")), "target_unreachable");
    cr_assert_str_eq(lm_json_string(lm_json_get(lm_json_at(evs, 0), "time")),
                     "2025-11-30T09:30:00.000Z");
    cr_assert_str_eq(lm_json_string(lm_json_get(lm_json_at(evs, 1), "message")),
                     "target 127.0.0.1:2 reachable again after 12.3 s");
    cr_assert_str_eq(lm_json_string(lm_json_get(lm_json_at(evs, 1), "agentId")), a.id);
    lm_json_free(v);
    free(out);
    /* the agent restarted: its report holds only what happened since */
    lm_proto_event_t resumed = {.time_ms = INT64_C(1764495100000),
                                .kind = "agent_resumed",
                                .message = "resuming job x (phase STREAMING)"};
    s.events = &resumed;
    s.n_events = 1;
    post_report(&a, &s);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    v = lm_json_parse(out, strlen(out), 0, 0, &err);
    cr_assert(v && lm_json_get_arr(v, "events", true, 0, &evs, &err), "%s", out);
    cr_assert_eq(lm_json_len(evs), 3, "%s", out);
    cr_assert_str_eq(lm_json_string(lm_json_get(lm_json_at(evs, 2), "kind")), "agent_resumed");
    lm_json_free(v);
    free(out);
    /* the table shows them too */
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "events (3") && strstr(out, "target_back") &&
                  strstr(out, "reachable again after 12.3 s"),
              "%s", out);
    free(out);
    /* bounded per migration: the newest LM_CP_JOB_EVENTS_MAX (100) */
    lm_proto_event_t many[LM_PROTO_MAX_EVENTS];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < LM_PROTO_MAX_EVENTS; i++) {
            many[i].time_ms = INT64_C(1764496000000) + round * 1000 + i;
            snprintf(many[i].kind, sizeof many[i].kind, "cursor_reopened");
            snprintf(many[i].message, sizeof many[i].message, "round %d event %d", round, i);
        }
        s.events = many;
        s.n_events = LM_PROTO_MAX_EVENTS;
        post_report(&a, &s);
    }
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    v = lm_json_parse(out, strlen(out), 0, 0, &err);
    cr_assert(v && lm_json_get_arr(v, "events", true, 0, &evs, &err), "%s", out);
    cr_assert_eq(lm_json_len(evs), 100, "%zu", lm_json_len(evs));
    cr_assert_str_eq(lm_json_string(lm_json_get(lm_json_at(evs, 0), "message")), "round 1 event 0");
    lm_json_free(v);
    free(out);
}

/* The events of migration `mig` of kind `kind` in `lm describe -o json` (issue 16). */
static int count_events(const char *mig, const char *proj, const char *kind, char **text)
{
    char *out;
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    lm_error_t err;
    lm_json_val_t *v = lm_json_parse(out, strlen(out), 0, 0, &err), *evs = NULL;
    cr_assert(v && lm_json_get_arr(v, "events", true, 0, &evs, &err), "%s", out);
    int n = 0;
    for (size_t i = 0; i < lm_json_len(evs); i++) {
        const char *k = lm_json_string(lm_json_get(lm_json_at(evs, i), "kind"));
        n += k && strcmp(k, kind) == 0;
    }
    lm_json_free(v);
    if (text)
        *text = out;
    else
        free(out);
    return n;
}

/* Issue 16: an agent that sends no heartbeat for host_grace is recorded lost in the history
 * of the migrations it runs (once), and back when it heartbeats again; one that heartbeats
 * is never lost. */
Test(controlplane, a_silent_migration_host_is_recorded_lost_and_back)
{
    lm_test_cp_config(&cp, "host_grace: 2s\n");
    char proj[80], mig[80], *out;
    agent_t a;
    prepare(proj, sizeof proj, &a, mig, sizeof mig);
    lm_proto_assignments_t *m = agent_poll(&a, 1); /* the agent holds the migration */
    cr_assert_eq(m->n_jobs, 1);
    lm_proto_assignments_cleanup(m);
    free(m);
    cr_assert_eq(agent_heartbeat(&a, &out), 200, "%s", out);
    free(out);
    agent_report(&a, mig, "RUNNING", false, 3);
    int64_t until = lm_time_mono_ms() + 15000;
    while (count_events(mig, proj, "host_lost", NULL) == 0) {
        cr_assert_lt(lm_time_mono_ms(), until, "the silent host was never recorded lost:\n%s",
                     lm_test_slurp(cp.log));
        lm_time_sleep_ms(300, NULL);
    }
    cr_assert_eq(count_events(mig, proj, "host_lost", &out), 1);
    cr_assert(strstr(out, "migration host mig-host-1") && strstr(out, "host_grace 2s") &&
                  strstr(out, a.id),
              "%s", out);
    free(out);
    lm_time_sleep_ms(2500, NULL); /* still silent: recorded once */
    cr_assert_eq(count_events(mig, proj, "host_lost", NULL), 1);
    cr_assert_eq(count_events(mig, proj, "host_back", NULL), 0);
    /* it heartbeats again: back, and while it heartbeats it is not lost again */
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(agent_heartbeat(&a, &out), 200, "%s", out);
        free(out);
        lm_time_sleep_ms(500, NULL);
    }
    cr_assert_eq(count_events(mig, proj, "host_back", &out), 1);
    cr_assert(strstr(out, "sends heartbeats again"), "%s", out);
    free(out);
    cr_assert_eq(count_events(mig, proj, "host_lost", NULL), 1);
    cr_assert(strstr(lm_test_slurp(cp.log), "has sent no heartbeat for"), "%s",
              lm_test_slurp(cp.log));
}

/* Issue 16: a sharded migration's per-shard rows from an agent's reports (a section that
 * does not read is left out, the report taken), shown with the host; restart-shard: 404 for
 * an unknown shard, 409 for one not FAILED, 202 and a command with the shard, acknowledged. */
Test(controlplane, shards_are_shown_and_a_failed_one_restarted)
{
    char proj[80], mig[80], *out;
    agent_t a;
    prepare(proj, sizeof proj, &a, mig, sizeof mig);
    lm_proto_assignments_t *m = agent_poll(&a, 1);
    lm_proto_assignments_cleanup(m);
    free(m);
    lm_proto_status_t s;
    lm_proto_shard_t sh[2] = {{.name = "src-shard0",
                               .target_shard = "dst-shard0",
                               .state = "RUNNING",
                               .phase = "STREAMING",
                               .docs_copied = 10,
                               .has_lag = true,
                               .lag_seconds = 0.5,
                               .ready_for_cutover = true},
                              {.name = "src-shard1",
                               .target_shard = "dst-shard1",
                               .state = "FAILED",
                               .phase = "COPYING",
                               .docs_copied = 7,
                               .has_percentage = true,
                               .percentage = 12.5,
                               .last_error = "source unreachable"}};
    migration_report(&s, &a, mig, "RUNNING", false, 3);
    s.shards = sh;
    s.n_shards = 2;
    post_report(&a, &s);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "\"name\": \"src-shard1\"") &&
                  strstr(out, "\"migrationHost\": \"mig-host-1\"") &&
                  strstr(out, "\"lastError\": \"source unreachable\"") &&
                  strstr(out, "\"percentage\": 12.5"),
              "%s", out);
    free(out);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "shards (2):") &&
                  strstr(out, "shard src-shard1 FAILED: source unreachable"),
              "%s", out);
    free(out);
    /* a shards section that does not read: the report is taken, the rows stay */
    char body[600], *resp;
    snprintf(body, sizeof body,
             "{\"v\":1,\"agentId\":\"%s\",\"jobId\":\"%s\",\"kind\":\"migration\","
             "\"phase\":\"STREAMING\",\"state\":\"RUNNING\",\"lagTimeSeconds\":1.5,"
             "\"shards\":[{\"phase\":\"COPYING\"}]}",
             a.id, mig);
    cr_assert_eq(https("POST", "/api/agent/v1/status", a.bearer, a.id, body, &resp), 200, "%s",
                 resp);
    free(resp);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "\"lagTimeSeconds\": 2") && strstr(out, "src-shard1"), "%s", out);
    free(out);
    cr_assert(strstr(lm_test_slurp(cp.log), "the shards in agent"), "%s", lm_test_slurp(cp.log));
    /* restart: unknown (404), not failed (409), failed (202) */
    cr_assert_neq(CLI(&out, "lm restart-shard %s --projectId %s --shard nosuch", mig, proj), 0);
    cr_assert(strstr(out, "404") && strstr(out, "SHARD_NOT_FOUND"), "%s", out);
    free(out);
    cr_assert_neq(CLI(&out, "lm restart-shard %s --projectId %s --shard src-shard0", mig, proj), 0);
    cr_assert(strstr(out, "409") && strstr(out, "is RUNNING"), "%s", out);
    free(out);
    cr_assert_eq(CLI(&out, "lm restart-shard %s --projectId %s --shard src-shard1", mig, proj), 0,
                 "%s", out);
    free(out);
    m = agent_poll(&a, 2);
    cr_assert_eq(m->n_commands, 1);
    cr_assert_eq(m->commands[0].kind, LM_PROTO_CMD_RESTART_SHARD);
    cr_assert_str_eq(m->commands[0].shard, "src-shard1");
    cr_assert_str_eq(m->commands[0].job_id, mig);
    lm_proto_assignments_cleanup(m);
    free(m);
    m = agent_poll(&a, 1); /* acknowledged: not sent again */
    cr_assert_eq(m->n_commands, 0);
    lm_proto_assignments_cleanup(m);
    free(m);
    /* the migration ends: its shards end with it, and nothing is restarted any more */
    agent_report(&a, mig, "COMPLETE", false, 0);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "\"state\": \"COMPLETE\"") && strstr(out, "\"state\": \"FAILED\""),
              "src-shard0 COMPLETE, src-shard1 keeps FAILED: %s", out);
    free(out);
    cr_assert_neq(CLI(&out, "lm restart-shard %s --projectId %s --shard src-shard1", mig, proj), 0);
    cr_assert(strstr(out, "MIGRATION_NOT_ACTIVE"), "%s", out);
    free(out);
}

Test(controlplane, verification_reports_and_verification_on_demand)
{
    char proj[80], mig[80], *out, *resp;
    agent_t a;
    prepare(proj, sizeof proj, &a, mig, sizeof mig);
    lm_proto_assignments_t *m = agent_poll(&a, 2);
    cr_assert_eq(m->n_jobs, 1);
    cr_assert(m->jobs[0].verify, "verification after the cutover is on by default");
    cr_assert_not(m->jobs[0].verify_only);
    lm_proto_assignments_cleanup(m);
    free(m);
    /* not COMPLETE: no verification on demand */
    cr_assert_neq(CLI(&out, "lm verify %s --projectId %s", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "is NEW"), "%s", out);
    free(out);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "\"verification\": null"), "%s", out);
    free(out);

    /* cut over, verifying: COMPLETE with the verification running */
    lm_proto_status_t s;
    migration_report(&s, &a, mig, "COMPLETE", false, 0);
    s.verification.present = true;
    snprintf(s.verification.state, sizeof s.verification.state, "running");
    s.verification.namespaces_total = 4;
    s.verification.namespaces_checked = 1;
    post_report(&a, &s);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "\"COMPLETE\"") && strstr(out, "\"state\": \"running\"") &&
                  strstr(out, "\"namespacesTotal\": 4"),
              "%s", out);
    free(out);
    /* while it runs, none on demand */
    cr_assert_neq(CLI(&out, "lm verify %s --projectId %s", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "VERIFICATION_RUNNING") || strstr(out, "running already"), "%s", out);
    free(out);
    /* the agent's heartbeat no longer lists the job (it restarted): the running
     * verification becomes an error that says to ask again */
    cr_assert_eq(agent_heartbeat(&a, &resp), 200, "%s", resp);
    free(resp);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "\"state\": \"error\"") && strstr(out, "livemig lm verify"), "%s", out);
    free(out);

    /* an agent's section past the caps: taken, clipped */
    lm_strbuf_t b;
    lm_strbuf_init(&b, LM_PROTO_MAX_BYTES);
    lm_strbuf_appendf(&b,
                      "{\"v\":1,\"agentId\":\"%s\",\"jobId\":\"%s\",\"kind\":\"migration\","
                      "\"phase\":\"COMPLETE\",\"state\":\"COMPLETE\",\"verification\":{\"state\":"
                      "\"failed\",\"namespacesTotal\":40,\"namespacesChecked\":40,"
                      "\"namespacesFailed\":30,\"differences\":[",
                      a.id, mig);
    for (int i = 0; i < 30; i++) {
        lm_strbuf_appendf(&b, "%s{\"ns\":\"db.c%d\",\"reasons\":[\"", i ? "," : "", i);
        for (int k = 0; k < 2000; k++)
            lm_strbuf_append(&b, "r");
        lm_strbuf_append(&b, "\"],\"ids\":[\"{ \\\"_id\\\" : 7 } (missing on the target)\"]}");
    }
    lm_strbuf_append(&b, "]}}");
    cr_assert_eq(https("POST", "/api/agent/v1/status", a.bearer, a.id, lm_strbuf_str(&b), &resp),
                 200, "%s", resp);
    free(resp);
    lm_strbuf_cleanup(&b);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "\"state\": \"failed\"") && strstr(out, "\"clipped\": true") &&
                  strstr(out, "db.c19") && !strstr(out, "db.c20") && strstr(out, "\"COMPLETE\""),
              "%s", out);
    char longest[LM_PROTO_VERIFY_TEXT + 1];
    memset(longest, 'r', LM_PROTO_VERIFY_TEXT);
    longest[LM_PROTO_VERIFY_TEXT] = '\0';
    cr_assert(strstr(out, longest + 1), "the reason is cut to 255 bytes: %s", out);
    cr_assert_null(strstr(out, longest), "a reason longer than 255 bytes: %s", out);
    free(out);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "VERIFICATION FAILED") && strstr(out, "db.c3") &&
                  strstr(out, "_id { \"_id\" : 7 } (missing on the target)"),
              "%s", out);
    free(out);

    /* a malformed section: the report is taken, the section refused, the migration kept */
    char bad[600];
    snprintf(bad, sizeof bad,
             "{\"v\":1,\"agentId\":\"%s\",\"jobId\":\"%s\",\"kind\":\"migration\",\"phase\":"
             "\"COMPLETE\",\"state\":\"COMPLETE\",\"verification\":{\"state\":\"great\"}}",
             a.id, mig);
    cr_assert_eq(https("POST", "/api/agent/v1/status", a.bearer, a.id, bad, &resp), 200, "%s",
                 resp);
    free(resp);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "\"COMPLETE\"") && strstr(out, "\"state\": \"error\"") &&
                  strstr(out, "verification report was refused") && strstr(out, "'state'"),
              "%s", out);
    free(out);

    /* on demand: requested, handed out again as a verify-only job with its credentials */
    cr_assert_eq(CLI(&out, "lm verify %s --projectId %s", mig, proj), 0, "%s", out);
    free(out);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "\"state\": \"requested\""), "%s", out);
    free(out);
    cr_assert_neq(CLI(&out, "lm verify %s --projectId %s", mig, proj), 0, "%s", out);
    free(out);
    m = agent_poll(&a, 2);
    cr_assert_eq(m->n_jobs, 1);
    cr_assert_str_eq(m->jobs[0].job_id, mig);
    cr_assert(m->jobs[0].verify_only);
    cr_assert_str_eq(m->jobs[0].source.password, "s3cret-src");
    lm_proto_assignments_cleanup(m);
    free(m);
    /* its reports change the verification only (not the phase, lag or status) */
    migration_report(&s, &a, mig, "RUNNING", false, 99);
    s.verify_only = true;
    s.verification.present = true;
    snprintf(s.verification.state, sizeof s.verification.state, "running");
    post_report(&a, &s);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "\"COMPLETE\"") && strstr(out, "\"state\": \"running\"") &&
                  !strstr(out, "STREAMING") && strstr(out, "\"lagTimeSeconds\": null,"),
              "%s", out);
    free(out);
    migration_report(&s, &a, mig, "COMPLETE", false, 0);
    s.verify_only = true;
    s.verification.present = true;
    snprintf(s.verification.state, sizeof s.verification.state, "passed");
    s.verification.namespaces_total = s.verification.namespaces_checked = 4;
    s.verification.documents_checked = 1234;
    post_report(&a, &s);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "passed") && strstr(out, "1234") && !strstr(out, "FAILED"), "%s", out);
    free(out);
    /* done: not handed out again */
    m = agent_poll(&a, 1);
    cr_assert_eq(m->n_jobs, 0);
    lm_proto_assignments_cleanup(m);
    free(m);
    char *log = lm_test_slurp(cp.log);
    cr_assert(strstr(log, "verification FAILED") && strstr(log, "verification passed") &&
                  strstr(log, "verification requested"),
              "%s", log);
    free(log);
}

/* ---- issue 16: one migration spread over two migration hosts ---- */

/* Polls a once (wait seconds): its jobs and commands, for the caller to look at and free. */
static lm_proto_assignments_t *poll_beating(agent_t *a, agent_t *other, int wait)
{
    char *out;
    cr_assert_eq(agent_heartbeat(a, &out), 200, "%s", out);
    free(out);
    if (other) {
        cr_assert_eq(agent_heartbeat(other, &out), 200, "%s", out);
        free(out);
    }
    return agent_poll(a, wait);
}

/* A part's report: state, ready, lag, and its shards (name:state pairs) as rows. */
static void part_report(agent_t *a, const char *part, const char *state, bool ready, double lag,
                        const char *const *shards, size_t n)
{
    lm_proto_status_t s;
    lm_proto_shard_t rows[8];
    migration_report(&s, a, part, state, ready, lag);
    memset(rows, 0, sizeof rows);
    for (size_t i = 0; i < n; i++) {
        snprintf(rows[i].name, sizeof rows[i].name, "%s", shards[2 * i]);
        snprintf(rows[i].state, sizeof rows[i].state, "%s", shards[2 * i + 1]);
        snprintf(rows[i].phase, sizeof rows[i].phase, "%s",
                 strcmp(state, "COMPLETE") == 0 ? "COMPLETE" : "STREAMING");
        rows[i].ready_for_cutover = ready;
        rows[i].has_lag = true;
        rows[i].lag_seconds = lag;
    }
    s.shards = n ? rows : NULL;
    s.n_shards = n;
    post_report(a, &s);
}

/* `lm describe` as JSON (lm_json_free it). */
static lm_json_val_t *describe_json(const char *mig, const char *proj)
{
    char *out;
    lm_error_t err;
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    lm_json_val_t *v = lm_json_parse(out, strlen(out), 0, 0, &err);
    cr_assert(v, "%s: %s", err.message, out);
    free(out);
    return v;
}

static bool json_true(lm_json_val_t *v, const char *key)
{
    bool b = false;
    lm_error_t err;
    cr_assert(lm_json_get_bool(v, key, true, &b, &err), "%s", err.message);
    return b;
}

static int64_t json_int(lm_json_val_t *v, const char *key)
{
    int64_t n = -1;
    lm_error_t err;
    cr_assert(lm_json_get_int(v, key, true, INT64_MIN, INT64_MAX, &n, &err), "%s", err.message);
    return n;
}

static const char *shard_field(lm_json_val_t *v, const char *name, const char *key)
{
    lm_json_val_t *shards = lm_json_get(v, "shards");
    for (size_t i = 0; shards && i < lm_json_len(shards); i++)
        if (strcmp(lm_json_string(lm_json_get(lm_json_at(shards, i), "name")), name) == 0)
            return lm_json_string(lm_json_get(lm_json_at(shards, i), key));
    return NULL;
}

/* The control plane's side of a migration spread over two hosts, with scripted agents: the
 * lead part first (awaitShards), the shards spread by the sizes it reports (largest first to
 * the least loaded host), a follower part with its shards, assign-shards to the lead; the
 * migration's row from both parts; the cutover to the follower first and to the lead once
 * the follower is COMPLETE; a host lost: its part released (its reports answered 409), its
 * shards handed to the other host as a new part; restart-shard to the part that runs it. */
Test(controlplane, a_sharded_migration_is_spread_over_two_hosts, .timeout = 180)
{
    lm_test_cp_config(&cp, "host_grace: 3s\n");
    char proj[80], mig[80], *out;
    agent_t a1, a2;
    prepare(proj, sizeof proj, &a1, NULL, 0);
    agent_link(&a2, link_token, "mig-host-2");
    /* a host listed twice, or not linked, is refused */
    cr_assert_neq(CLI(&out,
                      "lm create --projectId %s --clusterName dst --migrationHost mig-host-1 "
                      "--migrationHost mig-host-1 --sourceClusterName src --sourceProjectId %s",
                      proj, proj),
                  0);
    cr_assert(strstr(out, "listed twice"), "%s", out);
    free(out);
    cr_assert_neq(CLI(&out,
                      "lm create --projectId %s --clusterName dst --migrationHost mig-host-1 "
                      "--migrationHost nohost --sourceClusterName src --sourceProjectId %s",
                      proj, proj),
                  0);
    cr_assert(strstr(out, "MIGRATION_HOST_NOT_FOUND") && strstr(out, "nohost"), "%s", out);
    free(out);
    cr_assert_eq(CLI(&out,
                     "lm create --projectId %s --clusterName dst --migrationHost mig-host-1 "
                     "--migrationHost mig-host-2 --sourceClusterName src --sourceProjectId %s "
                     "--sourceUsername reader --sourcePasswordFile '%s' -o json",
                     proj, proj, src_pw_file()),
                 0, "%s", out);
    lm_test_json_field(out, "_id", mig, sizeof mig);
    cr_assert(strstr(out, "\"migrationHosts\"") && strstr(out, "\"mig-host-2\""), "%s", out);
    free(out);

    /* the lead part goes to the first host, waiting for its shards; nothing to the second */
    lm_proto_assignments_t *m = poll_beating(&a2, &a1, 1);
    cr_assert_eq(m->n_jobs, 0);
    lm_proto_assignments_cleanup(m);
    free(m);
    m = poll_beating(&a1, &a2, 1);
    cr_assert_eq(m->n_jobs, 1);
    char lead[80];
    snprintf(lead, sizeof lead, "%s", m->jobs[0].job_id);
    cr_assert_str_neq(lead, mig);
    cr_assert_str_eq(m->jobs[0].migration_id, mig);
    cr_assert_str_eq(m->jobs[0].sharded_role, "lead");
    cr_assert(m->jobs[0].await_shards);
    cr_assert_eq(m->jobs[0].n_shards, 0);
    cr_assert_eq(m->jobs[0].lease_seconds, 1, "host_grace 3s: a lease of half");
    cr_assert_str_eq(m->jobs[0].source.password, "s3cret-src", "the migration's own password");
    lm_proto_assignments_cleanup(m);
    free(m);

    /* it reports the source's shards with their sizes: they are spread */
    lm_proto_status_t s;
    lm_proto_shard_t rows[3] = {
        {.name = "src-shard0", .state = "ASSIGNING", .has_size = true, .size_bytes = 1000},
        {.name = "src-shard1", .state = "ASSIGNING", .has_size = true, .size_bytes = 800},
        {.name = "src-shard2", .state = "ASSIGNING", .has_size = true, .size_bytes = 500}};
    migration_report(&s, &a1, lead, "RUNNING", false, 0);
    snprintf(s.phase, sizeof s.phase, "VALIDATING");
    s.has_lag = false;
    s.shards = rows;
    s.n_shards = 3;
    post_report(&a1, &s);
    m = poll_beating(&a1, &a2, 1);
    cr_assert_eq(m->n_commands, 1);
    cr_assert_eq(m->commands[0].kind, LM_PROTO_CMD_ASSIGN_SHARDS);
    cr_assert_str_eq(m->commands[0].job_id, lead);
    cr_assert_str_eq(m->commands[0].shards, "src-shard0", "the largest to the lead");
    lm_proto_assignments_cleanup(m);
    free(m);
    post_report(&a1, &s); /* reported again before it took the command: nothing moves back */
    m = poll_beating(&a2, &a1, 1);
    cr_assert_eq(m->n_jobs, 1);
    char follower[80];
    snprintf(follower, sizeof follower, "%s", m->jobs[0].job_id);
    cr_assert_str_eq(m->jobs[0].migration_id, mig);
    cr_assert_str_eq(m->jobs[0].sharded_role, "follower");
    cr_assert_not(m->jobs[0].await_shards);
    cr_assert_eq(m->jobs[0].n_shards, 2);
    cr_assert_str_eq(m->jobs[0].shards[0], "src-shard1");
    cr_assert_str_eq(m->jobs[0].shards[1], "src-shard2");
    cr_assert_str_eq(m->jobs[0].source.password, "s3cret-src");
    lm_proto_assignments_cleanup(m);
    free(m);
    lm_json_val_t *v = describe_json(mig, proj);
    cr_assert_str_eq(shard_field(v, "src-shard1", "migrationHost"), "mig-host-2");
    cr_assert_str_eq(shard_field(v, "src-shard1", "state"), "ASSIGNED");
    cr_assert_str_eq(shard_field(v, "src-shard0", "migrationHost"), "mig-host-1");
    cr_assert_eq(lm_json_len(lm_json_get(v, "parts")), 2);
    lm_json_free(v);
    cr_assert_eq(count_events(mig, proj, "shards_assigned", &out), 1);
    cr_assert(strstr(out, "mig-host-1: src-shard0") &&
                  strstr(out, "mig-host-2: src-shard1,src-shard2"),
              "%s", out);
    free(out);

    /* the migration's row follows both parts: ready only when both are, the worst lag */
    const char *mine1[] = {"src-shard0", "RUNNING"};
    const char *mine2[] = {"src-shard1", "RUNNING", "src-shard2", "RUNNING"};
    part_report(&a1, lead, "RUNNING", true, 1, mine1, 1);
    part_report(&a2, follower, "RUNNING", false, 7, mine2, 2);
    v = describe_json(mig, proj);
    cr_assert_str_eq(lm_json_string(lm_json_get(v, "status")), "WORKING");
    cr_assert_not(json_true(v, "readyForCutover"));
    cr_assert_eq(json_int(v, "lagTimeSeconds"), 7);
    cr_assert_str_eq(shard_field(v, "src-shard2", "state"), "RUNNING");
    lm_json_free(v);
    cr_assert_neq(CLI(&out, "lm cutover %s --projectId %s --force", mig, proj), 0);
    cr_assert(strstr(out, "409"), "not ready: %s", out);
    free(out);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "parts (2, one per migration host)") && strstr(out, "follower") &&
                  strstr(out, "src-shard1,src-shard2"),
              "%s", out);
    free(out);

    /* mig-host-2 goes silent: after host_grace its part is released and its shards handed
     * to mig-host-1 as a new part, resuming from their checkpoints */
    int64_t until = lm_time_mono_ms() + 20000;
    char moved[80] = "";
    while (!moved[0]) {
        m = poll_beating(&a1, NULL, 1);
        for (size_t i = 0; i < m->n_jobs; i++)
            if (strcmp(m->jobs[i].job_id, lead) != 0) {
                snprintf(moved, sizeof moved, "%s", m->jobs[i].job_id);
                cr_assert_str_eq(m->jobs[i].sharded_role, "follower");
                cr_assert_eq(m->jobs[i].n_shards, 2);
                cr_assert_str_eq(m->jobs[i].shards[0], "src-shard1");
                cr_assert_str_eq(m->jobs[i].migration_id, mig);
            }
        lm_proto_assignments_cleanup(m);
        free(m);
        cr_assert_lt(lm_time_mono_ms(), until, "the lost host's shards never moved:\n%s",
                     lm_test_slurp(cp.log));
    }
    cr_assert_eq(count_events(mig, proj, "part_reassigned", &out), 1);
    cr_assert(strstr(out, "migration host mig-host-2 is lost") &&
                  strstr(out, "mig-host-1: src-shard1,src-shard2"),
              "%s", out);
    free(out);
    /* mig-host-2 comes back: its part's reports are refused, it is told to stop */
    migration_report(&s, &a2, follower, "RUNNING", true, 0);
    char *resp;
    cr_assert_eq(post_report_as(&a2, a2.bearer, &s, &resp), 409, "%s", resp);
    cr_assert(strstr(resp, "PART_REASSIGNED"), "%s", resp);
    free(resp);
    m = poll_beating(&a2, &a1, 1);
    cr_assert_eq(m->n_jobs, 0, "a released part is not handed out again");
    lm_proto_assignments_cleanup(m);
    free(m);
    v = describe_json(mig, proj);
    cr_assert_str_eq(shard_field(v, "src-shard1", "migrationHost"), "mig-host-1");
    cr_assert_eq(lm_json_len(lm_json_get(v, "parts")), 2, "the lead and the moved part");
    lm_json_free(v);

    /* restart of a shard goes to the part that runs it */
    const char *failed[] = {"src-shard1", "FAILED", "src-shard2", "RUNNING"};
    part_report(&a1, moved, "RUNNING", false, 2, failed, 2);
    cr_assert_eq(CLI(&out, "lm restart-shard %s --projectId %s --shard src-shard1", mig, proj), 0,
                 "%s", out);
    free(out);
    m = poll_beating(&a1, NULL, 1);
    cr_assert_eq(m->n_commands, 1);
    cr_assert_eq(m->commands[0].kind, LM_PROTO_CMD_RESTART_SHARD);
    cr_assert_str_eq(m->commands[0].job_id, moved);
    lm_proto_assignments_cleanup(m);
    free(m);

    /* both parts ready: the cutover goes to the follower part first, the lead waits */
    part_report(&a1, moved, "RUNNING", true, 0, mine2, 2);
    part_report(&a1, lead, "RUNNING", true, 0, mine1, 1);
    v = describe_json(mig, proj);
    cr_assert(json_true(v, "readyForCutover"));
    cr_assert_eq(lm_json_type(lm_json_get(v, "cutoverWindowEndMs")), LM_JSON_INT);
    lm_json_free(v);
    cr_assert_eq(CLI(&out, "lm cutover %s --projectId %s --force", mig, proj), 0, "%s", out);
    free(out);
    m = poll_beating(&a1, NULL, 1);
    cr_assert_eq(m->n_commands, 1);
    cr_assert_eq(m->commands[0].kind, LM_PROTO_CMD_CUTOVER);
    cr_assert_str_eq(m->commands[0].job_id, moved, "the follower first");
    lm_proto_assignments_cleanup(m);
    free(m);
    part_report(&a1, lead, "RUNNING", true, 0, mine1, 1);
    lm_time_sleep_ms(1500, NULL);
    m = poll_beating(&a1, NULL, 1);
    cr_assert_eq(m->n_commands, 0, "the lead goes once the follower is COMPLETE");
    lm_proto_assignments_cleanup(m);
    free(m);
    part_report(&a1, moved, "COMPLETE", false, 0, NULL, 0);
    v = describe_json(mig, proj);
    cr_assert_str_eq(lm_json_string(lm_json_get(v, "status")), "WORKING");
    cr_assert_str_eq(shard_field(v, "src-shard2", "state"), "COMPLETE");
    lm_json_free(v);
    until = lm_time_mono_ms() + 10000;
    bool lead_cut = false;
    while (!lead_cut) {
        m = poll_beating(&a1, NULL, 2);
        for (size_t i = 0; i < m->n_commands; i++)
            lead_cut = lead_cut || (m->commands[i].kind == LM_PROTO_CMD_CUTOVER &&
                                    strcmp(m->commands[i].job_id, lead) == 0);
        lm_proto_assignments_cleanup(m);
        free(m);
        cr_assert_lt(lm_time_mono_ms(), until, "the lead never got its cutover");
    }
    part_report(&a1, lead, "COMPLETE", false, 0, NULL, 0);
    v = describe_json(mig, proj);
    cr_assert_str_eq(lm_json_string(lm_json_get(v, "status")), "COMPLETE");
    cr_assert_str_eq(shard_field(v, "src-shard0", "state"), "COMPLETE");
    lm_json_free(v);
    cr_assert_eq(count_events(mig, proj, "lead_cutover", NULL), 1);
}

/* Issue 16: a validation listing two hosts runs on both (the hosts that will run the
 * shards): each gets it, and the validation shows every check with the host it ran on,
 * PENDING until both reported, FAILED when one host's check failed. */
Test(controlplane, a_validation_runs_on_every_listed_host)
{
    char proj[80], *out, vid[80];
    agent_t a1, a2;
    prepare(proj, sizeof proj, &a1, NULL, 0);
    agent_link(&a2, link_token, "mig-host-2");
    cr_assert_eq(CLI(&out,
                     "lm validation create --projectId %s --clusterName dst --migrationHost "
                     "mig-host-1 --migrationHost mig-host-2 --sourceClusterName src "
                     "--sourceProjectId %s -o json",
                     proj, proj),
                 0, "%s", out);
    lm_test_json_field(out, "_id", vid, sizeof vid);
    free(out);
    char job[2][80];
    agent_t *as[2] = {&a1, &a2};
    for (int i = 0; i < 2; i++) {
        lm_proto_assignments_t *m = agent_poll(as[i], 2);
        cr_assert_eq(m->n_jobs, 1, "host %d", i + 1);
        cr_assert_eq(m->jobs[0].kind, LM_PROTO_JOB_VALIDATION);
        cr_assert_str_eq(m->jobs[0].migration_id, "", "a validation is no part of a migration");
        snprintf(job[i], sizeof job[i], "%s", m->jobs[0].job_id);
        lm_proto_assignments_cleanup(m);
        free(m);
    }
    cr_assert_str_neq(job[0], job[1]);
    lm_proto_check_t ok_checks[1] = {
        {.name = "shard-roles@src-shard0", .result = LM_PROTO_CHECK_PASS, .message = "roles ok"}};
    report_validation(&a1, job[0], ok_checks, 1);
    cr_assert_eq(CLI(&out, "lm validation describe %s --projectId %s -o json", vid, proj), 0, "%s",
                 out);
    cr_assert(strstr(out, "\"PENDING\"") && strstr(out, "on mig-host-1: roles ok"), "%s", out);
    free(out);
    lm_proto_check_t bad_checks[1] = {{.name = "target-free-disk",
                                       .result = LM_PROTO_CHECK_FAIL,
                                       .message = "the state dir needs 2 GB more"}};
    report_validation(&a2, job[1], bad_checks, 1);
    cr_assert_eq(CLI(&out, "lm validation describe %s --projectId %s -o json", vid, proj), 0, "%s",
                 out);
    cr_assert(strstr(out, "\"FAILED\"") && strstr(out, "on mig-host-2: the state dir needs") &&
                  strstr(out, "on mig-host-1: roles ok") && strstr(out, "host mig-host-2: "),
              "%s", out);
    free(out);
}
