/* lm_test_proc: see lm_test_proc.h. */
#include "lm_test_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "lm_fs.h"
#include "lm_time.h"

extern char **environ;

pid_t lm_test_spawn(char *const argv[], const char *log_path)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "cannot start %s: %s", argv[0], strerror(rc));
    return pid;
}

int lm_test_wait(pid_t pid, int timeout_ms)
{
    int64_t until = lm_time_mono_ms() + timeout_ms;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0 && errno != EINTR)
            return -1;
        if (lm_time_mono_ms() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        lm_time_sleep_ms(20, NULL);
    }
}

int lm_test_run(char *const argv[], const char *log_path, int timeout_ms)
{
    return lm_test_wait(lm_test_spawn(argv, log_path), timeout_ms);
}

char *lm_test_slurp(const char *path)
{
    char *out = NULL;
    lm_error_t err;
    if (!lm_fs_read_file(path, 64u << 20, &out, NULL, &err))
        out = strdup("");
    return out;
}
