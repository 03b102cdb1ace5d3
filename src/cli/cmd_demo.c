/* cmd_demo.c: `intenttuner demo`, the main job on the embedded toy world.
 *
 * What it runs grows with the product. Today: write the toy world's vincent
 * fine-tuning task (training images with ground truth, reference boxes, the
 * intent text, the evaluation spec), show the training set as one contact
 * sheet, and turn the intent into the concept hierarchy with the built-in
 * parser, saved as JSON that `intenttuner intent check` accepts. When the
 * toy base model is present (models/toy with unet/, vae/, text_encoder/,
 * tokenizer/), it then generates from text with it and runs a plain LoRA
 * fine-tune of the vincent task (the usual way: trigger word + captions,
 * `intenttuner train`'s loop), with the same prompts sampled before and
 * after. It says whether the base weights are final or interim (the
 * record OUT/pretrain/unet.json), and what is not built yet; nothing is
 * faked when a part is missing. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "diffusion/pipeline.h"
#include "image/geom.h"
#include "image/image.h"
#include "intent/hierarchy.h"
#include "intent/parser.h"
#include "toy/scenario.h"
#include "train/lora_file.h"
#include "train/trainer.h"

#define DEMO_MAX_IMAGES 64

/* Contact sheet of every PNG in dir whose name has no second dot (skips the
 * .mask.png files), in name order, cols per row. */
static it_status write_sheet(it_err *err, const char *dir, const char *out_path, int cols, int *n_out)
{
    struct dirent **names = NULL;
    int n_names = scandir(dir, &names, NULL, alphasort);
    if (n_names < 0) return it_err_set(err, IT_ERR_IO, "%s: cannot list directory", dir);
    it_image imgs[DEMO_MAX_IMAGES];
    int n = 0;
    it_status s = IT_OK;
    for (int i = 0; i < n_names; i++) {
        const char *nm = names[i]->d_name;
        const char *dot = strchr(nm, '.');
        if (s == IT_OK && n < DEMO_MAX_IMAGES && dot && strcmp(dot, ".png") == 0) {
            char path[4096];
            s = it_path_join(err, path, sizeof path, dir, nm);
            if (s == IT_OK) s = it_image_load(err, &imgs[n], path);
            if (s == IT_OK) n++;
        }
        free(names[i]);
    }
    free(names);
    if (s == IT_OK && n == 0) s = it_err_set(err, IT_ERR_NOT_FOUND, "%s: no images", dir);
    it_image sheet = {0};
    if (s == IT_OK) {
        int w = imgs[0].w, h = imgs[0].h, rows = (n + cols - 1) / cols;
        s = it_image_alloc(err, &sheet, w * (n < cols ? n : cols), h * rows, 3);
        if (s == IT_OK) memset(sheet.data, 255, (size_t)sheet.w * sheet.h * 3);
        for (int i = 0; s == IT_OK && i < n; i++)
            s = it_image_paste(err, &sheet, &imgs[i], (i % cols) * w, (i / cols) * h, NULL);
        if (s == IT_OK) s = it_image_save_png(err, &sheet, out_path);
    }
    it_image_free(&sheet);
    for (int i = 0; i < n; i++) it_image_free(&imgs[i]);
    *n_out = n;
    return s;
}

/* Parses a scenario's intent.json; reference image paths are relative to
 * the scenario folder. */
static it_status parse_scenario_intent(it_err *err, it_intent *out, const char *dir)
{
    char path[4096], *text = NULL;
    IT_TRY(it_path_join(err, path, sizeof path, dir, "intent.json"));
    it_intent scratch;
    IT_TRY(it_intent_init(err, &scratch));
    it_status s = it_intent_read_input(err, &scratch, &text, path, dir);
    if (s == IT_OK) {
        it_intent_parse_opts po = {.domain = -1, .refs = scratch.refs, .n_refs = scratch.n_refs,
                                   .image_size = it_intent_image_size};
        s = it_intent_parse(err, out, text, strlen(text), &po);
    }
    it_intent_free(&scratch);
    return s;
}

static it_status save_hierarchy(it_err *err, const it_intent *in, const char *dir)
{
    char path[4096], *json = NULL;
    IT_TRY(it_path_join(err, path, sizeof path, dir, "hierarchy.json"));
    IT_TRY(it_intent_to_json(err, &json, in, 1));
    it_status s = it_file_write_atomic(err, path, json, strlen(json));
    it_free(json);
    return s;
}

