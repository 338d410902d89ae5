/* lm_stream: see lm_stream.h. */
#include "lm_stream.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_apply.h"
#include "lm_conn.h"
#include "lm_lag.h"
#include "lm_log.h"
#include "lm_meta.h"
#include "lm_mongo_error.h"
#include "lm_time.h"

/* An awaited cursor answers "nothing new" after this long: a cutover request waits for the
 * answer in flight, so it is short (an idle cursor costs a getMore every 250 ms). */
#define AWAIT_MS 250
#define TICK_MS 200
#define SLICE_MS 10 /* the monitor looks for a cutover request and its stop this often */
#define CHECKPOINT_MS 2000
#define CHECK_MS 2000         /* the continuity check's first period (see cont_t) */
#define CHECK_MAX_MS 600000   /* ... doubling after each clean check up to this */
#define CHECK_COST_FACTOR 100 /* ... and at least 100x the last count's duration apart */
#define WINDOW_CHECK_MS 30000
#define STALL_MS 5000 /* a tick this late: the process was paused; check the window now */

#define LOOK_MS 1000         /* the look-ahead (see look_ahead): at most this often while behind */
#define LOOK_BEHIND_MS 10000 /* ... while the lag alone already says "not ready" */
#define LOOK_COST_FACTOR 100 /* ... and at least 100x the last one's duration apart */
#define LOOK_GAP_FACTOR 5    /* ... at once when a DDL starts, but 5x its duration apart */
#define LOOK_MAX_DDL 256     /* DDL entries ahead remembered, at most */

#define WINDOW_MSG "oplog window exceeded: restart the migration from the beginning"

typedef struct {
    const lm_stream_opts_t *o;
    const lm_job_t *job;
    lm_status_t *st;
    lm_apply_t *apply;
    bool use_cs;
    bool oplog_readable;
    char capture[16];
    mongoc_client_t *src, *dst; /* the reader's */

    pthread_mutex_t mu;   /* guards the reader's published position */
    lm_optime_t read_pos; /* last entry read and handed on */
    int64_t read_wall;
    lm_optime_t safe_pos; /* read_pos, or before a transaction still held back */
    int64_t safe_wall;
    lm_optime_t write_read; /* newest entry read that was not a no-op */
    int64_t write_read_wall;
    atomic_int idle_streak;  /* empty answers in a row from the cursor (see idle_empty) */
    atomic_llong empties;    /* empty answers in all */
    lm_optime_t unchecked;   /* the checkpoint may not pass this (t = 0: free); see cont_t */
    int64_t check_period_ms; /* the oplog reader's (see cont_t) */
    atomic_bool first_check; /* a cursor's first continuity check is still to come */

    pthread_t mon;
    bool mon_started;
    atomic_bool mon_stop, done, failed;
    lm_error_t mon_err;
    lm_optime_t cutoff;
    lm_optime_t window_need;  /* the monitor's last window check proved the source held this */
    atomic_llong cut_t0;      /* when the cutover request was seen (monotonic ms; 0: not yet) */
    atomic_llong cut_wall;    /* ... and its wall time */
    atomic_llong cut_empties; /* ... and s->empties then */
    /* the cutover estimate (lm_lag.h), under mu: the model, the DDL running now */
    lm_est_model_t est;
    int ddl_running;           /* lm_ddl_kind_t, or -1 */
    int64_t ddl_started_ms;    /* monotonic */
    unsigned ddl_seq;          /* bumped when a DDL starts: the monitor looks ahead at once */
    atomic_llong entries_read; /* oplog entries or events taken */
} stream_t;

static bool stopped(stream_t *s)
{
    return (s->o->stop && atomic_load(s->o->stop)) || atomic_load(&s->st->cancel);
}

static bool cutover_requested(stream_t *s)
{
    return s->o->cutover_gate ? s->o->cutover_gate(s->o->gate_ud) : atomic_load(&s->st->cutover);
}

/* One timing line per step of the cutover (info level): what the operator's downtime is
 * made of, in ms since the monitor saw the request. */
