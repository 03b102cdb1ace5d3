/* toydraw.c: the creature's layout, its parts and the backgrounds.
 *
 * Coordinates: the creature is laid out in "units" in its own space, x to
 * the side it faces, y down, origin on the ground under its middle; about
 * 100 units from feet to the top of the head. xf maps units to pixels
 * (position, scale, and a mirror for facing left), so every pose is written
 * once. Sizes were tuned at 128x128 so that every value of every attribute
 * reads at that size: eyes >= 7 px across, markings about 9 px, stripes and
 * dots with a period of 4-5 px, a one-pixel dark outline around skin, hair,
 * hats and clothes so that parts separate even when colours are close. */
#include "toy/toydraw.h"

#include <math.h>
#include <string.h>

#include "base/rng.h"
#include "base/threads.h"
#include "toy/characters.h"

#define PI_F 3.14159265f

/* ------------------------------------------------------------ transform */

typedef struct xf {
    float ox, oy, k, flip;
} xf;

static float X(const xf *t, float x) { return t->ox + t->flip * x * t->k; }
static float Y(const xf *t, float y) { return t->oy + y * t->k; }
static float S(const xf *t, float r) { return r * t->k; }

static it_shape E(const xf *t, float cx, float cy, float rx, float ry, float ang)
{
    return it_shape_ellipse(X(t, cx), Y(t, cy), S(t, rx), S(t, ry), ang * t->flip);
}
static it_shape Rr(const xf *t, float cx, float cy, float hw, float hh, float r, float ang)
{
    return it_shape_rrect(X(t, cx), Y(t, cy), S(t, hw), S(t, hh), S(t, r), ang * t->flip);
}
static it_shape Cap(const xf *t, float ax, float ay, float bx, float by, float r)
{
    float rp = S(t, r);
    return it_shape_capsule(X(t, ax), Y(t, ay), X(t, bx), Y(t, by), rp < 0.6f ? 0.6f : rp);
}
static it_shape Poly(const xf *t, const float *xy, int n)
{
    float p[2 * IT_POLY_MAX];
    for (int i = 0; i < n; i++) {
        p[2 * i] = X(t, xy[2 * i]);
        p[2 * i + 1] = Y(t, xy[2 * i + 1]);
    }
    return it_shape_poly(p, n);
}
/* Arc angles are in unit space (y down); mirroring maps a to pi - a. */
static it_shape Arc(const xf *t, float cx, float cy, float rad, float a0, float a1, float hw)
{
    float hp = S(t, hw) < 0.6f ? 0.6f : S(t, hw);
    if (t->flip < 0) {
        float b0 = PI_F - a1, b1 = PI_F - a0;
        a0 = b0;
        a1 = b1;
    }
    return it_shape_arc(X(t, cx), Y(t, cy), S(t, rad), a0, a1, hp);
}
/* Keeps the side where y <= y0 (above) or y >= y0 (below) in unit space. */
static it_shape Above(const xf *t, float y0) { return it_shape_halfplane(0, Y(t, y0), 0, 1); }
static it_shape Below(const xf *t, float y0) { return it_shape_halfplane(0, Y(t, y0), 0, -1); }

/* ------------------------------------------------------------ colours */

static const uint8_t WHITE[3] = {250, 250, 250}, INK[3] = {25, 22, 28};

static void rgb_mix(uint8_t out[3], const uint8_t a[3], const uint8_t b[3], float t)
{
    for (int k = 0; k < 3; k++) out[k] = (uint8_t)(a[k] + (b[k] - a[k]) * t + 0.5f);
}
static float luma(const uint8_t c[3]) { return (0.3f * c[0] + 0.59f * c[1] + 0.11f * c[2]) / 255.0f; }

/* Skin, hair, clothes: solid, shaded, with a dark outline of 1 px. */
static it_paint part_paint(const uint8_t rgb[3], uint8_t bits)
{
    it_paint p = it_paint_solid(rgb, bits);
    p.shade = 0.35f;
    p.outline = 1.0f;
    for (int k = 0; k < 3; k++) p.oc[k] = p.c0[k] * 0.45f;
    return p;
}

/* ------------------------------------------------------------ skeleton */

typedef struct skel {
    float trx, try_, tcx, tcy; /* torso */
    float hrx, hry, hcx, hcy;  /* head */
    float sh[2][2], el[2][2], hand[2][2]; /* [side][x,y]; side 0 back, 1 front */
    float hip[2][2], knee[2][2], foot[2][2];
    float arm_r, leg_r;
    float shadow_rx, shadow_alpha;
    float lean; /* torso rotation towards the front (rad) */
} skel;

static void rot_about(float *x, float *y, float cx, float cy, float ang)
{
    float dx = *x - cx, dy = *y - cy, c = cosf(ang), s = sinf(ang);
    *x = cx + c * dx - s * dy;
    *y = cy + s * dx + c * dy;
}

static void skel_build(skel *s, int shape, int pose)
{
    static const float dims[3][4] = {{21, 19, 19, 19}, {14, 24, 16, 19}, {19, 19, 18, 17}};
    s->trx = dims[shape][0];
    s->try_ = dims[shape][1];
    s->hrx = dims[shape][2];
    s->hry = dims[shape][3];
    s->arm_r = 3.8f;
    s->leg_r = shape == IT_TOY_SHAPE_TALL ? 4.0f : 4.6f;
    float lift = pose == IT_TOY_POSE_JUMPING ? 16.0f : 0.0f;
    float drop = pose == IT_TOY_POSE_LANDING ? 9.0f : 0.0f;
    float bottom = -15.0f - lift + drop;
    s->tcx = 0;
    s->tcy = bottom - s->try_;
    float top = s->tcy - s->try_;
    s->hcx = 0.0f;
    s->hcy = top - s->hry * 0.75f;
    float shy = top + 8.0f, hipx = s->trx * 0.45f, hipy = bottom - 3.0f;
    for (int side = 0; side < 2; side++) {
        float sg = side ? 1.0f : -1.0f;
        s->sh[side][0] = sg * (s->trx - 3.0f);
        s->sh[side][1] = shy;
        s->hip[side][0] = sg * hipx;
        s->hip[side][1] = hipy;
        float hx, hy, kx, ky, fx, fy;
        switch (pose) {
        case IT_TOY_POSE_ARMS_UP:
            hx = sg * (s->trx + 12.0f);
            hy = s->hcy - s->hry - 2.0f;
            break;
        case IT_TOY_POSE_JUMPING:
            hx = sg * (s->trx + 14.0f);
            hy = shy - 16.0f;
            break;
        case IT_TOY_POSE_LANDING:
            hx = side ? s->trx + 13.0f : -(s->trx + 15.0f);
            hy = side ? -4.0f : shy - 9.0f;
            break;
        default:
            hx = sg * (s->trx + 6.0f);
            hy = shy + 19.0f;
            break;
        }
        s->hand[side][0] = hx;
        s->hand[side][1] = hy;
        s->el[side][0] = 0.5f * (s->sh[side][0] + hx);
        s->el[side][1] = 0.5f * (shy + hy);
        if (pose == IT_TOY_POSE_LANDING && side) {
            s->el[side][0] = s->trx + 9.0f;
            s->el[side][1] = shy + 13.0f;
        }
        switch (pose) {
        case IT_TOY_POSE_JUMPING:
            kx = sg * (hipx + 5.0f);
            ky = hipy + 8.0f;
            fx = sg * (hipx + 1.0f);
            fy = hipy + 14.0f;
            break;
        case IT_TOY_POSE_LANDING:
            if (side) {
                kx = hipx + 10.0f;
                ky = hipy - 5.0f;
                fx = hipx + 11.0f;
                fy = -3.0f;
            } else {
                kx = -hipx - 3.0f;
                ky = -3.0f;
                fx = -hipx - 17.0f;
                fy = -3.0f;
            }
            break;
        default:
            kx = sg * (hipx + 0.5f);
            ky = 0.5f * (hipy - 3.0f);
            fx = sg * (hipx + 1.0f);
            fy = -3.0f;
            break;
        }
        s->knee[side][0] = kx;
        s->knee[side][1] = ky;
        s->foot[side][0] = fx;
        s->foot[side][1] = fy;
    }
    s->shadow_rx = s->trx * (pose == IT_TOY_POSE_LANDING ? 1.9f : pose == IT_TOY_POSE_JUMPING ? 0.9f : 1.3f);
    s->shadow_alpha = pose == IT_TOY_POSE_JUMPING ? 0.16f : 0.24f;
    /* The landing leans forward: upper body, head and raised arm turn about
     * the torso centre; the fist and the legs stay on the ground. */
    s->lean = pose == IT_TOY_POSE_LANDING ? 0.38f : 0.0f;
    if (s->lean != 0.0f) {
        for (int side = 0; side < 2; side++) rot_about(&s->sh[side][0], &s->sh[side][1], s->tcx, s->tcy, s->lean);
        rot_about(&s->hand[0][0], &s->hand[0][1], s->tcx, s->tcy, s->lean);
        rot_about(&s->el[0][0], &s->el[0][1], s->tcx, s->tcy, s->lean);
        rot_about(&s->hcx, &s->hcy, s->tcx, s->tcy, s->lean);
        s->hcy += 3.0f;
    }
}

