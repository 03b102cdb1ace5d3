/* ops_gemm.c: GEMM kernels and the matmul / linear operations.
 *
 * Row-major throughout (PyTorch's layout). The fast kernel is OpenBLAS; the
 * reference kernel accumulates in double and is what tests compare against.
 * Batched products of small matrices run one GEMM per thread (OpenBLAS's
 * OpenMP build runs single-threaded inside a parallel region); large ones
 * run one after another with OpenBLAS's own threads. */
#include "tensor/ops_gemm.h"

#include <cblas.h>
#include <string.h>

#include "base/threads.h"
#include "tensor/ops_common.h"

void it_cpu_gemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                 int64_t ldc)
{
    if (M == 0 || N == 0) return;
    if (K == 0) {
        /* BLAS would scale C by beta; do the same without touching A/B. */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0 ? 0 : beta * C[i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C,
                (blasint)ldc);
}

void it_cpu_gemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                     float *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) {
                double a = trans_a ? A[k * lda + i] : A[i * lda + k];
                double b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            double c = beta == 0 ? 0 : (double)beta * C[i * ldc + j];
            C[i * ldc + j] = (float)(alpha * s + c);
        }
    }
}

/* ---------------------------------------------------------------- matmul */

typedef struct mm_dims {
    int64_t batch, M, N, K;
    int shared_b; /* b is 2-D and used by every batch */
} mm_dims;

static mm_dims mm_dims_of(const it_node *n)
{
    mm_dims d = {n->iarg[0], n->iarg[1], n->iarg[2], n->iarg[3], (int)n->iarg[4]};
    return d;
}

/* C_i = op(A_i) op(B_i) (+ beta C_i) for every batch i. */
static void gemm_batched(int ta, int tb, const mm_dims *d, const float *A, const float *B,
                         int64_t b_stride, float beta, float *C)
{
    int64_t M = d->M, N = d->N, K = d->K;
    int64_t lda = ta ? M : K, ldb = tb ? K : N;
    if (d->shared_b && !ta) {
        /* (batch*M, K) x (K, N): one large GEMM. */
        it_cpu_gemm(0, tb, d->batch * M, N, K, 1.0f, A, lda, B, ldb, beta, C, N);
        return;
    }
    int par = d->batch >= it_threads_get() && M * N * K < ((int64_t)1 << 27);
    #pragma omp parallel for if (par) schedule(static)
    for (int64_t i = 0; i < d->batch; i++)
        it_cpu_gemm(ta, tb, M, N, K, 1.0f, A + i * M * K, lda, B + i * b_stride, ldb, beta,
                    C + i * M * N, N);
}

static void matmul_backward(it_ctx *ctx, it_node *n)
{
    mm_dims d = mm_dims_of(n);
    int ta = (int)n->iarg[5], tb = (int)n->iarg[6];
    it_tensor *a = n->in[0], *b = n->in[1];
    const float *dC = n->out->grad, *A = a->data, *B = b->data;
    float *dA = it_autograd_grad(ctx, a), *dB = it_autograd_grad(ctx, b);
    if (ctx->failed) return;
    int64_t M = d.M, N = d.N, K = d.K, bs = d.shared_b ? 0 : K * N;
    if (dA) {
        /* dop(A) = dC op(B)^T; stored transposed when ta. */
        #pragma omp parallel for if (d.batch >= it_threads_get()) schedule(static)
        for (int64_t i = 0; i < d.batch; i++) {
            const float *Bi = B + i * bs, *dCi = dC + i * M * N;
            float *dAi = dA + i * M * K;
            if (!ta) it_cpu_gemm(0, !tb, M, K, N, 1.0f, dCi, N, Bi, tb ? K : N, 1.0f, dAi, K);
            else it_cpu_gemm(tb, 1, K, M, N, 1.0f, Bi, tb ? K : N, dCi, N, 1.0f, dAi, M);
        }
    }
    if (dB) {
        if (d.shared_b && !ta) {
            int64_t R = d.batch * M;
            if (!tb) it_cpu_gemm(1, 0, K, N, R, 1.0f, A, K, dC, N, 1.0f, dB, N);
            else it_cpu_gemm(1, 0, N, K, R, 1.0f, dC, N, A, K, 1.0f, dB, K);
        } else {
            int par = !d.shared_b && d.batch >= it_threads_get();
            #pragma omp parallel for if (par) schedule(static)
            for (int64_t i = 0; i < d.batch; i++) {
                const float *Ai = A + i * M * K, *dCi = dC + i * M * N;
                float *dBi = dB + i * bs;
                /* dop(B) = op(A)^T dC; stored transposed when tb. */
                if (!tb) it_cpu_gemm(!ta, 0, K, N, M, 1.0f, Ai, ta ? M : K, dCi, N, 1.0f, dBi, N);
                else it_cpu_gemm(1, ta, N, K, M, 1.0f, dCi, N, Ai, ta ? M : K, 1.0f, dBi, K);
            }
        }
    }
}

