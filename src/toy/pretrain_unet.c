/* pretrain_unet.c: the toy UNet's configuration, initialisation, data
 * stream, training state, checkpoints and export (latent diffusion with the
 * frozen toy VAE and text encoder). */
#include "toy/pretrain_unet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/rng.h"
#include "diffusion/pipeline.h"
#include "tensor/autograd.h"
#include "tensor/dtype.h"
#include "tensor/optim.h"
#include "tensor/safetensors.h"
#include "toy/captions.h"
#include "toy/creature.h"
#include "toy/toydraw.h"
#include "train/train_step.h"

/* ---------------------------------------------------------------- config */

void it_toy_unet_config(it_unet_config *c, int sample_size, int channels, int cross_dim)
{
    memset(c, 0, sizeof *c);
    c->sample_size = sample_size;
    c->in_channels = c->out_channels = channels;
    c->layers_per_block = 1;
    c->norm_eps = 1e-5f;
    c->cross_dim = cross_dim;
    c->mid_attn = 1;
    c->flip_sin_to_cos = 1;
    /* 16x16 -> 8x8 -> 4x4 latents of 32, 64, 128 channels, head width 32;
     * cross-attention at the two finer levels and in the mid block (SD 1.x
     * keeps its coarsest level plain too). 3.3 M weights; one training step
     * of batch 32 costs about 1.4 s of one core (docs/TOYWORLD.md). */
    c->n_levels = 3;
    c->block_out[0] = 32, c->block_out[1] = 64, c->block_out[2] = 128;
    c->heads[0] = 1, c->heads[1] = 2, c->heads[2] = 4;
    c->norm_groups = 8;
    c->down_attn[0] = 1, c->down_attn[1] = 1, c->down_attn[2] = 0;
    c->up_attn[0] = 0, c->up_attn[1] = 1, c->up_attn[2] = 1;
}

json_t *it_toy_unet_config_json(const it_unet_config *c)
{
    json_t *j = json_object(), *bo = json_array(), *hd = json_array(), *dt = json_array(), *ut = json_array();
    if (!j || !bo || !hd || !dt || !ut) {
        json_decref(j), json_decref(bo), json_decref(hd), json_decref(dt), json_decref(ut);
        return NULL;
    }
    for (int i = 0; i < c->n_levels; i++) {
        json_array_append_new(bo, json_integer(c->block_out[i]));
        json_array_append_new(hd, json_integer(c->heads[i]));
        json_array_append_new(dt, json_string(c->down_attn[i] ? "CrossAttnDownBlock2D" : "DownBlock2D"));
        json_array_append_new(ut, json_string(c->up_attn[i] ? "CrossAttnUpBlock2D" : "UpBlock2D"));
    }
    json_object_set_new(j, "_class_name", json_string("UNet2DConditionModel"));
    json_object_set_new(j, "_diffusers_version", json_string("0.42.1"));
    json_object_set_new(j, "act_fn", json_string("silu"));
    json_object_set_new(j, "attention_head_dim", hd);
    json_object_set_new(j, "block_out_channels", bo);
    json_object_set_new(j, "center_input_sample", json_false());
    json_object_set_new(j, "class_embed_type", json_null());
    json_object_set_new(j, "cross_attention_dim", json_integer(c->cross_dim));
    json_object_set_new(j, "down_block_types", dt);
    json_object_set_new(j, "downsample_padding", json_integer(1));
    json_object_set_new(j, "dual_cross_attention", json_false());
    json_object_set_new(j, "flip_sin_to_cos", json_boolean(c->flip_sin_to_cos));
    json_object_set_new(j, "freq_shift", json_integer((json_int_t)c->freq_shift));
    json_object_set_new(j, "in_channels", json_integer(c->in_channels));
    json_object_set_new(j, "layers_per_block", json_integer(c->layers_per_block));
    json_object_set_new(j, "mid_block_scale_factor", json_integer(1));
    json_object_set_new(j, "mid_block_type", c->mid_attn >= 0 ? json_string("UNetMidBlock2DCrossAttn") : json_null());
    json_object_set_new(j, "norm_eps", json_real(c->norm_eps));
    json_object_set_new(j, "norm_num_groups", json_integer(c->norm_groups));
    json_object_set_new(j, "num_attention_heads", json_null());
    json_object_set_new(j, "only_cross_attention", json_false());
    json_object_set_new(j, "out_channels", json_integer(c->out_channels));
    json_object_set_new(j, "resnet_time_scale_shift", json_string("default"));
    json_object_set_new(j, "sample_size", json_integer(c->sample_size));
    json_object_set_new(j, "time_embedding_type", json_string("positional"));
    json_object_set_new(j, "transformer_layers_per_block", json_integer(1));
    json_object_set_new(j, "up_block_types", ut);
    json_object_set_new(j, "upcast_attention", json_false());
    json_object_set_new(j, "use_linear_projection", json_boolean(c->use_linear_projection));
    return j;
}

