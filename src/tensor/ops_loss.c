/* ops_loss.c: sum, mean, MSE, cross-entropy, cosine similarity. */
#include "tensor/ops_loss.h"

#include <math.h>
#include <string.h>

#include "tensor/ops_common.h"

static it_tensor *scalar_out(it_ctx *ctx) { return it_ops_out(ctx, 0, NULL); }

/* ---------------------------------------------------------------- sum / mean */

static void sum_backward(it_ctx *ctx, it_node *n)
{
    float *gx = it_autograd_grad(ctx, n->in[0]);
    if (!gx) return;
    float g = n->out->grad[0] * n->farg[0];
    int64_t N = n->in[0]->n;
    #pragma omp parallel for if (N > IT_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < N; i++) gx[i] += g;
}

static double sum_d(const float *x, int64_t n)
{
    double s = 0;
    #pragma omp parallel for if (n > IT_PAR_MIN) reduction(+ : s) schedule(static)
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}

static it_tensor *reduce_all(it_ctx *ctx, it_tensor *x, int mean)
{
    if (it_ops_skip(ctx, 1, &x)) return NULL;
    if (!it_ops_need_f32(ctx, mean ? "mean" : "sum", x)) return NULL;
    it_tensor *y = scalar_out(ctx);
    if (!y) return NULL;
    double s = sum_d(x->data, x->n);
    float k = mean ? (x->n ? 1.0f / (float)x->n : 0.0f) : 1.0f;
    it_f32(y)[0] = (float)(mean ? (x->n ? s / (double)x->n : NAN) : s);
    it_node *n = it_autograd_record(ctx, y, mean ? "mean" : "sum", sum_backward, 1, &x);
    if (n) n->farg[0] = k;
    return y;
}

it_tensor *it_op_sum(it_ctx *ctx, it_tensor *x) { return reduce_all(ctx, x, 0); }
it_tensor *it_op_mean(it_ctx *ctx, it_tensor *x) { return reduce_all(ctx, x, 1); }

static void mean_last_backward(it_ctx *ctx, it_node *n)
{
    float *gx = it_autograd_grad(ctx, n->in[0]);
    if (!gx) return;
    int64_t D = n->iarg[0], R = n->out->n;
    const float *gy = n->out->grad;
    #pragma omp parallel for if (R * D > IT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < R; r++)
        for (int64_t d = 0; d < D; d++) gx[r * D + d] += gy[r] / (float)D;
}

it_tensor *it_op_mean_last(it_ctx *ctx, it_tensor *x)
{
    if (it_ops_skip(ctx, 1, &x)) return NULL;
    if (!it_ops_need_f32(ctx, "mean_last", x)) return NULL;
    if (x->ndim < 1 || x->shape[x->ndim - 1] == 0)
        return it_ops_shape_error(ctx, "mean_last", x, "needs a non-empty last dim");
    int64_t D = x->shape[x->ndim - 1];
    it_tensor *y = it_ops_out(ctx, x->ndim - 1, x->shape);
    if (!y) return NULL;
    const float *X = x->data;
    float *Y = y->data;
    #pragma omp parallel for if (x->n > IT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < y->n; r++) {
        double s = 0;
        for (int64_t d = 0; d < D; d++) s += X[r * D + d];
        Y[r] = (float)(s / (double)D);
    }
    it_node *n = it_autograd_record(ctx, y, "mean_last", mean_last_backward, 1, &x);
    if (n) n->iarg[0] = D;
    return y;
}

static void max_last_backward(it_ctx *ctx, it_node *n)
{
    float *gx = it_autograd_grad(ctx, n->in[0]);
    if (!gx) return;
    int64_t D = n->iarg[0], R = n->out->n;
    const int64_t *arg = n->saved;
    const float *gy = n->out->grad;
    for (int64_t r = 0; r < R; r++) gx[r * D + arg[r]] += gy[r];
}

