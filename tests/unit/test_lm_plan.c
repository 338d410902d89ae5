/* lm_plan: _id ranges built from a sample of _ids (lm_plan_split), and the decisions of
 * lm_plan_ranges that need no server (these pass a NULL client: touching it would crash). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "lm_log.h"
#include "lm_plan.h"

static void quiet(void)
{
    lm_log_set_level(LM_LOG_OFF);
}

TestSuite(split, .init = quiet);
TestSuite(plan, .init = quiet);

static bson_t *J(const char *json)
{
    bson_error_t e;
    bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &e);
    cr_assert(b, "bad test JSON %s: %s", json, e.message);
    return b;
}

/* Compared as canonical extended JSON, so int32, int64 and double differ. */
static void expect_bson(const bson_t *got, const bson_t *want)
{
    char *g = bson_as_canonical_extended_json(got, NULL),
         *w = bson_as_canonical_extended_json(want, NULL);
    cr_assert_str_eq(g, w);
    bson_free(g);
    bson_free(w);
}

static void expect_json(const bson_t *got, const char *want)
{
    bson_t *w = J(want);
    expect_bson(got, w);
    bson_destroy(w);
}

/* lm_plan_split over a sample given as JSON; returns its result, ranges in *ranges. */
static int split(const char *sample_json, int n_ranges, bson_t *ranges, const char **type)
{
    bson_t *sample = J(sample_json);
    bson_init(ranges);
    int n = lm_plan_split(sample, n_ranges, ranges, type);
    bson_destroy(sample);
    return n;
}

/* A sample of the int32 values lo..hi, shuffled (stride through the range). */
static bson_t *ints(int lo, int hi)
{
    bson_t *b = bson_new();
    int count = hi - lo + 1;
    for (int k = 0; k < count; k++) {
        char key[16];
        bson_snprintf(key, sizeof key, "%d", k);
        BSON_APPEND_INT32(b, key, lo + (k * 7919) % count); /* 7919 is prime: a permutation */
    }
    return b;
}

Test(split, integers_into_even_ranges_plus_other_types_and_nan)
{
    bson_t *sample = ints(1, 100), ranges = BSON_INITIALIZER;
    const char *type;
    cr_assert_eq(lm_plan_split(sample, 4, &ranges, &type), 4);
    cr_assert_str_eq(type, "number");
    /* sorted 1..100: boundaries at the 25th, 50th and 75th positions */
    expect_json(&ranges, "{\"0\": {\"_id\": {\"$lt\": 26}},"
                         " \"1\": {\"_id\": {\"$gte\": 26, \"$lt\": 51}},"
                         " \"2\": {\"_id\": {\"$gte\": 51, \"$lt\": 76}},"
                         " \"3\": {\"_id\": {\"$gte\": 76}},"
                         " \"4\": {\"_id\": {\"$not\": {\"$type\": \"number\"}}},"
                         " \"5\": {\"_id\": {\"$numberDouble\": \"NaN\"}}}");
    bson_destroy(&ranges);
    bson_destroy(sample);
}

Test(split, int32_and_int64_are_one_type_in_numeric_order)
{
    bson_t r;
    const char *type;
    cr_assert_eq(split("{\"a\": {\"$numberLong\": \"5000000000\"}, \"b\": 3,"
                       " \"c\": {\"$numberLong\": \"-1\"}, \"d\": 10}",
                       2, &r, &type),
                 2);
    cr_assert_str_eq(type, "number");
    /* sorted -1, 3, 10, 5e9: the boundary is 10, kept as the int32 it was */
    expect_json(&r, "{\"0\": {\"_id\": {\"$lt\": 10}}, \"1\": {\"_id\": {\"$gte\": 10}},"
                    " \"2\": {\"_id\": {\"$not\": {\"$type\": \"number\"}}},"
                    " \"3\": {\"_id\": {\"$numberDouble\": \"NaN\"}}}");
    bson_destroy(&r);
}

