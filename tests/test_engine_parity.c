/* test_engine_parity.c: every operation against PyTorch, forward and
 * backward, on odd shapes (fixture: tests/fixtures/engine/ops.safetensors,
 * written by tools/gen_engine_fixtures.py in float64 from float32 inputs).
 *
 * For a case NAME the fixture holds NAME.in<i>, NAME.out, NAME.gout and
 * NAME.gin<i> for the inputs that receive gradients. The check is the
 * normalised error max|ours - ref| / max|ref| (ggml's style), which must stay
 * below the case's tolerance; the test prints the first values side by side
 * when it fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_fixture.h"
#include "tensor/autograd.h"
#include "tensor/ops_attn.h"
#include "tensor/ops_conv.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_gemm.h"
#include "tensor/ops_loss.h"
#include "tensor/ops_norm.h"
#include "tensor/ops_shape.h"
#include "test.h"

typedef it_tensor *(*build_fn)(it_ctx *c, it_tensor **in);

static it_tensor *b_linear(it_ctx *c, it_tensor **in) { return it_op_linear(c, in[0], in[1], in[2]); }
static it_tensor *b_linear_nb(it_ctx *c, it_tensor **in) { return it_op_linear(c, in[0], in[1], NULL); }
static it_tensor *b_matmul(it_ctx *c, it_tensor **in) { return it_op_matmul(c, in[0], in[1], 0, 0); }
static it_tensor *b_matmul_tb(it_ctx *c, it_tensor **in) { return it_op_matmul(c, in[0], in[1], 0, 1); }
static it_tensor *b_matmul_ta(it_ctx *c, it_tensor **in) { return it_op_matmul(c, in[0], in[1], 1, 0); }
static it_tensor *b_conv_s1p1(it_ctx *c, it_tensor **in) { return it_op_conv2d(c, in[0], in[1], in[2], 1, 1); }
static it_tensor *b_conv_s2p1(it_ctx *c, it_tensor **in) { return it_op_conv2d(c, in[0], in[1], in[2], 2, 1); }
static it_tensor *b_conv_s1p0(it_ctx *c, it_tensor **in) { return it_op_conv2d(c, in[0], in[1], in[2], 1, 0); }
static it_tensor *b_conv_s2p2(it_ctx *c, it_tensor **in) { return it_op_conv2d(c, in[0], in[1], in[2], 2, 2); }
static it_tensor *b_gn(it_ctx *c, it_tensor **in) { return it_op_group_norm(c, in[0], in[1], in[2], 3, 1e-5f, 0); }
static it_tensor *b_gn_silu(it_ctx *c, it_tensor **in) { return it_op_group_norm(c, in[0], in[1], in[2], 2, 1e-6f, 1); }
static it_tensor *b_ln(it_ctx *c, it_tensor **in) { return it_op_layer_norm(c, in[0], in[1], in[2], 1e-5f); }
static it_tensor *b_softmax(it_ctx *c, it_tensor **in) { return it_op_softmax(c, in[0]); }
static it_tensor *b_silu(it_ctx *c, it_tensor **in) { return it_op_act(c, in[0], IT_ACT_SILU); }
static it_tensor *b_gelu(it_ctx *c, it_tensor **in) { return it_op_act(c, in[0], IT_ACT_GELU); }
static it_tensor *b_gelu_tanh(it_ctx *c, it_tensor **in) { return it_op_act(c, in[0], IT_ACT_GELU_TANH); }
static it_tensor *b_quick_gelu(it_ctx *c, it_tensor **in) { return it_op_act(c, in[0], IT_ACT_QUICK_GELU); }
static it_tensor *b_geglu(it_ctx *c, it_tensor **in) { return it_op_geglu(c, in[0]); }
static it_tensor *b_add(it_ctx *c, it_tensor **in) { return it_op_add(c, in[0], in[1]); }
static it_tensor *b_mul(it_ctx *c, it_tensor **in) { return it_op_mul(c, in[0], in[1]); }
static it_tensor *b_sub(it_ctx *c, it_tensor **in) { return it_op_sub(c, in[0], in[1]); }
static it_tensor *b_scale(it_ctx *c, it_tensor **in) { return it_op_scale(c, in[0], 0.37f, 0.1f); }
static it_tensor *b_concat(it_ctx *c, it_tensor **in) { return it_op_concat(c, 2, in, 1); }
static it_tensor *b_slice(it_ctx *c, it_tensor **in) { return it_op_slice(c, in[0], 1, 2, 4); }
static it_tensor *b_permute(it_ctx *c, it_tensor **in) { return it_op_permute(c, in[0], (const int[]){0, 2, 3, 1}); }
static it_tensor *b_upsample(it_ctx *c, it_tensor **in) { return it_op_upsample2x(c, in[0]); }
static it_tensor *b_embedding(it_ctx *c, it_tensor **in) { return it_op_embedding(c, in[0], in[1]); }
static it_tensor *b_sum(it_ctx *c, it_tensor **in) { return it_op_sum(c, in[0]); }
static it_tensor *b_mean(it_ctx *c, it_tensor **in) { return it_op_mean(c, in[0]); }
static it_tensor *b_mean_last(it_ctx *c, it_tensor **in) { return it_op_mean_last(c, in[0]); }
static it_tensor *b_mse(it_ctx *c, it_tensor **in) { return it_op_mse(c, in[0], in[1], in[2]); }
static it_tensor *b_mse_plain(it_ctx *c, it_tensor **in) { return it_op_mse(c, in[0], in[1], NULL); }
static it_tensor *b_ce(it_ctx *c, it_tensor **in) { return it_op_cross_entropy(c, in[0], in[1]); }
static it_tensor *b_cos(it_ctx *c, it_tensor **in) { return it_op_cosine_similarity(c, in[0], in[1], 1e-8f); }
static it_tensor *b_attn(it_ctx *c, it_tensor **in) { return it_op_attention(c, in[0], in[1], in[2], 0, 0, 0); }
static it_tensor *b_attn_causal(it_ctx *c, it_tensor **in) { return it_op_attention(c, in[0], in[1], in[2], 0, 1, 0); }
static it_tensor *b_temb_flip(it_ctx *c, it_tensor **in) { return it_op_timestep_embedding(c, in[0], 32, 1, 0, 1, 10000); }
static it_tensor *b_temb_shift(it_ctx *c, it_tensor **in) { return it_op_timestep_embedding(c, in[0], 33, 0, 1, 1, 10000); }

static it_tensor *b_pad(it_ctx *c, it_tensor **in) { return it_op_pad2d(c, in[0], 0, 1, 0, 1); }
static it_tensor *b_pad_asym(it_ctx *c, it_tensor **in) { return it_op_pad2d(c, in[0], 2, 1, 3, 2); }
static it_tensor *b_ln_plain(it_ctx *c, it_tensor **in) { return it_op_layer_norm(c, in[0], NULL, NULL, 1e-5f); }
static it_tensor *b_gn_plain(it_ctx *c, it_tensor **in) { return it_op_group_norm(c, in[0], NULL, NULL, 2, 1e-5f, 0); }

typedef struct pcase {
    const char *name;
    int n_in;
    build_fn fn;
    double tol; /* normalised error bound, forward and backward */
} pcase;

