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
#include "image/exif.h"
#include "image/geom.h"

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

/* ---- decoding ----------------------------------------------------------- */

/* Ancillary chunks larger than this are refused (libpng's default is 8 MB);
 * a text or ICC chunk has no business being bigger in an input image. */
#define PNG_MAX_CHUNK (4u << 20)

static void png_ctx_read(png_structp png, png_bytep buf, png_size_t n)
{
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->n - c->pos) png_error(png, "file is truncated");
    memcpy(buf, c->data + c->pos, n);
    c->pos += n;
}

/* Everything a decode owns, reachable after a longjmp. */
typedef struct png_dec {
    png_ctx ctx;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    it_image img;
} png_dec;

static void png_dec_free(png_dec *d)
{
    if (d->png) png_destroy_read_struct(&d->png, d->info ? &d->info : NULL, NULL);
    it_free(d->rows);
    it_image_free(&d->img);
    d->rows = NULL;
}

static it_status png_dec_fail(it_err *err, png_dec *d)
{
    png_dec_free(d);
    if (d->ctx.nomem) return it_err_set(err, IT_ERR_NOMEM, "out of memory decoding PNG");
    return it_err_set(err, IT_ERR_FORMAT, "PNG: %s", d->ctx.msg);
}

/* Creates the read structs; IT_OK or NOMEM. The caller then sets the jump. */
static it_status png_dec_begin(it_err *err, png_dec *d, const uint8_t *data, size_t n)
{
    memset(d, 0, sizeof *d);
    if (n < 8 || png_sig_cmp(data, 0, 8) != 0)
        return it_err_set(err, IT_ERR_FORMAT, "PNG: bad signature (not a PNG file)");
    d->ctx.data = data;
    d->ctx.n = n;
    d->png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &d->ctx, png_ctx_error,
                                      png_ctx_warning, NULL, png_ctx_malloc, png_ctx_free);
    if (d->png) d->info = png_create_info_struct(d->png);
    if (!d->png || !d->info) {
        png_dec_free(d);
        return it_err_set(err, IT_ERR_NOMEM, "out of memory creating PNG reader");
    }
    png_set_read_fn(d->png, &d->ctx, png_ctx_read);
    png_set_chunk_malloc_max(d->png, PNG_MAX_CHUNK);
    /* Bad CRCs in ancillary chunks are warnings (Pillow accepts them too);
     * critical chunks keep libpng's default (error). */
    png_set_crc_action(d->png, PNG_CRC_DEFAULT, PNG_CRC_WARN_USE);
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    /* Fuzz builds only: random mutations would almost never pass the CRC. */
    png_set_crc_action(d->png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
#endif
    return IT_OK;
}

/* Pillow's mode name for the file's colour type and depth. */
static const char *png_mode_name(int color_type, int depth)
{
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: return depth == 16 ? "I;16" : depth == 1 ? "1" : "L";
    case PNG_COLOR_TYPE_GRAY_ALPHA: return "LA";
    case PNG_COLOR_TYPE_PALETTE: return "P";
    case PNG_COLOR_TYPE_RGB: return "RGB";
    default: return "RGBA";
    }
}

/* Fills info from the IHDR/tRNS read so far. */
static void png_fill_info(png_dec *d, it_image_info *info)
{
    int ct = png_get_color_type(d->png, d->info);
    int depth = png_get_bit_depth(d->png, d->info);
    int trns = png_get_valid(d->png, d->info, PNG_INFO_tRNS) != 0;
    memset(info, 0, sizeof *info);
    info->format = IT_IMG_PNG;
    info->w = (int)png_get_image_width(d->png, d->info);
    info->h = (int)png_get_image_height(d->png, d->info);
    info->bit_depth = depth;
    snprintf(info->mode, sizeof info->mode, "%s", png_mode_name(ct, depth));
    int colour = ct == PNG_COLOR_TYPE_PALETTE || (ct & PNG_COLOR_MASK_COLOR);
    int alpha = (ct & PNG_COLOR_MASK_ALPHA) || trns;
    info->channels = (colour ? 3 : 1) + alpha;
    info->exif_orientation = 1;
    /* An eXIf chunk before the image data (where the PNG spec wants it). */
    png_uint_32 n_exif = 0;
    png_bytep exif = NULL;
    if (png_get_eXIf_1(d->png, d->info, &n_exif, &exif) && exif)
        info->exif_orientation = it_exif_orientation(exif, n_exif);
    if (info->exif_orientation >= 5) {
        int t = info->w;
        info->w = info->h;
        info->h = t;
    }
}

