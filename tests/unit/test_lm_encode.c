/* lm_encode: RFC 4648 test vectors in both alphabets, refusals, hex, wipe. */
#include <criterion/criterion.h>
#include <string.h>

#include "lm_encode.h"

static void enc(const char *in, bool url, const char *want)
{
    lm_strbuf_t sb;
    lm_strbuf_init(&sb, 1024);
    lm_base64_encode(in, strlen(in), url, &sb);
    cr_assert_str_eq(lm_strbuf_str(&sb), want, "\"%s\"", in);
    unsigned char out[64];
    size_t n;
    cr_assert(lm_base64_decode(want, strlen(want), url, out, sizeof out, &n), "%s", want);
    cr_assert_eq(n, strlen(in));
    cr_assert_eq(memcmp(out, in, n), 0);
    lm_strbuf_cleanup(&sb);
}

Test(encode, rfc4648_vectors)
{
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    const char *url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        enc(in[i], false, std[i]);
        enc(in[i], true, url[i]);
    }
    enc("\xfb\xff", false, "+/8=");
    enc("\xfb\xff", true, "-_8");
}

Test(encode, refusals)
{
    unsigned char out[4];
    size_t n;
    cr_assert_not(lm_base64_decode("Zm9v!", 5, false, out, sizeof out, &n));
    cr_assert_not(lm_base64_decode("+/8", 3, true, out, sizeof out, &n), "std chars in url");
    cr_assert_not(lm_base64_decode("Zm9vY", 5, true, out, sizeof out, &n), "a dangling char");
    cr_assert_not(lm_base64_decode("Zm9vYmFy", 8, false, out, sizeof out, &n), "too small");
}

Test(encode, hex_and_wipe)
{
    char hex[9];
    lm_hex_encode("\x00\x9f\xff\x10", 4, hex);
    cr_assert_str_eq(hex, "009fff10");
    char secret[] = "s3cret";
    lm_wipe(secret, sizeof secret);
    for (size_t i = 0; i < sizeof secret; i++)
        cr_assert_eq(secret[i], 0);
}

Test(encode, random_hex)
{
    char a[65], b[65];
    cr_assert(lm_random_hex(a, 32));
    cr_assert(lm_random_hex(b, 32));
    cr_assert_eq(strlen(a), 64);
    cr_assert_eq(strspn(a, "0123456789abcdef"), 64, "%s", a);
    cr_assert_str_neq(a, b);
    char big[200];
    cr_assert_not(lm_random_hex(big, 65), "more than 64 bytes at once is refused");
}
