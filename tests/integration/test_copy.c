/* lm_copy against real servers, for what the end-to-end tests cannot isolate:
 *  - a server quirk belongs to the source it was learnt from: after a copy from FerretDB
 *    (which refuses noCursorTimeout), a copy from SecantusDB in the same process still asks
 *    for noCursorTimeout (it was a process-wide flag, so a daemon dropped it for every later
 *    job against any server);
 *  - threads that cannot be started fail the copy with a clear error and no crash or hang
 *    (it joined threads that never started);
 *  - a fenced target pool or client (a daemon's part with a lease) sends nothing once the
 *    lease ran out, on a connection opened before or after, over TCP and TLS. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "lm_conn.h"
#include "lm_copy.h"
#include "lm_time.h"
#include "lm_tune.h"
#include "lm_status.h"
#include "lm_testbed.h"

static lm_testbed_server_t ferret, secantus;

static void start_servers(void)
{
    lm_testbed_start("ferretdb", NULL, &ferret);
    lm_testbed_start("secantus", NULL, &secantus);
}

static void stop_servers(void)
{
    lm_testbed_stop(&ferret);
    lm_testbed_stop(&secantus);
}

TestSuite(copy, .init = start_servers, .fini = stop_servers, .timeout = 240);

static mongoc_client_pool_t *pool_of(const lm_testbed_server_t *srv, const char *side)
{
    lm_error_t err;
    lm_conn_opts_t o = {.side = side, .uri = srv->uri};
    lm_conn_global_init();
    mongoc_client_pool_t *p = lm_conn_pool_new(&o, &err);
    cr_assert_not_null(p, "%s: %s", srv->kind, err.message);
    return p;
}

static void seed(const lm_testbed_server_t *srv, const char *db, const char *coll, int n)
{
    bson_error_t e;
    mongoc_client_pool_t *pool = pool_of(srv, "source");
    mongoc_client_t *c = lm_conn_pool_pop(pool);
    mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
    mongoc_collection_drop(col, NULL);
    for (int i = 0; i < n; i++) {
        bson_t *d = BCON_NEW("_id", BCON_INT32(i), "v", BCON_UTF8("x"));
        cr_assert(mongoc_collection_insert_one(col, d, NULL, NULL, &e), "%s", e.message);
        bson_destroy(d);
    }
    mongoc_collection_destroy(col);
    mongoc_client_pool_push(pool, c);
    lm_conn_pool_destroy(pool);
}

static int64_t count_on(const lm_testbed_server_t *srv, const char *db, const char *coll)
{
    bson_error_t e;
    mongoc_client_pool_t *pool = pool_of(srv, "target");
    mongoc_client_t *c = lm_conn_pool_pop(pool);
    mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
    bson_t empty = BSON_INITIALIZER;
    int64_t n = mongoc_collection_count_documents(col, &empty, NULL, NULL, NULL, &e);
    mongoc_collection_destroy(col);
    mongoc_client_pool_push(pool, c);
    lm_conn_pool_destroy(pool);
    return n;
}

/* The find commands the source saw, with whether each asked for noCursorTimeout. */
typedef struct {
    atomic_int finds, with_no_timeout;
} seen_t;

static void on_started(const mongoc_apm_command_started_t *ev)
{
    seen_t *seen = mongoc_apm_command_started_get_context(ev);
    if (strcmp(mongoc_apm_command_started_get_command_name(ev), "find") != 0)
        return;
    bson_iter_t it;
    atomic_fetch_add(&seen->finds, 1);
    if (bson_iter_init_find(&it, mongoc_apm_command_started_get_command(ev), "noCursorTimeout") &&
        bson_iter_as_bool(&it))
        atomic_fetch_add(&seen->with_no_timeout, 1);
}

typedef struct {
    mongoc_client_pool_t *src, *dst;
    lm_conn_caps_t caps;
    lm_status_t st;
    lm_coll_status_t *cs;
    lm_copy_task_t task;
    atomic_bool stop;
} copy_t;

