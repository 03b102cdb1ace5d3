/* The data side of training (dataset.h, bucket.h, latent_cache.h,
 * train_data.h): kohya's bucket table, batches that never mix buckets and
 * are a pure function of (seed, m), crops without distortion, masks
 * (downsampling, flips, errors), regularisation images (kohya's repeat
 * rule, class prompt, prior loss weight), the content-based dataset hash,
 * and the latent cache (disk hits, stale keys, corrupt files). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "image/image.h"
#include "models/sd_pipeline_load.h"
#include "tensor/autograd.h"
#include "tensor/safetensors.h"
#include "test.h"
#include "train/bucket.h"
#include "train/dataset.h"
#include "train/latent_cache.h"
#include "train/lora_file.h"
#include "train/train_data.h"
#include "train/trainer.h"

/* Writes a w x h image at dir/name: value(x, y, c) per pixel (c < ch). */
static void write_img(it_test_ctx *t, const char *dir, const char *name, int w, int h, int ch,
                      int (*value)(int x, int y, int c, int k), int k)
{
    it_err err;
    char p[1200];
    IT_CHECK_OK(it_mkdir_p(&err, dir), &err);
    it_image img;
    IT_CHECK_OK(it_image_alloc(&err, &img, w, h, ch), &err);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++) img.data[(y * w + x) * ch + c] = (uint8_t)value(x, y, c, k);
    snprintf(p, sizeof p, "%s/%s", dir, name);
    IT_CHECK_OK(it_image_save_png(&err, &img, p), &err);
    it_image_free(&img);
}

static void write_text(it_test_ctx *t, const char *dir, const char *name, const char *text)
{
    it_err err;
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    IT_CHECK_OK(it_file_write_atomic(&err, p, text, strlen(text)), &err);
}

static int v_noise(int x, int y, int c, int k) { return (x * 37 + y * 91 + c * 53 + k * 17) % 256; }
static int v_left_white(int x, int y, int c, int k) { (void)y, (void)c; return x < k ? 255 : 0; }

IT_TEST(train_data_buckets_match_kohya)
{
    /* kohya make_bucket_resolutions((512, 512), 256, 1024, 64), sorted */
    static const int want512[][2] = {{256, 832}, {256, 896}, {256, 960}, {256, 1024}, {320, 704}, {320, 768},
                                     {384, 640}, {448, 576}, {512, 512}, {576, 448}, {640, 384}, {704, 320},
                                     {768, 320}, {832, 256}, {896, 256}, {960, 256}, {1024, 256}};
    it_err err;
    it_bucket b[IT_BUCKET_MAX];
    int n = 0;
    IT_REQUIRE_OK(it_buckets_make(&err, b, &n, 512, 256, 1024, 64), &err);
    IT_REQUIRE(n == 17);
    for (int i = 0; i < n; i++) IT_CHECK(b[i].w == want512[i][0] && b[i].h == want512[i][1]);
    /* make_bucket_resolutions((128, 128), 64, 256, 16): the toy scale */
    IT_REQUIRE_OK(it_buckets_make(&err, b, &n, 128, 64, 256, 16), &err);
    IT_CHECK_INT(n, 17);
    IT_CHECK(b[0].w == 64 && b[0].h == 208 && b[8].w == 128 && b[8].h == 128);
    /* select_bucket + resize: image, bucket, cover size (kohya's rounding) */
    IT_REQUIRE_OK(it_buckets_make(&err, b, &n, 512, 256, 1024, 64), &err);
    static const struct { int w, h, bw, bh, rw, rh; } sel[] = {
        {1000, 1000, 512, 512, 512, 512},  {1920, 1080, 640, 384, 683, 384}, {1080, 1920, 384, 640, 384, 683},
        {3000, 1000, 832, 256, 832, 277},  {100, 900, 256, 1024, 256, 2304}, {600, 800, 448, 576, 448, 597},
    };
    for (size_t i = 0; i < sizeof sel / sizeof sel[0]; i++) {
        int k = it_bucket_select(b, n, sel[i].w, sel[i].h), rw, rh;
        it_bucket_cover(sel[i].w, sel[i].h, b[k], &rw, &rh);
        IT_CHECK(b[k].w == sel[i].bw && b[k].h == sel[i].bh);
        IT_CHECK(rw == sel[i].rw && rh == sel[i].rh);
    }
    IT_CHECK(it_buckets_make(&err, b, &n, 512, 1024, 256, 64) != IT_OK);
    IT_CHECK_CONTAINS(err.msg, "max side 256 is below min side 1024");
}

