/* judge.c: the toy judge's heads, network, weights file and inference.
 *
 * Measurement only: nothing in the training or generation pipeline may call
 * this module (see judge.h). */
#include "toy/judge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "image/resize.h"
#include "tensor/autograd.h"
#include "tensor/ops_conv.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_gemm.h"
#include "tensor/ops_loss.h"
#include "tensor/ops_norm.h"
#include "tensor/ops_shape.h"
#include "tensor/safetensors.h"
#include "toy/characters.h"
#include "toy/toydraw.h"

#define JUDGE_FORMAT "intenttuner-judge-1"
#define JUDGE_GROUPS 8
#define JUDGE_BATCH 64

/* ================================================================ heads */

/* Attributes that are IT_TOY_NA when their part is absent (creature.c:
 * sample_rest): they get an extra "n/a" class. */
static int attr_nullable(int attr)
{
    return attr == IT_TOY_HAIR_COLOUR || attr == IT_TOY_HAT_COLOUR || attr == IT_TOY_OUTFIT_COLOUR ||
           attr == IT_TOY_OUTFIT_PATTERN || attr == IT_TOY_ACCESSORY_COLOUR;
}

int it_judge_head_classes(int head)
{
    if (head == IT_JUDGE_HEAD_IDENTITY) return 1 + it_toy_character_count();
    int a = head - 1;
    return it_toy_attr_get(a)->n_values + attr_nullable(a);
}

const char *it_judge_head_name(int head)
{
    return head == IT_JUDGE_HEAD_IDENTITY ? "identity" : it_toy_attr_get(head - 1)->name;
}

const char *it_judge_class_name(int head, int cls)
{
    if (head == IT_JUDGE_HEAD_IDENTITY) return cls == 0 ? "none" : it_toy_character_get(cls - 1)->name;
    const it_toy_attr_info *ai = it_toy_attr_get(head - 1);
    return cls < ai->n_values ? ai->values[cls].name : "n/a";
}

int it_judge_total_classes(void)
{
    int n = 0;
    for (int h = 0; h < IT_JUDGE_N_HEADS; h++) n += it_judge_head_classes(h);
    return n;
}

void it_judge_labels(int32_t *labels, const it_toy_attrs *a)
{
    labels[IT_JUDGE_HEAD_IDENTITY] = a->character + 1;
    for (int i = 0; i < IT_TOY_N_ATTRS; i++)
        labels[1 + i] = a->v[i] == IT_TOY_NA ? it_toy_attr_get(i)->n_values : a->v[i];
}

/* ================================================================ network */

it_judge_config it_judge_default_config(void)
{
    it_judge_config c = {128, {16, 32, 64, 128, 128}, 256, {2, 2, 2, 2, 2}, 0, 2};
    return c;
}

int it_judge_n_conv(const it_judge_config *c)
{
    int n = 0;
    while (n < IT_JUDGE_N_CONV && c->width[n] > 0) n++;
    return n;
}

/* The layout of the first judge files, which carry no strides. */
static const int g_v1_stride[5] = {2, 2, 2, 2, 1};

/* Fills in the strides of a config that has none (all 0). */
static it_judge_config config_normalise(const it_judge_config *c)
{
    it_judge_config r = *c;
    int any = 0;
    for (int i = 0; i < IT_JUDGE_N_CONV; i++) any |= r.stride[i];
    if (!any && it_judge_n_conv(c) == 5) memcpy(r.stride, g_v1_stride, sizeof g_v1_stride);
    for (int i = it_judge_n_conv(c); i < IT_JUDGE_N_CONV; i++) r.width[i] = r.stride[i] = 0;
    return r;
}

/* Side of the last grid (size over the product of the strides). */
static int config_grid(const it_judge_config *c)
{
    int g = c->size;
    for (int i = 0; i < it_judge_n_conv(c); i++) g /= c->stride[i] > 0 ? c->stride[i] : 1;
    return g;
}

/* Every conv layer is followed by GroupNorm and SiLU: without the norm on
 * the first layers the heads learned several times slower (checked against
 * the same network in PyTorch). The norm and the SiLU are separate ops,
 * not the fused GroupNorm+SiLU, whose backward recomputes exp() per element
 * and cost more than the convolutions at 32x32 and 16x16. */

/* Parameter names double as checkpoint keys (PyTorch style): conv layer i
 * has "conv<i+1>.weight", "conv<i+1>.bias", "norm<i+1>.weight",
 * "norm<i+1>.bias"; then "fc.weight", "fc.bias", "heads.weight",
 * "heads.bias". */
