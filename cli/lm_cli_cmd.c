/* lm_cli_cmd: parsing the command line against the command table, and the help texts it
 * prints. See lm_cli_cmd.h. */
#include "lm_cli_cmd.h"

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "lm_redact.h"

#define MAX_WORDS 8    /* more than a path, an operand and "help" ever need */
#define WRAP_COLUMN 92 /* usage lines wrap here */
#define HELP_COLUMN 34 /* flag and command help starts at most here */

/* ---- the table ---- */

static int depth(const lm_cli_cmd_t *cmd)
{
    int n = 0;
    while (cmd && n < LM_CLI_MAX_DEPTH && cmd->path[n])
        n++;
    return n;
}

/* Whether a's path is a prefix of b's (or equal); NULL, the top level, prefixes all. */
static bool is_prefix(const lm_cli_cmd_t *a, const lm_cli_cmd_t *b)
{
    int n = depth(a);
    if (n > depth(b))
        return false;
    for (int i = 0; i < n; i++)
        if (strcmp(a->path[i], b->path[i]) != 0)
            return false;
    return true;
}

/* The entry one word below parent (NULL: the top level) named word or its alias. */
static const lm_cli_cmd_t *find_child(const lm_cli_t *cli, const lm_cli_cmd_t *parent,
                                      const char *word)
{
    int n = depth(parent);
    for (const lm_cli_cmd_t *e = cli->cmds; e->path[0]; e++)
        if (depth(e) == n + 1 && is_prefix(parent, e) &&
            (strcmp(e->path[n], word) == 0 || (e->alias && strcmp(e->alias, word) == 0)))
            return e;
    return NULL;
}

static const lm_cli_flag_t *find_flag(const lm_cli_t *cli, const char *name, size_t len)
{
    for (const lm_cli_flag_t *f = cli->flags; f->name; f++)
        if (strlen(f->name) == len && strncmp(f->name, name, len) == 0)
            return f;
    return NULL;
}

static const lm_cli_flag_t *find_short(const lm_cli_t *cli, char c)
{
    for (const lm_cli_flag_t *f = cli->flags; f->name; f++)
        if (f->short_name && f->short_name == c)
            return f;
    return NULL;
}

static bool in_uses(const lm_cli_flag_use_t *uses, const char *name)
{
    for (; uses && uses->name; uses++)
        if (strcmp(uses->name, name) == 0)
            return true;
    return false;
}

/* Whether cmd (NULL: the top level, or a group) takes --name. */
static bool takes_flag(const lm_cli_t *cli, const lm_cli_cmd_t *cmd, const char *name)
{
    return in_uses(cli->global, name) || (cmd && cmd->run && in_uses(cmd->flags, name));
}

/* ---- errors ---- */

