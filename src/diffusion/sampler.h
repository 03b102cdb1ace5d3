/* sampler.h: the samplers that walk a noise schedule from noise to a sample.
 *
 * Owns: DDIM (with eta), Euler, Euler ancestral and DPM++ 2M (multistep
 * DPM-Solver++ of order 2, Karras sigmas optional), each reproducing the
 * diffusers 0.42 scheduler class of the same name (DDIMScheduler,
 * EulerDiscreteScheduler, EulerAncestralDiscreteScheduler,
 * DPMSolverMultistepScheduler with solver_order 2, midpoint, lower_order_final
 * and final_sigmas_type "zero"): inference timesteps and sigmas, model-input
 * scaling, the step update for epsilon / v / sample prediction, the
 * scheduler-specific add_noise used by img2img and inpainting, and strength
 * truncation. A generic loop drives a "denoiser" callback (model prediction
 * for a latent at timestep t), so everything is testable without a UNet.
 * Does not own the schedule arrays (schedule.h), guidance or models
 * (pipeline.h).
 *
 * Use, as a diffusers pipeline does:
 *   it_sampler_init(...)                     set_timesteps
 *   x = noise * s.init_noise_sigma          initial latents
 *   for i in begin .. n_steps-1:
 *       it_sampler_scale_input(s, in, x)     scale_model_input
 *       model(in, it_sampler_timestep(s, i)) -> out
 *       it_sampler_step(s, x, out, noise_i)  step (x updated in place)
 * Randomness (the ancestral sampler, DDIM with eta > 0) comes from the
 * caller as a noise array per step so that runs can be replayed exactly. */
#ifndef IT_SAMPLER_H
#define IT_SAMPLER_H

#include <stddef.h>

#include "base/status.h"
#include "diffusion/schedule.h"

typedef enum it_sampler_kind {
    IT_SAMPLER_DDIM = 0,
    IT_SAMPLER_EULER,
    IT_SAMPLER_EULER_A,
    IT_SAMPLER_DPMPP_2M,
} it_sampler_kind;

typedef struct it_sampler_opts {
    it_sampler_kind kind;
    int karras;     /* Karras sigmas (Euler, DPM++ 2M only) */
    float eta;      /* DDIM only: 0 deterministic .. 1 DDPM-like */
} it_sampler_opts;

/* Parses a CLI name: ddim, euler, euler_karras, euler_a, dpm++2m,
 * dpm++2m_karras (also dpmpp_2m, dpmpp_2m_karras). IT_ERR_ARG naming the
 * known names otherwise. eta is left 0. */
it_status it_sampler_parse(it_err *err, it_sampler_opts *o, const char *name);
/* Canonical CLI name of opts ("dpm++2m_karras"). */
const char *it_sampler_name(const it_sampler_opts *o);

typedef struct it_sampler {
    it_schedule sched;         /* owned copy of the train-time arrays */
    it_sampler_opts opts;
    int n_steps;               /* inference steps (length of timesteps) */
    double *timesteps;         /* (n_steps) what the model is given: integers
                                  for DDIM / DPM++, float32 values for Euler */
    float *sigmas;             /* (n_steps + 1) Euler / DPM++: noise levels,
                                  last 0; NULL for DDIM */
    float init_noise_sigma;    /* scale of the initial noise */
    int step_index;            /* next step to take */
    int begin_index;           /* first step (img2img starts later) */
    int ddim_stride;           /* DDIM: num_train_timesteps // requested steps */
    size_t n_elems;            /* floats of the latent batch the sampler steps */
    float *prev_x0;            /* (n_elems) DPM++: previous data prediction */
    int lower_order_nums;      /* DPM++: steps taken so far, capped at 2 */
} it_sampler;

/* Builds the schedule and the inference timesteps for n_steps steps on a
 * latent batch of n_elems floats. IT_ERR_ARG for n_steps outside
 * 1..num_train_timesteps, Karras with DDIM / Euler ancestral, eta with a
 * sampler other than DDIM. */
it_status it_sampler_init(it_err *err, it_sampler *s, const it_schedule_config *cfg,
                          const it_sampler_opts *opts, int n_steps, size_t n_elems);
void it_sampler_free(it_sampler *s);

/* The model timestep of step i (0 <= i < n_steps). */
double it_sampler_timestep(const it_sampler *s, int i);

/* img2img: with strength in (0, 1], keep the last int(n_steps * strength)
 * steps (diffusers' get_timesteps + set_begin_index). IT_ERR_ARG when that
 * leaves no step. Call before the first step. */
it_status it_sampler_set_strength(it_err *err, it_sampler *s, double strength);

/* Whether step() needs a noise array (Euler ancestral; DDIM with eta > 0). */
int it_sampler_needs_noise(const it_sampler *s);

/* scale_model_input for the current step: out = in / sqrt(sigma^2 + 1) for
 * Euler kinds, a copy otherwise. out may alias in. n = n_elems. */
void it_sampler_scale_input(const it_sampler *s, float *out, const float *in);

/* One step from the current step index: x (n_elems) is replaced by the
 * previous sample; model_out (n_elems) is the model's prediction for the
 * scaled x at it_sampler_timestep(s, step_index); noise (n_elems) is read
 * only when it_sampler_needs_noise (else may be NULL). IT_ERR_STATE when
 * all steps are done. */
it_status it_sampler_step(it_err *err, it_sampler *s, float *x, const float *model_out,
                          const float *noise);

/* The scheduler's add_noise at the current position (step_index: before the
 * first step this is the img2img start, after step i it is step i + 1, as
 * the inpainting pipeline uses it): out = a * x0 + b * noise with
 * DDIM:   a = sqrt(ac[t]), b = sqrt(1 - ac[t]), t = timesteps[step_index]
 * Euler:  a = 1, b = sigmas[step_index]
 * DPM++:  a = 1/sqrt(sigma^2 + 1), b = sigma * a;
 * after the last step out = x0 (the pipeline's final blend uses the clean
 * image latents).
 * n floats (any multiple of the per-item size); out may alias x0. */
void it_sampler_add_noise(const it_sampler *s, float *out, const float *x0, const float *noise,
                          size_t n);

/* ------------------------------------------------------------ the loop */

/* Model prediction for the (already scaled) latents x_in (n_elems) at
 * timestep t, step i of the run, into out (n_elems). */
typedef it_status (*it_denoise_fn)(void *user, it_err *err, float *out, const float *x_in,
                                   double t, int i);
/* Fills out (n floats) with standard normal noise for step i. */
typedef it_status (*it_noise_fn)(void *user, it_err *err, float *out, size_t n, int i);
/* Called after step i with the new latents (inpainting blends here; a
 * progress bar advances). May modify x. */
typedef it_status (*it_after_step_fn)(void *user, it_err *err, it_sampler *s, float *x, int i);

typedef struct it_sampler_loop {
    it_denoise_fn denoise;
    void *denoise_user;
    it_noise_fn noise;          /* required when it_sampler_needs_noise */
    void *noise_user;
    it_after_step_fn after_step; /* optional */
    void *after_user;
} it_sampler_loop;

/* Runs the remaining steps on x (n_elems, already scaled by
 * init_noise_sigma or noised to the img2img start). */
it_status it_sampler_run(it_err *err, it_sampler *s, float *x, const it_sampler_loop *loop);

#endif
