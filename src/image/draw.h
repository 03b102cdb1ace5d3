/* draw.h: rectangles, masks and colour blends on it_image.
 *
 * Owns: drawing box outlines (e.g. detection boxes in a label colour), filled
 * rectangles, 1-channel masks (from a box, filled, bounding box) and blending
 * a colour through a mask. Boxes are it_box (geom.h): half-open
 * [x0, x1) x [y0, y1), clipped to the image; an empty or fully outside box
 * draws nothing. Colours have img->c bytes. Masks are 1-channel images whose
 * value 0..255 is the blend weight. Does not own geometry (geom.h). */
#ifndef IT_DRAW_H
#define IT_DRAW_H

#include <stdint.h>

#include "image/geom.h"
#include "image/image.h"

/* Outline of box, `thickness` pixels drawn inwards (like Pillow's
 * ImageDraw.rectangle(..., width=thickness) with xy = (x0, y0, x1-1, y1-1)). */
void it_draw_rect(it_image *img, it_box box, int thickness, const uint8_t *color);
void it_draw_fill_rect(it_image *img, it_box box, const uint8_t *color);

/* A w x h mask that is `value` inside box and 0 elsewhere. */
it_status it_mask_from_box(it_err *err, it_image *mask, int w, int h, it_box box, uint8_t value);

/* Smallest box holding every mask pixel > threshold (threshold 0 is
 * Pillow's getbbox()); returns 0 and an empty box when there is none. */
int it_mask_bbox(const it_image *mask, uint8_t threshold, it_box *out);

/* img = img * (1 - m) + color * m with m = mask * opacity / 255^2, exact
 * rounding per step (Pillow's DIV255). mask must be 1 channel, img's size. */
it_status it_image_blend_mask(it_err *err, it_image *img, const it_image *mask,
                              const uint8_t *color, uint8_t opacity);

#endif
