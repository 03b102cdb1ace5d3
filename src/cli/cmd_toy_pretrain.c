/* cmd_toy_pretrain.c: `intenttuner toy pretrain COMPONENT` and `intenttuner
 * toy quality COMPONENT` (issue #10), called from the `toy` dispatcher
 * (cmd_toy.c). The component table below is the one place a component is
 * registered: one row each (name, pretrain, quality, dependencies). */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "cli/args.h"
#include "toy/pretrain.h"
#include "toy/pretrain_clip.h"
#include "toy/pretrain_detector.h"
#include "toy/pretrain_preference.h"
#include "toy/pretrain_unet.h"
#include "toy/pretrain_vae.h"

typedef it_status (*pretrain_fn)(it_err *err, const it_pretrain_opts *o);
typedef it_status (*quality_fn)(it_err *err, const it_pretrain_opts *o, json_t *report);

typedef struct component {
    const char *name;
    pretrain_fn pretrain;
    quality_fn quality;
    const char *deps; /* components whose exported files this one reads, comma-separated */
} component;

/* `all` runs the rows in this order (dependencies first). */
static const component COMPONENTS[] = {
    {"clip", it_pretrain_clip, it_quality_clip, ""},
    {"vae", it_pretrain_vae, it_quality_vae, ""},
    {"unet", it_pretrain_unet, it_quality_unet, "clip,vae"},
    {"detector", it_pretrain_detector, it_quality_detector, "clip"},
    {"preference", it_pretrain_preference, it_quality_preference, "clip"},
};
#define N_COMPONENTS (int)(sizeof COMPONENTS / sizeof COMPONENTS[0])

/* The order `all` follows; components not (yet) in the table are reported. */
static const char *const ALL_ORDER[] = {"clip", "vae", "unet", "detector", "preference"};

static const component *find_component(const char *name)
{
    for (int i = 0; i < N_COMPONENTS; i++)
        if (!strcmp(COMPONENTS[i].name, name)) return &COMPONENTS[i];
    return NULL;
}

static void list_names(char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < N_COMPONENTS && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? ", " : "", COMPONENTS[i].name);
}

static volatile int g_stop;
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

typedef struct cli_opts {
    const char *out, *run_dir, *model_dir, *config;
    long seed, eval_seed, steps, batch, ckpt_every, eval_every, eval_n, stop_after;
    double lr, time_limit;
    int resume, export_partial, export_only;
} cli_opts;

static it_status to_opts(it_err *err, const cli_opts *c, const char *comp, it_pretrain_opts *o)
{
    it_pretrain_opts_init(o);
    o->component = comp;
    if (c->out) o->out = c->out;
    if (c->run_dir) o->run_dir = c->run_dir;
    o->model_dir = c->model_dir;
    o->config = c->config;
    if (c->seed < 0 || c->eval_seed < -1) return it_err_set(err, IT_ERR_ARG, "--seed must be >= 0");
    o->seed = (uint64_t)c->seed;
    if (c->eval_seed >= 0) o->eval_seed = (uint64_t)c->eval_seed;
    if (c->steps < 0) return it_err_set(err, IT_ERR_ARG, "--steps must be >= 1");
    if (c->batch < 0 || c->batch > 4096) return it_err_set(err, IT_ERR_ARG, "--batch must be in 1..4096");
    if (c->ckpt_every < 0) return it_err_set(err, IT_ERR_ARG, "--checkpoint-every must be >= 1");
    if (c->eval_n < 0 || c->eval_n > 100000) return it_err_set(err, IT_ERR_ARG, "--eval-n must be in 1..100000");
    if (c->stop_after < 0) return it_err_set(err, IT_ERR_ARG, "--stop-after must be >= 1");
    o->steps = c->steps, o->batch = (int)c->batch, o->lr = c->lr;
    o->checkpoint_every = c->ckpt_every, o->eval_every = c->eval_every, o->eval_n = (int)c->eval_n;
    o->stop_after = c->stop_after;
    o->time_limit = c->time_limit;
    o->resume = c->resume, o->export_partial = c->export_partial, o->export_only = c->export_only;
    o->quiet = it_common.quiet;
    o->stop = &g_stop;
    return it_pretrain_opts_check(err, o);
}

static void join_argv(char *buf, size_t n, int argc, char **argv)
{
    size_t k = (size_t)snprintf(buf, n, "intenttuner toy");
    for (int i = 0; i < argc && k < n; i++) k += (size_t)snprintf(buf + k, n - k, " %s", argv[i]);
}

