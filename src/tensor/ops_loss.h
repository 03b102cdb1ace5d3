/* ops_loss.h: reductions and losses.
 *
 * Owns: sum and mean over all elements (to a scalar), mean and max over the
 * last dim,
 * MSE with an optional per-element weight or mask, cross-entropy over class
 * logits, cosine similarity, L2 normalisation of rows. Reductions
 * accumulate in double. Does not own training-specific weightings (min-SNR
 * lives with the diffusion trainer and passes its weights here). */
#ifndef IT_OPS_LOSS_H
#define IT_OPS_LOSS_H

#include "tensor/tensor.h"

/* Scalar (shape ()) sum / mean of every element. */
it_tensor *it_op_sum(it_ctx *ctx, it_tensor *x);
it_tensor *it_op_mean(it_ctx *ctx, it_tensor *x);
/* Mean over the last dim: (..., D) -> (...). */
it_tensor *it_op_mean_last(it_ctx *ctx, it_tensor *x);
/* Max over the last dim: (..., D) -> (...); the gradient goes to the first
 * maximal element of each row (global max pooling of (N, C, H*W)). */
it_tensor *it_op_max_last(it_ctx *ctx, it_tensor *x);

/* mean(weight * (pred - target)^2) over all elements; weight NULL = 1.
 * pred, target, weight: same shape. Gradients flow to pred and target. */
it_tensor *it_op_mse(it_ctx *ctx, it_tensor *pred, it_tensor *target, it_tensor *weight);

/* logits (N, C), labels I32 (N) in [0, C) -> scalar mean of -log softmax. */
it_tensor *it_op_cross_entropy(it_ctx *ctx, it_tensor *logits, it_tensor *labels);

/* a, b: (..., D) -> (...): a.b / sqrt(max(|a|^2 |b|^2, eps^2)) (PyTorch's
 * F.cosine_similarity, eps 1e-8). */
it_tensor *it_op_cosine_similarity(it_ctx *ctx, it_tensor *a, it_tensor *b, float eps);

/* x: (..., D) -> x / max(|x|, eps) per row of the last dim (PyTorch's
 * F.normalize(x, dim=-1, eps=eps), eps 1e-12): CLIP's embedding
 * normalisation before the contrastive logits. */
it_tensor *it_op_l2_normalize(it_ctx *ctx, it_tensor *x, float eps);

#endif
