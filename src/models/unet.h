/* unet.h: UNet2DConditionModel (diffusers), the denoiser of Stable
 * Diffusion 1.x / 2.x, config-driven: the same code runs the fixtures'
 * 8-channel toy and the 860 M-parameter SD 1.5 UNet.
 *
 * Owns: building the weights under diffusers' keys (time_embedding.linear_1,
 * down_blocks.I.resnets.J, down_blocks.I.attentions.J.transformer_blocks.0.
 * attn1.to_q, ..., mid_block, up_blocks, conv_norm_out, conv_out) and the
 * forward: sinusoidal timestep embedding + MLP, ResnetBlock2D,
 * Transformer2DModel (GroupNorm, proj_in as 1x1 conv or linear, one
 * BasicTransformerBlock: self-attention, cross-attention on the text
 * states, GEGLU feed-forward; proj_out; residual), stride-2 conv
 * downsampling, nearest 2x + conv upsampling, skip connections. Inference in
 * no-grad mode keeps only the skips and one block's activations; with
 * recording on, the tape supports training (frozen base weights; LoRA
 * attaches to the it_lin modules, see nn.h); with `checkpoint` set, each
 * resnet+transformer step (and the mid block) is a checkpointed block:
 * only block outputs stay on the tape, backward recomputes. Does not own the schedulers or
 * classifier-free guidance (diffusion/). */
#ifndef IT_UNET_H
#define IT_UNET_H

#include "models/config.h"
#include "models/nn.h"

typedef struct it_xformer {
    int64_t channels, heads;
    it_norm gn;                       /* norm (C), groups, eps 1e-6 */
    it_lin *proj_in, *proj_out;       /* 1x1 conv (C, C, 1, 1) or linear (C, C) */
    it_norm n1, n2, n3;               /* transformer_blocks.0.norm1..3, layer norms (C) */
    it_lin *q1, *k1, *v1, *o1;        /* attn1: self (C -> C), no bias except to_out.0 */
    it_lin *q2, *k2, *v2, *o2;        /* attn2: q (C, C), k/v (C, cross_dim) */
    it_lin *ff1, *ff2;                /* ff.net.0.proj (8C, C) GEGLU, ff.net.2 (C, 4C) */
    int linear;                       /* use_linear_projection */
} it_xformer;

typedef struct it_unet_level {
    it_resnet *res;                   /* (n) */
    it_xformer *attn;                 /* (n) or NULL */
    int n;
    it_lin *sample;                   /* downsamplers.0.conv / upsamplers.0.conv, or NULL */
} it_unet_level;

typedef struct it_unet {
    it_unet_config cfg;
    it_params params;
    it_lin *time1, *time2;            /* time_embedding.linear_1 (4 C0, C0), linear_2 (4 C0, 4 C0) */
    it_lin *conv_in;                  /* (C0, in, 3, 3) */
    it_unet_level down[IT_SD_MAX_LEVELS];
    it_resnet mid_res[2];
    it_xformer mid_attn;
    it_unet_level up[IT_SD_MAX_LEVELS];
    it_norm norm_out;                 /* conv_norm_out (C0) */
    it_lin *conv_out;                 /* (out, C0, 3, 3) */
    int checkpoint;                   /* training: gradient checkpointing per block (set by the caller) */
} it_unet;

it_status it_unet_init(it_err *err, it_unet *m, const it_unet_config *cfg, int flags);
void it_unet_free(it_unet *m);

/* sample (B, in, h, w) with h and w divisible by 2^(n_levels-1);
 * timesteps (B) f32; context (B, T, cross_dim) text states.
 * Returns (B, out, h, w) (the noise, v or sample prediction, per the
 * scheduler's prediction type); NULL with the context's sticky error. */
it_tensor *it_unet_forward(it_ctx *ctx, const it_unet *m, it_tensor *sample, it_tensor *timesteps,
                           it_tensor *context);

#endif
