#!/usr/bin/env python3
"""bench_vision.py: PyTorch CPU side of bench/vision.c: CLIP ViT-B/32 image
embedding throughput (transformers CLIPVisionModelWithProjection) and OWL-ViT
B/32 detection latency at 768x768 (OwlViTForObjectDetection, 2 text
queries), random weights, same thread count.

usage: bench_vision.py THREADS BATCH REPEAT -> prints "clip_ips X" and "owl_ms Y"."""
import statistics
import sys
import time

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, OwlViTConfig, OwlViTForObjectDetection


def median_time(fn, repeat):
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    threads, batch, repeat = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with torch.no_grad():
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig(patch_size=32, projection_dim=512)).eval()
        px = torch.randn(batch, 3, 224, 224)
        t = median_time(lambda: clip(pixel_values=px).image_embeds, repeat)
        print("clip_ips %.4f" % (batch / t), flush=True)
        del clip
        owl = OwlViTForObjectDetection(OwlViTConfig()).eval()  # owlvit-base-patch32 shapes
        px = torch.randn(1, 3, 768, 768)
        ids = torch.randint(0, 49406, (2, 16))
        ids[:, 5] = 49407
        t = median_time(lambda: owl(input_ids=ids, pixel_values=px).logits, repeat)
        print("owl_ms %.2f" % (t * 1e3), flush=True)


if __name__ == "__main__":
    main()
