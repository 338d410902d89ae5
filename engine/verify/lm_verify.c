/* lm_verify: see lm_verify.h.
 *
 * Which thread owns what:
 *  - the caller's thread (lm_verify_run) owns the run: catalogs, plans, the task list and
 *    the results; it starts the workers, waits on `done_cv` (a worker leaving, or a second
 *    passing for progress), joins them, then re-checks the differing _ids itself;
 *  - under run->mu: next_task, workers_left, err/failed, each namespace's accumulators
 *    (candidates, counts, hashes, ranges_left) and namespaces_done;
 *  - atomics: documents_done (bumped by workers), the caller's stop flag;
 *  - each worker owns its two clients (popped from the pools) and the range in hand. */
#include "lm_verify.h"

#include <pthread.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lm_catalog.h"
#include "lm_conn.h"
#include "lm_fs.h"
#include "lm_json.h"
#include "lm_log.h"
#include "lm_plan.h"
#include "lm_time.h"

#define DEFAULT_WORKERS 4
#define MAX_WORKERS 32
#define RECHECK_BATCH 200

const char *lm_verify_doc_kind_name(lm_verify_doc_kind_t k)
{
    static const char *const names[] = {"differs", "missing on the target", "extra on the target"};
    return names[k];
}

/* ---- results ---- */

void lm_verify_ns_fail(lm_verify_ns_t *ns, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    ns->pass = false;
    if (ns->reasons.n >= LM_VERIFY_MAX_REASONS)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char **items = realloc(ns->reasons.items, (ns->reasons.n + 1) * sizeof *items);
    if (!items)
        return;
    ns->reasons.items = items;
    if ((items[ns->reasons.n] = strdup(msg)))
        ns->reasons.n++;
}

void lm_verify_ns_add_id(lm_verify_ns_t *ns, const bson_value_t *id, lm_verify_doc_kind_t kind,
                         int max_ids)
{
    if (kind == LM_VERIFY_DOC_DIFFERS)
        ns->docs_differ++;
    else if (kind == LM_VERIFY_DOC_MISSING)
        ns->docs_missing++;
    else
        ns->docs_extra++;
    ns->pass = false;
    if (max_ids <= 0)
        max_ids = LM_VERIFY_MAX_IDS_DEFAULT;
    if (ns->n_ids >= (size_t)max_ids)
        return;
    lm_verify_id_t *ids = realloc(ns->ids, (ns->n_ids + 1) * sizeof *ids);
    if (!ids)
        return;
    ns->ids = ids;
    bson_t one = BSON_INITIALIZER;
    bson_append_value(&one, "_id", 3, id);
    ids[ns->n_ids].id_json = bson_as_canonical_extended_json(&one, NULL);
    ids[ns->n_ids].kind = kind;
    ids[ns->n_ids].detail = NULL;
    bson_destroy(&one);
    if (ids[ns->n_ids].id_json)
        ns->n_ids++;
}

static void ns_cleanup(lm_verify_ns_t *ns)
{
    lm_strlist_cleanup(&ns->reasons);
    for (size_t i = 0; i < ns->n_ids; i++) {
        bson_free(ns->ids[i].id_json);
        free(ns->ids[i].detail);
    }
    free(ns->ids);
}

void lm_verify_result_cleanup(lm_verify_result_t *r)
{
    for (size_t i = 0; r->items && i < r->n; i++)
        ns_cleanup(&r->items[i]);
    free(r->items);
    memset(r, 0, sizeof *r);
}

/* ---- candidates ---- */

void lm_verify_cands_init(lm_verify_cands_t *c)
{
    bson_init(&c->list);
    c->n = 0;
    c->total = 0;
}

void lm_verify_cands_add(lm_verify_cands_t *c, const bson_value_t *id, lm_verify_doc_kind_t kind)
{
    c->total++;
    if (c->n >= LM_VERIFY_MAX_RECHECK)
        return;
    char buf[16];
    const char *key;
    size_t klen = bson_uint32_to_string(c->n, &key, buf, sizeof buf);
    bson_t d;
    bson_append_document_begin(&c->list, key, (int)klen, &d);
    bson_append_value(&d, "_id", 3, id);
    BSON_APPEND_INT32(&d, "k", (int32_t)kind);
    bson_append_document_end(&c->list, &d);
    c->n++;
}

void lm_verify_cands_cleanup(lm_verify_cands_t *c)
{
    bson_destroy(&c->list);
}

/* Adds every candidate of from to into. */
static void cands_merge(lm_verify_cands_t *into, const lm_verify_cands_t *from)
{
    bson_iter_t it, d;
    int64_t listed = 0;
    if (bson_iter_init(&it, &from->list))
        while (bson_iter_next(&it))
            if (bson_iter_recurse(&it, &d) && bson_iter_find(&d, "_id")) {
                bson_value_t id;
                bson_value_copy(bson_iter_value(&d), &id);
                bson_iter_t k;
                bson_iter_recurse(&it, &k);
                int kind = bson_iter_find(&k, "k") ? bson_iter_int32(&k) : 0;
                lm_verify_cands_add(into, &id, (lm_verify_doc_kind_t)kind);
                bson_value_destroy(&id);
                listed++;
            }
    into->total += from->total - listed; /* the ones from did not list */
}

/* ---- the range merge ---- */

typedef struct entry {
    struct entry *next;
    uint64_t h;
    uint8_t side;
    uint8_t digest[32];
    uint32_t klen;
    uint8_t key[]; /* {"": _id} as BSON */
} entry_t;

struct lm_verify_merge {
    entry_t **buckets;
    size_t nbuckets, held;
    bool overflow;
    int64_t count[2];
    uint8_t hash[2][32];
};

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

lm_verify_merge_t *lm_verify_merge_new(void)
{
    lm_verify_merge_t *m = calloc(1, sizeof *m);
    if (m && !(m->buckets = calloc(m->nbuckets = 1024, sizeof *m->buckets))) {
        free(m);
        return NULL;
    }
    return m;
}

static void grow_table(lm_verify_merge_t *m)
{
    size_t n = m->nbuckets * 2;
    entry_t **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < m->nbuckets; i++)
        for (entry_t *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->h & (n - 1)];
            b[e->h & (n - 1)] = e;
        }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

static void key_value(const entry_t *e, bson_value_t *out)
{
    bson_t k;
    bson_iter_t it;
    if (bson_init_static(&k, e->key, e->klen) && bson_iter_init(&it, &k) && bson_iter_next(&it))
        bson_value_copy(bson_iter_value(&it), out);
    else
        memset(out, 0, sizeof *out);
}

bool lm_verify_merge_add(lm_verify_merge_t *m, int side, const bson_t *doc,
                         lm_verify_cands_t *cands)
{
    uint8_t digest[32];
    unsigned int dlen = 0;
    bson_iter_t it;
    EVP_Digest(bson_get_data(doc), doc->len, digest, &dlen, EVP_sha256(), NULL);
    m->count[side]++;
    for (int i = 0; i < 32; i++)
        m->hash[side][i] ^= digest[i];
    if (!bson_iter_init_find(&it, doc, "_id"))
        return !m->overflow;
    bson_t key = BSON_INITIALIZER;
    bson_append_value(&key, "", 0, bson_iter_value(&it));
    const uint8_t *kd = bson_get_data(&key);
    uint64_t h = fnv(kd, key.len);
    entry_t **pp = &m->buckets[h & (m->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next) {
        entry_t *e = *pp;
        if (e->h == h && e->side != side && e->klen == key.len &&
            memcmp(e->key, kd, key.len) == 0) {
            if (memcmp(e->digest, digest, 32) != 0)
                lm_verify_cands_add(cands, bson_iter_value(&it), LM_VERIFY_DOC_DIFFERS);
            *pp = e->next;
            free(e);
            m->held--;
            bson_destroy(&key);
            return !m->overflow;
        }
    }
    if (m->held >= LM_VERIFY_MAX_PENDING) {
        /* held no more: its partner, if one comes, is held in its place (or reported) */
        m->overflow = true;
        lm_verify_cands_add(cands, bson_iter_value(&it),
                            side == 0 ? LM_VERIFY_DOC_MISSING : LM_VERIFY_DOC_EXTRA);
        bson_destroy(&key);
        return false;
    }
    entry_t *e = malloc(sizeof *e + key.len);
    if (e) {
        e->h = h;
        e->side = (uint8_t)side;
        memcpy(e->digest, digest, 32);
        e->klen = key.len;
        memcpy(e->key, kd, key.len);
        e->next = m->buckets[h & (m->nbuckets - 1)];
        m->buckets[h & (m->nbuckets - 1)] = e;
        if (++m->held > m->nbuckets)
            grow_table(m);
    }
    bson_destroy(&key);
    return !m->overflow;
}

void lm_verify_merge_finish(lm_verify_merge_t *m, lm_verify_cands_t *cands)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (entry_t *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            bson_value_t v;
            key_value(e, &v);
            lm_verify_cands_add(cands, &v,
                                e->side == 0 ? LM_VERIFY_DOC_MISSING : LM_VERIFY_DOC_EXTRA);
            bson_value_destroy(&v);
            free(e);
        }
        m->buckets[i] = NULL;
    }
    m->held = 0;
}

