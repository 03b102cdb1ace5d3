/* test_engine.c: the tensor context and autograd semantics (scopes, no-grad,
 * frozen parameters, gradient accumulation, checkpointing, sticky errors,
 * out-of-memory) and fast kernels against their reference kernels. */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "tensor/autograd.h"
#include "tensor/ops_attn.h"
#include "tensor/ops_conv.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_gemm.h"
#include "tensor/ops_loss.h"
#include "tensor/ops_norm.h"
#include "tensor/ops_shape.h"
#include "test.h"

/* A parameter with heap storage, filled with N(0, std). */
typedef struct tparam {
    it_tensor t;
    float *data, *grad;
} tparam;

static void tparam_init(tparam *p, uint64_t seed, float std, int trainable, int ndim, const int64_t *shape)
{
    int64_t n = it_shape_numel(ndim, shape);
    p->data = it_malloc((size_t)n * sizeof(float));
    p->grad = trainable ? it_calloc((size_t)n, sizeof(float)) : NULL;
    it_rng r;
    it_rng_init(&r, seed);
    it_rng_normal(&r, p->data, (size_t)n, 0, std);
    it_tensor_init_param(NULL, &p->t, "p", p->data, p->grad, ndim, shape);
}

static void tparam_free(tparam *p)
{
    it_free(p->data);
    it_free(p->grad);
}

static it_tensor *randn(it_ctx *ctx, uint64_t seed, int ndim, const int64_t *shape)
{
    it_tensor *x = it_tensor_new(ctx, IT_DTYPE_F32, ndim, shape);
    if (!x) return NULL;
    it_rng r;
    it_rng_init(&r, seed);
    it_rng_normal(&r, x->data, (size_t)x->n, 0, 1);
    return x;
}

/* ---------------------------------------------------------------- context */

IT_TEST(engine_ctx_keep_moves_output_down) {
    it_ctx ctx;
    it_ctx_init(&ctx, 4096); /* small blocks: the kept tensor crosses blocks */
    it_tensor *before = randn(&ctx, 1, IT_SHAPE(10));
    IT_REQUIRE(before);
    size_t used0 = ctx.used;
    it_mark m = it_ctx_mark(&ctx);
    for (int i = 0; i < 5; i++) IT_REQUIRE(randn(&ctx, 2, IT_SHAPE(700)));
    it_tensor *last = randn(&ctx, 3, IT_SHAPE(3, 300));
    IT_REQUIRE(last);
    float expect[900];
    memcpy(expect, last->data, sizeof expect);
    it_tensor *kept = it_ctx_keep(&ctx, m, last);
    IT_REQUIRE(kept);
    IT_CHECK(memcmp(kept->data, expect, sizeof expect) == 0);
    IT_CHECK_INT(kept->shape[1], 300);
    IT_CHECK(ctx.used < used0 + 900 * 4 + 512);
    IT_CHECK(ctx.peak > ctx.used);
    float b0 = it_f32(before)[0];
    it_ctx_reset(&ctx);
    IT_CHECK_INT(ctx.used, 0);
    (void)b0;
    it_ctx_free(&ctx);
}

IT_TEST(engine_sticky_error_names_the_problem) {
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_tensor *a = it_tensor_zeros(&ctx, IT_DTYPE_F32, IT_SHAPE(2, 3));
    it_tensor *b = it_tensor_zeros(&ctx, IT_DTYPE_F32, IT_SHAPE(4, 5));
    it_tensor *c = it_op_matmul(&ctx, a, b, 0, 0);
    IT_CHECK(c == NULL);
    IT_CHECK(it_op_silu(&ctx, c) == NULL);
    IT_CHECK(it_op_add(&ctx, a, a) == NULL); /* failed context: everything returns NULL */
    it_err err;
    IT_CHECK_INT(it_ctx_status(&ctx, &err), IT_ERR_ARG);
    IT_CHECK_STR(err.msg, "matmul: inner dimensions differ from a (got (4, 5))");
    it_ctx_reset(&ctx);
    IT_CHECK_INT(it_ctx_status(&ctx, &err), IT_OK);
    a = it_tensor_zeros(&ctx, IT_DTYPE_F32, IT_SHAPE(2, 3));
    b = it_tensor_zeros(&ctx, IT_DTYPE_F32, IT_SHAPE(4, 3));
    IT_CHECK(it_op_add(&ctx, a, b) == NULL);
    it_ctx_status(&ctx, &err);
    IT_CHECK_STR(err.msg, "add: shapes (2, 3) and (4, 3) do not broadcast");
    it_ctx_reset(&ctx);
    it_tensor *ids = it_tensor_zeros(&ctx, IT_DTYPE_I32, IT_SHAPE(3));
    ((int32_t *)ids->data)[1] = 9;
    IT_CHECK(it_op_embedding(&ctx, ids, it_tensor_zeros(&ctx, IT_DTYPE_F32, IT_SHAPE(4, 2))) == NULL);
    IT_CHECK_INT(it_ctx_status(&ctx, &err), IT_ERR_RANGE);
    IT_CHECK_STR(err.msg, "embedding: id 9 at position 1 outside [0, 4)");
    it_ctx_reset(&ctx);
    IT_CHECK(it_op_conv2d(&ctx, it_tensor_zeros(&ctx, IT_DTYPE_F32, IT_SHAPE(1, 2, 2, 2)),
                          it_tensor_zeros(&ctx, IT_DTYPE_F32, IT_SHAPE(1, 2, 5, 5)), NULL, 1, 0) == NULL);
    it_ctx_status(&ctx, &err);
    IT_CHECK_STR(err.msg, "conv2d: kernel, stride or padding do not fit the input (got (1, 2, 2, 2))");
    it_ctx_free(&ctx);
}

