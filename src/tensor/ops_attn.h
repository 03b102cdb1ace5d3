/* ops_attn.h: scaled-dot-product attention as a graph operation.
 *
 * Owns: the autograd wrapper around the blocked (flash-style) kernels of
 * attention.h: shape checks, the saved logsumexp, and the choice of layout.
 * Does not own the kernels (attention.c) or the q/k/v/out projections (the
 * models' linear layers). Never materialises the (Tq, Tk) score matrix. */
#ifndef IT_OPS_ATTN_H
#define IT_OPS_ATTN_H

#include "tensor/tensor.h"

/* softmax(scale q k^T [+ causal mask]) v, scale 0 = 1/sqrt(D).
 * Two layouts, chosen by rank:
 *   q (B, H, Tq, D), k and v (B, H, Tk, D)      -> (B, H, Tq, D)   (n_heads ignored)
 *   q (B, Tq, H*D), k and v (B, Tk, H*D)        -> (B, Tq, H*D)    (heads interleaved,
 *     as linear projections produce them: no permutes around attention). */
it_tensor *it_op_attention(it_ctx *ctx, it_tensor *q, it_tensor *k, it_tensor *v, int n_heads,
                           int causal, float scale);

#endif
