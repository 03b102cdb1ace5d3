/* cmd_toy.c: `intenttuner toy ...`: the toy world from the command line.
 *
 *   toy render   --n N --seed S --out DIR [--filter ...] [--character NAME] [--purpose P]
 *   toy scenario NAME --out DIR [--seed S]
 *   toy sheet    --out FILE.png [--n 64] [--cols 8] ...   (a contact sheet to look at)
 *   toy list     [--json]
 *   toy judge    IMAGE... [--json] [--weights FILE]   (or --eval N --seed S: accuracy on fresh renders)
 *   toy train-judge [--steps N --batch B --seed S --checkpoint PREFIX --resume --log FILE.jsonl]
 * The judge is measurement apparatus: only these two subcommands and the
 * evaluation code use it, never the training/generation pipeline. */
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/threads.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "image/image.h"
#include "toy/characters.h"
#include "toy/creature.h"
#include "toy/judge.h"
#include "toy/judge_train.h"
#include "toy/scenario.h"
#include "toy/toydraw.h"

typedef struct render_opts {
    long n, seed, start, size;
    const char *out, *filter, *character, *purpose;
} render_opts;

static int parse_common(it_err *err, const render_opts *o, it_toy_constraint *c, it_toy_purpose *purpose)
{
    it_toy_constraint_init(c);
    int p = it_toy_purpose_parse(o->purpose ? o->purpose : "pretrain");
    if (p < 0) return it_err_set(err, IT_ERR_ARG, "--purpose must be pretrain, finetune or eval, not '%s'", o->purpose);
    *purpose = (it_toy_purpose)p;
    if (o->n < 1 || o->n > 100000000) return it_err_set(err, IT_ERR_ARG, "--n must be in 1..100000000");
    if (o->size < 32 || o->size > 1024) return it_err_set(err, IT_ERR_ARG, "--size must be in 32..1024");
    if (o->start < 0) return it_err_set(err, IT_ERR_ARG, "--start must be >= 0");
    if (o->filter) IT_TRY(it_toy_filter_parse(err, c, o->filter));
    if (o->character) {
        int ch = it_toy_character_find(o->character);
        if (ch < 0) return it_err_set(err, IT_ERR_ARG, "unknown character '%s' (see 'intenttuner toy list')", o->character);
        c->character = ch;
    }
    /* Fail before any work if the constraints are contradictory or held out. */
    it_toy_attrs a;
    return it_toy_sample(err, &a, c, (uint64_t)o->seed, (uint64_t)o->start, *purpose);
}

