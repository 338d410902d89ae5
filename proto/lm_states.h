/* lm_states: the one name table for a job's phase, the agent's reported state and the
 * control plane's status, shared by the engine, the daemon, the protocol, the control
 * plane (its SQL stores these names) and the CLI. A decision compares enums, never text:
 * parse a name once where it enters (a message, a database row), then use the enum.
 *
 *   phase (engine, DESIGN.md):  NEW VALIDATING COPYING BUILDING_INDEXES STREAMING
 *                               CUTTING_OVER COMPLETE
 *   agent state (protocol):     RUNNING COMPLETE FAILED CANCELLED EXPIRED
 *   status (control plane, as Atlas): NEW WORKING FAILED COMPLETE EXPIRED CANCELLED */
#ifndef LM_STATES_H
#define LM_STATES_H

#include <stdbool.h>

typedef enum {
    LM_PHASE_NEW = 0,
    LM_PHASE_VALIDATING,
    LM_PHASE_COPYING,
    LM_PHASE_BUILDING_INDEXES,
    LM_PHASE_STREAMING,
    LM_PHASE_CUTTING_OVER,
    LM_PHASE_COMPLETE,
} lm_phase_t;

typedef enum {
    LM_AGENT_RUNNING = 0,
    LM_AGENT_COMPLETE,
    LM_AGENT_FAILED,
    LM_AGENT_CANCELLED,
    LM_AGENT_EXPIRED,
} lm_agent_state_t;

typedef enum {
    LM_STATUS_NEW = 0,
    LM_STATUS_WORKING,
    LM_STATUS_FAILED,
    LM_STATUS_COMPLETE,
    LM_STATUS_EXPIRED,
    LM_STATUS_CANCELLED,
} lm_job_status_t;

const char *lm_phase_name(lm_phase_t p);
/* false for a name that is not a phase (*out unchanged) */
bool lm_phase_parse(const char *name, lm_phase_t *out);

/* The names in enum order, NULL-terminated (the protocol decoder's list). */
extern const char *const lm_agent_state_names[];
const char *lm_agent_state_name(lm_agent_state_t s);
bool lm_agent_state_parse(const char *name, lm_agent_state_t *out);

const char *lm_job_status_name(lm_job_status_t s);
bool lm_job_status_parse(const char *name, lm_job_status_t *out);
/* FAILED, COMPLETE, EXPIRED, CANCELLED: nothing changes a job after that. */
bool lm_job_status_terminal(lm_job_status_t s);
/* The control plane's status for what an agent reports (RUNNING is WORKING). */
lm_job_status_t lm_job_status_of_agent(lm_agent_state_t s);

#endif
