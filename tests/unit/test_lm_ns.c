/* lm_ns: pattern validation, the include/exclude decision, the databases never copied. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "lm_ns.h"

/* A list over string literals (lm_ns only reads it; not to be cleaned up). */
#define LIST(...)                                                                                  \
    ((lm_strlist_t){.items = (char *[]){__VA_ARGS__},                                              \
                    .n = sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)})

static const lm_strlist_t none = {NULL, 0};

static bool sel(lm_strlist_t inc, lm_strlist_t exc, const char *db, const char *coll)
{
    return lm_ns_selected(&inc, &exc, db, coll);
}

Test(ns, valid_patterns)
{
    const char *ok[] = {"shop.orders", "shop.*", "*.users", "shop.order*", "*.*",
                        "a.b",         "db.a.b", "s?op.x",  "[ab]*.logs",  "db..x"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        lm_error_t err;
        lm_error_init(&err);
        cr_assert(lm_ns_pattern_valid(ok[i], &err), "%s: %s", ok[i], err.message);
        cr_assert_eq(err.code, LM_ERR_NONE);
    }
}

Test(ns, patterns_without_both_parts_are_refused)
{
    const char *bad[] = {"", "shop", "*", ".orders", "shop.", ".", "*."};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        lm_error_t err;
        lm_error_init(&err);
        cr_assert_not(lm_ns_pattern_valid(bad[i], &err), "'%s' accepted", bad[i]);
        cr_assert_eq(err.code, LM_ERR_INVALID);
        cr_assert(strstr(err.message, "use db.collection"), "%s", err.message);
    }
}

Test(ns, pattern_length_limit)
{
    char p[LM_NS_MAX + 1];
    lm_error_t err;
    /* "d." then 'c' up to 255 bytes: the longest namespace MongoDB allows */
    memset(p, 'c', sizeof p);
    p[0] = 'd', p[1] = '.';
    p[LM_NS_MAX - 1] = '\0';
    cr_assert_eq(strlen(p), 255);
    lm_error_init(&err);
    cr_assert(lm_ns_pattern_valid(p, &err), "%s", err.message);
    /* one more byte is refused, and the message says the limit */
    memset(p, 'c', sizeof p);
    p[0] = 'd', p[1] = '.';
    p[LM_NS_MAX] = '\0';
    lm_error_init(&err);
    cr_assert_not(lm_ns_pattern_valid(p, &err));
    cr_assert_eq(err.code, LM_ERR_INVALID);
    cr_assert(strstr(err.message, "longer than 255 bytes"), "%s", err.message);
}

Test(ns, internal_databases)
{
    cr_assert(lm_ns_db_is_internal("admin"));
    cr_assert(lm_ns_db_is_internal("local"));
    cr_assert(lm_ns_db_is_internal("config"));
    cr_assert(lm_ns_db_is_internal(LM_META_DB));
    cr_assert(lm_ns_db_is_internal("__livemig"));
    cr_assert_not(lm_ns_db_is_internal("Admin")); /* names are case-sensitive */
    cr_assert_not(lm_ns_db_is_internal("admin2"));
    cr_assert_not(lm_ns_db_is_internal("localdb"));
    cr_assert_not(lm_ns_db_is_internal("__livemig_x"));
    cr_assert_not(lm_ns_db_is_internal(""));
    cr_assert_not(lm_ns_db_is_internal("shop"));
}

Test(ns, no_filters_select_every_user_collection)
{
    cr_assert(sel(none, none, "shop", "orders"));
    cr_assert(sel(none, none, "shop", "orders.2024.archive")); /* dots in collection names */
    cr_assert(sel(none, none, "shop", "systemic"));            /* not a system.* collection */
    cr_assert(sel(none, none, "shop", "my.system.x"));
}

