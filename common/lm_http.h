/* lm_http: the HTTPS client (libcurl with OpenSSL; the only file that includes curl.h).
 *
 * Certificates are always verified, and only TLS 1.2 or newer is spoken. With ca_file, the
 * certificates in that file are the only trust anchors: libcurl's CA path (/etc/ssl/certs
 * on Debian) is switched off, and during the handshake the verified chain must contain a
 * certificate of ca_file (with ca_pin: the certificate whose SHA-256 is the pin), else the
 * handshake fails and no request (no credential) is sent. Without ca_file: the system
 * store. Optional client certificate. Connect and total timeouts. A
 * response body over max_response_bytes is refused, not truncated. Transient failures
 * (cannot connect, timeout, reset, HTTP 429/502/503/504) are retried up to max_retries
 * times with exponential backoff and jitter; TLS and other errors are not retried. A POST
 * or PATCH is retried only when it was never sent or the server answered 429/503: once it
 * reached the server it may have been carried out.
 * Errors name the URL (redacted) and say what to check. */
#ifndef LM_HTTP_H
#define LM_HTTP_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lm_error.h"

typedef struct {
    const char *ca_file;          /* PEM bundle to trust, and nothing else; NULL: system store */
    const char *ca_pin;           /* lowercase hex SHA-256 (DER) of the one CA to trust, which
                                     must be in ca_file; NULL: any certificate of ca_file */
    const char *client_cert_file; /* PEM client certificate, or NULL */
    const char *client_key_file;  /* its key (may be the same file) */
    const char *pinned_pubkey;    /* "sha256//BASE64" of the server key, or NULL */
    int64_t connect_timeout_ms;   /* 0: 10 s */
    int64_t total_timeout_ms;     /* 0: 60 s */
    unsigned max_retries;         /* retries after the first attempt */
    int64_t backoff_base_ms;      /* 0: 200 ms */
    int64_t backoff_max_ms;       /* 0: 30 s */
    size_t max_response_bytes;    /* 0: 4 MiB */
    const atomic_bool *cancel;    /* set to stop waiting (signals); may be NULL */
} lm_http_opts_t;

typedef struct {
    long status; /* HTTP status of the last attempt */
    char *body;  /* malloc'd, NUL-terminated; NULL when there was none */
    size_t body_len;
    unsigned attempts; /* how many requests were sent */
} lm_http_response_t;

/* Once per process, before threads start. */
bool lm_http_global_init(lm_error_t *err);
void lm_http_global_cleanup(void);

/* Sends one request (with retries as described above). headers is NULL or a
 * NULL-terminated list of "Name: value" lines. A completed exchange returns true whatever
 * the status; the caller judges resp->status. resp is always initialised; clean it up
 * with lm_http_response_cleanup either way. */
bool lm_http_request(const lm_http_opts_t *opts, const char *method, const char *url,
                     const char *const *headers, const char *body, size_t body_len,
                     lm_http_response_t *resp, lm_error_t *err);

void lm_http_response_cleanup(lm_http_response_t *resp);

/* True when a libcurl error detail says the connection was reset, refused or closed (then a
 * failed TLS handshake is no TLS problem, and the error says so). */
bool lm_http_detail_is_disconnect(const char *detail);

/* The SHA-256 (lowercase hex) of the first certificate in a PEM file, over its DER: the
 * CA pin a link-token carries. */
bool lm_http_ca_pin(const char *pem_file, char out[65], lm_error_t *err);

#endif
