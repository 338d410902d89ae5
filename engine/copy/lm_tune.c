/* lm_tune: see lm_tune.h for the method. */
#include "lm_tune.h"

enum { PHASE_CLIMB = 0, PHASE_SETTLED = 1 };

#define EWMA_ALPHA 0.3

static int clamp(const lm_tune_t *t, int level)
{
    return level < t->min ? t->min : level > t->max ? t->max : level;
}

void lm_tune_init(lm_tune_t *t, int min, int max, int start, int64_t now_ms)
{
    *t = (lm_tune_t){0};
    t->min = min < 1 ? 1 : min;
    t->max = max < t->min ? t->min : max;
    t->window_ms = 1000;
    t->window_batches = 8;
    t->margin = 0.10;
    t->drop = 0.30;
    t->latency_rise = 1.0;
    t->probe_base_ms = 20000;
    t->probe_max_ms = 160000;
    t->level = clamp(t, start);
    t->phase = PHASE_CLIMB;
    t->dir = +1;
    t->probe_dir = +1;
    t->origin = t->level;
    t->best_level = 0; /* nothing measured yet */
    t->discard = true; /* the first window holds the start (connections, the first read) */
    t->win_start_ms = now_ms;
    t->probe_period_ms = t->probe_base_ms;
}

bool lm_tune_settled(const lm_tune_t *t)
{
    return t->phase == PHASE_SETTLED;
}

/* Moves to `level`; the next window is a transition and not counted. */
static void move_to(lm_tune_t *t, int level)
{
    if (level != t->level) {
        t->level = level;
        t->changes++;
        t->discard = true;
    }
}

static void settle(lm_tune_t *t, int64_t now_ms, bool found_better)
{
    t->phase = PHASE_SETTLED;
    move_to(t, t->best_level);
    t->ref_tp = t->best_tp;
    t->ref_lat = 0; /* measured at the settled level by the next counted window */
    t->bad_windows = 0;
    t->probe_period_ms = found_better                               ? t->probe_base_ms
                         : t->probe_period_ms * 2 > t->probe_max_ms ? t->probe_max_ms
                                                                    : t->probe_period_ms * 2;
    t->next_probe_ms = now_ms + t->probe_period_ms;
}

/* Leaves the settled level for a neighbour in direction dir (the other one at a bound). */
static void probe(lm_tune_t *t, int dir)
{
    if (clamp(t, t->level + dir) == t->level)
        dir = -dir;
    if (clamp(t, t->level + dir) == t->level)
        return; /* min == max: nothing to choose */
    t->phase = PHASE_CLIMB;
    t->dir = dir;
    t->origin = t->level;
    t->best_level = t->level;
    t->best_tp = t->ref_tp;
    move_to(t, t->level + dir);
}

static void climb(lm_tune_t *t, int64_t now_ms, double tp)
{
    if (t->best_level == 0) { /* the first measurement */
        t->best_level = t->level;
        t->best_tp = tp;
    } else if (tp > t->best_tp * (1.0 + t->margin)) {
        t->best_level = t->level;
        t->best_tp = tp;
    } else {
        /* no gain worth its cost: back to the best level seen */
        settle(t, now_ms, t->best_level != t->origin);
        return;
    }
    if (clamp(t, t->level + t->dir) == t->level)
        settle(t, now_ms, t->best_level != t->origin);
    else
        move_to(t, t->level + t->dir);
}

static void watch(lm_tune_t *t, int64_t now_ms, double tp, double lat)
{
    if (t->ref_lat <= 0) { /* the first window at the settled level */
        t->ref_tp = tp;
        t->ref_lat = lat;
        return;
    }
    bool fell = tp < t->ref_tp * (1.0 - t->drop);
    bool slower = lat > t->ref_lat * (1.0 + t->latency_rise) && tp <= t->ref_tp;
    if (fell || slower) {
        if (++t->bad_windows >= 2) {
            /* the target changed: measure afresh, and try fewer writers first */
            t->ref_tp = tp;
            t->probe_period_ms = t->probe_base_ms;
            probe(t, -1);
        }
        return;
    }
    t->bad_windows = 0;
    t->ref_tp += EWMA_ALPHA * (tp - t->ref_tp);
    t->ref_lat += EWMA_ALPHA * (lat - t->ref_lat);
    if (now_ms >= t->next_probe_ms) {
        int dir = t->probe_dir;
        t->probe_dir = -dir; /* the probe after this one goes the other way */
        probe(t, dir);
    }
}

int lm_tune_step(lm_tune_t *t, int64_t now_ms, const lm_tune_sample_t *s)
{
    int64_t dt = now_ms - t->win_start_ms;
    int64_t docs = s->docs - t->win_start.docs;
    /* a transition window only needs to let the batches of the old level end */
    int div = t->discard ? 2 : 1;
    if (dt < t->window_ms / div || s->batches - t->win_start.batches < t->window_batches / div)
        return t->level;
    int64_t busy = s->busy_ms - t->win_start.busy_ms;
    double tp = (double)docs * 1000.0 / (double)dt;
    double lat = docs > 0 ? (double)busy / (double)docs : 0;
    t->win_start_ms = now_ms;
    t->win_start = *s;
    if (t->discard) {
        t->discard = false;
        return t->level;
    }
    t->last_tp = tp;
    if (t->phase == PHASE_CLIMB)
        climb(t, now_ms, tp);
    else
        watch(t, now_ms, tp, lat);
    return t->level;
}
