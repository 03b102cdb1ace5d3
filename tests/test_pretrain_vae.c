/* test_pretrain_vae.c: the toy VAE component: gradients of the pieces the
 * VAE's training adds to the engine (posterior sampling, KL, the
 * reconstruction loss) against central finite differences, and a tiny
 * training run end to end (loss falls, resume is byte-identical, the export
 * loads through the pipeline's loader with the measured scaling factor). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/threads.h"
#include "image/image.h"
#include "models/vae.h"
#include "tensor/autograd.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_loss.h"
#include "test.h"
#include "toy/pretrain.h"
#include "toy/pretrain_vae.h"

/* f(x) for the finite-difference check: a scalar built by `which` from x. */
typedef struct fd_case {
    int which; /* 0 sample, 1 kl, 2 recon */
    it_vae *vae;
    const float *target; /* recon */
    const float *proj;   /* random projection of a non-scalar output */
} fd_case;

static it_tensor *fd_forward(it_ctx *ctx, const fd_case *c, it_tensor *x)
{
    if (c->which == 0) {
        it_tensor *z = it_vae_sample(ctx, c->vae, x, 99, 0, 1);
        if (!z) return NULL;
        it_tensor *p = it_tensor_wrap(ctx, (void *)c->proj, IT_DTYPE_F32, z->ndim, z->shape);
        return it_op_sum(ctx, it_op_mul(ctx, z, p));
    }
    if (c->which == 1) return it_vae_kl(ctx, c->vae, x);
    it_tensor *tg = it_tensor_wrap(ctx, (void *)c->target, IT_DTYPE_F32, x->ndim, x->shape);
    return it_vae_recon_loss(ctx, x, tg, NULL);
}

static double fd_eval(it_ctx *ctx, const fd_case *c, float *data, const int64_t *shape)
{
    it_ctx_reset(ctx);
    int was = it_autograd_set_enabled(ctx, 0);
    it_tensor *x = it_tensor_wrap(ctx, data, IT_DTYPE_F32, 4, shape);
    it_tensor *y = fd_forward(ctx, c, x);
    it_autograd_set_enabled(ctx, was);
    return y ? it_f32(y)[0] : NAN;
}

/* Max relative error of the analytic gradient against central differences. */
static double fd_check(it_test_ctx *t, const fd_case *c, const int64_t shape[4], float *x0)
{
    it_err err;
    int64_t n = shape[0] * shape[1] * shape[2] * shape[3];
    float *grad = it_calloc((size_t)n, sizeof(float));
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_tensor param;
    double worst = 0;
    if (it_tensor_init_param(&err, &param, "x", x0, grad, 4, shape)) goto done;
    it_tensor *y = fd_forward(&ctx, c, &param);
    if (!y || it_autograd_backward(&err, &ctx, y)) {
        it_test_fail(t, __FILE__, __LINE__, "forward/backward failed: %s", ctx.err.msg);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        float keep = x0[i], h = 1e-2f;
        x0[i] = keep + h;
        double up = fd_eval(&ctx, c, x0, shape);
        x0[i] = keep - h;
        double dn = fd_eval(&ctx, c, x0, shape);
        x0[i] = keep;
        double num = (up - dn) / (2.0 * h), e = fabs(num - grad[i]) / (fabs(num) + fabs(grad[i]) + 1e-2);
        if (e > worst) worst = e;
    }
done:
    it_ctx_free(&ctx);
    it_free(grad);
    return worst;
}

static it_status tiny_vae(it_err *err, it_vae *m)
{
    it_vae_config c;
    it_vae_config_sd(&c);
    c.n_levels = 2;
    c.block_out[0] = c.block_out[1] = 8;
    c.layers_per_block = 1;
    c.norm_groups = 4;
    c.latent_channels = 2;
    c.scaling_factor = 0.7f;
    return it_vae_init(err, m, &c, 0);
}

