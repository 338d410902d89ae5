/* The livemig CLI's help and usage errors, from the binary alone (no control plane: every
 * run has an empty environment and a HOME without a profile, so a command that tried to
 * reach the network would fail with exit 1 "the control plane's https:// URL is needed").
 * Every command of the table (`livemig __commands`) answers --help, -h and `help ...` on
 * stdout with exit 0 and names each of its flags; unknown commands and flags exit 2 with
 * a message on stderr naming them and a hint. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_test_proc.h"
#include "lm_test_util.h"

static char dir[512];

static void setup(void)
{
    lm_test_mkdtemp(dir, sizeof dir);
}

static void teardown(void)
{
    lm_test_rmtree(dir);
}

TestSuite(cli_help, .init = setup, .fini = teardown);

/* Runs `livemig ARGS`; its stdout and stderr into *out and *err (caller frees). */
static int cli(char **out, char **err, const char *args)
{
    char o[600], e[600];
    snprintf(o, sizeof o, "%s/out", dir);
    snprintf(e, sizeof e, "%s/err", dir);
    int rc = lm_test_sh("env -i HOME='%s' PATH=/usr/bin:/bin '%s' %s > '%s' 2> '%s' < /dev/null",
                        dir, LM_CLI_BIN, args, o, e);
    *out = lm_test_slurp(o);
    *err = lm_test_slurp(e);
    return rc;
}

/* Whether text holds word as a whole (so "--tls" is not found in "--tlsCAFile"). */
static bool has_word(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = strstr(text, word); p; p = strstr(p + 1, word)) {
        bool start = p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '-');
        bool end = !(isalnum((unsigned char)p[n]) || p[n] == '-');
        if (start && end)
            return true;
    }
    return false;
}

/* Whether help text has a line for flag ("  --flag ARG  what it means", or "  -o, --flag"),
 * with its meaning after it (on the same line, or the next when the name is long). */
static bool has_flag_line(const char *text, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *line = text; line && *line;
         line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *p = line + strspn(line, " ");
        if (p[0] == '-' && p[1] && p[1] != '-' && p[2] == ',' && p[3] == ' ')
            p += 4; /* "-o, " */
        if (p == line || strncmp(p, flag, n) != 0 || (p[n] != ' ' && p[n] != '\n'))
            continue;
        size_t len = strcspn(p, "\n");
        const char *gap = strstr(p, "  ");
        if (gap && gap < p + len && isalpha((unsigned char)gap[strspn(gap, " ")]))
            return true;
        const char *next = p + len + (p[len] == '\n');
        if (next[0] == ' ' && isalpha((unsigned char)next[strspn(next, " ")]))
            return true;
    }
    return false;
}

/* One line of `livemig __commands`: the command's words and the flags its help shows. */
typedef struct {
    char path[200];
    char flags[1000];
} entry_t;

static int list_commands(entry_t *e, int max)
{
    char *out, *err;
    cr_assert_eq(cli(&out, &err, "__commands"), 0, "%s", err);
    int n = 0;
    for (char *line = strtok(out, "\n"); line && n < max; line = strtok(NULL, "\n")) {
        char *tab = strchr(line, '\t');
        cr_assert(tab, "no tab in: %s", line);
        *tab = '\0';
        snprintf(e[n].path, sizeof e[n].path, "%s", line);
        snprintf(e[n].flags, sizeof e[n].flags, "%s", tab + 1);
        n++;
    }
    free(out);
    free(err);
    cr_assert_gt(n, 0);
    return n;
}

/* The commands livemig has had since the start, with their flags: the table must keep them. */
static const struct {
    const char *path, *flags;
} expected[] = {
    {"liveMigrations link create", "--orgId --accessListIp"},
    {"liveMigrations link delete", "--orgId --force"},
    {"liveMigrations availableProjects", "--orgId"},
    {"liveMigrations validation create",
     "--projectId --clusterName --migrationHost --sourceClusterName --sourceProjectId "
     "--sourceUsername --sourcePasswordFile --sourceSsl --sourceCACertificatePath --drop"},
    {"liveMigrations validation describe", "--projectId"},
    {"liveMigrations create",
     "--projectId --clusterName --migrationHost --sourceClusterName --sourceProjectId "
     "--sourceUsername --sourcePasswordFile --sourceSsl --sourceCACertificatePath --drop"},
    {"liveMigrations describe", "--projectId"},
    {"liveMigrations cutover", "--projectId --force"},
    {"liveMigrations cancel", "--projectId --force"},
    {"liveMigrations extend", "--projectId"},
    {"liveMigrations list", "--projectId"},
    {"clusters add", "--projectId --connectionString --tls --tlsCAFile --username --passwordFile"},
    {"clusters list", "--projectId"},
    {"projects create", "--orgId"},
    {"projects list", "--orgId"},
    {"apikeys create", "--orgId --role --desc --expiresAfter"},
    {"apikeys list", "--orgId"},
    {"apikeys delete", "--orgId --force"},
    {"liveMigrations", ""},
    {"liveMigrations link", ""},
    {"liveMigrations validation", ""},
    {"clusters", ""},
    {"projects", ""},
    {"apikeys", ""},
};

