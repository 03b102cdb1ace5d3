/* pretrain_detector.c: the toy OWL-ViT detector: built on the toy CLIP,
 * trained on renders with their part boxes, exported as an
 * OwlViTForObjectDetection folder, measured with the inference code. */
#include "toy/pretrain_detector.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/rng.h"
#include "tensor/autograd.h"
#include "tensor/ops_eltwise.h"
#include "tensor/safetensors.h"
#include "toy/clip_source.h"
#include "toy/det_loss.h"
#include "toy/judge_train.h"
#include "toy/toydraw.h"
#include "vision/clip.h"

#define RENDER 128 /* the toy world's image size */

/* ---------------------------------------------------------------- queries */

/* A text query of a part: positive for the part, and when attr >= 0 only
 * where that attribute has that value (the kind of hat, outfit, accessory). */
typedef struct det_query {
    const char *text;
    int part, attr, value;
} det_query;

/* The first IT_TOY_N_PARTS are the generic part names (the measured ones). */
static const det_query QUERIES[] = {
    {"face", IT_TOY_PART_FACE, -1, 0},
    {"eyes", IT_TOY_PART_EYES, -1, 0},
    {"hair", IT_TOY_PART_HAIR, -1, 0},
    {"hat", IT_TOY_PART_HAT, -1, 0},
    {"outfit", IT_TOY_PART_OUTFIT, -1, 0},
    {"accessory", IT_TOY_PART_ACCESSORY, -1, 0},
    {"body", IT_TOY_PART_BODY, -1, 0},
    {"creature", IT_TOY_PART_BODY, -1, 0},
    {"clothes", IT_TOY_PART_OUTFIT, -1, 0},
    {"cap", IT_TOY_PART_HAT, IT_TOY_HAT, IT_TOY_HAT_CAP},
    {"top hat", IT_TOY_PART_HAT, IT_TOY_HAT, IT_TOY_HAT_TOP},
    {"beanie", IT_TOY_PART_HAT, IT_TOY_HAT, IT_TOY_HAT_BEANIE},
    {"crown", IT_TOY_PART_HAT, IT_TOY_HAT, IT_TOY_HAT_CROWN},
    {"jacket", IT_TOY_PART_OUTFIT, IT_TOY_OUTFIT, IT_TOY_OUTFIT_JACKET},
    {"overalls", IT_TOY_PART_OUTFIT, IT_TOY_OUTFIT, IT_TOY_OUTFIT_OVERALLS},
    {"t-shirt", IT_TOY_PART_OUTFIT, IT_TOY_OUTFIT, IT_TOY_OUTFIT_TSHIRT},
    {"necklace", IT_TOY_PART_ACCESSORY, IT_TOY_ACCESSORY, IT_TOY_ACC_NECKLACE},
    {"scarf", IT_TOY_PART_ACCESSORY, IT_TOY_ACCESSORY, IT_TOY_ACC_SCARF},
    {"bow tie", IT_TOY_PART_ACCESSORY, IT_TOY_ACCESSORY, IT_TOY_ACC_BOWTIE},
};
#define N_QUERIES ((int)(sizeof QUERIES / sizeof QUERIES[0]))

/* The attribute whose value says which kind of a part an image shows
 * (image-guided queries are positive only for the same kind). */
static int kind_attr(int part)
{
    return part == IT_TOY_PART_HAT ? IT_TOY_HAT : part == IT_TOY_PART_OUTFIT ? IT_TOY_OUTFIT
         : part == IT_TOY_PART_ACCESSORY ? IT_TOY_ACCESSORY : -1;
}

static int part_present(const it_toy_truth *t, int p)
{
    return t->pixels[p] > 0 && t->box[p][2] > t->box[p][0] && t->box[p][3] > t->box[p][1];
}

/* Ground truth box of part p as normalised (x0, y0, x1, y1). */
static void gt_corners(const it_toy_truth *t, int p, float c[4])
{
    for (int k = 0; k < 4; k++) c[k] = (float)t->box[p][k] / (float)RENDER;
}

static void to_corners(const float *cxcywh, float c[4])
{
    c[0] = cxcywh[0] - 0.5f * cxcywh[2];
    c[1] = cxcywh[1] - 0.5f * cxcywh[3];
    c[2] = cxcywh[0] + 0.5f * cxcywh[2];
    c[3] = cxcywh[1] + 0.5f * cxcywh[3];
}

/* ---------------------------------------------------------------- options */

typedef struct det_cfg {
    float w_l1, w_giou, w_cls;    /* DETR's 5, 2, 2 */
    float alpha, gamma;           /* focal */
    float augment;                /* share of images through the judge-style augmentation */
    int train_tower;              /* 0: only the heads learn */
    int image_queries;            /* 0: text queries only */
    int centre;                   /* 1: centre assignment (default); 0: one-to-one matching */
    int train_layers;             /* tower layers that learn, counted from the top (-1 = all) */
    int train_text_proj;          /* 1: the text projection learns (queries recomputed per step) */
} det_cfg;

static void det_cfg_parse(det_cfg *c, const json_t *j)
{
    *c = (det_cfg){5.0f, 2.0f, 2.0f, 0.25f, 2.0f, 0.5f, 1, 1, 1, -1, 0};
    json_t *v;
    if (json_is_number(v = json_object_get(j, "w_l1"))) c->w_l1 = (float)json_number_value(v);
    if (json_is_number(v = json_object_get(j, "w_giou"))) c->w_giou = (float)json_number_value(v);
    if (json_is_number(v = json_object_get(j, "w_cls"))) c->w_cls = (float)json_number_value(v);
    if (json_is_number(v = json_object_get(j, "augment"))) c->augment = (float)json_number_value(v);
    if (json_is_boolean(v = json_object_get(j, "train_tower"))) c->train_tower = json_is_true(v);
    if (json_is_boolean(v = json_object_get(j, "image_queries"))) c->image_queries = json_is_true(v);
    if (json_is_string(v = json_object_get(j, "assign"))) c->centre = strcmp(json_string_value(v), "matching") != 0;
    if (json_is_integer(v = json_object_get(j, "train_layers"))) c->train_layers = (int)json_integer_value(v);
    if (json_is_boolean(v = json_object_get(j, "train_text_projection"))) c->train_text_proj = json_is_true(v);
}