Test(split, duplicate_boundaries_are_dropped)
{
    bson_t r;
    const char *type;
    /* sorted 1, 7 x8, 9: positions 2, 5 and 7 all hold 7 */
    cr_assert_eq(
        split("{\"0\": 7, \"1\": 7, \"2\": 9, \"3\": 7, \"4\": 7, \"5\": 1, \"6\": 7, \"7\": 7,"
              " \"8\": 7, \"9\": 7}",
              4, &r, &type),
        2);
    expect_json(&r, "{\"0\": {\"_id\": {\"$lt\": 7}}, \"1\": {\"_id\": {\"$gte\": 7}},"
                    " \"2\": {\"_id\": {\"$not\": {\"$type\": \"number\"}}},"
                    " \"3\": {\"_id\": {\"$numberDouble\": \"NaN\"}}}");
    bson_destroy(&r);
    /* one distinct value still splits at it */
    cr_assert_eq(split("{\"0\": 4, \"1\": 4, \"2\": 4}", 3, &r, &type), 2);
    expect_json(&r, "{\"0\": {\"_id\": {\"$lt\": 4}}, \"1\": {\"_id\": {\"$gte\": 4}},"
                    " \"2\": {\"_id\": {\"$not\": {\"$type\": \"number\"}}},"
                    " \"3\": {\"_id\": {\"$numberDouble\": \"NaN\"}}}");
    bson_destroy(&r);
}

Test(split, object_ids_in_byte_order_without_nan)
{
    bson_t r;
    const char *type;
    cr_assert_eq(split("{\"0\": {\"$oid\": \"65a000000000000000000003\"},"
                       " \"1\": {\"$oid\": \"65a000000000000000000001\"},"
                       " \"2\": {\"$oid\": \"ff0000000000000000000000\"},"
                       " \"3\": {\"$oid\": \"65a000000000000000000002\"}}",
                       2, &r, &type),
                 2);
    cr_assert_str_eq(type, "objectId");
    expect_json(&r, "{\"0\": {\"_id\": {\"$lt\": {\"$oid\": \"65a000000000000000000003\"}}},"
                    " \"1\": {\"_id\": {\"$gte\": {\"$oid\": \"65a000000000000000000003\"}}},"
                    " \"2\": {\"_id\": {\"$not\": {\"$type\": \"objectId\"}}}}");
    bson_destroy(&r);
}

Test(split, strings_in_binary_order)
{
    bson_t r;
    const char *type;
    /* bytes, no collation: "B" < "a" < "ab" < "b" < "z" < "é" (0xC3 0xA9) */
    cr_assert_eq(split("{\"0\": \"z\", \"1\": \"ab\", \"2\": \"\\u00e9\", \"3\": \"a\","
                       " \"4\": \"B\", \"5\": \"b\"}",
                       6, &r, &type),
                 6);
    cr_assert_str_eq(type, "string");
    expect_json(&r, "{\"0\": {\"_id\": {\"$lt\": \"a\"}},"
                    " \"1\": {\"_id\": {\"$gte\": \"a\", \"$lt\": \"ab\"}},"
                    " \"2\": {\"_id\": {\"$gte\": \"ab\", \"$lt\": \"b\"}},"
                    " \"3\": {\"_id\": {\"$gte\": \"b\", \"$lt\": \"z\"}},"
                    " \"4\": {\"_id\": {\"$gte\": \"z\", \"$lt\": \"\\u00e9\"}},"
                    " \"5\": {\"_id\": {\"$gte\": \"\\u00e9\"}},"
                    " \"6\": {\"_id\": {\"$not\": {\"$type\": \"string\"}}}}");
    bson_destroy(&r);
}

