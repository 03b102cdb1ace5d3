/* nn.h: parameters registered under their checkpoint names, and the layer
 * helpers every model (CLIP text, UNet, VAE, later CLIP vision, OWL-ViT)
 * is built from.
 *
 * Owns: it_params, the set of a component's weights: each registered under
 * its diffusers/transformers key with its shape, all stored in one f32 block
 * allocated after registration, found by name through a hash index, loaded
 * from a safetensors file with exact missing/unexpected/shape errors; and
 * it_lin, the one path every linear layer and convolution goes through, with
 * the adapter hook that LoRA uses to add a low-rank term to a named module.
 * Does not own checkpoint format mapping (sd_keys.h) or the models.
 *
 * Life cycle:
 *     it_params_init(&ps, "unet");
 *     model_build(...)      // it_params_add / it_lin_init register shapes
 *     it_params_alloc(err, &ps, trainable=0);  // one f32 block, tensors point into it
 *     it_params_load(err, &ps, file, NULL);    // or through a key map
 *     ... forward ...
 *     it_params_free(&ps); */
#ifndef IT_NN_H
#define IT_NN_H

#include <stddef.h>
#include <stdint.h>

#include "base/mem.h"
#include "base/status.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"

typedef struct it_lin it_lin;

/* ------------------------------------------------------------- adapters */

/* A module-level hook: y is the base output of module m for input x; the
 * hook returns y plus its own term (LoRA: y + scale * up(down(x))). The
 * LoRA module embeds it_adapter as the first member of its own struct. */
typedef struct it_adapter it_adapter;
typedef it_tensor *(*it_adapter_fn)(it_ctx *ctx, it_adapter *a, const it_lin *m, it_tensor *x,
                                    it_tensor *y);
struct it_adapter {
    it_adapter_fn apply;
    it_adapter *next; /* several adapters on one module apply in order */
};

/* A linear layer or a convolution: the unit LoRA targets. */
struct it_lin {
    const char *name;     /* module key, e.g. "down_blocks.0.attentions.0.proj_in" */
    it_tensor *w;         /* (out, in) or (out, in, kh, kw) */
    it_tensor *b;         /* (out) or NULL */
    int conv;             /* 1: it_op_conv2d(stride, pad); 0: it_op_linear */
    int64_t stride, pad;
    it_adapter *adapter;  /* NULL, or hooks added by it_lin_attach */
    const uint16_t *w16;  /* IT_MODEL_F16: the weight's f16 storage (w->data is NULL then) */
};

/* ------------------------------------------------------------- params */

typedef struct it_params {
    const char *label;    /* component name in messages: "unet", "vae", "text_encoder" */
    it_arena arena;       /* tensors, names, modules */
    it_tensor **items;    /* (n) in registration order */
    size_t n, cap;
    int32_t *index;       /* open-addressing hash of names -> item, (index_cap) */
    size_t index_cap;
    it_lin **mods;        /* (n_mods) every it_lin, registration order */
    size_t n_mods, cap_mods;
    uint8_t *half;        /* (n) 1 for it_lin weights, stored as f16 under IT_MODEL_F16 */
    size_t half_cap;
    int f16;              /* built with IT_MODEL_F16 */
    uint16_t *data16;     /* f16 block of those weights, after alloc */
    uint16_t **h16;       /* (n) each weight's f16 storage or NULL, after alloc */
    float *data;          /* all other weights, after alloc */
    float *grad;          /* all gradients when allocated trainable, else NULL */
    size_t n_floats;
    int failed;           /* an add ran out of memory: alloc reports it */
} it_params;

void it_params_init(it_params *ps, const char *label);
void it_params_free(it_params *ps);

/* Registers a weight named printf(fmt, ...) with the given shape; data is
 * assigned by alloc. Returns NULL on out-of-memory (alloc then fails). */
it_tensor *it_params_add(it_params *ps, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Model build flags (the last argument of every it_*_init). */
#define IT_MODEL_TRAINABLE 1   /* gradient buffers for every weight */
#define IT_MODEL_SHAPES_ONLY 2 /* names and shapes only, no weight memory (key/shape checks of
                                * full-size models) */
#define IT_MODEL_F16 4         /* linear/conv weights kept as f16 (half the memory), widened to
                                * f32 per layer in the compute context when used; inference and
                                * frozen-base training (not with IT_MODEL_TRAINABLE). f32/bf16
                                * files are rounded to f16 on load. */

/* One zeroed f32 block for every registered weight (and, with
 * IT_MODEL_TRAINABLE, a gradient block of the same size); none with
 * IT_MODEL_SHAPES_ONLY. Builds the name index. */
it_status it_params_alloc(it_err *err, it_params *ps, int flags);

it_tensor *it_params_find(const it_params *ps, const char *name);
size_t it_params_count(const it_params *ps);
/* Total number of weights (floats). */
size_t it_params_numel(const it_params *ps);

/* Where a parameter's value comes from in a file that is not in the
 * parameter's own layout: the stored key and how to turn the stored tensor
 * into ours. Filled by a key map (sd_keys.h). */
