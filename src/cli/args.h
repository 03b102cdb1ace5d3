/* args.h: table-driven command-line parsing and help for every subcommand.
 *
 * Owns: option syntax (--name VALUE, --name=VALUE, short -x, repeated options
 * collected into lists, positionals), the generated --help text, and the
 * common options every command accepts (--threads, --json, --log-level,
 * -q/--quiet, -v/--verbose), which it applies to the process on success.
 * Does not own what commands do with the values. */
#ifndef IT_ARGS_H
#define IT_ARGS_H

#include "base/status.h"

typedef enum it_opt_kind {
    IT_OPT_FLAG,   /* int*, set to 1 */
    IT_OPT_STR,    /* const char** */
    IT_OPT_INT,    /* long* */
    IT_OPT_FLOAT,  /* double* */
    IT_OPT_LIST,   /* it_strlist*: repeatable */
} it_opt_kind;

#define IT_STRLIST_MAX 256
typedef struct it_strlist {
    const char *items[IT_STRLIST_MAX]; /* point into argv */
    int n;
} it_strlist;

typedef struct it_opt {
    const char *name;    /* long name without dashes; NULL ends the table */
    char short_name;     /* 0 if none */
    it_opt_kind kind;
    void *dst;
    const char *metavar; /* e.g. "FILE"; ignored for flags */
    const char *help;
} it_opt;

typedef struct it_cmd_spec {
    const char *usage;       /* "intenttuner inspect [options] FILE..." */
    const char *description; /* one paragraph */
    const it_opt *opts;      /* NULL-name terminated */
    int min_pos, max_pos;    /* positional argument bounds (-1 = unlimited) */
    const char *epilog;      /* examples; may be NULL */
} it_cmd_spec;

/* Values of the common options after parsing. */
typedef struct it_common_opts {
    int json;
    long threads;
    int quiet, verbose;
    const char *log_level;
} it_common_opts;
extern it_common_opts it_common;

#define IT_ARGS_HELP 1 /* positive: --help was printed; exit 0 */

/* Parses argv[1..argc-1] (argv[0] is the command name). Positionals are
 * stored in pos[0..*n_pos-1] (pos must hold argc entries). Returns IT_OK,
 * IT_ARGS_HELP after printing help to stdout, or IT_ERR_ARG with a message
 * naming the bad option. */
int it_args_parse(it_err *err, const it_cmd_spec *spec, int argc, char **argv,
                  const char **pos, int *n_pos);

void it_args_print_help(const it_cmd_spec *spec);

/* Standard ending of a command: prints "intenttuner: error: MSG" (and the
 * hint to run --help for argument errors) and returns the process exit code:
 * 0 ok, 2 usage error, 1 anything else. */
int it_cli_fail(const it_err *err);

/* Convenience for commands: parse, handle --help and errors. Returns -1 to go
 * on, otherwise the exit code to return. */
int it_args_run(const it_cmd_spec *spec, int argc, char **argv, const char **pos, int *n_pos);

#endif
