/* livemig-agent verify against real test-bed servers: the full dataset copied between two
 * SecantusDB servers verifies clean; then each kind of difference is planted on the target
 * in turn (tests/integration/verify_plant.py) and verify must name it (exit 1, the
 * namespace and the _id or index); undone, verify is clean again. A live source: verify
 * runs on a streaming pair while a writer changes the source, and after the cutover
 * migrate's own verification catches a document planted on the target (exit 5). And the
 * dataset once more on FerretDB. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lm_http.h"
#include "lm_json.h"
#include "lm_test_proc.h"
#include "lm_test_util.h"
#include "lm_testbed.h"
#include "lm_time.h"

#define PY LM_SOURCE_DIR "/.deps/venv/bin/python"
#define SEED LM_SOURCE_DIR "/scripts/lm_seed.py"
#define WRITER LM_SOURCE_DIR "/scripts/lm_writer.py"
#define PLANT LM_SOURCE_DIR "/tests/integration/verify_plant.py"

static lm_testbed_server_t src, dst;
static char dir[512], log_path[600], out_path[600], state_dir[600];
static int port;

static void setup(void)
{
    lm_test_mkdtemp(dir, sizeof dir);
    snprintf(log_path, sizeof log_path, "%s/agent.log", dir);
    snprintf(out_path, sizeof out_path, "%s/verify.out", dir);
    snprintf(state_dir, sizeof state_dir, "%s/state", dir);
    memset(&src, 0, sizeof src);
    memset(&dst, 0, sizeof dst);
    port = lm_test_free_port();
}

static void teardown(void)
{
    lm_testbed_stop(&src);
    lm_testbed_stop(&dst);
    lm_test_rmtree(dir);
}

TestSuite(verify, .init = setup, .fini = teardown, .timeout = 600);

static void seed_full(const char *server)
{
    cr_assert_eq(lm_test_sh("'%s' '%s' --uri '%s' full --server %s >> '%s/seed.log' 2>&1", PY, SEED,
                            src.uri, server, dir),
                 0, "seeding failed");
}

static void copy_only(void)
{
    const char *argv[] = {LM_AGENT_BIN, "migrate",       "--copy-only", "--source",
                          src.uri,      "--target",      dst.uri,       "--state-dir",
                          state_dir,    "--status-addr", "0",           NULL};
    int rc = lm_test_run((char *const *)argv, log_path, 180000);
    cr_assert_eq(rc, 0, "the copy failed:\n%s", lm_test_slurp(log_path));
}

/* [env] livemig-agent verify SRC DST --state-dir STATE extra...; its stdout and stderr in
 * out_path (replaced). */
static int verify_env(const char *env, const char *extra)
{
    return lm_test_sh("%s '%s' verify --source '%s' --target '%s' --state-dir '%s' %s > '%s' 2>&1",
                      env ? env : "", LM_AGENT_BIN, src.uri, dst.uri, state_dir, extra ? extra : "",
                      out_path);
}

static int verify(const char *extra)
{
    return verify_env(NULL, extra);
}

static char *out(void)
{
    return lm_test_slurp(out_path);
}

static void plant(const char *action, const char *kind)
{
    cr_assert_eq(lm_test_sh("'%s' '%s' '%s' '%s' %s %s >> '%s/plant.log' 2>&1", PY, PLANT, src.uri,
                            dst.uri, action, kind, dir),
                 0, "%s %s failed", action, kind);
}

/* The output of verify has a line that holds every one of the strings (NULL-ended). */
static bool has_line(const char *text, const char *const *parts)
{
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[4096];
        snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), line);
        bool all = true;
        for (size_t i = 0; parts[i] && all; i++)
            all = strstr(buf, parts[i]) != NULL;
        if (all)
            return true;
        line = end ? end + 1 : NULL;
    }
    return false;
}

/* _id ranges as the copy plans them with --split always (3000 documents: 3 ranges over
 * numbers, one for other _id types, one for NaN), so the per-range merge and the folding
 * of ranges into a namespace are what is judged */
#define SPLIT "--split always --split-docs 1000 "

static void expect_clean(void)
{
    int rc = verify(SPLIT "--verify-recheck 1 --verify-recheck-delay 100ms");
    char *o = out();
    cr_assert_eq(rc, 0, "verify exit %d:\n%s", rc, o);
    cr_assert(strstr(o, "verification PASSED") && strstr(o, " 0 differences"), "%s", o);
    cr_assert_null(strstr(o, "FAIL"), "%s", o);
    free(o);
}

