/* test_diffusion.c: schedules and samplers against diffusers 0.42.
 *
 * tests/fixtures/diffusion/samplers.{json,safetensors} come from
 * tools/gen_sampler_fixtures.py: diffusers' own scheduler classes driven as
 * the Stable Diffusion pipelines drive them, with the analytic model
 * model(x, t) = 0.1 x + 0.05 sin(t / 100) that we recompute here, and every
 * random array (initial noise, img2img noise, per-step ancestral noise)
 * stored so that both sides consume the same numbers. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "diffusion/sampler.h"
#include "diffusion/schedule.h"
#include "tensor/safetensors.h"
#include "test.h"

/* Tolerances: every intermediate latent within 1e-5 relative to the
 * tensor's scale, max|ours - ref| / max|ref| (per element relative error
 * is meaningless for elements near zero in a tensor of magnitude 20: float32
 * rounding of the large terms alone is 2e-6 absolute); timesteps and sigmas
 * to float rounding. */
#define LAT_TOL 1e-5
#define SIG_TOL 2e-6

static double scaled_err(const float *a, const float *ref, size_t n)
{
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)ref[i]));
    return it_test_max_abs_diff(a, ref, n) / fmax(mx, 1e-6);
}

typedef struct dfx {
    json_t *root;
    it_safetensors *st;
    size_t shape_n;   /* floats of one latent batch */
    float *buf;       /* scratch for arrays */
} dfx;

static int dfx_open(it_test_ctx *t, dfx *f)
{
    memset(f, 0, sizeof *f);
    json_error_t je;
    f->root = json_load_file(it_test_fixture(t, "diffusion/samplers.json"), 0, &je);
    if (!f->root) {
        it_test_fail(t, __FILE__, __LINE__, "samplers.json: %s", je.text);
        return 0;
    }
    it_err e;
    if (it_safetensors_open(&e, &f->st, it_test_fixture(t, "diffusion/samplers.safetensors"))) {
        it_test_fail(t, __FILE__, __LINE__, "%s", e.msg);
        json_decref(f->root);
        return 0;
    }
    f->shape_n = 1;
    json_t *v;
    size_t i;
    json_array_foreach(json_object_get(f->root, "shape"), i, v) f->shape_n *= (size_t)json_integer_value(v);
    return 1;
}

static void dfx_close(dfx *f)
{
    it_safetensors_close(f->st);
    json_decref(f->root);
}

/* Array "<case>/<name>" as f32, expected numel n (0 = any); it_free it. */
static float *dfx_get(it_test_ctx *t, dfx *f, const char *cs, const char *name, size_t n)
{
    char key[256];
    snprintf(key, sizeof key, "%s/%s", cs, name);
    const it_safetensors_tensor *ti = it_safetensors_find(f->st, key);
    if (!ti || (n && ti->numel != n)) {
        it_test_fail(t, __FILE__, __LINE__, "fixture array %s missing or numel %llu != %zu", key,
                     ti ? (unsigned long long)ti->numel : 0ull, n);
        return NULL;
    }
    float *a = it_malloc(ti->numel * sizeof(float));
    it_err e;
    if (!a || it_safetensors_load_f32(&e, f->st, ti, a, ti->numel)) {
        it_free(a);
        it_test_fail(t, __FILE__, __LINE__, "load %s", key);
        return NULL;
    }
    return a;
}

static void case_config(json_t *jc, it_schedule_config *c, it_sampler_opts *o)
{
    char *txt = json_dumps(json_object_get(jc, "config"), 0);
    it_err e;
    /* The fixture's config is a diffusers config dict: parse it the way a
     * scheduler_config.json is parsed (DDIM defaults for absent keys). */
    it_status st = it_schedule_config_parse(&e, c, txt, "fixture");
    IT_ASSERT(st == IT_OK);
    free(txt);
    if (o) {
        const char *name = json_string_value(json_object_get(json_object_get(jc, "config"), "sampler"));
        IT_ASSERT(it_sampler_parse(&e, o, name) == IT_OK);
        o->eta = (float)json_number_value(json_object_get(json_object_get(jc, "config"), "eta"));
    }
}

