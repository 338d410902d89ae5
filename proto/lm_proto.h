/* lm_proto: the messages between agent and control plane (proto/README.md). Each has a C
 * struct, an encoder to JSON and a decoder from untrusted bytes. Decoders ignore unknown
 * fields, refuse a missing required field or a wrong type by name ("field 'jobId': ..."),
 * refuse messages over LM_PROTO_MAX_BYTES, strings over their buffer and lists over their
 * cap, and never crash (fuzzed: tests/fuzz/fuzz_proto_*.c). Every message carries "v", the
 * protocol version; a newer one than LM_PROTO_VERSION is refused with "upgrade livemig".
 * Structs holding secrets (link-token, job credentials) must never be logged; their
 * *_clear functions wipe them. No I/O here. */
#ifndef LM_PROTO_H
#define LM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lm_error.h"
#include "lm_json.h"
#include "lm_strbuf.h"

#define LM_PROTO_VERSION 1
#define LM_PROTO_MAX_BYTES (256u * 1024u) /* one message */
#define LM_PROTO_ID_LEN 64                /* ids, names, versions */
#define LM_PROTO_TEXT_LEN 1024            /* messages, paths */
#define LM_PROTO_URI_LEN 2048             /* connection strings */
#define LM_PROTO_MAX_JOBS 16
#define LM_PROTO_MAX_COMMANDS 64
#define LM_PROTO_MAX_NAMES 256 /* namespace patterns, collections, checks, errors */

/* ---- values the agent uses as names on its file system ---- */

/* A job id the agent may use as a directory name (state_dir/jobs/<id>): 1-64 of
 * [A-Za-z0-9_-]. The control plane makes ids this way; the agent refuses any other. */
bool lm_proto_job_id_valid(const char *id);
/* A caFile / caCertificatePath the agent can look up in its ca_dir: a file name, or an
 * absolute path, without "." or ".." components, empty components or control characters.
 * The agent still checks, after resolving symlinks, that the file lies in its ca_dir. */
bool lm_proto_ca_name_valid(const char *path);

/* ---- link-token: "lmlt1." + base64url(JSON), shown once by the control plane ---- */

typedef struct {
    char url[LM_PROTO_TEXT_LEN]; /* the control plane, https://host:port */
    char org_id[LM_PROTO_ID_LEN + 1];
    char token_id[LM_PROTO_ID_LEN + 1]; /* names the link-token (revocation) */
    char secret[LM_PROTO_ID_LEN + 1];   /* enrolls agents (register only): a secret */
    char ca_pin[LM_PROTO_ID_LEN + 1];   /* SHA-256 of the control plane CA (DER), hex */
} lm_proto_link_token_t;

bool lm_proto_link_token_encode(const lm_proto_link_token_t *t, lm_strbuf_t *out, lm_error_t *err);
bool lm_proto_link_token_decode(const char *text, size_t len, lm_proto_link_token_t *t,
                                lm_error_t *err);
void lm_proto_link_token_clear(lm_proto_link_token_t *t);

/* ---- register: the agent enrolls with the link-token and gets a credential of its own ----
 * The link-token authenticates register only. The answer carries the agent's own secret
 * (agentSecret, 64 hex digits, shown this once; the control plane keeps a salted hash);
 * every later call authenticates as "Bearer <agentId>:<agentSecret>". */

typedef struct {
    char hostname[LM_PROTO_ID_LEN + 1];
    char agent_version[LM_PROTO_ID_LEN + 1];
    char os[LM_PROTO_ID_LEN + 1];
} lm_proto_register_req_t;

typedef struct {
    char agent_id[LM_PROTO_ID_LEN + 1];
    char org_id[LM_PROTO_ID_LEN + 1];
    int64_t heartbeat_seconds;              /* 1..3600 */
    int64_t poll_seconds;                   /* how long the control plane holds a poll: 1..120 */
    char agent_secret[LM_PROTO_ID_LEN + 1]; /* this agent's own credential: a secret */
} lm_proto_register_resp_t;

/* ---- heartbeat ---- */

typedef struct {
    char agent_id[LM_PROTO_ID_LEN + 1];
    char hostname[LM_PROTO_ID_LEN + 1];
    char agent_version[LM_PROTO_ID_LEN + 1];
    int64_t uptime_seconds;
    int64_t state_dir_free_bytes;
    size_t n_running;
    char running[LM_PROTO_MAX_JOBS][LM_PROTO_ID_LEN + 1]; /* job ids */
} lm_proto_heartbeat_t;

/* ---- assignments: the answer to a long poll ---- */

