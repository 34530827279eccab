"""The pool engine: the blocks of a stream on worker processes, in order, with bounded memory.

Each worker opens the same cached index entry (memory-mapped, so the pages are shared) and
builds the same mechanism from its recipe (once per process, :class:`..stream.RewriterSpec`);
block i is rewritten with the generator spawned for block i, so the output is byte for byte
what one process writes with the same seed. Blocks of a regular file travel as
:class:`..stream.FileSpan`s (path, offset, size): the worker reads its bytes itself, and the
main process only finds the line boundaries, hands out spans and writes the results in order.
At most four blocks per worker are in flight (a slow block does not idle the others). Workers
ignore SIGINT/SIGTERM: the main process decides, and kills them when it stops early.

Example::

    for data, counts in run(BlockTask(spec, "utf-8"), blocks, workers=2):
        ...
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal

from ..errors import DpsanitizeError
from . import in_order


class WorkerError(DpsanitizeError):
    """A worker process failed to start or died (exit 70)."""


def run(task, items, workers: int):
    """Yield ``task(block)`` for each block of ``items`` (a picklable task), in order, on
    ``workers`` processes; any other item is yielded as it is, in its place."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from ..geometry import usable_cpus

    share = max(1, usable_cpus() // workers)  # threads per worker: no oversubscription
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start, initargs=(share, task))
    # The pending blocks are cancelled by the pool's shutdown, in its own thread: cancelling
    # them here races with that thread marking them broken (InvalidStateError there).
    results = in_order(items, lambda b: pool.submit(task, b), 4 * workers, cancel=False,
                       result=lambda future: _result(pool, future))
    try:
        with spawn_environment(share):  # the pool starts its processes as blocks arrive
            yield from results
    except BrokenProcessPool:
        raise WorkerError("a worker process failed to start or died (out of memory?); "
                          "no output written") from None
    finally:
        results.close()
        _stop(pool)


def _result(pool, future, every: float = 0.5):
    """``future.result()``, except that a dead worker ends the wait. A worker killed while it
    writes a result leaves half a message in the result pipe; the pool's manager thread then
    waits for the rest for ever, and never marks the future broken (``scripts/stress_pool.py``:
    6 runs in 16 hung so before 0.4.2)."""
    from concurrent.futures.process import BrokenProcessPool

    while True:
        try:
            return future.result(timeout=every)
        except TimeoutError:
            if any(p.exitcode is not None for p in list((pool._processes or {}).values())):
                raise BrokenProcessPool("a worker process died") from None


@contextlib.contextmanager
def spawn_environment(threads: int):
    """Processes started meanwhile size their BLAS pools to ``threads``. It has to be in their
    environment: numpy creates its pool on import, before a pool initializer runs, and an idle
    OpenBLAS thread spins 50-90 ms when created and ~120 ms after a product
    (``scripts/blas_spin.py``), so 16 workers with 16-thread pools would burn the cores they
    are meant to use."""
    saved = {name: os.environ.get(name) for name in BLAS_VARIABLES}
    os.environ.update(dict.fromkeys(BLAS_VARIABLES, str(threads)))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


BLAS_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _stop(pool, patience: float = 5.0) -> None:
    """Kill the workers now (an interrupted run must not wait for blocks in flight), and end
    the pool.

    A worker killed while it writes a result leaves half a message in the result pipe, and the
    pool's manager thread then waits for the rest for ever (runs hung so, stopped by SIGTERM or
    with a worker killed). Once the workers are dead, this process holds the pipe's last
    writing end: closing it gives that thread end-of-file, and it ends. The pool itself only
    writes to that pipe from its workers, and closes it after its manager thread has ended.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    if hasattr(pool, "kill_workers"):  # Python 3.14+
        pool.kill_workers()
    else:
        for process in processes:
            process.kill()
    for process in processes:
        process.join(patience)
    queue, manager = pool._result_queue, pool._executor_manager_thread
    pool.shutdown(wait=False, cancel_futures=True)
    if queue is not None:
        queue._writer.close()
    if manager is not None:
        manager.join(patience)
    if queue is not None:
        queue.close()


def _start(threads, task=None) -> None:
    """Ignore signals, size the thread pools, and build the task's state (index, mechanism)
    before taking blocks, so a worker is busy in here, not holding the queue, while it starts."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for name in ("DPSANITIZE_THREADS", *BLAS_VARIABLES):  # for pools loaded later (scipy's)
        os.environ[name] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)  # for the ones loaded already (numpy's)
    if task is not None and hasattr(task, "prepare"):
        task.prepare()
