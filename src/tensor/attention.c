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
 * The matrix products are single-threaded OpenBLAS sgemm calls inside our own
 * OpenMP loop over (batch, head, query block). OpenBLAS's OpenMP build runs
 * a call made inside a parallel region on the calling thread only, so the two
 * levels never oversubscribe (bench/attention.c measures the alternatives).
 * The exponentials, the other half of the cost, use an AVX2 polynomial exp
 * when the compiler targets AVX2+FMA and expf() otherwise.
 *
 * Backward (FlashAttention-2, arXiv 2307.08691, algorithm 2): per (batch,
 * head) and key block, loop over query blocks, recompute P = exp(S - lse),
 * and accumulate dV += P^T dO, dS = P * (dO V^T - rowsum(dO * O)),
 * dQ += scale dS K, dK += scale dS^T Q. */
#include "tensor/attention.h"

#include <cblas.h>
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
/* Row kernels: max, exp(x - m) with sum, scaling                            */
/* ------------------------------------------------------------------------ */

#ifdef IT_ATTN_AVX2
/* exp(x) for 8 floats: Cephes-style range reduction x = n ln2 + r, degree-6
 * polynomial on r, 2^n built in the exponent bits. Relative error about
 * 2 ulp; inputs below -87.3 (including -inf) return exactly 0. */
static inline __m256 exp8(__m256 x)
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

static inline float hmax8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

static float row_max(const float *x, int n)
{
    float m = -INFINITY;
    int j = 0;
#ifdef IT_ATTN_AVX2
    if (n >= 8) {
        __m256 vm = _mm256_loadu_ps(x);
        for (j = 8; j + 8 <= n; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + j));
        m = hmax8(vm);
    }
#endif
    for (; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* x[j] = exp(x[j] - m) in place; returns the sum. */
static float row_exp_sum(float *x, int n, float m)
{
    float s = 0.0f;
    int j = 0;
#ifdef IT_ATTN_AVX2
    __m256 vm = _mm256_set1_ps(m), vs = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm));
        _mm256_storeu_ps(x + j, e);
        vs = _mm256_add_ps(vs, e);
    }
    s = hsum8(vs);
#endif
    for (; j < n; j++) {
        x[j] = expf(x[j] - m);
        s += x[j];
    }
    return s;
}

static void row_scale(float *x, int n, float a)
{
    for (int j = 0; j < n; j++) x[j] *= a;
}

/* ------------------------------------------------------------------------ */
/* Masking of one score block                                                */
/* ------------------------------------------------------------------------ */

/* Whether any masking applies to the block of queries [i0, i0+mq) and keys
 * [j0, j0+nk); the causal rule only touches blocks that cross the diagonal. */
static int block_needs_mask(const it_attn_desc *d, int i0, int j0, int nk)
{
    if (d->mask.add || d->mask.keep) return 1;
    return d->causal && j0 + nk - 1 > i0;
}

/* Applies the additive mask, the boolean mask and the causal rule to row r
 * (query i) of a block of scaled scores starting at key j0. */
static void mask_row(float *s, int nk, const it_attn_desc *d, int b, int h, int i, int j0)
{
    const it_attn_mask *m = &d->mask;
    ptrdiff_t off = (ptrdiff_t)b * m->sb + (ptrdiff_t)h * m->sh + (ptrdiff_t)i * m->sq + j0;
    if (m->add) {
        const float *a = m->add + off;
        for (int c = 0; c < nk; c++) s[c] += a[c];
    }
    if (m->keep) {
        const uint8_t *k = m->keep + off;
        for (int c = 0; c < nk; c++)
            if (!k[c]) s[c] = -INFINITY;
    }
    if (d->causal) {
        int first_hidden = i - j0 + 1; /* keys j > i are hidden */
        for (int c = first_hidden < 0 ? 0 : first_hidden; c < nk; c++) s[c] = -INFINITY;
    }
}

/* ------------------------------------------------------------------------ */
/* Fast forward                                                              */
/* ------------------------------------------------------------------------ */

typedef struct fwd_ws {
    float *s;    /* (BQ, BK) scores, then probabilities */
    float *acc;  /* (BQ, D) unnormalised output */
    float *m;    /* (BQ) running row max */
    float *l;    /* (BQ) running row sum */
} fwd_ws;

static size_t fwd_ws_floats(int D) { return (size_t)IT_ATTN_BQ * (IT_ATTN_BK + D + 2); }

static fwd_ws fwd_ws_at(float *base, int D)
{
    fwd_ws w;
    w.s = base;
    w.acc = w.s + (size_t)IT_ATTN_BQ * IT_ATTN_BK;
    w.m = w.acc + (size_t)IT_ATTN_BQ * D;
    w.l = w.m + IT_ATTN_BQ;
    return w;
}

