/* libmongoc against every test-bed server through lm_conn: insert, read back byte-exact,
 * and the operator-facing errors for a wrong password, missing credentials, a wrong or
 * missing CA, a closed port and a malformed URI; libmongoc's view of the sharded bed's
 * router stand-in (a mongos) and its listShards. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "lm_conn.h"
#include "lm_test_util.h"
#include "lm_testbed.h"
#include "lm_time.h"

static lm_testbed_server_t srv;
static lm_error_t err;

static void teardown(void)
{
    lm_testbed_stop(&srv);
}

TestSuite(testbed, .fini = teardown, .timeout = 120);

static void insert_and_read_back(mongoc_client_t *c, const char *label)
{
    bson_error_t berr;
    bson_t *doc = BCON_NEW("_id", BCON_INT32(1), "name", BCON_UTF8("caf\xc3\xa9"), "n",
                           BCON_INT64(1LL << 40), "d", BCON_DOUBLE(2.5), "nested", "{", "a", "[",
                           BCON_INT32(1), BCON_INT32(2), "]", "}");
    mongoc_collection_t *coll = mongoc_client_get_collection(c, "lmtest", "roundtrip");
    mongoc_collection_drop(coll, NULL);
    cr_assert(mongoc_collection_insert_one(coll, doc, NULL, NULL, &berr), "%s: insert: %s", label,
              berr.message);
    bson_t *filter = BCON_NEW("_id", BCON_INT32(1));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    const bson_t *got;
    cr_assert(mongoc_cursor_next(cur, &got), "%s: document not found", label);
    cr_assert_eq(got->len, doc->len, "%s: size differs", label);
    cr_assert_eq(memcmp(bson_get_data(got), bson_get_data(doc), doc->len), 0, "%s: bytes differ",
                 label);
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    bson_destroy(doc);
    mongoc_collection_destroy(coll);
}

static void open_and_check(const lm_conn_opts_t *o, const char *label)
{
    mongoc_client_t *c = lm_conn_client_new(o, &err);
    cr_assert_not_null(c, "%s: %s", label, err.message);
    insert_and_read_back(c, label);
    mongoc_client_destroy(c);
}

Test(testbed, secantus_plain)
{
    lm_testbed_start("secantus", NULL, &srv);
    lm_conn_opts_t o = {.side = "source", .uri = srv.uri};
    open_and_check(&o, "secantus");
}

Test(testbed, ferretdb_plain)
{
    lm_testbed_start("ferretdb", NULL, &srv);
    lm_conn_opts_t o = {.side = "target", .uri = srv.uri};
    open_and_check(&o, "ferretdb");
}

Test(testbed, secantus_scram)
{
    lm_testbed_start("secantus-auth", NULL, &srv);
    lm_conn_opts_t o = {
        .side = "source", .uri = srv.uri, .username = srv.user, .password = srv.password};
    open_and_check(&o, "secantus-auth");
    /* credentials in the URI work too */
    char uri[1024];
    lm_testbed_uri_with_auth(&srv, uri, sizeof uri);
    lm_conn_opts_t in_uri = {.side = "source", .uri = uri};
    open_and_check(&in_uri, "secantus-auth uri");
}

Test(testbed, secantus_scram_wrong_password)
{
    lm_testbed_start("secantus-auth", NULL, &srv);
    lm_conn_opts_t o = {
        .side = "source", .uri = srv.uri, .username = srv.user, .password = "not-the-password"};
    cr_assert_null(lm_conn_client_new(&o, &err));
    char want[256];
    snprintf(want, sizeof want,
             "source 127.0.0.1:%d: authentication failed for user 'lmadmin': check the user name "
             "and the "
             "password file (--source-password-file)",
             srv.port);
    cr_assert_str_eq(err.message, want);
    cr_assert_eq(err.code, LM_ERR_AUTH);
    cr_assert_null(strstr(err.message, "not-the-password"));
}

Test(testbed, secantus_scram_missing_credentials)
{
    bson_error_t berr;
    lm_testbed_start("secantus-auth", NULL, &srv);
    lm_conn_opts_t o = {.side = "target", .uri = srv.uri};
    mongoc_client_t *c = lm_conn_client_new(&o, &err); /* ping needs no auth */
    cr_assert_not_null(c, "%s", err.message);
    mongoc_collection_t *coll = mongoc_client_get_collection(c, "lmtest", "x");
    bson_t *doc = BCON_NEW("a", BCON_INT32(1));
    cr_assert_not(mongoc_collection_insert_one(coll, doc, NULL, NULL, &berr));
    lm_conn_describe_error(&o, &berr, &err);
    cr_assert_eq(err.code, LM_ERR_AUTH, "%s", err.message);
    cr_assert(strstr(err.message, "target 127.0.0.1:"), "%s", err.message);
    cr_assert(strstr(err.message, "requires authentication"), "%s", err.message);
    cr_assert(strstr(err.message, "--target-password-file"), "%s", err.message);
    bson_destroy(doc);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(c);
}