/* The analytic model of the generator, in float32 like torch. */
static it_status model(void *user, it_err *err, float *out, const float *x, double t, int i)
{
    size_t n = *(size_t *)user;
    float c = (float)(0.05 * sin(t / 100.0));
    for (size_t k = 0; k < n; k++) out[k] = 0.1f * x[k] + c;
    return IT_OK;
}

typedef struct feed {
    const float *noise; /* (steps, n) */
    size_t n;
} feed;

static it_status feed_noise(void *user, it_err *err, float *out, size_t n, int i)
{
    feed *f = user;
    memcpy(out, f->noise + (size_t)i * f->n, n * sizeof(float));
    return IT_OK;
}

/* Per-sampler worst latent error, printed at the end of the run test. */
typedef struct worst {
    char name[32];
    double err;
} worst;

static void note_worst(worst *w, int *nw, const char *name, double err)
{
    for (int i = 0; i < *nw; i++)
        if (strcmp(w[i].name, name) == 0) {
            if (err > w[i].err) w[i].err = err;
            return;
        }
    snprintf(w[*nw].name, sizeof w[*nw].name, "%s", name);
    w[(*nw)++].err = err;
}

static void check_schedule(it_test_ctx *t, dfx *f, json_t *jc, const it_sampler *s)
{
    const char *cs = json_string_value(json_object_get(jc, "name"));
    int n = (int)json_integer_value(json_object_get(jc, "n_steps"));
    if (s->n_steps != n) {
        it_test_fail(t, __FILE__, __LINE__, "%s: %d steps, diffusers %d", cs, s->n_steps, n);
        return;
    }
    float *ts = dfx_get(t, f, cs, "timesteps", (size_t)n);
    if (ts) {
        for (int i = 0; i < n; i++)
            if (fabs(s->timesteps[i] - ts[i]) > 1e-6 * fmax(1, fabs(ts[i]))) {
                it_test_fail(t, __FILE__, __LINE__, "%s: timestep %d: %.9g vs diffusers %.9g", cs,
                             i, s->timesteps[i], (double)ts[i]);
                break;
            }
        it_free(ts);
    }
    if (s->sigmas) {
        float *sg = dfx_get(t, f, cs, "sigmas", (size_t)n + 1);
        if (sg) {
            double e = it_test_max_rel_diff(s->sigmas, sg, (size_t)n + 1, 1e-6);
            if (e > SIG_TOL) it_test_fail(t, __FILE__, __LINE__, "%s: sigmas rel err %.3g", cs, e);
            it_free(sg);
        }
    }
    json_t *ins = json_object_get(jc, "init_noise_sigma");
    if (ins) {
        double want = json_number_value(ins);
        if (fabs(s->init_noise_sigma - want) > SIG_TOL * want)
            it_test_fail(t, __FILE__, __LINE__, "%s: init_noise_sigma %.9g vs %.9g", cs,
                         (double)s->init_noise_sigma, want);
    }
}

IT_TEST(diffusion_betas_alphas_cumprod) {
    dfx f;
    IT_REQUIRE(dfx_open(t, &f));
    size_t i;
    json_t *jc;
    int seen = 0;
    json_array_foreach(json_object_get(f.root, "cases"), i, jc) {
        if (strcmp(json_string_value(json_object_get(jc, "kind")), "betas")) continue;
        const char *cs = json_string_value(json_object_get(jc, "name"));
        it_schedule_config c;
        case_config(jc, &c, NULL);
        it_schedule s;
        it_err e;
        IT_REQUIRE_OK(it_schedule_init(&e, &s, &c), &e);
        float *b = dfx_get(t, &f, cs, "betas", 1000), *ac = dfx_get(t, &f, cs, "alphas_cumprod", 1000);
        if (b && ac) {
            double eb = it_test_max_rel_diff(s.betas, b, 1000, 1e-12);
            double ea = it_test_max_rel_diff(s.alphas_cumprod, ac, 1000, 1e-12);
            if (eb > 5e-7 || ea > 5e-7)
                it_test_fail(t, __FILE__, __LINE__, "%s: betas rel %.3g, alphas_cumprod rel %.3g",
                             cs, eb, ea);
        }
        it_free(b);
        it_free(ac);
        it_schedule_free(&s);
        seen++;
    }
    IT_CHECK_INT(seen, 3);
    dfx_close(&f);
}

