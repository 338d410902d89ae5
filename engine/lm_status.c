/* lm_status: see lm_status.h. */
#include "lm_status.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_json.h"
#include "lm_log.h"
#include "lm_time.h"

static const char *const state_names[] = {"RUNNING", "COMPLETE", "FAILED", "CANCELLED", "STOPPED"};
static const char *const coll_state_names[] = {"pending", "copying", "copied", "indexed", "failed"};

const char *lm_state_name(lm_state_t s)
{
    return state_names[s];
}

const char *lm_coll_state_name(lm_coll_state_t s)
{
    return coll_state_names[s];
}

void lm_status_init(lm_status_t *st, const char *job_id)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_init(&st->mu, NULL);
    snprintf(st->job_id, sizeof st->job_id, "%s", job_id);
    st->started_ms = lm_time_now_ms();
}

void lm_status_cleanup(lm_status_t *st)
{
    free(st->colls);
    lm_strlist_cleanup(&st->warnings);
    lm_strlist_cleanup(&st->errors);
    lm_strlist_cleanup(&st->verify.differences);
    pthread_mutex_destroy(&st->mu);
}

int lm_status_set_assignment(lm_status_t *st, const char *list, char *msg, size_t msgsz)
{
    int code;
    pthread_mutex_lock(&st->mu);
    if (!st->assign_check) {
        snprintf(msg, msgsz,
                 "this job is not waiting for an assignment of shards (it is not a lead started "
                 "with --await-shards, or it has its shards already)");
        code = 409;
    } else if (strlen(list) >= sizeof st->assignment) {
        snprintf(msg, msgsz, "the list of shards is longer than %zu bytes",
                 sizeof st->assignment - 1);
        code = 400;
    } else if ((code = st->assign_check(st->hook_ud, list, msg, msgsz)) == 202) {
        snprintf(st->assignment, sizeof st->assignment, "%s", list);
        st->has_assignment = true;
    }
    pthread_mutex_unlock(&st->mu);
    return code;
}

bool lm_status_take_assignment(lm_status_t *st, char *out, size_t outsz)
{
    pthread_mutex_lock(&st->mu);
    bool have = st->has_assignment;
    if (have)
        snprintf(out, outsz, "%s", st->assignment);
    st->has_assignment = false;
    st->assignment[0] = '\0';
    pthread_mutex_unlock(&st->mu);
    return have;
}

void lm_status_set_job_id(lm_status_t *st, const char *job_id)
{
    pthread_mutex_lock(&st->mu);
    snprintf(st->job_id, sizeof st->job_id, "%s", job_id);
    pthread_mutex_unlock(&st->mu);
}

void lm_status_set_start(lm_status_t *st, uint32_t t, uint32_t i)
{
    pthread_mutex_lock(&st->mu);
    st->start_ts = t;
    st->start_inc = i;
    pthread_mutex_unlock(&st->mu);
}

void lm_status_get_start(lm_status_t *st, uint32_t *t, uint32_t *i)
{
    pthread_mutex_lock(&st->mu);
    *t = st->start_ts;
    *i = st->start_inc;
    pthread_mutex_unlock(&st->mu);
}

lm_phase_t lm_status_get_phase(lm_status_t *st)
{
    pthread_mutex_lock(&st->mu);
    lm_phase_t p = st->phase;
    pthread_mutex_unlock(&st->mu);
    return p;
}

void lm_status_set_stream(lm_status_t *st, const lm_stream_status_t *s)
{
    pthread_mutex_lock(&st->mu);
    st->stream = *s;
    pthread_mutex_unlock(&st->mu);
}

void lm_status_get_stream(lm_status_t *st, lm_stream_status_t *s)
{
    pthread_mutex_lock(&st->mu);
    *s = st->stream;
    pthread_mutex_unlock(&st->mu);
}

static void json_optime(lm_json_writer_t *w, const char *key, uint32_t t, uint32_t i)
{
    lm_json_w_key(w, key);
    lm_json_w_map_open(w);
    lm_json_w_key(w, "t");
    lm_json_w_int(w, t);
    lm_json_w_key(w, "i");
    lm_json_w_int(w, i);
    lm_json_w_map_close(w);
}

