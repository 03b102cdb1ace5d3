/* attention.c: blocked (flash-style) scaled-dot-product attention on the CPU,
 * forward and backward, plus the double-precision reference kernels.
 *
 * Why blocked: at Stable Diffusion 1.5 shape (B=2, H=8, T=4096, D=40) the
 * score matrix is 2*8*4096*4096 floats = 1 GiB; PyTorch's math path writes it
 * (and its softmax) to memory and reads it back, which is bandwidth-bound.
 * Here one (IT_ATTN_BQ x IT_ATTN_BK) block of scores lives in L2 per thread;
 * an online softmax (running row max m and row sum l, the accumulated output
 * rescaled by exp(m_old - m_new) when the max grows) folds each block into
 * the output, and only lse = m + log(l) per row is kept for the backward.
 *
 * Layout trick: the query dimension sits in the vector lanes. Per task
 * (batch, head, 64 queries) scale*Q^T is packed once into a (D, 64) block;
 * then S^T = K (scale Q^T) and O^T += V^T P^T are products whose A operand
 * is read in place from K or V rows (any token stride, one broadcast per
 * element) and whose B operand is the 64-query-wide block. So K and V are
 * never packed or transposed, and the softmax statistics of 8 queries live
 * in one vector. One register-tiled micro-kernel (mk_gemm, 6 x 16 tiles)
 * does every product of the forward and backward; it replaced single-
 * threaded OpenBLAS calls, which pack both operands on every call and ran
 * the 64x256x40 block products at 40-50 GFLOPS per core (docs/KERNELS.md).
 * The exponentials use an AVX2 polynomial exp when the compiler targets
 * AVX2+FMA; otherwise the same code runs on scalar floats and expf().
 *
 * Backward (FlashAttention-2, arXiv 2307.08691): per (batch, head) and key
 * range, loop over query blocks, recompute P = exp(S - lse) per key block,
 * and accumulate dV += P^T dO, dS = P * (dO V^T - rowsum(dO * O)),
 * dQ += scale dS K, dK += scale dS^T Q. */
#include "tensor/attention.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "base/mem.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define IT_ATTN_AVX2 1
#endif

/* ------------------------------------------------------------------------ */
/* Layouts and descriptors                                                   */
/* ------------------------------------------------------------------------ */

it_attn_layout it_attn_layout_bhtd(int n_heads, int T, int D)
{
    it_attn_layout l = {(ptrdiff_t)n_heads * T * D, (ptrdiff_t)T * D, D};
    return l;
}

it_attn_layout it_attn_layout_bthd(int n_heads, int T, int D)
{
    return it_attn_layout_bthd_packed(n_heads, T, D, (ptrdiff_t)n_heads * D);
}

it_attn_layout it_attn_layout_bthd_packed(int n_heads, int T, int D, ptrdiff_t row)
{
    (void)n_heads;
    it_attn_layout l = {(ptrdiff_t)T * row, D, row};
    return l;
}

it_attn_desc it_attn_desc_bhtd(int B, int n_heads, int Tq, int Tk, int D)
{
    it_attn_desc d;
    memset(&d, 0, sizeof d);
    d.B = B, d.n_heads = n_heads, d.Tq = Tq, d.Tk = Tk, d.D = D;
    d.q = d.o = it_attn_layout_bhtd(n_heads, Tq, D);
    d.k = d.v = it_attn_layout_bhtd(n_heads, Tk, D);
    return d;
}

it_attn_desc it_attn_desc_bthd(int B, int n_heads, int Tq, int Tk, int D)
{
    it_attn_desc d = it_attn_desc_bhtd(B, n_heads, Tq, Tk, D);
    d.q = d.o = it_attn_layout_bthd(n_heads, Tq, D);
    d.k = d.v = it_attn_layout_bthd(n_heads, Tk, D);
    return d;
}

static float desc_scale(const it_attn_desc *d)
{
    return d->scale != 0.0f ? d->scale : (float)(1.0 / sqrt((double)d->D));
}

static it_status check_layout(it_err *err, const char *name, it_attn_layout l, int D)
{
    if (l.sb < 0 || l.sh < 0 || l.st < D)
        return it_err_set(err, IT_ERR_ARG,
                          "attention: layout of %s has strides (%td, %td, %td); need batch and "
                          "head strides >= 0 and token stride >= D=%d",
                          name, l.sb, l.sh, l.st, D);
    return IT_OK;
}

static it_status check_desc(it_err *err, const it_attn_desc *d)
{
    if (!d) return it_err_set(err, IT_ERR_ARG, "attention: NULL descriptor");
    if (d->B < 1 || d->n_heads < 1 || d->Tq < 1 || d->Tk < 1 || d->D < 1)
        return it_err_set(err, IT_ERR_ARG,
                          "attention: sizes B=%d H=%d Tq=%d Tk=%d D=%d must all be >= 1", d->B,
                          d->n_heads, d->Tq, d->Tk, d->D);
    if (!isfinite(d->scale))
        return it_err_set(err, IT_ERR_ARG, "attention: scale %g is not finite", d->scale);
    IT_TRY(check_layout(err, "q", d->q, d->D));
    IT_TRY(check_layout(err, "k", d->k, d->D));
    IT_TRY(check_layout(err, "v", d->v, d->D));
    IT_TRY(check_layout(err, "o", d->o, d->D));
    const it_attn_mask *m = &d->mask;
    if ((m->add || m->keep) && (m->sb < 0 || m->sh < 0 || m->sq < 0))
        return it_err_set(err, IT_ERR_ARG, "attention: mask strides (%td, %td, %td) must be >= 0",
                          m->sb, m->sh, m->sq);
    return IT_OK;
}

