/* sd_unet.c: Stable Diffusion 1.5's UNet forward (batch 2 for classifier-free
 * guidance, 64x64 latents, 77-token context) and VAE decode at 512x512, ours
 * against diffusers on PyTorch CPU with the same thread count.
 *
 * Weights: random, generated here from the counter RNG (normal with std
 * 1/sqrt(fan_in), norms 1, biases small), rounded to f16 values and written
 * to a temporary f16 safetensors file in diffusers' names, so the PyTorch
 * side (tools/bench_sd.py) loads exactly the same model. Correctness first:
 * both sides run a small input (UNet at 16x16 latents, VAE from 8x8) and the
 * Python side reports the normalised error against our outputs. Then a
 * warm-up and REPS timed runs each; medians of wall and process CPU time.
 * Our weights are freed before PyTorch starts, so the two never hold 3.4 GB
 * each at once.
 *
 * usage: sd_unet [REPS [ref-only]] (default 3; 0 = one run, no warm-up;
 * ref-only: skip our timings, run the check and PyTorch's). Prints "reference skipped" without
 * tools/.venv (or $IT_PYTHON). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/threads.h"
#include "models/unet.h"
#include "models/vae.h"
#include "tensor/autograd.h"
#include "tensor/dtype.h"
#include "tensor/safetensors.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(const it_err *err)
{
    fprintf(stderr, "sd_unet: %s\n", err->msg);
    exit(1);
}

/* Random weights like PyTorch's default scale, rounded to f16 values. */
static void init_weights(it_params *ps, uint64_t seed)
{
    for (size_t i = 0; i < ps->n; i++) {
        it_tensor *t = ps->items[i];
        float *d = t->data;
        size_t n = (size_t)t->n, len = strlen(t->name);
        int is_bias = len > 5 && !strcmp(t->name + len - 5, ".bias");
        int is_norm = t->ndim == 1 && !is_bias && strstr(t->name, "norm");
        if (is_norm) {
            for (size_t j = 0; j < n; j++) d[j] = 1.0f;
            continue;
        }
        it_rng r;
        it_rng_init(&r, seed + i);
        int64_t fan_in = 1;
        for (int k = 1; k < t->ndim; k++) fan_in *= t->shape[k];
        it_rng_normal(&r, d, n, 0.0f, is_bias ? 0.02f : 1.0f / sqrtf((float)fan_in));
        for (size_t j = 0; j < n; j++) d[j] = it_f16_to_f32(it_f32_to_f16(d[j]));
    }
}

static void save_params(const it_params *ps, const char *path)
{
    it_err err;
    it_safetensors_writer *w;
    if (it_safetensors_writer_new(&err, &w)) die(&err);
    for (size_t i = 0; i < ps->n; i++) {
        const it_tensor *t = ps->items[i];
        if (it_safetensors_writer_add_f32_as(&err, w, t->name, IT_DTYPE_F16, t->ndim, t->shape, t->data)) die(&err);
    }
    if (it_safetensors_writer_save(&err, w, path)) die(&err);
    it_safetensors_writer_free(w);
}

static float *randn(size_t n, uint64_t seed)
{
    float *p = it_malloc_aligned(n * sizeof(float));
    it_rng r;
    it_rng_init(&r, seed);
    it_rng_normal(&r, p, n, 0, 1);
    return p;
}

typedef struct timing {
    double ms, cpu_ms, peak_mb;
} timing;

typedef it_tensor *(*step_fn)(it_ctx *ctx, void *u);

/* reps == 0: one timed run without a warm-up (for a loaded machine). */
static timing time_it(it_ctx *ctx, step_fn fn, void *u, int reps)
{
    double w[32], c[32];
    it_err err;
    it_ctx_reset(ctx);
    if (reps > 0 && !fn(ctx, u) && it_ctx_status(ctx, &err)) die(&err); /* warm-up */
    if (reps == 0) reps = 1;
    ctx->peak = 0;
    for (int i = 0; i < reps; i++) {
        it_ctx_reset(ctx);
        double t0 = it_time_now(), c0 = cpu_now();
        if (!fn(ctx, u) && it_ctx_status(ctx, &err)) die(&err);
        w[i] = (it_time_now() - t0) * 1e3;
        c[i] = (cpu_now() - c0) * 1e3;
    }
    qsort(w, (size_t)reps, sizeof w[0], cmp_d);
    qsort(c, (size_t)reps, sizeof c[0], cmp_d);
    return (timing){w[reps / 2], c[reps / 2], (double)ctx->peak / (1 << 20)};
}

/* ---------------------------------------------------------------- steps */

typedef struct unet_run {
    it_unet *m;
    float *x, *ctx_d;
    int64_t B, h;
} unet_run;

static it_tensor *unet_step(it_ctx *ctx, void *u)
{
    unet_run *r = u;
    it_tensor *x = it_tensor_from(ctx, r->x, IT_SHAPE(r->B, 4, r->h, r->h));
    it_tensor *t = it_tensor_new(ctx, IT_DTYPE_F32, IT_SHAPE(r->B));
    for (int64_t i = 0; t && i < r->B; i++) it_f32(t)[i] = 981.0f - 500.0f * (float)i;
    it_tensor *c = it_tensor_from(ctx, r->ctx_d, IT_SHAPE(r->B, 77, 768));
    return it_unet_forward(ctx, r->m, x, t, c);
}

typedef struct vae_run {
    it_vae *m;
    float *z;
    int64_t h;
} vae_run;

