/* main.c: the intenttuner binary: global flags and subcommand dispatch. */
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/threads.h"
#include "cli/commands.h"
#include "version.h"

/* Declarations of every it_cmd_<name>, then the table, from the same list. */
#undef IT_COMMAND
#define IT_COMMAND(n, s) int it_cmd_##n(int argc, char **argv);
#include "commands.inc"
#undef IT_COMMAND

typedef struct command {
    const char *name;
    const char *summary;
    int (*fn)(int argc, char **argv);
} command;

#define IT_COMMAND(n, s) {#n, s, it_cmd_##n},
static const command g_commands[] = {
#include "commands.inc"
    {NULL, NULL, NULL},
};
#undef IT_COMMAND

static void usage(FILE *out)
{
    fprintf(out,
            "usage: intenttuner <command> [options]\n\n"
            "IntentTuner teaches a text-to-image model a new concept the way you mean it.\n\n"
            "commands:\n");
    for (size_t i = 0; g_commands[i].name; i++)
        fprintf(out, "  %-12s %s\n", g_commands[i].name, g_commands[i].summary);
    fprintf(out, "\nRun 'intenttuner <command> --help' for the options of a command.\n"
                 "Global: --help, --version.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("intenttuner %s\n", IT_VERSION);
        return 0;
    }
    it_threads_set(0);
    for (size_t i = 0; g_commands[i].name; i++)
        if (strcmp(argv[1], g_commands[i].name) == 0) return g_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "intenttuner: error: unknown command '%s'\n(run 'intenttuner --help' for the list)\n",
            argv[1]);
    return 2;
}
