#!/usr/bin/env python3
"""Time of one `dpsanitize attack` (Bayes recovery) per mechanism with the defaults (D 1,000
words, m 1,000 draws), on the default embeddings, with SST-2 train as prior; and how the sampled
estimate of santext and tem converges with m, against their exact value.

The data is read where it lies (../shared/data/sst2), never copied.

    python scripts/attack_times.py [--mechs santext,tem,gumbel,laplace] [--cache-dir DIR]
    python scripts/attack_times.py --ratios            # sampled/exact for santext, tem at 3, 4
    python scripts/attack_times.py --convergence       # santext eps 3: m = 50 ... 2000
                                                       # (pooled fit and raw counts alone)
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path


DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst2" / "train.tsv"
EPS = {"santext": 3.0, "santext+": 3.0, "tem": 3.0, "density": 3.0, "custext": 3.0,
       "diffractor": 1.0, "gumbel": 120.0, "laplace": 10.0, "mahalanobis": 10.0,
       "vickrey": 20.0}


def main() -> None:
    from dpsanitize import attack
    from dpsanitize.index import open_index
    from dpsanitize.mechanisms import create
    from dpsanitize.rng import make_rng

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mechs", default=",".join(EPS))
    ap.add_argument("--cache-dir", default=os.environ.get("DPSANITIZE_CACHE"))
    ap.add_argument("--ratios", action="store_true")
    ap.add_argument("--convergence", action="store_true")
    ap.add_argument("--draws", type=int, default=attack.DEFAULT_DRAWS)
    ap.add_argument("--words", type=int, default=attack.DEFAULT_WORDS)
    args = ap.parse_args()
    store = open_index(None, vocab_size=100_000, cache_dir=args.cache_dir)
    prior = attack.load_prior(str(DATA), store, args.words, columns=["sentence"])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python "
          f"{platform.python_version()}; default embeddings (GloVe 6B 50d, |W| = 100,000); "
          f"prior: SST-2 train, D = {prior.words} (coverage {prior.coverage:.3f}); "
          f"m = {args.draws}; seed 1\n")
    if args.ratios:
        print("| mechanism | eps | exact | sampled (95% interval) | sampled / exact | model |")
        print("|---|---:|---:|---:|---:|---|")
        for name in ("santext", "tem"):
            for eps in (3.0, 4.0):
                mech = create(name, epsilon=eps, store=store)
                exact = attack.bayes_recovery(mech, prior)["bayes_recovery"]
                est = attack.sampled_recovery(mech, prior, draws=args.draws, rng=make_rng(1))
                lo, hi = est["ci"]
                print(f"| {name} | {eps:g} | {exact:.4f} | {est['value']:.4f} ({lo:.4f}-{hi:.4f})"
                      f" | {est['value'] / exact:.3f} | {est['model']} |", flush=True)
        return
    if args.convergence:
        mech = create("santext", epsilon=3.0, store=store)
        exact = attack.bayes_recovery(mech, prior)["bayes_recovery"]
        out = attack.draw_outputs(mech, prior.ids, 2000, make_rng(1))
        print(f"santext eps 3, exact {exact:.4f}; the first m of 2,000 draws per word\n")
        print("| m | sampled | 95% interval | sampled / exact | model | raw counts only / exact |")
        print("|---:|---:|---:|---:|---|---:|")
        for m in (50, 100, 200, 500, 1000, 2000):
            half = m // 2
            est = attack.estimate(store, prior, out[:, :half], out[:, half:m])
            raw = attack.estimate(store, prior, out[:, :half], out[:, half:m], models=("counts",))
            lo, hi = est["ci"]
            print(f"| {m} | {est['value']:.4f} | {lo:.4f}-{hi:.4f} | "
                  f"{est['value'] / exact:.3f} | {est['model']} | {raw['value'] / exact:.3f} |",
                  flush=True)
        return
    print("| mechanism | eps | method | bayes_recovery (95% interval) | seconds |")
    print("|---|---:|---|---:|---:|")
    for name in args.mechs.split(","):
        mech = create(name, epsilon=EPS[name], store=store)
        mech.probabilities(0)  # one-off derived arrays (KDE prior, groups) are not timed
        t = time.perf_counter()
        r = attack.bayes_recovery(mech, prior, draws=args.draws, rng=make_rng(1))
        dt = time.perf_counter() - t
        lo, hi = r["bayes_recovery_ci"]
        ci = f" ({lo:.4f}-{hi:.4f})" if r["method"] == "sampled" else ""
        print(f"| {name} | {EPS[name]:g} | {r['method']} | {r['bayes_recovery']:.4f}{ci} | "
              f"{dt:.1f} |", flush=True)


if __name__ == "__main__":
    main()
