/* lm_copy: see lm_copy.h.
 *
 * How many writers run: with a fixed copy_workers (N > 0) N readers and N writers run, as
 * they always did. With copy_workers 0 (auto) the pipeline starts `max` readers and `max`
 * writers (LM_TUNE_AUTO_MAX unless opts->workers_max says otherwise) but only `level` of
 * each work: writer i writes while i < level and otherwise parks on `can_work`; reader i
 * takes a new task while i < level and otherwise parks there too (a reader in the middle of
 * a task finishes it first). The level starts at 1 and is chosen by lm_tune (engine/copy/
 * lm_tune.h: hill climbing on the documents per second the target acknowledges, backing off
 * when throughput falls or write latency climbs, re-probing a neighbour now and then). The
 * controller is stepped by the writer that just finished a batch, under the pipe's mutex;
 * nothing polls. Why: more concurrent writers help a mongod and hurt a Python server such
 * as SecantusDB (issue 18: 30 s with one writer, 114 s with four), so no fixed number suits
 * both.
 *
 * Which thread owns what:
 *  - the thread in lm_copy_run owns the pipe, creates and joins every thread;
 *  - under p->mu: the queue (head, tail, bytes_in_flight), next_task, readers_left, err,
 *    the controller (tune), its counters (done) and `level`; waits: `can_push` (readers,
 *    the queue is full), `can_pop` (active writers, the queue is empty), `can_work` (parked
 *    readers and writers; broadcast when the level rises, on a failure and when the last
 *    reader leaves);
 *  - atomics: `failed`, the tasks' counters, the status counters (copy_writers_* too);
 *  - each reader and writer owns its client and the batch in hand. */
#include "lm_copy.h"
#include "lm_conn.h"

#include <stdlib.h>
#include <string.h>

#include "lm_job.h"
#include "lm_log.h"
#include "lm_mongo_error.h"
#include "lm_time.h"
#include "lm_tune.h"

#define BATCH_MIN (256 * 1024)
#define BATCH_MAX (4 * 1024 * 1024)
#define BATCH_MAX_DOCS 10000
/* Self-tuning copies use smaller batches: the controller needs several acknowledged batches
 * per one-second window to measure a level. */
#define AUTO_BATCH_MAX (1024 * 1024)
#define AUTO_BATCH_MAX_DOCS 1000
/* Documents per cursor batch asked of the source: sizes are not known before the copy
 * (they are not asked for, see lm_catalog_estimate), and the server caps a batch at 16 MB. */
#define CURSOR_BATCH_DOCS 1000

typedef struct batch {
    struct batch *next;
    lm_copy_task_t *task;
    uint8_t *buf; /* concatenated BSON documents */
    size_t len, cap;
    uint32_t ndocs;
} batch_t;

typedef struct {
    const lm_copy_opts_t *o;
    lm_copy_task_t *tasks;
    size_t n_tasks;
    size_t next_task; /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t can_push, can_pop, can_work;
    batch_t *head, *tail;
    int64_t bytes_in_flight; /* queued + being written */
    int64_t queue_bytes;     /* the part of the budget batches may hold in flight */
    int readers_left;
    size_t batch_bytes;
    uint32_t batch_docs;
    bool tuning;           /* auto: lm_tune chooses the level */
    int level;             /* readers and writers with an index below it work; under mu */
    lm_tune_t tune;        /* under mu */
    lm_tune_sample_t done; /* what the target acknowledged so far; under mu */
    int next_reader_id, next_writer_id; /* under mu */
    atomic_bool failed;
    lm_error_t err;       /* first failure, under mu */
    lm_conn_caps_t *caps; /* the source's: opts->source_caps or own_caps */
    lm_conn_caps_t own_caps;
} pipe_t;

static bool stopping(pipe_t *p)
{
    return atomic_load(&p->failed) || (p->o->stop && *p->o->stop) || p->o->status->cancel ||
           lm_lease_out(p->o->lease_ok_ms, p->o->lease_ms);
}

static void fail(pipe_t *p, const lm_error_t *e)
{
    pthread_mutex_lock(&p->mu);
    if (!atomic_load(&p->failed)) {
        p->err = *e;
        atomic_store(&p->failed, true);
    }
    pthread_cond_broadcast(&p->can_push);
    pthread_cond_broadcast(&p->can_pop);
    pthread_cond_broadcast(&p->can_work);
    pthread_mutex_unlock(&p->mu);
}

