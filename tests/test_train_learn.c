/* The trainer learns and samples: a LoRA trained by it_train_run on three
 * captioned images lowers the denoising loss on those images (fixed noise
 * and timesteps, the same for both measurements) well below the base
 * model's; sample images are written every N steps and their paths logged. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "image/image.h"
#include "models/sd_pipeline_load.h"
#include "tensor/autograd.h"
#include "test.h"
#include "train/dataset.h"
#include "train/lora_file.h"
#include "train/train_step.h"
#include "train/trainer.h"

static void make_images(it_test_ctx *t, const char *dir)
{
    it_err err;
    char p[1100];
    IT_CHECK_OK(it_mkdir_p(&err, dir), &err);
    for (int i = 0; i < 3; i++) {
        it_image img;
        IT_CHECK_OK(it_image_alloc(&err, &img, 16, 16, 3), &err);
        for (int y = 0; y < 16; y++) /* stripes: a simple, learnable concept */
            for (int x = 0; x < 16; x++)
                for (int c = 0; c < 3; c++) img.data[(y * 16 + x) * 3 + c] = (uint8_t)(((x + i) / 2) % 2 ? 230 : 20);
        snprintf(p, sizeof p, "%s/s%d.png", dir, i);
        IT_CHECK_OK(it_image_save_png(&err, &img, p), &err);
        it_image_free(&img);
        snprintf(p, sizeof p, "%s/s%d.txt", dir, i);
        IT_CHECK_OK(it_file_write_atomic(&err, p, "zxq stripes", 11), &err);
    }
}

/* Mean loss over 8 fixed draws of every image, with LoRA file `lora` at multiplier mult. */
static double eval_loss(it_test_ctx *t, it_sd_model *m, const char *data, const char *lora, float mult)
{
    it_err err;
    it_dataset ds;
    it_lora l;
    it_schedule sc;
    it_schedule_config cfg;
    it_schedule_config_sd(&cfg);
    if (it_dataset_open(&err, &ds, data) || it_lora_load(&err, &l, lora, &m->unet.params, NULL, 1) ||
        it_schedule_init(&err, &sc, &cfg)) {
        it_test_fail(t, __FILE__, __LINE__, "%s", err.msg);
        return NAN;
    }
    l.multiplier = mult;
    it_lora_attach(&l);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    double sum = 0;
    int n = 0;
    float img[3 * 16 * 16], lat[4 * 64], noise[4 * 64];
    int32_t ids[77];
    int ts;
    for (size_t i = 0; i < ds.n; i++) {
        it_ctx_reset(&ctx);
        it_autograd_set_enabled(&ctx, 0);
        IT_CHECK_OK(it_dataset_image(&err, &ds, i, 16, 0, img), &err);
        it_tensor *z = it_vae_sample(&ctx, &m->vae, it_vae_encode(&ctx, &m->vae, it_tensor_from(&ctx, img, IT_SHAPE(1, 3, 16, 16))), 0, 1, 1);
        IT_CHECK_OK(it_clip_encode_padded(&err, m->tokenizer, ids, 77, NULL, ds.items[i].caption, strlen(ds.items[i].caption)), &err);
        it_tensor *idt = it_tensor_new(&ctx, IT_DTYPE_I32, IT_SHAPE(1, 77));
        memcpy(idt->data, ids, sizeof ids);
        it_clip_text_out to;
        IT_CHECK_OK(it_clip_text_forward(&err, &ctx, &m->text, idt, 0, 0, &to), &err);
        memcpy(lat, z->data, sizeof lat);
        float text[77 * 32];
        memcpy(text, to.hidden->data, sizeof text);
        it_autograd_set_enabled(&ctx, 1);
        for (int d = 0; d < 8; d++) {
            it_ctx_reset(&ctx);
            it_train_draw_noise(777, d, (int)i, 1, 4, 8, 8, 0, 0, 1000, noise, &ts);
            it_train_batch b = {.batch = 1, .c = 4, .h = 8, .w = 8, .t_len = 77, .t_dim = 32, .latents = lat,
                                .text = text, .noise = noise, .timesteps = &ts};
            it_train_loss_opts lo = {0, IT_PREDICT_EPSILON, 1.0f};
            double loss;
            IT_CHECK_OK(it_train_step_loss(&err, &ctx, &m->unet, &sc, &b, &lo, &loss), &err);
            sum += loss, n++;
        }
    }
    it_ctx_free(&ctx);
    it_lora_free(&l);
    it_dataset_free(&ds);
    it_schedule_free(&sc);
    return sum / n;
}

IT_TEST(train_learns_and_samples)
{
    it_err err;
    char data[1024], out[1024], lora[1100];
    snprintf(data, sizeof data, "%s/data", t->tmpdir);
    snprintf(out, sizeof out, "%s/out", t->tmpdir);
    make_images(t, data);
    it_train_config c;
    it_train_config_init(&c);
    const char *kv[][2] = {{"model", it_test_fixture(t, "sd/sd1")}, {"data", data}, {"out", out},
                           {"rank", "8"}, {"alpha", "8"}, {"lr", "1e-2"}, {"steps", "30"}, {"batch", "3"},
                           {"resolution", "16"}, {"save_every", "0"}, {"sample_every", "15"},
                           {"sample_prompt", "zxq stripes|a cat"}, {"sample_steps", "3"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) IT_REQUIRE_OK(it_train_config_set(&err, &c, kv[i][0], kv[i][1]), &err);
    c.quiet = 1;
    IT_REQUIRE_OK(it_train_run(&err, &c, NULL), &err);
    snprintf(lora, sizeof lora, "%s/lora.safetensors", out);
    it_sd_model m;
    it_sd_load_opts so;
    it_sd_load_opts_init(&so);
    IT_REQUIRE_OK(it_sd_load(&err, &m, it_test_fixture(t, "sd/sd1"), &so), &err);
    double base = eval_loss(t, &m, data, lora, 0.0f), trained = eval_loss(t, &m, data, lora, 1.0f);
    printf("    fixed-draw loss on the training images: base %.4f, with the LoRA %.4f\n", base, trained);
    IT_CHECK(trained < 0.85 * base);
    it_sd_free(&m);
    /* samples at steps 30 and 60, two prompts each, logged */
    char p[1300];
    int found = 0;
    for (int s = 15; s <= 30; s += 15)
        for (int k = 0; k < 2; k++) {
            snprintf(p, sizeof p, "%s/samples/step-%08d-%d.png", out, s, k);
            found += it_file_exists(p);
        }
    IT_CHECK_INT(found, 4);
    snprintf(p, sizeof p, "%s/train.jsonl", out);
    FILE *f = fopen(p, "r");
    IT_REQUIRE(f);
    char line[4096];
    int with_samples = 0, lines = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        lines++;
        if (json_array_size(json_object_get(j, "samples")) == 2) with_samples++;
        json_decref(j);
    }
    fclose(f);
    IT_CHECK_INT(lines, 30);
    IT_CHECK_INT(with_samples, 2);
}
