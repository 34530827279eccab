"""Run on a Dask cluster: blocks of input as tasks, and sanitizing Dask bags and dataframes.

Needs the ``dask`` extra (``pip install 'dpsanitize[dask]'``). Every worker opens the index once
per process, from the client's cache entry when that path is visible to it (a shared cache), or
else by building it from the same embeddings, and checks the vocabulary fingerprint. Block i is
rewritten with the generator of block i (the same rule as the local engine), so with a seed the
output is byte for byte the local engine's, and a block that Dask runs twice (a worker died)
gives the same bytes both times; the client writes each block once, in order.

The run's seed sequence travels with the tasks (as it does to local worker processes): anyone
who can read the scheduler's task data could undo the noise. Use a cluster you trust, with TLS.

Example::

    import dask.bag as db
    from dpsanitize.dask import sanitize_bag
    clean = sanitize_bag(db.from_sequence(lines, npartitions=8), mech="gumbel", eps=120).compute()
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .errors import InvalidParameter, ResourceError

_SANITIZERS: dict = {}  # per worker process: spec key -> Sanitizer


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to rebuild the client's sanitizer (no text)."""

    store_path: str
    source: tuple  # (name, value) pairs: embeddings, format, vocab size, words-only, trees
    vocab_fingerprint: str
    recipe: object  # mechanisms.Recipe
    options: tuple  # (("oov", ...), ("oov_token", ...), ("bit_generator", ...))
    entropy: int
    spawn_key: tuple

    @classmethod
    def of(cls, sanitizer) -> "WorkerSpec":
        if sanitizer.seed_sequence is None:
            raise InvalidParameter("the Dask engine needs a sanitizer seeded by seed=, not rng=")
        m = sanitizer.store.manifest
        default = m["source_format"] == "default"
        source = (("embeddings", None if default else m["source"]),
                  ("fmt", "auto" if default else m["source_format"]),
                  ("vocab_size", m["requested_vocab_size"]), ("words_only", m["words_only"]),
                  ("trees", m["annoy"]["trees"]))
        seq = sanitizer.seed_sequence
        return cls(sanitizer.store.path, source, m["vocab_fingerprint"],
                   sanitizer.mechanism.recipe, (("oov", sanitizer.oov), ("oov_token", sanitizer.oov_token),
                    ("bit_generator", sanitizer.bit_generator)),
                   int(seq.entropy), tuple(seq.spawn_key))


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


def worker_sanitizer(spec: WorkerSpec):
    """This process's sanitizer for ``spec``, built on first use."""
    found = _SANITIZERS.get(spec)
    if found is not None:
        return found
    if not _SANITIZERS:
        _undo_malloc_trim()
    from .index import BuildParams, load_entry, open_index
    from .pipeline import Sanitizer

    if os.path.isdir(spec.store_path):
        store = load_entry(spec.store_path)
    else:
        s = dict(spec.source)
        store = open_index(s["embeddings"], s["fmt"], s["vocab_size"], words_only=s["words_only"],
                           params=BuildParams(trees=s["trees"]))
    if store.manifest["vocab_fingerprint"] != spec.vocab_fingerprint:
        raise ResourceError("a Dask worker opened another vocabulary than the client's (other "
                            "embeddings file?); give the workers the client's cache or file")
    mechanism = spec.recipe.build(store)
    seq = np.random.SeedSequence(spec.entropy, spawn_key=spec.spawn_key)
    sanitizer = Sanitizer(mechanism, seed=seq, **dict(spec.options))
    _SANITIZERS[spec] = sanitizer
    return sanitizer


def _sanitize_block(spec, index, first_line, data, encoding, fmt):
    return worker_sanitizer(spec).sanitize_chunk(index, first_line, data, encoding, fmt)


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


def sanitize_chunks(sanitizer, items, encoding: str, client, in_flight: int | None = None):
    """Like :func:`.workers.sanitize_chunks`, with each block a task on ``client``'s cluster."""
    from .workers import in_order

    spec = WorkerSpec.of(sanitizer)  # small: it travels with each task
    limit = in_flight or 2 * max(1, len(client.scheduler_info().get("workers", {})))
    return in_order(items, lambda b: client.submit(_sanitize_block, spec, b.index, b.first_line,
                                                   b.data, encoding, b.fmt, pure=False), limit)


# --------------------------------------------------------------------------------------------
# Collections, for notebooks


def _sanitizer(mech, eps, seed, sanitizer_options):
    from .pipeline import Sanitizer

    return Sanitizer(mech, eps, seed=seed, **sanitizer_options)


_COLLECTION_STREAM = 0xC011EC7  # partition i of a collection uses stream (this, i)


def _rewrite_partition(spec, number: int, records: list[list[str]]) -> list[list[str]]:
    from .pipeline import Counters

    s = worker_sanitizer(spec)
    return s.rewrite_records(records, s.chunk_rng((_COLLECTION_STREAM, number)), Counters())


def _partition(spec, lines, number):
    return [r[0] for r in _rewrite_partition(spec, number, [[str(line)] for line in lines])]


def sanitize_bag(bag, *, mech: str = "gumbel", eps: float, seed: int | None = None,
                 **sanitizer_options):
    """A bag of strings -> a bag of sanitized strings (one record each; the budget per string).

    Partition i draws from its own stream of the run's seed, so the result does not depend on
    the cluster; ``sanitizer_options`` go to :class:`.Sanitizer` (``embeddings``, ``oov``,
    mechanism options, ...).
    """
    import dask
    import dask.bag as db

    spec = WorkerSpec.of(_sanitizer(mech, eps, seed, sanitizer_options))
    parts = bag.to_delayed()
    run = dask.delayed(_partition, pure=True)
    return db.from_delayed([run(spec, part, i) for i, part in enumerate(parts)])


def sanitize_dataframe(ddf, *, column: str | list[str], mech: str = "gumbel", eps: float,
                       seed: int | None = None, **sanitizer_options):
    """A Dask dataframe with its text ``column`` (or columns) sanitized, the rest unchanged.

    Each row is one record: the named columns of a row together spend the per-line budget.
    Missing values are kept as they are.
    """
    columns = [column] if isinstance(column, str) else list(column)
    missing = [c for c in columns if c not in ddf.columns]
    if missing:
        raise InvalidParameter(f"no column named {missing[0]!r} in the dataframe")
    spec = WorkerSpec.of(_sanitizer(mech, eps, seed, sanitizer_options))
    return ddf.map_partitions(_frame_partition, spec, columns, meta=ddf._meta)


def _frame_partition(frame, spec, columns, partition_info=None):
    import pandas as pd

    number = (partition_info or {}).get("number", 0)
    out = frame.copy()
    text = out[columns].map(lambda v: isinstance(v, str))
    rows = [[v for v in row if isinstance(v, str)] for row in out[columns].itertuples(index=False)]
    new = iter(_rewrite_partition(spec, number, rows))
    values = out[columns].to_numpy(dtype=object, copy=True)
    for r in range(len(values)):
        fields = iter(next(new))
        for c in range(len(columns)):
            if text.iat[r, c]:
                values[r, c] = next(fields)
    out[columns] = pd.DataFrame(values, index=out.index, columns=columns)
    return out
