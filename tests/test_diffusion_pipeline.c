/* test_diffusion_pipeline.c: whole generation runs against diffusers'
 * StableDiffusionPipeline / Img2Img / Inpaint pipelines, and the generate
 * command.
 *
 * tests/fixtures/diffusion/pipeline.{json,safetensors} come from
 * tools/gen_sampler_fixtures.py (part "pipeline"): the tiny random models of
 * tests/fixtures/sd/ (sd1: epsilon; sd2: v-prediction, linear projections;
 * inpaint: 9-channel UNet) run by diffusers in f32 from stored initial noise
 * (and stored per-step noise for Euler ancestral), VAE encodes taking the
 * posterior mean. We compare the final latents and the decoded pixels. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "diffusion/latent_ops.h"
#include "diffusion/pipeline.h"
#include "tensor/safetensors.h"
#include "test.h"

/* Normalised error bound for latents and pixels (the 1e-4). */
#define PIPE_TOL 1e-4

static double norm_err(const float *a, const float *ref, size_t n)
{
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)ref[i]));
    return it_test_max_abs_diff(a, ref, n) / fmax(mx, 1e-6);
}

static float *load_arr(it_test_ctx *t, it_safetensors *f, const char *cs, const char *name, size_t n)
{
    char key[256];
    snprintf(key, sizeof key, "%s/%s", cs, name);
    const it_safetensors_tensor *ti = it_safetensors_find(f, key);
    if (!ti || (n && ti->numel != n)) {
        it_test_fail(t, __FILE__, __LINE__, "fixture %s missing or wrong size", key);
        return NULL;
    }
    float *a = it_malloc(ti->numel * sizeof(float));
    it_err e;
    if (a && it_safetensors_load_f32(&e, f, ti, a, ti->numel) == IT_OK) return a;
    it_free(a);
    it_test_fail(t, __FILE__, __LINE__, "load %s", key);
    return NULL;
}

/* diffusers draws one noise per step actually run (img2img starts late),
 * so the k-th call gets the k-th stored array, whatever the step index. */
typedef struct feed {
    const float *noise;
    size_t n;
    int calls;
} feed;

static it_status feed_noise(void *user, it_err *err, float *out, size_t n, int i)
{
    feed *f = user;
    memcpy(out, f->noise + (size_t)f->calls++ * f->n, n * sizeof(float));
    return IT_OK;
}

typedef struct model_cache {
    char name[32];
    it_sd_model m;
    int ok;
} model_cache;

static it_sd_model *get_model(it_test_ctx *t, model_cache *mc, int *n_mc, const char *name)
{
    for (int i = 0; i < *n_mc; i++)
        if (strcmp(mc[i].name, name) == 0) return mc[i].ok ? &mc[i].m : NULL;
    model_cache *c = &mc[(*n_mc)++];
    snprintf(c->name, sizeof c->name, "%s", name);
    char path[600];
    snprintf(path, sizeof path, "sd/%s", name);
    it_sd_load_opts o;
    it_sd_load_opts_init(&o);
    it_err e;
    c->ok = it_sd_load(&e, &c->m, it_test_fixture(t, path), &o) == IT_OK;
    if (!c->ok) it_test_fail(t, __FILE__, __LINE__, "load %s: %s", name, e.msg);
    return c->ok ? &c->m : NULL;
}

/* Per-step comparison with diffusers' latents after each step. */
typedef struct stepcheck {
    const float *ref;   /* (n_steps, n) */
    size_t n;
    double worst;
    int worst_step;
} stepcheck;

static void check_step(void *user, int done, int total, const float *x)
{
    stepcheck *c = user;
    double e = norm_err(x, c->ref + (size_t)(done - 1) * c->n, c->n);
    if (e > c->worst) {
        c->worst = e;
        c->worst_step = done - 1;
    }
}

