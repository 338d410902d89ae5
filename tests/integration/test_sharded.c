/* livemig-agent migrate with a sharded source (docs/sharded.md): sharded test beds
 * (scripts/testbed start sharded: SecantusDB shard replica sets, a config server, a router
 * stand-in), the agent given the two routers, judged by `scripts/lm_check.py --sharded`
 * (pymongo: the sharding metadata, then source shard i against target shard i), the
 * balancers read through the routers. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "lm_cluster.h"
#include "lm_http.h"
#include "lm_json.h"
#include "lm_test_proc.h"
#include "lm_test_util.h"
#include "lm_testbed.h"
#include "lm_time.h"

#define PY LM_SOURCE_DIR "/.deps/venv/bin/python"
#define WRITER LM_SOURCE_DIR "/scripts/lm_writer.py"
#define CHECK LM_SOURCE_DIR "/scripts/lm_check.py"
#define SHARDED LM_SOURCE_DIR "/scripts/lm_sharded.py"

static lm_testbed_server_t src, dst;
static char dir[512], log_path[600], state_dir[600], writer_log[600];
static int port;

static void setup(void)
{
    lm_test_mkdtemp(dir, sizeof dir);
    snprintf(log_path, sizeof log_path, "%s/agent.log", dir);
    snprintf(writer_log, sizeof writer_log, "%s/writer.log", dir);
    snprintf(state_dir, sizeof state_dir, "%s/state", dir);
    memset(&src, 0, sizeof src);
    memset(&dst, 0, sizeof dst);
    port = lm_test_free_port();
    mongoc_init();
}

static void teardown(void)
{
    lm_testbed_stop(&src);
    lm_testbed_stop(&dst);
    lm_test_rmtree(dir);
}

TestSuite(sharded, .init = setup, .fini = teardown, .timeout = 240);

/* A source of `n` shards (prefix src) seeded by lm_sharded.py seed, and a target of m
 * shards (prefix dst). */
static void beds(int n, int m, int docs)
{
    char args[64];
    snprintf(args, sizeof args, "--shards %d --prefix src", n);
    lm_testbed_start("sharded", args, &src);
    snprintf(args, sizeof args, "--shards %d --prefix dst", m);
    lm_testbed_start("sharded", args, &dst);
    cr_assert_eq(lm_test_sh("'%s' '%s' seed --config '%s' --chunks 3 --docs %d > '%s/seed.log' "
                            "2>&1",
                            PY, SHARDED, src.config_uri, docs, dir),
                 0, "seeding the source failed");
}

/* The agent, with one more argument (extra, NULL for none). */
static pid_t start_agent_with(const char *extra)
{
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    char *argv[] = {(char *)LM_AGENT_BIN, "migrate", "--source",      src.uri,
                    "--target",           dst.uri,   "--state-dir",   state_dir,
                    "--status-addr",      addr,      "--cutover-lag", "30s",
                    (char *)extra,        NULL};
    return lm_test_spawn(argv, log_path);
}

static pid_t start_agent(void)
{
    return start_agent_with(NULL);
}

/* lm_writer.py --sharded on the source's config server: first loads `docs` documents and
 * shards its collection (so the migration finds the metadata in place), then writes in the
 * background with `args`. */
static pid_t start_writer(int docs, const char *args)
{
    char cmd[2048];
    cr_assert_eq(lm_test_sh("'%s' '%s' --sharded --uri '%s' --seconds 0 --docs %d > '%s' 2>&1", PY,
                            WRITER, src.config_uri, docs, writer_log),
                 0, "loading the writer's documents failed:\n%s", lm_test_slurp(writer_log));
    snprintf(cmd, sizeof cmd, "exec '%s' '%s' --sharded --uri '%s' --no-load --docs %d %s", PY,
             WRITER, src.config_uri, docs, args);
    char *argv[] = {(char *)"/bin/sh", (char *)"-c", cmd, NULL};
    return lm_test_spawn(argv, writer_log);
}

static void writer_done(pid_t w)
{
    int rc = lm_test_wait(w, 120000);
    cr_assert_eq(rc, 0, "writer failed:\n%s", lm_test_slurp(writer_log));
}

static void expect_log(const char *needle)
{
    char *log = lm_test_slurp(log_path);
    cr_assert(strstr(log, needle), "the agent log lacks \"%s\":\n%s", needle, log);
    free(log);
}

/* The agent's log says `needle` within timeout_ms. */
static void wait_log(const char *needle, int timeout_ms)
{
    int64_t until = lm_time_mono_ms() + timeout_ms;
    for (;;) {
        char *log = lm_test_slurp(log_path);
        bool found = strstr(log, needle) != NULL;
        if (found || lm_time_mono_ms() > until)
            cr_assert(found, "the agent log lacks \"%s\":\n%s", needle, log);
        free(log);
        if (found)
            return;
        lm_time_sleep_ms(100, NULL);
    }
}

/* Waits until the agent's overall phase is STREAMING with at least min_ops applied (and
 * readyForCutover when asked); returns that status (lm_json_free it). */
static lm_json_val_t *wait_streaming(pid_t pid, int64_t min_ops, bool ready)
{
    int64_t until = lm_time_mono_ms() + 150000;
    while (lm_time_mono_ms() < until) {
        lm_json_val_t *v = lm_test_agent_status(port), *s = NULL;
        const char *phase = NULL;
        bool is_ready = false;
        int64_t ops = -1;
        lm_error_t err;
        bool ok =
            v && lm_json_get_str(v, "phase", true, 0, &phase, &err) &&
            strcmp(phase, "STREAMING") == 0 && lm_json_get_obj(v, "stream", false, &s, &err) && s &&
            lm_json_get_int(s, "opsApplied", true, 0, INT64_MAX, &ops, &err) && ops >= min_ops &&
            lm_json_get_bool(v, "readyForCutover", true, &is_ready, &err) && (!ready || is_ready);
        if (ok)
            return v;
        lm_json_free(v);
        cr_assert_eq(kill(pid, 0), 0, "the agent ended early:\n%s", lm_test_slurp(log_path));
        lm_time_sleep_ms(250, NULL);
    }
    cr_assert_fail("the agent never streamed %lld changes:\n%s", (long long)min_ops,
                   lm_test_slurp(log_path));
    return NULL;
}

