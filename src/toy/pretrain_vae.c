/* pretrain_vae.c: the toy AutoencoderKL (128x128 RGB <-> 16x16x4 latents),
 * pretrained on renders, and its quality measurement (PSNR on fresh renders).
 *
 * Loss per step: L1 + MSE + 0.5 x an edge term (L1 between the horizontal
 * and vertical pixel differences of reconstruction and input: the renders
 * are flat colours with crisp anti-aliased edges, and a plain pixel loss
 * lets a small decoder blur them) + 1e-4 x the posterior's KL to N(0, 1)
 * per latent element (keeps the latent compact and smooth for the UNet; no
 * GAN). The decoder sees a posterior sample (reparameterisation), as in
 * diffusers' training. After training, the latent scaling factor is
 * 1 / std of the posterior means over fresh renders (SD's recipe), written
 * into vae/config.json so that the UNet trains on unit-variance latents. */
#include "toy/pretrain_vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "image/image.h"
#include "models/sd_pipeline_load.h"
#include "models/vae.h"
#include "tensor/autograd.h"
#include "tensor/ops_eltwise.h"
#include "toy/creature.h"
#include "toy/pretrain.h"
#include "toy/toydraw.h"

#define SIDE 128
#define W_MSE 1.0f
#define W_EDGE 0.5f
#define W_KL 1e-4f
#define EVAL_CHUNK 8
#define GRID_COLS 8

/* The shipped architecture (diffusers AutoencoderKL config). Four levels =
 * three 2x downsamplings = 8x; channels sized so that a batch-8 step on
 * 64x64 crops costs about 0.7 CPU-seconds (one core), 5000 steps about an
 * hour (docs/TOYWORLD.md has the measured cost). */
static const char DEFAULT_CONFIG[] =
    "{\"_class_name\": \"AutoencoderKL\", \"_diffusers_version\": \"0.30.0\", \"act_fn\": \"silu\","
    " \"block_out_channels\": [16, 32, 64, 64],"
    " \"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"],"
    " \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"],"
    " \"in_channels\": 3, \"out_channels\": 3, \"latent_channels\": 4, \"layers_per_block\": 1,"
    " \"norm_num_groups\": 16, \"sample_size\": 128, \"scaling_factor\": 1.0, \"force_upcast\": false,"
    " \"mid_block_add_attention\": true, \"use_quant_conv\": true, \"use_post_quant_conv\": true}";

/* ================================================================ the recon loss op */

/* loss = mean|d| + W_MSE mean d^2 + W_EDGE mean|grad p - grad t| with d = p - t
 * and grad the horizontal and vertical neighbour differences (both counted
 * in one mean). The forward pass computes dloss/dp into node->saved (the
 * loss is cheap next to the network, and one pass keeps both consistent). */
static void recon_backward(it_ctx *ctx, it_node *n)
{
    it_tensor *p = n->in[0];
    float *g = it_autograd_grad(ctx, p);
    if (!g || ctx->failed) return;
    const float *G = n->saved;
    float k = n->out->grad[0];
    for (int64_t i = 0; i < p->n; i++) g[i] += k * G[i];
}

static float sgnf(float v) { return (float)((v > 0) - (v < 0)); }

