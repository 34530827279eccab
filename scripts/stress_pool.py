#!/usr/bin/env python3
"""Kill a worker of the pool engine at a random moment, many times over, and count how the
runs end: every run must end with WorkerError (exit 70), none may hang.

Each block's result is large (8 MiB by default), so a worker is often killed while it writes
one: the case that left half a message in the pool's result pipe and hung runs before 0.4.2.

    python scripts/stress_pool.py [--runs 40] [--result-mib 8] [--hang-after 30]

Prints one line: how many runs ended how (``HANG`` for a run still going after
--hang-after seconds). Run it beside a few busy loops to add load.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # workers import this module


class BigResult:
    """A pool task whose result is ``mib`` MiB of bytes."""

    def __init__(self, mib: int):
        self.mib = mib

    def __call__(self, block):
        return b"x" * (self.mib << 20)


def one_run(result_mib: int, hang_after: float, rng: random.Random) -> str:
    from dpsanitize.engines import pool
    from dpsanitize.stream import Block

    ended = []

    def run():
        try:
            for _ in pool.run(BigResult(result_mib), (Block(i, 1, b"") for i in range(400)), 2):
                pass
            ended.append("finished")
        except Exception as exc:  # noqa: BLE001 - counted by name
            ended.append(type(exc).__name__)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(1.0 + rng.random())
    workers = [pid for pid in _children(os.getpid())
               if b"resource_tracker" not in open(f"/proc/{pid}/cmdline", "rb").read()]
    if workers:
        os.kill(workers[0], signal.SIGKILL)
    thread.join(hang_after)
    return "HANG" if thread.is_alive() else ended[0]


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--result-mib", type=int, default=8)
    ap.add_argument("--hang-after", type=float, default=30.0)
    args = ap.parse_args()
    rng = random.Random(0)
    counts = Counter(one_run(args.result_mib, args.hang_after, rng) for _ in range(args.runs))
    print(f"{args.runs} runs, a worker killed in each: " +
          ", ".join(f"{name} {n}" for name, n in counts.most_common()), flush=True)
    os._exit(0)  # a hung run's threads would keep the interpreter alive


if __name__ == "__main__":
    main()
