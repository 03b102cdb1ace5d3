/* draw.c: rectangles, masks and colour blends (see draw.h). */
#include "image/draw.h"

#include <string.h>

static inline uint8_t div255(unsigned v)
{
    v += 128;
    return (uint8_t)((v + (v >> 8)) >> 8);
}

/* Clips box to w x h; returns 0 when nothing is left. */
static int clip_box(it_box *b, int w, int h)
{
    if (b->x0 < 0) b->x0 = 0;
    if (b->y0 < 0) b->y0 = 0;
    if (b->x1 > w) b->x1 = w;
    if (b->y1 > h) b->y1 = h;
    return b->x0 < b->x1 && b->y0 < b->y1;
}

void it_draw_fill_rect(it_image *img, it_box box, const uint8_t *color)
{
    if (!clip_box(&box, img->w, img->h)) return;
    int c = img->c;
    for (int y = box.y0; y < box.y1; y++) {
        uint8_t *p = img->data + ((size_t)y * img->w + box.x0) * c;
        for (int x = box.x0; x < box.x1; x++, p += c) memcpy(p, color, (size_t)c);
    }
}

void it_draw_rect(it_image *img, it_box b, int thickness, const uint8_t *color)
{
    if (thickness <= 0 || b.x0 >= b.x1 || b.y0 >= b.y1) return;
    /* Wider than half the box: the outline is the whole box. */
    int t = thickness;
    if (2 * t >= b.x1 - b.x0 || 2 * t >= b.y1 - b.y0) {
        it_draw_fill_rect(img, b, color);
        return;
    }
    it_draw_fill_rect(img, (it_box){b.x0, b.y0, b.x1, b.y0 + t}, color);      /* top */
    it_draw_fill_rect(img, (it_box){b.x0, b.y1 - t, b.x1, b.y1}, color);      /* bottom */
    it_draw_fill_rect(img, (it_box){b.x0, b.y0 + t, b.x0 + t, b.y1 - t}, color); /* left */
    it_draw_fill_rect(img, (it_box){b.x1 - t, b.y0 + t, b.x1, b.y1 - t}, color); /* right */
}

it_status it_mask_from_box(it_err *err, it_image *mask, int w, int h, it_box box, uint8_t value)
{
    IT_TRY(it_image_alloc(err, mask, w, h, 1));
    memset(mask->data, 0, (size_t)w * h);
    it_draw_fill_rect(mask, box, &value);
    return IT_OK;
}

int it_mask_bbox(const it_image *mask, uint8_t threshold, it_box *out)
{
    int x0 = mask->w, y0 = mask->h, x1 = -1, y1 = -1;
    for (int y = 0; y < mask->h; y++) {
        const uint8_t *row = mask->data + (size_t)y * mask->w * mask->c;
        for (int x = 0; x < mask->w; x++) {
            if (row[(size_t)x * mask->c] <= threshold) continue;
            if (x < x0) x0 = x;
            if (x > x1) x1 = x;
            if (y < y0) y0 = y;
            y1 = y;
        }
    }
    if (x1 < 0) {
        *out = (it_box){0, 0, 0, 0};
        return 0;
    }
    *out = (it_box){x0, y0, x1 + 1, y1 + 1};
    return 1;
}

it_status it_image_blend_mask(it_err *err, it_image *img, const it_image *mask,
                              const uint8_t *color, uint8_t opacity)
{
    if (mask->c != 1 || mask->w != img->w || mask->h != img->h)
        return it_err_set(err, IT_ERR_ARG, "blend: mask is %dx%dx%d, expected %dx%dx1", mask->w,
                          mask->h, mask->c, img->w, img->h);
    int c = img->c;
    size_t n = (size_t)img->w * img->h;
    for (size_t i = 0; i < n; i++) {
        unsigned m = div255((unsigned)mask->data[i] * opacity);
        if (m == 0) continue;
        uint8_t *p = img->data + i * c;
        for (int k = 0; k < c; k++) p[k] = div255(p[k] * (255u - m) + color[k] * m);
    }
    return IT_OK;
}
