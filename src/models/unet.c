/* unet.c: UNet2DConditionModel forward (diffusers unets/unet_2d_condition.py,
 * unet_2d_blocks.py, transformers/transformer_2d.py, attention.py,
 * restated for the SD 1.x / 2.x configuration space). */
#include "models/unet.h"

#include <stdio.h>
#include <string.h>

#include "tensor/autograd.h"
#include "tensor/ops_attn.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_shape.h"

/* ---------------------------------------------------------------- build */

static it_status xformer_init(it_unet *m, it_xformer *a, int64_t C, int64_t heads, const char *name)
{
    it_params *ps = &m->params;
    const it_unet_config *c = &m->cfg;
    a->channels = C;
    a->heads = heads;
    a->linear = c->use_linear_projection;
    IT_TRY(it_norm_init(ps, &a->gn, C, c->norm_groups, 1e-6f, "%s.norm", name));
    if (a->linear) {
        a->proj_in = it_lin_linear(ps, C, C, 1, "%s.proj_in", name);
        a->proj_out = it_lin_linear(ps, C, C, 1, "%s.proj_out", name);
    } else {
        a->proj_in = it_lin_conv(ps, C, C, 1, 1, 0, "%s.proj_in", name);
        a->proj_out = it_lin_conv(ps, C, C, 1, 1, 0, "%s.proj_out", name);
    }
    const char *tb = "transformer_blocks.0";
    IT_TRY(it_norm_init(ps, &a->n1, C, 0, 1e-5f, "%s.%s.norm1", name, tb));
    IT_TRY(it_norm_init(ps, &a->n2, C, 0, 1e-5f, "%s.%s.norm2", name, tb));
    IT_TRY(it_norm_init(ps, &a->n3, C, 0, 1e-5f, "%s.%s.norm3", name, tb));
    a->q1 = it_lin_linear(ps, C, C, 0, "%s.%s.attn1.to_q", name, tb);
    a->k1 = it_lin_linear(ps, C, C, 0, "%s.%s.attn1.to_k", name, tb);
    a->v1 = it_lin_linear(ps, C, C, 0, "%s.%s.attn1.to_v", name, tb);
    a->o1 = it_lin_linear(ps, C, C, 1, "%s.%s.attn1.to_out.0", name, tb);
    a->q2 = it_lin_linear(ps, C, C, 0, "%s.%s.attn2.to_q", name, tb);
    a->k2 = it_lin_linear(ps, c->cross_dim, C, 0, "%s.%s.attn2.to_k", name, tb);
    a->v2 = it_lin_linear(ps, c->cross_dim, C, 0, "%s.%s.attn2.to_v", name, tb);
    a->o2 = it_lin_linear(ps, C, C, 1, "%s.%s.attn2.to_out.0", name, tb);
    a->ff1 = it_lin_linear(ps, C, 8 * C, 1, "%s.%s.ff.net.0.proj", name, tb);
    a->ff2 = it_lin_linear(ps, 4 * C, C, 1, "%s.%s.ff.net.2", name, tb);
    return ps->failed ? IT_ERR_NOMEM : IT_OK;
}

static it_status level_alloc(it_params *ps, it_unet_level *lv, int n, int attn)
{
    lv->n = n;
    lv->res = it_arena_calloc(&ps->arena, (size_t)n, sizeof *lv->res);
    if (attn) lv->attn = it_arena_calloc(&ps->arena, (size_t)n, sizeof *lv->attn);
    return lv->res && (!attn || lv->attn) ? IT_OK : IT_ERR_NOMEM;
}