/* 3 wide (48x24), 2 tall (24x48), 2 square images; one wide has 3 repeats. */
static void make_mixed(it_test_ctx *t, char *dir, size_t n)
{
    snprintf(dir, n, "%s/mixed", t->tmpdir);
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/3_wide", dir);
    write_img(t, sub, "w0.png", 48, 24, 3, v_noise, 0);
    snprintf(sub, sizeof sub, "%s", dir);
    write_img(t, sub, "w1.png", 48, 24, 3, v_noise, 1);
    write_img(t, sub, "w2.png", 50, 24, 3, v_noise, 2);
    write_img(t, sub, "t0.png", 24, 48, 3, v_noise, 3);
    write_img(t, sub, "t1.png", 24, 47, 3, v_noise, 4);
    write_img(t, sub, "s0.png", 30, 30, 3, v_noise, 5);
    write_img(t, sub, "s1.png", 32, 32, 3, v_noise, 6);
    write_text(t, sub, "s1.txt", "zxq, square");
}

IT_TEST(train_data_bucket_batches_are_pure_and_unmixed)
{
    char dir[1024];
    make_mixed(t, dir, sizeof dir);
    it_err err;
    it_ds_opts o;
    it_ds_opts_init(&o);
    o.dir = dir, o.resolution = 32, o.buckets = 1, o.step = 8, o.batch = 2;
    it_dataset a, b;
    IT_REQUIRE_OK(it_dataset_open_opts(&err, &a, &o), &err);
    IT_REQUIRE_OK(it_dataset_open_opts(&err, &b, &o), &err);
    IT_CHECK_INT(a.n, 7);
    IT_CHECK_INT(a.n_slots, 9);
    /* 48x24 -> 40x24 (ratio 1.67 vs 2: closest of the 32^2-area buckets) */
    it_bucket wide = a.buckets[a.items[0].bucket], tall = a.buckets[a.items[3].bucket];
    IT_CHECK(wide.w > wide.h && tall.h > tall.w && wide.w * wide.h <= 32 * 32);
    IT_CHECK_STR(a.items[0].caption, "wide"); /* kohya: N_name folder, no .txt */
    /* epochs 0..3: each batch one bucket; each epoch every slot once */
    int32_t items[2], again[2];
    for (uint64_t e = 0; e < 4; e++) {
        int seen[7] = {0};
        for (uint64_t k = 0; k < a.n_batches; k++) {
            uint64_t m = e * a.n_batches + k;
            int n = it_dataset_batch(&a, 42, m, items);
            IT_REQUIRE(n >= 1 && n <= 2);
            if (n == 2) IT_CHECK_INT(a.items[items[0]].bucket, a.items[items[1]].bucket);
            for (int i = 0; i < n; i++) seen[items[i]]++;
            /* the same batch from another object, asked out of order: pure in (seed, m) */
            int n2 = it_dataset_batch(&b, 42, (m * 7 + 3) % (4 * a.n_batches), again);
            (void)n2;
            IT_CHECK_INT(it_dataset_batch(&b, 42, m, again), n);
            IT_CHECK(!memcmp(items, again, (size_t)n * sizeof items[0]));
        }
        for (int i = 0; i < 7; i++) IT_CHECK_INT(seen[i], a.items[i].repeats);
    }
    /* another seed, another order */
    int differ = 0;
    for (uint64_t m = 0; m < a.n_batches; m++) {
        int n = it_dataset_batch(&a, 1, m, items), n2 = it_dataset_batch(&b, 2, m, again);
        differ += n != n2 || memcmp(items, again, (size_t)n * sizeof items[0]);
    }
    IT_CHECK(differ > 0);
    /* crops: cover without distortion, inside the resized image */
    for (size_t i = 0; i < a.n; i++)
        for (uint64_t g = 0; g < 8; g++) {
            it_ds_crop cr;
            it_dataset_crop(&a, i, 42, g, 1, &cr);
            double ar = (double)a.items[i].w / a.items[i].h, ar_r = (double)cr.rw / cr.rh;
            IT_CHECK(fabs(ar_r / ar - 1) < 0.05);
            IT_CHECK(cr.rw >= cr.bw && cr.rh >= cr.bh && (cr.rw == cr.bw || cr.rh == cr.bh));
            IT_CHECK(cr.x >= 0 && cr.y >= 0 && cr.x + cr.bw <= cr.rw && cr.y + cr.bh <= cr.rh);
        }
    it_dataset_free(&a);
    it_dataset_free(&b);
    /* without buckets: one square bucket, and full batches except the last */
    o.buckets = 0;
    IT_REQUIRE_OK(it_dataset_open_opts(&err, &a, &o), &err);
    IT_CHECK(a.n_buckets == 1 && a.buckets[0].w == 32 && a.n_batches == 5);
    it_dataset_free(&a);
}

