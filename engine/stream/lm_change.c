/* lm_change: see lm_change.h. */
#include "lm_change.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 1024

/* ---- op lists ---- */

void lm_op_free(lm_op_t *op)
{
    if (!op)
        return;
    if (op->id)
        bson_destroy(op->id);
    if (op->doc)
        bson_destroy(op->doc);
    free(op);
}

void lm_oplist_append(lm_oplist_t *l, lm_op_t *op)
{
    op->next = NULL;
    if (l->tail)
        l->tail->next = op;
    else
        l->head = op;
    l->tail = op;
    l->n++;
}

void lm_oplist_concat(lm_oplist_t *l, lm_oplist_t *more)
{
    if (!more->head)
        return;
    if (l->tail)
        l->tail->next = more->head;
    else
        l->head = more->head;
    l->tail = more->tail;
    l->n += more->n;
    memset(more, 0, sizeof *more);
}

void lm_oplist_clear(lm_oplist_t *l)
{
    lm_op_t *op = l->head;
    while (op) {
        lm_op_t *next = op->next;
        lm_op_free(op);
        op = next;
    }
    memset(l, 0, sizeof *l);
}

const char *lm_op_kind_name(lm_op_kind_t k)
{
    static const char *names[] = {"insert", "replace", "update",      "refetch",
                                  "delete", "ddl",     "dropDatabase"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

/* bson_copy_to_excluding_noinit without its abort: copies every field of src but the
 * named ones (NULL: none) into dst; false when a field cannot be appended. */
static bool copy_except(const bson_t *src, bson_t *dst, const char *skip1, const char *skip2)
{
    bson_iter_t it;
    if (!bson_iter_init(&it, src))
        return false;
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if ((skip1 && strcmp(k, skip1) == 0) || (skip2 && strcmp(k, skip2) == 0))
            continue;
        if (!bson_append_iter(dst, k, -1, &it))
            return false;
    }
    return true;
}

/* ---- update translation ---- */

typedef struct {
    bson_t set, unset;
    bson_t *specs; /* truncations are appended here as they are met, $set/$unset last */
    uint32_t n_specs;
    bool ok;
} upd_t;

static void upd_init(upd_t *u, bson_t *specs)
{
    bson_init(&u->set);
    bson_init(&u->unset);
    u->specs = specs;
    u->n_specs = 0;
    u->ok = true;
}

static void upd_add_spec(upd_t *u, const bson_t *spec)
{
    char key[16];
    const char *k;
    bson_uint32_to_string(u->n_specs++, &k, key, sizeof key);
    bson_append_document(u->specs, k, -1, spec);
}

static void upd_truncate(upd_t *u, const char *path, int64_t len)
{
    bson_t spec, push, field, each;
    bson_init(&spec);
    bson_append_document_begin(&spec, "$push", -1, &push);
    bson_append_document_begin(&push, path, -1, &field);
    bson_append_array_begin(&field, "$each", -1, &each);
    bson_append_array_end(&field, &each);
    bson_append_int64(&field, "$slice", -1, len);
    bson_append_document_end(&push, &field);
    bson_append_document_end(&spec, &push);
    upd_add_spec(u, &spec);
    bson_destroy(&spec);
}

/* Ends the translation: the $set/$unset spec after the truncations. */
static lm_op_kind_t upd_finish(upd_t *u)
{
    if (u->ok && (!bson_empty(&u->set) || !bson_empty(&u->unset))) {
        bson_t spec;
        bson_init(&spec);
        if (!bson_empty(&u->set))
            bson_append_document(&spec, "$set", -1, &u->set);
        if (!bson_empty(&u->unset))
            bson_append_document(&spec, "$unset", -1, &u->unset);
        upd_add_spec(u, &spec);
        bson_destroy(&spec);
    }
    bson_destroy(&u->set);
    bson_destroy(&u->unset);
    if (!u->ok)
        bson_reinit(u->specs);
    return u->ok ? LM_OP_UPDATE : LM_OP_REFETCH;
}

/* A field name a dotted path can address. */
static bool plain_field(const char *f, size_t len)
{
    return len > 0 && f[0] != '$' && !memchr(f, '.', len) && strlen(f) == len;
}

/* prefix + "." + field into out; false when it does not fit or the field is not plain. */
static bool join_path(char *out, const char *prefix, const char *field, size_t flen)
{
    if (!plain_field(field, flen))
        return false;
    int n = snprintf(out, PATH_MAX_LEN, "%s%s%.*s", prefix, prefix[0] ? "." : "", (int)flen, field);
    return n > 0 && n < PATH_MAX_LEN;
}

static bool sub_doc(const bson_iter_t *it, bson_t *out)
{
    const uint8_t *data;
    uint32_t len;
    if (!BSON_ITER_HOLDS_DOCUMENT(it) && !BSON_ITER_HOLDS_ARRAY(it))
        return false;
    if (BSON_ITER_HOLDS_DOCUMENT(it))
        bson_iter_document(it, &len, &data);
    else
        bson_iter_array(it, &len, &data);
    return bson_init_static(out, data, len);
}

/* Every field of the document at it, $set (or $unset) under prefix. */
static bool set_fields(upd_t *u, const bson_iter_t *it, const char *prefix, bool unset)
{
    bson_t d;
    bson_iter_t f;
    char path[PATH_MAX_LEN];
    if (!sub_doc(it, &d) || !bson_iter_init(&f, &d))
        return false;
    while (bson_iter_next(&f)) {
        if (!join_path(path, prefix, bson_iter_key(&f), bson_iter_key_len(&f)))
            return false;
        if (unset)
            bson_append_bool(&u->unset, path, -1, true);
        else
            bson_append_iter(&u->set, path, -1, &f);
    }
    return true;
}

static bool walk_diff(upd_t *u, const bson_t *diff, const char *prefix, int depth);

/* An array diff: {a: true, l: newLength, u<n>: value, s<n>: subdiff}. */
static bool walk_array_diff(upd_t *u, const bson_t *diff, const char *prefix, int depth)
{
    bson_iter_t it;
    char path[PATH_MAX_LEN];
    if (!bson_iter_init(&it, diff))
        return false;
    /* the resize comes first, as mongod applies it */
    if (bson_iter_init_find(&it, diff, "l")) {
        if (!BSON_ITER_HOLDS_NUMBER(&it) || bson_iter_as_int64(&it) < 0)
            return false;
        upd_truncate(u, prefix, bson_iter_as_int64(&it));
    }
    bson_iter_init(&it, diff);
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        size_t klen = bson_iter_key_len(&it);
        if (strcmp(k, "a") == 0 || strcmp(k, "l") == 0)
            continue;
        if ((k[0] != 'u' && k[0] != 's') || klen < 2 || klen > 10 ||
            strspn(k + 1, "0123456789") != klen - 1 || !join_path(path, prefix, k + 1, klen - 1))
            return false;
        if (k[0] == 'u') {
            bson_append_iter(&u->set, path, -1, &it);
        } else {
            bson_t sub;
            if (!sub_doc(&it, &sub) || !walk_diff(u, &sub, path, depth + 1))
                return false;
        }
    }
    return true;
}

