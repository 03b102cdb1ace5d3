/* geom.c: orientation, flips, crop, pad and paste (see geom.h). */
#include "image/geom.h"

#include <math.h>
#include <string.h>

#include "base/mem.h"

/* Exact round(v / 255) for v in [0, 255*255], as Pillow's DIV255. */
static inline uint8_t div255(unsigned v)
{
    v += 128;
    return (uint8_t)((v + (v >> 8)) >> 8);
}

void it_image_flip_h(it_image *img)
{
    int c = img->c;
    for (int y = 0; y < img->h; y++) {
        uint8_t *row = img->data + (size_t)y * img->w * c;
        for (int a = 0, b = img->w - 1; a < b; a++, b--) {
            for (int k = 0; k < c; k++) {
                uint8_t t = row[a * c + k];
                row[a * c + k] = row[b * c + k];
                row[b * c + k] = t;
            }
        }
    }
}

void it_image_flip_v(it_image *img)
{
    size_t stride = (size_t)img->w * img->c;
    for (int a = 0, b = img->h - 1; a < b; a++, b--) {
        uint8_t *ra = img->data + a * stride, *rb = img->data + b * stride;
        for (size_t i = 0; i < stride; i++) {
            uint8_t t = ra[i];
            ra[i] = rb[i];
            rb[i] = t;
        }
    }
}

static inline void copy_px(uint8_t *d, const uint8_t *s, int c)
{
    switch (c) {
    case 4: d[3] = s[3]; /* fall through */
    case 3: d[2] = s[2]; /* fall through */
    case 2: d[1] = s[1]; /* fall through */
    default: d[0] = s[0];
    }
}

/* Orientations 2-4 keep rows as rows: whole-row copies, reversed for 2, 3. */
static void orient_rows(it_image *out, const it_image *in, int o)
{
    int w = in->w, h = in->h, c = in->c;
    size_t stride = (size_t)w * c;
    for (int y = 0; y < h; y++) {
        int sy = o == 2 ? y : h - 1 - y;
        const uint8_t *src = in->data + (size_t)sy * stride;
        uint8_t *dst = out->data + (size_t)y * stride;
        if (o == 4) {
            memcpy(dst, src, stride);
            continue;
        }
        for (int x = 0; x < w; x++) copy_px(dst + (size_t)x * c, src + (size_t)(w - 1 - x) * c, c);
    }
}

/* Orientations 5-8 transpose: output (x, y) reads input column sx(y) at row
 * sy(x). Done in 64x64 tiles so that reads and writes both stay in cache
 * (a naive column walk is ~10x slower on large images). */
#define ORIENT_TILE 64
static inline void orient_transpose_c(it_image *out, const it_image *in, int o, int c)
{
    int ow = out->w, oh = out->h;
    int flip_sx = o == 7 || o == 8;  /* sx = oh - 1 - y instead of y */
    int flip_sy = o == 6 || o == 7;  /* sy = ow - 1 - x instead of x */
    for (int by = 0; by < oh; by += ORIENT_TILE) {
        int ey = by + ORIENT_TILE < oh ? by + ORIENT_TILE : oh;
        for (int bx = 0; bx < ow; bx += ORIENT_TILE) {
            int ex = bx + ORIENT_TILE < ow ? bx + ORIENT_TILE : ow;
            for (int y = by; y < ey; y++) {
                int sx = flip_sx ? oh - 1 - y : y;
                uint8_t *dst = out->data + ((size_t)y * ow + bx) * c;
                for (int x = bx; x < ex; x++, dst += c) {
                    int sy = flip_sy ? ow - 1 - x : x;
                    copy_px(dst, in->data + ((size_t)sy * in->w + sx) * c, c);
                }
            }
        }
    }
}

/* One instantiation per channel count, so that copy_px has no branch. */
static void orient_transpose(it_image *out, const it_image *in, int o)
{
    switch (in->c) {
    case 1: orient_transpose_c(out, in, o, 1); break;
    case 2: orient_transpose_c(out, in, o, 2); break;
    case 3: orient_transpose_c(out, in, o, 3); break;
    default: orient_transpose_c(out, in, o, 4); break;
    }
}

it_status it_image_orient(it_err *err, it_image *out, const it_image *in, int orientation)
{
    int o = orientation >= 2 && orientation <= 8 ? orientation : 1;
    int swap = o >= 5;
    int ow = swap ? in->h : in->w, oh = swap ? in->w : in->h, c = in->c;
    IT_TRY(it_image_alloc(err, out, ow, oh, c));
    if (o == 1) memcpy(out->data, in->data, (size_t)ow * oh * c);
    else if (o <= 4) orient_rows(out, in, o);
    else orient_transpose(out, in, o);
    return IT_OK;
}

static void fill_row(uint8_t *dst, int n, int c, const uint8_t *fill)
{
    if (!fill) {
        memset(dst, 0, (size_t)n * c);
        return;
    }
    for (int i = 0; i < n; i++) memcpy(dst + (size_t)i * c, fill, (size_t)c);
}

