/* ops_shape.c: reshape, permute, concat, slice, upsample, embedding lookup,
 * timestep embedding, and the shared argument checks.
 *
 * Tensors are always contiguous: reshape is a view (shares storage), every
 * other layout change copies. Copies are memory-bound and cheap next to the
 * GEMMs around them, and contiguous inputs keep every kernel simple. */
#include "tensor/ops_shape.h"

#include <math.h>
#include <string.h>

#include "tensor/ops_common.h"

/* ---------------------------------------------------------------- helpers */

int it_ops_need_f32(it_ctx *ctx, const char *op, const it_tensor *t)
{
    if (t->dtype == IT_DTYPE_F32) return 1;
    char buf[128];
    it_ctx_fail(ctx, IT_ERR_ARG, "%s: tensor %s%s must be F32, not %s", op, t->name ? t->name : "",
                it_tensor_shape_str(t, buf, sizeof buf), it_dtype_name(t->dtype));
    return 0;
}

void *it_ops_shape_error(it_ctx *ctx, const char *op, const it_tensor *t, const char *what)
{
    char buf[128];
    return it_ctx_fail(ctx, IT_ERR_ARG, "%s: %s (got %s%s%s)", op, what,
                       it_tensor_shape_str(t, buf, sizeof buf), t->name ? " " : "",
                       t->name ? t->name : "");
}

void it_ops_acc(float *dst, const float *src, int64_t n)
{
    #pragma omp parallel for if (n > IT_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

static int norm_dim(int dim, int ndim) { return dim < 0 ? dim + ndim : dim; }

/* outer = prod(shape[:dim]), inner = prod(shape[dim+1:]). */
static void outer_inner(const it_tensor *t, int dim, int64_t *outer, int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < dim; i++) *outer *= t->shape[i];
    for (int i = dim + 1; i < t->ndim; i++) *inner *= t->shape[i];
}

/* ---------------------------------------------------------------- reshape */

static void reshape_backward(it_ctx *ctx, it_node *n)
{
    float *gx = it_autograd_grad(ctx, n->in[0]);
    if (gx) it_ops_acc(gx, n->out->grad, n->out->n);
}

it_tensor *it_op_reshape(it_ctx *ctx, it_tensor *x, int ndim, const int64_t *shape)
{
    if (it_ops_skip(ctx, 1, &x)) return NULL;
    if (ndim < 0 || ndim > IT_MAX_DIMS) return it_ops_shape_error(ctx, "reshape", x, "too many dims");
    int64_t s[IT_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1 && infer < 0) infer = i;
        else if (s[i] < 0) return it_ops_shape_error(ctx, "reshape", x, "bad target shape");
        else known *= s[i];
    }
    if (infer >= 0) s[infer] = known ? x->n / known : 0;
    if (it_shape_numel(ndim, s) != x->n)
        return it_ops_shape_error(ctx, "reshape", x, "element count differs from the target shape");
    it_tensor *y = it_tensor_wrap(ctx, x->data, x->dtype, ndim, s);
    if (!y) return NULL;
    it_autograd_record(ctx, y, "reshape", reshape_backward, 1, &x);
    return y;
}

/* ---------------------------------------------------------------- permute */

/* dst (permuted shape) [+]= src (shape) viewed through perm. */
static void permute_kernel(float *dst, const float *src, int ndim, const int64_t *shape,
                           const int *perm, int accumulate)
{
    int64_t in_stride[IT_MAX_DIMS], oshape[IT_MAX_DIMS], ostride[IT_MAX_DIMS];
    int64_t st = 1, n = 1;
    for (int i = ndim - 1; i >= 0; i--) in_stride[i] = st, st *= shape[i];
    for (int i = 0; i < ndim; i++) oshape[i] = shape[perm[i]], ostride[i] = in_stride[perm[i]], n *= oshape[i];
    if (n == 0) return;
    int64_t last = ndim ? oshape[ndim - 1] : 1, ls = ndim ? ostride[ndim - 1] : 1;
    int64_t rows = n / last;
    #pragma omp parallel for if (n > IT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t rem = r, off = 0;
        for (int i = ndim - 2; i >= 0; i--) {
            off += (rem % oshape[i]) * ostride[i];
            rem /= oshape[i];
        }
        float *d = dst + r * last;
        const float *s = src + off;
        if (accumulate)
            for (int64_t j = 0; j < last; j++) d[j] += s[j * ls];
        else
            for (int64_t j = 0; j < last; j++) d[j] = s[j * ls];
    }
}