/* ---------------------------------------------------------------- model stages */

#define DEMO_LORA_STEPS 200
#define DEMO_GEN_STEPS 20
#define DEMO_CFG 5.0f

/* Text-to-image prompts in the toy world's caption vocabulary. */
static const char *const BASE_PROMPTS[] = {
    "a round orange creature with a red top hat",
    "a blue monster with curly blonde hair, on the grass",
    "a green creature wearing a striped jacket, at night",
    "a tall yellow creature with three eyes and a crown",
    "a purple creature with goggles, jumping, under a blue sky",
    "a pink creature wearing white overalls and a red scarf, in a room",
    "pip with its arms up",
    "a teal creature with long black hair and a bow tie",
};

/* Before / after the fine-tune: the trigger word with the task's concepts,
 * and one prompt without it (the base model's behaviour should stay). */
static const char *const LORA_PROMPTS[] = {
    "vincent standing on the grass",
    "vincent wearing a black leather jacket",
    "vincent wearing a black striped jacket",
    "vincent with red hair",
    "a creature standing on the grass",
};
#define N_LORA_PROMPTS (int)(sizeof LORA_PROMPTS / sizeof LORA_PROMPTS[0])

/* Generates prompts[i] (seed + i) into row `row` of sheet (created on row 0). */
static it_status gen_row(it_err *err, it_sd_model *m, const char *const *prompts, int n, uint64_t seed,
                         it_image *sheet, int row, int rows)
{
    it_progress pr;
    it_progress_start(&pr, "   generate", n);
    for (int i = 0; i < n; i++) {
        it_gen_opts g;
        it_gen_opts_init(&g);
        g.prompt = prompts[i];
        g.steps = DEMO_GEN_STEPS;
        g.cfg = DEMO_CFG;
        g.seed = seed + (uint64_t)i;
        it_gen_result r;
        IT_TRY(it_sd_generate(err, m, NULL, &g, &r));
        it_status s = IT_OK;
        if (!sheet->data) {
            s = it_image_alloc(err, sheet, r.w * n, r.h * rows, 3);
            if (!s) memset(sheet->data, 255, (size_t)sheet->w * sheet->h * 3);
        }
        if (!s) s = it_image_paste(err, sheet, &r.images[0], i * r.w, row * r.h, NULL);
        it_gen_result_free(&r);
        if (s) return s;
        it_progress_update(&pr, i + 1, NULL);
    }
    it_progress_finish(&pr);
    return IT_OK;
}

/* Whether the base UNet is final or interim, from OUT/pretrain/unet.json. */
static void print_model_status(const char *model)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/pretrain/unet.json", model);
    json_t *j = json_load_file(p, 0, NULL);
    if (!j) {
        printf("   (no %s: the UNet's provenance is unknown)\n", p);
        return;
    }
    if (json_is_true(json_object_get(j, "finished")))
        printf("   base UNet: final weights, %lld training steps\n",
               (long long)json_integer_value(json_object_get(j, "steps")));
    else
        printf("   base UNet: INTERIM weights (%lld training steps, the run is not finished): expect rough\n"
               "   images; measured quality in %s/README.md\n",
               (long long)json_integer_value(json_object_get(j, "steps")), model);
    json_decref(j);
}

/* DIR/lora_data/NNN.png + NNN.txt = "vincent, <caption>": the kohya-style
 * folder a plain fine-tune uses (trigger word first, the scenario's
 * captions after it; no masks, no intent). */
static it_status make_lora_data(it_err *err, const char *dir, char *data, size_t n)
{
    char train[4096], src[4600], dst[4600];
    IT_TRY(it_path_join(err, train, sizeof train, dir, "train"));
    IT_TRY(it_path_join(err, data, n, dir, "lora_data"));
    IT_TRY(it_mkdir_p(err, data));
    for (int i = 0;; i++) {
        snprintf(src, sizeof src, "%s/%03d.png", train, i);
        if (!it_file_exists(src)) return i ? IT_OK : it_err_set(err, IT_ERR_NOT_FOUND, "%s: no training images", train);
        uint8_t *png = NULL, *cap = NULL;
        size_t np = 0, nc = 0;
        IT_TRY(it_file_read(err, &png, &np, src, 1 << 26));
        snprintf(dst, sizeof dst, "%s/%03d.png", data, i);
        it_status s = it_file_write_atomic(err, dst, png, np);
        it_free(png);
        snprintf(src, sizeof src, "%s/%03d.txt", train, i);
        if (!s) s = it_file_read(err, &cap, &nc, src, 1 << 20);
        it_buf b;
        it_buf_init(&b);
        if (!s && it_buf_printf(&b, "vincent, %.*s", (int)nc, cap ? (const char *)cap : ""))
            s = it_err_set(err, IT_ERR_NOMEM, "out of memory");
        it_free(cap);
        snprintf(dst, sizeof dst, "%s/%03d.txt", data, i);
        if (!s) s = it_file_write_atomic(err, dst, b.data, b.len);
        it_buf_free(&b);
        if (s) return s;
    }
}

