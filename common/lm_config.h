/* lm_config: YAML configuration driven by one schema table per section (as Fluent Bit does).
 *
 * A table row names a key, its type, where it lives in the caller's struct, its default,
 * bounds, flags (required, secret) and help text. The same table drives parsing, defaults,
 * validation, redacted printing (--print-config) and the commented sample files.
 *
 * Every error reads "file:line:col: key.path: what is wrong"; unknown keys (with a
 * "did you mean" when one is close), duplicate keys, wrong types and out-of-range values
 * are errors. Secret values are registered with lm_redact so no log line can show them,
 * and lm_config_print shows them as "<redacted>".
 *
 * Storage by type: STRING char* (malloc'd), INT int64_t, BOOL bool, DURATION int64_t
 * milliseconds, SIZE int64_t bytes, ENUM int (index into choices), STRING_LIST
 * lm_strlist_t, SECTION a nested struct. lm_config_cleanup frees what the loader
 * allocated. */
#ifndef LM_CONFIG_H
#define LM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lm_error.h"

typedef enum {
    LM_CFG_STRING,
    LM_CFG_INT,
    LM_CFG_BOOL,
    LM_CFG_DURATION,
    LM_CFG_SIZE,
    LM_CFG_ENUM,
    LM_CFG_STRING_LIST,
    LM_CFG_SECTION,
} lm_config_type_t;

#define LM_CFG_REQUIRED 0x1u
#define LM_CFG_SECRET 0x2u

#define LM_CFG_LIST_MAX 1024  /* items in one STRING_LIST */
#define LM_CFG_VALUE_MAX 8192 /* bytes in one scalar */
#define LM_CFG_FILE_MAX (1u << 20)

typedef struct {
    char **items;
    size_t n;
} lm_strlist_t;

typedef struct lm_config_field {
    const char *key;
    lm_config_type_t type;
    size_t offset;                         /* offsetof() in the struct of this table */
    const char *def;                       /* default, written as a user would; NULL: none */
    int64_t min, max;                      /* INT, DURATION (ms), SIZE (bytes); 0,0: none */
    unsigned flags;                        /* LM_CFG_REQUIRED | LM_CFG_SECRET */
    const char *const *choices;            /* ENUM: NULL-terminated names */
    const struct lm_config_field *section; /* SECTION: its table */
    const char *help;
} lm_config_field_t;

/* Loads a YAML file into cfg (zeroed, or filled by lm_config_load_defaults), then fills
 * defaults for the keys it did not set. Required keys are checked separately
 * (lm_config_check_required), since command-line flags may still supply them. On failure
 * cfg may be partly filled: call lm_config_cleanup either way. */
bool lm_config_load_file(const lm_config_field_t *schema, void *cfg, const char *path,
                         lm_error_t *err);

/* The same from memory; `name` stands for the file name in messages. */
bool lm_config_load_string(const lm_config_field_t *schema, void *cfg, const char *name,
                           const char *text, size_t len, lm_error_t *err);

/* Fills every key from its default (no file at all). */
bool lm_config_load_defaults(const lm_config_field_t *schema, void *cfg, lm_error_t *err);

/* Fails with "<where>: key.path: required, but not set" for the first required key that has
 * no value (a NULL string or an empty list). */
bool lm_config_check_required(const lm_config_field_t *schema, const void *cfg, const char *where,
                              lm_error_t *err);

/* Sets one key by dotted path ("limits.copy_workers") from text, as a command-line flag
 * does after the file is loaded. A STRING_LIST gets the value appended. */
bool lm_config_set(const lm_config_field_t *schema, void *cfg, const char *path, const char *value,
                   lm_error_t *err);

/* Prints cfg as YAML that lm_config_load_* reads back; secrets as "<redacted>". With
 * `help`, each key is preceded by its help text as a comment (the sample files). */
void lm_config_print(const lm_config_field_t *schema, const void *cfg, FILE *out, bool help);

void lm_config_cleanup(const lm_config_field_t *schema, void *cfg);

void lm_strlist_cleanup(lm_strlist_t *l);

/* Ends every schema table. */
#define LM_CONFIG_END                                                                              \
    {                                                                                              \
        .key = NULL                                                                                \
    }

#endif
