/* jpeg_codec.c: JPEG decoding and encoding with libjpeg-turbo.
 *
 * Owns: the libjpeg glue, CMYK handling and EXIF orientation for JPEG.
 * libjpeg reports fatal errors through error_exit, which must not return: we
 * longjmp back, copy libjpeg's formatted message into IT_ERR_FORMAT and
 * destroy the codec object (which releases all of libjpeg's pools). The
 * setjmp sits in helpers whose caller owns every object touched after it,
 * so nothing in the setjmp frame changes between setjmp and longjmp.
 *
 * Policy on damaged input: libjpeg only warns about a truncated stream
 * (JWRN_JPEG_EOF) and pads with grey; we treat that warning as an error, as
 * Pillow does ("image file is truncated"). Other warnings (extraneous bytes
 * before a marker, ...) are tolerated like in Pillow. A progressive file may
 * hold many scans; more than JPEG_MAX_SCANS is refused so that a small file
 * cannot make us spin (the same guard libjpeg-turbo's tjbench uses). */
#include <stdio.h>
#include <jpeglib.h>
#include <jerror.h>
#include <setjmp.h>
#include <string.h>

#include "base/mem.h"
#include "image/codecs.h"
#include "image/exif.h"
#include "image/geom.h"

#define JPEG_MAX_SCANS 500
/* libjpeg's own working memory (coefficient buffers of progressive files). */
#define JPEG_MAX_MEMORY (1024L << 20)

typedef struct jpeg_err_ctx {
    struct jpeg_error_mgr pub;  /* first: libjpeg casts cinfo->err to this */
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err_ctx;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_err_ctx *e = (jpeg_err_ctx *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

/* Level -1 is a warning; the truncation warning becomes fatal (see top). */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        jpeg_err_ctx *e = (jpeg_err_ctx *)cinfo->err;
        snprintf(e->msg, sizeof e->msg, "file is truncated");
        longjmp(e->jump, 1);
    }
}

static void jpeg_on_output(j_common_ptr cinfo) { (void)cinfo; }

static void jpeg_on_progress(j_common_ptr cinfo)
{
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->progressive_mode && d->input_scan_number > JPEG_MAX_SCANS) {
        jpeg_err_ctx *e = (jpeg_err_ctx *)cinfo->err;
        snprintf(e->msg, sizeof e->msg, "more than %d progressive scans", JPEG_MAX_SCANS);
        longjmp(e->jump, 1);
    }
}

static void jpeg_err_init(jpeg_err_ctx *e)
{
    memset(e, 0, sizeof *e);
    jpeg_std_error(&e->pub);
    e->pub.error_exit = jpeg_on_error;
    e->pub.emit_message = jpeg_on_message;
    e->pub.output_message = jpeg_on_output;
}

/* ---- decoding ----------------------------------------------------------- */

typedef struct jpeg_dec {
    struct jpeg_decompress_struct cinfo;
    jpeg_err_ctx jerr;
    struct jpeg_progress_mgr progress;
    int created;
    it_image img;          /* as decoded, before orientation */
    int orientation;
} jpeg_dec;

static void jpeg_dec_free(jpeg_dec *d)
{
    if (d->created) jpeg_destroy_decompress(&d->cinfo);
    d->created = 0;
    it_image_free(&d->img);
}

static const char *jpeg_mode_name(J_COLOR_SPACE cs)
{
    switch (cs) {
    case JCS_GRAYSCALE: return "L";
    case JCS_CMYK:
    case JCS_YCCK: return "CMYK";
    default: return "RGB";
    }
}

/* Reads the header and the saved APP1 markers; returns at the jump on error. */
static void jpeg_read_head(jpeg_dec *d, const uint8_t *data, size_t n)
{
    jpeg_create_decompress(&d->cinfo);
    d->created = 1;
    d->cinfo.mem->max_memory_to_use = JPEG_MAX_MEMORY;
    d->progress.progress_monitor = jpeg_on_progress;
    d->cinfo.progress = &d->progress;
    jpeg_mem_src(&d->cinfo, data, (unsigned long)n);
    jpeg_save_markers(&d->cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&d->cinfo, TRUE);
    d->orientation = 1;
    for (jpeg_saved_marker_ptr m = d->cinfo.marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 &&
            memcmp(m->data, "Exif\0\0", 6) == 0) {
            d->orientation = it_exif_orientation(m->data, m->data_length);
            break;
        }
    }
}

