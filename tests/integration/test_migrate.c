/* livemig-agent migrate --copy-only against real test-bed servers. Every result is judged
 * by scripts/lm_check.py (pymongo, a client we did not write) byte for byte. */
#include <criterion/criterion.h>
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
#define CHECK LM_SOURCE_DIR "/scripts/lm_check.py"

static lm_testbed_server_t src, dst;
static char dir[512], log_path[600], state_dir[600];

static void setup(void)
{
    lm_test_mkdtemp(dir, sizeof dir);
    snprintf(log_path, sizeof log_path, "%s/agent.log", dir);
    snprintf(state_dir, sizeof state_dir, "%s/state", dir);
    memset(&src, 0, sizeof src);
    memset(&dst, 0, sizeof dst);
}

static void teardown(void)
{
    lm_testbed_stop(&src);
    lm_testbed_stop(&dst);
    lm_test_rmtree(dir);
}

TestSuite(migrate, .init = setup, .fini = teardown, .timeout = 240);

static void seed(const lm_testbed_server_t *s, const char *args)
{
    cr_assert_eq(
        lm_test_sh("'%s' '%s' --uri '%s' %s >> '%s/seed.log' 2>&1", PY, SEED, s->uri, args, dir), 0,
        "seeding failed: %s", lm_test_slurp(log_path));
}

/* Runs the checker; returns its exit code and leaves its report in dir/check.log. */
static int check(const char *extra)
{
    return lm_test_sh("'%s' '%s' --source '%s' --target '%s' %s > '%s/check.log' 2>&1", PY, CHECK,
                      src.uri, dst.uri, extra ? extra : "", dir);
}

static char *check_log(void)
{
    char p[700];
    snprintf(p, sizeof p, "%s/check.log", dir);
    return lm_test_slurp(p);
}

