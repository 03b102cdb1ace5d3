/* judge_train.c: the toy judge's training loop, augmentation, checkpoints.
 *
 * Measurement only (see judge.h): the generative pipeline never calls this. */
#include "toy/judge_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "image/geom.h"
#include "base/rng.h"
#include "tensor/autograd.h"
#include "tensor/ops_gemm.h"
#include "tensor/ops_loss.h"
#include "tensor/ops_shape.h"
#include "tensor/ops_eltwise.h"
#include "tensor/optim.h"
#include "tensor/safetensors.h"
#include "toy/toydraw.h"

#define RENDER 128 /* training renders are 128x128, the toy world's default size */

void it_judge_train_defaults(it_judge_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->model = it_judge_default_config();
    o->seed = 1;
    o->steps = 3000;
    o->batch = 32;
    o->lr = 2e-3;
    o->weight_decay = 0.01;
    o->warmup = 100;
    o->p_character = 0.5f;
    o->out = "models/toy/judge.safetensors";
    o->checkpoint_every = 100;
    o->log_every = 10;
    o->eval_every = 500;
    o->eval_n = 512;
    o->eval_seed = 1000003;
    o->augment = 1;
    o->aux_layer = 0;
    o->aux_weight = 1.0;
}

/* ================================================================ augmentation */

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float urange(it_rng *r, float lo, float hi) { return lo + (hi - lo) * it_rng_float(r); }

static uint8_t clamp8(float v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrintf(v)); }

/* Brightness, contrast, saturation and a slight per-channel gain: what a
 * generator's colour drift looks like. Kept mild, because colour is what
 * several heads read (teal vs green bodies). */
static void colour_jitter(uint8_t *p, size_t n_px, it_rng *r)
{
    float bright = urange(r, -18, 18), contrast = urange(r, 0.85f, 1.15f), sat = urange(r, 0.8f, 1.2f);
    float gain[3] = {urange(r, 0.95f, 1.05f), urange(r, 0.95f, 1.05f), urange(r, 0.95f, 1.05f)};
    for (size_t i = 0; i < n_px; i++, p += 3) {
        float lum = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
        for (int c = 0; c < 3; c++) {
            float v = lum + (p[c] - lum) * sat;
            v = (v - 128.0f) * contrast + 128.0f + bright;
            p[c] = clamp8(v * gain[c]);
        }
    }
}


static it_status jpeg_round_trip(it_err *err, uint8_t *p, int w, int h, int quality)
{
    it_image in = {w, h, 3, p}, out = {0};
    uint8_t *buf = NULL;
    size_t n = 0;
    IT_TRY(it_image_encode_jpeg(err, &buf, &n, &in, quality));
    it_status st = it_image_decode(err, &out, buf, n);
    if (!st && (out.w != w || out.h != h || out.c != 3))
        st = it_err_set(err, IT_ERR_INTERNAL, "augment: JPEG round trip changed the image shape");
    if (!st) memcpy(p, out.data, (size_t)w * h * 3);
    it_image_free(&out);
    it_free(buf);
    return st;
}

/* Adds triangular noise (u1 + u2 - 1, variance 1/6) of standard deviation
 * sigma: as good as Gaussian here. The uniforms come from a 64-bit LCG
 * seeded from the image's counter RNG (two 16-bit uniforms per step): a
 * Philox draw per value cost more than the rest of the augmentation. */
static void add_noise(uint8_t *p, size_t n, float sigma, uint64_t state)
{
    const float k = sigma * 2.449490f / 65536.0f;
    for (size_t i = 0; i < n; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        int u = (int)(state >> 48) + (int)((state >> 32) & 0xFFFF) - 65535; /* u1 + u2 - 1, in 1/65536 */
        p[i] = clamp8((float)p[i] + k * (float)u);
    }
}

it_status it_judge_augment(it_err *err, uint8_t *rgb, int w, int h, uint64_t seed, uint64_t index, int input_size,
                           float *scale, float *dx, float *dy)
{
    it_rng r;
    it_rng_init(&r, mix64(seed ^ mix64(index + 0x1D6Eull)));
    size_t n_px = (size_t)w * h;
    if (it_rng_float(&r) < 0.8f) colour_jitter(rgb, n_px, &r);
    if (it_rng_float(&r) < 0.3f) IT_TRY(it_rgb8_blur(err, rgb, w, h, urange(&r, 0.4f, 1.2f)));
    if (it_rng_float(&r) < 0.5f) add_noise(rgb, n_px * 3, urange(&r, 1.0f, 8.0f), it_rng_u64(&r));
    if (it_rng_float(&r) < 0.3f) IT_TRY(jpeg_round_trip(err, rgb, w, h, 30 + (int)it_rng_below(&r, 61)));
    float s = urange(&r, 0.9f, 1.1f), m = 0.05f * (float)input_size;
    float x = urange(&r, -m, m), y = urange(&r, -m, m);
    if (scale) *scale = s;
    if (dx) *dx = x;
    if (dy) *dy = y;
    return IT_OK;
}

/* ================================================================ dense part supervision */