/* ---------------------------------------------------------------- model */

/* Copies a CLIP's towers into the detector: vision_model.* ->
 * owlvit.vision_model.* (pre_layrnorm -> pre_layernorm), text_model.* and
 * text_projection -> owlvit.*. A text projection of another shape (CLIP's
 * projection_dim != text width) stays the random square map it was given. */
static it_status copy_towers(it_err *err, it_owlvit *m, const it_clip *c, int *proj_copied)
{
    char name[512];
    *proj_copied = 0;
    const it_params *src[2] = {&c->vision.params, &c->text.params};
    it_params *dst[2] = {&m->vision.params, &m->text.params};
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < dst[s]->n; i++) {
            it_tensor *t = dst[s]->items[i];
            const char *n = t->name + strlen("owlvit.");
            char *pl;
            snprintf(name, sizeof name, "%s", n);
            if ((pl = strstr(name, "pre_layernorm"))) memmove(pl + 7, pl + 8, strlen(pl + 8) + 1); /* layrnorm */
            it_tensor *from = it_params_find(src[s], name);
            int is_proj = !strcmp(name, "text_projection.weight");
            if (!from || from->n != t->n) {
                if (is_proj) continue;
                return it_err_set(err, IT_ERR_FORMAT, "detector: the CLIP has no %s of %lld values", name,
                                  (long long)t->n);
            }
            memcpy(t->data, from->data, (size_t)t->n * sizeof(float));
            *proj_copied |= is_proj;
        }
    return IT_OK;
}

static void init_uniform(it_tensor *t, uint64_t seed, float bound)
{
    it_rng r;
    it_rng_init(&r, seed);
    it_rng_uniform(&r, it_f32(t), (size_t)t->n);
    for (int64_t k = 0; k < t->n; k++) it_f32(t)[k] = (2.0f * it_f32(t)[k] - 1.0f) * bound;
}

/* torch's Linear default (uniform +-1/sqrt(fan_in)) for the heads, unit
 * layer norm; the box head's last layer starts at zero so every patch
 * first predicts its own grid box (OWL-ViT's bias is the prior). */
static void init_heads(it_owlvit *m, uint64_t seed)
{
    it_params *ps = &m->head;
    for (size_t i = 0; i < ps->n; i++) {
        it_tensor *t = ps->items[i];
        if (!strcmp(t->name, "layer_norm.weight")) {
            for (int64_t k = 0; k < t->n; k++) it_f32(t)[k] = 1.0f;
        } else if (!strcmp(t->name, "layer_norm.bias") || !strncmp(t->name, "box_head.dense2", 15)) {
            memset(t->data, 0, (size_t)t->n * sizeof(float));
        } else {
            int64_t fan_in = m->vision.cfg.hidden;
            init_uniform(t, seed * 31 + i, 1.0f / sqrtf((float)fan_in));
        }
    }
}

/* Detector from the CLIP folder: towers copied, heads initialised, the
 * preprocessing of an OWL-ViT v1 folder (fixed square, no crop) with the
 * CLIP's mean and std, and the CLIP's tokenizer. */
static it_status build_model(it_err *err, it_owlvit *m, const char *clip_dir, int train_tower, int train_text,
                             uint64_t seed)
{
    it_clip c;
    IT_TRY(it_clip_load(err, &c, clip_dir));
    it_clip_vision_config vc = c.vision.cfg;
    it_clip_text_config tc = c.text.cfg;
    vc.projection_dim = tc.hidden;
    tc.projection_dim = tc.hidden;
    tc.has_projection = 1;
    tc.eos_token_id = 2; /* what the OWL-ViT loader uses: pooled at argmax(ids) */
    memset(m, 0, sizeof *m);
    it_status s = it_owlvit_init_ex(err, m, &vc, &tc, train_tower ? IT_MODEL_TRAINABLE : 0,
                                    train_text ? IT_MODEL_TRAINABLE : 0, IT_MODEL_TRAINABLE);
    int proj = 0;
    if (!s) {
        /* a square projection the CLIP cannot supply: random, frozen (invertible, so queries keep apart) */
        init_uniform(m->text.proj->w, seed * 17 + 5, 1.0f / sqrtf((float)tc.hidden));
        s = copy_towers(err, m, &c, &proj);
    }
    if (!s) {
        init_heads(m, seed);
        m->pre = c.pre;
        m->pre.shortest_edge = 0;
        m->pre.resize_w = m->pre.resize_h = vc.image_size;
        m->pre.do_crop = 0;
        s = it_clip_tokenizer_load(err, &m->tok, clip_dir);
    }
    if (!s && !proj) IT_LOG_W("detector: the CLIP's text projection is not square; a random frozen one is used");
    it_clip_free(&c);
    if (s) it_owlvit_free(m);
    return s;
}

/* ---------------------------------------------------------------- state */

typedef struct det_state {
    const it_pretrain_opts *o;
    det_cfg cfg;
    it_owlvit m;
    it_ctx ctx;
    int B, S, gh, gw, N, dq;
    float *text_q;            /* (N_QUERIES, dq) */
    float *text_pooled;       /* (N_QUERIES, text hidden): train_text_proj only, the frozen tower's output */
    float *bias;              /* (N, 4) */
    uint8_t *rgb;             /* (B, RENDER, RENDER, 3) */
    float *pixels;            /* (B, 3, S, S) */
    it_toy_attrs *attrs;      /* (B) */
    it_toy_truth *truth;      /* (B) */
    int32_t *assign;          /* (B, N) part each patch learns, or -1 (background) */
    int32_t *rep;             /* (B, parts) the patch whose embedding is the part's image query, or -1 */
    it_optim_param *params;
    size_t n_params;
    char clip_dir[2048];
    int interim;
} det_state;

