/* lm_run_sharded: see lm_run_sharded.h.
 *
 * Threads: the caller's thread runs the coordinator; a progress thread logs one line per
 * shard every 5 s, reading the statuses through lm_status's rules only. */
#include "lm_run_sharded.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "lm_coord.h"
#include "lm_engine.h"
#include "lm_log.h"
#include "lm_time.h"

typedef struct {
    lm_coord_t *coord;
    lm_status_t *st;
    atomic_bool stop;
} progress_t;

static void shard_line(lm_status_t *s, const char *name, const char *target, char *buf,
                       size_t bufsz)
{
    lm_stream_status_t ss;
    int64_t est_docs = 0, est_bytes = 0;
    lm_status_get_stream(s, &ss);
    pthread_mutex_lock(&s->mu);
    bool known = lm_status_totals(s, &est_docs, &est_bytes) && s->n_colls > 0;
    lm_phase_t phase = s->phase;
    pthread_mutex_unlock(&s->mu);
    long long docs = atomic_load(&s->docs), bytes = atomic_load(&s->bytes);
    char lag[48] = "-";
    if (ss.active)
        snprintf(lag, sizeof lag, "%.1f s%s", ss.lag_seconds,
                 ss.ready_for_cutover ? " (ready)" : "");
    if (known && phase <= LM_PHASE_COPYING)
        snprintf(buf, bufsz, "shard %s -> %s: %s %.1f%% %lld/%lld docs, %.1f MB, lag %s", name,
                 target, lm_phase_name(phase),
                 est_bytes > 0 ? 100.0 * (double)bytes / (double)est_bytes : 100.0, docs,
                 (long long)est_docs, (double)bytes / 1e6, lag);
    else
        snprintf(buf, bufsz, "shard %s -> %s: %s %lld docs, %.1f MB, lag %s", name, target,
                 lm_phase_name(phase), docs, (double)bytes / 1e6, lag);
}

static void *progress_main(void *arg)
{
    progress_t *p = arg;
    while (lm_time_sleep_ms(5000, &p->stop)) {
        char line[600];
        size_t n = lm_coord_n_shards(p->coord);
        if (!n)
            continue;
        lm_stream_status_t ss;
        lm_status_get_stream(p->st, &ss);
        for (size_t i = 0; i < n; i++) {
            shard_line(lm_coord_shard_status(p->coord, i), lm_coord_shard_name(p->coord, i),
                       lm_coord_target_shard_name(p->coord, i), line, sizeof line);
            lm_log_info("progress=1", "%s", line);
        }
        if (ss.active)
            lm_log_info("progress=1", "overall: lag %.1f s (worst shard), readyForCutover %s",
                        ss.lag_seconds, ss.ready_for_cutover ? "true" : "false");
    }
    return NULL;
}

static void print_summary(lm_coord_t *c, lm_status_t *st, lm_engine_outcome_t out)
{
    char took[32], line[600];
    lm_time_format_duration(lm_time_now_ms() - st->started_ms, took, sizeof took);
    lm_stream_status_t ss;
    lm_status_get_stream(st, &ss);
    size_t n = lm_coord_n_shards(c);
    pthread_mutex_lock(&st->mu);
    printf("\nlivemig sharded migration %s: job %s, %zu shards, %s\n", lm_state_name(st->state),
           lm_coord_job_id(c)[0] ? lm_coord_job_id(c) : "-", n, took);
    pthread_mutex_unlock(&st->mu);
    if (out == LM_ENGINE_ALREADY_COMPLETE)
        printf("  this migration was already complete; use a new --state-dir to copy again\n");
    for (size_t i = 0; i < n; i++) {
        lm_status_t *s = lm_coord_shard_status(c, i);
        lm_stream_status_t sh;
        shard_line(s, lm_coord_shard_name(c, i), lm_coord_target_shard_name(c, i), line,
                   sizeof line);
        lm_status_get_stream(s, &sh);
        pthread_mutex_lock(&s->mu);
        printf("  %s, state %s", line, lm_state_name(s->state));
        if (sh.final_t)
            printf(", cut over at Timestamp(%u, %u)", sh.final_t, sh.final_i);
        printf("\n");
        for (size_t k = 0; k < s->warnings.n; k++)
            printf("    warning: %s\n", s->warnings.items[k]);
        for (size_t k = 0; k < s->errors.n; k++)
            printf("    error: %s\n", s->errors.items[k]);
        pthread_mutex_unlock(&s->mu);
    }
    printf("  documents copied: %lld (%.1f MB); changes applied: %lld\n",
           (long long)atomic_load(&st->docs), (double)atomic_load(&st->bytes) / 1e6,
           (long long)atomic_load(&st->ops_applied));
    if (out == LM_ENGINE_COMPLETE)
        printf("  cutover complete on every shard: writes that reach the source after each "
               "shard's position above are NOT applied\n");
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->warnings.n; i++)
        printf("  warning: %s\n", st->warnings.items[i]);
    for (size_t i = 0; i < st->errors.n; i++)
        printf("  error: %s\n", st->errors.items[i]);
    pthread_mutex_unlock(&st->mu);
    if (lm_coord_balancer_restart_refused(c))
        printf("  WARNING: a balancer could not be started again: start it by hand "
               "(sh.startBalancer() through a mongos of that cluster)\n");
    if (out == LM_ENGINE_STOPPED)
        printf("  stopped by a signal: the balancers stay stopped; run the same command again "
               "to resume\n");
    fflush(stdout);
}

int lm_run_sharded(const lm_job_t *job, lm_status_t *st, const atomic_bool *stop)
{
    lm_log_info(NULL, "the source is a sharded cluster (its router says isdbgrid): migrating "
                      "shard to shard");
    /* with a status API, a failed shard can be restarted alone (restart-shard) */
    lm_coord_opts_t o = {
        .job = job, .status = st, .stop = stop, .restartable = strcmp(job->status_addr, "0") != 0};
    lm_coord_t *c = lm_coord_new(&o);
    if (!c) {
        fprintf(stderr, "livemig-agent: out of memory\n");
        return LM_EXIT_FAILED;
    }
    progress_t p = {.coord = c, .st = st};
    pthread_t th;
    bool started = pthread_create(&th, NULL, progress_main, &p) == 0;
    lm_engine_outcome_t out = lm_coord_run(c);
    if (started) {
        atomic_store(&p.stop, true);
        pthread_join(th, NULL);
    }
    print_summary(c, st, out);
    lm_coord_destroy(c);
    return lm_engine_exit_code(out);
}