static void batch_free(batch_t *b)
{
    if (b) {
        free(b->buf);
        free(b);
    }
}

/* Hands a batch to the writers, waiting while the buffer is full (a batch is always let
 * through when nothing is in flight, so one huge document cannot deadlock). */
static void push(pipe_t *p, batch_t *b)
{
    pthread_mutex_lock(&p->mu);
    while (!atomic_load(&p->failed) && p->bytes_in_flight > 0 &&
           p->bytes_in_flight + (int64_t)b->len > p->queue_bytes)
        pthread_cond_wait(&p->can_push, &p->mu);
    if (atomic_load(&p->failed)) {
        pthread_mutex_unlock(&p->mu);
        atomic_fetch_sub(&b->task->pending, 1);
        batch_free(b);
        return;
    }
    p->bytes_in_flight += (int64_t)b->len;
    if (p->tail)
        p->tail->next = b;
    else
        p->head = b;
    p->tail = b;
    pthread_cond_signal(&p->can_pop);
    pthread_mutex_unlock(&p->mu);
}

static batch_t *batch_new(lm_copy_task_t *t, size_t cap)
{
    batch_t *b = calloc(1, sizeof *b);
    if (b && !(b->buf = malloc(cap))) {
        free(b);
        return NULL;
    }
    if (b) {
        b->task = t;
        b->cap = cap;
        atomic_fetch_add(&t->pending, 1);
    }
    return b;
}

static bool batch_add(batch_t *b, const bson_t *doc)
{
    if (b->len + doc->len > b->cap) {
        size_t ncap = b->cap * 2 > b->len + doc->len ? b->cap * 2 : b->len + doc->len;
        uint8_t *nb = realloc(b->buf, ncap);
        if (!nb)
            return false;
        b->buf = nb;
        b->cap = ncap;
    }
    memcpy(b->buf + b->len, bson_get_data(doc), doc->len);
    b->len += doc->len;
    b->ndocs++;
    return true;
}

static void maybe_task_done(pipe_t *p, lm_copy_task_t *t)
{
    if (atomic_load(&t->reader_done) && atomic_load(&t->pending) == 0 && !stopping(p) &&
        !atomic_exchange(&t->done, true))
        p->o->on_task_done(p->o->ud, t);
}

/* Streams one task's documents into batches. *complete is true only when the cursor was
 * read to its end: a range cut short by a stop must never be recorded as done. */
static bool read_task(pipe_t *p, mongoc_client_t *src, lm_copy_task_t *t, bool *complete,
                      lm_error_t *err)
{
    bson_error_t e;
    const bson_t *doc;
    mongoc_collection_t *coll = mongoc_client_get_collection(src, t->db, t->coll);
    /* noCursorTimeout keeps a slow range's cursor alive; FerretDB refuses the option, and
     * then it is left out for the rest of the job on that source (p->caps) */
    atomic_bool *no_timeout_refused = &p->caps->no_cursor_timeout_refused;
    bson_t *opts = BCON_NEW("batchSize", BCON_INT64(CURSOR_BATCH_DOCS));
    if (!atomic_load(no_timeout_refused))
        BSON_APPEND_BOOL(opts, "noCursorTimeout", true);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, t->filter, opts, NULL);
    batch_t *b = NULL;
    bool ok = true, any = false;

    *complete = false;
    atomic_store(&t->status->state, LM_COLL_COPYING);
    for (;;) {
        if (stopping(p))
            break;
        if (!mongoc_cursor_next(cur, &doc)) {
            if (!any && !atomic_load(no_timeout_refused) && mongoc_cursor_error(cur, &e) &&
                strstr(e.message, "noCursorTimeout")) {
                atomic_store(no_timeout_refused, true);
                mongoc_cursor_destroy(cur);
                bson_reinit(opts);
                BSON_APPEND_INT64(opts, "batchSize", CURSOR_BATCH_DOCS);
                cur = mongoc_collection_find_with_opts(coll, t->filter, opts, NULL);
                continue;
            }
            break;
        }
        any = true;
        if (!b && !(b = batch_new(t, p->batch_bytes))) {
            ok = lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
            break;
        }
        if (!batch_add(b, doc)) {
            ok = lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
            break;
        }
        if (b->len >= p->batch_bytes || b->ndocs >= p->batch_docs) {
            push(p, b);
            b = NULL;
        }
    }
    if (ok && mongoc_cursor_error(cur, &e))
        ok = lm_error_set(err, lm_mongo_error_class(e.code), "source: reading %s failed: %s", t->ns,
                          e.message);
    else if (ok && !stopping(p))
        *complete = true;
    if (b) {
        if (ok && !stopping(p)) {
            push(p, b);
        } else {
            atomic_fetch_sub(&t->pending, 1);
            batch_free(b);
        }
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    mongoc_collection_destroy(coll);
    return ok;
}

