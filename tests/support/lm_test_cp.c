/* lm_test_cp: see lm_test_cp.h. */
#include "lm_test_cp.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lm_json.h"
#include "lm_test_proc.h"
#include "lm_test_util.h"
#include "lm_time.h"

void lm_test_cp_config(lm_test_cp_t *cp, const char *extra_yaml)
{
    char text[4000], key[800];
    snprintf(key, sizeof key, "%s/secrets.key", cp->dir);
    cr_assert_eq(lm_test_sh("[ -f '%s' ] || { openssl rand -hex 32 > '%s' && chmod 600 '%s'; }",
                            key, key, key),
                 0);
    snprintf(text, sizeof text,
             "listen: 127.0.0.1:%d\n"
             "tls:\n  cert_file: %s/server.pem\n  key_file: %s/server.key\n  ca_file: %s/ca.pem\n"
             "db_path: %s/cp.db\nsecrets_key_file: %s\nheartbeat_interval: 1s\n"
             "poll_timeout: 3s\nmax_request_body: 64KiB\n%s",
             cp->port, cp->certs, cp->certs, cp->certs, cp->dir, key, extra_yaml ? extra_yaml : "");
    lm_test_write(cp->dir, "cp.yaml", text, cp->conf, sizeof cp->conf);
}

void lm_test_cp_init(lm_test_cp_t *cp, const char *dir, const char *extra_yaml)
{
    memset(cp, 0, sizeof *cp);
    snprintf(cp->dir, sizeof cp->dir, "%s", dir);
    /* a CA of its own: tests run in parallel, and a shared one could be remade mid-test */
    snprintf(cp->certs, sizeof cp->certs, "%s/certs", dir);
    snprintf(cp->ca, sizeof cp->ca, "%s/ca.pem", cp->certs);
    cr_assert_eq(lm_test_sh("'%s/scripts/mkcerts' '%s'", LM_SOURCE_DIR, cp->certs), 0);
    snprintf(cp->log, sizeof cp->log, "%s/cp.log", dir);
    cp->port = lm_test_free_port(); /* fixed: agents find it again after a restart */
    lm_test_cp_config(cp, extra_yaml);
}

void lm_test_cp_start(lm_test_cp_t *cp)
{
    char *argv[] = {(char *)LM_CP_BIN, (char *)"--config", cp->conf, NULL};
    char *old = lm_test_slurp(cp->log);
    size_t skip = strlen(old); /* a restart appends: read only what this run writes */
    free(old);
    cp->pid = lm_test_spawn(argv, cp->log);
    int64_t until = lm_time_mono_ms() + 20000;
    int port = 0;
    while (!port && lm_time_mono_ms() < until) {
        char *log = lm_test_slurp(cp->log);
        const char *p = strlen(log) > skip ? strstr(log + skip, "LISTENING port=") : NULL;
        if (p)
            port = atoi(p + strlen("LISTENING port="));
        free(log);
        if (!port)
            lm_time_sleep_ms(50, NULL);
    }
    cr_assert(port > 0, "the control plane did not start:\n%s", lm_test_slurp(cp->log));
    snprintf(cp->url, sizeof cp->url, "https://127.0.0.1:%d", port);
}

void lm_test_cp_stop(lm_test_cp_t *cp)
{
    if (cp->pid > 0) {
        kill(cp->pid, SIGTERM);
        cr_assert_eq(lm_test_wait(cp->pid, 20000), 0, "%s", lm_test_slurp(cp->log));
        cp->pid = 0;
    }
}

void lm_test_cp_kill(lm_test_cp_t *cp)
{
    if (cp->pid > 0) {
        kill(cp->pid, SIGKILL);
        lm_test_wait(cp->pid, 5000);
        cp->pid = 0;
    }
}

void lm_test_cp_bootstrap(lm_test_cp_t *cp, const char *org, char *pub, size_t pubsz, char *file,
                          size_t filesz)
{
    char log[700];
    snprintf(log, sizeof log, "%s/bootstrap-%s.out", cp->dir, org);
    cr_assert_eq(lm_test_sh("'%s' --config '%s' bootstrap --org %s > '%s' 2>&1", LM_CP_BIN,
                            cp->conf, org, log),
                 0, "%s", lm_test_slurp(log));
    char *text = lm_test_slurp(log);
    char id[80] = "", priv[80] = "";
    const char *p = strstr(text, "public key:"), *q = strstr(text, "private key:");
    cr_assert(p && q, "%s", text);
    sscanf(p, "public key: %79s", id);
    sscanf(q, "private key: %79s", priv);
    snprintf(pub, pubsz, "%s", id);
    snprintf(file, filesz, "%s/%s.key", cp->dir, org);
    FILE *f = fopen(file, "w");
    cr_assert(f);
    fprintf(f, "%s\n", priv);
    fclose(f);
    chmod(file, 0600);
    free(text);
}