int it_judge_aux_part(int head)
{
    if (head == IT_JUDGE_HEAD_IDENTITY) return IT_TOY_PART_FACE;
    switch (head - 1) {
    case IT_TOY_BODY_SHAPE: case IT_TOY_BODY_COLOUR: return IT_TOY_PART_BODY;
    case IT_TOY_EYE_COUNT: case IT_TOY_GOGGLES: case IT_TOY_MOUTH: case IT_TOY_MARKING: return IT_TOY_PART_FACE;
    case IT_TOY_HAIR_STYLE: case IT_TOY_HAIR_COLOUR: return IT_TOY_PART_HAIR;
    case IT_TOY_HAT: case IT_TOY_HAT_COLOUR: return IT_TOY_PART_HAT;
    case IT_TOY_OUTFIT: case IT_TOY_OUTFIT_COLOUR: case IT_TOY_OUTFIT_PATTERN: return IT_TOY_PART_OUTFIT;
    case IT_TOY_ACCESSORY: case IT_TOY_ACCESSORY_COLOUR: return IT_TOY_PART_ACCESSORY;
    default: return -1; /* pose, background: read from the whole image, and already learned */
    }
}

/* Where a head looks when its part is absent (no hat: the face says "none"). */
static int aux_fallback(int part) { return part == IT_TOY_PART_OUTFIT ? IT_TOY_PART_BODY : IT_TOY_PART_FACE; }

typedef struct aux_head {
    int layer;        /* 0-based conv layer whose grid is supervised; -1 = off */
    int grid, chans;  /* its side and channels */
    it_tensor p[2];   /* "aux.weight" (total classes, chans), "aux.bias" */
    float *data, *grad;
    int32_t *ids[IT_JUDGE_N_HEADS], *lab[IT_JUDGE_N_HEADS]; /* per head: cells (b * G * G + cell) and classes */
    int n[IT_JUDGE_N_HEADS];
} aux_head;

static void aux_free(aux_head *a)
{
    it_free(a->data);
    it_free(a->grad);
    for (int h = 0; h < IT_JUDGE_N_HEADS; h++) {
        it_free(a->ids[h]);
        it_free(a->lab[h]);
    }
    memset(a, 0, sizeof *a);
    a->layer = -1;
}

static it_status aux_init(it_err *err, aux_head *a, const it_judge *j, const it_judge_train_opts *o, uint64_t seed)
{
    memset(a, 0, sizeof *a);
    a->layer = -1;
    if (o->aux_layer <= 0) return IT_OK;
    int nc = it_judge_n_conv(&j->cfg);
    if (o->aux_layer > nc)
        return it_err_set(err, IT_ERR_ARG, "train-judge: --aux-layer %d but the network has %d conv layers", o->aux_layer, nc);
    a->layer = o->aux_layer - 1;
    a->grid = j->cfg.size;
    for (int i = 0; i <= a->layer; i++) a->grid /= j->cfg.stride[i];
    a->chans = j->cfg.width[a->layer];
    int T = it_judge_total_classes();
    int64_t nw = (int64_t)T * a->chans + T;
    size_t cells = (size_t)o->batch * a->grid * a->grid;
    a->data = it_calloc((size_t)nw, sizeof(float));
    a->grad = it_calloc((size_t)nw, sizeof(float));
    int ok = a->data && a->grad;
    for (int h = 0; ok && h < IT_JUDGE_N_HEADS; h++) {
        a->ids[h] = it_malloc(cells * sizeof(int32_t));
        a->lab[h] = it_malloc(cells * sizeof(int32_t));
        ok = a->ids[h] && a->lab[h];
    }
    if (!ok) return it_err_set(err, IT_ERR_NOMEM, "train-judge: out of memory for the dense supervision head");
    IT_TRY(it_tensor_init_param(err, &a->p[0], "aux.weight", a->data, a->grad, IT_SHAPE(T, a->chans)));
    IT_TRY(it_tensor_init_param(err, &a->p[1], "aux.bias", a->data + (int64_t)T * a->chans, a->grad + (int64_t)T * a->chans,
                                IT_SHAPE(T)));
    it_rng r;
    it_rng_init(&r, mix64(seed ^ 0xA0Aull));
    it_rng_normal(&r, a->data, (size_t)T * a->chans, 0.0f, 0.01f);
    return IT_OK;
}

/* Grid cells of image b whose centres lie inside box (render pixels) once
 * the image is scaled by s/RENDER and placed at (ox, oy) in the input; the
 * cell holding the box centre when none does (a box smaller than a cell). */
static void aux_cells(aux_head *a, int h, int b, const int *box, int S, float k, int ox, int oy, int32_t cls)
{
    int G = a->grid;
    float cell = (float)S / (float)G;
    float x0 = (float)ox + box[0] * k, x1 = (float)ox + box[2] * k, y0 = (float)oy + box[1] * k, y1 = (float)oy + box[3] * k;
    int before = a->n[h];
    for (int gy = 0; gy < G; gy++) {
        float cy = ((float)gy + 0.5f) * cell;
        if (cy < y0 || cy >= y1) continue;
        for (int gx = 0; gx < G; gx++) {
            float cx = ((float)gx + 0.5f) * cell;
            if (cx < x0 || cx >= x1) continue;
            a->ids[h][a->n[h]] = (int32_t)((b * G + gy) * G + gx);
            a->lab[h][a->n[h]++] = cls;
        }
    }
    if (a->n[h] == before) {
        int gx = (int)floorf((x0 + x1) * 0.5f / cell), gy = (int)floorf((y0 + y1) * 0.5f / cell);
        gx = gx < 0 ? 0 : gx >= G ? G - 1 : gx;
        gy = gy < 0 ? 0 : gy >= G ? G - 1 : gy;
        a->ids[h][a->n[h]] = (int32_t)((b * G + gy) * G + gx);
        a->lab[h][a->n[h]++] = cls;
    }
}

