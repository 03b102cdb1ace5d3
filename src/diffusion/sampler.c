/* sampler.c: DDIM, Euler, Euler ancestral and DPM++ 2M as diffusers 0.42
 * implements them. See sampler.h; docs/SAMPLING.md has the formulas.
 *
 * Precision: diffusers keeps the schedule in float32 tensors and computes
 * the per-step scalars (sqrt(alpha), sigma ratios, lambdas) in float32,
 * while numpy parts (timestep spacings, interpolation, Karras sigmas) run in
 * double and are cast to float32 at the end. We follow the same split, so
 * that the latents agree to float32 rounding, not just approximately. */
#include "diffusion/sampler.h"

#include <math.h>
#include <string.h>

#include "base/mem.h"

/* ------------------------------------------------------------ names */

static const struct {
    const char *name;
    it_sampler_kind kind;
    int karras;
} sampler_names[] = {
    {"ddim", IT_SAMPLER_DDIM, 0},
    {"euler", IT_SAMPLER_EULER, 0},
    {"euler_karras", IT_SAMPLER_EULER, 1},
    {"euler_a", IT_SAMPLER_EULER_A, 0},
    {"dpm++2m", IT_SAMPLER_DPMPP_2M, 0},
    {"dpm++2m_karras", IT_SAMPLER_DPMPP_2M, 1},
    {"dpmpp_2m", IT_SAMPLER_DPMPP_2M, 0},
    {"dpmpp_2m_karras", IT_SAMPLER_DPMPP_2M, 1},
};
#define N_SAMPLER_NAMES (sizeof sampler_names / sizeof *sampler_names)

it_status it_sampler_parse(it_err *err, it_sampler_opts *o, const char *name)
{
    memset(o, 0, sizeof *o);
    for (size_t i = 0; name && i < N_SAMPLER_NAMES; i++)
        if (strcmp(sampler_names[i].name, name) == 0) {
            o->kind = sampler_names[i].kind;
            o->karras = sampler_names[i].karras;
            return IT_OK;
        }
    return it_err_set(err, IT_ERR_ARG,
                      "unknown sampler '%s' (known: ddim, euler, euler_karras, euler_a, dpm++2m, "
                      "dpm++2m_karras)",
                      name ? name : "");
}

const char *it_sampler_name(const it_sampler_opts *o)
{
    for (size_t i = 0; i < N_SAMPLER_NAMES; i++)
        if (sampler_names[i].kind == o->kind && sampler_names[i].karras == o->karras)
            return sampler_names[i].name;
    return "?";
}

/* ------------------------------------------------------------ numpy helpers */

/* np.linspace(a, b, num)[i] (endpoint, float64): i * ((b - a) / (num - 1)) + a,
 * and the last value set to b exactly. */
static double np_linspace_at(double a, double b, int num, int i)
{
    if (num == 1) return a;
    if (i == num - 1) return b;
    return (double)i * ((b - a) / (double)(num - 1)) + a;
}

/* np.arange(start, stop, step) with a negative float step: length
 * ceil((stop - start) / step), values start + i * delta where numpy takes
 * delta = (start + step) - start. Returns the length. */
static int np_arange_len(double start, double stop, double step)
{
    double len = ceil((stop - start) / step);
    return len > 0 ? (int)len : 0;
}

static double np_arange_at(double start, double step, int i)
{
    double delta = (start + step) - start;
    return i == 0 ? start : start + (double)i * delta;
}

/* np.interp(x, arange(n), fp) for x within [0, n - 1]. */
static double np_interp(double x, const float *fp, int n)
{
    if (x <= 0) return fp[0];
    if (x >= n - 1) return fp[n - 1];
    int j = (int)floor(x);
    if ((double)j == x) return fp[j];
    double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
    return slope * (x - (double)j) + (double)fp[j];
}

/* diffusers' _sigma_to_t: piecewise-linear inverse of log sigma(t) over the
 * train schedule (log_sigmas ascending, float32 as numpy holds them). */
static double sigma_to_t(double sigma, const float *log_sigmas, int n)
{
    double ls = log(sigma > 1e-10 ? sigma : 1e-10);
    int count = 0;
    for (int i = 0; i < n; i++)
        if (ls - (double)log_sigmas[i] >= 0) count++;
    /* argmax of the cumulative sum = first index where it reaches its max. */
    int low = count > 0 ? count - 1 : 0;
    if (low > n - 2) low = n - 2;
    double lo = log_sigmas[low], hi = log_sigmas[low + 1];
    double w = (lo - ls) / (lo - hi);
    if (w < 0) w = 0;
    if (w > 1) w = 1;
    return (1 - w) * low + w * (low + 1);
}

