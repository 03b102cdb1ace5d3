/* ops_norm.h: normalisations and softmax.
 *
 * Owns: group norm (NCHW, affine per channel, optionally fused with SiLU as
 * in every SD ResBlock), layer norm over the last dim, softmax over the last
 * dim; forward saves mean and 1/std per group or row for backward. Reference
 * kernels in double sit beside the fast ones. Does not own attention
 * (ops_attn.h), which has its own fused softmax. */
#ifndef IT_OPS_NORM_H
#define IT_OPS_NORM_H

#include <stdint.h>

#include "tensor/tensor.h"

/* Kernels. x, y: (N, C, S) with S = product of spatial dims; w, b: (C) or
 * NULL; mean, rstd: (N, G) outputs (may be NULL in no-grad forward). */
void it_cpu_group_norm_fwd(float *y, float *mean, float *rstd, const float *x, const float *w,
                           const float *b, int64_t N, int64_t C, int64_t S, int64_t G, float eps);
void it_cpu_group_norm_fwd_ref(float *y, const float *x, const float *w, const float *b, int64_t N,
                               int64_t C, int64_t S, int64_t G, float eps);
/* Accumulates dx, dw, db (any may be NULL). */
void it_cpu_group_norm_bwd(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *mean, const float *rstd, const float *w, int64_t N, int64_t C,
                           int64_t S, int64_t G);

/* x: (N, C, ...) -> same shape; w, b: (C) or NULL. silu != 0 applies SiLU to
 * the result in the same pass (GroupNorm -> SiLU without an intermediate). */
it_tensor *it_op_group_norm(it_ctx *ctx, it_tensor *x, it_tensor *w, it_tensor *b, int64_t groups,
                            float eps, int silu);

/* x: (..., D) -> same; w, b: (D) or NULL. */
it_tensor *it_op_layer_norm(it_ctx *ctx, it_tensor *x, it_tensor *w, it_tensor *b, float eps);

/* Softmax over the last dim. */
void it_cpu_softmax_fwd(float *y, const float *x, int64_t rows, int64_t D);
it_tensor *it_op_softmax(it_ctx *ctx, it_tensor *x);

#endif