/* The Atlas-shaped fields (lagTimeSeconds, readyForCutover) and the stream's details. */
static void json_stream(lm_status_t *st, lm_json_writer_t *w)
{
    const lm_stream_status_t *s = &st->stream;
    char ts[LM_TIME_ISO8601_LEN];
    lm_json_w_key(w, "lagTimeSeconds");
    if (s->active)
        lm_json_w_double(w, s->lag_seconds);
    else
        lm_json_w_null(w);
    lm_json_w_key(w, "estimatedCutoverSeconds");
    if (s->active)
        lm_json_w_double(w, s->estimated_cutover_seconds);
    else
        lm_json_w_null(w);
    lm_json_w_key(w, "readyForCutover");
    lm_json_w_bool(w, s->active && s->ready_for_cutover);
    if (!s->active)
        return;
    lm_json_w_key(w, "stream");
    lm_json_w_map_open(w);
    lm_json_w_kv_str(w, "capture", s->capture);
    json_optime(w, "appliedOptime", s->applied_t, s->applied_i);
    json_optime(w, "sourceOptime", s->source_t, s->source_i);
    lm_json_w_key(w, "optimeGapSeconds");
    lm_json_w_double(w, s->optime_gap_seconds);
    lm_json_w_key(w, "opsApplied");
    lm_json_w_int(w, atomic_load(&st->ops_applied));
    lm_json_w_key(w, "opsRefetched");
    lm_json_w_int(w, atomic_load(&st->ops_refetched));
    lm_json_w_key(w, "ddlApplied");
    lm_json_w_int(w, atomic_load(&st->ddl_applied));
    lm_json_w_key(w, "oplogRereads");
    lm_json_w_int(w, atomic_load(&st->oplog_rereads));
    lm_json_w_key(w, "opsPerSecond");
    lm_json_w_double(w, s->ops_per_second);
    lm_json_w_key(w, "applyLatencyMs");
    lm_json_w_double(w, s->apply_latency_ms);
    /* the apply's batching, chosen against the lag target (lm_batch.h) */
    lm_json_w_key(w, "applyWorkers");
    lm_json_w_map_open(w);
    lm_json_w_key(w, "active");
    lm_json_w_int(w, atomic_load(&st->apply_workers_active));
    lm_json_w_key(w, "max");
    lm_json_w_int(w, atomic_load(&st->apply_workers_max));
    lm_json_w_map_close(w);
    lm_json_w_key(w, "applyLingerMs");
    lm_json_w_int(w, atomic_load(&st->apply_linger_ms));
    lm_json_w_key(w, "applyWrites");
    lm_json_w_int(w, atomic_load(&st->apply_batches));
    lm_json_w_key(w, "cutoverRequestedAt");
    if (s->cutover_requested_ms) {
        lm_time_format_iso8601(s->cutover_requested_ms, ts, sizeof ts);
        lm_json_w_str(w, ts);
    } else {
        lm_json_w_null(w);
    }
    if (s->final_t)
        json_optime(w, "finalOptime", s->final_t, s->final_i);
    lm_json_w_map_close(w);
}

void lm_status_set_phase(lm_status_t *st, lm_phase_t phase)
{
    pthread_mutex_lock(&st->mu);
    st->phase = phase;
    pthread_mutex_unlock(&st->mu);
    char fields[64];
    snprintf(fields, sizeof fields, "job=%s phase=%s", st->job_id, lm_phase_name(phase));
    lm_log_info(fields, "entering phase %s", lm_phase_name(phase));
}

void lm_status_set_state(lm_status_t *st, lm_state_t state)
{
    pthread_mutex_lock(&st->mu);
    st->state = state;
    if (state != LM_STATE_RUNNING)
        st->finished_ms = lm_time_now_ms();
    pthread_mutex_unlock(&st->mu);
}

void lm_status_set_collections(lm_status_t *st, lm_coll_status_t *colls, size_t n)
{
    pthread_mutex_lock(&st->mu);
    free(st->colls);
    st->colls = colls;
    st->n_colls = n;
    pthread_mutex_unlock(&st->mu);
}

lm_coll_status_t *lm_status_find(lm_status_t *st, const char *ns)
{
    for (size_t i = 0; i < st->n_colls; i++)
        if (strcmp(st->colls[i].ns, ns) == 0)
            return &st->colls[i];
    return NULL;
}

