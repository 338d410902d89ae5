/* lm_batch: the apply's grouping rules (which changes may be reordered into one command per
 * kind, which may not) and its controller (workers and linger against the lag target),
 * driven by hand-made changes and counters: no server. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "lm_batch.h"

static lm_op_t *op(lm_op_kind_t kind, int id, int seq)
{
    lm_op_t *o = calloc(1, sizeof *o);
    cr_assert_not_null(o);
    o->kind = kind;
    snprintf(o->db, sizeof o->db, "d");
    snprintf(o->coll, sizeof o->coll, "c");
    o->id = BCON_NEW("_id", BCON_INT32(id));
    o->doc = BCON_NEW("_id", BCON_INT32(id), "seq", BCON_INT32(seq));
    o->ts.i = (uint32_t)seq; /* the order the changes were made in */
    return o;
}

static int id_of(const lm_op_t *o)
{
    bson_iter_t it;
    cr_assert(bson_iter_init_find(&it, o->id, "_id"));
    return bson_iter_int32(&it);
}

static void free_all(lm_op_t **ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        lm_op_free(ops[i]);
}

/* Every change of one _id keeps its order; returns nothing, fails the test otherwise. */
static void assert_per_id_order(lm_op_t **ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (id_of(ops[i]) == id_of(ops[j]))
                cr_assert_lt(ops[i]->ts.i, ops[j]->ts.i, "_id %d: change %u after %u",
                             id_of(ops[i]), ops[j]->ts.i, ops[i]->ts.i);
}

Test(batch, changes_to_different_ids_are_grouped_inserts_updates_deletes)
{
    lm_op_t *ops[6] = {op(LM_OP_DELETE, 1, 0), op(LM_OP_INSERT, 2, 1),  op(LM_OP_UPDATE, 3, 2),
                       op(LM_OP_INSERT, 4, 3), op(LM_OP_REPLACE, 5, 4), op(LM_OP_DELETE, 6, 5)};
    lm_op_t *scratch[6];
    cr_assert_eq(lm_batch_order(ops, 6, scratch), 1, "one run: every _id differs");
    lm_op_kind_t want[6] = {LM_OP_INSERT,  LM_OP_INSERT, LM_OP_UPDATE,
                            LM_OP_REPLACE, LM_OP_DELETE, LM_OP_DELETE};
    int want_ids[6] = {2, 4, 3, 5, 1, 6}; /* within a kind, the source's order */
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(ops[i]->kind, want[i], "position %d", i);
        cr_assert_eq(id_of(ops[i]), want_ids[i], "position %d", i);
    }
    /* scratch keeps the source's order (the fallback of a unique-index conflict) */
    for (int i = 0; i < 6; i++)
        cr_assert_eq(scratch[i]->ts.i, (uint32_t)i);
    free_all(ops, 6);
}

Test(batch, a_repeated_id_starts_a_new_run_and_keeps_its_order)
{
    /* insert 1, delete 2, update 1, insert 2, delete 1: three runs ({1,2} {1,2} {1}) */
    lm_op_t *ops[5] = {op(LM_OP_INSERT, 1, 0), op(LM_OP_DELETE, 2, 1), op(LM_OP_UPDATE, 1, 2),
                       op(LM_OP_INSERT, 2, 3), op(LM_OP_DELETE, 1, 4)};
    lm_op_t *scratch[5];
    cr_assert_eq(lm_batch_order(ops, 5, scratch), 3);
    assert_per_id_order(ops, 5);
    /* run 1: insert 1, delete 2; run 2: insert 2 before update 1; run 3: delete 1 */
    int want_seq[5] = {0, 1, 3, 2, 4};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ops[i]->ts.i, (uint32_t)want_seq[i], "position %d: change %u", i,
                     ops[i]->ts.i);
    free_all(ops, 5);
}

Test(batch, many_changes_to_one_document_are_never_reordered)
{
    lm_op_t *ops[4] = {op(LM_OP_DELETE, 7, 0), op(LM_OP_INSERT, 7, 1), op(LM_OP_UPDATE, 7, 2),
                       op(LM_OP_DELETE, 7, 3)};
    lm_op_t *scratch[4];
    cr_assert_eq(lm_batch_order(ops, 4, scratch), 4, "a run per change");
    for (int i = 0; i < 4; i++)
        cr_assert_eq(ops[i]->ts.i, (uint32_t)i);
    free_all(ops, 4);
}

