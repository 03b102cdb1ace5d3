/* test_pretrain_clip.c: the toy CLIP: tokenizer determinism and coverage,
 * the engine ops it added (exp, L2 normalisation) and a finite-difference
 * check through both towers, training lowers the loss, resume is
 * bit-identical, exported folders load through the real loaders with the
 * same embeddings, and the shipped weights' measured quality. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/threads.h"
#include "models/sd_pipeline_load.h"
#include "tensor/autograd.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_loss.h"
#include "tensor/optim.h"
#include "test.h"
#include "text/clip_tokenizer.h"
#include "toy/captions.h"
#include "toy/characters.h"
#include "toy/pretrain_clip.h"
#include "toy/toyclip.h"
#include "vision/clip.h"

#define SHIPPED "models/toy"

static int same_file(const char *a, const char *b)
{
    uint8_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    it_err e;
    int same = !it_file_read(&e, &x, &nx, a, 64u << 20) && !it_file_read(&e, &y, &ny, b, 64u << 20) && nx == ny &&
               memcmp(x, y, nx) == 0;
    it_free(x);
    it_free(y);
    return same;
}

/* ================================================================ tokenizer */

typedef struct word_check {
    const it_clip_tokenizer *tok;
    int words, single;
    char first_split[64];
} word_check;

static it_status check_word(it_err *err, void *user, const uint8_t *w, size_t n)
{
    word_check *c = user;
    int32_t *ids = NULL;
    size_t k = 0;
    IT_TRY(it_clip_tokenize(err, c->tok, &ids, &k, (const char *)w, n));
    c->words++;
    if (k == 1) c->single++;
    else if (!c->first_split[0]) snprintf(c->first_split, sizeof c->first_split, "%.*s", (int)n, (const char *)w);
    it_free(ids);
    return IT_OK;
}

