/* ops_conv.c: convolution kernels and the conv2d operation.
 *
 * Fast path layout, per sample: col (Cin*kh*kw, Hout*Wout) = im2col(x_n),
 * y_n (Cout, P) = W (Cout, K) col (K, P). Backward: dW += dy_n col^T,
 * dcol = W^T dy_n, dx_n += col2im(dcol). A 1x1 stride-1 unpadded convolution
 * is the GEMM on x_n itself. im2col and col2im parallelise over input
 * channels (col2im writes only its own channel's plane, so no races); the
 * GEMMs use OpenBLAS's threads. */
#include "tensor/ops_conv.h"

#include <string.h>

#include "tensor/ops_common.h"
#include "tensor/ops_gemm.h"

int it_conv2d_shape_init(it_conv2d_shape *s)
{
    if (s->n < 0 || s->c_in <= 0 || s->h <= 0 || s->w <= 0 || s->c_out <= 0 || s->kh <= 0 || s->kw <= 0 ||
        s->stride <= 0 || s->pad < 0)
        return 0;
    int64_t hp = s->h + 2 * s->pad - s->kh, wp = s->w + 2 * s->pad - s->kw;
    if (hp < 0 || wp < 0) return 0;
    s->h_out = hp / s->stride + 1;
    s->w_out = wp / s->stride + 1;
    return 1;
}

static int is_pointwise(const it_conv2d_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0;
}

int64_t it_conv2d_scratch(const it_conv2d_shape *s)
{
    return is_pointwise(s) ? 0 : s->c_in * s->kh * s->kw * s->h_out * s->w_out;
}

/* ---------------------------------------------------------------- reference */

void it_cpu_conv2d_fwd_ref(const it_conv2d_shape *s, float *y, const float *x, const float *w, const float *b)
{
    for (int64_t n = 0; n < s->n; n++)
        for (int64_t co = 0; co < s->c_out; co++)
            for (int64_t oy = 0; oy < s->h_out; oy++)
                for (int64_t ox = 0; ox < s->w_out; ox++) {
                    double acc = b ? b[co] : 0;
                    for (int64_t ci = 0; ci < s->c_in; ci++)
                        for (int64_t ky = 0; ky < s->kh; ky++)
                            for (int64_t kx = 0; kx < s->kw; kx++) {
                                int64_t iy = oy * s->stride - s->pad + ky, ix = ox * s->stride - s->pad + kx;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                                acc += (double)x[((n * s->c_in + ci) * s->h + iy) * s->w + ix] *
                                       w[((co * s->c_in + ci) * s->kh + ky) * s->kw + kx];
                            }
                    y[((n * s->c_out + co) * s->h_out + oy) * s->w_out + ox] = (float)acc;
                }
}

void it_cpu_conv2d_bwd_ref(const it_conv2d_shape *s, float *dx, float *dw, float *db, const float *dy,
                           const float *x, const float *w)
{
    for (int64_t n = 0; n < s->n; n++)
        for (int64_t co = 0; co < s->c_out; co++)
            for (int64_t oy = 0; oy < s->h_out; oy++)
                for (int64_t ox = 0; ox < s->w_out; ox++) {
                    float g = dy[((n * s->c_out + co) * s->h_out + oy) * s->w_out + ox];
                    if (db) db[co] += g;
                    for (int64_t ci = 0; ci < s->c_in; ci++)
                        for (int64_t ky = 0; ky < s->kh; ky++)
                            for (int64_t kx = 0; kx < s->kw; kx++) {
                                int64_t iy = oy * s->stride - s->pad + ky, ix = ox * s->stride - s->pad + kx;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                                int64_t xi = ((n * s->c_in + ci) * s->h + iy) * s->w + ix;
                                int64_t wi = ((co * s->c_in + ci) * s->kh + ky) * s->kw + kx;
                                if (dx) dx[xi] += g * w[wi];
                                if (dw) dw[wi] += g * x[xi];
                            }
                }
}

/* ---------------------------------------------------------------- im2col */

/* col (Cin*kh*kw, Hout*Wout) from one sample x (Cin, H, W). */
/* The output columns ox in [lo, hi) whose input column ox * stride - pad + kx
 * lies inside the image (hi <= lo when none does). */
static void valid_range(const it_conv2d_shape *s, int64_t kx, int64_t *lo, int64_t *hi)
{
    int64_t off = kx - s->pad; /* ix = ox * stride + off */
    int64_t l = off >= 0 ? 0 : (-off + s->stride - 1) / s->stride;
    int64_t h = s->w - off <= 0 ? 0 : (s->w - off + s->stride - 1) / s->stride; /* first ox with ix >= w */
    *lo = l < s->w_out ? l : s->w_out;
    *hi = h < s->w_out ? h : s->w_out;
}

