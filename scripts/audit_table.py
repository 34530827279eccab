#!/usr/bin/env python3
"""Plausible deniability of every mechanism over an epsilon grid, on the default embeddings.

For each mechanism and epsilon: mean N_w (Pr[M(w) = w]) and mean S_w (distinct outputs in m
draws) over --sample words spread evenly over the 100k frequency ranks, m = --draws. Prints a
Markdown table (the one in README.md). Seeded, so re-running prints the same numbers.

    python scripts/audit_table.py [--sample 100] [--draws 1000] [--mechs gumbel,laplace]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

GRIDS = {
    "gumbel": "floor",  # floor x 1.05 ... floor x 10
    "laplace": [5, 10, 20, 30, 40, 60],
    "mahalanobis": [5, 10, 20, 30, 40, 60],
    "vickrey": [5, 10, 20, 30, 40, 60],
    "tem": [1, 2, 3, 4, 6, 10],
    "santext": [1, 2, 3, 4, 6, 10],
    "santext+": [1, 2, 3, 4, 6, 10],
    "custext": [1, 2, 4, 8, 16],
    "density": [1, 2, 3, 4, 6, 10],
    "diffractor": [0.1, 0.5, 1, 2, 4, 6],  # list metric: not comparable with the Euclidean eps
}
FLOOR_FACTORS = [1.05, 1.5, 2, 3, 5, 10]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=100)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--mechs", default=",".join(GRIDS))
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()

    from dpsanitize.audit import audit_words, plausible_deniability, summarize
    from dpsanitize.index import open_index
    from dpsanitize.mechanisms import create
    from dpsanitize.mechanisms.gumbel import epsilon_floor
    from dpsanitize.rng import make_rng

    store = open_index(None, vocab_size=100_000, cache_dir=args.cache_dir)
    ids = audit_words(len(store.vocab), args.sample)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"data: default embeddings (GloVe 6B 50d), |W| = {len(store.vocab)}, d_min = "
          f"{store.d_min:.6f}, d_max = {store.d_max:.4f}; {len(ids)} words spread over the "
          f"frequency ranks, {args.draws} draws each, seed 0\n")
    print("| mechanism | eps per word | mean N_w | mean S_w | median N_w | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.mechs.split(","):
        grid = GRIDS[name]
        if grid == "floor":
            floor = epsilon_floor(len(store.vocab), store.d_min)
            grid = [round(floor * f, 1) for f in FLOOR_FACTORS]
        for eps in grid:
            mech = create(name, epsilon=eps, store=store)
            t = time.perf_counter()
            summary = summarize(plausible_deniability(mech, ids, args.draws, make_rng(0)))
            label = f"{eps:g}" if name != "gumbel" else f"{eps:g} ({eps / floor:.3g} x floor)"
            print(f"| {name} | {label} | {summary['mean_N_w']:.3f} | {summary['mean_S_w']:.1f} | "
                  f"{summary['median_N_w']:.3f} | {time.perf_counter() - t:.1f} |", flush=True)


if __name__ == "__main__":
    main()
