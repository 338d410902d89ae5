/* lm_cp_routes: every route of the control plane's tables matches with its parameters and
 * its role, near-misses match nothing, and routing from many threads at once never mixes
 * up two requests' parameters (the per-request strtok the router replaced did). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_cp_http.h"
#include "lm_cp_routes.h"

/* Routes as the server does: the admin table, then the agent table. */
static lm_cp_match_t route(const char *method, const char *path, const lm_cp_route_t **rt,
                           lm_cp_params_t *params)
{
    lm_cp_match_t m = lm_cp_route_match(lm_cp_admin_routes, method, path, rt, params);
    if (m == LM_CP_ROUTE_NOT_FOUND)
        m = lm_cp_route_match(lm_cp_agent_routes, method, path, rt, params);
    return m;
}

typedef struct {
    const char *method, *path;
    const char *pattern;
    lm_cp_role_t role;
    const char *group, *org, *id; /* expected parameters, NULL = absent */
} want_t;

#define G "/api/atlas/v2/groups/{groupId}"
#define O "/api/atlas/v2/orgs/{orgId}"
#define OWNER LM_CP_ROLE_OWNER
#define MEMBER LM_CP_ROLE_MEMBER

/* Every route of controlplane/README.md with the role it documents. */
static const want_t every[] = {
    {"POST", "/api/atlas/v2/groups", "/api/atlas/v2/groups", OWNER, NULL, NULL, NULL},
    {"GET", "/api/atlas/v2/orgs/org1/groups", O "/groups", MEMBER, NULL, "org1", NULL},
    {"POST", "/api/atlas/v2/orgs/org-2/apiKeys", O "/apiKeys", OWNER, NULL, "org-2", NULL},
    {"GET", "/api/atlas/v2/orgs/org-2/apiKeys", O "/apiKeys", MEMBER, NULL, "org-2", NULL},
    {"DELETE", "/api/atlas/v2/orgs/org-2/apiKeys/k.1", O "/apiKeys/{id}", OWNER, NULL, "org-2",
     "k.1"},
    {"POST", "/api/atlas/v2/orgs/o.3/liveMigrations/linkTokens", O "/liveMigrations/linkTokens",
     OWNER, NULL, "o.3", NULL},
    {"DELETE", "/api/atlas/v2/orgs/o_4/liveMigrations/linkTokens", O "/liveMigrations/linkTokens",
     OWNER, NULL, "o_4", NULL},
    {"POST", "/api/atlas/v2/orgs/o6/liveMigrations/agents/mig-host-1/relink",
     O "/liveMigrations/agents/{hostname}/relink", OWNER, NULL, "o6", NULL},
    {"GET", "/api/atlas/v2/orgs/O5/liveMigrations/availableProjects",
     O "/liveMigrations/availableProjects", MEMBER, NULL, "O5", NULL},
    {"GET", "/api/atlas/v2/orgs/O7/liveMigrations/agents", O "/liveMigrations/agents", MEMBER, NULL,
     "O7", NULL},
    {"POST", "/api/atlas/v2/groups/g1/clusters", G "/clusters", OWNER, "g1", NULL, NULL},
    {"GET", "/api/atlas/v2/groups/g2/clusters", G "/clusters", MEMBER, "g2", NULL, NULL},
    {"POST", "/api/atlas/v2/groups/g3/liveMigrations/validate", G "/liveMigrations/validate", OWNER,
     "g3", NULL, NULL},
    {"GET", "/api/atlas/v2/groups/g4/liveMigrations/validate/v1", G "/liveMigrations/validate/{id}",
     MEMBER, "g4", NULL, "v1"},
    {"POST", "/api/atlas/v2/groups/g5/liveMigrations", G "/liveMigrations", OWNER, "g5", NULL,
     NULL},
    {"GET", "/api/atlas/v2/groups/g6/liveMigrations", G "/liveMigrations", MEMBER, "g6", NULL,
     NULL},
    {"GET", "/api/atlas/v2/groups/g7/liveMigrations/m1", G "/liveMigrations/{id}", MEMBER, "g7",
     NULL, "m1"},
    {"PUT", "/api/atlas/v2/groups/g8/liveMigrations/m2/cutover", G "/liveMigrations/{id}/cutover",
     OWNER, "g8", NULL, "m2"},
    {"POST", "/api/atlas/v2/groups/g9/liveMigrations/m3/cancel", G "/liveMigrations/{id}/cancel",
     OWNER, "g9", NULL, "m3"},
    {"POST", "/api/atlas/v2/groups/g10/liveMigrations/m4/extend", G "/liveMigrations/{id}/extend",
     OWNER, "g10", NULL, "m4"},
    {"POST", "/api/atlas/v2/groups/g12/liveMigrations/m6/verify", G "/liveMigrations/{id}/verify",
     OWNER, "g12", NULL, "m6"},
    {"GET", "/api/atlas/v2/groups/g11/liveMigrations/m5/progress",
     G "/liveMigrations/{id}/progress", MEMBER, "g11", NULL, "m5"},
    {"POST", "/api/atlas/v2/groups/g13/liveMigrations/m7/shards/src-shard1/restart",
     G "/liveMigrations/{id}/shards/{name}/restart", OWNER, "g13", NULL, "m7"},
    {"POST", "/api/agent/v1/register", "/api/agent/v1/register", LM_CP_ROLE_ENROLL, NULL, NULL,
     NULL},
    {"POST", "/api/agent/v1/heartbeat", "/api/agent/v1/heartbeat", LM_CP_ROLE_LINKED_AGENT, NULL,
     NULL, NULL},
    {"GET", "/api/agent/v1/assignments", "/api/agent/v1/assignments", LM_CP_ROLE_LINKED_AGENT, NULL,
     NULL, NULL},
    {"POST", "/api/agent/v1/status", "/api/agent/v1/status", LM_CP_ROLE_LINKED_AGENT, NULL, NULL,
     NULL},
};

