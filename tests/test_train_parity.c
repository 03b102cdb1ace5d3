/* Training parity against diffusers + PEFT (tools/gen_lora_fixtures.py):
 * same tiny SD 1.x model, images, initial LoRA, noise and timesteps; our
 * losses for 20 AdamW steps and the final LoRA must match, and diffusers'
 * load_lora_weights of the final kohya file must give our UNet output. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "models/sd_pipeline_load.h"
#include "tensor/autograd.h"
#include "tensor/optim.h"
#include "tensor/safetensors.h"
#include "test.h"
#include "train/lora.h"
#include "train/lora_file.h"
#include "train/train_step.h"

/* Loads tensor name of f as f32 (or i32 when int_out) into a fresh it_malloc buffer. */
static void *io_load(const it_safetensors *f, const char *name, size_t *n, int as_int)
{
    const it_safetensors_tensor *st = it_safetensors_find(f, name);
    if (!st) return NULL;
    float *x = it_malloc(st->numel * sizeof(float));
    if (!x || it_safetensors_load_f32(NULL, f, st, x, st->numel)) {
        it_free(x);
        return NULL;
    }
    if (n) *n = st->numel;
    if (as_int) {
        int *ii = (int *)x;
        for (size_t i = 0; i < st->numel; i++) ii[i] = (int)x[i];
    }
    return x;
}

/* max |a - b| / max |b| */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(b[i]));
    return it_test_max_abs_diff(a, b, n) / (mx > 0 ? mx : 1);
}

typedef struct parity_env {
    it_sd_model m;
    it_safetensors *io;
    float *latents, *text;
    it_schedule sched;
} parity_env;

static void env_free(parity_env *e)
{
    it_free(e->latents);
    it_free(e->text);
    it_safetensors_close(e->io);
    it_sd_free(&e->m);
    it_schedule_free(&e->sched);
}

/* Our VAE latents and text states of the fixture's images and ids. */
static int env_encode(it_test_ctx *t, parity_env *e, it_ctx *ctx)
{
    it_err err;
    it_autograd_set_enabled(ctx, 0);
    float *img = io_load(e->io, "images", NULL, 0);
    int32_t *ids = io_load(e->io, "ids", NULL, 1);
    IT_CHECK(img && ids);
    if (!img || !ids) return -1;
    it_tensor *x = it_tensor_from(ctx, img, IT_SHAPE(4, 3, 16, 16));
    it_tensor *z = it_vae_sample(ctx, &e->m.vae, it_vae_encode(ctx, &e->m.vae, x), 0, 1, 1);
    it_tensor *idt = it_tensor_new(ctx, IT_DTYPE_I32, IT_SHAPE(4, 77));
    if (idt) memcpy(idt->data, ids, 4 * 77 * sizeof(int32_t));
    it_clip_text_out to;
    it_status s = it_clip_text_forward(&err, ctx, &e->m.text, idt, 0, 0, &to);
    it_free(img);
    it_free(ids);
    IT_CHECK_OK(s, &err);
    if (s || !z) return -1;
    e->latents = it_malloc(z->n * sizeof(float));
    e->text = it_malloc(to.hidden->n * sizeof(float));
    memcpy(e->latents, z->data, z->n * sizeof(float));
    memcpy(e->text, to.hidden->data, to.hidden->n * sizeof(float));
    size_t nl = 0;
    float *ref = io_load(e->io, "latents", &nl, 0);
    IT_CHECK(ref && nl == (size_t)z->n);
    if (ref) IT_CHECK(it_test_max_rel_diff(e->latents, ref, nl, 1e-3) < 1e-4);
    it_free(ref);
    it_ctx_reset(ctx);
    it_autograd_set_enabled(ctx, 1);
    return 0;
}

