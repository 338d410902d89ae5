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

#include <stdbool.h>
#include <stddef.h>

#define LM_REDACT_MASK "****"

/* Remembers a literal secret (copied; shorter than 4 bytes is ignored since masking it
 * would garble ordinary text). The table grows as needed: every registered secret is masked
 * until it is forgotten. Registering the same secret again counts a second holder; it is
 * masked until every holder has forgotten it. Returns false only when out of memory (the
 * caller must then not print text that may hold the secret). */
bool lm_redact_register(const char *secret);

/* Drops one holder of a secret registered before (a job that ended forgets its passwords,
 * so a long-running daemon keeps only the secrets still in use). The copy is wiped when its
 * last holder forgets it. Unknown or short secrets are ignored. */
void lm_redact_forget(const char *secret);

/* How many distinct secrets are registered (tests, diagnostics). */
size_t lm_redact_count(void);

/* Forgets every registered secret (tests). */
void lm_redact_forget_all(void);

/* Writes the redacted form of `in` to out (always NUL-terminated, truncated to outsz). */
void lm_redact_buf(const char *in, char *out, size_t outsz);

/* Returns a malloc'd redacted copy of `in` (caller frees), or NULL when out of memory. */
char *lm_redact_dup(const char *in);

#endif
