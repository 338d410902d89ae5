/* lm_error: messages are formatted, prefixed, redacted and NULL-safe. */
#include <criterion/criterion.h>
#include <string.h>

#include "lm_error.h"

Test(error, set_returns_false_and_formats)
{
    lm_error_t err;
    lm_error_init(&err);
    cr_assert_eq(err.code, LM_ERR_NONE);
    cr_assert_not(lm_error_set(&err, LM_ERR_IO, "disk %d full", 3));
    cr_assert_eq(err.code, LM_ERR_IO);
    cr_assert_str_eq(err.message, "disk 3 full");
}

Test(error, null_error_is_allowed)
{
    cr_assert_not(lm_error_set(NULL, LM_ERR_IO, "x"));
    lm_error_prefix(NULL, "y");
    lm_error_init(NULL);
}

Test(error, prefix_adds_context)
{
    lm_error_t err;
    lm_error_set(&err, LM_ERR_CONFIG, "bad value");
    lm_error_prefix(&err, "%s:%d", "agent.yaml", 12);
    cr_assert_str_eq(err.message, "agent.yaml:12: bad value");
}

Test(error, messages_are_redacted)
{
    lm_error_t err;
    lm_error_set(&err, LM_ERR_AUTH, "cannot connect to mongodb://u:pw123@h:1/");
    cr_assert_null(strstr(err.message, "pw123"));
    cr_assert_str_eq(err.message, "cannot connect to mongodb://u:****@h:1/");
}

Test(error, long_messages_are_cut_not_overflowed)
{
    lm_error_t err;
    char big[4000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    lm_error_set(&err, LM_ERR_INVALID, "%s", big);
    cr_assert_eq(strlen(err.message), LM_ERROR_MSG_MAX - 1);
}

Test(error, code_names)
{
    cr_assert_str_eq(lm_error_code_name(LM_ERR_TLS), "tls");
    cr_assert_str_eq(lm_error_code_name(LM_ERR_TOO_LARGE), "too_large");
}

/* Decisions read the HTTP status, not the message text. */
Test(error, http_status_kept_and_cleared)
{
    lm_error_t e;
    lm_error_init(&e);
    cr_assert_eq(e.http_status, 0);
    lm_error_set_http(&e, LM_ERR_HTTP, 503, "the control plane refused it (busy)");
    cr_assert_eq(e.http_status, 503);
    cr_assert(lm_error_http_5xx(&e));
    lm_error_set_http(&e, LM_ERR_HTTP, 404, "HTTP 5 in the text is not a 5xx");
    cr_assert_not(lm_error_http_5xx(&e));
    lm_error_set(&e, LM_ERR_NET, "connection refused");
    cr_assert_eq(e.http_status, 0, "a later error must not keep an old status");
    cr_assert_not(lm_error_http_5xx(NULL));
}
