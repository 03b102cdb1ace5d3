/* test_sd_models.c: the SD components (CLIP text, VAE, UNet) against
 * diffusers/transformers f32 outputs on tiny random pipelines, the
 * single-file twins, and loader errors. Fixtures: tools/gen_sd_fixtures.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "models/sd_keys.h"
#include "models/sd_pipeline_load.h"
#include "tensor/autograd.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_gemm.h"
#include "tensor/ops_loss.h"
#include "tensor/ops_shape.h"
#include "test.h"

/* Normalised error max|ours - ref| / max|ref| (bound 1e-4 for f32 components). */
#define SD_TOL 1e-4

static const char *fx(it_test_ctx *t, char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/sd/%s", t->fixtures, name);
    return buf;
}

/* A reference tensor of the io file as a context tensor (f32 or i32). */
static it_tensor *io_get(it_ctx *ctx, const it_safetensors *f, const char *name)
{
    const it_safetensors_tensor *st = it_safetensors_find(f, name);
    if (!st) return it_ctx_fail(ctx, IT_ERR_NOT_FOUND, "io: no %s", name);
    int64_t shape[8];
    for (int i = 0; i < st->n_dims; i++) shape[i] = st->shape[i];
    if (st->supported && st->dtype == IT_DTYPE_I32) {
        it_tensor *x = it_tensor_new(ctx, IT_DTYPE_I32, st->n_dims, shape);
        if (x) memcpy(x->data, st->data, st->nbytes);
        return x;
    }
    it_tensor *x = it_tensor_new(ctx, IT_DTYPE_F32, st->n_dims, shape);
    if (x && it_safetensors_load_f32(NULL, f, st, x->data, (size_t)x->n)) return NULL;
    return x;
}

static double norm_err(const it_tensor *a, const it_tensor *b)
{
    if (!a || !b || a->n != b->n) return 1e30;
    double mx = 0, mref = 0;
    const float *x = a->data, *y = b->data;
    for (int64_t i = 0; i < a->n; i++) {
        double d = x[i] - (double)y[i];
        if (d < 0) d = -d;
        if (d > mx || d != d) mx = d != d ? 1e30 : d;
        double r = y[i] < 0 ? -y[i] : y[i];
        if (r > mref) mref = r;
    }
    return mx / (mref > 0 ? mref : 1);
}

#define CHECK_CLOSE(name, ours, ref)                                                         \
    do {                                                                                     \
        double e_ = norm_err(ours, ref);                                                     \
        if (getenv("IT_SD_VERBOSE")) printf("  %-28s rel err %.3g\n", name, e_);             \
        if (!(e_ <= SD_TOL)) it_test_fail(t, __FILE__, __LINE__, "%s: rel err %.3g", name, e_); \
    } while (0)

typedef struct sd_case {
    const char *name;   /* fixture pipeline */
    int in_channels;
    int v2;
    int unet_only;      /* io holds UNet outputs only (text encoder and VAE as sd1) */
} sd_case;

static const sd_case CASES[] = {
    {"sd1", 4, 0, 0},
    {"sd2", 4, 1, 0},
    {"inpaint", 9, 0, 1},
};

/* ------------------------------------------------------------ components */

static void check_text(it_test_ctx *t, it_ctx *ctx, it_sd_model *m, const it_safetensors *io, int sd1)
{
    it_err err;
    it_clip_text_out o;
    it_ctx_reset(ctx);
    it_tensor *ids = io_get(ctx, io, "te.input_ids");
    IT_CHECK_OK(it_clip_text_forward(&err, ctx, &m->text, ids, 0, 1, &o), &err);
    CHECK_CLOSE("text last_hidden_state", o.hidden, io_get(ctx, io, "te.last_hidden_state"));
    CHECK_CLOSE("text pooler_output", o.pooled, io_get(ctx, io, "te.pooler_output"));
    if (sd1) {
        IT_CHECK_OK(it_clip_text_forward(&err, ctx, &m->text, ids, 1, 0, &o), &err);
        CHECK_CLOSE("text clip_skip 1", o.hidden, io_get(ctx, io, "te.clip_skip1"));
    }
}

