/* lm_status: the status JSON (parsed back), the Prometheus text (checked line by line),
 * the estimated bytes and totals. */
#include <criterion/criterion.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_json.h"
#include "lm_log.h"
#include "lm_status.h"

#define T0 INT64_C(1717200000000) /* 2024-06-01T00:00:00Z */

static void quiet(void)
{
    lm_log_set_level(LM_LOG_OFF); /* set_phase and warn log; not wanted in test output */
}

TestSuite(status, .init = quiet);
TestSuite(metrics, .init = quiet);
TestSuite(estimates, .init = quiet);

/* ---- fixtures ---- */

static void coll(lm_coll_status_t *c, const char *ns, long long est, long long docs,
                 long long bytes, lm_coll_state_t state)
{
    snprintf(c->ns, sizeof c->ns, "%s", ns);
    atomic_store(&c->est_docs, est);
    atomic_store(&c->docs, docs);
    atomic_store(&c->bytes, bytes);
    atomic_store(&c->state, (int)state);
}

/* A job copying four namespaces: one half done, one not started (estimated from the
 * average of everything copied), a view, one not estimated yet. */
static void fill(lm_status_t *st)
{
    lm_coll_status_t *cs = calloc(4, sizeof *cs);
    cr_assert(cs);
    coll(&cs[0], "shop.orders", 1000, 400, 40000, LM_COLL_COPYING); /* 100 bytes each */
    cs[0].ranges_total = 4;
    atomic_store(&cs[0].ranges_done, 2);
    atomic_store(&cs[0].dup_keys, 3);
    coll(&cs[1], "shop.users", 50, 0, 0, LM_COLL_PENDING);
    coll(&cs[2], "shop.active_users", 0, 0, 0, LM_COLL_COPIED);
    cs[2].is_view = true;
    coll(&cs[3], "blog.posts", -1, 10, 900, LM_COLL_INDEXED);
    cs[3].resumed = true;
    cs[3].ranges_total = 1;
    atomic_store(&cs[3].ranges_done, 1);
    lm_status_set_collections(st, cs, 4);
    /* everything copied: 500 documents, 60000 bytes (120 bytes each) */
    atomic_store(&st->docs, 500);
    atomic_store(&st->bytes, 60000);
    atomic_store(&st->dup_keys, 3);
    /* the copy chose 3 of at most 8 writers */
    atomic_store(&st->copy_writers_active, 3);
    atomic_store(&st->copy_writers_max, 8);
    atomic_store(&st->copy_writers_auto, true);
}

static void stream_active(lm_status_t *st, bool ready)
{
    lm_stream_status_t s = {0};
    s.active = true;
    snprintf(s.capture, sizeof s.capture, "oplog");
    s.applied_t = 1717200000, s.applied_i = 2;
    s.source_t = 1717200005, s.source_i = 7;
    s.lag_seconds = 2.5;
    s.estimated_cutover_seconds = 7.25;
    s.ready_for_cutover = ready;
    s.optime_gap_seconds = 5;
    s.ops_per_second = 12.5;
    s.apply_latency_ms = 3.3;
    lm_status_set_stream(st, &s);
    atomic_store(&st->ops_applied, 77);
    atomic_store(&st->ops_refetched, 5);
    atomic_store(&st->ddl_applied, 2);
    atomic_store(&st->oplog_rereads, 1);
    atomic_store(&st->apply_workers_active, 2);
    atomic_store(&st->apply_workers_max, 8);
    atomic_store(&st->apply_linger_ms, 500);
    atomic_store(&st->apply_batches, 11);
}

/* ---- JSON helpers ---- */

static lm_json_val_t *render_json(lm_status_t *st)
{
    lm_strbuf_t sb;
    lm_error_t err;
    lm_strbuf_init(&sb, 1 << 20);
    lm_status_json(st, &sb);
    cr_assert(sb.len > 0, "no JSON written");
    lm_error_init(&err);
    lm_json_val_t *v = lm_json_parse(sb.data, sb.len, 0, 0, &err);
    cr_assert(v, "%s: %s", err.message, lm_strbuf_str(&sb));
    cr_assert_eq(lm_json_type(v), LM_JSON_OBJECT);
    lm_strbuf_cleanup(&sb);
    return v;
}