/* Folds one block of keys [j0, j0+nk) into the running state of queries
 * [i0, i0+mq) of (b, h). */
static void fwd_block(const fwd_ws *w, const float *q, const float *k, const float *v,
                      const it_attn_desc *d, float scale, int b, int h, int i0, int mq, int j0,
                      int nk)
{
    const int D = d->D;
    const float *qb = ROW(q, d->q, b, h, i0);
    const float *kb = ROW(k, d->k, b, h, j0);
    const float *vb = ROW(v, d->v, b, h, j0);
    /* S (mq, nk) = scale * Q (mq, D) K^T (D, nk) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mq, nk, D, scale, qb, (int)d->q.st, kb,
                (int)d->k.st, 0.0f, w->s, IT_ATTN_BK);
    int masked = block_needs_mask(d, i0, j0, nk);
    for (int r = 0; r < mq; r++) {
        float *s = w->s + (size_t)r * IT_ATTN_BK;
        if (masked) mask_row(s, nk, d, b, h, i0 + r, j0);
        float m_new = row_max(s, nk);
        if (w->m[r] > m_new) m_new = w->m[r];
        if (m_new == -INFINITY) { /* everything so far hidden: contributes nothing */
            memset(s, 0, (size_t)nk * sizeof(float));
            continue;
        }
        float alpha = expf(w->m[r] - m_new); /* 0 on the first visible block */
        float sum = row_exp_sum(s, nk, m_new);
        w->l[r] = w->l[r] * alpha + sum;
        if (alpha != 1.0f) row_scale(w->acc + (size_t)r * D, D, alpha);
        w->m[r] = m_new;
    }
    /* acc (mq, D) += P (mq, nk) V (nk, D) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mq, D, nk, 1.0f, w->s, IT_ATTN_BK, vb,
                (int)d->v.st, 1.0f, w->acc, D);
}

static void fwd_task(const fwd_ws *w, float *o, float *lse, const float *q, const float *k,
                     const float *v, const it_attn_desc *d, float scale, int b, int h, int i0)
{
    const int D = d->D;
    int mq = d->Tq - i0 < IT_ATTN_BQ ? d->Tq - i0 : IT_ATTN_BQ;
    for (int r = 0; r < mq; r++) w->m[r] = -INFINITY, w->l[r] = 0.0f;
    memset(w->acc, 0, (size_t)mq * D * sizeof(float));
    /* causal: query i0+mq-1 is the last one, it sees keys up to itself */
    int kend = d->causal && i0 + mq < d->Tk ? i0 + mq : d->Tk;
    for (int j0 = 0; j0 < kend; j0 += IT_ATTN_BK) {
        int nk = kend - j0 < IT_ATTN_BK ? kend - j0 : IT_ATTN_BK;
        fwd_block(w, q, k, v, d, scale, b, h, i0, mq, j0, nk);
    }
    for (int r = 0; r < mq; r++) {
        float *orow = ROW(o, d->o, b, h, i0 + r);
        const float *acc = w->acc + (size_t)r * D;
        float inv = w->l[r] > 0.0f ? 1.0f / w->l[r] : 0.0f;
        for (int c = 0; c < D; c++) orow[c] = acc[c] * inv;
        if (lse) {
            size_t li = ((size_t)b * d->n_heads + h) * d->Tq + i0 + r;
            lse[li] = w->l[r] > 0.0f ? w->m[r] + logf(w->l[r]) : -INFINITY;
        }
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

typedef struct bwd_ws {
    float *p;   /* (BQ, BK) probabilities, then dS */
    float *dp;  /* (BQ, BK) dO V^T */
    float *dk;  /* (BK, D) accumulated dK of the key block */
    float *dv;  /* (BK, D) accumulated dV of the key block */
} bwd_ws;

static size_t bwd_ws_floats(int D)
{
    return 2 * (size_t)IT_ATTN_BQ * IT_ATTN_BK + 2 * (size_t)IT_ATTN_BK * D;
}

static bwd_ws bwd_ws_at(float *base, int D)
{
    bwd_ws w;
    w.p = base;
    w.dp = w.p + (size_t)IT_ATTN_BQ * IT_ATTN_BK;
    w.dk = w.dp + (size_t)IT_ATTN_BQ * IT_ATTN_BK;
    w.dv = w.dk + (size_t)IT_ATTN_BK * D;
    return w;
}

/* Inputs of the backward shared by all tasks. */
typedef struct bwd_args {
    const it_attn_desc *d;
    float scale;
    const float *q, *k, *v, *dout, *lse;
    const float *delta; /* (B, H, Tq) rowsum(dO * O) */
    float *dq, *dk, *dv;
    float *dq_part;     /* (B*H*nsplit, Tq, D) private dq partials, or NULL */
    int nsplit;         /* key-block ranges per (b, h) */
} bwd_args;

/* P = exp(S - lse) for the rows of one block, masked entries 0. */
static void bwd_probs(const bwd_ws *w, const bwd_args *a, int b, int h, int i0, int mq, int j0,
                      int nk)
{
    const it_attn_desc *d = a->d;
    const float *lse = a->lse + ((size_t)b * d->n_heads + h) * d->Tq + i0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mq, nk, d->D, a->scale,
                ROW(a->q, d->q, b, h, i0), (int)d->q.st, ROW(a->k, d->k, b, h, j0), (int)d->k.st,
                0.0f, w->p, IT_ATTN_BK);
    int masked = block_needs_mask(d, i0, j0, nk);
    for (int r = 0; r < mq; r++) {
        float *p = w->p + (size_t)r * IT_ATTN_BK;
        if (masked) mask_row(p, nk, d, b, h, i0 + r, j0);
        if (lse[r] == -INFINITY) memset(p, 0, (size_t)nk * sizeof(float));
        else row_exp_sum(p, nk, lse[r]);
    }
}

