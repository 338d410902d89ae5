/* lm_batch: see lm_batch.h. */
#include "lm_batch.h"

#include <string.h>

static int group_of(lm_op_kind_t k)
{
    switch (k) {
    case LM_OP_INSERT: return 0;
    case LM_OP_DELETE: return 2;
    default: return 1; /* replace, update, refetch */
    }
}

static bool same_id(const lm_op_t *a, const lm_op_t *b)
{
    if (!a->id || !b->id)
        return false;
    return a->id->len == b->id->len &&
           memcmp(bson_get_data(a->id), bson_get_data(b->id), a->id->len) == 0;
}

/* Writes run[0..n) into out grouped by kind, each group in its original order. */
static void emit_run(lm_op_t **run, size_t n, lm_op_t **out)
{
    size_t k = 0;
    for (int g = 0; g < 3; g++)
        for (size_t i = 0; i < n; i++)
            if (group_of(run[i]->kind) == g)
                out[k++] = run[i];
}

size_t lm_batch_order(lm_op_t **ops, size_t n, lm_op_t **scratch)
{
    size_t runs = 0, start = 0;
    if (n == 0)
        return 0;
    memcpy(scratch, ops, n * sizeof *ops);
    for (size_t i = 1; i <= n; i++) {
        bool cut = i == n;
        /* a change without an _id (none is expected) or to an _id already in the run
         * ends the run; the search is quadratic in the run, which is at most a batch */
        for (size_t j = start; !cut && j < i; j++)
            cut = !scratch[i]->id || same_id(scratch[j], scratch[i]);
        if (cut) {
            emit_run(scratch + start, i - start, ops + start);
            runs++;
            start = i;
        }
    }
    return runs;
}

void lm_batch_tune_init(lm_batch_tune_t *t, int workers, bool fixed, int batch_ops,
                        int64_t lag_target_ms, int64_t now_ms)
{
    memset(t, 0, sizeof *t);
    t->max = workers > 0 ? workers : 1;
    t->fixed = fixed;
    t->batch_ops = batch_ops > 0 ? batch_ops : 1000;
    int64_t full = lag_target_ms / 20;
    t->linger_full_ms = full < 0                        ? 0
                        : full > LM_BATCH_LINGER_MAX_MS ? LM_BATCH_LINGER_MAX_MS
                                                        : full;
    t->active = t->max;
    t->linger_ms = 0;
    t->win_start_ms = now_ms;
}

bool lm_batch_tune_step(lm_batch_tune_t *t, int64_t now_ms, const lm_batch_sample_t *s)
{
    int64_t span = now_ms - t->win_start_ms;
    if (span < 1000)
        return false;
    int64_t applied = s->applied - t->win.applied, busy = s->busy_ms - t->win.busy_ms;
    t->win = *s;
    t->win_start_ms = now_ms;
    t->last_rate = (double)applied * 1000.0 / (double)span;
    t->last_util = (double)busy / ((double)span * (double)t->active);
    bool backlog = s->queued > (int64_t)t->active * t->batch_ops / 2;
    if (backlog || t->last_util > 0.7) {
        t->linger_ms = 0;
        if (!t->fixed && t->active < t->max)
            t->active = t->active * 2 > t->max ? t->max : t->active * 2;
    } else {
        t->linger_ms = t->linger_full_ms;
        if (!t->fixed && t->last_util < 0.25 && t->active > 1)
            t->active /= 2;
    }
    return true;
}