Test(ns, internal_and_system_namespaces_are_never_selected)
{
    lm_strlist_t all = LIST("*.*", "*");
    const char *dbs[] = {"admin", "local", "config", LM_META_DB};
    for (size_t i = 0; i < sizeof dbs / sizeof *dbs; i++) {
        cr_assert_not(sel(none, none, dbs[i], "users"), "%s", dbs[i]);
        cr_assert_not(sel(all, none, dbs[i], "users"), "%s", dbs[i]);
    }
    /* an include naming them exactly does not bring them in either */
    cr_assert_not(sel(LIST("admin.users"), none, "admin", "users"));
    cr_assert_not(sel(LIST("local.oplog.rs"), none, "local", "oplog.rs"));
    cr_assert_not(sel(none, none, "shop", "system.views"));
    cr_assert_not(sel(none, none, "shop", "system.js"));
    cr_assert_not(sel(all, none, "shop", "system.profile"));
    cr_assert_not(sel(LIST("shop.system.buckets.m"), none, "shop", "system.buckets.m"));
}

Test(ns, include_exact_and_database_wildcard)
{
    lm_strlist_t inc = LIST("shop.orders", "crm.*");
    cr_assert(sel(inc, none, "shop", "orders"));
    cr_assert_not(sel(inc, none, "shop", "orders2"));
    cr_assert_not(sel(inc, none, "shop", "customers"));
    cr_assert(sel(inc, none, "crm", "contacts"));
    cr_assert(sel(inc, none, "crm", "a.b.c"));
    cr_assert_not(sel(inc, none, "crm2", "contacts"));
    cr_assert_not(sel(inc, none, "blog", "posts"));
}

Test(ns, globs_span_the_whole_namespace)
{
    cr_assert(sel(LIST("*.users"), none, "shop", "users"));
    cr_assert(sel(LIST("*.users"), none, "crm", "users"));
    cr_assert_not(sel(LIST("*.users"), none, "crm", "users_old"));
    /* '*' crosses dots: a collection "archive.users" ends in ".users" too */
    cr_assert(sel(LIST("*.users"), none, "shop", "archive.users"));
    cr_assert(sel(LIST("shop.order*"), none, "shop", "orders"));
    cr_assert(sel(LIST("shop.order*"), none, "shop", "order.items"));
    cr_assert_not(sel(LIST("shop.order*"), none, "shop", "Orders"));
    cr_assert(sel(LIST("s?op.x"), none, "stop", "x"));
    cr_assert_not(sel(LIST("s?op.x"), none, "sop", "x"));
    cr_assert(sel(LIST("[bc]log.*"), none, "clog", "p"));
    cr_assert_not(sel(LIST("[bc]log.*"), none, "alog", "p"));
}

Test(ns, dots_in_an_exact_pattern_are_literal_bytes)
{
    lm_strlist_t inc = LIST("shop.a.b");
    cr_assert(sel(inc, none, "shop", "a.b"));
    cr_assert_not(sel(inc, none, "shop", "a"));
    cr_assert_not(sel(inc, none, "shop", "aXb"));
}

Test(ns, exclude_wins_over_include)
{
    lm_strlist_t inc = LIST("shop.*"), exc = LIST("shop.tmp*", "*.cache");
    cr_assert(sel(inc, exc, "shop", "orders"));
    cr_assert_not(sel(inc, exc, "shop", "tmp"));
    cr_assert_not(sel(inc, exc, "shop", "tmp_2024"));
    cr_assert_not(sel(inc, exc, "shop", "cache"));
    cr_assert(sel(inc, exc, "shop", "caches"));
    /* excludes alone filter everything else in */
    cr_assert(sel(none, exc, "blog", "posts"));
    cr_assert_not(sel(none, exc, "blog", "cache"));
    cr_assert_not(sel(none, LIST("*.*"), "blog", "posts"));
}

Test(ns, database_listing_decision)
{
    lm_strlist_t inc = LIST("shop.orders", "c*.x", "*.users");
    cr_assert(lm_ns_db_selected(&none, "anything"));
    cr_assert_not(lm_ns_db_selected(&none, "admin"));
    cr_assert_not(lm_ns_db_selected(&none, "config"));
    cr_assert_not(lm_ns_db_selected(&none, LM_META_DB));
    cr_assert(lm_ns_db_selected(&inc, "blog"));      /* "*.users" could select blog.users */
    cr_assert_not(lm_ns_db_selected(&inc, "local")); /* internal, though "*" matches it */

    lm_strlist_t narrow = LIST("shop.orders", "c?m.*");
    cr_assert(lm_ns_db_selected(&narrow, "shop"));
    cr_assert(lm_ns_db_selected(&narrow, "crm"));
    cr_assert_not(lm_ns_db_selected(&narrow, "shop2"));
    cr_assert_not(lm_ns_db_selected(&narrow, "cream"));
    cr_assert_not(lm_ns_db_selected(&narrow, "blog"));
    /* a literal pattern: its database is everything before the first dot */
    lm_strlist_t dotted = LIST("shop.a.b");
    cr_assert(lm_ns_db_selected(&dotted, "shop"));
    cr_assert_not(lm_ns_db_selected(&dotted, "sho"));
    cr_assert_not(lm_ns_db_selected(&dotted, "shopa"));
}