bool lm_verify_merge_overflowed(const lm_verify_merge_t *m)
{
    return m->overflow;
}

int64_t lm_verify_merge_count(const lm_verify_merge_t *m, int side)
{
    return m->count[side];
}

const uint8_t *lm_verify_merge_hash(const lm_verify_merge_t *m, int side)
{
    return m->hash[side];
}

void lm_verify_merge_destroy(lm_verify_merge_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++)
        for (entry_t *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(m->buckets);
    free(m);
}

/* ---- options and indexes ---- */

/* True when two values have the same BSON type and bytes. */
static bool same_value(const bson_iter_t *a, const bson_iter_t *b)
{
    bson_t x = BSON_INITIALIZER, y = BSON_INITIALIZER;
    bson_append_value(&x, "", 0, bson_iter_value((bson_iter_t *)a));
    bson_append_value(&y, "", 0, bson_iter_value((bson_iter_t *)b));
    bool same = x.len == y.len && memcmp(bson_get_data(&x), bson_get_data(&y), x.len) == 0;
    bson_destroy(&x);
    bson_destroy(&y);
    return same;
}

/* A value as relaxed extended JSON, cut to fit buf. */
static void value_text(const bson_iter_t *it, char *buf, size_t size)
{
    bson_t one = BSON_INITIALIZER;
    bson_append_value(&one, "v", 1, bson_iter_value((bson_iter_t *)it));
    size_t len;
    char *json = bson_as_relaxed_extended_json(&one, &len);
    /* {"v" : X } -> X */
    const char *v = json ? strstr(json, ": ") : NULL;
    if (v) {
        v += 2;
        size_t n = strlen(v);
        if (n >= 2 && v[n - 1] == '}')
            n -= 2;
        snprintf(buf, size, "%.*s", (int)n, v);
    } else {
        snprintf(buf, size, "?");
    }
    bson_free(json);
    bson_destroy(&one);
}

static bool ignored_field(const char *key, const char *const *ignore)
{
    for (size_t i = 0; ignore && ignore[i]; i++)
        if (strcmp(key, ignore[i]) == 0)
            return true;
    return false;
}

/* Field-by-field comparison of two documents; each difference becomes a reason starting
 * with `what` ("option" or "index 'x_1'"). Field order is not compared (servers report
 * options and specs in their own order). */
static void compare_fields(lm_verify_ns_t *ns, const char *what, const bson_t *s, const bson_t *t,
                           const char *const *ignore)
{
    bson_iter_t a, b;
    char sv[200], tv[200];
    if (bson_iter_init(&a, s))
        while (bson_iter_next(&a)) {
            const char *key = bson_iter_key(&a);
            if (ignored_field(key, ignore))
                continue;
            value_text(&a, sv, sizeof sv);
            if (!bson_iter_init_find(&b, t, key))
                lm_verify_ns_fail(ns, "%s '%s' missing on the target (source %s)", what, key, sv);
            else if (!same_value(&a, &b)) {
                value_text(&b, tv, sizeof tv);
                lm_verify_ns_fail(ns, "%s '%s' differs: source %s, target %s", what, key, sv, tv);
            }
        }
    if (bson_iter_init(&b, t))
        while (bson_iter_next(&b)) {
            const char *key = bson_iter_key(&b);
            if (ignored_field(key, ignore) || bson_iter_init_find(&a, s, key))
                continue;
            value_text(&b, tv, sizeof tv);
            lm_verify_ns_fail(ns, "%s '%s' only on the target (%s)", what, key, tv);
        }
}

void lm_verify_compare_options(lm_verify_ns_t *ns, const bson_t *source, const bson_t *target)
{
    static const char *const ignore[] = {"uuid", NULL};
    compare_fields(ns, "option", source, target, ignore);
}

/* The spec named name in list, or false. */
static bool find_index(const bson_t *list, const char *name, bson_t *spec)
{
    bson_iter_t it, n;
    if (!bson_iter_init(&it, list))
        return false;
    while (bson_iter_next(&it)) {
        const uint8_t *data;
        uint32_t len;
        if (!BSON_ITER_HOLDS_DOCUMENT(&it))
            continue;
        bson_iter_document(&it, &len, &data);
        if (bson_init_static(spec, data, len) && bson_iter_init_find(&n, spec, "name") &&
            BSON_ITER_HOLDS_UTF8(&n) && strcmp(bson_iter_utf8(&n, NULL), name) == 0)
            return true;
    }
    return false;
}

static const char *spec_name(const bson_iter_t *it, bson_t *spec)
{
    const uint8_t *data;
    uint32_t len;
    bson_iter_t n;
    if (!BSON_ITER_HOLDS_DOCUMENT(it))
        return NULL;
    bson_iter_document(it, &len, &data);
    if (!bson_init_static(spec, data, len) || !bson_iter_init_find(&n, spec, "name") ||
        !BSON_ITER_HOLDS_UTF8(&n))
        return NULL;
    return bson_iter_utf8(&n, NULL);
}

void lm_verify_compare_indexes(lm_verify_ns_t *ns, const bson_t *source, const bson_t *target)
{
    static const char *const ignore[] = {"v", "ns", "entryFormat", NULL};
    bson_iter_t it;
    bson_t s, t;
    char what[200];
    if (bson_iter_init(&it, source))
        while (bson_iter_next(&it)) {
            const char *name = spec_name(&it, &s);
            if (!name)
                continue;
            if (!find_index(target, name, &t)) {
                lm_verify_ns_fail(ns, "index '%s' missing on the target", name);
                continue;
            }
            snprintf(what, sizeof what, "index '%s' differs: field", name);
            compare_fields(ns, what, &s, &t, ignore);
        }
    if (bson_iter_init(&it, target))
        while (bson_iter_next(&it)) {
            const char *name = spec_name(&it, &t);
            if (name && !find_index(source, name, &s))
                lm_verify_ns_fail(ns, "index '%s' only on the target", name);
        }
}

/* ---- what differs in a document ---- */

static void append_names(lm_strbuf_t *b, const bson_t *d)
{
    bson_iter_t it;
    bool first = true;
    lm_strbuf_append(b, "(");
    if (bson_iter_init(&it, d))
        while (bson_iter_next(&it)) {
            lm_strbuf_appendf(b, "%s%s", first ? "" : ", ", bson_iter_key(&it));
            first = false;
        }
    lm_strbuf_append(b, ")");
}

void lm_verify_field_diff(const bson_t *s, const bson_t *t, char *buf, size_t size)
{
    bson_iter_t a, b;
    lm_strbuf_t out;
    bool any = false;
    lm_strbuf_init(&out, size > 1 ? size - 1 : 1);
    if (bson_iter_init(&a, s))
        while (bson_iter_next(&a)) {
            const char *key = bson_iter_key(&a);
            bool there = bson_iter_init_find(&b, t, key);
            if (there && same_value(&a, &b))
                continue;
            lm_strbuf_appendf(&out, "%s%s%s", any ? ", " : "fields ", there ? "" : "-", key);
            any = true;
        }
    if (bson_iter_init(&b, t))
        while (bson_iter_next(&b))
            if (!bson_iter_init_find(&a, s, bson_iter_key(&b))) {
                lm_strbuf_appendf(&out, "%s+%s", any ? ", " : "fields ", bson_iter_key(&b));
                any = true;
            }
    if (any) {
        lm_strbuf_append(&out, " (+ only on the target, - only on the source)");
    } else {
        lm_strbuf_append(&out, "field order: source ");
        append_names(&out, s);
        lm_strbuf_append(&out, ", target ");
        append_names(&out, t);
    }
    snprintf(buf, size, "%s", lm_strbuf_str(&out));
    lm_strbuf_cleanup(&out);
}

/* ---- the run ---- */

typedef struct {
    size_t ns;      /* index into run->items */
    uint32_t range; /* its index in the namespace's plan */
    const bson_t *filter;
} task_t;

typedef struct {
    lm_verify_ns_t *res;
    const lm_coll_info_t *src, *dst; /* catalog entries (NULL: absent on that side) */
    bson_t *plan;                    /* {"0": filter, ...} */
    int ranges_left;                 /* under mu */
    lm_verify_cands_t cands;         /* under mu */
    uint8_t meta[32];                /* SHA-256 of both sides' type, options and indexes */
    bson_t done;                     /* under mu: {"0": range record, ...} (resume) */
    uint32_t n_done;                 /* under mu */
} nsw_t;

