/* ops_norm.c: group norm (optionally fused with SiLU), layer norm, softmax.
 *
 * Statistics are accumulated in double (two passes: mean, then variance) so
 * that large groups (SD: 10 channels x 4096 pixels) lose no precision; the
 * normalisation itself runs in float. PyTorch semantics: biased variance,
 * eps inside the square root. */
#include "tensor/ops_norm.h"

#include <math.h>
#include <string.h>

#include "tensor/ops_common.h"
#include "tensor/ops_math.h"

static inline float silu_f(float z) { return z * it_fsigmoid(z); }
static inline float silu_df(float z)
{
    float s = it_fsigmoid(z);
    return s * (1.0f + z * (1.0f - s));
}

/* ---------------------------------------------------------------- group norm kernels */

static void group_stats(const float *x, int64_t M, float eps, float *mean, float *rstd)
{
    /* simd reductions: without them the double sums run one add at a time
     * (strict evaluation order), which made GroupNorm latency-bound. */
    double s = 0;
    #pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < M; i++) s += x[i];
    double m = M ? s / (double)M : 0, v = 0;
    #pragma omp simd reduction(+ : v)
    for (int64_t i = 0; i < M; i++) v += ((double)x[i] - m) * ((double)x[i] - m);
    v = M ? v / (double)M : 0;
    *mean = (float)m;
    *rstd = (float)(1.0 / sqrt(v + eps));
}

static void gn_fwd(float *y, float *mean_out, float *rstd_out, const float *x, const float *w,
                   const float *b, int64_t N, int64_t C, int64_t S, int64_t G, float eps, int silu)
{
    int64_t Cg = C / G, M = Cg * S;
    #pragma omp parallel for if (N * C * S > IT_PAR_MIN) schedule(static)
    for (int64_t ng = 0; ng < N * G; ng++) {
        const float *xg = x + ng * M;
        float *yg = y + ng * M;
        float mean, rstd;
        group_stats(xg, M, eps, &mean, &rstd);
        if (mean_out) mean_out[ng] = mean, rstd_out[ng] = rstd;
        int64_t g = ng % G;
        for (int64_t cc = 0; cc < Cg; cc++) {
            int64_t c = g * Cg + cc;
            /* y = x*a + k folds mean, rstd, weight and bias into one FMA. */
            float a = rstd * (w ? w[c] : 1.0f), k = (b ? b[c] : 0.0f) - mean * a;
            const float *xc = xg + cc * S;
            float *yc = yg + cc * S;
            if (silu) {
                #pragma omp simd
                for (int64_t s = 0; s < S; s++) yc[s] = silu_f(xc[s] * a + k);
            } else {
                #pragma omp simd
                for (int64_t s = 0; s < S; s++) yc[s] = xc[s] * a + k;
            }
        }
    }
}

void it_cpu_group_norm_fwd(float *y, float *mean, float *rstd, const float *x, const float *w,
                           const float *b, int64_t N, int64_t C, int64_t S, int64_t G, float eps)
{
    gn_fwd(y, mean, rstd, x, w, b, N, C, S, G, eps, 0);
}

void it_cpu_group_norm_fwd_ref(float *y, const float *x, const float *w, const float *b, int64_t N,
                               int64_t C, int64_t S, int64_t G, float eps)
{
    int64_t Cg = C / G, M = Cg * S;
    for (int64_t ng = 0; ng < N * G; ng++) {
        const float *xg = x + ng * M;
        double m = 0, v = 0;
        for (int64_t i = 0; i < M; i++) m += xg[i];
        m /= (double)M;
        for (int64_t i = 0; i < M; i++) v += (xg[i] - m) * (xg[i] - m);
        double r = 1.0 / sqrt(v / (double)M + eps);
        for (int64_t i = 0; i < M; i++) {
            int64_t c = (ng % G) * Cg + i / S;
            y[ng * M + i] = (float)((xg[i] - m) * r * (w ? w[c] : 1.0) + (b ? b[c] : 0.0));
        }
    }
}

