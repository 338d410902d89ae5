/* lm_verify's pure parts, no server: the range merge (matched by _id bytes, compared by
 * digest: a changed value, a type-only change, a field-order-only change, missing and
 * extra documents, any interleaving), the caps on listed and re-checked _ids, options and
 * index specs compared field by field, rendering (table and JSON parsed back), the verify
 * options of a job, and the status API's verification section. */
#include <criterion/criterion.h>
#include <string.h>

#include "lm_job.h"
#include "lm_json.h"
#include "lm_status.h"
#include "lm_verify.h"

static bson_t *doc(const char *json)
{
    bson_error_t e;
    bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &e);
    cr_assert_not_null(b, "%s: %s", json, e.message);
    return b;
}

static void add(lm_verify_merge_t *m, int side, const char *json, lm_verify_cands_t *c)
{
    bson_t *b = doc(json);
    lm_verify_merge_add(m, side, b, c);
    bson_destroy(b);
}

/* The candidates as "kind:_id-json" lines joined by '|'. */
static void cands_text(const lm_verify_cands_t *c, char *buf, size_t size)
{
    bson_iter_t it, d;
    buf[0] = '\0';
    bson_iter_init(&it, &c->list);
    while (bson_iter_next(&it)) {
        bson_iter_recurse(&it, &d);
        bson_iter_find(&d, "_id");
        bson_t one = BSON_INITIALIZER;
        bson_append_value(&one, "_id", 3, bson_iter_value(&d));
        char *j = bson_as_canonical_extended_json(&one, NULL);
        bson_iter_recurse(&it, &d);
        bson_iter_find(&d, "k");
        size_t n = strlen(buf);
        snprintf(buf + n, size - n, "%s%d:%s", n ? "|" : "", bson_iter_int32(&d), j);
        bson_free(j);
        bson_destroy(&one);
    }
}

Test(verify_merge, equal_streams_in_any_interleaving_match)
{
    const char *docs[] = {"{\"_id\": 1, \"a\": 1}", "{\"_id\": 2, \"a\": \"x\"}",
                          "{\"_id\": {\"$oid\": \"6b0200332a54e48185563f7a\"}, \"a\": [1, 2]}"};
    lm_verify_merge_t *m = lm_verify_merge_new();
    lm_verify_cands_t c;
    lm_verify_cands_init(&c);
    /* all of the source first, then the target in reverse: still all matched */
    for (int i = 0; i < 3; i++)
        add(m, 0, docs[i], &c);
    for (int i = 2; i >= 0; i--)
        add(m, 1, docs[i], &c);
    lm_verify_merge_finish(m, &c);
    cr_assert_eq(c.total, 0);
    cr_assert_eq(lm_verify_merge_count(m, 0), 3);
    cr_assert_eq(lm_verify_merge_count(m, 1), 3);
    cr_assert_eq(memcmp(lm_verify_merge_hash(m, 0), lm_verify_merge_hash(m, 1), 32), 0);
    lm_verify_merge_destroy(m);
    lm_verify_cands_cleanup(&c);
}

Test(verify_merge, each_kind_of_difference_is_a_candidate)
{
    lm_verify_merge_t *m = lm_verify_merge_new();
    lm_verify_cands_t c;
    char text[2048];
    lm_verify_cands_init(&c);
    add(m, 0, "{\"_id\": 1, \"v\": {\"$numberInt\": \"1\"}}", &c);
    add(m, 1, "{\"_id\": 1, \"v\": {\"$numberDouble\": \"1.0\"}}", &c); /* type only */
    add(m, 0, "{\"_id\": 2, \"a\": 1, \"b\": 2}", &c);
    add(m, 1, "{\"_id\": 2, \"b\": 2, \"a\": 1}", &c); /* field order only */
    add(m, 0, "{\"_id\": 3, \"a\": 1}", &c);           /* missing on the target */
    add(m, 1, "{\"_id\": 4, \"a\": 1}", &c);           /* extra on the target */
    add(m, 0, "{\"_id\": 5, \"a\": 1}", &c);
    add(m, 1, "{\"_id\": 5, \"a\": 1}", &c); /* equal */
    /* _id 6 as int32 and as double are two documents, not one */
    add(m, 0, "{\"_id\": {\"$numberInt\": \"6\"}}", &c);
    add(m, 1, "{\"_id\": {\"$numberDouble\": \"6.0\"}}", &c);
    lm_verify_merge_finish(m, &c);
    cands_text(&c, text, sizeof text);
    cr_assert_eq(c.total, 6, "%s", text);
    cr_assert(strstr(text, "0:{ \"_id\" : { \"$numberInt\" : \"1\" } }"), "%s", text);
    cr_assert(strstr(text, "0:{ \"_id\" : { \"$numberInt\" : \"2\" } }"), "%s", text);
    cr_assert(strstr(text, "1:{ \"_id\" : { \"$numberInt\" : \"3\" } }"), "%s", text);
    cr_assert(strstr(text, "2:{ \"_id\" : { \"$numberInt\" : \"4\" } }"), "%s", text);
    cr_assert(strstr(text, "1:{ \"_id\" : { \"$numberInt\" : \"6\" } }"), "%s", text);
    cr_assert(strstr(text, "2:{ \"_id\" : { \"$numberDouble\" : \"6.0\" } }"), "%s", text);
    cr_assert_null(strstr(text, "\"5\""), "%s", text);
    cr_assert_neq(memcmp(lm_verify_merge_hash(m, 0), lm_verify_merge_hash(m, 1), 32), 0);
    lm_verify_merge_destroy(m);
    lm_verify_cands_cleanup(&c);
}

