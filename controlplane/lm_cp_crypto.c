/* Secrets for the control plane: salted hashes, the CA pin, AES-256-GCM (random ids:
 * lm_random_hex in common). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lm_cp.h"
#include "lm_encode.h"
#include "lm_fs.h"

static int unhex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool from_hex(const char *s, uint8_t *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int hi = unhex(s[2 * i]), lo = unhex(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

void lm_cp_hash_secret(const char *salt, const char *secret, char out[65])
{
    uint8_t md[32];
    unsigned len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, salt, strlen(salt));
    EVP_DigestUpdate(ctx, secret, strlen(secret));
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    lm_hex_encode(md, 32, out);
}

bool lm_cp_equal(const char *a, const char *b)
{
    size_t n = strlen(a);
    return n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}

bool lm_cp_private_file(int fd, const char *path, const char *what, lm_error_t *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return lm_error_set(err, LM_ERR_IO, "%s: cannot read the %s", path, what);
    if (st.st_mode & 077)
        return lm_error_set(err, LM_ERR_CONFIG,
                            "%s: the %s is readable or writable by group or others (mode %04o): "
                            "`chmod 600 %s` (owned by the user the control plane runs as)",
                            path, what, (unsigned)(st.st_mode & 07777), path);
    return true;
}

bool lm_cp_load_key(const char *path, uint8_t key[32], lm_error_t *err)
{
    char buf[256];
    size_t n = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return lm_error_set(err, LM_ERR_CONFIG, "%s: cannot open the secrets key file", path);
    if (!lm_cp_private_file(fileno(f), path, "secrets key file", err)) {
        fclose(f);
        return false;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    bool ok = from_hex(buf, key, 32);
    OPENSSL_cleanse(buf, sizeof buf);
    if (!ok)
        return lm_error_set(err, LM_ERR_CONFIG,
                            "%s: expected 64 lowercase hex digits (make one with `openssl rand "
                            "-hex 32 > FILE; chmod 600 FILE`)",
                            path);
    return true;
}

/* The sealed format: VERSION ":" hex(iv || ciphertext || tag). "v2": the associated data
 * is the row and field the secret is stored in; "v1" (control planes before the binding):
 * none. */
#define SEALED_BOUND "v2:"
#define SEALED_UNBOUND "v1:"

bool lm_cp_seal(const uint8_t key[32], const char *ad, const char *plain, lm_strbuf_t *out,
                lm_error_t *err)
{
    size_t n = strlen(plain);
    uint8_t iv[12], tag[16];
    uint8_t *buf = malloc(12 + n + 16);
    char *hex = malloc(2 * (12 + n + 16) + 1);
    int len = 0, fin = 0, adlen = 0;
    bool ok = buf && hex && ad && ad[0] && RAND_bytes(iv, sizeof iv) == 1;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    ok = ok && ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv) == 1 &&
         EVP_EncryptUpdate(ctx, NULL, &adlen, (const uint8_t *)ad, (int)strlen(ad)) == 1 &&
         EVP_EncryptUpdate(ctx, buf + 12, &len, (const uint8_t *)plain, (int)n) == 1 &&
         EVP_EncryptFinal_ex(ctx, buf + 12 + len, &fin) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    if (ok) {
        memcpy(buf, iv, 12);
        memcpy(buf + 12 + n, tag, 16);
        lm_hex_encode(buf, 12 + n + 16, hex);
        lm_strbuf_append(out, SEALED_BOUND);
        lm_strbuf_append(out, hex);
    } else {
        lm_error_set(err, LM_ERR_INTERNAL, "cannot encrypt a stored secret");
    }
    EVP_CIPHER_CTX_free(ctx);
    if (buf)
        OPENSSL_cleanse(buf, 12 + n + 16);
    free(buf);
    free(hex);
    return ok;
}

/* Opens hex(iv || ciphertext || tag) (after the version) with ad (NULL: none) into out. */
static bool open_hex(const uint8_t key[32], const char *ad, const char *hex, lm_strbuf_t *out)
{
    size_t total = strlen(hex) / 2, n = total - 28;
    uint8_t *buf = malloc(total), *plain = malloc(n + 1);
    int len = 0, fin = 0, adlen = 0;
    bool ok = buf && plain && from_hex(hex, buf, total);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    ok = ok && ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, buf) == 1 &&
         (!ad || EVP_DecryptUpdate(ctx, NULL, &adlen, (const uint8_t *)ad, (int)strlen(ad)) == 1) &&
         EVP_DecryptUpdate(ctx, plain, &len, buf + 12, (int)n) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, buf + 12 + n) == 1 &&
         EVP_DecryptFinal_ex(ctx, plain + len, &fin) == 1;
    if (ok) {
        plain[n] = '\0';
        lm_strbuf_append(out, (const char *)plain);
    }
    EVP_CIPHER_CTX_free(ctx);
    if (plain)
        OPENSSL_cleanse(plain, n + 1);
    free(buf);
    free(plain);
    return ok;
}

/* Whether sealed is version (a prefix) followed by at least an IV and a tag in hex. */
static bool well_formed(const char *sealed, const char *version)
{
    size_t v = strlen(version);
    return strncmp(sealed, version, v) == 0 && strlen(sealed + v) % 2 == 0 &&
           strlen(sealed + v) >= 56;
}

bool lm_cp_open(const uint8_t key[32], const char *ad, const char *sealed, lm_strbuf_t *out,
                lm_error_t *err)
{
    if (well_formed(sealed, SEALED_UNBOUND))
        return lm_error_set(err, LM_ERR_AUTH,
                            "%s: the stored secret is in the format of control planes before "
                            "secrets were bound to their row (it was written by an older version "
                            "after the upgrade, or copied from an older database) and is "
                            "refused: enter this password again",
                            ad);
    if (!well_formed(sealed, SEALED_BOUND))
        return lm_error_set(err, LM_ERR_AUTH, "%s: the stored secret is damaged", ad);
    if (!open_hex(key, ad, sealed + strlen(SEALED_BOUND), out))
        return lm_error_set(err, LM_ERR_AUTH,
                            "%s: the stored secret does not open: it was sealed for another row "
                            "or field (the database was changed outside the control plane), or "
                            "under another key (is secrets_key_file the key it was stored "
                            "with?)",
                            ad);
    return true;
}

bool lm_cp_reseal(const uint8_t key[32], const char *ad, const char *sealed, lm_strbuf_t *out,
                  lm_error_t *err)
{
    if (well_formed(sealed, SEALED_BOUND)) { /* bound already: opened (and checked) when used */
        lm_strbuf_append(out, sealed);
        return true;
    }
    lm_strbuf_t plain;
    lm_strbuf_init_secret(&plain, 1u << 16);
    bool ok = well_formed(sealed, SEALED_UNBOUND) &&
              open_hex(key, NULL, sealed + strlen(SEALED_UNBOUND), &plain);
    if (!ok)
        lm_error_set(err, LM_ERR_AUTH,
                     "%s: the stored secret does not open with secrets_key_file: start with the "
                     "key the database was made with (nothing was changed)",
                     ad);
    ok = ok && lm_cp_seal(key, ad, lm_strbuf_str(&plain), out, err);
    lm_strbuf_cleanup(&plain);
    return ok;
}
