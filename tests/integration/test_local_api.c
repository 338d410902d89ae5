/* Attacks on the agent's local status API (agent/ui/lm_status_http.c), each performed
 * against a real `livemig-agent migrate` streaming between two test-bed servers, and each
 * expected to be refused: cancel and cutover without the job's token (401), the token file
 * read by another local user, a foreign Host or Origin (403, DNS rebinding and browser
 * CSRF), a cutover before readyForCutover without --force (409), and a status API offered
 * to the network (exit 2). docs/security.md (local API) maps each to its protection. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
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
#define WRITER LM_SOURCE_DIR "/scripts/lm_writer.py"
#define TOKEN_FILE "status-api.auth"

static lm_testbed_server_t src, dst;
static char dir[512], log_path[600], state_dir[600], addr[64];
static int port;
static pid_t agent;

static void setup(void)
{
    lm_test_mkdtemp(dir, sizeof dir);
    snprintf(log_path, sizeof log_path, "%s/agent.log", dir);
    snprintf(state_dir, sizeof state_dir, "%s/state", dir);
    memset(&src, 0, sizeof src);
    memset(&dst, 0, sizeof dst);
    port = lm_test_free_port();
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    agent = 0;
}

static void teardown(void)
{
    if (dst.pid > 0)
        kill((pid_t)dst.pid, SIGCONT); /* a test that failed while the target was paused */
    if (agent > 0) {
        kill(agent, SIGKILL);
        lm_test_wait(agent, 5000);
    }
    lm_testbed_stop(&src);
    lm_testbed_stop(&dst);
    lm_test_rmtree(dir);
}

TestSuite(local_api, .init = setup, .fini = teardown, .timeout = 300);

/* A streaming migration between two fresh servers, its status API on addr; returns once
 * it streams. */
static void start_streaming_agent(const char *cutover_lag)
{
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    cr_assert_eq(lm_test_sh("'%s' '%s' --uri '%s' --seconds 0 --docs 200 > /dev/null 2>&1", PY,
                            WRITER, src.uri),
                 0, "loading the source failed");
    const char *argv[] = {LM_AGENT_BIN,    "migrate",     "--source", src.uri,         "--target",
                          dst.uri,         "--state-dir", state_dir,  "--status-addr", addr,
                          "--cutover-lag", cutover_lag,   NULL};
    agent = lm_test_spawn((char *const *)argv, log_path);
    int64_t until = lm_time_mono_ms() + 120000;
    for (;;) {
        char url[128];
        lm_http_response_t r;
        lm_error_t err;
        lm_http_opts_t o = {.connect_timeout_ms = 500, .total_timeout_ms = 3000};
        snprintf(url, sizeof url, "http://%s/api/v1/status", addr);
        bool streaming = lm_http_request(&o, "GET", url, NULL, NULL, 0, &r, &err) &&
                         r.status == 200 && strstr(r.body, "\"phase\":\"STREAMING\"");
        lm_http_response_cleanup(&r);
        if (streaming)
            return;
        cr_assert_eq(kill(agent, 0), 0, "the agent ended early:\n%s", lm_test_slurp(log_path));
        cr_assert(lm_time_mono_ms() < until, "the agent never streamed:\n%s",
                  lm_test_slurp(log_path));
        lm_time_sleep_ms(200, NULL);
    }
}

/* One request to the agent's API with extra header lines (NULL-ended, may be NULL);
 * returns the HTTP status, the body into *body when asked (caller frees). */
static long api(const char *method, const char *path, const char *const *headers, char **body)
{
    char url[256];
    lm_http_response_t r;
    lm_error_t err;
    lm_http_opts_t o = {.connect_timeout_ms = 2000, .total_timeout_ms = 5000};
    snprintf(url, sizeof url, "http://%s%s", addr, path);
    cr_assert(lm_http_request(&o, method, url, headers, method[0] == 'P' ? "" : NULL, 0, &r, &err),
              "%s", err.message);
    long status = r.status;
    if (body)
        *body = strdup(r.body ? r.body : "");
    lm_http_response_cleanup(&r);
    return status;
}

/* "Authorization: Bearer <the job's token>", read from the token file as its owner. With
 * no token file (an agent without tokens) a made-up one, so that the attack itself is
 * what a test exercises; token_file_is_owner_only checks the file. */