static int agent_cli(const char *cmd)
{
    return lm_test_sh("'%s' %s --state-dir '%s' --status-addr 127.0.0.1:%d >> '%s/cli.log' 2>&1",
                      LM_AGENT_BIN, cmd, state_dir, port, dir);
}

/* The cutover, asked again for up to 30 s while it is refused: readyForCutover may drop
 * for a moment after it was seen (a shard's look-ahead finds new work). */
static void cutover_when_ready(void)
{
    int64_t until = lm_time_mono_ms() + 30000;
    while (agent_cli("cutover") != 0) {
        char cli[700];
        snprintf(cli, sizeof cli, "%s/cli.log", dir);
        cr_assert_lt(lm_time_mono_ms(), until, "the cutover was refused for 30 s:\n%s",
                     lm_test_slurp(cli));
        lm_time_sleep_ms(500, NULL);
    }
}

static void expect_exit(pid_t agent, int code, const char *needle)
{
    int rc = lm_test_wait(agent, 120000);
    char *log = lm_test_slurp(log_path);
    cr_assert_eq(rc, code, "agent exit %d, %d expected:\n%s", rc, code, log);
    cr_assert(strstr(log, needle), "the agent's output lacks \"%s\":\n%s", needle, log);
    free(log);
}

static void expect_no_differences(void)
{
    int rc = lm_test_sh("'%s' '%s' --sharded --source '%s' --target '%s' > '%s/check.log' 2>&1", PY,
                        CHECK, src.config_uri, dst.config_uri, dir);
    char p[700];
    snprintf(p, sizeof p, "%s/check.log", dir);
    char *report = lm_test_slurp(p);
    cr_assert_eq(rc, 0, "differences:\n%s\nagent log:\n%s", report, lm_test_slurp(log_path));
    cr_assert(strstr(report, ": 0 differences"), "%s", report);
    free(report);
}

/* The balancer's mode ("full" / "off") and round through a bed's router. */
static void balancer(const lm_testbed_server_t *bed, char *mode, size_t modesz, bool *in_round)
{
    mongoc_client_t *c = mongoc_client_new(bed->uri);
    lm_error_t err;
    cr_assert_not_null(c);
    cr_assert(lm_balancer_status(c, mode, modesz, in_round, &err), "%s", err.message);
    mongoc_client_destroy(c);
}

static void expect_balancer(const lm_testbed_server_t *bed, const char *want)
{
    char mode[32];
    bool in_round;
    balancer(bed, mode, sizeof mode, &in_round);
    cr_assert_str_eq(mode, want, "balancer of %s", bed->uri);
}

/* Documents of ns summed over a bed's shards (read directly). */
static int64_t count_on_shards(const lm_testbed_server_t *bed, const char *db, const char *coll)
{
    int64_t n = 0;
    for (int i = 0; i < bed->nshards; i++) {
        mongoc_client_t *c = mongoc_client_new(bed->shard_uri[i]);
        mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
        bson_t *f = bson_new();
        bson_error_t be;
        int64_t k = mongoc_collection_count_documents(col, f, NULL, NULL, NULL, &be);
        cr_assert_geq(k, 0, "%s", be.message);
        n += k;
        bson_destroy(f);
        mongoc_collection_destroy(col);
        mongoc_client_destroy(c);
    }
    return n;
}

/* While every shard streams (the copy counters no longer move): /metrics has the per-shard
 * series, each shard STREAMING, and the shards' documents add up to the overall counter. */
static void expect_shard_metrics(int n)
{
    char url[128];
    lm_http_response_t resp;
    lm_error_t err;
    lm_http_opts_t o = {.connect_timeout_ms = 500, .total_timeout_ms = 3000};
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    memset(&resp, 0, sizeof resp);
    cr_assert(lm_http_request(&o, "GET", url, NULL, NULL, 0, &resp, &err), "%s", err.message);
    cr_assert_eq(resp.status, 200);
    const char *m = resp.body ? resp.body : "";
    long long total = -1, sum = 0;
    const char *t = strstr(m, "\nlivemig_copy_documents_total ");
    cr_assert(t && sscanf(t, "\nlivemig_copy_documents_total %lld", &total) == 1, "%s", m);
    for (int i = 0; i < n; i++) {
        char want[200];
        long long docs = -1;
        snprintf(
            want, sizeof want,
            "livemig_shard_documents_copied{shard=\"src-shard%d\",target_shard=\"dst-shard%d\"} ",
            i, i);
        const char *at = strstr(m, want);
        cr_assert(at && sscanf(at + strlen(want), "%lld", &docs) == 1 && docs > 0, "%s", m);
        sum += docs;
        snprintf(want, sizeof want,
                 "livemig_shard_phase{shard=\"src-shard%d\",target_shard=\"dst-shard%d\","
                 "phase=\"STREAMING\"} 1\n",
                 i, i);
        cr_assert(strstr(m, want), "%s", m);
        snprintf(want, sizeof want,
                 "livemig_shard_lag_seconds{shard=\"src-shard%d\",target_shard=\"dst-shard%d\"} ",
                 i, i);
        cr_assert(strstr(m, want), "%s", m);
        snprintf(want, sizeof want,
                 "livemig_shard_failed{shard=\"src-shard%d\",target_shard=\"dst-shard%d\"} 0\n", i,
                 i);
        cr_assert(strstr(m, want), "%s", m);
    }
    cr_assert_eq(sum, total, "the shards' documents (%lld) do not add up to the total (%lld)", sum,
                 total);
    lm_http_response_cleanup(&resp);
}

