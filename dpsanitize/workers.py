"""Sanitize the blocks of a stream on worker processes, in order, with bounded memory.

Each worker opens the same cached index entry (memory-mapped, so the pages are shared) and
builds the same mechanism; block i is rewritten with the generator spawned for block i, so the
output is byte for byte what one process writes with the same seed. At most two blocks per
worker are in flight. Workers ignore SIGINT/SIGTERM: the main process decides, and kills them
when it stops early.

Example::

    sanitizer.sanitize_stream(src, dst, workers=2)   # calls sanitize_chunks
"""

from __future__ import annotations

import collections
import multiprocessing
import signal

from .errors import DpsanitizeError, InvalidParameter

_sanitizer = None  # this worker process's Sanitizer


class WorkerError(DpsanitizeError):
    """A worker process failed to start or died (exit 70)."""


def sanitize_chunks(sanitizer, chunks, encoding: str, workers: int, fmt=None):
    """Yield ``(bytes, Counters)`` for each ``(index, first_line, chunk)`` of ``chunks``, in order."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    recipe = getattr(sanitizer.mechanism, "recipe", None)
    if recipe is None or sanitizer.seed_sequence is None:
        raise InvalidParameter("workers need a mechanism made by name (mechanisms.create) and "
                               "a sanitizer seeded by seed=, not rng=")
    spec = (sanitizer.store.path, recipe, sanitizer.mechanism.epsilon,
            {"oov": sanitizer.oov, "oov_token": sanitizer.oov_token,
             "bit_generator": sanitizer.bit_generator}, sanitizer.seed_sequence)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start, initargs=spec)
    pending = collections.deque()
    try:
        for index, first_line, chunk in chunks:
            pending.append(pool.submit(_sanitize, index, first_line, chunk, encoding, fmt))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool:
        raise WorkerError("a worker process failed to start or died (out of memory?); "
                          "no output written") from None
    finally:
        for future in pending:
            future.cancel()
        _stop(pool)


def _stop(pool) -> None:
    """Kill the workers now (an interrupted run must not wait for blocks in flight)."""
    if hasattr(pool, "kill_workers"):  # Python 3.14+
        pool.kill_workers()
    else:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


def _start(store_path, recipe, epsilon, options, seq) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from .index import load_entry
    from .mechanisms import create
    from .pipeline import Sanitizer

    global _sanitizer
    name, mech_options = recipe
    mechanism = create(name, epsilon=epsilon, store=load_entry(store_path), **mech_options)
    _sanitizer = Sanitizer(mechanism, seed=seq, **options)


def _sanitize(index, first_line, chunk, encoding, fmt):
    return _sanitizer.sanitize_chunk(index, first_line, chunk, encoding, fmt)
