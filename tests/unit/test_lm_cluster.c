/* lm_cluster's pure parts (no server): a shard's URI built from the router's URI and the
 * listShards host string, and the chunk-map difference the coordinator acts on. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "lm_cluster.h"
#include "lm_coord.h"

static void uri_ok(const char *router, const char *host, const char *want)
{
    char out[1024];
    lm_error_t err;
    lm_error_init(&err);
    cr_assert(lm_cluster_shard_uri(router, host, out, sizeof out, &err), "%s + %s: %s", router,
              host, err.message);
    cr_assert_str_eq(out, want, "%s + %s", router, host);
    /* libmongoc takes what was built */
    mongoc_uri_t *u = mongoc_uri_new(out);
    cr_assert_not_null(u, "libmongoc refused %s", out);
    mongoc_uri_destroy(u);
}

Test(cluster, shard_uri_keeps_credentials_path_and_options)
{
    uri_ok("mongodb://127.0.0.1:27017", "rs0/127.0.0.1:27018",
           "mongodb://127.0.0.1:27018/?replicaSet=rs0");
    uri_ok("mongodb://127.0.0.1:27017/?directConnection=true", "s-1/h1:1,h2:2",
           "mongodb://h1:1,h2:2/?replicaSet=s-1");
    uri_ok("mongodb://mig:p%40ss%2Fw@router1:27017,router2:27017/admin?tls=true&tlsCAFile=/ca.pem"
           "&authSource=admin",
           "shard0/a:1,b:2,c:3",
           "mongodb://mig:p%40ss%2Fw@a:1,b:2,c:3/admin?tls=true&tlsCAFile=/ca.pem&authSource=admin&"
           "replicaSet=shard0");
    /* the router's own set name, direct connection and load balancing never reach a shard */
    uri_ok("mongodb://r:1/?replicaSet=x&loadBalanced=false&w=majority;DirectConnection=false",
           "sh/h:9", "mongodb://h:9/?w=majority&replicaSet=sh");
    /* SRV implies TLS; an explicit choice is kept */
    uri_ok("mongodb+srv://u:p@cluster.example.net/?srvMaxHosts=2", "sh0/h.example.net:27018",
           "mongodb://u:p@h.example.net:27018/?tls=true&replicaSet=sh0");
    uri_ok("mongodb+srv://cluster.example.net/?ssl=false", "sh0/h:1",
           "mongodb://h:1/?ssl=false&replicaSet=sh0");
}

Test(cluster, shard_uri_refusals_say_what_to_do)
{
    char out[64];
    lm_error_t err;
    lm_error_init(&err);
    cr_assert_not(lm_cluster_shard_uri("mongodb://r:1", "h:1", out, sizeof out, &err));
    cr_assert(strstr(err.message, "must be a replica set"), "%s", err.message);
    cr_assert_str_eq(out, "");
    cr_assert_not(lm_cluster_shard_uri("mongodb://r:1", "/h:1", out, sizeof out, &err));
    cr_assert_not(lm_cluster_shard_uri("mongodb://r:1", "rs/", out, sizeof out, &err));
    cr_assert_not(lm_cluster_shard_uri("http://r:1", "rs/h:1", out, sizeof out, &err));
    cr_assert(strstr(err.message, "mongodb://"), "%s", err.message);
    /* too long for the buffer: refused, nothing half-written */
    cr_assert_not(lm_cluster_shard_uri("mongodb://r:1/?appName=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                       "rs/host.example.net:27017", out, sizeof out, &err));
    cr_assert_eq(err.code, LM_ERR_TOO_LARGE);
    cr_assert_str_eq(out, "");
}

/* chunks of a collection keyed on {k: 1}; bounds -1 = MinKey, 1000 = MaxKey */
static bson_t *bound(int v)
{
    bson_t *b = bson_new();
    if (v == -1)
        BSON_APPEND_MINKEY(b, "k");
    else if (v == 1000)
        BSON_APPEND_MAXKEY(b, "k");
    else
        BSON_APPEND_INT32(b, "k", v);
    return b;
}

static void chunks(lm_chunk_t *out, const int *bounds, const char *const *owners, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[i].min = bound(bounds[i]);
        out[i].max = bound(bounds[i + 1]);
        snprintf(out[i].shard, sizeof out[i].shard, "%s", owners[i]);
    }
}

static void free_chunks(lm_chunk_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bson_destroy(c[i].min);
        bson_destroy(c[i].max);
    }
}

static const char *pair(void *ud, const char *shard)
{
    (void)ud;
    if (strcmp(shard, "src-shard0") == 0)
        return "dst-shard0";
    if (strcmp(shard, "src-shard1") == 0)
        return "dst-shard1";
    if (strcmp(shard, "src-shard2") == 0)
        return "dst-shard2";
    return NULL;
}

