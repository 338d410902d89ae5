/* lm_http against a real HTTPS server started by the test with a throwaway CA. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "lm_http.h"
#include "lm_test_https.h"
#include "lm_test_util.h"
#include "lm_time.h"

static char dir[512], wrong_dir[512], ca[600], wrong_ca[600], cert[600], key[600], ccert[600],
    ckey[600];
static lm_http_response_t resp;
static lm_error_t err;

static void setup(void)
{
    lm_test_certs("http", dir, sizeof dir);
    lm_test_certs("http-other-ca", wrong_dir, sizeof wrong_dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(wrong_ca, sizeof wrong_ca, "%s/ca.pem", wrong_dir);
    snprintf(cert, sizeof cert, "%s/server.pem", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    snprintf(ccert, sizeof ccert, "%s/client.pem", dir);
    snprintf(ckey, sizeof ckey, "%s/client.key", dir);
    cr_assert(lm_http_global_init(&err));
    memset(&resp, 0, sizeof resp);
    lm_error_init(&err);
}

static void teardown(void)
{
    lm_http_response_cleanup(&resp);
}

TestSuite(http, .init = setup, .fini = teardown, .timeout = 60);

/* Handlers: the URL path picks the behaviour. */
static void handler(void *ud, const char *method, const char *url, unsigned hit,
                    lm_test_https_reply_t *r)
{
    (void)ud;
    if (strcmp(url, "/big") == 0) {
        r->body_len = 2u << 20;
        r->body = malloc(r->body_len);
        memset(r->body, 'b', r->body_len);
    } else if (strcmp(url, "/flaky") == 0) {
        r->status = hit < 3 ? 503 : 200;
        r->body = strdup(hit < 3 ? "busy" : "ok");
        r->body_len = strlen(r->body);
    } else if (strcmp(url, "/bad") == 0) {
        r->status = 400;
        r->body = strdup("{\"error\":\"bad\"}");
        r->body_len = strlen(r->body);
    } else if (strcmp(url, "/slow") == 0) {
        r->delay_ms = 3000;
    } else {
        char buf[128];
        snprintf(buf, sizeof buf, "%s %s", method, url);
        r->body = strdup(buf);
        r->body_len = strlen(buf);
    }
}

static char url_buf[256];
static const char *url(const lm_test_https_t *s, const char *path)
{
    snprintf(url_buf, sizeof url_buf, "https://127.0.0.1:%d%s", lm_test_https_port(s), path);
    return url_buf;
}

Test(http, untrusted_server_certificate_fails_clearly)
{
    lm_test_https_t *s = lm_test_https_start(cert, key, handler, NULL);
    lm_http_opts_t o = {.connect_timeout_ms = 5000};
    cr_assert_not(lm_http_request(&o, "GET", url(s, "/x"), NULL, NULL, 0, &resp, &err));
    cr_assert_eq(err.code, LM_ERR_TLS, "%s", err.message);
    cr_assert(strstr(err.message, url_buf), "%s", err.message);
    cr_assert(strstr(err.message, "not trusted: give the CA file"), "%s", err.message);
    lm_test_https_stop(s);
}

Test(http, wrong_ca_file_fails_clearly)
{
    lm_test_https_t *s = lm_test_https_start(cert, key, handler, NULL);
    lm_http_opts_t o = {.ca_file = wrong_ca, .max_retries = 3};
    cr_assert_not(lm_http_request(&o, "GET", url(s, "/x"), NULL, NULL, 0, &resp, &err));
    cr_assert_eq(err.code, LM_ERR_TLS, "%s", err.message);
    cr_assert(strstr(err.message, "check that the CA file holds the CA"), "%s", err.message);
    cr_assert_eq(resp.attempts, 1, "TLS failures are not retried");
    lm_test_https_stop(s);
}

Test(http, right_ca_file_succeeds)
{
    lm_test_https_t *s = lm_test_https_start(cert, key, handler, NULL);
    lm_http_opts_t o = {.ca_file = ca};
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    cr_assert(lm_http_request(&o, "POST", url(s, "/api/v1/x"), hdrs, "{}", 2, &resp, &err), "%s",
              err.message);
    cr_assert_eq(resp.status, 200);
    cr_assert_str_eq(resp.body, "POST /api/v1/x");
    lm_test_https_stop(s);
}

/* A CA file may hold several CAs; with a pin only the pinned one is an anchor. The server's
 * CA is in the file, but the pin names the other one: refused in the handshake, before the
 * request (the server saw nothing). */
