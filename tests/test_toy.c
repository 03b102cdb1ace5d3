/* test_toy.c: the toy world: sampling, rendering, ground truth, held-out rule. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "toy/characters.h"
#include "toy/creature.h"
#include "toy/raster.h"
#include "toy/toydraw.h"
#include "test.h"

#define S 128

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

IT_TEST(toy_raster_coverage) {
    /* A disc of radius 10: area ~ 314 px, AA edge, mask where covered >= half. */
    it_err e;
    it_canvas c;
    IT_REQUIRE_OK(it_canvas_init(&e, &c, 32, 32), &e);
    const uint8_t white[3] = {255, 255, 255};
    it_paint p = it_paint_solid(white, 5);
    it_shape d = it_shape_circle(16, 16, 10);
    it_raster_fill(&c, &d, &p);
    double sum = 0;
    int masked = 0;
    for (int i = 0; i < 32 * 32; i++) {
        sum += c.rgb[3 * i];
        masked += c.mask[i] == 5;
    }
    IT_CHECK_NEAR(sum, 314.16, 2.0);
    IT_CHECK_NEAR(masked, 314.16, 12.0);
    IT_CHECK_NEAR(c.rgb[3 * (16 * 32 + 16)], 1.0, 1e-6);
    IT_CHECK_NEAR(c.rgb[0], 0.0, 1e-6);
    /* Polygon distance sign and capsule: inside negative, outside positive. */
    float sq[] = {0, 0, 10, 0, 10, 10, 0, 10};
    it_shape poly = it_shape_poly(sq, 4);
    IT_CHECK_NEAR(it_shape_sdf(&poly, 5, 5), -5.0, 1e-5);
    IT_CHECK_NEAR(it_shape_sdf(&poly, 13, 5), 3.0, 1e-5);
    it_shape cap = it_shape_capsule(0, 0, 10, 0, 2);
    IT_CHECK_NEAR(it_shape_sdf(&cap, 5, 3), 1.0, 1e-5);
    IT_CHECK_NEAR(it_shape_sdf(&cap, 13, 0), 1.0, 1e-5);
    it_shape e1 = it_shape_ellipse(0, 0, 10, 5, 0);
    IT_CHECK_NEAR(it_shape_sdf(&e1, 12, 0), 2.0, 0.05);
    IT_CHECK_NEAR(it_shape_sdf(&e1, 0, 6), 1.0, 0.05);
    it_canvas_free(&c);
}

/* The fast fill (skips outside, no distances inside) against the plain
 * reference, on random shapes of every kind, clipped and cut, with outlines,
 * shading and patterns. */
IT_TEST(toy_raster_fast_fill_matches_reference) {
    it_err e;
    it_canvas a, b;
    IT_REQUIRE_OK(it_canvas_init(&e, &a, 48, 40), &e);
    IT_REQUIRE_OK(it_canvas_init(&e, &b, 48, 40), &e);
    it_rng r;
    it_rng_init(&r, 5);
    double worst = 0;
    int mask_diff = 0;
    for (int i = 0; i < 1200; i++) {
        float cx = 48 * it_rng_float(&r), cy = 40 * it_rng_float(&r), rx = 1 + 20 * it_rng_float(&r),
              ry = 1 + 20 * it_rng_float(&r), ang = 3 * it_rng_float(&r);
        it_shape s, clip = it_shape_halfplane(cx, cy, it_rng_float(&r) - 0.5f, 1), cut = it_shape_circle(cx + 3, cy, rx / 2);
        float tri[] = {cx, cy - ry, cx + rx, cy + ry, cx - rx, cy + ry * 0.5f, cx - 2, cy};
        switch (i % 6) {
        case 0: s = it_shape_ellipse(cx, cy, rx, ry, ang); break;
        case 1: s = it_shape_rrect(cx, cy, rx, ry, 3, ang); break;
        case 2: s = it_shape_capsule(cx, cy, cx + rx, cy - ry, 0.5f + ry / 4); break;
        case 3: s = it_shape_poly(tri, 4); break;
        case 4: s = it_shape_arc(cx, cy, rx, ang, ang + 2.5f, 1.5f); break;
        default: s = it_shape_circle(cx, cy, rx); break;
        }
        if (i % 4 == 1) s.clip = &clip;
        if (i % 5 == 2) s.cut = &cut;
        s.grow = (i % 3) * 0.7f;
        const uint8_t c0[3] = {200, 30, 90};
        it_paint p = it_paint_solid(c0, (uint8_t)(i & 127));
        p.kind = (it_paint_kind)(i % 4); /* solid, linear, stripes, dots: no leather rim */
        p.c1[1] = 1.0f;
        p.dx = 0.05f;
        p.dy = 0.02f;
        p.period = 4;
        p.duty = 0.4f;
        p.radius = 1.2f;
        p.shade = (i % 2) * 0.35f;
        p.outline = (i % 3) * 0.6f;
        p.alpha = i % 7 ? 1.0f : 0.4f;
        it_raster_fill(&a, &s, &p);
        it_raster_fill_ref(&b, &s, &p);
        double d = it_test_max_abs_diff(a.rgb, b.rgb, 48 * 40 * 3);
        if (d > worst) worst = d;
        mask_diff += memcmp(a.mask, b.mask, 48 * 40) != 0;
        memcpy(a.rgb, b.rgb, sizeof(float) * 48 * 40 * 3); /* compare each fill alone */
        memcpy(a.mask, b.mask, 48 * 40);
    }
    IT_CHECK(worst < 1e-5);
    IT_CHECK_INT(mask_diff, 0);
    it_canvas_free(&a);
    it_canvas_free(&b);
}