/* Karras et al. rho = 7 ramp from sigma_max down to sigma_min, n values. */
static void karras_sigmas(double *out, int n, double sigma_min, double sigma_max)
{
    double rho = 7.0;
    double min_inv = pow(sigma_min, 1 / rho), max_inv = pow(sigma_max, 1 / rho);
    for (int i = 0; i < n; i++) {
        double ramp = np_linspace_at(0, 1, n, i);
        out[i] = pow(max_inv + ramp * (min_inv - max_inv), rho);
    }
}

/* ------------------------------------------------------------ timesteps */

/* trailing_note: numpy's arange(N, 0, -N/n) has n + 1 elements for some n
 * (61, 103, 121, ...: (0 - N) / (-N/n) rounds up past n), and diffusers then
 * runs an extra step at timestep -1, which indexes alphas_cumprod from the
 * end. That is a bug, not a schedule: we keep the n intended steps. */

/* DDIM (integers). Returns the count written to ts (capacity n + 1). */
static int ddim_timesteps(const it_schedule_config *c, int n, double *ts)
{
    int N = c->num_train_timesteps;
    switch (c->spacing) {
    case IT_SPACING_LINSPACE:
        for (int i = 0; i < n; i++) ts[n - 1 - i] = rint(np_linspace_at(0, N - 1, n, i));
        return n;
    case IT_SPACING_LEADING:
        for (int i = 0; i < n; i++) ts[n - 1 - i] = (double)(i * (N / n) + c->steps_offset);
        return n;
    case IT_SPACING_TRAILING: {
        double ratio = (double)N / n;
        int len = np_arange_len(N, 0, -ratio);
        if (len > n) len = n; /* see trailing_note */
        for (int i = 0; i < len; i++) ts[i] = rint(np_arange_at(N, -ratio, i)) - 1;
        return len;
    }
    case IT_SPACING_AUTO: break; /* resolved in it_sampler_init */
    }
    IT_ASSERT(0);
    return 0;
}

/* Euler / Euler ancestral (float32 values). */
static int euler_timesteps(const it_schedule_config *c, int n, double *ts)
{
    int N = c->num_train_timesteps;
    switch (c->spacing) {
    case IT_SPACING_LINSPACE:
        for (int i = 0; i < n; i++) ts[n - 1 - i] = (float)np_linspace_at(0, N - 1, n, i);
        return n;
    case IT_SPACING_LEADING:
        for (int i = 0; i < n; i++)
            ts[n - 1 - i] = (float)((float)(i * (N / n)) + (float)c->steps_offset);
        return n;
    case IT_SPACING_TRAILING: {
        double ratio = (double)N / n;
        int len = np_arange_len(N, 0, -ratio);
        if (len > n) len = n; /* see trailing_note */
        for (int i = 0; i < len; i++) ts[i] = (float)rint(np_arange_at(N, -ratio, i)) - 1.0f;
        return len;
    }
    case IT_SPACING_AUTO: break; /* resolved in it_sampler_init */
    }
    IT_ASSERT(0);
    return 0;
}

/* DPM-Solver multistep: n + 1 points with the last (t = 0) dropped, so the
 * final step lands on sigma 0 from a non-zero timestep. lambda_min_clipped
 * is -inf in every SD config, so last_timestep = num_train_timesteps. */
static int dpm_timesteps(const it_schedule_config *c, int n, double *ts)
{
    int N = c->num_train_timesteps, last = N;
    switch (c->spacing) {
    case IT_SPACING_LINSPACE:
        for (int i = 0; i < n; i++) ts[i] = rint(np_linspace_at(0, last - 1, n + 1, n - i));
        return n;
    case IT_SPACING_LEADING: {
        int ratio = last / (n + 1);
        for (int i = 0; i < n; i++) ts[i] = (double)((n - i) * ratio + c->steps_offset);
        return n;
    }
    case IT_SPACING_TRAILING: {
        double ratio = (double)N / n;
        int len = np_arange_len(last, 0, -ratio);
        if (len > n) len = n; /* see trailing_note */
        for (int i = 0; i < len; i++) ts[i] = rint(np_arange_at(last, -ratio, i)) - 1;
        return len;
    }
    case IT_SPACING_AUTO: break; /* resolved in it_sampler_init */
    }
    IT_ASSERT(0);
    return 0;
}