static const char *const g_layer_names[IT_JUDGE_N_CONV][4] = {
    {"conv1.weight", "conv1.bias", "norm1.weight", "norm1.bias"},
    {"conv2.weight", "conv2.bias", "norm2.weight", "norm2.bias"},
    {"conv3.weight", "conv3.bias", "norm3.weight", "norm3.bias"},
    {"conv4.weight", "conv4.bias", "norm4.weight", "norm4.bias"},
    {"conv5.weight", "conv5.bias", "norm5.weight", "norm5.bias"},
    {"conv6.weight", "conv6.bias", "norm6.weight", "norm6.bias"},
    {"conv7.weight", "conv7.bias", "norm7.weight", "norm7.bias"},
    {"conv8.weight", "conv8.bias", "norm8.weight", "norm8.bias"},
};
static const char *const g_mlp_names[4] = {"fc.weight", "fc.bias", "heads.weight", "heads.bias"};

static const char *param_name(int i, int n_conv, int crops)
{
    if (i < 4 * n_conv) return g_layer_names[i / 4][i % 4];
    if (i < 4 * n_conv + 4) return g_mlp_names[i - 4 * n_conv];
    i -= 4 * n_conv + 4;
    if (i < 2) return i ? "locator.bias" : "locator.weight";
    i -= 2;
    return it_judge_crop_param_name(crops, i / IT_JUDGE_CROP_PARAMS, i % IT_JUDGE_CROP_PARAMS);
}

static it_status config_check(it_err *err, const it_judge_config *c)
{
    if (c->crops < 0 || c->crops > 2)
        return it_err_set(err, IT_ERR_ARG, "judge: crops version %d unknown (0: none, 1 or 2; a newer program wrote it?)",
                          c->crops);
    if (c->pool != 0 && c->pool != 1) return it_err_set(err, IT_ERR_ARG, "judge: pool must be 0 (flatten) or 1 (max+mean)");
    int n = it_judge_n_conv(c), prod = 1;
    if (n < 1) return it_err_set(err, IT_ERR_ARG, "judge: the config has no conv layer");
    for (int i = 0; i < n; i++) {
        if (c->width[i] < JUDGE_GROUPS || c->width[i] > 1024 || c->width[i] % JUDGE_GROUPS)
            return it_err_set(err, IT_ERR_ARG, "judge: conv%d width %d must be a multiple of %d in 8..1024", i + 1,
                              c->width[i], JUDGE_GROUPS);
        if (c->stride[i] != 1 && c->stride[i] != 2)
            return it_err_set(err, IT_ERR_ARG, "judge: conv%d stride %d must be 1 or 2", i + 1, c->stride[i]);
        prod *= c->stride[i];
    }
    if (c->size < 32 || c->size > 512 || c->size % prod)
        return it_err_set(err, IT_ERR_ARG, "judge: input size %d must be in 32..512 and a multiple of %d (the strides)",
                          c->size, prod);
    if (c->hidden < 8 || c->hidden > 4096) return it_err_set(err, IT_ERR_ARG, "judge: hidden width %d not in 8..4096", c->hidden);
    return IT_OK;
}

/* Shapes of every parameter, in param_name order. */
static int param_shapes(const it_judge_config *c, int64_t shapes[][4], int *ndims)
{
    int k = 0, cin = 3;
    for (int i = 0; i < it_judge_n_conv(c); i++) {
        int co = c->width[i];
        ndims[k] = 4, shapes[k][0] = co, shapes[k][1] = cin, shapes[k][2] = 3, shapes[k][3] = 3, k++;
        for (int r = 0; r < 3; r++) ndims[k] = 1, shapes[k][0] = co, k++;
        cin = co;
    }
    int grid = config_grid(c);
    ndims[k] = 2, shapes[k][0] = c->hidden, shapes[k][1] = c->pool ? 2 * (int64_t)cin : (int64_t)cin * grid * grid, k++;
    ndims[k] = 1, shapes[k][0] = c->hidden, k++;
    ndims[k] = 2, shapes[k][0] = it_judge_total_classes(), shapes[k][1] = c->hidden, k++;
    ndims[k] = 1, shapes[k][0] = it_judge_total_classes(), k++;
    if (!c->crops) return k;
    ndims[k] = 2, shapes[k][0] = IT_JUDGE_LOC, shapes[k][1] = c->hidden, k++;
    ndims[k] = 1, shapes[k][0] = IT_JUDGE_LOC, k++;
    for (int b = 0; b < it_judge_n_crops(c->crops); b++)
        for (int i = 0; i < IT_JUDGE_CROP_PARAMS; i++, k++) ndims[k] = it_judge_crop_param_shape(c->crops, b, i, shapes[k]);
    return k;
}