static const char *jstr(const lm_json_val_t *o, const char *key)
{
    const char *s = NULL;
    lm_error_t err;
    cr_assert(lm_json_get_str(o, key, true, 0, &s, &err), "%s", err.message);
    return s;
}

static int64_t jint(const lm_json_val_t *o, const char *key)
{
    int64_t v = 0;
    lm_error_t err;
    cr_assert(lm_json_get_int(o, key, true, INT64_MIN, INT64_MAX, &v, &err), "%s", err.message);
    return v;
}

static double jdouble(const lm_json_val_t *o, const char *key)
{
    double v = 0;
    lm_error_t err;
    cr_assert(lm_json_get_double(o, key, true, &v, &err), "%s", err.message);
    return v;
}

static bool jbool(const lm_json_val_t *o, const char *key)
{
    bool v = false;
    lm_error_t err;
    cr_assert(lm_json_get_bool(o, key, true, &v, &err), "%s", err.message);
    return v;
}

static lm_json_val_t *jget(const lm_json_val_t *o, const char *key, lm_json_type_t type)
{
    lm_json_val_t *v = lm_json_get(o, key);
    cr_assert(v, "no '%s'", key);
    cr_assert_eq(lm_json_type(v), type, "'%s' is a %s", key, lm_json_type_name(lm_json_type(v)));
    return v;
}

/* ---- JSON ---- */

Test(status, new_job)
{
    lm_status_t st;
    lm_status_init(&st, "job-42");
    st.started_ms = T0;
    st.finished_ms = T0 + 12345;
    st.start_ts = 1717199999, st.start_inc = 9;
    lm_json_val_t *v = render_json(&st);

    cr_assert_str_eq(jstr(v, "jobId"), "job-42");
    cr_assert_str_eq(jstr(v, "state"), "RUNNING");
    cr_assert_str_eq(jstr(v, "phase"), "NEW");
    cr_assert_str_eq(jstr(v, "startedAt"), "2024-06-01T00:00:00.000Z");
    cr_assert_float_eq(jdouble(v, "elapsedSeconds"), 12.345, 1e-9);
    lm_json_val_t *so = jget(v, "startOptime", LM_JSON_OBJECT);
    cr_assert_eq(jint(so, "t"), 1717199999);
    cr_assert_eq(jint(so, "i"), 9);
    lm_json_val_t *cnt = jget(v, "counters", LM_JSON_OBJECT);
    cr_assert_eq(jint(cnt, "documentsCopied"), 0);
    cr_assert_eq(jint(cnt, "bytesCopied"), 0);
    cr_assert_eq(jint(cnt, "duplicateKeys"), 0);
    /* no copy running: no writers */
    lm_json_val_t *cw = jget(v, "copyWriters", LM_JSON_OBJECT);
    cr_assert_eq(jint(cw, "active"), 0);
    cr_assert_eq(jint(cw, "max"), 0);
    cr_assert_not(jbool(cw, "auto"));
    cr_assert_eq(lm_json_len(jget(v, "collections", LM_JSON_ARRAY)), 0);
    /* no stream yet: the lag is unknown, not 0, and the job is not ready */
    jget(v, "lagTimeSeconds", LM_JSON_NULL);
    jget(v, "estimatedCutoverSeconds", LM_JSON_NULL);
    cr_assert_not(jbool(v, "readyForCutover"));
    cr_assert_null(lm_json_get(v, "stream"));
    cr_assert_eq(lm_json_len(jget(v, "warnings", LM_JSON_ARRAY)), 0);
    cr_assert_eq(lm_json_len(jget(v, "errors", LM_JSON_ARRAY)), 0);
    lm_json_free(v);
    lm_status_cleanup(&st);
}

Test(status, elapsed_runs_until_the_job_ends)
{
    lm_status_t st;
    lm_status_init(&st, "j");
    st.started_ms -= 5000; /* started 5 s ago, still running */
    lm_json_val_t *v = render_json(&st);
    double running = jdouble(v, "elapsedSeconds");
    cr_assert(running >= 5.0 && running < 65.0, "%f", running);
    lm_json_free(v);

    lm_status_set_state(&st, LM_STATE_COMPLETE);
    cr_assert_geq(st.finished_ms, st.started_ms + 5000);
    st.finished_ms = st.started_ms + 7500;
    v = render_json(&st);
    cr_assert_str_eq(jstr(v, "state"), "COMPLETE");
    cr_assert_float_eq(jdouble(v, "elapsedSeconds"), 7.5, 1e-9);
    lm_json_free(v);
    lm_status_cleanup(&st);
}

