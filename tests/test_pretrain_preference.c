/* test_pretrain_preference.c: the toy preference head (src/toy/
 * pretrain_preference.c): degradations are deterministic and do what they
 * say (anatomy errors touch only the face), a few steps on a tiny interim
 * CLIP lower the pairwise loss, resume repeats the losses bit for bit, and
 * the exported head loads through vision/preference.c and `score`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/threads.h"
#include "test.h"
#include "toy/pretrain_preference.h"

/* Small but at the renders' full 128 px: downscaling would blur the clean
 * image too and hide the degradation the test trains on. */
#define TINY_CLIP                                                                                          \
    "\"interim_clip\": {\"v_hidden\": 48, \"v_layers\": 2, \"v_heads\": 2, \"image_size\": 128, "        \
    "\"patch_size\": 32, \"t_hidden\": 32, \"t_layers\": 1, \"t_heads\": 2, \"t_positions\": 16, "       \
    "\"projection_dim\": 32, \"vocab_size\": 600, \"n_captions\": 150}"

static void tiny_opts(it_pretrain_opts *o, it_test_ctx *t, const char *sub, int64_t steps)
{
    it_threads_set(1); /* see test_pretrain_detector.c */
    it_pretrain_opts_init(o);
    o->component = "preference";
    static char out[3][1024], run[3][1024];
    static int k;
    k = (k + 1) % 3;
    snprintf(out[k], sizeof out[k], "%s/%s_out", t->tmpdir, sub);
    snprintf(run[k], sizeof run[k], "%s/%s_run", t->tmpdir, sub);
    o->out = out[k];
    o->run_dir = run[k];
    /* blur only: a random tower sees it within 30 steps (anatomy errors need a trained CLIP) */
    o->config = "{" TINY_CLIP ", \"degradations\": [\"blur\"]}";
    o->steps = steps;
    o->batch = 8;
    o->lr = 1e-2;
    o->eval_every = -1;
    o->eval_n = 12;
    o->quiet = 1;
}

static int read_losses(const char *run_dir, double *loss, int max)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/preference/train.jsonl", run_dir);
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

IT_TEST(pretrain_preference_degradations)
{
    it_err err;
    it_toy_renderer rd;
    IT_REQUIRE_OK(it_toy_renderer_init(&err, &rd, 128, 128), &err);
    enum { SZ = 128 * 128 * 3 };
    uint8_t *clean = it_malloc(SZ), *a = it_malloc(SZ), *b = it_malloc(SZ), *mask = it_malloc(128 * 128);
    IT_REQUIRE(clean && a && b && mask);
    int seen[IT_PREF_N_DEGRADE] = {0};
    for (uint64_t i = 0; i < 60; i++) {
        it_toy_attrs at;
        IT_REQUIRE_OK(it_toy_sample(&err, &at, NULL, 9, i, IT_TOY_PRETRAIN), &err);
        IT_REQUIRE_OK(it_toy_render(&err, &rd, &at, IT_TOY_PRETRAIN, clean, mask, NULL), &err);
        memcpy(a, clean, SZ);
        memcpy(b, clean, SZ);
        int ka = -1, kb = -1;
        IT_REQUIRE_OK(it_pref_degrade_image(&err, a, mask, &at, 128, 128, 9, i, 0, &ka), &err);
        IT_REQUIRE_OK(it_pref_degrade_image(&err, b, mask, &at, 128, 128, 9, i, 0, &kb), &err);
        IT_CHECK(ka == kb && !memcmp(a, b, SZ)); /* a function of (seed, index) */
        IT_REQUIRE(ka >= 0 && ka < IT_PREF_N_DEGRADE);
        seen[ka]++;
        long changed = 0, outside_face = 0;
        for (int p = 0; p < 128 * 128; p++) {
            int d = memcmp(a + p * 3, clean + p * 3, 3) != 0;
            changed += d;
            outside_face += d && !(mask[p] & IT_TOY_BIT(IT_TOY_PART_FACE));
        }
        IT_CHECK(changed > 20); /* visibly degraded */
        if (ka == IT_PREF_NO_EYES || ka == IT_PREF_BLANK_FACE) IT_CHECK(outside_face == 0);
    }
    for (int k = 0; k < IT_PREF_N_DEGRADE; k++) IT_CHECK(seen[k] > 0);
    IT_CHECK_STR(it_pref_degrade_name(IT_PREF_NO_EYES), "no_eyes");
    /* out of memory in the kinds that allocate: a clean error, nothing leaked */
    it_toy_attrs at;
    IT_REQUIRE_OK(it_toy_sample(&err, &at, NULL, 9, 0, IT_TOY_PRETRAIN), &err);
    const int alloc_kinds[3] = {IT_PREF_BLUR, IT_PREF_NOISE, IT_PREF_JPEG};
    for (int k = 0; k < 3; k++) {
        int got = -1;
        it_mem_fail_after(0, 1);
        it_status st = it_pref_degrade_image(&err, a, mask, &at, 128, 128, 9, 0, 1u << alloc_kinds[k], &got);
        it_mem_fail_after(-1, 0);
        IT_CHECK_INT(st, IT_ERR_NOMEM);
        IT_CHECK_INT(got, alloc_kinds[k]);
    }
    IT_CHECK(it_pref_degrade_image(&err, a, mask, &at, 128, 128, 9, 0, 1u << IT_PREF_N_DEGRADE, NULL) == IT_ERR_ARG);
    it_free(clean), it_free(a), it_free(b), it_free(mask);
    it_toy_renderer_free(&rd);
}

