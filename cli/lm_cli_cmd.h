/* lm_cli_cmd: the command table of the `livemig` CLI and what it drives: the command line
 * is parsed against it, and every help text is printed from it (in the manner of git's
 * `commands[]`). One table of flags says which take a value and what each means; each
 * command names the flags it takes. Nothing here talks to the network.
 *
 * Ownership: the tables are static; lm_cli_args_t points into them and into argv. */
#ifndef LM_CLI_CMD_H
#define LM_CLI_CMD_H

#include <stdbool.h>
#include <stdio.h>

#define LM_CLI_MAX_DEPTH 3   /* words in a command's path: liveMigrations link create */
#define LM_CLI_MAX_FLAGS 600 /* --accessListIp may repeat up to the API's 256 */

/* A flag: --name (or -s when short_name is set), with a value when arg is set. */
typedef struct {
    const char *name; /* without the leading "--" */
    char short_name;  /* 'o' for -o; 0 for none */
    const char *arg;  /* the value's placeholder in help ("ID"); NULL for a switch */
    const char *help; /* one line: what the flag means */
    bool hidden;      /* accepted, never shown */
} lm_cli_flag_t;

/* How a command takes a flag (shown in its usage line). */
enum { LM_CLI_OPTIONAL = 0, LM_CLI_REQUIRED = 1, LM_CLI_REPEATED = 2 };

typedef struct {
    const char *name; /* an lm_cli_flag_t's name; NULL ends a list */
    unsigned how;     /* LM_CLI_OPTIONAL, LM_CLI_REQUIRED, | LM_CLI_REPEATED */
} lm_cli_flag_use_t;

typedef struct lm_cli_conn lm_cli_conn_t; /* the caller's connection, opaque here */
typedef struct lm_cli_args lm_cli_args_t;

/* A command (run set) or a group of commands (run NULL), named by its path of canonical
 * words; alias is another name for the last word ("lm" for "liveMigrations"). */
typedef struct {
    const char *path[LM_CLI_MAX_DEPTH + 1]; /* NULL-terminated */
    const char *alias;
    const char *operand;            /* the positional word it needs ("ID"), or NULL */
    const lm_cli_flag_use_t *flags; /* the flags it takes besides the global ones */
    const char *summary;            /* one line, in command lists */
    const char *desc;               /* more, under the usage line; or NULL */
    int (*run)(lm_cli_conn_t *c, const lm_cli_args_t *a); /* the exit code */
} lm_cli_cmd_t;

/* The whole CLI. */
typedef struct {
    const char *prog;                /* "livemig" */
    const char *summary;             /* the top-level help's first line */
    const lm_cli_flag_t *flags;      /* every flag; ends with {NULL} */
    const lm_cli_flag_use_t *global; /* the flags every command takes */
    const lm_cli_cmd_t *cmds;        /* ends with {{NULL}} */
} lm_cli_t;

/* A parsed command line. */
struct lm_cli_args {
    const lm_cli_cmd_t *cmd; /* the command to run */
    const char *operand;     /* its positional word, or NULL */
    const char *flag_name[LM_CLI_MAX_FLAGS];
    const char *flag_val[LM_CLI_MAX_FLAGS]; /* "true" for a switch */
    int n_flags;
};

/* Parses argv (argv[0] is the program) against cli. True when a->cmd is to be run; false
 * when nothing is left to do, with *exit_code 0 after help was printed on stdout, or 2
 * after a usage error (naming the word or flag, with a hint) or a usage on stderr. */
bool lm_cli_parse(const lm_cli_t *cli, int argc, char **argv, lm_cli_args_t *a, int *exit_code);

/* The value of the last --name given, "true" for a switch; NULL when not given. */
const char *lm_cli_flag(const lm_cli_args_t *a, const char *name);

/* The help of cmd (NULL: the top level) on out. */
void lm_cli_print_help(const lm_cli_t *cli, const lm_cli_cmd_t *cmd, FILE *out);

/* Every command and group, one a line: its words, a tab, the flags it shows in its help
 * (global ones included), space-separated. For tests (`livemig __commands`). */
void lm_cli_print_commands(const lm_cli_t *cli, FILE *out);

#endif