it_status it_toy_unet_config_from(it_err *err, it_unet_config *c, const json_t *over, int sample_size,
                                  int channels, int cross_dim)
{
    it_unet_config def;
    it_toy_unet_config(&def, sample_size, channels, cross_dim);
    json_t *j = it_toy_unet_config_json(&def);
    if (!j) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    if (over) json_object_update(j, (json_t *)over);
    /* What the frozen parts dictate is not a choice. */
    json_object_set_new(j, "sample_size", json_integer(sample_size));
    json_object_set_new(j, "in_channels", json_integer(channels));
    json_object_set_new(j, "out_channels", json_integer(channels));
    json_object_set_new(j, "cross_attention_dim", json_integer(cross_dim));
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!text) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    it_status s = it_unet_config_parse(err, c, text, "unet config");
    free(text);
    return s;
}

static it_status write_json(it_err *err, const char *path, json_t *j)
{
    if (!j) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory", path);
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    json_decref(j);
    if (!text) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory", path);
    size_t n = strlen(text);
    char *line = it_malloc(n + 2);
    it_status s;
    if (!line) {
        s = it_err_set(err, IT_ERR_NOMEM, "%s: out of memory", path);
    } else {
        memcpy(line, text, n);
        line[n] = '\n';
        s = it_file_write_atomic(err, path, line, n + 1);
        it_free(line);
    }
    free(text);
    return s;
}

static it_status write_sub_json(it_err *err, const char *dir, const char *sub, const char *name, json_t *j)
{
    char d[2048], p[2200];
    if (sub) {
        snprintf(d, sizeof d, "%s/%s", dir, sub);
        it_status s = it_mkdir_p(err, d);
        if (s) {
            json_decref(j);
            return s;
        }
    } else {
        snprintf(d, sizeof d, "%s", dir);
    }
    snprintf(p, sizeof p, "%s/%s", d, name);
    return write_json(err, p, j);
}

it_status it_toy_pipeline_files_write(it_err *err, const char *dir)
{
    /* The layout diffusers' StableDiffusionPipeline.save_pretrained writes
     * (no safety checker). */
    json_t *idx = json_pack("{s:s, s:s, s:[s,s], s:[s,s], s:[s,s], s:[s,s], s:[s,s], s:[n,n], s:[n,n], s:b}",
                            "_class_name", "StableDiffusionPipeline", "_diffusers_version", "0.42.1",
                            "unet", "diffusers", "UNet2DConditionModel", "vae", "diffusers", "AutoencoderKL",
                            "text_encoder", "transformers", "CLIPTextModel", "tokenizer", "transformers",
                            "CLIPTokenizer", "scheduler", "diffusers", "PNDMScheduler", "safety_checker",
                            "feature_extractor", "requires_safety_checker", 0);
    IT_TRY(write_sub_json(err, dir, NULL, "model_index.json", idx));
    /* SD 1.x's training schedule (what it_train_draw_noise and the samplers
     * read): scaled_linear 0.00085..0.012 over 1000 steps, epsilon. */
    json_t *sc = json_pack("{s:s, s:s, s:f, s:s, s:f, s:b, s:i, s:b, s:b, s:i, s:s, s:n}",
                           "_class_name", "PNDMScheduler", "_diffusers_version", "0.42.1", "beta_end", 0.012,
                           "beta_schedule", "scaled_linear", "beta_start", 0.00085, "clip_sample", 0,
                           "num_train_timesteps", 1000, "set_alpha_to_one", 0, "skip_prk_steps", 1,
                           "steps_offset", 1, "prediction_type", "epsilon", "trained_betas");
    return write_sub_json(err, dir, "scheduler", "scheduler_config.json", sc);
}

/* ---------------------------------------------------------------- run */