/* ------------------------------------------------------------ init */

static it_status check_opts(it_err *err, const it_schedule_config *cfg, const it_sampler_opts *o,
                            int n_steps)
{
    if (n_steps < 1 || n_steps > cfg->num_train_timesteps)
        return it_err_set(err, IT_ERR_ARG, "sampler: %d steps not in 1..%d", n_steps,
                          cfg->num_train_timesteps);
    if (o->karras && (o->kind == IT_SAMPLER_DDIM || o->kind == IT_SAMPLER_EULER_A))
        return it_err_set(err, IT_ERR_ARG, "sampler: Karras sigmas need euler or dpm++2m");
    if (o->eta != 0 && o->kind != IT_SAMPLER_DDIM)
        return it_err_set(err, IT_ERR_ARG, "sampler: eta applies to ddim only");
    if (!(o->eta >= 0 && o->eta <= 1))
        return it_err_set(err, IT_ERR_ARG, "sampler: eta %g not in [0, 1]", (double)o->eta);
    if (o->kind == IT_SAMPLER_EULER_A && cfg->prediction == IT_PREDICT_SAMPLE)
        return it_err_set(err, IT_ERR_UNSUPPORTED,
                          "sampler: euler_a does not support prediction_type sample");
    return IT_OK;
}

/* sigmas of the k-diffusion samplers (Euler kinds): interpolated at the
 * float timesteps, optionally replaced by Karras sigmas (and the timesteps
 * by their sigma_to_t inverse). */
static void euler_sigmas(it_sampler *s, const float *train_sigmas, const float *log_sigmas,
                         double *tmp)
{
    int n = s->n_steps, N = s->sched.cfg.num_train_timesteps;
    for (int i = 0; i < n; i++) tmp[i] = np_interp(s->timesteps[i], train_sigmas, N);
    if (s->opts.karras) {
        karras_sigmas(tmp, n, tmp[n - 1], tmp[0]);
        for (int i = 0; i < n; i++)
            s->timesteps[i] = (float)sigma_to_t(tmp[i], log_sigmas, N);
    }
    for (int i = 0; i < n; i++) s->sigmas[i] = (float)tmp[i];
    s->sigmas[n] = 0.0f;
    float mx = 0;
    for (int i = 0; i <= n; i++) mx = s->sigmas[i] > mx ? s->sigmas[i] : mx;
    s->init_noise_sigma = s->sched.cfg.spacing == IT_SPACING_LEADING ? sqrtf(mx * mx + 1.0f) : mx;
}

static void dpm_sigmas(it_sampler *s, const float *train_sigmas, const float *log_sigmas,
                       double *tmp)
{
    int n = s->n_steps, N = s->sched.cfg.num_train_timesteps;
    if (s->opts.karras) {
        karras_sigmas(tmp, n, train_sigmas[0], train_sigmas[N - 1]);
        for (int i = 0; i < n; i++) {
            double t = sigma_to_t(tmp[i], log_sigmas, N);
            s->timesteps[i] = s->sched.cfg.beta_schedule == IT_BETAS_SQUAREDCOS_CAP_V2 ? floor(t)
                                                                                      : rint(t);
        }
    } else {
        for (int i = 0; i < n; i++) tmp[i] = np_interp(s->timesteps[i], train_sigmas, N);
    }
    for (int i = 0; i < n; i++) s->sigmas[i] = (float)tmp[i];
    s->sigmas[n] = 0.0f;
    s->init_noise_sigma = 1.0f;
}

