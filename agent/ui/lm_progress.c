/* lm_progress: see lm_progress.h. */
#include "lm_progress.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lm_log.h"
#include "lm_time.h"

#define LIVE_ROWS 6
#define STREAM_LOG_MS 30000 /* without a terminal: one stream line in the log this often */

struct lm_progress {
    lm_status_t *st;
    pthread_t thread;
    atomic_bool stop;
    bool tty;
    int drawn; /* lines of the live display on screen */
};

/* ", writers 2/8 auto": the copy's active writers, at most, and whether it chooses them */
static void writers_text(lm_status_t *st, char *buf, size_t bufsz)
{
    snprintf(buf, bufsz, ", writers %d/%d%s", atomic_load(&st->copy_writers_active),
             atomic_load(&st->copy_writers_max),
             atomic_load(&st->copy_writers_auto) ? " auto" : "");
}

/* "12.3% 1.2M/10M docs, 45.6 MB/s, ETA 1m20s, writers 2/8 auto" */
static void summary_line(lm_status_t *st, double rate_bytes, char *buf, size_t bufsz)
{
    int64_t est_docs, est_bytes, docs = atomic_load(&st->docs), bytes = atomic_load(&st->bytes);
    char eta[32] = "?", writers[48];
    writers_text(st, writers, sizeof writers);
    if (!lm_status_totals(st, &est_docs, &est_bytes)) {
        snprintf(buf, bufsz, "%s: %lld docs, %.1f MB copied, %.1f MB/s%s (estimating the total)",
                 lm_phase_name(lm_status_get_phase(st)), (long long)docs, (double)bytes / 1e6,
                 rate_bytes / 1e6, writers);
        return;
    }
    if (rate_bytes > 0 && est_bytes > bytes)
        lm_time_format_duration((int64_t)((double)(est_bytes - bytes) / rate_bytes * 1000.0), eta,
                                sizeof eta);
    else if (est_bytes <= bytes)
        snprintf(eta, sizeof eta, "-");
    double pct = est_bytes > 0 ? 100.0 * (double)bytes / (double)est_bytes : 0;
    snprintf(buf, bufsz, "%s: %.1f%% %lld/%lld docs, %.1f/%.1f MB, %.1f MB/s, ETA %s%s",
             lm_phase_name(lm_status_get_phase(st)), pct > 100 ? 100.0 : pct, (long long)docs,
             (long long)est_docs, (double)bytes / 1e6, (double)est_bytes / 1e6, rate_bytes / 1e6,
             eta, writers);
}

/* "STREAMING: lag 0.4 s, cutover est. 12.0 s, NOT ready, 850 changes/s" */
static void stream_line(lm_status_t *st, char *buf, size_t bufsz)
{
    lm_stream_status_t ss;
    lm_status_get_stream(st, &ss);
    snprintf(buf, bufsz, "%s: lag %.1f s, cutover est. %.1f s, %s, %.0f changes/s",
             lm_phase_name(lm_status_get_phase(st)), ss.lag_seconds, ss.estimated_cutover_seconds,
             ss.ready_for_cutover ? "ready for cutover" : "NOT ready for cutover",
             ss.ops_per_second);
}

static void draw_stream(struct lm_progress *p)
{
    char line[256];
    if (p->drawn)
        fprintf(stderr, "\033[%dA", p->drawn);
    stream_line(p->st, line, sizeof line);
    fprintf(stderr, "\033[2K%s\n", line);
    for (int r = 1; r < p->drawn; r++)
        fprintf(stderr, "\033[2K\n");
    if (!p->drawn)
        p->drawn = 1;
    fflush(stderr);
}

static void draw(struct lm_progress *p, double rate)
{
    char line[512];
    lm_status_t *st = p->st;
    if (p->drawn)
        fprintf(stderr, "\033[%dA", p->drawn);
    summary_line(st, rate, line, sizeof line);
    fprintf(stderr, "\033[2K%s\n", line);
    int rows = 1;
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->n_colls && rows < LIVE_ROWS; i++) {
        lm_coll_status_t *c = &st->colls[i];
        if (atomic_load(&c->state) != LM_COLL_COPYING)
            continue;
        fprintf(stderr, "\033[2K  %-40.40s %10lld/%-10lld docs  ranges %d/%d\n", c->ns,
                (long long)atomic_load(&c->docs), (long long)atomic_load(&c->est_docs),
                atomic_load(&c->ranges_done), c->ranges_total);
        rows++;
    }
    pthread_mutex_unlock(&st->mu);
    for (int r = rows; r < p->drawn; r++)
        fprintf(stderr, "\033[2K\n");
    if (rows < p->drawn)
        rows = p->drawn;
    p->drawn = rows;
    fflush(stderr);
}

static void *progress_main(void *arg)
{
    struct lm_progress *p = arg;
    int64_t last_t = lm_time_mono_ms(), last_log = last_t;
    int64_t last_bytes = 0;
    double rate = 0;
    while (!p->stop) {
        lm_time_sleep_ms(1000, &p->stop);
        int64_t now = lm_time_mono_ms(), bytes = atomic_load(&p->st->bytes);
        double inst =
            now > last_t ? (double)(bytes - last_bytes) * 1000.0 / (double)(now - last_t) : 0;
        rate = rate == 0 ? inst : 0.7 * rate + 0.3 * inst; /* smoothed, for a steadier ETA */
        last_t = now;
        last_bytes = bytes;
        lm_phase_t phase = lm_status_get_phase(p->st);
        if (phase == LM_PHASE_STREAMING || phase == LM_PHASE_CUTTING_OVER) {
            if (p->tty) {
                draw_stream(p);
            } else if (now - last_log >= STREAM_LOG_MS) {
                char line[256];
                stream_line(p->st, line, sizeof line);
                lm_log_info("progress=1", "%s", line);
                last_log = now;
            }
            continue;
        }
        if (phase != LM_PHASE_COPYING)
            continue;
        if (p->tty) {
            draw(p, rate);
        } else if (now - last_log >= 5000) {
            char line[512];
            summary_line(p->st, rate, line, sizeof line);
            lm_log_info("progress=1", "%s", line);
            last_log = now;
        }
    }
    return NULL;
}

lm_progress_t *lm_progress_start(lm_status_t *st)
{
    struct lm_progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->st = st;
    p->tty = isatty(STDERR_FILENO) && getenv("TERM") && getenv("LIVEMIG_NO_LIVE_PROGRESS") == NULL;
    if (pthread_create(&p->thread, NULL, progress_main, p) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

void lm_progress_stop(lm_progress_t *p)
{
    if (!p)
        return;
    p->stop = 1;
    pthread_join(p->thread, NULL);
    free(p);
}
