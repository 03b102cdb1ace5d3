#!/usr/bin/env python3
"""Generates the Stable Diffusion model fixtures under tests/fixtures/sd/.

Usage:
  tools/.venv/bin/python tools/gen_sd_fixtures.py

Writes, for three tiny random pipelines (sd1: SD 1.x-like, sd2: SD 2.x-like
with linear projections, a per-level attention_head_dim list, upcast
attention, GELU OpenCLIP text encoder and v-prediction; inpaint: SD 1.x-like
with a 9-channel UNet):
  <name>/                    a diffusers folder (model_index.json, unet/,
                             vae/, text_encoder/, tokenizer/, scheduler/);
                             sd2 stores its weights as the fp16 variant
                             (diffusion_pytorch_model.fp16.safetensors)
  <name>.safetensors         the single-file twin with the original LDM key
                             names (f16), written by this script's own
                             diffusers -> LDM mapping and checked by loading
                             it back with diffusers' single_file_utils
                             converters (round trip must be exact)
  <name>_io.safetensors      inputs and diffusers/transformers f32 outputs
                             of every component (see io_* below)
and sd15_manifest/: the key names and shapes (no weights) of full-size
SD 1.5 in both layouts, from models instantiated on the meta device with
SD 1.5's published configs (runwayml/stable-diffusion-v1-5 config.json
files, restated below).

Every weight is rounded to an f16-representable value first, so the f32
diffusers folder and the f16 single file hold the same numbers.
Deterministic (fixed seeds).
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file

import diffusers
import transformers
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders import single_file_utils as sfu
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "sd")
TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "text", "tiny", "tokenizer")
VOCAB = 664  # tests/fixtures/text/tiny/tokenizer/vocab.json entries

# ---------------------------------------------------------------- configs

def unet_config(in_channels=4, sd2=False):
    return dict(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=[8, 16],
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
        cross_attention_dim=32,
        attention_head_dim=[1, 2] if sd2 else 2,
        use_linear_projection=sd2,
        upcast_attention=sd2,
    )


def vae_config():
    return dict(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=[8, 8],
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        scaling_factor=0.18215,
    )


def clip_config(sd2=False, vocab=VOCAB, layers=2):
    return CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act="gelu" if sd2 else "quick_gelu",
        projection_dim=16,
        bos_token_id=vocab - 2,
        eos_token_id=vocab - 1,
        pad_token_id=vocab - 1,
    )


SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}

# SD 1.5's published component configs (runwayml/stable-diffusion-v1-5).
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=[320, 640, 1280, 1280],
    down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
)
SD15_VAE = dict(
    sample_size=512, in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
    block_out_channels=[128, 256, 512, 512], norm_num_groups=32,
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
)
SD15_CLIP = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
    num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
    projection_dim=768, bos_token_id=0, eos_token_id=2, pad_token_id=1,
)

# ------------------------------------------------ diffusers -> LDM key names
# Our own inverse of diffusers' single_file_utils converters
# (convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
# convert_ldm_clip_checkpoint, convert_open_clip_checkpoint); the result is
# verified by running those converters on it.

RESNET_UNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
               ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"),
               ("conv_shortcut", "skip_connection")]


def unet_to_ldm(key, cfg):
    lpb = cfg["layers_per_block"]
    top = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
           "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    p = key.split(".")
    mod = ".".join(p[:-1])
    if mod in top:
        return top[mod] + "." + p[-1]

    def resnet(rest):
        for a, b in RESNET_UNET:
            if rest.startswith(a + "."):
                return b + rest[len(a):]
        raise KeyError(key)

    if p[0] == "down_blocks":
        i, kind, j = int(p[1]), p[2], int(p[3])
        rest = ".".join(p[4:])
        if kind == "resnets":
            return f"input_blocks.{1 + i * (lpb + 1) + j}.0.{resnet(rest)}"
        if kind == "attentions":
            return f"input_blocks.{1 + i * (lpb + 1) + j}.1.{rest}"
        if kind == "downsamplers":  # downsamplers.0.conv.weight
            return f"input_blocks.{(i + 1) * (lpb + 1)}.0.op.{p[-1]}"
    if p[0] == "mid_block":
        kind, j = p[1], int(p[2])
        rest = ".".join(p[3:])
        if kind == "resnets":
            return f"middle_block.{2 * j}.{resnet(rest)}"
        return f"middle_block.1.{rest}"
    if p[0] == "up_blocks":
        i, kind, j = int(p[1]), p[2], int(p[3])
        rest = ".".join(p[4:])
        if kind == "resnets":
            return f"output_blocks.{i * (lpb + 1) + j}.0.{resnet(rest)}"
        if kind == "attentions":
            return f"output_blocks.{i * (lpb + 1) + j}.1.{rest}"
        if kind == "upsamplers":
            has_attn = cfg["up_block_types"][i].startswith("CrossAttn")
            return f"output_blocks.{i * (lpb + 1) + lpb}.{2 if has_attn else 1}.conv.{p[-1]}"
    raise KeyError(key)


def vae_to_ldm(key, cfg):
    n = len(cfg["block_out_channels"])
    key = key.replace("conv_norm_out", "norm_out")
    p = key.split(".")
    side = p[0]
    if p[1] in ("down_blocks", "up_blocks"):
        i = int(p[2])
        li = i if p[1] == "down_blocks" else n - 1 - i
        word = "down" if p[1] == "down_blocks" else "up"
        if p[3] == "resnets":
            rest = ".".join(p[5:]).replace("conv_shortcut", "nin_shortcut")
            return f"{side}.{word}.{li}.block.{p[4]}.{rest}"
        samp = "downsample" if word == "down" else "upsample"
        return f"{side}.{word}.{li}.{samp}.{'.'.join(p[5:])}"
    if p[1] == "mid_block":
        if p[2] == "resnets":
            rest = ".".join(p[4:]).replace("conv_shortcut", "nin_shortcut")
            return f"{side}.mid.block_{int(p[3]) + 1}.{rest}"
        rest = ".".join(p[4:])
        rest = {"group_norm.weight": "norm.weight", "group_norm.bias": "norm.bias",
                "to_q.weight": "q.weight", "to_q.bias": "q.bias", "to_k.weight": "k.weight",
                "to_k.bias": "k.bias", "to_v.weight": "v.weight", "to_v.bias": "v.bias",
                "to_out.0.weight": "proj_out.weight", "to_out.0.bias": "proj_out.bias"}[rest]
        return f"{side}.mid.attn_1.{rest}"
    return key


def unet_sd_to_ldm(sd, cfg):
    return {"model.diffusion_model." + unet_to_ldm(k, cfg): v for k, v in sd.items()}


def vae_sd_to_ldm(sd, cfg):
    out = {}
    for k, v in sd.items():
        lk = vae_to_ldm(k, cfg)
        if ".mid.attn_1." in lk and lk.endswith("weight") and v.ndim == 2:
            v = v.reshape(v.shape[0], v.shape[1], 1, 1)  # LDM stores them as 1x1 convs
        out["first_stage_model." + lk] = v
    return out


def hub_names(sd):
    """transformers 5 saves CLIPTextModel without the "text_model." prefix
    that every SD checkpoint on the hub (and LDM single files) carries; the
    manifest and single files use the hub names, our loader accepts both."""
    return {(k if k.startswith("text_model.") or k.startswith("text_projection") else "text_model." + k): v
            for k, v in sd.items()}


def clip_sd_to_ldm(sd):
    return {"cond_stage_model.transformer." + k: v for k, v in sd.items()
            if not k.endswith("position_ids")}


def openclip_sd_to_ldm(sd, n_layers, extra_layer):
    """OpenCLIP names; q/k/v fused into in_proj; one extra (unused) last
    layer like SD 2's 24-layer OpenCLIP-H of which diffusers keeps 23."""
    P = "cond_stage_model.model."
    out = {P + "token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
           P + "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
           P + "ln_final.weight": sd["text_model.final_layer_norm.weight"],
           P + "ln_final.bias": sd["text_model.final_layer_norm.bias"]}
    for i in range(n_layers):
        s = f"text_model.encoder.layers.{i}."
        d = f"{P}transformer.resblocks.{i}."
        for w in ("weight", "bias"):
            out[d + "attn.in_proj_" + w] = torch.cat(
                [sd[s + f"self_attn.{q}_proj.{w}"] for q in "qkv"], 0)
            out[d + "attn.out_proj." + w] = sd[s + "self_attn.out_proj." + w]
            out[d + "ln_1." + w] = sd[s + "layer_norm1." + w]
            out[d + "ln_2." + w] = sd[s + "layer_norm2." + w]
            out[d + "mlp.c_fc." + w] = sd[s + "mlp.fc1." + w]
            out[d + "mlp.c_proj." + w] = sd[s + "mlp.fc2." + w]
    if extra_layer:
        g = torch.Generator().manual_seed(99)
        src = f"{P}transformer.resblocks.{n_layers - 1}."
        dst = f"{P}transformer.resblocks.{n_layers}."
        for k in [k for k in out if k.startswith(src)]:
            v = out[k]
            if v.device.type == "meta":
                out[dst + k[len(src):]] = v
            else:
                out[dst + k[len(src):]] = torch.randn(v.shape, generator=g).half().float()
        hid = sd["text_model.final_layer_norm.weight"].shape[0]
        out[P + "text_projection"] = torch.zeros(hid, hid, device=sd["text_model.final_layer_norm.weight"].device)
        out[P + "logit_scale"] = torch.zeros((), device=sd["text_model.final_layer_norm.weight"].device)
    return out


