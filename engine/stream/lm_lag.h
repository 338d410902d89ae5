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

#endif