static it_status judge_alloc(it_err *err, it_judge *j, const it_judge_config *cfg, int with_grad)
{
    memset(j, 0, sizeof *j);
    it_judge_config c = config_normalise(cfg);
    IT_TRY(config_check(err, &c));
    j->cfg = c;
    int64_t shapes[IT_JUDGE_MAX_PARAMS][4];
    int ndims[IT_JUDGE_MAX_PARAMS];
    j->n_params = param_shapes(&c, shapes, ndims);
    j->n_main = 4 * it_judge_n_conv(&c) + 4;
    int64_t total = 0;
    for (int i = 0; i < j->n_params; i++) total += it_shape_numel(ndims[i], shapes[i]);
    j->n_weights = total;
    j->data = it_calloc((size_t)total, sizeof(float));
    j->grad = with_grad ? it_calloc((size_t)total, sizeof(float)) : NULL;
    if (!j->data || (with_grad && !j->grad)) {
        it_judge_free(j);
        return it_err_set(err, IT_ERR_NOMEM, "judge: out of memory for %lld weights", (long long)total);
    }
    int64_t off = 0;
    for (int i = 0; i < j->n_params; i++) {
        IT_TRY(it_tensor_init_param(err, &j->params[i], param_name(i, it_judge_n_conv(&c), c.crops), j->data + off, j->grad ? j->grad + off : NULL,
                                    ndims[i], shapes[i]));
        off += j->params[i].n;
    }
    return IT_OK;
}

it_status it_judge_init(it_err *err, it_judge *j, const it_judge_config *cfg, uint64_t seed, int with_grad)
{
    IT_TRY(judge_alloc(err, j, cfg, with_grad));
    it_rng r;
    it_rng_init(&r, seed);
    for (int i = 0; i < j->n_params; i++) {
        it_tensor *p = &j->params[i];
        float *d = it_f32(p);
        const char *nm = p->name;
        if (p->ndim >= 2) {
            /* He-normal for layers followed by SiLU; the heads start small so
             * that the first losses are near log(classes). */
            int64_t fan_in = p->n / p->shape[0];
            int small = strstr(nm, "heads.weight") || !strcmp(nm, "locator.weight");
            float std = small ? 0.01f : sqrtf(2.0f / (float)fan_in);
            it_rng_normal(&r, d, (size_t)p->n, 0.0f, std);
        } else if (strstr(nm, "norm") && strstr(nm, ".weight")) {
            for (int64_t k = 0; k < p->n; k++) d[k] = 1.0f;
        } else if (!strcmp(nm, "locator.bias")) {
            /* A typical face and body box (over the side): the locator
             * starts from the average creature instead of from 0. */
            static const float typical[IT_JUDGE_LOC] = {0.5f, 0.45f, 0.25f, 0.2f, 0.5f, 0.55f, 0.5f, 0.75f};
            memcpy(d, typical, sizeof typical);
        }
    }
    return IT_OK;
}

void it_judge_free(it_judge *j)
{
    it_free(j->data);
    it_free(j->grad);
    memset(j, 0, sizeof *j);
}

it_tensor *it_judge_forward(it_ctx *ctx, const it_judge *j, it_tensor *x)
{
    return it_judge_forward_tap(ctx, j, x, -1, NULL);
}

it_tensor *it_judge_forward_tap(it_ctx *ctx, const it_judge *j, it_tensor *x, int tap_layer, it_tensor **tap)
{
    it_judge_out o;
    it_judge_config main_only = j->cfg;
    main_only.crops = 0;
    it_judge view = *j; /* the main network alone: no locator, no crops */
    view.cfg = main_only;
    it_judge_forward_ex(ctx, &view, x, NULL, NULL, tap_layer, &o);
    if (tap) *tap = o.tap;
    return o.logits;
}

/* The crops of branch b for every image of x (N, 3, S, S), placed by
 * anchors (N, IT_JUDGE_LOC) in input pixels. A constant: no gradient flows
 * back into the image or the locator (the locator learns from its own
 * loss). */
static it_tensor *make_crops(it_ctx *ctx, int ver, int b, it_tensor *x, const float *anchors)
{
    if (!x) return NULL;
    int64_t n = x->shape[0], S = x->shape[2];
    int side = it_judge_crop_get(ver, b)->side;
    it_tensor *c = it_tensor_new(ctx, IT_DTYPE_F32, IT_SHAPE(n, 3, side, side));
    if (!c) return NULL;
    const float *xd = it_f32(x);
    float *cd = it_f32(c);
    for (int64_t i = 0; i < n; i++) {
        float cx, cy, half;
        it_judge_crop_window(ver, b, anchors + i * IT_JUDGE_LOC, &cx, &cy, &half);
        it_judge_crop_sample(cd + i * 3 * side * side, side, xd + i * 3 * S * S, (int)S, cx, cy, half);
    }
    return c;
}