IT_TEST(pretrain_clip_tokenizer_deterministic_and_covering) {
    it_err e;
    const char *a = it_test_tmp(t, "tok_a"), *b = it_test_tmp(t, "tok_b");
    it_bpe_result ra, rb;
    IT_REQUIRE_OK(it_toyclip_tokenizer_build(&e, a, IT_TOYCLIP_TOKENIZER_IMAGES, &ra), &e);
    IT_REQUIRE_OK(it_toyclip_tokenizer_build(&e, b, IT_TOYCLIP_TOKENIZER_IMAGES, &rb), &e);
    IT_CHECK_INT((long long)ra.vocab_size, (long long)rb.vocab_size);
    static const char *files[] = {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"};
    char pa[4096], pb[4096];
    for (int i = 0; i < 4; i++) {
        snprintf(pa, sizeof pa, "%s/%s", a, files[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, files[i]);
        IT_CHECK(same_file(pa, pb));
        /* The shipped tokenizer is exactly what the build gives. */
        snprintf(pb, sizeof pb, SHIPPED "/tokenizer/%s", files[i]);
        IT_CHECK(same_file(pa, pb));
    }
    IT_CHECK(ra.vocab_size > 600 && ra.vocab_size < 4096);
    it_clip_tokenizer *tok;
    IT_REQUIRE_OK(it_clip_tokenizer_load(&e, &tok, a), &e);
    /* Every word of fresh captions (another seed, every style) is one token. */
    word_check wc = {tok, 0, 0, ""};
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    for (int i = 0; i < 300; i++) {
        it_toy_attrs at;
        it_toy_caption cap;
        IT_REQUIRE_OK(it_toy_sample(&e, &at, &c, 4242, (uint64_t)i, IT_TOY_PRETRAIN), &e);
        IT_REQUIRE_OK(it_toy_caption_make(&e, &cap, &at, (it_toy_caption_style)(i % 3), 1, 0, 4242, (uint64_t)i, i),
                      &e);
        IT_REQUIRE_OK(it_clip_pretokenize(&e, cap.text, strlen(cap.text), check_word, &wc), &e);
    }
    /* The caption words of every pretraining value and name, too. */
    for (int at = 0; at < IT_TOY_N_ATTRS; at++) {
        const it_toy_attr_info *ai = it_toy_attr_get(at);
        for (int v = 0; v < ai->n_values; v++) {
            if (at == IT_TOY_POSE && v == IT_TOY_POSE_LANDING) continue; /* held out */
            if (at == IT_TOY_MARKING && it_toy_character_by_marking(v) >= 0 &&
                it_toy_character_get(it_toy_character_by_marking(v))->held_out)
                continue;
            const char *w = ai->values[v].words;
            IT_REQUIRE_OK(it_clip_pretokenize(&e, w, strlen(w), check_word, &wc), &e);
        }
    }
    for (int i = 0; i < it_toy_character_count(); i++)
        if (!it_toy_character_get(i)->held_out) {
            const char *n = it_toy_character_get(i)->name;
            IT_REQUIRE_OK(it_clip_pretokenize(&e, n, strlen(n), check_word, &wc), &e);
        }
    IT_CHECK(wc.words > 3000);
    if (wc.single != wc.words) it_test_fail(t, __FILE__, __LINE__, "word '%s' is split", wc.first_split);
    /* Trigger words and held-out names: several byte-level pieces, no
     * unknown token, decoded back exactly. */
    static const char *rare[] = {"vincent", "herolanding", "sks", "zyxw", "crème"};
    for (int i = 0; i < 5; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        char *back = NULL;
        IT_REQUIRE_OK(it_clip_tokenize(&e, tok, &ids, &n, rare[i], strlen(rare[i])), &e);
        IT_CHECK(n >= 2);
        IT_REQUIRE_OK(it_clip_decode(&e, tok, &back, ids, n, 1), &e);
        IT_CHECK_STR(back, rare[i]);
        it_free(back);
        it_free(ids);
    }
    it_clip_tokenizer_free(tok);
    IT_CHECK_CONTAINS(it_toyclip_tokenizer_build(&e, a, 0, NULL) ? e.msg : "", "n_images must be >= 1");
}

/* ================================================================ engine ops */

static const float W[12] = {0.3f, -1.2f, 0.7f, 2.0f, -0.5f, 0.9f, 1.1f, -0.4f, 0, 0, 0, 0};

/* sum(W * f(x)) over the first two rows of a (3, 4) x, in double: f = exp
 * (op 0) or x / |row| (op 1). */
static double weighted(int op, const float *x)
{
    double acc = 0;
    for (int row = 0; row < 2; row++) {
        double ss = 0;
        for (int d = 0; d < 4; d++) ss += (double)x[row * 4 + d] * x[row * 4 + d];
        for (int d = 0; d < 4; d++) {
            double v = x[row * 4 + d];
            acc += W[row * 4 + d] * (op ? v / sqrt(ss) : exp(v));
        }
    }
    return acc;
}

IT_TEST(pretrain_clip_ops_exp_and_l2_normalize) {
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    float xv[12], g[12] = {0};
    it_rng r;
    it_rng_init(&r, 3);
    it_rng_normal(&r, xv, 12, 0, 1.5f);
    xv[8] = xv[9] = xv[10] = xv[11] = 1e-14f; /* a row below eps: the clamp */
    it_err e;
    it_tensor x;
    IT_REQUIRE_OK(it_tensor_init_param(&e, &x, "x", xv, g, IT_SHAPE(3, 4)), &e);
    /* Forward against double formulas. */
    it_tensor *y = it_op_exp(&ctx, &x);
    it_tensor *n = it_op_l2_normalize(&ctx, &x, 1e-12f);
    IT_REQUIRE(y && n);
    double worst = 0;
    for (int i = 0; i < 12; i++) worst = fmax(worst, fabs(it_f32(y)[i] - exp(xv[i])) / exp(xv[i]));
    for (int row = 0; row < 3; row++) {
        double ss = 0;
        for (int d = 0; d < 4; d++) ss += (double)xv[row * 4 + d] * xv[row * 4 + d];
        double nr = fmax(sqrt(ss), 1e-12);
        for (int d = 0; d < 4; d++) worst = fmax(worst, fabs(it_f32(n)[row * 4 + d] - xv[row * 4 + d] / nr));
    }
    IT_CHECK(worst < 2e-7);
    /* Finite differences of L = sum(w * f(x)) on the two regular rows. */
    for (int op = 0; op < 2; op++) {
        memset(g, 0, sizeof g);
        it_ctx_reset(&ctx);
        it_tensor *wt = it_tensor_from(&ctx, W, IT_SHAPE(3, 4));
        it_tensor *f = op ? it_op_l2_normalize(&ctx, &x, 1e-12f) : it_op_exp(&ctx, &x);
        IT_REQUIRE_OK(it_autograd_backward(&e, &ctx, it_op_sum(&ctx, it_op_mul(&ctx, f, wt))), &e);
        double fd_worst = 0;
        for (int i = 0; i < 8; i++) {
            float keep = xv[i];
            xv[i] = keep + 1e-2f;
            double lp = weighted(op, xv);
            xv[i] = keep - 1e-2f;
            double lm = weighted(op, xv);
            xv[i] = keep;
            double fd = (lp - lm) / 2e-2;
            fd_worst = fmax(fd_worst, fabs(fd - g[i]) / fmax(1.0, fabs(g[i])));
        }
        IT_CHECK(fd_worst < 2e-3);
    }
    /* The clamped row: gradient dy / eps there (PyTorch's clamp_min rule). */
    IT_CHECK(isfinite(g[8]));
    /* Errors name the op. */
    it_ctx_reset(&ctx);
    IT_CHECK(it_op_l2_normalize(&ctx, &x, 0.0f) == NULL);
    IT_CHECK_CONTAINS(it_ctx_status(&ctx, &e) ? e.msg : "", "l2_normalize: eps 0 must be > 0");
    it_ctx_free(&ctx);
}

/* ================================================================ whole-model gradient */

/* A CLIP small enough for finite differences through both towers. */
static it_status micro_model(it_err *e, it_toyclip *m, it_clip_tokenizer **tok, const char *tok_dir)
{
    IT_TRY(it_toyclip_tokenizer_build(e, tok_dir, 500, NULL));
    IT_TRY(it_clip_tokenizer_load(e, tok, tok_dir));
    it_toyclip_config c;
    it_toyclip_config_make(&c, IT_TOYCLIP_TINY, *tok);
    c.text.hidden = c.vision.hidden = 8;
    c.text.intermediate = c.vision.intermediate = 12;
    c.text.n_layers = c.vision.n_layers = 1;
    c.vision.patch_size = 64;
    c.embed_dim = c.text.projection_dim = c.vision.projection_dim = 6;
    return it_toyclip_init(e, m, &c, 9);
}

typedef struct fd_state {
    it_toyclip *m;
    it_ctx *ctx;
    it_tensor *px, *ids;
    double worst;
    char worst_name[128];
    int checked;
} fd_state;

static double loss_value(fd_state *s)
{
    it_err e;
    it_ctx_reset(s->ctx);
    it_autograd_set_enabled(s->ctx, 0);
    it_tensor *l = NULL;
    double v = it_toyclip_loss(&e, s->ctx, s->m, s->px, s->ids, &l, NULL) ? NAN : it_f32(l)[0];
    it_autograd_set_enabled(s->ctx, 1);
    return v;
}

static it_status fd_param(it_err *err, void *user, it_tensor *t)
{
    (void)err;
    fd_state *s = user;
    float *x = it_f32(t);
    for (int k = 0; k < 2; k++) {
        int64_t i = (int64_t)((k * 7919u + 13u) % (uint64_t)t->n);
        float keep = x[i];
        x[i] = keep + 1e-2f;
        double lp = loss_value(s);
        x[i] = keep - 1e-2f;
        double lm = loss_value(s);
        x[i] = keep;
        double fd = (lp - lm) / 2e-2, an = t->grad[i];
        double d = fabs(fd - an) / fmax(1.0, fabs(an));
        if (d > s->worst) s->worst = d, snprintf(s->worst_name, sizeof s->worst_name, "%s[%lld]", t->name, (long long)i);
        s->checked++;
    }
    return IT_OK;
}

IT_TEST(pretrain_clip_gradcheck_both_towers) {
    it_threads_set(1); /* hundreds of tiny forwards: threads only add waiting */
    it_err e;
    it_toyclip m;
    it_clip_tokenizer *tok;
    IT_REQUIRE_OK(micro_model(&e, &m, &tok, it_test_tmp(t, "tok")), &e);
    /* Larger weights than the initialisation so that every path carries
     * gradient worth checking. */
    for (size_t i = 0; i < m.text.params.n_floats; i++) m.text.params.data[i] += 0.3f * it_rng_normal_at(5, i);
    for (size_t i = 0; i < m.vision.params.n_floats; i++) m.vision.params.data[i] += 0.3f * it_rng_normal_at(6, i);
    m.logit_scale = 1.0f;
    it_toyclip_batch b;
    IT_REQUIRE_OK(it_toyclip_batch_alloc(&e, &b, 3), &e);
    IT_REQUIRE_OK(it_toyclip_batch_make(&e, &b, tok, &m.pre, 1, 0, 0.25f, 1), &e);
    it_ctx ctx, in;                  /* in: the inputs, which outlive every reset of ctx */
    it_ctx_init(&ctx, 0);
    it_ctx_init(&in, 0);
    it_tensor *px = it_tensor_wrap(&in, b.pixels, IT_DTYPE_F32, IT_SHAPE(3, 3, 128, 128));
    it_tensor *ids = it_tensor_wrap(&in, b.ids, IT_DTYPE_I32, IT_SHAPE(3, b.T));
    IT_REQUIRE(px && ids);
    it_tensor *loss;
    it_toyclip_stats st;
    IT_REQUIRE_OK(it_toyclip_loss(&e, &ctx, &m, px, ids, &loss, &st), &e);
    IT_REQUIRE_OK(it_autograd_backward(&e, &ctx, loss), &e);
    fd_state s = {&m, &ctx, px, ids, 0, "", 0};
    IT_REQUIRE_OK(it_toyclip_each_param(&e, &m, fd_param, &s), &e);
    /* Every tensor of both towers, the projections and the temperature. */
    IT_CHECK(s.checked == 2 * (int)(m.text.params.n + m.vision.params.n + 1));
    if (s.worst >= 2e-3) it_test_fail(t, __FILE__, __LINE__, "gradient of %s off by %g", s.worst_name, s.worst);
    it_ctx_free(&ctx);
    it_ctx_free(&in);
    it_toyclip_batch_free(&b);
    it_toyclip_free(&m);
    it_clip_tokenizer_free(tok);
    it_threads_set(0);
}

/* ================================================================ export */

/* Max |a - b| / max |b|. */
static double rel_err(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i])), m = fmax(m, fabs((double)b[i]));
    return m > 0 ? d / m : d;
}