IT_TEST(engine_out_of_memory_is_clean) {
    tparam w;
    tparam_init(&w, 5, 0.3f, 1, IT_SHAPE(16, 16));
    int failures_seen = 0;
    for (long k = 0; k < 40; k++) { /* covers block and gradient-pool allocations */
        it_ctx ctx;
        it_ctx_init(&ctx, 1024);
        it_mem_fail_after(k, 1);
        it_tensor *x = randn(&ctx, 1, IT_SHAPE(8, 16));
        it_tensor *y = it_op_silu(&ctx, it_op_linear(&ctx, x, &w.t, NULL));
        it_tensor *l = it_op_mean(&ctx, y);
        it_err err;
        it_status s = it_autograd_backward(&err, &ctx, l);
        it_mem_fail_after(-1, 0);
        if (s != IT_OK) {
            failures_seen++;
            IT_CHECK_INT(s, IT_ERR_NOMEM);
            IT_CHECK_CONTAINS(err.msg, "out of memory");
        }
        it_ctx_free(&ctx);
    }
    IT_CHECK(failures_seen >= 5); /* the injected failures were reached */
    tparam_free(&w);
}

IT_TEST(engine_backward_root_errors) {
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_err err;
    it_tensor *x = randn(&ctx, 1, IT_SHAPE(3));
    IT_CHECK_INT(it_autograd_backward(&err, &ctx, it_op_sum(&ctx, x)), IT_ERR_ARG);
    IT_CHECK_STR(err.msg, "backward: the root does not depend on any trainable tensor");
    tparam w;
    tparam_init(&w, 2, 1, 1, IT_SHAPE(3));
    IT_CHECK_INT(it_autograd_backward(&err, &ctx, it_op_mul(&ctx, x, &w.t)), IT_ERR_ARG);
    IT_CHECK_STR(err.msg, "backward: root has 3 elements; fill root->grad first");
    tparam_free(&w);
    it_ctx_free(&ctx);
}

/* ---------------------------------------------------------------- autograd semantics */

/* LoRA shape: y = x W^T + (x A^T) B^T with W frozen; then a frozen layer V
 * after it, so the gradient must flow through V to reach A and B. */
IT_TEST(engine_frozen_params_pass_gradients) {
    tparam W, A, B, V;
    tparam_init(&W, 1, 0.3f, 0, IT_SHAPE(6, 5));
    tparam_init(&A, 2, 0.3f, 1, IT_SHAPE(2, 5));
    tparam_init(&B, 3, 0.3f, 1, IT_SHAPE(6, 2));
    tparam_init(&V, 4, 0.3f, 0, IT_SHAPE(3, 6));
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_tensor *x = randn(&ctx, 9, IT_SHAPE(4, 5));
    it_tensor *h = it_op_add(&ctx, it_op_linear(&ctx, x, &W.t, NULL),
                             it_op_linear(&ctx, it_op_linear(&ctx, x, &A.t, NULL), &B.t, NULL));
    it_tensor *y = it_op_linear(&ctx, it_op_silu(&ctx, h), &V.t, NULL);
    it_tensor *loss = it_op_mean(&ctx, it_op_mul(&ctx, y, y));
    it_err err;
    IT_REQUIRE_OK(it_autograd_backward(&err, &ctx, loss), &err);
    IT_CHECK(W.t.grad == NULL && V.t.grad == NULL);
    IT_CHECK(x->grad == NULL); /* constants get no gradient buffer */
    double sa = 0, sb = 0;
    for (int i = 0; i < 10; i++) sa += fabs(A.grad[i]);
    for (int i = 0; i < 12; i++) sb += fabs(B.grad[i]);
    IT_CHECK(sa > 1e-6 && sb > 1e-6);
    /* The frozen W's linear computes no weight gradient: only dx work. */
    it_ctx_free(&ctx);
    tparam_free(&W), tparam_free(&A), tparam_free(&B), tparam_free(&V);
}

