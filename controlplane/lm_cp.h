/* livemig-controlplane internals: configuration, the SQLite store, secrets, the HTTPS
 * server. See controlplane/README.md for the API and the choices behind it. */
#ifndef LM_CP_H
#define LM_CP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lm_config.h"
#include "lm_error.h"
#include "lm_strbuf.h"

typedef struct {
    char *listen;     /* host:port */
    char *public_url; /* what link-tokens name; default https://<listen> */
    struct {
        char *cert_file, *key_file, *ca_file;
    } tls;
    char *db_path;
    char *secrets_key_file; /* 64 hex digits: the AES-256-GCM key for stored passwords */
    int64_t heartbeat_ms, poll_ms;
    int64_t host_grace_ms; /* an agent silent this long is lost to the migrations it runs */
    int64_t cutover_window_ms, extend_ms;
    int64_t relink_ms; /* how long an Owner's permission to relink a host lasts */
    int64_t max_body;
    /* connections: a total, a cap per client address, a budget of waiting agent polls, and
     * the idle timeouts before and after a connection's first authenticated request */
    int64_t max_connections, max_per_address, max_waiting_polls;
    int64_t auth_timeout_ms, idle_timeout_ms;
    /* the web console's sessions: ended after this long without a request, and this long
     * after the sign-in whatever happens */
    int64_t console_idle_ms, console_lifetime_ms;
    int log_level, log_format;
} lm_cp_config_t;

extern const lm_config_field_t lm_cp_config_schema[];

/* ---- secrets (lm_cp_crypto.c) ---- */

/* SHA-256 of salt || secret, hex (65 bytes). */
void lm_cp_hash_secret(const char *salt, const char *secret, char out[65]);
/* Constant-time comparison of two NUL-terminated strings of equal length. */
bool lm_cp_equal(const char *a, const char *b);
/* AES-256-GCM with the key file's key, bound to ad: the row and field the secret is stored
 * in ("jobs/ID/sourcePassword", "clusters/PROJECT/NAME/password"; see lm_cp_store.h), as
 * GCM's associated data. text <-> "v2:" + hex(iv || ciphertext || tag). Opening under
 * another ad (the secret was moved to another row or field), under another key, or a
 * damaged or older ("v1:", unbound) text fails with LM_ERR_AUTH and a message naming ad;
 * out is then unchanged. The plain text is appended to out (use a secret strbuf). */
bool lm_cp_seal(const uint8_t key[32], const char *ad, const char *plain, lm_strbuf_t *out,
                lm_error_t *err);
bool lm_cp_open(const uint8_t key[32], const char *ad, const char *sealed, lm_strbuf_t *out,
                lm_error_t *err);
/* For the store's migration only: a secret sealed by an older control plane ("v1:", no
 * associated data) is opened and sealed again bound to ad into out; a bound one is copied
 * as it is. False (LM_ERR_AUTH, naming ad) when it does not open under key. */
bool lm_cp_reseal(const uint8_t key[32], const char *ad, const char *sealed, lm_strbuf_t *out,
                  lm_error_t *err);
/* Refuses (with a message naming the file and `chmod 600`) a secrets key file whose mode
 * lets group or others read it. */
bool lm_cp_load_key(const char *path, uint8_t key[32], lm_error_t *err);
/* Whether the open file fd (path, a `what` for messages) is private to its owner: no
 * group or other permission bits. */
bool lm_cp_private_file(int fd, const char *path, const char *what, lm_error_t *err);

/* ---- the cutover window (lm_cp_agent.c) ---- */

/* A live migration's cutover window: not set until its first readyForCutover report, then
 * open until end_ms (epoch ms), which `extend` moves. */
typedef struct {
    bool set;
    int64_t end_ms;
} lm_cp_window_t;

/* The window after a status report at now_ms: a live migration's first report with
 * readyForCutover opens it for length_ms; any other report leaves it. True when this
 * report opened it. */
bool lm_cp_window_report(lm_cp_window_t *w, bool migration, bool ready, int64_t now_ms,
                         int64_t length_ms);
/* Moves the end of an open window by by_ms; false (and nothing changed) before it opened. */
bool lm_cp_window_extend(lm_cp_window_t *w, int64_t by_ms);

/* ---- the server (lm_cp_server.c) ---- */

typedef struct lm_cp lm_cp_t;

/* Opens the store (creating its schema), loads TLS material and starts listening. */
lm_cp_t *lm_cp_start(const lm_cp_config_t *cfg, lm_error_t *err);
/* The port it listens on (useful with port 0). */
int lm_cp_port(const lm_cp_t *cp);
/* Checks cutover windows; called every second by main. */
void lm_cp_tick(lm_cp_t *cp);
void lm_cp_stop(lm_cp_t *cp);
/* SIGHUP: the certificate and key (checked to match) of cfg->tls, and its CA's pin, for
 * the handshakes and link-tokens from now on. On failure (the message names the file)
 * nothing changes. */
bool lm_cp_reload_tls(lm_cp_t *cp, const lm_cp_config_t *cfg, lm_error_t *err);
/* The URL link-tokens carry, when the configuration left it to the listening address. */
void lm_cp_set_public_url(lm_cp_t *cp, const char *url);

/* Offline: creates an organization (when missing) and an Organization Owner API key in the
 * store, printing the key's id and secret once. */
bool lm_cp_bootstrap(const lm_cp_config_t *cfg, const char *org, const char *desc, lm_error_t *err);

#endif
