/* `livemig-agent validate` against the test bed: a healthy pair passes, and each check is
 * made to fail for real: a standalone source, a wrong password, a user without privileges,
 * a namespace that exists on the target, a tiny oplog, an unreachable port, a target older
 * than the source and index kinds the target refuses (FerretDB). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_json.h"
#include "lm_test_proc.h"
#include "lm_test_util.h"
#include "lm_testbed.h"

#define PY LM_SOURCE_DIR "/.deps/venv/bin/python"
#define WRITER LM_SOURCE_DIR "/scripts/lm_writer.py"

static lm_testbed_server_t src, dst;
static char dir[512], out_path[700];

static void setup(void)
{
    lm_test_mkdtemp(dir, sizeof dir);
    snprintf(out_path, sizeof out_path, "%s/validate.json", dir);
    memset(&src, 0, sizeof src);
    memset(&dst, 0, sizeof dst);
}

static void teardown(void)
{
    lm_testbed_stop(&src);
    lm_testbed_stop(&dst);
    lm_test_rmtree(dir);
}

TestSuite(validate, .init = setup, .fini = teardown, .timeout = 300);

/* Runs pymongo code against a URI (the variable `c` is the client). */
static void py(const char *uri, const char *code)
{
    cr_assert_eq(
        lm_test_sh("'%s' -c \"from pymongo import MongoClient; c = MongoClient('%s'); %s\" "
                   ">> '%s/py.log' 2>&1",
                   PY, uri, code, dir),
        0, "pymongo failed: %s", code);
}

static void src_uri(char *buf, size_t size)
{
    if (src.user[0])
        lm_testbed_uri_with_auth(&src, buf, size);
    else
        snprintf(buf, size, "%s", src.uri);
}

/* Runs the validation; returns its exit code and the parsed JSON in *v (caller frees). */
static int validate(const char *extra, lm_json_val_t **v)
{
    char auth[1200] = "";
    if (src.user[0])
        snprintf(auth, sizeof auth, "--source-user %s --source-password-file '%s'", src.user,
                 src.password_file);
    int rc = lm_test_sh("'%s' validate --source '%s' %s --target '%s' --state-dir '%s/state' "
                        "--connect-timeout 3s %s -o json > '%s' 2> '%s.err'",
                        LM_AGENT_BIN, src.uri, auth, dst.uri[0] ? dst.uri : "mongodb://x", dir,
                        extra ? extra : "", out_path, out_path);
    char *text = lm_test_slurp(out_path);
    lm_error_t err;
    *v = lm_json_parse(text, strlen(text), 0, 0, &err);
    char errp[800];
    snprintf(errp, sizeof errp, "%s.err", out_path);
    cr_assert(*v, "no JSON (%s), exit %d: %s\n%s", err.message, rc, text, lm_test_slurp(errp));
    free(text);
    return rc;
}

/* The result and message of one check. */
static const char *check(lm_json_val_t *v, const char *name, const char **message)
{
    lm_json_val_t *checks = lm_json_get(v, "checks");
    for (size_t i = 0; i < lm_json_len(checks); i++) {
        lm_json_val_t *c = lm_json_at(checks, i);
        if (strcmp(lm_json_string(lm_json_get(c, "name")), name) == 0) {
            *message = lm_json_string(lm_json_get(c, "message"));
            return lm_json_string(lm_json_get(c, "result"));
        }
    }
    cr_assert_fail("no check %s in %s", name, lm_test_slurp(out_path));
    return NULL;
}

#define EXPECT(v, name, want, needle)                                                              \
    do {                                                                                           \
        const char *msg_ = NULL, *res_ = check(v, name, &msg_);                                    \
        cr_assert_str_eq(res_, want, "%s: %s", name, msg_);                                        \
        cr_assert(strstr(msg_, needle), "%s: \"%s\" lacks \"%s\"", name, msg_, needle);            \
    } while (0)

static void load_source(int docs)
{
    char uri[1200];
    src_uri(uri, sizeof uri);
    cr_assert_eq(lm_test_sh("'%s' '%s' --uri '%s' --seconds 0 --docs %d > /dev/null 2>&1", PY,
                            WRITER, uri, docs),
                 0);
}

