/* pretrain_preference.c: the toy preference head: clean renders preferred
 * to degraded ones (image quality and anatomy), Bradley-Terry loss on a
 * frozen toy CLIP's embeddings. */
#include "toy/pretrain_preference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "image/geom.h"
#include "base/rng.h"
#include "tensor/autograd.h"
#include "toy/clip_source.h"
#include "toy/det_loss.h"

#define RENDER 128

static const char *DEGRADE_NAMES[IT_PREF_N_DEGRADE] = {"blur", "noise", "jpeg", "pixelate", "no_eyes", "blank_face"};

const char *it_pref_degrade_name(int kind)
{
    return kind >= 0 && kind < IT_PREF_N_DEGRADE ? DEGRADE_NAMES[kind] : "?";
}

/* ---------------------------------------------------------------- degradations */

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float urange(it_rng *r, float lo, float hi) { return lo + (hi - lo) * it_rng_float(r); }
static uint8_t clamp8(float v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrintf(v)); }


static it_status noise(it_err *err, uint8_t *p, int w, int h, float sigma, it_rng *r)
{
    size_t n = (size_t)w * h * 3;
    float *z = it_malloc(n * sizeof(float));
    if (!z) return it_err_set(err, IT_ERR_NOMEM, "degrade: out of memory");
    it_rng_normal(r, z, n, 0.0f, sigma);
    for (size_t i = 0; i < n; i++) p[i] = clamp8((float)p[i] + z[i]);
    it_free(z);
    return IT_OK;
}

static it_status jpeg(it_err *err, uint8_t *p, int w, int h, int quality)
{
    it_image in = {w, h, 3, p}, out = {0};
    uint8_t *buf = NULL;
    size_t n = 0;
    IT_TRY(it_image_encode_jpeg(err, &buf, &n, &in, quality));
    it_status st = it_image_decode(err, &out, buf, n);
    if (!st && (out.w != w || out.h != h || out.c != 3))
        st = it_err_set(err, IT_ERR_INTERNAL, "degrade: the JPEG round trip changed the image shape");
    if (!st) memcpy(p, out.data, (size_t)w * h * 3);
    it_image_free(&out);
    it_free(buf);
    return st;
}

static void pixelate(uint8_t *p, int w, int h, int block)
{
    for (int by = 0; by < h; by += block)
        for (int bx = 0; bx < w; bx += block) {
            int sum[3] = {0, 0, 0}, cnt = 0;
            for (int y = by; y < by + block && y < h; y++)
                for (int x = bx; x < bx + block && x < w; x++, cnt++)
                    for (int c = 0; c < 3; c++) sum[c] += p[((size_t)y * w + x) * 3 + c];
            for (int y = by; y < by + block && y < h; y++)
                for (int x = bx; x < bx + block && x < w; x++)
                    for (int c = 0; c < 3; c++) p[((size_t)y * w + x) * 3 + c] = (uint8_t)((sum[c] + cnt / 2) / cnt);
        }
}

/* Paints the pixels of part `part` (grown by one pixel inside the face, so
 * anti-aliased rims go too) with the face's own skin colour: the mean of
 * face pixels outside the erased part within `ring` pixels of it, or the
 * body palette colour when there are none. Returns 0 if the part is absent. */
