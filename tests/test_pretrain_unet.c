/* The toy UNet's pretraining (src/toy/pretrain_unet.c) on a tiny config
 * whose frozen parts are the sd1 fixture's text encoder, tokenizer and VAE
 * (16 px images, 8x8x4 latents): its config round-trips through the
 * loader's parser, every weight of the UNet gets the gradient finite
 * differences give (full-parameter training), a few steps lower the loss,
 * an interrupted and resumed run ends bit-identical to an uninterrupted one,
 * the exported folder loads through sd_pipeline_load and generates, and
 * `intenttuner demo` runs text to image and a LoRA fine-tune on it.
 * One thread: these models are far too small to gain from more, and on a
 * loaded machine OpenMP's barriers would only cost time. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/threads.h"
#include "diffusion/pipeline.h"
#include "image/image.h"
#include "models/unet.h"
#include "tensor/autograd.h"
#include "tensor/ops_loss.h"
#include "test.h"
#include "toy/pretrain.h"
#include "toy/pretrain_unet.h"

/* Tiny UNet: 8/16 channels, cross-attention at the fine level and the mid
 * block; 16 pool images. */
static const char *TINY = "{\"block_out_channels\": [8, 16], \"attention_head_dim\": [2, 2], "
                          "\"norm_num_groups\": 4, \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], "
                          "\"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"], \"pool\": 16, \"warmup\": 2}";

static int copy_file(it_test_ctx *t, const char *from, const char *to)
{
    it_err err;
    uint8_t *d = NULL;
    size_t n = 0;
    IT_CHECK_OK(it_file_read(&err, &d, &n, from, 1 << 24), &err);
    if (!d) return 0;
    it_status s = it_file_write_atomic(&err, to, d, n);
    IT_CHECK_OK(s, &err);
    it_free(d);
    return s == IT_OK;
}

/* DIR with the fixture's text_encoder/, tokenizer/, vae/ (no unet/); the
 * VAE's sample size (the image side the component renders at) becomes 32,
 * the renderer's minimum: 16x16x4 latents. */
static int make_base(it_test_ctx *t, const char *dir)
{
    static const char *files[] = {"text_encoder/config.json", "text_encoder/model.safetensors",
                                  "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/tokenizer_config.json",
                                  "tokenizer/special_tokens_map.json", "vae/config.json",
                                  "vae/diffusion_pytorch_model.safetensors"};
    it_err err;
    char from[1200], to[1200];
    const char *subs[] = {"text_encoder", "tokenizer", "vae"};
    for (int i = 0; i < 3; i++) {
        snprintf(to, sizeof to, "%s/%s", dir, subs[i]);
        IT_CHECK_OK(it_mkdir_p(&err, to), &err);
    }
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(from, sizeof from, "%s/sd/sd1/%s", t->fixtures, files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        if (!copy_file(t, from, to)) return 0;
    }
    snprintf(to, sizeof to, "%s/vae/config.json", dir);
    json_t *v = json_load_file(to, 0, NULL);
    IT_CHECK(v != NULL);
    json_object_set_new(v, "sample_size", json_integer(32));
    IT_CHECK(json_dump_file(v, to, 0) == 0);
    json_decref(v);
    return it_toy_pipeline_files_write(&err, dir) == IT_OK;
}

static void tiny_opts(it_pretrain_opts *o, const char *out, const char *run, int64_t steps)
{
    it_pretrain_opts_init(o);
    o->component = "unet";
    o->out = out;
    o->run_dir = run;
    o->config = TINY;
    o->steps = steps;
    o->batch = 4;
    o->lr = 3e-3;
    o->quiet = 1;
    o->checkpoint_seconds = -1;
}

/* Losses of RUN/unet/train.jsonl, in step order; returns how many. */
static int read_losses(it_test_ctx *t, const char *run, double *loss, int max)
{
    char p[1200], line[4096];
    snprintf(p, sizeof p, "%s/unet/train.jsonl", run);
    FILE *f = fopen(p, "r");
    IT_CHECK(f != NULL);
    if (!f) return 0;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        json_t *s = json_object_get(j, "step"), *l = json_object_get(j, "loss");
        if (json_is_integer(s) && json_is_number(l) && json_integer_value(s) >= 1 && json_integer_value(s) <= max) {
            loss[json_integer_value(s) - 1] = json_number_value(l);
            if (json_integer_value(s) > n) n = (int)json_integer_value(s);
        }
        json_decref(j);
    }
    fclose(f);
    return n;
}

