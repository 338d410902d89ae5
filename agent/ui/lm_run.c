/* lm_run: see lm_run.h.
 *
 * Threads: the caller's thread runs the engine; lm_status_http serves the status from its
 * own threads and lm_progress draws from its own, both reading the status sink only
 * through lm_status's rules (lm_status.h). Both are stopped before the summary prints. */
#include "lm_run.h"

#include <stdio.h>
#include <string.h>

#include "lm_encode.h"
#include "lm_engine.h"
#include "lm_log.h"
#include "lm_redact.h"
#include "lm_progress.h"
#include "lm_coord.h"
#include "lm_run_sharded.h"
#include "lm_status_http.h"
#include "lm_time.h"

/* The end state is the one lm_engine_run recorded in the status. */
static void print_summary(const lm_engine_summary_t *sum, lm_status_t *st, bool already)
{
    char took[32];
    lm_time_format_duration(lm_time_now_ms() - st->started_ms, took, sizeof took);
    pthread_mutex_lock(&st->mu); /* state, warnings, errors and collections */
    lm_state_t state = st->state;
    if (!sum->job_id[0]) { /* it never got as far as a job */
        printf("\nlivemig copy %s before it started\n", lm_state_name(state));
        for (size_t i = 0; i < st->errors.n; i++)
            printf("  error: %s\n", st->errors.items[i]);
        goto out;
    }
    printf("\nlivemig %s %s: job %s, %s -> %s\n", sum->streamed ? "migration" : "copy",
           lm_state_name(state), sum->job_id, sum->source, sum->target);
    if (already) {
        printf("  this job was already complete; use a new --state-dir to copy again\n");
        goto out;
    }
    size_t colls = 0, views = 0, resumed = 0;
    for (size_t i = 0; i < st->n_colls; i++) {
        st->colls[i].is_view ? views++ : colls++;
        resumed += st->colls[i].resumed;
    }
    printf("  collections: %zu, views: %zu (finished by an earlier run: %zu)\n", colls, views,
           resumed);
    printf("  documents copied: %lld (%.1f MB) in %s; already on the target: %lld\n",
           (long long)atomic_load(&st->docs), (double)atomic_load(&st->bytes) / 1e6, took,
           (long long)atomic_load(&st->dup_keys));
    if (sum->streamed) {
        lm_stream_status_t ss = st->stream;
        printf("  changes applied: %lld (documents copied again from the source: %lld, DDL: "
               "%lld), capture: %s\n",
               (long long)atomic_load(&st->ops_applied), (long long)atomic_load(&st->ops_refetched),
               (long long)atomic_load(&st->ddl_applied), ss.capture[0] ? ss.capture : "-");
        if (state == LM_STATE_COMPLETE && ss.final_t)
            printf("  cutover complete: the target holds every change up to Timestamp(%u, %u); "
                   "writes that reach the source after it are NOT applied\n",
                   ss.final_t, ss.final_i);
        else if (ss.active)
            printf("  applied through Timestamp(%u, %u) (checkpointed on the target; run the "
                   "same command again to resume)\n",
                   ss.applied_t, ss.applied_i);
    }
    if (sum->indexes_refused)
        printf("  indexes the target refused: %d (see the warnings)\n", sum->indexes_refused);
    if (sum->options_missing)
        printf("  collection options the target did not keep: %d (see the warnings)\n",
               sum->options_missing);
    for (size_t i = 0; i < st->warnings.n; i++)
        printf("  warning: %s\n", st->warnings.items[i]);
    for (size_t i = 0; i < st->errors.n; i++)
        printf("  error: %s\n", st->errors.items[i]);
    if (state == LM_STATE_STOPPED)
        printf("  stopped by a signal: run the same command again to resume\n");
out:
    pthread_mutex_unlock(&st->mu);
    fflush(stdout);
}

/* Starts the status API with a fresh random token and writes the token file the CLI's
 * cancel and cutover read (lm_status_http.h). NULL with err set when it cannot. */
