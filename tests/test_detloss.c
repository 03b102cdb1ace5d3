/* test_detloss.c: the detector and preference losses (src/toy/det_loss.h):
 * values against direct formulas and every backward against central
 * finite differences. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "tensor/autograd.h"
#include "test.h"
#include "toy/det_loss.h"
#include "vision/owlvit.h"

#define MAXP 4

/* A loss over up to 4 parameter arrays, rebuilt from scratch per call. */
typedef it_tensor *(*loss_fn)(it_ctx *ctx, it_tensor *const *p, void *user);

typedef struct fd_param {
    float *data, *grad;
    int ndim;
    int64_t shape[4];
    int64_t n;
} fd_param;

static double eval_loss(loss_fn f, fd_param *ps, int np, void *user, int backward)
{
    it_ctx ctx;
    it_ctx_init(&ctx, 1 << 20);
    it_tensor t[MAXP], *pp[MAXP];
    for (int i = 0; i < np; i++) {
        it_tensor_init_param(NULL, &t[i], "p", ps[i].data, backward ? ps[i].grad : NULL, ps[i].ndim, ps[i].shape);
        pp[i] = &t[i];
    }
    it_tensor *l = f(&ctx, pp, user);
    double v = l ? it_f32(l)[0] : NAN;
    if (l && backward) it_autograd_backward(NULL, &ctx, l);
    it_ctx_free(&ctx);
    return v;
}

/* Max normalised difference between analytic and numeric gradients. */
static double fd_check(loss_fn f, fd_param *ps, int np, void *user, float h)
{
    for (int i = 0; i < np; i++) memset(ps[i].grad, 0, (size_t)ps[i].n * sizeof(float));
    eval_loss(f, ps, np, user, 1);
    double worst = 0, scale = 1e-3;
    for (int i = 0; i < np; i++)
        for (int64_t k = 0; k < ps[i].n; k++) scale = fmax(scale, fabs(ps[i].grad[k]));
    for (int i = 0; i < np; i++)
        for (int64_t k = 0; k < ps[i].n; k++) {
            float x = ps[i].data[k];
            ps[i].data[k] = x + h;
            double lp = eval_loss(f, ps, np, user, 0);
            ps[i].data[k] = x - h;
            double lm = eval_loss(f, ps, np, user, 0);
            ps[i].data[k] = x;
            double num = (lp - lm) / (2.0 * h);
            worst = fmax(worst, fabs(num - ps[i].grad[k]) / scale);
        }
    return worst;
}

static void fill(float *d, int64_t n, uint64_t seed, float lo, float hi)
{
    it_rng r;
    it_rng_init(&r, seed);
    for (int64_t i = 0; i < n; i++) d[i] = lo + (hi - lo) * it_rng_float(&r);
}

static fd_param param_new(int ndim, const int64_t *shape)
{
    fd_param p = {0};
    p.ndim = ndim;
    p.n = 1;
    for (int i = 0; i < ndim; i++) p.n *= (p.shape[i] = shape[i]);
    p.data = it_calloc((size_t)p.n, sizeof(float));
    p.grad = it_calloc((size_t)p.n, sizeof(float));
    return p;
}

static void param_free(fd_param *p)
{
    it_free(p->data);
    it_free(p->grad);
}

/* ---------------------------------------------------------------- box */

static it_tensor *box_loss(it_ctx *ctx, it_tensor *const *p, void *user)
{
    return it_detloss_box(ctx, p[0], user);
}

