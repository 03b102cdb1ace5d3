/* lora.c: LoRA modules on it_lin targets (kohya's selection, names,
 * initialisation), the forward hook, attach/detach, merge. */
#include "train/lora.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "tensor/ops_conv.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_gemm.h"

void it_lora_opts_init(it_lora_opts *o)
{
    memset(o, 0, sizeof *o);
    o->rank = 16;
    o->alpha = 8;
    o->unet = 1;
}

static int is_1x1_or_linear(const it_lin *m)
{
    if (!m->conv) return 1;
    return m->w->ndim == 4 && m->w->shape[2] == 1 && m->w->shape[3] == 1;
}

/* kohya: UNET_TARGET_REPLACE_MODULE = ["Transformer2DModel"] (diffusers'
 * "...attentions.N" submodules); with conv_dim also ["ResnetBlock2D",
 * "Downsample2D", "Upsample2D"]; TEXT_ENCODER_TARGET_REPLACE_MODULE =
 * ["CLIPAttention", "CLIPSdpaAttention", "CLIPMLP"]. */
int it_lora_is_target(const it_lin *m, int unet, int locon)
{
    if (!m || !m->name) return 0;
    if (!unet) return strstr(m->name, ".self_attn.") || strstr(m->name, ".mlp.");
    if (strstr(m->name, ".attentions.")) return is_1x1_or_linear(m);
    if (!locon) return 0;
    return strstr(m->name, ".resnets.") || strstr(m->name, ".downsamplers.") ||
           strstr(m->name, ".upsamplers.");
}

void it_lora_kohya_name(char *buf, size_t n, const char *module_name, int unet)
{
    snprintf(buf, n, "%s%s", unet ? "lora_unet_" : "lora_te_", module_name);
    for (char *p = buf; *p; p++)
        if (*p == '.') *p = '_';
}

float it_lora_mod_scale(const it_lora_mod *m)
{
    float alpha = m->alpha == 0 ? (float)m->rank : m->alpha;
    float mult = m->multiplier ? *m->multiplier : 1.0f;
    return mult * alpha / (float)m->rank;
}

static it_tensor *lora_hook(it_ctx *ctx, it_adapter *a, const it_lin *m, it_tensor *x, it_tensor *y)
{
    it_lora_mod *L = (it_lora_mod *)a;
    it_tensor *h = L->conv ? it_op_conv2d(ctx, x, &L->down, NULL, m->stride, m->pad)
                           : it_op_linear(ctx, x, &L->down, NULL);
    if (L->dropout > 0) h = it_op_dropout(ctx, h, L->dropout);
    h = L->conv ? it_op_conv2d(ctx, h, &L->up, NULL, 1, 0) : it_op_linear(ctx, h, &L->up, NULL);
    h = it_op_scale(ctx, h, it_lora_mod_scale(L), 0.0f);
    return it_op_add(ctx, y, h);
}

/* Shapes of a module's down/up from its (rank, in, out, kh, kw, conv). */
static void mod_shapes(const it_lora_mod *m, int *nd, int64_t *ds, int *nu, int64_t *us)
{
    if (m->conv) {
        *nd = 4, ds[0] = m->rank, ds[1] = m->in, ds[2] = m->kh, ds[3] = m->kw;
        *nu = 4, us[0] = m->out, us[1] = m->rank, us[2] = 1, us[3] = 1;
    } else {
        *nd = 2, ds[0] = m->rank, ds[1] = m->in;
        *nu = 2, us[0] = m->out, us[1] = m->rank;
    }
}

it_status it_lora_alloc(it_err *err, it_lora *l, size_t n, int trainable)
{
    memset(l, 0, sizeof *l);
    l->multiplier = 1.0f;
    if (n == 0) return it_err_set(err, IT_ERR_ARG, "lora: no modules");
    l->mods = it_calloc(n, sizeof *l->mods);
    if (!l->mods) return it_err_set(err, IT_ERR_NOMEM, "lora: out of memory (%zu modules)", n);
    l->n = n;
    (void)trainable;
    return IT_OK;
}

/* After every module's shape fields are set: one block for all weights
 * (and gradients), tensors pointing into it. */