it_tensor *it_op_max_last(it_ctx *ctx, it_tensor *x)
{
    if (it_ops_skip(ctx, 1, &x)) return NULL;
    if (!it_ops_need_f32(ctx, "max_last", x)) return NULL;
    if (x->ndim < 1 || x->shape[x->ndim - 1] == 0)
        return it_ops_shape_error(ctx, "max_last", x, "needs a non-empty last dim");
    int64_t D = x->shape[x->ndim - 1];
    it_tensor *y = it_ops_out(ctx, x->ndim - 1, x->shape);
    if (!y) return NULL;
    int rec = it_autograd_wants(ctx, 1, &x);
    int64_t *arg = rec ? it_ctx_alloc(ctx, (size_t)y->n * sizeof(int64_t)) : NULL;
    if (rec && !arg) return NULL;
    const float *X = x->data;
    float *Y = y->data;
    #pragma omp parallel for if (x->n > IT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < y->n; r++) {
        int64_t best = 0;
        for (int64_t d = 1; d < D; d++)
            if (X[r * D + d] > X[r * D + best]) best = d;
        Y[r] = X[r * D + best];
        if (arg) arg[r] = best;
    }
    it_node *n = it_autograd_record(ctx, y, "max_last", max_last_backward, 1, &x);
    if (n) {
        n->iarg[0] = D;
        n->saved = arg;
    }
    return y;
}

/* ---------------------------------------------------------------- MSE */

static void mse_backward(it_ctx *ctx, it_node *n)
{
    it_tensor *p = n->in[0], *t = n->in[1], *w = n->in[2];
    float *gp = it_autograd_grad(ctx, p), *gt = it_autograd_grad(ctx, t);
    if (ctx->failed || (!gp && !gt)) return;
    const float *P = p->data, *T = t->data, *W = w ? w->data : NULL;
    float k = 2.0f * n->out->grad[0] / (float)p->n;
    #pragma omp parallel for if (p->n > IT_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < p->n; i++) {
        float g = k * (P[i] - T[i]) * (W ? W[i] : 1.0f);
        if (gp) gp[i] += g;
        if (gt) gt[i] -= g;
    }
}

it_tensor *it_op_mse(it_ctx *ctx, it_tensor *pred, it_tensor *target, it_tensor *weight)
{
    it_tensor *in[3] = {pred, target, weight};
    if (it_ops_skip(ctx, 2, in)) return NULL;
    for (int i = 0; i < 3; i++)
        if (in[i] && !it_ops_need_f32(ctx, "mse", in[i])) return NULL;
    if (!it_tensor_same_shape(pred, target)) return it_ops_shape_error(ctx, "mse", target, "target shape differs from pred");
    if (weight && !it_tensor_same_shape(pred, weight)) return it_ops_shape_error(ctx, "mse", weight, "weight shape differs from pred");
    if (pred->n == 0) return it_ops_shape_error(ctx, "mse", pred, "empty input");
    it_tensor *y = scalar_out(ctx);
    if (!y) return NULL;
    const float *P = pred->data, *T = target->data, *W = weight ? weight->data : NULL;
    double s = 0;
    #pragma omp parallel for if (pred->n > IT_PAR_MIN) reduction(+ : s) schedule(static)
    for (int64_t i = 0; i < pred->n; i++) {
        double d = (double)P[i] - T[i];
        s += d * d * (W ? W[i] : 1.0);
    }
    it_f32(y)[0] = (float)(s / (double)pred->n);
    /* The weight is a constant (a mask or loss weighting): no gradient. */
    it_node *n = it_autograd_record(ctx, y, "mse", mse_backward, 2, in);
    if (n) n->in[2] = weight, n->n_in = 3;
    return y;
}

/* ---------------------------------------------------------------- cross-entropy */