Test(status, phase_and_state)
{
    lm_status_t st;
    lm_status_init(&st, "j");
    lm_status_set_phase(&st, LM_PHASE_BUILDING_INDEXES);
    lm_status_set_state(&st, LM_STATE_STOPPED);
    lm_json_val_t *v = render_json(&st);
    cr_assert_str_eq(jstr(v, "phase"), "BUILDING_INDEXES");
    cr_assert_str_eq(jstr(v, "state"), "STOPPED");
    lm_json_free(v);
    lm_status_cleanup(&st);
}

Test(status, collections_and_counters)
{
    lm_status_t st;
    lm_status_init(&st, "j");
    fill(&st);
    lm_status_set_phase(&st, LM_PHASE_COPYING);
    lm_json_val_t *v = render_json(&st);
    cr_assert_str_eq(jstr(v, "phase"), "COPYING");
    lm_json_val_t *cnt = jget(v, "counters", LM_JSON_OBJECT);
    cr_assert_eq(jint(cnt, "documentsCopied"), 500);
    cr_assert_eq(jint(cnt, "bytesCopied"), 60000);
    cr_assert_eq(jint(cnt, "duplicateKeys"), 3);
    lm_json_val_t *cw = jget(v, "copyWriters", LM_JSON_OBJECT);
    cr_assert_eq(jint(cw, "active"), 3);
    cr_assert_eq(jint(cw, "max"), 8);
    cr_assert(jbool(cw, "auto"));

    lm_json_val_t *cs = jget(v, "collections", LM_JSON_ARRAY);
    cr_assert_eq(lm_json_len(cs), 4);
    lm_json_val_t *c = lm_json_at(cs, 0);
    cr_assert_str_eq(jstr(c, "ns"), "shop.orders");
    cr_assert_str_eq(jstr(c, "type"), "collection");
    cr_assert_str_eq(jstr(c, "state"), "copying");
    cr_assert_eq(jint(c, "documentsCopied"), 400);
    cr_assert_eq(jint(c, "documentsEstimated"), 1000);
    cr_assert_eq(jint(c, "bytesCopied"), 40000);
    cr_assert_eq(jint(c, "bytesEstimated"), 100000); /* 1000 x its own 100 bytes */
    cr_assert_eq(jint(c, "duplicateKeys"), 3);
    cr_assert_eq(jint(c, "rangesDone"), 2);
    cr_assert_eq(jint(c, "rangesTotal"), 4);
    cr_assert_not(jbool(c, "resumed"));

    c = lm_json_at(cs, 1);
    cr_assert_str_eq(jstr(c, "ns"), "shop.users");
    cr_assert_str_eq(jstr(c, "state"), "pending");
    cr_assert_eq(jint(c, "bytesEstimated"), 6000); /* 50 x the job's 120 bytes */

    c = lm_json_at(cs, 2);
    cr_assert_str_eq(jstr(c, "type"), "view");
    cr_assert_str_eq(jstr(c, "state"), "copied");
    cr_assert_eq(jint(c, "documentsEstimated"), 0);
    cr_assert_eq(jint(c, "bytesEstimated"), 0);

    c = lm_json_at(cs, 3);
    cr_assert_str_eq(jstr(c, "ns"), "blog.posts");
    cr_assert_str_eq(jstr(c, "state"), "indexed");
    jget(c, "documentsEstimated", LM_JSON_NULL);
    jget(c, "bytesEstimated", LM_JSON_NULL);
    cr_assert(jbool(c, "resumed"));
    cr_assert_eq(jint(c, "rangesDone"), 1);
    lm_json_free(v);
    lm_status_cleanup(&st);
}