/* ------------------------------------------------------------ context */

typedef struct dctx {
    it_canvas *cv;
    const it_toy_attrs *a;
    xf t;
    skel s;
    float fs;               /* face feature shift towards the facing side */
    uint8_t skin[3], skin_dark[3];
    it_shape torso, head;
} dctx;

static const uint8_t *attr_rgb(int attr, int v) { return it_toy_attr_get(attr)->values[v].rgb; }

static void fill(dctx *d, const it_shape *s, const it_paint *p) { it_raster_fill(d->cv, s, p); }

static it_shape torso_shape(dctx *d)
{
    const skel *s = &d->s;
    if (d->a->v[IT_TOY_BODY_SHAPE] == IT_TOY_SHAPE_BLOCKY)
        return Rr(&d->t, s->tcx, s->tcy, s->trx, s->try_, 6.0f, s->lean);
    return E(&d->t, s->tcx, s->tcy, s->trx, s->try_, s->lean);
}

static it_shape head_shape(dctx *d)
{
    const skel *s = &d->s;
    if (d->a->v[IT_TOY_BODY_SHAPE] == IT_TOY_SHAPE_BLOCKY)
        return Rr(&d->t, s->hcx, s->hcy, s->hrx, s->hry, 7.0f, 0);
    return E(&d->t, s->hcx, s->hcy, s->hrx, s->hry, 0);
}

/* Outfit paint: the pattern is laid in pixel space so that torso and
 * sleeves continue each other. */
static it_paint outfit_paint(dctx *d)
{
    const uint8_t *c = attr_rgb(IT_TOY_OUTFIT_COLOUR, d->a->v[IT_TOY_OUTFIT_COLOUR]);
    uint8_t bits = IT_TOY_BIT(IT_TOY_PART_OUTFIT) | IT_TOY_BIT(IT_TOY_PART_BODY);
    it_paint p = part_paint(c, bits);
    uint8_t c1[3];
    if (luma(c) < 0.4f)
        rgb_mix(c1, c, WHITE, 0.6f);
    else
        rgb_mix(c1, c, INK, 0.55f);
    it_rgb_set(p.c1, c1);
    p.x0 = X(&d->t, 0);
    p.y0 = Y(&d->t, d->s.tcy);
    switch (d->a->v[IT_TOY_OUTFIT_PATTERN]) {
    case IT_TOY_PAT_STRIPED:
        p.kind = IT_PAINT_STRIPES;
        p.dx = 0;
        p.dy = 1;
        p.period = fmaxf(S(&d->t, 5.5f), 4.0f);
        p.duty = 0.45f;
        break;
    case IT_TOY_PAT_DOTTED:
        p.kind = IT_PAINT_DOTS;
        p.period = fmaxf(S(&d->t, 6.5f), 5.0f);
        p.radius = fmaxf(S(&d->t, 1.5f), 1.2f);
        break;
    case IT_TOY_PAT_LEATHER:
        p.kind = IT_PAINT_SHINE;
        rgb_mix(c1, c, WHITE, 0.75f);
        it_rgb_set(p.c1, c1);
        p.dx = d->t.flip;
        p.shade = 0.2f;
        break;
    default:
        break;
    }
    return p;
}

/* ------------------------------------------------------------ body */

static void draw_shadow(dctx *d)
{
    uint8_t black[3] = {0, 0, 0};
    it_paint p = it_paint_solid(black, 0);
    p.alpha = d->s.shadow_alpha;
    p.mask_mode = IT_MASK_NONE;
    it_shape e = E(&d->t, 0, -0.5f, d->s.shadow_rx, 3.2f, 0);
    fill(d, &e, &p);
}

static void draw_legs(dctx *d)
{
    const skel *s = &d->s;
    uint8_t bits = IT_TOY_BIT(IT_TOY_PART_BODY);
    it_paint skin = part_paint(d->skin, bits), dark = part_paint(d->skin_dark, bits);
    int overalls = d->a->v[IT_TOY_OUTFIT] == IT_TOY_OUTFIT_OVERALLS;
    it_paint cloth = overalls ? outfit_paint(d) : skin;
    for (int side = 0; side < 2; side++) {
        it_shape thigh = Cap(&d->t, s->hip[side][0], s->hip[side][1], s->knee[side][0], s->knee[side][1], s->leg_r);
        it_shape shin = Cap(&d->t, s->knee[side][0], s->knee[side][1], s->foot[side][0], s->foot[side][1], s->leg_r);
        float fdir = s->foot[side][0] >= s->knee[side][0] ? 1.0f : -1.0f;
        if (d->a->v[IT_TOY_POSE] != IT_TOY_POSE_LANDING) fdir = side ? 1.0f : -1.0f;
        it_shape foot = E(&d->t, s->foot[side][0] + fdir * 3.0f, s->foot[side][1] + 0.5f, 6.5f, 3.5f, 0);
        fill(d, &shin, &skin);
        fill(d, &thigh, overalls ? &cloth : &skin);
        fill(d, &foot, &dark);
    }
}

