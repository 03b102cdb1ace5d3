/* cmd_forward.c: `intenttuner forward COMPONENT`: runs one Stable Diffusion
 * component on tensors from a safetensors file and writes its outputs, for
 * parity checks against other implementations and for debugging
 * conversions.
 *
 * Tensor names (in -> out):
 *   text-encoder  input_ids (B, T) int or float ids -> last_hidden_state, pooler_output
 *   unet          sample (B, C, h, w), timestep (B) or (), encoder_hidden_states (B, T, D) -> out
 *   vae-encode    image (B, 3, H, W) in [-1, 1] -> mean, logvar (latent distribution, unscaled)
 *   vae-decode    latent (B, L, h, w) (already divided by the scaling factor) -> image */
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "models/sd_pipeline_load.h"
#include "tensor/autograd.h"
#include "tensor/ops_shape.h"
#include "tensor/safetensors.h"

typedef struct fwd_opts {
    const char *model, *in, *out, *config;
    long clip_skip;
    int tiled, f16;
} fwd_opts;

/* A tensor of the input file as f32 in ctx. */
static it_tensor *input(it_err *err, it_ctx *ctx, const it_safetensors *f, const char *name)
{
    const it_safetensors_tensor *st;
    if (it_safetensors_get(err, f, name, &st)) return NULL;
    int64_t shape[IT_MAX_DIMS];
    for (int i = 0; i < st->n_dims; i++) shape[i] = st->shape[i];
    it_tensor *x = it_tensor_new(ctx, IT_DTYPE_F32, st->n_dims, shape);
    if (!x) {
        it_err_set(err, IT_ERR_NOMEM, "out of memory for %s", name);
        return NULL;
    }
    if (it_safetensors_load_f32(err, f, st, x->data, (size_t)x->n)) return NULL;
    return x;
}

static it_tensor *to_ids(it_err *err, it_ctx *ctx, const it_tensor *x)
{
    if (x->ndim != 2) {
        it_err_set(err, IT_ERR_ARG, "input_ids must be (B, T)");
        return NULL;
    }
    it_tensor *ids = it_tensor_new(ctx, IT_DTYPE_I32, 2, x->shape);
    if (!ids) return NULL;
    for (int64_t i = 0; i < x->n; i++) ((int32_t *)ids->data)[i] = (int32_t)it_f32(x)[i];
    return ids;
}

static it_status add_out(it_err *err, it_safetensors_writer *w, const char *name, const it_tensor *t)
{
    if (!t) return it_err_set(err, IT_ERR_INTERNAL, "no %s computed", name);
    return it_safetensors_writer_add(err, w, name, IT_DTYPE_F32, t->ndim, t->shape, t->data);
}