IT_TEST(pretrain_unet_config_roundtrip)
{
    it_err err;
    it_unet_config c, back;
    it_toy_unet_config(&c, 16, 4, 192);
    json_t *j = it_toy_unet_config_json(&c);
    IT_REQUIRE(j != NULL);
    char *text = json_dumps(j, 0);
    json_decref(j);
    IT_REQUIRE_OK(it_unet_config_parse(&err, &back, text, "toy"), &err);
    json_t *again = it_toy_unet_config_json(&back);
    char *text2 = json_dumps(again, 0);
    IT_CHECK_STR(text, text2);
    free(text);
    free(text2);
    json_decref(again);
    IT_CHECK_INT(back.n_levels, 3);
    IT_CHECK_INT(back.cross_dim, 192);
    /* Overrides go through the loader's validation, and the frozen parts'
     * sizes cannot be overridden. */
    json_t *bad = json_loads("{\"block_out_channels\": [12, 16], \"norm_num_groups\": 8}", 0, NULL);
    IT_CHECK(it_toy_unet_config_from(&err, &c, bad, 16, 4, 32) != IT_OK);
    IT_CHECK_CONTAINS(err.msg, "block_out_channels");
    json_decref(bad);
    json_t *forced = json_loads("{\"cross_attention_dim\": 99, \"sample_size\": 3}", 0, NULL);
    IT_CHECK_OK(it_toy_unet_config_from(&err, &c, forced, 8, 4, 32), &err);
    IT_CHECK_INT(c.cross_dim, 32);
    IT_CHECK_INT(c.sample_size, 8);
    json_decref(forced);
}

/* Full-parameter training: for a weight of every kind of layer the UNet
 * has, the gradient backward writes into the parameter matches central
 * differences of the loss. */
static void pretrain_unet_full_gradients_body(it_test_ctx *t)
{
    it_err err;
    it_unet_config c;
    json_t *arch = json_loads(TINY, 0, NULL);
    json_object_del(arch, "pool");
    json_object_del(arch, "warmup");
    IT_REQUIRE_OK(it_toy_unet_config_from(&err, &c, arch, 8, 4, 32), &err);
    json_decref(arch);
    it_unet u;
    IT_REQUIRE_OK(it_unet_init(&err, &u, &c, IT_MODEL_TRAINABLE), &err);
    it_pretrain_init_params(&u.params, 3);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    float x[2 * 4 * 64], tgt[2 * 4 * 64], txt[2 * 5 * 32];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = sinf((float)i * 0.37f), tgt[i] = cosf((float)i * 0.11f);
    for (size_t i = 0; i < sizeof txt / sizeof txt[0]; i++) txt[i] = sinf((float)i * 0.71f);
    float ts[2] = {17, 640};
#define UNET_LOSS(l)                                                                                  \
    do {                                                                                              \
        it_ctx_reset(&ctx);                                                                           \
        it_tensor *p_ = it_unet_forward(&ctx, &u, it_tensor_from(&ctx, x, IT_SHAPE(2, 4, 8, 8)),      \
                                        it_tensor_from(&ctx, ts, IT_SHAPE(2)),                        \
                                        it_tensor_from(&ctx, txt, IT_SHAPE(2, 5, 32)));               \
        l = it_op_mse(&ctx, p_, it_tensor_from(&ctx, tgt, IT_SHAPE(2, 4, 8, 8)), NULL);               \
    } while (0)
    it_tensor *l;
    UNET_LOSS(l);
    IT_REQUIRE(l != NULL);
    IT_REQUIRE_OK(it_autograd_backward(&err, &ctx, l), &err);
    static const char *names[] = {
        "conv_in.weight", "time_embedding.linear_1.weight", "time_embedding.linear_2.bias",
        "down_blocks.0.resnets.0.norm1.weight", "down_blocks.0.resnets.0.conv1.weight",
        "down_blocks.0.resnets.0.time_emb_proj.weight", "down_blocks.0.attentions.0.norm.bias",
        "down_blocks.0.attentions.0.proj_in.weight",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v.weight",
        "down_blocks.0.attentions.0.transformer_blocks.0.norm3.weight",
        "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight",
        "down_blocks.0.attentions.0.proj_out.bias", "down_blocks.0.downsamplers.0.conv.weight",
        "down_blocks.1.resnets.0.conv_shortcut.weight", "mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0.weight",
        "mid_block.resnets.1.conv2.weight", "up_blocks.0.upsamplers.0.conv.weight",
        "up_blocks.1.resnets.1.conv_shortcut.weight", "up_blocks.1.attentions.1.transformer_blocks.0.ff.net.2.weight",
        "conv_norm_out.weight", "conv_out.bias"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        it_tensor *w = it_params_find(&u.params, names[i]);
        if (!w) {
            it_test_fail(t, __FILE__, __LINE__, "no parameter %s", names[i]);
            continue;
        }
        int64_t k = 0; /* the element with the largest gradient */
        for (int64_t j = 1; j < w->n; j++)
            if (fabsf(w->grad[j]) > fabsf(w->grad[k])) k = j;
        double g = w->grad[k], h = 1e-2 * fmax(1.0, fabs(it_f32(w)[k]));
        float keep = it_f32(w)[k];
        it_autograd_set_enabled(&ctx, 0);
        it_f32(w)[k] = keep + (float)h;
        UNET_LOSS(l);
        double lp = it_f32(l)[0];
        it_f32(w)[k] = keep - (float)h;
        UNET_LOSS(l);
        double lm = it_f32(l)[0];
        it_f32(w)[k] = keep;
        it_autograd_set_enabled(&ctx, 1);
        double num = (lp - lm) / (2 * h);
        if (!(fabs(num - g) <= 0.03 * fabs(g) + 2e-4) || g == 0)
            it_test_fail(t, __FILE__, __LINE__, "%s[%lld]: backward %.6g, finite differences %.6g", names[i],
                         (long long)k, g, num);
    }
#undef UNET_LOSS
    it_ctx_free(&ctx);
    it_unet_free(&u);
}