IT_TEST(toy_sample_is_per_index) {
    it_err e;
    it_toy_attrs a, b, c;
    IT_REQUIRE_OK(it_toy_sample(&e, &a, NULL, 42, 7, IT_TOY_PRETRAIN), &e);
    for (uint64_t i = 0; i < 7; i++) IT_REQUIRE_OK(it_toy_sample(&e, &b, NULL, 42, i, IT_TOY_PRETRAIN), &e);
    IT_REQUIRE_OK(it_toy_sample(&e, &b, NULL, 42, 7, IT_TOY_PRETRAIN), &e);
    IT_CHECK(memcmp(&a, &b, sizeof a) == 0);
    IT_REQUIRE_OK(it_toy_sample(&e, &c, NULL, 43, 7, IT_TOY_PRETRAIN), &e);
    IT_CHECK(memcmp(&a, &c, sizeof a) != 0);
}

/* Renders images 0..n-1 of seed 9 with `threads` threads, in reverse order. */
static void render_hashes(uint64_t *h, int n, int threads, int reverse)
{
    #pragma omp parallel num_threads(threads)
    {
        it_err e;
        it_toy_renderer r;
        uint8_t *rgb = it_malloc(S * S * 3), *mask = it_malloc(S * S);
        int ok = it_toy_renderer_init(&e, &r, S, S) == IT_OK && rgb && mask;
        #pragma omp for schedule(dynamic, 1)
        for (int k = 0; k < n; k++) {
            int i = reverse ? n - 1 - k : k;
            it_toy_attrs a;
            h[i] = 0;
            if (ok && it_toy_sample(&e, &a, NULL, 9, (uint64_t)i, IT_TOY_EVAL) == IT_OK &&
                it_toy_render(&e, &r, &a, IT_TOY_EVAL, rgb, mask, NULL) == IT_OK)
                h[i] = fnv(rgb, S * S * 3) ^ (fnv(mask, S * S) * 31);
        }
        if (ok) it_toy_renderer_free(&r);
        it_free(rgb);
        it_free(mask);
    }
}

IT_TEST(toy_render_deterministic_any_threads_any_order) {
    enum { N = 24 };
    uint64_t a[N], b[N];
    render_hashes(a, N, 1, 0);
    render_hashes(b, N, 3, 1);
    for (int i = 0; i < N; i++) {
        IT_CHECK(a[i] != 0);
        IT_CHECK(a[i] == b[i]);
    }
    IT_CHECK(a[0] != a[1]);
}