it_status it_image_crop(it_err *err, it_image *out, const it_image *in, int x, int y, int w, int h,
                        const uint8_t *fill)
{
    IT_TRY(it_image_alloc(err, out, w, h, in->c));
    int c = in->c;
    /* Columns [ix0, ix1) of the output come from the input; the rest is fill.
     * Computed in long long so that far-away origins cannot overflow. */
    long long lx0 = -(long long)x, lx1 = (long long)in->w - x;
    int ix0 = (int)(lx0 < 0 ? 0 : lx0 > w ? w : lx0);
    int ix1 = (int)(lx1 < ix0 ? ix0 : lx1 > w ? w : lx1);
    for (int oy = 0; oy < h; oy++) {
        uint8_t *dst = out->data + (size_t)oy * w * c;
        long long sy = (long long)y + oy;
        if (sy < 0 || sy >= in->h || ix0 == ix1) {
            fill_row(dst, w, c, fill);
            continue;
        }
        fill_row(dst, ix0, c, fill);
        memcpy(dst + (size_t)ix0 * c, in->data + ((size_t)sy * in->w + (size_t)((long long)x + ix0)) * c,
               (size_t)(ix1 - ix0) * c);
        fill_row(dst + (size_t)ix1 * c, w - ix1, c, fill);
    }
    return IT_OK;
}

it_status it_image_pad(it_err *err, it_image *out, const it_image *in, int left, int top,
                       int right, int bottom, const uint8_t *fill)
{
    memset(out, 0, sizeof *out);
    if (left < 0 || top < 0 || right < 0 || bottom < 0)
        return it_err_set(err, IT_ERR_ARG, "pad: negative border %d,%d,%d,%d", left, top, right,
                          bottom);
    long long w = (long long)in->w + left + right, h = (long long)in->h + top + bottom;
    if (w > IT_IMAGE_MAX_DIM || h > IT_IMAGE_MAX_DIM)
        return it_err_set(err, IT_ERR_RANGE, "pad: result %lldx%lld exceeds the limit of %d per side",
                          w, h, IT_IMAGE_MAX_DIM);
    return it_image_crop(err, out, in, -left, -top, (int)w, (int)h, fill);
}

it_status it_image_paste(it_err *err, it_image *dst, const it_image *src, int x, int y,
                         const it_image *mask)
{
    if (src->c != dst->c)
        return it_err_set(err, IT_ERR_ARG, "paste: channel counts differ (%d onto %d)", src->c,
                          dst->c);
    if (mask && (mask->c != 1 || mask->w != src->w || mask->h != src->h))
        return it_err_set(err, IT_ERR_ARG, "paste: mask is %dx%dx%d, expected %dx%dx1", mask->w,
                          mask->h, mask->c, src->w, src->h);
    int c = src->c;
    long long x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    long long x1 = (long long)x + src->w, y1 = (long long)y + src->h;
    if (x1 > dst->w) x1 = dst->w;
    if (y1 > dst->h) y1 = dst->h;
    for (long long dy = y0; dy < y1; dy++) {
        size_t sy = (size_t)(dy - y), sx0 = (size_t)(x0 - x);
        uint8_t *d = dst->data + ((size_t)dy * dst->w + (size_t)x0) * c;
        const uint8_t *s = src->data + (sy * src->w + sx0) * c;
        if (x1 <= x0) break;
        size_t n = (size_t)(x1 - x0);
        if (!mask) {
            memcpy(d, s, n * c);
            continue;
        }
        const uint8_t *m = mask->data + sy * mask->w + sx0;
        for (size_t i = 0; i < n; i++)
            for (int k = 0; k < c; k++)
                d[i * c + k] = div255(d[i * c + k] * (255u - m[i]) + s[i * c + k] * (unsigned)m[i]);
    }
    return IT_OK;
}

/* Separable Gaussian blur with edge clamping (radius 2.5 sigma, at most 8):
 * the judge's augmentation and the preference head's degradation share it. */
it_status it_rgb8_blur(it_err *err, uint8_t *p, int w, int h, float sigma)
{
    int rad = (int)ceilf(2.5f * sigma);
    if (rad > 8) rad = 8;
    float k[17], sum = 0;
    for (int i = -rad; i <= rad; i++) sum += k[i + rad] = expf(-0.5f * (float)(i * i) / (sigma * sigma));
    for (int i = 0; i <= 2 * rad; i++) k[i] /= sum;
    float *tmp = it_malloc((size_t)w * h * 3 * sizeof(float));
    if (!tmp) return it_err_set(err, IT_ERR_NOMEM, "blur: out of memory");
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float v = 0;
                for (int i = -rad; i <= rad; i++) {
                    int xx = x + i < 0 ? 0 : x + i >= w ? w - 1 : x + i;
                    v += k[i + rad] * p[((size_t)y * w + xx) * 3 + c];
                }
                tmp[((size_t)y * w + x) * 3 + c] = v;
            }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float v = 0;
                for (int i = -rad; i <= rad; i++) {
                    int yy = y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
                    v += k[i + rad] * tmp[((size_t)yy * w + x) * 3 + c];
                }
                p[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrintf(v));
            }
    it_free(tmp);
    return IT_OK;
}
