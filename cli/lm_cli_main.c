/* livemig: the command-line client of the control plane's admin API, shaped like
 * `atlas liveMigrations`. See cli/README.md (and `livemig help`).
 *
 * Connection profile: flags, else environment (LIVEMIG_URL, LIVEMIG_CA_FILE,
 * LIVEMIG_PUBLIC_KEY, LIVEMIG_PRIVATE_KEY_FILE, LIVEMIG_ORG_ID, LIVEMIG_PROJECT_ID), else
 * ~/.config/livemig/config.yaml (url, ca_file, public_key, private_key_file, org_id,
 * project_id). The private key is read from a file (mode 0600), never from a flag. */
#include <stdarg.h>
#include <stddef.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "lm_cli_cmd.h"
#include "lm_config.h"
#include "lm_encode.h"
#include "lm_fs.h"
#include "lm_http.h"
#include "lm_json.h"
#include "lm_redact.h"
#include "lm_strbuf.h"
#include "lm_time.h"

typedef struct {
    char *url, *ca_file, *public_key, *private_key_file, *org_id, *project_id;
} profile_t;

static const lm_config_field_t profile_schema[] = {
    {"url", LM_CFG_STRING, offsetof(profile_t, url), NULL, 0, 0, 0, NULL, NULL,
     "The control plane, https://host:port."},
    {"ca_file", LM_CFG_STRING, offsetof(profile_t, ca_file), NULL, 0, 0, 0, NULL, NULL,
     "CA bundle that signed the control plane's certificate (default: the system store)."},
    {"public_key", LM_CFG_STRING, offsetof(profile_t, public_key), NULL, 0, 0, 0, NULL, NULL,
     "API key: public part."},
    {"private_key_file", LM_CFG_STRING, offsetof(profile_t, private_key_file), NULL, 0, 0, 0, NULL,
     NULL, "File holding the API key's private part (mode 0600)."},
    {"org_id", LM_CFG_STRING, offsetof(profile_t, org_id), NULL, 0, 0, 0, NULL, NULL,
     "Default --orgId."},
    {"project_id", LM_CFG_STRING, offsetof(profile_t, project_id), NULL, 0, 0, 0, NULL, NULL,
     "Default --projectId."},
    LM_CONFIG_END};

/* The value of the last --name given ("true" for a switch), or NULL. */
static const char *flag(const lm_cli_args_t *a, const char *name)
{
    return lm_cli_flag(a, name);
}

static bool has(const lm_cli_args_t *a, const char *name)
{
    return lm_cli_flag(a, name) != NULL;
}

/* -o json: print the API's answer instead of a table. */
static bool want_json(const lm_cli_args_t *a)
{
    return has(a, "output");
}

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die(const char *fmt, ...)
{
    char buf[1200], clean[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    lm_redact_buf(buf, clean, sizeof clean);
    fprintf(stderr, "livemig: %s\n", clean);
    return 1;
}

/* ---- HTTP ---- */

struct lm_cli_conn {
    profile_t p;
    char *secret;
};

/* One admin API call; returns the parsed answer (NULL with a message printed on error). */
static lm_json_val_t *call(lm_cli_conn_t *c, const char *method, const char *path, const char *body,
                           long *status)
{
    char url[2048];
    snprintf(url, sizeof url, "%s/api/atlas/v2%s", c->p.url, path);
    lm_strbuf_t cred, auth;
    lm_strbuf_init_secret(&cred, 4096); /* the API key's secret: wiped by cleanup */
    lm_strbuf_init_secret(&auth, 4096);
    lm_strbuf_appendf(&cred, "%s:%s", c->p.public_key, c->secret);
    lm_strbuf_append(&auth, "Authorization: Basic ");
    lm_base64_encode(lm_strbuf_str(&cred), cred.len, false, &auth);
    const char *headers[] = {lm_strbuf_str(&auth), "Content-Type: application/json",
                             "Accept: application/json", NULL};
    lm_http_opts_t o = {.ca_file = c->p.ca_file, .total_timeout_ms = 60000, .max_retries = 2};
    lm_http_response_t resp;
    lm_error_t err;
    lm_json_val_t *v = NULL;
    bool ok = lm_http_request(&o, method, url, headers, body, body ? strlen(body) : 0, &resp, &err);
    lm_strbuf_cleanup(&cred);
    lm_strbuf_cleanup(&auth);
    if (!ok) {
        die("%s", err.message);
        lm_http_response_cleanup(&resp);
        return NULL;
    }
    *status = resp.status;
    if (resp.body_len)
        v = lm_json_parse(resp.body, resp.body_len, 0, 0, &err);
    if (resp.status >= 400) {
        const char *detail = v ? lm_json_string(lm_json_get(v, "detail")) : NULL;
        const char *code = v ? lm_json_string(lm_json_get(v, "errorCode")) : NULL;
        die("%s %s: HTTP %ld %s%s%s", method, path, resp.status, code ? code : "",
            detail ? ": " : "", detail ? detail : (resp.body ? resp.body : ""));
        lm_json_free(v);
        v = NULL;
    } else if (!v) {
        v = lm_json_parse("{}", 2, 0, 0, &err);
    }
    lm_http_response_cleanup(&resp);
    return v;
}

/* ---- output ---- */

static void print_json(const lm_json_val_t *v);

static void emit_value(lm_json_writer_t *w, const lm_json_val_t *v)
{
    switch (lm_json_type(v)) {
    case LM_JSON_NULL: lm_json_w_null(w); break;
    case LM_JSON_BOOL: lm_json_w_bool(w, YAJL_IS_TRUE(v)); break;
    case LM_JSON_INT: lm_json_w_int(w, YAJL_GET_INTEGER(v)); break;
    case LM_JSON_DOUBLE: lm_json_w_double(w, YAJL_GET_DOUBLE(v)); break;
    case LM_JSON_STRING: lm_json_w_str(w, lm_json_string(v)); break;
    case LM_JSON_ARRAY:
        lm_json_w_array_open(w);
        for (size_t i = 0; i < lm_json_len(v); i++)
            emit_value(w, lm_json_at(v, i));
        lm_json_w_array_close(w);
        break;
    case LM_JSON_OBJECT:
        lm_json_w_map_open(w);
        for (size_t i = 0; i < lm_json_len(v); i++) {
            lm_json_val_t *c;
            const char *k = lm_json_key_at(v, i, &c);
            lm_json_w_key(w, k);
            emit_value(w, c);
        }
        lm_json_w_map_close(w);
        break;
    }
}

static void print_json(const lm_json_val_t *v)
{
    lm_json_writer_t *w = lm_json_writer_new(true);
    emit_value(w, v);
    size_t len;
    lm_error_t err;
    const char *s = lm_json_writer_result(w, &len, &err);
    if (s)
        printf("%.*s\n", (int)len, s);
    lm_json_writer_destroy(w);
}

/* A scalar member as text ("" when absent, "null" for null). */
static void cell(const lm_json_val_t *o, const char *key, char *buf, size_t size)
{
    lm_json_val_t *v = lm_json_get(o, key);
    buf[0] = '\0';
    if (!v)
        return;
    switch (lm_json_type(v)) {
    case LM_JSON_STRING: snprintf(buf, size, "%s", lm_json_string(v)); break;
    case LM_JSON_INT: snprintf(buf, size, "%lld", (long long)YAJL_GET_INTEGER(v)); break;
    case LM_JSON_DOUBLE: snprintf(buf, size, "%.1f", YAJL_GET_DOUBLE(v)); break;
    case LM_JSON_BOOL: snprintf(buf, size, "%s", YAJL_IS_TRUE(v) ? "true" : "false"); break;
    case LM_JSON_NULL: snprintf(buf, size, "-"); break;
    case LM_JSON_ARRAY:
        for (size_t i = 0; i < lm_json_len(v); i++) {
            const char *s = lm_json_string(lm_json_at(v, i));
            snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", i ? "," : "", s ? s : "?");
        }
        break;
    default: snprintf(buf, size, "{...}"); break;
    }
}

/* A table of rows (objects) with the given columns. */
static void table(const lm_json_val_t *rows, const char *const *cols)
{
    size_t ncol = 0, width[16];
    char text[64][16][160];
    size_t nrows = rows ? lm_json_len(rows) : 0;
    if (nrows > 64)
        nrows = 64;
    for (; cols[ncol] && ncol < 16; ncol++)
        width[ncol] = strlen(cols[ncol]);
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncol; c++) {
            cell(lm_json_at(rows, r), cols[c], text[r][c], sizeof text[r][c]);
            if (strlen(text[r][c]) > width[c])
                width[c] = strlen(text[r][c]);
        }
    for (size_t c = 0; c < ncol; c++)
        printf("%-*s%s", (int)width[c], cols[c], c + 1 < ncol ? "   " : "\n");
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncol; c++)
            printf("%-*s%s", (int)width[c], text[r][c], c + 1 < ncol ? "   " : "\n");
}