it_tensor *it_vae_recon_loss(it_ctx *ctx, it_tensor *pred, it_tensor *target, double terms[3])
{
    if (!pred || !target || ctx->failed) return NULL;
    if (!it_tensor_same_shape(pred, target) || pred->ndim != 4 || pred->shape[2] < 2 || pred->shape[3] < 2)
        return it_ctx_fail(ctx, IT_ERR_ARG, "vae recon loss: pred and target must be the same (N, C, H>=2, W>=2)");
    int64_t H = pred->shape[2], W = pred->shape[3], planes = pred->shape[0] * pred->shape[1], n = pred->n;
    it_tensor *y = it_tensor_new(ctx, IT_DTYPE_F32, 0, NULL);
    float *G = it_ctx_calloc(ctx, (size_t)n * sizeof(float));
    if (!y || !G) return NULL;
    const float *P = pred->data, *T = target->data;
    double l1 = 0, l2 = 0, le = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)P[i] - T[i];
        l1 += fabs(d), l2 += d * d;
        G[i] = (sgnf((float)d) + 2.0f * W_MSE * (float)d) / (float)n;
    }
    int64_t n_edge = planes * (H * (W - 1) + (H - 1) * W);
    float ke = W_EDGE / (float)n_edge;
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *p = P + pl * H * W, *t = T + pl * H * W;
        float *gp = G + pl * H * W;
        for (int64_t r = 0; r < H; r++)
            for (int64_t c = 0; c < W; c++) {
                int64_t i = r * W + c;
                if (c + 1 < W) {
                    float e = (p[i + 1] - p[i]) - (t[i + 1] - t[i]);
                    le += fabsf(e);
                    gp[i + 1] += ke * sgnf(e), gp[i] -= ke * sgnf(e);
                }
                if (r + 1 < H) {
                    float e = (p[i + W] - p[i]) - (t[i + W] - t[i]);
                    le += fabsf(e);
                    gp[i + W] += ke * sgnf(e), gp[i] -= ke * sgnf(e);
                }
            }
    }
    l1 /= (double)n, l2 /= (double)n, le /= (double)n_edge;
    it_f32(y)[0] = (float)(l1 + W_MSE * l2 + W_EDGE * le);
    if (terms) terms[0] = l1, terms[1] = l2, terms[2] = le;
    it_node *nd = it_autograd_record(ctx, y, "vae_recon_loss", recon_backward, 1, &pred);
    if (nd) nd->saved = G;
    return y;
}

/* ================================================================ state */

typedef struct vae_run {
    const it_pretrain_opts *o;
    it_vae vae;
    it_ctx ctx;
    it_optim_param *params;
    size_t n_params;
    int batch;
    int crop;      /* training crop side (pixels, multiple of 8) */
    uint8_t *rgb;  /* (B, 128, 128, 3) */
    float *x;      /* (B, 3, crop, crop) */
    char key[1024];
} vae_run;

static void rgb_to_chw(const uint8_t *rgb, float *x, int n)
{
    const int64_t hw = SIDE * SIDE;
    for (int b = 0; b < n; b++)
        for (int64_t i = 0; i < hw; i++)
            for (int c = 0; c < 3; c++)
                x[((int64_t)b * 3 + c) * hw + i] = (float)rgb[((int64_t)b * hw + i) * 3 + c] * (2.0f / 255.0f) - 1.0f;
}

/* Random crop of side `crop` of each render, at offsets that are multiples
 * of 8 (the latent grid) drawn from (seed, step, item). The network is fully
 * convolutional (the mid attention takes any grid), so training on 64x64
 * crops costs a quarter of full renders per sample and sees the same edges. */
static void crop_to_chw(const uint8_t *rgb, float *x, int n, int crop, uint64_t seed, int64_t step)
{
    int cells = (SIDE - crop) / 8 + 1;
    for (int b = 0; b < n; b++) {
        uint64_t h = (seed * 0x9E3779B97F4A7C15ull) ^ (((uint64_t)step << 16) + (uint64_t)b + 0xC409ull);
        h ^= h >> 31, h *= 0xBF58476D1CE4E5B9ull, h ^= h >> 29;
        int ox = 8 * (int)(h % (uint64_t)cells), oy = 8 * (int)((h >> 32) % (uint64_t)cells);
        for (int y = 0; y < crop; y++)
            for (int xx = 0; xx < crop; xx++)
                for (int c = 0; c < 3; c++)
                    x[(((int64_t)b * 3 + c) * crop + y) * crop + xx] =
                        (float)rgb[(((int64_t)b * SIDE + oy + y) * SIDE + ox + xx) * 3 + c] * (2.0f / 255.0f) - 1.0f;
    }
}

/* The architecture: the default, or --config (a diffusers VAE config; the
 * extra key "_toy_train_crop" sets the training crop, default 64). */
