/* The agent as a daemon of the control plane, end to end, acting like a user: two
 * test-bed servers, livemig-controlplane over real HTTPS, `livemig-agent --config` linked
 * with a link-token, and nothing but the `livemig` CLI to drive it. A writer runs on the
 * source; the control plane and the agent are killed and restarted mid-migration; the
 * cutover ends in COMPLETE and scripts/lm_check.py finds zero differences. Also: the
 * cutover window expiring (EXPIRED, syncing stopped), a second migration refused, a SIGHUP
 * with a broken config, a deleted link-token (revoked, the agent stops asking) and a new one
 * with SIGHUP (linked again). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lm_http.h"
#include "lm_json.h"
#include "lm_test_cp.h"
#include "lm_test_https.h"
#include "lm_test_proc.h"
#include "lm_test_util.h"
#include "lm_testbed.h"
#include "lm_time.h"

#define PY LM_SOURCE_DIR "/.deps/venv/bin/python"
#define WRITER LM_SOURCE_DIR "/scripts/lm_writer.py"
#define CHECK LM_SOURCE_DIR "/scripts/lm_check.py"
#define SHARDED LM_SOURCE_DIR "/scripts/lm_sharded.py"

static char dir[512], pub[80], keyfile[700], proj[80];
static char agent_conf[700], agent_log[700], state_dir[700], writer_log[700], src_auth_uri[800];
static char agent_yaml[3000], token_path[700];
static lm_test_cp_t cp;
static lm_testbed_server_t src, dst;
static pid_t agent_pid, writer_pid;

static void setup(void)
{
    lm_test_mkdtemp(dir, sizeof dir);
    memset(&src, 0, sizeof src);
    memset(&dst, 0, sizeof dst);
    agent_pid = writer_pid = 0;
    snprintf(agent_log, sizeof agent_log, "%s/agent.log", dir);
    snprintf(writer_log, sizeof writer_log, "%s/writer.log", dir);
    snprintf(state_dir, sizeof state_dir, "%s/agent-state", dir);
}

static void stop_pid(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        lm_test_wait(*pid, 5000);
        *pid = 0;
    }
}

static void teardown(void)
{
    stop_pid(&writer_pid);
    stop_pid(&agent_pid);
    lm_test_cp_kill(&cp);
    lm_testbed_stop(&src);
    lm_testbed_stop(&dst);
    lm_test_rmtree(dir);
}

TestSuite(agent_daemon, .init = setup, .fini = teardown, .timeout = 600);

#define CLI(out, ...) lm_test_cp_cli(&cp, pub, keyfile, out, __VA_ARGS__)

static void start_agent(void)
{
    char *argv[] = {(char *)LM_AGENT_BIN, (char *)"--config", agent_conf, NULL};
    agent_pid = lm_test_spawn(argv, agent_log);
}

/* Waits until the agent's log holds `needle` `times` times (counting from the start). */
static void wait_log(const char *needle, int times, int timeout_ms)
{
    int64_t until = lm_time_mono_ms() + timeout_ms;
    for (;;) {
        char *log = lm_test_slurp(agent_log);
        int n = 0;
        for (const char *p = strstr(log, needle); p; p = strstr(p + 1, needle))
            n++;
        free(log);
        if (n >= times)
            return;
        cr_assert(lm_time_mono_ms() < until, "the agent never logged \"%s\" (%d times):\n%s",
                  needle, times, lm_test_slurp(agent_log));
        lm_time_sleep_ms(200, NULL);
    }
}

