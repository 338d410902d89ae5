/* lm_strbuf: see lm_strbuf.h. */
#include "lm_strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_encode.h"

void lm_strbuf_init(lm_strbuf_t *sb, size_t max)
{
    memset(sb, 0, sizeof *sb);
    sb->max = max;
}

void lm_strbuf_init_secret(lm_strbuf_t *sb, size_t max)
{
    lm_strbuf_init(sb, max);
    sb->secret = true;
}

/* A block of ncap bytes holding the content: realloc, or for a secret buffer a new block
 * and the old one wiped and freed. */
static char *grow(lm_strbuf_t *sb, size_t ncap)
{
    if (!sb->secret)
        return realloc(sb->data, ncap);
    char *nd = malloc(ncap);
    if (nd && sb->data) {
        memcpy(nd, sb->data, sb->len + 1);
        lm_wipe(sb->data, sb->cap);
        free(sb->data);
    }
    return nd;
}

void lm_strbuf_append_n(lm_strbuf_t *sb, const char *s, size_t n)
{
    if (sb->failed)
        return;
    if (n > sb->max - sb->len) {
        n = sb->max - sb->len;
        sb->truncated = true;
    }
    if (sb->len + n + 1 > sb->cap) {
        size_t ncap = sb->cap ? sb->cap : 128;
        while (ncap < sb->len + n + 1)
            ncap *= 2;
        char *nd = grow(sb, ncap);
        if (!nd) {
            sb->failed = true;
            return;
        }
        sb->data = nd;
        sb->cap = ncap;
    }
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

void lm_strbuf_append(lm_strbuf_t *sb, const char *s)
{
    lm_strbuf_append_n(sb, s, strlen(s));
}

void lm_strbuf_appendf(lm_strbuf_t *sb, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        lm_strbuf_append_n(sb, small, (size_t)n);
        if (sb->secret)
            lm_wipe(small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        sb->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    lm_strbuf_append_n(sb, big, (size_t)n);
    if (sb->secret)
        lm_wipe(big, (size_t)n);
    free(big);
}

const char *lm_strbuf_str(const lm_strbuf_t *sb)
{
    return sb->data ? sb->data : "";
}

char *lm_strbuf_steal(lm_strbuf_t *sb)
{
    char *d = sb->data;
    if (!d && !sb->failed)
        d = calloc(1, 1);
    size_t max = sb->max;
    bool secret = sb->secret;
    lm_strbuf_init(sb, max);
    sb->secret = secret;
    return d;
}

void lm_strbuf_cleanup(lm_strbuf_t *sb)
{
    if (sb->secret && sb->data)
        lm_wipe(sb->data, sb->cap);
    free(sb->data);
    bool secret = sb->secret;
    lm_strbuf_init(sb, sb->max);
    sb->secret = secret;
}

void lm_strbuf_cleanup_wipe(lm_strbuf_t *sb)
{
    if (sb->data)
        lm_wipe(sb->data, sb->cap);
    lm_strbuf_cleanup(sb);
}