static void copy_init(copy_t *c, const lm_testbed_server_t *from, const lm_testbed_server_t *to,
                      const char *db, const char *coll, seen_t *seen)
{
    memset(c, 0, sizeof *c);
    c->src = seen ? NULL : pool_of(from, "source");
    c->dst = pool_of(to, "target");
    if (seen) { /* command monitoring is set before the pool's first client is popped */
        lm_error_t err;
        lm_conn_opts_t o = {.side = "source", .uri = from->uri};
        mongoc_uri_t *uri = lm_conn_uri_new(&o, &err);
        cr_assert_not_null(uri, "%s", err.message);
        c->src = mongoc_client_pool_new(uri);
        mongoc_uri_destroy(uri);
        mongoc_apm_callbacks_t *cb = mongoc_apm_callbacks_new();
        mongoc_apm_set_command_started_cb(cb, on_started);
        cr_assert(mongoc_client_pool_set_apm_callbacks(c->src, cb, seen));
        mongoc_apm_callbacks_destroy(cb);
    }
    lm_status_init(&c->st, "copy-test");
    c->cs = calloc(1, sizeof *c->cs);
    snprintf(c->cs->ns, sizeof c->cs->ns, "%s.%s", db, coll);
    c->cs->ranges_total = 1;
    lm_status_set_collections(&c->st, c->cs, 1);
    snprintf(c->task.db, sizeof c->task.db, "%s", db);
    snprintf(c->task.coll, sizeof c->task.coll, "%s", coll);
    snprintf(c->task.ns, sizeof c->task.ns, "%s.%s", db, coll);
    c->task.filter = bson_new();
    c->task.status = c->cs;
}

static void copy_cleanup(copy_t *c)
{
    bson_destroy(c->task.filter);
    lm_status_cleanup(&c->st);
    lm_conn_pool_destroy(c->src);
    lm_conn_pool_destroy(c->dst);
}

static void task_done(void *ud, lm_copy_task_t *t)
{
    (void)ud;
    (void)t;
}

/* workers 0: the copy chooses its number of writers (lm_tune) */
static bool run_copy_n(copy_t *c, lm_copy_spawn_fn spawn, int workers, lm_error_t *err)
{
    lm_copy_opts_t o = {.source = c->src,
                        .target = c->dst,
                        .source_caps = &c->caps,
                        .workers = workers,
                        .buffer_bytes = 8 << 20,
                        .status = &c->st,
                        .stop = &c->stop,
                        .on_task_done = task_done,
                        .ud = c,
                        .spawn = spawn};
    lm_error_init(err);
    return lm_copy_run(&o, &c->task, 1, err);
}

static bool run_copy(copy_t *c, lm_copy_spawn_fn spawn, lm_error_t *err)
{
    return run_copy_n(c, spawn, 2, err);
}

Test(copy, a_quirk_of_one_source_does_not_change_another)
{
    lm_error_t err;
    seen_t from_ferret = {0}, from_secantus = {0};
    copy_t a, b;

    seed(&ferret, "capsa", "c", 50);
    copy_init(&a, &ferret, &secantus, "capsa", "c", &from_ferret);
    cr_assert(run_copy(&a, NULL, &err), "%s", err.message);
    cr_assert_eq(count_on(&secantus, "capsa", "c"), 50);
    cr_assert(atomic_load(&a.caps.no_cursor_timeout_refused),
              "FerretDB refuses noCursorTimeout: the refusal is learnt for that source");
    cr_assert_eq(atomic_load(&from_ferret.finds), 2, "one refused find, one without the option: %d",
                 atomic_load(&from_ferret.finds));
    copy_cleanup(&a);

    /* Another job in the same process, from a server that takes the option. */
    seed(&secantus, "capsb", "c", 50);
    copy_init(&b, &secantus, &ferret, "capsb", "c", &from_secantus);
    cr_assert(run_copy(&b, NULL, &err), "%s", err.message);
    cr_assert_eq(count_on(&ferret, "capsb", "c"), 50);
    cr_assert_eq(atomic_load(&from_secantus.finds), 1, "finds: %d",
                 atomic_load(&from_secantus.finds));
    cr_assert_eq(atomic_load(&from_secantus.with_no_timeout), 1,
                 "SecantusDB's find must still carry noCursorTimeout after FerretDB refused it");
    cr_assert_not(atomic_load(&b.caps.no_cursor_timeout_refused));
    copy_cleanup(&b);
}

