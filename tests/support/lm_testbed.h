/* The C fixture over scripts/testbed: start a MongoDB-compatible server for one test and
 * stop exactly that server afterwards. The test process is the server's owner, so if the
 * test crashes the test bed's watchdog stops the server by itself. */
#ifndef LM_TESTBED_H
#define LM_TESTBED_H

#include <stdbool.h>
#include <stddef.h>

#define LM_TESTBED_MAX_SHARDS 8

typedef struct {
    char kind[32];
    char uri[512]; /* no credentials */
    char dir[512];
    char ca_file[512];
    char user[64];
    char password[256];
    char password_file[512];
    int port;
    long pid;
    bool running;
    /* the sharded kind: `uri` is the router stand-in (the "mongos"); the config server and
     * each shard's replica set (a direct URI and its set name) */
    char config_uri[512];
    int nshards;
    char shard_uri[LM_TESTBED_MAX_SHARDS][512];
    char shard_name[LM_TESTBED_MAX_SHARDS][64];
} lm_testbed_server_t;

/* Starts a server of `kind` (secantus, secantus-auth, secantus-tls, ferretdb, or sharded with
 * "--shards N [--prefix P]" in extra_args) with extra scripts/testbed arguments (may be
 * NULL). Fails the current test when it cannot. */
void lm_testbed_start(const char *kind, const char *extra_args, lm_testbed_server_t *srv);
/* Stops it and removes its directory; safe to call twice. */
void lm_testbed_stop(lm_testbed_server_t *srv);
/* Stops and starts it again on the same port and data. */
void lm_testbed_restart(lm_testbed_server_t *srv);
/* Sharded kind: `scripts/testbed fault DIR <args>`, e.g. "lose-shard 1 5",
 * "balancer-round 3", "refuse-balancer-start on". Fails the current test when refused. */
void lm_testbed_fault(const lm_testbed_server_t *srv, const char *args);
/* Waits until the server at uri answers a ping (a shard back after `fault lose-shard`);
 * fails the current test after timeout_ms. */
void lm_testbed_wait_reachable(const char *uri, int timeout_ms);
/* The URI with the user and password of an auth server put in (for test-side clients). */
void lm_testbed_uri_with_auth(const lm_testbed_server_t *srv, char *buf, size_t bufsz);

#endif