IT_TEST(train_data_masks_follow_the_image)
{
    char dir[1024], p[1200];
    snprintf(dir, sizeof dir, "%s/masked", t->tmpdir);
    /* image: left 8 columns white; mask: left 8 columns 255 (same layout) */
    write_img(t, dir, "a.png", 32, 16, 3, v_left_white, 8);
    write_img(t, dir, "a.mask.png", 32, 16, 1, v_left_white, 8);
    write_img(t, dir, "b.png", 16, 16, 3, v_noise, 1); /* no mask: all ones */
    it_err err;
    it_ds_opts o;
    it_ds_opts_init(&o);
    o.dir = dir, o.resolution = 16, o.buckets = 1, o.step = 4, o.batch = 1, o.masked_loss = 1;
    it_dataset ds;
    IT_REQUIRE_OK(it_dataset_open_opts(&err, &ds, &o), &err);
    IT_REQUIRE(ds.n == 2); /* a.mask.png is not an image */
    IT_CHECK(ds.items[0].mask_path && !ds.items[1].mask_path && ds.has_masks);
    it_ds_crop cr;
    float mask[64], img[3 * 32 * 16];
    for (int flip = 0; flip < 2; flip++) {
        it_dataset_crop(&ds, 0, 0, 0, 0, &cr);
        cr.flip = flip;
        IT_REQUIRE(cr.bw * cr.bh <= 16 * 16 && cr.bw > cr.bh);
        IT_REQUIRE_OK(it_dataset_mask(&err, &ds, 0, &cr, 2, mask), &err);
        IT_REQUIRE_OK(it_dataset_image_crop(&err, &ds, 0, &cr, img), &err);
        int lw = cr.bw / 2, lh = cr.bh / 2, agree = 0;
        /* mask is high exactly where the (cropped, flipped) image is white */
        for (int y = 0; y < lh; y++)
            for (int x = 0; x < lw; x++) {
                float pix = img[(2 * y) * cr.bw + 2 * x + (flip ? 1 : 0)];
                agree += (mask[y * lw + x] > 0.5f) == (pix > 0.0f);
            }
        IT_CHECK(agree >= lw * lh - lh); /* the edge column may be mixed */
        IT_CHECK(flip ? mask[lw - 1] > 0.9f && mask[0] < 0.1f : mask[0] > 0.9f && mask[lw - 1] < 0.1f);
    }
    it_dataset_crop(&ds, 1, 0, 0, 0, &cr);
    IT_REQUIRE_OK(it_dataset_mask(&err, &ds, 1, &cr, 2, mask), &err);
    IT_CHECK(mask[0] == 1.0f && mask[cr.bw * cr.bh / 4 - 1] == 1.0f);
    it_dataset_free(&ds);
    /* a mask of the wrong size, an unreadable mask: errors naming the file */
    write_img(t, dir, "b.mask.png", 15, 16, 1, v_noise, 0);
    IT_CHECK(it_dataset_open_opts(&err, &ds, &o) != IT_OK);
    IT_CHECK_CONTAINS(err.msg, "b.mask.png: mask is 15x16 but its image");
    write_text(t, dir, "b.mask.png", "not a png at all");
    IT_CHECK(it_dataset_open_opts(&err, &ds, &o) != IT_OK);
    IT_CHECK_CONTAINS(err.msg, "b.mask.png: not a readable image");
    /* masks elsewhere: --mask-dir DIR/NAME.png */
    snprintf(p, sizeof p, "%s/b.mask.png", dir);
    remove(p);
    char mdir[1100];
    snprintf(mdir, sizeof mdir, "%s/masks", t->tmpdir);
    write_img(t, mdir, "b.png", 16, 16, 1, v_left_white, 4);
    o.mask_dir = mdir;
    IT_REQUIRE_OK(it_dataset_open_opts(&err, &ds, &o), &err);
    IT_CHECK(!ds.items[0].mask_path && ds.items[1].mask_path);
    it_dataset_free(&ds);
    /* without masked_loss, masks are ignored (toy part masks are not loss masks) */
    o.masked_loss = 0, o.mask_dir = NULL;
    IT_REQUIRE_OK(it_dataset_open_opts(&err, &ds, &o), &err);
    IT_CHECK(!ds.has_masks && ds.n == 2);
    it_dataset_free(&ds);
}