static it_status run(it_err *err, const char *what, const fwd_opts *o)
{
    unsigned comp = !strcmp(what, "text-encoder") ? IT_SD_TEXT
                    : !strcmp(what, "unet")       ? IT_SD_UNET
                    : !strcmp(what, "vae-encode") || !strcmp(what, "vae-decode") ? IT_SD_VAE
                                                                                  : 0;
    if (!comp)
        return it_err_set(err, IT_ERR_ARG,
                          "unknown component '%s' (text-encoder, unet, vae-encode or vae-decode)", what);
    it_sd_load_opts lo;
    it_sd_load_opts_init(&lo);
    lo.components = comp;
    lo.config_dir = o->config;
    if (o->f16) lo.flags_text = lo.flags_unet = lo.flags_vae = IT_MODEL_F16;
    it_sd_model m;
    IT_TRY(it_sd_load(err, &m, o->model, &lo));
    if (!(m.loaded & comp)) {
        it_sd_free(&m);
        return it_err_set(err, IT_ERR_NOT_FOUND, "%s: has no %s", o->model, what);
    }
    it_safetensors *in = NULL;
    it_safetensors_writer *w = NULL;
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_autograd_set_enabled(&ctx, 0);
    it_status s = it_safetensors_open(err, &in, o->in);
    if (!s) s = it_safetensors_writer_new(err, &w);
    if (!s && comp == IT_SD_TEXT) {
        it_tensor *x = input(err, &ctx, in, "input_ids");
        it_tensor *ids = x ? to_ids(err, &ctx, x) : NULL;
        it_clip_text_out out;
        s = ids ? it_clip_text_forward(err, &ctx, &m.text, ids, (int)o->clip_skip, 1, &out) : err->code;
        if (!s) s = add_out(err, w, "last_hidden_state", out.hidden);
        if (!s) s = add_out(err, w, "pooler_output", out.pooled);
    } else if (!s && comp == IT_SD_UNET) {
        it_tensor *x = input(err, &ctx, in, "sample");
        it_tensor *ts = x ? input(err, &ctx, in, "timestep") : NULL;
        it_tensor *c = ts ? input(err, &ctx, in, "encoder_hidden_states") : NULL;
        if (c && ts->n == 1 && x->shape[0] > 1) { /* one timestep for the whole batch */
            float v = it_f32(ts)[0];
            ts = it_tensor_new(&ctx, IT_DTYPE_F32, IT_SHAPE(x->shape[0]));
            for (int64_t i = 0; ts && i < ts->n; i++) it_f32(ts)[i] = v;
        } else if (c && ts->ndim == 0) {
            ts = it_op_reshape(&ctx, ts, IT_SHAPE(1));
        }
        if (!c) s = err->code;
        else {
            it_tensor *y = it_unet_forward(&ctx, &m.unet, x, ts, c);
            s = it_ctx_status(&ctx, err);
            if (!s) s = add_out(err, w, "out", y);
        }
    } else if (!s && !strcmp(what, "vae-encode")) {
        it_tensor *x = input(err, &ctx, in, "image");
        if (!x) s = err->code;
        else {
            it_tensor *mo = o->tiled ? it_vae_encode_tiled(&ctx, &m.vae, x) : it_vae_encode(&ctx, &m.vae, x);
            int64_t L = m.vae.cfg.latent_channels;
            it_tensor *mean = it_op_slice(&ctx, mo, 1, 0, L), *lv = it_op_slice(&ctx, mo, 1, L, L);
            s = it_ctx_status(&ctx, err);
            if (!s) s = add_out(err, w, "mean", mean);
            if (!s) s = add_out(err, w, "logvar", lv);
        }
    } else if (!s) {
        it_tensor *z = input(err, &ctx, in, "latent");
        if (!z) s = err->code;
        else {
            it_tensor *y = o->tiled ? it_vae_decode_tiled(&ctx, &m.vae, z) : it_vae_decode(&ctx, &m.vae, z);
            s = it_ctx_status(&ctx, err);
            if (!s) s = add_out(err, w, "image", y);
        }
    }
    if (!s) s = it_safetensors_writer_set_metadata(err, w, "component", what);
    if (!s) s = it_safetensors_writer_save(err, w, o->out);
    it_safetensors_writer_free(w);
    it_safetensors_close(in);
    it_ctx_free(&ctx);
    it_sd_free(&m);
    return s;
}

IT_COMMAND(forward, "run one Stable Diffusion component on tensors from a safetensors file")
{
    static fwd_opts o;
    memset(&o, 0, sizeof o);
    static it_opt opts[8];
    opts[0] = (it_opt){"model", 'm', IT_OPT_STR, &o.model, "PATH", "diffusers folder or single-file .safetensors"};
    opts[1] = (it_opt){"in", 'i', IT_OPT_STR, &o.in, "FILE", "input tensors (.safetensors)"};
    opts[2] = (it_opt){"out", 'o', IT_OPT_STR, &o.out, "FILE", "output tensors (.safetensors)"};
    opts[3] = (it_opt){"config", 0, IT_OPT_STR, &o.config, "DIR",
                       "single file: diffusers folder whose config.json files to use"};
    opts[4] = (it_opt){"clip-skip", 0, IT_OPT_INT, &o.clip_skip, "N", "text encoder: leave out the last N layers"};
    opts[5] = (it_opt){"tiled", 0, IT_OPT_FLAG, &o.tiled, NULL, "vae: tiled encode/decode (bounded memory)"};
    opts[6] = (it_opt){"f16-weights", 0, IT_OPT_FLAG, &o.f16, NULL,
                       "keep linear/conv weights as f16 in memory (half the memory)"};
    opts[7] = (it_opt){NULL, 0, 0, NULL, NULL, NULL};
    static const it_cmd_spec spec = {
        .usage = "intenttuner forward {text-encoder|unet|vae-encode|vae-decode} --model PATH --in IN.safetensors "
                 "--out OUT.safetensors",
        .description = "Runs one component in f32 on the named tensors of IN and writes its outputs to OUT.\n"
                       "text-encoder: input_ids -> last_hidden_state, pooler_output\n"
                       "unet: sample, timestep, encoder_hidden_states -> out\n"
                       "vae-encode: image -> mean, logvar;  vae-decode: latent -> image",
        .opts = opts,
        .min_pos = 1,
        .max_pos = 1,
        .epilog = "example: intenttuner forward unet --model sd15/ --in x.safetensors --out y.safetensors",
    };
    const char *pos[4];
    int n_pos = 0;
    int rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err;
    it_err_clear(&err);
    if (!o.model || !o.in || !o.out) {
        it_err_set(&err, IT_ERR_ARG, "--model, --in and --out are required");
        return it_cli_fail(&err);
    }
    if (run(&err, pos[0], &o)) return it_cli_fail(&err);
    if (!it_common.quiet) printf("wrote %s\n", o.out);
    return 0;
}
