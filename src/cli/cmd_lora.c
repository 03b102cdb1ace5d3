/* cmd_lora.c: `intenttuner lora inspect FILE` (modules, ranks, alphas,
 * metadata of a kohya or diffusers/PEFT LoRA file) and `intenttuner lora
 * merge --model DIR --lora FILE[:S]... --out DIR` (a diffusers folder whose
 * UNet and text encoder have the LoRAs merged into their weights; the other
 * files are copied). */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "models/sd_pipeline_load.h"
#include "tensor/safetensors.h"
#include "train/lora_file.h"

static int lora_inspect(int argc, char **argv)
{
    static const it_opt opts[] = {{0}};
    static const it_cmd_spec spec = {"intenttuner lora inspect FILE [--json]",
                                     "Lists a LoRA file's modules (UNet / text encoder), ranks, alphas and ss_* metadata.",
                                     opts, 1, 1, NULL};
    const char *pos[2];
    int n_pos = 0;
    int rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err = {0};
    it_lora l;
    if (it_lora_load(&err, &l, pos[0], NULL, NULL, 0)) return it_cli_fail(&err);
    it_safetensors *f = NULL;
    if (it_safetensors_open(&err, &f, pos[0])) {
        it_lora_free(&l);
        return it_cli_fail(&err);
    }
    json_t *j = json_object(), *mods = json_array(), *meta = json_object();
    size_t n_conv = 0;
    for (size_t i = 0; i < l.n; i++) {
        const it_lora_mod *m = &l.mods[i];
        n_conv += m->kh > 1;
        json_array_append_new(mods, json_pack("{s:s, s:I, s:I, s:I, s:I, s:f}", "name", m->name, "rank", (json_int_t)m->rank,
                                              "in", (json_int_t)m->in, "out", (json_int_t)m->out, "kernel",
                                              (json_int_t)m->kh, "alpha", (double)m->alpha));
    }
    for (size_t i = 0; i < it_safetensors_metadata_count(f); i++) {
        const char *k, *v;
        it_safetensors_metadata_at(f, i, &k, &v);
        json_object_set_new(meta, k, json_string(v));
    }
    json_object_set_new(j, "file", json_string(pos[0]));
    json_object_set_new(j, "unet_modules", json_integer((json_int_t)it_lora_count(&l, 1)));
    json_object_set_new(j, "text_modules", json_integer((json_int_t)it_lora_count(&l, 0)));
    json_object_set_new(j, "conv3x3_modules", json_integer((json_int_t)n_conv));
    json_object_set_new(j, "parameters", json_integer((json_int_t)l.n_floats));
    json_object_set_new(j, "dtype", json_string(it_safetensors_count(f) ? it_safetensors_at(f, 0)->dtype_name : "?"));
    json_object_set_new(j, "metadata", meta);
    if (it_common.json) {
        json_object_set_new(j, "modules", mods);
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (s) puts(s);
        free(s);
    } else {
        printf("%s: %zu UNet modules, %zu text-encoder modules (%zu 3x3 conv), %zu parameters, %s\n", pos[0],
               it_lora_count(&l, 1), it_lora_count(&l, 0), n_conv, l.n_floats,
               json_string_value(json_object_get(j, "dtype")));
        if (l.n) printf("rank %lld, alpha %g (scale %g)\n", (long long)l.mods[0].rank, (double)l.mods[0].alpha,
                        (double)it_lora_mod_scale(&l.mods[0]));
        const char *k;
        json_t *v;
        json_object_foreach(meta, k, v) printf("  %s = %s\n", k, json_string_value(v));
        json_decref(mods);
    }
    json_decref(j);
    it_safetensors_close(f);
    it_lora_free(&l);
    return 0;
}

/* Copies every plain file of src/sub to dst/sub except skip (NULL = none). */
static it_status copy_dir(it_err *err, const char *src, const char *dst, const char *sub, const char *skip)
{
    char s[4096], d[4096];
    snprintf(s, sizeof s, "%s/%s", src, sub);
    snprintf(d, sizeof d, "%s/%s", dst, sub);
    DIR *dir = opendir(s);
    if (!dir) return IT_OK;
    it_status st = it_mkdir_p(err, d);
    struct dirent *e;
    while (!st && (e = readdir(dir))) {
        char ps[4400], pd[4400];
        snprintf(ps, sizeof ps, "%s/%s", s, e->d_name);
        snprintf(pd, sizeof pd, "%s/%s", d, e->d_name);
        if (e->d_name[0] == '.' || it_is_dir(ps) || (skip && strstr(e->d_name, skip))) continue;
        uint8_t *data = NULL;
        size_t n = 0;
        st = it_file_read(err, &data, &n, ps, (size_t)16 << 30);
        if (!st) st = it_file_write_atomic(err, pd, data, n);
        it_free(data);
    }
    closedir(dir);
    return st;
}