static size_t table_len(const lm_cp_route_t *t)
{
    size_t n = 0;
    while (t[n].method)
        n++;
    return n;
}

static void expect_param(const lm_cp_params_t *p, const char *name, const char *want,
                         const char *path)
{
    const char *got = lm_cp_param(p, name);
    if (!want)
        cr_assert_null(got, "%s: no %s expected, got %s", path, name, got);
    else {
        cr_assert_not_null(got, "%s: %s missing", path, name);
        cr_assert_str_eq(got, want, "%s: %s", path, name);
    }
}

Test(cp_routes, every_route_matches_with_its_params_and_role)
{
    size_t seen = 0;
    for (size_t i = 0; i < sizeof every / sizeof every[0]; i++) {
        const want_t *w = &every[i];
        const lm_cp_route_t *rt;
        lm_cp_params_t p;
        cr_assert_eq(route(w->method, w->path, &rt, &p), LM_CP_ROUTE_FOUND, "%s %s", w->method,
                     w->path);
        cr_assert_str_eq(rt->method, w->method);
        cr_assert_str_eq(rt->pattern, w->pattern, "%s %s", w->method, w->path);
        cr_assert_eq(rt->role, w->role, "%s %s: role %d", w->method, w->path, (int)rt->role);
        cr_assert_not_null(rt->handler);
        expect_param(&p, "groupId", w->group, w->path);
        expect_param(&p, "orgId", w->org, w->path);
        expect_param(&p, "id", w->id, w->path);
        bool host = strstr(w->pattern, "{hostname}") != NULL; /* always mig-host-1 here */
        expect_param(&p, "hostname", host ? "mig-host-1" : NULL, w->path);
        bool shard = strstr(w->pattern, "{name}") != NULL; /* always src-shard1 here */
        expect_param(&p, "name", shard ? "src-shard1" : NULL, w->path);
        size_t n = (w->group != NULL) + (w->org != NULL) + (w->id != NULL) + host + shard;
        cr_assert_eq(p.n, n, "%s: %zu params", w->path, p.n);
        seen++;
    }
    /* and the tables have no route this test does not know */
    cr_assert_eq(seen, table_len(lm_cp_admin_routes) + table_len(lm_cp_agent_routes));
}

