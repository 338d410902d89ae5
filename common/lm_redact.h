/* lm_redact: masks secrets in any text before it is logged, shown or stored.
 *
 * Three rules, applied to every log line and error message:
 *  1. registered secrets (lm_redact_register) are replaced wherever they occur;
 *  2. the password in a URI's user-info ("mongodb://user:pw@host") is masked;
 *  3. the value after a sensitive key (password, pwd, secret, token, apikey,
 *     authorization, ... as in `password=x`, `"token": "x"`, `secret: x`) is masked.
 * The mask is "****". Thread-safe. */
#ifndef LM_REDACT_H
#define LM_REDACT_H

#include <stddef.h>

#define LM_REDACT_MASK "****"

/* Remembers a literal secret (copied; shorter than 4 bytes is ignored since masking it
 * would garble ordinary text). At most 128 are kept; later ones still go in, the oldest
 * registered first-come stay. */
void lm_redact_register(const char *secret);

/* Forgets every registered secret (tests). */
void lm_redact_forget_all(void);

/* Writes the redacted form of `in` to out (always NUL-terminated, truncated to outsz). */
void lm_redact_buf(const char *in, char *out, size_t outsz);

/* Returns a malloc'd redacted copy of `in` (caller frees), or NULL when out of memory. */
char *lm_redact_dup(const char *in);

#endif