/* The whole set-up a user does, with the CLI only; the agent runs linked at the end. */
static void prepare(const char *cp_extra)
{
    char *out, boot_pub[80], boot_key[700];
    lm_testbed_start("secantus-auth", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    lm_testbed_uri_with_auth(&src, src_auth_uri, sizeof src_auth_uri);
    lm_test_cp_init(&cp, dir, cp_extra);
    lm_test_cp_bootstrap(&cp, "org1", boot_pub, sizeof boot_pub, boot_key, sizeof boot_key);
    lm_test_cp_start(&cp);
    /* an API key of the operator's own */
    cr_assert_eq(lm_test_cp_cli(&cp, boot_pub, boot_key, &out,
                                "apikeys create --orgId org1 --role ORG_OWNER -o json"),
                 0, "%s", out);
    char priv[80];
    lm_test_json_field(out, "publicKey", pub, sizeof pub);
    lm_test_json_field(out, "privateKey", priv, sizeof priv);
    free(out);
    snprintf(keyfile, sizeof keyfile, "%s/operator.key", dir);
    cr_assert_eq(lm_test_sh("echo %s > '%s' && chmod 600 '%s'", priv, keyfile, keyfile), 0);
    cr_assert_eq(CLI(&out, "projects create shop --orgId org1 -o json"), 0, "%s", out);
    lm_test_json_field(out, "id", proj, sizeof proj);
    free(out);
    cr_assert_eq(CLI(&out,
                     "clusters add src --projectId %s --connectionString '%s' --username %s "
                     "--passwordFile '%s'",
                     proj, src.uri, src.user, src.password_file),
                 0, "%s", out);
    free(out);
    cr_assert_eq(
        CLI(&out, "clusters add dst --projectId %s --connectionString '%s'", proj, dst.uri), 0,
        "%s", out);
    free(out);
    cr_assert_eq(CLI(&out, "lm link create --orgId org1 --accessListIp 127.0.0.1"), 0, "%s", out);
    out[strcspn(out, "\n")] = '\0';
    lm_test_write(dir, "link.token", out, token_path, sizeof token_path);
    chmod(token_path, 0600);
    free(out);
    snprintf(agent_yaml, sizeof agent_yaml,
             "control_plane:\n  link_token_file: %s\n  ca_file: %s\n"
             "state_dir: %s\nhostname: mig-host-1\nheartbeat_interval: 1s\npoll_timeout: 3s\n"
             "status_addr: 127.0.0.1:%d\nlog_level: info\n",
             token_path, cp.ca, state_dir, lm_test_free_port());
    lm_test_write(dir, "agent.yaml", agent_yaml, agent_conf, sizeof agent_conf);
    start_agent();
    wait_log("linked: agent", 1, 30000);
}

/* `livemig lm describe` as JSON; the status into status, lag (-1: null), ready. */
static void describe(const char *mig, char *status, size_t size, int64_t *lag, bool *ready,
                     char **text)
{
    char *out;
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
    lm_error_t err;
    const char *start = strchr(out, '{');
    cr_assert(start, "%s", out);
    lm_json_val_t *v = lm_json_parse(start, strlen(start), 0, 0, &err);
    cr_assert(v, "%s: %s", err.message, out);
    const char *s = lm_json_string(lm_json_get(v, "status"));
    snprintf(status, size, "%s", s ? s : "?");
    *lag = -1;
    lm_json_get_int(v, "lagTimeSeconds", false, 0, INT64_MAX, lag, &err);
    *ready = false;
    lm_json_get_bool(v, "readyForCutover", false, ready, &err);
    lm_json_free(v);
    if (text)
        *text = out;
    else
        free(out);
}

/* Waits for a live migration's status (and, with need_ready, readyForCutover). */
static void wait_status(const char *mig, const char *want, bool need_ready, int timeout_ms)
{
    int64_t until = lm_time_mono_ms() + timeout_ms;
    char status[32];
    int64_t lag;
    bool ready;
    for (;;) {
        char *text;
        describe(mig, status, sizeof status, &lag, &ready, &text);
        bool ok = strcmp(status, want) == 0 && (!need_ready || (ready && lag >= 0));
        if (!ok && lm_time_mono_ms() >= until)
            cr_assert_fail("live migration %s never became %s%s; last answer:\n%s\nagent:\n%s", mig,
                           want, need_ready ? " and ready" : "", text, lm_test_slurp(agent_log));
        free(text);
        if (ok)
            return;
        lm_time_sleep_ms(500, NULL);
    }
}

/* Waits until the migration's fault history in the control plane (`lm describe -o json`,
 * "events") holds an event of each kind in `kinds` (NULL-ended). */
static void wait_events(const char *mig, const char *const *kinds, int timeout_ms)
{
    int64_t until = lm_time_mono_ms() + timeout_ms;
    for (;;) {
        char *out, want[96];
        cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
        bool all = true;
        for (int k = 0; kinds[k] && all; k++) {
            snprintf(want, sizeof want, "\"kind\": \"%s\"", kinds[k]);
            all = strstr(out, want) != NULL;
        }
        if (!all && lm_time_mono_ms() >= until)
            cr_assert_fail("live migration %s: the events lack one of %s...; last answer:\n%s\n"
                           "agent:\n%s",
                           mig, kinds[0], out, lm_test_slurp(agent_log));
        free(out);
        if (all)
            return;
        lm_time_sleep_ms(500, NULL);
    }
}

/* Waits until `lm describe -o json` shows verification.state `want`; returns the answer
 * (free it) and the verification's namespacesTotal. */
static char *wait_verification(const char *mig, const char *want, int64_t *namespaces,
                               int timeout_ms)
{
    int64_t until = lm_time_mono_ms() + timeout_ms;
    for (;;) {
        char *out, state[32] = "";
        cr_assert_eq(CLI(&out, "lm describe %s --projectId %s -o json", mig, proj), 0, "%s", out);
        lm_error_t err;
        const char *start = strchr(out, '{');
        lm_json_val_t *v = start ? lm_json_parse(start, strlen(start), 0, 0, &err) : NULL;
        cr_assert(v, "%s", out);
        lm_json_val_t *ver = lm_json_get(v, "verification");
        const char *st = lm_json_string(lm_json_get(ver, "state"));
        snprintf(state, sizeof state, "%s", st ? st : "");
        *namespaces = -1;
        lm_json_get_int(ver, "namespacesTotal", false, 0, INT64_MAX, namespaces, &err);
        lm_json_free(v);
        if (strcmp(state, want) == 0)
            return out;
        cr_assert(strcmp(state, "error") != 0 && lm_time_mono_ms() < until,
                  "the verification of %s never became %s; last answer:\n%s\nagent:\n%s", mig, want,
                  out, lm_test_slurp(agent_log));
        free(out);
        lm_time_sleep_ms(500, NULL);
    }
}

static void create_migration(const char *target, char *mig, size_t size)
{
    char *out;
    cr_assert_eq(CLI(&out,
                     "lm create --projectId %s --clusterName %s --migrationHost mig-host-1 "
                     "--sourceClusterName src --sourceProjectId %s -o json",
                     proj, target, proj),
                 0, "%s", out);
    lm_test_json_field(out, "_id", mig, size);
    free(out);
}

static void start_writer(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "exec '%s' '%s' --uri '%s' %s", PY, WRITER, src_auth_uri, args);
    char *argv[] = {(char *)"/bin/sh", (char *)"-c", cmd, NULL};
    writer_pid = lm_test_spawn(argv, writer_log);
}

/* Waits for a validation to end; its status must be `want`. */
static void wait_validation(const char *vid, const char *want)
{
    int64_t until = lm_time_mono_ms() + 120000;
    for (;;) {
        char *out, status[32];
        cr_assert_eq(CLI(&out, "lm validation describe %s --projectId %s -o json", vid, proj), 0,
                     "%s", out);
        lm_test_json_field(out, "status", status, sizeof status);
        if (strcmp(status, "PENDING") != 0) {
            cr_assert_str_eq(status, want, "%s\nagent:\n%s", out, lm_test_slurp(agent_log));
            free(out);
            return;
        }
        free(out);
        cr_assert(lm_time_mono_ms() < until, "the validation never ended:\n%s",
                  lm_test_slurp(agent_log));
        lm_time_sleep_ms(500, NULL);
    }
}