Test(cp_routes, role_rules)
{
    /* an Owner key writes and reads; a Member key only reads; keys are never agents */
    cr_assert(lm_cp_role_admits_key(LM_CP_ROLE_OWNER, true));
    cr_assert_not(lm_cp_role_admits_key(LM_CP_ROLE_OWNER, false));
    cr_assert(lm_cp_role_admits_key(LM_CP_ROLE_MEMBER, true));
    cr_assert(lm_cp_role_admits_key(LM_CP_ROLE_MEMBER, false));
    cr_assert_not(lm_cp_role_admits_key(LM_CP_ROLE_ENROLL, true));
    cr_assert_not(lm_cp_role_admits_key(LM_CP_ROLE_LINKED_AGENT, true));
    cr_assert(lm_cp_role_is_admin(LM_CP_ROLE_OWNER) && lm_cp_role_is_admin(LM_CP_ROLE_MEMBER));
    cr_assert_not(lm_cp_role_is_admin(LM_CP_ROLE_ENROLL));
    cr_assert_not(lm_cp_role_is_admin(LM_CP_ROLE_LINKED_AGENT));
    /* admin: every GET reads (Member), every other method writes (Owner); no agent role */
    for (const lm_cp_route_t *rt = lm_cp_admin_routes; rt->method; rt++) {
        cr_assert(strncmp(rt->pattern, "/api/atlas/v2/", 14) == 0, "%s", rt->pattern);
        lm_cp_role_t want = strcmp(rt->method, "GET") == 0 ? MEMBER : OWNER;
        cr_assert_eq(rt->role, want, "%s %s", rt->method, rt->pattern);
    }
    /* agent: only register goes without an agent id; no admin role */
    for (const lm_cp_route_t *rt = lm_cp_agent_routes; rt->method; rt++) {
        cr_assert(strncmp(rt->pattern, "/api/agent/v1/", 14) == 0, "%s", rt->pattern);
        bool reg = strcmp(rt->pattern, "/api/agent/v1/register") == 0;
        cr_assert_eq(rt->role, reg ? LM_CP_ROLE_ENROLL : LM_CP_ROLE_LINKED_AGENT, "%s",
                     rt->pattern);
    }
}

Test(cp_routes, every_pattern_is_well_formed)
{
    const lm_cp_route_t *tables[] = {lm_cp_admin_routes, lm_cp_agent_routes};
    for (size_t t = 0; t < 2; t++)
        for (const lm_cp_route_t *rt = tables[t]; rt->method; rt++) {
            /* the pattern itself, its parameters replaced by ids, matches its own route */
            char path[LM_CP_PATH_MAX + 1] = "";
            size_t n = 0, params = 0;
            for (const char *s = rt->pattern; *s && n < sizeof path - 8;) {
                if (*s == '{') {
                    const char *e = strchr(s, '}');
                    cr_assert_not_null(e, "%s", rt->pattern);
                    n += (size_t)snprintf(path + n, sizeof path - n, "p%zu", params++);
                    s = e + 1;
                } else {
                    path[n++] = *s++;
                    path[n] = '\0';
                }
            }
            cr_assert_leq(params, LM_CP_MAX_PARAMS, "%s", rt->pattern);
            const lm_cp_route_t *got;
            lm_cp_params_t p;
            cr_assert_eq(route(rt->method, path, &got, &p), LM_CP_ROUTE_FOUND, "%s", path);
            cr_assert_eq(got, rt, "%s %s is shadowed by %s", rt->method, rt->pattern, got->pattern);
            cr_assert_eq(p.n, params, "%s", rt->pattern);
        }
}

/* path routes to nothing, and leaves no parameters behind */
static void miss(const char *method, const char *path)
{
    const lm_cp_route_t *rt = (const lm_cp_route_t *)1;
    lm_cp_params_t p;
    memset(&p, 0x55, sizeof p);
    cr_assert_eq(route(method, path, &rt, &p), LM_CP_ROUTE_NOT_FOUND, "%s %.80s", method, path);
    cr_assert_null(rt);
    cr_assert_eq(p.n, 0);
}

