/* lm_engine: runs one migration job (part 1: pin, catalog, copy, indexes) and reports
 * through an lm_status_t.
 *
 * Order of work, chosen so a crash at any point resumes without loss or a false refusal:
 *   1. identity: the state dir holds the job id (job.json, 0600); the checkpoint itself
 *      lives on the target (lm_meta);
 *   2. new job: pin the source's latest optime, read the catalog, refuse (or with
 *      drop_target drop) namespaces that already exist on the target, THEN write the job
 *      document, create collections with their options, and save each collection's plan;
 *   3. copy every range not yet recorded as done (lm_copy), recording each as it ends;
 *   4. build indexes, create views, mark the job COMPLETE. */
#ifndef LM_ENGINE_H
#define LM_ENGINE_H

#include <signal.h>
#include <stdatomic.h>

#include "lm_job.h"
#include "lm_status.h"

/* Exit codes of `livemig-agent migrate`. */
enum {
    LM_EXIT_OK = 0,
    LM_EXIT_FAILED = 1,
    LM_EXIT_USAGE = 2,
    LM_EXIT_STOPPED = 3,   /* a signal stopped it; run again to resume */
    LM_EXIT_CANCELLED = 4, /* cancelled through the status API */
};

/* Runs the job to its end; *stop is set by signal handlers. Returns an exit code. */
int lm_engine_run(const lm_job_t *job, atomic_bool *stop);

/* The same with the caller's status (lm_status_init'ed; the caller cleans it up): the
 * agent daemon reads it for its reports and sets its cancel and cutover flags. */
int lm_engine_run_status(const lm_job_t *job, lm_status_t *st, atomic_bool *stop);

#endif
