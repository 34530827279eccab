#!/usr/bin/env python3
"""Exact decoding on a CUDA GPU (`--device cuda`) against the CPU decoder, on the default W.

For each epsilon: laplace noisy points around Zipf-drawn words (noise from the CPU generator,
as in a run), decoded by the GPU decoder (k=1 as laplace/mahalanobis, k=2 as vickrey); prints
decoded points per second, then checks --check of them against the CPU decoder (ids and float64
distances bit for bit) and --full of them against a float64 scan of all of W. Also the whole
laplace mechanism (noise + decoding) per second on each device.

    python scripts/bench_gpu.py [--points 1000000] [--eps 5,10,20] [--full 300]
                                [--cache-dir DIR]

Needs CuPy and a CUDA device (pip install 'dpsanitize[gpu]').
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def best_rate(fn, n: int, repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = max(best, n / (time.perf_counter() - t))
    return best


def scan(x64, y, k):
    """Float64 distance to every word, ties to the lower id: the definition, no screening."""
    from dpsanitize.geometry import dist64

    out = []
    for row in y:
        d = dist64(x64, row)
        out.append(np.lexsort((np.arange(len(d)), d))[:k])
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--eps", default="5,10,20")
    ap.add_argument("--check", type=int, default=200_000,
                    help="points checked against the CPU decoder")
    ap.add_argument("--full", type=int, default=300, help="points checked by a full float64 scan")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()

    from dpsanitize import gpu
    from dpsanitize.index import open_index
    from dpsanitize.mechanisms import create
    from dpsanitize.rng import make_rng

    cp = gpu.cuda_module()
    name = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, GPU {name}, "
          f"CuPy {cp.__version__}, numpy {np.__version__}")
    store = open_index(None, vocab_size=100_000, cache_dir=args.cache_dir)
    x64 = store.x64
    t = time.perf_counter()
    decoder = store.gpu_brute_force
    print(f"W: {len(store.vocab):,} words, dim {store.vocab.dim}; GPU decoder ready in "
          f"{time.perf_counter() - t:.2f} s (batch {decoder.batch})")
    rng = make_rng(0)
    p = 1.0 / np.arange(1, len(store.vocab) + 1)
    ids = rng.choice(len(store.vocab), args.points, p=p / p.sum())
    for eps in map(float, args.eps.split(",")):
        mech = create("laplace", epsilon=eps, store=store)
        y = mech.noisy_points(ids, rng)
        decoder.nearest(y[:20_000], 2)  # warm-up: kernels compiled, memory pool filled
        for k in (1, 2):
            speed = best_rate(lambda: decoder.nearest(y, k), len(y), args.repeat)
            got_i, got_d = decoder.nearest(y[:args.check], k)
            t = time.perf_counter()
            cpu_i, cpu_d = store.brute_force.nearest(y[:args.check], k)
            cpu_speed = len(cpu_i) / (time.perf_counter() - t)
            bad = int((got_i != cpu_i).any(1).sum() + (got_d != cpu_d).any(1).sum())
            full = scan(x64, y[:args.full], k)
            bad_full = int((got_i[:args.full] != full).any(1).sum())
            print(f"eps {eps:g} k={k}: GPU {speed:>12,.0f} points/s   CPU decoder "
                  f"{cpu_speed:>9,.0f} points/s ({os.cpu_count()} cores)   mismatches: "
                  f"{bad} of {len(cpu_i):,} vs CPU decoder (ids, distances), {bad_full} of "
                  f"{len(full)} vs float64 scan", flush=True)
        for device in ("cpu", "cuda"):
            mech = create("laplace", epsilon=eps, store=store, device=device)
            n = min(len(ids), 100_000 if device == "cpu" else len(ids))
            speed = best_rate(lambda: mech.perturb(ids[:n], make_rng(1)), n, args.repeat)
            print(f"eps {eps:g}: laplace mechanism (noise + decoding), --device {device}: "
                  f"{speed:>12,.0f} words/s", flush=True)


if __name__ == "__main__":
    main()
