/* lm_engine: the migration engine as a library object. One engine moves one partition
 * (a replica set; later one shard of a sharded cluster) from a source to a target and
 * reports through a status sink. It has no HTTP server, prints nothing to stdout and
 * installs no signal handler: the agent's presentation layer (lm_run) and the daemon
 * (lm_daemon) wrap it, and a coordinator can drive several in one process.
 *
 * Order of work, chosen so a crash at any point resumes without loss or a false refusal:
 *   1. prepare: connect (or take the caller's pools); the job's identity (the checkpoint
 *      key given, else <state_dir>/job.json); the checkpoint on the target (lm_meta); a new
 *      job pins the source's newest optime, reads the catalog, refuses (or with
 *      drop_target drops) namespaces the target holds, THEN writes the job document,
 *      creates collections with their options and saves each collection's plan;
 *   2. copy every range not yet recorded as done (lm_copy), recording each as it ends;
 *   3. build indexes, create views;
 *   4. stream changes until the cutover gate opens and the stream drains (lm_stream), or
 *      for a copy-only job mark the job COMPLETE.
 *
 * Threads: lm_engine_run (or the phase calls) run on the caller's thread; the copy and the
 * stream start their own workers and join them before they return. The status sink is
 * shared with them (its own rules, lm_status.h). The stop handle and the gate may be set
 * from any thread. */
#ifndef LM_ENGINE_H
#define LM_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>

#include <mongoc/mongoc.h>

#include "lm_error.h"
#include "lm_job.h"
#include "lm_status.h"

/* Exit codes of `livemig-agent migrate`. */
enum {
    LM_EXIT_OK = 0,
    LM_EXIT_FAILED = 1,
    LM_EXIT_USAGE = 2,
    LM_EXIT_STOPPED = 3,   /* a signal stopped it; run again to resume */
    LM_EXIT_CANCELLED = 4, /* cancelled through the status API */
    /* migrate: the migration is COMPLETE (cut over) but its verification found differences
     * or could not finish; verify: never (it exits 1 on a difference) */
    LM_EXIT_VERIFY_FAILED = 5,
};

typedef enum {
    LM_ENGINE_COMPLETE = 0,     /* copied (copy-only) or cut over */
    LM_ENGINE_ALREADY_COMPLETE, /* an earlier run completed this job; nothing done */
    LM_ENGINE_FAILED,           /* lm_engine_error says why */
    LM_ENGINE_STOPPED,          /* the stop handle: checkpointed, run again to resume */
    LM_ENGINE_CANCELLED,        /* status->cancel: syncing stopped, the target keeps its data */
} lm_engine_outcome_t;

typedef struct lm_engine lm_engine_t;

typedef struct {
    const lm_job_t *job;     /* options, passwords read (lm_job_finish); not owned, must outlive */
    lm_status_t *status;     /* the status sink: initialised, read and cleaned up by the caller */
    const atomic_bool *stop; /* set to stop with a checkpoint (signals, daemon shutdown) */
    /* Connections the caller owns and shares (several engines, one deployment): NULL opens
     * the engine's own from job->source / job->target. */
    mongoc_client_pool_t *source, *target;
    /* The key of this engine's checkpoint on the target (several engines may checkpoint on
     * one target under distinct keys). NULL: the job's identity in <state_dir>/job.json
     * (created with job->job_id, or a random id). */
    const char *checkpoint_key;
    /* The cutover gate (NULL: status->cutover). Called from the stream's threads (its
     * monitor once a tick, 200 ms, and its reader when the cursor idles) until it returns
     * true once; the answer is then kept. */
    bool (*cutover_gate)(void *ud);
    void *gate_ud;
    /* A new copy accepts a namespace to copy that exists but is empty on the target (made by
     * another agent's sharded metadata step: lm_coord's follower); other ones still refuse. */
    bool existing_empty_ok;
} lm_engine_opts_t;

/* What a finished (or stopped) engine did, for summaries and reports. */
typedef struct {
    char job_id[64];
    char source[256], target[256]; /* host lists, no credentials */
    bool streamed;                 /* it replayed changes (not copy-only) */
    int indexes_refused;
    int options_missing;
} lm_engine_summary_t;

/* Copies opts (the pointers in it must outlive the engine). Connects nothing yet. NULL only
 * when out of memory. */
lm_engine_t *lm_engine_new(const lm_engine_opts_t *opts);

/* All phases in order, with the status's state set at the end. Returns the outcome. */
lm_engine_outcome_t lm_engine_run(lm_engine_t *e);

/* The phases one by one (a coordinator's use). Each returns false on failure or stop,
 * lm_engine_error then says which (code LM_ERR_CANCELLED for a stop or cancel). After
 * prepare, lm_engine_resumes_streaming says the copy was finished by an earlier run (call
 * stream next) and lm_engine_already_complete says there is nothing left to do. */
bool lm_engine_prepare(lm_engine_t *e);
bool lm_engine_resumes_streaming(const lm_engine_t *e);
bool lm_engine_already_complete(const lm_engine_t *e);
bool lm_engine_copy(lm_engine_t *e);
bool lm_engine_build_indexes(lm_engine_t *e);
/* Copy-only jobs: records the job COMPLETE on the target. */
bool lm_engine_finish_copy(lm_engine_t *e);
bool lm_engine_stream(lm_engine_t *e);

const lm_error_t *lm_engine_error(const lm_engine_t *e);
void lm_engine_summary(const lm_engine_t *e, lm_engine_summary_t *out);

/* Closes what the engine opened. NULL is fine. */
void lm_engine_destroy(lm_engine_t *e);

/* The exit code of `livemig-agent migrate` for an outcome. */
int lm_engine_exit_code(lm_engine_outcome_t outcome);

#endif