IT_TEST(pretrain_vae_gradients_match_finite_differences)
{
    it_err err;
    it_vae vae;
    IT_REQUIRE_OK(tiny_vae(&err, &vae), &err);
    /* Moments (N=2, 2L=4, 3, 3): mean, log-variance well inside the clamp. */
    int64_t ms[4] = {2, 4, 3, 3};
    float mo[72], proj[36];
    it_rng r;
    it_rng_init(&r, 3);
    it_rng_normal(&r, mo, 72, 0, 0.8f);
    it_rng_normal(&r, proj, 36, 0, 1);
    fd_case c = {0, &vae, NULL, proj};
    IT_CHECK(fd_check(t, &c, ms, mo) < 2e-3);
    c.which = 1;
    IT_CHECK(fd_check(t, &c, ms, mo) < 2e-3);
    /* Reconstruction loss on (2, 3, 5, 6). The difference d = p - t is
     * built so that no d and no neighbour difference of d lies within h of
     * zero (the kinks of |.|): there the loss is smooth and the check exact. */
    int64_t rs[4] = {2, 3, 5, 6};
    float p[180], tg[180];
    it_rng_normal(&r, tg, 180, 0, 1);
    for (int i = 0; i < 180; i++) {
        int row = (i / 6) % 5, col = i % 6;
        p[i] = tg[i] + 0.1f * (float)((row * 7 + col * 3) % 11) + 0.05f;
    }
    c.which = 2;
    c.target = tg;
    IT_CHECK(fd_check(t, &c, rs, p) < 2e-3);
    it_vae_free(&vae);
}

IT_TEST(pretrain_vae_recon_loss_values)
{
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    /* 1 image, 1 channel, 2x2: pred - target = [1, 0; 0, -1]. */
    float p[4] = {1, 0, 0, -1}, z[4] = {0, 0, 0, 0};
    it_tensor *P = it_tensor_wrap(&ctx, p, IT_DTYPE_F32, IT_SHAPE(1, 1, 2, 2));
    it_tensor *T = it_tensor_wrap(&ctx, z, IT_DTYPE_F32, IT_SHAPE(1, 1, 2, 2));
    double terms[3];
    it_tensor *y = it_vae_recon_loss(&ctx, P, T, terms);
    IT_REQUIRE(y != NULL);
    IT_CHECK_NEAR(terms[0], 0.5, 1e-9);  /* l1 */
    IT_CHECK_NEAR(terms[1], 0.5, 1e-9);  /* mse */
    IT_CHECK_NEAR(terms[2], 1.0, 1e-9);  /* four neighbour pairs, each |diff| 1 */
    IT_CHECK_NEAR(it_f32(y)[0], 0.5 + 0.5 + 0.5, 1e-6);
    /* Shape errors are named. */
    it_tensor *bad = it_tensor_wrap(&ctx, p, IT_DTYPE_F32, IT_SHAPE(1, 1, 1, 4));
    IT_CHECK(it_vae_recon_loss(&ctx, bad, T, NULL) == NULL);
    IT_CHECK_CONTAINS(ctx.err.msg, "vae recon loss");
    it_ctx_free(&ctx);
}

#define TINY_CONFIG                                                                               \
    "{\"block_out_channels\": [8, 8, 8, 8], \"layers_per_block\": 1, \"norm_num_groups\": 4,"    \
    " \"latent_channels\": 4, \"sample_size\": 128, \"_toy_train_crop\": 32,"                    \
    " \"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"]," \
    " \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}"

static void tiny_opts(it_test_ctx *t, it_pretrain_opts *o, const char *out, const char *run)
{
    static char outb[600], runb[600];
    it_pretrain_opts_init(o);
    o->component = "vae";
    snprintf(outb, sizeof outb, "%s", it_test_tmp(t, out));
    snprintf(runb, sizeof runb, "%s", it_test_tmp(t, run));
    o->out = outb, o->run_dir = runb;
    o->config = TINY_CONFIG;
    o->steps = 10, o->batch = 2, o->lr = 3e-3;
    o->eval_n = 4, o->eval_every = -1;
    o->checkpoint_seconds = -1;
    o->quiet = 1;
}

static double mean_loss(const char *log, int from, int to)
{
    FILE *f = fopen(log, "r");
    char line[4096];
    double s = 0;
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        json_int_t st = json_integer_value(json_object_get(j, "step"));
        if (j && json_object_get(j, "loss") && st >= from && st <= to) s += json_number_value(json_object_get(j, "loss")), n++;
        json_decref(j);
    }
    if (f) fclose(f);
    return n ? s / n : NAN;
}