/* A few steps lower the loss; the export loads and generates. */
static void pretrain_unet_learns_and_exports_body(it_test_ctx *t)
{
    it_err err;
    char out[700], run[700];
    snprintf(out, sizeof out, "%s/model", t->tmpdir);
    snprintf(run, sizeof run, "%s/run", t->tmpdir);
    IT_REQUIRE(make_base(t, out));
    it_pretrain_opts o;
    tiny_opts(&o, out, run, 40);
    IT_REQUIRE_OK(it_pretrain_unet(&err, &o), &err);
    double loss[40];
    IT_REQUIRE(read_losses(t, run, loss, 40) == 40);
    double first = 0, last = 0;
    for (int i = 0; i < 8; i++) first += loss[i] / 8, last += loss[32 + i] / 8;
    if (!(last < 0.8 * first)) it_test_fail(t, __FILE__, __LINE__, "loss %.4f -> %.4f: did not fall by 20 %%", first, last);

    it_sd_model m;
    IT_REQUIRE_OK(it_sd_load(&err, &m, out, NULL), &err);
    IT_CHECK_INT(m.loaded, IT_SD_ALL);
    IT_CHECK_INT(m.unet.cfg.block_out[1], 16);
    it_gen_opts g;
    it_gen_opts_init(&g);
    g.prompt = "a blue creature with red hair";
    g.steps = 4;
    g.cfg = 3;
    g.seed = 5;
    it_gen_result r;
    IT_CHECK_OK(it_sd_generate(&err, &m, NULL, &g, &r), &err);
    IT_CHECK_INT(r.w, 32);
    IT_CHECK_INT(r.h, 32);
    int finite = 1;
    for (int i = 0; i < 3 * 32 * 32; i++) finite &= isfinite(r.pixels[i]) != 0;
    IT_CHECK(finite);
    it_gen_result_free(&r);
    it_sd_free(&m);
    char rec[800];
    snprintf(rec, sizeof rec, "%s/pretrain/unet.json", out);
    json_t *j = json_load_file(rec, 0, NULL);
    IT_CHECK(json_is_true(json_object_get(j, "finished")));
    json_decref(j);

    /* Staged training: a new run started from the exported weights sees
     * step 0's batch with a lower loss than the random start did. */
    char init[900], cfg[1200], run2[760];
    snprintf(init, sizeof init, "%s/unet/diffusion_pytorch_model.safetensors", out);
    snprintf(cfg, sizeof cfg, "{%.*s, \"init\": \"%s\"}", (int)strlen(TINY) - 2, TINY + 1, init);
    snprintf(run2, sizeof run2, "%s/staged", t->tmpdir);
    it_pretrain_opts o2;
    tiny_opts(&o2, out, run2, 40);
    o2.config = cfg;
    o2.stop_after = 1;
    IT_CHECK_OK(it_pretrain_unet(&err, &o2), &err);
    double staged[1];
    IT_CHECK(read_losses(t, run2, staged, 1) == 1);
    if (!(staged[0] < loss[0])) it_test_fail(t, __FILE__, __LINE__, "init: loss %.4f, random start %.4f", staged[0], loss[0]);

    /* Quality on 3 captions: the report's shape (the figures of a model
     * trained 40 steps mean nothing). */
    snprintf(rec, sizeof rec, "%s/judge.safetensors", out);
    IT_REQUIRE(copy_file(t, "models/toy/judge.safetensors", rec));
    o.eval_n = 3;
    json_t *rep = json_object();
    IT_REQUIRE_OK(it_quality_unet(&err, &o, rep), &err);
    IT_CHECK_INT(json_integer_value(json_object_get(rep, "n")), 3);
    json_t *per = json_object_get(rep, "per_attribute");
    IT_CHECK(json_object_size(per) > 0);
    int claims = 0;
    const char *k;
    json_t *v;
    json_object_foreach(per, k, v) {
        double g = json_number_value(json_object_get(v, "generated"));
        IT_CHECK(g >= 0 && g <= 1);
        claims += (int)json_integer_value(json_object_get(v, "n"));
    }
    IT_CHECK_INT(claims, json_integer_value(json_object_get(rep, "claims")));
    IT_CHECK(it_file_exists(json_string_value(json_object_get(rep, "grid"))));
    json_decref(rep);
}

