/* lm_cluster: a sharded cluster as seen through one of its routers (mongos): whether a
 * deployment is one, its description (shards, databases and their primary shards, sharded
 * collections with key and uniqueness, chunk maps), the balancer, and the pure parts a
 * shard-to-shard migration needs (a shard's URI from its listShards host string, the
 * chunk-map difference between two clusters). docs/sharded.md has the design.
 *
 * Everything here is read through the router: listShards, and finds on config.databases,
 * config.collections and config.chunks (a mongos forwards them to the config servers). */
#ifndef LM_CLUSTER_H
#define LM_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#include "lm_config.h"
#include "lm_error.h"
#include "lm_ns.h"

#define LM_SHARD_NAME_MAX 128

typedef struct {
    char name[LM_SHARD_NAME_MAX]; /* listShards _id */
    char host[1024];              /* "set/host:port,host:port" */
} lm_shard_info_t;

typedef struct {
    char name[128];
    char primary[LM_SHARD_NAME_MAX];
} lm_cluster_db_t;

typedef struct {
    bson_t *min, *max; /* owned */
    char shard[LM_SHARD_NAME_MAX];
} lm_chunk_t;

typedef struct {
    char ns[LM_NS_MAX];
    bson_t *key; /* owned */
    bool unique;
    lm_chunk_t *chunks;
    size_t n_chunks;
} lm_cluster_coll_t;

typedef struct {
    lm_shard_info_t *shards; /* listShards order */
    size_t n_shards;
    lm_cluster_db_t *dbs;
    size_t n_dbs;
    lm_cluster_coll_t *colls;
    size_t n_colls;
} lm_cluster_t;

/* hello's msg is "isdbgrid": the client talks to a mongos. False with err when hello fails. */
bool lm_cluster_is_router(mongoc_client_t *c, bool *is_router, lm_error_t *err);

/* Reads the description through the router. Databases admin/config/local are left out.
 * On failure out is empty (nothing to clean up). */
bool lm_cluster_load(mongoc_client_t *router, lm_cluster_t *out, lm_error_t *err);
void lm_cluster_cleanup(lm_cluster_t *c);

/* The shard index of name, or -1. */
int lm_cluster_shard_index(const lm_cluster_t *c, const char *name);
const lm_cluster_db_t *lm_cluster_find_db(const lm_cluster_t *c, const char *name);
const lm_cluster_coll_t *lm_cluster_find_coll(const lm_cluster_t *c, const char *ns);

/* Pure: the URI of a shard's replica set from the router's URI (credentials, path and
 * options kept; hosts replaced; replicaSet set to the shard's set name; directConnection,
 * loadBalanced and srvServiceName/srvMaxHosts dropped) and the listShards host string
 * "set/h1:p1,h2:p2" (or "h1:p1" for a shard that is not a replica set: refused, a shard's
 * oplog is read). A mongodb+srv router URI becomes mongodb:// with tls=true unless the URI
 * says tls/ssl itself (SRV implies TLS). */
bool lm_cluster_shard_uri(const char *router_uri, const char *shard_host, char *out, size_t outsz,
                          lm_error_t *err);

/* Pure: what makes the target's chunk map of one collection equal to the source's, with
 * source shard names mapped by `map` (map(ud, source shard) -> target shard, NULL unknown).
 * Splits: every source chunk's min that is no chunk's min on the target (the first chunk
 * starts at MinKey on both). Moves: every source chunk whose min starts a target chunk
 * whose owner differs from the mapped owner (source max as max). Extra: target chunk
 * boundaries the source lacks (the target cannot merge them: reported). A caller splits,
 * reloads and diffs again before moving. Returned arrays point into src/dst (not owned;
 * free the arrays themselves). */
typedef struct {
    const lm_chunk_t **splits; /* split the target at splits[i]->min */
    size_t n_splits;
    const lm_chunk_t **moves; /* move [min, max) to move_to[i] */
    const char **move_to;
    size_t n_moves;
    size_t n_extra;    /* target boundaries the source does not have */
    size_t n_unmapped; /* source chunks on a shard the map does not know */
} lm_chunk_diff_t;

bool lm_chunk_diff(const lm_chunk_t *src, size_t n_src, const lm_chunk_t *dst, size_t n_dst,
                   const char *(*map)(void *ud, const char *shard), void *ud, lm_chunk_diff_t *out);
void lm_chunk_diff_cleanup(lm_chunk_diff_t *d);

/* The balancer, through the router. stop: balancerStop (waits for a round in progress, up
 * to max_ms), then polls balancerStatus until no round is in progress (same budget). */
bool lm_balancer_stop(mongoc_client_t *router, int64_t max_ms, lm_error_t *err);
bool lm_balancer_start(mongoc_client_t *router, lm_error_t *err);
bool lm_balancer_status(mongoc_client_t *router, char *mode, size_t modesz, bool *in_round,
                        lm_error_t *err);

/* The commands that make the target's metadata match (through the target's router); each
 * returns false with the server's message. */
bool lm_cluster_enable_sharding(mongoc_client_t *router, const char *db, const char *primary,
                                lm_error_t *err);
bool lm_cluster_shard_collection(mongoc_client_t *router, const char *ns, const bson_t *key,
                                 bool unique, lm_error_t *err);
bool lm_cluster_split(mongoc_client_t *router, const char *ns, const bson_t *middle,
                      lm_error_t *err);
bool lm_cluster_move_range(mongoc_client_t *router, const char *ns, const bson_t *min,
                           const bson_t *max, const char *to, lm_error_t *err);

#endif
