/* lm_apply: see lm_apply.h.
 *
 * Threads and what they own:
 *  - the stream's thread (the producer) pushes ops, drains, asks for the pending position
 *    and stops the pool;
 *  - each worker owns its client and its batch; its queue, q_bytes, busy and busy_prev*
 *    are shared with the producer under the worker's mu;
 *  - a->stopping and a->failed are atomics, set by lm_apply_stop / fail and then broadcast
 *    under every worker's mu, so a waiter either sees the flag before it waits or is woken.
 * Every wait is a plain condition-variable wait on a predicate the other side signals: a
 * worker waits for work (can_pop) or the stop; the producer waits for room (can_push) or
 * for a worker to go idle (idle). The job's external stop and cancel flags are noticed
 * between batches: a worker that sees them leaves its loop and wakes the producer on its
 * way out, and the stream's thread, which polls them, stops the pool. */
#include "lm_apply.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lm_batch.h"
#include "lm_catalog.h"
#include "lm_conn.h"
#include "lm_indexes.h"
#include "lm_log.h"
#include "lm_mongo_error.h"
#include "lm_time.h"

#define DUP_RETRY_MS 30000 /* a unique-key conflict that outlives this is real */

typedef struct worker {
    struct lm_apply *a;
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t can_pop, can_push, idle;
    lm_oplist_t q;
    int64_t q_bytes;
    bool busy;
    bool exited; /* the worker left its loop (stop or failure) */
    lm_optime_t busy_prev;
    int64_t busy_prev_wall;
    mongoc_client_t *dst, *src;
} worker_t;

struct lm_apply {
    lm_apply_opts_t o;
    worker_t *w;
    int n;
    int64_t per_worker_bytes;
    /* the producer's: how many workers take changes now, and their controller */
    int active;
    lm_batch_tune_t tune;
    atomic_llong linger_ms; /* how long a worker lets changes gather (0: none) */
    atomic_int flushing;    /* drains under way: nothing gathers */
    atomic_bool hurry;      /* the cutover: nothing gathers any more */
    atomic_llong busy_ms;   /* summed over workers: time spent writing */
    atomic_bool failed, stopping;
    atomic_bool lease_out; /* the lease ran out: logged once, then stopping */
    pthread_mutex_t err_mu;
    lm_error_t err;
};

static int64_t op_bytes(const lm_op_t *op)
{
    return (int64_t)sizeof *op + (op->id ? op->id->len : 0) + (op->doc ? op->doc->len : 0);
}

int lm_apply_worker_of(const lm_op_t *op, int workers)
{
    uint64_t h = 1469598103934665603ull;
    const uint8_t *parts[3] = {(const uint8_t *)op->db, (const uint8_t *)op->coll, NULL};
    size_t lens[3] = {strlen(op->db), strlen(op->coll), 0};
    if (op->id) {
        parts[2] = bson_get_data(op->id);
        lens[2] = op->id->len;
    }
    for (int p = 0; p < 3; p++) {
        for (size_t i = 0; parts[p] && i < lens[p]; i++)
            h = (h ^ parts[p][i]) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull; /* separator */
    }
    return workers > 0 ? (int)(h % (uint64_t)workers) : 0;
}

/* The lease of a daemon's part ran out (the control plane has not answered for lease_ms):
 * its shards may be another host's now, so nothing more is written. Checked before every
 * write, so a process paused past its lease writes nothing once resumed. */
static bool lease_out(struct lm_apply *a)
{
    if (atomic_load(&a->lease_out))
        return true;
    if (!lm_lease_out(a->o.lease_ok_ms, a->o.lease_ms))
        return false;
    if (!atomic_exchange(&a->lease_out, true))
        lm_log_warn(NULL,
                    "the lease of this part ran out (no answer from the control plane for %lld "
                    "s): the apply writes nothing more",
                    (long long)(a->o.lease_ms / 1000));
    return true;
}

static bool stopping(struct lm_apply *a)
{
    return atomic_load(&a->stopping) || atomic_load(&a->failed) || (a->o.stop && *a->o.stop) ||
           (a->o.status && a->o.status->cancel) || lease_out(a);
}