#define UNET_DEFAULT_STEPS 6000
#define UNET_DEFAULT_BATCH 32
#define UNET_DEFAULT_LR 6e-4

typedef struct unet_opts {
    int pool;                   /* distinct training images */
    double ema_decay;           /* 0: none */
    double caption_dropout;
    int warmup;
    char init[1024];            /* UNet weights to start from ("" = random) */
} unet_opts;

typedef struct unet_run {
    const it_pretrain_opts *o;
    unet_opts u;
    int64_t steps;
    int batch;
    double lr;
    char run[1024];
    it_sd_model m;              /* frozen text encoder, VAE, tokenizer (no UNet) */
    it_unet unet;               /* trainable */
    it_schedule sched;
    it_optim_param *params;     /* (2 n) the UNet's weights, then their EMA shadows (frozen) */
    size_t n_params, n_unet;
    float *shadow;              /* (numel) EMA weights, in the UNet's parameter order */
    char **shadow_names;        /* (n_unet) "ema.<name>" */
    it_ctx ctx;
    it_toy_renderer rend;
    int img;                    /* image side in pixels */
    int64_t lc, lh, lw;         /* latent shape */
    int t_len, t_dim;           /* text states */
    char vae_fp[17], text_fp[17], init_fp[17]; /* fingerprints of the frozen parts' files */
    size_t li;                  /* floats per latent */
    uint16_t *cache;            /* (pool, li) f16 latents */
    uint8_t *have;              /* (pool) */
    size_t n_cached, n_unsaved;
    double t_cache_saved;
    uint8_t *rgb;               /* (img, img, 3) */
    float *pix;                 /* (3, img, img) */
    float *lat, *noise, *text;  /* the batch: (B, li), (B, li), (B, t_len, t_dim) */
    int *ts;                    /* (B) */
    int32_t *ids;               /* (B, t_len) */
} unet_run;

static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void run_free(unet_run *r)
{
    it_sd_free(&r->m);
    it_unet_free(&r->unet);
    it_schedule_free(&r->sched);
    if (r->shadow_names)
        for (size_t i = 0; i < r->n_unet; i++) it_free(r->shadow_names[i]);
    it_free(r->shadow_names);
    it_free(r->shadow);
    it_free(r->params);
    it_ctx_free(&r->ctx);
    it_toy_renderer_free(&r->rend);
    it_free(r->cache);
    it_free(r->have);
    it_free(r->rgb);
    it_free(r->pix);
    it_free(r->lat);
    it_free(r->noise);
    it_free(r->text);
    it_free(r->ts);
    it_free(r->ids);
}

/* Training keys of o->config (the rest is the UNet's config); *arch: a new
 * object without them, or NULL. */
static it_status read_options(it_err *err, unet_run *r, json_t **arch)
{
    const it_pretrain_opts *o = r->o;
    r->steps = o->steps ? o->steps : UNET_DEFAULT_STEPS;
    r->u = (unet_opts){24000, 0.999, 0.1, r->steps / 20 < 200 ? (int)(r->steps / 20) : 200, ""};
    r->batch = o->batch ? o->batch : UNET_DEFAULT_BATCH;
    r->lr = o->lr > 0 ? o->lr : UNET_DEFAULT_LR;
    json_t *j;
    IT_TRY(it_pretrain_config_json(err, o, &j));
    *arch = j;
    if (!j) return IT_OK;
    json_t *init = json_object_get(j, "init");
    if (init && !json_is_string(init)) return it_err_set(err, IT_ERR_ARG, "unet config: init must be a file path");
    if (init && snprintf(r->u.init, sizeof r->u.init, "%s", json_string_value(init)) >= (int)sizeof r->u.init)
        return it_err_set(err, IT_ERR_ARG, "unet config: init path too long");
    json_object_del(j, "init");
    static const char *const keys[] = {"pool", "ema_decay", "caption_dropout", "warmup"};
    for (int i = 0; i < 4; i++) {
        json_t *v = json_object_get(j, keys[i]);
        if (!v) continue;
        if (!json_is_number(v)) return it_err_set(err, IT_ERR_ARG, "unet config: %s must be a number", keys[i]);
        double d = json_number_value(v);
        if (i == 0) r->u.pool = (int)d;
        if (i == 1) r->u.ema_decay = d;
        if (i == 2) r->u.caption_dropout = d;
        if (i == 3) r->u.warmup = (int)d;
        json_object_del(j, keys[i]);
    }
    if (r->u.pool < 1 || r->u.pool > 10000000) return it_err_set(err, IT_ERR_ARG, "unet config: pool must be in 1..10000000");
    if (!(r->u.ema_decay >= 0 && r->u.ema_decay < 1)) return it_err_set(err, IT_ERR_ARG, "unet config: ema_decay must be in [0, 1)");
    if (!(r->u.caption_dropout >= 0 && r->u.caption_dropout <= 1))
        return it_err_set(err, IT_ERR_ARG, "unet config: caption_dropout must be in [0, 1]");
    if (r->u.warmup < 0 || r->u.warmup > r->steps) return it_err_set(err, IT_ERR_ARG, "unet config: warmup must be in 0..steps");
    return IT_OK;
}

