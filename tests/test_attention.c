/* test_attention.c: the blocked attention kernels against PyTorch fixtures,
 * against the double-precision reference on odd shapes, against finite
 * differences, and their error paths. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/mem.h"
#include "base/threads.h"
#include "kernels_fixture.h"
#include "tensor/attention.h"
#include "test.h"

/* One problem with inputs, fast outputs and reference outputs. */
typedef struct acase {
    it_attn_desc d;
    size_t nq, nk;                      /* floats in q/o/dout and in k/v */
    float *q, *k, *v, *dout;            /* inputs */
    float *o, *lse, *dq, *dk, *dv;      /* fast kernel outputs */
    float *ro, *rlse, *rdq, *rdk, *rdv; /* reference outputs */
    float *madd;                        /* additive mask or NULL */
    uint8_t *mkeep;                     /* boolean mask or NULL */
} acase;

/* Allocates the arrays of a case whose desc is set; inputs from seed. */
static int acase_alloc(acase *c, uint32_t seed)
{
    const it_attn_desc *d = &c->d;
    c->nq = (size_t)d->B * d->n_heads * d->Tq * d->D;
    c->nk = (size_t)d->B * d->n_heads * d->Tk * d->D;
    size_t nl = (size_t)d->B * d->n_heads * d->Tq;
    float **qs[] = {&c->q, &c->dout, &c->o, &c->dq, &c->ro, &c->rdq};
    float **ks[] = {&c->k, &c->v, &c->dk, &c->dv, &c->rdk, &c->rdv};
    for (size_t i = 0; i < 6; i++)
        if (!(*qs[i] = it_calloc(c->nq, sizeof(float))) || !(*ks[i] = it_calloc(c->nk, sizeof(float))))
            return 0;
    if (!(c->lse = it_calloc(nl, sizeof(float))) || !(c->rlse = it_calloc(nl, sizeof(float)))) return 0;
    kf_fill(c->q, c->nq, seed * 10 + 1, 1.5f);
    kf_fill(c->k, c->nk, seed * 10 + 2, 1.5f);
    kf_fill(c->v, c->nk, seed * 10 + 3, 1.0f);
    kf_fill(c->dout, c->nq, seed * 10 + 4, 1.0f);
    return 1;
}

static void acase_free(acase *c)
{
    float *p[] = {c->q, c->k, c->v, c->dout, c->o, c->lse, c->dq, c->dk, c->dv,
                  c->ro, c->rlse, c->rdq, c->rdk, c->rdv, c->madd};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) it_free(p[i]);
    it_free(c->mkeep);
    memset(c, 0, sizeof *c);
}

/* (B, Tk) additive key mask: bias of amplitude amp, -inf from lens[b] on. */
static int acase_add_keys(acase *c, uint32_t seed, float amp, const int *lens)
{
    const it_attn_desc *d = &c->d;
    if (!(c->madd = it_malloc((size_t)d->B * d->Tk * sizeof(float)))) return 0;
    for (int b = 0; b < d->B; b++)
        for (int j = 0; j < d->Tk; j++)
            c->madd[b * d->Tk + j] = j >= lens[b] ? -INFINITY : kf_value(seed, (uint32_t)(b * d->Tk + j)) * amp;
    c->d.mask = (it_attn_mask){.add = c->madd, .sb = d->Tk};
    return 1;
}

/* (B, 1, Tq, Tk) boolean mask, key 0 always kept. */
static int acase_keep_full(acase *c, uint32_t seed, float threshold)
{
    const it_attn_desc *d = &c->d;
    size_t n = (size_t)d->B * d->Tq * d->Tk;
    if (!(c->mkeep = it_malloc(n))) return 0;
    for (size_t i = 0; i < n; i++)
        c->mkeep[i] = i % (size_t)d->Tk == 0 || kf_value(seed, (uint32_t)i) > threshold;
    c->d.mask = (it_attn_mask){.keep = c->mkeep, .sb = (ptrdiff_t)d->Tq * d->Tk, .sq = d->Tk};
    return 1;
}

