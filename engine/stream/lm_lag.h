/* lm_lag: the stream's lag and readyForCutover decisions (what GET /api/v1/status reports
 * as lagTimeSeconds and readyForCutover), kept out of lm_stream's monitor thread so that
 * they can be tested without servers.
 *
 * The inputs come from lm_stream: "caught up" is read off the cursor (two awaited answers
 * in a row came back empty and nothing waits to be applied), so no-op heartbeats never
 * make the target look behind; the applied time is the wall time of the applied position
 * (or its optime's seconds when the entry had none). Header-only: nothing to free. */
#ifndef LM_LAG_H
#define LM_LAG_H

#include <stdbool.h>
#include <stdint.h>

/* Seconds the target is behind the source: 0 while caught up; otherwise now minus the
 * later of the applied write's time and the last moment the target was caught up (the
 * oldest write not applied yet is newer than both). Never negative: the source's clock
 * may run ahead of the agent's. All times are milliseconds since the epoch. */
static inline double lm_lag_seconds(bool caught_up, int64_t applied_ms, int64_t caught_up_at_ms,
                                    int64_t now_ms)
{
    if (caught_up)
        return 0;
    int64_t since = applied_ms > caught_up_at_ms ? applied_ms : caught_up_at_ms;
    double lag = (double)(now_ms - since) / 1e3;
    return lag > 0 ? lag : 0;
}

/* readyForCutover: the lag is at most the job's cutover_lag. Compared in seconds, the
 * unit lm_lag_seconds divided into: multiplying the lag back into ms can land a hair above
 * the integer it came from (2.007 * 1000 = 2007.0000000000002), which made a lag of
 * exactly cutover_lag "not ready". */
static inline bool lm_lag_ready(double lag_seconds, int64_t cutover_lag_ms)
{
    return lag_seconds <= (double)cutover_lag_ms / 1e3;
}

/* ---- the cutover estimate (estimatedCutoverSeconds) ----
 *
 * How long a cutover requested now would take: the backlog (changes read but not applied,
 * and entries the source holds beyond the reader) at the apply rate measured while the
 * appliers had a backlog, plus each DDL still to replay at what that kind of DDL took on
 * this target so far (a conservative default before the first one), plus what is left of
 * the DDL running now. readyForCutover needs both the lag and this under --cutover-lag:
 * a lag near zero with index builds queued behind it is not a short cutover. */
typedef enum {
    LM_DDL_CREATE = 0,
    LM_DDL_DROP,
    LM_DDL_CREATE_INDEXES,
    LM_DDL_DROP_INDEXES,
    LM_DDL_OTHER, /* collMod, dropDatabase, ... */
    LM_DDL_KINDS
} lm_ddl_kind_t;

/* Seconds a DDL of each kind is assumed to take before one was measured: index builds
 * scan a collection (minutes on a large one; 10 s here), the rest touch the catalog. */
#define LM_EST_DDL_DEFAULT_S                                                                       \
    {                                                                                              \
        2.0, 2.0, 10.0, 2.0, 2.0                                                                   \
    }
#define LM_EST_RATE_DEFAULT 500.0 /* changes applied per second before one was measured */
#define LM_EST_ALPHA 0.5          /* weight of the newest measurement */

typedef struct {
    double ddl_s[LM_DDL_KINDS]; /* expected seconds per DDL kind */
    bool ddl_measured[LM_DDL_KINDS];
    double rate; /* changes applied per second while there was a backlog */
    bool rate_measured;
} lm_est_model_t;

static inline void lm_est_init(lm_est_model_t *m)
{
    const double d[LM_DDL_KINDS] = LM_EST_DDL_DEFAULT_S;
    for (int k = 0; k < LM_DDL_KINDS; k++) {
        m->ddl_s[k] = d[k];
        m->ddl_measured[k] = false;
    }
    m->rate = LM_EST_RATE_DEFAULT;
    m->rate_measured = false;
}

/* A DDL of kind k took `seconds` on the target: the first measurement replaces the
 * default, later ones are averaged in (exponentially, newest weighted LM_EST_ALPHA). */
static inline void lm_est_ddl_took(lm_est_model_t *m, lm_ddl_kind_t k, double seconds)
{
    if ((int)k < 0 || (int)k >= LM_DDL_KINDS || seconds < 0)
        return;
    m->ddl_s[k] =
        m->ddl_measured[k] ? LM_EST_ALPHA * seconds + (1 - LM_EST_ALPHA) * m->ddl_s[k] : seconds;
    m->ddl_measured[k] = true;
}

/* One second of applying with a backlog waiting: its rate (changes/s). A second with
 * nothing applied says nothing about the rate and is ignored. */
static inline void lm_est_rate(lm_est_model_t *m, double ops_per_second)
{
    if (ops_per_second <= 0)
        return;
    m->rate = m->rate_measured ? LM_EST_ALPHA * ops_per_second + (1 - LM_EST_ALPHA) * m->rate
                               : ops_per_second;
    m->rate_measured = true;
}

/* What is left of a DDL of kind k running for `elapsed` seconds: its expected time minus
 * the elapsed one, but, once it runs longer than expected, half the time it has run so
 * far (it is no nearer its end than that). */
static inline double lm_est_running_left(const lm_est_model_t *m, lm_ddl_kind_t k, double elapsed)
{
    if ((int)k < 0 || (int)k >= LM_DDL_KINDS)
        return 0;
    double left = m->ddl_s[k] - elapsed, floor = elapsed / 2;
    return left > floor ? left : floor;
}

/* The estimate in seconds: `backlog` changes to apply, queued[k] DDL of each kind not
 * started, and `running` (a kind, or -1) running for `running_s`. */
static inline double lm_est_cutover_seconds(const lm_est_model_t *m, int64_t backlog,
                                            const int queued[LM_DDL_KINDS], int running,
                                            double running_s)
{
    double s = backlog > 0 ? (double)backlog / m->rate : 0;
    for (int k = 0; queued && k < LM_DDL_KINDS; k++)
        s += queued[k] > 0 ? queued[k] * m->ddl_s[k] : 0;
    if (running >= 0)
        s += lm_est_running_left(m, (lm_ddl_kind_t)running, running_s);
    return s;
}

/* readyForCutover: the lag and the estimated cutover both within the job's cutover_lag. */
static inline bool lm_est_ready(double lag_seconds, double est_seconds, int64_t cutover_lag_ms)
{
    return lm_lag_ready(lag_seconds, cutover_lag_ms) && est_seconds <= (double)cutover_lag_ms / 1e3;
}

#endif