static it_status before_after(it_err *err, const char *model, const char *lora, const char *path)
{
    it_sd_model m;
    IT_TRY(it_sd_load(err, &m, model, NULL));
    it_image sheet = {0};
    it_lora l;
    int have_lora = 0;
    it_status s = gen_row(err, &m, LORA_PROMPTS, N_LORA_PROMPTS, 7, &sheet, 0, 2);
    if (!s) s = it_lora_apply_spec(err, &l, lora, &m.unet.params, &m.text.params);
    if (!s) have_lora = 1;
    if (!s) s = gen_row(err, &m, LORA_PROMPTS, N_LORA_PROMPTS, 7, &sheet, 1, 2);
    if (!s) s = it_image_save_png(err, &sheet, path);
    if (have_lora) it_lora_free(&l);
    it_image_free(&sheet);
    it_sd_free(&m);
    return s;
}

/* Stages 3 and 4, when the toy base model exists. */
static it_status run_model_stages(it_err *err, const char *model, const char *dir, const char *out, int lora_steps)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/unet/config.json", model);
    if (!it_file_exists(p)) {
        printf("\n3. text to image and fine-tuning need the toy base model, and %s has no unet/ yet\n"
               "   (pretraining: intenttuner toy pretrain all --out %s; docs/TOYWORLD.md). The engine,\n"
               "   'generate', 'clip', 'detect' and 'train' exist and are proven against the reference\n"
               "   libraries; the demo stops here.\n", model, model);
        return IT_OK;
    }
    it_sd_model m;
    printf("\n3. text to image with the toy base model (%s; %d steps, guidance %.0f)\n", model, DEMO_GEN_STEPS,
           (double)DEMO_CFG);
    IT_TRY(it_sd_load(err, &m, model, NULL));
    print_model_status(model);
    it_image sheet = {0};
    int n = (int)(sizeof BASE_PROMPTS / sizeof BASE_PROMPTS[0]);
    it_status s = gen_row(err, &m, BASE_PROMPTS, n, 1, &sheet, 0, 1);
    char path[4096];
    if (!s) s = it_path_join(err, path, sizeof path, out, "base_samples.png");
    if (!s) s = it_image_save_png(err, &sheet, path);
    it_image_free(&sheet);
    it_sd_free(&m);
    IT_TRY(s);
    for (int i = 0; i < n; i++) printf("   %d. %s\n", i + 1, BASE_PROMPTS[i]);
    printf("   -> %s (left to right)\n", path);
    if (lora_steps <= 0) return IT_OK;

    printf("\n4. plain LoRA fine-tune of the vincent task (the usual way: trigger word + captions;\n"
           "   the intent is not used yet), %d steps\n", lora_steps);
    char data[4096];
    IT_TRY(make_lora_data(err, dir, data, sizeof data));
    it_train_config tc;
    it_train_config_init(&tc);
    if (snprintf(tc.model, sizeof tc.model, "%s", model) >= (int)sizeof tc.model ||
        snprintf(tc.data, sizeof tc.data, "%s", data) >= (int)sizeof tc.data ||
        snprintf(tc.out, sizeof tc.out, "%s/lora", dir) >= (int)sizeof tc.out)
        return it_err_set(err, IT_ERR_RANGE, "%s: path too long", dir);
    tc.rank = 8, tc.alpha = 8, tc.lr = 1e-3;
    tc.steps = lora_steps, tc.batch = 4, tc.save_every = lora_steps;
    tc.seed = 1;
    tc.quiet = 0;
    it_sd_model probe;
    it_sd_load_opts lo;
    it_sd_load_opts_init(&lo);
    lo.components = IT_SD_UNET | IT_SD_VAE;
    IT_TRY(it_sd_load(err, &probe, model, &lo));
    tc.resolution = probe.unet.cfg.sample_size * (1 << (probe.vae.cfg.n_levels - 1));
    it_sd_free(&probe);
    double loss = 0;
    IT_TRY(it_train_run(err, &tc, &loss));
    printf("   final loss %.4f; LoRA %s/lora.safetensors (kohya format: "
           "intenttuner generate --lora FILE)\n", loss, tc.out);
    snprintf(p, sizeof p, "%s/lora.safetensors", tc.out);
    IT_TRY(it_path_join(err, path, sizeof path, dir, "before_after.png"));
    printf("   sampling before (top row) and after (bottom row):\n");
    IT_TRY(before_after(err, model, p, path));
    for (int i = 0; i < N_LORA_PROMPTS; i++) printf("   %d. %s\n", i + 1, LORA_PROMPTS[i]);
    printf("   -> %s\n", path);
    printf("\n5. not built yet: intent-guided augmentation and captions, the live monitor, evaluation\n"
           "   with the judge and checkpoint ranking (README.md).\n");
    return IT_OK;
}