static void fail(struct lm_apply *a, const lm_error_t *err)
{
    pthread_mutex_lock(&a->err_mu);
    if (lease_out(a)) /* a write refused by the target's fence (lm_conn_pool_pop): a stop */
        atomic_store(&a->stopping, true);
    else if (!atomic_load(&a->failed)) {
        a->err = *err;
        atomic_store(&a->failed, true);
    }
    pthread_mutex_unlock(&a->err_mu);
    for (int i = 0; i < a->n; i++) {
        pthread_mutex_lock(&a->w[i].mu);
        pthread_cond_broadcast(&a->w[i].can_push);
        pthread_cond_broadcast(&a->w[i].idle);
        pthread_cond_broadcast(&a->w[i].can_pop);
        pthread_mutex_unlock(&a->w[i].mu);
    }
}

bool lm_apply_failed(lm_apply_t *a, lm_error_t *err)
{
    if (!atomic_load(&a->failed))
        return false;
    pthread_mutex_lock(&a->err_mu);
    if (err)
        *err = a->err;
    pthread_mutex_unlock(&a->err_mu);
    return true;
}

static bool why_not(lm_apply_t *a, lm_error_t *err)
{
    if (lm_apply_failed(a, err))
        return false;
    return lm_error_set(err, LM_ERR_CANCELLED, "stopped while applying changes");
}

/* Sleeps ms unless the job stops; false when it does. */
static bool pause_ms(struct lm_apply *a, int64_t ms)
{
    for (int64_t t = 0; t < ms; t += 50) {
        if (stopping(a))
            return false;
        lm_time_sleep_ms(50, NULL);
    }
    return !stopping(a);
}

/* ---- applying ---- */

static void count_applied(struct lm_apply *a, lm_op_t **ops, size_t n)
{
    lm_status_t *st = a->o.status;
    int64_t now = lm_time_now_ms(), lat = 0;
    for (size_t i = 0; i < n; i++)
        lat += now - ops[i]->queued_ms;
    atomic_fetch_add(&st->ops_applied, (long long)n);
    atomic_fetch_add(&st->latency_sum_ms, lat);
    atomic_fetch_add(&st->latency_n, (long long)n);
}

/* Copies the source's current document over the target's (or deletes it when the source
 * has none): the answer for an update that cannot be replayed as such. */
static bool refetch(worker_t *w, const lm_op_t *op, lm_error_t *err)
{
    struct lm_apply *a = w->a;
    unsigned attempt = 0;
    if (!w->src)
        w->src = lm_conn_pool_pop(a->o.source);
    for (;;) {
        bson_error_t e;
        const bson_t *doc;
        bool ok;
        mongoc_collection_t *sc = mongoc_client_get_collection(w->src, op->db, op->coll);
        mongoc_collection_t *dc = mongoc_client_get_collection(w->dst, op->db, op->coll);
        bson_t *fopts = BCON_NEW("limit", BCON_INT64(1));
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(sc, op->id, fopts, NULL);
        bool found = mongoc_cursor_next(cur, &doc);
        ok = !mongoc_cursor_error(cur, &e);
        if (ok && found) {
            bson_t *ropts = BCON_NEW("upsert", BCON_BOOL(true), "bypassDocumentValidation",
                                     BCON_BOOL(true), "validate", BCON_BOOL(false));
            ok = mongoc_collection_replace_one(dc, op->id, doc, ropts, NULL, &e);
            bson_destroy(ropts);
        } else if (ok) {
            ok = mongoc_collection_delete_one(dc, op->id, NULL, NULL, &e);
        }
        mongoc_cursor_destroy(cur);
        bson_destroy(fopts);
        mongoc_collection_destroy(sc);
        mongoc_collection_destroy(dc);
        if (ok) {
            atomic_fetch_add(&a->o.status->ops_refetched, 1);
            return true;
        }
        if (!lm_conn_error_transient(&e))
            return lm_error_set(err, lm_mongo_error_class(e.code),
                                "%s.%s: cannot copy a changed document from the source to the "
                                "target: %s",
                                op->db, op->coll, e.message);
        if (lease_out(a)) /* refused by the target's fence: no retry */
            return why_not(a, err);
        int64_t wait = lm_time_backoff_ms(attempt++, 100, 5000);
        lm_log_warn(NULL, "%s.%s: %s; retrying in %lld ms", op->db, op->coll, e.message,
                    (long long)wait);
        if (!pause_ms(a, wait))
            return why_not(a, err);
    }
}

