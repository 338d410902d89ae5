/* lm_redact: see lm_redact.h. */
#include "lm_redact.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lm_encode.h"
#include "lm_strbuf.h"

#define MIN_SECRET_LEN 4
/* Redacted text never grows past this; longer input is cut (logs have their own caps). */
#define MAX_OUT (1u << 20)

/* The registered secrets, each with the number of holders that registered it. The table
 * grows by doubling; an entry whose last holder forgets it is wiped and removed. */
typedef struct {
    char *text;
    size_t len;
    unsigned holders;
} secret_t;

static pthread_mutex_t secrets_mu = PTHREAD_MUTEX_INITIALIZER;
static secret_t *secrets;
static size_t n_secrets, cap_secrets;

static const char *const sensitive_keys[] = {
    "password",      "passwd",      "pwd",        "secret",     "token",
    "apikey",        "api_key",     "api-key",    "privatekey", "private_key",
    "authorization", "credentials", "credential", NULL,
};

static void wipe_free(char *text, size_t len)
{
    lm_wipe(text, len);
    free(text);
}

bool lm_redact_register(const char *secret)
{
    if (!secret || strlen(secret) < MIN_SECRET_LEN)
        return true;
    bool ok = true;
    pthread_mutex_lock(&secrets_mu);
    size_t i = 0;
    while (i < n_secrets && strcmp(secrets[i].text, secret) != 0)
        i++;
    if (i < n_secrets) {
        secrets[i].holders++;
    } else {
        if (n_secrets == cap_secrets) {
            size_t ncap = cap_secrets ? cap_secrets * 2 : 32;
            secret_t *grown = realloc(secrets, ncap * sizeof *grown);
            if (grown) {
                secrets = grown;
                cap_secrets = ncap;
            }
        }
        char *copy = n_secrets < cap_secrets ? strdup(secret) : NULL;
        if (copy)
            secrets[n_secrets++] = (secret_t){copy, strlen(copy), 1};
        else
            ok = false;
    }
    pthread_mutex_unlock(&secrets_mu);
    return ok;
}

void lm_redact_forget(const char *secret)
{
    if (!secret || strlen(secret) < MIN_SECRET_LEN)
        return;
    pthread_mutex_lock(&secrets_mu);
    for (size_t i = 0; i < n_secrets; i++) {
        if (strcmp(secrets[i].text, secret) != 0)
            continue;
        if (--secrets[i].holders == 0) {
            wipe_free(secrets[i].text, secrets[i].len);
            secrets[i] = secrets[--n_secrets];
        }
        break;
    }
    pthread_mutex_unlock(&secrets_mu);
}

size_t lm_redact_count(void)
{
    pthread_mutex_lock(&secrets_mu);
    size_t n = n_secrets;
    pthread_mutex_unlock(&secrets_mu);
    return n;
}

void lm_redact_forget_all(void)
{
    pthread_mutex_lock(&secrets_mu);
    for (size_t i = 0; i < n_secrets; i++)
        wipe_free(secrets[i].text, secrets[i].len);
    free(secrets);
    secrets = NULL;
    n_secrets = cap_secrets = 0;
    pthread_mutex_unlock(&secrets_mu);
}

/* Pass 1: registered literal secrets. */
static void mask_literals(const char *in, lm_strbuf_t *out)
{
    pthread_mutex_lock(&secrets_mu);
    const char *p = in;
    while (*p) {
        size_t best = 0;
        for (size_t i = 0; i < n_secrets; i++) {
            size_t n = secrets[i].len;
            if (n > best && strncmp(p, secrets[i].text, n) == 0)
                best = n;
        }
        if (best) {
            lm_strbuf_append_n(out, LM_REDACT_MASK, strlen(LM_REDACT_MASK));
            p += best;
        } else {
            lm_strbuf_append_n(out, p, 1);
            p++;
        }
    }
    pthread_mutex_unlock(&secrets_mu);
}

static bool authority_end(char c)
{
    return c == '\0' || c == '/' || c == '?' || c == '#' || isspace((unsigned char)c) || c == '"' ||
           c == '\'' || c == ',' || c == '>' || c == ')';
}

/* At "://": if the authority has "user:password@", emit it with the password masked and
 * return the number of input bytes consumed after "://" (0 when nothing to mask). */
