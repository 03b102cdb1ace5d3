/* vae.c: AutoencoderKL encoder/decoder (diffusers models/autoencoders/vae.py
 * Encoder/Decoder, restated), posterior sampling and tiling. */
#include "models/vae.h"

#include <math.h>
#include <string.h>

#include "base/rng.h"
#include "tensor/autograd.h"
#include "tensor/ops_attn.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_shape.h"

#define VAE_EPS 1e-6f

/* ---------------------------------------------------------------- build */

static it_status attn_init(it_params *ps, it_vae_attn *a, int64_t c, int64_t groups, const char *side)
{
    IT_TRY(it_norm_init(ps, &a->gn, c, groups, VAE_EPS, "%s.mid_block.attentions.0.group_norm", side));
    a->q = it_lin_linear(ps, c, c, 1, "%s.mid_block.attentions.0.to_q", side);
    a->k = it_lin_linear(ps, c, c, 1, "%s.mid_block.attentions.0.to_k", side);
    a->v = it_lin_linear(ps, c, c, 1, "%s.mid_block.attentions.0.to_v", side);
    a->o = it_lin_linear(ps, c, c, 1, "%s.mid_block.attentions.0.to_out.0", side);
    return ps->failed ? IT_ERR_NOMEM : IT_OK;
}

static it_status level_init(it_params *ps, it_vae_level *lv, int n_res, int64_t in, int64_t out,
                            int64_t groups, int sample, const char *fmt_prefix, int i)
{
    lv->n_res = n_res;
    lv->res = it_arena_calloc(&ps->arena, (size_t)n_res, sizeof *lv->res);
    if (!lv->res) return IT_ERR_NOMEM;
    for (int j = 0; j < n_res; j++)
        IT_TRY(it_resnet_init(ps, &lv->res[j], j ? out : in, out, 0, groups, VAE_EPS, "%s.%d.resnets.%d",
                              fmt_prefix, i, j));
    if (sample == 1) /* Downsample2D(padding=0): the pad (0, 1, 0, 1) happens in forward */
        lv->sample = it_lin_conv(ps, out, out, 3, 2, 0, "%s.%d.downsamplers.0.conv", fmt_prefix, i);
    else if (sample == 2)
        lv->sample = it_lin_conv(ps, out, out, 3, 1, 1, "%s.%d.upsamplers.0.conv", fmt_prefix, i);
    return ps->failed ? IT_ERR_NOMEM : IT_OK;
}

static it_status build(it_vae *m)
{
    const it_vae_config *c = &m->cfg;
    it_params *ps = &m->params;
    int n = c->n_levels, G = c->norm_groups, L = c->latent_channels;
    int top = c->block_out[n - 1];
    m->enc_in = it_lin_conv(ps, c->in_channels, c->block_out[0], 3, 1, 1, "encoder.conv_in");
    for (int i = 0; i < n; i++)
        IT_TRY(level_init(ps, &m->enc[i], c->layers_per_block, i ? c->block_out[i - 1] : c->block_out[0],
                          c->block_out[i], G, i < n - 1 ? 1 : 0, "encoder.down_blocks", i));
    IT_TRY(it_resnet_init(ps, &m->enc_mid[0], top, top, 0, G, VAE_EPS, "encoder.mid_block.resnets.0"));
    if (c->mid_attn) IT_TRY(attn_init(ps, &m->enc_attn, top, G, "encoder"));
    IT_TRY(it_resnet_init(ps, &m->enc_mid[1], top, top, 0, G, VAE_EPS, "encoder.mid_block.resnets.1"));
    IT_TRY(it_norm_init(ps, &m->enc_norm, top, G, VAE_EPS, "encoder.conv_norm_out"));
    m->enc_out = it_lin_conv(ps, top, 2 * L, 3, 1, 1, "encoder.conv_out");
    if (c->use_quant_conv) m->quant = it_lin_conv(ps, 2 * L, 2 * L, 1, 1, 0, "quant_conv");
    if (c->use_post_quant_conv) m->post_quant = it_lin_conv(ps, L, L, 1, 1, 0, "post_quant_conv");
    m->dec_in = it_lin_conv(ps, L, top, 3, 1, 1, "decoder.conv_in");
    IT_TRY(it_resnet_init(ps, &m->dec_mid[0], top, top, 0, G, VAE_EPS, "decoder.mid_block.resnets.0"));
    if (c->mid_attn) IT_TRY(attn_init(ps, &m->dec_attn, top, G, "decoder"));
    IT_TRY(it_resnet_init(ps, &m->dec_mid[1], top, top, 0, G, VAE_EPS, "decoder.mid_block.resnets.1"));
    int prev = top;
    for (int i = 0; i < n; i++) {
        int out = c->block_out[n - 1 - i];
        IT_TRY(level_init(ps, &m->dec[i], c->layers_per_block + 1, prev, out, G, i < n - 1 ? 2 : 0,
                          "decoder.up_blocks", i));
        prev = out;
    }
    IT_TRY(it_norm_init(ps, &m->dec_norm, c->block_out[0], G, VAE_EPS, "decoder.conv_norm_out"));
    m->dec_out = it_lin_conv(ps, c->block_out[0], c->out_channels, 3, 1, 1, "decoder.conv_out");
    return ps->failed ? IT_ERR_NOMEM : IT_OK;
}

