/* lm_cp_assign: which migration host runs which shard of a sharded live migration (issue 16,
 * step 2): spread by data size with at most a given number of shards per host, and the
 * shards of a host that was lost moved to the others, the rest left where they run. Pure
 * functions (no SQL, no I/O), unit-tested (tests/unit/test_lm_cp_assign.c); the store keeps
 * what they decide. Design and the parts not built yet: docs/agent-daemon.md. */
#ifndef LM_CP_ASSIGN_H
#define LM_CP_ASSIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lm_error.h"

typedef struct {
    const char *name; /* the source shard */
    int64_t bytes;    /* its data size (the estimate of its copy), >= 0 */
    int host;         /* index into the migration's hosts; -1: none yet */
} lm_cp_shard_slot_t;

/* Gives every shard without a live host (host -1, out of range, or !alive[host]) one: the
 * largest such shard first, each to the live host that has the fewest bytes assigned (then
 * the fewest shards, then the first listed) among those holding fewer than max_per_host
 * shards (0: no maximum). Shards on a live host stay there, so a lost host's shards move and
 * nothing else does. Returns how many shards got a (new) host; -1 with err set when they do
 * not fit (no live host, or every live host at its maximum: "list another host or raise the
 * maximum"), and then nothing is changed. */
int lm_cp_assign_shards(lm_cp_shard_slot_t *shards, size_t n, const bool *alive, size_t n_hosts,
                        int max_per_host, lm_error_t *err);

/* The lead host (the one that stops and starts the balancers and makes the target's metadata
 * match): the current one while it is alive, else the first listed live host; -1 when no
 * host is alive. */
int lm_cp_lead_host(const bool *alive, size_t n_hosts, int current);

#endif
