/* lm_conn: see lm_conn.h. */
#include "lm_conn.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lm_log.h"
#include "lm_mongo_error.h"
#include "lm_redact.h"
#include "lm_time.h"

#define DEFAULT_CONNECT_MS 10000

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* libmongoc's own log lines go through lm_log, so they are redacted and formatted like
 * ours; its chatter (debug, trace, info) stays at debug. */
static void mongoc_log_to_lm(mongoc_log_level_t level, const char *domain, const char *message,
                             void *ud)
{
    lm_log_level_t l = LM_LOG_DEBUG;
    char fields[96];
    (void)ud;
    if (level <= MONGOC_LOG_LEVEL_CRITICAL)
        l = LM_LOG_ERROR;
    else if (level == MONGOC_LOG_LEVEL_WARNING)
        l = LM_LOG_WARN;
    snprintf(fields, sizeof fields, "component=mongoc domain=%s", domain ? domain : "-");
    lm_log_write(l, fields, "%s", message);
}

static void do_init(void)
{
    mongoc_init();
    mongoc_log_set_handler(mongoc_log_to_lm, NULL);
}

void lm_conn_global_init(void)
{
    pthread_once(&init_once, do_init);
}

void lm_conn_hosts(const mongoc_uri_t *uri, char *buf, size_t bufsz)
{
    size_t used = 0;
    buf[0] = '\0';
    if (!uri)
        return;
    const char *srv = mongoc_uri_get_srv_hostname(uri);
    if (srv) {
        snprintf(buf, bufsz, "%s", srv);
        return;
    }
    for (const mongoc_host_list_t *h = mongoc_uri_get_hosts(uri); h && used < bufsz; h = h->next)
        used +=
            (size_t)snprintf(buf + used, bufsz - used, "%s%s", used ? "," : "", h->host_and_port);
}

static const char *side_of(const lm_conn_opts_t *o)
{
    return o->side ? o->side : "server";
}

const char *lm_conn_insecure_tls_option(const mongoc_uri_t *uri)
{
    /* libmongoc keeps options under lowercase names; the ssl* aliases are listed in case a
     * version keeps them apart from their tls* names */
    static const char *const names[] = {"tlsInsecure",
                                        "tlsAllowInvalidCertificates",
                                        "tlsAllowInvalidHostnames",
                                        "sslAllowInvalidCertificates",
                                        "sslAllowInvalidHostnames",
                                        "tlsDisableOCSPEndpointCheck",
                                        "tlsDisableCertificateRevocationCheck"};
    const bson_t *opts = uri ? mongoc_uri_get_options(uri) : NULL;
    bson_iter_t it;
    if (!opts || !bson_iter_init(&it, opts))
        return NULL;
    while (bson_iter_next(&it)) {
        if (!bson_iter_as_bool(&it))
            continue;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strcasecmp(bson_iter_key(&it), names[i]) == 0)
                return names[i];
    }
    return NULL;
}

