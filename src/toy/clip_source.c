/* clip_source.c: the CLIP folder a toy component builds on, and the random
 * interim CLIP written in transformers' layout. */
#include "toy/clip_source.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "models/clip_text.h"
#include "tensor/safetensors.h"
#include "text/bpe_train.h"
#include "text/clip_tokenizer.h"
#include "toy/captions.h"
#include "toy/creature.h"
#include "vision/clip_vision.h"

void it_clip_source_defaults(it_clip_source_cfg *c)
{
    *c = (it_clip_source_cfg){.v_hidden = 192, .v_layers = 4, .v_heads = 3, .image_size = 128, .patch_size = 16,
                              .t_hidden = 192, .t_layers = 4, .t_heads = 3, .t_positions = 77,
                              .projection_dim = 192, .vocab_size = 1000, .n_captions = 3000};
}

static void jset(int *v, const json_t *o, const char *k)
{
    json_t *x = json_object_get(o, k);
    if (json_is_integer(x)) *v = (int)json_integer_value(x);
}

void it_clip_source_parse(it_clip_source_cfg *c, const json_t *o)
{
    if (!json_is_object(o)) return;
    jset(&c->v_hidden, o, "v_hidden");
    jset(&c->v_layers, o, "v_layers");
    jset(&c->v_heads, o, "v_heads");
    jset(&c->image_size, o, "image_size");
    jset(&c->patch_size, o, "patch_size");
    jset(&c->t_hidden, o, "t_hidden");
    jset(&c->t_layers, o, "t_layers");
    jset(&c->t_heads, o, "t_heads");
    jset(&c->t_positions, o, "t_positions");
    jset(&c->projection_dim, o, "projection_dim");
    jset(&c->vocab_size, o, "vocab_size");
    jset(&c->n_captions, o, "n_captions");
}

/* ---------------------------------------------------------------- tokenizer */

static it_status learn_vocab(it_err *err, const char *dir, const it_clip_source_cfg *c, uint64_t seed,
                             size_t *vocab)
{
    it_bpe_trainer *tr = NULL;
    IT_TRY(it_bpe_trainer_new(err, &tr));
    it_status s = IT_OK;
    /* the detector's part words, so each is one token like in the captions */
    const char *extra = "face eyes hair hat outfit clothes accessory body creature cap beanie crown jacket "
                        "overalls t-shirt necklace scarf bow tie top hat ";
    for (int k = 0; k < 20 && !s; k++) s = it_bpe_trainer_add_text(err, tr, extra, strlen(extra));
    for (int i = 0; i < c->n_captions && !s; i++) {
        it_toy_attrs a;
        it_toy_caption cap;
        s = it_toy_sample(err, &a, NULL, seed, (uint64_t)i, IT_TOY_PRETRAIN);
        if (!s) s = it_toy_caption_make(err, &cap, &a, (it_toy_caption_style)(i % 3), 1, 0, seed, (uint64_t)i, 0);
        if (!s) s = it_bpe_trainer_add_text(err, tr, cap.text, strlen(cap.text));
    }
    it_bpe_options opt = {(size_t)c->vocab_size, 2};
    it_bpe_result res;
    if (!s) s = it_bpe_trainer_learn(err, tr, &opt, &res);
    if (!s) s = it_bpe_trainer_save(err, tr, dir);
    if (!s) *vocab = res.vocab_size;
    it_bpe_trainer_free(tr);
    return s;
}

/* ---------------------------------------------------------------- weights */

static int is_norm_weight(const char *name)
{
    size_t n = strlen(name);
    return n > 7 && !strcmp(name + n - 7, ".weight") &&
           (strstr(name, "norm") || strstr(name, "layrnorm") || strstr(name, "layer_norm"));
}

/* torch's defaults: Linear/Conv weights uniform(+-1/sqrt(fan_in)), zero
 * biases, unit norm scales, embeddings normal(0, 0.02); each tensor its
 * own stream. (transformers' CLIP init, normal(0, 0.02) everywhere, leaves
 * a random tower nearly blind to its input: every image gets almost the
 * same embedding, useless even as a stand-in.) */
