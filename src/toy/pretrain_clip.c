/* pretrain_clip.c: the toy CLIP's training run: AdamW loop, run folder,
 * checkpoints, resume, time limit and export (see pretrain_clip.h). */
#include "toy/pretrain_clip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/threads.h"
#include "tensor/autograd.h"
#include "tensor/optim.h"
#include "tensor/safetensors.h"

void it_clip_pretrain_defaults(it_clip_pretrain_opts *o)
{
    memset(o, 0, sizeof *o);
    o->size = IT_TOYCLIP_TOY;
    o->seed = 1;
    o->steps = 1000;
    o->batch = 128;
    o->lr = 7e-4;
    o->warmup_frac = 0.05;
    o->clip_grad = 1.0;
    o->p_character = 0.25f;
    o->augment = 1;
    o->out = "models/toy";
    o->checkpoint_every = 25;
    o->log_every = 5;
}

/* CLIP clamps the learned temperature so that logits stay below 100. */
#define LOGIT_SCALE_MAX 4.6052f

static int is_dir_with(const char *dir, const char *name)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* ================================================================ state */

typedef struct run {
    const it_clip_pretrain_opts *o;
    char tok_dir[4096], ckpt[4096], ckpt_optim[4096], log_path[4096];
    it_clip_tokenizer *tok;
    it_toyclip m;
    it_optim opt;
    it_optim_param *params;
    size_t n_params;
    it_toyclip_batch b;
    it_ctx ctx;
    FILE *log;
    double loss_avg, acc_avg;     /* exponential moving averages */
    int have_avg;
    double grad_norm;
} run;

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

static void run_free(run *r)
{
    it_optim_free(&r->opt);
    it_free(r->params);
    it_toyclip_free(&r->m);
    it_toyclip_batch_free(&r->b);
    it_clip_tokenizer_free(r->tok);
    it_ctx_free(&r->ctx);
    if (r->log) fclose(r->log);
}

static it_status paths(it_err *err, run *r)
{
    const it_clip_pretrain_opts *o = r->o;
    if (snprintf(r->tok_dir, sizeof r->tok_dir, "%s/tokenizer", o->out) >= (int)sizeof r->tok_dir)
        return it_err_set(err, IT_ERR_ARG, "toy pretrain clip: --out path too long");
    if (!o->run_dir) return IT_OK;
    if (snprintf(r->ckpt, sizeof r->ckpt, "%s/checkpoint.safetensors", o->run_dir) >= (int)sizeof r->ckpt ||
        snprintf(r->ckpt_optim, sizeof r->ckpt_optim, "%s/checkpoint.optim.safetensors", o->run_dir) >=
            (int)sizeof r->ckpt_optim ||
        snprintf(r->log_path, sizeof r->log_path, "%s/log.jsonl", o->run_dir) >= (int)sizeof r->log_path)
        return it_err_set(err, IT_ERR_ARG, "toy pretrain clip: --run-dir path too long");
    return it_mkdir_p(err, o->run_dir);
}

/* The tokenizer is built once; an existing folder is used as it is, so that
 * a run and the text encoder it exports always share one vocabulary. */
static it_status ensure_tokenizer(it_err *err, run *r)
{
    if (!is_dir_with(r->tok_dir, "vocab.json") || !is_dir_with(r->tok_dir, "merges.txt")) {
        it_bpe_result br;
        IT_TRY(it_toyclip_tokenizer_build(err, r->tok_dir, IT_TOYCLIP_TOKENIZER_IMAGES, &br));
        if (!r->o->quiet)
            IT_LOG_I("tokenizer: %zu merges, %zu tokens from %zu words -> %s", br.n_merges, br.vocab_size,
                     br.n_words, r->tok_dir);
    }
    return it_clip_tokenizer_load(err, &r->tok, r->tok_dir);
}

static it_status run_init(it_err *err, run *r, const it_clip_pretrain_opts *o)
{
    memset(r, 0, sizeof *r);
    r->o = o;
    it_ctx_init(&r->ctx, 0);
    IT_TRY(paths(err, r));
    IT_TRY(ensure_tokenizer(err, r));
    it_toyclip_config cfg;
    it_toyclip_config_make(&cfg, o->size, r->tok);
    IT_TRY(it_toyclip_init(err, &r->m, &cfg, o->seed));
    IT_TRY(it_toyclip_batch_alloc(err, &r->b, o->batch));
    it_toyclip_each_param(err, &r->m, count_param, &r->n_params);
    r->params = it_malloc(r->n_params * sizeof *r->params);
    if (!r->params) return it_err_set(err, IT_ERR_NOMEM, "toy pretrain clip: out of memory");
    it_optim_param *p = r->params;
    it_toyclip_each_param(err, &r->m, list_param, &p);
    /* No weight decay: a run of a few thousand steps on an endless stream
     * does not overfit, and CLIP never decays its logit scale. */
    it_optim_config oc = it_optim_adamw_defaults(o->lr);
    oc.weight_decay = 0;
    oc.beta2 = 0.98; /* CLIP's value: steadier with a learned temperature */
    oc.eps = 1e-6;
    return it_optim_init(err, &r->opt, &oc, r->params, r->n_params);
}

