/* pipeline.c: text-to-image, img2img and inpainting (see pipeline.h).
 *
 * The order of operations follows diffusers 0.42's StableDiffusionPipeline /
 * Img2Img / Inpaint pipelines line by line, so that a run from the same
 * initial noise reproduces their latents to float32 rounding:
 *   encode_prompt -> set_timesteps (-> get_timesteps for strength) ->
 *   prepare_latents -> loop { cat([x] * 2), scale_model_input, [9-channel
 *   concat], unet, guidance, step, [4-channel inpaint blend] } ->
 *   vae.decode(latents / scaling_factor) -> postprocess. */
#include "diffusion/pipeline.h"

#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "diffusion/latent_ops.h"
#include "image/resize.h"
#include "tensor/autograd.h"
#include "tensor/tensor.h"

void it_gen_opts_init(it_gen_opts *o)
{
    memset(o, 0, sizeof *o);
    o->steps = 25;
    o->cfg = 7.0f;
    o->sampler.kind = IT_SAMPLER_DPMPP_2M;
    o->batch = 1;
    o->strength = -1;
}

void it_gen_result_free(it_gen_result *r)
{
    it_free(r->latents);
    it_free(r->pixels);
    if (r->images)
        for (int b = 0; b < r->batch; b++) it_image_free(&r->images[b]);
    it_free(r->images);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------ scheduler config */

/* models/config.h's it_sched_config (what the loaders read) to ours, for
 * models without a scheduler_config.json of their own. */
static it_status from_loader(it_err *err, it_schedule_config *c, const it_sd_model *m)
{
    it_schedule_config_sd(c);
    const it_sched_config *s = &m->sched;
    c->num_train_timesteps = s->num_train_timesteps > 0 ? s->num_train_timesteps : 1000;
    if (s->beta_start > 0) c->beta_start = s->beta_start;
    if (s->beta_end > 0) c->beta_end = s->beta_end;
    if (s->beta_schedule[0]) {
        int b = it_beta_schedule_parse(s->beta_schedule);
        if (b < 0)
            return it_err_set(err, IT_ERR_UNSUPPORTED, "%s: beta_schedule \"%s\" is not supported",
                              m->path, s->beta_schedule);
        c->beta_schedule = (it_beta_schedule)b;
    }
    /* timestep_spacing stays AUTO: the loader fills its own default when
     * the file has none, and diffusers would then use the sampler's. */
    c->steps_offset = s->steps_offset;
    c->set_alpha_to_one = s->set_alpha_to_one;
    c->prediction = s->prediction == IT_PRED_V        ? IT_PREDICT_V
                    : s->prediction == IT_PRED_SAMPLE ? IT_PREDICT_SAMPLE
                                                      : IT_PREDICT_EPSILON;
    return IT_OK;
}

it_status it_sd_schedule_config(it_err *err, it_schedule_config *c, const it_sd_model *m,
                                const char *config_dir)
{
    char path[1200];
    const char *dirs[2] = {config_dir, m->single_file ? NULL : m->path};
    for (int i = 0; i < 2; i++) {
        if (!dirs[i]) continue;
        snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", dirs[i]);
        if (!it_file_exists(path)) continue;
        uint8_t *txt;
        size_t n;
        IT_TRY(it_file_read(err, &txt, &n, path, 1 << 20));
        it_status st = it_schedule_config_parse(err, c, (const char *)txt, path);
        it_free(txt);
        if (st) return st;
        /* The loader may override the prediction type (single-file SD 2). */
        if (m->single_file)
            c->prediction = m->sched.prediction == IT_PRED_V ? IT_PREDICT_V : c->prediction;
        return IT_OK;
    }
    return from_loader(err, c, m);
}

/* ------------------------------------------------------------ run state */

typedef struct gen {
    it_sd_model *m;
    const it_gen_opts *o;
    it_sampler s;
    it_ctx ctx;
    it_mark step_mark;            /* after the text context */
    it_tensor *context;           /* (G * B, T, D) */
    int G, B, C, cin;             /* guidance copies, batch, latent and UNet input channels */
    int lw, lh, w, h;
    size_t n_lat;                 /* B * C * lh * lw */
    it_rng rng;
    float *mask_lat;              /* (lh * lw) inpainting mask at latent size */
    float *image_lat;             /* (B, C, lh, lw) image latents (img2img / 4-ch inpaint) */
    float *masked_lat;            /* (C, lh, lw) masked-image latents (9-ch) */
    float *noise;                 /* (B, C, lh, lw) the initial noise */
    float *proper;                /* (B, C, lh, lw) scratch for the blend */
} gen;

static it_status rng_noise(void *user, it_err *err, float *out, size_t n, int i)
{
    it_rng_normal(&((gen *)user)->rng, out, n, 0.0f, 1.0f);
    return IT_OK;
}

/* ------------------------------------------------------------ text */

static it_status encode_text(it_err *err, gen *g)
{
    it_sd_model *m = g->m;
    it_clip_info info;
    it_clip_tokenizer_info(m->tokenizer, &info);
    int T = info.model_max_length > 0 ? info.model_max_length : 77;
    it_tensor *ids = it_tensor_new(&g->ctx, IT_DTYPE_I32, 2, (int64_t[]){2, T});
    if (!ids) return it_ctx_status(&g->ctx, err);
    int32_t *id = ids->data;
    const char *neg = g->o->negative ? g->o->negative : "";
    IT_TRY(it_clip_encode_padded(err, m->tokenizer, id, T, NULL, neg, strlen(neg)));
    IT_TRY(it_clip_encode_padded(err, m->tokenizer, id + T, T, NULL, g->o->prompt,
                                 strlen(g->o->prompt)));
    it_mark mk = it_ctx_mark(&g->ctx);
    it_clip_text_out out;
    IT_TRY(it_clip_text_forward(err, &g->ctx, &m->text, ids, g->o->clip_skip, 0, &out));
    it_tensor *h = out.hidden; /* (2, T, D): negative, prompt */
    int64_t D = h->shape[2];
    size_t row = (size_t)T * D;
    /* Copy the rows we need in [negative x B, prompt x B] order (prompt x B
     * alone without guidance) to the bottom of the context. */
    float *tmp = it_malloc((size_t)2 * row * sizeof(float));
    if (!tmp) return it_err_set(err, IT_ERR_NOMEM, "generate: out of memory");
    memcpy(tmp, it_f32(h), 2 * row * sizeof(float));
    it_ctx_release(&g->ctx, mk);
    g->context = it_tensor_new(&g->ctx, IT_DTYPE_F32, 3, (int64_t[]){(int64_t)g->G * g->B, T, D});
    if (g->context) {
        float *c = it_f32(g->context);
        for (int k = 0; k < g->G * g->B; k++) {
            int which = g->G == 2 && k < g->B ? 0 : 1;
            memcpy(c + (size_t)k * row, tmp + (size_t)which * row, row * sizeof(float));
        }
    }
    it_free(tmp);
    return it_ctx_status(&g->ctx, err);
}

/* ------------------------------------------------------------ VAE */

/* image (3, h, w) in [-1, 1] -> latents (C, lh, lw) * scaling_factor. */
static it_status vae_encode(it_err *err, gen *g, float *out, const float *image)
{
    it_mark mk = it_ctx_mark(&g->ctx);
    it_tensor *x = it_tensor_from(&g->ctx, image, 4, (int64_t[]){1, 3, g->h, g->w});
    it_tensor *mo = NULL, *z = NULL;
    if (x) mo = g->o->vae_tiling ? it_vae_encode_tiled(&g->ctx, &g->m->vae, x)
                                 : it_vae_encode(&g->ctx, &g->m->vae, x);
    if (mo) z = it_vae_sample(&g->ctx, &g->m->vae, mo, g->o->seed ^ 0x5641450000000000ull,
                              g->o->encode_mean, 1);
    it_status st = it_ctx_status(&g->ctx, err);
    if (!st) memcpy(out, it_f32(z), (size_t)g->C * g->lh * g->lw * sizeof(float));
    it_ctx_release(&g->ctx, mk);
    return st;
}

static it_status vae_decode(it_err *err, gen *g, it_gen_result *r)
{
    size_t per = (size_t)g->C * g->lh * g->lw, hw = (size_t)g->w * g->h;
    float sf = g->m->vae.cfg.scaling_factor;
    for (int b = 0; b < g->B; b++) {
        it_mark mk = it_ctx_mark(&g->ctx);
        it_tensor *z = it_tensor_new(&g->ctx, IT_DTYPE_F32, 4, (int64_t[]){1, g->C, g->lh, g->lw});
        it_tensor *y = NULL;
        if (z) {
            for (size_t i = 0; i < per; i++) it_f32(z)[i] = r->latents[b * per + i] / sf;
            y = g->o->vae_tiling ? it_vae_decode_tiled(&g->ctx, &g->m->vae, z)
                                 : it_vae_decode(&g->ctx, &g->m->vae, z);
        }
        it_status st = it_ctx_status(&g->ctx, err);
        if (!st)
            st = it_latent_to_image(err, &r->images[b], r->pixels + (size_t)b * 3 * hw, it_f32(y),
                                    g->w, g->h);
        it_ctx_release(&g->ctx, mk);
        if (st) return st;
    }
    return IT_OK;
}

/* ------------------------------------------------------------ the loop */

static it_status denoise(void *user, it_err *err, float *out, const float *x_in, double t, int i)
{
    gen *g = user;
    it_ctx_release(&g->ctx, g->step_mark);
    int N = g->G * g->B;
    size_t hw = (size_t)g->lh * g->lw, per = (size_t)g->C * hw;
    it_tensor *x = it_tensor_new(&g->ctx, IT_DTYPE_F32, 4, (int64_t[]){N, g->cin, g->lh, g->lw});
    it_tensor *ts = it_tensor_new(&g->ctx, IT_DTYPE_F32, 1, (int64_t[]){N});
    if (!x || !ts) return it_ctx_status(&g->ctx, err);
    if (g->cin == g->C) {
        for (int k = 0; k < N; k++)
            memcpy(it_f32(x) + (size_t)k * per, x_in + (size_t)(k % g->B) * per, per * sizeof(float));
    } else {
        it_latent_concat9(it_f32(x), x_in, g->B, N, g->C, g->mask_lat, g->masked_lat, hw);
    }
    for (int k = 0; k < N; k++) it_f32(ts)[k] = (float)t;
    it_tensor *y = it_unet_forward(&g->ctx, &g->m->unet, x, ts, g->context);
    IT_TRY(it_ctx_status(&g->ctx, err));
    if (g->G == 2)
        it_latent_guidance(out, it_f32(y), it_f32(y) + g->n_lat, g->o->cfg, g->n_lat);
    else
        memcpy(out, it_f32(y), g->n_lat * sizeof(float));
    return IT_OK;
}

static it_status after_step(void *user, it_err *err, it_sampler *s, float *x, int i)
{
    gen *g = user;
    if (g->mask_lat && g->cin == g->C) {
        /* 4-channel inpainting: outside the mask, the image noised to the
         * next step's level (clean after the last step). */
        it_sampler_add_noise(s, g->proper, g->image_lat, g->noise, g->n_lat);
        it_latent_blend(x, g->proper, g->mask_lat, g->B, g->C, (size_t)g->lh * g->lw);
    }
    if (g->o->on_step)
        g->o->on_step(g->o->progress_user, i - s->begin_index + 1, s->n_steps - s->begin_index, x);
    return IT_OK;
}

/* ------------------------------------------------------------ setup */

static it_status check_inputs(it_err *err, gen *g)
{
    it_sd_model *m = g->m;
    const it_gen_opts *o = g->o;
    unsigned need = IT_SD_TEXT | IT_SD_UNET | IT_SD_VAE;
    if ((m->loaded & need) != need)
        return it_err_set(err, IT_ERR_ARG, "generate: %s lacks the text encoder, UNet or VAE", m->path);
    if (!m->tokenizer)
        return it_err_set(err, IT_ERR_ARG,
                          "generate: %s has no tokenizer (give a diffusers folder as --config)", m->path);
    if (!o->prompt) return it_err_set(err, IT_ERR_ARG, "generate: no prompt");
    if (o->batch < 1 || o->batch > 64)
        return it_err_set(err, IT_ERR_ARG, "generate: batch %d not in 1..64", o->batch);
    if (o->mask && !o->init_image)
        return it_err_set(err, IT_ERR_ARG, "generate: a mask needs an init image");
    if (m->unet.cfg.in_channels != m->vae.cfg.latent_channels &&
        m->unet.cfg.in_channels != 2 * m->vae.cfg.latent_channels + 1)
        return it_err_set(err, IT_ERR_UNSUPPORTED, "generate: UNet takes %d channels, VAE gives %d",
                          m->unet.cfg.in_channels, m->vae.cfg.latent_channels);
    if (m->unet.cfg.in_channels != m->vae.cfg.latent_channels && !o->mask)
        return it_err_set(err, IT_ERR_ARG,
                          "generate: %s is an inpainting model (9 input channels): give --init-image "
                          "and --mask", m->path);
    int vsf = 1 << (m->vae.cfg.n_levels - 1), uf = 1 << (m->unet.cfg.n_levels - 1);
    int w = o->width, h = o->height;
    if (!w) w = o->init_image ? o->init_image->w / vsf * vsf : m->unet.cfg.sample_size * vsf;
    if (!h) h = o->init_image ? o->init_image->h / vsf * vsf : m->unet.cfg.sample_size * vsf;
    if (w <= 0 || h <= 0 || w % (vsf * uf) || h % (vsf * uf))
        return it_err_set(err, IT_ERR_ARG, "generate: size %dx%d must be a positive multiple of %d",
                          w, h, vsf * uf);
    g->w = w;
    g->h = h;
    g->lw = w / vsf;
    g->lh = h / vsf;
    g->B = o->batch;
    g->C = m->vae.cfg.latent_channels;
    g->cin = m->unet.cfg.in_channels;
    g->G = o->cfg > 1.0f ? 2 : 1;
    g->n_lat = (size_t)g->B * g->C * g->lh * g->lw;
    return IT_OK;
}

/* The init image (and mask) at the output size, as [-1, 1] / {0, 1} arrays. */
static it_status load_image(it_err *err, gen *g, const it_image *src, float *out, int is_mask)
{
    it_image rs = {0};
    const it_image *img = src;
    if (src->w != g->w || src->h != g->h) {
        /* VaeImageProcessor.resize: PIL lanczos (masks are made grey first) */
        it_image grey = {0};
        if (is_mask && src->c != 1) {
            IT_TRY(it_image_convert(err, &grey, src, 1, NULL));
            src = &grey;
        }
        it_status st = it_image_resize(err, &rs, src, g->w, g->h, IT_RESAMPLE_LANCZOS);
        it_image_free(&grey);
        IT_TRY(st);
        img = &rs;
    }
    it_status st = is_mask ? it_latent_mask_to_unit(err, out, img) : it_latent_image_to_unit(err, out, img);
    it_image_free(&rs);
    return st;
}

/* img2img / inpainting inputs: image latents, mask at latent size,
 * masked-image latents. */
static it_status prepare_image(it_err *err, gen *g)
{
    size_t hw = (size_t)g->w * g->h, lhw = (size_t)g->lh * g->lw, per = (size_t)g->C * lhw;
    float *img = it_malloc(3 * hw * sizeof(float)), *mask = NULL, *masked = NULL;
    it_status st = IT_OK;
    if (!img) return it_err_set(err, IT_ERR_NOMEM, "generate: out of memory");
    if ((st = load_image(err, g, g->o->init_image, img, 0))) goto done;
    int nine = g->cin != g->C;
    int need_image_lat = !nine || !g->o->mask || g->o->strength < 1.0;
    if (need_image_lat) {
        g->image_lat = it_malloc(g->n_lat * sizeof(float));
        if (!g->image_lat) goto nomem;
        if ((st = vae_encode(err, g, g->image_lat, img))) goto done;
        for (int b = 1; b < g->B; b++) memcpy(g->image_lat + b * per, g->image_lat, per * sizeof(float));
    }
    if (g->o->mask) {
        mask = it_malloc(hw * sizeof(float));
        g->mask_lat = it_malloc(lhw * sizeof(float));
        if (!mask || !g->mask_lat) goto nomem;
        if ((st = load_image(err, g, g->o->mask, mask, 1))) goto done;
        it_latent_nearest(g->mask_lat, g->lw, g->lh, mask, g->w, g->h);
        if (nine) {
            masked = it_malloc(3 * hw * sizeof(float));
            g->masked_lat = it_malloc(per * sizeof(float));
            if (!masked || !g->masked_lat) goto nomem;
            it_latent_mask_image(masked, img, mask, g->w, g->h);
            if ((st = vae_encode(err, g, g->masked_lat, masked))) goto done;
        }
    }
    goto done;
nomem:
    st = it_err_set(err, IT_ERR_NOMEM, "generate: out of memory");
done:
    it_free(img);
    it_free(mask);
    it_free(masked);
    return st;
}

static it_status initial_latents(it_err *err, gen *g, float *x)
{
    g->noise = it_malloc(g->n_lat * sizeof(float));
    g->proper = it_malloc(g->n_lat * sizeof(float));
    if (!g->noise || !g->proper) return it_err_set(err, IT_ERR_NOMEM, "generate: out of memory");
    if (g->o->noise)
        memcpy(g->noise, g->o->noise, g->n_lat * sizeof(float));
    else
        it_rng_normal(&g->rng, g->noise, g->n_lat, 0.0f, 1.0f);
    /* txt2img, and inpainting at strength 1 ("is_strength_max"), start from
     * scaled noise; img2img always, inpainting below 1, from the noised image. */
    int from_image = g->o->init_image && (!g->o->mask || g->o->strength < 1.0);
    if (from_image)
        it_sampler_add_noise(&g->s, x, g->image_lat, g->noise, g->n_lat);
    else
        for (size_t i = 0; i < g->n_lat; i++) x[i] = g->noise[i] * g->s.init_noise_sigma;
    return IT_OK;
}

static void gen_free(gen *g)
{
    it_sampler_free(&g->s);
    it_ctx_free(&g->ctx);
    it_free(g->mask_lat);
    it_free(g->image_lat);
    it_free(g->masked_lat);
    it_free(g->noise);
    it_free(g->proper);
}

static it_status alloc_result(it_err *err, gen *g, it_gen_result *r)
{
    r->batch = g->B;
    r->channels = g->C;
    r->lw = g->lw;
    r->lh = g->lh;
    r->w = g->w;
    r->h = g->h;
    r->latents = it_malloc(g->n_lat * sizeof(float));
    r->pixels = it_malloc((size_t)g->B * 3 * g->w * g->h * sizeof(float));
    r->images = it_calloc((size_t)g->B, sizeof(it_image));
    if (!r->latents || !r->pixels || !r->images)
        return it_err_set(err, IT_ERR_NOMEM, "generate: out of memory for %d images", g->B);
    return IT_OK;
}

it_status it_sd_generate(it_err *err, it_sd_model *m, const it_schedule_config *sched,
                         const it_gen_opts *o, it_gen_result *r)
{
    memset(r, 0, sizeof *r);
    gen g;
    memset(&g, 0, sizeof g);
    g.m = m;
    it_gen_opts oo = *o;
    if (oo.strength < 0) oo.strength = o->mask ? 1.0 : 0.8;
    g.o = &oo;
    IT_TRY(check_inputs(err, &g));
    it_schedule_config cfg;
    if (sched)
        cfg = *sched;
    else
        IT_TRY(it_sd_schedule_config(err, &cfg, m, NULL));
    it_rng_init(&g.rng, o->seed);
    it_ctx_init(&g.ctx, 0);
    it_autograd_set_enabled(&g.ctx, 0);
    it_status st;
    if ((st = it_sampler_init(err, &g.s, &cfg, &oo.sampler, oo.steps, g.n_lat))) goto fail;
    if (oo.init_image && (st = it_sampler_set_strength(err, &g.s, oo.strength))) goto fail;
    if ((st = alloc_result(err, &g, r))) goto fail;
    if ((st = encode_text(err, &g))) goto fail;
    g.step_mark = it_ctx_mark(&g.ctx);
    if (oo.init_image && (st = prepare_image(err, &g))) goto fail;
    if ((st = initial_latents(err, &g, r->latents))) goto fail;
    it_sampler_loop loop = {denoise, &g, oo.step_noise ? oo.step_noise : rng_noise,
                            oo.step_noise ? oo.step_noise_user : &g, after_step, &g};
    if ((st = it_sampler_run(err, &g.s, r->latents, &loop))) goto fail;
    it_ctx_release(&g.ctx, g.step_mark);
    if ((st = vae_decode(err, &g, r))) goto fail;
    gen_free(&g);
    return IT_OK;
fail:
    gen_free(&g);
    it_gen_result_free(r);
    return st;
}
