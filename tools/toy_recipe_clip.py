#!/usr/bin/env python3
"""Recipe exploration for the toy CLIP (issue #10): the same architecture
(transformers CLIPModel with models/toy/clip/config.json, optionally
resized) and the same data (renders, captions and token ids dumped from our
C renderer and tokenizer) as `intenttuner toy pretrain clip`, trained in
PyTorch to find a recipe that leaves the background-only plateau quickly.

Never ships weights: the product's weights come from our engine. This is a
measuring tool; docs/TOYWORLD.md ("CLIP", "Recipe exploration") records
what it found.

Data (DIR/tr.* and DIR/ev.*, raw or .xz): .img uint8 (N,128,128,3),
.ids uint16 (N,K,77) token ids (K caption variants per image; train: the
training mixture, eval: long captions), .attr int8 (N,18) attribute values
and character.

Usage: toy_recipe_clip.py --data DIR --config models/toy/clip/config.json
       [--batch 64] [--lr 7e-4] [--steps 2000] [--eval-every 100] [--tag NAME]
       [--width W --layers L --heads H --patch P] [--device cuda]
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
import torch.nn.functional as F

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
N_ATTR = 17


def load(path):
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    with lzma.open(path + ".xz") as f:
        return f.read()


def load_set(d, prefix, k):
    img = np.frombuffer(load(f"{d}/{prefix}.img"), np.uint8).reshape(-1, 128, 128, 3)
    n = img.shape[0]
    ids = np.frombuffer(load(f"{d}/{prefix}.ids"), np.uint16).reshape(n, -1, 77)
    attr = np.frombuffer(load(f"{d}/{prefix}.attr"), np.int8).reshape(n, N_ATTR + 1)
    return img, ids[:, :k] if k else ids, attr


def make_model(args, dev):
    from transformers import CLIPConfig, CLIPModel
    cfg = json.load(open(args.config))
    for tower in ("text_config", "vision_config"):
        c = cfg[tower]
        if args.width:
            c["hidden_size"], c["intermediate_size"] = args.width, 4 * args.width
        if args.layers:
            c["num_hidden_layers"] = args.layers
        if args.heads:
            c["num_attention_heads"] = args.heads
        c["projection_dim"] = args.width or c["projection_dim"]
    if args.patch:
        cfg["vision_config"]["patch_size"] = args.patch
    if args.width:
        cfg["projection_dim"] = args.width
    conf = CLIPConfig(text_config=cfg["text_config"], vision_config=cfg["vision_config"],
                      projection_dim=cfg["projection_dim"], logit_scale_init_value=args.scale_init)
    torch.manual_seed(args.seed)
    return CLIPModel(conf).to(dev), cfg["text_config"]["eos_token_id"]


def augment(img_u8, flip, dx, dy):
    """img (B,S,S,3) uint8 on device -> (B,3,S,S) float normalised; flip and
    shift with border pixels repeated (as src/toy/toyclip.c)."""
    B, S = img_u8.shape[0], img_u8.shape[1]
    ar = torch.arange(S, device=img_u8.device)
    xx = torch.where(flip[:, None], S - 1 - ar[None, :], ar[None, :])
    xs = (xx - dx[:, None]).clamp(0, S - 1)
    ys = (ar[None, :] - dy[:, None]).clamp(0, S - 1)
    b = torch.arange(B, device=img_u8.device)
    out = img_u8[b[:, None, None], ys[:, :, None], xs[:, None, :]]
    return normalise(out)


def normalise(img_u8):
    x = img_u8.permute(0, 3, 1, 2).float() / 255.0
    m = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def img_feat(model, x):
    return model.visual_projection(model.vision_model(pixel_values=x).pooler_output)


def txt_feat(model, ids):
    return model.text_projection(model.text_model(input_ids=ids).pooler_output)


def trim(ids, eos):
    """Trims padding after the longest caption (exact: causal text attention)."""
    n = (ids != eos).sum(1).max().item() + 1
    return ids[:, :n]


@torch.no_grad()
def evaluate(model, ev_img, ev_ids, eos, feats=False):
    model.eval()
    x = normalise(ev_img)
    ids = trim(ev_ids[:, 0].long(), eos)
    ie = F.normalize(img_feat(model, x), dim=-1)
    te = F.normalize(txt_feat(model, ids), dim=-1)
    sim = te @ ie.T
    n = sim.shape[0]
    lab = torch.arange(n, device=sim.device)
    t2i = (sim.argmax(1) == lab).float().mean().item()
    t2i5 = (sim.topk(5, dim=1).indices == lab[:, None]).any(1).float().mean().item()
    i2t = (sim.argmax(0) == lab).float().mean().item()
    model.train()
    return t2i, t2i5, i2t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=7e-4)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--warmup", type=float, default=0.05)
    ap.add_argument("--wd", type=float, default=0.0)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--width", type=int, default=0)
    ap.add_argument("--layers", type=int, default=0)
    ap.add_argument("--heads", type=int, default=0)
    ap.add_argument("--patch", type=int, default=0)
    ap.add_argument("--scale-init", type=float, default=2.6592)
    ap.add_argument("--fixed-scale", type=float, default=0, help="fixed exp(logit_scale); 0 = learned")
    ap.add_argument("--k", type=int, default=0, help="caption variants used per image (0 = all)")
    ap.add_argument("--n-train", type=int, default=0)
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--ids", default="", help="train ids file instead of DATA/tr.ids (e.g. long captions)")
    ap.add_argument("--aux", type=float, default=0, help="weight of auxiliary attribute heads on the vision tower")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--tag", default="run")
    ap.add_argument("--log", default="")
    args = ap.parse_args()
    dev = torch.device(args.device)
    tr_img, tr_ids, tr_attr = load_set(args.data, "tr", args.k)
    if args.ids:
        tr_ids = np.frombuffer(load(args.ids), np.uint16).reshape(tr_img.shape[0], -1, 77)
    ev_img, ev_ids, _ = load_set(args.data, "ev", 0)
    if args.n_train:
        tr_img, tr_ids, tr_attr = tr_img[:args.n_train], tr_ids[:args.n_train], tr_attr[:args.n_train]
    n_cls = [int(tr_attr[:, a].max()) + 1 for a in range(N_ATTR)]
    tr_attr = torch.from_numpy(tr_attr[:, :N_ATTR].astype(np.int64)).to(dev)
    N, K = tr_ids.shape[0], tr_ids.shape[1]
    tr_img = torch.from_numpy(tr_img.copy()).to(dev)
    tr_ids = torch.from_numpy(tr_ids.astype(np.int64)).to(dev)
    ev_img = torch.from_numpy(ev_img.copy()).to(dev)
    ev_ids = torch.from_numpy(ev_ids.astype(np.int64)).to(dev)
    model, eos = make_model(args, dev)
    heads = torch.nn.ModuleList([torch.nn.Linear(model.config.vision_config.hidden_size, max(1, c))
                                 for c in n_cls]).to(dev)
    nparam = sum(p.numel() for p in model.parameters())
    params = list(model.parameters()) + (list(heads.parameters()) if args.aux else [])
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=args.wd)
    wu = int(args.warmup * args.steps)
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

    out({"event": "start", "params": nparam, "n_train": N, "k": K, **vars(args)})
    t0 = time.time()
    run_loss = 0.0
    for step in range(args.steps):
        idx = torch.randint(0, N, (args.batch,), generator=g)
        kk = torch.randint(0, K, (args.batch,), generator=g)
        flip = torch.rand(args.batch, generator=g) < 0.5
        dx = torch.randint(-6, 7, (args.batch,), generator=g)
        dy = torch.randint(-6, 7, (args.batch,), generator=g)
        idx_d = idx.to(dev)
        if args.no_augment:
            x = normalise(tr_img[idx_d])
        else:
            x = augment(tr_img[idx_d], flip.to(dev), dx.to(dev), dy.to(dev))
        ids = trim(tr_ids[idx_d, kk.to(dev)], eos)
        with torch.no_grad():
            if args.fixed_scale:
                model.logit_scale.fill_(math.log(args.fixed_scale))
            model.logit_scale.clamp_(0, math.log(100))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            vp = model.vision_model(pixel_values=x).pooler_output
            ie = F.normalize(model.visual_projection(vp).float(), dim=-1)
            te = F.normalize(txt_feat(model, ids).float(), dim=-1)
        lg = model.logit_scale.exp() * ie @ te.T
        lab = torch.arange(args.batch, device=dev)
        loss = 0.5 * (F.cross_entropy(lg, lab) + F.cross_entropy(lg.T, lab))
        if args.aux:
            ta = tr_attr[idx_d]
            aux = sum(F.cross_entropy(h(vp.float()), ta[:, a], ignore_index=-1, reduction="sum")
                      / (ta[:, a] >= 0).sum().clamp(min=1) for a, h in enumerate(heads) if n_cls[a] > 1) / N_ATTR
            total = loss + args.aux * aux
        else:
            total = loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        if args.fixed_scale:
            model.logit_scale.grad = None
        gn = torch.nn.utils.clip_grad_norm_(params, 1.0).item()
        opt.step()
        sched.step()
        run_loss += loss.item()
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            t2i, t2i5, i2t = evaluate(model, ev_img, ev_ids, eos)
            out({"step": step + 1, "pairs": (step + 1) * args.batch, "loss": run_loss / args.eval_every,
                 "t2i_top1": t2i, "t2i_top5": t2i5, "i2t_top1": i2t, "scale": model.logit_scale.exp().item(),
                 "gn": gn, "sec": round(time.time() - t0, 1)})
            run_loss = 0.0
    return 0


if __name__ == "__main__":
    sys.exit(main())