static void init_random(it_params *ps, uint64_t seed, uint64_t salt)
{
    for (size_t i = 0; i < ps->n; i++) {
        it_tensor *t = ps->items[i];
        float *d = it_f32(t);
        size_t len = strlen(t->name);
        it_rng r;
        it_rng_init(&r, seed * 1000003ull + salt * 7919ull + i);
        if (is_norm_weight(t->name)) {
            for (int64_t k = 0; k < t->n; k++) d[k] = 1.0f;
        } else if (len > 5 && !strcmp(t->name + len - 5, ".bias")) {
            memset(d, 0, (size_t)t->n * sizeof(float));
        } else if (ps->half && ps->half[i] && t->ndim >= 2) {
            int64_t fan_in = t->n / t->shape[0];
            float b = 1.0f / sqrtf((float)fan_in);
            it_rng_uniform(&r, d, (size_t)t->n);
            for (int64_t k = 0; k < t->n; k++) d[k] = (2.0f * d[k] - 1.0f) * b;
        } else {
            it_rng_normal(&r, d, (size_t)t->n, 0.0f, 0.02f);
        }
    }
}

static it_status add_params(it_err *err, it_safetensors_writer *w, const it_params *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        const it_tensor *t = ps->items[i];
        IT_TRY(it_safetensors_writer_add(err, w, t->name, IT_DTYPE_F32, t->ndim, t->shape, t->data));
    }
    return IT_OK;
}

static it_status write_weights(it_err *err, const char *path, const it_clip_source_cfg *c, size_t vocab,
                               uint64_t seed)
{
    it_clip_vision_config vc;
    it_clip_vision_config_default(&vc);
    vc.hidden = c->v_hidden;
    vc.intermediate = 4 * c->v_hidden;
    vc.n_layers = c->v_layers;
    vc.n_heads = c->v_heads;
    vc.image_size = c->image_size;
    vc.patch_size = c->patch_size;
    vc.projection_dim = c->projection_dim;
    it_clip_text_config tc = {(int)vocab, c->t_hidden, 4 * c->t_hidden, c->t_layers, c->t_heads, c->t_positions,
                              IT_CLIP_QUICK_GELU, 1e-5f, c->projection_dim, 1, (int)vocab - 1};
    it_clip_vision v;
    it_clip_text t;
    memset(&t, 0, sizeof t);
    IT_TRY(it_clip_vision_init(err, &v, &vc, "vision_model.", "pre_layrnorm", "visual_projection", 0));
    it_status s = it_clip_text_init(err, &t, &tc, "text_model.", "text_projection", 0);
    it_safetensors_writer *w = NULL;
    if (!s) {
        init_random(&v.params, seed, 1);
        init_random(&t.params, seed, 2);
        s = it_safetensors_writer_new(err, &w);
    }
    float scale = 2.6592f; /* log(1 / 0.07), CLIP's initial logit scale */
    if (!s) s = add_params(err, w, &v.params);
    if (!s) s = add_params(err, w, &t.params);
    if (!s) s = it_safetensors_writer_add(err, w, "logit_scale", IT_DTYPE_F32, 0, NULL, &scale);
    if (!s) s = it_safetensors_writer_set_metadata(err, w, "format", "pt");
    if (!s) s = it_safetensors_writer_save(err, w, path);
    it_safetensors_writer_free(w);
    it_clip_vision_free(&v);
    it_clip_text_free(&t);
    return s;
}

/* ---------------------------------------------------------------- configs */

static it_status write_json(it_err *err, const char *path, json_t *j)
{
    char *txt = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!txt) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory", path);
    it_status s = it_file_write_atomic(err, path, txt, strlen(txt));
    free(txt);
    return s;
}

