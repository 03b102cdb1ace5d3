/* dataset.c: folder scan (kohya repeats, reg images, masks), buckets, the
 * epoch batch plan, captions, image and mask crops. */
#include "train/dataset.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "image/geom.h"
#include "image/image.h"
#include "image/resize.h"

#define MAX_FILE_BYTES ((size_t)1 << 28)

/* ------------------------------------------------------------ hashing */

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

uint64_t it_hash64(uint64_t h, const void *p, size_t n)
{
    const uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full;
    const uint8_t *b = p;
    h ^= (uint64_t)n * P1;
    for (; n >= 8; b += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        h = rotl64(h + w * P2, 31) * P1;
    }
    uint64_t w = 0;
    memcpy(&w, b, n);
    h = rotl64(h + (w ^ ((uint64_t)n << 56)) * P2, 31) * P1;
    h ^= h >> 33, h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33, h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

/* ------------------------------------------------------------ scanning */

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = it_malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

/* "a.mask.png" is a mask: true when the name before the extension ends in ".mask". */
static int is_mask_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && dot - name >= 5 && !strncmp(dot - 5, ".mask", 5);
}

static int is_image(const char *name)
{
    const char *e = it_path_ext(name);
    return (!strcasecmp(e, "png") || !strcasecmp(e, "jpg") || !strcasecmp(e, "jpeg") || !strcasecmp(e, "webp")) &&
           !is_mask_name(name);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* path without its extension into out. */
static void stem_of(char *out, size_t n, const char *path)
{
    snprintf(out, n, "%s", path);
    char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
    if (dot && (!slash || dot > slash)) *dot = 0;
}

/* The caption: NAME.txt (trimmed, newlines to spaces), else fallback. */
static it_status read_caption(it_err *err, const char *img_path, const char *fallback, char **out)
{
    char p[4096];
    stem_of(p, sizeof p - 4, img_path);
    strcat(p, ".txt");
    if (!it_file_exists(p)) {
        *out = dup_str(fallback);
    } else {
        uint8_t *data = NULL;
        size_t n = 0;
        IT_TRY(it_file_read(err, &data, &n, p, 1 << 20));
        char *s = (char *)data;
        while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
        size_t k = 0;
        while (s[k] && isspace((unsigned char)s[k])) k++;
        for (char *c = s; *c; c++)
            if (*c == '\n' || *c == '\r') *c = ' ';
        *out = dup_str(s + k);
        it_free(data);
    }
    return *out ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "dataset: out of memory");
}

/* Reads a file, probes it as an image: size after EXIF orientation and a
 * hash of its bytes (folded into *h). */
static it_status probe_file(it_err *err, const char *path, int *w, int *h, uint64_t *hash)
{
    uint8_t *data = NULL;
    size_t n = 0;
    IT_TRY(it_file_read(err, &data, &n, path, MAX_FILE_BYTES));
    it_image_info info;
    it_err e2;
    it_status s = it_image_probe(&e2, &info, data, n);
    if (s) it_err_set(err, s, "%s: not a readable image (%s)", path, e2.msg);
    else {
        int swap = info.exif_orientation >= 5;
        *w = swap ? info.h : info.w, *h = swap ? info.w : info.h;
        *hash = it_hash64(*hash, data, n);
    }
    it_free(data);
    return s;
}

/* The mask of img_path, if there is one: DIR/STEM.png or DIR/STEM.mask.png
 * under mask_dir, else STEM.mask.png beside the image. */
static int find_mask(const it_ds_opts *o, const char *img_path, char *out, size_t n)
{
    char stem[4096];
    stem_of(stem, sizeof stem, img_path);
    if (o->mask_dir) {
        const char *base = it_path_basename(stem);
        snprintf(out, n, "%s/%s.png", o->mask_dir, base);
        if (it_file_exists(out)) return 1;
        snprintf(out, n, "%s/%s.mask.png", o->mask_dir, base);
        return it_file_exists(out);
    }
    if (snprintf(out, n, "%s.mask.png", stem) >= (int)n) return 0;
    return it_file_exists(out);
}

static it_status grow_items(it_err *err, it_dataset *ds)
{
    if (ds->n < ds->cap) return IT_OK;
    size_t cap = ds->cap ? ds->cap * 2 : 64;
    it_ds_item *ni = it_calloc(cap, sizeof *ni);
    if (!ni) return it_err_set(err, IT_ERR_NOMEM, "dataset: out of memory");
    if (ds->items) memcpy(ni, ds->items, ds->n * sizeof *ni);
    it_free(ds->items);
    ds->items = ni, ds->cap = cap;
    return IT_OK;
}