static void permute_backward(it_ctx *ctx, it_node *n)
{
    it_tensor *x = n->in[0];
    float *gx = it_autograd_grad(ctx, x);
    if (!gx) return;
    int perm[IT_MAX_DIMS], inv[IT_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) perm[i] = (int)n->iarg[i];
    for (int i = 0; i < x->ndim; i++) inv[perm[i]] = i;
    permute_kernel(gx, n->out->grad, x->ndim, n->out->shape, inv, 1);
}

it_tensor *it_op_permute(it_ctx *ctx, it_tensor *x, const int *perm)
{
    if (it_ops_skip(ctx, 1, &x)) return NULL;
    if (!it_ops_need_f32(ctx, "permute", x)) return NULL;
    int seen[IT_MAX_DIMS] = {0};
    int64_t shape[IT_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= x->ndim || seen[perm[i]]++)
            return it_ops_shape_error(ctx, "permute", x, "perm is not a permutation of the dims");
        shape[i] = x->shape[perm[i]];
    }
    it_tensor *y = it_ops_out(ctx, x->ndim, shape);
    if (!y) return NULL;
    permute_kernel(y->data, x->data, x->ndim, x->shape, perm, 0);
    it_node *n = it_autograd_record(ctx, y, "permute", permute_backward, 1, &x);
    if (n)
        for (int i = 0; i < x->ndim; i++) n->iarg[i] = perm[i];
    return y;
}

it_tensor *it_op_transpose(it_ctx *ctx, it_tensor *x, int d0, int d1)
{
    if (it_ops_skip(ctx, 1, &x)) return NULL;
    d0 = norm_dim(d0, x->ndim), d1 = norm_dim(d1, x->ndim);
    if (d0 < 0 || d1 < 0 || d0 >= x->ndim || d1 >= x->ndim)
        return it_ops_shape_error(ctx, "transpose", x, "dim out of range");
    int perm[IT_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) perm[i] = i;
    perm[d0] = d1, perm[d1] = d0;
    return it_op_permute(ctx, x, perm);
}

/* ---------------------------------------------------------------- concat / slice */

/* Copies a (outer, len, inner) block between a tensor and a window
 * [start, start+len) of a (outer, total, inner) one. to_window: src is the
 * small block. accumulate: += instead of =. */
static void window_copy(float *dst, const float *src, int64_t outer, int64_t inner, int64_t total,
                        int64_t start, int64_t len, int to_window, int accumulate)
{
    int64_t chunk = len * inner;
    #pragma omp parallel for if (outer * chunk > IT_PAR_MIN) schedule(static)
    for (int64_t o = 0; o < outer; o++) {
        float *d = to_window ? dst + (o * total + start) * inner : dst + o * chunk;
        const float *s = to_window ? src + o * chunk : src + (o * total + start) * inner;
        if (accumulate)
            for (int64_t j = 0; j < chunk; j++) d[j] += s[j];
        else
            memcpy(d, s, (size_t)chunk * sizeof(float));
    }
}

static void concat_backward(it_ctx *ctx, it_node *n)
{
    int dim = (int)n->iarg[0];
    int64_t outer, inner, start = 0, total = n->out->shape[dim];
    outer_inner(n->out, dim, &outer, &inner);
    for (int i = 0; i < n->n_in; i++) {
        int64_t len = n->in[i]->shape[dim];
        float *g = it_autograd_grad(ctx, n->in[i]);
        if (g) window_copy(g, n->out->grad, outer, inner, total, start, len, 0, 1);
        start += len;
    }
}

