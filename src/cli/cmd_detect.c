/* cmd_detect.c: `intenttuner detect`: OWL-ViT open-vocabulary detection
 * with text queries and/or image queries (a box on a reference image). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "image/draw.h"
#include "image/image.h"
#include "vision/owlvit.h"

typedef struct detect_opts {
    const char *model, *image, *draw;
    it_strlist queries, query_images;
    double threshold, nms;
} detect_opts;

/* "REF.png:x0,y0,x1,y1" -> path (into buf) and the pixel box. */
static it_status parse_query_image(it_err *err, const char *spec, char *path, size_t cap, float box[4])
{
    const char *colon = strrchr(spec, ':');
    char extra;
    if (!colon || colon == spec ||
        sscanf(colon + 1, "%f,%f,%f,%f%c", &box[0], &box[1], &box[2], &box[3], &extra) != 4)
        return it_err_set(err, IT_ERR_ARG, "--query-image '%s': expected REF.png:x0,y0,x1,y1", spec);
    if (!(box[0] < box[2] && box[1] < box[3]))
        return it_err_set(err, IT_ERR_ARG, "--query-image '%s': box needs x0 < x1 and y0 < y1", spec);
    size_t n = (size_t)(colon - spec);
    if (n >= cap) return it_err_set(err, IT_ERR_ARG, "--query-image: path too long");
    memcpy(path, spec, n);
    path[n] = '\0';
    return IT_OK;
}

/* Query embedding from a box on a reference image (pixels -> normalised). */
static it_status image_query(it_err *err, it_ctx *ctx, it_owlvit *m, const char *spec, float *q)
{
    char path[4096];
    float box[4];
    IT_TRY(parse_query_image(err, spec, path, sizeof path, box));
    it_image ref = {0};
    IT_TRY(it_image_load(err, &ref, path));
    it_status s = IT_OK;
    if (box[0] < 0 || box[1] < 0 || box[2] > (float)ref.w || box[3] > (float)ref.h)
        s = it_err_set(err, IT_ERR_RANGE, "--query-image '%s': box outside %s (%dx%d)", spec, path, ref.w, ref.h);
    it_owlvit_image r = {0};
    if (!s) s = it_owlvit_embed_image(err, ctx, m, &ref, &r);
    if (!s) {
        float nb[4] = {box[0] / (float)ref.w, box[1] / (float)ref.h, box[2] / (float)ref.w, box[3] / (float)ref.h};
        if (it_owlvit_box_query(&r, nb, q) < 0) s = it_err_set(err, IT_ERR_NOMEM, "out of memory");
    }
    it_owlvit_image_free(&r);
    it_image_free(&ref);
    return s;
}

static const char *query_label(const detect_opts *o, int j)
{
    return j < o->queries.n ? o->queries.items[j] : o->query_images.items[j - o->queries.n];
}

static it_status draw_boxes(it_err *err, const detect_opts *o, const it_image *img, const it_detection *d, int k)
{
    static const uint8_t palette[6][3] = {{230, 25, 75}, {60, 180, 75}, {0, 130, 200},
                                          {245, 130, 48}, {145, 30, 180}, {70, 240, 240}};
    it_image out = {0};
    IT_TRY(it_image_convert(err, &out, img, 3, (const uint8_t[3]){255, 255, 255}));
    int th = (out.w + out.h) / 400 + 1;
    for (int i = k - 1; i >= 0; i--) {
        it_box b = {(int)floorf(d[i].box[0]), (int)floorf(d[i].box[1]), (int)ceilf(d[i].box[2]),
                    (int)ceilf(d[i].box[3])};
        it_draw_rect(&out, b, th, palette[d[i].query % 6]);
    }
    it_status s = it_image_save_png(err, &out, o->draw);
    it_image_free(&out);
    return s;
}

static void print_detections(const detect_opts *o, const it_detection *d, int k)
{
    if (it_common.json) {
        json_t *arr = json_array();
        for (int i = 0; i < k; i++)
            json_array_append_new(arr, json_pack("{s:s, s:i, s:f, s:[f, f, f, f]}", "query", query_label(o, d[i].query),
                                                 "query_index", d[i].query, "score", (double)d[i].score, "box",
                                                 (double)d[i].box[0], (double)d[i].box[1], (double)d[i].box[2],
                                                 (double)d[i].box[3]));
        json_t *root = json_pack("{s:s, s:o}", "image", o->image, "detections", arr);
        char *s = json_dumps(root, JSON_INDENT(2));
        if (s) puts(s);
        free(s);
        json_decref(root);
        return;
    }
    printf("%d detection%s in %s\n", k, k == 1 ? "" : "s", o->image);
    for (int i = 0; i < k; i++)
        printf("  %.3f  [%7.1f %7.1f %7.1f %7.1f]  %s\n", (double)d[i].score, (double)d[i].box[0],
               (double)d[i].box[1], (double)d[i].box[2], (double)d[i].box[3], query_label(o, d[i].query));
}

