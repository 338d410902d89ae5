/* lm_error: the error every fallible livemig function fills in.
 *
 * Convention (as in libbson's bson_error_t): `bool lm_x(..., lm_error_t *err)` returns
 * false and sets err. The message tells an operator what is wrong and what to do. err
 * may be NULL when the caller does not care. Messages pass through lm_redact, so a
 * password or token that slips into a message is masked. Nothing to free. */
#ifndef LM_ERROR_H
#define LM_ERROR_H

#include <stdbool.h>
#include <stddef.h>

#define LM_ERROR_MSG_MAX 1024

typedef enum {
    LM_ERR_NONE = 0,
    LM_ERR_INVALID,   /* bad input: arguments, config, request, message */
    LM_ERR_CONFIG,    /* configuration file problems */
    LM_ERR_IO,        /* file system */
    LM_ERR_NET,       /* cannot connect, connection reset */
    LM_ERR_TLS,       /* handshake, certificate not trusted */
    LM_ERR_TIMEOUT,   /* something took longer than allowed */
    LM_ERR_AUTH,      /* credentials refused */
    LM_ERR_TOO_LARGE, /* a size cap was hit */
    LM_ERR_NOT_FOUND,
    LM_ERR_HTTP,      /* an HTTP peer answered with an error status */
    LM_ERR_CANCELLED, /* stopped on request (signal, cancel) */
    LM_ERR_SERVER,    /* a database server refused or failed an operation */
    LM_ERR_INTERNAL,
    LM_ERR_REVOKED, /* a control plane revoked this agent's link-token */
} lm_error_code_t;

typedef struct {
    lm_error_code_t code;
    int http_status; /* the HTTP status behind an error from an HTTP peer; 0 otherwise */
    char message[LM_ERROR_MSG_MAX];
} lm_error_t;

/* Clears err (code NONE, empty message). */
void lm_error_init(lm_error_t *err);

/* Sets code and a printf-style message (redacted, truncated to fit) and clears http_status.
 * Always returns false so callers can write `return lm_error_set(err, ...);`. Decisions read
 * code and http_status, never the message text. */
bool lm_error_set(lm_error_t *err, lm_error_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same for an HTTP peer's error answer: code LM_ERR_HTTP (or the code given) with the
 * status kept in http_status. */
bool lm_error_set_http(lm_error_t *err, lm_error_code_t code, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* True when err is an HTTP peer's 5xx answer (the peer may answer later). */
bool lm_error_http_5xx(const lm_error_t *err);

/* Puts "<prefix>: " in front of the existing message, e.g. the file or side it concerns. */
void lm_error_prefix(lm_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A stable lower-case name for a code ("tls", "timeout"), for logs and JSON. */
const char *lm_error_code_name(lm_error_code_t code);

#endif