mongoc_uri_t *lm_conn_uri_new(const lm_conn_opts_t *o, lm_error_t *err)
{
    bson_error_t berr;
    mongoc_uri_t *uri;
    int32_t timeout = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : DEFAULT_CONNECT_MS;

    lm_conn_global_init();
    if (!o->uri || !*o->uri) {
        lm_error_set(err, LM_ERR_INVALID, "%s: no URI given: use --%s mongodb://host:port",
                     side_of(o), side_of(o));
        return NULL;
    }
    uri = mongoc_uri_new_with_error(o->uri, &berr);
    if (!uri) {
        /* libmongoc may echo the URI; the error text goes through redaction. */
        lm_error_set(err, LM_ERR_INVALID, "%s: invalid URI '%s': %s", side_of(o), o->uri,
                     berr.message);
        return NULL;
    }
    const char *insecure = lm_conn_insecure_tls_option(uri);
    if (insecure && !o->allow_insecure_tls) {
        lm_error_set(err, LM_ERR_INVALID,
                     "%s: the URI option %s=true turns TLS certificate checks off: remove it, or "
                     "set allow_insecure_tls: true (--allow-insecure-tls) to accept an "
                     "unverified server",
                     side_of(o), insecure);
        goto fail;
    }
    if ((o->username && !mongoc_uri_set_username(uri, o->username)) ||
        (o->password && !mongoc_uri_set_password(uri, o->password))) {
        lm_error_set(err, LM_ERR_INVALID, "%s: user name or password is not valid UTF-8",
                     side_of(o));
        goto fail;
    }
    if (mongoc_uri_get_username(uri) && !mongoc_uri_get_auth_source(uri) &&
        !mongoc_uri_set_auth_source(uri, o->auth_source ? o->auth_source : "admin"))
        goto fail;
    if (o->tls_ca_file) {
        mongoc_uri_set_option_as_bool(uri, MONGOC_URI_TLS, true);
        mongoc_uri_set_option_as_utf8(uri, MONGOC_URI_TLSCAFILE, o->tls_ca_file);
    }
    if (!mongoc_uri_has_option(uri, MONGOC_URI_CONNECTTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, timeout);
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, timeout);
    if (!mongoc_uri_has_option(uri, MONGOC_URI_APPNAME))
        mongoc_uri_set_appname(uri, o->app_name ? o->app_name : "livemig");
    return uri;
fail:
    mongoc_uri_destroy(uri);
    return NULL;
}

static bool contains(const char *haystack, const char *needle)
{
    return strstr(haystack, needle) != NULL;
}

void lm_conn_describe_error(const lm_conn_opts_t *o, const bson_error_t *e, lm_error_t *err)
{
    char hosts[256] = "";
    mongoc_uri_t *uri = o->uri ? mongoc_uri_new(o->uri) : NULL;
    const char *m = e->message;
    const char *user = o->username ? o->username : (uri ? mongoc_uri_get_username(uri) : NULL);
    const char *s = side_of(o);

    lm_conn_hosts(uri, hosts, sizeof hosts);
    if (e->domain == MONGOC_ERROR_CLIENT && e->code == MONGOC_ERROR_CLIENT_AUTHENTICATE) {
        lm_error_set(err, LM_ERR_AUTH,
                     "%s %s: authentication failed for user '%s': check the user name and the "
                     "password file (--%s-password-file)",
                     s, hosts, user ? user : "", s);
    } else if (contains(m, "TLS handshake failed") || contains(m, "certificate verify failed") ||
               contains(m, "SSL") || contains(m, "TLS")) {
        lm_error_set(err, LM_ERR_TLS,
                     "%s %s: TLS handshake failed (%s): check that the server speaks TLS and that "
                     "--%s-tls-ca-file names the CA that signed its certificate",
                     s, hosts, m, s);
    } else if (contains(m, "onnection refused")) {
        lm_error_set(
            err, LM_ERR_NET,
            "%s %s: connection refused: check the host and port, and that the server is running", s,
            hosts);
    } else if (contains(m, "Failed to connect")) {
        lm_error_set(
            err, LM_ERR_NET,
            "%s %s: cannot connect: check the host and port, and that the server is running", s,
            hosts);
    } else if (contains(m, "timeout") || contains(m, "timed out") || contains(m, "Timed out")) {
        lm_error_set(
            err, LM_ERR_TIMEOUT,
            "%s %s: no answer within the connect timeout (%s): check the address, firewalls "
            "and whether the server expects TLS",
            s, hosts, m);
    } else if (contains(m, "resolve") || contains(m, "getaddrinfo")) {
        lm_error_set(err, LM_ERR_NET, "%s %s: cannot resolve the host name: check the URI", s,
                     hosts);
    } else if (lm_mongo_unauthorized(e->code) && contains(m, "requires authentication")) {
        lm_error_set(
            err, LM_ERR_AUTH,
            "%s %s: the server requires authentication: give a user (in the URI or --%s-user) "
            "and --%s-password-file",
            s, hosts, s, s);
    } else if (e->domain == MONGOC_ERROR_SERVER || e->domain == MONGOC_ERROR_WRITE_CONCERN) {
        lm_error_set(err, lm_mongo_error_class(e->code), "%s %s: server refused (code %u): %s%s", s,
                     hosts, e->code, m,
                     lm_mongo_unauthorized(e->code)
                         ? ": the user lacks a privilege for this operation"
                         : "");
    } else {
        lm_error_set(err, LM_ERR_NET, "%s %s: %s", s, hosts, m);
    }
    if (uri)
        mongoc_uri_destroy(uri);
}