/* ================================================================ checkpoints */

/* The run's identity: a checkpoint resumes only the run that wrote it. */
static void run_key(char *buf, size_t n, const it_clip_pretrain_opts *o, const it_toyclip *m)
{
    const it_toyclip_config *c = &m->cfg;
    snprintf(buf, n,
             "toyclip-1 size=%s seed=%llu batch=%d steps=%lld lr=%g warmup=%g clip=%g p_character=%g augment=%d "
             "vocab=%d text=%dx%d vision=%dx%d/%d embed=%d",
             o->size == IT_TOYCLIP_TINY ? "tiny" : "toy", (unsigned long long)o->seed, o->batch,
             (long long)o->steps, o->lr, o->warmup_frac, o->clip_grad, (double)o->p_character, o->augment,
             c->text.vocab_size, c->text.hidden, c->text.n_layers, c->vision.hidden, c->vision.n_layers,
             c->vision.patch_size, c->embed_dim);
}

typedef struct add_ctx {
    it_safetensors_writer *w;
} add_ctx;

static it_status add_f32(it_err *err, void *user, it_tensor *t)
{
    add_ctx *a = user;
    return it_safetensors_writer_add(err, a->w, t->name, IT_DTYPE_F32, t->ndim, t->shape, it_f32(t));
}

/* Optimiser state first, weights (naming the step) last: a crash between
 * the two leaves files whose steps disagree, which resume refuses. */
static it_status ckpt_save(it_err *err, run *r, int64_t step)
{
    char stepbuf[32], key[512];
    snprintf(stepbuf, sizeof stepbuf, "%lld", (long long)step);
    run_key(key, sizeof key, r->o, &r->m);
    IT_TRY(it_optim_save(err, &r->opt, r->ckpt_optim));
    add_ctx a = {NULL};
    IT_TRY(it_safetensors_writer_new(err, &a.w));
    it_status st = it_toyclip_each_param(err, &r->m, add_f32, &a);
    if (!st) st = it_safetensors_writer_set_metadata(err, a.w, "step", stepbuf);
    if (!st) st = it_safetensors_writer_set_metadata(err, a.w, "run", key);
    if (!st) st = it_safetensors_writer_save(err, a.w, r->ckpt);
    it_safetensors_writer_free(a.w);
    return st;
}

typedef struct load_ctx {
    it_safetensors *f;
} load_ctx;

static it_status load_one(it_err *err, void *user, it_tensor *t)
{
    load_ctx *l = user;
    const it_safetensors_tensor *st = NULL;
    IT_TRY(it_safetensors_get(err, l->f, t->name, &st));
    if (st->numel != (uint64_t)t->n)
        return it_err_set(err, IT_ERR_FORMAT, "%s: %s holds %lld values, the model %lld", it_safetensors_label(l->f),
                          t->name, (long long)st->numel, (long long)t->n);
    return it_safetensors_load_f32(err, l->f, st, it_f32(t), (size_t)t->n);
}

static it_status ckpt_load(it_err *err, run *r, int64_t *step)
{
    load_ctx l = {NULL};
    IT_TRY(it_safetensors_open(err, &l.f, r->ckpt));
    const char *s = it_safetensors_metadata_get(l.f, "step"), *k = it_safetensors_metadata_get(l.f, "run");
    char key[512];
    run_key(key, sizeof key, r->o, &r->m);
    it_status st = IT_OK;
    if (!s || !k)
        st = it_err_set(err, IT_ERR_FORMAT, "%s: not a toy CLIP checkpoint (no step/run metadata)", r->ckpt);
    else if (strcmp(k, key))
        st = it_err_set(err, IT_ERR_ARG, "%s: checkpoint of another run (%s); this run is %s", r->ckpt, k, key);
    else
        *step = strtoll(s, NULL, 10);
    if (!st) st = it_toyclip_each_param(err, &r->m, load_one, &l);
    it_safetensors_close(l.f);
    IT_TRY(st);
    IT_TRY(it_optim_load(err, &r->opt, r->ckpt_optim));
    if (r->opt.step != *step)
        return it_err_set(err, IT_ERR_FORMAT, "%s says step %lld but %s says %lld: the checkpoint is inconsistent",
                          r->ckpt, (long long)*step, r->ckpt_optim, (long long)r->opt.step);
    return IT_OK;
}