Test(testbed, secantus_tls_custom_ca)
{
    lm_testbed_start("secantus-tls", NULL, &srv);
    lm_conn_opts_t o = {.side = "source", .uri = srv.uri, .tls_ca_file = srv.ca_file};
    open_and_check(&o, "secantus-tls");
}

Test(testbed, secantus_tls_wrong_ca)
{
    char other[512], other_ca[600];
    lm_testbed_start("secantus-tls", NULL, &srv);
    lm_test_certs("other-ca", other, sizeof other);
    snprintf(other_ca, sizeof other_ca, "%s/ca.pem", other);
    lm_conn_opts_t o = {
        .side = "source", .uri = srv.uri, .tls_ca_file = other_ca, .connect_timeout_ms = 3000};
    int64_t t0 = lm_time_mono_ms();
    cr_assert_null(lm_conn_client_new(&o, &err));
    cr_assert_lt(lm_time_mono_ms() - t0, 6000, "must fail within the connect timeout");
    cr_assert_eq(err.code, LM_ERR_TLS, "%s", err.message);
    cr_assert(strstr(err.message, "source 127.0.0.1:"), "%s", err.message);
    cr_assert(strstr(err.message, "--source-tls-ca-file"), "%s", err.message);
}

Test(testbed, secantus_tls_without_ca)
{
    lm_testbed_start("secantus-tls", NULL, &srv);
    /* the URI asks for TLS but no CA is given: the system store does not trust our CA */
    lm_conn_opts_t o = {.side = "source", .uri = srv.uri, .connect_timeout_ms = 3000};
    cr_assert_null(lm_conn_client_new(&o, &err));
    cr_assert_eq(err.code, LM_ERR_TLS, "%s", err.message);
    cr_assert(strstr(err.message, "--source-tls-ca-file"), "%s", err.message);
}

Test(testbed, closed_port_fails_fast)
{
    char uri[128];
    snprintf(uri, sizeof uri, "mongodb://127.0.0.1:%d/?directConnection=true", lm_test_free_port());
    lm_conn_opts_t o = {.side = "target", .uri = uri, .connect_timeout_ms = 2000};
    int64_t t0 = lm_time_mono_ms();
    cr_assert_null(lm_conn_client_new(&o, &err));
    cr_assert_lt(lm_time_mono_ms() - t0, 5000);
    cr_assert_eq(err.code, LM_ERR_NET, "%s", err.message);
    cr_assert(strstr(err.message, "connection refused: check the host and port"), "%s",
              err.message);
    cr_assert(strstr(err.message, "target 127.0.0.1:"), "%s", err.message);
}

Test(testbed, malformed_uri_is_redacted)
{
    lm_conn_opts_t o = {.side = "source", .uri = "mongodb://mig:SuperSecret1@/nohost"};
    cr_assert_null(lm_conn_client_new(&o, &err));
    cr_assert_eq(err.code, LM_ERR_INVALID, "%s", err.message);
    cr_assert(strstr(err.message, "source: invalid URI"), "%s", err.message);
    cr_assert_null(strstr(err.message, "SuperSecret1"), "%s", err.message);
    lm_conn_opts_t none = {.side = "target"};
    cr_assert_null(lm_conn_client_new(&none, &err));
    cr_assert_str_eq(err.message, "target: no URI given: use --target mongodb://host:port");
}

Test(testbed, restart_keeps_data_and_port)
{
    lm_testbed_start("secantus", NULL, &srv);
    lm_conn_opts_t o = {.side = "source", .uri = srv.uri};
    open_and_check(&o, "before restart");
    lm_testbed_restart(&srv);
    mongoc_client_t *c = lm_conn_client_new(&o, &err);
    cr_assert_not_null(c, "%s", err.message);
    mongoc_collection_t *coll = mongoc_client_get_collection(c, "lmtest", "roundtrip");
    cr_assert_eq(
        mongoc_collection_count_documents(coll, &(bson_t)BSON_INITIALIZER, NULL, NULL, NULL, NULL),
        1);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(c);
}

