/* `intenttuner lora inspect|merge` and `generate --lora` as processes:
 * a merged model draws the same image as the base model with the LoRA
 * hooked; scale 0 draws the base image; bad specs are clear errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"

/* Runs "$IT_BIN ARGS" through the shell, output into OUT (may be NULL). */
static int run_bin(it_test_ctx *t, const char *args, char *out, size_t n)
{
    it_test_cli_io io = {.out = out, .out_n = n};
    return it_test_cli(t, &io, args);
}

static int same_file(const char *a, const char *b)
{
    uint8_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = !it_file_read(NULL, &x, &nx, a, 1 << 24) && !it_file_read(NULL, &y, &ny, b, 1 << 24) && nx == ny &&
               !memcmp(x, y, nx);
    it_free(x);
    it_free(y);
    return same;
}

IT_TEST(lora_cli_inspect_merge_generate)
{
    char model[1024], lora[1024], out[4096], args[4096], d[1024];
    snprintf(model, sizeof model, "%s", it_test_fixture(t, "sd/sd1"));
    snprintf(lora, sizeof lora, "%s", it_test_fixture(t, "lora/ours_trained.safetensors"));
    snprintf(d, sizeof d, "%s", t->tmpdir);
    snprintf(args, sizeof args, "lora inspect %s", lora);
    IT_CHECK_INT(run_bin(t, args, out, sizeof out), 0);
    IT_CHECK_CONTAINS(out, "79 UNet modules, 12 text-encoder modules (18 3x3 conv)");
    IT_CHECK_CONTAINS(out, "ss_network_dim = 16");
    const char *gen = "generate --prompt 'zxq thing' --steps 3 --seed 2 -W 16 -H 16 -q";
    snprintf(args, sizeof args, "%s --model %s -o %s/base.png", gen, model, d);
    IT_CHECK_INT(run_bin(t, args, NULL, 0), 0);
    snprintf(args, sizeof args, "%s --model %s -o %s/zero.png --lora %s:0", gen, model, d, lora);
    IT_CHECK_INT(run_bin(t, args, NULL, 0), 0);
    snprintf(args, sizeof args, "%s --model %s -o %s/hook.png --lora %s:0.8", gen, model, d, lora);
    IT_CHECK_INT(run_bin(t, args, NULL, 0), 0);
    snprintf(args, sizeof args, "lora merge --model %s --lora %s:0.8 --out %s/merged -q", model, lora, d);
    IT_CHECK_INT(run_bin(t, args, out, sizeof out), 0);
    snprintf(args, sizeof args, "%s --model %s/merged -o %s/merged.png", gen, d, d);
    IT_CHECK_INT(run_bin(t, args, out, sizeof out), 0);
    char a[1100], b[1100];
    snprintf(a, sizeof a, "%s/base.png", d);
    snprintf(b, sizeof b, "%s/zero.png", d);
    IT_CHECK(same_file(a, b));
    snprintf(b, sizeof b, "%s/hook.png", d);
    IT_CHECK(!same_file(a, b));
    snprintf(a, sizeof a, "%s/merged.png", d);
    IT_CHECK(same_file(a, b));
    snprintf(args, sizeof args, "%s --model %s -o %s/x.png --lora %s/missing.safetensors:1", gen, model, d, d);
    IT_CHECK_INT(run_bin(t, args, out, sizeof out), 1);
    IT_CHECK_CONTAINS(out, "missing.safetensors");
    snprintf(args, sizeof args, "%s --model %s -o %s/x.png --lora %s:500", gen, model, d, lora);
    IT_CHECK_INT(run_bin(t, args, out, sizeof out), 2); /* a bad argument */
    IT_CHECK_CONTAINS(out, "scale must be in -100..100");
}