static void draw_torso(dctx *d)
{
    it_paint skin = part_paint(d->skin, IT_TOY_BIT(IT_TOY_PART_BODY));
    fill(d, &d->torso, &skin);
}

static void draw_outfit_torso(dctx *d)
{
    int kind = d->a->v[IT_TOY_OUTFIT];
    if (kind == IT_TOY_OUTFIT_NONE) return;
    const skel *s = &d->s;
    float top = s->tcy - s->try_, bottom = s->tcy + s->try_;
    it_paint p = outfit_paint(d);
    if (kind == IT_TOY_OUTFIT_JACKET) {
        it_shape body = d->torso;
        body.grow = S(&d->t, 0.8f);
        fill(d, &body, &p);
        /* Open front: a light shirt in a V, so the jacket reads as a jacket. */
        const uint8_t *c = attr_rgb(IT_TOY_OUTFIT_COLOUR, d->a->v[IT_TOY_OUTFIT_COLOUR]);
        uint8_t shirt[3] = {225, 225, 230};
        if (luma(c) > 0.8f) shirt[0] = shirt[1] = shirt[2] = 70;
        float v[] = {-5.5f, top - 1, 5.5f, top - 1, 0, top + s->try_ * 0.95f};
        it_shape vs = Poly(&d->t, v, 3);
        vs.clip = &d->torso;
        it_paint vp = part_paint(shirt, p.mask_bits);
        fill(d, &vs, &vp);
        float zip[] = {0, top + s->try_ * 0.95f, 0, bottom};
        it_shape z = Cap(&d->t, zip[0], zip[1], zip[2], zip[3], 0.5f);
        it_paint zp = it_paint_solid(INK, p.mask_bits);
        zp.alpha = 0.7f;
        z.clip = &d->torso;
        fill(d, &z, &zp);
    } else if (kind == IT_TOY_OUTFIT_TSHIRT) {
        it_shape hp = Below(&d->t, top + s->try_ * 0.22f);
        it_shape hb = Above(&d->t, bottom - s->try_ * 0.35f);
        hp.clip = &hb;
        it_shape body = d->torso;
        body.grow = S(&d->t, 0.8f);
        body.clip = &hp;
        fill(d, &body, &p);
    } else { /* overalls: trousers part, bib, straps, buttons */
        it_shape waist = Below(&d->t, s->tcy + s->try_ * 0.15f);
        it_shape low = d->torso;
        low.grow = S(&d->t, 0.8f);
        low.clip = &waist;
        fill(d, &low, &p);
        it_shape bib = Rr(&d->t, 0, s->tcy - s->try_ * 0.1f, s->trx * 0.5f, s->try_ * 0.3f, 2.0f, 0);
        bib.clip = &d->torso;
        fill(d, &bib, &p);
        float by = s->tcy - s->try_ * 0.38f;
        for (int side = 0; side < 2; side++) {
            float sg = side ? 1.0f : -1.0f;
            it_shape strap = Cap(&d->t, sg * s->trx * 0.38f, by, sg * (s->trx * 0.55f), top + 2.0f, 1.6f);
            strap.clip = &d->torso;
            fill(d, &strap, &p);
            uint8_t gold[3] = {240, 200, 60};
            it_paint bp = part_paint(gold, p.mask_bits);
            it_shape btn = E(&d->t, sg * s->trx * 0.36f, by + 1.0f, 1.6f, 1.6f, 0);
            fill(d, &btn, &bp);
        }
    }
}

static void draw_arms(dctx *d)
{
    const skel *s = &d->s;
    int kind = d->a->v[IT_TOY_OUTFIT];
    it_paint skin = part_paint(d->skin, IT_TOY_BIT(IT_TOY_PART_BODY));
    it_paint dark = part_paint(d->skin_dark, IT_TOY_BIT(IT_TOY_PART_BODY));
    it_paint cloth = kind != IT_TOY_OUTFIT_NONE ? outfit_paint(d) : skin;
    for (int side = 0; side < 2; side++) {
        const float *sh = s->sh[side], *el = s->el[side], *hd = s->hand[side];
        it_shape up = Cap(&d->t, sh[0], sh[1], el[0], el[1], s->arm_r);
        it_shape lo = Cap(&d->t, el[0], el[1], hd[0], hd[1], s->arm_r);
        fill(d, &up, &skin);
        fill(d, &lo, &skin);
        if (kind == IT_TOY_OUTFIT_JACKET) {
            float wx = el[0] + 0.75f * (hd[0] - el[0]), wy = el[1] + 0.75f * (hd[1] - el[1]);
            it_shape su = Cap(&d->t, sh[0], sh[1], el[0], el[1], s->arm_r + 1.3f);
            it_shape sl = Cap(&d->t, el[0], el[1], wx, wy, s->arm_r + 1.3f);
            fill(d, &su, &cloth);
            fill(d, &sl, &cloth);
        } else if (kind == IT_TOY_OUTFIT_TSHIRT) {
            float mx = sh[0] + 0.6f * (el[0] - sh[0]), my = sh[1] + 0.6f * (el[1] - sh[1]);
            it_shape ss = Cap(&d->t, sh[0], sh[1], mx, my, s->arm_r + 1.5f);
            fill(d, &ss, &cloth);
        }
        it_shape hand = E(&d->t, hd[0], hd[1], 4.6f, 4.6f, 0);
        fill(d, &hand, &dark);
    }
}

/* ------------------------------------------------------------ accessories */