Test(agent_daemon, a_user_migrates_with_the_cli_through_restarts)
{
    char *out, vid[80], mig[80];
    prepare("cutover_window: 1h\n");
    /* the source holds data before anything starts */
    cr_assert_eq(lm_test_sh("'%s' '%s' --uri '%s' --seconds 0 --docs 3000 > /dev/null 2>&1", PY,
                            WRITER, src_auth_uri),
                 0);
    /* a validation passes */
    cr_assert_eq(CLI(&out,
                     "lm validation create --projectId %s --clusterName dst --migrationHost "
                     "mig-host-1 --sourceClusterName src --sourceProjectId %s -o json",
                     proj, proj),
                 0, "%s", out);
    lm_test_json_field(out, "_id", vid, sizeof vid);
    free(out);
    wait_validation(vid, "SUCCESS");
    cr_assert_eq(CLI(&out, "lm validation describe %s --projectId %s", vid, proj), 0, "%s", out);
    cr_assert(strstr(out, "source-replica-set") && strstr(out, "change-history") &&
                  strstr(out, "namespaces") && !strstr(out, "FAIL"),
              "%s", out);
    free(out);

    /* the migration: NEW, then WORKING with a lag and readyForCutover */
    create_migration("dst", mig, sizeof mig);
    char status[32];
    int64_t lag;
    bool ready;
    describe(mig, status, sizeof status, &lag, &ready, NULL);
    cr_assert(strcmp(status, "NEW") == 0 || strcmp(status, "WORKING") == 0, "%s", status);
    start_writer("--no-load --docs 3000 --seconds 300 --rate 40 --ddl");
    wait_status(mig, "WORKING", true, 240000);
    /* a verification on demand is for a COMPLETE migration (a running one verifies itself
     * after its cutover) */
    cr_assert_neq(CLI(&out, "lm verify %s --projectId %s", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "is WORKING"), "%s", out);
    free(out);

    /* the control plane goes away and comes back: the agent keeps syncing meanwhile */
    lm_test_cp_kill(&cp);
    wait_log("jobs go on, retrying", 1, 20000);
    lm_time_sleep_ms(3000, NULL);
    cr_assert_eq(kill(agent_pid, 0), 0, "the agent ended:\n%s", lm_test_slurp(agent_log));
    lm_test_cp_start(&cp);
    wait_log("the control plane answers again", 1, 60000);
    wait_status(mig, "WORKING", true, 60000);
    /* the outage is in the migration's fault history (issue 19) */
    const char *cp_outage[] = {"controlplane_unreachable", "controlplane_back", NULL};
    wait_events(mig, cp_outage, 60000);

    /* the agent killed outright and started again: it resumes from the target's checkpoint,
     * with the credentials the control plane hands out again */
    kill(agent_pid, SIGKILL);
    lm_test_wait(agent_pid, 5000);
    agent_pid = 0;
    start_agent();
    wait_log("resuming job", 1, 60000);
    wait_status(mig, "WORKING", true, 120000);
    /* the restart is an event, and the control plane kept the history from before it */
    const char *after_restart[] = {"agent_resumed", "controlplane_unreachable", "controlplane_back",
                                   NULL};
    wait_events(mig, after_restart, 60000);

    /* the writer stops; the cutover completes */
    kill(writer_pid, SIGTERM);
    lm_test_wait(writer_pid, 20000);
    writer_pid = 0;
    /* as an operator does: cut over once the control plane shows it ready (a report taken
     * while the restarted agent catches up on a loaded machine can say not ready, and the
     * control plane then refuses the cutover with 409) */
    wait_status(mig, "WORKING", true, 120000);
    cr_assert_eq(CLI(&out, "lm cutover %s --projectId %s --force", mig, proj), 0, "%s", out);
    free(out);
    wait_status(mig, "COMPLETE", false, 180000);
    char done[200];
    snprintf(done, sizeof done, "live migration %s: COMPLETE", mig);
    wait_log(done, 1, 10000);
    int rc = lm_test_sh("'%s' '%s' --source '%s' --target '%s' > '%s/check.log' 2>&1", PY, CHECK,
                        src_auth_uri, dst.uri, dir);
    char p[700];
    snprintf(p, sizeof p, "%s/check.log", dir);
    cr_assert_eq(rc, 0, "the checker found differences:\n%s", lm_test_slurp(p));
    cr_assert(strstr(lm_test_slurp(p), " 0 differences"), "%s", lm_test_slurp(p));

    /* the agent verified the target right after the cutover (on by default): passed */
    int64_t namespaces;
    out = wait_verification(mig, "passed", &namespaces, 120000);
    cr_assert_gt(namespaces, 0, "%s", out);
    cr_assert(strstr(out, "\"status\": \"COMPLETE\""), "%s", out);
    free(out);

    /* a difference planted on the target: `lm verify` runs the verification again on the
     * agent, which finds it; the migration stays COMPLETE */
    cr_assert_eq(lm_test_sh("'%s' -c \"from pymongo import MongoClient; c = MongoClient('%s'); "
                            "d = c.wr.docs.find_one({}, sort=[('_id', 1)]); "
                            "c.wr.docs.update_one({'_id': d['_id']}, {'\\$set': {'planted': 1}}); "
                            "print(d['_id'])\" > '%s/planted' 2>&1",
                            PY, dst.uri, dir),
                 0);
    snprintf(p, sizeof p, "%s/planted", dir);
    char *planted = lm_test_slurp(p);
    planted[strcspn(planted, "\n")] = '\0';
    cr_assert_eq(CLI(&out, "lm verify %s --projectId %s", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "verification of live migration"), "%s", out);
    free(out);
    out = wait_verification(mig, "failed", &namespaces, 120000);
    cr_assert_gt(namespaces, 0, "%s", out);
    cr_assert(strstr(out, "\"status\": \"COMPLETE\"") && strstr(out, "\"ns\": \"wr.docs\""), "%s",
              out);
    free(out);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", mig, proj), 0, "%s", out);
    char want_id[200];
    snprintf(want_id, sizeof want_id, "_id { \"_id\" : { \"$numberInt\" : \"%s\" } } (differs",
             planted);
    cr_assert(strstr(out, "wr.docs") && strstr(out, want_id) && strstr(out, "planted") &&
                  strstr(out, "VERIFICATION FAILED") && strstr(out, "failed"),
              "want %s in:\n%s", want_id, out);
    free(out);
    free(planted);

    /* no secret in the agent's log or state */
    char *pw = lm_test_slurp(src.password_file);
    pw[strcspn(pw, "\n")] = '\0';
    cr_assert(strlen(pw) > 0);
    cr_assert_null(strstr(lm_test_slurp(agent_log), pw));
    cr_assert_neq(lm_test_sh("grep -rqF '%s' '%s'", pw, state_dir), 0,
                  "the source password is in the agent's state dir");
    free(pw);
    /* SIGTERM: a clean exit */
    kill(agent_pid, SIGTERM);
    cr_assert_eq(lm_test_wait(agent_pid, 30000), 0, "%s", lm_test_slurp(agent_log));
    agent_pid = 0;
}

