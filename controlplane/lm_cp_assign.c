/* lm_cp_assign: see lm_cp_assign.h. */
#include "lm_cp_assign.h"

#include <stdlib.h>
#include <string.h>

static bool live(const bool *alive, size_t n_hosts, int h)
{
    return h >= 0 && (size_t)h < n_hosts && alive[h];
}

int lm_cp_assign_shards(lm_cp_shard_slot_t *shards, size_t n, const bool *alive, size_t n_hosts,
                        int max_per_host, lm_error_t *err)
{
    size_t n_live = 0;
    for (size_t h = 0; h < n_hosts; h++)
        n_live += alive[h];
    size_t todo = 0;
    for (size_t i = 0; i < n; i++)
        todo += !live(alive, n_hosts, shards[i].host);
    if (!todo)
        return 0;
    if (!n_live) {
        lm_error_set(err, LM_ERR_INVALID,
                     "%zu shard%s need a migration host and none of the migration's hosts is "
                     "alive: start an agent on one of them, or list another host",
                     todo, todo == 1 ? "" : "s");
        return -1;
    }
    int64_t *load = calloc(n_hosts, sizeof *load);
    int *count = calloc(n_hosts, sizeof *count);
    int *result = malloc(n * sizeof *result);
    bool *placed = calloc(n, sizeof *placed);
    if (!load || !count || !result || !placed) {
        free(load), free(count), free(result), free(placed);
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        result[i] = shards[i].host;
        if (live(alive, n_hosts, shards[i].host)) {
            load[shards[i].host] += shards[i].bytes > 0 ? shards[i].bytes : 0;
            count[shards[i].host]++;
            placed[i] = true;
        }
    }
    int moved = 0;
    for (size_t k = 0; k < todo; k++) {
        /* the largest shard still without a live host (ties: the first listed) */
        size_t pick = n;
        for (size_t i = 0; i < n; i++)
            if (!placed[i] && (pick == n || shards[i].bytes > shards[pick].bytes))
                pick = i;
        int best = -1;
        for (size_t h = 0; h < n_hosts; h++) {
            if (!alive[h] || (max_per_host > 0 && count[h] >= max_per_host))
                continue;
            if (best < 0 || load[h] < load[best] ||
                (load[h] == load[best] && count[h] < count[best]))
                best = (int)h;
        }
        if (best < 0) {
            lm_error_set(err, LM_ERR_INVALID,
                         "shard %s does not fit: every live migration host runs %d shard%s "
                         "already (the maximum per host): list another host or raise the maximum",
                         shards[pick].name, max_per_host, max_per_host == 1 ? "" : "s");
            free(load), free(count), free(result), free(placed);
            return -1;
        }
        result[pick] = best;
        placed[pick] = true;
        load[best] += shards[pick].bytes > 0 ? shards[pick].bytes : 0;
        count[best]++;
        moved++;
    }
    for (size_t i = 0; i < n; i++)
        shards[i].host = result[i];
    free(load), free(count), free(result), free(placed);
    return moved;
}

int lm_cp_lead_host(const bool *alive, size_t n_hosts, int current)
{
    if (live(alive, n_hosts, current))
        return current;
    for (size_t h = 0; h < n_hosts; h++)
        if (alive[h])
            return (int)h;
    return -1;
}