static void draw_accessory(dctx *d, int after_head)
{
    int kind = d->a->v[IT_TOY_ACCESSORY];
    if (kind == IT_TOY_ACC_NONE || (kind == IT_TOY_ACC_BOWTIE) != after_head) return;
    const skel *s = &d->s;
    const uint8_t *c = attr_rgb(IT_TOY_ACCESSORY_COLOUR, d->a->v[IT_TOY_ACCESSORY_COLOUR]);
    uint8_t bits = IT_TOY_BIT(IT_TOY_PART_ACCESSORY) | IT_TOY_BIT(IT_TOY_PART_BODY);
    it_paint p = part_paint(c, bits);
    float neck = s->hcy + s->hry; /* bottom of the head */
    float nx = s->hcx * 0.5f;
    if (kind == IT_TOY_ACC_NECKLACE) {
        p.outline = 0.6f;
        it_shape chain = Arc(&d->t, nx, neck - 7.0f, 13.0f, 0.22f * PI_F, 0.78f * PI_F, 1.1f);
        fill(d, &chain, &p);
        float pend[] = {nx, neck + 3.5f, nx + 3.5f, neck + 7.5f, nx, neck + 12.0f, nx - 3.5f, neck + 7.5f};
        it_shape pe = Poly(&d->t, pend, 4);
        p.outline = 1.0f;
        fill(d, &pe, &p);
    } else if (kind == IT_TOY_ACC_SCARF) {
        it_shape tail = Rr(&d->t, nx + 5.0f, neck + 9.0f, 3.4f, 9.0f, 2.0f, -0.25f);
        fill(d, &tail, &p);
        it_shape band = Rr(&d->t, nx, neck + 1.5f, s->hrx * 0.85f, 4.2f, 3.5f, 0);
        fill(d, &band, &p);
        /* Fringe: darker stripes across the end of the tail. */
        it_paint fr = p;
        fr.kind = IT_PAINT_STRIPES;
        uint8_t c1[3];
        rgb_mix(c1, c, INK, 0.5f);
        it_rgb_set(fr.c1, c1);
        fr.x0 = 0;
        fr.y0 = 0;
        fr.dx = 1;
        fr.dy = 0;
        fr.period = fmaxf(S(&d->t, 2.2f), 2.0f);
        fr.duty = 0.4f;
        it_shape end = Rr(&d->t, nx + 6.6f, neck + 15.5f, 3.3f, 2.5f, 1.0f, -0.25f);
        fill(d, &end, &fr);
    } else {
        float y = neck + 2.5f;
        float l[] = {nx, y, nx - 9.0f, y - 5.0f, nx - 9.0f, y + 5.0f};
        float r[] = {nx, y, nx + 9.0f, y - 5.0f, nx + 9.0f, y + 5.0f};
        it_shape wl = Poly(&d->t, l, 3), wr = Poly(&d->t, r, 3);
        fill(d, &wl, &p);
        fill(d, &wr, &p);
        it_shape knot = E(&d->t, nx, y, 2.6f, 2.6f, 0);
        fill(d, &knot, &p);
    }
}

/* ------------------------------------------------------------ face */

static void eye_layout(dctx *d, int n, float ex[3], float ey[3], float *er)
{
    const skel *s = &d->s;
    float cx = s->hcx + d->fs, cy = s->hcy - 2.5f;
    if (n == 1) {
        ex[0] = cx;
        ey[0] = cy;
        *er = 6.5f;
    } else if (n == 2) {
        float dx = s->hrx * 0.38f;
        ex[0] = cx - dx;
        ex[1] = cx + dx;
        ey[0] = ey[1] = cy;
        *er = 4.6f;
    } else {
        float dx = s->hrx * 0.58f;
        ex[0] = cx - dx;
        ex[1] = cx;
        ex[2] = cx + dx;
        ey[0] = ey[2] = cy + 1.0f;
        ey[1] = cy - 3.0f;
        *er = 3.6f;
    }
}

static void draw_eyes(dctx *d)
{
    int n = d->a->v[IT_TOY_EYE_COUNT] + 1;
    float ex[3], ey[3], er;
    eye_layout(d, n, ex, ey, &er);
    uint8_t face_bits = IT_TOY_BIT(IT_TOY_PART_FACE) | IT_TOY_BIT(IT_TOY_PART_BODY);
    uint8_t eye_bits = face_bits | IT_TOY_BIT(IT_TOY_PART_EYES);
    if (d->a->v[IT_TOY_GOGGLES]) {
        uint8_t strap[3] = {70, 50, 40}, metal[3] = {160, 162, 175}, lens[3] = {185, 230, 245};
        it_shape band = Rr(&d->t, d->s.hcx, ey[0], d->s.hrx + 1.0f, 2.4f, 1.0f, 0);
        band.clip = &d->head;
        it_paint bp = part_paint(strap, face_bits);
        fill(d, &band, &bp);
        it_paint mp = part_paint(metal, face_bits), lp = it_paint_solid(lens, face_bits);
        for (int i = 0; i < n; i++) {
            it_shape fr = E(&d->t, ex[i], ey[i], er + 2.4f, er + 2.4f, 0);
            fill(d, &fr, &mp);
            it_shape le = E(&d->t, ex[i], ey[i], er + 1.2f, er + 1.2f, 0);
            fill(d, &le, &lp);
        }
    }
    it_paint white = part_paint(WHITE, eye_bits);
    white.shade = 0;
    white.outline = 0.9f;
    it_paint pupil = it_paint_solid(INK, eye_bits);
    it_paint glint = it_paint_solid(WHITE, eye_bits);
    float look = 0.9f * fabsf(d->a->facing);
    for (int i = 0; i < n; i++) {
        it_shape w = E(&d->t, ex[i], ey[i], er, er, 0);
        fill(d, &w, &white);
        it_shape pu = E(&d->t, ex[i] + look + 0.2f * er, ey[i] + 0.3f, er * 0.5f, er * 0.5f, 0);
        fill(d, &pu, &pupil);
        it_shape gl = E(&d->t, ex[i] + look + 0.05f * er, ey[i] - 0.2f * er, er * 0.17f, er * 0.17f, 0);
        fill(d, &gl, &glint);
    }
}

static void draw_mouth(dctx *d)
{
    const skel *s = &d->s;
    float cx = s->hcx + d->fs, my = s->hcy + s->hry * 0.45f;
    uint8_t bits = IT_TOY_BIT(IT_TOY_PART_FACE) | IT_TOY_BIT(IT_TOY_PART_BODY);
    uint8_t dark[3] = {70, 18, 22}, tongue[3] = {225, 95, 105};
    it_paint p = it_paint_solid(dark, bits);
    switch (d->a->v[IT_TOY_MOUTH]) {
    case IT_TOY_MOUTH_SMILE: {
        it_shape a = Arc(&d->t, cx, my - 6.0f, 7.0f, 0.2f * PI_F, 0.8f * PI_F, 1.2f);
        fill(d, &a, &p);
        break;
    }
    case IT_TOY_MOUTH_OPEN: {
        it_shape m = E(&d->t, cx, my + 0.5f, 4.8f, 4.0f, 0);
        fill(d, &m, &p);
        it_shape tg = E(&d->t, cx, my + 3.0f, 3.0f, 1.8f, 0);
        tg.clip = &m;
        it_paint tp = it_paint_solid(tongue, bits);
        fill(d, &tg, &tp);
        break;
    }
    case IT_TOY_MOUTH_FLAT: {
        it_shape l = Cap(&d->t, cx - 5.5f, my, cx + 5.5f, my, 1.2f);
        fill(d, &l, &p);
        break;
    }
    default: { /* fangs: a wide grin with two white teeth */
        it_shape a = Arc(&d->t, cx, my - 7.0f, 8.0f, 0.18f * PI_F, 0.82f * PI_F, 1.2f);
        fill(d, &a, &p);
        it_paint tp = part_paint(WHITE, bits);
        tp.outline = 0.6f;
        for (int i = -1; i <= 1; i += 2) {
            float x = cx + i * 3.6f, y = my - 7.0f + sqrtf(64.0f - 3.6f * 3.6f);
            float tri[] = {x - 1.9f, y - 0.3f, x + 1.9f, y - 0.3f, x, y + 4.2f};
            it_shape t = Poly(&d->t, tri, 3);
            fill(d, &t, &tp);
        }
        break;
    }
    }
}

static void star_points(float *xy, float cx, float cy, float r_out, float r_in, int n)
{
    for (int i = 0; i < 2 * n; i++) {
        float a = -PI_F / 2 + i * PI_F / n, r = (i % 2) ? r_in : r_out;
        xy[2 * i] = cx + r * cosf(a);
        xy[2 * i + 1] = cy + r * sinf(a);
    }
}

