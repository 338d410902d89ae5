/* The control plane's router (lm_cp_routes.c): a table of {method, pattern, role, handler}
 * and a pure matcher that captures path parameters into a per-request struct. No I/O, no
 * shared state: safe to call from every connection thread at once. */
#ifndef LM_CP_ROUTES_H
#define LM_CP_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

/* A path parameter is an id or name: 1..64 characters from [A-Za-z0-9_.-]. */
#define LM_CP_PARAM_MAX 64
#define LM_CP_PARAM_NAME_MAX 23
#define LM_CP_MAX_PARAMS 4
/* Longer request paths match nothing. */
#define LM_CP_PATH_MAX 1023

/* Who may call a route. Admin roles authenticate an API key (HTTP Basic); a {groupId} or
 * {orgId} in the pattern must then be the key's organization's. Agent roles authenticate a
 * Bearer credential from an address on the access list of the link-token involved: the
 * link-token itself only to enroll (register), the agent's own credential for the rest. */
typedef enum {
    LM_CP_ROLE_MEMBER,       /* any API key: Organization Member or Owner (reads) */
    LM_CP_ROLE_OWNER,        /* an Organization Owner API key (writes) */
    LM_CP_ROLE_ENROLL,       /* a live, unexpired link-token: enrolling an agent */
    LM_CP_ROLE_LINKED_AGENT, /* an enrolled agent's own credential (agentId:agentSecret) */
} lm_cp_role_t;

/* True for the roles of the admin API (API keys), false for the agent API's. */
bool lm_cp_role_is_admin(lm_cp_role_t role);
/* Whether an authenticated API key (owner or member) holds `role`. */
bool lm_cp_role_admits_key(lm_cp_role_t role, bool owner);

/* One request's path parameters, copied out of the path (the path may go away). */
typedef struct {
    size_t n;
    struct {
        char name[LM_CP_PARAM_NAME_MAX + 1];
        char value[LM_CP_PARAM_MAX + 1];
    } p[LM_CP_MAX_PARAMS];
} lm_cp_params_t;

/* An id or name of 1..64 characters from [A-Za-z0-9_.-]: what a parameter matches. */
bool lm_cp_valid_id(const char *s);

/* The value of parameter `name`, or NULL when the route has none of that name. */
const char *lm_cp_param(const lm_cp_params_t *params, const char *name);

/* What handles a request; defined by the server (lm_cp_http.h). */
typedef struct cp_call cp_call_t;
typedef bool (*lm_cp_handler_fn)(cp_call_t *call);

/* A route. pattern: "/"-separated literal segments and "{name}" parameters, e.g.
 * "/api/atlas/v2/groups/{groupId}/liveMigrations/{id}/cutover". A table ends with an
 * entry whose method is NULL. */
typedef struct {
    const char *method;
    const char *pattern;
    lm_cp_role_t role;
    lm_cp_handler_fn handler;
} lm_cp_route_t;

typedef enum {
    LM_CP_ROUTE_NOT_FOUND,    /* no pattern matches the path */
    LM_CP_ROUTE_WRONG_METHOD, /* a pattern matches, but not with this method */
    LM_CP_ROUTE_FOUND,
} lm_cp_match_t;

/* Finds the route of `method` and `path` (without the query string, percent-decoded or
 * not: a parameter only ever matches an id) in table. FOUND: *route is it and params holds
 * its parameters. WRONG_METHOD: *route and params are those of the first route whose
 * pattern matched. NOT_FOUND: *route is NULL and params is empty. Exact matches only: no
 * trailing slash, no empty segment. */
lm_cp_match_t lm_cp_route_match(const lm_cp_route_t *table, const char *method, const char *path,
                                const lm_cp_route_t **route, lm_cp_params_t *params);

/* The path to route for a request's URL path: the URL itself, less the extra leading
 * slashes a client makes when it joins a base URL ending in '/' ("https://cp/") and a path
 * ("/api/..."). Nothing else is forgiven. */
const char *lm_cp_route_path(const char *url);

/* Whether one pattern matches path, filling params (emptied first). */
bool lm_cp_pattern_match(const char *pattern, const char *path, lm_cp_params_t *params);

#endif