static void ce_backward(it_ctx *ctx, it_node *n)
{
    it_tensor *x = n->in[0], *lab = n->in[1];
    float *gx = it_autograd_grad(ctx, x);
    if (!gx) return;
    int64_t N = x->shape[0], C = x->shape[1];
    const float *X = x->data;
    const int32_t *L = lab->data;
    float k = n->out->grad[0] / (float)N;
    #pragma omp parallel for if (x->n > IT_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < N; i++) {
        const float *xr = X + i * C;
        float mx = -INFINITY, s = 0;
        for (int64_t c = 0; c < C; c++) mx = xr[c] > mx ? xr[c] : mx;
        for (int64_t c = 0; c < C; c++) s += expf(xr[c] - mx);
        for (int64_t c = 0; c < C; c++) gx[i * C + c] += k * (expf(xr[c] - mx) / s - (c == L[i] ? 1.0f : 0.0f));
    }
}

it_tensor *it_op_cross_entropy(it_ctx *ctx, it_tensor *logits, it_tensor *labels)
{
    it_tensor *in[2] = {logits, labels};
    if (it_ops_skip(ctx, 2, in)) return NULL;
    if (!it_ops_need_f32(ctx, "cross_entropy", logits)) return NULL;
    if (logits->ndim != 2 || logits->shape[0] == 0)
        return it_ops_shape_error(ctx, "cross_entropy", logits, "logits must be (N, C) with N > 0");
    int64_t N = logits->shape[0], C = logits->shape[1];
    if (labels->dtype != IT_DTYPE_I32 || labels->n != N)
        return it_ops_shape_error(ctx, "cross_entropy", labels, "labels must be I32 (N)");
    const int32_t *L = labels->data;
    for (int64_t i = 0; i < N; i++)
        if (L[i] < 0 || L[i] >= C)
            return it_ctx_fail(ctx, IT_ERR_RANGE, "cross_entropy: label %d at %lld outside [0, %lld)", L[i],
                               (long long)i, (long long)C);
    it_tensor *y = scalar_out(ctx);
    if (!y) return NULL;
    const float *X = logits->data;
    double total = 0;
    for (int64_t i = 0; i < N; i++) {
        const float *xr = X + i * C;
        double mx = -INFINITY, s = 0;
        for (int64_t c = 0; c < C; c++) mx = xr[c] > mx ? xr[c] : mx;
        for (int64_t c = 0; c < C; c++) s += exp(xr[c] - mx);
        total += mx + log(s) - xr[L[i]];
    }
    it_f32(y)[0] = (float)(total / (double)N);
    it_autograd_record(ctx, y, "cross_entropy", ce_backward, 2, in);
    return y;
}

/* ---------------------------------------------------------------- cosine similarity */

static void cos_backward(it_ctx *ctx, it_node *n)
{
    it_tensor *a = n->in[0], *b = n->in[1];
    float *ga = it_autograd_grad(ctx, a), *gb = it_autograd_grad(ctx, b);
    if (ctx->failed || (!ga && !gb)) return;
    int64_t D = n->iarg[0], R = n->out->n;
    float eps = n->farg[0];
    const float *A = a->data, *B = b->data, *gy = n->out->grad;
    #pragma omp parallel for if (a->n > IT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *ar = A + r * D, *br = B + r * D;
        double ab = 0, aa = 0, bb = 0;
        for (int64_t d = 0; d < D; d++) ab += (double)ar[d] * br[d], aa += (double)ar[d] * ar[d], bb += (double)br[d] * br[d];
        double den2 = aa * bb, e2 = (double)eps * eps;
        /* y = ab / sqrt(max(aa*bb, eps^2)); the clamp has zero derivative. */
        double inv = 1.0 / sqrt(den2 > e2 ? den2 : e2), y = ab * inv, g = gy[r];
        int clamped = den2 <= e2;
        for (int64_t d = 0; d < D; d++) {
            if (ga) ga[r * D + d] += (float)(g * (br[d] * inv - (clamped ? 0 : y * ar[d] / aa)));
            if (gb) gb[r * D + d] += (float)(g * (ar[d] * inv - (clamped ? 0 : y * br[d] / bb)));
        }
    }
}