static void draw_marking(dctx *d)
{
    int m = d->a->v[IT_TOY_MARKING];
    const it_toy_character *ch = it_toy_character_get(d->a->character);
    if (m == IT_TOY_MARK_NONE || !ch) return;
    const skel *s = &d->s;
    uint8_t bits = IT_TOY_BIT(IT_TOY_PART_FACE) | IT_TOY_BIT(IT_TOY_PART_BODY);
    it_paint p = it_paint_solid(ch->marking_rgb, bits);
    p.outline = 0.6f;
    for (int k = 0; k < 3; k++) p.oc[k] = p.c0[k] * 0.5f;
    float cx = s->hcx + 0.5f * d->fs + s->hrx * 0.56f, cy = s->hcy + s->hry * 0.22f;
    float r = s->hrx * 0.3f;
    it_shape sh[4];
    int n = 0;
    float xy[2 * IT_POLY_MAX];
    switch (m) {
    case IT_TOY_MARK_STAR:
        star_points(xy, cx, cy, r * 1.1f, r * 0.45f, 5);
        sh[n++] = Poly(&d->t, xy, 10);
        break;
    case IT_TOY_MARK_BOLT: {
        const float b[] = {-0.2f, -1, 0.55f, -1, 0.1f, -0.15f, 0.6f, -0.15f, -0.35f, 1.1f, -0.05f, 0.12f, -0.5f, 0.12f};
        for (int i = 0; i < 7; i++) {
            xy[2 * i] = cx + b[2 * i] * r;
            xy[2 * i + 1] = cy + b[2 * i + 1] * r;
        }
        sh[n++] = Poly(&d->t, xy, 7);
        break;
    }
    case IT_TOY_MARK_FRECKLES:
        for (int side = -1; side <= 1; side += 2)
            for (int i = 0; i < 3; i++) {
                float fx = s->hcx + d->fs + side * s->hrx * (0.5f + 0.12f * (i == 1)), fy = cy - 1.5f + 2.2f * i;
                it_shape f = E(&d->t, fx + side * (i == 2 ? 2.2f : 0), fy, 1.35f, 1.35f, 0);
                fill(d, &f, &p);
            }
        break;
    case IT_TOY_MARK_CROSS:
        sh[n++] = Rr(&d->t, cx, cy, r, r * 0.3f, 0.5f, 0);
        sh[n++] = Rr(&d->t, cx, cy, r * 0.3f, r, 0.5f, 0);
        break;
    case IT_TOY_MARK_MOON: {
        it_shape cut;
        sh[n] = E(&d->t, cx, cy, r, r, 0);
        cut = E(&d->t, cx + 0.5f * r, cy - 0.25f * r, r * 0.85f, r * 0.85f, 0);
        sh[n].cut = &cut;
        it_paint pm = p;
        fill(d, &sh[n], &pm);
        break;
    }
    case IT_TOY_MARK_DIAMOND: {
        float dm[] = {cx, cy - r * 1.1f, cx + r * 0.7f, cy, cx, cy + r * 1.1f, cx - r * 0.7f, cy};
        sh[n++] = Poly(&d->t, dm, 4);
        break;
    }
    case IT_TOY_MARK_HEART: {
        float tri[] = {cx - r * 0.95f, cy - r * 0.1f, cx + r * 0.95f, cy - r * 0.1f, cx, cy + r};
        sh[n++] = Poly(&d->t, tri, 3);
        sh[n++] = E(&d->t, cx - r * 0.47f, cy - r * 0.3f, r * 0.52f, r * 0.52f, 0);
        sh[n++] = E(&d->t, cx + r * 0.47f, cy - r * 0.3f, r * 0.52f, r * 0.52f, 0);
        p.outline = 0;
        break;
    }
    case IT_TOY_MARK_WHISKERS:
        for (int side = -1; side <= 1; side += 2)
            for (int i = 0; i < 3; i++) {
                float x0 = s->hcx + d->fs + side * s->hrx * 0.42f, y0 = cy + 1.0f + 2.4f * (i - 1);
                it_shape w = Cap(&d->t, x0, y0, x0 + side * s->hrx * 0.62f, y0 + 1.8f * (i - 1), 0.55f);
                fill(d, &w, &p);
            }
        break;
    case IT_TOY_MARK_SCAR:
        sh[n++] = Cap(&d->t, cx - r * 0.6f, cy - r * 1.2f, cx + r * 0.6f, cy + r * 1.2f, 0.8f);
        for (int i = -1; i <= 1; i++) {
            float mx = cx + i * r * 0.4f, my = cy + i * r * 0.8f;
            sh[n++] = Cap(&d->t, mx - r * 0.55f, my + r * 0.25f, mx + r * 0.55f, my - r * 0.25f, 0.55f);
        }
        break;
    case IT_TOY_MARK_TEAR: {
        float tri[] = {cx - r * 0.52f, cy + r * 0.2f, cx + r * 0.52f, cy + r * 0.2f, cx, cy - r * 1.1f};
        sh[n++] = E(&d->t, cx, cy + r * 0.4f, r * 0.58f, r * 0.58f, 0);
        sh[n++] = Poly(&d->t, tri, 3);
        p.outline = 0;
        break;
    }
    case IT_TOY_MARK_CLOVER:
        for (int i = 0; i < 3; i++) {
            float a = -PI_F / 2 + i * 2 * PI_F / 3;
            sh[n++] = E(&d->t, cx + 0.48f * r * cosf(a), cy - 0.15f * r + 0.48f * r * sinf(a), r * 0.45f, r * 0.45f, 0);
        }
        sh[n++] = Cap(&d->t, cx, cy, cx + r * 0.3f, cy + r * 1.1f, 0.5f);
        p.outline = 0;
        break;
    default: { /* triangle */
        float tri[] = {cx, cy - r * 1.1f, cx + r, cy + r * 0.8f, cx - r, cy + r * 0.8f};
        sh[n++] = Poly(&d->t, tri, 3);
        break;
    }
    }
    for (int i = 0; i < n; i++) fill(d, &sh[i], &p);
}

/* ------------------------------------------------------------ hair, hat */

static void hair_paint(dctx *d, it_paint *p)
{
    uint8_t bits = IT_TOY_BIT(IT_TOY_PART_HAIR) | IT_TOY_BIT(IT_TOY_PART_BODY);
    *p = part_paint(attr_rgb(IT_TOY_HAIR_COLOUR, d->a->v[IT_TOY_HAIR_COLOUR]), bits);
}

static void draw_hair_back(dctx *d)
{
    if (d->a->v[IT_TOY_HAIR_STYLE] != IT_TOY_HAIR_LONG) return;
    const skel *s = &d->s;
    it_paint p;
    hair_paint(d, &p);
    it_shape back = Rr(&d->t, s->hcx, s->hcy + s->hry * 0.45f, s->hrx + 3.5f, s->hry * 1.4f, 6.0f, 0);
    fill(d, &back, &p);
}