static it_status lora_alloc_data(it_err *err, it_lora *l, int trainable)
{
    size_t total = 0;
    for (size_t i = 0; i < l->n; i++) {
        it_lora_mod *m = &l->mods[i];
        if (m->rank <= 0 || m->in <= 0 || m->out <= 0 || m->kh <= 0 || m->kw <= 0)
            return it_err_set(err, IT_ERR_FORMAT, "lora: %s: bad shape (rank %lld)", m->name,
                              (long long)m->rank);
        total += (size_t)(m->rank * m->in * m->kh * m->kw + m->out * m->rank);
    }
    l->data = it_calloc(total, sizeof(float));
    if (trainable) l->grad = it_calloc(total, sizeof(float));
    if (!l->data || (trainable && !l->grad))
        return it_err_set(err, IT_ERR_NOMEM, "lora: out of memory (%zu weights)", total);
    l->n_floats = total;
    size_t off = 0;
    for (size_t i = 0; i < l->n; i++) {
        it_lora_mod *m = &l->mods[i];
        int nd, nu;
        int64_t ds[4], us[4];
        mod_shapes(m, &nd, ds, &nu, us);
        snprintf(m->down_key, sizeof m->down_key, "%s.lora_down.weight", m->name);
        snprintf(m->up_key, sizeof m->up_key, "%s.lora_up.weight", m->name);
        size_t nd_n = (size_t)it_shape_numel(nd, ds), nu_n = (size_t)it_shape_numel(nu, us);
        it_status s = it_tensor_init_param(err, &m->down, m->down_key, l->data + off,
                                           l->grad ? l->grad + off : NULL, nd, ds);
        if (s) return s;
        off += nd_n;
        s = it_tensor_init_param(err, &m->up, m->up_key, l->data + off,
                                 l->grad ? l->grad + off : NULL, nu, us);
        if (s) return s;
        off += nu_n;
        m->hook.apply = lora_hook;
        m->multiplier = &l->multiplier;
    }
    return IT_OK;
}

it_status it_lora_finish(it_err *err, it_lora *l, int trainable)
{
    it_status s = lora_alloc_data(err, l, trainable);
    if (s) it_lora_free(l);
    return s;
}

/* Fills module i from target m. */
static void mod_from_target(it_lora_mod *d, it_lin *m, int unet, const it_lora_opts *o)
{
    it_lora_kohya_name(d->name, sizeof d->name, m->name, unet);
    d->target = m;
    d->conv = m->conv;
    d->out = m->w->shape[0];
    d->in = m->w->shape[1];
    d->kh = m->conv ? m->w->shape[2] : 1;
    d->kw = m->conv ? m->w->shape[3] : 1;
    int big = m->conv && (d->kh > 1 || d->kw > 1);
    d->rank = big ? o->conv_rank : o->rank;
    d->alpha = big ? (o->conv_alpha == 0 ? (float)o->conv_rank : o->conv_alpha)
                   : (o->alpha == 0 ? (float)o->rank : o->alpha);
    d->dropout = o->dropout;
}

static size_t count_targets(const it_params *ps, int unet, const it_lora_opts *o)
{
    size_t n = 0;
    if (!ps) return 0;
    for (size_t i = 0; i < it_params_module_count(ps); i++)
        if (it_lora_is_target(it_params_module(ps, i), unet, o->conv_rank > 0)) n++;
    return n;
}