/* Starts the first `allowed` threads and refuses the rest, as a process at its thread limit. */
static atomic_int spawned, allowed;

static int limited_spawn(pthread_t *th, void *(*fn)(void *), void *arg)
{
    if (atomic_fetch_add(&spawned, 1) >= atomic_load(&allowed))
        return EAGAIN;
    return pthread_create(th, NULL, fn, arg);
}

Test(copy, threads_that_cannot_start_fail_the_copy_cleanly)
{
    lm_error_t err;
    seed(&secantus, "spawn", "c", 20);
    /* 2 workers: writer, reader, writer, reader. Refuse after 0, 1, 2 and 3 started. */
    for (int limit = 0; limit < 4; limit++) {
        copy_t c;
        atomic_store(&spawned, 0);
        atomic_store(&allowed, limit);
        copy_init(&c, &secantus, &ferret, "spawn", "c", NULL);
        cr_assert_not(run_copy(&c, limited_spawn, &err), "limit %d: the copy cannot succeed",
                      limit);
        cr_assert_eq(err.code, LM_ERR_INTERNAL, "limit %d: %s", limit, err.message);
        cr_assert(strstr(err.message, "cannot start the copy's threads"), "limit %d: %s", limit,
                  err.message);
        if (limit < 2) /* no reader ran */
            cr_assert_not(atomic_load(&c.task.done), "limit %d: nothing may be recorded as done",
                          limit);
        copy_cleanup(&c);
    }
}

Test(copy, auto_writers_copy_everything_and_report_their_number)
{
    lm_error_t err;
    copy_t c;
    /* 2500 documents: three batches of a self-tuning copy */
    seed(&secantus, "autow", "c", 2500);
    copy_init(&c, &secantus, &ferret, "autow", "c", NULL);
    cr_assert(run_copy_n(&c, NULL, 0, &err), "%s", err.message);
    cr_assert_eq(count_on(&ferret, "autow", "c"), 2500);
    cr_assert(atomic_load(&c.task.done));
    cr_assert(atomic_load(&c.st.copy_writers_auto));
    cr_assert_eq(atomic_load(&c.st.copy_writers_max), LM_TUNE_AUTO_MAX);
    cr_assert_eq(atomic_load(&c.st.copy_writers_active), 0, "no writers once the copy ended");
    copy_cleanup(&c);
}

Test(copy, auto_threads_that_cannot_start_fail_the_copy_cleanly)
{
    lm_error_t err;
    seed(&secantus, "spawnauto", "c", 20);
    /* auto starts 8 writers and 8 readers, most of them parked: every one must leave */
    for (int limit = 0; limit < 2 * LM_TUNE_AUTO_MAX; limit += 3) {
        copy_t c;
        atomic_store(&spawned, 0);
        atomic_store(&allowed, limit);
        copy_init(&c, &secantus, &ferret, "spawnauto", "c", NULL);
        cr_assert_not(run_copy_n(&c, limited_spawn, 0, &err), "limit %d: the copy cannot succeed",
                      limit);
        cr_assert(strstr(err.message, "cannot start the copy's threads"), "limit %d: %s", limit,
                  err.message);
        copy_cleanup(&c);
    }
}

/* Inserts {_id: id} into fence.c through client; true when the target took it. */
static bool insert_id(mongoc_client_t *client, int id, bson_error_t *e)
{
    mongoc_collection_t *col = mongoc_client_get_collection(client, "fence", "c");
    bson_t *d = BCON_NEW("_id", BCON_INT32(id));
    bool ok = mongoc_collection_insert_one(col, d, NULL, NULL, e);
    bson_destroy(d);
    mongoc_collection_destroy(col);
    return ok;
}

