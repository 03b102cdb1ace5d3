/* optim.h: optimisers, gradient clipping, learning-rate schedules and EMA of
 * weights, on raw float parameter arrays.
 *
 * Owns: the update rules (AdamW and SGD with momentum, bit-for-bit the
 * arithmetic of torch.optim's single-tensor implementations), global-norm
 * clipping (torch.nn.utils.clip_grad_norm_), the schedules of diffusers'
 * get_scheduler, an EMA of weights (diffusers' EMAModel), and saving and
 * loading optimiser/EMA state as .safetensors. Does not own parameters or
 * gradients (the tensor engine and the models do: an it_optim_param borrows
 * their arrays) nor the training loop that decides when to step.
 *
 * Frozen parameters (LoRA training: the base weights) are skipped by step,
 * clipping and zero_grad, and are copied, not averaged, by the EMA. */
#ifndef IT_OPTIM_H
#define IT_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct it_optim_param {
    const char *name; /* checkpoint key; state keys are "<name>.exp_avg" etc. */
    float *data;      /* (n) */
    float *grad;      /* (n); may be NULL when frozen */
    size_t n;
    int frozen;
} it_optim_param;

typedef enum it_optim_kind {
    IT_OPTIM_ADAMW = 0,
    IT_OPTIM_SGD = 1,
} it_optim_kind;

typedef struct it_optim_config {
    it_optim_kind kind;
    double lr;           /* base learning rate (schedules return the step's lr) */
    double weight_decay; /* AdamW: decoupled, p *= 1 - lr*wd; SGD: L2, g += wd*p */
    double beta1, beta2, eps; /* AdamW */
    double momentum, dampening; /* SGD */
    int nesterov;        /* SGD: g + momentum*buf instead of buf */
} it_optim_config;

/* torch defaults: AdamW betas (0.9, 0.999), eps 1e-8, weight decay 0.01;
 * SGD momentum 0, dampening 0, weight decay 0, no nesterov. */
it_optim_config it_optim_adamw_defaults(double lr);
it_optim_config it_optim_sgd_defaults(double lr);

typedef struct it_optim {
    it_optim_config cfg;
    it_optim_param *params; /* (n_params) copies; names are owned copies */
    size_t n_params;
    float **m;      /* (n_params) AdamW exp_avg / SGD momentum_buffer; NULL if frozen */
    float **v;      /* (n_params) AdamW exp_avg_sq; NULL if frozen or SGD */
    int64_t step;   /* completed steps */
} it_optim;

/* Copies the parameter list (the arrays stay borrowed) and allocates zeroed
 * state. IT_ERR_ARG for a trainable parameter without grad, a NULL data,
 * a duplicate name or an invalid hyper-parameter (torch's checks). */
it_status it_optim_init(it_err *err, it_optim *o, const it_optim_config *cfg,
                        const it_optim_param *params, size_t n_params);
void it_optim_free(it_optim *o);

/* One update of every trainable parameter with learning rate lr (pass
 * it_lr_schedule_lr(...) of the step, or cfg.lr). */
void it_optim_step(it_optim *o, double lr);

/* Sets the gradients of trainable parameters to zero. */
void it_optim_zero_grad(it_optim *o);

/* Scales all trainable gradients by min(1, max_norm / (norm + 1e-6)) where
 * norm is the global 2-norm over all of them, exactly as
 * torch.nn.utils.clip_grad_norm_ (which multiplies even when the factor is 1).
 * Returns the norm before clipping (may be inf/nan: then the gradients are
 * scaled by nan like torch; check the result). */
double it_optim_clip_grad_norm(it_optim *o, double max_norm);

/* Saves the state as .safetensors: tensors "<name>.exp_avg" and
 * "<name>.exp_avg_sq" (AdamW) or "<name>.momentum_buffer" (SGD with
 * momentum, once created), metadata "format" = "intenttuner-optim-1",
 * "optimizer" = "adamw"|"sgd", "step" = decimal count. */
