/* config.c: diffusers/transformers config.json readers (jansson) with the
 * libraries' defaults for absent keys and one-line errors for wrong ones. */
#include "models/config.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"

#define CONFIG_MAX_BYTES (1u << 20)

/* ---------------------------------------------------------------- helpers */

typedef struct jreader {
    it_err *err;
    const char *label;
    json_t *root;
    it_status st;
} jreader;

static json_t *jget(jreader *r, const char *key)
{
    json_t *v = json_object_get(r->root, key);
    return json_is_null(v) ? NULL : v;
}

static void jfail(jreader *r, const char *key, const char *what)
{
    if (r->st == IT_OK) r->st = it_err_set(r->err, IT_ERR_FORMAT, "%s: \"%s\" %s", r->label, key, what);
}

static int jint(jreader *r, const char *key, int def)
{
    json_t *v = jget(r, key);
    if (!v) return def;
    if (json_is_integer(v)) return (int)json_integer_value(v);
    if (json_is_real(v) && json_real_value(v) == (int)json_real_value(v)) return (int)json_real_value(v);
    jfail(r, key, "must be an integer");
    return def;
}

static int jbool(jreader *r, const char *key, int def)
{
    json_t *v = jget(r, key);
    if (!v) return def;
    if (json_is_boolean(v)) return json_is_true(v);
    jfail(r, key, "must be true or false");
    return def;
}

static float jfloat(jreader *r, const char *key, float def)
{
    json_t *v = jget(r, key);
    if (!v) return def;
    if (json_is_number(v)) return (float)json_number_value(v);
    jfail(r, key, "must be a number");
    return def;
}

static const char *jstr(jreader *r, const char *key, const char *def)
{
    json_t *v = jget(r, key);
    if (!v) return def;
    if (json_is_string(v)) return json_string_value(v);
    jfail(r, key, "must be a string");
    return def;
}

/* An int list, or one int repeated n times when allow_scalar. Returns count. */
static int jints(jreader *r, const char *key, int *out, int max, int allow_scalar, int n_scalar)
{
    json_t *v = jget(r, key);
    if (!v) return 0;
    if (allow_scalar && json_is_integer(v)) {
        for (int i = 0; i < n_scalar && i < max; i++) out[i] = (int)json_integer_value(v);
        return n_scalar;
    }
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > (size_t)max) {
        jfail(r, key, "must be a list of 1 to 8 integers");
        return 0;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) || json_integer_value(e) <= 0) {
            jfail(r, key, "must hold positive integers");
            return 0;
        }
        out[i] = (int)json_integer_value(e);
    }
    return (int)json_array_size(v);
}

/* Block-type list: 1 for names starting with want_attn, 0 for plain; error otherwise. */
static int jblocks(jreader *r, const char *key, int *out, int n, const char *attn, const char *plain)
{
    json_t *v = jget(r, key);
    if (!v) return 0;
    if (!json_is_array(v) || json_array_size(v) != (size_t)n) {
        jfail(r, key, "must list one block type per block_out_channels entry");
        return 0;
    }
    for (int i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(v, (size_t)i));
        if (s && attn && !strcmp(s, attn)) out[i] = 1;
        else if (s && !strcmp(s, plain)) out[i] = 0;
        else {
            if (r->st == IT_OK)
                r->st = it_err_set(r->err, IT_ERR_UNSUPPORTED, "%s: \"%s\" block type %s not supported",
                                   r->label, key, s ? s : "(not a string)");
            return 0;
        }
    }
    return n;
}

static it_status jopen(it_err *err, jreader *r, const char *json, const char *label)
{
    json_error_t je;
    memset(r, 0, sizeof *r);
    r->err = err;
    r->label = label;
    r->root = json_loads(json, 0, &je);
    if (!r->root)
        return it_err_set(err, IT_ERR_FORMAT, "%s: line %d: %s", label, je.line, je.text);
    if (!json_is_object(r->root)) {
        json_decref(r->root);
        return it_err_set(err, IT_ERR_FORMAT, "%s: not a JSON object", label);
    }
    return IT_OK;
}