Test(batch, random_batches_keep_every_documents_order)
{
    srand(7);
    for (int round = 0; round < 200; round++) {
        lm_op_t *ops[64], *scratch[64];
        size_t n = 1 + (size_t)(rand() % 64);
        for (size_t i = 0; i < n; i++)
            ops[i] = op((lm_op_kind_t[]){LM_OP_INSERT, LM_OP_REPLACE, LM_OP_UPDATE,
                                         LM_OP_DELETE}[rand() % 4],
                        rand() % 12, (int)i);
        lm_batch_order(ops, n, scratch);
        assert_per_id_order(ops, n);
        /* a permutation: every change once */
        bool seen[64] = {0};
        for (size_t i = 0; i < n; i++) {
            cr_assert(!seen[ops[i]->ts.i]);
            seen[ops[i]->ts.i] = true;
        }
        free_all(ops, n);
    }
}

/* ---- the controller ---- */

typedef struct {
    lm_batch_tune_t t;
    lm_batch_sample_t s;
    int64_t now;
} drive_t;

/* One second in which the workers applied `rate` changes, wrote `busy_ms` (summed), and
 * left `queued` waiting. */
static void second(drive_t *d, int64_t rate, int64_t busy_ms, int64_t queued)
{
    d->now += 1000;
    d->s.applied += rate;
    d->s.busy_ms += busy_ms;
    d->s.queued = queued;
    cr_assert(lm_batch_tune_step(&d->t, d->now, &d->s));
}

Test(batch_tune, starts_with_every_worker_and_no_linger)
{
    drive_t d = {0};
    lm_batch_tune_init(&d.t, 8, false, 1000, 10000, 0);
    cr_assert_eq(d.t.active, 8);
    cr_assert_eq(d.t.linger_ms, 0);
    cr_assert(!lm_batch_tune_step(&d.t, 500, &d.s), "no window before a second");
}

Test(batch_tune, a_quiet_stream_gets_one_worker_and_the_full_linger)
{
    drive_t d = {0};
    lm_batch_tune_init(&d.t, 8, false, 1000, 10000, 0);
    int seen[4];
    for (int i = 0; i < 4; i++) {
        second(&d, 50, 40, 0); /* 50 changes/s, the workers write 4% of the time */
        seen[i] = d.t.active;
    }
    cr_assert_eq(seen[0], 4);
    cr_assert_eq(seen[1], 2);
    cr_assert_eq(seen[2], 1);
    cr_assert_eq(seen[3], 1, "never below one");
    cr_assert_eq(d.t.linger_ms, 500, "10 s / 20, at most 500 ms");
}

Test(batch_tune, the_linger_follows_the_lag_target)
{
    drive_t d = {0};
    lm_batch_tune_init(&d.t, 8, false, 1000, 2000, 0); /* --cutover-lag 2s */
    second(&d, 50, 10, 0);
    cr_assert_eq(d.t.linger_ms, 100);
    lm_batch_tune_init(&d.t, 8, false, 1000, 0, 0); /* --cutover-lag 0: never gather */
    d.now = 0;
    second(&d, 50, 10, 0);
    cr_assert_eq(d.t.linger_ms, 0);
}

Test(batch_tune, a_backlog_or_busy_workers_drain_fast)
{
    drive_t d = {0};
    lm_batch_tune_init(&d.t, 8, false, 1000, 10000, 0);
    for (int i = 0; i < 4; i++)
        second(&d, 50, 20, 0);
    cr_assert_eq(d.t.active, 1);
    cr_assert_eq(d.t.linger_ms, 500);
    second(&d, 2000, 950, 0); /* one worker writing 95% of the time */
    cr_assert_eq(d.t.active, 2);
    cr_assert_eq(d.t.linger_ms, 0, "busy: no gathering");
    second(&d, 2000, 900, 5000); /* a backlog of 5000 changes */
    cr_assert_eq(d.t.active, 4);
    second(&d, 2000, 900, 5000);
    second(&d, 2000, 900, 5000);
    cr_assert_eq(d.t.active, 8, "up to the most");
    cr_assert_eq(d.t.linger_ms, 0);
    second(&d, 3000, 6000, 0); /* drained, 75% busy: stays */
    cr_assert_eq(d.t.active, 8);
    second(&d, 300, 400, 0); /* quiet again */
    cr_assert_eq(d.t.active, 4);
    cr_assert_eq(d.t.linger_ms, 500);
}

Test(batch_tune, a_fixed_number_of_workers_only_changes_the_linger)
{
    drive_t d = {0};
    lm_batch_tune_init(&d.t, 3, true, 1000, 10000, 0);
    second(&d, 50, 10, 0);
    cr_assert_eq(d.t.active, 3);
    cr_assert_eq(d.t.linger_ms, 500);
    second(&d, 5000, 2900, 9000);
    cr_assert_eq(d.t.active, 3);
    cr_assert_eq(d.t.linger_ms, 0);
}
