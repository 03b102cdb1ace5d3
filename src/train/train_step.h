/* train_step.h: one diffusion training step of a LoRA'd UNet.
 *
 * Owns: the loss of one (micro-)batch given its latents, text states,
 * noise and timesteps: DDPM add_noise, the target for the prediction type
 * (epsilon, v, sample), MSE with min-SNR-gamma weighting and an optional
 * latent-space mask, backward into the LoRA's gradient buffers; and the
 * draw of noise / timesteps / noise offset from the counter RNG keyed by
 * (seed, step, micro-batch), so a resumed run draws exactly what an
 * uninterrupted one would; the text states of a batch (frozen encoder, or
 * recorded for text-encoder LoRA). Does not own the loop, data or files
 * (trainer.h, dataset.h). */
#ifndef IT_TRAIN_STEP_H
#define IT_TRAIN_STEP_H

#include <stdint.h>

#include "diffusion/schedule.h"
#include "models/clip_text.h"
#include "models/unet.h"

typedef struct it_train_batch {
    int batch;
    int64_t c, h, w;          /* latent shape of one item */
    int64_t t_len, t_dim;     /* text states of one item */
    const float *latents;     /* (B, c, h, w), already scaled */
    const float *text;        /* (B, t_len, t_dim) */
    const float *noise;       /* (B, c, h, w) */
    const int *timesteps;     /* (B) */
    const float *mask;        /* (B, 1, h, w) in [0, 1] or NULL */
    it_tensor *text_states;   /* or NULL: (B, t_len, t_dim) in the step's context, used instead of
                               * `text` (text-encoder LoRA: recorded through the encoder) */
} it_train_batch;

typedef struct it_train_loss_opts {
    float min_snr_gamma;      /* 0 = off; else diffusers' min(snr, gamma) / snr (v: / (snr + 1)) */
    it_pred_type prediction;
    float loss_scale;         /* multiplies the loss before backward (1 / accumulation) */
} it_train_loss_opts;

/* Forward and backward of one batch (ctx reset by the caller). Gradients
 * accumulate into the trainable parameters. *loss: the unscaled loss. */
it_status it_train_step_loss(it_err *err, it_ctx *ctx, const it_unet *unet, const it_schedule *s,
                             const it_train_batch *b, const it_train_loss_opts *o, double *loss);

/* Text states (B, T, hidden) of token ids (B, T) through the text
 * encoder, into *out in ctx. train: record the tape (gradients reach the
 * encoder's LoRA modules through the UNet's cross-attention); otherwise
 * no-grad (frozen encoder, nothing kept but the result). */
it_status it_train_text_states(it_err *err, it_ctx *ctx, it_clip_text *te, const int32_t *ids, int B,
                               int64_t T, int train, it_tensor **out);

/* Draws the noise (B, c, h, w) and timesteps (B) of micro-batch `micro` of
 * step `step`: normal noise plus noise_offset * N(0, 1) per (item, channel)
 * (kohya/diffusers noise offset), timesteps uniform in [t_min, t_max). */
void it_train_draw_noise(uint64_t seed, int64_t step, int micro, int batch, int64_t c, int64_t h,
                         int64_t w, float noise_offset, int t_min, int t_max, float *noise,
                         int *timesteps);

#endif