IT_TEST(pretrain_clip_export_loads_through_real_loaders) {
    it_threads_set(1);
    it_err e;
    it_clip_tokenizer *tok;
    IT_REQUIRE_OK(it_clip_tokenizer_load(&e, &tok, SHIPPED "/tokenizer"), &e);
    it_toyclip_config cfg;
    it_toyclip_config_make(&cfg, IT_TOYCLIP_TINY, tok);
    it_toyclip m;
    IT_REQUIRE_OK(it_toyclip_init(&e, &m, &cfg, 21), &e);
    m.logit_scale = 3.25f;
    it_toyclip_batch b;
    IT_REQUIRE_OK(it_toyclip_batch_alloc(&e, &b, 4), &e);
    IT_REQUIRE_OK(it_toyclip_batch_make(&e, &b, tok, &m.pre, 3, 0, 0.5f, 0), &e);
    /* In memory: the training model's projected embeddings and hidden states. */
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_autograd_set_enabled(&ctx, 0);
    int E = cfg.embed_dim, H = cfg.text.hidden;
    it_tensor *px = it_tensor_wrap(&ctx, b.pixels, IT_DTYPE_F32, IT_SHAPE(4, 3, 128, 128));
    it_tensor *ids = it_tensor_wrap(&ctx, b.ids, IT_DTYPE_I32, IT_SHAPE(4, b.T));
    it_clip_vision_out vo;
    it_clip_text_out to;
    IT_REQUIRE_OK(it_clip_vision_forward(&e, &ctx, &m.vision, px, &vo), &e);
    IT_REQUIRE_OK(it_clip_text_forward(&e, &ctx, &m.text, ids, 0, 1, &to), &e);
    float *img_ref = it_malloc(4 * (size_t)E * sizeof(float)), *txt_ref = it_malloc(4 * (size_t)E * sizeof(float));
    float *hid_ref = it_malloc((size_t)4 * b.T * H * sizeof(float));
    IT_REQUIRE(img_ref && txt_ref && hid_ref);
    memcpy(img_ref, it_f32(vo.projected), 4 * (size_t)E * sizeof(float));
    memcpy(txt_ref, it_f32(to.projected), 4 * (size_t)E * sizeof(float));
    memcpy(hid_ref, it_f32(to.hidden), (size_t)4 * b.T * H * sizeof(float));
    float img[64 * 4], txt[64 * 4];
    IT_REQUIRE(E <= 64);
    for (int half = 0; half < 2; half++) {
        const char *root = it_test_tmp(t, half ? "root16" : "root32");
        const char *meta[] = {"status", "test", NULL};
        IT_REQUIRE_OK(it_toyclip_export(&e, &m, SHIPPED "/tokenizer", root, half ? IT_DTYPE_F16 : IT_DTYPE_F32, meta),
                      &e);
        /* transformers' CLIPModel layout, through vision/clip.h. */
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/clip", root);
        it_clip c;
        IT_REQUIRE_OK(it_clip_load(&e, &c, dir), &e);
        IT_CHECK_INT(c.embed_dim, E);
        IT_CHECK(c.logit_scale == 3.25f);
        IT_CHECK(c.pre.shortest_edge == 128 && c.pre.crop_w == 128);
        for (int i = 0; i < 4; i++) {
            it_image im = {128, 128, 3, b.rgb + (size_t)i * 128 * 128 * 3};
            IT_REQUIRE_OK(it_clip_embed_image(&e, &ctx, &c, &im, img + i * E), &e);
            IT_REQUIRE_OK(it_clip_embed_text(&e, &ctx, &c, b.captions[i], txt + i * E), &e);
        }
        double bound = half ? 2e-2 : 1e-6;
        IT_CHECK(rel_err(img, img_ref, 4 * (size_t)E) < bound);
        IT_CHECK(rel_err(txt, txt_ref, 4 * (size_t)E) < bound);
        it_clip_free(&c);
        /* The text encoder as Stable Diffusion pipelines load it. */
        char idx[4096];
        snprintf(idx, sizeof idx, "%s/model_index.json", root);
        static const char mi[] = "{\"_class_name\": \"StableDiffusionPipeline\"}";
        IT_REQUIRE_OK(it_file_write_atomic(&e, idx, mi, sizeof mi - 1), &e);
        snprintf(dir, sizeof dir, "%s/tokenizer", root);
        it_sd_model sd;
        it_sd_load_opts lo;
        it_sd_load_opts_init(&lo);
        lo.components = IT_SD_TEXT;
        lo.tokenizer_dir = SHIPPED "/tokenizer";
        IT_REQUIRE_OK(it_sd_load(&e, &sd, root, &lo), &e);
        IT_CHECK(sd.text.proj == NULL);
        IT_CHECK_INT(sd.text.cfg.eos_token_id, cfg.text.eos_token_id);
        it_clip_text_out so;
        IT_REQUIRE_OK(it_clip_text_forward(&e, &ctx, &sd.text, ids, 0, 0, &so), &e);
        IT_CHECK(rel_err(it_f32(so.hidden), hid_ref, (size_t)4 * b.T * H) < bound);
        it_sd_free(&sd);
    }
    it_free(img_ref);
    it_free(txt_ref);
    it_free(hid_ref);
    it_ctx_free(&ctx);
    it_toyclip_batch_free(&b);
    it_toyclip_free(&m);
    it_clip_tokenizer_free(tok);
    it_threads_set(0);
}

