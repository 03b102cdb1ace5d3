/* pretrain_clip.c: the toy CLIP component on the pretraining framework
 * (see pretrain_clip.h): setup, the step, evaluation, export, record. */
#include "toy/pretrain_clip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "tensor/autograd.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_gemm.h"
#include "tensor/ops_loss.h"
#include "tensor/ops_shape.h"

/* CLIP clamps the learned temperature so that logits stay below 100. */
#define LOGIT_SCALE_MAX 4.6051702f

/* An auxiliary attribute head: a linear layer from the vision tower's
 * pooled output to one attribute's values, trained with cross-entropy
 * against the renderer's truth (config "aux" > 0). It speeds up what the
 * image side learns (docs/TOYWORLD.md, CLIP, recipe exploration); it is
 * checkpointed with the run but never exported (not part of CLIPModel). */
typedef struct aux_head {
    int attr, n;                  /* attribute; its number of values */
    it_tensor w, b;               /* (n, hidden), (n) */
    char wname[64], bname[64];
} aux_head;

typedef struct clip_run {
    const it_pretrain_opts *o;
    char tok_dir[1100];
    it_clip_tokenizer *tok;
    it_toyclip m;
    it_toyclip_batch b;
    it_ctx ctx;
    it_optim_param *params;
    size_t n_params;
    char key[512];
    int batch;
    float p_character;
    int augment;
    double warmup_frac;
    float p_long;
    float aux;                    /* weight of the attribute heads' loss; 0 = none */
    aux_head heads[IT_TOY_N_ATTRS];
    int n_heads;
    float *head_mem;              /* weights and gradients of every head */
} clip_run;

/* ================================================================ options */

static it_status read_config(it_err *err, const it_pretrain_opts *o, it_toyclip_size *size, clip_run *r)
{
    *size = IT_TOYCLIP_TOY;
    r->p_character = 0.25f;
    r->augment = 1;
    r->warmup_frac = 0.05;
    r->p_long = IT_CLIP_PRETRAIN_P_LONG;
    r->aux = 0;
    json_t *j = NULL;
    IT_TRY(it_pretrain_config_json(err, o, &j));
    if (!j) return IT_OK;
    it_status st = IT_OK;
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
        if (!strcmp(k, "size") && json_is_string(v) && it_toyclip_size_parse(json_string_value(v)) >= 0)
            *size = (it_toyclip_size)it_toyclip_size_parse(json_string_value(v));
        else if (!strcmp(k, "p_character") && json_is_number(v) && json_number_value(v) >= 0 &&
                 json_number_value(v) <= 1)
            r->p_character = (float)json_number_value(v);
        else if (!strcmp(k, "augment") && json_is_boolean(v))
            r->augment = json_is_true(v);
        else if (!strcmp(k, "warmup_frac") && json_is_number(v) && json_number_value(v) >= 0 &&
                 json_number_value(v) < 1)
            r->warmup_frac = json_number_value(v);
        else if (!strcmp(k, "p_long") && json_is_number(v) &&
                 ((json_number_value(v) >= 0 && json_number_value(v) <= 1) || json_number_value(v) == -1))
            r->p_long = (float)json_number_value(v);
        else if (!strcmp(k, "aux") && json_is_number(v) && json_number_value(v) >= 0 && json_number_value(v) <= 10)
            r->aux = (float)json_number_value(v);
        else {
            st = it_err_set(err, IT_ERR_ARG,
                            "clip --config: key \"%s\" unknown or its value invalid (size \"toy\"|\"tiny\", "
                            "p_character 0..1, augment true|false, warmup_frac 0..<1, p_long 0..1 or -1, aux 0..10)", k);
            break;
        }
    }
    json_decref(j);
    return st;
}

