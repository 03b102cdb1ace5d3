#!/usr/bin/env python3
"""Generates the LoRA training fixtures under tests/fixtures/lora/.

Usage:
  tools/.venv/bin/python tools/gen_lora_fixtures.py      (needs diffusers 0.42, peft)

Reference run on the tiny random SD 1.x pipeline of tests/fixtures/sd/sd1:
  lora_init.safetensors   initial LoRA, kohya format (lora_unet_*), rank 4,
                          alpha 2, on kohya's default UNet targets (every
                          Linear / 1x1 Conv2d of the Transformer2DModel
                          blocks): down kaiming-uniform, up N(0, 0.02) (not
                          zero, so that the first steps move both)
  train_io.safetensors    images (4, 3, 16, 16) in [-1, 1], ids (4, 77),
                          noise (20, 2, 4, 8, 8), timesteps (20, 2) int,
                          latents (4, 4, 8, 8) = vae mean * scaling factor,
                          losses (20): diffusers' loss at each step;
                          unet_out: UNet output with the final LoRA loaded
                          through pipe.load_lora_weights (kohya file), on
                          probe_sample / probe_t / probe_ctx
  lora_final.safetensors  the LoRA after 20 steps (kohya format)

Training step (what tests/test_train_parity.c repeats in C): batch = images
[2s % 4, (2s + 1) % 4], latents = vae.encode(img).latent_dist.mode() * 0.18215,
text = text_encoder(ids)[0], noisy = DDPMScheduler.add_noise(latents, noise[s],
t[s]), loss = mse(unet(noisy, t, text), noise[s]), AdamW(lr 1e-3, betas
(0.9, 0.999), eps 1e-8, weight decay 1e-2), clip_grad_norm_(1.0): the update
of diffusers' examples/text_to_image/train_text_to_image_lora.py with PEFT
LoRA layers (peft's forward: base + lora_B(lora_A(x)) * alpha / r).
"""
import os
import sys

import torch
from safetensors.torch import load_file, save_file

import diffusers
from diffusers import DDPMScheduler, StableDiffusionPipeline
from peft import LoraConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SD1 = os.path.join(ROOT, "tests/fixtures/sd/sd1")
OUT = os.path.join(ROOT, "tests/fixtures/lora")
RANK, ALPHA, STEPS, BATCH, N_IMG = 4, 2.0, 20, 2, 4
TARGET = r".*attentions.*\.(proj_in|proj_out|to_q|to_k|to_v|to_out\.0|ff\.net\.0\.proj|ff\.net\.2)$"


def kohya(name):
    return "lora_unet_" + name.replace(".", "_")


def lora_layers(unet):
    """(module name, peft LoraLayer) in named_modules order."""
    return [(n, m) for n, m in unet.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A]


def to_kohya(unet):
    sd = {}
    for n, m in lora_layers(unet):
        sd[kohya(n) + ".lora_down.weight"] = m.lora_A["default"].weight.detach().clone().contiguous()
        sd[kohya(n) + ".lora_up.weight"] = m.lora_B["default"].weight.detach().clone().contiguous()
        sd[kohya(n) + ".alpha"] = torch.tensor(ALPHA)
    return sd


