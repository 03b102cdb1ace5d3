/* quality_clip.c: the toy CLIP's quality figures, measured on a model
 * folder through the real loader (vision/clip.h), so they describe the
 * files as shipped (f16 rounding included).
 *
 * Text-to-image retrieval: n fresh renders (a seed never used for
 * training) and each one's long caption (5-10 attributes, names
 * included); a text counts when its own render scores highest. Short
 * captions (1-3 attributes) fit many renders, so their figure is reported
 * beside, not as the target.
 *
 * Zero-shot attributes: for each render and attribute, one prompt per
 * value that a caption can name ("a creature with red hair"), each the
 * mean embedding of 3 caption variants that mention that attribute alone
 * (its noun too where a colour needs one: "wearing a red cap"); the render
 * counts when its true value's prompt scores highest. Values without
 * caption words (no hat, no goggles) have no prompt; renders with such a
 * value are left out of that attribute. The face marking is not measured:
 * it only comes with a named character. */
#include "toy/pretrain_clip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "tensor/autograd.h"
#include "toy/captions.h"
#include "toy/toydraw.h"
#include "vision/clip.h"

#define ZS_VARIANTS 3
#define MAX_VALUES 16

/* Text embeddings with a cache: zero-shot prompts repeat across renders. */
typedef struct text_cache {
    it_clip *m;
    it_ctx *ctx;
    char (*text)[IT_TOY_CAPTION_MAX];
    float *emb;                   /* (cap, embed_dim), normalised */
    int n, cap;
} text_cache;

static it_status cache_embed(it_err *err, text_cache *c, const char *text, const float **out)
{
    int d = c->m->embed_dim;
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->text[i], text)) {
            *out = c->emb + (size_t)i * d;
            return IT_OK;
        }
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 256;
        void *t = it_realloc(c->text, (size_t)cap * sizeof *c->text);
        if (!t) return it_err_set(err, IT_ERR_NOMEM, "clip quality: out of memory");
        c->text = t;
        float *e = it_realloc(c->emb, (size_t)cap * (size_t)d * sizeof(float));
        if (!e) return it_err_set(err, IT_ERR_NOMEM, "clip quality: out of memory");
        c->emb = e;
        c->cap = cap;
    }
    float *e = c->emb + (size_t)c->n * d;
    IT_TRY(it_clip_embed_text(err, c->ctx, c->m, text, e));
    it_clip_l2norm(e, d);
    snprintf(c->text[c->n], sizeof c->text[0], "%s", text);
    c->n++;
    *out = e;
    return IT_OK;
}

static double dot(const float *a, const float *b, int d)
{
    double s = 0;
    for (int i = 0; i < d; i++) s += (double)a[i] * b[i];
    return s;
}

/* Rank of row's own column among n scores (0 = best); ties count against. */
static int rank_of(const double *scores, int n, int self)
{
    int r = 0;
    for (int j = 0; j < n; j++)
        if (j != self && scores[j] >= scores[self]) r++;
    return r;
}

/* ---------------------------------------------------------------- retrieval */

static it_status retrieval(it_err *err, text_cache *tc, const it_toy_attrs *attrs, const float *img, int n,
                           uint64_t seed, it_toy_caption_style style, double *t2i1, double *t2i5, double *i2t1)
{
    int d = tc->m->embed_dim;
    float *txt = it_malloc((size_t)n * d * sizeof(float));
    double *sc = it_malloc((size_t)n * sizeof(double));
    if (!txt || !sc) {
        it_free(txt);
        it_free(sc);
        return it_err_set(err, IT_ERR_NOMEM, "clip quality: out of memory");
    }
    it_status st = IT_OK;
    for (int i = 0; i < n && !st; i++) {
        it_toy_caption cap;
        const float *e;
        st = it_toy_caption_make(err, &cap, &attrs[i], style, 1, 0, seed, (uint64_t)i, 0);
        if (!st) st = cache_embed(err, tc, cap.text, &e);
        if (!st) memcpy(txt + (size_t)i * d, e, (size_t)d * sizeof(float));
    }
    int top1 = 0, top5 = 0, itop1 = 0;
    for (int i = 0; i < n && !st; i++) {
        for (int j = 0; j < n; j++) sc[j] = dot(txt + (size_t)i * d, img + (size_t)j * d, d);
        int r = rank_of(sc, n, i);
        top1 += r == 0;
        top5 += r < 5;
        for (int j = 0; j < n; j++) sc[j] = dot(img + (size_t)i * d, txt + (size_t)j * d, d);
        itop1 += rank_of(sc, n, i) == 0;
    }
    *t2i1 = (double)top1 / n;
    if (t2i5) *t2i5 = (double)top5 / n;
    if (i2t1) *i2t1 = (double)itop1 / n;
    it_free(txt);
    it_free(sc);
    return st;
}

