/* A livemig-controlplane for one test: its own throwaway CA (scripts/mkcerts), a config on
 * 127.0.0.1 with a free port, start/stop/kill, `bootstrap --org`, the `livemig` CLI with a
 * key, and a JSON field out of a CLI answer. The binaries are the build's (LM_CP_BIN,
 * LM_CLI_BIN given to lm_test_support). */
#ifndef LM_TEST_CP_H
#define LM_TEST_CP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    char dir[512];   /* the test's directory (the caller's) */
    char certs[600]; /* dir/certs: ca.pem, server.pem, server.key */
    char ca[700];    /* certs/ca.pem */
    char conf[700];
    char log[700];
    int port;      /* a free port chosen once: a restart keeps it */
    char url[128]; /* https://127.0.0.1:PORT once started */
    pid_t pid;
} lm_test_cp_t;

/* Makes the CA and writes the config (heartbeat 1 s, poll 3 s) with extra YAML lines
 * appended (NULL: none), e.g. "cutover_window: 3s\n". */
void lm_test_cp_init(lm_test_cp_t *cp, const char *dir, const char *extra_yaml);
/* Rewrites the config (same CA, database and secrets key). */
void lm_test_cp_config(lm_test_cp_t *cp, const char *extra_yaml);
/* Starts it and waits until it listens. */
void lm_test_cp_start(lm_test_cp_t *cp);
/* SIGTERM and a clean exit; lm_test_cp_kill: SIGKILL (also for teardown; safe twice). */
void lm_test_cp_stop(lm_test_cp_t *cp);
void lm_test_cp_kill(lm_test_cp_t *cp);
/* An org and its Owner key: public id into pub, the private key into a 0600 file. */
void lm_test_cp_bootstrap(lm_test_cp_t *cp, const char *org, char *pub, size_t pubsz, char *file,
                          size_t filesz);
/* Runs `livemig --url ... --caFile ... --publicKey pub --privateKeyFile file ARGS`; its
 * output (stdout and stderr) into *out (caller frees); returns the exit status. */
int lm_test_cp_cli(const lm_test_cp_t *cp, const char *pub, const char *file, char **out,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Member `key` (a string) of the first JSON object in text, into buf; fails the test when
 * there is none. */
void lm_test_json_field(const char *text, const char *key, char *buf, size_t size);

/* ---- a live migration as `livemig lm describe` shows it ----
 * An operator: the control plane, its key (public id and 0600 file) and its project. */
typedef struct yajl_val_s lm_test_json_t; /* lm_json_val_t */
typedef struct {
    lm_test_cp_t *cp;
    char pub[80], keyfile[700], proj[80];
    const char *log; /* a log shown when a wait fails (the agent's), or NULL */
} lm_test_op_t;
/* `lm describe MIG -o json`, parsed (lm_json_free it); the text into *text when asked. */
lm_test_json_t *lm_test_describe(const lm_test_op_t *op, const char *mig, char **text);
/* The shard named `name` of a describe answer; NULL when it has none. */
lm_test_json_t *lm_test_shard_of(lm_test_json_t *v, const char *name);
/* Waits until shard `name` has string member key == want (fails the test after timeout). */
void lm_test_wait_shard(const lm_test_op_t *op, const char *mig, const char *name, const char *key,
                        const char *want, int timeout_ms);
/* Waits for the migration's status (and, with need_ready, readyForCutover). */
void lm_test_wait_status(const lm_test_op_t *op, const char *mig, const char *want, bool need_ready,
                         int timeout_ms);

#endif
