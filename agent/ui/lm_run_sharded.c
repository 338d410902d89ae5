/* lm_run_sharded: see lm_run_sharded.h.
 *
 * Threads: the caller's thread runs the coordinator; a progress thread logs one line per
 * shard every 5 s, reading the statuses through lm_status's rules only. */
#include "lm_run_sharded.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_cluster.h"
#include "lm_conn.h"
#include "lm_coord.h"
#include "lm_encode.h"
#include "lm_strbuf.h"
#include "lm_verify.h"
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

static void print_summary(lm_coord_t *c, lm_status_t *st, lm_engine_outcome_t out, bool copy_only)
{
    char took[32], line[600];
    lm_time_format_duration(lm_time_now_ms() - st->started_ms, took, sizeof took);
    lm_stream_status_t ss;
    lm_status_get_stream(st, &ss);
    size_t n = lm_coord_n_shards(c);
    pthread_mutex_lock(&st->mu);
    printf("\nlivemig sharded %s %s: job %s, %zu shards, %s\n", copy_only ? "copy" : "migration",
           lm_state_name(st->state), lm_coord_job_id(c)[0] ? lm_coord_job_id(c) : "-", n, took);
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
    if (out == LM_ENGINE_COMPLETE && !copy_only)
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

/* ---- verification, shard pair by shard pair ---- */

typedef struct {
    lm_status_t *st;           /* overall (may be NULL) */
    lm_verify_progress_t base; /* the pairs done before this one */
    const char *pair;
    int64_t last_log;
} vprogress_t;

/* Logs every 10 s; the overall section shows the pairs done plus this one's progress. */
static void on_verify_progress(void *ud, const lm_verify_progress_t *p)
{
    vprogress_t *v = ud;
    if (v->st) {
        lm_verify_progress_t all = v->base;
        all.namespaces_total += p->namespaces_total;
        all.namespaces_done += p->namespaces_done;
        all.documents_done += p->documents_done;
        all.documents_total = p->documents_total >= 0 ? all.documents_total + p->documents_total
                                                      : all.documents_total;
        all.eta_seconds = -1;
        lm_status_set_verify_progress(v->st, LM_VERIFY_RUNNING, &all, NULL);
    }
    int64_t now = lm_time_now_ms();
    if (now - v->last_log < 10000)
        return;
    v->last_log = now;
    lm_log_info(NULL, "verify shard %s: %lld/%lld namespaces, %lld/%lld documents compared",
                v->pair, (long long)p->namespaces_done, (long long)p->namespaces_total,
                (long long)p->documents_done, (long long)p->documents_total);
}

static mongoc_client_t *open_router(const lm_job_t *job, const lm_endpoint_t *ep, const char *side,
                                    lm_error_t *err)
{
    lm_conn_opts_t o = lm_conn_opts_for(job, ep, side, NULL, "livemig-verify");
    return lm_conn_client_new(&o, err);
}

/* Both clusters' descriptions through their routers, the same number of shards. */
static bool load_pairs(const lm_job_t *job, lm_cluster_t *scl, lm_cluster_t *dcl, lm_error_t *err)
{
    mongoc_client_t *s = open_router(job, &job->source, "source", err), *d = NULL;
    bool ok = s && (d = open_router(job, &job->target, "target", err));
    bool is_router = false;
    memset(scl, 0, sizeof *scl);
    memset(dcl, 0, sizeof *dcl);
    if (ok && !lm_cluster_is_router(d, &is_router, err))
        ok = (lm_error_prefix(err, "target"), false);
    else if (ok && !is_router)
        ok = lm_error_set(err, LM_ERR_INVALID,
                          "the source is a sharded cluster but the target is not a mongos: "
                          "verify compares shard i with shard i; give a mongos of the target");
    if (ok && !lm_cluster_load(s, scl, err))
        ok = (lm_error_prefix(err, "source"), false);
    if (ok && !lm_cluster_load(d, dcl, err))
        ok = (lm_error_prefix(err, "target"), false);
    if (ok && scl->n_shards != dcl->n_shards)
        ok = lm_error_set(err, LM_ERR_INVALID,
                          "the source has %zu shards and the target %zu: a sharded target is "
                          "verified shard i against shard i, which needs the same number",
                          scl->n_shards, dcl->n_shards);
    if (s)
        lm_conn_client_destroy(s);
    if (d)
        lm_conn_client_destroy(d);
    return ok;
}

/* Moves the namespaces of one pair's result into all, each named "SHARD:ns". */
static void gather(lm_verify_result_t *all, lm_verify_result_t *r, const char *shard)
{
    all->n_failed += r->n_failed;
    all->documents += r->documents;
    all->elapsed_ms += r->elapsed_ms;
    lm_verify_ns_t *items = realloc(all->items, (all->n + r->n + 1) * sizeof *items);
    if (!items)
        return; /* the counts above still say what failed */
    all->items = items;
    for (size_t k = 0; k < r->n; k++) {
        lm_verify_ns_t *to = &all->items[all->n++];
        *to = r->items[k];
        snprintf(to->ns, sizeof to->ns, "%s:%s", shard, r->items[k].ns);
    }
    r->n = 0; /* the items belong to all now */
}

int lm_run_sharded_verify(const lm_job_t *job, lm_status_t *st, lm_coord_t *coord,
                          const atomic_bool *stop, const char *state_dir, bool restart, bool json,
                          int fail_code, lm_verify_result_t *all, lm_error_t *why)
{
    lm_cluster_t scl, dcl;
    lm_error_t err;
    lm_strbuf_t out;
    size_t pairs_failed = 0, ns_total = 0, ns_failed = 0, n_pairs = 0;
    int64_t docs = 0;
    bool finished = true;
    vprogress_t vp = {.st = st, .last_log = lm_time_now_ms()};
    vp.base.eta_seconds = -1;
    lm_error_init(&err);
    lm_strbuf_init(&out, 64u << 20);
    if (st)
        lm_status_set_verify_progress(st, LM_VERIFY_RUNNING, NULL, NULL);
    if (!load_pairs(job, &scl, &dcl, &err)) {
        finished = false;
        goto done;
    }
    if (json)
        lm_strbuf_append(&out, "{\"shards\": [");
    for (size_t i = 0; i < scl.n_shards && finished; i++) {
        char su[1200], du[1200], pair[2 * LM_SHARD_NAME_MAX + 8];
        const char *sname = scl.shards[i].name, *dname = dcl.shards[i].name;
        /* an agent running part of the migration (--shards) verifies its own pairs */
        if (!lm_coord_shard_listed(&job->shards, sname))
            continue;
        snprintf(pair, sizeof pair, "%s -> %s", sname, dname);
        if (!lm_cluster_shard_uri(job->source.uri, scl.shards[i].host, su, sizeof su, &err) ||
            !lm_cluster_shard_uri(job->target.uri, dcl.shards[i].host, du, sizeof du, &err)) {
            lm_error_prefix(&err, "shard %s", pair);
            finished = false;
            break;
        }
        lm_job_t sj = *job;
        sj.source.uri = su;
        sj.target.uri = du;
        /* the coordinator's shard of this pair (it may run only some: found by name) */
        lm_status_t *sst = NULL;
        size_t n = coord ? lm_coord_n_shards(coord) : 0;
        for (size_t k = 0; k < n && !sst; k++)
            if (strcmp(lm_coord_shard_name(coord, k), sname) == 0)
                sst = lm_coord_shard_status(coord, k);
        vp.pair = pair;
        lm_verify_opts_t o = {.job = &sj,
                              .workers = (int)job->verify_workers,
                              .recheck_count = (int)job->verify_recheck,
                              .recheck_delay_ms = job->verify_recheck_delay_ms,
                              .max_ids = (int)job->verify_max_ids,
                              .stop = stop,
                              .status = sst,
                              .progress = on_verify_progress,
                              .progress_ud = &vp,
                              .state_dir = state_dir,
                              .restart = restart};
        lm_verify_result_t r;
        lm_log_info(NULL, "verify: shard %s", pair);
        bool ok = lm_verify_run(&o, &r, &err);
        lm_wipe(su, sizeof su);
        lm_wipe(du, sizeof du);
        if (json) {
            lm_strbuf_appendf(&out, "%s{\"source\": \"%s\", \"target\": \"%s\", \"result\": ",
                              n_pairs ? ", " : "", sname, dname);
            lm_verify_render_json(&r, &out);
            lm_strbuf_append(&out, "}");
        } else {
            lm_strbuf_appendf(&out, "\nshard %s:\n", pair);
            lm_verify_render_table(&r, r.n > 50, &out);
        }
        n_pairs++;
        ns_total += r.n;
        ns_failed += r.n_failed;
        docs += r.documents;
        vp.base.namespaces_total += (int64_t)r.n;
        vp.base.namespaces_done += (int64_t)r.n;
        vp.base.documents_done += r.documents;
        vp.base.documents_total += r.documents;
        if (r.n_failed)
            pairs_failed++;
        for (size_t k = 0; k < r.n; k++) {
            if (r.items[k].pass)
                continue;
            char line[1024];
            snprintf(line, sizeof line, "shard %s: %s: %s%s%s", pair, r.items[k].ns,
                     r.items[k].reasons.n ? r.items[k].reasons.items[0] : "differs",
                     r.items[k].n_ids ? ", first _id " : "",
                     r.items[k].n_ids ? r.items[k].ids[0].id_json : "");
            if (st)
                lm_status_verify_add_difference(st, line);
            lm_log_error(NULL, "verification: %s", line);
        }
        if (!ok) {
            lm_error_prefix(&err, "shard %s", pair);
            finished = false;
        }
        if (all)
            gather(all, &r, sname);
        lm_verify_result_cleanup(&r);
    }
    if (json)
        lm_strbuf_append(&out, "]");
done:
    if (json) {
        if (!out.len)
            lm_strbuf_append(&out, "{\"shards\": []");
        lm_strbuf_appendf(&out,
                          ", \"shardPairs\": %zu, \"shardPairsFailed\": %zu, \"passed\": %s}\n",
                          n_pairs, pairs_failed, finished && !ns_failed ? "true" : "false");
    }
    bool print = !all;
    if (print)
        printf("%s", lm_strbuf_str(&out));
    int code = LM_EXIT_OK;
    if (why && finished)
        lm_error_init(why);
    else if (why)
        *why = err;
    if (!finished) {
        code = fail_code;
        if (!json && print)
            printf("VERIFICATION DID NOT FINISH: %s\n", err.message);
        if (print)
            fprintf(stderr, "livemig-agent: verification did not finish: %s\n", err.message);
        if (st)
            lm_status_set_verify_progress(st, LM_VERIFY_ERROR, &vp.base, err.message);
    } else if (ns_failed) {
        code = fail_code;
        if (!json && print)
            printf("VERIFICATION FAILED: %zu of %zu shard pairs differ (%zu of %zu namespaces; "
                   "listed above under their shard). Verify only read: it changed no data.\n",
                   pairs_failed, n_pairs, ns_failed, ns_total);
        lm_log_error(NULL, "verification FAILED: %zu of %zu shard pairs differ", pairs_failed,
                     n_pairs);
        if (st)
            lm_status_set_verify_progress(st, LM_VERIFY_FAILED, &vp.base, NULL);
    } else {
        if (!json && print)
            printf("verification passed on every shard pair (%zu): %zu namespaces, %lld "
                   "documents, 0 differences\n",
                   n_pairs, ns_total, (long long)docs);
        lm_log_info(NULL,
                    "verification passed on every shard pair (%zu): %zu namespaces, %lld "
                    "documents, 0 differences",
                    n_pairs, ns_total, (long long)docs);
        if (st)
            lm_status_set_verify_progress(st, LM_VERIFY_PASSED, &vp.base, NULL);
    }
    fflush(stdout);
    lm_cluster_cleanup(&scl);
    lm_cluster_cleanup(&dcl);
    lm_strbuf_cleanup(&out);
    return code;
}

int lm_run_sharded(const lm_job_t *job, lm_status_t *st, const atomic_bool *stop, bool restartable,
                   void (*after)(void *ud), void *ud)
{
    lm_log_info(NULL, "the source is a sharded cluster (its router says isdbgrid): migrating "
                      "shard to shard");
    lm_coord_opts_t o = {.job = job,
                         .status = st,
                         .stop = stop,
                         .restartable = restartable,
                         .shards = &job->shards,
                         .role = job->sharded_role,
                         .lead_wait_ms = job->lead_wait_ms,
                         .await_shards = job->await_shards};
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
    print_summary(c, st, out, job->copy_only);
    int code = lm_engine_exit_code(out);
    /* the status API stays up while it runs: its "verification" section shows it. A copy-only
     * job is not verified, as on a replica set (lm_run.c): nothing was cut over */
    bool verify = out == LM_ENGINE_COMPLETE && !job->copy_only && !(stop && atomic_load(stop));
    if (verify && after) {
        after(ud); /* a daemon's job: it verifies and reports to its control plane */
    } else if (verify && job->verify) {
        lm_log_info(NULL, "cutover complete: verifying every target shard against its source "
                          "shard (it only reads; --no-verify skips this)");
        printf("\nlivemig verification of the target, shard pair by shard pair:\n");
        code = lm_run_sharded_verify(job, st, c, stop, NULL, false, false, LM_EXIT_VERIFY_FAILED,
                                     NULL, NULL);
        if (code != LM_EXIT_OK)
            printf("  the migration itself is COMPLETE (cut over), but do not point the "
                   "application at the target before you know why; run `livemig-agent verify` "
                   "with the two routers to check again\n");
    }
    lm_coord_destroy(c);
    return code;
}
