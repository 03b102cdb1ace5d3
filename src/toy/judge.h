/* judge.h: the toy world's judge, a small CNN that reads a creature image
 * back into its attributes. FOR MEASUREMENT ONLY.
 *
 * Owns: the judge's heads (identity plus one per attribute, each with its
 * classes), the network (1-8 conv layers with GroupNorm and SiLU, the last
 * grid flattened or max+mean pooled into an MLP, one linear layer holding
 * every head's logits; the layout is in the file's config), its
 * weights file (.safetensors, f16 or f32, with the schema in the metadata),
 * the image -> input preprocessing, and inference (class and confidence per
 * head). Does not own training (judge_train.h) nor rendering (toydraw.h).
 *
 * The judge scores generated images against the toy world's ground truth
 * (evaluation of fine-tuning results). The training and generation pipeline
 * must never call it: a model optimised against its own judge would make the
 * measurement meaningless. It recognises the held-out characters too, which
 * is why it is trained on renders of purpose IT_TOY_EVAL: its training set is
 * measurement apparatus, not pretraining data of any generative model. */
#ifndef IT_JUDGE_H
#define IT_JUDGE_H

#include <jansson.h>
#include <stdint.h>

#include "base/status.h"
#include "image/image.h"
#include "tensor/tensor.h"
#include "toy/creature.h"
#include "toy/judge_crop.h"

/* ------------------------------------------------------------- heads */

/* Head 0 is identity (classes: "none" = a generic creature, then the named
 * characters in characters.h order); head 1 + a is attribute a of
 * creature.h. An attribute that can be absent (hair colour of a bald
 * creature) has one more class, "n/a", last. */
#define IT_JUDGE_N_HEADS (1 + IT_TOY_N_ATTRS)
#define IT_JUDGE_HEAD_IDENTITY 0

int it_judge_head_classes(int head);
const char *it_judge_head_name(int head);          /* "identity", "hair_colour" */
const char *it_judge_class_name(int head, int cls); /* "none", "vincent", "red", "n/a" */
/* Sum of the classes of every head: the width of the logit vector. */
int it_judge_total_classes(void);
/* The true class of each head for a creature: labels (IT_JUDGE_N_HEADS). */
void it_judge_labels(int32_t *labels, const it_toy_attrs *a);

/* ------------------------------------------------------------- network */

#define IT_JUDGE_N_CONV 8 /* conv layers at most */

/* Each conv layer is a 3x3 convolution (stride 1 or 2, padding 1) followed by
 * GroupNorm and SiLU; the last grid is flattened or pooled into the MLP. */
typedef struct it_judge_config {
    int size;                    /* input side in pixels (images are resized to size x size) */
    int width[IT_JUDGE_N_CONV];  /* channels of each conv layer; the first 0 ends the stack */
    int hidden;                  /* MLP width after flattening */
    int stride[IT_JUDGE_N_CONV]; /* 1 or 2 per layer; all 0 = {2, 2, 2, 2, 1}, the layout of the
                                    first judge files (which carry no strides); size must be a
                                    multiple of the product */
    int pool;                    /* 0: the last grid is flattened (position-specific weights; the
                                    first files); 1: global max and mean pooling per channel
                                    (2 x last width features, the same weights wherever a part is) */
    int crops;                   /* crops version: 0: none (files before them); 1 or 2: the main
                                    network also regresses the face and body boxes and the crop
                                    networks of judge_crop.h answer their heads (1: face, head,
                                    body; 2: face, head, neck, body at 64 px) */
} it_judge_config;

/* The shipped configuration. */
it_judge_config it_judge_default_config(void);
/* Number of conv layers of a config (leading non-zero widths). */
int it_judge_n_conv(const it_judge_config *c);

enum { IT_JUDGE_MAX_PARAMS = 4 * IT_JUDGE_N_CONV + 4 + 2 + IT_JUDGE_N_CROPS * IT_JUDGE_CROP_PARAMS };

typedef struct it_judge {
    it_judge_config cfg;
    int n_params;
    it_tensor params[IT_JUDGE_MAX_PARAMS]; /* named as checkpoint keys: "conv1.weight", "norm1.bias", ...;
                                              with crops: then "locator.weight", "locator.bias" and each
                                              crop network's "face.conv1.weight", ... */
    int n_main;                            /* parameters of the main network (conv stack and MLP) */
    float *data;                           /* (n_weights) every parameter, contiguous */
    float *grad;                           /* (n_weights) or NULL (inference only) */
    int64_t n_weights;
} it_judge;

/* Random initialisation from seed (He-normal convs, zero biases, unit norms).
 * with_grad allocates gradient buffers (training). */
it_status it_judge_init(it_err *err, it_judge *j, const it_judge_config *cfg, uint64_t seed, int with_grad);
void it_judge_free(it_judge *j);

/* Loads a weights file written by it_judge_save. Errors name the file and
 * what is wrong (missing tensor, shape, a head schema that differs from this
 * build's: the judge must be retrained when the toy world changes). */
it_status it_judge_load(it_err *err, it_judge *j, const char *path, int with_grad);
/* dtype IT_DTYPE_F16 (shipping) or IT_DTYPE_F32 (checkpoints); meta: extra
 * metadata pairs {key, value, key, value, ..., NULL} or NULL. */
