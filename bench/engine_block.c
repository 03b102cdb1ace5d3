/* engine_block.c: one Stable-Diffusion-style UNet block on the engine
 * against PyTorch CPU: a ResBlock (GroupNorm-SiLU-Conv3x3, time-embedding
 * add, GroupNorm-SiLU-Conv3x3, skip) followed by a Transformer block
 * (GroupNorm, proj_in, LayerNorm+self-attention, LayerNorm+cross-attention
 * over a text context, LayerNorm+GEGLU feed-forward, proj_out, residual),
 * as diffusers' ResnetBlock2D + Transformer2DModel of SD 1.5.
 *
 * Shapes: "toy" (batch 8, 128 channels, 16x16, context 77x256, 4 heads) and
 * "sd15" (batch 1, 320 channels, 64x64, context 77x768, 8 heads). Modes:
 * forward without gradients; forward+backward with rank-4 LoRA adapters on
 * q/k/v/out of both attentions as the only trainable weights (also with
 * per-block checkpointing); forward+backward with every weight trainable.
 * Prints the median time and the compute context's peak memory; the
 * PyTorch side (bench/engine_block_torch.py, same block, F.scaled_dot_product_attention)
 * runs in the same process tree with the same thread count.
 *
 * usage: engine_block [toy|sd15|all] (default: all; sd15 takes minutes on 2 cores) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/threads.h"
#include "tensor/autograd.h"
#include "tensor/ops_attn.h"
#include "tensor/ops_conv.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_gemm.h"
#include "tensor/ops_loss.h"
#include "tensor/ops_norm.h"
#include "tensor/ops_shape.h"

#define LORA_RANK 4

char *openblas_get_config(void);
char *openblas_get_corename(void);

/* ---------------------------------------------------------------- parameters */

typedef struct wt {
    it_tensor t;
    float *data, *grad;
} wt;

static uint64_t g_seed = 1;
static size_t g_param_floats;

static void wt_init(wt *w, float std, int ndim, const int64_t *shape)
{
    int64_t n = it_shape_numel(ndim, shape);
    w->data = it_malloc_aligned((size_t)n * sizeof(float));
    w->grad = it_malloc_aligned((size_t)n * sizeof(float));
    if (!w->data || !w->grad) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    it_rng r;
    it_rng_init(&r, g_seed++);
    it_rng_normal(&r, w->data, (size_t)n, 0, std);
    it_tensor_init_param(NULL, &w->t, "w", w->data, NULL, ndim, shape);
    g_param_floats += (size_t)n;
}

static void wt_train(wt *w, int on)
{
    w->t.grad = on ? w->grad : NULL;
    w->t.requires_grad = (uint8_t)on;
    if (on) memset(w->grad, 0, (size_t)w->t.n * sizeof(float));
}

static void wt_free(wt *w) { it_free_aligned(w->data), it_free_aligned(w->grad); }

typedef struct lin {
    wt w, b, la, lb; /* weight (out, in), bias (out), LoRA down (r, in) and up (out, r) */
    int has_bias, has_lora;
} lin;

static void lin_init(lin *l, int64_t in, int64_t out, int bias, int lora)
{
    wt_init(&l->w, 1.0f / sqrtf((float)in), IT_SHAPE(out, in));
    l->has_bias = bias, l->has_lora = lora;
    if (bias) wt_init(&l->b, 0.02f, IT_SHAPE(out));
    if (lora) {
        wt_init(&l->la, 1.0f / sqrtf((float)in), IT_SHAPE(LORA_RANK, in));
        wt_init(&l->lb, 0.01f, IT_SHAPE(out, LORA_RANK));
    }
}

static it_tensor *lin_fwd(it_ctx *c, lin *l, it_tensor *x)
{
    it_tensor *y = it_op_linear(c, x, &l->w.t, l->has_bias ? &l->b.t : NULL);
    if (l->has_lora) y = it_op_add(c, y, it_op_linear(c, it_op_linear(c, x, &l->la.t, NULL), &l->lb.t, NULL));
    return y;
}

/* ---------------------------------------------------------------- the block */

typedef struct cfg {
    const char *name;
    int64_t B, C, H, W, T_ctx, D_ctx, heads;
    int repeat;
} cfg;

