/* test_image_geom.c: orientation, flips, crop/pad/paste, conversions and
 * drawing, as tables of small exact cases plus Pillow fixtures. */
#include <stdlib.h>

#include "base/mem.h"
#include "image/draw.h"
#include "image/geom.h"
#include "test_image_util.h"

/* 3x2 image whose pixel values are 1..6 row-major (grey). */
static void make_3x2(it_test_ctx *t, it_image *img)
{
    it_err e;
    IT_CHECK_OK(it_image_alloc(&e, img, 3, 2, 1), &e);
    for (int i = 0; i < 6; i++) img->data[i] = (uint8_t)(i + 1);
}

IT_TEST(image_orient_table) {
    /* Input  1 2 3
     *        4 5 6   ; expected outputs (Pillow's exif_transpose). */
    static const struct { int o, w, h; uint8_t px[6]; } cases[] = {
        {1, 3, 2, {1, 2, 3, 4, 5, 6}}, {2, 3, 2, {3, 2, 1, 6, 5, 4}},
        {3, 3, 2, {6, 5, 4, 3, 2, 1}}, {4, 3, 2, {4, 5, 6, 1, 2, 3}},
        {5, 2, 3, {1, 4, 2, 5, 3, 6}}, {6, 2, 3, {4, 1, 5, 2, 6, 3}},
        {7, 2, 3, {6, 3, 5, 2, 4, 1}}, {8, 2, 3, {3, 6, 2, 5, 1, 4}},
    };
    it_err e;
    it_image in;
    make_3x2(t, &in);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        it_image out;
        IT_REQUIRE_OK(it_image_orient(&e, &out, &in, cases[i].o), &e);
        IT_CHECK_INT(out.w, cases[i].w);
        IT_CHECK_INT(out.h, cases[i].h);
        if (memcmp(out.data, cases[i].px, 6) != 0)
            it_test_fail(t, __FILE__, __LINE__, "orientation %d: %d %d %d %d %d %d", cases[i].o,
                         out.data[0], out.data[1], out.data[2], out.data[3], out.data[4],
                         out.data[5]);
        it_image_free(&out);
    }
    /* flip_h / flip_v agree with orientations 2 and 4. */
    it_image_flip_h(&in);
    IT_CHECK(memcmp(in.data, cases[1].px, 6) == 0);
    it_image_flip_h(&in);
    it_image_flip_v(&in);
    IT_CHECK(memcmp(in.data, cases[3].px, 6) == 0);
    it_image_free(&in);
}

IT_TEST(image_crop_pad_table) {
    static const uint8_t fill = 9;
    static const struct { int x, y, w, h; uint8_t px[12]; } cases[] = {
        {0, 0, 3, 2, {1, 2, 3, 4, 5, 6}},
        {1, 1, 2, 1, {5, 6}},
        {-1, 0, 2, 2, {9, 1, 9, 4}},         /* left of the image */
        {2, -1, 3, 3, {9, 9, 9, 3, 9, 9, 6, 9, 9}},
        {10, 10, 2, 1, {9, 9}},               /* wholly outside */
        {-2000000000, 0, 2, 1, {9, 9}},       /* far away: no overflow */
    };
    it_err e;
    it_image in;
    make_3x2(t, &in);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        it_image out;
        IT_REQUIRE_OK(it_image_crop(&e, &out, &in, cases[i].x, cases[i].y, cases[i].w, cases[i].h,
                                    &fill), &e);
        if (memcmp(out.data, cases[i].px, (size_t)cases[i].w * cases[i].h) != 0)
            it_test_fail(t, __FILE__, __LINE__, "crop case %zu differs", i);
        it_image_free(&out);
    }
    it_image out;
    IT_REQUIRE_OK(it_image_pad(&e, &out, &in, 1, 0, 0, 1, NULL), &e);
    static const uint8_t padded[] = {0, 1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0};
    IT_CHECK_INT(out.w, 4);
    IT_CHECK_INT(out.h, 3);
    IT_CHECK(memcmp(out.data, padded, 12) == 0);
    it_image_free(&out);
    IT_CHECK_INT(it_image_pad(&e, &out, &in, -1, 0, 0, 0, NULL), IT_ERR_ARG);
    IT_CHECK_INT(it_image_pad(&e, &out, &in, 20000, 0, 0, 0, NULL), IT_ERR_RANGE);
    IT_CHECK_INT(it_image_crop(&e, &out, &in, 0, 0, 0, 5, NULL), IT_ERR_RANGE);
    it_image_free(&in);
}