static it_status vae_config(it_err *err, const it_pretrain_opts *o, it_vae_config *c, char **text_out, int *crop)
{
    json_t *j = NULL;
    IT_TRY(it_pretrain_config_json(err, o, &j));
    if (crop) {
        json_t *cj = j ? json_object_get(j, "_toy_train_crop") : NULL;
        *crop = cj ? (int)json_integer_value(cj) : 64;
        if (*crop < 16 || *crop > SIDE || *crop % 8) {
            json_decref(j);
            return it_err_set(err, IT_ERR_ARG, "vae config: _toy_train_crop must be a multiple of 8 in 16..%d", SIDE);
        }
    }
    char *text = j ? json_dumps(j, JSON_SORT_KEYS) : NULL;
    json_decref(j);
    const char *src = text ? text : DEFAULT_CONFIG;
    it_status s = it_vae_config_parse(err, c, src, o->config ? "--config" : "default vae config");
    if (!s && (1 << (c->n_levels - 1)) != 8)
        s = it_err_set(err, IT_ERR_ARG, "vae config: %d levels give %dx downsampling; the toy VAE needs 8x (4 levels)",
                       c->n_levels, 1 << (c->n_levels - 1));
    if (!s && (c->in_channels != 3 || c->out_channels != 3))
        s = it_err_set(err, IT_ERR_ARG, "vae config: in/out channels must be 3 (RGB)");
    if (!s && text_out) {
        *text_out = it_malloc(strlen(src) + 1);
        if (!*text_out) s = it_err_set(err, IT_ERR_NOMEM, "out of memory");
        else strcpy(*text_out, src);
    }
    free(text);
    return s;
}

static void vae_run_free(vae_run *r)
{
    it_vae_free(&r->vae);
    it_ctx_free(&r->ctx);
    it_free(r->params);
    it_free(r->rgb);
    it_free(r->x);
}

/* ================================================================ step */

static it_status vae_step(it_err *err, void *user, int64_t step, it_pretrain_stats *st)
{
    vae_run *r = user;
    int B = r->batch;
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    IT_TRY(it_toy_render_batch(err, SIDE, SIDE, &c, r->o->seed, (uint64_t)step * (uint64_t)B, B, IT_TOY_PRETRAIN,
                               r->rgb, NULL, NULL));
    crop_to_chw(r->rgb, r->x, B, r->crop, r->o->seed, step);
    it_ctx_reset(&r->ctx);
    it_ctx *ctx = &r->ctx;
    it_tensor *x = it_tensor_wrap(ctx, r->x, IT_DTYPE_F32, IT_SHAPE(B, 3, r->crop, r->crop));
    it_tensor *mo = it_vae_encode(ctx, &r->vae, x);
    /* Posterior noise: its own stream per step, a function of (seed, step). */
    uint64_t nseed = (r->o->seed * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)step + 0x5AE5ull);
    it_tensor *z = it_vae_sample(ctx, &r->vae, mo, nseed, 0, 0);
    it_tensor *xr = it_vae_decode(ctx, &r->vae, z);
    double terms[3] = {0};
    it_tensor *rec = it_vae_recon_loss(ctx, xr, x, terms);
    it_tensor *kl = it_vae_kl(ctx, &r->vae, mo);
    it_tensor *loss = it_op_add(ctx, rec, it_op_scale(ctx, kl, W_KL, 0));
    IT_TRY(it_ctx_status(ctx, err));
    IT_TRY(it_autograd_backward(err, ctx, loss));
    st->loss = it_f32(loss)[0];
    const char *names[4] = {"l1", "mse", "edge", "kl"};
    double vals[4] = {terms[0], terms[1], terms[2], it_f32(kl)[0]};
    st->n_terms = 4;
    for (int i = 0; i < 4; i++) st->term_name[i] = names[i], st->term[i] = vals[i];
    return IT_OK;
}

/* ================================================================ measurement */

/* Copies image b of a chunk (render and its 8-bit reconstruction) into the
 * grid: renders on the top row, reconstructions below. */
static void grid_put(it_image *g, int col, const uint8_t *ren, const float *rec)
{
    const int64_t hw = SIDE * SIDE;
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++)
            for (int c = 0; c < 3; c++) {
                float v = (rec[c * hw + y * SIDE + x] + 1.0f) * 127.5f;
                g->data[((size_t)y * g->w + (size_t)col * SIDE + x) * 3 + c] = ren[((size_t)y * SIDE + x) * 3 + c];
                g->data[((size_t)(y + SIDE) * g->w + (size_t)col * SIDE + x) * 3 + c] =
                    (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrintf(v));
            }
}

