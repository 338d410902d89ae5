/* lm_run: the agent's presentation of one engine run, for `livemig-agent migrate` and the
 * daemon's migration jobs. It wraps the engine library (lm_engine) with what a person or
 * a service manager sees: the status HTTP API (job->status_addr, "0" for none), the
 * progress display (lm_progress), and the summary printed at the end. The engine itself
 * prints nothing and serves nothing. */
#ifndef LM_RUN_H
#define LM_RUN_H

#include <stdatomic.h>

#include "lm_job.h"
#include "lm_status.h"
#include "lm_verify.h"

/* Runs the job to its end with the caller's status (lm_status_init'ed; the caller cleans it
 * up and may set its cancel and cutover flags from other threads). *stop is set by signal
 * handlers or the daemon. Returns an exit code (LM_EXIT_*, lm_engine.h). */
int lm_run_job(const lm_job_t *job, lm_status_t *st, const atomic_bool *stop);

/* lm_run_job, but after a COMPLETE live migration (cut over, not copy-only) `after(ud)`
 * runs on the caller's thread, while the status API is still up, instead of the built-in
 * verification (job->verify): the daemon verifies there and reports to the control plane. */
int lm_run_job_then(const lm_job_t *job, lm_status_t *st, const atomic_bool *stop,
                    void (*after)(void *ud), void *ud);

/* One verification (lm_verify) with the job's verify_* options, its progress logged every
 * 10 s and kept in st (may be NULL). Returns lm_verify_run's answer; *result is always to
 * be cleaned up (lm_verify_result_cleanup). */
bool lm_run_verify(const lm_job_t *job, lm_status_t *st, const atomic_bool *stop,
                   lm_verify_result_t *result, lm_error_t *err);
/* The same, resumable: its progress kept in state_dir (NULL: not kept); restart removes
 * an earlier run's progress first (docs/verification.md, Resuming). */
bool lm_run_verify_resumable(const lm_job_t *job, lm_status_t *st, const atomic_bool *stop,
                             const char *state_dir, bool restart, lm_verify_result_t *result,
                             lm_error_t *err);

#endif
