/* nn.c: the parameter registry (names, shapes, one weight block, hash
 * index, loading with exact error messages) and the linear/conv/norm layer
 * helpers with the adapter hook. */
#include "models/nn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tensor/dtype.h"
#include "tensor/ops_conv.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_gemm.h"
#include "tensor/ops_norm.h"
#include "tensor/ops_shape.h"

/* ---------------------------------------------------------------- registry */

void it_params_init(it_params *ps, const char *label)
{
    memset(ps, 0, sizeof *ps);
    ps->label = label;
    it_arena_init(&ps->arena, 64 * 1024);
}

void it_params_free(it_params *ps)
{
    it_free(ps->items);
    it_free(ps->index);
    it_free(ps->mods);
    it_free(ps->half);
    it_free(ps->h16);
    it_free_aligned(ps->data16);
    it_free_aligned(ps->data);
    it_free_aligned(ps->grad);
    it_arena_free(&ps->arena);
    memset(ps, 0, sizeof *ps);
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap * 2 : 64;
    while (c < need) c *= 2;
    void *p = it_realloc(*arr, c * elem);
    if (!p) return 0;
    *arr = p;
    *cap = c;
    return 1;
}

static it_tensor *params_addv(it_params *ps, int ndim, const int64_t *shape, const char *fmt,
                              va_list ap)
{
    char name[256];
    vsnprintf(name, sizeof name, fmt, ap);
    it_tensor *t = it_arena_calloc(&ps->arena, 1, sizeof *t);
    char *nm = it_arena_strdup(&ps->arena, name);
    if (!t || !nm || !grow((void **)&ps->items, &ps->cap, ps->n + 1, sizeof *ps->items) ||
        !grow((void **)&ps->half, &ps->half_cap, ps->n + 1, sizeof *ps->half)) {
        ps->failed = 1;
        return NULL;
    }
    ps->half[ps->n] = 0;
    t->dtype = IT_DTYPE_F32;
    t->ndim = ndim;
    t->n = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->n *= shape[i];
    }
    t->name = nm;
    t->is_param = 1;
    ps->items[ps->n++] = t;
    return t;
}