it_status it_vae_measure(it_err *err, const it_vae *m, uint64_t seed, int n, it_vae_quality *q, const char *grid)
{
    memset(q, 0, sizeof *q);
    if (n < 1) return it_err_set(err, IT_ERR_ARG, "vae quality: need at least one image");
    it_image g = {0};
    int gcols = n < GRID_COLS ? n : GRID_COLS;
    if (grid) IT_TRY(it_image_alloc(err, &g, gcols * SIDE, 2 * SIDE, 3));
    uint8_t *rgb = it_malloc((size_t)EVAL_CHUNK * SIDE * SIDE * 3);
    float *x = it_malloc((size_t)EVAL_CHUNK * 3 * SIDE * SIDE * sizeof(float));
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    int was = it_autograd_set_enabled(&ctx, 0);
    it_status s = rgb && x ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "out of memory");
    double sum_psnr = 0, sum_mse = 0, zs = 0, zs2 = 0, zn = 0;
    q->min_psnr = INFINITY;
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    for (int start = 0; start < n && !s; start += EVAL_CHUNK) {
        int k = n - start < EVAL_CHUNK ? n - start : EVAL_CHUNK;
        /* Evaluation renders obey the pretraining rule too: the VAE is
         * measured on the distribution it serves, never on held-out looks. */
        s = it_toy_render_batch(err, SIDE, SIDE, &c, seed, (uint64_t)start, k, IT_TOY_PRETRAIN, rgb, NULL, NULL);
        if (s) break;
        rgb_to_chw(rgb, x, k);
        it_ctx_reset(&ctx);
        it_tensor *xt = it_tensor_wrap(&ctx, x, IT_DTYPE_F32, IT_SHAPE(k, 3, SIDE, SIDE));
        it_tensor *z = it_vae_sample(&ctx, m, it_vae_encode(&ctx, m, xt), 0, 1, 0);
        it_tensor *xr = it_vae_decode(&ctx, m, z);
        if ((s = it_ctx_status(&ctx, err))) break;
        for (int64_t i = 0; i < z->n; i++) zs += it_f32(z)[i], zs2 += (double)it_f32(z)[i] * it_f32(z)[i];
        for (int b = 0; grid && b < k && start + b < gcols; b++)
            grid_put(&g, start + b, rgb + (size_t)b * SIDE * SIDE * 3, it_f32(xr) + (size_t)b * 3 * SIDE * SIDE);
        zn += (double)z->n;
        const int64_t hw = SIDE * SIDE;
        for (int b = 0; b < k; b++) {
            double se = 0;
            for (int ch = 0; ch < 3; ch++)
                for (int64_t i = 0; i < hw; i++) {
                    /* The decoded image as it would be saved: 8-bit, rounded. */
                    float v = (it_f32(xr)[((int64_t)b * 3 + ch) * hw + i] + 1.0f) * 127.5f;
                    double u = v < 0 ? 0 : v > 255 ? 255 : rint(v);
                    double d = u - rgb[((int64_t)b * hw + i) * 3 + ch];
                    se += d * d;
                }
            double mse = se / (double)(3 * hw);
            double psnr = mse > 0 ? 10.0 * log10(255.0 * 255.0 / mse) : 100.0;
            sum_psnr += psnr, sum_mse += mse;
            if (psnr < q->min_psnr) q->min_psnr = psnr;
        }
    }
    it_autograd_set_enabled(&ctx, was);
    it_ctx_free(&ctx);
    it_free(rgb);
    it_free(x);
    if (!s && grid) s = it_image_save_png(err, &g, grid);
    it_image_free(&g);
    IT_TRY(s);
    q->n = n;
    q->psnr = sum_psnr / n;
    double mse = sum_mse / n;
    q->psnr_pooled = mse > 0 ? 10.0 * log10(255.0 * 255.0 / mse) : 100.0;
    q->latent_mean = zs / zn;
    q->latent_std = sqrt(fmax(zs2 / zn - q->latent_mean * q->latent_mean, 0));
    return IT_OK;
}