/* ---------------------------------------------------------------- zero-shot */

/* Caption bits an attribute needs beside itself (a colour needs its noun). */
static uint32_t with_noun(int attr)
{
    uint32_t m = 1u << attr;
    if (attr == IT_TOY_HAT_COLOUR) m |= 1u << IT_TOY_HAT;
    if (attr == IT_TOY_OUTFIT_COLOUR || attr == IT_TOY_OUTFIT_PATTERN) m |= 1u << IT_TOY_OUTFIT;
    if (attr == IT_TOY_ACCESSORY_COLOUR) m |= 1u << IT_TOY_ACCESSORY;
    return m;
}

/* Mean normalised embedding of the prompts for value v of attr on render a
 * (the render's other attributes only supply the noun). Returns 0 and
 * leaves out untouched when value v cannot be captioned there. */
static it_status value_prompt(it_err *err, text_cache *tc, const it_toy_attrs *a, int attr, int v, float *out,
                              int *ok)
{
    int d = tc->m->embed_dim;
    *ok = 0;
    if (!it_toy_attr_get(attr)->values[v].words[0]) return IT_OK;
    it_toy_attrs t = *a;
    t.v[attr] = v;
    /* Generic creature: a name (and the marking that comes with it) would
     * say more than the attribute. */
    t.character = -1;
    t.v[IT_TOY_MARKING] = IT_TOY_MARK_NONE;
    it_err e;
    it_err_clear(&e);
    if (it_toy_attrs_validate(&e, &t)) return IT_OK;
    memset(out, 0, (size_t)d * sizeof(float));
    uint32_t exclude = ~with_noun(attr) | IT_TOY_MENTION_CHARACTER;
    for (int k = 0; k < ZS_VARIANTS; k++) {
        it_toy_caption cap;
        const float *emb;
        /* Seed and index fixed: the wording depends on the value only. */
        IT_TRY(it_toy_caption_make(err, &cap, &t, IT_TOY_CAP_SHORT, 0, exclude, 0x25, (uint64_t)attr, k));
        if (!(cap.mentioned & (1u << attr))) return IT_OK;
        IT_TRY(cache_embed(err, tc, cap.text, &emb));
        for (int i = 0; i < d; i++) out[i] += emb[i];
    }
    it_clip_l2norm(out, d);
    *ok = 1;
    return IT_OK;
}

static it_status zero_shot(it_err *err, text_cache *tc, const it_toy_attrs *attrs, const float *img, int n,
                           it_clip_quality *q)
{
    int d = tc->m->embed_dim;
    float *proto = it_malloc((size_t)MAX_VALUES * d * sizeof(float));
    if (!proto) return it_err_set(err, IT_ERR_NOMEM, "clip quality: out of memory");
    it_status st = IT_OK;
    double sum = 0;
    int measured = 0;
    for (int a = 0; a < IT_TOY_N_ATTRS && !st; a++) {
        const it_toy_attr_info *ai = it_toy_attr_get(a);
        q->zs_acc[a] = -1;
        if (a == IT_TOY_MARKING) continue; /* a marking is a character's identity, not a free attribute */
        int right = 0, counted = 0;
        for (int i = 0; i < n && !st; i++) {
            int truth = attrs[i].v[a];
            if (truth < 0 || !ai->values[truth].words[0] || ai->n_values > MAX_VALUES) continue;
            int have[MAX_VALUES] = {0}, n_have = 0;
            for (int v = 0; v < ai->n_values && !st; v++) {
                st = value_prompt(err, tc, &attrs[i], a, v, proto + (size_t)v * d, &have[v]);
                n_have += have[v];
            }
            if (st || !have[truth] || n_have < 2) continue;
            int best = -1;
            double bs = -INFINITY;
            for (int v = 0; v < ai->n_values; v++) {
                if (!have[v]) continue;
                double s = dot(img + (size_t)i * d, proto + (size_t)v * d, d);
                if (s > bs) bs = s, best = v;
            }
            right += best == truth;
            counted++;
        }
        q->zs_n[a] = counted;
        q->zs_acc[a] = counted ? (double)right / counted : -1;
        if (counted) sum += q->zs_acc[a], measured++;
    }
    q->zs_mean = measured ? sum / measured : 0;
    it_free(proto);
    return st;
}

