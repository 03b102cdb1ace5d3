/* test_pretrain_detector.c: the toy detector's pretraining (src/toy/
 * pretrain_detector.c) on a tiny interim CLIP: the whole OWL-ViT forward
 * differentiates correctly (finite differences through tower and heads),
 * a few steps lower the loss, a resumed run repeats the uninterrupted
 * losses bit for bit, and the exported folder loads through the real
 * OWL-ViT loader and the `detect` command. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/threads.h"
#include "tensor/autograd.h"
#include "tensor/ops_eltwise.h"
#include "test.h"
#include "toy/clip_source.h"
#include "toy/det_loss.h"
#include "toy/pretrain_detector.h"
#include "vision/clip.h"

/* A CLIP small enough for seconds of training: 64 px, 4x4 patches. */
#define TINY_CLIP                                                                                          \
    "\"interim_clip\": {\"v_hidden\": 32, \"v_layers\": 2, \"v_heads\": 2, \"image_size\": 64, "         \
    "\"patch_size\": 16, \"t_hidden\": 32, \"t_layers\": 1, \"t_heads\": 2, \"t_positions\": 16, "       \
    "\"projection_dim\": 32, \"vocab_size\": 600, \"n_captions\": 150}"

/* One thread: the tiny models gain nothing from two, and on a loaded
 * machine OpenMP's waiting makes them several times slower. */
static void tiny_opts(it_pretrain_opts *o, it_test_ctx *t, const char *sub, int64_t steps)
{
    it_threads_set(1);
    it_pretrain_opts_init(o);
    o->component = "detector";
    static char out[3][1024], run[3][1024];
    static int k;
    k = (k + 1) % 3;
    snprintf(out[k], sizeof out[k], "%s/%s_out", t->tmpdir, sub);
    snprintf(run[k], sizeof run[k], "%s/%s_run", t->tmpdir, sub);
    o->out = out[k];
    o->run_dir = run[k];
    o->config = "{" TINY_CLIP "}";
    o->steps = steps;
    o->batch = 4;
    o->lr = 2e-3;
    o->eval_every = -1;
    o->eval_n = 4;
    o->quiet = 1;
}

/* The "loss" of every step line of RUN/detector/train.jsonl. */
static int read_losses(const char *run_dir, double *loss, int max)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/detector/train.jsonl", run_dir);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        json_t *l = json_object_get(j, "loss"), *s = json_object_get(j, "step");
        if (json_is_number(l) && json_is_integer(s) && !json_object_get(j, "event")) {
            int64_t step = json_integer_value(s);
            if (step >= 1 && step <= max) loss[step - 1] = json_number_value(l), n++;
        }
        json_decref(j);
    }
    fclose(f);
    return n;
}

/* ---------------------------------------------------------------- gradients */

typedef struct owl_case {
    it_owlvit m;
    float px[2 * 3 * 32 * 32];
    float bias[4 * 4];
    float text_q[3 * 16];
    int32_t rows[3], qrow[2];
    float gt[3 * 4];
    uint8_t target[2 * 4 * 5], valid[2 * 4 * 5];
} owl_case;

static double owl_loss(owl_case *c, int backward)
{
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_tensor *px = it_tensor_wrap(&ctx, c->px, IT_DTYPE_F32, IT_SHAPE(2, 3, 32, 32));
    it_clip_vision_out vo;
    double v = NAN;
    if (!it_clip_vision_forward(NULL, &ctx, &c->m.vision, px, &vo)) {
        it_owlvit_heads h;
        it_owlvit_heads_forward(&ctx, &c->m, vo.hidden, 4, &h);
        it_detloss_box_args ba = {3, c->rows, c->gt, c->bias, 4, 5, 2, 3};
        it_detloss_class_args ca = {3, c->text_q, 2, c->qrow, c->target, c->valid, 0.25f, 2.0f, 4};
        it_tensor *l = it_op_add(&ctx, it_detloss_box(&ctx, h.box_raw, &ba),
                                 it_detloss_class(&ctx, h.class_emb, h.shift, h.scale_raw, &ca, NULL));
        if (l) {
            v = it_f32(l)[0];
            if (backward) it_autograd_backward(NULL, &ctx, l);
        }
    }
    it_ctx_free(&ctx);
    return v;
}

/* Every op of the OWL-ViT image path (patch conv, class token concat,
 * positions, pre-LN, attention blocks, post-LN of all tokens, class-token
 * product, layer norm, class and box heads) carries gradients: analytic vs
 * central differences for weights sampled from every tensor. */
