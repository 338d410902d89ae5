/* lm_json: hostile input is refused with clear errors; getters name fields; writer output
 * round-trips. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "lm_json.h"

static lm_json_val_t *parse(const char *s, lm_error_t *err)
{
    return lm_json_parse(s, strlen(s), 0, 0, err);
}

Test(json, malformed_is_an_error)
{
    lm_error_t err;
    cr_assert_null(parse("{\"a\":", &err));
    cr_assert(strstr(err.message, "invalid JSON"), "%s", err.message);
    cr_assert_null(parse("", &err));
    cr_assert_null(parse("{'a':1}", &err));
    cr_assert_null(lm_json_parse("{\"a\":1}\0junk", 12, 0, 0, &err));
    cr_assert(strstr(err.message, "NUL"), "%s", err.message);
}

Test(json, size_cap)
{
    lm_error_t err;
    const char *doc = "{\"a\":\"0123456789\"}";
    cr_assert_null(lm_json_parse(doc, strlen(doc), 10, 0, &err));
    cr_assert_eq(err.code, LM_ERR_TOO_LARGE);
}

Test(json, depth_cap_stops_stack_bombs)
{
    lm_error_t err;
    size_t n = 200000;
    char *deep = malloc(n + 1);
    memset(deep, '[', n);
    deep[n] = '\0';
    cr_assert_null(lm_json_parse(deep, n, n + 1, 0, &err));
    cr_assert(strstr(err.message, "deeper"), "%s", err.message);
    free(deep);
    /* brackets inside strings do not count */
    lm_json_val_t *v = parse("{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}", &err);
    cr_assert_not_null(v, "%s", err.message);
    lm_json_free(v);
}

Test(json, typed_getters_name_the_field)
{
    lm_error_t err;
    lm_json_val_t *v = parse(
        "{\"s\":\"x\",\"i\":42,\"d\":1.5,\"b\":true,\"o\":{},\"a\":[1,2,3],\"n\":null}", &err);
    const char *s = NULL;
    int64_t i = 0;
    double d = 0;
    bool b = false;
    lm_json_val_t *o = NULL;

    cr_assert_not_null(v);
    cr_assert_not(lm_json_get_str(v, "i", true, 0, &s, &err));
    cr_assert_str_eq(err.message, "field 'i': expected a string, got an integer");
    cr_assert_not(lm_json_get_int(v, "missing", true, 0, 100, &i, &err));
    cr_assert_str_eq(err.message, "field 'missing' is required");
    cr_assert(lm_json_get_int(v, "missing", false, 0, 100, &i, &err));
    cr_assert_not(lm_json_get_int(v, "i", true, 0, 10, &i, &err));
    cr_assert(strstr(err.message, "not between 0 and 10"));
    cr_assert(lm_json_get_int(v, "i", true, 0, 100, &i, &err));
    cr_assert_eq(i, 42);
    cr_assert_not(lm_json_get_int(v, "d", true, 0, 100, &i, &err));
    cr_assert(lm_json_get_double(v, "d", true, &d, &err));
    cr_assert_float_eq(d, 1.5, 1e-9);
    cr_assert(lm_json_get_double(v, "i", true, &d, &err), "an integer is a number");
    cr_assert(lm_json_get_bool(v, "b", true, &b, &err));
    cr_assert(b);
    cr_assert(lm_json_get_obj(v, "o", true, &o, &err));
    cr_assert_not_null(o);
    cr_assert_not(lm_json_get_arr(v, "a", true, 2, &o, &err));
    cr_assert(strstr(err.message, "more than 2 items"));
    cr_assert(lm_json_get_arr(v, "a", true, 3, &o, &err));
    cr_assert_eq(lm_json_len(o), 3);
    cr_assert_not(lm_json_get_str(v, "n", true, 0, &s, &err), "null counts as missing");
    cr_assert_not(lm_json_get_str(v, "s", true, 0, &s, &err) == false);
    cr_assert_str_eq(s, "x");
    lm_json_val_t *tmp = NULL;
    cr_assert_str_eq(lm_json_key_at(v, 0, &tmp), "s");
    cr_assert_null(lm_json_key_at(v, 99, &tmp));
    cr_assert_null(lm_json_at(o, 3));
    lm_json_free(v);
}

Test(json, string_length_cap)
{
    lm_error_t err;
    const char *s;
    lm_json_val_t *v = parse("{\"s\":\"0123456789\"}", &err);
    cr_assert_not(lm_json_get_str(v, "s", true, 5, &s, &err));
    cr_assert(strstr(err.message, "longer than 5"));
    lm_json_free(v);
}

Test(json, writer_round_trip)
{
    lm_error_t err;
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_map_open(w);
    lm_json_w_kv_str(w, "name", "a \"quoted\"\nline");
    lm_json_w_key(w, "n");
    lm_json_w_int(w, -7);
    lm_json_w_key(w, "inf");
    lm_json_w_double(w, 1.0 / 0.0);
    lm_json_w_key(w, "list");
    lm_json_w_array_open(w);
    lm_json_w_bool(w, false);
    lm_json_w_null(w);
    lm_json_w_array_close(w);
    lm_json_w_map_close(w);
    size_t len;
    const char *out = lm_json_writer_result(w, &len, &err);
    cr_assert_not_null(out, "%s", err.message);
    cr_assert_str_eq(
        out, "{\"name\":\"a \\\"quoted\\\"\\nline\",\"n\":-7,\"inf\":null,\"list\":[false,null]}");
    lm_json_val_t *v = lm_json_parse(out, len, 0, 0, &err);
    const char *s;
    cr_assert(lm_json_get_str(v, "name", true, 0, &s, &err));
    cr_assert_str_eq(s, "a \"quoted\"\nline");
    lm_json_free(v);
    lm_json_writer_destroy(w);
}

Test(json, writer_rejects_bad_utf8_and_misuse)
{
    lm_error_t err;
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_map_open(w);
    lm_json_w_kv_str(w, "k", "\xff\xfe");
    cr_assert_null(lm_json_writer_result(w, NULL, &err));
    cr_assert(strstr(err.message, "UTF-8"), "%s", err.message);
    lm_json_writer_destroy(w);
    w = lm_json_writer_new(false);
    lm_json_w_map_open(w);
    lm_json_w_int(w, 1); /* a value where a key must be */
    cr_assert_null(lm_json_writer_result(w, NULL, &err));
    lm_json_writer_destroy(w);
}

Test(json, escape_produces_valid_json)
{
    lm_strbuf_t sb;
    lm_strbuf_init(&sb, 1024);
    lm_json_escape(&sb, "tab\there \x01 \xc3\xa9 \xe2\x82");
    cr_assert_str_eq(lm_strbuf_str(&sb), "\"tab\\there \\u0001 \xc3\xa9 \\ufffd\\ufffd\"");
    lm_strbuf_cleanup(&sb);
}
