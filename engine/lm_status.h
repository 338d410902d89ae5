/* lm_status: what a running job is doing, shared between the engine's threads, the status
 * API, the progress display and the final summary.
 *
 * Who owns what (the one rule for every field):
 *  - counters (atomic_*) are bumped by the copy's writers and the apply workers and read
 *    by anyone, lock-free; so are the flags cancel and cutover (set by the status API or
 *    the daemon, read by the engine);
 *  - every other field is written and read under mu, through the functions below (the
 *    engine sets job id, start optime, phase, state, collections, stream; the readers are
 *    lm_status_json / lm_status_metrics / lm_status_get_*), except colls[i]'s fixed parts
 *    (ns, is_view, ranges_total), set once before lm_status_set_collections publishes them. Renders
 * as JSON (GET /api/v1/status) and Prometheus text (GET /metrics). */
#ifndef LM_STATUS_H
#define LM_STATUS_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lm_config.h"
#include "lm_json.h"
#include "lm_ns.h"
#include "lm_states.h"
#include "lm_strbuf.h"

typedef enum {
    LM_STATE_RUNNING = 0,
    LM_STATE_COMPLETE,
    LM_STATE_FAILED,
    LM_STATE_CANCELLED,
    LM_STATE_STOPPED, /* interrupted by a signal; run again to resume */
} lm_state_t;

typedef enum {
    LM_COLL_PENDING = 0,
    LM_COLL_COPYING,
    LM_COLL_COPIED,
    LM_COLL_INDEXED,
    LM_COLL_FAILED,
} lm_coll_state_t;

typedef struct {
    char ns[LM_NS_MAX];
    bool is_view;
    atomic_llong est_docs; /* -1 while unknown (estimated alongside the copy) */
    int ranges_total;
    atomic_int ranges_done;
    atomic_int state; /* lm_coll_state_t */
    atomic_llong docs;
    atomic_llong bytes;
    atomic_llong dup_keys;
    bool resumed; /* finished by an earlier run */
} lm_coll_status_t;

#define LM_STATUS_MAX_MESSAGES 200

/* What the change stream reports (lm_stream fills it in once a second). */
typedef struct {
    bool active;
    char capture[16];              /* "oplog" or "changestream" */
    uint32_t applied_t, applied_i; /* every change up to here is on the target */
    int64_t applied_wall_ms;
    uint32_t source_t, source_i; /* the source's latest write */
    int64_t source_wall_ms;
    double lag_seconds; /* latest source write - last applied write; 0 when caught up */
    double estimated_cutover_seconds; /* a cutover now would take this long (lm_lag.h) */
    bool ready_for_cutover;
    double optime_gap_seconds; /* source latest optime - applied optime */
    double ops_per_second;
    double apply_latency_ms; /* queued -> written, averaged over the last second */
    int64_t cutover_requested_ms;
    uint32_t final_t, final_i; /* COMPLETE: writes after this were not applied */
} lm_stream_status_t;

/* A verification (lm_verify) of this job's namespaces: none yet, running, its outcome. */
typedef enum {
    LM_VERIFY_NONE = 0,
    LM_VERIFY_RUNNING,
    LM_VERIFY_PASSED,
    LM_VERIFY_FAILED, /* it ran to the end and found differences */
    LM_VERIFY_ERROR,  /* it could not run to the end (error says why) */
} lm_verify_state_t;

typedef struct {
    int64_t namespaces_total, namespaces_done;
    int64_t documents_total; /* the source's estimate; -1 unknown */
    int64_t documents_done;
    double eta_seconds; /* -1 unknown */
} lm_verify_progress_t;

#define LM_STATUS_MAX_DIFFERENCES 50

/* The fault history: what went wrong and recovered while the job ran (a server that became
 * unreachable and came back, a cursor reopened), the last LM_STATUS_MAX_EVENTS of them,
 * oldest first. Warnings and errors stay what they were (a message each, no time); an event
 * is a time, a kind and a message. */
#define LM_STATUS_MAX_EVENTS 50
#define LM_STATUS_EVENT_KIND_MAX 32
#define LM_STATUS_EVENT_MSG_MAX 512

typedef struct {
    int64_t at_ms; /* wall clock, ms since the epoch */
    char kind[LM_STATUS_EVENT_KIND_MAX];
    char message[LM_STATUS_EVENT_MSG_MAX];
} lm_status_event_t;

typedef struct {
    lm_verify_state_t state;
    lm_verify_progress_t progress;
    char error[512];
    lm_strlist_t differences; /* one line per failing namespace, _ids capped */
} lm_verify_status_t;

#define LM_STATUS_ASSIGNMENT_MAX 1024 /* the shards assigned to a lead, comma-separated */

