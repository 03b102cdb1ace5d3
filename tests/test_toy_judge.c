/* test_toy_judge.c: the toy judge: heads, weights file, inference, training
 * resume, and the shipped weights' accuracy on renders of a fresh seed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/threads.h"
#include "tensor/safetensors.h"
#include "test.h"
#include "toy/characters.h"
#include "toy/judge.h"
#include "toy/judge_train.h"
#include "toy/toydraw.h"

#define SHIPPED "models/toy/judge.safetensors"

/* A network small enough to train a few steps in a test. */
static it_judge_config tiny_config(void)
{
    it_judge_config c = {.size = 32, .width = {8, 8, 16, 16, 16}, .hidden = 16};
    return c;
}

IT_TEST(toy_judge_heads_and_labels) {
    IT_CHECK_INT(IT_JUDGE_N_HEADS, 18);
    IT_CHECK_STR(it_judge_head_name(0), "identity");
    IT_CHECK_STR(it_judge_head_name(1 + IT_TOY_HAIR_COLOUR), "hair_colour");
    IT_CHECK_INT(it_judge_head_classes(0), 1 + it_toy_character_count());
    IT_CHECK_INT(it_judge_head_classes(1 + IT_TOY_POSE), 4);
    IT_CHECK_INT(it_judge_head_classes(1 + IT_TOY_HAIR_COLOUR), 9); /* 8 colours + n/a */
    IT_CHECK_STR(it_judge_class_name(0, 0), "none");
    IT_CHECK_STR(it_judge_class_name(1 + IT_TOY_HAIR_COLOUR, 8), "n/a");
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    c.character = it_toy_character_find("vincent");
    c.v[IT_TOY_OUTFIT] = IT_TOY_OUTFIT_NONE;
    it_toy_attrs a;
    it_err e;
    IT_REQUIRE_OK(it_toy_sample(&e, &a, &c, 3, 0, IT_TOY_EVAL), &e);
    int32_t lab[IT_JUDGE_N_HEADS];
    it_judge_labels(lab, &a);
    IT_CHECK_STR(it_judge_class_name(0, lab[0]), "vincent");
    IT_CHECK_STR(it_judge_class_name(1 + IT_TOY_MARKING, lab[1 + IT_TOY_MARKING]), "scar");
    IT_CHECK_STR(it_judge_class_name(1 + IT_TOY_OUTFIT_COLOUR, lab[1 + IT_TOY_OUTFIT_COLOUR]), "n/a");
    IT_CHECK_STR(it_judge_class_name(1 + IT_TOY_OUTFIT, lab[1 + IT_TOY_OUTFIT]), "none");
}

IT_TEST(toy_judge_save_load_roundtrip) {
    it_err e;
    it_judge a, b;
    it_judge_config cfg = tiny_config();
    IT_REQUIRE_OK(it_judge_init(&e, &a, &cfg, 5, 0), &e);
    const char *p32 = it_test_tmp(t, "j32.safetensors");
    IT_REQUIRE_OK(it_judge_save(&e, &a, p32, IT_DTYPE_F32, NULL), &e);
    IT_REQUIRE_OK(it_judge_load(&e, &b, p32, 0), &e);
    IT_CHECK_INT(b.n_weights, a.n_weights);
    IT_CHECK(memcmp(a.data, b.data, (size_t)a.n_weights * sizeof(float)) == 0);
    IT_CHECK(memcmp(&a.cfg, &b.cfg, sizeof cfg) == 0);
    it_judge_free(&b);
    /* f16: every weight within half-precision rounding. */
    const char *p16 = it_test_tmp(t, "j16.safetensors");
    IT_REQUIRE_OK(it_judge_save(&e, &a, p16, IT_DTYPE_F16, NULL), &e);
    IT_REQUIRE_OK(it_judge_load(&e, &b, p16, 0), &e);
    double worst = 0;
    for (int64_t i = 0; i < a.n_weights; i++) {
        double d = fabs((double)a.data[i] - b.data[i]) / (fabs((double)a.data[i]) + 1e-4);
        if (d > worst) worst = d;
    }
    IT_CHECK(worst < 1e-3);
    it_judge_free(&b);
    it_judge_free(&a);
}

