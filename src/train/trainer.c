/* trainer.c: configuration, the training loop, checkpoints and resume. */
#include "train/trainer.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/rng.h"
#include "diffusion/pipeline.h"
#include "image/image.h"
#include "models/sd_pipeline_load.h"
#include "tensor/autograd.h"
#include "tensor/optim.h"
#include "train/train_data.h"
#include "train/lora.h"
#include "train/lora_file.h"
#include "train/train_step.h"

/* ------------------------------------------------------------ config */

void it_train_config_init(it_train_config *c)
{
    memset(c, 0, sizeof *c);
    c->rank = 16, c->alpha = 8, c->train_unet = 1;
    c->lr = 1e-4, c->weight_decay = 1e-2, c->max_grad_norm = 1.0;
    snprintf(c->lr_schedule, sizeof c->lr_schedule, "constant");
    c->steps = 1000, c->batch = 1, c->accum = 1, c->resolution = 512;
    c->save_every = 100;
    c->sample_steps = 20, c->sample_cfg = 7;
    c->prior_loss_weight = 1;
    snprintf(c->save_precision, sizeof c->save_precision, "f32");
}

typedef enum { K_STR, K_INT, K_DBL, K_BOOL } key_kind;
typedef struct key_def {
    const char *name;
    key_kind kind;
    size_t off, size;
    double lo, hi;
} key_def;

#define KS(n, f) {n, K_STR, offsetof(it_train_config, f), sizeof(((it_train_config *)0)->f), 0, 0}
#define KI(n, f, lo, hi) {n, K_INT, offsetof(it_train_config, f), 0, lo, hi}
#define KD(n, f, lo, hi) {n, K_DBL, offsetof(it_train_config, f), 0, lo, hi}
#define KB(n, f) {n, K_BOOL, offsetof(it_train_config, f), 0, 0, 1}
static const key_def KEYS[] = {
    KS("model", model), KS("data", data), KS("out", out),
    KI("rank", rank, 1, 1024), KD("alpha", alpha, 0, 1e6),
    KI("conv_rank", conv_rank, 0, 1024), KD("conv_alpha", conv_alpha, 0, 1e6),
    KD("dropout", dropout, 0, 0.99), KB("train_unet", train_unet), KB("train_text", train_text),
    KB("train_unet_only", train_unet_only), KB("train_text_only", train_text_only),
    KB("gradient_checkpointing", gradient_checkpointing),
    KD("lr", lr, 0, 1), KD("text_lr", text_lr, 0, 1), KD("weight_decay", weight_decay, 0, 10), KD("max_grad_norm", max_grad_norm, 0, 1e9),
    KS("lr_schedule", lr_schedule), KI("warmup_steps", warmup_steps, 0, 1e9),
    KI("steps", steps, 1, 1e9), KI("batch", batch, 1, 1024), KI("accum", accum, 1, 1024),
    KI("resolution", resolution, 8, 4096), KI("save_every", save_every, 0, 1e9),
    {"seed", K_INT, offsetof(it_train_config, seed), 8, 0, 9.0e15},
    KD("min_snr_gamma", min_snr_gamma, 0, 1e6), KD("noise_offset", noise_offset, 0, 10),
    KB("flip", flip), KB("shuffle_captions", shuffle_captions), KI("keep_tokens", keep_tokens, 0, 255),
    KD("caption_dropout", caption_dropout, 0, 1), KS("prediction", prediction),
    KB("resume", resume), KI("sample_every", sample_every, 0, 1e9), KS("sample_prompt", sample_prompts),
    KI("sample_steps", sample_steps, 1, 1000), KD("sample_cfg", sample_cfg, 0, 100), KS("save_precision", save_precision), KI("stop_after", stop_after, 0, 1e9),
    KB("buckets", buckets), KI("min_bucket_reso", min_bucket_reso, 0, 16384),
    KI("max_bucket_reso", max_bucket_reso, 0, 16384), KB("random_crop", random_crop),
    KB("masked_loss", masked_loss), KS("mask_dir", mask_dir), KB("mask_normalize", mask_normalize),
    KS("reg_data", reg_data), KS("class_prompt", class_prompt), KD("prior_loss_weight", prior_loss_weight, 0, 1e3),
    KS("cache_latents", cache_latents),
};

/* kohya's names for the same keys. */
static const char *const ALIASES[][2] = {
    {"text_encoder_lr", "text_lr"}, {"unet_lr", "lr"}, {"learning_rate", "lr"},
    {"network_train_unet_only", "train_unet_only"},
    {"network_train_text_encoder_only", "train_text_only"},
};

