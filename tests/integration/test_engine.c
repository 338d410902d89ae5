/* lm_engine as a library object, against real servers:
 *  - two engines in one process, on shared connection pools, checkpointing on one target
 *    under their own keys, run at the same time and both complete (before, an engine
 *    started its own status server and printed its own summary: two would collide);
 *  - the phases can be driven one by one, and a second run of a finished engine finds the
 *    job complete under its key;
 *  - a streaming engine cuts over when its cutover gate (a callback) opens;
 *  - a resumed job copies exactly the ranges its checkpoint planned (read in one query, even
 *    a plan written by the one-document writer), and the plans it makes itself are saved in
 *    batches (more than one batch here) that the one-document reader finds. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "lm_conn.h"
#include "lm_engine.h"
#include "lm_meta.h"
#include "lm_test_util.h"
#include "lm_testbed.h"
#include "lm_time.h"

static lm_testbed_server_t src, dst;
static char dir[512];

static void setup(void)
{
    lm_test_mkdtemp(dir, sizeof dir);
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    lm_conn_global_init();
}

static void teardown(void)
{
    lm_testbed_stop(&src);
    lm_testbed_stop(&dst);
    lm_test_rmtree(dir);
}

TestSuite(engine, .init = setup, .fini = teardown, .timeout = 300);

static mongoc_client_pool_t *pool_of(const lm_testbed_server_t *srv, const char *side)
{
    lm_error_t err;
    lm_conn_opts_t o = {.side = side, .uri = srv->uri};
    mongoc_client_pool_t *p = lm_conn_pool_new(&o, &err);
    cr_assert_not_null(p, "%s", err.message);
    mongoc_client_pool_max_size(p, 32);
    return p;
}

static void seed(mongoc_client_pool_t *pool, const char *db, int n)
{
    bson_error_t e;
    mongoc_client_t *c = mongoc_client_pool_pop(pool);
    for (int k = 0; k < 3; k++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", k);
        mongoc_collection_t *col = mongoc_client_get_collection(c, db, name);
        for (int i = 0; i < n; i++) {
            bson_t *d = BCON_NEW("_id", BCON_INT32(i), "db", BCON_UTF8(db), "k", BCON_INT32(k));
            cr_assert(mongoc_collection_insert_one(col, d, NULL, NULL, &e), "%s", e.message);
            bson_destroy(d);
        }
        mongoc_collection_destroy(col);
    }
    mongoc_client_pool_push(pool, c);
}

static int64_t count(mongoc_client_pool_t *pool, const char *db, const char *coll)
{
    bson_error_t e;
    bson_t empty = BSON_INITIALIZER;
    mongoc_client_t *c = mongoc_client_pool_pop(pool);
    mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
    int64_t n = mongoc_collection_count_documents(col, &empty, NULL, NULL, NULL, &e);
    mongoc_collection_destroy(col);
    mongoc_client_pool_push(pool, c);
    return n;
}

/* A job's options as `livemig-agent migrate` would parse them. */
static void job_for(lm_job_t *job, const char *include, bool copy_only, const char *name)
{
    lm_error_t err;
    bool help = false;
    char state[700];
    snprintf(state, sizeof state, "%s/%s", dir, name);
    char *argv[16];
    int n = 0;
    argv[n++] = "migrate";
    argv[n++] = "--source";
    argv[n++] = src.uri;
    argv[n++] = "--target";
    argv[n++] = dst.uri;
    argv[n++] = "--include";
    argv[n++] = (char *)include;
    argv[n++] = "--state-dir";
    argv[n++] = state;
    argv[n++] = "--status-addr";
    argv[n++] = "0";
    if (copy_only)
        argv[n++] = "--copy-only";
    argv[n] = NULL;
    memset(job, 0, sizeof *job);
    cr_assert(lm_job_from_args(job, n, argv, &help, &err), "%s", err.message);
    cr_assert(lm_job_finish(job, &err), "%s", err.message);
}

typedef struct {
    lm_job_t job;
    lm_status_t st;
    lm_engine_t *engine;
    lm_engine_outcome_t outcome;
    pthread_t thread;
} run_t;

static void *run_main(void *arg)
{
    run_t *r = arg;
    r->outcome = lm_engine_run(r->engine);
    return NULL;
}

