/* lm_job: see lm_job.h. */
#include "lm_job.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "lm_encode.h"
#include "lm_fs.h"
#include "lm_log.h"
#include "lm_ns.h"
#include "lm_redact.h"
#include "lm_time.h"

extern char **environ; /* POSIX; unistd.h declares it only for _GNU_SOURCE */

static const char *const log_formats[] = {"text", "json", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const split_modes[] = {"auto", "always", "never", NULL};
static const char *const sharded_roles[] = {"all", "lead", "follower", NULL};
static const char *const capture_modes[] = {"auto", "oplog", "changestream", NULL};

#define ENDPOINT_FIELDS(side)                                                                      \
    {"uri",                                                                                        \
     LM_CFG_STRING,                                                                                \
     offsetof(lm_endpoint_t, uri),                                                                 \
     NULL,                                                                                         \
     0,                                                                                            \
     0,                                                                                            \
     LM_CFG_REQUIRED,                                                                              \
     NULL,                                                                                         \
     NULL,                                                                                         \
     "mongodb:// URI of the " side " deployment (credentials may be left out of it)."},            \
        {"tls_ca_file",                                                                            \
         LM_CFG_STRING,                                                                            \
         offsetof(lm_endpoint_t, tls_ca_file),                                                     \
         NULL,                                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         0,                                                                                        \
         NULL,                                                                                     \
         NULL,                                                                                     \
         "PEM file of the CA that signed the " side "'s certificate; turns TLS on."},              \
        {"user",                                                                                   \
         LM_CFG_STRING,                                                                            \
         offsetof(lm_endpoint_t, user),                                                            \
         NULL,                                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         0,                                                                                        \
         NULL,                                                                                     \
         NULL,                                                                                     \
         "User name (authSource admin unless the URI says otherwise)."},                           \
        {"password_file",                                                                          \
         LM_CFG_STRING,                                                                            \
         offsetof(lm_endpoint_t, password_file),                                                   \
         NULL,                                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         0,                                                                                        \
         NULL,                                                                                     \
         NULL,                                                                                     \
         "File holding the password on one line, mode 0600."},                                     \
        LM_CONFIG_END

static const lm_config_field_t source_fields[] = {ENDPOINT_FIELDS("source")};
static const lm_config_field_t target_fields[] = {ENDPOINT_FIELDS("target")};

const lm_config_field_t lm_job_schema[] = {
    {"source", LM_CFG_SECTION, offsetof(lm_job_t, source), NULL, 0, 0, 0, NULL, source_fields,
     "The deployment to copy from."},
    {"target", LM_CFG_SECTION, offsetof(lm_job_t, target), NULL, 0, 0, 0, NULL, target_fields,
     "The deployment to copy to."},
    {"include", LM_CFG_STRING_LIST, offsetof(lm_job_t, include), NULL, 0, 0, 0, NULL, NULL,
     "Namespaces to copy (db.coll, db.* or a glob); empty: every user namespace."},
    {"exclude", LM_CFG_STRING_LIST, offsetof(lm_job_t, exclude), NULL, 0, 0, 0, NULL, NULL,
     "Namespaces never to copy."},
    {"drop_target", LM_CFG_BOOL, offsetof(lm_job_t, drop_target), "false", 0, 0, 0, NULL, NULL,
     "Drop namespaces that already exist on the target (otherwise the job refuses to start)."},
    {"copy_only", LM_CFG_BOOL, offsetof(lm_job_t, copy_only), "false", 0, 0, 0, NULL, NULL,
     "Stop after the copy and index phases (a staging copy); otherwise stream the source's\n"
     "changes until cutover."},
    {"allow_insecure_tls", LM_CFG_BOOL, offsetof(lm_job_t, allow_insecure_tls), "false", 0, 0, 0,
     NULL, NULL,
     "Accept URI options that turn TLS certificate or host name checks off (tlsInsecure,\n"
     "tlsAllowInvalidCertificates, tlsAllowInvalidHostnames, ...); refused otherwise."},
    {"capture", LM_CFG_ENUM, offsetof(lm_job_t, capture), "auto", 0, 0, 0, capture_modes, NULL,
     "How changes are read from the source: oplog (tail local.oplog.rs), changestream\n"
     "(cluster-wide change stream) or auto (the oplog where it is readable)."},
    {"apply_workers", LM_CFG_INT, offsetof(lm_job_t, apply_workers), "0", 0, 64, 0, NULL, NULL,
     "Threads applying changes; each document's changes stay in order. 0 (auto): the apply\n"
     "chooses 1 to 8 by itself, fewer when the stream is quiet (fewer, larger writes)."},
    {"cutover_lag", LM_CFG_DURATION, offsetof(lm_job_t, cutover_lag_ms), "10s", 0, 86400000, 0,
     NULL, NULL, "readyForCutover when the lag is at most this."},
    {"copy_workers", LM_CFG_INT, offsetof(lm_job_t, copy_workers), "0", 0, 64, 0, NULL, NULL,
     "Reader threads and writer threads each; 0 (auto): the copy chooses 1 to 8 by itself\n"
     "from the throughput the target shows (more writers slow some servers down)."},
    {"buffer_mb", LM_CFG_INT, offsetof(lm_job_t, buffer_mb), "256", 16, 65536, 0, NULL, NULL,
     "Memory for documents between readers and writers, in MB."},
    {"split_docs", LM_CFG_INT, offsetof(lm_job_t, split_docs), "200000", 1000, 1000000000000LL, 0,
     NULL, NULL, "Collections with more documents than this are copied as parallel _id ranges."},
    {"split", LM_CFG_ENUM, offsetof(lm_job_t, split), "auto", 0, 0, 0, split_modes, NULL,
     "Split large collections into _id ranges: auto (when the source plans an _id range as an\n"
     "index scan), always, or never."},
    {"connect_timeout", LM_CFG_DURATION, offsetof(lm_job_t, connect_timeout_ms), "10s", 500, 300000,
     0, NULL, NULL, "How long to wait for a server to answer when connecting."},
    {"state_dir", LM_CFG_STRING, offsetof(lm_job_t, state_dir), "./livemig-state", 0, 0, 0, NULL,
     NULL, "Where the agent keeps the job's identity (the checkpoint lives on the target)."},
    {"status_addr", LM_CFG_STRING, offsetof(lm_job_t, status_addr), "127.0.0.1:27190", 0, 0, 0,
     NULL, NULL, "host:port of the status API; 0 disables it."},
    {"log_format", LM_CFG_ENUM, offsetof(lm_job_t, log_format), "text", 0, 0, 0, log_formats, NULL,
     "text or json (one object per line)."},
    {"log_level", LM_CFG_ENUM, offsetof(lm_job_t, log_level), "info", 0, 0, 0, log_levels, NULL,
     "debug, info, warn or error."},
    {"verify", LM_CFG_BOOL, offsetof(lm_job_t, verify), "true", 0, 0, 0, NULL, NULL,
     "After a cutover compare the target with the source: namespaces, options, indexes and\n"
     "every document (docs/verification.md); a difference makes the exit code 5.\n"
     "--no-verify turns it off. Copy-only jobs are not verified (the source keeps changing)."},
    {"verify_workers", LM_CFG_INT, offsetof(lm_job_t, verify_workers), "4", 1, 32, 0, NULL, NULL,
     "Verification: _id ranges compared at once."},
    {"verify_recheck", LM_CFG_INT, offsetof(lm_job_t, verify_recheck), "3", 0, 100, 0, NULL, NULL,
     "Verification: how many times a differing document is read again before it is reported\n"
     "(a live source may have changed it while it was compared)."},
    {"verify_recheck_delay", LM_CFG_DURATION, offsetof(lm_job_t, verify_recheck_delay_ms), "1s", 0,
     600000, 0, NULL, NULL, "Verification: the wait before each re-read."},
    {"verify_max_ids", LM_CFG_INT, offsetof(lm_job_t, verify_max_ids), "20", 1, 10000, 0, NULL,
     NULL, "Verification: differing _ids listed per namespace (all are counted)."},
    {"migration_id", LM_CFG_STRING, offsetof(lm_job_t, migration_id), NULL, 0, 0, 0, NULL, NULL,
     "The job id of a sharded migration run by several agents: the same on each of them (its\n"
     "shards' checkpoints on the target are keyed <migration id>.<shard>). Letters, digits,\n"
     "'_' and '-', at most 24."},
    {"shards", LM_CFG_STRING_LIST, offsetof(lm_job_t, shards), NULL, 0, 0, 0, NULL, NULL,
     "A sharded migration run by several agents: the source shards this agent runs (names as\n"
     "listShards gives them; comma-separated or repeated). Empty: every shard."},
    {"sharded_role", LM_CFG_ENUM, offsetof(lm_job_t, sharded_role), "all", 0, 0, 0, sharded_roles,
     NULL,
     "all (one agent runs every shard), lead (this agent stops and starts the balancers and\n"
     "makes the target's metadata match) or follower (waits for the lead's metadata)."},
    {"lead_wait", LM_CFG_DURATION, offsetof(lm_job_t, lead_wait_ms), "30m", 1000, 604800000, 0,
     NULL, NULL,
     "A follower waits at most this long for the lead's \"metadata ready\"; a lead with\n"
     "await_shards waits as long for its shards."},
    {"await_shards", LM_CFG_BOOL, offsetof(lm_job_t, await_shards), "false", 0, 0, 0, NULL, NULL,
     "A lead (sharded_role lead, no shards) that reports every source shard with its size\n"
     "(state ASSIGNING) and runs the shards assigned to it: by the control plane's\n"
     "assign-shards, or POST /api/v1/assign-shards?shards=A,B (docs/sharded.md)."},
    LM_CONFIG_END,
};

/* Command-line flags and the job-file keys they set. */
static const struct {
    const char *flag;
    const char *path;
    bool boolean; /* takes no value: sets its key true, or false for a --no-* flag */
} flags[] = {
    {"--source", "source.uri", false},
    {"--source-tls-ca-file", "source.tls_ca_file", false},
    {"--source-user", "source.user", false},
    {"--source-password-file", "source.password_file", false},
    {"--target", "target.uri", false},
    {"--target-tls-ca-file", "target.tls_ca_file", false},
    {"--target-user", "target.user", false},
    {"--target-password-file", "target.password_file", false},
    {"--include", "include", false},
    {"--exclude", "exclude", false},
    {"--drop-target", "drop_target", true},
    {"--copy-only", "copy_only", true},
    {"--allow-insecure-tls", "allow_insecure_tls", true},
    {"--capture", "capture", false},
    {"--apply-workers", "apply_workers", false},
    {"--cutover-lag", "cutover_lag", false},
    {"--copy-workers", "copy_workers", false},
    {"--buffer-mb", "buffer_mb", false},
    {"--split-docs", "split_docs", false},
    {"--split", "split", false},
    {"--connect-timeout", "connect_timeout", false},
    {"--state-dir", "state_dir", false},
    {"--status-addr", "status_addr", false},
    {"--log-format", "log_format", false},
    {"--log-level", "log_level", false},
    {"--no-verify", "verify", true},
    {"--verify-workers", "verify_workers", false},
    {"--verify-recheck", "verify_recheck", false},
    {"--verify-recheck-delay", "verify_recheck_delay", false},
    {"--verify-max-ids", "verify_max_ids", false},
    {"--migration-id", "migration_id", false},
    {"--shards", "shards", false},
    {"--sharded-role", "sharded_role", false},
    {"--lead-wait", "lead_wait", false},
    {"--await-shards", "await_shards", true},
};

void lm_job_usage(FILE *out)
{
    fputs("usage: livemig-agent migrate --source URI --target URI [options]\n"
          "       livemig-agent migrate --job FILE [options]\n\n"
          "Passwords: --source-password-file / --target-password-file (mode 0600), or the\n"
          "environment variables LIVEMIG_SOURCE_PASSWORD / LIVEMIG_TARGET_PASSWORD.\n\n"
          "options (each also a key of the job file):\n",
          out);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        fprintf(out, "  %-26s %s%s\n", flags[i].flag,
                strncmp(flags[i].flag, "--no-", 5) == 0 ? "not " : "", flags[i].path);
    fputs(
        "  --job FILE                 YAML job file (see conf/job.yaml)\n"
        "  --print-config             print the effective options (passwords redacted) and exit\n",
        out);
}

static int find_flag(const char *arg, const char **value)
{
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        size_t n = strlen(flags[i].flag);
        if (strncmp(arg, flags[i].flag, n) == 0 && (arg[n] == '\0' || arg[n] == '=')) {
            *value = arg[n] == '=' ? arg + n + 1 : NULL;
            return (int)i;
        }
    }
    return -1;
}

