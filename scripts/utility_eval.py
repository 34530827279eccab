#!/usr/bin/env python3
"""Utility of sanitized text: sentiment accuracy on SST-2 when the classifier trains on dpsanitize output.

The data owner's story: release a sanitized copy of the training text, let someone train a model
on it, and ask how good that model is on real text. For each mechanism and epsilon the SST-2
training set (67,349 phrases) is sanitized with the default embeddings, a TF-IDF (words and word
pairs) + logistic-regression classifier is trained on it, and its accuracy is measured on the
clean SST-2 test set (1,821 sentences). The first row trains on the clean text (no privacy).
Each setting is repeated with --repeats seeds (the seeds are fixed so the table can be re-run).

    python scripts/utility_eval.py [--data ../shared/data/sst2] [--repeats 3]
                                   [--mechs gumbel,laplace,...] [--eps gumbel=84,120;laplace=10]

Needs scikit-learn (a dependency already). The data is read where it lies, never copied.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst2"
GRID = {
    "gumbel": "floor",  # the floor times FLOOR_FACTORS
    "laplace": [10, 20, 40],
    "mahalanobis": [10, 20, 40],
    "vickrey": [20, 40],
    "tem": [2, 4, 8],
    "santext": [2, 4, 8],
    "santext+": [2, 4, 8],
    "custext": [1, 3, 8],
}
FLOOR_FACTORS = [1.05, 1.5, 2, 4]


def read_tsv(path: Path) -> tuple[list[str], list[int]]:
    """(texts, labels) of an SST-2 file: label in column 1, text in column 2, one header row."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [r[1] for r in rows], [int(r[0]) for r in rows]


def accuracy(train_texts, train_labels, test_texts, test_labels) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                          LogisticRegression(C=4.0, max_iter=2000))
    model.fit(train_texts, train_labels)
    return float((model.predict(test_texts) == test_labels).mean())


def parse_eps(spec: str) -> dict[str, list[float]]:
    """``gumbel=84,120;laplace=10`` -> {"gumbel": [84, 120], "laplace": [10]}."""
    out = {}
    for part in filter(None, spec.split(";")):
        name, values = part.split("=")
        out[name.strip()] = [float(v) for v in values.split(",")]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mechs", default=",".join(GRID))
    ap.add_argument("--eps", default="", help="override grids, e.g. 'gumbel=84,120;laplace=10'")
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()

    import numpy as np

    from dpsanitize.index import open_index
    from dpsanitize.mechanisms import create
    from dpsanitize.mechanisms.gumbel import epsilon_floor
    from dpsanitize.pipeline import Sanitizer

    train_x, train_y = read_tsv(args.data / "train.tsv")
    test_x, test_y = read_tsv(args.data / "test.tsv")
    test_y = np.array(test_y)
    store = open_index(None, vocab_size=100_000, cache_dir=args.cache_dir)
    n_tokens = sum(len(t.split()) for t in train_x)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"data: SST-2 train {len(train_x):,} phrases ({n_tokens:,} tokens) -> sanitized; "
          f"test {len(test_x):,} sentences, clean; default embeddings |W| = {len(store.vocab):,}; "
          f"TF-IDF 1-2 grams + logistic regression; {args.repeats} seeds per row\n")
    print("| mechanism | epsilon | words changed | accuracy (mean ± sd) |")
    print("|---|---:|---:|---:|")
    print(f"| none (clean training text) | | 0% | {accuracy(train_x, train_y, test_x, test_y):.3f} |",
          flush=True)

    overrides = parse_eps(args.eps)
    floor = epsilon_floor(len(store.vocab), store.d_min)
    for name in filter(None, args.mechs.split(",")):
        grid = overrides.get(name) or GRID[name]
        if grid == "floor":
            grid = [round(floor * f, 1) for f in FLOOR_FACTORS]
        for eps in grid:
            mech = create(name, epsilon=eps, store=store)
            accs, changed = [], []
            for seed in range(args.repeats):
                s = Sanitizer(mech, seed=seed)
                sanitized = s.sanitize_lines(train_x)
                c = s.counters
                changed.append(c.replaced / max(1, c.words - c.oov))
                accs.append(accuracy(sanitized, train_y, test_x, test_y))
            sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
            print(f"| {name} | {eps:g} | {100 * np.mean(changed):.0f}% | {np.mean(accs):.3f} ± "
                  f"{sd:.3f} |", flush=True)


if __name__ == "__main__":
    main()