/* One object as a one-row table. */
static void table_one(const lm_json_val_t *v, const char *const *cols)
{
    lm_error_t err;
    /* wrap the object in an array of one */
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_array_open(w);
    emit_value(w, v);
    lm_json_w_array_close(w);
    size_t len;
    const char *s = lm_json_writer_result(w, &len, &err);
    lm_json_val_t *arr = s ? lm_json_parse(s, len, 0, 0, &err) : NULL;
    table(arr, cols);
    lm_json_free(arr);
    lm_json_writer_destroy(w);
}

/* One object as a one-row table, or JSON. */
static int show(const lm_cli_args_t *a, lm_json_val_t *v, const char *const *cols)
{
    if (want_json(a)) {
        print_json(v);
    } else {
        table_one(v, cols);
        const char *msg = lm_json_string(lm_json_get(v, "errorMessage"));
        if (msg && msg[0])
            printf("\nerror: %s\n", msg);
    }
    lm_json_free(v);
    return 0;
}

static int show_list(const lm_cli_args_t *a, lm_json_val_t *v, const char *key,
                     const char *const *cols)
{
    if (want_json(a))
        print_json(v);
    else
        table(key ? lm_json_get(v, key) : v, cols);
    lm_json_free(v);
    return 0;
}

/* ---- secrets from the terminal and files ---- */

static char *read_secret_file(const char *path, const char *what)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        die("%s: cannot read %s", path, what);
        return NULL;
    }
    if (sb.st_mode & 077) {
        die("%s: %s must be readable by its owner only (chmod 600 %s)", path, what, path);
        return NULL;
    }
    char *data = NULL;
    size_t len = 0;
    lm_error_t err;
    if (!lm_fs_read_file(path, 4096, &data, &len, &err)) {
        die("%s", err.message);
        return NULL;
    }
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        data[--len] = '\0';
    lm_redact_register(data);
    return data;
}

static char *prompt_secret(const char *prompt)
{
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty)
        return NULL;
    struct termios old, quiet;
    bool echo_off = tcgetattr(fileno(tty), &old) == 0;
    if (echo_off) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
    }
    fprintf(tty, "%s", prompt);
    fflush(tty);
    char buf[1024];
    char *got = fgets(buf, sizeof buf, tty);
    if (echo_off)
        tcsetattr(fileno(tty), TCSAFLUSH, &old);
    fprintf(tty, "\n");
    fclose(tty);
    if (!got)
        return NULL;
    buf[strcspn(buf, "\r\n")] = '\0';
    char *s = strdup(buf);
    lm_wipe(buf, sizeof buf);
    lm_redact_register(s);
    return s;
}

static bool confirm(const lm_cli_args_t *a, const char *what)
{
    if (has(a, "force"))
        return true;
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty) {
        die("%s needs confirmation: run it in a terminal or add --force", what);
        return false;
    }
    fprintf(tty, "%s? [y/N] ", what);
    fflush(tty);
    char buf[16] = "";
    bool yes = fgets(buf, sizeof buf, tty) && (buf[0] == 'y' || buf[0] == 'Y');
    fclose(tty);
    if (!yes)
        fprintf(stderr, "livemig: not confirmed; nothing done\n");
    return yes;
}

/* ---- request bodies ---- */