IT_TEST(engine_no_grad_records_nothing) {
    tparam w;
    tparam_init(&w, 1, 0.2f, 1, IT_SHAPE(64, 64));
    it_ctx ctx;
    it_ctx_init(&ctx, 1 << 16);
    it_autograd_set_enabled(&ctx, 0);
    /* Each layer's output is kept at the mark taken before the first input:
     * it replaces its (dead) input, so memory does not grow with depth. */
    it_mark m0 = it_ctx_mark(&ctx);
    it_tensor *x = randn(&ctx, 2, IT_SHAPE(32, 64));
    size_t one = (size_t)x->n * sizeof(float);
    for (int i = 0; i < 50; i++) {
        it_tensor *y = it_op_layer_norm(&ctx, it_op_silu(&ctx, it_op_linear(&ctx, x, &w.t, NULL)), NULL, NULL, 1e-5f);
        IT_REQUIRE(y && !y->requires_grad && !y->node);
        x = it_ctx_keep(&ctx, m0, y);
    }
    IT_CHECK_INT(it_autograd_tape_len(&ctx), 0);
    IT_CHECK(ctx.used - m0.used < 2 * one);
    IT_CHECK(ctx.peak < 8 * one); /* bounded by a layer, not by the depth */
    it_autograd_set_enabled(&ctx, 1);
    it_ctx_reset(&ctx);
    it_ctx_reset_peak(&ctx);
    x = randn(&ctx, 2, IT_SHAPE(32, 64));
    for (int i = 0; i < 50; i++) x = it_op_layer_norm(&ctx, it_op_silu(&ctx, it_op_linear(&ctx, x, &w.t, NULL)), NULL, NULL, 1e-5f);
    IT_CHECK_INT(it_autograd_tape_len(&ctx), 150);
    IT_CHECK(ctx.peak > 100 * one);
    it_ctx_free(&ctx);
    tparam_free(&w);
}

/* Two backward passes over half batches accumulate exactly what one pass
 * over the whole batch gives (sum losses). */
IT_TEST(engine_gradient_accumulation) {
    tparam w, b;
    tparam_init(&w, 1, 0.3f, 1, IT_SHAPE(4, 6));
    tparam_init(&b, 2, 0.3f, 1, IT_SHAPE(4));
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_err err;
    float full_w[24], full_b[4];
    it_tensor *x = randn(&ctx, 7, IT_SHAPE(8, 6));
    float xs[48];
    memcpy(xs, x->data, sizeof xs);
    it_tensor *l = it_op_sum(&ctx, it_op_act(&ctx, it_op_linear(&ctx, x, &w.t, &b.t), IT_ACT_GELU));
    IT_REQUIRE_OK(it_autograd_backward(&err, &ctx, l), &err);
    memcpy(full_w, w.grad, sizeof full_w);
    memcpy(full_b, b.grad, sizeof full_b);
    memset(w.grad, 0, sizeof full_w);
    memset(b.grad, 0, sizeof full_b);
    for (int half = 0; half < 2; half++) {
        it_ctx_reset(&ctx);
        it_tensor *xh = it_tensor_from(&ctx, xs + half * 24, IT_SHAPE(4, 6));
        l = it_op_sum(&ctx, it_op_act(&ctx, it_op_linear(&ctx, xh, &w.t, &b.t), IT_ACT_GELU));
        IT_REQUIRE_OK(it_autograd_backward(&err, &ctx, l), &err);
    }
    IT_CHECK(it_test_max_abs_diff(w.grad, full_w, 24) < 1e-5);
    IT_CHECK(it_test_max_abs_diff(b.grad, full_b, 4) < 1e-5);
    it_ctx_free(&ctx);
    tparam_free(&w), tparam_free(&b);
}

/* ---------------------------------------------------------------- checkpointing */