it_status it_sampler_init(it_err *err, it_sampler *s, const it_schedule_config *cfg,
                          const it_sampler_opts *opts, int n_steps, size_t n_elems)
{
    memset(s, 0, sizeof *s);
    IT_TRY(check_opts(err, cfg, opts, n_steps));
    it_schedule_config rc = *cfg;
    if (rc.spacing == IT_SPACING_AUTO)
        rc.spacing = opts->kind == IT_SAMPLER_DDIM ? IT_SPACING_LEADING : IT_SPACING_LINSPACE;
    cfg = &rc;
    IT_TRY(it_schedule_init(err, &s->sched, cfg));
    s->opts = *opts;
    s->n_elems = n_elems;
    int N = cfg->num_train_timesteps;
    s->timesteps = it_malloc((size_t)(n_steps + 1) * sizeof(double));
    float *train_sigmas = it_malloc((size_t)N * 2 * sizeof(float));
    double *tmp = it_malloc((size_t)(n_steps + 1) * sizeof(double));
    int sigma_based = opts->kind != IT_SAMPLER_DDIM;
    if (sigma_based) s->sigmas = it_malloc((size_t)(n_steps + 2) * sizeof(float));
    if (opts->kind == IT_SAMPLER_DPMPP_2M) s->prev_x0 = it_malloc((n_elems ? n_elems : 1) * sizeof(float));
    if (!s->timesteps || !train_sigmas || !tmp || (sigma_based && !s->sigmas) ||
        (opts->kind == IT_SAMPLER_DPMPP_2M && !s->prev_x0)) {
        it_free(train_sigmas);
        it_free(tmp);
        it_sampler_free(s);
        return it_err_set(err, IT_ERR_NOMEM, "sampler: out of memory");
    }
    float *log_sigmas = train_sigmas + N;
    for (int t = 0; t < N; t++) {
        train_sigmas[t] = it_schedule_sigma(&s->sched, t);
        log_sigmas[t] = logf(train_sigmas[t]);
    }
    switch (opts->kind) {
    case IT_SAMPLER_DDIM:
        s->n_steps = ddim_timesteps(cfg, n_steps, s->timesteps);
        s->init_noise_sigma = 1.0f;
        break;
    case IT_SAMPLER_EULER:
    case IT_SAMPLER_EULER_A:
        s->n_steps = euler_timesteps(cfg, n_steps, s->timesteps);
        euler_sigmas(s, train_sigmas, log_sigmas, tmp);
        break;
    case IT_SAMPLER_DPMPP_2M:
        s->n_steps = dpm_timesteps(cfg, n_steps, s->timesteps);
        dpm_sigmas(s, train_sigmas, log_sigmas, tmp);
        break;
    }
    it_free(train_sigmas);
    it_free(tmp);
    /* A large steps_offset pushes "leading" timesteps past the schedule
     * (diffusers then indexes out of range); refuse it. */
    for (int i = 0; i < s->n_steps; i++)
        if (!(s->timesteps[i] >= 0 && s->timesteps[i] <= N - 1)) {
            double bad = s->timesteps[i];
            it_sampler_free(s);
            return it_err_set(err, IT_ERR_ARG,
                              "sampler: timestep %g of %d steps outside 0..%d (steps_offset %d too large)",
                              bad, n_steps, N - 1, cfg->steps_offset);
        }
    /* DDIM's step size is num_train_timesteps // num_inference_steps as the
     * caller asked for it, whatever the spacing produced. */
    s->ddim_stride = N / n_steps;
    return IT_OK;
}

void it_sampler_free(it_sampler *s)
{
    it_schedule_free(&s->sched);
    it_free(s->timesteps);
    it_free(s->sigmas);
    it_free(s->prev_x0);
    memset(s, 0, sizeof *s);
}

double it_sampler_timestep(const it_sampler *s, int i)
{
    IT_ASSERT(i >= 0 && i < s->n_steps);
    return s->timesteps[i];
}

it_status it_sampler_set_strength(it_err *err, it_sampler *s, double strength)
{
    if (!(strength > 0 && strength <= 1))
        return it_err_set(err, IT_ERR_ARG, "strength %g not in (0, 1]", strength);
    if (s->step_index != s->begin_index)
        return it_err_set(err, IT_ERR_STATE, "sampler: strength set after the first step");
    int n = s->n_steps;
    int init = (int)((double)n * strength);
    if (init > n) init = n;
    int t_start = n - init > 0 ? n - init : 0;
    if (n - t_start < 1)
        return it_err_set(err, IT_ERR_ARG,
                          "strength %g with %d steps leaves no denoising step (need steps * "
                          "strength >= 1)",
                          strength, n);
    s->begin_index = s->step_index = t_start;
    return IT_OK;
}

int it_sampler_needs_noise(const it_sampler *s)
{
    return s->opts.kind == IT_SAMPLER_EULER_A || (s->opts.kind == IT_SAMPLER_DDIM && s->opts.eta > 0);
}

void it_sampler_scale_input(const it_sampler *s, float *out, const float *in)
{
    size_t n = s->n_elems;
    if (s->opts.kind == IT_SAMPLER_EULER || s->opts.kind == IT_SAMPLER_EULER_A) {
        float sigma = s->sigmas[s->step_index];
        float d = sqrtf(sigma * sigma + 1.0f);
        for (size_t i = 0; i < n; i++) out[i] = in[i] / d;
    } else if (out != in) {
        memcpy(out, in, n * sizeof(float));
    }
}