static void cut_step(stream_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cut_step(stream_t *s, const char *fmt, ...)
{
    int64_t t0 = atomic_load(&s->cut_t0);
    char what[256];
    va_list ap;
    if (!t0 || !lm_log_enabled(LM_LOG_INFO))
        return;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    lm_log_info(NULL, "cutover step: %s (+%lld ms)", what, (long long)(lm_time_mono_ms() - t0));
}

/* The cutover was requested: the first thread to see it (the monitor or the oplog reader)
 * notes when and enters CUTTING_OVER. */
static void note_cutover(stream_t *s)
{
    long long zero = 0, now = lm_time_mono_ms();
    if (!atomic_compare_exchange_strong(&s->cut_t0, &zero, now))
        return;
    atomic_store(&s->cut_empties, atomic_load(&s->empties));
    atomic_store(&s->cut_wall, lm_time_now_ms());
    lm_apply_hurry(s->apply); /* nothing gathers from now on */
    lm_status_set_phase(s->st, LM_PHASE_CUTTING_OVER);
    lm_log_info(NULL,
                "cutover: waiting for the source's writes to stop and the target to catch up");
}

/* True once the cutover was requested: the gate (or the status flag) is asked until it
 * says yes once; from then on the answer is kept (a gate may close again: test_engine's
 * opens only while the phase is STREAMING). */
static bool cutover_seen(stream_t *s)
{
    if (atomic_load(&s->cut_t0))
        return true;
    if (!cutover_requested(s))
        return false;
    note_cutover(s);
    return true;
}

static int64_t time_of(lm_optime_t t, int64_t wall)
{
    return wall ? wall : (int64_t)t.t * 1000;
}

/* ---- reading the source's history ---- */

bool lm_stream_oplog_edge(mongoc_client_t *c, int dir, lm_optime_t *ts, int64_t *wall,
                          bson_error_t *e)
{
    mongoc_collection_t *oplog = mongoc_client_get_collection(c, "local", "oplog.rs");
    bson_t *opts = BCON_NEW("sort", "{", "$natural", BCON_INT32(dir), "}", "limit", BCON_INT64(1),
                            "projection", "{", "ts", BCON_INT32(1), "wall", BCON_INT32(1), "}");
    bson_t filter = BSON_INITIALIZER;
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(oplog, &filter, opts, NULL);
    const bson_t *d;
    bson_iter_t it;
    bool found = false;
    memset(e, 0, sizeof *e);
    if (mongoc_cursor_next(cur, &d) && bson_iter_init_find(&it, d, "ts") &&
        BSON_ITER_HOLDS_TIMESTAMP(&it)) {
        bson_iter_timestamp(&it, &ts->t, &ts->i);
        *wall = bson_iter_init_find(&it, d, "wall") && BSON_ITER_HOLDS_DATE_TIME(&it)
                    ? bson_iter_date_time(&it)
                    : 0;
        found = true;
    }
    mongoc_cursor_error(cur, e);
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    mongoc_collection_destroy(oplog);
    return found;
}

/* The source's latest write: hello's lastWrite, else the newest oplog entry. */
static bool source_latest(stream_t *s, mongoc_client_t *c, lm_optime_t *ts, int64_t *wall)
{
    bson_t reply;
    bson_iter_t it;
    bson_error_t e;
    bool found = false;
    bson_t *cmd = BCON_NEW("hello", BCON_INT32(1));
    if (mongoc_client_command_simple(c, "admin", cmd, NULL, &reply, &e) &&
        bson_iter_init(&it, &reply) && bson_iter_find_descendant(&it, "lastWrite.opTime.ts", &it) &&
        BSON_ITER_HOLDS_TIMESTAMP(&it)) {
        bson_iter_timestamp(&it, &ts->t, &ts->i);
        *wall = 0;
        if (bson_iter_init(&it, &reply) &&
            bson_iter_find_descendant(&it, "lastWrite.lastWriteDate", &it) &&
            BSON_ITER_HOLDS_DATE_TIME(&it))
            *wall = bson_iter_date_time(&it);
        found = true;
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    if (!found && s->oplog_readable)
        found = lm_stream_oplog_edge(c, -1, ts, wall, &e);
    return found;
}

static bool window_error(lm_error_t *err, lm_optime_t need, lm_optime_t oldest)
{
    return lm_error_set(err, LM_ERR_INVALID,
                        WINDOW_MSG " (the job needs the source's changes after Timestamp(%u, %u); "
                                   "the oldest change the source still holds is at "
                                   "Timestamp(%u, %u): give the source a larger oplog or run the "
                                   "migration closer to it)",
                        need.t, need.i, oldest.t, oldest.i);
}

/* The window check: the source must still hold `need`. */
static bool check_window(stream_t *s, mongoc_client_t *c, lm_optime_t need, lm_error_t *err)
{
    lm_optime_t oldest;
    int64_t wall;
    bson_error_t e;
    if (!s->oplog_readable || need.t == 0)
        return true;
    if (!lm_stream_oplog_edge(c, 1, &oldest, &wall, &e)) {
        if (e.code) {
            lm_log_warn(NULL, "cannot read the source's oldest oplog entry (%s): will try again",
                        e.message);
            return true;
        }
        oldest = (lm_optime_t){UINT32_MAX, UINT32_MAX}; /* empty: everything is gone */
    }
    if (lm_optime_cmp(oldest, need) > 0)
        return window_error(err, need, oldest);
    return true;
}

static void publish(stream_t *s, lm_optime_t ts, int64_t wall, bool noop,
                    const lm_oplog_decoder_t *dec)
{
    lm_optime_t hold;
    atomic_fetch_add(&s->entries_read, 1);
    pthread_mutex_lock(&s->mu);
    if (lm_optime_cmp(ts, s->read_pos) > 0) {
        s->read_pos = ts;
        s->read_wall = wall;
    }
    if (!noop && lm_optime_cmp(ts, s->write_read) > 0) {
        s->write_read = ts;
        s->write_read_wall = wall;
    }
    s->safe_pos = s->read_pos;
    s->safe_wall = s->read_wall;
    if (dec && lm_oplog_decoder_hold(dec, &hold) && lm_optime_cmp(hold, s->safe_pos) < 0) {
        s->safe_pos = hold;
        s->safe_wall = 0;
    }
    pthread_mutex_unlock(&s->mu);
}

/* Being caught up is read off the cursor, not off the source: an awaited answer that
 * comes back empty means the reader has every entry written before that wait began.
 * Two empty answers in a row are needed (a cursor's first batch may be empty for other
 * reasons). hello's lastWrite cannot say it: SecantusDB advances it on every command.
 *
 * Change streams carry no no-ops, so their position moves on through idle time too: the
 * source's clock (hello), read before a wait that came back empty, is a time every event
 * before which has been seen. */
typedef struct {
    lm_optime_t h; /* the source's clock read before the current wait; t = 0: none */
    int64_t h_wall;
} idle_t;

static void idle_reset(stream_t *s, idle_t *idle)
{
    idle->h.t = 0;
    atomic_store(&s->idle_streak, 0);
}

static void idle_empty(stream_t *s, mongoc_client_t *poll, idle_t *idle, bool advance_read)
{
    atomic_fetch_add(&s->idle_streak, 1);
    atomic_fetch_add(&s->empties, 1);
    if (!advance_read)
        return;
    if (idle->h.t)
        publish(s, idle->h, idle->h_wall, true, NULL);
    if (!source_latest(s, poll, &idle->h, &idle->h_wall))
        idle->h.t = 0;
}

/* The position every change up to which is on the target; *pending says whether any op
 * is still queued or being written. */
static lm_optime_t applied_position(stream_t *s, int64_t *wall, bool *pending)
{
    lm_optime_t a, p;
    int64_t pw = 0;
    pthread_mutex_lock(&s->mu); /* first the reader's position, then the queues */
    a = s->safe_pos;
    *wall = s->safe_wall;
    pthread_mutex_unlock(&s->mu);
    *pending = s->apply && lm_apply_pending(s->apply, &p, &pw);
    if (*pending && lm_optime_cmp(p, a) < 0) {
        a = p;
        *wall = pw;
    }
    return a;
}

/* The position a checkpoint may record: the applied one, but not past entries whose
 * continuity is not checked yet (see cont_t). */
static lm_optime_t checkpoint_position(stream_t *s, int64_t *wall)
{
    bool pending;
    lm_optime_t a = applied_position(s, wall, &pending), limit;
    pthread_mutex_lock(&s->mu);
    limit = s->unchecked;
    pthread_mutex_unlock(&s->mu);
    if (limit.t && lm_optime_cmp(limit, a) < 0) {
        a = limit;
        *wall = 0;
    }
    return a;
}

/* The kind of a DDL op (the command's name is its first key), for the estimate. */
static lm_ddl_kind_t ddl_kind_of_cmd(const char *cmd)
{
    if (strcmp(cmd, "create") == 0)
        return LM_DDL_CREATE;
    if (strcmp(cmd, "drop") == 0)
        return LM_DDL_DROP;
    if (strcmp(cmd, "createIndexes") == 0 || strcmp(cmd, "commitIndexBuild") == 0)
        return LM_DDL_CREATE_INDEXES;
    if (strcmp(cmd, "dropIndexes") == 0 || strcmp(cmd, "deleteIndexes") == 0)
        return LM_DDL_DROP_INDEXES;
    return LM_DDL_OTHER;
}

static void ddl_begin(stream_t *s, const lm_op_t *op)
{
    bson_iter_t it;
    lm_ddl_kind_t k = LM_DDL_OTHER;
    if (op->kind == LM_OP_DDL && op->doc && bson_iter_init(&it, op->doc) && bson_iter_next(&it))
        k = ddl_kind_of_cmd(bson_iter_key(&it));
    pthread_mutex_lock(&s->mu);
    s->ddl_running = (int)k;
    s->ddl_started_ms = lm_time_mono_ms();
    s->ddl_seq++;
    pthread_mutex_unlock(&s->mu);
}

/* The DDL ended: what it took teaches the estimate (only when it worked). */
static void ddl_end(stream_t *s, bool ok)
{
    pthread_mutex_lock(&s->mu);
    if (ok && s->ddl_running >= 0)
        lm_est_ddl_took(&s->est, (lm_ddl_kind_t)s->ddl_running,
                        (double)(lm_time_mono_ms() - s->ddl_started_ms) / 1e3);
    s->ddl_running = -1;
    pthread_mutex_unlock(&s->mu);
}

/* Hands the ops of one entry on: document ops to the appliers, DDL after a drain. */
static bool dispatch(stream_t *s, lm_oplist_t *ops, lm_optime_t prev, int64_t prev_wall,
                     lm_error_t *err)
{
    bool ok = true;
    lm_op_t *op = ops->head;
    memset(ops, 0, sizeof *ops);
    while (op) {
        lm_op_t *next = op->next;
        op->next = NULL;
        bool selected = op->kind == LM_OP_DROP_DATABASE
                            ? lm_ns_db_selected(&s->job->include, op->db)
                            : lm_ns_selected(&s->job->include, &s->job->exclude, op->db, op->coll);
        if (!ok || !selected) {
            lm_op_free(op);
        } else if (op->kind == LM_OP_DDL || op->kind == LM_OP_DROP_DATABASE) {
            ok = lm_apply_drain(s->apply, err);
            if (ok) {
                ddl_begin(s, op);
                ok = lm_apply_ddl(s->dst, op, &s->job->include, &s->job->exclude, s->st, err);
                ddl_end(s, ok);
            }
            lm_op_free(op);
        } else {
            op->prev = prev;
            op->prev_wall_ms = prev_wall;
            if (lm_log_enabled(LM_LOG_DEBUG))
                lm_log_debug(NULL, "change at Timestamp(%u, %u): %s on %s.%s", op->ts.t, op->ts.i,
                             lm_op_kind_name(op->kind), op->db, op->coll);
            ok = lm_apply_push(s->apply, op, err);
        }
        op = next;
    }
    return ok;
}

/* Why the reader must stop now (err set), or false to go on. */
static bool must_stop(stream_t *s, lm_error_t *err)
{
    if (atomic_load(&s->failed)) {
        *err = s->mon_err;
        return true;
    }
    if (lm_apply_failed(s->apply, err))
        return true;
    if (stopped(s)) {
        lm_error_set(err, LM_ERR_CANCELLED, "stopped while streaming changes");
        return true;
    }
    return false;
}

static bool history_lost(const bson_error_t *e)
{
    return lm_mongo_history_lost(e->code);
}

/* After a cursor failed: true when it is worth opening again (having waited with backoff),
 * false with err set when it is not. `what` names the cursor in messages; `lost` prefixes
 * the window message; the hints follow a permission error and any other lasting error. */
static bool retry_cursor(stream_t *s, const bson_error_t *e, const char *what, const char *lost,
                         const char *auth_hint, const char *other_hint, unsigned *attempt,
                         lm_error_t *err)
{
    if (history_lost(e))
        return lm_error_set(err, LM_ERR_INVALID, "%s" WINDOW_MSG " (the source says: %s)", lost,
                            e->message);
    /* a cursor the source no longer has (restarted, killed) is opened again from the
     * reader's position, as after a lost connection (found by tests/soak) */
    if (!lm_conn_error_transient(e) && !lm_mongo_cursor_not_found(e->code))
        return lm_error_set(err, lm_mongo_error_class(e->code), "source: %s failed: %s%s", what,
                            e->message, lm_mongo_unauthorized(e->code) ? auth_hint : other_hint);
    int64_t wait = lm_time_backoff_ms((*attempt)++, 100, 5000);
    lm_status_event(s->st, "cursor_reopened",
                    "source: %s failed (%s); reconnecting in %lld ms (the cursor is opened again "
                    "from the last position read)",
                    what, e->message, (long long)wait);
    lm_time_sleep_ms(wait, s->o->stop);
    return true;
}

/* ---- the oplog reader ----
 *
 * The continuity check. A tailable cursor is trusted to give every entry in order, but
 * test-bed servers do not: SecantusDB 0.7 loses the entries written while its tailable
 * find opens (it reads the matching entries, then the oplog's end a moment later), and
 * FerretDB's cursor steps over entries now and then. So what the cursor gave is checked:
 * the entries in (from, upto] are counted on the source with a plain query and compared
 * with the number the cursor gave; when some are missing, the range is read again with a
 * plain query and replayed in order (replaying is idempotent). The first check of a
 * cursor covers up to the source's newest entry once the cursor answered; later ones cover
 * up to the reader's position: periodically (after CHECK_MS, the period doubling after
 * each clean check up to CHECK_MAX_MS and back to CHECK_MS after a short one; at least
 * 100x the last count's duration apart, as a count scans the whole oplog on SecantusDB)
 * and, during the cutover, whenever the cursor goes idle. A checkpoint never passes
 * `from`, and the cutover does not end before everything read is checked. */
typedef struct {
    lm_optime_t from, upto; /* the next check covers (from, upto] */
    bool first;             /* upto is the source's end as the cursor opened */
    int64_t seen;           /* entries in (from, upto] the cursor gave */
    int64_t due_ms;         /* the next periodic check */
    int64_t cost_ms;        /* how long the last count took */
} cont_t;

/* Holds the checkpoint at `at`: entries after it are not checked yet (t = 0: none). */
static void hold_checkpoint(stream_t *s, lm_optime_t at)
{
    pthread_mutex_lock(&s->mu);
    s->unchecked = at;
    pthread_mutex_unlock(&s->mu);
}

/* A plain (not tailable) read of the entries with from <= ts <= upto, oldest first. */
static mongoc_cursor_t *range_cursor(mongoc_collection_t *oplog, lm_optime_t from, lm_optime_t upto,
                                     bool ts_only)
{
    bson_t *filter = BCON_NEW("ts", "{", "$gte", BCON_TIMESTAMP(from.t, from.i), "$lte",
                              BCON_TIMESTAMP(upto.t, upto.i), "}");
    bson_t *opts =
        BCON_NEW("sort", "{", "$natural", BCON_INT32(1), "}", "batchSize", BCON_INT32(1000));
    if (ts_only)
        BCON_APPEND(opts, "projection", "{", "_id", BCON_INT32(0), "ts", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(oplog, filter, opts, NULL);
    bson_destroy(filter);
    bson_destroy(opts);
    return cur;
}

static bool entry_ts(const bson_t *doc, lm_optime_t *ts, lm_error_t *err)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, "ts") || !BSON_ITER_HOLDS_TIMESTAMP(&it))
        return lm_error_set(err, LM_ERR_INVALID, "an oplog entry without a 'ts' timestamp");
    bson_iter_timestamp(&it, &ts->t, &ts->i);
    return true;
}