static int same_file(it_test_ctx *t, const char *a, const char *b)
{
    it_err err;
    uint8_t *da = NULL, *db = NULL;
    size_t na = 0, nb = 0;
    IT_CHECK_OK(it_file_read(&err, &da, &na, a, 1 << 26), &err);
    IT_CHECK_OK(it_file_read(&err, &db, &nb, b, 1 << 26), &err);
    int same = da && db && na == nb && memcmp(da, db, na) == 0;
    it_free(da);
    it_free(db);
    return same;
}

/* Stopped after 3 steps and resumed (with the latent cache from disk), a
 * run ends with the same losses, weights, optimiser state and EMA as one
 * that ran 6 steps in one go. */
static void pretrain_unet_resume_bit_identical_body(it_test_ctx *t)
{
    it_err err;
    char out[700], runa[700], runb[700], pa[900], pb[900];
    snprintf(out, sizeof out, "%s/model", t->tmpdir);
    snprintf(runa, sizeof runa, "%s/a", t->tmpdir);
    snprintf(runb, sizeof runb, "%s/b", t->tmpdir);
    IT_REQUIRE(make_base(t, out));
    it_pretrain_opts o;
    tiny_opts(&o, out, runa, 6);
    IT_REQUIRE_OK(it_pretrain_unet(&err, &o), &err);
    tiny_opts(&o, out, runb, 6);
    o.stop_after = 3;
    IT_REQUIRE_OK(it_pretrain_unet(&err, &o), &err);
    snprintf(pb, sizeof pb, "%s/unet/latents.safetensors", runb);
    IT_CHECK(it_file_exists(pb));
    /* Without --resume an existing run is refused. */
    o.stop_after = 0;
    IT_CHECK(it_pretrain_unet(&err, &o) != IT_OK);
    IT_CHECK_CONTAINS(err.msg, "--resume");
    o.resume = 1;
    IT_REQUIRE_OK(it_pretrain_unet(&err, &o), &err);
    double la[6], lb[6];
    IT_REQUIRE(read_losses(t, runa, la, 6) == 6);
    IT_REQUIRE(read_losses(t, runb, lb, 6) == 6);
    for (int i = 0; i < 6; i++)
        if (la[i] != lb[i]) it_test_fail(t, __FILE__, __LINE__, "step %d: loss %.9g vs %.9g", i + 1, la[i], lb[i]);
    const char *files[] = {"params.safetensors", "optim.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(pa, sizeof pa, "%s/unet/ckpt/step-00000006/%s", runa, files[i]);
        snprintf(pb, sizeof pb, "%s/unet/ckpt/step-00000006/%s", runb, files[i]);
        if (!same_file(t, pa, pb)) it_test_fail(t, __FILE__, __LINE__, "%s differs after resume", files[i]);
    }
    /* A different run's settings are refused on resume, and so are other
     * frozen weights (a changed text encoder file). */
    tiny_opts(&o, out, runb, 7);
    o.resume = 1;
    IT_CHECK(it_pretrain_unet(&err, &o) != IT_OK);
    IT_CHECK_CONTAINS(err.msg, "another run");
    snprintf(pa, sizeof pa, "%s/text_encoder/config.json", out);
    json_t *cfg = json_load_file(pa, 0, NULL);
    json_object_set_new(cfg, "layer_norm_eps", json_real(1.5e-5));
    IT_CHECK(json_dump_file(cfg, pa, 0) == 0);
    json_decref(cfg);
    tiny_opts(&o, out, runb, 6);
    o.resume = 1;
    IT_CHECK(it_pretrain_unet(&err, &o) != IT_OK);
    IT_CHECK_CONTAINS(err.msg, "another run");
}

