/* pretrain.c: the toy pretraining framework: options, loop, checkpoints,
 * initialisation, export, provenance (see pretrain.h). */
#include "toy/pretrain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/rng.h"
#include "tensor/safetensors.h"

#define DEFAULT_CKPT_EVERY 200
#define DEFAULT_CKPT_SECONDS 600.0
#define LOG_EVERY_SECONDS 30.0
#define MAX_CKPT_FILE ((size_t)1 << 31)

/* ================================================================ options */

void it_pretrain_opts_init(it_pretrain_opts *o)
{
    memset(o, 0, sizeof *o);
    o->out = "models/toy";
    o->run_dir = "runs/toy";
    o->seed = 1;
    o->eval_seed = 1000003;
}

it_status it_pretrain_opts_check(it_err *err, const it_pretrain_opts *o)
{
    if (!o->component || !o->component[0]) return it_err_set(err, IT_ERR_ARG, "no component given");
    if (!o->out || !o->out[0]) return it_err_set(err, IT_ERR_ARG, "--out is required");
    if (!o->run_dir || !o->run_dir[0]) return it_err_set(err, IT_ERR_ARG, "--run-dir must not be empty");
    if (o->steps < 0) return it_err_set(err, IT_ERR_ARG, "--steps must be >= 1 (or 0 for the default)");
    if (o->batch < 0 || o->batch > 4096) return it_err_set(err, IT_ERR_ARG, "--batch must be in 1..4096");
    if (o->lr < 0 || o->lr > 1 || isnan(o->lr)) return it_err_set(err, IT_ERR_ARG, "--lr must be in (0, 1]");
    if (o->time_limit < 0 || isnan(o->time_limit))
        return it_err_set(err, IT_ERR_ARG, "--time-limit must be >= 0 seconds");
    if (o->checkpoint_every < 0) return it_err_set(err, IT_ERR_ARG, "--checkpoint-every must be >= 1");
    if (o->eval_n < 0 || o->eval_n > 100000) return it_err_set(err, IT_ERR_ARG, "--eval-n must be in 1..100000");
    if (o->export_only && !o->resume) return it_err_set(err, IT_ERR_ARG, "--export-only needs --resume (it exports the run's checkpoint)");
    if (o->seed == o->eval_seed)
        return it_err_set(err, IT_ERR_ARG, "--eval-seed must differ from the training --seed (%llu)",
                          (unsigned long long)o->seed);
    return IT_OK;
}

it_status it_pretrain_run_path(it_err *err, const it_pretrain_opts *o, char *buf, size_t n)
{
    IT_TRY(it_path_join(err, buf, n, o->run_dir, o->component));
    return it_mkdir_p(err, buf);
}

it_status it_pretrain_config_json(it_err *err, const it_pretrain_opts *o, json_t **out)
{
    *out = NULL;
    if (!o->config) return IT_OK;
    json_error_t je;
    const char *p = o->config;
    while (*p == ' ' || *p == '\n' || *p == '\t') p++;
    int inline_text = *p == '{';
    json_t *j = inline_text ? json_loads(p, 0, &je) : json_load_file(o->config, 0, &je);
    if (!j) return it_err_set(err, IT_ERR_FORMAT, "%s:%d: %s", inline_text ? "--config" : o->config, je.line, je.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return it_err_set(err, IT_ERR_FORMAT, "%s: expected a JSON object", inline_text ? "--config" : o->config);
    }
    *out = j;
    return IT_OK;
}

/* ================================================================ checkpoints */

/* FNV-1a 64 of a file: detects truncation and damage of checkpoint files
 * (the safetensors header check alone would miss a flipped weight byte). */
static it_status file_hash(it_err *err, const char *path, char hex[17])
{
    uint8_t *data = NULL;
    size_t n = 0;
    IT_TRY(it_file_read(err, &data, &n, path, MAX_CKPT_FILE));
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ data[i]) * 0x100000001b3ull;
    it_free(data);
    snprintf(hex, 17, "%016llx", (unsigned long long)h);
    return IT_OK;
}

static it_status step_dir(it_err *err, const char *run, int64_t step, char *buf, size_t n)
{
    if (snprintf(buf, n, "%s/ckpt/step-%08lld", run, (long long)step) >= (int)n)
        return it_err_set(err, IT_ERR_RANGE, "%s: path too long", run);
    return IT_OK;
}

static const char *const CKPT_FILES[2] = {"params.safetensors", "optim.safetensors"};

