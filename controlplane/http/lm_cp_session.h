/* The web console's sign-in sessions (lm_cp_session.c): a table in memory of who signed in
 * with which API key, found by the SHA-256 of the session id the browser holds in its
 * cookie (the id itself is never kept), each with a CSRF token, an idle expiry and an
 * absolute one. No I/O and no lock of its own: the server calls it with cp->mu held; the
 * parsing helpers are pure. A restart of the control plane ends every session (sign in
 * again). See controlplane/README.md, "The web console". */
#ifndef LM_CP_SESSION_H
#define LM_CP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The cookie: the __Host- prefix makes the browser refuse it unless it is Secure, has
 * Path=/ and no Domain. */
#define LM_CP_SESSION_COOKIE "__Host-lm_session"
/* Session ids and CSRF tokens: 32 random bytes as 64 hex digits. */
#define LM_CP_SESSION_TOKEN_LEN 64
#define LM_CP_SESSIONS_MAX 1024
#define LM_CP_SESSIONS_PER_KEY 16 /* one key cannot push the others' sessions out */

typedef struct {
    bool used;
    char id_hash[65];                       /* SHA-256 (hex) of the session id */
    char csrf[LM_CP_SESSION_TOKEN_LEN + 1]; /* sent back by the console on every change */
    char key_id[80], org[80];
    bool owner;
    int64_t created_ms, last_ms;
} lm_cp_session_t;

typedef struct {
    lm_cp_session_t s[LM_CP_SESSIONS_MAX];
    int64_t idle_ms, lifetime_ms;
} lm_cp_sessions_t;

typedef enum {
    LM_CP_SESSION_UNKNOWN, /* no such session: never made, signed out, or dropped */
    LM_CP_SESSION_LIVE,
    LM_CP_SESSION_IDLE_EXPIRED, /* no request for idle_ms */
    LM_CP_SESSION_TOO_OLD,      /* signed in more than lifetime_ms ago */
} lm_cp_session_state_t;

/* Whether s, used last at s->last_ms, is still live at now. */
lm_cp_session_state_t lm_cp_session_state(const lm_cp_session_t *s, int64_t now, int64_t idle_ms,
                                          int64_t lifetime_ms);

/* The value of cookie `name` in a Cookie header ("a=1; b=2") into out[size]; false when it
 * is absent, empty, or longer than size - 1. */
bool lm_cp_cookie_get(const char *header, const char *name, char *out, size_t size);

/* Whether s is a session id or CSRF token as made here: LM_CP_SESSION_TOKEN_LEN lowercase
 * hex digits. */
bool lm_cp_session_token_valid(const char *s);

/* A new session for the API key key_id of org: its id into id[65] (for the cookie, never
 * stored) and its CSRF token into csrf[65]. Expired sessions are dropped first; a key with
 * LM_CP_SESSIONS_PER_KEY live sessions loses its own least recently used one (so a key
 * signing in again and again cannot push other keys' sessions out); a full table then
 * drops the least recently used session. False when no randomness could be had. */
bool lm_cp_session_new(lm_cp_sessions_t *t, const char *key_id, const char *org, bool owner,
                       int64_t now, char id[65], char csrf[65]);

/* The live session whose id is `id` (its last use moved to now), or NULL; *state says why
 * not (an expired session is removed). */
lm_cp_session_t *lm_cp_session_find(lm_cp_sessions_t *t, const char *id, int64_t now,
                                    lm_cp_session_state_t *state);

/* Whether csrf (a request's X-CSRF-Token header, NULL when absent) is s's token, compared
 * in constant time. */
bool lm_cp_session_csrf_ok(const lm_cp_session_t *s, const char *csrf);

/* Ends the session with id `id` (sign-out): true when there was one. */
bool lm_cp_session_end(lm_cp_sessions_t *t, const char *id);

/* Ends every session of API key key_id (the key was deleted); their number. */
int lm_cp_session_end_key(lm_cp_sessions_t *t, const char *key_id);

#endif
