/* Issue 16 end to end, through the `livemig` CLI only: one live migration of a 3-shard
 * cluster spread by the control plane over two migration hosts (two `livemig-agent
 * --config` daemons with their own host names and state dirs), a writer during the copy and
 * the stream, per-shard rows with their hosts in `lm describe`, one host killed (-9)
 * mid-stream: after host_grace its shards move to the other host and resume from their
 * checkpoints (copied again: nothing), the control plane restarted in the middle, the
 * cutover (the follower part first, the lead last) to COMPLETE, 0 differences
 * (`lm_check.py --sharded`: the writer's $inc counters would show a change applied twice),
 * both balancers on again. docs/agent-daemon.md describes the spread. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "lm_cluster.h"
#include "lm_json.h"
#include "lm_test_cp.h"
#include "lm_test_proc.h"
#include "lm_test_util.h"
#include "lm_testbed.h"
#include "lm_time.h"

#define PY LM_SOURCE_DIR "/.deps/venv/bin/python"
#define CHECK LM_SOURCE_DIR "/scripts/lm_check.py"
#define WRITER LM_SOURCE_DIR "/scripts/lm_writer.py"

typedef struct {
    char name[32], conf[700], log[700], state[700];
    int status_port; /* its local status API: only to time a fault */
    pid_t pid;
} host_t;

static char dir[512], token_path[700], writer_log[700];
static lm_test_cp_t cp;
static lm_test_op_t op;
static lm_testbed_server_t src, dst;
static host_t hosts[2];

static void setup(void)
{
    lm_test_mkdtemp(dir, sizeof dir);
    memset(&src, 0, sizeof src);
    memset(&dst, 0, sizeof dst);
    memset(&cp, 0, sizeof cp);
    memset(hosts, 0, sizeof hosts);
    snprintf(writer_log, sizeof writer_log, "%s/writer.log", dir);
}

static void teardown(void)
{
    for (int i = 0; i < 2; i++)
        if (hosts[i].pid > 0) {
            kill(hosts[i].pid, SIGKILL);
            lm_test_wait(hosts[i].pid, 5000);
            hosts[i].pid = 0;
        }
    lm_test_cp_kill(&cp);
    lm_testbed_stop(&src);
    lm_testbed_stop(&dst);
    lm_test_rmtree(dir);
}

TestSuite(sharded_hosts, .init = setup, .fini = teardown, .timeout = 600);

#define CLI(out, ...) lm_test_cp_cli(&cp, op.pub, op.keyfile, out, __VA_ARGS__)

static void wait_log(const host_t *h, const char *needle, int timeout_ms)
{
    int64_t until = lm_time_mono_ms() + timeout_ms;
    for (;;) {
        char *log = lm_test_slurp(h->log);
        bool found = strstr(log, needle) != NULL;
        free(log);
        if (found)
            return;
        cr_assert(lm_time_mono_ms() < until, "%s never logged \"%s\":\n%s", h->name, needle,
                  lm_test_slurp(h->log));
        lm_time_sleep_ms(200, NULL);
    }
}

/* The agent daemon of host h (its own host name, state dir and log). */
static void start_host(host_t *h)
{
    char *argv[] = {(char *)LM_AGENT_BIN, (char *)"--config", h->conf, NULL};
    h->pid = lm_test_spawn(argv, h->log);
}

static void host_config(host_t *h, const char *name)
{
    char yaml[3000];
    snprintf(h->name, sizeof h->name, "%s", name);
    snprintf(h->log, sizeof h->log, "%s/%s.log", dir, name);
    snprintf(h->state, sizeof h->state, "%s/%s-state", dir, name);
    snprintf(yaml, sizeof yaml,
             "control_plane:\n  link_token_file: %s\n  ca_file: %s\n"
             "state_dir: %s\nhostname: %s\nheartbeat_interval: 1s\npoll_timeout: 3s\n"
             "status_addr: 127.0.0.1:%d\nlog_level: info\n",
             token_path, cp.ca, h->state, name, h->status_port = lm_test_free_port());
    char file[64];
    snprintf(file, sizeof file, "%s.yaml", name);
    lm_test_write(dir, file, yaml, h->conf, sizeof h->conf);
}

/* The beds (3 shards each), the writer's documents loaded and sharded, the control plane
 * (host_grace 8 s), an operator, both clusters, a link-token, both hosts linked. */