static void state_free(det_state *s)
{
    it_owlvit_free(&s->m);
    it_ctx_free(&s->ctx);
    it_free(s->text_q);
    it_free(s->text_pooled);
    it_free(s->bias);
    it_free(s->rgb);
    it_free(s->pixels);
    it_free(s->attrs);
    it_free(s->truth);
    it_free(s->assign);
    it_free(s->rep);
    it_free(s->params);
}

static it_status text_queries(it_err *err, it_owlvit *m, it_ctx *ctx, float *q)
{
    for (int k = 0; k < N_QUERIES; k++) IT_TRY(it_owlvit_embed_text(err, ctx, m, QUERIES[k].text, q + (size_t)k * m->query_dim));
    return IT_OK;
}

/* Does tower weight `name` learn, with the top `layers` blocks trainable
 * (and the post layer norm, which OWL-ViT applies to every token)? */
static int tower_trains(const char *name, int layers, int n_layers)
{
    if (layers < 0 || layers >= n_layers) return 1;
    if (strstr(name, "post_layernorm")) return layers > 0;
    const char *l = strstr(name, "encoder.layers.");
    return l && atoi(l + strlen("encoder.layers.")) >= n_layers - layers;
}

/* The optimiser's list: the heads and the learning part of the tower;
 * frozen tower weights lose their gradient, so no op records them and the
 * backward pass stops above them. */
/* The frozen text tower's pooled states of the queries (before the
 * projection), for a trainable projection. */
static it_status text_pooled(it_err *err, det_state *s)
{
    int L = s->m.text.cfg.max_positions, h = s->m.text.cfg.hidden;
    s->text_pooled = it_malloc((size_t)N_QUERIES * h * sizeof(float));
    if (!s->text_pooled) return it_err_set(err, IT_ERR_NOMEM, "detector: out of memory");
    for (int k = 0; k < N_QUERIES; k++) {
        it_mark mk = it_ctx_mark(&s->ctx);
        int was = it_autograd_set_enabled(&s->ctx, 0);
        it_tensor *ids = it_tensor_new(&s->ctx, IT_DTYPE_I32, IT_SHAPE(1, L));
        it_status st = ids ? IT_OK : it_ctx_status(&s->ctx, err);
        if (!st) st = it_clip_encode_padded(err, s->m.tok, ids->data, L, NULL, QUERIES[k].text, strlen(QUERIES[k].text));
        it_clip_text_out to;
        if (!st) st = it_clip_text_forward(err, &s->ctx, &s->m.text, ids, 0, 1, &to);
        if (!st) memcpy(s->text_pooled + (size_t)k * h, it_f32(to.pooled), (size_t)h * sizeof(float));
        it_autograd_set_enabled(&s->ctx, was);
        it_ctx_release(&s->ctx, mk);
        IT_TRY(st);
    }
    return IT_OK;
}

static it_status params_join(it_err *err, det_state *s)
{
    const it_params *sets[2] = {&s->m.head, &s->m.vision.params};
    size_t n = 0;
    s->params = it_malloc((s->m.head.n + s->m.vision.params.n) * sizeof *s->params);
    if (!s->params) return it_err_set(err, IT_ERR_NOMEM, "detector: out of memory");
    for (int k = 0; k < (s->cfg.train_tower ? 2 : 1); k++)
        for (size_t i = 0; i < sets[k]->n; i++) {
            it_tensor *t = sets[k]->items[i];
            if (k == 1 && !tower_trains(t->name, s->cfg.train_layers, s->m.vision.cfg.n_layers)) {
                t->grad = NULL;
                t->requires_grad = 0;
                continue;
            }
            s->params[n++] = (it_optim_param){t->name, it_f32(t), t->grad, (size_t)t->n, 0};
        }
    for (size_t i = 0; s->cfg.train_text_proj && i < s->m.text.params.n; i++) {
        it_tensor *t = s->m.text.params.items[i];
        if (t == s->m.text.proj->w) {
            it_optim_param *np = it_realloc(s->params, (n + 1) * sizeof *s->params);
            if (!np) return it_err_set(err, IT_ERR_NOMEM, "detector: out of memory");
            s->params = np;
            s->params[n++] = (it_optim_param){t->name, it_f32(t), t->grad, (size_t)t->n, 0};
        } else {
            t->grad = NULL;
            t->requires_grad = 0;
        }
    }
    s->n_params = n;
    return IT_OK;
}

static it_status state_init(it_err *err, det_state *s, const it_pretrain_opts *o, const json_t *cfg, const char *run)
{
    memset(s, 0, sizeof *s);
    s->o = o;
    det_cfg_parse(&s->cfg, cfg);
    it_ctx_init(&s->ctx, 0);
    IT_TRY(it_clip_source_resolve(err, s->clip_dir, sizeof s->clip_dir, o->out, run, cfg, o->seed, &s->interim));
    IT_TRY(build_model(err, &s->m, s->clip_dir, s->cfg.train_tower, s->cfg.train_text_proj, o->seed));
    s->B = o->batch > 0 ? o->batch : 8;
    s->S = s->m.vision.cfg.image_size;
    s->gh = s->gw = s->S / s->m.vision.cfg.patch_size;
    s->N = s->gh * s->gw;
    s->dq = s->m.query_dim;
    size_t B = (size_t)s->B;
    s->text_q = it_malloc((size_t)N_QUERIES * s->dq * sizeof(float));
    s->bias = it_malloc((size_t)s->N * 4 * sizeof(float));
    s->rgb = it_malloc(B * RENDER * RENDER * 3);
    s->pixels = it_malloc(B * 3 * s->S * s->S * sizeof(float));
    s->attrs = it_malloc(B * sizeof *s->attrs);
    s->truth = it_malloc(B * sizeof *s->truth);
    s->assign = it_malloc(B * (size_t)s->N * sizeof(int32_t));
    s->rep = it_malloc(B * IT_TOY_N_PARTS * sizeof(int32_t));
    if (!s->text_q || !s->bias || !s->rgb || !s->pixels || !s->attrs || !s->truth || !s->assign || !s->rep)
        return it_err_set(err, IT_ERR_NOMEM, "detector: out of memory");
    it_detloss_box_bias(s->bias, s->gh, s->gw);
    IT_TRY(text_queries(err, &s->m, &s->ctx, s->text_q));
    IT_TRY(params_join(err, s));
    return s->cfg.train_text_proj ? text_pooled(err, s) : IT_OK;
}