typedef enum { LM_PROTO_JOB_VALIDATION, LM_PROTO_JOB_MIGRATION } lm_proto_job_kind_t;

typedef struct {
    char uri[LM_PROTO_URI_LEN];      /* mongodb:// without credentials */
    char ca_file[LM_PROTO_TEXT_LEN]; /* "" = none */
    bool tls;
    char username[LM_PROTO_ID_LEN * 2 + 1];
    char password[LM_PROTO_TEXT_LEN]; /* a secret; "" = none */
} lm_proto_endpoint_t;

typedef struct {
    char job_id[LM_PROTO_ID_LEN + 1];
    lm_proto_job_kind_t kind;
    lm_proto_endpoint_t source, target;
    bool drop_target;
    char capture[16];      /* auto | oplog | changestream */
    bool verify;           /* verify the target after the cutover ("verify", absent: true) */
    bool verify_only;      /* a verification on demand of a finished migration ("verifyOnly") */
    int64_t apply_workers; /* 0 = the agent's default */
    int64_t cutover_lag_seconds; /* 0 = the agent's default */
    size_t n_include, n_exclude;
    char (*include)[LM_PROTO_TEXT_LEN]; /* namespace patterns, allocated */
    char (*exclude)[LM_PROTO_TEXT_LEN];
    /* A part of a sharded migration run by several agents (docs/sharded.md "Several
     * agents"): the id its engines share ("" = jobId), the source shards it runs (none:
     * every shard) and its role: "" (= "all"), "all", "lead" or "follower". Sent only when set. */
    char migration_id[LM_PROTO_ID_LEN + 1];
    char sharded_role[16];
    size_t n_shards;
    char (*shards)[LM_PROTO_ID_LEN + 1]; /* allocated */
    /* The lead of a migration spread by the control plane ("awaitShards"): it reports every
     * source shard (state ASSIGNING, sizeBytes) and runs the shards an "assign-shards"
     * command gives it (docs/agent-daemon.md). */
    bool await_shards;
    /* "leaseSeconds": a part of a migration spread over several hosts stops its engines
     * (checkpointed, resumable) when the agent has not reached the control plane for this
     * long, before the control plane may hand its shards to another host. 0: no lease. */
    int64_t lease_seconds;
} lm_proto_job_t;

typedef enum {
    LM_PROTO_CMD_CUTOVER,
    LM_PROTO_CMD_CANCEL,
    LM_PROTO_CMD_EXTEND,        /* the cutover window now ends at deadline_ms */
    LM_PROTO_CMD_EXPIRE,        /* the window is over: stop syncing */
    LM_PROTO_CMD_REVOKED,       /* the agent's link-token was deleted: stop asking */
    LM_PROTO_CMD_RESTART_SHARD, /* "restart-shard": restart the failed shard `shard` */
    LM_PROTO_CMD_ASSIGN_SHARDS  /* "assign-shards": the lead's shards, `shards` (a,b,c) */
} lm_proto_cmd_kind_t;

typedef struct {
    char job_id[LM_PROTO_ID_LEN + 1]; /* "" for REVOKED */
    lm_proto_cmd_kind_t kind;
    int64_t deadline_ms; /* EXTEND: the new end of the cutover window (Unix ms) */
    int64_t seq; /* increasing; a command comes again until a poll acknowledges it (?ack=SEQ) */
    char shard[LM_PROTO_ID_LEN + 1]; /* RESTART_SHARD: the source shard's name */
    char shards[LM_PROTO_TEXT_LEN];  /* ASSIGN_SHARDS: source shard names, comma-separated */
} lm_proto_command_t;

typedef struct {
    size_t n_jobs, n_commands;
    lm_proto_job_t jobs[LM_PROTO_MAX_JOBS];
    lm_proto_command_t commands[LM_PROTO_MAX_COMMANDS];
} lm_proto_assignments_t;

/* ---- job status report ---- */

typedef enum {
    LM_PROTO_CHECK_PASS,
    LM_PROTO_CHECK_WARN,
    LM_PROTO_CHECK_FAIL,
    LM_PROTO_CHECK_INFO
} lm_proto_check_result_t;

typedef struct {
    char ns[LM_PROTO_TEXT_LEN];
    int64_t docs_copied, docs_total;
    bool done;
} lm_proto_coll_progress_t;

typedef struct {
    char name[LM_PROTO_ID_LEN + 1];
    lm_proto_check_result_t result;
    char message[LM_PROTO_TEXT_LEN];
} lm_proto_check_t;