IT_TEST(pretrain_vae_tiny_run_resumes_and_exports)
{
    it_err err;
    it_pretrain_opts o;
    /* One thread: the tiny layers gain nothing from a team, and busy-waiting
     * OpenMP teams on a loaded machine cost 20x (resume needs a fixed count). */
    int threads = it_threads_get();
    it_threads_set(1);
    tiny_opts(t, &o, "outA", "runA");
    IT_REQUIRE_OK(it_pretrain_vae(&err, &o), &err);
    const char *log = it_test_tmp(t, "runA/vae/train.jsonl");
    double first = mean_loss(log, 1, 3), last = mean_loss(log, 8, 10);
    IT_CHECK(isfinite(first) && last < first);
    /* Interrupted after 4 steps, resumed: byte-identical final checkpoint. */
    tiny_opts(t, &o, "outB", "runB");
    o.stop_after = 4;
    IT_REQUIRE_OK(it_pretrain_vae(&err, &o), &err);
    IT_CHECK(!it_file_exists(it_test_tmp(t, "outB/vae/config.json"))); /* not finished: no export */
    o.stop_after = 0;
    o.resume = 1;
    IT_REQUIRE_OK(it_pretrain_vae(&err, &o), &err);
    uint8_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    IT_REQUIRE_OK(it_file_read(&err, &a, &na, it_test_tmp(t, "runA/vae/ckpt/step-00000010/params.safetensors"), 1 << 24), &err);
    IT_REQUIRE_OK(it_file_read(&err, &b, &nb, it_test_tmp(t, "runB/vae/ckpt/step-00000010/params.safetensors"), 1 << 24), &err);
    IT_CHECK(na == nb && !memcmp(a, b, na));
    it_free(a);
    it_free(b);
    /* The export loads through the pipeline's loaders; the shipped scaling
     * factor makes the measured latents unit-variance. */
    it_vae m;
    IT_REQUIRE_OK(it_vae_load_dir(&err, &m, it_test_tmp(t, "outA")), &err);
    it_vae_quality q;
    IT_REQUIRE_OK(it_vae_measure(&err, &m, o.eval_seed, 4, &q, it_test_tmp(t, "grid.png")), &err);
    it_image gi = {0};
    IT_CHECK(it_image_load(&err, &gi, it_test_tmp(t, "grid.png")) == IT_OK && gi.w == 4 * 128 && gi.h == 256);
    it_image_free(&gi);
    IT_CHECK(q.psnr > 5 && q.psnr < 60);
    IT_CHECK_NEAR(q.latent_std * m.cfg.scaling_factor, 1.0, 0.02); /* f16 export moves it slightly */
    it_vae_free(&m);
    IT_CHECK(it_pretrain_is_finished(it_test_tmp(t, "outA"), "vae"));
    json_t *rec = json_load_file(it_test_tmp(t, "outA/pretrain/vae.json"), 0, NULL);
    IT_CHECK(rec && json_is_real(json_object_get(json_object_get(rec, "metrics"), "psnr_db")));
    json_decref(rec);
    it_threads_set(threads);
}

IT_TEST(pretrain_vae_rejects_bad_configs)
{
    it_err err;
    it_pretrain_opts o;
    tiny_opts(t, &o, "out", "run");
    o.config = "{\"block_out_channels\": [8, 8], \"norm_num_groups\": 4}";
    IT_CHECK(it_pretrain_vae(&err, &o) == IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "2x downsampling; the toy VAE needs 8x");
    o.config = TINY_CONFIG;
    o.config = "{\"block_out_channels\": [8, 8, 8, 8], \"norm_num_groups\": 4, \"_toy_train_crop\": 20}";
    IT_CHECK(it_pretrain_vae(&err, &o) == IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "_toy_train_crop must be a multiple of 8");
    o.config = "/nonexistent/vae.json";
    IT_CHECK(it_pretrain_vae(&err, &o) != IT_OK);
    IT_CHECK_CONTAINS(err.msg, "/nonexistent/vae.json");
}