IT_TEST(pretrain_detector_owlvit_gradients)
{
    owl_case *c = it_calloc(1, sizeof *c);
    IT_REQUIRE(c);
    it_clip_vision_config vc;
    it_clip_vision_config_default(&vc);
    vc.hidden = 16, vc.intermediate = 32, vc.n_layers = 1, vc.n_heads = 2, vc.image_size = 32, vc.patch_size = 16;
    it_clip_text_config tc = {64, 16, 32, 1, 2, 8, IT_CLIP_QUICK_GELU, 1e-5f, 16, 1, 2};
    it_err err;
    IT_REQUIRE_OK(it_owlvit_init_ex(&err, &c->m, &vc, &tc, IT_MODEL_TRAINABLE, 0, IT_MODEL_TRAINABLE), &err);
    it_rng r;
    it_rng_init(&r, 5);
    it_params *sets[2] = {&c->m.vision.params, &c->m.head};
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < sets[s]->n; i++) {
            it_tensor *w = sets[s]->items[i];
            int norm_w = strstr(w->name, "norm") && strstr(w->name, ".weight");
            it_rng_normal(&r, it_f32(w), (size_t)w->n, norm_w ? 1.0f : 0.0f, norm_w ? 0.1f : 0.3f);
        }
    it_rng_normal(&r, c->px, sizeof c->px / sizeof(float), 0, 1);
    it_rng_normal(&r, c->text_q, sizeof c->text_q / sizeof(float), 0, 1);
    it_detloss_box_bias(c->bias, 2, 2);
    int32_t rows[3] = {0, 3, 6}, qrow[2] = {1, 5};
    float gt[12] = {0.3f, 0.3f, 0.4f, 0.4f, 0.6f, 0.7f, 0.3f, 0.2f, 0.5f, 0.5f, 0.8f, 0.9f};
    memcpy(c->rows, rows, sizeof rows);
    memcpy(c->qrow, qrow, sizeof qrow);
    memcpy(c->gt, gt, sizeof gt);
    for (int i = 0; i < 40; i++) c->target[i] = (uint8_t)(i % 7 == 2), c->valid[i] = (uint8_t)(i % 9 != 0);
    double base = owl_loss(c, 1);
    IT_REQUIRE(isfinite(base));
    double worst = 0, gmax = 0;
    int checked = 0;
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < sets[s]->n; i++) {
            it_tensor *w = sets[s]->items[i];
            for (int k = 0; k < 2; k++) {
                int64_t e = (int64_t)((i * 7919 + (size_t)k * 104729) % (size_t)w->n);
                float x = it_f32(w)[e], h = 1e-2f;
                it_f32(w)[e] = x + h;
                double lp = owl_loss(c, 0);
                it_f32(w)[e] = x - h;
                double lm = owl_loss(c, 0);
                it_f32(w)[e] = x;
                double num = (lp - lm) / (2 * h), ana = w->grad[e];
                gmax = fmax(gmax, fabs(ana));
                worst = fmax(worst, fabs(num - ana) / fmax(1e-2, fabs(num) + fabs(ana)));
                checked++;
            }
        }
    IT_CHECK(checked > 40);
    IT_CHECK(gmax > 1e-3);
    if (worst >= 2e-2) fprintf(stderr, "owlvit gradient: worst relative difference %g\n", worst);
    IT_CHECK(worst < 2e-2);
    it_owlvit_free(&c->m);
    it_free(c);
}

/* ---------------------------------------------------------------- training */

IT_TEST(pretrain_detector_learns_exports_and_loads)
{
    it_pretrain_opts o;
    tiny_opts(&o, t, "learn", 40);
    it_err err;
    IT_REQUIRE_OK(it_pretrain_detector(&err, &o), &err);
    double loss[40] = {0};
    IT_REQUIRE(read_losses(o.run_dir, loss, 40) == 40);
    double a = 0, b = 0;
    for (int i = 0; i < 5; i++) a += loss[i], b += loss[35 + i];
    IT_CHECK(b < 0.8 * a);
    /* the folder loads through the real loader and is measured */
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/owlvit", o.out);
    it_owlvit m;
    IT_REQUIRE_OK(it_owlvit_load(&err, &m, dir), &err);
    IT_CHECK_INT(m.vision.cfg.image_size, 64);
    IT_CHECK_INT(m.query_dim, 32);
    it_owlvit_free(&m);
    json_t *rep = json_object();
    IT_REQUIRE_OK(it_quality_detector(&err, &o, rep), &err);
    json_t *mean = json_object_get(json_object_get(rep, "text_recall"), "mean");
    IT_CHECK(json_is_number(mean) && json_number_value(mean) >= 0 && json_number_value(mean) <= 1);
    IT_CHECK(json_is_object(json_object_get(rep, "image_recall")));
    json_decref(rep);
    /* and through the CLI users run */
    const char *bin = getenv("IT_BIN");
    if (bin) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "%s toy render --n 1 --seed 3 --out %s/img -q >/dev/null 2>&1 && "
                 "%s detect --model %s --image %s/img/000000.png --query hair --query hat --threshold 0 "
                 "--json > %s/det.json 2>%s/det.err", bin, t->tmpdir, bin, dir, t->tmpdir, t->tmpdir, t->tmpdir);
        IT_CHECK(system(cmd) == 0);
        json_t *d = json_load_file(it_test_tmp(t, "det.json"), 0, NULL);
        IT_CHECK(d != NULL);
        json_decref(d);
    }
    it_threads_set(0);
}