/* The shipped configs are what the code builds, and the loaders accept
 * them: the UNet is built against this text encoder. */
IT_TEST(pretrain_clip_shipped_configs) {
    it_err e;
    it_clip_tokenizer *tok;
    IT_REQUIRE_OK(it_clip_tokenizer_load(&e, &tok, SHIPPED "/tokenizer"), &e);
    it_toyclip_config cfg;
    it_toyclip_config_make(&cfg, IT_TOYCLIP_TOY, tok);
    it_clip_text_config tc;
    IT_REQUIRE_OK(it_clip_text_config_load(&e, &tc, SHIPPED "/text_encoder/config.json"), &e);
    IT_CHECK_INT(tc.vocab_size, cfg.text.vocab_size);
    IT_CHECK_INT(tc.hidden, cfg.text.hidden);
    IT_CHECK_INT(tc.n_layers, cfg.text.n_layers);
    IT_CHECK_INT(tc.n_heads, cfg.text.n_heads);
    IT_CHECK_INT(tc.max_positions, 77);
    IT_CHECK_INT(tc.eos_token_id, it_clip_token_to_id(tok, "<|endoftext|>"));
    IT_CHECK(tc.act == IT_CLIP_QUICK_GELU && !tc.has_projection);
    it_clip_vision_config vc;
    IT_REQUIRE_OK(it_clip_vision_config_load(&e, &vc, SHIPPED "/clip/config.json"), &e);
    IT_CHECK_INT(vc.hidden, cfg.vision.hidden);
    IT_CHECK_INT(vc.image_size, 128);
    IT_CHECK_INT(vc.patch_size, 16);
    IT_CHECK_INT(vc.projection_dim, cfg.embed_dim);
    char *want = it_toyclip_config_json(&cfg);
    uint8_t *have = NULL;
    size_t n = 0;
    IT_REQUIRE_OK(it_file_read(&e, &have, &n, SHIPPED "/clip/config.json", 1 << 20), &e);
    IT_CHECK(want && n == strlen(want) && !memcmp(want, have, n));
    free(want);
    it_free(have);
    it_clip_tokenizer_free(tok);
}

