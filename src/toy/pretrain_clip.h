/* pretrain_clip.h: the toy CLIP component of `intenttuner toy pretrain` and
 * `toy quality`.
 *
 * Owns: the CLIP run on the framework's loop (pretrain.h): the tokenizer
 * built into OUT/tokenizer when absent, the step (a batch of renders and
 * captions, symmetric InfoNCE, the logit scale clamped to [0, log 100]
 * before each step as CLIP does), an in-training retrieval evaluation, the
 * export of the weights reached to OUT/clip and OUT/text_encoder, and the
 * quality figures: text-to-image retrieval among fresh renders and
 * zero-shot attribute accuracy, read through the real loader
 * (vision/clip.h). Does not own the model, data or loss (toyclip.h), the
 * loop and checkpoints (pretrain.h) or the CLI. */
#ifndef IT_PRETRAIN_CLIP_H
#define IT_PRETRAIN_CLIP_H

#include <jansson.h>
#include <stdint.h>

#include "base/status.h"
#include "toy/creature.h"
#include "toy/pretrain.h"
#include "toy/toyclip.h"
#include "vision/clip.h"

/* Defaults of a run (override with --steps, --batch, --lr; config
 * "p_long"). Chosen from the recipe exploration in docs/TOYWORLD.md (CLIP):
 * mostly long captions and 128 pairs per step leave the background-only
 * plateau within a few hundred steps. The first runs used 2000 steps of
 * 64 pairs, lr 7e-4 and p_long -1 (a third each of short, long, tags). */
#define IT_CLIP_PRETRAIN_STEPS 1500
#define IT_CLIP_PRETRAIN_BATCH 128
#define IT_CLIP_PRETRAIN_LR 1e-3
#define IT_CLIP_PRETRAIN_P_LONG 0.8f

/* Trains (or resumes) the toy CLIP and, when finished (or with
 * export_partial / export_only), exports OUT/clip and OUT/text_encoder and
 * records OUT/pretrain/clip.json with the quality figures.
 * o->config (JSON) may set "size" ("toy" default, "tiny" for tests),
 * "p_character" (0.25), "augment" (true), "warmup_frac" (0.05), "p_long"
 * (0.8: share of long captions; -1 the tokenizer's thirds), "aux" (0:
 * weight of auxiliary attribute heads on the vision tower, never exported). */
it_status it_pretrain_clip(it_err *err, const it_pretrain_opts *o);
/* Quality of OUT/clip (or o->model_dir/clip) on eval_n (default 100) fresh
 * renders of o->eval_seed, into report. */
it_status it_quality_clip(it_err *err, const it_pretrain_opts *o, json_t *report);

/* The run identity the checkpoints carry (architecture and options that
 * change the losses); exposed so that a checkpoint can be checked or
 * converted by tools. */
void it_clip_pretrain_key(char *buf, size_t n, const it_toyclip_config *c, const it_pretrain_opts *o,
                          int64_t steps, int batch, double lr, double warmup_frac, float p_character, int augment,
                          float p_long, float aux);

/* ---------------------------------------------------------------- quality */

typedef struct it_clip_quality {
    int n;                              /* renders */
    double t2i_top1, t2i_top5;          /* text -> image among the n renders, long captions */
    double i2t_top1;                    /* image -> text, the same pairs */
    double t2i_top1_short;              /* the same with short captions (ambiguous by design) */
    double zs_acc[IT_TOY_N_ATTRS];      /* zero-shot attribute accuracy; -1 = not measured */
    int zs_n[IT_TOY_N_ATTRS];           /* renders that counted per attribute */
    double zs_mean;                     /* mean over measured attributes */
    double seconds;
} it_clip_quality;

/* Measures a loaded CLIP on n fresh renders of stream seed (purpose
 * pretrain: unseen images of the trained distribution, no held-out
 * character or pose). zero_shot 0 skips the attribute part. */
it_status it_clip_quality_model(it_err *err, it_clip *m, uint64_t seed, int n, int zero_shot, it_clip_quality *q);
/* The same for a CLIP folder (tokenizer inside), loaded with vision/clip.h. */
it_status it_clip_quality_measure(it_err *err, const char *dir, uint64_t seed, int n, it_clip_quality *q);
/* The figures as JSON (new reference). */
json_t *it_clip_quality_json(const it_clip_quality *q);

#endif