/* Tolerances: float32 against a float64 reference. Most ops land near 1e-7;
 * the bound leaves an order of magnitude for reductions over more terms. */
static const pcase k_cases[] = {
    {"linear", 3, b_linear, 1e-5},          {"linear_nobias", 2, b_linear_nb, 1e-5},
    {"matmul", 2, b_matmul, 1e-5},          {"matmul_tb", 2, b_matmul_tb, 1e-5},
    {"matmul_ta", 2, b_matmul_ta, 1e-5},    {"matmul_shared", 2, b_matmul, 1e-5},
    {"conv3x3", 3, b_conv_s1p1, 1e-5},      {"conv3x3_s2", 3, b_conv_s2p1, 1e-5},
    {"conv1x1", 3, b_conv_s1p0, 1e-5},      {"conv5x3_s2p2", 3, b_conv_s2p2, 1e-5},
    {"group_norm", 3, b_gn, 1e-5},          {"group_norm_silu", 3, b_gn_silu, 1e-5},
    {"layer_norm", 3, b_ln, 1e-5},          {"softmax", 1, b_softmax, 1e-5},
    {"silu", 1, b_silu, 1e-5},              {"gelu", 1, b_gelu, 1e-5},
    {"gelu_tanh", 1, b_gelu_tanh, 1e-5},    {"quick_gelu", 1, b_quick_gelu, 1e-5},
    {"geglu", 1, b_geglu, 1e-5},            {"add_bcast", 2, b_add, 1e-6},
    {"mul_bcast", 2, b_mul, 1e-5},          {"sub_bcast", 2, b_sub, 1e-6},
    {"mul_both", 2, b_mul, 1e-5},           {"scale", 1, b_scale, 1e-6},
    {"concat", 2, b_concat, 0},             {"slice", 1, b_slice, 0},
    {"permute", 1, b_permute, 0},           {"upsample", 1, b_upsample, 1e-6},
    {"embedding", 2, b_embedding, 1e-6},    {"sum", 1, b_sum, 1e-6},
    {"mean", 1, b_mean, 1e-6},              {"mean_last", 1, b_mean_last, 1e-6},
    {"mse", 3, b_mse, 1e-5},                {"mse_plain", 2, b_mse_plain, 1e-5},
    {"cross_entropy", 2, b_ce, 1e-5},       {"cosine", 2, b_cos, 1e-5},
    {"attention", 3, b_attn, 1e-5},         {"attention_causal", 3, b_attn_causal, 1e-5},
    {"temb_flip", 1, b_temb_flip, 1e-6},    {"temb_shift", 1, b_temb_shift, 1e-6},
    {"pad2d", 1, b_pad, 0},                 {"pad2d_asym", 1, b_pad_asym, 0},
    {"layer_norm_plain", 1, b_ln_plain, 1e-5}, {"group_norm_plain", 1, b_gn_plain, 1e-5},
};

