/* lm_status_http: the agent's local status API (libmicrohttpd), for people and monitoring
 * on the migration host:
 *   GET  /api/v1/status   the job as JSON (lm_status_json)
 *   GET  /metrics         Prometheus text format
 *   POST /api/v1/cancel   asks the job to stop (it checkpoints, then ends CANCELLED)
 *   POST /api/v1/cutover  asks a streaming job to cut over; refused (409) before
 *                         readyForCutover unless the request says ?force=true
 *
 * Plain HTTP on a loopback address only (127.0.0.0/8 or ::1; anything else is refused at
 * start). Who may do what (docs/security.md (the local status API)):
 *   - every request: the Host header must name a loopback address or "localhost" with the
 *     API's port, and an Origin header, when present, must be that same origin, else 403
 *     (DNS rebinding, cross-site requests from a browser on the host);
 *   - POST: "Authorization: Bearer TOKEN" with the run's token (lm_status_token_*), compared
 *     in constant time, else 401. GETs need no token: they carry no secrets.
 * Cutovers forced before readyForCutover are logged with the caller's uid. */
#ifndef LM_STATUS_HTTP_H
#define LM_STATUS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "lm_error.h"
#include "lm_status.h"

typedef struct lm_status_http lm_status_http_t;

#define LM_STATUS_TOKEN_LEN 64                 /* hex characters */
#define LM_STATUS_TOKEN_FILE "status-api.auth" /* in the job's state dir, mode 0600 */

/* addr is "host:port" with a numeric loopback IPv4 host or "[::1]:port"; port 0 picks a
 * free one. token (LM_STATUS_TOKEN_LEN hex characters) is copied; POSTs must present it.
 * Returns NULL with err set when the address is invalid, not loopback, or taken. */
lm_status_http_t *lm_status_http_start(const char *addr, lm_status_t *st, const char *token,
                                       lm_error_t *err);
int lm_status_http_port(lm_status_http_t *h);
void lm_status_http_stop(lm_status_http_t *h);

/* Splits "host:port" ("[::1]:80" too); false with err when malformed. */
bool lm_status_addr_parse(const char *addr, char *host, size_t hostsz, int *port, lm_error_t *err);
/* addr parses and its host is a loopback IP address (127.0.0.0/8, ::1), or addr is "0"
 * (no API); false with an error that says why a wider bind is refused. */
bool lm_status_addr_check(const char *addr, lm_error_t *err);

/* The token file of a run: "<listen address> <token>\n", mode 0600, written atomically into
 * state_dir (created 0700 when missing). The address binds the token to the one API that
 * may receive it: a client sends the token only there. */
bool lm_status_token_write(const char *state_dir, const char *listen_addr, const char *token,
                           lm_error_t *err);
/* Reads state_dir's token file (it must not be readable by group or others): the address
 * into addr, the token into token (LM_STATUS_TOKEN_LEN + 1 bytes; wipe it after use). */
bool lm_status_token_read(const char *state_dir, char *addr, size_t addrsz, char *token,
                          lm_error_t *err);
void lm_status_token_remove(const char *state_dir);

#endif
