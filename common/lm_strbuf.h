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
} lm_strbuf_t;

void lm_strbuf_init(lm_strbuf_t *sb, size_t max);
void lm_strbuf_append_n(lm_strbuf_t *sb, const char *s, size_t n);
void lm_strbuf_append(lm_strbuf_t *sb, const char *s);
void lm_strbuf_appendf(lm_strbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The content ("" when empty); stays owned by sb. */
const char *lm_strbuf_str(const lm_strbuf_t *sb);
/* Hands the malloc'd content to the caller (never NULL unless failed) and empties sb. */
char *lm_strbuf_steal(lm_strbuf_t *sb);
void lm_strbuf_cleanup(lm_strbuf_t *sb);

#endif