static double norm_err(const float *a, const float *b, int64_t n)
{
    double m = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
        if (fabs(b[i]) > r) r = fabs(b[i]);
    }
    return m / (r > 1e-12 ? r : 1e-12);
}

static int compare(it_test_ctx *t, const char *what, const float *ours, const it_tensor *ref, int64_t n, double tol,
                   double *worst)
{
    if (!ref || ref->n != n) {
        it_test_fail(t, __FILE__, __LINE__, "%s: size %lld vs fixture %lld", what, (long long)n,
                     ref ? (long long)ref->n : -1LL);
        return 0;
    }
    double e = norm_err(ours, ref->data, n);
    if (e > *worst) *worst = e;
    if (e <= tol) return 1;
    it_test_fail(t, __FILE__, __LINE__, "%s: normalised error %.3g > %.3g", what, e, tol);
    for (int64_t i = 0; i < n && i < 6; i++)
        printf("      [%lld] ours %.8g  torch %.8g\n", (long long)i, ours[i], it_f32(ref)[i]);
    return 0;
}

static void run_case(it_test_ctx *t, efx *fx, const pcase *pc, double *worst_fwd, double *worst_bwd)
{
    char nm[128];
    it_tensor *in[4] = {0};
    for (int i = 0; i < pc->n_in; i++) {
        snprintf(nm, sizeof nm, "%s.gin%d", pc->name, i);
        int g = efx_has(fx, nm);
        snprintf(nm, sizeof nm, "%s.in%d", pc->name, i);
        in[i] = efx_get(fx, nm, g);
        if (!in[i]) {
            it_test_fail(t, __FILE__, __LINE__, "fixture lacks %s", nm);
            return;
        }
    }
    snprintf(nm, sizeof nm, "%s.out", pc->name);
    it_tensor *ref_out = efx_get(fx, nm, 0);
    it_ctx ctx;
    it_ctx_init(&ctx, 1 << 20);
    it_err err;
    it_tensor *out = pc->fn(&ctx, in);
    if (!out) {
        IT_CHECK_OK(it_ctx_status(&ctx, &err), &err);
        it_ctx_free(&ctx);
        return;
    }
    snprintf(nm, sizeof nm, "%s forward", pc->name);
    compare(t, nm, out->data, ref_out, out->n, pc->tol, worst_fwd);
    snprintf(nm, sizeof nm, "%s.gout", pc->name);
    it_tensor *gout = efx_get(fx, nm, 0);
    if (gout && out->requires_grad) {
        out->grad = it_ctx_alloc(&ctx, (size_t)out->n * sizeof(float));
        IT_REQUIRE(out->grad && gout->n == out->n);
        memcpy(out->grad, gout->data, (size_t)out->n * sizeof(float));
        IT_CHECK_OK(it_autograd_backward(&err, &ctx, out), &err);
        for (int i = 0; i < pc->n_in; i++) {
            snprintf(nm, sizeof nm, "%s.gin%d", pc->name, i);
            it_tensor *ref = efx_get(fx, nm, 0);
            if (!ref) continue;
            snprintf(nm, sizeof nm, "%s grad of input %d", pc->name, i);
            compare(t, nm, in[i]->grad, ref, in[i]->n, pc->tol, worst_bwd);
        }
    }
    it_ctx_free(&ctx);
}