Test(http, pinned_ca_is_the_only_anchor)
{
    char bundle[700], pin[65], right_pin[65];
    snprintf(bundle, sizeof bundle, "%s/bundle.pem", wrong_dir);
    cr_assert_eq(lm_test_sh("cat '%s' '%s' > '%s'", wrong_ca, ca, bundle), 0);
    cr_assert(lm_http_ca_pin(wrong_ca, pin, &err), "%s", err.message);
    cr_assert(lm_http_ca_pin(ca, right_pin, &err), "%s", err.message);
    lm_test_https_t *s = lm_test_https_start(cert, key, handler, NULL);

    lm_http_opts_t o = {.ca_file = bundle, .ca_pin = pin};
    cr_assert_not(lm_http_request(&o, "GET", url(s, "/x"), NULL, NULL, 0, &resp, &err));
    cr_assert_eq(err.code, LM_ERR_TLS, "%s", err.message);
    cr_assert(strstr(err.message, "does not chain to the pinned CA"), "%s", err.message);
    cr_assert_eq(lm_test_https_hits(s), 0);

    /* unpinned, the same bundle trusts the server; pinned to its CA too */
    lm_http_opts_t any = {.ca_file = bundle};
    cr_assert(lm_http_request(&any, "GET", url(s, "/x"), NULL, NULL, 0, &resp, &err), "%s",
              err.message);
    lm_http_response_cleanup(&resp);
    lm_http_opts_t right = {.ca_file = bundle, .ca_pin = right_pin};
    cr_assert(lm_http_request(&right, "GET", url(s, "/x"), NULL, NULL, 0, &resp, &err), "%s",
              err.message);
    cr_assert_eq(lm_test_https_hits(s), 2);

    /* a pin the file does not hold: refused before connecting; http: refused */
    lm_http_opts_t gone = {.ca_file = ca, .ca_pin = pin};
    cr_assert_not(lm_http_request(&gone, "GET", url(s, "/x"), NULL, NULL, 0, &resp, &err));
    cr_assert(strstr(err.message, "does not hold the pinned CA"), "%s", err.message);
    cr_assert_not(
        lm_http_request(&right, "GET", "http://127.0.0.1:1/x", NULL, NULL, 0, &resp, &err));
    cr_assert(strstr(err.message, "https only"), "%s", err.message);
    lm_http_opts_t no_file = {.ca_pin = right_pin};
    cr_assert_not(lm_http_request(&no_file, "GET", url(s, "/x"), NULL, NULL, 0, &resp, &err));
    cr_assert_eq(lm_test_https_hits(s), 2);
    lm_test_https_stop(s);
}

Test(http, localhost_name_matches_certificate)
{
    lm_test_https_t *s = lm_test_https_start(cert, key, handler, NULL);
    lm_http_opts_t o = {.ca_file = ca};
    char u[128];
    snprintf(u, sizeof u, "https://localhost:%d/h", lm_test_https_port(s));
    cr_assert(lm_http_request(&o, "GET", u, NULL, NULL, 0, &resp, &err), "%s", err.message);
    cr_assert_str_eq(resp.body, "GET /h");
    lm_test_https_stop(s);
}

Test(http, oversized_response_refused)
{
    lm_test_https_t *s = lm_test_https_start(cert, key, handler, NULL);
    lm_http_opts_t o = {.ca_file = ca, .max_response_bytes = 1u << 20};
    cr_assert_not(lm_http_request(&o, "GET", url(s, "/big"), NULL, NULL, 0, &resp, &err));
    cr_assert_eq(err.code, LM_ERR_TOO_LARGE, "%s", err.message);
    cr_assert(strstr(err.message, "larger than the limit of 1048576 bytes"), "%s", err.message);
    cr_assert_null(resp.body);
    lm_http_opts_t roomy = {.ca_file = ca, .max_response_bytes = 4u << 20};
    cr_assert(lm_http_request(&roomy, "GET", url(s, "/big"), NULL, NULL, 0, &resp, &err), "%s",
              err.message);
    cr_assert_eq(resp.body_len, 2u << 20);
    lm_test_https_stop(s);
}