typedef struct {
    pthread_mutex_t mu;
    char job_id[64];
    lm_state_t state;
    lm_phase_t phase;
    int64_t started_ms;
    int64_t finished_ms;
    uint32_t start_ts, start_inc; /* pinned source optime */
    lm_coll_status_t *colls;      /* set once by the engine, then only counters change */
    size_t n_colls;
    lm_strlist_t warnings;
    lm_strlist_t errors;
    atomic_llong docs, bytes, dup_keys;
    /* the copy's writers: active now (0 outside the copy), the most it may run, and
     * whether it chooses the number itself (lm_copy sets them) */
    atomic_int copy_writers_active, copy_writers_max;
    atomic_bool copy_writers_auto;
    atomic_bool cancel;  /* set by POST /api/v1/cancel */
    atomic_bool cutover; /* set by POST /api/v1/cutover */
    /* streaming: counters bumped by the apply workers */
    atomic_llong ops_applied, ops_refetched, ddl_applied, latency_sum_ms, latency_n;
    atomic_llong oplog_rereads; /* oplog ranges read again after the cursor skipped entries */
    /* the apply's batching (lm_batch.h): workers taking changes now and at most, how long
     * changes gather before a write, and the bulk writes sent (changes per write =
     * ops_applied / apply_batches) */
    atomic_int apply_workers_active, apply_workers_max;
    atomic_llong apply_linger_ms, apply_batches;
    lm_stream_status_t stream; /* under mu */
    lm_verify_status_t verify; /* under mu */
    /* the fault history (under mu): a ring, events_total ever recorded */
    lm_status_event_t events[LM_STATUS_MAX_EVENTS];
    uint64_t events_total;
    /* A sharded migration's hooks (lm_coord), set and cleared under mu, called under mu
     * with hook_ud; NULL for none. json_extra writes more members of the JSON object
     * ("shards", "balancer"); restart_shard asks for one failed shard's restart (POST
     * /api/v1/restart-shard): an HTTP status (202 accepted) and a message; metrics_extra
     * appends more Prometheus series (per shard) to /metrics. */
    void (*json_extra)(void *ud, lm_json_writer_t *w);
    void (*metrics_extra)(void *ud, lm_strbuf_t *out);
    int (*restart_shard)(void *ud, const char *name, char *msg, size_t msgsz);
    /* A lead waiting for its shards (lm_coord's await mode) sets assign_check while it waits:
     * it checks a comma-separated list of source shards (202, or 400 with why). An accepted
     * list waits in assignment until the coordinator takes it. Under mu. */
    int (*assign_check)(void *ud, const char *list, char *msg, size_t msgsz);
    char assignment[LM_STATUS_ASSIGNMENT_MAX];
    bool has_assignment;
    void *hook_ud;
} lm_status_t;

void lm_status_init(lm_status_t *st, const char *job_id);
void lm_status_cleanup(lm_status_t *st);

void lm_status_set_phase(lm_status_t *st, lm_phase_t phase);
void lm_status_set_job_id(lm_status_t *st, const char *job_id);
/* The pinned source optime the copy started from. */
void lm_status_set_start(lm_status_t *st, uint32_t t, uint32_t i);
void lm_status_get_start(lm_status_t *st, uint32_t *t, uint32_t *i);
lm_phase_t lm_status_get_phase(lm_status_t *st);
void lm_status_set_stream(lm_status_t *st, const lm_stream_status_t *s);
void lm_status_get_stream(lm_status_t *st, lm_stream_status_t *s);
void lm_status_set_state(lm_status_t *st, lm_state_t state);
/* Takes ownership of colls (freed by lm_status_cleanup). */
void lm_status_set_collections(lm_status_t *st, lm_coll_status_t *colls, size_t n);
lm_coll_status_t *lm_status_find(lm_status_t *st, const char *ns);

/* Estimated BSON bytes of a collection: its document count times the average size of the
 * documents copied from it so far (of all documents copied, before it starts); -1 while
 * that is unknown. */
int64_t lm_coll_est_bytes(lm_status_t *st, lm_coll_status_t *c);

/* Sums the collections' estimated documents and bytes; false while some collection is
 * not estimated yet (the sums then cover the known ones). */
bool lm_status_totals(lm_status_t *st, int64_t *est_docs, int64_t *est_bytes);

/* Records a warning or error (logged too), at most LM_STATUS_MAX_MESSAGES each. */
void lm_status_warn(lm_status_t *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lm_status_error(lm_status_t *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records an event of the fault history (kind: source_unreachable, source_back,
 * target_unreachable, target_back, cursor_reopened, ...) and logs its message as a warning.
 * Safe from any thread (libmongoc's monitor threads included). */
void lm_status_event(lm_status_t *st, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same, logged as information (an agent resuming a job is no fault). */
void lm_status_event_info(lm_status_t *st, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Records an event without logging it (the caller logged it once for many jobs). */
void lm_status_record_event(lm_status_t *st, const char *kind, const char *message);
/* Copies the last events (at most max, oldest first) to out; returns how many. */
size_t lm_status_get_events(lm_status_t *st, lm_status_event_t *out, size_t max);

/* The verification section: state and progress (p NULL keeps the last progress; a new
 * RUNNING verification forgets the previous differences), error for LM_VERIFY_ERROR. */
void lm_status_set_verify_progress(lm_status_t *st, lm_verify_state_t state,
                                   const lm_verify_progress_t *p, const char *error);
/* Adds one difference line (at most LM_STATUS_MAX_DIFFERENCES). */
void lm_status_verify_add_difference(lm_status_t *st, const char *line);
void lm_status_get_verify(lm_status_t *st, lm_verify_state_t *state, lm_verify_progress_t *p);
const char *lm_verify_state_name(lm_verify_state_t s);

const char *lm_state_name(lm_state_t s);
const char *lm_coll_state_name(lm_coll_state_t s);

/* The shards assigned to a lead that waits for them (the daemon's assign-shards command,
 * POST /api/v1/assign-shards): 202 when taken (a later one replaces one not taken yet), 409
 * when the job does not wait for an assignment, 400 for a bad list; msg says why. */
int lm_status_set_assignment(lm_status_t *st, const char *list, char *msg, size_t msgsz);
/* The coordinator: the assigned list into out (and forgotten), false while there is none. */
bool lm_status_take_assignment(lm_status_t *st, char *out, size_t outsz);

/* Appends the status as JSON / Prometheus text. */
void lm_status_json(lm_status_t *st, lm_strbuf_t *out);
void lm_status_metrics(lm_status_t *st, lm_strbuf_t *out);
/* Appends v as a Prometheus label value (backslash, quote and newline escaped). */
void lm_status_metrics_label(lm_strbuf_t *out, const char *v);

#endif