void it_judge_forward_ex(it_ctx *ctx, const it_judge *j, it_tensor *x, const float *anchors,
                         const uint8_t *use_pred, int tap_layer, it_judge_out *out)
{
    memset(out, 0, sizeof *out);
    it_tensor *p = (it_tensor *)j->params; /* ops take non-const tensors; weights are not written */
    it_tensor *h = x;
    int k = 0;
    for (int i = 0; i < it_judge_n_conv(&j->cfg); i++) {
        h = it_op_conv2d(ctx, h, &p[k], &p[k + 1], j->cfg.stride[i], 1);  /* (N, C_i, H_i, W_i) */
        h = it_op_silu(ctx, it_op_group_norm(ctx, h, &p[k + 2], &p[k + 3], JUDGE_GROUPS, 1e-5f, 0));
        if (i == tap_layer) out->tap = h;
        k += 4;
    }
    if (!h) return;
    int64_t n = h->shape[0], c = h->shape[1], cells = h->shape[2] * h->shape[3];
    if (j->cfg.pool) {
        /* Max and mean over the grid: a part is detected by the same weights
         * wherever the creature stands; the max keeps a small part's signal
         * from being averaged away by the background. */
        it_tensor *g = it_op_reshape(ctx, h, IT_SHAPE(n, c, cells));
        it_tensor *both[2] = {it_op_max_last(ctx, g), it_op_mean_last(ctx, g)};
        h = it_op_concat(ctx, 2, both, 1);                                  /* (N, 2 C) */
    } else {
        /* Flatten: where a colour sits (top: hat, middle: outfit) is kept,
         * at the price of weights per grid cell. */
        h = it_op_reshape(ctx, h, IT_SHAPE(n, c * cells));                  /* (N, C * grid * grid) */
    }
    h = it_op_silu(ctx, it_op_linear(ctx, h, &p[k], &p[k + 1]));             /* (N, hidden) */
    out->logits = it_op_linear(ctx, h, &p[k + 2], &p[k + 3]);                /* (N, total classes) */
    if (!j->cfg.crops || !out->logits) return;
    k += 4;
    out->loc = it_op_linear(ctx, h, &p[k], &p[k + 1]);                       /* (N, 8) over the side */
    if (!out->loc) return;
    /* The locator's boxes in input pixels where no anchors are given
     * (inference) or where use_pred says so (training on the boxes the
     * locator really gives). */
    it_tensor *a = it_tensor_new(ctx, IT_DTYPE_F32, IT_SHAPE(n, IT_JUDGE_LOC));
    if (!a) return;
    float *use = it_f32(a);
    const float *l = it_f32(out->loc);
    for (int64_t i = 0; i < n; i++)
        for (int v = 0; v < IT_JUDGE_LOC; v++) {
            int64_t e = i * IT_JUDGE_LOC + v;
            use[e] = !anchors || (use_pred && use_pred[i]) ? l[e] * (float)j->cfg.size : anchors[e];
        }
    anchors = use;
    k += 2;
    int ver = j->cfg.crops;
    out->crops = ver;
    for (int b = 0; b < it_judge_n_crops(ver); b++, k += IT_JUDGE_CROP_PARAMS)
        out->crop[b] = it_judge_crop_forward(ctx, ver, b, &p[k], make_crops(ctx, ver, b, x, anchors));
}

/* Offset of head h's logits in the main row, and in its crop network's. */
static int head_offset(int h)
{
    int off = 0;
    for (int i = 0; i < h; i++) off += it_judge_head_classes(i);
    return off;
}

static int crop_offset(int ver, int b, int h)
{
    const it_judge_crop_spec *s = it_judge_crop_get(ver, b);
    int off = 0;
    for (int k = 0; s->heads[k] >= 0 && s->heads[k] != h; k++) off += it_judge_head_classes(s->heads[k]);
    return off;
}

/* Argmax of row[0 .. nc). */
static int argmax(const float *row, int nc)
{
    int best = 0;
    for (int c = 1; c < nc; c++)
        if (row[c] > row[best]) best = c;
    return best;
}

/* Cross-entropy of head h, whose classes sit at columns off .. off+nc of
 * logits, against labels[i * IT_JUDGE_N_HEADS + h]; counts the rows it gets
 * right into correct[h] when correct is given. Shared by the whole-image
 * heads and the crop networks' heads. */
static it_tensor *head_loss(it_ctx *ctx, it_tensor *logits, int off, int h, const int32_t *labels, int n,
                            int *correct)
{
    int nc = it_judge_head_classes(h);
    it_tensor *lab = it_tensor_new(ctx, IT_DTYPE_I32, IT_SHAPE(n));
    if (!lab) return NULL;
    int32_t *ld = lab->data;
    int right = 0;
    for (int i = 0; i < n; i++) {
        ld[i] = labels[(size_t)i * IT_JUDGE_N_HEADS + h];
        right += argmax(it_f32(logits) + (size_t)i * logits->shape[1] + off, nc) == ld[i];
    }
    if (correct) correct[h] = right;
    return it_op_cross_entropy(ctx, it_op_slice(ctx, logits, 1, off, nc), lab);
}

