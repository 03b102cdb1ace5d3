/* lora_step.c: one LoRA training step (forward, MSE, backward, clip 1.0,
 * AdamW) of a Stable Diffusion UNet, ours against diffusers + PEFT on
 * PyTorch CPU with the same thread count (tools/bench_lora_step.py),
 * kohya's default targets, gradient checkpointing off and on.
 *
 * Modes (each runs in its own child process, so peak RSS is per mode):
 *   toy, toy-ckpt     the tiny SD 1.x UNet of tests/fixtures/sd/sd1
 *                     (channels 8/16), batch 8, 16x16 latents, rank 4
 *   sd15, sd15-ckpt   SD 1.5's UNet (tests/fixtures/sd/sd15_manifest
 *                     config, random weights), batch 1, 64x64 latents,
 *                     rank 16 (tens of seconds per step per thread)
 *   sd15-train        what `intenttuner train` holds at 512 px with
 *                     --gradient-checkpointing: SD 1.5 UNet + CLIP-L text
 *                     encoder + VAE resident (random weights), one VAE encode
 *                     of a 512x512 image (the latent cache's work per image),
 *                     then steps with the text states computed each step (no
 *                     PyTorch counterpart: its rows compare the UNet step only)
 * Correctness first: the toy parity is tests/test_train_parity.c (losses
 * within 1.1e-7 of diffusers) and checkpointing's equality is
 * train_checkpointing_same_loss_and_grads; here both sides check a finite
 * loss, and the checkpointed run must give the plain run's loss (printed).
 * Prints the median step time of REPS steps after one warm-up, the
 * context's peak and the process's peak RSS.
 *
 * usage: lora_step [MODE|all|sd15-all] [REPS] (default: toy 5; REPS 0 = one
 * step without warm-up, for the slow SD 1.5 shape on a loaded machine)
 *   all = toy toy-ckpt sd15 sd15-ckpt sd15-train; sd15-all = the sd15 ones.
 *   IT_BENCH_OURS_ONLY=1 skips the PyTorch side. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/threads.h"
#include "diffusion/schedule.h"
#include "models/clip_text.h"
#include "models/sd_pipeline_load.h"
#include "models/unet.h"
#include "models/vae.h"
#include "tensor/autograd.h"
#include "tensor/optim.h"
#include "train/lora.h"
#include "train/train_step.h"

typedef struct mode {
    const char *name;
    int toy, ckpt, train;
} mode;

static const mode MODES[] = {
    {"toy", 1, 0, 0}, {"toy-ckpt", 1, 1, 0}, {"sd15", 0, 0, 0}, {"sd15-ckpt", 0, 1, 0}, {"sd15-train", 0, 1, 1},
};
#define N_MODES (sizeof MODES / sizeof MODES[0])

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Process CPU seconds: on a loaded machine, with one thread, closer to the
 * work done than wall time. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double max_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* Random weights, std 1/sqrt(fan_in), norms and biases small: speed and
 * memory do not depend on the values. Uniform with that std (normal draws
 * of SD 1.5's 860M weights took 55 s of the shared machine's CPU per
 * process, more than a step). */
static void randomise(it_params *ps, uint64_t seed)
{
    it_rng r;
    it_rng_init(&r, seed);
    for (size_t i = 0; i < it_params_count(ps); i++) {
        it_tensor *t = ps->items[i];
        int64_t fan = t->ndim > 1 ? t->n / t->shape[0] : 1;
        float mean = t->ndim > 1 ? 0.0f : 1.0f, std = t->ndim > 1 ? 1.0f / sqrtf((float)fan) : 0.01f;
        float a = std * sqrtf(3.0f), *p = it_f32(t);
        it_rng_uniform(&r, p, (size_t)t->n);
        for (int64_t k = 0; k < t->n; k++) p[k] = mean + a * (2.0f * p[k] - 1.0f);
    }
}

typedef struct bench_env {
    it_unet u;
    it_clip_text te;      /* sd15-train */
    it_vae vae;           /* sd15-train */
    it_lora l;
    it_optim opt;
    it_optim_param *ps;
    it_schedule sc;
    it_ctx ctx;
    float *lat, *noise, *text;
    int32_t *ids;
} bench_env;