static const key_def *find_key(const char *key)
{
    char k[64];
    if (strlen(key) >= sizeof k) return NULL;
    snprintf(k, sizeof k, "%s", key);
    for (char *p = k; *p; p++)
        if (*p == '-') *p = '_';
    for (size_t i = 0; i < sizeof ALIASES / sizeof ALIASES[0]; i++)
        if (!strcmp(ALIASES[i][0], k)) snprintf(k, sizeof k, "%s", ALIASES[i][1]);
    for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++)
        if (!strcmp(KEYS[i].name, k)) return &KEYS[i];
    return NULL;
}

it_status it_train_config_set(it_err *err, it_train_config *c, const char *key, const char *value)
{
    const key_def *d = find_key(key);
    if (!d) return it_err_set(err, IT_ERR_ARG, "unknown key '%s'", key);
    char *base = (char *)c + d->off, *end = NULL;
    if (d->kind == K_STR) {
        if (strlen(value) >= d->size) return it_err_set(err, IT_ERR_ARG, "%s: value too long", d->name);
        snprintf(base, d->size, "%s", value);
        return IT_OK;
    }
    if (d->kind == K_BOOL) {
        int v = !strcmp(value, "1") || !strcmp(value, "true") ? 1 : !strcmp(value, "0") || !strcmp(value, "false") ? 0 : -1;
        if (v < 0) return it_err_set(err, IT_ERR_ARG, "%s: expected true or false, got '%s'", d->name, value);
        *(int *)base = v;
        return IT_OK;
    }
    errno = 0;
    double v = strtod(value, &end);
    if (!*value || *end || errno || !isfinite(v))
        return it_err_set(err, IT_ERR_ARG, "%s: '%s' is not a number", d->name, value);
    if (v < d->lo || v > d->hi)
        return it_err_set(err, IT_ERR_ARG, "%s: %s out of range %g..%g", d->name, value, d->lo, d->hi);
    if (d->kind == K_INT) {
        if (v != floor(v)) return it_err_set(err, IT_ERR_ARG, "%s: '%s' is not an integer", d->name, value);
        if (d->size == 8) *(int64_t *)base = (int64_t)v;
        else *(int *)base = (int)v;
    } else {
        *(double *)base = v;
    }
    return IT_OK;
}

it_status it_train_config_load(it_err *err, it_train_config *c, const char *path)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return it_err_set(err, IT_ERR_FORMAT, "%s:%d: %s", path, je.line, je.text);
    it_status s = IT_OK;
    if (!json_is_object(root)) s = it_err_set(err, IT_ERR_FORMAT, "%s: expected a JSON object", path);
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (s) break;
        char buf[1100];
        if (json_is_string(v)) snprintf(buf, sizeof buf, "%s", json_string_value(v));
        else if (json_is_integer(v)) snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v)) snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
        else if (json_is_boolean(v)) snprintf(buf, sizeof buf, "%s", json_is_true(v) ? "true" : "false");
        else {
            s = it_err_set(err, IT_ERR_FORMAT, "%s: %s: expected a number, string or boolean", path, k);
            break;
        }
        it_err e2;
        if ((s = it_train_config_set(&e2, c, k, buf))) it_err_set(err, s, "%s: %s", path, e2.msg);
    }
    json_decref(root);
    return s;
}

it_status it_train_config_check(it_err *err, const it_train_config *c)
{
    if (!c->model[0]) return it_err_set(err, IT_ERR_ARG, "--model is required");
    if (!c->data[0]) return it_err_set(err, IT_ERR_ARG, "--data is required");
    if (!c->out[0]) return it_err_set(err, IT_ERR_ARG, "--out is required");
    it_lr_kind k;
    IT_TRY(it_lr_kind_parse(err, c->lr_schedule, &k));
    if (c->prediction[0] && it_pred_type_parse(c->prediction) < 0)
        return it_err_set(err, IT_ERR_ARG, "prediction: expected epsilon, v_prediction or sample, not '%s'", c->prediction);
    if (strcmp(c->save_precision, "f32") && strcmp(c->save_precision, "f16") && strcmp(c->save_precision, "bf16"))
        return it_err_set(err, IT_ERR_ARG, "save_precision: expected f32, f16 or bf16, not '%s'", c->save_precision);
    if (c->train_unet_only && c->train_text_only)
        return it_err_set(err, IT_ERR_ARG, "train_unet_only and train_text_only exclude each other");
    if (!it_train_config_unet(c) && !it_train_config_text(c))
        return it_err_set(err, IT_ERR_ARG, "nothing to train: train_unet is false and train_text is off");
    return IT_OK;
}