/* ---------------------------------------------------------------- driver */

static it_status embed_images(it_err *err, it_clip *m, it_ctx *ctx, const uint8_t *rgb, int n, int S, float *out)
{
    it_status st = IT_OK;
    for (int i = 0; i < n && !st; i++) {
        it_image img = {S, S, 3, (uint8_t *)rgb + (size_t)i * S * S * 3};
        st = it_clip_embed_image(err, ctx, m, &img, out + (size_t)i * m->embed_dim);
        if (!st) it_clip_l2norm(out + (size_t)i * m->embed_dim, m->embed_dim);
    }
    return st;
}

it_status it_clip_quality_model(it_err *err, it_clip *m, uint64_t seed, int n, int zero_shot_on, it_clip_quality *q)
{
    memset(q, 0, sizeof *q);
    for (int a = 0; a < IT_TOY_N_ATTRS; a++) q->zs_acc[a] = -1;
    if (n < 2 || n > 10000) return it_err_set(err, IT_ERR_ARG, "clip quality: renders must be in 2..10000");
    double t0 = it_time_now();
    int S = IT_TOYCLIP_RENDER, d = m->embed_dim;
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_autograd_set_enabled(&ctx, 0);
    uint8_t *rgb = it_malloc((size_t)n * S * S * 3);
    it_toy_attrs *attrs = it_malloc((size_t)n * sizeof *attrs);
    float *img = it_malloc((size_t)n * d * sizeof(float));
    text_cache tc = {m, &ctx, NULL, NULL, 0, 0};
    it_status st = rgb && attrs && img ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "clip quality: out of memory");
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    /* Purpose pretrain on a fresh seed: unseen renders of the trained
     * distribution (held-out characters and pose refused). */
    if (!st) st = it_toy_render_batch(err, S, S, &c, seed, 0, n, IT_TOY_PRETRAIN, rgb, attrs, NULL);
    if (!st) st = embed_images(err, m, &ctx, rgb, n, S, img);
    q->n = n;
    if (!st) st = retrieval(err, &tc, attrs, img, n, seed, IT_TOY_CAP_LONG, &q->t2i_top1, &q->t2i_top5, &q->i2t_top1);
    if (!st) st = retrieval(err, &tc, attrs, img, n, seed, IT_TOY_CAP_SHORT, &q->t2i_top1_short, NULL, NULL);
    if (!st && zero_shot_on) st = zero_shot(err, &tc, attrs, img, n, q);
    q->seconds = it_time_now() - t0;
    it_free(tc.text);
    it_free(tc.emb);
    it_free(rgb);
    it_free(attrs);
    it_free(img);
    it_ctx_free(&ctx);
    return st;
}

it_status it_clip_quality_measure(it_err *err, const char *dir, uint64_t seed, int n, it_clip_quality *q)
{
    it_clip m;
    IT_TRY(it_clip_load(err, &m, dir));
    it_status st = it_clip_quality_model(err, &m, seed, n, 1, q);
    it_clip_free(&m);
    return st;
}

json_t *it_clip_quality_json(const it_clip_quality *q)
{
    json_t *zs = json_object();
    for (int a = 0; zs && a < IT_TOY_N_ATTRS; a++)
        if (q->zs_acc[a] >= 0 && q->zs_n[a] > 0)
            json_object_set_new(zs, it_toy_attr_get(a)->name,
                                json_pack("{s:f, s:i}", "accuracy", round(q->zs_acc[a] * 1e4) / 1e4, "n", q->zs_n[a]));
    return json_pack("{s:i, s:f, s:f, s:f, s:f, s:o, s:f, s:f}", "renders", q->n, "t2i_top1",
                     round(q->t2i_top1 * 1e4) / 1e4, "t2i_top5", round(q->t2i_top5 * 1e4) / 1e4, "i2t_top1",
                     round(q->i2t_top1 * 1e4) / 1e4, "t2i_top1_short_captions", round(q->t2i_top1_short * 1e4) / 1e4,
                     "zero_shot", zs ? zs : json_null(), "zero_shot_mean", round(q->zs_mean * 1e4) / 1e4, "seconds",
                     round(q->seconds * 10) / 10);
}
