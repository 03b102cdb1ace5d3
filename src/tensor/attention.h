/* attention.h: scaled-dot-product attention kernels on raw float arrays.
 *
 * Owns: the fused, blocked ("flash-style") CPU attention forward and
 * backward, and the plain reference kernels (materialised softmax, double
 * accumulation) that the fast ones are tested against. Does not own tensors,
 * autograd or projections: the tensor engine (ops/autograd) wraps these
 * kernels into an operation, and q/k/v/out linear layers live in the models.
 *
 * Math, per batch b and head h (torch.nn.functional.scaled_dot_product_attention):
 *     S = scale * Q K^T + M            Q (Tq, D), K (Tk, D), S (Tq, Tk)
 *     P = softmax(S) over keys         row-wise
 *     O = P V                          V (Tk, D), O (Tq, D)
 * scale defaults to 1/sqrt(D). M is 0, or -inf where the causal rule or a
 * boolean mask hides a key, plus an optional additive mask.
 *
 * Layouts. Every array is addressed by three element strides (batch, head,
 * token); the D elements of one (b, h, t) row are contiguous. Two layouts
 * have helpers:
 *   (B, H, T, D) contiguous           it_attn_layout_bhtd(H, T, D)
 *   (B, T, H*D) "heads interleaved"    it_attn_layout_bthd(H, T, D)
 * The second is what a linear projection produces, so no permute/copy is
 * needed before or after attention. A fused qkv projection (B, T, 3*H*D)
 * is addressed with it_attn_layout_bthd_packed(3*H*D) and base pointers
 * offset by 0, H*D and 2*H*D. q, k, v and o may each use a different layout;
 * gradients use the layout of the tensor they belong to.
 *
 * The fast forward keeps per thread one block of at most IT_ATTN_BQ x
 * IT_ATTN_BK scores (never the (Tq, Tk) matrix) and writes one logsumexp
 * per query row (B, H, Tq); the backward recomputes score blocks from it
 * (FlashAttention-2). Results do not depend on the thread count.
 *
 * Fully masked rows (every key hidden) give O = 0, lse = -inf and zero
 * gradients (PyTorch's math path gives NaN there). */
#ifndef IT_ATTENTION_H
#define IT_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

/* Query rows x key columns of one score block; 64 x 256 floats = 64 KiB,
 * which with the K and V blocks (2 x 256 x D floats) stays in a 512 KiB L2. */
#define IT_ATTN_BQ 64
#define IT_ATTN_BK 256

/* Element strides of batch, head and token; the D dimension has stride 1. */
typedef struct it_attn_layout {
    ptrdiff_t sb, sh, st;
} it_attn_layout;

it_attn_layout it_attn_layout_bhtd(int n_heads, int T, int D); /* (B, H, T, D) */
it_attn_layout it_attn_layout_bthd(int n_heads, int T, int D); /* (B, T, H*D) */
/* (B, T, row) rows of `row` floats holding H heads of D at offset 0: for
 * slices of a fused projection, e.g. row = 3*H*D for qkv. */
it_attn_layout it_attn_layout_bthd_packed(int n_heads, int T, int D, ptrdiff_t row);

/* Optional mask, broadcast by strides: element (b, h, i, j) is at
 * [b*sb + h*sh + i*sq + j]; a zero stride broadcasts. A key padding mask of
 * shape (B, Tk) is {sb = Tk, sh = 0, sq = 0}; a (Tq, Tk) bias is {0, 0, Tk}.
 * add: added to the scaled scores (may hold -inf). keep: a key takes part
 * where keep != 0 (torch's boolean attn_mask, True = attend). Either or both
 * may be NULL. Masks receive no gradient. */
typedef struct it_attn_mask {
    const float *add;
    const uint8_t *keep;
    ptrdiff_t sb, sh, sq;
} it_attn_mask;

typedef struct it_attn_desc {
    int B, n_heads, Tq, Tk, D;
    float scale;            /* 0 means 1/sqrt(D) */
    int causal;             /* query i sees keys j <= i (torch is_causal, top-left) */
    it_attn_layout q, k, v; /* layouts of q (B,H,Tq,D), k and v (B,H,Tk,D) */
    it_attn_layout o;       /* layout of o and dout (B,H,Tq,D) */
    it_attn_mask mask;
    int accumulate;         /* backward: 1 adds into dq/dk/dv, 0 overwrites */
} it_attn_desc;

/* A desc for contiguous (B, H, T, D) q, k, v and o, no mask, default scale. */
it_attn_desc it_attn_desc_bhtd(int B, int n_heads, int Tq, int Tk, int D);
/* Same with every array in the (B, T, H*D) layout. */
it_attn_desc it_attn_desc_bthd(int B, int n_heads, int Tq, int Tk, int D);

/* Fast forward. o: (B,H,Tq,D) in d->o layout. lse: (B,H,Tq) contiguous, the
 * natural-log logsumexp of each scaled, masked score row; NULL when no
 * backward will follow (inference). IT_ERR_ARG on bad sizes or pointers,
 * IT_ERR_NOMEM if the per-thread workspace cannot be allocated. */
it_status it_attn_forward(it_err *err, float *o, float *lse, const float *q, const float *k,
                          const float *v, const it_attn_desc *d);

/* Fast backward. dq, dk, dv in the layouts of q, k, v (written or, with
 * d->accumulate, added to); any of them may be NULL to skip that gradient
 * and its products (not all three); dout in the layout of o; o and lse
 * from the forward. Work is split over (batch, head) pairs, and over key blocks
 * with private dq partials when there are fewer pairs than threads. */
it_status it_attn_backward(it_err *err, float *dq, float *dk, float *dv, const float *dout,
                           const float *q, const float *k, const float *v, const float *o,
                           const float *lse, const it_attn_desc *d);

/* Reference kernels: materialised (Tq, Tk) softmax per (b, h), double
 * accumulation, single thread. Same contract as the fast ones (lse may be
 * NULL in the forward); the backward recomputes P itself, so it needs no o
 * or lse. Slow: for tests and small shapes. */
it_status it_attn_forward_ref(it_err *err, float *o, float *lse, const float *q, const float *k,
                              const float *v, const it_attn_desc *d);
it_status it_attn_backward_ref(it_err *err, float *dq, float *dk, float *dv, const float *dout,
                               const float *q, const float *k, const float *v,
                               const it_attn_desc *d);

/* FLOPs of one forward (4*B*H*Tq*Tk*D, halved-ish for causal: counts only
 * visible pairs) and of one backward (2.5x the forward), for benchmarks. */
double it_attn_flops_forward(const it_attn_desc *d);
double it_attn_flops_backward(const it_attn_desc *d);

#endif