Test(agent_daemon, window_expiry_refusal_reload_and_revocation)
{
    char *out, mig[80], second[80];
    prepare("cutover_window: 20s\nextend_by: 2s\nlog_level: debug\n");
    cr_assert_eq(lm_test_sh("'%s' '%s' --uri '%s' --seconds 0 --docs 200 > /dev/null 2>&1", PY,
                            WRITER, src_auth_uri),
                 0);
    create_migration("dst", mig, sizeof mig);
    wait_status(mig, "WORKING", true, 240000);
    /* a second migration on the same host is refused, with the reason shown (to another
     * cluster name: the control plane itself refuses two migrations to one cluster) */
    cr_assert_eq(
        CLI(&out, "clusters add dst2 --projectId %s --connectionString '%s'", proj, dst.uri), 0,
        "%s", out);
    free(out);
    create_migration("dst2", second, sizeof second);
    wait_status(second, "FAILED", false, 30000);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", second, proj), 0, "%s", out);
    cr_assert(strstr(out, "one migration at a time") && strstr(out, mig), "%s", out);
    free(out);
    /* a broken config on SIGHUP is logged with its line and the running one kept */
    char bad[700];
    lm_test_write(dir, "agent.yaml", "state_dir: [oops\n", bad, sizeof bad);
    kill(agent_pid, SIGHUP);
    wait_log("keeping the running configuration", 1, 10000);
    wait_log("agent.yaml:", 1, 1000);
    /* nobody cuts over: the window closes, the migration is EXPIRED, syncing stops */
    wait_status(mig, "EXPIRED", false, 60000);
    wait_log("the cutover window closed", 1, 30000);
    char expired[200];
    snprintf(expired, sizeof expired, "live migration %s: EXPIRED", mig);
    wait_log(expired, 1, 60000);
    cr_assert_eq(kill(agent_pid, 0), 0, "the agent ended:\n%s", lm_test_slurp(agent_log));
    /* the link-token deleted: the agent says so once and stops asking */
    cr_assert_eq(CLI(&out, "lm link delete --orgId org1 --force"), 0, "%s", out);
    free(out);
    wait_log("revoked", 1, 30000);
    /* the control plane's access log: agent calls before, none after a short while */
    cr_assert(strstr(lm_test_slurp(cp.log), "/api/agent/v1/assignments"), "%s",
              lm_test_slurp(cp.log));
    lm_time_sleep_ms(4000, NULL);
    char *log1 = lm_test_slurp(cp.log);
    lm_time_sleep_ms(6000, NULL);
    char *log2 = lm_test_slurp(cp.log);
    cr_assert_null(strstr(log2 + strlen(log1), "/api/agent/"), "the agent kept calling:\n%s",
                   log2 + strlen(log1));
    free(log1);
    free(log2);
    char *alog = lm_test_slurp(agent_log);
    int n = 0;
    for (const char *p = strstr(alog, "stops asking for work"); p;
         p = strstr(p + 1, "stops asking for work"))
        n++;
    cr_assert_eq(n, 1, "%s", alog);
    free(alog);
    /* a new link-token in the (repaired) config and SIGHUP: linked again, asking again */
    cr_assert_eq(CLI(&out, "lm link create --orgId org1 --accessListIp 127.0.0.1"), 0, "%s", out);
    out[strcspn(out, "\n")] = '\0';
    lm_test_write(dir, "link.token", out, token_path, sizeof token_path);
    chmod(token_path, 0600);
    free(out);
    lm_test_write(dir, "agent.yaml", agent_yaml, agent_conf, sizeof agent_conf);
    char *before = lm_test_slurp(cp.log);
    kill(agent_pid, SIGHUP);
    wait_log("linked: agent", 2, 30000);
    lm_time_sleep_ms(5000, NULL);
    char *after = lm_test_slurp(cp.log);
    cr_assert(strstr(after + strlen(before), "/api/agent/v1/assignments"),
              "the relinked agent does not ask for work:\n%s", after + strlen(before));
    free(before);
    free(after);
    kill(agent_pid, SIGTERM);
    cr_assert_eq(lm_test_wait(agent_pid, 30000), 0, "%s", lm_test_slurp(agent_log));
    agent_pid = 0;
}

/* ---- values from the control plane used as names on the agent's file system ---- */

/* A scripted control plane (lm_test_https): no livemig-controlplane makes such jobs, since
 * it makes its ids itself and checks caFile; this one plays a compromised or buggy one.
 * The first poll hands out `assignments`, later polls nothing. */
static const char *crafted_assignments;
static atomic_bool crafted_sent;

static void crafted_cp(void *ud, const char *method, const char *url, unsigned hit,
                       lm_test_https_reply_t *reply)
{
    (void)ud, (void)method, (void)hit;
    const char *body = "{}";
    if (strncmp(url, "/api/agent/v1/assignments", 25) == 0) {
        body = atomic_exchange(&crafted_sent, true) ? "{\"v\":1,\"jobs\":[],\"commands\":[]}"
                                                    : crafted_assignments;
        reply->delay_ms = 300;
    }
    reply->body = strdup(body);
    reply->body_len = strlen(body);
}