/* Fills the per-head cell lists of a batch from the part boxes and each
 * image's scale/shift (the same arithmetic as it_judge_input). */
static void aux_targets(aux_head *a, const it_toy_truth *truth, const int32_t *labels, const float *geo, int B, int S)
{
    for (int h = 0; h < IT_JUDGE_N_HEADS; h++) a->n[h] = 0;
    for (int b = 0; b < B; b++) {
        int s = (int)lrintf((float)S * geo[3 * b]);
        int ox = (int)lrintf((float)(S - s) * 0.5f + geo[3 * b + 1]), oy = (int)lrintf((float)(S - s) * 0.5f + geo[3 * b + 2]);
        float k = (float)s / (float)RENDER;
        const it_toy_truth *t = &truth[b];
        for (int h = 0; h < IT_JUDGE_N_HEADS; h++) {
            int part = it_judge_aux_part(h);
            if (part < 0) continue;
            if (t->pixels[part] <= 0) part = aux_fallback(part);
            if (t->pixels[part] <= 0) continue;
            aux_cells(a, h, b, t->box[part], S, k, ox, oy, labels[(size_t)b * IT_JUDGE_N_HEADS + h]);
        }
    }
}

/* Mean over the supervised heads of the cross-entropy of their cells. tap:
 * (B, C, G, G). correct (heads) receives each head's right cells and
 * cells (heads) their number, for the log. */
static it_tensor *aux_loss(it_ctx *ctx, aux_head *a, it_tensor *tap, int B, int *correct, int *cells)
{
    if (!tap) return NULL;
    int G = a->grid, C = a->chans;
    static const int perm[4] = {0, 2, 3, 1};
    it_tensor *f = it_op_reshape(ctx, it_op_permute(ctx, tap, perm), IT_SHAPE((int64_t)B * G * G, C));
    it_tensor *lg = it_op_linear(ctx, f, &a->p[0], &a->p[1]); /* (B G G, total classes) */
    it_tensor *sum = NULL;
    int off = 0, used = 0;
    for (int h = 0; h < IT_JUDGE_N_HEADS; h++) {
        int nc = it_judge_head_classes(h), m = a->n[h];
        correct[h] = 0, cells[h] = m;
        if (m > 0 && lg) {
            it_tensor *ids = it_tensor_wrap(ctx, a->ids[h], IT_DTYPE_I32, IT_SHAPE(m));
            it_tensor *lab = it_tensor_wrap(ctx, a->lab[h], IT_DTYPE_I32, IT_SHAPE(m));
            it_tensor *rows = it_op_slice(ctx, it_op_embedding(ctx, ids, lg), 1, off, nc); /* (m, nc) */
            if (rows) {
                const float *r = it_f32(rows);
                for (int i = 0; i < m; i++) {
                    int best = 0;
                    for (int c = 1; c < nc; c++)
                        if (r[(size_t)i * nc + c] > r[(size_t)i * nc + best]) best = c;
                    correct[h] += best == a->lab[h][i];
                }
            }
            it_tensor *ce = it_op_cross_entropy(ctx, rows, lab);
            sum = sum ? it_op_add(ctx, sum, ce) : ce;
            used++;
        }
        off += nc;
    }
    return used ? it_op_scale(ctx, sum, 1.0f / (float)used, 0.0f) : NULL;
}

/* ================================================================ checkpoints */

typedef struct ckpt_paths {
    char weights[1024], optim[1024];
} ckpt_paths;

static it_status ckpt_paths_make(it_err *err, ckpt_paths *p, const char *prefix)
{
    if (snprintf(p->weights, sizeof p->weights, "%s.safetensors", prefix) >= (int)sizeof p->weights ||
        snprintf(p->optim, sizeof p->optim, "%s.optim.safetensors", prefix) >= (int)sizeof p->optim)
        return it_err_set(err, IT_ERR_ARG, "checkpoint path too long: %s", prefix);
    return IT_OK;
}

/* The run's identity: a checkpoint only resumes the run that wrote it. */
static void run_key(char *buf, size_t n, const it_judge_train_opts *o)
{
    const char *init = o->init ? strrchr(o->init, '/') : NULL;
    init = init ? init + 1 : o->init ? o->init : "random";
    int k = snprintf(buf, n, "seed=%llu batch=%d steps=%lld lr=%g p_character=%g augment=%d init=%s",
                     (unsigned long long)o->seed, o->batch, (long long)o->steps, o->lr, (double)o->p_character,
                     o->augment, init);
    /* Runs without dense supervision keep the key of the first format. */
    if (o->aux_layer > 0 && k > 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, " aux=%d:%g", o->aux_layer, o->aux_weight);
}

