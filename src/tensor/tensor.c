/* tensor.c: the compute context (a stack of memory blocks with marks) and
 * tensor construction.
 *
 * Why a stack and not the plain it_arena: a block of a network run without
 * gradients must be able to drop its activations and keep only its output
 * (it_ctx_keep), and gradient checkpointing releases a recomputed block after
 * its backward. Both are "return to a mark", which a bump allocator with
 * marks gives at no cost. Released blocks go to a spare list so that a steady
 * training loop allocates nothing from the heap after its first step. */
#include "tensor/tensor.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"

struct it_ctx_block {
    it_ctx_block *next; /* older block (in head chain) or next spare */
    size_t cap;
    size_t off;
    /* data follows, aligned because the header is padded to IT_ALIGN */
};

/* Gradient pool buffer header; data follows at BLOCK_HDR. */
struct it_pool_buf {
    it_pool_buf *next, *prev; /* doubly linked while live, singly while free */
    size_t cap;
};

#define BLOCK_HDR ((sizeof(it_ctx_block) + IT_ALIGN - 1) / IT_ALIGN * IT_ALIGN)
#define DEFAULT_BLOCK ((size_t)64 << 20)

void it_ctx_init(it_ctx *ctx, size_t block_size)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->block_size = block_size ? block_size : DEFAULT_BLOCK;
    ctx->grad_enabled = 1;
    ctx->training = 1;
    it_err_clear(&ctx->err);
}

static void free_chain(it_ctx_block *b)
{
    while (b) {
        it_ctx_block *next = b->next;
        it_free_aligned(b);
        b = next;
    }
}

static void pool_free_all(it_pool_buf *b)
{
    while (b) {
        it_pool_buf *next = b->next;
        it_free_aligned(b);
        b = next;
    }
}

/* Moves every live gradient buffer to the free list. */
static void pool_reclaim(it_ctx *ctx)
{
    while (ctx->pool_live) {
        it_pool_buf *b = ctx->pool_live;
        ctx->pool_live = b->next;
        b->next = ctx->pool_free;
        ctx->pool_free = b;
    }
    ctx->pool_used = 0;
}

void it_ctx_free(it_ctx *ctx)
{
    pool_reclaim(ctx);
    pool_free_all(ctx->pool_free);
    ctx->pool_free = NULL;
    free_chain(ctx->head);
    free_chain(ctx->spare);
    ctx->head = ctx->spare = NULL;
    ctx->used = ctx->reserved = 0;
    ctx->tape = NULL;
}

/* Moves every block newer than `keep` (exclusive) to the spare list. */
static void spare_until(it_ctx *ctx, it_ctx_block *keep)
{
    while (ctx->head && ctx->head != keep) {
        it_ctx_block *b = ctx->head;
        ctx->head = b->next;
        b->off = 0;
        b->next = ctx->spare;
        ctx->spare = b;
    }
}

void it_ctx_reset(it_ctx *ctx)
{
    pool_reclaim(ctx);
    spare_until(ctx, NULL);
    ctx->used = 0;
    ctx->tape = NULL;
    ctx->memo = NULL; /* its buffers were pool buffers, reclaimed above */
    ctx->failed = 0;
    it_err_clear(&ctx->err);
}

void it_ctx_reset_peak(it_ctx *ctx) { ctx->peak = ctx->used + ctx->pool_used; }

static void note_peak(it_ctx *ctx)
{
    if (ctx->used + ctx->pool_used > ctx->peak) ctx->peak = ctx->used + ctx->pool_used;
}

float *it_ctx_grad_alloc(it_ctx *ctx, int64_t n)
{
    if (ctx->failed) return NULL;
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    /* Best fit among free buffers; a steady training loop asks for the same
     * sizes every step, so this finds exact matches after the first step. */
    it_pool_buf **best = NULL;
    for (it_pool_buf **pp = &ctx->pool_free; *pp; pp = &(*pp)->next)
        if ((*pp)->cap >= bytes && (!best || (*pp)->cap < (*best)->cap)) {
            best = pp;
            if ((*pp)->cap == bytes) break;
        }
    it_pool_buf *b;
    if (best && (*best)->cap <= 2 * bytes) {
        b = *best;
        *best = b->next;
    } else {
        b = it_malloc_aligned(BLOCK_HDR + bytes);
        if (!b) return it_ctx_fail(ctx, IT_ERR_NOMEM, "out of memory allocating a %zu-byte gradient", bytes);
        b->cap = bytes;
    }
    b->prev = NULL;
    b->next = ctx->pool_live;
    if (ctx->pool_live) ctx->pool_live->prev = b;
    ctx->pool_live = b;
    ctx->pool_used += b->cap;
    note_peak(ctx);
    float *g = (float *)((char *)b + BLOCK_HDR);
    memset(g, 0, bytes);
    return g;
}

