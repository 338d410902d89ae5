/* lm_cp_crypto: stored secrets (AES-256-GCM) go round, and anything but the sealed text
 * under its key and its row (associated data) is refused; secrets of older control planes
 * (no associated data) are sealed again by the store's migration only; salted hashes,
 * constant-time comparison, the key file. */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lm_cp.h"
#include "lm_encode.h"
#include "lm_test_util.h"

static const uint8_t key[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

#define AD "jobs/0123abcd/sourcePassword"

/* sealed = seal(plain) under key, for the row and field AD */
static void seal(const char *plain, lm_strbuf_t *sealed)
{
    lm_error_t err;
    lm_strbuf_init(sealed, 1u << 16);
    cr_assert(lm_cp_seal(key, AD, plain, sealed, &err), "%s", err.message);
}

/* open(sealed) under k and ad fails, says why (naming ad), and yields nothing */
static void refused_as(const uint8_t k[32], const char *ad, const char *sealed, const char *why)
{
    lm_strbuf_t out;
    lm_error_t err;
    lm_strbuf_init(&out, 1u << 16);
    cr_assert_not(lm_cp_open(k, ad, sealed, &out, &err), "%s: opened %s", why, sealed);
    cr_assert_eq(out.len, 0, "%s", why);
    cr_assert_eq(err.code, LM_ERR_AUTH, "%s", why);
    cr_assert(strstr(err.message, ad), "%s: %s", why, err.message);
    lm_strbuf_cleanup(&out);
}

static void refused(const uint8_t k[32], const char *sealed, const char *why)
{
    refused_as(k, AD, sealed, why);
}

/* A secret as control planes before the row binding sealed it: "v1:" + hex(iv || ciphertext
 * || tag), AES-256-GCM without associated data (written here from the format, not with the
 * code under test). */
static void seal_unbound(const uint8_t k[32], const char *plain, char *out, size_t size)
{
    size_t n = strlen(plain);
    uint8_t buf[512];
    int len = 0, fin = 0;
    cr_assert(12 + n + 16 <= sizeof buf && 3 + 2 * (12 + n + 16) + 1 <= size);
    cr_assert_eq(RAND_bytes(buf, 12), 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    cr_assert(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k, buf) == 1 &&
              EVP_EncryptUpdate(ctx, buf + 12, &len, (const uint8_t *)plain, (int)n) == 1 &&
              EVP_EncryptFinal_ex(ctx, buf + 12 + len, &fin) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, buf + 12 + n) == 1);
    EVP_CIPHER_CTX_free(ctx);
    memcpy(out, "v1:", 3);
    lm_hex_encode(buf, 12 + n + 16, out + 3);
}

Test(cp_crypto, seal_and_open_round_trip)
{
    const char *plains[] = {"", "p", "s3cret pa$$word with spaces",
                            "\xc3\xa9t\xc3\xa9 \xe2\x82\xac"};
    for (size_t i = 0; i < sizeof plains / sizeof plains[0]; i++) {
        lm_strbuf_t sealed, out;
        lm_error_t err;
        seal(plains[i], &sealed);
        const char *s = lm_strbuf_str(&sealed);
        cr_assert(strncmp(s, "v2:", 3) == 0, "%s", s);
        /* hex of a 12-byte IV, the ciphertext (as long as the text) and a 16-byte tag */
        cr_assert_eq(strlen(s), 3 + 2 * (12 + strlen(plains[i]) + 16), "%s", s);
        cr_assert_null(strstr(s, plains[i][0] ? plains[i] : "no such text"));
        lm_strbuf_init(&out, 1u << 16);
        cr_assert(lm_cp_open(key, AD, s, &out, &err), "%s", err.message);
        cr_assert_str_eq(lm_strbuf_str(&out), plains[i]);
        lm_strbuf_cleanup(&out);
        lm_strbuf_cleanup(&sealed);
    }
}