/* Connected components of a part in the mask (4-neighbour flood fill). */
static int components(const uint8_t *mask, int bit)
{
    static int stack[S * S];
    uint8_t seen[S * S];
    memset(seen, 0, sizeof seen);
    int n = 0;
    for (int i = 0; i < S * S; i++) {
        if (!(mask[i] & bit) || seen[i]) continue;
        n++;
        int sp = 0;
        stack[sp++] = i;
        seen[i] = 1;
        while (sp) {
            int p = stack[--sp], x = p % S, y = p / S;
            int nb[4] = {x > 0 ? p - 1 : -1, x < S - 1 ? p + 1 : -1, y > 0 ? p - S : -1, y < S - 1 ? p + S : -1};
            for (int k = 0; k < 4; k++)
                if (nb[k] >= 0 && !seen[nb[k]] && (mask[nb[k]] & bit)) {
                    seen[nb[k]] = 1;
                    stack[sp++] = nb[k];
                }
        }
    }
    return n;
}

IT_TEST(toy_truth_consistent) {
    it_err e;
    it_toy_renderer r;
    IT_REQUIRE_OK(it_toy_renderer_init(&e, &r, S, S), &e);
    uint8_t *rgb = it_malloc(S * S * 3), *mask = it_malloc(S * S);
    IT_REQUIRE(rgb && mask);
    int eye_ok = 0, n = 300;
    for (int i = 0; i < n; i++) {
        it_toy_attrs a;
        it_toy_truth tr;
        IT_REQUIRE_OK(it_toy_sample(&e, &a, NULL, 5, (uint64_t)i, IT_TOY_EVAL), &e);
        IT_REQUIRE_OK(it_toy_render(&e, &r, &a, IT_TOY_EVAL, rgb, mask, &tr), &e);
        const int present[IT_TOY_N_PARTS] = {
            1, 1, a.v[IT_TOY_HAIR_STYLE] != IT_TOY_HAIR_BALD, a.v[IT_TOY_HAT] != IT_TOY_HAT_NONE,
            a.v[IT_TOY_OUTFIT] != IT_TOY_OUTFIT_NONE, a.v[IT_TOY_ACCESSORY] != IT_TOY_ACC_NONE, 1};
        for (int p = 0; p < IT_TOY_N_PARTS; p++) {
            if ((tr.pixels[p] > 0) != present[p])
                it_test_fail(t, __FILE__, __LINE__, "image %d part %s: %d pixels, present %d", i,
                             it_toy_part_name(p), tr.pixels[p], present[p]);
            if (!tr.pixels[p]) continue;
            const int *b = tr.box[p];
            IT_CHECK(b[0] >= 0 && b[1] >= 0 && b[2] <= S && b[3] <= S && b[0] < b[2] && b[1] < b[3]);
            /* Every mask pixel inside the box; the body box holds every part. */
            int inside = 0;
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++)
                    if (mask[y * S + x] & IT_TOY_BIT(p)) inside += x >= b[0] && x < b[2] && y >= b[1] && y < b[3];
            IT_CHECK_INT(inside, tr.pixels[p]);
            const int *bb = tr.box[IT_TOY_PART_BODY];
            IT_CHECK(b[0] >= bb[0] && b[1] >= bb[1] && b[2] <= bb[2] && b[3] <= bb[3]);
        }
        /* Eyes: exactly eye_count separate blobs. */
        int comp = components(mask, IT_TOY_BIT(IT_TOY_PART_EYES));
        eye_ok += comp == a.v[IT_TOY_EYE_COUNT] + 1;
    }
    IT_CHECK(eye_ok >= n * 97 / 100);
    it_free(rgb);
    it_free(mask);
    it_toy_renderer_free(&r);
}

/* Changing one colour attribute may only change pixels in (the one-pixel
 * neighbourhood of) that part's mask, and must change most of the part. */