IT_TEST(diffusion_timestep_spacings) {
    dfx f;
    IT_REQUIRE(dfx_open(t, &f));
    size_t i;
    json_t *jc;
    int seen = 0;
    json_array_foreach(json_object_get(f.root, "cases"), i, jc) {
        if (strcmp(json_string_value(json_object_get(jc, "kind")), "schedule")) continue;
        it_schedule_config c;
        it_sampler_opts o;
        case_config(jc, &c, &o);
        it_sampler s;
        it_err e;
        int steps = (int)json_integer_value(json_object_get(jc, "steps"));
        IT_REQUIRE_OK(it_sampler_init(&e, &s, &c, &o, steps, 4), &e);
        check_schedule(t, &f, jc, &s);
        it_sampler_free(&s);
        seen++;
    }
    IT_CHECK_INT(seen, 6 * 3 * 5);
    dfx_close(&f);
}

/* Runs one "run" or "img2img" case; returns the worst relative error over
 * every intermediate latent. */
static double run_one(it_test_ctx *t, dfx *f, json_t *jc)
{
    const char *cs = json_string_value(json_object_get(jc, "name"));
    int img2img = strcmp(json_string_value(json_object_get(jc, "kind")), "img2img") == 0;
    it_schedule_config c;
    it_sampler_opts o;
    case_config(jc, &c, &o);
    int steps = (int)json_integer_value(json_object_get(jc, "steps"));
    size_t n = f->shape_n;
    it_sampler s;
    it_err e;
    if (it_sampler_init(&e, &s, &c, &o, steps, n)) {
        it_test_fail(t, __FILE__, __LINE__, "%s: %s", cs, e.msg);
        return INFINITY;
    }
    if (!img2img) check_schedule(t, f, jc, &s);
    double worst_err = 0;
    int run = img2img ? 0 : s.n_steps;
    float *x = it_malloc(n * sizeof(float)), *tmp = it_malloc(n * sizeof(float));
    float *image = NULL, *noise = NULL, *mask = NULL;
    float *step_noise = dfx_get(t, f, cs, "step_noise", 0);
    float *lat = NULL;
    if (img2img) {
        double strength = json_number_value(json_object_get(jc, "strength"));
        if (it_sampler_set_strength(&e, &s, strength)) {
            it_test_fail(t, __FILE__, __LINE__, "%s: %s", cs, e.msg);
            goto out;
        }
        IT_CHECK_INT(s.begin_index, json_integer_value(json_object_get(jc, "begin_index")));
        run = s.n_steps - s.begin_index;
        image = dfx_get(t, f, cs, "image", n);
        noise = dfx_get(t, f, cs, "noise", n);
        mask = dfx_get(t, f, cs, "mask", n / 2); /* one channel of two */
        if (!image || !noise || !mask) goto out;
        it_sampler_add_noise(&s, x, image, noise, n);
    } else {
        float *n0 = dfx_get(t, f, cs, "noise0", n);
        if (!n0) goto out;
        for (size_t k = 0; k < n; k++) x[k] = n0[k] * s.init_noise_sigma;
        it_free(n0);
    }
    lat = dfx_get(t, f, cs, "latents", (size_t)(run + 1) * n);
    if (!lat || !step_noise) goto out;
    worst_err = scaled_err(x, lat, n);
    int blend = json_is_true(json_object_get(jc, "blend"));
    size_t per_item = n / 2, mask_item = per_item / 2; /* shape (2, 2, H, W), mask (2, 1, H, W) */
    for (int k = 0; k < run; k++) {
        int i = s.step_index;
        float *out = it_malloc(n * sizeof(float));
        it_sampler_scale_input(&s, tmp, x);
        model(&n, &e, out, tmp, it_sampler_timestep(&s, i), i);
        it_status st = it_sampler_step(&e, &s, x, out, step_noise + (size_t)k * n);
        it_free(out);
        if (st) {
            it_test_fail(t, __FILE__, __LINE__, "%s: %s", cs, e.msg);
            break;
        }
        if (blend) {
            /* (1 - mask) * noised image + mask * latents, channel-broadcast */
            it_sampler_add_noise(&s, tmp, image, noise, n);
            for (size_t q = 0; q < n; q++) {
                size_t b = q / per_item, p = q % mask_item;
                float mv = mask[b * mask_item + p];
                x[q] = (1 - mv) * tmp[q] + mv * x[q];
            }
        }
        double err = scaled_err(x, lat + (size_t)(k + 1) * n, n);
        if (err > worst_err) worst_err = err;
    }
out:
    it_free(x);
    it_free(tmp);
    it_free(image);
    it_free(noise);
    it_free(mask);
    it_free(step_noise);
    it_free(lat);
    it_sampler_free(&s);
    return worst_err;
}