it_tensor *it_op_concat(it_ctx *ctx, int n, it_tensor *const *xs, int dim)
{
    if (n < 1 || n > IT_NODE_MAX_IN) return it_ctx_fail(ctx, IT_ERR_ARG, "concat: %d inputs (1..4 supported)", n);
    if (it_ops_skip(ctx, n, xs)) return NULL;
    it_tensor *x0 = xs[0];
    dim = norm_dim(dim, x0->ndim);
    if (dim < 0 || dim >= x0->ndim) return it_ops_shape_error(ctx, "concat", x0, "dim out of range");
    int64_t shape[IT_MAX_DIMS];
    memcpy(shape, x0->shape, sizeof shape);
    shape[dim] = 0;
    for (int i = 0; i < n; i++) {
        if (!it_ops_need_f32(ctx, "concat", xs[i])) return NULL;
        if (xs[i]->ndim != x0->ndim) return it_ops_shape_error(ctx, "concat", xs[i], "ranks differ");
        for (int d = 0; d < x0->ndim; d++)
            if (d != dim && xs[i]->shape[d] != x0->shape[d])
                return it_ops_shape_error(ctx, "concat", xs[i], "shapes differ outside the concat dim");
        shape[dim] += xs[i]->shape[dim];
    }
    it_tensor *y = it_ops_out(ctx, x0->ndim, shape);
    if (!y) return NULL;
    int64_t outer, inner, start = 0;
    outer_inner(y, dim, &outer, &inner);
    for (int i = 0; i < n; i++) {
        window_copy(y->data, xs[i]->data, outer, inner, shape[dim], start, xs[i]->shape[dim], 1, 0);
        start += xs[i]->shape[dim];
    }
    it_node *node = it_autograd_record(ctx, y, "concat", concat_backward, n, xs);
    if (node) node->iarg[0] = dim;
    return y;
}

static void slice_backward(it_ctx *ctx, it_node *n)
{
    it_tensor *x = n->in[0];
    int dim = (int)n->iarg[0];
    float *gx = it_autograd_grad(ctx, x);
    if (!gx) return;
    int64_t outer, inner;
    outer_inner(x, dim, &outer, &inner);
    window_copy(gx, n->out->grad, outer, inner, x->shape[dim], n->iarg[1], n->iarg[2], 1, 1);
}

it_tensor *it_op_slice(it_ctx *ctx, it_tensor *x, int dim, int64_t start, int64_t len)
{
    if (it_ops_skip(ctx, 1, &x)) return NULL;
    if (!it_ops_need_f32(ctx, "slice", x)) return NULL;
    dim = norm_dim(dim, x->ndim);
    if (dim < 0 || dim >= x->ndim) return it_ops_shape_error(ctx, "slice", x, "dim out of range");
    if (start < 0 || len < 0 || start > x->shape[dim] - len)
        return it_ctx_fail(ctx, IT_ERR_RANGE, "slice: [%lld, %lld) outside dim %d of size %lld",
                           (long long)start, (long long)(start + len), dim, (long long)x->shape[dim]);
    int64_t shape[IT_MAX_DIMS], outer, inner;
    memcpy(shape, x->shape, sizeof shape);
    shape[dim] = len;
    it_tensor *y = it_ops_out(ctx, x->ndim, shape);
    if (!y) return NULL;
    outer_inner(x, dim, &outer, &inner);
    window_copy(y->data, x->data, outer, inner, x->shape[dim], start, len, 0, 0);
    it_node *n = it_autograd_record(ctx, y, "slice", slice_backward, 1, &x);
    if (n) n->iarg[0] = dim, n->iarg[1] = start, n->iarg[2] = len;
    return y;
}

int it_op_split(it_ctx *ctx, it_tensor *x, int dim, int n, it_tensor **out)
{
    for (int i = 0; i < n; i++) out[i] = NULL;
    if (it_ops_skip(ctx, 1, &x)) return -1;
    dim = norm_dim(dim, x->ndim);
    if (n <= 0 || dim < 0 || dim >= x->ndim || x->shape[dim] % n) {
        it_ops_shape_error(ctx, "split", x, "dim out of range or not divisible into equal parts");
        return -1;
    }
    int64_t len = x->shape[dim] / n;
    for (int i = 0; i < n; i++)
        if (!(out[i] = it_op_slice(ctx, x, dim, i * len, len))) return -1;
    return 0;
}

/* ---------------------------------------------------------------- upsample */