static void remove_step_dir(const char *run, int64_t step)
{
    char dir[1100], p[1200];
    if (step_dir(NULL, run, step, dir, sizeof dir)) return;
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, CKPT_FILES[i]);
        remove(p);
    }
    remove(dir);
}

static it_status save_params(it_err *err, const char *path, const it_optim_param *ps, size_t n)
{
    it_safetensors_writer *w = NULL;
    IT_TRY(it_safetensors_writer_new(err, &w));
    it_status s = IT_OK;
    for (size_t i = 0; i < n && !s; i++)
        s = it_safetensors_writer_add(err, w, ps[i].name, IT_DTYPE_F32, 1, (const int64_t[]){(int64_t)ps[i].n},
                                      ps[i].data);
    if (!s) s = it_safetensors_writer_set_metadata(err, w, "format", "intenttuner-pretrain-params-1");
    if (!s) s = it_safetensors_writer_save(err, w, path);
    it_safetensors_writer_free(w);
    return s;
}

/* Reads the previous checkpoint's step from latest.json (-1 if none). */
static int64_t latest_step(const char *run)
{
    char p[1100];
    snprintf(p, sizeof p, "%s/latest.json", run);
    json_t *j = json_load_file(p, 0, NULL);
    int64_t s = j ? (int64_t)json_integer_value(json_object_get(j, "step")) : -1;
    json_decref(j);
    return s > 0 ? s : -1;
}

it_status it_pretrain_ckpt_save(it_err *err, const char *run, const char *key, int64_t step,
                                double seconds, const it_optim_param *params, size_t n_params,
                                const it_optim *opt)
{
    char dir[1100], p[1200], hex[2][17];
    int64_t prev = latest_step(run);
    IT_TRY(step_dir(err, run, step, dir, sizeof dir));
    IT_TRY(it_mkdir_p(err, dir));
    snprintf(p, sizeof p, "%s/%s", dir, CKPT_FILES[0]);
    IT_TRY(save_params(err, p, params, n_params));
    IT_TRY(file_hash(err, p, hex[0]));
    snprintf(p, sizeof p, "%s/%s", dir, CKPT_FILES[1]);
    IT_TRY(it_optim_save(err, opt, p));
    IT_TRY(file_hash(err, p, hex[1]));
    json_t *j = json_pack("{s:I, s:f, s:s, s:s, s:{s:s, s:s}}", "step", (json_int_t)step, "seconds",
                          round(seconds * 10) / 10, "dir", it_path_basename(dir), "key", key ? key : "", "fnv1a64",
                          CKPT_FILES[0], hex[0], CKPT_FILES[1], hex[1]);
    char *text = j ? json_dumps(j, JSON_SORT_KEYS | JSON_INDENT(1)) : NULL;
    json_decref(j);
    if (!text) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    snprintf(p, sizeof p, "%s/latest.json", run);
    it_status s = it_file_write_atomic(err, p, text, strlen(text));
    free(text);
    if (!s && prev > 0 && prev != step) remove_step_dir(run, prev);
    return s;
}

static it_status load_params(it_err *err, const char *path, it_optim_param *ps, size_t n)
{
    it_safetensors *f = NULL;
    IT_TRY(it_safetensors_open(err, &f, path));
    it_status s = IT_OK;
    for (size_t i = 0; i < n && !s; i++) {
        const it_safetensors_tensor *t = it_safetensors_find(f, ps[i].name);
        if (!t) s = it_err_set(err, IT_ERR_FORMAT, "%s: missing parameter %s", path, ps[i].name);
        else s = it_safetensors_load_f32(err, f, t, ps[i].data, ps[i].n);
    }
    if (!s && it_safetensors_count(f) != n)
        s = it_err_set(err, IT_ERR_FORMAT, "%s: holds %zu tensors, the model has %zu parameters", path,
                       it_safetensors_count(f), n);
    it_safetensors_close(f);
    return s;
}