/* 3 shards to 3 shards under a writer (inserts, every update form, deletes, DDL) through
 * copy, stream and cutover; the balancers off meanwhile and on again after. */
Test(sharded, three_shards_live_under_a_writer)
{
    beds(3, 3, 600);
    pid_t w = start_writer(1500, "--seconds 15 --ddl --seed 11");
    pid_t a = start_agent();
    lm_json_val_t *v = wait_streaming(a, 1, false);
    /* per-shard status: three shards paired in listShards order, each streaming */
    lm_json_val_t *shards = NULL, *bal = NULL;
    lm_error_t err;
    cr_assert(lm_json_get_arr(v, "shards", true, 0, &shards, &err), "%s", err.message);
    cr_assert_eq(lm_json_len(shards), 3);
    for (size_t i = 0; i < 3; i++) {
        const char *name = NULL, *target = NULL, *phase = NULL;
        double pct = -1;
        char want[32];
        lm_json_val_t *s = lm_json_at(shards, i);
        cr_assert(lm_json_get_str(s, "name", true, 0, &name, &err) &&
                  lm_json_get_str(s, "targetShard", true, 0, &target, &err) &&
                  lm_json_get_str(s, "phase", true, 0, &phase, &err) &&
                  lm_json_get_double(s, "percentage", true, &pct, &err));
        snprintf(want, sizeof want, "src-shard%zu", i);
        cr_assert_str_eq(name, want);
        snprintf(want, sizeof want, "dst-shard%zu", i);
        cr_assert_str_eq(target, want);
        cr_assert_str_eq(phase, "STREAMING");
        cr_assert_float_eq(pct, 100.0, 0.001);
    }
    cr_assert(lm_json_get_obj(v, "balancer", true, &bal, &err), "%s", err.message);
    const char *sb = NULL;
    cr_assert(lm_json_get_str(bal, "source", true, 0, &sb, &err));
    cr_assert_str_eq(sb, "stopped");
    lm_json_free(v);
    expect_balancer(&src, "off");
    expect_balancer(&dst, "off");
    /* livemig-agent status shows the shards */
    char p[700];
    snprintf(p, sizeof p, "%s/status.txt", dir);
    cr_assert_eq(
        lm_test_sh("'%s' status --status-addr 127.0.0.1:%d > '%s' 2>&1", LM_AGENT_BIN, port, p), 0);
    char *text = lm_test_slurp(p);
    cr_assert(strstr(text, "src-shard2           dst-shard2           RUNNING   STREAMING"), "%s",
              text);
    cr_assert(strstr(text, "balancer:  source stopped, target stopped"), "%s", text);
    free(text);
    expect_shard_metrics(3);
    writer_done(w);
    lm_json_free(wait_streaming(a, 1, true));
    cr_assert_eq(agent_cli("cutover"), 0, "livemig-agent cutover failed");
    expect_exit(a, 0, "livemig sharded migration COMPLETE");
    expect_log("cutover complete on every shard");
    /* the engines' pools shut down after the summary: no outage is reported then */
    char *log = lm_test_slurp(log_path), *end = strstr(log, "livemig sharded migration COMPLETE");
    cr_assert(end && !strstr(end, "unreachable"), "%s", end);
    free(log);
    /* the agent's own verification, shard i against shard i */
    expect_log("shard src-shard2 -> dst-shard2:");
    expect_log("verification passed on every shard pair (3)");
    expect_no_differences();
    expect_balancer(&src, "full");
    expect_balancer(&dst, "full");
    /* a document planted on one target shard: `livemig-agent verify` given the two routers
     * compares shard by shard, names the pair and the _id, exit 1 */
    cr_assert_eq(lm_test_sh("'%s' -c \"from pymongo import MongoClient as M; "
                            "M('%s').shop.orders.insert_one({'_id': 'planted-extra'})\"",
                            PY, dst.shard_uri[2]),
                 0);
    snprintf(p, sizeof p, "%s/verify.txt", dir);
    int rc = lm_test_sh("'%s' verify --source '%s' --target '%s' --state-dir '%s/v' > '%s' 2>&1",
                        LM_AGENT_BIN, src.uri, dst.uri, dir, p);
    text = lm_test_slurp(p);
    cr_assert_eq(rc, 1, "verify exit %d:\n%s", rc, text);
    char *pair = strstr(text, "shard src-shard2 -> dst-shard2:");
    cr_assert(pair, "%s", text);
    cr_assert(strstr(pair, "{ \"_id\" : \"planted-extra\" } extra on the target"), "%s", text);
    cr_assert(strstr(text, "VERIFICATION FAILED: 1 of 3 shard pairs differ"), "%s", text);
    free(text);
}

/* A 2-shard source and a 3-shard target: validation FAILs on the shard count, migrate
 * refuses, and nothing is written on the target. */
Test(sharded, shard_count_mismatch_fails_and_writes_nothing)
{
    beds(2, 3, 100);
    char out[700];
    snprintf(out, sizeof out, "%s/validate.log", dir);
    int rc = lm_test_sh("'%s' validate --source '%s' --target '%s' --state-dir '%s' > '%s' 2>&1",
                        LM_AGENT_BIN, src.uri, dst.uri, state_dir, out);
    char *report = lm_test_slurp(out);
    cr_assert_eq(rc, 1, "validate exit %d:\n%s", rc, report);
    cr_assert(
        strstr(report, "shard-count          FAIL   the source has 2 shards and the target 3"),
        "%s", report);
    cr_assert(strstr(report, "source-sharded       PASS"), "%s", report);
    cr_assert(strstr(report, "config-servers       PASS"), "%s", report);
    free(report);
    expect_exit(start_agent(), 1, "needs the same number of shards");
    /* nothing on the target: no database registered, no document on any shard */
    cr_assert_eq(lm_test_sh("'%s' '%s' describe --config '%s' > '%s/describe.json' 2>&1", PY,
                            SHARDED, dst.config_uri, dir),
                 0);
    snprintf(out, sizeof out, "%s/describe.json", dir);
    report = lm_test_slurp(out);
    cr_assert(strstr(report, "\"databases\": {}, \"collections\": {}"), "%s", report);
    free(report);
    cr_assert_eq(count_on_shards(&dst, "shop", "orders"), 0);
    cr_assert_eq(count_on_shards(&dst, "__livemig", "jobs"), 0);
    expect_balancer(&src, "full"); /* never stopped */
}

