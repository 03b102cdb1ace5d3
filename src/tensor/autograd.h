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

/* Number of nodes on the tape (tests, diagnostics). */
size_t it_autograd_tape_len(const it_ctx *ctx);

#endif