bool lm_job_from_args(lm_job_t *job, int argc, char **argv, bool *help, lm_error_t *err)
{
    const char *job_file = NULL;

    *help = false;
    memset(job, 0, sizeof *job);
    if (!lm_config_load_defaults(lm_job_schema, job, err))
        return false;
    /* the job file first, wherever --job appears, so flags override it */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--job") == 0) {
            if (i + 1 >= argc)
                return lm_error_set(err, LM_ERR_INVALID, "--job needs a file name");
            job_file = argv[++i];
        } else if (strncmp(argv[i], "--job=", 6) == 0) {
            job_file = argv[i] + 6;
        }
    }
    if (job_file && !lm_config_load_file(lm_job_schema, job, job_file, err))
        return false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = NULL;
        if (strcmp(arg, "--job") == 0) {
            i++;
            continue;
        }
        if (strncmp(arg, "--job=", 6) == 0 || strcmp(arg, "--print-config") == 0 ||
            strcmp(arg, "--sample-config") == 0)
            continue;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            *help = true;
            return true;
        }
        if (strstr(arg, "password") && !strstr(arg, "password-file"))
            /* worded so the flag name is not followed by ':' (the redactor would mask what follows)
             */
            return lm_error_set(
                err, LM_ERR_INVALID,
                "passwords are not taken on the command line, where other users can read "
                "them, so %s is refused: use --source-password-file/--target-password-file "
                "or LIVEMIG_SOURCE_PASSWORD/LIVEMIG_TARGET_PASSWORD",
                arg);
        int f = find_flag(arg, &value);
        if (f < 0)
            return lm_error_set(err, LM_ERR_INVALID,
                                "unknown option '%s' (see livemig-agent migrate --help)", arg);
        if (flags[f].boolean) {
            if (value)
                return lm_error_set(err, LM_ERR_INVALID, "%s takes no value", flags[f].flag);
            value = strncmp(flags[f].flag, "--no-", 5) == 0 ? "false" : "true";
        } else if (!value) {
            if (i + 1 >= argc)
                return lm_error_set(err, LM_ERR_INVALID, "%s needs a value", flags[f].flag);
            value = argv[++i];
        }
        if (!lm_config_set(lm_job_schema, job, flags[f].path, value, err)) {
            lm_error_prefix(err, "%s", flags[f].flag);
            return false;
        }
    }
    return lm_config_check_required(lm_job_schema, job, job_file ? job_file : "command line", err);
}