static it_status build(it_unet *m)
{
    const it_unet_config *c = &m->cfg;
    it_params *ps = &m->params;
    int n = c->n_levels, lpb = c->layers_per_block, G = c->norm_groups;
    int64_t C0 = c->block_out[0], T = 4 * C0;
    char name[128];
    m->conv_in = it_lin_conv(ps, c->in_channels, C0, 3, 1, 1, "conv_in");
    m->time1 = it_lin_linear(ps, C0, T, 1, "time_embedding.linear_1");
    m->time2 = it_lin_linear(ps, T, T, 1, "time_embedding.linear_2");
    int64_t ch = C0;
    for (int i = 0; i < n; i++) {
        it_unet_level *lv = &m->down[i];
        int64_t out = c->block_out[i];
        IT_TRY(level_alloc(ps, lv, lpb, c->down_attn[i]));
        for (int j = 0; j < lpb; j++) {
            IT_TRY(it_resnet_init(ps, &lv->res[j], j ? out : ch, out, T, G, c->norm_eps,
                                  "down_blocks.%d.resnets.%d", i, j));
            if (lv->attn) {
                snprintf(name, sizeof name, "down_blocks.%d.attentions.%d", i, j);
                IT_TRY(xformer_init(m, &lv->attn[j], out, c->heads[i], name));
            }
        }
        if (i < n - 1) lv->sample = it_lin_conv(ps, out, out, 3, 2, 1, "down_blocks.%d.downsamplers.0.conv", i);
        ch = out;
    }
    if (c->mid_attn >= 0) {
        int64_t top = c->block_out[n - 1];
        IT_TRY(it_resnet_init(ps, &m->mid_res[0], top, top, T, G, c->norm_eps, "mid_block.resnets.0"));
        IT_TRY(xformer_init(m, &m->mid_attn, top, c->heads[n - 1], "mid_block.attentions.0"));
        IT_TRY(it_resnet_init(ps, &m->mid_res[1], top, top, T, G, c->norm_eps, "mid_block.resnets.1"));
    }
    /* Up path: level i works at block_out[n-1-i]; resnet j takes the
     * previous output concatenated with the matching skip. */
    int64_t prev = c->block_out[n - 1];
    for (int i = 0; i < n; i++) {
        it_unet_level *lv = &m->up[i];
        int64_t out = c->block_out[n - 1 - i];
        int64_t skip_in = c->block_out[i + 1 < n ? n - 2 - i : 0];
        IT_TRY(level_alloc(ps, lv, lpb + 1, c->up_attn[i]));
        for (int j = 0; j <= lpb; j++) {
            int64_t res_skip = j == lpb ? skip_in : out;
            int64_t res_in = j == 0 ? prev : out;
            IT_TRY(it_resnet_init(ps, &lv->res[j], res_in + res_skip, out, T, G, c->norm_eps,
                                  "up_blocks.%d.resnets.%d", i, j));
            if (lv->attn) {
                snprintf(name, sizeof name, "up_blocks.%d.attentions.%d", i, j);
                IT_TRY(xformer_init(m, &lv->attn[j], out, c->heads[n - 1 - i], name));
            }
        }
        if (i < n - 1) lv->sample = it_lin_conv(ps, out, out, 3, 1, 1, "up_blocks.%d.upsamplers.0.conv", i);
        prev = out;
    }
    IT_TRY(it_norm_init(ps, &m->norm_out, C0, G, c->norm_eps, "conv_norm_out"));
    m->conv_out = it_lin_conv(ps, C0, c->out_channels, 3, 1, 1, "conv_out");
    return ps->failed ? IT_ERR_NOMEM : IT_OK;
}

it_status it_unet_init(it_err *err, it_unet *m, const it_unet_config *cfg, int flags)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    it_params_init(&m->params, "unet");
    if (cfg->n_levels < 1 || cfg->n_levels > IT_SD_MAX_LEVELS || cfg->layers_per_block < 1)
        return it_err_set(err, IT_ERR_ARG, "unet: %d levels, %d layers per block", cfg->n_levels,
                          cfg->layers_per_block);
    it_status s = build(m);
    if (s) s = it_err_set(err, IT_ERR_NOMEM, "unet: out of memory building the model");
    if (!s) s = it_params_alloc(err, &m->params, flags);
    if (s) it_params_free(&m->params);
    return s;
}

