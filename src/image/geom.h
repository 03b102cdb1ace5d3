/* geom.h: geometric transforms of it_image: orientation, flips, crop, pad,
 * paste.
 *
 * Owns: pixel moves that do not resample (every output pixel is a copy of an
 * input pixel, a fill colour, or a mask blend for paste). Does not own
 * resampling (resize.h) or drawing/masks (draw.h). Functions that make a new
 * image take `it_image *out` (allocated here, freed by the caller); in-place
 * ones cannot fail. */
#ifndef IT_GEOM_H
#define IT_GEOM_H

#include <stdint.h>

#include "image/image.h"

/* A rectangle [x0, x1) x [y0, y1) in pixel coordinates. */
typedef struct it_box {
    int x0, y0, x1, y1;
} it_box;

void it_image_flip_h(it_image *img);   /* mirror left-right, in place */
void it_image_flip_v(it_image *img);   /* mirror top-bottom, in place */

/* Applies an EXIF orientation (1..8) so that the result is upright, with the
 * same transforms as Pillow's ImageOps.exif_transpose:
 *   2 flip left-right, 3 rotate 180, 4 flip top-bottom, 5 transpose,
 *   6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise.
 * Orientation 1 (or anything outside 2..8) copies. */
it_status it_image_orient(it_err *err, it_image *out, const it_image *in, int orientation);

/* Crops the w x h region whose top-left corner is (x, y) in `in`. The region
 * may extend past the image (or lie wholly outside it): those pixels are
 * `fill` (in->c bytes), or zero when fill is NULL. */
it_status it_image_crop(it_err *err, it_image *out, const it_image *in, int x, int y, int w, int h,
                        const uint8_t *fill);

/* Adds borders (each >= 0) filled with `fill` (or zero). */
it_status it_image_pad(it_err *err, it_image *out, const it_image *in, int left, int top,
                       int right, int bottom, const uint8_t *fill);

/* Pastes src onto dst with its top-left corner at (x, y), clipped to dst.
 * Channel counts must match. With a mask (1 channel, src's size) each pixel
 * is blended like Pillow's Image.paste(im, box, mask):
 *   out = (dst * (255 - m) + src * m + 128 + ((... + 128) >> 8)) >> 8,
 * i.e. the exact rounded division by 255. */
it_status it_image_paste(it_err *err, it_image *dst, const it_image *src, int x, int y,
                         const it_image *mask);

/* Gaussian blur of packed RGB8 pixels (w x h x 3) in place. */
it_status it_rgb8_blur(it_err *err, uint8_t *p, int w, int h, float sigma);

#endif
