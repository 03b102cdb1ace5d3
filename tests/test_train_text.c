/* Text-encoder LoRA training and gradient checkpointing through
 * it_train_run (the math against diffusers is in test_train_parity.c):
 * the final kohya file holds the UNet's and the text encoder's modules
 * (lora_te_*) and the text encoder's LoRA has moved; a run with gradient
 * checkpointing logs exactly the losses of the same run without and writes
 * the same file; a run stopped after 2 steps and resumed ends byte-identical
 * (LoRA dropout on, so the dropout stream must be keyed by the step);
 * text-encoder-only training; kohya's key names; config errors. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "image/image.h"
#include "test.h"
#include "train/lora_file.h"
#include "train/trainer.h"

/* 3 random 16x16 images with captions. */
static void make_data(it_test_ctx *t, char *dir, size_t n)
{
    it_err err;
    snprintf(dir, n, "%s/data", t->tmpdir);
    IT_CHECK_OK(it_mkdir_p(&err, dir), &err);
    it_rng r;
    it_rng_init(&r, 4);
    char p[1100];
    for (int i = 0; i < 3; i++) {
        it_image img;
        IT_CHECK_OK(it_image_alloc(&err, &img, 16, 16, 3), &err);
        for (int j = 0; j < 16 * 16 * 3; j++) img.data[j] = (uint8_t)it_rng_below(&r, 256);
        snprintf(p, sizeof p, "%s/i%d.png", dir, i);
        IT_CHECK_OK(it_image_save_png(&err, &img, p), &err);
        it_image_free(&img);
        snprintf(p, sizeof p, "%s/i%d.txt", dir, i);
        const char *cap = i == 1 ? "zxq blob, blue" : "zxq blob";
        IT_CHECK_OK(it_file_write_atomic(&err, p, cap, strlen(cap)), &err);
    }
}

/* Runs the trainer with the common keys plus extra (key, value) pairs. */
static it_status run(it_test_ctx *t, it_err *err, const char *data, const char *out, const char *const (*kv)[2],
                     size_t n_kv)
{
    it_train_config c;
    it_train_config_init(&c);
    const char *base[][2] = {{"model", it_test_fixture(t, "sd/sd1")}, {"data", data}, {"out", out},
                             {"rank", "4"}, {"alpha", "4"}, {"steps", "4"}, {"batch", "2"},
                             {"resolution", "16"}, {"save_every", "1"}, {"lr", "1e-3"}, {"seed", "3"}};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) IT_TRY(it_train_config_set(err, &c, base[i][0], base[i][1]));
    for (size_t i = 0; i < n_kv; i++) IT_TRY(it_train_config_set(err, &c, kv[i][0], kv[i][1]));
    c.quiet = 1;
    return it_train_run(err, &c, NULL);
}

/* Losses of OUT/train.jsonl in step order (resume repeats are overwritten). */
static int read_losses(const char *out, double *loss, int cap, double *text_lr)
{
    char p[4200], line[4096];
    snprintf(p, sizeof p, "%s/train.jsonl", out);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        int step = (int)json_integer_value(json_object_get(j, "step"));
        if (step >= 1 && step <= cap && json_object_get(j, "loss")) {
            loss[step - 1] = json_real_value(json_object_get(j, "loss"));
            if (text_lr) *text_lr = json_real_value(json_object_get(j, "text_lr"));
            if (step > n) n = step;
        }
        json_decref(j);
    }
    fclose(f);
    return n;
}

static int same_file(const char *a, const char *b)
{
    uint8_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = !it_file_read(NULL, &x, &nx, a, 1 << 26) && !it_file_read(NULL, &y, &ny, b, 1 << 26) &&
               nx == ny && !memcmp(x, y, nx);
    it_free(x);
    it_free(y);
    return same;
}

/* Same modules and bit-identical weights (metadata may differ). */
static int same_weights(it_test_ctx *t, const char *a, const char *b)
{
    it_err err;
    it_lora x, y;
    IT_CHECK_OK(it_lora_load(&err, &x, a, NULL, NULL, 0), &err);
    IT_CHECK_OK(it_lora_load(&err, &y, b, NULL, NULL, 0), &err);
    int same = x.n == y.n && x.n_floats == y.n_floats && !memcmp(x.data, y.data, x.n_floats * sizeof(float));
    it_lora_free(&x);
    it_lora_free(&y);
    return same;
}