IT_TEST(train_data_reg_images_and_hash)
{
    char dir[1024], reg[1024], sub[1100], copy[1024];
    snprintf(dir, sizeof dir, "%s/train", t->tmpdir);
    snprintf(reg, sizeof reg, "%s/reg", t->tmpdir);
    snprintf(sub, sizeof sub, "%s/3_zxq dog", dir);
    write_img(t, sub, "a.png", 16, 16, 3, v_noise, 1);
    write_img(t, sub, "b.png", 16, 16, 3, v_noise, 2);
    snprintf(sub, sizeof sub, "%s/1_dog", reg);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "r%d.png", i);
        write_img(t, sub, name, 16, 16, 3, v_noise, 10 + i);
    }
    write_img(t, reg, "loose.png", 16, 16, 3, v_noise, 20);
    it_err err;
    it_ds_opts o;
    it_ds_opts_init(&o);
    o.dir = dir, o.reg_dir = reg, o.class_prompt = "a dog", o.resolution = 16, o.step = 4, o.batch = 4;
    it_dataset ds;
    IT_REQUIRE_OK(it_dataset_open_opts(&err, &ds, &o), &err);
    IT_CHECK(ds.n_train == 2 && ds.n_reg == 4 && ds.n_slots == 12);
    /* kohya: 6 training samples, so the 4 reg images (1_dog/r0..r2, then
     * loose.png) get their 1 repeat each, then r0 and r1 one more */
    IT_CHECK_STR(ds.items[5].path + strlen(ds.items[5].path) - 9, "loose.png");
    IT_CHECK_STR(ds.items[5].caption, "a dog");
    IT_CHECK_STR(ds.items[2].caption, "dog");
    IT_CHECK_STR(ds.items[0].caption, "zxq dog");
    int reps[4] = {ds.items[2].repeats, ds.items[3].repeats, ds.items[4].repeats, ds.items[5].repeats};
    IT_CHECK(reps[0] == 2 && reps[1] == 2 && reps[2] == 1 && reps[3] == 1);
    uint64_t h = ds.hash;
    it_dataset_free(&ds);
    /* ss_dataset_hash: content, not paths: a copy elsewhere hashes the same */
    snprintf(copy, sizeof copy, "%s/elsewhere", t->tmpdir);
    snprintf(sub, sizeof sub, "%s/3_zxq dog", copy);
    write_img(t, sub, "a.png", 16, 16, 3, v_noise, 1);
    write_img(t, sub, "b.png", 16, 16, 3, v_noise, 2);
    it_ds_opts o2 = o;
    o2.dir = copy, o2.reg_dir = NULL;
    IT_REQUIRE_OK(it_dataset_open_opts(&err, &ds, &o2), &err);
    uint64_t h_copy = ds.hash;
    it_dataset_free(&ds);
    o2.dir = dir;
    IT_REQUIRE_OK(it_dataset_open_opts(&err, &ds, &o2), &err);
    IT_CHECK(ds.hash == h_copy && ds.hash != h);
    it_dataset_free(&ds);
    write_img(t, sub, "b.png", 16, 16, 3, v_noise, 3); /* one image changes */
    o2.dir = copy;
    IT_REQUIRE_OK(it_dataset_open_opts(&err, &ds, &o2), &err);
    IT_CHECK(ds.hash != h_copy);
    it_dataset_free(&ds);
    snprintf(sub, sizeof sub, "%s/empty", t->tmpdir);
    IT_CHECK_OK(it_mkdir_p(&err, sub), &err);
    o.reg_dir = sub;
    IT_CHECK(it_dataset_open_opts(&err, &ds, &o) != IT_OK);
    IT_CHECK_CONTAINS(err.msg, "no regularisation images");
}