/* A document diff: {i: {...}, u: {...}, d: {...}, s<field>: subdiff}. */
static bool walk_diff(upd_t *u, const bson_t *diff, const char *prefix, int depth)
{
    bson_iter_t it, a;
    char path[PATH_MAX_LEN];
    if (depth > 100 || !bson_iter_init(&it, diff))
        return false;
    if (bson_iter_init_find(&a, diff, "a") && BSON_ITER_HOLDS_BOOL(&a) && bson_iter_bool(&a))
        return prefix[0] && walk_array_diff(u, diff, prefix, depth);
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        size_t klen = bson_iter_key_len(&it);
        if (klen == 1 && (k[0] == 'i' || k[0] == 'u')) {
            if (!set_fields(u, &it, prefix, false))
                return false;
        } else if (klen == 1 && k[0] == 'd') {
            if (!set_fields(u, &it, prefix, true))
                return false;
        } else if (k[0] == 's' && klen > 1) {
            bson_t sub;
            if (!join_path(path, prefix, k + 1, klen - 1) || !sub_doc(&it, &sub) ||
                !walk_diff(u, &sub, path, depth + 1))
                return false;
        } else {
            return false; /* a diff field this version does not know */
        }
    }
    return true;
}

/* A dotted path as change events and SecantusDB's oplog give it: every part plain. */
static bool plain_path(const char *p, size_t len)
{
    if (len == 0 || len >= PATH_MAX_LEN || strlen(p) != len || p[0] == '.' || p[len - 1] == '.' ||
        strstr(p, ".."))
        return false;
    for (const char *s = p; s; s = strchr(s, '.')) {
        if (*s == '.')
            s++;
        if (*s == '$')
            return false;
    }
    return true;
}

/* The whole document is well-formed BSON (lengths, nesting): libbson aborts on some
 * malformed input, and this is data from the network. */
static bool well_formed(const bson_t *d)
{
    size_t off;
    return bson_validate(d, BSON_VALIDATE_NONE, &off);
}

