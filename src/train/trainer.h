/* trainer.h: the LoRA training loop of `intenttuner train`.
 *
 * Owns: the run configuration (every key of the CLI and of the --config
 * JSON file, with defaults and validation), the loop (data order, VAE
 * latents and text states, noise and timesteps from (seed, step), gradient
 * accumulation, clipping over UNet and text-encoder LoRA together, AdamW
 * per component (the text encoder's own lr) with diffusers' lr schedules,
 * gradient checkpointing), crash-safe
 * checkpoints (OUT/checkpoints/step-NNNNNNNN/{lora,optim}.safetensors, then
 * OUT/checkpoints/latest.json written atomically last: a checkpoint exists
 * once latest.json names it), --resume, the JSON-lines log OUT/train.jsonl
 * (one line per step, flushed: a monitor can follow it) and the final
 * OUT/lora.safetensors (kohya format, ss_* metadata).
 * Does not own the step's math (train_step.h), LoRA files (lora_file.h) or
 * data on disk (dataset.h). */
#ifndef IT_TRAINER_H
#define IT_TRAINER_H

#include <stdint.h>

#include "base/status.h"

typedef struct it_train_config {
    char model[1024], data[1024], out[1024];
    int rank;
    double alpha;
    int conv_rank;
    double conv_alpha, dropout;
    int train_unet;             /* LoRA on the UNet (1) */
    int train_text;             /* LoRA on the text encoder (0) */
    int train_unet_only, train_text_only; /* kohya's network_train_*_only */
    int gradient_checkpointing; /* recompute UNet blocks / text layers in backward */
    double lr, text_lr, weight_decay, max_grad_norm; /* text_lr 0 = lr */
    char lr_schedule[32];
    int warmup_steps;
    int steps, batch, accum, resolution;
    int save_every;
    int64_t seed;
    double min_snr_gamma, noise_offset;
    int flip, shuffle_captions, keep_tokens;
    double caption_dropout;
    char prediction[16];        /* "" = the model's */
    int resume;
    int quiet;
    char save_precision[8];     /* "f32", "f16", "bf16" */
    int sample_every;           /* 0 = no samples */
    char sample_prompts[4096];  /* prompts separated by '|' */
    int sample_steps;           /* sampler steps (20) */
    double sample_cfg;          /* guidance scale (7) */
    int stop_after;             /* tests: exit after this many steps of this process (0 = off) */
    /* data (train_data.h, dataset.h) */
    int buckets;                /* aspect-ratio buckets */
    int min_bucket_reso, max_bucket_reso; /* bucket side limits (0: resolution / 2, * 2) */
    int random_crop;
    int masked_loss;            /* NAME.mask.png beside images (or mask_dir) weight the loss */
    char mask_dir[1024];
    int mask_normalize;         /* divide each mask by its mean */
    char reg_data[1024];        /* regularisation images (prior preservation) */
    char class_prompt[256];     /* caption of reg images without .txt or N_name folder */
    double prior_loss_weight;   /* 1 */
    char cache_latents[1024];   /* latent cache folder; "" = OUT/latent_cache, "none" = memory only */
} it_train_config;

void it_train_config_init(it_train_config *c);
/* Sets one key from its text value (the CLI's --name and the config file's
 * keys are the same words, with '-' or '_'). Errors name the key. */
it_status it_train_config_set(it_err *err, it_train_config *c, const char *key, const char *value);
/* Reads a JSON object of keys (numbers, strings, booleans). Unknown keys
 * and bad values are errors naming the file and the key. */
it_status it_train_config_load(it_err *err, it_train_config *c, const char *path);
it_status it_train_config_check(it_err *err, const it_train_config *c);
/* Which components get LoRA modules, after the *_only keys. */
int it_train_config_unet(const it_train_config *c);
int it_train_config_text(const it_train_config *c);

/* Runs (or resumes) a training run; final loss in *final_loss (may be NULL). */
it_status it_train_run(it_err *err, const it_train_config *c, double *final_loss);

#endif