it_status it_judge_save(it_err *err, const it_judge *j, const char *path, it_dtype dtype,
                        const char *const *meta);
/* Same with extra tensors (training-only parameters kept in checkpoints,
 * e.g. the dense-supervision head; it_judge_load ignores them). */
it_status it_judge_save_with(it_err *err, const it_judge *j, const it_tensor *extra, int n_extra, const char *path,
                             it_dtype dtype, const char *const *meta);

/* x: (N, 3, size, size) in [-1, 1] -> logits (N, it_judge_total_classes()). */
it_tensor *it_judge_forward(it_ctx *ctx, const it_judge *j, it_tensor *x);
/* Same, and *tap receives the output of conv layer tap_layer (0-based, after
 * its norm and SiLU): the feature grid that training's dense part
 * supervision reads (judge_train.c). */
it_tensor *it_judge_forward_tap(it_ctx *ctx, const it_judge *j, it_tensor *x, int tap_layer, it_tensor **tap);

/* Everything a forward pass gives. */
typedef struct it_judge_out {
    it_tensor *logits;                    /* (N, total classes): the main network's */
    it_tensor *loc;                       /* (N, IT_JUDGE_LOC) locator, over the input side; NULL without crops */
    it_tensor *crop[IT_JUDGE_N_CROPS];    /* (N, crop classes) or NULL */
    int crops;                            /* the crops version that made crop[] (judge_crop.h) */
    it_tensor *tap;                       /* conv layer tap_layer's output or NULL */
} it_judge_out;

/* Full forward: anchors (N, IT_JUDGE_LOC) in input pixels places the crops
 * (training: the true boxes, jittered), except for the images where
 * use_pred (N, may be NULL) is non-zero; anchors NULL places them all at the
 * locator's boxes (inference). */
void it_judge_forward_ex(it_ctx *ctx, const it_judge *j, it_tensor *x, const float *anchors,
                         const uint8_t *use_pred, int tap_layer, it_judge_out *out);
/* Loss of a full forward: the main heads' mean cross-entropy plus, per crop
 * network, its heads' mean cross-entropy. correct (IT_JUDGE_N_HEADS) counts
 * right answers of the combined reading (a head answered by a crop network
 * counts that network's answer), as inference gives. */
it_tensor *it_judge_loss_ex(it_ctx *ctx, const it_judge_out *o, const int32_t *labels, int n, int *correct);

/* Mean cross-entropy over the heads: logits (N, total), labels (N, heads) I32.
 * Returns a scalar; correct (IT_JUDGE_N_HEADS), if not NULL, receives the
 * number of right answers per head. */
it_tensor *it_judge_loss(it_ctx *ctx, it_tensor *logits, const int32_t *labels, int n, int *correct);

/* ------------------------------------------------------------- input */

/* Writes one input (3, size, size) in [-1, 1] from an RGB image (h, w, 3):
 * antialiased resize to round(size * scale), placed with its centre moved by
 * (dx, dy) input pixels; the border repeats the edge (scale 1, shift 0 is
 * plain inference). scratch: at least 4 * size * size * 3 bytes. */
it_status it_judge_input(it_err *err, float *dst, int size, const uint8_t *rgb, int w, int h, float scale,
                         float dx, float dy);

/* ------------------------------------------------------------- inference */

typedef struct it_judge_pred {
    int cls[IT_JUDGE_N_HEADS];   /* predicted class per head */
    float prob[IT_JUDGE_N_HEADS]; /* its softmax probability */
    int located;                  /* 1 when the judge has crops: box holds where it looked */
    float box[2][4];              /* located face and body boxes: x0, y0, x1, y1 over the input side (0..1) */
} it_judge_pred;

/* Classifies n RGB images of any size (converted to 3 channels first) in
 * batches, without gradients. ctx is a scratch context (reset inside). */
it_status it_judge_classify(it_err *err, const it_judge *j, it_ctx *ctx, const it_image *imgs, int n,
                            it_judge_pred *out);
/* Same from preprocessed inputs (n, 3, size, size). */
it_status it_judge_classify_inputs(it_err *err, const it_judge *j, it_ctx *ctx, const float *x, int n,
                                   it_judge_pred *out);

/* {"identity": {"value": "vincent", "confidence": 0.99}, "body_shape": ...}
 * new reference, NULL on out-of-memory. */
json_t *it_judge_pred_to_json(const it_judge_pred *p);

/* Renders n fresh images of stream seed (purpose eval, 128x128, no
 * augmentation) and counts correct answers per head: acc (IT_JUDGE_N_HEADS)
 * receives accuracies in [0, 1]. p_character: chance of a named character. */
it_status it_judge_evaluate(it_err *err, const it_judge *j, it_ctx *ctx, uint64_t seed, int n,
                            float p_character, double *acc);
/* Same; loc_px (2), if not NULL, receives the locator's mean distance in
 * pixels of a 128 render between the located and the true centres of the
 * face and of the body box (0 without crops). */
it_status it_judge_evaluate_ex(it_err *err, const it_judge *j, it_ctx *ctx, uint64_t seed, int n,
                               float p_character, double *acc, double *loc_px);

#endif