void it_clip_pretrain_key(char *buf, size_t n, const it_toyclip_config *c, const it_pretrain_opts *o,
                          int64_t steps, int batch, double lr, double warmup_frac, float p_character, int augment,
                          float p_long, float aux)
{
    char captions[64] = "";
    /* Absent for the first runs' mixture (p_long -1) and without heads, so
     * older checkpoints still resume. */
    int k = 0;
    if (p_long >= 0) k = snprintf(captions, sizeof captions, " p_long=%g", (double)p_long);
    if (aux > 0 && k >= 0 && (size_t)k < sizeof captions)
        snprintf(captions + k, sizeof captions - (size_t)k, " aux=%g", (double)aux);
    snprintf(buf, n,
             "toyclip-1 seed=%llu batch=%d steps=%lld lr=%g warmup=%g clip=1 p_character=%g augment=%d "
             "vocab=%d text=%dx%dx%d vision=%dx%dx%d/%d embed=%d%s",
             (unsigned long long)o->seed, batch, (long long)steps, lr, warmup_frac, (double)p_character, augment,
             c->text.vocab_size, c->text.hidden, c->text.n_layers, c->text.n_heads, c->vision.hidden,
             c->vision.n_layers, c->vision.n_heads, c->vision.patch_size, c->embed_dim, captions);
}

/* ================================================================ setup */

static it_status count_param(it_err *err, void *user, it_tensor *t)
{
    (void)err;
    (void)t;
    (*(size_t *)user)++;
    return IT_OK;
}

static it_status list_param(it_err *err, void *user, it_tensor *t)
{
    (void)err;
    it_optim_param **p = user;
    **p = (it_optim_param){t->name, it_f32(t), t->grad, (size_t)t->n, 0};
    (*p)++;
    return IT_OK;
}

static void run_free(clip_run *r)
{
    it_free(r->params);
    it_free(r->head_mem);
    it_toyclip_free(&r->m);
    it_toyclip_batch_free(&r->b);
    it_clip_tokenizer_free(r->tok);
    it_ctx_free(&r->ctx);
}

/* The tokenizer is built once; an existing folder is used as it is, so that
 * a run and the text encoder it exports always share one vocabulary. */
static it_status ensure_tokenizer(it_err *err, clip_run *r)
{
    IT_TRY(it_path_join(err, r->tok_dir, sizeof r->tok_dir, r->o->out, "tokenizer"));
    char v[1200], m[1200];
    snprintf(v, sizeof v, "%s/vocab.json", r->tok_dir);
    snprintf(m, sizeof m, "%s/merges.txt", r->tok_dir);
    if (!it_file_exists(v) || !it_file_exists(m)) {
        it_bpe_result br;
        IT_TRY(it_toyclip_tokenizer_build(err, r->tok_dir, IT_TOYCLIP_TOKENIZER_IMAGES, &br));
        if (!r->o->quiet)
            IT_LOG_I("clip: tokenizer of %zu tokens (%zu merges, %zu caption words) -> %s", br.vocab_size,
                     br.n_merges, br.n_words, r->tok_dir);
    }
    return it_clip_tokenizer_load(err, &r->tok, r->tok_dir);
}

/* The auxiliary heads (none when r->aux is 0): zero weights, so the first
 * step's loss is ln(values) per head and nothing depends on a seed. */
static it_status heads_init(it_err *err, clip_run *r, int hidden)
{
    r->n_heads = 0;
    if (r->aux <= 0) return IT_OK;
    size_t total = 0;
    for (int a = 0; a < IT_TOY_N_ATTRS; a++)
        if (it_toy_attr_get(a)->n_values > 1) total += 2 * (size_t)it_toy_attr_get(a)->n_values * (size_t)(hidden + 1);
    r->head_mem = it_calloc(total, sizeof(float));
    if (!r->head_mem) return it_err_set(err, IT_ERR_NOMEM, "clip: out of memory for the attribute heads");
    float *m = r->head_mem;
    for (int a = 0; a < IT_TOY_N_ATTRS; a++) {
        const it_toy_attr_info *ai = it_toy_attr_get(a);
        if (ai->n_values < 2) continue;
        aux_head *h = &r->heads[r->n_heads++];
        h->attr = a;
        h->n = ai->n_values;
        snprintf(h->wname, sizeof h->wname, "aux_head.%s.weight", ai->name);
        snprintf(h->bname, sizeof h->bname, "aux_head.%s.bias", ai->name);
        size_t nw = (size_t)h->n * (size_t)hidden;
        IT_TRY(it_tensor_init_param(err, &h->w, h->wname, m, m + nw, IT_SHAPE(h->n, hidden)));
        m += 2 * nw;
        IT_TRY(it_tensor_init_param(err, &h->b, h->bname, m, m + h->n, IT_SHAPE(h->n)));
        m += 2 * (size_t)h->n;
    }
    return IT_OK;
}

