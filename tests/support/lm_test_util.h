/* Helpers for tests: temporary directories and small file utilities. */
#ifndef LM_TEST_UTIL_H
#define LM_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "lm_json.h"

/* Makes a fresh directory under $TMPDIR (or /tmp) into buf; aborts the test on failure. */
void lm_test_mkdtemp(char *buf, size_t bufsz);
/* rm -rf for a directory lm_test_mkdtemp made. */
void lm_test_rmtree(const char *dir);
/* Writes text to dir/name; returns the path in a static-free buffer the caller gives. */
void lm_test_write(const char *dir, const char *name, const char *text, char *path, size_t pathsz);
/* Runs a shell command, returns its exit status (-1 on failure to run). */
int lm_test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A throwaway CA and certificates (scripts/mkcerts) named `name`, made once per build tree
 * and reused by later tests (remade when older than a day). The directory goes to dir. */
void lm_test_certs(const char *name, char *dir, size_t dirsz);
/* The "rogue CA in the system store" attack, without touching the real /etc/ssl/certs: a
 * new throwaway CA (dir/rogue: ca.pem, server.pem, server.key) and a script dir/rogue-sys
 * that runs its arguments in a private user and mount namespace (unshare -rm) where a
 * directory holding only the rogue CA (hashed, as OpenSSL reads a CA path) is bind-mounted
 * over /etc/ssl/certs, the CA path Debian's libcurl is built with. (SSL_CERT_DIR and
 * SSL_CERT_FILE do not reach libcurl: it passes its CA path to OpenSSL explicitly.) Fails the
 * test when the namespace cannot be made. Paths into rogue_dir and wrapper. */
void lm_test_rogue_system_ca(const char *dir, char *rogue_dir, size_t rsz, char *wrapper,
                             size_t wsz);
/* A free TCP port on 127.0.0.1 (bound and released; callers retry on a race). */
int lm_test_free_port(void);

/* An agent's GET http://127.0.0.1:port/api/v1/status: the body (malloc'd) or parsed
 * (lm_json_free it); NULL while the agent does not answer 200. */
char *lm_test_agent_status_text(int port);
lm_json_val_t *lm_test_agent_status(int port);

/* The binaries under test: the build's own (compiled in as LM_*_BIN_BUILT), unless the
 * environment names others. scripts/check runs the integration tests against the
 * ThreadSanitizer build's agent, control plane and CLI that way: Criterion itself cannot
 * run under ThreadSanitizer (its inheritable arena fails to map), so the test programs stay
 * uninstrumented and the processes they start are the instrumented ones. */
const char *lm_test_bin(const char *env, const char *built);
#ifdef LM_AGENT_BIN_BUILT
#define LM_AGENT_BIN lm_test_bin("LM_AGENT_BIN", LM_AGENT_BIN_BUILT)
#endif
#ifdef LM_CP_BIN_BUILT
#define LM_CP_BIN lm_test_bin("LM_CP_BIN", LM_CP_BIN_BUILT)
#endif
#ifdef LM_CLI_BIN_BUILT
#define LM_CLI_BIN lm_test_bin("LM_CLI_BIN", LM_CLI_BIN_BUILT)
#endif

#endif