/* Decodes one entry after *pos, hands its ops on and publishes it; *pos moves to it. */
static bool take_entry(stream_t *s, lm_oplog_decoder_t *dec, const bson_t *doc, lm_optime_t *pos,
                       int64_t *pos_wall, lm_error_t *err)
{
    lm_optime_t ts;
    int64_t wall;
    bool noop;
    lm_oplist_t ops = {0};
    if (!lm_oplog_decode(dec, doc, *pos, &ops, &ts, &wall, &noop, err) ||
        !dispatch(s, &ops, *pos, *pos_wall, err)) {
        lm_oplist_clear(&ops);
        return false;
    }
    publish(s, ts, wall, noop, dec);
    *pos = ts;
    *pos_wall = wall;
    return true;
}

/* Reads (start, upto] again with a plain query and replays it from a fresh decoder. */
static bool replay_range(stream_t *s, mongoc_collection_t *oplog, lm_oplog_decoder_t *dec,
                         lm_optime_t start, lm_optime_t upto, lm_optime_t *pos, int64_t *pos_wall,
                         bson_error_t *e, lm_error_t *err)
{
    lm_optime_t hold;
    if (lm_oplog_decoder_hold(dec, &hold) && lm_optime_cmp(hold, start) < 0)
        start = hold; /* a transaction still open began earlier: read it whole again */
    hold_checkpoint(s, start);
    lm_oplog_decoder_cleanup(dec);
    lm_oplog_decoder_init(dec);
    *pos = start;
    *pos_wall = 0;
    mongoc_cursor_t *cur = range_cursor(oplog, start, upto, false);
    const bson_t *doc;
    bool ok = true, first = true;
    memset(e, 0, sizeof *e);
    while (ok && mongoc_cursor_next(cur, &doc)) {
        lm_optime_t ts;
        ok = entry_ts(doc, &ts, err);
        if (ok && first && start.t && lm_optime_cmp(ts, start) > 0)
            ok = window_error(err, start, ts);
        first = false;
        if (ok && lm_optime_cmp(ts, *pos) > 0)
            ok = take_entry(s, dec, doc, pos, pos_wall, err);
        if (ok && must_stop(s, err))
            ok = false;
    }
    if (ok && mongoc_cursor_error(cur, e))
        ok = lm_error_set(err, LM_ERR_SERVER, "source: reading local.oplog.rs again failed: %s",
                          e->message);
    else
        memset(e, 0, sizeof *e); /* e->code: the read failed, not the replay */
    mongoc_cursor_destroy(cur);
    return ok;
}

/* The source's entries in (from, upto]. */
static bool count_range(mongoc_collection_t *oplog, lm_optime_t from, lm_optime_t upto, int64_t *n,
                        bson_error_t *e, lm_error_t *err)
{
    mongoc_cursor_t *cur = range_cursor(oplog, from, upto, true);
    const bson_t *doc;
    memset(e, 0, sizeof *e);
    *n = 0;
    while (mongoc_cursor_next(cur, &doc)) {
        lm_optime_t ts;
        if (entry_ts(doc, &ts, err) && lm_optime_cmp(ts, from) > 0)
            (*n)++;
    }
    bool failed = mongoc_cursor_error(cur, e);
    mongoc_cursor_destroy(cur);
    if (failed)
        return lm_error_set(err, LM_ERR_SERVER, "source: counting oplog entries failed: %s",
                            e->message);
    return true;
}

