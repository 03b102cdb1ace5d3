/* toyclip.c: the toy CLIP's tokenizer, configs, initialisation, batches,
 * contrastive loss and export (see toyclip.h). */
#include "toy/toyclip.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "tensor/autograd.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_gemm.h"
#include "tensor/ops_loss.h"
#include "tensor/ops_shape.h"
#include "tensor/safetensors.h"
#include "toy/captions.h"
#include "toy/toydraw.h"

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ================================================================ captions */

/* The caption of image `index` of a stream: style, name and variant drawn
 * from (seed, index). p_long < 0: the tokenizer's mixture, a third each of
 * short, long and tag-list captions; otherwise long captions with chance
 * p_long and short and tag lists sharing the rest (docs/TOYWORLD.md: long
 * captions state 5-10 attributes, so each pair teaches more, and the
 * contrastive loss leaves the background-only plateau several times
 * sooner). Names on 70 % either way. */
static it_status caption_of(it_err *err, it_toy_caption *cap, const it_toy_attrs *a, uint64_t seed,
                            uint64_t index, float p_long)
{
    it_rng r;
    it_rng_init(&r, mix64(seed ^ mix64(index + 0xC1A9ull)));
    int style = (int)it_rng_below(&r, 3);
    if (p_long >= 0) {
        float u = it_rng_float(&r), v = it_rng_float(&r);
        style = u < p_long ? IT_TOY_CAP_LONG : v < 0.5f ? IT_TOY_CAP_SHORT : IT_TOY_CAP_TAGS;
    }
    int with_name = it_rng_float(&r) < 0.7f;
    int variant = (int)it_rng_below(&r, 1 << 20);
    return it_toy_caption_make(err, cap, a, (it_toy_caption_style)style, with_name, 0, seed, index, variant);
}

/* ================================================================ tokenizer */

/* Its own stream: the vocabulary does not depend on the training seed. */
#define TOKENIZER_SEED 0x70C1ull

it_status it_toyclip_tokenizer_build(it_err *err, const char *dir, int n_images, it_bpe_result *res)
{
    if (n_images < 1) return it_err_set(err, IT_ERR_ARG, "toy clip tokenizer: n_images must be >= 1");
    it_bpe_trainer *tr = NULL;
    IT_TRY(it_bpe_trainer_new(err, &tr));
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    it_status st = IT_OK;
    for (int i = 0; i < n_images && !st; i++) {
        it_toy_attrs a;
        it_toy_caption cap;
        st = it_toy_sample(err, &a, &c, TOKENIZER_SEED, (uint64_t)i, IT_TOY_PRETRAIN);
        if (!st) st = caption_of(err, &cap, &a, TOKENIZER_SEED, (uint64_t)i, -1.0f);
        if (!st) st = it_bpe_trainer_add_text(err, tr, cap.text, strlen(cap.text));
    }
    /* min_frequency 8: a word must recur to become a token; the cap is far
     * above what the caption vocabulary needs (about 150 words). */
    it_bpe_options o = {4096, 8};
    it_bpe_result r = {0};
    if (!st) st = it_bpe_trainer_learn(err, tr, &o, &r);
    if (!st) st = it_bpe_trainer_save(err, tr, dir);
    if (!st && res) *res = r;
    it_bpe_trainer_free(tr);
    return st;
}

/* ================================================================ config */

int it_toyclip_size_parse(const char *name)
{
    if (!strcmp(name, "toy")) return IT_TOYCLIP_TOY;
    if (!strcmp(name, "tiny")) return IT_TOYCLIP_TINY;
    return -1;
}

