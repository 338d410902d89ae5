/* lm_change: one change on the source, as the apply workers need it, decoded from an
 * oplog entry or a change-stream event. Pure functions over BSON: no I/O, so every form
 * is unit-tested and fuzzed.
 *
 * What each decoded op means on the target:
 *   INSERT, REPLACE  replace-upsert of `doc` by `id` (idempotent)
 *   UPDATE           `doc` is {"0": spec, "1": spec, ...}: update specs applied in order
 *                    to the document `id`, no upsert (a document that is gone has a
 *                    delete coming, or never reached the target)
 *   REFETCH          an update in a form that cannot be replayed exactly and
 *                    idempotently: the worker copies the source's current document
 *   DELETE           delete by `id`
 *   DDL              `doc` is the command to run in database `db` (a barrier: every
 *                    earlier op is applied first)
 *   DROP_DATABASE    drop the selected collections of `db`
 *
 * Updates are translated to classic update specs ($set/$unset on dotted paths; array
 * truncation as $push {$each: [], $slice: n}, in its own spec first) from:
 *   - $v:1 / unversioned modifier form ($set/$unset only: anything else, such as $inc,
 *     would not be idempotent and is refetched instead);
 *   - $v:2 diffs as mongod writes them (i/u/d/s<field>, arrays a/l/u<n>/s<n>);
 *   - $v:2 with an updateDescription body (SecantusDB writes this) and change-stream
 *     updateDescription (updatedFields/removedFields/truncatedArrays);
 *   - replacements (no top-level operator). A $v:1 `$set` that carries `_id` is a whole
 *     document (FerretDB logs replacements and updates this way) and becomes REPLACE.
 * Field names that a dotted path cannot address (empty, containing '.', starting with
 * '$', or disambiguatedPaths in a change event) make the update a REFETCH. */
#ifndef LM_CHANGE_H
#define LM_CHANGE_H

#include <stdbool.h>
#include <stdint.h>

#include <bson/bson.h>

#include "lm_error.h"
#include "lm_ns.h"

typedef enum {
    LM_OP_INSERT = 0,
    LM_OP_REPLACE,
    LM_OP_UPDATE,
    LM_OP_REFETCH,
    LM_OP_DELETE,
    LM_OP_DDL,
    LM_OP_DROP_DATABASE,
} lm_op_kind_t;

/* A position in the source's history: a BSON Timestamp. */
typedef struct {
    uint32_t t, i;
} lm_optime_t;

static inline int lm_optime_cmp(lm_optime_t a, lm_optime_t b)
{
    return a.t != b.t ? (a.t < b.t ? -1 : 1) : a.i != b.i ? (a.i < b.i ? -1 : 1) : 0;
}

typedef struct lm_op {
    lm_op_kind_t kind;
    char db[128];
    char coll[LM_NS_MAX]; /* empty for DROP_DATABASE */
    bson_t *id;           /* {_id: value} for document ops */
    bson_t *doc;          /* see above; NULL for DELETE, REFETCH, DROP_DATABASE */
    lm_optime_t ts;       /* of the entry or event that carried it */
    int64_t wall_ms;      /* its wall-clock time, 0 when unknown */
    /* set by the dispatcher */
    lm_optime_t prev;     /* the position read just before this op's entry */
    int64_t prev_wall_ms; /* and its wall time */
    int64_t queued_ms;
    struct lm_op *next;
} lm_op_t;

typedef struct {
    lm_op_t *head, *tail;
    size_t n;
} lm_oplist_t;

void lm_op_free(lm_op_t *op);
void lm_oplist_append(lm_oplist_t *l, lm_op_t *op);
void lm_oplist_concat(lm_oplist_t *l, lm_oplist_t *more); /* moves every op of more */
void lm_oplist_clear(lm_oplist_t *l);

const char *lm_op_kind_name(lm_op_kind_t k);

/* Translates an update body into specs (an array-shaped document "0", "1", ...).
 * Returns the kind: LM_OP_UPDATE (specs filled; may be empty: nothing to change),
 * LM_OP_REPLACE (the body is a whole document: specs holds it) or LM_OP_REFETCH. */
lm_op_kind_t lm_change_translate_update(const bson_t *body, bson_t *specs);

/* The same for a change-stream updateDescription. */
lm_op_kind_t lm_change_translate_description(const bson_t *desc, bson_t *specs);

/* Decodes oplog entries, keeping multi-entry transactions (partialTxn, prepare) until they
 * commit, so their ops come out in order at the commit and never for an abort. */
typedef struct lm_txn lm_txn_t;
typedef struct {
    lm_txn_t *pending; /* transactions not committed yet */
} lm_oplog_decoder_t;

void lm_oplog_decoder_init(lm_oplog_decoder_t *d);
void lm_oplog_decoder_cleanup(lm_oplog_decoder_t *d);

/* The position before the oldest entry of a transaction still held back (a checkpoint
 * must not pass it); false when none is held. */
bool lm_oplog_decoder_hold(const lm_oplog_decoder_t *d, lm_optime_t *before);

/* Decodes one oplog entry. Appends zero or more ops to out (no-ops, fromMigrate entries,
 * index-build bookkeeping and internal databases give none). `prev` is the position read
 * before this entry (kept as the hold point of a transaction it opens). A rename ($out
 * renames too), a malformed entry or an unknown command fail with err naming the entry;
 * nothing is skipped silently. *ts and *wall_ms get the entry's position (also for no-ops);
 * *is_noop says it was a no-op (time only). */
bool lm_oplog_decode(lm_oplog_decoder_t *d, const bson_t *entry, lm_optime_t prev, lm_oplist_t *out,
                     lm_optime_t *ts, int64_t *wall_ms, bool *is_noop, lm_error_t *err);

/* Decodes one change-stream event (showExpandedEvents form). */
bool lm_event_decode(const bson_t *event, lm_oplist_t *out, lm_optime_t *ts, int64_t *wall_ms,
                     lm_error_t *err);

#endif