/* Adds op's writes to bulk; map[k] = op index for every write added. */
static bool add_op(mongoc_bulk_operation_t *bulk, const lm_op_t *op, bson_t *upsert_opts,
                   bson_t *plain_opts, bson_error_t *e)
{
    switch (op->kind) {
    case LM_OP_INSERT: return mongoc_bulk_operation_insert_with_opts(bulk, op->doc, plain_opts, e);
    case LM_OP_REPLACE:
        return mongoc_bulk_operation_replace_one_with_opts(bulk, op->id, op->doc, upsert_opts, e);
    case LM_OP_DELETE: return mongoc_bulk_operation_remove_one_with_opts(bulk, op->id, NULL, e);
    case LM_OP_UPDATE: {
        bson_iter_t it;
        if (!op->doc || !bson_iter_init(&it, op->doc))
            return true;
        while (bson_iter_next(&it)) {
            const uint8_t *data;
            uint32_t len;
            bson_t spec;
            bson_iter_document(&it, &len, &data);
            if (!bson_init_static(&spec, data, len) ||
                !mongoc_bulk_operation_update_one_with_opts(bulk, op->id, &spec, plain_opts, e))
                return false;
        }
        return true;
    }
    default: return true;
    }
}

static int writes_of(const lm_op_t *op)
{
    if (op->kind == LM_OP_UPDATE)
        return op->doc ? (int)bson_count_keys(op->doc) : 0;
    return op->kind == LM_OP_REFETCH ? 0 : 1;
}

/* The index (into the bulk) and code of the first write error in a bulk reply. */
static bool first_write_error(const bson_t *reply, uint32_t *index, uint32_t *code, char *msg,
                              size_t msgsz)
{
    bson_iter_t it, arr, f;
    if (!bson_iter_init_find(&it, reply, "writeErrors") || !bson_iter_recurse(&it, &arr) ||
        !bson_iter_next(&arr) || !bson_iter_recurse(&arr, &f))
        return false;
    *index = 0, *code = 0, msg[0] = 0;
    while (bson_iter_next(&f)) {
        if (strcmp(bson_iter_key(&f), "index") == 0)
            *index = (uint32_t)bson_iter_as_int64(&f);
        else if (strcmp(bson_iter_key(&f), "code") == 0)
            *code = (uint32_t)bson_iter_as_int64(&f);
        else if (strcmp(bson_iter_key(&f), "errmsg") == 0 && BSON_ITER_HOLDS_UTF8(&f))
            bson_snprintf(msg, msgsz, "%s", bson_iter_utf8(&f, NULL));
    }
    return true;
}

/* Takes back count_applied(a, ops, n): those are applied again. */
static void uncount_applied(struct lm_apply *a, lm_op_t **ops, size_t n)
{
    lm_status_t *st = a->o.status;
    int64_t now = lm_time_now_ms(), lat = 0;
    for (size_t i = 0; i < n; i++)
        lat += now - ops[i]->queued_ms;
    atomic_fetch_sub(&st->ops_applied, (long long)n);
    atomic_fetch_sub(&st->latency_sum_ms, lat);
    atomic_fetch_sub(&st->latency_n, (long long)n);
}

/* Applies ops[0..n) (one collection) in order. orig, when not NULL, is the order the
 * changes were made in, and ops an lm_batch_order of it: a duplicate key that is not an
 * insert's own _id (a unique index, whose values two changes of the batch may trade) sends
 * the whole batch again in orig's order, where the source's order of those changes holds
 * (everything applied is idempotent). */
