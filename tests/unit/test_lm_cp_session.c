#define _GNU_SOURCE /* memmem */
/* lm_cp_session: the web console's sessions. The Cookie header parser takes exactly the
 * named cookie; session ids and CSRF tokens are 64 hex digits and only a hash of the id is
 * kept; idle and absolute expiry end a session; a wrong or missing CSRF token is refused;
 * sign-out and a key's deletion end sessions; a full table drops the least recently used. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "lm_cp_console.h"
#include "lm_cp_session.h"

Test(cp_session, cookie_parsing)
{
    char v[80];
    cr_assert(
        lm_cp_cookie_get("a=1; __Host-lm_session=abc; b=2", LM_CP_SESSION_COOKIE, v, sizeof v));
    cr_assert_str_eq(v, "abc");
    cr_assert(lm_cp_cookie_get("__Host-lm_session=x1", LM_CP_SESSION_COOKIE, v, sizeof v));
    cr_assert_str_eq(v, "x1");
    cr_assert(lm_cp_cookie_get("b=2;__Host-lm_session=q ;c=3", LM_CP_SESSION_COOKIE, v, sizeof v));
    cr_assert_str_eq(v, "q");
    /* a name that only starts or ends like it is another cookie */
    cr_assert_not(lm_cp_cookie_get("x__Host-lm_session=1; __Host-lm_sessionX=2",
                                   LM_CP_SESSION_COOKIE, v, sizeof v));
    cr_assert_not(lm_cp_cookie_get("__Host-lm_session=", LM_CP_SESSION_COOKIE, v, sizeof v));
    cr_assert_not(lm_cp_cookie_get("", LM_CP_SESSION_COOKIE, v, sizeof v));
    /* too long for the buffer: refused, not cut */
    cr_assert_not(lm_cp_cookie_get("__Host-lm_session=0123456789", LM_CP_SESSION_COOKIE, v, 5));
    cr_assert_str_eq(v, "");
}

