/* clip_source.h: which CLIP the toy detector and preference head are built
 * on, and the interim stand-in used until the trained toy CLIP exists.
 *
 * Owns: resolving the CLIP folder of a pretraining run (the component
 * config's "clip" key, else OUT/clip when it holds a config.json, else an
 * interim folder), and writing that interim folder: a transformers-layout
 * CLIP (config.json, model.safetensors, preprocessor_config.json, tokenizer
 * files) with random towers of a tiny config and a BPE vocabulary learnt
 * from toy captions (pretraining purpose), seeded, so the detector and the
 * preference head can be trained and shipped through the same code paths
 * before the real toy CLIP lands. Does not own CLIP training (ptclip's
 * pretrain_clip.c) or loading (vision/clip.h). */
#ifndef IT_CLIP_SOURCE_H
#define IT_CLIP_SOURCE_H

#include <jansson.h>
#include <stdint.h>

#include "base/status.h"

/* Interim CLIP, the toy CLIP's sizes (ptclip's toyclip.c): both towers
 * hidden 192, 3 heads, 4 layers; 128 px, patch 16; 77 positions;
 * projection 192; vocabulary 1000 from 3000 captions. */
typedef struct it_clip_source_cfg {
    int v_hidden, v_layers, v_heads, image_size, patch_size;
    int t_hidden, t_layers, t_heads, t_positions;
    int projection_dim, vocab_size, n_captions;
} it_clip_source_cfg;

void it_clip_source_defaults(it_clip_source_cfg *c);
/* Overrides from an object {"v_hidden": 32, ...} (unknown keys ignored). */
void it_clip_source_parse(it_clip_source_cfg *c, const json_t *obj);

/* Writes the interim CLIP folder into dir (created; files replaced). */
it_status it_clip_source_write_random(it_err *err, const char *dir, const it_clip_source_cfg *c, uint64_t seed);

/* The CLIP folder for a component: cfg's "clip" string when present, else
 * OUT/clip when OUT/clip/model.safetensors exists, else RUN/interim_clip (written
 * from cfg's "interim_clip" object with seed when missing). *interim tells
 * which. */
it_status it_clip_source_resolve(it_err *err, char *dir, size_t cap, const char *out, const char *run,
                                 const json_t *cfg, uint64_t seed, int *interim);

#endif
