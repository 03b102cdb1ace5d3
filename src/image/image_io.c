/* image_io.c: format-neutral decoding, probing, loading and saving.
 *
 * Owns: format sniffing by magic bytes, dispatch to the per-format codecs in
 * codecs.h, file loading (size-capped) and atomic saving. Does not own the
 * codecs themselves or pixel conversions (convert.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "image/codecs.h"
#include "image/image.h"

/* Files larger than this are not images we accept (a 16384^2 PNG of noise
 * is about 1 GiB, far beyond any training image). */
#define IMAGE_MAX_FILE_BYTES (256u << 20)

it_image_format it_image_sniff(const uint8_t *data, size_t n)
{
    if (!data) return IT_IMG_UNKNOWN;
    if (n >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0) return IT_IMG_PNG;
    if (n >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return IT_IMG_JPEG;
    if (n >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0)
        return IT_IMG_WEBP;
    return IT_IMG_UNKNOWN;
}

const char *it_image_format_name(it_image_format f)
{
    switch (f) {
    case IT_IMG_PNG: return "png";
    case IT_IMG_JPEG: return "jpeg";
    case IT_IMG_WEBP: return "webp";
    default: return "unknown";
    }
}

static it_status unknown_format(it_err *err, const uint8_t *data, size_t n)
{
    if (n == 0) return it_err_set(err, IT_ERR_FORMAT, "empty image data (0 bytes)");
    return it_err_set(err, IT_ERR_FORMAT,
                      "unknown image format (first bytes %02x %02x %02x %02x; expected PNG, JPEG "
                      "or WebP)",
                      data[0], n > 1 ? data[1] : 0, n > 2 ? data[2] : 0, n > 3 ? data[3] : 0);
}

it_status it_image_decode(it_err *err, it_image *out, const uint8_t *data, size_t n)
{
    memset(out, 0, sizeof *out);
    switch (it_image_sniff(data, n)) {
    case IT_IMG_PNG: return it_png_decode(err, out, data, n);
    case IT_IMG_JPEG: return it_jpeg_decode(err, out, data, n);
    case IT_IMG_WEBP: return it_webp_decode(err, out, data, n);
    default: return unknown_format(err, data, n);
    }
}

it_status it_image_decode_limit(it_err *err, it_image *out, const uint8_t *data, size_t n,
                                long max_pixels)
{
    memset(out, 0, sizeof *out);
    it_image_info info;
    IT_TRY(it_image_probe(err, &info, data, n));
    if ((long long)info.w * info.h > max_pixels)
        return it_err_set(err, IT_ERR_RANGE, "%s image is %dx%d, more than the limit of %ld pixels",
                          it_image_format_name(info.format), info.w, info.h, max_pixels);
    return it_image_decode(err, out, data, n);
}

it_status it_image_probe(it_err *err, it_image_info *info, const uint8_t *data, size_t n)
{
    memset(info, 0, sizeof *info);
    switch (it_image_sniff(data, n)) {
    case IT_IMG_PNG: return it_png_probe(err, info, data, n);
    case IT_IMG_JPEG: return it_jpeg_probe(err, info, data, n);
    case IT_IMG_WEBP: return it_webp_probe(err, info, data, n);
    default: return unknown_format(err, data, n);
    }
}

/* Maps the file (no copy) and runs fn on its bytes; errors get the path. */
static it_status with_file(it_err *err, const char *path,
                           it_status (*fn)(it_err *, void *, const uint8_t *, size_t), void *arg)
{
    it_mmap m;
    IT_TRY(it_mmap_open(err, &m, path));
    it_status s;
    if (m.size > IMAGE_MAX_FILE_BYTES)
        s = it_err_set(err, IT_ERR_RANGE, "file is %zu bytes, more than the %u-byte image limit",
                       m.size, IMAGE_MAX_FILE_BYTES);
    else
        s = fn(err, arg, m.data, m.size);
    it_mmap_close(&m);
    if (s != IT_OK) it_err_prefix(err, "%s", path);
    return s;
}

static it_status decode_cb(it_err *err, void *arg, const uint8_t *d, size_t n)
{
    return it_image_decode(err, arg, d, n);
}

static it_status probe_cb(it_err *err, void *arg, const uint8_t *d, size_t n)
{
    return it_image_probe(err, arg, d, n);
}

it_status it_image_load(it_err *err, it_image *out, const char *path)
{
    memset(out, 0, sizeof *out);
    return with_file(err, path, decode_cb, out);
}

it_status it_image_info_file(it_err *err, it_image_info *info, const char *path)
{
    memset(info, 0, sizeof *info);
    return with_file(err, path, probe_cb, info);
}

it_status it_image_save_png(it_err *err, const it_image *img, const char *path)
{
    it_atomic_file f;
    IT_TRY(it_atomic_open(err, &f, path));
    it_status s = it_png_write(err, f.fp, img, path);
    if (s != IT_OK) {
        it_atomic_abort(&f);
        return s;
    }
    return it_atomic_commit(err, &f);
}

it_status it_image_save_jpeg(it_err *err, const it_image *img, const char *path, int quality)
{
    if (img->c != 1 && img->c != 3)
        return it_err_set(err, IT_ERR_ARG,
                          "%s: JPEG needs a grey or RGB image (got %d channels; convert first)",
                          path, img->c);
    it_atomic_file f;
    IT_TRY(it_atomic_open(err, &f, path));
    it_status s = it_jpeg_write(err, f.fp, img, quality, path);
    if (s != IT_OK) {
        it_atomic_abort(&f);
        return s;
    }
    return it_atomic_commit(err, &f);
}

/* Encodes through a memory stream and copies into an it_malloc buffer, so
 * that callers free with it_free like everything else. */
static it_status encode_mem(it_err *err, uint8_t **out, size_t *n, const it_image *img,
                            int quality, int jpeg)
{
    *out = NULL;
    *n = 0;
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    if (!fp) return it_err_set(err, IT_ERR_NOMEM, "out of memory for an encode buffer");
    it_status s = jpeg ? it_jpeg_write(err, fp, img, quality, "(memory)")
                       : it_png_write(err, fp, img, "(memory)");
    if (fclose(fp) != 0 && s == IT_OK)
        s = it_err_set(err, IT_ERR_NOMEM, "out of memory for an encode buffer");
    if (s == IT_OK) {
        *out = it_malloc(len ? len : 1);
        if (!*out) s = it_err_set(err, IT_ERR_NOMEM, "out of memory for a %zu-byte image", len);
        else memcpy(*out, buf, len), *n = len;
    }
    free(buf);
    return s;
}

it_status it_image_encode_png(it_err *err, uint8_t **out, size_t *n, const it_image *img)
{
    return encode_mem(err, out, n, img, 0, 0);
}

it_status it_image_encode_jpeg(it_err *err, uint8_t **out, size_t *n, const it_image *img,
                               int quality)
{
    return encode_mem(err, out, n, img, quality, 1);
}
