/* livemig-controlplane: the entry point.
 *
 *   livemig-controlplane --config FILE              serve (foreground, for systemd)
 *   livemig-controlplane --config FILE --check-config | --print-config
 *   livemig-controlplane --config FILE bootstrap --org ORG [--desc TEXT]
 *       creates the organization and an Organization Owner API key (printed once)
 *   livemig-controlplane --version
 */
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "lm_encode.h"
#include "lm_cp.h"
#include "lm_cp_tls.h"
#include "lm_http.h"
#include "lm_log.h"
#include "lm_time.h"

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"text", "json", NULL};

static const lm_config_field_t tls_fields[] = {
    {"cert_file", LM_CFG_STRING,
     offsetof(lm_cp_config_t, tls.cert_file) - offsetof(lm_cp_config_t, tls), NULL, 0, 0,
     LM_CFG_REQUIRED, NULL, NULL, "PEM certificate the control plane serves (signed by ca_file)."},
    {"key_file", LM_CFG_STRING,
     offsetof(lm_cp_config_t, tls.key_file) - offsetof(lm_cp_config_t, tls), NULL, 0, 0,
     LM_CFG_REQUIRED, NULL, NULL, "Its private key (PEM, mode 0600)."},
    {"ca_file", LM_CFG_STRING,
     offsetof(lm_cp_config_t, tls.ca_file) - offsetof(lm_cp_config_t, tls), NULL, 0, 0,
     LM_CFG_REQUIRED, NULL, NULL,
     "The CA that signed cert_file: link-tokens carry its SHA-256 so agents pin it."},
    LM_CONFIG_END};

const lm_config_field_t lm_cp_config_schema[] = {
    {"listen", LM_CFG_STRING, offsetof(lm_cp_config_t, listen), "127.0.0.1:8443", 0, 0, 0, NULL,
     NULL, "Address and port to serve HTTPS on (IPv4; port 0 picks a free one)."},
    {"public_url", LM_CFG_STRING, offsetof(lm_cp_config_t, public_url), NULL, 0, 0, 0, NULL, NULL,
     "The https:// URL agents reach this control plane at (put in link-tokens); default\n"
     "https://<listen>."},
    {"tls", LM_CFG_SECTION, offsetof(lm_cp_config_t, tls), NULL, 0, 0, 0, NULL, tls_fields,
     "TLS: the control plane serves HTTPS only."},
    {"db_path", LM_CFG_STRING, offsetof(lm_cp_config_t, db_path),
     "/var/lib/livemig-controlplane/controlplane.db", 0, 0, 0, NULL, NULL,
     "The SQLite database (WAL) holding all state."},
    {"secrets_key_file", LM_CFG_STRING, offsetof(lm_cp_config_t, secrets_key_file), NULL, 0, 0,
     LM_CFG_REQUIRED, NULL, NULL,
     "File with 64 hex digits: the AES-256-GCM key that encrypts stored source passwords\n"
     "(make one with `openssl rand -hex 32 > FILE; chmod 600 FILE`)."},
    {"heartbeat_interval", LM_CFG_DURATION, offsetof(lm_cp_config_t, heartbeat_ms), "10s", 1000,
     3600000, 0, NULL, NULL, "How often agents send a heartbeat."},
    {"host_grace", LM_CFG_DURATION, offsetof(lm_cp_config_t, host_grace_ms), "60s", 1000, 86400000,
     0, NULL, NULL,
     "How long an agent may send no heartbeat before the live migrations it runs record its\n"
     "host lost (an event in their history, and another when it is back)."},
    {"poll_timeout", LM_CFG_DURATION, offsetof(lm_cp_config_t, poll_ms), "30s", 1000, 120000, 0,
     NULL, NULL, "How long an agent's poll for work is held open."},
    {"cutover_window", LM_CFG_DURATION, offsetof(lm_cp_config_t, cutover_window_ms), "120h", 1000,
     INT64_C(31536000000), 0, NULL, NULL,
     "How long after the first readyForCutover a migration may wait for its cutover before\n"
     "it EXPIRES."},
    {"extend_by", LM_CFG_DURATION, offsetof(lm_cp_config_t, extend_ms), "24h", 1000,
     INT64_C(31536000000), 0, NULL, NULL, "What one `extend` adds to the cutover window."},
    {"relink_window", LM_CFG_DURATION, offsetof(lm_cp_config_t, relink_ms), "15m", 1000, 86400000,
     0, NULL, NULL,
     "How long `livemig lm agents relink HOST` lets HOST link again (once) before the\n"
     "permission lapses."},
    {"max_request_body", LM_CFG_SIZE, offsetof(lm_cp_config_t, max_body), "256KiB", 1024, 16 << 20,
     0, NULL, NULL, "Larger request bodies are refused (413)."},
    {"max_connections", LM_CFG_INT, offsetof(lm_cp_config_t, max_connections), "512", 16, 4096, 0,
     NULL, NULL, "Open connections at most (each is a thread); more are closed at once."},
    {"max_connections_per_address", LM_CFG_INT, offsetof(lm_cp_config_t, max_per_address), "32", 1,
     4096, 0, NULL, NULL,
     "Open connections at most from one client address, so that one address cannot take\n"
     "them all (agents behind one NAT count together)."},
    {"max_waiting_polls", LM_CFG_INT, offsetof(lm_cp_config_t, max_waiting_polls), "256", 1, 4095,
     0, NULL, NULL,
     "Agent polls held open at most; one more is answered 503 at once (the agent retries\n"
     "later). Must be below max_connections: the rest stay for admin requests."},
    {"auth_timeout", LM_CFG_DURATION, offsetof(lm_cp_config_t, auth_timeout_ms), "10s", 1000,
     120000, 0, NULL, NULL,
     "A connection idle this long before its first authenticated request is closed (TLS\n"
     "handshake and headers included)."},
    {"idle_timeout", LM_CFG_DURATION, offsetof(lm_cp_config_t, idle_timeout_ms), "120s", 1000,
     3600000, 0, NULL, NULL, "An authenticated connection idle this long is closed."},
    {"console_session_idle", LM_CFG_DURATION, offsetof(lm_cp_config_t, console_idle_ms), "30m",
     1000, 86400000, 0, NULL, NULL,
     "The web console (/console/): a session with no request for this long ends (sign in\n"
     "again)."},
    {"console_session_lifetime", LM_CFG_DURATION, offsetof(lm_cp_config_t, console_lifetime_ms),
     "12h", 60000, INT64_C(2592000000), 0, NULL, NULL,
     "The web console: a session ends this long after its sign-in, however busy."},
    {"log_level", LM_CFG_ENUM, offsetof(lm_cp_config_t, log_level), "info", 0, 0, 0, log_levels,
     NULL, "debug, info, warn or error."},
    {"log_format", LM_CFG_ENUM, offsetof(lm_cp_config_t, log_format), "text", 0, 0, 0, log_formats,
     NULL, "text or json (one object per line)."},
    LM_CONFIG_END};

