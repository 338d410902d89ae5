/* lm_change: every oplog and change-event form decodes to the ops that replay it. */
#include <criterion/criterion.h>
#include <string.h>

#include "lm_apply.h"
#include "lm_change.h"

static bson_t *J(const char *json)
{
    bson_error_t e;
    bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &e);
    cr_assert(b, "bad test JSON %s: %s", json, e.message);
    return b;
}

/* The specs as canonical JSON, for comparison. */
static void expect_json(const bson_t *b, const char *want)
{
    bson_t *w = J(want);
    char *got = bson_as_relaxed_extended_json(b, NULL),
         *exp = bson_as_relaxed_extended_json(w, NULL);
    cr_assert_str_eq(got, exp);
    bson_free(got);
    bson_free(exp);
    bson_destroy(w);
}

static lm_op_kind_t translate(const char *body, bson_t *specs)
{
    bson_t *b = J(body);
    lm_op_kind_t k = lm_change_translate_update(b, specs);
    bson_destroy(b);
    return k;
}

Test(change, v1_set_unset_pass_through)
{
    bson_t specs = BSON_INITIALIZER;
    cr_assert_eq(
        translate("{\"$v\": 1, \"$set\": {\"a.b\": 1}, \"$unset\": {\"c\": true}}", &specs),
        LM_OP_UPDATE);
    expect_json(&specs, "{\"0\": {\"$set\": {\"a.b\": 1}, \"$unset\": {\"c\": true}}}");
    bson_destroy(&specs);
}

Test(change, non_idempotent_operators_refetch)
{
    bson_t specs = BSON_INITIALIZER;
    cr_assert_eq(translate("{\"$inc\": {\"n\": 1}}", &specs), LM_OP_REFETCH);
    cr_assert(bson_empty(&specs));
    bson_destroy(&specs);
}

Test(change, ferretdb_set_with_id_is_a_replacement)
{
    bson_t specs = BSON_INITIALIZER;
    cr_assert_eq(translate("{\"$v\": 1, \"$set\": {\"_id\": 1, \"z\": 1}}", &specs), LM_OP_REPLACE);
    expect_json(&specs, "{\"_id\": 1, \"z\": 1}");
    bson_destroy(&specs);
}

Test(change, replacement)
{
    bson_t specs = BSON_INITIALIZER;
    cr_assert_eq(translate("{\"_id\": 3, \"x\": {\"y\": 1}}", &specs), LM_OP_REPLACE);
    bson_destroy(&specs);
}

Test(change, mongod_v2_diff_with_array_resize)
{
    bson_t specs = BSON_INITIALIZER;
    cr_assert_eq(
        translate("{\"$v\": 2, \"diff\": {\"u\": {\"a\": 1}, \"i\": {\"b\": 2}, "
                  "\"d\": {\"c\": false}, \"ss\": {\"u\": {\"x\": 5}}, "
                  "\"sarr\": {\"a\": true, \"l\": 2, \"u1\": 9, \"s0\": {\"i\": {\"k\": 1}}}}}",
                  &specs),
        LM_OP_UPDATE);
    expect_json(&specs, "{\"0\": {\"$push\": {\"arr\": {\"$each\": [], \"$slice\": 2}}}, "
                        "\"1\": {\"$set\": {\"a\": 1, \"b\": 2, \"s.x\": 5, \"arr.1\": 9, "
                        "\"arr.0.k\": 1}, \"$unset\": {\"c\": true}}}");
    bson_destroy(&specs);
}

Test(change, v2_with_update_description_body)
{
    bson_t specs = BSON_INITIALIZER;
    cr_assert_eq(translate("{\"$v\": 2, \"diff\": {\"updatedFields\": {\"a.3\": 4}, "
                           "\"removedFields\": [\"s.x\"], \"truncatedArrays\": "
                           "[{\"field\": \"t\", \"newSize\": 1}]}}",
                           &specs),
                 LM_OP_UPDATE);
    expect_json(&specs, "{\"0\": {\"$push\": {\"t\": {\"$each\": [], \"$slice\": 1}}}, "
                        "\"1\": {\"$set\": {\"a.3\": 4}, \"$unset\": {\"s.x\": true}}}");
    bson_destroy(&specs);
}

