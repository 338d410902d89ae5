/* lm_status_http: see lm_status_http.h. */
#include "lm_status_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <microhttpd.h>

#include "lm_encode.h"
#include "lm_fs.h"
#include "lm_json.h"
#include "lm_log.h"

struct lm_status_http {
    struct MHD_Daemon *d;
    lm_status_t *st;
    /* The bound port: known only once the daemon listens (a configured port 0 picks one), so
     * it is stored after its threads started and read by them: an atomic. Until it is
     * stored it is 0 and a Host header naming a port matches nothing. */
    atomic_int port;
    char host[64]; /* the bound address as a Host header names it: 127.0.0.1, [::1] */
    char token[LM_STATUS_TOKEN_LEN + 1];
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

/* 127.0.0.0/8 or ::1 (also ::ffff:127.x.y.z). */
static bool host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return false;
}

bool lm_status_addr_check(const char *addr, lm_error_t *err)
{
    char host[128];
    int port;
    if (strcmp(addr, "0") == 0)
        return true;
    if (!lm_status_addr_parse(addr, host, sizeof host, &port, err))
        return false;
    if (!host_is_loopback(host))
        return lm_error_set(err, LM_ERR_INVALID,
                            "status address '%s': the status API listens on loopback only "
                            "(127.0.0.1 or [::1]); it is plain HTTP and lets its callers cancel "
                            "or cut over the job, so it is not offered to the network: read it "
                            "from another host through SSH port forwarding, or use 0 to disable",
                            addr);
    return true;
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

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned code, const char *error,
                                  const char *detail)
{
    lm_strbuf_t body;
    lm_strbuf_init(&body, 4096);
    lm_strbuf_appendf(&body, "{\"error\":\"%s\",\"detail\":\"%s\"}", error, detail);
    size_t len = body.len;
    char *data = lm_strbuf_steal(&body);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (code == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"livemig-agent\"");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

/* "name[:port]" names this API: a loopback name or our own address, and our port (the
 * port may be left out only when it is 80). Anything else is another site's name that
 * resolved here (DNS rebinding) or a mistake. */
static bool authority_ok(const lm_status_http_t *h, const char *auth, size_t len)
{
    char name[128];
    const char *port = NULL;
    if (len == 0 || len >= sizeof name)
        return false;
    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', len);
        if (!close)
            return false;
        snprintf(name, sizeof name, "%.*s", (int)(close - auth + 1), auth);
        if ((size_t)(close - auth + 1) < len) {
            if (close[1] != ':')
                return false;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(auth, ':', len);
        snprintf(name, sizeof name, "%.*s", (int)(colon ? (size_t)(colon - auth) : len), auth);
        if (colon)
            port = colon + 1;
    }
    if (port) {
        size_t plen = len - (size_t)(port - auth);
        char want[16];
        snprintf(want, sizeof want, "%d", atomic_load(&h->port));
        if (plen != strlen(want) || memcmp(port, want, plen) != 0)
            return false;
    } else if (atomic_load(&h->port) != 80) {
        return false;
    }
    return strcasecmp(name, "localhost") == 0 || strcmp(name, "127.0.0.1") == 0 ||
           strcmp(name, "[::1]") == 0 || strcmp(name, h->host) == 0;
}

/* Host must be ours; Origin, when a browser sends one, must be http://<our Host>. */
static bool request_from_here(const lm_status_http_t *h, struct MHD_Connection *c, const char **why)
{
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!host || !authority_ok(h, host, strlen(host))) {
        *why = "the Host header must name this API (127.0.0.1, [::1] or localhost, with its "
               "port); the request came through another name";
        return false;
    }
    if (origin && (strncasecmp(origin, "http://", 7) != 0 ||
                   !authority_ok(h, origin + 7, strlen(origin + 7)))) {
        *why = "requests from web pages of other origins are refused";
        return false;
    }
    return true;
}

/* Constant time over the token's length, whatever was presented. */
static bool token_equal(const char *given, size_t given_len, const char *token)
{
    unsigned char diff = given_len != LM_STATUS_TOKEN_LEN;
    for (size_t i = 0; i < LM_STATUS_TOKEN_LEN; i++) {
        unsigned char g = i < given_len ? (unsigned char)given[i] : 0;
        diff |= (unsigned char)(g ^ (unsigned char)token[i]);
    }
    return diff == 0;
}

static bool bearer_ok(const lm_status_http_t *h, struct MHD_Connection *c)
{
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!a || strncasecmp(a, "Bearer ", 7) != 0)
        return false;
    a += 7;
    while (*a == ' ')
        a++;
    size_t n = strlen(a);
    while (n && a[n - 1] == ' ')
        n--;
    return token_equal(a, n, h->token);
}

