/* preference.h: a preference (aesthetic) head: an MLP over the normalised
 * CLIP image embedding giving one score per image, in the LAION aesthetic
 * predictor style (Linear layers under the keys "layers.0", "layers.2", ...,
 * with or without activations between them).
 *
 * Owns: the head's architecture read from a JSON config
 *   {"input_dim": 768, "normalize": true,
 *    "layers": [{"key": "layers.0", "out": 1024, "activation": "none"}, ...]}
 * (activation: "none", "relu", "gelu"; the last layer must output 1), its
 * weights from safetensors (KEY.weight (out, in), KEY.bias (out)), and the
 * forward. Does not own the CLIP model that makes the embeddings (clip.h). */
#ifndef IT_PREFERENCE_H
#define IT_PREFERENCE_H

#include "models/nn.h"

#define IT_PREF_MAX_LAYERS 16

typedef struct it_pref {
    it_params params;
    int input_dim;
    int normalize;                        /* L2-normalise the embedding first */
    int n_layers;
    it_lin *lin[IT_PREF_MAX_LAYERS];      /* (out_i, in_i) */
    int act[IT_PREF_MAX_LAYERS];          /* 0 none, 1 relu, 2 gelu (after layer i) */
} it_pref;

it_status it_pref_parse(it_err *err, it_pref *p, const char *json, const char *label);
/* The same with it_params_alloc flags (IT_MODEL_TRAINABLE for training). */
it_status it_pref_parse_ex(it_err *err, it_pref *p, const char *json, const char *label, int flags);
/* Config JSON and weights; errors name the file and key. */
it_status it_pref_load(it_err *err, it_pref *p, const char *config_path, const char *weights_path);
void it_pref_free(it_pref *p);

/* The head as a graph: emb (n, input_dim) unnormalised -> (n, 1) scores;
 * differentiable with "none" and "gelu" activations (relu is applied in
 * place, without a gradient). */
it_tensor *it_pref_forward(it_ctx *ctx, const it_pref *p, const float *emb, int n);
/* emb (n, input_dim), unnormalised CLIP image embeddings -> scores (n). */
it_status it_pref_score(it_err *err, it_ctx *ctx, const it_pref *p, const float *emb, int n, float *scores);

#endif