/* --copy-only on a sharded source does what it does on a replica set: it copies every shard,
 * says so, claims no cutover and runs no verification after it (before, it printed "cutover
 * complete on every shard" and verified every shard pair, which also counted in
 * bench/sharded's copy time). */
Test(sharded, copy_only_copies_every_shard_and_claims_no_cutover)
{
    beds(2, 2, 300);
    expect_exit(start_agent_with("--copy-only"), 0, "livemig sharded copy COMPLETE");
    char *log = lm_test_slurp(log_path);
    cr_assert(!strstr(log, "cutover complete"), "a copy-only run claims a cutover:\n%s", log);
    cr_assert(!strstr(log, "verify"), "a copy-only run verified:\n%s", log);
    free(log);
    expect_no_differences();
    expect_balancer(&src, "full"); /* started again */
    expect_balancer(&dst, "full");
}

/* A balancer round in progress when the migration starts: it waits for it, then copies;
 * the source's balancer refuses to start again at the end: COMPLETE with the warning. */
Test(sharded, balancer_round_waited_for_and_refused_restart_warned)
{
    beds(2, 2, 300);
    /* validate runs the replica-set checks per shard pair: a namespace planted on one target
     * shard (the router does not know it) fails that shard's line, named */
    cr_assert_eq(lm_test_sh("'%s' -c \"from pymongo import MongoClient as M; "
                            "M('%s').shop.orders.insert_one({'_id': 'planted'})\"",
                            PY, dst.shard_uri[1]),
                 0);
    char out[700];
    snprintf(out, sizeof out, "%s/validate.log", dir);
    int rc = lm_test_sh("'%s' validate --source '%s' --target '%s' --state-dir '%s' > '%s' 2>&1",
                        LM_AGENT_BIN, src.uri, dst.uri, state_dir, out);
    char *report = lm_test_slurp(out);
    cr_assert_eq(rc, 1, "validate exit %d:\n%s", rc, report);
    cr_assert(strstr(report, "namespaces@src-shard1 FAIL   shard src-shard1 -> dst-shard1: the "
                             "target already holds 1 of the namespaces to copy (shop.orders)"),
              "%s", report);
    cr_assert(strstr(report, "namespaces@src-shard0 PASS   shard src-shard0 -> dst-shard0"), "%s",
              report);
    cr_assert(strstr(report, "target-namespaces    PASS"), "%s", report); /* the router's view */
    /* no auth on the bed: the roles are said not checked, on each shard and the config servers */
    cr_assert(strstr(report, "user-roles@src-shard1 INFO   shard src-shard1 -> dst-shard1: not "
                             "checked: source shard src-shard1"),
              "%s", report);
    cr_assert(strstr(report, "user-roles@config    INFO   not checked: the config server"), "%s",
              report);
    cr_assert(strstr(report, "oplog-window@src-shard1 PASS"), "%s", report);
    cr_assert(strstr(report, "change-history@src-shard0 PASS"), "%s", report);
    free(report);
    cr_assert_eq(lm_test_sh("'%s' -c \"from pymongo import MongoClient as M; "
                            "M('%s').shop.orders.drop()\"",
                            PY, dst.shard_uri[1]),
                 0);
    lm_testbed_fault(&src, "balancer-round 4");
    lm_testbed_fault(&src, "refuse-balancer-start on");
    pid_t a = start_agent();
    lm_json_free(wait_streaming(a, 0, true));
    expect_log("a balancer round is in progress on the source");
    char mode[32];
    bool in_round = true;
    balancer(&src, mode, sizeof mode, &in_round);
    cr_assert_not(in_round, "the migration copied while a balancer round was in progress");
    cr_assert_str_eq(mode, "off");
    cutover_when_ready();
    expect_exit(a, 0, "livemig sharded migration COMPLETE");
    expect_log("could not be started again");
    expect_log("START IT BY HAND");
    expect_balancer(&src, "off");
    expect_balancer(&dst, "full");
    expect_no_differences();
}

/* Cancel mid-copy: syncing stops (exit 4), the source's balancer is on again, what was
 * copied stays. The same command again is refused and names --drop-target; with
 * --drop-target what the cancelled run wrote is dropped (sharded collections through the
 * target's router, the others on each target shard) and the migration runs to COMPLETE:
 * the agent's verification passes, and so does the checker. */