/* The setjmp lives in these helpers, whose caller owns the png_dec: that
 * keeps everything modified between setjmp and longjmp out of the frame
 * that calls setjmp (C11 7.13.2.1), so no volatile is needed. */
static it_status png_probe_run(it_err *err, png_dec *d, it_image_info *info)
{
    if (setjmp(png_jmpbuf(d->png))) return png_dec_fail(err, d);
    png_read_info(d->png, d->info);
    png_fill_info(d, info);
    return IT_OK;
}

it_status it_png_probe(it_err *err, it_image_info *info, const uint8_t *data, size_t n)
{
    png_dec d;
    IT_TRY(png_dec_begin(err, &d, data, n));
    IT_TRY(png_probe_run(err, &d, info));
    png_dec_free(&d);
    if (it_image_check_size(err, info->w, info->h) != IT_OK) return it_err_prefix(err, "PNG");
    return IT_OK;
}

/* Sets up the 8-bit transforms and allocates the image and row pointers. */
static it_status png_decode_setup(it_err *err, png_dec *d, const it_image_info *info)
{
    int ct = png_get_color_type(d->png, d->info);
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(d->png);
    if (ct == PNG_COLOR_TYPE_GRAY && info->bit_depth < 8) png_set_expand_gray_1_2_4_to_8(d->png);
    if (png_get_valid(d->png, d->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(d->png);
    if (info->bit_depth == 16) png_set_strip_16(d->png);
    png_set_interlace_handling(d->png);
    png_read_update_info(d->png, d->info);
    if ((int)png_get_channels(d->png, d->info) != info->channels ||
        png_get_rowbytes(d->png, d->info) != (size_t)info->w * info->channels)
        return it_err_set(err, IT_ERR_INTERNAL, "PNG: unexpected row layout after transforms");
    IT_TRY(it_image_alloc(err, &d->img, info->w, info->h, info->channels));
    d->rows = it_malloc(sizeof(png_bytep) * (size_t)info->h);
    if (!d->rows) return it_err_set(err, IT_ERR_NOMEM, "out of memory decoding PNG");
    for (int y = 0; y < info->h; y++)
        d->rows[y] = d->img.data + (size_t)y * info->w * info->channels;
    return IT_OK;
}

static it_status png_decode_run(it_err *err, png_dec *d, int *orientation)
{
    if (setjmp(png_jmpbuf(d->png))) return png_dec_fail(err, d);
    png_read_info(d->png, d->info);
    it_image_info info;
    png_fill_info(d, &info);
    *orientation = info.exif_orientation;
    if (info.exif_orientation >= 5) { /* back to the stored size */
        int t = info.w;
        info.w = info.h;
        info.h = t;
    }
    if (it_image_check_size(err, info.w, info.h) != IT_OK) {
        png_dec_free(d);
        return it_err_prefix(err, "PNG");
    }
    it_status s = png_decode_setup(err, d, &info);
    if (s != IT_OK) {
        png_dec_free(d);
        return s;
    }
    png_read_image(d->png, d->rows);
    /* The end (IEND, trailing chunks) is not read: a PNG whose pixels are
     * complete is usable even if trailing chunks are damaged. */
    return IT_OK;
}

/* Decodes to 8 bits: palettes and low depths expanded, tRNS turned into an
 * alpha channel, 16-bit samples reduced to their high byte (what Pillow does
 * for RGB/RGBA/LA;16 files; for 16-bit grey Pillow keeps "I;16" and would
 * clip on convert("L"), we take the high byte instead). */
it_status it_png_decode(it_err *err, it_image *out, const uint8_t *data, size_t n)
{
    memset(out, 0, sizeof *out);
    png_dec d;
    IT_TRY(png_dec_begin(err, &d, data, n));
    int orientation = 1;
    IT_TRY(png_decode_run(err, &d, &orientation));
    it_image img = d.img;
    memset(&d.img, 0, sizeof d.img);
    png_dec_free(&d);
    if (orientation == 1) {
        *out = img;
        return IT_OK;
    }
    it_status s = it_image_orient(err, out, &img, orientation);
    it_image_free(&img);
    return s;
}