void it_toyclip_config_make(it_toyclip_config *c, it_toyclip_size size, const it_clip_tokenizer *tok)
{
    memset(c, 0, sizeof *c);
    it_clip_info info;
    it_clip_tokenizer_info(tok, &info);
    int tiny = size == IT_TOYCLIP_TINY;
    /* Toy: 192 wide, 4 layers per tower, 64 patches + class token: about
     * 3.4 s of one core per step of 128 pairs (docs/TOYWORLD.md). */
    c->embed_dim = tiny ? 16 : 192;
    it_clip_text_config *t = &c->text;
    t->vocab_size = (int)info.n_vocab;
    t->hidden = tiny ? 32 : 192;
    t->intermediate = 4 * t->hidden;
    t->n_layers = tiny ? 2 : 4;
    t->n_heads = tiny ? 2 : 3;
    t->max_positions = IT_TOYCLIP_CONTEXT;
    t->act = IT_CLIP_QUICK_GELU;
    t->eps = 1e-5f;
    t->projection_dim = c->embed_dim;
    t->has_projection = 1;
    t->eos_token_id = info.eos;
    it_clip_vision_config *v = &c->vision;
    it_clip_vision_config_default(v);
    v->hidden = tiny ? 32 : 192;
    v->intermediate = 4 * v->hidden;
    v->n_layers = tiny ? 2 : 4;
    v->n_heads = tiny ? 2 : 3;
    v->image_size = IT_TOYCLIP_RENDER;
    v->patch_size = tiny ? 32 : 16;
    v->channels = 3;
    v->act = IT_CLIP_QUICK_GELU;
    v->eps = 1e-5f;
    v->projection_dim = c->embed_dim;
}

/* A float config value as the decimal people write (1e-05, not
 * 9.9999997e-06). */
static double tidy(float v)
{
    char b[32];
    snprintf(b, sizeof b, "%g", (double)v);
    return strtod(b, NULL);
}

static json_t *text_config_obj(const it_toyclip_config *c, int top_level)
{
    const it_clip_text_config *t = &c->text;
    json_t *o = json_object();
    if (!o) return NULL;
    if (top_level) {
        json_object_set_new(o, "architectures", json_pack("[s]", "CLIPTextModel"));
        json_object_set_new(o, "torch_dtype", json_string("float16"));
    }
    json_object_set_new(o, "model_type", json_string("clip_text_model"));
    json_object_set_new(o, "vocab_size", json_integer(t->vocab_size));
    json_object_set_new(o, "hidden_size", json_integer(t->hidden));
    json_object_set_new(o, "intermediate_size", json_integer(t->intermediate));
    json_object_set_new(o, "num_hidden_layers", json_integer(t->n_layers));
    json_object_set_new(o, "num_attention_heads", json_integer(t->n_heads));
    json_object_set_new(o, "max_position_embeddings", json_integer(t->max_positions));
    json_object_set_new(o, "hidden_act", json_string("quick_gelu"));
    json_object_set_new(o, "layer_norm_eps", json_real(tidy(t->eps)));
    json_object_set_new(o, "projection_dim", json_integer(c->embed_dim));
    json_object_set_new(o, "bos_token_id", json_integer(t->eos_token_id - 1));
    json_object_set_new(o, "eos_token_id", json_integer(t->eos_token_id));
    json_object_set_new(o, "pad_token_id", json_integer(t->eos_token_id));
    json_object_set_new(o, "initializer_range", json_real(0.02));
    json_object_set_new(o, "initializer_factor", json_real(1.0));
    json_object_set_new(o, "attention_dropout", json_real(0.0));
    return o;
}

static json_t *vision_config_obj(const it_toyclip_config *c)
{
    const it_clip_vision_config *v = &c->vision;
    return json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:f, s:i, s:f, s:f, s:f}", "model_type",
                     "clip_vision_model", "hidden_size", v->hidden, "intermediate_size", v->intermediate,
                     "num_hidden_layers", v->n_layers, "num_attention_heads", v->n_heads, "image_size",
                     v->image_size, "patch_size", v->patch_size, "num_channels", v->channels, "hidden_act",
                     "quick_gelu", "layer_norm_eps", tidy(v->eps), "projection_dim", c->embed_dim,
                     "initializer_range", 0.02, "initializer_factor", 1.0, "attention_dropout", 0.0);
}

static char *dump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8)) : NULL;
    json_decref(o);
    return s;
}

char *it_toyclip_config_json(const it_toyclip_config *c)
{
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "architectures", json_pack("[s]", "CLIPModel"));
    json_object_set_new(o, "model_type", json_string("clip"));
    json_object_set_new(o, "projection_dim", json_integer(c->embed_dim));
    json_object_set_new(o, "logit_scale_init_value", json_real(2.6592));
    json_object_set_new(o, "initializer_factor", json_real(1.0));
    json_object_set_new(o, "torch_dtype", json_string("float16"));
    json_object_set_new(o, "text_config", text_config_obj(c, 0));
    json_object_set_new(o, "vision_config", vision_config_obj(c));
    return dump(o);
}

char *it_toyclip_text_config_json(const it_toyclip_config *c) { return dump(text_config_obj(c, 1)); }