/* ================================================================ one step */

static it_status train_step(it_err *err, run *r, int64_t step, double lr, double *loss_out)
{
    const it_clip_pretrain_opts *o = r->o;
    int S = IT_TOYCLIP_RENDER;
    IT_TRY(it_toyclip_batch_make(err, &r->b, r->tok, &r->m.pre, o->seed, step, o->p_character, o->augment));
    it_ctx_reset(&r->ctx);
    it_tensor *px = it_tensor_wrap(&r->ctx, r->b.pixels, IT_DTYPE_F32, IT_SHAPE(r->b.B, 3, S, S));
    it_tensor *ids = it_tensor_wrap(&r->ctx, r->b.ids, IT_DTYPE_I32, IT_SHAPE(r->b.B, r->b.T));
    if (!px || !ids) return it_ctx_status(&r->ctx, err);
    it_tensor *loss;
    it_toyclip_stats s;
    IT_TRY(it_toyclip_loss(err, &r->ctx, &r->m, px, ids, &loss, &s));
    IT_TRY(it_autograd_backward(err, &r->ctx, loss));
    r->grad_norm = o->clip_grad > 0 ? it_optim_clip_grad_norm(&r->opt, o->clip_grad) : 0;
    it_optim_step(&r->opt, lr);
    it_optim_zero_grad(&r->opt);
    if (r->m.logit_scale > LOGIT_SCALE_MAX) r->m.logit_scale = LOGIT_SCALE_MAX;
    if (r->m.logit_scale < 0) r->m.logit_scale = 0;
    if (!isfinite(s.loss))
        return it_err_set(err, IT_ERR_INTERNAL, "toy pretrain clip: loss is %g at step %lld", s.loss, (long long)step);
    double k = r->have_avg ? 0.95 : 0.0;
    r->loss_avg = k * r->loss_avg + (1 - k) * s.loss;
    r->acc_avg = k * r->acc_avg + (1 - k) * 0.5 * (s.acc_i2t + s.acc_t2i);
    r->have_avg = 1;
    *loss_out = s.loss;
    return IT_OK;
}

static void log_line(run *r, int64_t step, double lr, double seconds, double cpu)
{
    if (!r->log) return;
    json_t *j = json_pack("{s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "kind", "train", "step",
                          (json_int_t)step, "loss", r->loss_avg, "acc", r->acc_avg, "lr", lr, "logit_scale",
                          (double)r->m.logit_scale, "grad_norm", r->grad_norm, "seconds", round(seconds * 10) / 10,
                          "cpu_seconds", round(cpu * 10) / 10);
    char *line = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
    if (line) {
        fprintf(r->log, "%s\n", line);
        fflush(r->log);
    }
    free(line);
    json_decref(j);
}

/* ================================================================ export */

static it_status export_weights(it_err *err, run *r, int64_t step, double cpu_total)
{
    const it_clip_pretrain_opts *o = r->o;
    char steps[64], seed[32], secs[32], key[512];
    snprintf(steps, sizeof steps, "%lld/%lld", (long long)step, (long long)o->steps);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    snprintf(secs, sizeof secs, "%.0f", cpu_total);
    run_key(key, sizeof key, o, &r->m);
    const char *meta[] = {"steps", steps, "seed", seed, "run", key, "status",
                          step >= o->steps ? "final" : "interim", "train_cpu_seconds", secs, NULL};
    return it_toyclip_export(err, &r->m, r->tok_dir, o->out, o->export_dtype_f32 ? IT_DTYPE_F32 : IT_DTYPE_F16,
                             meta);
}

/* CPU seconds of earlier invocations, from the last log line (0 when none). */
static double cpu_before(const char *log_path)
{
    FILE *f = fopen(log_path, "r");
    if (!f) return 0;
    char line[1024];
    double cpu = 0;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"cpu_total\":");
        if (p) cpu = atof(p + 12);
    }
    fclose(f);
    return cpu;
}

static double cpu_now(void) { return (double)clock() / CLOCKS_PER_SEC; }

/* ================================================================ loop */