it_tensor *it_judge_loss_ex(it_ctx *ctx, const it_judge_out *o, const int32_t *labels, int n, int *correct)
{
    it_tensor *sum = it_judge_loss(ctx, o->logits, labels, n, correct);
    for (int b = 0; b < it_judge_n_crops(o->crops); b++) {
        it_tensor *lg = o->crop[b];
        if (!lg || !sum) continue;
        const it_judge_crop_spec *s = it_judge_crop_get(o->crops, b);
        it_tensor *part = NULL;
        int nh = 0;
        for (int k = 0; s->heads[k] >= 0; k++, nh++) {
            int h = s->heads[k];
            it_tensor *ce = head_loss(ctx, lg, crop_offset(o->crops, b, h), h, labels, n, correct);
            if (!ce) return NULL;
            part = part ? it_op_add(ctx, part, ce) : ce;
        }
        sum = it_op_add(ctx, sum, it_op_scale(ctx, part, 1.0f / (float)nh, 0.0f));
    }
    return sum;
}

it_tensor *it_judge_loss(it_ctx *ctx, it_tensor *logits, const int32_t *labels, int n, int *correct)
{
    if (!logits) return NULL;
    it_tensor *sum = NULL;
    int off = 0;
    for (int h = 0; h < IT_JUDGE_N_HEADS; h++) {
        it_tensor *ce = head_loss(ctx, logits, off, h, labels, n, correct);
        if (!ce) return NULL;
        sum = sum ? it_op_add(ctx, sum, ce) : ce;
        off += it_judge_head_classes(h);
    }
    return it_op_scale(ctx, sum, 1.0f / IT_JUDGE_N_HEADS, 0.0f);
}

/* ================================================================ weights file */

static json_t *config_json(const it_judge_config *c)
{
    json_t *w = json_array(), *st = json_array();
    for (int i = 0; i < it_judge_n_conv(c); i++) {
        json_array_append_new(w, json_integer(c->width[i]));
        json_array_append_new(st, json_integer(c->stride[i]));
    }
    json_t *o = json_pack("{s:i, s:o, s:i, s:o, s:s}", "size", c->size, "width", w, "hidden", c->hidden, "stride", st,
                          "head", c->pool ? "pool" : "flatten");
    /* Only files with crop networks say so: older readers see the config
     * they know (and then miss the crop tensors, which they never read). */
    if (o && c->crops) json_object_set_new(o, "crops", json_integer(c->crops));
    return o;
}

/* The head schema: [[name, [class, ...]], ...]; a file trained for another
 * schema must not be read with this one. */
static char *schema_string(void)
{
    json_t *heads = json_array();
    for (int h = 0; h < IT_JUDGE_N_HEADS; h++) {
        json_t *cls = json_array();
        for (int c = 0; c < it_judge_head_classes(h); c++) json_array_append_new(cls, json_string(it_judge_class_name(h, c)));
        json_array_append_new(heads, json_pack("[s, o]", it_judge_head_name(h), cls));
    }
    char *s = json_dumps(heads, JSON_COMPACT);
    json_decref(heads);
    return s;
}

it_status it_judge_save(it_err *err, const it_judge *j, const char *path, it_dtype dtype, const char *const *meta)
{
    return it_judge_save_with(err, j, NULL, 0, path, dtype, meta);
}

it_status it_judge_save_with(it_err *err, const it_judge *j, const it_tensor *extra, int n_extra, const char *path,
                             it_dtype dtype, const char *const *meta)
{
    it_safetensors_writer *w = NULL;
    json_t *cfg = config_json(&j->cfg);
    char *cfg_s = cfg ? json_dumps(cfg, JSON_COMPACT) : NULL, *schema = schema_string();
    json_decref(cfg);
    it_status st = cfg_s && schema ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "judge: out of memory");
    if (!st) st = it_safetensors_writer_new(err, &w);
    for (int i = 0; !st && i < j->n_params; i++) {
        const it_tensor *p = &j->params[i];
        st = it_safetensors_writer_add_f32_as(err, w, p->name, dtype, p->ndim, p->shape, it_f32(p));
    }
    for (int i = 0; !st && i < n_extra; i++)
        st = it_safetensors_writer_add_f32_as(err, w, extra[i].name, dtype, extra[i].ndim, extra[i].shape,
                                              it_f32(&extra[i]));
    if (!st) st = it_safetensors_writer_set_metadata(err, w, "format", JUDGE_FORMAT);
    if (!st) st = it_safetensors_writer_set_metadata(err, w, "config", cfg_s);
    if (!st) st = it_safetensors_writer_set_metadata(err, w, "heads", schema);
    if (!st) st = it_safetensors_writer_set_metadata(err, w, "purpose", "eval (measurement only; renders include held-out characters)");
    for (int i = 0; !st && meta && meta[i] && meta[i + 1]; i += 2)
        st = it_safetensors_writer_set_metadata(err, w, meta[i], meta[i + 1]);
    if (!st) st = it_safetensors_writer_save(err, w, path);
    it_safetensors_writer_free(w);
    free(cfg_s);
    free(schema);
    return st;
}

