/* test_image_codecs.c: PNG/JPEG/WebP decoding against Pillow's pixels,
 * probing, EXIF orientation, encoders, and damaged input. */
#include <stdint.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "image/codecs.h"
#include "image/exif.h"
#include "image/image.h"
#include "test_image_util.h"
#include "test.h"

/* Decodes fixture `file` and compares with `pam`; returns the max diff
 * (or 999 on a failure, which is also recorded). */
static int decode_vs_pam(it_test_ctx *t, const char *file, const char *pam, size_t *n_equal,
                         size_t *n_total)
{
    it_err e;
    it_image got, want;
    if (it_image_load(&e, &got, it_test_fixture(t, file)) != IT_OK) {
        it_test_fail(t, __FILE__, __LINE__, "%s: %s", file, e.msg);
        return 999;
    }
    if (itest_load_pam(&e, &want, it_test_fixture(t, pam)) != IT_OK) {
        it_test_fail(t, __FILE__, __LINE__, "%s: %s", pam, e.msg);
        it_image_free(&got);
        return 999;
    }
    int d = itest_image_diff(&got, &want, n_equal);
    if (d < 0)
        it_test_fail(t, __FILE__, __LINE__, "%s: decoded %dx%dx%d, Pillow %dx%dx%d", file, got.w,
                     got.h, got.c, want.w, want.h, want.c);
    if (n_total) *n_total = (size_t)want.w * want.h * want.c;
    it_image_free(&got);
    it_image_free(&want);
    return d < 0 ? 999 : d;
}

