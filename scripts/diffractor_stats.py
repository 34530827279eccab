#!/usr/bin/env python3
"""What one unit of diffractor's list metric is on the default embeddings, and what the lists cost.

For L = 1 and 3 lists: the time to build the lists (the greedy 64-neighbour walk, not the cache),
how often the walk hits a dead end (all 64 neighbours used: it jumps to the lowest unused id),
and the Euclidean distance between words d list positions apart (d = 1 is the step between list
neighbours; for L = 3 over all three lists), next to the distance of a word to its nearest
neighbour. Also the noise: Pr[same position] and E|k| at a few eps. Prints Markdown
(docs/diffractor.md).

    python scripts/diffractor_stats.py [--cache-dir DIR] [--lists 1,3]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--lists", default="1,3")
    args = ap.parse_args()

    import numpy as np

    from dpsanitize.geometry import dist64
    from dpsanitize.index import open_index
    from dpsanitize.mechanisms.diffractor import NEIGHBORS, build_lists

    store = open_index(None, vocab_size=100_000, cache_dir=args.cache_dir)
    n = len(store.vocab)
    x = store.vocab.vectors
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, numpy {np.__version__}")
    print(f"data: default embeddings (GloVe 6B 50d), |W| = {n}, d_min = {store.d_min:.4f}, "
          f"d_max = {store.d_max:.4f}; walk over {NEIGHBORS} exact neighbours\n")
    nn1 = np.asarray(store.nbr_dist[:, 0], dtype=np.float64)
    print(f"Euclidean distance of a word to its nearest other word: median {np.median(nn1):.3f}, "
          f"99th percentile {np.quantile(nn1, 0.99):.3f}\n")

    print("| L | build s | dead ends per list | list distance d | median Euclidean | "
          "90th pct | 99th pct | max |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for lists in map(int, args.lists.split(",")):
        t = time.perf_counter()
        order = build_lists(store, lists)
        seconds = time.perf_counter() - t
        table = np.asarray(store.nbr_ids[:, :NEIGHBORS])
        # a dead end: the next word is not among the current word's 64 neighbours
        jumps = [int((~(table[row[:-1]] == row[1:, None]).any(axis=1)).sum()) for row in order]
        for d in (1, 2, 5, 10, 100, 1000):
            e = dist64(x[order[:, :-d]], x[order[:, d:]]).ravel()
            first = d == 1
            print(f"| {lists} | {f'{seconds:.2f}' if first else ''} | "
                  f"{'/'.join(map(str, jumps)) if first else ''} | {d} | {np.median(e):.3f} | "
                  f"{np.quantile(e, 0.9):.3f} | {np.quantile(e, 0.99):.3f} | {e.max():.3f} |",
                  flush=True)

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, n, 300_000), rng.integers(0, n, 300_000)
    e = dist64(x[a[a != b]], x[b[a != b]])
    print(f"| random pairs | | | | {np.median(e):.3f} | {np.quantile(e, 0.9):.3f} | "
          f"{np.quantile(e, 0.99):.3f} | {e.max():.3f} |")

    print("\n| eps | Pr[same position] (1-q)/(1+q) | E|k| = 2q/(1-q^2) | Pr[|k| > 10] |")
    print("|---:|---:|---:|---:|")
    for eps in (0.1, 0.5, 1, 2, 4, 6):
        q = math.exp(-eps)
        print(f"| {eps:g} | {(1 - q) / (1 + q):.3f} | {2 * q / (1 - q * q):.3f} | "
              f"{2 * q ** 11 / (1 + q):.3g} |")


if __name__ == "__main__":
    main()
