/* test_sd_models_cli.c: `intenttuner forward` run as a process ($IT_BIN) on
 * the tiny SD fixtures: outputs equal diffusers' within 1e-4, errors exit
 * with one line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/mem.h"
#include "tensor/safetensors.h"
#include "test.h"

/* Runs "$IT_BIN args"; returns the exit status, stderr in errbuf. */
static int run_bin(it_test_ctx *t, char *errbuf, size_t n, const char *args)
{
    it_test_cli_io io = {.err = errbuf, .err_n = n};
    return it_test_cli(t, &io, args);
}

/* Copies tensors of the io fixture under new names into a file. */
static void write_inputs(it_test_ctx *t, const it_safetensors *io, const char *path, int n,
                         const char *const *from, const char *const *to)
{
    it_err err;
    it_safetensors_writer *w;
    IT_REQUIRE_OK(it_safetensors_writer_new(&err, &w), &err);
    for (int i = 0; i < n; i++) {
        const it_safetensors_tensor *st = it_safetensors_find(io, from[i]);
        IT_REQUIRE(st);
        IT_CHECK_OK(it_safetensors_writer_add(&err, w, to[i], st->dtype, st->n_dims, st->shape, st->data), &err);
    }
    IT_CHECK_OK(it_safetensors_writer_save(&err, w, path), &err);
    it_safetensors_writer_free(w);
}

/* max|a - ref| / max|ref| between a tensor of out and one of io. */
static double out_err(it_test_ctx *t, const char *out_path, const char *name, const it_safetensors *io,
                      const char *ref)
{
    it_err err;
    it_safetensors *o;
    if (it_safetensors_open(&err, &o, out_path)) {
        it_test_fail(t, __FILE__, __LINE__, "%s", err.msg);
        return 1e30;
    }
    const it_safetensors_tensor *a = it_safetensors_find(o, name), *b = it_safetensors_find(io, ref);
    double e = 1e30;
    if (a && b && a->numel == b->numel) {
        float *x = it_malloc(a->numel * sizeof(float)), *y = it_malloc(b->numel * sizeof(float));
        it_safetensors_load_f32(NULL, o, a, x, a->numel);
        it_safetensors_load_f32(NULL, io, b, y, b->numel);
        double mx = 0, mr = 0;
        for (uint64_t i = 0; i < a->numel; i++) {
            double d = x[i] - (double)y[i];
            mx = d < 0 ? (-d > mx ? -d : mx) : (d > mx ? d : mx);
            mr = y[i] < 0 ? (-y[i] > mr ? -y[i] : mr) : (y[i] > mr ? y[i] : mr);
        }
        e = mx / (mr > 0 ? mr : 1);
        it_free(x);
        it_free(y);
    }
    it_safetensors_close(o);
    return e;
}

IT_TEST(sd_models_cli_forward)
{
    char io_path[1024], in[1024], out[1024], args[8192], errbuf[2048];
    it_err err;
    it_safetensors *io;
    snprintf(io_path, sizeof io_path, "%s/sd/sd1_io.safetensors", t->fixtures);
    IT_REQUIRE_OK(it_safetensors_open(&err, &io, io_path), &err);
    snprintf(in, sizeof in, "%s/in.safetensors", t->tmpdir);
    snprintf(out, sizeof out, "%s/out.safetensors", t->tmpdir);
    static const struct {
        const char *comp, *model;  /* model relative to fixtures/sd */
        int n;
        const char *from[3], *to[3];
        const char *out_name, *ref;
    } rows[] = {
        {"unet", "sd1", 3, {"unet.sample", "unet.timestep", "unet.encoder_hidden_states"},
         {"sample", "timestep", "encoder_hidden_states"}, "out", "unet.out"},
        {"unet", "sd1.safetensors --config FX/sd1", 3,
         {"unet.sample", "unet.timestep", "unet.encoder_hidden_states"}, {"sample", "timestep", "encoder_hidden_states"},
         "out", "unet.out"},
        {"text-encoder", "sd1", 1, {"te.input_ids"}, {"input_ids"}, "last_hidden_state", "te.last_hidden_state"},
        {"unet --f16-weights", "sd1", 3, {"unet.sample", "unet.timestep", "unet.encoder_hidden_states"},
         {"sample", "timestep", "encoder_hidden_states"}, "out", "unet.out"},
        {"text-encoder --clip-skip 1", "sd1", 1, {"te.input_ids"}, {"input_ids"}, "last_hidden_state", "te.clip_skip1"},
        {"vae-decode", "sd1", 1, {"vae.latent"}, {"latent"}, "image", "vae.decoded"},
        {"vae-decode --tiled", "sd1", 1, {"vae.tiled_latent"}, {"latent"}, "image", "vae.tiled_decoded"},
        {"vae-encode", "sd1", 1, {"vae.image"}, {"image"}, "mean", "vae.mean"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        write_inputs(t, io, in, rows[i].n, rows[i].from, rows[i].to);
        char model[2048];
        const char *fxm = strstr(rows[i].model, "FX/");
        if (fxm)
            snprintf(model, sizeof model, "%s/sd/%.*s%s/sd/%s", t->fixtures, (int)(fxm - rows[i].model),
                     rows[i].model, t->fixtures, fxm + 3);
        else
            snprintf(model, sizeof model, "%s/sd/%s", t->fixtures, rows[i].model);
        snprintf(args, sizeof args, "forward %s --model %s --in '%s' --out '%s'", rows[i].comp, model, in, out);
        int rc = run_bin(t, errbuf, sizeof errbuf, args);
        if (rc != 0) {
            it_test_fail(t, __FILE__, __LINE__, "%s: exit %d: %s", args, rc, errbuf);
            continue;
        }
        double e = out_err(t, out, rows[i].out_name, io, rows[i].ref);
        if (!(e <= 1e-4)) it_test_fail(t, __FILE__, __LINE__, "%s: rel err %.3g", rows[i].comp, e);
    }
    /* Errors: one line, exit 1 (2 for usage). */
    snprintf(args, sizeof args, "forward unet --model %s/sd/sd1 --in '%s' --out '%s'", t->fixtures, io_path, out);
    IT_CHECK_INT(run_bin(t, errbuf, sizeof errbuf, args), 1);
    IT_CHECK_CONTAINS(errbuf, "no tensor 'sample'");
    snprintf(args, sizeof args, "forward unet --model %s/sd/sd1.safetensors --in '%s' --out '%s'", t->fixtures, in,
             out);
    IT_CHECK_INT(run_bin(t, errbuf, sizeof errbuf, args), 1);
    IT_CHECK_CONTAINS(errbuf, "pass the model's config folder");
    snprintf(args, sizeof args, "forward decoder --model x --in y --out z");
    IT_CHECK_INT(run_bin(t, errbuf, sizeof errbuf, args), 2);
    IT_CHECK_CONTAINS(errbuf, "unknown component 'decoder'");
    snprintf(args, sizeof args, "forward unet --in y --out z");
    IT_CHECK_INT(run_bin(t, errbuf, sizeof errbuf, args), 2);
    IT_CHECK_CONTAINS(errbuf, "--model, --in and --out are required");
    it_safetensors_close(io);
}