#define CHECK_PTR(p)                                                                     \
    do {                                                                                 \
        if (!(p)) return it_err_set(err, IT_ERR_ARG, "attention: %s is NULL", #p);       \
    } while (0)

/* Pointer to row t of (b, h) in a layout. */
#define ROW(base, l, b, h, t) ((base) + (ptrdiff_t)(b) * (l).sb + (ptrdiff_t)(h) * (l).sh + (ptrdiff_t)(t) * (l).st)

double it_attn_flops_forward(const it_attn_desc *d)
{
    double pairs = 0;
    if (d->causal) {
        for (int i = 0; i < d->Tq; i++) pairs += i + 1 < d->Tk ? i + 1 : d->Tk;
    } else {
        pairs = (double)d->Tq * d->Tk;
    }
    return 4.0 * d->B * d->n_heads * pairs * d->D;
}

double it_attn_flops_backward(const it_attn_desc *d) { return 2.5 * it_attn_flops_forward(d); }

/* ------------------------------------------------------------------------ */
/* Vector helpers                                                            */
/* ------------------------------------------------------------------------ */

#ifdef IT_ATTN_AVX2
typedef __m256 vf;
#define VW 8
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, x) _mm256_storeu_ps(p, x)
#define V_SET1(x) _mm256_set1_ps(x)
#define V_BCAST(p) _mm256_broadcast_ss(p)
#define V_ZERO() _mm256_setzero_ps()
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_SUB(a, b) _mm256_sub_ps(a, b)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_MAX(a, b) _mm256_max_ps(a, b)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
/* lanes of a equal to -inf replaced by r */
#define V_IF_NEGINF(a, r) _mm256_blendv_ps(a, r, _mm256_cmp_ps(a, V_SET1(-INFINITY), _CMP_EQ_OQ))

/* exp(x) for 8 floats: Cephes-style range reduction x = n ln2 + r, degree-6
 * polynomial on r, 2^n built in the exponent bits. Relative error about
 * 2 ulp; inputs below -87.3 (including -inf) return exactly 0. */
static inline __m256 v_exp(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.3365447505531f);
    const __m256 hi = _mm256_set1_ps(88.3762626647949f);
    __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500E-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507E-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073E-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894E-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459E-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201E-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(underflow, y);
}
#else
/* Portable path: a "vector" of one float; the compiler vectorises what it can. */
typedef float vf;
#define VW 1
#define V_LOAD(p) (*(p))
#define V_STORE(p, x) (*(p) = (x))
#define V_SET1(x) (x)
#define V_BCAST(p) (*(p))
#define V_ZERO() 0.0f
#define V_ADD(a, b) ((a) + (b))
#define V_SUB(a, b) ((a) - (b))
#define V_MUL(a, b) ((a) * (b))
#define V_MAX(a, b) ((a) > (b) ? (a) : (b))
#define V_FMA(a, b, c) ((a) * (b) + (c))
#define V_IF_NEGINF(a, r) ((a) == -INFINITY ? (r) : (a))
static inline float v_exp(float x) { return x < -87.3365447505531f ? 0.0f : expf(x); }
#endif

/* Query columns of a block are padded to a multiple of QPAD so that the
 * micro-kernel's 2-vector tiles always fit; padded columns hold zeros. */
#define QPAD 16
#define LDQ IT_ATTN_BQ /* row length of query-major block buffers */
_Static_assert(IT_ATTN_BQ % QPAD == 0, "query blocks must hold whole 16-column tiles");

static int round_up(int x, int m) { return (x + m - 1) / m * m; }

/* ------------------------------------------------------------------------ */
/* Micro-kernel                                                              */
/* ------------------------------------------------------------------------ */

/* One R x (V vectors) tile of C (+)= A B: A element (r, k) at
 * A[r*ars + k*aks] (broadcast), B rows of ldb floats (vector loads). Forced
 * inline so that R <= 6 and V <= 2 are constants and the accumulators are
 * named registers. The 6 x 2 tile (the classic Haswell sgemm shape) keeps
 * 12 accumulators, 2 B vectors and a broadcast in the 16 ymm registers: 12
 * FMAs per 8 loads, enough independent chains for both FMA pipes. */
static inline __attribute__((always_inline)) void mk_tile(float *C, int ldc, const float *A,
                                                         ptrdiff_t ars, ptrdiff_t aks,
                                                         const float *B, int ldb, int K, int acc,
                                                         const int R, const int V)
{
    vf c00 = V_ZERO(), c01 = V_ZERO(), c10 = V_ZERO(), c11 = V_ZERO(), c20 = V_ZERO(), c21 = V_ZERO();
    vf c30 = V_ZERO(), c31 = V_ZERO(), c40 = V_ZERO(), c41 = V_ZERO(), c50 = V_ZERO(), c51 = V_ZERO();
#define MK_ROWS(X)                                                                       \
    X(0, c00, c01);                                                                      \
    if (R > 1) X(1, c10, c11);                                                           \
    if (R > 2) X(2, c20, c21);                                                           \
    if (R > 3) X(3, c30, c31);                                                           \
    if (R > 4) X(4, c40, c41);                                                           \
    if (R > 5) X(5, c50, c51)
#define MK_LOAD(r, x0, x1)                                                               \
    do {                                                                                 \
        x0 = V_LOAD(C + (ptrdiff_t)(r) * ldc);                                           \
        if (V > 1) x1 = V_LOAD(C + (ptrdiff_t)(r) * ldc + VW);                           \
    } while (0)
#define MK_FMA(r, x0, x1)                                                                \
    do {                                                                                 \
        vf ar = V_BCAST(a + (ptrdiff_t)(r) * ars);                                       \
        x0 = V_FMA(ar, b0, x0);                                                          \
        if (V > 1) x1 = V_FMA(ar, b1, x1);                                               \
    } while (0)
#define MK_STORE(r, x0, x1)                                                              \
    do {                                                                                 \
        V_STORE(C + (ptrdiff_t)(r) * ldc, x0);                                           \
        if (V > 1) V_STORE(C + (ptrdiff_t)(r) * ldc + VW, x1);                           \
    } while (0)
    if (acc) {
        MK_ROWS(MK_LOAD);
    }
    for (int k = 0; k < K; k++) {
        const float *a = A + (ptrdiff_t)k * aks;
        const float *b = B + (ptrdiff_t)k * ldb;
        vf b0 = V_LOAD(b), b1 = V > 1 ? V_LOAD(b + VW) : b0;
        MK_ROWS(MK_FMA);
    }
    MK_ROWS(MK_STORE);
#undef MK_ROWS
#undef MK_LOAD
#undef MK_FMA
#undef MK_STORE
}