it_tensor *it_op_matmul(it_ctx *ctx, it_tensor *a, it_tensor *b, int trans_a, int trans_b)
{
    it_tensor *in[2] = {a, b};
    if (it_ops_skip(ctx, 2, in)) return NULL;
    if (!it_ops_need_f32(ctx, "matmul", a) || !it_ops_need_f32(ctx, "matmul", b)) return NULL;
    if (a->ndim < 2) return it_ops_shape_error(ctx, "matmul", a, "a needs at least 2 dims");
    if (b->ndim < 2) return it_ops_shape_error(ctx, "matmul", b, "b needs at least 2 dims");
    int64_t M = a->shape[a->ndim - 2 + trans_a], K = a->shape[a->ndim - 1 - trans_a];
    int64_t Kb = b->shape[b->ndim - 2 + trans_b], N = b->shape[b->ndim - 1 - trans_b];
    int64_t batch = it_shape_numel(a->ndim - 2, a->shape);
    int shared = b->ndim == 2;
    if (Kb != K) return it_ops_shape_error(ctx, "matmul", b, "inner dimensions differ from a");
    if (!shared) {
        if (b->ndim != a->ndim) return it_ops_shape_error(ctx, "matmul", b, "batch dims differ from a");
        for (int i = 0; i < a->ndim - 2; i++)
            if (a->shape[i] != b->shape[i])
                return it_ops_shape_error(ctx, "matmul", b, "batch dims differ from a");
    }
    int64_t shape[IT_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[a->ndim - 2] = M;
    shape[a->ndim - 1] = N;
    it_tensor *out = it_ops_out(ctx, a->ndim, shape);
    if (!out) return NULL;
    mm_dims d = {batch, M, N, K, shared};
    gemm_batched(trans_a, trans_b, &d, a->data, b->data, shared ? 0 : K * N, 0.0f, out->data);
    it_node *n = it_autograd_record(ctx, out, "matmul", matmul_backward, 2, in);
    if (n) {
        n->iarg[0] = batch, n->iarg[1] = M, n->iarg[2] = N, n->iarg[3] = K;
        n->iarg[4] = shared, n->iarg[5] = trans_a, n->iarg[6] = trans_b;
    }
    return out;
}

/* ---------------------------------------------------------------- linear */

static void linear_backward(it_ctx *ctx, it_node *n)
{
    it_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int64_t R = n->iarg[0], Din = n->iarg[1], Dout = n->iarg[2];
    const float *dy = n->out->grad;
    float *dx = it_autograd_grad(ctx, x), *dw = it_autograd_grad(ctx, w), *db = it_autograd_grad(ctx, b);
    if (ctx->failed) return;
    if (dx) it_cpu_gemm(0, 0, R, Din, Dout, 1.0f, dy, Dout, w->data, Din, 1.0f, dx, Din);  /* (R,Dout)(Dout,Din) */
    if (dw) it_cpu_gemm(1, 0, Dout, Din, R, 1.0f, dy, Dout, x->data, Din, 1.0f, dw, Din);  /* (Dout,R)(R,Din) */
    if (db) {
        /* Column sums, walked row by row so that memory is read in order;
         * threads split the columns into cache-line-aligned chunks. */
        #pragma omp parallel for if (R * Dout > IT_PAR_MIN) schedule(static)
        for (int64_t o0 = 0; o0 < Dout; o0 += 64) {
            int64_t o1 = o0 + 64 < Dout ? o0 + 64 : Dout;
            for (int64_t r = 0; r < R; r++) {
                const float *row = dy + r * Dout;
                #pragma omp simd
                for (int64_t o = o0; o < o1; o++) db[o] += row[o];
            }
        }
    }
}

it_tensor *it_op_linear(it_ctx *ctx, it_tensor *x, it_tensor *w, it_tensor *b)
{
    it_tensor *in[3] = {x, w, b};
    if (it_ops_skip(ctx, 2, in)) return NULL;
    if (!it_ops_need_f32(ctx, "linear", x) || !it_ops_need_f32(ctx, "linear", w)) return NULL;
    if (w->ndim != 2) return it_ops_shape_error(ctx, "linear", w, "weight must be (out, in)");
    int64_t Dout = w->shape[0], Din = w->shape[1];
    if (x->ndim < 1 || x->shape[x->ndim - 1] != Din)
        return it_ops_shape_error(ctx, "linear", x, "last dim must equal the weight's in-features");
    if (b && (b->n != Dout || b->dtype != IT_DTYPE_F32))
        return it_ops_shape_error(ctx, "linear", b, "bias must have out-features elements");
    int64_t R = Din ? x->n / Din : 0;
    int64_t shape[IT_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = Dout;
    it_tensor *y = it_ops_out(ctx, x->ndim, shape);
    if (!y) return NULL;
    float *Y = y->data;
    int memo = it_autograd_memo_wants(ctx, Din); /* checkpointed block: see autograd.h */
    if (!memo || !it_autograd_memo_take(ctx, Y, y->n)) {
        if (b) {
            const float *B = b->data;
            #pragma omp parallel for if (R * Dout > IT_PAR_MIN) schedule(static)
            for (int64_t r = 0; r < R; r++) memcpy(Y + r * Dout, B, (size_t)Dout * sizeof(float));
        }
        it_cpu_gemm(0, 1, R, Dout, Din, 1.0f, x->data, Din, w->data, Din, b ? 1.0f : 0.0f, Y, Dout);
        if (memo) it_autograd_memo_put(ctx, Y, y->n);
    }
    it_node *n = it_autograd_record(ctx, y, "linear", linear_backward, 3, in);
    if (n) n->iarg[0] = R, n->iarg[1] = Din, n->iarg[2] = Dout;
    return y;
}
