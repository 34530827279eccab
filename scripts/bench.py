#!/usr/bin/env python3
"""End-to-end throughput of `dpsanitize run` (file to file, warm cache), per mechanism.

Generates an English-like file of about --tokens word tokens (GloVe vocabulary words drawn with
Zipf frequencies, sentence case, punctuation, 8-30 words a line, a few out-of-vocabulary names),
then for each mechanism times `dpsanitize run` in a fresh process (best of --repeat) and reports
tokens/s, start-up time (same command on an empty file) and peak memory. The floor is a plain
Python loop that tokenizes the same file and writes it back unchanged.

    python scripts/bench.py [--tokens 1000000] [--mechs gumbel,laplace] [--eps gumbel=120,...]
                            [--workers 1,2]
    python scripts/bench.py --long-line-mb 10 --mechs gumbel    # one 10 MB line: peak memory
    python scripts/bench.py --formats text,csv,jsonl             # the same words as CSV, JSONL
    python scripts/bench.py --formats text,parquet,parquet-1rg   # Parquet: 10 row groups vs 1
    python scripts/bench.py --files 200 --workers 1,2            # the same lines as 200 files
    python scripts/bench.py --engines local,dask --workers 2     # Dask local cluster vs processes
    python scripts/bench.py --mechs laplace --run-args "--device cuda"   # more run options
    python scripts/bench.py --cores 1,2,4,8,16   # on n CPUs with --workers n: scaling curve
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from itertools import product

DEFAULT_EPS = {"gumbel": 120, "laplace": 20, "mahalanobis": 20, "vickrey": 20, "tem": 10,
               "santext": 10, "santext+": 10, "custext": 10}


def generate(path: str, tokens: int, seed: int = 0) -> int:
    import numpy as np

    from dpsanitize.embeddings import load_vocabulary

    vocab, _ = load_vocabulary(None, "auto", 100_000)
    alpha = [i for i, w in enumerate(vocab.words) if re.fullmatch(r"[a-z]+(?:'[a-z]+)?", w)]
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, len(alpha) + 1)
    p = 1.0 / ranks
    p /= p.sum()
    draws = rng.choice(len(alpha), tokens, p=p)
    names = ["Zorvex", "Quillan", "Brightwater-7", "id_4417", "Marchetti"]
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        pos = 0
        while pos < tokens:
            n = int(rng.integers(8, 31))
            words = [vocab.words[alpha[i]] for i in draws[pos:pos + n]]
            if rng.random() < 0.3:
                words[int(rng.integers(len(words)))] = names[int(rng.integers(len(names)))]
            words[0] = words[0].capitalize()
            line = " ".join(words)
            line = re.sub(r" (\w+) ", lambda m: f" {m.group(1)}, " if rng.random() < 0.05 else m.group(0), line)
            f.write(line + ".\n")
            pos += n
            written += len(words)
    return written


def baseline(path: str, out: str) -> float:
    """A plain Python loop: tokenize and rewrite unchanged (the floor for this design)."""
    from dpsanitize.text import split

    t = time.perf_counter()
    with open(path, "rb") as src, open(out, "wb") as dst:
        for line in src:
            parts = split(line.decode("utf-8"))
            parts[1::2] = [w for w in parts[1::2]]
            dst.write("".join(parts).encode("utf-8"))
    return time.perf_counter() - t


PEAK = """
import atexit, sys

def peak():
    # VmHWM belongs to this process image; getrusage's maxrss would include the parent's.
    # Worker processes: the largest one's maxrss (RUSAGE_CHILDREN, in KiB on Linux).
    import resource
    with open("/proc/self/status") as f:
        kib = next(line.split()[1] for line in f if line.startswith("VmHWM"))
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    own = resource.getrusage(resource.RUSAGE_SELF)
    sys.stderr.write(f"VmHWM {kib} {worker} {own.ru_utime + own.ru_stime}\\n")