Test(verify_merge, field_diff_names_fields_never_values)
{
    char buf[512];
    bson_t *s = doc("{\"_id\": 1, \"a\": 1, \"b\": \"secret\", \"c\": 3}");
    bson_t *t = doc("{\"_id\": 1, \"a\": {\"$numberDouble\": \"1.0\"}, \"b\": \"other\", "
                    "\"d\": 4}");
    lm_verify_field_diff(s, t, buf, sizeof buf);
    cr_assert_str_eq(buf, "fields a, b, -c, +d (+ only on the target, - only on the source)");
    cr_assert_null(strstr(buf, "secret"));
    bson_t *o = doc("{\"_id\": 1, \"c\": 3, \"b\": \"secret\", \"a\": 1}");
    lm_verify_field_diff(s, o, buf, sizeof buf);
    cr_assert_str_eq(buf, "field order: source (_id, a, b, c), target (_id, c, b, a)");
    lm_verify_field_diff(s, o, buf, 12);
    cr_assert_eq(strlen(buf), 11, "cut to fit: %s", buf);
    bson_destroy(s);
    bson_destroy(t);
    bson_destroy(o);
}

Test(verify_caps, listed_and_rechecked_ids_are_capped_but_counted)
{
    lm_verify_ns_t ns;
    memset(&ns, 0, sizeof ns);
    for (int i = 0; i < 30; i++) {
        bson_value_t v = {.value_type = BSON_TYPE_INT32, .value.v_int32 = i};
        lm_verify_ns_add_id(&ns, &v, i % 2 ? LM_VERIFY_DOC_MISSING : LM_VERIFY_DOC_DIFFERS, 20);
    }
    cr_assert_eq(ns.n_ids, 20);
    cr_assert_eq(ns.docs_differ + ns.docs_missing, 30);
    cr_assert_not(ns.pass);
    lm_verify_cands_t c;
    lm_verify_cands_init(&c);
    for (int i = 0; i < LM_VERIFY_MAX_RECHECK + 5; i++) {
        bson_value_t v = {.value_type = BSON_TYPE_INT32, .value.v_int32 = i};
        lm_verify_cands_add(&c, &v, LM_VERIFY_DOC_DIFFERS);
    }
    cr_assert_eq(c.n, LM_VERIFY_MAX_RECHECK);
    cr_assert_eq(c.total, LM_VERIFY_MAX_RECHECK + 5);
    lm_verify_cands_cleanup(&c);
    lm_verify_result_t r = {.items = calloc(1, sizeof ns), .n = 1, .n_failed = 1};
    r.items[0] = ns;
    snprintf(r.items[0].ns, sizeof r.items[0].ns, "db.c");
    lm_verify_ns_fail(&r.items[0], "30 document(s) differ");
    lm_strbuf_t t;
    lm_strbuf_init(&t, 1 << 20);
    lm_verify_render_table(&r, false, &t);
    cr_assert(strstr(lm_strbuf_str(&t), "... and 10 more"), "%s", lm_strbuf_str(&t));
    cr_assert(strstr(lm_strbuf_str(&t), "verification FAILED: 1 of 1"), "%s", lm_strbuf_str(&t));
    lm_strbuf_cleanup(&t);
    lm_verify_result_cleanup(&r);
}

static bool has_reason(const lm_verify_ns_t *ns, const char *needle)
{
    for (size_t i = 0; i < ns->reasons.n; i++)
        if (strstr(ns->reasons.items[i], needle))
            return true;
    return false;
}