static it_status jclose(jreader *r)
{
    json_decref(r->root);
    return r->st;
}

/* Rejects a config key whose value we do not implement (anything but null/def). */
static void junsupported_str(jreader *r, const char *key, const char *allowed)
{
    const char *s = jstr(r, key, NULL);
    if (s && (!allowed || strcmp(s, allowed)) && r->st == IT_OK)
        r->st = it_err_set(r->err, IT_ERR_UNSUPPORTED, "%s: \"%s\": \"%s\" not supported", r->label, key, s);
}

static it_status load_file(it_err *err, const char *path,
                           it_status (*parse)(it_err *, void *, const char *, const char *), void *c)
{
    uint8_t *buf;
    size_t n;
    IT_TRY(it_file_read(err, &buf, &n, path, CONFIG_MAX_BYTES));
    it_status s = parse(err, c, (const char *)buf, path);
    it_free(buf);
    return s;
}

/* ---------------------------------------------------------------- UNet */

void it_unet_config_sd15(it_unet_config *c)
{
    static const int ch[4] = {320, 640, 1280, 1280};
    memset(c, 0, sizeof *c);
    c->sample_size = 64;
    c->in_channels = c->out_channels = 4;
    c->n_levels = 4;
    for (int i = 0; i < 4; i++) {
        c->block_out[i] = ch[i];
        c->down_attn[i] = i < 3;
        c->up_attn[i] = i > 0;
        c->heads[i] = 8;
    }
    c->layers_per_block = 2;
    c->norm_groups = 32;
    c->norm_eps = 1e-5f;
    c->cross_dim = 768;
    c->mid_attn = 1;
    c->flip_sin_to_cos = 1;
}

