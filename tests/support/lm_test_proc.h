/* Running programs from tests: posix_spawn (safe in Criterion's threaded test process,
 * unlike fork), output to a log file, waiting with a deadline. */
#ifndef LM_TEST_PROC_H
#define LM_TEST_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Starts argv (NULL-terminated; argv[0] found on PATH or a path) with stdout and stderr
 * appended to log_path and stdin from /dev/null. Fails the test when it cannot. */
pid_t lm_test_spawn(char *const argv[], const char *log_path);
/* Waits for pid up to timeout_ms; returns its exit code, 128+signal, or -1 on timeout
 * (the process is then killed so nothing outlives the test). */
int lm_test_wait(pid_t pid, int timeout_ms);
/* lm_test_spawn + lm_test_wait. */
int lm_test_run(char *const argv[], const char *log_path, int timeout_ms);
/* Reads a whole (small) file into a malloc'd string; "" when missing. */
char *lm_test_slurp(const char *path);

#endif
