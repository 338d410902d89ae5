/* lm_config: see lm_config.h. */
#include "lm_config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "lm_encode.h"
#include "lm_fs.h"
#include "lm_redact.h"
#include "lm_time.h"

#define PATH_KEY_MAX 256

/* What one load needs to report errors. */
typedef struct {
    const char *name;
    yaml_document_t *doc;
    lm_error_t *err;
} load_ctx_t;

static void *field_ptr(void *base, const lm_config_field_t *f)
{
    return (char *)base + f->offset;
}

static const void *field_cptr(const void *base, const lm_config_field_t *f)
{
    return (const char *)base + f->offset;
}

static void join_key(char *out, size_t outsz, const char *prefix, const char *key)
{
    if (prefix && *prefix)
        snprintf(out, outsz, "%s.%s", prefix, key);
    else
        snprintf(out, outsz, "%s", key);
}

/* ---- scalar values ---- */

static const char *type_name(lm_config_type_t t)
{
    switch (t) {
    case LM_CFG_STRING: return "a string";
    case LM_CFG_INT: return "an integer";
    case LM_CFG_BOOL: return "true or false";
    case LM_CFG_DURATION: return "a duration such as 5s";
    case LM_CFG_SIZE: return "a size such as 64MB";
    case LM_CFG_ENUM: return "one of the listed values";
    case LM_CFG_STRING_LIST: return "a list of strings";
    case LM_CFG_SECTION: return "a mapping";
    }
    return "?";
}

static bool parse_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || isspace((unsigned char)*s))
        return false;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_size(const char *s, int64_t *out, lm_error_t *err)
{
    static const struct {
        const char *unit;
        int64_t mult;
    } units[] = {{"", 1},           {"B", 1},          {"KB", 1 << 10}, {"KiB", 1 << 10},
                 {"MB", 1 << 20},   {"MiB", 1 << 20},  {"GB", 1 << 30}, {"GiB", 1 << 30},
                 {"TB", 1LL << 40}, {"TiB", 1LL << 40}};
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return lm_error_set(err, LM_ERR_INVALID, "'%s' is not a size: use e.g. 512KB, 64MB, 2GB",
                            s);
    long long n = strtoll(s, &end, 10);
    for (size_t i = 0; !errno && i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(end, units[i].unit) == 0) {
            if (n > INT64_MAX / units[i].mult)
                break;
            *out = n * units[i].mult;
            return true;
        }
    }
    return lm_error_set(
        err, LM_ERR_INVALID,
        "'%s' is not a size: use a number with B, KB, MB, GB or TB (powers of 1024)", s);
}

