/* schedule.h: the DDPM noise schedule of Stable Diffusion, as diffusers has it.
 *
 * Owns: the scheduler configuration (what a diffusers folder's
 * scheduler/scheduler_config.json says: betas, prediction type, timestep
 * spacing, offsets), the beta schedules (linear, scaled_linear,
 * squaredcos_cap_v2) and alphas_cumprod, the inference timestep spacings
 * (leading, trailing, linspace with steps_offset), and the training-time
 * forward process (add_noise, velocity targets for v-prediction) that the
 * LoRA trainer uses. Does not own the samplers that walk the schedule
 * (sampler.h) or any model.
 *
 * Numbers follow diffusers 0.42 bit-for-bit where it matters: betas are
 * float32 (the linspace of sqrt(beta) squared in float32 for scaled_linear),
 * alphas_cumprod is a float32 array accumulated in double (torch's CPU
 * cumprod accumulates float in double), and spacings reproduce numpy's
 * linspace/arange/round (round half to even). docs/SAMPLING.md lists the
 * formulas. */
#ifndef IT_SCHEDULE_H
#define IT_SCHEDULE_H

#include <stddef.h>

#include "base/status.h"

typedef enum it_beta_schedule {
    IT_BETAS_LINEAR = 0,
    IT_BETAS_SCALED_LINEAR,
    IT_BETAS_SQUAREDCOS_CAP_V2,
} it_beta_schedule;

typedef enum it_spacing {
    IT_SPACING_LEADING = 0,
    IT_SPACING_TRAILING,
    IT_SPACING_LINSPACE,
    IT_SPACING_AUTO,       /* absent from the config: the sampler's own default
                              (DDIM "leading", Euler and DPM++ "linspace") */
} it_spacing;

/* (Named it_pred_type, not it_prediction: models/config.h has an
 * it_prediction of the same values for the loaders; pipeline.c maps one to
 * the other.) */
typedef enum it_pred_type {
    IT_PREDICT_EPSILON = 0,   /* the model predicts the added noise */
    IT_PREDICT_V,             /* v = sqrt(ac) * noise - sqrt(1 - ac) * x0 */
    IT_PREDICT_SAMPLE,        /* the model predicts x0 */
} it_pred_type;

typedef struct it_schedule_config {
    int num_train_timesteps;       /* 1000 */
    double beta_start, beta_end;   /* SD: 0.00085, 0.012 */
    it_beta_schedule beta_schedule;
    it_pred_type prediction;
    it_spacing spacing;
    int steps_offset;              /* added to "leading" timesteps (SD: 1) */
    int set_alpha_to_one;          /* DDIM: alpha_cumprod "before" t=0 is 1 (else ac[0]) */
    int clip_sample;               /* DDIM: clamp predicted x0 to +-clip_sample_range */
    double clip_sample_range;
} it_schedule_config;

/* The configuration of Stable Diffusion 1.x checkpoints (their PNDM
 * scheduler_config.json, as DDIM/Euler/DPM from_config() sees it):
 * scaled_linear 0.00085..0.012, epsilon, spacing AUTO (the hub file has no
 * timestep_spacing), steps_offset 1, set_alpha_to_one 0, clip_sample 0. */
void it_schedule_config_sd(it_schedule_config *c);

/* Reads a diffusers scheduler_config.json text. Keys that are absent take
 * the defaults of the sampler that will use the config, not of the class
 * named by "_class_name": `OtherScheduler.from_config(pipe.scheduler.config)`
 * drops the keys the first class only defaulted (its _use_default_values).
 * So a missing timestep_spacing is IT_SPACING_AUTO, and the DDIM-only keys
 * take DDIM's defaults (set_alpha_to_one and clip_sample true).
 * Unknown keys are ignored; values we cannot honour (trained_betas,
 * rescale_betas_zero_snr, thresholding) are IT_ERR_UNSUPPORTED naming the
 * key. label names the source in messages. */
it_status it_schedule_config_parse(it_err *err, it_schedule_config *c, const char *json_text,
                                   const char *label);

/* Names as diffusers spells them ("scaled_linear", "leading", "epsilon",
 * "v_prediction", "sample"); parse returns -1 when unknown. */
const char *it_beta_schedule_name(it_beta_schedule b);
const char *it_spacing_name(it_spacing s);
const char *it_pred_type_name(it_pred_type p);
int it_beta_schedule_parse(const char *s);
int it_spacing_parse(const char *s);
int it_pred_type_parse(const char *s);

/* The per-train-timestep arrays. */
typedef struct it_schedule {
    it_schedule_config cfg;
    float *betas;           /* (num_train_timesteps) */
    float *alphas_cumprod;  /* (num_train_timesteps) */
} it_schedule;

/* Validates cfg (timesteps in 1..100000, betas in (0, 1)) and computes the
 * arrays. *s is zeroed on failure; it_schedule_free is always safe. */
it_status it_schedule_init(it_err *err, it_schedule *s, const it_schedule_config *cfg);
void it_schedule_free(it_schedule *s);

/* Training-time forward process, per batch item b with timestep t[b]
 * (0 <= t < num_train_timesteps; IT_ERR_RANGE otherwise). Each item holds
 * n_item floats. out may alias x0 (add_noise) or noise (velocity).
 *   add_noise: out = sqrt(ac[t]) * x0 + sqrt(1 - ac[t]) * noise
 *   velocity:  out = sqrt(ac[t]) * noise - sqrt(1 - ac[t]) * x0  (the
 *              v-prediction target; diffusers' get_velocity(x0, noise, t)). */
it_status it_schedule_add_noise(it_err *err, const it_schedule *s, float *out, const float *x0,
                                const float *noise, const int *t, int batch, size_t n_item);
it_status it_schedule_velocity(it_err *err, const it_schedule *s, float *out, const float *x0,
                               const float *noise, const int *t, int batch, size_t n_item);

/* The training target for the configured prediction type (noise, velocity
 * or x0), into out (batch * n_item). */
it_status it_schedule_target(it_err *err, const it_schedule *s, float *out, const float *x0,
                             const float *noise, const int *t, int batch, size_t n_item);

/* Signal-to-noise ratio ac / (1 - ac) at t (min-SNR weighting). */
double it_schedule_snr(const it_schedule *s, int t);

/* sigma(t) = sqrt((1 - ac[t]) / ac[t]) in float32 as diffusers' k-samplers
 * hold it. */
float it_schedule_sigma(const it_schedule *s, int t);

#endif