it_status it_pretrain_ckpt_load(it_err *err, const char *run, const char *key, it_optim_param *params,
                                size_t n_params, it_optim *opt, int64_t *step, double *seconds)
{
    char p[1100], dir[1100], f[1200], hex[17];
    *step = 0;
    if (seconds) *seconds = 0;
    snprintf(p, sizeof p, "%s/latest.json", run);
    if (!it_file_exists(p)) return IT_OK;
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    if (!j) return it_err_set(err, IT_ERR_FORMAT, "%s: %s", p, je.text);
    json_int_t st = json_integer_value(json_object_get(j, "step"));
    const char *k = json_string_value(json_object_get(j, "key"));
    json_t *sums = json_object_get(j, "fnv1a64");
    double secs = json_number_value(json_object_get(j, "seconds"));
    it_status s = IT_OK;
    if (st <= 0 || !k || !json_is_object(sums))
        s = it_err_set(err, IT_ERR_FORMAT, "%s: not a pretraining checkpoint record (step, key, fnv1a64)", p);
    else if (key && strcmp(k, key))
        s = it_err_set(err, IT_ERR_ARG, "%s: checkpoint of another run (%s); this run is (%s): use another --run-dir "
                       "or the same options", p, k, key);
    if (!s) s = step_dir(err, run, st, dir, sizeof dir);
    for (int i = 0; i < 2 && !s; i++) {
        snprintf(f, sizeof f, "%s/%s", dir, CKPT_FILES[i]);
        const char *want = json_string_value(json_object_get(sums, CKPT_FILES[i]));
        if (!it_file_exists(f)) s = it_err_set(err, IT_ERR_NOT_FOUND, "%s: missing (named by %s)", f, p);
        else if (!(s = file_hash(err, f, hex)) && (!want || strcmp(want, hex)))
            s = it_err_set(err, IT_ERR_FORMAT, "%s: checkpoint file is corrupt (checksum %s, expected %s)", f, hex,
                           want ? want : "none");
    }
    json_decref(j);
    IT_TRY(s);
    snprintf(f, sizeof f, "%s/%s", dir, CKPT_FILES[0]);
    IT_TRY(load_params(err, f, params, n_params));
    snprintf(f, sizeof f, "%s/%s", dir, CKPT_FILES[1]);
    IT_TRY(it_optim_load(err, opt, f));
    if (opt->step != st)
        return it_err_set(err, IT_ERR_FORMAT, "%s: optimiser state is at step %lld, the checkpoint says %lld", f,
                          (long long)opt->step, (long long)st);
    *step = st;
    if (seconds) *seconds = secs;
    return IT_OK;
}

/* ================================================================ loop */

typedef struct loop_state {
    const it_pretrain_opts *o;
    const it_pretrain_loop *l;
    it_optim opt;
    FILE *log;
    char run[1024];
    int64_t last_ckpt;
    double t_ckpt;
    double t0, secs_before; /* this invocation's start; training time of earlier ones */
} loop_state;

static void log_json(loop_state *s, json_t *j)
{
    if (s->log && j) {
        char *t = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
        if (t) fprintf(s->log, "%s\n", t), fflush(s->log);
        free(t);
    }
    json_decref(j);
}

static it_status checkpoint(it_err *err, loop_state *s, int64_t step)
{
    if (step == s->last_ckpt) return IT_OK;
    double secs = s->secs_before + (it_time_now() - s->t0);
    IT_TRY(it_pretrain_ckpt_save(err, s->run, s->l->key, step, secs, s->l->params, s->l->n_params, &s->opt));
    s->last_ckpt = step;
    s->t_ckpt = it_time_now();
    log_json(s, json_pack("{s:s, s:I}", "event", "checkpoint", "step", (json_int_t)step));
    return IT_OK;
}

static it_status one_step(it_err *err, loop_state *s, int64_t step, double *grad_norm, it_pretrain_stats *st)
{
    const it_pretrain_loop *l = s->l;
    it_optim_zero_grad(&s->opt);
    memset(st, 0, sizeof *st);
    IT_TRY(l->step(err, l->user, step, st));
    if (!isfinite(st->loss))
        return it_err_set(err, IT_ERR_STATE, "%s: step %lld: loss is %g (diverged; the last checkpoint is kept)",
                          s->o->component, (long long)step, st->loss);
    /* With no clipping requested the factor is min(1, huge) = 1: the
     * gradients are unchanged and the norm is still measured for the log. */
    *grad_norm = it_optim_clip_grad_norm(&s->opt, l->max_grad_norm > 0 ? l->max_grad_norm : 1e30);
    if (!isfinite(*grad_norm))
        return it_err_set(err, IT_ERR_STATE, "%s: step %lld: gradient norm is %g (diverged; the last checkpoint is kept)",
                          s->o->component, (long long)step, *grad_norm);
    it_optim_step(&s->opt, it_lr_schedule_lr(&l->sched, l->optim.lr, step));
    return IT_OK;
}

