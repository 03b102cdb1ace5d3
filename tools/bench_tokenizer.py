#!/usr/bin/env python3
"""Reference side of bench/tokenizer.c: transformers' CLIPTokenizer on the
parity corpus, same folder as ours. Prints "load_ms X", "cold_ms X",
"warm_ms X" (median of reps, whole corpus, one call per text) and
"batch_ms X" (one batched call).

Usage: bench_tokenizer.py FOLDER CORPUS.json REPS"""
import json
import statistics
import sys
import time

from transformers import CLIPTokenizer


def texts(path):
    out = []
    for c in json.load(open(path))['cases']:
        out.append(c['text'] if 'text' in c else bytes.fromhex(c['hex']).decode('utf-8', 'replace'))
    return out


def main():
    folder, corpus, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ts = texts(corpus)
    t0 = time.perf_counter()
    tok = CLIPTokenizer.from_pretrained(folder)
    print('load_ms %.3f' % ((time.perf_counter() - t0) * 1e3))
    t0 = time.perf_counter()
    for s in ts:
        tok(s)['input_ids']
    print('cold_ms %.3f' % ((time.perf_counter() - t0) * 1e3))
    warm, batch = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        for s in ts:
            tok(s)['input_ids']
        warm.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        tok(ts, padding='max_length', max_length=77, truncation=True)
        batch.append((time.perf_counter() - t0) * 1e3)
    print('warm_ms %.3f' % statistics.median(warm))
    print('batch_ms %.3f' % statistics.median(batch))
    sys.stdout.flush()


if __name__ == '__main__':
    main()
