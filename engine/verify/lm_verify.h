/* lm_verify: proof that a target holds what the source holds, over the namespaces a job
 * copies (the same catalog listing and include/exclude filters as the copy; admin, local,
 * config and livemig's own __livemig are never looked at). Reads only: verify changes no
 * data on either side.
 *
 * Per namespace it compares
 *   - presence on both sides, and namespaces only on the target (that the filters select);
 *   - the type (collection, view, timeseries) and every collection option listCollections
 *     reports (uuid left out), each option's value byte for byte;
 *   - index specs by name, every field byte for byte but "v", "ns" and SecantusDB's
 *     "entryFormat" (the fields the copy leaves out when it builds the index);
 *   - documents: the collection is split into the copy's _id ranges (lm_plan); a worker
 *     reads one range from both sides, sorted by _id, and matches the two streams by the
 *     raw bytes of _id; a matched pair is compared by the SHA-256 of its raw BSON (types,
 *     field order and values). Both streams come in the same order, so only the documents
 *     read on one side and not yet on the other are held (their _id and digest), which
 *     stays near zero unless the sides differ; LM_VERIFY_MAX_PENDING bounds it.
 *   - the count of documents read on each side.
 * A document that differs may be a change in flight on a live source: each differing _id
 * (up to LM_VERIFY_MAX_RECHECK per namespace) is read again from both sides recheck_count
 * times, recheck_delay_ms apart; only the ones that still differ are reported.
 *
 * Threads: lm_verify_run runs on the caller's thread and starts `workers` threads, joined
 * before it returns. Each worker owns a source and a target client popped from the pools;
 * the task list, each namespace's result and the progress counters are shared under the
 * run's mutex; the caller's thread waits on a condition variable (woken when a worker
 * finishes, at the latest every second to report progress).
 *
 * Resume (opts.state_dir): each finished range's outcome (counts, hashes, candidates) and
 * each namespace's planned ranges are kept in a local progress file, written by the
 * caller's thread at most once a second; a later run with the same key skips those ranges
 * and merges their outcomes. Options and indexes are always compared fresh. */
#ifndef LM_VERIFY_H
#define LM_VERIFY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#include "lm_error.h"
#include "lm_job.h"
#include "lm_ns.h"
#include "lm_status.h"
#include "lm_strbuf.h"

#define LM_VERIFY_MAX_IDS_DEFAULT 20 /* differing _ids listed per namespace */
#define LM_VERIFY_MAX_RECHECK 1000   /* differing _ids re-read per namespace; more are counted */
#define LM_VERIFY_MAX_PENDING 200000 /* documents of a range held while unmatched */
#define LM_VERIFY_MAX_REASONS 50     /* reasons kept per namespace */

typedef enum {
    LM_VERIFY_DOC_DIFFERS = 0, /* on both sides, not the same bytes */
    LM_VERIFY_DOC_MISSING,     /* on the source only */
    LM_VERIFY_DOC_EXTRA,       /* on the target only */
} lm_verify_doc_kind_t;

typedef struct {
    char *id_json; /* the _id as canonical extended JSON ({"_id": ...}) */
    lm_verify_doc_kind_t kind;
    char *detail; /* DIFFERS: which top-level fields differ (names only, never values) */
} lm_verify_id_t;

/* The result of one namespace. */
typedef struct {
    char ns[LM_NS_MAX];
    char type[16]; /* the source's ("collection", "view", "timeseries"), or the target's */
    bool pass;     /* no reason */
    bool on_source, on_target;
    int64_t source_docs; /* documents read (-1: not read: a view, or absent) */
    int64_t target_docs;
    int64_t docs_differ, docs_missing, docs_extra; /* confirmed after the re-checks */
    int64_t unchecked;    /* differing _ids beyond LM_VERIFY_MAX_RECHECK, reported unconfirmed */
    bool overflow;        /* a range had more than LM_VERIFY_MAX_PENDING unmatched documents */
    lm_strlist_t reasons; /* "index 'x_1' differs: unique: source true, target absent", ... */
    lm_verify_id_t *ids;  /* the first max_ids confirmed differing _ids */
    size_t n_ids;
    uint8_t source_hash[32], target_hash[32]; /* XOR of the documents' SHA-256 (any order) */
} lm_verify_ns_t;

typedef struct {
    lm_verify_ns_t *items; /* sorted by namespace */
    size_t n;
    size_t n_failed;
    int64_t documents; /* documents compared (source side) */
    int64_t elapsed_ms;
    bool stopped; /* *stop was set: the result covers part of the namespaces */
    /* resume: ranges of the whole comparison, ranges taken as done from an earlier run's
     * progress file, and that file while it is kept ("" once removed or never written) */
    size_t ranges_total, ranges_resumed;
    char progress_file[1024];
} lm_verify_result_t;