/* Who is on the other end of a loopback connection: the owner of the client's socket,
 * from /proc/net/tcp{,6} (the line whose local port is the client's and remote port
 * ours). -1 when not found. */
static long peer_uid(int client_port, int server_port)
{
    const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (size_t f = 0; f < 2; f++) {
        FILE *in = fopen(files[f], "r");
        char line[512];
        if (!in)
            continue;
        while (fgets(line, sizeof line, in)) {
            unsigned lport, rport;
            long uid;
            if (sscanf(line, " %*d: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%x %*x %*x:%*x %*x:%*x %*x %ld",
                       &lport, &rport, &uid) == 3 &&
                (int)lport == client_port && (int)rport == server_port) {
                fclose(in);
                return uid;
            }
        }
        fclose(in);
    }
    return -1;
}

/* "uid 1000 (alice) from 127.0.0.1:53122" into buf. */
static void describe_caller(const lm_status_http_t *h, struct MHD_Connection *c, char *buf,
                            size_t size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char addr[INET6_ADDRSTRLEN] = "?";
    int cport = 0;
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
            inet_ntop(AF_INET, &in->sin_addr, addr, sizeof addr);
            cport = ntohs(in->sin_port);
        } else if (sa->sa_family == AF_INET6) {
            const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)(const void *)sa;
            inet_ntop(AF_INET6, &in->sin6_addr, addr, sizeof addr);
            cport = ntohs(in->sin6_port);
        }
    }
    long uid = cport ? peer_uid(cport, atomic_load(&h->port)) : -1;
    char name[64] = "?";
    if (uid >= 0) {
        struct passwd pw, *res = NULL;
        char pwbuf[1024];
        if (getpwuid_r((uid_t)uid, &pw, pwbuf, sizeof pwbuf, &res) == 0 && res)
            snprintf(name, sizeof name, "%s", res->pw_name);
        snprintf(buf, size, "uid %ld (%s) from %s:%d", uid, name, addr, cport);
    } else {
        snprintf(buf, size, "an unknown user from %s:%d", addr, cport);
    }
}

static enum MHD_Result do_cutover(lm_status_http_t *h, struct MHD_Connection *c)
{
    lm_status_t *st = h->st;
    const char *f = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "force");
    bool force = f && (strcmp(f, "true") == 0 || strcmp(f, "1") == 0);
    pthread_mutex_lock(&st->mu);
    bool streaming = st->phase == LM_PHASE_STREAMING, cutting = st->phase == LM_PHASE_CUTTING_OVER;
    bool running = st->state == LM_STATE_RUNNING;
    pthread_mutex_unlock(&st->mu);
    if (!running || !(streaming || cutting))
        return reply_text(c, MHD_HTTP_CONFLICT, "not streaming",
                          "cutover is possible once the job streams changes (phase STREAMING)");
    lm_stream_status_t ss;
    lm_status_get_stream(st, &ss);
    bool ready = ss.active && ss.ready_for_cutover;
    char who[160], detail[400];
    if (!ready && !force && !st->cutover) {
        snprintf(detail, sizeof detail,
                 "the target is %.1f s behind the source and a cutover now would take about "
                 "%.1f s (readyForCutover is false): wait until it is ready, or force it "
                 "(livemig-agent cutover --force, or ?force=true), knowing the cutover then "
                 "waits for the whole backlog",
                 ss.lag_seconds, ss.estimated_cutover_seconds);
        return reply_text(c, MHD_HTTP_CONFLICT, "not ready for cutover", detail);
    }
    describe_caller(h, c, who, sizeof who);
    if (!st->cutover) {
        if (!ready)
            lm_log_warn(NULL,
                        "cutover FORCED through the status API before readyForCutover (lag "
                        "%.1f s) by %s",
                        ss.lag_seconds, who);
        else
            lm_log_warn(NULL, "cutover requested through the status API by %s", who);
    }
    st->cutover = 1;
    lm_strbuf_t body;
    lm_strbuf_init(&body, 1024);
    lm_strbuf_appendf(&body,
                      "{\"accepted\":true,\"forced\":%s,\"detail\":\"stop writes to the source; "
                      "the job applies what is left and completes\"}",
                      !ready ? "true" : "false");
    return reply(c, MHD_HTTP_ACCEPTED, "application/json", &body);
}