static void log_step(loop_state *s, int64_t done, const it_pretrain_stats *st, double lr, double gn, double secs)
{
    json_t *j = json_pack("{s:I, s:f}", "step", (json_int_t)done, "loss", st->loss);
    if (!j) return;
    for (int i = 0; i < st->n_terms && i < IT_PRETRAIN_MAX_TERMS; i++)
        json_object_set_new(j, st->term_name[i], json_real(st->term[i]));
    json_object_set_new(j, "lr", json_real(lr));
    json_object_set_new(j, "grad_norm", json_real(gn));
    json_object_set_new(j, "seconds", json_real(round(secs * 1000) / 1000));
    log_json(s, j);
}

static it_status run_eval(it_err *err, loop_state *s, int64_t done)
{
    json_t *m = json_object();
    if (!m) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    it_status st = s->l->eval(err, s->l->user, done, m);
    if (!st) {
        const char *k;
        json_t *v;
        char line[256] = "";
        size_t n = 0;
        json_object_foreach(m, k, v) {
            if (json_is_number(v) && n < sizeof line - 40)
                n += (size_t)snprintf(line + n, sizeof line - n, " %s %.4g", k, json_number_value(v));
        }
        if (!s->o->quiet) IT_LOG_I("%s: step %lld eval:%s", s->o->component, (long long)done, line);
        log_json(s, json_pack("{s:s, s:I, s:O}", "event", "eval", "step", (json_int_t)done, "metrics", m));
    }
    json_decref(m);
    return st;
}

/* Why to stop before running step `step` (NULL: go on). */
static const char *stop_reason(const loop_state *s, int64_t step, int64_t first, double t0)
{
    const it_pretrain_opts *o = s->o;
    if (o->export_only) return "export_only";
    if (o->stop && *o->stop) return "interrupted";
    int64_t done_here = step - first;
    if (o->stop_after > 0 && done_here >= o->stop_after) return "stop_after";
    if (o->time_limit > 0 && done_here > 0) {
        double el = it_time_now() - t0, per = el / (double)done_here;
        if (el + per > o->time_limit) return "time_limit";
    }
    return NULL;
}

static it_status loop_body(it_err *err, loop_state *s, it_pretrain_result *res)
{
    const it_pretrain_opts *o = s->o;
    const it_pretrain_loop *l = s->l;
    int64_t step = res->start_step, first = step;
    int64_t every = o->checkpoint_every > 0 ? o->checkpoint_every : DEFAULT_CKPT_EVERY;
    double ck_secs = o->checkpoint_seconds == 0 ? DEFAULT_CKPT_SECONDS : o->checkpoint_seconds;
    int64_t eval_every = o->eval_every != 0 ? o->eval_every : l->default_eval_every;
    it_progress pr;
    if (!o->quiet) it_progress_start(&pr, o->component, l->steps - first);
    double t0 = it_time_now(), t_log = t0;
    s->t_ckpt = s->t0 = t0;
    it_status st = IT_OK;
    const char *why = NULL;
    while (step < l->steps && !(why = stop_reason(s, step, first, t0))) {
        it_pretrain_stats ps;
        double gn = 0, lr = it_lr_schedule_lr(&l->sched, l->optim.lr, step);
        if ((st = one_step(err, s, step, &gn, &ps))) break;
        step++;
        double now = it_time_now(), rate = (double)(step - first) / (now - t0 > 0 ? now - t0 : 1e-9);
        res->last_loss = ps.loss;
        log_step(s, step, &ps, lr, gn, now - t0);
        if (!o->quiet) {
            char extra[96];
            snprintf(extra, sizeof extra, "step %lld loss %.4f %.2f s/step", (long long)step, ps.loss, 1.0 / rate);
            it_progress_update(&pr, step - first, extra);
            if (!pr.active && now - t_log >= LOG_EVERY_SECONDS) {
                char eta[32];
                it_format_duration(eta, sizeof eta, (double)(l->steps - step) / rate);
                IT_LOG_I("%s: step %lld/%lld loss %.4f %.2f s/step ETA %s", o->component, (long long)step,
                         (long long)l->steps, ps.loss, 1.0 / rate, eta);
                t_log = now;
            }
        }
        if (l->eval && eval_every > 0 && step % eval_every == 0 && step < l->steps && (st = run_eval(err, s, step)))
            break;
        if (step % every == 0 || (ck_secs > 0 && now - s->t_ckpt >= ck_secs))
            if ((st = checkpoint(err, s, step))) break;
    }
    if (!o->quiet) it_progress_finish(&pr);
    res->step = step;
    res->seconds = it_time_now() - t0;
    res->step_seconds = step > first ? res->seconds / (double)(step - first) : 0;
    res->total_seconds = s->secs_before + res->seconds;
    res->finished = step == l->steps;
    res->stopped = !res->finished;
    if (st) return st;
    if (step > first) IT_TRY(checkpoint(err, s, step));
    if (why) {
        log_json(s, json_pack("{s:s, s:I, s:s}", "event", "stop", "step", (json_int_t)step, "reason", why));
        if (!o->quiet)
            IT_LOG_I("%s: stopped at step %lld of %lld (%s); continue with --resume", o->component, (long long)step,
                     (long long)l->steps, why);
    }
    return IT_OK;
}