/* Rows [r0, r1) of one column tile of V vectors: tiles of 6, 4, then 1. */
static inline __attribute__((always_inline)) void mk_col(float *C, int ldc, const float *A,
                                                        ptrdiff_t ars, ptrdiff_t aks,
                                                        const float *B, int ldb, int K, int acc,
                                                        int r0, int r1, const int V)
{
    int r = r0;
    for (; r + 6 <= r1; r += 6) mk_tile(C + (ptrdiff_t)r * ldc, ldc, A + r * ars, ars, aks, B, ldb, K, acc, 6, V);
    if (r + 4 <= r1) {
        mk_tile(C + (ptrdiff_t)r * ldc, ldc, A + r * ars, ars, aks, B, ldb, K, acc, 4, V);
        r += 4;
    }
    for (; r < r1; r++) mk_tile(C + (ptrdiff_t)r * ldc, ldc, A + r * ars, ars, aks, B, ldb, K, acc, 1, V);
}

/* Column vectors [v0, v1) for rows [r0, r1): tiles of 2, then 1. */
static void mk_cols(float *C, int ldc, const float *A, ptrdiff_t ars, ptrdiff_t aks, const float *B,
                    int ldb, int K, int acc, int r0, int r1, int v0, int v1)
{
    int v = v0;
    for (; v + 2 <= v1; v += 2) mk_col(C + v * VW, ldc, A, ars, aks, B + v * VW, ldb, K, acc, r0, r1, 2);
    if (v < v1) mk_col(C + v * VW, ldc, A, ars, aks, B + v * VW, ldb, K, acc, r0, r1, 1);
}

/* C (M, N) (+)= A (M, K) B (K, N), N a multiple of VW; acc: add to C.
 * The attention products all have this form once the query dimension is
 * put in the vector lanes (see the file comment). Loop order keeps the
 * larger operand streaming once: with N > M (B the bigger one) each column
 * strip of B is reused by all row tiles while it sits in L1. */
static void mk_gemm(float *C, int ldc, const float *A, ptrdiff_t ars, ptrdiff_t aks,
                    const float *B, int ldb, int M, int N, int K, int acc)
{
    const int nv = N / VW;
    if (N > M) {
        for (int v = 0; v < nv; v += 2) mk_cols(C, ldc, A, ars, aks, B, ldb, K, acc, 0, M, v, v + 2 < nv ? v + 2 : nv);
    } else {
        for (int r = 0; r < M; r += 6) mk_cols(C, ldc, A, ars, aks, B, ldb, K, acc, r, r + 6 < M ? r + 6 : M, 0, nv);
    }
}

/* ------------------------------------------------------------------------ */
/* Block packing and masking                                                 */
/* ------------------------------------------------------------------------ */

/* dst (D, LDQ) = scale * rows^T of mq rows (row stride st), columns
 * mq..mq16-1 zero. */
static void pack_t(float *dst, const float *rows, ptrdiff_t st, int mq, int mq16, int D, float scale)
{
    for (int c = 0; c < D; c++) {
        float *o = dst + (size_t)c * LDQ;
        for (int i = 0; i < mq; i++) o[i] = scale * rows[(ptrdiff_t)i * st + c];
        for (int i = mq; i < mq16; i++) o[i] = 0.0f;
    }
}

/* dst (mq16, D8) = scale * rows, zero padded in both directions. */
static void pack_rows(float *dst, const float *rows, ptrdiff_t st, int mq, int mq16, int D, int D8,
                      float scale)
{
    for (int i = 0; i < mq16; i++) {
        float *o = dst + (size_t)i * D8;
        int c = 0;
        if (i < mq)
            for (; c < D; c++) o[c] = scale * rows[(ptrdiff_t)i * st + c];
        for (; c < D8; c++) o[c] = 0.0f;
    }
}

/* Whether any masking applies to queries [i0, i0+mq) and keys [j0, j0+nk);
 * the causal rule only touches blocks that cross the diagonal. */
static int block_needs_mask(const it_attn_desc *d, int i0, int j0, int nk)
{
    if (d->mask.add || d->mask.keep) return 1;
    return d->causal && j0 + nk - 1 > i0;
}

/* Applies masks and the causal rule to a transposed score block st
 * (nk, LDQ): row j is key j0+j, column i is query i0+i (i < mq). */
