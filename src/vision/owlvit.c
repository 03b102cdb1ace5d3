/* owlvit.c: OWL-ViT v1 detection heads, queries and post-processing
 * (transformers' models/owlvit/modeling_owlvit.py and
 * image_processing_owlvit.py, restated). */
#include "vision/owlvit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/mem.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_shape.h"

/* ---------------------------------------------------------------- load */

static it_status build_heads(it_err *err, it_owlvit *m, int flags)
{
    it_params *ps = &m->head;
    int64_t h = m->vision.cfg.hidden;
    it_params_init(ps, "owlvit_heads");
    it_norm_init(ps, &m->ln, h, 0, m->vision.cfg.eps, "layer_norm");
    m->cls0 = it_lin_linear(ps, h, m->query_dim, 1, "class_head.dense0");
    m->cls_shift = it_lin_linear(ps, h, 1, 1, "class_head.logit_shift");
    m->cls_scale = it_lin_linear(ps, h, 1, 1, "class_head.logit_scale");
    m->box0 = it_lin_linear(ps, h, h, 1, "box_head.dense0");
    m->box1 = it_lin_linear(ps, h, h, 1, "box_head.dense1");
    m->box2 = it_lin_linear(ps, h, 4, 1, "box_head.dense2");
    return it_params_alloc(err, ps, flags);
}

it_status it_owlvit_init_ex(it_err *err, it_owlvit *m, const it_clip_vision_config *vc,
                            const it_clip_text_config *tc, int vision_flags, int text_flags, int head_flags)
{
    m->query_dim = tc->hidden;
    IT_TRY(it_clip_vision_init(err, &m->vision, vc, "owlvit.vision_model.", "pre_layernorm", NULL, vision_flags));
    IT_TRY(it_clip_text_init(err, &m->text, tc, "owlvit.text_model.", "owlvit.text_projection", text_flags));
    return build_heads(err, m, head_flags);
}

it_status it_owlvit_init(it_err *err, it_owlvit *m, const it_clip_vision_config *vc,
                         const it_clip_text_config *tc)
{
    return it_owlvit_init_ex(err, m, vc, tc, 0, 0, 0);
}

static it_status load_in(it_err *err, it_owlvit *m, const char *dir)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (stat(path, &st) != 0)
        return it_err_set(err, IT_ERR_NOT_FOUND, "%s: not an OWL-ViT model folder (no config.json)", dir);
    it_clip_vision_config vc;
    it_clip_text_config tc;
    IT_TRY(it_clip_vision_config_load(err, &vc, path));
    IT_TRY(it_clip_text_config_load(err, &tc, path));
    tc.projection_dim = vc.projection_dim;
    tc.has_projection = 1;
    tc.eos_token_id = 2; /* OwlViTTextTransformer pools at argmax(input_ids) */
    if (tc.projection_dim != tc.hidden)
        return it_err_set(err, IT_ERR_UNSUPPORTED,
                          "%s: projection_dim %d must equal the text hidden_size %d (class head width)", path,
                          tc.projection_dim, tc.hidden);
    IT_TRY(it_owlvit_init(err, m, &vc, &tc));
    it_preprocess_clip_default(&m->pre);
    m->pre.shortest_edge = 0;
    m->pre.resize_w = m->pre.resize_h = vc.image_size;
    m->pre.do_crop = 0;
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    if (stat(path, &st) == 0) IT_TRY(it_preprocess_load(err, &m->pre, path));
    IT_TRY(it_clip_tokenizer_load(err, &m->tok, dir));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    it_safetensors *f = NULL;
    IT_TRY(it_safetensors_open(err, &f, path));
    it_status s = it_params_load(err, &m->vision.params, f, "owlvit.vision_model.", NULL, NULL, 0, NULL);
    if (!s) s = it_params_load(err, &m->text.params, f, "owlvit.text_model.", NULL, NULL, 0, NULL);
    if (!s) s = it_params_load(err, &m->head, f, "", NULL, NULL, 0, NULL);
    it_safetensors_close(f);
    if (s && err && !strstr(err->msg, path)) {
        char msg[IT_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err->msg);
        it_err_set(err, s, "%s: %s", path, msg); /* which file lacks the key */
    }
    return s;
}

it_status it_owlvit_load(it_err *err, it_owlvit *m, const char *dir)
{
    memset(m, 0, sizeof *m);
    it_status s = load_in(err, m, dir);
    if (s) it_owlvit_free(m);
    return s;
}

