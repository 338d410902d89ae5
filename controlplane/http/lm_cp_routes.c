/* The control plane's router: matches a request's method and path against a route table,
 * walking the path in place (it is never copied, cut or tokenised) and copying each
 * parameter into the caller's lm_cp_params_t. Nothing static, nothing shared: every
 * connection thread can route at once. See lm_cp_routes.h. */
#include "lm_cp_routes.h"

#include <string.h>

bool lm_cp_role_is_admin(lm_cp_role_t role)
{
    return role == LM_CP_ROLE_MEMBER || role == LM_CP_ROLE_OWNER;
}

bool lm_cp_role_admits_key(lm_cp_role_t role, bool owner)
{
    return role == LM_CP_ROLE_MEMBER || (role == LM_CP_ROLE_OWNER && owner);
}

static bool id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* s[0..n) is an id: 1..LM_CP_PARAM_MAX id characters. */
static bool valid_id_n(const char *s, size_t n)
{
    if (n == 0 || n > LM_CP_PARAM_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!id_char(s[i]))
            return false;
    return true;
}

bool lm_cp_valid_id(const char *s)
{
    size_t n = strnlen(s, LM_CP_PARAM_MAX + 1);
    return valid_id_n(s, n);
}

const char *lm_cp_param(const lm_cp_params_t *params, const char *name)
{
    for (size_t i = 0; i < params->n; i++)
        if (strcmp(params->p[i].name, name) == 0)
            return params->p[i].value;
    return NULL;
}

/* Length of the segment at s: up to the next '/' or the end. */
static size_t seg_len(const char *s)
{
    return strcspn(s, "/");
}

/* Captures the parameter "{name}" (pattern segment t, tn bytes) = s[0..n). */
static bool capture(const char *t, size_t tn, const char *s, size_t n, lm_cp_params_t *params)
{
    size_t name_len = tn - 2;
    if (name_len == 0 || name_len > LM_CP_PARAM_NAME_MAX || params->n == LM_CP_MAX_PARAMS ||
        !valid_id_n(s, n))
        return false;
    memcpy(params->p[params->n].name, t + 1, name_len);
    params->p[params->n].name[name_len] = '\0';
    memcpy(params->p[params->n].value, s, n);
    params->p[params->n].value[n] = '\0';
    params->n++;
    return true;
}

/* The walk of lm_cp_pattern_match; params may be left half filled on a miss. */
static bool walk(const char *pattern, const char *path, lm_cp_params_t *params)
{
    const char *t = pattern, *s = path;
    /* segment by segment: each begins with '/' in both */
    while (*t == '/' && *s == '/') {
        t++, s++;
        size_t tn = seg_len(t), n = seg_len(s);
        if (tn >= 2 && t[0] == '{' && t[tn - 1] == '}') {
            if (!capture(t, tn, s, n, params))
                return false;
        } else if (tn == 0 || tn != n || memcmp(t, s, n) != 0) {
            return false;
        }
        t += tn, s += n;
    }
    return *t == '\0' && *s == '\0' && t != pattern;
}

bool lm_cp_pattern_match(const char *pattern, const char *path, lm_cp_params_t *params)
{
    memset(params, 0, sizeof *params);
    if (strnlen(path, LM_CP_PATH_MAX + 1) <= LM_CP_PATH_MAX && walk(pattern, path, params))
        return true;
    memset(params, 0, sizeof *params);
    return false;
}

const char *lm_cp_route_path(const char *url)
{
    while (url[0] == '/' && url[1] == '/')
        url++;
    return url;
}

lm_cp_match_t lm_cp_route_match(const lm_cp_route_t *table, const char *method, const char *path,
                                const lm_cp_route_t **route, lm_cp_params_t *params)
{
    lm_cp_params_t got;
    *route = NULL;
    memset(params, 0, sizeof *params);
    for (const lm_cp_route_t *rt = table; rt->method; rt++) {
        if (!lm_cp_pattern_match(rt->pattern, path, &got))
            continue;
        if (strcmp(rt->method, method) == 0) {
            *route = rt;
            *params = got;
            return LM_CP_ROUTE_FOUND;
        }
        if (!*route) {
            *route = rt;
            *params = got;
        }
    }
    return *route ? LM_CP_ROUTE_WRONG_METHOD : LM_CP_ROUTE_NOT_FOUND;
}