void it_toyclip_preprocess(it_preprocess *p)
{
    it_preprocess_clip_default(p);
    p->shortest_edge = p->crop_w = p->crop_h = IT_TOYCLIP_RENDER;
}

static char *preprocess_json(const it_preprocess *p)
{
    json_t *o = json_pack("{s:{s:i, s:i}, s:b, s:b, s:b, s:b, s:b, s:[f,f,f], s:s, s:[f,f,f], s:i, s:f, s:{s:i}}",
                          "crop_size", "height", p->crop_h, "width", p->crop_w, "do_center_crop", 1,
                          "do_convert_rgb", 1, "do_normalize", 1, "do_rescale", 1, "do_resize", 1, "image_mean",
                          (double)p->mean[0], (double)p->mean[1], (double)p->mean[2], "image_processor_type",
                          "CLIPImageProcessor", "image_std", (double)p->std[0], (double)p->std[1],
                          (double)p->std[2], "resample", 3, "rescale_factor", 1.0 / 255.0, "size",
                          "shortest_edge", p->shortest_edge);
    return dump(o);
}

/* ================================================================ model */

static it_status add_param(it_err *err, void *user, it_tensor *t)
{
    (void)err;
    *(size_t *)user += (size_t)t->n;
    return IT_OK;
}

it_status it_toyclip_each_param(it_err *err, it_toyclip *m, it_toyclip_param_fn fn, void *user)
{
    for (size_t i = 0; i < m->text.params.n; i++) IT_TRY(fn(err, user, m->text.params.items[i]));
    for (size_t i = 0; i < m->vision.params.n; i++) IT_TRY(fn(err, user, m->vision.params.items[i]));
    return fn(err, user, &m->scale);
}

size_t it_toyclip_numel(const it_toyclip *m)
{
    size_t n = 0;
    it_toyclip_each_param(NULL, (it_toyclip *)m, add_param, &n);
    return n;
}