Test(cp_routes, near_misses_match_nothing)
{
    /* a trailing slash, a doubled slash, no leading slash */
    miss("POST", "/api/atlas/v2/groups/");
    miss("GET", "/api/atlas/v2/groups/g1/clusters/");
    miss("PUT", "/api/atlas/v2/groups/g1/liveMigrations/m1/cutover/");
    miss("POST", "/api/agent/v1/register/");
    miss("GET", "/api/atlas/v2/groups/g1//clusters");
    miss("POST", "//api/atlas/v2/groups");
    miss("POST", "api/atlas/v2/groups");
    miss("GET", "");
    miss("GET", "/");
    /* an extra segment, a missing one */
    miss("GET", "/api/atlas/v2/groups/g1/clusters/c1");
    miss("PUT", "/api/atlas/v2/groups/g1/liveMigrations/m1/cutover/now");
    miss("GET", "/api/atlas/v2/groups/g1/liveMigrations/validate/v1/x");
    miss("GET", "/api/atlas/v2/orgs/org1");
    miss("GET", "/api/atlas/v2/groups/g1");
    miss("PUT", "/api/atlas/v2/groups/g1/cutover");
    miss("POST", "/api/atlas/v2");
    miss("POST", "/api/agent/v1");
    miss("POST", "/api/agent/v2/register");
    /* an empty parameter */
    miss("GET", "/api/atlas/v2/orgs//groups");
    miss("GET", "/api/atlas/v2/groups//clusters");
    miss("PUT", "/api/atlas/v2/groups/g1/liveMigrations//cutover");
    miss("GET", "/api/atlas/v2/groups/g1/liveMigrations/validate/");
    /* a percent-encoded slash, undecoded and decoded; other characters an id never has */
    miss("GET", "/api/atlas/v2/groups/a%2Fb/clusters");
    miss("GET", "/api/atlas/v2/groups/a%2fb/clusters");
    miss("GET", "/api/atlas/v2/groups/a/b/clusters");
    miss("GET", "/api/atlas/v2/groups/g 1/clusters");
    miss("GET", "/api/atlas/v2/groups/g'1/clusters");
    miss("GET", "/api/atlas/v2/groups/g1?x=1/clusters");
    miss("GET", "/api/atlas/v2/orgs/{orgId}/groups");
    /* literal segments match exactly: case, prefixes */
    miss("POST", "/API/atlas/v2/groups");
    miss("POST", "/api/atlas/v2/Groups");
    miss("POST", "/api/atlas/v2/group");
    miss("POST", "/api/atlas/v2/groupss");
    miss("GET", "/api/atlas/v2/groups/g1/clusterss");
}

Test(cp_routes, a_base_url_ending_in_a_slash_is_forgiven)
{
    /* "https://cp/" + "/api/..." (the CLI's url, a link-token's url) */
    cr_assert_str_eq(lm_cp_route_path("//api/agent/v1/register"), "/api/agent/v1/register");
    cr_assert_str_eq(lm_cp_route_path("///api/atlas/v2/groups"), "/api/atlas/v2/groups");
    cr_assert_str_eq(lm_cp_route_path("/api/atlas/v2/groups"), "/api/atlas/v2/groups");
    cr_assert_str_eq(lm_cp_route_path("/"), "/");
    cr_assert_str_eq(lm_cp_route_path("//"), "/");
    cr_assert_str_eq(lm_cp_route_path(""), "");
    /* only there: inside and at the end a doubled slash still matches nothing */
    miss("GET", lm_cp_route_path("/api/atlas/v2/groups/g1//clusters"));
    miss("POST", lm_cp_route_path("//api/atlas/v2/groups/"));
}