static int env_init(it_test_ctx *t, parity_env *e, it_ctx *ctx)
{
    it_err err;
    memset(e, 0, sizeof *e);
    it_sd_load_opts o;
    it_sd_load_opts_init(&o);
    IT_CHECK_OK(it_sd_load(&err, &e->m, it_test_fixture(t, "sd/sd1"), &o), &err);
    IT_CHECK_OK(it_safetensors_open(&err, &e->io, it_test_fixture(t, "lora/train_io.safetensors")), &err);
    it_schedule_config sc;
    it_schedule_config_sd(&sc);
    IT_CHECK_OK(it_schedule_init(&err, &e->sched, &sc), &err);
    if (t->failures) return -1;
    return env_encode(t, e, ctx);
}

IT_TEST(train_parity_diffusers_20_steps)
{
    it_err err;
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    parity_env e;
    if (env_init(t, &e, &ctx)) goto done;
    it_lora l;
    IT_REQUIRE_OK(it_lora_load(&err, &l, it_test_fixture(t, "lora/lora_init.safetensors"),
                               &e.m.unet.params, NULL, 1), &err);
    IT_CHECK_INT(l.n, 48); /* 4 transformer blocks x 12 modules */
    it_lora_attach(&l);
    it_optim_param ps[128];
    size_t np = it_lora_params(&l, ps, 128);
    it_optim opt;
    it_optim_config oc = it_optim_adamw_defaults(1e-3);
    oc.weight_decay = 1e-2;
    IT_REQUIRE_OK(it_optim_init(&err, &opt, &oc, ps, np), &err);
    float *noise = io_load(e.io, "noise", NULL, 0);
    int *ts = io_load(e.io, "timesteps", NULL, 1);
    float *ref_loss = io_load(e.io, "losses", NULL, 0);
    IT_REQUIRE(noise && ts && ref_loss);
    double max_rel = 0;
    for (int s = 0; s < 20; s++) {
        float lat[2 * 256], txt[2 * 77 * 32];
        for (int i = 0; i < 2; i++) {
            int k = (2 * s + i) % 4;
            memcpy(lat + i * 256, e.latents + k * 256, 256 * sizeof(float));
            memcpy(txt + i * 77 * 32, e.text + k * 77 * 32, 77 * 32 * sizeof(float));
        }
        it_train_batch b = {.batch = 2, .c = 4, .h = 8, .w = 8, .t_len = 77, .t_dim = 32, .latents = lat,
                            .text = txt, .noise = noise + s * 512, .timesteps = ts + s * 2};
        it_train_loss_opts lo = {0, IT_PREDICT_EPSILON, 1.0f};
        double loss = 0;
        it_ctx_reset(&ctx);
        IT_REQUIRE_OK(it_train_step_loss(&err, &ctx, &e.m.unet, &e.sched, &b, &lo, &loss), &err);
        it_optim_clip_grad_norm(&opt, 1.0);
        it_optim_step(&opt, 1e-3);
        it_optim_zero_grad(&opt);
        double rel = fabs(loss - ref_loss[s]) / fabs(ref_loss[s]);
        if (rel > max_rel) max_rel = rel;
    }
    printf("    loss %.6f -> %.6f, max relative loss difference vs diffusers %.2e\n", ref_loss[0],
           ref_loss[19], max_rel);
    IT_CHECK(max_rel < 1e-5);
    it_lora fin;
    IT_REQUIRE_OK(it_lora_load(&err, &fin, it_test_fixture(t, "lora/lora_final.safetensors"),
                               &e.m.unet.params, NULL, 0), &err);
    IT_CHECK_INT(fin.n_floats, l.n_floats);
    double wmax = 0, dmax = 0;
    for (size_t i = 0; i < fin.n_floats; i++) {
        wmax = fmax(wmax, fabs(fin.data[i]));
        dmax = fmax(dmax, fabs(fin.data[i] - l.data[i]));
    }
    printf("    final LoRA weights: max |ours - diffusers| = %.2e (max |w| %.3f)\n", dmax, wmax);
    IT_CHECK(dmax / wmax < 1e-4);
    /* diffusers' load_lora_weights of the final file vs ours. */
    it_lora_free(&l);
    it_lora_attach(&fin);
    it_ctx_reset(&ctx);
    it_autograd_set_enabled(&ctx, 0);
    const char *names[3] = {"probe_sample", "probe_t", "probe_ctx"};
    float *pv[3];
    for (int i = 0; i < 3; i++) pv[i] = io_load(e.io, names[i], NULL, 0);
    size_t nref = 0;
    float *ref = io_load(e.io, "unet_out", &nref, 0);
    it_tensor *y = it_unet_forward(&ctx, &e.m.unet, it_tensor_from(&ctx, pv[0], IT_SHAPE(1, 4, 8, 8)),
                                   it_tensor_from(&ctx, pv[1], IT_SHAPE(1)),
                                   it_tensor_from(&ctx, pv[2], IT_SHAPE(1, 77, 32)));
    IT_CHECK(y && ref && nref == (size_t)y->n);
    if (y && ref) {
        double mx = 0;
        for (size_t i = 0; i < nref; i++) mx = fmax(mx, fabs(ref[i]));
        double r = it_test_max_abs_diff(it_f32(y), ref, nref) / mx;
        printf("    UNet output with the final LoRA vs diffusers load_lora_weights: "
               "max|diff|/max|ref| %.2e\n", r);
        IT_CHECK(r < 1e-4);
    }
    for (int i = 0; i < 3; i++) it_free(pv[i]);
    it_free(ref);
    it_free(noise);
    it_free(ts);
    it_free(ref_loss);
    it_optim_free(&opt);
    it_lora_free(&fin);
done:
    env_free(&e);
    it_ctx_free(&ctx);
}

