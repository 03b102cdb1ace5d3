#!/usr/bin/env python3
"""Recipe exploration for the toy VAE (issue #10): diffusers' AutoencoderKL
architecture rewritten in plain PyTorch (same parameter names, so
`--check-diffusers` compares it with diffusers where that is installed),
trained with the loss of src/toy/pretrain_vae.c (L1 + MSE + 0.5 edge +
1e-4 KL, 64x64 crops on the 8-pixel grid, AdamW, warm-up + cosine,
clipping 1.0) on renders dumped from our C renderer, to measure how many
steps and what width reach PSNR >= 30 dB.

Never ships weights: the product's weights come from our engine.

Data: DIR/tr.img and DIR/ev.img (raw or .xz), uint8 (N,128,128,3).
Usage: toy_recipe_vae.py --data DIR [--channels 16,32,64,64] [--steps 5000]
       [--batch 8] [--lr 8e-4] [--crop 64] [--kl 1e-4] [--edge 0.5]
"""
import argparse
import json
import lzma
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load(path):
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    with lzma.open(path + ".xz") as f:
        return f.read()


class Resnet(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attn(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.to_q, self.to_k, self.to_v = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c)])

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.group_norm(x).view(B, C, H * W).transpose(1, 2)
        a = F.scaled_dot_product_attention(self.to_q(h)[:, None], self.to_k(h)[:, None], self.to_v(h)[:, None])[:, 0]
        return x + self.to_out[0](a).transpose(1, 2).view(B, C, H, W)


class Mid(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.attentions = nn.ModuleList([Attn(c, groups)])
        self.resnets = nn.ModuleList([Resnet(c, c, groups), Resnet(c, c, groups)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class Down(nn.Module):
    def __init__(self, cin, cout, n, groups, down):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(cin if i == 0 else cout, cout, groups) for i in range(n)])
        self.downsamplers = nn.ModuleList([nn.ModuleDict({"conv": nn.Conv2d(cout, cout, 3, 2)})]) if down else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0]["conv"](F.pad(x, (0, 1, 0, 1)))
        return x


