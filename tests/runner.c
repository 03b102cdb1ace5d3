/* runner.c: runs the registered tests, optionally filtered by substrings.
 *
 * usage: test_runner [-l] [SUBSTRING...]
 * Every test gets a fresh temporary directory (removed when it passes), and
 * the runner checks that no bytes allocated through it_malloc leak from a
 * passing test. Output ends with "N passed, N failed". */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "test.h"

#undef IT_TEST
#define IT_TEST(n) void it_test_##n(it_test_ctx *t);
#include "tests.inc"
#undef IT_TEST

typedef struct test_entry {
    const char *name;
    void (*fn)(it_test_ctx *);
} test_entry;

#define IT_TEST(n) {#n, it_test_##n},
static const test_entry g_tests[] = {
#include "tests.inc"
    {NULL, NULL},
};

static char g_path_buf[8][1024];
static int g_path_i;

void it_test_fail(it_test_ctx *t, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "    %s:%d: ", file, line);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    t->failures++;
}

static const char *join(const char *a, const char *b)
{
    char *buf = g_path_buf[g_path_i++ % 8];
    snprintf(buf, sizeof g_path_buf[0], "%s/%s", a, b);
    return buf;
}

const char *it_test_tmp(it_test_ctx *t, const char *name) { return join(t->tmpdir, name); }
const char *it_test_fixture(it_test_ctx *t, const char *name) { return join(t->fixtures, name); }

const char *it_test_write_tmp(it_test_ctx *t, const char *name, const void *data, size_t n)
{
    const char *p = it_test_tmp(t, name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n)) it_test_fail(t, __FILE__, __LINE__, "cannot write %s", p);
    if (f) fclose(f);
    return p;
}

/* Reads up to n - 1 bytes of path into buf, NUL-terminated (empty when the
 * file is missing). */
static void read_into(char *buf, size_t n, const char *path)
{
    if (!buf || !n) return;
    FILE *f = fopen(path, "rb");
    size_t k = f ? fread(buf, 1, n - 1, f) : 0;
    buf[k] = 0;
    if (f) fclose(f);
}

int it_test_cli(it_test_ctx *t, const it_test_cli_io *io, const char *args)
{
    static const it_test_cli_io none = {0};
    if (!io) io = &none;
    const char *bin = getenv("IT_BIN");
    if (io->out && io->out_n) io->out[0] = 0;
    if (io->err && io->err_n) io->err[0] = 0;
    if (!bin) {
        it_test_fail(t, __FILE__, __LINE__, "IT_BIN is not set (run the tests through make test)");
        return -1;
    }
    char abs[4096], outp[1024], errp[1024];
    if (!io->dir || !realpath(bin, abs)) snprintf(abs, sizeof abs, "%s", bin);
    snprintf(outp, sizeof outp, "%s/%s", t->tmpdir, io->out_name ? io->out_name : "cli.out");
    snprintf(errp, sizeof errp, "%s/cli.err", t->tmpdir);
    size_t n = strlen(args) + strlen(abs) + 3 * sizeof outp + (io->dir ? strlen(io->dir) : 0) + 64;
    char *cmd = malloc(n);
    if (!cmd) return -1;
    int k = io->dir ? snprintf(cmd, n, "cd '%s' && ", io->dir) : 0;
    if (io->err) snprintf(cmd + k, n - (size_t)k, "'%s' %s >'%s' 2>'%s'", abs, args, outp, errp);
    else snprintf(cmd + k, n - (size_t)k, "'%s' %s >'%s' 2>&1", abs, args, outp);
    int st = system(cmd);
    free(cmd);
    read_into(io->out, io->out_n, outp);
    read_into(io->err, io->err_n, errp);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

double it_test_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

double it_test_max_rel_diff(const float *a, const float *b, size_t n, double floor)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / fmax(fabs((double)b[i]), floor);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

static int matches(const char *name, int argc, char **argv)
{
    int any = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue;
        any = 1;
        if (strstr(name, argv[i])) return 1;
    }
    return !any;
}

int main(int argc, char **argv)
{
    int list = argc > 1 && strcmp(argv[1], "-l") == 0;
    const char *fixtures = getenv("IT_FIXTURES");
    if (!fixtures) fixtures = "tests/fixtures";
    it_log_set_level(IT_LOG_ERROR);
    setvbuf(stdout, NULL, _IOLBF, 0);
    int passed = 0, failed = 0;
    double t_all = it_time_now();
    for (const test_entry *e = g_tests; e->name; e++) {
        if (!matches(e->name, argc, argv)) continue;
        if (list) {
            printf("%s\n", e->name);
            continue;
        }
        it_test_ctx t = {.name = e->name, .fixtures = fixtures};
        snprintf(t.tmpdir, sizeof t.tmpdir, "/tmp/it_test_XXXXXX");
        if (!mkdtemp(t.tmpdir)) {
            perror("mkdtemp");
            return 1;
        }
        size_t live0 = it_mem_live_bytes();
        double t0 = it_time_now();
        e->fn(&t);
        double dt = it_time_now() - t0;
        it_mem_fail_after(-1, 0);
        size_t live1 = it_mem_live_bytes();
        if (t.failures == 0 && live1 != live0) {
            printf("    leak: %zu bytes allocated through it_malloc not freed\n", live1 - live0);
            t.failures++;
        }
        if (t.failures == 0) {
            passed++;
            printf("PASS %s (%.2fs)\n", e->name, dt);
            char cmd[600];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", t.tmpdir);
            if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", t.tmpdir);
        } else {
            failed++;
            printf("FAIL %s (%.2fs) [files kept in %s]\n", e->name, dt, t.tmpdir);
        }
    }
    if (list) return 0;
    printf("\ntotal %.1fs\n%d passed, %d failed\n", it_time_now() - t_all, passed, failed);
    return failed ? 1 : 0;
}