static int toy_render(int argc, char **argv)
{
    render_opts o = {100, 0, 0, 128, NULL, NULL, NULL, "pretrain"};
    const it_opt opts[] = {
        {"n", 'n', IT_OPT_INT, &o.n, "N", "number of images (default 100)"},
        {"seed", 's', IT_OPT_INT, &o.seed, "S", "seed (default 0); image i depends only on (seed, i)"},
        {"start", 0, IT_OPT_INT, &o.start, "I", "first image index (default 0)"},
        {"out", 'o', IT_OPT_STR, &o.out, "DIR", "output folder (created)"},
        {"filter", 'f', IT_OPT_STR, &o.filter, "SPEC", "fix attributes: 'hair=red,accessory=none'"},
        {"character", 'c', IT_OPT_STR, &o.character, "NAME", "render a named character"},
        {"purpose", 0, IT_OPT_STR, &o.purpose, "P", "pretrain (default; held-out things refused), finetune, eval"},
        {"size", 0, IT_OPT_INT, &o.size, "PX", "image side in pixels (default 128)"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    const it_cmd_spec spec = {
        "intenttuner toy render --out DIR [options]",
        "Renders toy creatures: per image NNNNNN.png, NNNNNN.mask.png (part bits), NNNNNN.txt (caption) "
        "and NNNNNN.json (attributes, part boxes, caption variants). See docs/TOYWORLD.md.",
        opts, 0, 0,
        "example: intenttuner toy render --n 16 --seed 1 --out /tmp/toy --filter 'hair=red,accessory=none'"};
    const char *pos[1];
    int n_pos = 0, rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err;
    it_err_clear(&err);
    it_toy_constraint c;
    it_toy_purpose purpose;
    if (!o.out) it_err_set(&err, IT_ERR_ARG, "--out DIR is required");
    if (err.code || parse_common(&err, &o, &c, &purpose) || it_mkdir_p(&err, o.out)) return it_cli_fail(&err);
    it_progress prog;
    it_progress_start(&prog, "render", o.n);
    long done = 0;
    it_err first;
    it_err_clear(&first);
    #pragma omp parallel
    {
        it_err e;
        it_err_clear(&e);
        it_toy_renderer r;
        int ok = it_toy_renderer_init(&e, &r, (int)o.size, (int)o.size) == IT_OK;
        uint8_t *rgb = it_malloc((size_t)o.size * o.size * 3), *mask = it_malloc((size_t)o.size * o.size);
        if (ok && (!rgb || !mask)) {
            it_err_set(&e, IT_ERR_NOMEM, "out of memory");
            ok = 0;
        }
        #pragma omp for schedule(dynamic, 4)
        for (long i = 0; i < o.n; i++) {
            if (!ok || first.code) continue;
            uint64_t idx = (uint64_t)(o.start + i);
            it_toy_attrs a;
            char stem[32];
            snprintf(stem, sizeof stem, "%06llu", (unsigned long long)idx);
            it_toy_write_opts wo = {(uint64_t)o.seed, idx, 1, 0};
            if (it_toy_sample(&e, &a, &c, (uint64_t)o.seed, idx, purpose) ||
                it_toy_write_sample(&e, &r, &a, purpose, o.out, stem, &wo, rgb, mask))
                ok = 0;
            long d;
            #pragma omp atomic capture
            d = ++done;
            if (omp_get_thread_num() == 0) it_progress_update(&prog, d, NULL);
        }
        if (!ok) {
            #pragma omp critical
            if (!first.code) first = e;
        }
        it_free(rgb);
        it_free(mask);
        if (r.cv.rgb) it_toy_renderer_free(&r);
    }
    it_progress_update(&prog, done, NULL);
    it_progress_finish(&prog);
    if (first.code) return it_cli_fail(&first);
    if (it_common.json)
        printf("{\"images\": %ld, \"out\": \"%s\"}\n", o.n, o.out);
    else if (!it_common.quiet)
        printf("wrote %ld images to %s\n", o.n, o.out);
    return 0;
}

static int toy_sheet(int argc, char **argv)
{
    render_opts o = {64, 0, 0, 128, NULL, NULL, NULL, "eval"};
    long cols = 8;
    const it_opt opts[] = {
        {"n", 'n', IT_OPT_INT, &o.n, "N", "number of images (default 64)"},
        {"cols", 0, IT_OPT_INT, &cols, "C", "images per row (default 8)"},
        {"seed", 's', IT_OPT_INT, &o.seed, "S", "seed (default 0)"},
        {"start", 0, IT_OPT_INT, &o.start, "I", "first image index (default 0)"},
        {"out", 'o', IT_OPT_STR, &o.out, "FILE", "PNG file to write"},
        {"filter", 'f', IT_OPT_STR, &o.filter, "SPEC", "fix attributes: 'pose=landing'"},
        {"character", 'c', IT_OPT_STR, &o.character, "NAME", "a named character"},
        {"purpose", 0, IT_OPT_STR, &o.purpose, "P", "eval (default), finetune or pretrain"},
        {"size", 0, IT_OPT_INT, &o.size, "PX", "tile side in pixels (default 128)"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    const it_cmd_spec spec = {"intenttuner toy sheet --out FILE.png [options]",
                              "Renders a grid of toy images into one PNG, to look at them.", opts, 0, 0, NULL};
    const char *pos[1];
    int n_pos = 0, rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err;
    it_err_clear(&err);
    it_toy_constraint c;
    it_toy_purpose purpose;
    if (!o.out) it_err_set(&err, IT_ERR_ARG, "--out FILE is required");
    else if (cols < 1 || cols > 64) it_err_set(&err, IT_ERR_ARG, "--cols must be in 1..64");
    else if (o.n > 4096) it_err_set(&err, IT_ERR_ARG, "--n must be at most 4096 for a sheet");
    if (err.code || parse_common(&err, &o, &c, &purpose)) return it_cli_fail(&err);
    int S = (int)o.size, rows = (int)((o.n + cols - 1) / cols);
    it_image sheet = {0};
    it_toy_renderer r = {0};
    uint8_t *tile = it_malloc((size_t)S * S * 3);
    it_status st = tile ? IT_OK : it_err_set(&err, IT_ERR_NOMEM, "out of memory");
    if (!st) st = it_image_alloc(&err, &sheet, (int)cols * S, rows * S, 3);
    if (!st) st = it_toy_renderer_init(&err, &r, S, S);
    if (!st) memset(sheet.data, 0, (size_t)sheet.w * sheet.h * 3);
    for (long i = 0; !st && i < o.n; i++) {
        it_toy_attrs a;
        st = it_toy_sample(&err, &a, &c, (uint64_t)o.seed, (uint64_t)(o.start + i), purpose);
        if (!st) st = it_toy_render(&err, &r, &a, purpose, tile, NULL, NULL);
        int gx = (int)(i % cols), gy = (int)(i / cols);
        for (int y = 0; !st && y < S; y++)
            memcpy(sheet.data + ((size_t)(gy * S + y) * sheet.w + (size_t)gx * S) * 3, tile + (size_t)y * S * 3,
                   (size_t)S * 3);
    }
    if (!st) st = it_image_save_png(&err, &sheet, o.out);
    it_free(tile);
    it_image_free(&sheet);
    if (r.cv.rgb) it_toy_renderer_free(&r);
    if (st) return it_cli_fail(&err);
    if (!it_common.quiet) printf("wrote %s (%ld images)\n", o.out, o.n);
    return 0;
}

static int toy_scenario(int argc, char **argv)
{
    const char *out = NULL;
    long seed = 0, size = 128;
    const it_opt opts[] = {
        {"out", 'o', IT_OPT_STR, &out, "DIR", "output folder (created)"},
        {"seed", 's', IT_OPT_INT, &seed, "S", "seed (default 0)"},
        {"size", 0, IT_OPT_INT, &size, "PX", "image side in pixels (default 128)"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    const it_cmd_spec spec = {"intenttuner toy scenario NAME --out DIR [options]",
                              "Writes a fine-tuning task: train/ (images, captions, truth), refs/, intent.json, "
                              "eval.json. Scenarios: vincent, landing, duo (see 'toy list').",
                              opts, 1, 1, NULL};
    const char *pos[2];
    int n_pos = 0, rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err;
    it_err_clear(&err);
    if (!out) it_err_set(&err, IT_ERR_ARG, "--out DIR is required");
    else if (size < 32 || size > 1024) it_err_set(&err, IT_ERR_ARG, "--size must be in 32..1024");
    if (err.code || it_toy_scenario_write(&err, pos[0], out, (uint64_t)seed, (int)size)) return it_cli_fail(&err);
    if (it_common.json)
        printf("{\"scenario\": \"%s\", \"out\": \"%s\"}\n", pos[0], out);
    else if (!it_common.quiet)
        printf("wrote scenario %s to %s\n", pos[0], out);
    return 0;
}

static json_t *list_json(void)
{
    json_t *attrs = json_object(), *chars = json_array(), *scen = json_array();
    for (int a = 0; a < IT_TOY_N_ATTRS; a++) {
        const it_toy_attr_info *ai = it_toy_attr_get(a);
        json_t *vals = json_array();
        for (int v = 0; v < ai->n_values; v++) {
            const it_toy_value *tv = &ai->values[v];
            json_t *o = json_pack("{s:s, s:s}", "name", tv->name, "words", tv->words);
            if (o && ai->is_colour) json_object_set_new(o, "rgb", json_pack("[iii]", tv->rgb[0], tv->rgb[1], tv->rgb[2]));
            json_array_append_new(vals, o);
        }
        json_object_set_new(attrs, ai->name, vals);
    }
    for (int i = 0; i < it_toy_character_count(); i++) {
        const it_toy_character *ch = it_toy_character_get(i);
        json_array_append_new(chars, json_pack("{s:s, s:b, s:s, s:s}", "name", ch->name, "held_out", ch->held_out,
                                               "marking", it_toy_value_name(IT_TOY_MARKING, ch->marking), "about",
                                               ch->about));
    }
    for (int i = 0; i < it_toy_scenario_count(); i++)
        json_array_append_new(scen, json_pack("{s:s, s:s}", "name", it_toy_scenario_name(i), "about",
                                              it_toy_scenario_about(i)));
    return json_pack("{s:o, s:o, s:o}", "attributes", attrs, "characters", chars, "scenarios", scen);
}

static int toy_list(int argc, char **argv)
{
    const it_opt opts[] = {{NULL, 0, 0, NULL, NULL, NULL}};
    const it_cmd_spec spec = {"intenttuner toy list [--json]",
                              "Lists the toy world's attributes and values, characters and scenarios.", opts, 0, 0,
                              NULL};
    const char *pos[1];
    int n_pos = 0, rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    if (it_common.json) {
        json_t *j = list_json();
        int bad = !j || json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0;
        json_decref(j);
        if (bad) {
            it_err err;
            it_err_set(&err, IT_ERR_NOMEM, "out of memory");
            return it_cli_fail(&err);
        }
        putchar('\n');
        return 0;
    }
    printf("attributes:\n");
    for (int a = 0; a < IT_TOY_N_ATTRS; a++) {
        const it_toy_attr_info *ai = it_toy_attr_get(a);
        printf("  %-17s", ai->name);
        for (int v = 0; v < ai->n_values; v++) printf("%s%s", v ? ", " : "", ai->values[v].name);
        printf("\n");
    }
    printf("\ncharacters (* = held out of pretraining):\n");
    for (int i = 0; i < it_toy_character_count(); i++) {
        const it_toy_character *ch = it_toy_character_get(i);
        printf("  %-8s %s %s\n", ch->name, ch->held_out ? "*" : " ", ch->about);
    }
    printf("  (pose 'landing' is held out of pretraining too)\n\nscenarios:\n");
    for (int i = 0; i < it_toy_scenario_count(); i++)
        printf("  %-8s %s\n", it_toy_scenario_name(i), it_toy_scenario_about(i));
    return 0;
}

/* ---------------------------------------------------------------- judge */

#define JUDGE_DEFAULT_WEIGHTS "models/toy/judge.safetensors"

/* The shipped weights: ./models/toy/... when run from the repository, else
 * next to the binary (build/intenttuner -> ../models/toy/...). */
static const char *judge_default_weights(char *buf, size_t n)
{
    FILE *f = fopen(JUDGE_DEFAULT_WEIGHTS, "rb");
    if (f) {
        fclose(f);
        return JUDGE_DEFAULT_WEIGHTS;
    }
    char exe[1024];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return JUDGE_DEFAULT_WEIGHTS;
    exe[len] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return JUDGE_DEFAULT_WEIGHTS;
    *slash = 0;
    snprintf(buf, n, "%s/../" JUDGE_DEFAULT_WEIGHTS, exe);
    return buf;
}

static void judge_print_eval(const double *acc, const double *loc_px, int located, int n, long seed)
{
    if (it_common.json) {
        json_t *o = json_object();
        for (int h = 0; h < IT_JUDGE_N_HEADS; h++)
            json_object_set_new(o, it_judge_head_name(h), json_real(round(acc[h] * 1e4) / 1e4));
        json_t *j = json_pack("{s:i, s:I, s:o}", "images", n, "seed", (json_int_t)seed, "accuracy", o);
        if (located)
            json_object_set_new(j, "locator_px", json_pack("{s:f, s:f}", "face", round(loc_px[0] * 100) / 100, "body",
                                                           round(loc_px[1] * 100) / 100));
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(j);
        return;
    }
    printf("held-out accuracy on %d fresh renders of seed %ld:\n", n, seed);
    double mn = 1;
    for (int h = 0; h < IT_JUDGE_N_HEADS; h++) {
        printf("  %-17s %6.2f%%\n", it_judge_head_name(h), 100 * acc[h]);
        if (acc[h] < mn) mn = acc[h];
    }
    printf("  %-17s %6.2f%%\n", "(minimum)", 100 * mn);
    if (located)
        printf("locator: face centre %.2f px, body centre %.2f px from the truth on average (128x128 renders)\n",
               loc_px[0], loc_px[1]);
}

static int judge_images(it_err *err, const it_judge *j, it_ctx *ctx, const char **paths, int n)
{
    json_t *all = it_common.json ? json_array() : NULL;
    for (int i = 0; i < n; i++) {
        it_image img = {0};
        it_judge_pred p;
        if (it_image_load(err, &img, paths[i]) || it_judge_classify(err, j, ctx, &img, 1, &p)) {
            it_image_free(&img);
            json_decref(all);
            return 1;
        }
        /* Located boxes in the image's pixels (the input is the image resized). */
        int bx[2][4];
        for (int a = 0; a < 2; a++)
            for (int k = 0; k < 4; k++) bx[a][k] = (int)lrintf(p.box[a][k] * (float)(k % 2 ? img.h : img.w));
        it_image_free(&img);
        if (all) {
            json_t *o = it_judge_pred_to_json(&p);
            json_t *e = json_pack("{s:s, s:o}", "image", paths[i], "attributes", o);
            if (e && p.located)
                json_object_set_new(e, "boxes", json_pack("{s:[i,i,i,i], s:[i,i,i,i]}", "face", bx[0][0], bx[0][1],
                                                          bx[0][2], bx[0][3], "body", bx[1][0], bx[1][1], bx[1][2], bx[1][3]));
            json_array_append_new(all, e);
            continue;
        }
        printf("%s:\n", paths[i]);
        if (p.located)
            printf("  (read the face at %d,%d-%d,%d and the body at %d,%d-%d,%d)\n", bx[0][0], bx[0][1], bx[0][2], bx[0][3],
                   bx[1][0], bx[1][1], bx[1][2], bx[1][3]);
        for (int h = 0; h < IT_JUDGE_N_HEADS; h++)
            printf("  %-17s %-10s %5.1f%%\n", it_judge_head_name(h), it_judge_class_name(h, p.cls[h]), 100 * p.prob[h]);
    }
    if (all) {
        json_dumpf(all, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(all);
    }
    return 0;
}

static int toy_judge(int argc, char **argv)
{
    const char *weights = NULL;
    long eval_n = 0, seed = 777;
    double p_char = 0.25;
    const it_opt opts[] = {
        {"weights", 'w', IT_OPT_STR, &weights, "FILE", "judge weights (default " JUDGE_DEFAULT_WEIGHTS ")"},
        {"eval", 0, IT_OPT_INT, &eval_n, "N", "instead of images: accuracy per head on N fresh renders"},
        {"seed", 's', IT_OPT_INT, &seed, "S", "seed of the --eval renders (default 777)"},
        {"p-character", 0, IT_OPT_FLOAT, &p_char, "P", "share of named characters in --eval renders (default 0.25)"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    const it_cmd_spec spec = {
        "intenttuner toy judge IMAGE... [--json] | toy judge --eval N [--seed S]",
        "Reads toy creatures back: identity (a named character or none) and every attribute, each with the "
        "judge's confidence. For measuring generated images only; the pipeline never uses it.",
        opts, 0, -1, "example: intenttuner toy judge out/000000.png --json"};
    const char **pos = malloc(sizeof(char *) * (size_t)(argc + 1));
    if (!pos) return 1;
    int n_pos = 0, rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) {
        free(pos);
        return rc;
    }
    it_err err;
    it_err_clear(&err);
    if (!n_pos && eval_n <= 0) it_err_set(&err, IT_ERR_ARG, "give IMAGE files or --eval N");
    else if (n_pos && eval_n > 0) it_err_set(&err, IT_ERR_ARG, "--eval renders its own images: give no IMAGE files");
    else if (eval_n > 1000000) it_err_set(&err, IT_ERR_ARG, "--eval must be at most 1000000");
    else if (!(p_char >= 0 && p_char <= 1)) it_err_set(&err, IT_ERR_ARG, "--p-character must be in 0..1");
    if (err.code) {
        free(pos);
        return it_cli_fail(&err);
    }
    /* Inputs first (headers only): a typo should not wait for the weights. */
    for (int i = 0; i < n_pos && !err.code; i++) {
        it_image_info info;
        it_image_info_file(&err, &info, pos[i]);
    }
    if (err.code) {
        free(pos);
        return it_cli_fail(&err);
    }
    char buf[1100];
    if (!weights) weights = judge_default_weights(buf, sizeof buf);
    it_judge j;
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    if (it_judge_load(&err, &j, weights, 0)) {
        it_ctx_free(&ctx);
        free(pos);
        return it_cli_fail(&err);
    }
    int fail = 0;
    if (eval_n > 0) {
        double acc[IT_JUDGE_N_HEADS], loc_px[2];
        fail = it_judge_evaluate_ex(&err, &j, &ctx, (uint64_t)seed, (int)eval_n, (float)p_char, acc, loc_px) != IT_OK;
        if (!fail) judge_print_eval(acc, loc_px, j.cfg.crops, (int)eval_n, seed);
    } else {
        fail = judge_images(&err, &j, &ctx, pos, n_pos);
    }
    it_judge_free(&j);
    it_ctx_free(&ctx);
    free(pos);
    return fail ? it_cli_fail(&err) : 0;
}

/* "16,32,64" -> out[0..2], the rest of out zeroed (IT_JUDGE_N_CONV values at most). */
static void parse_int_list(it_err *err, const char *opt, const char *text, int *out)
{
    int n = 0;
    const char *p = text;
    memset(out, 0, IT_JUDGE_N_CONV * sizeof *out);
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 4096 || n == IT_JUDGE_N_CONV || (*end && *end != ',')) {
            it_err_set(err, IT_ERR_ARG, "%s '%s': expected up to %d comma-separated numbers in 1..4096", opt, text,
                       IT_JUDGE_N_CONV);
            return;
        }
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (!n) it_err_set(err, IT_ERR_ARG, "%s is empty", opt);
}

static int toy_train_judge(int argc, char **argv)
{
    it_judge_train_opts o;
    it_judge_train_defaults(&o);
    long seed = (long)o.seed, steps = o.steps, batch = o.batch, warmup = o.warmup, ck_every = o.checkpoint_every;
    long eval_every = o.eval_every, eval_n = o.eval_n, eval_seed = (long)o.eval_seed, size = o.model.size;
    long log_every = o.log_every, stop_after = 0, aux_layer = o.aux_layer;
    double lr = o.lr, wd = o.weight_decay, p_char = o.p_character, aux_w = o.aux_weight, time_limit = 0;
    int resume = 0, f32 = 0, no_aug = 0, pool = o.model.pool, flatten = 0, no_crops = 0;
    long hidden = o.model.hidden, crops = o.model.crops;
    const char *widths = NULL, *strides = NULL;
    const it_opt opts[] = {
        {"out", 'o', IT_OPT_STR, &o.out, "FILE", "final weights (default " JUDGE_DEFAULT_WEIGHTS ")"},
        {"steps", 0, IT_OPT_INT, &steps, "N", "optimiser steps (default 3000)"},
        {"batch", 'b', IT_OPT_INT, &batch, "B", "images per step (default 32)"},
        {"seed", 's', IT_OPT_INT, &seed, "S", "training data and initialisation seed (default 1)"},
        {"lr", 0, IT_OPT_FLOAT, &lr, "LR", "peak AdamW learning rate (default 2e-3), cosine decay"},
        {"warmup", 0, IT_OPT_INT, &warmup, "N", "warm-up steps (default 100)"},
        {"weight-decay", 0, IT_OPT_FLOAT, &wd, "W", "AdamW weight decay (default 0.01)"},
        {"p-character", 0, IT_OPT_FLOAT, &p_char, "P", "share of named characters (default 0.5)"},
        {"size", 0, IT_OPT_INT, &size, "PX", "input side of the network (default 128, the render size)"},
        {"widths", 0, IT_OPT_STR, &widths, "C,C,...", "channels of the conv layers (default 16,32,64,128,128)"},
        {"strides", 0, IT_OPT_STR, &strides, "S,S,...", "stride (1 or 2) of each conv layer (default 2,2,2,2,2)"},
        {"hidden", 0, IT_OPT_INT, &hidden, "N", "width of the MLP layer (default 256)"},
        {"pool", 0, IT_OPT_FLAG, &pool, NULL, "global max+mean pooling of the last grid"},
        {"flatten", 0, IT_OPT_FLAG, &flatten, NULL, "flatten the last grid into the MLP (the first judges' head)"},
        {"crops", 0, IT_OPT_INT, &crops, "V",
         "crop networks: 1 = face, head, body; 2 = face, head, neck, body at 64 px (default 2; docs/TOYWORLD.md)"},
        {"no-crops", 0, IT_OPT_FLAG, &no_crops, NULL, "no locator and crop networks (the judges before them; --crops 0)"},
        {"checkpoint", 'c', IT_OPT_STR, &o.checkpoint, "PREFIX", "write PREFIX.safetensors + PREFIX.optim.safetensors"},
        {"checkpoint-every", 0, IT_OPT_INT, &ck_every, "N", "checkpoint period in steps (default 100)"},
        {"init", 0, IT_OPT_STR, &o.init, "FILE", "start from these judge weights instead of random ones (a second stage)"},
        {"resume", 0, IT_OPT_FLAG, &resume, NULL, "continue from --checkpoint PREFIX"},
        {"stop-after", 0, IT_OPT_INT, &stop_after, "N", "run N steps now, checkpoint and exit (resume later)"},
        {"log", 0, IT_OPT_STR, &o.log, "FILE", "JSONL log (train lines, eval lines, final line)"},
        {"log-every", 0, IT_OPT_INT, &log_every, "N", "train log period in steps (default 10)"},
        {"eval-every", 0, IT_OPT_INT, &eval_every, "N", "held-out evaluation period (default 500, 0 = end only)"},
        {"eval-n", 0, IT_OPT_INT, &eval_n, "N", "images per evaluation (default 512)"},
        {"eval-seed", 0, IT_OPT_INT, &eval_seed, "S", "evaluation seed (default 1000003)"},
        {"f32", 0, IT_OPT_FLAG, &f32, NULL, "save the final weights in f32 instead of f16"},
        {"no-augment", 0, IT_OPT_FLAG, &no_aug, NULL, "train on clean renders (diagnostics)"},
        {"aux-layer", 0, IT_OPT_INT, &aux_layer, "L",
         "dense part supervision on the grid of conv layer L (1-based; 0 = off; training only)"},
        {"aux-weight", 0, IT_OPT_FLOAT, &aux_w, "W", "weight of the dense supervision loss (default 1)"},
        {"time-limit", 0, IT_OPT_FLOAT, &time_limit, "SECONDS",
         "stop after this wall time: checkpoint, write the weights so far to --out (resume continues)"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    const it_cmd_spec spec = {
        "intenttuner toy train-judge [options]",
        "Trains the toy judge on augmented renders (purpose eval: held-out characters included, since the judge "
        "measures results on them and is no generative model's training data). Seeded and resumable.",
        opts, 0, 0, "example: nice intenttuner toy train-judge --checkpoint /tmp/judge-ck --log /tmp/judge.jsonl"};
    const char *pos[1];
    int n_pos = 0, rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err;
    it_err_clear(&err);
    if (steps < 1 || steps > 100000000 || batch < 1 || batch > 4096 || ck_every < 1 || log_every < 1 || eval_every < 0 || stop_after < 0 ||
        eval_n < 1 || eval_n > 1000000 || size < 32 || size > 512 || warmup < 0 || seed < 0 || eval_seed < 0 ||
        !(p_char >= 0 && p_char <= 1) || aux_layer < 0 || aux_layer > IT_JUDGE_N_CONV || !(aux_w >= 0 && aux_w <= 100) ||
        !(time_limit >= 0))
        it_err_set(&err, IT_ERR_ARG, "an option is out of range (see --help)");
    if (!err.code && widths) parse_int_list(&err, "--widths", widths, o.model.width);
    if (!err.code && strides) parse_int_list(&err, "--strides", strides, o.model.stride);
    if (!err.code && (hidden < 8 || hidden > 4096)) it_err_set(&err, IT_ERR_ARG, "--hidden %ld not in 8..4096", hidden);
    if (!err.code && (crops < 0 || crops > 2)) it_err_set(&err, IT_ERR_ARG, "--crops %ld: expected 0, 1 or 2", crops);
    if (err.code) return it_cli_fail(&err);
    o.model.hidden = (int)hidden;
    o.model.pool = flatten ? 0 : pool;
    o.model.crops = no_crops ? 0 : (int)crops;
    o.seed = (uint64_t)seed, o.steps = steps, o.batch = (int)batch, o.warmup = warmup < steps ? warmup : steps - 1;
    o.checkpoint_every = ck_every, o.log_every = log_every, o.eval_every = eval_every, o.eval_n = (int)eval_n;
    o.eval_seed = (uint64_t)eval_seed, o.model.size = (int)size, o.lr = lr, o.weight_decay = wd;
    o.p_character = (float)p_char, o.resume = resume, o.stop_after = stop_after, o.out_f32 = f32, o.augment = !no_aug;
    o.aux_layer = (int)aux_layer, o.aux_weight = aux_w, o.time_limit = time_limit;
    o.quiet = it_common.quiet || it_common.json;
    char *dir = strdup(o.out), *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash) *slash = 0;
    int bad = slash && it_mkdir_p(&err, dir);
    free(dir);
    it_judge_train_result res;
    if (bad || it_judge_train(&err, &o, &res)) return it_cli_fail(&err);
    if (it_common.json) {
        json_t *a = json_object();
        for (int h = 0; h < IT_JUDGE_N_HEADS; h++) json_object_set_new(a, it_judge_head_name(h), json_real(res.acc[h]));
        json_t *j = json_pack("{s:s, s:I, s:f, s:f, s:o}", "out", o.out, "steps", (json_int_t)res.steps_done, "seconds",
                              res.seconds, "seconds_per_step", res.step_seconds, "accuracy", a);
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(j);
    } else if (res.steps_done < o.steps) {
        if (!it_common.quiet)
            printf("stopped at step %lld of %lld; checkpoint %s.safetensors (continue with --resume)\n",
                   (long long)res.steps_done, (long long)o.steps, o.checkpoint);
    } else if (!it_common.quiet) {
        printf("wrote %s after %lld steps (%.0f s this run, %.3f s/step)\n", o.out, (long long)res.steps_done, res.seconds,
               res.step_seconds);
        judge_print_eval(res.acc, NULL, 0, o.eval_n, (long)o.eval_seed);
    }
    return 0;
}

static void toy_usage(FILE *f)
{
    fprintf(f, "usage: intenttuner toy <subcommand> [options]\n\n"
               "The toy world: procedural creatures with ground truth, and fine-tuning scenarios.\n\n"
               "subcommands:\n"
               "  render     render N images with captions, masks and truth JSON\n"
               "  scenario   write a fine-tuning scenario folder (vincent, landing, duo)\n"
               "  sheet      render a contact sheet PNG to look at\n"
               "  list       list attributes, characters and scenarios\n"
               "  judge      read attributes and identity back from images (measurement only)\n"
               "  train-judge  train the judge's weights (models/toy/judge.safetensors)\n"
               "  pretrain   pretrain a toy model (clip, vae, unet, ...) into models/toy\n"
               "  quality    measure the pretrained toy models on fresh renders\n\n"
               "Run 'intenttuner toy <subcommand> --help' for its options.\n");
}

int it_cli_toy_pretrain(int argc, char **argv); /* cmd_toy_pretrain.c */

IT_COMMAND(toy, "toy world: render creatures with ground truth, write scenarios")
{
    if (argc < 2) {
        toy_usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        toy_usage(stdout);
        return 0;
    }
    if (!strcmp(sub, "render")) return toy_render(argc - 1, argv + 1);
    if (!strcmp(sub, "scenario")) return toy_scenario(argc - 1, argv + 1);
    if (!strcmp(sub, "sheet")) return toy_sheet(argc - 1, argv + 1);
    if (!strcmp(sub, "list")) return toy_list(argc - 1, argv + 1);
    if (!strcmp(sub, "judge")) return toy_judge(argc - 1, argv + 1);
    if (!strcmp(sub, "train-judge")) return toy_train_judge(argc - 1, argv + 1);
    if (!strcmp(sub, "pretrain") || !strcmp(sub, "quality")) return it_cli_toy_pretrain(argc - 1, argv + 1);
    fprintf(stderr, "intenttuner: error: unknown toy subcommand '%s'\n(run 'intenttuner toy --help')\n", sub);
    return 2;
}
