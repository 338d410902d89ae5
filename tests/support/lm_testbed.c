/* lm_testbed: see lm_testbed.h. */
#include "lm_testbed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "lm_fs.h"
#include "lm_time.h"

#define TESTBED LM_SOURCE_DIR "/scripts/testbed"

static void copy_field(char *dst, size_t dstsz, const char *v)
{
    snprintf(dst, dstsz, "%s", v);
}

/* LM_TB_SHARD<i>_URI and LM_TB_SHARD<i>_NAME of the sharded kind. */
static void shard_field(lm_testbed_server_t *srv, const char *k, const char *v)
{
    char *end = NULL;
    if (strncmp(k, "LM_TB_SHARD", 11) != 0 || k[11] < '0' || k[11] > '9')
        return;
    long i = strtol(k + 11, &end, 10);
    if (i < 0 || i >= LM_TESTBED_MAX_SHARDS)
        return;
    if (strcmp(end, "_URI") == 0)
        copy_field(srv->shard_uri[i], sizeof srv->shard_uri[i], v);
    else if (strcmp(end, "_NAME") == 0)
        copy_field(srv->shard_name[i], sizeof srv->shard_name[i], v);
}

void lm_testbed_start(const char *kind, const char *extra_args, lm_testbed_server_t *srv)
{
    char cmd[2048], line[1024], out[8192] = "";
    size_t used = 0;

    memset(srv, 0, sizeof *srv);
    snprintf(cmd, sizeof cmd, "'%s' start %s --owner-pid %ld --max-seconds 900 %s 2>&1", TESTBED,
             kind, (long)getpid(), extra_args ? extra_args : "");
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s", TESTBED);
    while (fgets(line, sizeof line, p)) {
        used += (size_t)snprintf(out + used, used < sizeof out ? sizeof out - used : 0, "%s", line);
        line[strcspn(line, "\n")] = '\0';
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *k = line, *v = eq + 1;
        if (strcmp(k, "LM_TB_URI") == 0)
            copy_field(srv->uri, sizeof srv->uri, v);
        else if (strcmp(k, "LM_TB_DIR") == 0)
            copy_field(srv->dir, sizeof srv->dir, v);
        else if (strcmp(k, "LM_TB_CA_FILE") == 0)
            copy_field(srv->ca_file, sizeof srv->ca_file, v);
        else if (strcmp(k, "LM_TB_USER") == 0)
            copy_field(srv->user, sizeof srv->user, v);
        else if (strcmp(k, "LM_TB_PASSWORD_FILE") == 0)
            copy_field(srv->password_file, sizeof srv->password_file, v);
        else if (strcmp(k, "LM_TB_PORT") == 0)
            srv->port = (int)strtol(v, NULL, 10);
        else if (strcmp(k, "LM_TB_PID") == 0)
            srv->pid = strtol(v, NULL, 10);
        else if (strcmp(k, "LM_TB_CONFIG_URI") == 0)
            copy_field(srv->config_uri, sizeof srv->config_uri, v);
        else if (strcmp(k, "LM_TB_SHARDS") == 0)
            srv->nshards = (int)strtol(v, NULL, 10);
        else
            shard_field(srv, k, v);
    }
    cr_assert(srv->nshards >= 0 && srv->nshards <= LM_TESTBED_MAX_SHARDS,
              "scripts/testbed printed LM_TB_SHARDS=%d", srv->nshards);
    int st = pclose(p);
    cr_assert(st == 0 && srv->uri[0] && srv->dir[0] && srv->port > 0,
              "scripts/testbed start %s failed:\n%s", kind, out);
    copy_field(srv->kind, sizeof srv->kind, kind);
    if (srv->password_file[0]) {
        char *pw = NULL;
        lm_error_t err;
        lm_error_init(&err);
        cr_assert(lm_fs_read_secret(srv->password_file, &pw, &err), "%s", err.message);
        copy_field(srv->password, sizeof srv->password, pw);
        free(pw);
    }
    srv->running = true;
}

void lm_testbed_stop(lm_testbed_server_t *srv)
{
    char cmd[1024];
    if (!srv || !srv->running)
        return;
    snprintf(cmd, sizeof cmd, "'%s' stop '%s' >/dev/null 2>&1", TESTBED, srv->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: testbed stop %s failed\n", srv->dir);
    srv->running = false;
}

void lm_testbed_restart(lm_testbed_server_t *srv)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' restart '%s' >/dev/null", TESTBED, srv->dir);
    cr_assert_eq(system(cmd), 0, "testbed restart %s failed", srv->dir);
}

void lm_testbed_fault(const lm_testbed_server_t *srv, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' fault '%s' %s >/dev/null", TESTBED, srv->dir, args);
    cr_assert_eq(system(cmd), 0, "testbed fault %s %s failed", srv->dir, args);
}

void lm_testbed_uri_with_auth(const lm_testbed_server_t *srv, char *buf, size_t bufsz)
{
    const char *rest = strstr(srv->uri, "://");
    if (!srv->user[0] || !rest) {
        snprintf(buf, bufsz, "%s", srv->uri);
        return;
    }
    snprintf(buf, bufsz, "mongodb://%s:%s@%s%sauthSource=admin", srv->user, srv->password, rest + 3,
             strchr(rest, '?') ? "&" : "/?");
}

void lm_testbed_wait_reachable(const char *uri, int timeout_ms)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "'%s/.deps/venv/bin/python' -c \"from pymongo import MongoClient as M; "
             "M('%s', serverSelectionTimeoutMS=500).admin.command('ping')\" >/dev/null 2>&1",
             LM_SOURCE_DIR, uri);
    int64_t until = lm_time_mono_ms() + timeout_ms;
    while (system(cmd) != 0) {
        cr_assert_lt(lm_time_mono_ms(), until, "%s never answered a ping", uri);
        lm_time_sleep_ms(500, NULL);
    }
}