/* Optimiser state first, weights (with the step) last: a crash between the
 * two leaves the old weights naming the old step, which the new optimiser
 * file then contradicts and resume refuses, instead of silently mixing. */
static it_status ckpt_save(it_err *err, const ckpt_paths *p, const it_judge *j, const aux_head *aux,
                           const it_optim *opt, const it_judge_train_opts *o, int64_t step)
{
    char stepbuf[32], key[256];
    snprintf(stepbuf, sizeof stepbuf, "%lld", (long long)step);
    run_key(key, sizeof key, o);
    const char *meta[] = {"step", stepbuf, "run", key, NULL};
    IT_TRY(it_optim_save(err, opt, p->optim));
    return it_judge_save_with(err, j, aux->layer >= 0 ? aux->p : NULL, aux->layer >= 0 ? 2 : 0, p->weights, IT_DTYPE_F32,
                              meta);
}

/* Loads the weights of a judge file into j, whose network must match; with
 * init (--init), only the main network must match: every other tensor of j
 * whose name and shape the file has too is copied (a file without crops
 * starts the main network; a crops version 1 file starts a version 2 judge's
 * main network, locator, face crop and the convolutions the other crops
 * share), and the rest keeps its random start. Returns in *copied how many
 * of j's tensors came from the file. */
static it_status copy_weights(it_err *err, it_judge *j, const char *path, int init, int *copied)
{
    it_judge loaded;
    IT_TRY(it_judge_load(err, &loaded, path, 0));
    it_judge_config a = loaded.cfg, b = j->cfg;
    if (init) a.crops = b.crops = 0;
    if (memcmp(&a, &b, sizeof a) || loaded.n_main != j->n_main) {
        it_judge_free(&loaded);
        return it_err_set(err, IT_ERR_ARG, "%s: its network differs from the requested one", path);
    }
    if (init && loaded.cfg.crops && !j->cfg.crops) {
        it_judge_free(&loaded);
        return it_err_set(err, IT_ERR_ARG, "%s: has crop networks; it cannot start a judge without them", path);
    }
    int n = 0;
    for (int i = 0; i < j->n_params; i++) {
        it_tensor *d = &j->params[i];
        const it_tensor *src = NULL;
        for (int k = 0; k < loaded.n_params && !src; k++)
            if (!strcmp(loaded.params[k].name, d->name)) src = &loaded.params[k];
        int same = src && src->ndim == d->ndim && src->n == d->n;
        for (int e = 0; same && e < d->ndim; e++) same = src->shape[e] == d->shape[e];
        if (!same && !init) { /* unreachable with equal configs; kept as a guard */
            it_judge_free(&loaded);
            return it_err_set(err, IT_ERR_FORMAT, "%s: tensor '%s' differs", path, d->name);
        }
        if (!same) continue;
        memcpy(it_f32(d), it_f32(src), (size_t)d->n * sizeof(float));
        n++;
    }
    it_judge_free(&loaded);
    if (copied) *copied = n;
    return IT_OK;
}

/* The dense supervision head's tensors of a checkpoint. */
static it_status aux_load(it_err *err, aux_head *a, const char *path)
{
    it_safetensors *f = NULL;
    IT_TRY(it_safetensors_open(err, &f, path));
    it_status st = IT_OK;
    for (int i = 0; !st && i < 2; i++) {
        const it_safetensors_tensor *t;
        st = it_safetensors_get(err, f, a->p[i].name, &t);
        if (!st && (t->n_dims != a->p[i].ndim || t->shape[0] != a->p[i].shape[0] ||
                    (t->n_dims == 2 && t->shape[1] != a->p[i].shape[1])))
            st = it_err_set(err, IT_ERR_FORMAT, "%s: tensor '%s' has the wrong shape", path, a->p[i].name);
        if (!st) st = it_safetensors_load_f32(err, f, t, it_f32(&a->p[i]), (size_t)a->p[i].n);
    }
    it_safetensors_close(f);
    return st;
}

static it_status ckpt_load(it_err *err, const ckpt_paths *p, it_judge *j, aux_head *aux, it_optim *opt,
                           const it_judge_train_opts *o, int64_t *step)
{
    it_safetensors *f = NULL;
    IT_TRY(it_safetensors_open(err, &f, p->weights));
    const char *s = it_safetensors_metadata_get(f, "step"), *run = it_safetensors_metadata_get(f, "run");
    char key[256];
    run_key(key, sizeof key, o);
    it_status st = IT_OK;
    if (!s || !run) st = it_err_set(err, IT_ERR_FORMAT, "%s: not a judge training checkpoint (no step/run metadata)", p->weights);
    else if (strcmp(run, key))
        st = it_err_set(err, IT_ERR_ARG, "%s: checkpoint of another run (%s); this run is %s", p->weights, run, key);
    else *step = strtoll(s, NULL, 10);
    it_safetensors_close(f);
    IT_TRY(st);
    IT_TRY(copy_weights(err, j, p->weights, 0, NULL));
    if (aux->layer >= 0) IT_TRY(aux_load(err, aux, p->weights));
    IT_TRY(it_optim_load(err, opt, p->optim));
    if (opt->step != *step)
        return it_err_set(err, IT_ERR_FORMAT, "%s says step %lld but %s says %lld: the checkpoint is inconsistent",
                          p->weights, (long long)*step, p->optim, (long long)opt->step);
    return IT_OK;
}

