/* codecs.h: per-format decoders and encoders behind image.h.
 *
 * Owns: the entry points of each format (PNG via libpng, JPEG via
 * libjpeg-turbo, WebP via libwebp) so that fuzzers and tests can reach one
 * format directly. The format-neutral API (sniff, decode, load, convert) is
 * in image.h; callers normally use that. Every decoder checks the header size
 * against it_image_check_size before allocating pixels, turns the library's
 * longjmp/error callbacks into IT_ERR_FORMAT with the library's message, and
 * releases everything on every path. */
#ifndef IT_CODECS_H
#define IT_CODECS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "image/image.h"

it_status it_png_decode(it_err *err, it_image *out, const uint8_t *data, size_t n);
it_status it_png_probe(it_err *err, it_image_info *info, const uint8_t *data, size_t n);
/* Writes img (1-4 channels, 8-bit) as PNG to fp; path is for messages. */
it_status it_png_write(it_err *err, FILE *fp, const it_image *img, const char *path);

it_status it_jpeg_decode(it_err *err, it_image *out, const uint8_t *data, size_t n);
it_status it_jpeg_probe(it_err *err, it_image_info *info, const uint8_t *data, size_t n);
/* Writes 1 or 3 channels (2/4 are rejected: JPEG has no alpha). */
it_status it_jpeg_write(it_err *err, FILE *fp, const it_image *img, int quality, const char *path);

it_status it_webp_decode(it_err *err, it_image *out, const uint8_t *data, size_t n);
it_status it_webp_probe(it_err *err, it_image_info *info, const uint8_t *data, size_t n);

#endif