it_tensor *it_params_add(it_params *ps, int ndim, const int64_t *shape, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    it_tensor *t = params_addv(ps, ndim, shape, fmt, ap);
    va_end(ap);
    return t;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static it_status build_index(it_err *err, it_params *ps)
{
    size_t cap = 16;
    while (cap < ps->n * 2 + 1) cap *= 2;
    ps->index = it_malloc(cap * sizeof *ps->index);
    if (!ps->index) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory", ps->label);
    ps->index_cap = cap;
    for (size_t i = 0; i < cap; i++) ps->index[i] = -1;
    for (size_t i = 0; i < ps->n; i++) {
        size_t h = hash_str(ps->items[i]->name) & (cap - 1);
        while (ps->index[h] >= 0) {
            if (!strcmp(ps->items[ps->index[h]]->name, ps->items[i]->name))
                return it_err_set(err, IT_ERR_INTERNAL, "%s: parameter %s registered twice",
                                  ps->label, ps->items[i]->name);
            h = (h + 1) & (cap - 1);
        }
        ps->index[h] = (int32_t)i;
    }
    return IT_OK;
}

/* Slot of name in the hash index (the name must be registered). */
static size_t index_slot(const it_params *ps, const char *name)
{
    size_t h = hash_str(name) & (ps->index_cap - 1);
    while (strcmp(ps->items[ps->index[h]]->name, name)) h = (h + 1) & (ps->index_cap - 1);
    return h;
}

static int is_half(const it_params *ps, size_t i) { return ps->f16 && ps->half[i]; }

it_status it_params_alloc(it_err *err, it_params *ps, int flags)
{
    int trainable = flags & IT_MODEL_TRAINABLE;
    if (ps->failed) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory registering weights", ps->label);
    if (trainable && (flags & IT_MODEL_F16))
        return it_err_set(err, IT_ERR_ARG, "%s: f16 weights cannot be trainable", ps->label);
    ps->f16 = (flags & IT_MODEL_F16) != 0;
    size_t total = 0, halfs = 0;
    for (size_t i = 0; i < ps->n; i++) {
        if (is_half(ps, i)) halfs += (size_t)ps->items[i]->n;
        else total += (size_t)ps->items[i]->n;
    }
    ps->n_floats = total;
    if (flags & IT_MODEL_SHAPES_ONLY) return build_index(err, ps);
    ps->data = it_malloc_aligned((total ? total : 1) * sizeof(float));
    if (halfs) ps->data16 = it_malloc_aligned(halfs * sizeof(uint16_t));
    ps->h16 = it_calloc(ps->n ? ps->n : 1, sizeof *ps->h16);
    if (!ps->h16) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory", ps->label);
    if (trainable) ps->grad = it_malloc_aligned((total ? total : 1) * sizeof(float));
    if (!ps->data || (halfs && !ps->data16) || (trainable && !ps->grad))
        return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory for %zu weights", ps->label, total + halfs);
    memset(ps->data, 0, total * sizeof(float));
    if (halfs) memset(ps->data16, 0, halfs * sizeof(uint16_t));
    if (ps->grad) memset(ps->grad, 0, total * sizeof(float));
    size_t off = 0, off16 = 0;
    for (size_t i = 0; i < ps->n; i++) {
        it_tensor *t = ps->items[i];
        int64_t shape[IT_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        if (is_half(ps, i)) {
            /* The f16 block holds the values; data stays NULL (see it_lin_forward). */
            IT_TRY(it_tensor_init_param(err, t, t->name, NULL, NULL, t->ndim, shape));
            ps->h16[i] = ps->data16 + off16;
            off16 += (size_t)t->n;
            continue;
        }
        IT_TRY(it_tensor_init_param(err, t, t->name, ps->data + off, ps->grad ? ps->grad + off : NULL,
                                    t->ndim, shape));
        off += (size_t)t->n;
    }
    IT_TRY(build_index(err, ps));
    for (size_t i = 0; ps->f16 && i < ps->n_mods; i++) {
        it_lin *m = ps->mods[i];
        m->w16 = ps->h16[ps->index[index_slot(ps, m->w->name)]];
    }
    return IT_OK;
}

it_tensor *it_params_find(const it_params *ps, const char *name)
{
    if (!ps->index) {
        for (size_t i = 0; i < ps->n; i++)
            if (!strcmp(ps->items[i]->name, name)) return ps->items[i];
        return NULL;
    }
    size_t h = hash_str(name) & (ps->index_cap - 1);
    while (ps->index[h] >= 0) {
        it_tensor *t = ps->items[ps->index[h]];
        if (!strcmp(t->name, name)) return t;
        h = (h + 1) & (ps->index_cap - 1);
    }
    return NULL;
}

size_t it_params_count(const it_params *ps) { return ps->n; }

size_t it_params_numel(const it_params *ps)
{
    size_t n = 0;
    for (size_t i = 0; i < ps->n; i++) n += (size_t)ps->items[i]->n;
    return n;
}

/* ---------------------------------------------------------------- loading */

static const char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n) snprintf(buf + o, n - o, ndim == 1 ? ",)" : ")");
    return buf;
}

/* The stored shape after the transform, for the comparison. */
static int xform_shape(const it_key_src *src, const it_safetensors_tensor *st, int *ndim,
                       int64_t *shape)
{
    *ndim = st->n_dims;
    memcpy(shape, st->shape, sizeof st->shape);
    switch (src->xform) {
    case IT_XFORM_NONE: return 1;
    case IT_XFORM_SQUEEZE:
        while (*ndim > 2 && shape[*ndim - 1] == 1) (*ndim)--;
        return 1;
    case IT_XFORM_ROWS:
        if (*ndim < 1 || src->parts <= 0 || shape[0] % src->parts) return 0;
        shape[0] /= src->parts;
        return 1;
    case IT_XFORM_TRANSPOSE:
        if (*ndim != 2) return 0;
        shape[0] = st->shape[1];
        shape[1] = st->shape[0];
        return 1;
    }
    return 0;
}