/* ---------------------------------------------------------------- data */

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Renders, augments and preprocesses the images of step `step`: a pure
 * function of (seed, step, batch). */
static it_status batch_make(it_err *err, det_state *s, int64_t step)
{
    uint64_t first = (uint64_t)step * (uint64_t)s->B;
    IT_TRY(it_toy_render_batch(err, RENDER, RENDER, NULL, s->o->seed, first, s->B, IT_TOY_PRETRAIN, s->rgb, s->attrs,
                               s->truth));
    for (int b = 0; b < s->B; b++) {
        uint8_t *img = s->rgb + (size_t)b * RENDER * RENDER * 3;
        uint64_t idx = first + (uint64_t)b;
        double u = (double)(mix64(s->o->seed ^ mix64(idx + 0xDE7ull)) >> 11) * 0x1.0p-53;
        if (u < s->cfg.augment) IT_TRY(it_judge_augment(err, img, RENDER, RENDER, s->o->seed ^ 0xDE7ull, idx, s->S, NULL, NULL, NULL));
        it_image in = {RENDER, RENDER, 3, img}, pre = {0};
        IT_TRY(it_preprocess_u8(err, &s->m.pre, &in, &pre));
        it_preprocess_normalize(&s->m.pre, &pre, s->pixels + (size_t)b * 3 * s->S * s->S);
        it_image_free(&pre);
    }
    return IT_OK;
}

/* ---------------------------------------------------------------- matching */

static float logit_of(const float *emb, float shift, float scale_raw, const float *q, int d)
{
    double ee = 0, qq = 0, eq = 0;
    for (int k = 0; k < d; k++) {
        ee += (double)emb[k] * emb[k];
        qq += (double)q[k] * q[k];
        eq += (double)emb[k] * q[k];
    }
    double cosv = eq / ((sqrt(ee) + 1e-6) * (sqrt(qq) + 1e-6));
    double sc = (scale_raw > 0 ? scale_raw : expm1(scale_raw)) + 1.0;
    return (float)((cosv + shift) * sc);
}

/* One-to-one assignment of each present part to a patch (DETR's matching,
 * greedy by lowest cost: box L1 + GIoU + class probability of the part's
 * name). Fills s->assign and s->rep. */
static void match_parts(det_state *s, const it_owlvit_heads *h)
{
    int N = s->N, d = s->dq;
    for (int k = 0; k < s->B * N; k++) s->assign[k] = -1;
    const float *raw = it_f32(h->box_raw), *ce = it_f32(h->class_emb), *sh = it_f32(h->shift),
                *sr = it_f32(h->scale_raw);
    for (int b = 0; b < s->B; b++) {
        int used_part[IT_TOY_N_PARTS] = {0};
        uint8_t *used = it_calloc((size_t)N, 1);
        for (int p = 0; p < IT_TOY_N_PARTS; p++) s->rep[b * IT_TOY_N_PARTS + p] = -1;
        for (;;) {
            double best = INFINITY;
            int bp = -1, bi = -1;
            for (int p = 0; p < IT_TOY_N_PARTS; p++) {
                if (used_part[p] || !part_present(&s->truth[b], p)) continue;
                float g[4];
                gt_corners(&s->truth[b], p, g);
                float gc[4] = {(g[0] + g[2]) / 2, (g[1] + g[3]) / 2, g[2] - g[0], g[3] - g[1]};
                for (int i = 0; i < N; i++) {
                    if (used && used[i]) continue;
                    size_t r = (size_t)b * N + i;
                    float pb[4], pc[4];
                    for (int k = 0; k < 4; k++) pb[k] = 1.0f / (1.0f + expf(-(raw[r * 4 + k] + s->bias[i * 4 + k])));
                    to_corners(pb, pc);
                    double l1 = 0;
                    for (int k = 0; k < 4; k++) l1 += fabs(pb[k] - gc[k]);
                    float lg = logit_of(ce + r * d, sh[r], sr[r], s->text_q + (size_t)p * d, d);
                    double cost = s->cfg.w_l1 * l1 + s->cfg.w_giou * (1 - it_detloss_giou(pc, g)) -
                                  s->cfg.w_cls / (1 + exp(-lg));
                    if (cost < best) {
                        best = cost;
                        bp = p;
                        bi = i;
                    }
                }
            }
            if (bp < 0) break;
            used_part[bp] = 1;
            if (used) used[bi] = 1;
            s->rep[b * IT_TOY_N_PARTS + bp] = bi;
            s->assign[b * N + bi] = bp;
        }
        it_free(used);
    }
}

/* Centre assignment (FCOS's rule): every patch whose centre lies inside a
 * part's box learns that part (the smallest box when several contain it,
 * so eyes win over face and face over body); a part no centre falls into
 * takes the patch nearest its box centre. Many positives per part make the
 * class head learn much faster than one-to-one matching, and every
 * positive patch regresses its part's box, so the top-scoring one is
 * usable at inference. The image query of a part is its patch nearest the
 * box centre. */
