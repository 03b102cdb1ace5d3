/* preference.c: the MLP preference head. */
#include "vision/preference.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "tensor/ops_eltwise.h"

static it_status parse_layers(it_err *err, it_pref *p, json_t *layers, const char *label)
{
    size_t n = json_array_size(layers);
    if (!json_is_array(layers) || n < 1 || n > IT_PREF_MAX_LAYERS)
        return it_err_set(err, IT_ERR_FORMAT, "%s: layers must be an array of 1 to %d layers", label,
                          IT_PREF_MAX_LAYERS);
    int in = p->input_dim;
    for (size_t i = 0; i < n; i++) {
        json_t *l = json_array_get(layers, i);
        const char *key = json_string_value(json_object_get(l, "key"));
        json_t *out = json_object_get(l, "out");
        const char *act = json_string_value(json_object_get(l, "activation"));
        if (!key || !json_is_integer(out) || json_integer_value(out) < 1 || json_integer_value(out) > (1 << 20))
            return it_err_set(err, IT_ERR_FORMAT, "%s: layers[%zu] needs a \"key\" and a positive \"out\"", label, i);
        if (!act || !strcmp(act, "none")) p->act[i] = 0;
        else if (!strcmp(act, "relu")) p->act[i] = 1;
        else if (!strcmp(act, "gelu")) p->act[i] = 2;
        else return it_err_set(err, IT_ERR_UNSUPPORTED, "%s: layers[%zu].activation \"%s\": none, relu or gelu", label, i, act);
        int o = (int)json_integer_value(out);
        p->lin[i] = it_lin_linear(&p->params, in, o, 1, "%s", key);
        in = o;
    }
    if (in != 1) return it_err_set(err, IT_ERR_FORMAT, "%s: the last layer must have out 1, not %d", label, in);
    p->n_layers = (int)n;
    return IT_OK;
}

it_status it_pref_parse(it_err *err, it_pref *p, const char *json, const char *label)
{
    return it_pref_parse_ex(err, p, json, label, 0);
}

it_status it_pref_parse_ex(it_err *err, it_pref *p, const char *json, const char *label, int flags)
{
    memset(p, 0, sizeof *p);
    it_params_init(&p->params, "preference_head");
    json_error_t je;
    json_t *root = json_loads(json, 0, &je);
    it_status s = IT_OK;
    if (!json_is_object(root)) {
        s = it_err_set(err, IT_ERR_FORMAT, "%s: not a JSON object (line %d: %s)", label, je.line, je.text);
    } else {
        json_t *d = json_object_get(root, "input_dim");
        p->normalize = !json_is_false(json_object_get(root, "normalize"));
        if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > (1 << 20))
            s = it_err_set(err, IT_ERR_FORMAT, "%s: input_dim must be a positive integer", label);
        else {
            p->input_dim = (int)json_integer_value(d);
            s = parse_layers(err, p, json_object_get(root, "layers"), label);
        }
    }
    json_decref(root);
    if (!s) s = it_params_alloc(err, &p->params, flags);
    if (s) it_pref_free(p);
    return s;
}

it_status it_pref_load(it_err *err, it_pref *p, const char *config_path, const char *weights_path)
{
    uint8_t *text = NULL;
    size_t n = 0;
    memset(p, 0, sizeof *p);
    IT_TRY(it_file_read(err, &text, &n, config_path, 1 << 20));
    it_status s = it_pref_parse(err, p, (const char *)text, config_path);
    it_free(text);
    if (s) return s;
    it_safetensors *f = NULL;
    s = it_safetensors_open(err, &f, weights_path);
    if (!s) s = it_params_load(err, &p->params, f, "", NULL, NULL, 1, NULL);
    it_safetensors_close(f);
    if (s) it_pref_free(p);
    return s;
}

void it_pref_free(it_pref *p)
{
    it_params_free(&p->params);
    memset(p, 0, sizeof *p);
}

static void relu_inplace(it_tensor *x)
{
    float *v = it_f32(x);
    for (int64_t i = 0; i < x->n; i++) v[i] = v[i] > 0 ? v[i] : 0.0f;
}

/* Rows of x divided by their norm (left as they are when 0). */
static void l2_rows(float *v, int n, int d)
{
    for (int i = 0; i < n; i++) {
        double ss = 0;
        for (int k = 0; k < d; k++) ss += (double)v[(size_t)i * d + k] * v[(size_t)i * d + k];
        float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int k = 0; k < d; k++) v[(size_t)i * d + k] *= inv;
    }
}

it_tensor *it_pref_forward(it_ctx *ctx, const it_pref *p, const float *emb, int n)
{
    it_tensor *x = it_tensor_from(ctx, emb, IT_SHAPE(n, p->input_dim));
    if (x && p->normalize) l2_rows(it_f32(x), n, p->input_dim);
    for (int l = 0; l < p->n_layers; l++) {
        x = it_lin_forward(ctx, p->lin[l], x);
        if (p->act[l] == 1 && x) relu_inplace(x); /* inference only: the engine has no ReLU op */
        if (p->act[l] == 2) x = it_op_gelu(ctx, x);
    }
    return x;
}

it_status it_pref_score(it_err *err, it_ctx *ctx, const it_pref *p, const float *emb, int n, float *scores)
{
    it_mark mk = it_ctx_mark(ctx);
    it_tensor *x = it_pref_forward(ctx, p, emb, n);
    it_status s = it_ctx_status(ctx, err);
    if (!s) memcpy(scores, it_f32(x), (size_t)n * sizeof(float));
    it_ctx_release(ctx, mk);
    return s;
}