typedef struct cblock {
    tparam conv, gn_w, gn_b;
    float p_drop;
} cblock;

/* GroupNorm-SiLU-Conv3x3-dropout, plus a skip connection. */
static it_tensor *cblock_fn(it_ctx *ctx, void *user, it_tensor *const *in)
{
    cblock *b = user;
    it_tensor *h = it_op_group_norm(ctx, in[0], &b->gn_w.t, &b->gn_b.t, 2, 1e-5f, 1);
    h = it_op_dropout(ctx, it_op_conv2d(ctx, h, &b->conv.t, NULL, 1, 1), b->p_drop);
    return it_op_add(ctx, in[0], h);
}

static void cblock_init(cblock *b, uint64_t seed, float p)
{
    tparam_init(&b->conv, seed, 0.2f, 1, IT_SHAPE(4, 4, 3, 3));
    tparam_init(&b->gn_w, seed + 1, 0.5f, 1, IT_SHAPE(4));
    tparam_init(&b->gn_b, seed + 2, 0.5f, 1, IT_SHAPE(4));
    b->p_drop = p;
}

static void cblock_free(cblock *b) { tparam_free(&b->conv), tparam_free(&b->gn_w), tparam_free(&b->gn_b); }

static void run_blocks(it_test_ctx *t, it_ctx *ctx, cblock *blocks, int n, tparam *x0, int ckpt, float *out_loss)
{
    it_tensor *h = &x0->t;
    for (int i = 0; i < n; i++)
        h = ckpt ? it_autograd_checkpoint(ctx, cblock_fn, &blocks[i], 1, &h) : cblock_fn(ctx, &blocks[i], &h);
    it_tensor *l = it_op_mean(ctx, it_op_mul(ctx, h, h));
    it_err err;
    IT_REQUIRE_OK(it_autograd_backward(&err, ctx, l), &err);
    *out_loss = it_f32(l)[0];
}

IT_TEST(engine_checkpoint_matches_and_saves_memory) {
    enum { NB = 16 };
    cblock blocks[NB];
    for (int i = 0; i < NB; i++) cblock_init(&blocks[i], 10 + 3 * (uint64_t)i, 0.2f);
    tparam x;
    tparam_init(&x, 99, 1, 1, IT_SHAPE(2, 4, 12, 12));
    float ref_conv[NB][144], ref_x[1152], l0, l1;
    size_t peak[2];
    for (int ckpt = 0; ckpt < 2; ckpt++) {
        it_ctx ctx;
        it_ctx_init(&ctx, 1 << 14);
        ctx.seed = 42;
        for (int i = 0; i < NB; i++) memset(blocks[i].conv.grad, 0, 144 * sizeof(float));
        memset(x.grad, 0, 1152 * sizeof(float));
        run_blocks(t, &ctx, blocks, NB, &x, ckpt, ckpt ? &l1 : &l0);
        peak[ckpt] = ctx.peak;
        if (!ckpt) {
            for (int i = 0; i < NB; i++) memcpy(ref_conv[i], blocks[i].conv.grad, sizeof ref_conv[i]);
            memcpy(ref_x, x.grad, sizeof ref_x);
        } else {
            IT_CHECK(l0 == l1);
            for (int i = 0; i < NB; i++) IT_CHECK(it_test_max_abs_diff(blocks[i].conv.grad, ref_conv[i], 144) < 1e-6);
            IT_CHECK(it_test_max_abs_diff(x.grad, ref_x, 1152) < 1e-6);
            IT_CHECK(it_test_max_abs_diff(blocks[0].gn_w.grad, blocks[0].gn_w.grad, 4) == 0);
        }
        it_ctx_free(&ctx);
    }
    if (getenv("IT_VERBOSE")) printf("    peak %zu bytes plain, %zu checkpointed\n", peak[0], peak[1]);
    IT_CHECK(peak[1] * 2 < peak[0]);
    for (int i = 0; i < NB; i++) cblock_free(&blocks[i]);
    tparam_free(&x);
}

/* A frozen input and frozen parameters except one: the checkpoint node is
 * recorded anyway and the inner trainable parameter gets its gradient. */