static void upsample_backward(it_ctx *ctx, it_node *n)
{
    it_tensor *x = n->in[0];
    float *gx = it_autograd_grad(ctx, x);
    if (!gx) return;
    int64_t planes = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    const float *gy = n->out->grad;
    #pragma omp parallel for if (x->n > IT_PAR_MIN) schedule(static)
    for (int64_t p = 0; p < planes; p++)
        for (int64_t i = 0; i < H; i++)
            for (int64_t j = 0; j < W; j++) {
                const float *g = gy + (p * 2 * H + 2 * i) * 2 * W + 2 * j;
                gx[(p * H + i) * W + j] += g[0] + g[1] + g[2 * W] + g[2 * W + 1];
            }
}

it_tensor *it_op_upsample2x(it_ctx *ctx, it_tensor *x)
{
    if (it_ops_skip(ctx, 1, &x)) return NULL;
    if (!it_ops_need_f32(ctx, "upsample2x", x)) return NULL;
    if (x->ndim != 4) return it_ops_shape_error(ctx, "upsample2x", x, "input must be (N, C, H, W)");
    int64_t planes = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    it_tensor *y = it_ops_out(ctx, IT_SHAPE(x->shape[0], x->shape[1], 2 * H, 2 * W));
    if (!y) return NULL;
    const float *X = x->data;
    float *Y = y->data;
    #pragma omp parallel for if (y->n > IT_PAR_MIN) schedule(static)
    for (int64_t p = 0; p < planes; p++)
        for (int64_t i = 0; i < 2 * H; i++) {
            const float *src = X + (p * H + i / 2) * W;
            float *dst = Y + (p * 2 * H + i) * 2 * W;
            for (int64_t j = 0; j < 2 * W; j++) dst[j] = src[j / 2];
        }
    it_autograd_record(ctx, y, "upsample2x", upsample_backward, 1, &x);
    return y;
}

/* ---------------------------------------------------------------- pad2d */

/* Copies x's planes into the interior of y's (or, for backward, adds y's
 * interiors into x's). */
static void pad_copy(float *big, float *small, int64_t planes, int64_t H, int64_t W, int64_t Hp, int64_t Wp,
                     int64_t top, int64_t left, int to_big)
{
    #pragma omp parallel for if (planes * Hp * Wp > IT_PAR_MIN) schedule(static)
    for (int64_t p = 0; p < planes; p++)
        for (int64_t i = 0; i < H; i++) {
            float *b = big + (p * Hp + top + i) * Wp + left, *s = small + (p * H + i) * W;
            if (to_big) memcpy(b, s, (size_t)W * sizeof(float));
            else
                for (int64_t j = 0; j < W; j++) s[j] += b[j];
        }
}

static void pad2d_backward(it_ctx *ctx, it_node *n)
{
    it_tensor *x = n->in[0];
    float *gx = it_autograd_grad(ctx, x);
    if (!gx) return;
    pad_copy(n->out->grad, gx, x->shape[0] * x->shape[1], x->shape[2], x->shape[3], n->out->shape[2],
             n->out->shape[3], n->iarg[0], n->iarg[1], 0);
}

it_tensor *it_op_pad2d(it_ctx *ctx, it_tensor *x, int64_t left, int64_t right, int64_t top, int64_t bottom)
{
    if (it_ops_skip(ctx, 1, &x)) return NULL;
    if (!it_ops_need_f32(ctx, "pad2d", x)) return NULL;
    if (x->ndim != 4) return it_ops_shape_error(ctx, "pad2d", x, "input must be (N, C, H, W)");
    if (left < 0 || right < 0 || top < 0 || bottom < 0)
        return it_ops_shape_error(ctx, "pad2d", x, "negative padding (cropping) is not supported");
    int64_t H = x->shape[2], W = x->shape[3], Hp = H + top + bottom, Wp = W + left + right;
    it_tensor *y = it_tensor_zeros(ctx, IT_DTYPE_F32, IT_SHAPE(x->shape[0], x->shape[1], Hp, Wp));
    if (!y) return NULL;
    pad_copy(y->data, x->data, x->shape[0] * x->shape[1], H, W, Hp, Wp, top, left, 1);
    it_node *n = it_autograd_record(ctx, y, "pad2d", pad2d_backward, 1, &x);
    if (n) n->iarg[0] = top, n->iarg[1] = left;
    return y;
}

