"""Engines: map a function over the ordered blocks of a stream, results back in order.

Every engine has one function, ``run(task, items, ...)``: ``task`` is a callable taking a
:class:`..stream.Block` (a :class:`..stream.BlockTask`, picklable, for engines that cross
processes); ``items`` mixes blocks with markers (the start and end of a file), which come back
as they are, in their place. At most a bounded number of blocks are in flight.

- :mod:`.local`: in this process.
- :mod:`.pool`: worker processes on this machine (``--workers N``).
- :mod:`.dask`: tasks on a Dask cluster (``--engine dask``).

Example::

    from dpsanitize.engines import pool
    for result in pool.run(task, blocks, workers=4):
        ...
"""

from __future__ import annotations

import collections


def parse_workers(value) -> int:
    """A number of processes: an integer >= 1, or 'auto' (``geometry.usable_cpus``).

    Example: ``parse_workers("auto")`` on a 2-core machine is 2.
    """
    if str(value).strip().lower() == "auto":
        from ..geometry import usable_cpus

        return usable_cpus()
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError("expected a number >= 1 or 'auto'")
    return n


class _Submitted:
    """A block handed to an executor: its future, told apart from markers."""

    __slots__ = ("future",)

    def __init__(self, future):
        self.future = future


def in_order(items, submit, limit: int, cancel: bool = True, result=None):
    """Yield ``submit(block).result()`` for each ``stream.Block`` of ``items`` and every other
    item as it is, in the order of ``items``, with at most ``limit`` blocks in flight.

    ``submit`` returns a future (concurrent.futures or Dask); ``result(future)``, when given,
    waits for it instead of ``future.result()``. A marker at the head goes out at once, a
    block's result as soon as it is done (or when the pool is full); on exit the blocks still
    pending are cancelled (unless ``cancel`` is False: the executor does it).
    """
    from ..stream import Block

    pending = collections.deque()
    in_flight = 0

    def next_result():
        nonlocal in_flight
        item = pending.popleft()
        if isinstance(item, _Submitted):
            in_flight -= 1
            return item.future.result() if result is None else result(item.future)
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
        if cancel:
            for item in pending:
                if isinstance(item, _Submitted):
                    item.future.cancel()