IT_TEST(image_paste_mask) {
    it_err e;
    it_image dst, src, mask;
    IT_REQUIRE_OK(it_image_alloc(&e, &dst, 4, 3, 1), &e);
    memset(dst.data, 100, 12);
    make_3x2(t, &src);
    IT_REQUIRE_OK(it_image_paste(&e, &dst, &src, 2, 2, NULL), &e); /* clipped to 2x1 */
    static const uint8_t want1[] = {100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 1, 2};
    IT_CHECK(memcmp(dst.data, want1, 12) == 0);
    IT_REQUIRE_OK(it_image_alloc(&e, &mask, 3, 2, 1), &e);
    static const uint8_t m[] = {0, 255, 128, 1, 254, 64};
    memcpy(mask.data, m, 6);
    memset(dst.data, 200, 12);
    IT_REQUIRE_OK(it_image_paste(&e, &dst, &src, -1, 0, &mask), &e);
    /* dst pixel (x, y) gets src (x + 1, y) with mask (x + 1, y):
     * round((200 * (255 - m) + s * m) / 255). */
    static const uint8_t want2[] = {2, 101, 200, 200, 6, 151, 200, 200, 200, 200, 200, 200};
    for (int i = 0; i < 12; i++) IT_CHECK_INT(dst.data[i], want2[i]);
    it_image rgb;
    IT_REQUIRE_OK(it_image_alloc(&e, &rgb, 2, 2, 3), &e);
    IT_CHECK_INT(it_image_paste(&e, &dst, &rgb, 0, 0, NULL), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "channel counts differ");
    IT_CHECK_INT(it_image_paste(&e, &dst, &src, 0, 0, &rgb), IT_ERR_ARG);
    it_image_free(&rgb);
    it_image_free(&mask);
    it_image_free(&src);
    it_image_free(&dst);
}

