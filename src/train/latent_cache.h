/* latent_cache.h: VAE latents of training crops, kept in memory and on disk.
 *
 * Owns: the key of a cached latent (everything it depends on: a hash of
 * the image's bytes, the crop geometry - bucket, cover size, offset, flip -,
 * the latent shape and the VAE's identity, a hash of its loaded weights and
 * config), an in-memory table, and one file per key in a cache folder
 * (DIR/<16 hex digits>.lat: magic, the full key, the value count, a
 * checksum, the floats), written atomically. A file is used only when its
 * stored key equals the wanted one (stale entries are never used: a changed
 * image, crop or VAE has another key) and its size and checksum are right;
 * a corrupt file gives one warning naming it and counts as a miss, so the
 * caller recomputes and overwrites it. Does not own the VAE or the image
 * geometry (dataset.h, train_data.h). */
#ifndef IT_LATENT_CACHE_H
#define IT_LATENT_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "models/vae.h"

/* Fixed-size, padding-free: stored in files as is. */
typedef struct it_latent_key {
    uint64_t content;     /* it_ds_item.content: image (and mask) bytes */
    uint64_t vae;         /* it_latent_vae_id */
    int32_t bw, bh, rw, rh, x, y, flip;
    int32_t c, lh, lw;    /* latent shape */
} it_latent_key;

typedef struct it_latent_entry it_latent_entry;

typedef struct it_latent_cache {
    char dir[1024];       /* "" = memory only */
    it_latent_entry *tab; /* open addressing on the key's hash, (cap) */
    size_t n, cap;
    size_t hits_mem, hits_disk, misses, corrupt;
} it_latent_cache;

/* dir NULL or "": memory only; else created if missing. */
it_status it_latent_cache_open(it_err *err, it_latent_cache *lc, const char *dir);
void it_latent_cache_free(it_latent_cache *lc);

/* 1 when the n floats of k were found (memory, then disk) and copied to
 * out; 0 when absent, stale or corrupt (then recompute and put). */
int it_latent_cache_get(it_latent_cache *lc, const it_latent_key *k, float *out, size_t n);
/* Keeps a copy in memory and, with a folder, writes the file. */
it_status it_latent_cache_put(it_err *err, it_latent_cache *lc, const it_latent_key *k,
                              const float *data, size_t n);

/* Path of k's file (for tests and messages). */
void it_latent_cache_path(const it_latent_cache *lc, const it_latent_key *k, char *out, size_t n);

/* Identity of a VAE: a hash of every loaded weight (f32 and f16 blocks)
 * and of the config (scaling and shift factors, levels, channels). */
uint64_t it_latent_vae_id(const it_vae *vae);

#endif