static int acase_run(it_test_ctx *t, acase *c)
{
    it_err e;
    it_err_clear(&e);
    IT_CHECK_OK(it_attn_forward(&e, c->o, c->lse, c->q, c->k, c->v, &c->d), &e);
    IT_CHECK_OK(it_attn_backward(&e, c->dq, c->dk, c->dv, c->dout, c->q, c->k, c->v, c->o, c->lse, &c->d), &e);
    IT_CHECK_OK(it_attn_forward_ref(&e, c->ro, c->rlse, c->q, c->k, c->v, &c->d), &e);
    IT_CHECK_OK(it_attn_backward_ref(&e, c->rdq, c->rdk, c->rdv, c->dout, c->q, c->k, c->v, &c->d), &e);
    return t->failures == 0;
}

/* ------------------------------------------------------------------------ */

IT_TEST(attn_torch_fixture_parity)
{
    kf_fixture f;
    if (!kf_load(t, &f, "attention")) return;
    size_t i;
    json_t *jc;
    json_array_foreach(json_object_get(f.root, "cases"), i, jc) {
        const char *name = json_string_value(json_object_get(jc, "name"));
        int B = kf_int(jc, "B"), H = kf_int(jc, "H"), Tq = kf_int(jc, "Tq"), Tk = kf_int(jc, "Tk"), D = kf_int(jc, "D");
        acase c;
        memset(&c, 0, sizeof c);
        int bthd = strcmp(json_string_value(json_object_get(jc, "layout")), "bthd") == 0;
        c.d = bthd ? it_attn_desc_bthd(B, H, Tq, Tk, D) : it_attn_desc_bhtd(B, H, Tq, Tk, D);
        c.d.causal = kf_int(jc, "causal");
        c.d.scale = (float)kf_num(jc, "scale");
        IT_REQUIRE(acase_alloc(&c, (uint32_t)kf_int(jc, "seed")));
        json_t *m = json_object_get(jc, "mask");
        const char *kind = json_string_value(json_object_get(m, "kind"));
        if (strcmp(kind, "add_keys") == 0) {
            int lens[8];
            for (int b = 0; b < B && b < 8; b++) lens[b] = (int)json_integer_value(json_array_get(json_object_get(m, "lens"), b));
            IT_REQUIRE(acase_add_keys(&c, (uint32_t)kf_int(m, "seed"), (float)kf_num(m, "amp"), lens));
        } else if (strcmp(kind, "keep_full") == 0) {
            IT_REQUIRE(acase_keep_full(&c, (uint32_t)kf_int(m, "seed"), (float)kf_num(m, "threshold")));
        }
        acase_run(t, &c);
        const float *o = kf_array(t, &f, jc, "o", c.nq), *lse = kf_array(t, &f, jc, "lse", (size_t)B * H * Tq);
        const float *dq = kf_array(t, &f, jc, "dq", c.nq), *dk = kf_array(t, &f, jc, "dk", c.nk);
        const float *dv = kf_array(t, &f, jc, "dv", c.nk);
        if (o && lse && dq && dk && dv) {
            double e[10] = {
                kf_norm_err(c.o, o, c.nq, 1e-3), kf_norm_err(c.lse, lse, (size_t)B * H * Tq, 1e-3),
                kf_norm_err(c.dq, dq, c.nq, 1e-3), kf_norm_err(c.dk, dk, c.nk, 1e-3),
                kf_norm_err(c.dv, dv, c.nk, 1e-3),
                kf_norm_err(c.ro, o, c.nq, 1e-3), kf_norm_err(c.rlse, lse, (size_t)B * H * Tq, 1e-3),
                kf_norm_err(c.rdq, dq, c.nq, 1e-3), kf_norm_err(c.rdk, dk, c.nk, 1e-3),
                kf_norm_err(c.rdv, dv, c.nk, 1e-3)};
            printf("    %-22s fast o %.1e lse %.1e dq %.1e dk %.1e dv %.1e | ref %.1e %.1e %.1e %.1e %.1e\n",
                   name, e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7], e[8], e[9]);
            for (int j = 0; j < 10; j++)
                if (!(e[j] < 2e-6 * (j < 5 ? 4 : 1)))
                    it_test_fail(t, __FILE__, __LINE__, "%s: array %d normalised error %.3g", name, j, e[j]);
        }
        acase_free(&c);
    }
    kf_free(&f);
}