Test(verify_meta, options_compared_field_by_field)
{
    lm_verify_ns_t ns;
    memset(&ns, 0, sizeof ns);
    ns.pass = true;
    bson_t *s = doc("{\"capped\": true, \"size\": 1048576, \"validator\": {\"a\": 1}, "
                    "\"uuid\": 1}");
    bson_t *same = doc("{\"validator\": {\"a\": 1}, \"size\": 1048576, \"capped\": true, "
                       "\"uuid\": 2}");
    lm_verify_compare_options(&ns, s, same);
    cr_assert(ns.pass, "field order and uuid are not differences");
    bson_t *t = doc("{\"size\": 1048576.0, \"validator\": {\"a\": 2}, \"x\": 1}");
    lm_verify_compare_options(&ns, s, t);
    cr_assert_not(ns.pass);
    cr_assert(has_reason(&ns, "option 'capped' missing on the target"));
    cr_assert(has_reason(&ns, "option 'size' differs"));
    cr_assert(has_reason(&ns, "option 'validator' differs"));
    cr_assert(has_reason(&ns, "option 'x' only on the target"));
    bson_destroy(s);
    bson_destroy(same);
    bson_destroy(t);
    lm_strlist_cleanup(&ns.reasons);
}

Test(verify_meta, index_specs_by_name_without_v_and_ns)
{
    lm_verify_ns_t ns;
    memset(&ns, 0, sizeof ns);
    ns.pass = true;
    bson_t *s = doc("{\"0\": {\"v\": 2, \"key\": {\"a\": 1}, \"name\": \"a_1\", \"unique\": true},"
                    " \"1\": {\"v\": 2, \"key\": {\"t\": 1}, \"name\": \"t_1\", "
                    "\"expireAfterSeconds\": 100}}");
    bson_t *same =
        doc("{\"0\": {\"name\": \"t_1\", \"key\": {\"t\": 1}, \"expireAfterSeconds\": "
            "100, \"ns\": \"x.y\"}, \"1\": {\"v\": 1, \"unique\": true, \"key\": {\"a\": "
            "1}, \"name\": \"a_1\"}}");
    lm_verify_compare_indexes(&ns, s, same);
    cr_assert(ns.pass, "%s", ns.reasons.n ? ns.reasons.items[0] : "");
    bson_t *t = doc("{\"0\": {\"v\": 2, \"key\": {\"a\": 1}, \"name\": \"a_1\"},"
                    " \"1\": {\"v\": 2, \"key\": {\"t\": 1}, \"name\": \"t_1\", "
                    "\"expireAfterSeconds\": 5}, \"2\": {\"key\": {\"z\": 1}, \"name\": \"z_1\"}}");
    lm_verify_compare_indexes(&ns, s, t);
    cr_assert(has_reason(&ns, "index 'a_1' differs: field 'unique' missing on the target"));
    cr_assert(has_reason(&ns, "index 't_1' differs: field 'expireAfterSeconds' differs: source "
                              "100, target 5"));
    cr_assert(has_reason(&ns, "index 'z_1' only on the target"));
    bson_t *empty = bson_new();
    lm_verify_compare_indexes(&ns, s, empty);
    cr_assert(has_reason(&ns, "index 'a_1' missing on the target"));
    bson_destroy(s);
    bson_destroy(same);
    bson_destroy(t);
    bson_destroy(empty);
    lm_strlist_cleanup(&ns.reasons);
}