it_status it_unet_config_parse(it_err *err, it_unet_config *c, const char *json, const char *label)
{
    jreader r;
    IT_TRY(jopen(err, &r, json, label));
    it_unet_config_sd15(c);
    c->sample_size = jint(&r, "sample_size", c->sample_size);
    c->in_channels = jint(&r, "in_channels", 4);
    c->out_channels = jint(&r, "out_channels", 4);
    int n = jints(&r, "block_out_channels", c->block_out, IT_SD_MAX_LEVELS, 0, 0);
    if (n) c->n_levels = n;
    jblocks(&r, "down_block_types", c->down_attn, c->n_levels, "CrossAttnDownBlock2D", "DownBlock2D");
    jblocks(&r, "up_block_types", c->up_attn, c->n_levels, "CrossAttnUpBlock2D", "UpBlock2D");
    c->layers_per_block = jint(&r, "layers_per_block", 2);
    c->norm_groups = jint(&r, "norm_num_groups", 32);
    c->norm_eps = jfloat(&r, "norm_eps", 1e-5f);
    c->cross_dim = jint(&r, "cross_attention_dim", 1280);
    /* diffusers passes attention_head_dim as the number of heads unless
     * num_attention_heads is given (a naming quirk kept for compatibility). */
    int heads[IT_SD_MAX_LEVELS] = {0};
    int nh = jints(&r, "num_attention_heads", heads, IT_SD_MAX_LEVELS, 1, c->n_levels);
    if (!nh) {
        for (int i = 0; i < c->n_levels; i++) heads[i] = 8;
        nh = jints(&r, "attention_head_dim", heads, IT_SD_MAX_LEVELS, 1, c->n_levels);
        if (!nh) nh = c->n_levels;
    }
    if (nh != c->n_levels) jfail(&r, "attention_head_dim", "must have one entry per level");
    memcpy(c->heads, heads, sizeof heads);
    c->use_linear_projection = jbool(&r, "use_linear_projection", 0);
    c->upcast_attention = jbool(&r, "upcast_attention", 0);
    c->flip_sin_to_cos = jbool(&r, "flip_sin_to_cos", 1);
    c->freq_shift = jfloat(&r, "freq_shift", 0);
    const char *mid = jstr(&r, "mid_block_type", "UNetMidBlock2DCrossAttn");
    json_t *midv = json_object_get(r.root, "mid_block_type");
    c->mid_attn = 1;
    if (midv && json_is_null(midv)) c->mid_attn = -1; /* no mid block */
    else if (strcmp(mid, "UNetMidBlock2DCrossAttn")) jfail(&r, "mid_block_type", "not supported");
    junsupported_str(&r, "class_embed_type", NULL);
    junsupported_str(&r, "addition_embed_type", NULL);
    junsupported_str(&r, "encoder_hid_dim_type", NULL);
    junsupported_str(&r, "time_embedding_type", "positional");
    junsupported_str(&r, "act_fn", "silu");
    junsupported_str(&r, "resnet_time_scale_shift", "default");
    junsupported_str(&r, "attention_type", "default");
    junsupported_str(&r, "cross_attention_norm", NULL);
    junsupported_str(&r, "timestep_post_act", NULL);
    junsupported_str(&r, "time_embedding_act_fn", NULL);
    static const char *const unsupported_set[] = {"num_class_embeds", "time_cond_proj_dim",
                                                  "encoder_hid_dim", "class_embeddings_concat"};
    for (size_t i = 0; i < sizeof unsupported_set / sizeof unsupported_set[0]; i++) {
        json_t *v = jget(&r, unsupported_set[i]);
        if (v && !json_is_false(v)) jfail(&r, unsupported_set[i], "not supported");
    }
    int ted = jint(&r, "time_embedding_dim", 4 * c->block_out[0]);
    if (ted != 4 * c->block_out[0]) jfail(&r, "time_embedding_dim", "other than 4 x block_out_channels[0] not supported");
    if (jbool(&r, "only_cross_attention", 0)) jfail(&r, "only_cross_attention", "not supported");
    if (jbool(&r, "dual_cross_attention", 0)) jfail(&r, "dual_cross_attention", "not supported");
    if (jbool(&r, "center_input_sample", 0)) jfail(&r, "center_input_sample", "not supported");
    int tl[IT_SD_MAX_LEVELS];
    int ntl = jints(&r, "transformer_layers_per_block", tl, IT_SD_MAX_LEVELS, 1, c->n_levels);
    for (int i = 0; i < ntl; i++)
        if (tl[i] != 1) jfail(&r, "transformer_layers_per_block", "other than 1 not supported");
    if (jint(&r, "conv_in_kernel", 3) != 3 || jint(&r, "conv_out_kernel", 3) != 3)
        jfail(&r, "conv_in_kernel", "other than 3 not supported");
    if (r.st == IT_OK) {
        for (int i = 0; i < c->n_levels; i++) {
            if (c->block_out[i] % c->norm_groups || c->block_out[i] % c->heads[i]) {
                jfail(&r, "block_out_channels", "must be divisible by norm_num_groups and the head counts");
                break;
            }
        }
        if (c->layers_per_block < 1 || c->cross_dim < 1) jfail(&r, "layers_per_block", "must be positive");
    }
    return jclose(&r);
}

static it_status unet_parse_v(it_err *err, void *c, const char *j, const char *l)
{
    return it_unet_config_parse(err, c, j, l);
}
it_status it_unet_config_load(it_err *err, it_unet_config *c, const char *path)
{
    return load_file(err, path, unet_parse_v, c);
}

/* ---------------------------------------------------------------- VAE */

void it_vae_config_sd(it_vae_config *c)
{
    static const int ch[4] = {128, 256, 512, 512};
    memset(c, 0, sizeof *c);
    c->sample_size = 512;
    c->in_channels = c->out_channels = 3;
    c->latent_channels = 4;
    c->n_levels = 4;
    memcpy(c->block_out, ch, sizeof ch);
    c->layers_per_block = 2;
    c->norm_groups = 32;
    c->scaling_factor = 0.18215f;
    c->use_quant_conv = c->use_post_quant_conv = 1;
    c->mid_attn = 1;
}

