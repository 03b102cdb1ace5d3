/* pretrain_preference.h: the toy world's preference head (an MLP over the
 * toy CLIP's normalised image embedding, the format vision/preference.h
 * loads) and its quality measurement, for `intenttuner toy pretrain
 * preference` / `toy quality preference` (issue #10).
 *
 * Owns: the degradations a clean render is preferred to (Gaussian blur,
 * noise, heavy JPEG, pixelation, and wrong anatomy drawn from the part mask:
 * eyes removed, or the whole face wiped to a blank), each a pure function of
 * (seed, image index); the training step (pairs of the same creature clean
 * and degraded, Bradley-Terry loss, CLIP frozen); the export
 * OUT/preference/{pref_config.json, pref.safetensors}; and the measurement
 * (share of fresh pairs ranked clean above degraded, per degradation),
 * through the same CLIP embedding path `intenttuner score` uses.
 * Does not own the loop (pretrain.h), the CLIP (vision/clip.h, its folder
 * resolved by clip_source.h) or the head's file format (vision/preference.h). */
#ifndef IT_PRETRAIN_PREFERENCE_H
#define IT_PRETRAIN_PREFERENCE_H

#include <jansson.h>
#include <stdint.h>

#include "base/status.h"
#include "toy/pretrain.h"
#include "toy/toydraw.h"
#include "vision/clip.h"
#include "vision/preference.h"

typedef enum it_pref_degrade {
    IT_PREF_BLUR,
    IT_PREF_NOISE,
    IT_PREF_JPEG,
    IT_PREF_PIXELATE,
    IT_PREF_NO_EYES,
    IT_PREF_BLANK_FACE,
    IT_PREF_N_DEGRADE
} it_pref_degrade;

const char *it_pref_degrade_name(int kind);

/* Degrades a 128x128 render (rgb, its part mask and attributes) in place;
 * the kind (one of the bits set in `kinds`, 0 = all) and its strength come
 * from (seed, index). *kind receives the kind used (anatomy errors fall
 * back to blur when the part is not visible). */
it_status it_pref_degrade_image(it_err *err, uint8_t *rgb, const uint8_t *mask, const it_toy_attrs *a, int w,
                                int h, uint64_t seed, uint64_t index, unsigned kinds, int *kind);

it_status it_pretrain_preference(it_err *err, const it_pretrain_opts *o);
/* Loads OUT/preference (o->model_dir, else o->out) with the CLIP its
 * pref_config.json names and adds "pair_accuracy" {kind: a, ..., "all": a}. */
it_status it_quality_preference(it_err *err, const it_pretrain_opts *o, json_t *report);

/* The measurement on n fresh pairs of seed through clip + head. */
it_status it_preference_measure(it_err *err, it_clip *clip, const it_pref *head, uint64_t seed, int n,
                                json_t *report);

#endif