Test(cluster, chunk_diff_splits_then_moves)
{
    const int sb[] = {-1, 10, 20, 1000};
    const char *so[] = {"src-shard0", "src-shard1", "src-shard2"};
    const int fresh[] = {-1, 1000};
    const char *fo[] = {"dst-shard1"}; /* a new sharded collection: one chunk on its primary */
    lm_chunk_t s[3], t[1];
    chunks(s, sb, so, 3);
    chunks(t, fresh, fo, 1);
    lm_chunk_diff_t d;
    cr_assert(lm_chunk_diff(s, 3, t, 1, pair, NULL, &d));
    cr_assert_eq(d.n_splits, 2);
    cr_assert(bson_equal(d.splits[0]->min, s[1].min) && bson_equal(d.splits[1]->min, s[2].min));
    /* the MinKey chunk exists on both: its owner differs (dst-shard1, wants dst-shard0) */
    cr_assert_eq(d.n_moves, 1);
    cr_assert_str_eq(d.move_to[0], "dst-shard0");
    cr_assert(bson_equal(d.moves[0]->max, s[0].max));
    cr_assert_eq(d.n_extra, 0);
    lm_chunk_diff_cleanup(&d);

    /* after the splits: the moves that remain, then nothing */
    const char *split_owners[] = {"dst-shard1", "dst-shard1", "dst-shard1"};
    lm_chunk_t t2[3];
    chunks(t2, sb, split_owners, 3);
    cr_assert(lm_chunk_diff(s, 3, t2, 3, pair, NULL, &d));
    cr_assert_eq(d.n_splits, 0);
    cr_assert_eq(d.n_moves, 2);
    cr_assert_str_eq(d.move_to[0], "dst-shard0");
    cr_assert_str_eq(d.move_to[1], "dst-shard2");
    lm_chunk_diff_cleanup(&d);
    const char *done_owners[] = {"dst-shard0", "dst-shard1", "dst-shard2"};
    lm_chunk_t t3[3];
    chunks(t3, sb, done_owners, 3);
    cr_assert(lm_chunk_diff(s, 3, t3, 3, pair, NULL, &d));
    cr_assert_eq(d.n_splits + d.n_moves + d.n_extra + d.n_unmapped, 0);
    lm_chunk_diff_cleanup(&d);
    free_chunks(s, 3);
    free_chunks(t, 1);
    free_chunks(t2, 3);
    free_chunks(t3, 3);
}

Test(cluster, chunk_diff_reports_what_it_cannot_fix)
{
    /* the target has a boundary (15) the source lacks, and a source chunk lives on a shard
     * the pairing does not know */
    const int sb[] = {-1, 10, 1000};
    const char *so[] = {"src-shard0", "src-shard9"};
    const int tb[] = {-1, 10, 15, 1000};
    const char *to[] = {"dst-shard0", "dst-shard1", "dst-shard1"};
    lm_chunk_t s[2], t[3];
    chunks(s, sb, so, 2);
    chunks(t, tb, to, 3);
    lm_chunk_diff_t d;
    cr_assert(lm_chunk_diff(s, 2, t, 3, pair, NULL, &d));
    cr_assert_eq(d.n_splits, 0);
    cr_assert_eq(d.n_moves, 0);
    cr_assert_eq(d.n_extra, 1);
    cr_assert_eq(d.n_unmapped, 1);
    lm_chunk_diff_cleanup(&d);
    free_chunks(s, 2);
    free_chunks(t, 3);
}

/* --shards: items are names or comma-separated lists; none listed: every shard. */
Test(cluster, shard_lists_of_several_agents)
{
    lm_strlist_t l = {0};
    cr_assert(lm_coord_shard_listed(NULL, "s0"));
    cr_assert(lm_coord_shard_listed(&l, "s0"));
    char *items[] = {"s1,s2", "s10"};
    l.items = items;
    l.n = 2;
    cr_assert(lm_coord_shard_listed(&l, "s1"));
    cr_assert(lm_coord_shard_listed(&l, "s2"));
    cr_assert(lm_coord_shard_listed(&l, "s10"));
    cr_assert_not(lm_coord_shard_listed(&l, "s0"));
    cr_assert_not(lm_coord_shard_listed(&l, "s"));     /* no prefix match */
    cr_assert_not(lm_coord_shard_listed(&l, "s1,s2")); /* a list is not a name */
    cr_assert_not(lm_coord_shard_listed(&l, ""));
}

/* The list an assign-shards (command or POST /api/v1/assign-shards) carries. */
Test(cluster, assigned_shard_lists_are_checked)
{
    char msg[512];
    cr_assert(lm_coord_shard_list_check("src-shard0", msg, sizeof msg));
    cr_assert(lm_coord_shard_list_check("src-shard0,src-shard2", msg, sizeof msg));
    cr_assert_not(lm_coord_shard_list_check("", msg, sizeof msg));
    cr_assert(strstr(msg, "empty"), "%s", msg);
    cr_assert_not(lm_coord_shard_list_check(NULL, msg, sizeof msg));
    cr_assert_not(lm_coord_shard_list_check("a,,b", msg, sizeof msg));
    cr_assert(strstr(msg, "empty name"), "%s", msg);
    cr_assert_not(lm_coord_shard_list_check(",a", msg, sizeof msg));
    cr_assert_not(lm_coord_shard_list_check("a,", msg, sizeof msg));
    cr_assert(strstr(msg, "ends with a comma"), "%s", msg);
    cr_assert_not(lm_coord_shard_list_check("a, b", msg, sizeof msg));
    cr_assert(strstr(msg, "bad name '?b'"), "%s", msg);
    cr_assert_not(lm_coord_shard_list_check("a\nforged", msg, sizeof msg));
    cr_assert_null(strchr(msg, '\n'), "a control character was quoted: %s", msg);
    char longname[200];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    cr_assert_not(lm_coord_shard_list_check(longname, msg, sizeof msg));
    cr_assert(strstr(msg, "..."), "%s", msg);
}