void it_unet_free(it_unet *m)
{
    it_params_free(&m->params);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- forward */

/* Multi-head attention: q from x, k/v from kv (x itself for self-attention). */
static it_tensor *mha(it_ctx *ctx, it_lin *q, it_lin *k, it_lin *v, it_lin *o, int64_t heads,
                      it_tensor *x, it_tensor *kv)
{
    it_tensor *Q = it_lin_forward(ctx, q, x);   /* (B, N, C) */
    it_tensor *K = it_lin_forward(ctx, k, kv);  /* (B, Tk, C) */
    it_tensor *V = it_lin_forward(ctx, v, kv);
    return it_lin_forward(ctx, o, it_op_attention(ctx, Q, K, V, (int)heads, 0, 0));
}

/* Transformer2DModel with one BasicTransformerBlock. x: (B, C, H, W),
 * context: (B, T, cross_dim). */
static it_tensor *xformer_forward(it_ctx *ctx, const it_xformer *a, it_tensor *x, it_tensor *context)
{
    if (!x) return NULL;
    int64_t H = x->shape[2], W = x->shape[3];
    it_tensor *h = it_norm_forward(ctx, &a->gn, x, 0);
    if (a->linear) h = it_lin_forward(ctx, a->proj_in, it_nn_to_tokens(ctx, h));
    else h = it_nn_to_tokens(ctx, it_lin_forward(ctx, a->proj_in, h));      /* (B, HW, C) */
    it_tensor *n = it_norm_forward(ctx, &a->n1, h, 0);
    h = it_op_add(ctx, h, mha(ctx, a->q1, a->k1, a->v1, a->o1, a->heads, n, n));
    n = it_norm_forward(ctx, &a->n2, h, 0);
    h = it_op_add(ctx, h, mha(ctx, a->q2, a->k2, a->v2, a->o2, a->heads, n, context));
    n = it_norm_forward(ctx, &a->n3, h, 0);
    n = it_lin_forward(ctx, a->ff2, it_op_geglu(ctx, it_lin_forward(ctx, a->ff1, n)));
    h = it_op_add(ctx, h, n);
    if (a->linear) h = it_nn_from_tokens(ctx, it_lin_forward(ctx, a->proj_out, h), H, W);
    else h = it_lin_forward(ctx, a->proj_out, it_nn_from_tokens(ctx, h, H, W));
    return it_op_add(ctx, h, x);
}

/* One resnet (+ transformer) step of a level, scoped. */
static it_tensor *level_step(it_ctx *ctx, const it_unet_level *lv, int j, it_tensor *x, it_tensor *temb,
                             it_tensor *context)
{
    it_mark mk = it_ctx_mark(ctx);
    it_tensor *h = it_resnet_forward(ctx, &lv->res[j], x, temb);
    if (lv->attn) h = xformer_forward(ctx, &lv->attn[j], h, context);
    return it_nn_keep(ctx, mk, h);
}

/* Gradient checkpointing (m->checkpoint, training): one block = a level's
 * resnet + transformer step, with the up path's skip concatenation inside
 * so the concatenated tensor is not kept either. Only the block's output
 * stays on the tape; backward recomputes the block. */
typedef struct unet_block {
    const it_unet_level *lv;
    int j;
} unet_block;

static it_tensor *level_block_fn(it_ctx *ctx, void *user, it_tensor *const *in)
{
    const unet_block *b = user;
    it_tensor *x = in[1] ? it_op_concat(ctx, 2, (it_tensor *[]){in[0], in[1]}, 1) : in[0];
    return level_step(ctx, b->lv, b->j, x, in[2], in[3]);
}

/* Level step j on x (with skip concatenated when not NULL). */
static it_tensor *level_run(it_ctx *ctx, const it_unet *m, const it_unet_level *lv, int j, it_tensor *x,
                            it_tensor *skip, it_tensor *temb, it_tensor *context)
{
    if (m->checkpoint && ctx->grad_enabled) {
        unet_block *b = it_ctx_alloc(ctx, sizeof *b); /* lives until the step's reset */
        if (!b) return NULL;
        b->lv = lv, b->j = j;
        return it_autograd_checkpoint(ctx, level_block_fn, b, 4, (it_tensor *[]){x, skip, temb, context});
    }
    if (!skip) return level_step(ctx, lv, j, x, temb, context);
    it_mark mc = it_ctx_mark(ctx);
    it_tensor *cat = it_op_concat(ctx, 2, (it_tensor *[]){x, skip}, 1);
    return it_nn_keep(ctx, mc, level_step(ctx, lv, j, cat, temb, context));
}

/* The mid block (resnet, transformer, resnet); in: h, temb, context. */
static it_tensor *mid_block_fn(it_ctx *ctx, void *user, it_tensor *const *in)
{
    const it_unet *m = user;
    it_tensor *h = it_resnet_forward(ctx, &m->mid_res[0], in[0], in[1]);
    h = xformer_forward(ctx, &m->mid_attn, h, in[2]);
    return it_resnet_forward(ctx, &m->mid_res[1], h, in[1]);
}

static int check_inputs(it_ctx *ctx, const it_unet *m, it_tensor *x, it_tensor *t, it_tensor *c)
{
    const it_unet_config *cf = &m->cfg;
    int64_t f = (int64_t)1 << (cf->n_levels - 1);
    if (x->ndim != 4 || x->shape[1] != cf->in_channels || x->shape[2] % f || x->shape[3] % f) {
        it_ctx_fail(ctx, IT_ERR_ARG, "unet: sample must be (B, %d, h, w) with h, w divisible by %lld",
                    cf->in_channels, (long long)f);
        return 0;
    }
    if (t->ndim != 1 || t->shape[0] != x->shape[0] || t->dtype != IT_DTYPE_F32) {
        it_ctx_fail(ctx, IT_ERR_ARG, "unet: timesteps must be f32 (B) with B = %lld", (long long)x->shape[0]);
        return 0;
    }
    if (c->ndim != 3 || c->shape[0] != x->shape[0] || c->shape[2] != cf->cross_dim) {
        it_ctx_fail(ctx, IT_ERR_ARG, "unet: context must be (B, T, %d)", cf->cross_dim);
        return 0;
    }
    return 1;
}

it_tensor *it_unet_forward(it_ctx *ctx, const it_unet *m, it_tensor *sample, it_tensor *timesteps,
                           it_tensor *context)
{
    if (ctx->failed || !sample || !timesteps || !context) return NULL;
    if (!check_inputs(ctx, m, sample, timesteps, context)) return NULL;
    const it_unet_config *c = &m->cfg;
    int n = c->n_levels;
    it_mark m0 = it_ctx_mark(ctx);
    /* Time embedding: sinusoid -> linear -> SiLU -> linear; every resnet
     * applies SiLU to it before its projection, so it is done once here. */
    it_tensor *temb = it_op_timestep_embedding(ctx, timesteps, c->block_out[0], c->flip_sin_to_cos,
                                               c->freq_shift, 1.0f, 10000.0f);
    temb = it_lin_forward(ctx, m->time1, temb);
    temb = it_lin_forward(ctx, m->time2, it_op_act(ctx, temb, IT_ACT_SILU));
    temb = it_nn_keep(ctx, m0, it_op_act(ctx, temb, IT_ACT_SILU)); /* (B, 4 C0) */

    it_tensor *skips[1 + IT_SD_MAX_LEVELS * 4];
    int ns = 0;
    it_mark mk = it_ctx_mark(ctx);
    it_tensor *h = it_nn_keep(ctx, mk, it_lin_forward(ctx, m->conv_in, sample));
    skips[ns++] = h;
    for (int i = 0; i < n; i++) {
        const it_unet_level *lv = &m->down[i];
        for (int j = 0; j < lv->n; j++) skips[ns++] = h = level_run(ctx, m, lv, j, h, NULL, temb, context);
        if (lv->sample) {
            mk = it_ctx_mark(ctx);
            skips[ns++] = h = it_nn_keep(ctx, mk, it_lin_forward(ctx, lv->sample, h));
        }
    }
    if (c->mid_attn >= 0) {
        mk = it_ctx_mark(ctx);
        it_tensor *in[3] = {h, temb, context};
        h = m->checkpoint && ctx->grad_enabled ? it_autograd_checkpoint(ctx, mid_block_fn, (void *)m, 3, in)
                                               : it_nn_keep(ctx, mk, mid_block_fn(ctx, (void *)m, in));
    }
    for (int i = 0; i < n; i++) {
        const it_unet_level *lv = &m->up[i];
        for (int j = 0; j < lv->n; j++) h = level_run(ctx, m, lv, j, h, skips[--ns], temb, context);
        if (lv->sample) {
            mk = it_ctx_mark(ctx);
            h = it_nn_keep(ctx, mk, it_lin_forward(ctx, lv->sample, it_op_upsample2x(ctx, h)));
        }
    }
    h = it_lin_forward(ctx, m->conv_out, it_norm_forward(ctx, &m->norm_out, h, 1));
    return it_nn_keep(ctx, m0, h);
}
