/* lm_bench: helpers for bench/copy and bench/stream (never run by the tests).
 *
 *   lm_bench ceiling --target URI --db D --docs N --doc-bytes B [--threads 1,2,4,8]
 *                    [--batches 1000] [--collections C] [--skew S]
 *       the write ceiling CEIL_W: N documents shaped like scripts/lm_seed.py's bulk set,
 *       spread over the same C collections (D.c000, ...; the first holding S of them when
 *       --skew is given), are built in memory first, then T threads send them as unordered
 *       bulk inserts of B documents, one collection at a time; only the inserts are timed.
 *       It is a search, one coordinate after the other: each thread count of the list
 *       (default 1,2,4,8) with the first batch size of --batches (default 1000), then the
 *       other batch sizes with the best thread count; each trial inserts everything into D
 *       dropped first. The line reports the best trial (its "threads" and "batch") and the
 *       docs/s of every trial ("docs_per_s_by_threads", "docs_per_s_by_batch"); each trial
 *       is also told on stderr.
 *   lm_bench naive --source URI --target URI --ns db.coll [--limit N]
 *       a naive copy: one thread, find -> insert_one per document.
 *   lm_bench load --uri URI --db D --docs N --rate R --seconds S [--threads T] [--first-id F]
 *       bench/stream's live load on D.c000 (seeded with _id 0..N-1 by `ceiling`): R ops/s
 *       in all, 50% inserts of new _ids, 40% $set of one field on a random _id, 10%
 *       deletes of a random _id, paced on an absolute schedule by T threads (default 4).
 *       New _ids start at F (default N). Reports the ops done, the rate held (it falls
 *       short when the source is slower) and next_id, the --first-id of a following run.
 *   lm_bench applyceil --target URI --db D --docs N --ops M [--threads T] [--batch B]
 *       the apply ceiling: M ops of the same mix, built first, sent to D.c000 by T threads
 *       (default 8), each owning the _ids that hash to it, the cheapest way that keeps each
 *       document's changes in order: runs of up to B (default 1000) changes to distinct
 *       _ids, each run one unordered command per kind (insert, update_one, delete_one).
 *       Only the writes are timed. bench/stream searches over T.
 *   lm_bench run --report FILE -- COMMAND...
 *       runs COMMAND and writes its wall time, CPU seconds and peak RSS to FILE (COMMAND
 *       keeps stdout and stderr).
 *
 * Each prints one JSON line: docs, bytes, seconds, docs_per_s, mb_per_s, cpu_s, max_rss_mb. */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <mongoc/mongoc.h>

#include "lm_time.h"

extern char **environ;

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

static double cpu_seconds(const struct rusage *ru)
{
    return (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec / 1e6 +
           (double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec / 1e6;
}

static void report(const char *what, int64_t docs, int64_t bytes, double secs,
                   const struct rusage *ru)
{
    printf("{\"what\":\"%s\",\"docs\":%" PRId64 ",\"bytes\":%" PRId64
           ",\"seconds\":%.2f,\"docs_per_s\":%.0f,"
           "\"mb_per_s\":%.2f,\"cpu_s\":%.2f,\"max_rss_mb\":%.1f}\n",
           what, docs, bytes, secs, secs > 0 ? (double)docs / secs : 0,
           secs > 0 ? (double)bytes / 1e6 / secs : 0, cpu_seconds(ru),
           (double)ru->ru_maxrss / 1024.0);
    fflush(stdout);
}

/* The work: collection k holds docs [start[k], start[k+1]); threads take collections in
 * turn, as the copy's readers do. */
typedef struct {
    mongoc_client_pool_t *pool;
    const char *db;
    bson_t **docs;
    int64_t *start;
    int n_colls;
    int batch;
    int next; /* under mu */
    pthread_mutex_t mu;
} work_t;

static void *insert_worker(void *p)
{
    work_t *w = p;
    mongoc_client_t *c = mongoc_client_pool_pop(w->pool);
    bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false), "bypassDocumentValidation",
                            BCON_BOOL(true), "validate", BCON_BOOL(false));
    bson_error_t e;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        int k = w->next < w->n_colls ? w->next++ : -1;
        pthread_mutex_unlock(&w->mu);
        if (k < 0)
            break;
        char name[32];
        snprintf(name, sizeof name, "c%03d", k);
        mongoc_collection_t *coll = mongoc_client_get_collection(c, w->db, name);
        for (int64_t i = w->start[k]; i < w->start[k + 1]; i += w->batch) {
            int64_t n = w->start[k + 1] - i < w->batch ? w->start[k + 1] - i : w->batch;
            if (!mongoc_collection_insert_many(coll, (const bson_t **)&w->docs[i], (size_t)n, opts,
                                               NULL, &e))
                fprintf(stderr, "insert: %s\n", e.message);
        }
        mongoc_collection_destroy(coll);
    }
    bson_destroy(opts);
    mongoc_client_pool_push(w->pool, c);
    return NULL;
}