static void check_unet(it_test_ctx *t, it_ctx *ctx, it_sd_model *m, const it_safetensors *io)
{
    it_err err;
    it_ctx_reset(ctx);
    it_tensor *y = it_unet_forward(ctx, &m->unet, io_get(ctx, io, "unet.sample"), io_get(ctx, io, "unet.timestep"),
                                   io_get(ctx, io, "unet.encoder_hidden_states"));
    IT_CHECK_OK(it_ctx_status(ctx, &err), &err);
    CHECK_CLOSE("unet", y, io_get(ctx, io, "unet.out"));
}

static void check_vae(it_test_ctx *t, it_ctx *ctx, it_sd_model *m, const it_safetensors *io)
{
    it_err err;
    it_ctx_reset(ctx);
    it_tensor *mo = it_vae_encode(ctx, &m->vae, io_get(ctx, io, "vae.image"));
    IT_CHECK_OK(it_ctx_status(ctx, &err), &err);
    int64_t L = m->vae.cfg.latent_channels;
    CHECK_CLOSE("vae mean", it_op_slice(ctx, mo, 1, 0, L), io_get(ctx, io, "vae.mean"));
    CHECK_CLOSE("vae logvar", it_op_slice(ctx, mo, 1, L, L), io_get(ctx, io, "vae.logvar"));
    CHECK_CLOSE("vae decode", it_vae_decode(ctx, &m->vae, io_get(ctx, io, "vae.latent")),
                io_get(ctx, io, "vae.decoded"));
    CHECK_CLOSE("vae tiled decode", it_vae_decode_tiled(ctx, &m->vae, io_get(ctx, io, "vae.tiled_latent")),
                io_get(ctx, io, "vae.tiled_decoded"));
    CHECK_CLOSE("vae tiled encode", it_vae_encode_tiled(ctx, &m->vae, io_get(ctx, io, "vae.tiled_image")),
                io_get(ctx, io, "vae.tiled_moments"));
    IT_CHECK_OK(it_ctx_status(ctx, &err), &err);
}

static void check_pipeline_flags(it_test_ctx *t, const sd_case *c, int single, int flags)
{
    char p[1024], q[1024], r[256];
    it_err err;
    it_sd_model m;
    it_sd_load_opts o;
    it_sd_load_opts_init(&o);
    if (single) o.config_dir = fx(t, q, sizeof q, c->name);
    o.flags_text = o.flags_unet = o.flags_vae = flags;
    snprintf(r, sizeof r, "%s%s", c->name, single ? ".safetensors" : "");
    IT_REQUIRE_OK(it_sd_load(&err, &m, fx(t, p, sizeof p, r), &o), &err);
    IT_CHECK_INT(m.loaded, IT_SD_ALL);
    IT_CHECK_INT(m.inpainting, c->in_channels == 9);
    IT_CHECK_INT(m.v2, c->v2);
    IT_CHECK_INT(m.sched.prediction, c->v2 ? IT_PRED_V : IT_PRED_EPSILON);
    it_safetensors *io;
    snprintf(r, sizeof r, "%s_io.safetensors", c->name);
    IT_REQUIRE_OK(it_safetensors_open(&err, &io, fx(t, p, sizeof p, r)), &err);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_autograd_set_enabled(&ctx, 0);
    if (!c->unet_only) check_text(t, &ctx, &m, io, !c->v2);
    check_unet(t, &ctx, &m, io);
    if (!c->unet_only) check_vae(t, &ctx, &m, io);
    it_ctx_free(&ctx);
    it_safetensors_close(io);
    it_sd_free(&m);
}

static void check_pipeline(it_test_ctx *t, const sd_case *c, int single)
{
    check_pipeline_flags(t, c, single, 0);
}

IT_TEST(sd_models_parity_diffusers_folders)
{
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) check_pipeline(t, &CASES[i], 0);
}

IT_TEST(sd_models_parity_single_files)
{
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) check_pipeline(t, &CASES[i], 1);
}

