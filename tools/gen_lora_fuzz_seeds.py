#!/usr/bin/env python3
"""Seeds for fuzz/lora_file.c: small LoRA files in kohya and diffusers/PEFT
layouts whose module names match the harness's tiny model (so mutations
reach binding, forward and merge). Plain safetensors writing (no deps):
8-byte little-endian header length, JSON header, raw little-endian data.

    python3 tools/gen_lora_fuzz_seeds.py fuzz/corpus/lora_file
"""
import json, struct, sys, os

def write(path, tensors, meta=None):
    header, blob = {}, b""
    for name, (dtype, shape, vals) in tensors.items():
        fmt = {"F32": "f", "F16": "e"}[dtype]
        data = struct.pack("<%d%s" % (len(vals), fmt), *vals)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + blob)

def vals(n, k=0.1):
    return [((i * 7) % 5 - 2) * k for i in range(n)]

def mod(prefix, r, i, o, conv=None, kind="kohya", alpha=None, dtype="F32"):
    down, up = ("lora_down.weight", "lora_up.weight") if kind == "kohya" else ("lora_A.weight", "lora_B.weight")
    ds = [r, i] + ([conv, conv] if conv else [])
    us = [o, r] + ([1, 1] if conv else [])
    t = {prefix + "." + down: (dtype, ds, vals(len_(ds))), prefix + "." + up: (dtype, us, vals(len_(us), 0.05))}
    if alpha is not None:
        t[prefix + ".alpha"] = (dtype, [], [alpha])
    return t

def len_(s):
    n = 1
    for d in s:
        n *= d
    return n

out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/lora_file"
os.makedirs(out, exist_ok=True)
blk = "down_blocks_0_attentions_0"
t = {}
t.update(mod("lora_unet_%s_proj_in" % blk, 2, 8, 8, conv=1, alpha=1.0))
t.update(mod("lora_unet_%s_transformer_blocks_0_attn1_to_q" % blk, 2, 8, 8, alpha=2.0))
t.update(mod("lora_te_text_model_encoder_layers_0_mlp_fc1", 2, 6, 12, alpha=1.0))
write(os.path.join(out, "kohya.safetensors"), t, {"ss_network_module": "networks.lora", "ss_network_dim": "2"})
t = mod("lora_unet_down_blocks_0_resnets_0_conv1", 1, 8, 8, conv=3, alpha=1.0, dtype="F16")
t.update(mod("lora_unet_%s_transformer_blocks_0_attn2_to_k" % blk, 1, 6, 8, alpha=0.5, dtype="F16"))
write(os.path.join(out, "locon_f16.safetensors"), t)
d = "down_blocks.0.attentions.0"
t = mod("unet.%s.transformer_blocks.0.ff.net.0.proj" % d, 2, 8, 16, kind="peft")
t.update(mod("unet.%s.proj_in" % d, 1, 8, 8, kind="peft"))
t.update(mod("text_encoder.text_model.encoder.layers.0.self_attn.q_proj", 1, 6, 6, kind="peft", alpha=4.0))
write(os.path.join(out, "peft.safetensors"), t)
write(os.path.join(out, "unbound.safetensors"), mod("lora_unet_mid_block_attentions_0_proj_out", 3, 4, 5, alpha=3.0))
