/* judge_crop.h: the judge's part crops (a locator and three or four crop networks).
 *
 * Owns: the crop branch specs (which anchor box, how far around it, the
 * crop side, the small network and the heads each one answers), the
 * locator's box encoding, bilinear crop sampling from a judge input, and
 * the forward of one crop network. Does not own the main network, the
 * weights file or the parameter storage (judge.c), nor training.
 *
 * Why: a CNN over the whole 128x128 image stayed at chance on eye count and
 * mouth after 150k images, while the same parts cropped around the face box
 * are read at 99 % after 50 steps (measured in PyTorch, docs/TOYWORLD.md).
 * The parts are visible; what the whole-image network fails to learn is
 * where to look. So the judge's main network also regresses the face and
 * body boxes (the "locator", 8 numbers), and small networks read crops
 * taken around those boxes at full resolution: the face (eyes, goggles,
 * mouth, marking, identity), the head (hair, hat), the neck (accessory;
 * in version 1 the head crop read it) and the body (body shape, outfit
 * kind and pattern). Training crops around the true
 * boxes (from the renderer, jittered); inference around the predicted
 * ones. */
#ifndef IT_JUDGE_CROP_H
#define IT_JUDGE_CROP_H

#include "tensor/tensor.h"

#define IT_JUDGE_N_CROPS 4 /* the most branches of any version */
#define IT_JUDGE_CROP_CONV 4
#define IT_JUDGE_LOC 8 /* locator outputs: face cx, cy, w, h, body cx, cy, w, h (over the input side) */

enum { IT_JUDGE_ANCHOR_FACE = 0, IT_JUDGE_ANCHOR_BODY = 1 };

typedef struct it_judge_crop_spec {
    const char *name;  /* "face": parameter prefix */
    int anchor;        /* IT_JUDGE_ANCHOR_* */
    float factor;      /* crop side = factor * max(w, h) of the anchor box */
    float shift;       /* crop centre = anchor centre + shift * h vertically (negative: up) */
    int side;          /* the crop is resampled to side x side */
    int width[IT_JUDGE_CROP_CONV], stride[IT_JUDGE_CROP_CONV];
    int hidden;
    int heads[8];      /* judge heads it answers, -1 ends the list */
} it_judge_crop_spec;

/* Every function takes the crops version of the judge file (its config's
 * "crops": 1 = face, head, body; 2 = face, head, neck, body, see
 * judge_crop.c) and a branch index. */
int it_judge_n_crops(int version); /* 0 for an unknown version */
const it_judge_crop_spec *it_judge_crop_get(int version, int b);
/* The branch that answers head h, -1 = the main network. */
int it_judge_crop_of_head(int version, int head);
/* Sum of the classes of a branch's heads: the width of its logits. */
int it_judge_crop_classes(int version, int b);
/* Parameters per branch: 4 per conv layer, then fc and heads. */
#define IT_JUDGE_CROP_PARAMS (4 * IT_JUDGE_CROP_CONV + 4)
const char *it_judge_crop_param_name(int version, int b, int i);
/* Shape of parameter i of branch b: returns ndim. */
int it_judge_crop_param_shape(int version, int b, int i, int64_t *shape);

/* Crop window of branch b from anchor boxes (IT_JUDGE_LOC values in input
 * pixels): centre and half side in input pixels. */
void it_judge_crop_window(int version, int b, const float *anchors, float *cx, float *cy, float *half);
/* Bilinear resample of the window into dst (3, side, side) from x (3, S, S);
 * the border repeats the edge. */
void it_judge_crop_sample(float *dst, int side, const float *x, int S, float cx, float cy, float half);

/* Crop network b on crops (N, 3, side, side) -> (N, crop classes); p: its
 * IT_JUDGE_CROP_PARAMS parameters. */
it_tensor *it_judge_crop_forward(it_ctx *ctx, int version, int b, it_tensor *p, it_tensor *crops);

#endif