static bool ping(mongoc_client_t *client, const lm_conn_opts_t *o, lm_error_t *err)
{
    bson_error_t berr;
    bson_t cmd = BSON_INITIALIZER, reply;
    bool ok;

    BSON_APPEND_INT32(&cmd, "ping", 1);
    ok = mongoc_client_command_simple(client, "admin", &cmd, NULL, &reply, &berr);
    if (!ok)
        lm_conn_describe_error(o, &berr, err);
    bson_destroy(&cmd);
    bson_destroy(&reply);
    return ok;
}

static bool fence_single(mongoc_client_t *client, const atomic_llong *ok_ms, int64_t lease_ms);

mongoc_client_t *lm_conn_client_new(const lm_conn_opts_t *o, lm_error_t *err)
{
    bson_error_t berr;
    mongoc_uri_t *uri = lm_conn_uri_new(o, err);
    mongoc_client_t *client = NULL;

    if (!uri)
        return NULL;
    client = mongoc_client_new_from_uri_with_error(uri, &berr);
    mongoc_uri_destroy(uri);
    if (!client) {
        lm_error_set(err, LM_ERR_INVALID, "%s: %s", side_of(o), berr.message);
        return NULL;
    }
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    if (o->lease_ok_ms && o->lease_ms > 0 && !fence_single(client, o->lease_ok_ms, o->lease_ms)) {
        mongoc_client_destroy(client);
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    if (!ping(client, o, err)) {
        lm_conn_client_destroy(client);
        return NULL;
    }
    return client;
}

/* ---- watching the servers (SDAM monitoring) ---- */

void lm_conn_monitor_init(lm_conn_monitor_t *m, const char *side,
                          void (*on_event)(void *ud, const char *kind, const char *message),
                          void *ud)
{
    memset(m, 0, sizeof *m);
    m->side = side;
    m->on_event = on_event;
    m->ud = ud;
    pthread_mutex_init(&m->mu, NULL);
}

void lm_conn_monitor_close(lm_conn_monitor_t *m)
{
    pthread_mutex_lock(&m->mu);
    m->closing = true;
    pthread_mutex_unlock(&m->mu);
}

void lm_conn_monitor_cleanup(lm_conn_monitor_t *m)
{
    pthread_mutex_destroy(&m->mu);
}

/* The record of host (under mu); NULL when the table is full. */
static int monitor_slot(lm_conn_monitor_t *m, const char *host)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->servers[i].host, host) == 0)
            return (int)i;
    if (m->n == LM_CONN_MONITOR_SERVERS)
        return -1;
    snprintf(m->servers[m->n].host, sizeof m->servers[m->n].host, "%s", host);
    return (int)m->n++;
}

/* host went down (error: why, or NULL) or came back; reports transitions only. */
static void monitor_note(lm_conn_monitor_t *m, const char *host, bool down, const char *error)
{
    char kind[48], msg[512];
    pthread_mutex_lock(&m->mu);
    /* past a fenced pool's lease its refused sends look like a lost server: no outage */
    bool fenced = lm_lease_out(m->lease_ok_ms, m->lease_ms);
    int i = m->closing || fenced ? -1 : monitor_slot(m, host);
    if (i >= 0 && m->servers[i].down != down) {
        m->servers[i].down = down;
        if (down) {
            m->servers[i].down_since_ms = lm_time_mono_ms();
            snprintf(kind, sizeof kind, "%s_unreachable", m->side);
            snprintf(msg, sizeof msg,
                     "%s %s unreachable: %s; waiting for it (the copy/stream resumes by itself)",
                     m->side, host, error && *error ? error : "connection lost");
        } else {
            double s = (double)(lm_time_mono_ms() - m->servers[i].down_since_ms) / 1000.0;
            snprintf(kind, sizeof kind, "%s_back", m->side);
            snprintf(msg, sizeof msg, "%s %s reachable again after %.1f s", m->side, host, s);
        }
        m->on_event(m->ud, kind, msg);
    }
    pthread_mutex_unlock(&m->mu);
}

