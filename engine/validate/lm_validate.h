/* lm_validate: the checks before a live migration starts. Each yields PASS, WARN, FAIL or
 * INFO with a message that says what to do. Run by the agent daemon for a control-plane
 * validation job; every check runs even when an earlier one failed, except those that need
 * a connection the earlier ones could not make (they say so). Nothing is written to either
 * deployment. */
#ifndef LM_VALIDATE_H
#define LM_VALIDATE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "lm_job.h"
#include "lm_proto.h"

typedef struct {
    lm_proto_check_t *items;
    size_t n, cap;
} lm_checks_t;

/* Runs the checks for job (its endpoints, capture mode, filters, drop_target);
 * host_state_dir is the migration host's state directory (its free space is checked).
 * Results go to out (zeroed by the caller; lm_checks_cleanup frees them). */
void lm_validate(const lm_job_t *job, const char *host_state_dir, lm_checks_t *out);

/* Appends one result (the message is printf-style). */
void lm_checks_add(lm_checks_t *c, const char *name, lm_proto_check_result_t result,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

bool lm_checks_failed(const lm_checks_t *c);
void lm_checks_cleanup(lm_checks_t *c);

#endif
