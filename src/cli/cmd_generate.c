/* cmd_generate.c: `intenttuner generate`: text-to-image, img2img and
 * inpainting with a Stable Diffusion model (diffusers folder or single
 * file), with a progress bar per step.
 *
 * --latents FILE takes the initial noise from a safetensors file (the
 * tensor "latents", or the file's only tensor; (B, C, h, w) or (C, h, w)),
 * so that runs can be compared with other implementations: it is the array
 * diffusers' pipelines would draw with randn (pass it to diffusers as
 * `latents=` for text-to-image). --save-latents writes the final latents
 * (before the VAE) the same way. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "diffusion/pipeline.h"
#include "image/image.h"
#include "tensor/safetensors.h"
#include "train/lora_file.h"

typedef struct gen_cli {
    const char *model, *prompt, *negative, *sampler, *init_image, *mask, *latents, *out;
    const char *config, *save_latents;
    long steps, width, height, batch, seed, clip_skip;
    double cfg, strength, eta;
    int vae_tiling, encode_mean, f16;
    it_strlist loras;             /* --lora FILE[:scale], repeatable */
} gen_cli;

/* --latents: the noise array, checked against the expected size. */
static it_status read_noise(it_err *err, float **out, const char *path, size_t n_expect,
                            const it_gen_result *shape_hint)
{
    it_safetensors *f;
    IT_TRY(it_safetensors_open(err, &f, path));
    const it_safetensors_tensor *t = it_safetensors_find(f, "latents");
    if (!t && it_safetensors_count(f) == 1) t = it_safetensors_at(f, 0);
    it_status st = IT_OK;
    if (!t) {
        st = it_err_set(err, IT_ERR_NOT_FOUND, "%s: no tensor 'latents' (and more than one tensor)",
                        path);
    } else if (t->numel != n_expect) {
        st = it_err_set(err, IT_ERR_ARG,
                        "%s: %s has %" PRIu64 " values, the run needs %zu (batch x %d x %d x %d)",
                        path, t->name, t->numel, n_expect, shape_hint->channels, shape_hint->lh,
                        shape_hint->lw);
    } else {
        *out = it_malloc(n_expect * sizeof(float));
        if (!*out) st = it_err_set(err, IT_ERR_NOMEM, "out of memory");
        else st = it_safetensors_load_f32(err, f, t, *out, n_expect);
    }
    it_safetensors_close(f);
    return st;
}

static it_status save_latents(it_err *err, const it_gen_result *r, const char *path)
{
    it_safetensors_writer *w;
    IT_TRY(it_safetensors_writer_new(err, &w));
    int64_t shape[4] = {r->batch, r->channels, r->lh, r->lw};
    it_status st = it_safetensors_writer_add(err, w, "latents", IT_DTYPE_F32, 4, shape, r->latents);
    if (!st) st = it_safetensors_writer_save(err, w, path);
    it_safetensors_writer_free(w);
    return st;
}

/* OUT.png for one image; OUT-0.png, OUT-1.png ... for a batch. */
static void out_name(char *buf, size_t n, const char *out, int i, int batch)
{
    if (batch == 1) {
        snprintf(buf, n, "%s", out);
        return;
    }
    const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
    if (!dot || (slash && dot < slash)) dot = out + strlen(out);
    snprintf(buf, n, "%.*s-%d%s", (int)(dot - out), out, i, dot);
}

static it_status save_images(it_err *err, const it_gen_result *r, const char *out, json_t *files)
{
    char path[1200];
    for (int b = 0; b < r->batch; b++) {
        out_name(path, sizeof path, out, b, r->batch);
        const char *ext = it_path_ext(path);
        if (strcmp(ext, "jpg") == 0 || strcmp(ext, "jpeg") == 0)
            IT_TRY(it_image_save_jpeg(err, &r->images[b], path, 95));
        else
            IT_TRY(it_image_save_png(err, &r->images[b], path));
        json_array_append_new(files, json_string(path));
    }
    return IT_OK;
}

static void on_step(void *user, int done, int total, const float *latents)
{
    it_progress *p = user;
    if (!p->total) it_progress_start(p, "generate", total);
    it_progress_update(p, done, NULL);
}

static it_status load_images(it_err *err, const gen_cli *c, it_image *img, it_image *mask)
{
    if (c->init_image) IT_TRY(it_image_load(err, img, c->init_image));
    if (c->mask) IT_TRY(it_image_load(err, mask, c->mask));
    return IT_OK;
}

/* Fills the pipeline options from the command line (after the model is
 * loaded, since --latents is checked against the run's latent size). */
