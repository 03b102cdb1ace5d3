/* clip.h: the joint CLIP model: image and text embeddings in one space and
 * the scaled cosine similarity between them (transformers' CLIPModel,
 * OpenCLIP's CLIP).
 *
 * Owns: loading a model folder in either layout
 *   transformers: config.json + model.safetensors (CLIPModel keys);
 *   OpenCLIP:     open_clip_config.json + open_clip_model.safetensors
 *                 (visual.*, transformer.resblocks.*, ln_final, ...);
 * with the tokenizer files (vocab.json, merges.txt, ...) and
 * preprocessor_config.json in the same folder (OpenCLIP folders without one
 * take mean/std from open_clip_config.json's preprocess_cfg), the logit
 * scale, and scoring N images against M texts. The text side is the generic
 * models/clip_text.h transformer; the image side vision/clip_vision.h. Does
 * not own either tower. */
#ifndef IT_CLIP_H
#define IT_CLIP_H

#include "image/image.h"
#include "models/clip_text.h"
#include "text/clip_tokenizer.h"
#include "vision/clip_vision.h"
#include "vision/preprocess.h"

typedef enum it_clip_layout {
    IT_CLIP_LAYOUT_HF = 0,       /* transformers CLIPModel */
    IT_CLIP_LAYOUT_OPENCLIP,     /* open_clip CLIP */
} it_clip_layout;

typedef struct it_clip {
    it_clip_layout layout;
    it_clip_vision vision;
    it_clip_text text;
    float logit_scale;           /* as stored (log); scores use exp(logit_scale) */
    it_preprocess pre;
    it_clip_tokenizer *tok;
    int embed_dim;               /* projection width of both towers */
} it_clip;

/* Loads DIR (layout detected from which config file is present). Errors
 * name the folder and the missing or malformed file. */
it_status it_clip_load(it_err *err, it_clip *m, const char *dir);
void it_clip_free(it_clip *m);

/* Projected, unnormalised embeddings. pixels: (B, 3, H, W) -> out (B, embed_dim). */
it_status it_clip_embed_pixels(it_err *err, it_ctx *ctx, it_clip *m, it_tensor *pixels, float *out);
/* One decoded image (any channel count), preprocessed -> out (embed_dim). */
it_status it_clip_embed_image(it_err *err, it_ctx *ctx, it_clip *m, const it_image *img, float *out);
/* Token ids I32 (B, T) -> out (B, embed_dim). */
it_status it_clip_embed_ids(it_err *err, it_ctx *ctx, it_clip *m, it_tensor *ids, float *out);
/* One text, tokenised and padded to the text context -> out (embed_dim). */
it_status it_clip_embed_text(it_err *err, it_ctx *ctx, it_clip *m, const char *text, float *out);

/* v /= |v| (left as is when |v| == 0). */
void it_clip_l2norm(float *v, int n);

/* logits (n_img, n_txt) = exp(logit_scale) * cos(image_i, text_j), which is
 * transformers' logits_per_image. img_emb, txt_emb: unnormalised. */
void it_clip_logits(const it_clip *m, float *logits, const float *img_emb, int n_img,
                    const float *txt_emb, int n_txt);

#endif
