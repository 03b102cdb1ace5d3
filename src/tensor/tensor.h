/* tensor.h: the tensor type and the compute context that owns per-step memory.
 *
 * Owns: it_tensor (up to 8 dims, contiguous row-major storage, f32 for compute
 * and I32 for indices), the compute context it_ctx (a stack allocator reset per
 * step, with marks so that a block can release its activations and keep only
 * its output), the sticky error of a graph under construction, and parameter
 * tensors whose data and gradient live outside the context.
 * Does not own: the tape and backward pass (autograd.h), the operations
 * (ops_*.h), files (safetensors.h) or optimisers (optim.h).
 *
 * Error model (ggml-style): operations return it_tensor * and never fail
 * loudly. The first failure (bad shape, out of memory) is recorded in the
 * context and every later operation that receives NULL returns NULL, so a
 * model's forward is written straight through and checked once at the end
 * with it_ctx_status(). */
#ifndef IT_TENSOR_H
#define IT_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "tensor/dtype.h"

#define IT_MAX_DIMS 8

typedef struct it_node it_node;

typedef struct it_tensor {
    it_dtype dtype;          /* F32 for values, I32 for indices (token ids, class labels) */
    int ndim;                /* 0 (scalar) .. IT_MAX_DIMS */
    int64_t shape[IT_MAX_DIMS];
    int64_t n;               /* element count = product of shape */
    void *data;              /* (n) contiguous, row-major, 64-byte aligned when the engine allocated it */
    float *grad;             /* (n) dL/d(this); NULL until needed; parameters bring their own */
    uint8_t requires_grad;   /* a gradient must reach this tensor (trainable or depends on one) */
    uint8_t is_param;        /* leaf owned outside the context (weights) */
    uint8_t grad_pooled;     /* grad comes from the context's gradient pool (freed in backward) */
    it_node *node;           /* operation that produced it; NULL for leaves and in no-grad mode */
    const char *name;        /* parameters: checkpoint key; others: optional */
} it_tensor;

/* ---------------------------------------------------------------- context */

typedef struct it_ctx_block it_ctx_block;
typedef struct it_pool_buf it_pool_buf;

/* A position in the context: memory and tape both return to it on release. */
typedef struct it_mark {
    it_ctx_block *block;
    size_t off;
    size_t used;
    it_node *tape;
} it_mark;

typedef struct it_ctx {
    it_ctx_block *head;      /* current block; older blocks follow */
    it_ctx_block *spare;     /* released blocks kept for reuse */
    size_t block_size;       /* default capacity of a new block */
    size_t used;             /* bytes handed out since the last reset */
    size_t peak;             /* largest `used` since init (or it_ctx_reset_peak) */
    size_t reserved;         /* bytes held in blocks, used or spare */
    it_pool_buf *pool_live;  /* gradient buffers in use */
    it_pool_buf *pool_free;  /* gradient buffers kept for reuse */
    size_t pool_used;        /* bytes of live gradient buffers (counted in peak) */
    it_node *tape;           /* newest recorded node (autograd.c) */
    int grad_enabled;        /* 0: no nodes are recorded, no activations saved */
    int saw_trainable;       /* set when an op in no-grad mode saw an input requiring grad */
    int training;            /* dropout active when set */
    uint64_t seed;           /* dropout and other stochastic ops */
    uint64_t rng_offset;     /* advanced by every stochastic op */
    struct it_memo *memo;    /* checkpoint memo being recorded or replayed (autograd.h) */
    int memo_min_k;          /* memoise results of reduction length >= this in checkpoints
                              * (0: IT_MEMO_MIN_K; < 0: never) */
    int failed;              /* sticky: set by the first failing op */
    it_err err;              /* message of that failure */
} it_ctx;

/* block_size: default block capacity in bytes (0 = 64 MiB); tensors larger
 * than a block get a block of their own. */
void it_ctx_init(it_ctx *ctx, size_t block_size);
void it_ctx_free(it_ctx *ctx);
/* Frees every tensor and node of the step; keeps memory blocks for reuse and
 * clears the sticky error. Grad mode and training flag are kept. */
