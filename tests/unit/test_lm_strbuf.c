/* lm_strbuf: growth and the hard cap. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "lm_strbuf.h"

Test(strbuf, appends_and_formats)
{
    lm_strbuf_t sb;
    lm_strbuf_init(&sb, 1024);
    cr_assert_str_eq(lm_strbuf_str(&sb), "");
    lm_strbuf_append(&sb, "ab");
    lm_strbuf_appendf(&sb, "-%d-", 42);
    cr_assert_str_eq(lm_strbuf_str(&sb), "ab-42-");
    cr_assert_eq(sb.len, 6);
    cr_assert_not(sb.truncated);
    lm_strbuf_cleanup(&sb);
}

Test(strbuf, cap_truncates_and_flags)
{
    lm_strbuf_t sb;
    lm_strbuf_init(&sb, 5);
    lm_strbuf_append(&sb, "abc");
    lm_strbuf_append(&sb, "defgh");
    cr_assert_str_eq(lm_strbuf_str(&sb), "abcde");
    cr_assert(sb.truncated);
    lm_strbuf_cleanup(&sb);
}

Test(strbuf, large_formatted_append)
{
    lm_strbuf_t sb;
    char big[3000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    lm_strbuf_init(&sb, 1 << 20);
    lm_strbuf_appendf(&sb, "<%s>", big);
    cr_assert_eq(sb.len, sizeof big + 1);
    char *s = lm_strbuf_steal(&sb);
    cr_assert_eq(s[0], '<');
    cr_assert_eq(sb.len, 0);
    free(s);
}