static void format_size(int64_t v, char *buf, size_t bufsz)
{
    static const char *const units[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (u < 4 && v != 0 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    snprintf(buf, bufsz, "%" PRId64 "%s", v, units[u]);
}

static void format_bound(const lm_config_field_t *f, int64_t v, char *buf, size_t bufsz)
{
    if (f->type == LM_CFG_DURATION)
        lm_time_format_duration(v, buf, bufsz);
    else if (f->type == LM_CFG_SIZE)
        format_size(v, buf, bufsz);
    else
        snprintf(buf, bufsz, "%" PRId64, v);
}

static bool check_bounds(const lm_config_field_t *f, int64_t v, lm_error_t *err)
{
    char lo[48], hi[48];
    if (f->min == 0 && f->max == 0)
        return true;
    if (v >= f->min && v <= f->max)
        return true;
    format_bound(f, f->min, lo, sizeof lo);
    format_bound(f, f->max, hi, sizeof hi);
    return lm_error_set(err, LM_ERR_CONFIG, "must be between %s and %s", lo, hi);
}

static bool list_append(lm_strlist_t *l, const char *s, lm_error_t *err)
{
    if (l->n >= LM_CFG_LIST_MAX)
        return lm_error_set(err, LM_ERR_CONFIG, "more than %d items", LM_CFG_LIST_MAX);
    char **ni = realloc(l->items, (l->n + 1) * sizeof *ni);
    if (!ni)
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    l->items = ni;
    if (!(l->items[l->n] = strdup(s)))
        return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    l->n++;
    return true;
}

/* Stores text into the field. `quoted` is true for YAML scalars written in quotes, which
 * an integer or boolean must not be (so "true" in quotes is a type error). */
static bool set_scalar(const lm_config_field_t *f, void *base, const char *text, bool quoted,
                       lm_error_t *err)
{
    void *p = field_ptr(base, f);
    int64_t v;

    if (strlen(text) > LM_CFG_VALUE_MAX)
        return lm_error_set(err, LM_ERR_CONFIG, "value longer than %d bytes", LM_CFG_VALUE_MAX);
    switch (f->type) {
    case LM_CFG_STRING: {
        char *copy = strdup(text);
        if (!copy)
            return lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
        if (f->flags & LM_CFG_SECRET) {
            lm_redact_forget(*(char **)p);
            lm_redact_register(copy);
        }
        free(*(char **)p);
        *(char **)p = copy;
        return true;
    }
    case LM_CFG_INT:
        if (quoted || !parse_int(text, &v))
            return lm_error_set(err, LM_ERR_CONFIG, "expected an integer, got '%s'", text);
        if (!check_bounds(f, v, err))
            return false;
        *(int64_t *)p = v;
        return true;
    case LM_CFG_BOOL: {
        static const char *const yes[] = {"true", "yes", "on", NULL};
        static const char *const no[] = {"false", "no", "off", NULL};
        for (int i = 0; !quoted && yes[i]; i++) {
            if (strcasecmp(text, yes[i]) == 0) {
                *(bool *)p = true;
                return true;
            }
            if (strcasecmp(text, no[i]) == 0) {
                *(bool *)p = false;
                return true;
            }
        }
        return lm_error_set(err, LM_ERR_CONFIG, "expected true or false, got '%s'", text);
    }
    case LM_CFG_DURATION:
        if (!lm_time_parse_duration(text, &v, err) || !check_bounds(f, v, err))
            return false;
        *(int64_t *)p = v;
        return true;
    case LM_CFG_SIZE:
        if (!parse_size(text, &v, err) || !check_bounds(f, v, err))
            return false;
        *(int64_t *)p = v;
        return true;
    case LM_CFG_ENUM: {
        char choices[512] = "";
        size_t used = 0;
        for (int i = 0; f->choices[i]; i++) {
            if (strcmp(text, f->choices[i]) == 0) {
                *(int *)p = i;
                return true;
            }
            used +=
                (size_t)snprintf(choices + used, used < sizeof choices ? sizeof choices - used : 0,
                                 "%s%s", i ? ", " : "", f->choices[i]);
        }
        return lm_error_set(err, LM_ERR_CONFIG, "'%s' is not one of: %s", text, choices);
    }
    case LM_CFG_STRING_LIST:
        if (!list_append((lm_strlist_t *)p, text, err))
            return false;
        if (f->flags & LM_CFG_SECRET)
            lm_redact_register(text);
        return true;
    case LM_CFG_SECTION: break;
    }
    return lm_error_set(err, LM_ERR_CONFIG, "expected a mapping, got '%s'", text);
}

/* ---- YAML tree walk ---- */

static bool fail_at(load_ctx_t *c, const yaml_node_t *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool fail_at(load_ctx_t *c, const yaml_node_t *n, const char *key, const char *fmt, ...)
{
    char msg[LM_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lm_error_set(c->err, LM_ERR_CONFIG, "%s:%zu:%zu: %s%s%s", c->name,
                        (size_t)n->start_mark.line + 1, (size_t)n->start_mark.column + 1,
                        key ? key : "", key ? ": " : "", msg);
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), prev[64], cur[64];
    if (la >= 63 || lb >= 63)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

static const lm_config_field_t *find_field(const lm_config_field_t *t, const char *key)
{
    for (; t->key; t++)
        if (strcmp(t->key, key) == 0)
            return t;
    return NULL;
}

static const char *suggest(const lm_config_field_t *t, const char *key)
{
    const char *best = NULL;
    size_t bestd = 3;
    for (; t->key; t++) {
        size_t d = edit_distance(t->key, key);
        if (d < bestd) {
            bestd = d;
            best = t->key;
        }
    }
    return best;
}

static bool is_null_scalar(const yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (!*s || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0);
}

static bool load_mapping(load_ctx_t *c, const lm_config_field_t *t, void *base, yaml_node_t *map,
                         const char *prefix);
static bool fill_defaults(const lm_config_field_t *t, void *base, const bool *seen,
                          const char *prefix, lm_error_t *err);

static bool load_value(load_ctx_t *c, const lm_config_field_t *f, void *base, yaml_node_t *v,
                       const char *path)
{
    lm_error_t sub;

    if (f->type == LM_CFG_SECTION) {
        if (v->type == YAML_SCALAR_NODE && is_null_scalar(v)) {
            /* "section:" with every key under it commented out, as in the samples */
            size_t n = 0;
            for (const lm_config_field_t *g = f->section; g->key; g++)
                n++;
            bool *none = calloc(n + 1, sizeof *none);
            bool ok = none && fill_defaults(f->section, field_ptr(base, f), none, path, c->err);
            if (!none)
                lm_error_set(c->err, LM_ERR_INTERNAL, "out of memory");
            free(none);
            return ok;
        }
        if (v->type != YAML_MAPPING_NODE)
            return fail_at(c, v, path, "expected a mapping of keys under '%s'", f->key);
        return load_mapping(c, f->section, field_ptr(base, f), v, path);
    }
    if (f->type == LM_CFG_STRING_LIST && v->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            yaml_node_t *item = yaml_document_get_node(c->doc, *it);
            if (!item || item->type != YAML_SCALAR_NODE || is_null_scalar(item))
                return fail_at(c, item ? item : v, path, "list items must be strings");
            lm_error_init(&sub);
            if (!set_scalar(f, base, (const char *)item->data.scalar.value, true, &sub))
                return fail_at(c, item, path, "%s", sub.message);
        }
        return true;
    }
    if (v->type != YAML_SCALAR_NODE)
        return fail_at(c, v, path, "expected %s, got a %s", type_name(f->type),
                       v->type == YAML_MAPPING_NODE ? "mapping" : "list");
    if (is_null_scalar(v))
        return fail_at(c, v, path, "has no value: give one or remove the line");
    lm_error_init(&sub);
    if (!set_scalar(f, base, (const char *)v->data.scalar.value,
                    v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE, &sub))
        return fail_at(c, v, path, "%s", sub.message);
    return true;
}

static bool load_mapping(load_ctx_t *c, const lm_config_field_t *t, void *base, yaml_node_t *map,
                         const char *prefix)
{
    size_t nfields = 0;
    bool ok = false;
    for (const lm_config_field_t *f = t; f->key; f++)
        nfields++;
    bool *seen = calloc(nfields + 1, sizeof *seen);
    yaml_node_t **first = calloc(nfields + 1, sizeof *first);
    if (!seen || !first) {
        lm_error_set(c->err, LM_ERR_INTERNAL, "out of memory");
        goto out;
    }
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, pr->value);
        char path[PATH_KEY_MAX];
        if (!k || !v || k->type != YAML_SCALAR_NODE) {
            fail_at(c, k ? k : map, prefix[0] ? prefix : NULL, "keys must be plain names");
            goto out;
        }
        const char *key = (const char *)k->data.scalar.value;
        join_key(path, sizeof path, prefix, key);
        const lm_config_field_t *f = find_field(t, key);
        if (!f) {
            const char *s = suggest(t, key);
            fail_at(c, k, path, "unknown key%s%s%s", s ? " (did you mean '" : "", s ? s : "",
                    s ? "'?)" : "");
            goto out;
        }
        size_t idx = (size_t)(f - t);
        if (seen[idx]) {
            fail_at(c, k, path, "duplicate key (first set at line %zu)",
                    (size_t)first[idx]->start_mark.line + 1);
            goto out;
        }
        seen[idx] = true;
        first[idx] = k;
        if (!load_value(c, f, base, v, path))
            goto out;
    }
    ok = fill_defaults(t, base, seen, prefix, c->err);
out:
    free(seen);
    free(first);
    return ok;
}

/* Sets every key not seen from its default. */
static bool fill_defaults(const lm_config_field_t *t, void *base, const bool *seen,
                          const char *prefix, lm_error_t *err)
{
    for (const lm_config_field_t *f = t; f->key; f++) {
        char path[PATH_KEY_MAX];
        if (seen && seen[f - t])
            continue;
        join_key(path, sizeof path, prefix, f->key);
        if (f->type == LM_CFG_SECTION) {
            if (!fill_defaults(f->section, field_ptr(base, f), NULL, path, err))
                return false;
        } else if (f->def) {
            lm_error_t sub;
            lm_error_init(&sub);
            if (!set_scalar(f, base, f->def, false, &sub))
                return lm_error_set(err, LM_ERR_INTERNAL, "%s: bad built-in default: %s", path,
                                    sub.message);
        }
    }
    return true;
}

static bool check_required(const lm_config_field_t *t, const void *base, const char *prefix,
                           const char *where, lm_error_t *err)
{
    for (const lm_config_field_t *f = t; f->key; f++) {
        char path[PATH_KEY_MAX];
        const void *p = field_cptr(base, f);
        join_key(path, sizeof path, prefix, f->key);
        if (f->type == LM_CFG_SECTION) {
            if (!check_required(f->section, p, path, where, err))
                return false;
            continue;
        }
        if (!(f->flags & LM_CFG_REQUIRED))
            continue;
        if ((f->type == LM_CFG_STRING && !*(char *const *)p) ||
            (f->type == LM_CFG_STRING_LIST && ((const lm_strlist_t *)p)->n == 0))
            return lm_error_set(err, LM_ERR_CONFIG, "%s: %s: required, but not set", where, path);
    }
    return true;
}

bool lm_config_check_required(const lm_config_field_t *schema, const void *cfg, const char *where,
                              lm_error_t *err)
{
    return check_required(schema, cfg, "", where, err);
}

bool lm_config_load_string(const lm_config_field_t *schema, void *cfg, const char *name,
                           const char *text, size_t len, lm_error_t *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    bool ok = false, have_doc = false;

    if (len > LM_CFG_FILE_MAX)
        return lm_error_set(err, LM_ERR_CONFIG, "%s: larger than %u bytes", name, LM_CFG_FILE_MAX);
    if (!yaml_parser_initialize(&parser))
        return lm_error_set(err, LM_ERR_INTERNAL, "%s: cannot start the YAML parser", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        char ctx[160] = "";
        if (parser.context)
            snprintf(ctx, sizeof ctx, " (%s that starts at %zu:%zu)", parser.context,
                     (size_t)parser.context_mark.line + 1, (size_t)parser.context_mark.column + 1);
        lm_error_set(err, LM_ERR_CONFIG, "%s:%zu:%zu: YAML syntax error: %s%s", name,
                     (size_t)parser.problem_mark.line + 1, (size_t)parser.problem_mark.column + 1,
                     parser.problem ? parser.problem : "unreadable", ctx);
        goto out;
    }
    have_doc = true;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || (root->type == YAML_SCALAR_NODE && is_null_scalar(root))) {
        ok = lm_config_load_defaults(schema, cfg, err);
        goto out;
    }
    if (root->type != YAML_MAPPING_NODE) {
        load_ctx_t c = {name, &doc, err};
        fail_at(&c, root, NULL, "the file must be a mapping of keys to values");
        goto out;
    }
    {
        load_ctx_t c = {name, &doc, err};
        ok = load_mapping(&c, schema, cfg, root, "");
    }
    /* A second document in the stream is a mistake worth reporting. */
    if (ok) {
        yaml_document_t next;
        if (yaml_parser_load(&parser, &next)) {
            bool extra = yaml_document_get_root_node(&next) != NULL;
            yaml_document_delete(&next);
            if (extra)
                ok =
                    lm_error_set(err, LM_ERR_CONFIG, "%s: holds more than one YAML document", name);
        }
    }
out:
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return ok;
}