static bool apply_batch(worker_t *w, lm_op_t **ops, size_t n, lm_op_t **orig, lm_error_t *err)
{
    struct lm_apply *a = w->a;
    size_t i = 0;
    int64_t dup_since = 0;
    unsigned attempt = 0;
    mongoc_collection_t *coll = mongoc_client_get_collection(w->dst, ops[0]->db, ops[0]->coll);
    bson_t *bulk_opts = BCON_NEW("ordered", BCON_BOOL(true));
    bson_t *upsert_opts = BCON_NEW("upsert", BCON_BOOL(true), "validate", BCON_BOOL(false));
    bson_t *plain_opts = BCON_NEW("validate", BCON_BOOL(false));
    size_t total = 1;
    for (size_t j = 0; j < n; j++)
        total += (size_t)writes_of(ops[j]);
    size_t *map = malloc(sizeof *map * total);
    bool ok = map != NULL;
    if (!ok)
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory");

    while (ok && i < n) {
        if (ops[i]->kind == LM_OP_REFETCH) {
            ok = refetch(w, ops[i], err);
            if (ok)
                count_applied(a, ops + i, 1);
            i++;
            continue;
        }
        /* a bulk write of ops[i..end) */
        size_t end = i, nw = 0;
        bson_error_t e;
        bson_t reply;
        mongoc_bulk_operation_t *bulk =
            mongoc_collection_create_bulk_operation_with_opts(coll, bulk_opts);
        mongoc_bulk_operation_set_bypass_document_validation(bulk, true);
        bool built = true;
        while (end < n && ops[end]->kind != LM_OP_REFETCH) {
            int k = writes_of(ops[end]);
            if (!add_op(bulk, ops[end], upsert_opts, plain_opts, &e)) {
                built = false;
                break;
            }
            for (int j = 0; j < k; j++)
                map[nw++] = end;
            end++;
        }
        if (!built) {
            /* libmongoc refused the op itself (a malformed update): the ops before it go
             * as one bulk write, then the source's document replaces it */
            mongoc_bulk_operation_destroy(bulk);
            ops[end]->kind = LM_OP_REFETCH;
            continue;
        }
        if (nw == 0) { /* only empty updates */
            mongoc_bulk_operation_destroy(bulk);
            count_applied(a, ops + i, end - i);
            i = end;
            continue;
        }
        uint32_t ret = mongoc_bulk_operation_execute(bulk, &reply, &e);
        mongoc_bulk_operation_destroy(bulk);
        if (ret) {
            bson_destroy(&reply);
            count_applied(a, ops + i, end - i);
            i = end;
            attempt = 0;
            dup_since = 0;
            continue;
        }
        uint32_t widx, code;
        char msg[512];
        bool has_we = first_write_error(&reply, &widx, &code, msg, sizeof msg);
        bson_destroy(&reply);
        if (!has_we) {
            if (lm_conn_error_transient(&e) && lease_out(a)) {
                ok = why_not(a, err); /* refused by the target's fence: no retry */
                break;
            }
            if (lm_conn_error_transient(&e)) {
                int64_t wait = lm_time_backoff_ms(attempt++, 100, 5000);
                lm_log_warn(NULL, "applying to %s.%s: %s; retrying in %lld ms", ops[i]->db,
                            ops[i]->coll, e.message, (long long)wait);
                if (!pause_ms(a, wait)) {
                    ok = why_not(a, err);
                    break;
                }
                continue; /* everything is idempotent: the whole batch again */
            }
            ok = lm_error_set(
                err, lm_mongo_error_class(e.code), "target refused changes to %s.%s: %s%s",
                ops[i]->db, ops[i]->coll, e.message,
                lm_mongo_unauthorized(e.code) ? ": the target user needs readWrite on every "
                                                "migrated database"
                                              : "");
            break;
        }
        size_t bad = widx < nw ? map[widx] : i;
        count_applied(a, ops + i, bad - i); /* ordered: everything before it was applied */
        i = bad;
        if (lm_mongo_duplicate_key(code) && ops[i]->kind == LM_OP_INSERT) {
            /* its _id is there already (copied, or an earlier run replayed it): replayed as
             * a replacement, as every insert was before inserts were batched */
            ops[i]->kind = LM_OP_REPLACE;
            continue;
        }
        if (lm_mongo_duplicate_key(code) && orig) {
            lm_log_debug(NULL, "%s.%s: %s: the batch again in the source's order", ops[i]->db,
                         ops[i]->coll, msg);
            uncount_applied(a, ops, i);
            memcpy(ops, orig, n * sizeof *ops);
            orig = NULL;
            i = 0;
            continue;
        }
        if (lm_mongo_duplicate_key(code)) {
            if (!dup_since)
                dup_since = lm_time_now_ms();
            if (lm_time_now_ms() - dup_since < DUP_RETRY_MS) {
                if (!pause_ms(a, 50)) {
                    ok = why_not(a, err);
                    break;
                }
                continue;
            }
            ok = lm_error_set(err, LM_ERR_SERVER,
                              "target refused a change to %s.%s for %d s: %s: a unique index on "
                              "the target rejects what the source holds",
                              ops[i]->db, ops[i]->coll, DUP_RETRY_MS / 1000, msg);
            break;
        }
        if (ops[i]->kind == LM_OP_UPDATE) {
            /* the update no longer fits the document (replayed over a newer copy) */
            lm_log_debug(NULL, "%s.%s: update refused (%s): copying the document", ops[i]->db,
                         ops[i]->coll, msg);
            ops[i]->kind = LM_OP_REFETCH;
            continue;
        }
        ok = lm_error_set(err, lm_mongo_error_class(code), "target refused a %s on %s.%s: %s",
                          lm_op_kind_name(ops[i]->kind), ops[i]->db, ops[i]->coll, msg);
    }
    free(map);
    bson_destroy(plain_opts);
    bson_destroy(upsert_opts);
    bson_destroy(bulk_opts);
    mongoc_collection_destroy(coll);
    return ok;
}