IT_TEST(engine_checkpoint_inner_params_only) {
    cblock b;
    cblock_init(&b, 3, 0.0f);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_tensor *x = randn(&ctx, 5, IT_SHAPE(1, 4, 5, 5));
    it_tensor *y = it_autograd_checkpoint(&ctx, cblock_fn, &b, 1, &x);
    IT_REQUIRE(y && y->requires_grad);
    it_err err;
    IT_REQUIRE_OK(it_autograd_backward(&err, &ctx, it_op_sum(&ctx, it_op_mul(&ctx, y, y))), &err);
    double s = 0;
    for (int i = 0; i < 144; i++) s += fabs(b.conv.grad[i]);
    IT_CHECK(s > 1e-4);
    IT_CHECK_INT(it_autograd_tape_len(&ctx), 3); /* checkpoint, mul, sum: the block's tape was released */
    it_ctx_free(&ctx);
    cblock_free(&b);
}

IT_TEST(engine_dropout_mask_and_eval) {
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    ctx.seed = 7;
    it_tensor *x = it_tensor_new(&ctx, IT_DTYPE_F32, IT_SHAPE(10000));
    for (int i = 0; i < 10000; i++) it_f32(x)[i] = 1.0f;
    it_tensor *y = it_op_dropout(&ctx, x, 0.25f);
    int zeros = 0;
    for (int i = 0; i < 10000; i++) {
        float v = it_f32(y)[i];
        zeros += v == 0;
        IT_CHECK(v == 0 || fabsf(v - 1.0f / 0.75f) < 1e-6f);
    }
    IT_CHECK(zeros > 2300 && zeros < 2700);
    IT_CHECK_INT(ctx.rng_offset, 10000);
    ctx.training = 0;
    IT_CHECK(it_op_dropout(&ctx, x, 0.25f) == x);
    it_ctx_free(&ctx);
}

/* ---------------------------------------------------------------- fast kernels vs reference */

static void fill(float *p, int64_t n, uint64_t seed)
{
    it_rng r;
    it_rng_init(&r, seed);
    it_rng_normal(&r, p, (size_t)n, 0, 1);
}

IT_TEST(engine_gemm_fast_matches_reference) {
    static const int64_t dims[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {64, 129, 31}, {5, 300, 2}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int64_t M = dims[d][0], N = dims[d][1], K = dims[d][2];
                float *A = it_malloc((size_t)(M * K) * 4), *B = it_malloc((size_t)(K * N) * 4);
                float *C1 = it_malloc((size_t)(M * N) * 4), *C2 = it_malloc((size_t)(M * N) * 4);
                fill(A, M * K, 1), fill(B, K * N, 2), fill(C1, M * N, 3);
                memcpy(C2, C1, (size_t)(M * N) * 4);
                it_cpu_gemm(ta, tb, M, N, K, 0.5f, A, ta ? M : K, B, tb ? K : N, 0.25f, C1, N);
                it_cpu_gemm_ref(ta, tb, M, N, K, 0.5f, A, ta ? M : K, B, tb ? K : N, 0.25f, C2, N);
                double e = it_test_max_abs_diff(C1, C2, M * N);
                if (e > 1e-4 * sqrt((double)K))
                    it_test_fail(t, __FILE__, __LINE__, "gemm %lldx%lldx%lld ta=%d tb=%d: %g", (long long)M,
                                 (long long)N, (long long)K, ta, tb, e);
                it_free(A), it_free(B), it_free(C1), it_free(C2);
            }
}

