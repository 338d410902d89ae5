/* lm_status_http: the agent's local status API (libmicrohttpd), for people and monitoring
 * on the migration host:
 *   GET  /api/v1/status   the job as JSON (lm_status_json)
 *   GET  /metrics         Prometheus text format
 *   POST /api/v1/cancel   asks the job to stop (it checkpoints, then ends CANCELLED)
 * Plain HTTP on the address given (127.0.0.1 by default); it carries no secrets. */
#ifndef LM_STATUS_HTTP_H
#define LM_STATUS_HTTP_H

#include <stdbool.h>

#include "lm_error.h"
#include "lm_status.h"

typedef struct lm_status_http lm_status_http_t;

/* addr is "host:port" with a numeric IPv4 host or "[v6]:port"; port 0 picks a free one.
 * Returns NULL with err set when the address is invalid or taken. */
lm_status_http_t *lm_status_http_start(const char *addr, lm_status_t *st, lm_error_t *err);
int lm_status_http_port(const lm_status_http_t *h);
void lm_status_http_stop(lm_status_http_t *h);

/* Splits "host:port" ("[::1]:80" too); false with err when malformed. */
bool lm_status_addr_parse(const char *addr, char *host, size_t hostsz, int *port, lm_error_t *err);

#endif