/* Attributes a caption states (parsed back; the name does not count). */
static int n_claims(const char *text)
{
    it_toy_claim c[32];
    int dangling = 0, n = it_toy_caption_claims(text, c, 32, &dangling), k = 0;
    for (int i = 0; i < n; i++) k += c[i].attr < IT_TOY_N_ATTRS;
    return k;
}

/* The caption mixture: p_long 1 gives only long captions (5-10 attributes),
 * p_long 0 only short (1-3) and tag lists (4-8), about half each; the
 * default of a fresh batch is the tokenizer's thirds, and a batch's images
 * never depend on the mixture. */
IT_TEST(pretrain_clip_caption_mixture) {
    it_threads_set(1);
    it_err e;
    it_clip_tokenizer *tok;
    IT_REQUIRE_OK(it_clip_tokenizer_load(&e, &tok, SHIPPED "/tokenizer"), &e);
    it_preprocess pre;
    it_toyclip_preprocess(&pre);
    enum { B = 48 };
    it_toyclip_batch b;
    IT_REQUIRE_OK(it_toyclip_batch_alloc(&e, &b, B), &e);
    IT_CHECK(b.p_long < 0);
    static const float mix[3] = {-1.0f, 1.0f, 0.0f};
    int few[3] = {0}, many[3] = {0}, mid[3] = {0};
    uint8_t *rgb0 = it_malloc((size_t)B * 128 * 128 * 3);
    IT_REQUIRE(rgb0);
    for (int k = 0; k < 3; k++) {
        b.p_long = mix[k];
        IT_REQUIRE_OK(it_toyclip_batch_make(&e, &b, tok, &pre, 5, 2, 0.25f, 0), &e);
        if (k == 0) memcpy(rgb0, b.rgb, (size_t)B * 128 * 128 * 3);
        else IT_CHECK(!memcmp(rgb0, b.rgb, (size_t)B * 128 * 128 * 3));
        for (int i = 0; i < B; i++) {
            int n = n_claims(b.captions[i]);
            few[k] += n <= 3, many[k] += n >= 5, mid[k] += n == 4;
        }
    }
    IT_CHECK_INT(many[1], B); /* long only */
    IT_CHECK(few[2] >= B / 4 && few[2] + mid[2] + many[2] == B && few[2] <= 3 * B / 4);
    IT_CHECK(few[0] >= B / 6 && many[0] >= B / 6); /* thirds */
    it_free(rgb0);
    it_toyclip_batch_free(&b);
    it_clip_tokenizer_free(tok);
}

/* ================================================================ training */

/* Symmetric InfoNCE of a loaded CLIP on batch 0 of seed 99 (16 pairs, no
 * augmentation), in double: the fixed yardstick of the learning test. */
static double fixed_batch_loss(it_test_ctx *t, const char *clip_dir)
{
    it_err e;
    it_clip c;
    if (it_clip_load(&e, &c, clip_dir)) {
        it_test_fail(t, __FILE__, __LINE__, "%s", e.msg);
        return NAN;
    }
    enum { B = 16 };
    it_toyclip_batch b;
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_autograd_set_enabled(&ctx, 0);
    float img[B * 64], txt[B * 64];
    double loss = NAN;
    if (c.embed_dim <= 64 && !it_toyclip_batch_alloc(&e, &b, B)) {
        if (!it_toyclip_batch_make(&e, &b, c.tok, &c.pre, 99, 0, 0.25f, 0)) {
            it_tensor *px = it_tensor_wrap(&ctx, b.pixels, IT_DTYPE_F32, IT_SHAPE(B, 3, 128, 128));
            it_tensor *ids = it_tensor_wrap(&ctx, b.ids, IT_DTYPE_I32, IT_SHAPE(B, b.T));
            if (!it_clip_embed_pixels(&e, &ctx, &c, px, img) && !it_clip_embed_ids(&e, &ctx, &c, ids, txt)) {
                float lg[B * B];
                it_clip_logits(&c, lg, img, B, txt, B);
                double s = 0;
                for (int dir = 0; dir < 2; dir++)
                    for (int i = 0; i < B; i++) {
                        double mx = -INFINITY, z = 0;
                        for (int j = 0; j < B; j++) mx = fmax(mx, dir ? lg[j * B + i] : lg[i * B + j]);
                        for (int j = 0; j < B; j++) z += exp((dir ? lg[j * B + i] : lg[i * B + j]) - mx);
                        s += mx + log(z) - lg[i * B + i];
                    }
                loss = s / (2 * B);
            }
        }
        it_toyclip_batch_free(&b);
    }
    it_ctx_free(&ctx);
    it_clip_free(&c);
    return loss;
}