Test(split, dates)
{
    bson_t r;
    const char *type;
    cr_assert_eq(split("{\"0\": {\"$date\": {\"$numberLong\": \"1717200000000\"}},"
                       " \"1\": {\"$date\": {\"$numberLong\": \"-86400000\"}},"
                       " \"2\": {\"$date\": {\"$numberLong\": \"0\"}}}",
                       3, &r, &type),
                 3);
    cr_assert_str_eq(type, "date");
    /* dates before 1970 sort first. (libbson's JSON reader takes {"$type": "date"} for a
     * legacy $binary, hence BCON for the last range.) */
    bson_t *want =
        BCON_NEW("0", "{", "_id", "{", "$lt", BCON_DATE_TIME(0), "}", "}", "1", "{", "_id", "{",
                 "$gte", BCON_DATE_TIME(0), "$lt", BCON_DATE_TIME(1717200000000), "}", "}", "2",
                 "{", "_id", "{", "$gte", BCON_DATE_TIME(1717200000000), "}", "}", "3", "{", "_id",
                 "{", "$not", "{", "$type", BCON_UTF8("date"), "}", "}", "}");
    expect_bson(&r, want);
    bson_destroy(want);
    bson_destroy(&r);
}

Test(split, the_most_frequent_type_wins)
{
    bson_t r;
    const char *type;
    /* 3 strings, 2 numbers, 1 ObjectId, 1 document: string ranges; the numbers, the
     * ObjectId and the document fall in the range for other types */
    cr_assert_eq(split("{\"0\": 1, \"1\": \"m\", \"2\": {\"$oid\": \"65a000000000000000000001\"},"
                       " \"3\": \"c\", \"4\": 2, \"5\": \"x\", \"6\": {\"k\": 1}}",
                       2, &r, &type),
                 2);
    cr_assert_str_eq(type, "string");
    expect_json(&r, "{\"0\": {\"_id\": {\"$lt\": \"m\"}}, \"1\": {\"_id\": {\"$gte\": \"m\"}},"
                    " \"2\": {\"_id\": {\"$not\": {\"$type\": \"string\"}}}}");
    bson_destroy(&r);
}

Test(split, samples_that_cannot_split)
{
    bson_t r;
    const char *type = "unset";
    /* nothing sampled */
    cr_assert_eq(split("{}", 8, &r, &type), 0);
    cr_assert_null(type);
    cr_assert(bson_empty(&r));
    bson_destroy(&r);
    /* one range wanted */
    cr_assert_eq(split("{\"0\": 1, \"1\": 2, \"2\": 3}", 1, &r, &type), 0);
    cr_assert(bson_empty(&r));
    bson_destroy(&r);
    cr_assert_eq(split("{\"0\": 1, \"1\": 2, \"2\": 3}", 0, &r, &type), 0);
    bson_destroy(&r);
    /* doubles and documents: no ranges over them */
    cr_assert_eq(split("{\"0\": 1.5, \"1\": 2.5, \"2\": 3.5}", 2, &r, &type), 0);
    cr_assert(bson_empty(&r));
    bson_destroy(&r);
    cr_assert_eq(split("{\"0\": {\"a\": 1}, \"1\": {\"a\": 2}}", 2, &r, &type), 0);
    bson_destroy(&r);
    /* more _ids of uncovered types than of any covered one (a tie too) */
    cr_assert_eq(split("{\"0\": 1.5, \"1\": 2.5, \"2\": 7}", 2, &r, &type), 0);
    bson_destroy(&r);
    cr_assert_eq(split("{\"0\": {\"$binary\": {\"base64\": \"AA==\", \"subType\": \"00\"}},"
                       " \"1\": {\"$oid\": \"65a000000000000000000001\"}}",
                       2, &r, &type),
                 0);
    cr_assert_null(type);
    bson_destroy(&r);
}

/* The ranges over the dominant type are contiguous: the first is open below, each next
 * one starts where the previous one ended, the last is open above. */
