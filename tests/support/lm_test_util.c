/* lm_test_util: see lm_test_util.h. */
#include "lm_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "lm_http.h"

void lm_test_mkdtemp(char *buf, size_t bufsz)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, bufsz, "%s/lm-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(buf), "mkdtemp %s failed", buf);
}

void lm_test_rmtree(const char *dir)
{
    if (dir && strstr(dir, "/lm-test-"))
        lm_test_sh("rm -rf -- '%s'", dir);
}

void lm_test_write(const char *dir, const char *name, const char *text, char *path, size_t pathsz)
{
    snprintf(path, pathsz, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

int lm_test_sh(const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0 && (size_t)n < sizeof cmd, "lm_test_sh: command longer than %zu bytes",
              sizeof cmd);
    int st = system(cmd);
    if (st == -1)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int lm_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(fd >= 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

void lm_test_certs(const char *name, char *dir, size_t dirsz)
{
    const char *build = getenv("LM_BUILD_DIR");
    char parent[512], probe[700], tmp[700];
    struct stat st;

    snprintf(parent, sizeof parent, "%s/test-certs",
             build && *build ? build : "/tmp/lm-test-certs");
    snprintf(dir, dirsz, "%s/%s", parent, name);
    snprintf(probe, sizeof probe, "%s/client.key", dir);
    if (!(build && *build))
        mkdir("/tmp/lm-test-certs", 0700); /* run by hand, outside ctest: its parent too */
    mkdir(parent, 0700);
    /* one maker at a time: two tests starting together must not each make a CA and
     * replace the other's while it is in use */
    char lock[700];
    snprintf(lock, sizeof lock, "%s/.lock", parent);
    int lfd = open(lock, O_CREAT | O_RDWR, 0600);
    cr_assert(lfd >= 0, "cannot open %s", lock);
    flock(lfd, LOCK_EX);
    if (stat(probe, &st) == 0 && time(NULL) - st.st_mtime < 86400) {
        close(lfd);
        return;
    }
    /* made aside and renamed, so tests running in parallel never see half a directory */
    snprintf(tmp, sizeof tmp, "%s/.%s.%ld", parent, name, (long)getpid());
    cr_assert_eq(lm_test_sh("rm -rf '%s' && '%s/scripts/mkcerts' '%s'", tmp, LM_SOURCE_DIR, tmp),
                 0);
    lm_test_sh("rm -rf '%s.old' && { [ ! -e '%s' ] || mv '%s' '%s.old'; } && mv '%s' '%s' && rm "
               "-rf '%s.old'",
               dir, dir, dir, dir, tmp, dir, dir);
    lm_test_sh("rm -rf '%s'", tmp);
    close(lfd);
    cr_assert_eq(stat(probe, &st), 0, "certificates missing in %s", dir);
}

const char *lm_test_bin(const char *env, const char *built)
{
    const char *v = getenv(env);
    return v && *v ? v : built;
}

void lm_test_rogue_system_ca(const char *dir, char *rogue_dir, size_t rsz, char *wrapper,
                             size_t wsz)
{
    char store[700], script[1600];
    snprintf(rogue_dir, rsz, "%s/rogue", dir);
    snprintf(store, sizeof store, "%s/rogue-store", dir);
    cr_assert_eq(lm_test_sh("'%s/scripts/mkcerts' '%s' && mkdir -p '%s' && cp '%s/ca.pem' "
                            "'%s/rogue.pem' && openssl rehash '%s'",
                            LM_SOURCE_DIR, rogue_dir, store, rogue_dir, store, store),
                 0);
    snprintf(script, sizeof script,
             "#!/bin/sh\n"
             "# runs \"$@\" with /etc/ssl/certs replaced by %s (this process tree only)\n"
             "exec unshare -rm sh -c 'mount --bind \"$0\" /etc/ssl/certs && exec \"$@\"' '%s' "
             "\"$@\"\n",
             store, store);
    lm_test_write(dir, "rogue-sys", script, wrapper, wsz);
    cr_assert_eq(chmod(wrapper, 0755), 0);
    cr_assert_eq(
        lm_test_sh("'%s' openssl verify '%s/server.pem' >/dev/null 2>&1", wrapper, rogue_dir), 0,
        "a private mount namespace (unshare -rm) is needed to put a rogue CA into the "
        "system store of a test process; it could not be made here");
}

char *lm_test_agent_status_text(int port)
{
    char url[128];
    lm_http_response_t resp;
    lm_error_t err;
    lm_http_opts_t o = {.connect_timeout_ms = 500, .total_timeout_ms = 3000};
    char *body = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/status", port);
    memset(&resp, 0, sizeof resp);
    if (lm_http_request(&o, "GET", url, NULL, NULL, 0, &resp, &err) && resp.status == 200 &&
        resp.body)
        body = strdup(resp.body);
    lm_http_response_cleanup(&resp);
    return body;
}

lm_json_val_t *lm_test_agent_status(int port)
{
    char *body = lm_test_agent_status_text(port);
    lm_error_t err;
    lm_json_val_t *v = body ? lm_json_parse(body, strlen(body), 0, 0, &err) : NULL;
    free(body);
    return v;
}
