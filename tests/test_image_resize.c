/* test_image_resize.c: resize parity with Pillow's Image.resize on the
 * fixtures of tools/gen_image_fixtures.py, plus edge cases. */
#include <stdlib.h>

#include "base/mem.h"
#include "image/resize.h"
#include "test_image_util.h"

/* Must list the same sizes as SIZES in tools/gen_image_fixtures.py. */
static const struct { const char *src; int n; int wh[5][2]; } SIZES[] = {
    {"src_64x48", 5, {{32, 24}, {23, 37}, {100, 75}, {7, 5}, {64, 20}}},
    {"src_97x61", 4, {{40, 30}, {150, 90}, {61, 97}, {13, 61}}},
    {"src_33x17_rgba", 2, {{16, 9}, {50, 40}}},
    {"src_40x30_l", 2, {{17, 11}, {90, 31}}},
};

IT_TEST(image_resize_pillow_parity) {
    it_err e;
    size_t total = 0, equal = 0;
    int worst = 0;
    for (int f = IT_RESAMPLE_NEAREST; f <= IT_RESAMPLE_LANCZOS; f++) {
        size_t f_total = 0, f_equal = 0;
        int f_worst = 0;
        for (size_t i = 0; i < sizeof SIZES / sizeof SIZES[0]; i++) {
            char path[128];
            snprintf(path, sizeof path, "image/%s.png", SIZES[i].src);
            it_image src;
            IT_REQUIRE_OK(it_image_load(&e, &src, it_test_fixture(t, path)), &e);
            for (int k = 0; k < SIZES[i].n; k++) {
                int w = SIZES[i].wh[k][0], h = SIZES[i].wh[k][1];
                snprintf(path, sizeof path, "image/rs_%s_%s_%dx%d.png", SIZES[i].src,
                         it_resample_name(f), w, h);
                it_image want, got;
                IT_REQUIRE_OK(it_image_load(&e, &want, it_test_fixture(t, path)), &e);
                IT_REQUIRE_OK(it_image_resize(&e, &got, &src, w, h, f), &e);
                size_t eq = 0;
                int d = itest_image_diff(&got, &want, &eq);
                if (d < 0 || d > 1)
                    it_test_fail(t, __FILE__, __LINE__, "%s: max diff %d (> 1/255)", path, d);
                f_worst = d > f_worst ? d : f_worst;
                f_total += (size_t)w * h * src.c;
                f_equal += eq;
                it_image_free(&want);
                it_image_free(&got);
            }
            it_image_free(&src);
        }
        printf("    %-9s max diff %d, %zu/%zu samples exactly equal\n", it_resample_name(f), f_worst,
               f_equal, f_total);
        total += f_total, equal += f_equal;
        worst = f_worst > worst ? f_worst : worst;
    }
    printf("    all       max diff %d, %.4f%% exactly equal\n", worst, 100.0 * equal / total);
}

/* Pillow's resize(size, filter, box): same boxes as gen_image_fixtures.py. */
IT_TEST(image_resize_box_parity) {
    static const struct { int w, h; float box[4]; } cases[] = {
        {40, 30, {10.5f, 5.25f, 80.75f, 55.5f}},
        {30, 61, {3, 0, 33, 61}},   /* vertical size and range unchanged */
        {50, 20, {0, 7.5f, 97, 41}},
    };
    it_err e;
    it_image src;
    IT_REQUIRE_OK(it_image_load(&e, &src, it_test_fixture(t, "image/src_97x61.png")), &e);
    for (int f = IT_RESAMPLE_BILINEAR; f <= IT_RESAMPLE_LANCZOS; f++) {
        for (int i = 0; i < 3; i++) {
            char path[96];
            snprintf(path, sizeof path, "image/rsbox%d_%s.png", i, it_resample_name(f));
            it_image want, got;
            IT_REQUIRE_OK(it_image_load(&e, &want, it_test_fixture(t, path)), &e);
            IT_REQUIRE_OK(it_image_resize_box(&e, &got, &src, cases[i].w, cases[i].h, f,
                                              cases[i].box), &e);
            int d = itest_image_diff(&got, &want, NULL);
            if (d != 0) it_test_fail(t, __FILE__, __LINE__, "%s: max diff %d", path, d);
            it_image_free(&want);
            it_image_free(&got);
        }
    }
    it_image_free(&src);
}

