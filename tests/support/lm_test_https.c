/* lm_test_https: see lm_test_https.h. */
#include "lm_test_https.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <microhttpd.h>

#include "lm_fs.h"

struct lm_test_https {
    struct MHD_Daemon *d;
    lm_test_https_fn fn;
    void *ud;
    atomic_uint hits, auth_seen;
    int port;
    char *cert, *key;
};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    lm_test_https_t *s = cls;
    lm_test_https_reply_t r = {0};
    static int marker;
    (void)version, (void)upload_data;

    if (*req_cls == NULL) { /* first call: headers only */
        *req_cls = &marker;
        if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION))
            atomic_fetch_add(&s->auth_seen, 1);
        return MHD_YES;
    }
    if (*upload_data_size) { /* swallow the body */
        *upload_data_size = 0;
        return MHD_YES;
    }
    unsigned hit = atomic_fetch_add(&s->hits, 1) + 1;
    s->fn(s->ud, method, url, hit, &r);
    if (r.delay_ms) {
        struct timespec ts = {r.delay_ms / 1000, (long)(r.delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r.body_len, r.body ? r.body : (void *)"",
                                        r.body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(conn, r.status ? r.status : 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

lm_test_https_t *lm_test_https_start(const char *cert_file, const char *key_file,
                                     lm_test_https_fn fn, void *ud)
{
    lm_test_https_t *s = calloc(1, sizeof *s);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    lm_error_t err;
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;

    cr_assert_not_null(s);
    lm_error_init(&err);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->fn = fn;
    s->ud = ud;
    if (cert_file) {
        cr_assert(lm_fs_read_file(cert_file, 1 << 20, &s->cert, NULL, &err), "%s", err.message);
        cr_assert(lm_fs_read_file(key_file, 1 << 20, &s->key, NULL, &err), "%s", err.message);
        cr_assert(MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES, "libmicrohttpd lacks TLS");
        flags |= MHD_USE_TLS;
        s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &addr,
                                MHD_OPTION_HTTPS_MEM_CERT, s->cert, MHD_OPTION_HTTPS_MEM_KEY,
                                s->key, MHD_OPTION_END);
    } else {
        s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &addr,
                                MHD_OPTION_END);
    }
    cr_assert_not_null(s->d, "cannot start the test HTTPS server");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    cr_assert(info && info->port > 0);
    s->port = info->port;
    return s;
}

int lm_test_https_port(const lm_test_https_t *s)
{
    return s->port;
}

unsigned lm_test_https_hits(const lm_test_https_t *s)
{
    return atomic_load(&s->hits);
}

unsigned lm_test_https_auth_seen(const lm_test_https_t *s)
{
    return atomic_load(&s->auth_seen);
}

void lm_test_https_stop(lm_test_https_t *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d);
    free(s->cert);
    free(s->key);
    free(s);
}