it_status it_vae_init(it_err *err, it_vae *m, const it_vae_config *cfg, int flags)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    it_params_init(&m->params, "vae");
    if (cfg->n_levels < 1 || cfg->n_levels > IT_SD_MAX_LEVELS)
        return it_err_set(err, IT_ERR_ARG, "vae: %d levels", cfg->n_levels);
    it_status s = build(m);
    if (s) s = it_err_set(err, IT_ERR_NOMEM, "vae: out of memory building the model");
    if (!s) s = it_params_alloc(err, &m->params, flags);
    if (s) it_params_free(&m->params);
    return s;
}

void it_vae_free(it_vae *m)
{
    it_params_free(&m->params);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- forward */

/* Single-head self-attention over the H*W positions, with residual. */
static it_tensor *attn_forward(it_ctx *ctx, const it_vae_attn *a, it_tensor *x)
{
    if (!x) return NULL;
    int64_t H = x->shape[2], W = x->shape[3];
    it_tensor *h = it_nn_to_tokens(ctx, it_norm_forward(ctx, &a->gn, x, 0)); /* (N, HW, C) */
    it_tensor *q = it_lin_forward(ctx, a->q, h);
    it_tensor *k = it_lin_forward(ctx, a->k, h);
    it_tensor *v = it_lin_forward(ctx, a->v, h);
    h = it_lin_forward(ctx, a->o, it_op_attention(ctx, q, k, v, 1, 0, 0));
    return it_op_add(ctx, x, it_nn_from_tokens(ctx, h, H, W));
}

/* Zero pad one column on the right and one row at the bottom (torch
 * F.pad(x, (0, 1, 0, 1))), by concatenation so gradients flow. */
static it_tensor *pad_br(it_ctx *ctx, it_tensor *x)
{
    if (!x) return NULL;
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    it_tensor *zc = it_tensor_zeros(ctx, IT_DTYPE_F32, IT_SHAPE(N, C, H, 1));
    x = it_op_concat(ctx, 2, (it_tensor *[]){x, zc}, 3);
    it_tensor *zr = it_tensor_zeros(ctx, IT_DTYPE_F32, IT_SHAPE(N, C, 1, W + 1));
    return it_op_concat(ctx, 2, (it_tensor *[]){x, zr}, 2);
}

static it_tensor *mid_forward(it_ctx *ctx, const it_vae *m, const it_resnet *r, const it_vae_attn *a,
                              it_tensor *x)
{
    x = it_resnet_forward(ctx, &r[0], x, NULL);
    if (m->cfg.mid_attn) x = attn_forward(ctx, a, x);
    return it_resnet_forward(ctx, &r[1], x, NULL);
}

it_tensor *it_vae_encode(it_ctx *ctx, const it_vae *m, it_tensor *image)
{
    it_mark m0 = it_ctx_mark(ctx);
    it_tensor *x = it_nn_keep(ctx, m0, it_lin_forward(ctx, m->enc_in, image));
    for (int i = 0; i < m->cfg.n_levels; i++) {
        const it_vae_level *lv = &m->enc[i];
        for (int j = 0; j < lv->n_res; j++) x = it_nn_keep(ctx, m0, it_resnet_forward(ctx, &lv->res[j], x, NULL));
        if (lv->sample) x = it_nn_keep(ctx, m0, it_lin_forward(ctx, lv->sample, pad_br(ctx, x)));
    }
    x = it_nn_keep(ctx, m0, mid_forward(ctx, m, m->enc_mid, &m->enc_attn, x));
    x = it_lin_forward(ctx, m->enc_out, it_norm_forward(ctx, &m->enc_norm, x, 1));
    if (m->quant) x = it_lin_forward(ctx, m->quant, x);
    return it_nn_keep(ctx, m0, x);
}

it_tensor *it_vae_decode(it_ctx *ctx, const it_vae *m, it_tensor *z)
{
    it_mark m0 = it_ctx_mark(ctx);
    it_tensor *x = z;
    if (m->post_quant) x = it_lin_forward(ctx, m->post_quant, x);
    x = it_nn_keep(ctx, m0, it_lin_forward(ctx, m->dec_in, x));
    x = it_nn_keep(ctx, m0, mid_forward(ctx, m, m->dec_mid, &m->dec_attn, x));
    for (int i = 0; i < m->cfg.n_levels; i++) {
        const it_vae_level *lv = &m->dec[i];
        for (int j = 0; j < lv->n_res; j++) x = it_nn_keep(ctx, m0, it_resnet_forward(ctx, &lv->res[j], x, NULL));
        if (lv->sample) x = it_nn_keep(ctx, m0, it_lin_forward(ctx, lv->sample, it_op_upsample2x(ctx, x)));
    }
    x = it_lin_forward(ctx, m->dec_out, it_norm_forward(ctx, &m->dec_norm, x, 1));
    return it_nn_keep(ctx, m0, x);
}

/* dz -> dmean = s dz; dlogvar = s dz * 0.5 std noise where the clamp is
 * inactive (torch.clamp passes no gradient outside its range). */
static void sample_backward(it_ctx *ctx, it_node *n)
{
    it_tensor *mo = n->in[0];
    float *g = it_autograd_grad(ctx, mo);
    if (!g || ctx->failed) return;
    const float *noise = n->saved, *dz = n->out->grad, *M = mo->data;
    int64_t N = n->iarg[0], per = n->iarg[1];
    float s = n->farg[0];
    for (int64_t b = 0; b < N; b++)
        for (int64_t i = 0; i < per; i++) {
            float d = s * dz[b * per + i];
            g[b * 2 * per + i] += d;
            float lv = M[b * 2 * per + per + i];
            if (noise && lv >= -30.0f && lv <= 20.0f)
                g[b * 2 * per + per + i] += d * 0.5f * expf(0.5f * lv) * noise[b * per + i];
        }
}

it_tensor *it_vae_sample(it_ctx *ctx, const it_vae *m, it_tensor *moments, uint64_t seed,
                         int deterministic, int scale)
{
    if (!moments || ctx->failed) return NULL;
    int64_t L = m->cfg.latent_channels;
    if (moments->ndim != 4 || moments->shape[1] != 2 * L)
        return it_ctx_fail(ctx, IT_ERR_ARG, "vae sample: moments must be (N, %lld, h, w)", (long long)(2 * L));
    int64_t N = moments->shape[0], hw = moments->shape[2] * moments->shape[3];
    it_tensor *z = it_tensor_new(ctx, IT_DTYPE_F32, IT_SHAPE(N, L, moments->shape[2], moments->shape[3]));
    if (!z) return NULL;
    int64_t per = L * hw;
    float *noise = NULL;
    if (!deterministic) {
        noise = it_ctx_alloc(ctx, (size_t)(N * per) * sizeof(float));
        if (!noise) return NULL;
        it_rng r;
        it_rng_init(&r, seed);
        it_rng_normal(&r, noise, (size_t)(N * per), 0.0f, 1.0f);
    }
    const float *mo = moments->data;
    float *zo = z->data;
    float s = scale ? m->cfg.scaling_factor : 1.0f, sh = scale ? m->cfg.shift_factor : 0.0f;
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < per; i++) {
            float mean = mo[n * 2 * per + i], lv = mo[n * 2 * per + per + i];
            lv = lv < -30.0f ? -30.0f : (lv > 20.0f ? 20.0f : lv);
            float v = deterministic ? mean : mean + expf(0.5f * lv) * noise[n * per + i];
            zo[n * per + i] = (v - sh) * s;
        }
    /* Differentiable (VAE training: the reparameterisation trick). */
    it_node *nd = it_autograd_record(ctx, z, "vae_sample", sample_backward, 1, &moments);
    if (nd) {
        nd->saved = noise;
        nd->iarg[0] = N, nd->iarg[1] = per;
        nd->farg[0] = s;
    }
    return z;
}