static int erase_part(uint8_t *p, const uint8_t *mask, const it_toy_attrs *a, int w, int h, int part, int ring)
{
    uint8_t bit = IT_TOY_BIT(part), face = IT_TOY_BIT(IT_TOY_PART_FACE);
    int x0 = w, y0 = h, x1 = -1, y1 = -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (mask[(size_t)y * w + x] & bit) {
                x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1;
                y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
            }
    if (x1 < 0) return 0;
    double sum[3] = {0, 0, 0};
    int cnt = 0;
    for (int y = y0 - ring; y <= y1 + ring; y++)
        for (int x = x0 - ring; x <= x1 + ring; x++) {
            if (x < 0 || y < 0 || x >= w || y >= h) continue;
            uint8_t m = mask[(size_t)y * w + x];
            if (!(m & face) || (m & bit) || (m & IT_TOY_BIT(IT_TOY_PART_EYES))) continue;
            for (int c = 0; c < 3; c++) sum[c] += p[((size_t)y * w + x) * 3 + c];
            cnt++;
        }
    uint8_t col[3];
    const uint8_t *body = it_toy_attr_get(IT_TOY_BODY_COLOUR)->values[a->v[IT_TOY_BODY_COLOUR]].rgb;
    for (int c = 0; c < 3; c++) col[c] = cnt ? (uint8_t)lrint(sum[c] / cnt) : body[c];
    for (int y = y0 - 1; y <= y1 + 1; y++)
        for (int x = x0 - 1; x <= x1 + 1; x++) {
            if (x < 0 || y < 0 || x >= w || y >= h) continue;
            int on = 0;
            for (int dy = -1; dy <= 1 && !on; dy++)
                for (int dx = -1; dx <= 1 && !on; dx++) {
                    int xx = x + dx, yy = y + dy;
                    on = xx >= 0 && yy >= 0 && xx < w && yy < h && (mask[(size_t)yy * w + xx] & bit);
                }
            if (on && (mask[(size_t)y * w + x] & face)) memcpy(p + ((size_t)y * w + x) * 3, col, 3);
        }
    return 1;
}

it_status it_pref_degrade_image(it_err *err, uint8_t *rgb, const uint8_t *mask, const it_toy_attrs *a, int w,
                                int h, uint64_t seed, uint64_t index, unsigned kinds, int *kind)
{
    it_rng r;
    it_rng_init(&r, mix64(seed ^ mix64(index + 0x9EF5ull)));
    int allowed[IT_PREF_N_DEGRADE], n = 0;
    for (int k = 0; k < IT_PREF_N_DEGRADE; k++)
        if (!kinds || (kinds >> k & 1)) allowed[n++] = k;
    if (!n) return it_err_set(err, IT_ERR_ARG, "degrade: no degradation kind selected");
    int k = allowed[it_rng_below(&r, (uint64_t)n)];
    if (k == IT_PREF_NO_EYES && !erase_part(rgb, mask, a, w, h, IT_TOY_PART_EYES, 3)) k = IT_PREF_BLUR;
    if (k == IT_PREF_BLANK_FACE && !erase_part(rgb, mask, a, w, h, IT_TOY_PART_FACE, 0)) k = IT_PREF_BLUR;
    if (kind) *kind = k;
    switch (k) {
    case IT_PREF_BLUR: return it_rgb8_blur(err, rgb, w, h, urange(&r, 1.2f, 2.5f));
    case IT_PREF_NOISE: return noise(err, rgb, w, h, urange(&r, 12.0f, 32.0f), &r);
    case IT_PREF_JPEG: return jpeg(err, rgb, w, h, 4 + (int)it_rng_below(&r, 9));
    case IT_PREF_PIXELATE: pixelate(rgb, w, h, 3 + (int)it_rng_below(&r, 3)); return IT_OK;
    default: return IT_OK; /* anatomy: already drawn */
    }
}

/* ---------------------------------------------------------------- pairs */

/* Pair `index` of stream (seed, purpose): the clean render into clean, the
 * degraded one into bad (both RENDER x RENDER x 3). */
static it_status make_pair(it_err *err, it_toy_renderer *rd, uint8_t *mask, uint64_t seed, uint64_t index,
                           it_toy_purpose purpose, unsigned kinds, uint8_t *clean, uint8_t *bad, int *kind)
{
    it_toy_attrs a;
    IT_TRY(it_toy_sample(err, &a, NULL, seed, index, purpose));
    IT_TRY(it_toy_render(err, rd, &a, purpose, clean, mask, NULL));
    memcpy(bad, clean, (size_t)RENDER * RENDER * 3);
    return it_pref_degrade_image(err, bad, mask, &a, RENDER, RENDER, seed, index, kinds, kind);
}

/* ---------------------------------------------------------------- head config */

static const char *DEFAULT_HEAD =
    "{\"normalize\": true, \"layers\": [{\"key\": \"layers.0\", \"out\": 128, \"activation\": \"gelu\"},"
    " {\"key\": \"layers.2\", \"out\": 32, \"activation\": \"gelu\"},"
    " {\"key\": \"layers.4\", \"out\": 1, \"activation\": \"none\"}]}";