/* The "loss" values of a run's train.jsonl, in order, as written. */
static int read_losses(const char *run, char losses[][32], int max)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/clip/train.jsonl", run);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < max) {
        const char *l = strstr(line, "\"loss\":");
        if (!l || strstr(line, "\"event\"")) continue;
        sscanf(l + 7, "%31[^,}]", losses[n++]);
    }
    fclose(f);
    return n;
}

/* A resumed run (run_a) and an uninterrupted one (run_b) logged the same
 * `steps` losses, bit for bit (written with 9 significant digits: every
 * float apart). */
static void check_same_losses(it_test_ctx *t, const char *run_a, const char *run_b, int steps)
{
    static char la[64][32], lb[64][32];
    int na = read_losses(run_a, la, 64), nb = read_losses(run_b, lb, 64);
    IT_CHECK_INT(na, steps);
    IT_CHECK_INT(nb, steps);
    for (int i = 0; i < na && i < nb; i++)
        if (strcmp(la[i], lb[i])) {
            it_test_fail(t, __FILE__, __LINE__, "step %d: loss %s resumed, %s uninterrupted", i + 1, la[i], lb[i]);
            break;
        }
}

static void tiny_opts(it_pretrain_opts *o, const char *out, const char *run)
{
    it_pretrain_opts_init(o);
    o->component = "clip";
    o->out = out;
    o->run_dir = run;
    o->config = "{\"size\": \"tiny\", \"warmup_frac\": 0.1}";
    o->steps = 30;
    o->batch = 8;
    o->lr = 3e-3;
    o->checkpoint_every = 7;
    o->eval_every = -1;
    o->eval_n = 8;
    o->quiet = 1;
}