Test(status, stream_lag_and_ready)
{
    lm_status_t st;
    lm_status_init(&st, "j");
    stream_active(&st, false);
    lm_json_val_t *v = render_json(&st);
    cr_assert_float_eq(jdouble(v, "lagTimeSeconds"), 2.5, 1e-9);
    cr_assert_float_eq(jdouble(v, "estimatedCutoverSeconds"), 7.25, 1e-9);
    cr_assert_not(jbool(v, "readyForCutover"));
    lm_json_val_t *s = jget(v, "stream", LM_JSON_OBJECT);
    cr_assert_str_eq(jstr(s, "capture"), "oplog");
    lm_json_val_t *o = jget(s, "appliedOptime", LM_JSON_OBJECT);
    cr_assert_eq(jint(o, "t"), 1717200000);
    cr_assert_eq(jint(o, "i"), 2);
    o = jget(s, "sourceOptime", LM_JSON_OBJECT);
    cr_assert_eq(jint(o, "t"), 1717200005);
    cr_assert_eq(jint(o, "i"), 7);
    cr_assert_float_eq(jdouble(s, "optimeGapSeconds"), 5.0, 1e-9);
    cr_assert_eq(jint(s, "opsApplied"), 77);
    cr_assert_eq(jint(s, "opsRefetched"), 5);
    cr_assert_eq(jint(s, "ddlApplied"), 2);
    cr_assert_eq(jint(s, "oplogRereads"), 1);
    cr_assert_float_eq(jdouble(s, "opsPerSecond"), 12.5, 1e-9);
    cr_assert_float_eq(jdouble(s, "applyLatencyMs"), 3.3, 1e-9);
    const lm_json_val_t *aw = jget(s, "applyWorkers", LM_JSON_OBJECT);
    cr_assert_eq(jint(aw, "active"), 2);
    cr_assert_eq(jint(aw, "max"), 8);
    cr_assert_eq(jint(s, "applyLingerMs"), 500);
    cr_assert_eq(jint(s, "applyWrites"), 11);
    jget(s, "cutoverRequestedAt", LM_JSON_NULL);
    cr_assert_null(lm_json_get(s, "finalOptime"));
    lm_json_free(v);

    /* ready, cutting over, finished */
    lm_stream_status_t ss;
    lm_status_get_stream(&st, &ss);
    ss.ready_for_cutover = true;
    ss.lag_seconds = 0;
    ss.cutover_requested_ms = T0 + 1500;
    ss.final_t = 1717200009, ss.final_i = 4;
    lm_status_set_stream(&st, &ss);
    v = render_json(&st);
    cr_assert(jbool(v, "readyForCutover"));
    cr_assert_float_eq(jdouble(v, "lagTimeSeconds"), 0.0, 1e-12);
    s = jget(v, "stream", LM_JSON_OBJECT);
    cr_assert_str_eq(jstr(s, "cutoverRequestedAt"), "2024-06-01T00:00:01.500Z");
    o = jget(s, "finalOptime", LM_JSON_OBJECT);
    cr_assert_eq(jint(o, "t"), 1717200009);
    cr_assert_eq(jint(o, "i"), 4);
    lm_json_free(v);
    lm_status_cleanup(&st);
}

Test(status, ready_needs_an_active_stream)
{
    lm_status_t st;
    lm_status_init(&st, "j");
    lm_stream_status_t s = {0};
    s.ready_for_cutover = true; /* left over, but the stream is not running */
    s.lag_seconds = 1;
    lm_status_set_stream(&st, &s);
    lm_json_val_t *v = render_json(&st);
    cr_assert_not(jbool(v, "readyForCutover"));
    jget(v, "lagTimeSeconds", LM_JSON_NULL);
    cr_assert_null(lm_json_get(v, "stream"));
    lm_json_free(v);
    lm_status_cleanup(&st);
}

Test(status, warnings_and_errors)
{
    lm_status_t st;
    lm_status_init(&st, "j");
    lm_status_warn(&st, "collection %s: \"clusteredIndex\" dropped\n(by the target)", "a.b");
    lm_status_error(&st, "copy failed: %d", 11000);
    lm_json_val_t *v = render_json(&st);
    lm_json_val_t *w = jget(v, "warnings", LM_JSON_ARRAY);
    cr_assert_eq(lm_json_len(w), 1);
    cr_assert_str_eq(lm_json_string(lm_json_at(w, 0)),
                     "collection a.b: \"clusteredIndex\" dropped\n(by the target)");
    lm_json_val_t *e = jget(v, "errors", LM_JSON_ARRAY);
    cr_assert_eq(lm_json_len(e), 1);
    cr_assert_str_eq(lm_json_string(lm_json_at(e, 0)), "copy failed: 11000");
    lm_json_free(v);
    lm_status_cleanup(&st);
}