static size_t mask_userinfo(const char *p, lm_strbuf_t *out)
{
    size_t end = 0, at = 0, colon = 0;
    bool have_at = false;
    while (!authority_end(p[end])) {
        if (p[end] == '@') {
            at = end;
            have_at = true;
        }
        end++;
    }
    if (!have_at)
        return 0;
    for (colon = 0; colon < at && p[colon] != ':'; colon++)
        ;
    if (colon >= at)
        return 0;
    lm_strbuf_append_n(out, p, colon + 1);
    lm_strbuf_append_n(out, LM_REDACT_MASK, strlen(LM_REDACT_MASK));
    lm_strbuf_append_n(out, p + at, 1);
    return at + 1;
}

static size_t match_key(const char *p)
{
    for (size_t i = 0; sensitive_keys[i]; i++) {
        size_t n = strlen(sensitive_keys[i]);
        if (strncasecmp(p, sensitive_keys[i], n) == 0)
            return n;
    }
    return 0;
}

static bool value_end(char c)
{
    return c == '\0' || isspace((unsigned char)c) || c == '&' || c == ',' || c == ';' || c == '}' ||
           c == ']' || c == ')';
}

/* At a sensitive key: if a separator and a value follow, emit key+separator+mask and
 * return the bytes consumed; else 0. */
static size_t mask_key_value(const char *p, size_t keylen, lm_strbuf_t *out)
{
    size_t i = keylen;
    bool to_eol = strncasecmp(p, "authorization", keylen) == 0 && keylen == 13;

    if (p[i] == '"' || p[i] == '\'')
        i++;
    while (p[i] == ' ' || p[i] == '\t')
        i++;
    if (p[i] != ':' && p[i] != '=')
        return 0;
    i++;
    while (p[i] == ' ' || p[i] == '\t')
        i++;
    size_t vstart = i;
    char q = (p[i] == '"' || p[i] == '\'') ? p[i] : 0;
    if (q) {
        vstart = ++i;
        while (p[i] && p[i] != q) {
            if (p[i] == '\\' && p[i + 1])
                i++;
            i++;
        }
    } else if (to_eol) {
        while (p[i] && p[i] != '\n' && p[i] != '\r' && p[i] != '"')
            i++;
    } else {
        while (!value_end(p[i]))
            i++;
    }
    if (i == vstart)
        return 0;
    lm_strbuf_append_n(out, p, vstart);
    lm_strbuf_append_n(out, LM_REDACT_MASK, strlen(LM_REDACT_MASK));
    return i;
}

/* Pass 2: URI user-info passwords and key=value secrets. */
static void mask_patterns(const char *in, lm_strbuf_t *out)
{
    const char *p = in;
    while (*p) {
        if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
            lm_strbuf_append_n(out, p, 3);
            p += 3;
            p += mask_userinfo(p, out);
            continue;
        }
        size_t keylen = match_key(p);
        if (keylen) {
            size_t used = mask_key_value(p, keylen, out);
            if (used) {
                p += used;
                continue;
            }
            lm_strbuf_append_n(out, p, keylen);
            p += keylen;
            continue;
        }
        lm_strbuf_append_n(out, p, 1);
        p++;
    }
}

char *lm_redact_dup(const char *in)
{
    lm_strbuf_t a, b;
    lm_strbuf_init(&a, MAX_OUT);
    lm_strbuf_init(&b, MAX_OUT);
    if (!in)
        in = "";
    mask_literals(in, &a);
    mask_patterns(lm_strbuf_str(&a), &b);
    bool failed = a.failed || b.failed;
    lm_strbuf_cleanup(&a);
    if (failed) {
        lm_strbuf_cleanup(&b);
        return NULL;
    }
    return lm_strbuf_steal(&b);
}

void lm_redact_buf(const char *in, char *out, size_t outsz)
{
    if (!out || outsz == 0)
        return;
    char *r = lm_redact_dup(in);
    if (!r) {
        /* Never fall back to the unredacted text. */
        snprintf(out, outsz, "%s", "(message withheld: out of memory while redacting)");
        return;
    }
    size_t n = strlen(r);
    if (n >= outsz)
        n = outsz - 1;
    memcpy(out, r, n);
    out[n] = '\0';
    free(r);
}
