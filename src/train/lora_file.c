/* lora_file.c: kohya-format save, kohya/PEFT load and binding to a model. */
#include "train/lora_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "tensor/safetensors.h"

/* ------------------------------------------------------------------ save */

static it_status save_meta(it_err *err, it_safetensors_writer *w, const it_lora *l,
                           const it_lora_meta *meta, size_t n_meta)
{
    char buf[256];
    int64_t rank = 0, conv_rank = 0;
    float alpha = 0, conv_alpha = 0;
    for (size_t i = 0; i < l->n; i++) {
        const it_lora_mod *m = &l->mods[i];
        int big = m->conv && (m->kh > 1 || m->kw > 1);
        if (big && !conv_rank) conv_rank = m->rank, conv_alpha = m->alpha;
        if (!big && !rank) rank = m->rank, alpha = m->alpha;
    }
    IT_TRY(it_safetensors_writer_set_metadata(err, w, "ss_network_module", "networks.lora"));
    snprintf(buf, sizeof buf, "%lld", (long long)rank);
    IT_TRY(it_safetensors_writer_set_metadata(err, w, "ss_network_dim", buf));
    snprintf(buf, sizeof buf, "%g", (double)alpha);
    IT_TRY(it_safetensors_writer_set_metadata(err, w, "ss_network_alpha", buf));
    if (conv_rank) {
        snprintf(buf, sizeof buf, "{\"conv_dim\": \"%lld\", \"conv_alpha\": \"%g\"}",
                 (long long)conv_rank, (double)conv_alpha);
        IT_TRY(it_safetensors_writer_set_metadata(err, w, "ss_network_args", buf));
    }
    for (size_t i = 0; i < n_meta; i++)
        IT_TRY(it_safetensors_writer_set_metadata(err, w, meta[i].key, meta[i].value));
    return IT_OK;
}

/* A writer holding l's tensors and metadata (freed by the caller). */
static it_status fill_writer(it_err *err, it_safetensors_writer **out, const it_lora *l, it_dtype dtype,
                             const it_lora_meta *meta, size_t n_meta)
{
    if (dtype != IT_DTYPE_F32 && dtype != IT_DTYPE_F16 && dtype != IT_DTYPE_BF16)
        return it_err_set(err, IT_ERR_ARG, "lora save: dtype must be f32, f16 or bf16");
    it_safetensors_writer *w = NULL;
    it_status s = it_safetensors_writer_new(err, &w);
    char key[256];
    for (size_t i = 0; !s && i < l->n; i++) {
        const it_lora_mod *m = &l->mods[i];
        s = it_safetensors_writer_add_f32_as(err, w, m->down_key, dtype, m->down.ndim,
                                             m->down.shape, it_f32(&m->down));
        if (!s)
            s = it_safetensors_writer_add_f32_as(err, w, m->up_key, dtype, m->up.ndim,
                                                 m->up.shape, it_f32(&m->up));
        snprintf(key, sizeof key, "%s.alpha", m->name);
        if (!s) s = it_safetensors_writer_add_f32_as(err, w, key, dtype, 0, NULL, &m->alpha);
    }
    if (!s) s = save_meta(err, w, l, meta, n_meta);
    if (s) it_safetensors_writer_free(w);
    else *out = w;
    return s;
}

it_status it_lora_save(it_err *err, const it_lora *l, const char *path, it_dtype dtype,
                       const it_lora_meta *meta, size_t n_meta)
{
    it_safetensors_writer *w = NULL;
    IT_TRY(fill_writer(err, &w, l, dtype, meta, n_meta));
    it_status s = it_safetensors_writer_save(err, w, path);
    it_safetensors_writer_free(w);
    return s;
}

it_status it_lora_save_buf(it_err *err, const it_lora *l, it_buf *out, it_dtype dtype,
                           const it_lora_meta *meta, size_t n_meta)
{
    it_safetensors_writer *w = NULL;
    IT_TRY(fill_writer(err, &w, l, dtype, meta, n_meta));
    it_status s = it_safetensors_writer_to_buf(err, w, out);
    it_safetensors_writer_free(w);
    return s;
}

/* ------------------------------------------------------------------ load */

