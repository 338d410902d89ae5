/* lm_config: errors carry file:line:col and the key; unknown and duplicate keys, wrong
 * types and bounds are refused; defaults, overrides and redacted printing work. */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "lm_config.h"
#include "lm_redact.h"
#include "lm_test_util.h"

typedef struct {
    int64_t copy_workers;
    int64_t buffer_bytes;
} limits_t;

typedef struct {
    char *url;
    char *link_token;
    char *state_dir;
    int64_t poll_interval_ms;
    bool tls;
    int log_format;
    lm_strlist_t include;
    limits_t limits;
} agent_cfg_t;

static const char *const formats[] = {"text", "json", NULL};

static const lm_config_field_t limits_fields[] = {
    {"copy_workers", LM_CFG_INT, offsetof(limits_t, copy_workers), "4", 1, 64, 0, NULL, NULL,
     "Collections copied at once."},
    {"buffer", LM_CFG_SIZE, offsetof(limits_t, buffer_bytes), "256MB", 1 << 20, 1LL << 40, 0, NULL,
     NULL, "Memory for documents in flight."},
    LM_CONFIG_END,
};

static const lm_config_field_t schema[] = {
    {"url", LM_CFG_STRING, offsetof(agent_cfg_t, url), NULL, 0, 0, LM_CFG_REQUIRED, NULL, NULL,
     "Control plane URL."},
    {"link_token", LM_CFG_STRING, offsetof(agent_cfg_t, link_token), NULL, 0, 0, LM_CFG_SECRET,
     NULL, NULL, "Link-token from the control plane."},
    {"state_dir", LM_CFG_STRING, offsetof(agent_cfg_t, state_dir), "/var/lib/livemig", 0, 0, 0,
     NULL, NULL, "Where the agent keeps its identity."},
    {"poll_interval", LM_CFG_DURATION, offsetof(agent_cfg_t, poll_interval_ms), "5s", 1000, 3600000,
     0, NULL, NULL, "How often to ask for work."},
    {"tls", LM_CFG_BOOL, offsetof(agent_cfg_t, tls), "true", 0, 0, 0, NULL, NULL, "Use TLS."},
    {"log_format", LM_CFG_ENUM, offsetof(agent_cfg_t, log_format), "text", 0, 0, 0, formats, NULL,
     "text or json."},
    {"include", LM_CFG_STRING_LIST, offsetof(agent_cfg_t, include), NULL, 0, 0, 0, NULL, NULL,
     "Namespaces to copy."},
    {"limits", LM_CFG_SECTION, offsetof(agent_cfg_t, limits), NULL, 0, 0, 0, NULL, limits_fields,
     "Resource limits."},
    LM_CONFIG_END,
};

static agent_cfg_t cfg;
static lm_error_t err;

static void setup(void)
{
    memset(&cfg, 0, sizeof cfg);
    lm_error_init(&err);
}

static void teardown(void)
{
    lm_config_cleanup(schema, &cfg);
    lm_redact_forget_all();
}

TestSuite(config, .init = setup, .fini = teardown);

static bool load(const char *yaml)
{
    return lm_config_load_string(schema, &cfg, "agent.yaml", yaml, strlen(yaml), &err) &&
           lm_config_check_required(schema, &cfg, "agent.yaml", &err);
}

static void expect_error(const char *yaml, const char *msg)
{
    cr_assert_not(load(yaml), "accepted:\n%s", yaml);
    cr_assert_str_eq(err.message, msg, "for:\n%s", yaml);
}

Test(config, syntax_error_has_line_and_column)
{
    expect_error("url: x\npoll_interval: [1s\nlimits: {}\n",
                 "agent.yaml:3:7: YAML syntax error: did not find expected ',' or ']' "
                 "(while parsing a flow sequence that starts at 2:16)");
    cr_assert_not(load("url: x\n  bad: indent\n"));
    cr_assert(strncmp(err.message, "agent.yaml:2:6: YAML syntax error: ", 35) == 0, "%s",
              err.message);
    cr_assert_not(load("url: \"unterminated\n"));
    cr_assert(strncmp(err.message, "agent.yaml:2:1: YAML syntax error: ", 35) == 0, "%s",
              err.message);
}