Test(verify_render, json_parses_back)
{
    lm_verify_result_t r = {.items = calloc(2, sizeof(lm_verify_ns_t)), .n = 2, .n_failed = 1};
    snprintf(r.items[0].ns, LM_NS_MAX, "a.pass");
    snprintf(r.items[0].type, 16, "collection");
    r.items[0].pass = true;
    r.items[0].source_docs = r.items[0].target_docs = 3;
    snprintf(r.items[1].ns, LM_NS_MAX, "a.fail");
    snprintf(r.items[1].type, 16, "view");
    r.items[1].source_docs = r.items[1].target_docs = -1;
    lm_verify_ns_fail(&r.items[1], "option \"viewOn\" differs");
    bson_value_t v = {.value_type = BSON_TYPE_UTF8,
                      .value.v_utf8 = {.str = (char *)"x\"y", .len = 3}};
    lm_verify_ns_add_id(&r.items[1], &v, LM_VERIFY_DOC_EXTRA, 20);
    lm_strbuf_t t;
    lm_strbuf_init(&t, 1 << 20);
    lm_verify_render_json(&r, &t);
    lm_error_t err;
    lm_json_val_t *j = lm_json_parse(lm_strbuf_str(&t), t.len, 0, 0, &err);
    cr_assert_not_null(j, "%s", lm_strbuf_str(&t));
    cr_assert_str_eq(lm_json_string(lm_json_get(j, "result")), "FAIL");
    lm_json_val_t *f = lm_json_at(lm_json_get(j, "results"), 1);
    cr_assert_str_eq(lm_json_string(lm_json_get(f, "result")), "FAIL");
    cr_assert_eq(lm_json_type(lm_json_get(f, "sourceDocuments")), LM_JSON_NULL);
    lm_json_val_t *id = lm_json_at(lm_json_get(f, "ids"), 0);
    cr_assert_str_eq(lm_json_string(lm_json_get(id, "id")), "{ \"_id\" : \"x\\\"y\" }");
    cr_assert_str_eq(lm_json_string(lm_json_get(id, "kind")), "extra on the target");
    cr_assert_eq(r.items[1].docs_extra, 1);
    lm_json_free(j);
    lm_strbuf_cleanup(&t);
    lm_verify_result_cleanup(&r);
}

Test(verify_job, options_and_no_verify)
{
    lm_job_t job;
    lm_error_t err;
    bool help;
    char *a1[] = {"migrate", "--source", "mongodb://a", "--target", "mongodb://b", NULL};
    cr_assert(lm_job_from_args(&job, 5, a1, &help, &err), "%s", err.message);
    cr_assert(job.verify);
    cr_assert_eq(job.verify_recheck, 3);
    cr_assert_eq(job.verify_recheck_delay_ms, 1000);
    cr_assert_eq(job.verify_max_ids, 20);
    lm_job_cleanup(&job);
    char *a2[] = {"migrate",
                  "--source",
                  "mongodb://a",
                  "--target",
                  "mongodb://b",
                  "--no-verify",
                  "--verify-recheck-delay",
                  "250ms",
                  "--verify-workers",
                  "2",
                  NULL};
    cr_assert(lm_job_from_args(&job, 10, a2, &help, &err), "%s", err.message);
    cr_assert_not(job.verify);
    cr_assert_eq(job.verify_recheck_delay_ms, 250);
    cr_assert_eq(job.verify_workers, 2);
    lm_job_cleanup(&job);
    char *a3[] = {"migrate",     "--source",        "mongodb://a", "--target",
                  "mongodb://b", "--no-verify=yes", NULL};
    cr_assert_not(lm_job_from_args(&job, 6, a3, &help, &err));
    cr_assert(strstr(err.message, "--no-verify takes no value"), "%s", err.message);
    lm_job_cleanup(&job);
}

Test(verify_status, verification_section_in_the_status_json)
{
    lm_status_t st;
    lm_strbuf_t out;
    lm_error_t err;
    lm_status_init(&st, "j1");
    lm_strbuf_init(&out, 1 << 20);
    lm_status_json(&st, &out);
    lm_json_val_t *j = lm_json_parse(lm_strbuf_str(&out), out.len, 0, 0, &err);
    cr_assert_eq(lm_json_type(lm_json_get(j, "verification")), LM_JSON_NULL);
    lm_json_free(j);
    lm_verify_progress_t p = {.namespaces_total = 4,
                              .namespaces_done = 1,
                              .documents_total = 100,
                              .documents_done = 40,
                              .eta_seconds = 3};
    lm_status_set_verify_progress(&st, LM_VERIFY_RUNNING, &p, NULL);
    lm_strbuf_cleanup(&out);
    lm_strbuf_init(&out, 1 << 20);
    lm_status_json(&st, &out);
    j = lm_json_parse(lm_strbuf_str(&out), out.len, 0, 0, &err);
    lm_json_val_t *v = lm_json_get(j, "verification");
    cr_assert_str_eq(lm_json_string(lm_json_get(v, "state")), "running", "%s", lm_strbuf_str(&out));
    int64_t n = 0;
    cr_assert(lm_json_get_int(v, "documentsChecked", true, 0, 1000, &n, &err) && n == 40);
    lm_json_free(j);
    lm_status_set_verify_progress(&st, LM_VERIFY_FAILED, NULL, NULL);
    for (int i = 0; i < LM_STATUS_MAX_DIFFERENCES + 5; i++)
        lm_status_verify_add_difference(&st, "db.c: 1 document(s) differ; _ids: { \"_id\" : 1 }");
    lm_strbuf_cleanup(&out);
    lm_strbuf_init(&out, 1 << 20);
    lm_status_json(&st, &out);
    j = lm_json_parse(lm_strbuf_str(&out), out.len, 0, 0, &err);
    v = lm_json_get(j, "verification");
    cr_assert_str_eq(lm_json_string(lm_json_get(v, "state")), "failed");
    cr_assert_eq(lm_json_len(lm_json_get(v, "differences")), LM_STATUS_MAX_DIFFERENCES);
    cr_assert(lm_json_get_int(v, "namespacesTotal", true, 0, 1000, &n, &err) && n == 4,
              "progress kept");
    lm_json_free(j);
    /* a new verification forgets the old differences */
    lm_status_set_verify_progress(&st, LM_VERIFY_RUNNING, NULL, NULL);
    lm_strbuf_cleanup(&out);
    lm_strbuf_init(&out, 1 << 20);
    lm_status_json(&st, &out);
    j = lm_json_parse(lm_strbuf_str(&out), out.len, 0, 0, &err);
    cr_assert_eq(lm_json_len(lm_json_get(lm_json_get(j, "verification"), "differences")), 0);
    lm_json_free(j);
    lm_strbuf_cleanup(&out);
    lm_status_cleanup(&st);
}