static char *migration_body(const lm_cli_args_t *a, const char *project)
{
    const char *dest = flag(a, "clusterName"), *host = flag(a, "migrationHost"),
               *src = flag(a, "sourceClusterName"), *src_proj = flag(a, "sourceProjectId"),
               *user = flag(a, "sourceUsername"), *pw = NULL,
               *ca = flag(a, "sourceCACertificatePath");
    if (!dest || !host || !src || !src_proj) {
        die("--clusterName, --migrationHost, --sourceClusterName and --sourceProjectId are "
            "required");
        return NULL;
    }
    if (has(a, "sourcePassword")) { /* its value is never looked at, let alone echoed */
        die("--sourcePassword is refused: a password in the arguments shows in ps and the shell "
            "history; use --sourcePasswordFile F (mode 0600), or leave both out to be asked on "
            "the terminal");
        return NULL;
    }
    char *prompted = NULL;
    if (flag(a, "sourcePasswordFile")) {
        if (!user) {
            die("--sourcePasswordFile needs --sourceUsername");
            return NULL;
        }
        pw = prompted = read_secret_file(flag(a, "sourcePasswordFile"), "the password file");
        if (!pw)
            return NULL;
    } else if (user) {
        pw = prompted = isatty(STDIN_FILENO) ? prompt_secret("source password: ") : NULL;
        if (!pw) {
            die("--sourceUsername needs --sourcePasswordFile F (mode 0600), or a terminal to ask "
                "for the password");
            return NULL;
        }
    }
    if (pw)
        lm_redact_register(pw);
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_map_open(w);
    lm_json_w_key(w, "source");
    lm_json_w_map_open(w);
    lm_json_w_kv_str(w, "clusterName", src);
    lm_json_w_kv_str(w, "groupId", src_proj);
    lm_json_w_key(w, "ssl");
    lm_json_w_bool(w, has(a, "sourceSsl"));
    lm_json_w_key(w, "managedAuthentication");
    lm_json_w_bool(w, has(a, "managedAuthentication"));
    if (ca) {
        lm_json_w_kv_str(w, "caCertificatePath", ca);
    }
    if (user) {
        lm_json_w_kv_str(w, "username", user);
        lm_json_w_kv_str(w, "password", pw);
    }
    lm_json_w_map_close(w);
    lm_json_w_key(w, "destination");
    lm_json_w_map_open(w);
    lm_json_w_kv_str(w, "clusterName", dest);
    lm_json_w_kv_str(w, "groupId", project);
    lm_json_w_kv_str(w, "hostnameSchemaType", "PUBLIC");
    lm_json_w_map_close(w);
    lm_json_w_key(w, "migrationHosts");
    lm_json_w_array_open(w);
    for (int i = 0; i < a->n_flags; i++) /* several: the shards are spread over them */
        if (strcmp(a->flag_name[i], "migrationHost") == 0)
            lm_json_w_str(w, a->flag_val[i]);
    lm_json_w_array_close(w);
    if (flag(a, "maxShardsPerHost")) {
        char *end;
        long max = strtol(flag(a, "maxShardsPerHost"), &end, 10);
        if (*end || max < 1 || max > 1000) {
            lm_json_writer_destroy(w);
            if (prompted) {
                lm_wipe(prompted, strlen(prompted));
                free(prompted);
            }
            die("--maxShardsPerHost: a number from 1 to 1000");
            return NULL;
        }
        lm_json_w_key(w, "maxShardsPerHost");
        lm_json_w_int(w, max);
    }
    lm_json_w_key(w, "dropDestinationData");
    lm_json_w_bool(w, has(a, "drop"));
    if (has(a, "noVerify")) {
        lm_json_w_key(w, "verify");
        lm_json_w_bool(w, false);
    }
    lm_json_w_map_close(w);
    size_t len;
    lm_error_t err;
    const char *s = lm_json_writer_result(w, &len, &err);
    char *body = s ? strndup(s, len) : NULL;
    lm_json_writer_destroy(w);
    if (prompted) {
        lm_wipe(prompted, strlen(prompted));
        free(prompted);
    }
    return body;
}

/* POSTs the live migration (or validation) the flags describe to path; the body holds the
 * source password, so it is wiped. NULL when the flags or the call failed (said already). */
static lm_json_val_t *post_migration(lm_cli_conn_t *c, const lm_cli_args_t *a, const char *proj,
                                     const char *path)
{
    long st;
    char *body = migration_body(a, proj);
    if (!body)
        return NULL;
    lm_json_val_t *v = call(c, "POST", path, body, &st);
    lm_wipe(body, strlen(body));
    free(body);
    return v;
}

/* ---- commands (each runs after the connection profile is complete) ---- */

static const char *const job_cols[] = {
    "_id", "status", "phase", "readyForCutover", "lagTimeSeconds", "migrationHosts", NULL};
/* show() prints errorMessage under the table */
static const char *const validation_cols[] = {"_id", "status", NULL};
static const char *const project_cols[] = {"id", "name", "orgId", NULL};

/* The organization: --orgId, else the profile's; NULL (said) when neither. */
static const char *need_org(const lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *org = flag(a, "orgId") ? flag(a, "orgId") : c->p.org_id;
    if (!org)
        die("--orgId is required (or org_id in the profile)");
    return org;
}

/* The project: --projectId, else the profile's; NULL (said) when neither. */
static const char *need_project(const lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *proj = flag(a, "projectId") ? flag(a, "projectId") : c->p.project_id;
    if (!proj)
        die("--projectId is required (or project_id in the profile)");
    return proj;
}

static int cmd_link_create(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *org = need_org(c, a);
    if (!org)
        return 1;
    char path[1024];
    long st = 0;
    lm_strbuf_t b;
    lm_strbuf_init(&b, 1u << 16);
    lm_strbuf_append(&b, "{\"accessListIps\":[");
    int n = 0;
    for (int i = 0; i < a->n_flags; i++)
        if (strcmp(a->flag_name[i], "accessListIp") == 0) {
            lm_strbuf_append(&b, n++ ? "," : "");
            lm_json_escape(&b, a->flag_val[i]);
        }
    lm_strbuf_append(&b, "]");
    if (flag(a, "expiresAfter")) {
        lm_strbuf_append(&b, ",\"expiresAfter\":");
        lm_json_escape(&b, flag(a, "expiresAfter"));
    }
    lm_strbuf_append(&b, "}");
    snprintf(path, sizeof path, "/orgs/%s/liveMigrations/linkTokens", org);
    lm_json_val_t *v = call(c, "POST", path, lm_strbuf_str(&b), &st);
    lm_strbuf_cleanup(&b);
    if (!v)
        return 1;
    const char *tok = lm_json_string(lm_json_get(v, "linkToken"));
    if (want_json(a))
        print_json(v);
    else
        printf("%s\n", tok ? tok : "");
    fflush(stdout);
    const char *expires = lm_json_string(lm_json_get(v, "expires"));
    fprintf(stderr,
            "livemig: this link-token is shown once: give it to the agent "
            "(`livemig-agent link --token-file F`) and keep it secret; it links agents %s%s\n",
            expires ? "until " : "until it is deleted", expires ? expires : "");
    lm_json_free(v);
    return 0;
}

/* Whether s can be a host name in a path: 1-64 of [A-Za-z0-9_.-]. */
static bool host_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
            return false;
    return true;
}

static int cmd_agents_relink(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *org = need_org(c, a);
    if (!org)
        return 1;
    if (!host_name_ok(a->operand)) {
        fprintf(stderr, "livemig: HOST: a host name of 1-64 letters, digits, '_', '-' or '.'\n");
        return 2;
    }
    char path[1024];
    long st = 0;
    snprintf(path, sizeof path, "/orgs/%s/liveMigrations/agents/%s/relink", org, a->operand);
    lm_json_val_t *v = call(c, "POST", path, "{}", &st);
    if (!v)
        return 1;
    const char *expires = lm_json_string(lm_json_get(v, "expires"));
    if (want_json(a))
        print_json(v);
    else
        printf("host %s may link again once, until %s: link its agent now (`livemig-agent "
               "link`, or restart its daemon with the link-token configured); the agent linked "
               "there so far stops working when it does\n",
               a->operand, expires ? expires : "soon");
    lm_json_free(v);
    return 0;
}

static int cmd_link_delete(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *org = need_org(c, a);
    if (!org)
        return 1;
    if (!confirm(a, "delete the link-token and unlink its agents"))
        return 1;
    char path[1024];
    long st = 0;
    snprintf(path, sizeof path, "/orgs/%s/liveMigrations/linkTokens", org);
    lm_json_val_t *v = call(c, "DELETE", path, NULL, &st);
    if (!v)
        return 1;
    lm_json_free(v);
    printf("link-token deleted: its agents are unlinked\n");
    return 0;
}