static void draw_hair_front(dctx *d)
{
    int style = d->a->v[IT_TOY_HAIR_STYLE];
    if (style == IT_TOY_HAIR_BALD) return;
    const skel *s = &d->s;
    it_paint p;
    hair_paint(d, &p);
    float hx = s->hcx, hy = s->hcy, rx = s->hrx, ry = s->hry;
    if (style == IT_TOY_HAIR_SPIKY) {
        for (int i = 0; i < 7; i++) {
            float a = PI_F * (1.0f + (i + 0.5f) / 7.0f), w = 0.2f;
            float tri[] = {hx + rx * cosf(a - w), hy + ry * sinf(a - w), hx + (rx + 9.0f) * cosf(a),
                           hy + (ry + 9.0f) * sinf(a), hx + rx * cosf(a + w), hy + ry * sinf(a + w)};
            it_shape t = Poly(&d->t, tri, 3);
            fill(d, &t, &p);
        }
    } else if (style == IT_TOY_HAIR_CURLY) {
        for (int i = 0; i < 11; i++) {
            float a = PI_F * (0.92f + 1.16f * i / 10.0f);
            it_shape c = E(&d->t, hx + (rx + 0.5f) * cosf(a), hy + (ry + 0.5f) * sinf(a), 4.6f, 4.6f, 0);
            fill(d, &c, &p);
        }
    } else {
        for (int side = -1; side <= 1; side += 2) {
            it_shape lock = Cap(&d->t, hx + side * (rx + 0.3f), hy - ry * 0.3f, hx + side * (rx + 1.5f),
                                hy + ry * 1.3f, 3.0f);
            fill(d, &lock, &p);
        }
    }
    it_shape cut = Above(&d->t, hy - ry * 0.42f);
    it_shape cap = d->head;
    cap.grow = S(&d->t, 2.0f);
    cap.clip = &cut;
    fill(d, &cap, &p);
}

static void draw_hat(dctx *d)
{
    int kind = d->a->v[IT_TOY_HAT];
    if (kind == IT_TOY_HAT_NONE) return;
    const skel *s = &d->s;
    const uint8_t *c = attr_rgb(IT_TOY_HAT_COLOUR, d->a->v[IT_TOY_HAT_COLOUR]);
    uint8_t bits = IT_TOY_BIT(IT_TOY_PART_HAT) | IT_TOY_BIT(IT_TOY_PART_BODY);
    it_paint p = part_paint(c, bits);
    uint8_t c2[3];
    if (luma(c) < 0.4f)
        rgb_mix(c2, c, WHITE, 0.6f);
    else
        rgb_mix(c2, c, INK, 0.5f);
    it_paint p2 = part_paint(c2, bits);
    float hx = s->hcx, hy = s->hcy, rx = s->hrx, ry = s->hry;
    if (kind == IT_TOY_HAT_CAP) {
        it_shape cut = Above(&d->t, hy - ry * 0.38f);
        it_shape dome = d->head;
        dome.grow = S(&d->t, 2.8f);
        dome.clip = &cut;
        fill(d, &dome, &p);
        it_shape brim = E(&d->t, hx + rx * 0.85f, hy - ry * 0.4f, rx * 0.75f, 2.6f, 0);
        fill(d, &brim, &p2);
        it_shape btn = E(&d->t, hx, hy - ry - 2.5f, 2.0f, 1.5f, 0);
        fill(d, &btn, &p2);
    } else if (kind == IT_TOY_HAT_TOP) {
        float by = hy - ry * 0.62f;
        it_shape crown = Rr(&d->t, hx, by - 12.0f, rx * 0.72f, 12.0f, 2.0f, 0);
        fill(d, &crown, &p);
        it_shape band = Rr(&d->t, hx, by - 3.5f, rx * 0.72f, 2.4f, 0.5f, 0);
        fill(d, &band, &p2);
        it_shape brim = Rr(&d->t, hx, by, rx * 1.2f, 2.3f, 1.5f, 0);
        fill(d, &brim, &p);
    } else if (kind == IT_TOY_HAT_BEANIE) {
        it_shape cut = Above(&d->t, hy - ry * 0.4f);
        it_shape dome = E(&d->t, hx, hy - ry * 0.4f, rx * 1.08f, ry * 0.85f, 0);
        dome.clip = &cut;
        fill(d, &dome, &p);
        it_shape fold = Rr(&d->t, hx, hy - ry * 0.48f, rx * 1.1f, 3.4f, 2.0f, 0);
        it_paint fp = p;
        fp.kind = IT_PAINT_STRIPES;
        memcpy(fp.c1, p2.c0, sizeof fp.c1);
        fp.x0 = X(&d->t, hx);
        fp.y0 = 0;
        fp.dx = 1;
        fp.dy = 0;
        fp.period = fmaxf(S(&d->t, 3.0f), 2.5f);
        fp.duty = 0.35f;
        fill(d, &fold, &fp);
        uint8_t pom[3];
        rgb_mix(pom, c, WHITE, 0.55f);
        it_paint pp = part_paint(pom, bits);
        it_shape ball = E(&d->t, hx, hy - ry * 0.4f - ry * 0.85f - 1.5f, 4.2f, 4.2f, 0);
        fill(d, &ball, &pp);
    } else {
        float y0 = hy - ry * 0.6f;
        float cr[] = {hx - rx * 0.85f, y0, hx - rx * 0.85f, y0 - 13.0f, hx - rx * 0.42f, y0 - 6.0f, hx, y0 - 15.0f,
                      hx + rx * 0.42f, y0 - 6.0f, hx + rx * 0.85f, y0 - 13.0f, hx + rx * 0.85f, y0};
        it_shape crown = Poly(&d->t, cr, 7);
        fill(d, &crown, &p);
        for (int i = -1; i <= 1; i++) {
            it_shape j = E(&d->t, hx + i * rx * 0.45f, y0 - 2.8f, 1.8f, 1.8f, 0);
            fill(d, &j, &p2);
        }
    }
}

/* ------------------------------------------------------------ backgrounds */

static void vgrad(it_canvas *cv, int y0, int y1, const uint8_t top[3], const uint8_t bot[3])
{
    if (y0 < 0) y0 = 0;
    if (y1 > cv->h) y1 = cv->h;
    for (int y = y0; y < y1; y++) {
        float t = y1 - y0 > 1 ? (float)(y - y0) / (float)(y1 - y0 - 1) : 0;
        float c[3];
        for (int k = 0; k < 3; k++) c[k] = (top[k] + (bot[k] - top[k]) * t) / 255.0f;
        float *row = cv->rgb + (size_t)y * cv->w * 3;
        for (int x = 0; x < cv->w; x++) {
            row[3 * x] = c[0];
            row[3 * x + 1] = c[1];
            row[3 * x + 2] = c[2];
        }
    }
}

/* A full-width horizontal band centred on yc, half height hh, blended with
 * alpha; per-row coverage is the exact overlap, so it is anti-aliased
 * without per-pixel distances (backgrounds are a third of the work). */
