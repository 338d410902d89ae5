/* lm_strbuf: a growable string with a hard size cap (curl's rule: every growable buffer
 * has one). Appends past the cap are cut and `truncated` is set; out of memory sets
 * `failed`. data is always NUL-terminated once anything was appended. */
#ifndef LM_STRBUF_H
#define LM_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* most bytes of content kept */
    bool truncated;
    bool failed;
    bool secret; /* lm_strbuf_init_secret: every block it let go of was wiped first */
} lm_strbuf_t;

void lm_strbuf_init(lm_strbuf_t *sb, size_t max);
/* A buffer for secrets (passwords, messages that carry them): when it grows, the old block
 * is wiped before it is freed (no realloc leaves a copy behind), and lm_strbuf_cleanup
 * wipes the whole block before freeing it. A stolen block is the caller's to wipe. */
void lm_strbuf_init_secret(lm_strbuf_t *sb, size_t max);
void lm_strbuf_append_n(lm_strbuf_t *sb, const char *s, size_t n);
void lm_strbuf_append(lm_strbuf_t *sb, const char *s);
void lm_strbuf_appendf(lm_strbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The content ("" when empty); stays owned by sb. */
const char *lm_strbuf_str(const lm_strbuf_t *sb);
/* Hands the malloc'd content to the caller (never NULL unless failed) and empties sb. */
char *lm_strbuf_steal(lm_strbuf_t *sb);
/* Frees the content (wiped first when sb is secret) and empties sb; it stays usable, with
 * the same cap and kind. */
void lm_strbuf_cleanup(lm_strbuf_t *sb);
/* lm_strbuf_cleanup that wipes the block whatever the kind of sb. */
void lm_strbuf_cleanup_wipe(lm_strbuf_t *sb);

#endif