Test(cp_routes, wrong_method_names_the_path_s_route)
{
    const lm_cp_route_t *rt;
    lm_cp_params_t p;
    cr_assert_eq(route("GET", "/api/atlas/v2/groups", &rt, &p), LM_CP_ROUTE_WRONG_METHOD);
    cr_assert_str_eq(rt->pattern, "/api/atlas/v2/groups");
    cr_assert_eq(route("POST", "/api/atlas/v2/groups/g1/liveMigrations/m1/cutover", &rt, &p),
                 LM_CP_ROUTE_WRONG_METHOD);
    cr_assert_str_eq(rt->pattern, G "/liveMigrations/{id}/cutover");
    cr_assert_str_eq(lm_cp_param(&p, "id"), "m1");
    cr_assert_str_eq(lm_cp_param(&p, "groupId"), "g1");
    cr_assert_eq(route("PATCH", "/api/atlas/v2/groups/g1/clusters", &rt, &p),
                 LM_CP_ROUTE_WRONG_METHOD);
    cr_assert_eq(route("get", "/api/atlas/v2/groups/g1/clusters", &rt, &p),
                 LM_CP_ROUTE_WRONG_METHOD, "methods are case-sensitive");
    cr_assert_eq(route("HEAD", "/api/agent/v1/assignments", &rt, &p), LM_CP_ROUTE_WRONG_METHOD);
    cr_assert_eq(route("GET", "/api/agent/v1/register", &rt, &p), LM_CP_ROUTE_WRONG_METHOD);
    cr_assert_eq(route("DELETE", "/api/atlas/v2/groups/g1/liveMigrations/m1", &rt, &p),
                 LM_CP_ROUTE_WRONG_METHOD);
    /* a literal route and a parameter route on one path: the method picks (as before the
     * table: GET .../liveMigrations/validate is the live migration named "validate") */
    cr_assert_eq(route("GET", "/api/atlas/v2/groups/g1/liveMigrations/validate", &rt, &p),
                 LM_CP_ROUTE_FOUND);
    cr_assert_str_eq(rt->pattern, G "/liveMigrations/{id}");
    cr_assert_str_eq(lm_cp_param(&p, "id"), "validate");
    cr_assert_eq(route("POST", "/api/atlas/v2/groups/g1/liveMigrations/validate", &rt, &p),
                 LM_CP_ROUTE_FOUND);
    cr_assert_str_eq(rt->pattern, G "/liveMigrations/validate");
    cr_assert_eq(p.n, 1);
}

Test(cp_routes, parameters_are_ids_of_1_to_64_characters)
{
    char id[LM_CP_PARAM_MAX + 2], path[300];
    memset(id, 'a', sizeof id);
    id[LM_CP_PARAM_MAX] = '\0';
    snprintf(path, sizeof path, "/api/atlas/v2/groups/%s/clusters", id);
    const lm_cp_route_t *rt;
    lm_cp_params_t p;
    cr_assert_eq(route("GET", path, &rt, &p), LM_CP_ROUTE_FOUND);
    cr_assert_str_eq(lm_cp_param(&p, "groupId"), id);
    id[LM_CP_PARAM_MAX] = 'a';
    id[LM_CP_PARAM_MAX + 1] = '\0';
    snprintf(path, sizeof path, "/api/atlas/v2/groups/%s/clusters", id);
    miss("GET", path);
    cr_assert(lm_cp_valid_id("aZ09_-."));
    cr_assert_not(lm_cp_valid_id(""));
    cr_assert_not(lm_cp_valid_id(id));
    cr_assert_not(lm_cp_valid_id("a/b"));
    cr_assert_not(lm_cp_valid_id("a%2Fb"));
    cr_assert_not(lm_cp_valid_id("\xc3\xa9"));
}

Test(cp_routes, very_long_paths_match_nothing)
{
    size_t n = 100000;
    char *path = malloc(n + 1);
    cr_assert_not_null(path);
    for (size_t i = 0; i < n; i += 2)
        memcpy(path + i, "/a", 2);
    path[n] = '\0';
    miss("GET", path);
    /* a real route's path followed by a huge parameter, or by many more segments */
    int k = snprintf(path, n, "/api/atlas/v2/groups/");
    memset(path + k, 'g', n - (size_t)k);
    path[n] = '\0';
    miss("POST", path);
    k = snprintf(path, n, "/api/atlas/v2/groups/g1/clusters");
    for (size_t i = (size_t)k; i + 2 <= n; i += 2)
        memcpy(path + i, "/c", 2);
    miss("GET", path);
    /* a path over LM_CP_PATH_MAX matches nothing, even its own literal */
    memset(path, 'a', n);
    path[0] = '/';
    path[LM_CP_PATH_MAX] = '\0';
    cr_assert(lm_cp_pattern_match(path, path, &(lm_cp_params_t){0}));
    path[LM_CP_PATH_MAX] = 'a';
    path[LM_CP_PATH_MAX + 1] = '\0';
    cr_assert_not(lm_cp_pattern_match(path, path, &(lm_cp_params_t){0}));
    free(path);
}

