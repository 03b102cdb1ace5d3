/* vae.h: AutoencoderKL (diffusers), the latent <-> image codec of Stable
 * Diffusion.
 *
 * Owns: the encoder (conv_in, DownEncoderBlock2D levels with asymmetric-pad
 * stride-2 downsampling, mid block with one single-head attention, GN+SiLU,
 * conv_out to mean and log-variance, quant_conv), the decoder
 * (post_quant_conv, conv_in, mid block, UpDecoderBlock2D levels with nearest
 * 2x + conv upsampling, GN+SiLU, conv_out), sampling the posterior with our
 * counter RNG, the scaling factor, and tiled encode/decode that matches
 * diffusers' enable_tiling() value for value while holding at most two rows
 * of tiles. Does not own image conversion (image/) or the samplers.
 *
 * Keys are diffusers': encoder.down_blocks.0.resnets.0.conv1.weight,
 * decoder.mid_block.attentions.0.to_q.weight, quant_conv.weight ... */
#ifndef IT_VAE_H
#define IT_VAE_H

#include <stdint.h>

#include "models/config.h"
#include "models/nn.h"

typedef struct it_vae_attn {
    it_norm gn;                   /* group_norm (C) */
    it_lin *q, *k, *v, *o;        /* to_q, to_k, to_v, to_out.0: (C, C) */
} it_vae_attn;

typedef struct it_vae_level {
    it_resnet *res;               /* (n_res) */
    int n_res;
    it_lin *sample;               /* downsamplers.0.conv / upsamplers.0.conv, or NULL */
} it_vae_level;

typedef struct it_vae {
    it_vae_config cfg;
    it_params params;
    /* encoder */
    it_lin *enc_in;                       /* (C0, in, 3, 3) */
    it_vae_level enc[IT_SD_MAX_LEVELS];
    it_resnet enc_mid[2];
    it_vae_attn enc_attn;
    it_norm enc_norm;
    it_lin *enc_out;                      /* (2 L, Cn, 3, 3) */
    it_lin *quant;                        /* (2 L, 2 L, 1, 1) or NULL */
    /* decoder */
    it_lin *post_quant;                   /* (L, L, 1, 1) or NULL */
    it_lin *dec_in;                       /* (Cn, L, 3, 3) */
    it_resnet dec_mid[2];
    it_vae_attn dec_attn;
    it_vae_level dec[IT_SD_MAX_LEVELS];   /* execution order (deepest first) */
    it_norm dec_norm;
    it_lin *dec_out;                      /* (out, C0, 3, 3) */
} it_vae;

it_status it_vae_init(it_err *err, it_vae *m, const it_vae_config *cfg, int flags);
void it_vae_free(it_vae *m);

/* image (N, in, H, W) in [-1, 1] -> moments (N, 2 L, H/f, W/f): mean then
 * log-variance along dim 1 (before clamping), f = 2^(n_levels-1). */
it_tensor *it_vae_encode(it_ctx *ctx, const it_vae *m, it_tensor *image);
/* latents (N, L, h, w) (already divided by the scaling factor) -> image. */
it_tensor *it_vae_decode(it_ctx *ctx, const it_vae *m, it_tensor *z);

/* DiagonalGaussianDistribution.sample: mean + exp(0.5 clamp(logvar, -30,
 * 20)) * noise, noise from it_rng_normal (seed, offset) so it is
 * reproducible; then (z - shift) * scaling_factor when scale != 0.
 * moments (N, 2L, h, w) -> (N, L, h, w). deterministic: use the mean.
 * Differentiable (reparameterisation; no gradient where the clamp bites). */
it_tensor *it_vae_sample(it_ctx *ctx, const it_vae *m, it_tensor *moments, uint64_t seed,
                         int deterministic, int scale);
/* Scalar mean over the N*L*h*w latent elements of KL(posterior || N(0, 1)):
 * 0.5 (mean^2 + exp(logvar) - 1 - logvar), logvar clamped as in sample.
 * Differentiable (VAE training). */
it_tensor *it_vae_kl(it_ctx *ctx, const it_vae *m, it_tensor *moments);

/* Tiled versions (no-grad only; they return constants). The tile is the
 * config's sample_size in image pixels (tile_latent = sample_size / f),
 * tiles overlap by 25 %: starts every 0.75 tile; each tile is blended
 * linearly with the tile above and the tile to its left over
 * 0.25 x (output tile) rows/columns, then cropped to 0.75 x (output tile).
 * Exactly diffusers' tiled_decode / _tiled_encode, including its quirk
 * that the neighbours used are already blended themselves. Inputs no
 * larger than one tile take the untiled path (as diffusers does). Memory:
 * the output plus two rows of output tiles plus one tile's activations. */
it_tensor *it_vae_decode_tiled(it_ctx *ctx, const it_vae *m, it_tensor *z);
it_tensor *it_vae_encode_tiled(it_ctx *ctx, const it_vae *m, it_tensor *image);

#endif