static it_status build_opts(it_err *err, const gen_cli *c, it_gen_opts *o)
{
    it_gen_opts_init(o);
    o->prompt = c->prompt;
    o->negative = c->negative;
    o->steps = (int)c->steps;
    o->cfg = (float)c->cfg;
    o->seed = (uint64_t)c->seed;
    o->width = (int)c->width;
    o->height = (int)c->height;
    o->batch = (int)c->batch;
    o->clip_skip = (int)c->clip_skip;
    o->vae_tiling = c->vae_tiling;
    o->encode_mean = c->encode_mean;
    o->strength = c->strength;
    IT_TRY(it_sampler_parse(err, &o->sampler, c->sampler));
    o->sampler.eta = (float)c->eta;
    if (c->steps < 1 || c->steps > 1000)
        return it_err_set(err, IT_ERR_ARG, "--steps %ld not in 1..1000", c->steps);
    if (c->strength >= 0 && !c->init_image)
        return it_err_set(err, IT_ERR_ARG, "--strength needs --init-image");
    return IT_OK;
}

static it_status run(it_err *err, const gen_cli *c, json_t *report)
{
    it_sd_load_opts lo;
    it_sd_load_opts_init(&lo);
    lo.config_dir = c->config;
    if (c->f16) lo.flags_text = lo.flags_unet = lo.flags_vae = IT_MODEL_F16;
    it_sd_model m;
    IT_TRY(it_sd_load(err, &m, c->model, &lo));
    it_lora loras[IT_STRLIST_MAX];
    int n_loras = 0;
    it_image img = {0}, mask = {0};
    it_gen_opts o;
    it_gen_result r = {0};
    float *noise = NULL;
    it_schedule_config sc;
    it_progress prog = {0};
    it_status st = build_opts(err, c, &o);
    for (int i = 0; !st && i < c->loras.n; i++) /* several LoRAs stack as adapters */
        if (!(st = it_lora_apply_spec(err, &loras[n_loras], c->loras.items[i], &m.unet.params, &m.text.params)))
            n_loras++;
    if (!st) st = it_sd_schedule_config(err, &sc, &m, c->config);
    if (!st) st = load_images(err, c, &img, &mask);
    if (st) goto done;
    if (c->init_image) o.init_image = &img;
    if (c->mask) o.mask = &mask;
    if (c->latents) {
        /* the latent size this run will have */
        int vsf = 1 << (m.vae.cfg.n_levels - 1);
        int w = o.width ? o.width : (o.init_image ? img.w / vsf * vsf : m.unet.cfg.sample_size * vsf);
        int h = o.height ? o.height : (o.init_image ? img.h / vsf * vsf : m.unet.cfg.sample_size * vsf);
        it_gen_result hint = {.channels = m.vae.cfg.latent_channels, .lw = w / vsf, .lh = h / vsf};
        size_t n = (size_t)o.batch * hint.channels * hint.lw * hint.lh;
        if ((st = read_noise(err, &noise, c->latents, n, &hint))) goto done;
        o.noise = noise;
    }
    o.on_step = on_step;
    o.progress_user = &prog;
    st = it_sd_generate(err, &m, &sc, &o, &r);
    if (prog.total) it_progress_finish(&prog);
    if (st) goto done;
    json_t *files = json_array();
    json_object_set_new(report, "images", files);
    if ((st = save_images(err, &r, c->out, files))) goto done;
    if (c->save_latents && (st = save_latents(err, &r, c->save_latents))) goto done;
    json_object_set_new(report, "sampler", json_string(it_sampler_name(&o.sampler)));
    json_object_set_new(report, "steps", json_integer(o.steps));
    json_object_set_new(report, "width", json_integer(r.w));
    json_object_set_new(report, "height", json_integer(r.h));
    json_object_set_new(report, "seed", json_integer((json_int_t)o.seed));
    json_object_set_new(report, "prediction", json_string(it_pred_type_name(sc.prediction)));
done:
    it_free(noise);
    it_gen_result_free(&r);
    it_image_free(&img);
    it_image_free(&mask);
    for (int i = 0; i < n_loras; i++) it_lora_free(&loras[i]);
    it_sd_free(&m);
    return st;
}

