/* livemig-controlplane: what the server (lm_cp_server.c) shares with its route handlers
 * (lm_cp_admin.c: the Atlas-shaped admin API; lm_cp_agent.c: the agent API). */
#ifndef LM_CP_HTTP_H
#define LM_CP_HTTP_H

#include <microhttpd.h>
#include <pthread.h>
#include <sqlite3.h>

#include "lm_cp.h"
#include "lm_cp_store.h"
#include "lm_json.h"
#include "lm_time.h"

struct lm_cp {
    const lm_cp_config_t *cfg;
    struct MHD_Daemon *d;
    char *cert, *key;
    char ca_pin[65];
    uint8_t secrets_key[32];
    sqlite3 *db;
    pthread_mutex_t mu; /* the database and everything below */
    pthread_cond_t changed;
    int port;
    char public_url[300]; /* what link-tokens carry */
};

/* One request as it arrives: its body, and what it is being answered with. */
typedef struct {
    lm_strbuf_t body;
    bool too_large;
} req_t;

/* What a handler answers. */
typedef struct {
    unsigned status;
    lm_strbuf_t body;
} resp_t;

/* The caller, once authenticated. */
typedef struct {
    char key_id[80];
    char org[80];
    bool owner;
} caller_t;

/* The Atlas error shape {error, errorCode, detail, reason} into r; returns false. */
bool cp_fail(resp_t *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Closes nothing: w holds one complete JSON value; it becomes r's body with status. */
bool cp_answer(resp_t *r, unsigned status, lm_json_writer_t *w);
void cp_w_kv(lm_json_writer_t *w, const char *k, const char *v);
/* The request body as a JSON object, or NULL with a 400 in r. */
lm_json_val_t *cp_body_json(const req_t *q, resp_t *r);
/* A field error (from the lm_json getters) as a 400. */
bool cp_bad_field(resp_t *r, const lm_error_t *err);
/* Admin callers: an API key by HTTP Basic auth; its role; its organization. */
bool cp_auth_admin(lm_cp_t *cp, struct MHD_Connection *c, caller_t *who, resp_t *r);
bool cp_need_owner(const caller_t *who, resp_t *r);
bool cp_own_org(const caller_t *who, const char *org, resp_t *r);
bool cp_own_group(lm_cp_t *cp, const caller_t *who, const char *group, resp_t *r);
/* Agents: a link-token credential (Bearer tokenId:secret) from an allowed address. */
bool cp_auth_agent(lm_cp_t *cp, struct MHD_Connection *c, char *org, char *token, resp_t *r);

#define MAX_PARTS 12
typedef struct {
    char *part[MAX_PARTS];
    int n;
    char buf[1024];
} path_t;

/* p matches pattern ("api/atlas/v2/orgs/ * /x", * = any one part). */
bool cp_match(const path_t *p, const char *pattern);
/* An id or name of 1..64 characters from [A-Za-z0-9_.-]. */
bool cp_valid_id(const char *s);

void cp_admin_route(lm_cp_t *cp, struct MHD_Connection *c, const char *method, const path_t *p,
                    const req_t *q, resp_t *r);
void cp_agent_route(lm_cp_t *cp, struct MHD_Connection *c, const char *method, const path_t *p,
                    const req_t *q, resp_t *r);

#endif