it_status it_vae_config_parse(it_err *err, it_vae_config *c, const char *json, const char *label)
{
    jreader r;
    IT_TRY(jopen(err, &r, json, label));
    it_vae_config_sd(c);
    /* diffusers' AutoencoderKL defaults differ from SD's: a config that
     * omits block_out_channels means the library default (64,). */
    c->n_levels = 1;
    c->block_out[0] = 64;
    c->layers_per_block = 1;
    int n = jints(&r, "block_out_channels", c->block_out, IT_SD_MAX_LEVELS, 0, 0);
    if (n) c->n_levels = n;
    int tmp[IT_SD_MAX_LEVELS];
    jblocks(&r, "down_block_types", tmp, c->n_levels, NULL, "DownEncoderBlock2D");
    jblocks(&r, "up_block_types", tmp, c->n_levels, NULL, "UpDecoderBlock2D");
    json_t *ss = jget(&r, "sample_size");
    if (json_is_array(ss)) c->sample_size = (int)json_integer_value(json_array_get(ss, 0));
    else c->sample_size = jint(&r, "sample_size", 32);
    c->in_channels = jint(&r, "in_channels", 3);
    c->out_channels = jint(&r, "out_channels", 3);
    c->latent_channels = jint(&r, "latent_channels", 4);
    c->layers_per_block = jint(&r, "layers_per_block", 1);
    c->norm_groups = jint(&r, "norm_num_groups", 32);
    c->scaling_factor = jfloat(&r, "scaling_factor", 0.18215f);
    c->shift_factor = jfloat(&r, "shift_factor", 0);
    c->use_quant_conv = jbool(&r, "use_quant_conv", 1);
    c->use_post_quant_conv = jbool(&r, "use_post_quant_conv", 1);
    c->mid_attn = jbool(&r, "mid_block_add_attention", 1);
    junsupported_str(&r, "act_fn", "silu");
    if (r.st == IT_OK)
        for (int i = 0; i < c->n_levels; i++)
            if (c->block_out[i] % c->norm_groups) {
                jfail(&r, "block_out_channels", "must be divisible by norm_num_groups");
                break;
            }
    return jclose(&r);
}

static it_status vae_parse_v(it_err *err, void *c, const char *j, const char *l)
{
    return it_vae_config_parse(err, c, j, l);
}
it_status it_vae_config_load(it_err *err, it_vae_config *c, const char *path)
{
    return load_file(err, path, vae_parse_v, c);
}

/* ---------------------------------------------------------------- CLIP text */

void it_clip_text_config_sd15(it_clip_text_config *c)
{
    memset(c, 0, sizeof *c);
    c->vocab_size = 49408;
    c->hidden = 768;
    c->intermediate = 3072;
    c->n_layers = 12;
    c->n_heads = 12;
    c->max_positions = 77;
    c->act = IT_CLIP_QUICK_GELU;
    c->eps = 1e-5f;
    c->projection_dim = 768;
    c->eos_token_id = 2;
}

it_status it_clip_text_config_parse(it_err *err, it_clip_text_config *c, const char *json,
                                    const char *label)
{
    jreader r;
    IT_TRY(jopen(err, &r, json, label));
    it_clip_text_config_sd15(c);
    /* A full CLIPConfig nests the text tower under "text_config". */
    json_t *tc = json_object_get(r.root, "text_config");
    json_t *outer = r.root;
    if (json_is_object(tc)) r.root = tc;
    /* transformers' CLIPTextConfig defaults (not SD's) for absent keys. */
    c->vocab_size = jint(&r, "vocab_size", 49408);
    c->hidden = jint(&r, "hidden_size", 512);
    c->intermediate = jint(&r, "intermediate_size", 2048);
    c->n_layers = jint(&r, "num_hidden_layers", 12);
    c->n_heads = jint(&r, "num_attention_heads", 8);
    c->max_positions = jint(&r, "max_position_embeddings", 77);
    c->eps = jfloat(&r, "layer_norm_eps", 1e-5f);
    c->projection_dim = jint(&r, "projection_dim", 512);
    c->eos_token_id = jint(&r, "eos_token_id", 2);
    const char *act = jstr(&r, "hidden_act", "quick_gelu");
    if (!strcmp(act, "quick_gelu")) c->act = IT_CLIP_QUICK_GELU;
    else if (!strcmp(act, "gelu")) c->act = IT_CLIP_GELU;
    else jfail(&r, "hidden_act", "must be quick_gelu or gelu");
    r.root = outer;
    json_t *arch = json_object_get(outer, "architectures");
    for (size_t i = 0; json_is_array(arch) && i < json_array_size(arch); i++) {
        const char *a = json_string_value(json_array_get(arch, i));
        if (a && strstr(a, "WithProjection")) c->has_projection = 1;
    }
    if (r.st == IT_OK && (c->hidden <= 0 || c->n_heads <= 0 || c->hidden % c->n_heads || c->n_layers < 1 ||
                          c->vocab_size < 1 || c->max_positions < 1 || c->intermediate < 1))
        jfail(&r, "hidden_size", "and num_attention_heads must be positive, hidden divisible by heads");
    return jclose(&r);
}