/* ================================================================ one step */

typedef struct batch_buf {
    uint8_t *rgb;       /* (B, 128, 128, 3) */
    it_toy_attrs *attrs;/* (B) */
    float *x;           /* (B, 3, S, S) */
    int32_t *labels;    /* (B, heads) */
    it_toy_truth *truth;/* (B) part boxes (dense supervision) or NULL */
    float *geo;         /* (B, 3) scale, dx, dy of each input */
    uint8_t *use_pred;  /* (B) 1: crop at the locator's boxes (half of the images), 0: at the jittered truth */
    float *anchors;     /* (B, 8) true face and body boxes (cx, cy, w, h) in input pixels, then (B, 8)
                           the same jittered: where training takes the crops */
} batch_buf;

static it_status batch_make(it_err *err, batch_buf *b, const it_judge_train_opts *o, int64_t step)
{
    int B = o->batch, S = o->model.size;
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    c.p_character = o->p_character;
    uint64_t first = (uint64_t)step * (uint64_t)B;
    IT_TRY(it_toy_render_batch(err, RENDER, RENDER, &c, o->seed, first, B, IT_TOY_EVAL, b->rgb, b->attrs, b->truth));
    it_err first_err;
    it_err_clear(&first_err);
    #pragma omp parallel for schedule(dynamic, 2)
    for (int i = 0; i < B; i++) {
        it_err e;
        it_err_clear(&e);
        uint8_t *img = b->rgb + (size_t)i * RENDER * RENDER * 3;
        float sc = 1, dx = 0, dy = 0;
        it_status st = o->augment ? it_judge_augment(&e, img, RENDER, RENDER, o->seed, first + (uint64_t)i, S, &sc, &dx, &dy)
                                  : IT_OK;
        if (!st) st = it_judge_input(&e, b->x + (size_t)i * 3 * S * S, S, img, RENDER, RENDER, sc, dx, dy);
        b->geo[3 * i] = sc, b->geo[3 * i + 1] = dx, b->geo[3 * i + 2] = dy;
        if (st) {
            #pragma omp critical
            if (!first_err.code) first_err = e;
        }
    }
    if (first_err.code) {
        if (err) *err = first_err;
        return first_err.code;
    }
    for (int i = 0; i < B; i++) it_judge_labels(b->labels + (size_t)i * IT_JUDGE_N_HEADS, &b->attrs[i]);
    return IT_OK;
}

#define PRED_SHARE 0.5f

/* The true face and body boxes of each input (the locator's targets) and
 * jittered copies (the crops' windows: the crop networks must read crops
 * placed by an imperfect locator). The jitter comes from (seed, image). */
static void crop_anchors(batch_buf *b, const it_judge_train_opts *o, int64_t step)
{
    int B = o->batch, S = o->model.size;
    static const int parts[2] = {IT_TOY_PART_FACE, IT_TOY_PART_BODY};
    for (int i = 0; i < B; i++) {
        const float *g = b->geo + 3 * i;
        int s = (int)lrintf((float)S * g[0]);
        float ox = (float)lrintf((float)(S - s) * 0.5f + g[1]), oy = (float)lrintf((float)(S - s) * 0.5f + g[2]);
        float k = (float)s / (float)RENDER;
        float *t = b->anchors + (size_t)i * IT_JUDGE_LOC, *jit = b->anchors + ((size_t)B + i) * IT_JUDGE_LOC;
        it_rng r;
        it_rng_init(&r, mix64(o->seed ^ mix64((uint64_t)step * (uint64_t)B + (uint64_t)i + 0xC40Bull)));
        for (int a = 0; a < 2; a++) {
            const int *bx = b->truth[i].box[parts[a]];
            float w = (float)(bx[2] - bx[0]) * k, h = (float)(bx[3] - bx[1]) * k;
            t[4 * a] = ox + 0.5f * (float)(bx[0] + bx[2]) * k, t[4 * a + 1] = oy + 0.5f * (float)(bx[1] + bx[3]) * k;
            t[4 * a + 2] = w, t[4 * a + 3] = h;
            float m = 0.08f * (w > h ? w : h), sc = urange(&r, 0.9f, 1.1f);
            jit[4 * a] = t[4 * a] + urange(&r, -m, m), jit[4 * a + 1] = t[4 * a + 1] + urange(&r, -m, m);
            jit[4 * a + 2] = w * sc, jit[4 * a + 3] = h * sc;
        }
        /* Half of the crops at the locator's own boxes: the crop networks
         * must read what inference gives them, errors and all (at step 500
         * of the first run, eye count was 97 % on true boxes in training
         * and 77 % on the locator's at evaluation). */
        b->use_pred[i] = it_rng_float(&r) < PRED_SHARE;
    }
}

/* Locator loss: mean squared error of the boxes over the input side,
 * scaled so that a few pixels of error weigh like a head's cross-entropy.
 * mae receives the mean absolute error in input pixels. */
