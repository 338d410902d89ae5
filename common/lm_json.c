/* lm_json: see lm_json.h. */
#include "lm_json.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "lm_encode.h"

/* ---- escaping ---- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    size_t need;
    unsigned int cp;

    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0) {
        need = 2;
        cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        need = 3;
        cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        need = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (need > n)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need;
}

void lm_json_escape_n(lm_strbuf_t *sb, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    lm_strbuf_append_n(sb, "\"", 1);
    while (i < n) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            lm_strbuf_append_n(sb, esc, 2);
            i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': lm_strbuf_append_n(sb, "\\n", 2); break;
            case '\r': lm_strbuf_append_n(sb, "\\r", 2); break;
            case '\t': lm_strbuf_append_n(sb, "\\t", 2); break;
            default: lm_strbuf_appendf(sb, "\\u%04x", c); break;
            }
            i++;
        } else {
            size_t k = utf8_seq_len(p + i, n - i);
            if (k == 0) {
                lm_strbuf_append_n(sb, "\\ufffd", 6);
                i++;
            } else {
                lm_strbuf_append_n(sb, s + i, k);
                i += k;
            }
        }
    }
    lm_strbuf_append_n(sb, "\"", 1);
}

void lm_json_escape(lm_strbuf_t *sb, const char *s)
{
    lm_json_escape_n(sb, s, strlen(s));
}

/* ---- writer ---- */

struct lm_json_writer {
    yajl_gen g;
    yajl_gen_status status;
};

/* The writer's allocator. yajl grows its output buffer with realloc, which would leave
 * copies of what was written (the passwords of a poll answer) in freed memory. Each block
 * carries its size in front of it, so that it is wiped before it is let go. */
typedef union {
    size_t n;
    max_align_t align;
} block_head_t;

static void *w_malloc(void *ctx, size_t n)
{
    (void)ctx;
    block_head_t *b = malloc(sizeof *b + n);
    if (!b)
        return NULL;
    b->n = n;
    return b + 1;
}

static void w_free(void *ctx, void *p)
{
    (void)ctx;
    if (!p)
        return;
    block_head_t *b = (block_head_t *)p - 1;
    lm_wipe(p, b->n);
    free(b);
}

static void *w_realloc(void *ctx, void *p, size_t n)
{
    if (!p)
        return w_malloc(ctx, n);
    block_head_t *b = (block_head_t *)p - 1;
    void *q = w_malloc(ctx, n);
    if (!q)
        return NULL;
    memcpy(q, p, b->n < n ? b->n : n);
    w_free(ctx, p);
    return q;
}

lm_json_writer_t *lm_json_writer_new(bool pretty)
{
    static yajl_alloc_funcs wiping = {w_malloc, w_realloc, w_free, NULL};
    lm_json_writer_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->g = yajl_gen_alloc(&wiping);
    if (!w->g) {
        free(w);
        return NULL;
    }
    yajl_gen_config(w->g, yajl_gen_validate_utf8, 1);
    if (pretty) {
        yajl_gen_config(w->g, yajl_gen_beautify, 1);
        yajl_gen_config(w->g, yajl_gen_indent_string, "  ");
    }
    w->status = yajl_gen_status_ok;
    return w;
}

void lm_json_writer_destroy(lm_json_writer_t *w)
{
    if (!w)
        return;
    yajl_gen_free(w->g);
    free(w);
}

static void w_check(lm_json_writer_t *w, yajl_gen_status st)
{
    if (w->status == yajl_gen_status_ok && st != yajl_gen_status_ok)
        w->status = st;
}

void lm_json_w_map_open(lm_json_writer_t *w)
{
    w_check(w, yajl_gen_map_open(w->g));
}

void lm_json_w_map_close(lm_json_writer_t *w)
{
    w_check(w, yajl_gen_map_close(w->g));
}

void lm_json_w_array_open(lm_json_writer_t *w)
{
    w_check(w, yajl_gen_array_open(w->g));
}

void lm_json_w_array_close(lm_json_writer_t *w)
{
    w_check(w, yajl_gen_array_close(w->g));
}

void lm_json_w_key(lm_json_writer_t *w, const char *key)
{
    lm_json_w_str(w, key);
}

void lm_json_w_str(lm_json_writer_t *w, const char *s)
{
    if (!s) {
        lm_json_w_null(w);
        return;
    }
    w_check(w, yajl_gen_string(w->g, (const unsigned char *)s, strlen(s)));
}

void lm_json_w_kv_str(lm_json_writer_t *w, const char *key, const char *s)
{
    lm_json_w_key(w, key);
    lm_json_w_str(w, s);
}

void lm_json_w_int(lm_json_writer_t *w, int64_t v)
{
    w_check(w, yajl_gen_integer(w->g, (long long)v));
}