/* After a read of the continuity check failed with e: true when it is worth doing again
 * (the source restarted, the network dropped), having waited with backoff. Found by the
 * chaos soak: such a blip during a count or a replay FAILED the job. The check then runs
 * again over the same range, so nothing it covers is skipped. */
static bool retry_check(stream_t *s, const bson_error_t *e, const char *what, unsigned *attempt)
{
    if (!e->code || (!lm_conn_error_transient(e) && !lm_mongo_cursor_not_found(e->code)) ||
        stopped(s))
        return false;
    int64_t wait = lm_time_backoff_ms((*attempt)++, 100, 5000);
    lm_status_event(s->st, "source_read_retried", "source: %s failed (%s); trying again in %lld ms",
                    what, e->message, (long long)wait);
    lm_time_sleep_ms(wait, s->o->stop);
    return true;
}

/* Runs the continuity check up to `upto` (see cont_t); replays the range when entries
 * are missing. False with err set when the source cannot be read or the replay fails. */
static bool check_continuity(stream_t *s, mongoc_collection_t *oplog, lm_oplog_decoder_t *dec,
                             cont_t *c, lm_optime_t *pos, int64_t *pos_wall, lm_error_t *err)
{
    int64_t n = 0, t0 = lm_time_mono_ms();
    if (!c->first)
        c->upto = *pos;
    /* a cursor's first check runs its query even over an empty range: what it costs sets
     * how often the later ones may run */
    bool ran = c->first || lm_optime_cmp(c->upto, c->from) > 0;
    bson_error_t e;
    unsigned attempt = 0;
    while (ran && !count_range(oplog, c->from, c->upto, &n, &e, err))
        if (!retry_check(s, &e, "counting oplog entries", &attempt))
            return false;
    int64_t now = lm_time_mono_ms();
    if (ran)
        c->cost_ms = now - t0;
    if (ran)
        cut_step(s, "continuity check after Timestamp(%u, %u): %lld entries on the source, %lld ms",
                 c->from.t, c->from.i, (long long)n, (long long)(now - t0));
    lm_log_debug(NULL,
                 "continuity check after Timestamp(%u, %u): %lld entries on the source, %lld "
                 "read, %lld ms",
                 c->from.t, c->from.i, (long long)n, (long long)c->seen, (long long)c->cost_ms);
    if (n > c->seen)
        s->check_period_ms = CHECK_MS;
    else if (ran && !c->first)
        s->check_period_ms =
            s->check_period_ms * 2 < CHECK_MAX_MS ? s->check_period_ms * 2 : CHECK_MAX_MS;
    c->due_ms = now + (s->check_period_ms > CHECK_COST_FACTOR * c->cost_ms
                           ? s->check_period_ms
                           : CHECK_COST_FACTOR * c->cost_ms);
    if (n > c->seen) {
        lm_log_warn(NULL,
                    "the source's oplog cursor skipped %lld of %lld entries after Timestamp(%u, "
                    "%u); reading them again",
                    (long long)(n - c->seen), (long long)n, c->from.t, c->from.i);
        atomic_fetch_add(&s->st->oplog_rereads, 1);
        attempt = 0;
        while (!replay_range(s, oplog, dec, c->from, c->upto, pos, pos_wall, &e, err))
            if (!retry_check(s, &e, "reading local.oplog.rs again", &attempt))
                return false;
    }
    if (lm_optime_cmp(c->upto, c->from) > 0)
        c->from = c->upto;
    c->first = false;
    atomic_store(&s->first_check, false);
    c->seen = 0;
    hold_checkpoint(s, c->from);
    return true;
}

/* The oplog reader's cutover, run once the cursor has answered "nothing new" after the
 * request: one plain read of the timestamps of every entry from `need` on (one scan on
 * SecantusDB, which scans its whole oplog for any query), which proves at once
 *  - the window: the first entry is `need`, the older of the unchecked range's start and
 *    the position the monitor's last window check proved; the source discards its oldest
 *    entries first, so nothing after it was discarded before it was read;
 *  - continuity: the source holds as many entries in (c->from, *pos] as the cursor gave
 *    (else that range is read again and replayed, as check_continuity does);
 *  - the edge: the entries after *pos, if any, are read with a plain query and replayed.
 * The cutoff is then the last entry read: every entry up to it is handed to the appliers
 * and none after it will be. False with err set when the source cannot be read, or the
 * window is gone. */
static bool final_sweep(stream_t *s, mongoc_collection_t *oplog, lm_oplog_decoder_t *dec, cont_t *c,
                        lm_optime_t *pos, int64_t *pos_wall, lm_error_t *err)
{
    const lm_optime_t end = {UINT32_MAX, UINT32_MAX};
    int64_t t0 = lm_time_mono_ms(), n = 0, after = 0;
    lm_optime_t need, newest = *pos;
    bool ok = true, first = true;
    const bson_t *doc;
    bson_error_t e;
    pthread_mutex_lock(&s->mu);
    need = s->window_need;
    pthread_mutex_unlock(&s->mu);
    if (!need.t || lm_optime_cmp(c->from, need) < 0)
        need = c->from;
    mongoc_cursor_t *cur = range_cursor(oplog, need, end, true);
    while (ok && mongoc_cursor_next(cur, &doc)) {
        lm_optime_t ts;
        if (!(ok = entry_ts(doc, &ts, err)))
            break;
        if (first && need.t && lm_optime_cmp(ts, need) != 0)
            ok = window_error(err, need, ts);
        first = false;
        if (lm_optime_cmp(ts, c->from) <= 0)
            continue;
        lm_optime_cmp(ts, *pos) <= 0 ? n++ : after++;
        if (lm_optime_cmp(ts, newest) > 0)
            newest = ts;
    }
    if (ok && mongoc_cursor_error(cur, &e))
        ok = lm_error_set(err, LM_ERR_SERVER, "source: reading local.oplog.rs for the cutover: %s",
                          e.message);
    mongoc_cursor_destroy(cur);
    if (ok && first && need.t)
        ok = window_error(err, need, end); /* the source holds nothing from `need` on */
    if (!ok)
        return false;
    cut_step(s,
             "final sweep of the source's oplog after Timestamp(%u, %u): %lld entries read before, "
             "%lld on the source, %lld newer (%lld ms)",
             c->from.t, c->from.i, (long long)c->seen, (long long)n, (long long)after,
             (long long)(lm_time_mono_ms() - t0));
    if (n > c->seen) {
        lm_log_warn(NULL,
                    "the source's oplog cursor skipped %lld of %lld entries after Timestamp(%u, "
                    "%u); reading them again",
                    (long long)(n - c->seen), (long long)n, c->from.t, c->from.i);
        atomic_fetch_add(&s->st->oplog_rereads, 1);
    }
    if (n > c->seen || after > 0) {
        /* a source that goes away meanwhile is waited for, as in check_continuity */
        lm_optime_t from = n > c->seen ? c->from : *pos;
        unsigned attempt = 0;
        while (!replay_range(s, oplog, dec, from, newest, pos, pos_wall, &e, err))
            if (!retry_check(s, &e, "reading local.oplog.rs again", &attempt))
                return false;
    }
    if (after > 0 || n > c->seen)
        cut_step(s, "read up to Timestamp(%u, %u)", pos->t, pos->i);
    c->from = *pos;
    c->seen = 0;
    c->first = false;
    atomic_store(&s->first_check, false);
    hold_checkpoint(s, *pos);
    s->cutoff = *pos;
    atomic_store(&s->done, true);
    return true;
}

