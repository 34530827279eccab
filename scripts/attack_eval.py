#!/usr/bin/env python3
"""Mechanisms at matched Bayes recovery on SST-2: per target recovery, each mechanism's tuned
epsilon (`dpsanitize tune`, SST-2 train as prior), the share of words it changes and the accuracy
of a classifier trained on the sanitized training text (clean test text), as Markdown.

The data is read where it lies (../shared/data/sst2), never copied. Results are cached beside the
index (as `dpsanitize eval` caches them), so a re-run only computes what is new.

    python scripts/attack_eval.py [--targets 0.1,0.2,0.3,0.5] [--mechs santext,tem,custext,gumbel]
                                  [--repeats 1] [--recovery-draws 1000] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst2"


def main() -> None:
    import warnings

    from dpsanitize.errors import PrivacyWarning
    from dpsanitize.evaluate import Dataset, evaluate, tuned_grid
    from dpsanitize.formats import read_columns
    from dpsanitize.index import open_index

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="0.1,0.2,0.3,0.5")
    ap.add_argument("--mechs", default="santext,tem,custext,gumbel")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--recovery-draws", type=int, default=None,
                    help="m for sampled mechanisms (default: attack's 1,000)")
    ap.add_argument("--classifier", default="tfidf")
    ap.add_argument("--cache-dir", default=os.environ.get("DPSANITIZE_CACHE"))
    args = ap.parse_args()
    warnings.simplefilter("ignore", PrivacyWarning)  # eval's fixed seeds: measurement only
    targets = [float(t) for t in args.targets.split(",")]
    mechs = args.mechs.split(",")

    def load(path, text):
        rows = read_columns(str(path), "tsv", [text, "label"])
        return Dataset([r[0] for r in rows], [r[1] for r in rows])

    train, test = load(DATA / "train.tsv", "sentence"), load(DATA / "test.tsv", "content")
    store = open_index(None, vocab_size=100_000, cache_dir=args.cache_dir)
    cache = os.path.join(os.path.dirname(store.path), "eval")
    unreachable = []
    t0 = time.perf_counter()
    grid = tuned_grid(train, mechs, targets, store=store, cache_dir=cache,
                      warn=unreachable.append, recovery_draws=args.recovery_draws)
    rows = evaluate(train, test, grid, store=store, repeats=args.repeats,
                    classifier=args.classifier, cache_dir=cache,
                    recovery_draws=args.recovery_draws)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python "
          f"{platform.python_version()}; data: SST-2 train ({len(train.texts):,} phrases, "
          f"sanitized; also the attacker's prior, D = 1,000) -> test ({len(test.texts):,} "
          f"sentences, clean); classifier {args.classifier}; {args.repeats} seed(s) per row; "
          f"sampled recovery with m = {args.recovery_draws or 1000}; "
          f"{time.perf_counter() - t0:.0f} s (cached parts not recomputed)\n")
    clean = rows[0]["accuracy_mean"]
    print(f"clean training text: accuracy {clean:.3f}\n")
    print("| target recovery | mechanism | tuned eps | bayes_recovery | method | words changed "
          "| accuracy |")
    print("|---:|---|---:|---:|---|---:|---:|")
    for r in sorted(rows[1:], key=lambda r: (r["target_recovery"], -r["accuracy_mean"])):
        found = next(g[3] for g in grid if g[0] == r["mechanism"] and g[2] == r["target_recovery"])
        acc = f"{r['accuracy_mean']:.3f}" + (f" ± {r['accuracy_sd']:.3f}" if args.repeats > 1
                                             else "")
        print(f"| {r['target_recovery']:g} | {r['mechanism']} | {r['epsilon']:.4g} | "
              f"{r['bayes_recovery']:.4f} | {found['method']} | {100 * r['changed']:.1f}% | "
              f"{acc} |")
    for message in unreachable:
        print(f"\nunreachable: {message}")


if __name__ == "__main__":
    main()