Test(engine, two_engines_in_one_process_share_pools_and_a_target)
{
    static atomic_bool stop;
    mongoc_client_pool_t *sp = pool_of(&src, "source"), *dp = pool_of(&dst, "target");
    seed(sp, "alpha", 300);
    seed(sp, "beta", 200);
    run_t r[2];
    const char *includes[2] = {"alpha.*", "beta.*"}, *keys[2] = {"shard-a", "shard-b"};
    for (int i = 0; i < 2; i++) {
        job_for(&r[i].job, includes[i], true, keys[i]);
        lm_status_init(&r[i].st, keys[i]);
        lm_engine_opts_t o = {.job = &r[i].job,
                              .status = &r[i].st,
                              .stop = &stop,
                              .source = sp,
                              .target = dp,
                              .checkpoint_key = keys[i]};
        r[i].engine = lm_engine_new(&o);
        cr_assert_not_null(r[i].engine);
    }
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&r[i].thread, NULL, run_main, &r[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(r[i].thread, NULL);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(r[i].outcome, LM_ENGINE_COMPLETE, "%s: %s", keys[i],
                     lm_engine_error(r[i].engine)->message);
        lm_engine_summary_t sum;
        lm_engine_summary(r[i].engine, &sum);
        cr_assert_str_eq(sum.job_id, keys[i]);
        cr_assert_eq(r[i].st.state, LM_STATE_COMPLETE);
        cr_assert_eq(r[i].st.n_colls, 3, "%s copied only its own namespaces", keys[i]);
    }
    cr_assert_eq(atomic_load(&r[0].st.docs), 900);
    cr_assert_eq(atomic_load(&r[1].st.docs), 600);
    for (int k = 0; k < 3; k++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", k);
        cr_assert_eq(count(dp, "alpha", name), 300);
        cr_assert_eq(count(dp, "beta", name), 200);
    }
    /* each key has its own checkpoint on the one target */
    mongoc_client_t *c = mongoc_client_pool_pop(dp);
    for (int i = 0; i < 2; i++) {
        lm_meta_job_t m;
        lm_error_t err;
        cr_assert(lm_meta_load_job(c, keys[i], &m, &err), "%s", err.message);
        cr_assert(m.exists, "%s has a checkpoint", keys[i]);
        cr_assert_str_eq(m.phase, "COMPLETE");
    }
    mongoc_client_pool_push(dp, c);
    for (int i = 0; i < 2; i++) {
        lm_engine_destroy(r[i].engine);
        lm_status_cleanup(&r[i].st);
        lm_job_cleanup(&r[i].job);
    }

    /* Driven phase by phase, a finished key is found complete and nothing is redone. */
    lm_job_t job;
    lm_status_t st;
    job_for(&job, "alpha.*", true, "again");
    lm_status_init(&st, "again");
    lm_engine_opts_t o = {.job = &job,
                          .status = &st,
                          .stop = &stop,
                          .source = sp,
                          .target = dp,
                          .checkpoint_key = "shard-a"};
    lm_engine_t *e = lm_engine_new(&o);
    cr_assert(lm_engine_prepare(e), "%s", lm_engine_error(e)->message);
    cr_assert(lm_engine_already_complete(e));
    cr_assert_eq(atomic_load(&st.docs), 0);
    lm_engine_destroy(e);
    lm_status_cleanup(&st);
    lm_job_cleanup(&job);
    /* the engines did not close the caller's pools */
    cr_assert_eq(count(sp, "alpha", "c0"), 300);
    mongoc_client_pool_destroy(sp);
    mongoc_client_pool_destroy(dp);
}

/* Opens once the engine streams and a change made after the copy is on the target. */
typedef struct {
    lm_status_t *st;
    mongoc_client_pool_t *dst;
    atomic_int asked;
} gate_t;

static bool gate_open(void *ud)
{
    gate_t *g = ud;
    atomic_fetch_add(&g->asked, 1);
    return lm_status_get_phase(g->st) == LM_PHASE_STREAMING && count(g->dst, "gamma", "late") == 1;
}