static it_status load_models(it_err *err, bench_env *e, const mode *m)
{
    const char *dir = m->toy ? "tests/fixtures/sd/sd1" : "tests/fixtures/sd/sd15_manifest";
    char p[256];
    it_unet_config uc;
    snprintf(p, sizeof p, "%s/unet/config.json", dir);
    IT_TRY(it_unet_config_load(err, &uc, p));
    IT_TRY(it_unet_init(err, &e->u, &uc, 0));
    if (m->toy) /* the fixture's weights, as the PyTorch side loads them */
        IT_TRY(it_sd_load_params_file(err, &e->u.params, "tests/fixtures/sd/sd1/unet/diffusion_pytorch_model.safetensors", ""));
    else
        randomise(&e->u.params, 1);
    if (!m->train) return IT_OK;
    it_clip_text_config tc;
    it_vae_config vc;
    IT_TRY(it_clip_text_config_load(err, &tc, "tests/fixtures/sd/sd15_manifest/text_encoder/config.json"));
    IT_TRY(it_clip_text_init(err, &e->te, &tc, "text_model.", NULL, 0));
    randomise(&e->te.params, 2);
    IT_TRY(it_vae_config_load(err, &vc, "tests/fixtures/sd/sd15_manifest/vae/config.json"));
    IT_TRY(it_vae_init(err, &e->vae, &vc, 0));
    randomise(&e->vae.params, 3);
    return IT_OK;
}

/* The trainer's once-per-image work: a 512x512 image through the VAE encoder
 * (posterior mean x scaling factor) into lat; the context keeps its blocks
 * for the steps, as the trainer's does. */
static it_status vae_encode_512(it_err *err, bench_env *e)
{
    size_t n = (size_t)3 * 512 * 512;
    float *img = it_malloc(n * sizeof(float));
    if (!img) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    it_rng r;
    it_rng_init(&r, 4);
    it_rng_uniform(&r, img, n);
    int was = it_autograd_set_enabled(&e->ctx, 0);
    double t0 = it_time_now();
    it_tensor *x = it_tensor_from(&e->ctx, img, IT_SHAPE(1, 3, 512, 512));
    it_tensor *z = it_vae_sample(&e->ctx, &e->vae, it_vae_encode(&e->ctx, &e->vae, x), 0, 1, 1);
    it_autograd_set_enabled(&e->ctx, was);
    it_free(img);
    if (!z) return it_ctx_status(&e->ctx, err);
    memcpy(e->lat, z->data, (size_t)z->n * sizeof(float));
    printf("sd15-train: VAE encode 512x512 %.1f s, context peak %.0f MB\n", it_time_now() - t0,
           e->ctx.peak / 1048576.0);
    it_ctx_reset(&e->ctx);
    return IT_OK;
}

static it_status setup(it_err *err, bench_env *e, const mode *m, int B, int hw, int rank)
{
    IT_TRY(load_models(err, e, m));
    it_lora_opts lo;
    it_lora_opts_init(&lo);
    lo.rank = rank, lo.alpha = (float)rank, lo.trainable = 1;
    IT_TRY(it_lora_create(err, &e->l, &e->u.params, NULL, &lo, 1));
    it_lora_attach(&e->l);
    e->u.checkpoint = m->ckpt;
    e->ps = it_malloc(2 * e->l.n * sizeof *e->ps);
    if (!e->ps) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    it_lora_params(&e->l, e->ps, 2 * e->l.n);
    it_optim_config oc = it_optim_adamw_defaults(1e-4);
    IT_TRY(it_optim_init(err, &e->opt, &oc, e->ps, 2 * e->l.n));
    it_schedule_config scc;
    it_schedule_config_sd(&scc);
    IT_TRY(it_schedule_init(err, &e->sc, &scc));
    size_t nl = (size_t)B * 4 * hw * hw, nt = (size_t)B * 77 * e->u.cfg.cross_dim;
    e->lat = it_malloc(nl * 4), e->noise = it_malloc(nl * 4), e->text = it_malloc(nt * 4);
    e->ids = it_calloc((size_t)B * 77, sizeof(int32_t));
    if (!e->lat || !e->noise || !e->text || !e->ids) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    it_rng r;
    it_rng_init(&r, 2);
    it_rng_normal(&r, e->lat, nl, 0, 1);
    it_rng_normal(&r, e->text, nt, 0, 1);
    for (int i = 0; i < B * 77; i++) e->ids[i] = i % 77 < 6 ? 300 + i % 77 : 49407;
    it_ctx_init(&e->ctx, 0);
    if (m->train) IT_TRY(vae_encode_512(err, e));
    return IT_OK;
}

static void teardown(bench_env *e)
{
    it_ctx_free(&e->ctx);
    it_optim_free(&e->opt);
    it_free(e->ps), it_free(e->lat), it_free(e->noise), it_free(e->text), it_free(e->ids);
    it_lora_free(&e->l);
    it_unet_free(&e->u);
    it_clip_text_free(&e->te);
    it_vae_free(&e->vae);
    it_schedule_free(&e->sc);
}