/* POST /api/v1/restart-shard?name=NAME: a sharded migration's failed shard (lm_coord). */
static enum MHD_Result do_restart_shard(lm_status_http_t *h, struct MHD_Connection *c)
{
    const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "name");
    char msg[512], who[160];
    int code = 404;
    if (!name || !*name || strlen(name) > 200)
        return reply_text(c, MHD_HTTP_BAD_REQUEST, "bad request",
                          "name the shard: POST /api/v1/restart-shard?name=SHARD");
    pthread_mutex_lock(&h->st->mu); /* the hook is set and cleared under it */
    if (h->st->restart_shard)
        code = h->st->restart_shard(h->st->hook_ud, name, msg, sizeof msg);
    else
        snprintf(msg, sizeof msg,
                 "this job is not a sharded migration whose shards can be restarted");
    pthread_mutex_unlock(&h->st->mu);
    lm_strbuf_t body; /* msg holds the name asked for: escaped */
    lm_strbuf_init(&body, 2048);
    if (code == 202) {
        describe_caller(h, c, who, sizeof who);
        lm_log_warn(NULL, "restart of a shard requested through the status API by %s: %s", who,
                    msg);
        lm_strbuf_append(&body, "{\"accepted\":true,\"detail\":");
    } else {
        lm_strbuf_appendf(&body,
                          "{\"error\":\"%s\",\"detail\":", code == 409 ? "conflict" : "not found");
    }
    lm_json_escape(&body, msg);
    lm_strbuf_append(&body, "}");
    return reply(c, (unsigned)code, "application/json", &body);
}

/* POST /api/v1/assign-shards?shards=A,B: the shards of a lead that waits for them
 * (--await-shards; lm_coord), as the control plane's assign-shards command gives them. */
static enum MHD_Result do_assign_shards(lm_status_http_t *h, struct MHD_Connection *c)
{
    const char *list = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "shards");
    char msg[1600], who[160];
    if (!list || !*list)
        return reply_text(c, MHD_HTTP_BAD_REQUEST, "bad request",
                          "name the shards: POST /api/v1/assign-shards?shards=SHARD[,SHARD...]");
    int code = lm_status_set_assignment(h->st, list, msg, sizeof msg);
    lm_strbuf_t body; /* msg may quote the list: escaped */
    lm_strbuf_init(&body, 4096);
    if (code == 202) {
        describe_caller(h, c, who, sizeof who);
        lm_log_warn(NULL, "assignment of shards through the status API by %s: %s", who, msg);
        lm_strbuf_append(&body, "{\"accepted\":true,\"detail\":");
    } else {
        lm_strbuf_appendf(
            &body, "{\"error\":\"%s\",\"detail\":", code == 409 ? "conflict" : "bad request");
    }
    lm_json_escape(&body, msg);
    lm_strbuf_append(&body, "}");
    return reply(c, (unsigned)code, "application/json", &body);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req)
{
    lm_status_http_t *h = cls;
    static int marker;
    lm_strbuf_t body;
    const char *why = NULL;
    (void)version, (void)upload;

    if (!*req) {
        *req = &marker;
        return MHD_YES;
    }
    if (*upload_size) { /* the API takes no request bodies */
        *upload_size = 0;
        return MHD_YES;
    }
    if (!request_from_here(h, c, &why))
        return reply_text(c, MHD_HTTP_FORBIDDEN, "forbidden", why);
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    bool is_cancel = strcmp(url, "/api/v1/cancel") == 0,
         is_cutover = strcmp(url, "/api/v1/cutover") == 0,
         is_restart = strcmp(url, "/api/v1/restart-shard") == 0,
         is_assign = strcmp(url, "/api/v1/assign-shards") == 0;
    if (strcmp(url, "/api/v1/status") == 0 && get) {
        lm_strbuf_init(&body, 8u << 20);
        lm_status_json(h->st, &body);
        return reply(c, MHD_HTTP_OK, "application/json", &body);
    }
    if (strcmp(url, "/metrics") == 0 && get) {
        lm_strbuf_init(&body, 8u << 20);
        lm_status_metrics(h->st, &body);
        return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4", &body);
    }
    if ((is_cancel || is_cutover || is_restart || is_assign) && post && !bearer_ok(h, c)) {
        char who[160];
        describe_caller(h, c, who, sizeof who);
        lm_log_warn(NULL, "status API: POST %s refused: no valid token (%s)", url, who);
        return reply_text(
            c, MHD_HTTP_UNAUTHORIZED, "unauthorized",
            "send the job's token as a bearer credential (livemig-agent cancel|cutover "
            "--state-dir DIR reads it from DIR/" LM_STATUS_TOKEN_FILE
            ", readable by the agent's user only)");
    }
    if (is_cancel && post) {
        char who[160];
        describe_caller(h, c, who, sizeof who);
        if (!h->st->cancel)
            lm_log_warn(NULL, "cancel requested through the status API by %s", who);
        h->st->cancel = 1;
        lm_strbuf_init(&body, 1024);
        lm_strbuf_append(&body, "{\"accepted\":true,\"detail\":\"the job checkpoints and stops\"}");
        return reply(c, MHD_HTTP_ACCEPTED, "application/json", &body);
    }
    if (is_cutover && post)
        return do_cutover(h, c);
    if (is_restart && post)
        return do_restart_shard(h, c);
    if (is_assign && post)
        return do_assign_shards(h, c);
    bool known = strcmp(url, "/api/v1/status") == 0 || strcmp(url, "/metrics") == 0 || is_cancel ||
                 is_cutover || is_restart || is_assign;
    return reply_text(c, known ? MHD_HTTP_METHOD_NOT_ALLOWED : MHD_HTTP_NOT_FOUND,
                      known ? "method not allowed" : "not found",
                      "GET /api/v1/status, GET /metrics, POST /api/v1/cancel, POST "
                      "/api/v1/cutover[?force=true], POST /api/v1/restart-shard?name=SHARD, POST "
                      "/api/v1/assign-shards?shards=A,B");
}