/* KL(q || N(0, 1)) per element, 0.5 (mean^2 + var - 1 - logvar), averaged. */
static void kl_backward(it_ctx *ctx, it_node *n)
{
    it_tensor *mo = n->in[0];
    float *g = it_autograd_grad(ctx, mo);
    if (!g || ctx->failed) return;
    const float *M = mo->data;
    int64_t N = n->iarg[0], per = n->iarg[1];
    float k = n->out->grad[0] / (float)(N * per);
    for (int64_t b = 0; b < N; b++)
        for (int64_t i = 0; i < per; i++) {
            g[b * 2 * per + i] += k * M[b * 2 * per + i];
            float lv = M[b * 2 * per + per + i];
            if (lv >= -30.0f && lv <= 20.0f) g[b * 2 * per + per + i] += k * 0.5f * (expf(lv) - 1.0f);
        }
}

it_tensor *it_vae_kl(it_ctx *ctx, const it_vae *m, it_tensor *moments)
{
    if (!moments || ctx->failed) return NULL;
    int64_t L = m->cfg.latent_channels;
    if (moments->ndim != 4 || moments->shape[1] != 2 * L)
        return it_ctx_fail(ctx, IT_ERR_ARG, "vae kl: moments must be (N, %lld, h, w)", (long long)(2 * L));
    int64_t N = moments->shape[0], per = L * moments->shape[2] * moments->shape[3];
    it_tensor *y = it_tensor_new(ctx, IT_DTYPE_F32, 0, NULL);
    if (!y) return NULL;
    const float *M = moments->data;
    double acc = 0;
    for (int64_t b = 0; b < N; b++)
        for (int64_t i = 0; i < per; i++) {
            double mean = M[b * 2 * per + i], lv = M[b * 2 * per + per + i];
            lv = lv < -30.0 ? -30.0 : (lv > 20.0 ? 20.0 : lv);
            acc += 0.5 * (mean * mean + exp(lv) - 1.0 - lv);
        }
    it_f32(y)[0] = (float)(acc / (double)(N * per));
    it_node *nd = it_autograd_record(ctx, y, "vae_kl", kl_backward, 1, &moments);
    if (nd) nd->iarg[0] = N, nd->iarg[1] = per;
    return y;
}