/* FNV-1a 64 over the files of a component folder that exist (configs,
 * weights, vocabulary): a run, its resume and its latent cache belong to
 * one exact set of frozen weights. */
static it_status fnv_file(it_err *err, const char *path, uint64_t *h)
{
    uint8_t *d = NULL;
    size_t n = 0;
    IT_TRY(it_file_read(err, &d, &n, path, (size_t)1 << 30));
    for (size_t k = 0; k < n; k++) *h = (*h ^ d[k]) * 0x100000001b3ull;
    it_free(d);
    *h = (*h ^ 0xff) * 0x100000001b3ull;
    return IT_OK;
}

static it_status fingerprint(it_err *err, const char *dir, const char *sub, const char *const *names, char hex[17])
{
    uint64_t h = 0xcbf29ce484222325ull;
    char p[1200];
    for (int i = 0; names[i]; i++) {
        snprintf(p, sizeof p, "%s/%s/%s", dir, sub, names[i]);
        if (it_file_exists(p)) IT_TRY(fnv_file(err, p, &h));
    }
    snprintf(hex, 17, "%016llx", (unsigned long long)h);
    return IT_OK;
}

/* The frozen parts and the sizes they imply. */
static it_status setup_frozen(it_err *err, unet_run *r)
{
    const char *dir = r->o->out;
    it_sd_load_opts lo;
    it_sd_load_opts_init(&lo);
    lo.components = IT_SD_TEXT | IT_SD_VAE | IT_SD_TOKENIZER;
    IT_TRY(it_sd_load(err, &r->m, dir, &lo));
    static const char *const vae_files[] = {"config.json", "diffusion_pytorch_model.safetensors",
                                            "diffusion_pytorch_model.fp16.safetensors", NULL};
    static const char *const text_files[] = {"config.json", "model.safetensors", "model.fp16.safetensors",
                                             "diffusion_pytorch_model.safetensors", "../tokenizer/vocab.json",
                                             "../tokenizer/merges.txt", "../tokenizer/tokenizer_config.json", NULL};
    IT_TRY(fingerprint(err, dir, "vae", vae_files, r->vae_fp));
    IT_TRY(fingerprint(err, dir, "text_encoder", text_files, r->text_fp));
    if (!r->m.tokenizer) return it_err_set(err, IT_ERR_NOT_FOUND, "%s: no tokenizer/ folder", dir);
    it_clip_info info;
    it_clip_tokenizer_info(r->m.tokenizer, &info);
    /* The pipeline pads prompts to the tokenizer's model_max_length: train
     * on the context length the sampler will use. */
    r->t_len = info.model_max_length > 0 ? info.model_max_length : IT_CLIP_CONTEXT;
    if (r->t_len > r->m.text.cfg.max_positions) r->t_len = r->m.text.cfg.max_positions;
    r->t_dim = r->m.text.cfg.hidden;
    int f = 1 << (r->m.vae.cfg.n_levels - 1);
    r->lc = r->m.vae.cfg.latent_channels;
    r->img = r->m.vae.cfg.sample_size; /* the toy VAE's sample size is its image side */
    if (r->img % f || r->img < f)
        return it_err_set(err, IT_ERR_ARG, "%s/vae: sample_size %d is not a multiple of the VAE's factor %d", dir,
                          r->img, f);
    r->lh = r->lw = r->img / f;
    r->li = (size_t)(r->lc * r->lh * r->lw);
    it_schedule_config sc;
    IT_TRY(it_sd_schedule_config(err, &sc, &r->m, NULL));
    sc.prediction = IT_PREDICT_EPSILON;
    return it_schedule_init(err, &r->sched, &sc);
}