Test(change, unaddressable_fields_refetch)
{
    bson_t specs = BSON_INITIALIZER;
    cr_assert_eq(translate("{\"$v\": 2, \"diff\": {\"u\": {\"a.b\": 1}}}", &specs), LM_OP_REFETCH);
    cr_assert_eq(translate("{\"$v\": 2, \"diff\": {\"u\": {\"$x\": 1}}}", &specs), LM_OP_REFETCH);
    cr_assert_eq(translate("{\"$v\": 2, \"diff\": {\"q\": {}}}", &specs), LM_OP_REFETCH);
    cr_assert_eq(translate("{\"$v\": 3, \"diff\": {}}", &specs), LM_OP_REFETCH);
    bson_t *d = J("{\"updatedFields\": {\"a\": 1}, \"disambiguatedPaths\": {\"a\": [\"a\"]}}");
    cr_assert_eq(lm_change_translate_description(d, &specs), LM_OP_REFETCH);
    bson_destroy(d);
    bson_destroy(&specs);
}

static bool decode(lm_oplog_decoder_t *d, const char *entry, lm_oplist_t *out, lm_error_t *err)
{
    bson_t *e = J(entry);
    lm_optime_t ts, prev = {1, 1};
    int64_t wall;
    bool noop;
    bool ok = lm_oplog_decode(d, e, prev, out, &ts, &wall, &noop, err);
    bson_destroy(e);
    return ok;
}

#define TS(t, i) "{\"$timestamp\": {\"t\": " #t ", \"i\": " #i "}}"

Test(change, oplog_document_ops)
{
    lm_oplog_decoder_t d;
    lm_oplist_t ops = {0};
    lm_error_t err;
    lm_oplog_decoder_init(&d);
    cr_assert(decode(
        &d, "{\"op\": \"i\", \"ns\": \"a.b\", \"ts\": " TS(5, 1) ", \"o\": {\"_id\": 7, \"x\": 1}}",
        &ops, &err));
    cr_assert(decode(
        &d,
        "{\"op\": \"u\", \"ns\": \"a.b\", \"ts\": " TS(
            5, 2) ", \"o2\": {\"_id\": 7}, \"o\": {\"$v\": 2, \"diff\": {\"u\": {\"x\": 2}}}}",
        &ops, &err));
    cr_assert(decode(&d,
                     "{\"op\": \"u\", \"ns\": \"a.b\", \"ts\": " TS(
                         5, 3) ", \"o2\": {\"_id\": 7}, \"o\": {\"y\": 1}}",
                     &ops, &err));
    cr_assert(decode(&d,
                     "{\"op\": \"d\", \"ns\": \"a.b\", \"ts\": " TS(5, 4) ", \"o\": {\"_id\": 7}}",
                     &ops, &err));
    cr_assert(
        decode(&d, "{\"op\": \"n\", \"ns\": \"\", \"ts\": " TS(5, 5) ", \"o\": {\"msg\": \"hb\"}}",
               &ops, &err));
    cr_assert(decode(&d,
                     "{\"op\": \"i\", \"ns\": \"a.b\", \"fromMigrate\": true, \"ts\": " TS(
                         5, 6) ", \"o\": {\"_id\": 8}}",
                     &ops, &err));
    cr_assert(decode(
        &d, "{\"op\": \"i\", \"ns\": \"local.x\", \"ts\": " TS(5, 7) ", \"o\": {\"_id\": 9}}", &ops,
        &err));
    cr_assert_eq(ops.n, 4);
    lm_op_t *op = ops.head;
    cr_assert_eq(op->kind, LM_OP_INSERT);
    cr_assert_str_eq(op->db, "a");
    cr_assert_str_eq(op->coll, "b");
    expect_json(op->id, "{\"_id\": 7}");
    cr_assert_eq(op->next->kind, LM_OP_UPDATE);
    cr_assert_eq(op->next->next->kind, LM_OP_REPLACE);
    expect_json(op->next->next->doc, "{\"_id\": 7, \"y\": 1}");
    cr_assert_eq(op->next->next->next->kind, LM_OP_DELETE);
    /* the same _id goes to the same worker */
    cr_assert_eq(lm_apply_worker_of(op, 8), lm_apply_worker_of(op->next->next->next, 8));
    lm_oplist_clear(&ops);
    lm_oplog_decoder_cleanup(&d);
}