static json_t *clip_config(const it_clip_source_cfg *c, size_t vocab)
{
    json_t *text = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:f, s:i, s:i, s:i}", "model_type",
                             "clip_text_model", "vocab_size", (int)vocab, "hidden_size", c->t_hidden,
                             "intermediate_size", 4 * c->t_hidden, "num_hidden_layers", c->t_layers,
                             "num_attention_heads", c->t_heads, "max_position_embeddings", c->t_positions,
                             "hidden_act", "quick_gelu", "layer_norm_eps", 1e-5, "bos_token_id", (int)vocab - 2,
                             "eos_token_id", (int)vocab - 1, "pad_token_id", (int)vocab - 1);
    json_t *vision = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:f}", "model_type",
                               "clip_vision_model", "hidden_size", c->v_hidden, "intermediate_size",
                               4 * c->v_hidden, "num_hidden_layers", c->v_layers, "num_attention_heads",
                               c->v_heads, "image_size", c->image_size, "patch_size", c->patch_size,
                               "num_channels", 3, "hidden_act", "quick_gelu", "layer_norm_eps", 1e-5);
    return json_pack("{s:[s], s:s, s:i, s:f, s:o, s:o, s:s}", "architectures", "CLIPModel", "model_type", "clip",
                     "projection_dim", c->projection_dim, "logit_scale_init_value", 2.6592, "text_config", text,
                     "vision_config", vision, "intenttuner_note",
                     "interim random CLIP (toy pretraining before the trained toy CLIP existed)");
}

static json_t *preprocessor(int size)
{
    return json_pack("{s:b, s:{s:i}, s:i, s:b, s:{s:i, s:i}, s:b, s:f, s:b, s:[f, f, f], s:[f, f, f], s:s}",
                     "do_resize", 1, "size", "shortest_edge", size, "resample", 3, "do_center_crop", 1,
                     "crop_size", "height", size, "width", size, "do_rescale", 1, "rescale_factor", 1.0 / 255.0,
                     "do_normalize", 1, "image_mean", 0.48145466, 0.4578275, 0.40821073, "image_std", 0.26862954,
                     0.26130258, 0.27577711, "image_processor_type", "CLIPImageProcessor");
}

it_status it_clip_source_write_random(it_err *err, const char *dir, const it_clip_source_cfg *c, uint64_t seed)
{
    if (c->v_hidden < 1 || c->v_heads < 1 || c->v_hidden % c->v_heads || c->t_hidden < 1 || c->t_heads < 1 ||
        c->t_hidden % c->t_heads || c->patch_size < 1 || c->image_size % c->patch_size || c->vocab_size < 600 ||
        c->t_positions < 8 || c->projection_dim < 1 || c->v_layers < 1 || c->t_layers < 1 || c->n_captions < 1)
        return it_err_set(err, IT_ERR_ARG,
                          "interim CLIP config: widths divisible by heads, image_size a multiple of patch_size, "
                          "vocab_size >= 600, t_positions >= 8");
    IT_TRY(it_mkdir_p(err, dir));
    size_t vocab = 0;
    char path[4096];
    IT_TRY(learn_vocab(err, dir, c, seed, &vocab));
    snprintf(path, sizeof path, "%s/config.json", dir);
    IT_TRY(write_json(err, path, clip_config(c, vocab)));
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    IT_TRY(write_json(err, path, preprocessor(c->image_size)));
    snprintf(path, sizeof path, "%s/model.safetensors", dir); /* last: its presence marks a complete folder */
    return write_weights(err, path, c, vocab, seed);
}

it_status it_clip_source_resolve(it_err *err, char *dir, size_t cap, const char *out, const char *run,
                                 const json_t *cfg, uint64_t seed, int *interim)
{
    const char *given = json_string_value(json_object_get(cfg, "clip"));
    char probe[4096];
    *interim = 0;
    if (given) {
        if (snprintf(dir, cap, "%s", given) >= (int)cap) return it_err_set(err, IT_ERR_ARG, "clip path too long");
        return IT_OK;
    }
    /* the weights, not only the config: the config lands before the first trained weights do */
    snprintf(probe, sizeof probe, "%s/clip/model.safetensors", out);
    if (it_file_exists(probe)) {
        if (snprintf(dir, cap, "%s/clip", out) >= (int)cap) return it_err_set(err, IT_ERR_ARG, "clip path too long");
        return IT_OK;
    }
    *interim = 1;
    if (snprintf(dir, cap, "%s/interim_clip", run) >= (int)cap)
        return it_err_set(err, IT_ERR_ARG, "run path too long");
    snprintf(probe, sizeof probe, "%s/model.safetensors", dir);
    if (it_file_exists(probe)) return IT_OK;
    it_clip_source_cfg c;
    it_clip_source_defaults(&c);
    it_clip_source_parse(&c, json_object_get(cfg, "interim_clip"));
    return it_clip_source_write_random(err, dir, &c, seed);
}