Test(sharded, cancel_keeps_the_data_then_drop_target_starts_again)
{
    beds(2, 2, 300);
    /* enough on shard 1 that its copy is cancelled midway */
    cr_assert_eq(lm_test_sh("'%s' -c \"from pymongo import MongoClient as M; "
                            "M('%s').crm.bulk.insert_many([{'_id': i, 'v': 'x' * 200} "
                            "for i in range(25000)])\"",
                            PY, src.shard_uri[1]),
                 0);
    pid_t a = start_agent();
    int64_t until = lm_time_mono_ms() + 60000;
    while (count_on_shards(&dst, "crm", "bulk") == 0) {
        cr_assert_lt(lm_time_mono_ms(), until, "crm.bulk was never copied:\n%s",
                     lm_test_slurp(log_path));
        cr_assert_eq(kill(a, 0), 0, "the agent ended early:\n%s", lm_test_slurp(log_path));
        lm_time_sleep_ms(100, NULL);
    }
    expect_balancer(&src, "off");
    cr_assert_eq(agent_cli("cancel"), 0);
    expect_exit(a, 4, "livemig sharded migration CANCELLED");
    expect_balancer(&src, "full");
    cr_assert_gt(count_on_shards(&dst, "crm", "bulk"), 0); /* kept */
    cr_assert_gt(count_on_shards(&dst, "shop", "orders"), 0);
    /* the same command: refused, nothing resumed */
    expect_exit(start_agent(), 1, "was cancelled");
    expect_log("run the same command with --drop-target");
    expect_balancer(&src, "full");
    /* with --drop-target: wiped, then migrated */
    a = start_agent_with("--drop-target");
    lm_json_free(wait_streaming(a, 0, true));
    expect_log("dropped shop.orders on the target through its router");
    expect_log("dropped crm.bulk on the target (--drop-target)");
    cutover_when_ready();
    expect_exit(a, 0, "livemig sharded migration COMPLETE");
    expect_log("verification passed on every shard pair (2)");
    expect_no_differences();
    expect_balancer(&src, "full");
}

/* kill -9 mid-copy, then mid-stream: each next run resumes every shard from its own
 * checkpoint (the shard that was copying resumes its copy; the ranges it recorded are not
 * copied again); the writer's $inc counters show any change applied twice. */
Test(sharded, kill9_mid_copy_and_mid_stream_resumes_every_shard)
{
    beds(2, 2, 200);
    /* enough on shard 1 that the first kill comes while it copies */
    cr_assert_eq(lm_test_sh("'%s' -c \"from pymongo import MongoClient as M; "
                            "M('%s').crm.bulk.insert_many([{'_id': i, 'v': 'x' * 200} "
                            "for i in range(50000)])\"",
                            PY, src.shard_uri[1]),
                 0);
    pid_t w = start_writer(1000, "--seconds 40 --seed 12");
    pid_t a = start_agent();
    int64_t until = lm_time_mono_ms() + 60000;
    while (count_on_shards(&dst, "crm", "bulk") == 0) {
        cr_assert_lt(lm_time_mono_ms(), until, "crm.bulk was never copied:\n%s",
                     lm_test_slurp(log_path));
        cr_assert_eq(kill(a, 0), 0, "the agent ended early:\n%s", lm_test_slurp(log_path));
        lm_time_sleep_ms(50, NULL);
    }
    kill(a, SIGKILL);
    cr_assert_eq(lm_test_wait(a, 10000), 128 + SIGKILL);
    int64_t partial = count_on_shards(&dst, "crm", "bulk");
    cr_assert_lt(partial, 50000, "the kill came after shard 1's copy");
    char *log = lm_test_slurp(log_path);
    size_t mark = strlen(log);
    free(log);
    a = start_agent();
    lm_json_free(wait_streaming(a, 1, false));
    log = lm_test_slurp(log_path);
    cr_assert(strstr(log + mark, "(phase COPYING) from the target's checkpoint"),
              "shard 1 should resume its copy from its checkpoint:\n%s", log + mark);
    mark = strlen(log);
    free(log);
    kill(a, SIGKILL);
    cr_assert_eq(lm_test_wait(a, 10000), 128 + SIGKILL);
    a = start_agent();
    lm_json_free(wait_streaming(a, 1, false));
    log = lm_test_slurp(log_path);
    size_t resumed = 0;
    for (char *p = log + mark; (p = strstr(p, "streaming from the target's checkpoint")); p++)
        resumed++;
    cr_assert_eq(resumed, 2, "both shards should resume from their checkpoints:\n%s", log + mark);
    free(log);
    writer_done(w);
    lm_json_free(wait_streaming(a, 1, true));
    cutover_when_ready();
    expect_exit(a, 0, "livemig sharded migration COMPLETE");
    cr_assert_eq(count_on_shards(&dst, "crm", "bulk"), 50000);
    expect_no_differences();
    expect_balancer(&src, "full");
}

/* shards[i].key of a status (a string), "" when absent. */
static void shard_str(lm_json_val_t *v, size_t i, const char *key, char *out, size_t outsz)
{
    lm_json_val_t *shards = NULL;
    const char *s = NULL;
    lm_error_t err;
    out[0] = '\0';
    if (v && lm_json_get_arr(v, "shards", false, 0, &shards, &err) && shards &&
        i < lm_json_len(shards) &&
        lm_json_get_str(lm_json_at(shards, i), key, false, 0, &s, &err) && s)
        snprintf(out, outsz, "%s", s);
}

/* Polls the status until shards[i].key is want (within timeout_ms). */
static void wait_shard(pid_t a, size_t i, const char *key, const char *want, int timeout_ms)
{
    int64_t until = lm_time_mono_ms() + timeout_ms;
    char got[64] = "";
    while (lm_time_mono_ms() < until) {
        lm_json_val_t *v = lm_test_agent_status(port);
        shard_str(v, i, key, got, sizeof got);
        lm_json_free(v);
        if (strcmp(got, want) == 0)
            return;
        cr_assert_eq(kill(a, 0), 0, "the agent ended early:\n%s", lm_test_slurp(log_path));
        lm_time_sleep_ms(50, NULL);
    }
    cr_assert_fail("shard %zu's %s stayed '%s', '%s' expected:\n%s", i, key, got, want,
                   lm_test_slurp(log_path));
}

/* One shard's copy fails (its source replica set goes away mid-copy): the other shard goes
 * on to streaming, a cutover is refused, the operator restarts the failed shard alone
 * (a shard that did not fail is refused), and the migration completes with 0 differences. */