Test(ns, split_at_the_first_dot)
{
    char db[64], coll[LM_NS_MAX];
    cr_assert(lm_ns_split("shop.orders", db, sizeof db, coll, sizeof coll));
    cr_assert_str_eq(db, "shop");
    cr_assert_str_eq(coll, "orders");
    cr_assert(lm_ns_split("shop.a.b.c", db, sizeof db, coll, sizeof coll));
    cr_assert_str_eq(db, "shop");
    cr_assert_str_eq(coll, "a.b.c");
    cr_assert(lm_ns_split("shop.", db, sizeof db, coll, sizeof coll));
    cr_assert_str_eq(db, "shop");
    cr_assert_str_eq(coll, "");
    snprintf(db, sizeof db, "unchanged");
    cr_assert_not(lm_ns_split("nodot", db, sizeof db, coll, sizeof coll));
    cr_assert_str_eq(db, "unchanged");
    cr_assert_not(lm_ns_split("", db, sizeof db, coll, sizeof coll));
}

Test(ns, split_truncates_to_the_buffers)
{
    char db[4], coll[4];
    cr_assert(lm_ns_split("database.collection", db, sizeof db, coll, sizeof coll));
    cr_assert_str_eq(db, "dat");
    cr_assert_str_eq(coll, "col");
}

Test(ns, very_long_namespaces)
{
    char coll[LM_NS_MAX];
    /* a 64-byte database name (MongoDB's limit is 63) and a 250-byte collection */
    char db[65];
    memset(db, 'd', 64);
    db[64] = '\0';
    memset(coll, 'c', 250);
    coll[250] = '\0';
    cr_assert(sel(none, none, db, coll));
    cr_assert(sel(LIST("d*.c*"), none, db, coll));
    cr_assert_not(sel(LIST("d*.c*x"), none, db, coll));
    coll[249] = 'x';
    cr_assert(sel(LIST("d*.c*x"), none, db, coll));
    cr_assert_not(sel(none, LIST("*x"), db, coll));
}

/* The catalog lists a database's collections only when lm_ns_db_selected says so, and the
 * stream applies changes to whatever lm_ns_selected selects: a namespace the second takes
 * must be in a database the first takes, or the copy skips a collection whose later
 * changes the stream then applies. */
Test(ns, a_selected_namespace_is_in_a_listed_database)
{
    const char *patterns[] = {"a*b.c", "*.users", "shop.*",   "s*p.x",
                              "a?b.c", "a*.b.c",  "[ab]*z.q", "x*y*.z"};
    const char *nss[][2] = {{"a", "xb.c"}, {"ab", "c"},     {"a", "b.c"},   {"shop", "users"},
                            {"s", "p.x"},  {"sp", "x"},     {"a", "x.b.c"}, {"b", "z.q"},
                            {"x", "y.z"},  {"xy", "w.y.z"}, {"axb", "c"}};
    for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++) {
        lm_strlist_t inc = {(char *[]){(char *)patterns[i]}, 1};
        for (size_t j = 0; j < sizeof nss / sizeof *nss; j++)
            if (lm_ns_selected(&inc, &none, nss[j][0], nss[j][1]))
                cr_expect(lm_ns_db_selected(&inc, nss[j][0]),
                          "include %s selects %s.%s but database %s is not listed", patterns[i],
                          nss[j][0], nss[j][1], nss[j][0]);
    }
    /* and a database no namespace of which can match stays unlisted */
    lm_strlist_t inc = LIST("a*b.c");
    cr_assert(lm_ns_db_selected(&inc, "a"));
    cr_assert(lm_ns_db_selected(&inc, "axb"));
    cr_assert_not(lm_ns_db_selected(&inc, "b"));
    cr_assert_not(lm_ns_db_selected(&inc, "xa"));
}
