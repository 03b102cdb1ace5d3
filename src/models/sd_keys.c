/* sd_keys.c: LDM single-file <-> diffusers key mapping, variant detection
 * and config inference.
 *
 * Source of every rule: diffusers 0.42 src/diffusers/loaders/
 * single_file_utils.py (DIFFUSERS_TO_LDM_MAPPING, convert_ldm_unet_checkpoint,
 * update_unet_resnet_ldm_to_diffusers, convert_ldm_vae_checkpoint,
 * update_vae_resnet_ldm_to_diffusers, update_vae_attentions_ldm_to_diffusers,
 * conv_attn_to_linear, convert_ldm_clip_checkpoint, convert_open_clip_checkpoint,
 * SD_2_TEXT_ENCODER_KEYS_TO_IGNORE). Those functions go LDM -> diffusers; we
 * go the other way (from each of our parameter names to the stored key), so
 * loading stays one lookup per parameter. tools/gen_sd_fixtures.py holds
 * the same inverse in Python and checks it against diffusers' converters. */
#include "models/sd_keys.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- tables */

typedef struct key_rule {
    const char *ours, *ldm;
} key_rule;

/* DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"] (prefix match on module). */
static const key_rule UNET_TOP[] = {
    {"time_embedding.linear_1.", "time_embed.0."},
    {"time_embedding.linear_2.", "time_embed.2."},
    {"conv_in.", "input_blocks.0.0."},
    {"conv_norm_out.", "out.0."},
    {"conv_out.", "out.2."},
};

/* update_unet_resnet_ldm_to_diffusers. */
static const key_rule UNET_RESNET[] = {
    {"norm1.", "in_layers.0."},       {"conv1.", "in_layers.2."},
    {"norm2.", "out_layers.0."},      {"conv2.", "out_layers.3."},
    {"time_emb_proj.", "emb_layers.1."}, {"conv_shortcut.", "skip_connection."},
};

/* update_vae_attentions_ldm_to_diffusers (LDM attention weights are 1x1
 * convs; conv_attn_to_linear squeezes them). */
static const key_rule VAE_ATTN[] = {
    {"group_norm.", "norm."}, {"to_q.", "q."}, {"to_k.", "k."}, {"to_v.", "v."}, {"to_out.0.", "proj_out."},
};