IT_TEST(detloss_box_value_and_gradient)
{
    enum { GH = 3, GW = 3, N = GH * GW, IMGS = 2, M = 4 };
    float bias[N * 4];
    it_detloss_box_bias(bias, GH, GW);
    int32_t row[M] = {0, 4, 11, 17};
    /* targets chosen so predictions overlap some, miss others (the GIoU's
     * enclosing-box term) and sit on both sides of each edge */
    float gt[M * 4] = {0.2f, 0.25f, 0.3f, 0.2f, 0.55f, 0.5f, 0.4f, 0.5f, 0.9f, 0.1f, 0.1f, 0.15f, 0.4f, 0.6f, 0.7f, 0.35f};
    it_detloss_box_args a = {M, row, gt, bias, N, 5.0f, 2.0f, 3.0f};
    fd_param p = param_new(IT_SHAPE(IMGS, N, 4));
    fill(p.data, p.n, 7, -1.0f, 1.0f);
    /* value: against the inference path's formula (sigmoid(raw + bias)) */
    double want = 0;
    for (int m = 0; m < M; m++) {
        float c[4], b[4], g[4];
        for (int k = 0; k < 4; k++) c[k] = 1.0f / (1.0f + expf(-(p.data[row[m] * 4 + k] + bias[(row[m] % N) * 4 + k])));
        for (int k = 0; k < 4; k++) want += 5.0 * fabs(c[k] - gt[m * 4 + k]);
        b[0] = c[0] - c[2] / 2, b[1] = c[1] - c[3] / 2, b[2] = c[0] + c[2] / 2, b[3] = c[1] + c[3] / 2;
        g[0] = gt[m * 4] - gt[m * 4 + 2] / 2, g[1] = gt[m * 4 + 1] - gt[m * 4 + 3] / 2;
        g[2] = gt[m * 4] + gt[m * 4 + 2] / 2, g[3] = gt[m * 4 + 1] + gt[m * 4 + 3] / 2;
        want += 2.0 * (1.0 - it_detloss_giou(b, g));
    }
    IT_CHECK_NEAR(eval_loss(box_loss, &p, 1, &a, 0), want / 3.0, 1e-5);
    double worst = fd_check(box_loss, &p, 1, &a, 1e-3f);
    IT_CHECK(worst < 2e-3);
    /* untouched rows get no gradient */
    IT_CHECK(p.grad[1 * 4] == 0.0f && p.grad[5 * 4 + 2] == 0.0f);
    param_free(&p);
}

IT_TEST(detloss_giou_matches_iou_and_rejects_bad_rows)
{
    float a[4] = {0, 0, 2, 2}, b[4] = {1, 1, 3, 3}, c[4] = {4, 4, 5, 5};
    IT_CHECK_NEAR(it_detloss_giou(a, b), it_box_iou(a, b) - (9.0 - 7.0) / 9.0, 1e-6);
    IT_CHECK_NEAR(it_detloss_giou(a, a), 1.0, 1e-6);
    IT_CHECK(it_detloss_giou(a, c) < 0);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    float bias[4] = {0}, gt[4] = {0.5f, 0.5f, 0.2f, 0.2f}, raw[8] = {0};
    int32_t row = 2;
    it_detloss_box_args args = {1, &row, gt, bias, 1, 1, 1, 1};
    it_tensor *x = it_tensor_from(&ctx, raw, IT_SHAPE(2, 4));
    IT_CHECK(it_detloss_box(&ctx, x, &args) == NULL);
    it_err err;
    IT_CHECK(it_ctx_status(&ctx, &err) == IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "detloss_box");
    it_ctx_free(&ctx);
}

/* ---------------------------------------------------------------- class */

typedef struct class_case {
    it_detloss_class_args a;
    float *logits;
} class_case;

static it_tensor *class_loss(it_ctx *ctx, it_tensor *const *p, void *user)
{
    class_case *c = user;
    return it_detloss_class(ctx, p[0], p[1], p[2], &c->a, c->logits);
}