/* Reads an integer array of 1..IT_JUDGE_N_CONV values in 1..4096 into out;
 * returns its length, 0 if it is not one. */
static int int_array(const json_t *a, int *out)
{
    size_t n = json_is_array(a) ? json_array_size(a) : 0;
    if (n < 1 || n > IT_JUDGE_N_CONV) return 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 4096) return 0;
        out[i] = (int)json_integer_value(v);
    }
    return (int)n;
}

/* The config in a file's metadata. Files of the first format have no
 * "stride" (their layout is {2, 2, 2, 2, 1}, filled in by the loader). */
static it_status config_parse(it_err *err, it_judge_config *c, const char *path, const char *text)
{
    json_error_t je;
    json_t *j = text ? json_loads(text, 0, &je) : NULL;
    memset(c, 0, sizeof *c);
    int ok = j && json_is_integer(json_object_get(j, "size")) && json_is_integer(json_object_get(j, "hidden"));
    int nw = ok ? int_array(json_object_get(j, "width"), c->width) : 0;
    json_t *st = j ? json_object_get(j, "stride") : NULL;
    int ns = st ? int_array(st, c->stride) : 0;
    const char *head = j ? json_string_value(json_object_get(j, "head")) : NULL;
    int head_ok = !j || !json_object_get(j, "head") || (head && (!strcmp(head, "pool") || !strcmp(head, "flatten")));
    if (ok) {
        c->size = (int)json_integer_value(json_object_get(j, "size"));
        c->hidden = (int)json_integer_value(json_object_get(j, "hidden"));
        c->pool = head && !strcmp(head, "pool");
        json_t *cr = json_object_get(j, "crops");
        c->crops = json_is_integer(cr) ? (int)json_integer_value(cr) : cr ? -1 : 0;
    }
    json_decref(j);
    if (!head_ok) return it_err_set(err, IT_ERR_FORMAT, "%s: metadata 'config' has an unknown head (expected \"pool\" or \"flatten\")", path);
    if (!ok || !nw) return it_err_set(err, IT_ERR_FORMAT, "%s: metadata 'config' is missing or not a judge config", path);
    if (st ? ns != nw : nw != 5)
        return it_err_set(err, IT_ERR_FORMAT, "%s: metadata 'config' has %d conv widths but %d strides", path, nw,
                          st ? ns : 0);
    return IT_OK;
}

static it_status load_tensors(it_err *err, it_judge *j, const it_safetensors *f, const char *path)
{
    for (int i = 0; i < j->n_params; i++) {
        it_tensor *p = &j->params[i];
        const it_safetensors_tensor *t;
        IT_TRY(it_safetensors_get(err, f, p->name, &t));
        int same = t->n_dims == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            char buf[64];
            return it_err_set(err, IT_ERR_FORMAT, "%s: tensor '%s' has the wrong shape (expected %s)", path, p->name,
                              it_tensor_shape_str(p, buf, sizeof buf));
        }
        IT_TRY(it_safetensors_load_f32(err, f, t, it_f32(p), (size_t)p->n));
    }
    return IT_OK;
}

it_status it_judge_load(it_err *err, it_judge *j, const char *path, int with_grad)
{
    memset(j, 0, sizeof *j);
    it_safetensors *f = NULL;
    IT_TRY(it_safetensors_open(err, &f, path));
    const char *fmt = it_safetensors_metadata_get(f, "format");
    const char *heads = it_safetensors_metadata_get(f, "heads");
    char *schema = schema_string();
    it_judge_config cfg;
    it_status st = IT_OK;
    if (!schema) st = it_err_set(err, IT_ERR_NOMEM, "judge: out of memory");
    else if (!fmt || strcmp(fmt, JUDGE_FORMAT))
        st = it_err_set(err, IT_ERR_FORMAT, "%s: not a judge weights file (metadata format is '%s', expected '%s')", path,
                        fmt ? fmt : "(none)", JUDGE_FORMAT);
    else if (!heads || strcmp(heads, schema))
        st = it_err_set(err, IT_ERR_FORMAT,
                        "%s: the judge was trained for another toy-world schema (heads differ); retrain it with "
                        "'intenttuner toy train-judge'",
                        path);
    if (!st) st = config_parse(err, &cfg, path, it_safetensors_metadata_get(f, "config"));
    if (!st) st = judge_alloc(err, j, &cfg, with_grad);
    if (!st) st = load_tensors(err, j, f, path);
    if (st) it_judge_free(j);
    free(schema);
    it_safetensors_close(f);
    return st;
}

