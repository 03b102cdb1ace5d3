/* scenario.h: toy datasets on disk, and the fine-tuning scenarios.
 *
 * Owns: the per-image file set (NAME.png, NAME.mask.png, NAME.txt,
 * NAME.json; see docs/TOYWORLD.md), and the scenario folders: a realistic
 * fine-tuning task for held-out concepts (train/ with nuisance, refs/ with
 * boxes, intent.json, eval.json). Does not own rendering (toydraw.h) or what
 * the pipeline does with a scenario. */
#ifndef IT_SCENARIO_H
#define IT_SCENARIO_H

#include <stdint.h>

#include "base/status.h"
#include "toy/creature.h"
#include "toy/toydraw.h"

/* How one image's captions are made. */
typedef struct it_toy_write_opts {
    uint64_t seed, index;   /* caption randomness (and recorded in the JSON) */
    int with_name;          /* captions start with the character's name */
    uint32_t exclude;       /* attribute bits never mentioned in captions */
} it_toy_write_opts;

/* Renders a and writes dir/stem.{png,mask.png,txt,json}. rgb (w*h*3) and
 * mask (w*h) are caller scratch so that loops do not allocate per image. */
it_status it_toy_write_sample(it_err *err, it_toy_renderer *r, const it_toy_attrs *a, it_toy_purpose purpose,
                              const char *dir, const char *stem, const it_toy_write_opts *o, uint8_t *rgb,
                              uint8_t *mask);

int it_toy_scenario_count(void);
const char *it_toy_scenario_name(int i);
const char *it_toy_scenario_about(int i);

/* Writes scenario `name` into dir (created; existing files of the same
 * names are replaced). size: image side in pixels. */
it_status it_toy_scenario_write(it_err *err, const char *name, const char *dir, uint64_t seed, int size);

#endif
