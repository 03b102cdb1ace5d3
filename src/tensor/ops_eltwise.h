/* ops_eltwise.h: element-wise operations: activations, broadcasting
 * arithmetic, scaling, dropout.
 *
 * Owns: the activation kernels (forward and backward, one reference scalar
 * formula each), NumPy-style broadcasting for add/mul, and dropout on the
 * counter-based RNG (base/rng.h), so a mask is recomputed in backward and in
 * checkpoint recomputation instead of being stored. Does not own
 * normalisations (ops_norm.h). */
#ifndef IT_OPS_ELTWISE_H
#define IT_OPS_ELTWISE_H

#include <stdint.h>

#include "tensor/tensor.h"

typedef enum it_act {
    IT_ACT_SILU = 0,     /* x * sigmoid(x) */
    IT_ACT_GELU,         /* exact: x * Phi(x) (erf) */
    IT_ACT_GELU_TANH,    /* tanh approximation (PyTorch approximate="tanh") */
    IT_ACT_QUICK_GELU,   /* CLIP: x * sigmoid(1.702 x) */
    IT_ACT_COUNT,
} it_act;

/* Kernels: y = f(x); dx += dy * f'(x). */
void it_cpu_act_fwd(it_act act, float *y, const float *x, int64_t n);
void it_cpu_act_bwd(it_act act, float *dx, const float *dy, const float *x, int64_t n);
/* Scalar forms (reference for the vector loops and the gradient checks). */
double it_act_ref(it_act act, double x);
double it_act_grad_ref(it_act act, double x);

it_tensor *it_op_act(it_ctx *ctx, it_tensor *x, it_act act);
static inline it_tensor *it_op_silu(it_ctx *ctx, it_tensor *x) { return it_op_act(ctx, x, IT_ACT_SILU); }
static inline it_tensor *it_op_gelu(it_ctx *ctx, it_tensor *x) { return it_op_act(ctx, x, IT_ACT_GELU); }

/* diffusers GEGLU after its projection: x (..., 2D) -> (..., D):
 * x[..., :D] * gelu(x[..., D:]) (exact gelu). */
it_tensor *it_op_geglu(it_ctx *ctx, it_tensor *x);

/* Broadcasting (NumPy rules, shapes aligned at the last dim). */
it_tensor *it_op_add(it_ctx *ctx, it_tensor *a, it_tensor *b);
it_tensor *it_op_mul(it_ctx *ctx, it_tensor *a, it_tensor *b);
/* a - b, same broadcasting. */
it_tensor *it_op_sub(it_ctx *ctx, it_tensor *a, it_tensor *b);
/* x * s + c for scalars s, c. */
it_tensor *it_op_scale(it_ctx *ctx, it_tensor *x, float s, float c);

/* torch.exp(x). CLIP's learnable temperature is stored as its log. */
it_tensor *it_op_exp(it_ctx *ctx, it_tensor *x);

/* Inverted dropout with probability p when ctx->training; identity (the same
 * tensor, no copy) otherwise. Element i of a call keeps iff
 * uniform(ctx->seed, offset + i) >= p, offset taken from ctx->rng_offset. */
it_tensor *it_op_dropout(it_ctx *ctx, it_tensor *x, float p);

#endif