IT_TEST(pretrain_preference_learns_exports_and_loads)
{
    it_pretrain_opts o;
    tiny_opts(&o, t, "learn", 30);
    it_err err;
    IT_REQUIRE_OK(it_pretrain_preference(&err, &o), &err);
    double loss[30] = {0};
    IT_REQUIRE(read_losses(o.run_dir, loss, 30) == 30);
    double a = 0, b = 0;
    for (int i = 0; i < 5; i++) a += loss[i], b += loss[25 + i];
    IT_CHECK(b < 0.8 * a);
    char cfg[2048], w[2048];
    snprintf(cfg, sizeof cfg, "%s/preference/pref_config.json", o.out);
    snprintf(w, sizeof w, "%s/preference/pref.safetensors", o.out);
    it_pref p;
    IT_REQUIRE_OK(it_pref_load(&err, &p, cfg, w), &err);
    IT_CHECK_INT(p.input_dim, 32);
    IT_CHECK_INT(p.n_layers, 3); /* the default head: 128, 32, 1 */
    it_pref_free(&p);
    json_t *rep = json_object();
    IT_REQUIRE_OK(it_quality_preference(&err, &o, rep), &err);
    json_t *all = json_object_get(json_object_get(rep, "pair_accuracy"), "all");
    IT_CHECK(json_is_number(all) && json_number_value(all) >= 0 && json_number_value(all) <= 1);
    json_decref(rep);
    /* `score` reads the head with the CLIP its config names */
    const char *bin = getenv("IT_BIN");
    json_t *pc = json_load_file(cfg, 0, NULL);
    const char *clip = json_string_value(json_object_get(pc, "clip"));
    IT_CHECK(clip && clip[0] == '/'); /* the interim CLIP: absolute */
    if (bin && clip) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "%s toy render --n 2 --seed 3 --out %s/img -q >/dev/null 2>&1 && "
                 "%s score --model %s --head %s --json %s/img/000000.png %s/img/000001.png > %s/score.json",
                 bin, t->tmpdir, bin, clip, w, t->tmpdir, t->tmpdir, t->tmpdir);
        IT_CHECK(system(cmd) == 0);
        json_t *d = json_load_file(it_test_tmp(t, "score.json"), 0, NULL);
        IT_CHECK(json_array_size(d) == 2);
        json_decref(d);
    }
    /* a head is tied to its CLIP: changed CLIP weights are refused */
    if (clip) {
        char wpath[2048];
        snprintf(wpath, sizeof wpath, "%s/model.safetensors", clip);
        FILE *f = fopen(wpath, "r+b");
        IT_REQUIRE(f);
        fseek(f, -1, SEEK_END);
        int c = fgetc(f);
        fseek(f, -1, SEEK_END);
        fputc(c ^ 0x01, f);
        fclose(f);
        json_t *r2 = json_object();
        IT_CHECK(it_quality_preference(&err, &o, r2) == IT_ERR_ARG);
        IT_CHECK_CONTAINS(err.msg, "trained on another CLIP");
        json_decref(r2);
    }
    json_decref(pc);
    it_threads_set(0);
}

IT_TEST(pretrain_preference_resume_is_bit_identical)
{
    it_pretrain_opts a, b;
    tiny_opts(&a, t, "full", 8);
    tiny_opts(&b, t, "split", 8);
    it_err err;
    IT_REQUIRE_OK(it_pretrain_preference(&err, &a), &err);
    b.stop_after = 3;
    IT_REQUIRE_OK(it_pretrain_preference(&err, &b), &err);
    b.stop_after = 0;
    b.resume = 1;
    IT_REQUIRE_OK(it_pretrain_preference(&err, &b), &err);
    double la[8] = {0}, lb[8] = {0};
    IT_CHECK_INT(read_losses(a.run_dir, la, 8), 8);
    IT_REQUIRE(read_losses(b.run_dir, lb, 8) >= 8);
    for (int i = 0; i < 8; i++)
        if (la[i] != lb[i]) {
            it_test_fail(t, __FILE__, __LINE__, "step %d: loss %.9g uninterrupted, %.9g resumed", i + 1, la[i], lb[i]);
            break;
        }
    it_threads_set(0);
}

IT_TEST(pretrain_preference_refuses_relu)
{
    it_pretrain_opts o;
    tiny_opts(&o, t, "relu", 2);
    o.config = "{" TINY_CLIP ", \"head\": {\"layers\": [{\"key\": \"layers.0\", \"out\": 4, \"activation\": \"relu\"},"
               " {\"key\": \"layers.1\", \"out\": 1}]}}";
    it_err err;
    IT_CHECK(it_pretrain_preference(&err, &o) == IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "relu");
    o.config = "{" TINY_CLIP ", \"degradations\": [\"smudge\"]}";
    IT_CHECK(it_pretrain_preference(&err, &o) == IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "unknown degradation \"smudge\"");
    it_threads_set(0);
}