/* A job id with "../" and CA paths outside ca_dir (absolute, with "..", through a symlink
 * in ca_dir) are refused with the reason, nothing is created outside the state dir and the
 * file outside ca_dir is never opened (inotify); a CA in ca_dir is accepted. */
Test(agent_daemon, crafted_assignment_paths_refused)
{
    char certs[512], ca_dir[700], canary[700], link[800], good[800], identity[3000],
        ident_path[800];
    char jobs[8000], pwned[700];
    lm_test_certs("fake-cp", certs, sizeof certs);
    snprintf(ca_dir, sizeof ca_dir, "%s/ca", dir);
    snprintf(canary, sizeof canary, "%s/canary.pem", dir); /* a real PEM, outside ca_dir */
    cr_assert_eq(lm_test_sh("mkdir -p '%s' && cp '%s/ca.pem' '%s' && cp '%s/ca.pem' '%s/good.pem' "
                            "&& ln -s ../canary.pem '%s/link.pem'",
                            ca_dir, certs, canary, certs, ca_dir, ca_dir),
                 0);
    snprintf(link, sizeof link, "%s/link.pem", ca_dir);
    snprintf(good, sizeof good, "%s/good.pem", ca_dir);
    int ino = inotify_init1(IN_NONBLOCK);
    cr_assert_geq(ino, 0);
    cr_assert_geq(inotify_add_watch(ino, canary, IN_OPEN | IN_ACCESS), 0);

    char cert[700], key[700];
    snprintf(cert, sizeof cert, "%s/server.pem", certs);
    snprintf(key, sizeof key, "%s/server.key", certs);
    int p1 = lm_test_free_port(), p2 = lm_test_free_port();
    snprintf(jobs, sizeof jobs,
             "{\"v\":1,\"commands\":[],\"jobs\":["
             "{\"jobId\":\"../../pwned\",\"kind\":\"migration\",\"source\":{\"uri\":\"mongodb://"
             "127.0.0.1:%d/\"},\"target\":{\"uri\":\"mongodb://127.0.0.1:%d/\"}},"
             "{\"jobId\":\"ca-abs\",\"kind\":\"validation\",\"source\":{\"uri\":\"mongodb://"
             "127.0.0.1:%d/\",\"tls\":true,\"caFile\":\"%s\"},\"target\":{\"uri\":\"mongodb://"
             "127.0.0.1:%d/\"}},"
             "{\"jobId\":\"ca-dots\",\"kind\":\"validation\",\"source\":{\"uri\":\"mongodb://"
             "127.0.0.1:%d/\",\"tls\":true,\"caFile\":\"%s/../canary.pem\"},\"target\":{\"uri\":"
             "\"mongodb://127.0.0.1:%d/\"}},"
             "{\"jobId\":\"ca-link\",\"kind\":\"validation\",\"source\":{\"uri\":\"mongodb://"
             "127.0.0.1:%d/\",\"tls\":true,\"caFile\":\"link.pem\"},\"target\":{\"uri\":\"mongodb:"
             "//127.0.0.1:%d/\"}},"
             "{\"jobId\":\"ca-good\",\"kind\":\"validation\",\"source\":{\"uri\":\"mongodb://"
             "127.0.0.1:%d/\",\"tls\":true,\"caFile\":\"good.pem\"},\"target\":{\"uri\":\"mongodb:"
             "//127.0.0.1:%d/\"}}]}",
             p1, p2, p1, canary, p2, p1, ca_dir, p2, p1, p2, p1, p2);
    crafted_assignments = jobs;
    atomic_store(&crafted_sent, false);
    lm_test_https_t *fake = lm_test_https_start(cert, key, crafted_cp, NULL);

    /* linked already: an identity naming the scripted control plane */
    cr_assert_eq(lm_test_sh("mkdir -p '%s' && chmod 700 '%s'", state_dir, state_dir), 0);
    /* (its own agent credential, and the pin of the scripted control plane's CA: the daemon
     * checks its CA file against the pin at start) */
    char pin[80], ca_pem[600];
    lm_error_t perr;
    snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", certs);
    cr_assert(lm_http_ca_pin(ca_pem, pin, &perr), "%s", perr.message);
    snprintf(identity, sizeof identity,
             "{\"url\":\"https://127.0.0.1:%d\",\"orgId\":\"org1\",\"tokenId\":\"tok1\","
             "\"agentSecret\":\"s3cret-s3cret-s3cret\",\"caPin\":\"%s\",\"agentId\":\"agent1\","
             "\"hostname\":\"mig-host-1\",\"heartbeatSeconds\":1,\"pollSeconds\":1}\n",
             lm_test_https_port(fake), pin);
    lm_test_write(state_dir, "identity.json", identity, ident_path, sizeof ident_path);
    chmod(ident_path, 0600);
    snprintf(agent_yaml, sizeof agent_yaml,
             "control_plane:\n  ca_file: %s/ca.pem\nstate_dir: %s\nca_dir: %s\n"
             "heartbeat_interval: 1s\npoll_timeout: 1s\nstatus_addr: 127.0.0.1:%d\n",
             certs, state_dir, ca_dir, lm_test_free_port());
    lm_test_write(dir, "agent.yaml", agent_yaml, agent_conf, sizeof agent_conf);
    start_agent();

    wait_log("migration ../../pwned refused: job id '../../pwned' is not valid", 1, 30000);
    wait_log("validation ca-abs refused: the job cannot run: source.caFile", 1, 10000);
    wait_log("is outside the agent's ca_dir", 2, 10000); /* ca-abs and ca-link */
    wait_log("validation ca-link refused", 1, 10000);
    wait_log("validation ca-dots refused: the job cannot run: source.caFile", 1, 10000);
    wait_log("not a file name or a plain path", 1, 10000);
    wait_log("validation ca-good: running the checks", 1, 10000);
    wait_log("validation ca-good: ", 2, 60000); /* it ended (no server there) */
    lm_time_sleep_ms(2000, NULL);               /* reports of the refusals went out */

    char ev[4096];
    ssize_t n = read(ino, ev, sizeof ev);
    cr_assert_leq(n, 0, "the file outside ca_dir was opened or read:\n%s",
                  lm_test_slurp(agent_log));
    close(ino);
    struct stat st;
    snprintf(pwned, sizeof pwned, "%s/pwned", dir);
    cr_assert_neq(stat(pwned, &st), 0, "a directory was made outside the state dir");
    char *log = lm_test_slurp(agent_log);
    cr_assert_null(strstr(log, "s3cret-s3cret"), "%s", log);
    free(log);
    stop_pid(&agent_pid);
    lm_test_https_stop(fake);
}