def check_roundtrip(ldm, unet_sd, unet_cfg, vae_sd, vae_cfg, te_sd, openclip, te_model, n_layers):
    """diffusers' own LDM converters must give back exactly our state dicts."""
    u = sfu.convert_ldm_unet_checkpoint(ldm, unet_cfg)
    v = sfu.convert_ldm_vae_checkpoint(ldm, vae_cfg)
    if openclip:
        drop = {k for k in ldm if f"resblocks.{n_layers}." in k}
        t = sfu.convert_open_clip_checkpoint(te_model, {k: x for k, x in ldm.items() if k not in drop})
        t.pop("text_projection.weight", None)
    else:
        t = sfu.convert_ldm_clip_checkpoint(ldm)
    te_ref = {k: x for k, x in te_sd.items() if not k.endswith("position_ids")}
    for name, got, want in (("unet", u, unet_sd), ("vae", v, vae_sd), ("text", t, te_ref)):
        if set(got) != set(want):
            sys.exit(f"{name}: round trip keys differ: {sorted(set(got) ^ set(want))[:8]}")
        for k in want:
            if got[k].shape != want[k].shape:
                sys.exit(f"{name}: {k} shape {tuple(got[k].shape)} vs {tuple(want[k].shape)}")
            if want[k].device.type != "meta" and not torch.equal(got[k].float(), want[k].float()):
                sys.exit(f"{name}: {k} values differ after round trip")


