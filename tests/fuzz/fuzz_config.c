/* Fuzzes lm_config_load_string with a schema that uses every field type. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lm_config.h"
#include "lm_redact.h"

typedef struct {
    int64_t n;
} sub_t;

typedef struct {
    char *s;
    char *secret;
    int64_t i;
    bool b;
    int64_t dur;
    int64_t size;
    int e;
    lm_strlist_t list;
    sub_t sub;
} fuzz_cfg_t;

static const char *const choices[] = {"a", "b", NULL};

static const lm_config_field_t sub_fields[] = {
    {"n", LM_CFG_INT, offsetof(sub_t, n), "1", 1, 100, 0, NULL, NULL, "n"},
    LM_CONFIG_END,
};

static const lm_config_field_t schema[] = {
    {"s", LM_CFG_STRING, offsetof(fuzz_cfg_t, s), NULL, 0, 0, 0, NULL, NULL, "s"},
    {"secret", LM_CFG_STRING, offsetof(fuzz_cfg_t, secret), NULL, 0, 0, LM_CFG_SECRET, NULL, NULL,
     "x"},
    {"i", LM_CFG_INT, offsetof(fuzz_cfg_t, i), "3", -5, 5000, 0, NULL, NULL, "i"},
    {"b", LM_CFG_BOOL, offsetof(fuzz_cfg_t, b), "false", 0, 0, 0, NULL, NULL, "b"},
    {"dur", LM_CFG_DURATION, offsetof(fuzz_cfg_t, dur), "5s", 0, 86400000, 0, NULL, NULL, "d"},
    {"size", LM_CFG_SIZE, offsetof(fuzz_cfg_t, size), "1MB", 0, 0, 0, NULL, NULL, "z"},
    {"e", LM_CFG_ENUM, offsetof(fuzz_cfg_t, e), "a", 0, 0, 0, choices, NULL, "e"},
    {"list", LM_CFG_STRING_LIST, offsetof(fuzz_cfg_t, list), NULL, 0, 0, 0, NULL, NULL, "l"},
    {"sub", LM_CFG_SECTION, offsetof(fuzz_cfg_t, sub), NULL, 0, 0, 0, NULL, sub_fields, "sub"},
    LM_CONFIG_END,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_cfg_t cfg;
    lm_error_t err;
    memset(&cfg, 0, sizeof cfg);
    if (lm_config_load_string(schema, &cfg, "fuzz.yaml", (const char *)data, size, &err)) {
        /* a loaded config always has its defaults and bounds */
        if (cfg.i < -5 || cfg.i > 5000 || cfg.sub.n < 1 || cfg.sub.n > 100 || cfg.e < 0 ||
            cfg.e > 1)
            __builtin_trap();
    } else if (err.message[0] == '\0') {
        __builtin_trap(); /* every failure explains itself */
    }
    lm_config_cleanup(schema, &cfg);
    lm_redact_forget_all();
    return 0;
}