static int cmd_available_projects(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *org = need_org(c, a);
    if (!org)
        return 1;
    char path[1024];
    long st = 0;
    lm_json_val_t *v;
    snprintf(path, sizeof path, "/orgs/%s/liveMigrations/availableProjects", org);
    return (v = call(c, "GET", path, NULL, &st)) ? show_list(a, v, NULL, project_cols) : 1;
}

static int cmd_validation_create(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *proj = need_project(c, a);
    if (!proj)
        return 1;
    char path[1024];
    lm_json_val_t *v;
    snprintf(path, sizeof path, "/groups/%s/liveMigrations/validate", proj);
    return (v = post_migration(c, a, proj, path)) ? show(a, v, validation_cols) : 1;
}

static int cmd_validation_describe(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *proj = need_project(c, a);
    if (!proj)
        return 1;
    char path[1024];
    long st = 0;
    snprintf(path, sizeof path, "/groups/%s/liveMigrations/validate/%s", proj, a->operand);
    lm_json_val_t *v = call(c, "GET", path, NULL, &st);
    if (!v)
        return 1;
    if (want_json(a))
        return show(a, v, NULL);
    static const char *const ccols[] = {"name", "result", "message", NULL};
    lm_json_val_t *checks = lm_json_get(v, "checks");
    if (checks && lm_json_len(checks)) {
        table(checks, ccols);
        printf("\n");
    }
    return show(a, v, validation_cols);
}

static int cmd_create(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *proj = need_project(c, a);
    if (!proj)
        return 1;
    char path[1024];
    lm_json_val_t *v;
    snprintf(path, sizeof path, "/groups/%s/liveMigrations", proj);
    return (v = post_migration(c, a, proj, path)) ? show(a, v, job_cols) : 1;
}

static int cmd_list(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *proj = need_project(c, a);
    if (!proj)
        return 1;
    char path[1024];
    long st = 0;
    lm_json_val_t *v;
    snprintf(path, sizeof path, "/groups/%s/liveMigrations", proj);
    return (v = call(c, "GET", path, NULL, &st)) ? show_list(a, v, "results", job_cols) : 1;
}

/* The live migration's verification section under its table: a one-row table, then per
 * failing namespace its reasons and differing _ids. */
static void print_verification(const lm_json_val_t *v)
{
    static const char *const cols[] = {
        "state", "namespacesChecked", "namespacesTotal", "namespacesFailed", "documentsChecked",
        NULL};
    lm_json_val_t *ver = lm_json_get(v, "verification");
    if (!ver || lm_json_type(ver) != LM_JSON_OBJECT)
        return;
    printf("\nverification:\n");
    table_one(ver, cols);
    const char *state = lm_json_string(lm_json_get(ver, "state"));
    const char *err = lm_json_string(lm_json_get(ver, "error"));
    if (err && err[0])
        printf("verification error: %s\n", err);
    lm_json_val_t *diffs = lm_json_get(ver, "differences");
    for (size_t i = 0; diffs && i < lm_json_len(diffs); i++) {
        lm_json_val_t *d = lm_json_at(diffs, i), *l;
        const char *ns = lm_json_string(lm_json_get(d, "ns"));
        printf("  %s\n", ns ? ns : "?");
        l = lm_json_get(d, "reasons");
        for (size_t k = 0; l && k < lm_json_len(l); k++) {
            const char *t = lm_json_string(lm_json_at(l, k));
            printf("    %s\n", t ? t : "?");
        }
        l = lm_json_get(d, "ids");
        for (size_t k = 0; l && k < lm_json_len(l); k++) {
            const char *t = lm_json_string(lm_json_at(l, k));
            printf("      _id %s\n", t ? t : "?");
        }
    }
    if (lm_json_get(ver, "clipped"))
        printf("(more differences than a report carries: run `livemig-agent verify` on the "
               "migration host for all of them)\n");
    if (state && strcmp(state, "failed") == 0)
        printf("VERIFICATION FAILED: the migration is COMPLETE (cut over), but the target differs "
               "from the source (above); verify changed no data\n");
}

/* The live migration's fault history under its table: the last 10 events. */
static void print_events(const lm_json_val_t *v)
{
    lm_json_val_t *evs = lm_json_get(v, "events");
    size_t n = evs && lm_json_type(evs) == LM_JSON_ARRAY ? lm_json_len(evs) : 0;
    if (!n)
        return;
    size_t from = n > 10 ? n - 10 : 0;
    printf("\nevents (%zu, the last %zu; --json for all):\n", n, n - from);
    for (size_t i = from; i < n; i++) {
        lm_json_val_t *e = lm_json_at(evs, i);
        const char *t = lm_json_string(lm_json_get(e, "time"));
        const char *k = lm_json_string(lm_json_get(e, "kind"));
        const char *m = lm_json_string(lm_json_get(e, "message"));
        printf("  %s %-24s %s\n", t ? t : "?", k ? k : "?", m ? m : "");
    }
}

/* A sharded migration's shards under its table: one row each, then the last error of each
 * shard that has one. */
static void print_shards(const lm_json_val_t *v)
{
    static const char *const cols[] = {"name",
                                       "migrationHost",
                                       "state",
                                       "phase",
                                       "documentsCopied",
                                       "bytesCopied",
                                       "percentage",
                                       "remainingSeconds",
                                       "lagTimeSeconds",
                                       "readyForCutover",
                                       NULL};
    lm_json_val_t *shards = lm_json_get(v, "shards");
    size_t n = shards && lm_json_type(shards) == LM_JSON_ARRAY ? lm_json_len(shards) : 0;
    if (!n)
        return;
    printf("\nshards (%zu):\n", n);
    table(shards, cols);
    for (size_t i = 0; i < n; i++) {
        lm_json_val_t *sh = lm_json_at(shards, i);
        const char *name = lm_json_string(lm_json_get(sh, "name"));
        const char *state = lm_json_string(lm_json_get(sh, "state"));
        const char *err = lm_json_string(lm_json_get(sh, "lastError"));
        if (err && err[0])
            printf("shard %s%s: %s\n", name ? name : "?",
                   state && strcmp(state, "FAILED") == 0 ? " FAILED" : "", err);
        if (state && strcmp(state, "FAILED") == 0)
            printf("  fix the cause, then `livemig lm restart-shard ID --shard %s` (it resumes "
                   "from its checkpoint)\n",
                   name ? name : "NAME");
    }
}

/* A migration spread over several hosts: its parts (one per host that runs shards). */
static void print_parts(const lm_json_val_t *v)
{
    static const char *const cols[] = {"partId", "migrationHost",   "role",   "status",
                                       "phase",  "readyForCutover", "shards", NULL};
    lm_json_val_t *parts = lm_json_get(v, "parts");
    size_t n = parts && lm_json_type(parts) == LM_JSON_ARRAY ? lm_json_len(parts) : 0;
    if (!n)
        return;
    printf("\nparts (%zu, one per migration host):\n", n);
    table(parts, cols);
}

