/* Faults the chaos soak (tests/soak) found the stream failing on, made deterministic with
 * lm_engine driven phase by phase against real servers:
 *  - the source cannot be reached at the moment the stream chooses its capture (the agent
 *    restarted while the source restarted): the job FAILED with "cannot read
 *    local.oplog.rs ... give the source user read access". Here the source server is
 *    stopped with SIGSTOP between the copy and the stream, and continued 10 s later (longer than
 *    the driver's own retry of the read: 2 s socket timeout, then 1 s server selection); the
 *    stream must wait for it, capture from the oplog as asked, and cut over.
 * (The other one, the oplog cursor gone with CursorNotFound, is tests/soak/cursor_killed.py.) */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "lm_conn.h"
#include "lm_engine.h"
#include "lm_test_util.h"
#include "lm_testbed.h"
#include "lm_time.h"

static lm_testbed_server_t src, dst;
static char dir[512];

static void setup(void)
{
    lm_test_mkdtemp(dir, sizeof dir);
    memset(&src, 0, sizeof src);
    memset(&dst, 0, sizeof dst);
    lm_conn_global_init();
}

static void teardown(void)
{
    if (src.pid > 0)
        kill((pid_t)src.pid, SIGCONT); /* never leave it stopped */
    lm_testbed_stop(&src);
    lm_testbed_stop(&dst);
    lm_test_rmtree(dir);
}

TestSuite(stream_faults, .init = setup, .fini = teardown, .timeout = 300);

/* A pool whose operations give up fast (1-2 s) on a server that does not answer. */
static mongoc_client_pool_t *pool_of(const char *uri, const char *side)
{
    char u[700];
    lm_error_t err;
    snprintf(u, sizeof u,
             "%s&serverSelectionTimeoutMS=1000&connectTimeoutMS=1000&socketTimeoutMS=2000", uri);
    lm_conn_opts_t o = {.side = side, .uri = u};
    mongoc_client_pool_t *p = lm_conn_pool_new(&o, &err);
    cr_assert_not_null(p, "%s", err.message);
    return p;
}

static void insert(mongoc_client_pool_t *pool, const char *coll, int id)
{
    bson_error_t e;
    mongoc_client_t *c = mongoc_client_pool_pop(pool);
    mongoc_collection_t *col = mongoc_client_get_collection(c, "fx", coll);
    bson_t *d = BCON_NEW("_id", BCON_INT32(id));
    cr_assert(mongoc_collection_insert_one(col, d, NULL, NULL, &e), "%s", e.message);
    bson_destroy(d);
    mongoc_collection_destroy(col);
    mongoc_client_pool_push(pool, c);
}

static int64_t count(mongoc_client_pool_t *pool, const char *coll)
{
    bson_error_t e;
    bson_t empty = BSON_INITIALIZER;
    mongoc_client_t *c = mongoc_client_pool_pop(pool);
    mongoc_collection_t *col = mongoc_client_get_collection(c, "fx", coll);
    int64_t n = mongoc_collection_count_documents(col, &empty, NULL, NULL, NULL, &e);
    mongoc_collection_destroy(col);
    mongoc_client_pool_push(pool, c);
    return n;
}

typedef struct {
    lm_status_t *st;
    mongoc_client_pool_t *src, *dst;
    atomic_bool inserted;
} gate_t;

/* Once the stream runs (the source is back), a late insert; open when it is on the target. */
static bool gate_open(void *ud)
{
    gate_t *g = ud;
    if (lm_status_get_phase(g->st) != LM_PHASE_STREAMING)
        return false;
    if (!atomic_exchange(&g->inserted, true))
        insert(g->src, "late", 1);
    return count(g->dst, "late") == 1;
}

static void *continue_later(void *arg)
{
    lm_time_sleep_ms(10000, NULL);
    kill((pid_t)(long)arg, SIGCONT);
    return NULL;
}

Test(stream_faults, the_source_unreachable_when_the_capture_is_chosen)
{
    static atomic_bool stop;
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    mongoc_client_pool_t *sp = pool_of(src.uri, "source"), *dp = pool_of(dst.uri, "target");
    for (int i = 0; i < 50; i++)
        insert(sp, "docs", i);
    lm_job_t job;
    lm_status_t st;
    lm_error_t err;
    bool help = false;
    char state[700];
    snprintf(state, sizeof state, "%s/state", dir);
    char *argv[] = {"migrate",   "--source",  src.uri,       "--target", dst.uri,
                    "--include", "fx.*",      "--state-dir", state,      "--status-addr",
                    "0",         "--capture", "oplog",       NULL};
    memset(&job, 0, sizeof job);
    cr_assert(lm_job_from_args(&job, 13, argv, &help, &err), "%s", err.message);
    cr_assert(lm_job_finish(&job, &err), "%s", err.message);
    lm_status_init(&st, "fx");
    gate_t g = {.st = &st, .src = sp, .dst = dp};
    lm_engine_opts_t o = {.job = &job,
                          .status = &st,
                          .stop = &stop,
                          .source = sp,
                          .target = dp,
                          .checkpoint_key = "fx",
                          .cutover_gate = gate_open,
                          .gate_ud = &g};
    lm_engine_t *e = lm_engine_new(&o);
    cr_assert(lm_engine_prepare(e), "%s", lm_engine_error(e)->message);
    cr_assert(lm_engine_copy(e), "%s", lm_engine_error(e)->message);
    cr_assert(lm_engine_build_indexes(e), "%s", lm_engine_error(e)->message);
    /* the source stops answering just as the stream starts, for 10 s */
    cr_assert_eq(kill((pid_t)src.pid, SIGSTOP), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, continue_later, (void *)(long)src.pid), 0);
    bool ok = lm_engine_stream(e);
    pthread_join(t, NULL);
    cr_assert(ok, "the stream failed instead of waiting for the source: %s",
              lm_engine_error(e)->message);
    lm_stream_status_t ss;
    lm_status_get_stream(&st, &ss);
    cr_assert_str_eq(ss.capture, "oplog");
    cr_assert_eq(count(dp, "docs"), 50);
    cr_assert_eq(count(dp, "late"), 1);
    lm_engine_destroy(e);
    lm_status_cleanup(&st);
    lm_job_cleanup(&job);
    mongoc_client_pool_destroy(sp);
    mongoc_client_pool_destroy(dp);
}