typedef struct {
    const lm_verify_opts_t *o;
    mongoc_client_pool_t *src_pool, *dst_pool;
    nsw_t *ns;
    size_t n_ns;
    task_t *tasks;
    size_t n_tasks, next_task;
    pthread_mutex_t mu;
    pthread_cond_t done_cv;
    int workers_left;
    bool failed;
    lm_error_t err;
    int64_t namespaces_done; /* with documents compared, or nothing to read */
    atomic_llong documents_done;
    /* resume */
    char key[65];
    char path[1024];       /* the progress file; "" when not kept */
    bson_t *saved;         /* an earlier run's progress (NULL: none) */
    bool dirty;            /* under mu: a range finished since the last save */
    bool save_failed;      /* warned once */
    int64_t docs_resumed;  /* documents of the ranges taken from saved */
    size_t ranges_resumed; /* ranges taken from saved */
    int64_t stop_after;    /* LM_VERIFY_TEST_STOP_AFTER_RANGES (0: off) */
    int64_t ranges_fresh;  /* under mu: ranges compared in this run */
    atomic_bool halt;      /* the test knob's stop */
} run_t;

static bool stopping(const run_t *r)
{
    return (r->o->stop && atomic_load(r->o->stop)) || atomic_load(&r->halt);
}

static void fail_run(run_t *r, const lm_error_t *e)
{
    pthread_mutex_lock(&r->mu);
    if (!r->failed) {
        r->failed = true;
        r->err = *e;
    }
    pthread_mutex_unlock(&r->mu);
}

/* Appends a finished range's outcome to w->done (under mu): what a resumed run merges
 * instead of reading the range again. */
static void record_range(nsw_t *w, uint32_t range, const lm_verify_merge_t *m,
                         const lm_verify_cands_t *cands)
{
    char buf[16];
    const char *key;
    size_t klen = bson_uint32_to_string(w->n_done++, &key, buf, sizeof buf);
    bson_t d;
    bson_append_document_begin(&w->done, key, (int)klen, &d);
    BSON_APPEND_INT32(&d, "i", (int32_t)range);
    BSON_APPEND_INT64(&d, "sd", lm_verify_merge_count(m, 0));
    BSON_APPEND_INT64(&d, "td", lm_verify_merge_count(m, 1));
    BSON_APPEND_BINARY(&d, "sh", BSON_SUBTYPE_BINARY, lm_verify_merge_hash(m, 0), 32);
    BSON_APPEND_BINARY(&d, "th", BSON_SUBTYPE_BINARY, lm_verify_merge_hash(m, 1), 32);
    BSON_APPEND_BOOL(&d, "ov", lm_verify_merge_overflowed(m));
    BSON_APPEND_INT64(&d, "ct", cands->total);
    BSON_APPEND_DOCUMENT(&d, "c", &cands->list);
    bson_append_document_end(&w->done, &d);
}

/* Reads one range from both sides, sorted by _id, one document from each side in turn. */
static bool compare_range(run_t *r, mongoc_client_t *sc, mongoc_client_t *tc, task_t *t,
                          lm_error_t *err)
{
    nsw_t *w = &r->ns[t->ns];
    lm_verify_ns_t *res = w->res;
    char db[128], coll[LM_NS_MAX];
    lm_ns_split(res->ns, db, sizeof db, coll, sizeof coll);
    bson_t *opts = BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}");
    mongoc_collection_t *s = mongoc_client_get_collection(sc, db, coll);
    mongoc_collection_t *d = mongoc_client_get_collection(tc, db, coll);
    mongoc_cursor_t *cur[2] = {mongoc_collection_find_with_opts(s, t->filter, opts, NULL),
                               mongoc_collection_find_with_opts(d, t->filter, opts, NULL)};
    lm_verify_merge_t *m = lm_verify_merge_new();
    lm_verify_cands_t cands;
    lm_verify_cands_init(&cands);
    bool more[2] = {true, true}, ok = m != NULL;
    int64_t n = 0;
    if (!m)
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    while (ok && (more[0] || more[1])) {
        for (int side = 0; side < 2; side++) {
            const bson_t *doc;
            if (!more[side])
                continue;
            if (mongoc_cursor_next(cur[side], &doc)) {
                lm_verify_merge_add(m, side, doc, &cands);
                if (side == 0 && ++n % 256 == 0) {
                    atomic_fetch_add(&r->documents_done, 256);
                    if (stopping(r))
                        ok = false;
                }
                continue;
            }
            more[side] = false;
            bson_error_t be;
            if (mongoc_cursor_error(cur[side], &be)) {
                lm_error_set(err, LM_ERR_SERVER, "%s: reading %s failed: %s",
                             side ? "target" : "source", res->ns, be.message);
                ok = false;
            }
        }
    }
    atomic_fetch_add(&r->documents_done, n % 256);
    if (ok) {
        lm_verify_merge_finish(m, &cands);
        pthread_mutex_lock(&r->mu);
        res->source_docs += lm_verify_merge_count(m, 0);
        res->target_docs += lm_verify_merge_count(m, 1);
        for (int i = 0; i < 32; i++) {
            res->source_hash[i] ^= lm_verify_merge_hash(m, 0)[i];
            res->target_hash[i] ^= lm_verify_merge_hash(m, 1)[i];
        }
        res->overflow |= lm_verify_merge_overflowed(m);
        cands_merge(&w->cands, &cands);
        if (--w->ranges_left == 0)
            r->namespaces_done++;
        if (r->path[0]) {
            record_range(w, t->range, m, &cands);
            r->dirty = true;
        }
        if (r->stop_after > 0 && ++r->ranges_fresh >= r->stop_after)
            atomic_store(&r->halt, true);
        pthread_mutex_unlock(&r->mu);
    }
    lm_verify_cands_cleanup(&cands);
    lm_verify_merge_destroy(m);
    mongoc_cursor_destroy(cur[0]);
    mongoc_cursor_destroy(cur[1]);
    mongoc_collection_destroy(s);
    mongoc_collection_destroy(d);
    bson_destroy(opts);
    return ok;
}

static void *worker_main(void *arg)
{
    run_t *r = arg;
    mongoc_client_t *sc = lm_conn_pool_pop(r->src_pool);
    mongoc_client_t *tc = lm_conn_pool_pop(r->dst_pool);
    lm_error_t err;
    lm_error_init(&err);
    for (;;) {
        pthread_mutex_lock(&r->mu);
        task_t *t = !r->failed && r->next_task < r->n_tasks ? &r->tasks[r->next_task++] : NULL;
        pthread_mutex_unlock(&r->mu);
        if (!t || stopping(r))
            break;
        if (!compare_range(r, sc, tc, t, &err)) {
            if (!stopping(r))
                fail_run(r, &err);
            break;
        }
    }
    mongoc_client_pool_push(r->src_pool, sc);
    mongoc_client_pool_push(r->dst_pool, tc);
    pthread_mutex_lock(&r->mu);
    r->workers_left--;
    pthread_cond_broadcast(&r->done_cv);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- re-checking differing _ids ---- */

typedef struct {
    bson_value_t id;
    lm_verify_doc_kind_t kind;
    bool resolved;
} cand_t;

/* Reads the documents of ids[0..n) from one side: digest[i] (has[i] false when absent). */
static bool fetch_digests(mongoc_client_t *c, const char *db, const char *coll, cand_t *ids,
                          size_t n, uint8_t (*digest)[32], bool *has, bson_error_t *be)
{
    bson_t filter = BSON_INITIALIZER, idf, in;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &idf);
    BSON_APPEND_ARRAY_BEGIN(&idf, "$in", &in);
    for (size_t i = 0; i < n; i++) {
        char buf[16];
        const char *key;
        size_t klen = bson_uint32_to_string((uint32_t)i, &key, buf, sizeof buf);
        bson_append_value(&in, key, (int)klen, &ids[i].id);
        has[i] = false;
    }
    bson_append_array_end(&idf, &in);
    bson_append_document_end(&filter, &idf);
    mongoc_collection_t *cl = mongoc_client_get_collection(c, db, coll);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(cl, &filter, NULL, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (!bson_iter_init_find(&it, doc, "_id"))
            continue;
        bson_t k = BSON_INITIALIZER;
        bson_append_value(&k, "", 0, bson_iter_value(&it));
        for (size_t i = 0; i < n; i++) {
            bson_t k2 = BSON_INITIALIZER;
            bson_append_value(&k2, "", 0, &ids[i].id);
            bool same =
                k.len == k2.len && memcmp(bson_get_data(&k), bson_get_data(&k2), k.len) == 0;
            bson_destroy(&k2);
            if (same) {
                unsigned int dl = 0;
                EVP_Digest(bson_get_data(doc), doc->len, digest[i], &dl, EVP_sha256(), NULL);
                has[i] = true;
                break;
            }
        }
        bson_destroy(&k);
    }
    bool ok = !mongoc_cursor_error(cur, be);
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(cl);
    bson_destroy(&filter);
    return ok;
}

