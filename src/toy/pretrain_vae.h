/* pretrain_vae.h: the toy VAE component of `intenttuner toy pretrain`.
 *
 * Owns: the toy AutoencoderKL architecture (a diffusers config: 128x128 RGB
 * <-> 16x16x4 latents), its pretraining on renders (reconstruction + edge +
 * KL loss, see pretrain_vae.c), the latent scaling factor measurement, the
 * export into OUT/vae/ and the quality measurement (PSNR on fresh renders).
 * Does not own the VAE network (models/vae.h) or the loop (pretrain.h). */
#ifndef IT_PRETRAIN_VAE_H
#define IT_PRETRAIN_VAE_H

#include <jansson.h>
#include <stdint.h>

#include "base/status.h"
#include "models/vae.h"
#include "tensor/tensor.h"
#include "toy/pretrain.h"

/* Trains (or resumes) the VAE and, when finished (or with export_partial),
 * exports OUT/vae/ and records OUT/pretrain/vae.json with the quality. */
it_status it_pretrain_vae(it_err *err, const it_pretrain_opts *o);
/* PSNR of the shipped OUT/vae (or o->model_dir) on eval_n (default 200)
 * fresh renders of o->eval_seed, into report; writes RUN_DIR/vae/
 * quality_vae.png (renders above reconstructions). */
it_status it_quality_vae(it_err *err, const it_pretrain_opts *o, json_t *report);

typedef struct it_vae_quality {
    int n;
    double psnr;          /* mean of per-image PSNR (dB), 8-bit rounded reconstruction */
    double min_psnr;      /* worst image */
    double psnr_pooled;   /* PSNR of the mean squared error over all images */
    double latent_mean;   /* posterior means, unscaled, over every latent element */
    double latent_std;    /* their std: scaling_factor = 1 / latent_std */
} it_vae_quality;

/* Encodes (posterior mean) and decodes n renders of (seed, 0..n-1) at
 * 128x128 and measures them. grid (may be NULL): a PNG of the first 8
 * renders above their reconstructions. */
it_status it_vae_measure(it_err *err, const it_vae *m, uint64_t seed, int n, it_vae_quality *q, const char *grid);

/* Loads DIR/vae/{config.json, diffusion_pytorch_model.safetensors} through
 * the pipeline's loaders. */
it_status it_vae_load_dir(it_err *err, it_vae *m, const char *dir);

/* The training reconstruction loss (scalar): mean|p - t| + mean (p - t)^2 +
 * 0.5 mean|grad p - grad t| over horizontal and vertical neighbour
 * differences. terms (may be NULL) receive l1, mse, edge. Gradient to pred
 * only. pred, target: (N, C, H, W), H, W >= 2. */
it_tensor *it_vae_recon_loss(it_ctx *ctx, it_tensor *pred, it_tensor *target, double terms[3]);

#endif
