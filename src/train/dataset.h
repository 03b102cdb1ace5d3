/* dataset.h: training images and captions on disk, as kohya lays them out.
 *
 * Owns: scanning a folder of images (png, jpg, jpeg, webp) with same-named
 * .txt captions, directly or in kohya's "N_name/" subfolders (each image
 * repeated N times per epoch); the per-epoch order (a permutation drawn from
 * (seed, epoch), so any sample position is a pure function of the seed and
 * the step: resuming needs only the step); caption shuffling of the
 * comma-separated tags after the first keep_tokens (the trigger stays first)
 * and caption dropout; image preparation (resize to cover the resolution
 * with Lanczos, centre crop, optional horizontal flip, [-1, 1] CHW floats).
 * Does not own latents or the text encoder (trainer.h).
 * Missing (see docs/TRAINING.md): aspect-ratio buckets, masks,
 * regularisation images, the on-disk latent cache. */
#ifndef IT_DATASET_H
#define IT_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct it_ds_item {
    char *path;           /* image file */
    char *caption;        /* from NAME.txt, trimmed; "" when absent */
    int repeats;
} it_ds_item;

typedef struct it_dataset {
    it_ds_item *items;
    size_t n, cap;
    size_t n_slots;       /* sum of repeats: samples per epoch */
    int32_t *slot_item;   /* (n_slots) slot -> item */
    uint64_t hash;        /* FNV-1a over paths, captions and image bytes' sizes (ss metadata) */
    int32_t *perm;        /* cached permutation of perm_epoch */
    int64_t perm_epoch;
} it_dataset;

it_status it_dataset_open(it_err *err, it_dataset *ds, const char *dir);
void it_dataset_free(it_dataset *ds);

/* Item of global sample index g (0, 1, 2, ... over all epochs). */
size_t it_dataset_pick(it_dataset *ds, uint64_t seed, uint64_t g);

/* The training caption of item for draw number g: tags after the first
 * keep_tokens shuffled when shuffle, "" with probability dropout. */
void it_dataset_caption(const it_dataset *ds, size_t item, uint64_t seed, uint64_t g, int shuffle,
                        int keep_tokens, float dropout, char *out, size_t n);

/* out: (3, res, res) floats in [-1, 1]. */
it_status it_dataset_image(it_err *err, const it_dataset *ds, size_t item, int res, int flip,
                           float *out);

#endif