typedef struct block {
    cfg g;
    /* ResBlock */
    wt gn1_w, gn1_b, conv1_w, conv1_b, gn2_w, gn2_b, conv2_w, conv2_b;
    lin temb_proj;
    /* Transformer */
    wt gn_w, gn_b, proj_in_w, proj_in_b, proj_out_w, proj_out_b;
    wt ln1_w, ln1_b, ln2_w, ln2_b, ln3_w, ln3_b;
    lin q1, k1, v1, o1, q2, k2, v2, o2, ff1, ff2;
    it_tensor *context; /* (B, T_ctx, D_ctx), constant */
} block;

static wt *all_wts(block *b, wt **out)
{
    int n = 0;
    wt *plain[] = {&b->gn1_w, &b->gn1_b, &b->conv1_w, &b->conv1_b, &b->gn2_w, &b->gn2_b, &b->conv2_w, &b->conv2_b,
                   &b->gn_w, &b->gn_b, &b->proj_in_w, &b->proj_in_b, &b->proj_out_w, &b->proj_out_b,
                   &b->ln1_w, &b->ln1_b, &b->ln2_w, &b->ln2_b, &b->ln3_w, &b->ln3_b};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) out[n++] = plain[i];
    lin *ls[] = {&b->temb_proj, &b->q1, &b->k1, &b->v1, &b->o1, &b->q2, &b->k2, &b->v2, &b->o2, &b->ff1, &b->ff2};
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++) {
        out[n++] = &ls[i]->w;
        if (ls[i]->has_bias) out[n++] = &ls[i]->b;
        if (ls[i]->has_lora) out[n++] = &ls[i]->la, out[n++] = &ls[i]->lb;
    }
    out[n] = NULL;
    return out[0];
}

static int is_lora(block *b, wt *w)
{
    lin *ls[] = {&b->q1, &b->k1, &b->v1, &b->o1, &b->q2, &b->k2, &b->v2, &b->o2};
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++)
        if (w == &ls[i]->la || w == &ls[i]->lb) return 1;
    return 0;
}

static void block_init(block *b, const cfg *g)
{
    memset(b, 0, sizeof *b);
    b->g = *g;
    int64_t C = g->C, E = 4 * g->C;
    wt_init(&b->gn1_w, 0.1f, IT_SHAPE(C)), wt_init(&b->gn1_b, 0.1f, IT_SHAPE(C));
    wt_init(&b->conv1_w, 1.0f / sqrtf(9.0f * C), IT_SHAPE(C, C, 3, 3)), wt_init(&b->conv1_b, 0.02f, IT_SHAPE(C));
    lin_init(&b->temb_proj, E, C, 1, 0);
    wt_init(&b->gn2_w, 0.1f, IT_SHAPE(C)), wt_init(&b->gn2_b, 0.1f, IT_SHAPE(C));
    wt_init(&b->conv2_w, 1.0f / sqrtf(9.0f * C), IT_SHAPE(C, C, 3, 3)), wt_init(&b->conv2_b, 0.02f, IT_SHAPE(C));
    wt_init(&b->gn_w, 0.1f, IT_SHAPE(C)), wt_init(&b->gn_b, 0.1f, IT_SHAPE(C));
    wt_init(&b->proj_in_w, 1.0f / sqrtf((float)C), IT_SHAPE(C, C, 1, 1)), wt_init(&b->proj_in_b, 0.02f, IT_SHAPE(C));
    wt_init(&b->proj_out_w, 1.0f / sqrtf((float)C), IT_SHAPE(C, C, 1, 1)), wt_init(&b->proj_out_b, 0.02f, IT_SHAPE(C));
    wt *lns[] = {&b->ln1_w, &b->ln1_b, &b->ln2_w, &b->ln2_b, &b->ln3_w, &b->ln3_b};
    for (int i = 0; i < 6; i++) wt_init(lns[i], 0.1f, IT_SHAPE(C));
    lin_init(&b->q1, C, C, 0, 1), lin_init(&b->k1, C, C, 0, 1), lin_init(&b->v1, C, C, 0, 1), lin_init(&b->o1, C, C, 1, 1);
    lin_init(&b->q2, C, C, 0, 1), lin_init(&b->k2, g->D_ctx, C, 0, 1), lin_init(&b->v2, g->D_ctx, C, 0, 1);
    lin_init(&b->o2, C, C, 1, 1);
    lin_init(&b->ff1, C, 8 * C, 1, 0), lin_init(&b->ff2, 4 * C, C, 1, 0);
    /* Norm weights near 1 as in a trained model. */
    wt *ones[] = {&b->gn1_w, &b->gn2_w, &b->gn_w, &b->ln1_w, &b->ln2_w, &b->ln3_w};
    for (int i = 0; i < 6; i++)
        for (int64_t j = 0; j < C; j++) ones[i]->data[j] += 1.0f;
}

