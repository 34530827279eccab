#!/usr/bin/env python3
"""Does the truncated Gumbel mechanism's epsilon move anything? Its calibration on smaller vocabularies.

For each output vocabulary size (the first N words of the default GloVe 6B 50d embeddings) prints
the epsilon floor, the noise scale b and the plausible deniability (mean N_w, S_w over words
spread evenly over the frequency ranks) at multiples of the floor, next to the median distance to
a word's nearest and 11th nearest neighbour (the scale the noise has to beat).

    python scripts/gumbel_range.py [--sizes 100000,20000,5000,1000] [--factors 1.05,2,5,20]
"""

from __future__ import annotations

import argparse
import os
import platform


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,20000,5000,1000")
    ap.add_argument("--factors", default="1.05,2,5,20")
    ap.add_argument("--sample", type=int, default=50)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()

    import numpy as np

    from dpsanitize.audit import audit_words, plausible_deniability, summarize
    from dpsanitize.index import open_index
    from dpsanitize.mechanisms import create
    from dpsanitize.mechanisms.gumbel import epsilon_floor
    from dpsanitize.rng import make_rng

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; embeddings: default GloVe 6B 50d; {args.sample} words "
          f"spread over the ranks, {args.draws} draws each, seed 0\n")
    print("| vocabulary | d_min | median d_1 / d_11 | floor | eps (x floor) | b | mean N_w | "
          "mean S_w |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in map(int, args.sizes.split(",")):
        store = open_index(None, vocab_size=size, cache_dir=args.cache_dir)
        floor = epsilon_floor(len(store.vocab), store.d_min)
        d1 = float(np.median(store.nbr_dist[:, 0]))
        d11 = float(np.median(store.nbr_dist[:, 10]))
        words = audit_words(len(store.vocab), args.sample)
        for factor in map(float, args.factors.split(",")):
            mech = create("gumbel", epsilon=floor * factor, store=store)
            pd = summarize(plausible_deniability(mech, words, args.draws, make_rng(0)))
            print(f"| {len(store.vocab):,} | {store.d_min:.3f} | {d1:.2f} / {d11:.2f} | "
                  f"{floor:.1f} | {floor * factor:.1f} ({factor:g}x) | {mech.b:.2f} | "
                  f"{pd['mean_N_w']:.3f} | {pd['mean_S_w']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