static it_status add_item(it_err *err, it_dataset *ds, const char *path, int repeats, int reg,
                          const char *fallback_caption)
{
    IT_TRY(grow_items(err, ds));
    it_ds_item *it = &ds->items[ds->n];
    memset(it, 0, sizeof *it);
    it->path = dup_str(path);
    it->repeats = repeats, it->reg = reg;
    if (!it->path) return it_err_set(err, IT_ERR_NOMEM, "dataset: out of memory");
    ds->n++;
    IT_TRY(read_caption(err, path, fallback_caption, &it->caption));
    it->content = 0x6974696d67ull;
    IT_TRY(probe_file(err, path, &it->w, &it->h, &it->content));
    char mp[4096];
    if (ds->opts.masked_loss && !reg && find_mask(&ds->opts, path, mp, sizeof mp)) {
        int mw, mh;
        it->mask_path = dup_str(mp);
        if (!it->mask_path) return it_err_set(err, IT_ERR_NOMEM, "dataset: out of memory");
        IT_TRY(probe_file(err, mp, &mw, &mh, &it->content));
        if (mw != it->w || mh != it->h)
            return it_err_set(err, IT_ERR_FORMAT, "%s: mask is %dx%d but its image %s is %dx%d", mp, mw, mh,
                              path, it->w, it->h);
        ds->has_masks = 1;
    }
    return IT_OK;
}

/* Sorted entries of dir (so the order never depends on the file system). */
static it_status list_dir(it_err *err, const char *dir, char ***names, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d) return it_err_set(err, IT_ERR_IO, "%s: cannot open the data folder", dir);
    size_t cap = 64, k = 0;
    char **v = it_malloc(cap * sizeof *v);
    struct dirent *e;
    while (v && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (k == cap) {
            char **nv = it_malloc(2 * cap * sizeof *nv);
            if (nv) memcpy(nv, v, k * sizeof *v);
            else
                for (size_t i = 0; i < k; i++) it_free(v[i]);
            it_free(v);
            v = nv, cap *= 2;
            if (!v) break;
        }
        if (!(v[k] = dup_str(e->d_name))) {
            for (size_t i = 0; i < k; i++) it_free(v[i]);
            it_free(v);
            v = NULL;
            break;
        }
        k++;
    }
    closedir(d);
    if (!v) return it_err_set(err, IT_ERR_NOMEM, "dataset: out of memory");
    qsort(v, k, sizeof *v, cmp_str);
    *names = v, *n = k;
    return IT_OK;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) it_free(v[i]);
    it_free(v);
}

/* Images of dir; at depth 0 also kohya's "N_name" subfolders (N repeats,
 * "name" the caption of their images without a .txt). */
static it_status scan(it_err *err, it_dataset *ds, const char *dir, int repeats, int depth, int reg,
                      const char *fallback)
{
    char **names = NULL;
    size_t n = 0;
    IT_TRY(list_dir(err, dir, &names, &n));
    it_status s = IT_OK;
    char p[4096];
    for (size_t i = 0; !s && i < n; i++) {
        if (snprintf(p, sizeof p, "%s/%s", dir, names[i]) >= (int)sizeof p) continue;
        if (it_is_dir(p)) {
            char *end;
            long r = strtol(names[i], &end, 10);
            if (depth == 0 && end != names[i] && *end == '_' && r > 0 && r <= 10000)
                s = scan(err, ds, p, (int)r, 1, reg, end + 1);
        } else if (is_image(names[i])) {
            s = add_item(err, ds, p, repeats, reg, fallback);
        }
    }
    free_list(names, n);
    return s;
}

/* kohya's DreamBoothDataset: reg samples per epoch = training samples.
 * The first pass takes reg images with their own repeats until there are
 * enough; later passes add one repeat to each in turn. */
static void reg_repeats(it_dataset *ds, size_t n_train_slots)
{
    it_ds_item *reg = ds->items + ds->n_train;
    size_t got = 0;
    if (!ds->n_reg) return;
    for (size_t i = 0; i < ds->n_reg; i++) {
        int r = reg[i].repeats;
        reg[i].repeats = 0;
        if (got < n_train_slots) reg[i].repeats = r, got += (size_t)r;
    }
    while (got < n_train_slots)
        for (size_t i = 0; i < ds->n_reg && got < n_train_slots; i++) reg[i].repeats++, got++;
}

/* ------------------------------------------------------------ buckets, plan */