/* One re-read of the unresolved candidates; resolved when both sides now agree (the same
 * bytes, or absent on both). */
static bool recheck_once(mongoc_client_t *sc, mongoc_client_t *tc, const char *ns, cand_t *c,
                         size_t n, lm_error_t *err)
{
    char db[128], coll[LM_NS_MAX];
    lm_ns_split(ns, db, sizeof db, coll, sizeof coll);
    cand_t batch[RECHECK_BATCH];
    size_t where[RECHECK_BATCH];
    uint8_t sd[RECHECK_BATCH][32], td[RECHECK_BATCH][32];
    bool sh[RECHECK_BATCH], th[RECHECK_BATCH];
    size_t i = 0;
    while (i < n) {
        size_t k = 0;
        for (; i < n && k < RECHECK_BATCH; i++)
            if (!c[i].resolved) {
                where[k] = i;
                batch[k++] = c[i];
            }
        if (k == 0)
            break;
        bson_error_t be;
        if (!fetch_digests(sc, db, coll, batch, k, sd, sh, &be) ||
            !fetch_digests(tc, db, coll, batch, k, td, th, &be))
            return lm_error_set(err, LM_ERR_SERVER, "re-reading differing documents of %s: %s", ns,
                                be.message);
        for (size_t j = 0; j < k; j++) {
            cand_t *x = &c[where[j]];
            if (sh[j] && th[j])
                x->resolved = memcmp(sd[j], td[j], 32) == 0, x->kind = LM_VERIFY_DOC_DIFFERS;
            else if (sh[j])
                x->kind = LM_VERIFY_DOC_MISSING;
            else if (th[j])
                x->kind = LM_VERIFY_DOC_EXTRA;
            else
                x->resolved = true; /* deleted on the source, and the delete applied */
        }
    }
    return true;
}

/* Sleeps ms, waking early when *stop is set. */
static void nap(const run_t *r, int64_t ms)
{
    for (int64_t left = ms; left > 0 && !stopping(r); left -= 50) {
        struct timespec ts = {0, (left < 50 ? left : 50) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* One document by _id, or NULL (caller destroys). */
static bson_t *find_one(mongoc_client_t *c, const char *db, const char *coll,
                        const bson_value_t *id)
{
    bson_t filter = BSON_INITIALIZER;
    bson_append_value(&filter, "_id", 3, id);
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
    mongoc_collection_t *cl = mongoc_client_get_collection(c, db, coll);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(cl, &filter, opts, NULL);
    const bson_t *doc;
    bson_t *out = mongoc_cursor_next(cur, &doc) ? bson_copy(doc) : NULL;
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(cl);
    bson_destroy(opts);
    bson_destroy(&filter);
    return out;
}

/* The field names that differ in a listed differing document (malloc'd), or NULL. */
static char *describe(mongoc_client_t *sc, mongoc_client_t *tc, const char *ns,
                      const bson_value_t *id)
{
    char db[128], coll[LM_NS_MAX], buf[512];
    lm_ns_split(ns, db, sizeof db, coll, sizeof coll);
    bson_t *s = find_one(sc, db, coll, id), *t = find_one(tc, db, coll, id);
    char *out = NULL;
    if (s && t) {
        lm_verify_field_diff(s, t, buf, sizeof buf);
        out = strdup(buf);
    }
    bson_destroy(s);
    bson_destroy(t);
    return out;
}

/* The candidates of one namespace as an array (*out, *n; the caller frees the ids). */
static bool load_cands(const lm_verify_cands_t *cs, cand_t **out, size_t *n, lm_error_t *err)
{
    bson_iter_t it, d;
    *n = 0;
    if (!(*out = calloc(cs->n ? cs->n : 1, sizeof **out)))
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    if (bson_iter_init(&it, &cs->list))
        while (bson_iter_next(&it) && *n < cs->n)
            if (bson_iter_recurse(&it, &d) && bson_iter_find(&d, "_id")) {
                cand_t *c = &(*out)[*n];
                bson_value_copy(bson_iter_value(&d), &c->id);
                bson_iter_recurse(&it, &d);
                c->kind = bson_iter_find(&d, "k") ? (lm_verify_doc_kind_t)bson_iter_int32(&d)
                                                  : LM_VERIFY_DOC_DIFFERS;
                (*n)++;
            }
    return true;
}

/* Confirms the candidates of every namespace: recheck_count rounds, each after one wait of
 * recheck_delay_ms, each re-reading what is still unresolved; what still differs after the
 * last round moves into the namespace's result. */
static bool confirm_all(run_t *r, mongoc_client_t *sc, mongoc_client_t *tc, lm_error_t *err)
{
    int max_ids = r->o->max_ids > 0 ? r->o->max_ids : LM_VERIFY_MAX_IDS_DEFAULT;
    int rounds = r->o->recheck_count < 0 ? 3 : r->o->recheck_count;
    int64_t delay = r->o->recheck_delay_ms < 0 ? 1000 : r->o->recheck_delay_ms;
    cand_t **c = calloc(r->n_ns ? r->n_ns : 1, sizeof *c);
    size_t *n = calloc(r->n_ns ? r->n_ns : 1, sizeof *n);
    bool ok = c && n;
    if (!ok)
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    for (size_t k = 0; ok && k < r->n_ns; k++)
        ok = load_cands(&r->ns[k].cands, &c[k], &n[k], err);
    for (int round = 0; ok && round < rounds && !stopping(r); round++) {
        size_t open = 0;
        for (size_t k = 0; k < r->n_ns; k++)
            for (size_t i = 0; i < n[k]; i++)
                open += !c[k][i].resolved;
        if (!open)
            break;
        lm_log_info(NULL,
                    "verify: %zu document(s) differ: reading them again in %lld ms (%d of %d)",
                    open, (long long)delay, round + 1, rounds);
        nap(r, delay);
        for (size_t k = 0; ok && k < r->n_ns; k++)
            if (n[k])
                ok = recheck_once(sc, tc, r->ns[k].res->ns, c[k], n[k], err);
    }
    for (size_t k = 0; c && n && k < r->n_ns; k++) {
        lm_verify_ns_t *res = r->ns ? r->ns[k].res : NULL;
        for (size_t i = 0; c[k] && i < n[k]; i++) {
            if (ok && !c[k][i].resolved) {
                size_t before = res->n_ids;
                lm_verify_ns_add_id(res, &c[k][i].id, c[k][i].kind, max_ids);
                if (res->n_ids > before && c[k][i].kind == LM_VERIFY_DOC_DIFFERS)
                    res->ids[before].detail = describe(sc, tc, res->ns, &c[k][i].id);
            }
            bson_value_destroy(&c[k][i].id);
        }
        free(c[k]);
        r->ns[k].res->unchecked = r->ns[k].cands.total - (int64_t)r->ns[k].cands.n;
    }
    free(c);
    free(n);
    return ok;
}

/* ---- resume: the progress file ---- */

bool lm_verify_resume_key(const lm_job_t *job, char hex[65], lm_error_t *err)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, "livemig-verify 1", 17);
    bool ok = true;
    for (int side = 0; ok && side < 2; side++) {
        const lm_endpoint_t *ep = side ? &job->target : &job->source;
        bson_error_t be;
        mongoc_uri_t *u = ep->uri ? mongoc_uri_new_with_error(ep->uri, &be) : NULL;
        if (!u) {
            ok = lm_error_set(err, LM_ERR_INVALID, "the %s URI does not parse",
                              side ? "target" : "source");
            break;
        }
        EVP_DigestUpdate(ctx, side ? "\ntarget:" : "\nsource:", 8);
        const char *srv = mongoc_uri_get_srv_hostname(u);
        if (srv)
            EVP_DigestUpdate(ctx, srv, strlen(srv) + 1);
        for (const mongoc_host_list_t *h = mongoc_uri_get_hosts(u); h; h = h->next)
            EVP_DigestUpdate(ctx, h->host_and_port, strlen(h->host_and_port) + 1);
        mongoc_uri_destroy(u);
    }
    for (int k = 0; ok && k < 2; k++) {
        const lm_strlist_t *l = k ? &job->exclude : &job->include;
        EVP_DigestUpdate(ctx, k ? "\nexclude:" : "\ninclude:", 9);
        for (size_t i = 0; i < l->n; i++)
            EVP_DigestUpdate(ctx, l->items[i], strlen(l->items[i]) + 1);
    }
    char split[64];
    int n =
        snprintf(split, sizeof split, "\nsplit:%d %lld", job->split, (long long)job->split_docs);
    EVP_DigestUpdate(ctx, split, (size_t)n);
    uint8_t md[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return ok;
}

bool lm_verify_progress_parse(const char *text, size_t len, const char *key, bson_t **out,
                              lm_error_t *err)
{
    bson_error_t be;
    bson_iter_t it;
    *out = NULL;
    bson_t *doc = bson_new_from_json((const uint8_t *)text, (ssize_t)len, &be);
    if (!doc)
        return lm_error_set(err, LM_ERR_INVALID,
                            "not a livemig verification progress file (not JSON: %s)", be.message);
    if (!bson_iter_init_find(&it, doc, "livemigVerifyProgress") || !BSON_ITER_HOLDS_INT32(&it) ||
        bson_iter_int32(&it) != 1) {
        bson_destroy(doc);
        return lm_error_set(err, LM_ERR_INVALID,
                            "not a livemig verification progress file of this version");
    }
    if (!bson_iter_init_find(&it, doc, "key") || !BSON_ITER_HOLDS_UTF8(&it) ||
        strcmp(bson_iter_utf8(&it, NULL), key) != 0) {
        bson_destroy(doc);
        return lm_error_set(err, LM_ERR_INVALID,
                            "it belongs to another comparison (other hosts, filters or split "
                            "settings)");
    }
    if (!bson_iter_init_find(&it, doc, "updated") || !BSON_ITER_HOLDS_DATE_TIME(&it) ||
        !bson_iter_init_find(&it, doc, "namespaces") || !BSON_ITER_HOLDS_ARRAY(&it)) {
        bson_destroy(doc);
        return lm_error_set(err, LM_ERR_INVALID,
                            "a livemig verification progress file without its 'updated' time or "
                            "'namespaces' list");
    }
    *out = doc;
    return true;
}

/* The SHA-256 of both sides' type, options and index specs: a namespace whose metadata
 * changed since the interrupted run has its documents compared again. */
static void meta_digest(nsw_t *w)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    memset(w->meta, 0, sizeof w->meta);
    if (!ctx)
        return;
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    const lm_coll_info_t *c[2] = {w->src, w->dst};
    for (int i = 0; i < 2; i++) {
        EVP_DigestUpdate(ctx, c[i]->type, strlen(c[i]->type) + 1);
        const bson_t *b[2] = {c[i]->options, c[i]->indexes};
        for (int k = 0; k < 2; k++)
            if (b[k])
                EVP_DigestUpdate(ctx, bson_get_data(b[k]), b[k]->len);
            else
                EVP_DigestUpdate(ctx, "", 1);
    }
    EVP_DigestFinal_ex(ctx, w->meta, &len);
    EVP_MD_CTX_free(ctx);
}

static bool sub_doc(const bson_t *d, const char *key, bool array, bson_t *out)
{
    bson_iter_t it;
    const uint8_t *data;
    uint32_t len;
    if (!bson_iter_init_find(&it, d, key) ||
        !(array ? BSON_ITER_HOLDS_ARRAY(&it) : BSON_ITER_HOLDS_DOCUMENT(&it)))
        return false;
    if (array)
        bson_iter_array(&it, &len, &data);
    else
        bson_iter_document(&it, &len, &data);
    return bson_init_static(out, data, len);
}

static bool bin32(const bson_t *d, const char *key, const uint8_t **out)
{
    bson_iter_t it;
    bson_subtype_t st;
    uint32_t len = 0;
    if (!bson_iter_init_find(&it, d, key) || !BSON_ITER_HOLDS_BINARY(&it))
        return false;
    bson_iter_binary(&it, &st, &len, out);
    return len == 32;
}

static bool int64_field(const bson_t *d, const char *key, int64_t *out)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, d, key) || !BSON_ITER_HOLDS_INT64(&it))
        return false;
    *out = bson_iter_int64(&it);
    return *out >= 0;
}