#define LOC_WEIGHT 100.0f
static it_tensor *loc_loss(it_ctx *ctx, it_tensor *loc, const float *truth, int B, int S, double *mae)
{
    if (!loc) return NULL;
    it_tensor *t = it_tensor_new(ctx, IT_DTYPE_F32, IT_SHAPE(B, IT_JUDGE_LOC));
    if (!t) return NULL;
    float *td = it_f32(t);
    const float *l = it_f32(loc);
    double e = 0;
    for (int i = 0; i < B * IT_JUDGE_LOC; i++) {
        td[i] = truth[i] / (float)S;
        e += fabs((double)(l[i] - td[i])) * S;
    }
    *mae = e / (B * IT_JUDGE_LOC);
    return it_op_scale(ctx, it_op_mse(ctx, loc, t, NULL), LOC_WEIGHT, 0.0f);
}

/* ================================================================ loop */

typedef struct train_state {
    it_judge j;
    aux_head aux;
    it_optim opt;
    it_ctx ctx;
    batch_buf b;
    FILE *log;
    double loss_avg, acc_avg[IT_JUDGE_N_HEADS]; /* exponential moving averages */
    double aux_loss_avg, aux_acc_avg[IT_JUDGE_N_HEADS];
    double loc_mae_avg; /* locator: mean absolute error in input pixels */
    int have_avg;
    double grad_norm; /* before clipping, last step */
} train_state;

static void state_free(train_state *s)
{
    it_optim_free(&s->opt);
    it_judge_free(&s->j);
    aux_free(&s->aux);
    it_ctx_free(&s->ctx);
    it_free(s->b.rgb);
    it_free(s->b.attrs);
    it_free(s->b.x);
    it_free(s->b.labels);
    it_free(s->b.truth);
    it_free(s->b.anchors);
    it_free(s->b.use_pred);
    it_free(s->b.geo);
    if (s->log) fclose(s->log);
}

static it_status state_init(it_err *err, train_state *s, const it_judge_train_opts *o)
{
    memset(s, 0, sizeof *s);
    it_ctx_init(&s->ctx, 0);
    int B = o->batch, S = o->model.size;
    s->b.rgb = it_malloc((size_t)B * RENDER * RENDER * 3);
    s->b.attrs = it_malloc((size_t)B * sizeof *s->b.attrs);
    s->b.x = it_malloc((size_t)B * 3 * S * S * sizeof(float));
    s->b.labels = it_malloc((size_t)B * IT_JUDGE_N_HEADS * sizeof(int32_t));
    s->b.geo = it_malloc((size_t)B * 3 * sizeof(float));
    int need_truth = o->aux_layer > 0 || o->model.crops;
    s->b.truth = need_truth ? it_malloc((size_t)B * sizeof *s->b.truth) : NULL;
    s->b.anchors = o->model.crops ? it_malloc((size_t)B * 2 * IT_JUDGE_LOC * sizeof(float)) : NULL;
    s->b.use_pred = o->model.crops ? it_malloc((size_t)B) : NULL;
    s->aux.layer = -1;
    if (!s->b.rgb || !s->b.attrs || !s->b.x || !s->b.labels || !s->b.geo || (need_truth && !s->b.truth) ||
        (o->model.crops && (!s->b.anchors || !s->b.use_pred)))
        return it_err_set(err, IT_ERR_NOMEM, "train-judge: out of memory");
    IT_TRY(it_judge_init(err, &s->j, &o->model, o->seed, 1));
    if (o->init) {
        int copied = 0;
        IT_TRY(copy_weights(err, &s->j, o->init, 1, &copied));
        IT_LOG_I("train-judge: --init %s: %d of %d tensors copied, the rest random", o->init, copied, s->j.n_params);
    }
    IT_TRY(aux_init(err, &s->aux, &s->j, o, o->seed));
    it_optim_param ps[IT_JUDGE_MAX_PARAMS + 2];
    size_t np = 0;
    for (int i = 0; i < s->j.n_params; i++) {
        it_tensor *p = &s->j.params[i];
        ps[np++] = (it_optim_param){p->name, it_f32(p), p->grad, (size_t)p->n, 0};
    }
    for (int i = 0; s->aux.layer >= 0 && i < 2; i++) {
        it_tensor *p = &s->aux.p[i];
        ps[np++] = (it_optim_param){p->name, it_f32(p), p->grad, (size_t)p->n, 0};
    }
    it_optim_config oc = it_optim_adamw_defaults(o->lr);
    oc.weight_decay = o->weight_decay;
    return it_optim_init(err, &s->opt, &oc, ps, np);
}