Test(config, unknown_key_with_suggestion)
{
    expect_error("url: x\npol_interval: 5s\n",
                 "agent.yaml:2:1: pol_interval: unknown key (did you mean 'poll_interval'?)");
    expect_error("url: x\nlimits:\n  zzz: 1\n", "agent.yaml:3:3: limits.zzz: unknown key");
}

Test(config, duplicate_key)
{
    expect_error("url: x\ntls: true\ntls: false\n",
                 "agent.yaml:3:1: tls: duplicate key (first set at line 2)");
}

Test(config, wrong_types)
{
    expect_error("url: x\nlimits:\n  copy_workers: many\n",
                 "agent.yaml:3:17: limits.copy_workers: expected an integer, got 'many'");
    expect_error("url: x\ntls: \"true\"\n",
                 "agent.yaml:2:6: tls: expected true or false, got 'true'");
    expect_error("url: [a, b]\n", "agent.yaml:1:6: url: expected a string, got a list");
    expect_error("url: x\nlimits: 4\n",
                 "agent.yaml:2:9: limits: expected a mapping of keys under 'limits'");
    expect_error("url: x\nlog_format: xml\n",
                 "agent.yaml:2:13: log_format: 'xml' is not one of: text, json");
    expect_error(
        "url: x\npoll_interval: 5\n",
        "agent.yaml:2:16: poll_interval: '5' is not a duration: the unit must be ms, s, m, h or d");
    expect_error("- a\n- b\n", "agent.yaml:1:1: the file must be a mapping of keys to values");
    expect_error("url: x\ninclude: [a, {b: c}]\n",
                 "agent.yaml:2:14: include: list items must be strings");
}

Test(config, bounds)
{
    expect_error("url: x\npoll_interval: 500ms\n",
                 "agent.yaml:2:16: poll_interval: must be between 1s and 1h");
    expect_error("url: x\nlimits:\n  copy_workers: 0\n",
                 "agent.yaml:3:17: limits.copy_workers: must be between 1 and 64");
    expect_error("url: x\nlimits:\n  buffer: 1KB\n",
                 "agent.yaml:3:11: limits.buffer: must be between 1MB and 1TB");
}

Test(config, empty_value_and_missing_required)
{
    expect_error("url:\n", "agent.yaml:1:5: url: has no value: give one or remove the line");
    expect_error("tls: false\n", "agent.yaml: url: required, but not set");
    expect_error("", "agent.yaml: url: required, but not set");
}

Test(config, defaults_fill_what_is_not_given)
{
    cr_assert(
        load("url: https://cp:8443\nlimits:\n  copy_workers: 8\ninclude: [shop.*, crm.users]\n"),
        "%s", err.message);
    cr_assert_str_eq(cfg.url, "https://cp:8443");
    cr_assert_str_eq(cfg.state_dir, "/var/lib/livemig");
    cr_assert_eq(cfg.poll_interval_ms, 5000);
    cr_assert(cfg.tls);
    cr_assert_eq(cfg.log_format, 0);
    cr_assert_eq(cfg.limits.copy_workers, 8);
    cr_assert_eq(cfg.limits.buffer_bytes, 256LL << 20);
    cr_assert_eq(cfg.include.n, 2);
    cr_assert_str_eq(cfg.include.items[1], "crm.users");
    cr_assert_null(cfg.link_token);
}

Test(config, flags_may_supply_required_keys)
{
    cr_assert(lm_config_load_string(schema, &cfg, "agent.yaml", "tls: false\n", 11, &err), "%s",
              err.message);
    cr_assert_not(lm_config_check_required(schema, &cfg, "agent.yaml", &err));
    cr_assert(lm_config_set(schema, &cfg, "url", "https://cp", &err));
    cr_assert(lm_config_check_required(schema, &cfg, "agent.yaml", &err), "%s", err.message);
    cr_assert_not(cfg.tls);
}

