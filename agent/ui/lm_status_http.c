/* lm_status_http: see lm_status_http.h. */
#include "lm_status_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "lm_log.h"

struct lm_status_http {
    struct MHD_Daemon *d;
    lm_status_t *st;
    int port;
};

bool lm_status_addr_parse(const char *addr, char *host, size_t hostsz, int *port, lm_error_t *err)
{
    const char *colon;
    char *end;

    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            goto bad;
        snprintf(host, hostsz, "%.*s", (int)(close - addr - 1), addr + 1);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || colon == addr)
            goto bad;
        snprintf(host, hostsz, "%.*s", (int)(colon - addr), addr);
    }
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535)
        goto bad;
    *port = (int)p;
    return true;
bad:
    return lm_error_set(err, LM_ERR_INVALID,
                        "status address '%s': use host:port, e.g. 127.0.0.1:27190, or 0 to disable",
                        addr);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type,
                             lm_strbuf_t *body)
{
    size_t len = body->len;
    char *data = lm_strbuf_steal(body);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req)
{
    lm_status_http_t *h = cls;
    static int marker;
    lm_strbuf_t body;
    (void)version, (void)upload;

    if (!*req) {
        *req = &marker;
        return MHD_YES;
    }
    if (*upload_size) { /* the API takes no request bodies */
        *upload_size = 0;
        return MHD_YES;
    }
    lm_strbuf_init(&body, 8u << 20);
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/api/v1/status") == 0 && get) {
        lm_status_json(h->st, &body);
        return reply(c, MHD_HTTP_OK, "application/json", &body);
    }
    if (strcmp(url, "/metrics") == 0 && get) {
        lm_status_metrics(h->st, &body);
        return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4", &body);
    }
    if (strcmp(url, "/api/v1/cancel") == 0 && post) {
        h->st->cancel = 1;
        lm_log_warn(NULL, "cancel requested through the status API");
        lm_strbuf_append(&body, "{\"accepted\":true,\"detail\":\"the job checkpoints and stops\"}");
        return reply(c, MHD_HTTP_ACCEPTED, "application/json", &body);
    }
    if (strcmp(url, "/api/v1/cutover") == 0 && post) {
        lm_status_t *st = h->st;
        pthread_mutex_lock(&st->mu);
        bool streaming = st->phase == LM_PHASE_STREAMING || st->phase == LM_PHASE_CUTTING_OVER;
        bool running = st->state == LM_STATE_RUNNING;
        pthread_mutex_unlock(&st->mu);
        if (!running || !streaming) {
            lm_strbuf_append(&body, "{\"error\":\"not streaming\",\"detail\":\"cutover is "
                                    "possible once the job streams changes (phase STREAMING)"
                                    "\"}");
            return reply(c, MHD_HTTP_CONFLICT, "application/json", &body);
        }
        if (!st->cutover)
            lm_log_warn(NULL, "cutover requested through the status API");
        st->cutover = 1;
        lm_strbuf_append(&body, "{\"accepted\":true,\"detail\":\"stop writes to the source; "
                                "the job applies what is left and completes\"}");
        return reply(c, MHD_HTTP_ACCEPTED, "application/json", &body);
    }
    bool known = strcmp(url, "/api/v1/status") == 0 || strcmp(url, "/metrics") == 0 ||
                 strcmp(url, "/api/v1/cancel") == 0 || strcmp(url, "/api/v1/cutover") == 0;
    lm_strbuf_appendf(&body, "{\"error\":\"%s\",\"detail\":\"%s\"}",
                      known ? "method not allowed" : "not found",
                      "GET /api/v1/status, GET /metrics, POST /api/v1/cancel, POST "
                      "/api/v1/cutover");
    return reply(c, known ? MHD_HTTP_METHOD_NOT_ALLOWED : MHD_HTTP_NOT_FOUND, "application/json",
                 &body);
}

lm_status_http_t *lm_status_http_start(const char *addr, lm_status_t *st, lm_error_t *err)
{
    char host[128];
    int port;
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;

    if (!lm_status_addr_parse(addr, host, sizeof host, &port, err))
        return NULL;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        flags |= MHD_USE_IPv6;
    } else {
        lm_error_set(err, LM_ERR_INVALID, "status address '%s': the host must be an IP address",
                     addr);
        return NULL;
    }
    lm_status_http_t *h = calloc(1, sizeof *h);
    if (!h) {
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    h->st = st;
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, &ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (!h->d) {
        free(h);
        lm_error_set(err, LM_ERR_IO,
                     "status API: cannot listen on %s (in use?): choose another --status-addr, or "
                     "0 to disable",
                     addr);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : port;
    return h;
}

int lm_status_http_port(const lm_status_http_t *h)
{
    return h->port;
}

void lm_status_http_stop(lm_status_http_t *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