/* Where the live migration goes from and to, and its optime gap (the source's newest write
 * minus the last one applied to the target: 0 once the writes stopped, before the cutover);
 * each only when the control plane's answer has it. */
static void print_ends(const lm_json_val_t *v)
{
    static const char *const sides[] = {"source", "destination"};
    for (size_t i = 0; i < 2; i++) {
        lm_json_val_t *side = lm_json_get(v, sides[i]);
        if (!side || lm_json_type(side) != LM_JSON_OBJECT)
            continue;
        const char *cluster = lm_json_string(lm_json_get(side, "clusterName"));
        const char *group = lm_json_string(lm_json_get(side, "groupId"));
        printf("%-17s %s (project %s)\n",
               i ? "destination:" : "source:", cluster && cluster[0] ? cluster : "?",
               group && group[0] ? group : "?");
    }
    char gap[160], est[160];
    cell(v, "optimeGapSeconds", gap, sizeof gap);
    if (gap[0] && strcmp(gap, "-") == 0)
        printf("%-17s - (known once the changes stream)\n", "optimeGapSeconds:");
    else if (gap[0])
        printf("%-17s %s\n", "optimeGapSeconds:", gap);
    cell(v, "estimatedCutoverSeconds", est, sizeof est);
    if (est[0] && strcmp(est, "-") != 0)
        printf("%-17s %s (how long a cutover now would take, by the agent's estimate)\n",
               "estimatedCutover:", est);
}

static int cmd_describe(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *proj = need_project(c, a);
    if (!proj)
        return 1;
    char path[1024];
    long st = 0;
    lm_json_val_t *v;
    snprintf(path, sizeof path, "/groups/%s/liveMigrations/%s", proj, a->operand);
    if (!(v = call(c, "GET", path, NULL, &st)))
        return 1;
    if (want_json(a))
        return show(a, v, job_cols);
    table_one(v, job_cols);
    print_ends(v);
    const char *msg = lm_json_string(lm_json_get(v, "errorMessage"));
    if (msg && msg[0])
        printf("\nerror: %s\n", msg);
    print_shards(v);
    print_parts(v);
    print_verification(v);
    print_events(v);
    lm_json_free(v);
    return 0;
}

/* Restart one failed shard of a sharded live migration. */
static int cmd_restart_shard(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *proj = need_project(c, a);
    if (!proj)
        return 1;
    const char *shard = flag(a, "shard");
    if (!shard || !shard[0])
        return die("--shard is required: the source shard's name, as `livemig lm describe %s` "
                   "lists it",
                   a->operand);
    for (const char *p = shard; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.') ||
            p - shard >= 64)
            return die("--shard '%s': a shard name is 1-64 of letters, digits, '_', '-' and '.'",
                       shard);
    char path[1024];
    long st = 0;
    snprintf(path, sizeof path, "/groups/%s/liveMigrations/%s/shards/%s/restart", proj, a->operand,
             shard);
    lm_json_val_t *v = call(c, "POST", path, NULL, &st);
    if (!v)
        return 1;
    if (want_json(a))
        return show(a, v, NULL);
    lm_json_free(v);
    printf("restart of shard %s of live migration %s requested: it resumes from its checkpoint; "
           "`livemig lm describe %s` shows it\n",
           shard, a->operand, a->operand);
    return 0;
}

/* cutover, cancel, extend or verify (the command's last word): cutover and cancel ask
 * first. */
static int cmd_job_action(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *proj = need_project(c, a);
    if (!proj)
        return 1;
    const char *verb = a->cmd->path[1], *id = a->operand;
    bool extend = strcmp(verb, "extend") == 0, verify = strcmp(verb, "verify") == 0;
    char path[1024], what[160];
    long st = 0;
    snprintf(what, sizeof what, "%s live migration %s", verb, id);
    if (!extend && !verify && !confirm(a, what))
        return 1;
    snprintf(path, sizeof path, "/groups/%s/liveMigrations/%s/%s", proj, id, verb);
    lm_json_val_t *v = call(c, strcmp(verb, "cutover") == 0 ? "PUT" : "POST", path, NULL, &st);
    if (!v)
        return 1;
    if (want_json(a) || extend) {
        static const char *const cols[] = {"cutoverWindowEndMs", NULL};
        return show(a, v, cols);
    }
    lm_json_free(v);
    if (verify)
        printf("verification of live migration %s requested: its agent compares the target with "
               "the source (it only reads); `livemig lm describe %s` shows the result\n",
               id, id);
    else
        printf("%s of live migration %s requested\n", verb, id);
    return 0;
}

static int cmd_clusters_add(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *proj = need_project(c, a);
    if (!proj)
        return 1;
    const char *uri = flag(a, "connectionString");
    if (!uri)
        return die("--connectionString is required");
    char *pw = flag(a, "passwordFile")
                   ? read_secret_file(flag(a, "passwordFile"), "the password file")
                   : NULL;
    if (flag(a, "passwordFile") && !pw)
        return 1;
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_map_open(w);
    lm_json_w_kv_str(w, "name", a->operand);
    lm_json_w_kv_str(w, "connectionString", uri);
    lm_json_w_key(w, "tls");
    lm_json_w_bool(w, has(a, "tls"));
    if (has(a, "allowInsecureTls")) {
        lm_json_w_key(w, "allowInsecureTls");
        lm_json_w_bool(w, true);
    }
    if (flag(a, "tlsCAFile")) { /* --caFile is the control plane's CA */
        lm_json_w_kv_str(w, "caFile", flag(a, "tlsCAFile"));
    }
    if (flag(a, "username")) {
        lm_json_w_kv_str(w, "username", flag(a, "username"));
    }
    if (pw) {
        lm_json_w_kv_str(w, "password", pw);
    }
    lm_json_w_map_close(w);
    size_t len;
    lm_error_t err;
    char path[1024];
    long st = 0;
    const char *body = lm_json_writer_result(w, &len, &err);
    snprintf(path, sizeof path, "/groups/%s/clusters", proj);
    lm_json_val_t *v = body ? call(c, "POST", path, body, &st) : NULL;
    lm_json_writer_destroy(w);
    if (pw) {
        lm_wipe(pw, strlen(pw));
        free(pw);
    }
    static const char *const cols[] = {"name", "groupId", "connectionString", NULL};
    return v ? show(a, v, cols) : 1;
}

static int cmd_clusters_list(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *proj = need_project(c, a);
    if (!proj)
        return 1;
    char path[1024];
    long st = 0;
    lm_json_val_t *v;
    snprintf(path, sizeof path, "/groups/%s/clusters", proj);
    static const char *const cols[] = {"name",   "connectionString", "tls",
                                       "caFile", "username",         NULL};
    return (v = call(c, "GET", path, NULL, &st)) ? show_list(a, v, "results", cols) : 1;
}

