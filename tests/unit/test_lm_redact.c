/* lm_redact: secrets never survive into text meant for logs or errors. */
#include <criterion/criterion.h>
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