bool lm_endpoint_hold_secrets(lm_endpoint_t *ep)
{
    bool ok = true;
    if (ep->password)
        ok = lm_redact_register(ep->password);
    if (!ep->uri_password && ep->uri) {
        mongoc_uri_t *uri = mongoc_uri_new_with_error(ep->uri, NULL);
        const char *pw = uri ? mongoc_uri_get_password(uri) : NULL;
        if (pw && *pw) {
            ep->uri_password = strdup(pw);
            ok = ep->uri_password && lm_redact_register(ep->uri_password) && ok;
        }
        mongoc_uri_destroy(uri);
    }
    return ok;
}

/* Takes variable name out of the environment: a copy of its value into *out (NULL when it
 * is not set; the caller wipes and frees it), then every value of that name overwritten
 * with zeros where it lies, then unsetenv. unsetenv alone only drops the pointer: the
 * process's initial environment block, which /proc/PID/environ shows to the same user and
 * root and which a core dump holds, would keep the text. Children started later do not
 * inherit it. Not thread-safe (the environment is not): called before threads start.
 * False when out of memory (the value is wiped all the same). */
static bool take_env(const char *name, char **out)
{
    size_t n = strlen(name);
    bool ok = true;
    *out = NULL;
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, name, n) != 0 || (*e)[n] != '=')
            continue;
        char *value = *e + n + 1;
        if (!*out && ok && !(*out = strdup(value)))
            ok = false;
        lm_wipe(value, strlen(value));
    }
    unsetenv(name);
    return ok;
}