IT_TEST(toy_masks_cover_what_the_part_paints) {
    static const int cases[][3] = {{IT_TOY_HAIR_COLOUR, IT_TOY_PART_HAIR, 1},
                                   {IT_TOY_HAT_COLOUR, IT_TOY_PART_HAT, 1},
                                   {IT_TOY_OUTFIT_COLOUR, IT_TOY_PART_OUTFIT, 1},
                                   {IT_TOY_ACCESSORY_COLOUR, IT_TOY_PART_ACCESSORY, 1},
                                   {IT_TOY_BODY_COLOUR, IT_TOY_PART_BODY, 0}};
    it_err e;
    it_toy_renderer r;
    IT_REQUIRE_OK(it_toy_renderer_init(&e, &r, S, S), &e);
    uint8_t *rgb = it_malloc(S * S * 3), *rgb2 = it_malloc(S * S * 3), *mask = it_malloc(S * S);
    IT_REQUIRE(rgb && rgb2 && mask);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int attr = cases[c][0], part = cases[c][1], tested = 0;
        for (int i = 0; i < 400 && tested < 25; i++) {
            it_toy_attrs a;
            IT_REQUIRE_OK(it_toy_sample(&e, &a, NULL, 77, (uint64_t)i, IT_TOY_EVAL), &e);
            if (a.v[attr] < 0 || a.character >= 0) continue;
            tested++;
            IT_REQUIRE_OK(it_toy_render(&e, &r, &a, IT_TOY_EVAL, rgb, mask, NULL), &e);
            a.v[attr] = (a.v[attr] + 3) % it_toy_attr_get(attr)->n_values;
            IT_REQUIRE_OK(it_toy_render(&e, &r, &a, IT_TOY_EVAL, rgb2, NULL, NULL), &e);
            /* Anti-aliased edges blend a part into pixels that a later
             * part owns (hair under the rim of a hat), so the rule is on
             * the amount of change: almost all of it lies on the part or
             * its one-pixel border. */
            long mass_out = 0, mass = 0;
            int in_part = 0, changed_in_part = 0;
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    int p = y * S + x, near = 0, diff = 0;
                    for (int k = 0; k < 3; k++) diff += abs((int)rgb[3 * p + k] - rgb2[3 * p + k]);
                    for (int dy = -1; dy <= 1; dy++)
                        for (int dx = -1; dx <= 1; dx++) {
                            int xx = x + dx, yy = y + dy;
                            if (xx >= 0 && yy >= 0 && xx < S && yy < S) near |= mask[yy * S + xx] & IT_TOY_BIT(part);
                        }
                    mass += diff;
                    mass_out += near ? 0 : diff;
                    if (mask[p] & IT_TOY_BIT(part)) {
                        in_part++;
                        changed_in_part += diff != 0;
                    }
                }
            if (mass_out * 50 > mass)
                it_test_fail(t, __FILE__, __LINE__, "%s image %d: %ld of %ld change outside the %s mask",
                             it_toy_attr_get(attr)->name, i, mass_out, mass, it_toy_part_name(part));
            if (cases[c][2] && changed_in_part < in_part * 9 / 10)
                it_test_fail(t, __FILE__, __LINE__, "%s image %d: only %d of %d %s pixels changed",
                             it_toy_attr_get(attr)->name, i, changed_in_part, in_part, it_toy_part_name(part));
        }
        IT_CHECK(tested >= 10);
    }
    it_free(rgb);
    it_free(rgb2);
    it_free(mask);
    it_toy_renderer_free(&r);
}

