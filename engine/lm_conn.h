/* lm_conn: opening a MongoDB deployment (source or target) with libmongoc, and turning its
 * failures into messages an operator can act on:
 *   "source 127.0.0.1:27017: authentication failed for user 'mig': check the user name and
 *    the password file (--source-password-file)"
 *
 * Credentials come from the options, never from logs or argv; the URI may carry none. */
#ifndef LM_CONN_H
#define LM_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#include "lm_error.h"
#include "lm_job.h"

/* What one deployment was found to refuse, learnt while talking to it. Each side of each
 * job has its own record, so a quirk of one server (FerretDB refuses noCursorTimeout)
 * never changes how another server is read, in a daemon that runs many jobs. Fields are
 * atomics: the copy's reader threads share the record. */
typedef struct {
    atomic_bool no_cursor_timeout_refused;
} lm_conn_caps_t;

/* Watches a pool's servers through libmongoc's SDAM monitoring: when one becomes
 * unreachable (its type turns Unknown) and when it answers again, on_event gets a kind
 * ("<side>_unreachable" / "<side>_back") and a message naming host:port only, once per
 * transition. Called on libmongoc's monitor threads (under mu); keep on_event cheap. The
 * monitor must outlive the pool. */
#define LM_CONN_MONITOR_SERVERS 16
typedef struct {
    const char *side;
    void (*on_event)(void *ud, const char *kind, const char *message);
    void *ud;
    pthread_mutex_t mu;
    struct {
        char host[128];
        bool down;
        int64_t down_since_ms; /* monotonic */
    } servers[LM_CONN_MONITOR_SERVERS];
    size_t n;
    bool closing; /* lm_conn_monitor_close: the pool is being destroyed, nothing is reported */
    /* set by lm_conn_pool_new from a fenced pool's lease: past it, nothing is reported (the
     * fence's refused sends look like a lost server to libmongoc) */
    const atomic_llong *lease_ok_ms;
    int64_t lease_ms;
} lm_conn_monitor_t;

void lm_conn_monitor_init(lm_conn_monitor_t *m, const char *side,
                          void (*on_event)(void *ud, const char *kind, const char *message),
                          void *ud);
/* Before the pool is destroyed: its shutdown turns every server Unknown, which is no
 * outage; from here on nothing is reported. */
void lm_conn_monitor_close(lm_conn_monitor_t *m);
void lm_conn_monitor_cleanup(lm_conn_monitor_t *m);

typedef struct {
    const char *side;           /* "source" or "target": used in messages and flag names */
    const char *uri;            /* mongodb:// or mongodb+srv:// */
    const char *tls_ca_file;    /* CA that signed the server's certificate; turns TLS on */
    const char *username;       /* overrides the URI's user when set */
    const char *password;       /* overrides the URI's password when set */
    const char *auth_source;    /* default "admin" when a user is given */
    int32_t connect_timeout_ms; /* 0: 10 s; also bounds server selection */
    const char *app_name;       /* shown in the server's logs; default "livemig" */
    bool allow_insecure_tls;    /* accept URI options that turn certificate checks off */
    lm_conn_monitor_t *monitor; /* lm_conn_pool_new: watch the pool's servers (NULL: none) */
    /* lm_conn_pool_new, lm_conn_client_new: the target of a daemon's part with a lease
     * (lm_job_t's lease_ok_ms, lease_ms; NULL / 0: none). The pool (client) is fenced: once
     * lm_lease_out says the lease ran out, every connection of every client lm_conn_pool_pop gives
     * out refuses to send, checked at the send itself (see lm_conn_pool_pop). ok_ms must outlive
     * the pool. */
    const atomic_llong *lease_ok_ms;
    int64_t lease_ms;
} lm_conn_opts_t;

/* The options that reach one side of a job: the endpoint's URI, CA, user and password with
 * the job's connect timeout and insecure-TLS permission (no monitor). uri replaces the
 * endpoint's URI when not NULL (a shard of a sharded endpoint). The result points into ep
 * and job. */
lm_conn_opts_t lm_conn_opts_for(const lm_job_t *job, const lm_endpoint_t *ep, const char *side,
                                const char *uri, const char *app_name);

/* The first URI option of uri that turns TLS certificate or host name checks off
 * (tlsInsecure, tlsAllowInvalidCertificates, tlsAllowInvalidHostnames, their ssl* aliases,
 * tlsDisableOCSPEndpointCheck, tlsDisableCertificateRevocationCheck) set to true, or NULL. */
const char *lm_conn_insecure_tls_option(const mongoc_uri_t *uri);

/* Builds the libmongoc URI for opts (caller destroys with mongoc_uri_destroy). A URI with
 * an option of lm_conn_insecure_tls_option is refused, naming it, unless
 * allow_insecure_tls. */
mongoc_uri_t *lm_conn_uri_new(const lm_conn_opts_t *opts, lm_error_t *err);

/* Opens a client and proves the deployment answers (a "ping" that also authenticates), so
 * a wrong host, password or CA fails here, within the connect timeout. With a lease
 * (opts.lease_ok_ms) the client is fenced as a fenced pool's clients are. Destroyed with
 * lm_conn_client_destroy. */
mongoc_client_t *lm_conn_client_new(const lm_conn_opts_t *opts, lm_error_t *err);

/* mongoc_client_destroy, then frees the client's fence record if it has one. NULL: nothing. */
void lm_conn_client_destroy(mongoc_client_t *client);

/* A pool for threads (lm_conn_pool_destroy), checked the same way. */
mongoc_client_pool_t *lm_conn_pool_new(const lm_conn_opts_t *opts, lm_error_t *err);

/* mongoc_client_pool_pop for every pool: from a fenced pool (opts.lease_ok_ms), a client
 * is fenced before its first command, so every connection it opens checks the lease right
 * before each send and refuses once it ran out. The writers' own lease checks come before
 * a batch is built; a process paused (SIGSTOP, a suspended host) between such a check and the
 * send would otherwise send the batch once resumed, after its shards may have moved to
 * another host. What remains is the few instructions between the fence's check and the
 * send system call. A refused send fails like a lost connection (MONGOC_ERROR_STREAM). */
mongoc_client_t *lm_conn_pool_pop(mongoc_client_pool_t *pool);

/* Whether pool is fenced and its lease ran out: a failed write is then the fence's refusal,
 * a stop rather than a failure. */
bool lm_conn_pool_fenced_out(mongoc_client_pool_t *pool);

/* mongoc_client_pool_destroy, then frees the pool's fence. NULL: nothing. */
void lm_conn_pool_destroy(mongoc_client_pool_t *pool);

/* Rewrites a libmongoc error from talking to this side as an operator-facing message. */
void lm_conn_describe_error(const lm_conn_opts_t *opts, const bson_error_t *error, lm_error_t *err);

/* True for errors that pass when the server comes back: connection refused or reset,
 * server selection timeouts, "not primary", shutdown in progress. */
bool lm_conn_error_transient(const bson_error_t *error);

/* The "host:port[,host:port]" part of the URI for messages (no credentials). */
void lm_conn_hosts(const mongoc_uri_t *uri, char *buf, size_t bufsz);

/* Once per process. */
void lm_conn_global_init(void);

#endif