static it_status setup_buckets(it_err *err, it_dataset *ds)
{
    const it_ds_opts *o = &ds->opts;
    int res = o->resolution;
    if (o->buckets) {
        int lo = o->min_side ? o->min_side : res / 2, hi = o->max_side ? o->max_side : res * 2;
        IT_TRY(it_buckets_make(err, ds->buckets, &ds->n_buckets, res, lo, hi, o->step));
    } else {
        ds->buckets[0] = (it_bucket){res, res};
        ds->n_buckets = 1;
    }
    for (size_t i = 0; i < ds->n; i++)
        ds->items[i].bucket = it_bucket_select(ds->buckets, ds->n_buckets, ds->items[i].w, ds->items[i].h);
    return IT_OK;
}

/* Slots grouped by bucket (item order within a bucket) and batches per epoch. */
static it_status setup_slots(it_err *err, it_dataset *ds)
{
    size_t count[IT_BUCKET_MAX] = {0};
    for (size_t i = 0; i < ds->n; i++) {
        ds->n_slots += (size_t)ds->items[i].repeats;
        count[ds->items[i].bucket] += (size_t)ds->items[i].repeats;
    }
    size_t B = (size_t)ds->opts.batch;
    ds->bucket_start[0] = 0;
    for (int b = 0; b < ds->n_buckets; b++) {
        ds->bucket_start[b + 1] = ds->bucket_start[b] + count[b];
        ds->n_batches += (count[b] + B - 1) / B;
    }
    ds->bucket_slots = it_malloc(ds->n_slots * sizeof(int32_t));
    ds->plan = it_malloc(ds->n_slots * sizeof(int32_t));
    ds->tmp = it_malloc((ds->n_slots + ds->n_batches) * sizeof(int32_t));
    ds->plan_start = it_malloc((ds->n_batches + 1) * sizeof(size_t));
    if (!ds->bucket_slots || !ds->plan || !ds->tmp || !ds->plan_start)
        return it_err_set(err, IT_ERR_NOMEM, "dataset: out of memory (%zu samples)", ds->n_slots);
    size_t fill[IT_BUCKET_MAX];
    memcpy(fill, ds->bucket_start, sizeof fill);
    for (size_t i = 0; i < ds->n; i++)
        for (int r = 0; r < ds->items[i].repeats; r++) ds->bucket_slots[fill[ds->items[i].bucket]++] = (int32_t)i;
    return IT_OK;
}

/* The plan of one epoch: each bucket's samples shuffled and cut into
 * batches (kohya's BucketManager.shuffle + batching), then the batches
 * shuffled. Depends only on (seed, epoch). */
static void make_plan(it_dataset *ds, uint64_t seed, int64_t epoch)
{
    it_rng r;
    it_rng_init(&r, seed ^ 0x65706f6368ull ^ ((uint64_t)epoch * 0x9E3779B97F4A7C15ull));
    size_t B = (size_t)ds->opts.batch, nb = 0;
    int32_t *slots = ds->tmp, *order = ds->tmp + ds->n_slots;
    memcpy(slots, ds->bucket_slots, ds->n_slots * sizeof(int32_t));
    size_t *start = ds->plan_start; /* batch k's offset in slots, before the batch shuffle */
    for (int b = 0; b < ds->n_buckets; b++) {
        size_t s0 = ds->bucket_start[b], n = ds->bucket_start[b + 1] - s0;
        it_rng_shuffle_i32(&r, slots + s0, n);
        for (size_t k = 0; k < n; k += B) start[nb++] = s0 + k;
    }
    for (size_t k = 0; k < nb; k++) order[k] = (int32_t)k;
    it_rng_shuffle_i32(&r, order, nb);
    /* batch k of bucket b ends where the next batch of b begins, or at the bucket's end */
    size_t pos = 0;
    int32_t *out = ds->plan;
    for (size_t k = 0; k < nb; k++) {
        size_t s = start[order[k]], be = ds->bucket_start[ds->items[slots[s]].bucket + 1];
        size_t e = s + B < be ? s + B : be;
        memcpy(out + pos, slots + s, (e - s) * sizeof(int32_t));
        order[k] = (int32_t)pos; /* reuse: the batch's offset in the plan */
        pos += e - s;
    }
    for (size_t k = 0; k < nb; k++) start[k] = (size_t)order[k];
    start[nb] = pos;
    ds->plan_epoch = epoch, ds->plan_seed = seed;
}

int it_dataset_batch(it_dataset *ds, uint64_t seed, uint64_t m, int32_t *items)
{
    int64_t epoch = (int64_t)(m / ds->n_batches);
    if (epoch != ds->plan_epoch || seed != ds->plan_seed) make_plan(ds, seed, epoch);
    size_t k = m % ds->n_batches, s = ds->plan_start[k], e = ds->plan_start[k + 1];
    memcpy(items, ds->plan + s, (e - s) * sizeof(int32_t));
    return (int)(e - s);
}

