#!/usr/bin/env python3
"""gen_kernels_fixtures.py: PyTorch reference outputs for the attention and
optimiser kernels (src/tensor/attention.c, src/tensor/optim.c).

Writes tests/fixtures/kernels/<name>.json (a manifest: the cases, their
parameters, and for each stored array its offset and length in floats) and
<name>.bin (the arrays, little-endian float32, back to back).

Inputs are not stored: they come from kf_value(seed, i), an integer hash
that C (tests/kernels_fixture.h) computes bit-identically, so the fixtures
hold only the outputs and stay small. References are computed in float64
from those exact float32 inputs, then rounded to float32.

Run from the repository root:
    /work/main/tools/.venv/bin/python tools/gen_kernels_fixtures.py
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join("tests", "fixtures", "kernels")
M32 = 0xFFFFFFFF


def kf_values(seed, n, amp=1.0):
    """float32 values in [-1, 1) * amp; mirrors kf_value() in C."""
    i = np.arange(n, dtype=np.uint64)
    x = (np.uint64(seed) * np.uint64(0x9E3779B9) + i * np.uint64(0x85EBCA6B)) & np.uint64(M32)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & np.uint64(M32)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & np.uint64(M32)
    x ^= x >> np.uint64(16)
    v = ((x >> np.uint64(8)).astype(np.float64) * 2.0**-23 - 1.0).astype(np.float32)
    return (v * np.float32(amp)).astype(np.float32)


class Writer:
    def __init__(self, name, note):
        self.name = name
        self.blob = []
        self.count = 0
        self.manifest = {"generator": "tools/gen_kernels_fixtures.py", "torch": torch.__version__,
                         "note": note, "cases": []}

    def array(self, a):
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float32).ravel())
        ref = [self.count, int(a.size)]
        self.blob.append(a.astype("<f4").tobytes())
        self.count += a.size
        return ref

    def save(self):
        with open(os.path.join(OUT, self.name + ".bin"), "wb") as f:
            f.write(b"".join(self.blob))
        with open(os.path.join(OUT, self.name + ".json"), "w") as f:
            json.dump(self.manifest, f, indent=1)
            f.write("\n")
        print(f"{self.name}: {len(self.manifest['cases'])} cases, {self.count * 4} bytes")


# --------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------

ATTN_CASES = [
    # name, B, H, Tq, Tk, D, layout, causal, mask, scale (0 = default), seed
    dict(name="self_bhtd_d17", B=1, H=2, Tq=70, Tk=70, D=17, layout="bhtd", causal=0, mask="none", scale=0.0, seed=11),
    dict(name="causal_bthd_d8", B=2, H=3, Tq=19, Tk=19, D=8, layout="bthd", causal=1, mask="none", scale=0.0, seed=12),
    dict(name="cross77_addmask_d24", B=2, H=1, Tq=9, Tk=77, D=24, layout="bthd", causal=0, mask="add_keys", scale=0.3, seed=13),
    dict(name="boolmask_d5", B=2, H=2, Tq=13, Tk=21, D=5, layout="bhtd", causal=0, mask="keep_full", scale=0.0, seed=14),
]


def attn_inputs(c):
    """q (B,H,Tq,D), k, v (B,H,Tk,D), dout (B,H,Tq,D) as float64 torch tensors.
    The C side fills arrays in the case's memory layout with consecutive
    kf_value()s, so values are generated in that layout and permuted."""
    B, H, Tq, Tk, D = c["B"], c["H"], c["Tq"], c["Tk"], c["D"]

    def gen(seed, T, amp):
        v = kf_values(seed, B * H * T * D, amp)
        if c["layout"] == "bhtd":
            t = v.reshape(B, H, T, D)
        else:
            t = v.reshape(B, T, H, D).transpose(0, 2, 1, 3)
        return torch.tensor(np.ascontiguousarray(t), dtype=torch.float64)

    s = c["seed"]
    return gen(s * 10 + 1, Tq, 1.5), gen(s * 10 + 2, Tk, 1.5), gen(s * 10 + 3, Tk, 1.0), gen(s * 10 + 4, Tq, 1.0)


def attn_mask(c):
    """Returns (torch mask or None, description for the manifest)."""
    B, Tq, Tk = c["B"], c["Tq"], c["Tk"]
    s = c["seed"] * 10 + 5
    if c["mask"] == "add_keys":
        # (B, Tk) additive: a bias, and -inf past each sequence's length
        lens = [Tk - 5 * (b + 1) for b in range(B)]
        m = kf_values(s, B * Tk, 0.5).astype(np.float64).reshape(B, Tk)
        for b in range(B):
            m[b, lens[b]:] = -math.inf
        return torch.tensor(m).reshape(B, 1, 1, Tk), {"kind": "add_keys", "seed": s, "amp": 0.5, "lens": lens}
    if c["mask"] == "keep_full":
        # (B, 1, Tq, Tk) boolean; key 0 always kept so no row is fully hidden
        keep = kf_values(s, B * Tq * Tk).reshape(B, Tq, Tk) > -0.4
        keep[:, :, 0] = True
        return torch.tensor(keep).reshape(B, 1, Tq, Tk), {"kind": "keep_full", "seed": s, "threshold": -0.4}
    return None, {"kind": "none"}


def to_layout(t, layout):
    """(B,H,T,D) -> flat array in the case's memory layout."""
    if layout == "bthd":
        t = t.permute(0, 2, 1, 3)
    return t.contiguous().numpy().astype(np.float32)