/* A LoRA written by `intenttuner train` (LoCon + text encoder, f32, kohya
 * format) loads in diffusers (load_lora_weights, tools/gen_lora_fixtures.py
 * --ours) with all its modules and gives our UNet and text encoder outputs. */
IT_TEST(train_our_lora_loads_in_diffusers)
{
    it_err err;
    it_sd_model m;
    it_sd_load_opts so;
    it_sd_load_opts_init(&so);
    so.components = IT_SD_UNET | IT_SD_TEXT;
    IT_REQUIRE_OK(it_sd_load(&err, &m, it_test_fixture(t, "sd/sd1"), &so), &err);
    it_safetensors *io = NULL;
    IT_REQUIRE_OK(it_safetensors_open(&err, &io, it_test_fixture(t, "lora/ours_io.safetensors")), &err);
    it_lora l;
    IT_REQUIRE_OK(it_lora_load(&err, &l, it_test_fixture(t, "lora/ours_trained.safetensors"),
                               &m.unet.params, &m.text.params, 0), &err);
    float *nm = io_load(io, "n_modules", NULL, 0), *nt = io_load(io, "n_te_modules", NULL, 0);
    IT_CHECK(nm && (size_t)nm[0] == l.n);
    IT_CHECK(nt && (size_t)nt[0] == l.n - it_lora_count(&l, 1) && nt[0] == 12);
    it_lora_attach(&l);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_autograd_set_enabled(&ctx, 0);
    float *s = io_load(io, "probe_sample", NULL, 0), *tt = io_load(io, "probe_t", NULL, 0);
    float *c = io_load(io, "probe_ctx", NULL, 0);
    size_t nref = 0;
    float *ref = io_load(io, "unet_out", &nref, 0);
    IT_REQUIRE(s && tt && c && ref);
    it_tensor *y = it_unet_forward(&ctx, &m.unet, it_tensor_from(&ctx, s, IT_SHAPE(1, 4, 8, 8)),
                                   it_tensor_from(&ctx, tt, IT_SHAPE(1)),
                                   it_tensor_from(&ctx, c, IT_SHAPE(1, 77, 32)));
    IT_REQUIRE(y && (size_t)y->n == nref);
    double mx = 0;
    for (size_t i = 0; i < nref; i++) mx = fmax(mx, fabs(ref[i]));
    double r = it_test_max_abs_diff(it_f32(y), ref, nref) / mx;
    printf("    %zu modules; UNet output, ours vs diffusers with our file: %.2e\n", l.n, r);
    IT_CHECK(r < 1e-5);
    int32_t *ids = io_load(io, "probe_ids", NULL, 1);
    float *tref = io_load(io, "te_out", &nref, 0);
    it_tensor *to = NULL;
    IT_REQUIRE(ids && tref);
    IT_REQUIRE_OK(it_train_text_states(&err, &ctx, &m.text, ids, 1, 77, 0, &to), &err);
    IT_REQUIRE((size_t)to->n == nref);
    r = rel_diff(it_f32(to), tref, nref);
    printf("    text encoder output, ours vs diffusers with our file: %.2e\n", r);
    IT_CHECK(r < 1e-5);
    it_free(ids), it_free(tref), it_free(nt);
    it_free(s), it_free(tt), it_free(c), it_free(ref), it_free(nm);
    it_lora_free(&l);
    it_ctx_free(&ctx);
    it_safetensors_close(io);
    it_sd_free(&m);
}

