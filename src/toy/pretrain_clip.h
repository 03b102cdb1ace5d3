/* pretrain_clip.h: pretraining the toy CLIP (toyclip.h) with our engine, and
 * measuring it.
 *
 * Owns: the training run (AdamW, warm-up + cosine, global-norm clipping,
 * logit scale clamped to log 100 as CLIP does), its run folder
 * (checkpoint.safetensors + checkpoint.optim.safetensors written atomically,
 * log.jsonl), --resume with bit-identical losses (the data of step k is a
 * pure function of (seed, k)), a time limit that stops cleanly at a
 * checkpoint, the export of the weights reached (interim or final) to
 * OUT/{tokenizer,clip,text_encoder}, and the quality figures: text-to-image
 * retrieval among fresh renders and zero-shot attribute accuracy, read
 * through the real loader (vision/clip.h). Does not own the model, data or
 * loss (toyclip.h) or the CLI. */
#ifndef IT_PRETRAIN_CLIP_H
#define IT_PRETRAIN_CLIP_H

#include <jansson.h>
#include <stdint.h>

#include "base/status.h"
#include "toy/creature.h"
#include "toy/toyclip.h"

typedef struct it_clip_pretrain_opts {
    it_toyclip_size size;
    uint64_t seed;              /* data stream and initialisation */
    int64_t steps;              /* total optimiser steps of the run */
    int batch;                  /* image-caption pairs per step (negatives: batch - 1) */
    double lr, warmup_frac;     /* peak lr; warm-up share of the steps */
    double clip_grad;           /* global-norm clipping; 0 = off */
    float p_character;          /* share of named characters in the stream */
    int augment;
    const char *out;            /* models root: OUT/tokenizer, OUT/clip, OUT/text_encoder */
    const char *run_dir;        /* checkpoints and log.jsonl; NULL = none (no resume) */
    int resume;
    int64_t checkpoint_every;
    double time_limit;          /* seconds; > 0: stop at a checkpoint before exceeding it */
    int64_t stop_after;         /* > 0: at most this many steps in this invocation (tests) */
    int64_t log_every;
    int export_dtype_f32;       /* export f32 instead of f16 (tests) */
    int no_export;              /* train and checkpoint only (tests) */
    double *trace;              /* NULL, or (steps): trace[k] = loss of step k as computed */
    int quiet;
} it_clip_pretrain_opts;

void it_clip_pretrain_defaults(it_clip_pretrain_opts *o);

typedef struct it_clip_pretrain_result {
    int64_t step;               /* steps done after this invocation */
    int finished;               /* step == steps */
    double seconds;             /* wall time of this invocation */
    double cpu_seconds;         /* process CPU time of this invocation */
    double loss;                /* moving average at the end */
    double acc_i2t;             /* moving average of in-batch top-1 */
    double logit_scale;
} it_clip_pretrain_result;

/* Builds the tokenizer when OUT/tokenizer has none, trains (or resumes),
 * exports what it reached. res may be NULL. */
it_status it_clip_pretrain(it_err *err, const it_clip_pretrain_opts *o, it_clip_pretrain_result *res);

/* ---------------------------------------------------------------- quality */

typedef struct it_clip_quality {
    int n;                              /* renders */
    double t2i_top1, t2i_top5;          /* text -> image among the n renders, long captions */
    double i2t_top1;                    /* image -> text, the same pairs */
    double t2i_top1_short;              /* the same with short captions (ambiguous by design) */
    double zs_acc[IT_TOY_N_ATTRS];      /* zero-shot attribute accuracy; -1 = not measured */
    int zs_n[IT_TOY_N_ATTRS];           /* images that counted per attribute */
    double zs_mean;                     /* mean over measured attributes */
    double seconds;
} it_clip_quality;

/* Measures the CLIP folder dir (tokenizer inside) on n fresh renders of
 * stream seed (purpose eval, generic creatures and pretraining characters;
 * held-out ones are excluded so the figures speak of what was trained). */
it_status it_clip_quality_measure(it_err *err, const char *dir, uint64_t seed, int n, it_clip_quality *q);
/* The figures as JSON (new reference). */
json_t *it_clip_quality_json(const it_clip_quality *q);

#endif
