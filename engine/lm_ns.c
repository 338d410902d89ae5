/* lm_ns: see lm_ns.h. */
#include "lm_ns.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

bool lm_ns_pattern_valid(const char *p, lm_error_t *err)
{
    const char *dot = strchr(p, '.');
    if (!dot || dot == p || dot[1] == '\0')
        return lm_error_set(
            err, LM_ERR_INVALID,
            "namespace pattern '%s': use db.collection, db.* or a glob such as *.users", p);
    if (strlen(p) >= LM_NS_MAX)
        return lm_error_set(err, LM_ERR_INVALID, "namespace pattern '%s' is longer than %d bytes",
                            p, LM_NS_MAX - 1);
    return true;
}

bool lm_ns_db_is_internal(const char *db)
{
    return strcmp(db, "admin") == 0 || strcmp(db, "local") == 0 || strcmp(db, "config") == 0 ||
           strcmp(db, LM_META_DB) == 0;
}

static bool matches_any(const lm_strlist_t *l, const char *ns)
{
    for (size_t i = 0; i < l->n; i++)
        if (fnmatch(l->items[i], ns, 0) == 0)
            return true;
    return false;
}

bool lm_ns_selected(const lm_strlist_t *include, const lm_strlist_t *exclude, const char *db,
                    const char *coll)
{
    char ns[LM_NS_MAX * 2];
    if (lm_ns_db_is_internal(db) || strncmp(coll, "system.", 7) == 0)
        return false;
    snprintf(ns, sizeof ns, "%s.%s", db, coll);
    if (include->n > 0 && !matches_any(include, ns))
        return false;
    return !matches_any(exclude, ns);
}

/* True when glob p can match some namespace of db. A glob's wildcards cross dots ("a*b.c"
 * matches "a.xb.c"), so p's part before its first dot is not enough: p can match "db." and
 * more exactly when some prefix of p matches "db." (the rest of a glob matches some string).
 * Prefixes cut inside a [...] or after a backslash can only add a database listed in vain. */
static bool could_match_db(const char *p, const char *db)
{
    char text[LM_NS_MAX + 2], prefix[LM_NS_MAX];
    size_t n = strlen(p);
    snprintf(text, sizeof text, "%s.", db);
    for (size_t k = 0; k <= n && k < sizeof prefix; k++) {
        snprintf(prefix, sizeof prefix, "%.*s", (int)k, p);
        if (fnmatch(prefix, text, 0) == 0)
            return true;
    }
    return false;
}

bool lm_ns_db_selected(const lm_strlist_t *include, const char *db)
{
    if (lm_ns_db_is_internal(db))
        return false;
    if (include->n == 0)
        return true;
    for (size_t i = 0; i < include->n; i++)
        if (could_match_db(include->items[i], db))
            return true;
    return false;
}

bool lm_ns_split(const char *ns, char *db, size_t dbsz, char *coll, size_t collsz)
{
    const char *dot = strchr(ns, '.');
    if (!dot)
        return false;
    snprintf(db, dbsz, "%.*s", (int)(dot - ns), ns);
    snprintf(coll, collsz, "%s", dot + 1);
    return true;
}