static it_status setup_unet(it_err *err, unet_run *r, const json_t *arch)
{
    it_unet_config c;
    IT_TRY(it_toy_unet_config_from(err, &c, arch, (int)r->lh, (int)r->lc, r->t_dim));
    IT_TRY(it_unet_init(err, &r->unet, &c, IT_MODEL_TRAINABLE));
    it_pretrain_init_params(&r->unet.params, r->o->seed);
    it_params *ps = &r->unet.params;
    if (r->u.init[0]) {
        /* Staged training (e.g. after the VAE or text encoder changed):
         * start from earlier weights, with a fresh optimiser. */
        IT_TRY(it_sd_load_params_file(err, ps, r->u.init, NULL));
        uint64_t h = 0xcbf29ce484222325ull;
        IT_TRY(fnv_file(err, r->u.init, &h));
        snprintf(r->init_fp, sizeof r->init_fp, "%016llx", (unsigned long long)h);
    }
    r->n_unet = ps->n;
    r->n_params = r->u.ema_decay > 0 ? 2 * ps->n : ps->n;
    r->params = it_calloc(r->n_params, sizeof *r->params);
    r->shadow = r->u.ema_decay > 0 ? it_malloc(it_params_numel(ps) * sizeof(float)) : NULL;
    r->shadow_names = it_calloc(ps->n, sizeof *r->shadow_names);
    if (!r->params || !r->shadow_names || (r->u.ema_decay > 0 && !r->shadow))
        return it_err_set(err, IT_ERR_NOMEM, "unet: out of memory");
    size_t off = 0;
    for (size_t i = 0; i < ps->n; i++) {
        it_tensor *t = ps->items[i];
        r->params[i] = (it_optim_param){t->name, it_f32(t), t->grad, (size_t)t->n, 0};
        if (!r->shadow) continue;
        size_t len = strlen(t->name) + 5;
        r->shadow_names[i] = it_malloc(len);
        if (!r->shadow_names[i]) return it_err_set(err, IT_ERR_NOMEM, "unet: out of memory");
        snprintf(r->shadow_names[i], len, "ema.%s", t->name);
        memcpy(r->shadow + off, it_f32(t), (size_t)t->n * sizeof(float));
        r->params[ps->n + i] = (it_optim_param){r->shadow_names[i], r->shadow + off, NULL, (size_t)t->n, 1};
        off += (size_t)t->n;
    }
    return IT_OK;
}

static it_status setup_buffers(it_err *err, unet_run *r)
{
    size_t B = (size_t)r->batch, img = (size_t)r->img;
    IT_TRY(it_toy_renderer_init(err, &r->rend, r->img, r->img));
    r->cache = it_malloc((size_t)r->u.pool * r->li * sizeof *r->cache);
    r->have = it_calloc((size_t)r->u.pool, 1);
    r->rgb = it_malloc(img * img * 3);
    r->pix = it_malloc(3 * img * img * sizeof(float));
    r->lat = it_malloc(B * r->li * sizeof(float));
    r->noise = it_malloc(B * r->li * sizeof(float));
    r->text = it_malloc(B * (size_t)r->t_len * (size_t)r->t_dim * sizeof(float));
    r->ts = it_malloc(B * sizeof(int));
    r->ids = it_malloc(B * (size_t)r->t_len * sizeof(int32_t));
    if (!r->cache || !r->have || !r->rgb || !r->pix || !r->lat || !r->noise || !r->text || !r->ts || !r->ids)
        return it_err_set(err, IT_ERR_NOMEM, "out of memory (latent cache of %d images)", r->u.pool);
    return IT_OK;
}

static it_status run_open(it_err *err, unet_run *r, const it_pretrain_opts *o)
{
    memset(r, 0, sizeof *r);
    r->o = o;
    it_ctx_init(&r->ctx, 0);
    json_t *arch = NULL;
    it_status s = read_options(err, r, &arch);
    if (!s) s = setup_frozen(err, r);
    if (!s) s = setup_unet(err, r, arch);
    json_decref(arch);
    if (!s) s = setup_buffers(err, r);
    if (!s) s = it_pretrain_run_path(err, o, r->run, sizeof r->run);
    return s;
}

/* ---------------------------------------------------------------- data */

