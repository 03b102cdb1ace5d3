/* judge_crop.c: the judge's part crops: branch specs, crop sampling, and
 * the forward of a crop network (see judge_crop.h for why).
 *
 * Measurement only, like the whole judge. */
#include "toy/judge_crop.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tensor/ops_conv.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_gemm.h"
#include "tensor/ops_norm.h"
#include "tensor/ops_shape.h"
#include "toy/creature.h"
#include "toy/judge.h"

#define H(attr) (1 + (attr))

/* Version 1 (the first judges with crops): face, head, body.
 * Face: 1.6 x the face box (the head) at 32 px keeps the eyes (4-5 px in a
 * 128 render) at 0.6-0.7 of their size. Head: the face box widened and
 * moved up a little, so that most of a hat above and the necklace, scarf
 * or bow tie just below are inside at 0.75 of their size (a first try at
 * 2.6 x, moved up by half the face, shrank the accessory to 1-2 px and
 * learned it several times slower). Body: the whole creature (the body box
 * holds head to feet) at 48 px.
 *
 * Version 2: the accessory moves to its own "neck" crop, and the body crop
 * grows to 64 px. With version 1, a thin necklace (a chain of 1.1 units,
 * under a pixel at the smaller creature scales) was drawn at 0.75 of its
 * size in the head crop and was the most missed reading (93.5 %, mostly
 * read as "none"), and dotted or striped outfits at 48 px were read as
 * plain or leather (96.2 %). The neck window sits under the face box
 * (centre 0.65 of its height below the face's centre, side 0.8 of it):
 * the renderer draws every accessory from the bottom of the head down to
 * 0.5 of the head's height below it (toydraw.c, draw_accessory), so the
 * window covers it with a margin for the locator's error, upsampled about
 * 1.4 x at 32 px.
 *
 * The geometry is not in the weights file: changing it means a new
 * "crops" version in judge.c's loader and retraining. */
#define ACC_HEADS H(IT_TOY_ACCESSORY), H(IT_TOY_ACCESSORY_COLOUR)
#define FACE_SPEC                                                                                                   \
    {"face", IT_JUDGE_ANCHOR_FACE, 1.6f, 0.0f, 32, {32, 32, 64, 64}, {1, 2, 2, 2}, 128,                              \
     {IT_JUDGE_HEAD_IDENTITY, H(IT_TOY_EYE_COUNT), H(IT_TOY_GOGGLES), H(IT_TOY_MOUTH), H(IT_TOY_MARKING), -1}}
#define HEAD_HEADS H(IT_TOY_HAIR_STYLE), H(IT_TOY_HAIR_COLOUR), H(IT_TOY_HAT), H(IT_TOY_HAT_COLOUR)
#define BODY_HEADS {H(IT_TOY_BODY_SHAPE), H(IT_TOY_OUTFIT), H(IT_TOY_OUTFIT_PATTERN), -1}
static const it_judge_crop_spec g_specs_v1[] = {
    FACE_SPEC,
    {"head", IT_JUDGE_ANCHOR_FACE, 2.0f, -0.2f, 48, {16, 32, 64, 64}, {1, 2, 2, 2}, 128, {HEAD_HEADS, ACC_HEADS, -1}},
    {"body", IT_JUDGE_ANCHOR_BODY, 1.05f, 0.0f, 48, {16, 32, 64, 64}, {1, 2, 2, 2}, 128, BODY_HEADS},
};
static const it_judge_crop_spec g_specs_v2[] = {
    FACE_SPEC,
    {"head", IT_JUDGE_ANCHOR_FACE, 2.0f, -0.2f, 48, {16, 32, 64, 64}, {1, 2, 2, 2}, 128, {HEAD_HEADS, -1}},
    {"neck", IT_JUDGE_ANCHOR_FACE, 0.8f, 0.65f, 32, {32, 32, 64, 64}, {1, 2, 2, 2}, 128, {ACC_HEADS, -1}},
    {"body", IT_JUDGE_ANCHOR_BODY, 1.05f, 0.0f, 64, {16, 32, 64, 64}, {1, 2, 2, 2}, 128, BODY_HEADS},
};
#define NV1 ((int)(sizeof g_specs_v1 / sizeof g_specs_v1[0]))
#define NV2 ((int)(sizeof g_specs_v2 / sizeof g_specs_v2[0]))
_Static_assert(NV1 <= IT_JUDGE_N_CROPS && NV2 <= IT_JUDGE_N_CROPS, "IT_JUDGE_N_CROPS is the most branches");

/* Parameter names (checkpoint keys): "<branch>.conv<k>.weight", ... */
#define CROP_NAMES(p)                                                                                          \
    {p ".conv1.weight", p ".conv1.bias", p ".norm1.weight", p ".norm1.bias", p ".conv2.weight", p ".conv2.bias",   \
     p ".norm2.weight", p ".norm2.bias", p ".conv3.weight", p ".conv3.bias", p ".norm3.weight", p ".norm3.bias",   \
     p ".conv4.weight", p ".conv4.bias", p ".norm4.weight", p ".norm4.bias", p ".fc.weight",   p ".fc.bias",       \
     p ".heads.weight", p ".heads.bias"}
static const char *const g_names[][IT_JUDGE_CROP_PARAMS] = {CROP_NAMES("face"), CROP_NAMES("head"),
                                                            CROP_NAMES("body"), CROP_NAMES("neck")};

int it_judge_n_crops(int version) { return version == 1 ? NV1 : version == 2 ? NV2 : 0; }