IT_TEST(image_png_decode_variants) {
    static const struct { const char *name; const char *mode; int depth, c; } cases[] = {
        {"png_rgb8", "RGB", 8, 3},     {"png_rgba8", "RGBA", 8, 4},
        {"png_l8", "L", 8, 1},         {"png_la8", "LA", 8, 2},
        {"png_rgb16", "RGB", 16, 3},   {"png_rgba16", "RGBA", 16, 4},
        {"png_l16", "I;16", 16, 1},    {"png_la16", "LA", 16, 2},
        {"png_p", "P", 4, 3},          {"png_p_trns", "P", 4, 4},
        {"png_l_trns", "L", 8, 2},     {"png_l1", "1", 1, 1},
        {"png_rgb8_interlaced", "RGB", 8, 3}, {"png_rgba16_interlaced", "RGBA", 16, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char f[64], p[64];
        snprintf(f, sizeof f, "image/%s.png", cases[i].name);
        snprintf(p, sizeof p, "image/%s.pam", cases[i].name);
        int d = decode_vs_pam(t, f, p, NULL, NULL);
        if (d != 0) it_test_fail(t, __FILE__, __LINE__, "%s: max diff %d, want exact", f, d);
        it_err e;
        it_image_info info;
        IT_CHECK_OK(it_image_info_file(&e, &info, it_test_fixture(t, f)), &e);
        IT_CHECK_INT(info.format, IT_IMG_PNG);
        IT_CHECK_INT(info.w, 40);
        IT_CHECK_INT(info.h, 30);
        IT_CHECK_INT(info.channels, cases[i].c);
        IT_CHECK_STR(info.mode, cases[i].mode);
        if (cases[i].depth != 4) IT_CHECK_INT(info.bit_depth, cases[i].depth);
        IT_CHECK_INT(info.exif_orientation, 1);
    }
}

/* JPEG: the IDCT of Pillow's bundled libjpeg-turbo and the system one may
 * round differently; we allow 2 levels and print what we see. */
IT_TEST(image_jpeg_decode_vs_pillow) {
    static const struct { const char *name; const char *mode; int c, progressive; } cases[] = {
        {"jpeg_rgb", "RGB", 3, 0}, {"jpeg_l", "L", 1, 0}, {"jpeg_progressive", "RGB", 3, 1},
        {"jpeg_cmyk", "CMYK", 3, 0}, {"jpeg_444", "RGB", 3, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char f[64], p[64];
        snprintf(f, sizeof f, "image/%s.jpg", cases[i].name);
        snprintf(p, sizeof p, "image/%s.pam", cases[i].name);
        size_t eq = 0, n = 0;
        int d = decode_vs_pam(t, f, p, &eq, &n);
        printf("    %-22s max diff %d, %zu/%zu samples equal\n", f, d, eq, n);
        if (d > 2) it_test_fail(t, __FILE__, __LINE__, "%s: max diff %d > 2", f, d);
        it_err e;
        it_image_info info;
        IT_CHECK_OK(it_image_info_file(&e, &info, it_test_fixture(t, f)), &e);
        IT_CHECK_INT(info.format, IT_IMG_JPEG);
        IT_CHECK_STR(info.mode, cases[i].mode);
        IT_CHECK_INT(info.channels, cases[i].c);
        IT_CHECK_INT(info.bit_depth, 8);
    }
}

IT_TEST(image_jpeg_exif_orientation) {
    for (int o = 1; o <= 9; o++) {
        char f[64], p[64];
        /* 9 stands for the big-endian ("MM") EXIF variant of orientation 6. */
        snprintf(f, sizeof f, o == 9 ? "image/jpeg_orient6_mm.jpg" : "image/jpeg_orient%d.jpg", o);
        snprintf(p, sizeof p, o == 9 ? "image/jpeg_orient6_mm.pam" : "image/jpeg_orient%d.pam", o);
        int d = decode_vs_pam(t, f, p, NULL, NULL);
        if (d > 2) it_test_fail(t, __FILE__, __LINE__, "%s: max diff %d > 2", f, d);
        it_err e;
        it_image_info info;
        IT_REQUIRE_OK(it_image_info_file(&e, &info, it_test_fixture(t, f)), &e);
        int want_o = o == 9 ? 6 : o;
        IT_CHECK_INT(info.exif_orientation, want_o);
        IT_CHECK_INT(info.w, want_o >= 5 ? 16 : 24);
        IT_CHECK_INT(info.h, want_o >= 5 ? 24 : 16);
    }
}

/* EXIF in the other containers: PNG eXIf and WebP EXIF chunks. */
IT_TEST(image_exif_png_webp) {
    static const struct { const char *file, *pam; int o; } cases[] = {
        {"image/png_orient6.png", "image/png_orient6.pam", 6},
        {"image/webp_orient8.webp", "image/webp_orient8.pam", 8},
    };
    for (size_t i = 0; i < 2; i++) {
        int d = decode_vs_pam(t, cases[i].file, cases[i].pam, NULL, NULL);
        if (d != 0) it_test_fail(t, __FILE__, __LINE__, "%s: max diff %d", cases[i].file, d);
        it_err e;
        it_image_info info;
        IT_REQUIRE_OK(it_image_info_file(&e, &info, it_test_fixture(t, cases[i].file)), &e);
        IT_CHECK_INT(info.exif_orientation, cases[i].o);
        IT_CHECK(info.w == 16 && info.h == 24);
    }
}

IT_TEST(image_exif_parser_bounds) {
    /* Little-endian block, orientation 3, then every truncation of it. */
    static const uint8_t ok[] = {'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0,
                                 0x12, 0x01, 3, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0};
    IT_CHECK_INT(it_exif_orientation(ok, sizeof ok), 3);
    for (size_t n = 0; n < 28; n++) IT_CHECK_INT(it_exif_orientation(ok, n), 1);
    IT_CHECK_INT(it_exif_orientation(NULL, 10), 1);
    uint8_t b[sizeof ok];
    memcpy(b, ok, sizeof ok);
    b[10] = 0xF0; /* IFD offset far outside the block */
    IT_CHECK_INT(it_exif_orientation(b, sizeof b), 1);
    memcpy(b, ok, sizeof ok);
    b[24] = 9; /* out-of-range value */
    IT_CHECK_INT(it_exif_orientation(b, sizeof b), 1);
    memcpy(b, ok, sizeof ok);
    b[14] = 0xFF, b[15] = 0xFF; /* 65535 entries claimed: only what fits is read */
    IT_CHECK_INT(it_exif_orientation(b, sizeof b), 3);
    memcpy(b, ok, sizeof ok);
    b[8] = 43; /* bad TIFF magic */
    IT_CHECK_INT(it_exif_orientation(b, sizeof b), 1);
}

IT_TEST(image_webp_decode_vs_pillow) {
    static const struct { const char *name; int tol, c; } cases[] = {
        {"webp_lossless", 0, 3}, {"webp_lossless_alpha", 0, 4},
        {"webp_lossy", 3, 3},    {"webp_lossy_alpha", 3, 4}, {"webp_anim", 0, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char f[64], p[64];
        snprintf(f, sizeof f, "image/%s.webp", cases[i].name);
        snprintf(p, sizeof p, "image/%s.pam", cases[i].name);
        size_t eq = 0, n = 0;
        int d = decode_vs_pam(t, f, p, &eq, &n);
        printf("    %-26s max diff %d, %zu/%zu samples equal\n", f, d, eq, n);
        if (d > cases[i].tol)
            it_test_fail(t, __FILE__, __LINE__, "%s: max diff %d > %d", f, d, cases[i].tol);
        it_err e;
        it_image_info info;
        IT_CHECK_OK(it_image_info_file(&e, &info, it_test_fixture(t, f)), &e);
        IT_CHECK_INT(info.format, IT_IMG_WEBP);
        IT_CHECK_INT(info.channels, cases[i].c);
        IT_CHECK_INT(info.w, 40);
    }
}

IT_TEST(image_jpeg_encode_roundtrip) {
    it_err e;
    it_image src, back;
    IT_REQUIRE_OK(it_image_load(&e, &src, it_test_fixture(t, "image/png_rgb8.png")), &e);
    const char *path = it_test_tmp(t, "q95.jpg");
    IT_REQUIRE_OK(it_image_save_jpeg(&e, &src, path, 95), &e);
    IT_REQUIRE_OK(it_image_load(&e, &back, path), &e);
    /* The fixture has independent per-channel noise and saturated edges, so
     * 4:2:0 chroma subsampling costs a lot: Pillow's own quality-95 save of
     * this image has mean error 10.56 and max 119, and decodes to exactly our
     * pixels (checked when this test was written). Quality must still help. */
    int d = itest_image_diff(&src, &back, NULL);
    double mean95 = 0, mean30 = 0;
    for (size_t i = 0; i < (size_t)40 * 30 * 3; i++) mean95 += abs(src.data[i] - back.data[i]);
    mean95 /= 40 * 30 * 3;
    it_image_free(&back);
    IT_REQUIRE_OK(it_image_save_jpeg(&e, &src, path, 30), &e);
    IT_REQUIRE_OK(it_image_load(&e, &back, path), &e);
    for (size_t i = 0; i < (size_t)40 * 30 * 3; i++) mean30 += abs(src.data[i] - back.data[i]);
    mean30 /= 40 * 30 * 3;
    printf("    jpeg roundtrip: q95 max diff %d mean %.2f; q30 mean %.2f\n", d, mean95, mean30);
    IT_CHECK(d >= 0 && mean95 < 11.0 && mean30 > mean95);
    it_image_free(&back);
    IT_CHECK_INT(it_image_save_jpeg(&e, &src, path, 0), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "quality 0");
    it_image rgba;
    IT_REQUIRE_OK(it_image_convert(&e, &rgba, &src, 4, NULL), &e);
    IT_CHECK_INT(it_image_save_jpeg(&e, &rgba, path, 90), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "convert first");
    it_image_free(&rgba);
    it_image_free(&src);
}

/* ---- damaged input ------------------------------------------------------- */

static uint8_t *fixture_bytes(it_test_ctx *t, const char *name, size_t *n)
{
    it_err e;
    uint8_t *buf = NULL;
    if (it_file_read(&e, &buf, n, it_test_fixture(t, name), 1 << 20) != IT_OK) {
        it_test_fail(t, __FILE__, __LINE__, "%s", e.msg);
        return NULL;
    }
    return buf;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Expects decode and (where the header is damaged) probe to fail cleanly. */
static void expect_fail(it_test_ctx *t, const uint8_t *d, size_t n, const char *what,
                        const char *msg_part)
{
    it_err e;
    it_image img;
    it_status s = it_image_decode(&e, &img, d, n);
    if (s == IT_OK) {
        it_test_fail(t, __FILE__, __LINE__, "%s: decoded %dx%d, expected an error", what, img.w,
                     img.h);
        it_image_free(&img);
        return;
    }
    if (img.data) it_test_fail(t, __FILE__, __LINE__, "%s: image left allocated", what);
    if (s != IT_ERR_FORMAT && s != IT_ERR_RANGE)
        it_test_fail(t, __FILE__, __LINE__, "%s: status %d (%s)", what, s, e.msg);
    if (!e.msg[0]) it_test_fail(t, __FILE__, __LINE__, "%s: empty message", what);
    if (msg_part && !strstr(e.msg, msg_part))
        it_test_fail(t, __FILE__, __LINE__, "%s: \"%s\" lacks \"%s\"", what, e.msg, msg_part);
}

IT_TEST(image_decode_truncated) {
    static const char *files[] = {"image/png_rgb8.png", "image/png_rgb8_interlaced.png",
                                  "image/png_p_trns.png", "image/jpeg_rgb.jpg",
                                  "image/jpeg_progressive.jpg", "image/jpeg_cmyk.jpg",
                                  "image/webp_lossy.webp", "image/webp_lossless_alpha.webp",
                                  "image/webp_anim.webp"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t n = 0;
        uint8_t *buf = fixture_bytes(t, files[i], &n);
        if (!buf) continue;
        /* Cut inside the header, inside the pixel data, and just before the
         * last pixel bytes (PNG: before IEND and the last IDAT CRC). */
        size_t cuts[] = {1, 7, 16, 33, n / 4, n / 2, 3 * n / 4, n - 24};
        for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
            char what[96];
            snprintf(what, sizeof what, "%s cut at %zu of %zu", files[i], cuts[k], n);
            uint8_t *copy = it_malloc(cuts[k]); /* exact size, so ASan sees overreads */
            memcpy(copy, buf, cuts[k]);
            expect_fail(t, copy, cuts[k], what, NULL);
            it_free(copy);
        }
        it_free(buf);
    }
}

IT_TEST(image_decode_bad_headers) {
    expect_fail(t, (const uint8_t *)"", 0, "empty", "empty image data");
    expect_fail(t, (const uint8_t *)"GIF89a\x01\x00\x01\x00", 10, "gif", "unknown image format");
    expect_fail(t, (const uint8_t *)"\x89PNG\r\n\x1a\n", 8, "bare signature", "PNG");
    size_t n = 0;
    uint8_t *png = fixture_bytes(t, "image/png_rgb8.png", &n);
    IT_REQUIRE(png);
    /* IHDR data starts at 16: width(4) height(4) depth colour ... CRC at 29. */
    uint8_t *b = it_malloc(n);
    memcpy(b, png, n);
    b[17] ^= 0x40; /* width changed, CRC now wrong */
    expect_fail(t, b, n, "png bad IHDR CRC", "CRC");
    memcpy(b, png, n);
    put_be32(b + 16, 100000), put_be32(b + 20, 100000);
    put_be32(b + 29, (uint32_t)0); /* CRC recomputed below */
    {
        /* CRC over "IHDR" + 13 data bytes, so that the size check is what fails. */
        uint32_t c = 0xFFFFFFFFu;
        for (int i = 12; i < 29; i++) {
            c ^= b[i];
            for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
        }
        put_be32(b + 29, c ^ 0xFFFFFFFFu);
    }
    expect_fail(t, b, n, "png 100000x100000", "exceeds the limit of 16384 per side");
    it_err e;
    it_image_info info;
    IT_CHECK_INT(it_image_probe(&e, &info, b, n), IT_ERR_RANGE);
    IT_CHECK_CONTAINS(e.msg, "100000x100000");
    memcpy(b, png, n);
    b[24] = 7; /* bit depth 7 */
    expect_fail(t, b, n, "png depth 7", "PNG");
    it_free(b);
    it_free(png);

    uint8_t *jpg = fixture_bytes(t, "image/jpeg_rgb.jpg", &n);
    IT_REQUIRE(jpg);
    /* Find the SOF0 marker: FF C0 len(2) precision(1) height(2) width(2). */
    size_t sof = 0;
    for (size_t i = 2; i + 9 < n; i++)
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) {
            sof = i;
            break;
        }
    IT_REQUIRE(sof > 0);
    b = it_malloc(n);
    memcpy(b, jpg, n);
    b[sof + 5] = 0xEA, b[sof + 6] = 0x60, b[sof + 7] = 0xEA, b[sof + 8] = 0x60; /* 60000x60000 */
    expect_fail(t, b, n, "jpeg 60000x60000", "exceeds the limit");
    memcpy(b, jpg, n);
    b[sof + 5] = 0, b[sof + 6] = 0; /* height 0 */
    expect_fail(t, b, n, "jpeg height 0", "JPEG");
    memcpy(b, jpg, n);
    b[sof + 4] = 13; /* 13-bit precision */
    expect_fail(t, b, n, "jpeg precision 13", "JPEG");
    memcpy(b, jpg, n);
    b[3] ^= 0xFF; /* first marker byte after SOI */
    expect_fail(t, b, n, "jpeg bad marker", "JPEG");
    it_free(b);
    it_free(jpg);

    uint8_t *webp = fixture_bytes(t, "image/webp_lossy.webp", &n);
    IT_REQUIRE(webp);
    b = it_malloc(n);
    memcpy(b, webp, n);
    b[12] = 'X'; /* chunk "VP8 " -> "XP8 " */
    expect_fail(t, b, n, "webp bad chunk", "WebP");
    memcpy(b, webp, n);
    memset(b + 20, 0, 10); /* VP8 frame header zeroed */
    expect_fail(t, b, n, "webp zero frame header", "WebP");
    it_free(b);
    it_free(webp);

    /* An animated VP8X header declaring a 20000x20000 canvas, no frames:
     * refused on the header, before libwebp allocates the canvas. */
    uint8_t vp8x[30] = {'R', 'I', 'F', 'F', 22, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', 'X',
                        10, 0, 0, 0, 0x02, 0, 0, 0};
    uint32_t side = 20000 - 1;
    for (int k = 0; k < 3; k++) vp8x[24 + k] = vp8x[27 + k] = (uint8_t)(side >> (8 * k));
    expect_fail(t, vp8x, sizeof vp8x, "webp 20000x20000 canvas", "exceeds the limit");
}

IT_TEST(image_decode_limit) {
    size_t n = 0;
    uint8_t *buf = fixture_bytes(t, "image/jpeg_orient6.jpg", &n);
    IT_REQUIRE(buf);
    it_err e;
    it_image img;
    IT_CHECK_INT(it_image_decode_limit(&e, &img, buf, n, 16 * 24 - 1), IT_ERR_RANGE);
    IT_CHECK_STR(e.msg, "jpeg image is 16x24, more than the limit of 383 pixels");
    IT_CHECK(img.data == NULL);
    IT_CHECK_OK(it_image_decode_limit(&e, &img, buf, n, 16 * 24), &e);
    IT_CHECK(img.w == 16 && img.h == 24);
    it_image_free(&img);
    it_free(buf);
    /* The fuzzer's find: 386 bytes claiming 39M pixels, refused at once. */
    buf = fixture_bytes(t, "image/fuzz_jpeg_tiny_huge.jpg", &n);
    IT_REQUIRE(buf);
    IT_CHECK_INT(n, 386);
    IT_CHECK_INT(it_image_decode_limit(&e, &img, buf, n, 1L << 22), IT_ERR_RANGE);
    IT_CHECK_CONTAINS(e.msg, "15105x2584");
    it_free(buf);
}

IT_TEST(image_decode_out_of_memory) {
    static const char *files[] = {"image/png_p_trns.png", "image/png_rgba16_interlaced.png",
                                  "image/jpeg_orient6.jpg", "image/webp_lossy_alpha.webp"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t n = 0;
        uint8_t *buf = fixture_bytes(t, files[i], &n);
        if (!buf) continue;
        int ok = 0;
        for (long k = 0; k < 40 && !ok; k++) {
            it_err e;
            it_image img;
            it_mem_fail_after(k, 1);
            it_status s = it_image_decode(&e, &img, buf, n);
            it_mem_fail_after(-1, 0);
            if (s == IT_OK) {
                ok = 1;
                it_image_free(&img);
            } else if (s != IT_ERR_NOMEM) {
                it_test_fail(t, __FILE__, __LINE__, "%s: fail after %ld -> %d (%s)", files[i], k,
                             s, e.msg);
            }
        }
        IT_CHECK(ok);
        it_free(buf);
    }
}
