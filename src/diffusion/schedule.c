/* schedule.c: beta schedules, alphas_cumprod, scheduler_config.json, and the
 * training-time forward process. See schedule.h. */
#include "diffusion/schedule.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "base/mem.h"

/* ------------------------------------------------------------ names */

static const char *const beta_names[] = {"linear", "scaled_linear", "squaredcos_cap_v2"};
static const char *const spacing_names[] = {"leading", "trailing", "linspace", "auto"};
static const char *const pred_names[] = {"epsilon", "v_prediction", "sample"};

static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

const char *it_beta_schedule_name(it_beta_schedule b) { return beta_names[b]; }
const char *it_spacing_name(it_spacing s) { return spacing_names[s]; }
const char *it_pred_type_name(it_pred_type p) { return pred_names[p]; }
int it_beta_schedule_parse(const char *s) { return name_index(beta_names, 3, s); }
int it_spacing_parse(const char *s) { return name_index(spacing_names, 3, s); }
int it_pred_type_parse(const char *s) { return name_index(pred_names, 3, s); }

/* ------------------------------------------------------------ config */

void it_schedule_config_sd(it_schedule_config *c)
{
    memset(c, 0, sizeof *c);
    c->num_train_timesteps = 1000;
    c->beta_start = 0.00085;
    c->beta_end = 0.012;
    c->beta_schedule = IT_BETAS_SCALED_LINEAR;
    c->prediction = IT_PREDICT_EPSILON;
    c->spacing = IT_SPACING_AUTO;
    c->steps_offset = 1;
    c->set_alpha_to_one = 0;
    c->clip_sample = 0;
    c->clip_sample_range = 1.0;
}

/* Defaults for absent keys: the samplers' own (see the header). */
static void absent_defaults(it_schedule_config *c)
{
    memset(c, 0, sizeof *c);
    c->num_train_timesteps = 1000;
    c->beta_start = 0.0001;
    c->beta_end = 0.02;
    c->beta_schedule = IT_BETAS_LINEAR;
    c->prediction = IT_PREDICT_EPSILON;
    c->spacing = IT_SPACING_AUTO;
    c->steps_offset = 0;
    c->set_alpha_to_one = 1;
    c->clip_sample = 1;
    c->clip_sample_range = 1.0;
}

static it_status get_enum(it_err *err, json_t *root, const char *key, int (*parse)(const char *),
                          int *out, const char *label)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return IT_OK;
    int r = json_is_string(v) ? parse(json_string_value(v)) : -1;
    if (r < 0)
        return it_err_set(err, IT_ERR_UNSUPPORTED, "%s: %s \"%s\" is not supported", label, key,
                          json_is_string(v) ? json_string_value(v) : "(not a string)");
    *out = r;
    return IT_OK;
}

static it_status get_number(it_err *err, json_t *root, const char *key, double *out,
                            const char *label)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return IT_OK;
    if (!json_is_number(v))
        return it_err_set(err, IT_ERR_FORMAT, "%s: %s is not a number", label, key);
    *out = json_number_value(v);
    return IT_OK;
}

static it_status get_bool(it_err *err, json_t *root, const char *key, int *out, const char *label)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return IT_OK;
    if (!json_is_boolean(v))
        return it_err_set(err, IT_ERR_FORMAT, "%s: %s is not true/false", label, key);
    *out = json_is_true(v);
    return IT_OK;
}

/* Keys whose non-default values change the numbers in ways we do not
 * implement: refuse them rather than sample something else. */
static it_status check_unsupported(it_err *err, json_t *root, const char *label)
{
    static const char *const truthy[] = {"rescale_betas_zero_snr", "thresholding",
                                         "use_exponential_sigmas", "use_beta_sigmas",
                                         "use_lu_lambdas", "use_flow_sigmas"};
    for (size_t i = 0; i < sizeof truthy / sizeof *truthy; i++)
        if (json_is_true(json_object_get(root, truthy[i])))
            return it_err_set(err, IT_ERR_UNSUPPORTED, "%s: %s = true is not supported", label,
                              truthy[i]);
    json_t *tb = json_object_get(root, "trained_betas");
    if (tb && !json_is_null(tb))
        return it_err_set(err, IT_ERR_UNSUPPORTED, "%s: trained_betas is not supported", label);
    return IT_OK;
}