typedef enum it_key_xform {
    IT_XFORM_NONE = 0,     /* same shape */
    IT_XFORM_SQUEEZE,      /* stored (o, i, 1, 1) or (o, i, 1), ours (o, i) */
    IT_XFORM_ROWS,         /* ours = stored rows [part*n/parts, (part+1)*n/parts) (fused qkv) */
    IT_XFORM_TRANSPOSE,    /* ours (a, b) = stored (b, a)^T */
} it_key_xform;

typedef struct it_key_src {
    char key[256];
    it_key_xform xform;
    int part, parts;       /* IT_XFORM_ROWS */
} it_key_src;

/* Maps one of our parameter names to its source; returns 0 when the
 * parameter has no counterpart (reported as missing). user: the map's state. */
typedef int (*it_key_map_fn)(void *user, const char *name, it_key_src *src);

typedef struct it_load_report {
    size_t n_loaded;       /* parameters filled */
    size_t n_unused;       /* file tensors under the prefix that no parameter took */
    char first_unused[256];
} it_load_report;

/* Fills every parameter from file f. map NULL = identity names with
 * prefix `prefix` ("" or e.g. "text_model." is NOT stripped: our names are
 * the file's names; prefix only scopes the unexpected-key check). Errors:
 *   "<label>: missing key NAME"
 *   "<label>: NAME: shape (320, 4, 3, 3) expected (320, 9, 3, 3)"
 *   "<label>: unexpected key NAME" (only when strict)
 * report may be NULL. */
it_status it_params_load(it_err *err, it_params *ps, const it_safetensors *f, const char *prefix,
                         it_key_map_fn map, void *map_user, int strict, it_load_report *report);

/* ------------------------------------------------------------- layers */

/* Registers NAME.weight (shape w) and, if bias, NAME.bias (w[0]). */
it_status it_lin_init(it_params *ps, it_lin *m, int ndim, const int64_t *wshape, int bias,
                      const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Shorthands: a Linear(in, out) and a Conv2d(in, out, k, stride, pad). */
it_lin *it_lin_linear(it_params *ps, int64_t in, int64_t out, int bias, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
it_lin *it_lin_conv(it_params *ps, int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad,
                    const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* y = m(x), then every attached adapter. x: (..., in) or (N, in, H, W). */
it_tensor *it_lin_forward(it_ctx *ctx, const it_lin *m, it_tensor *x);

/* Appends an adapter to module m (the LoRA hook). */
void it_lin_attach(it_lin *m, it_adapter *a);
/* Every module of a component, registration order; NULL if none. */
it_lin *it_params_module(const it_params *ps, size_t i);
size_t it_params_module_count(const it_params *ps);
/* The module whose name is given, or NULL. */
it_lin *it_params_find_module(const it_params *ps, const char *name);

/* A normalisation's affine weights. */
typedef struct it_norm {
    it_tensor *w, *b;     /* (C) */
    int64_t groups;       /* group norm; 0 for layer norm */
    float eps;
} it_norm;

it_status it_norm_init(it_params *ps, it_norm *n, int64_t channels, int64_t groups, float eps,
                       const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Group norm (groups > 0, optional fused SiLU) or layer norm over the last dim. */
it_tensor *it_norm_forward(it_ctx *ctx, const it_norm *n, it_tensor *x, int silu);

/* diffusers ResnetBlock2D: GN+SiLU -> conv1 (+ time_emb_proj(silu(temb)))
 * -> GN+SiLU -> conv2, plus the input (through a 1x1 conv_shortcut when the
 * channel count changes). Keys NAME.norm1, .conv1, .time_emb_proj, .norm2,
 * .conv2, .conv_shortcut. */
typedef struct it_resnet {
    it_norm n1, n2;       /* (in), (out) */
    it_lin *c1, *c2;      /* 3x3 (out, in), (out, out) */
    it_lin *temb;         /* (out, temb_dim) or NULL (VAE) */
    it_lin *sc;           /* 1x1 (out, in) or NULL when in == out */
} it_resnet;

it_status it_resnet_init(it_params *ps, it_resnet *r, int64_t in, int64_t out, int64_t temb_dim,
                         int64_t groups, float eps, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
/* x: (N, in, H, W); temb_silu: (N, temb_dim) already through SiLU, or NULL. */
it_tensor *it_resnet_forward(it_ctx *ctx, const it_resnet *r, it_tensor *x, it_tensor *temb_silu);

/* (N, C, H, W) <-> (N, H*W, C), the token layout of attention blocks. */
it_tensor *it_nn_to_tokens(it_ctx *ctx, it_tensor *x);
it_tensor *it_nn_from_tokens(it_ctx *ctx, it_tensor *x, int64_t h, int64_t w);

/* Scoped evaluation in no-grad mode: with recording off, a block's
 * intermediates are released and only its output kept (constant memory per
 * block); with recording on, a no-op (the tape needs them). */
static inline it_tensor *it_nn_keep(it_ctx *ctx, it_mark m, it_tensor *t)
{
    if (!t || ctx->grad_enabled) return t;
    return it_ctx_keep(ctx, m, t);
}

#endif