Test(status, events_keep_the_last_ones_with_time_and_kind)
{
    lm_status_t st;
    lm_status_init(&st, "j");
    cr_assert_eq(lm_json_len(jget(render_json(&st), "events", LM_JSON_ARRAY)), 0);
    lm_status_event(&st, "target_unreachable", "target %s unreachable: %s", "127.0.0.1:9",
                    "connection refused");
    lm_status_event(&st, "target_back", "target 127.0.0.1:9 reachable again after 2.5 s");
    lm_json_val_t *v = render_json(&st);
    lm_json_val_t *ev = jget(v, "events", LM_JSON_ARRAY);
    cr_assert_eq(lm_json_len(ev), 2);
    cr_assert_str_eq(jstr(lm_json_at(ev, 0), "kind"), "target_unreachable");
    cr_assert_str_eq(jstr(lm_json_at(ev, 0), "message"),
                     "target 127.0.0.1:9 unreachable: connection refused");
    cr_assert_str_eq(jstr(lm_json_at(ev, 1), "kind"), "target_back");
    regex_t re; /* an ISO 8601 UTC time */
    cr_assert_eq(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$", REG_EXTENDED | REG_NOSUB),
                 0);
    cr_assert_eq(regexec(&re, jstr(lm_json_at(ev, 1), "time"), 0, NULL, 0), 0, "%s",
                 jstr(lm_json_at(ev, 1), "time"));
    regfree(&re);
    lm_json_free(v);
    /* bounded: the last LM_STATUS_MAX_EVENTS, oldest first */
    for (int i = 0; i < LM_STATUS_MAX_EVENTS + 7; i++)
        lm_status_event(&st, "cursor_reopened", "reopen %d", i);
    v = render_json(&st);
    ev = jget(v, "events", LM_JSON_ARRAY);
    cr_assert_eq(lm_json_len(ev), LM_STATUS_MAX_EVENTS);
    cr_assert_str_eq(jstr(lm_json_at(ev, 0), "message"), "reopen 7");
    char last[32];
    snprintf(last, sizeof last, "reopen %d", LM_STATUS_MAX_EVENTS + 6);
    cr_assert_str_eq(jstr(lm_json_at(ev, LM_STATUS_MAX_EVENTS - 1), "message"), last);
    lm_status_event_t got[3];
    cr_assert_eq(lm_status_get_events(&st, got, 3), 3);
    cr_assert_str_eq(got[2].message, last);
    lm_json_free(v);
    lm_status_cleanup(&st);
}

Test(status, messages_are_capped)
{
    lm_status_t st;
    lm_status_init(&st, "j");
    for (int i = 0; i < LM_STATUS_MAX_MESSAGES + 5; i++)
        lm_status_warn(&st, "warning %d", i);
    cr_assert_eq(st.warnings.n, LM_STATUS_MAX_MESSAGES);
    lm_json_val_t *v = render_json(&st);
    lm_json_val_t *w = jget(v, "warnings", LM_JSON_ARRAY);
    cr_assert_eq(lm_json_len(w), LM_STATUS_MAX_MESSAGES);
    /* the first ones are kept */
    cr_assert_str_eq(lm_json_string(lm_json_at(w, 0)), "warning 0");
    cr_assert_str_eq(lm_json_string(lm_json_at(w, LM_STATUS_MAX_MESSAGES - 1)), "warning 199");
    lm_json_free(v);
    lm_status_cleanup(&st);
}

/* ---- Prometheus text ---- */

static char *render_metrics(lm_status_t *st)
{
    lm_strbuf_t sb;
    lm_strbuf_init(&sb, 1 << 20);
    lm_status_metrics(st, &sb);
    cr_assert_not(sb.truncated);
    return lm_strbuf_steal(&sb);
}

#define NAME "[a-zA-Z_:][a-zA-Z0-9_:]*"
#define LABEL "[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\""
#define VALUE "(-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?|NaN|[+-]Inf)"

/* Checks the exposition format line by line: every line ends in \n; HELP then TYPE once
 * per family; every sample belongs to the family last typed and has a valid name, valid
 * and escaped labels and a number. Returns the number of samples. */
