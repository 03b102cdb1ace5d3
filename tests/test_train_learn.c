/* The trainer learns a concept, measurably and specifically.
 *
 * Base model: the tiny SD 1.x fixture's UNet (tests/fixtures/sd/sd1),
 * text encoder and tokenizer, with the toy world's trained VAE
 * (models/toy/vae, 8x, 4 latent channels: the fixture's random VAE maps
 * every colour to nearly the same latents, so no colour could be told
 * apart in latent space). The random UNet is first pretrained here, every
 * weight, 400 steps on 48 images of random colours captioned "a photo",
 * with v-prediction (the base folder's scheduler says so; the trainer and
 * the sampler follow it). Why: a LoRA on a purely random UNet spends itself
 * on the generic noise prediction (the previous version of this test: its
 * loss fell as much on control images and its samples did not move toward
 * the concept); and with epsilon prediction a global colour is nearly
 * invisible to the loss at the high noise levels where samples get their
 * colour (the reason for kohya's noise offset): with epsilon targets the
 * same LoRA moved samples by under 15 %.
 *
 * The concept: 6 orange images (mild per-pixel texture) captioned with the
 * trigger "zxq"; a LoRA trained by it_train_run (rank 8, lr 1e-2, 300
 * steps of 4). Measured against the base (multiplier 0):
 *   - the fixed-draw denoising loss on 4 held-out orange images (never
 *     trained on) falls, and on 4 blue images with the same caption rises:
 *     the LoRA learnt the colour, not a generic improvement;
 *   - fixed-seed samples (8, latents before the VAE) of the trigger prompt
 *     move toward the training latents' per-channel mean.
 * A prompt without the trigger moves as much (printed, not asserted: the
 * base never learnt to read this random text encoder, and there are no
 * regularisation images). The trainer's samples every 150 steps are
 * written and logged. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "diffusion/pipeline.h"
#include "image/image.h"
#include "models/sd_pipeline_load.h"
#include "tensor/autograd.h"
#include "tensor/optim.h"
#include "test.h"
#include "toy/pretrain.h"
#include "train/dataset.h"
#include "train/lora_file.h"
#include "train/train_step.h"
#include "train/trainer.h"

#define RES 64
#define LAT 8 /* the toy VAE is 8x */
#define NL (4 * LAT * LAT)
#define TRIGGER "zxq"
#define CONTROL_PROMPT "a photo of a dog"
#define BASE_CAPTION "a photo"

/* n images with +-24 of per-pixel noise (seeded), of colour rgb or, when
 * rgb is NULL, each of a random colour; captioned when caption is set. */
