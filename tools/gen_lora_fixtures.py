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

Text-encoder LoRA (te_*, what tests/test_train_text.c repeats): the same
images, ids, noise and timesteps; LoRA on the UNet targets and on the CLIP
text encoder's q/k/v/out_proj and fc1/fc2 (kohya's lora_te_ modules), the
text states computed with gradients each step, one AdamW per component
(UNet lr 1e-3, text encoder lr 5e-3: kohya's text_encoder_lr), gradient
clipping 1.0 over both together, TE_STEPS steps:
  te_init.safetensors     initial LoRA (lora_unet_* and lora_te_*)
  te_final.safetensors    after TE_STEPS steps
  te_io.safetensors       losses (TE_STEPS); te_out: text encoder output of
                          probe_ids with te_final.safetensors loaded by
                          pipe.load_lora_weights (kohya file)

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
from peft import LoraConfig, inject_adapter_in_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SD1 = os.path.join(ROOT, "tests/fixtures/sd/sd1")
OUT = os.path.join(ROOT, "tests/fixtures/lora")
RANK, ALPHA, STEPS, BATCH, N_IMG = 4, 2.0, 20, 2, 4
TE_STEPS, TE_LR, UNET_LR = 6, 5e-3, 1e-3
TARGET = r".*attentions.*\.(proj_in|proj_out|to_q|to_k|to_v|to_out\.0|ff\.net\.0\.proj|ff\.net\.2)$"
# kohya's names ("lora_te_text_model_encoder_layers_0_..."); transformers 5's
# CLIPTextModel has no text_model. level in named_modules
TE_PREFIX = "lora_te_text_model_"
TE_TARGET = r".*\.(self_attn\.(q_proj|k_proj|v_proj|out_proj)|mlp\.(fc1|fc2))$"


def kohya(name, prefix="lora_unet_"):
    return prefix + name.replace(".", "_")


def lora_layers(model):
    """(module name, peft LoraLayer) in named_modules order."""
    return [(n, m) for n, m in model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A]


def to_kohya(model, prefix="lora_unet_"):
    sd = {}
    for n, m in lora_layers(model):
        sd[kohya(n, prefix) + ".lora_down.weight"] = m.lora_A["default"].weight.detach().clone().contiguous()
        sd[kohya(n, prefix) + ".lora_up.weight"] = m.lora_B["default"].weight.detach().clone().contiguous()
        sd[kohya(n, prefix) + ".alpha"] = torch.tensor(ALPHA)
    return sd


def init_lora(layers, g):
    """kohya's down init (kaiming-uniform a=sqrt 5); up N(0, 0.02), not zero,
    so that the first steps move both."""
    for _, m in layers:
        a, b = m.lora_A["default"].weight, m.lora_B["default"].weight
        a.data = (torch.rand(a.shape, generator=g) * 2 - 1) / a[0].numel() ** 0.5
        b.data = torch.randn(b.shape, generator=g) * 0.02


def load_pipe():
    return StableDiffusionPipeline.from_pretrained(SD1, safety_checker=None, requires_safety_checker=False,
                                                   torch_dtype=torch.float32)


def te_reference(images, ids, noise, timesteps, latents):
    """UNet + text-encoder LoRA, TE_STEPS steps: te_init / te_final / te_io."""
    pipe = load_pipe()
    unet, te = pipe.unet, pipe.text_encoder
    for p in list(unet.parameters()) + list(pipe.vae.parameters()) + list(te.parameters()):
        p.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=RANK, lora_alpha=ALPHA, init_lora_weights=True, target_modules=TARGET))
    # peft directly: transformers' add_adapter wants a newer peft than diffusers' pin
    te = inject_adapter_in_model(LoraConfig(r=RANK, lora_alpha=ALPHA, init_lora_weights=True, target_modules=TE_TARGET), te)
    g = torch.Generator().manual_seed(13)
    ul, tl = lora_layers(unet), lora_layers(te)
    init_lora(ul, g)
    init_lora(tl, g)
    print("te modules:", len(tl), file=sys.stderr)
    meta = {"ss_network_dim": str(RANK), "ss_network_alpha": str(ALPHA)}
    save_file({**to_kohya(unet), **to_kohya(te, TE_PREFIX)}, os.path.join(OUT, "te_init.safetensors"), metadata=meta)
    up = [p for _, m in ul for p in (m.lora_A["default"].weight, m.lora_B["default"].weight)]
    tp = [p for _, m in tl for p in (m.lora_A["default"].weight, m.lora_B["default"].weight)]
    opt = torch.optim.AdamW([{"params": up, "lr": UNET_LR}, {"params": tp, "lr": TE_LR}],
                            betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)
    sched = DDPMScheduler.from_pretrained(SD1, subfolder="scheduler")
    losses = []
    for s in range(TE_STEPS):
        idx = [(BATCH * s + i) % N_IMG for i in range(BATCH)]
        text = te(ids[idx])[0]
        noisy = sched.add_noise(latents[idx], noise[s], timesteps[s])
        pred = unet(noisy, timesteps[s], text).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise[s].float(), reduction="mean")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(up + tp, 1.0)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    print("te losses:", losses[0], "->", losses[-1], file=sys.stderr)
    fpath = os.path.join(OUT, "te_final.safetensors")
    save_file({**to_kohya(unet), **to_kohya(te, TE_PREFIX)}, fpath, metadata=meta)
    # The final file through diffusers' kohya loader: text encoder output.
    pipe2 = load_pipe()
    pipe2.load_lora_weights(fpath)
    n_te = sum(1 for _, m in pipe2.text_encoder.named_modules() if hasattr(m, "lora_A"))
    probe_ids = ids[[1, 3]].clone()
    probe_ids[:, 5] = 17
    with torch.no_grad():
        out = pipe2.text_encoder(probe_ids)[0]
        base = load_pipe().text_encoder(probe_ids)[0]
    print("te: %d modules in diffusers, lora effect %.4f" % (n_te, (out - base).abs().max().item()), file=sys.stderr)
    save_file({"losses": torch.tensor(losses, dtype=torch.float32), "probe_ids": probe_ids.to(torch.int32),
               "te_out": out.contiguous()}, os.path.join(OUT, "te_io.safetensors"))


