/* lm_cp_assign: shards spread over a sharded migration's hosts by data size within a
 * maximum per host; a lost host's shards move to the live hosts and nothing else moves; the
 * lead stays while alive and passes to the first live host. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "lm_cp_assign.h"

#define MB INT64_C(1048576)

static int64_t load_of(const lm_cp_shard_slot_t *s, size_t n, int h)
{
    int64_t b = 0;
    for (size_t i = 0; i < n; i++)
        b += s[i].host == h ? s[i].bytes : 0;
    return b;
}

static int count_of(const lm_cp_shard_slot_t *s, size_t n, int h)
{
    int c = 0;
    for (size_t i = 0; i < n; i++)
        c += s[i].host == h;
    return c;
}

Test(cp_assign, spreads_by_data_size)
{
    /* 600, 500, 300, 200, 100 MB over two hosts: the largest first, each to the lighter host */
    lm_cp_shard_slot_t s[] = {{"s0", 100 * MB, -1},
                              {"s1", 600 * MB, -1},
                              {"s2", 300 * MB, -1},
                              {"s3", 500 * MB, -1},
                              {"s4", 200 * MB, -1}};
    bool alive[] = {true, true};
    lm_error_t err;
    cr_assert_eq(lm_cp_assign_shards(s, 5, alive, 2, 0, &err), 5, "%s", err.message);
    cr_assert_eq(s[1].host, 0); /* 600 -> h0 */
    cr_assert_eq(s[3].host, 1); /* 500 -> h1 */
    cr_assert_eq(s[2].host, 1); /* 300 -> h1 (500 < 600) */
    cr_assert_eq(s[4].host, 0); /* 200 -> h0 (600 < 800) */
    cr_assert_eq(s[0].host, 0); /* 100 -> h0 (a tie at 800 MB and 2 shards: the first listed) */
    cr_assert_eq(load_of(s, 5, 0), 900 * MB);
    cr_assert_eq(load_of(s, 5, 1), 800 * MB);
    /* nothing to do the second time */
    cr_assert_eq(lm_cp_assign_shards(s, 5, alive, 2, 0, &err), 0);
}

Test(cp_assign, equal_sizes_alternate_and_ties_go_to_the_first_listed)
{
    lm_cp_shard_slot_t s[] = {{"a", 0, -1}, {"b", 0, -1}, {"c", 0, -1}};
    bool alive[] = {true, true, true};
    lm_error_t err;
    cr_assert_eq(lm_cp_assign_shards(s, 3, alive, 3, 0, &err), 3);
    cr_assert_eq(s[0].host, 0);
    cr_assert_eq(s[1].host, 1);
    cr_assert_eq(s[2].host, 2);
}

Test(cp_assign, the_maximum_per_host_holds_or_nothing_changes)
{
    lm_cp_shard_slot_t s[] = {
        {"s0", 900 * MB, -1}, {"s1", 10 * MB, -1}, {"s2", 10 * MB, -1}, {"s3", 10 * MB, -1}};
    bool alive[] = {true, true};
    lm_error_t err;
    /* without a maximum the three small shards would all go to the host without the big one */
    cr_assert_eq(lm_cp_assign_shards(s, 4, alive, 2, 2, &err), 4, "%s", err.message);
    cr_assert_eq(count_of(s, 4, 0), 2);
    cr_assert_eq(count_of(s, 4, 1), 2);
    /* five shards, two hosts, at most two each: refused, naming the shard and what to do */
    lm_cp_shard_slot_t t[] = {
        {"t0", 5, -1}, {"t1", 4, -1}, {"t2", 3, -1}, {"t3", 2, -1}, {"t4", 1, -1}};
    cr_assert_eq(lm_cp_assign_shards(t, 5, alive, 2, 2, &err), -1);
    cr_assert(strstr(err.message, "shard t4 does not fit") &&
                  strstr(err.message, "list another host or raise the maximum"),
              "%s", err.message);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(t[i].host, -1, "a refused assignment changed nothing");
}

Test(cp_assign, a_lost_hosts_shards_move_and_nothing_else)
{
    lm_cp_shard_slot_t s[] = {
        {"s0", 300, 0}, {"s1", 200, 1}, {"s2", 100, 2}, {"s3", 50, 1}, {"s4", 10, 0}};
    bool alive[] = {true, false, true}; /* host 1 lost */
    lm_error_t err;
    cr_assert_eq(lm_cp_assign_shards(s, 5, alive, 3, 0, &err), 2, "%s", err.message);
    cr_assert_eq(s[0].host, 0, "a shard on a live host stays");
    cr_assert_eq(s[2].host, 2);
    cr_assert_eq(s[4].host, 0);
    /* loads before: h0 310, h2 100; s1 (200) -> h2 (300), then s3 (50) -> h2 (300 < 310) */
    cr_assert_eq(s[1].host, 2);
    cr_assert_eq(s[3].host, 2);
    /* every host lost: refused, nothing changed */
    bool none[] = {false, false, false};
    cr_assert_eq(lm_cp_assign_shards(s, 5, none, 3, 0, &err), -1);
    cr_assert(strstr(err.message, "none of the migration's hosts is alive"), "%s", err.message);
    cr_assert_eq(s[1].host, 2);
    /* a host index out of range counts as no host */
    lm_cp_shard_slot_t u[] = {{"u0", 1, 7}};
    bool one[] = {true};
    cr_assert_eq(lm_cp_assign_shards(u, 1, one, 1, 0, &err), 1);
    cr_assert_eq(u[0].host, 0);
}

Test(cp_assign, the_lead_stays_while_alive_then_passes_on)
{
    bool alive[] = {true, true, true};
    cr_assert_eq(lm_cp_lead_host(alive, 3, -1), 0, "the first listed at the start");
    cr_assert_eq(lm_cp_lead_host(alive, 3, 1), 1);
    alive[1] = false;
    cr_assert_eq(lm_cp_lead_host(alive, 3, 1), 0, "takeover: the first live host");
    alive[0] = false;
    cr_assert_eq(lm_cp_lead_host(alive, 3, 1), 2);
    alive[2] = false;
    cr_assert_eq(lm_cp_lead_host(alive, 3, 2), -1);
}