static lm_status_http_t *start_api(const lm_job_t *job, lm_status_t *st, lm_error_t *err)
{
    char token[LM_STATUS_TOKEN_LEN + 1], host[128], listen[200];
    int port;
    lm_status_http_t *http = NULL;
    if (!lm_random_hex(token, LM_STATUS_TOKEN_LEN / 2)) {
        lm_error_set(err, LM_ERR_INTERNAL, "status API: no random bytes for its token");
        return NULL;
    }
    lm_redact_register(token); /* never in a log line, whatever prints it */
    if (!(http = lm_status_http_start(job->status_addr, st, token, err)))
        goto out;
    lm_status_addr_parse(job->status_addr, host, sizeof host, &port, NULL);
    snprintf(listen, sizeof listen, "%s%s%s:%d", strchr(host, ':') ? "[" : "", host,
             strchr(host, ':') ? "]" : "", lm_status_http_port(http));
    if (!lm_status_token_write(job->state_dir, listen, token, err)) {
        lm_status_http_stop(http);
        http = NULL;
        goto out;
    }
    lm_log_info(NULL,
                "status API on http://%s/api/v1/status (cancel and cutover need the token in "
                "%s/" LM_STATUS_TOKEN_FILE ")",
                listen, job->state_dir);
out:
    lm_wipe(token, sizeof token);
    return http;
}

/* Logs verification progress every 10 s (the callback comes about once a second). */
static void log_verify_progress(void *ud, const lm_verify_progress_t *p)
{
    int64_t *last = ud, now = lm_time_now_ms();
    if (now - *last < 10000)
        return;
    *last = now;
    char eta[32] = "-";
    if (p->eta_seconds >= 0)
        lm_time_format_duration((int64_t)(p->eta_seconds * 1000), eta, sizeof eta);
    lm_log_info(NULL, "verify: %lld/%lld namespaces, %lld/%lld documents compared, ETA %s",
                (long long)p->namespaces_done, (long long)p->namespaces_total,
                (long long)p->documents_done, (long long)p->documents_total, eta);
}

bool lm_run_verify(const lm_job_t *job, lm_status_t *st, const atomic_bool *stop,
                   lm_verify_result_t *result, lm_error_t *err)
{
    if (lm_coord_source_is_sharded(job)) { /* routers: shard i against shard i */
        memset(result, 0, sizeof *result);
        lm_run_sharded_verify(job, st, NULL, stop, NULL, false, false, LM_EXIT_FAILED, result, err);
        return err->code == LM_ERR_NONE;
    }
    return lm_run_verify_resumable(job, st, stop, NULL, false, result, err);
}

bool lm_run_verify_resumable(const lm_job_t *job, lm_status_t *st, const atomic_bool *stop,
                             const char *state_dir, bool restart, lm_verify_result_t *result,
                             lm_error_t *err)
{
    int64_t last = lm_time_now_ms();
    lm_verify_opts_t o = {.job = job,
                          .workers = (int)job->verify_workers,
                          .recheck_count = (int)job->verify_recheck,
                          .recheck_delay_ms = job->verify_recheck_delay_ms,
                          .max_ids = (int)job->verify_max_ids,
                          .stop = stop,
                          .status = st,
                          .progress = log_verify_progress,
                          .progress_ud = &last,
                          .state_dir = state_dir,
                          .restart = restart};
    return lm_verify_run(&o, result, err);
}

/* After a COMPLETE migration: verifies, prints the outcome, and returns the exit code
 * (LM_EXIT_OK, or LM_EXIT_VERIFY_FAILED when something differs or it could not finish). */