static atomic_bool stop_flag, reload_flag;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload_flag = 1;
    else
        stop_flag = 1;
}

/* SIGHUP: reads the configuration again and applies what can change while serving (the
 * TLS certificate, key and CA; log_level and log_format). Anything invalid is logged
 * (file:line, or the file) and the running settings stay; it never stops the server. */
static void reload(lm_cp_t *cp, const char *config)
{
    lm_cp_config_t n;
    lm_error_t err;
    memset(&n, 0, sizeof n);
    if (!lm_config_load_file(lm_cp_config_schema, &n, config, &err) ||
        !lm_config_check_required(lm_cp_config_schema, &n, config, &err))
        lm_log_error(NULL, "reload: %s: keeping the running configuration", err.message);
    else if (!lm_cp_reload_tls(cp, &n, &err))
        lm_log_error(NULL, "reload: %s: keeping the running certificate and configuration",
                     err.message);
    else {
        lm_log_set_level((lm_log_level_t)n.log_level);
        lm_log_set_format(n.log_format == 1 ? LM_LOG_JSON : LM_LOG_TEXT);
        lm_log_info(NULL,
                    "reload: %s: TLS certificate, key and CA, log_level and log_format "
                    "applied; other settings take effect at the next restart",
                    config);
    }
    lm_config_cleanup(lm_cp_config_schema, &n);
}

static int usage(void)
{
    fprintf(stderr, "usage: livemig-controlplane --config FILE [--check-config | --print-config]\n"
                    "       livemig-controlplane --config FILE bootstrap --org ORG [--desc TEXT]\n"
                    "       livemig-controlplane --version | --sample-config\n");
    return 2;
}