bool lm_config_load_file(const lm_config_field_t *schema, void *cfg, const char *path,
                         lm_error_t *err)
{
    char *text = NULL;
    size_t len = 0;
    if (!lm_fs_read_file(path, LM_CFG_FILE_MAX, &text, &len, err))
        return false;
    bool ok = lm_config_load_string(schema, cfg, path, text, len, err);
    free(text);
    return ok;
}

bool lm_config_load_defaults(const lm_config_field_t *schema, void *cfg, lm_error_t *err)
{
    return fill_defaults(schema, cfg, NULL, "", err);
}

bool lm_config_set(const lm_config_field_t *schema, void *cfg, const char *path, const char *value,
                   lm_error_t *err)
{
    char part[PATH_KEY_MAX];
    const char *p = path;
    const lm_config_field_t *t = schema;
    void *base = cfg;

    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof part)
            return lm_error_set(err, LM_ERR_CONFIG, "%s: unknown key", path);
        memcpy(part, p, n);
        part[n] = '\0';
        const lm_config_field_t *f = find_field(t, part);
        if (!f)
            return lm_error_set(err, LM_ERR_CONFIG, "%s: unknown key", path);
        if (!dot) {
            if (f->type == LM_CFG_SECTION)
                return lm_error_set(err, LM_ERR_CONFIG, "%s: is a section, not a value", path);
            lm_error_t sub;
            lm_error_init(&sub);
            if (!set_scalar(f, base, value, false, &sub))
                return lm_error_set(err, LM_ERR_CONFIG, "%s: %s", path, sub.message);
            return true;
        }
        if (f->type != LM_CFG_SECTION)
            return lm_error_set(err, LM_ERR_CONFIG, "%s: '%s' has no sub-keys", path, part);
        base = field_ptr(base, f);
        t = f->section;
        p = dot + 1;
    }
}