static void hband(it_canvas *cv, float yc, float hh, const uint8_t c[3], float alpha)
{
    int y0 = (int)floorf(yc - hh), y1 = (int)ceilf(yc + hh);
    for (int y = y0 < 0 ? 0 : y0; y < y1 && y < cv->h; y++) {
        float cov = fminf((float)y + 1.0f, yc + hh) - fmaxf((float)y, yc - hh);
        if (cov <= 0) continue;
        cov *= alpha;
        float col[3] = {c[0] / 255.0f, c[1] / 255.0f, c[2] / 255.0f};
        float *row = cv->rgb + (size_t)y * cv->w * 3;
        for (int x = 0; x < cv->w; x++)
            for (int k = 0; k < 3; k++) row[3 * x + k] += (col[k] - row[3 * x + k]) * cov;
    }
}

static void bg_paint(it_canvas *cv, const it_shape *s, const uint8_t c[3], float alpha)
{
    it_paint p = it_paint_solid(c, 0);
    p.alpha = alpha;
    p.mask_mode = IT_MASK_NONE;
    it_raster_fill(cv, s, &p);
}

static void draw_cloud(it_canvas *cv, float x, float y, float r)
{
    const uint8_t w[3] = {252, 252, 255};
    it_shape parts[4] = {it_shape_circle(x, y, r), it_shape_circle(x - r * 0.9f, y + r * 0.35f, r * 0.7f),
                         it_shape_circle(x + r * 0.95f, y + r * 0.3f, r * 0.75f),
                         it_shape_rrect(x, y + r * 0.6f, r * 1.6f, r * 0.4f, r * 0.4f, 0)};
    for (int i = 0; i < 4; i++) bg_paint(cv, &parts[i], w, 1.0f);
}

static void draw_background(it_canvas *cv, int kind, uint32_t detail, float ground_y)
{
    it_rng r;
    it_rng_init(&r, detail);
    float W = (float)cv->w, H = (float)cv->h, u = H / 128.0f;
    int hz = (int)(ground_y - 0.26f * H); /* horizon */
    switch (kind) {
    case IT_TOY_BG_SKY: {
        const uint8_t top[3] = {60, 130, 225}, bot[3] = {170, 210, 250};
        vgrad(cv, 0, cv->h, top, bot);
        int n = 2 + (int)it_rng_below(&r, 2);
        for (int i = 0; i < n; i++)
            draw_cloud(cv, W * (0.1f + 0.8f * it_rng_float(&r)), H * (0.1f + 0.45f * it_rng_float(&r)),
                       u * (5.0f + 3.0f * it_rng_float(&r)));
        break;
    }
    case IT_TOY_BG_GRASS: {
        const uint8_t st[3] = {165, 205, 245}, sb[3] = {215, 235, 250}, gt[3] = {120, 195, 85},
                      gb[3] = {70, 150, 50}, blade[3] = {45, 115, 40};
        vgrad(cv, 0, hz, st, sb);
        vgrad(cv, hz, cv->h, gt, gb);
        for (int i = 0; i < 16; i++) {
            float x = W * it_rng_float(&r), y = hz + (H - hz) * (0.1f + 0.9f * it_rng_float(&r));
            it_shape b1 = it_shape_capsule(x, y, x - 1.2f * u, y - 3.5f * u, 0.55f * u);
            it_shape b2 = it_shape_capsule(x + 1.5f * u, y, x + 2.5f * u, y - 3.0f * u, 0.55f * u);
            bg_paint(cv, &b1, blade, 1.0f);
            bg_paint(cv, &b2, blade, 1.0f);
        }
        break;
    }
    case IT_TOY_BG_ROOM: {
        static const uint8_t walls[3][3] = {{235, 220, 190}, {205, 222, 232}, {232, 208, 208}};
        const uint8_t *wall = walls[it_rng_below(&r, 3)];
        uint8_t wall2[3];
        rgb_mix(wall2, wall, INK, 0.12f);
        const uint8_t ft[3] = {170, 120, 75}, fb[3] = {140, 95, 55}, line[3] = {105, 70, 40};
        vgrad(cv, 0, hz, wall, wall2);
        vgrad(cv, hz, cv->h, ft, fb);
        for (float y = hz + 5.0f * u; y < H; y += 7.0f * u) hband(cv, y, 0.45f * u, line, 0.8f);
        const uint8_t sk[3] = {250, 250, 245};
        hband(cv, (float)hz, 1.2f * u, sk, 1.0f);
        float wx = W * (0.15f + 0.7f * it_rng_float(&r)), wy = H * 0.22f;
        const uint8_t frame[3] = {250, 250, 250}, pane[3] = {160, 205, 240};
        it_shape f = it_shape_rrect(wx, wy, 13 * u, 11 * u, 1.0f * u, 0);
        it_shape pn = it_shape_rrect(wx, wy, 11 * u, 9 * u, 0, 0);
        bg_paint(cv, &f, frame, 1.0f);
        bg_paint(cv, &pn, pane, 1.0f);
        it_shape bar1 = it_shape_rrect(wx, wy, 11 * u, 0.7f * u, 0, 0), bar2 = it_shape_rrect(wx, wy, 0.7f * u, 9 * u, 0, 0);
        bg_paint(cv, &bar1, frame, 1.0f);
        bg_paint(cv, &bar2, frame, 1.0f);
        break;
    }
    case IT_TOY_BG_NIGHT: {
        const uint8_t top[3] = {12, 16, 45}, bot[3] = {35, 45, 95}, hill[3] = {28, 42, 50}, star[3] = {255, 250, 210};
        vgrad(cv, 0, cv->h, top, bot);
        for (int i = 0; i < 22; i++) {
            it_shape s = it_shape_circle(W * it_rng_float(&r), hz * it_rng_float(&r), u * (0.5f + 0.5f * it_rng_float(&r)));
            bg_paint(cv, &s, star, 1.0f);
        }
        float mx = W * (it_rng_float(&r) < 0.5f ? 0.14f : 0.86f), my = H * 0.14f;
        it_shape cut;
        it_shape moon = it_shape_circle(mx, my, 7.5f * u);
        cut = it_shape_circle(mx + 3.5f * u, my - 2.0f * u, 6.5f * u);
        moon.cut = &cut;
        bg_paint(cv, &moon, star, 1.0f);
        hband(cv, 0.5f * (hz + H), 0.5f * (H - hz), hill, 1.0f);
        break;
    }
    default: {
        static const uint8_t plain[6][3] = {{236, 236, 236}, {250, 240, 215}, {235, 225, 245},
                                            {222, 244, 222}, {250, 226, 222}, {214, 214, 220}};
        const uint8_t *c = plain[it_rng_below(&r, 6)];
        vgrad(cv, 0, cv->h, c, c);
        break;
    }
    }
}

/* ------------------------------------------------------------ truth */

static const char *g_part_names[IT_TOY_N_PARTS] = {"face", "eyes", "hair", "hat", "outfit", "accessory", "body"};

const char *it_toy_part_name(int part) { return part >= 0 && part < IT_TOY_N_PARTS ? g_part_names[part] : "?"; }