static void assign_centres(det_state *s)
{
    int N = s->N, gw = s->gw, gh = s->gh;
    for (int b = 0; b < s->B; b++) {
        const it_toy_truth *t = &s->truth[b];
        int32_t *as = s->assign + (size_t)b * N;
        float area[IT_TOY_N_PARTS], g[IT_TOY_N_PARTS][4];
        for (int p = 0; p < IT_TOY_N_PARTS; p++) {
            gt_corners(t, p, g[p]);
            area[p] = part_present(t, p) ? (g[p][2] - g[p][0]) * (g[p][3] - g[p][1]) : -1;
        }
        for (int i = 0; i < N; i++) {
            float cx = ((float)(i % gw) + 0.5f) / (float)gw, cy = ((float)(i / gw) + 0.5f) / (float)gh;
            as[i] = -1;
            for (int p = 0; p < IT_TOY_N_PARTS; p++)
                if (area[p] > 0 && cx >= g[p][0] && cx < g[p][2] && cy >= g[p][1] && cy < g[p][3] &&
                    (as[i] < 0 || area[p] < area[as[i]]))
                    as[i] = p;
        }
        for (int p = 0; p < IT_TOY_N_PARTS; p++) {
            int32_t *rp = &s->rep[b * IT_TOY_N_PARTS + p];
            *rp = -1;
            if (area[p] <= 0) continue;
            float gx = (g[p][0] + g[p][2]) / 2, gy = (g[p][1] + g[p][3]) / 2, best = INFINITY, best_own = INFINITY;
            int near = 0, own = -1;
            for (int i = 0; i < N; i++) {
                float dx = ((float)(i % gw) + 0.5f) / (float)gw - gx, dy = ((float)(i / gw) + 0.5f) / (float)gh - gy;
                float d2 = dx * dx + dy * dy;
                if (d2 < best) best = d2, near = i;
                if (as[i] == p && d2 < best_own) best_own = d2, own = i;
            }
            if (own < 0 && (as[near] < 0 || area[as[near]] > area[p])) own = near, as[near] = p;
            *rp = own;
        }
        /* a patch taken over by a smaller part may have been some part's representative */
        for (int p = 0; p < IT_TOY_N_PARTS; p++)
            if (s->rep[b * IT_TOY_N_PARTS + p] >= 0 && as[s->rep[b * IT_TOY_N_PARTS + p]] != p)
                s->rep[b * IT_TOY_N_PARTS + p] = -1;
    }
}

/* ---------------------------------------------------------------- step */

typedef struct det_targets {
    it_detloss_box_args box;
    it_detloss_class_args cls;
    int32_t *row, *qrow;      /* (M) boxes' rows, (K) image queries' rows */
    int *qimg, *qpart;        /* (K) */
    float *gt;                /* (M, 4) */
    uint8_t *target, *valid;
    int n_pos;
} det_targets;

/* Is text query q positive for part p of image b? */
static int text_positive(const det_state *s, int b, int q, int p)
{
    const det_query *dq = &QUERIES[q];
    return dq->part == p && (dq->attr < 0 || s->attrs[b].v[dq->attr] == dq->value);
}

static it_status make_targets(it_err *err, det_state *s, det_targets *t)
{
    int B = s->B, N = s->N, M = 0, K = 0;
    size_t cap = (size_t)B * N + 1, capq = (size_t)B * IT_TOY_N_PARTS + 1;
    t->row = it_ctx_alloc(&s->ctx, cap * sizeof(int32_t));
    t->gt = it_ctx_alloc(&s->ctx, cap * 4 * sizeof(float));
    t->qrow = it_ctx_alloc(&s->ctx, capq * sizeof(int32_t));
    t->qimg = it_ctx_alloc(&s->ctx, capq * sizeof(int));
    t->qpart = it_ctx_alloc(&s->ctx, capq * sizeof(int));
    if (!t->row || !t->gt || !t->qrow || !t->qimg || !t->qpart)
        return it_err_set(err, IT_ERR_NOMEM, "detector: out of memory for targets");
    for (int b = 0; b < B; b++)
        for (int i = 0; i < N; i++) {
            int p = s->assign[b * N + i];
            if (p < 0) continue;
            float g[4];
            gt_corners(&s->truth[b], p, g);
            t->row[M] = b * N + i;
            t->gt[M * 4 + 0] = (g[0] + g[2]) / 2;
            t->gt[M * 4 + 1] = (g[1] + g[3]) / 2;
            t->gt[M * 4 + 2] = g[2] - g[0];
            t->gt[M * 4 + 3] = g[3] - g[1];
            M++;
        }
    for (int b = 0; b < B && s->cfg.image_queries && B > 1; b++)
        for (int p = 0; p < IT_TOY_N_PARTS; p++) {
            int i = s->rep[b * IT_TOY_N_PARTS + p];
            if (i < 0) continue;
            t->qrow[K] = b * N + i;
            t->qimg[K] = b;
            t->qpart[K] = p;
            K++;
        }
    int Q = N_QUERIES + K;
    size_t RQ = (size_t)B * N * Q;
    t->target = it_ctx_calloc(&s->ctx, RQ);
    t->valid = it_ctx_alloc(&s->ctx, RQ);
    if (!t->target || !t->valid) return it_err_set(err, IT_ERR_NOMEM, "detector: out of memory for targets");
    memset(t->valid, 1, RQ);
    int pos = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < N; i++) {
            int p = s->assign[b * N + i];
            if (p < 0) continue;
            uint8_t *tr = t->target + ((size_t)b * N + i) * Q, *va = t->valid + ((size_t)b * N + i) * Q;
            for (int q = 0; q < N_QUERIES; q++)
                if (text_positive(s, b, q, p)) tr[q] = 1, pos++;
            int ka = kind_attr(p);
            for (int k = 0; k < K; k++) {
                if (t->qpart[k] != p || t->qimg[k] == b) continue;
                if (ka >= 0 && s->attrs[b].v[ka] != s->attrs[t->qimg[k]].v[ka]) va[N_QUERIES + k] = 0;
                else tr[N_QUERIES + k] = 1, pos++;
            }
        }
    /* a query never scores its own image (trivially the same patch) */
    for (int k = 0; k < K; k++)
        for (int i = 0; i < N; i++) t->valid[((size_t)t->qimg[k] * N + i) * Q + N_QUERIES + k] = 0;
    t->n_pos = pos;
    t->box = (it_detloss_box_args){M, t->row, t->gt, s->bias, N, s->cfg.w_l1, s->cfg.w_giou, (float)(M ? M : 1)};
    t->cls = (it_detloss_class_args){N_QUERIES, s->text_q, K, t->qrow, t->target, t->valid, s->cfg.alpha,
                                     s->cfg.gamma, (float)(pos ? pos : 1)};
    return IT_OK;
}

