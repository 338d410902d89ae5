#define _GNU_SOURCE /* strcasestr */
/* lm_conn's URI checks (no server needed): options that turn TLS verification off are
 * refused unless the job allows them. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "lm_conn.h"

static mongoc_uri_t *build(const char *uri, bool allow, lm_error_t *err)
{
    lm_conn_opts_t o = {.side = "source", .uri = uri, .allow_insecure_tls = allow};
    return lm_conn_uri_new(&o, err);
}

Test(conn, insecure_tls_options_are_refused_by_name)
{
    static const char *const opts[] = {"tlsInsecure",
                                       "tlsAllowInvalidCertificates",
                                       "tlsAllowInvalidHostnames",
                                       "sslAllowInvalidCertificates",
                                       "sslAllowInvalidHostnames",
                                       "tlsDisableOCSPEndpointCheck",
                                       "tlsdisablecertificaterevocationcheck"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        char uri[300];
        lm_error_t err;
        snprintf(uri, sizeof uri, "mongodb://127.0.0.1:1/?tls=true&%s=true", opts[i]);
        mongoc_uri_t *u = build(uri, false, &err);
        cr_assert_null(u, "%s was accepted", opts[i]);
        cr_assert_eq(err.code, LM_ERR_INVALID, "%s", err.message);
        cr_assert(strstr(err.message, "allow_insecure_tls"), "%s", err.message);
        cr_assert(strstr(err.message, "=true turns TLS certificate checks off"), "%s", err.message);
        /* the message names the option (libmongoc may keep an alias under its tls* name) */
        cr_assert(strcasestr(err.message, "tls") && strstr(err.message, "source: the URI option"),
                  "%s", err.message);

        u = build(uri, true, &err);
        cr_assert_not_null(u, "%s: %s", opts[i], err.message);
        cr_assert_not_null(lm_conn_insecure_tls_option(u), "%s", opts[i]);
        mongoc_uri_destroy(u);
    }
}

Test(conn, secure_uris_pass)
{
    const char *ok[] = {"mongodb://127.0.0.1:1/", "mongodb://127.0.0.1:1/?tls=true",
                        "mongodb://127.0.0.1:1/?tls=true&tlsInsecure=false"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        lm_error_t err;
        mongoc_uri_t *u = build(ok[i], false, &err);
        cr_assert_not_null(u, "%s: %s", ok[i], err.message);
        cr_assert_null(lm_conn_insecure_tls_option(u));
        mongoc_uri_destroy(u);
    }
}

Test(conn, the_exact_option_is_named)
{
    lm_error_t err;
    cr_assert_null(build("mongodb://127.0.0.1:1/?tlsAllowInvalidHostnames=true", false, &err));
    cr_assert(strstr(err.message, "tlsAllowInvalidHostnames=true"), "%s", err.message);
}
