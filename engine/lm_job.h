/* lm_job: the options of one migration job, from a YAML job file (--job FILE) and/or
 * command-line flags (flags win). One schema table drives both, --print-config and the
 * sample in conf/. Passwords come from a 0600 file or an environment variable
 * (LIVEMIG_SOURCE_PASSWORD / LIVEMIG_TARGET_PASSWORD), never from argv. */
#ifndef LM_JOB_H
#define LM_JOB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "lm_config.h"
#include "lm_error.h"

typedef struct {
    char *uri;
    char *tls_ca_file;
    char *user;
    char *password_file;
    char *password;     /* filled by lm_job_finish from the file or the environment; secret */
    char *uri_password; /* the URI's own password (user-info), if any; secret */
} lm_endpoint_t;

enum { LM_JOB_LOG_TEXT = 0, LM_JOB_LOG_JSON = 1 };
enum { LM_JOB_CAPTURE_AUTO = 0, LM_JOB_CAPTURE_OPLOG = 1, LM_JOB_CAPTURE_CHANGESTREAM = 2 };
enum { LM_JOB_SPLIT_AUTO = 0, LM_JOB_SPLIT_ALWAYS = 1, LM_JOB_SPLIT_NEVER = 2 };

typedef struct {
    lm_endpoint_t source;
    lm_endpoint_t target;
    lm_strlist_t include;
    lm_strlist_t exclude;
    bool drop_target;
    bool copy_only;
    bool allow_insecure_tls; /* URI options that turn TLS checks off are accepted (a warning) */
    int capture;             /* LM_JOB_CAPTURE_* */
    int64_t apply_workers;
    int64_t cutover_lag_ms;
    int64_t copy_workers;
    int64_t buffer_mb;
    int64_t split_docs; /* collections with more documents are split into _id ranges */
    int split;          /* LM_JOB_SPLIT_*: auto asks the source's query planner */
    int64_t connect_timeout_ms;
    char *state_dir;
    char *status_addr; /* "host:port", or "0" to disable */
    int log_format;
    int log_level;
    /* verification (lm_verify): after a cutover (migrate), and `livemig-agent verify` */
    bool verify;                     /* migrate: verify right after COMPLETE */
    int64_t verify_workers;          /* ranges compared at once */
    int64_t verify_recheck;          /* re-reads of a differing document */
    int64_t verify_recheck_delay_ms; /* between re-reads */
    int64_t verify_max_ids;          /* differing _ids listed per namespace */
    char job_id[65]; /* not a key: the control plane's id, which a new job takes; "" = random */
    /* one sharded migration over several agents (docs/sharded.md "Several agents") */
    char *migration_id;   /* --migration-id: the job id every agent of the migration shares */
    lm_strlist_t shards;  /* --shards: the source shards this agent runs (empty: every shard) */
    int sharded_role;     /* LM_JOB_ROLE_* */
    int64_t lead_wait_ms; /* a follower waits this long for the lead's "metadata ready" */
    /* a lead that waits for its shards (the control plane's assign-shards, or POST
     * /api/v1/assign-shards): role lead, no shards (docs/sharded.md) */
    bool await_shards;
    /* not keys: a daemon's part with a lease (leaseSeconds): the time (lm_time_boot_ms) of
     * the last call its control plane answered and the lease; nothing is written once
     * lease_ms passed since (lm_lease_out; the target's connections are fenced by it:
     * lm_conn_pool_pop). NULL / 0: no lease. */
    const atomic_llong *lease_ok_ms;
    int64_t lease_ms;
} lm_job_t;

enum { LM_JOB_ROLE_ALL = 0, LM_JOB_ROLE_LEAD = 1, LM_JOB_ROLE_FOLLOWER = 2 };

extern const lm_config_field_t lm_job_schema[];

/* Parses `livemig-agent migrate` arguments (argv[0] is "migrate"): --job FILE is loaded
 * first, then every other flag overrides it. Unknown flags, missing values and bad values
 * are errors naming the flag. On failure call lm_job_cleanup. `help` is set for -h. */
bool lm_job_from_args(lm_job_t *job, int argc, char **argv, bool *help, lm_error_t *err);

/* Reads passwords, checks the combination of options (URIs present, patterns valid). */
bool lm_job_finish(lm_job_t *job, lm_error_t *err);

void lm_job_usage(FILE *out);
/* Registers the endpoint's secrets with lm_redact (its password and the URI's own
 * password, kept in uri_password): they are masked in every log line and message until
 * lm_job_wipe_passwords forgets them. False only when out of memory. */
bool lm_endpoint_hold_secrets(lm_endpoint_t *ep);

/* Wipes and frees the passwords (the rest stays) and forgets them in lm_redact: once a run
 * no longer needs them. */
void lm_job_wipe_passwords(lm_job_t *job);
void lm_job_cleanup(lm_job_t *job);

/* Whether a lease (lm_job_t's lease_ok_ms, lease_ms) ran out: lease_ms passed since
 * *ok_ms on lm_time_boot_ms (which counts a suspended host's sleep). False without a
 * lease (NULL or 0). Nothing more may be written then: the part's shards may be another
 * host's. */
bool lm_lease_out(const atomic_llong *ok_ms, int64_t lease_ms);

/* Whether a run of job that ended with err is a stop: err is LM_ERR_CANCELLED, or job's
 * lease ran out, when a failure is the target's fence refusing a send (lm_conn_pool_pop),
 * the stop the lease asked for. Then err becomes LM_ERR_CANCELLED, the error it held logged
 * as a warning ("the lease ran out; <what> ended on: ..."). */
bool lm_lease_stop(const lm_job_t *job, lm_error_t *err, const char *what);

#endif