static bool gathering(struct lm_apply *a)
{
    return atomic_load(&a->flushing) == 0 && !atomic_load(&a->hurry) &&
           atomic_load(&a->linger_ms) > 0 && !stopping(a);
}

/* Under w->mu, with a change queued: lets changes gather until the oldest has waited the
 * linger, a batch is full, or a drain, the cutover or a stop asks for them. */
static void linger(worker_t *w, size_t max)
{
    struct lm_apply *a = w->a;
    while (w->q.head && w->q.n < max && gathering(a)) {
        int64_t due = w->q.head->queued_ms + atomic_load(&a->linger_ms);
        if (lm_time_now_ms() >= due)
            return;
        struct timespec ts = {.tv_sec = (time_t)(due / 1000),
                              .tv_nsec = (long)(due % 1000) * 1000000L};
        if (pthread_cond_timedwait(&w->can_pop, &w->mu, &ts) == ETIMEDOUT)
            return;
    }
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    struct lm_apply *a = w->a;
    int max = a->o.batch_ops > 0 ? a->o.batch_ops : 1000;
    lm_op_t **batch = calloc((size_t)max, sizeof *batch);
    lm_op_t **scratch = calloc((size_t)max, sizeof *scratch);
    lm_error_t err;
    lm_error_init(&err);
    w->dst = lm_conn_pool_pop(a->o.target);
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->q.head && !atomic_load(&a->stopping) && !atomic_load(&a->failed))
            pthread_cond_wait(&w->can_pop, &w->mu);
        if (!stopping(a) && batch && scratch)
            linger(w, (size_t)max);
        if (stopping(a) || !batch || !scratch || !w->q.head) {
            bool leave = stopping(a) || !batch || !scratch;
            pthread_mutex_unlock(&w->mu);
            if (leave)
                break;
            continue;
        }
        size_t n = 0;
        lm_op_t *first = w->q.head;
        w->busy = true;
        w->busy_prev = first->prev;
        w->busy_prev_wall = first->prev_wall_ms;
        /* every queued change of the first one's collection, in their order: changes to
         * other collections are other documents, so they may wait behind it (the applied
         * position is the one before the oldest change not applied, wherever it waits);
         * taking only the changes up to the next other collection split an interleaved
         * stream into many small writes */
        lm_op_t *prev = NULL;
        for (lm_op_t *op = w->q.head, *next; op && n < (size_t)max; op = next) {
            next = op->next;
            if (strcmp(op->db, first->db) != 0 || strcmp(op->coll, first->coll) != 0) {
                prev = op;
                continue;
            }
            if (prev)
                prev->next = next;
            else
                w->q.head = next;
            if (w->q.tail == op)
                w->q.tail = prev;
            op->next = NULL;
            w->q.n--;
            w->q_bytes -= op_bytes(op);
            batch[n++] = op;
        }
        pthread_cond_broadcast(&w->can_push);
        pthread_mutex_unlock(&w->mu);

        size_t runs = lm_batch_order(batch, n, scratch); /* scratch: the source's order */
        int64_t t0 = lm_time_mono_ms();
        bool ok = apply_batch(w, batch, n, runs < n ? scratch : NULL, &err);
        atomic_fetch_add(&a->busy_ms, lm_time_mono_ms() - t0);
        atomic_fetch_add(&a->o.status->apply_batches, 1);
        for (size_t i = 0; i < n; i++)
            lm_op_free(batch[i]);
        pthread_mutex_lock(&w->mu);
        w->busy = false;
        pthread_cond_broadcast(&w->idle);
        pthread_mutex_unlock(&w->mu);
        if (!ok) {
            if (err.code != LM_ERR_CANCELLED)
                fail(a, &err);
            break;
        }
    }
    free(batch);
    free(scratch);
    /* the producer may wait for room or for this worker to go idle: it re-checks now */
    pthread_mutex_lock(&w->mu);
    w->busy = false;
    w->exited = true;
    pthread_cond_broadcast(&w->can_push);
    pthread_cond_broadcast(&w->idle);
    pthread_mutex_unlock(&w->mu);
    mongoc_client_pool_push(a->o.target, w->dst);
    if (w->src)
        mongoc_client_pool_push(a->o.source, w->src);
    w->dst = w->src = NULL;
    return NULL;
}