Test(cp_session, token_shape)
{
    cr_assert(lm_cp_session_token_valid(
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
    cr_assert_not(lm_cp_session_token_valid(
        "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
    cr_assert_not(lm_cp_session_token_valid("0123"));
    cr_assert_not(lm_cp_session_token_valid(""));
}

static lm_cp_sessions_t *table(int64_t idle, int64_t life)
{
    lm_cp_sessions_t *t = calloc(1, sizeof *t);
    cr_assert(t);
    t->idle_ms = idle;
    t->lifetime_ms = life;
    return t;
}

Test(cp_session, new_find_and_csrf)
{
    lm_cp_sessions_t *t = table(1000, 10000);
    char id[65], csrf[65];
    cr_assert(lm_cp_session_new(t, "key1", "org1", true, 100, id, csrf));
    cr_assert(lm_cp_session_token_valid(id) && lm_cp_session_token_valid(csrf));
    cr_assert_str_neq(id, csrf);
    /* only the hash of the id is kept */
    for (size_t i = 0; i < LM_CP_SESSIONS_MAX; i++)
        cr_assert_null(memmem(&t->s[i], sizeof t->s[i], id, 64));
    lm_cp_session_state_t st;
    lm_cp_session_t *s = lm_cp_session_find(t, id, 500, &st);
    cr_assert(s && st == LM_CP_SESSION_LIVE);
    cr_assert_str_eq(s->key_id, "key1");
    cr_assert(s->owner);
    cr_assert(lm_cp_session_csrf_ok(s, csrf));
    cr_assert_not(lm_cp_session_csrf_ok(s, NULL));
    cr_assert_not(lm_cp_session_csrf_ok(s, ""));
    char wrong[65];
    memcpy(wrong, csrf, sizeof wrong);
    wrong[10] = wrong[10] == 'a' ? 'b' : 'a';
    cr_assert_not(lm_cp_session_csrf_ok(s, wrong));
    cr_assert_not(lm_cp_session_csrf_ok(s, id)); /* the session id is not the token */
    /* an unknown id */
    cr_assert_null(lm_cp_session_find(t, wrong, 500, &st));
    cr_assert_eq(st, LM_CP_SESSION_UNKNOWN);
    free(t);
}

Test(cp_session, idle_expiry_moves_with_use)
{
    lm_cp_sessions_t *t = table(1000, 10000);
    char id[65], csrf[65];
    lm_cp_session_state_t st;
    cr_assert(lm_cp_session_new(t, "k", "o", false, 0, id, csrf));
    cr_assert(lm_cp_session_find(t, id, 999, &st)); /* used at 999: idle until 1999 */
    cr_assert(lm_cp_session_find(t, id, 1998, &st));
    cr_assert_null(lm_cp_session_find(t, id, 2998, &st));
    cr_assert_eq(st, LM_CP_SESSION_IDLE_EXPIRED);
    /* and it is gone: asking again says unknown */
    cr_assert_null(lm_cp_session_find(t, id, 2999, &st));
    cr_assert_eq(st, LM_CP_SESSION_UNKNOWN);
    free(t);
}

Test(cp_session, absolute_expiry_however_busy)
{
    lm_cp_sessions_t *t = table(1000, 3000);
    char id[65], csrf[65];
    lm_cp_session_state_t st;
    cr_assert(lm_cp_session_new(t, "k", "o", false, 0, id, csrf));
    for (int64_t now = 500; now < 3000; now += 500)
        cr_assert(lm_cp_session_find(t, id, now, &st), "at %lld", (long long)now);
    cr_assert_null(lm_cp_session_find(t, id, 3000, &st));
    cr_assert_eq(st, LM_CP_SESSION_TOO_OLD);
    free(t);
}

Test(cp_session, sign_out_and_key_deletion)
{
    lm_cp_sessions_t *t = table(100000, 100000);
    char a[65], b[65], c[65], csrf[65];
    lm_cp_session_state_t st;
    cr_assert(lm_cp_session_new(t, "k1", "o", true, 0, a, csrf));
    cr_assert(lm_cp_session_new(t, "k1", "o", true, 0, b, csrf));
    cr_assert(lm_cp_session_new(t, "k2", "o", true, 0, c, csrf));
    cr_assert(lm_cp_session_end(t, a));
    cr_assert_not(lm_cp_session_end(t, a));
    cr_assert_null(lm_cp_session_find(t, a, 1, &st));
    cr_assert_eq(lm_cp_session_end_key(t, "k1"), 1);
    cr_assert_null(lm_cp_session_find(t, b, 1, &st));
    cr_assert(lm_cp_session_find(t, c, 1, &st));
    free(t);
}

Test(cp_session, full_table_drops_least_recently_used)
{
    lm_cp_sessions_t *t = table(1000000, 1000000);
    static char ids[LM_CP_SESSIONS_MAX][65];
    char csrf[65], extra[65];
    lm_cp_session_state_t st;
    char key[16];
    for (int i = 0; i < LM_CP_SESSIONS_MAX; i++) {
        snprintf(key, sizeof key, "k%d", i);
        cr_assert(lm_cp_session_new(t, key, "o", false, 10 + i, ids[i], csrf));
    }
    cr_assert(lm_cp_session_find(t, ids[0], 5000, &st)); /* the oldest is used again */
    cr_assert(lm_cp_session_new(t, "other", "o", false, 6000, extra, csrf));
    cr_assert(lm_cp_session_find(t, ids[0], 6001, &st));
    cr_assert_null(lm_cp_session_find(t, ids[1], 6001, &st)); /* least recently used */
    cr_assert(lm_cp_session_find(t, extra, 6001, &st));
    free(t);
}

/* The attack: a Member's key signs in again and again to push an Owner's session out of
 * the table. Each key keeps at most LM_CP_SESSIONS_PER_KEY sessions: the flood only
 * replaces its own. */
Test(cp_session, one_key_signing_in_again_and_again_pushes_out_only_its_own)
{
    lm_cp_sessions_t *t = table(1000000, 1000000);
    char owner[65], first[65], id[65], csrf[65];
    lm_cp_session_state_t st;
    cr_assert(lm_cp_session_new(t, "owner", "o", true, 1, owner, csrf));
    cr_assert(lm_cp_session_new(t, "member", "o", false, 2, first, csrf));
    for (int i = 0; i < 4 * LM_CP_SESSIONS_MAX; i++)
        cr_assert(lm_cp_session_new(t, "member", "o", false, 3 + i, id, csrf));
    cr_assert(lm_cp_session_find(t, owner, 100000, &st), "the owner was signed out");
    cr_assert_null(lm_cp_session_find(t, first, 100000, &st));
    cr_assert(lm_cp_session_find(t, id, 100000, &st));
    size_t members = 0;
    for (size_t i = 0; i < LM_CP_SESSIONS_MAX; i++)
        members += t->s[i].used && strcmp(t->s[i].key_id, "member") == 0;
    cr_assert_eq(members, LM_CP_SESSIONS_PER_KEY);
    free(t);
}

Test(cp_console, content_types_and_assets)
{
    cr_assert_str_eq(lm_cp_console_content_type("index.html"), "text/html; charset=utf-8");
    cr_assert_str_eq(lm_cp_console_content_type("app.js"), "text/javascript; charset=utf-8");
    cr_assert_str_eq(lm_cp_console_content_type("console.css"), "text/css; charset=utf-8");
    cr_assert_str_eq(lm_cp_console_content_type("x"), "application/octet-stream");
    cr_assert(lm_cp_console_path("/console") && lm_cp_console_path("/console/app.js"));
    cr_assert_not(lm_cp_console_path("/consoleX") || lm_cp_console_path("/api/console/"));
    bool index = false;
    for (const lm_cp_asset_t *a = lm_cp_console_assets; a->name; a++) {
        index |= strcmp(a->name, "index.html") == 0;
        cr_assert(a->len > 0 && a->data[a->len] == 0, "%s", a->name);
        cr_assert_eq(strlen(a->etag), 66, "%s: %s", a->name, a->etag); /* "<64 hex>" */
    }
    cr_assert(index, "index.html is compiled in");
}