/* One step i: noise and timesteps from (3, i), text states (sd15-train: the
 * frozen encoder's, recomputed as the trainer does), forward, backward,
 * clip, AdamW. */
static it_status one_step(it_err *err, bench_env *e, const mode *m, int i, int B, int hw, double *loss)
{
    int ts[8];
    it_train_draw_noise(3, i, 0, B, 4, hw, hw, 0, 0, 1000, e->noise, ts);
    it_ctx_reset(&e->ctx);
    it_train_batch b = {.batch = B, .c = 4, .h = hw, .w = hw, .t_len = 77, .t_dim = e->u.cfg.cross_dim,
                        .latents = e->lat, .text = e->text, .noise = e->noise, .timesteps = ts};
    if (m->train) IT_TRY(it_train_text_states(err, &e->ctx, &e->te, e->ids, B, 77, 0, &b.text_states));
    it_train_loss_opts o = {0, IT_PREDICT_EPSILON, 1.0f};
    IT_TRY(it_train_step_loss(err, &e->ctx, &e->u, &e->sc, &b, &o, loss));
    it_optim_clip_grad_norm(&e->opt, 1.0);
    it_optim_step(&e->opt, 1e-4);
    it_optim_zero_grad(&e->opt);
    return IT_OK;
}

/* Ours for one mode, then the PyTorch side in its own process. */
static int bench(const mode *m, int reps)
{
    it_err err;
    int B = m->toy ? 8 : 1, hw = m->toy ? 16 : 64, rank = m->toy ? 4 : 16;
    bench_env e;
    memset(&e, 0, sizeof e);
    if (setup(&err, &e, m, B, hw, rank)) goto fail;
    double times[64], cpu[64], loss = 0, loss0 = NAN;
    int warm = reps > 0, n = reps > 0 ? reps : 1; /* REPS 0: one step, timed, no warm-up */
    for (int i = 0; i < n + warm; i++) {
        double t0 = it_time_now(), c0 = cpu_now();
        if (one_step(&err, &e, m, i, B, hw, &loss)) goto fail;
        if (i == 0) loss0 = loss;
        if (i >= warm) times[i - warm] = (it_time_now() - t0) * 1e3, cpu[i - warm] = (cpu_now() - c0) * 1e3;
    }
    qsort(times, (size_t)n, sizeof times[0], cmp_d);
    qsort(cpu, (size_t)n, sizeof cpu[0], cmp_d);
    printf("%-10s ours: %zu LoRA modules, first loss %.6f finite %d, median step %.1f ms (CPU %.1f ms), "
           "ctx peak %.0f MB, max RSS %.0f MB (threads %d)\n",
           m->name, e.l.n, loss0, isfinite(loss), times[n / 2], cpu[n / 2], e.ctx.peak / 1048576.0,
           max_rss_mb(), it_threads_get());
    fflush(stdout);
    teardown(&e);
    const char *py = getenv("IT_PYTHON");
    if (!py) py = "tools/.venv/bin/python";
    if (m->train || getenv("IT_BENCH_OURS_ONLY")) return 0;
    if (access(py, X_OK)) {
        printf("reference skipped (no %s)\n", py);
    } else {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "'%s' tools/bench_lora_step.py %s %d %d %s", py, m->toy ? "toy" : "sd15",
                 it_threads_get(), reps, m->ckpt ? "ckpt" : "");
        if (system(cmd)) printf("reference failed\n");
    }
    return 0;
fail:
    fprintf(stderr, "lora_step %s: %s\n", m->name, err.msg);
    return 1;
}

/* Each mode in a child: ru_maxrss is per process. */
static int run_child(const mode *m, int reps)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return bench(m, reps);
    if (pid == 0) {
        int rc = bench(m, reps);
        fflush(stdout); /* _exit does not flush */
        _exit(rc);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "toy";
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (reps < 0 || reps > 64) reps = 5;
    int rc = 0, any = 0;
    for (size_t i = 0; i < N_MODES; i++) {
        const mode *m = &MODES[i];
        if (!strcmp(which, "all") || !strcmp(which, m->name) || (!strcmp(which, "sd15-all") && !m->toy)) {
            rc |= run_child(m, reps);
            any = 1;
        }
    }
    if (!any) {
        fprintf(stderr, "usage: lora_step [toy|toy-ckpt|sd15|sd15-ckpt|sd15-train|all|sd15-all] [REPS]\n");
        return 2;
    }
    return rc;
}