/* ---- the queue side ---- */

lm_apply_t *lm_apply_start(const lm_apply_opts_t *o, lm_error_t *err)
{
    lm_apply_t *a = calloc(1, sizeof *a);
    int n = o->workers > 0 ? o->workers : 1;
    if (!a || !(a->w = calloc((size_t)n, sizeof *a->w))) {
        free(a);
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    a->o = *o;
    a->n = n;
    lm_batch_tune_init(&a->tune, n, o->workers_fixed, o->batch_ops, o->lag_target_ms,
                       lm_time_mono_ms());
    a->active = a->tune.active;
    atomic_store(&a->linger_ms, a->tune.linger_ms);
    if (o->status) {
        atomic_store(&o->status->apply_workers_active, a->active);
        atomic_store(&o->status->apply_workers_max, n);
        atomic_store(&o->status->apply_linger_ms, a->tune.linger_ms);
    }
    a->per_worker_bytes = (o->buffer_bytes > 0 ? o->buffer_bytes : 64 << 20) / n;
    pthread_mutex_init(&a->err_mu, NULL);
    lm_error_init(&a->err);
    for (int i = 0; i < n; i++) {
        worker_t *w = &a->w[i];
        w->a = a;
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->can_pop, NULL);
        pthread_cond_init(&w->can_push, NULL);
        pthread_cond_init(&w->idle, NULL);
    }
    for (int i = 0; i < n; i++) {
        if (pthread_create(&a->w[i].th, NULL, worker_main, &a->w[i]) != 0) {
            lm_error_set(err, LM_ERR_INTERNAL, "cannot start apply worker %d", i);
            lm_apply_stop(a);
            return NULL;
        }
        a->w[i].started = true;
    }
    return a;
}

/* Steps the controller (at most once a second does anything); a new number of workers
 * takes effect once every queue is empty, so one document's changes never sit in two
 * queues (the hash that picks a worker depends on the number). */
static bool retune(lm_apply_t *a, lm_error_t *err)
{
    if (lm_time_mono_ms() - a->tune.win_start_ms < 1000)
        return true;
    lm_batch_sample_t smp = {.applied = atomic_load(&a->o.status->ops_applied),
                             .busy_ms = atomic_load(&a->busy_ms),
                             .queued = lm_apply_queued(a)};
    if (!lm_batch_tune_step(&a->tune, lm_time_mono_ms(), &smp))
        return true;
    atomic_store(&a->linger_ms, a->tune.linger_ms);
    atomic_store(&a->o.status->apply_linger_ms, a->tune.linger_ms);
    if (a->tune.active != a->active) {
        if (!lm_apply_drain(a, err))
            return false;
        lm_log_debug(NULL, "%d apply workers, linger %lld ms (%.0f changes/s, writing %.0f%%)",
                     a->tune.active, (long long)a->tune.linger_ms, a->tune.last_rate,
                     a->tune.last_util * 100);
        a->active = a->tune.active;
        atomic_store(&a->o.status->apply_workers_active, a->active);
    }
    return true;
}

bool lm_apply_push(lm_apply_t *a, lm_op_t *op, lm_error_t *err)
{
    if (a->o.status && !retune(a, err)) {
        lm_op_free(op);
        return false;
    }
    worker_t *w = &a->w[lm_apply_worker_of(op, a->active)];
    int64_t b = op_bytes(op);
    op->queued_ms = lm_time_now_ms();
    pthread_mutex_lock(&w->mu);
    while (w->q.n > 0 && w->q_bytes + b > a->per_worker_bytes && !stopping(a) && !w->exited)
        pthread_cond_wait(&w->can_push, &w->mu);
    if (w->exited && !stopping(a)) { /* it could not allocate its batch */
        pthread_mutex_unlock(&w->mu);
        lm_op_free(op);
        return lm_error_set(err, LM_ERR_INTERNAL, "an apply worker ended (out of memory)");
    }
    if (stopping(a)) {
        pthread_mutex_unlock(&w->mu);
        lm_op_free(op);
        return why_not(a, err);
    }
    lm_oplist_append(&w->q, op);
    w->q_bytes += b;
    pthread_cond_signal(&w->can_pop);
    pthread_mutex_unlock(&w->mu);
    return true;
}

