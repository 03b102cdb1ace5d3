/* ops_attn.c: the attention operation over the kernels of attention.h.
 *
 * Forward keeps the per-row logsumexp (B, H, Tq) when recording, so backward
 * recomputes score blocks instead of storing probabilities: memory stays
 * O(T) per head. Inputs that need no gradient still get a scratch buffer,
 * because the kernel computes all three gradients together. */
#include "tensor/ops_attn.h"

#include <string.h>

#include "tensor/attention.h"
#include "tensor/ops_common.h"

static it_attn_desc desc_of(const it_node *n)
{
    it_attn_desc d;
    memcpy(&d, n->saved, sizeof d);
    return d;
}

static void attention_backward(it_ctx *ctx, it_node *n)
{
    it_attn_desc d = desc_of(n);
    const float *lse = (const float *)((const char *)n->saved + ((sizeof d + 63) / 64) * 64);
    float *g[3];
    for (int i = 0; i < 3; i++) g[i] = it_autograd_grad(ctx, n->in[i]);
    if (ctx->failed) return;
    it_mark m = it_ctx_mark(ctx);
    /* The kernel's contract does not cover aliased dq/dk/dv (it writes them
     * from different threads): when inputs are the same tensor
     * (self-attention on x itself), each gradient gets its own zeroed
     * buffer, added into the shared one afterwards. */
    float *real[3] = {g[0], g[1], g[2]};
    for (int i = 0; i < 3; i++) {
        int alias = (i > 0 && n->in[i] == n->in[0]) || (i > 1 && n->in[i] == n->in[1]);
        if (g[i] && !alias) continue;
        if (!(g[i] = it_ctx_calloc(ctx, (size_t)n->in[i]->n * sizeof(float)))) return;
        if (!alias) real[i] = NULL; /* no gradient wanted: scratch only */
    }
    d.accumulate = 1;
    it_err err;
    if (it_attn_backward(&err, g[0], g[1], g[2], n->out->grad, n->in[0]->data, n->in[1]->data,
                         n->in[2]->data, n->out->data, lse, &d) != IT_OK)
        it_ctx_fail(ctx, err.code, "attention backward: %s", err.msg);
    for (int i = 1; i < 3; i++)
        if (real[i] && g[i] != real[i]) it_ops_acc(real[i], g[i], n->in[i]->n);
    it_ctx_release(ctx, m);
}

it_tensor *it_op_attention(it_ctx *ctx, it_tensor *q, it_tensor *k, it_tensor *v, int n_heads,
                           int causal, float scale)
{
    it_tensor *in[3] = {q, k, v};
    if (it_ops_skip(ctx, 3, in)) return NULL;
    for (int i = 0; i < 3; i++)
        if (!it_ops_need_f32(ctx, "attention", in[i])) return NULL;
    if (q->ndim != 3 && q->ndim != 4)
        return it_ops_shape_error(ctx, "attention", q, "q must be (B, H, T, D) or (B, T, H*D)");
    if (k->ndim != q->ndim || !it_tensor_same_shape(k, v))
        return it_ops_shape_error(ctx, "attention", k, "k and v must have the same shape and q's rank");
    int64_t B = q->shape[0], H, Tq, Tk, D;
    if (q->ndim == 4) {
        H = q->shape[1], Tq = q->shape[2], D = q->shape[3], Tk = k->shape[2];
        if (k->shape[0] != B || k->shape[1] != H || k->shape[3] != D)
            return it_ops_shape_error(ctx, "attention", k, "k must be (B, H, Tk, D) matching q");
    } else {
        H = n_heads;
        if (H <= 0 || q->shape[2] % H)
            return it_ops_shape_error(ctx, "attention", q, "last dim not divisible by n_heads");
        Tq = q->shape[1], D = q->shape[2] / H, Tk = k->shape[1];
        if (k->shape[0] != B || k->shape[2] != H * D)
            return it_ops_shape_error(ctx, "attention", k, "k must be (B, Tk, H*D) matching q");
    }
    if (B > INT32_MAX || H > INT32_MAX || Tq > INT32_MAX || Tk > INT32_MAX || D > INT32_MAX)
        return it_ops_shape_error(ctx, "attention", q, "dimension too large");
    it_attn_desc d = q->ndim == 4 ? it_attn_desc_bhtd((int)B, (int)H, (int)Tq, (int)Tk, (int)D)
                                  : it_attn_desc_bthd((int)B, (int)H, (int)Tq, (int)Tk, (int)D);
    d.scale = scale;
    d.causal = causal;
    it_tensor *o = it_ops_out(ctx, q->ndim, q->shape);
    if (!o) return NULL;
    int rec = it_autograd_wants(ctx, 3, in);
    size_t hdr = ((sizeof d + 63) / 64) * 64;
    char *saved = rec ? it_ctx_alloc(ctx, hdr + (size_t)(B * H * Tq) * sizeof(float)) : NULL;
    if (rec && !saved) return NULL;
    float *lse = saved ? (float *)(saved + hdr) : NULL;
    /* In a checkpointed block, attention over a long key sequence (4 Tk
     * flops per output value, like a reduction of length 2 Tk) is memoised
     * with its logsumexp rather than recomputed (autograd.h). */
    size_t nlse = (size_t)(B * H * Tq);
    int memo = it_autograd_memo_wants(ctx, 2 * Tk);
    if (memo && !lse && !(lse = it_ctx_alloc(ctx, nlse * sizeof(float)))) return NULL;
    if (memo && it_autograd_memo_take(ctx, o->data, o->n)) {
        if (!it_autograd_memo_take(ctx, lse, (int64_t)nlse))
            return it_ctx_fail(ctx, IT_ERR_INTERNAL, "attention: checkpoint memo lost its logsumexp");
    } else {
        it_err err;
        if (it_attn_forward(&err, o->data, lse, q->data, k->data, v->data, &d) != IT_OK)
            return it_ctx_fail(ctx, err.code, "attention: %s", err.msg);
        if (memo) {
            it_autograd_memo_put(ctx, o->data, o->n);
            it_autograd_memo_put(ctx, lse, (int64_t)nlse);
        }
    }
    it_node *n = it_autograd_record(ctx, o, "attention", attention_backward, 3, in);
    if (n) {
        memcpy(saved, &d, sizeof d);
        n->saved = saved;
    }
    return o;
}