lm_status_http_t *lm_status_http_start(const char *addr, lm_status_t *st, const char *token,
                                       lm_error_t *err)
{
    char host[128];
    int port;
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;

    if (!lm_status_addr_check(addr, err) ||
        !lm_status_addr_parse(addr, host, sizeof host, &port, err))
        return NULL;
    if (!token || strlen(token) != LM_STATUS_TOKEN_LEN) {
        lm_error_set(err, LM_ERR_INTERNAL, "status API: no token");
        return NULL;
    }
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
    snprintf(h->token, sizeof h->token, "%s", token);
    snprintf(h->host, sizeof h->host, strchr(host, ':') ? "[%s]" : "%s", host);
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, &ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (!h->d) {
        lm_wipe(h->token, sizeof h->token);
        free(h);
        lm_error_set(err, LM_ERR_IO,
                     "status API: cannot listen on %s (in use?): choose another --status-addr, or "
                     "0 to disable",
                     addr);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    atomic_store(&h->port, info ? info->port : port);
    return h;
}

int lm_status_http_port(lm_status_http_t *h)
{
    return atomic_load(&h->port);
}

void lm_status_http_stop(lm_status_http_t *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    lm_wipe(h->token, sizeof h->token);
    free(h);
}

static void token_path(const char *state_dir, char *buf, size_t size)
{
    snprintf(buf, size, "%s/" LM_STATUS_TOKEN_FILE, state_dir);
}

bool lm_status_token_write(const char *state_dir, const char *listen_addr, const char *token,
                           lm_error_t *err)
{
    char path[1200];
    lm_strbuf_t line;
    token_path(state_dir, path, sizeof path);
    lm_strbuf_init(&line, 512);
    lm_strbuf_appendf(&line, "%s %s\n", listen_addr, token);
    bool ok = lm_fs_mkdir_p(state_dir, 0700, err) &&
              lm_fs_write_atomic(path, line.data, line.len, 0600, err);
    lm_wipe(line.data, line.len);
    lm_strbuf_cleanup(&line);
    if (!ok)
        lm_error_prefix(err, "status API token");
    return ok;
}

bool lm_status_token_read(const char *state_dir, char *addr, size_t addrsz, char *token,
                          lm_error_t *err)
{
    char path[1200], *text = NULL;
    token_path(state_dir, path, sizeof path);
    if (!lm_fs_read_secret(path, &text, err))
        return false;
    const char *sp = strchr(text, ' ');
    bool ok =
        sp && sp != text && (size_t)(sp - text) < addrsz && strlen(sp + 1) == LM_STATUS_TOKEN_LEN;
    if (ok) {
        snprintf(addr, addrsz, "%.*s", (int)(sp - text), text);
        memcpy(token, sp + 1, LM_STATUS_TOKEN_LEN + 1);
    } else {
        lm_error_set(err, LM_ERR_INVALID, "%s: not a token file written by livemig-agent", path);
    }
    lm_wipe(text, strlen(text));
    free(text);
    return ok;
}

void lm_status_token_remove(const char *state_dir)
{
    char path[1200];
    token_path(state_dir, path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT)
        lm_log_warn(NULL, "%s: cannot remove: %s", path, strerror(errno));
}