/* Mean over the heads of the cross-entropy of each head on the renders
 * where its attribute applies (rows with IT_TOY_NA are left out). */
static it_tensor *heads_loss(it_ctx *ctx, clip_run *r, it_tensor *pooled)
{
    it_tensor *sum = NULL;
    int B = r->b.B, used = 0;
    for (int i = 0; i < r->n_heads; i++) {
        aux_head *h = &r->heads[i];
        int n = 0;
        for (int k = 0; k < B; k++) n += r->b.attrs[k].v[h->attr] >= 0;
        if (!n) continue;
        it_tensor *rows = it_tensor_new(ctx, IT_DTYPE_I32, IT_SHAPE(n));
        it_tensor *lab = it_tensor_new(ctx, IT_DTYPE_I32, IT_SHAPE(n));
        if (!rows || !lab) return NULL;
        for (int k = 0, j = 0; k < B; k++)
            if (r->b.attrs[k].v[h->attr] >= 0) {
                ((int32_t *)rows->data)[j] = k;
                ((int32_t *)lab->data)[j++] = r->b.attrs[k].v[h->attr];
            }
        it_tensor *x = it_op_embedding(ctx, rows, pooled); /* (n, hidden) */
        it_tensor *lg = it_op_add(ctx, it_op_matmul(ctx, x, &h->w, 0, 1), &h->b);
        it_tensor *ce = it_op_cross_entropy(ctx, lg, lab);
        sum = sum ? it_op_add(ctx, sum, ce) : ce;
        used++;
    }
    return used ? it_op_scale(ctx, sum, r->aux / (float)used, 0.0f) : NULL;
}

static it_status step_fn(it_err *err, void *user, int64_t step, it_pretrain_stats *st);
static it_status eval_fn(it_err *err, void *user, int64_t step, json_t *metrics);