/* One (query block, key block) step of the backward. dq_rows/ld_dq: where
 * this task accumulates dQ for rows i0.. (the real dq or a private part). */
static void bwd_block(const bwd_ws *w, const bwd_args *a, int b, int h, int i0, int mq, int j0,
                      int nk, float *dq_rows, int ld_dq)
{
    const it_attn_desc *d = a->d;
    const int D = d->D;
    const float *qb = ROW(a->q, d->q, b, h, i0);
    const float *kb = ROW(a->k, d->k, b, h, j0);
    const float *vb = ROW(a->v, d->v, b, h, j0);
    const float *dob = ROW(a->dout, d->o, b, h, i0);
    const float *delta = a->delta + ((size_t)b * d->n_heads + h) * d->Tq + i0;
    bwd_probs(w, a, b, h, i0, mq, j0, nk);
    /* dV (nk, D) += P^T (nk, mq) dO (mq, D) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, mq, 1.0f, w->p, IT_ATTN_BK, dob,
                (int)d->o.st, 1.0f, w->dv, D);
    /* dP (mq, nk) = dO (mq, D) V^T (D, nk) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mq, nk, D, 1.0f, dob, (int)d->o.st, vb,
                (int)d->v.st, 0.0f, w->dp, IT_ATTN_BK);
    /* dS = P * (dP - delta), in place over P */
    for (int r = 0; r < mq; r++) {
        float *p = w->p + (size_t)r * IT_ATTN_BK;
        const float *dp = w->dp + (size_t)r * IT_ATTN_BK;
        float dr = delta[r];
        for (int c = 0; c < nk; c++) p[c] = p[c] * (dp[c] - dr);
    }
    /* dQ (mq, D) += scale dS (mq, nk) K (nk, D) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mq, D, nk, a->scale, w->p, IT_ATTN_BK,
                kb, (int)d->k.st, 1.0f, dq_rows, ld_dq);
    /* dK (nk, D) += scale dS^T (nk, mq) Q (mq, D) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, mq, a->scale, w->p, IT_ATTN_BK, qb,
                (int)d->q.st, 1.0f, w->dk, D);
}

/* Writes or adds an (n, D) block into rows of a strided gradient. */
static void store_rows(float *dst, ptrdiff_t ld, const float *src, int n, int D, int add)
{
    for (int r = 0; r < n; r++) {
        float *o = dst + (ptrdiff_t)r * ld;
        const float *s = src + (size_t)r * D;
        if (add)
            for (int c = 0; c < D; c++) o[c] += s[c];
        else
            memcpy(o, s, (size_t)D * sizeof(float));
    }
}

/* Key blocks [kb0, kb1) of (b, h). */
static void bwd_task(const bwd_ws *w, const bwd_args *a, int b, int h, int kb0, int kb1,
                     float *dq_base, ptrdiff_t dq_ld)
{
    const it_attn_desc *d = a->d;
    const int D = d->D;
    for (int kb = kb0; kb < kb1; kb++) {
        int j0 = kb * IT_ATTN_BK;
        int nk = d->Tk - j0 < IT_ATTN_BK ? d->Tk - j0 : IT_ATTN_BK;
        memset(w->dk, 0, (size_t)nk * D * sizeof(float));
        memset(w->dv, 0, (size_t)nk * D * sizeof(float));
        /* causal: queries before j0 see none of these keys */
        int qstart = d->causal ? (j0 / IT_ATTN_BQ) * IT_ATTN_BQ : 0;
        for (int i0 = qstart; i0 < d->Tq; i0 += IT_ATTN_BQ) {
            int mq = d->Tq - i0 < IT_ATTN_BQ ? d->Tq - i0 : IT_ATTN_BQ;
            bwd_block(w, a, b, h, i0, mq, j0, nk, dq_base + (ptrdiff_t)i0 * dq_ld, (int)dq_ld);
        }
        store_rows(ROW(a->dk, d->k, b, h, j0), d->k.st, w->dk, nk, D, d->accumulate);
        store_rows(ROW(a->dv, d->v, b, h, j0), d->v.st, w->dv, nk, D, d->accumulate);
    }
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

/* Zeroes the dq rows of every (b, h) (non-accumulating backward). */
static void zero_dq(float *dq, const it_attn_desc *d)
{
    for (int b = 0; b < d->B; b++)
        for (int h = 0; h < d->n_heads; h++)
            for (int i = 0; i < d->Tq; i++)
                memset(ROW(dq, d->q, b, h, i), 0, (size_t)d->D * sizeof(float));
}

static void bwd_run(const bwd_args *a, float *ws, size_t per, int nthreads)
{
    const it_attn_desc *d = a->d;
    const int nkb = (d->Tk + IT_ATTN_BK - 1) / IT_ATTN_BK;
    const long ntasks = (long)d->B * d->n_heads * a->nsplit;
    const size_t part = (size_t)d->Tq * d->D;
#pragma omp parallel num_threads(nthreads)
    {
        bwd_ws w = bwd_ws_at(ws + (size_t)omp_get_thread_num() * per, d->D);
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < ntasks; t++) {
            int s = (int)(t % a->nsplit);
            long bh = t / a->nsplit;
            int b = (int)(bh / d->n_heads), h = (int)(bh % d->n_heads);
            int kb0 = (int)((long)nkb * s / a->nsplit), kb1 = (int)((long)nkb * (s + 1) / a->nsplit);
            if (a->dq_part) {
                float *dqp = a->dq_part + (size_t)t * part;
                memset(dqp, 0, part * sizeof(float));
                bwd_task(&w, a, b, h, kb0, kb1, dqp, d->D);
            } else {
                bwd_task(&w, a, b, h, kb0, kb1, ROW(a->dq, d->q, b, h, 0), d->q.st);
            }
        }
    }
    if (!a->dq_part) return;
    /* fixed-order reduction of the partials */
    for (long bh = 0; bh < (long)d->B * d->n_heads; bh++) {
        int b = (int)(bh / d->n_heads), h = (int)(bh % d->n_heads);
        for (int s = 0; s < a->nsplit; s++)
            store_rows(ROW(a->dq, d->q, b, h, 0), d->q.st, a->dq_part + (size_t)(bh * a->nsplit + s) * part,
                       d->Tq, d->D, 1);
    }
}

it_status it_attn_backward(it_err *err, float *dq, float *dk, float *dv, const float *dout,
                           const float *q, const float *k, const float *v, const float *o,
                           const float *lse, const it_attn_desc *d)
{
    IT_TRY(check_desc(err, d));
    CHECK_PTR(dq);
    CHECK_PTR(dk);
    CHECK_PTR(dv);
    CHECK_PTR(dout);
    CHECK_PTR(q);
    CHECK_PTR(k);
    CHECK_PTR(v);
    CHECK_PTR(o);
    CHECK_PTR(lse);
    int nthreads = omp_get_max_threads();
    bwd_args a = {.d = d, .scale = desc_scale(d), .q = q, .k = k, .v = v, .dout = dout,
                  .lse = lse, .dq = dq, .dk = dk, .dv = dv, .nsplit = bwd_nsplit(d)};
    size_t per = bwd_ws_floats(d->D);
    size_t rows = (size_t)d->B * d->n_heads * d->Tq;
    size_t parts = a.nsplit > 1 ? (size_t)d->B * d->n_heads * a.nsplit * d->Tq * d->D : 0;
    float *ws = it_malloc_aligned(((size_t)nthreads * per + rows + parts) * sizeof(float));
    if (!ws) return it_err_set(err, IT_ERR_NOMEM, "attention backward: no memory for workspaces");
    float *delta = ws + (size_t)nthreads * per;
    a.delta = delta;
    a.dq_part = parts ? delta + rows : NULL;
    bwd_delta(delta, dout, o, d);
    if (!d->accumulate) zero_dq(dq, d);
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
