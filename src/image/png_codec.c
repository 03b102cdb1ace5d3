/* png_codec.c: PNG decoding and encoding with libpng.
 *
 * Owns: the libpng glue. libpng reports errors by calling an error function
 * that must not return; we longjmp back to the function that set the jump
 * buffer, turn the message into IT_ERR_FORMAT and free everything. All
 * libpng allocations go through it_malloc (png_create_*_struct_2), so the
 * test runner's leak check and it_mem_fail_after cover them too. Variables
 * changed between setjmp and a longjmp are kept in a struct reached through a
 * pointer (or are volatile) so they survive the jump. */
#include <png.h>
#include <setjmp.h>
#include <string.h>

#include "base/mem.h"
#include "image/codecs.h"

typedef struct png_ctx {
    char msg[200];      /* libpng's error text */
    int nomem;          /* the failure was an allocation */
    const uint8_t *data;/* decoding: input bytes */
    size_t n, pos;
    FILE *fp;           /* encoding: output */
    int io_failed;
} png_ctx;

static void png_ctx_error(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

/* Warnings (bad CRC in an ancillary chunk, sRGB profile notes) are ignored:
 * Pillow decodes such files too. */
static void png_ctx_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static png_voidp png_ctx_malloc(png_structp png, png_alloc_size_t n)
{
    void *p = it_malloc(n);
    if (!p) {
        png_ctx *c = png_get_error_ptr(png);
        if (c) c->nomem = 1;
    }
    return p;
}

static void png_ctx_free(png_structp png, png_voidp p) { (void)png; it_free(p); }

/* ---- encoding ----------------------------------------------------------- */

static void png_ctx_write(png_structp png, png_bytep buf, png_size_t n)
{
    png_ctx *c = png_get_io_ptr(png);
    if (fwrite(buf, 1, n, c->fp) != n) {
        c->io_failed = 1;
        png_error(png, "write failed");
    }
}

static void png_ctx_flush(png_structp png) { (void)png; }

it_status it_png_write(it_err *err, FILE *fp, const it_image *img, const char *path)
{
    static const int color_types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                       PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGBA};
    if (!img->data || img->c < 1 || img->c > 4 || img->w <= 0 || img->h <= 0)
        return it_err_set(err, IT_ERR_ARG, "%s: cannot write an empty or %d-channel image as PNG",
                          path, img->c);
    png_ctx ctx = {.fp = fp};
    png_structp png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, &ctx, png_ctx_error,
                                                png_ctx_warning, NULL, png_ctx_malloc,
                                                png_ctx_free);
    if (!png) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory creating PNG writer", path);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory creating PNG writer", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        if (ctx.nomem) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory writing PNG", path);
        return it_err_set(err, ctx.io_failed ? IT_ERR_IO : IT_ERR_INTERNAL, "%s: PNG write: %s",
                          path, ctx.msg);
    }
    png_set_write_fn(png, &ctx, png_ctx_write, png_ctx_flush);
    png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, 8, color_types[img->c],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    /* Level 6 (zlib's default) is a good size/speed balance for previews. */
    png_set_compression_level(png, 6);
    png_write_info(png, info);
    size_t stride = (size_t)img->w * img->c;
    for (int y = 0; y < img->h; y++) png_write_row(png, img->data + (size_t)y * stride);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return IT_OK;
}