Test(http, busy_server_retried_with_backoff)
{
    lm_test_https_t *s = lm_test_https_start(cert, key, handler, NULL);
    lm_http_opts_t o = {
        .ca_file = ca, .max_retries = 4, .backoff_base_ms = 20, .backoff_max_ms = 100};
    cr_assert(lm_http_request(&o, "GET", url(s, "/flaky"), NULL, NULL, 0, &resp, &err), "%s",
              err.message);
    cr_assert_eq(resp.status, 200);
    cr_assert_eq(resp.attempts, 3);
    cr_assert_eq(lm_test_https_hits(s), 3);
    cr_assert_str_eq(resp.body, "ok");
    lm_test_https_stop(s);
}

Test(http, retries_run_out_status_reported)
{
    lm_test_https_t *s = lm_test_https_start(cert, key, handler, NULL);
    lm_http_opts_t o = {.ca_file = ca, .max_retries = 1, .backoff_base_ms = 10};
    cr_assert(lm_http_request(&o, "GET", url(s, "/flaky"), NULL, NULL, 0, &resp, &err), "%s",
              err.message);
    cr_assert_eq(resp.status, 503);
    cr_assert_eq(resp.attempts, 2);
    cr_assert_str_eq(resp.body, "busy");
    lm_test_https_stop(s);
}

Test(http, client_errors_not_retried)
{
    lm_test_https_t *s = lm_test_https_start(cert, key, handler, NULL);
    lm_http_opts_t o = {.ca_file = ca, .max_retries = 5, .backoff_base_ms = 10};
    cr_assert(lm_http_request(&o, "GET", url(s, "/bad"), NULL, NULL, 0, &resp, &err));
    cr_assert_eq(resp.status, 400);
    cr_assert_eq(lm_test_https_hits(s), 1);
    lm_test_https_stop(s);
}

Test(http, total_timeout)
{
    lm_test_https_t *s = lm_test_https_start(cert, key, handler, NULL);
    lm_http_opts_t o = {.ca_file = ca, .total_timeout_ms = 300};
    int64_t t0 = lm_time_mono_ms();
    cr_assert_not(lm_http_request(&o, "GET", url(s, "/slow"), NULL, NULL, 0, &resp, &err));
    cr_assert_eq(err.code, LM_ERR_TIMEOUT, "%s", err.message);
    cr_assert_lt(lm_time_mono_ms() - t0, 2500);
    lm_test_https_stop(s);
}

/* A POST that reached the server and got no answer is not sent again (a retried "create"
 * would create twice); a GET is; a POST the server refused as busy (503) is. */
Test(http, a_post_that_reached_the_server_is_not_sent_twice)
{
    lm_test_https_t *s = lm_test_https_start(cert, key, handler, NULL);
    lm_http_opts_t o = {
        .ca_file = ca, .total_timeout_ms = 400, .max_retries = 3, .backoff_base_ms = 10};
    cr_assert_not(lm_http_request(&o, "POST", url(s, "/slow"), NULL, "{}", 2, &resp, &err));
    cr_assert_eq(lm_test_https_hits(s), 1);
    cr_assert(strstr(err.message, "the POST was sent and may have been carried out"), "%s",
              err.message);
    cr_assert_not(lm_http_request(&o, "GET", url(s, "/slow"), NULL, NULL, 0, &resp, &err));
    cr_assert_eq(lm_test_https_hits(s), 5, "the GET was not retried");
    lm_test_https_stop(s);
    s = lm_test_https_start(cert, key, handler, NULL);
    cr_assert(lm_http_request(&o, "POST", url(s, "/flaky"), NULL, "{}", 2, &resp, &err), "%s",
              err.message);
    cr_assert_eq(resp.status, 200);
    cr_assert_eq(lm_test_https_hits(s), 3);
    lm_test_https_stop(s);
}

Test(http, nothing_listening_is_retried_then_reported)
{
    char u[128];
    lm_http_opts_t o = {.max_retries = 2, .backoff_base_ms = 10, .backoff_max_ms = 20};
    snprintf(u, sizeof u, "https://127.0.0.1:%d/x", lm_test_free_port());
    cr_assert_not(lm_http_request(&o, "GET", u, NULL, NULL, 0, &resp, &err));
    cr_assert_eq(err.code, LM_ERR_NET, "%s", err.message);
    cr_assert(strstr(err.message, "after 3 attempts"), "%s", err.message);
    cr_assert(strstr(err.message, "cannot connect"), "%s", err.message);
}

/* A listener that resets every connection it accepts (SO_LINGER 0) once the TLS handshake
 * began, until stopped. */
typedef struct {
    int fd;
    atomic_bool stop;
} resetter_t;