/* Batch k of the fixture's plan: items (2s, 2s+1) mod 4, their latents and ids. */
static void batch_of(const parity_env *e, const int32_t *ids, int s, float *lat, int32_t *bids)
{
    for (int i = 0; i < 2; i++) {
        int k = (2 * s + i) % 4;
        memcpy(lat + i * 256, e->latents + k * 256, 256 * sizeof(float));
        memcpy(bids + i * 77, ids + k * 77, 77 * sizeof(int32_t));
    }
}


/* UNet + text-encoder LoRA against diffusers + PEFT (te_* fixtures): the
 * text states go through the LoRA'd encoder with gradients every step, one
 * AdamW per component (UNet 1e-3, text encoder 5e-3), clipping over both;
 * then diffusers' load_lora_weights of the final file must give our text
 * encoder output. */
IT_TEST(train_text_encoder_parity_diffusers)
{
    it_err err;
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    parity_env e;
    it_safetensors *tio = NULL;
    if (env_init(t, &e, &ctx)) goto done;
    IT_REQUIRE_OK(it_safetensors_open(&err, &tio, it_test_fixture(t, "lora/te_io.safetensors")), &err);
    it_lora l;
    IT_REQUIRE_OK(it_lora_load(&err, &l, it_test_fixture(t, "lora/te_init.safetensors"), &e.m.unet.params,
                               &e.m.text.params, 1), &err);
    size_t nu = it_lora_count(&l, 1);
    IT_CHECK_INT(nu, 48);
    IT_CHECK_INT(l.n - nu, 12); /* 2 CLIP layers x q/k/v/out_proj, fc1, fc2 */
    it_lora_attach(&l);
    it_optim_param ps[160];
    size_t np = it_lora_params(&l, ps, 160);
    /* `all` only clips (torch clips over both groups together); ou/ot step */
    it_optim all, ou, ot;
    it_optim_config cu = it_optim_adamw_defaults(1e-3), ct = it_optim_adamw_defaults(5e-3);
    cu.weight_decay = ct.weight_decay = 1e-2;
    IT_REQUIRE_OK(it_optim_init(&err, &all, &cu, ps, np), &err);
    IT_REQUIRE_OK(it_optim_init(&err, &ou, &cu, ps, 2 * nu), &err);
    IT_REQUIRE_OK(it_optim_init(&err, &ot, &ct, ps + 2 * nu, np - 2 * nu), &err);
    float *noise = io_load(e.io, "noise", NULL, 0);
    int *ts = io_load(e.io, "timesteps", NULL, 1);
    int32_t *ids = io_load(e.io, "ids", NULL, 1);
    size_t n_steps = 0;
    float *ref_loss = io_load(tio, "losses", &n_steps, 0);
    IT_REQUIRE(noise && ts && ids && ref_loss && n_steps >= 3);
    double max_rel = 0;
    for (int s = 0; s < (int)n_steps; s++) {
        float lat[2 * 256];
        int32_t bids[2 * 77];
        batch_of(&e, ids, s, lat, bids);
        it_ctx_reset(&ctx);
        it_tensor *states = NULL;
        IT_REQUIRE_OK(it_train_text_states(&err, &ctx, &e.m.text, bids, 2, 77, 1, &states), &err);
        IT_CHECK(states && states->requires_grad);
        it_train_batch b = {.batch = 2, .c = 4, .h = 8, .w = 8, .t_len = 77, .t_dim = 32, .latents = lat,
                            .noise = noise + s * 512, .timesteps = ts + s * 2, .text_states = states};
        it_train_loss_opts lo = {0, IT_PREDICT_EPSILON, 1.0f};
        double loss = 0;
        IT_REQUIRE_OK(it_train_step_loss(&err, &ctx, &e.m.unet, &e.sched, &b, &lo, &loss), &err);
        it_optim_clip_grad_norm(&all, 1.0);
        it_optim_step(&ou, 1e-3);
        it_optim_step(&ot, 5e-3);
        it_optim_zero_grad(&all);
        max_rel = fmax(max_rel, fabs(loss - ref_loss[s]) / fabs(ref_loss[s]));
    }
    printf("    %zu steps, loss %.6f -> %.6f, max relative loss difference vs diffusers %.2e\n", n_steps,
           ref_loss[0], ref_loss[n_steps - 1], max_rel);
    IT_CHECK(max_rel < 1e-5);
    it_lora fin;
    IT_REQUIRE_OK(it_lora_load(&err, &fin, it_test_fixture(t, "lora/te_final.safetensors"), &e.m.unet.params,
                               &e.m.text.params, 0), &err);
    IT_REQUIRE(fin.n_floats == l.n_floats);
    size_t t0 = 0; /* first text-encoder float */
    for (size_t i = 0; i < nu; i++) t0 += (size_t)(l.mods[i].down.n + l.mods[i].up.n);
    double du = rel_diff(l.data, fin.data, t0), dt = rel_diff(l.data + t0, fin.data + t0, l.n_floats - t0);
    printf("    final LoRA weights vs diffusers: UNet %.2e, text encoder %.2e (max|diff|/max|w|)\n", du, dt);
    IT_CHECK(du < 1e-4 && dt < 1e-4);
    /* diffusers' load_lora_weights of te_final vs ours: text encoder output */
    it_lora_free(&l);
    it_lora_attach(&fin);
    it_ctx_reset(&ctx);
    int32_t *pids = io_load(tio, "probe_ids", NULL, 1);
    size_t nref = 0;
    float *ref = io_load(tio, "te_out", &nref, 0);
    IT_REQUIRE(pids && ref);
    it_tensor *out = NULL;
    IT_REQUIRE_OK(it_train_text_states(&err, &ctx, &e.m.text, pids, 2, 77, 0, &out), &err);
    IT_REQUIRE((size_t)out->n == nref);
    double r = rel_diff(it_f32(out), ref, nref);
    printf("    text encoder output with the final LoRA vs diffusers load_lora_weights: %.2e\n", r);
    IT_CHECK(r < 1e-5);
    it_free(pids), it_free(ref), it_free(noise), it_free(ts), it_free(ids), it_free(ref_loss);
    it_optim_free(&all), it_optim_free(&ou), it_optim_free(&ot);
    it_lora_free(&fin);
done:
    it_safetensors_close(tio);
    env_free(&e);
    it_ctx_free(&ctx);
}