void it_owlvit_free(it_owlvit *m)
{
    it_clip_vision_free(&m->vision);
    it_clip_text_free(&m->text);
    it_params_free(&m->head);
    it_clip_tokenizer_free(m->tok);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- image side */

void it_owlvit_image_free(it_owlvit_image *r)
{
    it_free(r->feats);
    it_free(r->class_emb);
    it_free(r->shift);
    it_free(r->scale);
    it_free(r->boxes);
    memset(r, 0, sizeof *r);
}

/* compute_box_bias: logit of the patch's corner position and of the patch
 * size, in float as PyTorch computes it. */
static void box_bias(float *b, int gh, int gw)
{
    float sw = logf(1.0f / (float)gw + 1e-4f) - log1pf(-1.0f / (float)gw + 1e-4f);
    float sh = logf(1.0f / (float)gh + 1e-4f) - log1pf(-1.0f / (float)gh + 1e-4f);
    for (int y = 0; y < gh; y++)
        for (int x = 0; x < gw; x++) {
            float cx = (float)(x + 1) / (float)gw, cy = (float)(y + 1) / (float)gh;
            cx = cx > 1.0f ? 1.0f : cx;
            cy = cy > 1.0f ? 1.0f : cy;
            float *o = b + ((size_t)y * (size_t)gw + (size_t)x) * 4;
            o[0] = logf(cx + 1e-4f) - log1pf(-cx + 1e-4f);
            o[1] = logf(cy + 1e-4f) - log1pf(-cy + 1e-4f);
            o[2] = sw;
            o[3] = sh;
        }
}

static float *copy_out(const it_tensor *t)
{
    float *d = it_malloc((size_t)t->n * sizeof(float));
    if (d) memcpy(d, it_f32(t), (size_t)t->n * sizeof(float));
    return d;
}

/* image_embedder: post_ln over all tokens, patches x class token, layer_norm.
 * hidden (B, 1+N, D) -> (B, N, D). */
static it_tensor *merge_class(it_ctx *ctx, const it_owlvit *m, it_tensor *hidden, int64_t n)
{
    it_tensor *h = it_norm_forward(ctx, &m->vision.post_ln, hidden, 0);
    it_tensor *cls = it_op_slice(ctx, h, 1, 0, 1);
    it_tensor *patches = it_op_slice(ctx, h, 1, 1, n);
    return it_norm_forward(ctx, &m->ln, it_op_mul(ctx, patches, cls), 0);
}

void it_owlvit_heads_forward(it_ctx *ctx, const it_owlvit *m, it_tensor *hidden, int64_t n,
                             it_owlvit_heads *o)
{
    it_tensor *feats = merge_class(ctx, m, hidden, n);
    o->feats = feats;
    o->class_emb = it_lin_forward(ctx, m->cls0, feats);
    o->shift = it_lin_forward(ctx, m->cls_shift, feats);
    o->scale_raw = it_lin_forward(ctx, m->cls_scale, feats);
    it_tensor *b = it_op_gelu(ctx, it_lin_forward(ctx, m->box0, feats));
    b = it_op_gelu(ctx, it_lin_forward(ctx, m->box1, b));
    o->box_raw = it_lin_forward(ctx, m->box2, b);
}

static it_status heads(it_err *err, it_ctx *ctx, it_owlvit *m, it_tensor *hidden, it_owlvit_image *r)
{
    it_owlvit_heads o;
    it_owlvit_heads_forward(ctx, m, hidden, r->n, &o);
    IT_TRY(it_ctx_status(ctx, err));
    r->feats = copy_out(o.feats);
    r->class_emb = copy_out(o.class_emb);
    r->shift = copy_out(o.shift);
    r->scale = copy_out(o.scale_raw);
    r->boxes = copy_out(o.box_raw);
    if (!r->feats || !r->class_emb || !r->shift || !r->scale || !r->boxes)
        return it_err_set(err, IT_ERR_NOMEM, "owlvit: out of memory");
    for (int i = 0; i < r->n; i++) {
        float s = r->scale[i];
        r->scale[i] = (s > 0 ? s : expm1f(s)) + 1.0f; /* elu + 1 */
    }
    float *bias = it_malloc((size_t)r->n * 4 * sizeof(float));
    if (!bias) return it_err_set(err, IT_ERR_NOMEM, "owlvit: out of memory");
    box_bias(bias, r->grid_h, r->grid_w);
    for (int i = 0; i < r->n * 4; i++) r->boxes[i] = 1.0f / (1.0f + expf(-(r->boxes[i] + bias[i])));
    it_free(bias);
    return IT_OK;
}

it_status it_owlvit_embed_pixels(it_err *err, it_ctx *ctx, it_owlvit *m, it_tensor *pixels,
                                 it_owlvit_image *out)
{
    memset(out, 0, sizeof *out);
    if (pixels && pixels->ndim == 4 && pixels->shape[0] != 1)
        return it_err_set(err, IT_ERR_ARG, "owlvit: one image at a time");
    it_mark mk = it_ctx_mark(ctx);
    it_clip_vision_out vo;
    it_status s = it_clip_vision_forward(err, ctx, &m->vision, pixels, &vo);
    if (!s) {
        out->grid_h = vo.grid_h;
        out->grid_w = vo.grid_w;
        out->n = vo.grid_h * vo.grid_w;
        out->dq = m->query_dim;
        s = heads(err, ctx, m, vo.hidden, out);
    }
    it_ctx_release(ctx, mk);
    if (s) it_owlvit_image_free(out);
    return s;
}

it_status it_owlvit_embed_image(it_err *err, it_ctx *ctx, it_owlvit *m, const it_image *img,
                                it_owlvit_image *out)
{
    memset(out, 0, sizeof *out);
    it_mark mk = it_ctx_mark(ctx);
    it_tensor *px;
    it_status s = it_preprocess_tensor(err, ctx, &m->pre, img, &px);
    if (!s) s = it_owlvit_embed_pixels(err, ctx, m, px, out);
    it_ctx_release(ctx, mk);
    return s;
}

/* ---------------------------------------------------------------- queries */

it_status it_owlvit_embed_ids(it_err *err, it_ctx *ctx, it_owlvit *m, it_tensor *ids, float *q)
{
    it_mark mk = it_ctx_mark(ctx);
    it_clip_text_out to;
    it_status s = it_clip_text_forward(err, ctx, &m->text, ids, 0, 1, &to);
    if (!s) {
        int64_t B = to.projected->shape[0], d = to.projected->shape[1];
        memcpy(q, it_f32(to.projected), (size_t)(B * d) * sizeof(float));
        /* OwlViTModel: text_embeds / ||text_embeds|| (no epsilon) */
        for (int64_t b = 0; b < B; b++) {
            float ss = 0;
            for (int64_t k = 0; k < d; k++) ss += q[b * d + k] * q[b * d + k];
            float inv = ss > 0 ? 1.0f / sqrtf(ss) : 0.0f;
            for (int64_t k = 0; k < d; k++) q[b * d + k] *= inv;
        }
    }
    it_ctx_release(ctx, mk);
    return s;
}

it_status it_owlvit_embed_text(it_err *err, it_ctx *ctx, it_owlvit *m, const char *text, float *q)
{
    int L = m->text.cfg.max_positions;
    it_mark mk = it_ctx_mark(ctx);
    it_tensor *ids = it_tensor_new(ctx, IT_DTYPE_I32, IT_SHAPE(1, L));
    it_status s = ids ? IT_OK : it_ctx_status(ctx, err);
    if (!s) s = it_clip_encode_padded(err, m->tok, ids->data, L, NULL, text, strlen(text));
    if (!s) s = it_owlvit_embed_ids(err, ctx, m, ids, q);
    it_ctx_release(ctx, mk);
    return s;
}

static void corners(const float *cxcywh, float *c)
{
    c[0] = cxcywh[0] - 0.5f * cxcywh[2];
    c[1] = cxcywh[1] - 0.5f * cxcywh[3];
    c[2] = cxcywh[0] + 0.5f * cxcywh[2];
    c[3] = cxcywh[1] + 0.5f * cxcywh[3];
}

float it_box_iou(const float a[4], const float b[4])
{
    float aa = (a[2] - a[0]) * (a[3] - a[1]), ab = (b[2] - b[0]) * (b[3] - b[1]);
    float w = fminf(a[2], b[2]) - fmaxf(a[0], b[0]), h = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
    float inter = (w > 0 ? w : 0) * (h > 0 ? h : 0);
    return inter / (aa + ab - inter);
}

static float giou(const float a[4], const float b[4])
{
    float aa = (a[2] - a[0]) * (a[3] - a[1]), ab = (b[2] - b[0]) * (b[3] - b[1]);
    float w = fminf(a[2], b[2]) - fmaxf(a[0], b[0]), h = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
    float inter = (w > 0 ? w : 0) * (h > 0 ? h : 0), uni = aa + ab - inter;
    float cw = fmaxf(a[2], b[2]) - fminf(a[0], b[0]), ch = fmaxf(a[3], b[3]) - fminf(a[1], b[1]);
    float area = cw * ch;
    return inter / uni - (area - uni) / area;
}

int it_owlvit_box_query(const it_owlvit_image *ref, const float box[4], float *q)
{
    int n = ref->n, d = ref->dq;
    float *ious = it_malloc((size_t)n * sizeof(float));
    double *mean = it_calloc((size_t)d, sizeof(double));
    if (!ious || !mean) {
        it_free(ious);
        it_free(mean);
        return -1;
    }
    int any = 0;
    for (int i = 0; i < n; i++) {
        float c[4];
        corners(ref->boxes + (size_t)i * 4, c);
        ious[i] = it_box_iou(box, c);
        any |= ious[i] != 0.0f;
    }
    if (!any) /* no overlap anywhere: generalised IoU ranks the boxes */
        for (int i = 0; i < n; i++) {
            float c[4];
            corners(ref->boxes + (size_t)i * 4, c);
            ious[i] = giou(box, c);
        }
    float best = ious[0];
    for (int i = 1; i < n; i++) best = ious[i] > best ? ious[i] : best;
    float thr = best * 0.8f;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < d; k++) mean[k] += ref->class_emb[(size_t)i * d + k];
    int pick = -1;
    double pick_sim = 0;
    for (int i = 0; i < n; i++) {
        if (!(ious[i] >= thr)) continue;
        double sim = 0;
        for (int k = 0; k < d; k++) sim += mean[k] / n * ref->class_emb[(size_t)i * d + k];
        if (pick < 0 || sim < pick_sim) {
            pick = i;
            pick_sim = sim;
        }
    }
    if (pick >= 0) memcpy(q, ref->class_emb + (size_t)pick * d, (size_t)d * sizeof(float));
    it_free(ious);
    it_free(mean);
    return pick;
}

