/* clip.c: joint CLIP loading (both layouts) and scoring. */
#include "vision/clip.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "models/sd_keys.h"

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---------------------------------------------------------------- OpenCLIP config */

static int jint(json_t *o, const char *k, int def)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int)json_integer_value(v) : def;
}

static double jnum(json_t *o, const char *k, double def)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : def;
}

/* open_clip's model_cfg (open_clip/model.py CLIPVisionCfg / CLIPTextCfg
 * defaults for absent keys). */
static it_status openclip_config(it_err *err, it_clip *m, it_clip_vision_config *vc,
                                 it_clip_text_config *tc, const char *path)
{
    uint8_t *text = NULL;
    size_t n = 0;
    IT_TRY(it_file_read(err, &text, &n, path, 1 << 20));
    json_error_t je;
    json_t *root = json_loads((const char *)text, 0, &je);
    it_free(text);
    json_t *mc = json_object_get(root, "model_cfg");
    json_t *v = json_object_get(mc, "vision_cfg"), *t = json_object_get(mc, "text_cfg");
    it_status st = IT_OK;
    if (!json_is_object(v) || !json_is_object(t) || !json_is_integer(json_object_get(v, "layers"))) {
        st = it_err_set(err, IT_ERR_UNSUPPORTED,
                        "%s: model_cfg must hold a ViT vision_cfg (integer layers) and a text_cfg", path);
        json_decref(root);
        return st;
    }
    int quick = json_is_true(json_object_get(mc, "quick_gelu"));
    int embed = jint(mc, "embed_dim", 512);
    it_clip_vision_config_default(vc);
    vc->hidden = jint(v, "width", 768);
    vc->n_layers = jint(v, "layers", 12);
    vc->n_heads = vc->hidden / jint(v, "head_width", 64);
    vc->intermediate = (int)(vc->hidden * jnum(v, "mlp_ratio", 4.0));
    vc->patch_size = jint(v, "patch_size", 16);
    vc->image_size = jint(v, "image_size", 224);
    vc->act = quick ? IT_CLIP_QUICK_GELU : IT_CLIP_GELU;
    vc->projection_dim = embed;
    it_clip_text_config_sd15(tc);
    tc->hidden = jint(t, "width", 512);
    tc->n_heads = jint(t, "heads", 8);
    tc->n_layers = jint(t, "layers", 12);
    tc->intermediate = (int)(tc->hidden * jnum(t, "mlp_ratio", 4.0));
    tc->vocab_size = jint(t, "vocab_size", 49408);
    tc->max_positions = jint(t, "context_length", 77);
    tc->act = vc->act;
    tc->projection_dim = embed;
    tc->has_projection = 1;
    tc->eos_token_id = 2; /* open_clip pools at argmax(ids) (text_pool_type "argmax") */
    json_t *pc = json_object_get(root, "preprocess_cfg");
    it_preprocess_clip_default(&m->pre);
    m->pre.shortest_edge = m->pre.crop_w = m->pre.crop_h = vc->image_size;
    json_t *mean = json_object_get(pc, "mean"), *std = json_object_get(pc, "std");
    for (int i = 0; i < 3; i++) {
        if (json_is_array(mean)) m->pre.mean[i] = (float)json_number_value(json_array_get(mean, (size_t)i));
        if (json_is_array(std)) m->pre.std[i] = (float)json_number_value(json_array_get(std, (size_t)i));
    }
    if (vc->n_heads < 1 || vc->hidden % vc->n_heads || tc->n_heads < 1 || tc->hidden % tc->n_heads ||
        vc->n_layers < 1 || tc->n_layers < 1 || vc->patch_size < 1 || vc->image_size < vc->patch_size)
        st = it_err_set(err, IT_ERR_FORMAT, "%s: inconsistent widths, heads or sizes in model_cfg", path);
    json_decref(root);
    return st;
}

/* OpenCLIP text keys: the SD 2 map of sd_keys.c (OpenCLIP's text tower under
 * "cond_stage_model.model."), with that prefix removed. */
static int map_openclip(void *user, const char *name, it_key_src *src)
{
    (void)user;
    if (it_clip_vision_map_openclip(NULL, name, src)) return 1;
    it_ldm_map lm;
    memset(&lm, 0, sizeof lm);
    lm.det.text = IT_SD_TEXT_OPENCLIP;
    lm.text_prefix = "text_model.";
    if (!it_ldm_map_text(&lm, name, src)) return 0;
    size_t pl = strlen(IT_LDM_OPENCLIP_PREFIX);
    if (strncmp(src->key, IT_LDM_OPENCLIP_PREFIX, pl)) return 0;
    memmove(src->key, src->key + pl, strlen(src->key + pl) + 1);
    return 1;
}

/* ---------------------------------------------------------------- load */

static it_status load_scale(it_err *err, it_clip *m, const it_safetensors *f)
{
    const it_safetensors_tensor *t = NULL;
    IT_TRY(it_safetensors_get(err, f, "logit_scale", &t));
    if (t->numel != 1)
        return it_err_set(err, IT_ERR_FORMAT, "%s: logit_scale must hold one value", it_safetensors_label(f));
    return it_safetensors_load_f32(err, f, t, &m->logit_scale, 1);
}

static it_status load_weights(it_err *err, it_clip *m, const char *path)
{
    it_safetensors *f = NULL;
    IT_TRY(it_safetensors_open(err, &f, path));
    it_key_map_fn map = m->layout == IT_CLIP_LAYOUT_OPENCLIP ? map_openclip : NULL;
    it_status s = it_params_load(err, &m->vision.params, f, "vision_model.", map, NULL, 0, NULL);
    if (!s) s = it_params_load(err, &m->text.params, f, "text_model.", map, NULL, 0, NULL);
    if (!s) s = load_scale(err, m, f);
    it_safetensors_close(f);
    if (s && err && !strstr(err->msg, path)) {
        char msg[IT_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err->msg);
        it_err_set(err, s, "%s: %s", path, msg); /* which file lacks the key */
    }
    return s;
}

