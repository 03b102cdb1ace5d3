/* quality_unet.c: `toy quality unet`. The toy base model generates one image
 * per held-out caption; the judge (measurement only, never used by training
 * or generation) reads each image back, and every attribute the caption
 * states counts as agreed when the judge's reading equals the stated value.
 * The same judge on renders of the captions' true creatures is measured
 * beside it: the judge is itself imperfect, and that figure is its ceiling
 * for this set of captions. */
#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "diffusion/pipeline.h"
#include "image/geom.h"
#include "toy/captions.h"
#include "toy/judge.h"
#include "toy/pretrain_unet.h"
#include "toy/toydraw.h"

#define Q_DEFAULT_N 200
#define Q_STEPS 20
#define Q_CFG 5.0f
#define Q_GRID_COLS 8
#define Q_GRID_PAIRS 2 /* rows of (render, generated) pairs in the grid */

typedef struct q_item {
    it_toy_attrs a;
    it_toy_caption cap;
    it_image gen, ren;
} q_item;

typedef struct q_state {
    const it_pretrain_opts *o;
    const char *model;
    int n;
    q_item *items;
    it_sd_model m;
    int have_model;
    it_judge judge;
    int have_judge;
    it_ctx ctx;
} q_state;

static void q_free(q_state *q)
{
    if (q->items)
        for (int i = 0; i < q->n; i++) it_image_free(&q->items[i].gen), it_image_free(&q->items[i].ren);
    it_free(q->items);
    if (q->have_model) it_sd_free(&q->m);
    if (q->have_judge) it_judge_free(&q->judge);
    it_ctx_free(&q->ctx);
}

/* Held-out captions: a fresh stream (eval seed) of creatures the base model
 * may know (held-out characters and the held-out pose are skipped: the
 * base model has never seen them), captioned as in training. */
static it_status make_captions(it_err *err, q_state *q)
{
    static const it_toy_caption_style styles[] = {IT_TOY_CAP_SHORT, IT_TOY_CAP_SHORT, IT_TOY_CAP_LONG,
                                                  IT_TOY_CAP_LONG, IT_TOY_CAP_TAGS};
    uint64_t idx = 0;
    for (int i = 0; i < q->n; i++) {
        q_item *it = &q->items[i];
        do IT_TRY(it_toy_sample(err, &it->a, NULL, q->o->eval_seed, idx++, IT_TOY_EVAL));
        while (it_toy_is_held_out(&it->a));
        IT_TRY(it_toy_caption_make(err, &it->cap, &it->a, styles[i % 5], 1, 0, q->o->eval_seed, idx - 1, 0));
    }
    return IT_OK;
}

static it_status generate_all(it_err *err, q_state *q)
{
    it_progress pr;
    if (!q->o->quiet) it_progress_start(&pr, "unet quality: generating", q->n);
    it_toy_renderer rend;
    int side = q->m.unet.cfg.sample_size * (1 << (q->m.vae.cfg.n_levels - 1));
    IT_TRY(it_toy_renderer_init(err, &rend, side, side));
    it_status s = IT_OK;
    for (int i = 0; !s && i < q->n; i++) {
        q_item *it = &q->items[i];
        it_gen_opts g;
        it_gen_opts_init(&g);
        g.prompt = it->cap.text;
        g.steps = Q_STEPS;
        g.cfg = Q_CFG;
        g.seed = q->o->eval_seed + (uint64_t)i;
        it_gen_result r;
        s = it_sd_generate(err, &q->m, NULL, &g, &r);
        if (s) break;
        it->gen = r.images[0];
        memset(&r.images[0], 0, sizeof r.images[0]); /* taken over */
        it_gen_result_free(&r);
        s = it_image_alloc(err, &it->ren, side, side, 3);
        if (!s) s = it_toy_render(err, &rend, &it->a, IT_TOY_EVAL, it->ren.data, NULL, NULL);
        if (!q->o->quiet) it_progress_update(&pr, i + 1, NULL);
    }
    if (!q->o->quiet) it_progress_finish(&pr);
    it_toy_renderer_free(&rend);
    return s;
}