static it_tensor *vae_step(it_ctx *ctx, void *u)
{
    vae_run *r = u;
    return it_vae_decode(ctx, r->m, it_tensor_from(ctx, r->z, IT_SHAPE(1, 4, r->h, r->h)));
}

static void add_out(it_safetensors_writer *w, const char *name, const it_tensor *t)
{
    it_err err;
    if (it_safetensors_writer_add_f32_as(&err, w, name, IT_DTYPE_F32, t->ndim, t->shape, t->data)) die(&err);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 3;
    if (reps < 0 || reps > 32) reps = 3;
    int threads = it_threads_get();
    it_err err;
    char dir[] = "/tmp/it_bench_sd_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char unet_path[256], vae_path[256], check_path[256];
    snprintf(unet_path, sizeof unet_path, "%s/unet.safetensors", dir);
    snprintf(vae_path, sizeof vae_path, "%s/vae.safetensors", dir);
    snprintf(check_path, sizeof check_path, "%s/check.safetensors", dir);
    struct rusage ru;

    it_unet_config uc;
    it_unet_config_sd15(&uc);
    it_unet unet;
    if (it_unet_init(&err, &unet, &uc, 0)) die(&err);
    init_weights(&unet.params, 1000);
    save_params(&unet.params, unet_path);
    it_vae_config vc;
    it_vae_config_sd(&vc);
    it_vae vae;
    if (it_vae_init(&err, &vae, &vc, 0)) die(&err);
    init_weights(&vae.params, 5000);
    save_params(&vae.params, vae_path);

    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_autograd_set_enabled(&ctx, 0);
    unet_run ur = {&unet, randn(2 * 4 * 64 * 64, 1), randn(2 * 77 * 768, 2), 1, 16};
    vae_run vr = {&vae, randn(4 * 64 * 64, 3), 8};
    /* Correctness inputs/outputs for the reference. */
    it_safetensors_writer *cw;
    if (it_safetensors_writer_new(&err, &cw)) die(&err);
    it_tensor *ux = it_tensor_from(&ctx, ur.x, IT_SHAPE(1, 4, 16, 16));
    it_tensor *ut = it_tensor_new(&ctx, IT_DTYPE_F32, IT_SHAPE(1));
    it_f32(ut)[0] = 981.0f;
    add_out(cw, "unet.x", ux);
    add_out(cw, "unet.t", ut);
    add_out(cw, "unet.c", it_tensor_from(&ctx, ur.ctx_d, IT_SHAPE(1, 77, 768)));
    add_out(cw, "vae.z", it_tensor_from(&ctx, vr.z, IT_SHAPE(1, 4, 8, 8)));
    it_tensor *uo = unet_step(&ctx, &ur);
    if (!uo && it_ctx_status(&ctx, &err)) die(&err);
    add_out(cw, "unet.out", uo);
    it_tensor *vo = vae_step(&ctx, &vr);
    if (!vo && it_ctx_status(&ctx, &err)) die(&err);
    add_out(cw, "vae.out", vo);
    if (it_safetensors_writer_save(&err, cw, check_path)) die(&err);
    it_safetensors_writer_free(cw);

    ur.B = 2;
    ur.h = 64;
    vr.h = 64;
    /* "ref-only": the check and the PyTorch side only (ours was timed in
     * an earlier run; on a loaded 2-core machine one full run takes long). */
    int ref_only = argc > 2 && !strcmp(argv[2], "ref-only");
    timing tu = {0}, tv = {0};
    if (!ref_only) {
        tu = time_it(&ctx, unet_step, &ur, reps);
        tv = time_it(&ctx, vae_step, &vr, reps);
    }
    size_t unet_mb = it_params_numel(&unet.params) * 4 >> 20, vae_mb = it_params_numel(&vae.params) * 4 >> 20;
    getrusage(RUSAGE_SELF, &ru);
    double our_rss = ru.ru_maxrss / 1024.0;
    it_ctx_free(&ctx);
    it_unet_free(&unet);
    it_vae_free(&vae);
    it_free_aligned(ur.x), it_free_aligned(ur.ctx_d), it_free_aligned(vr.z);

    printf("sd_unet: SD 1.5 UNet (859.5 M parameters, f32) batch 2 at 64x64 latents + 77x768 context; "
           "VAE decode 64x64 latents -> 512x512; %d threads, %s %d\n", threads,
           reps ? "median of the runs after a warm-up:" : "one run, no warm-up:", reps ? reps : 1);
    printf("%-22s %10s %10s %14s\n", "", "wall ms", "cpu ms", "act. peak MB");
    printf("%-22s %10.0f %10.0f %14.0f   (weights %zu MB)\n", "ours unet", tu.ms, tu.cpu_ms, tu.peak_mb, unet_mb);
    printf("%-22s %10.0f %10.0f %14.0f   (weights %zu MB)\n", "ours vae decode", tv.ms, tv.cpu_ms, tv.peak_mb, vae_mb);
    printf("ours: max RSS %.0f MB\n", our_rss);
    fflush(stdout);

    const char *py = getenv("IT_PYTHON");
    if (!py) py = "tools/.venv/bin/python";
    if (access(py, X_OK)) {
        printf("reference skipped (no %s)\n", py);
    } else {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "'%s' tools/bench_sd.py '%s' '%s' '%s' %d %d", py, unet_path, vae_path, check_path,
                 threads, reps);
        if (system(cmd)) printf("reference failed\n");
    }
    unlink(unet_path);
    unlink(vae_path);
    unlink(check_path);
    rmdir(dir);
    return 0;
}