int main(int argc, char **argv)
{
    /* no core dump, no ptrace by other processes of this user: its memory holds passwords,
     * link-tokens and keys */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    const char *config = NULL, *org = NULL, *desc = "bootstrap";
    lm_error_t err;
    bool check = false, print = false, bootstrap = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("livemig-controlplane %s\n", LM_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--sample-config") == 0) {
            /* conf/controlplane.yaml: every key with its help and default */
            lm_cp_config_t defaults;
            memset(&defaults, 0, sizeof defaults);
            if (!lm_config_load_defaults(lm_cp_config_schema, &defaults, &err)) {
                fprintf(stderr, "livemig-controlplane: %s\n", err.message);
                return 1;
            }
            fputs("# livemig-controlplane --config FILE. Generated by `livemig-controlplane "
                  "--sample-config`.\n\n",
                  stdout);
            lm_config_print(lm_cp_config_schema, &defaults, stdout, true);
            lm_config_cleanup(lm_cp_config_schema, &defaults);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check = true;
        } else if (strcmp(argv[i], "--print-config") == 0) {
            print = true;
        } else if (strcmp(argv[i], "bootstrap") == 0) {
            bootstrap = true;
        } else if (strcmp(argv[i], "--org") == 0 && i + 1 < argc) {
            org = argv[++i];
        } else if (strcmp(argv[i], "--desc") == 0 && i + 1 < argc) {
            desc = argv[++i];
        } else {
            fprintf(stderr, "livemig-controlplane: unknown argument \"%s\"\n", argv[i]);
            return usage();
        }
    }
    if (!config || (bootstrap && !org))
        return usage();
    lm_cp_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    int code = 1;
    char url[300];
    if (!lm_config_load_file(lm_cp_config_schema, &cfg, config, &err) ||
        !lm_config_check_required(lm_cp_config_schema, &cfg, config, &err)) {
        fprintf(stderr, "livemig-controlplane: %s\n", err.message);
        code = 2; /* the configuration: systemd does not restart on it */
        goto out;
    }
    if (cfg.public_url && strncmp(cfg.public_url, "https://", 8) != 0) {
        fprintf(stderr, "livemig-controlplane: %s: public_url: must start with https://\n", config);
        code = 2;
        goto out;
    }
    if (cfg.max_waiting_polls >= cfg.max_connections) {
        fprintf(stderr,
                "livemig-controlplane: %s: max_waiting_polls: must be below max_connections "
                "(%lld), which admin requests share\n",
                config, (long long)cfg.max_connections);
        code = 2;
        goto out;
    }
    if (print) {
        lm_config_print(lm_cp_config_schema, &cfg, stdout, false);
        code = 0;
        goto out;
    }
    if (check) {
        uint8_t key[32];
        char pin[65];
        if (!lm_cp_load_key(cfg.secrets_key_file, key, &err) ||
            !lm_cp_tls_key_private(cfg.tls.key_file, &err) ||
            !lm_http_ca_pin(cfg.tls.ca_file, pin, &err)) {
            fprintf(stderr, "livemig-controlplane: %s\n", err.message);
            goto out;
        }
        lm_wipe(key, sizeof key);
        printf("%s: OK\n", config);
        code = 0;
        goto out;
    }
    lm_log_set_level((lm_log_level_t)cfg.log_level);
    lm_log_set_format(cfg.log_format == 1 ? LM_LOG_JSON : LM_LOG_TEXT);
    if (bootstrap) {
        if (!lm_cp_bootstrap(&cfg, org, desc, &err)) {
            fprintf(stderr, "livemig-controlplane: %s\n", err.message);
            goto out;
        }
        code = 0;
        goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!cfg.public_url) /* https://<listen>, with the real port (listen may say 0) */
        cfg.public_url = strdup("https://pending");
    lm_cp_t *cp = lm_cp_start(&cfg, &err);
    if (!cp) {
        fprintf(stderr, "livemig-controlplane: %s\n", err.message);
        goto out;
    }
    if (strcmp(cfg.public_url, "https://pending") == 0) {
        char host[256];
        snprintf(host, sizeof host, "%.*s", (int)(strrchr(cfg.listen, ':') - cfg.listen),
                 cfg.listen);
        snprintf(url, sizeof url, "https://%s:%d", host, lm_cp_port(cp));
        lm_cp_set_public_url(cp, url);
    }
    lm_log_info(NULL, "livemig-controlplane %s serving https on port %d (public URL %s)",
                LM_VERSION, lm_cp_port(cp), cfg.public_url);
    printf("LISTENING port=%d\n", lm_cp_port(cp));
    fflush(stdout);
    while (!stop_flag) {
        if (atomic_exchange(&reload_flag, false))
            reload(cp, config);
        lm_cp_tick(cp);
        lm_time_sleep_ms(1000, &stop_flag);
    }
    lm_log_info(NULL, "stopping");
    lm_cp_stop(cp);
    code = 0;
out:
    lm_config_cleanup(lm_cp_config_schema, &cfg);
    return code;
}