/* A finished range's record, checked: its index below n_ranges, counts, hashes and
 * candidates of a known kind. */
static bool range_record_ok(const bson_t *rec, uint32_t n_ranges, uint32_t *range)
{
    bson_iter_t it, c, e;
    int64_t v;
    const uint8_t *h;
    if (!bson_iter_init_find(&it, rec, "i") || !BSON_ITER_HOLDS_INT32(&it) ||
        bson_iter_int32(&it) < 0 || (uint32_t)bson_iter_int32(&it) >= n_ranges)
        return false;
    *range = (uint32_t)bson_iter_int32(&it);
    if (!int64_field(rec, "sd", &v) || !int64_field(rec, "td", &v) || !int64_field(rec, "ct", &v) ||
        !bin32(rec, "sh", &h) || !bin32(rec, "th", &h) || !bson_iter_init_find(&it, rec, "ov") ||
        !BSON_ITER_HOLDS_BOOL(&it) || !bson_iter_init_find(&c, rec, "c") ||
        !BSON_ITER_HOLDS_DOCUMENT(&c) || !bson_iter_recurse(&c, &e))
        return false;
    while (bson_iter_next(&e)) {
        bson_iter_t f;
        if (!BSON_ITER_HOLDS_DOCUMENT(&e) || !bson_iter_recurse(&e, &f) ||
            !bson_iter_find(&f, "_id") || !bson_iter_recurse(&e, &f) || !bson_iter_find(&f, "k") ||
            !BSON_ITER_HOLDS_INT32(&f) || bson_iter_int32(&f) < 0 ||
            bson_iter_int32(&f) > LM_VERIFY_DOC_EXTRA)
            return false;
    }
    return true;
}

/* Takes w's plan and finished ranges from the earlier run's progress (r->saved) when it
 * has the namespace with the same metadata: *skip[k] is set for each finished range k. */
static bool resume_ns(run_t *r, nsw_t *w, uint8_t **skip)
{
    bson_t list, entry, plan, done;
    bson_iter_t it, f;
    if (!r->saved || !sub_doc(r->saved, "namespaces", true, &list) || !bson_iter_init(&it, &list))
        return false;
    while (bson_iter_next(&it)) {
        const uint8_t *data, *meta;
        uint32_t len;
        if (!BSON_ITER_HOLDS_DOCUMENT(&it))
            continue;
        bson_iter_document(&it, &len, &data);
        if (!bson_init_static(&entry, data, len) || !bson_iter_init_find(&f, &entry, "ns") ||
            !BSON_ITER_HOLDS_UTF8(&f) || strcmp(bson_iter_utf8(&f, NULL), w->res->ns) != 0)
            continue;
        if (!bin32(&entry, "meta", &meta) || memcmp(meta, w->meta, 32) != 0) {
            lm_log_info(NULL,
                        "verify: %s: its type, options or indexes changed since the interrupted "
                        "run: its documents are compared again",
                        w->res->ns);
            return false;
        }
        uint32_t n = 0;
        bool ok = sub_doc(&entry, "plan", false, &plan) && sub_doc(&entry, "done", true, &done);
        bson_iter_t p, d;
        if (ok && bson_iter_init(&p, &plan))
            while (ok && bson_iter_next(&p))
                ok = BSON_ITER_HOLDS_DOCUMENT(&p) && ++n < 1000000;
        uint8_t *sk = ok ? calloc(n ? n : 1, 1) : NULL;
        ok = sk && bson_iter_init(&d, &done);
        while (ok && bson_iter_next(&d)) {
            bson_t rec;
            uint32_t k;
            ok = BSON_ITER_HOLDS_DOCUMENT(&d);
            if (ok) {
                bson_iter_document(&d, &len, &data);
                ok = bson_init_static(&rec, data, len) && range_record_ok(&rec, n, &k) && !sk[k];
            }
            if (ok)
                sk[k] = 1;
        }
        if (!ok) {
            lm_log_warn(NULL,
                        "verify: %s: its record in the progress file %s is damaged: its "
                        "documents are compared again",
                        w->res->ns, r->path);
            free(sk);
            return false;
        }
        /* every record checked: merge them as if their ranges had just been compared */
        w->plan = bson_copy(&plan);
        w->ranges_left = (int)n;
        bson_iter_init(&d, &done);
        while (bson_iter_next(&d)) {
            bson_t rec;
            bson_iter_document(&d, &len, &data);
            bson_init_static(&rec, data, len);
            int64_t sd = 0, td = 0, ct = 0;
            const uint8_t *sh, *th;
            int64_field(&rec, "sd", &sd);
            int64_field(&rec, "td", &td);
            int64_field(&rec, "ct", &ct);
            bin32(&rec, "sh", &sh);
            bin32(&rec, "th", &th);
            bson_iter_init_find(&f, &rec, "ov");
            w->res->overflow |= bson_iter_bool(&f);
            w->res->source_docs += sd;
            w->res->target_docs += td;
            for (int i = 0; i < 32; i++) {
                w->res->source_hash[i] ^= sh[i];
                w->res->target_hash[i] ^= th[i];
            }
            lm_verify_cands_t c = {.n = 0, .total = ct};
            sub_doc(&rec, "c", false, &c.list);
            cands_merge(&w->cands, &c);
            char buf[16];
            const char *key;
            size_t klen = bson_uint32_to_string(w->n_done++, &key, buf, sizeof buf);
            bson_append_document(&w->done, key, (int)klen, &rec);
            w->ranges_left--;
            r->ranges_resumed++;
            r->docs_resumed += sd;
        }
        atomic_fetch_add(&r->documents_done, w->res->source_docs);
        *skip = sk;
        return true;
    }
    return false;
}

