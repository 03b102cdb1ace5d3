/* preprocess.c: transformers' CLIP/OWL-ViT image preprocessing
 * (image_processing_backends.PilBackend._preprocess), restated. */
#include "vision/preprocess.h"

#include <jansson.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"

void it_preprocess_clip_default(it_preprocess *p)
{
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    memset(p, 0, sizeof *p);
    p->do_resize = 1;
    p->shortest_edge = 224;
    p->resample = IT_RESAMPLE_BICUBIC;
    p->do_crop = 1;
    p->crop_w = p->crop_h = 224;
    p->do_rescale = 1;
    p->rescale = 1.0 / 255.0;
    p->do_normalize = 1;
    memcpy(p->mean, mean, sizeof mean);
    memcpy(p->std, std, sizeof std);
}

/* PIL's resampling codes (Image.Resampling) -> ours. */
static int pil_filter(long code)
{
    switch (code) {
    case 0: return IT_RESAMPLE_NEAREST;
    case 1: return IT_RESAMPLE_LANCZOS;
    case 2: return IT_RESAMPLE_BILINEAR;
    case 3: return IT_RESAMPLE_BICUBIC;
    case 4: return IT_RESAMPLE_BOX;
    default: return -1; /* 5 = HAMMING: not implemented */
    }
}

static int jbool(json_t *o, const char *k, int def)
{
    json_t *v = json_object_get(o, k);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

static it_status read_triplet(it_err *err, json_t *o, const char *k, float dst[3], const char *label)
{
    json_t *v = json_object_get(o, k);
    if (!v) return IT_OK;
    if (json_is_number(v)) {
        dst[0] = dst[1] = dst[2] = (float)json_number_value(v);
        return IT_OK;
    }
    if (!json_is_array(v) || json_array_size(v) != 3)
        return it_err_set(err, IT_ERR_FORMAT, "%s: %s must be a number or 3 numbers", label, k);
    for (int i = 0; i < 3; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_number(e)) return it_err_set(err, IT_ERR_FORMAT, "%s: %s[%d] is not a number", label, k, i);
        dst[i] = (float)json_number_value(e);
    }
    return IT_OK;
}

/* "size": {"shortest_edge": N} | {"height": H, "width": W} | N. */
static it_status read_size(it_err *err, json_t *o, it_preprocess *p, const char *label)
{
    json_t *s = json_object_get(o, "size");
    if (!s) return IT_OK;
    if (json_is_integer(s)) {
        p->shortest_edge = (int)json_integer_value(s);
        return IT_OK;
    }
    json_t *se = json_object_get(s, "shortest_edge"), *h = json_object_get(s, "height"),
           *w = json_object_get(s, "width");
    if (json_is_integer(se)) {
        p->shortest_edge = (int)json_integer_value(se);
    } else if (json_is_integer(h) && json_is_integer(w)) {
        p->shortest_edge = 0;
        p->resize_h = (int)json_integer_value(h);
        p->resize_w = (int)json_integer_value(w);
    } else {
        return it_err_set(err, IT_ERR_UNSUPPORTED,
                          "%s: size must have shortest_edge or height and width", label);
    }
    return IT_OK;
}

static it_status read_crop(it_err *err, json_t *o, it_preprocess *p, const char *label)
{
    json_t *c = json_object_get(o, "crop_size");
    if (!c) return IT_OK;
    if (json_is_integer(c)) {
        p->crop_w = p->crop_h = (int)json_integer_value(c);
        return IT_OK;
    }
    json_t *h = json_object_get(c, "height"), *w = json_object_get(c, "width");
    if (!json_is_integer(h) || !json_is_integer(w))
        return it_err_set(err, IT_ERR_FORMAT, "%s: crop_size must have height and width", label);
    p->crop_h = (int)json_integer_value(h);
    p->crop_w = (int)json_integer_value(w);
    return IT_OK;
}

static it_status parse_root(it_err *err, it_preprocess *p, json_t *o, const char *label)
{
    p->do_resize = jbool(o, "do_resize", p->do_resize);
    p->do_crop = jbool(o, "do_center_crop", p->do_crop);
    p->do_rescale = jbool(o, "do_rescale", p->do_rescale);
    p->do_normalize = jbool(o, "do_normalize", p->do_normalize);
    IT_TRY(read_size(err, o, p, label));
    IT_TRY(read_crop(err, o, p, label));
    json_t *r = json_object_get(o, "resample");
    if (r) {
        int f = json_is_integer(r) ? pil_filter((long)json_integer_value(r)) : -1;
        if (f < 0) return it_err_set(err, IT_ERR_UNSUPPORTED, "%s: resample must be 0-4 (PIL code)", label);
        p->resample = (it_resample)f;
    }
    json_t *rf = json_object_get(o, "rescale_factor");
    if (json_is_number(rf)) p->rescale = json_number_value(rf);
    IT_TRY(read_triplet(err, o, "image_mean", p->mean, label));
    IT_TRY(read_triplet(err, o, "image_std", p->std, label));
    if ((p->do_resize && p->shortest_edge <= 0 && (p->resize_w <= 0 || p->resize_h <= 0)) ||
        (p->do_crop && (p->crop_w <= 0 || p->crop_h <= 0)) || p->std[0] == 0 || p->std[1] == 0 ||
        p->std[2] == 0)
        return it_err_set(err, IT_ERR_FORMAT, "%s: sizes must be positive and image_std non-zero", label);
    return IT_OK;
}