typedef struct lora_key {
    char prefix[176];     /* file key prefix before ".lora_down.weight" / ".lora_A.weight" */
    char name[192];       /* kohya name */
    int unet, peft;
    long order;           /* module index in its model (text after UNet); -1 unbound */
} lora_key;

static int ends_with(const char *s, const char *suf, size_t *stem)
{
    size_t n = strlen(s), k = strlen(suf);
    if (n <= k || strcmp(s + n - k, suf)) return 0;
    *stem = n - k;
    return 1;
}

/* Recognises a down-projection key; fills k. 0 if the key is something else. */
static int parse_down_key(const char *key, lora_key *k)
{
    size_t stem;
    memset(k, 0, sizeof *k);
    if (ends_with(key, ".lora_down.weight", &stem)) k->peft = 0;
    else if (ends_with(key, ".lora_A.weight", &stem)) k->peft = 1;
    else return 0;
    if (stem >= sizeof k->prefix) return 0;
    memcpy(k->prefix, key, stem);
    k->prefix[stem] = 0;
    if (!k->peft) {
        k->unet = !strncmp(k->prefix, "lora_unet_", 10);
        snprintf(k->name, sizeof k->name, "%s", k->prefix);
        return k->unet || !strncmp(k->prefix, "lora_te_", 8);
    }
    const char *mod = k->prefix;
    if (!strncmp(mod, "unet.", 5)) k->unet = 1, mod += 5;
    else if (!strncmp(mod, "text_encoder.", 13)) k->unet = 0, mod += 13;
    else if (!strncmp(mod, "base_model.model.", 17)) k->unet = 1, mod += 17;
    else k->unet = 1;
    it_lora_kohya_name(k->name, sizeof k->name, mod, k->unet);
    return 1;
}

static it_lin *find_target(const it_params *ps, const char *kname, int unet, long *index)
{
    *index = -1;
    if (!ps) return NULL;
    char buf[256];
    for (size_t i = 0; i < it_params_module_count(ps); i++) {
        it_lin *m = it_params_module(ps, i);
        it_lora_kohya_name(buf, sizeof buf, m->name, unet);
        if (!strcmp(buf, kname)) {
            *index = (long)i;
            return m;
        }
    }
    return NULL;
}

/* Model order (UNet modules, then text encoder modules, in registration
 * order), so that a file loads into the same module order as it_lora_create
 * made (resume copies values by position); unbound modules by name. */