atexit.register(peak)
from dpsanitize.cli import main
sys.argv[0] = "dpsanitize"
main()
"""


def timed_run(args: list[str], cores: int = 0) -> tuple[float, float, float, float]:
    """Wall time, peak RSS (MiB) of the `dpsanitize` process and of its largest worker, and the
    CPU seconds of the `dpsanitize` process itself (workers not included). With ``cores`` the
    run may use CPUs 0..cores-1 only (sched_setaffinity, as taskset does)."""
    pin = (lambda: os.sched_setaffinity(0, range(cores))) if cores else None
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", PEAK, *args], preexec_fn=pin,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        raise SystemExit(f"dpsanitize {' '.join(args)} exited {res.returncode}")
    main_kib, worker_kib, cpu = res.stderr.split("VmHWM")[-1].split()
    return wall, int(main_kib) / 1024, int(worker_kib) / 1024, float(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--mechs", default="gumbel,laplace")
    ap.add_argument("--eps", default="", help="overrides, e.g. gumbel=150,laplace=30")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cache-dir", default=None, help="default: a warm temporary cache")
    ap.add_argument("--workers", default="1", help="comma-separated, e.g. 1,2")
    ap.add_argument("--cores", default="",
                    help="instead of --workers: e.g. 1,2,4 runs on CPUs 0..n-1 only "
                         "(sched_setaffinity) with --workers n: the scaling curve")
    ap.add_argument("--engines", default="local", help="local,dask")
    ap.add_argument("--files", type=int, default=0,
                    help="also: the same lines split into this many files, run with --output-dir")
    ap.add_argument("--formats", default="text",
                    help="text,csv,jsonl,parquet,parquet-1rg: the same lines as a CSV column / "
                         "JSON field / Parquet column (10 row groups; parquet-1rg: one)")
    ap.add_argument("--run-args", default="", help="more run options, e.g. '--device cuda'")
    ap.add_argument("--long-line-mb", type=float, default=0,
                    help="instead: one line of this many MB, and the peak memory it costs")
    args = ap.parse_args()
    eps = dict(DEFAULT_EPS)
    for item in filter(None, args.eps.split(",")):
        k, v = item.split("=")
        eps[k] = float(v)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache_dir or os.path.join(tmp, "cache")
        src = os.path.join(tmp, "in.txt")
        if args.long_line_mb:
            return long_line(args, eps, cache, tmp)
        n = generate(src, args.tokens)
        size = os.path.getsize(src)
        print(f"data: generated English-like text, {n:,} word tokens, {size / 1e6:.1f} MB")
        empty = os.path.join(tmp, "empty.txt")
        open(empty, "w").close()
        base = min(baseline(src, os.path.join(tmp, "base.txt")) for _ in range(args.repeat))
        print(f"{'plain Python tokenize+rewrite loop':<40} {n / base:>12,.0f} tokens/s")
        subprocess.run([sys.executable, "-m", "dpsanitize", "index", "build", "--cache-dir", cache,
                        "-q"], check=True)
        inputs = structured(src, tmp, args.formats.split(","))
        if args.files:
            inputs.append(split_files(src, tmp, args.files))
        counts = args.cores.split(",") if args.cores else args.workers.split(",")
        for mech in args.mechs.split(","):
            for engine, workers, (fmt, path, extra) in product(
                    args.engines.split(","), counts, inputs):
                cores = int(workers) if args.cores else 0
                common = ["--mech", mech, "--eps", str(eps[mech]), "--cache-dir", cache, "-q",
                          "--force", "--workers", workers, "--engine", engine, *extra,
                          *shlex.split(args.run_args)]
                ext = os.path.splitext(path)[1]
                blank = os.path.join(tmp, "empty" + ext)
                if fmt == "files":  # an empty folder; the outputs go to a folder too
                    os.makedirs(blank, exist_ok=True)
                    common += ["-r", "--output-dir", os.path.join(tmp, "out-files")]
                    out0 = out1 = []
                else:
                    empty_input(fmt, blank)
                    out0, out1 = [os.path.join(tmp, "o0" + ext)], [os.path.join(tmp, "o1" + ext)]
                startup = min(timed_run(["run", *common, blank, *out0], cores)[0]
                              for _ in range(args.repeat))
                runs = [timed_run(["run", *common, path, *out1], cores)
                        for _ in range(args.repeat)]
                best, peak = min(r[0] for r in runs), max(r[1] for r in runs)
                worker_peak = max(r[2] for r in runs)
                main_cpu = min(r[3] for r in runs)
                label = f"dpsanitize run --mech {mech} --eps {eps[mech]} --workers {workers}"
                label += {"text": "", "files": f" ({args.files} files)"}.get(fmt, f" ({fmt})")
                label += " --engine dask" if engine == "dask" else ""
                label += f" {args.run_args}" if args.run_args else ""
                label += f" on {workers} cores" if args.cores else ""
                workers_note = (f", largest worker {worker_peak:.0f} MiB; main process CPU "
                                f"{main_cpu:.2f} s" if workers != "1" else
                                f"; CPU {main_cpu:.2f} s: {n / main_cpu:,.0f} tokens per CPU "
                                f"second")
                print(f"{label:<52} {n / best:>12,.0f} tokens/s   (wall {best:.2f} s incl. start-up "
                      f"{startup:.2f} s; peak RSS {peak:.0f} MiB{workers_note})", flush=True)


def split_files(src: str, tmp: str, files: int) -> tuple[str, str, list[str]]:
    """The text file's lines dealt round-robin into ``files`` files in one folder."""
    folder = os.path.join(tmp, "files")
    os.makedirs(folder, exist_ok=True)
    with open(src, encoding="utf-8") as f:
        lines = f.readlines()
    for k in range(files):
        with open(os.path.join(folder, f"part{k:05}.txt"), "w", encoding="utf-8") as f:
            f.writelines(lines[k::files])
    return "files", folder, []