/* Latent of pool image k (rendered and encoded on first use). Each image is
 * encoded alone, so its latent does not depend on which others share its
 * batch, and it is rounded to f16 before its first use, so cached and fresh
 * values are the same. */
static it_status pool_latent(it_err *err, unet_run *r, uint64_t k, float *out)
{
    uint16_t *slot = r->cache + k * r->li;
    if (!r->have[k]) {
        it_toy_attrs a;
        IT_TRY(it_toy_sample(err, &a, NULL, r->o->seed, k, IT_TOY_PRETRAIN));
        IT_TRY(it_toy_render(err, &r->rend, &a, IT_TOY_PRETRAIN, r->rgb, NULL, NULL));
        size_t hw = (size_t)r->img * r->img;
        for (size_t p = 0; p < hw; p++)
            for (int c = 0; c < 3; c++) r->pix[c * hw + p] = r->rgb[p * 3 + c] / 127.5f - 1.0f;
        it_mark mk = it_ctx_mark(&r->ctx);
        int was = it_autograd_set_enabled(&r->ctx, 0);
        it_tensor *x = it_tensor_from(&r->ctx, r->pix, IT_SHAPE(1, 3, r->img, r->img));
        it_tensor *z = it_vae_sample(&r->ctx, &r->m.vae, it_vae_encode(&r->ctx, &r->m.vae, x), 0, 1, 1);
        it_autograd_set_enabled(&r->ctx, was);
        if (!z) return it_ctx_status(&r->ctx, err);
        it_f32_to_f16_n(slot, it_f32(z), r->li);
        it_ctx_release(&r->ctx, mk);
        r->have[k] = 1;
        r->n_cached++, r->n_unsaved++;
    }
    it_f16_to_f32_n(out, slot, r->li);
    return IT_OK;
}

/* Caption of batch item g showing pool image k: one of its captions, in a
 * style and variant drawn from g, or "" (the unconditional prompt) with
 * probability caption_dropout. Named characters are named. */
static it_status item_caption(it_err *err, unet_run *r, uint64_t k, uint64_t g, char *out, size_t n)
{
    uint64_t h = mix64(r->o->seed ^ mix64(g ^ 0x63617074ull));
    double u = (double)(h >> 40) / 16777216.0;
    if (u < r->u.caption_dropout) {
        out[0] = 0;
        return IT_OK;
    }
    it_toy_attrs a;
    IT_TRY(it_toy_sample(err, &a, NULL, r->o->seed, k, IT_TOY_PRETRAIN));
    static const it_toy_caption_style styles[] = {IT_TOY_CAP_SHORT, IT_TOY_CAP_SHORT, IT_TOY_CAP_LONG,
                                                  IT_TOY_CAP_LONG, IT_TOY_CAP_TAGS};
    it_toy_caption cap;
    IT_TRY(it_toy_caption_make(err, &cap, &a, styles[h % 5], 1, 0, r->o->seed, k, (int)((h >> 8) & 0xffff)));
    snprintf(out, n, "%s", cap.text);
    return IT_OK;
}

/* Latents, text states, noise and timesteps of step `step`. */
static it_status make_batch(it_err *err, unet_run *r, int64_t step)
{
    int B = r->batch;
    char cap[IT_TOY_CAPTION_MAX];
    for (int i = 0; i < B; i++) {
        uint64_t g = (uint64_t)step * (uint64_t)B + (uint64_t)i;
        uint64_t k = mix64(r->o->seed ^ mix64(g)) % (uint64_t)r->u.pool;
        IT_TRY(pool_latent(err, r, k, r->lat + (size_t)i * r->li));
        IT_TRY(item_caption(err, r, k, g, cap, sizeof cap));
        IT_TRY(it_clip_encode_padded(err, r->m.tokenizer, r->ids + (size_t)i * r->t_len, r->t_len, NULL, cap,
                                     strlen(cap)));
    }
    it_mark mk = it_ctx_mark(&r->ctx);
    int was = it_autograd_set_enabled(&r->ctx, 0);
    it_tensor *ids = it_tensor_wrap(&r->ctx, r->ids, IT_DTYPE_I32, IT_SHAPE(B, r->t_len));
    it_clip_text_out to;
    it_status s = ids ? it_clip_text_forward(err, &r->ctx, &r->m.text, ids, 0, 0, &to) : it_ctx_status(&r->ctx, err);
    it_autograd_set_enabled(&r->ctx, was);
    if (s) return s;
    memcpy(r->text, it_f32(to.hidden), (size_t)to.hidden->n * sizeof(float));
    it_ctx_release(&r->ctx, mk);
    it_train_draw_noise(r->o->seed, step, 0, B, r->lc, r->lh, r->lw, 0.0f, 0, r->sched.cfg.num_train_timesteps,
                        r->noise, r->ts);
    return IT_OK;
}