static it_status det_step(it_err *err, void *user, int64_t step, it_pretrain_stats *st)
{
    det_state *s = user;
    IT_TRY(batch_make(err, s, step));
    it_ctx_reset(&s->ctx);
    it_tensor *px = it_tensor_wrap(&s->ctx, s->pixels, IT_DTYPE_F32, IT_SHAPE(s->B, 3, s->S, s->S));
    it_clip_vision_out vo;
    IT_TRY(it_clip_vision_forward(err, &s->ctx, &s->m.vision, px, &vo));
    it_owlvit_heads h;
    it_owlvit_heads_forward(&s->ctx, &s->m, vo.hidden, s->N, &h);
    IT_TRY(it_ctx_status(&s->ctx, err));
    if (s->cfg.centre) assign_centres(s);
    else match_parts(s, &h);
    det_targets *t = it_ctx_calloc(&s->ctx, sizeof *t);
    if (!t) return it_err_set(err, IT_ERR_NOMEM, "detector: out of memory");
    IT_TRY(make_targets(err, s, t));
    it_tensor *lb = it_detloss_box(&s->ctx, h.box_raw, &t->box);
    it_tensor *tq = NULL;
    if (s->text_pooled) /* queries = text_projection(pooled), learning */
        tq = it_lin_forward(&s->ctx, s->m.text.proj,
                            it_tensor_wrap(&s->ctx, s->text_pooled, IT_DTYPE_F32,
                                           IT_SHAPE(N_QUERIES, s->m.text.cfg.hidden)));
    it_tensor *lc = it_detloss_class_q(&s->ctx, h.class_emb, h.shift, h.scale_raw, tq, &t->cls, NULL);
    it_tensor *loss = it_op_add(&s->ctx, lb, it_op_scale(&s->ctx, lc, s->cfg.w_cls, 0.0f));
    IT_TRY(it_ctx_status(&s->ctx, err));
    IT_TRY(it_autograd_backward(err, &s->ctx, loss));
    st->loss = it_f32(loss)[0];
    st->n_terms = 2;
    st->term_name[0] = "box";
    st->term[0] = it_f32(lb)[0];
    st->term_name[1] = "class";
    st->term[1] = it_f32(lc)[0];
    return IT_OK;
}

/* ---------------------------------------------------------------- measurement */

typedef struct recall_acc {
    int hit[IT_TOY_N_PARTS], n[IT_TOY_N_PARTS];
} recall_acc;

static int top_patch(const float *logits, int n, int nq, int q)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[(size_t)i * nq + q] > logits[(size_t)best * nq + q]) best = i;
    return best;
}

static json_t *recall_json(const recall_acc *a)
{
    json_t *o = json_object();
    double sum = 0;
    int parts = 0;
    for (int p = 0; p < IT_TOY_N_PARTS; p++) {
        if (!a->n[p]) continue;
        double r = (double)a->hit[p] / a->n[p];
        json_object_set_new(o, it_toy_part_name(p), json_real(round(r * 1e4) / 1e4));
        sum += r;
        parts++;
    }
    json_object_set_new(o, "mean", json_real(parts ? round(sum / parts * 1e4) / 1e4 : 0));
    return o;
}

/* Top-1 recall at IoU 0.5: for every part present, the patch with the
 * highest logit for the part's query must predict a box overlapping the
 * truth by IoU >= 0.5. Image-guided: the query is the class embedding that
 * it_owlvit_box_query picks for the part's true box on image i, searched
 * in image i + 1. */
it_status it_detector_measure(it_err *err, it_owlvit *m, uint64_t seed, int n, json_t *report)
{
    if (n < 2) return it_err_set(err, IT_ERR_ARG, "detector quality: needs at least 2 images");
    int dq = m->query_dim;
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    int was = it_autograd_set_enabled(&ctx, 0);
    float *q = it_malloc((size_t)IT_TOY_N_PARTS * dq * sizeof(float));
    uint8_t *rgb = it_malloc((size_t)RENDER * RENDER * 3);
    it_owlvit_image *im = it_calloc((size_t)n, sizeof *im);
    it_toy_truth *truth = it_malloc((size_t)n * sizeof *truth);
    it_status s = q && rgb && im && truth ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "detector quality: out of memory");
    for (int k = 0; k < IT_TOY_N_PARTS && !s; k++) s = it_owlvit_embed_text(err, &ctx, m, QUERIES[k].text, q + (size_t)k * dq);
    for (int i = 0; i < n && !s; i++) {
        s = it_toy_render_batch(err, RENDER, RENDER, NULL, seed, (uint64_t)i, 1, IT_TOY_EVAL, rgb, NULL, &truth[i]);
        it_image img = {RENDER, RENDER, 3, rgb};
        if (!s) s = it_owlvit_embed_image(err, &ctx, m, &img, &im[i]);
    }
    recall_acc text = {{0}, {0}}, image = {{0}, {0}}, inside = {{0}, {0}};
    float *logits = s ? NULL : it_malloc((size_t)im[0].n * IT_TOY_N_PARTS * sizeof(float));
    float *qi = it_malloc((size_t)dq * sizeof(float));
    if (!s && (!logits || !qi)) s = it_err_set(err, IT_ERR_NOMEM, "detector quality: out of memory");
    for (int i = 0; i < n && !s; i++) {
        it_owlvit_logits(&im[i], q, IT_TOY_N_PARTS, logits);
        const it_owlvit_image *ref = &im[(i + n - 1) % n];
        const it_toy_truth *rt = &truth[(i + n - 1) % n];
        for (int p = 0; p < IT_TOY_N_PARTS; p++) {
            if (!part_present(&truth[i], p)) continue;
            float g[4], c[4];
            gt_corners(&truth[i], p, g);
            int top = top_patch(logits, im[i].n, IT_TOY_N_PARTS, p), gw = im[i].grid_w, gh = im[i].grid_h;
            to_corners(im[i].boxes + (size_t)top * 4, c);
            text.n[p]++;
            text.hit[p] += it_box_iou(c, g) >= 0.5f;
            /* diagnostic: does the top patch lie on the part at all (classification alone)? */
            float tx = ((float)(top % gw) + 0.5f) / (float)gw, ty = ((float)(top / gw) + 0.5f) / (float)gh;
            inside.n[p]++;
            inside.hit[p] += tx >= g[0] && tx < g[2] && ty >= g[1] && ty < g[3];
            if (!part_present(rt, p)) continue;
            float rg[4], l1;
            gt_corners(rt, p, rg);
            if (it_owlvit_box_query(ref, rg, qi) < 0) continue;
            float *li = it_malloc((size_t)im[i].n * sizeof(float));
            if (!li) {
                s = it_err_set(err, IT_ERR_NOMEM, "detector quality: out of memory");
                break;
            }
            it_owlvit_logits(&im[i], qi, 1, li);
            to_corners(im[i].boxes + (size_t)top_patch(li, im[i].n, 1, 0) * 4, c);
            l1 = it_box_iou(c, g);
            image.n[p]++;
            image.hit[p] += l1 >= 0.5f;
            it_free(li);
        }
    }
    if (!s) {
        json_object_set_new(report, "text_recall", recall_json(&text));
        json_object_set_new(report, "image_recall", recall_json(&image));
        json_object_set_new(report, "top_patch_on_part", recall_json(&inside));
        json_object_set_new(report, "images", json_integer(n));
    }
    for (int i = 0; im && i < n; i++) it_owlvit_image_free(&im[i]);
    it_autograd_set_enabled(&ctx, was);
    it_ctx_free(&ctx);
    it_free(q);
    it_free(qi);
    it_free(rgb);
    it_free(im);
    it_free(truth);
    it_free(logits);
    return s;
}

