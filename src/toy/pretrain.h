/* pretrain.h: the framework that pretrains the toy world's models (issue #10):
 * options, run folder, the training loop with crash-safe checkpoints and
 * bit-identical resume, the JSONL log, the progress report, the time limit,
 * weight initialisation and the export of weights.
 *
 * Owns: it_pretrain_opts (what `intenttuner toy pretrain|quality` passes to
 * a component), the loop driver it_pretrain_train (a component supplies its
 * trainable parameters and a step function that fills their gradients; the
 * framework zeroes, clips, steps AdamW on a diffusers lr schedule, logs,
 * checkpoints and stops), checkpoints (RUN/ckpt/step-NNNNNNNN/
 * {params,optim}.safetensors, then RUN/latest.json written atomically with a
 * checksum of each file: a checkpoint exists once latest.json names it, and
 * a damaged file is detected before anything is loaded), the provenance
 * record OUT/pretrain/<component>.json that `toy pretrain all` reads to skip
 * finished components, torch-default initialisation of an it_params and
 * the export of an it_params as a diffusers-style safetensors file.
 * Does not own any model or loss (src/toy/pretrain_<component>.c do), the
 * component table or the command line (src/cli/cmd_toy_pretrain.c).
 *
 * Determinism contract for components: everything random in step s (data,
 * noise, augmentation, dropout) must be a function of (o->seed, s) only,
 * never of a stream advanced by earlier steps. The checkpoint then only
 * needs the parameters, the optimiser state and the step, and a resumed run
 * reproduces the losses of an uninterrupted one bit for bit (same thread
 * count). */
#ifndef IT_PRETRAIN_H
#define IT_PRETRAIN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "models/nn.h"
#include "tensor/optim.h"

typedef struct it_pretrain_opts {
    const char *component;    /* "vae", "clip", ... (set by the CLI) */
    const char *out;          /* pipeline folder written: "models/toy" */
    const char *run_dir;      /* base of run folders: the run is RUN_DIR/<component> ("runs/toy") */
    const char *model_dir;    /* quality: folder read (NULL = out) */
    const char *config;       /* component architecture override: a JSON file path, or inline JSON
                               * text starting with '{' (tests: tiny configs); NULL = default */
    uint64_t seed;            /* training stream (default 1) */
    uint64_t eval_seed;       /* quality/eval renders: distinct from seed (default 1000003) */
    int64_t steps;            /* 0 = the component's default */
    int batch;                /* 0 = default */
    double lr;                /* 0 = default */
    int resume;               /* continue RUN/latest.json; without it an existing checkpoint is an error */
    double time_limit;        /* seconds of this invocation; 0 = none. The loop checkpoints and stops
                               * cleanly when the next step would pass it */
    int64_t checkpoint_every; /* steps; 0 = default (200) */
    double checkpoint_seconds;/* also checkpoint when this much time passed since the last one
                               * (0 = default 600 s; < 0 = off) */
    int64_t eval_every;       /* steps between the component's evaluations (0 = default, < 0 = off) */
    int eval_n;               /* images per evaluation / quality measurement (0 = default) */
    int64_t stop_after;       /* tests: stop (with a checkpoint) after this many steps of this
                               * invocation, as an interruption would; 0 = off */
    int export_partial;       /* export the weights even when the run stopped before its last step
                               * (interim weights; the record says finished: false) */
    int export_only;          /* with resume: run no step, only export the checkpoint (implies
                               * export_partial) */
    int quiet;                /* no progress output */
    volatile int *stop;       /* set asynchronously (SIGINT/SIGTERM): checkpoint and stop; may be NULL */
    const char *command;      /* the command line, recorded in OUT/pretrain/<component>.json */
} it_pretrain_opts;

void it_pretrain_opts_init(it_pretrain_opts *o);
/* Checks the common options (ranges, seeds distinct); errors name the option. */
it_status it_pretrain_opts_check(it_err *err, const it_pretrain_opts *o);

/* RUN_DIR/<component> into buf, created. */
it_status it_pretrain_run_path(it_err *err, const it_pretrain_opts *o, char *buf, size_t n);
/* The component's config override as a new JSON object (*out NULL when
 * o->config is NULL). Errors name the file or say "--config". */
it_status it_pretrain_config_json(it_err *err, const it_pretrain_opts *o, json_t **out);

/* ------------------------------------------------------------ loop */

#define IT_PRETRAIN_MAX_TERMS 8

/* What a step reports: the loss and up to 8 named terms (logged). */
typedef struct it_pretrain_stats {
    double loss;
    int n_terms;
    const char *term_name[IT_PRETRAIN_MAX_TERMS];
    double term[IT_PRETRAIN_MAX_TERMS];
} it_pretrain_stats;

/* Computes the loss of step `step` and ADDS the gradients of every trainable
 * parameter (they are zero on entry). Everything random must be a function
 * of (seed, step). */
