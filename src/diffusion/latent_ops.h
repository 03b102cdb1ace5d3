/* latent_ops.h: the array plumbing around the sampler loop of Stable
 * Diffusion pipelines, on plain float arrays.
 *
 * Owns: image <-> model tensor conversions as diffusers' VaeImageProcessor
 * does them (8-bit RGB to (3, H, W) in [-1, 1]; masks to binarised (H, W);
 * decoded (3, H, W) to [0, 1] and to 8-bit with numpy's round-half-even),
 * the mask's nearest-neighbour reduction to latent size (torch
 * F.interpolate mode "nearest"), inpainting's per-step blend for 4-channel
 * UNets and the 9-channel UNet input (latents, mask, masked-image latents),
 * classifier-free guidance. Does not own the models, the sampler or image
 * files. */
#ifndef IT_LATENT_OPS_H
#define IT_LATENT_OPS_H

#include <stddef.h>

#include "base/status.h"
#include "image/image.h"

/* 8-bit image (RGB, or converted to RGB) -> out (3, H, W) = 2 * v/255 - 1
 * (VaeImageProcessor: pil_to_numpy, normalize). img must be w x h already. */
it_status it_latent_image_to_unit(it_err *err, float *out, const it_image *img);

/* Mask image -> out (H, W) in {0, 1}: grayscale as Pillow's convert("L"),
 * v/255, then 0 below 0.5 and 1 at or above (do_binarize). */
it_status it_latent_mask_to_unit(it_err *err, float *out, const it_image *mask);

/* masked = image * (mask < 0.5) per channel: image (3, H, W), mask (H, W). */
void it_latent_mask_image(float *out, const float *image, const float *mask, int w, int h);

/* torch.nn.functional.interpolate(mask, size=(oh, ow)) with the default
 * "nearest" mode: src = min(floor(dst * (in / out)), in - 1), scale in
 * float32. mask (ih, iw) -> out (oh, ow). */
void it_latent_nearest(float *out, int ow, int oh, const float *in, int iw, int ih);

/* 4-channel inpainting after each step: x = (1 - m) * proper + m * x for
 * each of batch items of (c, hw), with one mask (hw) for all items and
 * proper (batch, c, hw). */
void it_latent_blend(float *x, const float *proper, const float *mask, int batch, int c,
                     size_t hw);

/* 9-channel UNet input for copies items: out (copies, c + 1 + c, hw) =
 * concat(x[b % batch] (c, hw), mask (hw), masked_latents (c, hw)). */
void it_latent_concat9(float *out, const float *x, int batch, int copies, int c,
                       const float *mask, const float *masked_latents, size_t hw);

/* out = uncond + scale * (cond - uncond), n floats. */
void it_latent_guidance(float *out, const float *uncond, const float *cond, float scale, size_t n);

/* Decoded (3, H, W) in about [-1, 1] -> pixels (3, H, W) = clamp(x/2 + 0.5,
 * 0, 1) and an 8-bit RGB image (round(pixel * 255), half to even). pixels
 * may be NULL. img is allocated here. */
it_status it_latent_to_image(it_err *err, it_image *img, float *pixels, const float *decoded,
                             int w, int h);

#endif
