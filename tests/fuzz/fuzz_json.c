/* Fuzzes lm_json_parse and every getter on whatever it returns. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lm_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const lm_json_val_t *v, unsigned depth)
{
    lm_error_t err;
    if (depth > 64)
        __builtin_trap(); /* the depth cap must have stopped this */
    for (size_t i = 0; i < lm_json_len(v); i++) {
        lm_json_val_t *child = NULL;
        const char *key = lm_json_key_at(v, i, &child);
        if (key) {
            const char *s;
            int64_t n;
            double d;
            bool b;
            lm_json_val_t *o;
            lm_json_get_str(v, key, true, 16, &s, &err);
            lm_json_get_int(v, key, true, -10, 10, &n, &err);
            lm_json_get_double(v, key, false, &d, &err);
            lm_json_get_bool(v, key, false, &b, &err);
            lm_json_get_obj(v, key, false, &o, &err);
            lm_json_get_arr(v, key, false, 3, &o, &err);
        } else {
            child = lm_json_at(v, i);
        }
        walk(child, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lm_error_t err;
    lm_json_val_t *v = lm_json_parse((const char *)data, size, 1 << 16, 32, &err);
    if (v) {
        walk(v, 0);
        lm_json_free(v);
    } else if (err.message[0] == '\0') {
        __builtin_trap();
    }
    /* the escaper always yields a valid JSON string */
    lm_strbuf_t sb;
    lm_strbuf_init(&sb, 1 << 20);
    lm_json_escape_n(&sb, (const char *)data, size);
    lm_json_val_t *back = lm_json_parse(sb.data, sb.len, 1 << 22, 0, &err);
    if (!back || lm_json_type(back) != LM_JSON_STRING)
        __builtin_trap();
    lm_json_free(back);
    lm_strbuf_cleanup(&sb);
    return 0;
}