IT_TEST(train_data_latent_cache_files)
{
    it_err err;
    it_latent_cache lc;
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/cache", t->tmpdir);
    IT_REQUIRE_OK(it_latent_cache_open(&err, &lc, dir), &err);
    it_latent_key k = {123, 456, 16, 16, 17, 16, 0, 0, 1, 4, 8, 8};
    float v[256], out[256];
    for (int i = 0; i < 256; i++) v[i] = (float)i * 0.25f - 3.0f;
    IT_CHECK(!it_latent_cache_get(&lc, &k, out, 256));
    IT_REQUIRE_OK(it_latent_cache_put(&err, &lc, &k, v, 256), &err);
    IT_CHECK(it_latent_cache_get(&lc, &k, out, 256) && lc.hits_mem == 1);
    it_latent_cache_free(&lc);
    /* a fresh cache reads the file */
    IT_REQUIRE_OK(it_latent_cache_open(&err, &lc, dir), &err);
    memset(out, 0, sizeof out);
    IT_CHECK(it_latent_cache_get(&lc, &k, out, 256) && lc.hits_disk == 1 && !memcmp(out, v, sizeof v));
    it_latent_cache_free(&lc);
    /* another VAE, crop or image: another key, never this file */
    it_latent_key k2 = k;
    k2.vae = 457;
    IT_REQUIRE_OK(it_latent_cache_open(&err, &lc, dir), &err);
    IT_CHECK(!it_latent_cache_get(&lc, &k2, out, 256) && lc.corrupt == 0);
    k2 = k, k2.x = 1;
    IT_CHECK(!it_latent_cache_get(&lc, &k2, out, 256));
    it_latent_cache_free(&lc);
    /* corrupt files: a flipped payload byte, a truncation, a foreign key in
     * the right name: each a miss with a warning, then rewritten */
    snprintf(lc.dir, sizeof lc.dir, "%s", dir);
    it_latent_cache_path(&lc, &k, path, sizeof path);
    uint8_t *bytes = NULL;
    size_t nb = 0;
    IT_REQUIRE_OK(it_file_read(&err, &bytes, &nb, path, 1 << 20), &err);
    for (int c = 0; c < 3; c++) {
        uint8_t *copy = it_malloc(nb);
        memcpy(copy, bytes, nb);
        size_t n = nb;
        if (c == 0) copy[nb - 5] ^= 0x40;
        if (c == 1) n = nb - 100;
        if (c == 2) copy[9] ^= 1; /* inside the stored key */
        IT_REQUIRE_OK(it_file_write_atomic(&err, path, copy, n), &err);
        it_free(copy);
        IT_REQUIRE_OK(it_latent_cache_open(&err, &lc, dir), &err);
        IT_CHECK(!it_latent_cache_get(&lc, &k, out, 256));
        IT_CHECK(lc.corrupt == 1 && lc.misses == 1);
        IT_REQUIRE_OK(it_latent_cache_put(&err, &lc, &k, v, 256), &err);
        it_latent_cache_free(&lc);
        IT_REQUIRE_OK(it_latent_cache_open(&err, &lc, dir), &err);
        IT_CHECK(it_latent_cache_get(&lc, &k, out, 256) && lc.hits_disk == 1 && !memcmp(out, v, sizeof v));
        it_latent_cache_free(&lc);
    }
    it_free(bytes);
}