/* ---------------------------------------------------------------- tiling */

typedef it_tensor *(*tile_fn)(it_ctx *ctx, const it_vae *m, it_tensor *x);

/* A tile's output kept on the heap (N, C, h, w). */
typedef struct tile_buf {
    float *d;
    int64_t h, w;
} tile_buf;

/* b[..., y, :] = a[..., ah - be + y, :] (1 - y/be) + b[..., y, :] y/be (and the
 * same along x): diffusers' blend_v / blend_h, b modified in place. */
static void blend(const tile_buf *a, tile_buf *b, int64_t NC, int64_t be, int vertical)
{
    int64_t ext = vertical ? (a->h < b->h ? a->h : b->h) : (a->w < b->w ? a->w : b->w);
    if (be > ext) be = ext;
    for (int64_t p = 0; p < NC; p++) {
        const float *A = a->d + p * a->h * a->w;
        float *B = b->d + p * b->h * b->w;
        for (int64_t y = 0; y < be; y++) {
            float t = (float)y / (float)be;
            if (vertical) {
                int64_t w = a->w < b->w ? a->w : b->w;
                for (int64_t x = 0; x < w; x++)
                    B[y * b->w + x] = A[(a->h - be + y) * a->w + x] * (1 - t) + B[y * b->w + x] * t;
            } else {
                int64_t h = a->h < b->h ? a->h : b->h;
                for (int64_t r = 0; r < h; r++)
                    B[r * b->w + y] = A[r * a->w + a->w - be + y] * (1 - t) + B[r * b->w + y] * t;
            }
        }
    }
}

static void free_row(tile_buf *row, int64_t n)
{
    for (int64_t j = 0; j < n; j++) it_free_aligned(row[j].d);
    memset(row, 0, (size_t)n * sizeof *row);
}

/* Runs fn on tiles of x (tile_in square, starting every stride), blends
 * with be rows/cols and crops to limit; out_size maps an input tile side
 * to its output side. */