/* "prog: message" and a hint to `typed --help` on stderr (redacted, as every message). */
static void usage_error(const lm_cli_t *cli, const char *typed, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void usage_error(const lm_cli_t *cli, const char *typed, const char *fmt, ...)
{
    char buf[1200], clean[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    lm_redact_buf(buf, clean, sizeof clean);
    fprintf(stderr, "%s: %s\nrun '%s --help' for usage\n", cli->prog, clean, typed);
}

/* ---- help ---- */

/* Prints word at *col, wrapping before it when the line would pass WRAP_COLUMN. */
static void put_word(FILE *out, int *col, const char *word)
{
    int len = (int)strlen(word);
    if (*col + 1 + len > WRAP_COLUMN) {
        fprintf(out, "\n       ");
        *col = 7;
    }
    *col += fprintf(out, " %s", word);
}

static void print_usage_line(const lm_cli_t *cli, const lm_cli_cmd_t *cmd, FILE *out)
{
    char word[200];
    int col = fprintf(out, "usage: %s", cli->prog);
    for (int i = 0; i < depth(cmd); i++)
        put_word(out, &col, cmd->path[i]);
    if (!cmd || !cmd->run) {
        put_word(out, &col, "COMMAND");
        put_word(out, &col, "[FLAGS]");
        fputc('\n', out);
        return;
    }
    if (cmd->operand)
        put_word(out, &col, cmd->operand);
    for (const lm_cli_flag_use_t *u = cmd->flags; u && u->name; u++) {
        const lm_cli_flag_t *f = find_flag(cli, u->name, strlen(u->name));
        if (!f || f->hidden)
            continue;
        bool req = u->how & LM_CLI_REQUIRED, rep = u->how & LM_CLI_REPEATED;
        snprintf(word, sizeof word, "%s--%s%s%s%s%s", req ? "" : "[", f->name, f->arg ? " " : "",
                 f->arg ? f->arg : "", req ? "" : "]", rep ? "..." : "");
        put_word(out, &col, word);
    }
    fputc('\n', out);
}

/* "  -o, --output json" or "  --url URL" into buf; its length. */
static int flag_label(const lm_cli_flag_t *f, char *buf, size_t size)
{
    char s[8] = "";
    if (f->short_name)
        snprintf(s, sizeof s, "-%c, ", f->short_name);
    return snprintf(buf, size, "  %s--%s%s%s", s, f->name, f->arg ? " " : "", f->arg ? f->arg : "");
}

/* label, padded to width, then text wrapped at WRAP_COLUMN under its own first column. */
static void print_entry(FILE *out, const char *label, int width, const char *text)
{
    int col = fprintf(out, "%-*s ", width, label);
    if (col > width + 1) { /* a label longer than the column: the text on the next line */
        fprintf(out, "\n%-*s ", width, "");
        col = width + 1;
    }
    int indent = col;
    while (*text) {
        size_t len = strcspn(text, " ");
        if (col > indent && col + 1 + (int)len > WRAP_COLUMN) {
            fprintf(out, "\n%-*s", indent, "");
            col = indent;
        }
        col += fprintf(out, "%s%.*s", col > indent ? " " : "", (int)len, text);
        text += len;
        text += strspn(text, " ");
    }
    fputc('\n', out);
}

static void print_flags(const lm_cli_t *cli, const char *title, const lm_cli_flag_use_t *uses,
                        FILE *out)
{
    char label[200];
    int width = 0, shown = 0;
    for (const lm_cli_flag_use_t *u = uses; u && u->name; u++) {
        const lm_cli_flag_t *f = find_flag(cli, u->name, strlen(u->name));
        if (!f || f->hidden)
            continue;
        int n = flag_label(f, label, sizeof label);
        width = n > width ? n : width;
        shown++;
    }
    if (!shown)
        return;
    width = width < HELP_COLUMN ? width : HELP_COLUMN;
    fprintf(out, "\n%s:\n", title);
    for (const lm_cli_flag_use_t *u = uses; u && u->name; u++) {
        const lm_cli_flag_t *f = find_flag(cli, u->name, strlen(u->name));
        if (!f || f->hidden)
            continue;
        flag_label(f, label, sizeof label);
        print_entry(out, label, width + 1, f->help);
    }
}

/* "  liveMigrations describe ID" for a command into buf, its first skip words left out;
 * its length. */
static int cmd_label(const lm_cli_cmd_t *e, int skip, char *buf, size_t size)
{
    int n = snprintf(buf, size, " ");
    for (int i = skip; i < depth(e) && (size_t)n < size; i++)
        n += snprintf(buf + n, size - (size_t)n, " %s", e->path[i]);
    if (e->operand && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " %s", e->operand);
    return n;
}

/* The commands under group (NULL: all), each with its summary. */
static void print_commands_under(const lm_cli_t *cli, const lm_cli_cmd_t *group, FILE *out)
{
    char label[200];
    int width = 0;
    for (const lm_cli_cmd_t *e = cli->cmds; e->path[0]; e++)
        if (e->run && is_prefix(group, e)) {
            int n = cmd_label(e, depth(group), label, sizeof label);
            width = n > width ? n : width;
        }
    width = width < HELP_COLUMN + 8 ? width : HELP_COLUMN + 8;
    for (const lm_cli_cmd_t *e = cli->cmds; e->path[0]; e++)
        if (e->run && is_prefix(group, e)) {
            cmd_label(e, depth(group), label, sizeof label);
            print_entry(out, label, width + 1, e->summary);
        }
}

/* "(liveMigrations may be written lm)" for every alias on cmd's path or below it. */
static void print_aliases(const lm_cli_t *cli, const lm_cli_cmd_t *cmd, FILE *out)
{
    for (const lm_cli_cmd_t *e = cli->cmds; e->path[0]; e++)
        if (e->alias && (is_prefix(e, cmd) || is_prefix(cmd, e)))
            fprintf(out, "(%s may be written %s)\n", e->path[depth(e) - 1], e->alias);
}

void lm_cli_print_help(const lm_cli_t *cli, const lm_cli_cmd_t *cmd, FILE *out)
{
    print_usage_line(cli, cmd, out);
    fprintf(out, "\n%s\n", cmd ? cmd->summary : cli->summary);
    if (cmd && cmd->desc)
        fprintf(out, "%s\n", cmd->desc);
    if (!cmd || !cmd->run) {
        fprintf(out, "\ncommands:\n");
        print_commands_under(cli, cmd, out);
    } else {
        print_flags(cli, "flags", cmd->flags, out);
    }
    print_flags(cli, "global flags", cli->global, out);
    fputc('\n', out);
    print_aliases(cli, cmd, out);
    if (!cmd || !cmd->run) {
        fprintf(out, "run '%s", cli->prog);
        for (int i = 0; i < depth(cmd); i++)
            fprintf(out, " %s", cmd->path[i]);
        fprintf(out, " COMMAND --help' for a command's flags\n");
    }
}

static void print_flag_names(const lm_cli_t *cli, const lm_cli_flag_use_t *uses, FILE *out)
{
    for (; uses && uses->name; uses++) {
        const lm_cli_flag_t *f = find_flag(cli, uses->name, strlen(uses->name));
        if (f && !f->hidden)
            fprintf(out, " --%s", f->name);
    }
}

void lm_cli_print_commands(const lm_cli_t *cli, FILE *out)
{
    for (const lm_cli_cmd_t *e = cli->cmds; e->path[0]; e++) {
        for (int i = 0; i < depth(e); i++)
            fprintf(out, "%s%s", i ? " " : "", e->path[i]);
        fputc('\t', out);
        if (e->run)
            print_flag_names(cli, e->flags, out);
        print_flag_names(cli, cli->global, out);
        fputc('\n', out);
    }
}

/* ---- parsing ---- */

const char *lm_cli_flag(const lm_cli_args_t *a, const char *name)
{
    for (int i = a->n_flags - 1; i >= 0; i--)
        if (strcmp(a->flag_name[i], name) == 0)
            return a->flag_val[i];
    return NULL;
}

/* What the flag pass saw besides flags: the words, --help, and the first flag error. */
typedef struct {
    const char *words[MAX_WORDS];
    int n_words;
    bool help;
    char error[300];   /* the first error, "" when none */
    bool error_in_cmd; /* the error ends with `for "<the command>"` */
} scan_t;

/* One argument that starts with '-' (argv[*i]); takes its value from argv[*i + 1] when it
 * needs one. Errors go to s->error (the first only). */
static void scan_flag(const lm_cli_t *cli, int argc, char **argv, int *i, lm_cli_args_t *a,
                      scan_t *s)
{
    const char *arg = argv[*i], *val = NULL, *eq = NULL;
    const lm_cli_flag_t *f = NULL;
    char msg[sizeof s->error] = "";
    bool in_cmd = false;
    if (arg[1] == '-') {
        eq = strchr(arg + 2, '=');
        f = find_flag(cli, arg + 2, eq ? (size_t)(eq - arg - 2) : strlen(arg + 2));
        val = eq ? eq + 1 : NULL;
    } else if (arg[2] == '\0') {
        f = find_short(cli, arg[1]);
    }
    if (!f) {
        snprintf(msg, sizeof msg, "unknown flag %.*s", eq ? (int)(eq - arg) : 200, arg);
        in_cmd = true;
    } else if (!f->arg && val) {
        snprintf(msg, sizeof msg, "--%s takes no value", f->name);
    } else if (f->arg && !val && *i + 1 >= argc) {
        snprintf(msg, sizeof msg, "%s needs a value", arg);
    } else if (strcmp(f->name, "help") == 0) {
        s->help = true;
    } else if (a->n_flags == LM_CLI_MAX_FLAGS) {
        snprintf(msg, sizeof msg, "too many flags");
    } else {
        a->flag_name[a->n_flags] = f->name;
        a->flag_val[a->n_flags++] = f->arg ? (val ? val : argv[++*i]) : "true";
    }
    if (msg[0] && !s->error[0]) {
        memcpy(s->error, msg, sizeof msg);
        s->error_in_cmd = in_cmd;
    }
}

bool lm_cli_parse(const lm_cli_t *cli, int argc, char **argv, lm_cli_args_t *a, int *exit_code)
{
    scan_t s;
    memset(a, 0, sizeof *a);
    memset(&s, 0, sizeof s);
    *exit_code = 2;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1])
            scan_flag(cli, argc, argv, &i, a, &s);
        else if (s.n_words < MAX_WORDS)
            s.words[s.n_words++] = argv[i];
    }
    int used = 0;
    if (s.n_words && strcmp(s.words[0], "help") == 0) {
        s.help = true;
        used = 1;
    }
    /* the command: one word after another, down the table */
    const lm_cli_cmd_t *cmd = NULL, *next;
    char typed[400];
    int tlen = snprintf(typed, sizeof typed, "%s", cli->prog);
    for (; used < s.n_words && !(cmd && cmd->run); used++) {
        if (!(next = find_child(cli, cmd, s.words[used])))
            break;
        cmd = next;
        tlen += snprintf(typed + tlen, sizeof typed - (size_t)tlen, " %.40s", s.words[used]);
    }
    if (s.error[0]) {
        usage_error(cli, typed, "%s%s%s%s", s.error, s.error_in_cmd ? " for \"" : "",
                    s.error_in_cmd ? typed : "", s.error_in_cmd ? "\"" : "");
        return false;
    }
    if (used < s.n_words && !(cmd && cmd->run)) {
        usage_error(cli, typed, "unknown command \"%s\" for \"%s\"", s.words[used], typed);
        return false;
    }
    if (cmd && cmd->run && cmd->operand && used < s.n_words)
        a->operand = s.words[used++];
    if (used < s.n_words) {
        usage_error(cli, typed, "unexpected argument \"%s\" for \"%s\"", s.words[used], typed);
        return false;
    }
    for (int i = 0; i < a->n_flags; i++)
        if (!takes_flag(cli, cmd, a->flag_name[i])) {
            usage_error(cli, typed, "unknown flag --%s for \"%s\"", a->flag_name[i], typed);
            return false;
        }
    if (s.help || !cmd || !cmd->run) {
        lm_cli_print_help(cli, cmd, s.help ? stdout : stderr);
        *exit_code = s.help ? 0 : 2;
        return false;
    }
    if (cmd->operand && !a->operand) {
        usage_error(cli, typed, "missing %s for \"%s\"", cmd->operand, typed);
        return false;
    }
    a->cmd = cmd;
    *exit_code = 0;
    return true;
}