int it_train_config_unet(const it_train_config *c) { return c->train_text_only ? 0 : c->train_unet; }

int it_train_config_text(const it_train_config *c)
{
    return c->train_unet_only ? 0 : (c->train_text || c->train_text_only);
}

/* ------------------------------------------------------------ run state */

/* One optimiser per trained component, so that the text encoder has its
 * own learning rate (kohya's text_encoder_lr); clipping spans both. */
typedef struct group {
    int on;
    it_optim opt;
    double lr;            /* base lr (the schedule scales it) */
    const char *file;     /* optimiser state file in a checkpoint */
} group;

enum { G_UNET, G_TEXT };

typedef struct run {
    const it_train_config *c;
    it_sd_model m;
    it_schedule sched;
    it_train_data data;
    int bucket_step;      /* pixels: VAE factor x UNet downsampling */
    it_lora lora;
    group g[2];           /* G_UNET, G_TEXT */
    it_optim_param *params;
    it_lr_schedule lrs;
    it_ctx ctx;
    it_pred_type pred;
    int64_t lc, lh, lw, t_len, t_dim;
    float *lat, *noise;
    int32_t *ids;         /* (batch, t_len) token ids of the micro-batch */
    it_tensor *states;    /* text states of the micro-batch (in ctx) */
    int *ts;
    char ckdir[1100];
} run;

static size_t lat_item(const run *r) { return (size_t)(r->lc * r->lh * r->lw); }

static void run_free(run *r)
{
    it_lora_free(&r->lora);
    for (int g = 0; g < 2; g++) it_optim_free(&r->g[g].opt);
    it_free(r->params);
    it_train_data_free(&r->data);
    it_schedule_free(&r->sched);
    it_sd_free(&r->m);
    it_ctx_free(&r->ctx);
    it_free(r->lat);
    it_free(r->ids);
    it_free(r->noise);
    it_free(r->ts);
}

static it_status run_setup_model(it_err *err, run *r)
{
    const it_train_config *c = r->c;
    it_sd_load_opts o;
    it_sd_load_opts_init(&o);
    IT_TRY(it_sd_load(err, &r->m, c->model, &o));
    if (!r->m.tokenizer) return it_err_set(err, IT_ERR_NOT_FOUND, "%s: the model has no tokenizer folder", c->model);
    if (r->m.inpainting) return it_err_set(err, IT_ERR_UNSUPPORTED, "%s: inpainting models are not supported for training", c->model);
    it_schedule_config sc;
    it_schedule_config_sd(&sc);
    sc.num_train_timesteps = r->m.sched.num_train_timesteps;
    sc.beta_start = r->m.sched.beta_start, sc.beta_end = r->m.sched.beta_end;
    int bs = it_beta_schedule_parse(r->m.sched.beta_schedule);
    if (bs >= 0) sc.beta_schedule = (it_beta_schedule)bs;
    r->pred = c->prediction[0] ? (it_pred_type)it_pred_type_parse(c->prediction)
                               : (it_pred_type)r->m.sched.prediction; /* same values */
    sc.prediction = r->pred;
    IT_TRY(it_schedule_init(err, &r->sched, &sc));
    int f = 1 << (r->m.vae.cfg.n_levels - 1);
    int down = 1 << (r->m.unet.cfg.n_levels - 1);
    if (c->resolution % (f * down))
        return it_err_set(err, IT_ERR_ARG, "resolution %d must be a multiple of %d for this model", c->resolution, f * down);
    r->lc = r->m.unet.cfg.in_channels, r->lh = r->lw = c->resolution / f;
    r->bucket_step = f * down;
    r->t_len = r->m.text.cfg.max_positions, r->t_dim = r->m.text.cfg.hidden;
    return IT_OK;
}

/* The data side (train_data.h) from the config: buckets in steps of the
 * model's pixel granularity, latent files under OUT/latent_cache unless
 * cache_latents names a folder or "none". */
