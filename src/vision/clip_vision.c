/* clip_vision.c: CLIP ViT forward (transformers' modeling_clip
 * CLIPVisionEmbeddings + CLIPVisionTransformer, restated), its config reader
 * and the OpenCLIP key map. */
#include "vision/clip_vision.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "tensor/ops_attn.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_shape.h"

/* ---------------------------------------------------------------- config */

void it_clip_vision_config_default(it_clip_vision_config *c)
{
    memset(c, 0, sizeof *c);
    c->hidden = 768;
    c->intermediate = 3072;
    c->n_layers = 12;
    c->n_heads = 12;
    c->image_size = 224;
    c->patch_size = 32;
    c->channels = 3;
    c->act = IT_CLIP_QUICK_GELU;
    c->eps = 1e-5f;
    c->projection_dim = 512;
}

static int jint(json_t *o, const char *k, int def)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int)json_integer_value(v) : def;
}

static float jnum(json_t *o, const char *k, float def)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? (float)json_number_value(v) : def;
}

it_status it_clip_vision_config_parse(it_err *err, it_clip_vision_config *c, const char *json,
                                      const char *label)
{
    it_clip_vision_config_default(c);
    json_error_t je;
    json_t *root = json_loads(json, 0, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        return it_err_set(err, IT_ERR_FORMAT, "%s: not a JSON object (line %d: %s)", label, je.line, je.text);
    }
    json_t *vc = json_object_get(root, "vision_config");
    json_t *o = json_is_object(vc) ? vc : root;
    c->hidden = jint(o, "hidden_size", c->hidden);
    c->intermediate = jint(o, "intermediate_size", c->intermediate);
    c->n_layers = jint(o, "num_hidden_layers", c->n_layers);
    c->n_heads = jint(o, "num_attention_heads", c->n_heads);
    c->image_size = jint(o, "image_size", c->image_size);
    c->patch_size = jint(o, "patch_size", c->patch_size);
    c->channels = jint(o, "num_channels", c->channels);
    c->eps = jnum(o, "layer_norm_eps", c->eps);
    c->projection_dim = jint(root, "projection_dim", jint(o, "projection_dim", c->projection_dim));
    json_t *act = json_object_get(o, "hidden_act");
    it_status st = IT_OK;
    if (json_is_string(act)) {
        if (!strcmp(json_string_value(act), "quick_gelu")) c->act = IT_CLIP_QUICK_GELU;
        else if (!strcmp(json_string_value(act), "gelu")) c->act = IT_CLIP_GELU;
        else st = it_err_set(err, IT_ERR_UNSUPPORTED, "%s: hidden_act \"%s\": must be quick_gelu or gelu",
                             label, json_string_value(act));
    }
    if (!st && (c->hidden <= 0 || c->n_heads <= 0 || c->hidden % c->n_heads || c->n_layers < 1 ||
                c->intermediate < 1 || c->patch_size < 1 || c->image_size < c->patch_size ||
                c->channels < 1 || c->projection_dim < 0))
        st = it_err_set(err, IT_ERR_FORMAT,
                        "%s: vision_config: sizes must be positive, hidden_size divisible by "
                        "num_attention_heads, image_size >= patch_size", label);
    json_decref(root);
    return st;
}

it_status it_clip_vision_config_load(it_err *err, it_clip_vision_config *c, const char *path)
{
    uint8_t *text = NULL;
    size_t n = 0;
    IT_TRY(it_file_read(err, &text, &n, path, 1 << 20));
    it_status s = it_clip_vision_config_parse(err, c, (const char *)text, path);
    it_free(text);
    return s;
}

/* ---------------------------------------------------------------- build */