static int key_cmp(const void *pa, const void *pb)
{
    const lora_key *a = pa, *b = pb;
    if (a->unet != b->unet) return a->unet ? -1 : 1;
    if (a->order != b->order) return a->order < b->order ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* Shape fields of module d from the file's down/up tensors and its target. */
static it_status fill_mod(it_err *err, const char *label, it_lora_mod *d, const lora_key *k,
                          const it_safetensors_tensor *dn, const it_safetensors_tensor *up,
                          it_lin *target)
{
    snprintf(d->name, sizeof d->name, "%s", k->name);
    if ((dn->n_dims != 2 && dn->n_dims != 4) || up->n_dims != dn->n_dims)
        return it_err_set(err, IT_ERR_FORMAT, "%s: %s: down/up must both be 2-D or 4-D", label,
                          k->prefix);
    d->rank = dn->shape[0];
    d->in = dn->shape[1];
    d->out = up->shape[0];
    d->kh = dn->n_dims == 4 ? dn->shape[2] : 1;
    d->kw = dn->n_dims == 4 ? dn->shape[3] : 1;
    if (up->shape[1] != d->rank || (up->n_dims == 4 && (up->shape[2] != 1 || up->shape[3] != 1)))
        return it_err_set(err, IT_ERR_FORMAT, "%s: %s: up shape does not match rank %lld", label,
                          k->prefix, (long long)d->rank);
    d->conv = dn->n_dims == 4;
    d->target = target;
    if (target) {
        const it_tensor *w = target->w;
        int64_t kh = target->conv ? w->shape[2] : 1, kw = target->conv ? w->shape[3] : 1;
        if (w->shape[0] != d->out || w->shape[1] != d->in || kh != d->kh || kw != d->kw)
            return it_err_set(err, IT_ERR_FORMAT,
                              "%s: %s: shape (out %lld, in %lld, %lldx%lld) does not fit module %s",
                              label, k->prefix, (long long)d->out, (long long)d->in,
                              (long long)d->kh, (long long)d->kw, target->name);
        d->conv = target->conv; /* 1x1 convs stored 2-D (PEFT) or linears stored 4-D */
    }
    return IT_OK;
}

static it_status read_scalar(it_err *err, const it_safetensors *f, const char *key, float *out)
{
    const it_safetensors_tensor *t = it_safetensors_find(f, key);
    if (!t) return IT_OK;
    if (t->numel != 1)
        return it_err_set(err, IT_ERR_FORMAT, "%s: %s: alpha must have one element",
                          it_safetensors_label(f), key);
    return it_safetensors_load_f32(err, f, t, out, 1);
}

static it_status load_bound(it_err *err, it_lora *l, const it_safetensors *f, const lora_key *keys,
                            const it_params *unet_ps, const it_params *text_ps, int trainable)
{
    const char *label = it_safetensors_label(f);
    char kd[256], ku[256], ka[256];
    for (size_t i = 0; i < l->n; i++) {
        const lora_key *k = &keys[i];
        snprintf(kd, sizeof kd, "%s.%s", k->prefix, k->peft ? "lora_A.weight" : "lora_down.weight");
        snprintf(ku, sizeof ku, "%s.%s", k->prefix, k->peft ? "lora_B.weight" : "lora_up.weight");
        const it_safetensors_tensor *dn = it_safetensors_find(f, kd), *up = NULL;
        IT_TRY(it_safetensors_get(err, f, ku, &up));
        const it_params *ps = k->unet ? unet_ps : text_ps;
        long idx;
        it_lin *target = find_target(ps, k->name, k->unet, &idx);
        if (ps && !target)
            return it_err_set(err, IT_ERR_NOT_FOUND, "%s: %s: no such module in the %s", label,
                              k->prefix, k->unet ? "UNet" : "text encoder");
        IT_TRY(fill_mod(err, label, &l->mods[i], k, dn, up, target));
        l->mods[i].alpha = (float)l->mods[i].rank;
        snprintf(ka, sizeof ka, "%s.alpha", k->prefix);
        IT_TRY(read_scalar(err, f, ka, &l->mods[i].alpha));
    }
    IT_TRY(it_lora_finish(err, l, trainable));
    for (size_t i = 0; i < l->n; i++) {
        const lora_key *k = &keys[i];
        it_lora_mod *m = &l->mods[i];
        snprintf(kd, sizeof kd, "%s.%s", k->prefix, k->peft ? "lora_A.weight" : "lora_down.weight");
        snprintf(ku, sizeof ku, "%s.%s", k->prefix, k->peft ? "lora_B.weight" : "lora_up.weight");
        IT_TRY(it_safetensors_load_f32(err, f, it_safetensors_find(f, kd), it_f32(&m->down),
                                       (size_t)m->down.n));
        IT_TRY(it_safetensors_load_f32(err, f, it_safetensors_find(f, ku), it_f32(&m->up),
                                       (size_t)m->up.n));
    }
    return IT_OK;
}

/* Every tensor must be a down, up or alpha of some module. */
static it_status check_keys(it_err *err, const it_safetensors *f, size_t *n_down)
{
    size_t nd = 0, stem;
    lora_key k;
    for (size_t i = 0; i < it_safetensors_count(f); i++) {
        const char *name = it_safetensors_at(f, i)->name;
        /* keys end up in messages, which must stay one line (found by fuzz/lora_file.c) */
        for (const char *c = name; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                return it_err_set(err, IT_ERR_FORMAT, "%s: tensor %zu: key has control characters (not a LoRA weight)",
                                  it_safetensors_label(f), i);
        if (parse_down_key(name, &k)) nd++;
        else if (!ends_with(name, ".lora_up.weight", &stem) && !ends_with(name, ".lora_B.weight", &stem) &&
                 !ends_with(name, ".alpha", &stem))
            return it_err_set(err, IT_ERR_UNSUPPORTED, "%s: unexpected key %s (not a LoRA weight)",
                              it_safetensors_label(f), name);
    }
    if (!nd) return it_err_set(err, IT_ERR_FORMAT, "%s: no LoRA modules (no *.lora_down.weight or *.lora_A.weight)",
                               it_safetensors_label(f));
    *n_down = nd;
    return IT_OK;
}

/* Two keys naming one module (a kohya and a PEFT spelling of it, or a
 * text-encoder module written both ways) would hook the target twice.
 * keys are sorted: equal names are neighbours. */
static it_status check_unique(it_err *err, const it_safetensors *f, const lora_key *keys, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (keys[i].unet == keys[i - 1].unet && !strcmp(keys[i].name, keys[i - 1].name))
            return it_err_set(err, IT_ERR_FORMAT, "%s: module %s appears twice (%s and %s)",
                              it_safetensors_label(f), keys[i].name, keys[i - 1].prefix, keys[i].prefix);
    return IT_OK;
}

it_status it_lora_load_st(it_err *err, it_lora *l, const it_safetensors *f, const it_params *unet_ps,
                          const it_params *text_ps, int trainable)
{
    memset(l, 0, sizeof *l);
    size_t n = 0;
    lora_key *keys = NULL;
    it_status s = check_keys(err, f, &n);
    if (!s && !(keys = it_calloc(n, sizeof *keys)))
        s = it_err_set(err, IT_ERR_NOMEM, "%s: out of memory", it_safetensors_label(f));
    if (!s) {
        size_t j = 0;
        lora_key k;
        for (size_t i = 0; i < it_safetensors_count(f) && j < n; i++)
            if (parse_down_key(it_safetensors_at(f, i)->name, &k)) {
                find_target(k.unet ? unet_ps : text_ps, k.name, k.unet, &k.order);
                keys[j++] = k;
            }
        qsort(keys, n, sizeof *keys, key_cmp);
        s = check_unique(err, f, keys, n);
    }
    if (!s) s = it_lora_alloc(err, l, n, trainable);
    if (!s) s = load_bound(err, l, f, keys, unet_ps, text_ps, trainable);
    if (s) it_lora_free(l);
    it_free(keys);
    return s;
}

it_status it_lora_load(it_err *err, it_lora *l, const char *path, const it_params *unet_ps,
                       const it_params *text_ps, int trainable)
{
    memset(l, 0, sizeof *l);
    it_safetensors *f = NULL;
    IT_TRY(it_safetensors_open(err, &f, path));
    it_status s = it_lora_load_st(err, l, f, unet_ps, text_ps, trainable);
    it_safetensors_close(f);
    return s;
}

it_status it_lora_copy_values(it_err *err, it_lora *dst, const it_lora *src)
{
    if (dst->n != src->n || dst->n_floats != src->n_floats)
        return it_err_set(err, IT_ERR_FORMAT, "lora: module count or size differs (%zu vs %zu modules)",
                          src->n, dst->n);
    for (size_t i = 0; i < dst->n; i++)
        if (strcmp(dst->mods[i].name, src->mods[i].name) || dst->mods[i].rank != src->mods[i].rank)
            return it_err_set(err, IT_ERR_FORMAT, "lora: module %zu is %s rank %lld, expected %s rank %lld",
                              i, src->mods[i].name, (long long)src->mods[i].rank, dst->mods[i].name,
                              (long long)dst->mods[i].rank);
    memcpy(dst->data, src->data, dst->n_floats * sizeof(float));
    return IT_OK;
}

it_status it_lora_apply_spec(it_err *err, it_lora *l, const char *spec, const it_params *unet_ps,
                             const it_params *text_ps)
{
    char path[4096];
    double scale = 1.0;
    snprintf(path, sizeof path, "%s", spec);
    char *colon = strrchr(path, ':');
    if (colon && colon[1]) {
        char *end;
        double v = strtod(colon + 1, &end);
        if (!*end) {
            if (!(v >= -100 && v <= 100))
                return it_err_set(err, IT_ERR_ARG, "--lora %s: scale must be in -100..100", spec);
            scale = v;
            *colon = 0;
        }
    }
    IT_TRY(it_lora_load(err, l, path, unet_ps, text_ps, 0));
    l->multiplier = (float)scale;
    it_lora_attach(l);
    return IT_OK;
}