static it_status load_in(it_err *err, it_clip *m, const char *dir)
{
    char path[4096];
    it_clip_vision_config vc;
    it_clip_text_config tc;
    snprintf(path, sizeof path, "%s/open_clip_config.json", dir);
    if (file_exists(path)) {
        m->layout = IT_CLIP_LAYOUT_OPENCLIP;
        IT_TRY(openclip_config(err, m, &vc, &tc, path));
    } else {
        snprintf(path, sizeof path, "%s/config.json", dir);
        if (!file_exists(path))
            return it_err_set(err, IT_ERR_NOT_FOUND,
                              "%s: not a CLIP model folder (no config.json or open_clip_config.json)", dir);
        IT_TRY(it_clip_vision_config_load(err, &vc, path));
        IT_TRY(it_clip_text_config_load(err, &tc, path));
        tc.projection_dim = vc.projection_dim; /* CLIPConfig keeps it at the top level */
        tc.has_projection = 1;
        it_preprocess_clip_default(&m->pre);
    }
    m->embed_dim = vc.projection_dim;
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    if (file_exists(path)) IT_TRY(it_preprocess_load(err, &m->pre, path));
    IT_TRY(it_clip_vision_init(err, &m->vision, &vc, "vision_model.", "pre_layrnorm", "visual_projection", 0));
    IT_TRY(it_clip_text_init(err, &m->text, &tc, "text_model.", "text_projection", 0));
    IT_TRY(it_clip_tokenizer_load(err, &m->tok, dir));
    snprintf(path, sizeof path, "%s/%s", dir,
             m->layout == IT_CLIP_LAYOUT_OPENCLIP ? "open_clip_model.safetensors" : "model.safetensors");
    return load_weights(err, m, path);
}

it_status it_clip_load(it_err *err, it_clip *m, const char *dir)
{
    memset(m, 0, sizeof *m);
    it_status s = load_in(err, m, dir);
    if (s) it_clip_free(m);
    return s;
}

void it_clip_free(it_clip *m)
{
    it_clip_vision_free(&m->vision);
    it_clip_text_free(&m->text);
    it_clip_tokenizer_free(m->tok);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- embeddings */

it_status it_clip_embed_pixels(it_err *err, it_ctx *ctx, it_clip *m, it_tensor *pixels, float *out)
{
    it_mark mk = it_ctx_mark(ctx);
    it_clip_vision_out vo;
    it_status s = it_clip_vision_forward(err, ctx, &m->vision, pixels, &vo);
    if (!s) memcpy(out, it_f32(vo.projected), (size_t)vo.projected->n * sizeof(float));
    it_ctx_release(ctx, mk);
    return s;
}

it_status it_clip_embed_image(it_err *err, it_ctx *ctx, it_clip *m, const it_image *img, float *out)
{
    it_mark mk = it_ctx_mark(ctx);
    it_tensor *px;
    it_status s = it_preprocess_tensor(err, ctx, &m->pre, img, &px);
    if (!s) s = it_clip_embed_pixels(err, ctx, m, px, out);
    it_ctx_release(ctx, mk);
    return s;
}

it_status it_clip_embed_ids(it_err *err, it_ctx *ctx, it_clip *m, it_tensor *ids, float *out)
{
    it_mark mk = it_ctx_mark(ctx);
    it_clip_text_out to;
    it_status s = it_clip_text_forward(err, ctx, &m->text, ids, 0, 1, &to);
    if (!s) memcpy(out, it_f32(to.projected), (size_t)to.projected->n * sizeof(float));
    it_ctx_release(ctx, mk);
    return s;
}

it_status it_clip_embed_text(it_err *err, it_ctx *ctx, it_clip *m, const char *text, float *out)
{
    int L = m->text.cfg.max_positions;
    it_mark mk = it_ctx_mark(ctx);
    it_tensor *ids = it_tensor_new(ctx, IT_DTYPE_I32, IT_SHAPE(1, L));
    it_status s = ids ? IT_OK : it_ctx_status(ctx, err);
    if (!s) s = it_clip_encode_padded(err, m->tok, ids->data, L, NULL, text, strlen(text));
    if (!s) s = it_clip_embed_ids(err, ctx, m, ids, out);
    it_ctx_release(ctx, mk);
    return s;
}

void it_clip_l2norm(float *v, int n)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)v[i] * v[i];
    if (ss <= 0) return;
    float inv = (float)(1.0 / sqrt(ss));
    for (int i = 0; i < n; i++) v[i] *= inv;
}

void it_clip_logits(const it_clip *m, float *logits, const float *img_emb, int n_img,
                    const float *txt_emb, int n_txt)
{
    int d = m->embed_dim;
    double scale = exp((double)m->logit_scale);
    for (int i = 0; i < n_img; i++)
        for (int j = 0; j < n_txt; j++) {
            const float *a = img_emb + (size_t)i * (size_t)d, *b = txt_emb + (size_t)j * (size_t)d;
            double ab = 0, aa = 0, bb = 0;
            for (int k = 0; k < d; k++) {
                ab += (double)a[k] * b[k];
                aa += (double)a[k] * a[k];
                bb += (double)b[k] * b[k];
            }
            logits[(size_t)i * (size_t)n_txt + (size_t)j] =
                aa > 0 && bb > 0 ? (float)(scale * ab / sqrt(aa * bb)) : 0.0f;
        }
}