static it_status build_layer(it_clip_vision *m, it_clip_layer *l, int i)
{
    it_params *ps = &m->params;
    const it_clip_vision_config *c = &m->cfg;
    const char *p = m->prefix;
    IT_TRY(it_norm_init(ps, &l->ln1, c->hidden, 0, c->eps, "%sencoder.layers.%d.layer_norm1", p, i));
    IT_TRY(it_norm_init(ps, &l->ln2, c->hidden, 0, c->eps, "%sencoder.layers.%d.layer_norm2", p, i));
    l->q = it_lin_linear(ps, c->hidden, c->hidden, 1, "%sencoder.layers.%d.self_attn.q_proj", p, i);
    l->k = it_lin_linear(ps, c->hidden, c->hidden, 1, "%sencoder.layers.%d.self_attn.k_proj", p, i);
    l->v = it_lin_linear(ps, c->hidden, c->hidden, 1, "%sencoder.layers.%d.self_attn.v_proj", p, i);
    l->o = it_lin_linear(ps, c->hidden, c->hidden, 1, "%sencoder.layers.%d.self_attn.out_proj", p, i);
    l->fc1 = it_lin_linear(ps, c->hidden, c->intermediate, 1, "%sencoder.layers.%d.mlp.fc1", p, i);
    l->fc2 = it_lin_linear(ps, c->intermediate, c->hidden, 1, "%sencoder.layers.%d.mlp.fc2", p, i);
    return ps->failed ? IT_ERR_NOMEM : IT_OK;
}

it_status it_clip_vision_init(it_err *err, it_clip_vision *m, const it_clip_vision_config *cfg,
                              const char *prefix, const char *pre_ln, const char *proj_key,
                              int flags)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    snprintf(m->prefix, sizeof m->prefix, "%s", prefix ? prefix : "");
    it_params_init(&m->params, "vision_model");
    it_params *ps = &m->params;
    const char *p = m->prefix;
    int64_t g = cfg->image_size / cfg->patch_size;
    int64_t wshape[4] = {cfg->hidden, cfg->channels, cfg->patch_size, cfg->patch_size};
    m->patch = it_arena_calloc(&ps->arena, 1, sizeof *m->patch);
    if (!m->patch || it_lin_init(ps, m->patch, 4, wshape, 0, "%sembeddings.patch_embedding", p))
        ps->failed = 1;
    else {
        m->patch->conv = 1;
        m->patch->stride = cfg->patch_size;
        m->patch->pad = 0;
    }
    m->cls = it_params_add(ps, IT_SHAPE(cfg->hidden), "%sembeddings.class_embedding", p);
    m->pos = it_params_add(ps, IT_SHAPE(1 + g * g, cfg->hidden), "%sembeddings.position_embedding.weight", p);
    it_norm_init(ps, &m->pre_ln, cfg->hidden, 0, cfg->eps, "%s%s", p, pre_ln ? pre_ln : "pre_layrnorm");
    m->layers = it_arena_calloc(&ps->arena, (size_t)cfg->n_layers, sizeof *m->layers);
    if (!m->layers) ps->failed = 1;
    for (int i = 0; m->layers && i < cfg->n_layers; i++)
        if (build_layer(m, &m->layers[i], i)) break;
    it_norm_init(ps, &m->post_ln, cfg->hidden, 0, cfg->eps, "%spost_layernorm", p);
    if (cfg->projection_dim > 0 && proj_key)
        m->proj = it_lin_linear(ps, cfg->hidden, cfg->projection_dim, 0, "%s", proj_key);
    it_status s = it_params_alloc(err, ps, flags);
    if (s) it_params_free(ps);
    return s;
}

