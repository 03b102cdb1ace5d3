/* ops_eltwise.c: activations, broadcasting add/sub/mul, exp, scale, dropout.
 *
 * Broadcasting plan: shapes are aligned at the last dim, then adjacent dims
 * that are laid out contiguously in both inputs are merged, so common cases
 * collapse to one or two dims (a bias over (N, C, H, W) per channel becomes
 * (N*C, H*W) with strides (1, 0) for the bias). Backward into an input that
 * was broadcast is a reduction and runs serially over rows to stay race-free;
 * into a full-size input it runs in parallel. */
#include "tensor/ops_eltwise.h"

#include <math.h>
#include <string.h>

#include "base/rng.h"
#include "tensor/ops_common.h"
#include "tensor/ops_math.h"

/* ---------------------------------------------------------------- activations */

#define SQRT1_2 0.70710678118654752440
#define INV_SQRT_2PI 0.39894228040143267794
#define SQRT_2_PI 0.79788456080286535588
#define GELU_C 0.044715

double it_act_ref(it_act act, double x)
{
    switch (act) {
    case IT_ACT_SILU: return x / (1 + exp(-x));
    case IT_ACT_GELU: return 0.5 * x * (1 + erf(x * SQRT1_2));
    case IT_ACT_GELU_TANH: return 0.5 * x * (1 + tanh(SQRT_2_PI * (x + GELU_C * x * x * x)));
    case IT_ACT_QUICK_GELU: return x / (1 + exp(-1.702 * x));
    default: return 0;
    }
}