it_tensor *it_op_cosine_similarity(it_ctx *ctx, it_tensor *a, it_tensor *b, float eps)
{
    it_tensor *in[2] = {a, b};
    if (it_ops_skip(ctx, 2, in)) return NULL;
    if (!it_ops_need_f32(ctx, "cosine_similarity", a) || !it_ops_need_f32(ctx, "cosine_similarity", b)) return NULL;
    if (a->ndim < 1 || !it_tensor_same_shape(a, b))
        return it_ops_shape_error(ctx, "cosine_similarity", b, "inputs must have the same shape (..., D)");
    int64_t D = a->shape[a->ndim - 1];
    it_tensor *y = it_ops_out(ctx, a->ndim - 1, a->shape);
    if (!y) return NULL;
    const float *A = a->data, *B = b->data;
    float *Y = y->data;
    #pragma omp parallel for if (a->n > IT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < y->n; r++) {
        double ab = 0, aa = 0, bb = 0;
        for (int64_t d = 0; d < D; d++)
            ab += (double)A[r * D + d] * B[r * D + d], aa += (double)A[r * D + d] * A[r * D + d],
                bb += (double)B[r * D + d] * B[r * D + d];
        double den2 = aa * bb, e2 = (double)eps * eps;
        Y[r] = (float)(ab / sqrt(den2 > e2 ? den2 : e2));
    }
    it_node *n = it_autograd_record(ctx, y, "cosine_similarity", cos_backward, 2, in);
    if (n) n->iarg[0] = D, n->farg[0] = eps;
    return y;
}

/* ---------------------------------------------------------------- L2 normalisation */

/* y = x / n with n = max(|x|, eps). Where |x| > eps:
 * dx = (dy - y (dy . y)) / n; where the clamp holds, n is a constant and
 * dx = dy / eps (PyTorch differentiates clamp_min the same way). */
static void l2n_backward(it_ctx *ctx, it_node *n)
{
    float *gx = it_autograd_grad(ctx, n->in[0]);
    if (!gx) return;
    int64_t D = n->iarg[0], R = n->out->n / (D ? D : 1);
    float eps = n->farg[0];
    const float *X = n->in[0]->data, *Y = n->out->data, *gy = n->out->grad;
    #pragma omp parallel for if (n->out->n > IT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = X + r * D, *yr = Y + r * D, *g = gy + r * D;
        double ss = 0, gdy = 0;
        for (int64_t d = 0; d < D; d++) ss += (double)xr[d] * xr[d], gdy += (double)g[d] * yr[d];
        double nrm = sqrt(ss);
        int clamped = nrm <= (double)eps;
        double inv = 1.0 / (clamped ? (double)eps : nrm);
        for (int64_t d = 0; d < D; d++)
            gx[r * D + d] += (float)(inv * (g[d] - (clamped ? 0.0 : yr[d] * gdy)));
    }
}

it_tensor *it_op_l2_normalize(it_ctx *ctx, it_tensor *x, float eps)
{
    if (it_ops_skip(ctx, 1, &x)) return NULL;
    if (!it_ops_need_f32(ctx, "l2_normalize", x)) return NULL;
    if (x->ndim < 1 || x->shape[x->ndim - 1] == 0)
        return it_ops_shape_error(ctx, "l2_normalize", x, "needs a non-empty last dim");
    if (!(eps > 0)) return it_ctx_fail(ctx, IT_ERR_ARG, "l2_normalize: eps %g must be > 0", (double)eps);
    int64_t D = x->shape[x->ndim - 1], R = x->n / D;
    it_tensor *y = it_ops_out(ctx, x->ndim, x->shape);
    if (!y) return NULL;
    const float *X = x->data;
    float *Y = y->data;
    #pragma omp parallel for if (x->n > IT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < R; r++) {
        double ss = 0;
        for (int64_t d = 0; d < D; d++) ss += (double)X[r * D + d] * X[r * D + d];
        double nrm = sqrt(ss), inv = 1.0 / (nrm > (double)eps ? nrm : (double)eps);
        for (int64_t d = 0; d < D; d++) Y[r * D + d] = (float)(X[r * D + d] * inv);
    }
    it_node *n = it_autograd_record(ctx, y, "l2_normalize", l2n_backward, 1, &x);
    if (n) n->iarg[0] = D, n->farg[0] = eps;
    return y;
}
