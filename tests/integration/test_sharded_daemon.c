/* A sharded migration run by an agent daemon of the control plane (issue 16, step 1), driven
 * with nothing but the `livemig` CLI: two sharded test beds (scripts/testbed start sharded),
 * livemig-controlplane over real HTTPS, `livemig-agent --config` linked with a link-token.
 * `lm describe` shows one row per shard (the agent's per-shard status through the status
 * message and the control plane's store); one shard's source is lost mid-copy
 * (`scripts/testbed fault DIR lose-shard`), `lm describe` shows it FAILED with its last
 * error, `lm restart-shard` refuses a healthy and an unknown shard and restarts the failed
 * one (a command the agent acknowledges), the control plane is restarted in the middle, and
 * the cutover ends in COMPLETE with 0 differences (`lm_check.py --sharded`). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lm_http.h"
#include "lm_json.h"
#include "lm_test_cp.h"
#include "lm_test_proc.h"
#include "lm_test_util.h"
#include "lm_testbed.h"
#include "lm_time.h"

#define PY LM_SOURCE_DIR "/.deps/venv/bin/python"
#define CHECK LM_SOURCE_DIR "/scripts/lm_check.py"
#define SHARDED LM_SOURCE_DIR "/scripts/lm_sharded.py"

static char dir[512], pub[80], keyfile[700], proj[80];
static char agent_conf[700], agent_log[700], state_dir[700], token_path[700];
static lm_test_cp_t cp;
static lm_testbed_server_t src, dst;
static pid_t agent_pid;
static int status_port; /* the agent's local status API: only to time the fault */

static void setup(void)
{
    lm_test_mkdtemp(dir, sizeof dir);
    memset(&src, 0, sizeof src);
    memset(&dst, 0, sizeof dst);
    memset(&cp, 0, sizeof cp);
    agent_pid = 0;
    snprintf(agent_log, sizeof agent_log, "%s/agent.log", dir);
    snprintf(state_dir, sizeof state_dir, "%s/agent-state", dir);
}

static void teardown(void)
{
    if (agent_pid > 0) {
        kill(agent_pid, SIGKILL);
        lm_test_wait(agent_pid, 5000);
        agent_pid = 0;
    }
    lm_test_cp_kill(&cp);
    lm_testbed_stop(&src);
    lm_testbed_stop(&dst);
    lm_test_rmtree(dir);
}

TestSuite(sharded_daemon, .init = setup, .fini = teardown, .timeout = 600);

#define CLI(out, ...) lm_test_cp_cli(&cp, pub, keyfile, out, __VA_ARGS__)

/* Waits until the agent's log holds `needle`. */
static void wait_log(const char *needle, int timeout_ms)
{
    int64_t until = lm_time_mono_ms() + timeout_ms;
    for (;;) {
        char *log = lm_test_slurp(agent_log);
        bool found = strstr(log, needle) != NULL;
        free(log);
        if (found)
            return;
        cr_assert(lm_time_mono_ms() < until, "the agent never logged \"%s\":\n%s", needle,
                  lm_test_slurp(agent_log));
        lm_time_sleep_ms(200, NULL);
    }
}

/* The beds (2 shards each, the source seeded, shard 1 holding enough that its copy lasts
 * while it is taken away), the control plane, an operator's key, a project, both clusters
 * registered by their routers, a link-token and the agent linked on mig-host-1. */
