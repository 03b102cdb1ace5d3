#!/usr/bin/env python3
"""bench_attention.py: PyTorch CPU side of bench/attention.c.

Usage: bench_attention.py B H Tq Tk D causal threads reps
Prints "RESULT <impl> <fwd ms> <fwd+bwd ms> <fwd cpu ms> <fwd+bwd cpu ms>"
(medians of wall-clock and process CPU time) for
F.scaled_dot_product_attention ("torch_sdpa") and the naive
softmax(Q K^T * scale) V ("torch_naive") on (B, H, T, D) float32 tensors,
with torch.set_num_threads(threads)."""
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def naive(q, k, v, causal):
    s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    if causal:
        m = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        s = s.masked_fill(~m, float("-inf"))
    return s.softmax(dim=-1) @ v


def sdpa(q, k, v, causal):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def timed(fn, reps):
    """(median wall ms, median process CPU ms) after one warm-up call."""
    fn()
    t, c = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        t.append((time.perf_counter() - t0) * 1e3)
        c.append((time.process_time() - c0) * 1e3)
    return statistics.median(t), statistics.median(c)


def main():
    B, H, Tq, Tk, D, causal, threads, reps = (int(a) for a in sys.argv[1:9])
    torch.set_num_threads(threads)
    # Started by an OpenMP program with OMP_PROC_BIND set, this process
    # inherits the affinity of one bound thread: torch would run on one core.
    cpus = len(os.sched_getaffinity(0))
    if cpus < threads:
        print(f"warning: python may use only {cpus} CPU(s) for {threads} threads "
              "(unset OMP_PROC_BIND); torch figures are pessimistic", file=sys.stderr)
    g = torch.Generator().manual_seed(1)
    q = torch.randn(B, H, Tq, D, generator=g)
    k = torch.randn(B, H, Tk, D, generator=g)
    v = torch.randn(B, H, Tk, D, generator=g)
    dout = torch.randn(B, H, Tq, D, generator=g)
    for name, f in (("torch_sdpa", sdpa), ("torch_naive", naive)):
        with torch.no_grad():
            fwd = timed(lambda: f(q, k, v, bool(causal)), reps)
        qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))

        def fb():
            o = f(qg, kg, vg, bool(causal))
            o.backward(dout)
            qg.grad = kg.grad = vg.grad = None

        fbw = timed(fb, reps)
        print(f"RESULT {name} {fwd[0]:.3f} {fbw[0]:.3f} {fwd[1]:.3f} {fbw[1]:.3f}", flush=True)


if __name__ == "__main__":
    main()
