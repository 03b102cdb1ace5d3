/* autograd.h: reverse-mode differentiation over an eager tape.
 *
 * Owns: the tape (nodes recorded by operations as they run), the backward
 * pass, gradient buffers of activations, no-grad mode, and gradient
 * checkpointing of blocks (recompute in backward). Does not own the
 * operations (ops_*.h) or the optimiser step (optim.h). docs/ENGINE.md says
 * why the tape is eager.
 *
 * Usage (one training step):
 *     it_ctx_reset(&ctx);
 *     it_tensor *loss = model_forward(&ctx, ...);       // records the tape
 *     if (it_autograd_backward(&err, &ctx, loss)) ...;  // param->grad += dL/dparam
 *     optimiser step; zero the parameter gradients when not accumulating. */
#ifndef IT_AUTOGRAD_H
#define IT_AUTOGRAD_H

#include "tensor/tensor.h"

typedef void (*it_backward_fn)(it_ctx *ctx, it_node *n);
/* A checkpointed block: builds its output from its inputs (see below). */
typedef it_tensor *(*it_block_fn)(it_ctx *ctx, void *user, it_tensor *const *in);

#define IT_NODE_MAX_IN 4

/* One recorded operation. Lives in the context's memory. */
struct it_node {
    it_node *prev;                /* previously recorded node (tape order) */
    const char *op;               /* name, for messages and graph dumps */
    it_backward_fn backward;      /* adds out->grad's contribution to the inputs' grads */
    it_tensor *out;
    it_tensor *in[IT_NODE_MAX_IN];
    int n_in;
    int64_t iarg[8];              /* op attributes (dims, strides, ...) */
    float farg[4];
    void *saved;                  /* op-specific buffers saved by forward (statistics, masks) */
    it_block_fn block;            /* checkpoint: the block function and its user pointer */
    void *user;
    uint64_t rng_offset;          /* checkpoint: context RNG position at forward time */
};

/* Turns recording on or off; returns the previous setting. Off = no-grad
 * mode: no nodes, no saved buffers, results never require grad. */
int it_autograd_set_enabled(it_ctx *ctx, int on);

/* For operations: records a node producing `out` from inputs when recording
 * is on and some input requires grad; marks `out` as requiring grad. Returns
 * the node (for op attributes) or NULL when nothing is recorded. Inputs may
 * contain NULL (optional inputs such as a missing bias). */
it_node *it_autograd_record(it_ctx *ctx, it_tensor *out, const char *op, it_backward_fn bw,
                            int n_in, it_tensor *const *in);
/* True when an op would record for these inputs (lets forward skip saving). */
int it_autograd_wants(it_ctx *ctx, int n_in, it_tensor *const *in);

/* For backward functions: the gradient buffer of t, allocated zeroed on first
 * use; NULL when t needs no gradient (constant or frozen parameter). */
float *it_autograd_grad(it_ctx *ctx, it_tensor *t);

/* Runs the backward pass from a scalar loss (seeded with 1) or, for a
 * non-scalar root, from root->grad already filled by the caller. Parameter
 * gradients accumulate. */
it_status it_autograd_backward(it_err *err, it_ctx *ctx, it_tensor *root);

/* Gradient checkpointing. The block runs without recording; only its output
 * is kept (and is a constant when nothing inside needed a gradient). In backward the block runs again with recording on, its local
 * tape is differentiated and released. The function must be deterministic
 * given the context RNG position (dropout is: it reads the position). */
it_tensor *it_autograd_checkpoint(it_ctx *ctx, it_block_fn fn, void *user, int n_in,
                                  it_tensor *const *in);

/* Checkpoint memo: what makes recomputation cheap. Inside a checkpointed
 * block, an op whose result is expensive for its size (a reduction of
 * length K >= ctx->memo_min_k per output element: 3x3 convolutions,
 * attention over long sequences) copies its result aside during the
 * block's first, no-grad forward (it_autograd_memo_put), and the backward's
 * recomputation takes it back (it_autograd_memo_take) in place of computing
 * it again. The op still records its node, so gradients are unchanged (bit
 * for bit: the result is the same function of the same inputs). The
 * recomputation then redoes only the cheap ops (norms, activations, short
 * products, the LoRA branches) to rebuild what backward needs. The copies
 * are pooled gradient-sized buffers, counted in the context's peak and
 * freed as they are taken. Order is the key: ops take results in the order
 * they were put, which is the block's deterministic op order. */
#define IT_MEMO_MIN_K 2048
/* Whether an op with reduction length k should memoise (record or replay). */
int it_autograd_memo_wants(const it_ctx *ctx, int64_t k);
/* Record phase: copies n floats aside (no-op outside a recording memo). */
void it_autograd_memo_put(it_ctx *ctx, const float *src, int64_t n);
/* Replay phase: copies the next memoised result (which must have n floats)
 * into dst and frees it; returns 0 when no memo is being replayed. */
int it_autograd_memo_take(it_ctx *ctx, float *dst, int64_t n);

/* Number of nodes on the tape (tests, diagnostics). */
size_t it_autograd_tape_len(const it_ctx *ctx);

#endif