IT_TEST(image_resize_edges) {
    it_err e;
    it_image img, out;
    IT_REQUIRE_OK(it_image_alloc(&e, &img, 5, 3, 3), &e);
    for (int i = 0; i < 45; i++) img.data[i] = (uint8_t)(i * 5);
    /* Same size: an exact copy for every filter. */
    for (int f = 0; f <= IT_RESAMPLE_LANCZOS; f++) {
        IT_REQUIRE_OK(it_image_resize(&e, &out, &img, 5, 3, f), &e);
        IT_CHECK(memcmp(out.data, img.data, 45) == 0);
        it_image_free(&out);
    }
    /* To 1x1 and a constant image stays constant (weights sum to one). */
    IT_REQUIRE_OK(it_image_resize(&e, &out, &img, 1, 1, IT_RESAMPLE_LANCZOS), &e);
    it_image_free(&out);
    memset(img.data, 77, 45);
    for (int f = 0; f <= IT_RESAMPLE_LANCZOS; f++) {
        IT_REQUIRE_OK(it_image_resize(&e, &out, &img, 13, 2, f), &e);
        for (int i = 0; i < 13 * 2 * 3; i++) IT_CHECK_INT(out.data[i], 77);
        it_image_free(&out);
    }
    IT_CHECK_INT(it_image_resize(&e, &out, &img, 0, 4, IT_RESAMPLE_BICUBIC), IT_ERR_RANGE);
    IT_CHECK_INT(it_image_resize(&e, &out, &img, 4, 4, (it_resample)9), IT_ERR_ARG);
    float bad_box[4] = {1, 1, 9, 2};
    IT_CHECK_INT(it_image_resize_box(&e, &out, &img, 4, 4, IT_RESAMPLE_BILINEAR, bad_box), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "outside the 5x3 image");
    IT_CHECK(out.data == NULL);
    IT_CHECK_INT(it_resample_parse("bicubic"), IT_RESAMPLE_BICUBIC);
    IT_CHECK_INT(it_resample_parse("cubic"), -1);
    /* Out of memory at each allocation: a clean NOMEM, nothing leaked. */
    for (long k = 0; k < 8; k++) {
        it_mem_fail_after(k, 1);
        it_status s = it_image_resize(&e, &out, &img, 3, 7, IT_RESAMPLE_BICUBIC);
        it_mem_fail_after(-1, 0);
        if (s == IT_OK) {
            it_image_free(&out);
            break;
        }
        IT_CHECK_INT(s, IT_ERR_NOMEM);
    }
    it_image_free(&img);
}

/* The float path against Pillow's mode "F" resize of the grey source. */
IT_TEST(image_resize_float_vs_pillow) {
    it_err e;
    it_image src;
    IT_REQUIRE_OK(it_image_load(&e, &src, it_test_fixture(t, "image/src_40x30_l.png")), &e);
    IT_REQUIRE(src.c == 1);
    float *in = it_malloc(sizeof(float) * 40 * 30);
    IT_REQUIRE(in);
    for (int i = 0; i < 40 * 30; i++) in[i] = src.data[i];
    static const int sizes[2][2] = {{17, 11}, {90, 31}};
    double worst = 0;
    for (int f = IT_RESAMPLE_BILINEAR; f <= IT_RESAMPLE_LANCZOS; f++) {
        for (int k = 0; k < 2; k++) {
            int w = sizes[k][0], h = sizes[k][1];
            char name[64];
            snprintf(name, sizeof name, "image/rsf_%s_%dx%d.f32", it_resample_name(f), w, h);
            uint8_t *buf = NULL;
            size_t n = 0;
            IT_REQUIRE_OK(it_file_read(&e, &buf, &n, it_test_fixture(t, name), 1 << 20), &e);
            const char *nl = memchr(buf, '\n', n);
            IT_REQUIRE(nl && n - (size_t)(nl + 1 - (char *)buf) == sizeof(float) * w * h);
            float *want = it_malloc(sizeof(float) * w * h), *got = it_malloc(sizeof(float) * w * h);
            IT_REQUIRE(want && got);
            memcpy(want, nl + 1, sizeof(float) * w * h);
            IT_REQUIRE_OK(it_resize_f32(&e, got, w, h, in, 40, 30, 1, f), &e);
            double d = it_test_max_abs_diff(got, want, (size_t)w * h);
            if (d > 1e-3) it_test_fail(t, __FILE__, __LINE__, "%s: max diff %g", name, d);
            worst = d > worst ? d : worst;
            it_free(want);
            it_free(got);
            it_free(buf);
        }
    }
    printf("    float resize vs Pillow mode F: max abs diff %.3g\n", worst);
    IT_CHECK_INT(it_resize_f32(&e, in, 4, 4, in, 40, 30, 1, IT_RESAMPLE_NEAREST), IT_ERR_UNSUPPORTED);
    it_free(in);
    it_image_free(&src);
}