IT_TEST(engine_conv_fast_matches_reference) {
    /* n, cin, h, w, cout, kh, kw, stride, pad */
    static const int64_t geo[][9] = {
        {2, 3, 9, 7, 5, 3, 3, 1, 1}, {1, 4, 8, 8, 3, 3, 3, 2, 1}, {2, 6, 5, 4, 7, 1, 1, 1, 0},
        {1, 2, 6, 9, 3, 1, 1, 2, 0}, {1, 3, 7, 7, 2, 5, 5, 1, 2}, {1, 2, 4, 4, 2, 3, 3, 1, 3},
        {1, 1, 3, 3, 1, 3, 3, 3, 0},
        /* strided gathers with padding on both ends, odd and even widths */
        {1, 2, 7, 9, 3, 3, 3, 2, 1}, {2, 2, 5, 6, 2, 3, 3, 3, 2}, {1, 1, 4, 5, 2, 5, 5, 2, 3},
        {1, 2, 8, 8, 2, 4, 4, 4, 0},
    };
    for (size_t g = 0; g < sizeof geo / sizeof geo[0]; g++) {
        const int64_t *q = geo[g];
        it_conv2d_shape s = {q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8], 0, 0};
        IT_REQUIRE(it_conv2d_shape_init(&s));
        int64_t nx = s.n * s.c_in * s.h * s.w, nw = s.c_out * s.c_in * s.kh * s.kw, ny = s.n * s.c_out * s.h_out * s.w_out;
        float *x = it_malloc((size_t)nx * 4), *w = it_malloc((size_t)nw * 4), *b = it_malloc((size_t)s.c_out * 4);
        float *y1 = it_malloc((size_t)ny * 4), *y2 = it_malloc((size_t)ny * 4), *dy = it_malloc((size_t)ny * 4);
        float *dx1 = it_calloc((size_t)nx, 4), *dx2 = it_calloc((size_t)nx, 4), *dw1 = it_calloc((size_t)nw, 4),
              *dw2 = it_calloc((size_t)nw, 4), *db1 = it_calloc((size_t)s.c_out, 4), *db2 = it_calloc((size_t)s.c_out, 4);
        float *scratch = it_malloc((size_t)(it_conv2d_scratch(&s) + 1) * 4);
        fill(x, nx, 1), fill(w, nw, 2), fill(b, s.c_out, 3), fill(dy, ny, 4);
        it_cpu_conv2d_fwd(&s, y1, x, w, b, scratch);
        it_cpu_conv2d_fwd_ref(&s, y2, x, w, b);
        it_cpu_conv2d_bwd(&s, dx1, dw1, db1, dy, x, w, scratch);
        it_cpu_conv2d_bwd_ref(&s, dx2, dw2, db2, dy, x, w);
        double e = fmax(it_test_max_abs_diff(y1, y2, ny), it_test_max_abs_diff(dx1, dx2, nx));
        e = fmax(e, fmax(it_test_max_abs_diff(dw1, dw2, nw), it_test_max_abs_diff(db1, db2, s.c_out)));
        if (e > 1e-4) it_test_fail(t, __FILE__, __LINE__, "conv geometry %zu: max error %g", g, e);
        it_free(x), it_free(w), it_free(b), it_free(y1), it_free(y2), it_free(dy), it_free(dx1), it_free(dx2);
        it_free(dw1), it_free(dw2), it_free(db1), it_free(db2), it_free(scratch);
    }
}

IT_TEST(engine_group_norm_fast_matches_reference) {
    enum { N = 2, C = 8, S = 37, G = 4 };
    float x[N * C * S], w[C], b[C], y1[N * C * S], y2[N * C * S], mean[N * G], rstd[N * G];
    fill(x, N * C * S, 1), fill(w, C, 2), fill(b, C, 3);
    for (int i = 0; i < N * C * S; i++) x[i] = 100.0f + x[i]; /* large mean: tests the two-pass statistics */
    it_cpu_group_norm_fwd(y1, mean, rstd, x, w, b, N, C, S, G, 1e-5f);
    it_cpu_group_norm_fwd_ref(y2, x, w, b, N, C, S, G, 1e-5f);
    IT_CHECK(it_test_max_abs_diff(y1, y2, N * C * S) < 2e-4);
}

/* The vectorisable exp/erf/tanh of ops_math.h against libm in double. */
#include "tensor/ops_math.h"

IT_TEST(engine_fast_math_accuracy) {
    double e_exp = 0, e_erf = 0, e_tanh = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + 175.0f * (float)i / 200000.0f;
        e_exp = fmax(e_exp, fabs(it_fexp(x) - exp(x)) / exp(x));
        float z = -6.0f + 12.0f * (float)i / 200000.0f;
        e_erf = fmax(e_erf, fabs(it_ferf(z) - erf(z)));
        e_tanh = fmax(e_tanh, fabs(it_ftanh(z) - tanh(z)));
    }
    if (getenv("IT_VERBOSE")) printf("    exp rel %.2e, erf abs %.2e, tanh abs %.2e\n", e_exp, e_erf, e_tanh);
    IT_CHECK(e_exp < 3e-7);   /* about 2 ulp */
    IT_CHECK(e_erf < 6e-7);   /* A&S 7.1.26: 1.5e-7, plus float evaluation (5.1e-7 measured) */
    IT_CHECK(e_tanh < 3e-7);
    IT_CHECK(it_fexp(-1000.0f) < 1e-37f && isfinite(it_fexp(1000.0f)));
}