static void on_heartbeat_failed(const mongoc_apm_server_heartbeat_failed_t *ev)
{
    lm_conn_monitor_t *m = mongoc_apm_server_heartbeat_failed_get_context(ev);
    const mongoc_host_list_t *h = mongoc_apm_server_heartbeat_failed_get_host(ev);
    bson_error_t e;
    mongoc_apm_server_heartbeat_failed_get_error(ev, &e);
    monitor_note(m, h->host_and_port, true, e.message);
}

static void on_server_changed(const mongoc_apm_server_changed_t *ev)
{
    lm_conn_monitor_t *m = mongoc_apm_server_changed_get_context(ev);
    const mongoc_host_list_t *h = mongoc_apm_server_changed_get_host(ev);
    const mongoc_server_description_t *now = mongoc_apm_server_changed_get_new_description(ev);
    const mongoc_server_description_t *was = mongoc_apm_server_changed_get_previous_description(ev);
    bool unknown = strcmp(mongoc_server_description_type(now), "Unknown") == 0;
    bool was_unknown = strcmp(mongoc_server_description_type(was), "Unknown") == 0;
    if (unknown && !was_unknown)
        monitor_note(m, h->host_and_port, true, NULL);
    else if (!unknown)
        monitor_note(m, h->host_and_port, false, NULL);
}

/* ---- fencing a pool's connections with a lease ----
 *
 * A fenced pool's clients open their connections through fenced_initiator: libmongoc's own
 * stream (TCP, TLS, buffering) inside a fenced_stream whose writev refuses once the lease
 * ran out. libmongoc takes a stream initiator per client, not per pool, so every client a
 * fenced pool gives out is fenced at its first lm_conn_pool_pop, before it has any
 * connection; that is why every pop in the engine goes through lm_conn_pool_pop. The
 * registry below maps each fenced pool to its lease and its clients' fence records (the
 * initiator's user data, which libmongoc's initiator needs to name the client); the records
 * are freed with the pool. Registry, records: under fences_mu. */

/* libmongoc's initiator (TCP or Unix socket, TLS when the URI asks, buffered): exported by
 * every libmongoc 1.x, declared only in its private header. */
mongoc_stream_t *mongoc_client_default_stream_initiator(const mongoc_uri_t *uri,
                                                        const mongoc_host_list_t *host,
                                                        void *user_data, bson_error_t *error);

#define FENCED_STREAM_TYPE 0x4c4d /* "LM": no libmongoc stream type */

typedef struct fenced_client {
    mongoc_client_t *client;
    const atomic_llong *ok_ms;
    int64_t lease_ms;
    struct fenced_client *next; /* in fenced_singles (a single client's record) */
} fenced_client_t;

typedef struct fenced_pool {
    mongoc_client_pool_t *pool;
    const atomic_llong *ok_ms;
    int64_t lease_ms;
    fenced_client_t **clients;
    size_t n, cap;
    struct fenced_pool *next;
} fenced_pool_t;

static pthread_mutex_t fences_mu = PTHREAD_MUTEX_INITIALIZER;
static fenced_pool_t *fences;
static fenced_client_t *fenced_singles; /* lm_conn_client_new's fenced clients */

typedef struct {
    mongoc_stream_t vtable; /* first: libmongoc calls through it */
    mongoc_stream_t *base;
    const atomic_llong *ok_ms;
    int64_t lease_ms;
} fenced_stream_t;

