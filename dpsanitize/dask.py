"""Sanitize Dask bags and dataframes; ``--engine dask`` itself is :mod:`.engines.dask`.

Needs the ``dask`` extra (``pip install 'dpsanitize[dask]'``). Partition i of a collection draws
from its own stream of the run's seed, so with a seed the result does not depend on the
cluster. Every worker builds the mechanism once per process from the sanitizer's picklable
:class:`.stream.RewriterSpec` (the client's cache entry when that path is visible to it, else
the same embeddings, with the vocabulary fingerprint checked). The seed sequence travels with
the tasks: use a cluster you trust, with TLS.

Example::

    import dask.bag as db
    from dpsanitize.dask import sanitize_bag
    clean = sanitize_bag(db.from_sequence(lines, npartitions=8), mech="tem", eps=3).compute()
"""

from __future__ import annotations

from .engines.dask import close, connect  # noqa: F401  (the cluster helpers, re-exported)
from .errors import InvalidParameter


def _sanitizer(mech, eps, seed, sanitizer_options):
    from .pipeline import Sanitizer

    return Sanitizer(mech, eps, seed=seed, **sanitizer_options)


_COLLECTION_STREAM = 0xC011EC7  # partition i of a collection uses stream (this, i)


def _rewrite_partition(spec, number: int, records: list[list[str]]) -> list[list[str]]:
    from .rewrite import Counters

    s = spec.build()
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

    spec = _sanitizer(mech, eps, seed, sanitizer_options).spec()
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
    spec = _sanitizer(mech, eps, seed, sanitizer_options).spec()
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