static it_status clip_parse_v(it_err *err, void *c, const char *j, const char *l)
{
    return it_clip_text_config_parse(err, c, j, l);
}
it_status it_clip_text_config_load(it_err *err, it_clip_text_config *c, const char *path)
{
    return load_file(err, path, clip_parse_v, c);
}

/* ---------------------------------------------------------------- scheduler */

void it_sched_config_default(it_sched_config *c)
{
    memset(c, 0, sizeof *c);
    c->prediction = IT_PRED_EPSILON;
    c->num_train_timesteps = 1000;
    c->beta_start = 0.00085f;
    c->beta_end = 0.012f;
    snprintf(c->beta_schedule, sizeof c->beta_schedule, "scaled_linear");
    c->steps_offset = 1;
    snprintf(c->timestep_spacing, sizeof c->timestep_spacing, "leading");
    snprintf(c->class_name, sizeof c->class_name, "PNDMScheduler");
}

it_status it_sched_config_parse(it_err *err, it_sched_config *c, const char *json, const char *label)
{
    jreader r;
    IT_TRY(jopen(err, &r, json, label));
    it_sched_config_default(c);
    const char *p = jstr(&r, "prediction_type", "epsilon");
    if (!strcmp(p, "epsilon")) c->prediction = IT_PRED_EPSILON;
    else if (!strcmp(p, "v_prediction")) c->prediction = IT_PRED_V;
    else if (!strcmp(p, "sample")) c->prediction = IT_PRED_SAMPLE;
    else jfail(&r, "prediction_type", "must be epsilon, v_prediction or sample");
    c->num_train_timesteps = jint(&r, "num_train_timesteps", 1000);
    c->beta_start = jfloat(&r, "beta_start", 0.0001f);
    c->beta_end = jfloat(&r, "beta_end", 0.02f);
    snprintf(c->beta_schedule, sizeof c->beta_schedule, "%s", jstr(&r, "beta_schedule", "linear"));
    c->steps_offset = jint(&r, "steps_offset", 0);
    c->set_alpha_to_one = jbool(&r, "set_alpha_to_one", 0);
    snprintf(c->timestep_spacing, sizeof c->timestep_spacing, "%s", jstr(&r, "timestep_spacing", "leading"));
    snprintf(c->class_name, sizeof c->class_name, "%s", jstr(&r, "_class_name", ""));
    return jclose(&r);
}

static it_status sched_parse_v(it_err *err, void *c, const char *j, const char *l)
{
    return it_sched_config_parse(err, c, j, l);
}
it_status it_sched_config_load(it_err *err, it_sched_config *c, const char *path)
{
    return load_file(err, path, sched_parse_v, c);
}

const char *it_prediction_name(it_prediction p)
{
    switch (p) {
    case IT_PRED_EPSILON: return "epsilon";
    case IT_PRED_V: return "v_prediction";
    case IT_PRED_SAMPLE: return "sample";
    }
    return "?";
}