lm_op_kind_t lm_change_translate_description(const bson_t *desc, bson_t *specs)
{
    upd_t u;
    bson_iter_t it, f;
    bson_t sub;
    if (!well_formed(desc)) {
        bson_reinit(specs);
        return LM_OP_REFETCH;
    }
    upd_init(&u, specs);
    if (bson_iter_init_find(&it, desc, "disambiguatedPaths") && sub_doc(&it, &sub) &&
        !bson_empty(&sub))
        u.ok = false; /* field names with dots or numbers: a path cannot say which */
    if (u.ok && bson_iter_init_find(&it, desc, "truncatedArrays")) {
        if (!sub_doc(&it, &sub) || !bson_iter_init(&f, &sub))
            u.ok = false;
        while (u.ok && bson_iter_next(&f)) {
            bson_t t;
            bson_iter_t fi, ni;
            if (!sub_doc(&f, &t) || !bson_iter_init_find(&fi, &t, "field") ||
                !BSON_ITER_HOLDS_UTF8(&fi) || !bson_iter_init_find(&ni, &t, "newSize") ||
                !BSON_ITER_HOLDS_NUMBER(&ni) || bson_iter_as_int64(&ni) < 0) {
                u.ok = false;
                break;
            }
            uint32_t len;
            const char *path = bson_iter_utf8(&fi, &len);
            if (!plain_path(path, len)) {
                u.ok = false;
                break;
            }
            upd_truncate(&u, path, bson_iter_as_int64(&ni));
        }
    }
    if (u.ok && bson_iter_init_find(&it, desc, "updatedFields")) {
        if (!sub_doc(&it, &sub) || !bson_iter_init(&f, &sub))
            u.ok = false;
        while (u.ok && bson_iter_next(&f)) {
            if (!plain_path(bson_iter_key(&f), bson_iter_key_len(&f)))
                u.ok = false;
            else
                bson_append_iter(&u.set, bson_iter_key(&f), -1, &f);
        }
    }
    if (u.ok && bson_iter_init_find(&it, desc, "removedFields")) {
        if (!sub_doc(&it, &sub) || !bson_iter_init(&f, &sub))
            u.ok = false;
        while (u.ok && bson_iter_next(&f)) {
            uint32_t len;
            const char *path = BSON_ITER_HOLDS_UTF8(&f) ? bson_iter_utf8(&f, &len) : NULL;
            if (!path || !plain_path(path, len))
                u.ok = false;
            else
                bson_append_bool(&u.unset, path, -1, true);
        }
    }
    return upd_finish(&u);
}

/* $set/$unset of a $v:1 (or unversioned) modifier body, paths as given. */
static bool copy_modifier(upd_t *u, const bson_iter_t *it, bool unset)
{
    bson_t d;
    bson_iter_t f;
    if (!sub_doc(it, &d) || !bson_iter_init(&f, &d))
        return false;
    while (bson_iter_next(&f)) {
        if (!plain_path(bson_iter_key(&f), bson_iter_key_len(&f)))
            return false;
        if (unset)
            bson_append_bool(&u->unset, bson_iter_key(&f), -1, true);
        else
            bson_append_iter(&u->set, bson_iter_key(&f), -1, &f);
    }
    return true;
}

lm_op_kind_t lm_change_translate_update(const bson_t *body, bson_t *specs)
{
    bson_iter_t it, v;
    bson_t sub;
    upd_t u;

    bson_reinit(specs);
    if (!well_formed(body) || !bson_iter_init(&it, body))
        return LM_OP_REFETCH;
    if (!bson_iter_next(&it)) /* {}: a replacement by an empty document */
        return LM_OP_REPLACE;
    if (bson_iter_key(&it)[0] != '$') {
        bson_concat(specs, body);
        return LM_OP_REPLACE;
    }
    int version = 1;
    if (bson_iter_init_find(&v, body, "$v")) {
        if (!BSON_ITER_HOLDS_NUMBER(&v))
            return LM_OP_REFETCH;
        version = (int)bson_iter_as_int64(&v);
    }
    if (version == 2) {
        if (!bson_iter_init_find(&it, body, "diff") || !sub_doc(&it, &sub))
            return LM_OP_REFETCH;
        bson_iter_t probe;
        if (bson_iter_init_find(&probe, &sub, "updatedFields") ||
            bson_iter_init_find(&probe, &sub, "removedFields") ||
            bson_iter_init_find(&probe, &sub, "truncatedArrays"))
            return lm_change_translate_description(&sub, specs);
        upd_init(&u, specs);
        u.ok = walk_diff(&u, &sub, "", 0);
        return upd_finish(&u);
    }
    if (version != 1)
        return LM_OP_REFETCH;
    /* A $set that carries _id is the whole new document (FerretDB logs updates and
     * replacements so); mongod never logs _id in $set, it cannot change. */
    bson_iter_t set, id;
    int n_ops = 0;
    bson_iter_init(&it, body);
    while (bson_iter_next(&it))
        n_ops += strcmp(bson_iter_key(&it), "$v") != 0;
    if (n_ops == 1 && bson_iter_init_find(&set, body, "$set") && sub_doc(&set, &sub) &&
        bson_iter_init_find(&id, &sub, "_id")) {
        bson_concat(specs, &sub);
        return LM_OP_REPLACE;
    }
    upd_init(&u, specs);
    bson_iter_init(&it, body);
    while (u.ok && bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (strcmp(k, "$v") == 0)
            continue;
        if (strcmp(k, "$set") == 0)
            u.ok = copy_modifier(&u, &it, false);
        else if (strcmp(k, "$unset") == 0)
            u.ok = copy_modifier(&u, &it, true);
        else
            u.ok = false; /* $inc and friends are not idempotent: take the document */
    }
    return upd_finish(&u);
}

