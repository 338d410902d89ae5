/* lm_bench: helpers for bench/copy (never run by the tests).
 *
 *   lm_bench ceiling --target URI --db D --docs N --doc-bytes B --threads T
 *                    [--collections C] [--skew S]
 *       the write ceiling CEIL_W: N documents shaped like scripts/lm_seed.py's bulk set,
 *       spread over the same C collections (D.c000, ...; the first holding S of them when
 *       --skew is given), are built in memory first, then T threads send them as unordered
 *       bulk inserts of 1000, one collection at a time; only the inserts are timed.
 *   lm_bench naive --source URI --target URI --ns db.coll [--limit N]
 *       a naive copy: one thread, find -> insert_one per document.
 *   lm_bench run --report FILE -- COMMAND...
 *       runs COMMAND and writes its wall time, CPU seconds and peak RSS to FILE (COMMAND
 *       keeps stdout and stderr).
 *
 * Each prints one JSON line: docs, bytes, seconds, docs_per_s, mb_per_s, cpu_s, max_rss_mb. */
#include <inttypes.h>
#include <pthread.h>
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
        for (int64_t i = w->start[k]; i < w->start[k + 1]; i += 1000) {
            int64_t n = w->start[k + 1] - i < 1000 ? w->start[k + 1] - i : 1000;
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

static int ceiling(int argc, char **argv)
{
    const char *db = arg(argc, argv, "--db", "ceil");
    int64_t n = strtoll(arg(argc, argv, "--docs", "100000"), NULL, 10);
    int64_t size = strtoll(arg(argc, argv, "--doc-bytes", "1000"), NULL, 10);
    int threads = (int)strtol(arg(argc, argv, "--threads", "4"), NULL, 10);
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
    work_t w = {.pool = pool, .db = db, .docs = docs, .start = start, .n_colls = colls};
    pthread_mutex_init(&w.mu, NULL);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    int64_t t0 = lm_time_mono_ms();
    for (int t = 0; t < threads; t++)
        pthread_create(&th[t], NULL, insert_worker, &w);
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    double secs = (double)(lm_time_mono_ms() - t0) / 1000.0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    report("ceiling", n, bytes, secs, &ru);
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
        fprintf(stderr, "usage: lm_bench ceiling|naive|run ... (see bench/lm_bench.c)\n");
        return 2;
    }
    mongoc_init();
    int rc = strcmp(argv[1], "ceiling") == 0 ? ceiling(argc - 1, argv + 1)
             : strcmp(argv[1], "naive") == 0 ? naive(argc - 1, argv + 1)
             : strcmp(argv[1], "run") == 0   ? run(argc - 1, argv + 1)
                                             : 2;
    mongoc_cleanup();
    return rc;
}
