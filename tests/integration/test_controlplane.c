/* livemig-controlplane over real HTTPS (a throwaway CA), driven only through the `livemig`
 * CLI and raw HTTPS requests; a scripted agent built on proto/ registers, heartbeats, polls
 * and reports, so that status, lag, cutover and the cutover window are exercised. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lm_http.h"
#include "lm_json.h"
#include "lm_link.h"
#include "lm_proto.h"
#include "lm_test_cp.h"
#include "lm_test_proc.h"
#include "lm_test_util.h"
#include "lm_time.h"

static char dir[512], keyfile[700];
static char pub[80];
static lm_test_cp_t cp;

static void setup(void)
{
    lm_test_mkdtemp(dir, sizeof dir);
    lm_test_cp_init(&cp, dir, "cutover_window: 120h\nextend_by: 24h\n");
}

static void teardown(void)
{
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

/* ---- the scripted agent ---- */

typedef struct {
    char bearer[200];
    char id[80];
    int64_t ack; /* the highest command seq polled: acknowledged by the next poll */
} agent_t;

static void agent_link(agent_t *a, const char *token, const char *host)
{
    lm_proto_link_token_t t;
    lm_error_t err;
    memset(a, 0, sizeof *a);
    cr_assert(lm_proto_link_token_decode(token, strlen(token), &t, &err), "%s", err.message);
    cr_assert_eq(strlen(t.ca_pin), 64);
    snprintf(a->bearer, sizeof a->bearer, "Bearer %s:%s", t.token_id, t.secret);
    lm_proto_register_req_t rq = {.os = "Linux"};
    snprintf(rq.hostname, sizeof rq.hostname, "%s", host);
    snprintf(rq.agent_version, sizeof rq.agent_version, "0.1.0");
    lm_strbuf_t b;
    lm_strbuf_init(&b, 1u << 16);
    cr_assert(lm_proto_register_req_encode(&rq, &b, &err));
    char *resp;
    long st = https("POST", "/api/agent/v1/register", a->bearer, NULL, lm_strbuf_str(&b), &resp);
    cr_assert_eq(st, 200, "%s", resp);
    lm_proto_register_resp_t rs;
    cr_assert(lm_proto_register_resp_decode(resp, strlen(resp), &rs, &err), "%s", err.message);
    snprintf(a->id, sizeof a->id, "%s", rs.agent_id);
    cr_assert_eq(rs.heartbeat_seconds, 1);
    lm_strbuf_cleanup(&b);
    free(resp);
    lm_proto_link_token_clear(&t);
}

static long agent_heartbeat(agent_t *a, char **resp)
{
    lm_proto_heartbeat_t hb = {.uptime_seconds = 5, .state_dir_free_bytes = 1 << 30};
    snprintf(hb.agent_id, sizeof hb.agent_id, "%s", a->id);
    snprintf(hb.hostname, sizeof hb.hostname, "mig-host-1");
    snprintf(hb.agent_version, sizeof hb.agent_version, "0.1.0");
    lm_strbuf_t b;
    lm_error_t err;
    lm_strbuf_init(&b, 1u << 16);
    cr_assert(lm_proto_heartbeat_encode(&hb, &b, &err));
    long st = https("POST", "/api/agent/v1/heartbeat", a->bearer, a->id, lm_strbuf_str(&b), resp);
    lm_strbuf_cleanup(&b);
    return st;
}

/* Polls once (wait seconds); decodes into m (heap; caller cleans up and frees). */
static lm_proto_assignments_t *agent_poll(agent_t *a, int wait)
{
    char path[100], *resp;
    snprintf(path, sizeof path, "/api/agent/v1/assignments?wait=%d&ack=%lld", wait,
             (long long)a->ack);
    long st = https("GET", path, a->bearer, a->id, NULL, &resp);
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

/* The scripted agent sends a status report; the control plane must take it. */
static void post_report(agent_t *a, const lm_proto_status_t *s)
{
    lm_strbuf_t b;
    lm_error_t err;
    lm_strbuf_init(&b, 1u << 16);
    cr_assert(lm_proto_status_encode(s, &b, &err), "%s", err.message);
    char *resp;
    long st = https("POST", "/api/agent/v1/status", a->bearer, a->id, lm_strbuf_str(&b), &resp);
    cr_assert_eq(st, 200, "%s", resp);
    lm_strbuf_cleanup(&b);
    free(resp);
}

static void agent_report(agent_t *a, const char *job, const char *state, bool ready, double lag)
{
    lm_proto_status_t s;
    memset(&s, 0, sizeof s);
    snprintf(s.agent_id, sizeof s.agent_id, "%s", a->id);
    snprintf(s.job_id, sizeof s.job_id, "%s", job);
    s.kind = LM_PROTO_JOB_MIGRATION;
    snprintf(s.phase, sizeof s.phase, "%s", strcmp(state, "RUNNING") ? "COMPLETE" : "STREAMING");
    snprintf(s.state, sizeof s.state, "%s", state);
    s.has_lag = true;
    s.lag_seconds = lag;
    s.ready_for_cutover = ready;
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
    char token[4096];
    snprintf(token, sizeof token, "%s", out);
    token[strcspn(token, "\n")] = '\0';
    free(out);
    agent_link(a, token, "mig-host-1");
    if (mig) {
        cr_assert_eq(CLI(&out,
                         "lm create --projectId %s --clusterName dst --migrationHost "
                         "mig-host-1 --sourceClusterName src --sourceProjectId %s "
                         "--sourceUsername reader --sourcePassword 's3cret-src' -o json",
                         proj, proj),
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
