/* train_data.h: what the training loop draws for one micro-batch.
 *
 * Owns: turning micro-batch number m into its samples (dataset.h's plan:
 * one bucket per batch), each sample's crop and flip, its VAE latents (the
 * posterior mean times the scaling factor, through latent_cache.h: memory,
 * then disk, then the VAE), its caption (shuffle, dropout), and its loss
 * weights at latent size: the mask (kohya: loss x area-downsampled mask;
 * optionally divided by the mask's mean, OneTrainer's
 * normalize_masked_area_loss) times the prior-preservation weight of
 * regularisation samples. Everything is a pure function of (seed, m), so a
 * resumed run draws what an uninterrupted one would.
 * Does not own the text encoder, noise or the step (trainer.h,
 * train_step.h). */
#ifndef IT_TRAIN_DATA_H
#define IT_TRAIN_DATA_H

#include "models/vae.h"
#include "tensor/tensor.h"
#include "train/dataset.h"
#include "train/latent_cache.h"
#include "train/lora_file.h"

#define IT_CAPTION_MAX 2048

typedef struct it_train_data_opts {
    it_ds_opts ds;            /* folder, reg folder, masks, buckets, batch */
    uint64_t seed;
    int flip;
    int shuffle_captions, keep_tokens;
    float caption_dropout;
    float prior_loss_weight;  /* loss weight of regularisation samples (kohya: 1) */
    int mask_normalize;       /* divide each sample's mask by its mean */
    const char *cache_dir;    /* latent files; NULL or "": memory only */
} it_train_data_opts;

void it_train_data_opts_init(it_train_data_opts *o);

typedef struct it_train_data {
    it_train_data_opts o;
    it_dataset ds;
    it_latent_cache cache;
    const it_vae *vae;
    int f;                    /* VAE downsampling factor */
    int64_t lc;               /* latent channels */
    uint64_t vae_id;
    float *img;               /* (3, max bucket pixels) */
    float *mask;              /* (batch, max latent pixels) */
    char *captions;           /* (batch, IT_CAPTION_MAX) */
    int32_t *items;           /* (batch) */
} it_train_data;

/* One micro-batch as drawn. */
typedef struct it_data_batch {
    int n;                    /* samples (<= batch: a bucket's last batch may be short) */
    int64_t lh, lw;           /* latent size of this batch's bucket */
    const float *mask;        /* (n, 1, lh, lw) loss weights, or NULL when all are 1 */
    int n_reg;                /* regularisation samples among them */
} it_data_batch;

it_status it_train_data_open(it_err *err, it_train_data *td, const it_train_data_opts *o,
                             const it_vae *vae);
void it_train_data_free(it_train_data *td);

/* Fills lat (n, lc, lh, lw) and *out for micro-batch m; ctx is used for the
 * VAE (released after). */
it_status it_train_data_batch(it_err *err, it_train_data *td, it_ctx *ctx, uint64_t m, float *lat,
                              it_data_batch *out);

/* What the batch order depends on (dataset content, buckets, batches per
 * epoch): stored in checkpoints, so that resuming on other data is refused. */
uint64_t it_train_data_fingerprint(const it_train_data *td);

/* kohya's data metadata for the LoRA file: ss_enable_bucket,
 * ss_min_bucket_reso, ss_max_bucket_reso, ss_bucket_info (JSON: each used
 * bucket's resolution and image count), ss_num_reg_images,
 * ss_prior_loss_weight. Fills up to cap pairs whose strings live in store
 * (n bytes); returns the count. */
size_t it_train_data_meta(const it_train_data *td, it_lora_meta *out, size_t cap, char *store, size_t n);

/* Caption of sample i of the last batch. */
const char *it_train_data_caption(const it_train_data *td, int i);

#endif