/* ---------------------------------------------------------------- class head */

/* v / (||v|| + 1e-6), OwlViTClassPredictionHead's normalisation. */
static void norm_eps(float *o, const float *v, int d)
{
    double ss = 0;
    for (int k = 0; k < d; k++) ss += (double)v[k] * v[k];
    float inv = 1.0f / ((float)sqrt(ss) + 1e-6f);
    for (int k = 0; k < d; k++) o[k] = v[k] * inv;
}

void it_owlvit_logits(const it_owlvit_image *r, const float *queries, int nq, float *logits)
{
    int d = r->dq;
    float *qn = it_malloc((size_t)nq * d * sizeof(float)), *e = it_malloc((size_t)d * sizeof(float));
    if (!qn || !e) {
        for (int i = 0; i < r->n * nq; i++) logits[i] = -INFINITY;
        it_free(qn);
        it_free(e);
        return;
    }
    for (int j = 0; j < nq; j++) norm_eps(qn + (size_t)j * d, queries + (size_t)j * d, d);
    for (int i = 0; i < r->n; i++) {
        norm_eps(e, r->class_emb + (size_t)i * d, d);
        for (int j = 0; j < nq; j++) {
            double dot = 0;
            for (int k = 0; k < d; k++) dot += (double)e[k] * qn[(size_t)j * d + k];
            logits[(size_t)i * nq + j] = ((float)dot + r->shift[i]) * r->scale[i];
        }
    }
    it_free(qn);
    it_free(e);
}

