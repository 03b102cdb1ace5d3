/* sd_keys.h: Stable Diffusion checkpoint layouts: the original LDM
 * single-file key names <-> diffusers/transformers names, variant detection
 * from marker tensors, and architecture configs inferred from tensor shapes.
 *
 * Owns: every format name mapping of SD 1.x / 2.x in one table-driven file
 * (each rule cites diffusers' loaders/single_file_utils.py, whose
 * convert_ldm_unet_checkpoint / convert_ldm_vae_checkpoint /
 * convert_ldm_clip_checkpoint / convert_open_clip_checkpoint define the
 * mapping we invert), and the detection of what a single file holds. Does
 * not own loading (sd_pipeline_load.h) or the models. */
#ifndef IT_SD_KEYS_H
#define IT_SD_KEYS_H

#include "models/config.h"
#include "models/nn.h"
#include "tensor/safetensors.h"

typedef enum it_sd_text_kind {
    IT_SD_TEXT_NONE = 0,
    IT_SD_TEXT_CLIP_L,        /* SD 1.x: cond_stage_model.transformer.[text_model.]... (OpenAI CLIP-L) */
    IT_SD_TEXT_OPENCLIP,      /* SD 2.x: cond_stage_model.model.transformer.resblocks... (OpenCLIP-H) */
} it_sd_text_kind;

/* What a single LDM file holds, from marker tensors. */
typedef struct it_sd_detect {
    int has_unet, has_vae;
    it_sd_text_kind text;
    int clip_has_text_model;  /* CLIP-L keys carry "text_model." (most files) */
    int unet_in_channels;     /* 4, or 9 for inpainting */
    int v2;                   /* SD 2.x (OpenCLIP text, linear projections) */
    int n_text_layers_file;   /* resblocks / layers present in the file */
} it_sd_detect;

it_status it_sd_detect_file(it_err *err, const it_safetensors *f, it_sd_detect *d);

/* Configs from shapes (single files without a config folder). Counts,
 * widths, channels, cross-attention width and projection kind come from
 * the tensors; what shapes cannot tell comes from the SD version's published
 * configs: 8 heads per level (SD 1.x) or 64-wide heads (SD 2.x), text
 * heads = hidden / 64, GroupNorm 32, VAE scaling 0.18215; SD 2.x text
 * encoders keep all but the last of the file's layers (diffusers' SD 2
 * text_encoder has 23 of OpenCLIP-H's 24: the penultimate layer). */
it_status it_sd_infer_unet_config(it_err *err, const it_safetensors *f, const it_sd_detect *d,
                                  it_unet_config *c);
it_status it_sd_infer_vae_config(it_err *err, const it_safetensors *f, it_vae_config *c);
it_status it_sd_infer_text_config(it_err *err, const it_safetensors *f, const it_sd_detect *d,
                                  it_clip_text_config *c);

/* Key maps for it_params_load: our (diffusers) name -> LDM key + transform. */
typedef struct it_ldm_map {
    const it_unet_config *unet;   /* for the UNet map: layers_per_block, up_attn */
    const it_vae_config *vae;     /* for the VAE map: n_levels */
    it_sd_detect det;             /* for the text map */
    const char *text_prefix;      /* our text-model prefix ("text_model.") */
} it_ldm_map;

int it_ldm_map_unet(void *user, const char *name, it_key_src *src);
int it_ldm_map_vae(void *user, const char *name, it_key_src *src);
int it_ldm_map_text(void *user, const char *name, it_key_src *src);

/* The LDM prefixes of each component (for the unused-key report). */
#define IT_LDM_UNET_PREFIX "model.diffusion_model."
#define IT_LDM_VAE_PREFIX "first_stage_model."
#define IT_LDM_CLIP_PREFIX "cond_stage_model.transformer."
#define IT_LDM_OPENCLIP_PREFIX "cond_stage_model.model."

#endif