static it_status open_data(it_err *err, run *r)
{
    const it_train_config *c = r->c;
    it_train_data_opts o;
    it_train_data_opts_init(&o);
    o.ds.dir = c->data;
    o.ds.reg_dir = c->reg_data[0] ? c->reg_data : NULL;
    o.ds.class_prompt = c->class_prompt;
    o.ds.masked_loss = c->masked_loss || c->mask_dir[0];
    o.ds.mask_dir = c->mask_dir[0] ? c->mask_dir : NULL;
    o.ds.resolution = c->resolution, o.ds.buckets = c->buckets;
    o.ds.min_side = c->min_bucket_reso, o.ds.max_side = c->max_bucket_reso;
    o.ds.step = r->bucket_step, o.ds.batch = c->batch, o.ds.random_crop = c->random_crop;
    o.seed = (uint64_t)c->seed, o.flip = c->flip;
    o.shuffle_captions = c->shuffle_captions, o.keep_tokens = c->keep_tokens;
    o.caption_dropout = (float)c->caption_dropout;
    o.prior_loss_weight = (float)c->prior_loss_weight, o.mask_normalize = c->mask_normalize;
    char dir[1100];
    if (!strcmp(c->cache_latents, "none")) dir[0] = 0;
    else if (c->cache_latents[0]) snprintf(dir, sizeof dir, "%s", c->cache_latents);
    else snprintf(dir, sizeof dir, "%s/latent_cache", c->out);
    o.cache_dir = dir;
    return it_train_data_open(err, &r->data, &o, &r->m.vae);
}

/* The LoRA's parameters split by component (it_lora_create puts the UNet's
 * modules first), one AdamW each. */
static it_status setup_groups(it_err *err, run *r)
{
    const it_train_config *c = r->c;
    size_t nu = it_lora_count(&r->lora, 1), np = 2 * r->lora.n;
    r->params = it_calloc(np, sizeof *r->params);
    if (!r->params) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    it_lora_params(&r->lora, r->params, np);
    size_t first[2] = {0, 2 * nu}, count[2] = {2 * nu, np - 2 * nu};
    double lr[2] = {c->lr, c->text_lr > 0 ? c->text_lr : c->lr};
    const char *file[2] = {"optim.safetensors", "optim_text.safetensors"};
    for (int g = 0; g < 2; g++) {
        if (!count[g]) continue;
        it_optim_config oc = it_optim_adamw_defaults(lr[g]);
        oc.weight_decay = c->weight_decay;
        IT_TRY(it_optim_init(err, &r->g[g].opt, &oc, r->params + first[g], count[g]));
        r->g[g].on = 1, r->g[g].lr = lr[g], r->g[g].file = file[g];
    }
    if (c->text_lr > 0 && !r->g[G_TEXT].on) IT_LOG_W("text_lr is set but the text encoder is not trained");
    return IT_OK;
}

static it_status run_setup_train(it_err *err, run *r)
{
    const it_train_config *c = r->c;
    IT_TRY(open_data(err, r));
    it_lora_opts lo;
    it_lora_opts_init(&lo);
    lo.rank = c->rank, lo.alpha = (float)c->alpha, lo.conv_rank = c->conv_rank;
    lo.conv_alpha = (float)c->conv_alpha, lo.dropout = (float)c->dropout, lo.trainable = 1;
    lo.unet = it_train_config_unet(c), lo.text = it_train_config_text(c);
    IT_TRY(it_lora_create(err, &r->lora, &r->m.unet.params, &r->m.text.params, &lo, (uint64_t)c->seed));
    it_lora_attach(&r->lora);
    r->m.unet.checkpoint = r->m.text.checkpoint = c->gradient_checkpointing;
    IT_TRY(setup_groups(err, r));
    it_lr_kind k;
    IT_TRY(it_lr_kind_parse(err, c->lr_schedule, &k));
    r->lrs = it_lr_schedule_make(k, c->warmup_steps, c->steps);
    size_t B = (size_t)c->batch, li = lat_item(r);
    r->lat = it_malloc(B * li * sizeof(float));
    r->noise = it_malloc(B * li * sizeof(float));
    r->ids = it_malloc(B * (size_t)r->t_len * sizeof(int32_t));
    r->ts = it_malloc(B * sizeof(int));
    if (!r->lat || !r->noise || !r->ids || !r->ts) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    return IT_OK;
}

/* Fills lat/text/noise/ts for micro-batch `micro` of `step`; *db: its
 * size, latent shape and loss weights (train_data.h). */
static it_status make_batch(it_err *err, run *r, int64_t step, int micro, it_data_batch *db)
{
    const it_train_config *c = r->c;
    uint64_t seed = (uint64_t)c->seed;
    IT_TRY(it_train_data_batch(err, &r->data, &r->ctx, (uint64_t)step * (uint64_t)c->accum + (uint64_t)micro,
                               r->lat, db));
    int B = db->n;
    int32_t *ids = r->ids;
    for (int i = 0; i < B; i++) {
        const char *cap = it_train_data_caption(&r->data, i);
        IT_TRY(it_clip_encode_padded(err, r->m.tokenizer, ids + (size_t)i * r->t_len, (int)r->t_len, NULL, cap,
                                     strlen(cap)));
    }
    /* Recorded through the encoder when its LoRA trains, no-grad otherwise. */
    IT_TRY(it_train_text_states(err, &r->ctx, &r->m.text, ids, B, r->t_len, r->g[G_TEXT].on, &r->states));
    it_train_draw_noise(seed, step, micro, B, r->lc, db->lh, db->lw, (float)c->noise_offset, 0,
                        r->sched.cfg.num_train_timesteps, r->noise, r->ts);
    return IT_OK;
}

