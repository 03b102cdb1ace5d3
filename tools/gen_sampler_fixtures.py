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
    os.chmod(os.path.join(OUT, "samplers.safetensors"), 0o644)
    total = sum(a.size for a in arrays.values())
    print(f"{len(cases)} cases, {len(arrays)} arrays, {total * 4 / 1024:.0f} KiB", file=sys.stderr)



# ---------------------------------------------------------------- pipelines
#
# Whole diffusers pipelines on the tiny random models of tools/gen_sd_fixtures.py
# (tests/fixtures/sd/{sd1,sd2,inpaint}), f32, from stored noise. Writes
# tests/fixtures/diffusion/pipeline.json + pipeline.safetensors and the
# 16x16 input pictures. `python gen_sampler_fixtures.py pipeline` runs only
# this part.

import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img as i2i_mod
import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint as inp_mod
from PIL import Image

SD_FIX = os.path.join(ROOT, "tests", "fixtures", "sd")
SCHED_CLS = {"ddim": (DDIMScheduler, {}), "euler": (EulerDiscreteScheduler, {}),
             "euler_karras": (EulerDiscreteScheduler, {"use_karras_sigmas": True}),
             "euler_a": (EulerAncestralDiscreteScheduler, {}),
             "dpm++2m": (DPMSolverMultistepScheduler, {}),
             "dpm++2m_karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True})}
PROMPT, NEGATIVE = "a red fox in the snow", "blurry"


def mode_latents(encoder_output, generator=None, sample_mode="sample"):
    # The posterior mean instead of a sample: our --encode-mean.
    return encoder_output.latent_dist.mode()


class Randn:
    """randn_tensor of the img2img / inpaint modules: the stored noise."""

    def __init__(self):
        self.value = None

    def __call__(self, shape, generator=None, device=None, dtype=None, layout=None):
        assert tuple(shape) == tuple(self.value.shape), (shape, self.value.shape)
        return self.value.clone()


RANDN = Randn()
i2i_mod.retrieve_latents = mode_latents
inp_mod.retrieve_latents = mode_latents
i2i_mod.randn_tensor = RANDN
inp_mod.randn_tensor = RANDN

pipes = {}


def load_pipe(kind, name):
    key = (kind, name)
    if key not in pipes:
        cls = {"t2i": diffusers.StableDiffusionPipeline,
               "i2i": diffusers.StableDiffusionImg2ImgPipeline,
               "inpaint": diffusers.StableDiffusionInpaintPipeline}[kind]
        kw = {"variant": "fp16"} if name == "sd2" else {}  # sd2 ships the fp16 file names
        p = cls.from_pretrained(os.path.join(SD_FIX, name), torch_dtype=torch.float32,
                                safety_checker=None, requires_safety_checker=False, **kw)
        p.set_progress_bar_config(disable=True)
        # What users switch samplers from: the folder's own scheduler config
        # (not the previous case's sampler, whose from_config() would pass on
        # keys the folder never set).
        p.original_scheduler_config = p.scheduler.config
        pipes[key] = p
    return pipes[key]


def picture(seed, mode):
    rng = np.random.default_rng(seed)
    if mode == "RGB":
        y, x = np.mgrid[0:16, 0:16]
        a = np.stack([x * 16, y * 16, (x + y) * 8], -1) + rng.integers(0, 40, (16, 16, 3))
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")
    m = np.zeros((16, 16), np.uint8)
    m[4:12, 3:11] = 255
    m[0:2, :] = 200
    return Image.fromarray(m, "L")


pcases = []
parrays = {}


def pipeline_case(name, kind, model, sampler, steps=4, cfg=7.0, batch=1, strength=None, gen=None):
    p = load_pipe(kind, model)
    cls, extra = SCHED_CLS[sampler]
    p.scheduler = cls.from_config(p.original_scheduler_config, **extra)
    shape = (batch, 4, 8, 8)
    noise = torch.randn(shape, generator=gen)
    step_noise = torch.randn((steps,) + shape, generator=gen)
    FEED.queue = [step_noise[i] for i in range(steps)]
    traj = []

    def cb(pipe, i, t, kw):
        traj.append(kw["latents"].clone())
        return kw

    args = dict(prompt=PROMPT, negative_prompt=NEGATIVE, num_inference_steps=steps,
                guidance_scale=cfg, num_images_per_prompt=batch, output_type="np",
                callback_on_step_end=cb)
    entry = dict(name=name, kind=kind, model=model, sampler=sampler, steps=steps, cfg=cfg,
                 batch=batch)
    if kind == "t2i":
        args.update(height=16, width=16, latents=noise)
    else:
        RANDN.value = noise
        args.update(image=picture(1, "RGB"), strength=strength)
        entry["strength"] = strength
        entry["image"] = "pic_rgb.png"
        if kind == "inpaint":
            args.update(mask_image=picture(2, "L"), height=16, width=16)
            entry["mask"] = "pic_mask.png"
    out = p(**args).images  # (B, H, W, 3) float in [0, 1]
    parrays[f"{name}/noise"] = noise.numpy()
    if sampler == "euler_a":
        parrays[f"{name}/step_noise"] = step_noise.numpy()
    parrays[f"{name}/latents"] = torch.stack(traj).numpy()
    parrays[f"{name}/pixels"] = np.ascontiguousarray(out.transpose(0, 3, 1, 2)).astype(np.float32)
    entry["n_steps"] = len(traj)
    pcases.append(entry)


def pipelines():
    gen = torch.Generator().manual_seed(99)
    os.makedirs(OUT, exist_ok=True)
    picture(1, "RGB").save(os.path.join(OUT, "pic_rgb.png"))
    picture(2, "L").save(os.path.join(OUT, "pic_mask.png"))
    for sampler in SCHED_CLS:
        pipeline_case(f"t2i_sd1_{sampler}", "t2i", "sd1", sampler, gen=gen)
    pipeline_case("t2i_sd1_ddim_batch2", "t2i", "sd1", "ddim", batch=2, gen=gen)
    pipeline_case("t2i_sd1_euler_nocfg", "t2i", "sd1", "euler", cfg=1.0, gen=gen)
    for sampler in ["ddim", "euler_a", "dpm++2m_karras"]:
        pipeline_case(f"t2i_sd2_{sampler}", "t2i", "sd2", sampler, gen=gen)
    for sampler in ["ddim", "euler", "euler_a", "dpm++2m"]:
        pipeline_case(f"i2i_sd1_{sampler}", "i2i", "sd1", sampler, steps=5, strength=0.6, gen=gen)
    pipeline_case("i2i_sd2_dpm++2m_karras", "i2i", "sd2", "dpm++2m_karras", steps=5,
                  strength=0.8, gen=gen)
    for sampler, strength in [("dpm++2m", 1.0), ("euler_a", 0.75), ("ddim", 0.75)]:
        pipeline_case(f"inpaint4_sd1_{sampler}_{int(strength * 100)}", "inpaint", "sd1", sampler,
                      steps=4, strength=strength, gen=gen)
    for sampler, strength in [("ddim", 1.0), ("euler", 0.7), ("dpm++2m_karras", 1.0)]:
        pipeline_case(f"inpaint9_{sampler}_{int(strength * 100)}", "inpaint", "inpaint", sampler,
                      steps=4, strength=strength, gen=gen)
    meta = dict(generator="tools/gen_sampler_fixtures.py pipeline",
                diffusers=diffusers.__version__, prompt=PROMPT, negative=NEGATIVE, width=16,
                height=16, encode="posterior mean (retrieve_latents patched)", cases=pcases)
    with open(os.path.join(OUT, "pipeline.json"), "w") as f:
        json.dump(meta, f, indent=0, separators=(",", ":"))
    # .numpy() of a channels-last tensor (img2img's latents are) keeps its
    # strides, and save_file would write the raw memory order.
    for k in parrays:
        parrays[k] = np.ascontiguousarray(parrays[k], dtype=np.float32)
    save_file(parrays, os.path.join(OUT, "pipeline.safetensors"),
              metadata={"generator": "tools/gen_sampler_fixtures.py pipeline"})
    os.chmod(os.path.join(OUT, "pipeline.safetensors"), 0o644)
    total = sum(a.size for a in parrays.values())
    print(f"{len(pcases)} pipeline cases, {total * 4 / 1024:.0f} KiB", file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1:] == ["pipeline"]:
        pipelines()
    elif sys.argv[1:] == ["samplers"]:
        main()
    else:
        main()
        pipelines()