static void run_kind(it_test_ctx *t, const char *kind, int expect)
{
    dfx f;
    IT_REQUIRE(dfx_open(t, &f));
    worst w[16];
    int nw = 0, seen = 0;
    size_t i;
    json_t *jc;
    json_array_foreach(json_object_get(f.root, "cases"), i, jc) {
        if (strcmp(json_string_value(json_object_get(jc, "kind")), kind)) continue;
        const char *cs = json_string_value(json_object_get(jc, "name"));
        double err = run_one(t, &f, jc);
        if (!(err <= LAT_TOL))
            it_test_fail(t, __FILE__, __LINE__, "%s: latents rel err %.3g > %g", cs, err, LAT_TOL);
        note_worst(w, &nw, json_string_value(json_object_get(json_object_get(jc, "config"), "sampler")),
                   err);
        seen++;
    }
    IT_CHECK_INT(seen, expect);
    for (int k = 0; k < nw; k++) printf("    %s %-15s max rel err %.2e\n", kind, w[k].name, w[k].err);
    dfx_close(&f);
}

IT_TEST(diffusion_samplers_vs_diffusers) { run_kind(t, "run", 6 * 3 * 2 + 11); }

IT_TEST(diffusion_img2img_inpaint_blend_vs_diffusers) { run_kind(t, "img2img", 6 * 3); }

IT_TEST(diffusion_training_add_noise_velocity) {
    dfx f;
    IT_REQUIRE(dfx_open(t, &f));
    it_schedule_config c;
    it_schedule_config_sd(&c);
    it_schedule s;
    it_err e;
    IT_REQUIRE_OK(it_schedule_init(&e, &s, &c), &e);
    float *x0 = dfx_get(t, &f, "train", "x0", 48), *noise = dfx_get(t, &f, "train", "noise", 48);
    float *an = dfx_get(t, &f, "train", "add_noise", 48), *vel = dfx_get(t, &f, "train", "velocity", 48);
    float out[48];
    int ts[3] = {0, 500, 999};
    if (x0 && noise && an && vel) {
        IT_CHECK_OK(it_schedule_add_noise(&e, &s, out, x0, noise, ts, 3, 16), &e);
        IT_CHECK(scaled_err(out, an, 48) < 1e-6);
        IT_CHECK_OK(it_schedule_velocity(&e, &s, out, x0, noise, ts, 3, 16), &e);
        IT_CHECK(scaled_err(out, vel, 48) < 1e-6);
        /* the training target follows the prediction type */
        s.cfg.prediction = IT_PREDICT_V;
        IT_CHECK_OK(it_schedule_target(&e, &s, out, x0, noise, ts, 3, 16), &e);
        IT_CHECK(scaled_err(out, vel, 48) < 1e-6);
        s.cfg.prediction = IT_PREDICT_EPSILON;
        IT_CHECK_OK(it_schedule_target(&e, &s, out, x0, noise, ts, 3, 16), &e);
        IT_CHECK(memcmp(out, noise, sizeof out) == 0);
        int bad[3] = {0, 1000, 3};
        IT_CHECK_INT(it_schedule_add_noise(&e, &s, out, x0, noise, bad, 3, 16), IT_ERR_RANGE);
        IT_CHECK_CONTAINS(e.msg, "timestep 1000 of item 1 not in 0..999");
    }
    IT_CHECK(fabs(it_schedule_snr(&s, 0) / (0.99915 / 0.00085) - 1) < 1e-3);
    it_free(x0);
    it_free(noise);
    it_free(an);
    it_free(vel);
    it_schedule_free(&s);
    dfx_close(&f);
}