/* Fast against reference on shapes that are not multiples of the blocks. */
IT_TEST(attn_fast_matches_reference_odd_shapes)
{
    static const struct {
        int B, H, Tq, Tk, D, causal, bthd, mask; /* mask: 0 none, 1 add keys, 2 keep */
    } cases[] = {
        {2, 3, 300, 300, 40, 0, 0, 0}, /* several query and key blocks, SD head dim */
        {1, 2, 257, 77, 17, 0, 1, 0},  /* cross-attention to 77 text tokens */
        {2, 1, 130, 517, 64, 1, 0, 0}, /* causal, Tq < Tk */
        {1, 2, 333, 90, 7, 1, 1, 0},   /* causal, Tq > Tk */
        {1, 1, 1, 1, 1, 0, 0, 0},
        {2, 2, 65, 600, 40, 0, 1, 1},  /* key padding across key blocks */
        {1, 2, 100, 270, 33, 0, 0, 2}, /* boolean mask across key blocks */
        {1, 3, 77, 77, 64, 1, 1, 1},   /* CLIP text: causal + padding */
        {1, 1, 70, 300, 160, 0, 0, 0}, /* wide heads (SD 2.x uses D=64..160) */
    };
    for (size_t n = 0; n < sizeof cases / sizeof cases[0]; n++) {
        acase c;
        memset(&c, 0, sizeof c);
        c.d = cases[n].bthd ? it_attn_desc_bthd(cases[n].B, cases[n].H, cases[n].Tq, cases[n].Tk, cases[n].D)
                            : it_attn_desc_bhtd(cases[n].B, cases[n].H, cases[n].Tq, cases[n].Tk, cases[n].D);
        c.d.causal = cases[n].causal;
        IT_REQUIRE(acase_alloc(&c, 100 + (uint32_t)n));
        if (cases[n].mask == 1) {
            int lens[2] = {cases[n].Tk - 3, cases[n].Tk / 3};
            IT_REQUIRE(acase_add_keys(&c, 7, 1.0f, lens));
        } else if (cases[n].mask == 2) {
            IT_REQUIRE(acase_keep_full(&c, 8, -0.2f));
        }
        if (!acase_run(t, &c)) return;
        size_t nl = (size_t)c.d.B * c.d.n_heads * c.d.Tq;
        double e[5] = {kf_norm_err(c.o, c.ro, c.nq, 1e-3), kf_norm_err(c.lse, c.rlse, nl, 1e-3),
                       kf_norm_err(c.dq, c.rdq, c.nq, 1e-3), kf_norm_err(c.dk, c.rdk, c.nk, 1e-3),
                       kf_norm_err(c.dv, c.rdv, c.nk, 1e-3)};
        printf("    B%d H%d Tq%d Tk%d D%d c%d l%d m%d: o %.1e lse %.1e dq %.1e dk %.1e dv %.1e\n",
               cases[n].B, cases[n].H, cases[n].Tq, cases[n].Tk, cases[n].D, cases[n].causal,
               cases[n].bthd, cases[n].mask, e[0], e[1], e[2], e[3], e[4]);
        for (int j = 0; j < 5; j++)
            if (!(e[j] < 1e-5)) it_test_fail(t, __FILE__, __LINE__, "case %zu array %d error %.3g", n, j, e[j]);
        acase_free(&c);
    }
}

/* q, k, v as slices of one fused (B, T, 3*H*D) projection; grads into one
 * (B, T, 3*H*D) buffer; accumulate mode adds to what is there. */