IT_TEST(toy_judge_load_errors) {
    it_err e;
    it_judge j;
    /* table: file contents -> message */
    IT_CHECK(it_judge_load(&e, &j, it_test_tmp(t, "missing.safetensors"), 0) != IT_OK);
    IT_CHECK_CONTAINS(e.msg, "missing.safetensors");
    const char *junk = it_test_tmp(t, "junk.safetensors");
    IT_REQUIRE_OK(it_file_write_atomic(&e, junk, "this is not a weights file", 26), &e);
    IT_CHECK(it_judge_load(&e, &j, junk, 0) != IT_OK);
    IT_CHECK_CONTAINS(e.msg, "junk.safetensors");
    /* A valid safetensors file that is no judge. */
    it_safetensors_writer *w;
    float x[4] = {1, 2, 3, 4};
    IT_REQUIRE_OK(it_safetensors_writer_new(&e, &w), &e);
    IT_REQUIRE_OK(it_safetensors_writer_add(&e, w, "x", IT_DTYPE_F32, 1, (const int64_t[]){4}, x), &e);
    const char *other = it_test_tmp(t, "other.safetensors");
    IT_REQUIRE_OK(it_safetensors_writer_save(&e, w, other), &e);
    it_safetensors_writer_free(w);
    IT_CHECK_INT(it_judge_load(&e, &j, other, 0), IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(e.msg, "not a judge weights file");
    /* A judge file with a tensor missing. */
    it_judge a;
    it_judge_config cfg = tiny_config();
    IT_REQUIRE_OK(it_judge_init(&e, &a, &cfg, 1, 0), &e);
    const char *good = it_test_tmp(t, "good.safetensors");
    IT_REQUIRE_OK(it_judge_save(&e, &a, good, IT_DTYPE_F32, NULL), &e);
    it_safetensors *f;
    IT_REQUIRE_OK(it_safetensors_open(&e, &f, good), &e);
    IT_REQUIRE_OK(it_safetensors_writer_new(&e, &w), &e);
    for (size_t i = 0; i < it_safetensors_count(f); i++) {
        const it_safetensors_tensor *tt = it_safetensors_at(f, i);
        if (strcmp(tt->name, "fc.bias"))
            IT_CHECK_OK(it_safetensors_writer_add(&e, w, tt->name, tt->dtype, tt->n_dims, tt->shape, tt->data), &e);
    }
    for (size_t i = 0; i < it_safetensors_metadata_count(f); i++) {
        const char *k, *v;
        it_safetensors_metadata_at(f, i, &k, &v);
        IT_CHECK_OK(it_safetensors_writer_set_metadata(&e, w, k, !strcmp(k, "heads") ? "[]" : v), &e);
    }
    const char *bad = it_test_tmp(t, "bad.safetensors");
    IT_REQUIRE_OK(it_safetensors_writer_save(&e, w, bad), &e);
    IT_CHECK_INT(it_judge_load(&e, &j, bad, 0), IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(e.msg, "another toy-world schema");
    IT_REQUIRE_OK(it_safetensors_writer_set_metadata(&e, w, "heads", it_safetensors_metadata_get(f, "heads")), &e);
    IT_REQUIRE_OK(it_safetensors_writer_save(&e, w, bad), &e);
    IT_CHECK_INT(it_judge_load(&e, &j, bad, 0), IT_ERR_NOT_FOUND);
    IT_CHECK_CONTAINS(e.msg, "no tensor 'fc.bias'");
    it_safetensors_writer_free(w);
    it_safetensors_close(f);
    it_judge_free(&a);
}

/* Copies a safetensors file, replacing one metadata value. */
static void rewrite_meta(it_test_ctx *t, const char *src, const char *dst, const char *key, const char *value)
{
    it_err e;
    it_safetensors *f;
    it_safetensors_writer *w;
    IT_REQUIRE_OK(it_safetensors_open(&e, &f, src), &e);
    IT_REQUIRE_OK(it_safetensors_writer_new(&e, &w), &e);
    for (size_t i = 0; i < it_safetensors_count(f); i++) {
        const it_safetensors_tensor *tt = it_safetensors_at(f, i);
        IT_CHECK_OK(it_safetensors_writer_add(&e, w, tt->name, tt->dtype, tt->n_dims, tt->shape, tt->data), &e);
    }
    for (size_t i = 0; i < it_safetensors_metadata_count(f); i++) {
        const char *k, *v;
        it_safetensors_metadata_at(f, i, &k, &v);
        IT_CHECK_OK(it_safetensors_writer_set_metadata(&e, w, k, !strcmp(k, key) ? value : v), &e);
    }
    IT_CHECK_OK(it_safetensors_writer_save(&e, w, dst), &e);
    it_safetensors_writer_free(w);
    it_safetensors_close(f);
}

/* Layer count and strides come from the config; files of the first format
 * (5 layers, no "stride" in the metadata) still load with their layout. */
IT_TEST(toy_judge_config_layouts) {
    it_err e;
    it_judge a, b;
    it_judge_config six = {.size = 64, .width = {8, 8, 8, 16, 16, 16}, .hidden = 16, .stride = {2, 2, 2, 2, 1, 2}};
    IT_CHECK_INT(it_judge_n_conv(&six), 6);
    IT_REQUIRE_OK(it_judge_init(&e, &a, &six, 3, 0), &e);
    IT_CHECK_INT(a.n_params, 6 * 4 + 4);
    IT_CHECK_STR(a.params[20].name, "conv6.weight");
    IT_CHECK_STR(a.params[24].name, "fc.weight");
    IT_CHECK_INT(a.params[24].shape[1], 16 * 2 * 2); /* 64 / 32 = a 2x2 grid */
    const char *p6 = it_test_tmp(t, "six.safetensors");
    IT_REQUIRE_OK(it_judge_save(&e, &a, p6, IT_DTYPE_F32, NULL), &e);
    IT_REQUIRE_OK(it_judge_load(&e, &b, p6, 0), &e);
    IT_CHECK(memcmp(&a.cfg, &b.cfg, sizeof a.cfg) == 0);
    IT_CHECK(memcmp(a.data, b.data, (size_t)a.n_weights * sizeof(float)) == 0);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    float *x = it_calloc(2 * 3 * 64 * 64, sizeof(float));
    IT_REQUIRE(x);
    it_tensor *lg = it_judge_forward(&ctx, &b, it_tensor_wrap(&ctx, x, IT_DTYPE_F32, IT_SHAPE(2, 3, 64, 64)));
    IT_REQUIRE(lg != NULL);
    IT_CHECK_INT(lg->shape[0], 2);
    IT_CHECK_INT(lg->shape[1], it_judge_total_classes());
    it_free(x);
    it_ctx_free(&ctx);
    it_judge_free(&b);
    /* A config whose strides do not fit: one message each. */
    static const struct {
        it_judge_config c;
        const char *msg;
    } bad[] = {
        {{.size = 64, .width = {8, 8}, .hidden = 16, .stride = {2, 3}}, "conv2 stride 3 must be 1 or 2"},
        {{.size = 48, .width = {8, 8, 8, 8, 8}, .hidden = 16, .stride = {2, 2, 2, 2, 2}}, "multiple of 32"},
        {{.size = 64, .width = {0}, .hidden = 16}, "no conv layer"},
        {{.size = 64, .width = {8, 12}, .hidden = 16, .stride = {2, 2}}, "conv2 width 12"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        IT_CHECK_INT(it_judge_init(&e, &b, &bad[i].c, 1, 0), IT_ERR_ARG);
        IT_CHECK_CONTAINS(e.msg, bad[i].msg);
    }
    it_judge_free(&a);
    /* Pooled head: 2 x last width features, whatever the grid. */
    it_judge_config pooled = {.size = 64, .width = {8, 16}, .hidden = 16, .stride = {2, 2}, .pool = 1};
    IT_REQUIRE_OK(it_judge_init(&e, &a, &pooled, 5, 0), &e);
    IT_CHECK_STR(a.params[8].name, "fc.weight");
    IT_CHECK_INT(a.params[8].shape[1], 2 * 16);
    const char *pp = it_test_tmp(t, "pooled.safetensors");
    IT_REQUIRE_OK(it_judge_save(&e, &a, pp, IT_DTYPE_F32, NULL), &e);
    IT_REQUIRE_OK(it_judge_load(&e, &b, pp, 0), &e);
    IT_CHECK_INT(b.cfg.pool, 1);
    it_ctx_init(&ctx, 0);
    x = it_calloc(3 * 64 * 64, sizeof(float));
    IT_REQUIRE(x);
    lg = it_judge_forward(&ctx, &b, it_tensor_wrap(&ctx, x, IT_DTYPE_F32, IT_SHAPE(1, 3, 64, 64)));
    IT_CHECK(lg != NULL && lg->shape[1] == it_judge_total_classes());
    it_free(x);
    it_ctx_free(&ctx);
    it_judge_free(&b);
    it_judge_free(&a);
    /* The first format: five widths, no strides -> {2, 2, 2, 2, 1}. */
    it_judge_config five = {.size = 32, .width = {8, 8, 16, 16, 16}, .hidden = 16};
    IT_REQUIRE_OK(it_judge_init(&e, &a, &five, 4, 0), &e);
    const char *p5 = it_test_tmp(t, "five.safetensors"), *v1 = it_test_tmp(t, "v1.safetensors");
    IT_REQUIRE_OK(it_judge_save(&e, &a, p5, IT_DTYPE_F32, NULL), &e);
    rewrite_meta(t, p5, v1, "config", "{\"size\":32,\"width\":[8,8,16,16,16],\"hidden\":16}");
    IT_REQUIRE_OK(it_judge_load(&e, &b, v1, 0), &e);
    static const int v1_stride[5] = {2, 2, 2, 2, 1};
    IT_CHECK(memcmp(b.cfg.stride, v1_stride, sizeof v1_stride) == 0);
    IT_CHECK(memcmp(a.data, b.data, (size_t)a.n_weights * sizeof(float)) == 0);
    it_judge_free(&b);
    /* Six widths without strides, or counts that differ: refused, naming the file. */
    rewrite_meta(t, p5, v1, "config", "{\"size\":64,\"width\":[8,8,16,16,16,16],\"hidden\":16}");
    IT_CHECK_INT(it_judge_load(&e, &b, v1, 0), IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(e.msg, "v1.safetensors: metadata 'config' has 6 conv widths but 0 strides");
    rewrite_meta(t, p5, v1, "config", "{\"size\":32,\"width\":[8,8,16,16,16],\"hidden\":16,\"stride\":[2,2]}");
    IT_CHECK_INT(it_judge_load(&e, &b, v1, 0), IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(e.msg, "has 5 conv widths but 2 strides");
    rewrite_meta(t, p5, v1, "config", "{\"size\":32,\"width\":[8,8,16,16,16],\"hidden\":16,\"head\":\"avg\"}");
    IT_CHECK_INT(it_judge_load(&e, &b, v1, 0), IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(e.msg, "unknown head");
    rewrite_meta(t, p5, v1, "config", "{\"size\":32,\"width\":[8,0],\"hidden\":16}");
    IT_CHECK_INT(it_judge_load(&e, &b, v1, 0), IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(e.msg, "not a judge config");
    it_judge_free(&a);
}

IT_TEST(toy_judge_inference_deterministic) {
    it_err e;
    it_judge j;
    it_judge_config cfg = tiny_config();
    IT_REQUIRE_OK(it_judge_init(&e, &j, &cfg, 9, 0), &e);
    enum { N = 5, R = 128 };
    uint8_t *rgb = it_malloc((size_t)N * R * R * 3);
    IT_REQUIRE(rgb);
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    IT_REQUIRE_OK(it_toy_render_batch(&e, R, R, &c, 11, 0, N, IT_TOY_EVAL, rgb, NULL, NULL), &e);
    it_image imgs[N];
    for (int i = 0; i < N; i++) imgs[i] = (it_image){R, R, 3, rgb + (size_t)i * R * R * 3};
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_judge_pred p1[N], p2[N], one;
    IT_CHECK_OK(it_judge_classify(&e, &j, &ctx, imgs, N, p1), &e);
    IT_CHECK_OK(it_judge_classify(&e, &j, &ctx, imgs, N, p2), &e);
    IT_CHECK(memcmp(p1, p2, sizeof p1) == 0);
    /* Alone or in a batch: the same answer. */
    IT_CHECK_OK(it_judge_classify(&e, &j, &ctx, &imgs[3], 1, &one), &e);
    for (int h = 0; h < IT_JUDGE_N_HEADS; h++) {
        IT_CHECK_INT(one.cls[h], p1[3].cls[h]);
        IT_CHECK_NEAR(one.prob[h], p1[3].prob[h], 1e-5);
    }
    /* A grey image (1 channel) is converted, not refused. */
    it_image grey;
    IT_REQUIRE_OK(it_image_alloc(&e, &grey, 40, 30, 1), &e);
    memset(grey.data, 128, 40 * 30);
    IT_CHECK_OK(it_judge_classify(&e, &j, &ctx, &grey, 1, &one), &e);
    json_t *js = it_judge_pred_to_json(&one);
    IT_CHECK(js && json_object_size(js) == IT_JUDGE_N_HEADS);
    json_decref(js);
    it_image_free(&grey);
    it_ctx_free(&ctx);
    it_free(rgb);
    it_judge_free(&j);
}

IT_TEST(toy_judge_out_of_memory) {
    it_err e;
    it_judge j;
    it_judge_config cfg = tiny_config();
    for (long k = 0; k < 3; k++) {
        it_mem_fail_after(k, 1);
        it_status st = it_judge_init(&e, &j, &cfg, 1, 1);
        it_mem_fail_after(-1, 0);
        if (st == IT_OK) {
            it_judge_free(&j);
            break;
        }
        IT_CHECK_INT(st, IT_ERR_NOMEM);
    }
}

static it_judge_train_opts tiny_train(it_test_ctx *t, const char *name)
{
    it_judge_train_opts o;
    it_judge_train_defaults(&o);
    o.model = tiny_config();
    o.steps = 6;
    o.batch = 4;
    o.warmup = 2;
    o.eval_every = 0;
    o.eval_n = 4;
    o.quiet = 1;
    o.out_f32 = 1;
    o.checkpoint_every = 2;
    char buf[64];
    snprintf(buf, sizeof buf, "%s.safetensors", name);
    o.out = strdup(it_test_tmp(t, buf));
    snprintf(buf, sizeof buf, "%s-ck", name);
    o.checkpoint = strdup(it_test_tmp(t, buf));
    return o;
}

/* Training stopped after 3 steps and resumed gives the same weights, bit for
 * bit, as an uninterrupted run: the data stream depends on (seed, step). */
IT_TEST(toy_judge_train_resume_is_exact) {
    it_err e;
    it_judge_train_result r;
    it_judge_train_opts a = tiny_train(t, "a"), b = tiny_train(t, "b");
    IT_REQUIRE_OK(it_judge_train(&e, &a, &r), &e);
    IT_CHECK_INT(r.steps_done, 6);
    b.stop_after = 3;
    IT_REQUIRE_OK(it_judge_train(&e, &b, &r), &e);
    IT_CHECK_INT(r.steps_done, 3);
    it_judge ja, jb;
    IT_CHECK(it_judge_load(&e, &jb, b.out, 0) != IT_OK); /* no final weights yet */
    b.stop_after = 0;
    b.resume = 1;
    IT_REQUIRE_OK(it_judge_train(&e, &b, &r), &e);
    IT_CHECK_INT(r.steps_done, 6);
    IT_REQUIRE_OK(it_judge_load(&e, &ja, a.out, 0), &e);
    IT_REQUIRE_OK(it_judge_load(&e, &jb, b.out, 0), &e);
    IT_CHECK(memcmp(ja.data, jb.data, (size_t)ja.n_weights * sizeof(float)) == 0);
    it_judge_free(&ja);
    it_judge_free(&jb);
    /* A checkpoint of another run is refused, naming both. */
    it_judge_train_opts c = tiny_train(t, "b");
    c.resume = 1;
    c.seed = 2;
    IT_CHECK_INT(it_judge_train(&e, &c, &r), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "checkpoint of another run");
    free((char *)a.out), free((char *)a.checkpoint), free((char *)b.out), free((char *)b.checkpoint);
    free((char *)c.out), free((char *)c.checkpoint);
}

/* Which part's box anchors each head's dense supervision. */
IT_TEST(toy_judge_aux_parts) {
    static const struct {
        const char *head;
        int part;
    } want[] = {
        {"identity", IT_TOY_PART_FACE},   {"eye_count", IT_TOY_PART_FACE},  {"mouth", IT_TOY_PART_FACE},
        {"goggles", IT_TOY_PART_FACE},    {"marking", IT_TOY_PART_FACE},    {"hat", IT_TOY_PART_HAT},
        {"hair_style", IT_TOY_PART_HAIR}, {"accessory", IT_TOY_PART_ACCESSORY},
        {"outfit_pattern", IT_TOY_PART_OUTFIT}, {"body_shape", IT_TOY_PART_BODY},
        {"pose", -1},                     {"background", -1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int h = 0;
        while (h < IT_JUDGE_N_HEADS && strcmp(it_judge_head_name(h), want[i].head)) h++;
        IT_REQUIRE(h < IT_JUDGE_N_HEADS);
        IT_CHECK_INT(it_judge_aux_part(h), want[i].part);
    }
}

/* With dense part supervision: resume is still exact, the checkpoint holds
 * the auxiliary head and the final file does not (it loads as a plain
 * judge), and a layer beyond the network is refused. */
IT_TEST(toy_judge_train_aux_resume_is_exact) {
    it_err e;
    it_judge_train_result r;
    it_judge_train_opts a = tiny_train(t, "auxa"), b = tiny_train(t, "auxb");
    a.aux_layer = b.aux_layer = 3;
    IT_REQUIRE_OK(it_judge_train(&e, &a, &r), &e);
    b.stop_after = 3;
    IT_REQUIRE_OK(it_judge_train(&e, &b, &r), &e);
    char ck[1024];
    snprintf(ck, sizeof ck, "%s.safetensors", b.checkpoint);
    it_safetensors *f = NULL;
    const it_safetensors_tensor *tt;
    IT_REQUIRE_OK(it_safetensors_open(&e, &f, ck), &e);
    IT_CHECK_OK(it_safetensors_get(&e, f, "aux.weight", &tt), &e);
    IT_CHECK_INT(tt->shape[0], it_judge_total_classes());
    IT_CHECK_INT(tt->shape[1], 16); /* channels of layer 3 */
    it_safetensors_close(f);
    b.stop_after = 0;
    b.resume = 1;
    IT_REQUIRE_OK(it_judge_train(&e, &b, &r), &e);
    IT_CHECK_INT(r.steps_done, 6);
    it_judge ja, jb;
    IT_REQUIRE_OK(it_judge_load(&e, &ja, a.out, 0), &e);
    IT_REQUIRE_OK(it_judge_load(&e, &jb, b.out, 0), &e);
    IT_CHECK(memcmp(ja.data, jb.data, (size_t)ja.n_weights * sizeof(float)) == 0);
    it_judge_free(&ja);
    it_judge_free(&jb);
    IT_REQUIRE_OK(it_safetensors_open(&e, &f, a.out), &e);
    IT_CHECK(it_safetensors_get(&e, f, "aux.weight", &tt) != IT_OK);
    it_safetensors_close(f);
    /* The same checkpoint without dense supervision is another run. */
    it_judge_train_opts c = tiny_train(t, "auxb");
    c.resume = 1;
    IT_CHECK_INT(it_judge_train(&e, &c, &r), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "checkpoint of another run");
    it_judge_train_opts d = tiny_train(t, "auxd");
    d.aux_layer = 6;
    IT_CHECK_INT(it_judge_train(&e, &d, &r), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "--aux-layer 6 but the network has 5 conv layers");
    free((char *)a.out), free((char *)a.checkpoint), free((char *)b.out), free((char *)b.checkpoint);
    free((char *)c.out), free((char *)c.checkpoint), free((char *)d.out), free((char *)d.checkpoint);
}

/* A time limit stops after the step that crossed it, checkpoints, writes the
 * weights so far; resuming finishes the run. */
IT_TEST(toy_judge_train_time_limit) {
    it_err e;
    it_judge_train_result r;
    it_judge_train_opts a = tiny_train(t, "tl");
    a.time_limit = 1e-9;
    IT_REQUIRE_OK(it_judge_train(&e, &a, &r), &e);
    IT_CHECK_INT(r.steps_done, 1);
    it_judge j;
    IT_REQUIRE_OK(it_judge_load(&e, &j, a.out, 0), &e);
    it_judge_free(&j);
    a.time_limit = 0;
    a.resume = 1;
    IT_REQUIRE_OK(it_judge_train(&e, &a, &r), &e);
    IT_CHECK_INT(r.steps_done, 6);
    free((char *)a.out), free((char *)a.checkpoint);
}

/* The crop branches: which heads each answers, window arithmetic, exact
 * resampling of an identity window, parameters, file round trip, and
 * inference that does not depend on the batch. */
IT_TEST(toy_judge_crops) {
    /* version 1: face, head (with the accessory), body */
    IT_CHECK_INT(it_judge_n_crops(1), 3);
    IT_CHECK_INT(it_judge_crop_of_head(1, 1 + IT_TOY_EYE_COUNT), 0);
    IT_CHECK_INT(it_judge_crop_of_head(1, 1 + IT_TOY_MOUTH), 0);
    IT_CHECK_INT(it_judge_crop_of_head(1, IT_JUDGE_HEAD_IDENTITY), 0);
    IT_CHECK_INT(it_judge_crop_of_head(1, 1 + IT_TOY_HAT), 1);
    IT_CHECK_INT(it_judge_crop_of_head(1, 1 + IT_TOY_ACCESSORY), 1);
    IT_CHECK_INT(it_judge_crop_of_head(1, 1 + IT_TOY_BODY_SHAPE), 2);
    IT_CHECK_INT(it_judge_crop_of_head(1, 1 + IT_TOY_POSE), -1);
    IT_CHECK_INT(it_judge_crop_of_head(1, 1 + IT_TOY_BODY_COLOUR), -1);
    /* version 2: the accessory in its own neck crop, the body at 64 px */
    IT_CHECK_INT(it_judge_n_crops(2), 4);
    IT_CHECK_INT(it_judge_crop_of_head(2, 1 + IT_TOY_HAT), 1);
    IT_CHECK_INT(it_judge_crop_of_head(2, 1 + IT_TOY_ACCESSORY), 2);
    IT_CHECK_INT(it_judge_crop_of_head(2, 1 + IT_TOY_ACCESSORY_COLOUR), 2);
    IT_CHECK_INT(it_judge_crop_of_head(2, 1 + IT_TOY_OUTFIT_PATTERN), 3);
    IT_CHECK_INT(it_judge_crop_get(2, 3)->side, 64);
    IT_CHECK_INT(it_judge_n_crops(3), 0);
    IT_CHECK(it_judge_crop_get(3, 0) == NULL);
    for (int v = 1; v <= 2; v++) {
        int owned = 0;
        for (int b = 0; b < it_judge_n_crops(v); b++)
            for (int k = 0; it_judge_crop_get(v, b)->heads[k] >= 0; k++) owned++;
        int answered = 0;
        for (int h = 0; h < IT_JUDGE_N_HEADS; h++) answered += it_judge_crop_of_head(v, h) >= 0;
        IT_CHECK_INT(owned, answered); /* no head in two branches */
        IT_CHECK_INT(answered, 14);    /* the same heads, only regrouped */
    }
    IT_CHECK_STR(it_judge_crop_param_name(2, 2, 0), "neck.conv1.weight");
    IT_CHECK_STR(it_judge_crop_param_name(2, 3, IT_JUDGE_CROP_PARAMS - 1), "body.heads.bias");
    const float anchors[IT_JUDGE_LOC] = {60, 50, 30, 20, 64, 70, 50, 90};
    float cx, cy, half;
    it_judge_crop_window(1, 0, anchors, &cx, &cy, &half);
    IT_CHECK_NEAR(cx, 60, 1e-5);
    IT_CHECK_NEAR(cy, 50, 1e-5);
    IT_CHECK_NEAR(half, 24, 1e-5); /* 1.6 x 30 / 2 */
    it_judge_crop_window(1, 1, anchors, &cx, &cy, &half);
    IT_CHECK_NEAR(cy, 46, 1e-5);   /* moved up by a fifth of the face height */
    IT_CHECK_NEAR(half, 30, 1e-5);
    it_judge_crop_window(1, 2, anchors, &cx, &cy, &half);
    IT_CHECK_NEAR(cx, 64, 1e-5);
    IT_CHECK_NEAR(half, 0.5 * 1.05 * 90, 1e-4);
    it_judge_crop_window(2, 2, anchors, &cx, &cy, &half);
    IT_CHECK_NEAR(cx, 60, 1e-5);
    IT_CHECK_NEAR(cy, 63, 1e-5);   /* 0.65 of the face height below its centre */
    IT_CHECK_NEAR(half, 12, 1e-5); /* 0.8 x 30 / 2 */
    enum { S = 16 };
    float x[3 * S * S], y[3 * S * S];
    for (int i = 0; i < 3 * S * S; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    it_judge_crop_sample(y, S, x, S, S / 2.0f, S / 2.0f, S / 2.0f);
    double worst = 0;
    for (int i = 0; i < 3 * S * S; i++) worst = fmax(worst, fabs((double)x[i] - y[i]));
    IT_CHECK(worst < 1e-5);

    enum { N = 4, R = 128 };
    uint8_t *rgb = it_malloc((size_t)N * R * R * 3);
    IT_REQUIRE(rgb);
    it_err e;
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    IT_REQUIRE_OK(it_toy_render_batch(&e, R, R, &c, 12, 0, N, IT_TOY_EVAL, rgb, NULL, NULL), &e);
    it_image imgs[N];
    for (int i = 0; i < N; i++) imgs[i] = (it_image){R, R, 3, rgb + (size_t)i * R * R * 3};
    for (int v = 1; v <= 2; v++) {
        it_judge a, b;
        it_judge_config cfg = tiny_config();
        cfg.crops = v;
        IT_REQUIRE_OK(it_judge_init(&e, &a, &cfg, 5, 0), &e);
        IT_CHECK_INT(a.n_main, 5 * 4 + 4);
        IT_CHECK_INT(a.n_params, a.n_main + 2 + it_judge_n_crops(v) * IT_JUDGE_CROP_PARAMS);
        IT_CHECK_STR(a.params[a.n_main].name, "locator.weight");
        IT_CHECK_STR(a.params[a.n_main + 2].name, "face.conv1.weight");
        IT_CHECK_STR(a.params[a.n_params - 1].name, "body.heads.bias");
        const char *path = it_test_tmp(t, v == 1 ? "crops1.safetensors" : "crops2.safetensors");
        IT_REQUIRE_OK(it_judge_save(&e, &a, path, IT_DTYPE_F32, NULL), &e);
        IT_REQUIRE_OK(it_judge_load(&e, &b, path, 0), &e);
        IT_CHECK_INT(b.cfg.crops, v);
        IT_CHECK_INT(b.n_weights, a.n_weights);
        IT_CHECK(memcmp(a.data, b.data, (size_t)a.n_weights * sizeof(float)) == 0);
        it_judge_free(&b);

        it_ctx ctx;
        it_ctx_init(&ctx, 0);
        it_judge_pred p[N], one;
        IT_CHECK_OK(it_judge_classify(&e, &a, &ctx, imgs, N, p), &e);
        IT_CHECK_OK(it_judge_classify(&e, &a, &ctx, &imgs[2], 1, &one), &e);
        for (int h = 0; h < IT_JUDGE_N_HEADS; h++) {
            IT_CHECK_INT(one.cls[h], p[2].cls[h]);
            IT_CHECK_NEAR(one.prob[h], p[2].prob[h], 1e-5);
        }
        it_ctx_free(&ctx);
        it_judge_free(&a);
    }
    it_judge_config bad = tiny_config();
    bad.crops = 3;
    it_judge z;
    IT_CHECK_INT(it_judge_init(&e, &z, &bad, 5, 0), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "crops version 3 unknown");
    it_free(rgb);
}

/* Training with crops resumes exactly, and --init may start it from a file
 * without crops (the main network only). */
IT_TEST(toy_judge_train_crops) {
    it_err e;
    it_judge_train_result r;
    it_judge_train_opts base = tiny_train(t, "plain");
    IT_REQUIRE_OK(it_judge_train(&e, &base, &r), &e);
    it_judge_train_opts a = tiny_train(t, "cra"), b = tiny_train(t, "crb");
    a.model.crops = b.model.crops = 2;
    a.init = b.init = base.out;
    IT_REQUIRE_OK(it_judge_train(&e, &a, &r), &e);
    b.stop_after = 4;
    IT_REQUIRE_OK(it_judge_train(&e, &b, &r), &e);
    b.stop_after = 0;
    b.resume = 1;
    IT_REQUIRE_OK(it_judge_train(&e, &b, &r), &e);
    it_judge ja, jb, j0;
    IT_REQUIRE_OK(it_judge_load(&e, &ja, a.out, 0), &e);
    IT_REQUIRE_OK(it_judge_load(&e, &jb, b.out, 0), &e);
    IT_REQUIRE_OK(it_judge_load(&e, &j0, base.out, 0), &e);
    IT_CHECK_INT(ja.cfg.crops, 2);
    IT_CHECK(memcmp(ja.data, jb.data, (size_t)ja.n_weights * sizeof(float)) == 0);
    IT_CHECK(memcmp(ja.data, j0.data, (size_t)j0.n_weights * sizeof(float)) != 0); /* it trained on */
    it_judge_free(&ja);
    it_judge_free(&jb);
    it_judge_free(&j0);
    /* The other way round is refused: a crops file cannot start a judge without them. */
    it_judge_train_opts c = tiny_train(t, "crc");
    c.init = a.out;
    IT_CHECK_INT(it_judge_train(&e, &c, &r), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "cannot start a judge without them");
    /* A crops version 1 file starts a version 2 judge (the tensors both
     * have: main network, locator, face crop, the other crops' convs). */
    it_judge_train_opts d = tiny_train(t, "crd"), f = tiny_train(t, "crf");
    d.model.crops = 1;
    d.init = base.out;
    IT_REQUIRE_OK(it_judge_train(&e, &d, &r), &e);
    f.model.crops = 2;
    f.init = d.out;
    IT_REQUIRE_OK(it_judge_train(&e, &f, &r), &e);
    IT_REQUIRE_OK(it_judge_load(&e, &jb, f.out, 0), &e);
    IT_CHECK_INT(jb.cfg.crops, 2);
    it_judge_free(&jb);
    free((char *)a.out), free((char *)a.checkpoint), free((char *)b.out), free((char *)b.checkpoint);
    free((char *)c.out), free((char *)c.checkpoint), free((char *)base.out), free((char *)base.checkpoint);
    free((char *)d.out), free((char *)d.checkpoint), free((char *)f.out), free((char *)f.checkpoint);
}

static int run_cli(it_test_ctx *t, const char *args, const char *outname)
{
    it_test_cli_io io = {.out_name = outname};
    return it_test_cli(t, &io, args);
}

/* Renders one image of pip into the test's temp dir; returns its path. */
static const char *render_pip(it_test_ctx *t)
{
    char args[2048], dir[512];
    snprintf(dir, sizeof dir, "%s", it_test_tmp(t, "imgs"));
    snprintf(args, sizeof args, "toy render --n 1 --seed 5 --character pip --out %s -q", dir);
    if (run_cli(t, args, "render.txt") != 0) return NULL;
    return it_test_tmp(t, "imgs/000000.png");
}

IT_TEST(toy_judge_cli_errors) {
    IT_REQUIRE(getenv("IT_BIN") != NULL);
    it_err e;
    char txt[512], png[512];
    snprintf(txt, sizeof txt, "%s", it_test_tmp(t, "note.txt")); /* it_test_tmp reuses its buffer */
    IT_REQUIRE_OK(it_file_write_atomic(&e, txt, "not an image", 12), &e);
    const char *p = render_pip(t);
    IT_REQUIRE(p != NULL);
    snprintf(png, sizeof png, "%s", p);
    static const struct {
        const char *args; /* X = a text file, Y = a PNG */
        int rc;
        const char *msg;
    } cases[] = {
        {"toy judge", 2, "give IMAGE files or --eval N"},
        {"toy judge --eval 5 Y", 2, "--eval renders its own images"},
        {"toy judge --weights /nonexistent/judge.safetensors Y", 1, "/nonexistent/judge.safetensors"},
        {"toy judge --weights Y Y", 1, "000000.png"},
        {"toy judge X", 1, "note.txt"},
        {"toy train-judge --steps 0", 2, "out of range"},
        {"toy train-judge --steps 5 --resume", 2, "--resume and --stop-after need --checkpoint"},
        {"toy train-judge --steps 5 --seed 3 --eval-seed 3", 2, "evaluation seed must differ"},
        {"toy train-judge --steps 5 --widths 16,x", 2, "--widths '16,x': expected up to 8 comma-separated numbers"},
        {"toy train-judge --steps 5 --strides 2,2,2,2,2,2,2,2,2", 2, "expected up to 8"},
        {"toy train-judge --steps 5 --strides 2,3,2,2,2", 2, "conv2 stride 3 must be 1 or 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[2048] = "";
        for (const char *c = cases[i].args; *c; c++) {
            size_t n = strlen(args);
            if (*c == 'X' || *c == 'Y') snprintf(args + n, sizeof args - n, "%s", *c == 'X' ? txt : png);
            else if (n + 1 < sizeof args) args[n] = *c, args[n + 1] = 0;
        }
        IT_CHECK_INT(run_cli(t, args, "err.txt"), cases[i].rc);
        uint8_t *msg;
        size_t n;
        IT_REQUIRE_OK(it_file_read(&e, &msg, &n, it_test_tmp(t, "err.txt"), 1 << 16), &e);
        IT_CHECK_CONTAINS((const char *)msg, cases[i].msg);
        it_free(msg);
    }
}

/* The shipped judge on 400 renders of a seed it never saw (424242; training
 * used seeds 1 and 11-15, evaluation during training 1000003), with 25 %
 * named characters and with generic creatures only (where no head can be
 * read off a character's fixed design). The target is >= 98 % on
 * every head (see models/toy/README.md for where the shipped weights
 * stand). The floors are the shipped weights' measured accuracy minus 1.5
 * points (6 of the 400 images: room for another BLAS's rounding to flip a
 * borderline image), so that a regression (a broken preprocessing, crop,
 * renderer change or weights file) fails this test; raise them when better
 * weights ship. The target, 98 % per head, is what the shipped
 * weights measure (docs/TOYWORLD.md); the lowest, outfit_pattern on the
 * mix, is exactly 98.0 % here and 98.8 % on 2,000 renders of seed 99. */
IT_TEST(toy_judge_shipped_accuracy_fresh_seed) {
    static const struct {
        const char *head;
        double mix, generic;
    } floors[] = {
        {"identity", 0.9850, 0.9850},
        {"body_shape", 0.9850, 0.9850},
        {"body_colour", 0.9825, 0.9825},
        {"eye_count", 0.9850, 0.9850},
        {"goggles", 0.9850, 0.9850},
        {"mouth", 0.9850, 0.9850},
        {"hair_style", 0.9825, 0.9850},
        {"hair_colour", 0.9775, 0.9800},
        {"hat", 0.9850, 0.9850},
        {"hat_colour", 0.9825, 0.9800},
        {"outfit", 0.9850, 0.9850},
        {"outfit_colour", 0.9825, 0.9825},
        {"outfit_pattern", 0.9650, 0.9700},
        {"accessory", 0.9850, 0.9850},
        {"accessory_colour", 0.9800, 0.9800},
        {"pose", 0.9850, 0.9850},
        {"background", 0.9850, 0.9850},
        {"marking", 0.9850, 0.9850},
    };
    it_err e;
    it_judge j;
    IT_REQUIRE_OK(it_judge_load(&e, &j, SHIPPED, 0), &e);
    IT_CHECK_INT(j.cfg.crops, 2);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    double acc[2][IT_JUDGE_N_HEADS], loc[2];
    it_threads_set(1); /* small networks: OpenMP spinning on a busy machine costs 10x */
    IT_CHECK_OK(it_judge_evaluate(&e, &j, &ctx, 424242, 400, 0.25f, acc[0]), &e);
    IT_CHECK_OK(it_judge_evaluate_ex(&e, &j, &ctx, 424242, 400, 0.0f, acc[1], loc), &e);
    it_threads_set(0);
    IT_CHECK(loc[0] > 0 && loc[0] < 4.0); /* the locator finds the face within a few pixels */
    IT_CHECK_INT(sizeof floors / sizeof floors[0], IT_JUDGE_N_HEADS);
    for (int h = 0; h < IT_JUDGE_N_HEADS; h++) {
        IT_CHECK_STR(floors[h].head, it_judge_head_name(h));
        for (int g = 0; g < 2; g++) {
            double fl = g ? floors[h].generic : floors[h].mix;
            if (acc[g][h] < fl)
                it_test_fail(t, __FILE__, __LINE__, "head %s (%s): accuracy %.2f%% < floor %.0f%%", it_judge_head_name(h),
                             g ? "generic creatures" : "25 %% named", 100 * acc[g][h], 100 * fl);
        }
    }
    it_ctx_free(&ctx);
    it_judge_free(&j);
}

/* The shipped weights read the JSON of a rendered image through the CLI. */
IT_TEST(toy_judge_cli_shipped) {
    IT_REQUIRE(getenv("IT_BIN") != NULL);
    const char *p = render_pip(t);
    IT_REQUIRE(p != NULL);
    char args[2048];
    snprintf(args, sizeof args, "toy judge --json %s", p);
    IT_CHECK_INT(run_cli(t, args, "out.json"), 0);
    json_error_t je;
    json_t *j = json_load_file(it_test_tmp(t, "out.json"), 0, &je);
    IT_REQUIRE(j && json_array_size(j) == 1);
    json_t *a = json_object_get(json_array_get(j, 0), "attributes");
    IT_CHECK_INT(json_object_size(a), IT_JUDGE_N_HEADS);
    json_t *bc = json_object_get(a, "body_colour");
    IT_CHECK_STR(json_string_value(json_object_get(bc, "value")), "yellow"); /* pip is yellow */
    IT_CHECK(json_real_value(json_object_get(bc, "confidence")) > 0.5);
    /* Where it looked: the located face overlaps the rendered one. */
    json_t *face = json_object_get(json_object_get(json_array_get(j, 0), "boxes"), "face");
    json_t *truth = json_load_file(it_test_tmp(t, "imgs/000000.json"), 0, &je);
    json_t *tf = json_object_get(json_object_get(json_object_get(truth, "parts"), "face"), "box");
    IT_REQUIRE(json_array_size(face) == 4 && json_array_size(tf) == 4);
    float lb[4], tb[4];
    for (int k = 0; k < 4; k++) {
        lb[k] = (float)json_integer_value(json_array_get(face, k));
        tb[k] = (float)json_integer_value(json_array_get(tf, k));
    }
    float iw = fminf(lb[2], tb[2]) - fmaxf(lb[0], tb[0]), ih = fminf(lb[3], tb[3]) - fmaxf(lb[1], tb[1]);
    float inter = iw > 0 && ih > 0 ? iw * ih : 0;
    float uni = (lb[2] - lb[0]) * (lb[3] - lb[1]) + (tb[2] - tb[0]) * (tb[3] - tb[1]) - inter;
    IT_CHECK(inter / uni > 0.5f);
    json_decref(truth);
    json_decref(j);
}