# ---------------------------------------------------------------- pipelines

def f16_round(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
            # diffusers zero-initialises nothing we rely on, but random
            # biases make the parity test see every bias.
    return model


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    return f16_round(model)


def save_component(model, folder, variant):
    model.save_pretrained(folder, safe_serialization=True, variant=variant)


def make_pipeline(name, in_channels, sd2, seed):
    torch.manual_seed(seed)
    ucfg = unet_config(in_channels, sd2)
    vcfg = vae_config()
    unet = randomise(UNet2DConditionModel(**ucfg).eval(), seed + 1)
    vae = randomise(AutoencoderKL(**vcfg).eval(), seed + 2)
    te = randomise(CLIPTextModel(clip_config(sd2)).eval(), seed + 3)
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    # Weights are stored in f16 to keep the fixtures small (the values are
    # f16-exact, so nothing is lost); sd2 uses the fp16 variant file names.
    variant = "fp16" if sd2 else None
    for sub, m in (("unet", unet), ("vae", vae), ("text_encoder", te)):
        m_half = type(m)(m.config) if sub == "text_encoder" else type(m).from_config(m.config)
        m_half.load_state_dict(m.state_dict())
        save_component(m_half.half(), os.path.join(d, sub), variant)
    shutil.copytree(TOKENIZER, os.path.join(d, "tokenizer"))
    os.makedirs(os.path.join(d, "scheduler"))
    sched = dict(SCHEDULER, prediction_type="v_prediction" if sd2 else "epsilon",
                 _diffusers_version=diffusers.__version__)
    json.dump(sched, open(os.path.join(d, "scheduler", "scheduler_config.json"), "w"), indent=2)
    index = {"_class_name": "StableDiffusionInpaintPipeline" if in_channels == 9 else "StableDiffusionPipeline",
             "_diffusers_version": diffusers.__version__,
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "scheduler": ["diffusers", "PNDMScheduler"], "safety_checker": [None, None],
             "feature_extractor": [None, None], "requires_safety_checker": False}
    json.dump(index, open(os.path.join(d, "model_index.json"), "w"), indent=2)

    # Single-file twin.
    usd, vsd, tsd = unet.state_dict(), vae.state_dict(), hub_names(te.state_dict())
    ldm = {}
    ldm.update(unet_sd_to_ldm(usd, dict(unet.config)))
    ldm.update(vae_sd_to_ldm(vsd, dict(vae.config)))
    if sd2:
        ldm.update(openclip_sd_to_ldm(tsd, te.config.num_hidden_layers, True))
    else:
        ldm.update(clip_sd_to_ldm(tsd))
    check_roundtrip(ldm, usd, dict(unet.config), vsd, dict(vae.config), tsd, sd2, te,
                    te.config.num_hidden_layers)
    save_file({k: v.half().contiguous() for k, v in ldm.items()}, os.path.join(OUT, name + ".safetensors"),
              metadata={"generator": "tools/gen_sd_fixtures.py", "layout": "ldm"})
    write_io(name, unet, vae, te, in_channels, sd2, seed)


def write_io(name, unet, vae, te, in_channels, sd2, seed):
    """Inputs and reference outputs (f32, eager attention). The inpainting
    pipeline's text encoder and VAE are sd1's architecture again: only its
    UNet outputs are stored (fixture size)."""
    g = torch.Generator().manual_seed(seed + 10)
    io = {}
    from transformers import CLIPTokenizer
    tok = CLIPTokenizer.from_pretrained(TOKENIZER)
    ids = tok(["a red creature with a hat", "two eyes and a striped jacket, jumping"],
              padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    io["te.input_ids"] = ids.to(torch.int32)
    with torch.no_grad():
        o = te(ids, output_hidden_states=True)
        io["te.last_hidden_state"] = o.last_hidden_state
        io["te.pooler_output"] = o.pooler_output
        # clip skip 1: penultimate layer through the final layer norm
        # (diffusers' StableDiffusionPipeline.encode_prompt with clip_skip=1).
        if not sd2:
            io["te.clip_skip1"] = getattr(te, "text_model", te).final_layer_norm(o.hidden_states[-2])
        x = torch.randn(2, in_channels, 8, 8, generator=g)
        t = torch.tensor([10.0, 500.0])
        ctx = torch.randn(2, 16, 32, generator=g)  # 16 text tokens: fixture size
        io["unet.sample"], io["unet.timestep"], io["unet.encoder_hidden_states"] = x, t, ctx
        io["unet.out"] = unet(x, t, ctx).sample
        img = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
        io["vae.image"] = img
        moments = vae.quant_conv(vae.encoder(img))
        io["vae.mean"], io["vae.logvar"] = moments.chunk(2, dim=1)
        z = torch.randn(1, 4, 8, 8, generator=g)
        io["vae.latent"] = z
        io["vae.decoded"] = vae.decode(z).sample
        # Tiled: tile_latent_min_size = 16 / 2 = 8; a 12x12 latent and a
        # 24x24 image each take 2x2 overlapping tiles.
        vae.enable_tiling()
        zt = torch.randn(1, 4, 12, 12, generator=g)
        io["vae.tiled_latent"] = zt
        io["vae.tiled_decoded"] = vae.decode(zt).sample
        it = torch.rand(1, 3, 24, 24, generator=g) * 2 - 1
        io["vae.tiled_image"] = it
        io["vae.tiled_moments"] = vae._tiled_encode(it)
        vae.disable_tiling()
    if in_channels == 9:
        io = {k: v for k, v in io.items() if k.startswith("unet.")}
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(OUT, name + "_io.safetensors"),
              metadata={"generator": "tools/gen_sd_fixtures.py", "diffusers": diffusers.__version__,
                        "transformers": transformers.__version__, "torch": torch.__version__})


def make_projection_fixture():
    """CLIPTextModelWithProjection (joint CLIP): text_embeds."""
    torch.manual_seed(7)
    # f32 on disk (the pipelines are f16), small vocabulary.
    m = randomise(CLIPTextModelWithProjection(clip_config(False, vocab=100, layers=1)).eval(), 8)
    d = os.path.join(OUT, "clip_proj")
    shutil.rmtree(d, ignore_errors=True)
    m.save_pretrained(d, safe_serialization=True)
    ids = torch.tensor([[98, 5, 17, 30, 99] + [99] * 72, [98, 7, 99] + [99] * 74]).to(torch.int64)
    with torch.no_grad():
        o = m(ids)
    save_file({"input_ids": ids.to(torch.int32), "text_embeds": o.text_embeds.contiguous(),
               "last_hidden_state": o.last_hidden_state.contiguous()},
              os.path.join(OUT, "clip_proj_io.safetensors"))


def make_manifest():
    """SD 1.5 key names and shapes in both layouts, no weights."""
    d = os.path.join(OUT, "sd15_manifest")
    shutil.rmtree(d, ignore_errors=True)
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15_UNET)
        vae = AutoencoderKL(**SD15_VAE)
        te = CLIPTextModel(CLIPTextConfig(**SD15_CLIP))
    usd, vsd, tsd = unet.state_dict(), vae.state_dict(), hub_names(te.state_dict())
    ldm = {}
    ldm.update(unet_sd_to_ldm(usd, dict(unet.config)))
    ldm.update(vae_sd_to_ldm(vsd, dict(vae.config)))
    ldm.update(clip_sd_to_ldm(tsd))
    check_roundtrip(ldm, usd, dict(unet.config), vsd, dict(vae.config), tsd, False, te, 12)
    for sub, m in (("unet", unet), ("vae", vae)):
        os.makedirs(os.path.join(d, sub))
        cfg = {k: v for k, v in dict(m.config).items() if not k.startswith("_")}
        cfg["_class_name"] = type(m).__name__
        json.dump(cfg, open(os.path.join(d, sub, "config.json"), "w"), indent=1)
    os.makedirs(os.path.join(d, "text_encoder"))
    te.config.to_json_file(os.path.join(d, "text_encoder", "config.json"))

    def listing(sd):
        return [[k, list(v.shape)] for k, v in sorted(sd.items())]
    man = {"generator": "tools/gen_sd_fixtures.py", "diffusers": diffusers.__version__,
           "unet": listing(usd), "vae": listing(vsd),
           "text_encoder": listing({k: v for k, v in tsd.items() if not k.endswith("position_ids")}),
           "ldm": listing(ldm)}
    json.dump(man, open(os.path.join(d, "manifest.json"), "w"), separators=(",", ":"))


def main():
    os.makedirs(OUT, exist_ok=True)
    make_pipeline("sd1", 4, False, 100)
    make_pipeline("sd2", 4, True, 200)
    make_pipeline("inpaint", 9, False, 300)
    make_projection_fixture()
    make_manifest()
    total = 0
    for dp, _, fs in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(dp, f)) for f in fs)
    print(f"wrote {OUT}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