class Up(nn.Module):
    def __init__(self, cin, cout, n, groups, up):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(cin if i == 0 else cout, cout, groups) for i in range(n)])
        self.upsamplers = nn.ModuleList([nn.ModuleDict({"conv": nn.Conv2d(cout, cout, 3, padding=1)})]) if up else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if self.upsamplers is not None:
            x = self.upsamplers[0]["conv"](F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return x


class Encoder(nn.Module):
    def __init__(self, ch, lpb, groups, zc):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            [Down(ch[max(0, i - 1)] if i else ch[0], ch[i], lpb, groups, i < len(ch) - 1) for i in range(len(ch))])
        self.mid_block = Mid(ch[-1], groups)
        self.conv_norm_out = nn.GroupNorm(groups, ch[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[-1], 2 * zc, 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for d in self.down_blocks:
            x = d(x)
        return self.conv_out(F.silu(self.conv_norm_out(self.mid_block(x))))


class Decoder(nn.Module):
    def __init__(self, ch, lpb, groups, zc):
        super().__init__()
        r = list(reversed(ch))
        self.conv_in = nn.Conv2d(zc, r[0], 3, padding=1)
        self.mid_block = Mid(r[0], groups)
        self.up_blocks = nn.ModuleList(
            [Up(r[max(0, i - 1)], r[i], lpb + 1, groups, i < len(ch) - 1) for i in range(len(ch))])
        self.conv_norm_out = nn.GroupNorm(groups, ch[0], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[0], 3, 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for u in self.up_blocks:
            x = u(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class VAE(nn.Module):
    def __init__(self, ch, lpb=1, groups=16, zc=4):
        super().__init__()
        self.encoder = Encoder(ch, lpb, groups, zc)
        self.decoder = Decoder(ch, lpb, groups, zc)
        self.quant_conv = nn.Conv2d(2 * zc, 2 * zc, 1)
        self.post_quant_conv = nn.Conv2d(zc, zc, 1)

    def encode(self, x):
        m, lv = self.quant_conv(self.encoder(x)).chunk(2, 1)
        return m, lv.clamp(-30, 20)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


def check_diffusers(ch):
    from diffusers import AutoencoderKL
    ref = AutoencoderKL(block_out_channels=ch, down_block_types=["DownEncoderBlock2D"] * len(ch),
                        up_block_types=["UpDecoderBlock2D"] * len(ch), latent_channels=4, layers_per_block=1,
                        norm_num_groups=16, sample_size=128).eval()
    mine = VAE(ch).eval()
    missing = mine.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        m, lv = mine.encode(x)
        p = ref.encode(x).latent_dist
        d1 = (m - p.mean).abs().max().item()
        d2 = (mine.decode(m) - ref.decode(p.mean).sample).abs().max().item()
    print(json.dumps({"check_diffusers": True, "missing": str(missing), "enc_maxdiff": d1, "dec_maxdiff": d2}))


def edge_l1(p, t):
    dx = (p[..., :, 1:] - p[..., :, :-1]) - (t[..., :, 1:] - t[..., :, :-1])
    dy = (p[..., 1:, :] - p[..., :-1, :]) - (t[..., 1:, :] - t[..., :-1, :])
    return (dx.abs().sum() + dy.abs().sum()) / (dx.numel() + dy.numel())


@torch.no_grad()
def psnr(model, ev):
    model.eval()
    vals = []
    for i in range(0, ev.shape[0], 50):
        x = ev[i:i + 50].permute(0, 3, 1, 2).float() / 127.5 - 1
        m, _ = model.encode(x)
        y = ((model.decode(m).clamp(-1, 1) + 1) * 127.5).round()
        t = ev[i:i + 50].permute(0, 3, 1, 2).float()
        mse = ((y - t) ** 2).mean(dim=(1, 2, 3)).clamp(min=1e-10)
        vals.append(10 * torch.log10(255.0 ** 2 / mse))
    model.train()
    v = torch.cat(vals)
    return v.mean().item(), v.min().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="")
    ap.add_argument("--channels", default="16,32,64,64")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=8e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--kl", type=float, default=1e-4)
    ap.add_argument("--edge", type=float, default=0.5)
    ap.add_argument("--mse", type=float, default=1.0)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tag", default="vae")
    ap.add_argument("--log", default="")
    ap.add_argument("--check-diffusers", action="store_true")
    args = ap.parse_args()
    ch = [int(c) for c in args.channels.split(",")]
    if args.check_diffusers:
        check_diffusers(ch)
        return 0
    dev = torch.device(args.device)
    tr = torch.from_numpy(np.frombuffer(load(f"{args.data}/tr.img"), np.uint8).reshape(-1, 128, 128, 3).copy()).to(dev)
    ev = torch.from_numpy(np.frombuffer(load(f"{args.data}/ev.img"), np.uint8).reshape(-1, 128, 128, 3).copy()).to(dev)
    torch.manual_seed(args.seed)
    model = VAE(ch).to(dev)
    nparam = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    wu = args.warmup
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / max(1, wu) if s < wu else 0.5 * (1 + math.cos(math.pi * (s - wu) / max(1, args.steps - wu))))
    g = torch.Generator(device="cpu").manual_seed(args.seed)
    logf = open(args.log, "a") if args.log else None

    def out(rec):
        rec["tag"] = args.tag
        line = json.dumps(rec)
        print(line, flush=True)
        if logf:
            logf.write(line + "\n")
            logf.flush()

    out({"event": "start", "params": nparam, "n_train": tr.shape[0], **vars(args)})
    t0 = time.time()
    cells = (128 - args.crop) // 8 + 1
    ar = torch.arange(args.crop, device=dev)
    acc = np.zeros(4)
    for step in range(args.steps):
        idx = torch.randint(0, tr.shape[0], (args.batch,), generator=g).to(dev)
        ox = (torch.randint(0, cells, (args.batch,), generator=g) * 8).to(dev)
        oy = (torch.randint(0, cells, (args.batch,), generator=g) * 8).to(dev)
        flip = (torch.rand(args.batch, generator=g) < 0.5).to(dev)
        xs = torch.where(flip[:, None], ox[:, None] + args.crop - 1 - ar[None], ox[:, None] + ar[None])
        ys = oy[:, None] + ar[None]
        crop = tr[idx[:, None, None], ys[:, :, None], xs[:, None, :]]
        x = crop.permute(0, 3, 1, 2).float() / 127.5 - 1
        m, lv = model.encode(x)
        z = m + torch.exp(0.5 * lv) * torch.randn_like(m)
        y = model.decode(z)
        d = y - x
        l1, l2, le = d.abs().mean(), (d * d).mean(), edge_l1(y, x)
        kl = 0.5 * (m * m + lv.exp() - 1 - lv).mean()
        loss = l1 + args.mse * l2 + args.edge * le + args.kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        acc += [loss.item(), l2.item(), le.item(), kl.item()] if step % 10 == 0 else 0
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            p, worst = psnr(model, ev)
            n = max(1, args.eval_every // 10)
            out({"step": step + 1, "loss": acc[0] / n, "mse": acc[1] / n, "edge": acc[2] / n, "kl": acc[3] / n,
                 "psnr": p, "psnr_worst": worst, "sec": round(time.time() - t0, 1)})
            acc[:] = 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