static int ends(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* transformers' CLIPPreTrainedModel._init_weights with factor 1:
 * embeddings N(0, 0.02), class token N(0, d^-1/2), q/k/v and fc2
 * N(0, d^-1/2 (2L)^-1/2), out_proj N(0, d^-1/2), fc1 N(0, (2d)^-1/2),
 * projections N(0, d^-1/2), layer norms 1/0, biases 0. */
static float init_std(const char *name, int d, int L, int *ones)
{
    *ones = 0;
    double in_std = 1.0 / sqrt((double)d) / sqrt(2.0 * L);
    if (ends(name, ".bias")) return 0;
    if (strstr(name, "norm")) return *ones = 1, 0;
    if (ends(name, "class_embedding")) return (float)(1.0 / sqrt((double)d));
    if (strstr(name, "embedding")) return 0.02f;
    if (strstr(name, "q_proj") || strstr(name, "k_proj") || strstr(name, "v_proj") || strstr(name, "fc2"))
        return (float)in_std;
    if (strstr(name, "out_proj") || strstr(name, "projection")) return (float)(1.0 / sqrt((double)d));
    if (strstr(name, "fc1")) return (float)(1.0 / sqrt(2.0 * d));
    return 0.02f;
}

static void init_params(it_params *ps, int d, int L, uint64_t seed)
{
    for (size_t i = 0; i < ps->n; i++) {
        it_tensor *t = ps->items[i];
        int ones;
        float sd = init_std(t->name, d, L, &ones);
        float *x = it_f32(t);
        if (sd > 0) {
            it_rng r;
            it_rng_init(&r, mix64(seed ^ mix64(i + 1)));
            it_rng_normal(&r, x, (size_t)t->n, 0.0f, sd);
        } else
            for (int64_t k = 0; k < t->n; k++) x[k] = ones ? 1.0f : 0.0f;
    }
}

it_status it_toyclip_init(it_err *err, it_toyclip *m, const it_toyclip_config *cfg, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    it_toyclip_preprocess(&m->pre);
    IT_TRY(it_clip_text_init(err, &m->text, &cfg->text, "text_model.", "text_projection", IT_MODEL_TRAINABLE));
    it_status st = it_clip_vision_init(err, &m->vision, &cfg->vision, "vision_model.", "pre_layrnorm",
                                       "visual_projection", IT_MODEL_TRAINABLE);
    if (!st) st = it_tensor_init_param(err, &m->scale, "logit_scale", &m->logit_scale, &m->logit_scale_grad,
                                       IT_SHAPE(1));
    if (st) {
        it_toyclip_free(m);
        return st;
    }
    init_params(&m->text.params, cfg->text.hidden, cfg->text.n_layers, mix64(seed ^ 0x7E47ull));
    init_params(&m->vision.params, cfg->vision.hidden, cfg->vision.n_layers, mix64(seed ^ 0x5151ull));
    m->logit_scale = 2.6592f; /* log(1 / 0.07), CLIP's initial temperature */
    return IT_OK;
}

void it_toyclip_free(it_toyclip *m)
{
    it_clip_text_free(&m->text);
    it_clip_vision_free(&m->vision);
    memset(m, 0, sizeof *m);
}

/* ================================================================ data */

it_status it_toyclip_batch_alloc(it_err *err, it_toyclip_batch *b, int B)
{
    memset(b, 0, sizeof *b);
    size_t S = IT_TOYCLIP_RENDER;
    b->B = B;
    b->p_long = -1.0f;
    b->rgb = it_malloc((size_t)B * S * S * 3);
    b->attrs = it_malloc((size_t)B * sizeof *b->attrs);
    b->pixels = it_malloc((size_t)B * 3 * S * S * sizeof(float));
    b->ids = it_malloc((size_t)B * IT_TOYCLIP_CONTEXT * sizeof(int32_t));
    b->ids77 = it_malloc((size_t)B * IT_TOYCLIP_CONTEXT * sizeof(int32_t));
    b->captions = it_malloc((size_t)B * sizeof *b->captions);
    if (!b->rgb || !b->attrs || !b->pixels || !b->ids || !b->ids77 || !b->captions) {
        it_toyclip_batch_free(b);
        return it_err_set(err, IT_ERR_NOMEM, "toy clip: out of memory for a batch of %d", B);
    }
    return IT_OK;
}

void it_toyclip_batch_free(it_toyclip_batch *b)
{
    it_free(b->rgb);
    it_free(b->attrs);
    it_free(b->pixels);
    it_free(b->ids);
    it_free(b->ids77);
    it_free(b->captions);
    memset(b, 0, sizeof *b);
}

/* Mild augmentation that keeps every captioned attribute true: a
 * horizontal flip (no caption word says left or right) and a shift of up
 * to 6 px with the border pixels repeated. No colour changes: colours are
 * what most captions talk about. out may not alias in. */
static void augment(uint8_t *out, const uint8_t *in, int S, uint64_t seed, uint64_t index)
{
    it_rng r;
    it_rng_init(&r, mix64(seed ^ mix64(index + 0xA06ull)));
    int flip = it_rng_float(&r) < 0.5f;
    int dx = (int)it_rng_below(&r, 13) - 6, dy = (int)it_rng_below(&r, 13) - 6;
    for (int y = 0; y < S; y++) {
        int sy = y - dy < 0 ? 0 : y - dy >= S ? S - 1 : y - dy;
        for (int x = 0; x < S; x++) {
            int xx = flip ? S - 1 - x : x;
            int sx = xx - dx < 0 ? 0 : xx - dx >= S ? S - 1 : xx - dx;
            memcpy(out + ((size_t)y * S + x) * 3, in + ((size_t)sy * S + sx) * 3, 3);
        }
    }
}

it_status it_toyclip_batch_make(it_err *err, it_toyclip_batch *b, const it_clip_tokenizer *tok,
                                const it_preprocess *pre, uint64_t seed, int64_t step,
                                float p_character, int augment_on)
{
    int B = b->B, S = IT_TOYCLIP_RENDER, L = IT_TOYCLIP_CONTEXT;
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    c.p_character = p_character;
    uint64_t first = (uint64_t)step * (uint64_t)B;
    IT_TRY(it_toy_render_batch(err, S, S, &c, seed, first, B, IT_TOY_PRETRAIN, b->rgb, b->attrs, NULL));
    uint8_t *tmp = it_malloc((size_t)S * S * 3);
    if (!tmp) return it_err_set(err, IT_ERR_NOMEM, "toy clip: out of memory");
    it_status st = IT_OK;
    int T = 2;
    for (int i = 0; i < B && !st; i++) {
        uint64_t index = first + (uint64_t)i;
        const uint8_t *src = b->rgb + (size_t)i * S * S * 3;
        if (augment_on) augment(tmp, src, S, seed, index);
        else memcpy(tmp, src, (size_t)S * S * 3);
        it_image img = {S, S, 3, tmp};
        it_preprocess_normalize(pre, &img, b->pixels + (size_t)i * 3 * S * S);
        it_toy_caption cap;
        int n_valid = 0;
        st = caption_of(err, &cap, &b->attrs[i], seed, index, b->p_long);
        if (!st) st = it_clip_encode_padded(err, tok, b->ids77 + (size_t)i * L, L, &n_valid, cap.text, strlen(cap.text));
        if (!st) snprintf(b->captions[i], sizeof b->captions[i], "%s", cap.text);
        if (n_valid > T) T = n_valid;
    }
    it_free(tmp);
    IT_TRY(st);
    b->T = T;
    for (int i = 0; i < B; i++) memcpy(b->ids + (size_t)i * T, b->ids77 + (size_t)i * L, (size_t)T * sizeof(int32_t));
    return IT_OK;
}

/* ================================================================ loss */

/* Top-1 accuracy of rows (dim 0) or columns of logits (B, B). */
static double diag_acc(const float *lg, int B, int by_col)
{
    int ok = 0;
    for (int i = 0; i < B; i++) {
        int best = 0;
        for (int j = 1; j < B; j++) {
            float v = by_col ? lg[(size_t)j * B + i] : lg[(size_t)i * B + j];
            float w = by_col ? lg[(size_t)best * B + i] : lg[(size_t)i * B + best];
            if (v > w) best = j;
        }
        ok += best == i;
    }
    return (double)ok / B;
}

it_status it_toyclip_loss(it_err *err, it_ctx *ctx, it_toyclip *m, it_tensor *pixels, it_tensor *ids,
                          it_tensor **loss, it_toyclip_stats *stats)
{
    *loss = NULL;
    int64_t B = pixels->shape[0];
    if (ids->ndim != 2 || ids->shape[0] != B)
        return it_err_set(err, IT_ERR_ARG, "toy clip: %lld images but ids of another batch size", (long long)B);
    it_clip_vision_out vo;
    it_clip_text_out to;
    IT_TRY(it_clip_vision_forward(err, ctx, &m->vision, pixels, &vo));
    IT_TRY(it_clip_text_forward(err, ctx, &m->text, ids, 0, 1, &to));
    it_tensor *img = it_op_l2_normalize(ctx, vo.projected, 1e-12f);         /* (B, E) */
    it_tensor *txt = it_op_l2_normalize(ctx, to.projected, 1e-12f);         /* (B, E) */
    it_tensor *lg = it_op_mul(ctx, it_op_matmul(ctx, img, txt, 0, 1), it_op_exp(ctx, &m->scale)); /* (B, B) */
    it_tensor *labels = it_tensor_new(ctx, IT_DTYPE_I32, IT_SHAPE(B));
    if (labels)
        for (int64_t i = 0; i < B; i++) ((int32_t *)labels->data)[i] = (int32_t)i;
    it_tensor *li = it_op_cross_entropy(ctx, lg, labels);
    it_tensor *lt = it_op_cross_entropy(ctx, it_op_transpose(ctx, lg, 0, 1), labels);
    it_tensor *l = it_op_scale(ctx, it_op_add(ctx, li, lt), 0.5f, 0.0f);
    IT_TRY(it_ctx_status(ctx, err));
    *loss = l;
    if (stats) {
        stats->loss = it_f32(l)[0];
        stats->vision_pooled = vo.pooled;
        stats->acc_i2t = diag_acc(it_f32(lg), (int)B, 0);
        stats->acc_t2i = diag_acc(it_f32(lg), (int)B, 1);
    }
    return IT_OK;
}

/* ================================================================ export */

/* dir/name into out, or IT_ERR_ARG when it does not fit. */
static it_status join(it_err *err, char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return it_err_set(err, IT_ERR_ARG, "toy clip: path too long: %s/%s", dir, name);
    return IT_OK;
}

static it_status write_text(it_err *err, const char *dir, const char *name, char *text)
{
    if (!text) return it_err_set(err, IT_ERR_NOMEM, "toy clip: out of memory writing %s", name);
    char path[4096];
    it_status st = join(err, path, sizeof path, dir, name);
    if (!st) st = it_file_write_atomic(err, path, text, strlen(text));
    free(text);
    return st;
}

static it_status copy_file(it_err *err, const char *from_dir, const char *to_dir, const char *name)
{
    char a[4096], b[4096];
    IT_TRY(join(err, a, sizeof a, from_dir, name));
    IT_TRY(join(err, b, sizeof b, to_dir, name));
    uint8_t *data = NULL;
    size_t n = 0;
    IT_TRY(it_file_read(err, &data, &n, a, 64u << 20));
    it_status st = it_file_write_atomic(err, b, data, n);
    it_free(data);
    return st;
}

static const char *const TOKENIZER_FILES[] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                              "special_tokens_map.json"};