Test(cp_crypto, each_seal_has_its_own_iv)
{
    lm_strbuf_t a, b;
    seal("same text", &a);
    seal("same text", &b);
    cr_assert_str_neq(lm_strbuf_str(&a), lm_strbuf_str(&b));
    lm_strbuf_cleanup(&a);
    lm_strbuf_cleanup(&b);
}

Test(cp_crypto, tampered_ciphertext_is_refused)
{
    lm_strbuf_t sealed;
    seal("the source password", &sealed);
    const char *s = lm_strbuf_str(&sealed);
    size_t n = strlen(s);
    char *t = strdup(s);
    /* one hex digit changed anywhere: in the IV, the ciphertext, the tag */
    for (size_t i = 3; i < n; i++) {
        memcpy(t, s, n + 1);
        t[i] = t[i] == '0' ? '1' : '0';
        refused(key, t, "one digit changed");
    }
    /* cut short, made longer, swapped halves, not hex, not v1 */
    memcpy(t, s, n + 1);
    t[n - 2] = '\0';
    refused(key, t, "the tag cut short");
    memcpy(t, s, n + 1);
    t[3 + 24] = '\0';
    refused(key, t, "only the IV");
    char longer[512];
    snprintf(longer, sizeof longer, "%s00", s);
    refused(key, longer, "a byte appended");
    memcpy(t, s, n + 1);
    t[10] = 'g';
    refused(key, t, "not hex");
    memcpy(t, s, n + 1);
    t[1] = '3';
    refused(key, t, "another version");
    refused(key, s + 3, "no version");
    refused(key, "", "empty");
    free(t);
    lm_strbuf_cleanup(&sealed);
}

Test(cp_crypto, wrong_key_is_refused)
{
    lm_strbuf_t sealed, out;
    lm_error_t err;
    seal("the source password", &sealed);
    uint8_t other[32];
    memcpy(other, key, sizeof other);
    other[31] ^= 1;
    refused(other, lm_strbuf_str(&sealed), "one bit of the key");
    lm_strbuf_init(&out, 1u << 16);
    cr_assert_not(lm_cp_open(other, AD, lm_strbuf_str(&sealed), &out, &err));
    cr_assert(strstr(err.message, "secrets_key_file"), "%s", err.message);
    lm_strbuf_cleanup(&out);
    lm_strbuf_cleanup(&sealed);
}

/* A sealed password copied into another row or field (whoever can write the database)
 * does not open there. */
Test(cp_crypto, another_row_or_field_is_refused)
{
    lm_strbuf_t sealed, out;
    lm_error_t err;
    seal("the source password", &sealed);
    const char *s = lm_strbuf_str(&sealed);
    refused_as(key, "jobs/0123abce/sourcePassword", s, "another job");
    refused_as(key, "jobs/0123abcd/targetPassword", s, "another field");
    refused_as(key, "clusters/p1/src/password", s, "a cluster's row");
    refused_as(key, "jobs/0123abcd/sourcePassword ", s, "the name plus a space");
    lm_strbuf_init(&out, 1u << 16);
    cr_assert_not(lm_cp_open(key, "clusters/p1/src/password", s, &out, &err));
    cr_assert(strstr(err.message, "another row or field"), "%s", err.message);
    cr_assert(lm_cp_open(key, AD, s, &out, &err), "%s", err.message);
    cr_assert_str_eq(lm_strbuf_str(&out), "the source password");
    lm_strbuf_cleanup(&out);
    lm_strbuf_cleanup(&sealed);
}

/* A secret of an older control plane (no associated data) is refused when used, and sealed
 * again bound to its row by the store's migration (lm_cp_reseal), which refuses it under
 * another key. */