it_status it_pretrain_train(it_err *err, const it_pretrain_opts *o, const it_pretrain_loop *l,
                            it_pretrain_result *res)
{
    memset(res, 0, sizeof *res);
    IT_TRY(it_pretrain_opts_check(err, o));
    if (l->steps < 1) return it_err_set(err, IT_ERR_ARG, "%s: steps must be >= 1", o->component);
    loop_state s;
    memset(&s, 0, sizeof s);
    s.o = o, s.l = l, s.last_ckpt = -1;
    IT_TRY(it_pretrain_run_path(err, o, s.run, sizeof s.run));
    snprintf(res->run, sizeof res->run, "%s", s.run);
    IT_TRY(it_optim_init(err, &s.opt, &l->optim, l->params, l->n_params));
    it_status st = IT_OK;
    char p[1100];
    snprintf(p, sizeof p, "%s/latest.json", s.run);
    if (!o->resume && it_file_exists(p))
        st = it_err_set(err, IT_ERR_ARG, "%s holds a checkpoint (step %lld): pass --resume to continue it, or remove "
                        "the folder to start again", s.run, (long long)latest_step(s.run));
    if (!st && o->resume) st = it_pretrain_ckpt_load(err, s.run, l->key, l->params, l->n_params, &s.opt, &res->start_step,
                                                     &s.secs_before);
    s.last_ckpt = res->start_step > 0 ? res->start_step : -1;
    if (!st && res->start_step > l->steps)
        st = it_err_set(err, IT_ERR_ARG, "%s: the checkpoint is at step %lld, beyond --steps %lld", s.run,
                        (long long)res->start_step, (long long)l->steps);
    snprintf(p, sizeof p, "%s/train.jsonl", s.run);
    if (!st && !(s.log = fopen(p, o->resume ? "a" : "w"))) st = it_err_set(err, IT_ERR_IO, "%s: cannot open for writing", p);
    if (!st) {
        log_json(&s, json_pack("{s:s, s:I, s:s, s:I, s:I}", "event", res->start_step ? "resume" : "start", "step",
                               (json_int_t)res->start_step, "key", l->key ? l->key : "", "steps", (json_int_t)l->steps,
                               "seed", (json_int_t)o->seed));
        st = loop_body(err, &s, res);
    }
    if (s.log) fclose(s.log);
    it_optim_free(&s.opt);
    return st;
}

/* ================================================================ params */

it_status it_pretrain_params_list(it_err *err, const it_params *ps, it_optim_param **out, size_t *n)
{
    *out = NULL, *n = 0;
    if (!ps->grad) return it_err_set(err, IT_ERR_ARG, "%s: parameters were not allocated trainable", ps->label);
    it_optim_param *list = it_calloc(ps->n ? ps->n : 1, sizeof *list);
    if (!list) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < ps->n; i++) {
        const it_tensor *t = ps->items[i];
        list[i] = (it_optim_param){t->name, it_f32(t), t->grad, (size_t)t->n, 0};
    }
    *out = list, *n = ps->n;
    return IT_OK;
}

static void fill_uniform(float *d, int64_t n, float bound, uint64_t seed, uint64_t idx)
{
    it_rng r;
    it_rng_init(&r, seed ^ (0x9E3779B97F4A7C15ull * (idx + 1)));
    it_rng_uniform(&r, d, (size_t)n);
    for (int64_t i = 0; i < n; i++) d[i] = (2 * d[i] - 1) * bound;
}