IT_TEST(attn_packed_qkv_and_accumulate)
{
    enum { B = 2, H = 2, T = 70, D = 9, ROWF = 3 * H * D };
    size_t n = (size_t)B * T * ROWF;
    float *qkv = it_malloc(n * sizeof(float)), *g = it_malloc(n * sizeof(float));
    acase c;
    memset(&c, 0, sizeof c);
    c.d = it_attn_desc_bhtd(B, H, T, T, D);
    c.d.causal = 1;
    IT_REQUIRE(qkv && g && acase_alloc(&c, 5));
    /* scatter the case's (B,H,T,D) inputs into the packed buffer */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++)
                for (int x = 0; x < D; x++) {
                    size_t src = (((size_t)b * H + h) * T + i) * D + x, dst = ((size_t)b * T + i) * ROWF + h * D + x;
                    qkv[dst] = c.q[src], qkv[dst + H * D] = c.k[src], qkv[dst + 2 * H * D] = c.v[src];
                }
    acase_run(t, &c);
    it_attn_desc d = c.d;
    d.q = d.k = d.v = it_attn_layout_bthd_packed(H, T, D, ROWF);
    d.o = it_attn_layout_bhtd(H, T, D);
    d.accumulate = 1;
    for (size_t i = 0; i < n; i++) g[i] = 1.0f;
    it_err e;
    IT_REQUIRE_OK(it_attn_forward(&e, c.o, c.lse, qkv, qkv + H * D, qkv + 2 * H * D, &d), &e);
    IT_REQUIRE_OK(it_attn_backward(&e, g, g + H * D, g + 2 * H * D, c.dout, qkv, qkv + H * D, qkv + 2 * H * D,
                                   c.o, c.lse, &d), &e);
    IT_CHECK(kf_norm_err(c.o, c.ro, c.nq, 1e-3) < 1e-5);
    double worst = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++)
                for (int x = 0; x < D; x++) {
                    size_t src = (((size_t)b * H + h) * T + i) * D + x, dst = ((size_t)b * T + i) * ROWF + h * D + x;
                    worst = fmax(worst, fabs(g[dst] - 1.0f - c.rdq[src]));
                    worst = fmax(worst, fabs(g[dst + H * D] - 1.0f - c.rdk[src]));
                    worst = fmax(worst, fabs(g[dst + 2 * H * D] - 1.0f - c.rdv[src]));
                }
    IT_CHECK(worst < 1e-5);
    acase_free(&c);
    it_free(qkv);
    it_free(g);
}

/* Central differences of L = sum(o * dout) through the fast forward, L
 * summed in double. Float outputs limit the precision: eps 1e-2 on inputs
 * of size ~1 gives about 1e-5 truncation and rounding error (measured 1e-5);
 * tolerance 1e-4 absolute + 0.1 % relative. */
static double fd_loss(acase *c)
{
    it_err e;
    it_attn_forward(&e, c->o, NULL, c->q, c->k, c->v, &c->d);
    double L = 0;
    for (size_t i = 0; i < c->nq; i++) L += (double)c->o[i] * c->dout[i];
    return L;
}

IT_TEST(attn_finite_difference_gradients)
{
    int saved = it_threads_get();
    it_threads_set(1); /* hundreds of tiny calls: no point in waking threads */
    for (int variant = 0; variant < 2; variant++) {
        acase c;
        memset(&c, 0, sizeof c);
        c.d = it_attn_desc_bhtd(1, 2, 5, 7, 3);
        c.d.causal = variant;
        IT_REQUIRE(acase_alloc(&c, 40 + (uint32_t)variant));
        if (variant == 1) {
            int lens[1] = {6};
            IT_REQUIRE(acase_add_keys(&c, 9, 0.5f, lens));
        }
        acase_run(t, &c);
        float *in[3] = {c.q, c.k, c.v};
        const float *grad[3] = {c.dq, c.dk, c.dv};
        size_t len[3] = {c.nq, c.nk, c.nk};
        double worst = 0;
        for (int a = 0; a < 3; a++)
            for (size_t i = 0; i < len[a]; i++) {
                float keep = in[a][i];
                const float eps = 1e-2f;
                in[a][i] = keep + eps;
                double lp = fd_loss(&c);
                in[a][i] = keep - eps;
                double lm = fd_loss(&c);
                in[a][i] = keep;
                double fd = (lp - lm) / (2.0 * eps), an = grad[a][i];
                double err = fabs(fd - an) / (1e-4 + 1e-3 * fabs(fd));
                if (err > worst) worst = err;
            }
        printf("    variant %d: worst error / tolerance = %.3f\n", variant, worst);
        IT_CHECK(worst <= 1.0);
        acase_free(&c);
    }
    it_threads_set(saved);
}

/* NULL gradients are skipped; the others are unchanged, bit for bit, for a
 * plain shape and one split over key ranges (one (b, h) pair). */