/* ---- oplog entries ---- */

struct lm_txn {
    bson_t *lsid;
    int64_t txn_number;
    lm_optime_t hold; /* the position before its first entry */
    lm_oplist_t ops;
    struct lm_txn *next;
};

void lm_oplog_decoder_init(lm_oplog_decoder_t *d)
{
    memset(d, 0, sizeof *d);
}

static void txn_free(lm_txn_t *t)
{
    lm_oplist_clear(&t->ops);
    bson_destroy(t->lsid);
    free(t);
}

void lm_oplog_decoder_cleanup(lm_oplog_decoder_t *d)
{
    while (d->pending) {
        lm_txn_t *next = d->pending->next;
        txn_free(d->pending);
        d->pending = next;
    }
}

bool lm_oplog_decoder_hold(const lm_oplog_decoder_t *d, lm_optime_t *before)
{
    bool any = false;
    for (const lm_txn_t *t = d->pending; t; t = t->next)
        if (!any || lm_optime_cmp(t->hold, *before) < 0) {
            *before = t->hold;
            any = true;
        }
    return any;
}

/* The transaction an entry belongs to (by lsid and txnNumber); created when asked. */
static lm_txn_t *txn_find(lm_oplog_decoder_t *d, const bson_t *entry, bool create, lm_optime_t prev,
                          bool unlink)
{
    bson_iter_t it;
    bson_t lsid;
    int64_t num = 0;
    if (!bson_iter_init_find(&it, entry, "lsid") || !sub_doc(&it, &lsid))
        return NULL;
    if (bson_iter_init_find(&it, entry, "txnNumber") && BSON_ITER_HOLDS_NUMBER(&it))
        num = bson_iter_as_int64(&it);
    for (lm_txn_t **p = &d->pending; *p; p = &(*p)->next) {
        lm_txn_t *t = *p;
        if (t->txn_number == num && bson_equal(t->lsid, &lsid)) {
            if (unlink)
                *p = t->next;
            return t;
        }
    }
    if (!create)
        return NULL;
    lm_txn_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->lsid = bson_copy(&lsid);
    t->txn_number = num;
    t->hold = prev;
    t->next = d->pending;
    d->pending = t;
    return t;
}

static bool entry_error(lm_error_t *err, lm_optime_t ts, const char *what)
{
    return lm_error_set(err, LM_ERR_INVALID, "oplog entry at Timestamp(%u, %u): %s", ts.t, ts.i,
                        what);
}

static lm_op_t *op_new(lm_op_kind_t kind, const char *db, const char *coll, lm_optime_t ts,
                       int64_t wall)
{
    lm_op_t *op = calloc(1, sizeof *op);
    if (!op)
        return NULL;
    op->kind = kind;
    snprintf(op->db, sizeof op->db, "%s", db);
    snprintf(op->coll, sizeof op->coll, "%s", coll);
    op->ts = ts;
    op->wall_ms = wall;
    return op;
}

/* {_id: <the _id of doc>} or NULL. */
static bson_t *id_of(const bson_t *doc)
{
    bson_iter_t it;
    if (!doc || !bson_iter_init_find(&it, doc, "_id"))
        return NULL;
    bson_t *id = bson_new();
    bson_append_iter(id, "_id", 3, &it);
    return id;
}

static bool get_doc(const bson_t *d, const char *key, bson_t *out)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, d, key) && BSON_ITER_HOLDS_DOCUMENT(&it) && sub_doc(&it, out);
}

static const char *get_str(const bson_t *d, const char *key)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, d, key) || !BSON_ITER_HOLDS_UTF8(&it))
        return NULL;
    uint32_t len;
    const char *s = bson_iter_utf8(&it, &len);
    return strlen(s) == len ? s : NULL;
}

