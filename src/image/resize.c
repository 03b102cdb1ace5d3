/* resize.c: separable resampling with Pillow's coefficients and rounding.
 *
 * The algorithm (after Pillow's libImaging/Resample.c, written anew here):
 * for each output coordinate xx the centre in input space is
 *     center = in0 + (xx + 0.5) * scale,   scale = (in1 - in0) / out_size,
 * the filter is stretched by max(scale, 1) (antialiasing when shrinking),
 * the taps are input pixels [xmin, xmin + n) with
 *     xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5)
 * clamped to the image, weights filter((x + xmin - center + 0.5) / fscale)
 * normalised to sum 1. For 8-bit data the weights become fixed point with 22
 * fraction bits (rounded half away from zero), sums start at 0.5 and the
 * result is clamped to 0..255 after an arithmetic shift. The horizontal pass
 * runs first, over the rows the vertical pass needs only, and its result is
 * stored as 8 bits, exactly as Pillow does; that is what makes results equal
 * rather than merely close. */
#include "image/resize.h"

#include <math.h>
#include <string.h>

#include "base/mem.h"

#define PRECISION_BITS 22

typedef struct filter_def {
    double (*fn)(double x);
    double support;
} filter_def;

static double box_fn(double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }

static double bilinear_fn(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Keys' cubic convolution with a = -0.5. */
static double bicubic_fn(double x)
{
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc(double x)
{
    if (x == 0.0) return 1.0;
    x *= M_PI;
    return sin(x) / x;
}

static double lanczos_fn(double x) { return x >= -3.0 && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0; }

static const filter_def FILTERS[] = {
    [IT_RESAMPLE_BOX] = {box_fn, 0.5},
    [IT_RESAMPLE_BILINEAR] = {bilinear_fn, 1.0},
    [IT_RESAMPLE_BICUBIC] = {bicubic_fn, 2.0},
    [IT_RESAMPLE_LANCZOS] = {lanczos_fn, 3.0},
};

static const char *const NAMES[] = {"nearest", "box", "bilinear", "bicubic", "lanczos"};

int it_resample_parse(const char *name)
{
    for (int i = 0; i < 5; i++)
        if (name && strcmp(name, NAMES[i]) == 0) return i;
    return -1;
}

const char *it_resample_name(it_resample f)
{
    return (unsigned)f < 5 ? NAMES[f] : "unknown";
}

/* ---- coefficients -------------------------------------------------------- */

/* Taps of one axis: output i reads input [start[i], start[i] + count[i]) with
 * weights w[i * ksize ...]. */
typedef struct coeffs {
    int ksize;
    int *start, *count;   /* (out) */
    double *w;            /* (out, ksize) normalised weights */
    int32_t *wi;          /* (out, ksize) fixed point, 8-bit path only */
} coeffs;

static void coeffs_free(coeffs *c)
{
    it_free(c->start);
    it_free(c->count);
    it_free(c->w);
    it_free(c->wi);
    memset(c, 0, sizeof *c);
}

static it_status coeffs_make(it_err *err, coeffs *c, int in_size, double in0, double in1,
                             int out_size, const filter_def *f, int fixed)
{
    memset(c, 0, sizeof *c);
    /* The box is float in Pillow: the difference is taken in float. */
    double scale = (double)((float)in1 - (float)in0) / out_size;
    double fscale = scale < 1.0 ? 1.0 : scale;
    double inv = 1.0 / fscale; /* multiplied, not divided: same bits as Pillow */
    double support = f->support * fscale;
    c->ksize = (int)ceil(support) * 2 + 1;
    size_t nw = (size_t)out_size * c->ksize;
    c->start = it_malloc(sizeof(int) * out_size);
    c->count = it_malloc(sizeof(int) * out_size);
    c->w = it_calloc(nw, sizeof(double));
    if (fixed) c->wi = it_calloc(nw, sizeof(int32_t));
    if (!c->start || !c->count || !c->w || (fixed && !c->wi)) {
        coeffs_free(c);
        return it_err_set(err, IT_ERR_NOMEM, "resize: out of memory for coefficients");
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = in0 + (xx + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        int xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        int n = xmax - xmin;
        if (n < 0) n = 0;
        double *k = c->w + (size_t)xx * c->ksize, sum = 0.0;
        for (int x = 0; x < n; x++) {
            k[x] = f->fn((x + xmin - center + 0.5) * inv);
            sum += k[x];
        }
        if (sum != 0.0)
            for (int x = 0; x < n; x++) k[x] /= sum;
        c->start[xx] = xmin;
        c->count[xx] = n;
        if (fixed) {
            int32_t *ki = c->wi + (size_t)xx * c->ksize;
            for (int x = 0; x < n; x++) {
                double v = k[x] * (1 << PRECISION_BITS);
                ki[x] = (int32_t)(v < 0 ? v - 0.5 : v + 0.5);
            }
        }
    }
    return IT_OK;
}

/* ---- 8-bit passes --------------------------------------------------------- */

static inline uint8_t clip8(int32_t v)
{
    v >>= PRECISION_BITS; /* arithmetic shift: floor, as Pillow */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

#define HALF (1 << (PRECISION_BITS - 1))

/* One output row of the horizontal pass, C channels. Separate scalar sums
 * per channel (not an array) keep them in registers. */
static inline void hrow(uint8_t *o, const uint8_t *row, const coeffs *cx, int dw, int C)
{
    for (int xx = 0; xx < dw; xx++) {
        const int32_t *k = cx->wi + (size_t)xx * cx->ksize;
        const uint8_t *p = row + (size_t)cx->start[xx] * C;
        int n = cx->count[xx];
        int32_t s0 = HALF, s1 = HALF, s2 = HALF, s3 = HALF;
        for (int x = 0; x < n; x++, p += C) {
            s0 += p[0] * k[x];
            if (C > 1) s1 += p[1] * k[x];
            if (C > 2) s2 += p[2] * k[x];
            if (C > 3) s3 += p[3] * k[x];
        }
        o[0] = clip8(s0);
        if (C > 1) o[1] = clip8(s1);
        if (C > 2) o[2] = clip8(s2);
        if (C > 3) o[3] = clip8(s3);
        o += C;
    }
}

/* Horizontal pass on rows [y0, y0 + n_rows) of src (width sw) into dst
 * (width dw). C is a constant in each instantiation. */
static inline void hpass(uint8_t *dst, int dw, const uint8_t *src, int sw, int y0, int n_rows,
                         const coeffs *cx, int C)
{
#pragma omp parallel for schedule(static) if ((long)n_rows * dw > 65536)
    for (int y = 0; y < n_rows; y++)
        hrow(dst + (size_t)y * dw * C, src + (size_t)(y0 + y) * sw * C, cx, dw, C);
}

/* Vertical pass: src rows are relative to row_base (the first row the
 * horizontal pass produced). Each output row is accumulated a chunk of
 * samples at a time, tap-major, so the inner loop runs over contiguous
 * samples and vectorises; the sum order per sample is Pillow's. */
#define VCHUNK 2048
static void vpass(uint8_t *dst, int dh, const uint8_t *src, int w, int row_base, const coeffs *cy,
                  int C)
{
    size_t stride = (size_t)w * C;
#pragma omp parallel for schedule(static) if ((long)dh * w > 65536)
    for (int yy = 0; yy < dh; yy++) {
        const int32_t *k = cy->wi + (size_t)yy * cy->ksize;
        const uint8_t *base = src + (size_t)(cy->start[yy] - row_base) * stride;
        int n = cy->count[yy];
        uint8_t *o = dst + (size_t)yy * stride;
        int32_t acc[VCHUNK];
        for (size_t i0 = 0; i0 < stride; i0 += VCHUNK) {
            size_t m = stride - i0 < VCHUNK ? stride - i0 : VCHUNK;
            /* omp simd: gcc -O2 does not vectorise these by itself. */
#pragma omp simd
            for (size_t i = 0; i < m; i++) acc[i] = HALF;
            for (int y = 0; y < n; y++) {
                const uint8_t *r = base + (size_t)y * stride + i0;
                int32_t ky = k[y];
#pragma omp simd
                for (size_t i = 0; i < m; i++) acc[i] += r[i] * ky;
            }
#pragma omp simd
            for (size_t i = 0; i < m; i++) o[i0 + i] = clip8(acc[i]);
        }
    }
}

static void hpass_any(uint8_t *dst, int dw, const uint8_t *src, int sw, int y0, int n_rows,
                      const coeffs *cx, int c)
{
    switch (c) {
    case 1: hpass(dst, dw, src, sw, y0, n_rows, cx, 1); break;
    case 2: hpass(dst, dw, src, sw, y0, n_rows, cx, 2); break;
    case 3: hpass(dst, dw, src, sw, y0, n_rows, cx, 3); break;
    default: hpass(dst, dw, src, sw, y0, n_rows, cx, 4); break;
    }
}

/* Pillow's RGBA <-> RGBa (and LA <-> La) conversions, in place. */
static void premultiply(it_image *img)
{
    int c = img->c, a = c - 1;
    size_t n = (size_t)img->w * img->h;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = img->data + i * c;
        for (int k = 0; k < a; k++) {
            unsigned v = p[k] * (unsigned)p[a] + 128;
            p[k] = (uint8_t)((v + (v >> 8)) >> 8);
        }
    }
}

static void unpremultiply(it_image *img)
{
    int c = img->c, a = c - 1;
    size_t n = (size_t)img->w * img->h;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = img->data + i * c;
        if (p[a] == 0 || p[a] == 255) continue;
        for (int k = 0; k < a; k++) {
            unsigned v = 255u * p[k] / p[a];
            p[k] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
}

/* Pillow's nearest: an affine scan with the source position accumulated in
 * double (x = box0 + scale * 0.5, then += scale), truncated. */
static it_status resize_nearest(it_err *err, it_image *out, const it_image *in, int w, int h,
                                const double box[4])
{
    int c = in->c;
    int *xs = it_malloc(sizeof(int) * w);
    if (!xs) return it_err_set(err, IT_ERR_NOMEM, "resize: out of memory");
    it_status s = it_image_alloc(err, out, w, h, c);
    if (s != IT_OK) {
        it_free(xs);
        return s;
    }
    double sx = (box[2] - box[0]) / w, sy = (box[3] - box[1]) / h;
    double xo = box[0] + sx * 0.5;
    for (int x = 0; x < w; x++, xo += sx) {
        int xi = xo < 0 ? -1 : (int)xo;
        xs[x] = xi < 0 ? 0 : xi >= in->w ? in->w - 1 : xi;
    }
    double yo = box[1] + sy * 0.5;
    for (int y = 0; y < h; y++, yo += sy) {
        int yi = yo < 0 ? -1 : (int)yo;
        yi = yi < 0 ? 0 : yi >= in->h ? in->h - 1 : yi;
        const uint8_t *row = in->data + (size_t)yi * in->w * c;
        uint8_t *o = out->data + (size_t)y * w * c;
        for (int x = 0; x < w; x++) memcpy(o + (size_t)x * c, row + (size_t)xs[x] * c, (size_t)c);
    }
    it_free(xs);
    return IT_OK;
}

static it_status check_args(it_err *err, int iw, int ih, int c, int w, int h, int filter,
                            const double box[4])
{
    if (c < 1 || c > 4) return it_err_set(err, IT_ERR_ARG, "resize: %d channels", c);
    if ((unsigned)filter > IT_RESAMPLE_LANCZOS)
        return it_err_set(err, IT_ERR_ARG, "resize: unknown filter %d", filter);
    IT_TRY(it_image_check_size(err, w, h));
    if (iw <= 0 || ih <= 0) return it_err_set(err, IT_ERR_ARG, "resize: empty input %dx%d", iw, ih);
    if (!(box[0] >= 0 && box[1] >= 0 && box[2] <= iw && box[3] <= ih && box[0] < box[2] &&
          box[1] < box[3]))
        return it_err_set(err, IT_ERR_ARG,
                          "resize: box (%g,%g,%g,%g) is empty or outside the %dx%d image", box[0],
                          box[1], box[2], box[3], iw, ih);
    return IT_OK;
}

/* Convolution resize of a (premultiplied if alpha) image. */
static it_status resize_conv(it_err *err, it_image *out, const it_image *in, int w, int h,
                             const filter_def *f, const double box[4])
{
    int c = in->c;
    int need_h = w != in->w || box[0] != 0 || box[2] != w;
    int need_v = h != in->h || box[1] != 0 || box[3] != h;
    coeffs cy, cx;
    memset(&cx, 0, sizeof cx);
    IT_TRY(coeffs_make(err, &cy, in->h, box[1], box[3], h, f, 1));
    int row0 = cy.start[0];
    int row1 = cy.start[h - 1] + cy.count[h - 1];
    it_image tmp = {0};
    it_status s = IT_OK;
    const it_image *src = in;
    if (need_h) {
        s = coeffs_make(err, &cx, in->w, box[0], box[2], w, f, 1);
        if (s == IT_OK) s = it_image_alloc(err, &tmp, w, row1 - row0 > 0 ? row1 - row0 : 1, c);
        if (s == IT_OK) {
            hpass_any(tmp.data, w, in->data, in->w, row0, row1 - row0, &cx, c);
            src = &tmp;
        }
    } else {
        row0 = 0; /* the vertical pass reads the input directly */
    }
    if (s == IT_OK && need_v) {
        s = it_image_alloc(err, out, src->w, h, c);
        if (s == IT_OK) {
            vpass(out->data, h, src->data, src->w, row0, &cy, c);
        }
        it_image_free(&tmp);
    } else if (s == IT_OK && need_h) {
        *out = tmp; /* only a horizontal pass: h == in->h and all rows were produced */
    } else if (s == IT_OK) {
        s = it_image_alloc(err, out, in->w, in->h, c);
        if (s == IT_OK) memcpy(out->data, in->data, (size_t)in->w * in->h * c);
    } else {
        it_image_free(&tmp);
    }
    coeffs_free(&cx);
    coeffs_free(&cy);
    return s;
}

it_status it_image_resize_box(it_err *err, it_image *out, const it_image *in, int w, int h,
                              it_resample filter, const float box[4])
{
    memset(out, 0, sizeof *out);
    double b[4] = {0, 0, in->w, in->h};
    if (box)
        for (int i = 0; i < 4; i++) b[i] = box[i];
    IT_TRY(check_args(err, in->w, in->h, in->c, w, h, (int)filter, b));
    if (filter == IT_RESAMPLE_NEAREST) return resize_nearest(err, out, in, w, h, b);
    if (in->c == 2 || in->c == 4) {
        it_image pre;
        IT_TRY(it_image_alloc(err, &pre, in->w, in->h, in->c));
        memcpy(pre.data, in->data, (size_t)in->w * in->h * in->c);
        premultiply(&pre);
        it_status s = resize_conv(err, out, &pre, w, h, &FILTERS[filter], b);
        it_image_free(&pre);
        if (s == IT_OK) unpremultiply(out);
        return s;
    }
    return resize_conv(err, out, in, w, h, &FILTERS[filter], b);
}

it_status it_image_resize(it_err *err, it_image *out, const it_image *in, int w, int h,
                          it_resample filter)
{
    return it_image_resize_box(err, out, in, w, h, filter, NULL);
}

/* ---- float ------------------------------------------------------------------ */

it_status it_resize_f32(it_err *err, float *out, int ow, int oh, const float *in, int iw, int ih,
                        int c, it_resample filter)
{
    double box[4] = {0, 0, iw, ih};
    IT_TRY(check_args(err, iw, ih, c, ow, oh, (int)filter, box));
    if (filter == IT_RESAMPLE_NEAREST)
        return it_err_set(err, IT_ERR_UNSUPPORTED, "resize: nearest is not offered for floats");
    const filter_def *f = &FILTERS[filter];
    coeffs cx, cy;
    IT_TRY(coeffs_make(err, &cx, iw, 0, iw, ow, f, 0));
    it_status s = coeffs_make(err, &cy, ih, 0, ih, oh, f, 0);
    float *tmp = s == IT_OK ? it_malloc(sizeof(float) * (size_t)ow * ih * c) : NULL;
    if (s == IT_OK && !tmp) s = it_err_set(err, IT_ERR_NOMEM, "resize: out of memory");
    if (s == IT_OK) {
        /* (ih, ow, c) after the horizontal pass. */
        for (int y = 0; y < ih; y++)
            for (int xx = 0; xx < ow; xx++)
                for (int ch = 0; ch < c; ch++) {
                    const double *k = cx.w + (size_t)xx * cx.ksize;
                    const float *p = in + ((size_t)y * iw + cx.start[xx]) * c + ch;
                    double acc = 0;
                    for (int x = 0; x < cx.count[xx]; x++) acc += p[(size_t)x * c] * k[x];
                    tmp[((size_t)y * ow + xx) * c + ch] = (float)acc;
                }
        size_t stride = (size_t)ow * c;
        for (int yy = 0; yy < oh; yy++) {
            const double *k = cy.w + (size_t)yy * cy.ksize;
            for (size_t i = 0; i < stride; i++) {
                double acc = 0;
                for (int y = 0; y < cy.count[yy]; y++)
                    acc += tmp[(size_t)(cy.start[yy] + y) * stride + i] * k[y];
                out[(size_t)yy * stride + i] = (float)acc;
            }
        }
    }
    it_free(tmp);
    coeffs_free(&cx);
    coeffs_free(&cy);
    return s;
}