/* Plants kind, expects verify to fail naming every line in `lines` (each a NULL-ended list
 * of strings on one line) and only the namespace ns failing, then undoes it. */
static void expect_named(const char *kind, const char *ns, const char *const *line1,
                         const char *const *line2)
{
    plant("plant", kind);
    int rc = verify(SPLIT "--verify-recheck 1 --verify-recheck-delay 100ms");
    char *o = out();
    cr_assert_eq(rc, 1, "%s: verify exit %d:\n%s", kind, rc, o);
    const char *fail_line[] = {ns, "FAIL", NULL};
    cr_assert(has_line(o, fail_line), "%s: %s not FAIL:\n%s", kind, ns, o);
    cr_assert(strstr(o, "verification FAILED: 1 of "), "%s: more than %s failed:\n%s", kind, ns, o);
    cr_assert(has_line(o, line1), "%s: no line with %s ...:\n%s", kind, line1[0], o);
    if (line2)
        cr_assert(has_line(o, line2), "%s: no line with %s ...:\n%s", kind, line2[0], o);
    free(o);
    plant("undo", kind);
}

Test(verify, full_dataset_clean_then_each_planted_difference_named)
{
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    seed_full("secantus");
    copy_only();
    expect_clean();
    char *split = out();
    cr_assert(strstr(split, "shop.orders: 3 ranges over number _ids"), "not split:\n%s", split);
    free(split);
    /* the same as JSON: every namespace of the dataset, each PASS with equal counts */
    int rc = verify("-o json");
    char *o = out();
    cr_assert_eq(rc, 0, "%s", o);
    const char *json = strchr(o, '{');
    lm_error_t err;
    lm_json_val_t *v = json ? lm_json_parse(json, strlen(json), 0, 0, &err) : NULL;
    cr_assert_not_null(v, "not JSON:\n%s", o);
    lm_json_val_t *results = lm_json_get(v, "results");
    cr_assert(results && lm_json_len(results) >= 10, "%s", o);
    for (size_t i = 0; i < lm_json_len(results); i++) {
        lm_json_val_t *r = lm_json_at(results, i);
        cr_assert_str_eq(lm_json_string(lm_json_get(r, "result")), "PASS", "%s", o);
    }
    lm_json_free(v);
    free(o);

    const char *field[] = {"{ \"_id\" : { \"$numberInt\" : \"5\" } }", "differs: fields cust (",
                           NULL};
    expect_named("field", "shop.orders", field, NULL);
    const char *missing[] = {"{ \"_id\" : { \"$numberInt\" : \"7\" } }", "missing on the target",
                             NULL};
    const char *count[] = {"count differs: source 3000, target 2999", NULL};
    expect_named("missing", "shop.orders", missing, count);
    const char *extra[] = {"{ \"_id\" : { \"$numberInt\" : \"999999\" } }", "extra on the target",
                           NULL};
    expect_named("extra", "shop.orders", extra, NULL);
    const char *unique[] = {"index 'cust_id_unique' differs", "'unique' missing on the target",
                            NULL};
    expect_named("unique", "shop.orders", unique, NULL);
    const char *ttl[] = {"index 'ts_1' differs", "expireAfterSeconds", "target 999999999", NULL};
    expect_named("ttl", "shop.orders", ttl, NULL);
    const char *order[] = {"{ \"_id\" : { \"$numberInt\" : \"3\" } }",
                           "differs: field order: source (_id, kind, v), target (_id, v, kind)",
                           NULL};
    expect_named("order", "analytics.types", order, NULL);
    const char *type[] = {"{ \"_id\" : { \"$numberInt\" : \"15\" } }", "differs: fields v (", NULL};
    expect_named("type", "analytics.types", type, NULL);
    /* every plant undone: clean again (the undo really restored the source's bytes) */
    expect_clean();
    /* a collection option: crm.events is no longer capped */
    plant("plant", "option");
    rc = verify(NULL);
    o = out();
    cr_assert_eq(rc, 1, "%s", o);
    const char *capped[] = {"option 'capped' missing on the target", NULL};
    cr_assert(has_line(o, capped), "%s", o);
    free(o);
}