static void *reader_main(void *arg)
{
    pipe_t *p = arg;
    lm_error_t err;
    mongoc_client_t *src = NULL;
    lm_error_init(&err);
    pthread_mutex_lock(&p->mu);
    int id = p->next_reader_id++;
    pthread_mutex_unlock(&p->mu);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        /* parked while the level is below this reader (reader 0 always works) */
        while (id >= p->level && p->next_task < p->n_tasks && !stopping(p))
            pthread_cond_wait(&p->can_work, &p->mu);
        lm_copy_task_t *t = p->next_task < p->n_tasks ? &p->tasks[p->next_task++] : NULL;
        pthread_mutex_unlock(&p->mu);
        if (t && !src)
            src = lm_conn_pool_pop(p->o->source);
        if (!t || stopping(p))
            break;
        if (atomic_load(&t->done)) /* finished by an earlier run */
            continue;
        bool complete = false;
        if (!read_task(p, src, t, &complete, &err)) {
            fail(p, &err);
            break;
        }
        if (!complete)
            break;
        atomic_store(&t->reader_done, true);
        maybe_task_done(p, t);
    }
    if (src)
        mongoc_client_pool_push(p->o->source, src);
    pthread_mutex_lock(&p->mu);
    p->readers_left--;
    pthread_cond_broadcast(&p->can_pop);
    pthread_cond_broadcast(&p->can_work); /* parked readers see a stop; writers the end */
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Counts duplicate-key write errors in an insert reply; false when another error is there. */
static bool only_duplicates(const bson_t *reply, int64_t *dups, char *first, size_t firstsz)
{
    bson_iter_t it, errs, one, f;
    bool ok = true;
    *dups = 0;
    if (!bson_iter_init_find(&it, reply, "writeErrors") || !bson_iter_recurse(&it, &errs))
        return false;
    while (bson_iter_next(&errs)) {
        if (!bson_iter_recurse(&errs, &one))
            continue;
        int code = bson_iter_find(&one, "code") ? (int)bson_iter_as_int64(&one) : 0;
        if (lm_mongo_duplicate_key(code)) {
            (*dups)++;
        } else if (ok) {
            ok = false;
            bson_iter_recurse(&errs, &f);
            snprintf(first, firstsz, "code %d: %s", code,
                     bson_iter_find(&f, "errmsg") && BSON_ITER_HOLDS_UTF8(&f)
                         ? bson_iter_utf8(&f, NULL)
                         : "?");
        }
    }
    return ok;
}

static bool write_batch(mongoc_client_t *dst, batch_t *b, lm_status_t *st, lm_error_t *err)
{
    lm_copy_task_t *t = b->task;
    bson_t *docs = calloc(b->ndocs, sizeof *docs);
    const bson_t **ptrs = calloc(b->ndocs, sizeof *ptrs);
    bson_error_t e;
    bson_t reply;
    bool ok = true;

    if (!docs || !ptrs) {
        free(docs);
        free(ptrs);
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    }
    size_t off = 0;
    for (uint32_t i = 0; i < b->ndocs; i++) {
        uint32_t len;
        memcpy(&len, b->buf + off, 4);
        len = BSON_UINT32_FROM_LE(len);
        bson_init_static(&docs[i], b->buf + off, len);
        ptrs[i] = &docs[i];
        off += len;
    }
    mongoc_collection_t *coll = mongoc_client_get_collection(dst, t->db, t->coll);
    bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false), "bypassDocumentValidation",
                            BCON_BOOL(true), "validate", BCON_BOOL(false));
    int64_t dups = 0;
    if (!mongoc_collection_insert_many(coll, ptrs, b->ndocs, opts, &reply, &e)) {
        char first[512] = "";
        if (!only_duplicates(&reply, &dups, first, sizeof first))
            ok =
                lm_error_set(err, lm_mongo_error_class(e.code), "target refused writes to %s: %s%s",
                             t->ns, first[0] ? first : e.message,
                             lm_mongo_unauthorized(e.code)
                                 ? ": the target user needs readWrite on every copied database"
                                 : "");
    }
    if (ok) {
        int64_t written = (int64_t)b->ndocs - dups;
        atomic_fetch_add(&t->docs, b->ndocs);
        atomic_fetch_add(&t->status->docs, written);
        atomic_fetch_add(&t->status->bytes, (long long)b->len);
        atomic_fetch_add(&t->status->dup_keys, dups);
        atomic_fetch_add(&st->docs, written);
        atomic_fetch_add(&st->bytes, (long long)b->len);
        atomic_fetch_add(&st->dup_keys, dups);
    }
    bson_destroy(&reply);
    bson_destroy(opts);
    mongoc_collection_destroy(coll);
    free(docs);
    free(ptrs);
    return ok;
}