/* ---------------------------------------------------------------- post-processing */

int it_owlvit_postprocess(const it_owlvit_image *r, const float *logits, int nq, int img_w, int img_h,
                          float threshold, float nms_iou, it_detection *out)
{
    int n = r->n;
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int j = 1; j < nq; j++)
            if (logits[(size_t)i * nq + j] > logits[(size_t)i * nq + best]) best = j;
        it_detection *d = &out[i];
        d->score = 1.0f / (1.0f + expf(-logits[(size_t)i * nq + best]));
        d->query = best;
        d->patch = i;
        corners(r->boxes + (size_t)i * 4, d->box);
    }
    /* best first (stable: equal scores keep patch order) */
    for (int i = 1; i < n; i++) {
        it_detection x = out[i];
        int j = i - 1;
        while (j >= 0 && out[j].score < x.score) {
            out[j + 1] = out[j];
            j--;
        }
        out[j + 1] = x;
    }
    if (nms_iou < 1.0f)
        for (int i = 0; i < n; i++) {
            if (out[i].score == 0.0f) continue;
            for (int j = i + 1; j < n; j++)
                if (out[j].score != 0.0f && it_box_iou(out[i].box, out[j].box) > nms_iou) out[j].score = 0.0f;
        }
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!(out[i].score > threshold)) continue;
        it_detection d = out[i];
        d.box[0] *= (float)img_w;
        d.box[2] *= (float)img_w;
        d.box[1] *= (float)img_h;
        d.box[3] *= (float)img_h;
        out[k++] = d;
    }
    return k;
}