static ssize_t fenced_writev(mongoc_stream_t *s, mongoc_iovec_t *iov, size_t iovcnt,
                             int32_t timeout_ms)
{
    fenced_stream_t *f = (fenced_stream_t *)s;
    if (lm_lease_out(f->ok_ms, f->lease_ms)) {
        errno = ECANCELED;
        return -1;
    }
    return mongoc_stream_writev(f->base, iov, iovcnt, timeout_ms);
}

static ssize_t fenced_readv(mongoc_stream_t *s, mongoc_iovec_t *iov, size_t iovcnt,
                            size_t min_bytes, int32_t timeout_ms)
{
    return mongoc_stream_readv(((fenced_stream_t *)s)->base, iov, iovcnt, min_bytes, timeout_ms);
}

static void fenced_destroy(mongoc_stream_t *s)
{
    mongoc_stream_destroy(((fenced_stream_t *)s)->base);
    free(s);
}

static void fenced_failed(mongoc_stream_t *s)
{
    mongoc_stream_failed(((fenced_stream_t *)s)->base);
    free(s);
}

static int fenced_close(mongoc_stream_t *s)
{
    return mongoc_stream_close(((fenced_stream_t *)s)->base);
}

static int fenced_flush(mongoc_stream_t *s)
{
    return mongoc_stream_flush(((fenced_stream_t *)s)->base);
}

static int fenced_setsockopt(mongoc_stream_t *s, int level, int name, void *val,
                             mongoc_socklen_t len)
{
    return mongoc_stream_setsockopt(((fenced_stream_t *)s)->base, level, name, val, len);
}

static mongoc_stream_t *fenced_base(mongoc_stream_t *s)
{
    return ((fenced_stream_t *)s)->base;
}

static bool fenced_check_closed(mongoc_stream_t *s)
{
    return mongoc_stream_check_closed(((fenced_stream_t *)s)->base);
}

static bool fenced_timed_out(mongoc_stream_t *s)
{
    return mongoc_stream_timed_out(((fenced_stream_t *)s)->base);
}

/* A refused send is final: libmongoc asks this after a failed send of a server check, and
 * the socket below would answer from its own last errno (EINPROGRESS on a fresh
 * connection), which retried the refused hello in a busy loop until the connect timeout. */
static bool fenced_should_retry(mongoc_stream_t *s)
{
    fenced_stream_t *f = (fenced_stream_t *)s;
    return !lm_lease_out(f->ok_ms, f->lease_ms) && mongoc_stream_should_retry(f->base);
}

static mongoc_stream_t *fenced_initiator(const mongoc_uri_t *uri, const mongoc_host_list_t *host,
                                         void *ud, bson_error_t *error)
{
    fenced_client_t *c = ud;
    mongoc_stream_t *base = mongoc_client_default_stream_initiator(uri, host, c->client, error);
    if (!base)
        return NULL;
    fenced_stream_t *f = calloc(1, sizeof *f);
    if (!f) {
        mongoc_stream_destroy(base);
        bson_set_error(error, MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, "out of memory");
        return NULL;
    }
    f->vtable.type = FENCED_STREAM_TYPE;
    f->vtable.destroy = fenced_destroy;
    f->vtable.failed = fenced_failed;
    f->vtable.close = fenced_close;
    f->vtable.flush = fenced_flush;
    f->vtable.writev = fenced_writev;
    f->vtable.readv = fenced_readv;
    f->vtable.setsockopt = fenced_setsockopt;
    f->vtable.get_base_stream = fenced_base; /* polling goes to the root socket */
    f->vtable.check_closed = fenced_check_closed;
    f->vtable.timed_out = fenced_timed_out;
    f->vtable.should_retry = fenced_should_retry;
    f->base = base;
    f->ok_ms = c->ok_ms;
    f->lease_ms = c->lease_ms;
    return &f->vtable;
}