static void block_free(block *b)
{
    wt *w[64];
    all_wts(b, w);
    for (int i = 0; w[i]; i++) wt_free(w[i]);
}

/* in[0] = x (B, C, H, W), in[1] = temb (B, 4C) */
static it_tensor *resblock_fn(it_ctx *c, void *user, it_tensor *const *in)
{
    block *b = user;
    it_tensor *x = in[0];
    it_tensor *h = it_op_group_norm(c, x, &b->gn1_w.t, &b->gn1_b.t, 32, 1e-5f, 1);
    h = it_op_conv2d(c, h, &b->conv1_w.t, &b->conv1_b.t, 1, 1);
    it_tensor *e = lin_fwd(c, &b->temb_proj, it_op_silu(c, in[1]));
    h = it_op_add(c, h, it_op_reshape(c, e, IT_SHAPE(b->g.B, b->g.C, 1, 1)));
    h = it_op_group_norm(c, h, &b->gn2_w.t, &b->gn2_b.t, 32, 1e-5f, 1);
    h = it_op_conv2d(c, h, &b->conv2_w.t, &b->conv2_b.t, 1, 1);
    return it_op_add(c, x, h);
}

static it_tensor *attention(it_ctx *c, block *b, lin *q, lin *k, lin *v, lin *o, it_tensor *x, it_tensor *ctx_or_null)
{
    it_tensor *kv = ctx_or_null ? ctx_or_null : x;
    it_tensor *a = it_op_attention(c, lin_fwd(c, q, x), lin_fwd(c, k, kv), lin_fwd(c, v, kv), (int)b->g.heads, 0, 0.0f);
    return lin_fwd(c, o, a);
}

/* Transformer sub-blocks; checkpointing wraps each one (diffusers
 * checkpoints the whole BasicTransformerBlock; finer units keep less). */

/* in[0] = x (B, C, H, W) -> tokens (B, HW, C) */
static it_tensor *t_in_fn(it_ctx *c, void *user, it_tensor *const *in)
{
    block *b = user;
    it_tensor *h = it_op_group_norm(c, in[0], &b->gn_w.t, &b->gn_b.t, 32, 1e-6f, 0);
    h = it_op_conv2d(c, h, &b->proj_in_w.t, &b->proj_in_b.t, 1, 0);
    return it_op_transpose(c, it_op_reshape(c, h, IT_SHAPE(b->g.B, b->g.C, b->g.H * b->g.W)), 1, 2);
}

/* in[0] = tokens -> tokens + attn1(ln1(tokens)) */
static it_tensor *t_attn1_fn(it_ctx *c, void *user, it_tensor *const *in)
{
    block *b = user;
    it_tensor *n = it_op_layer_norm(c, in[0], &b->ln1_w.t, &b->ln1_b.t, 1e-5f);
    return it_op_add(c, in[0], attention(c, b, &b->q1, &b->k1, &b->v1, &b->o1, n, NULL));
}

/* in[0] = tokens, in[1] = context (B, T_ctx, D_ctx) */
static it_tensor *t_attn2_fn(it_ctx *c, void *user, it_tensor *const *in)
{
    block *b = user;
    it_tensor *n = it_op_layer_norm(c, in[0], &b->ln2_w.t, &b->ln2_b.t, 1e-5f);
    return it_op_add(c, in[0], attention(c, b, &b->q2, &b->k2, &b->v2, &b->o2, n, in[1]));
}

/* in[0] = tokens -> tokens + ff(ln3(tokens)), GEGLU */
static it_tensor *t_ff_fn(it_ctx *c, void *user, it_tensor *const *in)
{
    block *b = user;
    it_tensor *f = it_op_geglu(c, lin_fwd(c, &b->ff1, it_op_layer_norm(c, in[0], &b->ln3_w.t, &b->ln3_b.t, 1e-5f)));
    return it_op_add(c, in[0], lin_fwd(c, &b->ff2, f));
}