static it_status save_params(it_err *err, const it_params *ps, const char *path)
{
    it_safetensors_writer *w = NULL;
    IT_TRY(it_safetensors_writer_new(err, &w));
    it_status s = IT_OK;
    for (size_t i = 0; !s && i < it_params_count(ps); i++) {
        const it_tensor *t = ps->items[i];
        s = it_safetensors_writer_add(err, w, t->name, IT_DTYPE_F32, t->ndim, t->shape, t->data);
    }
    if (!s) s = it_safetensors_writer_save(err, w, path);
    it_safetensors_writer_free(w);
    return s;
}

static int lora_merge(int argc, char **argv)
{
    static const char *model, *out;
    static it_strlist loras;
    static const it_opt opts[] = {
        {"model", 'm', IT_OPT_STR, &model, "DIR", "diffusers folder of the base model"},
        {"lora", 0, IT_OPT_LIST, &loras, "FILE[:S]", "LoRA to merge with scale S (1); repeatable"},
        {"out", 'o', IT_OPT_STR, &out, "DIR", "new diffusers folder"},
        {0}};
    static const it_cmd_spec spec = {"intenttuner lora merge --model DIR --lora FILE[:S]... --out DIR",
                                     "Writes a diffusers folder whose UNet and text encoder weights have the LoRAs merged "
                                     "in (W += S * alpha/rank * up @ down); other files are copied.",
                                     opts, 0, 0, NULL};
    const char *pos[1];
    int n_pos = 0;
    int rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err = {0};
    if (!model || !out || !loras.n) {
        it_err_set(&err, IT_ERR_ARG, "--model, --lora and --out are required");
        return it_cli_fail(&err);
    }
    if (!it_is_dir(model)) {
        it_err_set(&err, IT_ERR_ARG, "--model %s: merge needs a diffusers folder", model);
        return it_cli_fail(&err);
    }
    it_sd_load_opts o;
    it_sd_load_opts_init(&o);
    o.components = IT_SD_UNET | IT_SD_TEXT;
    it_sd_model m;
    if (it_sd_load(&err, &m, model, &o)) return it_cli_fail(&err);
    it_status s = IT_OK;
    for (int i = 0; !s && i < loras.n; i++) {
        it_lora l;
        s = it_lora_apply_spec(&err, &l, loras.items[i], &m.unet.params, &m.text.params);
        if (!s) {
            it_lora_detach(&l);
            s = it_lora_merge(&err, &l);
            it_lora_free(&l);
        }
    }
    const char *subs[] = {"", "scheduler", "tokenizer", "vae", "feature_extractor"};
    for (size_t i = 0; !s && i < sizeof subs / sizeof subs[0]; i++) s = copy_dir(&err, model, out, subs[i], NULL);
    if (!s) s = copy_dir(&err, model, out, "unet", ".safetensors");
    if (!s) s = copy_dir(&err, model, out, "text_encoder", ".safetensors");
    char p[4096];
    snprintf(p, sizeof p, "%s/unet/diffusion_pytorch_model.safetensors", out);
    if (!s) s = save_params(&err, &m.unet.params, p);
    snprintf(p, sizeof p, "%s/text_encoder/model.safetensors", out);
    if (!s) s = save_params(&err, &m.text.params, p);
    it_sd_free(&m);
    if (s) return it_cli_fail(&err);
    if (!it_common.quiet) printf("wrote %s (%d LoRA merged)\n", out, loras.n);
    return 0;
}

IT_COMMAND(lora, "inspect LoRA files and merge them into a model")
{
    if (argc >= 2 && !strcmp(argv[1], "inspect")) return lora_inspect(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "merge")) return lora_merge(argc - 1, argv + 1);
    printf("usage: intenttuner lora {inspect FILE | merge --model DIR --lora FILE[:S]... --out DIR}\n");
    it_err err;
    it_err_set(&err, IT_ERR_ARG, "lora: expected 'inspect' or 'merge'");
    return argc >= 2 && !strcmp(argv[1], "--help") ? 0 : it_cli_fail(&err);
}