Test(config, set_overrides_by_path)
{
    cr_assert(load("url: a\n"));
    cr_assert(lm_config_set(schema, &cfg, "limits.copy_workers", "16", &err), "%s", err.message);
    cr_assert_eq(cfg.limits.copy_workers, 16);
    cr_assert(lm_config_set(schema, &cfg, "include", "x.y", &err));
    cr_assert_eq(cfg.include.n, 1);
    cr_assert_not(lm_config_set(schema, &cfg, "limits.copy_workers", "99", &err));
    cr_assert_str_eq(err.message, "limits.copy_workers: must be between 1 and 64");
    cr_assert_not(lm_config_set(schema, &cfg, "limits", "1", &err));
    cr_assert_not(lm_config_set(schema, &cfg, "nope.x", "1", &err));
    cr_assert_not(lm_config_set(schema, &cfg, "url.x", "1", &err));
}

Test(config, secrets_redacted_in_print_and_logs)
{
    char dir[512], path[600];
    cr_assert(load("url: https://cp\nlink_token: LMTOKEN-abcdef123456\n"));
    lm_test_mkdtemp(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/out.yaml", dir);
    FILE *f = fopen(path, "w+");
    lm_config_print(schema, &cfg, f, true);
    rewind(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    cr_assert_null(strstr(buf, "LMTOKEN-abcdef123456"), "%s", buf);
    cr_assert(strstr(buf, "link_token: \"<redacted>\""), "%s", buf);
    cr_assert(strstr(buf, "# How often to ask for work.\npoll_interval: 5s\n"), "%s", buf);
    cr_assert(strstr(buf, "limits:\n  # Collections copied at once.\n  copy_workers: 4\n"), "%s",
              buf);
    /* the secret was registered: a log line or error that contains it is masked */
    char red[128];
    lm_redact_buf("token was LMTOKEN-abcdef123456", red, sizeof red);
    cr_assert_str_eq(red, "token was ****");
    lm_test_rmtree(dir);
}

Test(config, print_round_trips)
{
    char dir[512], path[600];
    agent_cfg_t again;
    cr_assert(load("url: \"https://cp:1/a b\"\npoll_interval: 90s\ninclude: [\"q\\\"x\"]\nlimits: "
                   "{buffer: 3GB}\n"),
              "%s", err.message);
    lm_test_mkdtemp(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/out.yaml", dir);
    FILE *f = fopen(path, "w");
    lm_config_print(schema, &cfg, f, false);
    fclose(f);
    memset(&again, 0, sizeof again);
    cr_assert(lm_config_load_file(schema, &again, path, &err), "%s", err.message);
    cr_assert_str_eq(again.url, "https://cp:1/a b");
    cr_assert_eq(again.poll_interval_ms, 90000);
    cr_assert_str_eq(again.include.items[0], "q\"x");
    cr_assert_eq(again.limits.buffer_bytes, 3LL << 30);
    lm_config_cleanup(schema, &again);
    lm_test_rmtree(dir);
}

Test(config, missing_file)
{
    cr_assert_not(lm_config_load_file(schema, &cfg, "/nonexistent/agent.yaml", &err));
    cr_assert_str_eq(err.message,
                     "/nonexistent/agent.yaml: cannot open: No such file or directory");
}

Test(config, second_document_refused)
{
    expect_error("url: a\n---\nurl: b\n", "agent.yaml: holds more than one YAML document");
}

Test(config, a_section_with_every_key_commented_out_takes_its_defaults)
{
    /* as in the samples in conf/: "limits:" with nothing under it */
    cr_assert(load("url: https://cp\nlimits:\n  # copy_workers: 4\n"), "%s", err.message);
    cr_assert_eq(cfg.limits.copy_workers, 4);
    cr_assert_eq(cfg.limits.buffer_bytes, 256LL << 20);
    lm_config_cleanup(schema, &cfg);
    memset(&cfg, 0, sizeof cfg);
    expect_error("url: https://cp\nlimits: 5\n",
                 "agent.yaml:2:9: limits: expected a mapping of keys under 'limits'");
}