void it_ctx_grad_free(it_ctx *ctx, float *g)
{
    if (!g) return;
    it_pool_buf *b = (it_pool_buf *)((char *)g - BLOCK_HDR);
    if (b->prev) b->prev->next = b->next;
    else ctx->pool_live = b->next;
    if (b->next) b->next->prev = b->prev;
    ctx->pool_used -= b->cap;
    b->next = ctx->pool_free;
    ctx->pool_free = b;
}

it_status it_ctx_status(it_ctx *ctx, it_err *err)
{
    if (!ctx->failed) return IT_OK;
    if (err) *err = ctx->err;
    return ctx->err.code;
}

void *it_ctx_fail(it_ctx *ctx, it_status code, const char *fmt, ...)
{
    if (!ctx->failed) {
        va_list ap;
        va_start(ap, fmt);
        it_err_setv(&ctx->err, code, fmt, ap);
        va_end(ap);
        ctx->failed = 1;
    }
    return NULL;
}

/* Takes a spare block of at least cap bytes, or allocates one. */
static it_ctx_block *get_block(it_ctx *ctx, size_t cap)
{
    for (it_ctx_block **pp = &ctx->spare; *pp; pp = &(*pp)->next) {
        if ((*pp)->cap >= cap) {
            it_ctx_block *b = *pp;
            *pp = b->next;
            b->off = 0;
            return b;
        }
    }
    if (cap > SIZE_MAX - BLOCK_HDR) return NULL;
    it_ctx_block *b = it_malloc_aligned(BLOCK_HDR + cap);
    if (!b) return NULL;
    b->cap = cap;
    b->off = 0;
    ctx->reserved += cap;
    return b;
}

void *it_ctx_alloc(it_ctx *ctx, size_t bytes)
{
    size_t need = (bytes + IT_ALIGN - 1) / IT_ALIGN * IT_ALIGN;
    if (need < bytes) return it_ctx_fail(ctx, IT_ERR_NOMEM, "tensor of %zu bytes is too large", bytes);
    if (need == 0) need = IT_ALIGN;
    it_ctx_block *b = ctx->head;
    if (!b || b->cap - b->off < need) {
        it_ctx_block *nb = get_block(ctx, need > ctx->block_size ? need : ctx->block_size);
        if (!nb) return it_ctx_fail(ctx, IT_ERR_NOMEM, "out of memory allocating %zu bytes of compute memory", bytes);
        nb->next = ctx->head;
        ctx->head = nb;
        b = nb;
    }
    void *p = (char *)b + BLOCK_HDR + b->off;
    b->off += need;
    ctx->used += need;
    note_peak(ctx);
    return p;
}

void *it_ctx_calloc(it_ctx *ctx, size_t bytes)
{
    void *p = it_ctx_alloc(ctx, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

it_mark it_ctx_mark(const it_ctx *ctx)
{
    it_mark m = {ctx->head, ctx->head ? ctx->head->off : 0, ctx->used, ctx->tape};
    return m;
}

void it_ctx_release(it_ctx *ctx, it_mark m)
{
    spare_until(ctx, m.block);
    if (m.block) m.block->off = m.off;
    ctx->used = m.used;
    ctx->tape = m.tape;
}

it_tensor *it_ctx_keep(it_ctx *ctx, it_mark m, const it_tensor *t)
{
    if (!t) return NULL;
    IT_ASSERT(t->node == NULL);
    /* Released memory stays intact in the spare list until reused, and the
     * new allocation lands at or below the old address inside any block it
     * shares with it, so copying with memmove after the release is safe.
     * The header is copied first because it may be overwritten by the data. */
    it_tensor hdr = *t;
    it_ctx_release(ctx, m);
    it_tensor *out = it_ctx_alloc(ctx, sizeof *out);
    if (!out) return NULL;
    size_t bytes = (size_t)hdr.n * it_dtype_size(hdr.dtype);
    void *data = it_ctx_alloc(ctx, bytes);
    if (!data) return NULL;
    memmove(data, hdr.data, bytes);
    *out = hdr;
    out->data = data;
    out->grad = NULL;
    out->grad_pooled = 0;
    out->requires_grad = 0;
    return out;
}

/* ---------------------------------------------------------------- tensors */

int64_t it_shape_numel(int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > IT_MAX_DIMS) return -1;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] && n > INT64_MAX / shape[i]) return -1;
        n *= shape[i];
    }
    return n;
}