IT_TEST(attn_backward_optional_grads)
{
    for (int variant = 0; variant < 2; variant++) {
        acase c;
        memset(&c, 0, sizeof c);
        c.d = variant ? it_attn_desc_bhtd(1, 1, 90, 600, 24) : it_attn_desc_bthd(2, 3, 70, 77, 40);
        c.d.causal = variant;
        IT_REQUIRE(acase_alloc(&c, 60 + (uint32_t)variant));
        it_err e;
        IT_REQUIRE_OK(it_attn_forward(&e, c.o, c.lse, c.q, c.k, c.v, &c.d), &e);
        IT_REQUIRE_OK(it_attn_backward(&e, c.dq, c.dk, c.dv, c.dout, c.q, c.k, c.v, c.o, c.lse, &c.d), &e);
        IT_REQUIRE_OK(it_attn_backward(&e, c.rdq, NULL, NULL, c.dout, c.q, c.k, c.v, c.o, c.lse, &c.d), &e);
        IT_REQUIRE_OK(it_attn_backward(&e, NULL, c.rdk, c.rdv, c.dout, c.q, c.k, c.v, c.o, c.lse, &c.d), &e);
        IT_CHECK(memcmp(c.dq, c.rdq, c.nq * sizeof(float)) == 0);
        IT_CHECK(memcmp(c.dk, c.rdk, c.nk * sizeof(float)) == 0);
        IT_CHECK(memcmp(c.dv, c.rdv, c.nk * sizeof(float)) == 0);
        IT_CHECK_INT(it_attn_backward(&e, NULL, NULL, NULL, c.dout, c.q, c.k, c.v, c.o, c.lse, &c.d), IT_ERR_ARG);
        IT_CHECK_STR(e.msg, "attention backward: dq, dk and dv are all NULL");
        acase_free(&c);
    }
}

/* Results must not depend on the thread count (tasks are fixed by shape). */
IT_TEST(attn_thread_count_independent)
{
    acase c;
    memset(&c, 0, sizeof c);
    c.d = it_attn_desc_bhtd(1, 1, 200, 700, 24); /* one (b, h) pair: split backward */
    IT_REQUIRE(acase_alloc(&c, 77));
    it_err e;
    int saved = it_threads_get();
    it_threads_set(1);
    IT_CHECK_OK(it_attn_forward(&e, c.ro, c.rlse, c.q, c.k, c.v, &c.d), &e);
    IT_CHECK_OK(it_attn_backward(&e, c.rdq, c.rdk, c.rdv, c.dout, c.q, c.k, c.v, c.ro, c.rlse, &c.d), &e);
    it_threads_set(3);
    IT_CHECK_OK(it_attn_forward(&e, c.o, c.lse, c.q, c.k, c.v, &c.d), &e);
    IT_CHECK_OK(it_attn_backward(&e, c.dq, c.dk, c.dv, c.dout, c.q, c.k, c.v, c.o, c.lse, &c.d), &e);
    it_threads_set(saved);
    IT_CHECK(memcmp(c.o, c.ro, c.nq * sizeof(float)) == 0);
    IT_CHECK(memcmp(c.dq, c.rdq, c.nq * sizeof(float)) == 0);
    IT_CHECK(memcmp(c.dk, c.rdk, c.nk * sizeof(float)) == 0);
    IT_CHECK(memcmp(c.dv, c.rdv, c.nk * sizeof(float)) == 0);
    acase_free(&c);
}

/* A row whose keys are all hidden: output 0, lse -inf, zero gradients. */
IT_TEST(attn_fully_masked_row)
{
    acase c;
    memset(&c, 0, sizeof c);
    c.d = it_attn_desc_bhtd(2, 1, 4, 300, 8);
    IT_REQUIRE(acase_alloc(&c, 3));
    int lens[2] = {0, 300}; /* batch 0 sees nothing */
    IT_REQUIRE(acase_add_keys(&c, 4, 1.0f, lens));
    acase_run(t, &c);
    size_t half = c.nq / 2;
    int zero = 1, finite = 1;
    for (size_t i = 0; i < half; i++) zero &= c.o[i] == 0.0f && c.dq[i] == 0.0f && c.ro[i] == 0.0f;
    for (size_t i = 0; i < c.nk / 2; i++) zero &= c.dk[i] == 0.0f && c.dv[i] == 0.0f;
    for (size_t i = 0; i < c.nq; i++) finite &= isfinite(c.o[i]) && isfinite(c.dq[i]);
    IT_CHECK(zero);
    IT_CHECK(finite);
    IT_CHECK(c.lse[0] == -INFINITY && c.rlse[0] == -INFINITY && isfinite(c.lse[4]));
    IT_CHECK(kf_norm_err(c.o + half, c.ro + half, half, 1e-3) < 1e-5);
    acase_free(&c);
}

