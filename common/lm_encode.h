/* lm_encode: base64 (standard with padding, or URL-safe without), lowercase hex, and a
 * wipe for secrets that the compiler may not drop, and random hex. One codec for the
 * link-token, HTTP Basic auth and the control plane's hashes. */
#ifndef LM_ENCODE_H
#define LM_ENCODE_H

#include <stdbool.h>
#include <stddef.h>

#include "lm_strbuf.h"

/* Appends base64 of in[0..n): url = the URL-safe alphabet without padding (RFC 4648 §5),
 * else the standard one with '=' padding. */
void lm_base64_encode(const void *in, size_t n, bool url, lm_strbuf_t *out);
/* Decodes in[0..len) into out (capacity cap), *n bytes. Standard input may end in '='
 * padding. False on a character outside the alphabet, a dangling character, or when out
 * is too small. */
bool lm_base64_decode(const char *in, size_t len, bool url, unsigned char *out, size_t cap,
                      size_t *n);
/* out (2n+1 bytes) = lowercase hex of in[0..n). */
void lm_hex_encode(const void *in, size_t n, char *out);
/* nbytes (at most 64) random bytes from the OpenSSL CSPRNG as lowercase hex into out
 * (2*nbytes+1 bytes): ids, secrets, salts. False when no randomness is available. */
bool lm_random_hex(char *out, size_t nbytes);
/* Zeroes p[0..n) in a way the compiler keeps. */
void lm_wipe(void *p, size_t n);

#endif