static it_status load_one(it_err *err, it_params *ps, const it_safetensors *f, it_tensor *t,
                          const it_safetensors_tensor *st, const it_key_src *src)
{
    int nd;
    int64_t shape[IT_SAFETENSORS_MAX_DIMS];
    char a[96], b[96];
    int ok = xform_shape(src, st, &nd, shape) && nd == t->ndim;
    for (int i = 0; ok && i < nd; i++) ok = shape[i] == t->shape[i];
    if (!ok)
        return it_err_set(err, IT_ERR_FORMAT, "%s: %s: shape %s expected %s", ps->label, st->name,
                          shape_str(a, sizeof a, st->n_dims, st->shape),
                          shape_str(b, sizeof b, t->ndim, t->shape));
    float *dst = it_f32(t);
    if (src->xform == IT_XFORM_NONE || src->xform == IT_XFORM_SQUEEZE)
        return it_safetensors_load_f32(err, f, st, dst, (size_t)t->n);
    /* Row slices and transposes go through a full f32 copy of the stored tensor. */
    float *tmp = it_malloc_aligned(st->numel * sizeof(float));
    if (!tmp) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory loading %s", ps->label, st->name);
    it_status s = it_safetensors_load_f32(err, f, st, tmp, st->numel);
    if (s == IT_OK && src->xform == IT_XFORM_ROWS) {
        memcpy(dst, tmp + (size_t)src->part * (size_t)t->n, (size_t)t->n * sizeof(float));
    } else if (s == IT_OK) {
        int64_t r = t->shape[0], c = t->shape[1];
        for (int64_t i = 0; i < r; i++)
            for (int64_t j = 0; j < c; j++) dst[i * c + j] = tmp[j * r + i];
    }
    it_free_aligned(tmp);
    return s;
}

/* An f16-stored weight: raw copy from an f16 tensor, else through f32. */
static it_status load_half(it_err *err, it_params *ps, const it_safetensors *f, it_tensor *t,
                           const it_safetensors_tensor *st, const it_key_src *src, uint16_t *dst)
{
    float *tmp = it_malloc_aligned((size_t)t->n * sizeof(float));
    if (!tmp) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory loading %s", ps->label, st->name);
    void *keep = t->data;
    t->data = tmp;
    it_status s;
    if (st->supported && st->dtype == IT_DTYPE_F16 &&
        (src->xform == IT_XFORM_NONE || src->xform == IT_XFORM_SQUEEZE) && st->numel == (uint64_t)t->n) {
        s = load_one(err, ps, f, t, st, src); /* shape check */
        if (!s) memcpy(dst, st->data, (size_t)t->n * sizeof(uint16_t));
    } else {
        s = load_one(err, ps, f, t, st, src);
        if (!s) it_f32_to_f16_n(dst, tmp, (size_t)t->n);
    }
    t->data = keep;
    it_free_aligned(tmp);
    return s;
}

it_status it_params_load(it_err *err, it_params *ps, const it_safetensors *f, const char *prefix,
                         it_key_map_fn map, void *map_user, int strict, it_load_report *report)
{
    it_load_report rep;
    memset(&rep, 0, sizeof rep);
    if (!ps->data) return it_err_set(err, IT_ERR_STATE, "%s: weights not allocated", ps->label);
    size_t nf = it_safetensors_count(f);
    uint8_t *used = it_calloc(nf ? nf : 1, 1);
    if (!used) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory", ps->label);
    it_status s = IT_OK;
    for (size_t i = 0; i < ps->n && s == IT_OK; i++) {
        it_tensor *t = ps->items[i];
        it_key_src src;
        memset(&src, 0, sizeof src);
        if (map) {
            if (!map(map_user, t->name, &src)) {
                s = it_err_set(err, IT_ERR_NOT_FOUND, "%s: no checkpoint key maps to %s", ps->label, t->name);
                break;
            }
        } else {
            snprintf(src.key, sizeof src.key, "%s", t->name);
        }
        const it_safetensors_tensor *st = it_safetensors_find(f, src.key);
        if (!st) {
            s = it_err_set(err, IT_ERR_NOT_FOUND, "%s: missing key %s", ps->label, src.key);
            break;
        }
        if (is_half(ps, i)) {
            s = load_half(err, ps, f, t, st, &src, ps->h16[i]);
        } else {
            s = load_one(err, ps, f, t, st, &src);
        }
        used[st - it_safetensors_at(f, 0)] = 1;
        rep.n_loaded++;
    }
    size_t plen = prefix ? strlen(prefix) : 0;
    for (size_t i = 0; i < nf && s == IT_OK; i++) {
        const it_safetensors_tensor *st = it_safetensors_at(f, i);
        if (used[i] || (plen && strncmp(st->name, prefix, plen))) continue;
        /* transformers stores a non-persistent buffer in older files. */
        size_t ln = strlen(st->name);
        if (ln >= 12 && !strcmp(st->name + ln - 12, "position_ids")) continue;
        if (strict) {
            s = it_err_set(err, IT_ERR_FORMAT, "%s: unexpected key %s", ps->label, st->name);
            break;
        }
        if (!rep.n_unused) snprintf(rep.first_unused, sizeof rep.first_unused, "%s", st->name);
        rep.n_unused++;
    }
    it_free(used);
    if (report) *report = rep;
    return s;
}

