/* resize.h: resampling of 8-bit images and float planes.
 *
 * Owns: the separable convolution resize with Pillow's filters and rounding
 * (bilinear, bicubic a=-0.5, Lanczos a=3, box; nearest as Pillow's affine
 * nearest), antialiased when downscaling (the filter support grows with the
 * scale factor). Results match Pillow's Image.resize within 1/255 (see
 * docs/IMAGE.md for the measured parity). Does not own crop/pad (geom.h).
 *
 * Images with alpha (2 or 4 channels) are resized premultiplied, as Pillow
 * does (RGBA -> RGBa -> resize -> RGBA), except with nearest. */
#ifndef IT_RESIZE_H
#define IT_RESIZE_H

#include "image/image.h"

typedef enum it_resample {
    IT_RESAMPLE_NEAREST = 0,
    IT_RESAMPLE_BOX,
    IT_RESAMPLE_BILINEAR,
    IT_RESAMPLE_BICUBIC,
    IT_RESAMPLE_LANCZOS,
} it_resample;

/* "nearest", "box", "bilinear", "bicubic", "lanczos"; -1 if unknown. */
int it_resample_parse(const char *name);
const char *it_resample_name(it_resample f);

/* Resizes `in` to w x h. */
it_status it_image_resize(it_err *err, it_image *out, const it_image *in, int w, int h,
                          it_resample filter);

/* Resizes the region box = {x0, y0, x1, y1} of `in` (fractional pixel
 * coordinates within the image, x0 < x1, y0 < y1) to w x h, like Pillow's
 * resize(size, filter, box). box NULL means the whole image. */
it_status it_image_resize_box(it_err *err, it_image *out, const it_image *in, int w, int h,
                              it_resample filter, const float box[4]);

/* Float version for model preprocessing: in is (ih, iw, c) interleaved,
 * out is (oh, ow, c), caller-allocated. Same coefficients as the 8-bit
 * path, accumulated in double without rounding or clamping (Pillow's mode
 * "F"); nearest is not offered here. */
it_status it_resize_f32(it_err *err, float *out, int ow, int oh, const float *in, int iw, int ih,
                        int c, it_resample filter);

#endif