static void prepare(void)
{
    char *out, boot_pub[80], boot_key[700];
    lm_testbed_start("sharded", "--shards 2 --prefix src", &src);
    lm_testbed_start("sharded", "--shards 2 --prefix dst", &dst);
    cr_assert_eq(lm_test_sh("'%s' '%s' seed --config '%s' --chunks 3 --docs 300 > '%s/seed.log' "
                            "2>&1",
                            PY, SHARDED, src.config_uri, dir),
                 0, "seeding the source failed");
    cr_assert_eq(lm_test_sh("'%s' -c \"from pymongo import MongoClient as M; "
                            "M('%s').crm.bulk.insert_many([{'_id': i, 'v': 'x' * 200} "
                            "for i in range(100000)])\"",
                            PY, src.shard_uri[1]),
                 0);
    lm_test_cp_init(&cp, dir, "cutover_window: 1h\n");
    lm_test_cp_bootstrap(&cp, "org1", boot_pub, sizeof boot_pub, boot_key, sizeof boot_key);
    lm_test_cp_start(&cp);
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
    cr_assert_eq(
        CLI(&out, "clusters add src --projectId %s --connectionString '%s'", proj, src.uri), 0,
        "%s", out);
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
    char yaml[3000];
    snprintf(yaml, sizeof yaml,
             "control_plane:\n  link_token_file: %s\n  ca_file: %s\n"
             "state_dir: %s\nhostname: mig-host-1\nheartbeat_interval: 1s\npoll_timeout: 3s\n"
             "status_addr: 127.0.0.1:%d\nlog_level: info\n",
             token_path, cp.ca, state_dir, status_port = lm_test_free_port());
    lm_test_write(dir, "agent.yaml", yaml, agent_conf, sizeof agent_conf);
    char *argv[] = {(char *)LM_AGENT_BIN, (char *)"--config", agent_conf, NULL};
    agent_pid = lm_test_spawn(argv, agent_log);
    wait_log("linked: agent", 30000);
}

/* Waits, polling the agent's local status API every 50 ms, until shard i is COPYING. Only
 * the fault's timing uses it: shard 1's documents are read in about two seconds, too short
 * for the control plane's view (reports every 3 s) to catch reliably, and a source lost
 * after the reads is waited out (the engine retries), not failed. */
static void wait_local_copying(size_t i, int timeout_ms)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/status", status_port);
    int64_t until = lm_time_mono_ms() + timeout_ms;
    for (;;) {
        lm_http_response_t resp;
        lm_error_t err;
        lm_http_opts_t o = {.connect_timeout_ms = 500, .total_timeout_ms = 3000};
        memset(&resp, 0, sizeof resp);
        bool copying = false;
        if (lm_http_request(&o, "GET", url, NULL, NULL, 0, &resp, &err) && resp.status == 200) {
            lm_json_val_t *v = lm_json_parse(resp.body, resp.body_len, 0, 0, &err);
            lm_json_val_t *shards = v ? lm_json_get(v, "shards") : NULL;
            const char *phase = shards && i < lm_json_len(shards)
                                    ? lm_json_string(lm_json_get(lm_json_at(shards, i), "phase"))
                                    : NULL;
            copying = phase && strcmp(phase, "COPYING") == 0;
            lm_json_free(v);
        }
        lm_http_response_cleanup(&resp);
        if (copying)
            return;
        cr_assert(lm_time_mono_ms() < until, "shard %zu never copied:\n%s", i,
                  lm_test_slurp(agent_log));
        cr_assert_eq(kill(agent_pid, 0), 0, "the agent ended:\n%s", lm_test_slurp(agent_log));
        lm_time_sleep_ms(50, NULL);
    }
}

/* The operator, for lm_test_describe and the waits (lm_test_cp.h). */
static lm_test_op_t op;

static void set_op(void)
{
    memset(&op, 0, sizeof op);
    op.cp = &cp;
    op.log = agent_log;
    snprintf(op.pub, sizeof op.pub, "%s", pub);
    snprintf(op.keyfile, sizeof op.keyfile, "%s", keyfile);
    snprintf(op.proj, sizeof op.proj, "%s", proj);
}

