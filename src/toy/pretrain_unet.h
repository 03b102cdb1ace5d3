/* pretrain_unet.h: the toy world's UNet (a tiny UNet2DConditionModel),
 * pretrained with our engine by standard latent diffusion, and its quality
 * measurement.
 *
 * Owns: the toy UNet configuration written as diffusers config.json, the
 * pipeline files the UNet component owns in models/toy (model_index.json,
 * scheduler/scheduler_config.json), the training data stream (renders of
 * purpose pretrain, captions with caption dropout for classifier-free
 * guidance, latents from the frozen VAE cached per image, text states from
 * the frozen text encoder), the EMA of weights (kept as frozen parameters
 * so the framework's checkpoints carry it), the export of unet/ (f16) and,
 * in quality_unet.c, generation from held-out captions scored by the judge.
 * Does not own the VAE, the text encoder or the tokenizer (their own
 * components write them into the same folder), the step's loss
 * (train/train_step.h), the sampler (diffusion/), or the loop, run folder
 * and checkpoints (toy/pretrain.h).
 *
 * Determinism: image k of the pool is a pure function of (seed, k); batch
 * item i of step s picks its image, caption variant and dropout from
 * (seed, s * batch + i); noise and timesteps come from
 * it_train_draw_noise(seed, s); so a resumed run (same thread count) gives
 * bit-identical losses. */
#ifndef IT_PRETRAIN_UNET_H
#define IT_PRETRAIN_UNET_H

#include <jansson.h>
#include <stdint.h>

#include "base/status.h"
#include "models/config.h"
#include "toy/pretrain.h"

/* The shipped toy architecture for latents of side sample_size with
 * `channels` channels, conditioned on text states of width cross_dim
 * (docs/TOYWORLD.md has the sizes and their cost per step). */
void it_toy_unet_config(it_unet_config *c, int sample_size, int channels, int cross_dim);

/* diffusers' UNet2DConditionModel config.json of c (the keys diffusers
 * writes, so diffusers and our loader read it alike). New reference. */
json_t *it_toy_unet_config_json(const it_unet_config *c);

/* The toy config with a JSON object's UNet2DConditionModel keys laid over
 * it (e.g. {"block_out_channels": [8, 16], ...} for tests); sample size,
 * channels and cross-attention width always come from the frozen parts.
 * Errors name the key. over may be NULL. */
it_status it_toy_unet_config_from(it_err *err, it_unet_config *c, const json_t *over, int sample_size,
                                  int channels, int cross_dim);

/* Writes DIR/model_index.json (StableDiffusionPipeline) and
 * DIR/scheduler/scheduler_config.json (SD 1.x's DDPM schedule, epsilon
 * prediction), replacing older copies. */
it_status it_toy_pipeline_files_write(it_err *err, const char *dir);

/* `toy pretrain unet`: trains (or resumes) the UNet on OUT's frozen
 * text_encoder/, tokenizer/ and vae/, and exports OUT/unet (EMA weights,
 * f16; metadata intenttuner_status "final" or "interim") with
 * OUT/pretrain/unet.json when the run finishes, or when it stops early
 * with o->export_partial / o->export_only. o->config: a JSON object of UNet config keys
 * plus the training keys "pool" (distinct training images, default 24000),
 * "ema_decay" (0.999; 0 = none), "caption_dropout" (0.1), "warmup" (lr
 * warm-up steps: 5 % of the steps, at most 200) and "init" (a UNet
 * weights file to start from instead of random weights: staged training
 * after the VAE or text encoder changed). The run's identity includes
 * fingerprints of the frozen parts' files: resuming with other VAE or text
 * encoder weights is refused, and a latent cache of another VAE is
 * recomputed. */
it_status it_pretrain_unet(it_err *err, const it_pretrain_opts *o);

/* `toy quality unet`: generates one image per held-out caption (o->eval_n,
 * default 200; stream o->eval_seed; 20 steps; guidance 5) with the complete
 * pipeline in o->model_dir (or o->out) and scores, for every attribute a
 * caption states, whether the judge (MODEL/judge.safetensors; measurement
 * only) reads the stated value back. The same judge on renders of the
 * captions' true creatures gives its own ceiling. Writes a sample grid
 * (renders above generations) to RUN/quality_unet.png. report receives
 * {"n", "per_attribute": {name: {"n", "generated", "render"}},
 *  "mean_generated", "mean_render", "seconds", "grid"}. */
it_status it_quality_unet(it_err *err, const it_pretrain_opts *o, json_t *report);

#endif
