/* owlvit.h: OWL-ViT (v1) open-vocabulary detection, as transformers'
 * OwlViTForObjectDetection: text queries and image-guided (one-shot) queries.
 *
 * Owns: loading an OWL-ViT folder (config.json, model.safetensors, tokenizer
 * files, preprocessor_config.json), the per-patch image features (vision
 * tower, post layer norm on every token, patch tokens times the class token,
 * layer_norm), the box head (3-layer GELU MLP + the patch-grid box bias,
 * sigmoid -> normalised cx, cy, w, h), the class head (dense0 class
 * embeddings, query and embedding normalisation with +1e-6, logit shift and
 * elu+1 scale), text query embeddings (projected end-token state,
 * normalised), image query embeddings from a box on a reference image
 * (embed_image_query's rule: among predicted boxes whose IoU with the box is
 * within 80% of the best - generalised IoU when none overlaps - the one whose
 * class embedding is least similar to the mean class embedding), and
 * post-processing: sigmoid of the best query's logit, boxes to image
 * pixels, score threshold, greedy NMS as post_process_image_guided_detection.
 * Does not own the towers (clip_vision.h, models/clip_text.h). */
#ifndef IT_OWLVIT_H
#define IT_OWLVIT_H

#include "image/image.h"
#include "models/clip_text.h"
#include "text/clip_tokenizer.h"
#include "vision/clip_vision.h"
#include "vision/preprocess.h"

typedef struct it_owlvit {
    it_clip_vision vision;        /* owlvit.vision_model.* (no projection) */
    it_clip_text text;            /* owlvit.text_model.*, owlvit.text_projection */
    it_params head;               /* layer_norm, class_head.*, box_head.* */
    it_norm ln;                   /* (vision hidden) */
    it_lin *cls0;                 /* (query_dim, hidden) */
    it_lin *cls_shift, *cls_scale;/* (1, hidden) */
    it_lin *box0, *box1, *box2;   /* (hidden, hidden), (hidden, hidden), (4, hidden) */
    it_preprocess pre;
    it_clip_tokenizer *tok;
    int query_dim;                /* text hidden = projection_dim */
} it_owlvit;

it_status it_owlvit_load(it_err *err, it_owlvit *m, const char *dir);
/* Registers and allocates (zeroed) the weights of both towers and the heads
 * without loading anything (benchmarks, tests); m must be zeroed first.
 * tc->projection_dim must equal tc->hidden. */
it_status it_owlvit_init(it_err *err, it_owlvit *m, const it_clip_vision_config *vc,
                         const it_clip_text_config *tc);
/* The same with build flags per part (IT_MODEL_TRAINABLE: gradient
 * buffers), for training (src/toy/pretrain_detector.c). */
it_status it_owlvit_init_ex(it_err *err, it_owlvit *m, const it_clip_vision_config *vc,
                            const it_clip_text_config *tc, int vision_flags, int text_flags, int head_flags);
void it_owlvit_free(it_owlvit *m);

/* The heads as tensors of the graph (differentiable; training and
 * it_owlvit_embed_pixels share it). hidden: the tower's (B, 1+N, D) last
 * hidden state; n = N patches. */
typedef struct it_owlvit_heads {
    it_tensor *feats;             /* (B, N, hidden) merged, normed patch features */
    it_tensor *class_emb;         /* (B, N, query_dim) */
    it_tensor *shift, *scale_raw; /* (B, N, 1) logit_shift, logit_scale before elu + 1 */
    it_tensor *box_raw;           /* (B, N, 4) before the grid bias and the sigmoid */
} it_owlvit_heads;
void it_owlvit_heads_forward(it_ctx *ctx, const it_owlvit *m, it_tensor *hidden, int64_t n,
                             it_owlvit_heads *out);

/* What the heads say about one image (it_malloc'd arrays). */
typedef struct it_owlvit_image {
    int n, grid_h, grid_w;        /* patches, n = grid_h * grid_w (row-major) */
    int dq;                       /* query_dim */
    float *feats;                 /* (n, hidden) merged, normed patch features */
    float *class_emb;             /* (n, dq) dense0 output, unnormalised */
    float *shift, *scale;         /* (n) logit shift, elu(logit_scale) + 1 */
    float *boxes;                 /* (n, 4) cx, cy, w, h in [0, 1] */
} it_owlvit_image;

void it_owlvit_image_free(it_owlvit_image *r);
/* pixels (1, 3, H, W) already preprocessed. */
it_status it_owlvit_embed_pixels(it_err *err, it_ctx *ctx, it_owlvit *m, it_tensor *pixels,
                                 it_owlvit_image *out);
it_status it_owlvit_embed_image(it_err *err, it_ctx *ctx, it_owlvit *m, const it_image *img,
                                it_owlvit_image *out);

/* Text query embeddings: ids I32 (B, T) -> q (B, query_dim), normalised
 * (OwlViTModel's text_embeds). */
it_status it_owlvit_embed_ids(it_err *err, it_ctx *ctx, it_owlvit *m, it_tensor *ids, float *q);
it_status it_owlvit_embed_text(it_err *err, it_ctx *ctx, it_owlvit *m, const char *text, float *q);

/* Image query from a box (x0, y0, x1, y1 normalised to the reference image)
 * on the reference image's results: copies the chosen class embedding to q
 * (query_dim) and returns its patch index. */
int it_owlvit_box_query(const it_owlvit_image *ref, const float box[4], float *q);

/* logits (n, nq) of every patch against every query (the class head). */
void it_owlvit_logits(const it_owlvit_image *r, const float *queries, int nq, float *logits);

typedef struct it_detection {
    float box[4];                 /* x0, y0, x1, y1 in image pixels */
    float score;                  /* sigmoid of the best query's logit */
    int query;                    /* index of that query */
    int patch;                    /* patch that predicted it */
} it_detection;

/* Detections with score > threshold after greedy NMS at nms_iou (>= 1
 * disables NMS), best first; out holds r->n entries; returns the count. */
int it_owlvit_postprocess(const it_owlvit_image *r, const float *logits, int nq, int img_w, int img_h,
                          float threshold, float nms_iou, it_detection *out);

/* IoU of two (x0, y0, x1, y1) boxes, as torchvision's box_iou. */
float it_box_iou(const float a[4], const float b[4]);

#endif