/* ---------------------------------------------------------------- layers */

static int add_module(it_params *ps, it_lin *m)
{
    if (!grow((void **)&ps->mods, &ps->cap_mods, ps->n_mods + 1, sizeof *ps->mods)) return 0;
    ps->mods[ps->n_mods++] = m;
    return 1;
}

static it_status lin_initv(it_params *ps, it_lin *m, int ndim, const int64_t *wshape, int bias,
                           const char *fmt, va_list ap)
{
    char name[256];
    vsnprintf(name, sizeof name, fmt, ap);
    memset(m, 0, sizeof *m);
    m->name = it_arena_strdup(&ps->arena, name);
    m->w = it_params_add(ps, ndim, wshape, "%s.weight", name);
    if (m->w) ps->half[ps->n - 1] = 1;
    if (bias) m->b = it_params_add(ps, 1, wshape, "%s.bias", name);
    m->conv = ndim == 4;
    m->stride = 1;
    if (!m->name || !m->w || (bias && !m->b) || !add_module(ps, m)) {
        ps->failed = 1;
        return IT_ERR_NOMEM;
    }
    return IT_OK;
}

it_status it_lin_init(it_params *ps, it_lin *m, int ndim, const int64_t *wshape, int bias,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    it_status s = lin_initv(ps, m, ndim, wshape, bias, fmt, ap);
    va_end(ap);
    return s;
}

it_lin *it_lin_linear(it_params *ps, int64_t in, int64_t out, int bias, const char *fmt, ...)
{
    it_lin *m = it_arena_calloc(&ps->arena, 1, sizeof *m);
    if (!m) {
        ps->failed = 1;
        return NULL;
    }
    int64_t shape[2] = {out, in};
    va_list ap;
    va_start(ap, fmt);
    it_status s = lin_initv(ps, m, 2, shape, bias, fmt, ap);
    va_end(ap);
    return s ? NULL : m;
}

it_lin *it_lin_conv(it_params *ps, int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad,
                    const char *fmt, ...)
{
    it_lin *m = it_arena_calloc(&ps->arena, 1, sizeof *m);
    if (!m) {
        ps->failed = 1;
        return NULL;
    }
    int64_t shape[4] = {out, in, k, k};
    va_list ap;
    va_start(ap, fmt);
    it_status s = lin_initv(ps, m, 4, shape, 1, fmt, ap);
    va_end(ap);
    if (s) return NULL;
    m->stride = stride;
    m->pad = pad;
    return m;
}

it_tensor *it_lin_forward(it_ctx *ctx, const it_lin *m, it_tensor *x)
{
    if (!m) return it_ctx_fail(ctx, IT_ERR_INTERNAL, "layer not built");
    it_tensor *w = m->w;
    if (m->w16) {
        /* f16 storage: a constant f32 copy in the compute context, released
         * with the enclosing block's scope. */
        w = it_tensor_new(ctx, IT_DTYPE_F32, m->w->ndim, m->w->shape);
        if (!w) return NULL;
        it_f16_to_f32_n(w->data, m->w16, (size_t)w->n);
    }
    it_tensor *y = m->conv ? it_op_conv2d(ctx, x, w, m->b, m->stride, m->pad) : it_op_linear(ctx, x, w, m->b);
    for (it_adapter *a = m->adapter; a && y; a = a->next) y = a->apply(ctx, a, m, x, y);
    return y;
}

void it_lin_attach(it_lin *m, it_adapter *a)
{
    a->next = NULL;
    it_adapter **p = &m->adapter;
    while (*p) p = &(*p)->next;
    *p = a;
}

