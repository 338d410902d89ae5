/* lm_cp_session: see lm_cp_session.h. */
#include "lm_cp_session.h"

#include <stdio.h>
#include <string.h>

#include "lm_cp.h"
#include "lm_encode.h"

lm_cp_session_state_t lm_cp_session_state(const lm_cp_session_t *s, int64_t now, int64_t idle_ms,
                                          int64_t lifetime_ms)
{
    if (now - s->created_ms >= lifetime_ms)
        return LM_CP_SESSION_TOO_OLD;
    if (now - s->last_ms >= idle_ms)
        return LM_CP_SESSION_IDLE_EXPIRED;
    return LM_CP_SESSION_LIVE;
}

bool lm_cp_cookie_get(const char *header, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    const char *p = header;
    out[0] = '\0';
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        size_t n = strcspn(p, ";");
        if (n > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t vlen = n - nlen - 1;
            while (vlen && (p[nlen + vlen] == ' ' || p[nlen + vlen] == '\t'))
                vlen--; /* trailing blanks before the ';' */
            if (vlen == 0 || vlen >= size)
                return false;
            memcpy(out, p + nlen + 1, vlen);
            out[vlen] = '\0';
            return true;
        }
        p += n;
    }
    return false;
}

bool lm_cp_session_token_valid(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return i == LM_CP_SESSION_TOKEN_LEN;
}

static void drop(lm_cp_session_t *s)
{
    lm_wipe(s, sizeof *s);
}

bool lm_cp_session_new(lm_cp_sessions_t *t, const char *key_id, const char *org, bool owner,
                       int64_t now, char id[65], char csrf[65])
{
    lm_cp_session_t *slot = NULL, *oldest = NULL, *oldest_own = NULL;
    size_t own = 0;
    for (size_t i = 0; i < LM_CP_SESSIONS_MAX; i++) {
        lm_cp_session_t *s = &t->s[i];
        if (s->used &&
            lm_cp_session_state(s, now, t->idle_ms, t->lifetime_ms) != LM_CP_SESSION_LIVE)
            drop(s);
        if (!s->used && !slot)
            slot = s;
        if (s->used && (!oldest || s->last_ms < oldest->last_ms))
            oldest = s;
        if (s->used && strcmp(s->key_id, key_id) == 0) {
            own++;
            if (!oldest_own || s->last_ms < oldest_own->last_ms)
                oldest_own = s;
        }
    }
    if (own >= LM_CP_SESSIONS_PER_KEY) {
        drop(oldest_own); /* this key's least recently used session makes room */
        slot = oldest_own;
    } else if (!slot) {
        drop(oldest); /* the table is full of live sessions: the least recently used goes */
        slot = oldest;
    }
    if (!lm_random_hex(id, LM_CP_SESSION_TOKEN_LEN / 2) ||
        !lm_random_hex(csrf, LM_CP_SESSION_TOKEN_LEN / 2))
        return false;
    lm_cp_hash_secret("", id, slot->id_hash);
    snprintf(slot->csrf, sizeof slot->csrf, "%s", csrf);
    snprintf(slot->key_id, sizeof slot->key_id, "%s", key_id);
    snprintf(slot->org, sizeof slot->org, "%s", org);
    slot->owner = owner;
    slot->created_ms = slot->last_ms = now;
    slot->used = true;
    return true;
}

/* The slot of session id, live or not. */
static lm_cp_session_t *slot_of(lm_cp_sessions_t *t, const char *id)
{
    if (!lm_cp_session_token_valid(id))
        return NULL;
    char hash[65];
    lm_cp_hash_secret("", id, hash);
    for (size_t i = 0; i < LM_CP_SESSIONS_MAX; i++)
        if (t->s[i].used && lm_cp_equal(t->s[i].id_hash, hash))
            return &t->s[i];
    return NULL;
}

lm_cp_session_t *lm_cp_session_find(lm_cp_sessions_t *t, const char *id, int64_t now,
                                    lm_cp_session_state_t *state)
{
    lm_cp_session_t *s = slot_of(t, id);
    *state = LM_CP_SESSION_UNKNOWN;
    if (!s)
        return NULL;
    *state = lm_cp_session_state(s, now, t->idle_ms, t->lifetime_ms);
    if (*state != LM_CP_SESSION_LIVE) {
        drop(s);
        return NULL;
    }
    s->last_ms = now;
    return s;
}

bool lm_cp_session_csrf_ok(const lm_cp_session_t *s, const char *csrf)
{
    return csrf && lm_cp_session_token_valid(csrf) && lm_cp_equal(s->csrf, csrf);
}

bool lm_cp_session_end(lm_cp_sessions_t *t, const char *id)
{
    lm_cp_session_t *s = slot_of(t, id);
    if (s)
        drop(s);
    return s != NULL;
}

int lm_cp_session_end_key(lm_cp_sessions_t *t, const char *key_id)
{
    int n = 0;
    for (size_t i = 0; i < LM_CP_SESSIONS_MAX; i++)
        if (t->s[i].used && strcmp(t->s[i].key_id, key_id) == 0) {
            drop(&t->s[i]);
            n++;
        }
    return n;
}
