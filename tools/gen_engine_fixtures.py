#!/usr/bin/env python3
"""gen_engine_fixtures.py: PyTorch reference fixtures for the tensor engine.

Writes tests/fixtures/engine/ops.safetensors: for every case in CASES the
inputs (<case>.in<i>), the output (<case>.out), a random upstream gradient
(<case>.gout) and the gradients of the float inputs (<case>.gin<i>).
References are computed in float64 from the float32-rounded inputs (so they
measure our float32 error against the exact result), except the timestep
embedding, which is computed in float32 exactly as diffusers does.

Also writes tests/fixtures/engine/e2e.safetensors (see e2e() below).

Run from the repository root:
    /work/main/tools/.venv/bin/python tools/gen_engine_fixtures.py
Deterministic: seeded; the same torch version rewrites identical bytes.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

OUT_DIR = os.path.join("tests", "fixtures", "engine")


def save_safetensors(path, tensors, metadata):
    """Minimal writer (the format: u64 header length, JSON header, data)."""
    header = {"__metadata__": metadata}
    blobs, off = [], 0
    for name in sorted(tensors):
        a = tensors[name]
        if a.dtype == np.float32:
            dt = "F32"
        elif a.dtype == np.int32:
            dt = "I32"
        else:
            raise ValueError(f"{name}: dtype {a.dtype}")
        b = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


g = torch.Generator().manual_seed(1234)


def rnd(*shape, scale=1.0):
    return torch.randn(tuple(shape), generator=g, dtype=torch.float32) * scale


# Each case: name -> (list of inputs, function of float64 tensors, indices of
# inputs that receive gradients). Integer inputs are int32 tensors.
def cases():
    c = {}
    c["linear"] = ([rnd(3, 5, 7), rnd(4, 7), rnd(4)], lambda x, w, b: F.linear(x, w, b), [0, 1, 2])
    c["linear_nobias"] = ([rnd(2, 9), rnd(3, 9)], lambda x, w: F.linear(x, w), [0, 1])
    c["matmul"] = ([rnd(2, 3, 5, 7), rnd(2, 3, 7, 4)], lambda a, b: a @ b, [0, 1])
    c["matmul_tb"] = ([rnd(3, 5, 7), rnd(3, 6, 7)], lambda a, b: a @ b.transpose(-1, -2), [0, 1])
    c["matmul_ta"] = ([rnd(3, 7, 5), rnd(3, 7, 6)], lambda a, b: a.transpose(-1, -2) @ b, [0, 1])
    c["matmul_shared"] = ([rnd(2, 5, 7), rnd(7, 3)], lambda a, b: a @ b, [0, 1])
    c["conv3x3"] = ([rnd(2, 3, 7, 9), rnd(5, 3, 3, 3), rnd(5)],
                    lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=1), [0, 1, 2])
    c["conv3x3_s2"] = ([rnd(2, 3, 7, 9), rnd(4, 3, 3, 3), rnd(4)],
                       lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), [0, 1, 2])
    c["conv1x1"] = ([rnd(2, 6, 5, 3), rnd(4, 6, 1, 1), rnd(4)],
                    lambda x, w, b: F.conv2d(x, w, b), [0, 1, 2])
    c["conv5x3_s2p2"] = ([rnd(1, 3, 8, 6), rnd(2, 3, 5, 3), rnd(2)],
                         lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=2), [0, 1, 2])
    c["group_norm"] = ([rnd(2, 6, 5, 7, scale=2.0) + 0.5, rnd(6), rnd(6)],
                       lambda x, w, b: F.group_norm(x, 3, w, b, eps=1e-5), [0, 1, 2])
    c["group_norm_silu"] = ([rnd(2, 6, 5, 7), rnd(6), rnd(6)],
                            lambda x, w, b: F.silu(F.group_norm(x, 2, w, b, eps=1e-6)), [0, 1, 2])
    c["layer_norm"] = ([rnd(3, 5, 7) + 1.0, rnd(7), rnd(7)],
                       lambda x, w, b: F.layer_norm(x, (7,), w, b, eps=1e-5), [0, 1, 2])
    c["softmax"] = ([rnd(3, 5, 7, scale=3.0)], lambda x: torch.softmax(x, -1), [0])
    c["silu"] = ([rnd(3, 5, 7, scale=3.0)], F.silu, [0])
    c["gelu"] = ([rnd(3, 5, 7, scale=3.0)], F.gelu, [0])
    c["gelu_tanh"] = ([rnd(3, 5, 7, scale=3.0)], lambda x: F.gelu(x, approximate="tanh"), [0])
    c["quick_gelu"] = ([rnd(3, 5, 7, scale=3.0)], lambda x: x * torch.sigmoid(1.702 * x), [0])
    c["geglu"] = ([rnd(3, 5, 14, scale=2.0)], lambda x: x.chunk(2, -1)[0] * F.gelu(x.chunk(2, -1)[1]), [0])
    c["add_bcast"] = ([rnd(2, 3, 5, 7), rnd(3, 1, 7)], lambda a, b: a + b, [0, 1])
    c["mul_bcast"] = ([rnd(2, 3, 5, 7), rnd(2, 3, 1, 1)], lambda a, b: a * b, [0, 1])
    c["sub_bcast"] = ([rnd(5, 7), rnd(7)], lambda a, b: a - b, [0, 1])
    c["mul_both"] = ([rnd(3, 1, 5), rnd(4, 1)], lambda a, b: a * b, [0, 1])
    c["scale"] = ([rnd(3, 5)], lambda x: x * 0.37 + 0.1, [0])
    c["concat"] = ([rnd(2, 3, 5), rnd(2, 4, 5)], lambda a, b: torch.cat([a, b], 1), [0, 1])
    c["slice"] = ([rnd(3, 7, 5)], lambda x: x[:, 2:6, :], [0])
    c["permute"] = ([rnd(2, 3, 5, 7)], lambda x: x.permute(0, 2, 3, 1), [0])
    c["upsample"] = ([rnd(2, 3, 5, 7)], lambda x: F.interpolate(x, scale_factor=2.0, mode="nearest"), [0])
    ids = torch.randint(0, 11, (3, 5), generator=g, dtype=torch.int32)
    c["embedding"] = ([ids, rnd(11, 7)], lambda i, w: F.embedding(i.long(), w), [1])
    c["sum"] = ([rnd(3, 5, 7)], lambda x: x.sum(), [0])
    c["mean"] = ([rnd(3, 5, 7)], lambda x: x.mean(), [0])
    c["mean_last"] = ([rnd(3, 5, 7)], lambda x: x.mean(-1), [0])
    mask = (torch.rand(3, 5, 7, generator=g) > 0.3).float() * 1.5
    c["mse"] = ([rnd(3, 5, 7), rnd(3, 5, 7), mask], lambda p, t, w: (w * (p - t) ** 2).mean(), [0, 1])
    c["mse_plain"] = ([rnd(4, 9), rnd(4, 9)], lambda p, t: F.mse_loss(p, t), [0, 1])
    labels = torch.randint(0, 7, (5,), generator=g, dtype=torch.int32)
    c["cross_entropy"] = ([rnd(5, 7, scale=2.0), labels], lambda x, l: F.cross_entropy(x, l.long()), [0])
    c["cosine"] = ([rnd(3, 5, 7), rnd(3, 5, 7)], lambda a, b: F.cosine_similarity(a, b, dim=-1, eps=1e-8), [0, 1])
    c["attention"] = ([rnd(2, 3, 5, 8), rnd(2, 3, 7, 8), rnd(2, 3, 7, 8)],
                      lambda q, k, v: F.scaled_dot_product_attention(q, k, v), [0, 1, 2])
    c["attention_causal"] = ([rnd(1, 2, 6, 4), rnd(1, 2, 6, 4), rnd(1, 2, 6, 4)],
                             lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), [0, 1, 2])
    c["pad2d"] = ([rnd(2, 3, 5, 4)], lambda x: F.pad(x, (0, 1, 0, 1)), [0])
    c["pad2d_asym"] = ([rnd(1, 2, 3, 4)], lambda x: F.pad(x, (2, 1, 3, 2)), [0])
    c["layer_norm_plain"] = ([rnd(4, 9) * 3 + 2], lambda x: F.layer_norm(x, (9,), eps=1e-5), [0])
    c["group_norm_plain"] = ([rnd(2, 4, 3, 5)], lambda x: F.group_norm(x, 2, eps=1e-5), [0])
    return c


def timestep_embedding(t, dim, flip, shift, scale=1.0, max_period=10000):
    """diffusers.models.embeddings.get_timestep_embedding, verbatim semantics."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32)
    exponent = exponent / (half - shift)
    emb = torch.exp(exponent)
    emb = t[:, None].float() * emb[None, :]
    emb = scale * emb
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


