/* lm_redact: secrets never survive into text meant for logs or errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_redact.h"

static void check(const char *in, const char *want)
{
    char out[1024];
    lm_redact_buf(in, out, sizeof out);
    cr_assert_str_eq(out, want, "redact(%s)", in);
}

Test(redact, uri_password_masked_user_kept)
{
    check("mongodb://mig:s3cr3t@db1:27017,db2:27017/?replicaSet=rs0",
          "mongodb://mig:****@db1:27017,db2:27017/?replicaSet=rs0");
    check("connect to mongodb+srv://u:p%40ss@cluster.example.net/db failed",
          "connect to mongodb+srv://u:****@cluster.example.net/db failed");
    check("https://agent:tok@cp.example:8443/api", "https://agent:****@cp.example:8443/api");
}

Test(redact, password_with_unencoded_at_sign)
{
    check("mongodb://u:p@ss@h:1/", "mongodb://u:****@h:1/");
}

Test(redact, uri_without_password_untouched)
{
    check("mongodb://127.0.0.1:27017/?directConnection=true",
          "mongodb://127.0.0.1:27017/?directConnection=true");
    check("mongodb://onlyuser@h:1/", "mongodb://onlyuser@h:1/");
}

Test(redact, key_value_forms)
{
    check("password=hunter22 user=x", "password=**** user=x");
    check("{\"password\":\"hunter22\",\"user\":\"x\"}", "{\"password\":\"****\",\"user\":\"x\"}");
    check("source_password: hunter22", "source_password: ****");
    check("linkToken=abc.def.ghi&x=1", "linkToken=****&x=1");
    check("Authorization: Bearer abc def", "Authorization: ****");
    check("?authMechanism=SCRAM-SHA-256&pwd=zz", "?authMechanism=SCRAM-SHA-256&pwd=****");
    check("\"apiKey\": \"k-123\"", "\"apiKey\": \"****\"");
}

Test(redact, key_names_without_values_untouched)
{
    check("check --source-password-file", "check --source-password-file");
    check("password_file: /etc/livemig/pw", "password_file: /etc/livemig/pw");
    check("POST /orgs/1/liveMigrations/linkTokens", "POST /orgs/1/liveMigrations/linkTokens");
}

Test(redact, registered_literal_anywhere)
{
    lm_redact_register("Zq9-very-secret");
    check("the server said Zq9-very-secret was wrong", "the server said **** was wrong");
    check("xZq9-very-secretx", "x****x");
    lm_redact_forget_all();
    check("Zq9-very-secret", "Zq9-very-secret");
}

Test(redact, short_secrets_not_registered)
{
    lm_redact_register("ab");
    check("abc abd", "abc abd");
    lm_redact_forget_all();
}

Test(redact, truncates_to_buffer)
{
    char out[8];
    lm_redact_buf("0123456789", out, sizeof out);
    cr_assert_str_eq(out, "0123456");
}

Test(redact, dup_returns_copy)
{
    char *r = lm_redact_dup("token: abc");
    cr_assert_str_eq(r, "token: ****");
    free(r);
    r = lm_redact_dup(NULL);
    cr_assert_str_eq(r, "");
    free(r);
}

/* A long-running daemon registers the passwords of every job it runs: the table has no
 * fixed size (the 130th secret came out in clear when it held 128). */
Test(redact, two_hundred_secrets_all_masked)
{
    char secret[64], text[128], want[128];
    for (int i = 0; i < 200; i++) {
        snprintf(secret, sizeof secret, "pw-%03d-%08x", i, (unsigned)(i * 2654435761u));
        cr_assert(lm_redact_register(secret));
    }
    cr_assert_eq(lm_redact_count(), 200);
    for (int i = 0; i < 200; i++) {
        snprintf(secret, sizeof secret, "pw-%03d-%08x", i, (unsigned)(i * 2654435761u));
        snprintf(text, sizeof text, "auth failed with %s here", secret);
        snprintf(want, sizeof want, "auth failed with **** here");
        check(text, want);
    }
    lm_redact_forget_all();
    cr_assert_eq(lm_redact_count(), 0);
}

/* A job's passwords are forgotten when it ends; a secret two jobs share stays masked until
 * both have ended. */
Test(redact, forget_drops_one_holder)
{
    lm_redact_register("shared-Pw-1");
    lm_redact_register("shared-Pw-1");
    lm_redact_register("only-Pw-2");
    cr_assert_eq(lm_redact_count(), 2);
    lm_redact_forget("only-Pw-2");
    check("only-Pw-2", "only-Pw-2");
    lm_redact_forget("shared-Pw-1");
    check("x shared-Pw-1 x", "x **** x");
    lm_redact_forget("shared-Pw-1");
    check("x shared-Pw-1 x", "x shared-Pw-1 x");
    cr_assert_eq(lm_redact_count(), 0);
    lm_redact_forget("never-registered"); /* ignored */
    lm_redact_forget(NULL);
    cr_assert_eq(lm_redact_count(), 0);
}
