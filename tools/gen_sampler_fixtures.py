#!/usr/bin/env python3
"""Reference fixtures for src/diffusion (schedules and samplers) from diffusers.

Writes tests/fixtures/diffusion/samplers.json (the cases: configs, step
counts, which arrays belong to each) and samplers.safetensors (float32
arrays named "<case>/<array>"). Everything comes from diffusers' scheduler
classes themselves (DDIMScheduler, EulerDiscreteScheduler,
EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler), driven the
way StableDiffusionPipeline / Img2Img / Inpaint drive them, with an analytic
"model" both sides compute:

    model(x, t) = 0.1 * x + 0.05 * sin(t / 100)      (float32)

Randomness: the initial latents, the img2img noise and every per-step noise
(Euler ancestral, DDIM eta > 0) are drawn here from a fixed torch generator
and stored, and the C test feeds the same arrays, so runs match exactly.

Usage: tools/.venv/bin/python tools/gen_sampler_fixtures.py
"""
import json
import math
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

import diffusers
import diffusers.schedulers.scheduling_euler_ancestral_discrete as euler_a_mod
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "diffusion")

SD = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
          beta_schedule="scaled_linear", steps_offset=1, set_alpha_to_one=False,
          clip_sample=False)

SAMPLERS = {
    "ddim": (DDIMScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_karras": (EulerDiscreteScheduler, {"use_karras_sigmas": True}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "dpm++2m": (DPMSolverMultistepScheduler, {}),
    "dpm++2m_karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
}

SHAPE = (2, 2, 2, 3)
arrays = {}
cases = []


def put(case, name, a):
    arrays[f"{case}/{name}"] = np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def make_scheduler(sampler, cfg):
    cls, extra = SAMPLERS[sampler]
    kw = dict(cfg)
    kw.update(extra)
    # Keys a class does not take are dropped the way from_config() drops them.
    import inspect
    params = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in kw.items() if k in params})


def model(x, t):
    return 0.1 * x + 0.05 * math.sin(float(t) / 100.0)


class NoiseFeed:
    """Replaces randn_tensor inside the Euler ancestral module so that each
    step's noise is the next recorded array."""

    def __init__(self):
        self.queue = []

    def __call__(self, shape, generator=None, device=None, dtype=None, layout=None):
        return self.queue.pop(0).clone()


FEED = NoiseFeed()
euler_a_mod.randn_tensor = FEED


KEYS = ["num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type",
        "timestep_spacing", "steps_offset", "set_alpha_to_one", "clip_sample",
        "clip_sample_range"]


def cfg_json(sampler, cfg, eta):
    """The configuration the scheduler really ran with (class defaults
    included), as a scheduler_config.json would hold it."""
    sch = make_scheduler(sampler, cfg)
    c = {k: sch.config[k] for k in KEYS if k in sch.config}
    c["_class_name"] = type(sch).__name__
    c["sampler"] = sampler
    c["eta"] = eta
    return c


def run_case(name, sampler, cfg, steps, eta=0.0, gen=None):
    sch = make_scheduler(sampler, cfg)
    sch.set_timesteps(steps)
    n = len(sch.timesteps)
    x = torch.randn(SHAPE, generator=gen, dtype=torch.float32)
    noises = torch.randn((n,) + SHAPE, generator=gen, dtype=torch.float32)
    put(name, "noise0", x)
    put(name, "step_noise", noises)
    latents = x * sch.init_noise_sigma
    traj = [latents.clone()]
    FEED.queue = [noises[i] for i in range(n)]
    for i, t in enumerate(sch.timesteps):
        inp = sch.scale_model_input(latents, t)
        out = model(inp, t)
        kw = {}
        if sampler == "ddim" and eta > 0:
            kw = dict(eta=eta, variance_noise=noises[i])
        latents = sch.step(out, t, latents, return_dict=False, **kw)[0]
        traj.append(latents.clone())
    put(name, "timesteps", sch.timesteps.double().numpy())
    if hasattr(sch, "sigmas") and sampler != "ddim":
        put(name, "sigmas", sch.sigmas.numpy())
    put(name, "latents", torch.stack(traj))
    cases.append(dict(name=name, kind="run", config=cfg_json(sampler, cfg, eta), steps=steps,
                      n_steps=n, init_noise_sigma=float(sch.init_noise_sigma)))