/* The target-side command of a DDL entry, or why it cannot be replayed. */
static bool ddl_op(const char *db, const bson_t *o, lm_optime_t ts, int64_t wall, lm_oplist_t *out,
                   lm_error_t *err)
{
    bson_iter_t it;
    if (!bson_iter_init(&it, o) || !bson_iter_next(&it))
        return entry_error(err, ts, "an empty command");
    const char *cmd = bson_iter_key(&it);
    const char *coll = BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : NULL;
    char what[LM_NS_MAX + 128];

    if (strcmp(cmd, "renameCollection") == 0) {
        const char *to = get_str(o, "to");
        return lm_error_set(
            err, LM_ERR_INVALID,
            "the source renamed %s to %s at Timestamp(%u, %u) (renameCollection, or an "
            "aggregation with $out or $merge into a new collection): livemig cannot follow a "
            "rename, so the source must not rename collections during a migration; restart the "
            "migration from the beginning once renames have stopped",
            coll ? coll : "?", to ? to : "?", ts.t, ts.i);
    }
    if (strcmp(cmd, "dropDatabase") == 0) {
        lm_op_t *op = op_new(LM_OP_DROP_DATABASE, db, "", ts, wall);
        if (!op)
            return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
        lm_oplist_append(out, op);
        return true;
    }
    if (strcmp(cmd, "startIndexBuild") == 0 || strcmp(cmd, "abortIndexBuild") == 0)
        return true; /* the build's outcome is commitIndexBuild (or nothing) */
    bool known = strcmp(cmd, "create") == 0 || strcmp(cmd, "drop") == 0 ||
                 strcmp(cmd, "createIndexes") == 0 || strcmp(cmd, "commitIndexBuild") == 0 ||
                 strcmp(cmd, "dropIndexes") == 0 || strcmp(cmd, "deleteIndexes") == 0 ||
                 strcmp(cmd, "collMod") == 0 || strcmp(cmd, "convertToCapped") == 0;
    if (!known) {
        snprintf(what, sizeof what,
                 "the command '%s' cannot be replayed by livemig: stop using it on the source "
                 "during the migration, or restart the migration after it",
                 cmd);
        return entry_error(err, ts, what);
    }
    if (!coll || !coll[0])
        return entry_error(err, ts, "a command without a collection name");
    bson_t *doc = bson_new();
    if (strcmp(cmd, "create") == 0) {
        BSON_APPEND_UTF8(doc, "create", coll);
        copy_except(o, doc, "create", "idIndex");
    } else if (strcmp(cmd, "createIndexes") == 0 || strcmp(cmd, "commitIndexBuild") == 0) {
        bson_t arr;
        BSON_APPEND_UTF8(doc, "createIndexes", coll);
        if (bson_iter_init_find(&it, o, "indexes") && BSON_ITER_HOLDS_ARRAY(&it)) {
            bson_append_iter(doc, "indexes", -1, &it);
        } else { /* before 4.4: the one spec inline */
            bson_t spec;
            bson_init(&spec);
            copy_except(o, &spec, cmd, NULL);
            bson_append_array_begin(doc, "indexes", -1, &arr);
            bson_append_document(&arr, "0", 1, &spec);
            bson_append_array_end(doc, &arr);
            bson_destroy(&spec);
        }
    } else if (strcmp(cmd, "deleteIndexes") == 0 || strcmp(cmd, "dropIndexes") == 0) {
        BSON_APPEND_UTF8(doc, "dropIndexes", coll);
        if (bson_iter_init_find(&it, o, "index"))
            bson_append_iter(doc, "index", -1, &it);
        else
            BSON_APPEND_UTF8(doc, "index", "*");
    } else {
        bson_concat(doc, o);
    }
    lm_op_t *op = op_new(LM_OP_DDL, db, coll, ts, wall);
    if (!op) {
        bson_destroy(doc);
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    }
    op->doc = doc;
    lm_oplist_append(out, op);
    return true;
}

static bool decode_entry(lm_oplog_decoder_t *d, const bson_t *e, lm_optime_t ts, int64_t wall,
                         lm_optime_t prev, lm_oplist_t *out, int depth, lm_error_t *err);