IT_TEST(detloss_class_value_and_gradient)
{
    enum { R = 6, D = 5, T = 3, K = 2, Q = T + K };
    float text_q[T * D];
    fill(text_q, T * D, 11, -1, 1);
    int32_t img_row[K] = {1, 4};
    uint8_t target[R * Q], valid[R * Q];
    for (int i = 0; i < R * Q; i++) {
        target[i] = (uint8_t)((i * 7 + 3) % 5 == 0);
        valid[i] = (uint8_t)(i % 11 != 4);
    }
    float logits[R * Q];
    class_case c = {{T, text_q, K, img_row, target, valid, 0.25f, 2.0f, 2.5f}, logits};
    fd_param p[3] = {param_new(IT_SHAPE(2, 3, D)), param_new(IT_SHAPE(2, 3, 1)), param_new(IT_SHAPE(2, 3, 1))};
    fill(p[0].data, p[0].n, 12, -1, 1);
    fill(p[1].data, p[1].n, 13, -0.5f, 0.5f);
    fill(p[2].data, p[2].n, 14, -1.5f, 1.5f); /* both branches of elu */
    double v = eval_loss(class_loss, p, 3, &c, 0);
    /* logits as the inference code computes them (it_owlvit_logits) */
    it_owlvit_image im = {.n = R, .dq = D, .class_emb = p[0].data, .shift = p[1].data};
    float sc[R], queries[Q * D], want[R * Q];
    for (int r = 0; r < R; r++) sc[r] = (p[2].data[r] > 0 ? p[2].data[r] : expm1f(p[2].data[r])) + 1.0f;
    im.scale = sc;
    memcpy(queries, text_q, sizeof text_q);
    for (int k = 0; k < K; k++) memcpy(queries + (T + k) * D, p[0].data + img_row[k] * D, D * sizeof(float));
    it_owlvit_logits(&im, queries, Q, want);
    IT_CHECK(it_test_max_abs_diff(logits, want, R * Q) < 1e-5);
    double ref = 0;
    for (int i = 0; i < R * Q; i++) {
        if (!valid[i]) continue;
        double pr = 1 / (1 + exp(-(double)want[i])), pt = target[i] ? pr : 1 - pr;
        ref += -(target[i] ? 0.25 : 0.75) * pow(1 - pt, 2.0) * log(pt);
    }
    IT_CHECK_NEAR(v, ref / 2.5, 1e-5);
    IT_CHECK(fd_check(class_loss, p, 3, &c, 1e-3f) < 2e-3);
    /* without alpha, gamma 0: plain BCE */
    c.a.alpha = -1;
    c.a.gamma = 0;
    c.a.valid = NULL;
    IT_CHECK(fd_check(class_loss, p, 3, &c, 1e-3f) < 2e-3);
    for (int i = 0; i < 3; i++) param_free(&p[i]);
}

static it_tensor *class_loss_q(it_ctx *ctx, it_tensor *const *p, void *user)
{
    class_case *c = user;
    return it_detloss_class_q(ctx, p[0], p[1], p[2], p[3], &c->a, c->logits);
}

/* Text queries in the graph (a trainable projection): same value as the
 * constant form, gradients for the queries too. */
IT_TEST(detloss_class_text_query_gradient)
{
    enum { R = 6, D = 5, T = 3, K = 2, Q = T + K };
    int32_t img_row[K] = {0, 3};
    uint8_t target[R * Q];
    for (int i = 0; i < R * Q; i++) target[i] = (uint8_t)(i % 4 == 1);
    fd_param p[4] = {param_new(IT_SHAPE(R, D)), param_new(IT_SHAPE(R, 1)), param_new(IT_SHAPE(R, 1)),
                     param_new(IT_SHAPE(T, D))};
    fill(p[0].data, p[0].n, 31, -1, 1);
    fill(p[1].data, p[1].n, 32, -0.5f, 0.5f);
    fill(p[2].data, p[2].n, 33, -1, 1);
    fill(p[3].data, p[3].n, 34, -1, 1);
    class_case c = {{T, p[3].data, K, img_row, target, NULL, 0.25f, 2.0f, 3.0f}, NULL};
    double v_const = eval_loss(class_loss, p, 3, &c, 0), v_graph = eval_loss(class_loss_q, p, 4, &c, 0);
    IT_CHECK_NEAR(v_graph, v_const, 1e-7);
    IT_CHECK(fd_check(class_loss_q, p, 4, &c, 1e-3f) < 2e-3);
    double gq = 0;
    for (int i = 0; i < T * D; i++) gq += fabs(p[3].grad[i]);
    IT_CHECK(gq > 1e-4);
    for (int i = 0; i < 4; i++) param_free(&p[i]);
}

/* ---------------------------------------------------------------- pairwise */

static it_tensor *pair_loss(it_ctx *ctx, it_tensor *const *p, void *user)
{
    return it_detloss_pairwise(ctx, p[0], *(int *)user);
}

IT_TEST(detloss_pairwise_value_and_gradient)
{
    int P = 4;
    fd_param p = param_new(IT_SHAPE(8, 1));
    fill(p.data, p.n, 21, -3, 3);
    double ref = 0;
    for (int i = 0; i < P; i++) ref += -log(1 / (1 + exp(-((double)p.data[i] - p.data[P + i]))));
    IT_CHECK_NEAR(eval_loss(pair_loss, &p, 1, &P, 0), ref / P, 1e-6);
    IT_CHECK(fd_check(pair_loss, &p, 1, &P, 1e-3f) < 1e-3);
    int bad = 3;
    IT_CHECK(isnan(eval_loss(pair_loss, &p, 1, &bad, 0)));
    param_free(&p);
}