/* in[0] = tokens, in[1] = x (the block's input, residual) */
static it_tensor *t_out_fn(it_ctx *c, void *user, it_tensor *const *in)
{
    block *b = user;
    it_tensor *h = it_op_reshape(c, it_op_transpose(c, in[0], 1, 2), IT_SHAPE(b->g.B, b->g.C, b->g.H, b->g.W));
    h = it_op_conv2d(c, h, &b->proj_out_w.t, &b->proj_out_b.t, 1, 0);
    return it_op_add(c, h, in[1]);
}

/* ---------------------------------------------------------------- runs */

enum { M_FWD, M_LORA, M_LORA_CKPT, M_FULL, M_COUNT };
static const char *k_mode[M_COUNT] = {"forward", "lora_fwd_bwd", "lora_fwd_bwd_ckpt", "full_fwd_bwd"};

typedef struct run {
    block *b;
    it_ctx ctx;
    float *x, *temb, *gy;
    int mode;
    double checksum;
} run;

static void set_mode(block *b, int mode)
{
    wt *w[64];
    all_wts(b, w);
    for (int i = 0; w[i]; i++) wt_train(w[i], mode == M_FULL || ((mode == M_LORA || mode == M_LORA_CKPT) && is_lora(b, w[i])));
}

static void step(run *r)
{
    block *b = r->b;
    const cfg *g = &b->g;
    it_ctx *c = &r->ctx;
    it_ctx_reset(c);
    it_autograd_set_enabled(c, r->mode != M_FWD);
    it_tensor *x = it_tensor_wrap(c, r->x, IT_DTYPE_F32, IT_SHAPE(g->B, g->C, g->H, g->W));
    it_tensor *temb = it_tensor_wrap(c, r->temb, IT_DTYPE_F32, IT_SHAPE(g->B, 4 * g->C));
    it_tensor *in1[2] = {x, temb}, *h, *in2[2];
    int ck = r->mode == M_LORA_CKPT;
    static const it_block_fn parts[] = {t_in_fn, t_attn1_fn, t_attn2_fn, t_ff_fn, t_out_fn};
    /* Without gradients every unit runs in a scope that keeps only its
     * output: memory is bounded by the largest unit, not the whole block. */
    int scoped = r->mode == M_FWD;
    it_mark m = it_ctx_mark(c);
    h = ck ? it_autograd_checkpoint(c, resblock_fn, b, 2, in1) : resblock_fn(c, b, in1);
    if (scoped) h = it_ctx_keep(c, m, h);
    it_tensor *x1 = h;
    for (int i = 0; i < 5; i++) {
        in2[0] = h, in2[1] = i == 2 ? b->context : x1;
        m = it_ctx_mark(c);
        h = ck ? it_autograd_checkpoint(c, parts[i], b, 2, in2) : parts[i](c, b, in2);
        if (scoped) h = it_ctx_keep(c, m, h);
    }
    it_err err;
    if (!h) {
        it_ctx_status(c, &err);
        fprintf(stderr, "forward failed: %s\n", err.msg);
        exit(1);
    }
    if (r->mode != M_FWD) {
        h->grad = it_ctx_alloc(c, (size_t)h->n * sizeof(float));
        memcpy(h->grad, r->gy, (size_t)h->n * sizeof(float));
        if (it_autograd_backward(&err, c, h)) {
            fprintf(stderr, "backward failed: %s\n", err.msg);
            exit(1);
        }
    }
    r->checksum = 0;
    for (int64_t i = 0; i < h->n; i += 97) r->checksum += it_f32(h)[i];
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float *randbuf(size_t n, uint64_t seed)
{
    float *p = it_malloc_aligned(n * sizeof(float));
    if (!p) exit(1);
    it_rng r;
    it_rng_init(&r, seed);
    it_rng_normal(&r, p, n, 0, 1);
    return p;
}

typedef struct result {
    double ms[M_COUNT], torch_ms[M_COUNT], peak_mb[M_COUNT], torch_peak_mb[M_COUNT];
} result;

static void torch_side(const cfg *g, int threads, result *res)
{
    const char *py = getenv("IT_PYTHON");
    if (!py) py = "tools/.venv/bin/python";
    FILE *f = fopen(py, "r");
    if (!f) return;
    fclose(f);
    char cmd[1024], name[64];
    snprintf(cmd, sizeof cmd, "'%s' bench/engine_block_torch.py %s %d %d", py, g->name, threads, g->repeat);
    FILE *p = popen(cmd, "r");
    if (!p) return;
    double ms, mb;
    while (fscanf(p, "%63s %lf %lf", name, &ms, &mb) == 3)
        for (int m = 0; m < M_COUNT; m++)
            if (strcmp(name, k_mode[m]) == 0) res->torch_ms[m] = ms, res->torch_peak_mb[m] = mb;
    pclose(p);
}

static void bench_cfg(const cfg *g, int threads)
{
    block b;
    g_param_floats = 0;
    block_init(&b, g);
    run r = {.b = &b};
    it_ctx_init(&r.ctx, 0);
    r.x = randbuf((size_t)(g->B * g->C * g->H * g->W), 1001);
    r.temb = randbuf((size_t)(g->B * 4 * g->C), 1002);
    r.gy = randbuf((size_t)(g->B * g->C * g->H * g->W), 1003);
    float *ctxd = randbuf((size_t)(g->B * g->T_ctx * g->D_ctx), 1004);
    it_tensor ctx_t;
    it_tensor_init_param(NULL, &ctx_t, "context", ctxd, NULL, IT_SHAPE(g->B, g->T_ctx, g->D_ctx));
    b.context = &ctx_t;
    result res;
    for (int m = 0; m < M_COUNT; m++) res.torch_ms[m] = res.torch_peak_mb[m] = -1;
    double sums[M_COUNT];
    for (int m = 0; m < M_COUNT; m++) {
        r.mode = m;
        set_mode(&b, m);
        step(&r); /* warm-up: the context reaches its steady-state blocks */
        it_ctx_reset(&r.ctx);
        r.ctx.peak = 0;
        double t[16];
        for (int i = 0; i < g->repeat; i++) {
            double t0 = it_time_now();
            step(&r);
            t[i] = (it_time_now() - t0) * 1e3;
        }
        qsort(t, (size_t)g->repeat, sizeof t[0], cmp_d);
        res.ms[m] = t[g->repeat / 2];
        res.peak_mb[m] = (double)r.ctx.peak / (1 << 20);
        sums[m] = r.checksum;
    }
    /* LoRA with and without checkpointing must agree on the adapters' gradients. */
    torch_side(g, threads, &res);
    printf("\n%s: batch %lld, %lld channels, %lldx%lld, context %lldx%lld, %lld heads, %.1f M parameters, %d threads\n",
           g->name, (long long)g->B, (long long)g->C, (long long)g->H, (long long)g->W, (long long)g->T_ctx,
           (long long)g->D_ctx, (long long)g->heads, g_param_floats / 1e6, threads);
    printf("%-20s %10s %12s %10s %12s %7s\n", "mode", "ours ms", "ours peak MB", "torch ms", "torch peak MB", "speedup");
    for (int m = 0; m < M_COUNT; m++) {
        printf("%-20s %10.1f %12.1f", k_mode[m], res.ms[m], res.peak_mb[m]);
        if (res.torch_ms[m] >= 0)
            printf(" %10.1f %12.1f %6.2fx\n", res.torch_ms[m], res.torch_peak_mb[m], res.torch_ms[m] / res.ms[m]);
        else
            printf(" %10s\n", "skipped");
    }
    (void)sums;
    it_free_aligned(r.x), it_free_aligned(r.temb), it_free_aligned(r.gy), it_free_aligned(ctxd);
    it_ctx_free(&r.ctx);
    block_free(&b);
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "all";
    static const cfg cfgs[] = {
        {"toy", 8, 128, 16, 16, 77, 256, 4, 5},
        {"sd15", 1, 320, 64, 64, 77, 768, 8, 3},
    };
    int threads = it_threads_get();
    printf("engine_block: SD-style ResBlock + Transformer block, median of the runs after a warm-up\n");
    printf("BLAS: %s, kernels for %s\n", openblas_get_config(), openblas_get_corename());
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++)
        if (strcmp(which, "all") == 0 || strcmp(which, cfgs[i].name) == 0) bench_cfg(&cfgs[i], threads);
    return 0;
}