/* ------------------------------------------------------------ open */

void it_ds_opts_init(it_ds_opts *o)
{
    memset(o, 0, sizeof *o);
    o->resolution = 512, o->step = 64, o->batch = 1;
}

/* ss_dataset_hash: content, caption, repeats and kind of every item, in
 * the (sorted) scan order; no paths. */
static uint64_t dataset_hash(const it_dataset *ds)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < ds->n; i++) {
        const it_ds_item *it = &ds->items[i];
        uint64_t rec[3] = {it->content, (uint64_t)it->repeats, (uint64_t)it->reg};
        h = it_hash64(h, rec, sizeof rec);
        h = it_hash64(h, it->caption, strlen(it->caption));
    }
    return h;
}

it_status it_dataset_open_opts(it_err *err, it_dataset *ds, const it_ds_opts *o)
{
    memset(ds, 0, sizeof *ds);
    ds->opts = *o;
    ds->plan_epoch = -1;
    if (o->batch < 1 || o->resolution < 1 || o->step < 1)
        return it_err_set(err, IT_ERR_ARG, "dataset: batch, resolution and step must be positive");
    it_status s = scan(err, ds, o->dir, 1, 0, 0, "");
    ds->n_train = ds->n;
    if (!s && ds->n == 0)
        s = it_err_set(err, IT_ERR_NOT_FOUND, "%s: no images (png, jpg, webp) in the folder or its N_name/ subfolders", o->dir);
    if (!s && o->reg_dir) {
        s = scan(err, ds, o->reg_dir, 1, 0, 1, o->class_prompt ? o->class_prompt : "");
        ds->n_reg = ds->n - ds->n_train;
        if (!s && !ds->n_reg)
            s = it_err_set(err, IT_ERR_NOT_FOUND, "%s: no regularisation images in the folder or its N_name/ subfolders", o->reg_dir);
    }
    if (!s) {
        for (size_t i = 0; i < ds->n_train; i++) ds->n_train_slots += (size_t)ds->items[i].repeats;
        reg_repeats(ds, ds->n_train_slots);
        ds->hash = dataset_hash(ds);
        s = setup_buckets(err, ds);
    }
    if (!s) s = setup_slots(err, ds);
    if (s) it_dataset_free(ds);
    return s;
}

it_status it_dataset_open(it_err *err, it_dataset *ds, const char *dir)
{
    it_ds_opts o;
    it_ds_opts_init(&o);
    o.dir = dir;
    return it_dataset_open_opts(err, ds, &o);
}

void it_dataset_free(it_dataset *ds)
{
    for (size_t i = 0; i < ds->n; i++) {
        it_free(ds->items[i].path);
        it_free(ds->items[i].caption);
        it_free(ds->items[i].mask_path);
    }
    it_free(ds->items);
    it_free(ds->bucket_slots);
    it_free(ds->plan);
    it_free(ds->plan_start);
    it_free(ds->tmp);
    memset(ds, 0, sizeof *ds);
}

/* ------------------------------------------------------------ draws */

void it_dataset_crop(const it_dataset *ds, size_t item, uint64_t seed, uint64_t g, int flip,
                     it_ds_crop *out)
{
    const it_ds_item *it = &ds->items[item];
    it_bucket b = ds->buckets[it->bucket];
    out->bw = b.w, out->bh = b.h;
    it_bucket_cover(it->w, it->h, b, &out->rw, &out->rh);
    if (ds->opts.random_crop) {
        it_rng r;
        it_rng_init(&r, seed ^ 0x63726f70ull);
        r.offset = g << 8;
        out->x = (int)it_rng_below(&r, (uint64_t)(out->rw - b.w + 1));
        out->y = (int)it_rng_below(&r, (uint64_t)(out->rh - b.h + 1));
    } else {
        out->x = (out->rw - b.w) / 2, out->y = (out->rh - b.h) / 2;
    }
    out->flip = flip && it_rng_uniform_at(seed ^ 0x666c6970ull, g) < 0.5f;
}