Test(sharded, a_failed_shard_is_restarted_alone)
{
    beds(2, 2, 300);
    /* enough on shard 1 that its copy lasts while the shard is taken away */
    cr_assert_eq(lm_test_sh("'%s' -c \"from pymongo import MongoClient as M; "
                            "M('%s').crm.bulk.insert_many([{'_id': i, 'v': 'x' * 200} "
                            "for i in range(25000)])\"",
                            PY, src.shard_uri[1]),
                 0);
    pid_t a = start_agent();
    wait_shard(a, 1, "phase", "COPYING", 60000);
    lm_testbed_fault(&src, "lose-shard 1 8");
    wait_shard(a, 1, "state", "FAILED", 60000);
    wait_log("then run `livemig-agent restart-shard src-shard1`", 10000);
    wait_shard(a, 0, "phase", "STREAMING", 60000);
    cr_assert_neq(agent_cli("cutover"), 0, "a cutover with a failed shard was accepted");
    /* the route takes the job's token, as cancel and cutover do */
    char url[160];
    lm_http_response_t resp;
    lm_error_t err;
    lm_http_opts_t ho = {.connect_timeout_ms = 500, .total_timeout_ms = 3000};
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/restart-shard?name=src-shard1", port);
    memset(&resp, 0, sizeof resp);
    lm_http_request(&ho, "POST", url, NULL, NULL, 0, &resp, &err);
    cr_assert_eq(resp.status, 401, "restart-shard without the token: HTTP %ld", resp.status);
    lm_http_response_cleanup(&resp);
    cr_assert_neq(agent_cli("restart-shard src-shard0"), 0, "a healthy shard was restarted");
    cr_assert_neq(agent_cli("restart-shard nosuchshard"), 0);
    char p[700];
    snprintf(p, sizeof p, "%s/cli.log", dir);
    char *cli = lm_test_slurp(p);
    cr_assert(strstr(cli, "has not failed"), "%s", cli);
    cr_assert(strstr(cli, "no shard named 'nosuchshard'"), "%s", cli);
    free(cli);
    /* the shard's server is back after 8 s: restart it */
    lm_testbed_wait_reachable(src.shard_uri[1], 30000);
    cr_assert_eq(agent_cli("restart-shard src-shard1"), 0, "restart-shard failed:\n%s",
                 lm_test_slurp(p));
    lm_json_free(wait_streaming(a, 0, true));
    cutover_when_ready();
    expect_exit(a, 0, "livemig sharded migration COMPLETE");
    expect_log("shard src-shard1 restarted by the operator");
    expect_no_differences();
    expect_balancer(&src, "full");
}

/* One agent process of a migration run by several (--shards, --sharded-role): its own state
 * dir, status port and log. use() points the helpers above (port, log_path, state_dir) at it. */
typedef struct {
    pid_t pid;
    int port;
    char state_dir[600], log[600];
} part_t;

static void use(const part_t *p)
{
    port = p->port;
    snprintf(log_path, sizeof log_path, "%s", p->log);
    snprintf(state_dir, sizeof state_dir, "%s", p->state_dir);
}

static void start_part_with(part_t *p, const char *name, const char *role, const char *shards,
                            const char *extra, const char *extra_value)
{
    char addr[64];
    p->port = lm_test_free_port();
    snprintf(p->state_dir, sizeof p->state_dir, "%s/%s", dir, name);
    snprintf(p->log, sizeof p->log, "%s/%s.log", dir, name);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", p->port);
    char *argv[] = {(char *)LM_AGENT_BIN,
                    "migrate",
                    "--source",
                    src.uri,
                    "--target",
                    dst.uri,
                    "--state-dir",
                    p->state_dir,
                    "--status-addr",
                    addr,
                    "--cutover-lag",
                    "30s",
                    "--migration-id",
                    "mig16",
                    "--sharded-role",
                    (char *)role,
                    "--shards",
                    (char *)shards,
                    (char *)extra,
                    (char *)extra_value,
                    NULL};
    p->pid = lm_test_spawn(argv, p->log);
    use(p);
}

static void start_part(part_t *p, const char *name, const char *role, const char *shards)
{
    start_part_with(p, name, role, shards, NULL, NULL);
}

/* The shards of a part's status: their names joined by ',' into names, their documents
 * copied summed into *docs. */
static void part_shards(lm_json_val_t *v, char *names, size_t namesz, int64_t *docs)
{
    lm_json_val_t *shards = NULL;
    lm_error_t err;
    names[0] = '\0';
    *docs = 0;
    cr_assert(lm_json_get_arr(v, "shards", true, 0, &shards, &err), "%s", err.message);
    for (size_t i = 0; i < lm_json_len(shards); i++) {
        const char *name = NULL;
        int64_t d = 0;
        lm_json_val_t *s = lm_json_at(shards, i);
        cr_assert(lm_json_get_str(s, "name", true, 0, &name, &err) &&
                      lm_json_get_int(s, "documentsCopied", true, 0, INT64_MAX, &d, &err),
                  "%s", err.message);
        snprintf(names + strlen(names), namesz - strlen(names), "%s%s", i ? "," : "", name);
        *docs += d;
    }
}

/* Issue 16 step 2, the agents' side: one migration over three agent processes. A follower
 * for shards 1 and 2, started first, prepares and waits for the lead's "metadata ready";
 * the lead runs shard 0, stops the balancers and makes the metadata; both stream under a
 * writer. The follower is killed (-9) mid-stream and a third process (another state dir)
 * takes its shards: they resume from their checkpoints on the target (nothing copied
 * again). Each agent is cut over (the follower first: the lead starts the balancers again
 * at its end); 0 differences, the balancers on. */