IT_TEST(pretrain_unet_full_gradients)
{
    int saved = it_threads_get();
    it_threads_set(1);
    pretrain_unet_full_gradients_body(t);
    it_threads_set(saved);
}

IT_TEST(pretrain_unet_learns_and_exports)
{
    int saved = it_threads_get();
    it_threads_set(1);
    pretrain_unet_learns_and_exports_body(t);
    it_threads_set(saved);
}

IT_TEST(pretrain_unet_resume_bit_identical)
{
    int saved = it_threads_get();
    it_threads_set(1);
    pretrain_unet_resume_bit_identical_body(t);
    it_threads_set(saved);
}

/* Runs "$IT_BIN args" with stdout into TMP/out.txt; returns the exit status
 * and the output in buf. */
static int run_cli(it_test_ctx *t, char *buf, size_t n, const char *args)
{
    it_test_cli_io io = {.out = buf, .out_n = n};
    return it_test_cli(t, &io, args);
}

/* The README demo on a tiny base model: text to image, a 3-step LoRA
 * fine-tune of vincent, before/after samples; and its honest stop when the
 * folder has no UNet. */
IT_TEST(pretrain_unet_demo_runs)
{
    it_err err;
    char model[700], args[2400];
    static char out[65536];
    snprintf(model, sizeof model, "%s/model", t->tmpdir);
    IT_REQUIRE(make_base(t, model));
    snprintf(args, sizeof args, "demo --out '%s/d0' --model '%s' --threads 1", t->tmpdir, model);
    IT_CHECK_INT(run_cli(t, out, sizeof out, args), 0);
    IT_CHECK_CONTAINS(out, "has no unet/ yet");

    it_pretrain_opts o;
    char run[700];
    snprintf(run, sizeof run, "%s/run", t->tmpdir);
    tiny_opts(&o, model, run, 2);
    int saved = it_threads_get();
    it_threads_set(1);
    IT_CHECK_OK(it_pretrain_unet(&err, &o), &err);
    it_threads_set(saved);
    snprintf(args, sizeof args, "demo --out '%s/d1' --model '%s' --lora-steps 3 --threads 1", t->tmpdir, model);
    IT_CHECK_INT(run_cli(t, out, sizeof out, args), 0);
    IT_CHECK_CONTAINS(out, "base UNet: final weights, 2 training steps");
    IT_CHECK_CONTAINS(out, "before (top row) and after (bottom row)");
    const char *files[] = {"d1/base_samples.png", "d1/vincent/before_after.png", "d1/vincent/lora/lora.safetensors",
                           "d1/vincent/lora_data/000.txt"};
    for (int i = 0; i < 4; i++) IT_CHECK(it_file_exists(it_test_tmp(t, files[i])));
    it_image img;
    IT_REQUIRE_OK(it_image_load(&err, &img, it_test_tmp(t, "d1/vincent/before_after.png")), &err);
    IT_CHECK_INT(img.w, 5 * 32);
    IT_CHECK_INT(img.h, 2 * 32);
    it_image_free(&img);
    uint8_t *cap = NULL;
    size_t n = 0;
    IT_CHECK_OK(it_file_read(&err, &cap, &n, it_test_tmp(t, "d1/vincent/lora_data/000.txt"), 4096), &err);
    IT_CHECK(cap && n > 9 && !memcmp(cap, "vincent, ", 9));
    it_free(cap);
}
