/* test.h: the test framework: registration, checks, fixtures, temp dirs.
 *
 * A test is defined in any tests/test_*.c file by a line starting with
 *     IT_TEST(unique_name) {
 * The build greps these lines into build/gen/tests.inc, so adding a test
 * touches no shared file. Checks record a failure with file:line and carry
 * on; IT_REQUIRE* return from the test at once. The runner prints one line
 * per test and ends with "N passed, N failed". */
#ifndef IT_TEST_H
#define IT_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/status.h"

typedef struct it_test_ctx {
    const char *name;
    int failures;
    char tmpdir[512];    /* fresh empty directory for this test */
    const char *fixtures; /* path of tests/fixtures */
} it_test_ctx;

#define IT_TEST(name) void it_test_##name(it_test_ctx *t)

void it_test_fail(it_test_ctx *t, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define IT_CHECK(cond)                                                                   \
    do {                                                                                 \
        if (!(cond)) it_test_fail(t, __FILE__, __LINE__, "check failed: %s", #cond);     \
    } while (0)

#define IT_REQUIRE(cond)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            it_test_fail(t, __FILE__, __LINE__, "requirement failed: %s", #cond);        \
            return;                                                                      \
        }                                                                                \
    } while (0)

#define IT_CHECK_INT(a, b)                                                               \
    do {                                                                                 \
        long long it_a_ = (long long)(a), it_b_ = (long long)(b);                        \
        if (it_a_ != it_b_)                                                              \
            it_test_fail(t, __FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, it_a_, it_b_); \
    } while (0)

#define IT_CHECK_STR(a, b)                                                               \
    do {                                                                                 \
        const char *it_a_ = (a), *it_b_ = (b);                                           \
        if (!it_a_ || !it_b_ || strcmp(it_a_, it_b_) != 0)                               \
            it_test_fail(t, __FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,     \
                         it_a_ ? it_a_ : "(null)", it_b_ ? it_b_ : "(null)");            \
    } while (0)

/* Substring check, for error messages. */
#define IT_CHECK_CONTAINS(hay, needle)                                                   \
    do {                                                                                 \
        const char *it_h_ = (hay), *it_n_ = (needle);                                    \
        if (!it_h_ || !strstr(it_h_, it_n_))                                             \
            it_test_fail(t, __FILE__, __LINE__, "\"%s\" does not contain \"%s\"",         \
                         it_h_ ? it_h_ : "(null)", it_n_);                               \
    } while (0)

#define IT_CHECK_NEAR(a, b, tol)                                                         \
    do {                                                                                 \
        double it_a_ = (double)(a), it_b_ = (double)(b);                                 \
        if (!(fabs(it_a_ - it_b_) <= (tol)))                                             \
            it_test_fail(t, __FILE__, __LINE__, "%s ~= %s: %.9g vs %.9g (tol %g)", #a, #b, \
                         it_a_, it_b_, (double)(tol));                                   \
    } while (0)

/* Status check that prints the error message when it fails. */
#define IT_CHECK_OK(expr, errp)                                                          \
    do {                                                                                 \
        it_status it_s_ = (expr);                                                        \
        if (it_s_ != IT_OK)                                                              \
            it_test_fail(t, __FILE__, __LINE__, "%s -> %d (%s)", #expr, (int)it_s_,      \
                         it_test_errmsg(errp));                                     \
    } while (0)

#define IT_REQUIRE_OK(expr, errp)                                                        \
    do {                                                                                 \
        it_status it_s_ = (expr);                                                        \
        if (it_s_ != IT_OK) {                                                            \
            it_test_fail(t, __FILE__, __LINE__, "%s -> %d (%s)", #expr, (int)it_s_,      \
                         it_test_errmsg(errp));                                     \
            return;                                                                      \
        }                                                                                \
    } while (0)

static inline const char *it_test_errmsg(const it_err *e) { return e ? e->msg : ""; }

/* Joins t->tmpdir / t->fixtures with a name into a static-per-call buffer. */
const char *it_test_tmp(it_test_ctx *t, const char *name);
const char *it_test_fixture(it_test_ctx *t, const char *name);

/* Writes bytes to a file under tmpdir and returns its path. */
const char *it_test_write_tmp(it_test_ctx *t, const char *name, const void *data, size_t n);

/* What it_test_cli captures; a zeroed struct (or NULL) = the defaults. */
typedef struct it_test_cli_io {
    const char *out_name; /* stdout's file under tmpdir, left for the test to read (default "cli.out") */
    char *out;            /* stdout read back, NUL-terminated, truncated to out_n - 1 bytes; NULL: not read */
    size_t out_n;
    char *err;            /* stderr read back (file "cli.err"); NULL: stderr goes into stdout's file */
    size_t err_n;
    const char *dir;      /* run from this directory (the binary's path is made absolute); NULL: here */
} it_test_cli_io;

/* Runs "$IT_BIN ARGS" through /bin/sh (ARGS is shell text: quote paths).
 * Returns the exit status, or -1 when IT_BIN is unset (the test fails:
 * run through make test), the shell could not start, or a signal killed it. */
int it_test_cli(it_test_ctx *t, const it_test_cli_io *io, const char *args);

/* Max |a-b| and max relative error helpers for float arrays. */
double it_test_max_abs_diff(const float *a, const float *b, size_t n);
double it_test_max_rel_diff(const float *a, const float *b, size_t n, double floor);

#endif
