/* ops_common.h: small helpers shared by the ops_*.c files (internal).
 *
 * Owns: argument checks that record a sticky error on the context with a
 * message naming the op and the shapes, and the threshold below which loops
 * stay single-threaded. Does not own any operation. */
#ifndef IT_OPS_COMMON_H
#define IT_OPS_COMMON_H

#include "tensor/autograd.h"
#include "tensor/tensor.h"

/* Element count below which an OpenMP loop is not worth its fork. */
#define IT_PAR_MIN 32768

/* NULL input (an earlier failure) or failed context: the op returns NULL. */
static inline int it_ops_skip(it_ctx *ctx, int n, it_tensor *const *in)
{
    if (ctx->failed) return 1;
    for (int i = 0; i < n; i++)
        if (!in[i]) return 1;
    return 0;
}

/* Records "op: tensor (shape) must be f32" unless t is f32. */
int it_ops_need_f32(it_ctx *ctx, const char *op, const it_tensor *t);
/* Records "op: <what> (shape)" as an IT_ERR_ARG failure; returns NULL. */
void *it_ops_shape_error(it_ctx *ctx, const char *op, const it_tensor *t, const char *what);

/* New f32 result tensor with the given shape. */
static inline it_tensor *it_ops_out(it_ctx *ctx, int ndim, const int64_t *shape)
{
    return it_tensor_new(ctx, IT_DTYPE_F32, ndim, shape);
}

/* out->grad (dL/dout) of a node, and accumulation helpers. */
void it_ops_acc(float *dst, const float *src, int64_t n); /* dst += src */

#endif