/* The single-file twin loads to bit-identical weights. */
static void same_params(it_test_ctx *t, const it_params *a, const it_params *b)
{
    IT_REQUIRE(it_params_count(a) == it_params_count(b));
    for (size_t i = 0; i < a->n; i++) {
        const it_tensor *x = a->items[i], *y = it_params_find(b, x->name);
        IT_REQUIRE(y && y->n == x->n);
        if (memcmp(x->data, y->data, (size_t)x->n * sizeof(float))) {
            it_test_fail(t, __FILE__, __LINE__, "%s: %s differs", a->label, x->name);
            return;
        }
    }
}

IT_TEST(sd_models_single_file_identical_weights)
{
    char p[1024], q[1024], r[256];
    it_err err;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        it_sd_model a, b;
        it_sd_load_opts o;
        it_sd_load_opts_init(&o);
        IT_REQUIRE_OK(it_sd_load(&err, &a, fx(t, p, sizeof p, CASES[i].name), NULL), &err);
        o.config_dir = p;
        snprintf(r, sizeof r, "%s.safetensors", CASES[i].name);
        IT_REQUIRE_OK(it_sd_load(&err, &b, fx(t, q, sizeof q, r), &o), &err);
        IT_CHECK_INT(b.single_file, 1);
        same_params(t, &a.text.params, &b.text.params);
        same_params(t, &a.unet.params, &b.unet.params);
        same_params(t, &a.vae.params, &b.vae.params);
        it_sd_free(&a);
        it_sd_free(&b);
    }
}

IT_TEST(sd_models_clip_projection)
{
    char p[1024], q[1024];
    it_err err;
    it_clip_text_config c;
    IT_REQUIRE_OK(it_clip_text_config_load(&err, &c, fx(t, p, sizeof p, "clip_proj/config.json")), &err);
    IT_CHECK_INT(c.has_projection, 1);
    it_clip_text m;
    IT_REQUIRE_OK(it_clip_text_init(&err, &m, &c, "text_model.", "text_projection", 0), &err);
    IT_REQUIRE_OK(it_sd_load_params_file(&err, &m.params, fx(t, p, sizeof p, "clip_proj/model.safetensors"),
                                         "text_model."), &err);
    it_safetensors *io;
    IT_REQUIRE_OK(it_safetensors_open(&err, &io, fx(t, q, sizeof q, "clip_proj_io.safetensors")), &err);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_clip_text_out o;
    IT_CHECK_OK(it_clip_text_forward(&err, &ctx, &m, io_get(&ctx, io, "input_ids"), 0, 1, &o), &err);
    CHECK_CLOSE("text_embeds", o.projected, io_get(&ctx, io, "text_embeds"));
    CHECK_CLOSE("last_hidden_state", o.hidden, io_get(&ctx, io, "last_hidden_state"));
    it_ctx_free(&ctx);
    it_safetensors_close(io);
    it_clip_text_free(&m);
}

/* Gradients reach a trainable UNet's weights through every block (the
 * path LoRA training takes), and the loss matches the no-grad forward. */
IT_TEST(sd_models_unet_backward)
{
    char p[1024], r[1024];
    it_err err;
    it_sd_model m;
    it_sd_load_opts o;
    it_sd_load_opts_init(&o);
    o.components = IT_SD_UNET;
    o.flags_unet = IT_MODEL_TRAINABLE;
    IT_REQUIRE_OK(it_sd_load(&err, &m, fx(t, p, sizeof p, "sd1"), &o), &err);
    it_safetensors *io;
    IT_REQUIRE_OK(it_safetensors_open(&err, &io, fx(t, r, sizeof r, "sd1_io.safetensors")), &err);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_tensor *y = it_unet_forward(&ctx, &m.unet, io_get(&ctx, io, "unet.sample"), io_get(&ctx, io, "unet.timestep"),
                                   io_get(&ctx, io, "unet.encoder_hidden_states"));
    CHECK_CLOSE("unet (grad mode)", y, io_get(&ctx, io, "unet.out"));
    IT_REQUIRE_OK(it_autograd_backward(&err, &ctx, it_op_mean(&ctx, it_op_mul(&ctx, y, y))), &err);
    static const char *probe[] = {"conv_in.weight", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                                  "mid_block.resnets.0.time_emb_proj.weight", "up_blocks.1.resnets.1.conv_shortcut.weight",
                                  "time_embedding.linear_1.weight"};
    for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
        it_tensor *w = it_params_find(&m.unet.params, probe[i]);
        IT_REQUIRE(w && w->grad);
        double s = 0;
        for (int64_t j = 0; j < w->n; j++) s += w->grad[j] < 0 ? -w->grad[j] : w->grad[j];
        if (!(s > 0)) it_test_fail(t, __FILE__, __LINE__, "no gradient reached %s", probe[i]);
    }
    it_ctx_free(&ctx);
    it_safetensors_close(io);
    it_sd_free(&m);
}

