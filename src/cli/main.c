/* main.c: the intenttuner binary: global flags and subcommand dispatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

char *openblas_get_corename(void);

/* Is the OpenBLAS kernel set one of the pre-AVX2 fallbacks it picks when a
 * virtual CPU hides its model? */
static int blas_core_is_fallback(const char *core)
{
    static const char *const old[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                      "Sandybridge", "Atom", "Katmai", "Coppermine", "Northwood",
                                      "Banias", "Barcelona", "generic", "Generic", NULL};
    for (int i = 0; old[i]; i++)
        if (strcmp(core, old[i]) == 0) return 1;
    return 0;
}

/* Both OpenMP and OpenBLAS read their environment when the libraries load,
 * before main, so the only way to change it is to set it and exec ourselves
 * once. Two settings, each measured (docs/ARCHITECTURE.md):
 * - OMP_WAIT_POLICY=passive: with the default spin-waiting, parallel regions
 *   on a busy machine ran up to 19x slower;
 * - OPENBLAS_CORETYPE: on a VM that hides its CPU model OpenBLAS falls back
 *   to pre-AVX2 kernels (sgemm 28-64 GFLOPS instead of ~300); we name the
 *   kernel set from what the CPU supports.
 * A variable the user set is never overridden; IT_NO_REEXEC=1 disables this. */
static void tune_runtime_env(char **argv)
{
    if (getenv("IT_NO_REEXEC")) return;
    int changed = 0;
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        changed = 1;
    }
    const char *core = openblas_get_corename();
    if (!getenv("OPENBLAS_CORETYPE") && core && blas_core_is_fallback(core)) {
        __builtin_cpu_init();
        const char *pick = __builtin_cpu_supports("avx512f")  ? "SkylakeX"
                           : __builtin_cpu_supports("avx2") ? "Haswell"
                                                            : NULL;
        if (pick) {
            setenv("OPENBLAS_CORETYPE", pick, 1);
            changed = 1;
        }
    }
    if (!changed) return;
    setenv("IT_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc): carry on with the environment we have */
}

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
    tune_runtime_env(argv);
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
        printf("intenttuner %s (OpenBLAS kernels %s, %d threads, OMP_WAIT_POLICY=%s)\n",
               IT_VERSION, openblas_get_corename(), it_threads_get(),
               getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "default");
        return 0;
    }
    it_threads_set(0);
    for (size_t i = 0; g_commands[i].name; i++)
        if (strcmp(argv[1], g_commands[i].name) == 0) return g_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "intenttuner: error: unknown command '%s'\n(run 'intenttuner --help' for the list)\n",
            argv[1]);
    return 2;
}