/* applyOps: its entries in order; held when part of an uncommitted transaction. */
static bool apply_ops(lm_oplog_decoder_t *d, const bson_t *entry, const bson_t *o, lm_optime_t ts,
                      int64_t wall, lm_optime_t prev, lm_oplist_t *out, int depth, lm_error_t *err)
{
    bson_iter_t it, ai;
    bson_t arr;
    lm_oplist_t ops = {0};
    if (!bson_iter_init_find(&it, o, "applyOps") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !sub_doc(&it, &arr) || !bson_iter_init(&ai, &arr))
        return entry_error(err, ts, "applyOps without an array of operations");
    while (bson_iter_next(&ai)) {
        bson_t inner;
        if (!BSON_ITER_HOLDS_DOCUMENT(&ai) || !sub_doc(&ai, &inner) ||
            !decode_entry(d, &inner, ts, wall, prev, &ops, depth + 1, err)) {
            lm_oplist_clear(&ops);
            if (err && err->code == LM_ERR_NONE)
                entry_error(err, ts, "applyOps holds an operation that is not a document");
            return false;
        }
    }
    bool partial = (bson_iter_init_find(&it, o, "partialTxn") && bson_iter_as_bool(&it)) ||
                   (bson_iter_init_find(&it, o, "prepare") && bson_iter_as_bool(&it));
    lm_txn_t *t = txn_find(d, entry, partial, prev, !partial);
    if (partial) {
        if (!t) {
            lm_oplist_clear(&ops);
            return entry_error(err, ts, "a transaction entry without lsid");
        }
        lm_oplist_concat(&t->ops, &ops);
        return true;
    }
    if (t) { /* the last entry of a large transaction: everything held, then these */
        lm_oplist_concat(out, &t->ops);
        txn_free(t);
    }
    lm_oplist_concat(out, &ops);
    return true;
}

static bool decode_entry(lm_oplog_decoder_t *d, const bson_t *e, lm_optime_t ts, int64_t wall,
                         lm_optime_t prev, lm_oplist_t *out, int depth, lm_error_t *err)
{
    bson_iter_t it;
    bson_t o, o2;
    char db[128], coll[LM_NS_MAX];
    const char *opname = get_str(e, "op"), *ns = get_str(e, "ns");

    if (depth > 4)
        return entry_error(err, ts, "applyOps nested too deep");
    if (!opname)
        return entry_error(err, ts, "no 'op' string");
    if (strcmp(opname, "n") == 0)
        return true;
    if (bson_iter_init_find(&it, e, "fromMigrate") && bson_iter_as_bool(&it))
        return true; /* chunk migrations inside the source: not a user change */
    if (!ns || !get_doc(e, "o", &o))
        return entry_error(err, ts, "no 'ns' string or no 'o' document");
    if (!lm_ns_split(ns, db, sizeof db, coll, sizeof coll)) {
        if (strchr(ns, '.') || !ns[0] || strcmp(opname, "c") != 0)
            return entry_error(err, ts, "a namespace livemig cannot read");
        snprintf(db, sizeof db, "%s", ns), coll[0] = 0; /* "admin" for applyOps */
    }

    if (strcmp(opname, "c") == 0) {
        if (!bson_iter_init(&it, &o) || !bson_iter_next(&it))
            return entry_error(err, ts, "an empty command");
        const char *cmd = bson_iter_key(&it);
        if (strcmp(cmd, "applyOps") == 0)
            return apply_ops(d, e, &o, ts, wall, prev, out, depth, err);
        if (strcmp(cmd, "commitTransaction") == 0) {
            lm_txn_t *t = txn_find(d, e, false, prev, true);
            if (t) {
                lm_oplist_concat(out, &t->ops);
                txn_free(t);
            }
            return true;
        }
        if (strcmp(cmd, "abortTransaction") == 0) {
            lm_txn_t *t = txn_find(d, e, false, prev, true);
            if (t)
                txn_free(t);
            return true;
        }
        if (lm_ns_db_is_internal(db))
            return true;
        return ddl_op(db, &o, ts, wall, out, err);
    }
    if (lm_ns_db_is_internal(db))
        return true;

    lm_op_t *op = NULL;
    if (strcmp(opname, "i") == 0) {
        op = op_new(LM_OP_INSERT, db, coll, ts, wall);
        if (op && !(op->id = id_of(&o))) {
            lm_op_free(op);
            return entry_error(err, ts, "an insert of a document without _id");
        }
        if (op)
            op->doc = bson_copy(&o);
    } else if (strcmp(opname, "d") == 0) {
        op = op_new(LM_OP_DELETE, db, coll, ts, wall);
        if (op && !(op->id = id_of(&o))) {
            lm_op_free(op);
            return entry_error(err, ts, "a delete without _id");
        }
    } else if (strcmp(opname, "u") == 0) {
        if (!get_doc(e, "o2", &o2))
            return entry_error(err, ts, "an update without 'o2'");
        bson_t *specs = bson_new();
        lm_op_kind_t kind = lm_change_translate_update(&o, specs);
        op = op_new(kind, db, coll, ts, wall);
        if (op && !(op->id = id_of(&o2))) {
            lm_op_free(op);
            bson_destroy(specs);
            return entry_error(err, ts, "an update without o2._id");
        }
        if (op && kind != LM_OP_REFETCH)
            op->doc = specs;
        else
            bson_destroy(specs);
        if (op && kind == LM_OP_REPLACE) { /* the document keeps the _id it is stored under */
            bson_t *doc = bson_copy(op->id);
            copy_except(op->doc, doc, "_id", NULL);
            bson_destroy(op->doc);
            op->doc = doc;
        }
    } else {
        char what[64];
        snprintf(what, sizeof what, "an unknown op '%.8s'", opname);
        return entry_error(err, ts, what);
    }
    if (!op)
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    lm_oplist_append(out, op);
    return true;
}

