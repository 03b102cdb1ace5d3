/* lora_step.c: one LoRA training step (forward, MSE, backward, AdamW) of a
 * Stable Diffusion UNet, ours against diffusers + PEFT on PyTorch CPU with
 * the same thread count (tools/bench_lora_step.py), kohya's default targets.
 *
 * Shapes:
 *   toy   the tiny SD 1.x UNet of tests/fixtures/sd/sd1 (channels 8/16),
 *         batch 8, 16x16 latents, rank 4
 *   sd15  SD 1.5's UNet (tests/fixtures/sd/sd15_manifest config, random
 *         weights), batch 1, 64x64 latents, rank 16 (minutes per step on 2
 *         cores; no gradient checkpointing on our side yet)
 * Correctness first: the toy parity is tests/test_train_parity.c (losses
 * within 1.1e-7 of diffusers); here both sides only check a finite loss.
 * Prints the median step time of REPS steps after one warm-up, and peak RSS.
 *
 * usage: lora_step [toy|sd15|all] [REPS] (default: toy 5) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/threads.h"
#include "diffusion/schedule.h"
#include "models/sd_pipeline_load.h"
#include "models/unet.h"
#include "tensor/autograd.h"
#include "tensor/optim.h"
#include "train/lora.h"
#include "train/train_step.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double max_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static int bench(const char *shape, int reps)
{
    it_err err;
    int toy = !strcmp(shape, "toy");
    int B = toy ? 8 : 1, hw = toy ? 16 : 64, rank = toy ? 4 : 16;
    it_unet u;
    it_unet_config uc;
    if (toy) {
        if (it_unet_config_load(&err, &uc, "tests/fixtures/sd/sd1/unet/config.json")) goto fail;
    } else if (it_unet_config_load(&err, &uc, "tests/fixtures/sd/sd15_manifest/unet/config.json")) {
        goto fail;
    }
    if (it_unet_init(&err, &u, &uc, 0)) goto fail;
    if (toy) { /* the fixture's weights, as the PyTorch side loads them */
        if (it_sd_load_params_file(&err, &u.params, "tests/fixtures/sd/sd1/unet/diffusion_pytorch_model.safetensors", ""))
            goto fail;
    } else {
        /* random weights, std 1/sqrt(fan_in) (speed does not depend on values) */
        it_rng r; /* SD 1.5 shape: random weights (speed does not depend on them) */
        it_rng_init(&r, 1);
        for (size_t i = 0; i < it_params_count(&u.params); i++) {
            it_tensor *t = u.params.items[i];
            int64_t fan = t->ndim > 1 ? t->n / t->shape[0] : 1;
            it_rng_normal(&r, it_f32(t), (size_t)t->n, t->ndim > 1 ? 0.0f : 1.0f, t->ndim > 1 ? 1.0f / sqrtf((float)fan) : 0.01f);
        }
    }
    it_lora_opts lo;
    it_lora_opts_init(&lo);
    lo.rank = rank, lo.alpha = (float)rank, lo.trainable = 1;
    it_lora l;
    if (it_lora_create(&err, &l, &u.params, NULL, &lo, 1)) goto fail;
    it_lora_attach(&l);
    it_optim_param *ps = malloc(2 * l.n * sizeof *ps);
    it_lora_params(&l, ps, 2 * l.n);
    it_optim opt;
    it_optim_config oc = it_optim_adamw_defaults(1e-4);
    if (it_optim_init(&err, &opt, &oc, ps, 2 * l.n)) goto fail;
    it_schedule sc;
    it_schedule_config scc;
    it_schedule_config_sd(&scc);
    it_schedule_init(&err, &sc, &scc);
    size_t nl = (size_t)B * 4 * hw * hw, nt = (size_t)B * 77 * uc.cross_dim;
    float *lat = malloc(nl * 4), *noise = malloc(nl * 4), *text = malloc(nt * 4);
    int ts[8];
    it_rng r;
    it_rng_init(&r, 2);
    it_rng_normal(&r, lat, nl, 0, 1);
    it_rng_normal(&r, text, nt, 0, 1);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    double times[64];
    double loss = 0;
    for (int i = 0; i <= reps; i++) {
        it_train_draw_noise(3, i, 0, B, 4, hw, hw, 0, 0, 1000, noise, ts);
        it_train_batch b = {.batch = B, .c = 4, .h = hw, .w = hw, .t_len = 77, .t_dim = uc.cross_dim,
                            .latents = lat, .text = text, .noise = noise, .timesteps = ts};
        it_train_loss_opts o = {0, IT_PREDICT_EPSILON, 1.0f};
        double t0 = it_time_now();
        it_ctx_reset(&ctx);
        if (it_train_step_loss(&err, &ctx, &u, &sc, &b, &o, &loss)) goto fail;
        it_optim_clip_grad_norm(&opt, 1.0);
        it_optim_step(&opt, 1e-4);
        it_optim_zero_grad(&opt);
        if (i > 0) times[i - 1] = (it_time_now() - t0) * 1e3;
    }
    qsort(times, (size_t)reps, sizeof times[0], cmp_d);
    printf("%-5s ours: %zu LoRA modules, loss %.4f finite %d, median step %.1f ms, ctx peak %.0f MB, max RSS %.0f MB\n",
           shape, l.n, loss, isfinite(loss), times[reps / 2], ctx.peak / 1048576.0, max_rss_mb());
    fflush(stdout);
    it_ctx_free(&ctx);
    it_optim_free(&opt);
    free(ps), free(lat), free(noise), free(text);
    it_lora_free(&l);
    it_unet_free(&u);
    it_schedule_free(&sc);
    const char *py = getenv("IT_PYTHON");
    if (!py) py = "tools/.venv/bin/python";
    if (access(py, X_OK)) {
        printf("reference skipped (no %s)\n", py);
    } else {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "'%s' tools/bench_lora_step.py %s %d %d", py, shape, it_threads_get(), reps);
        if (system(cmd)) printf("reference failed\n");
    }
    return 0;
fail:
    fprintf(stderr, "lora_step: %s\n", err.msg);
    return 1;
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "toy";
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (reps < 1 || reps > 64) reps = 5;
    int rc = 0;
    if (!strcmp(which, "toy") || !strcmp(which, "all")) rc |= bench("toy", reps);
    if (!strcmp(which, "sd15") || !strcmp(which, "all")) rc |= bench("sd15", reps);
    return rc;
}