void it_dataset_caption(const it_dataset *ds, size_t item, uint64_t seed, uint64_t g, int shuffle,
                        int keep_tokens, float dropout, char *out, size_t n)
{
    it_rng r;
    it_rng_init(&r, seed ^ 0x63617074ull);
    r.offset = g << 20;
    out[0] = 0;
    if (dropout > 0 && it_rng_float(&r) < dropout) return;
    const char *cap = ds->items[item].caption;
    if (!shuffle) {
        snprintf(out, n, "%s", cap);
        return;
    }
    /* split at commas, trim, shuffle tags[keep_tokens..] */
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", cap);
    char *tags[256];
    int nt = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok && nt < 256; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok)) tok++;
        char *e = tok + strlen(tok);
        while (e > tok && isspace((unsigned char)e[-1])) *--e = 0;
        if (*tok) tags[nt++] = tok;
    }
    int keep = keep_tokens < nt ? keep_tokens : nt;
    for (int i = nt - 1; i > keep; i--) {
        int j = keep + (int)it_rng_below(&r, (uint64_t)(i - keep + 1));
        char *t = tags[i];
        tags[i] = tags[j], tags[j] = t;
    }
    size_t len = 0;
    for (int i = 0; i < nt && len < n; i++)
        len += (size_t)snprintf(out + len, n - len, "%s%s", i ? ", " : "", tags[i]);
}

/* The crop's region in source pixels: resize to (rw, rh) then crop (x, y,
 * bw, bh), expressed as one box so the image is resampled once. */
static void crop_box(const it_ds_item *it, const it_ds_crop *cr, float box[4])
{
    double sx = (double)it->w / cr->rw, sy = (double)it->h / cr->rh;
    box[0] = (float)(cr->x * sx), box[2] = (float)((cr->x + cr->bw) * sx);
    box[1] = (float)(cr->y * sy), box[3] = (float)((cr->y + cr->bh) * sy);
}

/* Loads path as c channels, resampled to the crop (flipped if asked). */
static it_status load_cropped(it_err *err, const it_ds_item *it, const char *path, int c,
                              const it_ds_crop *cr, it_image *out)
{
    it_image img = {0}, conv = {0};
    it_status s = it_image_load(err, &img, path);
    if (!s && (img.w != it->w || img.h != it->h))
        s = it_err_set(err, IT_ERR_STATE, "%s: is now %dx%d, was %dx%d when the dataset was opened", path,
                       img.w, img.h, it->w, it->h);
    if (!s) s = it_image_convert(err, &conv, &img, c, NULL);
    if (!s) {
        float box[4];
        crop_box(it, cr, box);
        s = it_image_resize_box(err, out, &conv, cr->bw, cr->bh, IT_RESAMPLE_LANCZOS, box);
    }
    if (!s && cr->flip) it_image_flip_h(out);
    it_image_free(&img);
    it_image_free(&conv);
    return s;
}

it_status it_dataset_image_crop(it_err *err, const it_dataset *ds, size_t item, const it_ds_crop *cr,
                                float *out)
{
    it_image sized = {0};
    IT_TRY(load_cropped(err, &ds->items[item], ds->items[item].path, 3, cr, &sized));
    size_t hw = (size_t)cr->bw * (size_t)cr->bh;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < hw; i++) out[(size_t)c * hw + i] = sized.data[i * 3 + c] / 127.5f - 1.0f;
    it_image_free(&sized);
    return IT_OK;
}

it_status it_dataset_image(it_err *err, const it_dataset *ds, size_t item, int res, int flip,
                           float *out)
{
    const it_ds_item *it = &ds->items[item];
    it_ds_crop cr = {res, res, 0, 0, 0, 0, flip};
    it_bucket_cover(it->w, it->h, (it_bucket){res, res}, &cr.rw, &cr.rh);
    cr.x = (cr.rw - res) / 2, cr.y = (cr.rh - res) / 2;
    return it_dataset_image_crop(err, ds, item, &cr, out);
}

it_status it_dataset_mask(it_err *err, const it_dataset *ds, size_t item, const it_ds_crop *cr, int f,
                          float *out)
{
    const it_ds_item *it = &ds->items[item];
    int lw = cr->bw / f, lh = cr->bh / f;
    if (!it->mask_path) {
        for (int i = 0; i < lw * lh; i++) out[i] = 1.0f;
        return IT_OK;
    }
    it_image m = {0};
    IT_TRY(load_cropped(err, it, it->mask_path, 1, cr, &m));
    /* area interpolation by an integer factor = the mean of each f x f block */
    for (int y = 0; y < lh; y++)
        for (int x = 0; x < lw; x++) {
            unsigned sum = 0;
            for (int dy = 0; dy < f; dy++)
                for (int dx = 0; dx < f; dx++) sum += m.data[(size_t)(y * f + dy) * (size_t)m.w + (size_t)(x * f + dx)];
            out[y * lw + x] = (float)sum / (255.0f * (float)(f * f));
        }
    it_image_free(&m);
    return IT_OK;
}