int64_t lm_coll_est_bytes(lm_status_t *st, lm_coll_status_t *c)
{
    long long est = atomic_load(&c->est_docs), docs = atomic_load(&c->docs),
              bytes = atomic_load(&c->bytes);
    if (est < 0)
        return -1;
    if (est == 0 || c->is_view)
        return 0;
    if (docs <= 0) { /* not started: the average of everything copied so far */
        docs = atomic_load(&st->docs);
        bytes = atomic_load(&st->bytes);
    }
    if (docs <= 0)
        return -1;
    return (int64_t)((double)est * ((double)bytes / (double)docs));
}

static void add_message(lm_status_t *st, lm_strlist_t *l, const char *msg)
{
    pthread_mutex_lock(&st->mu);
    if (l->n < LM_STATUS_MAX_MESSAGES) {
        char **items = realloc(l->items, (l->n + 1) * sizeof *items);
        if (items) {
            l->items = items;
            if ((l->items[l->n] = strdup(msg)))
                l->n++;
        }
    }
    pthread_mutex_unlock(&st->mu);
}

/* Logs a message at `level` and keeps it in list (warnings or errors). */
static void record(lm_status_t *st, lm_log_level_t level, lm_strlist_t *list, const char *fmt,
                   va_list ap) __attribute__((format(printf, 4, 0)));
static void record(lm_status_t *st, lm_log_level_t level, lm_strlist_t *list, const char *fmt,
                   va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    lm_log_write(level, NULL, "%s", msg);
    add_message(st, list, msg);
}

void lm_status_warn(lm_status_t *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(st, LM_LOG_WARN, &st->warnings, fmt, ap);
    va_end(ap);
}

void lm_status_error(lm_status_t *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(st, LM_LOG_ERROR, &st->errors, fmt, ap);
    va_end(ap);
}

static void add_event(lm_status_t *st, lm_log_level_t level, const char *kind, const char *fmt,
                      va_list ap) __attribute__((format(printf, 4, 0)));
