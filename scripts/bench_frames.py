#!/usr/bin/env python3
"""Throughput of the data-frame functions (dpsanitize.frames) against sanitize_lines.

Generates the English-like lines of scripts/bench.py (GloVe words with Zipf frequencies), puts
them in the 'text' column of a pandas DataFrame (and a pyarrow Table), opens the index once and
times, in this process (least CPU time of --repeat calls, index already open):

- ``Sanitizer.sanitize_lines`` on the same lines (the reference: one stream, no frame);
- ``sanitize_frame`` and ``sanitize_arrow`` with ``rows_per_stream`` 1000 (default) and 1;
- the ``batch_function`` over dict batches of 1000 rows (what ``datasets.Dataset.map`` passes).

    python scripts/bench_frames.py [--tokens 200000] [--mech gumbel] [--eps 120]
                                   [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def best(fn, repeat: int) -> float:
    """The least CPU time of ``repeat`` calls (this process, all threads): on a shared machine
    the wall clock measures the neighbours."""
    times = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=200_000)
    ap.add_argument("--mech", default="gumbel")
    ap.add_argument("--eps", type=float, default=120)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()

    import pandas as pd
    import pyarrow as pa

    from bench import generate
    from dpsanitize import Sanitizer, batch_function, sanitize_arrow, sanitize_frame

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, pandas {pd.__version__}, pyarrow {pa.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "in.txt")
        n = generate(path, args.tokens)
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    print(f"data: generated English-like text, {n:,} word tokens, {len(lines):,} rows")
    s = Sanitizer(args.mech, args.eps, cache_dir=args.cache_dir)
    df = pd.DataFrame({"id": range(len(lines)), "text": lines})
    table = pa.table({"id": pa.array(range(len(lines))), "text": pa.array(lines, pa.string())})
    rows = [("Sanitizer.sanitize_lines (reference)", lambda: s.sanitize_lines(lines))]
    for r in (1000, 1):
        rows.append((f"sanitize_frame rows_per_stream={r}",
                     lambda r=r: sanitize_frame(df, "text", sanitizer=s, rows_per_stream=r)))
        rows.append((f"sanitize_arrow rows_per_stream={r}",
                     lambda r=r: sanitize_arrow(table, "text", sanitizer=s, rows_per_stream=r)))

    def batches():
        fn = batch_function(["text"], sanitizer=s)
        for a in range(0, len(lines), 1000):
            indices = list(range(a, min(a + 1000, len(lines))))
            fn({"id": indices, "text": lines[a:a + 1000]}, indices)

    rows.append(("batch_function, dict batches of 1000 rows", batches))
    reference = None
    for label, fn in rows:
        t = best(fn, args.repeat)
        reference = reference or t
        print(f"{label:<44} {n / t:>10,.0f} tokens per CPU second  ({100 * reference / t:.0f} "
              f"% of the reference)", flush=True)


if __name__ == "__main__":
    main()
