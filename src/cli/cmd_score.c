/* cmd_score.c: `intenttuner score`: preference (aesthetic) scores of images
 * from a CLIP model and an MLP head over its normalised image embeddings. */
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "image/image.h"
#include "vision/clip.h"
#include "vision/preference.h"

/* The head's config: --head-config, else pref_config.json beside the weights. */
static void config_path(char *out, size_t cap, const char *head, const char *given)
{
    if (given) {
        snprintf(out, cap, "%s", given);
        return;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", head);
    snprintf(out, cap, "%s/pref_config.json", dirname(tmp));
}

static it_status score_images(it_err *err, it_clip *m, const it_pref *p, const char **paths, int n)
{
    if (p->input_dim != m->embed_dim)
        return it_err_set(err, IT_ERR_ARG, "head input_dim %d does not match the CLIP embedding width %d",
                          p->input_dim, m->embed_dim);
    float *emb = it_malloc((size_t)n * (size_t)m->embed_dim * sizeof(float)), *sc = it_malloc((size_t)n * sizeof(float));
    it_status s = emb && sc ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "out of memory");
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    for (int i = 0; i < n && !s; i++) {
        it_image im = {0};
        s = it_image_load(err, &im, paths[i]);
        if (!s) s = it_clip_embed_image(err, &ctx, m, &im, emb + (size_t)i * (size_t)m->embed_dim);
        it_image_free(&im);
    }
    if (!s) s = it_pref_score(err, &ctx, p, emb, n, sc);
    if (!s && it_common.json) {
        json_t *arr = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s, s:f}", "image", paths[i], "score", (double)sc[i]));
        char *txt = json_dumps(arr, JSON_INDENT(2));
        if (txt) puts(txt);
        free(txt);
        json_decref(arr);
    } else if (!s) {
        for (int i = 0; i < n; i++) printf("%9.5f  %s\n", (double)sc[i], paths[i]);
    }
    it_ctx_free(&ctx);
    it_free(emb);
    it_free(sc);
    return s;
}

IT_COMMAND(score, "preference score of images: CLIP embedding + MLP head")
{
    static const char *model, *head, *head_config;
    model = head = head_config = NULL;
    static it_opt opts[4];
    opts[0] = (it_opt){"model", 'm', IT_OPT_STR, &model, "DIR", "CLIP folder (as for clip score)"};
    opts[1] = (it_opt){"head", 0, IT_OPT_STR, &head, "FILE", "head weights (.safetensors)"};
    opts[2] = (it_opt){"head-config", 0, IT_OPT_STR, &head_config, "FILE",
                       "head architecture (default: pref_config.json beside the weights)"};
    opts[3] = (it_opt){NULL, 0, 0, NULL, NULL, NULL};
    static const it_cmd_spec spec = {
        "intenttuner score --model DIR --head FILE IMAGE...",
        "Prints one preference score per image: the head's output for the image's L2-normalised CLIP "
        "embedding (LAION aesthetic predictor style).",
        opts, 1, -1, "example:\n  intenttuner score -m clip-vit-large-patch14 --head aesthetic.safetensors *.png"};
    const char *pos[IT_STRLIST_MAX + 64];
    int n_pos = 0;
    if (argc > (int)(sizeof pos / sizeof pos[0])) argc = (int)(sizeof pos / sizeof pos[0]);
    int rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err;
    it_err_clear(&err);
    if (!model) it_err_set(&err, IT_ERR_ARG, "--model DIR is required");
    else if (!head) it_err_set(&err, IT_ERR_ARG, "--head FILE is required");
    if (err.code) return it_cli_fail(&err);
    char cfg[4096];
    config_path(cfg, sizeof cfg, head, head_config);
    it_pref p;
    if (it_pref_load(&err, &p, cfg, head)) return it_cli_fail(&err);
    it_clip m;
    it_status s = it_clip_load(&err, &m, model);
    if (!s) {
        s = score_images(&err, &m, &p, pos, n_pos);
        it_clip_free(&m);
    }
    it_pref_free(&p);
    return s ? it_cli_fail(&err) : 0;
}
