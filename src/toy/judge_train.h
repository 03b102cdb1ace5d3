/* judge_train.h: training the toy judge (judge.h) on augmented renders.
 *
 * Owns: the training stream (batch k of a seed is images k*B .. k*B+B-1 of
 * that seed, rendered with purpose IT_TOY_EVAL and augmented with colour
 * jitter, blur, noise, JPEG round trips and a slight scale/shift, all drawn
 * from a counter RNG keyed by the image index), the AdamW + cosine loop,
 * atomic checkpoints and --resume, the JSONL log and periodic evaluation on
 * a held-out seed. Does not own the network or its file format (judge.h).
 *
 * Determinism: every batch is a pure function of (seed, step, batch size),
 * so a run resumed from a checkpoint sees the same data as an uninterrupted
 * one. Measurement only, like the judge itself. */
#ifndef IT_JUDGE_TRAIN_H
#define IT_JUDGE_TRAIN_H

#include <stdint.h>

#include "base/status.h"
#include "toy/judge.h"

typedef struct it_judge_train_opts {
    it_judge_config model;
    uint64_t seed;          /* data stream and initialisation */
    int64_t steps;          /* total optimiser steps */
    int batch;              /* images per step */
    double lr, weight_decay;
    int64_t warmup;         /* linear warm-up steps before the cosine decay */
    float p_character;      /* share of named characters in the training stream */
    const char *out;        /* final weights (f16 unless out_f32) */
    int out_f32;
    const char *checkpoint; /* prefix: PREFIX.safetensors + PREFIX.optim.safetensors; NULL = none */
    int64_t checkpoint_every;
    const char *init;       /* start from these weights (a judge file) instead of random ones; NULL = random */
    int resume;             /* continue from the checkpoint */
    int64_t stop_after;     /* > 0: run at most this many steps now, checkpoint and return (time slices) */
    const char *log;        /* JSONL log path or NULL */
    int64_t log_every;
    int64_t eval_every;     /* 0 = only at the end */
    int eval_n;             /* images per evaluation */
    uint64_t eval_seed;     /* must differ from seed */
    int augment;            /* 0 disables augmentation (diagnostics) */
    int aux_layer;          /* dense part supervision on the grid of conv layer aux_layer (1-based); 0 = off */
    double aux_weight;      /* weight of its loss beside the heads' loss */
    double time_limit;      /* > 0: stop after this many seconds of this invocation, checkpoint, write
                               the weights reached so far to out and return (steps_done < steps) */
    int quiet;              /* no progress bar */
} it_judge_train_opts;

void it_judge_train_defaults(it_judge_train_opts *o);

/* Dense part supervision (training only; the shipped network is unchanged):
 * a 1x1 linear layer on the feature grid of conv layer aux_layer predicts,
 * in every grid cell whose centre lies inside the box of the part a head
 * reads (the face for eye count, mouth, goggles, marking and identity; the
 * hat, hair, outfit, accessory or body box for theirs, the face or body
 * box when that part is absent), the image's class of that head. The
 * renderer gives the boxes; the scale/shift augmentation moves them with
 * the image. It teaches the early layers what the small parts look like
 * and where they are, which the image-level heads alone did not within
 * 150k images (eye count and mouth stayed at chance). Its parameters
 * ("aux.weight", "aux.bias") live in checkpoints, not in the final file. */
int it_judge_aux_part(int head); /* IT_TOY_PART_* whose box anchors head, -1 = none */

/* Results of a run (the final evaluation, of the weights as saved; zeros
 * when stop_after ended the invocation before the last step). */
typedef struct it_judge_train_result {
    double acc[IT_JUDGE_N_HEADS];
    double min_acc;
    double seconds;          /* wall time of this invocation */
    double step_seconds;     /* mean wall time per step */
    int64_t steps_done;
} it_judge_train_result;

it_status it_judge_train(it_err *err, const it_judge_train_opts *o, it_judge_train_result *res);

/* Augments one RGB image (h, w, 3) in place and draws the scale and shift
 * for it_judge_input; everything comes from (seed, index). scale/dx/dy may
 * be NULL. Exposed for tests and for looking at augmented images. */
it_status it_judge_augment(it_err *err, uint8_t *rgb, int w, int h, uint64_t seed, uint64_t index, int input_size,
                           float *scale, float *dx, float *dy);

#endif