typedef struct {
    const lm_job_t *job; /* endpoints, filters, split settings; passwords read */
    /* pools the caller owns (NULL: verify opens its own from job) */
    mongoc_client_pool_t *source, *target;
    int workers;              /* range workers; 0: 4 */
    int recheck_count;        /* re-reads of a differing _id; 0: none (-1 default: 3) */
    int64_t recheck_delay_ms; /* between re-reads (-1 default: 1000) */
    int max_ids;              /* differing _ids listed per namespace (0: default 20) */
    bool skip_indexes;        /* do not compare index specs */
    const atomic_bool *stop;  /* set from another thread to stop early (may be NULL) */
    lm_status_t *status;      /* its verification section is kept up to date (may be NULL) */
    void (*progress)(void *ud, const lm_verify_progress_t *p); /* about once a second */
    void *progress_ud;
    /* resume (docs/verification.md): the progress of the run is kept in
     * <state_dir>/verify-<key>.json (0600, written atomically at most once a second); a run
     * that finds a matching file skips the ranges it lists as finished. NULL: not kept. */
    const char *state_dir;
    bool restart; /* remove a progress file of an earlier run and start over */
} lm_verify_opts_t;

/* Verifies; false with err set when it could not (connection, catalog, a read failed):
 * the result then holds what was found so far. A difference is not an error: it is in
 * result (n_failed). Always call lm_verify_result_cleanup. */
bool lm_verify_run(const lm_verify_opts_t *opts, lm_verify_result_t *result, lm_error_t *err);
void lm_verify_result_cleanup(lm_verify_result_t *r);

/* ---- the pure parts, exposed for callers and unit tests ---- */

/* The key of a comparison: the SHA-256 (hex, 64 characters) of the source's and the
 * target's host lists, the include/exclude filters and the split settings. No user name,
 * password or URI option goes in. False if a URI does not parse. */
bool lm_verify_resume_key(const lm_job_t *job, char hex[65], lm_error_t *err);

/* Checks a progress file's text: extended JSON of {livemigVerifyProgress: 1, key,
 * updated, namespaces: [{ns, meta, plan, done: [...]}]} whose key is `key`. On success
 * *out is the parsed document (bson_destroy it). False with err saying what is wrong. */
bool lm_verify_progress_parse(const char *text, size_t len, const char *key, bson_t **out,
                              lm_error_t *err);

/* Records one differing _id of kind in ns: counted always, listed while fewer than max_ids. */
void lm_verify_ns_add_id(lm_verify_ns_t *ns, const bson_value_t *id, lm_verify_doc_kind_t kind,
                         int max_ids);
/* Adds a reason (at most LM_VERIFY_MAX_REASONS) and marks ns failed. */
void lm_verify_ns_fail(lm_verify_ns_t *ns, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Compares two option documents (listCollections "options") field by field, byte for byte
 * on each value; appends a reason per difference to ns ("option 'validator' differs",
 * "option 'capped' missing on the target", "option 'x' only on the target"). */
void lm_verify_compare_options(lm_verify_ns_t *ns, const bson_t *source, const bson_t *target);
/* Compares index lists ({"0": spec, ...}, as lm_catalog keeps them) by name; each spec's
 * fields but v, ns and entryFormat, byte for byte on each value. */
void lm_verify_compare_indexes(lm_verify_ns_t *ns, const bson_t *source, const bson_t *target);

/* Names what differs between two versions of a document, never the values: "fields a, b",
 * "+c" for a field only on the target, "-d" only on the source; or, when every field is
 * equal, "field order: source (a, b), target (b, a)". Cut to fit buf. */
void lm_verify_field_diff(const bson_t *source, const bson_t *target, char *buf, size_t size);

/* Differing _ids found by the range compare, before the re-checks: the first
 * LM_VERIFY_MAX_RECHECK as {"0": {_id, k: kind}, ...}, and how many there were. */
typedef struct {
    bson_t list;
    uint32_t n;
    int64_t total;
} lm_verify_cands_t;
void lm_verify_cands_init(lm_verify_cands_t *c);
void lm_verify_cands_add(lm_verify_cands_t *c, const bson_value_t *id, lm_verify_doc_kind_t kind);
void lm_verify_cands_cleanup(lm_verify_cands_t *c);

/* The range compare on two streams of documents (no server): feed documents from either
 * side in any interleaving; a document whose _id came from the other side already is
 * compared with it at once and both are let go; lm_verify_merge_finish turns what is left
 * into missing (source only) and extra (target only) candidates. */
typedef struct lm_verify_merge lm_verify_merge_t;
lm_verify_merge_t *lm_verify_merge_new(void);
/* side 0 source, 1 target; doc must hold an _id. False once more than
 * LM_VERIFY_MAX_PENDING documents are held (overflowed: later documents are only counted
 * and hashed, and every unmatched _id that is held is still reported as a candidate). */
bool lm_verify_merge_add(lm_verify_merge_t *m, int side, const bson_t *doc,
                         lm_verify_cands_t *cands);
void lm_verify_merge_finish(lm_verify_merge_t *m, lm_verify_cands_t *cands);
bool lm_verify_merge_overflowed(const lm_verify_merge_t *m);
int64_t lm_verify_merge_count(const lm_verify_merge_t *m, int side);
/* The XOR of the SHA-256 of every document of a side (independent of order). */
const uint8_t *lm_verify_merge_hash(const lm_verify_merge_t *m, int side);
void lm_verify_merge_destroy(lm_verify_merge_t *m);

/* Renders the result: a table (namespace, result, counts, detail) with the differing _ids
 * under each failing namespace (only the failing ones with failed_only), and a last line;
 * or one JSON document. */
void lm_verify_render_table(const lm_verify_result_t *r, bool failed_only, lm_strbuf_t *out);
void lm_verify_render_json(const lm_verify_result_t *r, lm_strbuf_t *out);

const char *lm_verify_doc_kind_name(lm_verify_doc_kind_t k);

#endif