Test(engine, a_streaming_engine_cuts_over_when_its_gate_opens)
{
    static atomic_bool stop;
    mongoc_client_pool_t *sp = pool_of(&src, "source"), *dp = pool_of(&dst, "target");
    seed(sp, "gamma", 100);
    run_t r;
    job_for(&r.job, "gamma.*", false, "gamma");
    lm_status_init(&r.st, "gamma");
    gate_t g = {.st = &r.st, .dst = dp};
    lm_engine_opts_t o = {.job = &r.job,
                          .status = &r.st,
                          .stop = &stop,
                          .source = sp,
                          .target = dp,
                          .checkpoint_key = "gamma",
                          .cutover_gate = gate_open,
                          .gate_ud = &g};
    r.engine = lm_engine_new(&o);
    cr_assert_eq(pthread_create(&r.thread, NULL, run_main, &r), 0);
    int64_t until = lm_time_mono_ms() + 60000;
    while (lm_status_get_phase(&r.st) != LM_PHASE_STREAMING && lm_time_mono_ms() < until)
        lm_time_sleep_ms(100, NULL);
    cr_assert_eq(lm_status_get_phase(&r.st), LM_PHASE_STREAMING);
    /* a change after the copy: the gate waits for it to arrive through the stream */
    mongoc_client_t *c = mongoc_client_pool_pop(sp);
    mongoc_collection_t *col = mongoc_client_get_collection(c, "gamma", "late");
    bson_t *d = BCON_NEW("_id", BCON_INT32(1));
    bson_error_t e;
    cr_assert(mongoc_collection_insert_one(col, d, NULL, NULL, &e), "%s", e.message);
    bson_destroy(d);
    mongoc_collection_destroy(col);
    mongoc_client_pool_push(sp, c);
    pthread_join(r.thread, NULL);
    cr_assert_eq(r.outcome, LM_ENGINE_COMPLETE, "%s", lm_engine_error(r.engine)->message);
    cr_assert_gt(atomic_load(&g.asked), 0, "the stream asked the gate");
    cr_assert_eq(r.st.state, LM_STATE_COMPLETE);
    cr_assert_eq(count(dp, "gamma", "late"), 1);
    lm_stream_status_t ss;
    lm_status_get_stream(&r.st, &ss);
    cr_assert_neq(ss.final_t, 0, "the cutover recorded its final position");
    lm_engine_destroy(r.engine);
    lm_status_cleanup(&r.st);
    lm_job_cleanup(&r.job);
    mongoc_client_pool_destroy(sp);
    mongoc_client_pool_destroy(dp);
}

Test(engine, a_resumed_job_copies_exactly_the_saved_ranges)
{
    static atomic_bool stop;
    enum { SMALL = 300 }; /* more than one batch of saved plans */
    const char *key = "resumed";
    bson_error_t be;
    lm_error_t err;
    mongoc_client_pool_t *sp = pool_of(&src, "source"), *dp = pool_of(&dst, "target");
    mongoc_client_t *s = mongoc_client_pool_pop(sp), *t = mongoc_client_pool_pop(dp);
    mongoc_collection_t *big = mongoc_client_get_collection(s, "many", "big");
    for (int i = 0; i < 100; i++) {
        bson_t *d = BCON_NEW("_id", BCON_INT32(i));
        cr_assert(mongoc_collection_insert_one(big, d, NULL, NULL, &be), "%s", be.message);
        bson_destroy(d);
    }
    mongoc_collection_destroy(big);
    for (int k = 0; k < SMALL; k++) {
        char name[16];
        snprintf(name, sizeof name, "s%03d", k);
        mongoc_collection_t *col = mongoc_client_get_collection(s, "many", name);
        bson_t *d = BCON_NEW("_id", BCON_INT32(k));
        cr_assert(mongoc_collection_insert_one(col, d, NULL, NULL, &be), "%s", be.message);
        bson_destroy(d);
        mongoc_collection_destroy(col);
    }
    /* The checkpoint of a run stopped while planning: many.big created and planned in two
     * ranges (not what the planner would choose for 100 documents), its first range
     * copied; nothing else planned yet. */
    lm_meta_job_t m = {.phase = "COPYING"};
    cr_assert(lm_meta_create_job(t, key, &m, &err), "%s", err.message);
    bson_t *cmd = BCON_NEW("create", BCON_UTF8("big"));
    cr_assert(mongoc_client_write_command_with_opts(t, "many", cmd, NULL, NULL, &be), "%s",
              be.message);
    bson_destroy(cmd);
    bson_t *ranges = BCON_NEW("0", "{", "_id", "{", "$lt", BCON_INT32(40), "}", "}", "1", "{",
                              "_id", "{", "$gte", BCON_INT32(40), "}", "}");
    cr_assert(lm_meta_save_plan(t, key, "many.big", ranges, &err), "%s", err.message);
    bson_destroy(ranges);
    cr_assert(lm_meta_mark_range_done(t, key, "many.big", 0, 40, &err), "%s", err.message);

    lm_job_t job;
    lm_status_t st;
    job_for(&job, "many.*", true, key);
    lm_status_init(&st, key);
    lm_engine_opts_t o = {.job = &job,
                          .status = &st,
                          .stop = &stop,
                          .source = sp,
                          .target = dp,
                          .checkpoint_key = key};
    lm_engine_t *e = lm_engine_new(&o);
    cr_assert_eq(lm_engine_run(e), LM_ENGINE_COMPLETE, "%s", lm_engine_error(e)->message);
    lm_coll_status_t *cs = lm_status_find(&st, "many.big");
    cr_assert_not_null(cs);
    cr_assert_eq(cs->ranges_total, 2, "the saved plan is used, not a new one");
    cr_assert_eq(count(dp, "many", "big"), 60, "only the range not recorded done is copied");
    cr_assert_eq(atomic_load(&st.docs), 60 + SMALL);
    /* every other collection: copied, and its plan saved where the one-document reader
     * finds it */
    for (int k = 0; k < SMALL; k++) {
        char name[16], ns[32];
        bson_t *plan = NULL;
        snprintf(name, sizeof name, "s%03d", k);
        snprintf(ns, sizeof ns, "many.%s", name);
        cr_assert_eq(count(dp, "many", name), 1, "%s", ns);
        cr_assert(lm_meta_load_plan(t, key, ns, &plan, &err), "%s", err.message);
        cr_assert_not_null(plan, "the plan of %s was saved", ns);
        cr_assert_eq(bson_count_keys(plan), 1, "%s: one range", ns);
        bson_destroy(plan);
    }
    lm_engine_destroy(e);
    lm_status_cleanup(&st);
    lm_job_cleanup(&job);
    mongoc_client_pool_push(sp, s);
    mongoc_client_pool_push(dp, t);
    mongoc_client_pool_destroy(sp);
    mongoc_client_pool_destroy(dp);
}