static it_status det_eval(it_err *err, void *user, int64_t step, json_t *metrics)
{
    det_state *s = user;
    (void)step;
    int n = s->o->eval_n > 0 ? s->o->eval_n : 64;
    return it_detector_measure(err, &s->m, s->o->eval_seed, n, metrics);
}

/* ---------------------------------------------------------------- export */

static it_status write_json_file(it_err *err, const char *path, json_t *j)
{
    char *txt = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!txt) return it_err_set(err, IT_ERR_NOMEM, "%s: out of memory", path);
    it_status s = it_file_write_atomic(err, path, txt, strlen(txt));
    free(txt);
    return s;
}

static json_t *owl_config(const it_owlvit *m)
{
    const it_clip_vision_config *v = &m->vision.cfg;
    const it_clip_text_config *t = &m->text.cfg;
    const char *act_v = v->act == IT_CLIP_GELU ? "gelu" : "quick_gelu", *act_t = t->act == IT_CLIP_GELU ? "gelu" : "quick_gelu";
    json_t *text = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:f, s:i, s:i, s:i}", "model_type",
                             "owlvit_text_model", "vocab_size", t->vocab_size, "hidden_size", t->hidden,
                             "intermediate_size", t->intermediate, "num_hidden_layers", t->n_layers,
                             "num_attention_heads", t->n_heads, "max_position_embeddings", t->max_positions,
                             "hidden_act", act_t, "layer_norm_eps", (double)t->eps, "bos_token_id", t->vocab_size - 2,
                             "eos_token_id", t->vocab_size - 1, "pad_token_id", t->vocab_size - 1);
    json_t *vision = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:f}", "model_type",
                               "owlvit_vision_model", "hidden_size", v->hidden, "intermediate_size", v->intermediate,
                               "num_hidden_layers", v->n_layers, "num_attention_heads", v->n_heads, "image_size",
                               v->image_size, "patch_size", v->patch_size, "num_channels", v->channels,
                               "hidden_act", act_v, "layer_norm_eps", (double)v->eps);
    return json_pack("{s:[s], s:s, s:i, s:f, s:o, s:o}", "architectures", "OwlViTForObjectDetection", "model_type",
                     "owlvit", "projection_dim", t->hidden, "logit_scale_init_value", 2.6592, "text_config", text,
                     "vision_config", vision);
}

static json_t *owl_preprocessor(const it_owlvit *m)
{
    int S = m->vision.cfg.image_size;
    const float *mu = m->pre.mean, *sd = m->pre.std;
    return json_pack("{s:{s:i, s:i}, s:b, s:b, s:b, s:b, s:b, s:[f, f, f], s:[f, f, f], s:s, s:i, s:f, s:{s:i, s:i}}",
                     "crop_size", "height", S, "width", S, "do_center_crop", 0, "do_convert_rgb", 1,
                     "do_normalize", 1, "do_rescale", 1, "do_resize", 1, "image_mean", (double)mu[0], (double)mu[1],
                     (double)mu[2], "image_std", (double)sd[0], (double)sd[1], (double)sd[2],
                     "image_processor_type", "OwlViTImageProcessor", "resample", 3, "rescale_factor", 1.0 / 255.0,
                     "size", "height", S, "width", S);
}

static it_status add_all(it_err *err, it_safetensors_writer *w, const it_params *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        const it_tensor *t = ps->items[i];
        int half = ps->half && ps->half[i];
        IT_TRY(it_safetensors_writer_add_f32_as(err, w, t->name, half ? IT_DTYPE_F16 : IT_DTYPE_F32, t->ndim,
                                                t->shape, it_f32(t)));
    }
    return IT_OK;
}