IT_TEST(toy_held_out_rule) {
    it_err e;
    it_toy_constraint c;
    it_toy_attrs a;
    it_toy_constraint_init(&c);
    c.character = it_toy_character_find("vincent");
    IT_CHECK_INT(it_toy_sample(&e, &a, &c, 1, 0, IT_TOY_PRETRAIN), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "character 'vincent' is held out of pretraining data");
    IT_REQUIRE_OK(it_toy_sample(&e, &a, &c, 1, 0, IT_TOY_FINETUNE), &e);
    /* The renderer refuses too, whatever the caller built. */
    it_toy_renderer r;
    IT_REQUIRE_OK(it_toy_renderer_init(&e, &r, 64, 64), &e);
    uint8_t rgb[64 * 64 * 3];
    IT_CHECK_INT(it_toy_render(&e, &r, &a, IT_TOY_PRETRAIN, rgb, NULL, NULL), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "held out");
    IT_CHECK_OK(it_toy_render(&e, &r, &a, IT_TOY_EVAL, rgb, NULL, NULL), &e);
    it_toy_constraint_init(&c);
    IT_CHECK_INT(it_toy_filter_parse(&e, &c, "pose=landing"), IT_OK);
    IT_CHECK_INT(it_toy_sample(&e, &a, &c, 1, 0, IT_TOY_PRETRAIN), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "pose 'landing' is held out");
    it_toy_constraint_init(&c);
    IT_CHECK_INT(it_toy_filter_parse(&e, &c, "marking=scar"), IT_OK);
    IT_CHECK_INT(it_toy_sample(&e, &a, &c, 1, 0, IT_TOY_PRETRAIN), IT_ERR_ARG);
    IT_CHECK_OK(it_toy_sample(&e, &a, &c, 1, 0, IT_TOY_EVAL), &e);
    IT_CHECK_STR(it_toy_character_get(a.character)->name, "vincent");
    /* Free sampling for pretraining never reaches a held-out thing, while
     * eval sampling does. */
    int held = 0, chars = 0, held_eval = 0, held_chars = 0;
    for (int i = 0; i < 3000; i++) {
        IT_REQUIRE_OK(it_toy_sample(&e, &a, NULL, 3, (uint64_t)i, IT_TOY_PRETRAIN), &e);
        held += it_toy_is_held_out(&a);
        chars += a.character >= 0;
        IT_REQUIRE_OK(it_toy_sample(&e, &a, NULL, 3, (uint64_t)i, IT_TOY_EVAL), &e);
        held_eval += it_toy_is_held_out(&a);
    }
    for (int i = 0; i < it_toy_character_count(); i++) held_chars += it_toy_character_get(i)->held_out;
    IT_CHECK_INT(held, 0);
    IT_CHECK(chars > 300);
    IT_CHECK(held_eval > 300);
    IT_CHECK(it_toy_character_count() >= 12);
    IT_CHECK(held_chars >= 4);
    it_toy_renderer_free(&r);
}

