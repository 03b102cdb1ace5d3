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

/* ---------------------------------------------------------------- checkpoint memo */

#define MEMO_MAX 64

/* The results memoised by one checkpointed block, in op order. */
typedef struct it_memo {
    int replay;            /* 0: the first forward puts, 1: the recomputation takes */
    int n, next;
    float *buf[MEMO_MAX];  /* pooled buffers (it_ctx_grad_alloc) */
    int64_t len[MEMO_MAX];
} it_memo;

int it_autograd_memo_wants(const it_ctx *ctx, int64_t k)
{
    const it_memo *m = ctx->memo;
    int min = ctx->memo_min_k ? ctx->memo_min_k : IT_MEMO_MIN_K;
    if (!m || min < 0 || k < min) return 0;
    /* Recording keeps room for a two-part result (attention: output and
     * logsumexp), so an op is either memoised whole or not at all. */
    return m->replay ? m->next < m->n : m->n + 2 <= MEMO_MAX;
}

void it_autograd_memo_put(it_ctx *ctx, const float *src, int64_t n)
{
    it_memo *m = ctx->memo;
    if (!m || m->replay || m->n >= MEMO_MAX || ctx->failed) return;
    float *b = it_ctx_grad_alloc(ctx, n);
    if (!b) return;
    memcpy(b, src, (size_t)n * sizeof(float));
    m->buf[m->n] = b;
    m->len[m->n++] = n;
}

int it_autograd_memo_take(it_ctx *ctx, float *dst, int64_t n)
{
    it_memo *m = ctx->memo;
    if (!m || !m->replay || m->next >= m->n) return 0;
    /* Same block, same op order, same shapes: anything else is a bug. */
    IT_ASSERT(m->len[m->next] == n);
    memcpy(dst, m->buf[m->next], (size_t)n * sizeof(float));
    it_ctx_grad_free(ctx, m->buf[m->next]);
    m->buf[m->next++] = NULL;
    return 1;
}

static void memo_free(it_ctx *ctx, it_memo *m)
{
    for (int i = 0; i < m->n; i++) {
        it_ctx_grad_free(ctx, m->buf[i]);
        m->buf[i] = NULL;
    }
    m->n = m->next = 0;
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
    it_memo *memo = n->saved, *outer = ctx->memo;
    ctx->memo = memo; /* replay the first forward's expensive results */
    int was = it_autograd_set_enabled(ctx, 1);
    it_tensor *out = fn(ctx, n->user, local);
    it_autograd_set_enabled(ctx, was);
    ctx->memo = outer;
    if (memo) memo_free(ctx, memo); /* normally all taken already */
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
    /* The outermost checkpoint owns the memo; a nested one (in this no-grad
     * run, or in the outer block's recomputation) passes its ops through to
     * the outer memo, which keeps the put and take orders the same. */
    it_memo rec = {0}, *outer = ctx->memo;
    if (!outer) ctx->memo = &rec;
    it_autograd_set_enabled(ctx, 0);
    it_tensor *out = fn(ctx, user, in);
    it_autograd_set_enabled(ctx, 1);
    ctx->memo = outer;
    int trainable = ctx->saw_trainable;
    ctx->saw_trainable = saw | trainable;
    out = it_ctx_keep(ctx, m, out);
    it_node *n = NULL;
    /* Recorded even when no input requires grad: the block's own parameters
     * may be trainable (the no-grad run saw them). Not recorded when nothing
     * in the block needs a gradient. */
    if (out && trainable) n = record(ctx, out, "checkpoint", checkpoint_backward, n_in, in);
    it_memo *keep = n && rec.n ? it_ctx_alloc(ctx, sizeof *keep) : NULL;
    if (keep) {
        *keep = rec;
        keep->replay = 1;
    } else {
        memo_free(ctx, &rec);
    }
    if (!n) return trainable ? NULL : out;
    n->block = fn;
    n->user = user;
    n->saved = keep;
    n->rng_offset = rng0;
    return out;
}