/* One pass over the batches of a bucketed, masked, reg dataset on the tiny
 * model's VAE computes every latent; the second pass
 * (fresh objects, same cache folder) reads every latent from disk with the
 * same bits, a changed VAE recomputes everything, and loss weights carry the
 * mask and the prior weight. */
IT_TEST(train_data_batches_through_the_cache)
{
    char dir[1024], reg[1024], cache[1024];
    make_mixed(t, dir, sizeof dir);
    write_img(t, dir, "s0.mask.png", 30, 30, 1, v_left_white, 15);
    snprintf(reg, sizeof reg, "%s/reg/1_thing", t->tmpdir);
    write_img(t, reg, "r.png", 20, 20, 3, v_noise, 30);
    snprintf(reg, sizeof reg, "%s/reg", t->tmpdir);
    snprintf(cache, sizeof cache, "%s/lcache", t->tmpdir);
    it_err err;
    it_sd_model m;
    it_sd_load_opts so;
    it_sd_load_opts_init(&so);
    so.components = IT_SD_VAE;
    IT_REQUIRE_OK(it_sd_load(&err, &m, it_test_fixture(t, "sd/sd1"), &so), &err);
    it_train_data_opts o;
    it_train_data_opts_init(&o);
    o.ds.dir = dir, o.ds.reg_dir = reg, o.ds.masked_loss = 1, o.ds.resolution = 16, o.ds.buckets = 1;
    o.ds.step = 4, o.ds.batch = 2, o.seed = 3, o.flip = 1, o.prior_loss_weight = 0.5f, o.cache_dir = cache;
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    size_t per = 2 * 4 * 8 * 8;
    float *lat[2] = {it_malloc(40 * per * sizeof(float)), it_malloc(40 * per * sizeof(float))};
    IT_REQUIRE(lat[0] && lat[1]);
    int n_masked = 0, n_reg_half = 0, n_batches = 0;
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 2) m.vae.params.data[0] += 0.01f; /* another VAE */
        it_train_data td;
        IT_REQUIRE_OK(it_train_data_open(&err, &td, &o, &m.vae), &err);
        size_t off = 0;
        n_batches = (int)td.ds.n_batches;
        for (uint64_t b = 0; b < td.ds.n_batches; b++) {
            it_data_batch db;
            IT_REQUIRE_OK(it_train_data_batch(&err, &td, &ctx, b, lat[pass & 1] + off, &db), &err);
            size_t hw = (size_t)(db.lh * db.lw);
            for (int i = 0; pass == 0 && db.mask && i < db.n; i++) {
                const it_ds_item *it = &td.ds.items[td.items[i]];
                const float *w = db.mask + i * hw;
                if (it->reg) n_reg_half += w[0] == 0.5f && w[hw - 1] == 0.5f;
                if (it->mask_path) n_masked += (w[0] > 0.9f) != (w[db.lw - 1] > 0.9f);
            }
            off += (size_t)db.n * 4 * hw;
            it_ctx_reset(&ctx);
        }
        size_t hits = td.cache.hits_disk, misses = td.cache.misses;
        it_train_data_free(&td);
        if (pass == 0) IT_CHECK(misses > 0 && hits == 0);
        if (pass == 1) {
            IT_CHECK(misses == 0 && hits > 0);
            IT_CHECK(!memcmp(lat[0], lat[1], off * sizeof(float)));
        }
        if (pass == 2) IT_CHECK(hits == 0 && misses > 0);
    }
    IT_CHECK(n_batches >= 4);
    IT_CHECK(n_masked >= 1);    /* s0's half mask, left or right after flips */
    IT_CHECK(n_reg_half >= 1);  /* every reg sample weighs 0.5 */
    it_free(lat[0]);
    it_free(lat[1]);
    it_ctx_free(&ctx);
    it_sd_free(&m);
}

static void set_all(it_test_ctx *t, it_train_config *c, const char *const (*kv)[2], size_t n)
{
    it_err err;
    for (size_t i = 0; i < n; i++) IT_CHECK_OK(it_train_config_set(&err, c, kv[i][0], kv[i][1]), &err);
    c->quiet = 1;
}