IT_TEST(image_convert_vs_pillow) {
    it_err e;
    it_image rgba, rgb, got, want;
    IT_REQUIRE_OK(it_image_load(&e, &rgba, it_test_fixture(t, "image/src_33x17_rgba.png")), &e);
    IT_REQUIRE(rgba.c == 4);
    static const uint8_t bg[3] = {40, 120, 200};
    static const struct { const char *pam; int c; } cases[] = {
        {"image/convert_rgba_over_bg.pam", 3},
        {"image/convert_rgba_over_bg_l.pam", 1},
        {"image/convert_rgba_to_la.pam", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        IT_REQUIRE_OK(it_image_convert(&e, &got, &rgba, cases[i].c, bg), &e);
        IT_REQUIRE_OK(itest_load_pam(&e, &want, it_test_fixture(t, cases[i].pam)), &e);
        int d = itest_image_diff(&got, &want, NULL);
        if (d != 0) it_test_fail(t, __FILE__, __LINE__, "%s: max diff %d", cases[i].pam, d);
        it_image_free(&got);
        it_image_free(&want);
    }
    /* RGB -> L: strip alpha by hand (Pillow's convert("RGB") drops it). */
    IT_REQUIRE_OK(it_image_alloc(&e, &rgb, rgba.w, rgba.h, 3), &e);
    for (int i = 0; i < rgba.w * rgba.h; i++) memcpy(rgb.data + 3 * i, rgba.data + 4 * i, 3);
    IT_REQUIRE_OK(it_image_convert(&e, &got, &rgb, 1, NULL), &e);
    IT_REQUIRE_OK(itest_load_pam(&e, &want, it_test_fixture(t, "image/convert_rgb_to_l.pam")), &e);
    IT_CHECK_INT(itest_image_diff(&got, &want, NULL), 0);
    it_image_free(&want);
    /* Grey -> RGB -> grey and grey -> LA -> grey are exact. */
    for (int c = 2; c <= 4; c++) {
        it_image up, down;
        IT_REQUIRE_OK(it_image_convert(&e, &up, &got, c, NULL), &e);
        IT_REQUIRE_OK(it_image_convert(&e, &down, &up, 1, NULL), &e);
        IT_CHECK_INT(itest_image_diff(&down, &got, NULL), 0);
        it_image_free(&up);
        it_image_free(&down);
    }
    IT_CHECK_INT(it_image_convert(&e, &want, &got, 5, NULL), IT_ERR_ARG);
    it_image_free(&got);
    it_image_free(&rgb);
    it_image_free(&rgba);
}

IT_TEST(image_draw_and_masks) {
    it_err e;
    it_image img, mask;
    IT_REQUIRE_OK(it_image_alloc(&e, &img, 10, 8, 3), &e);
    memset(img.data, 0, 240);
    static const uint8_t red[3] = {255, 0, 0};
    it_draw_rect(&img, (it_box){2, 1, 8, 7}, 1, red);
    int n_red = 0;
    for (int i = 0; i < 80; i++) n_red += img.data[3 * i] == 255;
    IT_CHECK_INT(n_red, 2 * 6 + 2 * 4); /* perimeter of a 6x6 box */
    IT_CHECK_INT(img.data[3 * (1 * 10 + 2)], 255);  /* corner (2,1) */
    IT_CHECK_INT(img.data[3 * (6 * 10 + 7)], 255);  /* corner (7,6) */
    IT_CHECK_INT(img.data[3 * (3 * 10 + 4)], 0);    /* inside */
    it_draw_rect(&img, (it_box){-5, -5, 100, 100}, 2, red); /* clipped, no crash */
    it_draw_rect(&img, (it_box){50, 50, 60, 60}, 2, red);   /* outside: nothing */

    IT_REQUIRE_OK(it_mask_from_box(&e, &mask, 10, 8, (it_box){3, 2, 6, 5}, 255), &e);
    it_box bb;
    IT_CHECK(it_mask_bbox(&mask, 0, &bb));
    IT_CHECK(bb.x0 == 3 && bb.y0 == 2 && bb.x1 == 6 && bb.y1 == 5);
    memset(img.data, 100, 240);
    static const uint8_t blue[3] = {0, 0, 250};
    IT_REQUIRE_OK(it_image_blend_mask(&e, &img, &mask, blue, 128), &e);
    const uint8_t *in = img.data + 3 * (3 * 10 + 4), *out = img.data;
    /* m = round(255 * 128 / 255) = 128: round((100 * 127 + 250 * 128) / 255) = 175. */
    IT_CHECK(in[0] == 50 && in[2] == 175);
    IT_CHECK(out[0] == 100 && out[2] == 100);
    memset(mask.data, 0, 80);
    IT_CHECK(!it_mask_bbox(&mask, 0, &bb));
    IT_CHECK(bb.x1 == 0);
    mask.data[79] = 3;
    IT_CHECK(!it_mask_bbox(&mask, 3, &bb));
    IT_CHECK(it_mask_bbox(&mask, 2, &bb) && bb.x0 == 9 && bb.y1 == 8);
    it_image small;
    IT_REQUIRE_OK(it_image_alloc(&e, &small, 3, 3, 1), &e);
    IT_CHECK_INT(it_image_blend_mask(&e, &img, &small, blue, 255), IT_ERR_ARG);
    it_image_free(&small);
    it_image_free(&mask);
    it_image_free(&img);
}
