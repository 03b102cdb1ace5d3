/* pipeline.h: text-to-image, img2img and inpainting with a loaded Stable
 * Diffusion model, as diffusers' StableDiffusionPipeline,
 * StableDiffusionImg2ImgPipeline and StableDiffusionInpaintPipeline do it.
 *
 * Owns: prompt and negative-prompt encoding (tokenize to 77, text encoder,
 * clip skip), classifier-free guidance with the unconditional and
 * conditional halves in one UNet batch of 2N, the initial noise (counter
 * RNG from a seed, or given by the caller, e.g. from a --latents file),
 * img2img (VAE encode, strength truncation, the scheduler's add_noise),
 * inpainting (mask preprocessing; per-step latent blending for 4-channel
 * UNets; the 9-channel UNet input for inpainting UNets), VAE decode to
 * pixels and 8-bit images, the scheduler configuration of a model.
 * Does not own the models or their loading (models/), the samplers
 * (sampler.h) or image files (image/). */
#ifndef IT_PIPELINE_H
#define IT_PIPELINE_H

#include <stdint.h>

#include "diffusion/sampler.h"
#include "image/image.h"
#include "models/sd_pipeline_load.h"

typedef struct it_gen_opts {
    const char *prompt;           /* required */
    const char *negative;         /* NULL: "" (the unconditional prompt) */
    int steps;                    /* 25 */
    float cfg;                    /* guidance scale 7; <= 1 runs the prompt alone */
    it_sampler_opts sampler;      /* default dpm++2m */
    uint64_t seed;
    int width, height;            /* 0: the init image's size, else UNet sample_size * VAE factor */
    int batch;                    /* images per prompt (1) */
    int clip_skip;                /* 0 */
    int vae_tiling;               /* decode / encode in tiles (bounded memory) */
    /* Initial noise (batch, C, h, w) in place of the seed's (diffusers'
     * `latents` / the noise its randn would draw): scaled by the sampler's
     * init_noise_sigma, or added to the image latents for img2img. */
    const float *noise;
    /* Per-step noise for Euler ancestral / DDIM eta; NULL: the seed's RNG. */
    it_noise_fn step_noise;
    void *step_noise_user;
    /* img2img / inpainting */
    const it_image *init_image;   /* NULL: text-to-image */
    const it_image *mask;         /* with init_image: inpaint where white */
    double strength;              /* < 0: diffusers' default (img2img 0.8, inpaint 1.0) */
    int encode_mean;              /* VAE encode uses the posterior mean, not a sample
                                     (reproducible across implementations) */
    /* after each step: progress, live previews, per-step checks; latents
     * (batch, C, lh, lw) as they stand after the step (and the blend) */
    void (*on_step)(void *user, int done, int total, const float *latents);
    void *progress_user;
} it_gen_opts;

void it_gen_opts_init(it_gen_opts *o);

typedef struct it_gen_result {
    int batch, channels;          /* latent channels */
    int lw, lh;                   /* latent size */
    int w, h;                     /* image size */
    float *latents;               /* (batch, channels, lh, lw) final latents, before the VAE */
    float *pixels;                /* (batch, 3, h, w) in [0, 1] */
    it_image *images;             /* (batch) 8-bit RGB */
} it_gen_result;

void it_gen_result_free(it_gen_result *r);

/* The model's scheduler configuration: scheduler/scheduler_config.json of
 * the model folder (or of opts' config folder) when present, read by
 * it_schedule_config_parse; else SD's defaults with the loader's prediction
 * type (single files). */
it_status it_sd_schedule_config(it_err *err, it_schedule_config *c, const it_sd_model *m,
                                const char *config_dir);

/* Runs the whole pipeline. m must have text encoder, UNet, VAE and
 * tokenizer. sched: NULL for it_sd_schedule_config(m, NULL). */
it_status it_sd_generate(it_err *err, it_sd_model *m, const it_schedule_config *sched,
                         const it_gen_opts *o, it_gen_result *r);

#endif