static json_t *quality_json(const it_vae_quality *q, uint64_t seed)
{
    return json_pack("{s:f, s:f, s:f, s:i, s:I, s:f, s:f}", "psnr_db", round(q->psnr * 100) / 100, "psnr_min_db",
                     round(q->min_psnr * 100) / 100, "psnr_pooled_db", round(q->psnr_pooled * 100) / 100, "images",
                     q->n, "seed", (json_int_t)seed, "latent_mean", q->latent_mean, "latent_std", q->latent_std);
}

static it_status vae_eval(it_err *err, void *user, int64_t step, json_t *metrics)
{
    (void)step;
    vae_run *r = user;
    it_vae_quality q;
    IT_TRY(it_vae_measure(err, &r->vae, r->o->eval_seed, r->o->eval_n > 0 ? r->o->eval_n : 32, &q, NULL));
    json_t *j = quality_json(&q, r->o->eval_seed);
    if (j) json_object_update(metrics, j);
    json_decref(j);
    return IT_OK;
}

/* ================================================================ export */

/* OUT/vae/config.json (the architecture with the measured scaling factor)
 * and OUT/vae/diffusion_pytorch_model.safetensors (f16 matrices). */
static it_status export_vae(it_err *err, const it_pretrain_opts *o, vae_run *r, double scaling, int64_t step)
{
    char dir[1100], p[1200];
    IT_TRY(it_path_join(err, dir, sizeof dir, o->out, "vae"));
    IT_TRY(it_mkdir_p(err, dir));
    char *text = NULL;
    it_vae_config cfg;
    IT_TRY(vae_config(err, o, &cfg, &text, NULL));
    json_t *j = json_loads(text, 0, NULL);
    it_free(text);
    if (!j) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    json_object_set_new(j, "scaling_factor", json_real(round(scaling * 1e5) / 1e5));
    char *out = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    if (!out) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    snprintf(p, sizeof p, "%s/config.json", dir);
    size_t n = strlen(out);
    char *nl = it_malloc(n + 2);
    it_status s = nl ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "out of memory");
    if (!s) {
        memcpy(nl, out, n), nl[n] = '\n';
        s = it_file_write_atomic(err, p, nl, n + 1);
    }
    it_free(nl);
    free(out);
    IT_TRY(s);
    char steps[32], seed[32];
    snprintf(steps, sizeof steps, "%lld", (long long)step);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    const char *meta[] = {"format", "pt", "intenttuner_component", "toy-vae", "steps", steps, "seed", seed, NULL};
    snprintf(p, sizeof p, "%s/diffusion_pytorch_model.safetensors", dir);
    return it_pretrain_export_params(err, &r->vae.params, p, 1, meta);
}

/* ================================================================ entry points */

static it_status setup(it_err *err, vae_run *r, const it_pretrain_opts *o, it_pretrain_loop *l)
{
    memset(r, 0, sizeof *r);
    r->o = o;
    it_ctx_init(&r->ctx, 0);
    it_vae_config cfg;
    char *text = NULL;
    IT_TRY(vae_config(err, o, &cfg, &text, &r->crop));
    r->batch = o->batch > 0 ? o->batch : 8;
    int64_t steps = o->steps > 0 ? o->steps : 5000;
    double lr = o->lr > 0 ? o->lr : 8e-4;
    snprintf(r->key, sizeof r->key, "vae seed=%llu steps=%lld batch=%d lr=%g config=%.900s",
             (unsigned long long)o->seed, (long long)steps, r->batch, lr, text);
    it_free(text);
    IT_TRY(it_vae_init(err, &r->vae, &cfg, IT_MODEL_TRAINABLE));
    it_pretrain_init_params(&r->vae.params, o->seed);
    IT_TRY(it_pretrain_params_list(err, &r->vae.params, &r->params, &r->n_params));
    r->rgb = it_malloc((size_t)r->batch * SIDE * SIDE * 3);
    r->x = it_malloc((size_t)r->batch * 3 * r->crop * r->crop * sizeof(float));
    if (!r->rgb || !r->x) return it_err_set(err, IT_ERR_NOMEM, "vae: out of memory for a batch of %d", r->batch);
    memset(l, 0, sizeof *l);
    l->key = r->key;
    l->params = r->params, l->n_params = r->n_params;
    l->optim = it_optim_adamw_defaults(lr);
    l->optim.weight_decay = 0.0; /* AutoencoderKL is trained with Adam, no decay */
    l->sched = it_lr_schedule_make(IT_LR_COSINE, steps / 30 < 100 ? steps / 30 : 100, steps);
    l->max_grad_norm = 1.0;
    l->steps = steps;
    l->default_eval_every = 500;
    l->step = vae_step;
    l->eval = vae_eval;
    l->user = r;
    return IT_OK;
}