/* The head's config JSON for a CLIP of width dim: the "head" object of the
 * component config (or the default) with input_dim set. New reference. */
static json_t *head_config(const json_t *cfg, int dim)
{
    json_t *h = json_object_get(cfg, "head");
    json_t *j = json_is_object(h) ? json_deep_copy(h) : json_loads(DEFAULT_HEAD, 0, NULL);
    if (j) json_object_set_new(j, "input_dim", json_integer(dim));
    return j;
}

/* ---------------------------------------------------------------- state */

typedef struct pref_state {
    const it_pretrain_opts *o;
    it_clip clip;
    it_pref head;
    it_ctx ctx;
    it_toy_renderer rd;
    int P, S;
    uint8_t *rgb;        /* (2P, RENDER, RENDER, 3): clean then degraded */
    uint8_t *mask;       /* (RENDER, RENDER) */
    float *pixels;       /* (2P, 3, S, S) */
    float *emb;          /* (2P, dim) */
    it_optim_param *params;
    size_t n_params;
    json_t *head_cfg;
    unsigned kinds;      /* degradations drawn in training (bits; 0 = all) */
    char clip_dir[2048];
    int interim;
} pref_state;

static void state_free(pref_state *s)
{
    it_clip_free(&s->clip);
    it_pref_free(&s->head);
    it_ctx_free(&s->ctx);
    it_toy_renderer_free(&s->rd);
    it_free(s->rgb);
    it_free(s->mask);
    it_free(s->pixels);
    it_free(s->emb);
    it_free(s->params);
    json_decref(s->head_cfg);
}

static it_status calibrate(it_err *err, pref_state *s);

/* "degradations": ["blur", "no_eyes", ...] -> bits (absent: all). */
static it_status parse_kinds(it_err *err, const json_t *arr, unsigned *bits)
{
    *bits = 0;
    if (!arr) return IT_OK;
    if (!json_is_array(arr) || !json_array_size(arr))
        return it_err_set(err, IT_ERR_ARG, "preference config: \"degradations\" must be a non-empty list of names");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *n = json_string_value(json_array_get(arr, i));
        int k = 0;
        while (k < IT_PREF_N_DEGRADE && (!n || strcmp(n, DEGRADE_NAMES[k]))) k++;
        if (k == IT_PREF_N_DEGRADE)
            return it_err_set(err, IT_ERR_ARG, "preference config: unknown degradation \"%s\" (blur, noise, jpeg, "
                              "pixelate, no_eyes, blank_face)", n ? n : "?");
        *bits |= 1u << k;
    }
    return IT_OK;
}

static it_status state_init(it_err *err, pref_state *s, const it_pretrain_opts *o, const json_t *cfg, const char *run)
{
    memset(s, 0, sizeof *s);
    s->o = o;
    it_ctx_init(&s->ctx, 0);
    IT_TRY(it_toy_renderer_init(err, &s->rd, RENDER, RENDER));
    IT_TRY(it_clip_source_resolve(err, s->clip_dir, sizeof s->clip_dir, o->out, run, cfg, o->seed, &s->interim));
    IT_TRY(it_clip_load(err, &s->clip, s->clip_dir));
    IT_TRY(parse_kinds(err, json_object_get(cfg, "degradations"), &s->kinds));
    if (!(s->head_cfg = head_config(cfg, s->clip.embed_dim)))
        return it_err_set(err, IT_ERR_FORMAT, "preference: the \"head\" config is not valid JSON");
    char *txt = json_dumps(s->head_cfg, JSON_COMPACT);
    if (!txt) return it_err_set(err, IT_ERR_NOMEM, "preference: out of memory");
    it_status st = it_pref_parse_ex(err, &s->head, txt, "preference head config", IT_MODEL_TRAINABLE);
    free(txt);
    IT_TRY(st);
    for (int l = 0; l < s->head.n_layers; l++)
        if (s->head.act[l] == 1)
            return it_err_set(err, IT_ERR_ARG, "preference head: relu cannot be trained (no gradient); use gelu");
    it_pretrain_init_params(&s->head.params, o->seed);
    s->P = o->batch > 0 ? o->batch : 16;
    s->S = s->clip.vision.cfg.image_size;
    size_t n2 = 2 * (size_t)s->P;
    s->rgb = it_malloc(n2 * RENDER * RENDER * 3);
    s->mask = it_malloc((size_t)RENDER * RENDER);
    s->pixels = it_malloc(n2 * 3 * (size_t)s->S * s->S * sizeof(float));
    s->emb = it_malloc(n2 * (size_t)s->clip.embed_dim * sizeof(float));
    if (!s->rgb || !s->mask || !s->pixels || !s->emb) return it_err_set(err, IT_ERR_NOMEM, "preference: out of memory");
    if (!s->head.lin[0]->b) return it_err_set(err, IT_ERR_ARG, "preference head: the first layer needs a bias");
    IT_TRY(calibrate(err, s));
    return it_pretrain_params_list(err, &s->head.params, &s->params, &s->n_params);
}