Test(change, transactions_are_held_until_commit_and_dropped_on_abort)
{
    lm_oplog_decoder_t d;
    lm_oplist_t ops = {0};
    lm_error_t err;
    lm_optime_t hold;
    lm_oplog_decoder_init(&d);
    const char *lsid = "\"lsid\": {\"id\": 1}, \"txnNumber\": 4";
    char e[1024];
    snprintf(
        e, sizeof e,
        "{\"op\": \"c\", \"ns\": \"admin.$cmd\", \"ts\": " TS(
            6, 1) ", %s, \"o\": {\"applyOps\": "
                  "[{\"op\": \"i\", \"ns\": \"a.b\", \"o\": {\"_id\": 1}}], \"partialTxn\": true}}",
        lsid);
    cr_assert(decode(&d, e, &ops, &err), "%s", err.message);
    cr_assert_eq(ops.n, 0);
    cr_assert(lm_oplog_decoder_hold(&d, &hold));
    cr_assert_eq(hold.t, 1); /* the position before the transaction's first entry */
    snprintf(e, sizeof e,
             "{\"op\": \"c\", \"ns\": \"admin.$cmd\", \"ts\": " TS(
                 6, 2) ", %s, \"o\": {\"applyOps\": "
                       "[{\"op\": \"d\", \"ns\": \"a.b\", \"o\": {\"_id\": 2}}]}}",
             lsid);
    cr_assert(decode(&d, e, &ops, &err), "%s", err.message);
    cr_assert_eq(ops.n, 2);
    cr_assert_eq(ops.head->kind, LM_OP_INSERT);
    cr_assert_eq(ops.tail->kind, LM_OP_DELETE);
    cr_assert_not(lm_oplog_decoder_hold(&d, &hold));
    lm_oplist_clear(&ops);
    /* prepared, then aborted: nothing comes out */
    snprintf(
        e, sizeof e,
        "{\"op\": \"c\", \"ns\": \"admin.$cmd\", \"ts\": " TS(
            7, 1) ", %s, \"o\": {\"applyOps\": "
                  "[{\"op\": \"i\", \"ns\": \"a.b\", \"o\": {\"_id\": 3}}], \"prepare\": true}}",
        lsid);
    cr_assert(decode(&d, e, &ops, &err));
    snprintf(e, sizeof e,
             "{\"op\": \"c\", \"ns\": \"admin.$cmd\", \"ts\": " TS(
                 7, 2) ", %s, \"o\": {\"abortTransaction\": 1}}",
             lsid);
    cr_assert(decode(&d, e, &ops, &err));
    cr_assert_eq(ops.n, 0);
    lm_oplog_decoder_cleanup(&d);
}