/* ---- a part with a lease, a part reassigned (issue 16: the daemon's side) ---- */

/* A scripted control plane answering with fn, and the agent's config and identity linked
 * to it (its jobs' status API on status_port). */
static lm_test_https_t *start_scripted_cp(lm_test_https_fn fn, int status_port)
{
    char certs[512], cert[700], key[700], ca_pem[600], pin[80], identity[3000], ident_path[800];
    lm_error_t perr;
    lm_test_certs("scripted-cp", certs, sizeof certs);
    snprintf(cert, sizeof cert, "%s/server.pem", certs);
    snprintf(key, sizeof key, "%s/server.key", certs);
    lm_test_https_t *fake = lm_test_https_start(cert, key, fn, NULL);
    cr_assert_eq(lm_test_sh("mkdir -p '%s' && chmod 700 '%s'", state_dir, state_dir), 0);
    snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", certs);
    cr_assert(lm_http_ca_pin(ca_pem, pin, &perr), "%s", perr.message);
    snprintf(identity, sizeof identity,
             "{\"url\":\"https://127.0.0.1:%d\",\"orgId\":\"org1\",\"tokenId\":\"tok1\","
             "\"agentSecret\":\"s3cret-s3cret-s3cret\",\"caPin\":\"%s\",\"agentId\":\"agent1\","
             "\"hostname\":\"mig-host-1\",\"heartbeatSeconds\":1,\"pollSeconds\":1}\n",
             lm_test_https_port(fake), pin);
    lm_test_write(state_dir, "identity.json", identity, ident_path, sizeof ident_path);
    chmod(ident_path, 0600);
    snprintf(agent_yaml, sizeof agent_yaml,
             "control_plane:\n  ca_file: %s/ca.pem\nstate_dir: %s\n"
             "heartbeat_interval: 1s\npoll_timeout: 1s\nstatus_addr: 127.0.0.1:%d\n",
             certs, state_dir, status_port);
    lm_test_write(dir, "agent.yaml", agent_yaml, agent_conf, sizeof agent_conf);
    return fake;
}

/* A scripted control plane: 0 up (the part handed out on every poll), 1 down (every call
 * answered 503), 2 up again: the part handed out on every poll until its first status
 * report, which is answered 409 PART_REASSIGNED, as every later one; then no job. (Handed
 * out once only, a poll answered while the agent was still ending the stopped part found it
 * running, and the part was never started again: seen once in a loaded check. The real
 * control plane hands a job out until it is acknowledged.) */
static atomic_int lease_mode;
static char lease_jobs[2048];
static atomic_uint lease_reports_409;

static void lease_cp(void *ud, const char *method, const char *url, unsigned hit,
                     lm_test_https_reply_t *reply)
{
    (void)ud, (void)method, (void)hit;
    int mode = atomic_load(&lease_mode);
    const char *body = "{}";
    if (mode == 1) {
        reply->status = 503;
        body = "{\"errorCode\":\"UNAVAILABLE\",\"detail\":\"down for the test\"}";
    } else if (strncmp(url, "/api/agent/v1/assignments", 25) == 0) {
        bool give = mode == 0 || atomic_load(&lease_reports_409) == 0;
        body = give ? lease_jobs : "{\"v\":1,\"jobs\":[],\"commands\":[]}";
        reply->delay_ms = 300;
    } else if (mode == 2 && strncmp(url, "/api/agent/v1/status", 20) == 0) {
        atomic_fetch_add(&lease_reports_409, 1);
        reply->status = 409;
        body = "{\"errorCode\":\"PART_REASSIGNED\",\"detail\":\"its shards run on another host\"}";
    }
    reply->body = strdup(body);
    reply->body_len = strlen(body);
}

/* lease_cp up (mode 0), handing out part1 (leaseSeconds 2) from src to dst. */
static lm_test_https_t *start_lease_cp(void)
{
    snprintf(lease_jobs, sizeof lease_jobs,
             "{\"v\":1,\"commands\":[],\"jobs\":[{\"jobId\":\"part1\",\"kind\":\"migration\","
             "\"source\":{\"uri\":\"%s\"},\"target\":{\"uri\":\"%s\"},\"leaseSeconds\":2}]}",
             src.uri, dst.uri);
    atomic_store(&lease_mode, 0);
    atomic_store(&lease_reports_409, 0);
    return start_scripted_cp(lease_cp, lm_test_free_port());
}

static int count_in_log(const char *needle)
{
    char *log = lm_test_slurp(agent_log);
    int n = 0;
    for (const char *p = strstr(log, needle); p; p = strstr(p + 1, needle))
        n++;
    free(log);
    return n;
}

/* A part with leaseSeconds 2 streams; the control plane stops answering: the part stops
 * (checkpointed, event lease_lost, no final report). It answers again and hands the part
 * out once more: it starts again, and its report is answered 409 PART_REASSIGNED: it
 * stops again, logged once, and sends no more reports. */