static int same_file(it_test_ctx *t, const char *a, const char *b)
{
    it_err err;
    uint8_t *fa = NULL, *fb = NULL;
    size_t na = 0, nb = 0;
    IT_CHECK_OK(it_file_read(&err, &fa, &na, a, 1 << 26), &err);
    IT_CHECK_OK(it_file_read(&err, &fb, &nb, b, 1 << 26), &err);
    int same = fa && fb && na == nb && !memcmp(fa, fb, na);
    it_free(fa);
    it_free(fb);
    return same;
}

/* it_train_run with buckets, random crops, flips, a mask and reg images:
 * stopped after 3 steps and resumed, it ends with the same file, byte for
 * byte, as an uninterrupted run (batch shapes vary with the bucket); a run
 * whose every mask is black has loss 0 and leaves the LoRA's up weights at
 * zero (the mask reaches the loss). */
IT_TEST(train_data_bucketed_run_resumes_and_masks_reach_the_loss)
{
    char dir[1024], reg[1024], out_a[1024], out_b[1024], pa[1100], pb[1100];
    make_mixed(t, dir, sizeof dir);
    write_img(t, dir, "s0.mask.png", 30, 30, 1, v_left_white, 15);
    snprintf(reg, sizeof reg, "%s/reg/1_thing", t->tmpdir);
    write_img(t, reg, "r.png", 20, 20, 3, v_noise, 30);
    snprintf(reg, sizeof reg, "%s/reg", t->tmpdir);
    snprintf(out_a, sizeof out_a, "%s/run_a", t->tmpdir);
    snprintf(out_b, sizeof out_b, "%s/run_b", t->tmpdir);
    const char *const kv[][2] = {{"model", it_test_fixture(t, "sd/sd1")}, {"data", dir}, {"reg_data", reg},
                                 {"prior_loss_weight", "0.5"}, {"masked_loss", "true"}, {"buckets", "true"},
                                 {"random_crop", "true"}, {"flip", "true"}, {"rank", "4"}, {"lr", "1e-3"},
                                 {"steps", "6"}, {"batch", "2"}, {"resolution", "16"}, {"save_every", "1"},
                                 {"seed", "11"}};
    it_err err;
    it_train_config c;
    it_train_config_init(&c);
    set_all(t, &c, kv, sizeof kv / sizeof kv[0]);
    snprintf(c.out, sizeof c.out, "%s", out_a);
    double loss_a = 0, loss_b = 0;
    IT_REQUIRE_OK(it_train_run(&err, &c, &loss_a), &err);
    snprintf(c.out, sizeof c.out, "%s", out_b);
    c.stop_after = 3;
    IT_REQUIRE_OK(it_train_run(&err, &c, NULL), &err);
    c.stop_after = 0, c.resume = 1;
    IT_REQUIRE_OK(it_train_run(&err, &c, &loss_b), &err);
    snprintf(pa, sizeof pa, "%s/lora.safetensors", out_a);
    snprintf(pb, sizeof pb, "%s/lora.safetensors", out_b);
    IT_CHECK(same_file(t, pa, pb));
    IT_CHECK(loss_a == loss_b && loss_a > 0);
    /* kohya's data metadata */
    it_safetensors *f = NULL;
    IT_REQUIRE_OK(it_safetensors_open(&err, &f, pa), &err);
    static const char *const meta[][2] = {{"ss_enable_bucket", "True"}, {"ss_num_reg_images", "1"},
                                          {"ss_prior_loss_weight", "0.5"}, {"ss_num_train_images", "9"},
                                          {"ss_min_bucket_reso", "8"}, {"ss_max_bucket_reso", "32"}};
    for (size_t i = 0; i < sizeof meta / sizeof meta[0]; i++) {
        const char *v = it_safetensors_metadata_get(f, meta[i][0]);
        IT_CHECK(v && !strcmp(v, meta[i][1]));
    }
    const char *info = it_safetensors_metadata_get(f, "ss_bucket_info");
    IT_CHECK(info && strstr(info, "\"resolution\":[16,16]"));
    it_safetensors_close(f);
    /* resuming with other bucket settings is refused */
    c.buckets = 0;
    IT_CHECK(it_train_run(&err, &c, NULL) != IT_OK);
    IT_CHECK_CONTAINS(err.msg, "checkpoint was made on other data or bucket settings");
    /* black masks everywhere: nothing to learn */
    char black[1024];
    snprintf(black, sizeof black, "%s/black", t->tmpdir);
    write_img(t, black, "a.png", 24, 16, 3, v_noise, 1);
    write_img(t, black, "a.mask.png", 24, 16, 1, v_left_white, 0);
    write_img(t, black, "b.png", 16, 20, 3, v_noise, 2);
    write_img(t, black, "b.mask.png", 16, 20, 1, v_left_white, 0);
    it_train_config_init(&c);
    set_all(t, &c, kv, sizeof kv / sizeof kv[0]);
    snprintf(c.data, sizeof c.data, "%s", black);
    snprintf(c.out, sizeof c.out, "%s/run_black", t->tmpdir);
    c.reg_data[0] = 0, c.steps = 3;
    double loss = 1;
    IT_REQUIRE_OK(it_train_run(&err, &c, &loss), &err);
    IT_CHECK(loss == 0);
    snprintf(pa, sizeof pa, "%s/lora.safetensors", c.out);
    it_lora l;
    IT_REQUIRE_OK(it_lora_load(&err, &l, pa, NULL, NULL, 0), &err);
    int nonzero = 0;
    for (size_t i = 0; i < l.n; i++)
        for (int64_t j = 0; j < l.mods[i].up.n; j++) nonzero += it_f32(&l.mods[i].up)[j] != 0.0f;
    IT_CHECK_INT(nonzero, 0);
    it_lora_free(&l);
}