static it_status jpeg_fail(it_err *err, jpeg_dec *d)
{
    jpeg_dec_free(d);
    return it_err_set(err, IT_ERR_FORMAT, "JPEG: %s", d->jerr.msg);
}

static void jpeg_fill_info(const jpeg_dec *d, it_image_info *info)
{
    memset(info, 0, sizeof *info);
    info->format = IT_IMG_JPEG;
    info->w = (int)d->cinfo.image_width;
    info->h = (int)d->cinfo.image_height;
    info->bit_depth = d->cinfo.data_precision;
    snprintf(info->mode, sizeof info->mode, "%s", jpeg_mode_name(d->cinfo.jpeg_color_space));
    info->channels = d->cinfo.jpeg_color_space == JCS_GRAYSCALE ? 1 : 3;
    info->exif_orientation = d->orientation;
    /* Sizes as displayed: orientations 5-8 swap width and height. */
    if (d->orientation >= 5) {
        info->w = (int)d->cinfo.image_height;
        info->h = (int)d->cinfo.image_width;
    }
}

static it_status jpeg_probe_run(it_err *err, jpeg_dec *d, it_image_info *info, const uint8_t *data,
                                size_t n)
{
    if (setjmp(d->jerr.jump)) return jpeg_fail(err, d);
    jpeg_read_head(d, data, n);
    jpeg_fill_info(d, info);
    return IT_OK;
}

it_status it_jpeg_probe(it_err *err, it_image_info *info, const uint8_t *data, size_t n)
{
    jpeg_dec d;
    memset(&d, 0, sizeof d);
    jpeg_err_init(&d.jerr);
    d.cinfo.err = &d.jerr.pub;
    IT_TRY(jpeg_probe_run(err, &d, info, data, n));
    jpeg_dec_free(&d);
    if (it_image_check_size(err, info->w, info->h) != IT_OK) return it_err_prefix(err, "JPEG");
    return IT_OK;
}

/* Adobe CMYK as Pillow reads it ("CMYK;I": inverted), then Pillow's
 * cmyk2rgb: out = (255 - k') - (c' * (255 - k') / 255), exact rounding,
 * where c' = 255 - stored. In place: 4 bytes in, 3 bytes out per pixel. */
static void cmyk_row_to_rgb(uint8_t *row, int w)
{
    for (int x = 0; x < w; x++) {
        const uint8_t *p = row + 4 * x;
        unsigned nk = p[3]; /* 255 - k' == stored k */
        uint8_t rgb[3];
        for (int k = 0; k < 3; k++) {
            unsigned v = (255u - p[k]) * nk + 128;
            int o = (int)nk - (int)((v + (v >> 8)) >> 8);
            rgb[k] = (uint8_t)(o < 0 ? 0 : o);
        }
        memcpy(row + 3 * x, rgb, 3);
    }
}

static it_status jpeg_decode_run(it_err *err, jpeg_dec *d, const uint8_t *data, size_t n)
{
    if (setjmp(d->jerr.jump)) return jpeg_fail(err, d);
    jpeg_read_head(d, data, n);
    struct jpeg_decompress_struct *ci = &d->cinfo;
    if (it_image_check_size(err, (long)ci->image_width, (long)ci->image_height) != IT_OK) {
        jpeg_dec_free(d);
        return it_err_prefix(err, "JPEG");
    }
    int cmyk = ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK;
    ci->out_color_space = ci->jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE
                          : cmyk                                ? JCS_CMYK
                                                                : JCS_RGB;
    /* The islow IDCT and fancy upsampling are libjpeg's defaults and what
     * Pillow uses, so our pixels match Pillow's when the libjpeg versions do. */
    ci->dct_method = JDCT_ISLOW;
    jpeg_start_decompress(ci);
    int oc = ci->out_color_components;
    if (oc != 1 && oc != 3 && oc != 4) {
        snprintf(d->jerr.msg, sizeof d->jerr.msg, "unexpected %d output components", oc);
        return jpeg_fail(err, d);
    }
    /* CMYK rows need 4 bytes per pixel before conversion: allocate 4 and
     * shrink the channel count to 3 afterwards (the buffer is big enough). */
    it_status s = it_image_alloc(err, &d->img, (int)ci->output_width, (int)ci->output_height, oc);
    if (s != IT_OK) {
        jpeg_dec_free(d);
        return s;
    }
    size_t stride = (size_t)d->img.w * oc;
    while (ci->output_scanline < ci->output_height) {
        JSAMPROW row = d->img.data + (size_t)ci->output_scanline * stride;
        jpeg_read_scanlines(ci, &row, 1);
    }
    /* jpeg_finish_decompress is skipped: it would read (and may fail on)
     * whatever follows the last scan, and the pixels are complete. */
    if (cmyk) {
        for (int y = 0; y < d->img.h; y++)
            cmyk_row_to_rgb(d->img.data + (size_t)y * stride, d->img.w);
        /* Compact rows from stride 4w to 3w (each row moves left). */
        for (int y = 1; y < d->img.h; y++)
            memmove(d->img.data + (size_t)y * d->img.w * 3, d->img.data + (size_t)y * stride,
                    (size_t)d->img.w * 3);
        d->img.c = 3;
    }
    return IT_OK;
}

