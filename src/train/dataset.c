/* dataset.c: folder scan (kohya repeats), epoch order, captions, images. */
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

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = it_malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

static int is_image(const char *name)
{
    const char *e = it_path_ext(name);
    return !strcasecmp(e, "png") || !strcasecmp(e, "jpg") || !strcasecmp(e, "jpeg") || !strcasecmp(e, "webp");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static it_status read_caption(it_err *err, const char *img_path, char **out)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", img_path);
    char *dot = strrchr(p, '.');
    if (dot) *dot = 0;
    strncat(p, ".txt", sizeof p - strlen(p) - 1);
    uint8_t *data = NULL;
    size_t n = 0;
    if (!it_file_exists(p)) {
        *out = dup_str("");
    } else {
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

static it_status add_item(it_err *err, it_dataset *ds, const char *path, int repeats)
{
    if (ds->n == ds->cap) {
        size_t cap = ds->cap ? ds->cap * 2 : 64;
        it_ds_item *ni = it_calloc(cap, sizeof *ni);
        if (!ni) return it_err_set(err, IT_ERR_NOMEM, "dataset: out of memory");
        if (ds->items) memcpy(ni, ds->items, ds->n * sizeof *ni);
        it_free(ds->items);
        ds->items = ni, ds->cap = cap;
    }
    it_ds_item *it = &ds->items[ds->n];
    it->path = dup_str(path);
    it->repeats = repeats;
    if (!it->path) return it_err_set(err, IT_ERR_NOMEM, "dataset: out of memory");
    ds->n++;
    IT_TRY(read_caption(err, path, &it->caption));
    ds->hash = fnv(ds->hash, it->path + 0, strlen(it->path));
    ds->hash = fnv(ds->hash, it->caption, strlen(it->caption) + 1);
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
            it_free(v);
            v = nv, cap *= 2;
            if (!v) break;
        }
        v[k++] = dup_str(e->d_name);
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

static it_status scan(it_err *err, it_dataset *ds, const char *dir, int repeats, int depth)
{
    char **names = NULL;
    size_t n = 0;
    IT_TRY(list_dir(err, dir, &names, &n));
    it_status s = IT_OK;
    char p[4096];
    for (size_t i = 0; !s && i < n; i++) {
        if (snprintf(p, sizeof p, "%s/%s", dir, names[i]) >= (int)sizeof p) continue;
        if (it_is_dir(p)) {
            /* kohya: "N_name" repeats every image N times */
            char *end;
            long r = strtol(names[i], &end, 10);
            if (depth == 0 && end != names[i] && *end == '_' && r > 0 && r <= 10000)
                s = scan(err, ds, p, (int)r, 1);
        } else if (is_image(names[i])) {
            s = add_item(err, ds, p, repeats);
        }
    }
    free_list(names, n);
    return s;
}

it_status it_dataset_open(it_err *err, it_dataset *ds, const char *dir)
{
    memset(ds, 0, sizeof *ds);
    ds->hash = 0xcbf29ce484222325ull;
    ds->perm_epoch = -1;
    it_status s = scan(err, ds, dir, 1, 0);
    if (!s && ds->n == 0)
        s = it_err_set(err, IT_ERR_NOT_FOUND, "%s: no images (png, jpg, webp) in the folder or its N_name/ subfolders", dir);
    for (size_t i = 0; !s && i < ds->n; i++) ds->n_slots += (size_t)ds->items[i].repeats;
    if (!s) {
        ds->slot_item = it_malloc(ds->n_slots * sizeof(int32_t));
        ds->perm = it_malloc(ds->n_slots * sizeof(int32_t));
        if (!ds->slot_item || !ds->perm) s = it_err_set(err, IT_ERR_NOMEM, "dataset: out of memory");
    }
    if (!s) {
        size_t k = 0;
        for (size_t i = 0; i < ds->n; i++)
            for (int r = 0; r < ds->items[i].repeats; r++) ds->slot_item[k++] = (int32_t)i;
    }
    if (s) it_dataset_free(ds);
    return s;
}

void it_dataset_free(it_dataset *ds)
{
    for (size_t i = 0; i < ds->n; i++) {
        it_free(ds->items[i].path);
        it_free(ds->items[i].caption);
    }
    it_free(ds->items);
    it_free(ds->slot_item);
    it_free(ds->perm);
    memset(ds, 0, sizeof *ds);
}

size_t it_dataset_pick(it_dataset *ds, uint64_t seed, uint64_t g)
{
    int64_t epoch = (int64_t)(g / ds->n_slots);
    if (epoch != ds->perm_epoch) {
        for (size_t i = 0; i < ds->n_slots; i++) ds->perm[i] = (int32_t)i;
        it_rng r;
        it_rng_init(&r, seed ^ 0x65706f6368ull ^ ((uint64_t)epoch * 0x9E3779B97F4A7C15ull));
        it_rng_shuffle_i32(&r, ds->perm, ds->n_slots);
        ds->perm_epoch = epoch;
    }
    return (size_t)ds->slot_item[ds->perm[g % ds->n_slots]];
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
    for (char *tok = strtok(buf, ","); tok && nt < 256; tok = strtok(NULL, ",")) {
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

it_status it_dataset_image(it_err *err, const it_dataset *ds, size_t item, int res, int flip,
                           float *out)
{
    it_image img = {0}, rgb = {0}, sized = {0};
    const char *path = ds->items[item].path;
    it_status s = it_image_load(err, &img, path);
    if (!s) s = it_image_convert(err, &rgb, &img, 3, NULL);
    if (!s) {
        /* resize so the shorter side is res, then centre crop (no distortion) */
        double f = (double)res / (img.w < img.h ? img.w : img.h);
        int w = (int)(img.w * f + 0.5), h = (int)(img.h * f + 0.5);
        if (w < res) w = res;
        if (h < res) h = res;
        float box[4] = {0, 0, (float)img.w, (float)img.h};
        float cw = (float)(res / f), ch = (float)(res / f);
        box[0] = ((float)img.w - cw) / 2, box[2] = box[0] + cw;
        box[1] = ((float)img.h - ch) / 2, box[3] = box[1] + ch;
        s = it_image_resize_box(err, &sized, &rgb, res, res, IT_RESAMPLE_LANCZOS, box);
    }
    if (!s) {
        if (flip) it_image_flip_h(&sized);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < res * res; i++)
                out[(size_t)c * res * res + i] = sized.data[(size_t)i * 3 + c] / 127.5f - 1.0f;
    }
    it_image_free(&img);
    it_image_free(&rgb);
    it_image_free(&sized);
    return s;
}
