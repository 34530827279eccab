#!/usr/bin/env python3
"""Words per second of each mechanism alone (one process), on the default embeddings.

Input ids are drawn with Zipf(1) frequencies over the ranks of the vocabulary (100k words, or
--vocab-size; like running text), in batches of --batch. Also: peak memory of santext at
|W| = 20k and 100k (fresh child processes), and the cost of the cryptographically strong
default bit generator (AES-CTR) against PCG64.
For the mechanisms that decode noisy vectors exactly (laplace, mahalanobis, vickrey) it prints
the fraction of the ceiling they reach: the rate of the decoder's float32 score pass alone (the
product with every word and the per-chunk minimum, on all cores, no re-check), so that a
regression in the decoder shows as a falling fraction. For the ExpSampler mechanisms it counts
the draws that fell near a step of a fast row's CDF and were redrawn from the reference row.

    python scripts/bench_mechanisms.py [--words 200000] [--batch 65536] [--repeat 3]
                                         [--mechs a,b] [--no-memory]
    python scripts/bench_mechanisms.py --vocab-size 0 --mechs santext --row-draws 16,16385
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

CASES = [
    ("gumbel", [120, 400]), ("laplace", [10, 20, 40]), ("mahalanobis", [20, 40]),
    ("vickrey", [20, 40]), ("tem", [3, 6]), ("santext", [2, 3, 4, 6]), ("santext+", [3, 6, 8]),
    ("custext", [2, 8]), ("diffractor", [1, 4]),
]

MEMORY = """
import sys, numpy as np
from dpsanitize.index import open_index
from dpsanitize.mechanisms import create
from dpsanitize.rng import make_rng
def peak_mib():  # VmHWM: this process image only (getrusage would include the parent's)
    with open("/proc/self/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("VmHWM"))) / 1024
store = open_index(None, vocab_size=int(sys.argv[1]), cache_dir=sys.argv[2] or None)
before = peak_mib()
rng = make_rng(0)
n = len(store.vocab)
p = 1.0 / np.arange(1, n + 1); p /= p.sum()
mech = create("santext", epsilon=float(sys.argv[3]), store=store)
for _ in range(4):
    mech.perturb(rng.choice(n, 65536, p=p), rng)
print(before, peak_mib())
"""


def zipf_ids(rng, n_vocab, n):
    import numpy as np

    p = 1.0 / np.arange(1, n_vocab + 1)
    p /= p.sum()
    return rng.choice(n_vocab, n, p=p)


def rate(mech, ids, rng, batch, repeat) -> float:
    """Words per second, best of ``repeat`` passes (the least disturbed by the machine)."""
    best = 0.0
    for _ in range(repeat):
        t = time.perf_counter()
        for s in range(0, len(ids), batch):
            mech.perturb(ids[s:s + batch], rng)
        best = max(best, len(ids) / (time.perf_counter() - t))
    return best


def score_pass_ceiling(store, queries: int = 4096, repeat: int = 3) -> float:
    """Words per second of the exact decoder's float32 pass alone (its upper bound)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from threadpoolctl import threadpool_limits

    bf = store.brute_force
    y = np.random.default_rng(0).normal(size=(queries, store.vocab.dim)).astype(np.float32)
    lhs = np.hstack([y, np.ones((queries, 1), np.float32)])
    starts = range(0, bf.x.shape[0], bf._chunk)

    def one_block(b):
        part = lhs[b:b + bf._block]
        mins = np.empty((len(part), len(starts)), np.float32)
        for c, start in enumerate(starts):
            np.min(part @ bf._rhs_t[:, start:start + bf._chunk], axis=1, out=mins[:, c])

    best = 0.0
    with ThreadPoolExecutor(bf._threads) as pool, threadpool_limits(1, user_api="blas"):
        for _ in range(repeat):
            t = time.perf_counter()
            list(pool.map(one_block, range(0, queries, bf._block)))
            best = max(best, queries / (time.perf_counter() - t))
    return best


DECODED = ("laplace", "mahalanobis", "vickrey")
SAMPLERS = ("tem", "santext", "santext+")  # those of CASES drawing with an ExpSampler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--words", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=65536)
    ap.add_argument("--repeat", type=int, default=3, help="passes per figure; the best is shown")
    ap.add_argument("--cache-dir", default="")
    ap.add_argument("--mechs", default="", help="comma-separated subset, e.g. laplace,vickrey")
    ap.add_argument("--no-memory", action="store_true", help="skip the santext memory runs")
    ap.add_argument("--vocab-size", type=int, default=100_000, help="0: every word")
    ap.add_argument("--row-draws", default="", help="santext, tem, santext+, density: a row per "
                    "figure for each value, e.g. 16,16385 (16385: rejection only)")
    args = ap.parse_args()
    wanted = set(filter(None, args.mechs.split(",")))

    import numpy as np

    from dpsanitize.index import open_index
    from dpsanitize.mechanisms import create
    from dpsanitize.rng import make_rng

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    store = open_index(None, vocab_size=args.vocab_size, cache_dir=args.cache_dir or None)
    float(np.asarray(store.nbr_dist).sum() + np.asarray(store.nbr_ids).sum())  # page in the table
    ids = zipf_ids(np.random.default_rng(0), len(store.vocab), args.words)
    print(f"data: default embeddings, |W| = {len(store.vocab)}; {args.words:,} Zipf(1) word ids, "
          f"batches of {args.batch}; best of {args.repeat} passes\n")
    ceiling = score_pass_ceiling(store, repeat=args.repeat)
    print(f"exact decoder's float32 score pass alone (the ceiling of laplace, mahalanobis, "
          f"vickrey when every word must be scored): {ceiling:,.0f} words/s\n")
    row_draws = [int(v) for v in args.row_draws.split(",") if v]
    print("| mechanism | eps | words/s (AES-CTR, default) | of the ceiling | words/s (PCG64) | "
          "set-up s | reference redraws per 10^6 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, grid in CASES:
        if wanted and name not in wanted:
            continue
        variants = row_draws if row_draws and name in SAMPLERS else [None]
        for eps, draws in ((e, d) for e in grid for d in variants):
            t = time.perf_counter()
            mech = create(name, epsilon=eps, store=store)
            setup = time.perf_counter() - t
            label = name
            if draws is not None:
                mech.sampler.row_draws = draws
                label = f"{name} (row_draws {draws})"
            n = args.words if name not in DECODED or eps >= 40 \
                else args.words // 10
            sub = ids[:n]
            mech.perturb(sub[:1000], make_rng(0))  # warm caches (annoy pages, row cache)
            sampler = getattr(mech, "sampler", None)
            before = getattr(sampler, "reference_rows_used", None)
            aes = rate(mech, sub, make_rng(1), args.batch, args.repeat)
            redraws = "" if before is None else \
                f"{(sampler.reference_rows_used - before) / (args.repeat * n) * 1e6:.1f}"
            pcg = rate(mech, sub, make_rng(1, bit_generator="pcg64"), args.batch, args.repeat)
            share = f"{aes / ceiling:.0%}" if name in DECODED else ""
            print(f"| {label} | {eps:g} | {aes:,.0f} | {share} | {pcg:,.0f} | {setup:.2f} | "
                  f"{redraws} |", flush=True)
    t = time.perf_counter()
    store.reference_rows([0, 1, 2, 3])
    print(f"\na row by the reference metric (the sampler's redraw near a CDF step): "
          f"{(time.perf_counter() - t) / 4 * 1e3:.0f} ms")

    if args.no_memory:
        return
    print("\nsantext peak memory (fresh process; RSS after opening the index -> after 4 batches "
          "of 65536):")
    cache = ["--cache-dir", args.cache_dir] if args.cache_dir else []
    for vocab_size in (20_000, 100_000):
        subprocess.run([sys.executable, "-m", "dpsanitize", "index", "build", "-q", "--vocab-size",
                        str(vocab_size), *cache], check=True)
        for eps in (3.0,):
            out = subprocess.run([sys.executable, "-c", MEMORY, str(vocab_size), args.cache_dir,
                                  str(eps)], capture_output=True, text=True, check=True)
            before, after = map(float, out.stdout.split())
            print(f"  |W| = {vocab_size:>6}: eps={eps:g}: {before:.0f} MiB -> {after:.0f} MiB "
                  f"(+{after - before:.0f} MiB for the mechanism; a |W| x |W| float64 matrix "
                  f"would be {8 * vocab_size ** 2 / 2 ** 20:,.0f} MiB)")


if __name__ == "__main__":
    main()