Test(sharded, one_migration_over_several_agents, .timeout = 360)
{
    beds(3, 3, 300);
    pid_t w = start_writer(1000, "--seconds 25 --seed 16");
    part_t lead, fol, third;
    lm_json_val_t *v = NULL;
    /* a shard that does not exist: a clear refusal, nothing started */
    start_part(&third, "typo", "lead", "src-shard0,src-shard9");
    expect_exit(third.pid, 1, "--shards names 'src-shard9', which is not a shard of the source");
    expect_balancer(&src, "full");
    start_part(&fol, "follower", "follower", "src-shard1,src-shard2");
    wait_log("waiting for the lead agent of sharded migration mig16", 60000);
    lm_time_sleep_ms(1500, NULL); /* it keeps waiting: still validating, nothing copied */
    v = lm_test_agent_status(port);
    const char *phase = NULL;
    lm_error_t err;
    cr_assert(v && lm_json_get_str(v, "phase", true, 0, &phase, &err));
    cr_assert_str_eq(phase, "VALIDATING");
    lm_json_free(v);
    expect_balancer(&src, "full"); /* a follower leaves the balancers alone */
    cr_assert_eq(count_on_shards(&dst, "shop", "orders"), 0, "a follower copied before the lead");
    start_part(&lead, "lead", "lead", "src-shard0");
    v = wait_streaming(lead.pid, 1, false);
    char names[128];
    int64_t lead_docs = 0, fol_docs = 0;
    part_shards(v, names, sizeof names, &lead_docs);
    cr_assert_str_eq(names, "src-shard0");
    cr_assert_gt(lead_docs, 0);
    lm_json_free(v);
    expect_log("recorded \"metadata ready\" for the followers");
    expect_balancer(&src, "off");
    expect_balancer(&dst, "off");
    use(&fol);
    v = wait_streaming(fol.pid, 20, false);
    part_shards(v, names, sizeof names, &fol_docs);
    cr_assert_str_eq(names, "src-shard1,src-shard2");
    cr_assert_gt(fol_docs, 0);
    lm_json_free(v);
    expect_log("the lead recorded \"metadata ready\": copying this agent's shards");
    /* the follower dies mid-stream (the writer goes on) */
    kill(fol.pid, SIGKILL);
    cr_assert_eq(lm_test_wait(fol.pid, 10000), 128 + SIGKILL);
    start_part(&third, "third", "follower", "src-shard1,src-shard2");
    v = wait_streaming(third.pid, 1, false);
    int64_t third_docs = -1;
    part_shards(v, names, sizeof names, &third_docs);
    cr_assert_str_eq(names, "src-shard1,src-shard2");
    cr_assert_eq(third_docs, 0, "the third agent copied %lld documents again",
                 (long long)third_docs);
    lm_json_free(v);
    char *log = lm_test_slurp(third.log);
    size_t resumed = 0;
    for (char *p = log; (p = strstr(p, "streaming from the target's checkpoint")); p++)
        resumed++;
    cr_assert_eq(resumed, 2, "both shards should resume from their checkpoints:\n%s", log);
    cr_assert_not(strstr(log, "waiting for the lead agent"), "%s", log);
    free(log);
    writer_done(w);
    lm_json_free(wait_streaming(third.pid, 1, true));
    use(&lead);
    lm_json_free(wait_streaming(lead.pid, 1, true));
    /* cutover, part by part: the follower's part, then the lead's */
    use(&third);
    cr_assert_eq(agent_cli("cutover"), 0, "cutover of the third agent failed");
    expect_exit(third.pid, 0, "livemig sharded migration COMPLETE");
    expect_log("verification passed on every shard pair (2)");
    expect_balancer(&src, "off"); /* the lead still streams */
    use(&lead);
    cr_assert_eq(agent_cli("cutover"), 0, "cutover of the lead failed");
    expect_exit(lead.pid, 0, "livemig sharded migration COMPLETE");
    expect_log("verification passed on every shard pair (1)");
    expect_no_differences();
    expect_balancer(&src, "full");
    expect_balancer(&dst, "full");
}

/* A follower whose lead never comes: it says it waits, gives up after --lead-wait with what
 * to do, copies nothing and leaves the balancers alone. The flags that make no sense alone
 * are refused before anything is done. */
Test(sharded, a_follower_without_its_lead_gives_up_clearly)
{
    beds(2, 2, 100);
    part_t f;
    start_part_with(&f, "lonely", "follower", "src-shard1", "--lead-wait", "2s");
    expect_exit(f.pid, 1, "did not record \"metadata ready\" within 2 s (--lead-wait)");
    expect_log("waiting for the lead agent of sharded migration mig16");
    expect_log(
        "start the lead (livemig-agent migrate ... --migration-id mig16 --sharded-role lead)");
    cr_assert_eq(count_on_shards(&dst, "shop", "orders"), 0);
    expect_balancer(&src, "full");
    expect_balancer(&dst, "full");
    char out[700];
    snprintf(out, sizeof out, "%s/flags.log", dir);
    int rc = lm_test_sh("'%s' migrate --source '%s' --target '%s' --state-dir '%s/x' "
                        "--sharded-role lead --shards src-shard0 > '%s' 2>&1",
                        LM_AGENT_BIN, src.uri, dst.uri, dir, out);
    char *text = lm_test_slurp(out);
    cr_assert_neq(rc, 0, "%s", text);
    cr_assert(strstr(text, "--sharded-role lead needs --migration-id ID"), "%s", text);
    free(text);
    rc = lm_test_sh("'%s' migrate --source '%s' --target '%s' --state-dir '%s/x' --shards "
                    "src-shard0 > '%s' 2>&1",
                    LM_AGENT_BIN, src.uri, dst.uri, dir, out);
    text = lm_test_slurp(out);
    cr_assert_neq(rc, 0, "%s", text);
    cr_assert(strstr(text, "say which part this agent plays with --sharded-role lead"), "%s", text);
    free(text);
}

/* Documents of db.coll on one shard of a bed (read directly). */
static int64_t count_on_shard(const lm_testbed_server_t *bed, int i, const char *db,
                              const char *coll)
{
    mongoc_client_t *c = mongoc_client_new(bed->shard_uri[i]);
    mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
    bson_t *f = bson_new();
    bson_error_t be;
    int64_t k = mongoc_collection_count_documents(col, f, NULL, NULL, NULL, &be);
    cr_assert_geq(k, 0, "%s", be.message);
    bson_destroy(f);
    mongoc_collection_destroy(col);
    mongoc_client_destroy(c);
    return k;
}