static it_status setup(it_err *err, clip_run *r, const it_pretrain_opts *o, it_pretrain_loop *l)
{
    memset(r, 0, sizeof *r);
    memset(l, 0, sizeof *l);
    r->o = o;
    it_ctx_init(&r->ctx, 0);
    it_toyclip_size size;
    IT_TRY(read_config(err, o, &size, r));
    IT_TRY(ensure_tokenizer(err, r));
    it_toyclip_config cfg;
    it_toyclip_config_make(&cfg, size, r->tok);
    IT_TRY(it_toyclip_init(err, &r->m, &cfg, o->seed));
    r->batch = o->batch > 0 ? o->batch : IT_CLIP_PRETRAIN_BATCH;
    if (r->batch < 2) return it_err_set(err, IT_ERR_ARG, "clip: --batch must be >= 2 (the other pairs are the negatives)");
    IT_TRY(it_toyclip_batch_alloc(err, &r->b, r->batch));
    r->b.p_long = r->p_long;
    it_toyclip_each_param(err, &r->m, count_param, &r->n_params);
    IT_TRY(heads_init(err, r, cfg.vision.hidden));
    r->params = it_malloc((r->n_params + 2 * (size_t)r->n_heads) * sizeof *r->params);
    if (!r->params) return it_err_set(err, IT_ERR_NOMEM, "clip: out of memory");
    it_optim_param *p = r->params;
    it_toyclip_each_param(err, &r->m, list_param, &p);
    for (int i = 0; i < r->n_heads; i++) {
        list_param(err, &p, &r->heads[i].w);
        list_param(err, &p, &r->heads[i].b);
    }
    r->n_params += 2 * (size_t)r->n_heads;
    l->steps = o->steps > 0 ? o->steps : IT_CLIP_PRETRAIN_STEPS;
    double lr = o->lr > 0 ? o->lr : IT_CLIP_PRETRAIN_LR;
    it_clip_pretrain_key(r->key, sizeof r->key, &cfg, o, l->steps, r->batch, lr, r->warmup_frac, r->p_character,
                         r->augment, r->p_long, r->aux);
    l->key = r->key;
    l->params = r->params;
    l->n_params = r->n_params;
    /* No weight decay: a few thousand steps on an endless stream do not
     * overfit, and CLIP never decays its temperature. Betas and eps as
     * CLIP's training (steadier with a learned temperature). */
    l->optim = it_optim_adamw_defaults(lr);
    l->optim.weight_decay = 0;
    l->optim.beta2 = 0.98;
    l->optim.eps = 1e-6;
    l->sched = it_lr_schedule_make(IT_LR_COSINE, (int64_t)(r->warmup_frac * (double)l->steps), l->steps);
    l->max_grad_norm = 1.0;
    l->default_eval_every = 250;
    l->step = step_fn;
    l->eval = eval_fn;
    l->user = r;
    if (!o->quiet)
        IT_LOG_I("clip: %zu weights, %d pairs per step, %lld steps", it_toyclip_numel(&r->m), r->batch,
                 (long long)l->steps);
    return IT_OK;
}

/* ================================================================ step */

static void clamp_scale(it_toyclip *m)
{
    if (m->logit_scale > LOGIT_SCALE_MAX) m->logit_scale = LOGIT_SCALE_MAX;
    if (m->logit_scale < 0) m->logit_scale = 0;
}

static it_status step_fn(it_err *err, void *user, int64_t step, it_pretrain_stats *st)
{
    clip_run *r = user;
    int S = IT_TOYCLIP_RENDER;
    clamp_scale(&r->m);
    IT_TRY(it_toyclip_batch_make(err, &r->b, r->tok, &r->m.pre, r->o->seed, step, r->p_character, r->augment));
    it_ctx_reset(&r->ctx);
    it_tensor *px = it_tensor_wrap(&r->ctx, r->b.pixels, IT_DTYPE_F32, IT_SHAPE(r->b.B, 3, S, S));
    it_tensor *ids = it_tensor_wrap(&r->ctx, r->b.ids, IT_DTYPE_I32, IT_SHAPE(r->b.B, r->b.T));
    if (!px || !ids) return it_ctx_status(&r->ctx, err);
    it_tensor *loss;
    it_toyclip_stats s;
    IT_TRY(it_toyclip_loss(err, &r->ctx, &r->m, px, ids, &loss, &s));
    double aux = 0;
    if (r->n_heads) {
        it_tensor *la = heads_loss(&r->ctx, r, s.vision_pooled);
        IT_TRY(it_ctx_status(&r->ctx, err));
        if (la) {
            aux = it_f32(la)[0];
            loss = it_op_add(&r->ctx, loss, la);
            IT_TRY(it_ctx_status(&r->ctx, err));
        }
    }
    IT_TRY(it_autograd_backward(err, &r->ctx, loss));
    st->loss = s.loss + aux;
    st->n_terms = r->n_heads ? 5 : 3;
    st->term_name[3] = "contrastive";
    st->term[3] = s.loss;
    st->term_name[4] = "aux";
    st->term[4] = aux;
    st->term_name[0] = "acc_i2t";
    st->term[0] = s.acc_i2t;
    st->term_name[1] = "acc_t2i";
    st->term[1] = s.acc_t2i;
    st->term_name[2] = "logit_scale";
    st->term[2] = r->m.logit_scale;
    return IT_OK;
}

