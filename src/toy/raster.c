/* raster.c: signed-distance shapes, paints and the bounding-box-limited fill.
 *
 * Why signed distances: one function per shape gives both the inside test and
 * a one-pixel anti-aliasing ramp (coverage = 0.5 - d), outlines for free
 * (d + width), clipping (max of distances) and cutting (max with -d). For the
 * ellipse we use the first-order approximation d ~ f / |grad f| of
 * f = |p / r| - 1 (k0 (k0 - 1) / k1), exact on the boundary where the ramp
 * matters, and cheap. All math is float and the same on every thread, so a
 * render is a pure function of its inputs. */
/* O3 for the per-pixel loops (measured: +15 % images/s over -O2). */
#pragma GCC optimize("O3")
#include "toy/raster.h"

#include <math.h>
#include <string.h>

#include "base/mem.h"

it_status it_canvas_init(it_err *err, it_canvas *c, int w, int h)
{
    memset(c, 0, sizeof *c);
    if (w <= 0 || h <= 0 || w > 4096 || h > 4096)
        return it_err_set(err, IT_ERR_ARG, "canvas size %dx%d out of range 1..4096", w, h);
    c->rgb = it_malloc_aligned((size_t)w * h * 3 * sizeof(float));
    c->mask = it_malloc_aligned((size_t)w * h);
    if (!c->rgb || !c->mask) {
        it_canvas_free(c);
        return it_err_set(err, IT_ERR_NOMEM, "canvas %dx%d: out of memory", w, h);
    }
    c->w = w;
    c->h = h;
    memset(c->rgb, 0, (size_t)w * h * 3 * sizeof(float));
    memset(c->mask, 0, (size_t)w * h);
    return IT_OK;
}

void it_canvas_free(it_canvas *c)
{
    if (c->rgb) it_free_aligned(c->rgb);
    if (c->mask) it_free_aligned(c->mask);
    memset(c, 0, sizeof *c);
}

void it_canvas_to_rgb8(const it_canvas *c, uint8_t *out)
{
    size_t n = (size_t)c->w * c->h * 3;
    const float *in = c->rgb;
    #pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float v = in[i] * 255.0f + 0.5f;
        v = v > 0.0f ? v : 0.0f;
        v = v < 255.0f ? v : 255.0f;
        out[i] = (uint8_t)(int)v;
    }
}

/* ---------------------------------------------------------------- shapes */

static it_shape shape_base(it_shape_kind kind)
{
    it_shape s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    s.cs = 1.0f;
    return s;
}

it_shape it_shape_ellipse(float cx, float cy, float rx, float ry, float angle)
{
    it_shape s = shape_base(IT_SHAPE_ELLIPSE);
    s.cx = cx;
    s.cy = cy;
    s.rx = rx > 0.05f ? rx : 0.05f;
    s.ry = ry > 0.05f ? ry : 0.05f;
    s.cs = cosf(angle);
    s.sn = sinf(angle);
    return s;
}

it_shape it_shape_circle(float cx, float cy, float r) { return it_shape_ellipse(cx, cy, r, r, 0.0f); }

it_shape it_shape_rrect(float cx, float cy, float hw, float hh, float r, float angle)
{
    it_shape s = shape_base(IT_SHAPE_RRECT);
    s.cx = cx;
    s.cy = cy;
    s.rx = hw;
    s.ry = hh;
    float m = hw < hh ? hw : hh;
    s.r = r < 0 ? 0 : r > m ? m : r;
    s.cs = cosf(angle);
    s.sn = sinf(angle);
    return s;
}

it_shape it_shape_capsule(float ax, float ay, float bx, float by, float r)
{
    it_shape s = shape_base(IT_SHAPE_CAPSULE);
    s.ax = ax;
    s.ay = ay;
    s.bx = bx;
    s.by = by;
    s.r = r;
    return s;
}

it_shape it_shape_poly(const float *xy, int n)
{
    it_shape s = shape_base(IT_SHAPE_POLY);
    IT_ASSERT(n >= 3 && n <= IT_POLY_MAX);
    s.n = n;
    for (int i = 0; i < n; i++) {
        s.px[i] = xy[2 * i];
        s.py[i] = xy[2 * i + 1];
    }
    return s;
}

