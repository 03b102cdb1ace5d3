/* train_data.c: samples, latents (cached), captions and loss weights of a
 * micro-batch. */
#include "train/train_data.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "tensor/autograd.h"

void it_train_data_opts_init(it_train_data_opts *o)
{
    memset(o, 0, sizeof *o);
    it_ds_opts_init(&o->ds);
    o->prior_loss_weight = 1.0f;
}

it_status it_train_data_open(it_err *err, it_train_data *td, const it_train_data_opts *o,
                             const it_vae *vae)
{
    memset(td, 0, sizeof *td);
    td->o = *o;
    td->vae = vae;
    td->f = 1 << (vae->cfg.n_levels - 1);
    td->lc = vae->cfg.latent_channels;
    if (o->ds.step % td->f)
        return it_err_set(err, IT_ERR_ARG, "bucket step %d is not a multiple of the VAE factor %d", o->ds.step, td->f);
    IT_TRY(it_dataset_open_opts(err, &td->ds, &o->ds));
    it_status s = it_latent_cache_open(err, &td->cache, o->cache_dir);
    size_t px = 0, B = (size_t)o->ds.batch;
    for (int b = 0; b < td->ds.n_buckets; b++) {
        size_t p = (size_t)td->ds.buckets[b].w * (size_t)td->ds.buckets[b].h;
        if (p > px) px = p;
    }
    if (!s) {
        td->img = it_malloc(3 * px * sizeof(float));
        td->mask = it_malloc(B * (px / (size_t)(td->f * td->f)) * sizeof(float));
        td->captions = it_malloc(B * IT_CAPTION_MAX);
        td->items = it_malloc(B * sizeof(int32_t));
        if (!td->img || !td->mask || !td->captions || !td->items)
            s = it_err_set(err, IT_ERR_NOMEM, "training data: out of memory");
    }
    if (s) {
        it_train_data_free(td);
        return s;
    }
    td->vae_id = it_latent_vae_id(vae);
    it_log(IT_LOG_INFO, "dataset: %zu images (%zu regularisation), %zu samples per epoch in %zu batches, "
           "%d bucket%s, %s", td->ds.n_train, td->ds.n_reg, td->ds.n_slots, td->ds.n_batches, td->ds.n_buckets,
           td->ds.n_buckets == 1 ? "" : "s", td->ds.has_masks ? "masked loss" : "no masks");
    return IT_OK;
}

void it_train_data_free(it_train_data *td)
{
    if (td->cache.hits_mem + td->cache.hits_disk + td->cache.misses)
        it_log(IT_LOG_INFO, "latent cache: %zu from memory, %zu from disk, %zu computed, %zu corrupt files replaced",
               td->cache.hits_mem, td->cache.hits_disk, td->cache.misses, td->cache.corrupt);
    it_dataset_free(&td->ds);
    it_latent_cache_free(&td->cache);
    it_free(td->img);
    it_free(td->mask);
    it_free(td->captions);
    it_free(td->items);
    memset(td, 0, sizeof *td);
}

const char *it_train_data_caption(const it_train_data *td, int i)
{
    return td->captions + (size_t)i * IT_CAPTION_MAX;
}

/* Latents of one crop: from the cache, else VAE(image) (deterministic: the
 * posterior mean x scaling factor), then cached. out: (lc, bh/f, bw/f). */
static it_status crop_latent(it_err *err, it_train_data *td, it_ctx *ctx, size_t item,
                             const it_ds_crop *cr, float *out)
{
    int lh = cr->bh / td->f, lw = cr->bw / td->f;
    size_t n = (size_t)td->lc * (size_t)lh * (size_t)lw;
    it_latent_key k = {td->ds.items[item].content, td->vae_id, cr->bw, cr->bh, cr->rw, cr->rh,
                       cr->x, cr->y, cr->flip, (int32_t)td->lc, lh, lw};
    if (it_latent_cache_get(&td->cache, &k, out, n)) return IT_OK;
    IT_TRY(it_dataset_image_crop(err, &td->ds, item, cr, td->img));
    it_mark mk = it_ctx_mark(ctx);
    int was = it_autograd_set_enabled(ctx, 0);
    it_tensor *x = it_tensor_from(ctx, td->img, IT_SHAPE(1, 3, cr->bh, cr->bw));
    it_tensor *z = it_vae_sample(ctx, td->vae, it_vae_encode(ctx, td->vae, x), 0, 1, 1);
    it_autograd_set_enabled(ctx, was);
    if (!z) return it_ctx_status(ctx, err);
    memcpy(out, z->data, n * sizeof(float));
    it_ctx_release(ctx, mk);
    return it_latent_cache_put(err, &td->cache, &k, out, n);
}

/* Loss weights of sample i: mask (maybe mean-normalised) x reg weight.
 * Returns 1 when they are not all ones. */
