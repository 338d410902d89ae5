/* livemig: the command-line client of the control plane's admin API, shaped like
 * `atlas liveMigrations`. See cli/README.md (and `livemig help`).
 *
 * Connection profile: flags, else environment (LIVEMIG_URL, LIVEMIG_CA_FILE,
 * LIVEMIG_PUBLIC_KEY, LIVEMIG_PRIVATE_KEY_FILE, LIVEMIG_ORG_ID, LIVEMIG_PROJECT_ID), else
 * ~/.config/livemig/config.yaml (url, ca_file, public_key, private_key_file, org_id,
 * project_id). The private key is read from a file (mode 0600), never from a flag. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "lm_config.h"
#include "lm_encode.h"
#include "lm_fs.h"
#include "lm_http.h"
#include "lm_json.h"
#include "lm_redact.h"
#include "lm_strbuf.h"

#define MAX_FLAGS 600 /* --accessListIp may repeat up to the API's 256 */

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

/* The parsed command line: positional words and --flag values. */
typedef struct {
    const char *words[8];
    int n_words;
    const char *flag_name[MAX_FLAGS];
    const char *flag_val[MAX_FLAGS];
    int n_flags;
    bool json;
} args_t;

static const char *flag(const args_t *a, const char *name)
{
    for (int i = a->n_flags - 1; i >= 0; i--)
        if (strcmp(a->flag_name[i], name) == 0)
            return a->flag_val[i];
    return NULL;
}

static bool has(const args_t *a, const char *name)
{
    return flag(a, name) != NULL;
}

