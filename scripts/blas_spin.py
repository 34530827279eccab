#!/usr/bin/env python3
"""CPU time that numpy's idle BLAS threads spend spinning: why worker processes start with
their BLAS pools sized to their share of the CPUs (`dpsanitize.engines.pool.spawn_environment`).

Prints, per thread of this process (from /proc/self/task, Linux), the CPU time used after
importing numpy and sleeping, then after one 500x500 matrix product and sleeping: the main
thread does the work, every other thread is the BLAS pool waiting for work.

    python scripts/blas_spin.py
    OPENBLAS_NUM_THREADS=1 python scripts/blas_spin.py    # what a worker of a 16-way pool gets
"""

from __future__ import annotations

import os
import platform
import time


def thread_cpu_ms() -> list[int]:
    """CPU milliseconds (user + system) of each thread of this process, main thread first."""
    tick = 1000 / os.sysconf("SC_CLK_TCK")
    out = []
    for tid in sorted(os.listdir("/proc/self/task"), key=int):
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out.append(round((int(fields[11]) + int(fields[12])) * tick))
    return out


def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    import numpy as np

    time.sleep(1.0)
    after_import = thread_cpu_ms()
    a = np.random.default_rng(0).random((500, 500))
    a @ a
    time.sleep(1.0)
    after_product = thread_cpu_ms()
    print(f"numpy {np.__version__}: {len(after_import)} threads")
    print(f"after import, idle 1 s:      main {after_import[0]} ms; other threads "
          f"{after_import[1:]} ms")
    spent = [b - a for a, b in zip(after_import[1:], after_product[1:])]
    print(f"after one product, idle 1 s: main +{after_product[0] - after_import[0]} ms; other "
          f"threads +{spent} ms")


if __name__ == "__main__":
    main()