/* Takes the next batch for writer `id`, waiting while the queue is empty and parking while
 * the level is at or below the writer's index; NULL when the copy is over or failed. Under
 * p->mu. */
static batch_t *take_batch(pipe_t *p, int id)
{
    for (;;) {
        if (atomic_load(&p->failed))
            return NULL;
        if (id >= p->level) {
            if (p->readers_left == 0 && !p->head)
                return NULL;
            pthread_cond_wait(&p->can_work, &p->mu);
            continue;
        }
        if (p->head) {
            batch_t *b = p->head;
            p->head = b->next;
            if (!p->head) {
                p->tail = NULL;
                /* the last batch: parked writers may leave now */
                if (p->readers_left == 0)
                    pthread_cond_broadcast(&p->can_work);
            }
            return b;
        }
        if (p->readers_left == 0)
            return NULL;
        pthread_cond_wait(&p->can_pop, &p->mu);
    }
}

/* Sets the level (under p->mu) and publishes it; wakes parked threads when it rises. */
static void set_level(pipe_t *p, int level)
{
    if (level > p->level) {
        pthread_cond_broadcast(&p->can_work);
        /* the newly active writers may find batches already queued */
        pthread_cond_broadcast(&p->can_pop);
    }
    if (level != p->level)
        lm_log_debug("phase=copy", "%d copy writers (%.0f docs/s in the last window)", level,
                     p->tune.last_tp);
    p->level = level;
    atomic_store(&p->o->status->copy_writers_active, level);
}

static void *writer_main(void *arg)
{
    pipe_t *p = arg;
    lm_error_t err;
    mongoc_client_t *dst = NULL;
    lm_error_init(&err);
    pthread_mutex_lock(&p->mu);
    int id = p->next_writer_id++;
    pthread_mutex_unlock(&p->mu);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        batch_t *b = take_batch(p, id);
        pthread_mutex_unlock(&p->mu);
        if (!b)
            break;
        if (!dst)
            dst = lm_conn_pool_pop(p->o->target);
        int64_t t0 = lm_time_mono_ms();
        bool ok = !stopping(p) && write_batch(dst, b, p->o->status, &err);
        int64_t t1 = lm_time_mono_ms();
        pthread_mutex_lock(&p->mu);
        p->bytes_in_flight -= (int64_t)b->len;
        pthread_cond_broadcast(&p->can_push);
        if (ok) {
            p->done.docs += b->ndocs;
            p->done.batches++;
            p->done.busy_ms += t1 - t0;
            if (p->tuning)
                set_level(p, lm_tune_step(&p->tune, t1, &p->done));
        }
        pthread_mutex_unlock(&p->mu);
        lm_copy_task_t *t = b->task;
        batch_free(b);
        atomic_fetch_sub(&t->pending, 1);
        /* a write refused past the lease (the target's fence, lm_conn_pool_pop) is the stop
         * the lease asked for: its batch is dropped like those stopping() holds back, and
         * the writer drains on (leaving, it could strand readers waiting for room) */
        if (!ok && err.code != LM_ERR_NONE && lm_lease_out(p->o->lease_ok_ms, p->o->lease_ms))
            lm_error_init(&err);
        if (!ok && err.code != LM_ERR_NONE) {
            fail(p, &err);
            break;
        }
        if (ok)
            maybe_task_done(p, t);
    }
    if (dst)
        mongoc_client_pool_push(p->o->target, dst);
    return NULL;
}