static int check_prometheus(const char *text)
{
    regex_t help, type, sample;
    cr_assert_eq(regcomp(&help, "^# HELP (" NAME ") [^\n]+$", REG_EXTENDED), 0);
    cr_assert_eq(regcomp(&type, "^# TYPE (" NAME ") (gauge|counter)$", REG_EXTENDED), 0);
    cr_assert_eq(
        regcomp(&sample, "^(" NAME ")(\\{" LABEL "(," LABEL ")*\\})? " VALUE "$", REG_EXTENDED), 0);
    char family[128] = "", helped[128] = "", typed[64][128];
    int n_typed = 0, samples = 0;
    size_t len = strlen(text);
    cr_assert(len > 0 && text[len - 1] == '\n', "does not end in a newline");
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        char line[1024];
        regmatch_t m[2];
        cr_assert((size_t)(nl - p) < sizeof line);
        snprintf(line, sizeof line, "%.*s", (int)(nl - p), p);
        p = nl + 1;
        if (regexec(&help, line, 2, m, 0) == 0) {
            snprintf(helped, sizeof helped, "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
                     line + m[1].rm_so);
        } else if (regexec(&type, line, 2, m, 0) == 0) {
            snprintf(family, sizeof family, "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
                     line + m[1].rm_so);
            cr_assert_str_eq(family, helped, "TYPE %s without its HELP", family);
            for (int i = 0; i < n_typed; i++)
                cr_assert_str_neq(typed[i], family, "family %s twice", family);
            cr_assert_lt(n_typed, 64);
            snprintf(typed[n_typed++], sizeof typed[0], "%s", family);
        } else {
            cr_assert_eq(regexec(&sample, line, 2, m, 0), 0, "not Prometheus text: '%s'", line);
            cr_assert_eq(strncmp(line + m[1].rm_so, family, strlen(family)), 0,
                         "sample '%s' outside its family %s", line, family);
            cr_assert_eq((size_t)(m[1].rm_eo - m[1].rm_so), strlen(family));
            samples++;
        }
    }
    regfree(&help);
    regfree(&type);
    regfree(&sample);
    return samples;
}

/* The value of one series ("name" or "name{labels}"); fails when it is absent. */
static double metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; *p; p = strchr(p, '\n') + 1)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    cr_assert_fail("no series %s in\n%s", series, text);
    return 0;
}

static bool has_series(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; *p; p = strchr(p, '\n') + 1)
        if (strncmp(p, series, n) == 0 && (p[n] == ' ' || p[n] == '{'))
            return true;
    return false;
}

Test(metrics, new_job)
{
    lm_status_t st;
    lm_status_init(&st, "j");
    char *m = render_metrics(&st);
    /* 7 phases, 5 states, 3 copy counters, 2 copy writer gauges, errors, warnings */
    cr_assert_eq(check_prometheus(m), 19, "%s", m);
    cr_assert_eq(metric(m, "livemig_phase{phase=\"NEW\"}"), 1);
    cr_assert_eq(metric(m, "livemig_phase{phase=\"COPYING\"}"), 0);
    cr_assert_eq(metric(m, "livemig_phase{phase=\"COMPLETE\"}"), 0);
    cr_assert_eq(metric(m, "livemig_state{state=\"RUNNING\"}"), 1);
    cr_assert_eq(metric(m, "livemig_state{state=\"STOPPED\"}"), 0);
    cr_assert_eq(metric(m, "livemig_copy_documents_total"), 0);
    cr_assert_eq(metric(m, "livemig_copy_writers"), 0);
    cr_assert_eq(metric(m, "livemig_copy_writers_max"), 0);
    cr_assert_eq(metric(m, "livemig_errors"), 0);
    /* the stream's series only once it runs */
    cr_assert_not(has_series(m, "livemig_lag_seconds"));
    cr_assert_not(has_series(m, "livemig_estimated_cutover_seconds"));
    cr_assert_not(has_series(m, "livemig_ready_for_cutover"));
    free(m);
    lm_status_cleanup(&st);
}

