"""The Dask engine: the blocks of a stream as tasks on a Dask cluster, results back in order.

Needs the ``dask`` extra (``pip install 'dpsanitize[dask]'``). Every worker builds the block
rewriter once per process (:class:`..stream.RewriterSpec`: from the client's cache entry when
that path is visible to it, or else from the same embeddings, checking the vocabulary
fingerprint). Block i is rewritten with the generator of block i (the rule of every engine), so
with a seed the output is byte for byte the local engine's, and a block that Dask runs twice (a
worker died) gives the same bytes both times; the client writes each block once, in order.

The run's seed sequence travels with the tasks (as it does to local worker processes): anyone
who can read the scheduler's task data could undo the noise. Use a cluster you trust, with TLS.

Example::

    client = connect(None, workers=4)
    for data, counts in run(BlockTask(spec, "utf-8"), blocks, client):
        ...
    close(client)
"""

from __future__ import annotations

from ..errors import ResourceError
from . import in_order

_PREPARED = False  # this worker process restored glibc's malloc thresholds


def _undo_malloc_trim() -> None:
    """Give glibc back its usual large-allocation thresholds in this worker process.

    Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which pins glibc's mmap
    threshold at 128 KiB: every large numpy temporary is then mapped and unmapped again, and
    the mechanisms ran 3x slower (measured: 0.71 s -> 2.0 s per block of tem at epsilon 3). These
    are glibc's own dynamic maxima on 64-bit Linux.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to undo
        pass


def connect(scheduler: str | None = None, workers: int = 2):
    """A distributed Client: to ``scheduler`` if given, else a local cluster of processes."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ResourceError("the Dask engine needs the dask extra: pip install "
                            "'dpsanitize[dask]'") from None
    if scheduler:
        return Client(scheduler)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0", host="127.0.0.1")  # no fixed port
    client = Client(cluster)
    client._dpsanitize_cluster = cluster  # closed with the client (see close)
    return client


def close(client) -> None:
    cluster = getattr(client, "_dpsanitize_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def run(task, items, client, in_flight: int | None = None):
    """``task(block)`` for each block of ``items`` as a task on ``client``'s cluster, in order."""
    limit = in_flight or 2 * max(1, len(client.scheduler_info().get("workers", {})))
    return in_order(items, lambda b: client.submit(_call, task, b, pure=False), limit)


def _call(task, block):
    global _PREPARED
    if not _PREPARED:
        _undo_malloc_trim()
        _PREPARED = True
    return task(block)