double it_act_grad_ref(it_act act, double x)
{
    switch (act) {
    case IT_ACT_SILU: {
        double s = 1 / (1 + exp(-x));
        return s * (1 + x * (1 - s));
    }
    case IT_ACT_GELU: return 0.5 * (1 + erf(x * SQRT1_2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
    case IT_ACT_GELU_TANH: {
        double t = tanh(SQRT_2_PI * (x + GELU_C * x * x * x));
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_PI * (1 + 3 * GELU_C * x * x);
    }
    case IT_ACT_QUICK_GELU: {
        double s = 1 / (1 + exp(-1.702 * x));
        return s + 1.702 * x * s * (1 - s);
    }
    default: return 0;
    }
}

static inline float f_silu(float x) { return x * it_fsigmoid(x); }
static inline float f_gelu(float x) { return 0.5f * x * (1.0f + it_ferf(x * (float)SQRT1_2)); }
static inline float f_gelu_tanh(float x)
{
    return 0.5f * x * (1.0f + it_ftanh((float)SQRT_2_PI * (x + (float)GELU_C * x * x * x)));
}
static inline float f_quick_gelu(float x) { return x * it_fsigmoid(1.702f * x); }

static inline float df_silu(float x)
{
    float s = it_fsigmoid(x);
    return s * (1.0f + x * (1.0f - s));
}
static inline float df_gelu(float x)
{
    return 0.5f * (1.0f + it_ferf(x * (float)SQRT1_2)) + x * (float)INV_SQRT_2PI * it_fexp(-0.5f * x * x);
}
static inline float df_gelu_tanh(float x)
{
    float t = it_ftanh((float)SQRT_2_PI * (x + (float)GELU_C * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * (float)SQRT_2_PI * (1.0f + 3.0f * (float)GELU_C * x * x);
}
static inline float df_quick_gelu(float x)
{
    float s = it_fsigmoid(1.702f * x);
    return s + 1.702f * x * s * (1.0f - s);
}

/* One loop per activation so that each body is branch-free and vectorises. */
#define ACT_CHUNK 4096
#define ACT_LOOP(kind, expr)                                                        \
    case kind: {                                                                    \
        _Pragma("omp parallel for if (n > IT_PAR_MIN) schedule(static)")           \
        for (int64_t c0 = 0; c0 < n; c0 += ACT_CHUNK) {                             \
            int64_t c1 = c0 + ACT_CHUNK < n ? c0 + ACT_CHUNK : n;                   \
            _Pragma("omp simd")                                                     \
            for (int64_t i = c0; i < c1; i++) expr;                                 \
        }                                                                           \
        break;                                                                      \
    }

void it_cpu_act_fwd(it_act act, float *y, const float *x, int64_t n)
{
    switch (act) {
        ACT_LOOP(IT_ACT_SILU, y[i] = f_silu(x[i]))
        ACT_LOOP(IT_ACT_GELU, y[i] = f_gelu(x[i]))
        ACT_LOOP(IT_ACT_GELU_TANH, y[i] = f_gelu_tanh(x[i]))
        ACT_LOOP(IT_ACT_QUICK_GELU, y[i] = f_quick_gelu(x[i]))
    default: break;
    }
}

void it_cpu_act_bwd(it_act act, float *dx, const float *dy, const float *x, int64_t n)
{
    switch (act) {
        ACT_LOOP(IT_ACT_SILU, dx[i] += dy[i] * df_silu(x[i]))
        ACT_LOOP(IT_ACT_GELU, dx[i] += dy[i] * df_gelu(x[i]))
        ACT_LOOP(IT_ACT_GELU_TANH, dx[i] += dy[i] * df_gelu_tanh(x[i]))
        ACT_LOOP(IT_ACT_QUICK_GELU, dx[i] += dy[i] * df_quick_gelu(x[i]))
    default: break;
    }
}

static void act_backward(it_ctx *ctx, it_node *n)
{
    float *gx = it_autograd_grad(ctx, n->in[0]);
    if (gx) it_cpu_act_bwd((it_act)n->iarg[0], gx, n->out->grad, n->in[0]->data, n->out->n);
}

it_tensor *it_op_act(it_ctx *ctx, it_tensor *x, it_act act)
{
    if (it_ops_skip(ctx, 1, &x)) return NULL;
    if (!it_ops_need_f32(ctx, "activation", x)) return NULL;
    if ((int)act < 0 || act >= IT_ACT_COUNT) return it_ctx_fail(ctx, IT_ERR_ARG, "activation: unknown kind %d", (int)act);
    it_tensor *y = it_ops_out(ctx, x->ndim, x->shape);
    if (!y) return NULL;
    it_cpu_act_fwd(act, y->data, x->data, x->n);
    it_node *n = it_autograd_record(ctx, y, "act", act_backward, 1, &x);
    if (n) n->iarg[0] = act;
    return y;
}

/* ---------------------------------------------------------------- GEGLU */

static void geglu_backward(it_ctx *ctx, it_node *n)
{
    float *gx = it_autograd_grad(ctx, n->in[0]);
    if (!gx) return;
    int64_t D = n->out->shape[n->out->ndim - 1], rows = D ? n->out->n / D : 0;
    const float *X = n->in[0]->data, *gy = n->out->grad;
    #pragma omp parallel for if (n->out->n > IT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *h = X + r * 2 * D, *g = h + D, *dy = gy + r * D;
        float *dh = gx + r * 2 * D, *dg = dh + D;
        #pragma omp simd
        for (int64_t j = 0; j < D; j++) {
            dh[j] += dy[j] * f_gelu(g[j]);
            dg[j] += dy[j] * h[j] * df_gelu(g[j]);
        }
    }
}

it_tensor *it_op_geglu(it_ctx *ctx, it_tensor *x)
{
    if (it_ops_skip(ctx, 1, &x)) return NULL;
    if (!it_ops_need_f32(ctx, "geglu", x)) return NULL;
    if (x->ndim < 1 || x->shape[x->ndim - 1] % 2)
        return it_ops_shape_error(ctx, "geglu", x, "last dim must be even");
    int64_t shape[IT_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    int64_t D = shape[x->ndim - 1] /= 2;
    it_tensor *y = it_ops_out(ctx, x->ndim, shape);
    if (!y) return NULL;
    int64_t rows = D ? y->n / D : 0;
    const float *X = x->data;
    float *Y = y->data;
    #pragma omp parallel for if (y->n > IT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        #pragma omp simd
        for (int64_t j = 0; j < D; j++)
            Y[r * D + j] = X[r * 2 * D + j] * f_gelu(X[r * 2 * D + D + j]);
    }
    it_autograd_record(ctx, y, "geglu", geglu_backward, 1, &x);
    return y;
}

/* ---------------------------------------------------------------- broadcasting */

typedef struct bplan {
    int nd;                      /* collapsed rank (>= 1) */
    int64_t shape[IT_MAX_DIMS];  /* collapsed output shape */
    int64_t s[2][IT_MAX_DIMS];   /* element strides of a and b (0 = broadcast) */
} bplan;

enum { B_ADD, B_SUB, B_MUL };

/* Fills the plan and the output shape; 0 when the shapes do not broadcast. */
static int bplan_make(bplan *p, int *out_nd, int64_t *out_shape, const it_tensor *a, const it_tensor *b)
{
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t sh[IT_MAX_DIMS], st[2][IT_MAX_DIMS];
    const it_tensor *t[2] = {a, b};
    for (int i = 0; i < nd; i++) {
        int64_t da = i - (nd - a->ndim) >= 0 ? a->shape[i - (nd - a->ndim)] : 1;
        int64_t db = i - (nd - b->ndim) >= 0 ? b->shape[i - (nd - b->ndim)] : 1;
        if (da != db && da != 1 && db != 1) return 0;
        sh[i] = da == 1 ? db : da;
    }
    for (int k = 0; k < 2; k++) {
        int64_t stride = 1;
        for (int i = nd - 1; i >= 0; i--) {
            int j = i - (nd - t[k]->ndim);
            int64_t d = j >= 0 ? t[k]->shape[j] : 1;
            st[k][i] = (d == 1) ? 0 : stride;
            stride *= d;
        }
    }
    *out_nd = nd;
    memcpy(out_shape, sh, sizeof(int64_t) * (size_t)nd);
    /* Collapse from the right: drop size-1 dims, merge contiguous neighbours. */
    int m = 0;
    for (int i = nd - 1; i >= 0; i--) {
        if (sh[i] == 1) continue;
        if (m > 0 && st[0][i] == st[0][m - 1] * p->shape[m - 1] && st[1][i] == st[1][m - 1] * p->shape[m - 1]) {
            p->shape[m - 1] *= sh[i];
            continue;
        }
        p->shape[m] = sh[i], p->s[0][m] = st[0][i], p->s[1][m] = st[1][i];
        m++;
    }
    if (m == 0) p->shape[0] = 1, p->s[0][0] = p->s[1][0] = 0, m = 1;
    /* Reverse into row-major order (outermost first). */
    for (int i = 0; i < m / 2; i++) {
        int j = m - 1 - i;
        int64_t x = p->shape[i]; p->shape[i] = p->shape[j]; p->shape[j] = x;
        for (int k = 0; k < 2; k++) { x = p->s[k][i]; p->s[k][i] = p->s[k][j]; p->s[k][j] = x; }
    }
    p->nd = m;
    return 1;
}

static inline void row_offsets(const bplan *p, int64_t r, int64_t *oa, int64_t *ob)
{
    int64_t a = 0, b = 0;
    for (int i = p->nd - 2; i >= 0; i--) {
        int64_t k = r % p->shape[i];
        r /= p->shape[i];
        a += k * p->s[0][i], b += k * p->s[1][i];
    }
    *oa = a, *ob = b;
}

static void bcast_fwd(const bplan *p, int op, float *y, const float *a, const float *b)
{
    int64_t L = p->shape[p->nd - 1], la = p->s[0][p->nd - 1], lb = p->s[1][p->nd - 1];
    int64_t rows = 1;
    for (int i = 0; i < p->nd - 1; i++) rows *= p->shape[i];
    #pragma omp parallel for if (rows * L > IT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t oa, ob;
        row_offsets(p, r, &oa, &ob);
        const float *pa = a + oa, *pb = b + ob;
        float *py = y + r * L;
        if (op == B_ADD) for (int64_t j = 0; j < L; j++) py[j] = pa[j * la] + pb[j * lb];
        else if (op == B_SUB) for (int64_t j = 0; j < L; j++) py[j] = pa[j * la] - pb[j * lb];
        else for (int64_t j = 0; j < L; j++) py[j] = pa[j * la] * pb[j * lb];
    }
}

/* g_k += d(op)/d(input k) * gy, reduced over k's broadcast dims. */
static void bcast_bwd(const bplan *p, int op, int k, int full, float *g, const float *gy, const float *other)
{
    int64_t L = p->shape[p->nd - 1], ls = p->s[k][p->nd - 1], lo = p->s[1 - k][p->nd - 1];
    int64_t rows = 1;
    for (int i = 0; i < p->nd - 1; i++) rows *= p->shape[i];
    float sign = (op == B_SUB && k == 1) ? -1.0f : 1.0f;
    #pragma omp parallel for if (full && rows * L > IT_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t off[2];
        row_offsets(p, r, &off[0], &off[1]);
        float *pg = g + off[k];
        const float *dy = gy + r * L, *po = op == B_MUL ? other + off[1 - k] : NULL;
        if (ls == 0) {
            float s = 0;
            if (po) for (int64_t j = 0; j < L; j++) s += dy[j] * po[j * lo];
            else for (int64_t j = 0; j < L; j++) s += dy[j];
            pg[0] += sign * s;
        } else if (po) {
            for (int64_t j = 0; j < L; j++) pg[j * ls] += dy[j] * po[j * lo];
        } else {
            for (int64_t j = 0; j < L; j++) pg[j * ls] += sign * dy[j];
        }
    }
}

static void binary_backward(it_ctx *ctx, it_node *n)
{
    it_tensor *a = n->in[0], *b = n->in[1];
    int op = (int)n->iarg[0];
    bplan p;
    int nd;
    int64_t shape[IT_MAX_DIMS];
    bplan_make(&p, &nd, shape, a, b);
    float *g[2] = {it_autograd_grad(ctx, a), it_autograd_grad(ctx, b)};
    const it_tensor *t[2] = {a, b};
    for (int k = 0; k < 2; k++)
        if (g[k]) bcast_bwd(&p, op, k, t[k]->n == n->out->n, g[k], n->out->grad, t[1 - k]->data);
}

static it_tensor *binary(it_ctx *ctx, it_tensor *a, it_tensor *b, int op, const char *name)
{
    it_tensor *in[2] = {a, b};
    if (it_ops_skip(ctx, 2, in)) return NULL;
    if (!it_ops_need_f32(ctx, name, a) || !it_ops_need_f32(ctx, name, b)) return NULL;
    bplan p;
    int nd;
    int64_t shape[IT_MAX_DIMS];
    if (!bplan_make(&p, &nd, shape, a, b)) {
        char sa[96], sb[96];
        return it_ctx_fail(ctx, IT_ERR_ARG, "%s: shapes %s and %s do not broadcast", name,
                           it_tensor_shape_str(a, sa, sizeof sa), it_tensor_shape_str(b, sb, sizeof sb));
    }
    it_tensor *y = it_ops_out(ctx, nd, shape);
    if (!y) return NULL;
    if (y->n) bcast_fwd(&p, op, y->data, a->data, b->data);
    it_node *n = it_autograd_record(ctx, y, name, binary_backward, 2, in);
    if (n) n->iarg[0] = op;
    return y;
}

it_tensor *it_op_add(it_ctx *ctx, it_tensor *a, it_tensor *b) { return binary(ctx, a, b, B_ADD, "add"); }
it_tensor *it_op_sub(it_ctx *ctx, it_tensor *a, it_tensor *b) { return binary(ctx, a, b, B_SUB, "sub"); }
it_tensor *it_op_mul(it_ctx *ctx, it_tensor *a, it_tensor *b) { return binary(ctx, a, b, B_MUL, "mul"); }

/* ---------------------------------------------------------------- exp */

/* dx += dy * y: the output is the derivative, so backward reads it. */
static void exp_backward(it_ctx *ctx, it_node *n)
{
    float *gx = it_autograd_grad(ctx, n->in[0]);
    if (!gx) return;
    const float *Y = n->out->data, *gy = n->out->grad;
    #pragma omp parallel for if (n->out->n > IT_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n->out->n; i++) gx[i] += gy[i] * Y[i];
}

it_tensor *it_op_exp(it_ctx *ctx, it_tensor *x)
{
    if (it_ops_skip(ctx, 1, &x)) return NULL;
    if (!it_ops_need_f32(ctx, "exp", x)) return NULL;
    it_tensor *y = it_ops_out(ctx, x->ndim, x->shape);
    if (!y) return NULL;
    const float *X = x->data;
    float *Y = y->data;
    #pragma omp parallel for if (x->n > IT_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < x->n; i++) Y[i] = expf(X[i]);
    it_autograd_record(ctx, y, "exp", exp_backward, 1, &x);
    return y;
}

/* ---------------------------------------------------------------- scale */

static void scale_backward(it_ctx *ctx, it_node *n)
{
    float *gx = it_autograd_grad(ctx, n->in[0]);
    if (!gx) return;
    float s = n->farg[0];
    const float *gy = n->out->grad;
    #pragma omp parallel for if (n->out->n > IT_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n->out->n; i++) gx[i] += s * gy[i];
}

it_tensor *it_op_scale(it_ctx *ctx, it_tensor *x, float s, float c)
{
    if (it_ops_skip(ctx, 1, &x)) return NULL;
    if (!it_ops_need_f32(ctx, "scale", x)) return NULL;
    it_tensor *y = it_ops_out(ctx, x->ndim, x->shape);
    if (!y) return NULL;
    const float *X = x->data;
    float *Y = y->data;
    #pragma omp parallel for if (x->n > IT_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < x->n; i++) Y[i] = X[i] * s + c;
    it_node *n = it_autograd_record(ctx, y, "scale", scale_backward, 1, &x);
    if (n) n->farg[0] = s;
    return y;
}

/* ---------------------------------------------------------------- dropout */

static void dropout_backward(it_ctx *ctx, it_node *n)
{
    float *gx = it_autograd_grad(ctx, n->in[0]);
    if (!gx) return;
    float p = n->farg[0], k = 1.0f / (1.0f - p);
    uint64_t seed = (uint64_t)n->iarg[0], off = (uint64_t)n->iarg[1];
    const float *gy = n->out->grad;
    #pragma omp parallel for if (n->out->n > IT_PAR_MIN / 16) schedule(static)
    for (int64_t i = 0; i < n->out->n; i++)
        if (it_rng_uniform_at(seed, off + (uint64_t)i) >= p) gx[i] += gy[i] * k;
}

it_tensor *it_op_dropout(it_ctx *ctx, it_tensor *x, float p)
{
    if (it_ops_skip(ctx, 1, &x)) return NULL;
    if (!it_ops_need_f32(ctx, "dropout", x)) return NULL;
    if (!(p >= 0 && p < 1)) return it_ctx_fail(ctx, IT_ERR_ARG, "dropout: p = %g outside [0, 1)", p);
    if (!ctx->training || p == 0) return x;
    it_tensor *y = it_ops_out(ctx, x->ndim, x->shape);
    if (!y) return NULL;
    uint64_t seed = ctx->seed, off = ctx->rng_offset;
    ctx->rng_offset += (uint64_t)x->n;
    float k = 1.0f / (1.0f - p);
    const float *X = x->data;
    float *Y = y->data;
    #pragma omp parallel for if (x->n > IT_PAR_MIN / 16) schedule(static)
    for (int64_t i = 0; i < x->n; i++) Y[i] = it_rng_uniform_at(seed, off + (uint64_t)i) >= p ? X[i] * k : 0.0f;
    it_node *n = it_autograd_record(ctx, y, "dropout", dropout_backward, 1, &x);
    if (n) n->iarg[0] = (int64_t)seed, n->iarg[1] = (int64_t)off, n->farg[0] = p;
    return y;
}