Test(cp_routes, pattern_rules)
{
    lm_cp_params_t p;
    cr_assert(lm_cp_pattern_match("/a/{x}/b/{y}", "/a/1/b/2", &p));
    cr_assert_eq(p.n, 2);
    cr_assert_str_eq(lm_cp_param(&p, "x"), "1");
    cr_assert_str_eq(lm_cp_param(&p, "y"), "2");
    cr_assert_null(lm_cp_param(&p, "z"));
    cr_assert_not(lm_cp_pattern_match("/a/{x}/b/{y}", "/a/1/c/2", &p));
    cr_assert_eq(p.n, 0, "a miss half-way leaves nothing captured");
    cr_assert_not(lm_cp_pattern_match("", "", &p));
    cr_assert_not(lm_cp_pattern_match("", "/", &p));
    cr_assert(lm_cp_pattern_match("/", "/", &p) == false, "an empty segment is no literal");
    /* more parameters than a request holds, an empty or over-long name: never a match */
    cr_assert_not(lm_cp_pattern_match("/{a}/{b}/{c}/{d}/{e}", "/1/2/3/4/5", &p));
    cr_assert(lm_cp_pattern_match("/{a}/{b}/{c}/{d}", "/1/2/3/4", &p));
    cr_assert_not(lm_cp_pattern_match("/{}", "/1", &p));
    cr_assert_not(lm_cp_pattern_match("/{abcdefghijklmnopqrstuvwxyz}", "/1", &p));
}

/* ---- many threads at once ---- */

#define THREADS 8
#define ROUNDS 10000

typedef struct {
    int n;
    long failures;
    char first[300];
} worker_t;

/* Each thread routes its own paths (different routes, different ids every round) and checks
 * what it gets back every time. */
static void *worker(void *arg)
{
    static const struct {
        const char *method, *fmt, *id;
    } shapes[] = {
        {"PUT", "/api/atlas/v2/groups/%s/liveMigrations/%s/cutover", "m"},
        {"GET", "/api/atlas/v2/groups/%s/liveMigrations/validate/%s", "v"},
        {"POST", "/api/atlas/v2/groups/%s/liveMigrations/%s/extend", "x"},
        {"GET", "/api/atlas/v2/groups/%s/liveMigrations/%s/progress", "p"},
    };
    worker_t *w = arg;
    for (int i = 0; i < ROUNDS; i++) {
        int s = (w->n + i) % 4;
        char path[300], group[40], id[40];
        snprintf(group, sizeof group, "g%d_%d", w->n, i);
        snprintf(id, sizeof id, "%s%d", shapes[s].id, i * THREADS + w->n);
        snprintf(path, sizeof path, shapes[s].fmt, group, id);
        const lm_cp_route_t *rt;
        lm_cp_params_t p;
        lm_cp_match_t m = route(shapes[s].method, path, &rt, &p);
        const char *g = lm_cp_param(&p, "groupId"), *d = lm_cp_param(&p, "id");
        bool ok = m == LM_CP_ROUTE_FOUND && strcmp(rt->method, shapes[s].method) == 0 && p.n == 2 &&
                  g && d && strcmp(g, group) == 0 && strcmp(d, id) == 0;
        if (!ok && w->failures++ == 0)
            snprintf(w->first, sizeof w->first, "%s %s -> %d groupId=%s id=%s", shapes[s].method,
                     path, (int)m, g ? g : "(none)", d ? d : "(none)");
    }
    return NULL;
}

Test(cp_routes, concurrent_requests_keep_their_own_params, .timeout = 60)
{
    pthread_t t[THREADS];
    worker_t w[THREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < THREADS; i++) {
        w[i].n = i;
        cr_assert_eq(pthread_create(&t[i], NULL, worker, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++)
        cr_expect_eq(w[i].failures, 0, "thread %d: %ld of %d routed wrong, first: %s", i,
                     w[i].failures, ROUNDS, w[i].first);
}