/* The registry entry of pool (under fences_mu); NULL: not fenced. */
static fenced_pool_t *fence_of(mongoc_client_pool_t *pool)
{
    for (fenced_pool_t *f = fences; f; f = f->next)
        if (f->pool == pool)
            return f;
    return NULL;
}

/* Registers pool as fenced by lease; false when out of memory. */
static bool fence_add(mongoc_client_pool_t *pool, const atomic_llong *ok_ms, int64_t lease_ms)
{
    fenced_pool_t *f = calloc(1, sizeof *f);
    if (!f)
        return false;
    f->pool = pool;
    f->ok_ms = ok_ms;
    f->lease_ms = lease_ms;
    pthread_mutex_lock(&fences_mu);
    f->next = fences;
    fences = f;
    pthread_mutex_unlock(&fences_mu);
    return true;
}

/* A fence record for client (the initiator's user data); NULL when out of memory. */
static fenced_client_t *client_record_new(mongoc_client_t *client, const atomic_llong *ok_ms,
                                          int64_t lease_ms)
{
    fenced_client_t *c = calloc(1, sizeof *c);
    if (c) {
        c->client = client;
        c->ok_ms = ok_ms;
        c->lease_ms = lease_ms;
    }
    return c;
}

/* Fences client, a client of f's pool; false when out of memory. Under fences_mu. The
 * initiator is set on every pop, not only the first: a pool may destroy a client on push
 * (minPoolSize) and make a new one at the same address, which finds the old record. */
static bool fence_client(fenced_pool_t *f, mongoc_client_t *client)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->clients[i]->client == client) {
            mongoc_client_set_stream_initiator(client, fenced_initiator, f->clients[i]);
            return true;
        }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        fenced_client_t **grown = realloc(f->clients, cap * sizeof *grown);
        if (!grown)
            return false;
        f->clients = grown;
        f->cap = cap;
    }
    fenced_client_t *c = client_record_new(client, f->ok_ms, f->lease_ms);
    if (!c)
        return false;
    f->clients[f->n++] = c;
    mongoc_client_set_stream_initiator(client, fenced_initiator, c);
    return true;
}

mongoc_client_t *lm_conn_pool_pop(mongoc_client_pool_t *pool)
{
    mongoc_client_t *client = mongoc_client_pool_pop(pool);
    bool ok = true;
    pthread_mutex_lock(&fences_mu);
    fenced_pool_t *f = fence_of(pool);
    if (f && client)
        ok = fence_client(f, client);
    pthread_mutex_unlock(&fences_mu);
    if (!ok) { /* an unfenced client may not write, and callers take a client as given */
        lm_log_error(NULL, "out of memory fencing a target connection: stopping");
        abort();
    }
    return client;
}

bool lm_conn_pool_fenced_out(mongoc_client_pool_t *pool)
{
    pthread_mutex_lock(&fences_mu);
    fenced_pool_t *f = fence_of(pool);
    bool out = f && lm_lease_out(f->ok_ms, f->lease_ms);
    pthread_mutex_unlock(&fences_mu);
    return out;
}

/* Fences a single client (lm_conn_client_new) with a lease; false when out of memory. */
static bool fence_single(mongoc_client_t *client, const atomic_llong *ok_ms, int64_t lease_ms)
{
    fenced_client_t *c = client_record_new(client, ok_ms, lease_ms);
    if (!c)
        return false;
    pthread_mutex_lock(&fences_mu);
    c->next = fenced_singles;
    fenced_singles = c;
    pthread_mutex_unlock(&fences_mu);
    /* a single client's server checks go through it too: past the lease, no server is
     * selected, so nothing is sent */
    mongoc_client_set_stream_initiator(client, fenced_initiator, c);
    return true;
}

void lm_conn_client_destroy(mongoc_client_t *client)
{
    if (!client)
        return;
    fenced_client_t *gone = NULL;
    pthread_mutex_lock(&fences_mu);
    for (fenced_client_t **p = &fenced_singles; *p; p = &(*p)->next)
        if ((*p)->client == client) {
            gone = *p;
            *p = gone->next;
            break;
        }
    pthread_mutex_unlock(&fences_mu);
    mongoc_client_destroy(client);
    free(gone);
}