/* ------------------------------------------------------------ steps */

static void ddim_step(it_sampler *s, float *x, const float *m, const float *noise)
{
    const it_schedule_config *c = &s->sched.cfg;
    const float *ac = s->sched.alphas_cumprod;
    int t = (int)s->timesteps[s->step_index];
    int prev_t = t - s->ddim_stride;
    float ac_t = ac[t];
    float ac_prev = prev_t >= 0 ? ac[prev_t] : (c->set_alpha_to_one ? 1.0f : ac[0]);
    float beta_t = 1.0f - ac_t, beta_prev = 1.0f - ac_prev;
    float sa = sqrtf(ac_t), sb = sqrtf(beta_t);
    float variance = (beta_prev / beta_t) * (1.0f - ac_t / ac_prev);
    float std = s->opts.eta * sqrtf(variance);
    float dir_coef = sqrtf(1.0f - ac_prev - std * std);
    float sa_prev = sqrtf(ac_prev);
    float lim = (float)c->clip_sample_range;
    for (size_t i = 0; i < s->n_elems; i++) {
        float x0, eps;
        switch (c->prediction) {
        case IT_PREDICT_EPSILON:
            x0 = (x[i] - sb * m[i]) / sa;
            eps = m[i];
            break;
        case IT_PREDICT_V:
            x0 = sa * x[i] - sb * m[i];
            eps = sa * m[i] + sb * x[i];
            break;
        default:
            x0 = m[i];
            eps = (x[i] - sa * x0) / sb;
            break;
        }
        if (c->clip_sample) x0 = x0 < -lim ? -lim : (x0 > lim ? lim : x0);
        float prev = sa_prev * x0 + dir_coef * eps;
        if (s->opts.eta > 0) prev = prev + std * noise[i];
        x[i] = prev;
    }
}

/* x0 from a k-diffusion style model output at noise level sigma (Euler). */
static inline float k_x0(it_pred_type p, float x, float m, float sigma, float c_out, float s2p1)
{
    switch (p) {
    case IT_PREDICT_EPSILON: return x - sigma * m;
    case IT_PREDICT_V: return m * c_out + x / s2p1;
    default: return m;
    }
}

static void euler_step(it_sampler *s, float *x, const float *m, const float *noise)
{
    it_pred_type p = s->sched.cfg.prediction;
    float sigma = s->sigmas[s->step_index], next = s->sigmas[s->step_index + 1];
    float s2p1 = sigma * sigma + 1.0f;
    float c_out = -sigma / sqrtf(s2p1);
    float dt, up = 0;
    if (s->opts.kind == IT_SAMPLER_EULER_A) {
        up = sqrtf(next * next * (sigma * sigma - next * next) / (sigma * sigma));
        float down = sqrtf(next * next - up * up);
        dt = down - sigma;
    } else {
        dt = next - sigma;
    }
    for (size_t i = 0; i < s->n_elems; i++) {
        float x0 = k_x0(p, x[i], m[i], sigma, c_out, s2p1);
        float d = (x[i] - x0) / sigma;
        float prev = x[i] + d * dt;
        if (s->opts.kind == IT_SAMPLER_EULER_A) prev = prev + noise[i] * up;
        x[i] = prev;
    }
}

/* DPM-Solver++ works with alpha_t = 1/sqrt(sigma^2+1), sigma_t = sigma*alpha_t
 * and lambda = log(alpha_t) - log(sigma_t) (float32, as diffusers). */
typedef struct dpm_point {
    float alpha, sigma, lambda;
} dpm_point;

static dpm_point dpm_at(float sigma)
{
    dpm_point d;
    d.alpha = 1.0f / sqrtf(sigma * sigma + 1.0f);
    d.sigma = sigma * d.alpha;
    d.lambda = logf(d.alpha) - logf(d.sigma);
    return d;
}