/* Runs one fixture case; returns 0 and fills the errors, or -1. */
static int run_case(it_test_ctx *t, it_safetensors *f, json_t *jc, it_sd_model *m, json_t *root,
                    double *lat_err, double *pix_err, int *u8_diff)
{
    const char *cs = json_string_value(json_object_get(jc, "name"));
    int batch = (int)json_integer_value(json_object_get(jc, "batch"));
    int steps = (int)json_integer_value(json_object_get(jc, "steps"));
    int n_steps = (int)json_integer_value(json_object_get(jc, "n_steps"));
    size_t n_lat = (size_t)batch * 4 * 8 * 8, n_pix = (size_t)batch * 3 * 16 * 16;
    it_gen_opts o;
    it_gen_opts_init(&o);
    it_err e;
    it_image img = {0}, mask = {0};
    it_gen_result r = {0};
    int rc = -1;
    o.prompt = json_string_value(json_object_get(root, "prompt"));
    o.negative = json_string_value(json_object_get(root, "negative"));
    o.steps = steps;
    o.cfg = (float)json_number_value(json_object_get(jc, "cfg"));
    o.batch = batch;
    o.width = o.height = 16;
    o.encode_mean = 1;
    if (it_sampler_parse(&e, &o.sampler, json_string_value(json_object_get(jc, "sampler")))) return -1;
    float *noise = load_arr(t, f, cs, "noise", n_lat);
    float *lat = load_arr(t, f, cs, "latents", (size_t)n_steps * n_lat);
    float *pix = load_arr(t, f, cs, "pixels", n_pix);
    float *sn = NULL;
    feed fd = {0};
    if (!noise || !lat || !pix) goto out;
    o.noise = noise;
    if (o.sampler.kind == IT_SAMPLER_EULER_A) {
        if (!(sn = load_arr(t, f, cs, "step_noise", (size_t)steps * n_lat))) goto out;
        fd = (feed){sn, n_lat, 0};
        o.step_noise = feed_noise;
        o.step_noise_user = &fd;
    }
    json_t *jimg = json_object_get(jc, "image"), *jmask = json_object_get(jc, "mask");
    char path[600];
    if (jimg) {
        snprintf(path, sizeof path, "diffusion/%s", json_string_value(jimg));
        if (it_image_load(&e, &img, it_test_fixture(t, path))) goto out;
        o.init_image = &img;
        o.strength = json_number_value(json_object_get(jc, "strength"));
    }
    if (jmask) {
        snprintf(path, sizeof path, "diffusion/%s", json_string_value(jmask));
        if (it_image_load(&e, &mask, it_test_fixture(t, path))) goto out;
        o.mask = &mask;
    }
    stepcheck sc = {lat, n_lat, 0, -1};
    o.on_step = check_step;
    o.progress_user = &sc;
    if (it_sd_generate(&e, m, NULL, &o, &r)) {
        it_test_fail(t, __FILE__, __LINE__, "%s: %s", cs, e.msg);
        goto out;
    }
    *lat_err = sc.worst; /* over every step, the last included */
    if (sc.worst > PIPE_TOL) printf("    %s: worst at step %d\n", cs, sc.worst_step);
    *pix_err = norm_err(r.pixels, pix, n_pix);
    *u8_diff = 0;
    for (int b = 0; b < batch; b++)
        for (size_t p = 0; p < 256; p++)
            for (int ch = 0; ch < 3; ch++) {
                int want = (int)rintf(pix[((size_t)b * 3 + ch) * 256 + p] * 255.0f);
                int d = abs((int)r.images[b].data[p * 3 + ch] - want);
                if (d > *u8_diff) *u8_diff = d;
            }
    rc = 0;
out:
    it_gen_result_free(&r);
    it_image_free(&img);
    it_image_free(&mask);
    it_free(noise);
    it_free(lat);
    it_free(pix);
    it_free(sn);
    return rc;
}