Test(sharded_daemon, per_shard_view_restart_and_cutover_through_the_cli)
{
    char *out, mig[80];
    prepare();
    cr_assert_eq(CLI(&out,
                     "lm create --projectId %s --clusterName dst --migrationHost mig-host-1 "
                     "--sourceClusterName src --sourceProjectId %s -o json",
                     proj, proj),
                 0, "%s", out);
    lm_test_json_field(out, "_id", mig, sizeof mig);
    free(out);
    set_op();

    /* shard 1's source goes away for 25 s as its copy starts: that shard FAILED, the other
     * goes on. (Longer than the engines' server selection timeout, connect_timeout, 10 s:
     * a shorter outage can be waited out by a read issued meanwhile.) */
    wait_local_copying(1, 120000);
    lm_testbed_fault(&src, "lose-shard 1 25");

    /* one row per shard, each with its target shard and its host */
    lm_test_wait_shard(&op, mig, "src-shard0", "state", "RUNNING", 60000);
    lm_test_wait_shard(&op, mig, "src-shard1", "targetShard", "dst-shard1", 60000);
    lm_json_val_t *v = lm_test_describe(&op, mig, NULL);
    lm_json_val_t *shards = lm_json_get(v, "shards");
    cr_assert_eq(lm_json_len(shards), 2);
    for (int i = 0; i < 2; i++) {
        char name[32], target[32];
        snprintf(name, sizeof name, "src-shard%d", i);
        snprintf(target, sizeof target, "dst-shard%d", i);
        lm_json_val_t *sh = lm_test_shard_of(v, name);
        cr_assert(sh, "no row for %s", name);
        cr_assert_str_eq(lm_json_string(lm_json_get(sh, "targetShard")), target);
        cr_assert_str_eq(lm_json_string(lm_json_get(sh, "migrationHost")), "mig-host-1");
        const char *state = lm_json_string(lm_json_get(sh, "state"));
        cr_assert(state && (strcmp(state, "RUNNING") == 0 || strcmp(state, "FAILED") == 0),
                  "%s: %s", name, state ? state : "(none)");
        lm_json_val_t *d = lm_json_get(sh, "documentsCopied");
        cr_assert(d && lm_json_type(d) == LM_JSON_INT, "documentsCopied of %s", name);
    }
    lm_json_free(v);
    /* the table form names the shards too */
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "shards (2):") && strstr(out, "src-shard0") &&
                  strstr(out, "src-shard1") && strstr(out, "migrationHost"),
              "%s", out);
    free(out);

    lm_test_wait_shard(&op, mig, "src-shard1", "state", "FAILED", 90000);
    v = lm_test_describe(&op, mig, NULL);
    const char *last = lm_json_string(lm_json_get(lm_test_shard_of(v, "src-shard1"), "lastError"));
    cr_assert(last && last[0], "a FAILED shard without its lastError");
    bool ready = true;
    lm_error_t err;
    cr_assert(lm_json_get_bool(v, "readyForCutover", true, &ready, &err), "%s", err.message);
    cr_assert(!ready, "readyForCutover with a FAILED shard");
    lm_json_free(v);
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "shard src-shard1 FAILED: ") &&
                  strstr(out, "livemig lm restart-shard ID --shard src-shard1"),
              "%s", out);
    free(out);
    lm_test_wait_shard(&op, mig, "src-shard0", "phase", "STREAMING", 120000);
    /* not ready while a shard has failed: the control plane refuses the cutover */
    cr_assert_neq(CLI(&out, "lm cutover %s --projectId %s --force", mig, proj), 0, "%s", out);
    cr_assert(strstr(out, "409"), "%s", out);
    free(out);
    /* a shard that did not fail, and one that does not exist, are not restarted */
    cr_assert_neq(CLI(&out, "lm restart-shard %s --projectId %s --shard src-shard0", mig, proj), 0,
                  "%s", out);
    cr_assert(strstr(out, "409") && strstr(out, "SHARD_NOT_FAILED"), "%s", out);
    free(out);
    cr_assert_neq(CLI(&out, "lm restart-shard %s --projectId %s --shard nosuchshard", mig, proj), 0,
                  "%s", out);
    cr_assert(strstr(out, "404") && strstr(out, "no shard named 'nosuchshard'"), "%s", out);
    free(out);
    cr_assert_neq(CLI(&out, "lm restart-shard %s --projectId %s --shard 'a/b'", mig, proj), 0, "%s",
                  out);
    cr_assert(strstr(out, "a shard name is"), "%s", out);
    free(out);

    /* the control plane restarted in the middle: the shards' rows are kept */
    lm_test_cp_stop(&cp);
    lm_test_cp_start(&cp);
    v = lm_test_describe(&op, mig, NULL);
    cr_assert_str_eq(lm_json_string(lm_json_get(lm_test_shard_of(v, "src-shard1"), "state")),
                     "FAILED");
    lm_json_free(v);

    /* the shard's server is back after 25 s: restart it through the control plane */
    lm_testbed_wait_reachable(src.shard_uri[1], 60000);
    cr_assert_eq(CLI(&out, "lm restart-shard %s --projectId %s --shard src-shard1", mig, proj), 0,
                 "%s", out);
    cr_assert(strstr(out, "restart of shard src-shard1"), "%s", out);
    free(out);
    wait_log("restart of shard src-shard1 requested by the control plane: shard src-shard1 "
             "restarts from its checkpoint",
             30000);
    lm_test_wait_shard(&op, mig, "src-shard1", "state", "RUNNING", 60000);
    lm_test_wait_shard(&op, mig, "src-shard1", "phase", "STREAMING", 180000);
    lm_test_wait_status(&op, mig, "WORKING", true, 180000);

    cr_assert_eq(CLI(&out, "lm cutover %s --projectId %s --force", mig, proj), 0, "%s", out);
    free(out);
    lm_test_wait_status(&op, mig, "COMPLETE", false, 180000);
    wait_log("shard src-shard1 restarted by the operator", 1000);
    /* the rows end with the migration: every shard COMPLETE */
    v = lm_test_describe(&op, mig, NULL);
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "src-shard%d", i);
        lm_json_val_t *sh = lm_test_shard_of(v, name);
        cr_assert_str_eq(lm_json_string(lm_json_get(sh, "state")), "COMPLETE", "%s", name);
        cr_assert_str_eq(lm_json_string(lm_json_get(sh, "phase")), "COMPLETE", "%s", name);
    }
    lm_json_free(v);
    int rc = lm_test_sh("'%s' '%s' --sharded --source '%s' --target '%s' > '%s/check.log' 2>&1", PY,
                        CHECK, src.config_uri, dst.config_uri, dir);
    char p[700];
    snprintf(p, sizeof p, "%s/check.log", dir);
    char *report = lm_test_slurp(p);
    cr_assert_eq(rc, 0, "differences:\n%s\nagent log:\n%s", report, lm_test_slurp(agent_log));
    cr_assert(strstr(report, ": 0 differences"), "%s", report);
    free(report);
    /* the agent verified the target shard pair by shard pair after the cutover and the
     * control plane shows it: passed, every namespace of both pairs ("SHARD:ns") */
    int64_t verified_by = lm_time_mono_ms() + 120000;
    for (;;) {
        char *text;
        v = lm_test_describe(&op, mig, &text);
        lm_json_val_t *ver = lm_json_get(v, "verification");
        const char *vs = lm_json_string(lm_json_get(ver, "state"));
        int64_t nss = -1;
        lm_json_get_int(ver, "namespacesTotal", false, 0, INT64_MAX, &nss, &err);
        bool passed = vs && strcmp(vs, "passed") == 0;
        cr_assert(!vs || (strcmp(vs, "failed") != 0 && strcmp(vs, "error") != 0),
                  "the verification after the sharded cutover: %s\nagent:\n%s", text,
                  lm_test_slurp(agent_log));
        cr_assert(lm_time_mono_ms() < verified_by, "never verified:\n%s\nagent:\n%s", text,
                  lm_test_slurp(agent_log));
        lm_json_free(v);
        free(text);
        if (passed) {
            cr_assert_gt(nss, 1, "namespaces verified: %lld", (long long)nss);
            break;
        }
        lm_time_sleep_ms(500, NULL);
    }
    /* the restart command was acknowledged: once done, it is not delivered again */
    char *alog = lm_test_slurp(agent_log);
    int n = 0;
    for (const char *q = strstr(alog, "restart of shard src-shard1 requested"); q;
         q = strstr(q + 1, "restart of shard src-shard1 requested"))
        n++;
    cr_assert_eq(n, 1, "the restart command came %d times:\n%s", n, alog);
    free(alog);
    kill(agent_pid, SIGTERM);
    cr_assert_eq(lm_test_wait(agent_pid, 30000), 0, "%s", lm_test_slurp(agent_log));
    agent_pid = 0;
}
