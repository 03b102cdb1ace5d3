/* det_loss.h: the training losses of the toy OWL-ViT detector and of the
 * preference head, as autograd operations with hand-written backward
 * passes (each checked against finite differences in
 * tests/test_pretrain_detector.c).
 *
 * Owns:
 *   - the box loss: OWL-ViT's box head output (before the grid bias and the
 *     sigmoid) of the matched patches against their ground-truth boxes,
 *     L1 on (cx, cy, w, h) plus 1 - generalised IoU (DETR's two terms);
 *   - the class loss: OWL-ViT's class head logits
 *     (cos(class_emb, query) + shift) * (elu(scale) + 1), the embeddings and
 *     queries divided by (norm + 1e-6) exactly as vision/owlvit.c computes
 *     them at inference, against text queries (constants) and image-guided
 *     queries taken from rows of the same class embeddings (gradients reach
 *     both the patch and the query side), with a sigmoid focal loss;
 *   - the pairwise (Bradley-Terry) preference loss, mean softplus(lose - win).
 * Does not own the matching of patches to boxes, the models or the data
 * (pretrain_detector.c, pretrain_preference.c). */
#ifndef IT_DET_LOSS_H
#define IT_DET_LOSS_H

#include <stdint.h>

#include "tensor/tensor.h"

/* The OWL-ViT box bias of a gh x gw patch grid, (gh*gw, 4), as
 * vision/owlvit.c adds it before the sigmoid. */
void it_detloss_box_bias(float *bias, int gh, int gw);

typedef struct it_detloss_box_args {
    int n_match;          /* M matched (patch, box) pairs */
    const int32_t *row;   /* (M) row of box_raw: image * n_patches + patch */
    const float *gt;      /* (M, 4) target cx, cy, w, h in [0, 1] */
    const float *bias;    /* (n_patches, 4) it_detloss_box_bias */
    int n_patches;
    float w_l1, w_giou;   /* DETR: 5 and 2 */
    float norm;           /* the sum is divided by this (number of boxes, >= 1) */
} it_detloss_box_args;

/* box_raw (..., 4) with rows = images * n_patches -> scalar
 * sum_m [w_l1 |sigmoid(raw + bias) - gt|_1 + w_giou (1 - giou)] / norm.
 * The arrays are copied; the caller's may go after the call. */
it_tensor *it_detloss_box(it_ctx *ctx, it_tensor *box_raw, const it_detloss_box_args *a);

typedef struct it_detloss_class_args {
    int n_text;           /* T constant queries */
    const float *text_q;  /* (T, D) */
    int n_img;            /* K image-guided queries */
    const int32_t *img_row; /* (K) row of class_emb whose embedding is query T + k */
    const uint8_t *target;/* (R, T + K): 1 positive, 0 negative */
    const uint8_t *valid; /* (R, T + K): 0 leaves the pair out; NULL = every pair counts */
    float alpha, gamma;   /* focal loss: 0.25, 2 (alpha < 0: no alpha weighting) */
    float norm;           /* the sum is divided by this (number of positives, >= 1) */
} it_detloss_class_args;

/* class_emb (..., D) with R rows, shift and scale_raw with R elements (the
 * class head's logit_shift and logit_scale outputs) -> scalar focal loss.
 * logits (R, T + K) may be NULL; otherwise receives the logits. */
it_tensor *it_detloss_class(it_ctx *ctx, it_tensor *class_emb, it_tensor *shift, it_tensor *scale_raw,
                            const it_detloss_class_args *a, float *logits);

/* The same with the text queries as a tensor (T, D) of the graph, so they
 * learn too (a trainable text projection); a->text_q is then ignored. */
it_tensor *it_detloss_class_q(it_ctx *ctx, it_tensor *class_emb, it_tensor *shift, it_tensor *scale_raw,
                              it_tensor *text_q, const it_detloss_class_args *a, float *logits);

/* scores (2P) (any shape with 2P elements): the first P are the preferred
 * items, the next P the items they are preferred to -> scalar
 * mean_p softplus(s[P + p] - s[p]) = -log sigmoid(win - lose). */
it_tensor *it_detloss_pairwise(it_ctx *ctx, it_tensor *scores, int n_pairs);

/* Generalised IoU of two (x0, y0, x1, y1) boxes (torchvision's
 * generalized_box_iou); 0-area unions give 0 instead of NaN. */
float it_detloss_giou(const float a[4], const float b[4]);

#endif
