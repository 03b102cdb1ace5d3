/* latent_cache.c: latents in a memory table and in checksummed files. */
#include "train/latent_cache.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "train/dataset.h"

#define MAGIC "ITLATv1\n"
#define HEADER (8 + sizeof(it_latent_key) + 16) /* magic, key, count, checksum */

struct it_latent_entry {
    uint64_t h;           /* 0 = empty slot */
    it_latent_key k;
    float *data;
    size_t n;
};

static uint64_t key_hash(const it_latent_key *k)
{
    uint64_t h = it_hash64(0x6c6174656e74ull, k, sizeof *k);
    return h ? h : 1;
}

it_status it_latent_cache_open(it_err *err, it_latent_cache *lc, const char *dir)
{
    memset(lc, 0, sizeof *lc);
    if (dir && dir[0]) {
        if (snprintf(lc->dir, sizeof lc->dir, "%s", dir) >= (int)sizeof lc->dir)
            return it_err_set(err, IT_ERR_RANGE, "latent cache: %s: path too long", dir);
        IT_TRY(it_mkdir_p(err, dir));
    }
    return IT_OK;
}

void it_latent_cache_free(it_latent_cache *lc)
{
    for (size_t i = 0; i < lc->cap; i++) it_free(lc->tab[i].data);
    it_free(lc->tab);
    memset(lc, 0, sizeof *lc);
}

void it_latent_cache_path(const it_latent_cache *lc, const it_latent_key *k, char *out, size_t n)
{
    snprintf(out, n, "%s/%016" PRIx64 ".lat", lc->dir, key_hash(k));
}

/* ------------------------------------------------------------ memory */

static it_latent_entry *find_slot(const it_latent_cache *lc, const it_latent_key *k, uint64_t h)
{
    if (!lc->cap) return NULL;
    for (size_t i = h & (lc->cap - 1);; i = (i + 1) & (lc->cap - 1)) {
        it_latent_entry *e = &lc->tab[i];
        if (!e->h || (e->h == h && !memcmp(&e->k, k, sizeof *k))) return e;
    }
}

static it_status grow(it_err *err, it_latent_cache *lc)
{
    size_t cap = lc->cap ? lc->cap * 2 : 64;
    it_latent_entry *old = lc->tab, *tab = it_calloc(cap, sizeof *tab);
    if (!tab) return it_err_set(err, IT_ERR_NOMEM, "latent cache: out of memory");
    size_t old_cap = lc->cap;
    lc->tab = tab, lc->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].h) *find_slot(lc, &old[i].k, old[i].h) = old[i];
    it_free(old);
    return IT_OK;
}

static it_status mem_put(it_err *err, it_latent_cache *lc, const it_latent_key *k, const float *data, size_t n)
{
    if (2 * (lc->n + 1) > lc->cap) IT_TRY(grow(err, lc));
    uint64_t h = key_hash(k);
    it_latent_entry *e = find_slot(lc, k, h);
    if (e->h) return IT_OK;
    float *copy = it_malloc(n * sizeof(float));
    if (!copy) return it_err_set(err, IT_ERR_NOMEM, "latent cache: out of memory (%zu latents)", lc->n);
    memcpy(copy, data, n * sizeof(float));
    *e = (it_latent_entry){h, *k, copy, n};
    lc->n++;
    return IT_OK;
}

/* ------------------------------------------------------------ disk */

/* 1 when path holds k's n floats (copied to out); 0 when missing; -1 when
 * the file is there but unusable (reason in why). */
