/* test_image.c: it_image lifetime, limits, PNG/JPEG encoding round trips. */
#include <png.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "image/image.h"
#include "test.h"

IT_TEST(image_alloc_limits) {
    it_err e;
    it_image img;
    IT_REQUIRE_OK(it_image_alloc(&e, &img, 97, 61, 3), &e);
    IT_CHECK_INT(img.w, 97);
    IT_CHECK_INT(img.h, 61);
    IT_CHECK_INT(img.c, 3);
    IT_CHECK(img.data != NULL);
    it_image_free(&img);
    IT_CHECK(img.data == NULL);
    it_image_free(&img); /* double free of a zeroed image is harmless */

    static const struct { int w, h, c; it_status want; const char *msg; } cases[] = {
        {0, 10, 3, IT_ERR_RANGE, "is empty"},
        {10, -1, 3, IT_ERR_RANGE, "is empty"},
        {16385, 1, 1, IT_ERR_RANGE, "limit of 16384 per side"},
        {16384, 16384, 1, IT_ERR_RANGE, "limit of 134217728 pixels"},
        {4, 4, 5, IT_ERR_ARG, "channel count 5"},
        {4, 4, 0, IT_ERR_ARG, "channel count 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        IT_CHECK_INT(it_image_alloc(&e, &img, cases[i].w, cases[i].h, cases[i].c), cases[i].want);
        IT_CHECK_CONTAINS(e.msg, cases[i].msg);
        IT_CHECK(img.data == NULL);
    }
    IT_CHECK_OK(it_image_check_size(&e, 16384, 8192), &e);
    IT_CHECK_INT(it_image_check_size(&e, 16384, 8193), IT_ERR_RANGE);
    it_mem_fail_after(0, 0);
    IT_CHECK_INT(it_image_alloc(&e, &img, 8, 8, 1), IT_ERR_NOMEM);
    it_mem_fail_after(-1, 0);
}

/* Reads a PNG back with libpng's simplified API (independent of our decoder). */
static int read_png_simple(const char *path, png_image *pi, uint8_t **pix, uint32_t fmt)
{
    memset(pi, 0, sizeof *pi);
    pi->version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(pi, path)) return 0;
    pi->format = fmt;
    *pix = malloc(PNG_IMAGE_SIZE(*pi));
    if (!png_image_finish_read(pi, NULL, *pix, 0, NULL)) {
        free(*pix);
        return 0;
    }
    return 1;
}

IT_TEST(image_save_png_roundtrip) {
    static const uint32_t fmts[5] = {0, PNG_FORMAT_GRAY, PNG_FORMAT_GA, PNG_FORMAT_RGB,
                                     PNG_FORMAT_RGBA};
    it_err e;
    for (int c = 1; c <= 4; c++) {
        it_image img;
        IT_REQUIRE_OK(it_image_alloc(&e, &img, 13, 7, c), &e);
        for (size_t i = 0; i < (size_t)13 * 7 * c; i++) img.data[i] = (uint8_t)(i * 37 + c);
        char name[32];
        snprintf(name, sizeof name, "out%d.png", c);
        const char *path = it_test_tmp(t, name);
        IT_REQUIRE_OK(it_image_save_png(&e, &img, path), &e);
        png_image pi;
        uint8_t *pix = NULL;
        IT_REQUIRE(read_png_simple(path, &pi, &pix, fmts[c]));
        IT_CHECK_INT(pi.width, 13);
        IT_CHECK_INT(pi.height, 7);
        IT_CHECK(memcmp(pix, img.data, (size_t)13 * 7 * c) == 0);
        free(pix);
        it_image_free(&img);
    }
}

IT_TEST(image_save_png_errors) {
    it_err e;
    it_image img;
    IT_REQUIRE_OK(it_image_alloc(&e, &img, 4, 4, 3), &e);
    memset(img.data, 9, 48);
    /* A missing directory: nothing is written, the message names the path. */
    const char *bad = it_test_tmp(t, "no/such/dir/x.png");
    IT_CHECK_INT(it_image_save_png(&e, &img, bad), IT_ERR_IO);
    IT_CHECK_CONTAINS(e.msg, "x.png");
    IT_CHECK(!it_file_exists(bad));
    /* Out of memory inside libpng is reported, the temporary file removed. */
    const char *path = it_test_tmp(t, "oom.png");
    for (long k = 0; k < 12; k++) {
        it_mem_fail_after(k, 1);
        it_status s = it_image_save_png(&e, &img, path);
        it_mem_fail_after(-1, 0);
        if (s == IT_OK) break;
        IT_CHECK_INT(s, IT_ERR_NOMEM);
        IT_CHECK(!it_file_exists(path));
    }
    IT_CHECK_OK(it_image_save_png(&e, &img, path), &e);
    IT_CHECK(it_file_exists(path));
    it_image bad_img = {.w = 4, .h = 4, .c = 5, .data = img.data};
    IT_CHECK_INT(it_image_save_png(&e, &bad_img, path), IT_ERR_ARG);
    it_image_free(&img);
}

IT_TEST(image_encode_to_memory) {
    it_err e;
    it_image img, back;
    IT_REQUIRE_OK(it_image_alloc(&e, &img, 19, 11, 3), &e);
    for (int i = 0; i < 19 * 11 * 3; i++) img.data[i] = (uint8_t)(i * 13);
    uint8_t *buf = NULL;
    size_t n = 0;
    IT_REQUIRE_OK(it_image_encode_png(&e, &buf, &n, &img), &e);
    IT_CHECK(n > 8 && memcmp(buf, "\x89PNG", 4) == 0);
    IT_REQUIRE_OK(it_image_decode(&e, &back, buf, n), &e);
    IT_CHECK(back.w == 19 && back.h == 11 && back.c == 3);
    IT_CHECK(memcmp(back.data, img.data, (size_t)19 * 11 * 3) == 0);
    it_image_free(&back);
    it_free(buf);
    IT_REQUIRE_OK(it_image_encode_jpeg(&e, &buf, &n, &img, 90), &e);
    IT_CHECK(n > 3 && buf[0] == 0xFF && buf[1] == 0xD8);
    IT_REQUIRE_OK(it_image_decode(&e, &back, buf, n), &e);
    IT_CHECK(back.w == 19 && back.h == 11 && back.c == 3);
    it_image_free(&back);
    it_free(buf);
    IT_CHECK_INT(it_image_encode_jpeg(&e, &buf, &n, &img, 101), IT_ERR_ARG);
    IT_CHECK(buf == NULL && n == 0);
    it_image_free(&img);
}