/* The lease fence on the server of o ( lease of 60 s from now): a client popped while the
 * lease holds writes; once the lease ran out, the same client (its connection already open,
 * so no handshake stands between) and a client popped afterwards both have their sends
 * refused, and the target holds the one document written in time. An unfenced pool beside
 * it writes on (the control: the refusal is the fence's, not the server's). */
static void fence_case(lm_conn_opts_t o)
{
    lm_error_t err;
    bson_error_t e;
    atomic_llong ok_ms;
    atomic_store(&ok_ms, lm_time_boot_ms());
    o.lease_ok_ms = &ok_ms;
    o.lease_ms = 60000;
    lm_conn_global_init();
    mongoc_client_pool_t *fenced = lm_conn_pool_new(&o, &err);
    cr_assert_not_null(fenced, "%s", err.message);
    mongoc_client_t *single = lm_conn_client_new(&o, &err); /* the coordinator's kind */
    cr_assert_not_null(single, "%s", err.message);
    o.lease_ok_ms = NULL;
    o.lease_ms = 0;
    mongoc_client_pool_t *plain = lm_conn_pool_new(&o, &err);
    cr_assert_not_null(plain, "%s", err.message);
    mongoc_client_t *early = lm_conn_pool_pop(fenced), *other = lm_conn_pool_pop(plain);
    mongoc_collection_t *col = mongoc_client_get_collection(other, "fence", "c");
    mongoc_collection_drop(col, NULL);
    mongoc_collection_destroy(col);
    cr_assert(insert_id(early, 1, &e), "the lease holds: %s", e.message);
    cr_assert(insert_id(single, 5, &e), "the lease holds: %s", e.message);
    cr_assert_not(lm_conn_pool_fenced_out(fenced));

    atomic_store(&ok_ms, lm_time_boot_ms() - 60001); /* the lease runs out */
    cr_assert(lm_conn_pool_fenced_out(fenced));
    cr_assert_not(lm_conn_pool_fenced_out(plain));
    cr_assert_not(insert_id(early, 2, &e), "an open connection sent past the lease");
    cr_assert_eq(e.domain, MONGOC_ERROR_STREAM, "refused as a lost connection: %s", e.message);
    mongoc_client_t *late = lm_conn_pool_pop(fenced);
    cr_assert_not(insert_id(late, 3, &e), "a new connection sent past the lease");
    /* promptly: a refused server check was once retried in a busy loop until the connect
     * timeout (20 s here) */
    int64_t t0 = lm_time_mono_ms();
    cr_assert_not(insert_id(single, 6, &e), "a single client sent past the lease");
    cr_assert_lt(lm_time_mono_ms() - t0, 10000, "the refusal took %lld ms",
                 (long long)(lm_time_mono_ms() - t0));
    cr_assert(insert_id(other, 4, &e), "the unfenced pool writes on: %s", e.message);

    col = mongoc_client_get_collection(other, "fence", "c");
    bson_t empty = BSON_INITIALIZER;
    int64_t n = mongoc_collection_count_documents(col, &empty, NULL, NULL, NULL, &e);
    mongoc_collection_destroy(col);
    cr_assert_eq(n, 3, "the target holds %lld documents: only _id 1, 5 (in time), 4 (unfenced)",
                 (long long)n);
    lm_conn_client_destroy(single);
    mongoc_client_pool_push(fenced, early);
    mongoc_client_pool_push(fenced, late);
    mongoc_client_pool_push(plain, other);
    lm_conn_pool_destroy(fenced);
    lm_conn_pool_destroy(plain);
}

Test(copy, a_fenced_target_sends_nothing_once_the_lease_ran_out)
{
    fence_case(
        (lm_conn_opts_t){.side = "target", .uri = secantus.uri, .connect_timeout_ms = 20000});
    lm_testbed_server_t tls;
    lm_testbed_start("secantus-tls", NULL, &tls);
    fence_case((lm_conn_opts_t){
        .side = "target", .uri = tls.uri, .tls_ca_file = tls.ca_file, .connect_timeout_ms = 20000});
    lm_testbed_stop(&tls);
}
