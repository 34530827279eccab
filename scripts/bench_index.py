#!/usr/bin/env python3
"""Benchmark the index store on the default embeddings (GloVe 6B 50d, first 100k words).

Prints: cold build time and peak memory (in a child process), warm load time, and Annoy's
recall@10 against exact search for word queries and for noisy (Laplace) queries, with query speed.

    python scripts/bench_index.py [--vocab-size 100000] [--queries 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

BUILD = """
import sys, time
from dpsanitize.index import open_index
t = time.perf_counter()
open_index(None, vocab_size=int(sys.argv[1]), cache_dir=sys.argv[2], progress=False)
print(time.perf_counter() - t)
with open("/proc/self/status") as f:  # VmHWM: this process image only
    print(int(next(line.split()[1] for line in f if line.startswith("VmHWM"))) / 1024)
"""

LOAD = """
import sys, time
t = time.perf_counter()
from dpsanitize.index import open_index
s = open_index(None, vocab_size=int(sys.argv[1]), cache_dir=sys.argv[2])
s.vocab.id_of; s.nbr_ids[0]; s.annoy
print(time.perf_counter() - t)
"""


def child(code: str, *args: str) -> list[float]:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True,
                         text=True)
    return [float(x) for x in out.stdout.split()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab-size", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"data: default embeddings (GloVe 6B 50d), vocab size {args.vocab_size}")
    with tempfile.TemporaryDirectory() as cache:
        build_s, peak_mib = child(BUILD, str(args.vocab_size), cache)
        print(f"cold build: {build_s:.1f} s, peak RSS {peak_mib:.0f} MiB")
        loads = sorted(child(LOAD, str(args.vocab_size), cache)[0] for _ in range(5))
        print(f"warm load (fresh process, incl. imports): median {loads[2]:.3f} s, "
              f"min {loads[0]:.3f} s")
        recall(args, cache)


def recall(args, cache) -> None:
    import numpy as np

    from dpsanitize.index import open_index
    from dpsanitize.mechanisms.laplace import MultivariateLaplace

    store = open_index(None, vocab_size=args.vocab_size, cache_dir=cache)
    rng = np.random.default_rng(0)
    words = rng.choice(len(store.vocab), args.queries, replace=False)
    sets = {"word queries": store.x64[words]}
    for eps in (10, 20):
        sets[f"noisy queries, laplace eps={eps}"] = MultivariateLaplace(
            epsilon=eps, store=store).noisy_points(words, rng)
    trees = store.manifest["annoy"]["trees"]
    print(f"Annoy ({trees} trees) recall@10 against exact search, {args.queries} queries:")
    for name, y in sets.items():
        t = time.perf_counter()
        exact, _ = store.nearest(y, words, 10)
        exact_s = (time.perf_counter() - t) / len(y)
        print(f"  {name}: exact decoder {1 / exact_s:,.0f} queries/s (10-NN)")
        for search_k in (-1, 1000, 3000, 10_000, 30_000):
            t = time.perf_counter()
            found = [store.annoy.get_nns_by_vector(v, 10, search_k=search_k) for v in y]
            dt = (time.perf_counter() - t) / len(y)
            hits = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
            default = " (default)" if search_k == store.search_k else ""
            print(f"    search_k={search_k:>6}{default}: recall@10 {hits:.3f}, "
                  f"{1 / dt:,.0f} queries/s")


if __name__ == "__main__":
    main()