def get_timesteps(sch, steps, strength):
    # StableDiffusionImg2ImgPipeline.get_timesteps (order is 1 for all of ours)
    init_timestep = min(int(steps * strength), steps)
    t_start = max(steps - init_timestep, 0)
    timesteps = sch.timesteps[t_start * sch.order:]
    if hasattr(sch, "set_begin_index"):
        sch.set_begin_index(t_start * sch.order)
    return timesteps, t_start


def img2img_case(name, sampler, cfg, steps, strength, blend, gen):
    """img2img start (add_noise at the first kept timestep) and, with blend,
    the 4-channel inpainting loop's per-step blend of the noised image back
    outside the mask, exactly as StableDiffusionInpaintPipeline does."""
    sch = make_scheduler(sampler, cfg)
    sch.set_timesteps(steps)
    timesteps, t_start = get_timesteps(sch, steps, strength)
    image = torch.randn(SHAPE, generator=gen) * 0.8
    noise = torch.randn(SHAPE, generator=gen)
    mask = (torch.rand((SHAPE[0], 1) + SHAPE[2:], generator=gen) > 0.5).float()
    step_noise = torch.randn((len(timesteps),) + SHAPE, generator=gen)
    FEED.queue = [step_noise[i] for i in range(len(timesteps))]
    latents = sch.add_noise(image, noise, timesteps[:1].repeat(SHAPE[0]))
    traj = [latents.clone()]
    for i, t in enumerate(timesteps):
        inp = sch.scale_model_input(latents, t)
        out = model(inp, t)
        latents = sch.step(out, t, latents, return_dict=False)[0]
        if blend:
            proper = image
            if i < len(timesteps) - 1:
                proper = sch.add_noise(image, noise, torch.tensor([timesteps[i + 1]]))
            latents = (1 - mask) * proper + mask * latents
        traj.append(latents.clone())
    for k, v in dict(image=image, noise=noise, mask=mask, step_noise=step_noise,
                     latents=torch.stack(traj)).items():
        put(name, k, v)
    cases.append(dict(name=name, kind="img2img", config=cfg_json(sampler, cfg, 0.0),
                      steps=steps, strength=strength, blend=blend, begin_index=t_start,
                      n_steps=len(sch.timesteps)))


def schedule_case(name, sampler, cfg, steps):
    sch = make_scheduler(sampler, cfg)
    sch.set_timesteps(steps)
    put(name, "timesteps", sch.timesteps.double().numpy())
    if sampler != "ddim":
        put(name, "sigmas", sch.sigmas.numpy())
    cases.append(dict(name=name, kind="schedule", config=cfg_json(sampler, cfg, 0.0),
                      steps=steps, n_steps=len(sch.timesteps),
                      init_noise_sigma=float(sch.init_noise_sigma)))


def betas_cases():
    for name, kw in [("betas_linear", dict(beta_schedule="linear")),
                     ("betas_scaled_linear", dict(beta_schedule="scaled_linear",
                                                  beta_start=0.00085, beta_end=0.012)),
                     ("betas_cos", dict(beta_schedule="squaredcos_cap_v2"))]:
        s = DDPMScheduler(num_train_timesteps=1000, **kw)
        put(name, "betas", s.betas.numpy())
        put(name, "alphas_cumprod", s.alphas_cumprod.numpy())
        cfg = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02)
        cfg.update(kw)
        cases.append(dict(name=name, kind="betas", config=cfg))


