/* latent_ops.c: image/mask/latent array plumbing of the SD pipelines. See
 * latent_ops.h. */
#include "diffusion/latent_ops.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------ images in */

/* Pixels of img as c channels: img itself or a converted copy in *tmp. */
static it_status as_channels(it_err *err, const it_image **src, it_image *tmp, const it_image *img,
                             int c)
{
    memset(tmp, 0, sizeof *tmp);
    *src = img;
    if (img->c == c) return IT_OK;
    IT_TRY(it_image_convert(err, tmp, img, c, NULL));
    *src = tmp;
    return IT_OK;
}

it_status it_latent_image_to_unit(it_err *err, float *out, const it_image *img)
{
    const it_image *s;
    it_image tmp;
    IT_TRY(as_channels(err, &s, &tmp, img, 3));
    size_t hw = (size_t)s->w * s->h;
    for (size_t p = 0; p < hw; p++)
        for (int ch = 0; ch < 3; ch++) {
            /* numpy: (v / 255.0) in float32, then 2 * x - 1 in torch */
            float v = (float)s->data[p * 3 + ch] / 255.0f;
            out[(size_t)ch * hw + p] = 2.0f * v - 1.0f;
        }
    it_image_free(&tmp);
    return IT_OK;
}

it_status it_latent_mask_to_unit(it_err *err, float *out, const it_image *mask)
{
    const it_image *s;
    it_image tmp;
    IT_TRY(as_channels(err, &s, &tmp, mask, 1));
    size_t hw = (size_t)s->w * s->h;
    for (size_t p = 0; p < hw; p++) out[p] = (float)s->data[p] / 255.0f < 0.5f ? 0.0f : 1.0f;
    it_image_free(&tmp);
    return IT_OK;
}

void it_latent_mask_image(float *out, const float *image, const float *mask, int w, int h)
{
    size_t hw = (size_t)w * h;
    for (int ch = 0; ch < 3; ch++)
        for (size_t p = 0; p < hw; p++)
            out[(size_t)ch * hw + p] = image[(size_t)ch * hw + p] * (mask[p] < 0.5f ? 1.0f : 0.0f);
}

/* ------------------------------------------------------------ latents */

void it_latent_nearest(float *out, int ow, int oh, const float *in, int iw, int ih)
{
    float sy = (float)ih / (float)oh, sx = (float)iw / (float)ow;
    for (int y = 0; y < oh; y++) {
        int yy = (int)floorf((float)y * sy);
        if (yy > ih - 1) yy = ih - 1;
        for (int x = 0; x < ow; x++) {
            int xx = (int)floorf((float)x * sx);
            if (xx > iw - 1) xx = iw - 1;
            out[(size_t)y * ow + x] = in[(size_t)yy * iw + xx];
        }
    }
}

void it_latent_blend(float *x, const float *proper, const float *mask, int batch, int c, size_t hw)
{
    for (int b = 0; b < batch; b++)
        for (int ch = 0; ch < c; ch++) {
            size_t o = ((size_t)b * c + ch) * hw;
            for (size_t p = 0; p < hw; p++)
                x[o + p] = (1.0f - mask[p]) * proper[o + p] + mask[p] * x[o + p];
        }
}

void it_latent_concat9(float *out, const float *x, int batch, int copies, int c,
                       const float *mask, const float *masked_latents, size_t hw)
{
    size_t item = (size_t)c * hw, oitem = (size_t)(2 * c + 1) * hw;
    for (int k = 0; k < copies; k++) {
        float *o = out + (size_t)k * oitem;
        memcpy(o, x + (size_t)(k % batch) * item, item * sizeof(float));
        memcpy(o + item, mask, hw * sizeof(float));
        memcpy(o + item + hw, masked_latents, item * sizeof(float));
    }
}

void it_latent_guidance(float *out, const float *uncond, const float *cond, float scale, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = uncond[i] + scale * (cond[i] - uncond[i]);
}

/* ------------------------------------------------------------ images out */

it_status it_latent_to_image(it_err *err, it_image *img, float *pixels, const float *decoded,
                             int w, int h)
{
    IT_TRY(it_image_alloc(err, img, w, h, 3));
    size_t hw = (size_t)w * h;
    for (int ch = 0; ch < 3; ch++)
        for (size_t p = 0; p < hw; p++) {
            float v = decoded[(size_t)ch * hw + p] / 2.0f + 0.5f;
            v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
            if (pixels) pixels[(size_t)ch * hw + p] = v;
            img->data[p * 3 + ch] = (uint8_t)rintf(v * 255.0f);
        }
    return IT_OK;
}