void lm_json_w_double(lm_json_writer_t *w, double v)
{
    /* JSON has no NaN or infinity; yajl refuses them, null says "no value" honestly. */
    if (!isfinite(v)) {
        lm_json_w_null(w);
        return;
    }
    w_check(w, yajl_gen_double(w->g, v));
}

void lm_json_w_bool(lm_json_writer_t *w, bool v)
{
    w_check(w, yajl_gen_bool(w->g, v));
}

void lm_json_w_null(lm_json_writer_t *w)
{
    w_check(w, yajl_gen_null(w->g));
}

const char *lm_json_writer_result(lm_json_writer_t *w, size_t *len, lm_error_t *err)
{
    const unsigned char *buf = NULL;
    size_t n = 0;

    if (w->status != yajl_gen_status_ok) {
        lm_error_set(err, LM_ERR_INTERNAL, "JSON writer: %s",
                     w->status == yajl_gen_invalid_string ? "a string is not valid UTF-8"
                                                          : "calls out of order");
        return NULL;
    }
    yajl_gen_get_buf(w->g, &buf, &n);
    if (len)
        *len = n;
    return (const char *)buf;
}

/* ---- parser ---- */

/* Refuses nesting deeper than max_depth before yajl builds (and later recursively frees)
 * the tree, so hostile input cannot exhaust the stack. */
static bool depth_ok(const char *s, size_t n, unsigned max_depth)
{
    unsigned depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return false;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return true;
}

lm_json_val_t *lm_json_parse(const char *buf, size_t len, size_t max_bytes, unsigned max_depth,
                             lm_error_t *err)
{
    char errbuf[256];
    char *copy;
    yajl_val v;

    if (max_bytes == 0)
        max_bytes = LM_JSON_DEFAULT_MAX_BYTES;
    if (max_depth == 0)
        max_depth = LM_JSON_DEFAULT_MAX_DEPTH;
    if (len > max_bytes) {
        lm_error_set(err, LM_ERR_TOO_LARGE,
                     "JSON document of %zu bytes is over the limit of %zu bytes", len, max_bytes);
        return NULL;
    }
    if (memchr(buf, '\0', len)) {
        lm_error_set(err, LM_ERR_INVALID, "invalid JSON: contains a NUL byte");
        return NULL;
    }
    if (!depth_ok(buf, len, max_depth)) {
        lm_error_set(err, LM_ERR_INVALID, "invalid JSON: nested deeper than %u levels", max_depth);
        return NULL;
    }
    copy = malloc(len + 1);
    if (!copy) {
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory parsing JSON");
        return NULL;
    }
    memcpy(copy, buf, len);
    copy[len] = '\0';
    errbuf[0] = '\0';
    v = yajl_tree_parse(copy, errbuf, sizeof errbuf);
    lm_wipe(copy, len); /* it may hold secrets */
    free(copy);
    if (!v) {
        char *nl = strchr(errbuf, '\n');
        if (nl)
            *nl = '\0';
        lm_error_set(err, LM_ERR_INVALID, "invalid JSON: %s", errbuf[0] ? errbuf : "parse error");
        return NULL;
    }
    return v;
}

void lm_json_free(lm_json_val_t *v)
{
    if (v)
        yajl_tree_free(v);
}

void lm_json_wipe(lm_json_val_t *v)
{
    if (!v)
        return;
    switch (v->type) {
    case yajl_t_string: lm_wipe(v->u.string, strlen(v->u.string)); break;
    case yajl_t_number:
        if (v->u.number.r)
            lm_wipe(v->u.number.r, strlen(v->u.number.r));
        break;
    case yajl_t_object:
        for (size_t i = 0; i < v->u.object.len; i++) {
            lm_wipe((char *)v->u.object.keys[i], strlen(v->u.object.keys[i]));
            lm_json_wipe(v->u.object.values[i]);
        }
        break;
    case yajl_t_array:
        for (size_t i = 0; i < v->u.array.len; i++)
            lm_json_wipe(v->u.array.values[i]);
        break;
    default: break;
    }
}

void lm_json_free_wipe(lm_json_val_t *v)
{
    lm_json_wipe(v);
    lm_json_free(v);
}

lm_json_type_t lm_json_type(const lm_json_val_t *v)
{
    if (!v)
        return LM_JSON_NULL;
    switch (v->type) {
    case yajl_t_string: return LM_JSON_STRING;
    case yajl_t_number: return YAJL_IS_INTEGER(v) ? LM_JSON_INT : LM_JSON_DOUBLE;
    case yajl_t_object: return LM_JSON_OBJECT;
    case yajl_t_array: return LM_JSON_ARRAY;
    case yajl_t_true:
    case yajl_t_false: return LM_JSON_BOOL;
    default: return LM_JSON_NULL;
    }
}

