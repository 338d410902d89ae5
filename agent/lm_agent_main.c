/* livemig-agent: the agent's command line.
 *
 *   livemig-agent migrate --source URI --target URI [options]   run one copy job
 *   livemig-agent status  [--status-addr A] [-o json]           show a running job
 *   livemig-agent cancel  [--status-addr A]                     stop it (checkpointed)
 *   livemig-agent --version
 *
 * Signal handlers only set a flag; the engine checkpoints and exits. A second SIGINT or
 * SIGTERM ends the process at once. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_engine.h"
#include "lm_http.h"
#include "lm_job.h"
#include "lm_json.h"
#include "lm_log.h"

#define DEFAULT_STATUS_ADDR "127.0.0.1:27190"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    stop_flag = 1;
    signal(sig, SIG_DFL); /* a second signal ends the process */
}

static void usage(FILE *out)
{
    fputs("usage: livemig-agent migrate --source URI --target URI [options]  (see migrate --help)\n"
          "       livemig-agent status [--status-addr HOST:PORT] [-o json]\n"
          "       livemig-agent cancel [--status-addr HOST:PORT]\n"
          "       livemig-agent --version\n",
          out);
}

static int cmd_migrate(int argc, char **argv)
{
    lm_job_t job;
    lm_error_t err;
    bool help = false, print = false;
    int code = LM_EXIT_USAGE;

    for (int i = 1; i < argc; i++)
        print |= strcmp(argv[i], "--print-config") == 0;
    if (!lm_job_from_args(&job, argc, argv, &help, &err)) {
        fprintf(stderr, "livemig-agent migrate: %s\n", err.message);
        goto out;
    }
    if (help) {
        lm_job_usage(stdout);
        code = LM_EXIT_OK;
        goto out;
    }
    if (!lm_job_finish(&job, &err)) {
        fprintf(stderr, "livemig-agent migrate: %s\n", err.message);
        goto out;
    }
    if (print) {
        lm_config_print(lm_job_schema, &job, stdout, false);
        code = LM_EXIT_OK;
        goto out;
    }
    if (!job.copy_only) {
        fprintf(stderr, "livemig-agent migrate: streaming the source's changes after the copy is "
                        "not built yet: "
                        "run with --copy-only for a staging copy\n");
        goto out;
    }
    lm_log_set_format(job.log_format == LM_JOB_LOG_JSON ? LM_LOG_JSON : LM_LOG_TEXT);
    lm_log_set_level((lm_log_level_t)job.log_level);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    code = lm_engine_run(&job, &stop_flag);
out:
    lm_job_cleanup(&job);
    return code;
}

static const char *status_addr_arg(int argc, char **argv, bool *json, lm_error_t *err)
{
    const char *addr =
        getenv("LIVEMIG_STATUS_ADDR") ? getenv("LIVEMIG_STATUS_ADDR") : DEFAULT_STATUS_ADDR;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--status-addr") == 0 && i + 1 < argc)
            addr = argv[++i];
        else if (strncmp(argv[i], "--status-addr=", 14) == 0)
            addr = argv[i] + 14;
        else if (json && strcmp(argv[i], "-o") == 0 && i + 1 < argc &&
                 strcmp(argv[i + 1], "json") == 0)
            *json = true, i++;
        else {
            lm_error_set(err, LM_ERR_INVALID, "unknown option '%s'", argv[i]);
            return NULL;
        }
    }
    return addr;
}

static bool call(const char *method, const char *addr, const char *path, lm_http_response_t *resp,
                 lm_error_t *err)
{
    char url[512];
    lm_http_opts_t o = {
        .connect_timeout_ms = 3000, .total_timeout_ms = 10000, .max_response_bytes = 16u << 20};
    snprintf(url, sizeof url, "http://%s%s", addr, path);
    if (!lm_http_global_init(err))
        return false;
    if (!lm_http_request(&o, method, url, NULL, method[0] == 'P' ? "" : NULL, 0, resp, err)) {
        lm_error_prefix(err, "no agent answered (is a migration running with --status-addr %s?)",
                        addr);
        return false;
    }
    if (resp->status / 100 != 2)
        return lm_error_set(err, LM_ERR_HTTP, "%s: HTTP %ld", url, resp->status);
    return true;
}