Test(verify, usage_errors_exit_2)
{
    cr_assert_eq(lm_test_sh("'%s' verify --bogus > '%s' 2>&1", LM_AGENT_BIN, out_path), 2);
    cr_assert(strstr(out(), "unknown option '--bogus'"), "%s", out());
    cr_assert_eq(lm_test_sh("'%s' verify --target mongodb://127.0.0.1:1 > '%s' 2>&1", LM_AGENT_BIN,
                            out_path),
                 2);
    cr_assert(strstr(out(), "source.uri"), "%s", out());
    cr_assert_eq(lm_test_sh("'%s' verify --help > '%s' 2>&1", LM_AGENT_BIN, out_path), 0);
    cr_assert(strstr(out(), "exit codes: 0"), "%s", out());
}

static void wait_ready(pid_t agent)
{
    int64_t until = lm_time_mono_ms() + 180000;
    while (lm_time_mono_ms() < until) {
        char *s = lm_test_agent_status_text(port);
        bool ok =
            s && strstr(s, "\"phase\":\"STREAMING\"") && strstr(s, "\"readyForCutover\":true");
        free(s);
        if (ok)
            return;
        cr_assert_eq(kill(agent, 0), 0, "the agent ended early:\n%s", lm_test_slurp(log_path));
        lm_time_sleep_ms(200, NULL);
    }
    cr_assert_fail("never ready for cutover:\n%s", lm_test_slurp(log_path));
}

/* A live source: a writer changes the source while the agent streams. verify without
 * re-checks sees changes in flight (exit 1); with re-checks that outlast the writer it
 * reports nothing (exit 0) after it read differing documents again. Then a document is
 * planted on the target (the stream never touches it), the cutover happens, and migrate's
 * own verification fails loudly: exit 5, the namespace and _id named, the status API
 * showed the verification running. */