bool lm_apply_drain(lm_apply_t *a, lm_error_t *err)
{
    atomic_fetch_add(&a->flushing, 1);
    for (int i = 0; i < a->n; i++) { /* gathering workers write now */
        pthread_mutex_lock(&a->w[i].mu);
        pthread_cond_broadcast(&a->w[i].can_pop);
        pthread_mutex_unlock(&a->w[i].mu);
    }
    bool ok = true;
    for (int i = 0; ok && i < a->n; i++) {
        worker_t *w = &a->w[i];
        pthread_mutex_lock(&w->mu);
        while ((w->q.head || w->busy) && !stopping(a) && !w->exited)
            pthread_cond_wait(&w->idle, &w->mu);
        pthread_mutex_unlock(&w->mu);
        if (stopping(a))
            ok = why_not(a, err);
    }
    atomic_fetch_sub(&a->flushing, 1);
    return ok;
}

void lm_apply_hurry(lm_apply_t *a)
{
    if (!a)
        return;
    atomic_store(&a->hurry, true);
    for (int i = 0; i < a->n; i++) {
        pthread_mutex_lock(&a->w[i].mu);
        pthread_cond_broadcast(&a->w[i].can_pop);
        pthread_mutex_unlock(&a->w[i].mu);
    }
}

bool lm_apply_pending(lm_apply_t *a, lm_optime_t *before, int64_t *wall_ms)
{
    bool any = false;
    for (int i = 0; i < a->n; i++) {
        worker_t *w = &a->w[i];
        lm_optime_t p;
        int64_t pw;
        bool has = false;
        pthread_mutex_lock(&w->mu);
        if (w->busy) {
            p = w->busy_prev, pw = w->busy_prev_wall, has = true;
        } else if (w->q.head) {
            p = w->q.head->prev, pw = w->q.head->prev_wall_ms, has = true;
        }
        pthread_mutex_unlock(&w->mu);
        if (has && (!any || lm_optime_cmp(p, *before) < 0)) {
            *before = p;
            *wall_ms = pw;
            any = true;
        }
    }
    return any;
}

int64_t lm_apply_queued(lm_apply_t *a)
{
    int64_t n = 0;
    for (int i = 0; a && i < a->n; i++) {
        pthread_mutex_lock(&a->w[i].mu);
        n += (int64_t)a->w[i].q.n;
        pthread_mutex_unlock(&a->w[i].mu);
    }
    return n;
}

void lm_apply_stop(lm_apply_t *a)
{
    if (!a)
        return;
    atomic_store(&a->stopping, true);
    for (int i = 0; i < a->n; i++) {
        pthread_mutex_lock(&a->w[i].mu);
        pthread_cond_broadcast(&a->w[i].can_pop);
        pthread_cond_broadcast(&a->w[i].can_push);
        pthread_cond_broadcast(&a->w[i].idle);
        pthread_mutex_unlock(&a->w[i].mu);
    }
    for (int i = 0; i < a->n; i++) {
        worker_t *w = &a->w[i];
        if (w->started)
            pthread_join(w->th, NULL);
        lm_oplist_clear(&w->q);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->can_pop);
        pthread_cond_destroy(&w->can_push);
        pthread_cond_destroy(&w->idle);
    }
    pthread_mutex_destroy(&a->err_mu);
    free(a->w);
    free(a);
}

/* ---- DDL ---- */

static bool run_cmd(mongoc_client_t *target, const char *db, const bson_t *cmd, bson_error_t *e)
{
    bson_t reply;
    bool ok = mongoc_client_write_command_with_opts(target, db, cmd, NULL, &reply, e);
    bson_destroy(&reply);
    return ok;
}