def gen_attention():
    w = Writer("attention", "F.scaled_dot_product_attention forward + autograd backward in float64")
    for c in ATTN_CASES:
        q, k, v, dout = attn_inputs(c)
        mask, mdesc = attn_mask(c)
        for t in (q, k, v):
            t.requires_grad_(True)
        scale = c["scale"] if c["scale"] else None
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=bool(c["causal"]), scale=scale)
        o.backward(dout)
        # lse of the scaled, masked scores, the kernel's saved statistic
        sc = (q @ k.transpose(-1, -2)) * (scale if scale else 1.0 / math.sqrt(c["D"]))
        if c["causal"]:
            sc = sc.masked_fill(~torch.ones(c["Tq"], c["Tk"], dtype=torch.bool).tril(), -math.inf)
        if mask is not None:
            sc = sc + mask if mask.dtype != torch.bool else sc.masked_fill(~mask, -math.inf)
        lse = torch.logsumexp(sc, dim=-1)
        case = dict(c)
        case["mask"] = mdesc
        case["arrays"] = {
            "o": w.array(to_layout(o.detach(), c["layout"])),
            "lse": w.array(lse.detach().numpy()),
            "dq": w.array(to_layout(q.grad, c["layout"])),
            "dk": w.array(to_layout(k.grad, c["layout"])),
            "dv": w.array(to_layout(v.grad, c["layout"])),
        }
        w.manifest["cases"].append(case)
    w.save()


# --------------------------------------------------------------------------
# Optimisers, clipping, schedules, EMA
# --------------------------------------------------------------------------

OPT_SIZES = [37, 5, 64, 3]  # parameter lengths; index 3 is frozen
OPT_STEPS = 20
OPT_CASES = [
    dict(name="adamw_default_clip", kind="adamw", lr=1e-3, weight_decay=0.01, beta1=0.9, beta2=0.999, eps=1e-8,
         clip=0.5, lr_schedule="cosine", seed=21, ema="warmup"),
    dict(name="adamw_strong_wd", kind="adamw", lr=3e-2, weight_decay=0.1, beta1=0.8, beta2=0.95, eps=1e-6,
         clip=0.0, lr_schedule="constant", seed=22, ema="default"),
    dict(name="sgd_momentum_damp", kind="sgd", lr=0.1, weight_decay=1e-3, momentum=0.9, dampening=0.1, nesterov=0,
         clip=2.0, lr_schedule="linear", seed=23, ema="none"),
    dict(name="sgd_nesterov", kind="sgd", lr=0.05, weight_decay=0.0, momentum=0.9, dampening=0.0, nesterov=1,
         clip=0.0, lr_schedule="constant", seed=24, ema="none"),
    dict(name="sgd_plain", kind="sgd", lr=0.2, weight_decay=0.01, momentum=0.0, dampening=0.0, nesterov=0,
         clip=0.0, lr_schedule="constant", seed=25, ema="plain"),
]
EMA_CFG = {  # EMAModel arguments; "plain" is our constant-decay mode, emulated
    "default": dict(decay=0.999, min_decay=0.0, update_after_step=2, use_ema_warmup=False, inv_gamma=1.0, power=2 / 3),
    "warmup": dict(decay=0.9999, min_decay=0.5, update_after_step=0, use_ema_warmup=True, inv_gamma=1.0, power=0.75),
    "plain": dict(decay=0.9, min_decay=0.0, update_after_step=0, use_ema_warmup=False, inv_gamma=1.0, power=2 / 3),
}