/* torch.nn.utils.clip_grad_norm_ over the parameters of every group (UNet
 * first, then text): it_optim_clip_grad_norm's arithmetic across optimisers. */
static double clip_groups(run *r, double max_norm)
{
    double sq = 0;
    for (int g = 0; g < 2; g++)
        for (size_t i = 0; r->g[g].on && i < r->g[g].opt.n_params; i++) {
            const it_optim_param *p = &r->g[g].opt.params[i];
            if (p->frozen) continue;
            double s = 0;
            for (size_t j = 0; j < p->n; j++) s += (double)p->grad[j] * p->grad[j];
            float tn = (float)sqrt(s);
            sq += (double)tn * tn;
        }
    float total = (float)sqrt(sq);
    float coef = (float)max_norm / (total + 1e-6f);
    if (coef > 1.0f) coef = 1.0f;
    for (int g = 0; g < 2; g++)
        for (size_t i = 0; r->g[g].on && i < r->g[g].opt.n_params; i++) {
            const it_optim_param *p = &r->g[g].opt.params[i];
            if (p->frozen) continue;
            for (size_t j = 0; j < p->n; j++) p->grad[j] *= coef;
        }
    return total;
}

static it_status train_one_step(it_err *err, run *r, int64_t step, double *loss_out)
{
    const it_train_config *c = r->c;
    double sum = 0;
    for (int micro = 0; micro < c->accum; micro++) {
        it_ctx_reset(&r->ctx);
        /* LoRA dropout draws from (seed, step, micro) so a resumed run drops
         * the same units; gradient checkpointing replays the same position. */
        r->ctx.training = 1;
        r->ctx.seed = (uint64_t)c->seed ^ 0x64726f706f7574ull;
        r->ctx.rng_offset = ((uint64_t)step * 64u + (uint64_t)micro) << 32;
        it_data_batch db;
        IT_TRY(make_batch(err, r, step, micro, &db));
        it_train_batch b = {.batch = db.n, .c = r->lc, .h = db.lh, .w = db.lw, .t_len = r->t_len,
                            .t_dim = r->t_dim, .latents = r->lat, .noise = r->noise, .timesteps = r->ts,
                            .mask = db.mask, .text_states = r->states};
        it_train_loss_opts lo = {(float)c->min_snr_gamma, r->pred, 1.0f / (float)c->accum};
        double loss = 0;
        IT_TRY(it_train_step_loss(err, &r->ctx, &r->m.unet, &r->sched, &b, &lo, &loss));
        sum += loss;
    }
    if (c->max_grad_norm > 0) {
        double n = clip_groups(r, c->max_grad_norm);
        if (!isfinite(n)) return it_err_set(err, IT_ERR_STATE, "step %lld: gradient norm is %g (diverged)", (long long)step, n);
    }
    for (int g = 0; g < 2; g++) {
        if (!r->g[g].on) continue;
        it_optim_step(&r->g[g].opt, it_lr_schedule_lr(&r->lrs, r->g[g].lr, step));
        it_optim_zero_grad(&r->g[g].opt);
    }
    *loss_out = sum / c->accum;
    return IT_OK;
}

/* ------------------------------------------------------------ checkpoints */

static it_status ckpt_paths(it_err *err, const run *r, int64_t step, char *dir, size_t n)
{
    if (snprintf(dir, n, "%s/step-%08lld", r->ckdir, (long long)step) >= (int)n)
        return it_err_set(err, IT_ERR_RANGE, "%s: path too long", r->ckdir);
    return IT_OK;
}

static void remove_ckpt(const run *r, int64_t step)
{
    char dir[1200], p[1300];
    if (ckpt_paths(NULL, r, step, dir, sizeof dir)) return;
    snprintf(p, sizeof p, "%s/lora.safetensors", dir);
    remove(p);
    for (int g = 0; g < 2; g++) {
        if (!r->g[g].on) continue;
        snprintf(p, sizeof p, "%s/%s", dir, r->g[g].file);
        remove(p);
    }
    remove(dir);
}

