/* test_diffusion_cli.c: `intenttuner generate` run as a process ($IT_BIN) on
 * the tiny SD fixtures: the diffusers folder and its single-file twin give
 * identical PNG files; --latents reproduces diffusers' run; batches, img2img
 * and inpainting write their files; errors exit with one line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "image/image.h"
#include "tensor/safetensors.h"
#include "test.h"

/* Runs "$IT_BIN args"; returns the exit status; stdout and stderr go to
 * outbuf / errbuf (either may be NULL). */
static int gen_run(it_test_ctx *t, char *outbuf, char *errbuf, size_t n, const char *args)
{
    if (outbuf) outbuf[0] = '\0';
    if (errbuf) errbuf[0] = '\0';
    /* absolute: the command runs inside tests/fixtures */
    char bin[4096];
    if (!getenv("IT_BIN") || !realpath(getenv("IT_BIN"), bin)) {
        it_test_fail(t, __FILE__, __LINE__, "IT_BIN is not set (run through make test)");
        return -1;
    }
    char cmd[8192], op[1024], ep[1024];
    snprintf(op, sizeof op, "%s/stdout.txt", t->tmpdir);
    snprintf(ep, sizeof ep, "%s/stderr.txt", t->tmpdir);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' generate %s >'%s' 2>'%s'", t->fixtures, bin, args, op, ep);
    int st = system(cmd);
    char *bufs[2] = {outbuf, errbuf};
    const char *paths[2] = {op, ep};
    for (int i = 0; i < 2; i++) {
        if (!bufs[i]) continue;
        FILE *f = fopen(paths[i], "r");
        size_t k = f ? fread(bufs[i], 1, n - 1, f) : 0;
        bufs[i][k] = '\0';
        if (f) fclose(f);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int same_file(const char *a, const char *b)
{
    uint8_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    it_err e;
    int same = it_file_read(&e, &x, &nx, a, 1 << 24) == IT_OK &&
               it_file_read(&e, &y, &ny, b, 1 << 24) == IT_OK && nx == ny && memcmp(x, y, nx) == 0;
    it_free(x);
    it_free(y);
    return same;
}

#define PROMPT "--prompt 'a red fox in the snow' --negative blurry --steps 4"

IT_TEST(diffusion_cli_folder_and_single_file_identical) {
    static const char *const samplers[] = {"dpm++2m_karras", "euler_a", "ddim"};
    char out[4096], errb[4096], args[4096];
    for (int i = 0; i < 3; i++) {
        char a[600], b[600];
        snprintf(a, sizeof a, "%s", it_test_tmp(t, "folder.png"));
        snprintf(b, sizeof b, "%s", it_test_tmp(t, "single.png"));
        snprintf(args, sizeof args, "--model sd/sd1 " PROMPT " --sampler %s --seed 42 -o '%s' --json",
                 samplers[i], a);
        IT_CHECK_INT(gen_run(t, out, errb, sizeof out, args), 0);
        IT_CHECK_CONTAINS(out, "\"width\":16");
        snprintf(args, sizeof args,
                 "--model sd/sd1.safetensors --config sd/sd1 " PROMPT " --sampler %s --seed 42 -o '%s'",
                 samplers[i], b);
        IT_CHECK_INT(gen_run(t, out, errb, sizeof out, args), 0);
        IT_CHECK_CONTAINS(out, "wrote");
        if (!same_file(a, b)) it_test_fail(t, __FILE__, __LINE__, "%s: folder and single file differ", samplers[i]);
    }
    /* f16 weights in memory: the fixtures are f16-exact, so the same PNG */
    char d[600];
    snprintf(d, sizeof d, "%s", it_test_tmp(t, "f16.png"));
    snprintf(args, sizeof args, "--model sd/sd1 " PROMPT " --sampler ddim --seed 42 --f16-weights -o '%s'", d);
    IT_CHECK_INT(gen_run(t, out, errb, sizeof out, args), 0);
    IT_CHECK(same_file(d, it_test_tmp(t, "single.png")));
    /* a different seed gives a different picture */
    char c[600];
    snprintf(c, sizeof c, "%s", it_test_tmp(t, "seed7.png"));
    snprintf(args, sizeof args, "--model sd/sd1 " PROMPT " --sampler ddim --seed 7 -o '%s'", c);
    IT_CHECK_INT(gen_run(t, out, errb, sizeof out, args), 0);
    IT_CHECK(!same_file(c, it_test_tmp(t, "single.png")));
}

/* --latents takes diffusers' initial noise: --save-latents then equals the
 * final latents of diffusers' run (fixture t2i_sd1_ddim). */
IT_TEST(diffusion_cli_latents_file_reproduces_diffusers) {
    it_err e;
    it_safetensors *f;
    IT_REQUIRE_OK(it_safetensors_open(&e, &f, it_test_fixture(t, "diffusion/pipeline.safetensors")), &e);
    const it_safetensors_tensor *nz = it_safetensors_find(f, "t2i_sd1_ddim/noise");
    const it_safetensors_tensor *lat = it_safetensors_find(f, "t2i_sd1_ddim/latents");
    IT_REQUIRE(nz && lat);
    it_safetensors_writer *w;
    IT_REQUIRE_OK(it_safetensors_writer_new(&e, &w), &e);
    IT_CHECK_OK(it_safetensors_writer_add(&e, w, "latents", nz->dtype, nz->n_dims, nz->shape, nz->data), &e);
    char noise[600], saved[600], png[600], args[4096], out[2048], errb[2048];
    snprintf(noise, sizeof noise, "%s", it_test_tmp(t, "noise.safetensors"));
    snprintf(saved, sizeof saved, "%s", it_test_tmp(t, "final.safetensors"));
    snprintf(png, sizeof png, "%s", it_test_tmp(t, "x.png"));
    IT_CHECK_OK(it_safetensors_writer_save(&e, w, noise), &e);
    it_safetensors_writer_free(w);
    snprintf(args, sizeof args, "--model sd/sd1 " PROMPT " --sampler ddim --latents '%s' --save-latents '%s' -o '%s'",
             noise, saved, png);
    IT_CHECK_INT(gen_run(t, out, errb, sizeof out, args), 0);
    it_safetensors *g;
    IT_REQUIRE_OK(it_safetensors_open(&e, &g, saved), &e);
    const it_safetensors_tensor *mine = it_safetensors_find(g, "latents");
    IT_REQUIRE(mine && mine->numel == 256 && lat->numel == 4 * 256);
    float a[256], b[1024];
    IT_CHECK_OK(it_safetensors_load_f32(&e, g, mine, a, 256), &e);
    IT_CHECK_OK(it_safetensors_load_f32(&e, f, lat, b, 1024), &e);
    double mx = 0;
    for (int i = 0; i < 256; i++) mx = fmax(mx, fabs(b[768 + i]));
    IT_CHECK(it_test_max_abs_diff(a, b + 768, 256) / mx < 1e-4);
    it_safetensors_close(g);
    it_safetensors_close(f);
}

IT_TEST(diffusion_cli_batch_img2img_inpaint) {
    char out[4096], errb[4096], args[4096], base[600];
    snprintf(base, sizeof base, "%s", it_test_tmp(t, "b.png"));
    snprintf(args, sizeof args, "--model sd/sd1 " PROMPT " --batch 2 --sampler euler -o '%s'", base);
    IT_CHECK_INT(gen_run(t, out, errb, sizeof out, args), 0);
    IT_CHECK(it_file_exists(it_test_tmp(t, "b-0.png")));
    IT_CHECK(it_file_exists(it_test_tmp(t, "b-1.png")));
    /* the two images of a batch come from different noise */
    IT_CHECK(!same_file(it_test_tmp(t, "b-0.png"), it_test_tmp(t, "b-1.png")));

    snprintf(args, sizeof args,
             "--model sd/sd1 " PROMPT " --init-image diffusion/pic_rgb.png --strength 0.5 -o '%s'",
             it_test_tmp(t, "i2i.png"));
    IT_CHECK_INT(gen_run(t, out, errb, sizeof out, args), 0);
    snprintf(args, sizeof args,
             "--model sd/inpaint " PROMPT " --init-image diffusion/pic_rgb.png --mask diffusion/pic_mask.png "
             "-o '%s'",
             it_test_tmp(t, "inp.png"));
    IT_CHECK_INT(gen_run(t, out, errb, sizeof out, args), 0);
    it_image img;
    it_err e;
    IT_REQUIRE_OK(it_image_load(&e, &img, it_test_tmp(t, "inp.png")), &e);
    IT_CHECK_INT(img.w, 16);
    IT_CHECK_INT(img.h, 16);
    it_image_free(&img);
}

IT_TEST(diffusion_cli_errors) {
    static const struct {
        const char *args;
        int rc;
        const char *msg;
    } cases[] = {
        {"--model sd/sd1 -o x.png", 2, "--model, --prompt and -o are required"},
        {"--model sd/sd1 --prompt a --sampler plms -o x.png", 2, "unknown sampler 'plms'"},
        {"--model sd/sd1 --prompt a --mask diffusion/pic_mask.png -o x.png", 2, "--mask needs --init-image"},
        {"--model sd/sd1 --prompt a --strength 0.5 -o x.png", 2, "--strength needs --init-image"},
        {"--model sd/sd1 --prompt a --steps 0 -o x.png", 2, "--steps 0 not in 1..1000"},
        {"--model sd/sd1 --prompt a --width 18 -o x.png", 2, "size 18x16 must be a positive multiple of 4"},
        {"--model sd/sd1 --prompt a --latents diffusion/samplers.safetensors -o x.png", 1,
         "no tensor 'latents' (and more than one tensor)"},
        {"--model sd/inpaint --prompt a -o x.png", 2, "is an inpainting model"},
        {"--model sd/sd1 --prompt a --steps 4 --init-image diffusion/pic_rgb.png --strength 0.1 -o x.png", 2,
         "leaves no denoising step"},
        {"--model sd/nonexistent --prompt a -o x.png", 1, "nonexistent"},
    };
    char errb[4096];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char args[2048];
        snprintf(args, sizeof args, "%s", cases[i].args);
        char *o = strstr(args, "x.png");
        if (o) snprintf(o, sizeof args - (size_t)(o - args), "'%s'", it_test_tmp(t, "x.png"));
        IT_CHECK_INT(gen_run(t, NULL, errb, sizeof errb, args), cases[i].rc);
        IT_CHECK_CONTAINS(errb, cases[i].msg);
    }
    IT_CHECK(!it_file_exists(it_test_tmp(t, "x.png")));
}