/* Renders above generations, Q_GRID_COLS per row; captions beside it in a
 * .txt of the same name. */
static it_status write_grid(it_err *err, q_state *q, const char *path)
{
    int n = q->n < Q_GRID_COLS * Q_GRID_PAIRS ? q->n : Q_GRID_COLS * Q_GRID_PAIRS;
    int w = q->items[0].gen.w, h = q->items[0].gen.h, rows = 2 * ((n + Q_GRID_COLS - 1) / Q_GRID_COLS);
    it_image sheet = {0};
    IT_TRY(it_image_alloc(err, &sheet, w * Q_GRID_COLS, h * rows, 3));
    memset(sheet.data, 255, (size_t)sheet.w * sheet.h * 3);
    it_status s = IT_OK;
    it_buf caps;
    it_buf_init(&caps);
    for (int i = 0; !s && i < n; i++) {
        int x = (i % Q_GRID_COLS) * w, y = (i / Q_GRID_COLS) * 2 * h;
        s = it_image_paste(err, &sheet, &q->items[i].ren, x, y, NULL);
        if (!s) s = it_image_paste(err, &sheet, &q->items[i].gen, x, y + h, NULL);
        if (!s && it_buf_printf(&caps, "%d: %s\n", i + 1, q->items[i].cap.text))
            s = it_err_set(err, IT_ERR_NOMEM, "out of memory");
    }
    if (!s) s = it_image_save_png(err, &sheet, path);
    char txt[1200];
    snprintf(txt, sizeof txt, "%.*s.txt", (int)(strlen(path) - 4), path);
    if (!s) s = it_file_write_atomic(err, txt, caps.data ? caps.data : "", caps.len);
    it_buf_free(&caps);
    it_image_free(&sheet);
    return s;
}

/* Per head (identity, then attributes): claims, and how many the judge read
 * back on the generated images and on the renders. */
static it_status score(it_err *err, q_state *q, int *n_claims, int *agree_gen, int *agree_ren)
{
    it_judge_pred *pg = it_calloc((size_t)q->n, sizeof *pg), *pr = it_calloc((size_t)q->n, sizeof *pr);
    it_image *gi = it_calloc((size_t)q->n, sizeof *gi), *ri = it_calloc((size_t)q->n, sizeof *ri);
    it_status s = pg && pr && gi && ri ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "out of memory");
    for (int i = 0; !s && i < q->n; i++) gi[i] = q->items[i].gen, ri[i] = q->items[i].ren;
    if (!s) s = it_judge_classify(err, &q->judge, &q->ctx, gi, q->n, pg);
    if (!s) s = it_judge_classify(err, &q->judge, &q->ctx, ri, q->n, pr);
    for (int i = 0; !s && i < q->n; i++) {
        int32_t labels[IT_JUDGE_N_HEADS];
        it_judge_labels(labels, &q->items[i].a);
        uint32_t m = q->items[i].cap.mentioned;
        for (int h = 0; h < IT_JUDGE_N_HEADS; h++) {
            uint32_t bit = h == IT_JUDGE_HEAD_IDENTITY ? IT_TOY_MENTION_CHARACTER : 1u << (h - 1);
            if (!(m & bit)) continue;
            n_claims[h]++;
            agree_gen[h] += pg[i].cls[h] == labels[h];
            agree_ren[h] += pr[i].cls[h] == labels[h];
        }
    }
    it_free(pg), it_free(pr), it_free(gi), it_free(ri);
    return s;
}