def make_scheduler(opt, name, warmup, total, **kw):
    from diffusers.optimization import get_scheduler
    return get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=total, **kw)


def gen_optim():
    from diffusers.training_utils import EMAModel

    w = Writer("optim", "torch.optim AdamW/SGD (foreach=False, the CPU default), clip_grad_norm_, "
               "diffusers get_scheduler and EMAModel")
    for c in OPT_CASES:
        s = c["seed"]
        params = [torch.nn.Parameter(torch.tensor(kf_values(s * 100 + j, n, 0.8))) for j, n in enumerate(OPT_SIZES)]
        params[3].requires_grad_(False)
        trainable = params[:3]
        if c["kind"] == "adamw":
            opt = torch.optim.AdamW(trainable, lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=c["eps"],
                                    weight_decay=c["weight_decay"], foreach=False)
        else:
            opt = torch.optim.SGD(trainable, lr=c["lr"], momentum=c["momentum"], dampening=c["dampening"],
                                  weight_decay=c["weight_decay"], nesterov=bool(c["nesterov"]), foreach=False)
        sched = make_scheduler(opt, c["lr_schedule"], 4, OPT_STEPS)
        ema = None
        if c["ema"] != "none":
            e = EMA_CFG[c["ema"]]
            ema = EMAModel(params, **e)
            if c["ema"] == "plain":  # constant decay from the first update on
                ema.get_decay = lambda step, d=e["decay"]: d
        traj, norms, lrs = [], [], []
        for step in range(1, OPT_STEPS + 1):
            for j, p in enumerate(trainable):
                p.grad = torch.tensor(kf_values(s * 1000 + step * 10 + j, OPT_SIZES[j], 1.0))
            if c["clip"] > 0:
                norms.append(float(torch.nn.utils.clip_grad_norm_(trainable, c["clip"], foreach=False)))
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
            if ema is not None:
                ema.step(params)
            traj.append(np.concatenate([p.detach().numpy() for p in params]))
        case = dict(c)
        case["sizes"] = OPT_SIZES
        case["frozen"] = [0, 0, 0, 1]
        case["steps"] = OPT_STEPS
        case["lrs"] = lrs
        case["norms"] = norms
        case["arrays"] = {"params": w.array(np.stack(traj))}
        if ema is not None:
            case["ema_cfg"] = EMA_CFG[c["ema"]]
            case["ema_decays"] = [float(ema.get_decay(n)) for n in range(1, 40)]
            case["arrays"]["ema"] = w.array(np.concatenate([sp.detach().numpy() for sp in ema.shadow_params]))
        w.manifest["cases"].append(case)
    # schedules sampled past the end, on their own
    scheds = []
    base = 2e-4
    for name, kw in (("constant", {}), ("constant_with_warmup", {}), ("linear", {}), ("cosine", {}),
                     ("cosine_with_restarts", {"num_cycles": 3}), ("polynomial", {"power": 2.0}),
                     ("cosine_with_restarts", {})):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
        sched = make_scheduler(opt, name, 10, 100, **kw)
        lrs = []
        for _ in range(130):
            lrs.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        scheds.append({"name": name, "warmup": 10, "total": 100, "base_lr": base,
                       "num_cycles": kw.get("num_cycles", 0), "power": kw.get("power", 0), "lrs": lrs})
    w.manifest["schedules"] = scheds
    w.save()


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    which = sys.argv[1:] or ["attention", "optim"]
    if "attention" in which:
        gen_attention()
    if "optim" in which:
        gen_optim()


if __name__ == "__main__":
    main()