/* One ceiling trial: `threads` threads insert every document into D (dropped first, untimed,
 * so each trial meets the same empty server) in bulks of `batch`. Returns the seconds; *cpu
 * the CPU spent. */
static double ceiling_try(mongoc_client_pool_t *pool, work_t *w, int threads, int batch,
                          double *cpu)
{
    bson_error_t e;
    mongoc_client_t *c = mongoc_client_pool_pop(pool);
    mongoc_database_t *d = mongoc_client_get_database(c, w->db);
    if (!mongoc_database_drop(d, &e) && !strstr(e.message, "not found"))
        fprintf(stderr, "drop %s: %s\n", w->db, e.message);
    mongoc_database_destroy(d);
    mongoc_client_pool_push(pool, c);
    w->next = 0;
    w->batch = batch;
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    int64_t t0 = lm_time_mono_ms();
    for (int t = 0; t < threads; t++)
        pthread_create(&th[t], NULL, insert_worker, w);
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    double secs = (double)(lm_time_mono_ms() - t0) / 1000.0;
    getrusage(RUSAGE_SELF, &r1);
    *cpu = cpu_seconds(&r1) - cpu_seconds(&r0);
    free(th);
    return secs;
}

static int ceiling(int argc, char **argv)
{
    const char *db = arg(argc, argv, "--db", "ceil");
    int64_t n = strtoll(arg(argc, argv, "--docs", "100000"), NULL, 10);
    int64_t size = strtoll(arg(argc, argv, "--doc-bytes", "1000"), NULL, 10);
    const char *thread_list = arg(argc, argv, "--threads", "1,2,4,8");
    const char *batch_list = arg(argc, argv, "--batches", "1000");
    int batches[16], n_batches = 0;
    bool bad = !*batch_list;
    for (const char *p = batch_list; *p && !bad;) {
        char *end;
        long b = strtol(p, &end, 10);
        bad = end == p || b < 1 || b > 100000 || n_batches == 16 || (*end && *end != ',') ||
              (n_batches > 0 && b == batches[0]);
        if (!bad)
            batches[n_batches++] = (int)b;
        p = *end == ',' ? end + 1 : end;
    }
    if (bad) {
        fprintf(stderr, "lm_bench ceiling: --batches wants a list like 250,1000,4000, each size "
                        "once\n");
        return 2;
    }
    int colls = (int)strtol(arg(argc, argv, "--collections", "1"), NULL, 10);
    double skew = strtod(arg(argc, argv, "--skew", "0"), NULL);
    size_t padlen = size > 60 ? (size_t)size - 60 : 0;
    char *pad = malloc(padlen + 1);
    memset(pad, 'x', padlen);
    pad[padlen] = '\0';
    bson_t **docs = malloc((size_t)n * sizeof *docs);
    int64_t bytes = 0;
    /* the same split over collections as scripts/lm_seed.py bulk, the same _ids and shape */
    int64_t *start = calloc((size_t)colls + 1, sizeof *start);
    for (int k = 0; k < colls; k++) {
        int64_t sz = n / colls + (k == colls - 1 ? n % colls : 0);
        if (skew > 0 && colls > 1) {
            int64_t first = (int64_t)((double)n * skew), rest = n - first;
            sz = k == 0 ? first : rest / (colls - 1) + (k == colls - 1 ? rest % (colls - 1) : 0);
        }
        start[k + 1] = start[k] + sz;
        for (int64_t i = start[k]; i < start[k + 1]; i++) {
            int64_t id = i - start[k];
            docs[i] = BCON_NEW("_id", BCON_INT32((int32_t)id), "n", BCON_INT64(id), "pad",
                               BCON_UTF8(pad));
            bytes += docs[i]->len;
        }
    }
    mongoc_uri_t *uri = mongoc_uri_new(arg(argc, argv, "--target", ""));
    mongoc_client_pool_t *pool = mongoc_client_pool_new(uri);
    mongoc_client_pool_max_size(pool, 72);
    work_t w = {.pool = pool, .db = db, .docs = docs, .start = start, .n_colls = colls};
    pthread_mutex_init(&w.mu, NULL);
    /* the search: every thread count of the list, then every other batch size at the best
     * thread count, each on an emptied database; the best is the ceiling, each trial is
     * reported beside it */
    char tried[512] = "", tried_batch[512] = "";
    double best_secs = 0, best_cpu = 0;
    int best_threads = 0, best_batch = batches[0];
    for (const char *p = thread_list; *p;) {
        char *end;
        long threads = strtol(p, &end, 10);
        if (end == p || threads < 1 || threads > 64) {
            fprintf(stderr, "lm_bench ceiling: --threads wants a list like 1,2,4,8\n");
            return 2;
        }
        p = *end == ',' ? end + 1 : end;
        double cpu, secs = ceiling_try(pool, &w, (int)threads, batches[0], &cpu);
        fprintf(stderr, "ceiling: %ld threads, batch %d: %.2f s, %.0f docs/s\n", threads,
                batches[0], secs, (double)n / secs);
        size_t len = strlen(tried);
        snprintf(tried + len, sizeof tried - len, "%s\"%ld\":%.0f", len ? "," : "", threads,
                 (double)n / secs);
        if (best_threads == 0 || secs < best_secs) {
            best_secs = secs;
            best_cpu = cpu;
            best_threads = (int)threads;
        }
    }
    snprintf(tried_batch, sizeof tried_batch, "\"%d\":%.0f", batches[0], (double)n / best_secs);
    int at_threads = best_threads;
    for (int b = 1; b < n_batches; b++) {
        double cpu, secs = ceiling_try(pool, &w, at_threads, batches[b], &cpu);
        fprintf(stderr, "ceiling: %d threads, batch %d: %.2f s, %.0f docs/s\n", at_threads,
                batches[b], secs, (double)n / secs);
        size_t len = strlen(tried_batch);
        snprintf(tried_batch + len, sizeof tried_batch - len, ",\"%d\":%.0f", batches[b],
                 (double)n / secs);
        if (secs < best_secs) {
            best_secs = secs;
            best_cpu = cpu;
            best_batch = batches[b];
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    /* the line of `report` with the best trial's figures, its threads and batch, and every
     * trial */
    printf("{\"what\":\"ceiling\",\"docs\":%" PRId64 ",\"bytes\":%" PRId64
           ",\"seconds\":%.2f,\"docs_per_s\":%.0f,\"mb_per_s\":%.2f,\"cpu_s\":%.2f,"
           "\"max_rss_mb\":%.1f,\"threads\":%d,\"batch\":%d,\"docs_per_s_by_threads\":{%s},"
           "\"docs_per_s_by_batch\":{%s}}\n",
           n, bytes, best_secs, (double)n / best_secs, (double)bytes / 1e6 / best_secs, best_cpu,
           (double)ru.ru_maxrss / 1024.0, best_threads, best_batch, tried, tried_batch);
    fflush(stdout);
    return 0;
}

static int naive(int argc, char **argv)
{
    char db[128], coll[256];
    const char *ns = arg(argc, argv, "--ns", "bulk.c000");
    int64_t limit = strtoll(arg(argc, argv, "--limit", "0"), NULL, 10), docs = 0, bytes = 0;
    const char *dot = strchr(ns, '.');
    snprintf(db, sizeof db, "%.*s", (int)(dot - ns), ns);
    snprintf(coll, sizeof coll, "%s", dot + 1);
    mongoc_client_t *s = mongoc_client_new(arg(argc, argv, "--source", ""));
    mongoc_client_t *t = mongoc_client_new(arg(argc, argv, "--target", ""));
    mongoc_collection_t *sc = mongoc_client_get_collection(s, db, coll),
                        *tc = mongoc_client_get_collection(t, db, coll);
    bson_t filter = BSON_INITIALIZER;
    bson_t *opts = limit ? BCON_NEW("limit", BCON_INT64(limit)) : NULL;
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(sc, &filter, opts, NULL);
    const bson_t *d;
    bson_error_t e;
    int64_t t0 = lm_time_mono_ms();
    while (mongoc_cursor_next(cur, &d)) {
        if (!mongoc_collection_insert_one(tc, d, NULL, NULL, &e))
            fprintf(stderr, "insert: %s\n", e.message);
        docs++;
        bytes += d->len;
    }
    double secs = (double)(lm_time_mono_ms() - t0) / 1000.0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    report("naive", docs, bytes, secs, &ru);
    return 0;
}

/* ---- bench/stream: the live load and the apply ceiling ---- */

typedef enum { OP_INSERT, OP_UPDATE, OP_DELETE } mix_kind_t;

/* The 50/40/10 mix: kind and _id of op k, given the next new _id. Deterministic per seed. */
static mix_kind_t mix_op(uint64_t *seed, int64_t *next_id, int64_t *id, int64_t *value)
{
    *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t r = *seed >> 33;
    *value = (int64_t)(r % 1000000);
    int pick = (int)(r % 10);
    if (pick < 5) {
        *id = (*next_id)++;
        return OP_INSERT;
    }
    *id = (int64_t)((r >> 4) % (uint64_t)*next_id);
    return pick < 9 ? OP_UPDATE : OP_DELETE;
}

static bson_t *mix_doc(int64_t id, int64_t value)
{
    return BCON_NEW("_id", BCON_INT64(id), "n", BCON_INT64(value), "pad",
                    BCON_UTF8("pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
                              "pppppppppppppppppppppppppppppppppppppp"));
}

typedef struct {
    mongoc_client_pool_t *pool;
    const char *db;
    double rate; /* this thread's ops per second */
    int64_t until_ms;
    pthread_mutex_t *mu;
    int64_t *next_id; /* shared under mu */
    uint64_t seed;
    int64_t done, errors;
} load_t;

static void *load_worker(void *p)
{
    load_t *l = p;
    mongoc_client_t *c = mongoc_client_pool_pop(l->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(c, l->db, "c000");
    int64_t t0 = lm_time_mono_ms();
    bson_error_t e;
    for (int64_t k = 0;; k++) {
        int64_t due = t0 + (int64_t)((double)k * 1000.0 / l->rate);
        int64_t now = lm_time_mono_ms();
        if (due >= l->until_ms || now >= l->until_ms)
            break;
        if (due > now)
            lm_time_sleep_ms(due - now, NULL);
        int64_t id, value;
        pthread_mutex_lock(l->mu);
        mix_kind_t kind = mix_op(&l->seed, l->next_id, &id, &value);
        pthread_mutex_unlock(l->mu);
        bson_t *sel = BCON_NEW("_id", BCON_INT64(id));
        bool ok;
        if (kind == OP_INSERT) {
            bson_t *d = mix_doc(id, value);
            ok = mongoc_collection_insert_one(coll, d, NULL, NULL, &e);
            bson_destroy(d);
        } else if (kind == OP_UPDATE) {
            bson_t *u = BCON_NEW("$set", "{", "n", BCON_INT64(value), "}");
            ok = mongoc_collection_update_one(coll, sel, u, NULL, NULL, &e);
            bson_destroy(u);
        } else {
            ok = mongoc_collection_delete_one(coll, sel, NULL, NULL, &e);
        }
        bson_destroy(sel);
        if (ok)
            l->done++;
        else if (l->errors++ < 3)
            fprintf(stderr, "load: %s\n", e.message);
    }
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(l->pool, c);
    return NULL;
}

static int load(int argc, char **argv)
{
    const char *db = arg(argc, argv, "--db", "bench");
    /* new _ids start at --first-id (default --docs): a later run must not reuse them */
    int64_t next_id =
        strtoll(arg(argc, argv, "--first-id", arg(argc, argv, "--docs", "100000")), NULL, 10);
    double rate = strtod(arg(argc, argv, "--rate", "1000"), NULL);
    double secs = strtod(arg(argc, argv, "--seconds", "60"), NULL);
    int threads = (int)strtol(arg(argc, argv, "--threads", "4"), NULL, 10);
    if (rate <= 0 || threads < 1 || secs <= 0)
        return 2;
    mongoc_uri_t *uri = mongoc_uri_new(arg(argc, argv, "--uri", ""));
    mongoc_client_pool_t *pool = mongoc_client_pool_new(uri);
    mongoc_client_pool_max_size(pool, (uint32_t)threads + 1);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    load_t *l = calloc((size_t)threads, sizeof *l);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    int64_t t0 = lm_time_mono_ms();
    for (int t = 0; t < threads; t++) {
        l[t] = (load_t){.pool = pool,
                        .db = db,
                        .rate = rate / threads,
                        .until_ms = t0 + (int64_t)(secs * 1000),
                        .mu = &mu,
                        .next_id = &next_id,
                        .seed = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1)};
        pthread_create(&th[t], NULL, load_worker, &l[t]);
    }
    int64_t done = 0, errors = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        done += l[t].done;
        errors += l[t].errors;
    }
    double took = (double)(lm_time_mono_ms() - t0) / 1000.0;
    printf("{\"what\":\"load\",\"rate\":%.0f,\"ops\":%" PRId64 ",\"errors\":%" PRId64
           ",\"seconds\":%.2f,\"ops_per_s\":%.1f,\"next_id\":%" PRId64 "}\n",
           rate, done, errors, took, (double)done / took, next_id);
    mongoc_client_pool_destroy(pool);
    mongoc_uri_destroy(uri);
    return errors ? 1 : 0;
}

typedef struct {
    mongoc_client_pool_t *pool;
    const char *db;
    int batch;
    mix_kind_t *kind;
    int64_t *id, *value;
    int64_t n, mine, part, parts;
} ceil_t;

/* Sends one run of changes to distinct _ids: one unordered command per kind (their order
 * cannot matter: no two touch the same document). */
static void ceil_flush(mongoc_bulk_operation_t **kinds, int *n)
{
    for (int k = 0; k < 3; k++) {
        if (kinds[k]) {
            bson_t reply;
            bson_error_t e;
            if (!mongoc_bulk_operation_execute(kinds[k], &reply, &e))
                fprintf(stderr, "applyceil: %s\n", e.message);
            bson_destroy(&reply);
            mongoc_bulk_operation_destroy(kinds[k]);
            kinds[k] = NULL;
        }
    }
    *n = 0;
}

/* The best a client can do with this mix while keeping each document's changes in order:
 * changes gather into runs of distinct _ids (a change to an _id already in the run starts
 * the next run, as livemig's apply does) of at most `batch`, each run sent as one command
 * per kind; inserts of new _ids are inserts. */
static void *ceil_worker(void *p)
{
    ceil_t *w = p;
    mongoc_client_t *c = mongoc_client_pool_pop(w->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(c, w->db, "c000");
    bson_t *bulk_opts = BCON_NEW("ordered", BCON_BOOL(false));
    bson_error_t e;
    mongoc_bulk_operation_t *kinds[3] = {NULL, NULL, NULL};
    int64_t *run_ids = malloc((size_t)w->batch * sizeof *run_ids);
    int in_run = 0;
    for (int64_t k = 0; k < w->n; k++) {
        if (w->id[k] % w->parts != w->part)
            continue;
        bool repeat = false;
        for (int r = 0; r < in_run && !repeat; r++)
            repeat = run_ids[r] == w->id[k];
        if (repeat || in_run == w->batch)
            ceil_flush(kinds, &in_run);
        int kind = (int)w->kind[k];
        if (!kinds[kind])
            kinds[kind] = mongoc_collection_create_bulk_operation_with_opts(coll, bulk_opts);
        bson_t *sel = BCON_NEW("_id", BCON_INT64(w->id[k]));
        if (w->kind[k] == OP_INSERT) {
            bson_t *d = mix_doc(w->id[k], w->value[k]);
            mongoc_bulk_operation_insert_with_opts(kinds[kind], d, NULL, &e);
            bson_destroy(d);
        } else if (w->kind[k] == OP_UPDATE) {
            bson_t *u = BCON_NEW("$set", "{", "n", BCON_INT64(w->value[k]), "}");
            mongoc_bulk_operation_update_one_with_opts(kinds[kind], sel, u, NULL, &e);
            bson_destroy(u);
        } else {
            mongoc_bulk_operation_remove_one_with_opts(kinds[kind], sel, NULL, &e);
        }
        bson_destroy(sel);
        run_ids[in_run++] = w->id[k];
        w->mine++;
    }
    ceil_flush(kinds, &in_run);
    free(run_ids);
    bson_destroy(bulk_opts);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(w->pool, c);
    return NULL;
}

static int applyceil(int argc, char **argv)
{
    const char *db = arg(argc, argv, "--db", "bench");
    int64_t next_id = strtoll(arg(argc, argv, "--docs", "100000"), NULL, 10);
    int64_t n = strtoll(arg(argc, argv, "--ops", "100000"), NULL, 10);
    int threads = (int)strtol(arg(argc, argv, "--threads", "8"), NULL, 10);
    int batch = (int)strtol(arg(argc, argv, "--batch", "1000"), NULL, 10);
    if (n < 1 || threads < 1 || batch < 1)
        return 2;
    mix_kind_t *kind = malloc((size_t)n * sizeof *kind);
    int64_t *id = malloc((size_t)n * sizeof *id), *value = malloc((size_t)n * sizeof *value);
    uint64_t seed = 42;
    for (int64_t k = 0; k < n; k++)
        kind[k] = mix_op(&seed, &next_id, &id[k], &value[k]);
    mongoc_uri_t *uri = mongoc_uri_new(arg(argc, argv, "--target", ""));
    mongoc_client_pool_t *pool = mongoc_client_pool_new(uri);
    mongoc_client_pool_max_size(pool, (uint32_t)threads + 1);
    ceil_t *w = calloc((size_t)threads, sizeof *w);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    int64_t t0 = lm_time_mono_ms();
    for (int t = 0; t < threads; t++) {
        w[t] = (ceil_t){.pool = pool,
                        .db = db,
                        .batch = batch,
                        .kind = kind,
                        .id = id,
                        .value = value,
                        .n = n,
                        .part = t,
                        .parts = threads};
        pthread_create(&th[t], NULL, ceil_worker, &w[t]);
    }
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    double took = (double)(lm_time_mono_ms() - t0) / 1000.0;
    printf("{\"what\":\"applyceil\",\"ops\":%" PRId64 ",\"threads\":%d,\"batch\":%d,"
           "\"seconds\":%.2f,\"ops_per_s\":%.1f}\n",
           n, threads, batch, took, (double)n / took);
    mongoc_client_pool_destroy(pool);
    mongoc_uri_destroy(uri);
    free(kind);
    free(id);
    free(value);
    return 0;
}

static int run(int argc, char **argv)
{
    int i = 1;
    while (i < argc && strcmp(argv[i], "--") != 0)
        i++;
    if (i + 1 >= argc)
        return 2;
    pid_t pid;
    int64_t t0 = lm_time_mono_ms();
    if (posix_spawnp(&pid, argv[i + 1], NULL, NULL, argv + i + 1, environ) != 0)
        return 2;
    int st;
    struct rusage ru;
    wait4(pid, &st, 0, &ru);
    double secs = (double)(lm_time_mono_ms() - t0) / 1000.0;
    if (!freopen(arg(argc, argv, "--report", "/dev/stderr"), "w", stdout))
        return 2;
    report("run", 0, 0, secs, &ru);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr,
                "usage: lm_bench ceiling|naive|load|applyceil|run ... (see bench/lm_bench.c)\n");
        return 2;
    }
    mongoc_init();
    int rc = strcmp(argv[1], "ceiling") == 0     ? ceiling(argc - 1, argv + 1)
             : strcmp(argv[1], "naive") == 0     ? naive(argc - 1, argv + 1)
             : strcmp(argv[1], "run") == 0       ? run(argc - 1, argv + 1)
             : strcmp(argv[1], "load") == 0      ? load(argc - 1, argv + 1)
             : strcmp(argv[1], "applyceil") == 0 ? applyceil(argc - 1, argv + 1)
                                                 : 2;
    mongoc_cleanup();
    return rc;
}