/* Flags that take no value. */
static bool is_switch(const char *name)
{
    static const char *const sw[] = {
        "sourceSsl", "drop", "force", "tls", "json", "managedAuthentication", NULL};
    for (int i = 0; sw[i]; i++)
        if (strcmp(name, sw[i]) == 0)
            return true;
    return false;
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

static const char usage_text[] =
    "usage: livemig [--url URL] [--caFile F] [--publicKey K] [--privateKeyFile F] [-o json]\n"
    "               COMMAND\n"
    "commands (liveMigrations may be written lm):\n"
    "  liveMigrations link create --orgId O [--accessListIp IP]...\n"
    "  liveMigrations link delete --orgId O\n"
    "  liveMigrations availableProjects --orgId O\n"
    "  liveMigrations validation create  (the create flags)\n"
    "  liveMigrations validation describe ID --projectId P\n"
    "  liveMigrations create --projectId P --clusterName DEST --migrationHost HOST\n"
    "        --sourceClusterName SRC --sourceProjectId SP [--sourceUsername U]\n"
    "        [--sourcePassword PW (prompted when missing)] [--sourceSsl]\n"
    "        [--sourceCACertificatePath F] [--drop]\n"
    "  liveMigrations describe|cutover|cancel|extend ID --projectId P [--force]\n"
    "  liveMigrations list --projectId P\n"
    "  clusters add NAME --projectId P --connectionString URI [--tls] [--tlsCAFile F]\n"
    "        [--username U] [--passwordFile F]\n"
    "  clusters list --projectId P\n"
    "  projects create NAME --orgId O | projects list --orgId O\n"
    "  apikeys create --orgId O --role ORG_OWNER|ORG_MEMBER [--desc TEXT]\n";

/* ---- HTTP ---- */

typedef struct {
    profile_t p;
    char *secret;
} conn_t;

/* One admin API call; returns the parsed answer (NULL with a message printed on error). */
static lm_json_val_t *call(conn_t *c, const char *method, const char *path, const char *body,
                           long *status)
{
    char url[2048];
    snprintf(url, sizeof url, "%s/api/atlas/v2%s", c->p.url, path);
    lm_strbuf_t cred, auth;
    lm_strbuf_init(&cred, 4096);
    lm_strbuf_init(&auth, 4096);
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
    lm_wipe(cred.data, cred.len);
    lm_wipe(auth.data, auth.len);
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

/* One object as a one-row table, or JSON. */
static int show(const args_t *a, lm_json_val_t *v, const char *const *cols)
{
    if (a->json) {
        print_json(v);
    } else {
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
        const char *msg = lm_json_string(lm_json_get(v, "errorMessage"));
        if (msg && msg[0])
            printf("\nerror: %s\n", msg);
    }
    lm_json_free(v);
    return 0;
}

static int show_list(const args_t *a, lm_json_val_t *v, const char *key, const char *const *cols)
{
    if (a->json)
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

static bool confirm(const args_t *a, const char *what)
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

static char *migration_body(const args_t *a, const char *project)
{
    const char *dest = flag(a, "clusterName"), *host = flag(a, "migrationHost"),
               *src = flag(a, "sourceClusterName"), *src_proj = flag(a, "sourceProjectId"),
               *user = flag(a, "sourceUsername"), *pw = flag(a, "sourcePassword"),
               *ca = flag(a, "sourceCACertificatePath");
    if (!dest || !host || !src || !src_proj) {
        die("--clusterName, --migrationHost, --sourceClusterName and --sourceProjectId are "
            "required");
        return NULL;
    }
    char *prompted = NULL;
    if (user && !pw) {
        pw = prompted = prompt_secret("source password: ");
        if (!pw) {
            die("--sourceUsername without --sourcePassword needs a terminal to ask for it");
            return NULL;
        }
    }
    if (pw)
        lm_redact_register(pw);
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_map_open(w);
    lm_json_w_key(w, "source");
    lm_json_w_map_open(w);
    lm_json_w_key(w, "clusterName");
    lm_json_w_str(w, src);
    lm_json_w_key(w, "groupId");
    lm_json_w_str(w, src_proj);
    lm_json_w_key(w, "ssl");
    lm_json_w_bool(w, has(a, "sourceSsl"));
    lm_json_w_key(w, "managedAuthentication");
    lm_json_w_bool(w, has(a, "managedAuthentication"));
    if (ca) {
        lm_json_w_key(w, "caCertificatePath");
        lm_json_w_str(w, ca);
    }
    if (user) {
        lm_json_w_key(w, "username");
        lm_json_w_str(w, user);
        lm_json_w_key(w, "password");
        lm_json_w_str(w, pw);
    }
    lm_json_w_map_close(w);
    lm_json_w_key(w, "destination");
    lm_json_w_map_open(w);
    lm_json_w_key(w, "clusterName");
    lm_json_w_str(w, dest);
    lm_json_w_key(w, "groupId");
    lm_json_w_str(w, project);
    lm_json_w_key(w, "hostnameSchemaType");
    lm_json_w_str(w, "PUBLIC");
    lm_json_w_map_close(w);
    lm_json_w_key(w, "migrationHosts");
    lm_json_w_array_open(w);
    lm_json_w_str(w, host);
    lm_json_w_array_close(w);
    lm_json_w_key(w, "dropDestinationData");
    lm_json_w_bool(w, has(a, "drop"));
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
static lm_json_val_t *post_migration(conn_t *c, const args_t *a, const char *proj, const char *path)
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

/* ---- commands ---- */

static const char *const job_cols[] = {
    "_id", "status", "phase", "readyForCutover", "lagTimeSeconds", "migrationHosts", NULL};

static int run(conn_t *c, const args_t *a)
{
    const char *w0 = a->n_words > 0 ? a->words[0] : "", *w1 = a->n_words > 1 ? a->words[1] : "",
               *w2 = a->n_words > 2 ? a->words[2] : "", *w3 = a->n_words > 3 ? a->words[3] : "";
    const char *org = flag(a, "orgId") ? flag(a, "orgId") : c->p.org_id;
    const char *proj = flag(a, "projectId") ? flag(a, "projectId") : c->p.project_id;
    char path[1024];
    long st = 0;
    lm_json_val_t *v;
    bool lm = strcmp(w0, "liveMigrations") == 0 || strcmp(w0, "lm") == 0;
    bool needs_org = (lm && (strcmp(w1, "link") == 0 || strcmp(w1, "availableProjects") == 0)) ||
                     strcmp(w0, "apikeys") == 0 ||
                     (strcmp(w0, "projects") == 0 && strcmp(w1, "list") == 0);
    if (needs_org && !org)
        return die("--orgId is required (or org_id in the profile)");
    if (!needs_org && strcmp(w0, "projects") != 0 && !proj)
        return die("--projectId is required (or project_id in the profile)");

    if (lm && strcmp(w1, "link") == 0 && strcmp(w2, "create") == 0) {
        lm_strbuf_t b;
        lm_strbuf_init(&b, 1u << 16);
        lm_strbuf_append(&b, "{\"accessListIps\":[");
        int n = 0;
        for (int i = 0; i < a->n_flags; i++)
            if (strcmp(a->flag_name[i], "accessListIp") == 0) {
                lm_strbuf_append(&b, n++ ? "," : "");
                lm_json_escape(&b, a->flag_val[i]);
            }
        lm_strbuf_append(&b, "]}");
        snprintf(path, sizeof path, "/orgs/%s/liveMigrations/linkTokens", org);
        v = call(c, "POST", path, lm_strbuf_str(&b), &st);
        lm_strbuf_cleanup(&b);
        if (!v)
            return 1;
        const char *tok = lm_json_string(lm_json_get(v, "linkToken"));
        if (a->json)
            print_json(v);
        else
            printf("%s\n", tok ? tok : "");
        fflush(stdout);
        fprintf(stderr, "livemig: this link-token is shown once: give it to the agent "
                        "(`livemig-agent link --token-file F`) and keep it secret\n");
        lm_json_free(v);
        return 0;
    }
    if (lm && strcmp(w1, "link") == 0 && strcmp(w2, "delete") == 0) {
        if (!confirm(a, "delete the link-token and unlink its agents"))
            return 1;
        snprintf(path, sizeof path, "/orgs/%s/liveMigrations/linkTokens", org);
        v = call(c, "DELETE", path, NULL, &st);
        if (!v)
            return 1;
        lm_json_free(v);
        printf("link-token deleted: its agents are unlinked\n");
        return 0;
    }
    if (lm && strcmp(w1, "availableProjects") == 0) {
        snprintf(path, sizeof path, "/orgs/%s/liveMigrations/availableProjects", org);
        static const char *const cols[] = {"id", "name", "orgId", NULL};
        return (v = call(c, "GET", path, NULL, &st)) ? show_list(a, v, NULL, cols) : 1;
    }
    /* show() prints errorMessage under the table */
    static const char *const validation_cols[] = {"_id", "status", NULL};
    if (lm && strcmp(w1, "validation") == 0 && strcmp(w2, "create") == 0) {
        snprintf(path, sizeof path, "/groups/%s/liveMigrations/validate", proj);
        return (v = post_migration(c, a, proj, path)) ? show(a, v, validation_cols) : 1;
    }
    if (lm && strcmp(w1, "validation") == 0 && strcmp(w2, "describe") == 0 && w3[0]) {
        snprintf(path, sizeof path, "/groups/%s/liveMigrations/validate/%s", proj, w3);
        v = call(c, "GET", path, NULL, &st);
        if (!v)
            return 1;
        if (a->json)
            return show(a, v, NULL);
        static const char *const ccols[] = {"name", "result", "message", NULL};
        lm_json_val_t *checks = lm_json_get(v, "checks");
        if (checks && lm_json_len(checks)) {
            table(checks, ccols);
            printf("\n");
        }
        return show(a, v, validation_cols);
    }
    if (lm && strcmp(w1, "create") == 0) {
        snprintf(path, sizeof path, "/groups/%s/liveMigrations", proj);
        return (v = post_migration(c, a, proj, path)) ? show(a, v, job_cols) : 1;
    }
    if (lm && strcmp(w1, "list") == 0) {
        snprintf(path, sizeof path, "/groups/%s/liveMigrations", proj);
        return (v = call(c, "GET", path, NULL, &st)) ? show_list(a, v, "results", job_cols) : 1;
    }
    if (lm && w2[0] &&
        (strcmp(w1, "describe") == 0 || strcmp(w1, "cutover") == 0 || strcmp(w1, "cancel") == 0 ||
         strcmp(w1, "extend") == 0)) {
        if (strcmp(w1, "describe") == 0) {
            snprintf(path, sizeof path, "/groups/%s/liveMigrations/%s", proj, w2);
            return (v = call(c, "GET", path, NULL, &st)) ? show(a, v, job_cols) : 1;
        }
        char what[160];
        snprintf(what, sizeof what, "%s live migration %s", w1, w2);
        if (strcmp(w1, "extend") != 0 && !confirm(a, what))
            return 1;
        snprintf(path, sizeof path, "/groups/%s/liveMigrations/%s/%s", proj, w2, w1);
        v = call(c, strcmp(w1, "cutover") == 0 ? "PUT" : "POST", path, NULL, &st);
        if (!v)
            return 1;
        if (a->json || strcmp(w1, "extend") == 0) {
            static const char *const cols[] = {"cutoverWindowEndMs", NULL};
            return show(a, v, cols);
        }
        lm_json_free(v);
        printf("%s of live migration %s requested\n", w1, w2);
        return 0;
    }
    if (strcmp(w0, "clusters") == 0 && strcmp(w1, "add") == 0 && w2[0]) {
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
        lm_json_w_key(w, "name");
        lm_json_w_str(w, w2);
        lm_json_w_key(w, "connectionString");
        lm_json_w_str(w, uri);
        lm_json_w_key(w, "tls");
        lm_json_w_bool(w, has(a, "tls"));
        if (flag(a, "tlsCAFile")) { /* --caFile is the control plane's CA */
            lm_json_w_key(w, "caFile");
            lm_json_w_str(w, flag(a, "tlsCAFile"));
        }
        if (flag(a, "username")) {
            lm_json_w_key(w, "username");
            lm_json_w_str(w, flag(a, "username"));
        }
        if (pw) {
            lm_json_w_key(w, "password");
            lm_json_w_str(w, pw);
        }
        lm_json_w_map_close(w);
        size_t len;
        lm_error_t err;
        const char *body = lm_json_writer_result(w, &len, &err);
        snprintf(path, sizeof path, "/groups/%s/clusters", proj);
        v = body ? call(c, "POST", path, body, &st) : NULL;
        lm_json_writer_destroy(w);
        if (pw) {
            lm_wipe(pw, strlen(pw));
            free(pw);
        }
        static const char *const cols[] = {"name", "groupId", "connectionString", NULL};
        return v ? show(a, v, cols) : 1;
    }
    if (strcmp(w0, "clusters") == 0 && strcmp(w1, "list") == 0) {
        snprintf(path, sizeof path, "/groups/%s/clusters", proj);
        static const char *const cols[] = {"name",   "connectionString", "tls",
                                           "caFile", "username",         NULL};
        return (v = call(c, "GET", path, NULL, &st)) ? show_list(a, v, "results", cols) : 1;
    }
    if (strcmp(w0, "projects") == 0 && strcmp(w1, "create") == 0 && w2[0]) {
        if (!org)
            return die("--orgId is required (or org_id in the profile)");
        lm_strbuf_t b;
        lm_strbuf_init(&b, 4096);
        lm_strbuf_append(&b, "{\"name\":");
        lm_json_escape(&b, w2);
        lm_strbuf_append(&b, ",\"orgId\":");
        lm_json_escape(&b, org);
        lm_strbuf_append(&b, "}");
        v = call(c, "POST", "/groups", lm_strbuf_str(&b), &st);
        lm_strbuf_cleanup(&b);
        static const char *const cols[] = {"id", "name", "orgId", NULL};
        return v ? show(a, v, cols) : 1;
    }
    if (strcmp(w0, "projects") == 0 && strcmp(w1, "list") == 0) {
        snprintf(path, sizeof path, "/orgs/%s/groups", org);
        static const char *const cols[] = {"id", "name", "orgId", NULL};
        return (v = call(c, "GET", path, NULL, &st)) ? show_list(a, v, "results", cols) : 1;
    }
    if (strcmp(w0, "apikeys") == 0 && strcmp(w1, "create") == 0) {
        const char *role = flag(a, "role");
        if (!role)
            return die("--role ORG_OWNER or ORG_MEMBER is required");
        lm_strbuf_t b;
        lm_strbuf_init(&b, 4096);
        lm_strbuf_append(&b, "{\"desc\":");
        lm_json_escape(&b, flag(a, "desc") ? flag(a, "desc") : "");
        lm_strbuf_append(&b, ",\"roles\":[");
        lm_json_escape(&b, role);
        lm_strbuf_append(&b, "]}");
        snprintf(path, sizeof path, "/orgs/%s/apiKeys", org);
        v = call(c, "POST", path, lm_strbuf_str(&b), &st);
        lm_strbuf_cleanup(&b);
        if (!v)
            return 1;
        static const char *const cols[] = {"publicKey", "privateKey", "roles", NULL};
        show(a, v, cols);
        fflush(stdout);
        fprintf(stderr, "livemig: the private key is shown once: store it in a file only you "
                        "can read\n");
        return 0;
    }
    fprintf(stderr, "livemig: unknown command\n%s", usage_text);
    return 2;
}

static bool parse_args(int argc, char **argv, args_t *a, profile_t *over)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "-o") == 0 && i + 1 < argc) {
            if (strcmp(argv[++i], "json") != 0) {
                die("-o: only json is supported");
                return false;
            }
            a->json = true;
        } else if (strncmp(s, "--", 2) == 0) {
            const char *name = s + 2;
            const char *val = "true";
            if (!is_switch(name)) {
                if (i + 1 >= argc) {
                    die("--%s needs a value", name);
                    return false;
                }
                val = argv[++i];
            }
            if (a->n_flags == MAX_FLAGS) {
                die("too many flags");
                return false;
            }
            a->flag_name[a->n_flags] = name;
            a->flag_val[a->n_flags++] = val;
            if (strcmp(name, "url") == 0)
                over->url = (char *)val;
            else if (strcmp(name, "caFile") == 0 && i > 0)
                over->ca_file = (char *)val;
            else if (strcmp(name, "publicKey") == 0)
                over->public_key = (char *)val;
            else if (strcmp(name, "privateKeyFile") == 0)
                over->private_key_file = (char *)val;
        } else if (a->n_words < 8) {
            a->words[a->n_words++] = s;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("livemig %s\n", LM_VERSION);
        return 0;
    }
    args_t a;
    profile_t over = {0};
    conn_t c;
    memset(&c, 0, sizeof c);
    if (!parse_args(argc, argv, &a, &over))
        return 2;
    /* the profile file, then the environment, then flags */
    lm_error_t err;
    char path[1024];
    const char *home = getenv("HOME");
    snprintf(path, sizeof path, "%s/.config/livemig/config.yaml", home ? home : "");
    if (home && access(path, R_OK) == 0 && !lm_config_load_file(profile_schema, &c.p, path, &err))
        return die("%s", err.message);
    struct {
        const char *env;
        char **field;
    } envs[] = {{"LIVEMIG_URL", &c.p.url},
                {"LIVEMIG_CA_FILE", &c.p.ca_file},
                {"LIVEMIG_PUBLIC_KEY", &c.p.public_key},
                {"LIVEMIG_PRIVATE_KEY_FILE", &c.p.private_key_file},
                {"LIVEMIG_ORG_ID", &c.p.org_id},
                {"LIVEMIG_PROJECT_ID", &c.p.project_id}};
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++)
        if (getenv(envs[i].env)) {
            free(*envs[i].field);
            *envs[i].field = strdup(getenv(envs[i].env));
        }
    char **fields[] = {&c.p.url, &c.p.ca_file, &c.p.public_key, &c.p.private_key_file};
    char *vals[] = {over.url, over.ca_file, over.public_key, over.private_key_file};
    for (int i = 0; i < 4; i++)
        if (vals[i]) {
            free(*fields[i]);
            *fields[i] = strdup(vals[i]);
        }
    int rc;
    if (!c.p.url || strncmp(c.p.url, "https://", 8) != 0)
        rc = die("the control plane's https:// URL is needed: --url, LIVEMIG_URL or url in %s",
                 path);
    else if (!c.p.public_key || !c.p.private_key_file)
        rc = die("an API key is needed: --publicKey and --privateKeyFile (or LIVEMIG_PUBLIC_KEY "
                 "and LIVEMIG_PRIVATE_KEY_FILE, or the profile)");
    else if (!(c.secret = read_secret_file(c.p.private_key_file, "the API private key file")))
        rc = 1;
    else if (!lm_http_global_init(&err))
        rc = die("%s", err.message);
    else {
        rc = run(&c, &a);
        lm_http_global_cleanup();
    }
    if (c.secret) {
        lm_wipe(c.secret, strlen(c.secret));
        free(c.secret);
    }
    lm_config_cleanup(profile_schema, &c.p);
    return rc;
}