Test(verify, live_source_no_false_differences_then_loud_failure_after_cutover)
{
    char addr[64];
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    cr_assert_eq(lm_test_sh("'%s' '%s' --uri '%s' --seconds 0 --docs 3000 > /dev/null 2>&1", PY,
                            WRITER, src.uri),
                 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    const char *argv[] = {LM_AGENT_BIN,    "migrate",     "--source", src.uri,         "--target",
                          dst.uri,         "--state-dir", state_dir,  "--status-addr", addr,
                          "--cutover-lag", "30s",         NULL};
    pid_t agent = lm_test_spawn((char *const *)argv, log_path);
    wait_ready(agent);
    char cmd[2048], wlog[700];
    snprintf(wlog, sizeof wlog, "%s/writer.log", dir);
    snprintf(cmd, sizeof cmd,
             "exec '%s' '%s' --uri '%s' --no-load --docs 3000 --seconds 12 --seed 7", PY, WRITER,
             src.uri);
    char *wargv[] = {(char *)"/bin/sh", (char *)"-c", cmd, NULL};
    pid_t writer = lm_test_spawn(wargv, wlog);
    lm_time_sleep_ms(2000, NULL);
    /* The stream applies a change within milliseconds, so a difference in flight is made
     * certain: the agent is paused (SIGSTOP) while the writer goes on. */
    cr_assert_eq(kill(agent, SIGSTOP), 0);
    lm_time_sleep_ms(1500, NULL);
    /* no re-check: what is in flight is reported */
    int rc = verify("--verify-recheck 0");
    char *o = out();
    cr_assert_eq(rc, 1, "changes in flight were not seen (exit %d):\n%s", rc, o);
    free(o);
    /* re-checks for 16 s: the agent resumes once the first differences are being read
     * again, applies them, and nothing is left */
    snprintf(cmd, sizeof cmd,
             "exec '%s' verify --source '%s' --target '%s' --state-dir '%s' "
             "--verify-recheck 8 --verify-recheck-delay 2s",
             LM_AGENT_BIN, src.uri, dst.uri, state_dir);
    pid_t checker = lm_test_spawn(wargv, out_path);
    int64_t until = lm_time_mono_ms() + 60000;
    bool rechecking = false;
    while (!rechecking && lm_time_mono_ms() < until && kill(checker, 0) == 0) {
        o = out();
        rechecking = o && strstr(o, "reading them again");
        free(o);
        if (!rechecking)
            lm_time_sleep_ms(50, NULL);
    }
    cr_assert_eq(kill(agent, SIGCONT), 0);
    rc = lm_test_wait(checker, 120000);
    o = out();
    cr_assert(rechecking, "no document was in flight:\n%s", o);
    cr_assert_eq(rc, 0, "false differences on a live source (exit %d):\n%s", rc, o);
    free(o);
    cr_assert_eq(lm_test_wait(writer, 60000), 0, "%s", lm_test_slurp(wlog));
    wait_ready(agent);
    cr_assert_eq(lm_test_sh("'%s' -c \"from pymongo import MongoClient as M; "
                            "M('%s').wr.docs.insert_one({'_id': 'planted-extra'})\"",
                            PY, dst.uri),
                 0);
    cr_assert_eq(lm_test_sh("'%s' cutover --state-dir '%s' > '%s/cli.log' 2>&1", LM_AGENT_BIN,
                            state_dir, dir),
                 0);
    bool seen_running = false;
    while (kill(agent, 0) == 0 && !seen_running) {
        char *s = lm_test_agent_status_text(port);
        seen_running = s && strstr(s, "\"verification\":{\"state\":\"running\"");
        free(s);
        lm_time_sleep_ms(100, NULL);
    }
    /* the re-checks of the planted document keep it running for 3 s more: the CLI shows it */
    char st_out[700];
    snprintf(st_out, sizeof st_out, "%s/status.out", dir);
    if (seen_running) {
        lm_test_sh("'%s' status --status-addr 127.0.0.1:%d > '%s' 2>&1", LM_AGENT_BIN, port,
                   st_out);
        char *so = lm_test_slurp(st_out);
        cr_assert(strstr(so, "verification: running, "), "%s", so);
        free(so);
    }
    rc = lm_test_wait(agent, 120000);
    char *log = lm_test_slurp(log_path);
    cr_assert_eq(rc, 5, "agent exit %d:\n%s", rc, log);
    cr_assert(seen_running, "the status API never showed the verification running:\n%s", log);
    cr_assert(strstr(log, "livemig migration COMPLETE"), "%s", log);
    cr_assert(strstr(log, "VERIFICATION FAILED: 1 of "), "%s", log);
    cr_assert(strstr(log, "it changed no data"), "%s", log);
    const char *named[] = {"{ \"_id\" : \"planted-extra\" }", "extra on the target", NULL};
    cr_assert(has_line(log, named), "%s", log);
    const char *ns[] = {"wr.docs", "FAIL", NULL};
    cr_assert(has_line(log, ns), "%s", log);
    free(log);
}

Test(verify, ferretdb_dataset_clean_then_type_change_named)
{
    lm_testbed_start("ferretdb", NULL, &src);
    lm_testbed_start("ferretdb", NULL, &dst);
    seed_full("ferretdb");
    copy_only();
    expect_clean();
    const char *type[] = {"{ \"_id\" : { \"$numberInt\" : \"15\" } }", "differs: fields v (", NULL};
    expect_named("type", "analytics.types", type, NULL);
    const char *missing[] = {"{ \"_id\" : { \"$numberInt\" : \"7\" } }", "missing on the target",
                             NULL};
    expect_named("missing", "shop.orders", missing, NULL);
    expect_clean();
}

/* The progress file of a verification in state_dir (malloc'd path), or NULL. */
static char *progress_file(void)
{
    DIR *d = opendir(state_dir);
    char *found = NULL;
    struct dirent *e;
    while (d && !found && (e = readdir(d)))
        if (strncmp(e->d_name, "verify-", 7) == 0 && strstr(e->d_name, ".json") &&
            !strstr(e->d_name, ".tmp")) {
            size_t n = strlen(state_dir) + strlen(e->d_name) + 2;
            found = malloc(n);
            snprintf(found, n, "%s/%s", state_dir, e->d_name);
        }
    if (d)
        closedir(d);
    return found;
}

/* The ranges of ns that the progress file lists as finished (-1: ns not in it). */
static int done_ranges(const char *path, const char *ns)
{
    char *text = lm_test_slurp(path);
    lm_error_t err;
    lm_json_val_t *v = lm_json_parse(text, strlen(text), 0, 0, &err);
    cr_assert_not_null(v, "progress file not JSON: %s", text);
    lm_json_val_t *list = lm_json_get(v, "namespaces");
    int n = -1;
    for (size_t i = 0; list && i < lm_json_len(list); i++) {
        lm_json_val_t *e = lm_json_at(list, i);
        const char *name = lm_json_string(lm_json_get(e, "ns"));
        if (name && strcmp(name, ns) == 0)
            n = (int)lm_json_len(lm_json_get(e, "done"));
    }
    lm_json_free(v);
    free(text);
    return n;
}

#define ONE "--verify-workers 1 --verify-recheck 1 --verify-recheck-delay 100ms "

/* Stops a verification after n ranges (the test knob; one worker, so the ranges are taken
 * in namespace order: analytics.*, crm.*, shop.orders last): exit 1, the message says how
 * to resume, the progress file is 0600. Returns its path. */
static char *interrupt(int n)
{
    char env[64];
    snprintf(env, sizeof env, "LM_VERIFY_TEST_STOP_AFTER_RANGES=%d", n);
    int rc = verify_env(env, SPLIT ONE);
    char *o = out();
    cr_assert_eq(rc, 1, "stopped verify exit %d:\n%s", rc, o);
    cr_assert(strstr(o, "again to resume"), "no resume hint:\n%s", o);
    free(o);
    char *path = progress_file();
    cr_assert_not_null(path, "no progress file in %s", state_dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", (unsigned)(st.st_mode & 0777));
    return path;
}

Test(verify, interrupted_then_resumed_skips_the_finished_ranges)
{
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    seed_full("secantus");
    copy_only();

    /* an uninterrupted run: its result, and no progress file left */
    int rc = verify(SPLIT ONE "-o json");
    char *o = out();
    cr_assert_eq(rc, 0, "%s", o);
    char *whole = strdup(strstr(o, "\"results\""));
    free(o);
    cr_assert_null(progress_file(), "a finished run left its progress file");

    /* stopped after 3 ranges, then run again: it resumes, compares only the rest, and its
     * result is the uninterrupted run's */
    char *path = interrupt(3);
    rc = verify(SPLIT ONE "-o json");
    o = out();
    cr_assert_eq(rc, 0, "resumed verify exit %d:\n%s", rc, o);
    cr_assert(strstr(o, "resuming verification: 3 of "), "no resume line:\n%s", o);
    cr_assert(strstr(o, "(3 done before)"), "%s", o);
    cr_assert_str_eq(strstr(o, "\"results\""), whole, "resumed result differs:\n%s", o);
    free(o);
    cr_assert_neq(access(path, F_OK), 0, "the progress file outlived the run");
    free(path);

    /* a difference planted in a finished range is not seen again (that is what resuming
     * means), one in a range still to compare is */
    path = interrupt(7);
    cr_assert_gt(done_ranges(path, "analytics.types"), 0, "%s", lm_test_slurp(path));
    cr_assert_leq(done_ranges(path, "shop.orders"), 0, "%s", lm_test_slurp(path));
    plant("plant", "type");    /* analytics.types _id 15: finished */
    plant("plant", "missing"); /* shop.orders _id 7: not yet */
    rc = verify(SPLIT ONE);
    o = out();
    cr_assert_eq(rc, 1, "%s", o);
    cr_assert(strstr(o, "resuming verification: 7 of "), "%s", o);
    const char *missing[] = {"{ \"_id\" : { \"$numberInt\" : \"7\" } }", "missing on the target",
                             NULL};
    cr_assert(has_line(o, missing), "%s", o);
    cr_assert(strstr(o, "verification FAILED: 1 of "), "%s", o);
    cr_assert_null(strstr(o, "\"15\""), "a finished range was read again:\n%s", o);
    free(o);
    cr_assert_neq(access(path, F_OK), 0, "the progress file outlived a failed run");
    free(path);
    /* from scratch (--restart) the planted type change is found too */
    path = interrupt(3);
    rc = verify(SPLIT ONE "--restart");
    o = out();
    cr_assert_eq(rc, 1, "%s", o);
    cr_assert_null(strstr(o, "resuming verification"), "%s", o);
    cr_assert(strstr(o, "the progress of an earlier run"), "%s", o);
    cr_assert(strstr(o, "verification FAILED: 2 of "), "%s", o);
    free(o);
    cr_assert_neq(access(path, F_OK), 0);
    free(path);
    plant("undo", "type");
    plant("undo", "missing");

    /* a damaged progress file: a warning, and a whole run */
    path = interrupt(3);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("{\"livemigVerifyProgress\": 1, \"key\": tru", f);
    fclose(f);
    rc = verify(SPLIT ONE);
    o = out();
    cr_assert_eq(rc, 0, "%s", o);
    cr_assert(strstr(o, "ignoring the progress file"), "%s", o);
    cr_assert_null(strstr(o, "resuming verification"), "%s", o);
    free(o);
    cr_assert_neq(access(path, F_OK), 0);
    free(path);
    free(whole);
}