Test(validate, a_healthy_pair_passes_and_lists_the_users_to_recreate)
{
    lm_testbed_start("secantus-auth", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    load_source(500);
    lm_json_val_t *v;
    cr_assert_eq(validate(NULL, &v), 0, "%s", lm_test_slurp(out_path));
    cr_assert_str_eq(lm_json_string(lm_json_get(v, "result")), "PASS");
    EXPECT(v, "source-reachable", "PASS", "SCRAM-SHA-256");
    EXPECT(v, "source-privileges", "PASS", "root@admin");
    EXPECT(v, "source-replica-set", "PASS", "replica set");
    EXPECT(v, "change-history", "PASS", "oplog");
    EXPECT(v, "versions", "PASS", "supported path");
    EXPECT(v, "namespaces", "PASS", "none of the");
    EXPECT(v, "indexes", "PASS", "kinds tried");
    EXPECT(v, "oplog-window", "PASS", "of history");
    EXPECT(v, "users-and-roles", "INFO", "lmadmin@admin");
    EXPECT(v, "target-disk", "WARN", "could not be checked"); /* SecantusDB has no fs sizes */
    lm_json_free(v);
}

Test(validate, a_standalone_source_fails)
{
    lm_testbed_start("secantus", "--standalone", &src);
    lm_testbed_start("secantus", NULL, &dst);
    lm_json_val_t *v;
    cr_assert_eq(validate(NULL, &v), 1);
    EXPECT(v, "source-replica-set", "FAIL", "convert it to a single-node replica set");
    EXPECT(v, "change-history", "FAIL", "keeps no change history");
    lm_json_free(v);
}

Test(validate, a_wrong_password_fails)
{
    lm_testbed_start("secantus-auth", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    lm_test_write(dir, "wrong.pw", "not-the-password", src.password_file, sizeof src.password_file);
    lm_test_sh("chmod 600 '%s'", src.password_file);
    lm_json_val_t *v;
    cr_assert_eq(validate(NULL, &v), 1);
    EXPECT(v, "source-reachable", "FAIL", "authentication failed");
    EXPECT(v, "source-privileges", "FAIL", "not checked");
    lm_json_free(v);
}

Test(validate, a_user_without_privileges_fails)
{
    lm_testbed_start("secantus-auth", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    load_source(50);
    char uri[1200];
    src_uri(uri, sizeof uri);
    py(uri, "c.shop.command('createUser', 'weak', pwd='weak-pw', roles=[{'role': 'read', 'db': "
            "'shop'}])");
    snprintf(src.user, sizeof src.user, "weak");
    lm_test_write(dir, "weak.pw", "weak-pw", src.password_file, sizeof src.password_file);
    lm_test_sh("chmod 600 '%s'", src.password_file);
    lm_json_val_t *v;
    /* the user lives in shop: its URI says so */
    char shop_uri[700];
    snprintf(shop_uri, sizeof shop_uri, "%s%sauthSource=shop", src.uri,
             strchr(src.uri, '?') ? "&" : "/?");
    snprintf(src.uri, sizeof src.uri, "%s", shop_uri);
    cr_assert_eq(validate(NULL, &v), 1);
    EXPECT(v, "source-reachable", "PASS", "weak");
    EXPECT(v, "source-privileges", "FAIL", "readAnyDatabase");
    EXPECT(v, "source-privileges", "FAIL", "read@shop");
    lm_json_free(v);
}

Test(validate, an_existing_namespace_fails_unless_dropped)
{
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("secantus", NULL, &dst);
    load_source(50);
    py(dst.uri, "c.wr.docs.insert_one({'x': 1})");
    lm_json_val_t *v;
    cr_assert_eq(validate(NULL, &v), 1);
    EXPECT(v, "namespaces", "FAIL", "wr.docs");
    lm_json_free(v);
    cr_assert_eq(validate("--drop-target", &v), 0);
    EXPECT(v, "namespaces", "WARN", "DROPPED");
    lm_json_free(v);
}

Test(validate, a_tiny_oplog_warns_with_the_numbers)
{
    lm_testbed_start("secantus", "--oplog-max-entries 10", &src);
    lm_testbed_start("secantus", NULL, &dst);
    load_source(3000);
    lm_json_val_t *v;
    cr_assert_eq(validate(NULL, &v), 0); /* a warning, not a failure */
    EXPECT(v, "oplog-window", "WARN", "holds only");
    EXPECT(v, "oplog-window", "WARN", "MB/s measured");
    lm_json_free(v);
}

Test(validate, an_unreachable_port_fails_within_the_timeout)
{
    lm_testbed_start("secantus", NULL, &src);
    snprintf(dst.uri, sizeof dst.uri, "mongodb://127.0.0.1:%d/", lm_test_free_port());
    lm_json_val_t *v;
    cr_assert_eq(validate(NULL, &v), 1);
    EXPECT(v, "target-reachable", "FAIL", "connection refused");
    EXPECT(v, "namespaces", "FAIL", "not checked");
    lm_json_free(v);
    dst.uri[0] = '\0';
}

Test(validate, an_older_target_and_refused_index_kinds)
{
    lm_testbed_start("secantus", NULL, &src);
    lm_testbed_start("ferretdb", NULL, &dst);
    load_source(20);
    py(src.uri, "c.wr.docs.create_index('v', expireAfterSeconds=3600); "
                "c.wr.docs.create_index('w', partialFilterExpression={'w': {'$gt': 1}})");
    lm_json_val_t *v;
    cr_assert_eq(validate(NULL, &v), 1);
    EXPECT(v, "versions", "FAIL", "older than the source");
    EXPECT(v, "indexes", "WARN", "the target refuses");
    EXPECT(v, "indexes", "WARN", "wr.docs.v_1");
    lm_json_free(v);
}

/* A connection string that turns TLS host name checks off: refused (naming the option)
 * unless --allow-insecure-tls, and then a WARN. */
Test(validate, insecure_tls_options_refused_or_warned)
{
    char uri[800];
    lm_testbed_start("secantus-tls", NULL, &src);
    snprintf(uri, sizeof uri, "%s%stlsAllowInvalidHostnames=true", src.uri,
             strchr(src.uri, '?') ? "&" : "/?");
    for (int allow = 0; allow < 2; allow++) {
        int rc = lm_test_sh("'%s' validate --source '%s' --source-tls-ca-file '%s' --target "
                            "mongodb://127.0.0.1:1 --state-dir '%s/state' --connect-timeout 3s %s "
                            "-o json > '%s' 2> '%s.err'",
                            LM_AGENT_BIN, uri, src.ca_file, dir,
                            allow ? "--allow-insecure-tls" : "", out_path, out_path);
        char *text = lm_test_slurp(out_path);
        lm_error_t err;
        lm_json_val_t *v = lm_json_parse(text, strlen(text), 0, 0, &err);
        cr_assert(v, "exit %d: %s", rc, text);
        if (!allow) {
            EXPECT(v, "source-reachable", "FAIL", "tlsAllowInvalidHostnames=true");
        } else {
            EXPECT(v, "source-reachable", "PASS", "");
            EXPECT(v, "source-tls-verification", "WARN", "tlsAllowInvalidHostnames=true");
        }
        lm_json_free(v);
        free(text);
    }
}
