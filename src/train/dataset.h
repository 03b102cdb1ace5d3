/* dataset.h: training images, captions and masks on disk, as kohya lays
 * them out, and the order in which training draws them.
 *
 * Owns: scanning a folder of images (png, jpg, jpeg, webp; "NAME.mask.*"
 * files are masks, never images) with same-named .txt captions, directly or
 * in kohya's "N_name/" subfolders (each image repeated N times per epoch; an
 * image there without a .txt is captioned "name", as kohya does); the
 * regularisation folder of prior preservation (same layout, captions from
 * .txt, the folder name or the class prompt; kohya's rule for how many reg
 * samples an epoch gets: as many as training samples, reg images cycled);
 * optional loss masks (NAME.mask.png beside the image, or DIR/NAME.png /
 * DIR/NAME.mask.png under a mask folder), checked at open (readable, same
 * size as the image); aspect-ratio buckets (bucket.h) and each image's
 * bucket; the per-epoch batch plan: within every bucket the samples are
 * shuffled and cut into batches, then the batches are shuffled, all from
 * (seed, epoch), so micro-batch m of the run is a pure function of the seed
 * and m (resuming needs only the step); per draw, the crop (cover-resize to
 * the bucket, centre or random crop offset) and flip; caption shuffling
 * (tags after the first keep_tokens) and dropout; the image as [-1, 1] CHW
 * floats and the mask as latent-sized loss weights (resized, cropped and
 * flipped exactly as the image, then area-averaged); the dataset hash of
 * kohya's ss_dataset_hash (image and mask bytes, captions, repeats: moving
 * the folder does not change it).
 * Does not own latents, their cache or the text encoder (train_data.h,
 * latent_cache.h, trainer.h). */
#ifndef IT_DATASET_H
#define IT_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "train/bucket.h"

typedef struct it_ds_item {
    char *path;           /* image file */
    char *caption;        /* from NAME.txt, trimmed; else the folder's name or class prompt; "" */
    char *mask_path;      /* loss mask file or NULL (all ones) */
    int repeats;          /* samples per epoch (reg: kohya's cycling rule; 0 = unused) */
    int reg;              /* regularisation image (prior preservation) */
    int w, h;             /* image size after EXIF orientation */
    int bucket;           /* index into it_dataset.buckets */
    uint64_t content;     /* hash of the image's (and mask's) bytes */
} it_ds_item;

typedef struct it_ds_opts {
    const char *dir;          /* training images (required) */
    const char *reg_dir;      /* regularisation images or NULL */
    const char *class_prompt; /* caption of reg images without .txt outside N_name/ ("") */
    int masked_loss;          /* look for masks (beside the images or in mask_dir) */
    const char *mask_dir;     /* NULL: NAME.mask.png beside each image */
    int resolution;           /* square side; buckets have at most its area */
    int buckets;              /* aspect-ratio buckets; 0: one res x res bucket */
    int min_side, max_side;   /* bucket side limits; 0: resolution / 2, resolution * 2 */
    int step;                 /* bucket sides are multiples of it (VAE x UNet downsampling) */
    int batch;                /* samples per micro-batch (batches never mix buckets) */
    int random_crop;          /* random crop offset per draw instead of the centre */
} it_ds_opts;

void it_ds_opts_init(it_ds_opts *o);

/* One draw's geometry: the image resized to (rw, rh) covers bucket (bw, bh)
 * and the crop starts at (x, y) of the resized image. */
typedef struct it_ds_crop {
    int bw, bh, rw, rh, x, y;
    int flip;
} it_ds_crop;

typedef struct it_dataset {
    it_ds_opts opts;
    it_ds_item *items;
    size_t n, cap;
    size_t n_train, n_reg;    /* items of each kind (reg items follow the training items) */
    size_t n_slots;           /* samples per epoch: sum of repeats */
    size_t n_train_slots;     /* of which training (not reg) samples */
    it_bucket buckets[IT_BUCKET_MAX];
    int n_buckets;
    int32_t *bucket_slots;    /* (n_slots) slot items grouped by bucket */
    size_t bucket_start[IT_BUCKET_MAX + 1];
    size_t n_batches;         /* per epoch */
    int32_t *plan;            /* (n_slots) items of the cached epoch, batch after batch */
    size_t *plan_start;       /* (n_batches + 1) */
    int32_t *tmp;             /* (n_slots + n_batches) scratch of the plan */
    int64_t plan_epoch;
    uint64_t plan_seed;
    int has_masks;            /* some item has a mask */
    uint64_t hash;            /* ss_dataset_hash */
} it_dataset;

/* 64-bit hash of n bytes (xxHash64-style rounds + murmur finaliser):
 * content hashes, cache keys, checksums. h: the previous hash or a seed. */
uint64_t it_hash64(uint64_t h, const void *p, size_t n);

it_status it_dataset_open_opts(it_err *err, it_dataset *ds, const it_ds_opts *o);
/* it_dataset_open_opts with defaults: dir, 512, no buckets, batch 1. */
it_status it_dataset_open(it_err *err, it_dataset *ds, const char *dir);
void it_dataset_free(it_dataset *ds);

/* Items of micro-batch m (0, 1, 2, ... over all epochs) into items
 * (opts.batch entries); returns how many (the last batch of a bucket may
 * be short). All share one bucket. */
int it_dataset_batch(it_dataset *ds, uint64_t seed, uint64_t m, int32_t *items);

/* Geometry of draw g (= m * batch + i) of item: its bucket, cover size, crop
 * offset (centre, or random from (seed, g)), flip (when flip is on, from
 * (seed, g) with probability 1/2). */
void it_dataset_crop(const it_dataset *ds, size_t item, uint64_t seed, uint64_t g, int flip,
                     it_ds_crop *out);

/* The training caption of item for draw number g: tags after the first
 * keep_tokens shuffled when shuffle, "" with probability dropout. */
void it_dataset_caption(const it_dataset *ds, size_t item, uint64_t seed, uint64_t g, int shuffle,
                        int keep_tokens, float dropout, char *out, size_t n);

/* out: (3, bh, bw) floats in [-1, 1]: the crop of the cover-resized image
 * (Lanczos straight from the source region: one resampling). */
it_status it_dataset_image_crop(it_err *err, const it_dataset *ds, size_t item, const it_ds_crop *cr,
                                float *out);
/* Square res x res centre crop (evaluation, tests). out: (3, res, res). */
it_status it_dataset_image(it_err *err, const it_dataset *ds, size_t item, int res, int flip,
                           float *out);

/* Loss weights of draw cr at latent scale: out (bh / f, bw / f) in [0, 1],
 * the mask resized/cropped/flipped like the image then averaged over f x f
 * blocks (torch's interpolate mode "area", what kohya does). All ones when
 * the item has no mask. Errors name the mask file. */
it_status it_dataset_mask(it_err *err, const it_dataset *ds, size_t item, const it_ds_crop *cr, int f,
                          float *out);

#endif