IT_TEST(attn_rejects_bad_arguments)
{
    float x[64] = {0};
    it_err e;
    it_attn_desc d = it_attn_desc_bhtd(1, 1, 2, 2, 4);
    d.Tk = 0;
    IT_CHECK_INT(it_attn_forward(&e, x, NULL, x, x, x, &d), IT_ERR_ARG);
    IT_CHECK_STR(e.msg, "attention: sizes B=1 H=1 Tq=2 Tk=0 D=4 must all be >= 1");
    d = it_attn_desc_bhtd(1, 1, 2, 2, 4);
    d.k.st = 3;
    IT_CHECK_INT(it_attn_forward(&e, x, NULL, x, x, x, &d), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "layout of k has strides (8, 8, 3)");
    d = it_attn_desc_bhtd(1, 1, 2, 2, 4);
    IT_CHECK_INT(it_attn_forward(&e, x, NULL, NULL, x, x, &d), IT_ERR_ARG);
    IT_CHECK_STR(e.msg, "attention: q is NULL");
    IT_CHECK_INT(it_attn_backward(&e, x, x, x, x, x, x, x, x, NULL, &d), IT_ERR_ARG);
    IT_CHECK_STR(e.msg, "attention: lse is NULL");
    d.scale = NAN;
    IT_CHECK_INT(it_attn_forward_ref(&e, x, NULL, x, x, x, &d), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "scale nan is not finite");
    d.scale = 0;
    uint8_t keep[4] = {1, 1, 1, 1};
    d.mask = (it_attn_mask){.keep = keep, .sb = -1};
    IT_CHECK_INT(it_attn_backward_ref(&e, x, x, x, x, x, x, x, &d), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "mask strides (-1, 0, 0)");
    IT_CHECK_INT(it_attn_forward(&e, x, NULL, x, x, x, NULL), IT_ERR_ARG);
    /* out of memory: every allocation of each call fails in turn */
    d = it_attn_desc_bhtd(1, 1, 2, 2, 4);
    float lse[2];
    it_mem_fail_after(0, 0);
    IT_CHECK_INT(it_attn_forward(&e, x, lse, x, x, x, &d), IT_ERR_NOMEM);
    IT_CHECK_CONTAINS(e.msg, "no memory");
    it_mem_fail_after(0, 0);
    IT_CHECK_INT(it_attn_backward(&e, x, x + 8, x + 16, x + 24, x, x, x, x + 32, lse, &d), IT_ERR_NOMEM);
    it_mem_fail_after(0, 0);
    IT_CHECK_INT(it_attn_forward_ref(&e, x, lse, x, x, x, &d), IT_ERR_NOMEM);
    it_mem_fail_after(0, 0);
    IT_CHECK_INT(it_attn_backward_ref(&e, x, x + 8, x + 16, x + 24, x, x, x, &d), IT_ERR_NOMEM);
    it_mem_fail_after(-1, 0);
}

IT_TEST(attn_flops)
{
    it_attn_desc d = it_attn_desc_bhtd(2, 8, 4096, 4096, 40);
    IT_CHECK_NEAR(it_attn_flops_forward(&d), 4.0 * 16 * 4096.0 * 4096 * 40, 1);
    d = it_attn_desc_bhtd(1, 1, 3, 2, 1);
    d.causal = 1; /* visible pairs: 1 + 2 + 2 */
    IT_CHECK_NEAR(it_attn_flops_forward(&d), 20, 1e-9);
    IT_CHECK_NEAR(it_attn_flops_backward(&d), 50, 1e-9);
}