static int spawn_pthread(pthread_t *thread, void *(*main)(void *), void *arg)
{
    return pthread_create(thread, NULL, main, arg);
}

bool lm_copy_run(const lm_copy_opts_t *o, lm_copy_task_t *tasks, size_t n_tasks, lm_error_t *err)
{
    pipe_t p;
    bool tuning = o->workers <= 0;
    int max = o->workers_max > 0 ? o->workers_max : LM_TUNE_AUTO_MAX;
    int n = tuning ? max : o->workers; /* readers and writers started */
    pthread_t *readers = calloc((size_t)n, sizeof *readers),
              *writers = calloc((size_t)n, sizeof *writers);

    if (!readers || !writers) {
        free(readers);
        free(writers);
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    }
    memset(&p, 0, sizeof p);
    p.o = o;
    p.tasks = tasks;
    p.n_tasks = n_tasks;
    p.readers_left = n;
    /* The memory budget covers everything that holds documents: the queue (half of it), the
     * batch each reader fills, the command each writer sends (a copy of its batch) and each
     * reader's cursor buffer (about one batch): 3 x n batches of buffer/(8n) = 3/8. Parked
     * readers and writers hold nothing, but the budget counts every one started. */
    int64_t per = o->buffer_bytes / (8 * n);
    size_t batch_max = tuning ? AUTO_BATCH_MAX : BATCH_MAX;
    p.batch_bytes = (size_t)(per < BATCH_MIN            ? BATCH_MIN
                             : per > (int64_t)batch_max ? (int64_t)batch_max
                                                        : per);
    p.batch_docs = tuning ? AUTO_BATCH_MAX_DOCS : BATCH_MAX_DOCS;
    p.queue_bytes = o->buffer_bytes / 2;
    p.tuning = tuning;
    p.level = tuning ? 1 : n;
    if (tuning)
        lm_tune_init(&p.tune, 1, max, 1, lm_time_mono_ms());
    atomic_store(&o->status->copy_writers_active, p.level);
    atomic_store(&o->status->copy_writers_max, n);
    atomic_store(&o->status->copy_writers_auto, tuning);
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.can_push, NULL);
    pthread_cond_init(&p.can_pop, NULL);
    pthread_cond_init(&p.can_work, NULL);
    lm_error_init(&p.err);
    p.caps = o->source_caps ? o->source_caps : &p.own_caps;
    lm_copy_spawn_fn spawn = o->spawn ? o->spawn : spawn_pthread;
    int n_writers = 0, n_readers = 0, rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        if ((rc = spawn(&writers[n_writers], writer_main, &p)) == 0)
            n_writers++;
        if (rc == 0 && (rc = spawn(&readers[n_readers], reader_main, &p)) == 0)
            n_readers++;
    }
    if (rc != 0) {
        /* Stop the threads that did start: readers that never ran are not waited for. */
        lm_error_t e;
        lm_error_init(&e);
        lm_error_set(&e, LM_ERR_INTERNAL,
                     "cannot start the copy's threads (%d of %d readers, %d of %d writers "
                     "started): %s: lower copy_workers or raise the process's thread limit",
                     n_readers, n, n_writers, n, strerror(rc));
        pthread_mutex_lock(&p.mu);
        p.readers_left -= n - n_readers;
        pthread_mutex_unlock(&p.mu);
        fail(&p, &e);
    }
    for (int i = 0; i < n_readers; i++)
        pthread_join(readers[i], NULL);
    for (int i = 0; i < n_writers; i++)
        pthread_join(writers[i], NULL);
    /* nothing may be left queued, but a failure can leave batches behind */
    for (batch_t *b = p.head, *next; b; b = next) {
        next = b->next;
        batch_free(b);
    }
    bool ok = true;
    if (atomic_load(&p.failed)) {
        *err = p.err;
        ok = false;
    } else if (stopping(&p)) {
        ok = lm_error_set(err, LM_ERR_CANCELLED, "copy stopped before it finished");
    }
    if (tuning)
        lm_log_info("phase=copy", "the copy writers settled at %d of %d (%lld level changes)",
                    p.level, max, (long long)p.tune.changes);
    atomic_store(&o->status->copy_writers_active, 0);
    pthread_cond_destroy(&p.can_push);
    pthread_cond_destroy(&p.can_pop);
    pthread_cond_destroy(&p.can_work);
    pthread_mutex_destroy(&p.mu);
    free(readers);
    free(writers);
    return ok;
}