/* ================================================================ input */

it_status it_judge_input(it_err *err, float *dst, int size, const uint8_t *rgb, int w, int h, float scale, float dx,
                         float dy)
{
    int s = (int)lrintf((float)size * scale);
    if (s < 8 || s > 4 * size) return it_err_set(err, IT_ERR_ARG, "judge input: scale %g out of range", scale);
    it_image in = {w, h, 3, (uint8_t *)rgb}, small = {0};
    IT_TRY(it_image_resize(err, &small, &in, s, s, IT_RESAMPLE_BILINEAR));
    int ox = (int)lrintf((float)(size - s) * 0.5f + dx), oy = (int)lrintf((float)(size - s) * 0.5f + dy);
    const float k = 1.0f / 127.5f;
    size_t plane = (size_t)size * size;
    for (int y = 0; y < size; y++) {
        int sy = y - oy;
        sy = sy < 0 ? 0 : sy >= s ? s - 1 : sy;
        for (int x = 0; x < size; x++) {
            int sx = x - ox;
            sx = sx < 0 ? 0 : sx >= s ? s - 1 : sx;
            const uint8_t *px = small.data + ((size_t)sy * s + sx) * 3;
            for (int c = 0; c < 3; c++) dst[c * plane + (size_t)y * size + x] = (float)px[c] * k - 1.0f;
        }
    }
    it_image_free(&small);
    return IT_OK;
}

/* ================================================================ inference */

/* Class and softmax probability of the head whose logits are row[0 .. nc). */
static void decode_head(const float *row, int nc, int *cls, float *prob)
{
    int best = argmax(row, nc);
    double z = 0;
    for (int c = 0; c < nc; c++) z += exp((double)row[c] - row[best]);
    *cls = best;
    *prob = (float)(1.0 / z);
}

/* Image i of a forward: each head from its crop network if it has one,
 * else from the main network. */
static void decode_out(const it_judge_out *o, int64_t i, it_judge_pred *p)
{
    const float *row = it_f32(o->logits) + (size_t)i * o->logits->shape[1];
    for (int h = 0; h < IT_JUDGE_N_HEADS; h++) {
        int b = it_judge_crop_of_head(o->crops, h), nc = it_judge_head_classes(h);
        if (b >= 0 && o->crop[b]) {
            const it_tensor *lg = o->crop[b];
            decode_head(it_f32(lg) + (size_t)i * lg->shape[1] + crop_offset(o->crops, b, h), nc, &p->cls[h],
                        &p->prob[h]);
        } else {
            decode_head(row + head_offset(h), nc, &p->cls[h], &p->prob[h]);
        }
    }
    p->located = o->loc != NULL;
    memset(p->box, 0, sizeof p->box);
    for (int a = 0; p->located && a < 2; a++) {
        const float *l = it_f32(o->loc) + (size_t)i * IT_JUDGE_LOC + 4 * a; /* cx, cy, w, h */
        p->box[a][0] = l[0] - 0.5f * l[2], p->box[a][1] = l[1] - 0.5f * l[3];
        p->box[a][2] = l[0] + 0.5f * l[2], p->box[a][3] = l[1] + 0.5f * l[3];
    }
}

it_status it_judge_classify_inputs(it_err *err, const it_judge *j, it_ctx *ctx, const float *x, int n,
                                   it_judge_pred *out)
{
    int S = j->cfg.size, was = it_autograd_set_enabled(ctx, 0);
    it_status st = IT_OK;
    for (int b = 0; !st && b < n; b += JUDGE_BATCH) {
        int m = n - b < JUDGE_BATCH ? n - b : JUDGE_BATCH;
        it_ctx_reset(ctx);
        it_tensor *in = it_tensor_wrap(ctx, (void *)(x + (size_t)b * 3 * S * S), IT_DTYPE_F32, IT_SHAPE(m, 3, S, S));
        it_judge_out o;
        it_judge_forward_ex(ctx, j, in, NULL, NULL, -1, &o);
        st = it_ctx_status(ctx, err);
        for (int i = 0; !st && i < m; i++) decode_out(&o, i, &out[b + i]);
    }
    it_ctx_reset(ctx);
    it_autograd_set_enabled(ctx, was);
    return st;
}

