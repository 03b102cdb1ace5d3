#!/usr/bin/env python3
"""Regenerates tests/fixtures/safetensors/ (dtype conversion and file fixtures).

Run from the repository root with the tools venv:
    tools/.venv/bin/python tools/gen_safetensors_fixtures.py

Writes (all little endian, deterministic: fixed seeds, no timestamps):
  half_cases.f32.bin        N float32 inputs: ties, subnormal and overflow
                            boundaries, specials, random values
  half_cases.torch_f16.bin  N uint16: torch .to(torch.float16) of the inputs
  half_cases.numpy_f16.bin  N uint16: numpy .astype(np.float16)
  half_cases.torch_bf16.bin N uint16: torch .to(torch.bfloat16)
  reference.safetensors     written by the real `safetensors` package
                            (safetensors.torch.save_file): f32/f16/bf16/i64/u8
                            tensors and three metadata entries
  reference_1meta.safetensors  same tensors, one metadata entry (the Rust
                            writer orders metadata keys by hash, so only a
                            one-key file has a predictable byte layout; our
                            writer must reproduce it byte for byte)
The tensor values follow formulas that tests/test_safetensors.c recomputes.
"""
import os
import sys

import numpy as np
import torch
import safetensors
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "safetensors")


def bits_to_f32(u):
    return np.array(u, dtype=np.uint32).view(np.float32)


def half_cases():
    u = []
    # f16 ties and their f32 neighbours, across every f16 exponent.
    for e in range(0, 31):
        for m in (0, 1, 2, 3, 511, 512, 513, 1021, 1022, 1023):
            lo = float(np.array((e << 10) | m, dtype=np.uint16).view(np.float16))
            hi = float(np.array(((e << 10) | m) + 1, dtype=np.uint16).view(np.float16))
            mid = np.float32((lo + hi) / 2)  # exact in f32
            b = int(np.array(mid, dtype=np.float32).view(np.uint32))
            u += [b, b - 1, b + 1]
    # bf16 ties: low 16 bits 0x8000 with odd/even kept part, and neighbours.
    rng = np.random.default_rng(1234)
    for hi16 in list(rng.integers(0, 0x7f80, 200)) + [0x0000, 0x0001, 0x007f, 0x0080, 0x3f80, 0x7f7e, 0x7f7f]:
        for lo16 in (0x7fff, 0x8000, 0x8001, 0xffff, 0x0001):
            b = (int(hi16) << 16) | lo16
            u += [b, b | 0x80000000]
    # Specials and boundaries (bit patterns).
    u += [0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000,
          0x7f800001, 0x7fa00000, 0x7f7fffff, 0xff7fffff, 0x00000001, 0x007fffff, 0x00800000,
          0x33000000, 0x33000001, 0x32ffffff, 0x33800000, 0x33c00000, 0x33a00000,  # 2^-25, 2^-24, 1.5*2^-24
          0x387fc000, 0x387fe000, 0x387ff000, 0x38800000,  # just below 2^-14
          0x477fe000, 0x477fefff, 0x477ff000, 0x477ff001, 0x47800000, 0x477fffff]  # 65504..65536
    # Random finite f32 bit patterns and random values at useful scales.
    r = rng.integers(0, 2**32, 3000, dtype=np.uint64).astype(np.uint32)
    u += [int(x) for x in r if (int(x) & 0x7f800000) != 0x7f800000]
    v = (rng.standard_normal(1500) * np.exp(rng.uniform(-20, 12, 1500))).astype(np.float32)
    u += [int(x) for x in v.view(np.uint32)]
    x = bits_to_f32(u)
    t = torch.from_numpy(x.copy())
    f16_t = t.to(torch.float16).view(torch.int16).numpy().view(np.uint16)
    f16_n = x.astype(np.float16).view(np.uint16)
    bf16_t = t.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    x.tofile(os.path.join(OUT, "half_cases.f32.bin"))
    f16_t.tofile(os.path.join(OUT, "half_cases.torch_f16.bin"))
    f16_n.tofile(os.path.join(OUT, "half_cases.numpy_f16.bin"))
    bf16_t.tofile(os.path.join(OUT, "half_cases.torch_bf16.bin"))
    nonnan = ~np.isnan(x)
    agree = (f16_t[nonnan] == f16_n[nonnan]).all()
    print(f"half cases: {len(x)} inputs; torch and numpy f16 agree on non-NaN: {agree}")


def reference_tensors():
    # Formulas mirrored in tests/test_safetensors.c (check_reference_values).
    k = torch.arange(24, dtype=torch.float64)
    return {
        "w.f32": (k * 0.25 - 3.0).reshape(2, 3, 4).to(torch.float32),
        "w.f16": (k[:12] * 0.5 - 2.0).reshape(3, 4).to(torch.float16),
        "w.bf16": (k[:8] * 1.5 - 4.0).reshape(8).to(torch.bfloat16),
        "idx.i64": (torch.arange(6, dtype=torch.int64) * 1000000007 - 2).reshape(2, 3),
        "mask.u8": (torch.arange(5, dtype=torch.int64) * 50).to(torch.uint8),
        "scalar.f32": torch.tensor(7.5, dtype=torch.float32),
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    half_cases()
    t = reference_tensors()
    save_file(t, os.path.join(OUT, "reference.safetensors"),
              metadata={"format": "pt", "made_by": "tools/gen_safetensors_fixtures.py",
                        "unicode": "caf\u00e9 \u2713"})
    save_file(t, os.path.join(OUT, "reference_1meta.safetensors"), metadata={"format": "pt"})
    print(f"safetensors {safetensors.__version__}, torch {torch.__version__}, numpy {np.__version__}")


if __name__ == "__main__":
    sys.exit(main())