static void bearer(char *buf, size_t size)
{
    char path[700];
    snprintf(path, sizeof path, "%s/" TOKEN_FILE, state_dir);
    char *text = lm_test_slurp(path);
    char *sp = strchr(text, ' ');
    if (sp)
        sp[strcspn(sp, "\n")] = '\0';
    snprintf(buf, size, "Authorization: Bearer %s", sp ? sp + 1 : "no-token-file");
    free(text);
}

/* The job is still running: the process lives and its API says RUNNING. */
static void expect_running(void)
{
    char *body = NULL;
    cr_assert_eq(kill(agent, 0), 0, "the agent ended:\n%s", lm_test_slurp(log_path));
    cr_assert_eq(api("GET", "/api/v1/status", NULL, &body), 200);
    cr_assert(strstr(body, "\"state\":\"RUNNING\""), "%s", body);
    cr_assert_null(strstr(body, "CUTTING_OVER"), "%s", body);
    free(body);
}

/* Ends the job with the right token (which must work) and expects CANCELLED. */
static void cancel_with_token(void)
{
    char auth[200];
    bearer(auth, sizeof auth);
    const char *h[] = {auth, NULL};
    cr_assert_eq(api("POST", "/api/v1/cancel", h, NULL), 202);
    int rc = lm_test_wait(agent, 60000);
    agent = 0;
    cr_assert_eq(rc, 4, "cancel ends with exit code 4:\n%s", lm_test_slurp(log_path));
}

/* Attack 1: any local process POSTs cancel or cutover: no token, a wrong one, another
 * scheme. Before the fix: 202 and the job went away. */
Test(local_api, cancel_and_cutover_without_the_token_are_401)
{
    start_streaming_agent("10s");
    const char *wrong[] = {
        NULL,
        "Authorization: Bearer 0000000000000000000000000000000000000000000000000000000000000000",
        "Authorization: Bearer ", "Authorization: Basic bm9ib2R5Og==", NULL};
    char *body = NULL;
    for (int i = 0; i < 4; i++) {
        const char *h[] = {wrong[i], NULL};
        const char *const *hs = wrong[i] ? h : NULL;
        cr_assert_eq(api("POST", "/api/v1/cutover", hs, &body), 401, "cutover, case %d: %s", i,
                     body);
        free(body);
        cr_assert_eq(api("POST", "/api/v1/cancel", hs, &body), 401, "cancel, case %d: %s", i, body);
        cr_assert(strstr(body, "\"error\":\"unauthorized\""), "%s", body);
        free(body);
        /* the right token with one character changed */
        char auth[200];
        bearer(auth, sizeof auth);
        auth[strlen(auth) - 1] = auth[strlen(auth) - 1] == 'a' ? 'b' : 'a';
        const char *near[] = {auth, NULL};
        cr_assert_eq(api("POST", "/api/v1/cutover", near, NULL), 401);
    }
    lm_time_sleep_ms(1000, NULL); /* a cancel would have stopped it by now */
    expect_running();
    char *log = lm_test_slurp(log_path);
    cr_assert(strstr(log, "status API: POST /api/v1/cancel refused: no valid token"), "%s", log);
    char auth[200];
    bearer(auth, sizeof auth);
    cr_assert_null(strstr(log, auth + strlen("Authorization: Bearer ")),
                   "the token is in the log:\n%s", log);
    free(log);
    /* reads stay open without a token */
    cr_assert_eq(api("GET", "/metrics", NULL, NULL), 200);
    cancel_with_token();
}

/* Attack 2: another local user reads the token file, or runs the CLI against the job. The
 * test makes the directories traversable so that only the file's own mode protects it. */
