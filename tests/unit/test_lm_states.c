/* lm_states: one name table for phases, agent states and control-plane statuses. */
#include <criterion/criterion.h>
#include <string.h>

#include "lm_states.h"

Test(states, phases_round_trip_in_the_design_order)
{
    const char *want[] = {"NEW",       "VALIDATING",   "COPYING", "BUILDING_INDEXES",
                          "STREAMING", "CUTTING_OVER", "COMPLETE"};
    for (int i = 0; i < 7; i++) {
        lm_phase_t p = LM_PHASE_NEW;
        cr_assert_str_eq(lm_phase_name((lm_phase_t)i), want[i]);
        cr_assert(lm_phase_parse(want[i], &p));
        cr_assert_eq(p, (lm_phase_t)i);
    }
    lm_phase_t p = LM_PHASE_COPYING;
    cr_assert_not(lm_phase_parse("streaming", &p), "names are exact");
    cr_assert_not(lm_phase_parse("", &p));
    cr_assert_not(lm_phase_parse(NULL, &p));
    cr_assert_eq(p, LM_PHASE_COPYING, "a refused name leaves the output alone");
    cr_assert_str_eq(lm_phase_name((lm_phase_t)99), "?");
}

Test(states, agent_states_and_the_protocol_list_agree)
{
    int n = 0;
    for (; lm_agent_state_names[n]; n++) {
        lm_agent_state_t s;
        cr_assert(lm_agent_state_parse(lm_agent_state_names[n], &s));
        cr_assert_eq((int)s, n);
        cr_assert_str_eq(lm_agent_state_name(s), lm_agent_state_names[n]);
    }
    cr_assert_eq(n, 5);
    cr_assert_str_eq(lm_agent_state_name(LM_AGENT_RUNNING), "RUNNING");
    cr_assert_str_eq(lm_agent_state_name(LM_AGENT_EXPIRED), "EXPIRED");
}

Test(states, control_plane_statuses)
{
    lm_job_status_t s;
    cr_assert(lm_job_status_parse("WORKING", &s));
    cr_assert_eq(s, LM_STATUS_WORKING);
    cr_assert_not(lm_job_status_terminal(LM_STATUS_NEW));
    cr_assert_not(lm_job_status_terminal(LM_STATUS_WORKING));
    cr_assert(lm_job_status_terminal(LM_STATUS_COMPLETE));
    cr_assert(lm_job_status_terminal(LM_STATUS_FAILED));
    cr_assert(lm_job_status_terminal(LM_STATUS_EXPIRED));
    cr_assert(lm_job_status_terminal(LM_STATUS_CANCELLED));
    cr_assert_eq(lm_job_status_of_agent(LM_AGENT_RUNNING), LM_STATUS_WORKING);
    cr_assert_eq(lm_job_status_of_agent(LM_AGENT_COMPLETE), LM_STATUS_COMPLETE);
    cr_assert_eq(lm_job_status_of_agent(LM_AGENT_EXPIRED), LM_STATUS_EXPIRED);
    cr_assert_eq(lm_job_status_of_agent(LM_AGENT_CANCELLED), LM_STATUS_CANCELLED);
    cr_assert_eq(lm_job_status_of_agent(LM_AGENT_FAILED), LM_STATUS_FAILED);
    /* every status name parses back to itself */
    for (int i = 0; i <= LM_STATUS_CANCELLED; i++) {
        cr_assert(lm_job_status_parse(lm_job_status_name((lm_job_status_t)i), &s));
        cr_assert_eq((int)s, i);
    }
    cr_assert_not(lm_job_status_parse("RUNNING", &s), "RUNNING is an agent state, not a status");
}