const char *lm_json_type_name(lm_json_type_t t)
{
    static const char *const names[] = {"null",     "a boolean", "an integer", "a number",
                                        "a string", "an array",  "an object"};
    return names[t];
}

const char *lm_json_string(const lm_json_val_t *v)
{
    return v && v->type == yajl_t_string ? v->u.string : NULL;
}

lm_json_val_t *lm_json_get(const lm_json_val_t *obj, const char *key)
{
    if (!obj || obj->type != yajl_t_object)
        return NULL;
    /* The last of duplicate members wins, as in most JSON parsers. */
    for (size_t i = obj->u.object.len; i-- > 0;)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

size_t lm_json_len(const lm_json_val_t *v)
{
    if (v && v->type == yajl_t_object)
        return v->u.object.len;
    if (v && v->type == yajl_t_array)
        return v->u.array.len;
    return 0;
}

lm_json_val_t *lm_json_at(const lm_json_val_t *arr, size_t i)
{
    if (!arr || arr->type != yajl_t_array || i >= arr->u.array.len)
        return NULL;
    return arr->u.array.values[i];
}

const char *lm_json_key_at(const lm_json_val_t *obj, size_t i, lm_json_val_t **val)
{
    if (!obj || obj->type != yajl_t_object || i >= obj->u.object.len)
        return NULL;
    if (val)
        *val = obj->u.object.values[i];
    return obj->u.object.keys[i];
}

/* Looks up key; false+error on a missing required member or a wrong type; true with
 * *found=false when absent and optional. */
static bool member(const lm_json_val_t *obj, const char *key, bool required, lm_json_type_t want,
                   lm_json_val_t **out, lm_error_t *err)
{
    lm_json_val_t *v = lm_json_get(obj, key);
    *out = NULL;
    if (!v || v->type == yajl_t_null) {
        if (required)
            return lm_error_set(err, LM_ERR_INVALID, "field '%s' is required", key);
        return true;
    }
    lm_json_type_t got = lm_json_type(v);
    if (got != want && !(want == LM_JSON_DOUBLE && got == LM_JSON_INT))
        return lm_error_set(err, LM_ERR_INVALID, "field '%s': expected %s, got %s", key,
                            lm_json_type_name(want), lm_json_type_name(got));
    *out = v;
    return true;
}

bool lm_json_get_str(const lm_json_val_t *obj, const char *key, bool required, size_t max_len,
                     const char **out, lm_error_t *err)
{
    lm_json_val_t *v;
    if (!member(obj, key, required, LM_JSON_STRING, &v, err))
        return false;
    if (!v)
        return true;
    if (max_len && strlen(v->u.string) > max_len)
        return lm_error_set(err, LM_ERR_INVALID, "field '%s': longer than %zu bytes", key, max_len);
    *out = v->u.string;
    return true;
}

bool lm_json_get_int(const lm_json_val_t *obj, const char *key, bool required, int64_t min,
                     int64_t max, int64_t *out, lm_error_t *err)
{
    lm_json_val_t *v;
    if (!member(obj, key, required, LM_JSON_INT, &v, err))
        return false;
    if (!v)
        return true;
    long long i = YAJL_GET_INTEGER(v);
    if (i < min || i > max)
        return lm_error_set(err, LM_ERR_INVALID, "field '%s': %lld is not between %lld and %lld",
                            key, i, (long long)min, (long long)max);
    *out = i;
    return true;
}

bool lm_json_get_double(const lm_json_val_t *obj, const char *key, bool required, double *out,
                        lm_error_t *err)
{
    lm_json_val_t *v;
    if (!member(obj, key, required, LM_JSON_DOUBLE, &v, err))
        return false;
    if (v)
        *out = YAJL_IS_INTEGER(v) ? (double)YAJL_GET_INTEGER(v) : YAJL_GET_DOUBLE(v);
    return true;
}

bool lm_json_get_bool(const lm_json_val_t *obj, const char *key, bool required, bool *out,
                      lm_error_t *err)
{
    lm_json_val_t *v;
    if (!member(obj, key, required, LM_JSON_BOOL, &v, err))
        return false;
    if (v)
        *out = v->type == yajl_t_true;
    return true;
}

bool lm_json_get_obj(const lm_json_val_t *obj, const char *key, bool required, lm_json_val_t **out,
                     lm_error_t *err)
{
    return member(obj, key, required, LM_JSON_OBJECT, out, err);
}

bool lm_json_get_arr(const lm_json_val_t *obj, const char *key, bool required, size_t max_items,
                     lm_json_val_t **out, lm_error_t *err)
{
    if (!member(obj, key, required, LM_JSON_ARRAY, out, err))
        return false;
    if (*out && max_items && (*out)->u.array.len > max_items)
        return lm_error_set(err, LM_ERR_INVALID, "field '%s': more than %zu items", key, max_items);
    return true;
}
