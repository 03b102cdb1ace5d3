/* convert.c: channel conversions between grey, grey+alpha, RGB and RGBA.
 *
 * Owns: it_image_convert. Rules (per pixel, all integer, documented in
 * docs/IMAGE.md):
 *  - grey is replicated to R=G=B when colour is needed;
 *  - colour to grey uses Pillow's convert("L") weights, ITU-R 601-2 luma in
 *    16-bit fixed point: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16;
 *  - alpha dropped (target has none, source has some) is composited over
 *    bg first, like pasting the image with its alpha as mask onto a solid
 *    background in Pillow: out = round((src * a + bg * (255 - a)) / 255),
 *    exact rounding (Pillow's DIV255); then grey conversion if needed;
 *  - alpha added is 255; alpha kept is copied.
 * bg NULL means white. */
#include <string.h>

#include "image/image.h"

static inline uint8_t div255(unsigned v)
{
    v += 128;
    return (uint8_t)((v + (v >> 8)) >> 8);
}

static inline uint8_t luma(unsigned r, unsigned g, unsigned b)
{
    return (uint8_t)((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

static void convert_px(uint8_t *o, int oc, const uint8_t *p, int ic, const uint8_t bg[3])
{
    unsigned r, g, b, a;
    if (ic <= 2) r = g = b = p[0];
    else r = p[0], g = p[1], b = p[2];
    a = ic == 2 ? p[1] : ic == 4 ? p[3] : 255;
    int out_alpha = oc == 2 || oc == 4;
    if (!out_alpha && a != 255) {
        r = div255(r * a + bg[0] * (255 - a));
        g = div255(g * a + bg[1] * (255 - a));
        b = div255(b * a + bg[2] * (255 - a));
    }
    if (oc <= 2) {
        /* Grey sources stay exact (luma of r=g=b is r). */
        o[0] = ic <= 2 && (out_alpha || a == 255) ? (uint8_t)r : luma(r, g, b);
        if (oc == 2) o[1] = (uint8_t)a;
    } else {
        o[0] = (uint8_t)r;
        o[1] = (uint8_t)g;
        o[2] = (uint8_t)b;
        if (oc == 4) o[3] = (uint8_t)a;
    }
}

it_status it_image_convert(it_err *err, it_image *out, const it_image *in, int c,
                           const uint8_t bg[3])
{
    memset(out, 0, sizeof *out);
    if (in->c < 1 || in->c > 4 || !in->data)
        return it_err_set(err, IT_ERR_ARG, "convert: input has %d channels", in->c);
    if (c < 1 || c > 4)
        return it_err_set(err, IT_ERR_ARG, "convert: cannot convert to %d channels", c);
    static const uint8_t white[3] = {255, 255, 255};
    if (!bg) bg = white;
    IT_TRY(it_image_alloc(err, out, in->w, in->h, c));
    size_t n = (size_t)in->w * in->h;
    if (c == in->c) {
        memcpy(out->data, in->data, n * c);
        return IT_OK;
    }
    for (size_t i = 0; i < n; i++) convert_px(out->data + i * c, c, in->data + i * in->c, in->c, bg);
    return IT_OK;
}