static int cmd_projects_create(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *org = need_org(c, a);
    if (!org)
        return 1;
    long st = 0;
    lm_strbuf_t b;
    lm_strbuf_init(&b, 4096);
    lm_strbuf_append(&b, "{\"name\":");
    lm_json_escape(&b, a->operand);
    lm_strbuf_append(&b, ",\"orgId\":");
    lm_json_escape(&b, org);
    lm_strbuf_append(&b, "}");
    lm_json_val_t *v = call(c, "POST", "/groups", lm_strbuf_str(&b), &st);
    lm_strbuf_cleanup(&b);
    return v ? show(a, v, project_cols) : 1;
}

static int cmd_projects_list(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *org = need_org(c, a);
    if (!org)
        return 1;
    char path[1024];
    long st = 0;
    lm_json_val_t *v;
    snprintf(path, sizeof path, "/orgs/%s/groups", org);
    return (v = call(c, "GET", path, NULL, &st)) ? show_list(a, v, "results", project_cols) : 1;
}

static int cmd_apikeys_create(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *org = need_org(c, a);
    if (!org)
        return 1;
    const char *role = flag(a, "role");
    if (!role)
        return die("--role ORG_OWNER or ORG_MEMBER is required");
    char path[1024];
    long st = 0;
    lm_strbuf_t b;
    lm_strbuf_init(&b, 4096);
    lm_strbuf_append(&b, "{\"desc\":");
    lm_json_escape(&b, flag(a, "desc") ? flag(a, "desc") : "");
    lm_strbuf_append(&b, ",\"roles\":[");
    lm_json_escape(&b, role);
    lm_strbuf_append(&b, "]");
    if (flag(a, "expiresAfter")) {
        int64_t ms;
        lm_error_t err;
        if (!lm_time_parse_duration(flag(a, "expiresAfter"), &ms, &err) || ms < 1000) {
            lm_strbuf_cleanup(&b);
            return die("--expiresAfter: expected a duration of at least 1s, such as 90d");
        }
        lm_strbuf_appendf(&b, ",\"expiresAfterSeconds\":%lld", (long long)(ms / 1000));
    }
    lm_strbuf_append(&b, "}");
    snprintf(path, sizeof path, "/orgs/%s/apiKeys", org);
    lm_json_val_t *v = call(c, "POST", path, lm_strbuf_str(&b), &st);
    lm_strbuf_cleanup(&b);
    if (!v)
        return 1;
    static const char *const cols[] = {"publicKey", "privateKey", "roles", "expires", NULL};
    show(a, v, cols);
    fflush(stdout);
    fprintf(stderr, "livemig: the private key is shown once: store it in a file only you "
                    "can read\n");
    return 0;
}

static int cmd_apikeys_list(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *org = need_org(c, a);
    if (!org)
        return 1;
    char path[1024];
    long st = 0;
    lm_json_val_t *v;
    snprintf(path, sizeof path, "/orgs/%s/apiKeys", org);
    static const char *const cols[] = {"publicKey", "roles",   "desc",    "created",
                                       "lastUsed",  "expires", "expired", NULL};
    return (v = call(c, "GET", path, NULL, &st)) ? show_list(a, v, "results", cols) : 1;
}

static int cmd_apikeys_delete(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    const char *org = need_org(c, a);
    if (!org)
        return 1;
    char path[1024], what[160];
    long st = 0;
    snprintf(what, sizeof what, "delete API key %s", a->operand);
    if (!confirm(a, what))
        return 1;
    snprintf(path, sizeof path, "/orgs/%s/apiKeys/%s", org, a->operand);
    lm_json_val_t *v = call(c, "DELETE", path, NULL, &st);
    if (!v)
        return 1;
    lm_json_free(v);
    printf("API key %s deleted: it is refused from now on\n", a->operand);
    return 0;
}

/* ---- the table: every flag, then every command (parsing and help both read it) ---- */

static const lm_cli_flag_t cli_flags[] = {
    /* global */
    {"url", 0, "URL",
     "The control plane, https://host:port (default: LIVEMIG_URL, or url in "
     "the profile).",
     false},
    {"caFile", 0, "F",
     "CA bundle that signed the control plane's certificate (default: "
     "LIVEMIG_CA_FILE, ca_file in the profile, or the system store).",
     false},
    {"publicKey", 0, "K",
     "API key: the public part (default: LIVEMIG_PUBLIC_KEY, or public_key "
     "in the profile).",
     false},
    {"privateKeyFile", 0, "F",
     "File holding the API key's private part, readable by its owner "
     "only (default: LIVEMIG_PRIVATE_KEY_FILE, or private_key_file in "
     "the profile).",
     false},
    {"output", 'o', "json", "Print the API's answer as JSON instead of a table.", false},
    {"help", 'h', NULL, "Show this help and exit.", false},
    {"json", 0, NULL, "Accepted and ignored (-o json prints JSON).", true},
    /* where */
    {"orgId", 0, "O", "The organization (default: LIVEMIG_ORG_ID, or org_id in the profile).",
     false},
    {"projectId", 0, "P",
     "The project (default: LIVEMIG_PROJECT_ID, or project_id in the "
     "profile).",
     false},
    {"force", 0, NULL, "Do not ask for confirmation on the terminal (needed without one).", false},
    /* link-tokens and API keys */
    {"accessListIp", 0, "IP",
     "An address agents may link and call from; repeat for more "
     "(none: any address).",
     false},
    {"expiresAfter", 0, "DURATION",
     "The link-token links no agent after this long (\"24h\", \"30m\"); the agents it linked keep "
     "working (default: until it is deleted).",
     false},
    {"role", 0, "ORG_OWNER|ORG_MEMBER",
     "The key's role: ORG_OWNER may change everything, "
     "ORG_MEMBER only read.",
     false},
    {"desc", 0, "TEXT", "A description of the key.", false},
    {"expiresAfter", 0, "DURATION",
     "The key stops working this long after its creation (e.g. 90d, 12h; default: never).", false},
    /* live migrations and validations */
    {"clusterName", 0, "DEST",
     "The destination cluster, as registered in the project with "
     "`clusters add`.",
     false},
    {"migrationHost", 0, "HOST",
     "The host name of the linked agent that runs it; repeat it to spread a sharded source's "
     "shards over several hosts (the first is the lead).",
     false},
    {"maxShardsPerHost", 0, "N",
     "With several --migrationHost: at most N shards on one host (default: no maximum).", false},
    {"sourceClusterName", 0, "SRC", "The source cluster, as registered in --sourceProjectId.",
     false},
    {"sourceProjectId", 0, "SP", "The project the source cluster is registered in.", false},
    {"sourceUsername", 0, "U",
     "The user the agent reads the source as (default: the one "
     "registered with the cluster).",
     false},
    {"sourcePasswordFile", 0, "F",
     "File holding that user's password, readable by its owner only; without it the "
     "password is asked for on the terminal, without echo.",
     false},
    {"sourcePassword", 0, "PW", "Refused: a password in the arguments shows in ps.", true},
    {"sourceSsl", 0, NULL, "Connect to the source with TLS.", false},
    {"sourceCACertificatePath", 0, "F",
     "CA file, on the agent's host, that signed the "
     "source's certificate.",
     false},
    {"managedAuthentication", 0, NULL,
     "Atlas's managedAuthentication: recorded with the "
     "migration; the agent does not use it.",
     false},
    {"drop", 0, NULL,
     "Drop the destination's collections that the source also has before "
     "copying (otherwise they are refused).",
     false},
    {"shard", 0, "NAME", "The source shard's name, as `liveMigrations describe` lists it.", false},
    {"noVerify", 0, NULL,
     "Do not verify the destination against the source after the cutover (verification "
     "only reads; it is on by default).",
     false},
    /* the clusters registry */
    {"connectionString", 0, "URI", "The cluster's mongodb:// URI, without a password.", false},
    {"tls", 0, NULL, "Connect to the cluster with TLS.", false},
    {"allowInsecureTls", 0, NULL,
     "Accept a connection string that turns TLS certificate checks off (tlsInsecure, "
     "tlsAllowInvalidCertificates, ...); the agent must allow it too (allow_insecure_tls).",
     false},
    {"tlsCAFile", 0, "F",
     "CA file, on the agent's host, that signed the cluster's certificate "
     "(--caFile is the control plane's).",
     false},
    {"username", 0, "U", "The user the agent connects as.", false},
    {"passwordFile", 0, "F", "File holding that user's password, readable by its owner only.",
     false},
    {NULL, 0, NULL, NULL, false}};

