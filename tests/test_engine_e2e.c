/* test_engine_e2e.c: end-to-end training parity with PyTorch.
 *
 * tools/gen_engine_e2e.py trains a small conv + attention network (conv3x3,
 * GroupNorm+SiLU, LayerNorm, two-head self-attention, residual, linear head,
 * MSE) for 200 SGD steps, and for 200 AdamW steps with gradient clipping,
 * and stores its initial weights, the data and the
 * loss of every step (tests/fixtures/engine/e2e.safetensors). Here the same
 * network runs on the engine from the same weights on the same batches; the
 * two loss curves must agree step by step within E2E_TOL (relative). The
 * differences start at float32 rounding (1e-7) and grow slowly as the two
 * trajectories drift apart; the bound is set well above what we measure
 * (printed with IT_VERBOSE=1) and far below a real bug's effect. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threads.h"
#include "engine_fixture.h"
#include "tensor/autograd.h"
#include "tensor/ops_attn.h"
#include "tensor/ops_conv.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_gemm.h"
#include "tensor/ops_loss.h"
#include "tensor/ops_norm.h"
#include "tensor/ops_shape.h"
#include "tensor/optim.h"
#include "test.h"

#define E2E_TOL 1e-5
#define E2E_LR 0.1f

enum { P_CONV_W, P_CONV_B, P_GN_W, P_GN_B, P_LN_W, P_LN_B, P_Q, P_K, P_V, P_OUT_W, P_OUT_B, P_HEAD_W, P_HEAD_B, P_COUNT };
static const char *k_names[P_COUNT] = {
    "init.conv.weight", "init.conv.bias", "init.gn.weight", "init.gn.bias", "init.ln.weight",
    "init.ln.bias", "init.to_q.weight", "init.to_k.weight", "init.to_v.weight", "init.to_out.weight",
    "init.to_out.bias", "init.head.weight", "init.head.bias",
};

/* x (B, 3, H, W) -> prediction (B, 3, H, W); the PyTorch module's forward. */
static it_tensor *net_forward(it_ctx *c, it_tensor **p, it_tensor *x)
{
    int64_t B = x->shape[0], H = x->shape[2], W = x->shape[3];
    it_tensor *h = it_op_conv2d(c, x, p[P_CONV_W], p[P_CONV_B], 1, 1);
    h = it_op_group_norm(c, h, p[P_GN_W], p[P_GN_B], 4, 1e-5f, 1);                  /* (B, 8, H, W) */
    it_tensor *t = it_op_transpose(c, it_op_reshape(c, h, IT_SHAPE(B, 8, H * W)), 1, 2); /* (B, HW, 8) */
    it_tensor *n = it_op_layer_norm(c, t, p[P_LN_W], p[P_LN_B], 1e-5f);
    it_tensor *q = it_op_linear(c, n, p[P_Q], NULL), *k = it_op_linear(c, n, p[P_K], NULL),
              *v = it_op_linear(c, n, p[P_V], NULL);
    it_tensor *a = it_op_attention(c, q, k, v, 2, 0, 0.0f);                          /* (B, HW, 8) */
    t = it_op_add(c, t, it_op_linear(c, a, p[P_OUT_W], p[P_OUT_B]));
    it_tensor *o = it_op_linear(c, t, p[P_HEAD_W], p[P_HEAD_B]);                    /* (B, HW, 3) */
    return it_op_reshape(c, it_op_transpose(c, o, 1, 2), IT_SHAPE(B, 3, H, W));
}

/* Trains from the fixture's initial weights on its batches and compares the
 * loss of every step with the curve named `curve`. adamw: the optimiser of
 * optim.h (AdamW, weight decay 0.01, global-norm clipping at 1.0) instead
 * of plain SGD written out here. */
