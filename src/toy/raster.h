/* raster.h: anti-aliased 2D drawing on a float RGB canvas with a part mask.
 *
 * Owns: the canvas (float RGB plus an 8-bit part-bit plane), the shapes the
 * toy renderer draws (ellipses, rounded rectangles, capsules = thick lines,
 * polygons, circular arcs, each optionally grown, intersected with a second
 * shape or a half-plane, or cut by a third), and paints (solid, linear
 * gradient, stripes, dots, leather-like shine, with optional shading and
 * outline). Coverage is analytic: every shape has a signed distance d (in
 * pixels, negative inside) evaluated at the pixel centre, and coverage is
 * clamp(0.5 - d, 0, 1): a one-pixel ramp, exact for straight edges. Work is
 * limited to the shape's bounding box; nothing allocates per pixel.
 *
 * The part mask records, for every pixel, the part bits of the last opaque
 * draw that covers at least half of it, so masks are exactly "pixels whose
 * colour mostly comes from this part". Does not own the creature layout
 * (toydraw.c) or file formats. */
#ifndef IT_RASTER_H
#define IT_RASTER_H

#include <stdint.h>

#include "base/status.h"

typedef struct it_canvas {
    int w, h;
    float *rgb;    /* (h, w, 3), values in [0, 1] */
    uint8_t *mask; /* (h, w) part bits */
} it_canvas;

it_status it_canvas_init(it_err *err, it_canvas *c, int w, int h);
void it_canvas_free(it_canvas *c);
/* Converts to 8-bit RGB (h, w, 3) with rounding. */
void it_canvas_to_rgb8(const it_canvas *c, uint8_t *out);

typedef enum it_shape_kind {
    IT_SHAPE_ELLIPSE, /* centre (cx, cy), radii (rx, ry), rotation */
    IT_SHAPE_RRECT,   /* centre, half sizes (rx, ry), corner radius r, rotation */
    IT_SHAPE_CAPSULE, /* segment (ax, ay)-(bx, by), half width r */
    IT_SHAPE_POLY,    /* n vertices px, py (any simple polygon) */
    IT_SHAPE_ARC,     /* circle centre, radius rx, angles a0..a1 (rad, y down), half width r */
    IT_SHAPE_HALFPLANE, /* inside where nx*x + ny*y <= c (only useful as a clip) */
} it_shape_kind;

#define IT_POLY_MAX 12

typedef struct it_shape {
    it_shape_kind kind;
    float cx, cy, rx, ry, r;
    float cs, sn;          /* rotation cos/sin (1, 0 = none) */
    float ax, ay, bx, by;
    float a0, a1;
    float nx, ny, c;       /* half-plane */
    int n;
    float px[IT_POLY_MAX], py[IT_POLY_MAX];
    float grow;            /* pixels added to the outside */
    const struct it_shape *clip; /* intersect with this shape (may be NULL) */
    const struct it_shape *cut;  /* subtract this shape (may be NULL) */
} it_shape;

it_shape it_shape_ellipse(float cx, float cy, float rx, float ry, float angle);
it_shape it_shape_circle(float cx, float cy, float r);
it_shape it_shape_rrect(float cx, float cy, float hw, float hh, float r, float angle);
it_shape it_shape_capsule(float ax, float ay, float bx, float by, float r);
it_shape it_shape_poly(const float *xy, int n); /* xy = x0,y0,x1,y1,... */
it_shape it_shape_arc(float cx, float cy, float radius, float a0, float a1, float half_width);
/* Keeps the side where (x - x0, y - y0) . (nx, ny) <= 0. */
it_shape it_shape_halfplane(float x0, float y0, float nx, float ny);

/* Signed distance in pixels (negative inside) at point (x, y). */
float it_shape_sdf(const it_shape *s, float x, float y);
/* Conservative pixel bounds [x0, x1) x [y0, y1) of the inside, unclipped. */
void it_shape_bounds(const it_shape *s, float b[4]);

typedef enum it_paint_kind {
    IT_PAINT_SOLID,
    IT_PAINT_LINEAR,  /* c0 at (x0, y0) to c1 at (x0, y0) + (dx, dy) */
    IT_PAINT_STRIPES, /* c0 with bands of c1; period px along (dx, dy) unit; duty = c1 fraction */
    IT_PAINT_DOTS,    /* c0 with dots of c1: spacing period, radius */
    IT_PAINT_SHINE,   /* leather: c0 with soft c1 highlight bands and a darker rim */
} it_paint_kind;

typedef struct it_paint {
    it_paint_kind kind;
    float c0[3], c1[3];
    float x0, y0, dx, dy;
    float period, duty, radius;
    float shade;      /* 0..1: darkening away from the top-left light */
    float outline;    /* outline width in px (0 = none), colour oc */
    float oc[3];
    float alpha;      /* 0..1, 1 = opaque */
    uint8_t mask_bits;/* written to the part plane where opaque coverage >= 0.5 */
    int mask_mode;    /* IT_MASK_SET, IT_MASK_NONE */
} it_paint;

enum { IT_MASK_SET = 0, IT_MASK_NONE = 1 };

/* A solid opaque paint with mask bits; colour as 0-255 ints. */
it_paint it_paint_solid(const uint8_t rgb[3], uint8_t mask_bits);
void it_rgb_set(float dst[3], const uint8_t rgb[3]);

/* Draws shape s with paint p onto the canvas. */
void it_raster_fill(it_canvas *c, const it_shape *s, const it_paint *p);
/* Plain reference of it_raster_fill (every pixel, full distance): tests. */
void it_raster_fill_ref(it_canvas *c, const it_shape *s, const it_paint *p);

#endif