void lm_conn_pool_destroy(mongoc_client_pool_t *pool)
{
    if (!pool)
        return;
    /* unlinked before the pool's memory is freed: a pool made meanwhile at the same address
     * must not find this entry; its records are freed after the pool, whose shutdown may
     * still open a connection (endSessions) through them */
    fenced_pool_t *gone = NULL;
    pthread_mutex_lock(&fences_mu);
    for (fenced_pool_t **p = &fences; *p; p = &(*p)->next)
        if ((*p)->pool == pool) {
            gone = *p;
            *p = gone->next;
            break;
        }
    pthread_mutex_unlock(&fences_mu);
    mongoc_client_pool_destroy(pool);
    if (gone) {
        for (size_t i = 0; i < gone->n; i++)
            free(gone->clients[i]);
        free(gone->clients);
        free(gone);
    }
}

mongoc_client_pool_t *lm_conn_pool_new(const lm_conn_opts_t *o, lm_error_t *err)
{
    bson_error_t berr;
    mongoc_uri_t *uri = lm_conn_uri_new(o, err);
    mongoc_client_pool_t *pool;
    mongoc_client_t *probe;
    bool ok;

    if (!uri)
        return NULL;
    /* a watched pool checks its servers every 2 s (libmongoc's pools: 10 s), so a short
     * outage is seen and its end too */
    if (o->monitor && !mongoc_uri_has_option(uri, MONGOC_URI_HEARTBEATFREQUENCYMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_HEARTBEATFREQUENCYMS, 2000);
    pool = mongoc_client_pool_new_with_error(uri, &berr);
    mongoc_uri_destroy(uri);
    if (!pool) {
        lm_error_set(err, LM_ERR_INVALID, "%s: %s", side_of(o), berr.message);
        return NULL;
    }
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    if (o->monitor) { /* before the first pop: libmongoc takes callbacks only then */
        mongoc_apm_callbacks_t *cbs = mongoc_apm_callbacks_new();
        mongoc_apm_set_server_heartbeat_failed_cb(cbs, on_heartbeat_failed);
        mongoc_apm_set_server_changed_cb(cbs, on_server_changed);
        mongoc_client_pool_set_apm_callbacks(pool, cbs, o->monitor);
        mongoc_apm_callbacks_destroy(cbs);
    }
    if (o->monitor) {
        o->monitor->lease_ok_ms = o->lease_ok_ms;
        o->monitor->lease_ms = o->lease_ms;
    }
    if (o->lease_ok_ms && o->lease_ms > 0 && !fence_add(pool, o->lease_ok_ms, o->lease_ms)) {
        mongoc_client_pool_destroy(pool);
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    probe = lm_conn_pool_pop(pool);
    ok = ping(probe, o, err);
    mongoc_client_pool_push(pool, probe);
    if (!ok) {
        lm_conn_pool_destroy(pool);
        return NULL;
    }
    return pool;
}

bool lm_conn_error_transient(const bson_error_t *e)
{
    static const uint32_t codes[] = {6,     7,     89,    91,    189,   262,  9001,
                                     10107, 11600, 11602, 13435, 13436, 10058};
    if (e->domain == MONGOC_ERROR_STREAM || e->domain == MONGOC_ERROR_SERVER_SELECTION)
        return true;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (e->code == codes[i])
            return true;
    return false;
}

lm_conn_opts_t lm_conn_opts_for(const lm_job_t *job, const lm_endpoint_t *ep, const char *side,
                                const char *uri, const char *app_name)
{
    lm_conn_opts_t o = {.side = side,
                        .uri = uri ? uri : ep->uri,
                        .tls_ca_file = ep->tls_ca_file,
                        .username = ep->user,
                        .password = ep->password,
                        .connect_timeout_ms = (int32_t)job->connect_timeout_ms,
                        .app_name = app_name,
                        .allow_insecure_tls = job->allow_insecure_tls};
    return o;
}
