/* lm_catalog: what a job copies, read from the source: user databases and collections
 * (after include/exclude), views with their pipelines, each collection's options (capped,
 * validator, collation, timeseries, clusteredIndex, changeStreamPreAndPostImages, ...) as
 * listCollections reports them, its index specs, and size estimates. */
#ifndef LM_CATALOG_H
#define LM_CATALOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#include "lm_error.h"
#include "lm_job.h"
#include "lm_ns.h"

typedef struct {
    char db[128];
    char coll[LM_NS_MAX];
    char ns[LM_NS_MAX];
    char type[16];    /* "collection", "view" or "timeseries" */
    bson_t *options;  /* listCollections "options" (owned; bson_t must not move, hence pointers) */
    bson_t *indexes;  /* {"0": spec, "1": spec, ...} every index but _id_ (owned) */
    int64_t est_docs; /* -1 until lm_catalog_estimate ran */
    bool has_collation;
} lm_coll_info_t;

typedef struct {
    lm_coll_info_t *items; /* collections first (largest first), then views */
    size_t n;
} lm_catalog_t;

/* Reads the catalog of the source: names, types, options, index specs. The document
 * count is left unknown (-1): on some servers it costs a scan of the collection, so the
 * engine asks for it only where planning needs it, and otherwise alongside the copy. */
bool lm_catalog_load(mongoc_client_t *source, const lm_job_t *job, lm_catalog_t *cat,
                     lm_error_t *err);
/* The same; with_indexes false leaves every `indexes` empty (lm_catalog_load_indexes fills
 * them later: one listIndexes per collection is the catalog's largest part with many
 * collections, and the engine needs the specs only after the copy). */
bool lm_catalog_load_ex(mongoc_client_t *source, const lm_job_t *job, bool with_indexes,
                        lm_catalog_t *cat, lm_error_t *err);
/* Reads every collection's index specs (one listIndexes each) into its empty `indexes`.
 * Writes nothing but those, so it may run in another thread (with its own client) while
 * other fields are read or estimated; stops early (LM_ERR_CANCELLED) when *stop is set. */
bool lm_catalog_load_indexes(mongoc_client_t *source, lm_catalog_t *cat, const atomic_bool *stop,
                             lm_error_t *err);
void lm_catalog_cleanup(lm_catalog_t *cat);

bool lm_coll_is_view(const lm_coll_info_t *c);

/* True when the target already has a collection or view of c's name. */
bool lm_catalog_target_has(mongoc_client_t *target, const lm_coll_info_t *c);

/* Fills est_docs from the server's document count (metadata on mongod; some servers
 * count by scanning, which is why it is asked for only when needed). Bytes are not
 * asked for: collStats and dbStats scan the whole collection on such servers, so the
 * status derives them from the average size of the documents copied so far. Safe to call
 * from another thread with its own client. */
void lm_catalog_estimate(mongoc_client_t *src, lm_coll_info_t *c);

#endif
