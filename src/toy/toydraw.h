/* toydraw.h: rendering a toy creature with its ground truth.
 *
 * Owns: the creature's layout (skeleton per pose and body shape, clothes,
 * accessories, face, hair, hat), the five backgrounds, and the ground truth
 * derived from the drawing itself: a part-bit mask per pixel and the tight
 * box and pixel count of each part. Rendering is a pure function of the
 * attributes and the image size. Does not own sampling (creature.h) or file
 * output (the CLI and scenario.c write files).
 *
 * Parts and their mask bits (bit p = 1 << p):
 *   0 face       head skin and everything drawn on it (eyes, mouth, marking, goggles)
 *   1 eyes       the eyes (white and pupil)
 *   2 hair
 *   3 hat
 *   4 outfit     jacket / overalls / t-shirt including sleeves
 *   5 accessory  necklace / scarf / bow tie
 *   6 body       the whole creature: skin, limbs and everything it wears
 * A pixel carries the bits of the part that painted at least half of it
 * last; the shadow and the background carry none. */
#ifndef IT_TOYDRAW_H
#define IT_TOYDRAW_H

#include <jansson.h>
#include <stdint.h>

#include "base/status.h"
#include "toy/creature.h"
#include "toy/raster.h"

enum {
    IT_TOY_PART_FACE,
    IT_TOY_PART_EYES,
    IT_TOY_PART_HAIR,
    IT_TOY_PART_HAT,
    IT_TOY_PART_OUTFIT,
    IT_TOY_PART_ACCESSORY,
    IT_TOY_PART_BODY,
    IT_TOY_N_PARTS
};
#define IT_TOY_BIT(p) ((uint8_t)(1u << (p)))

const char *it_toy_part_name(int part);
int it_toy_part_find(const char *name); /* -1 if unknown */

typedef struct it_toy_truth {
    int box[IT_TOY_N_PARTS][4]; /* x0, y0, x1, y1 (exclusive), all 0 when the part is absent */
    int pixels[IT_TOY_N_PARTS]; /* mask pixel count */
} it_toy_truth;

typedef struct it_toy_renderer {
    it_canvas cv; /* reused between images: no allocation per render */
} it_toy_renderer;

it_status it_toy_renderer_init(it_err *err, it_toy_renderer *r, int w, int h);
void it_toy_renderer_free(it_toy_renderer *r);

/* Renders a into rgb (h, w, 3). mask (h, w) receives the part bits and truth
 * the boxes; either may be NULL. Refuses held-out attributes for pretraining
 * (IT_ERR_ARG), like the sampler, so no code path can put them there. */
it_status it_toy_render(it_err *err, it_toy_renderer *r, const it_toy_attrs *a, it_toy_purpose purpose,
                        uint8_t *rgb, uint8_t *mask, it_toy_truth *truth);

/* Samples and renders images start .. start+n-1 of stream (seed, c,
 * purpose) on all threads (it_threads_get()): rgb (n, h, w, 3) bytes;
 * attrs (n) and truth (n) may be NULL. The same bytes for any thread
 * count. For in-memory training sets (the judge, pretraining). */
it_status it_toy_render_batch(it_err *err, int w, int h, const it_toy_constraint *c, uint64_t seed,
                              uint64_t start, int n, it_toy_purpose purpose, uint8_t *rgb,
                              it_toy_attrs *attrs, it_toy_truth *truth);

/* Computes boxes and counts from a part-bit mask (h, w). */
void it_toy_truth_from_mask(it_toy_truth *t, const uint8_t *mask, int w, int h);

/* {"face": {"box": [x0,y0,x1,y1], "pixels": n, "bit": 1}, ...}; absent parts
 * have "box": null. New reference, NULL on out-of-memory. */
json_t *it_toy_truth_to_json(const it_toy_truth *t);

#endif