/* The resume key: the same for the same hosts, filters and split settings whatever the
 * credentials in the URIs (which never go in), different when any of those changes. */
Test(verify_resume, key_from_hosts_filters_and_split_never_credentials)
{
    lm_job_t a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    char s1[] = "mongodb://127.0.0.1:27017,127.0.0.1:27018/?replicaSet=rs",
         s2[] = "mongodb://alice:s3cret@127.0.0.1:27017,127.0.0.1:27018/?replicaSet=rs",
         t[] = "mongodb://127.0.0.1:27019", t2[] = "mongodb://127.0.0.1:27020";
    a.source.uri = s1, a.target.uri = t;
    b.source.uri = s2, b.target.uri = t;
    char ka[65], kb[65];
    lm_error_t err;
    cr_assert(lm_verify_resume_key(&a, ka, &err));
    cr_assert(lm_verify_resume_key(&b, kb, &err));
    cr_assert_eq(strlen(ka), 64);
    cr_assert_str_eq(ka, kb, "credentials changed the key");
    b.target.uri = t2;
    cr_assert(lm_verify_resume_key(&b, kb, &err));
    cr_assert_str_neq(ka, kb, "another target, the same key");
    b.target.uri = t;
    char *inc = "shop.*";
    b.include.items = &inc, b.include.n = 1;
    cr_assert(lm_verify_resume_key(&b, kb, &err));
    cr_assert_str_neq(ka, kb, "a filter did not change the key");
    b.include.n = 0;
    b.split_docs = 1000;
    cr_assert(lm_verify_resume_key(&b, kb, &err));
    cr_assert_str_neq(ka, kb, "the split settings did not change the key");
    char bad[] = "nope://x";
    b.source.uri = bad;
    cr_assert_not(lm_verify_resume_key(&b, kb, &err));
}

/* A progress file is taken only when it is one, of this version and this comparison. */
Test(verify_resume, progress_parse_refuses_damaged_and_foreign_files)
{
    const char *key = "ab12";
    bson_t *d = NULL;
    lm_error_t err;
    const char *good = "{\"livemigVerifyProgress\": 1, \"key\": \"ab12\", \"updated\": {\"$date\": "
                       "{\"$numberLong\": \"1796032047285\"}}, \"namespaces\": []}";
    cr_assert(lm_verify_progress_parse(good, strlen(good), key, &d, &err), "%s", err.message);
    cr_assert_not_null(d);
    bson_destroy(d);
    const struct {
        const char *text, *says;
    } bad[] = {
        {"{\"livemigVerifyProgress\": 1, \"key\": tru", "not JSON"},
        {"", "not JSON"},
        {"[1, 2]", "not a livemig verification progress file"},
        {"{\"livemigVerifyProgress\": 2, \"key\": \"ab12\"}", "of this version"},
        {"{\"livemigVerifyProgress\": 1, \"key\": \"cd34\", \"namespaces\": []}",
         "another comparison"},
        {"{\"livemigVerifyProgress\": 1, \"key\": \"ab12\", \"namespaces\": {}}", "'namespaces'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = NULL;
        cr_assert_not(lm_verify_progress_parse(bad[i].text, strlen(bad[i].text), key, &d, &err),
                      "%s", bad[i].text);
        cr_assert_null(d);
        cr_assert(strstr(err.message, bad[i].says), "%s: %s", bad[i].text, err.message);
    }
}