Test(split, many_ranges_are_contiguous_and_capped)
{
    bson_t *sample = ints(-500, 1499), ranges = BSON_INITIALIZER;
    const char *type;
    int n = lm_plan_split(sample, 1000, &ranges, &type);
    cr_assert_eq(n, LM_PLAN_MAX_RANGES);
    cr_assert_eq(bson_count_keys(&ranges), (uint32_t)n + 2);
    bson_iter_t it, id;
    int i = 0;
    int32_t prev_lt = INT32_MIN;
    cr_assert(bson_iter_init(&it, &ranges));
    while (bson_iter_next(&it) && i < n) {
        char key[16];
        bson_snprintf(key, sizeof key, "%d", i);
        cr_assert_str_eq(bson_iter_key(&it), key);
        cr_assert(bson_iter_recurse(&it, &id) && bson_iter_find(&id, "_id"));
        bson_iter_t op;
        cr_assert(bson_iter_recurse(&id, &op));
        bool has_gte = false, has_lt = false;
        int32_t gte = 0, lt = 0;
        while (bson_iter_next(&op)) {
            if (strcmp(bson_iter_key(&op), "$gte") == 0)
                has_gte = true, gte = bson_iter_int32(&op);
            else if (strcmp(bson_iter_key(&op), "$lt") == 0)
                has_lt = true, lt = bson_iter_int32(&op);
            else
                cr_assert_fail("range %d: unexpected %s", i, bson_iter_key(&op));
        }
        cr_assert_eq(has_gte, i > 0, "range %d", i);
        cr_assert_eq(has_lt, i < n - 1, "range %d", i);
        if (has_gte)
            cr_assert_eq(gte, prev_lt, "range %d starts at %d, not %d", i, gte, prev_lt);
        if (has_gte && has_lt)
            cr_assert_gt(lt, gte);
        prev_lt = lt;
        i++;
    }
    cr_assert_eq(i, n);
    bson_destroy(&ranges);
    bson_destroy(sample);
}

/* ---- lm_plan_ranges without a server ---- */

static void info(lm_coll_info_t *c, const char *type, const char *options_json, int64_t est)
{
    memset(c, 0, sizeof *c);
    snprintf(c->db, sizeof c->db, "shop");
    snprintf(c->coll, sizeof c->coll, "orders");
    snprintf(c->ns, sizeof c->ns, "shop.orders");
    snprintf(c->type, sizeof c->type, "%s", type);
    c->options = J(options_json);
    c->est_docs = est;
}

static void expect_one_range(lm_coll_info_t *c, int64_t split_docs, int mode)
{
    bson_t ranges = BSON_INITIALIZER;
    lm_error_t err;
    lm_error_init(&err);
    cr_assert(lm_plan_ranges(NULL, c, split_docs, mode, &ranges, &err), "%s", err.message);
    expect_json(&ranges, "{\"0\": {}}");
    bson_destroy(&ranges);
    bson_destroy(c->options);
}

Test(plan, never_split)
{
    lm_coll_info_t c;
    info(&c, "collection", "{}", 1000000);
    expect_one_range(&c, 1000, LM_JOB_SPLIT_NEVER);
}

Test(plan, capped_collections_keep_insertion_order)
{
    lm_coll_info_t c;
    info(&c, "collection", "{\"capped\": true, \"size\": 4096}", 1000000);
    expect_one_range(&c, 1000, LM_JOB_SPLIT_ALWAYS);
    info(&c, "collection", "{\"capped\": true}", 1000000);
    expect_one_range(&c, 1000, LM_JOB_SPLIT_AUTO);
}

Test(plan, collations_change_string_order)
{
    lm_coll_info_t c;
    info(&c, "collection", "{\"collation\": {\"locale\": \"fr\"}}", 1000000);
    c.has_collation = true;
    expect_one_range(&c, 1000, LM_JOB_SPLIT_ALWAYS);
}

Test(plan, views_and_timeseries_are_not_split)
{
    lm_coll_info_t c;
    info(&c, "view", "{}", 1000000);
    expect_one_range(&c, 1000, LM_JOB_SPLIT_ALWAYS);
    info(&c, "timeseries", "{}", 1000000);
    expect_one_range(&c, 1000, LM_JOB_SPLIT_AUTO);
}

Test(plan, small_collections_are_one_range)
{
    lm_coll_info_t c;
    info(&c, "collection", "{}", 1000);
    expect_one_range(&c, 1000, LM_JOB_SPLIT_ALWAYS); /* at the threshold */
    info(&c, "collection", "{}", 0);
    expect_one_range(&c, 1000, LM_JOB_SPLIT_ALWAYS);
    info(&c, "collection", "{\"capped\": false}", 10);
    expect_one_range(&c, 1000, LM_JOB_SPLIT_ALWAYS);
}