/* A connection string that turns certificate checks off is refused unless the job allows
 * it: against a server whose certificate the given CA did not sign, the option would make
 * the connection succeed (shown with allow_insecure_tls). */
Test(testbed, secantus_tls_insecure_uri_options_refused)
{
    char other[512], other_ca[600], uri[800];
    lm_testbed_start("secantus-tls", NULL, &srv);
    lm_test_certs("other-ca", other, sizeof other);
    snprintf(other_ca, sizeof other_ca, "%s/ca.pem", other);
    snprintf(uri, sizeof uri, "%s%stlsAllowInvalidCertificates=true", srv.uri,
             strchr(srv.uri, '?') ? "&" : "/?");
    lm_conn_opts_t o = {
        .side = "source", .uri = uri, .tls_ca_file = other_ca, .connect_timeout_ms = 3000};
    cr_assert_null(lm_conn_client_new(&o, &err));
    cr_assert_eq(err.code, LM_ERR_INVALID, "%s", err.message);
    cr_assert(strstr(err.message, "tlsAllowInvalidCertificates=true"), "%s", err.message);
    cr_assert(strstr(err.message, "allow_insecure_tls"), "%s", err.message);

    o.allow_insecure_tls = true;
    mongoc_client_t *c = lm_conn_client_new(&o, &err);
    cr_assert_not_null(c, "allowed, the option disables the check: %s", err.message);
    mongoc_client_destroy(c);
}

/* The sharded bed's router stand-in is a mongos to libmongoc's server discovery, and its
 * listShards names each shard's replica set at the address the test bed printed. */
Test(testbed, sharded_router_is_a_mongos)
{
    bson_error_t berr;
    lm_testbed_start("sharded", "--shards 2 --prefix c", &srv);
    cr_assert_eq(srv.nshards, 2);
    cr_assert(srv.config_uri[0]);
    lm_conn_opts_t o = {.side = "source", .uri = srv.uri};
    mongoc_client_t *c = lm_conn_client_new(&o, &err);
    cr_assert_not_null(c, "%s", err.message);
    mongoc_server_description_t *sd = mongoc_client_select_server(c, false, NULL, &berr);
    cr_assert_not_null(sd, "%s", berr.message);
    cr_assert_str_eq(mongoc_server_description_type(sd), "Mongos");
    mongoc_server_description_destroy(sd);

    bson_t *cmd = BCON_NEW("listShards", BCON_INT32(1));
    bson_t reply;
    cr_assert(mongoc_client_command_simple(c, "admin", cmd, NULL, &reply, &berr), "%s",
              berr.message);
    bson_iter_t it, arr;
    cr_assert(bson_iter_init_find(&it, &reply, "shards") && BSON_ITER_HOLDS_ARRAY(&it));
    cr_assert(bson_iter_recurse(&it, &arr));
    int n = 0;
    while (bson_iter_next(&arr)) {
        bson_iter_t f;
        char want_id[64], want_host[600];
        cr_assert_lt(n, 2);
        snprintf(want_id, sizeof want_id, "c-shard%d", n);
        cr_assert_str_eq(srv.shard_name[n], want_id);
        /* shard_uri is mongodb://127.0.0.1:PORT/?directConnection=true */
        const char *hostport = srv.shard_uri[n] + strlen("mongodb://");
        snprintf(want_host, sizeof want_host, "%s/%.*s", want_id, (int)strcspn(hostport, "/"),
                 hostport);
        cr_assert(bson_iter_recurse(&arr, &f) && bson_iter_find(&f, "_id"));
        cr_assert_str_eq(bson_iter_utf8(&f, NULL), want_id);
        cr_assert(bson_iter_recurse(&arr, &f) && bson_iter_find(&f, "host"));
        cr_assert_str_eq(bson_iter_utf8(&f, NULL), want_host);
        n++;
    }
    cr_assert_eq(n, 2);
    bson_destroy(&reply);
    bson_destroy(cmd);

    /* a fault hook as libmongoc sees it: balancerStart refused with mongos's error shape */
    lm_testbed_fault(&srv, "refuse-balancer-start on");
    cmd = BCON_NEW("balancerStart", BCON_INT32(1));
    cr_assert_not(mongoc_client_command_simple(c, "admin", cmd, NULL, &reply, &berr));
    cr_assert_eq(berr.code, 117, "%u %s", berr.code, berr.message);
    cr_assert(strstr(berr.message, "refuse-balancer-start"), "%s", berr.message);
    bson_destroy(&reply);
    bson_destroy(cmd);
    mongoc_client_destroy(c);
}