/* Writes the progress file when a range finished since the last write. */
static void progress_save(run_t *r)
{
    if (!r->path[0])
        return;
    bson_t doc = BSON_INITIALIZER, arr;
    pthread_mutex_lock(&r->mu);
    bool dirty = r->dirty;
    r->dirty = false;
    if (dirty) {
        BSON_APPEND_INT32(&doc, "livemigVerifyProgress", 1);
        BSON_APPEND_UTF8(&doc, "key", r->key);
        BSON_APPEND_DATE_TIME(&doc, "updated", lm_time_now_ms());
        BSON_APPEND_ARRAY_BEGIN(&doc, "namespaces", &arr);
        uint32_t k = 0;
        for (size_t i = 0; i < r->n_ns; i++) {
            nsw_t *w = &r->ns[i];
            if (!w->plan)
                continue;
            char buf[16];
            const char *key;
            size_t klen = bson_uint32_to_string(k++, &key, buf, sizeof buf);
            bson_t e;
            bson_append_document_begin(&arr, key, (int)klen, &e);
            BSON_APPEND_UTF8(&e, "ns", w->res->ns);
            BSON_APPEND_BINARY(&e, "meta", BSON_SUBTYPE_BINARY, w->meta, 32);
            BSON_APPEND_DOCUMENT(&e, "plan", w->plan);
            BSON_APPEND_ARRAY(&e, "done", &w->done);
            bson_append_document_end(&arr, &e);
        }
        bson_append_array_end(&doc, &arr);
    }
    pthread_mutex_unlock(&r->mu);
    if (!dirty)
        return;
    size_t len = 0;
    char *json = bson_as_canonical_extended_json(&doc, &len);
    lm_error_t err;
    lm_error_init(&err);
    bool ok = json && lm_fs_mkdir_p(r->o->state_dir, 0700, &err) &&
              lm_fs_write_atomic(r->path, json, len, 0600, &err);
    if (!ok && !r->save_failed) {
        r->save_failed = true;
        lm_log_warn(NULL,
                    "verify: cannot keep its progress in %s: %s (the verification goes on; an "
                    "interrupted one would start over)",
                    r->path, json ? err.message : "out of memory");
    }
    bson_free(json);
    bson_destroy(&doc);
}

/* Reads an earlier run's progress file, if there is one; a damaged or foreign one is
 * ignored with a warning (and replaced as this run goes). */
static void progress_load(run_t *r)
{
    struct stat st;
    char *text = NULL;
    size_t len = 0;
    lm_error_t err;
    lm_error_init(&err);
    if (stat(r->path, &st) != 0)
        return;
    if (!lm_fs_read_file(r->path, 1u << 30, &text, &len, &err) ||
        !lm_verify_progress_parse(text, len, r->key, &r->saved, &err))
        lm_log_warn(NULL,
                    "verify: ignoring the progress file %s: %s; the verification starts over "
                    "(the file is replaced as it goes)",
                    r->path, err.message);
    free(text);
}

/* ---- catalogs ---- */

static const lm_coll_info_t *find_coll(const lm_catalog_t *cat, const char *ns)
{
    for (size_t i = 0; i < cat->n; i++)
        if (strcmp(cat->items[i].ns, ns) == 0)
            return &cat->items[i];
    return NULL;
}

static int by_ns(const void *a, const void *b)
{
    return strcmp(((const nsw_t *)a)->res->ns, ((const nsw_t *)b)->res->ns);
}

/* One entry per namespace of either catalog; the metadata checks done here. */
static bool build_namespaces(run_t *r, const lm_catalog_t *sc, const lm_catalog_t *tc,
                             lm_verify_result_t *out, lm_error_t *err)
{
    size_t cap = sc->n + tc->n;
    out->items = calloc(cap ? cap : 1, sizeof *out->items);
    r->ns = calloc(cap ? cap : 1, sizeof *r->ns);
    if (!out->items || !r->ns)
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    for (int side = 0; side < 2; side++) {
        const lm_catalog_t *cat = side ? tc : sc;
        for (size_t i = 0; i < cat->n; i++) {
            const lm_coll_info_t *c = &cat->items[i];
            if (side == 1 && find_coll(sc, c->ns))
                continue;
            lm_verify_ns_t *res = &out->items[out->n];
            nsw_t *w = &r->ns[r->n_ns];
            w->res = res;
            lm_verify_cands_init(&w->cands);
            bson_init(&w->done);
            out->n++, r->n_ns++;
            snprintf(res->ns, sizeof res->ns, "%s", c->ns);
            snprintf(res->type, sizeof res->type, "%s", c->type);
            res->pass = true;
            res->source_docs = res->target_docs = -1;
            w->src = side ? NULL : c;
            w->dst = side ? c : find_coll(tc, c->ns);
            res->on_source = w->src != NULL;
            res->on_target = w->dst != NULL;
        }
    }
    for (size_t i = 0; i < r->n_ns; i++) {
        nsw_t *w = &r->ns[i];
        lm_verify_ns_t *res = w->res;
        if (!w->src) {
            lm_verify_ns_fail(res, "extra on the target: not on the source");
            continue;
        }
        if (!w->dst) {
            lm_verify_ns_fail(res, "missing on the target");
            continue;
        }
        if (strcmp(w->src->type, w->dst->type) != 0)
            lm_verify_ns_fail(res, "type differs: source %s, target %s", w->src->type,
                              w->dst->type);
        lm_verify_compare_options(res, w->src->options, w->dst->options);
        if (!r->o->skip_indexes && !lm_coll_is_view(w->src))
            lm_verify_compare_indexes(res, w->src->indexes, w->dst->indexes);
    }
    /* nsw_t and results were filled in the same order; sort both by namespace together */
    qsort(r->ns, r->n_ns, sizeof *r->ns, by_ns);
    lm_verify_ns_t *sorted = calloc(out->n ? out->n : 1, sizeof *sorted);
    if (!sorted)
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < r->n_ns; i++) {
        sorted[i] = *r->ns[i].res;
        r->ns[i].res = &sorted[i];
    }
    free(out->items);
    out->items = sorted;
    return true;
}

/* Plans the ranges of every namespace on both sides and lists them as tasks. */
static bool plan_tasks(run_t *r, mongoc_client_t *src, lm_error_t *err)
{
    size_t cap = 0;
    /* per namespace: the ranges taken as done from r->saved */
    uint8_t **skip = calloc(r->n_ns ? r->n_ns : 1, sizeof *skip);
    bool ok = skip != NULL;
    if (!ok)
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < r->n_ns; i++) {
        nsw_t *w = &r->ns[i];
        if (!w->src || !w->dst || lm_coll_is_view(w->src) || lm_coll_is_view(w->dst)) {
            r->namespaces_done++; /* checked already: presence, type, options */
            continue;
        }
        w->res->source_docs = w->res->target_docs = 0;
        meta_digest(w);
        if (!resume_ns(r, w, &skip[i])) {
            w->plan = bson_new();
            lm_coll_info_t info = *w->src; /* lm_plan fills est_docs */
            if (!lm_plan_ranges(src, &info, r->o->job->split_docs, r->o->job->split, w->plan,
                                err)) {
                ok = false;
                break;
            }
            w->ranges_left = (int)bson_count_keys(w->plan);
        }
        cap += (size_t)w->ranges_left;
        if (w->ranges_left == 0)
            r->namespaces_done++;
    }
    r->tasks = ok ? calloc(cap ? cap : 1, sizeof *r->tasks) : NULL;
    if (ok && !r->tasks)
        ok = lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; ok && i < r->n_ns; i++) {
        bson_iter_t it;
        if (!r->ns[i].plan || !bson_iter_init(&it, r->ns[i].plan))
            continue;
        for (uint32_t k = 0; ok && bson_iter_next(&it); k++) {
            const uint8_t *data;
            uint32_t len;
            if (skip[i] && skip[i][k])
                continue;
            bson_iter_document(&it, &len, &data);
            bson_t *f = bson_new_from_data(data, len);
            if (!f) {
                ok = lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
                break;
            }
            r->tasks[r->n_tasks].ns = i;
            r->tasks[r->n_tasks].range = k;
            r->tasks[r->n_tasks++].filter = f;
        }
    }
    for (size_t i = 0; i < r->n_ns; i++)
        free(skip[i]);
    free(skip);
    return ok;
}

static int64_t estimate_docs(run_t *r, mongoc_client_t *src)
{
    int64_t total = 0;
    for (size_t i = 0; i < r->n_ns; i++)
        if (r->ns[i].plan) {
            lm_coll_info_t info = *r->ns[i].src;
            lm_catalog_estimate(src, &info);
            total += info.est_docs;
        }
    return total;
}

/* ---- status ---- */