static const lm_cli_flag_use_t global_flags[] = {
    {"url", 0},    {"caFile", 0}, {"publicKey", 0}, {"privateKeyFile", 0},
    {"output", 0}, {"help", 0},   {"json", 0},      {NULL, 0}};

#define REQ LM_CLI_REQUIRED
static const lm_cli_flag_use_t org_flags[] = {{"orgId", REQ}, {NULL, 0}};
static const lm_cli_flag_use_t project_flags[] = {{"projectId", REQ}, {NULL, 0}};
static const lm_cli_flag_use_t confirm_flags[] = {{"projectId", REQ}, {"force", 0}, {NULL, 0}};
static const lm_cli_flag_use_t link_create_flags[] = {
    {"orgId", REQ}, {"accessListIp", LM_CLI_REPEATED}, {"expiresAfter", 0}, {NULL, 0}};
static const lm_cli_flag_use_t link_delete_flags[] = {{"orgId", REQ}, {"force", 0}, {NULL, 0}};
static const lm_cli_flag_use_t migration_flags[] = {{"projectId", REQ},
                                                    {"clusterName", REQ},
                                                    {"migrationHost", REQ | LM_CLI_REPEATED},
                                                    {"maxShardsPerHost", 0},
                                                    {"sourceClusterName", REQ},
                                                    {"sourceProjectId", REQ},
                                                    {"sourceUsername", 0},
                                                    {"sourcePasswordFile", 0},
                                                    {"sourcePassword", 0},
                                                    {"sourceSsl", 0},
                                                    {"sourceCACertificatePath", 0},
                                                    {"managedAuthentication", 0},
                                                    {"drop", 0},
                                                    {"noVerify", 0},
                                                    {NULL, 0}};
static const lm_cli_flag_use_t restart_shard_flags[] = {
    {"projectId", REQ}, {"shard", REQ}, {NULL, 0}};
static const lm_cli_flag_use_t clusters_add_flags[] = {
    {"projectId", REQ}, {"connectionString", REQ}, {"tls", 0},          {"allowInsecureTls", 0},
    {"tlsCAFile", 0},   {"username", 0},           {"passwordFile", 0}, {NULL, 0}};
static const lm_cli_flag_use_t apikeys_flags[] = {
    {"orgId", REQ}, {"role", REQ}, {"desc", 0}, {"expiresAfter", 0}, {NULL, 0}};
static const lm_cli_flag_use_t org_confirm_flags[] = {{"orgId", REQ}, {"force", 0}, {NULL, 0}};
#undef REQ

