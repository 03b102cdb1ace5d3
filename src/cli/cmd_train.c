/* cmd_train.c: `intenttuner train`: LoRA fine-tuning of a Stable Diffusion
 * model on a folder of captioned images (src/train/trainer.h).
 *
 * Every option is also a key of the --config JSON file (same words, '_' or
 * '-'); options given on the command line override the file. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "train/trainer.h"

/* Options that take a value, in the order of the help text. */
static const struct {
    const char *name, *metavar, *help;
} VALUE_OPTS[] = {
    {"model", "PATH", "diffusers folder or single .safetensors file (SD 1.x / 2.x)"},
    {"data", "DIR", "images with .txt captions, or kohya N_name/ subfolders (N repeats)"},
    {"out", "DIR", "output: lora.safetensors, train.jsonl, checkpoints/"},
    {"rank", "N", "LoRA rank (16)"},
    {"alpha", "A", "LoRA alpha, scale = alpha / rank; 0 = rank (8)"},
    {"conv-rank", "N", "LoCon: rank of the ResNet 3x3 convs; 0 = off (0)"},
    {"conv-alpha", "A", "LoCon alpha (0 = conv rank)"},
    {"dropout", "P", "dropout on the LoRA down projection (0)"},
    {"lr", "LR", "learning rate (of the UNet's LoRA; 1e-4)"},
    {"text-lr", "LR", "learning rate of the text encoder's LoRA (kohya's text_encoder_lr; default: --lr)"},
    {"lr-schedule", "NAME", "constant, constant_with_warmup, linear, cosine, cosine_with_restarts, polynomial"},
    {"warmup-steps", "N", "learning-rate warm-up steps (0)"},
    {"weight-decay", "W", "AdamW weight decay (0.01)"},
    {"max-grad-norm", "N", "clip the global gradient norm; 0 = off (1.0)"},
    {"steps", "N", "optimiser steps (1000)"},
    {"batch", "B", "images per micro-batch (1)"},
    {"accum", "N", "gradient accumulation micro-batches per step (1)"},
    {"resolution", "PX", "training resolution, square, centre crop (512)"},
    {"save-every", "N", "checkpoint every N steps; 0 = only at the end (100)"},
    {"seed", "S", "seed of the LoRA init, data order, noise and timesteps (0)"},
    {"min-snr-gamma", "G", "min-SNR-gamma loss weighting; 0 = off (0)"},
    {"noise-offset", "X", "noise offset (0)"},
    {"keep-tokens", "N", "with --shuffle-captions: tags kept in place at the front (0)"},
    {"caption-dropout", "P", "probability of training on an empty caption (0)"},
    {"prediction", "TYPE", "epsilon, v_prediction or sample (default: the model's)"},
    {"save-precision", "T", "final file: f32, f16 or bf16 (f32)"},
    {"sample-every", "N", "sample images every N steps and at the end; 0 = never (0)"},
    {"sample-prompt", "TEXT", "prompt of the samples; several separated by '|'"},
    {"sample-steps", "N", "sampler steps of the samples (20)"},
    {"sample-cfg", "S", "guidance scale of the samples (7)"},
    {"stop-after", "N", "stop after N steps of this process without the final file (tests)"},
    {"min-bucket-reso", "PX", "with --buckets: smallest bucket side (resolution / 2)"},
    {"max-bucket-reso", "PX", "with --buckets: largest bucket side (resolution * 2)"},
    {"mask-dir", "DIR", "loss masks DIR/NAME.png (implies --masked-loss)"},
    {"reg-data", "DIR", "regularisation images (prior preservation), kohya N_class/ layout"},
    {"class-prompt", "TEXT", "caption of reg images without .txt or N_class folder"},
    {"prior-loss-weight", "W", "loss weight of regularisation samples (1)"},
    {"cache-latents", "DIR", "latent cache folder (OUT/latent_cache); 'none' = memory only"},
};
#define N_VALUE (sizeof VALUE_OPTS / sizeof VALUE_OPTS[0])
static const struct {
    const char *name, *help;
} FLAG_OPTS[] = {
    {"resume", "continue from OUT/checkpoints/latest.json"},
    {"flip", "random horizontal flips"},
    {"shuffle-captions", "shuffle comma-separated tags"},
    {"buckets", "aspect-ratio buckets (no distortion; batches never mix buckets)"},
    {"random-crop", "random crop offset per draw instead of the centre"},
    {"masked-loss", "weight the loss by NAME.mask.png beside each image (white = 1)"},
    {"mask-normalize", "divide each mask by its mean (loss per unit of masked area)"},
    {"train-text", "also train a LoRA on the text encoder (lora_te_* modules)"},
    {"train-text-only", "train the text encoder's LoRA only (kohya's network_train_text_encoder_only)"},
    {"gradient-checkpointing", "recompute UNet blocks / text layers in backward: less memory, ~1/3 more time"},
};
#define N_FLAG (sizeof FLAG_OPTS / sizeof FLAG_OPTS[0])

IT_COMMAND(train, "LoRA fine-tuning of Stable Diffusion on captioned images")
{
    const char *values[N_VALUE] = {0};
    int flags[N_FLAG] = {0};
    const char *config = NULL;
    it_opt opts[N_VALUE + N_FLAG + 2];
    size_t k = 0;
    for (size_t i = 0; i < N_VALUE; i++)
        opts[k++] = (it_opt){VALUE_OPTS[i].name, 0, IT_OPT_STR, &values[i], VALUE_OPTS[i].metavar, VALUE_OPTS[i].help};
    for (size_t i = 0; i < N_FLAG; i++)
        opts[k++] = (it_opt){FLAG_OPTS[i].name, 0, IT_OPT_FLAG, &flags[i], NULL, FLAG_OPTS[i].help};
    opts[k++] = (it_opt){"config", 0, IT_OPT_STR, &config, "FILE", "JSON object with the same keys"};
    opts[k] = (it_opt){0};
    it_cmd_spec spec = {
        "intenttuner train --model PATH --data DIR --out DIR [options]",
        "Trains a LoRA (kohya format) on the UNet (and with --train-text the text encoder) of a "
        "Stable Diffusion model. Checkpoints are "
        "crash-safe; --resume continues bit-identically (same seed and thread count).",
        opts, 0, 0,
        "example: intenttuner train --model sd15/ --data photos/ --out run1 --rank 16 --steps 1500",
    };
    const char *pos[1];
    int n_pos = 0;
    int rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err = {0};
    it_train_config c;
    it_train_config_init(&c);
    if (config && it_train_config_load(&err, &c, config)) return it_cli_fail(&err);
    for (size_t i = 0; i < N_VALUE; i++)
        if (values[i] && it_train_config_set(&err, &c, VALUE_OPTS[i].name, values[i])) {
            err.code = IT_ERR_ARG;
            return it_cli_fail(&err);
        }
    for (size_t i = 0; i < N_FLAG; i++)
        if (flags[i]) it_train_config_set(&err, &c, FLAG_OPTS[i].name, "true");
    c.quiet = it_common.quiet;
    if (it_train_config_check(&err, &c)) return it_cli_fail(&err);
    double loss = 0;
    if (it_train_run(&err, &c, &loss)) return it_cli_fail(&err);
    if (!it_common.quiet) printf("wrote %s/lora.safetensors (last loss %.5f)\n", c.out, loss);
    return 0;
}