it_status it_optim_save(it_err *err, const it_optim *o, const char *path);
/* Loads a state saved for the same parameter list: the optimizer kind must
 * match and every trainable parameter needs its tensors with its length.
 * Errors name the file and the key. On error the state is unchanged. */
it_status it_optim_load(it_err *err, it_optim *o, const char *path);

/* ---------------------------------------------------------- LR schedules */

typedef enum it_lr_kind {
    IT_LR_CONSTANT = 0,
    IT_LR_CONSTANT_WITH_WARMUP,
    IT_LR_LINEAR,
    IT_LR_COSINE,
    IT_LR_COSINE_WITH_RESTARTS,
    IT_LR_POLYNOMIAL,
} it_lr_kind;

/* diffusers.optimization semantics (get_*_schedule_with_warmup), LambdaLR:
 * the lr of 0-based step s is base_lr * lambda(s). */
typedef struct it_lr_schedule {
    it_lr_kind kind;
    int64_t warmup_steps;   /* linear ramp from 0 over these steps */
    int64_t total_steps;    /* num_training_steps */
    double num_cycles;      /* cosine: waves (default 0.5 = half a cosine);
                             * restarts: number of hard restarts (default 1) */
    double lr_end, power;   /* polynomial: final lr (1e-7) and power (1.0) */
} it_lr_schedule;

/* A schedule with the defaults of diffusers' get_scheduler for kind. */
it_lr_schedule it_lr_schedule_make(it_lr_kind kind, int64_t warmup_steps, int64_t total_steps);
/* The lr to use at 0-based step `step`. */
double it_lr_schedule_lr(const it_lr_schedule *s, double base_lr, int64_t step);
/* diffusers names: "constant", "constant_with_warmup", "linear", "cosine",
 * "cosine_with_restarts", "polynomial". IT_ERR_ARG names the bad one. */
it_status it_lr_kind_parse(it_err *err, const char *name, it_lr_kind *out);
const char *it_lr_kind_name(it_lr_kind kind);

/* ----------------------------------------------------- EMA of weights */

/* diffusers EMAModel: decay at optimisation step n (1-based) is 0 for
 * n <= update_after_step + 1, else with k = n - update_after_step - 1,
 * warm-up (use_warmup): 1 - (1 + k/inv_gamma)^-power, otherwise
 * (1 + k) / (10 + k); then clamped to [min_decay, decay]. With plain = 1
 * the decay is the constant `decay` from the first update on (a classic
 * EMA; the shadow starts as a copy of the weights). */
typedef struct it_ema_config {
    double decay;              /* 0.9999 */
    double min_decay;          /* 0.0 */
    int64_t update_after_step; /* 0 */
    int use_warmup;            /* 0 */
    double inv_gamma, power;   /* 1.0, 2/3 */
    int plain;                 /* 0 */
} it_ema_config;

it_ema_config it_ema_defaults(void);
double it_ema_decay(const it_ema_config *c, int64_t optimization_step);

typedef struct it_ema {
    it_ema_config cfg;
    it_optim_param *params; /* (n_params) copies, arrays borrowed */
    size_t n_params;
    float **shadow;         /* (n_params) averaged weights */
    int64_t optimization_step;
} it_ema;

/* Copies the current weights into the shadow. */
it_status it_ema_init(it_err *err, it_ema *e, const it_ema_config *cfg,
                      const it_optim_param *params, size_t n_params);
void it_ema_free(it_ema *e);
/* After an optimiser step: shadow -= (1 - decay) * (shadow - weight) for
 * trainable parameters, shadow = weight for frozen ones. */
void it_ema_update(it_ema *e);
/* Writes the shadow into the parameters' data (evaluate or export). */
void it_ema_copy_to(const it_ema *e);
/* Shadow weights under the parameter names (a loadable weights file),
 * metadata "format" = "intenttuner-ema-1", "optimization_step". */
it_status it_ema_save(it_err *err, const it_ema *e, const char *path);
it_status it_ema_load(it_err *err, it_ema *e, const char *path);

#endif