def training_case(gen):
    s = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                      beta_schedule="scaled_linear")
    x0 = torch.randn((3, 4, 2, 2), generator=gen)
    noise = torch.randn((3, 4, 2, 2), generator=gen)
    t = torch.tensor([0, 500, 999])
    put("train", "x0", x0)
    put("train", "noise", noise)
    put("train", "add_noise", s.add_noise(x0, noise, t))
    put("train", "velocity", s.get_velocity(x0, noise, t))
    cases.append(dict(name="train", kind="train", t=[0, 500, 999],
                      config=dict(SD, beta_schedule="scaled_linear")))


def main():
    gen = torch.Generator().manual_seed(1234)
    betas_cases()
    training_case(gen)
    idx = 0
    for sampler in SAMPLERS:
        for spacing in ["leading", "trailing", "linspace"]:
            for pred in ["epsilon", "v_prediction"]:
                cfg = dict(SD, timestep_spacing=spacing, prediction_type=pred)
                run_case(f"run_{sampler}_{spacing}_{pred}", sampler, cfg, 4 + idx % 7, gen=gen)
                idx += 1
            for steps in [1, 2, 3, 25, 100]:
                cfg = dict(SD, timestep_spacing=spacing)
                schedule_case(f"sched_{sampler}_{spacing}_{steps}", sampler, cfg, steps)
    # DDIM variants: eta (fed noise), clipping with set_alpha_to_one.
    run_case("run_ddim_eta05", "ddim", dict(SD, timestep_spacing="leading"), 6, eta=0.5, gen=gen)
    run_case("run_ddim_eta1_v", "ddim", dict(SD, timestep_spacing="trailing",
                                            prediction_type="v_prediction"), 5, eta=1.0, gen=gen)
    run_case("run_ddim_clip", "ddim", dict(SD, clip_sample=True, clip_sample_range=0.5,
                                          set_alpha_to_one=True, steps_offset=0), 7, gen=gen)
    # "sample" prediction, other beta schedules, no offset.
    for sampler in ["ddim", "euler", "dpm++2m"]:
        run_case(f"run_{sampler}_sample", sampler, dict(SD, prediction_type="sample",
                                                        timestep_spacing="trailing"), 6, gen=gen)
    run_case("run_euler_linear", "euler", dict(SD, beta_schedule="linear", beta_start=0.0001,
                                               beta_end=0.02), 8, gen=gen)
    # (Karras with the cosine schedule repeats timesteps, 998 998 998 ..., and
    # diffusers' step-index lookup then skips a sigma: not a useful reference.)
    run_case("run_dpm_cos", "dpm++2m", dict(SD, beta_schedule="squaredcos_cap_v2"), 9, gen=gen)
    run_case("run_ddim_cos", "ddim", dict(SD, beta_schedule="squaredcos_cap_v2",
                                         timestep_spacing="linspace"), 5, gen=gen)
    run_case("run_dpm_leading_offset0", "dpm++2m", dict(SD, steps_offset=0), 10, gen=gen)
    run_case("run_dpm_25", "dpm++2m_karras", dict(SD), 25, gen=gen)
    # img2img start and inpainting blend.
    for sampler in SAMPLERS:
        for strength, blend in [(0.5, False), (0.75, True), (1.0, True)]:
            img2img_case(f"i2i_{sampler}_{int(strength * 100)}{'_blend' if blend else ''}",
                         sampler, dict(SD), 8, strength, blend, gen)
    os.makedirs(OUT, exist_ok=True)
    meta = dict(generator="tools/gen_sampler_fixtures.py", diffusers=diffusers.__version__,
                torch=torch.__version__, model="0.1 * x + 0.05 * sin(t / 100)",
                shape=list(SHAPE), cases=cases)
    with open(os.path.join(OUT, "samplers.json"), "w") as f:
        json.dump(meta, f, indent=0, separators=(",", ":"))
    save_file(arrays, os.path.join(OUT, "samplers.safetensors"),
              metadata={"generator": "tools/gen_sampler_fixtures.py"})
    total = sum(a.size for a in arrays.values())
    print(f"{len(cases)} cases, {len(arrays)} arrays, {total * 4 / 1024:.0f} KiB", file=sys.stderr)


if __name__ == "__main__":
    main()