static void mask_block(float *st, int nk, int mq, const it_attn_desc *d, int b, int h, int i0, int j0)
{
    const it_attn_mask *m = &d->mask;
    const ptrdiff_t base = (ptrdiff_t)b * m->sb + (ptrdiff_t)h * m->sh + (ptrdiff_t)i0 * m->sq + j0;
    for (int j = 0; j < nk; j++) {
        float *s = st + (size_t)j * LDQ;
        if (m->add) {
            const float *a = m->add + base + j;
            if (m->sq == 0)
                for (int i = 0; i < mq; i++) s[i] += a[0];
            else
                for (int i = 0; i < mq; i++) s[i] += a[(ptrdiff_t)i * m->sq];
        }
        if (m->keep) {
            const uint8_t *k = m->keep + base + j;
            for (int i = 0; i < mq; i++)
                if (!k[(ptrdiff_t)i * m->sq]) s[i] = -INFINITY;
        }
        if (d->causal) { /* queries i0+i < key j0+j are hidden */
            int hide = j0 + j - i0;
            for (int i = 0; i < mq && i < hide; i++) s[i] = -INFINITY;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Fast forward                                                              */
/* ------------------------------------------------------------------------ */

typedef struct fwd_ws {
    float *qt;  /* (D, LDQ) scale * Q^T of the query block */
    float *st;  /* (BK, LDQ) scores^T, then probabilities^T */
    float *ot;  /* (D, LDQ) unnormalised output^T */
    float *m;   /* (LDQ) running row max */
    float *l;   /* (LDQ) running row sum */
} fwd_ws;

static size_t fwd_ws_floats(int D) { return (size_t)LDQ * (2 * (size_t)D + IT_ATTN_BK + 2); }

static fwd_ws fwd_ws_at(float *base, int D)
{
    fwd_ws w;
    w.qt = base;
    w.st = w.qt + (size_t)D * LDQ;
    w.ot = w.st + (size_t)IT_ATTN_BK * LDQ;
    w.m = w.ot + (size_t)D * LDQ;
    w.l = w.m + LDQ;
    return w;
}

/* Online-softmax update of the query columns [c0, c0+2*VW) with the nk
 * scores of a block: new max, probabilities in place, rescaled sums and
 * output columns. Two vectors per pass use whole 64-byte lines of the
 * score rows. A column whose keys are all hidden so far keeps max -inf and
 * uses 0 in its place so that no -inf - -inf appears. */
static void fwd_softmax(const fwd_ws *w, int nk, int D, int c0)
{
    const float *st = w->st + c0;
    vf mx0 = V_LOAD(w->m + c0), mx1 = V_LOAD(w->m + c0 + VW);
    for (int j = 0; j < nk; j++) {
        mx0 = V_MAX(mx0, V_LOAD(st + (size_t)j * LDQ));
        mx1 = V_MAX(mx1, V_LOAD(st + (size_t)j * LDQ + VW));
    }
    vf safe0 = V_IF_NEGINF(mx0, V_ZERO()), safe1 = V_IF_NEGINF(mx1, V_ZERO());
    vf alpha0 = v_exp(V_SUB(V_LOAD(w->m + c0), safe0));
    vf alpha1 = v_exp(V_SUB(V_LOAD(w->m + c0 + VW), safe1));
    vf sum0 = V_ZERO(), sum1 = V_ZERO();
    for (int j = 0; j < nk; j++) {
        float *s = w->st + (size_t)j * LDQ + c0;
        vf p0 = v_exp(V_SUB(V_LOAD(s), safe0)), p1 = v_exp(V_SUB(V_LOAD(s + VW), safe1));
        V_STORE(s, p0);
        V_STORE(s + VW, p1);
        sum0 = V_ADD(sum0, p0);
        sum1 = V_ADD(sum1, p1);
    }
    V_STORE(w->l + c0, V_FMA(V_LOAD(w->l + c0), alpha0, sum0));
    V_STORE(w->l + c0 + VW, V_FMA(V_LOAD(w->l + c0 + VW), alpha1, sum1));
    V_STORE(w->m + c0, mx0);
    V_STORE(w->m + c0 + VW, mx1);
    for (int c = 0; c < D; c++) {
        float *o = w->ot + (size_t)c * LDQ + c0;
        V_STORE(o, V_MUL(V_LOAD(o), alpha0));
        V_STORE(o + VW, V_MUL(V_LOAD(o + VW), alpha1));
    }
}

static void fwd_task(const fwd_ws *w, float *o, float *lse, const float *q, const float *k,
                     const float *v, const it_attn_desc *d, float scale, int b, int h, int i0)
{
    const int D = d->D;
    const int mq = d->Tq - i0 < IT_ATTN_BQ ? d->Tq - i0 : IT_ATTN_BQ, mq16 = round_up(mq, QPAD);
    pack_t(w->qt, ROW(q, d->q, b, h, i0), d->q.st, mq, mq16, D, scale);
    for (int i = 0; i < mq16; i++) w->m[i] = -INFINITY, w->l[i] = 0.0f;
    for (int c = 0; c < D; c++) memset(w->ot + (size_t)c * LDQ, 0, (size_t)mq16 * sizeof(float));
    /* causal: the last query of the block, i0+mq-1, sees keys up to itself */
    const int kend = d->causal && i0 + mq < d->Tk ? i0 + mq : d->Tk;
    for (int j0 = 0; j0 < kend; j0 += IT_ATTN_BK) {
        const int nk = kend - j0 < IT_ATTN_BK ? kend - j0 : IT_ATTN_BK;
        const float *kb = ROW(k, d->k, b, h, j0), *vb = ROW(v, d->v, b, h, j0);
        /* S^T (nk, mq16) = K (nk, D) (scale Q^T) (D, mq16) */
        mk_gemm(w->st, LDQ, kb, d->k.st, 1, w->qt, LDQ, nk, mq16, D, 0);
        if (block_needs_mask(d, i0, j0, nk)) mask_block(w->st, nk, mq, d, b, h, i0, j0);
        for (int c0 = 0; c0 < mq16; c0 += 2 * VW) fwd_softmax(w, nk, D, c0);
        /* O^T (D, mq16) += V^T (D, nk) P^T (nk, mq16) */
        mk_gemm(w->ot, LDQ, vb, 1, d->v.st, w->st, LDQ, D, mq16, nk, 1);
    }
    for (int i = 0; i < mq; i++) {
        float *orow = ROW(o, d->o, b, h, i0 + i);
        float inv = w->l[i] > 0.0f ? 1.0f / w->l[i] : 0.0f;
        for (int c = 0; c < D; c++) orow[c] = w->ot[(size_t)c * LDQ + i] * inv;
        if (lse)
            lse[((size_t)b * d->n_heads + h) * d->Tq + i0 + i] =
                w->l[i] > 0.0f ? w->m[i] + logf(w->l[i]) : -INFINITY;
    }
}

it_status it_attn_forward(it_err *err, float *o, float *lse, const float *q, const float *k,
                          const float *v, const it_attn_desc *d)
{
    IT_TRY(check_desc(err, d));
    CHECK_PTR(o);
    CHECK_PTR(q);
    CHECK_PTR(k);
    CHECK_PTR(v);
    int nthreads = omp_get_max_threads();
    size_t per = fwd_ws_floats(d->D);
    float *ws = it_malloc_aligned((size_t)nthreads * per * sizeof(float));
    if (!ws) return it_err_set(err, IT_ERR_NOMEM, "attention: no memory for %d workspaces", nthreads);
    const float scale = desc_scale(d);
    const int nqb = (d->Tq + IT_ATTN_BQ - 1) / IT_ATTN_BQ;
    const long ntasks = (long)d->B * d->n_heads * nqb;
#pragma omp parallel num_threads(nthreads)
    {
        fwd_ws w = fwd_ws_at(ws + (size_t)omp_get_thread_num() * per, d->D);
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < ntasks; t++) {
            int qb = (int)(t % nqb);
            long bh = t / nqb;
            fwd_task(&w, o, lse, q, k, v, d, scale, (int)(bh / d->n_heads),
                     (int)(bh % d->n_heads), qb * IT_ATTN_BQ);
        }
    }
    it_free_aligned(ws);
    return IT_OK;
}

/* ------------------------------------------------------------------------ */
/* Fast backward                                                             */
/* ------------------------------------------------------------------------ */

/* Per-thread buffers. The loop runs query blocks outside and key blocks
 * inside, so dQ of a query block is complete (in dqt, L1) when its key loop
 * ends, and dK/dV of the task's key range accumulate in row layout. */
typedef struct bwd_ws {
    float *qt, *dot;    /* (D, LDQ) scale * Q^T and dO^T of the query block */
    float *qp, *dop;    /* (LDQ, D8) scale * Q and dO rows, zero padded */
    float *pt, *dpt;    /* (BK, LDQ) P^T; dP^T, then dS^T */
    float *dqt;         /* (D, LDQ) dQ^T of the query block, unscaled */
    float *lse, *delta; /* (LDQ) of the query block; padding: +inf and 0 */
    float *dk, *dv;     /* (Tk rounded to BK, D8) dK (already scaled), dV */
} bwd_ws;

static size_t bwd_ws_floats(int D, int Tk)
{
    size_t D8 = (size_t)round_up(D, 8), tk = (size_t)round_up(Tk, IT_ATTN_BK);
    return (size_t)LDQ * (3 * (size_t)D + 2 * D8 + 2 * IT_ATTN_BK + 2) + 2 * tk * D8;
}

static bwd_ws bwd_ws_at(float *base, int D, int Tk)
{
    size_t D8 = (size_t)round_up(D, 8), tk = (size_t)round_up(Tk, IT_ATTN_BK);
    bwd_ws w;
    w.qt = base;
    w.dot = w.qt + (size_t)D * LDQ;
    w.qp = w.dot + (size_t)D * LDQ;
    w.dop = w.qp + LDQ * D8;
    w.pt = w.dop + LDQ * D8;
    w.dpt = w.pt + (size_t)IT_ATTN_BK * LDQ;
    w.dqt = w.dpt + (size_t)IT_ATTN_BK * LDQ;
    w.lse = w.dqt + (size_t)D * LDQ;
    w.delta = w.lse + LDQ;
    w.dk = w.delta + LDQ;
    w.dv = w.dk + tk * D8;
    return w;
}

/* Inputs of the backward shared by all tasks. */
typedef struct bwd_args {
    const it_attn_desc *d;
    float scale;
    const float *q, *k, *v, *dout, *lse;
    const float *delta; /* (B, H, Tq) rowsum(dO * O) */
    float *dq, *dk, *dv;
    float *dq_part;     /* (B*H*nsplit, Tq, D) scaled dQ partials, or NULL */
    int nsplit;         /* key-block ranges per (b, h) */
} bwd_args;

/* Packs the query block [i0, i0+mq) of (b, h). */
static void bwd_pack_queries(const bwd_ws *w, const bwd_args *a, int b, int h, int i0, int mq, int mq16)
{
    const it_attn_desc *d = a->d;
    const int D = d->D, D8 = round_up(D, 8);
    const float *qr = ROW(a->q, d->q, b, h, i0), *dor = ROW(a->dout, d->o, b, h, i0);
    pack_t(w->qt, qr, d->q.st, mq, mq16, D, a->scale);
    pack_t(w->dot, dor, d->o.st, mq, mq16, D, 1.0f);
    pack_rows(w->qp, qr, d->q.st, mq, mq16, D, D8, a->scale);
    pack_rows(w->dop, dor, d->o.st, mq, mq16, D, D8, 1.0f);
    const size_t r = ((size_t)b * d->n_heads + h) * d->Tq + i0;
    for (int i = 0; i < mq16; i++) {
        /* a fully hidden row (lse -inf) and padding get P = exp(S - inf) = 0 */
        float l = i < mq ? a->lse[r + i] : INFINITY;
        w->lse[i] = l == -INFINITY ? INFINITY : l;
        w->delta[i] = i < mq ? a->delta[r + i] : 0.0f;
    }
}

/* One (query block, key block) step: recompute P^T, then dV, dS, dK, dQ.
 * dk/dv: the accumulator rows of this key block. */
static void bwd_block(const bwd_ws *w, const bwd_args *a, int b, int h, int i0, int mq, int j0,
                      int nk, float *dk, float *dv)
{
    const it_attn_desc *d = a->d;
    const int D = d->D, D8 = round_up(D, 8), mq16 = round_up(mq, QPAD);
    const float *kb = ROW(a->k, d->k, b, h, j0), *vb = ROW(a->v, d->v, b, h, j0);
    /* S^T (nk, mq16) = K (scale Q)^T; dP^T = V dO^T */
    mk_gemm(w->pt, LDQ, kb, d->k.st, 1, w->qt, LDQ, nk, mq16, D, 0);
    mk_gemm(w->dpt, LDQ, vb, d->v.st, 1, w->dot, LDQ, nk, mq16, D, 0);
    if (block_needs_mask(d, i0, j0, nk)) mask_block(w->pt, nk, mq, d, b, h, i0, j0);
    for (int c0 = 0; c0 < mq16; c0 += VW) { /* P = exp(S - lse); dS = P (dP - delta) */
        vf l = V_LOAD(w->lse + c0), dl = V_LOAD(w->delta + c0);
        for (int j = 0; j < nk; j++) {
            float *p = w->pt + (size_t)j * LDQ + c0, *dp = w->dpt + (size_t)j * LDQ + c0;
            vf pv = v_exp(V_SUB(V_LOAD(p), l));
            V_STORE(p, pv);
            V_STORE(dp, V_MUL(pv, V_SUB(V_LOAD(dp), dl)));
        }
    }
    /* dV (nk, D8) += P^T (nk, mq16) dO (mq16, D8) */
    if (a->dv) mk_gemm(dv, D8, w->pt, LDQ, 1, w->dop, D8, nk, D8, mq16, 1);
    /* dK (nk, D8) += dS^T (nk, mq16) (scale Q) (mq16, D8) */
    if (a->dk) mk_gemm(dk, D8, w->dpt, LDQ, 1, w->qp, D8, nk, D8, mq16, 1);
    /* dQ^T (D, mq16) += K^T (D, nk) dS^T (nk, mq16); scaled when stored */
    if (a->dq) mk_gemm(w->dqt, LDQ, kb, 1, d->k.st, w->dpt, LDQ, D, mq16, nk, 1);
}

/* Writes or adds the first D columns of an (n, ld) block into rows of a
 * strided gradient. */
static void store_rows(float *dst, ptrdiff_t st, const float *src, int ld, int n, int D, int add)
{
    for (int r = 0; r < n; r++) {
        float *o = dst + (ptrdiff_t)r * st;
        const float *s = src + (size_t)r * ld;
        if (add)
            for (int c = 0; c < D; c++) o[c] += s[c];
        else
            memcpy(o, s, (size_t)D * sizeof(float));
    }
}

/* dst rows (mq of them, row stride st) (+)= scale * dQ^T (D, LDQ). */
static void store_dq(float *dst, ptrdiff_t st, const float *dqt, int mq, int D, float scale, int add)
{
    for (int i = 0; i < mq; i++) {
        float *o = dst + (ptrdiff_t)i * st;
        for (int c = 0; c < D; c++) o[c] = (add ? o[c] : 0.0f) + scale * dqt[(size_t)c * LDQ + i];
    }
}

/* Keys [k0, k1) of (b, h), every query block. dQ goes to dq_rows (row
 * stride dq_st): the real dq, or a private partial when split. */
static void bwd_task(const bwd_ws *w, const bwd_args *a, int b, int h, int k0, int k1,
                     float *dq_rows, ptrdiff_t dq_st, int dq_add)
{
    const it_attn_desc *d = a->d;
    const int D = d->D, D8 = round_up(D, 8);
    memset(w->dk, 0, (size_t)(k1 - k0) * D8 * sizeof(float));
    memset(w->dv, 0, (size_t)(k1 - k0) * D8 * sizeof(float));
    for (int i0 = 0; i0 < d->Tq; i0 += IT_ATTN_BQ) {
        const int mq = d->Tq - i0 < IT_ATTN_BQ ? d->Tq - i0 : IT_ATTN_BQ, mq16 = round_up(mq, QPAD);
        /* causal: the block's last query i0+mq-1 sees keys up to itself */
        const int kend = d->causal && i0 + mq < k1 ? i0 + mq : k1;
        for (int c = 0; c < D; c++) memset(w->dqt + (size_t)c * LDQ, 0, (size_t)mq16 * sizeof(float));
        if (k0 < kend) bwd_pack_queries(w, a, b, h, i0, mq, mq16);
        for (int j0 = k0; j0 < kend; j0 += IT_ATTN_BK) {
            int nk = kend - j0 < IT_ATTN_BK ? kend - j0 : IT_ATTN_BK;
            size_t off = (size_t)(j0 - k0) * D8;
            bwd_block(w, a, b, h, i0, mq, j0, nk, w->dk + off, w->dv + off);
        }
        if (dq_rows) store_dq(dq_rows + (ptrdiff_t)i0 * dq_st, dq_st, w->dqt, mq, D, a->scale, dq_add);
    }
    if (a->dk) store_rows(ROW(a->dk, d->k, b, h, k0), d->k.st, w->dk, D8, k1 - k0, D, d->accumulate);
    if (a->dv) store_rows(ROW(a->dv, d->v, b, h, k0), d->v.st, w->dv, D8, k1 - k0, D, d->accumulate);
}

/* delta[b,h,i] = sum_c dO[i,c] * O[i,c] */
static void bwd_delta(float *delta, const float *dout, const float *o, const it_attn_desc *d)
{
    const long rows = (long)d->B * d->n_heads * d->Tq;
#pragma omp parallel for schedule(static)
    for (long t = 0; t < rows; t++) {
        int i = (int)(t % d->Tq);
        long bh = t / d->Tq;
        int b = (int)(bh / d->n_heads), h = (int)(bh % d->n_heads);
        const float *x = ROW(dout, d->o, b, h, i), *y = ROW(o, d->o, b, h, i);
        float s = 0.0f;
        for (int c = 0; c < d->D; c++) s += x[c] * y[c];
        delta[t] = s;
    }
}

/* Splits each (b, h) into key-block ranges when there are few pairs, so
 * that small batches still use every thread. The split depends only on the
 * shape (aim: 8 tasks), never on the thread count, so results don't either. */
static int bwd_nsplit(const it_attn_desc *d)
{
    int nkb = (d->Tk + IT_ATTN_BK - 1) / IT_ATTN_BK;
    long pairs = (long)d->B * d->n_heads;
    if (pairs >= 8) return 1;
    int s = (int)((8 + pairs - 1) / pairs);
    return s < nkb ? s : nkb;
}

static void bwd_run(const bwd_args *a, float *ws, size_t per, int nthreads)
{
    const it_attn_desc *d = a->d;
    const int nkb = (d->Tk + IT_ATTN_BK - 1) / IT_ATTN_BK;
    const long ntasks = (long)d->B * d->n_heads * a->nsplit;
    const size_t part = (size_t)d->Tq * d->D;
#pragma omp parallel num_threads(nthreads)
    {
        bwd_ws w = bwd_ws_at(ws + (size_t)omp_get_thread_num() * per, d->D, d->Tk);
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < ntasks; t++) {
            int s = (int)(t % a->nsplit);
            long bh = t / a->nsplit;
            int b = (int)(bh / d->n_heads), h = (int)(bh % d->n_heads);
            int k0 = (int)((long)nkb * s / a->nsplit) * IT_ATTN_BK;
            int k1 = (int)((long)nkb * (s + 1) / a->nsplit) * IT_ATTN_BK;
            if (k1 > d->Tk) k1 = d->Tk;
            if (a->dq_part)
                bwd_task(&w, a, b, h, k0, k1, a->dq_part + (size_t)t * part, d->D, 0);
            else
                bwd_task(&w, a, b, h, k0, k1, a->dq ? ROW(a->dq, d->q, b, h, 0) : NULL, d->q.st,
                         d->accumulate);
        }
    }
    if (!a->dq_part) return;
    /* fixed-order reduction of the partials (contiguous rows) */
    for (long bh = 0; bh < (long)d->B * d->n_heads; bh++) {
        int b = (int)(bh / d->n_heads), h = (int)(bh % d->n_heads);
        for (int s = 0; s < a->nsplit; s++)
            store_rows(ROW(a->dq, d->q, b, h, 0), d->q.st, a->dq_part + (size_t)(bh * a->nsplit + s) * part,
                       d->D, d->Tq, d->D, s > 0 || d->accumulate);
    }
}

it_status it_attn_backward(it_err *err, float *dq, float *dk, float *dv, const float *dout,
                           const float *q, const float *k, const float *v, const float *o,
                           const float *lse, const it_attn_desc *d)
{
    IT_TRY(check_desc(err, d));
    CHECK_PTR(dout);
    CHECK_PTR(q);
    CHECK_PTR(k);
    CHECK_PTR(v);
    CHECK_PTR(o);
    CHECK_PTR(lse);
    if (!dq && !dk && !dv)
        return it_err_set(err, IT_ERR_ARG, "attention backward: dq, dk and dv are all NULL");
    int nthreads = omp_get_max_threads();
    bwd_args a = {.d = d, .scale = desc_scale(d), .q = q, .k = k, .v = v, .dout = dout,
                  .lse = lse, .dq = dq, .dk = dk, .dv = dv, .nsplit = bwd_nsplit(d)};
    size_t per = bwd_ws_floats(d->D, d->Tk);
    size_t rows = (size_t)d->B * d->n_heads * d->Tq;
    size_t parts = a.nsplit > 1 && dq ? rows * a.nsplit * d->D : 0;
    float *ws = it_malloc_aligned(((size_t)nthreads * per + rows + parts) * sizeof(float));
    if (!ws) return it_err_set(err, IT_ERR_NOMEM, "attention backward: no memory for workspaces");
    float *delta = ws + (size_t)nthreads * per;
    a.delta = delta;
    a.dq_part = parts ? delta + rows : NULL;
    bwd_delta(delta, dout, o, d);
    bwd_run(&a, ws, per, nthreads);
    it_free_aligned(ws);
    return IT_OK;
}

/* ------------------------------------------------------------------------ */
/* Reference kernels (double accumulation, materialised softmax)             */
/* ------------------------------------------------------------------------ */

/* Scaled, masked scores of row i into s (Tk); returns the row max. */
static double ref_scores(double *s, const float *q, const float *k, const it_attn_desc *d,
                         double scale, int b, int h, int i)
{
    const float *qi = ROW(q, d->q, b, h, i);
    const it_attn_mask *m = &d->mask;
    ptrdiff_t moff = (ptrdiff_t)b * m->sb + (ptrdiff_t)h * m->sh + (ptrdiff_t)i * m->sq;
    double mx = -INFINITY;
    for (int j = 0; j < d->Tk; j++) {
        const float *kj = ROW(k, d->k, b, h, j);
        double acc = 0;
        for (int c = 0; c < d->D; c++) acc += (double)qi[c] * kj[c];
        acc *= scale;
        if (m->add) acc += m->add[moff + j];
        if ((m->keep && !m->keep[moff + j]) || (d->causal && j > i)) acc = -INFINITY;
        s[j] = acc;
        if (acc > mx) mx = acc;
    }
    return mx;
}

/* Softmax of the scores in place; returns lse (-inf if all hidden). */
static double ref_softmax(double *s, int n, double mx)
{
    if (mx == -INFINITY) {
        for (int j = 0; j < n; j++) s[j] = 0;
        return -INFINITY;
    }
    double sum = 0;
    for (int j = 0; j < n; j++) sum += (s[j] = exp(s[j] - mx));
    for (int j = 0; j < n; j++) s[j] /= sum;
    return mx + log(sum);
}

it_status it_attn_forward_ref(it_err *err, float *o, float *lse, const float *q, const float *k,
                              const float *v, const it_attn_desc *d)
{
    IT_TRY(check_desc(err, d));
    CHECK_PTR(o);
    CHECK_PTR(q);
    CHECK_PTR(k);
    CHECK_PTR(v);
    double *s = it_malloc((size_t)d->Tk * sizeof(double));
    if (!s) return it_err_set(err, IT_ERR_NOMEM, "attention reference: no memory");
    const double scale = desc_scale(d);
    for (int b = 0; b < d->B; b++)
        for (int h = 0; h < d->n_heads; h++)
            for (int i = 0; i < d->Tq; i++) {
                double l = ref_softmax(s, d->Tk, ref_scores(s, q, k, d, scale, b, h, i));
                if (lse) lse[((size_t)b * d->n_heads + h) * d->Tq + i] = (float)l;
                float *oi = ROW(o, d->o, b, h, i);
                for (int c = 0; c < d->D; c++) {
                    double acc = 0;
                    for (int j = 0; j < d->Tk; j++) acc += s[j] * ROW(v, d->v, b, h, j)[c];
                    oi[c] = (float)acc;
                }
            }
    it_free(s);
    return IT_OK;
}

/* Reference backward of one (b, h): P (Tq, Tk) materialised; g holds the
 * double accumulators dK (Tk, D), dV (Tk, D) and one dS row (Tk). */
static void ref_backward_bh(double *P, double *g, float *dq, float *dk, float *dv,
                            const float *dout, const float *q, const float *k, const float *v,
                            const it_attn_desc *d, double scale, int b, int h)
{
    const int Tq = d->Tq, Tk = d->Tk, D = d->D;
    double *gk = g, *gv = g + (size_t)Tk * D, *ds = gv + (size_t)Tk * D;
    memset(g, 0, 2 * (size_t)Tk * D * sizeof(double));
    for (int i = 0; i < Tq; i++) {
        double *p = P + (size_t)i * Tk;
        ref_softmax(p, Tk, ref_scores(p, q, k, d, scale, b, h, i));
    }
    for (int i = 0; i < Tq; i++) {
        const double *p = P + (size_t)i * Tk;
        const float *doi = ROW(dout, d->o, b, h, i), *qi = ROW(q, d->q, b, h, i);
        double delta = 0;
        for (int j = 0; j < Tk; j++) { /* dP_ij = dO_i . V_j; delta = sum_j P_ij dP_ij */
            const float *vj = ROW(v, d->v, b, h, j);
            double dp = 0;
            for (int c = 0; c < D; c++) dp += (double)doi[c] * vj[c];
            ds[j] = dp;
            delta += p[j] * dp;
        }
        for (int j = 0; j < Tk; j++) ds[j] = p[j] * (ds[j] - delta);
        float *dqi = ROW(dq, d->q, b, h, i);
        for (int c = 0; c < D; c++) {
            double acc = 0;
            for (int j = 0; j < Tk; j++) acc += ds[j] * ROW(k, d->k, b, h, j)[c];
            dqi[c] = (float)((d->accumulate ? dqi[c] : 0) + scale * acc);
        }
        for (int j = 0; j < Tk; j++)
            for (int c = 0; c < D; c++) {
                gv[(size_t)j * D + c] += p[j] * doi[c];
                gk[(size_t)j * D + c] += scale * ds[j] * qi[c];
            }
    }
    for (int j = 0; j < Tk; j++) {
        float *dkj = ROW(dk, d->k, b, h, j), *dvj = ROW(dv, d->v, b, h, j);
        for (int c = 0; c < D; c++) {
            dkj[c] = (float)((d->accumulate ? dkj[c] : 0) + gk[(size_t)j * D + c]);
            dvj[c] = (float)((d->accumulate ? dvj[c] : 0) + gv[(size_t)j * D + c]);
        }
    }
}

it_status it_attn_backward_ref(it_err *err, float *dq, float *dk, float *dv, const float *dout,
                               const float *q, const float *k, const float *v,
                               const it_attn_desc *d)
{
    IT_TRY(check_desc(err, d));
    CHECK_PTR(dq);
    CHECK_PTR(dk);
    CHECK_PTR(dv);
    CHECK_PTR(dout);
    CHECK_PTR(q);
    CHECK_PTR(k);
    CHECK_PTR(v);
    size_t np = (size_t)d->Tq * d->Tk, ng = (2 * (size_t)d->D + 1) * d->Tk;
    double *buf = it_malloc((np + ng) * sizeof(double));
    if (!buf) return it_err_set(err, IT_ERR_NOMEM, "attention reference backward: no memory");
    const double scale = desc_scale(d);
    for (int b = 0; b < d->B; b++)
        for (int h = 0; h < d->n_heads; h++)
            ref_backward_bh(buf, buf + np, dq, dk, dv, dout, q, k, v, d, scale, b, h);
    it_free(buf);
    return IT_OK;
}