Test(cli_help, the_table_keeps_every_command_and_flag)
{
    entry_t e[64];
    int n = list_commands(e, 64);
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        int j = 0;
        while (j < n && strcmp(e[j].path, expected[i].path) != 0)
            j++;
        cr_assert_lt(j, n, "`%s` is not in the command table", expected[i].path);
        char flags[1000];
        snprintf(flags, sizeof flags,
                 "%s --url --caFile --publicKey --privateKeyFile --output "
                 "--help",
                 expected[i].flags);
        for (char *f = strtok(flags, " "); f; f = strtok(NULL, " "))
            cr_expect(has_word(e[j].flags, f), "`%s` lost %s: %s", e[j].path, f, e[j].flags);
    }
}

/* `args` answers with help: exit 0, "usage: livemig <path>" and a line for every flag with
 * its meaning on stdout, nothing on stderr. */
static void expect_help(const char *args, const entry_t *e)
{
    char *out, *err, usage[300];
    cr_assert_eq(cli(&out, &err, args), 0, "livemig %s: %s%s", args, out, err);
    snprintf(usage, sizeof usage, "usage: livemig %s", e->path);
    cr_expect(strncmp(out, usage, strlen(usage)) == 0, "livemig %s: %s", args, out);
    cr_expect_str_empty(err, "livemig %s: %s", args, err);
    char flags[1000];
    snprintf(flags, sizeof flags, "%s", e->flags);
    for (char *save, *f = strtok_r(flags, " ", &save); f; f = strtok_r(NULL, " ", &save))
        cr_expect(has_flag_line(out, f), "livemig %s does not explain %s:\n%s", args, f, out);
    free(out);
    free(err);
}

Test(cli_help, help_answers_at_every_level)
{
    entry_t e[64];
    int n = list_commands(e, 64);
    char args[400];
    for (int i = 0; i < n; i++) {
        snprintf(args, sizeof args, "%s --help", e[i].path);
        expect_help(args, &e[i]);
        snprintf(args, sizeof args, "%s -h", e[i].path);
        expect_help(args, &e[i]);
        snprintf(args, sizeof args, "help %s", e[i].path);
        expect_help(args, &e[i]);
        snprintf(args, sizeof args, "--help %s", e[i].path); /* the flag may come first */
        expect_help(args, &e[i]);
        if (strncmp(e[i].path, "liveMigrations", 14) == 0) { /* the alias */
            snprintf(args, sizeof args, "lm%s --help", e[i].path + 14);
            expect_help(args, &e[i]);
        }
    }
}

Test(cli_help, the_top_and_each_group_list_their_commands)
{
    entry_t e[64];
    int n = list_commands(e, 64);
    static const char *const tops[] = {"--help", "-h", "help"};
    char *top, *err;
    for (size_t t = 0; t < sizeof tops / sizeof tops[0]; t++) {
        cr_assert_eq(cli(&top, &err, tops[t]), 0, "%s", err);
        cr_assert(strncmp(top, "usage: livemig", 14) == 0, "%s", top);
        for (int i = 0; i < n; i++) /* every command, under its full name */
            cr_expect(strstr(top, e[i].path), "livemig %s lacks %s:\n%s", tops[t], e[i].path, top);
        free(top);
        free(err);
    }
    /* a group's help names the last word of every command under it */
    for (int g = 0; g < n; g++) {
        char args[300], *out;
        snprintf(args, sizeof args, "%s --help", e[g].path);
        cr_assert_eq(cli(&out, &err, args), 0, "%s", err);
        size_t len = strlen(e[g].path);
        for (int i = 0; i < n; i++)
            if (strncmp(e[i].path, e[g].path, len) == 0 && e[i].path[len] == ' ')
                cr_expect(has_word(out, strrchr(e[i].path, ' ') + 1), "%s lacks %s:\n%s", args,
                          e[i].path, out);
        free(out);
        free(err);
    }
}