/* CLIP embeddings of the 2P images in s->rgb (no gradient: CLIP is frozen). */
static it_status embed_batch(it_err *err, pref_state *s)
{
    int n = 2 * s->P;
    for (int i = 0; i < n; i++) {
        it_image in = {RENDER, RENDER, 3, s->rgb + (size_t)i * RENDER * RENDER * 3}, pre = {0};
        IT_TRY(it_preprocess_u8(err, &s->clip.pre, &in, &pre));
        if (pre.w != s->S || pre.h != s->S) {
            it_image_free(&pre);
            return it_err_set(err, IT_ERR_FORMAT, "preference: the CLIP preprocessing gives %dx%d, expected %dx%d",
                              pre.w, pre.h, s->S, s->S);
        }
        it_preprocess_normalize(&s->clip.pre, &pre, s->pixels + (size_t)i * 3 * s->S * s->S);
        it_image_free(&pre);
    }
    int was = it_autograd_set_enabled(&s->ctx, 0);
    it_tensor *px = it_tensor_wrap(&s->ctx, s->pixels, IT_DTYPE_F32, IT_SHAPE(n, 3, s->S, s->S));
    it_status st = it_clip_embed_pixels(err, &s->ctx, &s->clip, px, s->emb);
    it_autograd_set_enabled(&s->ctx, was);
    return st;
}

/* Data-dependent initialisation: the normalised embeddings of a CLIP sit
 * in a narrow cone (clean and degraded renders of one creature differ by
 * about 1%), which a freshly initialised MLP barely sees. The per-dimension
 * mean and spread of calibration pairs (a stream of their own, so the
 * training data is untouched) are folded into the first layer, which then
 * starts on standardised inputs: W' = W diag(1/sd), b' = b - W' mean. */
static it_status calibrate(it_err *err, pref_state *s)
{
    int d = s->clip.embed_dim, P = s->P, rounds = (64 + P - 1) / P, n = 0;
    double *sum = it_calloc((size_t)d, sizeof(double)), *sq = it_calloc((size_t)d, sizeof(double));
    if (!sum || !sq) {
        it_free(sum), it_free(sq);
        return it_err_set(err, IT_ERR_NOMEM, "preference: out of memory");
    }
    it_status st = IT_OK;
    uint64_t cal_seed = mix64(s->o->seed ^ 0xCA1Bull);
    for (int r = 0; r < rounds && !st; r++) {
        for (int p = 0; p < P && !st; p++)
            st = make_pair(err, &s->rd, s->mask, cal_seed, (uint64_t)(r * P + p), IT_TOY_PRETRAIN, s->kinds,
                           s->rgb + (size_t)p * RENDER * RENDER * 3, s->rgb + (size_t)(P + p) * RENDER * RENDER * 3, NULL);
        it_ctx_reset(&s->ctx);
        if (!st) st = embed_batch(err, s);
        for (int i = 0; !st && i < 2 * P; i++, n++) {
            float *e = s->emb + (size_t)i * d;
            double ss = 0;
            for (int k = 0; k < d; k++) ss += (double)e[k] * e[k];
            double inv = s->head.normalize && ss > 0 ? 1.0 / sqrt(ss) : 1.0;
            for (int k = 0; k < d; k++) sum[k] += e[k] * inv, sq[k] += (e[k] * inv) * (e[k] * inv);
        }
    }
    if (!st) {
        it_lin *l0 = s->head.lin[0];
        int out = (int)l0->w->shape[0];
        float *w = it_f32(l0->w), *b = it_f32(l0->b);
        for (int k = 0; k < d; k++) {
            double mean = sum[k] / n, var = sq[k] / n - mean * mean;
            double inv = 1.0 / sqrt((var > 0 ? var : 0) + 1e-12);
            for (int o = 0; o < out; o++) {
                w[(size_t)o * d + k] = (float)(w[(size_t)o * d + k] * inv);
                b[o] -= (float)(w[(size_t)o * d + k] * mean);
            }
        }
    }
    it_free(sum);
    it_free(sq);
    return st;
}