static void prepare(void)
{
    char *out, boot_pub[80], boot_key[700];
    lm_testbed_start("sharded", "--shards 3 --prefix src", &src);
    lm_testbed_start("sharded", "--shards 3 --prefix dst", &dst);
    cr_assert_eq(lm_test_sh("'%s' '%s' --sharded --uri '%s' --seconds 0 --docs 3000 > '%s' 2>&1",
                            PY, WRITER, src.config_uri, writer_log),
                 0, "loading the writer's documents failed:\n%s", lm_test_slurp(writer_log));
    lm_test_cp_init(&cp, dir, "cutover_window: 1h\nhost_grace: 8s\n");
    lm_test_cp_bootstrap(&cp, "org1", boot_pub, sizeof boot_pub, boot_key, sizeof boot_key);
    lm_test_cp_start(&cp);
    memset(&op, 0, sizeof op);
    op.cp = &cp;
    cr_assert_eq(lm_test_cp_cli(&cp, boot_pub, boot_key, &out,
                                "apikeys create --orgId org1 --role ORG_OWNER -o json"),
                 0, "%s", out);
    char priv[80];
    lm_test_json_field(out, "publicKey", op.pub, sizeof op.pub);
    lm_test_json_field(out, "privateKey", priv, sizeof priv);
    free(out);
    snprintf(op.keyfile, sizeof op.keyfile, "%s/operator.key", dir);
    cr_assert_eq(lm_test_sh("echo %s > '%s' && chmod 600 '%s'", priv, op.keyfile, op.keyfile), 0);
    cr_assert_eq(CLI(&out, "projects create shop --orgId org1 -o json"), 0, "%s", out);
    lm_test_json_field(out, "id", op.proj, sizeof op.proj);
    free(out);
    cr_assert_eq(
        CLI(&out, "clusters add src --projectId %s --connectionString '%s'", op.proj, src.uri), 0,
        "%s", out);
    free(out);
    cr_assert_eq(
        CLI(&out, "clusters add dst --projectId %s --connectionString '%s'", op.proj, dst.uri), 0,
        "%s", out);
    free(out);
    cr_assert_eq(CLI(&out, "lm link create --orgId org1 --accessListIp 127.0.0.1"), 0, "%s", out);
    out[strcspn(out, "\n")] = '\0';
    lm_test_write(dir, "link.token", out, token_path, sizeof token_path);
    chmod(token_path, 0600);
    free(out);
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "mig-host-%d", i + 1);
        host_config(&hosts[i], name);
        start_host(&hosts[i]);
    }
    for (int i = 0; i < 2; i++)
        wait_log(&hosts[i], "linked: agent", 30000);
}

/* Waits, polling host h's local status API every 50 ms, until its shard `name` is COPYING.
 * Only the fault's timing uses it: the shard's documents are read in a few seconds, too
 * short for the control plane's view (reports every 3 s) to catch reliably. */
static void wait_local_copying(const host_t *h, const char *name, int timeout_ms)
{
    int64_t until = lm_time_mono_ms() + timeout_ms;
    for (;;) {
        lm_json_val_t *v = lm_test_agent_status(h->status_port);
        lm_json_val_t *shards = v ? lm_json_get(v, "shards") : NULL;
        bool copying = false;
        for (size_t i = 0; shards && i < lm_json_len(shards); i++) {
            lm_json_val_t *sh = lm_json_at(shards, i);
            const char *n = lm_json_string(lm_json_get(sh, "name"));
            const char *phase = lm_json_string(lm_json_get(sh, "phase"));
            copying =
                copying || (n && phase && strcmp(n, name) == 0 && strcmp(phase, "COPYING") == 0);
        }
        lm_json_free(v);
        if (copying)
            return;
        cr_assert(lm_time_mono_ms() < until, "%s never copied on %s:\n%s", name, h->name,
                  lm_test_slurp(h->log));
        lm_time_sleep_ms(50, NULL);
    }
}

/* How many shards of a describe answer run on host, and whether each is STREAMING. */
static int shards_on(lm_json_val_t *v, const char *host, bool *all_streaming)
{
    lm_json_val_t *shards = lm_json_get(v, "shards");
    int n = 0;
    *all_streaming = shards && lm_json_len(shards) == 3;
    for (size_t i = 0; shards && i < lm_json_len(shards); i++) {
        lm_json_val_t *sh = lm_json_at(shards, i);
        const char *h = lm_json_string(lm_json_get(sh, "migrationHost"));
        const char *phase = lm_json_string(lm_json_get(sh, "phase"));
        const char *state = lm_json_string(lm_json_get(sh, "state"));
        n += h && strcmp(h, host) == 0;
        *all_streaming = *all_streaming && phase && strcmp(phase, "STREAMING") == 0 && state &&
                         strcmp(state, "RUNNING") == 0;
    }
    return n;
}