static void publish(run_t *r, lm_verify_state_t state, int64_t total_docs, int64_t started,
                    const char *error)
{
    lm_verify_progress_t p = {.namespaces_total = (int64_t)r->n_ns,
                              .documents_total = total_docs,
                              .documents_done = atomic_load(&r->documents_done),
                              .eta_seconds = -1};
    pthread_mutex_lock(&r->mu);
    p.namespaces_done = r->namespaces_done;
    pthread_mutex_unlock(&r->mu);
    double secs = (double)(lm_time_now_ms() - started) / 1000.0;
    /* the rate is of this run's documents: a resumed run starts its count at the documents
     * of the ranges it took as done */
    int64_t fresh = p.documents_done - r->docs_resumed;
    /* not before 5% are done: a server that materialises a query's result before the first
     * batch (SecantusDB) makes the first seconds look far slower than the rest */
    if (total_docs > 0 && fresh >= (total_docs - r->docs_resumed) / 20 && fresh > 0 && secs > 0.5) {
        double left = (double)(total_docs - p.documents_done);
        p.eta_seconds = left > 0 ? left / ((double)fresh / secs) : 0;
    }
    if (r->o->status)
        lm_status_set_verify_progress(r->o->status, state, &p, error);
    if (r->o->progress && state == LM_VERIFY_RUNNING)
        r->o->progress(r->o->progress_ud, &p);
}

/* The difference lines the status API shows: one per failing namespace, _ids capped. */
static void publish_differences(const lm_verify_opts_t *o, const lm_verify_result_t *res)
{
    if (!o->status)
        return;
    for (size_t i = 0; i < res->n; i++) {
        const lm_verify_ns_t *ns = &res->items[i];
        if (ns->pass)
            continue;
        lm_strbuf_t line;
        lm_strbuf_init(&line, 4096);
        lm_strbuf_appendf(&line, "%s:", ns->ns);
        for (size_t k = 0; k < ns->reasons.n; k++)
            lm_strbuf_appendf(&line, "%s %s", k ? ";" : "", ns->reasons.items[k]);
        for (size_t k = 0; k < ns->n_ids; k++)
            lm_strbuf_appendf(&line, "%s%s (%s%s%s)", k ? ", " : "; _ids: ", ns->ids[k].id_json,
                              lm_verify_doc_kind_name(ns->ids[k].kind),
                              ns->ids[k].detail ? ": " : "",
                              ns->ids[k].detail ? ns->ids[k].detail : "");
        lm_status_verify_add_difference(o->status, lm_strbuf_str(&line));
        lm_strbuf_cleanup(&line);
    }
}

/* ---- lm_verify_run ---- */

static mongoc_client_pool_t *open_pool(const lm_verify_opts_t *o, const lm_endpoint_t *ep,
                                       const char *side, int workers, lm_error_t *err)
{
    lm_conn_opts_t c = lm_conn_opts_for(o->job, ep, side, NULL, "livemig-verify");
    mongoc_client_pool_t *p = lm_conn_pool_new(&c, err);
    if (p)
        mongoc_client_pool_max_size(p, (uint32_t)workers + 2);
    return p;
}

/* The document-level summary reasons of a namespace, after the re-checks. */
static void summarize(const lm_verify_opts_t *o, nsw_t *w)
{
    lm_verify_ns_t *res = w->res;
    int64_t confirmed = res->docs_differ + res->docs_missing + res->docs_extra;
    (void)o;
    if (res->overflow)
        lm_verify_ns_fail(res,
                          "more than %d documents of one range had no partner on the other side: "
                          "the sides differ widely (only the first %d are re-checked and listed)",
                          LM_VERIFY_MAX_PENDING, LM_VERIFY_MAX_RECHECK);
    if (res->unchecked > 0)
        lm_verify_ns_fail(res, "%lld more differing document(s) found but not re-checked",
                          (long long)res->unchecked);
    if (confirmed > 0 && res->source_docs != res->target_docs)
        lm_verify_ns_fail(res, "count differs: source %lld, target %lld",
                          (long long)res->source_docs, (long long)res->target_docs);
    if (res->docs_missing)
        lm_verify_ns_fail(res, "%lld document(s) missing on the target",
                          (long long)res->docs_missing);
    if (res->docs_extra)
        lm_verify_ns_fail(res, "%lld document(s) extra on the target", (long long)res->docs_extra);
    if (res->docs_differ)
        lm_verify_ns_fail(res, "%lld document(s) differ", (long long)res->docs_differ);
}

static void run_cleanup(run_t *r)
{
    for (size_t i = 0; i < r->n_tasks; i++)
        bson_destroy((bson_t *)r->tasks[i].filter);
    free(r->tasks);
    for (size_t i = 0; r->ns && i < r->n_ns; i++) {
        bson_destroy(r->ns[i].plan);
        lm_verify_cands_cleanup(&r->ns[i].cands);
        bson_destroy(&r->ns[i].done);
    }
    free(r->ns);
}

/* Starts the workers and waits for them, publishing progress once a second. */
static bool run_workers(run_t *r, int workers, int64_t total_docs, int64_t started, lm_error_t *err)
{
    pthread_t th[MAX_WORKERS];
    int started_n = 0;
    int64_t last_save = lm_time_mono_ms();
    pthread_mutex_lock(&r->mu);
    r->workers_left = 0;
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < workers; i++) {
        pthread_mutex_lock(&r->mu);
        r->workers_left++;
        pthread_mutex_unlock(&r->mu);
        if (pthread_create(&th[i], NULL, worker_main, r) != 0) {
            pthread_mutex_lock(&r->mu);
            r->workers_left--;
            pthread_mutex_unlock(&r->mu);
            break;
        }
        started_n++;
    }
    if (started_n == 0)
        return lm_error_set(err, LM_ERR_INTERNAL, "cannot start a verify worker thread");
    pthread_mutex_lock(&r->mu);
    while (r->workers_left > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&r->done_cv, &r->mu, &ts);
        pthread_mutex_unlock(&r->mu);
        publish(r, LM_VERIFY_RUNNING, total_docs, started, NULL);
        if (lm_time_mono_ms() - last_save >= 1000) {
            progress_save(r);
            last_save = lm_time_mono_ms();
        }
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < started_n; i++)
        pthread_join(th[i], NULL);
    progress_save(r); /* the ranges finished since the last save (stopped, or failed) */
    if (r->failed) {
        *err = r->err;
        return false;
    }
    return true;
}

bool lm_verify_run(const lm_verify_opts_t *o, lm_verify_result_t *out, lm_error_t *err)
{
    run_t r;
    lm_catalog_t scat, tcat;
    mongoc_client_t *sc = NULL, *tc = NULL;
    int workers =
        o->workers > 0 ? (o->workers > MAX_WORKERS ? MAX_WORKERS : o->workers) : DEFAULT_WORKERS;
    int64_t started = lm_time_now_ms(), total_docs = -1;
    bool ok = false;

    memset(out, 0, sizeof *out);
    memset(&r, 0, sizeof r);
    memset(&scat, 0, sizeof scat);
    memset(&tcat, 0, sizeof tcat);
    r.o = o;
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.done_cv, NULL);
    lm_error_init(&r.err);
    if (o->status)
        lm_status_set_verify_progress(o->status, LM_VERIFY_RUNNING, NULL, NULL);
    const char *knob = getenv("LM_VERIFY_TEST_STOP_AFTER_RANGES");
    r.stop_after = knob ? strtoll(knob, NULL, 10) : 0;
    if (o->state_dir && o->state_dir[0]) {
        lm_error_t kerr;
        lm_error_init(&kerr);
        if (!lm_verify_resume_key(o->job, r.key, &kerr))
            lm_log_warn(NULL, "verify: its progress is not kept: %s", kerr.message);
        else if ((size_t)snprintf(r.path, sizeof r.path, "%s/verify-%.32s.json", o->state_dir,
                                  r.key) >= sizeof r.path)
            r.path[0] = '\0';
        if (r.path[0] && o->restart && unlink(r.path) == 0)
            lm_log_info(NULL, "verify: --restart: the progress of an earlier run (%s) is removed",
                        r.path);
    }

    r.src_pool = o->source ? o->source : open_pool(o, &o->job->source, "source", workers, err);
    r.dst_pool = o->target ? o->target : open_pool(o, &o->job->target, "target", workers, err);
    if (!r.src_pool || !r.dst_pool)
        goto out;
    sc = lm_conn_pool_pop(r.src_pool);
    tc = lm_conn_pool_pop(r.dst_pool);
    if (!lm_catalog_load(sc, o->job, &scat, err))
        goto out;
    if (!lm_catalog_load(tc, o->job, &tcat, err)) {
        lm_error_prefix(err, "reading the target's namespaces");
        goto out;
    }
    if (!build_namespaces(&r, &scat, &tcat, out, err))
        goto out;
    if (r.path[0] && !o->restart)
        progress_load(&r);
    if (!plan_tasks(&r, sc, err))
        goto out;
    out->ranges_total = r.n_tasks + r.ranges_resumed;
    out->ranges_resumed = r.ranges_resumed;
    if (r.saved) {
        bson_iter_t it;
        char when[LM_TIME_ISO8601_LEN];
        bson_iter_init_find(&it, r.saved, "updated");
        lm_time_format_iso8601(bson_iter_date_time(&it), when, sizeof when);
        lm_log_info(NULL, "resuming verification: %zu of %zu ranges done at %s (%s)",
                    r.ranges_resumed, out->ranges_total, when, r.path);
    }
    total_docs = estimate_docs(&r, sc);
    lm_log_info(NULL,
                "verify: %zu namespaces, %zu ranges to compare (%zu done before), about %lld "
                "documents, %d workers",
                r.n_ns, r.n_tasks, r.ranges_resumed, (long long)total_docs, workers);
    publish(&r, LM_VERIFY_RUNNING, total_docs, started, NULL);
    if (r.n_tasks && !run_workers(&r, workers, total_docs, started, err))
        goto out;
    if (!confirm_all(&r, sc, tc, err))
        goto out;
    for (size_t i = 0; i < r.n_ns; i++)
        if (r.ns[i].plan)
            summarize(o, &r.ns[i]);
    ok = true;
