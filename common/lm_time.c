/* lm_time: see lm_time.h. */
#include "lm_time.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t lm_time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t lm_time_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t lm_time_boot_ms(void)
{
#ifdef CLOCK_BOOTTIME
    struct timespec ts;
    if (clock_gettime(CLOCK_BOOTTIME, &ts) == 0)
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
#endif
    return lm_time_mono_ms();
}

void lm_time_format_iso8601(int64_t epoch_ms, char *buf, size_t bufsz)
{
    time_t secs = (time_t)(epoch_ms / 1000);
    int millis = (int)(epoch_ms % 1000);
    struct tm tm;
    char date[24];

    if (millis < 0) {
        millis += 1000;
        secs -= 1;
    }
    gmtime_r(&secs, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, bufsz, "%s.%03dZ", date, millis);
}

static int64_t unit_ms(const char *u, size_t n)
{
    if (n == 2 && strncmp(u, "ms", 2) == 0)
        return 1;
    if (n == 1) {
        switch (u[0]) {
        case 's': return 1000;
        case 'm': return 60 * 1000;
        case 'h': return 3600 * 1000;
        case 'd': return 86400 * 1000;
        }
    }
    return 0;
}

bool lm_time_parse_duration(const char *s, int64_t *ms, lm_error_t *err)
{
    const char *p = s;
    int64_t total = 0;

    if (!s || !*s)
        return lm_error_set(err, LM_ERR_INVALID,
                            "empty duration: use a number and a unit, e.g. 5s");
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return true;
    }
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return lm_error_set(err, LM_ERR_INVALID,
                                "'%s' is not a duration: use e.g. 250ms, 5s, 2m, 1h, 1d or 1h30m",
                                s);
        errno = 0;
        char *end;
        long long n = strtoll(p, &end, 10);
        if (errno == ERANGE || n > INT64_MAX / 86400000LL)
            return lm_error_set(err, LM_ERR_INVALID, "duration '%s' is too large", s);
        const char *u = end;
        while (isalpha((unsigned char)*end))
            end++;
        int64_t mult = unit_ms(u, (size_t)(end - u));
        if (mult == 0)
            return lm_error_set(err, LM_ERR_INVALID,
                                "'%s' is not a duration: the unit must be ms, s, m, h or d", s);
        if (total > INT64_MAX - n * mult)
            return lm_error_set(err, LM_ERR_INVALID, "duration '%s' is too large", s);
        total += n * mult;
        p = end;
    }
    *ms = total;
    return true;
}

void lm_time_format_duration(int64_t ms, char *buf, size_t bufsz)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    size_t used = 0;
    int parts = 0;

    if (bufsz == 0)
        return;
    buf[0] = '\0';
    if (ms < 1000) {
        snprintf(buf, bufsz, "%" PRId64 "ms", ms < 0 ? 0 : ms);
        return;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0] && parts < 2; i++) {
        int64_t n = ms / units[i].ms;
        if (n == 0 && parts == 0)
            continue;
        if (n > 0 && used < bufsz)
            used += (size_t)snprintf(buf + used, bufsz - used, "%" PRId64 "%s", n, units[i].unit);
        ms -= n * units[i].ms;
        parts++;
    }
}

bool lm_time_sleep_ms(int64_t ms, const atomic_bool *cancel)
{
    int64_t until = lm_time_mono_ms() + ms;
    for (;;) {
        if (cancel && *cancel)
            return false;
        int64_t left = until - lm_time_mono_ms();
        if (left <= 0)
            return true;
        if (left > 50)
            left = 50;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)left * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int64_t lm_time_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms)
{
    static __thread unsigned int seed;
    int64_t ceiling = base_ms;

    if (seed == 0)
        seed = (unsigned int)lm_time_mono_ms() ^ (unsigned int)(uintptr_t)&seed;
    for (unsigned i = 0; i < attempt && ceiling < cap_ms; i++)
        ceiling *= 2;
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    int64_t floor = base_ms / 2;
    if (floor > ceiling)
        floor = ceiling;
    int64_t span = ceiling - floor;
    return floor + (span > 0 ? (int64_t)(rand_r(&seed) % (span + 1)) : 0);
}

int lm_time_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(cond, mu, &ts);
}