it_status it_pretrain_vae(it_err *err, const it_pretrain_opts *o)
{
    vae_run r;
    it_pretrain_loop l;
    it_pretrain_result res;
    it_status s = setup(err, &r, o, &l);
    if (!s) s = it_pretrain_train(err, o, &l, &res);
    if (!s && (res.finished || o->export_partial || o->export_only)) {
        it_vae_quality q;
        int n = o->eval_n > 0 ? o->eval_n : 64;
        s = it_vae_measure(err, &r.vae, o->eval_seed, n, &q, NULL);
        double scaling = q.latent_std > 0 ? 1.0 / q.latent_std : 1.0;
        if (!s) s = export_vae(err, o, &r, scaling, res.step);
        if (!s) {
            if (!o->quiet)
                IT_LOG_I("vae: step %lld/%lld, latent std %.4f -> scaling_factor %.5f, PSNR %.2f dB (before f16 export)",
                         (long long)res.step, (long long)l.steps, q.latent_std, scaling, q.psnr);
            json_t *report = json_object();
            s = report ? it_quality_vae(err, o, report) : it_err_set(err, IT_ERR_NOMEM, "out of memory");
            if (!s) s = it_pretrain_record(err, o, &res, report);
            json_decref(report);
        }
    }
    vae_run_free(&r);
    return s;
}

it_status it_vae_load_dir(it_err *err, it_vae *m, const char *dir)
{
    char p[1200];
    it_vae_config c;
    if (snprintf(p, sizeof p, "%s/vae/config.json", dir) >= (int)sizeof p) return it_err_set(err, IT_ERR_RANGE, "path too long");
    IT_TRY(it_vae_config_load(err, &c, p));
    IT_TRY(it_vae_init(err, m, &c, 0));
    snprintf(p, sizeof p, "%s/vae/diffusion_pytorch_model.safetensors", dir);
    it_status s = it_sd_load_params_file(err, &m->params, p, NULL);
    if (s) it_vae_free(m);
    return s;
}

it_status it_quality_vae(it_err *err, const it_pretrain_opts *o, json_t *report)
{
    const char *dir = o->model_dir ? o->model_dir : o->out;
    it_vae m;
    IT_TRY(it_vae_load_dir(err, &m, dir));
    it_vae_quality q;
    int n = o->eval_n > 0 ? o->eval_n : 200;
    char run[1024], grid[1100];
    it_status s = it_pretrain_run_path(err, o, run, sizeof run);
    if (!s) snprintf(grid, sizeof grid, "%s/quality_vae.png", run);
    if (!s) s = it_vae_measure(err, &m, o->eval_seed, n, &q, grid);
    if (!s) {
        json_object_set_new(report, "grid", json_string(grid));
        json_t *j = quality_json(&q, o->eval_seed);
        json_object_update(report, j);
        json_decref(j);
        json_object_set_new(report, "target_psnr_db", json_real(30.0));
        json_object_set_new(report, "meets_target", json_boolean(q.psnr >= 30.0));
        json_object_set_new(report, "scaling_factor", json_real(m.cfg.scaling_factor));
        /* Latents as the UNet sees them (times the shipped factor): ~1. */
        json_object_set_new(report, "scaled_latent_std", json_real(q.latent_std * m.cfg.scaling_factor));
    }
    it_vae_free(&m);
    return s;
}
