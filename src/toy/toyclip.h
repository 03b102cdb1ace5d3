/* toyclip.h: the toy world's CLIP: its tokenizer, its configuration, the
 * trainable model (text and vision transformers of the real architecture,
 * projections, learnable temperature), the contrastive loss, the training
 * batches and the export to the folders the real loaders read.
 *
 * Owns:
 *   - the tokenizer: a CLIP byte-level BPE vocabulary learned
 *     (text/bpe_train.h) from the captions of a fixed pretraining stream, so
 *     every word the model is trained on is one token and anything else
 *     (trigger words, held-out names) splits into byte-level pieces;
 *   - the configs (toy and tiny sizes) as transformers CLIPConfig /
 *     CLIPTextConfig / CLIPVisionConfig JSON;
 *   - random initialisation as transformers' CLIPPreTrainedModel does it;
 *   - batch k of a seed: renders k*B .. k*B+B-1 (purpose pretrain, so the
 *     held-out characters and pose are refused by the renderer), a random
 *     caption variant of each, a random flip and shift, all a pure function
 *     of (seed, index);
 *   - the symmetric InfoNCE loss with the learnable logit scale;
 *   - writing models/toy/{tokenizer,clip,text_encoder} (CLIPModel and
 *     CLIPTextModel keys), read back by vision/clip.h and the SD loaders.
 * Does not own the training loop, checkpoints or quality figures
 * (pretrain_clip.h), nor the towers themselves (models/clip_text.h,
 * vision/clip_vision.h). */
#ifndef IT_TOYCLIP_H
#define IT_TOYCLIP_H

#include <stdint.h>

#include "models/clip_text.h"
#include "tensor/tensor.h"
#include "text/bpe_train.h"
#include "text/clip_tokenizer.h"
#include "toy/creature.h"
#include "vision/clip_vision.h"
#include "vision/preprocess.h"

/* Renders are 128x128; the vision tower reads them at that size. */
#define IT_TOYCLIP_RENDER 128
/* The text context, as every CLIP: 77 tokens. */
#define IT_TOYCLIP_CONTEXT 77

/* ---------------------------------------------------------------- tokenizer */

/* Learns the vocabulary from the captions of images 0..n_images-1 of the
 * fixed tokenizer stream (every style, names included) and writes the
 * tokenizer folder (vocab.json, merges.txt, tokenizer_config.json,
 * special_tokens_map.json) into dir. Deterministic: the same files for the
 * same n_images. res may be NULL. */
#define IT_TOYCLIP_TOKENIZER_IMAGES 20000
it_status it_toyclip_tokenizer_build(it_err *err, const char *dir, int n_images, it_bpe_result *res);

/* ---------------------------------------------------------------- config */

typedef enum it_toyclip_size {
    IT_TOYCLIP_TOY = 0, /* the shipped model */
    IT_TOYCLIP_TINY,    /* tests: same code paths, seconds per step */
} it_toyclip_size;

typedef struct it_toyclip_config {
    it_clip_text_config text;     /* vocab_size from the tokenizer, eos = <|endoftext|> */
    it_clip_vision_config vision; /* projection_dim = embed_dim */
    int embed_dim;                /* projection width of both towers */
} it_toyclip_config;

/* The sizes of `size` for a tokenizer (vocabulary size and end id). */
void it_toyclip_config_make(it_toyclip_config *c, it_toyclip_size size, const it_clip_tokenizer *tok);
/* Parses a size name: "toy" or "tiny"; -1 if unknown. */
int it_toyclip_size_parse(const char *name);

/* config.json texts (new strings, free()): the full CLIPConfig and the
 * text encoder's CLIPTextConfig (architectures ["CLIPTextModel"]). NULL on
 * out-of-memory. */
char *it_toyclip_config_json(const it_toyclip_config *c);
char *it_toyclip_text_config_json(const it_toyclip_config *c);
/* The preprocessor_config.json of the toy CLIP: 128 px, no resize of a
 * 128 px render, CLIP's mean and std. */
void it_toyclip_preprocess(it_preprocess *p);

/* ---------------------------------------------------------------- model */

