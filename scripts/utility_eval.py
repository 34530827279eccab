#!/usr/bin/env python3
"""README's utility table: `dpsanitize eval` on SST-2 (train sanitized, clean test), as Markdown.

Runs the command with the README's grid (results are cached, so a re-run only computes what is
new), writes the plot, and prints the table sorted by mechanism and N_w. The data is read where
it lies (../shared/data/sst2), never copied.

    python scripts/utility_eval.py [--repeats 2] [--plot examples/sst2-eval.png] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst2"
GRID = "gumbel=84,120,400;laplace=10,20;density=3,4,6;tem=3,4,6;santext=3,4,6;custext=3,8"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--grid", default=GRID)
    ap.add_argument("--plot", default=str(Path(__file__).resolve().parents[1] / "examples" /
                                          "sst2-eval.png"))
    ap.add_argument("--classifier", default="tfidf")
    ap.add_argument("--cache-dir", default="")
    args = ap.parse_args()
    mechs = [part.split("=")[0] for part in args.grid.split(";")]
    cmd = [sys.executable, "-m", "dpsanitize", "eval", str(DATA / "train.tsv"), "--text-column",
           "sentence", "--label-column", "label", "--test", str(DATA / "test.tsv"),
           "--test-text-column", "content",
           *[a for m in mechs for a in ("--mech", m)], "--eps", args.grid, "--repeats",
           str(args.repeats), "--classifier", args.classifier, "--plot", args.plot, "--force",
           "--json", "-q", *(["--cache-dir", args.cache_dir] if args.cache_dir else [])]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; data: SST-2 train ({out['train']:,} phrases, sanitized) "
          f"-> test ({out['test']:,} sentences, clean); classifier {out['classifier']}; "
          f"{out['repeats']} seeds per row; N_w, S_w: 50 words of the training text spread over "
          f"its frequency ranks, 200 draws each\n")
    print("| mechanism | epsilon | words changed | mean N_w | mean S_w | accuracy (mean ± sd) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in sorted(out["rows"], key=lambda r: (r["mechanism"] != "none", r["mechanism"],
                                                  -r["N_w"])):
        eps = "" if r["epsilon"] is None else f"{r['epsilon']:g}"
        print(f"| {r['mechanism']} | {eps} | {100 * r['changed']:.0f}% | {r['N_w']:.3f} | "
              f"{r['S_w']:.1f} | {r['accuracy_mean']:.3f} ± {r['accuracy_sd']:.3f} |")


if __name__ == "__main__":
    main()
