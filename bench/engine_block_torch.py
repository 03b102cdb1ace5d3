#!/usr/bin/env python3
"""engine_block_torch.py: the PyTorch CPU side of bench/engine_block.c.

usage: engine_block_torch.py toy|sd15 THREADS REPEAT
Prints "mode median_ms peak_mb" for forward (no grad), LoRA forward+backward
(with and without per-block checkpointing) and full forward+backward. The
block is diffusers' ResnetBlock2D + Transformer2DModel (SD 1.5 layout:
conv proj_in/proj_out, GEGLU feed-forward, F.scaled_dot_product_attention),
written out here so that only torch is needed. peak_mb is the growth of the
process's peak resident set during the timed runs, measured in a forked
child per mode (the allocator's caching included).
"""
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

CFG = {"toy": (8, 128, 16, 16, 77, 256, 4), "sd15": (1, 320, 64, 64, 77, 768, 8)}
RANK = 4


class LoRALinear(nn.Module):
    def __init__(self, i, o, bias):
        super().__init__()
        self.base = nn.Linear(i, o, bias=bias)
        self.down = nn.Linear(i, RANK, bias=False)
        self.up = nn.Linear(RANK, o, bias=False)
        nn.init.normal_(self.up.weight, std=0.01)

    def forward(self, x):
        return self.base(x) + self.up(self.down(x))


class Attn(nn.Module):
    def __init__(self, c, heads, dctx=None):
        super().__init__()
        self.heads = heads
        self.q = LoRALinear(c, c, False)
        self.k = LoRALinear(dctx or c, c, False)
        self.v = LoRALinear(dctx or c, c, False)
        self.o = LoRALinear(c, c, True)

    def forward(self, x, ctx=None):
        kv = x if ctx is None else ctx
        B, T, C = x.shape
        H = self.heads
        q = self.q(x).view(B, T, H, C // H).transpose(1, 2)
        k = self.k(kv).view(B, kv.shape[1], H, C // H).transpose(1, 2)
        v = self.v(kv).view(B, kv.shape[1], H, C // H).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        return self.o(a)


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gn1, self.gn2 = nn.GroupNorm(32, c, eps=1e-5), nn.GroupNorm(32, c, eps=1e-5)
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)
        self.temb = nn.Linear(4 * c, c)

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.gn1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.gn2(h)))
        return x + h


class Transformer(nn.Module):
    def __init__(self, c, heads, dctx):
        super().__init__()
        self.gn = nn.GroupNorm(32, c, eps=1e-6)
        self.proj_in, self.proj_out = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1)
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(c), nn.LayerNorm(c), nn.LayerNorm(c)
        self.attn1, self.attn2 = Attn(c, heads), Attn(c, heads, dctx)
        self.ff1, self.ff2 = nn.Linear(c, 8 * c), nn.Linear(4 * c, c)

    def part_in(self, x):
        return self.proj_in(self.gn(x)).flatten(2).transpose(1, 2)

    def part_attn1(self, h):
        return h + self.attn1(self.ln1(h))

    def part_attn2(self, h, ctx):
        return h + self.attn2(self.ln2(h), ctx)

    def part_ff(self, h):
        a, g = self.ff1(self.ln3(h)).chunk(2, -1)
        return h + self.ff2(a * F.gelu(g))

    def part_out(self, h, x):
        B, C, H, W = x.shape
        return self.proj_out(h.transpose(1, 2).reshape(B, C, H, W)) + x

    def forward(self, x, ctx, ckpt=False):
        run = (lambda f, *a: checkpoint(f, *a, use_reentrant=False)) if ckpt else (lambda f, *a: f(*a))
        h = run(self.part_in, x)
        h = run(self.part_attn1, h)
        h = run(self.part_attn2, h, ctx)
        h = run(self.part_ff, h)
        return run(self.part_out, h, x)


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_mode(mode, blocks, x, temb, ctx, gy, repeat):
    res, tr = blocks
    for n, p in list(res.named_parameters()) + list(tr.named_parameters()):
        if mode == "forward":
            p.requires_grad_(False)
        elif mode == "full_fwd_bwd":
            p.requires_grad_(True)
        else:
            p.requires_grad_(".down." in n + "." or ".up." in n + "." or n.endswith("down.weight") or n.endswith("up.weight"))

    def step():
        for p in list(res.parameters()) + list(tr.parameters()):
            p.grad = None
        if mode == "forward":
            with torch.no_grad():
                tr(res(x, temb), ctx)
            return
        if mode == "lora_fwd_bwd_ckpt":
            h = checkpoint(res, x, temb, use_reentrant=False)
            h = tr(h, ctx, ckpt=True)
        else:
            h = tr(res(x, temb), ctx)
        h.backward(gy)

    step()
    base = rss_mb()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        step()
        ts.append((time.perf_counter() - t0) * 1e3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return statistics.median(ts), max(0.0, peak - base)


def main():
    name, threads, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    B, C, H, W, T, D, heads = CFG[name]
    blocks = (ResBlock(C), Transformer(C, heads, D))
    x, temb = torch.randn(B, C, H, W), torch.randn(B, 4 * C)
    ctx, gy = torch.randn(B, T, D), torch.randn(B, C, H, W)
    for mode in ("forward", "lora_fwd_bwd", "lora_fwd_bwd_ckpt", "full_fwd_bwd"):
        pid = os.fork()
        if pid == 0:
            ms, mb = run_mode(mode, blocks, x, temb, ctx, gy, repeat)
            print(f"{mode} {ms:.3f} {mb:.1f}", flush=True)
            os._exit(0)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
