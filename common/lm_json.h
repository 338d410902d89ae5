/* lm_json: JSON on yajl. A writer (yajl_gen underneath) and a size- and depth-capped tree
 * parser with typed getters whose errors name the field. Untrusted input is expected:
 * nothing here trusts lengths, depth or types. */
#ifndef LM_JSON_H
#define LM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lm_error.h"
#include "lm_strbuf.h"

/* ---- escaping into a string buffer (used by the logger) ---- */

/* Appends s as a quoted JSON string. Invalid UTF-8 bytes become U+FFFD, so the output is
 * always valid JSON. */
void lm_json_escape(lm_strbuf_t *sb, const char *s);
void lm_json_escape_n(lm_strbuf_t *sb, const char *s, size_t n);

/* ---- writer ---- */

typedef struct lm_json_writer lm_json_writer_t;

/* A writer; compact output, or indented when `pretty`. Destroy with lm_json_writer_destroy.
 * Every block the writer lets go of (when its buffer grows, and at destroy) is wiped first,
 * so documents that carry secrets leave no copy in freed memory. */
lm_json_writer_t *lm_json_writer_new(bool pretty);
void lm_json_writer_destroy(lm_json_writer_t *w);
void lm_json_w_map_open(lm_json_writer_t *w);
void lm_json_w_map_close(lm_json_writer_t *w);
void lm_json_w_array_open(lm_json_writer_t *w);
void lm_json_w_array_close(lm_json_writer_t *w);
void lm_json_w_key(lm_json_writer_t *w, const char *key);
void lm_json_w_str(lm_json_writer_t *w, const char *s); /* NULL writes null */
/* A member: key, then the string (NULL writes null). */
void lm_json_w_kv_str(lm_json_writer_t *w, const char *key, const char *s);
void lm_json_w_int(lm_json_writer_t *w, int64_t v);
void lm_json_w_double(lm_json_writer_t *w, double v);
void lm_json_w_bool(lm_json_writer_t *w, bool v);
void lm_json_w_null(lm_json_writer_t *w);
/* The document so far (owned by w), or NULL with err set when a call was out of order or a
 * string was not UTF-8. */
const char *lm_json_writer_result(lm_json_writer_t *w, size_t *len, lm_error_t *err);

/* ---- parser ---- */

typedef struct yajl_val_s lm_json_val_t;

typedef enum {
    LM_JSON_NULL,
    LM_JSON_BOOL,
    LM_JSON_INT,
    LM_JSON_DOUBLE,
    LM_JSON_STRING,
    LM_JSON_ARRAY,
    LM_JSON_OBJECT,
} lm_json_type_t;

#define LM_JSON_DEFAULT_MAX_BYTES (1u << 20)
#define LM_JSON_DEFAULT_MAX_DEPTH 32

/* Parses buf[0..len) (need not be NUL-terminated). Refuses more than max_bytes or nesting
 * deeper than max_depth (0 = the defaults). Returns a tree to lm_json_free, or NULL. The
 * parser's own copy of buf is wiped. (Limit: yajl decodes a string that holds escape
 * sequences in a buffer of its own, which it frees unwiped.) */
lm_json_val_t *lm_json_parse(const char *buf, size_t len, size_t max_bytes, unsigned max_depth,
                             lm_error_t *err);
void lm_json_free(lm_json_val_t *v);
/* Zeroes every string, key and number text of the tree in place (the tree stays valid:
 * its strings are then empty). */
void lm_json_wipe(lm_json_val_t *v);
/* lm_json_wipe, then lm_json_free: for trees that held secrets (passwords). */
void lm_json_free_wipe(lm_json_val_t *v);

lm_json_type_t lm_json_type(const lm_json_val_t *v);
const char *lm_json_type_name(lm_json_type_t t);

/* The text of a string value, or NULL when v is not a string. */
const char *lm_json_string(const lm_json_val_t *v);

/* Member `key` of an object, or NULL (absent, or v not an object). */
lm_json_val_t *lm_json_get(const lm_json_val_t *obj, const char *key);
size_t lm_json_len(const lm_json_val_t *v); /* members of an object or items of an array */
lm_json_val_t *lm_json_at(const lm_json_val_t *arr, size_t i);
/* Name and value of member i of an object. */
const char *lm_json_key_at(const lm_json_val_t *obj, size_t i, lm_json_val_t **val);

/* Typed getters. A missing member is an error only when `required`; then *out keeps its
 * value. A member of the wrong type is always an error ("field 'x': expected a string,
 * got a number"). Strings longer than max_len (0: no limit) are refused. Returned strings
 * stay owned by the tree. */
bool lm_json_get_str(const lm_json_val_t *obj, const char *key, bool required, size_t max_len,
                     const char **out, lm_error_t *err);
bool lm_json_get_int(const lm_json_val_t *obj, const char *key, bool required, int64_t min,
                     int64_t max, int64_t *out, lm_error_t *err);
bool lm_json_get_double(const lm_json_val_t *obj, const char *key, bool required, double *out,
                        lm_error_t *err);
bool lm_json_get_bool(const lm_json_val_t *obj, const char *key, bool required, bool *out,
                      lm_error_t *err);
/* An object or array member (type checked), or NULL when absent and not required. */
bool lm_json_get_obj(const lm_json_val_t *obj, const char *key, bool required, lm_json_val_t **out,
                     lm_error_t *err);
bool lm_json_get_arr(const lm_json_val_t *obj, const char *key, bool required, size_t max_items,
                     lm_json_val_t **out, lm_error_t *err);

#endif