it_lin *it_params_module(const it_params *ps, size_t i) { return i < ps->n_mods ? ps->mods[i] : NULL; }
size_t it_params_module_count(const it_params *ps) { return ps->n_mods; }

it_lin *it_params_find_module(const it_params *ps, const char *name)
{
    for (size_t i = 0; i < ps->n_mods; i++)
        if (!strcmp(ps->mods[i]->name, name)) return ps->mods[i];
    return NULL;
}

it_status it_norm_init(it_params *ps, it_norm *n, int64_t channels, int64_t groups, float eps,
                       const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int64_t shape[1] = {channels};
    n->w = it_params_add(ps, 1, shape, "%s.weight", name);
    n->b = it_params_add(ps, 1, shape, "%s.bias", name);
    n->groups = groups;
    n->eps = eps;
    return n->w && n->b ? IT_OK : IT_ERR_NOMEM;
}

it_tensor *it_norm_forward(it_ctx *ctx, const it_norm *n, it_tensor *x, int silu)
{
    if (n->groups > 0) return it_op_group_norm(ctx, x, n->w, n->b, n->groups, n->eps, silu);
    it_tensor *y = it_op_layer_norm(ctx, x, n->w, n->b, n->eps);
    return silu ? it_op_act(ctx, y, IT_ACT_SILU) : y;
}

/* ---------------------------------------------------------------- blocks */

it_status it_resnet_init(it_params *ps, it_resnet *r, int64_t in, int64_t out, int64_t temb_dim,
                         int64_t groups, float eps, const char *fmt, ...)
{
    char name[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    memset(r, 0, sizeof *r);
    IT_TRY(it_norm_init(ps, &r->n1, in, groups, eps, "%s.norm1", name));
    r->c1 = it_lin_conv(ps, in, out, 3, 1, 1, "%s.conv1", name);
    if (temb_dim > 0) r->temb = it_lin_linear(ps, temb_dim, out, 1, "%s.time_emb_proj", name);
    IT_TRY(it_norm_init(ps, &r->n2, out, groups, eps, "%s.norm2", name));
    r->c2 = it_lin_conv(ps, out, out, 3, 1, 1, "%s.conv2", name);
    if (in != out) r->sc = it_lin_conv(ps, in, out, 1, 1, 0, "%s.conv_shortcut", name);
    return ps->failed ? IT_ERR_NOMEM : IT_OK;
}

it_tensor *it_resnet_forward(it_ctx *ctx, const it_resnet *r, it_tensor *x, it_tensor *temb_silu)
{
    it_tensor *h = it_norm_forward(ctx, &r->n1, x, 1);
    h = it_lin_forward(ctx, r->c1, h);                     /* (N, out, H, W) */
    if (r->temb && temb_silu) {
        it_tensor *t = it_lin_forward(ctx, r->temb, temb_silu); /* (N, out) */
        if (t) t = it_op_reshape(ctx, t, IT_SHAPE(t->shape[0], t->shape[1], 1, 1));
        h = it_op_add(ctx, h, t);
    }
    h = it_norm_forward(ctx, &r->n2, h, 1);
    h = it_lin_forward(ctx, r->c2, h);
    it_tensor *s = r->sc ? it_lin_forward(ctx, r->sc, x) : x;
    return it_op_add(ctx, s, h);
}

it_tensor *it_nn_to_tokens(it_ctx *ctx, it_tensor *x)
{
    if (!x) return NULL;
    int64_t n = x->shape[0], c = x->shape[1], hw = x->shape[2] * x->shape[3];
    it_tensor *t = it_op_permute(ctx, x, (const int[]){0, 2, 3, 1}); /* (N, H, W, C) */
    return it_op_reshape(ctx, t, IT_SHAPE(n, hw, c));
}

it_tensor *it_nn_from_tokens(it_ctx *ctx, it_tensor *x, int64_t h, int64_t w)
{
    if (!x) return NULL;
    int64_t n = x->shape[0], c = x->shape[2];
    it_tensor *t = it_op_reshape(ctx, x, IT_SHAPE(n, h, w, c));
    return it_op_permute(ctx, t, (const int[]){0, 3, 1, 2});
}
