/* autograd.c: the eager tape, the backward walk and block checkpointing.
 *
 * The tape is a singly linked list of nodes in the context's stack memory,
 * newest first. Because nodes are recorded in execution order, walking the
 * list from the root's node towards older nodes is already a reverse
 * topological order: no sort, no visited set. A node whose output never got
 * a gradient (not on a path to the root) is skipped. */
#include "tensor/autograd.h"

#include <string.h>

int it_autograd_set_enabled(it_ctx *ctx, int on)
{
    int prev = ctx->grad_enabled;
    ctx->grad_enabled = on != 0;
    return prev;
}

int it_autograd_wants(it_ctx *ctx, int n_in, it_tensor *const *in)
{
    int any = 0;
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->requires_grad) any = 1;
    if (!ctx->grad_enabled) {
        /* Lets a checkpointed block find out whether it needs a backward. */
        ctx->saw_trainable |= any;
        return 0;
    }
    return any;
}

static it_node *record(it_ctx *ctx, it_tensor *out, const char *op, it_backward_fn bw, int n_in,
                       it_tensor *const *in)
{
    IT_ASSERT(n_in <= IT_NODE_MAX_IN);
    it_node *n = it_ctx_alloc(ctx, sizeof *n);
    if (!n) return NULL;
    memset(n, 0, sizeof *n);
    n->op = op;
    n->backward = bw;
    n->out = out;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) n->in[i] = in[i];
    n->prev = ctx->tape;
    ctx->tape = n;
    out->node = n;
    out->requires_grad = 1;
    return n;
}

it_node *it_autograd_record(it_ctx *ctx, it_tensor *out, const char *op, it_backward_fn bw,
                            int n_in, it_tensor *const *in)
{
    if (!out || !it_autograd_wants(ctx, n_in, in)) return NULL;
    return record(ctx, out, op, bw, n_in, in);
}

float *it_autograd_grad(it_ctx *ctx, it_tensor *t)
{
    if (!t || !t->requires_grad) return NULL;
    if (!t->grad) {
        t->grad = it_ctx_grad_alloc(ctx, t->n);
        t->grad_pooled = t->grad != NULL;
    }
    return t->grad;
}

size_t it_autograd_tape_len(const it_ctx *ctx)
{
    size_t n = 0;
    for (const it_node *p = ctx->tape; p; p = p->prev) n++;
    return n;
}

/* Walks from `from` towards older nodes, stopping before `stop`. Once a
 * node has run, every consumer of its output has already been visited, so
 * the output's gradient is complete and dead: it goes back to the pool. */
static void walk(it_ctx *ctx, it_node *from, it_node *stop)
{
    for (it_node *n = from; n && n != stop && !ctx->failed; n = n->prev) {
        it_tensor *o = n->out;
        if (!o->grad) continue;
        n->backward(ctx, n);
        if (o->grad_pooled) {
            it_ctx_grad_free(ctx, o->grad);
            o->grad = NULL;
            o->grad_pooled = 0;
        }
    }
}

it_status it_autograd_backward(it_err *err, it_ctx *ctx, it_tensor *root)
{
    if (ctx->failed) return it_ctx_status(ctx, err);
    if (!root) return it_err_set(err, IT_ERR_ARG, "backward: no root tensor");
    if (!root->requires_grad || !root->node)
        return it_err_set(err, IT_ERR_ARG, "backward: the root does not depend on any trainable tensor");
    if (!root->grad) {
        if (root->n != 1)
            return it_err_set(err, IT_ERR_ARG, "backward: root has %lld elements; fill root->grad first",
                              (long long)root->n);
        float *g = it_autograd_grad(ctx, root);
        if (!g) return it_ctx_status(ctx, err);
        g[0] = 1.0f;
    }
    int was = it_autograd_set_enabled(ctx, 0);
    walk(ctx, root->node, NULL);
    it_autograd_set_enabled(ctx, was);
    return it_ctx_status(ctx, err);
}

/* ---------------------------------------------------------------- checkpointing */

static void checkpoint_backward(it_ctx *ctx, it_node *n)
{
    it_block_fn fn = n->block;
    /* Gradient buffers of the real inputs must outlive the release below. */
    float *gin[IT_NODE_MAX_IN] = {0};
    for (int i = 0; i < n->n_in; i++) gin[i] = it_autograd_grad(ctx, n->in[i]);
    if (ctx->failed) return;

    it_mark m = it_ctx_mark(ctx);
    it_tensor *local[IT_NODE_MAX_IN] = {0};
    for (int i = 0; i < n->n_in; i++) {
        if (!n->in[i]) continue;
        local[i] = it_tensor_detach(ctx, n->in[i], gin[i] != NULL);
        if (!local[i]) return;
        local[i]->grad = gin[i]; /* accumulate straight into the real input's gradient */
    }
    uint64_t rng_now = ctx->rng_offset;
    ctx->rng_offset = n->rng_offset;
    int was = it_autograd_set_enabled(ctx, 1);
    it_tensor *out = fn(ctx, n->user, local);
    it_autograd_set_enabled(ctx, was);
    ctx->rng_offset = rng_now;
    if (out && out->node) {
        IT_ASSERT(out->n == n->out->n);
        out->grad = n->out->grad;
        walk(ctx, out->node, m.tape);
    }
    it_ctx_release(ctx, m);
}

it_tensor *it_autograd_checkpoint(it_ctx *ctx, it_block_fn fn, void *user, int n_in,
                                  it_tensor *const *in)
{
    if (ctx->failed) return NULL;
    if (!ctx->grad_enabled) return fn(ctx, user, in);
    IT_ASSERT(n_in <= IT_NODE_MAX_IN);
    uint64_t rng0 = ctx->rng_offset;
    it_mark m = it_ctx_mark(ctx);
    int saw = ctx->saw_trainable;
    ctx->saw_trainable = 0;
    it_autograd_set_enabled(ctx, 0);
    it_tensor *out = fn(ctx, user, in);
    it_autograd_set_enabled(ctx, 1);
    int trainable = ctx->saw_trainable;
    ctx->saw_trainable = saw | trainable;
    out = it_ctx_keep(ctx, m, out);
    if (!out || !trainable) return out; /* nothing in the block needs a gradient */
    /* Recorded even when no input requires grad: the block's own parameters
     * may be trainable (the no-grad run saw them). */
    it_node *n = record(ctx, out, "checkpoint", checkpoint_backward, n_in, in);
    if (!n) return NULL;
    n->block = fn;
    n->user = user;
    n->rng_offset = rng0;
    return out;
}