def ops():
    tensors = {}
    for name, (inputs, fn, grad_idx) in cases().items():
        xs = []
        for i, x in enumerate(inputs):
            tensors[f"{name}.in{i}"] = x.numpy()
            if x.dtype == torch.int32:
                xs.append(x)
            else:
                xs.append(x.double().requires_grad_(i in grad_idx))
        out = fn(*xs)
        gout = rnd(*out.shape).double()
        tensors[f"{name}.out"] = out.detach().float().numpy()
        tensors[f"{name}.gout"] = gout.float().numpy().reshape(out.shape)
        out.backward(gout)
        for i in grad_idx:
            tensors[f"{name}.gin{i}"] = xs[i].grad.float().numpy()
    t = torch.tensor([0.0, 1.0, 250.5, 999.0, 500.0])
    tensors["temb_flip.in0"] = t.numpy()
    tensors["temb_flip.out"] = timestep_embedding(t, 32, True, 0).numpy()
    tensors["temb_shift.in0"] = t.numpy()
    tensors["temb_shift.out"] = timestep_embedding(t, 33, False, 1).numpy()
    meta = {"generator": "tools/gen_engine_fixtures.py", "torch": torch.__version__,
            "reference": "float64 autograd from float32 inputs; timestep embedding float32"}
    save_safetensors(os.path.join(OUT_DIR, "ops.safetensors"), tensors, meta)
    n = sum(a.size for a in tensors.values())
    print(f"ops.safetensors: {len(tensors)} tensors, {n} values")


if __name__ == "__main__":
    os.makedirs(OUT_DIR, exist_ok=True)
    torch.set_num_threads(1)
    ops()
    if "--no-e2e" not in sys.argv:
        import gen_engine_e2e  # noqa: E402  (same directory)
        gen_engine_e2e.main(OUT_DIR, save_safetensors)