Test(local_api, token_file_is_owner_only)
{
    start_streaming_agent("10s");
    char path[700];
    struct stat st;
    snprintf(path, sizeof path, "%s/" TOKEN_FILE, state_dir);
    cr_assert_eq(stat(path, &st), 0, "no token file %s:\n%s", path, lm_test_slurp(log_path));
    cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", (unsigned)(st.st_mode & 0777));
    cr_assert_eq(st.st_uid, getuid(), "the token file belongs to the agent's user");
    if (geteuid() != 0) {
        cr_log_warn("not root: the sub-case 'user nobody cannot read the token' is skipped");
    } else {
        cr_assert_eq(chmod(dir, 0755), 0);
        cr_assert_eq(chmod(state_dir, 0755), 0);
        cr_assert_neq(lm_test_sh("runuser -u nobody -- cat '%s' > '%s/nobody.log' 2>&1", path, dir),
                      0, "user nobody could read the token");
        cr_assert_neq(lm_test_sh("runuser -u nobody -- '%s' cancel --state-dir '%s' >> "
                                 "'%s/nobody.log' 2>&1",
                                 LM_AGENT_BIN, state_dir, dir),
                      0, "user nobody could cancel");
        cr_assert_neq(lm_test_sh("runuser -u nobody -- curl -s -f -X POST -H 'Origin: "
                                 "http://evil.example' http://%s/api/v1/cutover >> "
                                 "'%s/nobody.log' 2>&1",
                                 addr, dir),
                      0, "user nobody could cut over");
        char nl[700];
        snprintf(nl, sizeof nl, "%s/nobody.log", dir);
        char *out = lm_test_slurp(nl);
        cr_assert(strstr(out, "Permission denied"), "%s", out);
        free(out);
        lm_time_sleep_ms(1000, NULL);
        expect_running();
    }
    cancel_with_token();
    cr_assert_neq(stat(path, &st), 0, "the token file outlives the run");
}

/* Attack 3: a web page the operator opens reaches the API through DNS rebinding (its own
 * name resolving to 127.0.0.1) or posts to it cross-site. Even with the token, a foreign
 * Host or Origin is refused; reads too. */
Test(local_api, foreign_host_or_origin_is_403)
{
    start_streaming_agent("10s");
    char auth[200], host_port[100], own_origin[120];
    bearer(auth, sizeof auth);
    snprintf(host_port, sizeof host_port, "Host: localhost:%d", port);
    snprintf(own_origin, sizeof own_origin, "Origin: http://127.0.0.1:%d", port);
    char wrong_port[100];
    snprintf(wrong_port, sizeof wrong_port, "Host: 127.0.0.1:%d", port + 1);
    const char *foreign[][3] = {
        {"Host: evil.example", auth, NULL}, {"Host: evil.example:80", auth, NULL},
        {wrong_port, auth, NULL},           {"Origin: http://evil.example", auth, NULL},
        {"Origin: null", auth, NULL},       {host_port, "Origin: http://evil.example", auth},
    };
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        const char *h[4] = {foreign[i][0], foreign[i][1], foreign[i][2], NULL};
        char *body = NULL;
        cr_assert_eq(api("POST", "/api/v1/cancel", h, &body), 403, "case %zu: %s", i, body);
        cr_assert(strstr(body, "\"error\":\"forbidden\""), "%s", body);
        free(body);
        cr_assert_eq(api("POST", "/api/v1/cutover", h, NULL), 403, "case %zu", i);
        cr_assert_eq(api("GET", "/api/v1/status", h, NULL), 403, "case %zu", i);
    }
    lm_time_sleep_ms(1000, NULL);
    expect_running();
    /* the loopback names and the same origin are fine */
    const char *own[] = {host_port, own_origin, NULL};
    cr_assert_eq(api("GET", "/api/v1/status", own, NULL), 200);
    const char *own_origin_only[] = {own_origin, NULL};
    cr_assert_eq(api("GET", "/metrics", own_origin_only, NULL), 200);
    cancel_with_token();
}

/* Attack 4 (or haste): a cutover while the target is behind. The target is paused
 * (SIGSTOP) while a writer changes the source, so readyForCutover is false for as long as
 * the test needs; --cutover-lag 0s. Without --force: 409 and the job streams on; with it:
 * accepted, logged with the caller's uid, and the job completes once the target is back. */