static it_status copy_tokenizer(it_err *err, const char *tok_dir, const char *to_dir)
{
    for (size_t i = 0; i < sizeof TOKENIZER_FILES / sizeof *TOKENIZER_FILES; i++)
        IT_TRY(copy_file(err, tok_dir, to_dir, TOKENIZER_FILES[i]));
    return IT_OK;
}

static it_status sub_dir(it_err *err, char *out, size_t cap, const char *root, const char *name)
{
    IT_TRY(join(err, out, cap, root, name));
    return it_mkdir_p(err, out);
}

it_status it_toyclip_write_configs(it_err *err, const it_toyclip_config *cfg, const char *tok_dir,
                                   const char *root)
{
    char clip[4096], te[4096];
    it_preprocess pre;
    it_toyclip_preprocess(&pre);
    IT_TRY(sub_dir(err, clip, sizeof clip, root, "clip"));
    IT_TRY(sub_dir(err, te, sizeof te, root, "text_encoder"));
    IT_TRY(write_text(err, clip, "config.json", it_toyclip_config_json(cfg)));
    IT_TRY(write_text(err, clip, "preprocessor_config.json", preprocess_json(&pre)));
    IT_TRY(copy_tokenizer(err, tok_dir, clip));
    return write_text(err, te, "config.json", it_toyclip_text_config_json(cfg));
}