Test(agent_daemon, a_part_stops_when_its_lease_runs_out_or_it_is_reassigned)
{
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    lm_test_https_t *fake = start_lease_cp();
    start_agent();
    wait_log("streaming the source's changes", 1, 60000);
    cr_assert_eq(count_in_log("stops so that its shards"), 0, "%s", lm_test_slurp(agent_log));
    atomic_store(&lease_mode, 1);
    wait_log("(leaseSeconds 2): part part1 stops so that its shards can move to another host "
             "safely",
             1, 30000);
    wait_log("live migration part1: stopped (checkpointed", 1, 30000);
    cr_assert_eq(kill(agent_pid, 0), 0, "the agent ended:\n%s", lm_test_slurp(agent_log));
    atomic_store(&lease_mode, 2);
    wait_log("the control plane answers again", 1, 30000);
    wait_log("live migration part1: starting", 2, 30000); /* handed out again */
    wait_log("was reassigned (", 1, 30000);
    wait_log("live migration part1: stopped (checkpointed", 2, 30000);
    unsigned refused = atomic_load(&lease_reports_409);
    lm_time_sleep_ms(4000, NULL); /* more than one report interval */
    cr_assert_eq(atomic_load(&lease_reports_409), refused, "a reassigned part still reported:\n%s",
                 lm_test_slurp(agent_log));
    cr_assert_eq(count_in_log("was reassigned ("), 1, "%s", lm_test_slurp(agent_log));
    cr_assert_eq(count_in_log("stops so that its shards"), 1, "%s", lm_test_slurp(agent_log));
    char *log = lm_test_slurp(agent_log);
    cr_assert_null(strstr(log, "s3cret-s3cret"), "%s", log);
    free(log);
    stop_pid(&agent_pid);
    lm_test_https_stop(fake);
}

/* A scripted control plane for a lead part in await mode: the job on every poll, and once
 * await_assign is set, the assign-shards command with it on every poll (a command comes
 * again until acknowledged; this one comes again after that too). */
static char await_jobs[3000], await_jobs_cmd[3400];
static atomic_bool await_assign;

static void await_cp(void *ud, const char *method, const char *url, unsigned hit,
                     lm_test_https_reply_t *reply)
{
    (void)ud, (void)method, (void)hit;
    const char *body = "{}";
    if (strncmp(url, "/api/agent/v1/assignments", 25) == 0) {
        body = atomic_load(&await_assign) ? await_jobs_cmd : await_jobs;
        reply->delay_ms = 300;
    }
    reply->body = strdup(body);
    reply->body_len = strlen(body);
}

/* The lead part of a migration spread by the control plane (awaitShards) on a 2-shard bed:
 * its status lists both shards ASSIGNING with their sizes (the report carries the same
 * rows: none is left out), it copies nothing; the assign-shards command gives it both
 * shards: it streams them; the command coming again is ignored. */
Test(agent_daemon, a_lead_part_runs_the_shards_the_control_plane_assigns)
{
    lm_testbed_start("sharded", "--shards 2 --prefix src", &src);
    lm_testbed_start("sharded", "--shards 2 --prefix dst", &dst);
    cr_assert_eq(lm_test_sh("'%s' '%s' seed --config '%s' --chunks 3 --docs 200 > '%s/seed.log' "
                            "2>&1",
                            PY, SHARDED, src.config_uri, dir),
                 0, "seeding the source failed");
    snprintf(await_jobs, sizeof await_jobs,
             "{\"v\":1,\"commands\":[],\"jobs\":[{\"jobId\":\"lead1\",\"kind\":\"migration\","
             "\"source\":{\"uri\":\"%s\"},\"target\":{\"uri\":\"%s\"},\"migrationId\":\"mig16d\","
             "\"shardedRole\":\"lead\",\"awaitShards\":true}]}",
             src.uri, dst.uri);
    snprintf(await_jobs_cmd, sizeof await_jobs_cmd,
             "%.*s{\"command\":\"assign-shards\","
             "\"jobId\":\"lead1\",\"seq\":1,\"shards\":\"src-shard0,src-shard1\"}%s",
             (int)(strstr(await_jobs, "\"commands\":[") + 12 - await_jobs), await_jobs,
             strstr(await_jobs, "],\"jobs\""));
    atomic_store(&await_assign, false);
    int port = lm_test_free_port();
    lm_test_https_t *fake = start_scripted_cp(await_cp, port);
    start_agent();
    wait_log("waiting for the control plane to assign this migration's shards", 1, 60000);
    lm_json_val_t *v = lm_test_agent_status(port), *shards = NULL;
    lm_error_t err;
    cr_assert(v && lm_json_get_arr(v, "shards", true, 0, &shards, &err), "%s",
              lm_test_slurp(agent_log));
    cr_assert_eq(lm_json_len(shards), 2);
    int64_t total = 0;
    for (size_t i = 0; i < 2; i++) {
        const char *state = NULL;
        int64_t size = -1;
        cr_assert(lm_json_get_str(lm_json_at(shards, i), "state", true, 0, &state, &err) &&
                      lm_json_get_int(lm_json_at(shards, i), "sizeBytes", true, 0, INT64_MAX, &size,
                                      &err),
                  "%s", err.message);
        cr_assert_str_eq(state, "ASSIGNING");
        total += size;
    }
    cr_assert_gt(total, 0, "the seeded shards measured 0 bytes");
    lm_json_free(v);
    atomic_store(&await_assign, true);
    wait_log("the control plane assigned shards src-shard0, src-shard1 to this agent (lead)", 1,
             30000);
    wait_log("streaming the source's changes", 2, 120000);             /* both shards */
    wait_log("assign-shards src-shard0,src-shard1 ignored", 1, 30000); /* it came again */
    char *log = lm_test_slurp(agent_log);
    cr_assert_null(strstr(log, "left out of the report"), "%s", log);
    cr_assert_null(strstr(log, "refused"), "%s", log);
    free(log);
    kill(agent_pid, SIGTERM);
    cr_assert_eq(lm_test_wait(agent_pid, 60000), 0, "%s", lm_test_slurp(agent_log));
    agent_pid = 0;
    lm_test_https_stop(fake);
}

/* Two parts of one migration (the same migrationId) handed to one agent, as when the control
 * plane moves a lost host's shards to a host running another part: both run (each its own
 * state dir; the second's status API on a free port), both stream; a migration with
 * another id is still refused while they run. */