/* The verification of a migration's target (lm_verify), as the agent reports it. Bounded:
 * at most LM_PROTO_VERIFY_MAX_NS failing namespaces, each with LM_PROTO_VERIFY_MAX_REASONS
 * reasons and LM_PROTO_VERIFY_MAX_IDS differing _ids of LM_PROTO_VERIFY_TEXT - 1 bytes at
 * most (about 100 KB in all). The decoder clips longer lists and strings to these caps (and
 * says so in `clipped`) instead of refusing the report. */
#define LM_PROTO_VERIFY_MAX_NS 20
#define LM_PROTO_VERIFY_MAX_REASONS 5
#define LM_PROTO_VERIFY_MAX_IDS 10
#define LM_PROTO_VERIFY_TEXT 256

typedef struct {
    char ns[LM_PROTO_TEXT_LEN];
    size_t n_reasons, n_ids;
    char reasons[LM_PROTO_VERIFY_MAX_REASONS][LM_PROTO_VERIFY_TEXT];
    char ids[LM_PROTO_VERIFY_MAX_IDS][LM_PROTO_VERIFY_TEXT]; /* {"_id": ...} (kind: detail) */
} lm_proto_verify_ns_t;

typedef struct {
    bool present;   /* the report has a verification section */
    char state[16]; /* running | passed | failed | error */
    int64_t namespaces_total, namespaces_checked, namespaces_failed, documents_checked;
    char error[LM_PROTO_TEXT_LEN]; /* state error: why it could not finish */
    size_t n_differences;
    lm_proto_verify_ns_t *differences; /* the failing namespaces, allocated */
    bool clipped;                      /* the decoder cut lists or strings to the caps */
} lm_proto_verification_t;

/* The job's fault history (the agent status's "events": a server unreachable and back, a
 * cursor reopened, the control plane unreachable and back, the agent resumed), as the agent
 * reports it. Bounded: the last LM_PROTO_MAX_EVENTS, a kind of LM_PROTO_EVENT_KIND - 1
 * bytes, a message of LM_PROTO_EVENT_TEXT - 1 bytes at most; the decoder keeps the last
 * LM_PROTO_MAX_EVENTS and clips longer strings (saying so in events_clipped) instead of
 * refusing the report. */
#define LM_PROTO_MAX_EVENTS 50
#define LM_PROTO_EVENT_KIND 32
#define LM_PROTO_EVENT_TEXT 512

typedef struct {
    int64_t time_ms; /* wall clock, ms since the epoch ("timeMs") */
    char kind[LM_PROTO_EVENT_KIND];
    char message[LM_PROTO_EVENT_TEXT];
} lm_proto_event_t;

/* A sharded migration's per-shard status (the agent status's "shards", from the
 * coordinator's): at most LM_PROTO_MAX_SHARDS, names of LM_PROTO_ID_LEN bytes, lastError of
 * LM_PROTO_SHARD_ERROR - 1 bytes at most. The decoder keeps the first LM_PROTO_MAX_SHARDS
 * and clips longer strings (shards_clipped) instead of refusing the report; a shard it
 * cannot read (no name, a wrong type) refuses the section, not the report. */
#define LM_PROTO_MAX_SHARDS 64
#define LM_PROTO_SHARD_ERROR 512

typedef struct {
    char name[LM_PROTO_ID_LEN + 1];         /* the source shard */
    char target_shard[LM_PROTO_ID_LEN + 1]; /* "targetShard" */
    char state[16];                         /* RUNNING COMPLETE FAILED CANCELLED STOPPED ... */
    char phase[32];
    int64_t docs_copied, bytes_copied;
    bool has_percentage, has_remaining, has_lag; /* null until known */
    double percentage, remaining_seconds, lag_seconds;
    bool ready_for_cutover;
    char last_error[LM_PROTO_SHARD_ERROR]; /* "" = null */
    bool has_size;      /* "sizeBytes": the shard's data size as the lead measured it to */
    int64_t size_bytes; /* spread the shards over the hosts (null: not measured) */
} lm_proto_shard_t;

