/* lm_log: levels, text and JSON lines, key=value context, redaction. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lm_json.h"
#include "lm_log.h"
#include "lm_redact.h"

static int pipefd[2];

static void setup(void)
{
    cr_assert_eq(pipe(pipefd), 0);
    lm_log_set_fd(pipefd[1]);
    lm_log_set_level(LM_LOG_INFO);
    lm_log_set_format(LM_LOG_TEXT);
}

static void teardown(void)
{
    close(pipefd[0]);
    close(pipefd[1]);
    lm_log_set_fd(2);
}

static char *drain(void)
{
    static char buf[16384];
    close(pipefd[1]);
    ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = '\0';
    pipefd[1] = -1;
    return buf;
}

TestSuite(log, .init = setup, .fini = teardown);

Test(log, level_filtering)
{
    lm_log_debug(NULL, "hidden");
    lm_log_info(NULL, "shown");
    lm_log_set_level(LM_LOG_ERROR);
    lm_log_warn(NULL, "hidden too");
    char *out = drain();
    cr_assert_null(strstr(out, "hidden"));
    cr_assert(strstr(out, " info  shown\n"), "%s", out);
}

Test(log, text_has_fields_and_timestamp)
{
    lm_log_info("job=j1 phase=COPYING", "copied %d docs", 5);
    char *out = drain();
    cr_assert(strstr(out, "info  job=j1 phase=COPYING copied 5 docs\n"), "%s", out);
    cr_assert_eq(out[4], '-');
    cr_assert_eq(out[10], 'T');
}

Test(log, json_line_is_valid_json_with_fields)
{
    lm_log_set_format(LM_LOG_JSON);
    lm_log_warn("job=j1 ns=shop.orders", "quote \" and newline\n and bad byte \xff end");
    char *out = drain();
    size_t n = strlen(out);
    cr_assert_eq(out[n - 1], '\n');
    lm_error_t err;
    lm_json_val_t *v = lm_json_parse(out, n, 0, 0, &err);
    cr_assert_not_null(v, "%s: %s", err.message, out);
    const char *s = NULL;
    cr_assert(lm_json_get_str(v, "level", true, 0, &s, &err));
    cr_assert_str_eq(s, "warn");
    cr_assert(lm_json_get_str(v, "ns", true, 0, &s, &err));
    cr_assert_str_eq(s, "shop.orders");
    cr_assert(lm_json_get_str(v, "msg", true, 0, &s, &err));
    cr_assert(strstr(s, "quote \" and newline\n"));
    cr_assert(strstr(s, "\xef\xbf\xbd end"), "invalid UTF-8 must become U+FFFD");
    lm_json_free(v);
}

Test(log, secrets_redacted_in_message_and_fields)
{
    lm_redact_register("TopSecret99");
    lm_log_info("uri=mongodb://u:pw1@h:1/", "password=abc and TopSecret99 and token: t0k");
    char *out = drain();
    cr_assert_null(strstr(out, "pw1"), "%s", out);
    cr_assert_null(strstr(out, "abc"), "%s", out);
    cr_assert_null(strstr(out, "TopSecret99"), "%s", out);
    cr_assert_null(strstr(out, "t0k"), "%s", out);
    cr_assert(strstr(out, "mongodb://u:****@h:1/"), "%s", out);
    lm_redact_forget_all();
}

Test(log, very_long_message_is_cut_to_one_line)
{
    char big[20000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    lm_log_info(NULL, "%s", big);
    char *out = drain();
    cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1);
}

Test(log, parse_names)
{
    lm_log_level_t l;
    lm_log_format_t f;
    cr_assert(lm_log_level_parse("WARNING", &l));
    cr_assert_eq(l, LM_LOG_WARN);
    cr_assert_not(lm_log_level_parse("loud", &l));
    cr_assert(lm_log_format_parse("json", &f));
    cr_assert_eq(f, LM_LOG_JSON);
    cr_assert_not(lm_log_format_parse("xml", &f));
}