static void print_status(lm_json_val_t *v)
{
    const char *s;
    double elapsed = 0;
    lm_json_val_t *counters = NULL, *colls = NULL, *list = NULL;
    lm_error_t err;
    printf("job:       %s\n", lm_json_get_str(v, "jobId", true, 0, &s, &err) ? s : "?");
    printf("state:     %s\n", lm_json_get_str(v, "state", true, 0, &s, &err) ? s : "?");
    printf("phase:     %s\n", lm_json_get_str(v, "phase", true, 0, &s, &err) ? s : "?");
    lm_json_get_double(v, "elapsedSeconds", false, &elapsed, &err);
    printf("elapsed:   %.0f s\n", elapsed);
    if (lm_json_get_obj(v, "counters", false, &counters, &err) && counters) {
        int64_t d = 0, b = 0, dup = 0;
        lm_json_get_int(counters, "documentsCopied", false, 0, INT64_MAX, &d, &err);
        lm_json_get_int(counters, "bytesCopied", false, 0, INT64_MAX, &b, &err);
        lm_json_get_int(counters, "duplicateKeys", false, 0, INT64_MAX, &dup, &err);
        printf("copied:    %lld documents, %.1f MB (already on the target: %lld)\n", (long long)d,
               (double)b / 1e6, (long long)dup);
    }
    if (lm_json_get_arr(v, "collections", false, 0, &colls, &err) && colls && lm_json_len(colls)) {
        printf("\n%-44s %-9s %12s %12s %7s\n", "NAMESPACE", "STATE", "COPIED", "ESTIMATED",
               "RANGES");
        for (size_t i = 0; i < lm_json_len(colls); i++) {
            lm_json_val_t *c = lm_json_at(colls, i);
            const char *ns = "?", *state = "?";
            int64_t docs = 0, est = 0, rd = 0, rt = 0;
            lm_json_get_str(c, "ns", false, 0, &ns, &err);
            lm_json_get_str(c, "state", false, 0, &state, &err);
            lm_json_get_int(c, "documentsCopied", false, 0, INT64_MAX, &docs, &err);
            lm_json_get_int(c, "documentsEstimated", false, 0, INT64_MAX, &est, &err);
            lm_json_get_int(c, "rangesDone", false, 0, INT64_MAX, &rd, &err);
            lm_json_get_int(c, "rangesTotal", false, 0, INT64_MAX, &rt, &err);
            printf("%-44.44s %-9s %12lld %12lld %3lld/%-3lld\n", ns, state, (long long)docs,
                   (long long)est, (long long)rd, (long long)rt);
        }
    }
    const char *kinds[] = {"warnings", "errors"};
    for (int k = 0; k < 2; k++)
        if (lm_json_get_arr(v, kinds[k], false, 0, &list, &err) && list)
            for (size_t i = 0; i < lm_json_len(list); i++)
                if (lm_json_string(lm_json_at(list, i)))
                    printf("%s: %s\n", k ? "error" : "warning",
                           lm_json_string(lm_json_at(list, i)));
}

static int cmd_status(int argc, char **argv)
{
    lm_error_t err;
    lm_http_response_t resp;
    bool json = false;
    const char *addr = status_addr_arg(argc, argv, &json, &err);
    memset(&resp, 0, sizeof resp);
    if (!addr || !call("GET", addr, "/api/v1/status", &resp, &err)) {
        fprintf(stderr, "livemig-agent status: %s\n", err.message);
        lm_http_response_cleanup(&resp);
        return LM_EXIT_FAILED;
    }
    int code = LM_EXIT_OK;
    if (json) {
        printf("%s\n", resp.body ? resp.body : "");
    } else {
        lm_json_val_t *v =
            lm_json_parse(resp.body ? resp.body : "", resp.body_len, 16u << 20, 0, &err);
        if (v)
            print_status(v);
        else {
            fprintf(stderr, "livemig-agent status: the agent sent %s\n", err.message);
            code = LM_EXIT_FAILED;
        }
        lm_json_free(v);
    }
    lm_http_response_cleanup(&resp);
    return code;
}

static int cmd_cancel(int argc, char **argv)
{
    lm_error_t err;
    lm_http_response_t resp;
    const char *addr = status_addr_arg(argc, argv, NULL, &err);
    memset(&resp, 0, sizeof resp);
    bool ok = addr && call("POST", addr, "/api/v1/cancel", &resp, &err);
    if (ok)
        printf("cancel requested: the job checkpoints and stops\n");
    else
        fprintf(stderr, "livemig-agent cancel: %s\n", err.message);
    lm_http_response_cleanup(&resp);
    return ok ? LM_EXIT_OK : LM_EXIT_FAILED;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return LM_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("livemig-agent %s\n", LM_VERSION);
        return LM_EXIT_OK;
    }
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return LM_EXIT_OK;
    }
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    if (strcmp(cmd, "cancel") == 0)
        return cmd_cancel(argc - 1, argv + 1);
    fprintf(stderr, "livemig-agent: unknown command '%s'\n", cmd);
    usage(stderr);
    return LM_EXIT_USAGE;
}