static it_tensor *new_header(it_ctx *ctx, it_dtype dtype, int ndim, const int64_t *shape)
{
    int64_t n = it_shape_numel(ndim, shape);
    if (n < 0) return it_ctx_fail(ctx, IT_ERR_ARG, "invalid tensor shape (ndim %d)", ndim);
    if ((int)dtype < 0 || dtype >= IT_DTYPE_COUNT)
        return it_ctx_fail(ctx, IT_ERR_ARG, "invalid dtype %d", (int)dtype);
    it_tensor *t = it_ctx_alloc(ctx, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->n = n;
    return t;
}

it_tensor *it_tensor_new(it_ctx *ctx, it_dtype dtype, int ndim, const int64_t *shape)
{
    if (ctx->failed) return NULL;
    it_tensor *t = new_header(ctx, dtype, ndim, shape);
    if (!t) return NULL;
    if ((uint64_t)t->n > SIZE_MAX / 8) return it_ctx_fail(ctx, IT_ERR_NOMEM, "tensor too large");
    t->data = it_ctx_alloc(ctx, (size_t)t->n * it_dtype_size(dtype));
    return t->data ? t : NULL;
}

it_tensor *it_tensor_zeros(it_ctx *ctx, it_dtype dtype, int ndim, const int64_t *shape)
{
    it_tensor *t = it_tensor_new(ctx, dtype, ndim, shape);
    if (t) memset(t->data, 0, (size_t)t->n * it_dtype_size(dtype));
    return t;
}

it_tensor *it_tensor_from(it_ctx *ctx, const float *data, int ndim, const int64_t *shape)
{
    it_tensor *t = it_tensor_new(ctx, IT_DTYPE_F32, ndim, shape);
    if (t) memcpy(t->data, data, (size_t)t->n * sizeof(float));
    return t;
}

it_tensor *it_tensor_wrap(it_ctx *ctx, void *data, it_dtype dtype, int ndim, const int64_t *shape)
{
    if (ctx->failed) return NULL;
    it_tensor *t = new_header(ctx, dtype, ndim, shape);
    if (t) t->data = data;
    return t;
}

it_tensor *it_tensor_detach(it_ctx *ctx, const it_tensor *src, int requires_grad)
{
    if (!src || ctx->failed) return NULL;
    it_tensor *t = it_ctx_alloc(ctx, sizeof *t);
    if (!t) return NULL;
    *t = *src;
    t->node = NULL;
    t->grad = NULL;
    t->grad_pooled = 0;
    t->is_param = 0;
    t->requires_grad = (uint8_t)(requires_grad != 0);
    return t;
}

it_status it_tensor_init_param(it_err *err, it_tensor *t, const char *name, float *data,
                               float *grad, int ndim, const int64_t *shape)
{
    int64_t n = it_shape_numel(ndim, shape);
    if (n < 0) return it_err_set(err, IT_ERR_ARG, "parameter %s: invalid shape", name ? name : "?");
    memset(t, 0, sizeof *t);
    t->dtype = IT_DTYPE_F32;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->n = n;
    t->data = data;
    t->grad = grad;
    t->requires_grad = grad != NULL;
    t->is_param = 1;
    t->name = name;
    return IT_OK;
}

int it_tensor_same_shape(const it_tensor *a, const it_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

const char *it_tensor_shape_str(const it_tensor *t, char *buf, size_t n)
{
    size_t off = 0;
    off += (size_t)snprintf(buf + off, n - off, "(");
    for (int i = 0; i < t->ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (off < n) snprintf(buf + off, n - off, ")");
    return buf;
}