/* dz (the gradient before SiLU when fused) of element s of channel c. */
static inline float gn_dz(float dy, float xhat, float wc, float bc, int silu)
{
    return silu ? dy * silu_df(xhat * wc + bc) : dy;
}

static void gn_bwd(float *dx, float *dw, float *db, const float *dy, const float *x, const float *mean,
                   const float *rstd, const float *w, const float *b, int64_t N, int64_t C, int64_t S,
                   int64_t G, int silu)
{
    int64_t Cg = C / G, M = Cg * S;
    if (dx) {
        #pragma omp parallel for if (N * C * S > IT_PAR_MIN) schedule(static)
        for (int64_t ng = 0; ng < N * G; ng++) {
            int64_t g = ng % G;
            float m = mean[ng], r = rstd[ng];
            double s1 = 0, s2 = 0; /* sum dxhat, sum dxhat*xhat */
            for (int64_t cc = 0; cc < Cg; cc++) {
                int64_t c = g * Cg + cc;
                float wc = w ? w[c] : 1.0f, bc = b ? b[c] : 0.0f;
                const float *xc = x + ng * M + cc * S, *dyc = dy + ng * M + cc * S;
                #pragma omp simd reduction(+ : s1, s2)
                for (int64_t s = 0; s < S; s++) {
                    float xh = (xc[s] - m) * r, dxh = gn_dz(dyc[s], xh, wc, bc, silu) * wc;
                    s1 += dxh, s2 += dxh * xh;
                }
            }
            float a1 = (float)(s1 / (double)M), a2 = (float)(s2 / (double)M);
            for (int64_t cc = 0; cc < Cg; cc++) {
                int64_t c = g * Cg + cc;
                float wc = w ? w[c] : 1.0f, bc = b ? b[c] : 0.0f;
                const float *xc = x + ng * M + cc * S, *dyc = dy + ng * M + cc * S;
                float *dxc = dx + ng * M + cc * S;
                #pragma omp simd
                for (int64_t s = 0; s < S; s++) {
                    float xh = (xc[s] - m) * r, dxh = gn_dz(dyc[s], xh, wc, bc, silu) * wc;
                    dxc[s] += r * (dxh - a1 - xh * a2);
                }
            }
        }
    }
    if (dw || db) {
        #pragma omp parallel for if (N * C * S > IT_PAR_MIN) schedule(static)
        for (int64_t c = 0; c < C; c++) {
            float wc = w ? w[c] : 1.0f, bc = b ? b[c] : 0.0f;
            double sw = 0, sb = 0;
            for (int64_t n = 0; n < N; n++) {
                int64_t ng = n * G + c / Cg;
                float m = mean[ng], r = rstd[ng];
                const float *xc = x + (n * C + c) * S, *dyc = dy + (n * C + c) * S;
                #pragma omp simd reduction(+ : sw, sb)
                for (int64_t s = 0; s < S; s++) {
                    float xh = (xc[s] - m) * r, dz = gn_dz(dyc[s], xh, wc, bc, silu);
                    sw += dz * xh, sb += dz;
                }
            }
            if (dw) dw[c] += (float)sw;
            if (db) db[c] += (float)sb;
        }
    }
}

void it_cpu_group_norm_bwd(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *mean, const float *rstd, const float *w, int64_t N, int64_t C,
                           int64_t S, int64_t G)
{
    gn_bwd(dx, dw, db, dy, x, mean, rstd, w, NULL, N, C, S, G, 0);
}

/* ---------------------------------------------------------------- group norm op */

static void group_norm_backward(it_ctx *ctx, it_node *n)
{
    it_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int64_t N = n->iarg[0], C = n->iarg[1], S = n->iarg[2], G = n->iarg[3];
    float *dx = it_autograd_grad(ctx, x), *dw = it_autograd_grad(ctx, w), *db = it_autograd_grad(ctx, b);
    if (ctx->failed) return;
    const float *stats = n->saved;
    gn_bwd(dx, dw, db, n->out->grad, x->data, stats, stats + N * G, w ? w->data : NULL,
           b ? b->data : NULL, N, C, S, G, (int)n->iarg[4]);
}