static it_status train_step(it_err *err, train_state *s, const it_judge_train_opts *o, int64_t step, double lr)
{
    int S = o->model.size, B = o->batch;
    IT_TRY(batch_make(err, &s->b, o, step));
    it_ctx_reset(&s->ctx);
    it_tensor *x = it_tensor_wrap(&s->ctx, s->b.x, IT_DTYPE_F32, IT_SHAPE(B, 3, S, S));
    int correct[IT_JUDGE_N_HEADS], aux_right[IT_JUDGE_N_HEADS] = {0}, aux_cells[IT_JUDGE_N_HEADS] = {0};
    it_judge_out out;
    if (o->model.crops) crop_anchors(&s->b, o, step);
    it_judge_forward_ex(&s->ctx, &s->j, x, o->model.crops ? s->b.anchors + (size_t)B * IT_JUDGE_LOC : NULL,
                        o->model.crops ? s->b.use_pred : NULL, s->aux.layer, &out);
    it_tensor *tap = out.tap;
    it_tensor *loss = it_judge_loss_ex(&s->ctx, &out, s->b.labels, B, correct);
    double al = 0, mae = 0;
    if (o->model.crops) loss = it_op_add(&s->ctx, loss, loc_loss(&s->ctx, out.loc, s->b.anchors, B, S, &mae));
    if (s->aux.layer >= 0) {
        aux_targets(&s->aux, s->b.truth, s->b.labels, s->b.geo, B, S);
        it_tensor *a = aux_loss(&s->ctx, &s->aux, tap, B, aux_right, aux_cells);
        if (a) {
            al = it_f32(a)[0];
            loss = it_op_add(&s->ctx, loss, it_op_scale(&s->ctx, a, (float)o->aux_weight, 0.0f));
        }
    }
    IT_TRY(it_ctx_status(&s->ctx, err));
    IT_TRY(it_autograd_backward(err, &s->ctx, loss));
    s->grad_norm = it_optim_clip_grad_norm(&s->opt, 2.0);
    it_optim_step(&s->opt, lr);
    it_optim_zero_grad(&s->opt);
    double l = it_f32(loss)[0], k = s->have_avg ? 0.95 : 0.0;
    s->loss_avg = k * s->loss_avg + (1 - k) * l;
    s->aux_loss_avg = k * s->aux_loss_avg + (1 - k) * al;
    s->loc_mae_avg = k * s->loc_mae_avg + (1 - k) * mae;
    for (int h = 0; h < IT_JUDGE_N_HEADS; h++) {
        s->acc_avg[h] = k * s->acc_avg[h] + (1 - k) * (double)correct[h] / B;
        double ac = aux_cells[h] ? (double)aux_right[h] / aux_cells[h] : 0;
        s->aux_acc_avg[h] = k * s->aux_acc_avg[h] + (1 - k) * ac;
    }
    s->have_avg = 1;
    if (!isfinite(l)) return it_err_set(err, IT_ERR_INTERNAL, "train-judge: loss is %g at step %lld", l, (long long)step);
    return IT_OK;
}

static double min_of(const double *a, int *arg)
{
    int m = 0;
    for (int h = 1; h < IT_JUDGE_N_HEADS; h++)
        if (a[h] < a[m]) m = h;
    if (arg) *arg = m;
    return a[m];
}

static void log_line(train_state *s, const char *kind, int64_t step, double lr, double elapsed, const double *acc)
{
    if (!s->log) return;
    json_t *o = json_pack("{s:s, s:I, s:f}", "kind", kind, "step", (json_int_t)step, "seconds", round(elapsed * 10) / 10);
    if (!o) return;
    if (!strcmp(kind, "train")) {
        json_object_set_new(o, "loss", json_real(s->loss_avg));
        json_object_set_new(o, "lr", json_real(lr));
        json_object_set_new(o, "grad_norm", json_real(s->grad_norm));
        if (s->j.cfg.crops) json_object_set_new(o, "locator_px", json_real(round(s->loc_mae_avg * 100) / 100));
        if (s->aux.layer >= 0) {
            json_t *aa = json_object();
            for (int h = 0; aa && h < IT_JUDGE_N_HEADS; h++)
                if (it_judge_aux_part(h) >= 0)
                    json_object_set_new(aa, it_judge_head_name(h), json_real(round(s->aux_acc_avg[h] * 1e4) / 1e4));
            json_object_set_new(o, "aux_loss", json_real(s->aux_loss_avg));
            json_object_set_new(o, "aux_accuracy", aa);
        }
    }
    json_t *a = json_object();
    for (int h = 0; a && h < IT_JUDGE_N_HEADS; h++)
        json_object_set_new(a, it_judge_head_name(h), json_real(round(acc[h] * 1e4) / 1e4));
    json_object_set_new(o, "accuracy", a);
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (line) {
        fprintf(s->log, "%s\n", line);
        fflush(s->log);
        free(line);
    }
    json_decref(o);
}

static it_status evaluate(it_err *err, train_state *s, const it_judge_train_opts *o, double *acc)
{
    return it_judge_evaluate(err, &s->j, &s->ctx, o->eval_seed, o->eval_n, o->p_character, acc);
}

/* The weights file; steps_done < o->steps when a time limit stopped it. */
static it_status save_final(it_err *err, train_state *s, const it_judge_train_opts *o, int64_t steps_done,
                            double seconds)
{
    char steps[32], secs[32], seed[32], key[256];
    snprintf(steps, sizeof steps, "%lld", (long long)steps_done);
    snprintf(secs, sizeof secs, "%.0f", seconds);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    run_key(key, sizeof key, o);
    const char *meta[] = {"steps", steps, "seed", seed, "run", key, "train_seconds_this_invocation", secs, NULL};
    return it_judge_save(err, &s->j, o->out, o->out_f32 ? IT_DTYPE_F32 : IT_DTYPE_F16, meta);
}