def structured(src: str, tmp: str, formats: list[str]) -> list[tuple[str, str, list[str]]]:
    """The text file's lines as the 'text' column of a CSV and the 'text' field of JSON lines,
    beside an id and a label: ``(format, path, extra run options)``."""
    import csv
    import json

    with open(src, encoding="utf-8") as f:
        lines = f.read().splitlines()
    out = []
    for fmt in formats:
        if fmt == "text":
            out.append(("text", src, []))
            continue
        if fmt.startswith("parquet"):
            path = os.path.join(tmp, f"in-{fmt}.parquet")
            write_parquet(path, lines, row_groups=1 if fmt == "parquet-1rg" else 10)
            out.append((fmt, path, ["--column", "text"]))
            continue
        path = os.path.join(tmp, f"in.{fmt}")
        with open(path, "w", encoding="utf-8", newline="") as f:
            if fmt == "csv":
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow(["id", "text", "label"])
                writer.writerows([i, line, i % 2] for i, line in enumerate(lines))
            else:
                f.writelines(json.dumps({"id": i, "text": line, "label": i % 2}) + "\n"
                             for i, line in enumerate(lines))
        out.append((fmt, path, ["--column", "text"]))
    return out


def write_parquet(path: str, lines: list[str], row_groups: int) -> None:
    """The lines as the 'text' column beside an id and a label, in ``row_groups`` row groups
    (snappy, pyarrow's default)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": pa.array(range(len(lines)), pa.int64()),
                      "text": pa.array(lines, pa.string()),
                      "label": pa.array([i % 2 for i in range(len(lines))], pa.int8())})
    pq.write_table(table, path, row_group_size=max(1, -(-len(lines) // row_groups)))


def empty_input(fmt: str, path: str) -> None:
    """An input with no records, for the start-up time."""
    if fmt.startswith("parquet"):
        write_parquet(path, [], 1)
    else:
        open(path, "w").close()


def long_line(args, eps: dict, cache: str, tmp: str) -> None:
    """Peak RSS of `dpsanitize run` on a file that is one long line, against the line's size."""
    src = os.path.join(tmp, "long.txt")
    generate(src, int(args.long_line_mb * 1e6 / 6.2))  # about 6.2 bytes per token with spaces
    with open(src, "rb") as f:
        line = f.read().replace(b"\n", b" ")
    line = line[:int(args.long_line_mb * 1e6)].rsplit(b" ", 1)[0] + b"\n"
    with open(src, "wb") as f:
        f.write(line)
    lines = os.path.join(tmp, "lines.txt")  # the same bytes, a newline every 100 tokens or so
    with open(lines, "wb") as f:
        words = line.split(b" ")
        f.write(b"\n".join(b" ".join(words[i:i + 100]) for i in range(0, len(words), 100)))
    mb = len(line) / 2**20
    print(f"data: one line of {len(line):,} bytes ({mb:.1f} MiB), {line.count(b' ') + 1:,} tokens")
    subprocess.run([sys.executable, "-m", "dpsanitize", "index", "build", "--cache-dir", cache,
                    "-q"], check=True)
    empty = os.path.join(tmp, "empty.txt")
    open(empty, "w").close()
    for mech in args.mechs.split(","):
        common = ["--mech", mech, "--eps", str(eps[mech]), "--cache-dir", cache, "-q", "--force",
                  "--max-line-bytes", str(len(line) + 1)]
        _, idle, _, _ = timed_run(["run", *common, empty, os.path.join(tmp, "o0")])
        _, normal, _, _ = timed_run(["run", *common, lines, os.path.join(tmp, "o0")])
        wall, peak, _, _ = timed_run(["run", *common, src, os.path.join(tmp, "o1")])
        print(f"dpsanitize run --mech {mech} --eps {eps[mech]}: peak RSS {peak:.0f} MiB on the "
              f"line ({wall:.1f} s); {normal:.0f} MiB on the same bytes in lines of 100 tokens; "
              f"{idle:.0f} MiB on an empty file. The line costs {peak - normal:+.0f} MiB over "
              f"short lines, {(peak - idle) / mb:.1f} x its size over an empty file", flush=True)


if __name__ == "__main__":
    main()
