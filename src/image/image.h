/* image.h: 8-bit images in memory, and the interface to decode/encode them.
 *
 * Owns: the it_image type (interleaved 8-bit, 1-4 channels, row-major, tightly
 * packed) and its lifetime. Decoding, encoding, resizing and drawing live in
 * sibling modules (image_io, resize, draw) declared here or in their headers.
 * Pixel data is allocated through it_malloc and freed with it_image_free. */
#ifndef IT_IMAGE_H
#define IT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

/* Limits checked before any pixel allocation, so that a tiny file claiming a
 * giant size is rejected cheaply: each side at most IT_IMAGE_MAX_DIM and the
 * area at most IT_IMAGE_MAX_PIXELS (2^27 = 134M pixels, 512 MiB as RGBA;
 * Pillow refuses above about 179M by default). */
#define IT_IMAGE_MAX_DIM 16384
#define IT_IMAGE_MAX_PIXELS (1L << 27)

typedef struct it_image {
    int w, h;
    int c;          /* channels: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA */
    uint8_t *data;  /* (h, w, c) */
} it_image;

typedef enum it_image_format {
    IT_IMG_UNKNOWN = 0,
    IT_IMG_PNG,
    IT_IMG_JPEG,
    IT_IMG_WEBP,
} it_image_format;

/* Header-only facts about an image file, for `inspect` and validation. */
typedef struct it_image_info {
    it_image_format format;
    int w, h;
    int channels;        /* as decoded by it_image_load without conversion */
    int bit_depth;       /* 8 or 16 in the file */
    char mode[8];        /* Pillow-style mode name of the file: "RGB", "RGBA", "L", "LA", "P", "I;16" */
    int exif_orientation;/* 1..8, 1 when absent */
} it_image_info;

/* Allocates w*h*c bytes (uninitialised) after checking the limits above;
 * IT_ERR_RANGE for bad sizes, IT_ERR_NOMEM. img is zeroed on failure. */
it_status it_image_alloc(it_err *err, it_image *img, int w, int h, int c);
/* Frees the pixels and zeroes the struct; safe on a zeroed image. */
void it_image_free(it_image *img);
/* IT_OK when w, h are within the limits (used by decoders on header sizes). */
it_status it_image_check_size(it_err *err, long w, long h);

it_image_format it_image_sniff(const uint8_t *data, size_t n);
const char *it_image_format_name(it_image_format f);

/* Decoders take bytes so that the fuzzers and HTTP uploads share them.
 * 16-bit samples are reduced to 8 bits; palettes expanded; JPEG EXIF
 * orientation applied. */
it_status it_image_decode(it_err *err, it_image *out, const uint8_t *data, size_t n);
it_status it_image_probe(it_err *err, it_image_info *info, const uint8_t *data, size_t n);
/* Decode with a tighter pixel budget (e.g. for uploads): the header is
 * probed first and images above max_pixels are refused with IT_ERR_RANGE
 * before any pixel work. A JPEG of a few hundred bytes may legally declare
 * 100M pixels, which libjpeg then fills in seconds. */
it_status it_image_decode_limit(it_err *err, it_image *out, const uint8_t *data, size_t n,
                                long max_pixels);
it_status it_image_load(it_err *err, it_image *out, const char *path);
it_status it_image_info_file(it_err *err, it_image_info *info, const char *path);

/* Encoders write atomically. quality is for JPEG (1-100). */
it_status it_image_save_png(it_err *err, const it_image *img, const char *path);
it_status it_image_save_jpeg(it_err *err, const it_image *img, const char *path, int quality);

/* The same encoders into memory (e.g. for HTTP responses): *out is
 * allocated with it_malloc, *n its size. */
it_status it_image_encode_png(it_err *err, uint8_t **out, size_t *n, const it_image *img);
it_status it_image_encode_jpeg(it_err *err, uint8_t **out, size_t *n, const it_image *img,
                               int quality);

/* Converts to c channels (1 or 3 or 4); alpha is composited over bg (RGB). */
it_status it_image_convert(it_err *err, it_image *out, const it_image *in, int c,
                           const uint8_t bg[3]);

#endif