/* Dropout is linear for a fixed mask: backward must give gy * y / x. */
IT_TEST(engine_dropout_gradient_uses_the_same_mask) {
    tparam x;
    tparam_init(&x, 3, 1, 1, IT_SHAPE(7, 9));
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    ctx.seed = 11;
    ctx.rng_offset = 1000;
    it_tensor *y = it_op_dropout(&ctx, &x.t, 0.4f);
    IT_REQUIRE(y && y != &x.t);
    it_tensor *gy = randn(&ctx, 4, IT_SHAPE(7, 9));
    it_err err;
    IT_REQUIRE_OK(it_autograd_backward(&err, &ctx, it_op_sum(&ctx, it_op_mul(&ctx, y, gy))), &err);
    int kept = 0;
    for (int i = 0; i < 63; i++) {
        float ratio = it_f32(y)[i] / x.data[i]; /* 0 or 1/(1-p) */
        kept += ratio != 0;
        IT_CHECK_NEAR(x.grad[i], it_f32(gy)[i] * ratio, 1e-5);
    }
    IT_CHECK(kept > 20 && kept < 55);
    it_ctx_free(&ctx);
    tparam_free(&x);
}

/* Shape edge cases: -1 in reshape, negative dims, split, zero-size tensors,
 * and the error text of each misuse. */