/* Tails local.oplog.rs from the read position until done, stop or failure. */
static bool read_oplog(stream_t *s, lm_error_t *err)
{
    lm_oplog_decoder_t dec;
    cont_t cont = {.first = true};
    lm_optime_t pos = {0, 0};
    unsigned attempt = 0;
    bool ok = true;
    idle_t idle = {{0, 0}, 0};
    mongoc_client_t *poll = lm_conn_pool_pop(s->o->source);
    lm_oplog_decoder_init(&dec);
    mongoc_collection_t *oplog = mongoc_client_get_collection(s->src, "local", "oplog.rs");
    while (ok && !atomic_load(&s->done) && !must_stop(s, err)) {
        lm_optime_t from;
        int64_t from_wall;
        pthread_mutex_lock(&s->mu);
        from = s->read_pos;
        from_wall = s->read_wall;
        pthread_mutex_unlock(&s->mu);
        cont = (cont_t){.from = from, .upto = from, .first = true};
        atomic_store(&s->first_check, true);
        hold_checkpoint(s, from);
        /* A small first batch: FerretDB ends a tailable cursor whose first batch is short. */
        bson_t *filter =
            from.t ? BCON_NEW("ts", "{", "$gte", BCON_TIMESTAMP(from.t, from.i), "}") : bson_new();
        bson_t *opts = BCON_NEW("tailable", BCON_BOOL(true), "awaitData", BCON_BOOL(true),
                                "batchSize", BCON_INT32(1));
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(oplog, filter, opts, NULL);
        mongoc_cursor_set_max_await_time_ms(cur, AWAIT_MS);
        bson_destroy(filter);
        bson_destroy(opts);
        bool first = true, widened = false, answered = false;
        const bson_t *doc;
        bson_error_t e;
        memset(&e, 0, sizeof e);
        for (;;) {
            if (must_stop(s, err)) {
                ok = false;
                break;
            }
            if (atomic_load(&s->done))
                break;
            bool got = mongoc_cursor_next(cur, &doc);
            if (!answered) { /* the find has answered: where the source's oplog ends now */
                int64_t w;
                answered = true;
                if (mongoc_cursor_error(cur, &e))
                    break;
                if (!lm_stream_oplog_edge(poll, -1, &cont.upto, &w, &e)) {
                    if (e.code)
                        break;
                    cont.upto = from;
                }
                cont.due_ms = lm_time_mono_ms() + s->check_period_ms;
            }
            if (!got) {
                if (mongoc_cursor_error(cur, &e))
                    break;
                /* nothing new within the await time (or the cursor ended): the cursor has
                 * given all it will; a cutover can sweep up what is left and end */
                if (cutover_seen(s)) {
                    ok = final_sweep(s, oplog, &dec, &cont, &from, &from_wall, err);
                    break;
                }
                if (!mongoc_cursor_more(cur))
                    break;
                bool unchecked = cont.first || lm_optime_cmp(from, cont.from) > 0;
                if (unchecked && (cont.first || lm_time_mono_ms() >= cont.due_ms)) {
                    if (!(ok = check_continuity(s, oplog, &dec, &cont, &from, &from_wall, err)))
                        break;
                    continue;
                }
                idle_empty(s, poll, &idle, false);
                continue;
            }
            idle_reset(s, &idle);
            if (!widened) {
                mongoc_cursor_set_batch_size(cur, 1000);
                widened = true;
            }
            lm_optime_t ts;
            if (!entry_ts(doc, &ts, err)) {
                ok = false;
                break;
            }
            if (first && from.t && lm_optime_cmp(ts, from) > 0) {
                /* the entry we resume from is gone: changes after it may be too */
                ok = window_error(err, from, ts);
                break;
            }
            first = false;
            if (((cont.first && lm_optime_cmp(ts, cont.upto) > 0) ||
                 (!cont.first && lm_time_mono_ms() >= cont.due_ms)) &&
                !(ok = check_continuity(s, oplog, &dec, &cont, &from, &from_wall, err)))
                break;
            if (lm_optime_cmp(ts, from) <= 0 && from.t)
                continue; /* applied before */
            if (atomic_load(&s->done) && lm_optime_cmp(ts, s->cutoff) > 0)
                break;
            if (!cont.first || lm_optime_cmp(ts, cont.upto) <= 0)
                cont.seen++;
            if (!take_entry(s, &dec, doc, &from, &from_wall, err)) {
                ok = false;
                break;
            }
            attempt = 0;
        }
        bool failed_cursor = ok && (e.code || mongoc_cursor_error(cur, &e));
        mongoc_cursor_destroy(cur);
        if (!ok || atomic_load(&s->done))
            break;
        if (must_stop(s, err)) {
            ok = false;
            break;
        }
        if (failed_cursor) {
            ok = retry_cursor(s, &e, "reading local.oplog.rs", "",
                              ": the source user needs read access to the local database (or use "
                              "--capture changestream)",
                              "", &attempt, err);
        } else {
            lm_log_debug(NULL, "the oplog cursor ended; opening it again");
            lm_time_sleep_ms(100, s->o->stop); /* the cursor ended (FerretDB): open it again */
        }
    }
    /* Stopped (a signal, cancel): check what was read since the last check, so that the
     * checkpoint can move up to it and a restart does not replay it. */
    pthread_mutex_lock(&s->mu);
    pos = s->read_pos;
    pthread_mutex_unlock(&s->mu);
    int64_t n;
    lm_error_t cerr;
    bson_error_t ce;
    if (stopped(s) && !atomic_load(&s->failed) && cont.from.t &&
        lm_optime_cmp(pos, cont.from) > 0 && count_range(oplog, cont.from, pos, &n, &ce, &cerr) &&
        n == cont.seen)
        hold_checkpoint(s, pos);
    mongoc_collection_destroy(oplog);
    mongoc_client_pool_push(s->o->source, poll);
    lm_oplog_decoder_cleanup(&dec);
    return ok && !must_stop(s, err);
}

/* Reads the cluster-wide change stream from the read position. */
static bool read_change_stream(stream_t *s, lm_error_t *err)
{
    unsigned attempt = 0;
    bson_t *token = NULL;
    bool ok = true;
    mongoc_client_t *poll = lm_conn_pool_pop(s->o->source);
    idle_t idle = {{0, 0}, 0};
    while (ok && !atomic_load(&s->done) && !must_stop(s, err)) {
        lm_optime_t from;
        pthread_mutex_lock(&s->mu);
        from = s->read_pos;
        pthread_mutex_unlock(&s->mu);
        /* The $changeStream stage is written here, not by mongoc_client_watch: libmongoc
         * 1.23 does not pass showExpandedEvents (the DDL events) to the server. */
        bson_t stage, pipeline = BSON_INITIALIZER, arr, wrap;
        bson_init(&stage);
        BSON_APPEND_BOOL(&stage, "allChangesForCluster", true);
        BSON_APPEND_BOOL(&stage, "showExpandedEvents", true);
        if (token)
            BSON_APPEND_DOCUMENT(&stage, "resumeAfter", token);
        else
            BSON_APPEND_TIMESTAMP(&stage, "startAtOperationTime", from.t, from.i);
        BSON_APPEND_ARRAY_BEGIN(&pipeline, "pipeline", &arr);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &wrap);
        BSON_APPEND_DOCUMENT(&wrap, "$changeStream", &stage);
        bson_append_document_end(&arr, &wrap);
        bson_append_array_end(&pipeline, &arr);
        bson_destroy(&stage);
        bson_t *opts = BCON_NEW("batchSize", BCON_INT32(1000));
        mongoc_database_t *admin = mongoc_client_get_database(s->src, "admin");
        mongoc_cursor_t *cs = mongoc_database_aggregate(admin, &pipeline, opts, NULL);
        mongoc_cursor_set_max_await_time_ms(cs, AWAIT_MS);
        mongoc_database_destroy(admin);
        bson_destroy(opts);
        bson_destroy(&pipeline);
        const bson_t *ev;
        bson_error_t e;
        for (;;) {
            if (must_stop(s, err)) {
                ok = false;
                break;
            }
            if (atomic_load(&s->done))
                break;
            if (!mongoc_cursor_next(cs, &ev)) {
                if (mongoc_cursor_error(cs, &e) || !mongoc_cursor_more(cs))
                    break;
                /* change streams carry no no-ops: idle time moves the position on */
                idle_empty(s, poll, &idle, true);
                continue;
            }
            idle_reset(s, &idle);
            lm_optime_t ts;
            int64_t wall;
            lm_oplist_t ops = {0};
            lm_optime_t prev;
            int64_t prev_wall;
            pthread_mutex_lock(&s->mu);
            prev = s->read_pos;
            prev_wall = s->read_wall;
            pthread_mutex_unlock(&s->mu);
            if (!lm_event_decode(ev, &ops, &ts, &wall, err)) {
                ok = false;
                break;
            }
            if (atomic_load(&s->done) && lm_optime_cmp(ts, s->cutoff) > 0) {
                lm_oplist_clear(&ops);
                break;
            }
            /* events of one transaction share a clusterTime: the position before them is
             * the one before that time, so a restart replays the whole transaction */
            if (lm_optime_cmp(ts, prev) == 0 && prev.i > 0)
                prev.i--;
            if (!dispatch(s, &ops, prev, prev_wall, err)) {
                lm_oplist_clear(&ops);
                ok = false;
                break;
            }
            publish(s, ts, wall, false, NULL);
            bson_iter_t tok; /* the event's _id is its resume token */
            if (bson_iter_init_find(&tok, ev, "_id") && BSON_ITER_HOLDS_DOCUMENT(&tok)) {
                const uint8_t *data;
                uint32_t len;
                bson_iter_document(&tok, &len, &data);
                if (token)
                    bson_destroy(token);
                token = bson_new_from_data(data, len);
            }
            attempt = 0;
        }
        bool failed_stream = ok && mongoc_cursor_error(cs, &e);
        mongoc_cursor_destroy(cs);
        if (!ok || atomic_load(&s->done))
            break;
        if (failed_stream)
            ok = retry_cursor(
                s, &e, "the cluster-wide change stream", "change stream resume point lost; ",
                ": the source user needs the changeStream and find privileges on "
                "every database",
                ": use --capture oplog if the source cannot open change streams", &attempt, err);
    }
    if (token)
        bson_destroy(token);
    mongoc_client_pool_push(s->o->source, poll);
    return ok && !must_stop(s, err);
}

