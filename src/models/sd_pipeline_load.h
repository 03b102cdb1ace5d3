/* sd_pipeline_load.h: one Stable Diffusion model (text encoder, UNet, VAE,
 * tokenizer, scheduler config) from a diffusers folder or a single-file
 * LDM checkpoint.
 *
 * Owns: finding the files of a diffusers folder (model_index.json; unet/,
 * vae/, text_encoder/ with config.json and diffusion_pytorch_model.safetensors
 * or model.safetensors, or their .fp16 variants; tokenizer/; scheduler/
 * scheduler_config.json), and for a single .safetensors file: detection of
 * the variant (SD 1.x CLIP-L or SD 2.x OpenCLIP, 4- or 9-channel UNet),
 * configs from a config folder or inferred from shapes, and loading through
 * the LDM key maps. Weights are converted to f32 on load (the engine computes
 * in f32); the files are memory-mapped and closed after loading. Does not own
 * the models (clip_text.h, unet.h, vae.h), the tokenizer (text/) or sampling
 * (diffusion/). */
#ifndef IT_SD_PIPELINE_LOAD_H
#define IT_SD_PIPELINE_LOAD_H

#include "models/clip_text.h"
#include "models/config.h"
#include "models/unet.h"
#include "models/vae.h"
#include "text/clip_tokenizer.h"

enum {
    IT_SD_TEXT = 1,
    IT_SD_UNET = 2,
    IT_SD_VAE = 4,
    IT_SD_TOKENIZER = 8,
    IT_SD_ALL = 15,
};

typedef struct it_sd_model {
    unsigned loaded;              /* IT_SD_* bits of what is present */
    it_clip_text text;            /* keys "text_model.*" */
    it_unet unet;
    it_vae vae;
    it_clip_tokenizer *tokenizer; /* NULL for single files without a tokenizer folder */
    it_sched_config sched;        /* from scheduler/ or SD defaults (+ prediction) */
    int v2;                       /* SD 2.x family */
    int inpainting;               /* UNet takes 9 channels (latent, mask, masked-image latent) */
    int single_file;
    char path[1024];
} it_sd_model;

typedef struct it_sd_load_opts {
    unsigned components;          /* IT_SD_* bits; 0 = all */
    const char *config_dir;       /* single file: a diffusers folder (or one with unet/ vae/
                                   * text_encoder/ config.json files) whose configs to use */
    const char *tokenizer_dir;    /* overrides the folder's tokenizer/ */
    int prediction;               /* -1: from scheduler config (single file: SD 2 -> v) */
    int flags_unet, flags_text, flags_vae; /* IT_MODEL_* build flags */
} it_sd_load_opts;

void it_sd_load_opts_init(it_sd_load_opts *o);

/* path: a diffusers folder or a .safetensors file. Errors name the file and
 * the key: "PATH/unet/diffusion_pytorch_model.safetensors: unet: missing key
 * down_blocks.0.attentions.0.proj_in.weight". */
it_status it_sd_load(it_err *err, it_sd_model *m, const char *path, const it_sd_load_opts *opts);
void it_sd_free(it_sd_model *m);

/* Loads one component's weights from one file in diffusers layout (strict:
 * unexpected keys are errors). For `intenttuner forward` and tests. */
it_status it_sd_load_params_file(it_err *err, it_params *ps, const char *file, const char *prefix);

#endif
