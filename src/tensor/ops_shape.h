/* ops_shape.h: operations that move data without arithmetic, and lookups.
 *
 * Owns: reshape (a view), permute, concat, slice (and so split), nearest 2x
 * upsampling, embedding lookup, the sinusoidal timestep embedding, and the
 * argument-check helpers of ops_common.h. Does not own element-wise math
 * (ops_eltwise.h). */
#ifndef IT_OPS_SHAPE_H
#define IT_OPS_SHAPE_H

#include <stdint.h>

#include "tensor/tensor.h"

/* Same data, new shape (element count must match; one dim may be -1).
 * The result shares x's storage. */
it_tensor *it_op_reshape(it_ctx *ctx, it_tensor *x, int ndim, const int64_t *shape);

/* y.shape[i] = x.shape[perm[i]]; copies. perm has x->ndim entries. */
it_tensor *it_op_permute(it_ctx *ctx, it_tensor *x, const int *perm);
/* Swaps two dims (permute shorthand). */
it_tensor *it_op_transpose(it_ctx *ctx, it_tensor *x, int d0, int d1);

/* Concatenation of n (1..4) tensors along dim; other dims must match. */
it_tensor *it_op_concat(it_ctx *ctx, int n, it_tensor *const *xs, int dim);
/* x[..., start:start+len, ...] along dim (copies). Split = several slices. */
it_tensor *it_op_slice(it_ctx *ctx, it_tensor *x, int dim, int64_t start, int64_t len);

/* torch.chunk with equal parts: n slices of x along dim (size divisible by
 * n) into out[0..n-1]. Returns 0, or -1 after recording a failure. */
int it_op_split(it_ctx *ctx, it_tensor *x, int dim, int n, it_tensor **out);

/* Nearest-neighbour 2x upsampling: x (N, C, H, W) -> (N, C, 2H, 2W). */
it_tensor *it_op_upsample2x(it_ctx *ctx, it_tensor *x);

/* Zero padding of the last two dims (F.pad(x, (left, right, top, bottom))):
 * x (N, C, H, W) -> (N, C, H + top + bottom, W + left + right). The VAE's
 * downsampling pads (0, 1, 0, 1) before a stride-2, unpadded conv. */
it_tensor *it_op_pad2d(it_ctx *ctx, it_tensor *x, int64_t left, int64_t right, int64_t top, int64_t bottom);

/* Embedding lookup: ids I32 (...), table (V, D) -> (..., D). An id outside
 * [0, V) is an IT_ERR_RANGE failure. */
it_tensor *it_op_embedding(it_ctx *ctx, it_tensor *ids, it_tensor *table);

/* diffusers get_timestep_embedding: t (N) f32 -> (N, dim), constant (no grad).
 * freq_j = exp(-ln(max_period) * j / (dim/2 - downscale_freq_shift)),
 * [sin | cos] of t*freq*scale, halves swapped when flip_sin_to_cos, a zero
 * column appended for odd dim. SD 1.5: flip 1, shift 0, scale 1, 10000. */
it_tensor *it_op_timestep_embedding(it_ctx *ctx, it_tensor *t, int64_t dim, int flip_sin_to_cos,
                                    float downscale_freq_shift, float scale, float max_period);

#endif
