/* Training parity against diffusers + PEFT (tools/gen_lora_fixtures.py):
 * same tiny SD 1.x model, images, initial LoRA, noise and timesteps; our
 * losses for 20 AdamW steps and the final LoRA must match, and diffusers'
 * load_lora_weights of the final kohya file must give our UNet output. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
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
        it_train_batch b = {2, 4, 8, 8, 77, 32, lat, txt, noise + s * 512, ts + s * 2, NULL};
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

/* A LoRA written by `intenttuner train` (LoCon, f32, kohya format) loads in
 * diffusers (load_lora_weights, tools/gen_lora_fixtures.py --ours) with all
 * its modules and gives our UNet output. */
IT_TEST(train_our_lora_loads_in_diffusers)
{
    it_err err;
    it_sd_model m;
    it_sd_load_opts so;
    it_sd_load_opts_init(&so);
    so.components = IT_SD_UNET;
    IT_REQUIRE_OK(it_sd_load(&err, &m, it_test_fixture(t, "sd/sd1"), &so), &err);
    it_safetensors *io = NULL;
    IT_REQUIRE_OK(it_safetensors_open(&err, &io, it_test_fixture(t, "lora/ours_io.safetensors")), &err);
    it_lora l;
    IT_REQUIRE_OK(it_lora_load(&err, &l, it_test_fixture(t, "lora/ours_trained.safetensors"),
                               &m.unet.params, NULL, 0), &err);
    float *nm = io_load(io, "n_modules", NULL, 0);
    IT_CHECK(nm && (size_t)nm[0] == l.n);
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
    it_free(s), it_free(tt), it_free(c), it_free(ref), it_free(nm);
    it_lora_free(&l);
    it_ctx_free(&ctx);
    it_safetensors_close(io);
    it_sd_free(&m);
}