static void im2col(const it_conv2d_shape *s, float *col, const float *x)
{
    int64_t P = s->h_out * s->w_out;
    #pragma omp parallel for if (s->c_in * s->kh * s->kw * P > IT_PAR_MIN) schedule(static)
    for (int64_t ci = 0; ci < s->c_in; ci++)
        for (int64_t ky = 0; ky < s->kh; ky++)
            for (int64_t kx = 0; kx < s->kw; kx++) {
                float *row = col + ((ci * s->kh + ky) * s->kw + kx) * P;
                const float *plane = x + ci * s->h * s->w;
                for (int64_t oy = 0; oy < s->h_out; oy++) {
                    int64_t iy = oy * s->stride - s->pad + ky;
                    float *dst = row + oy * s->w_out;
                    if (iy < 0 || iy >= s->h) {
                        memset(dst, 0, (size_t)s->w_out * sizeof(float));
                        continue;
                    }
                    const float *src = plane + iy * s->w;
                    if (s->stride == 1) {
                        /* Contiguous run: zero the padded ends, copy the middle. */
                        int64_t x0 = s->pad - kx, lo = x0 > 0 ? x0 : 0;
                        int64_t hi = s->w + s->pad - kx < s->w_out ? s->w + s->pad - kx : s->w_out;
                        for (int64_t ox = 0; ox < lo && ox < s->w_out; ox++) dst[ox] = 0;
                        if (hi > lo) memcpy(dst + lo, src + lo - x0, (size_t)(hi - lo) * sizeof(float));
                        for (int64_t ox = hi > lo ? hi : lo; ox < s->w_out; ox++) dst[ox] = 0;
                    } else {
                        /* Strided: zero the padded ends, then a branch-free gather. */
                        int64_t lo, hi;
                        valid_range(s, kx, &lo, &hi);
                        for (int64_t ox = 0; ox < lo; ox++) dst[ox] = 0;
                        const float *sp = src + lo * s->stride - s->pad + kx;
                        for (int64_t ox = lo; ox < hi; ox++) dst[ox] = sp[(ox - lo) * s->stride];
                        for (int64_t ox = hi > lo ? hi : lo; ox < s->w_out; ox++) dst[ox] = 0;
                    }
                }
            }
}

/* dx (Cin, H, W) += col2im(col). */
static void col2im_add(const it_conv2d_shape *s, float *dx, const float *col)
{
    int64_t P = s->h_out * s->w_out;
    #pragma omp parallel for if (s->c_in * s->kh * s->kw * P > IT_PAR_MIN) schedule(static)
    for (int64_t ci = 0; ci < s->c_in; ci++)
        for (int64_t ky = 0; ky < s->kh; ky++)
            for (int64_t kx = 0; kx < s->kw; kx++) {
                const float *row = col + ((ci * s->kh + ky) * s->kw + kx) * P;
                float *plane = dx + ci * s->h * s->w;
                for (int64_t oy = 0; oy < s->h_out; oy++) {
                    int64_t iy = oy * s->stride - s->pad + ky;
                    if (iy < 0 || iy >= s->h) continue;
                    const float *src = row + oy * s->w_out;
                    float *dst = plane + iy * s->w;
                    if (s->stride == 1) {
                        /* The valid outputs form one run (as in im2col): a
                         * branch-free add the compiler vectorises. */
                        int64_t x0 = s->pad - kx, lo = x0 > 0 ? x0 : 0;
                        int64_t hi = s->w + s->pad - kx < s->w_out ? s->w + s->pad - kx : s->w_out;
                        for (int64_t ox = lo; ox < hi; ox++) dst[ox - x0] += src[ox];
                        continue;
                    }
                    /* Strided: the valid outputs, without a test per element. */
                    int64_t lo, hi;
                    valid_range(s, kx, &lo, &hi);
                    float *dp = dst + lo * s->stride - s->pad + kx;
                    for (int64_t ox = lo; ox < hi; ox++) dp[(ox - lo) * s->stride] += src[ox];
                }
            }
}

/* ---------------------------------------------------------------- fast kernels */

void it_cpu_conv2d_fwd(const it_conv2d_shape *s, float *y, const float *x, const float *w, const float *b,
                       float *scratch)
{
    int64_t K = s->c_in * s->kh * s->kw, P = s->h_out * s->w_out;
    for (int64_t n = 0; n < s->n; n++) {
        const float *xn = x + n * s->c_in * s->h * s->w;
        float *yn = y + n * s->c_out * P;
        const float *col = xn;
        if (!is_pointwise(s)) {
            im2col(s, scratch, xn);
            col = scratch;
        }
        if (b) {
            #pragma omp parallel for if (s->c_out * P > IT_PAR_MIN) schedule(static)
            for (int64_t co = 0; co < s->c_out; co++)
                for (int64_t p = 0; p < P; p++) yn[co * P + p] = b[co];
        }
        it_cpu_gemm(0, 0, s->c_out, P, K, 1.0f, w, K, col, P, b ? 1.0f : 0.0f, yn, P);
    }
}