static bool drop_database(mongoc_client_t *target, const lm_op_t *op, const lm_strlist_t *include,
                          const lm_strlist_t *exclude, lm_error_t *err)
{
    bson_error_t e;
    mongoc_database_t *db = mongoc_client_get_database(target, op->db);
    char **names = mongoc_database_get_collection_names_with_opts(db, NULL, &e);
    bool ok = names != NULL;
    if (!ok)
        lm_error_set(err, LM_ERR_SERVER, "target: cannot list %s to replay dropDatabase: %s",
                     op->db, e.message);
    for (size_t i = 0; ok && names[i]; i++) {
        if (!lm_ns_selected(include, exclude, op->db, names[i]))
            continue;
        bson_t *cmd = BCON_NEW("drop", BCON_UTF8(names[i]));
        if (!run_cmd(target, op->db, cmd, &e) && !lm_mongo_namespace_not_found(e.code))
            ok = lm_error_set(err, LM_ERR_SERVER, "target: cannot drop %s.%s: %s", op->db, names[i],
                              e.message);
        bson_destroy(cmd);
    }
    bson_strfreev(names);
    mongoc_database_destroy(db);
    return ok;
}

static bool create_indexes(mongoc_client_t *target, const lm_op_t *op, lm_status_t *st,
                           lm_error_t *err)
{
    lm_coll_info_t c;
    bson_iter_t it;
    memset(&c, 0, sizeof c);
    snprintf(c.db, sizeof c.db, "%s", op->db);
    snprintf(c.coll, sizeof c.coll, "%s", op->coll);
    snprintf(c.ns, sizeof c.ns, "%s.%s", op->db, op->coll);
    snprintf(c.type, sizeof c.type, "collection");
    c.indexes = bson_new();
    if (bson_iter_init_find(&it, op->doc, "indexes") && BSON_ITER_HOLDS_ARRAY(&it)) {
        bson_iter_t ai;
        uint32_t n = 0;
        bson_iter_recurse(&it, &ai);
        while (bson_iter_next(&ai)) {
            bson_iter_t name;
            char key[16];
            const char *k;
            if (!BSON_ITER_HOLDS_DOCUMENT(&ai) ||
                (bson_iter_recurse(&ai, &name) && bson_iter_find(&name, "name") &&
                 BSON_ITER_HOLDS_UTF8(&name) && strcmp(bson_iter_utf8(&name, NULL), "_id_") == 0))
                continue;
            bson_uint32_to_string(n++, &k, key, sizeof key);
            bson_append_iter(c.indexes, k, -1, &ai);
        }
    }
    int refused = 0;
    bool ok = bson_empty(c.indexes) || lm_indexes_build(target, &c, st, &refused, err);
    bson_destroy(c.indexes);
    return ok;
}

bool lm_apply_ddl(mongoc_client_t *target, const lm_op_t *op, const lm_strlist_t *include,
                  const lm_strlist_t *exclude, lm_status_t *st, lm_error_t *err)
{
    bson_error_t e;
    bson_iter_t it;
    bool ok = true;
    if (op->kind == LM_OP_DROP_DATABASE) {
        ok = drop_database(target, op, include, exclude, err);
    } else if (op->kind == LM_OP_DDL && op->doc && bson_iter_init(&it, op->doc) &&
               bson_iter_next(&it)) {
        const char *cmd = bson_iter_key(&it);
        if (strcmp(cmd, "createIndexes") == 0) {
            ok = create_indexes(target, op, st, err);
        } else if (!run_cmd(target, op->db, op->doc, &e)) {
            bool harmless =
                (strcmp(cmd, "drop") == 0 && lm_mongo_namespace_not_found(e.code)) ||
                (strcmp(cmd, "create") == 0 && lm_mongo_namespace_exists(e.code)) ||
                (strcmp(cmd, "dropIndexes") == 0 &&
                 (lm_mongo_namespace_not_found(e.code) || lm_mongo_index_not_found(e.code)));
            if (lm_mongo_unauthorized(e.code))
                ok = lm_error_set(err, LM_ERR_AUTH,
                                  "target refused %s on %s.%s: %s: the target user needs "
                                  "dbAdmin rights on every migrated database",
                                  cmd, op->db, op->coll, e.message);
            else if (harmless)
                ; /* already as the source has it */
            else if (strcmp(cmd, "collMod") == 0 || strcmp(cmd, "dropIndexes") == 0)
                lm_status_warn(st, "%s.%s: the target refused %s: %s", op->db, op->coll, cmd,
                               e.message);
            else
                ok = lm_error_set(err, LM_ERR_SERVER, "target refused %s on %s.%s: %s", cmd, op->db,
                                  op->coll, e.message);
        }
        if (ok)
            lm_log_info(NULL, "replayed %s on %s.%s", cmd, op->db, op->coll);
    }
    if (ok)
        atomic_fetch_add(&st->ddl_applied, 1);
    return ok;
}