IT_TEST(pretrain_detector_resume_is_bit_identical)
{
    it_pretrain_opts a, b;
    tiny_opts(&a, t, "full", 10);
    tiny_opts(&b, t, "split", 10);
    it_err err;
    IT_REQUIRE_OK(it_pretrain_detector(&err, &a), &err);
    b.stop_after = 4;
    IT_REQUIRE_OK(it_pretrain_detector(&err, &b), &err);
    b.stop_after = 0;
    b.resume = 1;
    IT_REQUIRE_OK(it_pretrain_detector(&err, &b), &err);
    double la[10] = {0}, lb[10] = {0};
    IT_CHECK_INT(read_losses(a.run_dir, la, 10), 10);
    IT_REQUIRE(read_losses(b.run_dir, lb, 10) >= 10);
    for (int i = 0; i < 10; i++)
        if (la[i] != lb[i]) {
            it_test_fail(t, __FILE__, __LINE__, "step %d: loss %.9g uninterrupted, %.9g resumed", i + 1, la[i], lb[i]);
            break;
        }
    /* a finished run's weights are the same file either way */
    char pa[2048], pb[2048];
    snprintf(pa, sizeof pa, "%s/owlvit/model.safetensors", a.out);
    snprintf(pb, sizeof pb, "%s/owlvit/model.safetensors", b.out);
    uint8_t *da = NULL, *db = NULL;
    size_t na = 0, nb = 0;
    IT_REQUIRE_OK(it_file_read(&err, &da, &na, pa, 1 << 26), &err);
    IT_REQUIRE_OK(it_file_read(&err, &db, &nb, pb, 1 << 26), &err);
    IT_CHECK(na == nb && !memcmp(da, db, na));
    it_free(da);
    it_free(db);
    it_threads_set(0);
}

/* With "train_text_projection" the queries learn too: the exported
 * projection differs from the CLIP's, the rest of the text tower does not. */
IT_TEST(pretrain_detector_text_projection_learns)
{
    it_pretrain_opts o;
    tiny_opts(&o, t, "tproj", 3);
    o.config = "{" TINY_CLIP ", \"train_text_projection\": true}";
    it_err err;
    IT_REQUIRE_OK(it_pretrain_detector(&err, &o), &err);
    char dir[2048], cdir[2048];
    snprintf(dir, sizeof dir, "%s/owlvit", o.out);
    snprintf(cdir, sizeof cdir, "%s/detector/interim_clip", o.run_dir);
    it_owlvit m;
    it_clip c;
    IT_REQUIRE_OK(it_owlvit_load(&err, &m, dir), &err);
    IT_REQUIRE_OK(it_clip_load(&err, &c, cdir), &err);
    it_tensor *pw = it_params_find(&m.text.params, "owlvit.text_projection.weight");
    it_tensor *cw = it_params_find(&c.text.params, "text_projection.weight");
    it_tensor *pe = it_params_find(&m.text.params, "owlvit.text_model.final_layer_norm.weight");
    it_tensor *ce = it_params_find(&c.text.params, "text_model.final_layer_norm.weight");
    IT_REQUIRE(pw && cw && pe && ce && pw->n == cw->n);
    double moved = 0;
    for (int64_t i = 0; i < pw->n; i++) moved = fmax(moved, fabs(it_f32(pw)[i] - it_f32(cw)[i]));
    IT_CHECK(moved > 1e-3); /* learned (f16 rounding is far smaller) */
    IT_CHECK(!memcmp(pe->data, ce->data, (size_t)pe->n * sizeof(float)));
    it_owlvit_free(&m);
    it_clip_free(&c);
    it_threads_set(0);
}

IT_TEST(pretrain_detector_bad_config)
{
    it_pretrain_opts o;
    tiny_opts(&o, t, "bad", 2);
    o.config = "{\"interim_clip\": {\"v_hidden\": 30, \"v_heads\": 4}}";
    it_err err;
    IT_CHECK(it_pretrain_detector(&err, &o) == IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "divisible by heads");
    o.config = "{\"clip\": \"/nonexistent/clip\"}";
    IT_CHECK(it_pretrain_detector(&err, &o) == IT_ERR_NOT_FOUND);
    IT_CHECK_CONTAINS(err.msg, "/nonexistent/clip");
}
