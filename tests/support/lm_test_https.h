/* A small HTTPS server for tests (libmicrohttpd over GnuTLS), on 127.0.0.1 and a free
 * port, whose answers a test scripts through a callback. */
#ifndef LM_TEST_HTTPS_H
#define LM_TEST_HTTPS_H

#include <stddef.h>

typedef struct {
    unsigned status; /* HTTP status; 0 = 200 */
    char *body;      /* malloc'd by the handler, freed by the server; NULL = empty */
    size_t body_len;
    unsigned delay_ms; /* sleep before answering (timeouts) */
} lm_test_https_reply_t;

/* Called for each request; `hit` counts requests from 1. */
typedef void (*lm_test_https_fn)(void *ud, const char *method, const char *url, unsigned hit,
                                 lm_test_https_reply_t *reply);

typedef struct lm_test_https lm_test_https_t;

/* Starts on TLS with the PEM files given (cert may be NULL for plain HTTP). Fails the test
 * when it cannot. */
lm_test_https_t *lm_test_https_start(const char *cert_file, const char *key_file,
                                     lm_test_https_fn fn, void *ud);
int lm_test_https_port(const lm_test_https_t *s);
unsigned lm_test_https_hits(const lm_test_https_t *s);
/* How many requests carried an Authorization header (a credential reached this server). */
unsigned lm_test_https_auth_seen(const lm_test_https_t *s);
void lm_test_https_stop(lm_test_https_t *s);

#endif