/* ---- the cutover estimate ----
 *
 * The look-ahead: what the source holds beyond the reader, read by the monitor while the
 * target is behind (never while caught up, never during the cutover): the number of
 * entries and each DDL entry's kind and position, so that DDL the reader has not reached
 * (index builds replayed one after another take seconds each) counts before a cutover is
 * called ready. One query with a small projection; on SecantusDB it scans the whole oplog,
 * so it runs at most every LOOK_MS (LOOK_BEHIND_MS while the lag alone is over the
 * threshold) and 100x its last duration apart, as the other scans (on SecantusDB the source
 * answers nobody while it scans: at 20x a look ran every 20-28 s under a live load and each
 * showed as a lag spike over 1 s; docs/benchmarks.md), and when a DDL starts (5x apart).
 * Until the first look, a stream that is behind is not ready: what waits is unknown. */
typedef struct {
    bool valid;
    unsigned seq;      /* s->ddl_seq when it ran */
    long long read_at; /* s->entries_read when it ran */
    int64_t entries;   /* entries after the reader's position that are not DDL */
    int n_ddl;
    lm_optime_t ddl_ts[LOOK_MAX_DDL];
    unsigned char ddl_kind[LOOK_MAX_DDL];
    int64_t last_ms, cost_ms;
} look_t;

static void look_ahead(stream_t *s, mongoc_client_t *src, lm_optime_t from, look_t *la)
{
    static const char *const keys[] = {"create",      "drop",          "createIndexes",
                                       "dropIndexes", "deleteIndexes", "commitIndexBuild",
                                       "collMod",     "dropDatabase"};
    mongoc_collection_t *oplog = mongoc_client_get_collection(src, "local", "oplog.rs");
    bson_t *filter = BCON_NEW("ts", "{", "$gt", BCON_TIMESTAMP(from.t, from.i), "}");
    bson_t *opts =
        BCON_NEW("sort", "{", "$natural", BCON_INT32(1), "}", "batchSize", BCON_INT32(10000));
    bson_t proj; /* ts, op and the DDL commands' names under o: small whatever the entry */
    char path[40];
    int64_t t0 = lm_time_mono_ms();
    bson_iter_t it;
    bson_append_document_begin(opts, "projection", -1, &proj);
    BSON_APPEND_INT32(&proj, "_id", 0);
    BSON_APPEND_INT32(&proj, "ts", 1);
    BSON_APPEND_INT32(&proj, "op", 1);
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        snprintf(path, sizeof path, "o.%s", keys[k]);
        BSON_APPEND_INT32(&proj, path, 1);
    }
    bson_append_document_end(opts, &proj);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(oplog, filter, opts, NULL);
    const bson_t *doc;
    bson_error_t e;
    la->entries = 0;
    la->n_ddl = 0;
    la->read_at = atomic_load(&s->entries_read);
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t o;
        lm_optime_t ts = {0, 0};
        bool ddl = false;
        if (bson_iter_init_find(&it, doc, "ts") && BSON_ITER_HOLDS_TIMESTAMP(&it))
            bson_iter_timestamp(&it, &ts.t, &ts.i);
        if (bson_iter_init_find(&it, doc, "op") && BSON_ITER_HOLDS_UTF8(&it) &&
            strcmp(bson_iter_utf8(&it, NULL), "c") == 0 && bson_iter_init_find(&it, doc, "o") &&
            BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &o) && bson_iter_next(&o)) {
            ddl = true;
            if (la->n_ddl < LOOK_MAX_DDL) {
                la->ddl_ts[la->n_ddl] = ts;
                la->ddl_kind[la->n_ddl++] = (unsigned char)ddl_kind_of_cmd(bson_iter_key(&o));
            }
        }
        if (!ddl)
            la->entries++;
    }
    la->valid = !mongoc_cursor_error(cur, &e);
    if (!la->valid)
        lm_log_debug(NULL, "looking ahead in the source's oplog failed: %s", e.message);
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    mongoc_collection_destroy(oplog);
    la->last_ms = lm_time_mono_ms();
    la->cost_ms = la->last_ms - t0;
    lm_log_debug(NULL,
                 "looked ahead in the source's oplog: %lld entries and %d DDL beyond the reader, "
                 "%lld ms",
                 (long long)la->entries, la->n_ddl, (long long)la->cost_ms);
}

/* estimatedCutoverSeconds now: the look-ahead (if any) less what the reader has taken
 * since, the appliers' queues, the DDL running now. */
static double estimate(stream_t *s, const look_t *la, int64_t queued_ops)
{
    int queued[LM_DDL_KINDS] = {0};
    lm_est_model_t est;
    int running;
    double running_s;
    lm_optime_t r;
    int64_t unread = 0;
    pthread_mutex_lock(&s->mu);
    est = s->est;
    running = s->ddl_running;
    running_s = (double)(lm_time_mono_ms() - s->ddl_started_ms) / 1e3;
    r = s->read_pos;
    pthread_mutex_unlock(&s->mu);
    if (la && la->valid) {
        for (int i = 0; i < la->n_ddl; i++)
            if (lm_optime_cmp(la->ddl_ts[i], r) > 0)
                queued[la->ddl_kind[i]]++;
        if (running >= 0 && queued[running] > 0)
            queued[running]--; /* the reader publishes an entry after running it */
        unread = la->entries - (atomic_load(&s->entries_read) - la->read_at);
    }
    return lm_est_cutover_seconds(&est, queued_ops + (unread > 0 ? unread : 0), queued, running,
                                  running_s);
}

/* ---- the monitor ---- */

static void monitor_fail(stream_t *s, const lm_error_t *err)
{
    if (!atomic_load(&s->failed)) {
        s->mon_err = *err;
        atomic_store(&s->failed, true);
    }
}

/* Sleeps one tick, in short slices so that a cutover request (the status flag; a gate,
 * which may do I/O, is asked once a tick) or the end of the stream is seen within
 * SLICE_MS. */
static void monitor_sleep(stream_t *s)
{
    for (int slept = 0; slept < TICK_MS && !atomic_load(&s->mon_stop); slept += SLICE_MS) {
        if (!s->o->cutover_gate && cutover_seen(s))
            return;
        lm_time_sleep_ms(SLICE_MS, NULL);
    }
}