static it_status check_opts(it_err *err, const it_clip_pretrain_opts *o)
{
    if (o->steps < 1 || o->batch < 2 || o->batch > 4096)
        return it_err_set(err, IT_ERR_ARG, "toy pretrain clip: steps must be >= 1 and batch in 2..4096");
    if (!(o->lr > 0) || o->warmup_frac < 0 || o->warmup_frac >= 1)
        return it_err_set(err, IT_ERR_ARG, "toy pretrain clip: lr must be > 0 and warm-up in [0, 1)");
    if (o->resume && !o->run_dir)
        return it_err_set(err, IT_ERR_ARG, "toy pretrain clip: --resume needs --run-dir");
    if (o->checkpoint_every < 1 || o->log_every < 1)
        return it_err_set(err, IT_ERR_ARG, "toy pretrain clip: checkpoint and log intervals must be >= 1");
    if (!o->out) return it_err_set(err, IT_ERR_ARG, "toy pretrain clip: --out is required");
    return IT_OK;
}

static void log_total(run *r, int64_t step, double cpu_total)
{
    if (!r->log) return;
    fprintf(r->log, "{\"kind\":\"invocation\",\"step\":%lld,\"cpu_total\":%.1f}\n", (long long)step, cpu_total);
    fflush(r->log);
}

it_status it_clip_pretrain(it_err *err, const it_clip_pretrain_opts *o, it_clip_pretrain_result *res)
{
    it_clip_pretrain_result dummy;
    if (!res) res = &dummy;
    memset(res, 0, sizeof *res);
    IT_TRY(check_opts(err, o));
    run r;
    it_status st = run_init(err, &r, o);
    int64_t step = 0;
    if (!st && o->resume) st = ckpt_load(err, &r, &step);
    double cpu_prev = o->run_dir ? cpu_before(r.log_path) : 0;
    if (!st && o->run_dir && !(r.log = fopen(r.log_path, o->resume ? "a" : "w")))
        st = it_err_set(err, IT_ERR_IO, "cannot open %s", r.log_path);
    if (!st && !o->quiet)
        IT_LOG_I("toy clip: %zu weights, batch %d, step %lld of %lld", it_toyclip_numel(&r.m), o->batch,
                 (long long)step, (long long)o->steps);
    int64_t warm = (int64_t)(o->warmup_frac * (double)o->steps);
    it_lr_schedule sched = it_lr_schedule_make(IT_LR_COSINE, warm, o->steps);
    it_progress prog;
    if (!o->quiet) it_progress_start(&prog, "toy pretrain clip", o->steps - step);
    double t0 = it_time_now(), c0 = cpu_now(), slowest = 0;
    int64_t first = step;
    int64_t last = o->stop_after > 0 && step + o->stop_after < o->steps ? step + o->stop_after : o->steps;
    while (!st && step < last) {
        /* Stop at a checkpoint when the next step might not fit the limit. */
        double el = it_time_now() - t0;
        if (o->time_limit > 0 && step > first && el + 1.5 * slowest > o->time_limit) break;
        double lr = it_lr_schedule_lr(&sched, o->lr, step), loss = 0, ts = it_time_now();
        st = train_step(err, &r, step, lr, &loss);
        if (st) break;
        if (o->trace) o->trace[step] = loss;
        double dt = it_time_now() - ts;
        if (dt > slowest) slowest = dt;
        step++;
        if (step % o->log_every == 0 || step == last) log_line(&r, step, lr, it_time_now() - t0, cpu_now() - c0);
        if (!o->quiet) {
            char extra[128];
            snprintf(extra, sizeof extra, "step %lld loss %.3f acc %.1f%% scale %.2f", (long long)step, r.loss_avg,
                     100 * r.acc_avg, exp((double)r.m.logit_scale));
            it_progress_update(&prog, step - first, extra);
        }
        if (o->run_dir && (step % o->checkpoint_every == 0 || step == last)) st = ckpt_save(err, &r, step);
    }
    /* A time-limit stop between checkpoints still leaves one at `step`. */
    if (!st && o->run_dir && step > first && step % o->checkpoint_every != 0 && step != last)
        st = ckpt_save(err, &r, step);
    if (!o->quiet) it_progress_finish(&prog);
    res->step = step;
    res->finished = step >= o->steps;
    res->seconds = it_time_now() - t0;
    res->cpu_seconds = cpu_now() - c0;
    res->loss = r.loss_avg;
    res->acc_i2t = r.acc_avg;
    res->logit_scale = r.m.logit_scale;
    if (!st) log_total(&r, step, cpu_prev + res->cpu_seconds);
    if (!st && !o->no_export && step > 0) st = export_weights(err, &r, step, cpu_prev + res->cpu_seconds);
    run_free(&r);
    return st;
}