/* out/tokenizer from the shipped one (saves the build in every run). */
static void seed_tokenizer(it_test_ctx *t, const char *out)
{
    static const char *files[] = {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"};
    char dir[4096], a[4200], b[4200];
    snprintf(dir, sizeof dir, "%s/tokenizer", out);
    it_err e;
    IT_CHECK_OK(it_mkdir_p(&e, dir), &e);
    for (int i = 0; i < 4; i++) {
        uint8_t *d = NULL;
        size_t n = 0;
        snprintf(a, sizeof a, SHIPPED "/tokenizer/%s", files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        IT_CHECK_OK(it_file_read(&e, &d, &n, a, 1 << 24), &e);
        IT_CHECK_OK(it_file_write_atomic(&e, b, d, n), &e);
        it_free(d);
    }
}

IT_TEST(pretrain_clip_learns_and_resumes_bit_identically) {
    it_threads_set(1);
    it_err e;
    const char *out_a = it_test_tmp(t, "out_a"), *run_a = it_test_tmp(t, "run_a");
    const char *out_b = it_test_tmp(t, "out_b"), *run_b = it_test_tmp(t, "run_b");
    seed_tokenizer(t, out_a);
    seed_tokenizer(t, out_b);
    char clip_a[4096];
    snprintf(clip_a, sizeof clip_a, "%s/clip", out_a);
    /* A: one step, interim export, then resumed to the end. */
    it_pretrain_opts o;
    tiny_opts(&o, out_a, run_a);
    o.stop_after = 1;
    o.export_partial = 1;
    IT_REQUIRE_OK(it_pretrain_clip(&e, &o), &e);
    double first = fixed_batch_loss(t, clip_a);
    tiny_opts(&o, out_a, run_a);
    o.stop_after = 13;
    o.resume = 1;
    IT_REQUIRE_OK(it_pretrain_clip(&e, &o), &e); /* interrupted again at step 14 */
    tiny_opts(&o, out_a, run_a);
    o.resume = 1;
    IT_REQUIRE_OK(it_pretrain_clip(&e, &o), &e);
    double last = fixed_batch_loss(t, clip_a);
    /* B: the same run without interruption. */
    tiny_opts(&o, out_b, run_b);
    IT_REQUIRE_OK(it_pretrain_clip(&e, &o), &e);
    /* Training lowers the contrastive loss on pairs it never saw. */
    IT_CHECK(isfinite(first) && isfinite(last));
    if (!(last < first - 0.15))
        it_test_fail(t, __FILE__, __LINE__, "fixed-batch loss %.4f after step 1, %.4f after 30", first, last);
    /* Resumed twice, the losses are those of the uninterrupted run, bit for
     * bit (written with 9 significant digits: every float apart). */
    check_same_losses(t, run_a, run_b, 30);
    char pa[4096], pb[4096];
    snprintf(pa, sizeof pa, "%s/clip/ckpt/step-00000030/params.safetensors", run_a);
    snprintf(pb, sizeof pb, "%s/clip/ckpt/step-00000030/params.safetensors", run_b);
    IT_CHECK(same_file(pa, pb));
    /* The record names the quality it measured on the exported files. */
    snprintf(pa, sizeof pa, "%s/pretrain/clip.json", out_b);
    json_error_t je;
    json_t *rec = json_load_file(pa, 0, &je);
    IT_REQUIRE(rec);
    IT_CHECK(json_is_true(json_object_get(rec, "finished")));
    json_t *m = json_object_get(rec, "metrics");
    IT_CHECK(json_is_number(json_object_get(m, "t2i_top1")));
    IT_CHECK(json_is_object(json_object_get(m, "zero_shot")));
    json_decref(rec);
    /* A checkpoint of other options is refused. */
    tiny_opts(&o, out_b, run_b);
    o.resume = 1;
    o.lr = 1e-3;
    o.steps = 31;
    IT_CHECK(it_pretrain_clip(&e, &o) != IT_OK);
    IT_CHECK_CONTAINS(e.msg, "checkpoint of another run");
    tiny_opts(&o, out_b, run_b);
    o.config = "{\"size\": \"huge\"}";
    IT_CHECK(it_pretrain_clip(&e, &o) != IT_OK);
    IT_CHECK_CONTAINS(e.msg, "clip --config: key \"size\" unknown or its value invalid");
    it_threads_set(0);
}

/* Whether a file's bytes contain text (safetensors headers are JSON). */
static int file_has(const char *path, const char *text)
{
    uint8_t *d = NULL;
    size_t n = 0, k = strlen(text);
    it_err e;
    int found = 0;
    if (!it_file_read(&e, &d, &n, path, 64u << 20))
        for (size_t i = 0; i + k <= n && !found; i++) found = !memcmp(d + i, text, k);
    it_free(d);
    return found;
}

/* The auxiliary attribute heads (config "aux"): their loss falls, they are
 * checkpointed and resume bit for bit, and they are never exported. */
IT_TEST(pretrain_clip_aux_heads_train_resume_and_stay_private) {
    it_threads_set(1);
    it_err e;
    const char *out_a = it_test_tmp(t, "out_a"), *run_a = it_test_tmp(t, "run_a");
    const char *out_b = it_test_tmp(t, "out_b"), *run_b = it_test_tmp(t, "run_b");
    seed_tokenizer(t, out_a);
    seed_tokenizer(t, out_b);
    it_pretrain_opts o;
    tiny_opts(&o, out_a, run_a);
    o.config = "{\"size\": \"tiny\", \"warmup_frac\": 0.1, \"aux\": 5}";
    o.steps = 30;
    o.stop_after = 11;
    IT_REQUIRE_OK(it_pretrain_clip(&e, &o), &e);
    o.stop_after = 0;
    o.resume = 1;
    IT_REQUIRE_OK(it_pretrain_clip(&e, &o), &e);
    tiny_opts(&o, out_b, run_b);
    o.config = "{\"size\": \"tiny\", \"warmup_frac\": 0.1, \"aux\": 5}";
    o.steps = 30;
    IT_REQUIRE_OK(it_pretrain_clip(&e, &o), &e);
    check_same_losses(t, run_a, run_b, 30);
    /* The heads' term: about the mean ln(values) at first, lower at the end. */
    char p[4096];
    snprintf(p, sizeof p, "%s/clip/train.jsonl", run_b);
    FILE *f = fopen(p, "r");
    IT_REQUIRE(f);
    char line[2048];
    double first = -1, last = 0;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        const char *a = strstr(line, "\"aux\":");
        if (a && !strstr(line, "\"event\"")) {
            double v = atof(a + 6);
            if (first < 0) first = v;
            if (++n > 25) last += v / 5; /* mean of steps 26-30 */
        }
    }
    fclose(f);
    if (!(first > 5 * 1.0 && first < 5 * 2.5 && last < 0.97 * first))
        it_test_fail(t, __FILE__, __LINE__, "aux loss %.4f at step 1, %.4f over steps 26-30", first, last);
    snprintf(p, sizeof p, "%s/clip/ckpt/step-00000030/params.safetensors", run_b);
    IT_CHECK(file_has(p, "aux_head.body_colour.weight"));
    char q[4096];
    snprintf(q, sizeof q, "%s/clip/ckpt/step-00000030/params.safetensors", run_a);
    IT_CHECK(same_file(p, q));
    snprintf(p, sizeof p, "%s/clip/model.safetensors", out_b);
    IT_CHECK(file_has(p, "visual_projection") && !file_has(p, "aux_head"));
    /* A run without heads refuses this checkpoint (the key names them). */
    tiny_opts(&o, out_b, run_b);
    o.steps = 30;
    o.resume = 1;
    IT_CHECK(it_pretrain_clip(&e, &o) != IT_OK);
    IT_CHECK_CONTAINS(e.msg, "checkpoint of another run");
    it_threads_set(0);
}

static it_status collect_param(it_err *err, void *user, it_tensor *t)
{
    (void)err;
    it_optim_param **p = user;
    **p = (it_optim_param){t->name, it_f32(t), t->grad, (size_t)t->n, 0};
    (*p)++;
    return IT_OK;
}

/* The contrastive signal reaches both towers: 100 AdamW steps (clipped at norm 1) on one batch
 * of 8 pairs take the loss from chance (ln 8 = 2.08) to memorised. */
IT_TEST(pretrain_clip_memorises_a_batch) {
    it_threads_set(1);
    it_err e;
    it_clip_tokenizer *tok;
    IT_REQUIRE_OK(it_clip_tokenizer_load(&e, &tok, SHIPPED "/tokenizer"), &e);
    it_toyclip_config cfg;
    it_toyclip_config_make(&cfg, IT_TOYCLIP_TINY, tok);
    it_toyclip m;
    IT_REQUIRE_OK(it_toyclip_init(&e, &m, &cfg, 4), &e);
    it_toyclip_batch b;
    IT_REQUIRE_OK(it_toyclip_batch_alloc(&e, &b, 8), &e);
    IT_REQUIRE_OK(it_toyclip_batch_make(&e, &b, tok, &m.pre, 17, 0, 0.25f, 1), &e);
    it_optim_param ps[256], *p = ps;
    IT_REQUIRE(m.text.params.n + m.vision.params.n + 1 <= 256);
    IT_REQUIRE_OK(it_toyclip_each_param(&e, &m, collect_param, &p), &e);
    it_optim opt;
    it_optim_config oc = it_optim_adamw_defaults(3e-3);
    IT_REQUIRE_OK(it_optim_init(&e, &opt, &oc, ps, (size_t)(p - ps)), &e);
    it_ctx ctx, in;
    it_ctx_init(&ctx, 0);
    it_ctx_init(&in, 0);
    it_tensor *px = it_tensor_wrap(&in, b.pixels, IT_DTYPE_F32, IT_SHAPE(8, 3, 128, 128));
    it_tensor *ids = it_tensor_wrap(&in, b.ids, IT_DTYPE_I32, IT_SHAPE(8, b.T));
    double first = 0, last = 0, acc = 0;
    for (int s = 0; s < 100; s++) {
        it_ctx_reset(&ctx);
        it_tensor *loss;
        it_toyclip_stats st;
        IT_REQUIRE_OK(it_toyclip_loss(&e, &ctx, &m, px, ids, &loss, &st), &e);
        IT_REQUIRE_OK(it_autograd_backward(&e, &ctx, loss), &e);
        it_optim_clip_grad_norm(&opt, 1.0);
        it_optim_step(&opt, 3e-3);
        it_optim_zero_grad(&opt);
        if (s == 0) first = st.loss;
        last = st.loss;
        acc = 0.5 * (st.acc_i2t + st.acc_t2i);
    }
    if (!(first > 1.5 && last < 0.3 && acc == 1.0))
        it_test_fail(t, __FILE__, __LINE__, "loss %.4f -> %.4f, in-batch accuracy %.2f", first, last, acc);
    /* The temperature is learned too. */
    IT_CHECK(m.logit_scale != 2.6592f);
    it_optim_free(&opt);
    it_ctx_free(&ctx);
    it_ctx_free(&in);
    it_toyclip_batch_free(&b);
    it_toyclip_free(&m);
    it_clip_tokenizer_free(tok);
    it_threads_set(0);
}

/* ================================================================ shipped weights */

/* The shipped weights load through both loaders, the text encoder is the
 * CLIP's text tower, and the measured quality does not regress. Floors sit
 * a few points under the figures measured when the weights were exported
 * (interim weights: docs/TOYWORLD.md); raise them when better weights ship. */
IT_TEST(pretrain_clip_shipped_weights) {
    it_threads_set(1); /* small forwards: threads only wait on a busy machine */
    it_err e;
    it_clip c;
    IT_REQUIRE_OK(it_clip_load(&e, &c, SHIPPED "/clip"), &e);
    it_sd_model sd;
    it_sd_load_opts lo;
    it_sd_load_opts_init(&lo);
    lo.components = IT_SD_TEXT | IT_SD_TOKENIZER;
    IT_REQUIRE_OK(it_sd_load(&e, &sd, SHIPPED, &lo), &e);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_autograd_set_enabled(&ctx, 0);
    static const char prompt[] = "gus, a round blue creature wearing a red cap";
    int32_t a[77], b[77];
    int na = 0, nb = 0;
    IT_REQUIRE_OK(it_clip_encode_padded(&e, c.tok, a, 77, &na, prompt, sizeof prompt - 1), &e);
    IT_REQUIRE_OK(it_clip_encode_padded(&e, sd.tokenizer, b, 77, &nb, prompt, sizeof prompt - 1), &e);
    IT_CHECK(na == nb && !memcmp(a, b, sizeof a));
    IT_CHECK(na == 12); /* every word one token, plus start and end */
    it_tensor *ids32 = it_tensor_new(&ctx, IT_DTYPE_I32, IT_SHAPE(1, 77));
    IT_REQUIRE(ids32);
    memcpy(ids32->data, a, sizeof a);
    it_clip_text_out x, y;
    IT_REQUIRE_OK(it_clip_text_forward(&e, &ctx, &c.text, ids32, 0, 0, &x), &e);
    IT_REQUIRE_OK(it_clip_text_forward(&e, &ctx, &sd.text, ids32, 0, 0, &y), &e);
    IT_CHECK(x.hidden->n == y.hidden->n && !memcmp(it_f32(x.hidden), it_f32(y.hidden), (size_t)x.hidden->n * 4));
    it_ctx_free(&ctx);
    it_sd_free(&sd);
    it_clip_quality q;
    IT_REQUIRE_OK(it_clip_quality_model(&e, &c, 1000003, 100, 1, &q), &e);
    /* The shipped interim weights measure 20 % / 55 % (docs/TOYWORLD.md);
     * a regression below these bounds means the file or the loader broke. */
    IT_CHECK(q.t2i_top1 >= 0.15);
    IT_CHECK(q.t2i_top5 >= 0.45);
    IT_CHECK(q.zs_acc[IT_TOY_BACKGROUND] >= 0.9);
    IT_CHECK(q.zs_acc[IT_TOY_BODY_COLOUR] >= 0.6);
    it_clip_free(&c);
    it_threads_set(0);
}