IT_TEST(diffusion_pipeline_vs_diffusers) {
    json_error_t je;
    json_t *root = json_load_file(it_test_fixture(t, "diffusion/pipeline.json"), 0, &je);
    IT_REQUIRE(root);
    it_safetensors *f;
    it_err e;
    IT_REQUIRE_OK(it_safetensors_open(&e, &f, it_test_fixture(t, "diffusion/pipeline.safetensors")), &e);
    model_cache mc[4];
    int n_mc = 0, seen = 0;
    size_t i;
    json_t *jc;
    json_array_foreach(json_object_get(root, "cases"), i, jc) {
        const char *cs = json_string_value(json_object_get(jc, "name"));
        it_sd_model *m = get_model(t, mc, &n_mc, json_string_value(json_object_get(jc, "model")));
        if (!m) continue;
        double le = INFINITY, pe = INFINITY;
        int ud = 255;
        if (run_case(t, f, jc, m, root, &le, &pe, &ud)) {
            it_test_fail(t, __FILE__, __LINE__, "%s did not run", cs);
            continue;
        }
        printf("    %-28s latents %.2e  pixels %.2e  8-bit max diff %d\n", cs, le, pe, ud);
        if (!(le <= PIPE_TOL && pe <= PIPE_TOL && ud <= 1))
            it_test_fail(t, __FILE__, __LINE__, "%s: latents %.3g pixels %.3g u8 %d", cs, le, pe, ud);
        seen++;
    }
    IT_CHECK_INT(seen, 22);
    for (int k = 0; k < n_mc; k++)
        if (mc[k].ok) it_sd_free(&mc[k].m);
    it_safetensors_close(f);
    json_decref(root);
}

/* The array plumbing, by hand-computed tables. */
IT_TEST(diffusion_latent_ops) {
    /* nearest 4x4 -> 2x2 takes rows/cols 0 and 2; 3 -> 2 takes 0 and 1
     * (floor(1 * 1.5) = 1) as torch does */
    float in[16], out[4];
    for (int i = 0; i < 16; i++) in[i] = (float)i;
    it_latent_nearest(out, 2, 2, in, 4, 4);
    IT_CHECK(out[0] == 0 && out[1] == 2 && out[2] == 8 && out[3] == 10);
    it_latent_nearest(out, 2, 2, in, 3, 3);
    IT_CHECK(out[0] == 0 && out[1] == 1 && out[2] == 3 && out[3] == 4);
    /* blend: mask 1 keeps x, 0 takes proper; both channels, both items */
    float x[8] = {1, 1, 1, 1, 1, 1, 1, 1}, proper[8] = {5, 5, 5, 5, 5, 5, 5, 5}, m[2] = {1, 0};
    it_latent_blend(x, proper, m, 2, 2, 2);
    for (int i = 0; i < 8; i++) IT_CHECK(x[i] == (i % 2 ? 5.0f : 1.0f));
    /* 9-channel layout per item: c latents, mask, c masked latents */
    float lat[4] = {1, 2, 3, 4}, mk[1] = {9}, ml[2] = {7, 8}, o9[10];
    it_latent_concat9(o9, lat, 2, 2, 2, mk, ml, 1);
    const float want9[10] = {1, 2, 9, 7, 8, 3, 4, 9, 7, 8};
    IT_CHECK(memcmp(o9, want9, sizeof want9) == 0);
    float u[2] = {1, 2}, c[2] = {3, 0}, g[2];
    it_latent_guidance(g, u, c, 7.5f, 2);
    IT_CHECK(g[0] == 16.0f && g[1] == -13.0f);
    /* to image: clamp and round half to even: 0.5/255 steps */
    float dec[3] = {-2.0f, 0.0f, 2.0f * (2.5f / 255.0f) - 1.0f}, pix[3];
    it_image im;
    it_err e;
    IT_REQUIRE_OK(it_latent_to_image(&e, &im, pix, dec, 1, 1), &e);
    IT_CHECK(im.data[0] == 0 && im.data[1] == 128 && pix[0] == 0.0f);
    IT_CHECK(im.data[2] == 2 || im.data[2] == 3); /* 2.5 lands within an ulp of the tie */
    it_image_free(&im);
    /* mask binarised at 0.5 (127 -> 0, 128 -> 1), image to [-1, 1] */
    it_image mi = {0};
    IT_REQUIRE_OK(it_image_alloc(&e, &mi, 3, 1, 1), &e);
    mi.data[0] = 127;
    mi.data[1] = 128;
    mi.data[2] = 255;
    float mu[3];
    IT_CHECK_OK(it_latent_mask_to_unit(&e, mu, &mi), &e);
    IT_CHECK(mu[0] == 0 && mu[1] == 1 && mu[2] == 1);
    float un[9];
    IT_CHECK_OK(it_latent_image_to_unit(&e, un, &mi), &e); /* grey -> RGB */
    IT_CHECK(un[0] == 2.0f * (127.0f / 255.0f) - 1.0f && un[2] == 1.0f && un[5] == 1.0f);
    it_image_free(&mi);
}