void it_pretrain_init_params(it_params *ps, uint64_t seed)
{
    for (size_t i = 0; i < ps->n; i++) {
        it_tensor *t = ps->items[i];
        float *d = it_f32(t);
        if (!d) continue;
        size_t len = strlen(t->name);
        int is_weight = len >= 7 && !strcmp(t->name + len - 7, ".weight");
        if (t->ndim == 1) {
            float v = is_weight ? 1.0f : 0.0f;
            for (int64_t k = 0; k < t->n; k++) d[k] = v;
        } else {
            it_rng r;
            it_rng_init(&r, seed ^ (0x9E3779B97F4A7C15ull * (i + 1)));
            it_rng_normal(&r, d, (size_t)t->n, 0.0f, 0.02f);
        }
    }
    /* Modules (linear, conv) override with torch's uniform(+-1/sqrt(fan_in)). */
    for (size_t m = 0; m < it_params_module_count(ps); m++) {
        it_lin *l = it_params_module(ps, m);
        if (!l->w || !l->w->data) continue;
        int64_t fan_in = l->w->n / l->w->shape[0];
        float bound = fan_in > 0 ? 1.0f / sqrtf((float)fan_in) : 0.0f;
        fill_uniform(it_f32(l->w), l->w->n, bound, seed, 2 * m + 0x10000);
        if (l->b && l->b->data) fill_uniform(it_f32(l->b), l->b->n, bound, seed, 2 * m + 0x10001);
    }
}

it_status it_pretrain_export_params(it_err *err, const it_params *ps, const char *path, int half,
                                    const char *const *meta)
{
    it_safetensors_writer *w = NULL;
    IT_TRY(it_safetensors_writer_new(err, &w));
    it_status s = IT_OK;
    for (size_t i = 0; i < ps->n && !s; i++) {
        const it_tensor *t = ps->items[i];
        /* f16 for the big matrices only: norms and biases are few values and
         * carry offsets where f16's 3 digits could shift colours. */
        it_dtype dt = half && t->ndim >= 2 ? IT_DTYPE_F16 : IT_DTYPE_F32;
        s = it_safetensors_writer_add_f32_as(err, w, t->name, dt, t->ndim, t->shape, it_f32(t));
    }
    for (int i = 0; meta && meta[i] && meta[i + 1] && !s; i += 2)
        s = it_safetensors_writer_set_metadata(err, w, meta[i], meta[i + 1]);
    if (!s) s = it_safetensors_writer_save(err, w, path);
    it_safetensors_writer_free(w);
    return s;
}

/* ================================================================ provenance */

static it_status record_path(it_err *err, const char *out, const char *component, char *buf, size_t n, int mk)
{
    char dir[1100];
    IT_TRY(it_path_join(err, dir, sizeof dir, out, "pretrain"));
    if (mk) IT_TRY(it_mkdir_p(err, dir));
    if (snprintf(buf, n, "%s/%s.json", dir, component) >= (int)n) return it_err_set(err, IT_ERR_RANGE, "%s: path too long", dir);
    return IT_OK;
}

it_status it_pretrain_record(it_err *err, const it_pretrain_opts *o, const it_pretrain_result *res,
                             json_t *metrics)
{
    char p[1200];
    IT_TRY(record_path(err, o->out, o->component, p, sizeof p, 1));
    json_t *j = json_pack("{s:s, s:b, s:I, s:I, s:f, s:f, s:s}", "component", o->component, "finished", res->finished,
                          "seed", (json_int_t)o->seed, "steps", (json_int_t)res->step, "seconds",
                          round(res->total_seconds), "step_seconds", round(res->step_seconds * 1000) / 1000, "command",
                          o->command ? o->command : "");
    if (!j) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    if (metrics) json_object_set(j, "metrics", metrics);
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(j);
    if (!text) return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    size_t n = strlen(text);
    text[n] = '\0';
    char *withnl = it_malloc(n + 2);
    it_status s = withnl ? IT_OK : it_err_set(err, IT_ERR_NOMEM, "out of memory");
    if (!s) {
        memcpy(withnl, text, n), withnl[n] = '\n';
        s = it_file_write_atomic(err, p, withnl, n + 1);
    }
    it_free(withnl);
    free(text);
    return s;
}

int it_pretrain_is_finished(const char *out, const char *component)
{
    char p[1200];
    if (record_path(NULL, out, component, p, sizeof p, 0)) return 0;
    json_t *j = json_load_file(p, 0, NULL);
    int f = j && json_is_true(json_object_get(j, "finished"));
    json_decref(j);
    return f;
}
