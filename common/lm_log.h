/* lm_log: the one logger. Levels; text for people or JSON lines for machines; key=value
 * context ("job=abc phase=COPYING ns=shop.orders"). Every line is redacted (lm_redact)
 * before it is written, and written with one write(2), so lines from threads never mix.
 * Not for signal handlers. */
#ifndef LM_LOG_H
#define LM_LOG_H

#include <stdbool.h>

typedef enum {
    LM_LOG_DEBUG = 0,
    LM_LOG_INFO,
    LM_LOG_WARN,
    LM_LOG_ERROR,
    LM_LOG_OFF,
} lm_log_level_t;

typedef enum {
    LM_LOG_TEXT = 0,
    LM_LOG_JSON,
} lm_log_format_t;

#define LM_LOG_LINE_MAX 8192

void lm_log_set_level(lm_log_level_t level);
void lm_log_set_format(lm_log_format_t format);
/* Where lines go (default 2, stderr). The descriptor stays the caller's. */
void lm_log_set_fd(int fd);

/* "debug", "info", "warn"/"warning", "error", "off" (any case). */
bool lm_log_level_parse(const char *s, lm_log_level_t *level);
/* "text" or "json". */
bool lm_log_format_parse(const char *s, lm_log_format_t *format);
const char *lm_log_level_name(lm_log_level_t level);

bool lm_log_enabled(lm_log_level_t level);

/* Writes one line. `fields` is NULL or space-separated key=value pairs. */
void lm_log_write(lm_log_level_t level, const char *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define lm_log_debug(fields, ...) lm_log_write(LM_LOG_DEBUG, fields, __VA_ARGS__)
#define lm_log_info(fields, ...) lm_log_write(LM_LOG_INFO, fields, __VA_ARGS__)
#define lm_log_warn(fields, ...) lm_log_write(LM_LOG_WARN, fields, __VA_ARGS__)
#define lm_log_error(fields, ...) lm_log_write(LM_LOG_ERROR, fields, __VA_ARGS__)

#endif