static void add_event(lm_status_t *st, lm_log_level_t level, const char *kind, const char *fmt,
                      va_list ap)
{
    char msg[LM_STATUS_EVENT_MSG_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    lm_log_write(level, NULL, "%s", msg);
    lm_status_record_event(st, kind, msg);
}

void lm_status_record_event(lm_status_t *st, const char *kind, const char *msg)
{
    pthread_mutex_lock(&st->mu);
    lm_status_event_t *e = &st->events[st->events_total % LM_STATUS_MAX_EVENTS];
    e->at_ms = lm_time_now_ms();
    snprintf(e->kind, sizeof e->kind, "%s", kind);
    snprintf(e->message, sizeof e->message, "%s", msg);
    st->events_total++;
    pthread_mutex_unlock(&st->mu);
}

void lm_status_event(lm_status_t *st, const char *kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_event(st, LM_LOG_WARN, kind, fmt, ap);
    va_end(ap);
}

void lm_status_event_info(lm_status_t *st, const char *kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_event(st, LM_LOG_INFO, kind, fmt, ap);
    va_end(ap);
}

/* The last n (<= max) events, oldest first; under mu. */
static size_t events_locked(const lm_status_t *st, lm_status_event_t *out, size_t max)
{
    uint64_t total = st->events_total;
    size_t n = total < LM_STATUS_MAX_EVENTS ? (size_t)total : LM_STATUS_MAX_EVENTS;
    if (n > max)
        n = max;
    for (size_t k = 0; k < n; k++)
        out[k] = st->events[(total - n + k) % LM_STATUS_MAX_EVENTS];
    return n;
}

size_t lm_status_get_events(lm_status_t *st, lm_status_event_t *out, size_t max)
{
    pthread_mutex_lock(&st->mu);
    size_t n = events_locked(st, out, max);
    pthread_mutex_unlock(&st->mu);
    return n;
}

const char *lm_verify_state_name(lm_verify_state_t s)
{
    static const char *const names[] = {"none", "running", "passed", "failed", "error"};
    return names[s];
}

void lm_status_set_verify_progress(lm_status_t *st, lm_verify_state_t state,
                                   const lm_verify_progress_t *p, const char *error)
{
    pthread_mutex_lock(&st->mu);
    if (state == LM_VERIFY_RUNNING && st->verify.state != LM_VERIFY_RUNNING) {
        lm_strlist_cleanup(&st->verify.differences);
        memset(&st->verify, 0, sizeof st->verify);
        st->verify.progress.documents_total = -1;
        st->verify.progress.eta_seconds = -1;
    }
    st->verify.state = state;
    if (p)
        st->verify.progress = *p;
    snprintf(st->verify.error, sizeof st->verify.error, "%s", error ? error : "");
    pthread_mutex_unlock(&st->mu);
}

void lm_status_verify_add_difference(lm_status_t *st, const char *line)
{
    pthread_mutex_lock(&st->mu);
    lm_strlist_t *l = &st->verify.differences;
    if (l->n < LM_STATUS_MAX_DIFFERENCES) {
        char **items = realloc(l->items, (l->n + 1) * sizeof *items);
        if (items) {
            l->items = items;
            if ((l->items[l->n] = strdup(line)))
                l->n++;
        }
    }
    pthread_mutex_unlock(&st->mu);
}

void lm_status_get_verify(lm_status_t *st, lm_verify_state_t *state, lm_verify_progress_t *p)
{
    pthread_mutex_lock(&st->mu);
    *state = st->verify.state;
    if (p)
        *p = st->verify.progress;
    pthread_mutex_unlock(&st->mu);
}

static void json_strlist(lm_json_writer_t *w, const char *key, const lm_strlist_t *l);

/* "verification": null before any, else its state, progress and differences. */
static void json_verify(lm_status_t *st, lm_json_writer_t *w)
{
    const lm_verify_status_t *v = &st->verify;
    lm_json_w_key(w, "verification");
    if (v->state == LM_VERIFY_NONE) {
        lm_json_w_null(w);
        return;
    }
    lm_json_w_map_open(w);
    lm_json_w_kv_str(w, "state", lm_verify_state_name(v->state));
    lm_json_w_key(w, "namespacesTotal");
    lm_json_w_int(w, v->progress.namespaces_total);
    lm_json_w_key(w, "namespacesChecked");
    lm_json_w_int(w, v->progress.namespaces_done);
    lm_json_w_key(w, "documentsChecked");
    lm_json_w_int(w, v->progress.documents_done);
    lm_json_w_key(w, "documentsEstimated");
    if (v->progress.documents_total >= 0)
        lm_json_w_int(w, v->progress.documents_total);
    else
        lm_json_w_null(w);
    lm_json_w_key(w, "etaSeconds");
    if (v->state == LM_VERIFY_RUNNING && v->progress.eta_seconds >= 0)
        lm_json_w_double(w, v->progress.eta_seconds);
    else
        lm_json_w_null(w);
    lm_json_w_key(w, "error");
    if (v->error[0])
        lm_json_w_str(w, v->error);
    else
        lm_json_w_null(w);
    json_strlist(w, "differences", &v->differences);
    lm_json_w_map_close(w);
}

static void json_strlist(lm_json_writer_t *w, const char *key, const lm_strlist_t *l)
{
    lm_json_w_key(w, key);
    lm_json_w_array_open(w);
    for (size_t i = 0; i < l->n; i++)
        lm_json_w_str(w, l->items[i]);
    lm_json_w_array_close(w);
}

/* "events": [{"time", "kind", "message"}], oldest first; under mu. */
static void json_events(const lm_status_t *st, lm_json_writer_t *w)
{
    char ts[LM_TIME_ISO8601_LEN];
    uint64_t total = st->events_total;
    size_t n = total < LM_STATUS_MAX_EVENTS ? (size_t)total : LM_STATUS_MAX_EVENTS;
    lm_json_w_key(w, "events");
    lm_json_w_array_open(w);
    for (size_t k = 0; k < n; k++) {
        const lm_status_event_t *ev = &st->events[(total - n + k) % LM_STATUS_MAX_EVENTS];
        lm_json_w_map_open(w);
        lm_time_format_iso8601(ev->at_ms, ts, sizeof ts);
        lm_json_w_kv_str(w, "time", ts);
        lm_json_w_kv_str(w, "kind", ev->kind);
        lm_json_w_kv_str(w, "message", ev->message);
        lm_json_w_map_close(w);
    }
    lm_json_w_array_close(w);
}

void lm_status_json(lm_status_t *st, lm_strbuf_t *out)
{
    char ts[LM_TIME_ISO8601_LEN];
    lm_json_writer_t *w = lm_json_writer_new(false);
    int64_t now = lm_time_now_ms();

    pthread_mutex_lock(&st->mu);
    lm_json_w_map_open(w);
    lm_json_w_kv_str(w, "jobId", st->job_id);
    lm_json_w_kv_str(w, "state", state_names[st->state]);
    lm_json_w_kv_str(w, "phase", lm_phase_name(st->phase));
    lm_time_format_iso8601(st->started_ms, ts, sizeof ts);
    lm_json_w_kv_str(w, "startedAt", ts);
    lm_json_w_key(w, "elapsedSeconds");
    lm_json_w_double(w,
                     (double)((st->finished_ms ? st->finished_ms : now) - st->started_ms) / 1000.0);
    lm_json_w_key(w, "startOptime");
    lm_json_w_map_open(w);
    lm_json_w_key(w, "t");
    lm_json_w_int(w, st->start_ts);
    lm_json_w_key(w, "i");
    lm_json_w_int(w, st->start_inc);
    lm_json_w_map_close(w);
    lm_json_w_key(w, "counters");
    lm_json_w_map_open(w);
    lm_json_w_key(w, "documentsCopied");
    lm_json_w_int(w, atomic_load(&st->docs));
    lm_json_w_key(w, "bytesCopied");
    lm_json_w_int(w, atomic_load(&st->bytes));
    lm_json_w_key(w, "duplicateKeys");
    lm_json_w_int(w, atomic_load(&st->dup_keys));
    lm_json_w_map_close(w);
    /* the copy's writers: active now (0 outside the copy) and at most; auto when the copy
     * chooses the number itself */
    lm_json_w_key(w, "copyWriters");
    lm_json_w_map_open(w);
    lm_json_w_key(w, "active");
    lm_json_w_int(w, atomic_load(&st->copy_writers_active));
    lm_json_w_key(w, "max");
    lm_json_w_int(w, atomic_load(&st->copy_writers_max));
    lm_json_w_key(w, "auto");
    lm_json_w_bool(w, atomic_load(&st->copy_writers_auto));
    lm_json_w_map_close(w);
    lm_json_w_key(w, "collections");
    lm_json_w_array_open(w);
    for (size_t i = 0; i < st->n_colls; i++) {
        lm_coll_status_t *c = &st->colls[i];
        lm_json_w_map_open(w);
        lm_json_w_kv_str(w, "ns", c->ns);
        lm_json_w_kv_str(w, "type", c->is_view ? "view" : "collection");
        lm_json_w_kv_str(w, "state", coll_state_names[atomic_load(&c->state)]);
        lm_json_w_key(w, "documentsCopied");
        lm_json_w_int(w, atomic_load(&c->docs));
        lm_json_w_key(w, "documentsEstimated");
        if (atomic_load(&c->est_docs) >= 0)
            lm_json_w_int(w, atomic_load(&c->est_docs));
        else
            lm_json_w_null(w);
        lm_json_w_key(w, "bytesCopied");
        lm_json_w_int(w, atomic_load(&c->bytes));
        lm_json_w_key(w, "bytesEstimated");
        if (lm_coll_est_bytes(st, c) >= 0)
            lm_json_w_int(w, lm_coll_est_bytes(st, c));
        else
            lm_json_w_null(w);
        lm_json_w_key(w, "duplicateKeys");
        lm_json_w_int(w, atomic_load(&c->dup_keys));
        lm_json_w_key(w, "rangesDone");
        lm_json_w_int(w, atomic_load(&c->ranges_done));
        lm_json_w_key(w, "rangesTotal");
        lm_json_w_int(w, c->ranges_total);
        lm_json_w_key(w, "resumed");
        lm_json_w_bool(w, c->resumed);
        lm_json_w_map_close(w);
    }
    lm_json_w_array_close(w);
    json_stream(st, w);
    json_verify(st, w);
    json_strlist(w, "warnings", &st->warnings);
    json_strlist(w, "errors", &st->errors);
    json_events(st, w);
    if (st->json_extra)
        st->json_extra(st->hook_ud, w);
    lm_json_w_map_close(w);
    pthread_mutex_unlock(&st->mu);

    size_t len;
    const char *doc = lm_json_writer_result(w, &len, NULL);
    if (doc)
        lm_strbuf_append_n(out, doc, len);
    lm_json_writer_destroy(w);
}

/* Prometheus label values escape backslash, quote and newline. */
void lm_status_metrics_label(lm_strbuf_t *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            lm_strbuf_append_n(out, "\\", 1);
        if (*v == '\n')
            lm_strbuf_append(out, "\\n");
        else
            lm_strbuf_append_n(out, v, 1);
    }
}