it_status it_jpeg_decode(it_err *err, it_image *out, const uint8_t *data, size_t n)
{
    memset(out, 0, sizeof *out);
    jpeg_dec d;
    memset(&d, 0, sizeof d);
    jpeg_err_init(&d.jerr);
    d.cinfo.err = &d.jerr.pub;
    IT_TRY(jpeg_decode_run(err, &d, data, n));
    jpeg_destroy_decompress(&d.cinfo);
    d.created = 0;
    it_status s = IT_OK;
    if (d.orientation != 1) {
        s = it_image_orient(err, out, &d.img, d.orientation);
        it_image_free(&d.img);
    } else {
        *out = d.img;
        memset(&d.img, 0, sizeof d.img);
    }
    return s;
}

/* ---- encoding ----------------------------------------------------------- */

typedef struct jpeg_enc {
    struct jpeg_compress_struct cinfo;
    jpeg_err_ctx jerr;
} jpeg_enc;

static it_status jpeg_write_run(it_err *err, jpeg_enc *e, FILE *fp, const it_image *img,
                                int quality, const char *path)
{
    if (setjmp(e->jerr.jump)) {
        jpeg_destroy_compress(&e->cinfo);
        return it_err_set(err, IT_ERR_IO, "%s: JPEG write: %s", path, e->jerr.msg);
    }
    jpeg_create_compress(&e->cinfo);
    jpeg_stdio_dest(&e->cinfo, fp);
    e->cinfo.image_width = (JDIMENSION)img->w;
    e->cinfo.image_height = (JDIMENSION)img->h;
    e->cinfo.input_components = img->c;
    e->cinfo.in_color_space = img->c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&e->cinfo);
    jpeg_set_quality(&e->cinfo, quality, TRUE);
    /* 4:2:0 chroma subsampling (libjpeg's and Pillow's default). */
    jpeg_start_compress(&e->cinfo, TRUE);
    size_t stride = (size_t)img->w * img->c;
    while (e->cinfo.next_scanline < e->cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(img->data + (size_t)e->cinfo.next_scanline * stride);
        jpeg_write_scanlines(&e->cinfo, &row, 1);
    }
    jpeg_finish_compress(&e->cinfo);
    jpeg_destroy_compress(&e->cinfo);
    return IT_OK;
}

it_status it_jpeg_write(it_err *err, FILE *fp, const it_image *img, int quality, const char *path)
{
    if (!img->data || img->w <= 0 || img->h <= 0 || (img->c != 1 && img->c != 3))
        return it_err_set(err, IT_ERR_ARG,
                          "%s: JPEG needs a grey or RGB image (got %d channels; convert first)",
                          path, img->c);
    if (quality < 1 || quality > 100)
        return it_err_set(err, IT_ERR_ARG, "%s: JPEG quality %d is not 1-100", path, quality);
    jpeg_enc e;
    memset(&e, 0, sizeof e);
    jpeg_err_init(&e.jerr);
    e.cinfo.err = &e.jerr.pub;
    return jpeg_write_run(err, &e, fp, img, quality, path);
}
