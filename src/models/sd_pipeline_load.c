/* sd_pipeline_load.c: diffusers folders and LDM single files into one
 * it_sd_model. */
#include "models/sd_pipeline_load.h"

#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "models/sd_keys.h"

void it_sd_load_opts_init(it_sd_load_opts *o)
{
    memset(o, 0, sizeof *o);
    o->prediction = -1;
}

/* ---------------------------------------------------------------- folders */

/* DIR/SUB/NAME.safetensors, else DIR/SUB/NAME.fp16.safetensors. */
static int find_weights(char *out, size_t n, const char *dir, const char *sub, const char *base)
{
    static const char *suffix[] = {".safetensors", ".fp16.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(out, n, "%s/%s/%s%s", dir, sub, base, suffix[i]);
        if (it_file_exists(out)) return 1;
    }
    return 0;
}

static it_status component_file(it_err *err, char *out, size_t n, const char *dir, const char *sub)
{
    if (find_weights(out, n, dir, sub, "diffusion_pytorch_model") || find_weights(out, n, dir, sub, "model"))
        return IT_OK;
    return it_err_set(err, IT_ERR_NOT_FOUND,
                      "%s/%s: no diffusion_pytorch_model[.fp16].safetensors or model[.fp16].safetensors",
                      dir, sub);
}

/* Our "text_model.X" -> the file's "X". */
static int strip_prefix_map(void *user, const char *name, it_key_src *src)
{
    const char *prefix = user;
    size_t n = strlen(prefix);
    memset(src, 0, sizeof *src);
    snprintf(src->key, sizeof src->key, "%s", strncmp(name, prefix, n) ? name : name + n);
    return 1;
}

it_status it_sd_load_params_file(it_err *err, it_params *ps, const char *file, const char *prefix)
{
    it_safetensors *f;
    IT_TRY(it_safetensors_open(err, &f, file));
    /* transformers >= 5 saves CLIPTextModel without the "text_model." level
     * that hub checkpoints have: strip it from our names when the file lacks it. */
    char probe[256];
    snprintf(probe, sizeof probe, "%sembeddings.token_embedding.weight", prefix ? prefix : "");
    int strip = prefix && *prefix && !it_safetensors_find(f, probe) &&
                it_safetensors_find(f, "embeddings.token_embedding.weight");
    it_status s = it_params_load(err, ps, f, NULL, strip ? strip_prefix_map : NULL, (void *)prefix, 1, NULL);
    if (s) it_err_prefix(err, "%s", file);
    it_safetensors_close(f);
    return s;
}

static it_status load_folder(it_err *err, it_sd_model *m, const char *dir, const it_sd_load_opts *o,
                             unsigned want)
{
    char cfg[1200], w[1200];
    snprintf(cfg, sizeof cfg, "%s/scheduler/scheduler_config.json", dir);
    if (it_file_exists(cfg)) IT_TRY(it_sched_config_load(err, &m->sched, cfg));
    if (want & IT_SD_TEXT) {
        it_clip_text_config c;
        snprintf(cfg, sizeof cfg, "%s/text_encoder/config.json", dir);
        IT_TRY(it_clip_text_config_load(err, &c, cfg));
        IT_TRY(component_file(err, w, sizeof w, dir, "text_encoder"));
        IT_TRY(it_clip_text_init(err, &m->text, &c, "text_model.", "text_projection", o->flags_text));
        m->loaded |= IT_SD_TEXT;
        IT_TRY(it_sd_load_params_file(err, &m->text.params, w, "text_model."));
        m->v2 = c.act == IT_CLIP_GELU;
    }
    if (want & IT_SD_UNET) {
        it_unet_config c;
        snprintf(cfg, sizeof cfg, "%s/unet/config.json", dir);
        IT_TRY(it_unet_config_load(err, &c, cfg));
        IT_TRY(component_file(err, w, sizeof w, dir, "unet"));
        IT_TRY(it_unet_init(err, &m->unet, &c, o->flags_unet));
        m->loaded |= IT_SD_UNET;
        IT_TRY(it_sd_load_params_file(err, &m->unet.params, w, NULL));
        m->inpainting = c.in_channels == 9;
        if (c.use_linear_projection) m->v2 = 1;
    }
    if (want & IT_SD_VAE) {
        it_vae_config c;
        snprintf(cfg, sizeof cfg, "%s/vae/config.json", dir);
        IT_TRY(it_vae_config_load(err, &c, cfg));
        IT_TRY(component_file(err, w, sizeof w, dir, "vae"));
        IT_TRY(it_vae_init(err, &m->vae, &c, o->flags_vae));
        m->loaded |= IT_SD_VAE;
        IT_TRY(it_sd_load_params_file(err, &m->vae.params, w, NULL));
    }
    return IT_OK;
}

/* ---------------------------------------------------------------- single file */

