#!/usr/bin/env python3
"""safetensors + torch reference for bench/safetensors_load.c.

usage: bench_safetensors.py FILE REPEATS
Times safe_open (header parse and validation) and load_file + .float() of
every tensor (f16 -> f32 on the CPU, default torch threads), after one
warm-up; prints median milliseconds ("open_ms 0.123", "load_ms 45.6") and
the float64 sum of all f32 values ("sum ...") for the correctness check."""
import statistics
import sys
import time

import torch
from safetensors import safe_open
from safetensors.torch import load_file


def main():
    path, reps = sys.argv[1], int(sys.argv[2])
    t_open, t_load = [], []
    total = 0.0
    for r in range(reps + 1):
        t0 = time.perf_counter()
        with safe_open(path, framework="pt") as f:
            f.keys()
        t1 = time.perf_counter()
        out = {k: v.float() for k, v in load_file(path).items()}
        t2 = time.perf_counter()
        if r == 0:
            total = sum(float(v.double().sum()) for v in out.values())
            continue
        t_open.append((t1 - t0) * 1e3)
        t_load.append((t2 - t1) * 1e3)
    print(f"open_ms {statistics.median(t_open):.4f}")
    print(f"load_ms {statistics.median(t_load):.4f}")
    print(f"sum {total:.6f}")
    print(f"torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