IT_TEST(engine_shape_edge_cases) {
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_err err;
    it_tensor *x = randn(&ctx, 1, IT_SHAPE(2, 6, 5));
    it_tensor *r = it_op_reshape(&ctx, x, IT_SHAPE(-1, 5));
    IT_REQUIRE(r);
    IT_CHECK_INT(r->shape[0], 12);
    IT_CHECK(r->data == x->data); /* a view */
    it_tensor *parts[3];
    IT_CHECK_INT(it_op_split(&ctx, x, -2, 3, parts), 0);
    IT_CHECK_INT(parts[2]->shape[1], 2);
    IT_CHECK(it_f32(parts[2])[0] == it_f32(x)[4 * 5]);
    it_tensor *tr = it_op_transpose(&ctx, x, -1, 0);
    IT_REQUIRE(tr);
    IT_CHECK_INT(tr->shape[0], 5);
    IT_CHECK(it_f32(tr)[1 * 2 * 6 + 0 * 6 + 0] == it_f32(x)[1]); /* tr[1][0][0] = x[0][0][1] */
    it_tensor *empty = it_tensor_zeros(&ctx, IT_DTYPE_F32, IT_SHAPE(0, 5));
    it_tensor *e2 = it_op_add(&ctx, empty, it_tensor_zeros(&ctx, IT_DTYPE_F32, IT_SHAPE(5)));
    IT_REQUIRE(e2);
    IT_CHECK_INT(e2->n, 0);
    IT_CHECK_OK(it_ctx_status(&ctx, &err), &err);

    static const struct {
        int which;
        const char *msg;
    } bad[] = {
        {0, "reshape: element count differs from the target shape (got (2, 6, 5))"},
        {1, "split: dim out of range or not divisible into equal parts (got (2, 6, 5))"},
        {2, "slice: [4, 7) outside dim 1 of size 6"},
        {3, "permute: perm is not a permutation of the dims (got (2, 6, 5))"},
        {4, "concat: shapes differ outside the concat dim (got (2, 6, 4))"},
        {5, "linear: last dim must equal the weight's in-features (got (2, 6, 5))"},
        {6, "group_norm: channels not divisible by the group count (got (2, 6, 5))"},
        {7, "attention: last dim not divisible by n_heads (got (2, 6, 5))"},
        {8, "cross_entropy: labels must be I32 (N) (got (3))"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        it_ctx_reset(&ctx);
        x = randn(&ctx, 1, IT_SHAPE(2, 6, 5));
        it_tensor *o[4];
        switch (bad[i].which) {
        case 0: it_op_reshape(&ctx, x, IT_SHAPE(7, -1, 2)); break;
        case 1: it_op_split(&ctx, x, 1, 4, o); break;
        case 2: it_op_slice(&ctx, x, 1, 4, 3); break;
        case 3: it_op_permute(&ctx, x, (const int[]){0, 0, 1}); break;
        case 4: it_op_concat(&ctx, 2, (it_tensor *[]){x, randn(&ctx, 2, IT_SHAPE(2, 6, 4))}, 1); break;
        case 5: it_op_linear(&ctx, x, randn(&ctx, 2, IT_SHAPE(3, 4)), NULL); break;
        case 6: it_op_group_norm(&ctx, x, NULL, NULL, 4, 1e-5f, 0); break;
        case 7: it_op_attention(&ctx, x, x, x, 2, 0, 0); break;
        case 8: it_op_cross_entropy(&ctx, randn(&ctx, 2, IT_SHAPE(2, 4)), randn(&ctx, 3, IT_SHAPE(3))); break;
        }
        IT_CHECK_INT(it_ctx_status(&ctx, &err), bad[i].which == 2 ? IT_ERR_RANGE : IT_ERR_ARG);
        IT_CHECK_STR(err.msg, bad[i].msg);
    }
    it_ctx_free(&ctx);
}

/* Self-attention on one tensor (q = k = v = x) must give the same gradient
 * as three separate copies of x whose gradients are summed. One (batch,
 * head) pair and 600 keys: the kernel then splits the keys over threads,
 * the case where writes to aliased dq/dk/dv would race. */
IT_TEST(engine_attention_aliased_inputs) {
    tparam x, a, b, c;
    tparam_init(&x, 21, 1, 1, IT_SHAPE(1, 600, 8));
    tparam_init(&a, 21, 1, 1, IT_SHAPE(1, 600, 8));
    tparam_init(&b, 21, 1, 1, IT_SHAPE(1, 600, 8));
    tparam_init(&c, 21, 1, 1, IT_SHAPE(1, 600, 8));
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_err err;
    it_tensor *w = randn(&ctx, 5, IT_SHAPE(1, 600, 8));
    it_tensor *y1 = it_op_attention(&ctx, &x.t, &x.t, &x.t, 1, 0, 0);
    IT_REQUIRE_OK(it_autograd_backward(&err, &ctx, it_op_sum(&ctx, it_op_mul(&ctx, y1, w))), &err);
    it_tensor *y2 = it_op_attention(&ctx, &a.t, &b.t, &c.t, 1, 0, 0);
    IT_REQUIRE_OK(it_autograd_backward(&err, &ctx, it_op_sum(&ctx, it_op_mul(&ctx, y2, w))), &err);
    for (int i = 0; i < 4800; i++) {
        double sum = (double)a.grad[i] + b.grad[i] + c.grad[i];
        IT_CHECK_NEAR(x.grad[i], sum, 1e-5 * fmax(1.0, fabs(sum)));
    }
    it_ctx_free(&ctx);
    tparam_free(&x), tparam_free(&a), tparam_free(&b), tparam_free(&c);
}

/* max_last: the row maximum forward; backward routes each row's gradient to
 * its first maximal element only (ties included). */
IT_TEST(engine_max_last_forward_backward) {
    tparam X;
    tparam_init(&X, 21, 1.0f, 1, IT_SHAPE(2, 3, 5));
    X.data[7] = X.data[9] = 50.0f; /* row 1: a tie, the first (index 2 of the row) wins */
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_tensor *y = it_op_max_last(&ctx, &X.t);
    IT_REQUIRE(y != NULL);
    IT_CHECK_INT(y->ndim, 2);
    IT_CHECK_INT(y->shape[0], 2);
    IT_CHECK_INT(y->shape[1], 3);
    int arg[6];
    for (int r = 0; r < 6; r++) {
        arg[r] = 0;
        for (int d = 1; d < 5; d++)
            if (X.data[r * 5 + d] > X.data[r * 5 + arg[r]]) arg[r] = d;
        IT_CHECK(it_f32(y)[r] == X.data[r * 5 + arg[r]]);
    }
    IT_CHECK_INT(arg[1], 2);
    /* loss = sum_r (r + 1) * y_r: d loss / d x = r + 1 at the argmax, else 0 */
    it_tensor *k = it_tensor_new(&ctx, IT_DTYPE_F32, IT_SHAPE(2, 3));
    IT_REQUIRE(k != NULL);
    for (int r = 0; r < 6; r++) it_f32(k)[r] = (float)(r + 1);
    it_err err;
    IT_REQUIRE_OK(it_autograd_backward(&err, &ctx, it_op_sum(&ctx, it_op_mul(&ctx, y, k))), &err);
    for (int r = 0; r < 6; r++)
        for (int d = 0; d < 5; d++) IT_CHECK(X.grad[r * 5 + d] == (d == arg[r] ? (float)(r + 1) : 0.0f));
    /* An empty last dim is refused with the op's name. */
    it_ctx_reset(&ctx);
    IT_CHECK(it_op_max_last(&ctx, it_tensor_zeros(&ctx, IT_DTYPE_F32, IT_SHAPE(2, 0))) == NULL);
    IT_CHECK_CONTAINS(it_ctx_status(&ctx, &err) ? err.msg : "", "max_last");
    it_ctx_free(&ctx);
    tparam_free(&X);
}