void lm_status_metrics(lm_status_t *st, lm_strbuf_t *out)
{
    pthread_mutex_lock(&st->mu);
    lm_strbuf_append(
        out, "# HELP livemig_phase 1 for the phase the job is in.\n# TYPE livemig_phase gauge\n");
    for (int p = 0; p <= LM_PHASE_COMPLETE; p++)
        lm_strbuf_appendf(out, "livemig_phase{phase=\"%s\"} %d\n", lm_phase_name((lm_phase_t)p),
                          st->phase == (lm_phase_t)p);
    lm_strbuf_append(
        out, "# HELP livemig_state 1 for the state the job is in.\n# TYPE livemig_state gauge\n");
    for (int s = 0; s <= LM_STATE_STOPPED; s++)
        lm_strbuf_appendf(out, "livemig_state{state=\"%s\"} %d\n", state_names[s],
                          st->state == (lm_state_t)s);
    lm_strbuf_appendf(
        out,
        "# HELP livemig_copy_documents_total Documents written to the target by the copy.\n"
        "# TYPE livemig_copy_documents_total counter\nlivemig_copy_documents_total %lld\n"
        "# HELP livemig_copy_bytes_total BSON bytes written to the target by the copy.\n"
        "# TYPE livemig_copy_bytes_total counter\nlivemig_copy_bytes_total %lld\n"
        "# HELP livemig_copy_duplicate_keys_total Documents already on the target.\n"
        "# TYPE livemig_copy_duplicate_keys_total counter\nlivemig_copy_duplicate_keys_total "
        "%lld\n",
        (long long)atomic_load(&st->docs), (long long)atomic_load(&st->bytes),
        (long long)atomic_load(&st->dup_keys));
    lm_strbuf_appendf(out,
                      "# HELP livemig_copy_writers Copy writers active now (0 outside the copy).\n"
                      "# TYPE livemig_copy_writers gauge\nlivemig_copy_writers %d\n"
                      "# HELP livemig_copy_writers_max The most copy writers the copy may run.\n"
                      "# TYPE livemig_copy_writers_max gauge\nlivemig_copy_writers_max %d\n",
                      atomic_load(&st->copy_writers_active), atomic_load(&st->copy_writers_max));
    lm_strbuf_append(out,
                     "# HELP livemig_collection_documents_copied Documents copied per collection.\n"
                     "# TYPE livemig_collection_documents_copied gauge\n");
    for (size_t i = 0; i < st->n_colls; i++) {
        lm_strbuf_append(out, "livemig_collection_documents_copied{ns=\"");
        lm_status_metrics_label(out, st->colls[i].ns);
        lm_strbuf_appendf(out, "\"} %lld\n", (long long)atomic_load(&st->colls[i].docs));
    }
    lm_strbuf_append(
        out, "# HELP livemig_collection_documents_estimated Source documents per collection.\n"
             "# TYPE livemig_collection_documents_estimated gauge\n");
    for (size_t i = 0; i < st->n_colls; i++) {
        long long est = atomic_load(&st->colls[i].est_docs);
        if (est < 0)
            continue; /* not estimated yet */
        lm_strbuf_append(out, "livemig_collection_documents_estimated{ns=\"");
        lm_status_metrics_label(out, st->colls[i].ns);
        lm_strbuf_appendf(out, "\"} %lld\n", est);
    }
    if (st->stream.active) {
        const lm_stream_status_t *s = &st->stream;
        lm_strbuf_appendf(
            out,
            "# HELP livemig_lag_seconds Latest source write minus last applied write.\n"
            "# TYPE livemig_lag_seconds gauge\nlivemig_lag_seconds %.3f\n"
            "# HELP livemig_estimated_cutover_seconds How long a cutover requested now would "
            "take.\n"
            "# TYPE livemig_estimated_cutover_seconds gauge\n"
            "livemig_estimated_cutover_seconds %.3f\n"
            "# HELP livemig_ready_for_cutover 1 when the lag and the estimated cutover are "
            "within --cutover-lag.\n"
            "# TYPE livemig_ready_for_cutover gauge\nlivemig_ready_for_cutover %d\n"
            "# HELP livemig_optime_gap_seconds Source latest optime minus applied optime.\n"
            "# TYPE livemig_optime_gap_seconds gauge\nlivemig_optime_gap_seconds %.3f\n"
            "# HELP livemig_apply_ops_total Changes applied to the target.\n"
            "# TYPE livemig_apply_ops_total counter\nlivemig_apply_ops_total %lld\n"
            "# HELP livemig_apply_refetched_total Changes applied by copying the document.\n"
            "# TYPE livemig_apply_refetched_total counter\nlivemig_apply_refetched_total %lld\n"
            "# HELP livemig_apply_ddl_total DDL operations replayed.\n"
            "# TYPE livemig_apply_ddl_total counter\nlivemig_apply_ddl_total %lld\n"
            "# HELP livemig_oplog_rereads_total Oplog ranges read again after the source's "
            "cursor skipped entries.\n"
            "# TYPE livemig_oplog_rereads_total counter\nlivemig_oplog_rereads_total %lld\n"
            "# HELP livemig_apply_ops_per_second Changes applied per second (last second).\n"
            "# TYPE livemig_apply_ops_per_second gauge\nlivemig_apply_ops_per_second %.1f\n"
            "# HELP livemig_apply_latency_ms Queue-to-write latency of applied changes.\n"
            "# TYPE livemig_apply_latency_ms gauge\nlivemig_apply_latency_ms %.1f\n",
            s->lag_seconds, s->estimated_cutover_seconds, s->ready_for_cutover,
            s->optime_gap_seconds, (long long)atomic_load(&st->ops_applied),
            (long long)atomic_load(&st->ops_refetched), (long long)atomic_load(&st->ddl_applied),
            (long long)atomic_load(&st->oplog_rereads), s->ops_per_second, s->apply_latency_ms);
        lm_strbuf_appendf(
            out,
            "# HELP livemig_apply_workers Apply workers taking changes now.\n"
            "# TYPE livemig_apply_workers gauge\nlivemig_apply_workers %d\n"
            "# HELP livemig_apply_workers_max The most apply workers the apply may run.\n"
            "# TYPE livemig_apply_workers_max gauge\nlivemig_apply_workers_max %d\n"
            "# HELP livemig_apply_linger_ms How long changes gather before a write.\n"
            "# TYPE livemig_apply_linger_ms gauge\nlivemig_apply_linger_ms %lld\n"
            "# HELP livemig_apply_writes_total Bulk writes the apply sent.\n"
            "# TYPE livemig_apply_writes_total counter\nlivemig_apply_writes_total %lld\n",
            atomic_load(&st->apply_workers_active), atomic_load(&st->apply_workers_max),
            (long long)atomic_load(&st->apply_linger_ms),
            (long long)atomic_load(&st->apply_batches));
    }
    lm_strbuf_appendf(
        out,
        "# HELP livemig_errors Errors recorded.\n# TYPE livemig_errors gauge\nlivemig_errors %zu\n"
        "# HELP livemig_warnings Warnings recorded.\n# TYPE livemig_warnings gauge\n"
        "livemig_warnings %zu\n",
        st->errors.n, st->warnings.n);
    if (st->metrics_extra)
        st->metrics_extra(st->hook_ud, out);
    pthread_mutex_unlock(&st->mu);
}

bool lm_status_totals(lm_status_t *st, int64_t *est_docs, int64_t *est_bytes)
{
    bool known = true;
    *est_docs = *est_bytes = 0;
    for (size_t i = 0; i < st->n_colls; i++) {
        long long d = atomic_load(&st->colls[i].est_docs), b = lm_coll_est_bytes(st, &st->colls[i]);
        if (d < 0 || b < 0) {
            known = false;
            continue;
        }
        *est_docs += d;
        *est_bytes += b;
    }
    return known;
}