it_shape it_shape_arc(float cx, float cy, float radius, float a0, float a1, float half_width)
{
    it_shape s = shape_base(IT_SHAPE_ARC);
    s.cx = cx;
    s.cy = cy;
    s.rx = radius;
    s.a0 = a0;
    s.a1 = a1 > a0 ? a1 : a0;
    s.r = half_width;
    s.ax = cx + radius * cosf(a0);
    s.ay = cy + radius * sinf(a0);
    s.bx = cx + radius * cosf(s.a1);
    s.by = cy + radius * sinf(s.a1);
    return s;
}

it_shape it_shape_halfplane(float x0, float y0, float nx, float ny)
{
    it_shape s = shape_base(IT_SHAPE_HALFPLANE);
    float l = sqrtf(nx * nx + ny * ny);
    s.nx = nx / l;
    s.ny = ny / l;
    s.c = s.nx * x0 + s.ny * y0;
    return s;
}

static float sdf_ellipse(const it_shape *s, float x, float y)
{
    float dx = x - s->cx, dy = y - s->cy;
    float lx = s->cs * dx + s->sn * dy, ly = -s->sn * dx + s->cs * dy;
    if (s->rx == s->ry) return sqrtf(lx * lx + ly * ly) - s->rx;
    float ux = lx / s->rx, uy = ly / s->ry;
    float k0 = sqrtf(ux * ux + uy * uy);
    float vx = ux / s->rx, vy = uy / s->ry;
    float k1 = sqrtf(vx * vx + vy * vy);
    if (k1 < 1e-12f) return -(s->rx < s->ry ? s->rx : s->ry);
    return k0 * (k0 - 1.0f) / k1;
}

static float sdf_rrect(const it_shape *s, float x, float y)
{
    float dx = x - s->cx, dy = y - s->cy;
    float lx = fabsf(s->cs * dx + s->sn * dy), ly = fabsf(-s->sn * dx + s->cs * dy);
    float qx = lx - (s->rx - s->r), qy = ly - (s->ry - s->r);
    float mx = qx > 0 ? qx : 0, my = qy > 0 ? qy : 0;
    float in = qx > qy ? qx : qy;
    return sqrtf(mx * mx + my * my) + (in < 0 ? in : 0) - s->r;
}

static float sdf_capsule(const it_shape *s, float x, float y)
{
    float pax = x - s->ax, pay = y - s->ay, bax = s->bx - s->ax, bay = s->by - s->ay;
    float bb = bax * bax + bay * bay;
    float h = bb > 0 ? (pax * bax + pay * bay) / bb : 0;
    h = h < 0 ? 0 : h > 1 ? 1 : h;
    float ex = pax - bax * h, ey = pay - bay * h;
    return sqrtf(ex * ex + ey * ey) - s->r;
}

/* Exact polygon distance with the even-odd crossing rule for the sign. */
static float sdf_poly(const it_shape *s, float x, float y)
{
    float d = (x - s->px[0]) * (x - s->px[0]) + (y - s->py[0]) * (y - s->py[0]);
    float sign = 1.0f;
    for (int i = 0, j = s->n - 1; i < s->n; j = i, i++) {
        float ex = s->px[j] - s->px[i], ey = s->py[j] - s->py[i];
        float wx = x - s->px[i], wy = y - s->py[i];
        float ee = ex * ex + ey * ey;
        float h = ee > 0 ? (wx * ex + wy * ey) / ee : 0;
        h = h < 0 ? 0 : h > 1 ? 1 : h;
        float bx = wx - ex * h, by = wy - ey * h;
        float bd = bx * bx + by * by;
        if (bd < d) d = bd;
        int c1 = y >= s->py[i], c2 = y < s->py[j], c3 = ex * wy > ey * wx;
        if ((c1 && c2 && c3) || (!c1 && !c2 && !c3)) sign = -sign;
    }
    return sign * sqrtf(d);
}

static float sdf_arc(const it_shape *s, float x, float y)
{
    float dx = x - s->cx, dy = y - s->cy;
    float t = atan2f(dy, dx);
    const float two_pi = 6.28318530718f;
    while (t < s->a0) t += two_pi;
    while (t >= s->a0 + two_pi) t -= two_pi;
    if (t <= s->a1) return fabsf(sqrtf(dx * dx + dy * dy) - s->rx) - s->r;
    float d0 = sqrtf((x - s->ax) * (x - s->ax) + (y - s->ay) * (y - s->ay));
    float d1 = sqrtf((x - s->bx) * (x - s->bx) + (y - s->by) * (y - s->by));
    return (d0 < d1 ? d0 : d1) - s->r;
}