it_status it_judge_classify(it_err *err, const it_judge *j, it_ctx *ctx, const it_image *imgs, int n,
                            it_judge_pred *out)
{
    int S = j->cfg.size;
    float *x = it_malloc((size_t)JUDGE_BATCH * 3 * S * S * sizeof(float));
    if (!x) return it_err_set(err, IT_ERR_NOMEM, "judge: out of memory");
    it_status st = IT_OK;
    for (int b = 0; !st && b < n; b += JUDGE_BATCH) {
        int m = n - b < JUDGE_BATCH ? n - b : JUDGE_BATCH;
        for (int i = 0; !st && i < m; i++) {
            const it_image *im = &imgs[b + i];
            it_image rgb = {0};
            const it_image *use = im;
            static const uint8_t white[3] = {255, 255, 255};
            if (im->c != 3) {
                st = it_image_convert(err, &rgb, im, 3, white);
                use = &rgb;
            }
            if (!st) st = it_judge_input(err, x + (size_t)i * 3 * S * S, S, use->data, use->w, use->h, 1.0f, 0, 0);
            it_image_free(&rgb);
        }
        if (!st) st = it_judge_classify_inputs(err, j, ctx, x, m, out + b);
    }
    it_free(x);
    return st;
}

json_t *it_judge_pred_to_json(const it_judge_pred *p)
{
    json_t *o = json_object();
    for (int h = 0; o && h < IT_JUDGE_N_HEADS; h++) {
        json_t *e = json_pack("{s:s, s:f}", "value", it_judge_class_name(h, p->cls[h]), "confidence",
                              round((double)p->prob[h] * 1e4) / 1e4);
        if (!e || json_object_set_new(o, it_judge_head_name(h), e)) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

it_status it_judge_evaluate(it_err *err, const it_judge *j, it_ctx *ctx, uint64_t seed, int n, float p_character,
                            double *acc)
{
    return it_judge_evaluate_ex(err, j, ctx, seed, n, p_character, acc, NULL);
}

/* Distance in pixels (side R) between a located box's centre and a true box's. */
static double centre_px(const float *box, const int *truth, int R)
{
    double dx = 0.5 * (box[0] + box[2]) * R - 0.5 * (truth[0] + truth[2]);
    double dy = 0.5 * (box[1] + box[3]) * R - 0.5 * (truth[1] + truth[3]);
    return sqrt(dx * dx + dy * dy);
}

it_status it_judge_evaluate_ex(it_err *err, const it_judge *j, it_ctx *ctx, uint64_t seed, int n, float p_character,
                               double *acc, double *loc_px)
{
    enum { R = 128 };
    int S = j->cfg.size;
    uint8_t *rgb = it_malloc((size_t)JUDGE_BATCH * R * R * 3);
    float *x = it_malloc((size_t)JUDGE_BATCH * 3 * S * S * sizeof(float));
    it_toy_attrs *attrs = it_malloc(JUDGE_BATCH * sizeof *attrs);
    it_judge_pred *pred = it_malloc(JUDGE_BATCH * sizeof *pred);
    it_toy_truth *truth = it_malloc(JUDGE_BATCH * sizeof *truth);
    it_status st = rgb && x && attrs && pred && truth ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "judge: out of memory");
    double loc_sum[2] = {0, 0};
    long right[IT_JUDGE_N_HEADS] = {0};
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    c.p_character = p_character;
    for (int b = 0; !st && b < n; b += JUDGE_BATCH) {
        int m = n - b < JUDGE_BATCH ? n - b : JUDGE_BATCH;
        st = it_toy_render_batch(err, R, R, &c, seed, (uint64_t)b, m, IT_TOY_EVAL, rgb, attrs, truth);
        for (int i = 0; !st && i < m; i++)
            st = it_judge_input(err, x + (size_t)i * 3 * S * S, S, rgb + (size_t)i * R * R * 3, R, R, 1.0f, 0, 0);
        if (!st) st = it_judge_classify_inputs(err, j, ctx, x, m, pred);
        for (int i = 0; !st && i < m; i++) {
            int32_t lab[IT_JUDGE_N_HEADS];
            it_judge_labels(lab, &attrs[i]);
            for (int h = 0; h < IT_JUDGE_N_HEADS; h++) right[h] += pred[i].cls[h] == lab[h];
            for (int a = 0; pred[i].located && a < 2; a++)
                loc_sum[a] += centre_px(pred[i].box[a], truth[i].box[a ? IT_TOY_PART_BODY : IT_TOY_PART_FACE], R);
        }
    }
    for (int h = 0; !st && h < IT_JUDGE_N_HEADS; h++) acc[h] = n > 0 ? (double)right[h] / n : 0.0;
    for (int a = 0; !st && loc_px && a < 2; a++) loc_px[a] = n > 0 ? loc_sum[a] / n : 0.0;
    it_free(truth);
    it_free(rgb);
    it_free(x);
    it_free(attrs);
    it_free(pred);
    return st;
}
