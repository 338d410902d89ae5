/* lm_time: clocks, durations, interruptible sleep and retry backoff. */
#ifndef LM_TIME_H
#define LM_TIME_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lm_error.h"

#define LM_TIME_ISO8601_LEN 32

/* Wall-clock milliseconds since the Unix epoch. */
int64_t lm_time_now_ms(void);

/* Monotonic milliseconds (for intervals, never for timestamps). */
int64_t lm_time_mono_ms(void);

/* Monotonic milliseconds that count the time a suspended host slept (CLOCK_BOOTTIME), for
 * leases: a lease must run out across a suspend, which CLOCK_MONOTONIC leaves out.
 * CLOCK_MONOTONIC where there is no CLOCK_BOOTTIME. */
int64_t lm_time_boot_ms(void);

/* "2026-11-21T20:40:00.123Z" into buf (LM_TIME_ISO8601_LEN bytes). */
void lm_time_format_iso8601(int64_t epoch_ms, char *buf, size_t bufsz);

/* Parses "250ms", "5s", "2m", "1h", "1d" or sums like "1h30m" into milliseconds. "0" is
 * accepted; any other number needs a unit. */
bool lm_time_parse_duration(const char *s, int64_t *ms, lm_error_t *err);

/* Writes a duration for people: "250ms", "5s", "1h30m", "2d3h". */
void lm_time_format_duration(int64_t ms, char *buf, size_t bufsz);

/* Sleeps ms, waking every 50 ms to look at *cancel (may be NULL). Returns false when
 * cancelled before the time was up. */
bool lm_time_sleep_ms(int64_t ms, const atomic_bool *cancel);

/* pthread_cond_timedwait for at most ms; returns its result (ETIMEDOUT on timeout). */
int lm_time_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t ms);

/* Delay before retry number `attempt` (0-based): a random value in
 * [base/2, min(cap, base * 2^attempt)] ("equal jitter"), so clients that failed together
 * do not retry together, and the delay still grows. */
int64_t lm_time_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms);

#endif