static it_status fill_report(it_err *err, q_state *q, json_t *report, const int *n_claims, const int *ag,
                             const int *ar, double secs, const char *grid)
{
    json_t *per = json_object();
    if (!per) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    double sg = 0, sr = 0;
    int heads = 0, claims = 0, tg = 0, tr = 0;
    for (int h = 0; h < IT_JUDGE_N_HEADS; h++) {
        if (!n_claims[h]) continue;
        double g = (double)ag[h] / n_claims[h], r = (double)ar[h] / n_claims[h];
        json_object_set_new(per, it_judge_head_name(h), json_pack("{s:i, s:f, s:f}", "n", n_claims[h], "generated", g,
                                                                  "render", r));
        sg += g, sr += r, heads++;
        claims += n_claims[h], tg += ag[h], tr += ar[h];
    }
    json_object_set_new(report, "n", json_integer(q->n));
    json_object_set_new(report, "steps", json_integer(Q_STEPS));
    json_object_set_new(report, "cfg", json_real(Q_CFG));
    json_object_set_new(report, "per_attribute", per);
    /* "mean": over attributes (each attribute counts once); "micro": over
     * every stated claim. */
    json_object_set_new(report, "mean_generated", json_real(heads ? sg / heads : 0));
    json_object_set_new(report, "mean_render", json_real(heads ? sr / heads : 0));
    json_object_set_new(report, "micro_generated", json_real(claims ? (double)tg / claims : 0));
    json_object_set_new(report, "micro_render", json_real(claims ? (double)tr / claims : 0));
    json_object_set_new(report, "claims", json_integer(claims));
    json_object_set_new(report, "seconds", json_real(secs));
    json_object_set_new(report, "grid", json_string(grid));
    json_object_set_new(report, "judge", json_string("toy judge (models/toy/README.md; 99 % mean on renders, "
                                                     "weakest heads in docs/TOYWORLD.md): its own accuracy "
                                                     "bounds these figures, see mean_render"));
    return IT_OK;
}

it_status it_quality_unet(it_err *err, const it_pretrain_opts *o, json_t *report)
{
    q_state q;
    memset(&q, 0, sizeof q);
    q.o = o;
    q.model = o->model_dir ? o->model_dir : o->out;
    q.n = o->eval_n > 0 ? o->eval_n : Q_DEFAULT_N;
    it_ctx_init(&q.ctx, 0);
    double t0 = it_time_now();
    char p[1200], run[1100];
    it_status s = IT_OK;
    snprintf(p, sizeof p, "%s/unet/config.json", q.model);
    if (!it_file_exists(p))
        s = it_err_set(err, IT_ERR_NOT_FOUND, "%s: no unet/ (train it first: intenttuner toy pretrain unet --out %s)",
                       q.model, q.model);
    if (!s) s = it_sd_load(err, &q.m, q.model, NULL);
    if (!s) q.have_model = 1;
    if (!s && !q.m.tokenizer) s = it_err_set(err, IT_ERR_NOT_FOUND, "%s: no tokenizer/ folder", q.model);
    snprintf(p, sizeof p, "%s/judge.safetensors", q.model);
    if (!s) s = it_judge_load(err, &q.judge, p, 0);
    if (!s) q.have_judge = 1;
    if (!s && !(q.items = it_calloc((size_t)q.n, sizeof *q.items))) s = it_err_set(err, IT_ERR_NOMEM, "out of memory");
    if (!s) s = make_captions(err, &q);
    if (!s) s = generate_all(err, &q);
    int n_claims[IT_JUDGE_N_HEADS] = {0}, ag[IT_JUDGE_N_HEADS] = {0}, ar[IT_JUDGE_N_HEADS] = {0};
    if (!s) s = score(err, &q, n_claims, ag, ar);
    if (!s) s = it_pretrain_run_path(err, o, run, sizeof run);
    snprintf(p, sizeof p, "%s/quality_unet.png", run);
    if (!s) s = write_grid(err, &q, p);
    if (!s) s = fill_report(err, &q, report, n_claims, ag, ar, it_time_now() - t0, p);
    q_free(&q);
    return s;
}