static int verify_after_cutover(const lm_job_t *job, lm_status_t *st, const atomic_bool *stop)
{
    lm_verify_result_t r;
    lm_error_t err;
    lm_strbuf_t table;
    lm_error_init(&err);
    lm_log_info(NULL, "cutover complete: verifying the target against the source (it only reads; "
                      "--no-verify skips this)");
    bool ok = lm_run_verify(job, st, stop, &r, &err);
    int code = LM_EXIT_OK;
    lm_strbuf_init(&table, 1u << 20);
    lm_verify_render_table(&r, r.n > 50, &table);
    printf("\nlivemig verification of the target:\n%s", lm_strbuf_str(&table));
    if (!ok) {
        code = LM_EXIT_VERIFY_FAILED;
        printf("VERIFICATION DID NOT FINISH: %s\n  the migration itself is COMPLETE (cut over); "
               "verify changed no data: run `livemig-agent verify` with the same --source, "
               "--target and filters to check the target\n",
               err.message);
        lm_log_error(NULL, "verification did not finish after the cutover: %s", err.message);
    } else if (r.n_failed) {
        code = LM_EXIT_VERIFY_FAILED;
        printf("VERIFICATION FAILED: %zu of %zu namespaces differ between the source and the "
               "target (listed above).\n  The migration is COMPLETE (cut over), but do not point "
               "the application at the target before you know why. Verify only read: it changed "
               "no data on either side.\n",
               r.n_failed, r.n);
        for (size_t i = 0; i < r.n; i++)
            if (!r.items[i].pass)
                lm_log_error(NULL, "verification: %s differs: %s", r.items[i].ns,
                             r.items[i].reasons.n ? r.items[i].reasons.items[0] : "?");
        lm_log_error(NULL,
                     "verification FAILED after a COMPLETE migration: %zu of %zu namespaces "
                     "differ; verify changed no data",
                     r.n_failed, r.n);
    } else {
        lm_log_info(NULL, "verification passed: %zu namespaces, %lld documents, 0 differences", r.n,
                    (long long)r.documents);
    }
    fflush(stdout);
    lm_strbuf_cleanup(&table);
    lm_verify_result_cleanup(&r);
    return code;
}

/* The cutover's last timing line (lm_stream logs the steps before): COMPLETE, this long
 * after the stream saw the request. */
static void log_cutover_time(lm_status_t *st)
{
    lm_stream_status_t ss;
    lm_status_get_stream(st, &ss);
    pthread_mutex_lock(&st->mu);
    lm_state_t state = st->state;
    pthread_mutex_unlock(&st->mu);
    if (state == LM_STATE_COMPLETE && ss.cutover_requested_ms)
        lm_log_info(NULL, "cutover step: COMPLETE (+%lld ms)",
                    (long long)(lm_time_now_ms() - ss.cutover_requested_ms));
}

int lm_run_job(const lm_job_t *job, lm_status_t *st, const atomic_bool *stop)
{
    return lm_run_job_then(job, st, stop, NULL, NULL);
}

int lm_run_job_then(const lm_job_t *job, lm_status_t *st, const atomic_bool *stop,
                    void (*after)(void *ud), void *ud)
{
    lm_error_t err;
    lm_status_http_t *http = NULL;
    lm_error_init(&err);
    if (strcmp(job->status_addr, "0") != 0) {
        http = start_api(job, st, &err);
        if (!http) {
            fprintf(stderr, "livemig-agent: %s\n", err.message);
            lm_status_error(st, "%s", err.message);
            lm_status_set_state(st, LM_STATE_FAILED);
            return LM_EXIT_USAGE;
        }
    }
    if (lm_coord_source_is_sharded(job)) { /* a mongos: one engine per shard */
        /* a failed shard can be restarted alone through the status API, or through the
         * control plane that drives a daemon's job (after: the daemon's hook) */
        int code = lm_run_sharded(job, st, stop, http != NULL || after != NULL, after, ud);
        lm_status_http_stop(http);
        if (http)
            lm_status_token_remove(job->state_dir);
        return code;
    }
    lm_engine_opts_t o = {.job = job, .status = st, .stop = stop};
    lm_engine_t *e = lm_engine_new(&o);
    if (!e) {
        lm_status_http_stop(http);
        lm_status_token_remove(job->state_dir);
        fprintf(stderr, "livemig-agent: out of memory\n");
        return LM_EXIT_FAILED;
    }
    lm_progress_t *progress = lm_progress_start(st);
    lm_engine_outcome_t outcome = lm_engine_run(e);
    lm_progress_stop(progress);
    log_cutover_time(st);
    lm_engine_summary_t sum;
    lm_engine_summary(e, &sum);
    print_summary(&sum, st, outcome == LM_ENGINE_ALREADY_COMPLETE);
    int code = lm_engine_exit_code(outcome);
    /* the status API stays up while it runs: its "verification" section shows it */
    if (outcome == LM_ENGINE_COMPLETE && sum.streamed && !atomic_load(stop)) {
        if (after)
            after(ud);
        else if (job->verify)
            code = verify_after_cutover(job, st, stop);
    }
    lm_status_http_stop(http);
    if (http) /* the API is gone: nothing may use its token any more */
        lm_status_token_remove(job->state_dir);
    lm_engine_destroy(e);
    return code;
}