it_status it_preprocess_parse(it_err *err, it_preprocess *p, const char *json, const char *label)
{
    it_preprocess_clip_default(p);
    json_error_t je;
    json_t *root = json_loads(json, 0, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        return it_err_set(err, IT_ERR_FORMAT, "%s: not a JSON object (line %d: %s)", label, je.line, je.text);
    }
    it_status s = parse_root(err, p, root, label);
    json_decref(root);
    return s;
}

it_status it_preprocess_load(it_err *err, it_preprocess *p, const char *path)
{
    uint8_t *text = NULL;
    size_t n = 0;
    IT_TRY(it_file_read(err, &text, &n, path, 1 << 20));
    it_status s = it_preprocess_parse(err, p, (const char *)text, path);
    it_free(text);
    return s;
}

void it_preprocess_resized_size(const it_preprocess *p, int w, int h, int *ow, int *oh)
{
    if (!p->do_resize) {
        *ow = w;
        *oh = h;
    } else if (p->shortest_edge > 0) {
        /* get_resize_output_image_size(default_to_square=False) */
        int s = w <= h ? w : h, l = w <= h ? h : w;
        int ns = p->shortest_edge, nl = (int)((double)ns * (double)l / (double)s);
        *ow = w <= h ? ns : nl;
        *oh = w <= h ? nl : ns;
    } else {
        *ow = p->resize_w;
        *oh = p->resize_h;
    }
}

/* numpy centre crop: offsets (h - ch) // 2 (floor), zero where the crop
 * reaches outside (transformers pads then). */
static it_status center_crop(it_err *err, const it_image *in, int cw, int ch, it_image *out)
{
    IT_TRY(it_image_alloc(err, out, cw, ch, 3));
    memset(out->data, 0, (size_t)cw * (size_t)ch * 3);
    int top = (in->h - ch) >= 0 ? (in->h - ch) / 2 : -((ch - in->h + 1) / 2);
    int left = (in->w - cw) >= 0 ? (in->w - cw) / 2 : -((cw - in->w + 1) / 2);
    for (int y = 0; y < ch; y++) {
        int sy = y + top;
        if (sy < 0 || sy >= in->h) continue;
        for (int x = 0; x < cw; x++) {
            int sx = x + left;
            if (sx < 0 || sx >= in->w) continue;
            memcpy(out->data + ((size_t)y * (size_t)cw + (size_t)x) * 3,
                   in->data + ((size_t)sy * (size_t)in->w + (size_t)sx) * 3, 3);
        }
    }
    return IT_OK;
}

it_status it_preprocess_u8(it_err *err, const it_preprocess *p, const it_image *in, it_image *out)
{
    memset(out, 0, sizeof *out);
    static const uint8_t white[3] = {255, 255, 255}; /* transformers' convert_to_rgb */
    it_image rgb = {0}, sized = {0};
    IT_TRY(it_image_convert(err, &rgb, in, 3, white));
    int w, h;
    it_preprocess_resized_size(p, rgb.w, rgb.h, &w, &h);
    it_status s = IT_OK;
    if (w < 1 || h < 1) s = it_err_set(err, IT_ERR_RANGE, "image %dx%d too small to resize", rgb.w, rgb.h);
    else if (w == rgb.w && h == rgb.h) { sized = rgb; rgb = (it_image){0}; }
    else s = it_image_resize(err, &sized, &rgb, w, h, p->resample);
    it_image_free(&rgb);
    if (s) return s;
    if (!p->do_crop) {
        *out = sized;
        return IT_OK;
    }
    s = center_crop(err, &sized, p->crop_w, p->crop_h, out);
    it_image_free(&sized);
    return s;
}

void it_preprocess_normalize(const it_preprocess *p, const it_image *rgb, float *pixels)
{
    size_t hw = (size_t)rgb->w * (size_t)rgb->h;
    for (int c = 0; c < 3; c++) {
        float mean = p->do_normalize ? p->mean[c] : 0.0f, std = p->do_normalize ? p->std[c] : 1.0f;
        double sc = p->do_rescale ? p->rescale : 1.0;
        float *o = pixels + (size_t)c * hw;
        for (size_t i = 0; i < hw; i++) {
            float x = (float)((double)rgb->data[i * 3 + (size_t)c] * sc);
            o[i] = p->do_normalize ? (x - mean) / std : x;
        }
    }
}

it_status it_preprocess_tensor(it_err *err, it_ctx *ctx, const it_preprocess *p, const it_image *img,
                               it_tensor **out)
{
    *out = NULL;
    it_image rgb;
    IT_TRY(it_preprocess_u8(err, p, img, &rgb));
    it_tensor *px = it_tensor_new(ctx, IT_DTYPE_F32, IT_SHAPE(1, 3, rgb.h, rgb.w));
    it_status s = px ? IT_OK : it_ctx_status(ctx, err);
    if (!s) {
        it_preprocess_normalize(p, &rgb, it_f32(px));
        *out = px;
    }
    it_image_free(&rgb);
    return s;
}