typedef struct it_toyclip {
    it_toyclip_config cfg;
    it_clip_text text;            /* "text_model." + text_projection */
    it_clip_vision vision;        /* "vision_model." + visual_projection */
    float logit_scale;            /* log of the temperature's inverse, as CLIPModel stores it */
    float logit_scale_grad;
    it_tensor scale;              /* (1) parameter over logit_scale */
    it_preprocess pre;
} it_toyclip;

/* Trainable model with transformers' initialisation drawn from seed. */
it_status it_toyclip_init(it_err *err, it_toyclip *m, const it_toyclip_config *cfg, uint64_t seed);
void it_toyclip_free(it_toyclip *m);

/* Every trainable array of the model (text, vision, logit_scale), in a
 * fixed order; fn is called with each. Stops at the first non-OK status. */
typedef it_status (*it_toyclip_param_fn)(it_err *err, void *user, it_tensor *t);
it_status it_toyclip_each_param(it_err *err, it_toyclip *m, it_toyclip_param_fn fn, void *user);
/* Total number of weights. */
size_t it_toyclip_numel(const it_toyclip *m);

/* ---------------------------------------------------------------- data */

/* One training batch, host side. */
typedef struct it_toyclip_batch {
    int B, T;                     /* images; tokens per caption after trimming */
    float p_long;                 /* caption styles: < 0 (alloc's default) a third each of short, long
                                   * and tags, as the tokenizer's stream; else long with this chance,
                                   * short and tags sharing the rest */
    uint8_t *rgb;                 /* (B, 128, 128, 3) renders, before augmentation */
    it_toy_attrs *attrs;          /* (B) */
    float *pixels;                /* (B, 3, 128, 128) augmented and normalised */
    int32_t *ids;                 /* (B, T) padded ids, trimmed to the longest caption */
    int32_t *ids77;               /* (B, 77) scratch */
    char (*captions)[640];        /* (B) */
} it_toyclip_batch;

it_status it_toyclip_batch_alloc(it_err *err, it_toyclip_batch *b, int B);
void it_toyclip_batch_free(it_toyclip_batch *b);

/* Batch `step` of stream `seed`: images step*B .. step*B+B-1. p_character:
 * share of named characters; augment: flip and +-6 px shift. Trimming the
 * padding after the longest caption changes nothing in the outputs: the
 * text attention is causal and the pooled row is the end token. */
it_status it_toyclip_batch_make(it_err *err, it_toyclip_batch *b, const it_clip_tokenizer *tok,
                                const it_preprocess *pre, uint64_t seed, int64_t step,
                                float p_character, int augment);

/* ---------------------------------------------------------------- loss */

typedef struct it_toyclip_stats {
    double loss;                  /* symmetric InfoNCE */
    double acc_i2t, acc_t2i;      /* in-batch top-1 */
    it_tensor *vision_pooled;     /* (B, hidden) post-LN class token, for auxiliary heads; lives in ctx */
} it_toyclip_stats;

/* Symmetric InfoNCE over a batch: logits = exp(logit_scale) * cos(img_i,
 * txt_j); loss = (CE(logits, diag) + CE(logits^T, diag)) / 2.
 * pixels (B, 3, S, S), ids I32 (B, T). *loss: the scalar tensor (for
 * backward); stats may be NULL. */
it_status it_toyclip_loss(it_err *err, it_ctx *ctx, it_toyclip *m, it_tensor *pixels, it_tensor *ids,
                          it_tensor **loss, it_toyclip_stats *stats);

/* ---------------------------------------------------------------- export */

/* Writes root/clip/ (config.json, model.safetensors with CLIPModel keys,
 * preprocessor_config.json, tokenizer files) and root/text_encoder/
 * (config.json, model.safetensors with CLIPTextModel keys) from the model;
 * tokenizer files are copied from tok_dir. dtype: IT_DTYPE_F16 or F32
 * (logit_scale always F32). meta: NULL-terminated key, value pairs for the
 * safetensors metadata, or NULL. */
it_status it_toyclip_export(it_err *err, const it_toyclip *m, const char *tok_dir, const char *root,
                            it_dtype dtype, const char *const *meta);

/* Writes the config files only (root/clip/config.json,
 * preprocessor_config.json, tokenizer copy; root/text_encoder/config.json):
 * lets the UNet be built against the text encoder before weights exist. */
it_status it_toyclip_write_configs(it_err *err, const it_toyclip_config *cfg, const char *tok_dir,
                                   const char *root);

#endif