static it_status check_opts(it_err *err, const it_judge_train_opts *o)
{
    if (o->steps < 1 || o->batch < 1 || o->batch > 4096) return it_err_set(err, IT_ERR_ARG, "train-judge: steps >= 1 and batch in 1..4096");
    if (!(o->lr > 0) || o->warmup < 0 || o->warmup >= o->steps)
        return it_err_set(err, IT_ERR_ARG, "train-judge: lr must be > 0 and warmup in 0..steps-1");
    if (o->eval_seed == o->seed) return it_err_set(err, IT_ERR_ARG, "train-judge: the evaluation seed must differ from the training seed");
    if (o->eval_n < 1) return it_err_set(err, IT_ERR_ARG, "train-judge: eval images must be >= 1");
    if ((o->resume || o->stop_after > 0) && !o->checkpoint)
        return it_err_set(err, IT_ERR_ARG, "train-judge: --resume and --stop-after need --checkpoint PREFIX");
    return IT_OK;
}

it_status it_judge_train(it_err *err, const it_judge_train_opts *o, it_judge_train_result *res)
{
    memset(res, 0, sizeof *res);
    IT_TRY(check_opts(err, o));
    train_state s;
    ckpt_paths cp;
    it_status st = state_init(err, &s, o);
    int64_t step = 0;
    if (!st && o->checkpoint) st = ckpt_paths_make(err, &cp, o->checkpoint);
    if (!st && o->resume) st = ckpt_load(err, &cp, &s.j, &s.aux, &s.opt, o, &step);
    if (!st && o->log && !(s.log = fopen(o->log, o->resume ? "a" : "w")))
        st = it_err_set(err, IT_ERR_IO, "cannot open log %s", o->log);
    it_lr_schedule sched = it_lr_schedule_make(IT_LR_COSINE, o->warmup, o->steps);
    it_progress prog;
    if (!o->quiet) it_progress_start(&prog, "train-judge", o->steps - step); /* ETA from this invocation */
    double t0 = it_time_now(), acc[IT_JUDGE_N_HEADS];
    int64_t first = step;
    int64_t last = o->stop_after > 0 && step + o->stop_after < o->steps ? step + o->stop_after : o->steps;
    int timed_out = 0;
    for (; !st && step < last && !timed_out; step++) {
        double lr = it_lr_schedule_lr(&sched, o->lr, step);
        st = train_step(err, &s, o, step, lr);
        int64_t done = step + 1;
        double el = it_time_now() - t0;
        if (!st && (done % o->log_every == 0 || done == o->steps)) log_line(&s, "train", done, lr, el, s.acc_avg);
        if (!st && !o->quiet) {
            char extra[96];
            int worst;
            double mn = min_of(s.acc_avg, &worst);
            snprintf(extra, sizeof extra, "step %lld loss %.4f acc min %.1f%% (%s)", (long long)done, s.loss_avg,
                     100 * mn, it_judge_head_name(worst));
            it_progress_update(&prog, done - first, extra);
        }
        timed_out = o->time_limit > 0 && el >= o->time_limit && done < o->steps;
        if (!st && o->checkpoint && (done % o->checkpoint_every == 0 || done == last || timed_out))
            st = ckpt_save(err, &cp, &s.j, &s.aux, &s.opt, o, done);
        if (!st && o->eval_every > 0 && done % o->eval_every == 0 && done < o->steps) {
            st = evaluate(err, &s, o, acc);
            if (!st) log_line(&s, "eval", done, lr, it_time_now() - t0, acc);
            if (!st) IT_LOG_I("step %lld: held-out min accuracy %.2f%%", (long long)done, 100 * min_of(acc, NULL));
        }
    }
    if (!o->quiet) it_progress_finish(&prog);
    res->seconds = it_time_now() - t0;
    res->steps_done = step;
    res->step_seconds = step > first ? res->seconds / (double)(step - first) : 0;
    int finished = step == o->steps;
    if (!st && (finished || timed_out)) st = save_final(err, &s, o, step, res->seconds);
    if (timed_out) IT_LOG_I("time limit reached at step %lld of %lld: weights so far in %s", (long long)step,
                            (long long)o->steps, o->out);
    state_free(&s);
    if (!finished) return st;
    /* Evaluate the file as shipped (f16 rounding included). */
    if (!st) {
        it_judge shipped;
        it_ctx ctx;
        it_ctx_init(&ctx, 0);
        st = it_judge_load(err, &shipped, o->out, 0);
        if (!st) st = it_judge_evaluate(err, &shipped, &ctx, o->eval_seed, o->eval_n, o->p_character, res->acc);
        if (!st) res->min_acc = min_of(res->acc, NULL);
        if (!st && o->log && (s.log = fopen(o->log, "a"))) {
            log_line(&s, "final", step, 0, res->seconds, res->acc);
            fclose(s.log);
        }
        it_judge_free(&shipped);
        it_ctx_free(&ctx);
    }
    return st;
}