static it_tensor *tiled(it_ctx *ctx, const it_vae *m, it_tensor *x, tile_fn fn, int64_t tile_in,
                        int64_t stride, int64_t be, int64_t limit, int64_t out_c,
                        int64_t (*out_size)(const it_vae *, int64_t))
{
    if (!x || ctx->failed) return NULL;
    if (ctx->grad_enabled) return it_ctx_fail(ctx, IT_ERR_STATE, "vae: tiling runs in no-grad mode only");
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t ny = (H + stride - 1) / stride, nx = (W + stride - 1) / stride;
    /* Output size: the sum of the cropped tile outputs. */
    int64_t OH = 0, OW = 0;
    for (int64_t i = 0; i < ny; i++) {
        int64_t s = out_size(m, (H - i * stride < tile_in ? H - i * stride : tile_in));
        OH += s < limit ? s : limit;
    }
    for (int64_t j = 0; j < nx; j++) {
        int64_t s = out_size(m, (W - j * stride < tile_in ? W - j * stride : tile_in));
        OW += s < limit ? s : limit;
    }
    it_tensor *out = it_tensor_new(ctx, IT_DTYPE_F32, IT_SHAPE(N, out_c, OH, OW));
    tile_buf *prev = it_calloc((size_t)(2 * nx), sizeof *prev);
    if (!out || !prev) {
        it_free(prev);
        return out ? it_ctx_fail(ctx, IT_ERR_NOMEM, "vae: out of memory for tiles") : NULL;
    }
    tile_buf *cur = prev + nx;
    int64_t oy = 0;
    for (int64_t i = 0; i < ny && !ctx->failed; i++) {
        int64_t ox = 0, row_h = 0;
        for (int64_t j = 0; j < nx && !ctx->failed; j++) {
            int64_t y0 = i * stride, x0 = j * stride;
            int64_t th = H - y0 < tile_in ? H - y0 : tile_in, tw = W - x0 < tile_in ? W - x0 : tile_in;
            it_mark mk = it_ctx_mark(ctx);
            it_tensor *t = it_op_slice(ctx, it_op_slice(ctx, x, 2, y0, th), 3, x0, tw);
            t = fn(ctx, m, t);
            if (!t) break;
            tile_buf *b = &cur[j];
            b->h = t->shape[2];
            b->w = t->shape[3];
            b->d = it_malloc_aligned((size_t)(N * out_c * b->h * b->w) * sizeof(float));
            if (!b->d) {
                it_ctx_release(ctx, mk);
                it_ctx_fail(ctx, IT_ERR_NOMEM, "vae: out of memory for a tile");
                break;
            }
            memcpy(b->d, t->data, (size_t)t->n * sizeof(float));
            it_ctx_release(ctx, mk);
            if (i > 0) blend(&prev[j], b, N * out_c, be, 1);
            if (j > 0) blend(&cur[j - 1], b, N * out_c, be, 0);
            int64_t ch = b->h < limit ? b->h : limit, cw = b->w < limit ? b->w : limit;
            float *o = out->data;
            for (int64_t p = 0; p < N * out_c; p++)
                for (int64_t r = 0; r < ch; r++)
                    memcpy(o + (p * OH + oy + r) * OW + ox, b->d + (p * b->h + r) * b->w,
                           (size_t)cw * sizeof(float));
            ox += cw;
            row_h = ch;
        }
        oy += row_h;
        free_row(prev, nx);
        memcpy(prev, cur, (size_t)nx * sizeof *prev);
        memset(cur, 0, (size_t)nx * sizeof *cur);
    }
    free_row(prev, 2 * nx);
    it_free(prev);
    (void)C;
    return ctx->failed ? NULL : out;
}

static int64_t factor(const it_vae *m) { return (int64_t)1 << (m->cfg.n_levels - 1); }
static int64_t dec_size(const it_vae *m, int64_t s) { return s * factor(m); }
static int64_t enc_size(const it_vae *m, int64_t s)
{
    for (int i = 0; i < m->cfg.n_levels - 1; i++) s = (s + 1 - 3) / 2 + 1; /* pad (0,1), k3, stride 2 */
    return s;
}

it_tensor *it_vae_decode_tiled(it_ctx *ctx, const it_vae *m, it_tensor *z)
{
    int64_t ts = m->cfg.sample_size, tl = ts / factor(m);
    if (!z) return NULL;
    if (z->shape[2] <= tl && z->shape[3] <= tl) return it_vae_decode(ctx, m, z);
    int64_t be = (int64_t)(ts * 0.25);
    return tiled(ctx, m, z, it_vae_decode, tl, (int64_t)(tl * 0.75), be, ts - be, m->cfg.out_channels,
                 dec_size);
}

it_tensor *it_vae_encode_tiled(it_ctx *ctx, const it_vae *m, it_tensor *image)
{
    int64_t ts = m->cfg.sample_size, tl = ts / factor(m);
    if (!image) return NULL;
    if (image->shape[2] <= ts && image->shape[3] <= ts) return it_vae_encode(ctx, m, image);
    int64_t be = (int64_t)(tl * 0.25);
    return tiled(ctx, m, image, it_vae_encode, ts, (int64_t)(ts * 0.75), be, tl - be,
                 2 * m->cfg.latent_channels, enc_size);
}