bool lm_oplog_decode(lm_oplog_decoder_t *d, const bson_t *entry, lm_optime_t prev, lm_oplist_t *out,
                     lm_optime_t *ts, int64_t *wall_ms, bool *is_noop, lm_error_t *err)
{
    bson_iter_t it;
    lm_optime_t t = {0, 0};
    int64_t wall = 0;
    if (!well_formed(entry))
        return lm_error_set(err, LM_ERR_INVALID, "an oplog entry that is not valid BSON");
    if (!bson_iter_init_find(&it, entry, "ts") || !BSON_ITER_HOLDS_TIMESTAMP(&it))
        return lm_error_set(err, LM_ERR_INVALID, "an oplog entry without a 'ts' timestamp");
    bson_iter_timestamp(&it, &t.t, &t.i);
    if (bson_iter_init_find(&it, entry, "wall") && BSON_ITER_HOLDS_DATE_TIME(&it))
        wall = bson_iter_date_time(&it);
    *ts = t;
    *wall_ms = wall;
    const char *opname = get_str(entry, "op");
    *is_noop = opname && strcmp(opname, "n") == 0;
    lm_oplist_t ops = {0};
    if (!decode_entry(d, entry, t, wall, prev, &ops, 0, err)) {
        lm_oplist_clear(&ops);
        return false;
    }
    lm_oplist_concat(out, &ops);
    return true;
}

/* ---- change-stream events ---- */

static bool event_error(lm_error_t *err, lm_optime_t ts, const char *what)
{
    return lm_error_set(err, LM_ERR_INVALID, "change event at Timestamp(%u, %u): %s", ts.t, ts.i,
                        what);
}