static inline float sdf_base(const it_shape *s, float x, float y)
{
    float d;
    switch (s->kind) {
    case IT_SHAPE_ELLIPSE: d = sdf_ellipse(s, x, y); break;
    case IT_SHAPE_RRECT: d = sdf_rrect(s, x, y); break;
    case IT_SHAPE_CAPSULE: d = sdf_capsule(s, x, y); break;
    case IT_SHAPE_POLY: d = sdf_poly(s, x, y); break;
    case IT_SHAPE_ARC: d = sdf_arc(s, x, y); break;
    case IT_SHAPE_HALFPLANE: d = s->nx * x + s->ny * y - s->c; break;
    default: d = 1e9f; break;
    }
    return d - s->grow;
}

float it_shape_sdf(const it_shape *s, float x, float y)
{
    float d = sdf_base(s, x, y);
    if (s->clip) {
        float dc = it_shape_sdf(s->clip, x, y);
        if (dc > d) d = dc;
    }
    if (s->cut) {
        float dc = -it_shape_sdf(s->cut, x, y);
        if (dc > d) d = dc;
    }
    return d;
}

void it_shape_bounds(const it_shape *s, float b[4])
{
    float ext;
    switch (s->kind) {
    case IT_SHAPE_ELLIPSE:
    case IT_SHAPE_RRECT:
        if (s->sn == 0.0f) {
            b[0] = s->cx - s->rx;
            b[1] = s->cy - s->ry;
            b[2] = s->cx + s->rx;
            b[3] = s->cy + s->ry;
        } else {
            ext = sqrtf(s->rx * s->rx + s->ry * s->ry);
            b[0] = s->cx - ext;
            b[1] = s->cy - ext;
            b[2] = s->cx + ext;
            b[3] = s->cy + ext;
        }
        break;
    case IT_SHAPE_CAPSULE:
        b[0] = fminf(s->ax, s->bx) - s->r;
        b[1] = fminf(s->ay, s->by) - s->r;
        b[2] = fmaxf(s->ax, s->bx) + s->r;
        b[3] = fmaxf(s->ay, s->by) + s->r;
        break;
    case IT_SHAPE_POLY:
        b[0] = b[2] = s->px[0];
        b[1] = b[3] = s->py[0];
        for (int i = 1; i < s->n; i++) {
            b[0] = fminf(b[0], s->px[i]);
            b[1] = fminf(b[1], s->py[i]);
            b[2] = fmaxf(b[2], s->px[i]);
            b[3] = fmaxf(b[3], s->py[i]);
        }
        break;
    case IT_SHAPE_ARC:
        ext = s->rx + s->r;
        b[0] = s->cx - ext;
        b[1] = s->cy - ext;
        b[2] = s->cx + ext;
        b[3] = s->cy + ext;
        break;
    default: /* half-plane: bounded on one side when axis-aligned */
        b[0] = b[1] = -1e9f;
        b[2] = b[3] = 1e9f;
        if (s->nx == 0.0f && s->ny > 0.0f) b[3] = s->c / s->ny;
        if (s->nx == 0.0f && s->ny < 0.0f) b[1] = s->c / s->ny;
        if (s->ny == 0.0f && s->nx > 0.0f) b[2] = s->c / s->nx;
        if (s->ny == 0.0f && s->nx < 0.0f) b[0] = s->c / s->nx;
        break;
    }
    b[0] -= s->grow;
    b[1] -= s->grow;
    b[2] += s->grow;
    b[3] += s->grow;
    if (s->clip) {
        float c[4];
        it_shape_bounds(s->clip, c);
        b[0] = fmaxf(b[0], c[0]);
        b[1] = fmaxf(b[1], c[1]);
        b[2] = fminf(b[2], c[2]);
        b[3] = fminf(b[3], c[3]);
    }
}

/* Exact distances (everything but non-circular ellipses, and max/min
 * combinations of exact ones) are 1-Lipschitz; the ellipse approximation
 * strays further from it the more eccentric the ellipse, so the fill trusts
 * it with a factor of 0.7 x (minor / major radius), checked against the
 * reference fill on random ellipses up to 20:1 (tests/test_toy.c). */
static float shape_lipschitz(const it_shape *s)
{
    float l = 1.0f;
    if (s->kind == IT_SHAPE_ELLIPSE && s->rx != s->ry)
        l = 0.7f * (s->rx < s->ry ? s->rx / s->ry : s->ry / s->rx);
    if (s->clip) l = fminf(l, shape_lipschitz(s->clip));
    if (s->cut) l = fminf(l, shape_lipschitz(s->cut));
    return l;
}