Test(cp_crypto, unbound_secrets_are_only_resealed)
{
    char old[512];
    lm_strbuf_t out, plain;
    lm_error_t err;
    seal_unbound(key, "older password", old, sizeof old);
    refused(key, old, "an unbound secret when used");
    lm_strbuf_init(&out, 1u << 16);
    lm_cp_open(key, AD, old, &out, &err);
    cr_assert(strstr(err.message, "enter this password again"), "%s", err.message);
    cr_assert(lm_cp_reseal(key, AD, old, &out, &err), "%s", err.message);
    cr_assert(strncmp(lm_strbuf_str(&out), "v2:", 3) == 0, "%s", lm_strbuf_str(&out));
    lm_strbuf_init_secret(&plain, 1u << 16);
    cr_assert(lm_cp_open(key, AD, lm_strbuf_str(&out), &plain, &err), "%s", err.message);
    cr_assert_str_eq(lm_strbuf_str(&plain), "older password");
    lm_strbuf_cleanup(&plain);
    refused_as(key, "jobs/other/sourcePassword", lm_strbuf_str(&out), "resealed, another row");
    /* a bound secret is kept as it is */
    char bound[512];
    snprintf(bound, sizeof bound, "%s", lm_strbuf_str(&out));
    lm_strbuf_cleanup(&out);
    cr_assert(lm_cp_reseal(key, AD, bound, &out, &err), "%s", err.message);
    cr_assert_str_eq(lm_strbuf_str(&out), bound);
    lm_strbuf_cleanup(&out);
    /* another key: refused, naming the row and what to do */
    uint8_t other[32];
    memcpy(other, key, sizeof other);
    other[0] ^= 1;
    cr_assert_not(lm_cp_reseal(other, AD, old, &out, &err));
    cr_assert_eq(out.len, 0);
    cr_assert(strstr(err.message, AD) && strstr(err.message, "secrets_key_file"), "%s",
              err.message);
    old[10] = old[10] == '0' ? '1' : '0';
    cr_assert_not(lm_cp_reseal(key, AD, old, &out, &err), "a damaged unbound secret");
    lm_strbuf_cleanup(&out);
}

Test(cp_crypto, salted_hashes_and_comparison)
{
    char a[65], b[65], c[65];
    lm_cp_hash_secret("salt1", "secret", a);
    lm_cp_hash_secret("salt1", "secret", b);
    lm_cp_hash_secret("salt2", "secret", c);
    cr_assert_eq(strlen(a), 64);
    cr_assert_eq(strspn(a, "0123456789abcdef"), 64, "%s", a);
    cr_assert(lm_cp_equal(a, b));
    cr_assert_not(lm_cp_equal(a, c), "another salt, another hash");
    /* SHA-256("abc") : salt "a" then secret "bc" */
    lm_cp_hash_secret("a", "bc", a);
    cr_assert_str_eq(a, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cr_assert_not(lm_cp_equal("abc", "abd"));
    cr_assert_not(lm_cp_equal("abc", "abcd"));
    cr_assert(lm_cp_equal("", ""));
}

Test(cp_crypto, key_file)
{
    char dir[256], path[512];
    lm_test_mkdtemp(dir, sizeof dir);
    uint8_t k[32];
    lm_error_t err;
    lm_test_write(dir, "good", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
                  path, sizeof path);
    /* readable by others: refused, naming the file and the fix */
    chmod(path, 0644);
    cr_assert_not(lm_cp_load_key(path, k, &err));
    cr_assert(strstr(err.message, path) && strstr(err.message, "chmod 600"), "%s", err.message);
    chmod(path, 0600);
    cr_assert(lm_cp_load_key(path, k, &err), "%s", err.message);
    for (int i = 0; i < 32; i++)
        cr_assert_eq(k[i], i);
    const char *bad[] = {"", "00", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e",
                         "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
                         "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lm_test_write(dir, "bad", bad[i], path, sizeof path);
        chmod(path, 0600); /* refused for its content, not its mode */
        cr_assert_not(lm_cp_load_key(path, k, &err), "%s", bad[i]);
        cr_assert(strstr(err.message, "64 lowercase hex digits"), "%s", err.message);
    }
    snprintf(path, sizeof path, "%s/missing", dir);
    cr_assert_not(lm_cp_load_key(path, k, &err));
    cr_assert(strstr(err.message, "cannot open"), "%s", err.message);
    lm_test_rmtree(dir);
}