/* ------------------------------------------------------------ errors */

IT_TEST(sd_models_load_errors)
{
    char p[1024], q[1024];
    it_err err;
    /* An inpainting UNet's weights into a 4-channel config. */
    it_unet_config c;
    IT_REQUIRE_OK(it_unet_config_load(&err, &c, fx(t, p, sizeof p, "sd1/unet/config.json")), &err);
    it_unet u;
    IT_REQUIRE_OK(it_unet_init(&err, &u, &c, 0), &err);
    IT_CHECK(it_sd_load_params_file(&err, &u.params, fx(t, q, sizeof q, "inpaint/unet/diffusion_pytorch_model.safetensors"),
                                    NULL) == IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(err.msg, "unet: conv_in.weight: shape (8, 9, 3, 3) expected (8, 4, 3, 3)");
    /* A VAE file offered as the UNet: the first missing key is named. */
    IT_CHECK(it_sd_load_params_file(&err, &u.params, fx(t, q, sizeof q, "sd1/vae/diffusion_pytorch_model.safetensors"),
                                    NULL) == IT_ERR_NOT_FOUND);
    IT_CHECK_CONTAINS(err.msg, "unet: missing key conv_in.weight");
    it_unet_free(&u);
    /* Unexpected keys: the sd1 UNet file plus one tensor. */
    it_safetensors *f;
    IT_REQUIRE_OK(it_safetensors_open(&err, &f, fx(t, q, sizeof q, "sd1/unet/diffusion_pytorch_model.safetensors")), &err);
    it_safetensors_writer *w;
    IT_REQUIRE_OK(it_safetensors_writer_new(&err, &w), &err);
    for (size_t i = 0; i < it_safetensors_count(f); i++) {
        const it_safetensors_tensor *st = it_safetensors_at(f, i);
        IT_CHECK_OK(it_safetensors_writer_add(&err, w, st->name, st->dtype, st->n_dims, st->shape, st->data), &err);
    }
    static const float extra[2] = {1, 2};
    IT_CHECK_OK(it_safetensors_writer_add(&err, w, "down_blocks.0.extra.weight", IT_DTYPE_F32, IT_SHAPE(2), extra), &err);
    char extra_path[1024];
    snprintf(extra_path, sizeof extra_path, "%s/extra.safetensors", t->tmpdir);
    IT_CHECK_OK(it_safetensors_writer_save(&err, w, extra_path), &err);
    it_safetensors_writer_free(w);
    it_safetensors_close(f);
    IT_REQUIRE_OK(it_unet_init(&err, &u, &c, 0), &err);
    IT_CHECK(it_sd_load_params_file(&err, &u.params, extra_path, NULL) == IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(err.msg, "extra.safetensors: unet: unexpected key down_blocks.0.extra.weight");
    it_unet_free(&u);
    /* Configs we do not implement are named. */
    IT_CHECK(it_unet_config_parse(&err, &c, "{\"class_embed_type\": \"timestep\"}", "x.json") == IT_ERR_UNSUPPORTED);
    IT_CHECK_STR(err.msg, "x.json: \"class_embed_type\": \"timestep\" not supported");
    IT_CHECK(it_unet_config_parse(&err, &c, "{\"down_block_types\": [\"SimpleCrossAttnDownBlock2D\"], "
                                            "\"block_out_channels\": [32]}", "y.json") == IT_ERR_UNSUPPORTED);
    IT_CHECK_CONTAINS(err.msg, "block type SimpleCrossAttnDownBlock2D not supported");
    IT_CHECK(it_unet_config_parse(&err, &c, "{\"layers_per_block\": \"two\"}", "z.json") == IT_ERR_FORMAT);
    IT_CHECK_STR(err.msg, "z.json: \"layers_per_block\" must be an integer");
    IT_CHECK(it_unet_config_parse(&err, &c, "{\"block_out_channels\": [", "w.json") == IT_ERR_FORMAT);
    /* Not a checkpoint. */
    it_sd_model m;
    char r[1024];
    snprintf(r, sizeof r, "%s/engine/ops.safetensors", t->fixtures);
    IT_CHECK(it_sd_load(&err, &m, r, NULL) == IT_ERR_UNSUPPORTED);
    IT_CHECK_CONTAINS(err.msg, "not a Stable Diffusion checkpoint");
    IT_CHECK(it_sd_load(&err, &m, t->tmpdir, NULL) == IT_ERR_NOT_FOUND);
    IT_CHECK_CONTAINS(err.msg, "no model_index.json");
}

IT_TEST(sd_models_detect_variants)
{
    char p[1024];
    it_err err;
    static const struct {
        const char *file;
        it_sd_text_kind text;
        int in_ch, v2, layers;
    } rows[] = {
        {"sd1.safetensors", IT_SD_TEXT_CLIP_L, 4, 0, 2},
        {"sd2.safetensors", IT_SD_TEXT_OPENCLIP, 4, 1, 3},
        {"inpaint.safetensors", IT_SD_TEXT_CLIP_L, 9, 0, 2},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        it_safetensors *f;
        IT_REQUIRE_OK(it_safetensors_open(&err, &f, fx(t, p, sizeof p, rows[i].file)), &err);
        it_sd_detect d;
        IT_CHECK_OK(it_sd_detect_file(&err, f, &d), &err);
        IT_CHECK_INT(d.text, rows[i].text);
        IT_CHECK_INT(d.unet_in_channels, rows[i].in_ch);
        IT_CHECK_INT(d.v2, rows[i].v2);
        IT_CHECK_INT(d.n_text_layers_file, rows[i].layers);
        IT_CHECK(d.has_unet && d.has_vae);
        /* Shape inference recovers everything the shapes say; the SD head
         * and group counts do not fit 8 channels, so the config is asked for. */
        it_unet_config u;
        IT_CHECK(it_sd_infer_unet_config(&err, f, &d, &u) == IT_ERR_UNSUPPORTED);
        IT_CHECK_CONTAINS(err.msg, "unet: level 0 has 8 channels");
        IT_CHECK_INT(u.n_levels, 2);
        IT_CHECK_INT(u.block_out[0], 8);
        IT_CHECK_INT(u.block_out[1], 16);
        IT_CHECK_INT(u.layers_per_block, 1);
        IT_CHECK_INT(u.down_attn[0] + 2 * u.down_attn[1], 1);
        IT_CHECK_INT(u.up_attn[0] + 2 * u.up_attn[1], 2);
        IT_CHECK_INT(u.cross_dim, 32);
        IT_CHECK_INT(u.in_channels, rows[i].in_ch);
        IT_CHECK_INT(u.use_linear_projection, rows[i].v2);
        it_vae_config v;
        /* 8-channel VAE levels cannot be split into SD's 32 groups: the
         * error asks for the config folder. */
        IT_CHECK(it_sd_infer_vae_config(&err, f, &v) == IT_ERR_UNSUPPORTED);
        IT_CHECK_CONTAINS(err.msg, "pass the model's config folder");
        it_clip_text_config c;
        IT_CHECK_OK(it_sd_infer_text_config(&err, f, &d, &c), &err);
        IT_CHECK_INT(c.hidden, 32);
        IT_CHECK_INT(c.n_layers, 2);
        IT_CHECK_INT(c.vocab_size, 664);
        IT_CHECK_INT(c.act, rows[i].v2 ? IT_CLIP_GELU : IT_CLIP_QUICK_GELU);
        it_safetensors_close(f);
    }
}

/* Out of memory at every allocation of a whole pipeline load returns
 * IT_ERR_NOMEM and leaks nothing (the runner checks the live count). */
IT_TEST(sd_models_load_out_of_memory)
{
    char p[1024];
    it_err err;
    fx(t, p, sizeof p, "sd2.safetensors");
    char cfg[1024];
    fx(t, cfg, sizeof cfg, "sd2");
    it_sd_load_opts o;
    it_sd_load_opts_init(&o);
    o.config_dir = cfg;
    o.flags_unet = IT_MODEL_F16; /* the f16 load path too */
    int n_fail = 0;
    for (long n = 0; n < 5000; n++) {
        it_sd_model m;
        it_mem_fail_after(n, 1);
        it_status s = it_sd_load(&err, &m, p, &o);
        it_mem_fail_after(-1, 0);
        if (s == IT_OK) {
            it_sd_free(&m);
            break;
        }
        if (s != IT_ERR_NOMEM) {
            it_test_fail(t, __FILE__, __LINE__, "allocation %ld: %d (%s)", n, (int)s, err.msg);
            return;
        }
        n_fail++;
    }
    IT_CHECK(n_fail > 20);
}

/* The LoRA hook: an adapter on one attention projection of a frozen UNet
 * gets the gradient (checked against central finite differences) and
 * changes nothing while its weight is zero. */
typedef struct test_adapter {
    it_adapter base; /* first member: the hook */
    it_tensor a;     /* (C, C) trainable */
} test_adapter;

static it_tensor *test_adapter_apply(it_ctx *ctx, it_adapter *a, const it_lin *m, it_tensor *x, it_tensor *y)
{
    test_adapter *ta = (test_adapter *)a;
    (void)m;
    return it_op_add(ctx, y, it_op_linear(ctx, x, &ta->a, NULL));
}

static double unet_loss(it_ctx *ctx, it_sd_model *m, const it_safetensors *io, int backward, it_err *err)
{
    it_ctx_reset(ctx);
    it_tensor *y = it_unet_forward(ctx, &m->unet, io_get(ctx, io, "unet.sample"), io_get(ctx, io, "unet.timestep"),
                                   io_get(ctx, io, "unet.encoder_hidden_states"));
    it_tensor *l = it_op_mean(ctx, it_op_mul(ctx, y, y));
    if (it_ctx_status(ctx, err)) return -1;
    double v = it_f32(l)[0];
    if (backward && it_autograd_backward(err, ctx, l)) return -1;
    return v;
}

IT_TEST(sd_models_unet_adapter_hook)
{
    char p[1024];
    it_err err;
    it_sd_model m;
    it_sd_load_opts o;
    it_sd_load_opts_init(&o);
    o.components = IT_SD_UNET;
    IT_REQUIRE_OK(it_sd_load(&err, &m, fx(t, p, sizeof p, "sd1"), &o), &err);
    it_safetensors *io;
    IT_REQUIRE_OK(it_safetensors_open(&err, &io, fx(t, p, sizeof p, "sd1_io.safetensors")), &err);
    it_lin *q = it_params_find_module(&m.unet.params, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q");
    IT_REQUIRE(q);
    int64_t C = q->w->shape[0];
    float *ad = it_calloc((size_t)(C * C), sizeof(float)), *ag = it_calloc((size_t)(C * C), sizeof(float));
    test_adapter ta;
    memset(&ta, 0, sizeof ta);
    ta.base.apply = test_adapter_apply;
    IT_REQUIRE_OK(it_tensor_init_param(&err, &ta.a, "adapter", ad, ag, IT_SHAPE(C, C)), &err);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    double base = unet_loss(&ctx, &m, io, 0, &err);
    it_lin_attach(q, &ta.base);
    IT_CHECK(unet_loss(&ctx, &m, io, 0, &err) == base); /* zero adapter: same output */
    for (int64_t i = 0; i < C * C; i++) ad[i] = 0.05f * (float)((i * 7919) % 13 - 6) / 6.0f;
    IT_REQUIRE(unet_loss(&ctx, &m, io, 1, &err) >= 0);
    /* Frozen base weights got nothing; the adapter did. */
    IT_CHECK(m.unet.params.grad == NULL);
    int64_t probe[3] = {0, C + 1, C * C - 1};
    for (int k = 0; k < 3; k++) {
        int64_t i = probe[k];
        float keep = ad[i], h = 1e-2f;
        ad[i] = keep + h;
        double lp = unet_loss(&ctx, &m, io, 0, &err);
        ad[i] = keep - h;
        double lm = unet_loss(&ctx, &m, io, 0, &err);
        ad[i] = keep;
        double fd = (lp - lm) / (2 * h);
        IT_CHECK(ag[i] != 0);
        if (!(fabs(fd - ag[i]) <= 2e-3 * fmax(1e-3, fabs(ag[i])) + 1e-6))
            it_test_fail(t, __FILE__, __LINE__, "adapter grad[%lld] %.6g vs finite difference %.6g", (long long)i,
                         ag[i], fd);
    }
    it_ctx_free(&ctx);
    it_free(ad);
    it_free(ag);
    it_safetensors_close(io);
    it_sd_free(&m);
}

/* Weights kept as f16 (half the memory) give the same results: the
 * fixtures' values are f16-exact, so only the storage differs. */
IT_TEST(sd_models_parity_f16_weights)
{
    check_pipeline_flags(t, &CASES[0], 0, IT_MODEL_F16);
    check_pipeline_flags(t, &CASES[1], 1, IT_MODEL_F16);
    char p[1024];
    it_err err;
    it_sd_model a, b;
    it_sd_load_opts o;
    it_sd_load_opts_init(&o);
    o.components = IT_SD_UNET;
    IT_REQUIRE_OK(it_sd_load(&err, &a, fx(t, p, sizeof p, "sd1"), &o), &err);
    o.flags_unet = IT_MODEL_F16;
    IT_REQUIRE_OK(it_sd_load(&err, &b, p, &o), &err);
    size_t f32_bytes = a.unet.params.n_floats * 4, f16_bytes = b.unet.params.n_floats * 4;
    for (size_t i = 0; i < b.unet.params.n; i++)
        if (b.unet.params.h16[i]) f16_bytes += (size_t)b.unet.params.items[i]->n * 2;
    IT_CHECK(f16_bytes * 10 < f32_bytes * 6); /* biases and norms stay f32 */
    it_safetensors *io;
    IT_REQUIRE_OK(it_safetensors_open(&err, &io, fx(t, p, sizeof p, "sd1_io.safetensors")), &err);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_autograd_set_enabled(&ctx, 0);
    it_tensor *x = io_get(&ctx, io, "unet.sample"), *ts = io_get(&ctx, io, "unet.timestep");
    it_tensor *c = io_get(&ctx, io, "unet.encoder_hidden_states");
    it_tensor *ya = it_unet_forward(&ctx, &a.unet, x, ts, c);
    it_tensor *yb = it_unet_forward(&ctx, &b.unet, x, ts, c);
    IT_REQUIRE(ya && yb);
    IT_CHECK(!memcmp(ya->data, yb->data, (size_t)ya->n * sizeof(float)));
    /* f16 storage cannot be trained. */
    it_sd_model m;
    o.flags_unet = IT_MODEL_F16 | IT_MODEL_TRAINABLE;
    IT_CHECK(it_sd_load(&err, &m, fx(t, p, sizeof p, "sd1"), &o) == IT_ERR_ARG);
    IT_CHECK_CONTAINS(err.msg, "f16 weights cannot be trainable");
    it_ctx_free(&ctx);
    it_safetensors_close(io);
    it_sd_free(&a);
    it_sd_free(&b);
}