/* The LoRA and optimiser files first, latest.json (atomic) last: a crash at
 * any moment leaves either the previous checkpoint or the new one named. */
static it_status save_ckpt(it_err *err, run *r, int64_t step, int64_t prev)
{
    char dir[1200], p[1300];
    IT_TRY(ckpt_paths(err, r, step, dir, sizeof dir));
    IT_TRY(it_mkdir_p(err, dir));
    snprintf(p, sizeof p, "%s/lora.safetensors", dir);
    IT_TRY(it_lora_save(err, &r->lora, p, IT_DTYPE_F32, NULL, 0));
    for (int g = 0; g < 2; g++) {
        if (!r->g[g].on) continue;
        snprintf(p, sizeof p, "%s/%s", dir, r->g[g].file);
        IT_TRY(it_optim_save(err, &r->g[g].opt, p));
    }
    char data_fp[32];
    snprintf(data_fp, sizeof data_fp, "%016llx", (unsigned long long)it_train_data_fingerprint(&r->data));
    json_t *j = json_pack("{s:I, s:s, s:I, s:i, s:i, s:i, s:f, s:b, s:b, s:s}", "step", (json_int_t)step, "dir",
                          it_path_basename(dir), "seed", (json_int_t)r->c->seed, "rank", r->c->rank,
                          "batch", r->c->batch, "accum", r->c->accum, "lr", r->c->lr,
                          "train_unet", r->g[G_UNET].on, "train_text", r->g[G_TEXT].on, "data", data_fp);
    char *text = j ? json_dumps(j, JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (!text) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    snprintf(p, sizeof p, "%s/latest.json", r->ckdir);
    it_status s = it_file_write_atomic(err, p, text, strlen(text));
    free(text);
    if (!s && prev >= 0 && prev != step) remove_ckpt(r, prev);
    return s;
}

static const char *components(int unet, int text)
{
    return unet && text ? "the UNet and the text encoder" : unet ? "the UNet only" : "the text encoder only";
}

/* Loads the checkpoint named by latest.json; *step = its step, or 0 when
 * there is none. */
static it_status load_ckpt(it_err *err, run *r, int64_t *step)
{
    char p[1300], dir[1200];
    *step = 0;
    snprintf(p, sizeof p, "%s/latest.json", r->ckdir);
    if (!it_file_exists(p)) return IT_OK;
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    if (!j) return it_err_set(err, IT_ERR_FORMAT, "%s: %s", p, je.text);
    json_int_t st = json_integer_value(json_object_get(j, "step"));
    json_int_t seed = json_integer_value(json_object_get(j, "seed"));
    int rank = (int)json_integer_value(json_object_get(j, "rank"));
    int batch = (int)json_integer_value(json_object_get(j, "batch"));
    int accum = (int)json_integer_value(json_object_get(j, "accum"));
    /* Checkpoints from before text-encoder training have no such keys: UNet only. */
    json_t *ju = json_object_get(j, "train_unet"), *jt = json_object_get(j, "train_text");
    int tu = ju ? json_is_true(ju) : 1, tt = jt ? json_is_true(jt) : 0;
    /* the batch order depends on the data and buckets: refuse to resume on others */
    const char *data_fp = json_string_value(json_object_get(j, "data"));
    char want[32];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)it_train_data_fingerprint(&r->data));
    int other_data = data_fp && strcmp(data_fp, want);
    json_decref(j);
    if (other_data)
        return it_err_set(err, IT_ERR_ARG, "%s: checkpoint was made on other data or bucket settings "
                          "(images, captions, repeats, buckets or batch changed); resume needs the same", p);
    if (seed != r->c->seed || rank != r->c->rank || batch != r->c->batch || accum != r->c->accum)
        return it_err_set(err, IT_ERR_ARG, "%s: checkpoint was made with seed %lld rank %d batch %d accum %d; "
                          "resume needs the same values", p, (long long)seed, rank, batch, accum);
    if (tu != r->g[G_UNET].on || tt != r->g[G_TEXT].on)
        return it_err_set(err, IT_ERR_ARG, "%s: checkpoint trains %s; this run trains %s", p, components(tu, tt),
                          components(r->g[G_UNET].on, r->g[G_TEXT].on));
    if (st <= 0) return it_err_set(err, IT_ERR_FORMAT, "%s: bad step", p);
    IT_TRY(ckpt_paths(err, r, st, dir, sizeof dir));
    snprintf(p, sizeof p, "%s/lora.safetensors", dir);
    it_lora tmp;
    IT_TRY(it_lora_load(err, &tmp, p, &r->m.unet.params, &r->m.text.params, 0));
    it_status s = it_lora_copy_values(err, &r->lora, &tmp);
    it_lora_free(&tmp);
    if (s) return s;
    for (int g = 0; g < 2; g++) {
        if (!r->g[g].on) continue;
        snprintf(p, sizeof p, "%s/%s", dir, r->g[g].file);
        IT_TRY(it_optim_load(err, &r->g[g].opt, p));
    }
    *step = st;
    return IT_OK;
}

