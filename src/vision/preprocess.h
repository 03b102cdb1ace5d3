/* preprocess.h: image preprocessing of CLIP-family models, as transformers'
 * PIL-backend image processors (CLIPImageProcessorPil, OwlViTImageProcessorPil)
 * do it, read from preprocessor_config.json.
 *
 * Owns: the processor settings (resize to the shortest edge or to a fixed
 * height x width, Pillow resampling filter, centre crop, rescale, mean/std
 * normalisation, RGB conversion over white) and their application to an
 * it_image, giving both the resized/cropped 8-bit image and the (3, H, W)
 * float tensor. Steps and rounding follow transformers: PIL resize of the
 * uint8 image (Pillow-parity resize of image/resize.h), integer centre crop
 * offsets (h - crop) // 2, x = float32(u8 * rescale_factor) in double then
 * (x - mean) / std in float32. Does not own the models. */
#ifndef IT_VISION_PREPROCESS_H
#define IT_VISION_PREPROCESS_H

#include "image/image.h"
#include "image/resize.h"
#include "tensor/tensor.h"

typedef struct it_preprocess {
    int do_resize;
    int shortest_edge;          /* > 0: resize so the short side has this length */
    int resize_w, resize_h;     /* used when shortest_edge == 0 */
    it_resample resample;
    int do_crop, crop_w, crop_h;
    int do_rescale;
    double rescale;             /* 1/255 */
    int do_normalize;
    float mean[3], std[3];
} it_preprocess;

/* CLIPImageProcessor defaults: shortest edge 224, bicubic, crop 224, OpenAI
 * CLIP mean and std. */
void it_preprocess_clip_default(it_preprocess *p);
it_status it_preprocess_parse(it_err *err, it_preprocess *p, const char *json, const char *label);
it_status it_preprocess_load(it_err *err, it_preprocess *p, const char *path);

/* Size (w, h) of the resized image before cropping, transformers' rule
 * (int(short_target * long / short) for the long side). */
void it_preprocess_resized_size(const it_preprocess *p, int w, int h, int *ow, int *oh);

/* RGB conversion, resize and crop: out is a 3-channel image (it_image_free). */
it_status it_preprocess_u8(it_err *err, const it_preprocess *p, const it_image *in, it_image *out);
/* Rescale and normalise an RGB image into pixels (3, h, w) (caller holds 3*w*h floats). */
void it_preprocess_normalize(const it_preprocess *p, const it_image *rgb, float *pixels);

/* Both steps for one image: *out is a (1, 3, h, w) tensor in ctx, ready for
 * a vision tower; the temporary 8-bit image is freed here. */
it_status it_preprocess_tensor(it_err *err, it_ctx *ctx, const it_preprocess *p, const it_image *img,
                               it_tensor **out);

#endif