/* ---------------------------------------------------------------- embedding */

static void embedding_backward(it_ctx *ctx, it_node *n)
{
    it_tensor *ids = n->in[0], *table = n->in[1];
    float *gt = it_autograd_grad(ctx, table);
    if (!gt) return;
    int64_t D = table->shape[1];
    const int32_t *id = ids->data;
    const float *gy = n->out->grad;
    /* Serial: repeated ids would race on the same row. */
    for (int64_t i = 0; i < ids->n; i++)
        for (int64_t d = 0; d < D; d++) gt[id[i] * D + d] += gy[i * D + d];
}

it_tensor *it_op_embedding(it_ctx *ctx, it_tensor *ids, it_tensor *table)
{
    it_tensor *in[2] = {ids, table};
    if (it_ops_skip(ctx, 2, in)) return NULL;
    if (ids->dtype != IT_DTYPE_I32) return it_ops_shape_error(ctx, "embedding", ids, "ids must be I32");
    if (!it_ops_need_f32(ctx, "embedding", table)) return NULL;
    if (table->ndim != 2) return it_ops_shape_error(ctx, "embedding", table, "table must be (V, D)");
    if (ids->ndim >= IT_MAX_DIMS) return it_ops_shape_error(ctx, "embedding", ids, "too many dims");
    int64_t V = table->shape[0], D = table->shape[1];
    const int32_t *id = ids->data;
    for (int64_t i = 0; i < ids->n; i++)
        if (id[i] < 0 || id[i] >= V)
            return it_ctx_fail(ctx, IT_ERR_RANGE, "embedding: id %d at position %lld outside [0, %lld)",
                               id[i], (long long)i, (long long)V);
    int64_t shape[IT_MAX_DIMS];
    memcpy(shape, ids->shape, sizeof shape);
    shape[ids->ndim] = D;
    it_tensor *y = it_ops_out(ctx, ids->ndim + 1, shape);
    if (!y) return NULL;
    float *Y = y->data;
    const float *T = table->data;
    #pragma omp parallel for if (y->n > IT_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < ids->n; i++) memcpy(Y + i * D, T + id[i] * D, (size_t)D * sizeof(float));
    it_autograd_record(ctx, y, "embedding", embedding_backward, 2, in);
    return y;
}

/* ---------------------------------------------------------------- timestep embedding */

it_tensor *it_op_timestep_embedding(it_ctx *ctx, it_tensor *t, int64_t dim, int flip_sin_to_cos,
                                    float downscale_freq_shift, float scale, float max_period)
{
    if (it_ops_skip(ctx, 1, &t)) return NULL;
    if (!it_ops_need_f32(ctx, "timestep_embedding", t)) return NULL;
    if (t->ndim != 1) return it_ops_shape_error(ctx, "timestep_embedding", t, "timesteps must be (N)");
    int64_t half = dim / 2, N = t->shape[0];
    if (dim < 2 || (float)half == downscale_freq_shift)
        return it_ctx_fail(ctx, IT_ERR_ARG, "timestep_embedding: dim %lld too small", (long long)dim);
    it_tensor *y = it_tensor_zeros(ctx, IT_DTYPE_F32, IT_SHAPE(N, dim));
    if (!y) return NULL;
    const float *T = t->data;
    float *Y = y->data;
    /* Computed in f32 in the same order as diffusers, so that large
     * timesteps (t * freq near 1000) round to the same sin/cos arguments. */
    float neg_log = -logf(max_period);
    for (int64_t j = 0; j < half; j++) {
        float freq = expf(neg_log * (float)j / ((float)half - downscale_freq_shift));
        for (int64_t i = 0; i < N; i++) {
            float arg = scale * (T[i] * freq);
            int64_t s_col = flip_sin_to_cos ? half + j : j, c_col = flip_sin_to_cos ? j : half + j;
            Y[i * dim + s_col] = sinf(arg);
            Y[i * dim + c_col] = cosf(arg);
        }
    }
    return y;
}