/* `args` is a usage error: exit 2, nothing on stdout, stderr naming `what` and `hint`. */
static void expect_usage_error(const char *args, const char *what, const char *hint)
{
    char *out, *err;
    cr_assert_eq(cli(&out, &err, args), 2, "livemig %s: %s%s", args, out, err);
    cr_expect_str_empty(out, "livemig %s: %s", args, out);
    cr_expect(strstr(err, what), "livemig %s does not name %s: %s", args, what, err);
    cr_expect(strstr(err, hint), "livemig %s gives no hint `%s`: %s", args, hint, err);
    free(out);
    free(err);
}

Test(cli_help, unknown_flags_are_named_everywhere)
{
    entry_t e[64];
    int n = list_commands(e, 64);
    char args[400], hint[300];
    for (int i = 0; i < n; i++) {
        snprintf(hint, sizeof hint, "livemig %s --help", e[i].path);
        snprintf(args, sizeof args, "%s --no-such-flag", e[i].path);
        expect_usage_error(args, "unknown flag --no-such-flag", hint);
        snprintf(args, sizeof args, "%s --no-such-flag=3 --help", e[i].path);
        expect_usage_error(args, "unknown flag --no-such-flag", hint);
    }
    /* a flag of another command */
    expect_usage_error("lm list --force", "unknown flag --force", "livemig lm list --help");
    expect_usage_error("clusters list --orgId O", "unknown flag --orgId",
                       "livemig clusters list --help");
    expect_usage_error("lm -x", "unknown flag -x", "livemig lm --help");
}

Test(cli_help, unknown_commands_are_named)
{
    expect_usage_error("nosuch", "unknown command \"nosuch\"", "livemig --help");
    expect_usage_error("help nosuch", "unknown command \"nosuch\"", "livemig --help");
    expect_usage_error("lm nosuch", "unknown command \"nosuch\"", "livemig lm --help");
    expect_usage_error("lm nosuch --help", "unknown command \"nosuch\"", "livemig lm --help");
    expect_usage_error("lm link nosuch", "unknown command \"nosuch\"", "livemig lm link --help");
    expect_usage_error("liveMigrations validation nosuch --projectId P",
                       "unknown command \"nosuch\"", "livemig liveMigrations validation --help");
    expect_usage_error("lm list surplus --projectId P", "unexpected argument \"surplus\"",
                       "livemig lm list --help");
    expect_usage_error("lm describe ID surplus", "unexpected argument \"surplus\"",
                       "livemig lm describe --help");
}

Test(cli_help, usage_errors_say_what_is_missing)
{
    expect_usage_error("lm create --projectId", "--projectId needs a value",
                       "livemig lm create --help");
    expect_usage_error("lm list -o", "-o needs a value", "livemig lm list --help");
    expect_usage_error("lm describe --projectId P", "missing ID", "livemig lm describe --help");
    expect_usage_error("clusters add --projectId P", "missing NAME", "livemig clusters add --help");
    expect_usage_error("lm list --force=yes", "--force takes no value", "livemig lm list --help");
    /* a group alone (and nothing at all) prints its usage on stderr */
    char *out, *err;
    cr_assert_eq(cli(&out, &err, "lm"), 2);
    cr_expect_str_empty(out);
    cr_expect(strncmp(err, "usage: livemig liveMigrations", 29) == 0, "%s", err);
    free(out);
    free(err);
    cr_assert_eq(cli(&out, &err, ""), 2);
    cr_expect_str_empty(out);
    cr_expect(strncmp(err, "usage: livemig", 14) == 0, "%s", err);
    free(out);
    free(err);
}

Test(cli_help, a_valid_command_without_a_profile_still_reaches_for_one)
{
    /* the other side of "help makes no network call": the same words without --help run
     * the command, which needs the control plane's URL */
    char *out, *err;
    cr_assert_eq(cli(&out, &err, "lm list --projectId P"), 1, "%s%s", out, err);
    cr_expect(strstr(err, "https:// URL is needed"), "%s", err);
    free(out);
    free(err);
}