static it_status copy_file(it_err *err, const char *from_dir, const char *to_dir, const char *name, int required)
{
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/%s", from_dir, name);
    snprintf(b, sizeof b, "%s/%s", to_dir, name);
    if (!it_file_exists(a)) return required ? it_err_set(err, IT_ERR_NOT_FOUND, "%s: missing", a) : IT_OK;
    uint8_t *d = NULL;
    size_t n = 0;
    IT_TRY(it_file_read(err, &d, &n, a, 64u << 20));
    it_status s = it_file_write_atomic(err, b, d, n);
    it_free(d);
    return s;
}

/* OUT/owlvit: config.json, preprocessor_config.json, tokenizer files of the
 * CLIP, model.safetensors (linear weights f16) with provenance metadata. */
static it_status export_owlvit(it_err *err, const det_state *s, const char *dir, const char *steps)
{
    char path[4200];
    IT_TRY(it_mkdir_p(err, dir));
    snprintf(path, sizeof path, "%s/config.json", dir);
    IT_TRY(write_json_file(err, path, owl_config(&s->m)));
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    IT_TRY(write_json_file(err, path, owl_preprocessor(&s->m)));
    IT_TRY(copy_file(err, s->clip_dir, dir, "vocab.json", 1));
    IT_TRY(copy_file(err, s->clip_dir, dir, "merges.txt", 1));
    IT_TRY(copy_file(err, s->clip_dir, dir, "tokenizer_config.json", 0));
    IT_TRY(copy_file(err, s->clip_dir, dir, "special_tokens_map.json", 0));
    it_safetensors_writer *w = NULL;
    IT_TRY(it_safetensors_writer_new(err, &w));
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->o->seed);
    it_status st = add_all(err, w, &s->m.vision.params);
    if (!st) st = add_all(err, w, &s->m.text.params);
    if (!st) st = add_all(err, w, &s->m.head);
    if (!st) st = it_safetensors_writer_set_metadata(err, w, "format", "pt");
    if (!st) st = it_safetensors_writer_set_metadata(err, w, "intenttuner_component", "toy detector");
    if (!st) st = it_safetensors_writer_set_metadata(err, w, "steps", steps);
    if (!st) st = it_safetensors_writer_set_metadata(err, w, "seed", seed);
    if (!st) st = it_safetensors_writer_set_metadata(err, w, "clip", s->interim ? "interim random CLIP" : s->clip_dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!st) st = it_safetensors_writer_save(err, w, path);
    it_safetensors_writer_free(w);
    return st;
}

/* ---------------------------------------------------------------- entry points */

static void run_key(char *buf, size_t n, const det_state *s, int64_t steps, double lr)
{
    const it_clip_vision_config *v = &s->m.vision.cfg;
    snprintf(buf, n,
             "detector v2 clip=%s%s vision=%dx%d/p%d/%d batch=%d lr=%g steps=%lld seed=%llu tower=%d/%d imgq=%d aug=%g "
             "assign=%s%s",
             s->interim ? "interim:" : "", s->clip_dir, v->hidden, v->n_layers, v->patch_size, v->image_size, s->B, lr,
             (long long)steps, (unsigned long long)s->o->seed, s->cfg.train_tower, s->cfg.train_layers,
             s->cfg.image_queries, (double)s->cfg.augment, s->cfg.centre ? "centre" : "matching",
             s->cfg.train_text_proj ? " text_proj" : "");
}

it_status it_pretrain_detector(it_err *err, const it_pretrain_opts *o)
{
    IT_TRY(it_pretrain_opts_check(err, o));
    char run[2048], key[4096], outdir[4096];
    IT_TRY(it_pretrain_run_path(err, o, run, sizeof run));
    json_t *cfg = NULL;
    IT_TRY(it_pretrain_config_json(err, o, &cfg));
    det_state s;
    it_status st = state_init(err, &s, o, cfg, run);
    json_decref(cfg);
    int64_t steps = o->steps > 0 ? o->steps : 2500; /* the shipped run's settings */
    double lr = o->lr > 0 ? o->lr : 1e-3;
    it_pretrain_result res;
    memset(&res, 0, sizeof res);
    if (!st) {
        run_key(key, sizeof key, &s, steps, lr);
        it_pretrain_loop l;
        memset(&l, 0, sizeof l);
        l.key = key;
        l.params = s.params;
        l.n_params = s.n_params;
        l.optim = it_optim_adamw_defaults(lr);
        l.optim.weight_decay = 1e-4;
        l.sched = it_lr_schedule_make(IT_LR_COSINE, steps / 20, steps);
        l.max_grad_norm = 1.0;
        l.steps = steps;
        l.default_eval_every = 250;
        l.step = det_step;
        l.eval = det_eval;
        l.user = &s;
        if (s.interim) IT_LOG_W("detector: no trained toy CLIP in %s/clip: training on the interim random CLIP %s", o->out, s.clip_dir);
        st = it_pretrain_train(err, o, &l, &res);
    }
    if (!st && res.step > 0 && (res.finished || o->export_partial || o->export_only)) { /* interim weights too */
        char steps_s[32];
        snprintf(steps_s, sizeof steps_s, "%lld", (long long)res.step);
        snprintf(outdir, sizeof outdir, "%s/owlvit", o->out);
        st = export_owlvit(err, &s, outdir, steps_s);
        json_t *metrics = json_object();
        it_pretrain_opts q = *o;
        q.model_dir = o->out;
        if (!st && metrics) st = it_quality_detector(err, &q, metrics); /* the files as shipped (f16) */
        if (!st && metrics)
            json_object_set_new(metrics, "clip", json_string(s.interim ? "interim random CLIP" : s.clip_dir));
        if (!st) st = it_pretrain_record(err, o, &res, metrics);
        json_decref(metrics);
    }
    state_free(&s);
    return st;
}

it_status it_quality_detector(it_err *err, const it_pretrain_opts *o, json_t *report)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/owlvit", o->model_dir ? o->model_dir : o->out);
    it_owlvit m;
    IT_TRY(it_owlvit_load(err, &m, dir));
    it_status s = it_detector_measure(err, &m, o->eval_seed, o->eval_n > 0 ? o->eval_n : 200, report);
    it_owlvit_free(&m);
    return s;
}