/* scheduler_config.json parsing: a table of inputs and expected results. */
IT_TEST(diffusion_config_parse) {
    static const struct {
        const char *json;
        it_status st;
        const char *msg;          /* substring of the error, or NULL */
        int spacing, pred, offset, alpha_one, clip;
    } cases[] = {
        /* SD 1.5's PNDM config */
        {"{\"_class_name\":\"PNDMScheduler\",\"beta_end\":0.012,\"beta_schedule\":\"scaled_linear\","
         "\"beta_start\":0.00085,\"clip_sample\":false,\"num_train_timesteps\":1000,"
         "\"set_alpha_to_one\":false,\"skip_prk_steps\":true,\"steps_offset\":1,"
         "\"trained_betas\":null}",
         IT_OK, NULL, IT_SPACING_AUTO, IT_PREDICT_EPSILON, 1, 0, 0},
        /* SD 2.x v-prediction with trailing spacing */
        {"{\"_class_name\":\"DDIMScheduler\",\"prediction_type\":\"v_prediction\","
         "\"timestep_spacing\":\"trailing\"}",
         IT_OK, NULL, IT_SPACING_TRAILING, IT_PREDICT_V, 0, 1, 1},
        /* absent keys: the sampler's defaults, whatever the class */
        {"{\"_class_name\":\"EulerDiscreteScheduler\"}", IT_OK, NULL, IT_SPACING_AUTO,
         IT_PREDICT_EPSILON, 0, 1, 1},
        {"{\"prediction_type\":\"flow\"}", IT_ERR_UNSUPPORTED, "prediction_type \"flow\"", 0, 0, 0, 0, 0},
        {"{\"beta_schedule\":\"sigmoid\"}", IT_ERR_UNSUPPORTED, "beta_schedule \"sigmoid\"", 0, 0, 0, 0, 0},
        {"{\"trained_betas\":[0.1,0.2]}", IT_ERR_UNSUPPORTED, "trained_betas", 0, 0, 0, 0, 0},
        {"{\"rescale_betas_zero_snr\":true}", IT_ERR_UNSUPPORTED, "rescale_betas_zero_snr", 0, 0, 0, 0, 0},
        {"{\"steps_offset\":\"1\"}", IT_ERR_FORMAT, "steps_offset is not a number", 0, 0, 0, 0, 0},
        {"{\"steps_offset\":1.5}", IT_ERR_FORMAT, "steps_offset 1.5 out of range", 0, 0, 0, 0, 0},
        {"{\"num_train_timesteps\":0}", IT_ERR_FORMAT, "num_train_timesteps 0 out of range", 0, 0, 0, 0, 0},
        {"{\"clip_sample\":1}", IT_ERR_FORMAT, "clip_sample is not true/false", 0, 0, 0, 0, 0},
        {"[1,2]", IT_ERR_FORMAT, "not a JSON object", 0, 0, 0, 0, 0},
        {"{\"a\":", IT_ERR_FORMAT, "cfg.json: line 1", 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        it_schedule_config c;
        it_err e;
        it_err_clear(&e);
        it_status st = it_schedule_config_parse(&e, &c, cases[i].json, "cfg.json");
        IT_CHECK_INT(st, cases[i].st);
        if (cases[i].msg) {
            IT_CHECK_CONTAINS(e.msg, cases[i].msg);
            continue;
        }
        if (st) continue;
        IT_CHECK_INT(c.spacing, cases[i].spacing);
        IT_CHECK_INT(c.prediction, cases[i].pred);
        IT_CHECK_INT(c.steps_offset, cases[i].offset);
        IT_CHECK_INT(c.set_alpha_to_one, cases[i].alpha_one);
        IT_CHECK_INT(c.clip_sample, cases[i].clip);
    }
}

IT_TEST(diffusion_sampler_options_and_errors) {
    static const struct {
        const char *name;
        it_status st;
        it_sampler_kind kind;
        int karras;
    } names[] = {
        {"ddim", IT_OK, IT_SAMPLER_DDIM, 0},          {"euler", IT_OK, IT_SAMPLER_EULER, 0},
        {"euler_a", IT_OK, IT_SAMPLER_EULER_A, 0},    {"dpm++2m", IT_OK, IT_SAMPLER_DPMPP_2M, 0},
        {"dpm++2m_karras", IT_OK, IT_SAMPLER_DPMPP_2M, 1},
        {"dpmpp_2m_karras", IT_OK, IT_SAMPLER_DPMPP_2M, 1},
        {"euler_karras", IT_OK, IT_SAMPLER_EULER, 1}, {"plms", IT_ERR_ARG, 0, 0},
        {"", IT_ERR_ARG, 0, 0},
    };
    it_err e;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        it_sampler_opts o;
        IT_CHECK_INT(it_sampler_parse(&e, &o, names[i].name), names[i].st);
        if (names[i].st) {
            IT_CHECK_CONTAINS(e.msg, "unknown sampler");
            continue;
        }
        IT_CHECK_INT(o.kind, names[i].kind);
        IT_CHECK_INT(o.karras, names[i].karras);
    }
    it_schedule_config c;
    it_schedule_config_sd(&c);
    it_sampler s;
    it_sampler_opts o = {IT_SAMPLER_DDIM, 1, 0};
    IT_CHECK_INT(it_sampler_init(&e, &s, &c, &o, 10, 4), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "Karras sigmas need euler or dpm++2m");
    o = (it_sampler_opts){IT_SAMPLER_EULER, 0, 0.5f};
    IT_CHECK_INT(it_sampler_init(&e, &s, &c, &o, 10, 4), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "eta applies to ddim only");
    o = (it_sampler_opts){IT_SAMPLER_EULER, 0, 0};
    IT_CHECK_INT(it_sampler_init(&e, &s, &c, &o, 0, 4), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "0 steps not in 1..1000");
    IT_CHECK_INT(it_sampler_init(&e, &s, &c, &o, 1001, 4), IT_ERR_ARG);

    /* betas so large that alphas_cumprod underflows (fuzz finding) */
    it_schedule_config hot = c;
    hot.beta_schedule = IT_BETAS_LINEAR;
    hot.beta_end = 0.712;
    IT_CHECK_INT(it_sampler_init(&e, &s, &hot, &o, 10, 4), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "alphas_cumprod reaches 0 at t=999");

    /* an offset that pushes leading timesteps past the schedule */
    it_schedule_config big = c;
    big.steps_offset = 900;
    o = (it_sampler_opts){IT_SAMPLER_DDIM, 0, 0};
    IT_CHECK_INT(it_sampler_init(&e, &s, &big, &o, 4, 4), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "timestep 1650 of 4 steps outside 0..999 (steps_offset 900 too large)");
    o = (it_sampler_opts){IT_SAMPLER_EULER, 0, 0};

    /* strength: too small leaves no step; out of range; after a step */
    IT_REQUIRE_OK(it_sampler_init(&e, &s, &c, &o, 4, 4), &e);
    IT_CHECK_INT(it_sampler_set_strength(&e, &s, 0.2), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "leaves no denoising step");
    IT_CHECK_INT(it_sampler_set_strength(&e, &s, 1.5), IT_ERR_ARG);
    IT_CHECK_OK(it_sampler_set_strength(&e, &s, 0.5), &e);
    IT_CHECK_INT(s.begin_index, 2);
    float x[4] = {1, 2, 3, 4}, m[4] = {0};
    IT_CHECK_OK(it_sampler_step(&e, &s, x, m, NULL), &e);
    IT_CHECK_INT(it_sampler_set_strength(&e, &s, 1.0), IT_ERR_STATE);
    IT_CHECK_OK(it_sampler_step(&e, &s, x, m, NULL), &e);
    IT_CHECK_INT(it_sampler_step(&e, &s, x, m, NULL), IT_ERR_STATE);
    IT_CHECK_CONTAINS(e.msg, "all 4 steps are done");
    it_sampler_free(&s);

    /* Euler ancestral refuses to step without noise */
    o = (it_sampler_opts){IT_SAMPLER_EULER_A, 0, 0};
    IT_REQUIRE_OK(it_sampler_init(&e, &s, &c, &o, 4, 4), &e);
    IT_CHECK(it_sampler_needs_noise(&s));
    IT_CHECK_INT(it_sampler_step(&e, &s, x, m, NULL), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "euler_a needs a noise array");
    it_sampler_loop loop = {model, &(size_t){4}, NULL, NULL, NULL, NULL};
    IT_CHECK_INT(it_sampler_run(&e, &s, x, &loop), IT_ERR_ARG);
    it_sampler_free(&s);
}