static void train_and_compare(it_test_ctx *t, const char *curve, int adamw)
{
    it_err err;
    efx *fx = efx_open(&err, it_test_fixture(t, "engine/e2e.safetensors"));
    IT_REQUIRE(fx != NULL);
    it_tensor *p[P_COUNT];
    it_optim_param op[P_COUNT];
    for (int i = 0; i < P_COUNT; i++) {
        p[i] = efx_get(fx, k_names[i], 1);
        if (!p[i]) {
            it_test_fail(t, __FILE__, __LINE__, "fixture lacks %s", k_names[i]);
            efx_close(fx);
            return;
        }
        op[i] = (it_optim_param){k_names[i], p[i]->data, p[i]->grad, (size_t)p[i]->n, 0};
    }
    it_tensor *X = efx_get(fx, "data.x", 0), *Y = efx_get(fx, "data.y", 0), *L = efx_get(fx, curve, 0);
    IT_REQUIRE(X && Y && L);
    it_optim opt;
    it_optim_config cfg = it_optim_adamw_defaults(1e-2);
    if (adamw) IT_REQUIRE_OK(it_optim_init(&err, &opt, &cfg, op, P_COUNT), &err);
    int steps = (int)L->n, batch = atoi(efx_meta(fx, "batch")), samples = (int)X->shape[0];
    int64_t per = X->n / samples; /* floats per sample */
    it_ctx ctx;
    it_ctx_init(&ctx, 1 << 20);
    double worst = 0;
    for (int s = 0; s < steps && t->failures == 0; s++) {
        it_ctx_reset(&ctx);
        it_tensor *xb = it_tensor_new(&ctx, IT_DTYPE_F32, IT_SHAPE(batch, X->shape[1], X->shape[2], X->shape[3]));
        it_tensor *yb = it_tensor_new(&ctx, IT_DTYPE_F32, IT_SHAPE(batch, Y->shape[1], Y->shape[2], Y->shape[3]));
        IT_REQUIRE(xb && yb);
        for (int j = 0; j < batch; j++) {
            int idx = (s * batch + j) % samples;
            memcpy(it_f32(xb) + j * per, it_f32(X) + idx * per, (size_t)per * sizeof(float));
            memcpy(it_f32(yb) + j * per, it_f32(Y) + idx * per, (size_t)per * sizeof(float));
        }
        it_tensor *loss = it_op_mse(&ctx, net_forward(&ctx, p, xb), yb, NULL);
        IT_REQUIRE_OK(it_autograd_backward(&err, &ctx, loss), &err);
        float ours = it_f32(loss)[0], ref = it_f32(L)[s];
        double rel = fabs((double)ours - ref) / fabs((double)ref);
        if (rel > worst) worst = rel;
        if (getenv("IT_VERBOSE") && (s < 2 || s % 50 == 0 || s == steps - 1))
            printf("    %s step %3d  ours %.7f  torch %.7f  rel %.2e\n", curve, s, ours, ref, rel);
        if (!(rel <= E2E_TOL))
            it_test_fail(t, __FILE__, __LINE__, "%s step %d: loss %.7f vs torch %.7f (relative %.2e)", curve, s, ours,
                         ref, rel);
        if (adamw) {
            it_optim_clip_grad_norm(&opt, 1.0);
            it_optim_step(&opt, 1e-2);
            it_optim_zero_grad(&opt);
        } else {
            for (int i = 0; i < P_COUNT; i++) { /* plain SGD, as torch.optim.SGD(lr) */
                float *w = p[i]->data, *g = p[i]->grad;
                for (int64_t e = 0; e < p[i]->n; e++) w[e] -= E2E_LR * g[e], g[e] = 0;
            }
        }
    }
    if (getenv("IT_VERBOSE")) printf("    %s: %d steps, max relative loss difference %.2e\n", curve, steps, worst);
    IT_CHECK(it_f32(L)[steps - 1] < 0.2f * it_f32(L)[0]); /* the fixture itself shows learning */
    if (adamw) it_optim_free(&opt);
    it_ctx_free(&ctx);
    efx_close(fx);
}

/* One thread: the network is tiny (every op is below the parallel
 * threshold except attention), and on a machine whose cores are busy, 400
 * steps of short OpenMP regions cost seconds of spinning for nothing. The
 * other engine tests cover the threaded paths. */
IT_TEST(engine_e2e_training_matches_torch) {
    it_threads_set(1);
    train_and_compare(t, "loss", 0);
    it_threads_set(0);
}

IT_TEST(engine_e2e_adamw_clipping_matches_torch) {
    it_threads_set(1);
    train_and_compare(t, "loss_adamw", 1);
    it_threads_set(0);
}
