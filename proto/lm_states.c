/* lm_states: see lm_states.h. */
#include "lm_states.h"

#include <stddef.h>
#include <string.h>

static const char *const phase_names[] = {
    "NEW", "VALIDATING", "COPYING", "BUILDING_INDEXES", "STREAMING", "CUTTING_OVER", "COMPLETE",
};
const char *const lm_agent_state_names[] = {
    "RUNNING", "COMPLETE", "FAILED", "CANCELLED", "EXPIRED", NULL,
};
static const char *const status_names[] = {
    "NEW", "WORKING", "FAILED", "COMPLETE", "EXPIRED", "CANCELLED",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *name_of(const char *const *names, size_t n, int v)
{
    return v >= 0 && (size_t)v < n ? names[v] : "?";
}

static bool parse(const char *const *names, size_t n, const char *name, int *out)
{
    for (size_t i = 0; name && i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            *out = (int)i;
            return true;
        }
    }
    return false;
}

const char *lm_phase_name(lm_phase_t p)
{
    return name_of(phase_names, COUNT(phase_names), (int)p);
}

bool lm_phase_parse(const char *name, lm_phase_t *out)
{
    int v;
    if (!parse(phase_names, COUNT(phase_names), name, &v))
        return false;
    *out = (lm_phase_t)v;
    return true;
}

const char *lm_agent_state_name(lm_agent_state_t s)
{
    return name_of(lm_agent_state_names, COUNT(lm_agent_state_names) - 1, (int)s);
}

bool lm_agent_state_parse(const char *name, lm_agent_state_t *out)
{
    int v;
    if (!parse(lm_agent_state_names, COUNT(lm_agent_state_names) - 1, name, &v))
        return false;
    *out = (lm_agent_state_t)v;
    return true;
}

const char *lm_job_status_name(lm_job_status_t s)
{
    return name_of(status_names, COUNT(status_names), (int)s);
}

bool lm_job_status_parse(const char *name, lm_job_status_t *out)
{
    int v;
    if (!parse(status_names, COUNT(status_names), name, &v))
        return false;
    *out = (lm_job_status_t)v;
    return true;
}

bool lm_job_status_terminal(lm_job_status_t s)
{
    return s == LM_STATUS_FAILED || s == LM_STATUS_COMPLETE || s == LM_STATUS_EXPIRED ||
           s == LM_STATUS_CANCELLED;
}

lm_job_status_t lm_job_status_of_agent(lm_agent_state_t s)
{
    switch (s) {
    case LM_AGENT_RUNNING: return LM_STATUS_WORKING;
    case LM_AGENT_COMPLETE: return LM_STATUS_COMPLETE;
    case LM_AGENT_FAILED: return LM_STATUS_FAILED;
    case LM_AGENT_CANCELLED: return LM_STATUS_CANCELLED;
    case LM_AGENT_EXPIRED: return LM_STATUS_EXPIRED;
    }
    return LM_STATUS_FAILED;
}
