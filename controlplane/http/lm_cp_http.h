/* livemig-controlplane: what the server (lm_cp_server.c) shares with its route handlers
 * (lm_cp_admin.c: the Atlas-shaped admin API; lm_cp_agent.c: the agent API). The server
 * routes each request with the route tables below (lm_cp_routes.h), checks the route's
 * role, then calls its handler with cp->mu held. */
#ifndef LM_CP_HTTP_H
#define LM_CP_HTTP_H

#include <microhttpd.h>
#include <pthread.h>
#include <sqlite3.h>

#include "lm_cp.h"
#include "lm_cp_routes.h"
#include "lm_cp_session.h"
#include "lm_cp_store.h"
#include "lm_json.h"
#include "lm_time.h"

struct lm_cp {
    const lm_cp_config_t *cfg;
    struct MHD_Daemon *d;
    char ca_pin[65]; /* of tls.ca_file; the certificate and key are lm_cp_tls.c's */
    uint8_t secrets_key[32];
    sqlite3 *db;
    pthread_mutex_t mu; /* the database and everything below */
    pthread_cond_t changed;
    int64_t waiting_polls; /* agent polls waiting on `changed` (max_waiting_polls) */
    int port;
    char public_url[300];       /* what link-tokens carry */
    lm_cp_sessions_t *sessions; /* the web console's sign-ins (lm_cp_session.h), under mu */
};

/* One request as it arrives: its body, and what it is being answered with. */
typedef struct {
    lm_strbuf_t body;
    bool too_large;
} req_t;

/* What a handler answers. The fields after body are the web console's (lm_cp_console.c);
 * zero means a JSON answer that no cache keeps. */
typedef struct {
    unsigned status;
    lm_strbuf_t body;
    const char *content_type;   /* NULL: application/json */
    const unsigned char *asset; /* a console asset compiled in: sent instead of body */
    size_t asset_len;
    const char *etag;     /* with asset */
    char set_cookie[300]; /* "" for none */
} resp_t;

/* The caller, once authenticated: by HTTP Basic auth, or by a console session's cookie
 * (session: then every call that may change state carried the session's CSRF token). */
typedef struct {
    char key_id[80];
    char org[80];
    bool owner;
    bool session;
} caller_t;

/* An agent, once authenticated: its address, its link-token's organization and id; for
 * LM_CP_ROLE_LINKED_AGENT routes also its id and host name, from its own credential. */
typedef struct {
    char org[80], token[80], agent_id[80], host[80];
    char ip[64];
} agent_t;

/* One routed request, on the stack of the connection's thread: nothing in it is shared. */
struct cp_call {
    lm_cp_t *cp;
    struct MHD_Connection *c;
    const char *method;
    const req_t *q;
    resp_t *r;
    lm_cp_params_t params;
    caller_t who;  /* admin routes */
    agent_t agent; /* agent routes */
};

/* The path parameter `name` of the call's route ("" when it has none). */
const char *cp_arg(const cp_call_t *k, const char *name);