typedef struct add_ctx {
    it_safetensors_writer *w;
    it_dtype dtype;
    int text_only;                /* CLIPTextModel: text_model.* without the projection */
} add_ctx;

static it_status add_tensor(it_err *err, void *user, it_tensor *t)
{
    add_ctx *a = user;
    int is_scale = !strcmp(t->name, "logit_scale");
    if (a->text_only && strncmp(t->name, "text_model.", 11)) return IT_OK;
    if (is_scale) /* a 0-dim tensor, as CLIPModel stores it, kept in f32 */
        return it_safetensors_writer_add_f32_as(err, a->w, t->name, IT_DTYPE_F32, 0, t->shape, it_f32(t));
    return it_safetensors_writer_add_f32_as(err, a->w, t->name, a->dtype, t->ndim, t->shape, it_f32(t));
}

static it_status save_weights(it_err *err, const it_toyclip *m, const char *path, it_dtype dtype, int text_only,
                              const char *const *meta)
{
    add_ctx a = {NULL, dtype, text_only};
    IT_TRY(it_safetensors_writer_new(err, &a.w));
    it_status st = it_toyclip_each_param(err, (it_toyclip *)m, add_tensor, &a);
    if (!st) st = it_safetensors_writer_set_metadata(err, a.w, "format", "pt");
    for (int i = 0; !st && meta && meta[i] && meta[i + 1]; i += 2)
        st = it_safetensors_writer_set_metadata(err, a.w, meta[i], meta[i + 1]);
    if (!st) st = it_safetensors_writer_save(err, a.w, path);
    it_safetensors_writer_free(a.w);
    return st;
}

it_status it_toyclip_export(it_err *err, const it_toyclip *m, const char *tok_dir, const char *root,
                            it_dtype dtype, const char *const *meta)
{
    if (dtype != IT_DTYPE_F16 && dtype != IT_DTYPE_F32)
        return it_err_set(err, IT_ERR_ARG, "toy clip: export dtype must be f16 or f32");
    IT_TRY(it_toyclip_write_configs(err, &m->cfg, tok_dir, root));
    char path[4096];
    IT_TRY(join(err, path, sizeof path, root, "clip/model.safetensors"));
    IT_TRY(save_weights(err, m, path, dtype, 0, meta));
    IT_TRY(join(err, path, sizeof path, root, "text_encoder/model.safetensors"));
    return save_weights(err, m, path, dtype, 1, meta);
}
