/* test_cli_args.c: option parsing, table-driven. */
#include "cli/args.h"
#include "base/log.h"
#include <stdlib.h>
#include <sys/wait.h>

#include "test.h"

typedef struct parsed {
    int flag;
    const char *str;
    long num;
    double real;
    it_strlist list;
} parsed;

static parsed g_p;
static const it_opt g_opts[] = {
    {"flag", 'f', IT_OPT_FLAG, &g_p.flag, NULL, "a flag"},
    {"str", 0, IT_OPT_STR, &g_p.str, "S", "a string"},
    {"num", 'n', IT_OPT_INT, &g_p.num, "N", "an integer"},
    {"real", 0, IT_OPT_FLOAT, &g_p.real, "X", "a number"},
    {"item", 0, IT_OPT_LIST, &g_p.list, "I", "repeatable"},
    {NULL, 0, 0, NULL, NULL, NULL},
};
static const it_cmd_spec g_spec = {"test [options] A [B]", "A test command.", g_opts, 1, 2, NULL};

typedef struct args_case {
    const char *argv[8];
    int rc;
    const char *err;   /* substring of the message, or NULL */
    int n_pos;
} args_case;

IT_TEST(cli_args_table) {
    static const args_case cases[] = {
        {{"cmd", "a", NULL}, IT_OK, NULL, 1},
        {{"cmd", "a", "b", NULL}, IT_OK, NULL, 2},
        {{"cmd", "a", "b", "c", NULL}, IT_ERR_ARG, "unexpected argument 'c'", 3},
        {{"cmd", NULL}, IT_ERR_ARG, "missing argument", 0},
        {{"cmd", "--bogus", "a", NULL}, IT_ERR_ARG, "unknown option '--bogus'", 0},
        {{"cmd", "-x", "a", NULL}, IT_ERR_ARG, "unknown option '-x'", 0},
        {{"cmd", "--num", "12x", "a", NULL}, IT_ERR_ARG, "--num expects an integer, got '12x'", 0},
        {{"cmd", "--real=abc", "a", NULL}, IT_ERR_ARG, "--real expects a number", 0},
        {{"cmd", "a", "--str", NULL}, IT_ERR_ARG, "--str needs a value", 1},
        {{"cmd", "--flag=1", "a", NULL}, IT_ERR_ARG, "--flag takes no value", 0},
        {{"cmd", "--threads", "0", "a", NULL}, IT_OK, NULL, 1},
        {{"cmd", "--threads", "-3", "a", NULL}, IT_ERR_ARG, "--threads must be between", 1},
        {{"cmd", "--log-level", "loud", "a", NULL}, IT_ERR_ARG, "unknown level 'loud'", 1},
        {{"cmd", "--", "--flag", NULL}, IT_OK, NULL, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&g_p, 0, sizeof g_p);
        memset(&it_common, 0, sizeof it_common);
        int argc = 0;
        while (cases[i].argv[argc]) argc++;
        const char *pos[8];
        int n_pos = 0;
        it_err e;
        it_err_clear(&e);
        int rc = it_args_parse(&e, &g_spec, argc, (char **)cases[i].argv, pos, &n_pos);
        if (rc != cases[i].rc) it_test_fail(t, __FILE__, __LINE__, "case %zu: rc %d, want %d (%s)", i, rc, cases[i].rc, e.msg);
        if (cases[i].err) IT_CHECK_CONTAINS(e.msg, cases[i].err);
        if (rc == IT_OK) IT_CHECK_INT(n_pos, cases[i].n_pos);
    }
    memset(&it_common, 0, sizeof it_common);
    it_log_set_level(IT_LOG_ERROR);
}

IT_TEST(cli_args_values) {
    memset(&g_p, 0, sizeof g_p);
    const char *argv[] = {"cmd", "-f", "--str", "hello", "-n", "7", "--real=2.5", "--item", "x",
                          "pos", "--item=y"};
    const char *pos[16];
    int n_pos;
    it_err e;
    it_err_clear(&e);
    IT_REQUIRE_OK(it_args_parse(&e, &g_spec, 11, (char **)argv, pos, &n_pos), &e);
    IT_CHECK_INT(g_p.flag, 1);
    IT_CHECK_STR(g_p.str, "hello");
    IT_CHECK_INT(g_p.num, 7);
    IT_CHECK_NEAR(g_p.real, 2.5, 0);
    IT_CHECK_INT(g_p.list.n, 2);
    IT_CHECK_STR(g_p.list.items[1], "y");
    IT_CHECK_INT(n_pos, 1);
    IT_CHECK_STR(pos[0], "pos");
}

IT_TEST(cli_binary_help_version_unknown) {
    const char *bin = getenv("IT_BIN");
    IT_REQUIRE(bin != NULL);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --version > %s 2>&1", bin, it_test_tmp(t, "v.txt"));
    IT_CHECK_INT(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s --help > /dev/null 2>&1", bin);
    IT_CHECK_INT(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s no-such-command > /dev/null 2>&1", bin);
    int rc = system(cmd);
    IT_CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
}

/* The binary re-executes itself once with OMP_WAIT_POLICY=passive unless
 * the user chose a policy (src/cli/main.c explains why). */
IT_TEST(cli_binary_sets_wait_policy_once) {
    const char *bin = getenv("IT_BIN");
    IT_REQUIRE(bin != NULL);
    const char *out = it_test_tmp(t, "v.txt");
    char cmd[1024], buf[256] = {0};
    snprintf(cmd, sizeof cmd, "env -u OMP_WAIT_POLICY -u IT_NO_REEXEC %s --version > %s", bin, out);
    IT_REQUIRE(system(cmd) == 0);
    FILE *f = fopen(out, "r");
    IT_REQUIRE(f != NULL);
    if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
    fclose(f);
    IT_CHECK_CONTAINS(buf, "OMP_WAIT_POLICY=passive");
    snprintf(cmd, sizeof cmd, "env -u IT_NO_REEXEC OMP_WAIT_POLICY=active %s --version > %s", bin, out);
    IT_REQUIRE(system(cmd) == 0);
    f = fopen(out, "r");
    IT_REQUIRE(f != NULL);
    if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
    fclose(f);
    IT_CHECK_CONTAINS(buf, "OMP_WAIT_POLICY=active");
}