it_status it_lora_create(it_err *err, it_lora *l, const it_params *unet_ps,
                         const it_params *text_ps, const it_lora_opts *o, uint64_t seed)
{
    memset(l, 0, sizeof *l);
    if (o->rank <= 0 || o->rank > 4096)
        return it_err_set(err, IT_ERR_ARG, "lora: rank %d out of range 1..4096", o->rank);
    if (o->conv_rank < 0 || o->conv_rank > 4096)
        return it_err_set(err, IT_ERR_ARG, "lora: conv rank %d out of range 0..4096", o->conv_rank);
    if (!(o->alpha >= 0) || !(o->conv_alpha >= 0))
        return it_err_set(err, IT_ERR_ARG, "lora: alpha must be >= 0");
    if (!(o->dropout >= 0 && o->dropout < 1))
        return it_err_set(err, IT_ERR_ARG, "lora: dropout %g not in [0, 1)", (double)o->dropout);
    const it_params *comps[2] = {o->unet ? unet_ps : NULL, o->text ? text_ps : NULL};
    size_t n = count_targets(comps[0], 1, o) + count_targets(comps[1], 0, o);
    if (n == 0) return it_err_set(err, IT_ERR_ARG, "lora: the model has no target modules");
    it_status s = it_lora_alloc(err, l, n, o->trainable);
    if (s) return s;
    size_t k = 0;
    for (int c = 0; c < 2; c++) {
        if (!comps[c]) continue;
        for (size_t i = 0; i < it_params_module_count(comps[c]); i++) {
            it_lin *m = it_params_module(comps[c], i);
            if (it_lora_is_target(m, c == 0, o->conv_rank > 0)) mod_from_target(&l->mods[k++], m, c == 0, o);
        }
    }
    if ((s = it_lora_finish(err, l, o->trainable))) return s;
    /* kohya: kaiming_uniform_(down, a=sqrt(5)) -> U(-1/sqrt(fan_in), 1/sqrt(fan_in));
     * up = 0. One counter stream per module so that the values do not depend
     * on which other modules exist. */
    for (size_t i = 0; i < l->n; i++) {
        it_lora_mod *m = &l->mods[i];
        it_rng r;
        it_rng_init(&r, seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(i + 1)));
        float *d = it_f32(&m->down);
        it_rng_uniform(&r, d, (size_t)m->down.n);
        float bound = 1.0f / sqrtf((float)(m->in * m->kh * m->kw));
        for (int64_t j = 0; j < m->down.n; j++) d[j] = (2.0f * d[j] - 1.0f) * bound;
    }
    return IT_OK;
}

void it_lora_attach(it_lora *l)
{
    if (l->attached) return;
    for (size_t i = 0; i < l->n; i++)
        if (l->mods[i].target) it_lin_attach(l->mods[i].target, &l->mods[i].hook);
    l->attached = 1;
}

void it_lora_detach(it_lora *l)
{
    if (!l->attached) return;
    for (size_t i = 0; i < l->n; i++) {
        it_lin *t = l->mods[i].target;
        if (!t) continue;
        for (it_adapter **p = &t->adapter; *p; p = &(*p)->next)
            if (*p == &l->mods[i].hook) {
                *p = (*p)->next;
                break;
            }
    }
    l->attached = 0;
}

void it_lora_free(it_lora *l)
{
    if (!l) return;
    it_lora_detach(l);
    it_free(l->mods);
    it_free(l->data);
    it_free(l->grad);
    memset(l, 0, sizeof *l);
}

it_status it_lora_merge(it_err *err, it_lora *l)
{
    for (size_t i = 0; i < l->n; i++) {
        it_lora_mod *m = &l->mods[i];
        if (!m->target) continue;
        float *w = it_f32(m->target->w);
        if (!w) return it_err_set(err, IT_ERR_STATE, "lora merge: %s: the model's weights are not f32 in memory (f16 or shapes only)", m->name);
        int64_t k = m->in * m->kh * m->kw;
        if (m->target->w->n != m->out * k)
            return it_err_set(err, IT_ERR_ARG, "lora merge: %s: shape does not match the module",
                              m->name);
        /* W (out, in*kh*kw) += s * up (out, r) @ down (r, in*kh*kw) */
        it_cpu_gemm(0, 0, m->out, k, m->rank, it_lora_mod_scale(m), it_f32(&m->up), m->rank,
                    it_f32(&m->down), k, 1.0f, w, k);
    }
    return IT_OK;
}

size_t it_lora_params(const it_lora *l, it_optim_param *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        const it_lora_mod *m = &l->mods[i];
        const it_tensor *ts[2] = {&m->down, &m->up};
        for (int j = 0; j < 2; j++) {
            if (k < cap)
                out[k] = (it_optim_param){ts[j]->name, it_f32(ts[j]), ts[j]->grad,
                                          (size_t)ts[j]->n, ts[j]->grad == NULL};
            k++;
        }
    }
    return k;
}

size_t it_lora_count(const it_lora *l, int unet)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        if (!strncmp(l->mods[i].name, "lora_unet_", 10) == !!unet) n++;
    return n;
}
