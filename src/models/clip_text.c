/* clip_text.c: CLIP text transformer forward (transformers'
 * modeling_clip.CLIPTextTransformer, restated). */
#include "models/clip_text.h"

#include <stdio.h>
#include <string.h>

#include "tensor/autograd.h"
#include "tensor/ops_attn.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_shape.h"

static it_status build_layer(it_clip_text *m, it_clip_layer *l, int i)
{
    it_params *ps = &m->params;
    const it_clip_text_config *c = &m->cfg;
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

it_status it_clip_text_init(it_err *err, it_clip_text *m, const it_clip_text_config *cfg,
                            const char *prefix, const char *proj_key, int flags)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    snprintf(m->prefix, sizeof m->prefix, "%s", prefix ? prefix : "");
    it_params_init(&m->params, "text_encoder");
    it_params *ps = &m->params;
    const char *p = m->prefix;
    m->tok_emb = it_params_add(ps, IT_SHAPE(cfg->vocab_size, cfg->hidden), "%sembeddings.token_embedding.weight", p);
    m->pos_emb = it_params_add(ps, IT_SHAPE(cfg->max_positions, cfg->hidden),
                               "%sembeddings.position_embedding.weight", p);
    m->layers = it_arena_calloc(&ps->arena, (size_t)cfg->n_layers, sizeof *m->layers);
    if (!m->layers) ps->failed = 1;
    for (int i = 0; m->layers && i < cfg->n_layers; i++)
        if (build_layer(m, &m->layers[i], i)) break;
    it_norm_init(ps, &m->final_ln, cfg->hidden, 0, cfg->eps, "%sfinal_layer_norm", p);
    if (cfg->has_projection)
        m->proj = it_lin_linear(ps, cfg->hidden, cfg->projection_dim, 0, "%s",
                                proj_key ? proj_key : "text_projection");
    it_status s = it_params_alloc(err, ps, flags);
    if (s) it_params_free(ps);
    return s;
}

void it_clip_text_free(it_clip_text *m)
{
    it_params_free(&m->params);
    memset(m, 0, sizeof *m);
}

/* One pre-LN block: x + attn(ln1(x)), then + mlp(ln2(x)). x: (B, T, hidden). */
static it_tensor *layer_forward(it_ctx *ctx, const it_clip_text *m, const it_clip_layer *l, it_tensor *x)
{
    const it_clip_text_config *c = &m->cfg;
    it_tensor *h = it_norm_forward(ctx, &l->ln1, x, 0);
    it_tensor *q = it_lin_forward(ctx, l->q, h);   /* (B, T, H*D) */
    it_tensor *k = it_lin_forward(ctx, l->k, h);
    it_tensor *v = it_lin_forward(ctx, l->v, h);
    it_tensor *a = it_op_attention(ctx, q, k, v, c->n_heads, /*causal*/ 1, 0);
    x = it_op_add(ctx, x, it_lin_forward(ctx, l->o, a));
    h = it_norm_forward(ctx, &l->ln2, x, 0);
    h = it_lin_forward(ctx, l->fc1, h);            /* (B, T, inter) */
    h = it_op_act(ctx, h, c->act == IT_CLIP_GELU ? IT_ACT_GELU : IT_ACT_QUICK_GELU);
    return it_op_add(ctx, x, it_lin_forward(ctx, l->fc2, h));
}

/* Gradient checkpointing of one layer (m->checkpoint, training). */
typedef struct clip_block {
    const it_clip_text *m;
    const it_clip_layer *l;
} clip_block;

static it_tensor *layer_block_fn(it_ctx *ctx, void *user, it_tensor *const *in)
{
    const clip_block *b = user;
    return layer_forward(ctx, b->m, b->l, in[0]);
}

static it_tensor *layer_run(it_ctx *ctx, const it_clip_text *m, const it_clip_layer *l, it_tensor *x)
{
    if (!m->checkpoint || !ctx->grad_enabled) return layer_forward(ctx, m, l, x);
    clip_block *b = it_ctx_alloc(ctx, sizeof *b); /* lives until the step's reset */
    if (!b) return NULL;
    b->m = m, b->l = l;
    return it_autograd_checkpoint(ctx, layer_block_fn, b, 1, &x);
}

/* Row index of each sequence's end token in the flattened (B*T) rows:
 * transformers takes argmax(ids) when eos_token_id == 2 (configs written
 * before the eos id was fixed) and the first eos id otherwise. */
static it_tensor *end_rows(it_ctx *ctx, const it_clip_text *m, const it_tensor *ids)
{
    int64_t B = ids->shape[0], T = ids->shape[1];
    it_tensor *rows = it_tensor_new(ctx, IT_DTYPE_I32, IT_SHAPE(B));
    if (!rows) return NULL;
    const int32_t *id = ids->data;
    int32_t *r = rows->data;
    for (int64_t b = 0; b < B; b++) {
        int64_t best = 0;
        for (int64_t t = 0; t < T; t++) {
            if (m->cfg.eos_token_id == 2) {
                if (id[b * T + t] > id[b * T + best]) best = t;
            } else if (id[b * T + t] == m->cfg.eos_token_id) {
                best = t;
                break;
            }
        }
        r[b] = (int32_t)(b * T + best);
    }
    return rows;
}

it_status it_clip_text_forward(it_err *err, it_ctx *ctx, it_clip_text *m, it_tensor *ids,
                               int clip_skip, int want_pooled, it_clip_text_out *out)
{
    memset(out, 0, sizeof *out);
    const it_clip_text_config *c = &m->cfg;
    if (!ids || ids->dtype != IT_DTYPE_I32 || ids->ndim != 2 || ids->shape[1] > c->max_positions ||
        ids->shape[1] < 1)
        return it_err_set(err, IT_ERR_ARG, "text_encoder: ids must be I32 (B, T) with 1 <= T <= %d",
                          c->max_positions);
    if (clip_skip < 0 || clip_skip >= c->n_layers)
        return it_err_set(err, IT_ERR_ARG, "text_encoder: clip skip %d out of range [0, %d)", clip_skip,
                          c->n_layers);
    int64_t B = ids->shape[0], T = ids->shape[1];
    it_mark m0 = it_ctx_mark(ctx);
    it_tensor *x = it_op_embedding(ctx, ids, m->tok_emb);                 /* (B, T, hidden) */
    it_tensor *pos = it_op_slice(ctx, m->pos_emb, 0, 0, T);               /* (T, hidden) */
    x = it_nn_keep(ctx, m0, it_op_add(ctx, x, pos));
    for (int i = 0; i < c->n_layers - clip_skip; i++)
        x = it_nn_keep(ctx, m0, layer_run(ctx, m, &m->layers[i], x));
    x = it_norm_forward(ctx, &m->final_ln, x, 0);
    out->hidden = x;
    if (want_pooled && x) {
        it_tensor *flat = it_op_reshape(ctx, x, IT_SHAPE(B * T, c->hidden));
        out->pooled = it_op_embedding(ctx, end_rows(ctx, m, ids), flat);  /* (B, hidden) */
        if (m->proj) out->projected = it_lin_forward(ctx, m->proj, out->pooled);
    }
    return it_ctx_status(ctx, err);
}