void it_clip_vision_free(it_clip_vision *m)
{
    it_params_free(&m->params);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- forward */

/* PyTorch's upsample_bicubic2d: A = -0.75, source index
 * scale * (dst + 0.5) - 0.5 without clamping, taps clamped to the border. */
static void cubic_weights(float t, float w[4])
{
    const float A = -0.75f;
    float x1 = t + 1.0f, x2 = t, x3 = 1.0f - t, x4 = 2.0f - t;
    w[0] = ((A * x1 - 5.0f * A) * x1 + 8.0f * A) * x1 - 4.0f * A;
    w[1] = ((A + 2.0f) * x2 - (A + 3.0f)) * x2 * x2 + 1.0f;
    w[2] = ((A + 2.0f) * x3 - (A + 3.0f)) * x3 * x3 + 1.0f;
    w[3] = ((A * x4 - 5.0f * A) * x4 + 8.0f * A) * x4 - 4.0f * A;
}

static int clampi(int v, int hi) { return v < 0 ? 0 : v > hi ? hi : v; }

void it_clip_vision_bicubic(float *out, int oh, int ow, const float *in, int ih, int iw, int d)
{
    float sy = (float)ih / (float)oh, sx = (float)iw / (float)ow;
    for (int y = 0; y < oh; y++) {
        float ry = sy * ((float)y + 0.5f) - 0.5f;
        int y0 = (int)floorf(ry);
        float wy[4];
        cubic_weights(ry - (float)y0, wy);
        for (int x = 0; x < ow; x++) {
            float rx = sx * ((float)x + 0.5f) - 0.5f;
            int x0 = (int)floorf(rx);
            float wx[4];
            cubic_weights(rx - (float)x0, wx);
            float *o = out + ((size_t)y * (size_t)ow + (size_t)x) * (size_t)d;
            for (int c = 0; c < d; c++) {
                float acc = 0;
                for (int j = 0; j < 4; j++) {
                    const float *row = in + (size_t)clampi(y0 - 1 + j, ih - 1) * (size_t)iw * (size_t)d;
                    float r = 0;
                    for (int i = 0; i < 4; i++) r += wx[i] * row[(size_t)clampi(x0 - 1 + i, iw - 1) * (size_t)d + c];
                    acc += wy[j] * r;
                }
                o[c] = acc;
            }
        }
    }
}

/* Position embeddings for a gh x gw grid: the table itself when the grid is
 * the trained square one (transformers skips interpolation then), else the
 * class row followed by the bicubic-resized patch rows. (1 + gh*gw, hidden) */
static it_tensor *positions(it_ctx *ctx, const it_clip_vision *m, int gh, int gw)
{
    int g = m->cfg.image_size / m->cfg.patch_size, d = m->cfg.hidden;
    if (gh == g && gw == g) return m->pos;
    it_tensor *t = it_tensor_new(ctx, IT_DTYPE_F32, IT_SHAPE(1 + (int64_t)gh * gw, d));
    if (!t) return NULL;
    float *o = it_f32(t);
    memcpy(o, it_f32(m->pos), (size_t)d * sizeof(float));
    it_clip_vision_bicubic(o + d, gh, gw, it_f32(m->pos) + d, g, g, d);
    return t;
}

/* One pre-LN block with bidirectional attention. x: (B, T, hidden). */
static it_tensor *layer_forward(it_ctx *ctx, const it_clip_vision *m, const it_clip_layer *l, it_tensor *x)
{
    it_tensor *h = it_norm_forward(ctx, &l->ln1, x, 0);
    it_tensor *q = it_lin_forward(ctx, l->q, h);
    it_tensor *k = it_lin_forward(ctx, l->k, h);
    it_tensor *v = it_lin_forward(ctx, l->v, h);
    it_tensor *a = it_op_attention(ctx, q, k, v, m->cfg.n_heads, /*causal*/ 0, 0);
    x = it_op_add(ctx, x, it_lin_forward(ctx, l->o, a));
    h = it_norm_forward(ctx, &l->ln2, x, 0);
    h = it_lin_forward(ctx, l->fc1, h);
    h = it_op_act(ctx, h, m->cfg.act == IT_CLIP_GELU ? IT_ACT_GELU : IT_ACT_QUICK_GELU);
    return it_op_add(ctx, x, it_lin_forward(ctx, l->fc2, h));
}

it_status it_clip_vision_forward(it_err *err, it_ctx *ctx, it_clip_vision *m, it_tensor *pixels,
                                 it_clip_vision_out *out)
{
    memset(out, 0, sizeof *out);
    const it_clip_vision_config *c = &m->cfg;
    if (!pixels || pixels->ndim != 4 || pixels->shape[1] != c->channels ||
        pixels->shape[2] % c->patch_size || pixels->shape[3] % c->patch_size || pixels->shape[2] < 1 ||
        pixels->shape[3] < 1)
        return it_err_set(err, IT_ERR_ARG,
                          "vision_model: pixels must be (B, %d, H, W) with H, W multiples of %d",
                          c->channels, c->patch_size);
    int64_t B = pixels->shape[0], D = c->hidden;
    int gh = (int)(pixels->shape[2] / c->patch_size), gw = (int)(pixels->shape[3] / c->patch_size);
    it_mark m0 = it_ctx_mark(ctx);
    it_tensor *pe = it_nn_to_tokens(ctx, it_lin_forward(ctx, m->patch, pixels)); /* (B, gh*gw, D) */
    it_tensor *cls = it_op_add(ctx, it_tensor_zeros(ctx, IT_DTYPE_F32, IT_SHAPE(B, 1, D)), m->cls);
    it_tensor *parts[2] = {cls, pe};
    it_tensor *x = it_op_concat(ctx, 2, parts, 1);                               /* (B, 1+N, D) */
    x = it_op_add(ctx, x, positions(ctx, m, gh, gw));
    x = it_nn_keep(ctx, m0, it_norm_forward(ctx, &m->pre_ln, x, 0));
    for (int i = 0; i < c->n_layers; i++) x = it_nn_keep(ctx, m0, layer_forward(ctx, m, &m->layers[i], x));
    out->hidden = x;
    out->grid_h = gh;
    out->grid_w = gw;
    it_tensor *first = it_op_reshape(ctx, it_op_slice(ctx, x, 1, 0, 1), IT_SHAPE(B, D));
    out->pooled = it_norm_forward(ctx, &m->post_ln, first, 0);
    if (m->proj) out->projected = it_lin_forward(ctx, m->proj, out->pooled);
    return it_ctx_status(ctx, err);
}

/* ---------------------------------------------------------------- OpenCLIP keys */

/* transformers name (after "vision_model.") -> OpenCLIP name (after
 * "visual."): open_clip/transformer.py VisionTransformer and
 * transformers' convert_clip_original_pytorch_to_hf.py, inverted. */
typedef struct key_rule {
    const char *ours, *theirs;
} key_rule;

static const key_rule OPENCLIP_TOP[] = {
    {"embeddings.patch_embedding.weight", "conv1.weight"},
    {"embeddings.class_embedding", "class_embedding"},
    {"embeddings.position_embedding.weight", "positional_embedding"},
    {"pre_layrnorm.", "ln_pre."},
    {"post_layernorm.", "ln_post."},
};

static const key_rule OPENCLIP_BLOCK[] = {
    {"layer_norm1.", "ln_1."},
    {"layer_norm2.", "ln_2."},
    {"mlp.fc1.", "mlp.c_fc."},
    {"mlp.fc2.", "mlp.c_proj."},
    {"self_attn.out_proj.", "attn.out_proj."},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int apply(const key_rule *t, size_t n, const char *rest, char *out, size_t cap, const char *pre)
{
    for (size_t i = 0; i < n; i++)
        if (starts(rest, t[i].ours)) {
            snprintf(out, cap, "%s%s%s", pre, t[i].theirs, rest + strlen(t[i].ours));
            return 1;
        }
    return 0;
}

int it_clip_vision_map_openclip(void *user, const char *name, it_key_src *src)
{
    (void)user;
    memset(src, 0, sizeof *src);
    if (!strcmp(name, "visual_projection.weight")) {
        snprintf(src->key, sizeof src->key, "visual.proj"); /* stored (hidden, proj) */
        src->xform = IT_XFORM_TRANSPOSE;
        return 1;
    }
    if (!starts(name, "vision_model.")) return 0;
    const char *rest = name + strlen("vision_model.");
    if (apply(OPENCLIP_TOP, COUNT(OPENCLIP_TOP), rest, src->key, sizeof src->key, "visual.")) return 1;
    int l, k = 0;
    char q, wb[16];
    if (sscanf(rest, "encoder.layers.%d.%n", &l, &k) != 1 || !k) return 0;
    const char *lr = rest + k;
    if (sscanf(lr, "self_attn.%c_proj.%15s", &q, wb) == 2 && (q == 'q' || q == 'k' || q == 'v')) {
        snprintf(src->key, sizeof src->key, "visual.transformer.resblocks.%d.attn.in_proj_%s", l, wb);
        src->xform = IT_XFORM_ROWS;
        src->part = q == 'q' ? 0 : q == 'k' ? 1 : 2;
        src->parts = 3;
        return 1;
    }
    char pre[64];
    snprintf(pre, sizeof pre, "visual.transformer.resblocks.%d.", l);
    return apply(OPENCLIP_BLOCK, COUNT(OPENCLIP_BLOCK), lr, src->key, sizeof src->key, pre);
}