it_status it_schedule_config_parse(it_err *err, it_schedule_config *c, const char *json_text,
                                   const char *label)
{
    json_error_t je;
    json_t *root = json_loads(json_text, 0, &je);
    if (!root)
        return it_err_set(err, IT_ERR_FORMAT, "%s: line %d: %s", label, je.line, je.text);
    it_status st = IT_OK;
    if (!json_is_object(root)) {
        st = it_err_set(err, IT_ERR_FORMAT, "%s: not a JSON object", label);
        goto done;
    }
    absent_defaults(c);
    double ntt = c->num_train_timesteps, off = c->steps_offset;
    int bs = (int)c->beta_schedule, pr = (int)c->prediction, sp = (int)c->spacing;
    if ((st = check_unsupported(err, root, label)) ||
        (st = get_number(err, root, "num_train_timesteps", &ntt, label)) ||
        (st = get_number(err, root, "beta_start", &c->beta_start, label)) ||
        (st = get_number(err, root, "beta_end", &c->beta_end, label)) ||
        (st = get_number(err, root, "steps_offset", &off, label)) ||
        (st = get_number(err, root, "clip_sample_range", &c->clip_sample_range, label)) ||
        (st = get_bool(err, root, "set_alpha_to_one", &c->set_alpha_to_one, label)) ||
        (st = get_bool(err, root, "clip_sample", &c->clip_sample, label)) ||
        (st = get_enum(err, root, "beta_schedule", it_beta_schedule_parse, &bs, label)) ||
        (st = get_enum(err, root, "prediction_type", it_pred_type_parse, &pr, label)) ||
        (st = get_enum(err, root, "timestep_spacing", it_spacing_parse, &sp, label)))
        goto done;
    if (ntt < 1 || ntt > 100000 || ntt != floor(ntt)) {
        st = it_err_set(err, IT_ERR_FORMAT, "%s: num_train_timesteps %g out of range", label, ntt);
        goto done;
    }
    if (off < 0 || off >= ntt || off != floor(off)) {
        st = it_err_set(err, IT_ERR_FORMAT, "%s: steps_offset %g out of range", label, off);
        goto done;
    }
    c->num_train_timesteps = (int)ntt;
    c->steps_offset = (int)off;
    c->beta_schedule = (it_beta_schedule)bs;
    c->prediction = (it_pred_type)pr;
    c->spacing = (it_spacing)sp;
done:
    json_decref(root);
    return st;
}

/* ------------------------------------------------------------ arrays */

/* torch.linspace(a, b, n) in float32: torch fills the first half from a and
 * the second half from b (step * (i - n + 1) + b), so both ends are exact. */
static void linspace_f32(float *out, int n, double a, double b)
{
    if (n == 1) {
        out[0] = (float)a;
        return;
    }
    float fa = (float)a, fb = (float)b;
    float step = (fb - fa) / (float)(n - 1);
    int half = n / 2;
    for (int i = 0; i < n; i++)
        out[i] = i < half ? fa + step * (float)i : fb - step * (float)(n - 1 - i);
}

static double cos_alpha_bar(double t)
{
    double c = cos((t + 0.008) / 1.008 * M_PI / 2);
    return c * c;
}

static it_status check_config(it_err *err, const it_schedule_config *c)
{
    if (c->num_train_timesteps < 1 || c->num_train_timesteps > 100000)
        return it_err_set(err, IT_ERR_ARG, "schedule: num_train_timesteps %d out of 1..100000",
                          c->num_train_timesteps);
    if (c->beta_schedule != IT_BETAS_SQUAREDCOS_CAP_V2 &&
        !(c->beta_start > 0 && c->beta_start < 1 && c->beta_end > 0 && c->beta_end < 1))
        return it_err_set(err, IT_ERR_ARG, "schedule: betas %g..%g not in (0, 1)", c->beta_start,
                          c->beta_end);
    if (c->steps_offset < 0 || c->steps_offset >= c->num_train_timesteps)
        return it_err_set(err, IT_ERR_ARG, "schedule: steps_offset %d out of range",
                          c->steps_offset);
    return IT_OK;
}