it_tensor *it_op_group_norm(it_ctx *ctx, it_tensor *x, it_tensor *w, it_tensor *b, int64_t groups,
                            float eps, int silu)
{
    it_tensor *in[3] = {x, w, b};
    if (it_ops_skip(ctx, 1, in)) return NULL;
    if (!it_ops_need_f32(ctx, "group_norm", x)) return NULL;
    if (x->ndim < 2) return it_ops_shape_error(ctx, "group_norm", x, "input must be (N, C, ...)");
    int64_t N = x->shape[0], C = x->shape[1], S = C && N ? x->n / (N * C) : 0;
    if (groups <= 0 || C % groups)
        return it_ops_shape_error(ctx, "group_norm", x, "channels not divisible by the group count");
    if ((w && w->n != C) || (b && b->n != C))
        return it_ops_shape_error(ctx, "group_norm", w && w->n != C ? w : b, "affine parameters must have C elements");
    it_tensor *y = it_ops_out(ctx, x->ndim, x->shape);
    if (!y) return NULL;
    int rec = it_autograd_wants(ctx, 3, in);
    float *stats = rec ? it_ctx_alloc(ctx, (size_t)(2 * N * groups) * sizeof(float)) : NULL;
    if (rec && !stats) return NULL;
    gn_fwd(y->data, stats, stats ? stats + N * groups : NULL, x->data, w ? w->data : NULL,
           b ? b->data : NULL, N, C, S, groups, eps, silu);
    it_node *n = it_autograd_record(ctx, y, silu ? "group_norm_silu" : "group_norm", group_norm_backward, 3, in);
    if (n) {
        n->iarg[0] = N, n->iarg[1] = C, n->iarg[2] = S, n->iarg[3] = groups, n->iarg[4] = silu;
        n->saved = stats;
    }
    return y;
}

/* ---------------------------------------------------------------- layer norm */

static void layer_norm_backward(it_ctx *ctx, it_node *n)
{
    it_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int64_t R = n->iarg[0], D = n->iarg[1];
    float *dx = it_autograd_grad(ctx, x), *dw = it_autograd_grad(ctx, w), *db = it_autograd_grad(ctx, b);
    if (ctx->failed) return;
    const float *X = x->data, *W = w ? w->data : NULL, *dy = n->out->grad;
    const float *mean = n->saved, *rstd = mean + R;
    if (dx) {
        #pragma omp parallel for if (R * D > IT_PAR_MIN) schedule(static)
        for (int64_t r = 0; r < R; r++) {
            const float *xr = X + r * D, *dyr = dy + r * D;
            float m = mean[r], s = rstd[r];
            double s1 = 0, s2 = 0;
            #pragma omp simd reduction(+ : s1, s2)
            for (int64_t d = 0; d < D; d++) {
                float xh = (xr[d] - m) * s, dxh = dyr[d] * (W ? W[d] : 1.0f);
                s1 += dxh, s2 += dxh * xh;
            }
            float a1 = (float)(s1 / (double)D), a2 = (float)(s2 / (double)D);
            float *dxr = dx + r * D;
            for (int64_t d = 0; d < D; d++) {
                float xh = (xr[d] - m) * s, dxh = dyr[d] * (W ? W[d] : 1.0f);
                dxr[d] += s * (dxh - a1 - xh * a2);
            }
        }
    }
    /* Reduction over rows: serial in r, vectorised over d. */
    for (int64_t r = 0; r < R && (dw || db); r++) {
        const float *xr = X + r * D, *dyr = dy + r * D;
        float m = mean[r], s = rstd[r];
        if (dw)
            for (int64_t d = 0; d < D; d++) dw[d] += dyr[d] * (xr[d] - m) * s;
        if (db)
            for (int64_t d = 0; d < D; d++) db[d] += dyr[d];
    }
}