static void *reset_all(void *arg)
{
    resetter_t *r = arg;
    while (!atomic_load(&r->stop)) {
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            continue;
        char hello[64]; /* the start of the ClientHello: the handshake has begun */
        struct timeval tv = {.tv_sec = 2};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        (void)!read(c, hello, sizeof hello);
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close(c);
    }
    return NULL;
}

Test(http, a_reset_connection_is_not_called_a_tls_failure)
{
    resetter_t r = {.fd = socket(AF_INET, SOCK_STREAM, 0)};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    cr_assert(r.fd >= 0);
    cr_assert_eq(bind(r.fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(r.fd, 8), 0);
    cr_assert_eq(getsockname(r.fd, (struct sockaddr *)&a, &alen), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, reset_all, &r), 0);
    char u[128];
    snprintf(u, sizeof u, "https://127.0.0.1:%d/x", ntohs(a.sin_port));
    lm_http_opts_t o = {.max_retries = 0, .ca_file = ca};
    bool ok = lm_http_request(&o, "GET", u, NULL, NULL, 0, &resp, &err);
    atomic_store(&r.stop, true);
    shutdown(r.fd, SHUT_RDWR);
    close(r.fd);
    pthread_join(t, NULL);
    cr_assert_not(ok);
    cr_assert_eq(err.code, LM_ERR_NET, "%s", err.message);
    cr_assert(strstr(err.message, "reset or closed"), "%s", err.message);
    cr_assert_null(strstr(err.message, "TLS 1.2"), "%s", err.message);
}

Test(http, disconnect_details_are_told_from_tls_ones)
{
    cr_assert(lm_http_detail_is_disconnect("OpenSSL SSL_connect: Connection reset by peer in "
                                           "connection to 127.0.0.1:443"));
    cr_assert(lm_http_detail_is_disconnect("OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection"));
    cr_assert(lm_http_detail_is_disconnect("error:0A000126:SSL routines::unexpected eof while "
                                           "reading"));
    cr_assert_not(
        lm_http_detail_is_disconnect("error:0A00042E:SSL routines::tlsv1 alert protocol version"));
    cr_assert_not(lm_http_detail_is_disconnect("SSL certificate problem: unable to get local "
                                               "issuer certificate"));
    cr_assert_not(lm_http_detail_is_disconnect(NULL));
}

Test(http, cancel_stops_retrying)
{
    char u[128];
    atomic_bool cancel = 1;
    lm_http_opts_t o = {.max_retries = 50, .backoff_base_ms = 1000, .cancel = &cancel};
    snprintf(u, sizeof u, "https://127.0.0.1:%d/x", lm_test_free_port());
    int64_t t0 = lm_time_mono_ms();
    cr_assert_not(lm_http_request(&o, "GET", u, NULL, NULL, 0, &resp, &err));
    cr_assert_eq(err.code, LM_ERR_CANCELLED, "%s", err.message);
    cr_assert_lt(lm_time_mono_ms() - t0, 2000);
}

Test(http, bad_url_and_secret_in_url_redacted)
{
    lm_http_opts_t o = {0};
    cr_assert_not(
        lm_http_request(&o, "GET", "ftp://user:hunter22@127.0.0.1/x", NULL, NULL, 0, &resp, &err));
    cr_assert_eq(err.code, LM_ERR_INVALID, "%s", err.message);
    cr_assert_null(strstr(err.message, "hunter22"), "%s", err.message);
}

/* Client certificates: openssl s_server demands one signed by our CA. It is started through
 * the shell (no fork() inside the threaded test process) and stopped by its pid. */
static pid_t start_s_server_with(int port, const char *extra)
{
    char pidfile[700];
    snprintf(pidfile, sizeof pidfile, "%s/s_server.%d.pid", dir, port);
    cr_assert_eq(
        lm_test_sh("openssl s_server -accept 127.0.0.1:%d -www -cert '%s' -key '%s' %s >/dev/null "
                   "2>&1 </dev/null & echo $! > '%s'",
                   port, cert, key, extra, pidfile),
        0);
    FILE *f = fopen(pidfile, "r");
    long pid = -1;
    cr_assert(f && fscanf(f, "%ld", &pid) == 1);
    fclose(f);
    unlink(pidfile);
    return (pid_t)pid;
}

static pid_t start_s_server(int port)
{
    char extra[700];
    snprintf(extra, sizeof extra, "-CAfile '%s' -Verify 1 -verify_return_error", ca);
    return start_s_server_with(port, extra);
}