Test(change, ddl_and_rename)
{
    lm_oplog_decoder_t d;
    lm_oplist_t ops = {0};
    lm_error_t err;
    lm_oplog_decoder_init(&d);
    cr_assert(decode(&d,
                     "{\"op\": \"c\", \"ns\": \"a.$cmd\", \"ts\": " TS(
                         8, 1) ", \"o\": {\"createIndexes\": \"b\", \"v\": 2, \"key\": {\"x\": 1}, "
                               "\"name\": \"x_1\"}}",
                     &ops, &err));
    expect_json(ops.head->doc, "{\"createIndexes\": \"b\", \"indexes\": [{\"v\": 2, \"key\": "
                               "{\"x\": 1}, \"name\": \"x_1\"}]}");
    cr_assert(decode(
        &d,
        "{\"op\": \"c\", \"ns\": \"a.$cmd\", \"ts\": " TS(8, 2) ", \"o\": {\"dropDatabase\": 1}}",
        &ops, &err));
    cr_assert_eq(ops.tail->kind, LM_OP_DROP_DATABASE);
    cr_assert_not(decode(&d,
                         "{\"op\": \"c\", \"ns\": \"a.$cmd\", \"ts\": " TS(
                             8, 3) ", \"o\": {\"renameCollection\": \"a.b\", \"to\": \"a.c\"}}",
                         &ops, &err));
    cr_assert(strstr(err.message, "must not rename"), "%s", err.message);
    cr_assert_not(decode(
        &d,
        "{\"op\": \"c\", \"ns\": \"a.$cmd\", \"ts\": " TS(8, 4) ", \"o\": {\"frobnicate\": \"b\"}}",
        &ops, &err));
    cr_assert(strstr(err.message, "'frobnicate' cannot be replayed"), "%s", err.message);
    cr_assert_not(decode(
        &d, "{\"op\": \"u\", \"ns\": \"a.b\", \"ts\": " TS(8, 5) ", \"o\": {\"$set\": {\"x\": 1}}}",
        &ops, &err));
    cr_assert(strstr(err.message, "without 'o2'"), "%s", err.message);
    cr_assert_not(decode(&d, "{\"op\": \"i\", \"ns\": \"a.b\", \"o\": {\"_id\": 1}}", &ops, &err));
    cr_assert_eq(ops.n, 2);
    lm_oplist_clear(&ops);
    lm_oplog_decoder_cleanup(&d);
}

Test(change, change_events)
{
    lm_oplist_t ops = {0};
    lm_error_t err;
    lm_optime_t ts;
    int64_t wall;
    const char *events[] = {
        "{\"operationType\": \"insert\", \"clusterTime\": " TS(
            9, 1) ", \"ns\": {\"db\": \"a\", \"coll\": \"b\"}, \"documentKey\": {\"_id\": 1}, "
                  "\"fullDocument\": {\"_id\": 1, \"x\": 1}}",
        "{\"operationType\": \"update\", \"clusterTime\": " TS(
            9, 2) ", \"ns\": {\"db\": \"a\", \"coll\": \"b\"}, \"documentKey\": {\"_id\": 1}, "
                  "\"updateDescription\": {\"updatedFields\": {\"x\": 2}, \"removedFields\": [], "
                  "\"truncatedArrays\": []}}",
        "{\"operationType\": \"delete\", \"clusterTime\": " TS(
            9, 3) ", \"ns\": {\"db\": \"a\", \"coll\": \"b\"}, \"documentKey\": {\"_id\": 1}}",
        "{\"operationType\": \"dropIndexes\", \"clusterTime\": " TS(
            9, 4) ", \"ns\": {\"db\": \"a\", \"coll\": \"b\"}, \"operationDescription\": "
                  "{\"indexes\": [{\"name\": \"x_1\"}, {\"name\": \"y_1\"}]}}",
    };
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        bson_t *e = J(events[i]);
        cr_assert(lm_event_decode(e, &ops, &ts, &wall, &err), "%s", err.message);
        bson_destroy(e);
    }
    cr_assert_eq(ops.n, 5);
    cr_assert_eq(ops.head->kind, LM_OP_INSERT);
    expect_json(ops.head->next->doc, "{\"0\": {\"$set\": {\"x\": 2}}}");
    expect_json(ops.tail->doc, "{\"dropIndexes\": \"b\", \"index\": \"y_1\"}");
    lm_oplist_clear(&ops);
    bson_t *e = J("{\"operationType\": \"rename\", \"clusterTime\": " TS(
        9,
        5) ", \"ns\": {\"db\": \"a\", \"coll\": \"b\"}, \"to\": {\"db\": \"a\", \"coll\": \"c\"}}");
    cr_assert_not(lm_event_decode(e, &ops, &ts, &wall, &err));
    cr_assert(strstr(err.message, "renamed a.b to a.c"), "%s", err.message);
    bson_destroy(e);
}