static void expect_balancer(const lm_testbed_server_t *bed, const char *want)
{
    mongoc_client_t *c = mongoc_client_new(bed->uri);
    char mode[32];
    bool in_round;
    lm_error_t err;
    cr_assert_not_null(c);
    cr_assert(lm_balancer_status(c, mode, sizeof mode, &in_round, &err), "%s", err.message);
    mongoc_client_destroy(c);
    cr_assert_str_eq(mode, want, "balancer of %s", bed->uri);
}

static char *both_logs(void)
{
    static char buf[400000];
    char *a = lm_test_slurp(hosts[0].log), *b = lm_test_slurp(hosts[1].log);
    snprintf(buf, sizeof buf, "== mig-host-1:\n%s\n== mig-host-2:\n%s\n== control plane:\n%s", a, b,
             lm_test_slurp(cp.log));
    free(a);
    free(b);
    return buf;
}

static pid_t start_writer(void)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "exec '%s' '%s' --sharded --uri '%s' --no-load --docs 3000 --seconds 45 --rate 40 "
             "--seed 31",
             PY, WRITER, src.config_uri);
    char *argv[] = {(char *)"/bin/sh", (char *)"-c", cmd, NULL};
    return lm_test_spawn(argv, writer_log);
}

/* The whole run; host `lost_host` (0: the lead's, 1: the follower's) is killed mid-stream.
 * With `restart`, src-shard0 (the largest: the lead's) loses its source for 25 s as its copy
 * starts: FAILED, then restarted through the control plane. */