it_tensor *it_op_layer_norm(it_ctx *ctx, it_tensor *x, it_tensor *w, it_tensor *b, float eps)
{
    it_tensor *in[3] = {x, w, b};
    if (it_ops_skip(ctx, 1, in)) return NULL;
    if (!it_ops_need_f32(ctx, "layer_norm", x)) return NULL;
    if (x->ndim < 1) return it_ops_shape_error(ctx, "layer_norm", x, "input needs a last dim");
    int64_t D = x->shape[x->ndim - 1], R = D ? x->n / D : 0;
    if ((w && w->n != D) || (b && b->n != D))
        return it_ops_shape_error(ctx, "layer_norm", x, "weight/bias size differs from the last dim");
    it_tensor *y = it_ops_out(ctx, x->ndim, x->shape);
    if (!y) return NULL;
    int rec = it_autograd_wants(ctx, 3, in);
    float *stats = rec ? it_ctx_alloc(ctx, (size_t)(2 * R) * sizeof(float)) : NULL;
    if (rec && !stats) return NULL;
    const float *X = x->data, *W = w ? w->data : NULL, *B = b ? b->data : NULL;
    float *Y = y->data;
    #pragma omp parallel for if (x->n > IT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < R; r++) {
        float m, s;
        group_stats(X + r * D, D, eps, &m, &s);
        if (stats) stats[r] = m, stats[R + r] = s;
        const float *xr = X + r * D;
        float *yr = Y + r * D;
        for (int64_t d = 0; d < D; d++) yr[d] = (xr[d] - m) * s * (W ? W[d] : 1.0f) + (B ? B[d] : 0.0f);
    }
    it_node *n = it_autograd_record(ctx, y, "layer_norm", layer_norm_backward, 3, in);
    if (n) n->iarg[0] = R, n->iarg[1] = D, n->saved = stats;
    return y;
}

/* ---------------------------------------------------------------- softmax */

void it_cpu_softmax_fwd(float *y, const float *x, int64_t rows, int64_t D)
{
    #pragma omp parallel for if (rows * D > IT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * D;
        float *yr = y + r * D, mx = -INFINITY, s = 0;
        #pragma omp simd reduction(max : mx)
        for (int64_t d = 0; d < D; d++) mx = xr[d] > mx ? xr[d] : mx;
        #pragma omp simd reduction(+ : s)
        for (int64_t d = 0; d < D; d++) s += (yr[d] = it_fexp(xr[d] - mx));
        float inv = 1.0f / s;
        for (int64_t d = 0; d < D; d++) yr[d] *= inv;
    }
}

static void softmax_backward(it_ctx *ctx, it_node *n)
{
    float *dx = it_autograd_grad(ctx, n->in[0]);
    if (!dx) return;
    int64_t D = n->iarg[0], rows = D ? n->out->n / D : 0;
    const float *Y = n->out->data, *dy = n->out->grad;
    #pragma omp parallel for if (n->out->n > IT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = Y + r * D, *gr = dy + r * D;
        float dot = 0;
        #pragma omp simd reduction(+ : dot)
        for (int64_t d = 0; d < D; d++) dot += yr[d] * gr[d];
        float *dxr = dx + r * D;
        for (int64_t d = 0; d < D; d++) dxr[d] += yr[d] * (gr[d] - dot);
    }
}

it_tensor *it_op_softmax(it_ctx *ctx, it_tensor *x)
{
    if (it_ops_skip(ctx, 1, &x)) return NULL;
    if (!it_ops_need_f32(ctx, "softmax", x)) return NULL;
    if (x->ndim < 1) return it_ops_shape_error(ctx, "softmax", x, "input needs a last dim");
    int64_t D = x->shape[x->ndim - 1];
    it_tensor *y = it_ops_out(ctx, x->ndim, x->shape);
    if (!y) return NULL;
    if (D) it_cpu_softmax_fwd(y->data, x->data, x->n / D, D);
    it_node *n = it_autograd_record(ctx, y, "softmax", softmax_backward, 1, &x);
    if (n) n->iarg[0] = D;
    return y;
}