static it_status pref_step(it_err *err, void *user, int64_t step, it_pretrain_stats *st)
{
    pref_state *s = user;
    int P = s->P;
    for (int p = 0; p < P; p++) {
        uint64_t idx = (uint64_t)step * (uint64_t)P + (uint64_t)p;
        IT_TRY(make_pair(err, &s->rd, s->mask, s->o->seed, idx, IT_TOY_PRETRAIN, s->kinds,
                         s->rgb + (size_t)p * RENDER * RENDER * 3, s->rgb + (size_t)(P + p) * RENDER * RENDER * 3, NULL));
    }
    it_ctx_reset(&s->ctx);
    IT_TRY(embed_batch(err, s));
    it_tensor *scores = it_pref_forward(&s->ctx, &s->head, s->emb, 2 * P);
    it_tensor *loss = it_detloss_pairwise(&s->ctx, scores, P);
    IT_TRY(it_ctx_status(&s->ctx, err));
    IT_TRY(it_autograd_backward(err, &s->ctx, loss));
    int right = 0;
    for (int p = 0; p < P; p++) right += it_f32(scores)[p] > it_f32(scores)[P + p];
    st->loss = it_f32(loss)[0];
    st->n_terms = 1;
    st->term_name[0] = "pair_accuracy";
    st->term[0] = (double)right / P;
    return IT_OK;
}

/* ---------------------------------------------------------------- measurement */

it_status it_preference_measure(it_err *err, it_clip *clip, const it_pref *head, uint64_t seed, int n,
                                json_t *report)
{
    if (head->input_dim != clip->embed_dim)
        return it_err_set(err, IT_ERR_ARG, "preference: head input_dim %d does not match the CLIP width %d",
                          head->input_dim, clip->embed_dim);
    it_toy_renderer rd;
    IT_TRY(it_toy_renderer_init(err, &rd, RENDER, RENDER));
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    int was = it_autograd_set_enabled(&ctx, 0);
    uint8_t *clean = it_malloc((size_t)RENDER * RENDER * 3), *bad = it_malloc((size_t)RENDER * RENDER * 3),
            *mask = it_malloc((size_t)RENDER * RENDER);
    float *emb = it_malloc(2 * (size_t)clip->embed_dim * sizeof(float));
    it_status s = clean && bad && mask && emb ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "preference: out of memory");
    int right[IT_PREF_N_DEGRADE] = {0}, count[IT_PREF_N_DEGRADE] = {0};
    for (int i = 0; i < n && !s; i++) {
        int kind = 0;
        s = make_pair(err, &rd, mask, seed, (uint64_t)i, IT_TOY_EVAL, 0, clean, bad, &kind);
        it_image a = {RENDER, RENDER, 3, clean}, b = {RENDER, RENDER, 3, bad};
        if (!s) s = it_clip_embed_image(err, &ctx, clip, &a, emb);
        if (!s) s = it_clip_embed_image(err, &ctx, clip, &b, emb + clip->embed_dim);
        float sc[2];
        if (!s) s = it_pref_score(err, &ctx, head, emb, 2, sc);
        if (!s) {
            count[kind]++;
            right[kind] += sc[0] > sc[1];
        }
    }
    if (!s) {
        json_t *acc = json_object();
        int all = 0, tot = 0;
        for (int k = 0; k < IT_PREF_N_DEGRADE; k++) {
            all += right[k], tot += count[k];
            if (count[k]) json_object_set_new(acc, DEGRADE_NAMES[k], json_real(round(1e4 * right[k] / count[k]) / 1e4));
        }
        json_object_set_new(acc, "all", json_real(tot ? round(1e4 * all / tot) / 1e4 : 0));
        json_object_set_new(report, "pair_accuracy", acc);
        json_object_set_new(report, "pairs", json_integer(n));
    }
    it_autograd_set_enabled(&ctx, was);
    it_ctx_free(&ctx);
    it_toy_renderer_free(&rd);
    it_free(clean);
    it_free(bad);
    it_free(mask);
    it_free(emb);
    return s;
}