static int disk_read(const char *path, const it_latent_key *k, float *out, size_t n, char *why, size_t nw)
{
    if (!it_file_exists(path)) return 0;
    uint8_t *data = NULL;
    size_t size = 0;
    it_err e;
    if (it_file_read(&e, &data, &size, path, HEADER + n * sizeof(float) + 1)) {
        snprintf(why, nw, "%.200s", e.msg);
        return -1;
    }
    int ok = -1;
    uint64_t count, sum;
    if (size != HEADER + n * sizeof(float)) {
        snprintf(why, nw, "%zu bytes, expected %zu", size, HEADER + n * sizeof(float));
    } else if (memcmp(data, MAGIC, 8)) {
        snprintf(why, nw, "not a latent cache file");
    } else if (memcmp(data + 8, k, sizeof *k)) {
        snprintf(why, nw, "made for another image, crop or VAE");
    } else {
        memcpy(&count, data + 8 + sizeof *k, 8);
        memcpy(&sum, data + 16 + sizeof *k, 8);
        if (count != n) snprintf(why, nw, "holds %" PRIu64 " values, expected %zu", count, n);
        else if (sum != it_hash64(0, data + HEADER, n * sizeof(float))) snprintf(why, nw, "checksum mismatch");
        else memcpy(out, data + HEADER, n * sizeof(float)), ok = 1;
    }
    it_free(data);
    return ok;
}

static it_status disk_write(it_err *err, const char *path, const it_latent_key *k, const float *data, size_t n)
{
    size_t size = HEADER + n * sizeof(float);
    uint8_t *buf = it_malloc(size);
    if (!buf) return it_err_set(err, IT_ERR_NOMEM, "latent cache: out of memory");
    uint64_t count = n, sum = it_hash64(0, data, n * sizeof(float));
    memcpy(buf, MAGIC, 8);
    memcpy(buf + 8, k, sizeof *k);
    memcpy(buf + 8 + sizeof *k, &count, 8);
    memcpy(buf + 16 + sizeof *k, &sum, 8);
    memcpy(buf + HEADER, data, n * sizeof(float));
    it_status s = it_file_write_atomic(err, path, buf, size);
    it_free(buf);
    return s;
}

int it_latent_cache_get(it_latent_cache *lc, const it_latent_key *k, float *out, size_t n)
{
    it_latent_entry *e = find_slot(lc, k, key_hash(k));
    if (e && e->h && e->n == n) {
        memcpy(out, e->data, n * sizeof(float));
        lc->hits_mem++;
        return 1;
    }
    if (lc->dir[0]) {
        char path[1100], why[256];
        it_latent_cache_path(lc, k, path, sizeof path);
        int r = disk_read(path, k, out, n, why, sizeof why);
        if (r > 0) {
            lc->hits_disk++;
            it_err ignore;
            mem_put(&ignore, lc, k, out, n); /* memory is only a speed-up */
            return 1;
        }
        if (r < 0) {
            it_log(IT_LOG_WARN, "latent cache: %s: %s; recomputing", path, why);
            lc->corrupt++;
        }
    }
    lc->misses++;
    return 0;
}

it_status it_latent_cache_put(it_err *err, it_latent_cache *lc, const it_latent_key *k,
                              const float *data, size_t n)
{
    IT_TRY(mem_put(err, lc, k, data, n));
    if (!lc->dir[0]) return IT_OK;
    char path[1100];
    it_latent_cache_path(lc, k, path, sizeof path);
    return disk_write(err, path, k, data, n);
}

/* ------------------------------------------------------------ VAE identity */

uint64_t it_latent_vae_id(const it_vae *vae)
{
    const it_params *ps = &vae->params;
    const it_vae_config *c = &vae->cfg;
    float f[2] = {c->scaling_factor, c->shift_factor};
    int32_t i[4] = {c->n_levels, c->latent_channels, c->in_channels, (int32_t)ps->n};
    uint64_t h = it_hash64(0x766165ull, f, sizeof f);
    h = it_hash64(h, i, sizeof i);
    if (ps->data) h = it_hash64(h, ps->data, ps->n_floats * sizeof(float));
    /* f16 weights live in their own block; hash each tensor's storage */
    for (size_t t = 0; ps->h16 && t < ps->n; t++)
        if (ps->h16[t]) h = it_hash64(h, ps->h16[t], (size_t)ps->items[t]->n * sizeof(uint16_t));
    return h;
}
