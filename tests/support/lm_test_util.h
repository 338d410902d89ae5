/* Helpers for tests: temporary directories and small file utilities. */
#ifndef LM_TEST_UTIL_H
#define LM_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>

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
/* A free TCP port on 127.0.0.1 (bound and released; callers retry on a race). */
int lm_test_free_port(void);

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