Test(http, client_certificate_required_by_server)
{
    char u[128];
    pid_t pid = -1;
    for (int tries = 0; tries < 3 && pid < 0; tries++) {
        int port = lm_test_free_port();
        pid = start_s_server(port);
        snprintf(u, sizeof u, "https://127.0.0.1:%d/", port);
        /* wait until it listens; the request itself proves a client certificate is accepted */
        lm_http_opts_t probe = {.ca_file = ca,
                                .client_cert_file = ccert,
                                .client_key_file = ckey,
                                .max_retries = 30,
                                .backoff_base_ms = 100,
                                .backoff_max_ms = 100};
        if (!lm_http_request(&probe, "GET", u, NULL, NULL, 0, &resp, &err)) {
            kill(pid, SIGKILL);
            pid = -1;
        }
    }
    cr_assert(pid > 0, "openssl s_server did not come up: %s", err.message);
    cr_assert_eq(resp.status, 200, "with a client certificate the request succeeds");
    lm_http_response_cleanup(&resp);

    lm_http_opts_t no_cert = {.ca_file = ca};
    bool ok = lm_http_request(&no_cert, "GET", u, NULL, NULL, 0, &resp, &err);
    lm_http_opts_t bad_key = {.ca_file = ca, .client_cert_file = ccert, .client_key_file = ca};
    lm_http_response_t r2;
    lm_error_t e2;
    bool ok2 = lm_http_request(&bad_key, "GET", u, NULL, NULL, 0, &r2, &e2);
    lm_http_response_cleanup(&r2);
    kill(pid, SIGTERM);
    cr_assert_not(ok, "without a client certificate the server must refuse");
    cr_assert_not(ok2);
    cr_assert_eq(e2.code, LM_ERR_TLS, "%s", e2.message);
    cr_assert(strstr(e2.message, "client certificate"), "%s", e2.message);
}

/* TLS 1.2 at least, whatever the system's OpenSSL policy allows: this suite runs with an
 * OpenSSL configuration that permits TLS 1.0 (what a permissive crypto policy does), against
 * a server that speaks only TLS 1.1. The curl tool with the same policy and libcurl's
 * defaults gets through (the control: what lm_http did before it set a minimum); lm_http
 * must not. */
static void permissive_openssl(void)
{
    static char conf[700];
    lm_test_certs("http", dir, sizeof dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(cert, sizeof cert, "%s/server.pem", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    snprintf(conf, sizeof conf, "%s/permissive.%d.cnf", dir, (int)getpid());
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fputs("openssl_conf = c\n[c]\nssl_conf = s\n[s]\nsystem_default = d\n[d]\n"
          "MinProtocol = TLSv1\nCipherString = DEFAULT@SECLEVEL=0\n",
          f);
    fclose(f);
    setenv("OPENSSL_CONF", conf, 1); /* before OpenSSL loads its configuration */
    cr_assert(lm_http_global_init(&err));
    memset(&resp, 0, sizeof resp);
}

TestSuite(http_tls_version, .init = permissive_openssl, .fini = teardown, .timeout = 60);

Test(http_tls_version, a_tls_1_1_server_is_refused)
{
    char u[128];
    pid_t pid = -1;
    int up = 1;
    for (int tries = 0; tries < 3 && up != 0; tries++) {
        int port = lm_test_free_port();
        pid = start_s_server_with(port, "-tls1_1 -cipher DEFAULT@SECLEVEL=0");
        snprintf(u, sizeof u, "https://127.0.0.1:%d/", port);
        for (int i = 0; i < 50 && up != 0; i++) {
            up = lm_test_sh("curl -sf -o /dev/null --cacert '%s' '%s'", ca, u);
            if (up != 0)
                lm_time_sleep_ms(100, NULL);
        }
        if (up != 0)
            kill(pid, SIGKILL);
    }
    cr_assert_eq(up, 0, "control: curl with the permissive policy should reach the TLS 1.1 server");
    lm_http_opts_t o = {.ca_file = ca};
    bool ok = lm_http_request(&o, "GET", u, NULL, NULL, 0, &resp, &err);
    kill(pid, SIGTERM);
    unlink(getenv("OPENSSL_CONF"));
    cr_assert_not(ok, "lm_http spoke TLS 1.1");
    cr_assert_eq(err.code, LM_ERR_TLS, "%s", err.message);
    cr_assert(strstr(err.message, "TLS 1.2"), "%s", err.message);
}
