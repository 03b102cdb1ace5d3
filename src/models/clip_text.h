/* clip_text.h: the CLIP text transformer (transformers' CLIPTextModel and
 * CLIPTextModelWithProjection; OpenCLIP's text tower loads into it through
 * sd_keys.h), generic over the key prefix so SD's text encoders, CLIP and
 * OWL-ViT's text tower all use it.
 *
 * Owns: building the weights under "<prefix>embeddings.token_embedding.weight",
 * "<prefix>encoder.layers.N.self_attn.q_proj.weight", ...,
 * "<prefix>final_layer_norm.weight" and the projection key, and the forward:
 * token + position embeddings, n_layers pre-LN blocks (causal self-attention,
 * quick-GELU or GELU MLP), final layer norm; clip skip; pooled output (the
 * end-of-text row) and projection. Does not own tokenisation
 * (text/clip_tokenizer.h) or loading files (sd_pipeline_load.h).
 *
 * Works in both grad modes: in no-grad mode each layer's intermediates are
 * released (memory bounded by one layer); with recording on the tape keeps
 * them for backward (text-encoder LoRA), or only each layer's output when
 * `checkpoint` is set (backward recomputes the layer). */
#ifndef IT_CLIP_TEXT_H
#define IT_CLIP_TEXT_H

#include "models/config.h"
#include "models/nn.h"

typedef struct it_clip_layer {
    it_norm ln1, ln2;             /* layer_norm1, layer_norm2 (hidden) */
    it_lin *q, *k, *v, *o;        /* self_attn.{q,k,v,out}_proj (hidden, hidden) */
    it_lin *fc1, *fc2;            /* mlp.fc1 (inter, hidden), mlp.fc2 (hidden, inter) */
} it_clip_layer;

typedef struct it_clip_text {
    it_clip_text_config cfg;
    it_params params;
    char prefix[64];              /* "text_model.", "owlvit.text_model.", "" */
    it_tensor *tok_emb;           /* (vocab, hidden) */
    it_tensor *pos_emb;           /* (max_positions, hidden) */
    it_clip_layer *layers;        /* (n_layers) */
    it_norm final_ln;             /* (hidden) */
    it_lin *proj;                 /* text_projection (projection_dim, hidden), no bias; or NULL */
    int checkpoint;               /* training: gradient checkpointing per layer (set by the caller) */
} it_clip_text;

/* Registers the weights (and allocates them zeroed). prefix: key prefix of
 * the transformer ("text_model." for CLIPTextModel); proj_key: module name of
 * the projection ("text_projection") when cfg->has_projection, else ignored. */
it_status it_clip_text_init(it_err *err, it_clip_text *m, const it_clip_text_config *cfg,
                            const char *prefix, const char *proj_key, int flags);
void it_clip_text_free(it_clip_text *m);

typedef struct it_clip_text_out {
    it_tensor *hidden;            /* (B, T, hidden): last (or skipped-to) layer, final LN applied */
    it_tensor *pooled;            /* (B, hidden): hidden at each sequence's end token; NULL if not asked */
    it_tensor *projected;         /* (B, projection_dim): pooled through text_projection, or NULL */
} it_clip_text_out;

/* ids: I32 (B, T), T <= max_positions. clip_skip: layers left out at the
 * end (0 = all; 1 = penultimate, as SD 2 pipelines and diffusers' clip_skip=1);
 * the final layer norm is applied to whichever layer is output, as diffusers
 * does. want_pooled: also gather the end-token rows (and project them when the
 * model has a projection). Returns IT_OK or the context's sticky error. */
it_status it_clip_text_forward(it_err *err, it_ctx *ctx, it_clip_text *m, it_tensor *ids,
                               int clip_skip, int want_pooled, it_clip_text_out *out);

#endif