def main():
    torch.manual_seed(7)
    pipe = load_pipe()
    unet, vae, te = pipe.unet, pipe.vae, pipe.text_encoder
    for p in list(unet.parameters()) + list(vae.parameters()) + list(te.parameters()):
        p.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=RANK, lora_alpha=ALPHA, init_lora_weights=True, target_modules=TARGET))
    g = torch.Generator().manual_seed(11)
    layers = lora_layers(unet)
    init_lora(layers, g)
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
    te_reference(images, ids, noise, timesteps, latents)


def check_ours():
    """ours_trained.safetensors (written by `intenttuner train`, LoCon rank 2,
    see tools/README.md) through diffusers' load_lora_weights: UNet output on
    a probe -> ours_io.safetensors. tests/test_train_parity.c loads the same
    file with our loader and must give the same output."""
    path = os.path.join(OUT, "ours_trained.safetensors")
    if not os.path.exists(path):
        print("no ours_trained.safetensors: skipped", file=sys.stderr)
        return
    pipe = load_pipe()
    pipe.load_lora_weights(path)
    n_lora = sum(1 for _, m in pipe.unet.named_modules() if hasattr(m, "lora_A") and "default_0" in m.lora_A)
    n_te = sum(1 for _, m in pipe.text_encoder.named_modules() if hasattr(m, "lora_A") and "default_0" in m.lora_A)
    g = torch.Generator().manual_seed(23)
    sample = torch.randn(1, 4, 8, 8, generator=g)
    t = torch.tensor([613.0])
    ctx = torch.randn(1, 77, 32, generator=g)
    ids = torch.full((1, 77), 663, dtype=torch.long)
    ids[0, :6] = torch.tensor([662, 40, 301, 77, 512, 663])
    with torch.no_grad():
        out = pipe.unet(sample, t, ctx).sample
        te_out = pipe.text_encoder(ids)[0]
        pipe.unload_lora_weights()
        base = pipe.unet(sample, t, ctx).sample
        te_base = pipe.text_encoder(ids)[0]
    print("ours: %d UNet + %d text modules in diffusers, lora effect %.4f (text %.4f)"
          % (n_lora, n_te, (out - base).abs().max().item(), (te_out - te_base).abs().max().item()), file=sys.stderr)
    save_file({"probe_sample": sample, "probe_t": t, "probe_ctx": ctx, "unet_out": out.contiguous(),
               "n_modules": torch.tensor([float(n_lora + n_te)]), "probe_ids": ids.to(torch.int32),
               "te_out": te_out.contiguous(), "n_te_modules": torch.tensor([float(n_te)])},
              os.path.join(OUT, "ours_io.safetensors"))


if __name__ == "__main__":
    if sys.argv[1:] == ["--ours"]:
        check_ours()
    elif sys.argv[1:] == ["--te"]:
        io = load_file(os.path.join(OUT, "train_io.safetensors"))
        te_reference(io["images"], io["ids"].long(), io["noise"], io["timesteps"].long(), io["latents"])
    else:
        main()
        check_ours()