bool lm_event_decode(const bson_t *ev, lm_oplist_t *out, lm_optime_t *ts, int64_t *wall_ms,
                     lm_error_t *err)
{
    bson_iter_t it;
    bson_t nsd, key, sub;
    lm_optime_t t = {0, 0};
    int64_t wall = 0;
    if (!well_formed(ev))
        return lm_error_set(err, LM_ERR_INVALID, "a change event that is not valid BSON");
    const char *type = get_str(ev, "operationType");

    if (!bson_iter_init_find(&it, ev, "clusterTime") || !BSON_ITER_HOLDS_TIMESTAMP(&it))
        return lm_error_set(err, LM_ERR_INVALID, "a change event without a clusterTime");
    bson_iter_timestamp(&it, &t.t, &t.i);
    if (bson_iter_init_find(&it, ev, "wallTime") && BSON_ITER_HOLDS_DATE_TIME(&it))
        wall = bson_iter_date_time(&it);
    *ts = t;
    *wall_ms = wall;
    if (!type)
        return event_error(err, t, "no operationType");
    if (strcmp(type, "invalidate") == 0)
        return event_error(err, t,
                           "the change stream was invalidated: restart the migration from the "
                           "beginning");
    if (strcmp(type, "shardCollection") == 0 || strcmp(type, "reshardCollection") == 0 ||
        strcmp(type, "refineCollectionShardKey") == 0)
        return true; /* sharding metadata: no data changes */
    if (!get_doc(ev, "ns", &nsd))
        return event_error(err, t, "no ns");
    const char *db = get_str(&nsd, "db"), *coll = get_str(&nsd, "coll");
    if (!db || strlen(db) >= 128 || (coll && strlen(coll) >= LM_NS_MAX))
        return event_error(err, t, "a namespace livemig cannot read");
    if (lm_ns_db_is_internal(db))
        return true;

    if (strcmp(type, "rename") == 0) {
        bson_t to;
        const char *tdb = get_doc(ev, "to", &to) ? get_str(&to, "db") : NULL;
        const char *tcoll = tdb ? get_str(&to, "coll") : NULL;
        return lm_error_set(
            err, LM_ERR_INVALID,
            "the source renamed %s.%s to %s.%s at Timestamp(%u, %u) (renameCollection, or an "
            "aggregation with $out or $merge into a new collection): livemig cannot follow a "
            "rename, so the source must not rename collections during a migration; restart the "
            "migration from the beginning once renames have stopped",
            db, coll ? coll : "?", tdb ? tdb : "?", tcoll ? tcoll : "?", t.t, t.i);
    }
    if (strcmp(type, "dropDatabase") == 0) {
        lm_op_t *op = op_new(LM_OP_DROP_DATABASE, db, "", t, wall);
        if (!op)
            return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
        lm_oplist_append(out, op);
        return true;
    }
    if (!coll || !coll[0])
        return event_error(err, t, "no collection name");

    bool doc_op = strcmp(type, "insert") == 0 || strcmp(type, "update") == 0 ||
                  strcmp(type, "replace") == 0 || strcmp(type, "delete") == 0;
    if (doc_op) {
        bson_t *id = get_doc(ev, "documentKey", &key) ? id_of(&key) : NULL;
        if (!id)
            return event_error(err, t, "a document change without documentKey._id");
        lm_op_t *op = op_new(LM_OP_DELETE, db, coll, t, wall);
        if (!op) {
            bson_destroy(id);
            return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
        }
        op->id = id;
        if (type[0] == 'i' || type[0] == 'r') {
            if (!get_doc(ev, "fullDocument", &sub)) {
                lm_op_free(op);
                return event_error(err, t, "an insert or replace without fullDocument");
            }
            op->kind = type[0] == 'i' ? LM_OP_INSERT : LM_OP_REPLACE;
            op->doc = bson_copy(id);
            copy_except(&sub, op->doc, "_id", NULL);
        } else if (type[0] == 'u') {
            if (!get_doc(ev, "updateDescription", &sub)) {
                lm_op_free(op);
                return event_error(err, t, "an update without updateDescription");
            }
            op->doc = bson_new();
            op->kind = lm_change_translate_description(&sub, op->doc);
            if (op->kind == LM_OP_REFETCH) {
                bson_destroy(op->doc);
                op->doc = NULL;
            }
        }
        lm_oplist_append(out, op);
        return true;
    }

    /* DDL events: the same commands an oplog entry would carry */
    bson_t *cmd = bson_new();
    bool has_desc = get_doc(ev, "operationDescription", &sub);
    bool ok = true;
    if (strcmp(type, "create") == 0) {
        BSON_APPEND_UTF8(cmd, "create", coll);
        if (has_desc)
            copy_except(&sub, cmd, "idIndex", NULL);
    } else if (strcmp(type, "drop") == 0) {
        BSON_APPEND_UTF8(cmd, "drop", coll);
    } else if (strcmp(type, "createIndexes") == 0) {
        BSON_APPEND_UTF8(cmd, "createIndexes", coll);
        ok = has_desc && bson_iter_init_find(&it, &sub, "indexes") && BSON_ITER_HOLDS_ARRAY(&it);
        if (ok)
            bson_append_iter(cmd, "indexes", -1, &it);
    } else if (strcmp(type, "dropIndexes") == 0) {
        /* {indexes: [{name: ...}, ...]}: one dropIndexes per name (not every server takes
         * a list) */
        bson_t idx;
        bson_iter_t ii;
        bson_destroy(cmd);
        cmd = NULL;
        ok = has_desc && bson_iter_init_find(&it, &sub, "indexes") && sub_doc(&it, &idx) &&
             bson_iter_init(&ii, &idx);
        lm_oplist_t drops = {0};
        while (ok && bson_iter_next(&ii)) {
            bson_t spec;
            const char *name = sub_doc(&ii, &spec) ? get_str(&spec, "name") : NULL;
            lm_op_t *op = name ? op_new(LM_OP_DDL, db, coll, t, wall) : NULL;
            ok = op != NULL;
            if (ok) {
                op->doc = BCON_NEW("dropIndexes", BCON_UTF8(coll), "index", BCON_UTF8(name));
                lm_oplist_append(&drops, op);
            }
        }
        if (!ok) {
            lm_oplist_clear(&drops);
            return event_error(err, t, "a dropIndexes event without index names");
        }
        lm_oplist_concat(out, &drops);
        return true;
    } else if (strcmp(type, "modify") == 0) {
        BSON_APPEND_UTF8(cmd, "collMod", coll);
        if (has_desc)
            bson_concat(cmd, &sub);
    } else {
        bson_destroy(cmd);
        char what[160];
        snprintf(what, sizeof what,
                 "the change '%.40s' cannot be replayed by livemig: stop using it on the source "
                 "during the migration, or restart the migration after it",
                 type);
        return event_error(err, t, what);
    }
    if (!ok) {
        bson_destroy(cmd);
        return event_error(err, t, "a DDL event without the operationDescription it needs");
    }
    lm_op_t *op = op_new(LM_OP_DDL, db, coll, t, wall);
    if (!op) {
        bson_destroy(cmd);
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    }
    op->doc = cmd;
    lm_oplist_append(out, op);
    return true;
}