int it_toy_part_find(const char *name)
{
    for (int p = 0; p < IT_TOY_N_PARTS; p++)
        if (strcmp(g_part_names[p], name) == 0) return p;
    return -1;
}

/* One pass per row that bins pixels by mask value (a creature has a dozen
 * distinct values), then spreads each value's count and x extent over its
 * bits: no per-pixel bit loop. */
void it_toy_truth_from_mask(it_toy_truth *t, const uint8_t *mask, int w, int h)
{
    int b[IT_TOY_N_PARTS][4];
    for (int p = 0; p < IT_TOY_N_PARTS; p++) {
        b[p][0] = w;
        b[p][1] = h;
        b[p][2] = b[p][3] = -1;
        t->pixels[p] = 0;
    }
    int cnt[256], first[256], last[256], seen[256];
    memset(cnt, 0, sizeof cnt);
    for (int y = 0; y < h; y++) {
        const uint8_t *row = mask + (size_t)y * w;
        int n_seen = 0;
        for (int x = 0; x < w; x++) {
            int v = row[x];
            if (!v) continue;
            if (!cnt[v]) {
                seen[n_seen++] = v;
                first[v] = x;
            }
            cnt[v]++;
            last[v] = x;
        }
        for (int i = 0; i < n_seen; i++) {
            int v = seen[i];
            for (unsigned m = (unsigned)v; m; m &= m - 1) {
                int p = __builtin_ctz(m);
                if (p >= IT_TOY_N_PARTS) continue;
                t->pixels[p] += cnt[v];
                if (first[v] < b[p][0]) b[p][0] = first[v];
                if (last[v] > b[p][2]) b[p][2] = last[v];
                if (y < b[p][1]) b[p][1] = y;
                if (y > b[p][3]) b[p][3] = y;
            }
            cnt[v] = 0;
        }
    }
    for (int p = 0; p < IT_TOY_N_PARTS; p++) {
        if (t->pixels[p] == 0) {
            memset(t->box[p], 0, sizeof t->box[p]);
            continue;
        }
        t->box[p][0] = b[p][0];
        t->box[p][1] = b[p][1];
        t->box[p][2] = b[p][2] + 1;
        t->box[p][3] = b[p][3] + 1;
    }
}

json_t *it_toy_truth_to_json(const it_toy_truth *t)
{
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = 0;
    for (int p = 0; p < IT_TOY_N_PARTS; p++) {
        json_t *box = t->pixels[p] ? json_pack("[iiii]", t->box[p][0], t->box[p][1], t->box[p][2], t->box[p][3])
                                   : json_null();
        json_t *e = json_pack("{s:o, s:i, s:i}", "box", box, "pixels", t->pixels[p], "bit", 1 << p);
        bad |= !e || json_object_set_new(o, g_part_names[p], e);
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ------------------------------------------------------------ render */

it_status it_toy_renderer_init(it_err *err, it_toy_renderer *r, int w, int h)
{
    if (w < 32 || h < 32)
        return it_err_set(err, IT_ERR_ARG, "toy render size %dx%d too small (minimum 32x32)", w, h);
    return it_canvas_init(err, &r->cv, w, h);
}

void it_toy_renderer_free(it_toy_renderer *r) { it_canvas_free(&r->cv); }

it_status it_toy_render(it_err *err, it_toy_renderer *r, const it_toy_attrs *a, it_toy_purpose purpose,
                        uint8_t *rgb, uint8_t *mask, it_toy_truth *truth)
{
    IT_TRY(it_toy_attrs_validate(err, a));
    IT_TRY(it_toy_check_purpose(err, a, purpose));
    it_canvas *cv = &r->cv;
    dctx d;
    memset(&d, 0, sizeof d);
    d.cv = cv;
    d.a = a;
    float H = (float)cv->h, W = (float)cv->w;
    d.t.k = H / 130.0f * a->scale;
    d.t.ox = W * (0.5f + a->x);
    d.t.oy = H * (0.93f + a->y);
    d.t.flip = a->facing < 0 ? -1.0f : 1.0f;
    skel_build(&d.s, a->v[IT_TOY_BODY_SHAPE], a->v[IT_TOY_POSE]);
    d.fs = fabsf(a->facing) * 0.12f * d.s.hrx;
    memcpy(d.skin, attr_rgb(IT_TOY_BODY_COLOUR, a->v[IT_TOY_BODY_COLOUR]), 3);
    rgb_mix(d.skin_dark, d.skin, INK, 0.22f);
    d.torso = torso_shape(&d);
    d.head = head_shape(&d);

    memset(cv->mask, 0, (size_t)cv->w * cv->h);
    draw_background(cv, a->v[IT_TOY_BACKGROUND], a->detail, d.t.oy);
    draw_shadow(&d);
    draw_hair_back(&d);
    draw_legs(&d);
    draw_torso(&d);
    draw_outfit_torso(&d);
    draw_arms(&d);
    draw_accessory(&d, 0);
    it_paint head = part_paint(d.skin, IT_TOY_BIT(IT_TOY_PART_FACE) | IT_TOY_BIT(IT_TOY_PART_BODY));
    fill(&d, &d.head, &head);
    draw_accessory(&d, 1);
    draw_marking(&d); /* under the eyes, so that eye count always reads */
    draw_eyes(&d);
    draw_mouth(&d);
    draw_hair_front(&d);
    draw_hat(&d);

    it_canvas_to_rgb8(cv, rgb);
    if (mask) memcpy(mask, cv->mask, (size_t)cv->w * cv->h);
    if (truth) it_toy_truth_from_mask(truth, cv->mask, cv->w, cv->h);
    return IT_OK;
}

it_status it_toy_render_batch(it_err *err, int w, int h, const it_toy_constraint *c, uint64_t seed,
                              uint64_t start, int n, it_toy_purpose purpose, uint8_t *rgb,
                              it_toy_attrs *attrs, it_toy_truth *truth)
{
    if (n < 0) return it_err_set(err, IT_ERR_ARG, "toy batch: negative count %d", n);
    it_err first;
    it_err_clear(&first);
    #pragma omp parallel num_threads(it_threads_get())
    {
        it_err e;
        it_err_clear(&e);
        it_toy_renderer r;
        memset(&r, 0, sizeof r);
        int ok = it_toy_renderer_init(&e, &r, w, h) == IT_OK;
        #pragma omp for schedule(dynamic, 8)
        for (int i = 0; i < n; i++) {
            if (!ok) continue;
            it_toy_attrs a;
            ok = it_toy_sample(&e, &a, c, seed, start + (uint64_t)i, purpose) == IT_OK &&
                 it_toy_render(&e, &r, &a, purpose, rgb + (size_t)i * w * h * 3, NULL, truth ? &truth[i] : NULL) ==
                     IT_OK;
            if (attrs) attrs[i] = a;
        }
        if (!ok) {
            #pragma omp critical(it_toy_batch_err)
            if (!first.code) first = e;
        }
        it_toy_renderer_free(&r);
    }
    if (first.code) {
        if (err) *err = first;
        return first.code;
    }
    return IT_OK;
}
