#!/usr/bin/env python3
"""bench_sd.py: the PyTorch CPU side of bench/sd_unet.c.

usage: bench_sd.py UNET.safetensors VAE.safetensors CHECK.safetensors THREADS REPS

Loads the random f16 weights bench/sd_unet.c wrote (diffusers names) into
diffusers' UNet2DConditionModel / AutoencoderKL with SD 1.5's configs, in
f32, then: the correctness check (CHECK holds the small inputs the C side
used and its outputs for them; the normalised error max|ours - torch| /
max|torch| is printed), and the timings (warm-up + REPS, medians of wall and
CPU time; timing inputs are random, only their shapes matter), printed in
the C side's table format.
"""
import resource
import statistics
import sys
import time

import torch
from safetensors.torch import load_file

from diffusers import AutoencoderKL, UNet2DConditionModel

SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=[320, 640, 1280, 1280],
                 down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
                 cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
SD15_VAE = dict(sample_size=512, in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                block_out_channels=[128, 256, 512, 512], norm_num_groups=32,
                down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)


def main():
    unet_w, vae_w, check, threads, reps = sys.argv[1:6]
    threads, reps = int(threads), int(reps)
    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15_UNET)
        vae = AutoencoderKL(**SD15_VAE)
    unet.load_state_dict({k: v.float() for k, v in load_file(unet_w).items()}, assign=True)
    vae.load_state_dict({k: v.float() for k, v in load_file(vae_w).items()}, assign=True)
    unet.eval()
    vae.eval()
    ref = load_file(check)

    def timed(fn):
        if reps > 0:
            fn()  # warm-up
        wall, cpu = [], []
        for _ in range(max(reps, 1)):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
        return statistics.median(wall), statistics.median(cpu)

    gen = torch.Generator().manual_seed(0)
    xb = torch.randn(2, 4, 64, 64, generator=gen)
    cb = torch.randn(2, 77, 768, generator=gen)
    tb = torch.tensor([981.0, 481.0])
    zb = torch.randn(1, 4, 64, 64, generator=gen)
    errs = []
    for name, fn in (("unet", lambda: unet(ref["unet.x"], ref["unet.t"], ref["unet.c"]).sample),
                     ("vae", lambda: vae.decode(ref["vae.z"]).sample)):
        out = fn()
        want = ref[name + ".out"]
        errs.append((name, float((out - want).abs().max() / out.abs().max())))
    for name, e in errs:
        print(f"check {name}: normalised error ours vs diffusers {e:.2e}")
    tu = timed(lambda: unet(xb, tb, cb))
    tv = timed(lambda: vae.decode(zb))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'diffusers unet':22s} {tu[0]:10.0f} {tu[1]:10.0f}")
    print(f"{'diffusers vae decode':22s} {tv[0]:10.0f} {tv[1]:10.0f}")
    print(f"diffusers (torch {torch.__version__}, {threads} threads): max RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