/* Out of memory at every allocation of opening a dataset (buckets, reg,
 * masks) and of the latent cache: IT_ERR_NOMEM, nothing leaked. */
IT_TEST(train_data_out_of_memory)
{
    char dir[1024], reg[1024];
    make_mixed(t, dir, sizeof dir);
    write_img(t, dir, "s0.mask.png", 30, 30, 1, v_left_white, 15);
    snprintf(reg, sizeof reg, "%s/reg/1_thing", t->tmpdir);
    write_img(t, reg, "r.png", 20, 20, 3, v_noise, 30);
    snprintf(reg, sizeof reg, "%s/reg", t->tmpdir);
    it_ds_opts o;
    it_ds_opts_init(&o);
    o.dir = dir, o.reg_dir = reg, o.masked_loss = 1, o.resolution = 32, o.buckets = 1, o.step = 8, o.batch = 2;
    it_err err;
    int failures = 0, opened = 0;
    for (long k = 0; k < 5000 && !opened; k++) {
        size_t live = it_mem_live_blocks();
        it_dataset ds;
        it_mem_fail_after(k, 0);
        it_status s = it_dataset_open_opts(&err, &ds, &o);
        it_mem_fail_after(-1, 0);
        if (s == IT_OK) {
            opened = 1;
            it_dataset_free(&ds);
        } else {
            failures++;
            IT_CHECK_INT(s, IT_ERR_NOMEM);
        }
        IT_CHECK_INT(it_mem_live_blocks(), live);
    }
    IT_CHECK(opened && failures > 10);
    char cdir[1100];
    snprintf(cdir, sizeof cdir, "%s/oom_cache", t->tmpdir);
    it_latent_key key = {1, 2, 8, 8, 8, 8, 0, 0, 0, 4, 4, 4};
    float v[64] = {1};
    opened = 0;
    for (long k = 0; k < 1000 && !opened; k++) {
        size_t live = it_mem_live_blocks();
        it_latent_cache lc;
        it_mem_fail_after(k, 0);
        it_status s = it_latent_cache_open(&err, &lc, cdir);
        if (!s) s = it_latent_cache_put(&err, &lc, &key, v, 64);
        it_mem_fail_after(-1, 0);
        IT_CHECK(s == IT_OK || s == IT_ERR_NOMEM || s == IT_ERR_IO);
        opened = s == IT_OK;
        it_latent_cache_free(&lc);
        IT_CHECK_INT(it_mem_live_blocks(), live);
    }
    IT_CHECK(opened);
}
