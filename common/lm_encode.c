/* lm_encode: see lm_encode.h. */
#include "lm_encode.h"

#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

static const char std_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void lm_base64_encode(const void *in, size_t n, bool url, lm_strbuf_t *out)
{
    const unsigned char *b = in;
    const char *alpha = url ? url_alpha : std_alpha;
    for (size_t i = 0; i < n; i += 3) {
        size_t left = n - i;
        uint32_t v = (uint32_t)b[i] << 16;
        if (left > 1)
            v |= (uint32_t)b[i + 1] << 8;
        if (left > 2)
            v |= b[i + 2];
        char quad[4] = {alpha[(v >> 18) & 63], alpha[(v >> 12) & 63],
                        left > 1 ? alpha[(v >> 6) & 63] : '=', left > 2 ? alpha[v & 63] : '='};
        lm_strbuf_append_n(out, quad, url && left < 3 ? left + 1 : 4);
    }
}

bool lm_base64_decode(const char *in, size_t len, bool url, unsigned char *out, size_t cap,
                      size_t *n)
{
    const char *alpha = url ? url_alpha : std_alpha;
    uint32_t acc = 0;
    int bits = 0;
    *n = 0;
    if (!url)
        while (len && in[len - 1] == '=')
            len--;
    for (size_t i = 0; i < len; i++) {
        const char *p = in[i] ? memchr(alpha, in[i], 64) : NULL;
        if (!p)
            return false;
        acc = (acc << 6) | (uint32_t)(p - alpha);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (*n >= cap)
                return false;
            out[(*n)++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    return bits < 6; /* a lone trailing character carries no byte */
}

void lm_hex_encode(const void *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *b = in;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void lm_wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

bool lm_random_hex(char *out, size_t nbytes)
{
    uint8_t buf[64];
    if (nbytes > sizeof buf || RAND_bytes(buf, (int)nbytes) != 1)
        return false;
    lm_hex_encode(buf, nbytes, out);
    OPENSSL_cleanse(buf, sizeof buf);
    return true;
}
