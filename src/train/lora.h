/* lora.h: LoRA (and LoCon) adapters on the it_lin modules of Stable
 * Diffusion's UNet and CLIP text encoder, as kohya's sd-scripts builds them.
 *
 * Owns: choosing the target modules (kohya's defaults: every Linear and 1x1
 * Conv2d inside the UNet's Transformer2DModel blocks - 192 on SD 1.5 - and
 * the text encoder's self_attn q/k/v/out_proj and mlp fc1/fc2 - 72 on
 * CLIP-L; optionally LoCon: the 3x3 convs of ResnetBlock2D / down- and
 * upsamplers with their own rank, plus the resnets' linear and 1x1 modules
 * at the default rank, as kohya's conv_dim does), the kohya module names
 * (lora_unet_<module path with '_'>, lora_te_<...>), the parameters (down:
 * (r, in[, kh, kw]) kaiming-uniform(a = sqrt 5), up: (out, r[, 1, 1]) zeros;
 * scale = alpha / rank, alpha 0 meaning rank), the forward hook
 * (y + multiplier * scale * up(dropout(down(x)))), attaching/detaching
 * several LoRAs on one model, and merging into base weights.
 * Does not own files (lora_file.h) or training (trainer.h). */
#ifndef IT_LORA_H
#define IT_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "models/nn.h"
#include "tensor/optim.h"
#include "tensor/tensor.h"

typedef struct it_lora_mod {
    it_adapter hook;      /* first member: the it_lin adapter hook */
    char name[192];       /* kohya name, e.g. "lora_unet_down_blocks_0_attentions_0_proj_in" */
    it_lin *target;       /* the module it adapts (NULL when detached from any model) */
    int conv;             /* target is a convolution */
    int64_t in, out, rank, kh, kw;
    float alpha;          /* as stored in files (.alpha); scale = alpha / rank */
    float dropout;        /* probability on the down projection's output, training only */
    const float *multiplier; /* points at the owning it_lora's multiplier */
    it_tensor down, up;   /* parameters; data and grad in the it_lora's blocks */
    char down_key[224], up_key[224]; /* "<name>.lora_down.weight", ".lora_up.weight" */
} it_lora_mod;

typedef struct it_lora {
    it_lora_mod *mods;    /* (n) in model registration order: UNet first, then text */
    size_t n;
    float *data;          /* every down/up weight, one block (n_floats) */
    float *grad;          /* same size, or NULL when not trainable */
    size_t n_floats;
    float multiplier;     /* inference strength (1 in training) */
    int attached;
} it_lora;

typedef struct it_lora_opts {
    int rank;             /* 16 */
    float alpha;          /* 8; 0 = rank */
    int conv_rank;        /* LoCon 3x3 convs; 0 = off */
    float conv_alpha;     /* 0 = conv_rank */
    float dropout;        /* 0 */
    int unet, text;       /* which components get modules (1, 0) */
    int trainable;        /* allocate gradient buffers */
} it_lora_opts;

void it_lora_opts_init(it_lora_opts *o);

/* True when kohya's defaults (conv_rank 0) or LoCon (conv_rank > 0) adapt
 * this module. unet: 1 for the UNet, 0 for the text encoder. */
int it_lora_is_target(const it_lin *m, int unet, int locon);

/* kohya name of a module: "lora_unet_" / "lora_te_" + name with '.' -> '_'. */
void it_lora_kohya_name(char *buf, size_t n, const char *module_name, int unet);

/* New LoRA on the target modules of unet_ps / text_ps (either may be NULL)
 * with kohya's initialisation from seed (down kaiming-uniform, up zero).
 * Works on shapes-only models (counts, names). Not attached. */
it_status it_lora_create(it_err *err, it_lora *l, const it_params *unet_ps,
                         const it_params *text_ps, const it_lora_opts *o, uint64_t seed);
void it_lora_free(it_lora *l);  /* detaches first */

/* For loaders: alloc gives n zeroed modules; the caller sets name, target,
 * conv, in, out, rank, kh, kw, alpha of each; finish allocates and wires
 * the weights (freeing l on failure). */
it_status it_lora_alloc(it_err *err, it_lora *l, size_t n, int trainable);
it_status it_lora_finish(it_err *err, it_lora *l, int trainable);

/* Adds the hooks to the targets (each LoRA is its own adapter, so several
 * apply at once); detach removes exactly this LoRA's hooks. */
void it_lora_attach(it_lora *l);
void it_lora_detach(it_lora *l);

/* W += multiplier * scale * up @ down for every module (the LoRA should then
 * be detached or freed, or it applies twice). */
it_status it_lora_merge(it_err *err, it_lora *l);

/* Parameters for the optimiser: fills up to cap entries (down then up of each
 * module), returns the count (2 n). */
size_t it_lora_params(const it_lora *l, it_optim_param *out, size_t cap);

/* Scale of one module: multiplier * alpha / rank. */
float it_lora_mod_scale(const it_lora_mod *m);

/* Counts of modules per component. */
size_t it_lora_count(const it_lora *l, int unet);

#endif