/* ---------------------------------------------------------------- cache */

/* The latent cache is a memo (any subset of it gives the same run), saved
 * beside the checkpoints so that a resumed run does not encode again. */
static it_status save_cache(it_err *err, unet_run *r)
{
    if (!r->n_unsaved) return IT_OK;
    char path[1100];
    snprintf(path, sizeof path, "%s/latents.safetensors", r->run);
    it_safetensors_writer *w;
    IT_TRY(it_safetensors_writer_new(err, &w));
    int64_t P = r->u.pool;
    it_status s = it_safetensors_writer_add(err, w, "latents", IT_DTYPE_F16, 2, (int64_t[]){P, (int64_t)r->li}, r->cache);
    if (!s) s = it_safetensors_writer_add_raw(err, w, "have", "U8", 1, &P, r->have);
    if (!s) s = it_safetensors_writer_set_metadata(err, w, "vae", r->vae_fp);
    if (!s) s = it_safetensors_writer_save(err, w, path);
    it_safetensors_writer_free(w);
    if (!s) r->n_unsaved = 0, r->t_cache_saved = it_time_now();
    return s;
}

static it_status load_cache(it_err *err, unet_run *r)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/latents.safetensors", r->run);
    if (!it_file_exists(path)) return IT_OK;
    it_safetensors *f;
    IT_TRY(it_safetensors_open(err, &f, path));
    const it_safetensors_tensor *l = it_safetensors_find(f, "latents"), *h = it_safetensors_find(f, "have");
    it_status s = IT_OK;
    size_t P = (size_t)r->u.pool;
    const char *fp = it_safetensors_metadata_get(f, "vae");
    if (!fp || strcmp(fp, r->vae_fp)) {
        /* Latents of another VAE: recomputed (the next save replaces the file). */
        IT_LOG_W("%s: latents of another VAE (%s, now %s); encoding again", path, fp ? fp : "unknown", r->vae_fp);
    } else if (!l || !h || strcmp(l->dtype_name, "F16") || strcmp(h->dtype_name, "U8") || l->numel != P * r->li ||
        h->numel != P) {
        s = it_err_set(err, IT_ERR_FORMAT, "%s: not a latent cache of %zu x %zu f16 values (remove it)", path, P,
                       r->li);
    } else {
        memcpy(r->cache, l->data, l->nbytes);
        memcpy(r->have, h->data, P);
        r->n_cached = 0;
        for (size_t i = 0; i < P; i++) r->n_cached += r->have[i] != 0;
    }
    it_safetensors_close(f);
    return s;
}

/* ---------------------------------------------------------------- step */

/* shadow -= (1 - d) (shadow - w), d = min(decay, (1 + s) / (10 + s)):
 * diffusers EMAModel's default warm-up, so early weights fade fast. Run at
 * the start of step s on the weights after s updates; the shadow is a
 * frozen parameter of the checkpoint, so resume continues it exactly. */
static void ema_update(unet_run *r, int64_t step)
{
    if (!r->shadow || step == 0) return;
    double d = (1.0 + (double)step) / (10.0 + (double)step);
    if (d > r->u.ema_decay) d = r->u.ema_decay;
    float a = (float)(1.0 - d);
    for (size_t i = 0; i < r->n_unet; i++) {
        const it_optim_param *w = &r->params[i], *sh = &r->params[r->n_unet + i];
        for (size_t k = 0; k < w->n; k++) sh->data[k] -= a * (sh->data[k] - w->data[k]);
    }
}