int lm_test_cp_cli(const lm_test_cp_t *cp, const char *pub, const char *file, char **out,
                   const char *fmt, ...)
{
    char args[12000], log[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(log, sizeof log, "%s/cli.out", cp->dir);
    int rc = lm_test_sh("'%s' --url %s --caFile '%s' --publicKey %s --privateKeyFile '%s' "
                        "%s > '%s' 2>&1 < /dev/null",
                        LM_CLI_BIN, cp->url, cp->ca, pub, file, args, log);
    *out = lm_test_slurp(log);
    return rc;
}

void lm_test_json_field(const char *text, const char *key, char *buf, size_t size)
{
    lm_error_t err;
    const char *start = strchr(text, '{'), *end = strrchr(text, '}');
    cr_assert(start && end, "no JSON in: %s", text);
    lm_json_val_t *v = lm_json_parse(start, (size_t)(end - start + 1), 0, 0, &err);
    cr_assert(v, "%s: %s", err.message, text);
    const char *s = lm_json_string(lm_json_get(v, key));
    cr_assert(s, "no '%s' in %s", key, text);
    snprintf(buf, size, "%s", s);
    lm_json_free(v);
}

/* ---- a live migration as `livemig lm describe` shows it ---- */

lm_test_json_t *lm_test_describe(const lm_test_op_t *op, const char *mig, char **text)
{
    char *out;
    cr_assert_eq(lm_test_cp_cli(op->cp, op->pub, op->keyfile, &out,
                                "lm describe %s --projectId %s -o json", mig, op->proj),
                 0, "%s", out);
    lm_error_t err;
    const char *start = strchr(out, '{');
    cr_assert(start, "%s", out);
    lm_json_val_t *v = lm_json_parse(start, strlen(start), 0, 0, &err);
    cr_assert(v, "%s: %s", err.message, out);
    if (text)
        *text = out;
    else
        free(out);
    return v;
}

lm_test_json_t *lm_test_shard_of(lm_test_json_t *v, const char *name)
{
    lm_json_val_t *shards = lm_json_get(v, "shards");
    for (size_t i = 0; shards && i < lm_json_len(shards); i++) {
        const char *n = lm_json_string(lm_json_get(lm_json_at(shards, i), "name"));
        if (n && strcmp(n, name) == 0)
            return lm_json_at(shards, i);
    }
    return NULL;
}

void lm_test_wait_shard(const lm_test_op_t *op, const char *mig, const char *name, const char *key,
                        const char *want, int timeout_ms)
{
    int64_t until = lm_time_mono_ms() + timeout_ms;
    for (;;) {
        char *text;
        lm_json_val_t *v = lm_test_describe(op, mig, &text);
        const char *got = lm_json_string(lm_json_get(lm_test_shard_of(v, name), key));
        bool ok = got && strcmp(got, want) == 0;
        lm_json_free(v);
        if (!ok && lm_time_mono_ms() >= until)
            cr_assert_fail("shard %s of %s never had %s %s; last answer:\n%s\nlog:\n%s", name, mig,
                           key, want, text, op->log ? lm_test_slurp(op->log) : "");
        free(text);
        if (ok)
            return;
        lm_time_sleep_ms(300, NULL);
    }
}

void lm_test_wait_status(const lm_test_op_t *op, const char *mig, const char *want, bool need_ready,
                         int timeout_ms)
{
    int64_t until = lm_time_mono_ms() + timeout_ms;
    for (;;) {
        char *text;
        lm_json_val_t *v = lm_test_describe(op, mig, &text);
        const char *s = lm_json_string(lm_json_get(v, "status"));
        bool ready = false;
        lm_error_t err;
        lm_json_get_bool(v, "readyForCutover", false, &ready, &err);
        bool ok = s && strcmp(s, want) == 0 && (!need_ready || ready);
        lm_json_free(v);
        if (!ok && lm_time_mono_ms() >= until)
            cr_assert_fail("live migration %s never became %s%s; last answer:\n%s\nlog:\n%s", mig,
                           want, need_ready ? " and ready" : "", text,
                           op->log ? lm_test_slurp(op->log) : "");
        free(text);
        if (ok)
            return;
        lm_time_sleep_ms(500, NULL);
    }
}