/* Issue 16, the lead of a migration spread by the control plane (--await-shards), driven
 * through its local status API as the control plane's assign-shards would: it stops the
 * balancers, reports every source shard (ASSIGNING, its size) and waits, copying nothing; a
 * list with an unknown shard is refused (400) and it goes on waiting; the right list makes
 * killed (-9) and started again, it waits again; the right list makes it run both shards
 * to COMPLETE with 0 differences; a second list is refused (409). */
Test(sharded, a_lead_awaits_its_shards)
{
    beds(2, 2, 300);
    part_t lead;
    char addr[64];
    lead.port = lm_test_free_port();
    snprintf(lead.state_dir, sizeof lead.state_dir, "%s/lead", dir);
    snprintf(lead.log, sizeof lead.log, "%s/lead.log", dir);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", lead.port);
    char *argv[] = {
        (char *)LM_AGENT_BIN, "migrate",      "--source",       src.uri, "--target",       dst.uri,
        "--state-dir",        lead.state_dir, "--status-addr",  addr,    "--cutover-lag",  "30s",
        "--migration-id",     "mig16a",       "--sharded-role", "lead",  "--await-shards", NULL};
    lead.pid = lm_test_spawn(argv, lead.log);
    use(&lead);
    wait_log("waiting for the control plane to assign this migration's shards", 60000);
    expect_balancer(&src, "off");
    expect_balancer(&dst, "off");
    lm_json_val_t *v = lm_test_agent_status(port), *shards = NULL;
    lm_error_t err;
    cr_assert(v && lm_json_get_arr(v, "shards", true, 0, &shards, &err), "%s",
              lm_test_slurp(log_path));
    cr_assert_eq(lm_json_len(shards), 2);
    int with_data = 0;
    for (size_t i = 0; i < 2; i++) {
        lm_json_val_t *s = lm_json_at(shards, i);
        const char *name = NULL, *state = NULL, *phase = NULL, *target = NULL;
        int64_t size = -1;
        char want[32];
        cr_assert(lm_json_get_str(s, "name", true, 0, &name, &err) &&
                      lm_json_get_str(s, "state", true, 0, &state, &err) &&
                      lm_json_get_str(s, "phase", true, 0, &phase, &err) &&
                      lm_json_get_str(s, "targetShard", true, 0, &target, &err) &&
                      lm_json_get_int(s, "sizeBytes", true, 0, INT64_MAX, &size, &err),
                  "%s", err.message);
        snprintf(want, sizeof want, "src-shard%zu", i);
        cr_assert_str_eq(name, want);
        snprintf(want, sizeof want, "dst-shard%zu", i);
        cr_assert_str_eq(target, want);
        cr_assert_str_eq(state, "ASSIGNING");
        cr_assert_str_eq(phase, "VALIDATING");
        if (count_on_shard(&src, (int)i, "shop", "orders") > 0) {
            cr_assert_gt(size, 0, "shard %s holds documents but its sizeBytes is %lld", name,
                         (long long)size);
            with_data++;
        }
    }
    cr_assert_gt(with_data, 0, "the seed put no document on any shard");
    lm_json_free(v);
    cr_assert_eq(count_on_shards(&dst, "shop", "orders"), 0, "copied before any assignment");
    char cli[700];
    snprintf(cli, sizeof cli, "%s/cli.log", dir);
    cr_assert_neq(agent_cli("assign-shards src-shard0,src-shard9"), 0, "an unknown shard taken");
    char *text = lm_test_slurp(cli);
    cr_assert(strstr(text, "HTTP 400") && strstr(text, "'src-shard9' is not a shard of the source"),
              "%s", text);
    free(text);
    lm_time_sleep_ms(600, NULL); /* still waiting: nothing started */
    v = lm_test_agent_status(port);
    char state[64];
    shard_str(v, 1, "state", state, sizeof state);
    cr_assert_str_eq(state, "ASSIGNING");
    lm_json_free(v);
    /* killed while it waits, started again (as a redelivered job): it waits again */
    kill(lead.pid, SIGKILL);
    cr_assert_eq(lm_test_wait(lead.pid, 10000), 128 + SIGKILL);
    lead.pid = lm_test_spawn(argv, lead.log);
    int64_t until = lm_time_mono_ms() + 60000;
    for (int waits = 0; waits < 2;) {
        text = lm_test_slurp(log_path);
        waits = 0;
        for (char *p = strstr(text, "waiting for the control plane to assign"); p;
             p = strstr(p + 1, "waiting for the control plane to assign"))
            waits++;
        free(text);
        cr_assert_lt(lm_time_mono_ms(), until, "the restarted lead does not wait:\n%s",
                     lm_test_slurp(log_path));
        lm_time_sleep_ms(100, NULL);
    }
    expect_balancer(&src, "off");
    cr_assert_eq(count_on_shards(&dst, "shop", "orders"), 0, "copied before any assignment");
    cr_assert_eq(agent_cli("assign-shards src-shard0,src-shard1"), 0, "%s", lm_test_slurp(cli));
    wait_log("the control plane assigned shards src-shard0, src-shard1 to this agent (lead)",
             10000);
    lm_json_free(wait_streaming(lead.pid, 0, true));
    cr_assert_neq(agent_cli("assign-shards src-shard0"), 0, "a second assignment was taken");
    text = lm_test_slurp(cli);
    cr_assert(strstr(text, "HTTP 409") && strstr(text, "not waiting for an assignment"), "%s",
              text);
    free(text);
    expect_log("recorded \"metadata ready\" for the followers");
    cutover_when_ready();
    expect_exit(lead.pid, 0, "livemig sharded migration COMPLETE");
    expect_no_differences();
    expect_balancer(&src, "full");
    expect_balancer(&dst, "full");
}