IT_COMMAND(generate, "text-to-image, img2img and inpainting with a Stable Diffusion model")
{
    static gen_cli c;
    memset(&c, 0, sizeof c);
    c.steps = 25;
    c.cfg = 7.0;
    c.sampler = "dpm++2m";
    c.batch = 1;
    c.strength = -1;
    static it_opt opts[24];
    int k = 0;
    opts[k++] = (it_opt){"model", 'm', IT_OPT_STR, &c.model, "PATH", "diffusers folder or single-file .safetensors"};
    opts[k++] = (it_opt){"prompt", 'p', IT_OPT_STR, &c.prompt, "TEXT", "what to draw"};
    opts[k++] = (it_opt){"negative", 'n', IT_OPT_STR, &c.negative, "TEXT", "what to steer away from (default empty)"};
    opts[k++] = (it_opt){"steps", 0, IT_OPT_INT, &c.steps, "N", "sampling steps (25)"};
    opts[k++] = (it_opt){"cfg", 0, IT_OPT_FLOAT, &c.cfg, "S", "classifier-free guidance scale (7; <= 1 disables)"};
    opts[k++] = (it_opt){"sampler", 0, IT_OPT_STR, &c.sampler, "NAME",
                         "ddim, euler, euler_karras, euler_a, dpm++2m, dpm++2m_karras (dpm++2m)"};
    opts[k++] = (it_opt){"seed", 0, IT_OPT_INT, &c.seed, "N", "random seed (0)"};
    opts[k++] = (it_opt){"width", 'W', IT_OPT_INT, &c.width, "W", "image width (model default)"};
    opts[k++] = (it_opt){"height", 'H', IT_OPT_INT, &c.height, "H", "image height (model default)"};
    opts[k++] = (it_opt){"batch", 'b', IT_OPT_INT, &c.batch, "N", "images per prompt (1)"};
    opts[k++] = (it_opt){"init-image", 0, IT_OPT_STR, &c.init_image, "FILE", "img2img / inpainting source"};
    opts[k++] = (it_opt){"strength", 0, IT_OPT_FLOAT, &c.strength, "S",
                         "how much of the init image to redo (img2img 0.8, inpaint 1.0)"};
    opts[k++] = (it_opt){"mask", 0, IT_OPT_STR, &c.mask, "FILE", "inpainting mask: white = repaint"};
    opts[k++] = (it_opt){"latents", 0, IT_OPT_STR, &c.latents, "FILE",
                         "initial noise from a safetensors file (B, C, h, w)"};
    opts[k++] = (it_opt){"save-latents", 0, IT_OPT_STR, &c.save_latents, "FILE",
                         "write the final latents (before the VAE)"};
    opts[k++] = (it_opt){"out", 'o', IT_OPT_STR, &c.out, "OUT.png", "output image (batch: OUT-0.png ...)"};
    opts[k++] = (it_opt){"config", 0, IT_OPT_STR, &c.config, "DIR",
                         "single file: diffusers folder whose configs, tokenizer and scheduler to use"};
    opts[k++] = (it_opt){"clip-skip", 0, IT_OPT_INT, &c.clip_skip, "N", "leave out the last N text layers"};
    opts[k++] = (it_opt){"eta", 0, IT_OPT_FLOAT, &c.eta, "E", "ddim: noise of each step (0)"};
    opts[k++] = (it_opt){"vae-tiling", 0, IT_OPT_FLAG, &c.vae_tiling, NULL, "VAE in tiles (bounded memory)"};
    opts[k++] = (it_opt){"encode-mean", 0, IT_OPT_FLAG, &c.encode_mean, NULL,
                         "VAE-encode init images to the posterior mean (reproducible)"};
    opts[k++] = (it_opt){"f16-weights", 0, IT_OPT_FLAG, &c.f16, NULL,
                         "keep linear/conv weights as f16 in memory (half the memory)"};
    opts[k++] = (it_opt){"lora", 0, IT_OPT_LIST, &c.loras, "FILE[:S]",
                         "apply a LoRA (kohya or diffusers/PEFT file) with scale S (1); repeatable"};
    opts[k++] = (it_opt){NULL, 0, 0, NULL, NULL, NULL};
    static const it_cmd_spec spec = {
        .usage = "intenttuner generate --model PATH --prompt TEXT [options] -o OUT.png",
        .description = "Samples images with a Stable Diffusion 1.x/2.x model: text-to-image; img2img with "
                       "--init-image and --strength; inpainting with --init-image and --mask (9-channel "
                       "inpainting UNets natively, other models by blending the known region each step).",
        .opts = opts,
        .min_pos = 0,
        .max_pos = 0,
        .epilog = "example: intenttuner generate --model sd15/ --prompt \"a red fox\" --steps 25 "
                  "--sampler dpm++2m_karras --seed 7 -o fox.png",
    };
    const char *pos[1];
    int n_pos = 0;
    int rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err;
    it_err_clear(&err);
    if (!c.model || !c.prompt || !c.out) {
        it_err_set(&err, IT_ERR_ARG, "--model, --prompt and -o are required");
        return it_cli_fail(&err);
    }
    if (c.mask && !c.init_image) {
        it_err_set(&err, IT_ERR_ARG, "--mask needs --init-image");
        return it_cli_fail(&err);
    }
    json_t *report = json_object();
    if (run(&err, &c, report)) {
        json_decref(report);
        return it_cli_fail(&err);
    }
    if (it_common.json) {
        char *s = json_dumps(report, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
    } else if (!it_common.quiet) {
        json_t *f;
        size_t i;
        json_array_foreach(json_object_get(report, "images"), i, f) printf("wrote %s\n", json_string_value(f));
    }
    json_decref(report);
    return 0;
}
