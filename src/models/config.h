/* config.h: architecture configs of the Stable Diffusion components, read
 * from diffusers/transformers config.json files (jansson) or filled with the
 * SD 1.x / 2.x defaults when a single-file checkpoint brings none.
 *
 * Owns: it_unet_config (UNet2DConditionModel), it_vae_config
 * (AutoencoderKL), it_clip_text_config (CLIPTextModel[WithProjection] and
 * the OpenCLIP text tower), it_sched_config (the scheduler fields the models
 * need to know: prediction type and the training schedule); validation with
 * one-line errors naming the file and key; rejection of config values we do
 * not implement (e.g. class_embed_type). Does not own the models or the
 * samplers' own use of the scheduler config. */
#ifndef IT_SD_CONFIG_H
#define IT_SD_CONFIG_H

#include "base/status.h"

#define IT_SD_MAX_LEVELS 8

typedef struct it_unet_config {
    int sample_size;                        /* latent side the model was trained at */
    int in_channels, out_channels;          /* 4 / 4; 9 for inpainting UNets */
    int n_levels;
    int block_out[IT_SD_MAX_LEVELS];        /* block_out_channels, e.g. 320 640 1280 1280 */
    int down_attn[IT_SD_MAX_LEVELS];        /* 1: CrossAttnDownBlock2D, 0: DownBlock2D */
    int up_attn[IT_SD_MAX_LEVELS];          /* up blocks in execution order */
    int heads[IT_SD_MAX_LEVELS];            /* attention heads per level (down order) */
    int layers_per_block;
    int norm_groups;                        /* 32 */
    float norm_eps;                         /* 1e-5 */
    int cross_dim;                          /* cross_attention_dim: 768 SD1, 1024 SD2 */
    int use_linear_projection;              /* SD2: proj_in/out are Linear */
    int upcast_attention;                   /* recorded; we compute attention in f32 anyway */
    int mid_attn;                           /* UNetMidBlock2DCrossAttn (1) or none (0) */
    int flip_sin_to_cos;                    /* true in SD */
    float freq_shift;                       /* 0 in SD */
} it_unet_config;

typedef struct it_vae_config {
    int sample_size;                        /* image side; tiling's tile size */
    int in_channels, out_channels, latent_channels;
    int n_levels;
    int block_out[IT_SD_MAX_LEVELS];        /* 128 256 512 512 */
    int layers_per_block;
    int norm_groups;
    float scaling_factor;                   /* 0.18215 */
    float shift_factor;                     /* 0 unless the config sets one */
    int use_quant_conv, use_post_quant_conv;
    int mid_attn;                           /* mid_block_add_attention */
} it_vae_config;

typedef enum it_clip_act {
    IT_CLIP_QUICK_GELU = 0,                 /* OpenAI CLIP (SD1) */
    IT_CLIP_GELU,                           /* OpenCLIP (SD2) */
} it_clip_act;

typedef struct it_clip_text_config {
    int vocab_size, hidden, intermediate, n_layers, n_heads, max_positions;
    it_clip_act act;
    float eps;                              /* layer_norm_eps, 1e-5 */
    int projection_dim;                     /* text_projection output (joint CLIP) */
    int has_projection;                     /* CLIPTextModelWithProjection */
    int eos_token_id;                       /* pooled row: first eos; 2 = legacy argmax rule */
} it_clip_text_config;

typedef enum it_prediction {
    IT_PRED_EPSILON = 0,
    IT_PRED_V,
    IT_PRED_SAMPLE,
} it_prediction;

typedef struct it_sched_config {
    it_prediction prediction;
    int num_train_timesteps;                /* 1000 */
    float beta_start, beta_end;             /* 0.00085, 0.012 */
    char beta_schedule[32];                 /* "scaled_linear" */
    int steps_offset;
    int set_alpha_to_one;
    char timestep_spacing[16];              /* "leading" */
    char class_name[48];                    /* "PNDMScheduler" ... */
} it_sched_config;

/* Read config.json-style files; path names the file in messages. */
it_status it_unet_config_load(it_err *err, it_unet_config *c, const char *path);
it_status it_vae_config_load(it_err *err, it_vae_config *c, const char *path);
it_status it_clip_text_config_load(it_err *err, it_clip_text_config *c, const char *path);
it_status it_sched_config_load(it_err *err, it_sched_config *c, const char *path);

/* The same from JSON text (tests, configs embedded in tools). */
it_status it_unet_config_parse(it_err *err, it_unet_config *c, const char *json, const char *label);
it_status it_vae_config_parse(it_err *err, it_vae_config *c, const char *json, const char *label);
it_status it_clip_text_config_parse(it_err *err, it_clip_text_config *c, const char *json,
                                    const char *label);
it_status it_sched_config_parse(it_err *err, it_sched_config *c, const char *json, const char *label);

/* diffusers' / transformers' defaults and SD 1.5's published values. */
void it_unet_config_sd15(it_unet_config *c);
void it_vae_config_sd(it_vae_config *c);
void it_clip_text_config_sd15(it_clip_text_config *c);
void it_sched_config_default(it_sched_config *c);

const char *it_prediction_name(it_prediction p);

#endif