/* The Atlas error shape {error, errorCode, detail, reason} into r; returns false. */
bool cp_fail(resp_t *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Closes nothing: w holds one complete JSON value; it becomes r's body with status. */
bool cp_answer(resp_t *r, unsigned status, lm_json_writer_t *w);
/* The request body as a JSON object, or NULL with a 400 in r. */
lm_json_val_t *cp_body_json(const req_t *q, resp_t *r);
/* A field error (from the lm_json getters) as a 400. */
bool cp_bad_field(resp_t *r, const lm_error_t *err);
/* Admin callers: an API key by HTTP Basic auth, or else the web console's session cookie
 * (then a method other than GET or HEAD needs the session's X-CSRF-Token header: 403
 * without); its role; its organization. */
bool cp_auth_admin(lm_cp_t *cp, struct MHD_Connection *c, const char *method, caller_t *who,
                   resp_t *r);
/* Whether API key `id` with secret `secret` is live: fills who (not who->session); else a
 * 401 in r. Records the key's use. */
bool cp_check_key(lm_cp_t *cp, const char *id, const char *secret, caller_t *who, resp_t *r);
/* Whether method may change state (anything but GET and HEAD). */
bool cp_changes_state(const char *method);
bool cp_need_owner(const caller_t *who, resp_t *r);
bool cp_own_org(const caller_t *who, const char *org, resp_t *r);
bool cp_own_group(lm_cp_t *cp, const caller_t *who, const char *group, resp_t *r);
/* Agents enrolling: a link-token (Bearer tokenId:secret), live and unexpired, from an
 * address on its access list. */
bool cp_auth_enroll(lm_cp_t *cp, struct MHD_Connection *c, agent_t *a, resp_t *r);
/* Enrolled agents: their own credential (Bearer agentId:agentSecret), whose link-token is
 * not deleted, from an address on its access list; a link-token is refused (401
 * AGENT_CREDENTIAL_REQUIRED). */
bool cp_auth_agent(lm_cp_t *cp, struct MHD_Connection *c, agent_t *a, resp_t *r);

/* An agent poll about to wait (cp->mu held): takes one of max_waiting_polls, or answers 503
 * TOO_MANY_POLLS into r and returns false; cp_poll_done gives the place back. The budget
 * keeps waiting polls from taking the connections admin requests need. */
bool cp_poll_wait(lm_cp_t *cp, resp_t *r);
void cp_poll_done(lm_cp_t *cp);

/* ---- a live migration spread over several migration hosts (lm_cp_spread.c) ----
 * With cp->mu held. docs/agent-daemon.md says how it works. */
#include "lm_proto.h"
/* The lead part of new migration id, on host: it reports the source's shards, then gets
 * its own with an assign-shards command once the spread is decided. */
bool cp_spread_start(lm_cp_t *cp, const char *id, const char *host, lm_error_t *err);
/* What an agent needs to run part id of migration parent (role, shards: its columns). */
bool cp_spread_part_job(lm_cp_t *cp, const char *parent, const char *role, const char *shards,
                        lm_proto_job_t *j, lm_error_t *err);
/* A part's report was stored: a lead that reported the source's shards gets them spread;
 * the migration's row follows its parts. */
void cp_spread_after_report(lm_cp_t *cp, const char *parent, const lm_proto_status_t *m,
                            const agent_t *a);
/* The migration's row from its parts (status, readiness, lag, window, verification). */
void cp_spread_update(lm_cp_t *cp, const char *parent);
/* A command (cutover, cancel, extend, expire) for live migration id: kept on the migration,
 * and for one spread over several hosts sent to its parts (a cutover to its followers
 * first: the lead's goes once they are COMPLETE, cp_spread_tick). */
bool cp_spread_command(lm_cp_t *cp, const char *id, const char *kind, int64_t deadline);
/* A validation listing several hosts: one per host under it (same spec). */
bool cp_spread_validations(lm_cp_t *cp, const char *id, const char *const *hosts, size_t n,
                           lm_error_t *err);
/* The validation's row from its hosts' (checks merged, each message naming its host;
 * FAILED when one host's is, COMPLETE when all are). */
void cp_spread_validation_update(lm_cp_t *cp, const char *parent);
/* The agent agent_id on host was found lost: its parts are handed to other listed hosts. */
void cp_spread_host_lost(lm_cp_t *cp, const char *agent_id, const char *host, int64_t now);
/* Each second: the lead's cutover once its followers are COMPLETE. */
void cp_spread_tick(lm_cp_t *cp, int64_t now);

/* The route tables (ending with a NULL method) of the admin API (lm_cp_admin.c) and the
 * agent API (lm_cp_agent.c). */
extern const lm_cp_route_t lm_cp_admin_routes[];
extern const lm_cp_route_t lm_cp_agent_routes[];

#endif