void it_ctx_reset(it_ctx *ctx);
void it_ctx_reset_peak(it_ctx *ctx);

/* Returns the sticky status, copying the message into err (may be NULL). */
it_status it_ctx_status(it_ctx *ctx, it_err *err);
/* Records a failure (only the first is kept); returns NULL for convenience. */
void *it_ctx_fail(it_ctx *ctx, it_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 64-byte aligned memory valid until reset or release past it; NULL (and a
 * recorded failure) when out of memory. */
void *it_ctx_alloc(it_ctx *ctx, size_t bytes);
void *it_ctx_calloc(it_ctx *ctx, size_t bytes);

/* Gradient buffers of activations: zeroed, freed individually (backward
 * frees each one as soon as its node has consumed it, so they do not pile
 * up on the stack); reset reclaims any left over. */
float *it_ctx_grad_alloc(it_ctx *ctx, int64_t n);
void it_ctx_grad_free(it_ctx *ctx, float *g);

/* Scopes: everything allocated (and recorded on the tape) after the mark is
 * dropped by release. keep() releases and returns a copy of one tensor,
 * moved down to the mark: this is how a block in no-grad mode frees its
 * activations. A mark taken before a block's input was made lets the output
 * replace the dead input, so a chain of blocks runs in constant memory:
 *     it_mark m = it_ctx_mark(ctx); x = make_input(ctx);
 *     for (...) x = it_ctx_keep(ctx, m, block(ctx, x));
 * keep() only accepts a tensor without a node (no-grad mode or detached);
 * its data is kept, its gradient is not. */
it_mark it_ctx_mark(const it_ctx *ctx);
void it_ctx_release(it_ctx *ctx, it_mark m);
it_tensor *it_ctx_keep(it_ctx *ctx, it_mark m, const it_tensor *t);

/* ---------------------------------------------------------------- tensors */

/* New tensor in the context, uninitialised / zeroed. shape has ndim entries. */
it_tensor *it_tensor_new(it_ctx *ctx, it_dtype dtype, int ndim, const int64_t *shape);
it_tensor *it_tensor_zeros(it_ctx *ctx, it_dtype dtype, int ndim, const int64_t *shape);
/* New f32 tensor holding a copy of data (n = product of shape). */
it_tensor *it_tensor_from(it_ctx *ctx, const float *data, int ndim, const int64_t *shape);
/* Tensor header over caller memory (no copy, not owned); constant, no grad. */
it_tensor *it_tensor_wrap(it_ctx *ctx, void *data, it_dtype dtype, int ndim, const int64_t *shape);
/* Shorthand for literal shapes: IT_SHAPE(2, 3, 4) -> 3, (int64_t[]){2, 3, 4}. */
#define IT_SHAPE(...) \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

/* Parameter: a leaf whose storage lives outside any context (a model's weights).
 * data: (n) f32, grad: (n) f32 or NULL. With grad == NULL the parameter is
 * frozen: it receives no gradient, but gradients still flow through the
 * operations that use it to their other inputs (LoRA training). Gradients
 * accumulate into grad across backward passes until the caller zeroes them
 * (gradient accumulation). Returns IT_ERR_ARG on a bad shape. */
it_status it_tensor_init_param(it_err *err, it_tensor *t, const char *name, float *data,
                               float *grad, int ndim, const int64_t *shape);

/* Shape helpers. numel returns -1 on a bad shape (negative or overflow). */
int64_t it_shape_numel(int ndim, const int64_t *shape);
int it_tensor_same_shape(const it_tensor *a, const it_tensor *b);
/* "(2, 3, 4)" into buf; returns buf. */
const char *it_tensor_shape_str(const it_tensor *t, char *buf, size_t n);
static inline float *it_f32(const it_tensor *t) { return (float *)t->data; }

/* Detached copy header: same data, no node, requires_grad as given. */
it_tensor *it_tensor_detach(it_ctx *ctx, const it_tensor *t, int requires_grad);

#endif