void it_cpu_conv2d_bwd(const it_conv2d_shape *s, float *dx, float *dw, float *db, const float *dy,
                       const float *x, const float *w, float *scratch)
{
    int64_t K = s->c_in * s->kh * s->kw, P = s->h_out * s->w_out;
    int pw = is_pointwise(s);
    for (int64_t n = 0; n < s->n; n++) {
        const float *xn = x + n * s->c_in * s->h * s->w, *dyn = dy + n * s->c_out * P;
        float *dxn = dx ? dx + n * s->c_in * s->h * s->w : NULL;
        if (db) {
            #pragma omp parallel for if (s->c_out * P > IT_PAR_MIN) schedule(static)
            for (int64_t co = 0; co < s->c_out; co++) {
                float acc = 0;
                for (int64_t p = 0; p < P; p++) acc += dyn[co * P + p];
                db[co] += acc;
            }
        }
        if (dw) {
            const float *col = xn;
            if (!pw) {
                im2col(s, scratch, xn);
                col = scratch;
            }
            it_cpu_gemm(0, 1, s->c_out, K, P, 1.0f, dyn, P, col, P, 1.0f, dw, K);
        }
        if (dxn) {
            if (pw) {
                it_cpu_gemm(1, 0, K, P, s->c_out, 1.0f, w, K, dyn, P, 1.0f, dxn, P);
            } else {
                it_cpu_gemm(1, 0, K, P, s->c_out, 1.0f, w, K, dyn, P, 0.0f, scratch, P);
                col2im_add(s, dxn, scratch);
            }
        }
    }
}

/* ---------------------------------------------------------------- op */

static it_conv2d_shape shape_of(const it_node *n)
{
    it_conv2d_shape s;
    memcpy(&s, n->saved, sizeof s);
    return s;
}

static void conv2d_backward(it_ctx *ctx, it_node *n)
{
    it_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    it_conv2d_shape s = shape_of(n);
    float *dx = it_autograd_grad(ctx, x), *dw = it_autograd_grad(ctx, w), *db = it_autograd_grad(ctx, b);
    if (ctx->failed) return;
    it_mark m = it_ctx_mark(ctx);
    int64_t ns = it_conv2d_scratch(&s);
    float *scratch = ns ? it_ctx_alloc(ctx, (size_t)ns * sizeof(float)) : NULL;
    if (ns && !scratch) return;
    it_cpu_conv2d_bwd(&s, dx, dw, db, n->out->grad, x->data, w->data, scratch);
    it_ctx_release(ctx, m);
}

it_tensor *it_op_conv2d(it_ctx *ctx, it_tensor *x, it_tensor *w, it_tensor *b, int64_t stride, int64_t pad)
{
    it_tensor *in[3] = {x, w, b};
    if (it_ops_skip(ctx, 2, in)) return NULL;
    if (!it_ops_need_f32(ctx, "conv2d", x) || !it_ops_need_f32(ctx, "conv2d", w)) return NULL;
    if (x->ndim != 4) return it_ops_shape_error(ctx, "conv2d", x, "input must be (N, C, H, W)");
    if (w->ndim != 4 || w->shape[1] != x->shape[1])
        return it_ops_shape_error(ctx, "conv2d", w, "weight must be (Cout, Cin, kh, kw) with the input's Cin");
    if (b && b->n != w->shape[0]) return it_ops_shape_error(ctx, "conv2d", b, "bias must have Cout elements");
    it_conv2d_shape s = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[2], w->shape[3],
                         stride, pad, 0, 0};
    if (!it_conv2d_shape_init(&s)) return it_ops_shape_error(ctx, "conv2d", x, "kernel, stride or padding do not fit the input");
    it_tensor *y = it_ops_out(ctx, IT_SHAPE(s.n, s.c_out, s.h_out, s.w_out));
    if (!y) return NULL;
    int rec = it_autograd_wants(ctx, 3, in);
    it_conv2d_shape *saved = rec ? it_ctx_alloc(ctx, sizeof s) : NULL;
    if (rec && !saved) return NULL;
    /* In a checkpointed block, a convolution with a long reduction (3x3
     * over hundreds of channels) is memoised rather than recomputed. */
    int memo = it_autograd_memo_wants(ctx, s.c_in * s.kh * s.kw);
    if (!memo || !it_autograd_memo_take(ctx, y->data, y->n)) {
        it_mark m = it_ctx_mark(ctx);
        int64_t ns = it_conv2d_scratch(&s);
        float *scratch = ns ? it_ctx_alloc(ctx, (size_t)ns * sizeof(float)) : NULL;
        if (ns && !scratch) return NULL;
        it_cpu_conv2d_fwd(&s, y->data, x->data, w->data, b ? b->data : NULL, scratch);
        it_ctx_release(ctx, m);
        if (memo) it_autograd_memo_put(ctx, y->data, y->n);
    }
    it_node *n = it_autograd_record(ctx, y, "conv2d", conv2d_backward, 3, in);
    if (n) {
        *saved = s;
        n->saved = saved;
    }
    return y;
}
