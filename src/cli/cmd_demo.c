/* cmd_demo.c: `intenttuner demo`, the main job on the embedded toy world.
 *
 * What it runs grows with the product. Today: write the toy world's vincent
 * fine-tuning task (training images with ground truth, reference boxes, the
 * intent text, the evaluation spec), show the training set as one contact
 * sheet, and turn the intent into the concept hierarchy with the built-in
 * parser, saved as JSON that `intenttuner intent check` accepts. Stages that
 * need the toy world's pretrained models (training, generation, evaluation)
 * are listed as such at the end, never faked. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "image/geom.h"
#include "image/image.h"
#include "intent/hierarchy.h"
#include "intent/parser.h"
#include "toy/scenario.h"

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

IT_COMMAND(demo, "run the main job on the embedded toy world: what exists today")
{
    const char *out = "demo-out";
    long seed = 1;
    const it_opt opts[] = {
        {"out", 'o', IT_OPT_STR, &out, "DIR", "output folder (default demo-out)"},
        {"seed", 's', IT_OPT_INT, &seed, "S", "seed of the toy scenario (default 1)"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    const it_cmd_spec spec = {
        "intenttuner demo [--out DIR] [--seed S]",
        "Runs IntentTuner on its embedded toy world: writes the 'vincent' fine-tuning task (a "
        "held-out cartoon character, 16 training images with nuisance, two reference boxes, "
        "the intent text), shows the training set as a contact sheet and parses the intent "
        "into the concept hierarchy the later stages work from.",
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

    printf("\n3. next: the engine, Stable Diffusion inference ('generate'), CLIP and OWL-ViT\n"
           "   ('clip', 'detect') and LoRA training ('train') exist and are proven against\n"
           "   the reference libraries, but the toy world has no pretrained base models yet,\n"
           "   so the demo stops here. Not built yet: intent-guided augmentation, caption\n"
           "   refinement, the live monitor, evaluation and checkpoint ranking (README.md).\n");
    it_intent_free(&in);
    return 0;
fail:
    if (have_intent) it_intent_free(&in);
    return it_cli_fail(&err);
}