/* argv for the agent: migrate --copy-only --source --target --state-dir + extra (NULL-ended). */
static pid_t start_agent(const char *status_addr, const char *const *extra)
{
    char *argv[40];
    int n = 0;
    argv[n++] = (char *)LM_AGENT_BIN;
    argv[n++] = (char *)"migrate";
    argv[n++] = (char *)"--copy-only";
    argv[n++] = (char *)"--source";
    argv[n++] = src.uri;
    argv[n++] = (char *)"--target";
    argv[n++] = dst.uri;
    argv[n++] = (char *)"--state-dir";
    argv[n++] = state_dir;
    argv[n++] = (char *)"--status-addr";
    argv[n++] = (char *)(status_addr ? status_addr : "0");
    for (int i = 0; extra && extra[i] && n < 39; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    return lm_test_spawn(argv, log_path);
}

static int run_agent(const char *const *extra)
{
    return lm_test_wait(start_agent(NULL, extra), 180000);
}

Test(migrate, full_dataset_byte_exact)
{
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    seed(&src, "full");
    int rc = run_agent(NULL);
    char *log = lm_test_slurp(log_path);
    cr_assert_eq(rc, 0, "agent failed:\n%s", log);
    cr_assert(strstr(log, "livemig copy COMPLETE"), "%s", log);
    cr_assert_eq(check(NULL), 0, "%s", check_log());
    cr_assert(strstr(check_log(), ": 0 differences"));
    free(log);
    /* the pinned start is in the checkpoint on the target, and the job ended COMPLETE */
    cr_assert_eq(
        lm_test_sh(
            "'%s' -c \"from pymongo import MongoClient as M; import sys; "
            "j = M('%s')['__livemig'].checkpoints.find_one({'kind': 'job'}); "
            "sys.exit(0 if j and j['startOptime'].time > 0 and j['phase'] == 'COMPLETE' else 1)\"",
            PY, dst.uri),
        0, "no job checkpoint with a start optime on the target");
}

Test(migrate, refused_indexes_are_reported_by_name)
{
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("ferretdb", NULL, &dst);
    cr_assert_eq(
        lm_test_sh(
            "'%s' -c \"from pymongo import MongoClient as M; c=M('%s').shop.places; "
            "c.insert_many([{'n': i, 'loc': {'type': 'Point', 'coordinates': [i %% 90, 0]}} "
            "for i in range(200)]); c.create_index([('loc', '2dsphere')]); "
            "c.create_index('n', partialFilterExpression={'n': {'$gt': 5}}); c.create_index('n', "
            "name='n_plain')\"",
            PY, src.uri),
        0);
    int rc = run_agent(NULL);
    char *log = lm_test_slurp(log_path);
    cr_assert_eq(rc, 0, "%s", log);
    cr_assert(
        strstr(log, "index 'loc_2dsphere' on shop.places was not built: the target refused it"),
        "%s", log);
    cr_assert(strstr(log, "index 'n_1' on shop.places was not built"), "%s", log);
    cr_assert(strstr(log, "indexes the target refused: 2"), "%s", log);
    cr_assert_null(strstr(log, "index 'n_plain'"), "the accepted index is not reported:\n%s", log);
    cr_assert_eq(check("--no-indexes"), 0, "%s", check_log());
    free(log);
}

/* The options the target kept are compared once per database after the creates: every
 * collection whose option FerretDB drops is named, in each database, and no other. */
Test(migrate, dropped_collection_options_are_warned_by_name)
{
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("ferretdb", NULL, &dst);
    cr_assert_eq(
        lm_test_sh("'%s' -c \"from pymongo import MongoClient as M; c=M('%s'); "
                   "c.shop.create_collection('clustered', clusteredIndex={'key': {'_id': 1}, "
                   "'unique': True}); c.shop.create_collection('plain'); "
                   "c.other.create_collection('images', changeStreamPreAndPostImages={'enabled': "
                   "True}); c.other.create_collection('capped', capped=True, size=65536); "
                   "[c[d][n].insert_one({'_id': 1}) for d, n in [('shop', 'clustered'), ('shop', "
                   "'plain'), ('other', 'images'), ('other', 'capped')]]\"",
                   PY, src.uri),
        0);
    int rc = run_agent(NULL);
    char *log = lm_test_slurp(log_path);
    cr_assert_eq(rc, 0, "%s", log);
    cr_assert(strstr(log, "shop.clustered: the target did not keep the collection option "
                          "'clusteredIndex'"),
              "%s", log);
    cr_assert(strstr(log, "other.images: the target did not keep the collection option "
                          "'changeStreamPreAndPostImages'"),
              "%s", log);
    cr_assert(strstr(log, "collection options the target did not keep: 2"), "%s", log);
    cr_assert_null(strstr(log, "shop.plain: the target"), "%s", log);
    cr_assert_null(strstr(log, "other.capped: the target"), "capped and size are kept:\n%s", log);
    free(log);
}

static int64_t status_docs(int port, char *state, size_t statesz)
{
    lm_error_t err;
    int64_t docs = -1;
    lm_json_val_t *v = lm_test_agent_status(port), *c = NULL;
    const char *s = NULL;
    if (v && lm_json_get_obj(v, "counters", true, &c, &err))
        lm_json_get_int(c, "documentsCopied", true, 0, INT64_MAX, &docs, &err);
    if (v && state && lm_json_get_str(v, "state", true, 0, &s, &err))
        snprintf(state, statesz, "%s", s);
    lm_json_free(v);
    return docs;
}

/* Waits until the running agent has copied at least `docs` documents. */
static void wait_copied(pid_t pid, int port, int64_t docs)
{
    int64_t until = lm_time_mono_ms() + 120000;
    while (lm_time_mono_ms() < until) {
        if (status_docs(port, NULL, 0) >= docs)
            return;
        cr_assert_eq(kill(pid, 0), 0, "the agent ended early:\n%s", lm_test_slurp(log_path));
        lm_time_sleep_ms(50, NULL);
    }
    cr_assert_fail("the agent never copied %lld documents:\n%s", (long long)docs,
                   lm_test_slurp(log_path));
}

static int64_t summary_number(const char *log, const char *label)
{
    const char *last = NULL;
    for (const char *p = log; (p = strstr(p, label)); p++)
        last = p;
    return last ? strtoll(last + strlen(label), NULL, 10) : -1;
}

Test(migrate, kill9_mid_copy_resumes_without_recopying)
{
    char addr[64];
    const char *extra[] = {"--copy-workers", "2", "--split-docs", "5000", NULL};
    int port = lm_test_free_port();
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    seed(&src, "bulk --docs 60000 --collections 6 --doc-bytes 300");
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    pid_t pid = start_agent(addr, extra);
    wait_copied(pid, port, 25000);
    kill(pid, SIGKILL);
    cr_assert_eq(lm_test_wait(pid, 10000), 128 + SIGKILL);

    int rc = lm_test_wait(start_agent(NULL, extra), 180000);
    char *log = lm_test_slurp(log_path);
    cr_assert_eq(rc, 0, "%s", log);
    cr_assert(strstr(log, "resuming job"), "%s", log);
    /* What the second run read again: new documents plus those already on the target (a
     * range written but not yet recorded when the kill came). Under load the first run can
     * have written every document before the kill, so new ones may be 0; what must hold is
     * that finished collections were not read again. */
    int64_t copied = summary_number(log, "documents copied: ");
    int64_t again = summary_number(log, "already on the target: ");
    cr_assert(copied >= 0 && again >= 0 && copied + again < 60000,
              "the second run read %lld + %lld of 60000 again:\n%s", (long long)copied,
              (long long)again, log);
    cr_assert_gt(summary_number(log, "(finished by an earlier run: "), 0, "%s", log);
    cr_assert_eq(check(NULL), 0, "%s", check_log());
    free(log);
}

Test(migrate, sigterm_checkpoints_then_resume_completes)
{
    char addr[64];
    int port = lm_test_free_port();
    const char *extra[] = {"--split-docs", "5000", NULL};
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    seed(&src, "bulk --docs 40000 --collections 2 --doc-bytes 300");
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    pid_t pid = start_agent(addr, extra);
    wait_copied(pid, port, 10000);
    kill(pid, SIGTERM);
    int rc = lm_test_wait(pid, 60000);
    char *log = lm_test_slurp(log_path);
    cr_assert_eq(rc, 3, "SIGTERM must end with exit code 3 (stopped, resumable):\n%s", log);
    cr_assert(strstr(log, "livemig copy STOPPED"), "%s", log);
    free(log);
    cr_assert_eq(run_agent(extra), 0, "%s", lm_test_slurp(log_path));
    cr_assert_eq(check(NULL), 0, "%s", check_log());
}

Test(migrate, status_api_metrics_and_cancel)
{
    char addr[64], url[128], state[32] = "";
    int port = lm_test_free_port();
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    seed(&src, "bulk --docs 40000 --collections 2 --doc-bytes 300");
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    pid_t pid = start_agent(addr, NULL);
    wait_copied(pid, port, 1);
    status_docs(port, state, sizeof state);
    cr_assert_str_eq(state, "RUNNING");

    lm_http_response_t resp;
    lm_error_t err;
    lm_http_opts_t o = {.total_timeout_ms = 5000};
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    cr_assert(lm_http_request(&o, "GET", url, NULL, NULL, 0, &resp, &err), "%s", err.message);
    cr_assert(strstr(resp.body,
                     "# TYPE livemig_copy_documents_total counter\nlivemig_copy_documents_total "),
              "%s", resp.body);
    cr_assert(strstr(resp.body, "livemig_phase{phase=\"COPYING\"} 1"), "%s", resp.body);
    lm_http_response_cleanup(&resp);

    /* livemig-agent status prints it for a person */
    char status_log[700];
    snprintf(status_log, sizeof status_log, "%s/status.txt", dir);
    char *sargv[] = {(char *)LM_AGENT_BIN, "status", "--status-addr", addr, NULL};
    cr_assert_eq(lm_test_run(sargv, status_log, 10000), 0);
    char *shown = lm_test_slurp(status_log);
    cr_assert(strstr(shown, "state:     RUNNING"), "%s", shown);
    cr_assert(strstr(shown, "bulk.c000"), "%s", shown);
    free(shown);

    /* cancel needs the job's token: the CLI reads it from the state dir */
    char *cargv[] = {(char *)LM_AGENT_BIN, "cancel", "--state-dir", state_dir,
                     "--status-addr",      addr,     NULL};
    cr_assert_eq(lm_test_run(cargv, status_log, 10000), 0);
    int rc = lm_test_wait(pid, 60000);
    char *log = lm_test_slurp(log_path);
    cr_assert_eq(rc, 4, "cancel ends with exit code 4:\n%s", log);
    cr_assert(strstr(log, "livemig copy CANCELLED"), "%s", log);
    free(log);
}

Test(migrate, include_exclude_filters)
{
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    seed(&src, "bulk --docs 3000 --collections 3 --db shop");
    seed(&src, "bulk --docs 1000 --collections 2 --db crm");
    const char *extra[] = {"--include", "shop.*",    "--include", "crm.c001",
                           "--exclude", "shop.c002", NULL};
    cr_assert_eq(run_agent(extra), 0, "%s", lm_test_slurp(log_path));
    cr_assert_eq(check("--include 'shop.*' --include crm.c001 --exclude shop.c002"), 0, "%s",
                 check_log());
    char *r = check_log();
    cr_assert(strstr(r, "checked 3 namespaces"), "%s", r);
    /* the unfiltered check sees what was left out */
    cr_assert_eq(check(NULL), 1);
    r = check_log();
    cr_assert(strstr(r, "crm.c000: missing on the target"), "%s", r);
    cr_assert(strstr(r, "shop.c002: missing on the target"), "%s", r);
}

Test(migrate, existing_target_namespaces_refused_unless_drop_target)
{
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    seed(&src, "bulk --docs 2000 --collections 2");
    cr_assert_eq(
        lm_test_sh(
            "'%s' -c \"from pymongo import MongoClient as M; M('%s').bulk.c001.insert_one({'_id': "
            "'keep-me'})\"",
            PY, dst.uri),
        0);
    int rc = run_agent(NULL);
    char *log = lm_test_slurp(log_path);
    cr_assert_eq(rc, 1, "%s", log);
    cr_assert(
        strstr(
            log,
            "the target already holds 1 of the namespaces to copy: bulk.c001: drop them, exclude "
            "them, or run with --drop-target"),
        "%s", log);
    free(log);
    /* nothing was written: the target still holds only its own document */
    cr_assert_eq(
        lm_test_sh("'%s' -c \"from pymongo import MongoClient as M; import sys; c=M('%s'); "
                   "sys.exit(0 if c.bulk.c001.count_documents({}) == 1 and 'c000' not in "
                   "c.bulk.list_collection_names() else 1)\"",
                   PY, dst.uri),
        0);
    lm_test_rmtree(state_dir);
    const char *drop[] = {"--drop-target", NULL};
    cr_assert_eq(run_agent(drop), 0, "%s", lm_test_slurp(log_path));
    cr_assert_eq(check(NULL), 0, "%s", check_log());
}

/* Errors: each names the side and what to check, exits non-zero within the timeout, and
 * never shows a password. */
static char *run_failing(const char *const *argv_tail, int *rc)
{
    char *argv[40];
    int n = 0;
    argv[n++] = (char *)LM_AGENT_BIN;
    argv[n++] = (char *)"migrate";
    argv[n++] = (char *)"--copy-only";
    argv[n++] = (char *)"--state-dir";
    argv[n++] = state_dir;
    argv[n++] = (char *)"--status-addr";
    argv[n++] = (char *)"0";
    argv[n++] = (char *)"--connect-timeout";
    argv[n++] = (char *)"3s";
    for (int i = 0; argv_tail[i]; i++)
        argv[n++] = (char *)argv_tail[i];
    argv[n] = NULL;
    int64_t t0 = lm_time_mono_ms();
    *rc = lm_test_run(argv, log_path, 60000);
    cr_assert_lt(lm_time_mono_ms() - t0, 20000, "took too long");
    return lm_test_slurp(log_path);
}

Test(migrate, unreachable_source)
{
    char uri[128];
    int rc;
    lm_testbed_start("secantus", NULL, &dst);
    snprintf(uri, sizeof uri, "mongodb://127.0.0.1:%d/?directConnection=true", lm_test_free_port());
    const char *args[] = {"--source", uri, "--target", dst.uri, NULL};
    char *log = run_failing(args, &rc);
    cr_assert_eq(rc, 1, "%s", log);
    cr_assert(strstr(log, "source 127.0.0.1:"), "%s", log);
    cr_assert(strstr(log, ": check the host and port, and that the server is running"), "%s", log);
    cr_assert(strstr(log, "livemig copy FAILED before it started"), "%s", log);
    free(log);
}

Test(migrate, wrong_password_never_shown)
{
    char pwfile[700];
    int rc;
    lm_testbed_start("secantus-auth", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    lm_test_write(dir, "pw", "Wr0ng-Passw0rd-xyz\n", pwfile, sizeof pwfile);
    chmod(pwfile, 0600);
    const char *args[] = {
        "--source", src.uri,    "--source-user", "lmadmin", "--source-password-file",
        pwfile,     "--target", dst.uri,         NULL};
    char *log = run_failing(args, &rc);
    cr_assert_eq(rc, 1, "%s", log);
    cr_assert(
        strstr(
            log,
            "authentication failed for user 'lmadmin': check the user name and the password file "
            "(--source-password-file)"),
        "%s", log);
    cr_assert_null(strstr(log, "Wr0ng-Passw0rd-xyz"), "%s", log);
    free(log);
    /* the right one, from the environment, works */
    setenv("LIVEMIG_SOURCE_PASSWORD", src.password, 1);
    const char *ok_args[] = {"--source", src.uri, "--source-user", "lmadmin", "--target",
                             dst.uri,    NULL};
    log = run_failing(ok_args, &rc);
    unsetenv("LIVEMIG_SOURCE_PASSWORD");
    cr_assert_eq(rc, 0, "%s", log);
    cr_assert_null(strstr(log, src.password), "%s", log);
    free(log);
}

Test(migrate, wrong_ca_file)
{
    char other[512], other_ca[700];
    int rc;
    lm_testbed_start("secantus-tls", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    lm_test_certs("other-ca", other, sizeof other);
    snprintf(other_ca, sizeof other_ca, "%s/ca.pem", other);
    const char *args[] = {"--source", src.uri, "--source-tls-ca-file", other_ca, "--target",
                          dst.uri,    NULL};
    char *log = run_failing(args, &rc);
    cr_assert_eq(rc, 1, "%s", log);
    cr_assert(strstr(log, "TLS handshake failed"), "%s", log);
    cr_assert(strstr(log, "--source-tls-ca-file"), "%s", log);
    free(log);
    const char *good[] = {"--source", src.uri, "--source-tls-ca-file", src.ca_file, "--target",
                          dst.uri,    NULL};
    log = run_failing(good, &rc);
    cr_assert_eq(rc, 0, "with the right CA the copy runs:\n%s", log);
    free(log);
}

Test(migrate, target_refuses_writes)
{
    char pwfile[700], ro_uri[1024];
    int rc;
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus-auth", NULL, &dst);
    seed(&src, "bulk --docs 100 --collections 1");
    lm_testbed_uri_with_auth(&dst, ro_uri, sizeof ro_uri);
    cr_assert_eq(
        lm_test_sh(
            "'%s' -c \"from pymongo import MongoClient as M; M('%s').admin.command('createUser', "
            "'reader', pwd='reader-pw-123', roles=['readAnyDatabase'])\"",
            PY, ro_uri),
        0);
    lm_test_write(dir, "ropw", "reader-pw-123\n", pwfile, sizeof pwfile);
    chmod(pwfile, 0600);
    const char *args[] = {"--source",
                          src.uri,
                          "--target",
                          dst.uri,
                          "--target-user",
                          "reader",
                          "--target-password-file",
                          pwfile,
                          NULL};
    char *log = run_failing(args, &rc);
    cr_assert_eq(rc, 1, "%s", log);
    cr_assert(strstr(log, "target"), "%s", log);
    cr_assert(strstr(log, "readWrite"), "the message says which privilege is missing:\n%s", log);
    free(log);
}

Test(migrate, bad_arguments)
{
    int rc;
    const char *pw[] = {"--source",          "mongodb://h", "--target", "mongodb://h2",
                        "--source-password", "x",           NULL};
    char *log = run_failing(pw, &rc);
    cr_assert_eq(rc, 2, "%s", log);
    cr_assert(
        strstr(log,
               "passwords are not taken on the command line, where other users can read them, so "
               "--source-password is refused"),
        "%s", log);
    free(log);
    const char *bad[] = {"--source",       "mongodb://h", "--target", "mongodb://h2",
                         "--copy-workers", "65",          NULL};
    log = run_failing(bad, &rc);
    cr_assert_eq(rc, 2, "%s", log);
    cr_assert(strstr(log, "--copy-workers: copy_workers: must be between 0 and 64"), "%s", log);
    free(log);
    const char *none[] = {"--target", "mongodb://h2", NULL};
    log = run_failing(none, &rc);
    cr_assert_eq(rc, 2, "%s", log);
    cr_assert(strstr(log, "source.uri: required, but not set"), "%s", log);
    free(log);
}

Test(migrate, job_file_sample_and_errors)
{
    char sample_log[700], job_path[700], yaml[2048];
    int rc;
    /* conf/job.yaml is exactly what the schema prints */
    snprintf(sample_log, sizeof sample_log, "%s/sample.yaml", dir);
    char *sargv[] = {(char *)LM_AGENT_BIN, "migrate", "--sample-config", NULL};
    cr_assert_eq(lm_test_run(sargv, sample_log, 10000), 0);
    char *sample = lm_test_slurp(sample_log),
         *committed = lm_test_slurp(LM_SOURCE_DIR "/conf/job.yaml");
    cr_assert_str_eq(sample, committed,
                     "conf/job.yaml is stale: run livemig-agent migrate --sample-config");
    free(sample);
    free(committed);

    /* a job file with an unknown key: file:line:col */
    lm_test_write(dir, "bad.yaml", "source:\n  uri: mongodb://h\n  pasword_file: /x\n", job_path,
                  sizeof job_path);
    const char *bad[] = {"--job", job_path, NULL};
    char *log = run_failing(bad, &rc);
    cr_assert_eq(rc, 2, "%s", log);
    cr_assert(
        strstr(log,
               "bad.yaml:3:3: source.pasword_file: unknown key (did you mean 'password_file'?)"),
        "%s", log);
    free(log);

    /* a real job from a file; a flag overrides the file's include */
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    seed(&src, "bulk --docs 1000 --collections 2");
    snprintf(yaml, sizeof yaml,
             "source:\n  uri: \"%s\"\ntarget:\n  uri: \"%s\"\ncopy_only: true\ninclude: "
             "[nothing.*]\nlog_format: json\n",
             src.uri, dst.uri);
    lm_test_write(dir, "job.yaml", yaml, job_path, sizeof job_path);
    const char *good[] = {"--job", job_path, "--include", "bulk.*", NULL};
    log = run_failing(good, &rc);
    cr_assert_eq(rc, 0, "%s", log);
    cr_assert(strstr(log, "{\"ts\":\""), "--log-format json from the file is used:\n%s", log);
    free(log);
    cr_assert_eq(check("--include 'bulk.*'"), 0, "%s", check_log());
}

/* Forced _id ranges over a collection holding every kind of _id: the ranges of the dominant
 * type plus the ranges for other types and NaN must together cover every document. */
Test(migrate, forced_ranges_cover_every_id_type)
{
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    cr_assert_eq(
        lm_test_sh(
            "'%s' -c \"from pymongo import MongoClient as M; from bson import ObjectId, Int64, "
            "Decimal128, MinKey, MaxKey; c=M('%s').mix.ids; "
            "c.insert_many([{'_id': i} for i in range(5000)]); "
            "c.insert_many([{'_id': Int64(10**12 + i)} for i in range(100)]); "
            "c.insert_many([{'_id': i + 0.5} for i in range(100)]); "
            "c.insert_many([{'_id': 's%%d' %% i} for i in range(50)]); "
            "c.insert_many([{'_id': ObjectId()} for i in range(50)]); "
            "c.insert_many([{'_id': {'a': i}} for i in range(20)]); "
            "c.insert_many([{'_id': float('nan')}, {'_id': float('-inf')}, {'_id': float('inf')}, "
            "{'_id': Decimal128('2.25')}, {'_id': MinKey()}, {'_id': MaxKey()}, {'_id': None}, "
            "{'_id': True}, {'_id': -7}])\"",
            PY, src.uri),
        0);
    const char *extra[] = {"--split", "always", "--split-docs", "1000", "--copy-workers",
                           "3",       NULL};
    int rc = run_agent(extra);
    char *log = lm_test_slurp(log_path);
    cr_assert_eq(rc, 0, "%s", log);
    cr_assert(strstr(log, "mix.ids: ") &&
                  strstr(log, " ranges over number _ids, plus one for other _id types"),
              "%s", log);
    cr_assert_eq(check(NULL), 0, "%s", check_log());
    free(log);
}

/* The source password given in the environment leaves it as soon as the agent has read it:
 * while the copy runs (so the password was used: the source needs it), the agent's
 * /proc/PID/environ (readable by the same user and root; it shows the initial environment
 * block, which unsetenv alone does not change) holds neither the password nor a value for
 * LIVEMIG_SOURCE_PASSWORD. */
Test(migrate, the_password_leaves_the_environment)
{
    char addr[64], auth_uri[1024], environ_path[64];
    int port = lm_test_free_port();
    lm_testbed_start("secantus-auth", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    lm_testbed_uri_with_auth(&src, auth_uri, sizeof auth_uri);
    cr_assert_eq(lm_test_sh("'%s' '%s' --uri '%s' bulk --docs 40000 --collections 2 --doc-bytes "
                            "300 >> '%s/seed.log' 2>&1",
                            PY, SEED, auth_uri, dir),
                 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    const char *extra[] = {"--source-user", "lmadmin", NULL};
    setenv("LIVEMIG_SOURCE_PASSWORD", src.password, 1);
    pid_t pid = start_agent(addr, extra);
    unsetenv("LIVEMIG_SOURCE_PASSWORD");
    wait_copied(pid, port, 1); /* authenticated with the password: it was read */
    snprintf(environ_path, sizeof environ_path, "/proc/%d/environ", (int)pid);
    FILE *f = fopen(environ_path, "r");
    cr_assert_not_null(f, "cannot read %s", environ_path);
    char env[1 << 16];
    size_t n = fread(env, 1, sizeof env - 1, f);
    fclose(f);
    env[n] = '\0';
    cr_assert_gt(n, 0);
    bool has_password = false, has_value = false, has_path = false;
    size_t plen = strlen(src.password);
    for (size_t i = 0; i + plen <= n; i++)
        if (memcmp(env + i, src.password, plen) == 0)
            has_password = true;
    /* the block is NUL-separated NAME=value strings */
    for (const char *e = env; e < env + n; e += strlen(e) + 1) {
        if (strncmp(e, "LIVEMIG_SOURCE_PASSWORD=", 24) == 0 && e[24])
            has_value = true;
        if (strncmp(e, "PATH=", 5) == 0)
            has_path = true;
    }
    cr_assert(has_path, "the environment was read");
    kill(pid, SIGTERM);
    lm_test_wait(pid, 60000);
    cr_assert_not(has_password, "the password is in %s", environ_path);
    cr_assert_not(has_value, "LIVEMIG_SOURCE_PASSWORD has a value in %s", environ_path);
}
