/* args.c: option parsing and help generation. */
#include "cli/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/threads.h"

it_common_opts it_common;

static const it_opt common_opts[] = {
    {"json", 0, IT_OPT_FLAG, &it_common.json, NULL, "machine-readable JSON output; no progress bars"},
    {"threads", 0, IT_OPT_INT, &it_common.threads, "N", "worker threads (default: OMP_NUM_THREADS or all CPUs)"},
    {"log-level", 0, IT_OPT_STR, &it_common.log_level, "LEVEL", "error, warn, info (default) or debug"},
    {"quiet", 'q', IT_OPT_FLAG, &it_common.quiet, NULL, "only errors"},
    {"verbose", 'v', IT_OPT_FLAG, &it_common.verbose, NULL, "debug messages"},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const it_opt *find_opt(const it_opt *table, const char *name, size_t len, char short_name)
{
    for (const it_opt *o = table; o && o->name; o++) {
        if (short_name ? o->short_name == short_name
                       : strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    }
    return NULL;
}

static it_status store(it_err *err, const it_opt *o, const char *val)
{
    char *end = NULL;
    switch (o->kind) {
    case IT_OPT_FLAG: *(int *)o->dst = 1; return IT_OK;
    case IT_OPT_STR: *(const char **)o->dst = val; return IT_OK;
    case IT_OPT_INT: {
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end)
            return it_err_set(err, IT_ERR_ARG, "--%s expects an integer, got '%s'", o->name, val);
        *(long *)o->dst = v;
        return IT_OK;
    }
    case IT_OPT_FLOAT: {
        errno = 0;
        double v = strtod(val, &end);
        if (errno || end == val || *end)
            return it_err_set(err, IT_ERR_ARG, "--%s expects a number, got '%s'", o->name, val);
        *(double *)o->dst = v;
        return IT_OK;
    }
    case IT_OPT_LIST: {
        it_strlist *l = o->dst;
        if (l->n >= IT_STRLIST_MAX)
            return it_err_set(err, IT_ERR_ARG, "--%s given more than %d times", o->name,
                              IT_STRLIST_MAX);
        l->items[l->n++] = val;
        return IT_OK;
    }
    }
    return IT_ERR_INTERNAL;
}

static it_status apply_common(it_err *err)
{
    if (it_common.log_level) {
        int lv = it_log_level_parse(it_common.log_level);
        if (lv < 0)
            return it_err_set(err, IT_ERR_ARG, "--log-level: unknown level '%s'", it_common.log_level);
        it_log_set_level((it_log_level)lv);
    }
    if (it_common.quiet) it_log_set_level(IT_LOG_ERROR);
    if (it_common.verbose) it_log_set_level(IT_LOG_DEBUG);
    if (it_common.json) it_log_set_machine_output(1);
    if (it_common.threads < 0 || it_common.threads > 1024)
        return it_err_set(err, IT_ERR_ARG, "--threads must be between 1 and 1024");
    if (it_common.threads > 0) it_threads_set((int)it_common.threads);
    return IT_OK;
}

int it_args_parse(it_err *err, const it_cmd_spec *spec, int argc, char **argv,
                  const char **pos, int *n_pos)
{
    *n_pos = 0;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            pos[(*n_pos)++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            it_args_print_help(spec);
            return IT_ARGS_HELP;
        }
        const it_opt *o;
        const char *val = NULL;
        if (a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            o = find_opt(spec->opts, name, len, 0);
            if (!o) o = find_opt(common_opts, name, len, 0);
            if (!o) return it_err_set(err, IT_ERR_ARG, "unknown option '%.*s'", (int)(len + 2), a);
            if (eq) val = eq + 1;
        } else {
            if (a[2] != '\0') return it_err_set(err, IT_ERR_ARG, "unknown option '%s'", a);
            o = find_opt(spec->opts, NULL, 0, a[1]);
            if (!o) o = find_opt(common_opts, NULL, 0, a[1]);
            if (!o) return it_err_set(err, IT_ERR_ARG, "unknown option '%s'", a);
        }
        if (o->kind == IT_OPT_FLAG) {
            if (val) return it_err_set(err, IT_ERR_ARG, "--%s takes no value", o->name);
        } else if (!val) {
            if (i + 1 >= argc) return it_err_set(err, IT_ERR_ARG, "--%s needs a value", o->name);
            val = argv[++i];
        }
        IT_TRY(store(err, o, val));
    }
    if (*n_pos < spec->min_pos)
        return it_err_set(err, IT_ERR_ARG, "missing argument (need at least %d)", spec->min_pos);
    if (spec->max_pos >= 0 && *n_pos > spec->max_pos)
        return it_err_set(err, IT_ERR_ARG, "unexpected argument '%s'", pos[spec->max_pos]);
    return apply_common(err);
}

static void print_opts(const it_opt *opts)
{
    for (const it_opt *o = opts; o && o->name; o++) {
        char left[64];
        if (o->kind == IT_OPT_FLAG)
            snprintf(left, sizeof left, "%s%c%s--%s", o->short_name ? "-" : "",
                     o->short_name ? o->short_name : ' ', o->short_name ? ", " : "  ", o->name);
        else
            snprintf(left, sizeof left, "%s%c%s--%s %s", o->short_name ? "-" : "",
                     o->short_name ? o->short_name : ' ', o->short_name ? ", " : "  ", o->name,
                     o->metavar ? o->metavar : "VALUE");
        printf("  %-30s %s%s\n", left, o->help, o->kind == IT_OPT_LIST ? " (repeatable)" : "");
    }
}

void it_args_print_help(const it_cmd_spec *spec)
{
    printf("usage: %s\n\n%s\n", spec->usage, spec->description);
    if (spec->opts && spec->opts->name) {
        printf("\noptions:\n");
        print_opts(spec->opts);
    }
    printf("\ncommon options:\n");
    print_opts(common_opts);
    printf("  %-30s %s\n", "-h, --help", "show this help");
    if (spec->epilog) printf("\n%s\n", spec->epilog);
}

int it_cli_fail(const it_err *err)
{
    fprintf(stderr, "intenttuner: error: %s\n", err->msg[0] ? err->msg : it_status_str(err->code));
    if (err->code == IT_ERR_ARG) {
        fprintf(stderr, "(run with --help for usage)\n");
        return 2;
    }
    return 1;
}

int it_args_run(const it_cmd_spec *spec, int argc, char **argv, const char **pos, int *n_pos)
{
    it_err err;
    it_err_clear(&err);
    int rc = it_args_parse(&err, spec, argc, argv, pos, n_pos);
    if (rc == IT_ARGS_HELP) return 0;
    if (rc != IT_OK) return it_cli_fail(&err);
    return -1;
}