static void run(int lost_host, bool restart)
{
    char *out, mig[80];
    host_t *gone = &hosts[lost_host], *kept = &hosts[1 - lost_host];
    prepare();
    if (restart) /* src-shard0 the largest, copied long enough to be taken away meanwhile */
        cr_assert_eq(lm_test_sh("'%s' -c \"from pymongo import MongoClient as M; "
                                "M('%s').crm.bulk.insert_many([{'_id': i, 'v': 'x' * 200} "
                                "for i in range(100000)])\"",
                                PY, src.shard_uri[0]),
                     0);
    /* the writer during the copy and the stream (with a shard taken away, once it is back:
     * the writer does not wait out a lost shard) */
    pid_t writer = restart ? 0 : start_writer();
    cr_assert_eq(CLI(&out,
                     "lm create --projectId %s --clusterName dst --migrationHost mig-host-1 "
                     "--migrationHost mig-host-2 --sourceClusterName src --sourceProjectId %s "
                     "-o json",
                     op.proj, op.proj),
                 0, "%s", out);
    lm_test_json_field(out, "_id", mig, sizeof mig);
    free(out);

    if (restart) { /* a shard FAILED, restarted through the control plane */
        wait_local_copying(&hosts[0], "src-shard0", 120000);
        lm_testbed_fault(&src, "lose-shard 0 25");
        lm_test_wait_shard(&op, mig, "src-shard0", "state", "FAILED", 90000);
        cr_assert_neq(
            CLI(&out, "lm restart-shard %s --projectId %s --shard src-shard1", mig, op.proj), 0,
            "%s", out);
        cr_assert(strstr(out, "SHARD_NOT_FAILED"), "%s", out);
        free(out);
        lm_testbed_wait_reachable(src.shard_uri[0], 60000); /* the lost shard is back */
        cr_assert_eq(
            CLI(&out, "lm restart-shard %s --projectId %s --shard src-shard0", mig, op.proj), 0,
            "%s", out);
        free(out);
        writer = start_writer(); /* during src-shard0's copy and every shard's stream */
        wait_log(&hosts[0], "restart of shard src-shard0 requested by the control plane", 30000);
    }

    /* the lead (mig-host-1) reads the shards, the control plane spreads them: both hosts
     * run some, every shard streams */
    int64_t until = lm_time_mono_ms() + 240000;
    for (;;) {
        char *text;
        lm_json_val_t *v = lm_test_describe(&op, mig, &text);
        bool streaming;
        int on1 = shards_on(v, "mig-host-1", &streaming),
            on2 = shards_on(v, "mig-host-2", &streaming);
        lm_json_free(v);
        if (on1 >= 1 && on2 >= 1 && on1 + on2 == 3 && streaming) {
            free(text);
            break;
        }
        cr_assert(lm_time_mono_ms() < until, "the shards never streamed on both hosts:\n%s\n%s",
                  text, both_logs());
        free(text);
        lm_time_sleep_ms(1000, NULL);
    }
    cr_assert_eq(CLI(&out, "lm describe %s --projectId %s", mig, op.proj), 0, "%s", out);
    cr_assert(strstr(out, "parts (2, one per migration host)") && strstr(out, "mig-host-2") &&
                  strstr(out, "shards (3):"),
              "%s", out);
    free(out);
    wait_log(&hosts[0], "the control plane assigned", 1000);

    /* a host dies mid-stream: after host_grace its shards move to the other */
    char lost[3][32];
    int n_lost = 0;
    lm_json_val_t *before = lm_test_describe(&op, mig, NULL);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "src-shard%d", i);
        const char *h =
            lm_json_string(lm_json_get(lm_test_shard_of(before, name), "migrationHost"));
        if (h && strcmp(h, gone->name) == 0)
            snprintf(lost[n_lost++], sizeof lost[0], "%s", name);
    }
    lm_json_free(before);
    cr_assert_gt(n_lost, 0);
    kill(gone->pid, SIGKILL);
    lm_test_wait(gone->pid, 5000);
    gone->pid = 0;
    char why[64];
    snprintf(why, sizeof why, "%s is lost", gone->name);
    until = lm_time_mono_ms() + 120000;
    for (;;) {
        char *text;
        lm_json_val_t *v = lm_test_describe(&op, mig, &text);
        bool streaming;
        int on_kept = shards_on(v, kept->name, &streaming);
        lm_json_free(v);
        if (on_kept == 3 && streaming) {
            cr_assert(strstr(text, "part_reassigned") && strstr(text, why), "%s", text);
            free(text);
            break;
        }
        cr_assert(lm_time_mono_ms() < until, "the lost host's shards never moved:\n%s\n%s", text,
                  both_logs());
        free(text);
        lm_time_sleep_ms(1000, NULL);
    }
    /* they resumed from their checkpoints: streaming, nothing copied again */
    wait_log(kept, "streaming from the target's checkpoint", 1000);
    lm_json_val_t *after = lm_test_describe(&op, mig, NULL);
    for (int i = 0; i < n_lost; i++) {
        int64_t copied = -1;
        lm_error_t err;
        cr_assert(lm_json_get_int(lm_test_shard_of(after, lost[i]), "documentsCopied", true, 0,
                                  INT64_MAX, &copied, &err),
                  "%s", err.message);
        cr_assert_eq(copied, 0, "%s was copied again on %s", lost[i], kept->name);
    }
    lm_json_free(after);

    /* the control plane restarted in the middle */
    lm_test_cp_stop(&cp);
    lm_test_cp_start(&cp);
    /* the lost host comes back: its part stays where it went */
    start_host(gone);
    cr_assert_eq(lm_test_wait(writer, 120000), 0, "writer failed:\n%s", lm_test_slurp(writer_log));
    op.log = kept->log;
    lm_test_wait_status(&op, mig, "WORKING", true, 180000);
    cr_assert_eq(CLI(&out, "lm cutover %s --projectId %s --force", mig, op.proj), 0, "%s", out);
    free(out);
    lm_test_wait_status(&op, mig, "COMPLETE", false, 180000);
    lm_json_val_t *v = lm_test_describe(&op, mig, &out);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "src-shard%d", i);
        lm_json_val_t *sh = lm_test_shard_of(v, name);
        cr_assert_str_eq(lm_json_string(lm_json_get(sh, "state")), "COMPLETE", "%s: %s", name, out);
        cr_assert_str_eq(lm_json_string(lm_json_get(sh, "migrationHost")), kept->name);
    }
    lm_json_free(v);
    cr_assert(strstr(out, "lead_cutover"), "the lead cut over last: %s", out);
    free(out);
    char *log2 = lm_test_slurp(gone->log);
    cr_assert_not(strstr(log2, "verification passed"),
                  "the lost host ran nothing after it came back:\n%s", log2);
    free(log2);

    int rc = lm_test_sh("'%s' '%s' --sharded --source '%s' --target '%s' > '%s/check.log' 2>&1", PY,
                        CHECK, src.config_uri, dst.config_uri, dir);
    char p[700];
    snprintf(p, sizeof p, "%s/check.log", dir);
    char *report = lm_test_slurp(p);
    cr_assert_eq(rc, 0, "differences:\n%s\n%s", report, both_logs());
    cr_assert(strstr(report, ": 0 differences"), "%s", report);
    free(report);
    expect_balancer(&src, "full");
    expect_balancer(&dst, "full");
    for (int i = 0; i < 2; i++) {
        kill(hosts[i].pid, SIGTERM);
        cr_assert_eq(lm_test_wait(hosts[i].pid, 30000), 0, "%s", lm_test_slurp(hosts[i].log));
        hosts[i].pid = 0;
    }
}

Test(sharded_hosts, one_migration_over_two_hosts_the_follower_lost_through_the_cli)
{
    run(1, true);
}

/* The lead's host lost: its shards and its duty (the balancers at the end) go to the other. */
Test(sharded_hosts, one_migration_over_two_hosts_the_lead_lost_through_the_cli)
{
    run(0, false);
}
