/* clip_vision.h: the CLIP vision transformer (ViT), config-driven, for
 * transformers' CLIPVisionModel[WithProjection] / CLIPModel's vision side,
 * OWL-ViT's vision tower and OpenCLIP's "visual." tower.
 *
 * Owns: the vision config (from a CLIPConfig/OwlViTConfig "vision_config",
 * a bare CLIPVisionConfig, or OpenCLIP's model_cfg), the weights under
 * transformers' key names ("<prefix>embeddings.patch_embedding.weight", ...),
 * the OpenCLIP key map (visual.conv1.weight, visual.transformer.resblocks.N...,
 * table-driven), and the forward: patch embedding, class token, position
 * embedding (bicubic-interpolated as transformers' interpolate_pos_encoding
 * when the input grid differs from the trained one), pre layer norm,
 * n_layers pre-LN blocks (bidirectional attention), post layer norm of the
 * class token, projection. Does not own image preprocessing (preprocess.h),
 * the text tower (models/clip_text.h) or the joint model (clip.h). */
#ifndef IT_CLIP_VISION_H
#define IT_CLIP_VISION_H

#include "models/clip_text.h"
#include "models/config.h"
#include "models/nn.h"

typedef struct it_clip_vision_config {
    int hidden, intermediate, n_layers, n_heads;
    int image_size, patch_size, channels;
    it_clip_act act;
    float eps;
    int projection_dim;         /* visual_projection output; 0 = no projection */
} it_clip_vision_config;

/* transformers' CLIPVisionConfig defaults (ViT-B/32). */
void it_clip_vision_config_default(it_clip_vision_config *c);
/* From config.json text: a top-level "vision_config" (CLIPConfig,
 * OwlViTConfig; projection_dim from the top level) or a bare vision config. */
it_status it_clip_vision_config_parse(it_err *err, it_clip_vision_config *c, const char *json,
                                      const char *label);
it_status it_clip_vision_config_load(it_err *err, it_clip_vision_config *c, const char *path);

typedef struct it_clip_vision {
    it_clip_vision_config cfg;
    it_params params;
    char prefix[64];            /* "vision_model.", "owlvit.vision_model." */
    it_lin *patch;              /* conv (hidden, channels, p, p), stride p, no bias */
    it_tensor *cls;             /* (hidden) */
    it_tensor *pos;             /* (1 + grid^2, hidden) */
    it_norm pre_ln, post_ln;    /* (hidden) */
    it_clip_layer *layers;      /* (n_layers) */
    it_lin *proj;               /* (projection_dim, hidden), no bias; or NULL */
} it_clip_vision;

/* pre_ln: module name of the pre layer norm under the prefix: CLIP spells it
 * "pre_layrnorm", OWL-ViT "pre_layernorm". proj_key: the projection module
 * ("visual_projection") when cfg->projection_dim > 0. */
it_status it_clip_vision_init(it_err *err, it_clip_vision *m, const it_clip_vision_config *cfg,
                              const char *prefix, const char *pre_ln, const char *proj_key,
                              int flags);
void it_clip_vision_free(it_clip_vision *m);

typedef struct it_clip_vision_out {
    it_tensor *hidden;          /* (B, 1 + gh*gw, hidden): last layer, before post LN */
    it_tensor *pooled;          /* (B, hidden): post_ln(class token) */
    it_tensor *projected;       /* (B, projection_dim) or NULL */
    int grid_h, grid_w;         /* patch grid of the input */
} it_clip_vision_out;

/* pixels: (B, channels, H, W), H and W multiples of patch_size; a grid other
 * than the trained square one interpolates the position embeddings. */
it_status it_clip_vision_forward(it_err *err, it_ctx *ctx, it_clip_vision *m, it_tensor *pixels,
                                 it_clip_vision_out *out);

/* torch.nn.functional.interpolate(mode="bicubic", align_corners=False) of a
 * (ih, iw, d) grid to (oh, ow, d) (channels last). */
void it_clip_vision_bicubic(float *out, int oh, int ow, const float *in, int ih, int iw, int d);

/* OpenCLIP names: maps our "vision_model."-prefixed transformers names (and
 * "visual_projection.weight") to OpenCLIP's "visual." keys; user unused. */
int it_clip_vision_map_openclip(void *user, const char *name, it_key_src *src);

#endif