static it_status run_one(it_err *err, const component *c, it_pretrain_opts *o)
{
    char deps[256];
    snprintf(deps, sizeof deps, "%s", c->deps);
    for (char *save = NULL, *d = strtok_r(deps, ",", &save); d; d = strtok_r(NULL, ",", &save))
        if (!it_pretrain_is_finished(o->out, d))
            IT_LOG_W("%s: %s depends on %s, which %s/pretrain/%s.json does not mark finished", c->name, c->name, d,
                     o->out, d);
    o->component = c->name;
    it_status s = c->pretrain(err, o);
    if (s) it_err_prefix(err, "pretrain %s", c->name);
    return s;
}

static int toy_pretrain(int argc, char **argv)
{
    cli_opts c = {0};
    c.seed = 1, c.eval_seed = -1;
    const it_opt opts[] = {
        {"out", 'o', IT_OPT_STR, &c.out, "DIR", "pipeline folder the weights go to (default models/toy)"},
        {"run-dir", 0, IT_OPT_STR, &c.run_dir, "DIR", "run folders (checkpoints, train.jsonl) go to DIR/COMPONENT (default runs/toy)"},
        {"seed", 's', IT_OPT_INT, &c.seed, "S", "training seed (default 1)"},
        {"eval-seed", 0, IT_OPT_INT, &c.eval_seed, "S", "seed of evaluation renders (default 1000003)"},
        {"steps", 0, IT_OPT_INT, &c.steps, "N", "total steps (default: the component's)"},
        {"batch", 'b', IT_OPT_INT, &c.batch, "B", "batch size (default: the component's)"},
        {"lr", 0, IT_OPT_FLOAT, &c.lr, "X", "peak learning rate (default: the component's)"},
        {"config", 0, IT_OPT_STR, &c.config, "FILE", "architecture override (the component's config.json format)"},
        {"resume", 'r', IT_OPT_FLAG, &c.resume, NULL, "continue the run in the run folder from its last checkpoint"},
        {"time-limit", 0, IT_OPT_FLOAT, &c.time_limit, "SECONDS", "checkpoint and stop before this much time has passed"},
        {"checkpoint-every", 0, IT_OPT_INT, &c.ckpt_every, "N", "steps between checkpoints (default 200; also every 10 min)"},
        {"eval-every", 0, IT_OPT_INT, &c.eval_every, "N", "steps between evaluations (default: the component's; -1 = none)"},
        {"eval-n", 0, IT_OPT_INT, &c.eval_n, "N", "images per evaluation"},
        {"stop-after", 0, IT_OPT_INT, &c.stop_after, "N", "stop (with a checkpoint) after N steps of this invocation"},
        {"export-partial", 0, IT_OPT_FLAG, &c.export_partial, NULL, "export the weights even if the run stopped early (interim)"},
        {"export-only", 0, IT_OPT_FLAG, &c.export_only, NULL, "with --resume: export the checkpoint without training"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char names[256], desc[1024];
    list_names(names, sizeof names);
    snprintf(desc, sizeof desc,
             "Pretrains a toy model on renders with our engine and exports it into the pipeline folder. COMPONENT: "
             "%s, or all (clip, vae, unet, detector, preference in order, skipping finished ones). Resumable: "
             "interrupt it (Ctrl-C checkpoints) or give --time-limit, then run again with --resume.",
             names);
    const it_cmd_spec spec = {"intenttuner toy pretrain COMPONENT [options]", desc, opts, 1, 1,
                              "example: nice -n 10 intenttuner toy pretrain vae --out models/toy --run-dir /work/toyrun "
                              "--threads 1 --time-limit 3600 --resume"};
    const char *pos[2];
    int n_pos = 0, rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err;
    it_err_clear(&err);
    it_pretrain_opts o;
    char cmd[2048];
    join_argv(cmd, sizeof cmd, argc, argv);
    if (to_opts(&err, &c, pos[0], &o)) return it_cli_fail(&err);
    o.command = cmd;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    it_status s = IT_OK;
    if (!strcmp(pos[0], "all") && c.config) {
        it_err_set(&err, IT_ERR_ARG, "--config is one component's architecture; it cannot apply to all");
        s = IT_ERR_ARG;
    } else if (!strcmp(pos[0], "all")) {
        for (size_t i = 0; i < sizeof ALL_ORDER / sizeof ALL_ORDER[0] && !s && !g_stop; i++) {
            const component *cp = find_component(ALL_ORDER[i]);
            if (!cp) {
                IT_LOG_W("all: component %s is not available in this build; skipped", ALL_ORDER[i]);
                continue;
            }
            if (it_pretrain_is_finished(o.out, cp->name)) {
                IT_LOG_I("all: %s is finished (%s/pretrain/%s.json); skipped", cp->name, o.out, cp->name);
                continue;
            }
            s = run_one(&err, cp, &o);
            /* A component stopped by the time limit is not finished: the
             * next ones depend on it, so `all` stops there too. */
            if (!s && !it_pretrain_is_finished(o.out, cp->name)) break;
        }
    } else {
        const component *cp = find_component(pos[0]);
        if (!cp) {
            it_err_set(&err, IT_ERR_ARG, "unknown component '%s' (expected %s or all)", pos[0], names);
            return it_cli_fail(&err);
        }
        s = run_one(&err, cp, &o);
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    return s ? it_cli_fail(&err) : 0;
}

static void print_report(const char *name, json_t *r)
{
    printf("%s:\n", name);
    const char *k;
    json_t *v;
    json_object_foreach(r, k, v) {
        if (json_is_real(v)) printf("  %-20s %.4f\n", k, json_real_value(v));
        else if (json_is_integer(v)) printf("  %-20s %lld\n", k, (long long)json_integer_value(v));
        else if (json_is_boolean(v)) printf("  %-20s %s\n", k, json_is_true(v) ? "yes" : "no");
        else if (json_is_string(v)) printf("  %-20s %s\n", k, json_string_value(v));
        else {
            char *t = json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(4));
            printf("  %-20s %s\n", k, t ? t : "?");
            free(t);
        }
    }
}

static int toy_quality(int argc, char **argv)
{
    cli_opts c = {0};
    c.seed = 1, c.eval_seed = -1;
    const it_opt opts[] = {
        {"model-dir", 'm', IT_OPT_STR, &c.model_dir, "DIR", "pipeline folder to measure (default models/toy)"},
        {"eval-seed", 0, IT_OPT_INT, &c.eval_seed, "S", "seed of the fresh renders (default 1000003)"},
        {"eval-n", 0, IT_OPT_INT, &c.eval_n, "N", "number of renders (default: the component's)"},
        {"run-dir", 0, IT_OPT_STR, &c.run_dir, "DIR", "where sample grids go: DIR/COMPONENT/quality_*.png (default runs/toy)"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char names[256], desc[512];
    list_names(names, sizeof names);
    snprintf(desc, sizeof desc, "Measures a pretrained toy model on fresh renders (seed distinct from training). COMPONENT: %s, or all.",
             names);
    const it_cmd_spec spec = {"intenttuner toy quality COMPONENT [options]", desc, opts, 1, 1,
                              "example: intenttuner toy quality vae --json"};
    const char *pos[2];
    int n_pos = 0, rc = it_args_run(&spec, argc, argv, pos, &n_pos);
    if (rc >= 0) return rc;
    it_err err;
    it_err_clear(&err);
    it_pretrain_opts o;
    if (to_opts(&err, &c, pos[0], &o)) return it_cli_fail(&err);
    if (c.model_dir) o.out = c.model_dir;
    int all = !strcmp(pos[0], "all");
    if (!all && !find_component(pos[0])) {
        it_err_set(&err, IT_ERR_ARG, "unknown component '%s' (expected %s or all)", pos[0], names);
        return it_cli_fail(&err);
    }
    json_t *out = json_object();
    it_status s = out ? IT_OK : it_err_set(&err, IT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < N_COMPONENTS && !s; i++) {
        if (!all && strcmp(COMPONENTS[i].name, pos[0])) continue;
        json_t *r = json_object();
        o.component = COMPONENTS[i].name;
        s = r ? COMPONENTS[i].quality(&err, &o, r) : it_err_set(&err, IT_ERR_NOMEM, "out of memory");
        if (s) it_err_prefix(&err, "quality %s", COMPONENTS[i].name);
        else if (!it_common.json) print_report(COMPONENTS[i].name, r);
        if (r) json_object_set_new(out, COMPONENTS[i].name, r);
    }
    if (!s && it_common.json) {
        char *t = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        if (t) printf("%s\n", t);
        free(t);
    }
    json_decref(out);
    return s ? it_cli_fail(&err) : 0;
}

/* Entry from cmd_toy.c: argv[0] is "pretrain" or "quality". */
int it_cli_toy_pretrain(int argc, char **argv)
{
    if (!strcmp(argv[0], "quality")) return toy_quality(argc, argv);
    return toy_pretrain(argc, argv);
}