IT_TEST(toy_filter_table) {
    static const struct {
        const char *spec;
        int attr, value; /* expected fixed attribute (attr -1: error) */
        const char *msg;
    } cases[] = {
        {"hair=red", IT_TOY_HAIR_COLOUR, 2, NULL},
        {"hair=curly", IT_TOY_HAIR_STYLE, IT_TOY_HAIR_CURLY, NULL},
        {"accessory=none", IT_TOY_ACCESSORY, IT_TOY_ACC_NONE, NULL},
        {"outfit_pattern=leather", IT_TOY_OUTFIT_PATTERN, IT_TOY_PAT_LEATHER, NULL},
        {"pose=arms_up,", IT_TOY_POSE, IT_TOY_POSE_ARMS_UP, NULL},
        {"hair=purple", -1, 0, "filter: no attribute 'hair' with value 'purple'"},
        {"hair", -1, 0, "filter: expected key=value, got 'hair'"},
        {"outfit=cape", -1, 0, "filter: 'cape' is not a value of outfit"},
        {"character=bob", -1, 0, "filter: unknown character 'bob'"},
        {"=red", -1, 0, "filter: expected key=value, got '=red'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        it_err e;
        it_err_clear(&e);
        it_toy_constraint c;
        it_toy_constraint_init(&c);
        it_status st = it_toy_filter_parse(&e, &c, cases[i].spec);
        if (cases[i].attr < 0) {
            IT_CHECK_INT(st, IT_ERR_ARG);
            IT_CHECK_STR(e.msg, cases[i].msg);
        } else {
            IT_CHECK_INT(st, IT_OK);
            IT_CHECK_INT(c.v[cases[i].attr], cases[i].value);
        }
    }
    /* Constraints are honoured, and contradictions are named. */
    it_err e;
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    IT_REQUIRE_OK(it_toy_filter_parse(&e, &c, "hair=red,outfit=jacket,background=night"), &e);
    for (int i = 0; i < 50; i++) {
        it_toy_attrs a;
        IT_REQUIRE_OK(it_toy_sample(&e, &a, &c, 8, (uint64_t)i, IT_TOY_PRETRAIN), &e);
        IT_CHECK_INT(a.v[IT_TOY_HAIR_COLOUR], 2);
        IT_CHECK(a.v[IT_TOY_HAIR_STYLE] != IT_TOY_HAIR_BALD);
        IT_CHECK_INT(a.v[IT_TOY_OUTFIT], IT_TOY_OUTFIT_JACKET);
    }
    it_toy_constraint_init(&c);
    IT_REQUIRE_OK(it_toy_filter_parse(&e, &c, "hair_style=bald,hair_colour=red"), &e);
    it_toy_attrs a;
    IT_CHECK_INT(it_toy_sample(&e, &a, &c, 8, 0, IT_TOY_PRETRAIN), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "hair_colour=red contradicts");
    it_toy_constraint_init(&c);
    c.character = it_toy_character_find("pip");
    IT_REQUIRE_OK(it_toy_filter_parse(&e, &c, "body_shape=tall"), &e);
    IT_CHECK_INT(it_toy_sample(&e, &a, &c, 8, 0, IT_TOY_PRETRAIN), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "base design of character 'pip'");
}

IT_TEST(toy_attrs_json_roundtrip) {
    it_err e;
    for (int i = 0; i < 40; i++) {
        it_toy_attrs a, b;
        IT_REQUIRE_OK(it_toy_sample(&e, &a, NULL, 11, (uint64_t)i, IT_TOY_EVAL), &e);
        json_t *j = it_toy_attrs_to_json(&a);
        IT_REQUIRE(j);
        IT_CHECK_OK(it_toy_attrs_from_json(&e, &b, j), &e);
        IT_CHECK(memcmp(a.v, b.v, sizeof a.v) == 0 && a.character == b.character && a.detail == b.detail);
        IT_CHECK_NEAR(a.scale, b.scale, 1e-6);
        json_object_set_new(j, "hat", json_string("sombrero"));
        IT_CHECK_INT(it_toy_attrs_from_json(&e, &b, j), IT_ERR_FORMAT);
        IT_CHECK_STR(e.msg, "attributes: 'sombrero' is not a value of hat");
        json_object_del(j, "pose");
        json_object_set_new(j, "hat", json_string("cap"));
        IT_CHECK_INT(it_toy_attrs_from_json(&e, &b, j), IT_ERR_FORMAT);
        IT_CHECK_STR(e.msg, "attributes: missing key 'pose'");
        json_decref(j);
    }
}

IT_TEST(toy_out_of_memory) {
    it_err e;
    it_toy_renderer r;
    it_mem_fail_after(0, 1);
    it_status st = it_toy_renderer_init(&e, &r, S, S);
    it_mem_fail_after(-1, 0);
    IT_CHECK_INT(st, IT_ERR_NOMEM);
    IT_CHECK_INT(it_toy_renderer_init(&e, &r, 8, 8), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "too small");
}

IT_TEST(toy_render_batch_matches_single) {
    enum { N = 12, W = 64 };
    it_err e;
    uint8_t *batch = it_malloc((size_t)N * W * W * 3), *one = it_malloc(W * W * 3);
    it_toy_attrs attrs[N];
    it_toy_truth truth[N];
    IT_REQUIRE(batch && one);
    IT_REQUIRE_OK(it_toy_render_batch(&e, W, W, NULL, 4, 100, N, IT_TOY_EVAL, batch, attrs, truth), &e);
    it_toy_renderer r;
    IT_REQUIRE_OK(it_toy_renderer_init(&e, &r, W, W), &e);
    for (int i = 0; i < N; i++) {
        it_toy_attrs a;
        it_toy_truth tr;
        IT_REQUIRE_OK(it_toy_sample(&e, &a, NULL, 4, 100 + (uint64_t)i, IT_TOY_EVAL), &e);
        IT_REQUIRE_OK(it_toy_render(&e, &r, &a, IT_TOY_EVAL, one, NULL, &tr), &e);
        IT_CHECK(memcmp(one, batch + (size_t)i * W * W * 3, W * W * 3) == 0);
        IT_CHECK(memcmp(&a, &attrs[i], sizeof a) == 0);
        IT_CHECK(memcmp(&tr, &truth[i], sizeof tr) == 0);
    }
    /* A held-out request fails the whole batch with the sampler's message. */
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    c.character = it_toy_character_find("mira");
    IT_CHECK_INT(it_toy_render_batch(&e, W, W, &c, 4, 0, N, IT_TOY_PRETRAIN, batch, NULL, NULL), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "character 'mira' is held out");
    it_toy_renderer_free(&r);
    it_free(batch);
    it_free(one);
}
