#!/usr/bin/env python3
"""engine_ops_torch.py: the PyTorch CPU side of bench/engine_ops.c.

usage: engine_ops_torch.py THREADS REPEAT
Prints one line per benchmark, "name median_ms", for the same shapes as the
C program (keep the two lists in sync), float32, torch.set_num_threads(THREADS).
"""
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def median_ms(fn, repeat):
    fn()  # warm-up
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def main():
    threads, repeat = int(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    out = {}
    for n in (1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        out[f"sgemm_{n}"] = median_ms(lambda: torch.mm(a, b), repeat)
    x = torch.randn(4096, 320)
    w = torch.randn(1280, 320)
    bias = torch.randn(1280)
    out["linear_4096x320x1280"] = median_ms(lambda: F.linear(x, w, bias), repeat)
    x = torch.randn(1, 320, 64, 64)
    w = torch.randn(320, 320, 3, 3) * 0.02
    bias = torch.randn(320)
    with torch.no_grad():
        out["conv3x3_fwd"] = median_ms(lambda: F.conv2d(x, w, bias, padding=1), repeat)
    xg, wg, bg = (t.clone().requires_grad_() for t in (x, w, bias))
    y = F.conv2d(xg, wg, bg, padding=1)
    gy = torch.randn_like(y)

    def conv_bwd():
        xg.grad = wg.grad = bg.grad = None
        y = F.conv2d(xg, wg, bg, padding=1)
        y.backward(gy)
    out["conv3x3_fwd_bwd"] = median_ms(conv_bwd, repeat)
    w1 = torch.randn(320, 320, 1, 1) * 0.05
    with torch.no_grad():
        out["conv1x1_fwd"] = median_ms(lambda: F.conv2d(x, w1, bias), repeat)
    gw, gb = torch.randn(320), torch.randn(320)
    with torch.no_grad():
        out["groupnorm_silu_fwd"] = median_ms(lambda: F.silu(F.group_norm(x, 32, gw, gb, 1e-5)), repeat)
    for k, v in out.items():
        print(f"{k} {v:.4f}")


if __name__ == "__main__":
    main()