static it_status pref_eval(it_err *err, void *user, int64_t step, json_t *metrics)
{
    pref_state *s = user;
    (void)step;
    return it_preference_measure(err, &s->clip, &s->head, s->o->eval_seed, s->o->eval_n > 0 ? s->o->eval_n : 100,
                                 metrics);
}

/* FNV-1a 64 of the CLIP's weights file, in hex: the head only makes sense
 * on the embeddings of exactly that CLIP. */
static it_status clip_fingerprint(it_err *err, const char *clip_dir, char out[17])
{
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", clip_dir);
    uint8_t *d = NULL;
    size_t n = 0;
    IT_TRY(it_file_read(err, &d, &n, path, (size_t)1 << 31));
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ d[i]) * 0x100000001b3ull;
    it_free(d);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    return IT_OK;
}

/* ---------------------------------------------------------------- export */

/* OUT/preference/pref_config.json (the head's architecture, plus "clip":
 * the CLIP folder it reads, relative to this folder when it is OUT/clip)
 * and pref.safetensors. */
static it_status export_head(it_err *err, const pref_state *s, const char *out, const char *steps)
{
    char dir[4096], path[4200], clip_rel[4200];
    snprintf(dir, sizeof dir, "%s/preference", out);
    IT_TRY(it_mkdir_p(err, dir));
    json_t *j = json_deep_copy(s->head_cfg);
    if (!j) return it_err_set(err, IT_ERR_NOMEM, "preference: out of memory");
    char absbuf[4096];
    const char *abs = realpath(s->clip_dir, absbuf) ? absbuf : s->clip_dir; /* read from elsewhere later */
    snprintf(clip_rel, sizeof clip_rel, "%s", s->interim ? abs : "../clip");
    char expect[2100];
    snprintf(expect, sizeof expect, "%s/clip", out);
    if (!s->interim && strcmp(s->clip_dir, expect)) snprintf(clip_rel, sizeof clip_rel, "%s", abs);
    char fp[17];
    it_status fs = clip_fingerprint(err, s->clip_dir, fp);
    if (fs) {
        json_decref(j);
        return fs;
    }
    json_object_set_new(j, "clip", json_string(clip_rel));
    json_object_set_new(j, "clip_fingerprint", json_string(fp));
    json_object_set_new(j, "interim_clip", json_boolean(s->interim));
    char *txt = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!txt) return it_err_set(err, IT_ERR_NOMEM, "preference: out of memory");
    snprintf(path, sizeof path, "%s/pref_config.json", dir);
    it_status st = it_file_write_atomic(err, path, txt, strlen(txt));
    free(txt);
    IT_TRY(st);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->o->seed);
    const char *meta[] = {"intenttuner_component", "toy preference head", "steps", steps, "seed", seed, NULL};
    snprintf(path, sizeof path, "%s/pref.safetensors", dir);
    return it_pretrain_export_params(err, &s->head.params, path, 0, meta);
}

/* ---------------------------------------------------------------- entry points */