static void make_images(it_test_ctx *t, const char *dir, const char *stem, int n, const int *rgb, uint64_t seed,
                        const char *caption)
{
    it_err err;
    char p[1100];
    IT_CHECK_OK(it_mkdir_p(&err, dir), &err);
    it_rng r;
    it_rng_init(&r, seed);
    for (int i = 0; i < n; i++) {
        int col[3];
        float u[3];
        it_rng_uniform(&r, u, 3);
        for (int c = 0; c < 3; c++) col[c] = rgb ? rgb[c] : 16 + (int)(224 * u[c]);
        it_image img;
        IT_CHECK_OK(it_image_alloc(&err, &img, RES, RES, 3), &err);
        for (int k = 0; k < RES * RES; k++) {
            it_rng_uniform(&r, u, 3);
            for (int c = 0; c < 3; c++) {
                int v = col[c] + (int)(48 * u[c]) - 24;
                img.data[k * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
        snprintf(p, sizeof p, "%s/%s%02d.png", dir, stem, i);
        IT_CHECK_OK(it_image_save_png(&err, &img, p), &err);
        it_image_free(&img);
        if (caption) {
            snprintf(p, sizeof p, "%s/%s%02d.txt", dir, stem, i);
            IT_CHECK_OK(it_file_write_atomic(&err, p, caption, strlen(caption)), &err);
        }
    }
}

/* Latents (posterior mean x scaling) of every image of dir into *lat
 * (it_malloc'd, n x NL); returns n, 0 on failure. */
static size_t encode_dir(it_test_ctx *t, it_sd_model *m, const char *dir, float **lat)
{
    it_err err;
    it_dataset ds;
    *lat = NULL;
    if (it_dataset_open(&err, &ds, dir)) {
        it_test_fail(t, __FILE__, __LINE__, "%s", err.msg);
        return 0;
    }
    size_t n = ds.n;
    *lat = it_malloc(n * NL * sizeof(float));
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_autograd_set_enabled(&ctx, 0);
    static float img[3 * RES * RES];
    for (size_t i = 0; i < n && *lat; i++) {
        it_ctx_reset(&ctx);
        it_tensor *z = NULL;
        if (!it_dataset_image(&err, &ds, i, RES, 0, img))
            z = it_vae_sample(&ctx, &m->vae, it_vae_encode(&ctx, &m->vae, it_tensor_from(&ctx, img, IT_SHAPE(1, 3, RES, RES))), 0, 1, 1);
        if (!z) {
            it_test_fail(t, __FILE__, __LINE__, "encoding %s item %zu failed", dir, i);
            n = 0;
            break;
        }
        memcpy(*lat + i * NL, z->data, NL * sizeof(float));
    }
    it_ctx_free(&ctx);
    it_dataset_free(&ds);
    if (!n) it_free(*lat), *lat = NULL;
    return n;
}

static void channel_mean(const float *lat, size_t n, double mean[4])
{
    for (int c = 0; c < 4; c++) {
        double s = 0;
        for (size_t i = 0; i < n; i++)
            for (int k = 0; k < LAT * LAT; k++) s += lat[i * NL + c * LAT * LAT + k];
        mean[c] = s / (double)(n * LAT * LAT);
    }
}

static double dist4(const double a[4], const double b[4])
{
    double d = 0;
    for (int c = 0; c < 4; c++) d += (a[c] - b[c]) * (a[c] - b[c]);
    return sqrt(d);
}

/* Text states (77 x 32) of a caption through the frozen encoder. */
static int text_states(it_test_ctx *t, it_sd_model *m, const char *caption, float *out)
{
    it_err err;
    int32_t ids[77];
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_autograd_set_enabled(&ctx, 0);
    it_clip_text_out to = {0};
    it_tensor *idt = it_tensor_new(&ctx, IT_DTYPE_I32, IT_SHAPE(1, 77));
    int ok = idt && !it_clip_encode_padded(&err, m->tokenizer, ids, 77, NULL, caption, strlen(caption));
    if (ok) {
        memcpy(idt->data, ids, sizeof ids);
        ok = !it_clip_text_forward(&err, &ctx, &m->text, idt, 0, 0, &to);
    }
    if (ok) memcpy(out, to.hidden->data, 77 * 32 * sizeof(float));
    else it_test_fail(t, __FILE__, __LINE__, "text states of '%s' failed", caption);
    it_ctx_free(&ctx);
    return ok;
}

/* Pretrains every weight of the fixture UNet (model folder `raw`) on the
 * latents of `data` captioned BASE_CAPTION (steps of batch 8, AdamW 2e-3,
 * clip 1, noise and timesteps from (seed 5, step)), and writes it as
 * unet_file. */
static void pretrain_base(it_test_ctx *t, const char *raw, const char *data, const char *unet_file, int steps)
{
    it_err err;
    it_sd_model m;
    it_sd_load_opts so;
    it_sd_load_opts_init(&so);
    so.flags_unet = IT_MODEL_TRAINABLE;
    IT_REQUIRE_OK(it_sd_load(&err, &m, raw, &so), &err);
    float *lat = NULL, text[8 * 77 * 32], batch[8 * NL], noise[8 * NL];
    size_t n = encode_dir(t, &m, data, &lat);
    float *states = it_malloc((n ? n : 1) * 77 * 32 * sizeof(float));
    it_dataset ds;
    IT_REQUIRE_OK(it_dataset_open(&err, &ds, data), &err);
    for (size_t i = 0; i < n && i < ds.n && states; i++) text_states(t, &m, ds.items[i].caption, states + i * 77 * 32);
    it_dataset_free(&ds);
    it_params *ps = &m.unet.params;
    size_t np = it_params_count(ps);
    it_optim_param *op = it_malloc(np * sizeof *op);
    it_schedule sc;
    it_schedule_config scc;
    it_schedule_config_sd(&scc);
    it_optim opt = {0};
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    int ok = n >= 8 && op && states && !it_schedule_init(&err, &sc, &scc);
    if (ok) {
        for (size_t i = 0; i < np; i++) {
            it_tensor *w = ps->items[i];
            op[i] = (it_optim_param){w->name, it_f32(w), w->grad, (size_t)w->n, 0};
        }
        it_optim_config oc = it_optim_adamw_defaults(2e-3);
        ok = !it_optim_init(&err, &opt, &oc, op, np);
    }
    double first = 0, last = 0;
    for (int s = 0; ok && s < steps; s++) {
        int ts[8];
        for (int i = 0; i < 8; i++) { /* a fixed stride through the set: every image, in varying company */
            size_t k = (size_t)(s * 8 + i) * 7 % n;
            memcpy(batch + i * NL, lat + k * NL, NL * sizeof(float));
            memcpy(text + i * 77 * 32, states + k * 77 * 32, 77 * 32 * sizeof(float));
        }
        it_train_draw_noise(5, s, 0, 8, 4, LAT, LAT, 0, 0, 1000, noise, ts);
        it_ctx_reset(&ctx);
        it_train_batch b = {.batch = 8, .c = 4, .h = LAT, .w = LAT, .t_len = 77, .t_dim = 32, .latents = batch,
                            .text = text, .noise = noise, .timesteps = ts};
        it_train_loss_opts lo = {0, IT_PREDICT_V, 1.0f};
        double loss = 0;
        ok = !it_train_step_loss(&err, &ctx, &m.unet, &sc, &b, &lo, &loss);
        it_optim_clip_grad_norm(&opt, 1.0);
        it_optim_step(&opt, 2e-3);
        it_optim_zero_grad(&opt);
        if (s < 20) first += loss / 20;
        if (s >= steps - 20) last += loss / 20;
    }
    printf("    base pretraining: %d steps on %zu images, loss (mean of 20 steps) %.3f -> %.3f\n", steps, n, first,
           last);
    IT_CHECK(ok);
    IT_CHECK_OK(it_pretrain_export_params(&err, ps, unet_file, 0, NULL), &err);
    it_optim_free(&opt);
    it_schedule_free(&sc);
    it_ctx_free(&ctx);
    it_free(op), it_free(lat), it_free(states);
    it_sd_free(&m);
}

/* dir/NAME -> target for each part (absolute: symlinks resolve from dir). */
static void link_parts(it_test_ctx *t, const char *dir, const char *from, const char *const *parts, int n)
{
    char src[1100], dst[1100], cwd[900];
    IT_REQUIRE(getcwd(cwd, sizeof cwd));
    for (int i = 0; i < n; i++) {
        snprintf(src, sizeof src, "%s%s%s/%s", from[0] == '/' ? "" : cwd, from[0] == '/' ? "" : "/", from, parts[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, parts[i]);
        IT_CHECK(symlink(src, dst) == 0);
    }
}

/* raw: the fixture with the toy VAE; base: the same with the pretrained UNet. */
static void make_models(it_test_ctx *t, const char *raw, const char *base, const char *gen_data)
{
    it_err err;
    char unet[1100], file[1200];
    static const char *parts[] = {"text_encoder", "tokenizer", "model_index.json", "scheduler"};
    static const char *unet_part[] = {"unet"}, *vae_part[] = {"vae"}, *cfg_part[] = {"config.json"};
    IT_CHECK_OK(it_mkdir_p(&err, raw), &err);
    IT_CHECK_OK(it_mkdir_p(&err, base), &err);
    link_parts(t, raw, it_test_fixture(t, "sd/sd1"), parts, 4);
    link_parts(t, raw, it_test_fixture(t, "sd/sd1"), unet_part, 1);
    link_parts(t, raw, "models/toy", vae_part, 1);
    link_parts(t, base, it_test_fixture(t, "sd/sd1"), parts, 3);
    {
        char sd[1100], sf[1200];
        snprintf(sd, sizeof sd, "%s/scheduler", base);
        snprintf(sf, sizeof sf, "%s/scheduler_config.json", sd);
        static const char cfgv[] = "{\"_class_name\": \"PNDMScheduler\", \"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", "
            "\"beta_start\": 0.00085, \"num_train_timesteps\": 1000, \"set_alpha_to_one\": false, \"skip_prk_steps\": true, "
            "\"steps_offset\": 1, \"clip_sample\": false, \"prediction_type\": \"v_prediction\"}";
        IT_CHECK_OK(it_mkdir_p(&err, sd), &err);
        IT_CHECK_OK(it_file_write_atomic(&err, sf, cfgv, strlen(cfgv)), &err);
    }
    link_parts(t, base, "models/toy", vae_part, 1);
    snprintf(unet, sizeof unet, "%s/unet", base);
    IT_CHECK_OK(it_mkdir_p(&err, unet), &err);
    link_parts(t, unet, it_test_fixture(t, "sd/sd1/unet"), cfg_part, 1);
    snprintf(file, sizeof file, "%s/diffusion_pytorch_model.safetensors", unet);
    pretrain_base(t, raw, gen_data, file, 400);
}

/* Mean loss over 8 fixed draws per image of dir, captioned `caption`, with
 * LoRA l (attached) at multiplier mult. */
static double eval_loss(it_test_ctx *t, it_sd_model *m, const char *dir, const char *caption, it_lora *l, float mult)
{
    it_err err;
    it_schedule sc;
    it_schedule_config cfg;
    it_schedule_config_sd(&cfg);
    float *lat = NULL, text[77 * 32], noise[NL];
    size_t n = encode_dir(t, m, dir, &lat);
    if (!n || !text_states(t, m, caption, text) || it_schedule_init(&err, &sc, &cfg)) {
        it_free(lat);
        return NAN;
    }
    l->multiplier = mult;
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_autograd_set_enabled(&ctx, 0);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < 8; d++) {
            int ts;
            it_ctx_reset(&ctx);
            it_train_draw_noise(777, d, (int)i, 1, 4, LAT, LAT, 0, 0, 1000, noise, &ts);
            it_train_batch b = {.batch = 1, .c = 4, .h = LAT, .w = LAT, .t_len = 77, .t_dim = 32,
                                .latents = lat + i * NL, .text = text, .noise = noise, .timesteps = &ts};
            it_train_loss_opts lo = {0, IT_PREDICT_V, 1.0f};
            double loss = NAN;
            /* no-grad: it_train_step_loss computes the loss, then refuses the backward */
            it_train_step_loss(&err, &ctx, &m->unet, &sc, &b, &lo, &loss);
            sum += loss;
        }
    it_ctx_free(&ctx);
    it_schedule_free(&sc);
    it_free(lat);
    return sum / (double)(n * 8);
}

/* Fixed-seed samples of prompt (batch 8, 10 steps, no guidance) with l at
 * multiplier mult: the mean over samples of each sample's distance
 * (per-channel latent means) to target. */
static double sample_dist(it_test_ctx *t, it_sd_model *m, it_lora *l, float mult, const char *prompt,
                          const double target[4])
{
    it_err err;
    l->multiplier = mult;
    it_gen_opts o;
    it_gen_opts_init(&o);
    o.prompt = prompt;
    o.steps = 10;
    o.cfg = 1;
    o.seed = 4242;
    o.width = o.height = RES;
    o.batch = 8;
    it_gen_result res = {0};
    IT_CHECK_OK(it_sd_generate(&err, m, NULL, &o, &res), &err);
    if (!res.latents) return NAN;
    double d = 0;
    for (int b = 0; b < o.batch; b++) {
        double mu[4];
        channel_mean(res.latents + b * NL, 1, mu);
        d += dist4(mu, target) / o.batch;
    }
    it_gen_result_free(&res);
    return d;
}

IT_TEST(train_learns_a_concept)
{
    it_err err;
    char dir[7][1024], lora[1100];
    static const char *names[7] = {"gen", "raw", "base", "data", "held", "ctrl", "out"};
    for (int i = 0; i < 7; i++) snprintf(dir[i], sizeof dir[i], "%s/%s", t->tmpdir, names[i]);
    static const int orange[3] = {235, 120, 20}, blue[3] = {30, 90, 220};
    make_images(t, dir[0], "g", 48, NULL, 1, BASE_CAPTION);
    make_images(t, dir[3], "c", 6, orange, 2, TRIGGER);
    make_images(t, dir[4], "h", 4, orange, 3, NULL);
    make_images(t, dir[5], "o", 4, blue, 4, NULL);
    make_models(t, dir[1], dir[2], dir[0]);

    it_train_config c;
    it_train_config_init(&c);
    const char *kv[][2] = {{"model", dir[2]}, {"data", dir[3]}, {"out", dir[6]}, {"rank", "8"}, {"alpha", "8"},
                           {"lr", "1e-2"}, {"steps", "300"}, {"batch", "4"}, {"resolution", "64"},
                           {"save_every", "0"}, {"sample_every", "150"},
                           {"sample_prompt", TRIGGER "|" CONTROL_PROMPT}, {"sample_steps", "3"},
                           {"sample_cfg", "1"}, {"cache_latents", "none"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) IT_REQUIRE_OK(it_train_config_set(&err, &c, kv[i][0], kv[i][1]), &err);
    c.quiet = 1;
    IT_REQUIRE_OK(it_train_run(&err, &c, NULL), &err);

    it_sd_model m;
    it_sd_load_opts so;
    it_sd_load_opts_init(&so);
    IT_REQUIRE_OK(it_sd_load(&err, &m, dir[2], &so), &err);
    it_lora l;
    snprintf(lora, sizeof lora, "%s/lora.safetensors", dir[6]);
    IT_REQUIRE_OK(it_lora_load(&err, &l, lora, &m.unet.params, NULL, 0), &err);
    it_lora_attach(&l);
    float *lat = NULL;
    double mu[4], mo[4];
    size_t n = encode_dir(t, &m, dir[3], &lat);
    channel_mean(lat, n, mu);
    it_free(lat);
    n = encode_dir(t, &m, dir[5], &lat);
    channel_mean(lat, n, mo);
    it_free(lat);
    printf("    concept latent mean %+.3f %+.3f %+.3f %+.3f (control colour at distance %.3f)\n", mu[0], mu[1], mu[2],
           mu[3], dist4(mu, mo));
    double h0 = eval_loss(t, &m, dir[4], TRIGGER, &l, 0), h1 = eval_loss(t, &m, dir[4], TRIGGER, &l, 1);
    double o0 = eval_loss(t, &m, dir[5], TRIGGER, &l, 0), o1 = eval_loss(t, &m, dir[5], TRIGGER, &l, 1);
    printf("    fixed-draw loss, base -> LoRA: held-out concept images %.4f -> %.4f, control colour %.4f -> %.4f\n",
           h0, h1, o0, o1);
    double dt0 = sample_dist(t, &m, &l, 0, TRIGGER, mu), dt1 = sample_dist(t, &m, &l, 1, TRIGGER, mu);
    double dc0 = sample_dist(t, &m, &l, 0, CONTROL_PROMPT, mu), dc1 = sample_dist(t, &m, &l, 1, CONTROL_PROMPT, mu);
    printf("    samples' distance to the concept, base -> LoRA: trigger '%s' %.3f -> %.3f, control '%s' %.3f -> %.3f\n",
           TRIGGER, dt0, dt1, CONTROL_PROMPT, dc0, dc1);
    /* Measured (1 and 2 threads): held-out concept loss x0.88, control
     * colour loss x1.19, trigger samples' distance x0.37, control prompt's
     * x0.36. Asserted with margin: */
    IT_CHECK(h1 < 0.95 * h0);  /* the concept's unseen images are denoised better */
    IT_CHECK(o1 > 1.05 * o0);  /* other colours worse: learnt the colour, not a generic fix */
    IT_CHECK(dt1 < 0.6 * dt0); /* trigger samples moved toward the concept */
    /* Not asserted: the control prompt moves as much (no prior preservation,
     * and a random text encoder whose states the base was never taught to
     * read: see docs/TRAINING.md). */
    it_lora_free(&l);
    it_sd_free(&m);
    /* samples at steps 150 and 300, two prompts each, logged */
    char p[1300];
    int found = 0;
    for (int s = 150; s <= 300; s += 150)
        for (int k = 0; k < 2; k++) {
            snprintf(p, sizeof p, "%s/samples/step-%08d-%d.png", dir[6], s, k);
            found += it_file_exists(p);
        }
    IT_CHECK_INT(found, 4);
    snprintf(p, sizeof p, "%s/train.jsonl", dir[6]);
    FILE *f = fopen(p, "r");
    IT_REQUIRE(f);
    char line[4096];
    int with_samples = 0, lines = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        lines++;
        if (json_array_size(json_object_get(j, "samples")) == 2) with_samples++;
        json_decref(j);
    }
    fclose(f);
    IT_CHECK_INT(lines, 300);
    IT_CHECK_INT(with_samples, 2);
}
