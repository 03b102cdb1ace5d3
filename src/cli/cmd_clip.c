/* cmd_clip.c: `intenttuner clip score`: CLIP similarity of N images against
 * M texts (transformers' logits_per_image and its softmax over the texts). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "image/image.h"
#include "vision/clip.h"

typedef struct score_opts {
    const char *model;
    it_strlist images, texts;
} score_opts;

/* Embeds every image and text; emb arrays hold (n, embed_dim). */
static it_status embed_all(it_err *err, it_clip *m, const score_opts *o, float *img, float *txt)
{
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_status s = IT_OK;
    for (int i = 0; i < o->images.n && !s; i++) {
        it_image im = {0};
        s = it_image_load(err, &im, o->images.items[i]);
        if (!s) s = it_clip_embed_image(err, &ctx, m, &im, img + (size_t)i * (size_t)m->embed_dim);
        it_image_free(&im);
    }
    for (int j = 0; j < o->texts.n && !s; j++)
        s = it_clip_embed_text(err, &ctx, m, o->texts.items[j], txt + (size_t)j * (size_t)m->embed_dim);
    it_ctx_free(&ctx);
    return s;
}

/* Softmax over the texts of each image row (CLIPModel's probs). */
static void softmax_rows(float *p, const float *l, int rows, int cols)
{
    for (int i = 0; i < rows; i++) {
        const float *r = l + (size_t)i * (size_t)cols;
        float mx = r[0];
        for (int j = 1; j < cols; j++) mx = r[j] > mx ? r[j] : mx;
        double sum = 0;
        for (int j = 0; j < cols; j++) sum += exp((double)(r[j] - mx));
        for (int j = 0; j < cols; j++) p[(size_t)i * (size_t)cols + (size_t)j] = (float)(exp((double)(r[j] - mx)) / sum);
    }
}

static void print_results(const score_opts *o, const float *logits, const float *probs)
{
    int M = o->texts.n;
    if (it_common.json) {
        json_t *rows = json_array();
        for (int i = 0; i < o->images.n; i++) {
            json_t *scores = json_array();
            for (int j = 0; j < M; j++)
                json_array_append_new(scores, json_pack("{s:s, s:f, s:f}", "text", o->texts.items[j], "logit",
                                                        (double)logits[i * M + j], "prob",
                                                        (double)probs[i * M + j]));
            json_array_append_new(rows, json_pack("{s:s, s:o}", "image", o->images.items[i], "scores", scores));
        }
        char *s = json_dumps(rows, JSON_INDENT(2));
        if (s) puts(s);
        free(s);
        json_decref(rows);
        return;
    }
    for (int i = 0; i < o->images.n; i++) {
        printf("%s\n", o->images.items[i]);
        for (int j = 0; j < M; j++)
            printf("  %8.4f  %6.4f  %s\n", (double)logits[i * M + j], (double)probs[i * M + j], o->texts.items[j]);
    }
}

static it_status run_score(it_err *err, const score_opts *o)
{
    it_clip m;
    IT_TRY(it_clip_load(err, &m, o->model));
    size_t d = (size_t)m.embed_dim, N = (size_t)o->images.n, M = (size_t)o->texts.n;
    float *img = it_malloc(N * d * sizeof(float)), *txt = it_malloc(M * d * sizeof(float));
    float *logits = it_malloc(N * M * sizeof(float)), *probs = it_malloc(N * M * sizeof(float));
    it_status s = img && txt && logits && probs ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "out of memory");
    if (!s) s = embed_all(err, &m, o, img, txt);
    if (!s) {
        it_clip_logits(&m, logits, img, (int)N, txt, (int)M);
        softmax_rows(probs, logits, (int)N, (int)M);
        print_results(o, logits, probs);
    }
    it_free(img);
    it_free(txt);
    it_free(logits);
    it_free(probs);
    it_clip_free(&m);
    return s;
}

static int cmd_score(int argc, char **argv)
{
    static score_opts o;
    memset(&o, 0, sizeof o);
    static it_opt opts[4];
    opts[0] = (it_opt){"model", 'm', IT_OPT_STR, &o.model, "DIR",
                       "CLIP folder (transformers CLIPModel or OpenCLIP layout, with tokenizer files)"};
    opts[1] = (it_opt){"image", 'i', IT_OPT_LIST, &o.images, "FILE", "image to score (repeatable)"};
    opts[2] = (it_opt){"text", 't', IT_OPT_LIST, &o.texts, "TEXT", "text to score against (repeatable)"};
    opts[3] = (it_opt){NULL, 0, 0, NULL, NULL, NULL};
    static const it_cmd_spec spec = {
        "intenttuner clip score --model DIR --image FILE [--image ...] --text TEXT [--text ...]",
        "Prints CLIP's logits_per_image (100 x cosine for OpenAI CLIP) of every image against every "
        "text, and the softmax over the texts.",
        opts, 0, 0,
        "example:\n  intenttuner clip score -m clip-vit-base-patch32 -i cat.png -t \"a cat\" -t \"a dog\""};
    const char *pos[8];
    int n_pos = 0;
    int rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err;
    it_err_clear(&err);
    if (!o.model) it_err_set(&err, IT_ERR_ARG, "--model DIR is required");
    else if (!o.images.n) it_err_set(&err, IT_ERR_ARG, "at least one --image is required");
    else if (!o.texts.n) it_err_set(&err, IT_ERR_ARG, "at least one --text is required");
    if (err.code) return it_cli_fail(&err);
    if (run_score(&err, &o)) return it_cli_fail(&err);
    return 0;
}

IT_COMMAND(clip, "CLIP image-text similarity: clip score")
{
    if (argc >= 2 && !strcmp(argv[1], "score")) return cmd_score(argc - 1, argv + 1);
    it_err err;
    it_err_clear(&err);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: intenttuner clip score --help\n");
        return 0;
    }
    it_err_set(&err, IT_ERR_ARG, "clip: expected a subcommand: score");
    return it_cli_fail(&err);
}
