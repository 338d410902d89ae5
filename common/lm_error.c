/* lm_error: see lm_error.h. */
#include "lm_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lm_redact.h"

void lm_error_init(lm_error_t *err)
{
    if (!err)
        return;
    err->code = LM_ERR_NONE;
    err->http_status = 0;
    err->message[0] = '\0';
}

static void set_v(lm_error_t *err, lm_error_code_t code, int status, const char *fmt, va_list ap)
{
    char raw[LM_ERROR_MSG_MAX];
    vsnprintf(raw, sizeof raw, fmt, ap);
    err->code = code;
    err->http_status = status;
    lm_redact_buf(raw, err->message, sizeof err->message);
}

bool lm_error_set(lm_error_t *err, lm_error_code_t code, const char *fmt, ...)
{
    va_list ap;
    if (!err)
        return false;
    va_start(ap, fmt);
    set_v(err, code, 0, fmt, ap);
    va_end(ap);
    return false;
}

bool lm_error_set_http(lm_error_t *err, lm_error_code_t code, int status, const char *fmt, ...)
{
    va_list ap;
    if (!err)
        return false;
    va_start(ap, fmt);
    set_v(err, code, status, fmt, ap);
    va_end(ap);
    return false;
}

bool lm_error_http_5xx(const lm_error_t *err)
{
    return err && err->http_status >= 500 && err->http_status <= 599;
}

void lm_error_prefix(lm_error_t *err, const char *fmt, ...)
{
    char prefix[LM_ERROR_MSG_MAX];
    char joined[LM_ERROR_MSG_MAX];
    va_list ap;

    if (!err)
        return;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(joined, sizeof joined, "%s: %s", prefix, err->message);
    lm_redact_buf(joined, err->message, sizeof err->message);
}

const char *lm_error_code_name(lm_error_code_t code)
{
    switch (code) {
    case LM_ERR_NONE: return "none";
    case LM_ERR_INVALID: return "invalid";
    case LM_ERR_CONFIG: return "config";
    case LM_ERR_IO: return "io";
    case LM_ERR_NET: return "network";
    case LM_ERR_TLS: return "tls";
    case LM_ERR_TIMEOUT: return "timeout";
    case LM_ERR_AUTH: return "auth";
    case LM_ERR_TOO_LARGE: return "too_large";
    case LM_ERR_NOT_FOUND: return "not_found";
    case LM_ERR_HTTP: return "http";
    case LM_ERR_CANCELLED: return "cancelled";
    case LM_ERR_SERVER: return "server";
    case LM_ERR_INTERNAL: return "internal";
    case LM_ERR_REVOKED: return "revoked";
    }
    return "unknown";
}
