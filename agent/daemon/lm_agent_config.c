/* lm_agent_config: see lm_agent_config.h. */
#include "lm_agent_config.h"

#include <stddef.h>
#include <string.h>

#include "lm_status_http.h"

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"text", "json", NULL};

static const lm_config_field_t cp_fields[] = {
    {"url", LM_CFG_STRING, offsetof(lm_agent_cp_t, url), NULL, 0, 0, 0, NULL, NULL,
     "The control plane's https:// URL; the link-token names it, so this only overrides."},
    {"link_token_file", LM_CFG_STRING, offsetof(lm_agent_cp_t, link_token_file), NULL, 0, 0, 0,
     NULL, NULL,
     "File (mode 0600) holding the link-token `livemig lm link create` printed; used to link\n"
     "on the first start."},
    {"link_token", LM_CFG_STRING, offsetof(lm_agent_cp_t, link_token), NULL, 0, 0, LM_CFG_SECRET,
     NULL, NULL, "The link-token itself, instead of link_token_file (then mode 0600 this file)."},
    {"ca_file", LM_CFG_STRING, offsetof(lm_agent_cp_t, ca_file), NULL, 0, 0, 0, NULL, NULL,
     "The control plane's CA certificate (PEM); its SHA-256 must be the link-token's pin."},
    LM_CONFIG_END};

static const lm_config_field_t limit_fields[] = {
    {"copy_workers", LM_CFG_INT, offsetof(lm_agent_limits_t, copy_workers), "0", 0, 64, 0, NULL,
     NULL, "Parallel readers/writers of the copy; 0 (auto): each copy chooses 1 to 8 itself."},
    {"apply_workers", LM_CFG_INT, offsetof(lm_agent_limits_t, apply_workers), "0", 0, 64, 0, NULL,
     NULL,
     "Parallel appliers of the change stream; 0 (auto): each stream chooses 1 to 8 by its load."},
    {"buffer_mb", LM_CFG_INT, offsetof(lm_agent_limits_t, buffer_mb), "256", 16, 65536, 0, NULL,
     NULL, "Memory for documents in flight, in MiB."},
    LM_CONFIG_END};

const lm_config_field_t lm_agent_config_schema[] = {
    {"control_plane", LM_CFG_SECTION, offsetof(lm_agent_config_t, cp), NULL, 0, 0, 0, NULL,
     cp_fields, "Where jobs come from."},
    {"state_dir", LM_CFG_STRING, offsetof(lm_agent_config_t, state_dir), "/var/lib/livemig", 0, 0,
     0, NULL, NULL, "The agent's identity (mode 0600) and job state."},
    {"ca_dir", LM_CFG_STRING, offsetof(lm_agent_config_t, ca_dir), "/etc/livemig/ca", 0, 0, 0, NULL,
     NULL,
     "Where the CA certificates of the clusters live (writable by root only). A cluster's\n"
     "caFile from the control plane is a file name in it, or a path that resolves into it;\n"
     "the agent reads no CA file elsewhere."},
    {"hostname", LM_CFG_STRING, offsetof(lm_agent_config_t, hostname), NULL, 0, 0, 0, NULL, NULL,
     "The name migrations give as their migration host; default: this machine's."},
    {"heartbeat_interval", LM_CFG_DURATION, offsetof(lm_agent_config_t, heartbeat_ms), "10s", 1000,
     3600000, 0, NULL, NULL, "How often a heartbeat goes to the control plane."},
    {"poll_timeout", LM_CFG_DURATION, offsetof(lm_agent_config_t, poll_ms), "30s", 1000, 120000, 0,
     NULL, NULL, "How long one poll for work may wait."},
    {"limits", LM_CFG_SECTION, offsetof(lm_agent_config_t, limits), NULL, 0, 0, 0, NULL,
     limit_fields, "Resources a job may use."},
    {"status_addr", LM_CFG_STRING, offsetof(lm_agent_config_t, status_addr), "127.0.0.1:27190", 0,
     0, 0, NULL, NULL,
     "The local status API (GET /api/v1/status, /metrics; cancel and cutover with the job's\n"
     "token): a loopback address only (127.0.0.1:PORT or [::1]:PORT); \"0\" turns it off."},
    {"allow_insecure_tls", LM_CFG_BOOL, offsetof(lm_agent_config_t, allow_insecure_tls), "false", 0,
     0, 0, NULL, NULL,
     "Run jobs whose connection strings turn TLS certificate or host name checks off\n"
     "(tlsInsecure, tlsAllowInvalidCertificates, tlsAllowInvalidHostnames, ...); refused\n"
     "otherwise. Validation warns about them."},
    {"log_level", LM_CFG_ENUM, offsetof(lm_agent_config_t, log_level), "info", 0, 0, 0, log_levels,
     NULL, "debug, info, warn or error."},
    {"log_format", LM_CFG_ENUM, offsetof(lm_agent_config_t, log_format), "text", 0, 0, 0,
     log_formats, NULL, "text or json (one object per line)."},
    LM_CONFIG_END};

bool lm_agent_config_load(const char *path, lm_agent_config_t *cfg, lm_error_t *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (!lm_config_load_file(lm_agent_config_schema, cfg, path, err))
        return false;
    if (cfg->cp.link_token && cfg->cp.link_token_file)
        return lm_error_set(err, LM_ERR_CONFIG,
                            "%s: control_plane: give link_token or link_token_file, not both",
                            path);
    if (cfg->cp.url && strncmp(cfg->cp.url, "https://", 8) != 0)
        return lm_error_set(err, LM_ERR_CONFIG,
                            "%s: control_plane.url: must start with https:// (the control plane "
                            "serves HTTPS only)",
                            path);
    lm_error_t aerr;
    if (!lm_status_addr_check(cfg->status_addr, &aerr))
        return lm_error_set(err, LM_ERR_CONFIG, "%s: status_addr: %s", path, aerr.message);
    return true;
}

void lm_agent_config_cleanup(lm_agent_config_t *cfg)
{
    lm_config_cleanup(lm_agent_config_schema, cfg);
}