/* Out of memory anywhere in init returns IT_ERR_NOMEM and leaks nothing. */
IT_TEST(diffusion_sampler_oom) {
    it_schedule_config c;
    it_schedule_config_sd(&c);
    it_sampler_opts o = {IT_SAMPLER_DPMPP_2M, 1, 0};
    for (long k = 0; k < 8; k++) {
        it_sampler s;
        it_err e;
        it_mem_fail_after(k, 0);
        it_status st = it_sampler_init(&e, &s, &c, &o, 20, 64);
        it_mem_fail_after(-1, 0);
        if (st == IT_OK) {
            it_sampler_free(&s);
            break;
        }
        IT_CHECK_INT(st, IT_ERR_NOMEM);
    }
}

/* it_sampler_run (callbacks) gives exactly the manual loop of the parity
 * test: one Euler ancestral fixture case through the loop API. */
typedef struct after_count {
    int calls;
} after_count;

static it_status count_after(void *user, it_err *err, it_sampler *s, float *x, int i)
{
    ((after_count *)user)->calls++;
    return IT_OK;
}

IT_TEST(diffusion_sampler_run_loop) {
    dfx f;
    IT_REQUIRE(dfx_open(t, &f));
    size_t i;
    json_t *jc, *found = NULL;
    json_array_foreach(json_object_get(f.root, "cases"), i, jc)
        if (strcmp(json_string_value(json_object_get(jc, "name")), "run_euler_a_trailing_epsilon") == 0) found = jc;
    IT_REQUIRE(found);
    it_schedule_config c;
    it_sampler_opts o;
    case_config(found, &c, &o);
    size_t n = f.shape_n;
    it_sampler s;
    it_err e;
    IT_REQUIRE_OK(it_sampler_init(&e, &s, &c, &o, (int)json_integer_value(json_object_get(found, "steps")), n), &e);
    float *n0 = dfx_get(t, &f, "run_euler_a_trailing_epsilon", "noise0", n);
    float *sn = dfx_get(t, &f, "run_euler_a_trailing_epsilon", "step_noise", (size_t)s.n_steps * n);
    float *lat = dfx_get(t, &f, "run_euler_a_trailing_epsilon", "latents", (size_t)(s.n_steps + 1) * n);
    if (n0 && sn && lat) {
        for (size_t k = 0; k < n; k++) n0[k] *= s.init_noise_sigma;
        feed fd = {sn, n};
        after_count ac = {0};
        it_sampler_loop loop = {model, &n, feed_noise, &fd, count_after, &ac};
        IT_CHECK_OK(it_sampler_run(&e, &s, n0, &loop), &e);
        IT_CHECK_INT(ac.calls, s.n_steps);
        IT_CHECK(scaled_err(n0, lat + (size_t)s.n_steps * n, n) < LAT_TOL);
    }
    it_free(n0);
    it_free(sn);
    it_free(lat);
    it_sampler_free(&s);
    dfx_close(&f);
}