IT_TEST(engine_parity_torch) {
    it_err err;
    efx *fx = efx_open(&err, it_test_fixture(t, "engine/ops.safetensors"));
    IT_REQUIRE(fx != NULL);
    int n = (int)(sizeof k_cases / sizeof k_cases[0]);
    for (int i = 0; i < n; i++) {
        double wf = 0, wb = 0;
        int before = t->failures;
        run_case(t, fx, &k_cases[i], &wf, &wb);
        if (getenv("IT_VERBOSE") || t->failures != before)
            printf("    %-18s forward %.2e  backward %.2e\n", k_cases[i].name, wf, wb);
    }
    efx_close(fx);
}

/* ---------------------------------------------------------------- finite differences */

/* L(x) = sum(out * gout) in double, evaluated without recording. */
static double fd_loss(it_ctx *ctx, const pcase *pc, it_tensor **in, const float *gout)
{
    it_ctx_reset(ctx);
    int was = it_autograd_set_enabled(ctx, 0);
    it_tensor *out = pc->fn(ctx, in);
    it_autograd_set_enabled(ctx, was);
    if (!out) return NAN;
    double s = 0;
    for (int64_t i = 0; i < out->n; i++) s += (double)it_f32(out)[i] * gout[i];
    return s;
}

/* Central differences with step FD_EPS on every element of every input that
 * has a gradient, against the analytic gradient from backward (seeded with
 * the same gout). Error measure per element: |fd - analytic| / max(1, |analytic|).
 * With float32 kernels the step trades truncation (eps^2) against rounding
 * (1e-7 / eps); 1e-2 keeps both near 1e-5 on these unit-scale inputs. */
#define FD_EPS 1e-2f
#define FD_TOL 2e-3

static void gradcheck_case(it_test_ctx *t, efx *fx, const pcase *pc, double *worst)
{
    char nm[128];
    it_tensor *in[4] = {0};
    int has_grad[4] = {0}, any = 0;
    for (int i = 0; i < pc->n_in; i++) {
        snprintf(nm, sizeof nm, "%s.gin%d", pc->name, i);
        has_grad[i] = efx_has(fx, nm);
        any |= has_grad[i];
        snprintf(nm, sizeof nm, "%s.in%d", pc->name, i);
        in[i] = efx_get(fx, nm, has_grad[i]);
        IT_REQUIRE(in[i]);
    }
    if (!any) return;
    snprintf(nm, sizeof nm, "%s.gout", pc->name);
    it_tensor *gout = efx_get(fx, nm, 0);
    IT_REQUIRE(gout);
    it_ctx ctx;
    it_ctx_init(&ctx, 1 << 20);
    it_err err;
    it_tensor *out = pc->fn(&ctx, in);
    IT_REQUIRE(out && out->requires_grad && out->n == gout->n);
    out->grad = it_ctx_alloc(&ctx, (size_t)out->n * sizeof(float));
    memcpy(out->grad, gout->data, (size_t)out->n * sizeof(float));
    IT_CHECK_OK(it_autograd_backward(&err, &ctx, out), &err);
    for (int i = 0; i < pc->n_in; i++) {
        if (!has_grad[i]) continue;
        float *x = in[i]->data;
        for (int64_t j = 0; j < in[i]->n; j++) {
            float x0 = x[j];
            x[j] = x0 + FD_EPS;
            double lp = fd_loss(&ctx, pc, in, gout->data);
            x[j] = x0 - FD_EPS;
            double lm = fd_loss(&ctx, pc, in, gout->data);
            x[j] = x0;
            double fd = (lp - lm) / (2.0 * FD_EPS), an = in[i]->grad[j];
            double e = fabs(fd - an) / fmax(1.0, fabs(an));
            if (e > *worst || e != e) *worst = e != e ? INFINITY : e;
            if (!(e <= FD_TOL)) {
                it_test_fail(t, __FILE__, __LINE__, "%s input %d element %lld: finite difference %.7g, backward %.7g",
                             pc->name, i, (long long)j, fd, an);
                it_ctx_free(&ctx);
                return;
            }
        }
    }
    it_ctx_free(&ctx);
}

IT_TEST(engine_gradcheck_every_op) {
    it_err err;
    efx *fx = efx_open(&err, it_test_fixture(t, "engine/ops.safetensors"));
    IT_REQUIRE(fx != NULL);
    int n = (int)(sizeof k_cases / sizeof k_cases[0]);
    double all = 0;
    for (int i = 0; i < n; i++) {
        double w = 0;
        gradcheck_case(t, fx, &k_cases[i], &w);
        if (getenv("IT_VERBOSE")) printf("    %-18s max fd error %.2e\n", k_cases[i].name, w);
        if (w > all) all = w;
    }
    if (getenv("IT_VERBOSE")) printf("    all ops: max fd error %.2e (tolerance %.0e)\n", all, FD_TOL);
    efx_close(fx);
}