Test(metrics, copy_values)
{
    lm_status_t st;
    lm_status_init(&st, "j");
    fill(&st);
    lm_status_set_phase(&st, LM_PHASE_COPYING);
    lm_status_warn(&st, "w1");
    lm_status_warn(&st, "w2");
    lm_status_error(&st, "e1");
    char *m = render_metrics(&st);
    /* 19 + 4 collections copied + 3 estimated (blog.posts is not) */
    cr_assert_eq(check_prometheus(m), 26, "%s", m);
    cr_assert_eq(metric(m, "livemig_phase{phase=\"COPYING\"}"), 1);
    cr_assert_eq(metric(m, "livemig_phase{phase=\"NEW\"}"), 0);
    cr_assert_eq(metric(m, "livemig_copy_documents_total"), 500);
    cr_assert_eq(metric(m, "livemig_copy_bytes_total"), 60000);
    cr_assert_eq(metric(m, "livemig_copy_duplicate_keys_total"), 3);
    cr_assert_eq(metric(m, "livemig_copy_writers"), 3);
    cr_assert_eq(metric(m, "livemig_copy_writers_max"), 8);
    cr_assert_eq(metric(m, "livemig_collection_documents_copied{ns=\"shop.orders\"}"), 400);
    cr_assert_eq(metric(m, "livemig_collection_documents_copied{ns=\"blog.posts\"}"), 10);
    cr_assert_eq(metric(m, "livemig_collection_documents_estimated{ns=\"shop.orders\"}"), 1000);
    cr_assert_eq(metric(m, "livemig_collection_documents_estimated{ns=\"shop.active_users\"}"), 0);
    cr_assert_not(has_series(m, "livemig_collection_documents_estimated{ns=\"blog.posts\"}"));
    cr_assert_eq(metric(m, "livemig_errors"), 1);
    cr_assert_eq(metric(m, "livemig_warnings"), 2);
    free(m);
    lm_status_cleanup(&st);
}

Test(metrics, stream_values)
{
    lm_status_t st;
    lm_status_init(&st, "j");
    lm_status_set_phase(&st, LM_PHASE_STREAMING);
    stream_active(&st, false);
    char *m = render_metrics(&st);
    cr_assert_eq(check_prometheus(m), 19 + 14, "%s", m);
    cr_assert_eq(metric(m, "livemig_phase{phase=\"STREAMING\"}"), 1);
    cr_assert_float_eq(metric(m, "livemig_lag_seconds"), 2.5, 1e-9);
    cr_assert_float_eq(metric(m, "livemig_estimated_cutover_seconds"), 7.25, 1e-9);
    cr_assert_eq(metric(m, "livemig_ready_for_cutover"), 0);
    cr_assert_float_eq(metric(m, "livemig_optime_gap_seconds"), 5.0, 1e-9);
    cr_assert_eq(metric(m, "livemig_apply_ops_total"), 77);
    cr_assert_eq(metric(m, "livemig_apply_refetched_total"), 5);
    cr_assert_eq(metric(m, "livemig_apply_ddl_total"), 2);
    cr_assert_eq(metric(m, "livemig_oplog_rereads_total"), 1);
    cr_assert_float_eq(metric(m, "livemig_apply_ops_per_second"), 12.5, 1e-9);
    cr_assert_float_eq(metric(m, "livemig_apply_latency_ms"), 3.3, 1e-9);
    cr_assert_eq(metric(m, "livemig_apply_workers"), 2);
    cr_assert_eq(metric(m, "livemig_apply_workers_max"), 8);
    cr_assert_eq(metric(m, "livemig_apply_linger_ms"), 500);
    cr_assert_eq(metric(m, "livemig_apply_writes_total"), 11);
    free(m);

    stream_active(&st, true);
    m = render_metrics(&st);
    cr_assert_eq(metric(m, "livemig_ready_for_cutover"), 1);
    free(m);
    lm_status_cleanup(&st);
}

Test(metrics, label_values_are_escaped)
{
    lm_status_t st;
    lm_status_init(&st, "j");
    lm_coll_status_t *cs = calloc(1, sizeof *cs);
    cr_assert(cs);
    coll(cs, "shop.a\"b\\c\nd", 5, 3, 30, LM_COLL_COPYING);
    lm_status_set_collections(&st, cs, 1);
    char *m = render_metrics(&st);
    cr_assert_eq(check_prometheus(m), 21, "%s", m);
    cr_assert_eq(metric(m, "livemig_collection_documents_copied{ns=\"shop.a\\\"b\\\\c\\nd\"}"), 3);
    cr_assert_eq(metric(m, "livemig_collection_documents_estimated{ns=\"shop.a\\\"b\\\\c\\nd\"}"),
                 5);
    free(m);
    lm_status_cleanup(&st);
}

/* ---- estimates ---- */