typedef struct {
    char agent_id[LM_PROTO_ID_LEN + 1];
    char job_id[LM_PROTO_ID_LEN + 1];
    lm_proto_job_kind_t kind;
    bool verify_only; /* the report of a verification on demand ("verifyOnly") */
    char phase[32];   /* the engine's phase name */
    char state[16];   /* RUNNING | COMPLETE | FAILED | CANCELLED | EXPIRED */
    int64_t docs_copied, docs_total, bytes_copied, bytes_total;
    bool has_lag; /* lagTimeSeconds is null until streaming */
    double lag_seconds;
    double estimated_cutover_seconds; /* sent with the lag (has_lag) */
    bool ready_for_cutover;
    double optime_gap_seconds;
    size_t n_collections, n_checks, n_errors;
    lm_proto_coll_progress_t *collections; /* allocated */
    lm_proto_check_t *checks;              /* allocated */
    char (*errors)[LM_PROTO_TEXT_LEN];     /* allocated */
    lm_proto_verification_t verification;
    /* a verification section the decoder could not read (a wrong type, an unknown state):
     * the rest of the report stands, the section is left out and this says why */
    char verification_refused[LM_PROTO_TEXT_LEN];
    size_t n_events;
    lm_proto_event_t *events; /* oldest first, allocated */
    bool events_clipped;      /* the decoder dropped older events or cut strings */
    /* an events section the decoder could not read: left out, this says why */
    char events_refused[LM_PROTO_TEXT_LEN];
    size_t n_shards;
    lm_proto_shard_t *shards; /* a sharded migration's shards, allocated; none otherwise */
    bool shards_clipped;      /* the decoder dropped shards past the cap or cut strings */
    /* a shards section the decoder could not read: left out, this says why */
    char shards_refused[LM_PROTO_TEXT_LEN];
} lm_proto_status_t;

/* Encoders append one JSON document to out; decoders fill a zeroed struct (free the
 * allocated parts with the matching *_cleanup, also after a failed decode). */
bool lm_proto_register_req_encode(const lm_proto_register_req_t *m, lm_strbuf_t *out,
                                  lm_error_t *err);
bool lm_proto_register_req_decode(const char *buf, size_t len, lm_proto_register_req_t *m,
                                  lm_error_t *err);
bool lm_proto_register_resp_encode(const lm_proto_register_resp_t *m, lm_strbuf_t *out,
                                   lm_error_t *err);
bool lm_proto_register_resp_decode(const char *buf, size_t len, lm_proto_register_resp_t *m,
                                   lm_error_t *err);
void lm_proto_register_resp_clear(lm_proto_register_resp_t *m); /* wipes agent_secret */
bool lm_proto_heartbeat_encode(const lm_proto_heartbeat_t *m, lm_strbuf_t *out, lm_error_t *err);
bool lm_proto_heartbeat_decode(const char *buf, size_t len, lm_proto_heartbeat_t *m,
                               lm_error_t *err);
bool lm_proto_assignments_encode(const lm_proto_assignments_t *m, lm_strbuf_t *out,
                                 lm_error_t *err);
bool lm_proto_assignments_decode(const char *buf, size_t len, lm_proto_assignments_t *m,
                                 lm_error_t *err);
void lm_proto_assignments_cleanup(lm_proto_assignments_t *m); /* also wipes the passwords */
bool lm_proto_status_encode(const lm_proto_status_t *m, lm_strbuf_t *out, lm_error_t *err);
bool lm_proto_status_decode(const char *buf, size_t len, lm_proto_status_t *m, lm_error_t *err);
void lm_proto_status_cleanup(lm_proto_status_t *m);

/* A verification section as one JSON object (the status report's "verification"; the
 * control plane stores and shows the same object): written into w, or decoded from buf
 * with the status decoder's rules (clipped to the caps; a wrong type or state refused). */
void lm_proto_verification_w(lm_json_writer_t *w, const lm_proto_verification_t *v);
bool lm_proto_verification_decode(const char *buf, size_t len, lm_proto_verification_t *v,
                                  lm_error_t *err);
void lm_proto_verification_cleanup(lm_proto_verification_t *v);
/* One shard as a JSON object (the report's "shards" item); with host, "migrationHost" too
 * (the control plane stores the item and shows it with the host that runs the shard). */
void lm_proto_shard_w(lm_json_writer_t *w, const lm_proto_shard_t *s, const char *host);
/* The "shards" array of a JSON object (buf: the coordinator's status members, or a
 * report) into m->shards with the status decoder's rules (clipped to the caps; an item
 * that cannot be read refuses the section: false, err says why, m->shards empty). An
 * absent or null "shards" is none. */
bool lm_proto_shards_decode(const char *buf, size_t len, lm_proto_status_t *m, lm_error_t *err);
/* s into buf[size], cut before a UTF-8 character that does not fit; true when it was cut. */
bool lm_proto_clip_text(const char *s, char *buf, size_t size);

const char *lm_proto_job_kind_name(lm_proto_job_kind_t k);
const char *lm_proto_cmd_kind_name(lm_proto_cmd_kind_t k);
const char *lm_proto_check_result_name(lm_proto_check_result_t r);

#endif