static it_status detect(it_err *err, it_owlvit *m, const detect_opts *o)
{
    int nq = o->queries.n + o->query_images.n, dq = m->query_dim;
    it_image img = {0};
    IT_TRY(it_image_load(err, &img, o->image));
    float *q = it_malloc((size_t)nq * (size_t)dq * sizeof(float));
    it_status s = q ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "out of memory");
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    for (int j = 0; j < o->queries.n && !s; j++)
        s = it_owlvit_embed_text(err, &ctx, m, o->queries.items[j], q + (size_t)j * dq);
    for (int j = 0; j < o->query_images.n && !s; j++)
        s = image_query(err, &ctx, m, o->query_images.items[j], q + (size_t)(o->queries.n + j) * dq);
    it_owlvit_image r = {0};
    if (!s) s = it_owlvit_embed_image(err, &ctx, m, &img, &r);
    float *logits = s ? NULL : it_malloc((size_t)r.n * (size_t)nq * sizeof(float));
    it_detection *det = s ? NULL : it_malloc((size_t)r.n * sizeof *det);
    if (!s && (!logits || !det)) s = it_err_set(err, IT_ERR_NOMEM, "out of memory");
    if (!s) {
        it_owlvit_logits(&r, q, nq, logits);
        int k = it_owlvit_postprocess(&r, logits, nq, img.w, img.h, (float)o->threshold, (float)o->nms, det);
        print_detections(o, det, k);
        if (o->draw) s = draw_boxes(err, o, &img, det, k);
    }
    it_free(det);
    it_free(logits);
    it_owlvit_image_free(&r);
    it_ctx_free(&ctx);
    it_free(q);
    it_image_free(&img);
    return s;
}

IT_COMMAND(detect, "open-vocabulary detection with OWL-ViT: text or image queries")
{
    static detect_opts o;
    memset(&o, 0, sizeof o);
    o.threshold = 0.1;
    o.nms = 0.3;
    static it_opt opts[8];
    opts[0] = (it_opt){"model", 'm', IT_OPT_STR, &o.model, "DIR", "OWL-ViT folder (transformers layout)"};
    opts[1] = (it_opt){"image", 'i', IT_OPT_STR, &o.image, "FILE", "image to search"};
    opts[2] = (it_opt){"query", 'q', IT_OPT_LIST, &o.queries, "TEXT", "text query (repeatable)"};
    opts[3] = (it_opt){"query-image", 0, IT_OPT_LIST, &o.query_images, "REF:x0,y0,x1,y1",
                       "image query: a box in pixels on a reference image (repeatable)"};
    opts[4] = (it_opt){"threshold", 't', IT_OPT_FLOAT, &o.threshold, "T", "minimum score (default 0.1)"};
    opts[5] = (it_opt){"nms", 0, IT_OPT_FLOAT, &o.nms, "IOU", "NMS IoU threshold; 1 disables (default 0.3)"};
    opts[6] = (it_opt){"draw", 0, IT_OPT_STR, &o.draw, "OUT.png", "write the image with the boxes drawn"};
    opts[7] = (it_opt){NULL, 0, 0, NULL, NULL, NULL};
    static const it_cmd_spec spec = {
        "intenttuner detect --model DIR --image IMG [--query TEXT ...] [--query-image REF:x0,y0,x1,y1 ...]",
        "Finds what the queries describe in IMG with OWL-ViT: each box gets the score (sigmoid) of its best "
        "query; boxes are in IMG's pixels (x0, y0, x1, y1).",
        opts, 0, 0,
        "examples:\n  intenttuner detect -m owlvit-base-patch32 -i street.jpg -q \"a black jacket\" --draw out.png\n"
        "  intenttuner detect -m owlvit-base-patch32 -i street.jpg --query-image ref.png:10,20,120,200"};
    const char *pos[8];
    int n_pos = 0;
    int rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err;
    it_err_clear(&err);
    if (!o.model) it_err_set(&err, IT_ERR_ARG, "--model DIR is required");
    else if (!o.image) it_err_set(&err, IT_ERR_ARG, "--image FILE is required");
    else if (!o.queries.n && !o.query_images.n) it_err_set(&err, IT_ERR_ARG, "give at least one --query or --query-image");
    else if (!(o.threshold >= 0 && o.threshold <= 1)) it_err_set(&err, IT_ERR_ARG, "--threshold must be in [0, 1]");
    else if (!(o.nms > 0 && o.nms <= 1)) it_err_set(&err, IT_ERR_ARG, "--nms must be in (0, 1]");
    if (err.code) return it_cli_fail(&err);
    it_owlvit m;
    if (it_owlvit_load(&err, &m, o.model)) return it_cli_fail(&err);
    it_status s = detect(&err, &m, &o);
    it_owlvit_free(&m);
    return s ? it_cli_fail(&err) : 0;
}