/* A view of the training towers as a loaded CLIP (shared weights; never
 * freed as one). */
static it_clip clip_view(clip_run *r)
{
    it_clip c;
    memset(&c, 0, sizeof c);
    c.layout = IT_CLIP_LAYOUT_HF;
    c.vision = r->m.vision;
    c.text = r->m.text;
    c.logit_scale = r->m.logit_scale;
    c.pre = r->m.pre;
    c.tok = r->tok;
    c.embed_dim = r->m.cfg.embed_dim;
    return c;
}

/* Retrieval on fresh renders of the evaluation seed, in memory. */
static it_status eval_fn(it_err *err, void *user, int64_t step, json_t *metrics)
{
    (void)step;
    clip_run *r = user;
    it_clip c = clip_view(r);
    it_clip_quality q;
    int n = r->o->eval_n > 0 ? r->o->eval_n : 100;
    IT_TRY(it_clip_quality_model(err, &c, r->o->eval_seed, n, 0, &q));
    json_object_set_new(metrics, "t2i_top1", json_real(q.t2i_top1));
    json_object_set_new(metrics, "t2i_top5", json_real(q.t2i_top5));
    json_object_set_new(metrics, "i2t_top1", json_real(q.i2t_top1));
    return IT_OK;
}

/* ================================================================ export */

static it_status export_clip(it_err *err, clip_run *r, const it_pretrain_result *res, int64_t steps)
{
    char done[64], seed[32], secs[32];
    snprintf(done, sizeof done, "%lld/%lld", (long long)res->step, (long long)steps);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->o->seed);
    snprintf(secs, sizeof secs, "%.0f", res->total_seconds);
    const char *meta[] = {"steps", done, "seed", seed, "run", r->key, "status", res->finished ? "final" : "interim",
                          "train_seconds", secs, NULL};
    clamp_scale(&r->m);
    return it_toyclip_export(err, &r->m, r->tok_dir, r->o->out, IT_DTYPE_F16, meta);
}

it_status it_pretrain_clip(it_err *err, const it_pretrain_opts *o)
{
    clip_run r;
    it_pretrain_loop l;
    it_pretrain_result res;
    it_status s = setup(err, &r, o, &l);
    if (!s) s = it_pretrain_train(err, o, &l, &res);
    if (!s && res.step > 0 && (res.finished || o->export_partial || o->export_only)) {
        s = export_clip(err, &r, &res, l.steps);
        json_t *report = s ? NULL : json_object();
        if (!s && !report) s = it_err_set(err, IT_ERR_NOMEM, "out of memory");
        if (!s) s = it_quality_clip(err, o, report);
        if (!s) s = it_pretrain_record(err, o, &res, report);
        if (!s && !o->quiet)
            IT_LOG_I("clip: exported step %lld/%lld (%s): text-to-image top-1 %.1f%% among %lld renders",
                     (long long)res.step, (long long)l.steps, res.finished ? "final" : "interim",
                     100 * json_number_value(json_object_get(report, "t2i_top1")),
                     (long long)json_integer_value(json_object_get(report, "renders")));
        json_decref(report);
    }
    run_free(&r);
    return s;
}

it_status it_quality_clip(it_err *err, const it_pretrain_opts *o, json_t *report)
{
    char dir[1100];
    IT_TRY(it_path_join(err, dir, sizeof dir, o->model_dir ? o->model_dir : o->out, "clip"));
    it_clip_quality q;
    int n = o->eval_n > 0 ? o->eval_n : 100;
    IT_TRY(it_clip_quality_measure(err, dir, o->eval_seed, n, &q));
    json_t *j = it_clip_quality_json(&q);
    if (!j) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    json_object_update(report, j);
    json_decref(j);
    json_object_set_new(report, "eval_seed", json_integer((json_int_t)o->eval_seed));
    json_object_set_new(report, "target_t2i_top1", json_real(0.9));
    json_object_set_new(report, "meets_target", json_boolean(q.t2i_top1 >= 0.9));
    return IT_OK;
}