static it_status save_final(it_err *err, run *r, int64_t steps)
{
    const it_train_config *c = r->c;
    char p[1100], res[64], st[32], hash[32], seed[32], lr[32], nimg[32], bs[32], ulr[32], tlr[32];
    snprintf(p, sizeof p, "%s/lora.safetensors", c->out);
    snprintf(res, sizeof res, "(%d, %d)", c->resolution, c->resolution);
    snprintf(st, sizeof st, "%lld", (long long)steps);
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)r->data.ds.hash);
    snprintf(seed, sizeof seed, "%lld", (long long)c->seed);
    snprintf(lr, sizeof lr, "%g", c->lr);
    snprintf(nimg, sizeof nimg, "%zu", r->data.ds.n_train_slots);
    snprintf(bs, sizeof bs, "%d", c->batch);
    /* kohya writes "None" for a component it does not train */
    snprintf(ulr, sizeof ulr, r->g[G_UNET].on ? "%g" : "None", r->g[G_UNET].lr);
    snprintf(tlr, sizeof tlr, r->g[G_TEXT].on ? "%g" : "None", r->g[G_TEXT].lr);
    it_lora_meta meta[32] = {
        {"ss_base_model_version", r->m.v2 ? "sd_v2" : "sd_v1"},
        {"ss_sd_model_name", it_path_basename(c->model)},
        {"ss_resolution", res}, {"ss_steps", st}, {"ss_max_train_steps", st},
        {"ss_dataset_hash", hash}, {"ss_seed", seed}, {"ss_learning_rate", lr},
        {"ss_num_train_images", nimg}, {"ss_batch_size_per_device", bs},
        {"ss_unet_lr", ulr}, {"ss_text_encoder_lr", tlr},
        {"ss_network_train_unet_only", r->g[G_TEXT].on ? "False" : "True"},
        {"ss_network_train_text_encoder_only", r->g[G_UNET].on ? "False" : "True"},
        {"ss_gradient_checkpointing", c->gradient_checkpointing ? "True" : "False"},
        {"ss_v2", r->m.v2 ? "True" : "False"}, {"ss_training_comment", "intenttuner"},
    };
    it_dtype dt = !strcmp(c->save_precision, "f16") ? IT_DTYPE_F16
                  : !strcmp(c->save_precision, "bf16") ? IT_DTYPE_BF16 : IT_DTYPE_F32;
    char store[8192];
    size_t n_meta = 0;
    while (meta[n_meta].key) n_meta++;
    n_meta += it_train_data_meta(&r->data, meta + n_meta, 32 - n_meta, store, sizeof store);
    return it_lora_save(err, &r->lora, p, dt, meta, n_meta);
}

/* ------------------------------------------------------------ samples */

/* Fixed-seed images of every sample prompt with the LoRA as it stands:
 * OUT/samples/step-NNNNNNNN-K.png; the paths go into the step's log line.
 * The sampler uses its own context and no training RNG, so samples do not
 * change the run (resume stays bit-identical). */
static it_status make_samples(it_err *err, run *r, int64_t step, json_t *paths)
{
    const it_train_config *c = r->c;
    char dir[1100], prompts[4096], p[1300];
    snprintf(dir, sizeof dir, "%s/samples", c->out);
    IT_TRY(it_mkdir_p(err, dir));
    snprintf(prompts, sizeof prompts, "%s", c->sample_prompts);
    /* Samples show the LoRA as it is, without training-time dropout. */
    for (size_t i = 0; i < r->lora.n; i++) r->lora.mods[i].dropout = 0;
    it_status s = IT_OK;
    int k = 0;
    for (char *save = NULL, *pr = strtok_r(prompts, "|", &save); pr; pr = strtok_r(NULL, "|", &save), k++) {
        it_gen_opts o;
        it_gen_opts_init(&o);
        o.prompt = pr;
        o.steps = c->sample_steps;
        o.cfg = (float)c->sample_cfg;
        o.seed = (uint64_t)c->seed + (uint64_t)k;
        o.width = o.height = c->resolution;
        it_gen_result res = {0};
        if ((s = it_sd_generate(err, &r->m, NULL, &o, &res))) break;
        snprintf(p, sizeof p, "%s/step-%08lld-%d.png", dir, (long long)step, k);
        s = it_image_save_png(err, &res.images[0], p);
        it_gen_result_free(&res);
        if (s) break;
        json_array_append_new(paths, json_string(p));
    }
    for (size_t i = 0; i < r->lora.n; i++) r->lora.mods[i].dropout = (float)c->dropout;
    return s;
}