static void *monitor_main(void *arg)
{
    stream_t *s = arg;
    mongoc_client_t *src = lm_conn_pool_pop(s->o->source);
    mongoc_client_t *dst = lm_conn_pool_pop(s->o->target);
    lm_stream_status_t ss;
    lm_error_t err;
    int64_t last_tick = lm_time_mono_ms(), last_ckpt = lm_time_mono_ms(),
            last_window = lm_time_mono_ms(), last_rate = lm_time_mono_ms();
    long long last_ops = atomic_load(&s->st->ops_applied), last_lat = 0, last_lat_n = 0;
    lm_optime_t latest = {0, 0}, ckpt = s->o->from, window_prev;
    int64_t latest_wall = 0, caught_up_at = 0;
    int64_t window_cost = 0, last_queued = 0;
    look_t *la = calloc(1, sizeof *la); /* NULL: no look-ahead, the estimate goes without */

    lm_status_get_stream(s->st, &ss);
    pthread_mutex_lock(&s->mu);
    window_prev = s->read_pos;
    pthread_mutex_unlock(&s->mu);
    while (!atomic_load(&s->mon_stop)) {
        monitor_sleep(s);
        int64_t now = lm_time_mono_ms();
        bool stalled = now - last_tick > STALL_MS;
        last_tick = now;
        int64_t a_wall;
        bool pending;
        lm_optime_t a = applied_position(s, &a_wall, &pending);
        lm_optime_t wr;
        int64_t wr_wall;
        pthread_mutex_lock(&s->mu);
        wr = s->write_read;
        wr_wall = s->write_read_wall;
        pthread_mutex_unlock(&s->mu);
        /* caught up: the cursor has nothing more and nothing waits to be applied */
        bool caught_up = !pending && atomic_load(&s->idle_streak) >= 2;
        int64_t wall_now = lm_time_now_ms();
        if (caught_up)
            caught_up_at = wall_now;
        bool cutting_over = cutover_seen(s);
        if (lm_optime_cmp(wr, latest) > 0) {
            latest = wr;
            latest_wall = wr_wall;
        }
        ss.active = true;
        snprintf(ss.capture, sizeof ss.capture, "%s", s->capture);
        ss.applied_t = a.t, ss.applied_i = a.i, ss.applied_wall_ms = a_wall;
        ss.source_t = latest.t, ss.source_i = latest.i, ss.source_wall_ms = latest_wall;
        ss.cutover_requested_ms = atomic_load(&s->cut_wall);
        /* Lag: the oldest write not applied yet is newer than both the applied position
         * and the last moment the target was caught up. */
        ss.lag_seconds = lm_lag_seconds(caught_up, time_of(a, a_wall), caught_up_at, wall_now);
        ss.optime_gap_seconds = caught_up                      ? 0
                                : lm_optime_cmp(latest, a) > 0 ? (double)(latest.t - a.t)
                                                               : ss.lag_seconds;
        int64_t queued_ops = lm_apply_queued(s->apply);
        bool running_ddl;
        unsigned seq;
        pthread_mutex_lock(&s->mu);
        running_ddl = s->ddl_running >= 0;
        seq = s->ddl_seq;
        lm_optime_t r = s->read_pos;
        pthread_mutex_unlock(&s->mu);
        if (la && caught_up && !running_ddl) { /* the reader is at the source's end */
            la->valid = true;
            la->entries = 0;
            la->n_ddl = 0;
            la->read_at = atomic_load(&s->entries_read);
        }
        /* what waits on the source was never looked at (or the look failed): not ready */
        bool unknown = la && !la->valid && s->oplog_readable;
        ss.estimated_cutover_seconds = estimate(s, la, queued_ops);
        ss.ready_for_cutover =
            !unknown &&
            lm_est_ready(ss.lag_seconds, ss.estimated_cutover_seconds, s->job->cutover_lag_ms);
        if (now - last_rate >= 1000) {
            long long ops = atomic_load(&s->st->ops_applied);
            long long lat = atomic_load(&s->st->latency_sum_ms),
                      lat_n = atomic_load(&s->st->latency_n);
            ss.ops_per_second = (double)(ops - last_ops) * 1000.0 / (double)(now - last_rate);
            if (last_queued > 0) { /* a backlog waited all along: the rate is the capacity */
                pthread_mutex_lock(&s->mu);
                lm_est_rate(&s->est, ss.ops_per_second);
                pthread_mutex_unlock(&s->mu);
            }
            last_queued = queued_ops;
            ss.apply_latency_ms =
                lat_n > last_lat_n ? (double)(lat - last_lat) / (double)(lat_n - last_lat_n) : 0;
            last_ops = ops, last_lat = lat, last_lat_n = lat_n, last_rate = now;
        }
        lm_status_set_stream(s->st, &ss);
        /* then the look-ahead, when due (it may take a while: the status is out first) */
        int64_t look_period =
            lm_lag_ready(ss.lag_seconds, s->job->cutover_lag_ms) ? LOOK_MS : LOOK_BEHIND_MS;
        int64_t look_gap = LOOK_MS; /* after a DDL started, or when nothing is known */
        if (la && look_period < LOOK_COST_FACTOR * la->cost_ms)
            look_period = LOOK_COST_FACTOR * la->cost_ms;
        if (la && look_gap < LOOK_GAP_FACTOR * la->cost_ms)
            look_gap = LOOK_GAP_FACTOR * la->cost_ms;
        if (la && (!caught_up || running_ddl) && s->oplog_readable && !cutting_over &&
            now - la->last_ms >= (!la->valid || seq != la->seq ? look_gap : look_period)) {
            look_ahead(s, src, r, la);
            la->seq = seq;
            ss.estimated_cutover_seconds = estimate(s, la, queued_ops);
            ss.ready_for_cutover =
                lm_est_ready(ss.lag_seconds, ss.estimated_cutover_seconds, s->job->cutover_lag_ms);
            lm_status_set_stream(s->st, &ss);
        }

        /* A change stream's cutoff: the second empty answer since the request waited from
         * after it, so every event before the request was handed on before it ended, and
         * the read position then moved past the source's clock as read after the request
         * (idle_empty). What was handed on is applied before the end (the drain). The
         * window is checked once more up to there (the oplog reader's final sweep proves
         * it itself: see final_sweep, which also decides its cutoff). */
        bool cs_cutoff = s->use_cs && cutting_over && !atomic_load(&s->done) &&
                         atomic_load(&s->empties) >= atomic_load(&s->cut_empties) + 2;
        /* no entry discarded before the reader got to it: every 30 s (or 100x what the
         * query costs: SecantusDB scans its whole oplog for it), after a pause, and at a
         * change stream's cutoff */
        lm_optime_t reached;
        pthread_mutex_lock(&s->mu);
        reached = s->read_pos;
        pthread_mutex_unlock(&s->mu);
        if (s->oplog_readable &&
            (stalled || cs_cutoff ||
             now - last_window >= (WINDOW_CHECK_MS > CHECK_COST_FACTOR * window_cost
                                       ? WINDOW_CHECK_MS
                                       : CHECK_COST_FACTOR * window_cost))) {
            int64_t t0 = lm_time_mono_ms();
            if (!check_window(s, src, window_prev, &err)) {
                monitor_fail(s, &err);
                break;
            }
            window_prev = reached;
            pthread_mutex_lock(&s->mu);
            s->window_need = window_prev;
            pthread_mutex_unlock(&s->mu);
            last_window = lm_time_mono_ms();
            window_cost = last_window - t0;
            lm_log_debug(NULL, "oplog window check: %lld ms", (long long)window_cost);
            if (cs_cutoff)
                cut_step(s, "final oplog window check (%lld ms)", (long long)window_cost);
        }
        int64_t c_wall;
        lm_optime_t c = checkpoint_position(s, &c_wall);
        /* a part whose lease ran out writes no checkpoint: another host may own its shard
         * and have recorded a newer position under the same key */
        if (lm_optime_cmp(c, ckpt) != 0 && now - last_ckpt >= CHECKPOINT_MS &&
            !lm_lease_out(s->job->lease_ok_ms, s->job->lease_ms)) {
            if (lm_meta_save_position(dst, s->o->job_id, NULL, c.t, c.i, c_wall, s->capture, &err))
                ckpt = c;
            else
                lm_log_warn(NULL, "%s; will try again", err.message);
            last_ckpt = now;
        }
        if (cs_cutoff) {
            s->cutoff = reached;
            atomic_store(&s->done, true);
            cut_step(s, "the change stream is past the request at Timestamp(%u, %u)", s->cutoff.t,
                     s->cutoff.i);
        }
    }
    free(la);
    mongoc_client_pool_push(s->o->source, src);
    mongoc_client_pool_push(s->o->target, dst);
    return NULL;
}