typedef it_status (*it_pretrain_step_fn)(it_err *err, void *user, int64_t step, it_pretrain_stats *st);
/* Optional evaluation at a step: adds metrics to `metrics` (logged as an
 * "eval" line). Must not disturb the training stream. */
typedef it_status (*it_pretrain_eval_fn)(it_err *err, void *user, int64_t step, json_t *metrics);

typedef struct it_pretrain_loop {
    const char *key;              /* run identity (architecture, batch, lr...): resume refuses
                                   * a checkpoint whose key differs */
    it_optim_param *params;       /* trainable parameters (arrays borrowed) */
    size_t n_params;
    it_optim_config optim;        /* AdamW (defaults from it_optim_adamw_defaults(lr)) */
    it_lr_schedule sched;
    double max_grad_norm;         /* 0 = no clipping */
    int64_t steps;                /* total steps of the run */
    int64_t default_eval_every;   /* used when o->eval_every == 0 (0 = no evaluation) */
    it_pretrain_step_fn step;
    it_pretrain_eval_fn eval;     /* may be NULL */
    void *user;
} it_pretrain_loop;

typedef struct it_pretrain_result {
    int64_t start_step;           /* where this invocation began (checkpoint step or 0) */
    int64_t step;                 /* steps completed in total */
    int finished;                 /* step == steps */
    int stopped;                  /* stopped early: time limit, stop flag or stop_after */
    double seconds;               /* wall time of this invocation's steps */
    double total_seconds;         /* training wall time over all invocations of the run */
    double step_seconds;          /* mean wall seconds per step in this invocation */
    double last_loss;
    char run[1024];               /* the run folder */
} it_pretrain_result;

/* Runs (or, with o->resume, continues) the loop. Writes RUN/train.jsonl
 * (one line per step: step, loss, terms, lr, grad_norm, seconds; "eval",
 * "resume", "checkpoint" and "stop" events), shows a progress bar (loss,
 * steps/s, ETA) on a TTY and a log line every 30 s otherwise, checkpoints
 * every checkpoint_every steps / checkpoint_seconds, at a stop and at the
 * end. A diverged step (non-finite loss or gradient norm) is an error and
 * leaves the last checkpoint intact. */
it_status it_pretrain_train(it_err *err, const it_pretrain_opts *o, const it_pretrain_loop *l,
                            it_pretrain_result *res);

/* ------------------------------------------------------------ checkpoints */

/* Writes params (values, by name) and the optimiser state of `step` into
 * run/ckpt/step-NNNNNNNN/, then run/latest.json (atomic) naming it with key
 * and checksums, then removes the previous checkpoint directory. */
it_status it_pretrain_ckpt_save(it_err *err, const char *run, const char *key, int64_t step,
                                double seconds, const it_optim_param *params, size_t n_params,
                                const it_optim *opt);
/* seconds: training wall time summed over every invocation up to step.
 * Loads the checkpoint named by run/latest.json into the parameters and the
 * optimiser. *step = its step, *seconds its total time (may be NULL); 0 (and
 * nothing loaded) when there is none.
 * Errors: another run's key, a checksum mismatch ("corrupt"), a missing or
 * mis-sized parameter, an optimiser state that disagrees with the step. */
it_status it_pretrain_ckpt_load(it_err *err, const char *run, const char *key, it_optim_param *params,
                                size_t n_params, it_optim *opt, int64_t *step, double *seconds);

/* ------------------------------------------------------------ params */

/* Every registered weight of ps as an optimiser parameter list (names
 * borrowed from ps); *out freed with it_free. ps must be allocated with
 * IT_MODEL_TRAINABLE. */
it_status it_pretrain_params_list(it_err *err, const it_params *ps, it_optim_param **out, size_t *n);

/* torch's default initialisation, deterministic from seed: weights of
 * linear/conv modules and their biases uniform(+-1/sqrt(fan_in)) (what
 * kaiming_uniform(a=sqrt 5) gives), 1-D "*.weight" of norms 1 and other
 * 1-D tensors 0, any other tensor normal(0, 0.02) (embeddings). Each tensor
 * draws from its own counter stream (seed, index), so adding a tensor does
 * not change the others. */
void it_pretrain_init_params(it_params *ps, uint64_t seed);

/* Writes ps as a safetensors file with the parameters' names and shapes:
 * linear/conv weights as f16 when half is set (norms and biases stay f32),
 * metadata pairs (NULL-terminated key, value list, may be NULL). Atomic. */
it_status it_pretrain_export_params(it_err *err, const it_params *ps, const char *path, int half,
                                    const char *const *meta);

/* ------------------------------------------------------------ provenance */

/* OUT/pretrain/<component>.json: {"component", "finished", "seed", "steps",
 * "seconds", "step_seconds", "command", "metrics": {...}} (metrics may be
 * NULL; borrowed). Written atomically. */
it_status it_pretrain_record(it_err *err, const it_pretrain_opts *o, const it_pretrain_result *res,
                             json_t *metrics);
/* 1 when OUT/pretrain/<component>.json says finished. */
int it_pretrain_is_finished(const char *out, const char *component);

#endif