/* DIFFUSERS_TO_LDM_MAPPING["openclip"]["transformer"]. */
static const key_rule OPENCLIP_LAYER[] = {
    {"layer_norm1.", "ln_1."}, {"layer_norm2.", "ln_2."}, {"mlp.fc1.", "mlp.c_fc."},
    {"mlp.fc2.", "mlp.c_proj."}, {"self_attn.out_proj.", "attn.out_proj."},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* Replaces the table prefix that rest starts with; 0 if none matches. */
static int apply(const key_rule *t, size_t n, const char *rest, char *out, size_t cap)
{
    for (size_t i = 0; i < n; i++)
        if (starts(rest, t[i].ours)) {
            snprintf(out, cap, "%s%s", t[i].ldm, rest + strlen(t[i].ours));
            return 1;
        }
    return 0;
}

/* ---------------------------------------------------------------- UNet */

int it_ldm_map_unet(void *user, const char *name, it_key_src *src)
{
    const it_ldm_map *mp = user;
    int lpb = mp->unet->layers_per_block, i, j, k = 0;
    char tail[200];
    memset(src, 0, sizeof *src);
    const char *P = IT_LDM_UNET_PREFIX;
    if (apply(UNET_TOP, COUNT(UNET_TOP), name, tail, sizeof tail)) {
        snprintf(src->key, sizeof src->key, "%s%s", P, tail);
        return 1;
    }
    char res[200];
    if (sscanf(name, "down_blocks.%d.resnets.%d.%n", &i, &j, &k) == 2 && k &&
        apply(UNET_RESNET, COUNT(UNET_RESNET), name + k, res, sizeof res)) {
        snprintf(src->key, sizeof src->key, "%sinput_blocks.%d.0.%s", P, 1 + i * (lpb + 1) + j, res);
        return 1;
    }
    k = 0;
    if (sscanf(name, "down_blocks.%d.attentions.%d.%n", &i, &j, &k) == 2 && k) {
        snprintf(src->key, sizeof src->key, "%sinput_blocks.%d.1.%s", P, 1 + i * (lpb + 1) + j, name + k);
        return 1;
    }
    k = 0;
    if (sscanf(name, "down_blocks.%d.downsamplers.0.conv.%n", &i, &k) == 1 && k) {
        snprintf(src->key, sizeof src->key, "%sinput_blocks.%d.0.op.%s", P, (i + 1) * (lpb + 1), name + k);
        return 1;
    }
    k = 0;
    if (sscanf(name, "mid_block.resnets.%d.%n", &j, &k) == 1 && k &&
        apply(UNET_RESNET, COUNT(UNET_RESNET), name + k, res, sizeof res)) {
        snprintf(src->key, sizeof src->key, "%smiddle_block.%d.%s", P, 2 * j, res);
        return 1;
    }
    if (starts(name, "mid_block.attentions.0.")) {
        snprintf(src->key, sizeof src->key, "%smiddle_block.1.%s", P, name + strlen("mid_block.attentions.0."));
        return 1;
    }
    k = 0;
    if (sscanf(name, "up_blocks.%d.resnets.%d.%n", &i, &j, &k) == 2 && k &&
        apply(UNET_RESNET, COUNT(UNET_RESNET), name + k, res, sizeof res)) {
        snprintf(src->key, sizeof src->key, "%soutput_blocks.%d.0.%s", P, i * (lpb + 1) + j, res);
        return 1;
    }
    k = 0;
    if (sscanf(name, "up_blocks.%d.attentions.%d.%n", &i, &j, &k) == 2 && k) {
        snprintf(src->key, sizeof src->key, "%soutput_blocks.%d.1.%s", P, i * (lpb + 1) + j, name + k);
        return 1;
    }
    k = 0;
    if (sscanf(name, "up_blocks.%d.upsamplers.0.conv.%n", &i, &k) == 1 && k && i < IT_SD_MAX_LEVELS) {
        /* After the attention of the block's last layer when there is one. */
        snprintf(src->key, sizeof src->key, "%soutput_blocks.%d.%d.conv.%s", P, i * (lpb + 1) + lpb,
                 mp->unet->up_attn[i] ? 2 : 1, name + k);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- VAE */

static void vae_resnet_rest(const char *rest, char *out, size_t cap)
{
    /* update_vae_resnet_ldm_to_diffusers: only conv_shortcut is renamed. */
    if (starts(rest, "conv_shortcut.")) snprintf(out, cap, "nin_shortcut.%s", rest + strlen("conv_shortcut."));
    else snprintf(out, cap, "%s", rest);
}

int it_ldm_map_vae(void *user, const char *name, it_key_src *src)
{
    const it_ldm_map *mp = user;
    int n = mp->vae->n_levels, i, j, k = 0;
    char side[16], rest[200];
    memset(src, 0, sizeof *src);
    const char *P = IT_LDM_VAE_PREFIX;
    if (sscanf(name, "encoder.down_blocks.%d.resnets.%d.%n", &i, &j, &k) == 2 && k) {
        vae_resnet_rest(name + k, rest, sizeof rest);
        snprintf(src->key, sizeof src->key, "%sencoder.down.%d.block.%d.%s", P, i, j, rest);
        return 1;
    }
    k = 0;
    if (sscanf(name, "encoder.down_blocks.%d.downsamplers.0.conv.%n", &i, &k) == 1 && k) {
        snprintf(src->key, sizeof src->key, "%sencoder.down.%d.downsample.conv.%s", P, i, name + k);
        return 1;
    }
    k = 0;
    /* Decoder levels are numbered from the deepest in LDM. */
    if (sscanf(name, "decoder.up_blocks.%d.resnets.%d.%n", &i, &j, &k) == 2 && k) {
        vae_resnet_rest(name + k, rest, sizeof rest);
        snprintf(src->key, sizeof src->key, "%sdecoder.up.%d.block.%d.%s", P, n - 1 - i, j, rest);
        return 1;
    }
    k = 0;
    if (sscanf(name, "decoder.up_blocks.%d.upsamplers.0.conv.%n", &i, &k) == 1 && k) {
        snprintf(src->key, sizeof src->key, "%sdecoder.up.%d.upsample.conv.%s", P, n - 1 - i, name + k);
        return 1;
    }
    k = 0;
    if (sscanf(name, "%15[a-z].mid_block.resnets.%d.%n", side, &j, &k) == 2 && k) {
        vae_resnet_rest(name + k, rest, sizeof rest);
        snprintf(src->key, sizeof src->key, "%s%s.mid.block_%d.%s", P, side, j + 1, rest);
        return 1;
    }
    k = 0;
    if (sscanf(name, "%15[a-z].mid_block.attentions.0.%n", side, &k) == 1 && k &&
        apply(VAE_ATTN, COUNT(VAE_ATTN), name + k, rest, sizeof rest)) {
        snprintf(src->key, sizeof src->key, "%s%s.mid.attn_1.%s", P, side, rest);
        src->xform = IT_XFORM_SQUEEZE;
        return 1;
    }
    k = 0;
    if (sscanf(name, "%15[a-z].conv_norm_out.%n", side, &k) == 1 && k) {
        snprintf(src->key, sizeof src->key, "%s%s.norm_out.%s", P, side, name + k);
        return 1;
    }
    /* conv_in, conv_out, quant_conv, post_quant_conv keep their names. */
    snprintf(src->key, sizeof src->key, "%s%s", P, name);
    return 1;
}

/* ---------------------------------------------------------------- text */

int it_ldm_map_text(void *user, const char *name, it_key_src *src)
{
    const it_ldm_map *mp = user;
    memset(src, 0, sizeof *src);
    const char *pre = mp->text_prefix ? mp->text_prefix : "text_model.";
    const char *rest = starts(name, pre) ? name + strlen(pre) : NULL;
    if (mp->det.text == IT_SD_TEXT_CLIP_L) {
        /* convert_ldm_clip_checkpoint strips "cond_stage_model.transformer.";
         * some early files lack the "text_model." level below it. */
        if (!rest) snprintf(src->key, sizeof src->key, "%s%s", IT_LDM_CLIP_PREFIX, name);
        else snprintf(src->key, sizeof src->key, "%s%s%s", IT_LDM_CLIP_PREFIX,
                      mp->det.clip_has_text_model ? "text_model." : "", rest);
        return 1;
    }
    if (mp->det.text != IT_SD_TEXT_OPENCLIP) return 0;
    const char *P = IT_LDM_OPENCLIP_PREFIX;
    if (!rest) {
        if (strcmp(name, "text_projection.weight")) return 0;
        snprintf(src->key, sizeof src->key, "%stext_projection", P); /* stored (in, out) */
        src->xform = IT_XFORM_TRANSPOSE;
        return 1;
    }
    if (!strcmp(rest, "embeddings.token_embedding.weight")) {
        snprintf(src->key, sizeof src->key, "%stoken_embedding.weight", P);
        return 1;
    }
    if (!strcmp(rest, "embeddings.position_embedding.weight")) {
        snprintf(src->key, sizeof src->key, "%spositional_embedding", P);
        return 1;
    }
    if (starts(rest, "final_layer_norm.")) {
        snprintf(src->key, sizeof src->key, "%sln_final.%s", P, rest + strlen("final_layer_norm."));
        return 1;
    }
    int l, k = 0;
    char q, wb[16], tail[128];
    if (sscanf(rest, "encoder.layers.%d.%n", &l, &k) != 1 || !k) return 0;
    const char *lr = rest + k;
    if (sscanf(lr, "self_attn.%c_proj.%15s", &q, wb) == 2 && (q == 'q' || q == 'k' || q == 'v')) {
        /* q, k, v are row blocks of the fused in_proj. */
        snprintf(src->key, sizeof src->key, "%stransformer.resblocks.%d.attn.in_proj_%s", P, l, wb);
        src->xform = IT_XFORM_ROWS;
        src->part = q == 'q' ? 0 : q == 'k' ? 1 : 2;
        src->parts = 3;
        return 1;
    }
    if (!apply(OPENCLIP_LAYER, COUNT(OPENCLIP_LAYER), lr, tail, sizeof tail)) return 0;
    snprintf(src->key, sizeof src->key, "%stransformer.resblocks.%d.%s", P, l, tail);
    return 1;
}

/* ---------------------------------------------------------------- detection */

static const it_safetensors_tensor *findf(const it_safetensors *f, const char *fmt, int a, int b)
{
    char k[256];
    snprintf(k, sizeof k, fmt, a, b);
    return it_safetensors_find(f, k);
}

it_status it_sd_detect_file(it_err *err, const it_safetensors *f, it_sd_detect *d)
{
    memset(d, 0, sizeof *d);
    const it_safetensors_tensor *t = it_safetensors_find(f, IT_LDM_UNET_PREFIX "input_blocks.0.0.weight");
    if (t && t->n_dims == 4) {
        d->has_unet = 1;
        d->unet_in_channels = (int)t->shape[1];
    }
    d->has_vae = it_safetensors_find(f, IT_LDM_VAE_PREFIX "decoder.conv_in.weight") != NULL;
    if (it_safetensors_find(f, IT_LDM_OPENCLIP_PREFIX "transformer.resblocks.0.attn.in_proj_weight")) {
        d->text = IT_SD_TEXT_OPENCLIP;
        d->v2 = 1;
        while (findf(f, IT_LDM_OPENCLIP_PREFIX "transformer.resblocks.%d.ln_1.weight", d->n_text_layers_file, 0))
            d->n_text_layers_file++;
    } else if (it_safetensors_find(f, IT_LDM_CLIP_PREFIX "text_model.embeddings.token_embedding.weight")) {
        d->text = IT_SD_TEXT_CLIP_L;
        d->clip_has_text_model = 1;
    } else if (it_safetensors_find(f, IT_LDM_CLIP_PREFIX "embeddings.token_embedding.weight")) {
        d->text = IT_SD_TEXT_CLIP_L;
    }
    if (d->text == IT_SD_TEXT_CLIP_L) {
        const char *fmt = d->clip_has_text_model
                              ? IT_LDM_CLIP_PREFIX "text_model.encoder.layers.%d.layer_norm1.weight"
                              : IT_LDM_CLIP_PREFIX "encoder.layers.%d.layer_norm1.weight";
        while (findf(f, fmt, d->n_text_layers_file, 0)) d->n_text_layers_file++;
    }
    /* SD 2 UNets use linear projections (2-D proj_in); SD 1 uses 1x1 convs. */
    const it_safetensors_tensor *pi = it_safetensors_find(f, IT_LDM_UNET_PREFIX "input_blocks.1.1.proj_in.weight");
    if (pi && pi->n_dims == 2) d->v2 = 1;
    if (!d->has_unet && !d->has_vae && !d->text)
        return it_err_set(err, IT_ERR_UNSUPPORTED,
                          "%s: not a Stable Diffusion checkpoint (no model.diffusion_model., "
                          "first_stage_model. or cond_stage_model. tensors)",
                          it_safetensors_label(f));
    return IT_OK;
}

/* ---------------------------------------------------------------- inference */

static int64_t dim0(const it_safetensors_tensor *t) { return t ? t->shape[0] : 0; }

it_status it_sd_infer_unet_config(it_err *err, const it_safetensors *f, const it_sd_detect *d,
                                  it_unet_config *c)
{
    const char *P = IT_LDM_UNET_PREFIX;
    char k[256];
    it_unet_config_sd15(c);
    const it_safetensors_tensor *cin = findf(f, IT_LDM_UNET_PREFIX "input_blocks.0.0.weight", 0, 0);
    const it_safetensors_tensor *cout = findf(f, IT_LDM_UNET_PREFIX "out.2.weight", 0, 0);
    if (!cin || !cout || cin->n_dims != 4)
        return it_err_set(err, IT_ERR_FORMAT, "%s: unet: missing key %sinput_blocks.0.0.weight or out.2.weight",
                          it_safetensors_label(f), P);
    c->in_channels = (int)cin->shape[1];
    c->out_channels = (int)cout->shape[0];
    int n_in = 0;
    for (; n_in < 64;) {
        snprintf(k, sizeof k, "%sinput_blocks.%d.0.in_layers.2.weight", P, n_in + 1);
        const it_safetensors_tensor *r = it_safetensors_find(f, k);
        snprintf(k, sizeof k, "%sinput_blocks.%d.0.op.weight", P, n_in + 1);
        const it_safetensors_tensor *op = it_safetensors_find(f, k);
        if (!r && !op) break;
        n_in++;
    }
    int lpb = 0;
    for (int b = 1; b <= n_in; b++) {
        snprintf(k, sizeof k, "%sinput_blocks.%d.0.op.weight", P, b);
        if (it_safetensors_find(f, k)) break;
        lpb++;
    }
    if (lpb < 1 || (n_in + 1) % (lpb + 1))
        return it_err_set(err, IT_ERR_FORMAT, "%s: unet: cannot infer layers per block from %d input blocks",
                          it_safetensors_label(f), n_in);
    c->layers_per_block = lpb;
    c->n_levels = (n_in + 1) / (lpb + 1);
    if (c->n_levels > IT_SD_MAX_LEVELS)
        return it_err_set(err, IT_ERR_UNSUPPORTED, "unet: %d levels", c->n_levels);
    int cross = 0;
    for (int i = 0; i < c->n_levels; i++) {
        int b = 1 + i * (lpb + 1);
        snprintf(k, sizeof k, "%sinput_blocks.%d.0.in_layers.2.weight", P, b);
        c->block_out[i] = (int)dim0(it_safetensors_find(f, k));
        snprintf(k, sizeof k, "%sinput_blocks.%d.1.proj_in.weight", P, b);
        c->down_attn[i] = it_safetensors_find(f, k) != NULL;
        snprintf(k, sizeof k, "%soutput_blocks.%d.1.proj_in.weight", P, i * (lpb + 1));
        c->up_attn[i] = it_safetensors_find(f, k) != NULL;
        snprintf(k, sizeof k, "%sinput_blocks.%d.1.transformer_blocks.0.attn2.to_k.weight", P, b);
        const it_safetensors_tensor *tk = it_safetensors_find(f, k);
        if (tk && tk->n_dims == 2) cross = (int)tk->shape[1];
    }
    snprintf(k, sizeof k, "%smiddle_block.1.proj_in.weight", P);
    c->mid_attn = it_safetensors_find(f, k) ? 1 : -1;
    if (cross) c->cross_dim = cross;
    c->use_linear_projection = d->v2;
    c->upcast_attention = d->v2;
    c->sample_size = d->v2 ? 96 : 64;
    for (int i = 0; i < c->n_levels; i++) {
        if (c->block_out[i] <= 0) return it_err_set(err, IT_ERR_FORMAT, "unet: level %d has no resnet", i);
        /* SD 1: attention_head_dim 8 (= heads); SD 2: [5, 10, 20, 20] heads = 64-wide heads. */
        c->heads[i] = d->v2 ? (c->block_out[i] >= 64 ? c->block_out[i] / 64 : 1) : 8;
        if (c->block_out[i] % c->heads[i] || c->block_out[i] % c->norm_groups)
            return it_err_set(err, IT_ERR_UNSUPPORTED,
                              "%s: unet: level %d has %d channels, not divisible into %d heads and %d groups "
                              "(pass the model's config folder)",
                              it_safetensors_label(f), i, c->block_out[i], c->heads[i], c->norm_groups);
    }
    return IT_OK;
}

it_status it_sd_infer_vae_config(it_err *err, const it_safetensors *f, it_vae_config *c)
{
    const char *P = IT_LDM_VAE_PREFIX;
    char k[256];
    it_vae_config_sd(c);
    int n = 0;
    for (;; n++) {
        snprintf(k, sizeof k, "%sencoder.down.%d.block.0.conv1.weight", P, n);
        const it_safetensors_tensor *t = it_safetensors_find(f, k);
        if (!t || n >= IT_SD_MAX_LEVELS) break;
        c->block_out[n] = (int)t->shape[0];
    }
    int lpb = 0;
    for (;; lpb++) {
        snprintf(k, sizeof k, "%sencoder.down.0.block.%d.conv1.weight", P, lpb);
        if (!it_safetensors_find(f, k)) break;
    }
    snprintf(k, sizeof k, "%sencoder.conv_in.weight", P);
    const it_safetensors_tensor *cin = it_safetensors_find(f, k);
    snprintf(k, sizeof k, "%sdecoder.conv_in.weight", P);
    const it_safetensors_tensor *din = it_safetensors_find(f, k);
    snprintf(k, sizeof k, "%sdecoder.conv_out.weight", P);
    const it_safetensors_tensor *dout = it_safetensors_find(f, k);
    if (!n || !lpb || !cin || !din || !dout || cin->n_dims != 4 || din->n_dims != 4)
        return it_err_set(err, IT_ERR_FORMAT, "%s: vae: missing encoder/decoder tensors under %s",
                          it_safetensors_label(f), P);
    c->n_levels = n;
    c->layers_per_block = lpb;
    c->in_channels = (int)cin->shape[1];
    c->out_channels = (int)dout->shape[0];
    c->latent_channels = (int)din->shape[1];
    snprintf(k, sizeof k, "%squant_conv.weight", P);
    c->use_quant_conv = it_safetensors_find(f, k) != NULL;
    snprintf(k, sizeof k, "%spost_quant_conv.weight", P);
    c->use_post_quant_conv = it_safetensors_find(f, k) != NULL;
    snprintf(k, sizeof k, "%sencoder.mid.attn_1.q.weight", P);
    c->mid_attn = it_safetensors_find(f, k) != NULL;
    for (int i = 0; i < n; i++)
        if (c->block_out[i] % c->norm_groups)
            return it_err_set(err, IT_ERR_UNSUPPORTED,
                              "%s: vae: %d channels not divisible into %d groups (pass the model's config folder)",
                              it_safetensors_label(f), c->block_out[i], c->norm_groups);
    return IT_OK;
}

it_status it_sd_infer_text_config(it_err *err, const it_safetensors *f, const it_sd_detect *d,
                                  it_clip_text_config *c)
{
    it_clip_text_config_sd15(c);
    char k[256];
    const it_safetensors_tensor *tok, *fc1;
    if (d->text == IT_SD_TEXT_OPENCLIP) {
        tok = it_safetensors_find(f, IT_LDM_OPENCLIP_PREFIX "token_embedding.weight");
        fc1 = it_safetensors_find(f, IT_LDM_OPENCLIP_PREFIX "transformer.resblocks.0.mlp.c_fc.weight");
        c->act = IT_CLIP_GELU;
        c->n_layers = d->n_text_layers_file - 1;
        const it_safetensors_tensor *pos = it_safetensors_find(f, IT_LDM_OPENCLIP_PREFIX "positional_embedding");
        if (pos) c->max_positions = (int)pos->shape[0];
    } else if (d->text == IT_SD_TEXT_CLIP_L) {
        const char *p = d->clip_has_text_model ? IT_LDM_CLIP_PREFIX "text_model." : IT_LDM_CLIP_PREFIX;
        snprintf(k, sizeof k, "%sembeddings.token_embedding.weight", p);
        tok = it_safetensors_find(f, k);
        snprintf(k, sizeof k, "%sencoder.layers.0.mlp.fc1.weight", p);
        fc1 = it_safetensors_find(f, k);
        snprintf(k, sizeof k, "%sembeddings.position_embedding.weight", p);
        const it_safetensors_tensor *pos = it_safetensors_find(f, k);
        if (pos) c->max_positions = (int)pos->shape[0];
        c->n_layers = d->n_text_layers_file;
    } else {
        return it_err_set(err, IT_ERR_NOT_FOUND, "%s: no text encoder", it_safetensors_label(f));
    }
    if (!tok || !fc1 || tok->n_dims != 2 || c->n_layers < 1)
        return it_err_set(err, IT_ERR_FORMAT, "%s: text encoder: missing embedding or layer tensors",
                          it_safetensors_label(f));
    c->vocab_size = (int)tok->shape[0];
    c->hidden = (int)tok->shape[1];
    c->intermediate = (int)fc1->shape[0];
    c->n_heads = c->hidden / 64 > 0 ? c->hidden / 64 : 1;
    c->projection_dim = c->hidden;
    if (c->hidden % c->n_heads)
        return it_err_set(err, IT_ERR_UNSUPPORTED, "%s: text encoder: hidden size %d (pass the config folder)",
                          it_safetensors_label(f), c->hidden);
    return IT_OK;
}