Test(estimates, collection_bytes)
{
    lm_status_t st;
    lm_status_init(&st, "j");
    fill(&st);
    cr_assert_eq(lm_coll_est_bytes(&st, &st.colls[0]), 100000); /* its own average */
    cr_assert_eq(lm_coll_est_bytes(&st, &st.colls[1]), 6000);   /* the job's average */
    cr_assert_eq(lm_coll_est_bytes(&st, &st.colls[2]), 0);      /* a view */
    cr_assert_eq(lm_coll_est_bytes(&st, &st.colls[3]), -1);     /* not estimated */
    /* nothing copied anywhere yet: unknown */
    atomic_store(&st.docs, 0);
    atomic_store(&st.bytes, 0);
    cr_assert_eq(lm_coll_est_bytes(&st, &st.colls[1]), -1);
    cr_assert_eq(lm_coll_est_bytes(&st, &st.colls[0]), 100000);
    /* an empty collection is 0 bytes, average or not */
    atomic_store(&st.colls[1].est_docs, 0);
    cr_assert_eq(lm_coll_est_bytes(&st, &st.colls[1]), 0);
    lm_status_cleanup(&st);
}

Test(estimates, totals)
{
    lm_status_t st;
    int64_t docs = -5, bytes = -5;
    lm_status_init(&st, "j");
    cr_assert(lm_status_totals(&st, &docs, &bytes)); /* no collections: known, 0 */
    cr_assert_eq(docs, 0);
    cr_assert_eq(bytes, 0);
    fill(&st);
    /* blog.posts not estimated: the sums cover the others */
    cr_assert_not(lm_status_totals(&st, &docs, &bytes));
    cr_assert_eq(docs, 1000 + 50 + 0);
    cr_assert_eq(bytes, 100000 + 6000 + 0);
    atomic_store(&st.colls[3].est_docs, 20); /* 10 copied, 900 bytes: 90 each */
    cr_assert(lm_status_totals(&st, &docs, &bytes));
    cr_assert_eq(docs, 1070);
    cr_assert_eq(bytes, 106000 + 1800);
    lm_status_cleanup(&st);
}

Test(estimates, find_and_names)
{
    lm_status_t st;
    lm_status_init(&st, "j");
    fill(&st);
    cr_assert_eq(lm_status_find(&st, "shop.users"), &st.colls[1]);
    cr_assert_eq(lm_status_find(&st, "blog.posts"), &st.colls[3]);
    cr_assert_null(lm_status_find(&st, "shop.user"));
    cr_assert_null(lm_status_find(&st, ""));
    cr_assert_str_eq(lm_state_name(LM_STATE_CANCELLED), "CANCELLED");
    cr_assert_str_eq(lm_phase_name(LM_PHASE_CUTTING_OVER), "CUTTING_OVER");
    cr_assert_str_eq(lm_coll_state_name(LM_COLL_FAILED), "failed");
    lm_status_cleanup(&st);
}

static int check_known(void *ud, const char *list, char *msg, size_t msgsz)
{
    (void)ud;
    int ok = strcmp(list, "s0,s1") == 0 || strcmp(list, "s1") == 0;
    snprintf(msg, msgsz, ok ? "taken" : "unknown shard");
    return ok ? 202 : 400;
}

/* A lead waiting for its shards: the assignment is refused (409) while nobody waits,
 * checked by the waiter's hook (400), kept until taken once. */
Test(status, assignment_of_shards)
{
    lm_status_t st;
    char msg[256], out[64];
    lm_status_init(&st, "j");
    cr_assert_eq(lm_status_set_assignment(&st, "s0", msg, sizeof msg), 409);
    cr_assert(strstr(msg, "not waiting"), "%s", msg);
    cr_assert_not(lm_status_take_assignment(&st, out, sizeof out));
    st.assign_check = check_known;
    cr_assert_eq(lm_status_set_assignment(&st, "s9", msg, sizeof msg), 400);
    cr_assert_not(lm_status_take_assignment(&st, out, sizeof out));
    cr_assert_eq(lm_status_set_assignment(&st, "s1", msg, sizeof msg), 202);
    cr_assert_eq(lm_status_set_assignment(&st, "s0,s1", msg, sizeof msg), 202); /* replaces */
    cr_assert(lm_status_take_assignment(&st, out, sizeof out));
    cr_assert_str_eq(out, "s0,s1");
    cr_assert_not(lm_status_take_assignment(&st, out, sizeof out));
    char big[LM_STATUS_ASSIGNMENT_MAX + 10];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(lm_status_set_assignment(&st, big, msg, sizeof msg), 400);
    lm_status_cleanup(&st);
}