/* ---------------------------------------------------------------- paints */

void it_rgb_set(float dst[3], const uint8_t rgb[3])
{
    for (int k = 0; k < 3; k++) dst[k] = rgb[k] / 255.0f;
}

it_paint it_paint_solid(const uint8_t rgb[3], uint8_t mask_bits)
{
    it_paint p;
    memset(&p, 0, sizeof p);
    p.kind = IT_PAINT_SOLID;
    it_rgb_set(p.c0, rgb);
    p.alpha = 1.0f;
    p.mask_bits = mask_bits;
    p.mask_mode = IT_MASK_SET;
    return p;
}

static inline float clamp01(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }
static inline float fractf(float v) { return v - floorf(v); }

static inline void mix3(float out[3], const float a[3], const float b[3], float t)
{
    out[0] = a[0] + (b[0] - a[0]) * t;
    out[1] = a[1] + (b[1] - a[1]) * t;
    out[2] = a[2] + (b[2] - a[2]) * t;
}

/* Colour of paint p at pixel centre (x, y); d is the shape distance there. */
static inline void paint_at(const it_paint *p, float x, float y, float d, float u, float v, float out[3])
{
    float t, dist;
    switch (p->kind) {
    case IT_PAINT_LINEAR:
        t = clamp01((x - p->x0) * p->dx + (y - p->y0) * p->dy);
        mix3(out, p->c0, p->c1, t);
        break;
    case IT_PAINT_STRIPES:
        t = ((x - p->x0) * p->dx + (y - p->y0) * p->dy) / p->period;
        dist = (fabsf(fractf(t + 0.5f) - 0.5f) - 0.5f * p->duty) * p->period;
        mix3(out, p->c0, p->c1, clamp01(0.5f - dist));
        break;
    case IT_PAINT_DOTS: {
        float gy = (y - p->y0) / p->period;
        float row = floorf(gy + 0.5f);
        float off = fmodf(fabsf(row), 2.0f) * 0.5f;
        float gx = (x - p->x0) / p->period + off;
        float ex = (gx - floorf(gx + 0.5f)) * p->period, ey = (gy - row) * p->period;
        dist = sqrtf(ex * ex + ey * ey) - p->radius;
        mix3(out, p->c0, p->c1, clamp01(0.5f - dist));
        break;
    }
    case IT_PAINT_SHINE: {
        /* Leather: one narrow glossy streak across the upper left of every
         * shape (u, v are the pixel's place in the shape's box, -1..1) and
         * a rim that darkens towards the edge. */
        t = fabsf(0.8f * u * p->dx + 0.6f * v + 0.35f);
        float c = clamp01(1.0f - t / 0.16f);
        float g = clamp01(1.0f - fabsf(0.8f * u * p->dx + 0.6f * v - 0.25f) / 0.08f);
        mix3(out, p->c0, p->c1, 0.85f * c * c + 0.45f * g * g);
        float rim = 0.55f + 0.45f * clamp01(-d / 2.5f);
        out[0] *= rim;
        out[1] *= rim;
        out[2] *= rim;
        break;
    }
    default:
        out[0] = p->c0[0];
        out[1] = p->c0[1];
        out[2] = p->c0[2];
        break;
    }
}

