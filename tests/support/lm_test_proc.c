/* lm_test_proc: see lm_test_proc.h. */
#include "lm_test_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "lm_fs.h"
#include "lm_time.h"

extern char **environ;

/* fork + exec rather than posix_spawn: the child asks the kernel to kill it when the test
 * process that started it ends (PR_SET_PDEATHSIG), so an agent, control plane or CLI never
 * outlives a test that crashed, timed out or failed an assertion before its teardown. */
pid_t lm_test_spawn(char *const argv[], const char *log_path)
{
    pid_t parent = getpid();
    int out = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    cr_assert_geq(out, 0, "cannot open %s: %s", log_path, strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        /* between fork and exec: only async-signal-safe calls */
        int in = open("/dev/null", O_RDONLY);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent || in < 0 ||
            dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
            _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    int fork_errno = errno;
    close(out);
    cr_assert_gt(pid, 0, "cannot start %s: %s", argv[0], strerror(fork_errno));
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