#define LM "liveMigrations"
static const lm_cli_cmd_t cli_cmds[] = {
    {{LM},
     "lm",
     NULL,
     NULL,
     "Live migrations: link agents, validate, migrate, cut over.",
     NULL,
     NULL},
    {{LM, "link"},
     NULL,
     NULL,
     NULL,
     "The organization's link-token, which links agents.",
     NULL,
     NULL},
    {{LM, "link", "create"},
     NULL,
     NULL,
     link_create_flags,
     "Create the organization's link-token and print it (once).",
     "Give it to the agent (`livemig-agent link --token-file F`) and keep it secret; an\n"
     "organization has one at a time.",
     cmd_link_create},
    {{LM, "link", "delete"},
     NULL,
     NULL,
     link_delete_flags,
     "Delete the link-token: every agent linked with it is unlinked.",
     "Asks for confirmation on the terminal unless --force is given.",
     cmd_link_delete},
    {{LM, "agents"}, NULL, NULL, NULL, "The organization's linked agents.", NULL, NULL},
    {{LM, "agents", "relink"},
     NULL,
     "HOST",
     org_flags,
     "Let HOST link its agent again, once (a reinstalled host, a lost state_dir).",
     "A host name has one agent: linking it again with the link-token is refused as a takeover\n"
     "attempt. This lets the next link of HOST through within the control plane's\n"
     "relink_window (15 minutes by default); the agent linked there until then stops working.",
     cmd_agents_relink},
    {{LM, "availableProjects"},
     NULL,
     NULL,
     org_flags,
     "List the organization's projects a live migration can use.",
     NULL,
     cmd_available_projects},
    {{LM, "validation"},
     NULL,
     NULL,
     NULL,
     "Validations: the checks a live migration would make, run by its agent.",
     NULL,
     NULL},
    {{LM, "validation", "create"},
     NULL,
     NULL,
     migration_flags,
     "Validate a live migration: the agent checks the source and the destination.",
     "Takes the flags of `liveMigrations create`; nothing is copied.",
     cmd_validation_create},
    {{LM, "validation", "describe"},
     NULL,
     "ID",
     project_flags,
     "Show a validation and each of its checks (PASS, WARN or FAIL).",
     NULL,
     cmd_validation_describe},
    {{LM, "create"},
     NULL,
     NULL,
     migration_flags,
     "Start a live migration from a source cluster to a destination cluster.",
     "Both clusters are registered with `clusters add`; the agent on --migrationHost copies\n"
     "and then streams changes until the cutover.",
     cmd_create},
    {{LM, "describe"},
     NULL,
     "ID",
     project_flags,
     "Show a live migration: status, phase, lag, whether it is ready for the cutover.",
     "Under the table: its source and destination (cluster and project), the optime gap (the\n"
     "source's newest write minus the last applied; 0 once writes stopped), one row per shard\n"
     "of a sharded source, the verification after the cutover, the last events.",
     cmd_describe},
    {{LM, "cutover"},
     NULL,
     "ID",
     confirm_flags,
     "Cut over: the migration finishes once the destination has every change.",
     "Stop writes to the source first. Asks for confirmation on the terminal unless --force\n"
     "is given.",
     cmd_job_action},
    {{LM, "cancel"},
     NULL,
     "ID",
     confirm_flags,
     "Cancel a live migration.",
     "Asks for confirmation on the terminal unless --force is given.",
     cmd_job_action},
    {{LM, "extend"},
     NULL,
     "ID",
     project_flags,
     "Extend a live migration's cutover window.",
     NULL,
     cmd_job_action},
    {{LM, "verify"},
     NULL,
     "ID",
     project_flags,
     "Verify a COMPLETE live migration again: its agent compares the destination with the source.",
     "The agent reads both sides (it changes no data); `liveMigrations describe` shows the\n"
     "result (state, namespaces, and per failing namespace the reasons and _ids).",
     cmd_job_action},
    {{LM, "restart-shard"},
     NULL,
     "ID",
     restart_shard_flags,
     "Restart one FAILED shard of a sharded live migration; the other shards go on.",
     "Fix what made it fail first (its lastError in `liveMigrations describe`). The shard's\n"
     "agent starts it again from its checkpoint on the destination shard.",
     cmd_restart_shard},
    {{LM, "list"},
     NULL,
     NULL,
     project_flags,
     "List the project's live migrations.",
     NULL,
     cmd_list},
    {{"clusters"},
     NULL,
     NULL,
     NULL,
     "The clusters registry: the clusters a project migrates.",
     NULL,
     NULL},
    {{"clusters", "add"},
     NULL,
     "NAME",
     clusters_add_flags,
     "Register a cluster under NAME: how its agent connects to it.",
     "The password is read from --passwordFile, stored encrypted and never shown again.",
     cmd_clusters_add},
    {{"clusters", "list"},
     NULL,
     NULL,
     project_flags,
     "List the project's clusters.",
     NULL,
     cmd_clusters_list},
    {{"projects"}, NULL, NULL, NULL, "Projects (Atlas: groups) of an organization.", NULL, NULL},
    {{"projects", "create"},
     NULL,
     "NAME",
     org_flags,
     "Create a project named NAME.",
     NULL,
     cmd_projects_create},
    {{"projects", "list"},
     NULL,
     NULL,
     org_flags,
     "List the organization's projects.",
     NULL,
     cmd_projects_list},
    {{"apikeys"}, NULL, NULL, NULL, "The organization's API keys.", NULL, NULL},
    {{"apikeys", "create"},
     NULL,
     NULL,
     apikeys_flags,
     "Create an API key and print its private key (once).",
     "Store the private key in a file only you can read: give it as --privateKeyFile.",
     cmd_apikeys_create},
    {{"apikeys", "list"},
     NULL,
     NULL,
     org_flags,
     "List the organization's API keys: public part, roles, created, last used, expiry.",
     "The private keys are never shown again.",
     cmd_apikeys_list},
    {{"apikeys", "delete"},
     NULL,
     "PUBLIC_KEY",
     org_confirm_flags,
     "Delete an API key: every request with it is refused (401) from now on.",
     "Asks for confirmation on the terminal unless --force is given.",
     cmd_apikeys_delete},
    {{NULL}, NULL, NULL, NULL, NULL, NULL, NULL}};
#undef LM

static const lm_cli_t cli = {
    "livemig",
    "livemig: the command-line client of the livemig control plane's admin API, shaped like\n"
    "`atlas liveMigrations`. The connection profile comes from the global flags, else the\n"
    "LIVEMIG_* environment, else ~/.config/livemig/config.yaml.",
    cli_flags, global_flags, cli_cmds};

/* ---- main ---- */

/* The profile: the file, then the environment, then the flags. 0, or the exit code after
 * saying what is missing. */
static int load_profile(lm_cli_conn_t *c, const lm_cli_args_t *a)
{
    lm_error_t err;
    char path[1024];
    const char *home = getenv("HOME");
    snprintf(path, sizeof path, "%s/.config/livemig/config.yaml", home ? home : "");
    if (home && access(path, R_OK) == 0 && !lm_config_load_file(profile_schema, &c->p, path, &err))
        return die("%s", err.message);
    struct {
        const char *env, *flag;
        char **field;
    } srcs[] = {{"LIVEMIG_URL", "url", &c->p.url},
                {"LIVEMIG_CA_FILE", "caFile", &c->p.ca_file},
                {"LIVEMIG_PUBLIC_KEY", "publicKey", &c->p.public_key},
                {"LIVEMIG_PRIVATE_KEY_FILE", "privateKeyFile", &c->p.private_key_file},
                {"LIVEMIG_ORG_ID", NULL, &c->p.org_id},
                {"LIVEMIG_PROJECT_ID", NULL, &c->p.project_id}};
    for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++) {
        const char *v = srcs[i].flag ? flag(a, srcs[i].flag) : NULL;
        if (!v)
            v = getenv(srcs[i].env);
        if (v) {
            free(*srcs[i].field);
            *srcs[i].field = strdup(v);
        }
    }
    if (!c->p.url || strncmp(c->p.url, "https://", 8) != 0)
        return die("the control plane's https:// URL is needed: --url, LIVEMIG_URL or url in %s",
                   path);
    if (!c->p.public_key || !c->p.private_key_file)
        return die("an API key is needed: --publicKey and --privateKeyFile (or LIVEMIG_PUBLIC_KEY "
                   "and LIVEMIG_PRIVATE_KEY_FILE, or the profile)");
    if (!(c->secret = read_secret_file(c->p.private_key_file, "the API private key file")))
        return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        lm_cli_print_help(&cli, NULL, stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("livemig %s\n", LM_VERSION);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "__commands") == 0) { /* for tests */
        lm_cli_print_commands(&cli, stdout);
        return 0;
    }
    lm_cli_args_t a;
    int rc;
    if (!lm_cli_parse(&cli, argc, argv, &a, &rc))
        return rc;
    if (has(&a, "output") && strcmp(flag(&a, "output"), "json") != 0) {
        die("-o: only json is supported");
        return 2;
    }
    lm_cli_conn_t c;
    lm_error_t err;
    memset(&c, 0, sizeof c);
    rc = load_profile(&c, &a);
    if (rc == 0) {
        if (!lm_http_global_init(&err)) {
            rc = die("%s", err.message);
        } else {
            rc = a.cmd->run(&c, &a);
            lm_http_global_cleanup();
        }
    }
    if (c.secret) {
        lm_wipe(c.secret, strlen(c.secret));
        free(c.secret);
    }
    lm_config_cleanup(profile_schema, &c.p);
    return rc;
}