static it_status unet_step(it_err *err, void *user, int64_t step, it_pretrain_stats *st)
{
    unet_run *r = user;
    ema_update(r, step);
    it_ctx_reset(&r->ctx);
    IT_TRY(make_batch(err, r, step));
    it_ctx_reset(&r->ctx);
    it_train_batch b = {.batch = r->batch, .c = r->lc, .h = r->lh, .w = r->lw, .t_len = r->t_len, .t_dim = r->t_dim,
                        .latents = r->lat, .text = r->text, .noise = r->noise, .timesteps = r->ts};
    it_train_loss_opts lo = {0.0f, IT_PREDICT_EPSILON, 1.0f};
    IT_TRY(it_train_step_loss(err, &r->ctx, &r->unet, &r->sched, &b, &lo, &st->loss));
    st->n_terms = 1;
    st->term_name[0] = "cached_latents";
    st->term[0] = (double)r->n_cached;
    if (r->n_unsaved >= 512 && it_time_now() - r->t_cache_saved > 300) IT_TRY(save_cache(err, r));
    return IT_OK;
}

/* ---------------------------------------------------------------- export */

static it_status export_unet(it_err *err, unet_run *r, const it_pretrain_result *res)
{
    const char *out = r->o->out;
    char p[1200], steps[32];
    IT_TRY(write_sub_json(err, out, "unet", "config.json", it_toy_unet_config_json(&r->unet.cfg)));
    /* The EMA shadow is what gets shipped; the run is over (or stopping)
     * and its raw weights are in the checkpoint. */
    if (r->shadow) memcpy(r->unet.params.data, r->shadow, it_params_numel(&r->unet.params) * sizeof(float));
    snprintf(p, sizeof p, "%s/unet/diffusion_pytorch_model.safetensors", out);
    snprintf(steps, sizeof steps, "%lld", (long long)res->step);
    const char *meta[] = {"format", "pt", "intenttuner_steps", steps, "intenttuner_status",
                          res->finished ? "final" : "interim", NULL};
    IT_TRY(it_pretrain_export_params(err, &r->unet.params, p, 1, meta));
    return it_toy_pipeline_files_write(err, out);
}

static it_status run_key(it_err *err, unet_run *r, char **key)
{
    json_t *arch = it_toy_unet_config_json(&r->unet.cfg);
    json_t *k = json_pack("{s:s, s:o, s:I, s:i, s:f, s:i, s:f, s:f, s:i, s:i}", "component", "unet", "unet", arch,
                          "steps", (json_int_t)r->steps, "batch", r->batch, "lr", r->lr, "pool", r->u.pool, "ema_decay",
                          r->u.ema_decay, "caption_dropout", r->u.caption_dropout, "warmup", r->u.warmup, "text_len",
                          r->t_len);
    if (k) {
        json_object_set_new(k, "vae", json_string(r->vae_fp));
        json_object_set_new(k, "text_encoder", json_string(r->text_fp));
        if (r->u.init[0]) json_object_set_new(k, "init", json_string(r->init_fp));
    }
    *key = k ? json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(k);
    return *key ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "out of memory");
}

it_status it_pretrain_unet(it_err *err, const it_pretrain_opts *o)
{
    unet_run r;
    char *key = NULL;
    it_pretrain_result res;
    memset(&res, 0, sizeof res);
    it_status s = run_open(err, &r, o);
    if (!s) s = load_cache(err, &r);
    if (!s) s = run_key(err, &r, &key);
    if (!s) {
        it_pretrain_loop l;
        memset(&l, 0, sizeof l);
        l.key = key;
        l.params = r.params, l.n_params = r.n_params;
        l.optim = it_optim_adamw_defaults(r.lr);
        l.sched = it_lr_schedule_make(IT_LR_COSINE, r.u.warmup, r.steps);
        l.max_grad_norm = 1.0;
        l.steps = r.steps;
        l.step = unet_step;
        l.user = &r;
        if (!o->quiet)
            IT_LOG_I("unet: %zu weights, %d images of %dx%d -> latents %lldx%lldx%lld, text %dx%d, batch %d, %lld steps",
                     it_params_numel(&r.unet.params), r.u.pool, r.img, r.img, (long long)r.lc, (long long)r.lh,
                     (long long)r.lw, r.t_len, r.t_dim, r.batch, (long long)r.steps);
        s = it_pretrain_train(err, o, &l, &res);
    }
    if (!s || res.step > 0) {
        it_err e2; /* keep the cache even when the loop failed: it cost time */
        it_status s2 = save_cache(s ? &e2 : err, &r);
        if (!s) s = s2;
    }
    int export = res.step > 0 && (res.finished || o->export_partial || o->export_only);
    if (!s && export) s = export_unet(err, &r, &res);
    if (!s && export) s = it_pretrain_record(err, o, &res, NULL);
    free(key);
    run_free(&r);
    return s;
}