out:
    if (r.path[0]) {
        /* finished (pass or fail): the progress goes; stopped or failed: it is kept */
        if (ok && !stopping(&r))
            unlink(r.path);
        else if (access(r.path, F_OK) == 0)
            snprintf(out->progress_file, sizeof out->progress_file, "%s", r.path);
    }
    if (sc)
        mongoc_client_pool_push(r.src_pool, sc);
    if (tc)
        mongoc_client_pool_push(r.dst_pool, tc);
    out->stopped = stopping(&r);
    if (out->stopped && ok)
        ok = lm_error_set(err, LM_ERR_CANCELLED, "verification stopped before it finished");
    out->documents = atomic_load(&r.documents_done);
    out->elapsed_ms = lm_time_now_ms() - started;
    for (size_t i = 0; i < out->n; i++)
        out->n_failed += !out->items[i].pass;
    publish(&r, ok ? (out->n_failed ? LM_VERIFY_FAILED : LM_VERIFY_PASSED) : LM_VERIFY_ERROR,
            total_docs, started, ok ? NULL : err->message);
    if (ok)
        publish_differences(o, out);
    run_cleanup(&r);
    bson_destroy(r.saved);
    lm_catalog_cleanup(&scat);
    lm_catalog_cleanup(&tcat);
    if (r.src_pool && !o->source)
        lm_conn_pool_destroy(r.src_pool);
    if (r.dst_pool && !o->target)
        lm_conn_pool_destroy(r.dst_pool);
    pthread_cond_destroy(&r.done_cv);
    pthread_mutex_destroy(&r.mu);
    return ok;
}

/* ---- rendering ---- */

static void hex(const uint8_t *h, char *out)
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static void counts_text(const lm_verify_ns_t *ns, char *buf, size_t size)
{
    if (ns->source_docs < 0)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%lld/%lld", (long long)ns->source_docs, (long long)ns->target_docs);
}

void lm_verify_render_table(const lm_verify_result_t *r, bool failed_only, lm_strbuf_t *out)
{
    char counts[64];
    lm_strbuf_appendf(out, "%-40s %-6s %-23s %s\n", "NAMESPACE", "RESULT", "DOCS (SOURCE/TARGET)",
                      "DETAIL");
    for (size_t i = 0; i < r->n; i++) {
        const lm_verify_ns_t *ns = &r->items[i];
        if (failed_only && ns->pass)
            continue;
        counts_text(ns, counts, sizeof counts);
        lm_strbuf_appendf(out, "%-40s %-6s %-23s %s\n", ns->ns, ns->pass ? "PASS" : "FAIL", counts,
                          ns->pass
                              ? (strcmp(ns->type, "view") == 0 ? "view definition equal" : "equal")
                          : ns->reasons.n ? ns->reasons.items[0]
                                          : "differs");
        for (size_t k = 1; k < ns->reasons.n; k++)
            lm_strbuf_appendf(out, "%-40s %-6s %-23s %s\n", "", "", "", ns->reasons.items[k]);
        for (size_t k = 0; k < ns->n_ids; k++)
            lm_strbuf_appendf(out, "%-40s %-6s %-23s   %s %s%s%s\n", "", "", "", ns->ids[k].id_json,
                              lm_verify_doc_kind_name(ns->ids[k].kind),
                              ns->ids[k].detail ? ": " : "",
                              ns->ids[k].detail ? ns->ids[k].detail : "");
        int64_t total = ns->docs_differ + ns->docs_missing + ns->docs_extra;
        if (total > (int64_t)ns->n_ids)
            lm_strbuf_appendf(out, "%-40s %-6s %-23s   ... and %lld more\n", "", "", "",
                              (long long)(total - (int64_t)ns->n_ids));
    }
    if (r->stopped)
        lm_strbuf_appendf(out,
                          "\nverification STOPPED before it finished: the result is partial\n");
    else if (r->n_failed)
        lm_strbuf_appendf(out,
                          "\nverification FAILED: %zu of %zu namespaces differ (%lld documents "
                          "compared in %.1f s); verify changed no data\n",
                          r->n_failed, r->n, (long long)r->documents, (double)r->elapsed_ms / 1e3);
    else
        lm_strbuf_appendf(out,
                          "\nverification PASSED: %zu namespaces, %lld documents, 0 differences "
                          "(%.1f s)\n",
                          r->n, (long long)r->documents, (double)r->elapsed_ms / 1e3);
}

void lm_verify_render_json(const lm_verify_result_t *r, lm_strbuf_t *out)
{
    char h[65];
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_map_open(w);
    lm_json_w_kv_str(w, "result", r->stopped ? "STOPPED" : r->n_failed ? "FAIL" : "PASS");
    lm_json_w_key(w, "namespaces");
    lm_json_w_int(w, (int64_t)r->n);
    lm_json_w_key(w, "namespacesFailed");
    lm_json_w_int(w, (int64_t)r->n_failed);
    lm_json_w_key(w, "documentsCompared");
    lm_json_w_int(w, r->documents);
    lm_json_w_key(w, "elapsedMs");
    lm_json_w_int(w, r->elapsed_ms);
    lm_json_w_key(w, "results");
    lm_json_w_array_open(w);
    for (size_t i = 0; i < r->n; i++) {
        const lm_verify_ns_t *ns = &r->items[i];
        lm_json_w_map_open(w);
        lm_json_w_kv_str(w, "ns", ns->ns);
        lm_json_w_kv_str(w, "type", ns->type);
        lm_json_w_kv_str(w, "result", ns->pass ? "PASS" : "FAIL");
        lm_json_w_key(w, "sourceDocuments");
        ns->source_docs >= 0 ? lm_json_w_int(w, ns->source_docs) : lm_json_w_null(w);
        lm_json_w_key(w, "targetDocuments");
        ns->target_docs >= 0 ? lm_json_w_int(w, ns->target_docs) : lm_json_w_null(w);
        lm_json_w_key(w, "documentsDiffer");
        lm_json_w_int(w, ns->docs_differ);
        lm_json_w_key(w, "documentsMissing");
        lm_json_w_int(w, ns->docs_missing);
        lm_json_w_key(w, "documentsExtra");
        lm_json_w_int(w, ns->docs_extra);
        if (ns->source_docs >= 0) {
            lm_json_w_key(w, "sourceHash");
            hex(ns->source_hash, h);
            lm_json_w_str(w, h);
            lm_json_w_key(w, "targetHash");
            hex(ns->target_hash, h);
            lm_json_w_str(w, h);
        }
        lm_json_w_key(w, "reasons");
        lm_json_w_array_open(w);
        for (size_t k = 0; k < ns->reasons.n; k++)
            lm_json_w_str(w, ns->reasons.items[k]);
        lm_json_w_array_close(w);
        lm_json_w_key(w, "ids");
        lm_json_w_array_open(w);
        for (size_t k = 0; k < ns->n_ids; k++) {
            lm_json_w_map_open(w);
            lm_json_w_kv_str(w, "id", ns->ids[k].id_json);
            lm_json_w_kv_str(w, "kind", lm_verify_doc_kind_name(ns->ids[k].kind));
            lm_json_w_key(w, "detail");
            lm_json_w_str(w, ns->ids[k].detail); /* NULL writes null */
            lm_json_w_map_close(w);
        }
        lm_json_w_array_close(w);
        lm_json_w_map_close(w);
    }
    lm_json_w_array_close(w);
    lm_json_w_map_close(w);
    size_t len;
    const char *doc = lm_json_writer_result(w, &len, NULL);
    if (doc)
        lm_strbuf_append_n(out, doc, len);
    lm_json_writer_destroy(w);
}
