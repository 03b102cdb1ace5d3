#!/usr/bin/env python3
"""PyTorch side of bench/lora_step.c: one LoRA training step of a diffusers
UNet2DConditionModel with PEFT LoRA on kohya's default targets (every
Linear / 1x1 Conv2d in the Transformer2DModel blocks), AdamW, clip 1.0.

usage: bench_lora_step.py toy|sd15 THREADS REPS [ckpt]
  ckpt: diffusers' gradient checkpointing (unet.enable_gradient_checkpointing():
        every resnet and transformer block recomputed in backward)
  toy:  tests/fixtures/sd/sd1/unet, batch 8, 16x16 latents, rank 4
  sd15: SD 1.5 config (tests/fixtures/sd/sd15_manifest), random init,
        batch 1, 64x64, rank 16
"""
import json
import resource
import statistics
import sys
import time

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from peft import LoraConfig

TARGET = r".*attentions.*\.(proj_in|proj_out|to_q|to_k|to_v|to_out\.0|ff\.net\.0\.proj|ff\.net\.2)$"


def main():
    shape, threads, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ckpt = sys.argv[4:] == ["ckpt"]
    torch.set_num_threads(threads)
    if shape == "toy":
        unet = UNet2DConditionModel.from_pretrained("tests/fixtures/sd/sd1/unet", torch_dtype=torch.float32)
        b, hw, rank = 8, 16, 4
    else:
        cfg = json.load(open("tests/fixtures/sd/sd15_manifest/unet/config.json"))
        unet = UNet2DConditionModel.from_config(cfg)
        b, hw, rank = 1, 64, 16
    unet.requires_grad_(False)
    if ckpt:
        unet.enable_gradient_checkpointing()
        unet.train()
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=TARGET))
    params = [p for p in unet.parameters() if p.requires_grad]
    n_mod = sum(1 for _, m in unet.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A)
    opt = torch.optim.AdamW(params, lr=1e-4)
    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    g = torch.Generator().manual_seed(0)
    lat = torch.randn(b, 4, hw, hw, generator=g)
    text = torch.randn(b, 77, unet.config.cross_attention_dim, generator=g)
    times, cpu, loss0 = [], [], None
    warm = 1 if reps > 0 else 0  # REPS 0: one timed step, no warm-up
    for i in range(max(reps, 1) + warm):
        noise = torch.randn(lat.shape, generator=g)
        t = torch.randint(0, 1000, (b,), generator=g)
        t0, c0 = time.perf_counter(), time.process_time()
        pred = unet(sched.add_noise(lat, noise, t), t, text).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        if i >= warm:
            times.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
        if i == 0:
            loss0 = loss.item()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    name = shape + ("-ckpt" if ckpt else "")
    print("%-10s torch: %d LoRA modules, first loss %.6f, median step %.1f ms (CPU %.1f ms), max RSS %.0f MB (threads %d)"
          % (name, n_mod, loss0, statistics.median(times), statistics.median(cpu), rss, threads))


if __name__ == "__main__":
    main()
