"""Sanitize the blocks of a stream on worker processes, in order, with bounded memory.

Each worker opens the same cached index entry (memory-mapped, so the pages are shared) and
builds the same mechanism; block i is rewritten with the generator spawned for block i, so the
output is byte for byte what one process writes with the same seed. Blocks of a regular file
travel as :class:`.pipeline.FileSpan`s (path, offset, size): the worker reads its bytes itself,
and the main process only finds the line boundaries, hands out spans and writes the results
in order. At most four blocks per worker are in flight (a slow block does not idle the others).
Workers ignore SIGINT/SIGTERM: the main process decides, and kills them when it stops early.

Example::

    sanitizer.sanitize_stream(src, dst, workers=2)   # calls sanitize_chunks
    sanitizer.process(blocks_of_many_files, "utf-8", workers=2)
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import signal

from .errors import DpsanitizeError, InvalidParameter

_sanitizer = None  # this worker process's Sanitizer


class WorkerError(DpsanitizeError):
    """A worker process failed to start or died (exit 70)."""


class _Submitted:
    """A block handed to an executor: its future, told apart from markers."""

    __slots__ = ("future",)

    def __init__(self, future):
        self.future = future


def in_order(items, submit, limit: int):
    """Yield ``submit(block).result()`` for each ``pipeline.Block`` of ``items`` and every other
    item as it is, in the order of ``items``, with at most ``limit`` blocks in flight.

    ``submit`` returns a future (concurrent.futures or Dask). A marker at the head goes out at
    once, a block's result as soon as it is done (or when the pool is full); on exit the
    blocks still pending are cancelled.
    """
    from .pipeline import Block

    pending = collections.deque()
    in_flight = 0

    def next_result():
        nonlocal in_flight
        item = pending.popleft()
        if isinstance(item, _Submitted):
            in_flight -= 1
            return item.future.result()
        return item

    try:
        for item in items:
            if isinstance(item, Block):
                pending.append(_Submitted(submit(item)))
                in_flight += 1
            else:
                pending.append(item)
            while pending and (not isinstance(pending[0], _Submitted) or
                               pending[0].future.done() or in_flight >= limit):
                yield next_result()
        while pending:
            yield next_result()
    finally:
        for item in pending:
            if isinstance(item, _Submitted):
                item.future.cancel()


def sanitize_chunks(sanitizer, items, encoding: str, workers: int):
    """Yield ``(bytes, Counters)`` for each ``pipeline.Block`` of ``items``, in order, on
    ``workers`` processes; any other item is yielded as it is, in its place."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from .geometry import usable_cpus

    if sanitizer.seed_sequence is None:
        raise InvalidParameter("workers need a sanitizer seeded by seed=, not rng=")
    share = max(1, usable_cpus() // workers)  # threads per worker: no oversubscription
    spec = (sanitizer.store.path, sanitizer.mechanism.recipe,
            {"oov": sanitizer.oov, "oov_token": sanitizer.oov_token,
             "bit_generator": sanitizer.bit_generator}, sanitizer.seed_sequence, share)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start, initargs=spec)
    results = in_order(items, lambda b: pool.submit(_sanitize, b.index, b.first_line, b.data,
                                                    encoding, b.fmt), 4 * workers)
    try:
        with spawn_environment(share):  # the pool starts its processes as blocks arrive
            yield from results
    except BrokenProcessPool:
        raise WorkerError("a worker process failed to start or died (out of memory?); "
                          "no output written") from None
    finally:
        results.close()
        _stop(pool)


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


def _stop(pool) -> None:
    """Kill the workers now (an interrupted run must not wait for blocks in flight)."""
    if hasattr(pool, "kill_workers"):  # Python 3.14+
        pool.kill_workers()
    else:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


def _start(store_path, recipe, options, seq, threads) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for name in ("DPSANITIZE_THREADS", *BLAS_VARIABLES):  # for pools loaded later (scipy's)
        os.environ[name] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)  # for the ones loaded already (numpy's)
    from .index import load_entry
    from .pipeline import Sanitizer

    global _sanitizer
    mechanism = recipe.build(load_entry(store_path))
    _sanitizer = Sanitizer(mechanism, seed=seq, **options)


def _sanitize(index, first_line, chunk, encoding, fmt):
    return _sanitizer.sanitize_chunk(index, first_line, chunk, encoding, fmt)
