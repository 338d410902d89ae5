/* lm_ns: namespaces ("db.coll") and the include/exclude filters of a job.
 *
 * A pattern is "db.coll", "db.*" or any shell glob over the whole namespace ("*.users",
 * "shop.order*"). A namespace is copied when it matches an include (or there are none) and
 * no exclude. admin, local, config and livemig's own metadata database are never copied,
 * nor are system.* collections (their content is recreated by other means). */
#ifndef LM_NS_H
#define LM_NS_H

#include <stdbool.h>
#include <stddef.h>

#include "lm_config.h"
#include "lm_error.h"

#define LM_NS_MAX 256          /* MongoDB allows 255 bytes for a namespace */
#define LM_META_DB "__livemig" /* livemig's metadata database on the target */

/* Checks that a pattern names a database part and a collection part. */
bool lm_ns_pattern_valid(const char *pattern, lm_error_t *err);

/* True when the database is one livemig never copies. */
bool lm_ns_db_is_internal(const char *db);

/* The include/exclude decision for db.coll. */
bool lm_ns_selected(const lm_strlist_t *include, const lm_strlist_t *exclude, const char *db,
                    const char *coll);

/* True when some include/exclude pattern could select something in db (so listing its
 * collections is worth it). */
bool lm_ns_db_selected(const lm_strlist_t *include, const char *db);

/* Splits "db.coll" at the first dot. */
bool lm_ns_split(const char *ns, char *db, size_t dbsz, char *coll, size_t collsz);

#endif