const it_judge_crop_spec *it_judge_crop_get(int version, int b)
{
    if (b < 0 || b >= it_judge_n_crops(version)) return NULL;
    return version == 1 ? &g_specs_v1[b] : &g_specs_v2[b];
}

int it_judge_crop_of_head(int version, int head)
{
    for (int b = 0; b < it_judge_n_crops(version); b++)
        for (int k = 0; it_judge_crop_get(version, b)->heads[k] >= 0; k++)
            if (it_judge_crop_get(version, b)->heads[k] == head) return b;
    return -1;
}

int it_judge_crop_classes(int version, int b)
{
    const it_judge_crop_spec *s = it_judge_crop_get(version, b);
    int n = 0;
    for (int k = 0; s->heads[k] >= 0; k++) n += it_judge_head_classes(s->heads[k]);
    return n;
}

const char *it_judge_crop_param_name(int version, int b, int i)
{
    const char *name = it_judge_crop_get(version, b)->name;
    for (size_t k = 0; k < sizeof g_names / sizeof g_names[0]; k++)
        if (!strncmp(g_names[k][0], name, strlen(name)) && g_names[k][0][strlen(name)] == '.') return g_names[k][i];
    return NULL;
}

int it_judge_crop_param_shape(int version, int b, int i, int64_t *shape)
{
    const it_judge_crop_spec *s = it_judge_crop_get(version, b);
    if (i < 4 * IT_JUDGE_CROP_CONV) {
        int l = i / 4, co = s->width[l], ci = l ? s->width[l - 1] : 3;
        if (i % 4 == 0) {
            shape[0] = co, shape[1] = ci, shape[2] = 3, shape[3] = 3;
            return 4;
        }
        shape[0] = co;
        return 1;
    }
    int g = s->side;
    for (int l = 0; l < IT_JUDGE_CROP_CONV; l++) g /= s->stride[l];
    int64_t flat = (int64_t)s->width[IT_JUDGE_CROP_CONV - 1] * g * g;
    switch (i - 4 * IT_JUDGE_CROP_CONV) {
    case 0: shape[0] = s->hidden, shape[1] = flat; return 2;
    case 1: shape[0] = s->hidden; return 1;
    case 2: shape[0] = it_judge_crop_classes(version, b), shape[1] = s->hidden; return 2;
    default: shape[0] = it_judge_crop_classes(version, b); return 1;
    }
}

void it_judge_crop_window(int version, int b, const float *anchors, float *cx, float *cy, float *half)
{
    const it_judge_crop_spec *s = it_judge_crop_get(version, b);
    const float *a = anchors + 4 * s->anchor;
    float w = a[2] > 1.0f ? a[2] : 1.0f, h = a[3] > 1.0f ? a[3] : 1.0f;
    *cx = a[0];
    *cy = a[1] + s->shift * h;
    *half = 0.5f * s->factor * (w > h ? w : h);
    if (*half < 4.0f) *half = 4.0f;
}

void it_judge_crop_sample(float *dst, int side, const float *x, int S, float cx, float cy, float half)
{
    size_t plane = (size_t)S * S, oplane = (size_t)side * side;
    float step = 2.0f * half / (float)side, x0 = cx - half, y0 = cy - half;
    for (int v = 0; v < side; v++) {
        float sy = y0 + ((float)v + 0.5f) * step - 0.5f;
        sy = sy < 0 ? 0 : sy > (float)(S - 1) ? (float)(S - 1) : sy;
        int iy = (int)sy, iy1 = iy + 1 < S ? iy + 1 : iy;
        float fy = sy - (float)iy;
        for (int u = 0; u < side; u++) {
            float sx = x0 + ((float)u + 0.5f) * step - 0.5f;
            sx = sx < 0 ? 0 : sx > (float)(S - 1) ? (float)(S - 1) : sx;
            int ix = (int)sx, ix1 = ix + 1 < S ? ix + 1 : ix;
            float fx = sx - (float)ix;
            for (int c = 0; c < 3; c++) {
                const float *p = x + c * plane;
                float top = p[(size_t)iy * S + ix] * (1 - fx) + p[(size_t)iy * S + ix1] * fx;
                float bot = p[(size_t)iy1 * S + ix] * (1 - fx) + p[(size_t)iy1 * S + ix1] * fx;
                dst[c * oplane + (size_t)v * side + u] = top * (1 - fy) + bot * fy;
            }
        }
    }
}

it_tensor *it_judge_crop_forward(it_ctx *ctx, int version, int b, it_tensor *p, it_tensor *crops)
{
    const it_judge_crop_spec *s = it_judge_crop_get(version, b);
    it_tensor *h = crops;
    for (int l = 0; l < IT_JUDGE_CROP_CONV; l++) {
        h = it_op_conv2d(ctx, h, &p[4 * l], &p[4 * l + 1], s->stride[l], 1);
        h = it_op_silu(ctx, it_op_group_norm(ctx, h, &p[4 * l + 2], &p[4 * l + 3], 8, 1e-5f, 0));
    }
    if (!h) return NULL;
    h = it_op_reshape(ctx, h, IT_SHAPE(h->shape[0], h->shape[1] * h->shape[2] * h->shape[3]));
    int k = 4 * IT_JUDGE_CROP_CONV;
    h = it_op_silu(ctx, it_op_linear(ctx, h, &p[k], &p[k + 1]));
    return it_op_linear(ctx, h, &p[k + 2], &p[k + 3]);
}