/* ---- printing ---- */

static void print_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c < 0x20)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void print_help(FILE *out, const lm_config_field_t *f, int indent)
{
    const char *h = f->help ? f->help : "";
    while (*h) {
        const char *nl = strchr(h, '\n');
        int n = nl ? (int)(nl - h) : (int)strlen(h);
        fprintf(out, "%*s# %.*s\n", indent, "", n, h);
        h += n + (nl ? 1 : 0);
    }
}

static void print_table(const lm_config_field_t *t, const void *base, FILE *out, bool help,
                        int indent)
{
    for (const lm_config_field_t *f = t; f->key; f++) {
        const void *p = field_cptr(base, f);
        char buf[64];
        if (help)
            print_help(out, f, indent);
        if (f->type == LM_CFG_SECTION) {
            fprintf(out, "%*s%s:\n", indent, "", f->key);
            print_table(f->section, p, out, help, indent + 2);
            continue;
        }
        bool unset = (f->type == LM_CFG_STRING && !*(char *const *)p);
        fprintf(out, "%*s%s%s:", indent, "", unset ? "# " : "", f->key);
        if (unset) {
            fputs(f->flags & LM_CFG_REQUIRED ? " (required, not set)\n" : " (not set)\n", out);
            continue;
        }
        fputc(' ', out);
        switch (f->type) {
        case LM_CFG_STRING:
            if (f->flags & LM_CFG_SECRET)
                fputs("\"<redacted>\"", out);
            else
                print_quoted(out, *(char *const *)p);
            break;
        case LM_CFG_INT: fprintf(out, "%" PRId64, *(const int64_t *)p); break;
        case LM_CFG_BOOL: fputs(*(const bool *)p ? "true" : "false", out); break;
        case LM_CFG_DURATION:
            lm_time_format_duration(*(const int64_t *)p, buf, sizeof buf);
            fputs(buf, out);
            break;
        case LM_CFG_SIZE:
            format_size(*(const int64_t *)p, buf, sizeof buf);
            fputs(buf, out);
            break;
        case LM_CFG_ENUM: fputs(f->choices[*(const int *)p], out); break;
        case LM_CFG_STRING_LIST: {
            const lm_strlist_t *l = p;
            fputc('[', out);
            for (size_t i = 0; i < l->n; i++) {
                if (i)
                    fputs(", ", out);
                if (f->flags & LM_CFG_SECRET)
                    fputs("\"<redacted>\"", out);
                else
                    print_quoted(out, l->items[i]);
            }
            fputc(']', out);
            break;
        }
        case LM_CFG_SECTION: break;
        }
        fputc('\n', out);
    }
}

void lm_config_print(const lm_config_field_t *schema, const void *cfg, FILE *out, bool help)
{
    print_table(schema, cfg, out, help, 0);
}

void lm_strlist_cleanup(lm_strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

void lm_config_cleanup(const lm_config_field_t *schema, void *cfg)
{
    for (const lm_config_field_t *f = schema; f->key; f++) {
        void *p = field_ptr(cfg, f);
        if (f->type == LM_CFG_STRING) {
            char **s = p;
            if (*s && (f->flags & LM_CFG_SECRET)) {
                lm_redact_forget(*s);
                lm_wipe(*s, strlen(*s));
            }
            free(*s);
            *s = NULL;
        } else if (f->type == LM_CFG_STRING_LIST) {
            lm_strlist_t *l = p;
            for (size_t i = 0; (f->flags & LM_CFG_SECRET) && i < l->n; i++)
                lm_redact_forget(l->items[i]);
            lm_strlist_cleanup(p);
        } else if (f->type == LM_CFG_SECTION) {
            lm_config_cleanup(f->section, p);
        }
    }
}