typedef struct {
    int ranges, indexed;
    int64_t docs_x1; /* docs recorded for a.x range 1 */
} done_seen_t;

static void on_done_seen(void *ud, const char *ns, int range, int64_t docs)
{
    done_seen_t *d = ud;
    if (range < 0) {
        d->indexed++;
        return;
    }
    d->ranges++;
    if (strcmp(ns, "a.x") == 0 && range == 1)
        d->docs_x1 = docs;
}

static void on_plan_seen(void *ud, const char *ns, const bson_t *ranges)
{
    if (strcmp(ns, "a.x") == 0)
        *(uint32_t *)ud = bson_count_keys(ranges);
}

/* The checkpoint records written in batches (inserts first, then upserts of the ones that
 * were already there) read back as the one-by-one writes did, repeats replacing. */
Test(engine, batched_checkpoint_records_replace_repeats)
{
    const char *key = "batched";
    lm_error_t err;
    mongoc_client_pool_t *dp = pool_of(&dst, "target");
    mongoc_client_t *t = mongoc_client_pool_pop(dp);
    lm_meta_job_t m = {.phase = "COPYING"};
    cr_assert(lm_meta_create_job(t, key, &m, &err), "%s", err.message);

    const char *ns1[] = {"a.x", "a.x", "a.y"};
    int r1[] = {0, 1, 0};
    int64_t d1[] = {10, 20, 30};
    cr_assert(lm_meta_mark_ranges_done(t, key, 3, ns1, r1, d1, &err), "%s", err.message);
    const char *ns2[] = {"a.x", "a.z"}; /* a.x range 1 again, a.z new */
    int r2[] = {1, 0};
    int64_t d2[] = {25, 5};
    cr_assert(lm_meta_mark_ranges_done(t, key, 2, ns2, r2, d2, &err), "%s", err.message);
    const char *ix1[] = {"a.x", "a.y"}, *ix2[] = {"a.y", "a.z"};
    cr_assert(lm_meta_mark_indexes_done_many(t, key, 2, ix1, &err), "%s", err.message);
    cr_assert(lm_meta_mark_indexes_done_many(t, key, 2, ix2, &err), "%s", err.message);
    done_seen_t seen = {0};
    cr_assert(lm_meta_each_done(t, key, on_done_seen, &seen, &err), "%s", err.message);
    cr_assert_eq(seen.ranges, 4, "a.x 0 and 1, a.y 0, a.z 0: %d", seen.ranges);
    cr_assert_eq(seen.docs_x1, 25, "the repeated record replaced the first: %lld",
                 (long long)seen.docs_x1);
    cr_assert_eq(seen.indexed, 3, "a.x, a.y, a.z: %d", seen.indexed);

    bson_t *one = BCON_NEW("0", "{", "}");
    bson_t *two = BCON_NEW("0", "{", "_id", "{", "$lt", BCON_INT32(5), "}", "}", "1", "{", "_id",
                           "{", "$gte", BCON_INT32(5), "}", "}");
    const char *pn[] = {"a.x"};
    bson_t *p1[] = {one}, *p2[] = {two};
    cr_assert(lm_meta_save_plans(t, key, 1, pn, p1, &err), "%s", err.message);
    cr_assert(lm_meta_save_plans(t, key, 1, pn, p2, &err), "%s", err.message);
    uint32_t nranges = 0;
    cr_assert(lm_meta_load_plans(t, key, on_plan_seen, &nranges, &err), "%s", err.message);
    cr_assert_eq(nranges, 2, "the plan saved last is the one read: %u ranges", nranges);
    bson_destroy(one);
    bson_destroy(two);
    mongoc_client_pool_push(dp, t);
    mongoc_client_pool_destroy(dp);
}