/* ---- choosing the capture mode ---- */

/* Whether the source's oplog can be read. A source that cannot be reached (restarted,
 * network cut) is asked again with backoff until it answers or the job stops: taken for
 * "not readable", that failed a resumed oplog job ("give the source user read access") and
 * would switch a new `auto` job to change streams (found by tests/soak). */
static bool oplog_readable(stream_t *s, bson_error_t *e)
{
    for (unsigned attempt = 0;; attempt++) {
        lm_optime_t t;
        int64_t w;
        memset(e, 0, sizeof *e);
        if (lm_stream_oplog_edge(s->src, -1, &t, &w, e) || e->code == 0)
            return true;
        if (!lm_conn_error_transient(e) || stopped(s))
            return false;
        int64_t wait = lm_time_backoff_ms(attempt, 100, 5000);
        lm_log_warn(NULL,
                    "source: cannot reach it to read local.oplog.rs (%s); trying again in %lld ms",
                    e->message, (long long)wait);
        lm_time_sleep_ms(wait, s->o->stop);
    }
}

static bool choose_capture(stream_t *s, lm_error_t *err)
{
    bson_error_t e;
    s->oplog_readable = oplog_readable(s, &e);
    if (!s->oplog_readable && stopped(s))
        return lm_error_set(err, LM_ERR_CANCELLED, "stopped while streaming changes");
    int mode = s->job->capture;
    if (mode == LM_JOB_CAPTURE_AUTO && s->o->capture && s->o->capture[0])
        mode = strcmp(s->o->capture, "changestream") == 0 ? LM_JOB_CAPTURE_CHANGESTREAM
                                                          : LM_JOB_CAPTURE_OPLOG;
    if (mode == LM_JOB_CAPTURE_OPLOG && !s->oplog_readable)
        return lm_error_set(err, lm_mongo_error_class(e.code),
                            "source: cannot read local.oplog.rs (%s): give the source user read "
                            "access to the local database, or use --capture changestream",
                            e.message);
    if (mode == LM_JOB_CAPTURE_AUTO) {
        mode = s->oplog_readable ? LM_JOB_CAPTURE_OPLOG : LM_JOB_CAPTURE_CHANGESTREAM;
        lm_log_info(NULL, "capture: %s (auto: %s)", s->oplog_readable ? "oplog" : "changestream",
                    s->oplog_readable ? "the source's local.oplog.rs is readable"
                                      : "local.oplog.rs is not readable, so a change stream");
    } else {
        lm_log_info(NULL, "capture: %s", mode == LM_JOB_CAPTURE_OPLOG ? "oplog" : "changestream");
    }
    s->use_cs = mode == LM_JOB_CAPTURE_CHANGESTREAM;
    snprintf(s->capture, sizeof s->capture, "%s", s->use_cs ? "changestream" : "oplog");
    return true;
}

bool lm_stream_run(const lm_stream_opts_t *o, lm_error_t *err)
{
    stream_t s;
    bool ok;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.job = o->job;
    s.st = o->status;
    s.read_pos = s.safe_pos = o->from;
    s.check_period_ms = CHECK_MS;
    s.read_wall = s.safe_wall = o->from_wall_ms;
    s.window_need = o->from; /* the window check below proves it */
    lm_est_init(&s.est);
    s.ddl_running = -1;
    pthread_mutex_init(&s.mu, NULL);
    lm_error_init(&s.mon_err);
    s.src = lm_conn_pool_pop(o->source);
    s.dst = lm_conn_pool_pop(o->target);

    ok = choose_capture(&s, err) && check_window(&s, s.src, o->from, err);
    if (ok) {
        lm_apply_opts_t ao = {.source = o->source,
                              .target = o->target,
                              .workers = s.job->apply_workers > 0 ? (int)s.job->apply_workers
                                                                  : LM_APPLY_AUTO_MAX,
                              .workers_fixed = s.job->apply_workers > 0,
                              .lag_target_ms = s.job->cutover_lag_ms,
                              .buffer_bytes = s.job->buffer_mb << 20,
                              .status = s.st,
                              .stop = o->stop,
                              .lease_ok_ms = s.job->lease_ok_ms,
                              .lease_ms = s.job->lease_ms};
        s.apply = lm_apply_start(&ao, err);
        ok = s.apply != NULL;
    }
    if (ok) {
        lm_status_set_phase(s.st, LM_PHASE_STREAMING);
        lm_log_info(NULL,
                    "streaming the source's changes from Timestamp(%u, %u) with %s%lld apply "
                    "workers",
                    o->from.t, o->from.i, s.job->apply_workers > 0 ? "" : "up to ",
                    s.job->apply_workers > 0 ? (long long)s.job->apply_workers
                                             : (long long)LM_APPLY_AUTO_MAX);
        s.mon_started = pthread_create(&s.mon, NULL, monitor_main, &s) == 0;
        if (!s.mon_started)
            ok = lm_error_set(err, LM_ERR_INTERNAL, "cannot start the stream monitor");
    }
    if (ok)
        ok = s.use_cs ? read_change_stream(&s, err) : read_oplog(&s, err);
    cut_step(&s, "the reader stopped");
    if (ok) /* cutover: every change up to the cutoff applied, nothing after it */
        ok = lm_apply_drain(s.apply, err);
    cut_step(&s, "every change read is applied");
    if (s.mon_started) {
        atomic_store(&s.mon_stop, true);
        pthread_join(s.mon, NULL);
    }
    cut_step(&s, "the monitor stopped");
    if (ok && atomic_load(&s.failed)) { /* the final window check failed */
        *err = s.mon_err;
        ok = false;
    }
    int64_t wall = 0;
    lm_optime_t a = checkpoint_position(&s, &wall);
    lm_apply_stop(s.apply);
    s.apply = NULL;
    bool leased_out = lm_lease_out(s.job->lease_ok_ms, s.job->lease_ms);
    if (leased_out && s.capture[0] && a.t)
        lm_log_warn(NULL,
                    "the lease of this part ran out: its last position is not recorded (another "
                    "host may run the shard now and record its own)");
    if (s.capture[0] && a.t && !leased_out) {
        lm_error_t cerr;
        if (!lm_meta_save_position(s.dst, o->job_id, ok ? lm_phase_name(LM_PHASE_COMPLETE) : NULL,
                                   a.t, a.i, wall, s.capture, &cerr)) {
            if (ok) {
                *err = cerr;
                ok = false;
            } else {
                lm_log_warn(NULL, "%s", cerr.message);
            }
        }
    }
    cut_step(&s, "final checkpoint written");
    if (ok) {
        lm_stream_status_t ss;
        lm_log_info(NULL, "cutover: the target holds every change up to Timestamp(%u, %u)", a.t,
                    a.i);
        lm_status_get_stream(s.st, &ss);
        ss.cutover_requested_ms = atomic_load(&s.cut_wall);
        ss.applied_t = ss.final_t = a.t;
        ss.applied_i = ss.final_i = a.i;
        ss.lag_seconds = 0;
        ss.estimated_cutover_seconds = 0;
        ss.optime_gap_seconds = 0;
        lm_status_set_stream(s.st, &ss);
    }
    mongoc_client_pool_push(o->source, s.src);
    mongoc_client_pool_push(o->target, s.dst);
    pthread_mutex_destroy(&s.mu);
    return ok;
}