IT_TEST(train_text_encoder_checkpointing_resume)
{
    it_err err;
    char data[1024], out[3][1100], f[3][1200];
    make_data(t, data, sizeof data);
    const char *kv[][2] = {{"train_text", "true"}, {"text_encoder_lr", "5e-3"}, {"dropout", "0.1"},
                           {"gradient_checkpointing", "false"}, {"stop_after", "0"}};
    for (int i = 0; i < 3; i++) {
        snprintf(out[i], sizeof out[i], "%s/out%d", t->tmpdir, i);
        snprintf(f[i], sizeof f[i], "%s/lora.safetensors", out[i]);
    }
    IT_REQUIRE_OK(run(t, &err, data, out[0], kv, 5), &err);
    kv[3][1] = "true"; /* checkpointing on */
    IT_REQUIRE_OK(run(t, &err, data, out[1], kv, 5), &err);
    kv[4][1] = "2";    /* stop after 2 steps, then resume */
    IT_REQUIRE_OK(run(t, &err, data, out[2], kv, 5), &err);
    const char *kv2[][2] = {{"train_text", "true"}, {"text_encoder_lr", "5e-3"}, {"dropout", "0.1"},
                            {"gradient_checkpointing", "true"}, {"resume", "true"}};
    IT_REQUIRE_OK(run(t, &err, data, out[2], kv2, 5), &err);
    double loss[3][4], tlr = 0;
    for (int i = 0; i < 3; i++) IT_CHECK_INT(read_losses(out[i], loss[i], 4, i == 0 ? &tlr : NULL), 4);
    printf("    losses without / with checkpointing / resumed: %.9f %.9f %.9f (step 4)\n", loss[0][3], loss[1][3],
           loss[2][3]);
    for (int s = 0; s < 4; s++) {
        IT_CHECK(loss[0][s] == loss[1][s]);
        IT_CHECK(loss[1][s] == loss[2][s]);
    }
    IT_CHECK_NEAR(tlr, 5e-3, 1e-12);
    IT_CHECK(same_weights(t, f[0], f[1])); /* checkpointing changes nothing (but ss_gradient_checkpointing) */
    IT_CHECK(same_file(f[1], f[2])); /* nor does stopping and resuming */
    it_lora l;
    IT_REQUIRE_OK(it_lora_load(&err, &l, f[0], NULL, NULL, 0), &err);
    size_t nu = it_lora_count(&l, 1), moved = 0;
    IT_CHECK_INT(nu, 48);
    IT_CHECK_INT(l.n - nu, 12);
    for (size_t i = nu; i < l.n; i++) {
        const float *up = it_f32(&l.mods[i].up);
        double mx = 0;
        for (int64_t j = 0; j < l.mods[i].up.n; j++) mx = fmax(mx, fabs(up[j]));
        moved += mx > 1e-3; /* up starts at zero; 4 steps at lr 5e-3 move it */
        IT_CHECK(!strncmp(l.mods[i].name, "lora_te_text_model_encoder_layers_", 34));
    }
    IT_CHECK_INT(moved, 12);
    it_lora_free(&l);
    /* resuming with other components is refused */
    const char *kv3[][2] = {{"resume", "true"}, {"steps", "6"}};
    IT_CHECK(run(t, &err, data, out[2], kv3, 2) == IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "checkpoint trains the UNet and the text encoder; this run trains the UNet only");
}

IT_TEST(train_text_only_and_config_keys)
{
    it_err err;
    char data[1024], out[1100], f[1200];
    make_data(t, data, sizeof data);
    snprintf(out, sizeof out, "%s/te", t->tmpdir);
    snprintf(f, sizeof f, "%s/lora.safetensors", out);
    const char *kv[][2] = {{"network_train_text_encoder_only", "true"}, {"steps", "2"}, {"lr", "1e-2"}};
    IT_REQUIRE_OK(run(t, &err, data, out, kv, 3), &err);
    it_lora l;
    IT_REQUIRE_OK(it_lora_load(&err, &l, f, NULL, NULL, 0), &err);
    IT_CHECK_INT(it_lora_count(&l, 1), 0);
    IT_CHECK_INT(l.n, 12);
    it_lora_free(&l);

    it_train_config c;
    it_train_config_init(&c);
    IT_CHECK_INT(c.train_unet, 1);
    IT_CHECK_INT(c.train_text, 0);
    IT_CHECK_OK(it_train_config_set(&err, &c, "text-encoder-lr", "2e-5"), &err);
    IT_CHECK_NEAR(c.text_lr, 2e-5, 1e-15);
    IT_CHECK_OK(it_train_config_set(&err, &c, "unet_lr", "3e-4"), &err);
    IT_CHECK_NEAR(c.lr, 3e-4, 1e-15);
    IT_CHECK_OK(it_train_config_set(&err, &c, "gradient-checkpointing", "true"), &err);
    IT_CHECK_INT(c.gradient_checkpointing, 1);
    IT_CHECK(it_train_config_set(&err, &c, "gradient_checkpointing", "yes") == IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "gradient_checkpointing: expected true or false, got 'yes'");
    IT_CHECK(it_train_config_set(&err, &c, "text_lr", "-1") == IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "text_lr: -1 out of range");
    snprintf(c.model, sizeof c.model, "m"), snprintf(c.data, sizeof c.data, "d"), snprintf(c.out, sizeof c.out, "o");
    IT_CHECK_OK(it_train_config_check(&err, &c), &err);
    IT_CHECK_INT(it_train_config_unet(&c) * 10 + it_train_config_text(&c), 10);
    c.train_unet_only = c.train_text_only = 1;
    IT_CHECK(it_train_config_check(&err, &c) == IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "train_unet_only and train_text_only exclude each other");
    c.train_unet_only = c.train_text_only = 0;
    c.train_unet = 0;
    IT_CHECK(it_train_config_check(&err, &c) == IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "nothing to train");
    c.train_text = 1;
    IT_CHECK_OK(it_train_config_check(&err, &c), &err);
    IT_CHECK_INT(it_train_config_unet(&c) * 10 + it_train_config_text(&c), 1);
    /* the JSON file takes the same keys; a bad value names file and key */
    const char *j = "{\"train_text\": true, \"text_encoder_lr\": 1e-5, \"gradient_checkpointing\": 3}";
    char path[1024];
    snprintf(path, sizeof path, "%s", it_test_write_tmp(t, "c.json", j, strlen(j)));
    IT_CHECK(it_train_config_load(&err, &c, path) != IT_OK);
    IT_CHECK_CONTAINS(err.msg, "c.json: gradient_checkpointing: expected true or false, got '3'");
}