IT_COMMAND(demo, "run the main job on the embedded toy world: what exists today")
{
    const char *out = "demo-out", *model = "models/toy";
    long seed = 1, lora_steps = DEMO_LORA_STEPS;
    const it_opt opts[] = {
        {"out", 'o', IT_OPT_STR, &out, "DIR", "output folder (default demo-out)"},
        {"seed", 's', IT_OPT_INT, &seed, "S", "seed of the toy scenario (default 1)"},
        {"model", 'm', IT_OPT_STR, &model, "DIR", "toy base model (default models/toy)"},
        {"lora-steps", 0, IT_OPT_INT, &lora_steps, "N", "steps of the LoRA fine-tune (default 200; 0 skips it)"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    const it_cmd_spec spec = {
        "intenttuner demo [--out DIR] [--seed S] [--model DIR] [--lora-steps N]",
        "Runs IntentTuner on its embedded toy world: writes the 'vincent' fine-tuning task (a "
        "held-out cartoon character, 16 training images with nuisance, two reference boxes, "
        "the intent text), shows the training set as a contact sheet and parses the intent "
        "into the concept hierarchy the later stages work from. With the toy base model "
        "(models/toy) it then generates from text and runs a plain LoRA fine-tune of the task, "
        "with samples before and after.",
        opts, 0, 0, NULL};
    const char *pos[1];
    int n_pos, rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;

    it_err err;
    it_err_clear(&err);
    char dir[4096], train[4096], sheet[4096];
    it_intent in;
    int have_intent = 0, n_imgs = 0;
    if (it_path_join(&err, dir, sizeof dir, out, "vincent") != IT_OK) return it_cli_fail(&err);
    printf("1. toy world: writing the vincent fine-tuning task to %s/\n", dir);
    if (it_toy_scenario_write(&err, "vincent", dir, (uint64_t)seed, 128) != IT_OK) goto fail;
    if (it_path_join(&err, train, sizeof train, dir, "train") != IT_OK ||
        it_path_join(&err, sheet, sizeof sheet, dir, "train_sheet.png") != IT_OK)
        goto fail;
    if (write_sheet(&err, train, sheet, 8, &n_imgs) != IT_OK) goto fail;
    printf("   %d training images with captions, masks and ground truth; contact sheet %s\n",
           n_imgs, sheet);

    printf("\n2. intent -> concept hierarchy (built-in parser, offline)\n");
    if (parse_scenario_intent(&err, &in, dir) != IT_OK) goto fail;
    have_intent = 1;
    printf("   \"%s\"\n\n", in.text ? in.text : "");
    it_buf tree;
    it_buf_init(&tree);
    if (it_intent_format_tree(&err, &tree, &in) != IT_OK) {
        it_buf_free(&tree);
        goto fail;
    }
    printf("%s", tree.data ? tree.data : "");
    it_buf_free(&tree);
    if (save_hierarchy(&err, &in, dir) != IT_OK) goto fail;
    printf("   saved %s/hierarchy.json (edit it, check it with 'intenttuner intent check')\n", dir);

    if (run_model_stages(&err, model, dir, out, (int)lora_steps) != IT_OK) goto fail;
    it_intent_free(&in);
    return 0;
fail:
    if (have_intent) it_intent_free(&in);
    return it_cli_fail(&err);
}
