#!/usr/bin/env python3
"""Pillow reference for bench/image_resize.c.

usage: bench_image_resize.py IN.png W H FILTER REPEATS OUT.png
Resizes IN to WxH with Pillow (after 2 warm-up runs), prints the median time
in milliseconds on stdout ("median_ms 1.234") and saves the last result to OUT
so the bench can check that both outputs agree."""
import statistics
import sys
import time

from PIL import Image

FILTERS = {"nearest": Image.Resampling.NEAREST, "box": Image.Resampling.BOX,
           "bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
           "lanczos": Image.Resampling.LANCZOS}


def main():
    src, w, h, filt, reps, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], \
        int(sys.argv[5]), sys.argv[6]
    im = Image.open(src)
    im.load()
    f = FILTERS[filt]
    for _ in range(2):
        r = im.resize((w, h), f)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        r = im.resize((w, h), f)
        times.append((time.perf_counter() - t0) * 1e3)
    r.save(out)
    print(f"median_ms {statistics.median(times):.4f}")


if __name__ == "__main__":
    main()
