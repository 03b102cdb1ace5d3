/* test_pretrain_cli.c: `intenttuner toy pretrain|quality` as processes
 * ($IT_BIN): a tiny VAE run stopped by --stop-after and resumed, an
 * interim export with --export-only, `toy quality vae --json`, and one-line
 * errors with exit code 2 for bad options and 1 for missing models. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"
#include "toy/pretrain.h"

static int run_bin(it_test_ctx *t, const char *args, char *out, size_t n)
{
    /* One thread: the tiny model gains nothing from a team (and make test
     * sets OMP_WAIT_POLICY=passive: busy-waiting teams on a loaded machine
     * cost 20x). */
    char a[8192];
    snprintf(a, sizeof a, "%s --threads 1", args);
    it_test_cli_io io = {.out = out, .out_n = n};
    return it_test_cli(t, &io, a);
}

#define TINY                                                                                         \
    "'{\"block_out_channels\": [8, 8, 8, 8], \"layers_per_block\": 1, \"norm_num_groups\": 4,"     \
    " \"_toy_train_crop\": 32, \"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\"," \
    " \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"], \"up_block_types\": [\"UpDecoderBlock2D\","   \
    " \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}'"

IT_TEST(pretrain_cli_errors)
{
    static const struct {
        const char *args;
        int rc;
        const char *msg;
    } cases[] = {
        {"toy pretrain", 2, "error"},
        {"toy pretrain nosuch --out X", 2, "unknown component 'nosuch' (expected "},
        {"toy pretrain vae --batch 9999", 2, "--batch must be in 1..4096"},
        {"toy pretrain vae --time-limit -5", 2, "--time-limit must be >= 0"},
        {"toy pretrain vae --seed 1000003", 2, "--eval-seed must differ"},
        {"toy pretrain vae --export-only", 2, "--export-only needs --resume"},
        {"toy pretrain all --config x.json", 2, "cannot apply to all"},
        {"toy pretrain vae --config '{\"block_out_channels\": [8,' --run-dir RUN", 1, "--config:1:"},
        {"toy quality nosuch", 2, "unknown component 'nosuch'"},
        {"toy quality vae --model-dir /nonexistent/toy --run-dir RUN", 1, "/nonexistent/toy/vae/config.json"},
    };
    char out[8192], args[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* RUN: a fresh folder under the test's tmpdir, never the repository. */
        const char *r = strstr(cases[i].args, "RUN");
        if (r) snprintf(args, sizeof args, "%.*s%s", (int)(r - cases[i].args), cases[i].args, it_test_tmp(t, "run"));
        else snprintf(args, sizeof args, "%s", cases[i].args);
        int rc = run_bin(t, args, out, sizeof out);
        if (rc != cases[i].rc) it_test_fail(t, __FILE__, __LINE__, "'%s': exit %d, expected %d: %s", args, rc, cases[i].rc, out);
        IT_CHECK_CONTAINS(out, cases[i].msg);
    }
}

IT_TEST(pretrain_cli_resume_export_quality)
{
    char out[16384], args[4096];
    const char *o = it_test_tmp(t, "out");
    char run[600];
    snprintf(run, sizeof run, "%s", it_test_tmp(t, "run"));
    snprintf(args, sizeof args, "toy pretrain vae --out %s --run-dir %s --config " TINY
             " --steps 6 --batch 2 --eval-n 2 --eval-every 3 --stop-after 3", o, run);
    IT_REQUIRE(run_bin(t, args, out, sizeof out) == 0);
    IT_CHECK_CONTAINS(out, "stopped at step 3 of 6 (stop_after); continue with --resume");
    /* Again without --resume: refused, the checkpoint is kept. */
    snprintf(args, sizeof args, "toy pretrain vae --out %s --run-dir %s --config " TINY " --steps 6 --batch 2", o, run);
    IT_CHECK(run_bin(t, args, out, sizeof out) == 2);
    IT_CHECK_CONTAINS(out, "holds a checkpoint (step 3): pass --resume");
    /* Interim export of the checkpoint, then quality on it. */
    snprintf(args, sizeof args, "toy pretrain vae --out %s --run-dir %s --config " TINY
             " --steps 6 --batch 2 --eval-n 2 --resume --export-only", o, run);
    IT_REQUIRE(run_bin(t, args, out, sizeof out) == 0);
    json_t *rec = json_load_file(it_test_tmp(t, "out/pretrain/vae.json"), 0, NULL);
    IT_CHECK(rec && json_is_false(json_object_get(rec, "finished")) &&
             json_integer_value(json_object_get(rec, "steps")) == 3);
    json_decref(rec);
    snprintf(args, sizeof args, "toy quality vae --model-dir %s --run-dir %s --eval-n 2 --json", o, run);
    IT_REQUIRE(run_bin(t, args, out, sizeof out) == 0);
    json_t *q = json_loads(out, 0, NULL);
    IT_CHECK(q && json_is_real(json_object_get(json_object_get(q, "vae"), "psnr_db")));
    json_decref(q);
    /* Resume to the end: finished, exported, recorded. */
    snprintf(args, sizeof args, "toy pretrain vae --out %s --run-dir %s --config " TINY
             " --steps 6 --batch 2 --eval-n 2 --eval-every 3 --resume", o, run);
    IT_REQUIRE(run_bin(t, args, out, sizeof out) == 0);
    IT_CHECK(it_pretrain_is_finished(o, "vae"));
    uint8_t *log = NULL;
    size_t n = 0;
    char lp[700];
    snprintf(lp, sizeof lp, "%s/vae/train.jsonl", run);
    IT_REQUIRE(it_file_read(NULL, &log, &n, lp, 1 << 20) == IT_OK);
    IT_CHECK_CONTAINS((char *)log, "\"event\":\"eval\",\"step\":3");
    IT_CHECK_CONTAINS((char *)log, "\"event\":\"resume\",\"step\":3");
    IT_CHECK_CONTAINS((char *)log, "\"step\":6,\"loss\"");
    it_free(log);
}