it_status it_pretrain_preference(it_err *err, const it_pretrain_opts *o)
{
    IT_TRY(it_pretrain_opts_check(err, o));
    char run[2048], key[4096];
    IT_TRY(it_pretrain_run_path(err, o, run, sizeof run));
    json_t *cfg = NULL;
    IT_TRY(it_pretrain_config_json(err, o, &cfg));
    pref_state s;
    it_status st = state_init(err, &s, o, cfg, run);
    json_decref(cfg);
    int64_t steps = o->steps > 0 ? o->steps : 1500;
    double lr = o->lr > 0 ? o->lr : 1e-3;
    it_pretrain_result res;
    memset(&res, 0, sizeof res);
    if (!st) {
        char *arch = json_dumps(s.head_cfg, JSON_COMPACT | JSON_SORT_KEYS);
        snprintf(key, sizeof key, "preference v1 clip=%s%s head=%s pairs=%d lr=%g steps=%lld seed=%llu kinds=%x",
                 s.interim ? "interim:" : "", s.clip_dir, arch ? arch : "?", s.P, lr, (long long)steps,
                 (unsigned long long)o->seed, s.kinds);
        free(arch);
        it_pretrain_loop l;
        memset(&l, 0, sizeof l);
        l.key = key;
        l.params = s.params;
        l.n_params = s.n_params;
        l.optim = it_optim_adamw_defaults(lr);
        l.sched = it_lr_schedule_make(IT_LR_COSINE, steps / 20, steps);
        l.max_grad_norm = 1.0;
        l.steps = steps;
        l.default_eval_every = 500;
        l.step = pref_step;
        l.eval = pref_eval;
        l.user = &s;
        if (s.interim) IT_LOG_W("preference: no trained toy CLIP in %s/clip: training on the interim random CLIP %s", o->out, s.clip_dir);
        st = it_pretrain_train(err, o, &l, &res);
    }
    if (!st && res.step > 0 && (res.finished || o->export_partial || o->export_only)) { /* interim weights too */
        char steps_s[32];
        snprintf(steps_s, sizeof steps_s, "%lld", (long long)res.step);
        st = export_head(err, &s, o->out, steps_s);
        json_t *metrics = json_object();
        it_pretrain_opts q = *o;
        q.model_dir = o->out;
        if (!st && metrics) st = it_quality_preference(err, &q, metrics);
        if (!st && metrics)
            json_object_set_new(metrics, "clip", json_string(s.interim ? "interim random CLIP" : s.clip_dir));
        if (!st) st = it_pretrain_record(err, o, &res, metrics);
        json_decref(metrics);
    }
    state_free(&s);
    return st;
}

it_status it_quality_preference(it_err *err, const it_pretrain_opts *o, json_t *report)
{
    char dir[4096], cfgp[4200], wp[4200], clipdir[8400];
    snprintf(dir, sizeof dir, "%s/preference", o->model_dir ? o->model_dir : o->out);
    snprintf(cfgp, sizeof cfgp, "%s/pref_config.json", dir);
    snprintf(wp, sizeof wp, "%s/pref.safetensors", dir);
    json_error_t je;
    json_t *j = json_load_file(cfgp, 0, &je);
    const char *c = json_string_value(json_object_get(j, "clip"));
    if (!c) {
        json_decref(j);
        return it_err_set(err, IT_ERR_FORMAT, "%s: no \"clip\" folder named (%s)", cfgp, j ? "key missing" : je.text);
    }
    if (c[0] == '/') snprintf(clipdir, sizeof clipdir, "%s", c);
    else snprintf(clipdir, sizeof clipdir, "%s/%s", dir, c);
    char want[17] = "", got[17];
    const char *fpv = json_string_value(json_object_get(j, "clip_fingerprint"));
    if (fpv) snprintf(want, sizeof want, "%s", fpv);
    json_decref(j);
    if (want[0]) {
        IT_TRY(clip_fingerprint(err, clipdir, got));
        if (strcmp(want, got))
            return it_err_set(err, IT_ERR_ARG, "%s: trained on another CLIP (fingerprint %s, %s/model.safetensors is %s): "
                              "retrain the head (toy pretrain preference)", cfgp, want, clipdir, got);
    }
    it_pref head;
    IT_TRY(it_pref_load(err, &head, cfgp, wp));
    it_clip clip;
    it_status s = it_clip_load(err, &clip, clipdir);
    if (!s) {
        s = it_preference_measure(err, &clip, &head, o->eval_seed, o->eval_n > 0 ? o->eval_n : 400, report);
        it_clip_free(&clip);
    }
    it_pref_free(&head);
    return s;
}