it_status it_schedule_init(it_err *err, it_schedule *s, const it_schedule_config *cfg)
{
    memset(s, 0, sizeof *s);
    IT_TRY(check_config(err, cfg));
    int n = cfg->num_train_timesteps;
    s->cfg = *cfg;
    s->betas = it_malloc((size_t)n * sizeof(float));
    s->alphas_cumprod = it_malloc((size_t)n * sizeof(float));
    if (!s->betas || !s->alphas_cumprod) {
        it_schedule_free(s);
        return it_err_set(err, IT_ERR_NOMEM, "schedule: out of memory");
    }
    switch (cfg->beta_schedule) {
    case IT_BETAS_LINEAR:
        linspace_f32(s->betas, n, cfg->beta_start, cfg->beta_end);
        break;
    case IT_BETAS_SCALED_LINEAR:
        linspace_f32(s->betas, n, sqrt(cfg->beta_start), sqrt(cfg->beta_end));
        for (int i = 0; i < n; i++) s->betas[i] = s->betas[i] * s->betas[i];
        break;
    case IT_BETAS_SQUAREDCOS_CAP_V2:
        /* betas_for_alpha_bar: python floats (double), max_beta 0.999. */
        for (int i = 0; i < n; i++) {
            double b = 1 - cos_alpha_bar((double)(i + 1) / n) / cos_alpha_bar((double)i / n);
            s->betas[i] = (float)(b < 0.999 ? b : 0.999);
        }
        break;
    }
    double acc = 1.0;
    for (int i = 0; i < n; i++) {
        float alpha = 1.0f - s->betas[i];
        acc *= (double)alpha;
        s->alphas_cumprod[i] = (float)acc;
    }
    /* Betas that drive alphas_cumprod to 0 (in float) make sigma infinite:
     * nothing can sample such a schedule (found by fuzz/scheduler_config). */
    float last = s->alphas_cumprod[n - 1];
    if (!(last > 0) || !isfinite(sqrtf((1.0f - last) / last))) {
        it_schedule_free(s);
        return it_err_set(err, IT_ERR_ARG,
                          "schedule: alphas_cumprod reaches %g at t=%d (betas %g..%g too large)",
                          (double)last, n - 1, cfg->beta_start, cfg->beta_end);
    }
    return IT_OK;
}

void it_schedule_free(it_schedule *s)
{
    it_free(s->betas);
    it_free(s->alphas_cumprod);
    s->betas = s->alphas_cumprod = NULL;
}

float it_schedule_sigma(const it_schedule *s, int t)
{
    float ac = s->alphas_cumprod[t];
    return sqrtf((1.0f - ac) / ac);
}

double it_schedule_snr(const it_schedule *s, int t)
{
    double ac = s->alphas_cumprod[t];
    return ac / (1.0 - ac);
}

/* ------------------------------------------------------------ forward process */

static it_status check_t(it_err *err, const it_schedule *s, const int *t, int batch)
{
    for (int b = 0; b < batch; b++)
        if (t[b] < 0 || t[b] >= s->cfg.num_train_timesteps)
            return it_err_set(err, IT_ERR_RANGE, "schedule: timestep %d of item %d not in 0..%d",
                              t[b], b, s->cfg.num_train_timesteps - 1);
    return IT_OK;
}

/* out = a * x + c * y per item, with (a, c) from ac[t] as diffusers computes
 * them in float32: a = ac ** 0.5, c = (1 - ac) ** 0.5. sign flips c. */
static void combine(const it_schedule *s, float *out, const float *x, const float *y,
                    const int *t, int batch, size_t n_item, int y_first, float sign)
{
    for (int b = 0; b < batch; b++) {
        float ac = s->alphas_cumprod[t[b]];
        float sa = sqrtf(ac), sb = sqrtf(1.0f - ac) * sign;
        const float *xb = x + (size_t)b * n_item, *yb = y + (size_t)b * n_item;
        float *ob = out + (size_t)b * n_item;
        if (y_first)
            for (size_t i = 0; i < n_item; i++) ob[i] = sa * yb[i] + sb * xb[i];
        else
            for (size_t i = 0; i < n_item; i++) ob[i] = sa * xb[i] + sb * yb[i];
    }
}

it_status it_schedule_add_noise(it_err *err, const it_schedule *s, float *out, const float *x0,
                                const float *noise, const int *t, int batch, size_t n_item)
{
    IT_TRY(check_t(err, s, t, batch));
    combine(s, out, x0, noise, t, batch, n_item, 0, 1.0f);
    return IT_OK;
}

it_status it_schedule_velocity(it_err *err, const it_schedule *s, float *out, const float *x0,
                               const float *noise, const int *t, int batch, size_t n_item)
{
    IT_TRY(check_t(err, s, t, batch));
    combine(s, out, x0, noise, t, batch, n_item, 1, -1.0f);
    return IT_OK;
}

it_status it_schedule_target(it_err *err, const it_schedule *s, float *out, const float *x0,
                             const float *noise, const int *t, int batch, size_t n_item)
{
    size_t n = (size_t)batch * n_item;
    switch (s->cfg.prediction) {
    case IT_PREDICT_EPSILON:
        IT_TRY(check_t(err, s, t, batch));
        if (out != noise) memcpy(out, noise, n * sizeof(float));
        return IT_OK;
    case IT_PREDICT_SAMPLE:
        IT_TRY(check_t(err, s, t, batch));
        if (out != x0) memcpy(out, x0, n * sizeof(float));
        return IT_OK;
    case IT_PREDICT_V:
        return it_schedule_velocity(err, s, out, x0, noise, t, batch, n_item);
    }
    return it_err_set(err, IT_ERR_INTERNAL, "schedule: bad prediction type");
}