static it_status load_single(it_err *err, it_sd_model *m, const it_safetensors *f, const it_sd_load_opts *o,
                             unsigned want)
{
    it_sd_detect d;
    IT_TRY(it_sd_detect_file(err, f, &d));
    char cfg[1200];
    const char *cd = o->config_dir;
    m->v2 = d.v2;
    m->inpainting = d.unet_in_channels == 9;
    /* diffusers' single-file default for SD 2 is the 768-v model. */
    if (d.v2) m->sched.prediction = IT_PRED_V;
    if (cd) {
        snprintf(cfg, sizeof cfg, "%s/scheduler/scheduler_config.json", cd);
        if (it_file_exists(cfg)) IT_TRY(it_sched_config_load(err, &m->sched, cfg));
    }
    it_ldm_map map;
    memset(&map, 0, sizeof map);
    map.det = d;
    map.text_prefix = "text_model.";
    it_load_report rep;
    if ((want & IT_SD_TEXT) && d.text) {
        it_clip_text_config c;
        snprintf(cfg, sizeof cfg, "%s/text_encoder/config.json", cd ? cd : "");
        IT_TRY(cd ? it_clip_text_config_load(err, &c, cfg) : it_sd_infer_text_config(err, f, &d, &c));
        c.has_projection = 0; /* SD pipelines use the hidden states (diffusers ignores text_projection) */
        IT_TRY(it_clip_text_init(err, &m->text, &c, "text_model.", NULL, o->flags_text));
        m->loaded |= IT_SD_TEXT;
        IT_TRY(it_params_load(err, &m->text.params, f,
                              d.text == IT_SD_TEXT_OPENCLIP ? IT_LDM_OPENCLIP_PREFIX : IT_LDM_CLIP_PREFIX,
                              it_ldm_map_text, &map, 0, &rep));
    }
    if ((want & IT_SD_UNET) && d.has_unet) {
        it_unet_config c;
        snprintf(cfg, sizeof cfg, "%s/unet/config.json", cd ? cd : "");
        IT_TRY(cd ? it_unet_config_load(err, &c, cfg) : it_sd_infer_unet_config(err, f, &d, &c));
        IT_TRY(it_unet_init(err, &m->unet, &c, o->flags_unet));
        m->loaded |= IT_SD_UNET;
        map.unet = &m->unet.cfg;
        IT_TRY(it_params_load(err, &m->unet.params, f, IT_LDM_UNET_PREFIX, it_ldm_map_unet, &map, 0, &rep));
    }
    if ((want & IT_SD_VAE) && d.has_vae) {
        it_vae_config c;
        snprintf(cfg, sizeof cfg, "%s/vae/config.json", cd ? cd : "");
        IT_TRY(cd ? it_vae_config_load(err, &c, cfg) : it_sd_infer_vae_config(err, f, &c));
        IT_TRY(it_vae_init(err, &m->vae, &c, o->flags_vae));
        m->loaded |= IT_SD_VAE;
        map.vae = &m->vae.cfg;
        IT_TRY(it_params_load(err, &m->vae.params, f, IT_LDM_VAE_PREFIX, it_ldm_map_vae, &map, 0, &rep));
    }
    return IT_OK;
}

/* ---------------------------------------------------------------- entry */

it_status it_sd_load(it_err *err, it_sd_model *m, const char *path, const it_sd_load_opts *opts)
{
    it_sd_load_opts def;
    if (!opts) {
        it_sd_load_opts_init(&def);
        opts = &def;
    }
    memset(m, 0, sizeof *m);
    it_sched_config_default(&m->sched);
    snprintf(m->path, sizeof m->path, "%s", path);
    unsigned want = opts->components ? opts->components : IT_SD_ALL;
    it_status s;
    const char *tok_dir = opts->tokenizer_dir;
    char tk[1200];
    if (it_is_dir(path)) {
        char idx[1200];
        snprintf(idx, sizeof idx, "%s/model_index.json", path);
        if (!it_file_exists(idx))
            return it_err_set(err, IT_ERR_NOT_FOUND, "%s: not a diffusers folder (no model_index.json)", path);
        s = load_folder(err, m, path, opts, want);
        snprintf(tk, sizeof tk, "%s/tokenizer", path);
        if (!tok_dir && it_is_dir(tk)) tok_dir = tk;
    } else {
        it_safetensors *f;
        s = it_safetensors_open(err, &f, path);
        if (s) return s;
        m->single_file = 1;
        s = load_single(err, m, f, opts, want);
        if (s && strncmp(err->msg, path, strlen(path))) it_err_prefix(err, "%s", path);
        it_safetensors_close(f);
        snprintf(tk, sizeof tk, "%s/tokenizer", opts->config_dir ? opts->config_dir : "");
        if (!tok_dir && opts->config_dir && it_is_dir(tk)) tok_dir = tk;
    }
    if (!s && (want & IT_SD_TOKENIZER) && tok_dir) {
        s = it_clip_tokenizer_load(err, &m->tokenizer, tok_dir);
        if (!s) m->loaded |= IT_SD_TOKENIZER;
    }
    if (!s && opts->prediction >= 0) m->sched.prediction = (it_prediction)opts->prediction;
    if (s) it_sd_free(m);
    return s;
}

void it_sd_free(it_sd_model *m)
{
    if (m->loaded & IT_SD_TEXT) it_clip_text_free(&m->text);
    if (m->loaded & IT_SD_UNET) it_unet_free(&m->unet);
    if (m->loaded & IT_SD_VAE) it_vae_free(&m->vae);
    it_clip_tokenizer_free(m->tokenizer);
    m->tokenizer = NULL;
    m->loaded = 0;
}