void it_raster_fill(it_canvas *c, const it_shape *s, const it_paint *p)
{
    float b[4];
    it_shape_bounds(s, b);
    int x0 = (int)floorf(b[0] - 1.0f), y0 = (int)floorf(b[1] - 1.0f);
    int x1 = (int)ceilf(b[2] + 1.0f), y1 = (int)ceilf(b[3] + 1.0f);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > c->w) x1 = c->w;
    if (y1 > c->h) y1 = c->h;
    if (x0 >= x1 || y0 >= y1) return;
    /* Shading is relative to the shape's box: light from the top left. */
    float mx = 0.5f * (b[0] + b[2]), my = 0.5f * (b[1] + b[3]);
    float ihx = 2.0f / fmaxf(b[2] - b[0], 1.0f), ihy = 2.0f / fmaxf(b[3] - b[1], 1.0f);
    int set_mask = p->mask_mode == IT_MASK_SET && p->alpha >= 0.5f && c->mask;
    /* Signed distances are 1-Lipschitz (the ellipse's approximately, hence
     * the safety factor lip): a pixel at distance d > 0.5 outside means the
     * next (d - 0.5) pixels are outside too, and one at d deep inside means
     * the next ones are fully covered without an outline. Only pixels near
     * the edge pay for a distance evaluation. The result equals
     * it_raster_fill_ref's except for the leather rim, which inside a run
     * uses the bound d + j instead of the distance. */
    float deep = 0.5f + p->outline;
    int simple = !s->clip && !s->cut;
    float lip = shape_lipschitz(s);
    for (int y = y0; y < y1; y++) {
        float py = y + 0.5f;
        float *row = c->rgb + (size_t)y * c->w * 3;
        uint8_t *mrow = c->mask ? c->mask + (size_t)y * c->w : NULL;
        for (int x = x0; x < x1;) {
            float px = x + 0.5f;
            float d = simple ? sdf_base(s, px, py) : it_shape_sdf(s, px, py);
            if (d >= 0.5f) {
                x += 1 + (int)((d - 0.5f) * lip);
                continue;
            }
            int run = d < -deep ? 1 + (int)((-d - deep) * lip) : 1;
            if (x + run > x1) run = x1 - x;
            if (run > 2 && p->kind == IT_PAINT_SOLID) {
                /* Deep inside a solid fill: full coverage, no outline, and
                 * the shading factor is linear along the row. */
                float u = (px - mx) * ihx, v = (py - my) * ihy;
                float f = 1.0f - p->shade * (0.3f * (u + v) + 0.15f), df = -p->shade * 0.3f * ihx;
                float a = p->alpha;
                for (int j = 0; j < run; j++, x++, f += df) {
                    float *dst = row + 3 * x;
                    for (int k = 0; k < 3; k++) {
                        float col = clamp01(p->c0[k] * f);
                        dst[k] += (col - dst[k]) * a;
                    }
                    if (set_mask) mrow[x] = p->mask_bits;
                }
                continue;
            }
            for (int j = 0; j < run; j++, x++, px += 1.0f) {
                float dj = d + (float)j; /* exact for j = 0, an upper bound after */
                float cov = clamp01(0.5f - dj) * p->alpha;
                float col[3];
                float u = (px - mx) * ihx, v = (py - my) * ihy;
                paint_at(p, px, py, dj, u, v, col);
                if (p->shade > 0) {
                    float f = 1.0f - p->shade * (0.3f * (u + v) + 0.15f);
                    col[0] = clamp01(col[0] * f);
                    col[1] = clamp01(col[1] * f);
                    col[2] = clamp01(col[2] * f);
                }
                if (p->outline > 0 && j == 0) mix3(col, p->oc, col, clamp01(0.5f - (d + p->outline)));
                float *dst = row + 3 * x;
                dst[0] += (col[0] - dst[0]) * cov;
                dst[1] += (col[1] - dst[1]) * cov;
                dst[2] += (col[2] - dst[2]) * cov;
                if (set_mask && dj <= 0.0f) mrow[x] = p->mask_bits;
            }
        }
    }
}

/* The plain reference: every pixel of the box, full distance each time. */
void it_raster_fill_ref(it_canvas *c, const it_shape *s, const it_paint *p)
{
    float b[4];
    it_shape_bounds(s, b);
    float mx = 0.5f * (b[0] + b[2]), my = 0.5f * (b[1] + b[3]);
    float ihx = 2.0f / fmaxf(b[2] - b[0], 1.0f), ihy = 2.0f / fmaxf(b[3] - b[1], 1.0f);
    int set_mask = p->mask_mode == IT_MASK_SET && p->alpha >= 0.5f && c->mask;
    for (int y = 0; y < c->h; y++)
        for (int x = 0; x < c->w; x++) {
            float px = x + 0.5f, py = y + 0.5f, d = it_shape_sdf(s, px, py);
            if (d >= 0.5f) continue;
            float col[3], u = (px - mx) * ihx, v = (py - my) * ihy;
            paint_at(p, px, py, d, u, v, col);
            if (p->shade > 0) {
                float f = 1.0f - p->shade * (0.3f * (u + v) + 0.15f);
                for (int k = 0; k < 3; k++) col[k] = clamp01(col[k] * f);
            }
            if (p->outline > 0) mix3(col, p->oc, col, clamp01(0.5f - (d + p->outline)));
            float *dst = c->rgb + ((size_t)y * c->w + x) * 3, cov = clamp01(0.5f - d) * p->alpha;
            for (int k = 0; k < 3; k++) dst[k] += (col[k] - dst[k]) * cov;
            if (set_mask && d <= 0.0f) c->mask[(size_t)y * c->w + x] = p->mask_bits;
        }
}