def main():
    torch.manual_seed(7)
    pipe = StableDiffusionPipeline.from_pretrained(SD1, safety_checker=None, requires_safety_checker=False, torch_dtype=torch.float32)
    unet, vae, te = pipe.unet, pipe.vae, pipe.text_encoder
    for p in list(unet.parameters()) + list(vae.parameters()) + list(te.parameters()):
        p.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=RANK, lora_alpha=ALPHA, init_lora_weights=True, target_modules=TARGET))
    g = torch.Generator().manual_seed(11)
    layers = lora_layers(unet)
    for n, m in layers:
        a, b = m.lora_A["default"].weight, m.lora_B["default"].weight
        fan_in = a[0].numel()
        a.data = (torch.rand(a.shape, generator=g) * 2 - 1) / fan_in ** 0.5
        b.data = torch.randn(b.shape, generator=g) * 0.02
    print("lora modules:", len(layers), file=sys.stderr)
    init = to_kohya(unet)
    save_file(init, os.path.join(OUT, "lora_init.safetensors"), metadata={"ss_network_dim": str(RANK), "ss_network_alpha": str(ALPHA)})

    images = torch.rand(N_IMG, 3, 16, 16, generator=g) * 2 - 1
    ids = torch.randint(1, 600, (N_IMG, 77), generator=g)
    ids[:, 0] = 662
    ids[:, 10:] = 663
    noise = torch.randn(STEPS, BATCH, 4, 8, 8, generator=g)
    timesteps = torch.randint(0, 1000, (STEPS, BATCH), generator=g)
    sched = DDPMScheduler.from_pretrained(SD1, subfolder="scheduler")
    with torch.no_grad():
        latents = vae.encode(images).latent_dist.mode() * vae.config.scaling_factor
        text = te(ids)[0]
    params = [p for _, m in layers for p in (m.lora_A["default"].weight, m.lora_B["default"].weight)]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)
    losses = []
    for s in range(STEPS):
        idx = [(BATCH * s + i) % N_IMG for i in range(BATCH)]
        noisy = sched.add_noise(latents[idx], noise[s], timesteps[s])
        pred = unet(noisy, timesteps[s], text[idx]).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise[s].float(), reduction="mean")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    print("losses:", losses[0], "->", losses[-1], file=sys.stderr)
    final = to_kohya(unet)
    fpath = os.path.join(OUT, "lora_final.safetensors")
    save_file(final, fpath, metadata={"ss_network_dim": str(RANK), "ss_network_alpha": str(ALPHA)})

    # The final LoRA through diffusers' own kohya loader on a fresh pipeline.
    pipe2 = StableDiffusionPipeline.from_pretrained(SD1, safety_checker=None, requires_safety_checker=False, torch_dtype=torch.float32)
    pipe2.load_lora_weights(fpath)
    probe_sample = torch.randn(1, 4, 8, 8, generator=g)
    probe_t = torch.tensor([417.0])
    probe_ctx = torch.randn(1, 77, 32, generator=g)
    with torch.no_grad():
        out = pipe2.unet(probe_sample, probe_t, probe_ctx).sample
        base = StableDiffusionPipeline.from_pretrained(SD1, torch_dtype=torch.float32).unet(probe_sample, probe_t, probe_ctx).sample
    print("lora effect on probe:", (out - base).abs().max().item(), file=sys.stderr)
    io = {
        "images": images.contiguous(), "ids": ids.to(torch.int32), "noise": noise.contiguous(),
        "timesteps": timesteps.to(torch.int32), "latents": latents.contiguous(),
        "losses": torch.tensor(losses, dtype=torch.float32), "probe_sample": probe_sample,
        "probe_t": probe_t, "probe_ctx": probe_ctx, "unet_out": out.contiguous(),
    }
    save_file(io, os.path.join(OUT, "train_io.safetensors"), metadata={"diffusers": diffusers.__version__})


def check_ours():
    """ours_trained.safetensors (written by `intenttuner train`, LoCon rank 2,
    see tools/README.md) through diffusers' load_lora_weights: UNet output on
    a probe -> ours_io.safetensors. tests/test_train_parity.c loads the same
    file with our loader and must give the same output."""
    path = os.path.join(OUT, "ours_trained.safetensors")
    if not os.path.exists(path):
        print("no ours_trained.safetensors: skipped", file=sys.stderr)
        return
    pipe = StableDiffusionPipeline.from_pretrained(SD1, safety_checker=None, requires_safety_checker=False, torch_dtype=torch.float32)
    pipe.load_lora_weights(path)
    n_lora = sum(1 for _, m in pipe.unet.named_modules() if hasattr(m, "lora_A") and "default_0" in m.lora_A)
    g = torch.Generator().manual_seed(23)
    sample = torch.randn(1, 4, 8, 8, generator=g)
    t = torch.tensor([613.0])
    ctx = torch.randn(1, 77, 32, generator=g)
    with torch.no_grad():
        out = pipe.unet(sample, t, ctx).sample
        pipe.unload_lora_weights()
        base = pipe.unet(sample, t, ctx).sample
    print("ours: %d modules in diffusers, lora effect %.4f" % (n_lora, (out - base).abs().max().item()), file=sys.stderr)
    save_file({"probe_sample": sample, "probe_t": t, "probe_ctx": ctx, "unet_out": out.contiguous(),
               "n_modules": torch.tensor([float(n_lora)])}, os.path.join(OUT, "ours_io.safetensors"))


if __name__ == "__main__":
    if sys.argv[1:] == ["--ours"]:
        check_ours()
    else:
        main()
        check_ours()