/* ------------------------------------------------------------ loop */

static void log_line(FILE *f, json_t *j)
{
    if (!f || !j) return;
    char *t = json_dumps(j, JSON_COMPACT);
    if (t) fprintf(f, "%s\n", t), fflush(f);
    free(t);
    json_decref(j);
}

static it_status run_loop(it_err *err, run *r, double *final_loss)
{
    const it_train_config *c = r->c;
    int64_t start = 0, prev = -1;
    if (c->resume) IT_TRY(load_ckpt(err, r, &start));
    prev = start > 0 ? start : -1;
    char p[1100];
    snprintf(p, sizeof p, "%s/train.jsonl", c->out);
    FILE *log = fopen(p, "a");
    if (!log) return it_err_set(err, IT_ERR_IO, "%s: cannot open for appending", p);
    if (start > 0) log_line(log, json_pack("{s:s, s:I}", "event", "resume", "step", (json_int_t)start));
    it_progress pr;
    if (!c->quiet) {
        it_progress_start_at(&pr, "train", start, c->steps);
        pr.unit = "steps";
    }
    it_status s = IT_OK;
    double loss = NAN, t0 = it_time_now();
    int done_here = 0;
    for (int64_t step = start; step < c->steps; step++) {
        if ((s = train_one_step(err, r, step, &loss))) break;
        int gl = r->g[G_UNET].on ? G_UNET : G_TEXT; /* "lr": the UNet's when it trains */
        double lr = it_lr_schedule_lr(&r->lrs, r->g[gl].lr, step);
        double tlr = it_lr_schedule_lr(&r->lrs, r->g[G_TEXT].lr, step);
        json_t *samples = json_array();
        if (c->sample_every > 0 && c->sample_prompts[0] && ((step + 1) % c->sample_every == 0 || step + 1 == c->steps) &&
            (s = make_samples(err, r, step + 1, samples))) {
            json_decref(samples);
            break;
        }
        json_t *line = json_pack("{s:I, s:f, s:f, s:f, s:o}", "step", (json_int_t)(step + 1), "loss", loss,
                                 "lr", lr, "time", it_time_now() - t0, "samples", samples);
        if (r->g[G_TEXT].on && line) json_object_set_new(line, "text_lr", json_real(tlr));
        log_line(log, line);
        if (!c->quiet) {
            char extra[96];
            if (r->g[G_UNET].on && r->g[G_TEXT].on)
                snprintf(extra, sizeof extra, "loss %.4f lr %.2e te %.2e", loss, lr, tlr);
            else
                snprintf(extra, sizeof extra, "loss %.4f lr %.2e", loss, lr);
            it_progress_update(&pr, step + 1, extra);
        }
        if ((c->save_every > 0 && (step + 1) % c->save_every == 0) || step + 1 == c->steps) {
            if ((s = save_ckpt(err, r, step + 1, prev))) break;
            prev = step + 1;
        }
        if (c->stop_after && ++done_here >= c->stop_after) break;
    }
    if (!c->quiet) it_progress_finish(&pr);
    fclose(log);
    if (!s && !(c->stop_after && done_here >= c->stop_after)) s = save_final(err, r, c->steps);
    if (final_loss) *final_loss = loss;
    return s;
}

it_status it_train_run(it_err *err, const it_train_config *c, double *final_loss)
{
    IT_TRY(it_train_config_check(err, c));
    run r;
    memset(&r, 0, sizeof r);
    r.c = c;
    it_ctx_init(&r.ctx, 0);
    it_status s = it_mkdir_p(err, c->out);
    if (!s && snprintf(r.ckdir, sizeof r.ckdir, "%s/checkpoints", c->out) >= (int)sizeof r.ckdir)
        s = it_err_set(err, IT_ERR_RANGE, "--out path too long");
    if (!s) s = it_mkdir_p(err, r.ckdir);
    if (!s) s = run_setup_model(err, &r);
    if (!s) s = run_setup_train(err, &r);
    if (!s) s = run_loop(err, &r, final_loss);
    run_free(&r);
    return s;
}
