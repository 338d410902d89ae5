/* lm_log: see lm_log.h. */
#include "lm_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lm_json.h"
#include "lm_redact.h"
#include "lm_time.h"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static lm_log_level_t log_level = LM_LOG_INFO;
static lm_log_format_t log_format = LM_LOG_TEXT;
static int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void lm_log_set_level(lm_log_level_t level)
{
    log_level = level;
}

void lm_log_set_format(lm_log_format_t format)
{
    log_format = format;
}

void lm_log_set_fd(int fd)
{
    log_fd = fd;
}

const char *lm_log_level_name(lm_log_level_t level)
{
    return level <= LM_LOG_OFF ? level_names[level] : "?";
}

bool lm_log_level_parse(const char *s, lm_log_level_t *level)
{
    for (int i = 0; i <= LM_LOG_OFF; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *level = (lm_log_level_t)i;
            return true;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *level = LM_LOG_WARN;
        return true;
    }
    return false;
}

bool lm_log_format_parse(const char *s, lm_log_format_t *format)
{
    if (strcasecmp(s, "text") == 0)
        *format = LM_LOG_TEXT;
    else if (strcasecmp(s, "json") == 0)
        *format = LM_LOG_JSON;
    else
        return false;
    return true;
}

bool lm_log_enabled(lm_log_level_t level)
{
    return level >= log_level && level < LM_LOG_OFF;
}

/* Appends the key=value pairs of `fields` as JSON members. */
static void json_fields(lm_strbuf_t *line, const char *fields)
{
    const char *p = fields;
    while (p && *p) {
        while (*p == ' ')
            p++;
        const char *tok = p;
        while (*p && *p != ' ')
            p++;
        const char *eq = memchr(tok, '=', (size_t)(p - tok));
        if (!eq || eq == tok)
            continue;
        lm_strbuf_append(line, ",");
        lm_json_escape_n(line, tok, (size_t)(eq - tok));
        lm_strbuf_append(line, ":");
        lm_json_escape_n(line, eq + 1, (size_t)(p - eq - 1));
    }
}

void lm_log_write(lm_log_level_t level, const char *fields, const char *fmt, ...)
{
    char raw[LM_LOG_LINE_MAX], ts[LM_TIME_ISO8601_LEN];
    char *msg = NULL, *flds = NULL;
    lm_strbuf_t line;
    va_list ap;
    int saved_errno = errno;

    if (!lm_log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    msg = lm_redact_dup(raw);
    flds = fields ? lm_redact_dup(fields) : NULL;
    lm_time_format_iso8601(lm_time_now_ms(), ts, sizeof ts);
    lm_strbuf_init(&line, LM_LOG_LINE_MAX + 1024);
    if (log_format == LM_LOG_JSON) {
        lm_strbuf_appendf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts,
                          level_names[level]);
        lm_json_escape(&line, msg ? msg : "(message withheld: out of memory)");
        json_fields(&line, flds);
        lm_strbuf_append(&line, "}\n");
    } else {
        lm_strbuf_appendf(&line, "%s %-5s ", ts, level_names[level]);
        if (flds && *flds)
            lm_strbuf_appendf(&line, "%s ", flds);
        lm_strbuf_appendf(&line, "%s\n", msg ? msg : "(message withheld: out of memory)");
    }
    if (line.truncated && line.len > 0)
        line.data[line.len - 1] = '\n';
    pthread_mutex_lock(&log_mu);
    for (size_t off = 0; off < line.len;) {
        ssize_t n = write(log_fd, line.data + off, line.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    pthread_mutex_unlock(&log_mu);
    lm_strbuf_cleanup(&line);
    free(msg);
    free(flds);
    errno = saved_errno;
}