static void dpm_step(it_sampler *s, float *x, const float *m)
{
    int si = s->step_index;
    it_pred_type p = s->sched.cfg.prediction;
    dpm_point cur = dpm_at(s->sigmas[si]), nxt = dpm_at(s->sigmas[si + 1]);
    /* final_sigmas_type "zero": the last step is always first order. */
    int first_order = s->lower_order_nums < 1 || si == s->n_steps - 1;
    float h = nxt.lambda - cur.lambda;
    float ratio = nxt.sigma / cur.sigma;
    float k = nxt.alpha * (expf(-h) - 1.0f);
    float inv_r0 = 0;
    if (!first_order) {
        dpm_point prv = dpm_at(s->sigmas[si - 1]);
        float r0 = (cur.lambda - prv.lambda) / h;
        inv_r0 = 1.0f / r0;
    }
    for (size_t i = 0; i < s->n_elems; i++) {
        float x0;
        switch (p) {
        case IT_PREDICT_EPSILON: x0 = (x[i] - cur.sigma * m[i]) / cur.alpha; break;
        case IT_PREDICT_V: x0 = cur.alpha * x[i] - cur.sigma * m[i]; break;
        default: x0 = m[i]; break;
        }
        float xt;
        if (first_order) {
            xt = ratio * x[i] - k * x0;
        } else {
            float d1 = inv_r0 * (x0 - s->prev_x0[i]);
            xt = ratio * x[i] - k * x0 - 0.5f * k * d1;
        }
        s->prev_x0[i] = x0;
        x[i] = xt;
    }
    if (s->lower_order_nums < 2) s->lower_order_nums++;
}

it_status it_sampler_step(it_err *err, it_sampler *s, float *x, const float *model_out,
                          const float *noise)
{
    if (s->step_index >= s->n_steps)
        return it_err_set(err, IT_ERR_STATE, "sampler: all %d steps are done", s->n_steps);
    if (it_sampler_needs_noise(s) && !noise)
        return it_err_set(err, IT_ERR_ARG, "sampler: %s needs a noise array per step",
                          it_sampler_name(&s->opts));
    switch (s->opts.kind) {
    case IT_SAMPLER_DDIM: ddim_step(s, x, model_out, noise); break;
    case IT_SAMPLER_EULER:
    case IT_SAMPLER_EULER_A: euler_step(s, x, model_out, noise); break;
    case IT_SAMPLER_DPMPP_2M: dpm_step(s, x, model_out); break;
    }
    s->step_index++;
    return IT_OK;
}

void it_sampler_add_noise(const it_sampler *s, float *out, const float *x0, const float *noise,
                          size_t n)
{
    if (s->step_index >= s->n_steps) {
        /* after the last step there is no noise left: the clean latents */
        if (out != x0) memcpy(out, x0, n * sizeof(float));
        return;
    }
    float a, b;
    switch (s->opts.kind) {
    case IT_SAMPLER_DDIM: {
        float ac = s->sched.alphas_cumprod[(int)s->timesteps[s->step_index]];
        a = sqrtf(ac);
        b = sqrtf(1.0f - ac);
        break;
    }
    case IT_SAMPLER_DPMPP_2M: {
        dpm_point d = dpm_at(s->sigmas[s->step_index]);
        a = d.alpha;
        b = d.sigma;
        break;
    }
    default:
        a = 1.0f;
        b = s->sigmas[s->step_index];
        break;
    }
    if (a == 1.0f)
        for (size_t i = 0; i < n; i++) out[i] = x0[i] + noise[i] * b;
    else
        for (size_t i = 0; i < n; i++) out[i] = a * x0[i] + b * noise[i];
}

/* ------------------------------------------------------------ loop */

it_status it_sampler_run(it_err *err, it_sampler *s, float *x, const it_sampler_loop *loop)
{
    size_t n = s->n_elems;
    int need_noise = it_sampler_needs_noise(s);
    if (need_noise && !loop->noise)
        return it_err_set(err, IT_ERR_ARG, "sampler: %s needs a noise source",
                          it_sampler_name(&s->opts));
    float *buf = it_malloc_aligned((need_noise ? 3 : 2) * n * sizeof(float) + 64);
    if (!buf) return it_err_set(err, IT_ERR_NOMEM, "sampler: out of memory for %zu latents", n);
    float *in = buf, *out = buf + n, *noise = need_noise ? buf + 2 * n : NULL;
    it_status st = IT_OK;
    while (s->step_index < s->n_steps) {
        int i = s->step_index;
        it_sampler_scale_input(s, in, x);
        if ((st = loop->denoise(loop->denoise_user, err, out, in, s->timesteps[i], i))) break;
        if (need_noise && (st = loop->noise(loop->noise_user, err, noise, n, i))) break;
        if ((st = it_sampler_step(err, s, x, out, noise))) break;
        if (loop->after_step && (st = loop->after_step(loop->after_user, err, s, x, i))) break;
    }
    it_free_aligned(buf);
    return st;
}