static it_status sample_weights(it_err *err, it_train_data *td, size_t item, const it_ds_crop *cr,
                                float *w, int *not_one)
{
    const it_ds_item *it = &td->ds.items[item];
    size_t hw = (size_t)(cr->bh / td->f) * (size_t)(cr->bw / td->f);
    IT_TRY(it_dataset_mask(err, &td->ds, item, cr, td->f, w));
    float scale = it->reg ? td->o.prior_loss_weight : 1.0f;
    if (it->mask_path && td->o.mask_normalize) {
        double sum = 0;
        for (size_t j = 0; j < hw; j++) sum += w[j];
        /* an empty mask teaches nothing: weight 0 rather than 0/0 */
        scale = sum > 0 ? (float)(scale * (double)hw / sum) : 0.0f;
    }
    for (size_t j = 0; j < hw; j++) w[j] *= scale;
    *not_one |= it->mask_path != NULL || scale != 1.0f;
    return IT_OK;
}

it_status it_train_data_batch(it_err *err, it_train_data *td, it_ctx *ctx, uint64_t m, float *lat,
                              it_data_batch *out)
{
    const it_train_data_opts *o = &td->o;
    int n = it_dataset_batch(&td->ds, o->seed, m, td->items);
    int not_one = 0;
    memset(out, 0, sizeof *out);
    for (int i = 0; i < n; i++) {
        uint64_t g = m * (uint64_t)o->ds.batch + (uint64_t)i;
        size_t item = (size_t)td->items[i];
        it_ds_crop cr;
        it_dataset_crop(&td->ds, item, o->seed, g, o->flip, &cr);
        out->lh = cr.bh / td->f, out->lw = cr.bw / td->f;
        size_t hw = (size_t)(out->lh * out->lw);
        IT_TRY(crop_latent(err, td, ctx, item, &cr, lat + (size_t)i * (size_t)td->lc * hw));
        IT_TRY(sample_weights(err, td, item, &cr, td->mask + (size_t)i * hw, &not_one));
        it_dataset_caption(&td->ds, item, o->seed, g, o->shuffle_captions, o->keep_tokens, o->caption_dropout,
                           td->captions + (size_t)i * IT_CAPTION_MAX, IT_CAPTION_MAX);
        out->n_reg += td->ds.items[item].reg;
    }
    out->n = n;
    out->mask = not_one ? td->mask : NULL;
    return IT_OK;
}

uint64_t it_train_data_fingerprint(const it_train_data *td)
{
    const it_dataset *ds = &td->ds;
    uint64_t v[4] = {ds->hash, (uint64_t)ds->n_batches, (uint64_t)ds->opts.batch, (uint64_t)ds->opts.random_crop};
    uint64_t h = it_hash64(0x706c616eull, v, sizeof v);
    return it_hash64(h, ds->buckets, (size_t)ds->n_buckets * sizeof ds->buckets[0]);
}

/* Appends key = value (copied into the store); 0 when out of room. */
static int add_meta(it_lora_meta *out, size_t cap, size_t *k, char **store, size_t *left, const char *key,
                    const char *value)
{
    size_t n = strlen(value) + 1;
    if (*k >= cap || n > *left) return 0;
    memcpy(*store, value, n);
    out[(*k)++] = (it_lora_meta){key, *store};
    *store += n, *left -= n;
    return 1;
}

size_t it_train_data_meta(const it_train_data *td, it_lora_meta *out, size_t cap, char *store, size_t n)
{
    const it_dataset *ds = &td->ds;
    size_t k = 0;
    char buf[64];
    add_meta(out, cap, &k, &store, &n, "ss_enable_bucket", ds->opts.buckets ? "True" : "False");
    if (ds->opts.buckets) {
        int lo = ds->opts.min_side ? ds->opts.min_side : ds->opts.resolution / 2;
        int hi = ds->opts.max_side ? ds->opts.max_side : ds->opts.resolution * 2;
        snprintf(buf, sizeof buf, "%d", lo);
        add_meta(out, cap, &k, &store, &n, "ss_min_bucket_reso", buf);
        snprintf(buf, sizeof buf, "%d", hi);
        add_meta(out, cap, &k, &store, &n, "ss_max_bucket_reso", buf);
    }
    json_t *bk = json_object();
    int used = 0;
    for (int b = 0; b < ds->n_buckets; b++) {
        size_t count = 0;
        for (size_t i = 0; i < ds->n; i++) count += ds->items[i].bucket == b && ds->items[i].repeats > 0;
        if (!count) continue;
        snprintf(buf, sizeof buf, "%d", used++);
        json_object_set_new(bk, buf, json_pack("{s:[i,i], s:I}", "resolution", ds->buckets[b].w, ds->buckets[b].h,
                                               "count", (json_int_t)count));
    }
    json_t *info = json_pack("{s:o}", "buckets", bk);
    char *text = info ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    if (text) add_meta(out, cap, &k, &store, &n, "ss_bucket_info", text);
    free(text);
    snprintf(buf, sizeof buf, "%zu", ds->n_reg);
    add_meta(out, cap, &k, &store, &n, "ss_num_reg_images", buf);
    snprintf(buf, sizeof buf, "%g", (double)td->o.prior_loss_weight);
    add_meta(out, cap, &k, &store, &n, "ss_prior_loss_weight", buf);
    return k;
}