/* Gradient checkpointing changes memory, not results: one step of UNet +
 * text-encoder LoRA with LoCon and LoRA dropout (checkpointed blocks replay
 * the dropout stream), off, on, and on with every conv / linear / attention
 * result memoised for the recomputation (the checkpoint memo, autograd.h:
 * at SD 1.5 size it takes the 3x3 convs and long attentions; the tiny model
 * has none that long, so memo_min_k 1 forces it), gives the same loss and
 * bit-identical gradients. */
IT_TEST(train_checkpointing_same_loss_and_grads)
{
    it_err err;
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    parity_env e;
    if (env_init(t, &e, &ctx)) goto done;
    it_lora l;
    it_lora_opts lo;
    it_lora_opts_init(&lo);
    lo.rank = 4, lo.conv_rank = 2, lo.dropout = 0.25f, lo.unet = lo.text = 1, lo.trainable = 1;
    IT_REQUIRE_OK(it_lora_create(&err, &l, &e.m.unet.params, &e.m.text.params, &lo, 5), &err);
    /* non-zero up weights, so every gradient (down included) is non-trivial */
    it_rng rng;
    it_rng_init(&rng, 8);
    for (size_t i = 0; i < l.n; i++) it_rng_normal(&rng, it_f32(&l.mods[i].up), (size_t)l.mods[i].up.n, 0, 0.05f);
    it_lora_attach(&l);
    float *noise = io_load(e.io, "noise", NULL, 0);
    int *ts = io_load(e.io, "timesteps", NULL, 1);
    int32_t *ids = io_load(e.io, "ids", NULL, 1);
    float *grad[3] = {it_malloc(l.n_floats * sizeof(float)), it_malloc(l.n_floats * sizeof(float)),
                      it_malloc(l.n_floats * sizeof(float))};
    IT_REQUIRE(noise && ts && ids && grad[0] && grad[1] && grad[2]);
    double loss[3] = {0, 0, 0};
    size_t peak[3] = {0, 0, 0};
    float lat[2 * 256];
    int32_t bids[2 * 77];
    batch_of(&e, ids, 1, lat, bids);
    for (int ck = 0; ck < 3; ck++) {
        e.m.unet.checkpoint = e.m.text.checkpoint = ck > 0;
        ctx.memo_min_k = ck == 2 ? 1 : 0;
        it_ctx_reset(&ctx);
        it_ctx_reset_peak(&ctx);
        ctx.training = 1, ctx.seed = 99, ctx.rng_offset = 0;
        memset(l.grad, 0, l.n_floats * sizeof(float));
        it_tensor *states = NULL;
        IT_REQUIRE_OK(it_train_text_states(&err, &ctx, &e.m.text, bids, 2, 77, 1, &states), &err);
        it_train_batch b = {.batch = 2, .c = 4, .h = 8, .w = 8, .t_len = 77, .t_dim = 32, .latents = lat,
                            .noise = noise + 512, .timesteps = ts + 2, .text_states = states};
        it_train_loss_opts o = {0, IT_PREDICT_EPSILON, 1.0f};
        IT_REQUIRE_OK(it_train_step_loss(&err, &ctx, &e.m.unet, &e.sched, &b, &o, &loss[ck]), &err);
        peak[ck] = ctx.peak;
        memcpy(grad[ck], l.grad, l.n_floats * sizeof(float));
    }
    size_t zero = 0;
    for (size_t i = 0; i < l.n_floats; i++) zero += grad[0][i] == 0;
    double g = it_test_max_abs_diff(grad[1], grad[0], l.n_floats);
    double gm = it_test_max_abs_diff(grad[2], grad[0], l.n_floats);
    printf("    %zu modules (dropout 0.25): loss %.9g / %.9g / %.9g (off / on / on + memo), gradients "
           "max|diff| %.2e / %.2e (%zu of %zu exactly zero); step context peak %.2f -> %.2f MB (memo %.2f MB)\n",
           l.n, loss[0], loss[1], loss[2], g, gm, zero, l.n_floats, peak[0] / 1048576.0, peak[1] / 1048576.0,
           peak[2] / 1048576.0);
    IT_CHECK(loss[0] == loss[1] && loss[0] == loss[2]);
    IT_CHECK(g == 0 && gm == 0);
    IT_CHECK(zero < l.n_floats / 4); /* dropout zeroes some down rows, not most */
    IT_CHECK(peak[1] < peak[0]);
    IT_CHECK(peak[2] > peak[1]); /* the memo was used: its copies count */
    ctx.memo_min_k = 0;
    it_free(grad[0]), it_free(grad[1]), it_free(grad[2]), it_free(noise), it_free(ts), it_free(ids);
    it_lora_free(&l);
done:
    env_free(&e);
    it_ctx_free(&ctx);
}