/* The password of one side: its file, else its environment variable, else none. The
 * variable leaves the environment either way (take_env). */
static bool read_password(lm_endpoint_t *ep, const char *side, const char *env, lm_error_t *err)
{
    char *from_env = NULL;
    if (!take_env(env, &from_env))
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    if (ep->password_file) {
        if (from_env) {
            lm_wipe(from_env, strlen(from_env));
            free(from_env);
        }
        if (!lm_fs_read_secret(ep->password_file, &ep->password, err)) {
            lm_error_prefix(err, "%s password file", side);
            return false;
        }
    } else if (from_env && *from_env) {
        ep->password = from_env; /* taken */
    } else {
        free(from_env);
    }
    if (!lm_endpoint_hold_secrets(ep))
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    if (ep->password) {
        if (!ep->user && !strchr(ep->uri, '@'))
            return lm_error_set(
                err, LM_ERR_INVALID,
                "%s: a password was given but no user: add --%s-user or put the user in the URI",
                side, side);
    }
    return true;
}

bool lm_job_finish(lm_job_t *job, lm_error_t *err)
{
    for (size_t i = 0; i < job->include.n; i++)
        if (!lm_ns_pattern_valid(job->include.items[i], err))
            return false;
    for (size_t i = 0; i < job->exclude.n; i++)
        if (!lm_ns_pattern_valid(job->exclude.items[i], err))
            return false;
    if (job->migration_id) {
        size_t n = strlen(job->migration_id);
        bool ok = n > 0 && n <= 24; /* the checkpoint keys keep 24 (lm_coord) */
        for (size_t i = 0; ok && i < n; i++) {
            char ch = job->migration_id[i];
            ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '-';
        }
        if (!ok)
            return lm_error_set(err, LM_ERR_INVALID,
                                "--migration-id '%s': use 1 to 24 letters, digits, '_' or '-'",
                                job->migration_id);
        snprintf(job->job_id, sizeof job->job_id, "%s", job->migration_id);
    }
    if (job->sharded_role != LM_JOB_ROLE_ALL && !job->job_id[0])
        return lm_error_set(err, LM_ERR_INVALID,
                            "--sharded-role %s needs --migration-id ID, the same on every agent of "
                            "the migration (its shards' checkpoints are found by it)",
                            job->sharded_role == LM_JOB_ROLE_LEAD ? "lead" : "follower");
    if (job->shards.n && job->sharded_role == LM_JOB_ROLE_ALL)
        return lm_error_set(err, LM_ERR_INVALID,
                            "--shards runs part of a sharded migration: say which part this agent "
                            "plays with --sharded-role lead (one agent: it stops the balancers and "
                            "makes the target's metadata match) or --sharded-role follower");
    if (job->await_shards && (job->sharded_role != LM_JOB_ROLE_LEAD || job->shards.n))
        return lm_error_set(err, LM_ERR_INVALID,
                            "--await-shards is for the lead of a migration spread over several "
                            "agents, before its shards are known: give it with --sharded-role lead "
                            "--migration-id ID and without --shards (the shards come from the "
                            "control plane or POST /api/v1/assign-shards?shards=A,B)");
    return read_password(&job->source, "source", "LIVEMIG_SOURCE_PASSWORD", err) &&
           read_password(&job->target, "target", "LIVEMIG_TARGET_PASSWORD", err);
}