Test(agent_daemon, two_parts_of_one_migration_run_on_one_agent)
{
    lm_testbed_start("sharded", "--shards 2 --prefix src", &src);
    lm_testbed_start("sharded", "--shards 2 --prefix dst", &dst);
    cr_assert_eq(lm_test_sh("'%s' '%s' seed --config '%s' --chunks 3 --docs 200 > '%s/seed.log' "
                            "2>&1",
                            PY, SHARDED, src.config_uri, dir),
                 0, "seeding the source failed");
    snprintf(await_jobs, sizeof await_jobs,
             "{\"v\":1,\"commands\":[],\"jobs\":["
             "{\"jobId\":\"partA\",\"kind\":\"migration\",\"source\":{\"uri\":\"%s\"},\"target\":"
             "{\"uri\":\"%s\"},\"migrationId\":\"mig16p\",\"shardedRole\":\"lead\",\"shards\":"
             "[\"src-shard0\"]},"
             "{\"jobId\":\"partB\",\"kind\":\"migration\",\"source\":{\"uri\":\"%s\"},\"target\":"
             "{\"uri\":\"%s\"},\"migrationId\":\"mig16p\",\"shardedRole\":\"follower\","
             "\"shards\":[\"src-shard1\"]},"
             "{\"jobId\":\"other\",\"kind\":\"migration\",\"source\":{\"uri\":\"%s\"},\"target\":"
             "{\"uri\":\"%s\"},\"migrationId\":\"mig99\",\"shardedRole\":\"lead\",\"shards\":"
             "[\"src-shard1\"]}]}",
             src.uri, dst.uri, src.uri, dst.uri, src.uri, dst.uri);
    atomic_store(&await_assign, false);
    int port = lm_test_free_port();
    lm_test_https_t *fake = start_scripted_cp(await_cp, port);
    start_agent();
    wait_log("both run side by side", 1, 30000);
    wait_log("migration other refused: agent agent1 on mig-host-1 is running live migration part",
             1, 30000);
    wait_log("streaming the source's changes", 2, 120000); /* shard 0 (A) and shard 1 (B) */
    wait_log("the lead recorded \"metadata ready\": copying this agent's shards", 1, 30000);
    char p[900];
    struct stat st;
    snprintf(p, sizeof p, "%s/jobs/partA", state_dir);
    cr_assert_eq(stat(p, &st), 0, "%s", p);
    snprintf(p, sizeof p, "%s/jobs/partB", state_dir);
    cr_assert_eq(stat(p, &st), 0, "%s", p);
    char *log = lm_test_slurp(agent_log);
    /* two status APIs, on two ports */
    const char *api1 = strstr(log, "status API on http://"),
               *api2 = api1 ? strstr(api1 + 1, "status API on http://") : NULL;
    cr_assert(api1 && api2, "two status APIs expected:\n%s", log);
    cr_assert_neq(strncmp(api1, api2, strcspn(api1, "\n")), 0, "one port for both:\n%s", log);
    cr_assert_null(strstr(log, "live migration partB: FAILED"), "%s", log);
    cr_assert_null(strstr(log, "live migration partA: FAILED"), "%s", log);
    free(log);
    kill(agent_pid, SIGTERM);
    cr_assert_eq(lm_test_wait(agent_pid, 60000), 0, "%s", lm_test_slurp(agent_log));
    agent_pid = 0;
    lm_test_https_stop(fake);
}

/* Documents in db.coll of a server (pymongo), -1 when it cannot be read. */
static long long count_docs(const char *uri, const char *ns_db, const char *ns_coll)
{
    char out[700];
    snprintf(out, sizeof out, "%s/count.txt", dir);
    if (lm_test_sh("'%s' -c \"from pymongo import MongoClient as M; "
                   "print(M('%s')['%s']['%s'].count_documents({}))\" > '%s' 2>/dev/null",
                   PY, uri, ns_db, ns_coll, out) != 0)
        return -1;
    char *text = lm_test_slurp(out);
    long long n = strtoll(text, NULL, 10);
    free(text);
    return n;
}

/* The attack on the lease during a copy: an agent paused (SIGSTOP) mid-copy past its lease
 * while its control plane is away, then resumed. Its shards may be another host's by then,
 * so it must write nothing more, the batch a writer had already checked against the lease
 * when the pause came included (the target's connections check it again at the send:
 * lm_conn_pool_pop); the target's document count does not move after the resume. (CI saw
 * that batch land, 1000 documents, before the fence.) */
Test(agent_daemon, a_paused_part_writes_no_copy_batch_after_its_lease)
{
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    cr_assert_eq(lm_test_sh("'%s' -c \"from pymongo import MongoClient as M; "
                            "c = M('%s').big.docs\n"
                            "for k in range(12): c.insert_many([{'_id': k * 10000 + i, 'v': 'x' "
                            "* 900} for i in range(10000)])\"",
                            PY, src.uri),
                 0);
    lm_test_https_t *fake = start_lease_cp();
    start_agent();
    int64_t until = lm_time_mono_ms() + 60000;
    long long before = 0;
    while ((before = count_docs(dst.uri, "big", "docs")) < 5000) {
        cr_assert_lt(lm_time_mono_ms(), until, "the copy never started:\n%s",
                     lm_test_slurp(agent_log));
        lm_time_sleep_ms(100, NULL);
    }
    /* paused mid-copy; the control plane goes away; the lease runs out meanwhile */
    cr_assert_eq(kill(agent_pid, SIGSTOP), 0);
    atomic_store(&lease_mode, 1);
    lm_time_sleep_ms(3500, NULL);
    before = count_docs(dst.uri, "big", "docs"); /* a batch in flight at the pause has landed */
    cr_assert_lt(before, 120000, "the copy ended before the pause: make the collection bigger");
    cr_assert_eq(kill(agent_pid, SIGCONT), 0);
    wait_log("live migration part1: stopped (checkpointed", 1, 30000);
    lm_time_sleep_ms(1000, NULL);
    long long after = count_docs(dst.uri, "big", "docs");
    cr_assert_eq(after, before,
                 "the resumed part wrote %lld documents after its lease ran out:\n%s",
                 after - before, lm_test_slurp(agent_log));
    stop_pid(&agent_pid);
    lm_test_https_stop(fake);
}
