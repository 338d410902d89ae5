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

bool lm_ns_db_selected(const lm_strlist_t *include, const char *db)
{
    if (lm_ns_db_is_internal(db))
        return false;
    if (include->n == 0)
        return true;
    for (size_t i = 0; i < include->n; i++) {
        const char *p = include->items[i], *dot = strchr(p, '.');
        char dbpat[LM_NS_MAX];
        snprintf(dbpat, sizeof dbpat, "%.*s", (int)(dot ? dot - p : (long)strlen(p)), p);
        if (fnmatch(dbpat, db, 0) == 0)
            return true;
    }
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