void lm_job_wipe_passwords(lm_job_t *job)
{
    for (int side = 0; side < 2; side++) {
        lm_endpoint_t *ep = side ? &job->target : &job->source;
        if (ep->password) {
            lm_redact_forget(ep->password);
            lm_wipe(ep->password, strlen(ep->password));
            free(ep->password);
            ep->password = NULL;
        }
        if (ep->uri_password) {
            lm_redact_forget(ep->uri_password);
            lm_wipe(ep->uri_password, strlen(ep->uri_password));
            free(ep->uri_password);
            ep->uri_password = NULL;
        }
    }
}

void lm_job_cleanup(lm_job_t *job)
{
    lm_job_wipe_passwords(job);
    lm_config_cleanup(lm_job_schema, job);
}

bool lm_lease_out(const atomic_llong *ok_ms, int64_t lease_ms)
{
    return ok_ms && lease_ms > 0 && lm_time_boot_ms() - atomic_load(ok_ms) >= lease_ms;
}

bool lm_lease_stop(const lm_job_t *job, lm_error_t *err, const char *what)
{
    if (err->code == LM_ERR_CANCELLED)
        return true;
    if (!lm_lease_out(job->lease_ok_ms, job->lease_ms))
        return false;
    lm_log_warn(NULL, "the lease ran out; %s ended on: %s", what, err->message);
    lm_error_set(err, LM_ERR_CANCELLED, "the lease of this part ran out: it writes nothing more");
    return true;
}