Test(local_api, cutover_before_ready_is_409_unless_forced)
{
    start_streaming_agent("0s");
    cr_assert_eq(kill((pid_t)dst.pid, SIGSTOP), 0);
    cr_assert_eq(lm_test_sh("'%s' '%s' --uri '%s' --no-load --docs 200 --ops 40 --seconds 5 "
                            "--seed 9 > '%s/writer.log' 2>&1",
                            PY, WRITER, src.uri, dir),
                 0, "the writer failed");
    int64_t until = lm_time_mono_ms() + 30000;
    char *body = NULL;
    for (;;) {
        cr_assert_eq(api("GET", "/api/v1/status", NULL, &body), 200);
        bool behind = strstr(body, "\"readyForCutover\":false") != NULL;
        if (behind)
            break;
        cr_assert(lm_time_mono_ms() < until, "never behind:\n%s", body);
        free(body);
        lm_time_sleep_ms(200, NULL);
    }
    free(body);
    char auth[200];
    bearer(auth, sizeof auth);
    const char *h[] = {auth, NULL};
    cr_assert_eq(api("POST", "/api/v1/cutover", h, &body), 409, "%s", body);
    cr_assert(strstr(body, "readyForCutover is false"), "%s", body);
    free(body);
    /* the CLI says so too, and exits 1 */
    char cli_log[700];
    snprintf(cli_log, sizeof cli_log, "%s/cli.log", dir);
    cr_assert_eq(
        lm_test_sh("'%s' cutover --state-dir '%s' > '%s' 2>&1", LM_AGENT_BIN, state_dir, cli_log),
        1);
    char *out = lm_test_slurp(cli_log);
    cr_assert(strstr(out, "refused (HTTP 409)") && strstr(out, "--force"), "%s", out);
    free(out);
    expect_running();
    /* forced: accepted and logged with who did it */
    cr_assert_eq(lm_test_sh("'%s' cutover --state-dir '%s' --force > '%s' 2>&1", LM_AGENT_BIN,
                            state_dir, cli_log),
                 0, "%s", lm_test_slurp(cli_log));
    out = lm_test_slurp(cli_log);
    cr_assert(strstr(out, "forced before readyForCutover"), "%s", out);
    free(out);
    char who[64];
    snprintf(who, sizeof who, "by uid %ld (", (long)geteuid());
    char *log = lm_test_slurp(log_path);
    cr_assert(strstr(log, "cutover FORCED through the status API before readyForCutover") &&
                  strstr(log, who),
              "%s", log);
    free(log);
    cr_assert_eq(kill((pid_t)dst.pid, SIGCONT), 0);
    int rc = lm_test_wait(agent, 120000);
    agent = 0;
    log = lm_test_slurp(log_path);
    cr_assert_eq(rc, 0, "%s", log);
    cr_assert(strstr(log, "livemig migration COMPLETE"), "%s", log);
    free(log);
}

/* Attack 5: a status API offered to the network (plain HTTP, cancel and cutover). Refused
 * before anything runs: exit 2, a message that says why and what to do instead. */
Test(local_api, non_loopback_status_addr_is_refused)
{
    char bind[64], out_path[700];
    snprintf(bind, sizeof bind, "0.0.0.0:%d", port);
    snprintf(out_path, sizeof out_path, "%s/out.log", dir);
    const char *addrs[] = {bind, "[::]:0", "192.0.2.1:0", NULL};
    for (int i = 0; addrs[i]; i++) {
        char *argv[] = {(char *)LM_AGENT_BIN,    "migrate",  "--source",
                        "mongodb://127.0.0.1:1", "--target", "mongodb://127.0.0.1:2",
                        "--state-dir",           state_dir,  "--status-addr",
                        (char *)addrs[i],        NULL};
        cr_assert_eq(lm_test_run(argv, out_path, 30000), 2, "%s", lm_test_slurp(out_path));
        char *out = lm_test_slurp(out_path);
        cr_assert(strstr(out, "the status API listens on loopback only"), "%s", out);
        free(out);
    }
    struct stat st;
    cr_assert_neq(stat(state_dir, &st), 0, "nothing ran, nothing was written");
    /* the daemon's config too */
    char conf[700], yaml[256];
    snprintf(yaml, sizeof yaml, "state_dir: %s\nstatus_addr: \"%s\"\n", state_dir, bind);
    lm_test_write(dir, "agent.yaml", yaml, conf, sizeof conf);
    char *cargv[] = {(char *)LM_AGENT_BIN, "--config", conf, "--check-config", NULL};
    cr_assert_neq(lm_test_run(cargv, out_path, 30000), 0);
    char *out = lm_test_slurp(out_path);
    cr_assert(strstr(out, "status_addr: status address") &&
                  strstr(out, "the status API listens on loopback only"),
              "%s", out);
    free(out);
}
