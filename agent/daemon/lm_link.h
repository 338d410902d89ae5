/* lm_link: linking this agent to a control plane with a link-token, and the identity it
 * keeps (state_dir/identity.json, mode 0600, written atomically). The link-token only
 * enrolls: registering gives this agent a credential of its own (agent id + a 256-bit
 * secret, bound to its host name), which the identity keeps and every later call sends.
 * The identity does not keep the link-token's secret. */
#ifndef LM_LINK_H
#define LM_LINK_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lm_error.h"
#include "lm_proto.h"

typedef struct {
    char url[1024];
    char org_id[65];
    char token_id[65];     /* the link-token that enrolled it (not its secret) */
    char agent_secret[65]; /* this agent's own credential: never logged */
    char ca_pin[65];
    char agent_id[80];
    char hostname[65];
    int64_t heartbeat_seconds, poll_seconds;
} lm_identity_t;

typedef struct {
    const char *token; /* the link-token text (a token file's contents) */
    size_t token_len;
    const char *ca_file;   /* the control plane's CA; its SHA-256 must be the token's pin */
    const char *state_dir; /* where identity.json goes */
    const char *hostname;  /* NULL: this machine's */
    const char *url;       /* NULL: the token's; else the control plane's URL to use instead */
    bool relink;           /* allow linking to another organization than the stored one */
} lm_link_opts_t;

/* Decodes and checks the token, checks ca_file against its pin, registers with the
 * control plane over TLS verified by ca_file, and stores the identity. Errors say what to
 * do (malformed token, wrong CA, revoked token, address not on the access list, ...). */
bool lm_link(const lm_link_opts_t *o, lm_identity_t *id, lm_error_t *err);

/* The CA file an identity's calls go out with must be there and be the pinned CA (the
 * daemon checks it at every start and reload: a CA file changed since linking is refused
 * with a message that says so). */
bool lm_link_check_ca(const char *ca_file, const lm_identity_t *id, lm_error_t *err);

/* Reads state_dir/identity.json (refused when others can read it). An identity written by an
 * older livemig-agent, without a credential of the agent's own, fails with LM_ERR_AUTH and
 * a message saying how to relink. */
bool lm_identity_load(const char *state_dir, lm_identity_t *id, lm_error_t *err);

/* Wipes the secret. */
void lm_identity_clear(lm_identity_t *id);

/* The agent API as this identity (its own credential; TLS verified by ca_file). A deleted
 * link-token fails with LM_ERR_REVOKED. lm_link_poll waits up to wait_seconds for work and
 * acknowledges the commands up to seq `ack` (the highest seq received so far; unacknowledged
 * commands come again, so acting on one must be idempotent); clean *m up with
 * lm_proto_assignments_cleanup. *cancel (may be NULL) set by a signal ends a call early. */
bool lm_link_heartbeat(const lm_identity_t *id, const char *ca_file, const atomic_bool *cancel,
                       const lm_proto_heartbeat_t *hb, lm_error_t *err);
bool lm_link_poll(const lm_identity_t *id, const char *ca_file, const atomic_bool *cancel,
                  int wait_seconds, int64_t ack, lm_proto_assignments_t *m, lm_error_t *err);
bool lm_link_report(const lm_identity_t *id, const char *ca_file, const atomic_bool *cancel,
                    const lm_proto_status_t *st, lm_error_t *err);
/* How many calls since the last time asked were answered only after being sent again (the
 * control plane did not answer, then did: an outage the retries absorbed); resets it. */
unsigned lm_link_take_retried(void);

#endif
