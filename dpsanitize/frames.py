"""Sanitize text columns of Arrow tables, pandas data frames and Hugging Face dataset batches.

A row is the privacy unit (as a CSV record is): the named columns of one row together spend the
per-line budget. Nulls stay null and are counted (``counts.nulls``); every other column, the
schema (types, nullability, field metadata) and the row order are kept. Both functions return a
new object and leave the input untouched.

Randomness comes from named streams keyed by row index: the rows ``g*R .. (g+1)*R - 1`` of a
stream (``R`` = ``rows_per_stream``, default 1000, the default ``batch_size`` of
``datasets.Dataset.map``) draw from their own generator, spawned from the sanitizer's seed. So,
given a seed and a ``stream`` name, a frame's result does not depend on how it was cut into
batches, as long as every batch starts at a multiple of ``R`` (a batch that starts inside a range
is refused: it would reuse the noise of the rows before it; ``rows_per_stream=1`` accepts any
cut, several times slower: ``scripts/bench_frames.py``). Without a ``stream`` name each call
(each batch function) gets a stream of its own, so two calls never share noise; and a sanitizer
refuses rows of a stream it has already drawn noise for (in this process): a stream name reused
for another dataset, or one batch function mapped over two datasets, is an error.

Example::

    from dpsanitize import sanitize_arrow, sanitize_frame, batch_function
    clean = sanitize_frame(df, ["review"], mech="gumbel", epsilon=120)
    clean_table = sanitize_arrow(table, ["review", "user.bio"], sanitizer=s)
    ds = ds.map(batch_function(["text"], epsilon=120), batched=True, with_indices=True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from .arrow import column_values, replace_columns, resolve_columns, rewrite_values
from .errors import InputDataError, InvalidParameter

ROWS_PER_STREAM = 1000  # datasets.Dataset.map's default batch_size
_NAMED = 0x5EA4ED  # (this, hash of the name, range): a named stream's range of rows
_CALL = 0xCA11ED  # (this, call number, range): an unnamed call's range of rows


class Streams:
    """The random streams of one named stream (or one call): rows by absolute index."""

    def __init__(self, sanitizer, stream=None, rows_per_stream: int = ROWS_PER_STREAM):
        if isinstance(rows_per_stream, bool) or not isinstance(rows_per_stream, int) or \
                rows_per_stream < 1:
            raise InvalidParameter("rows_per_stream must be an integer >= 1")
        if sanitizer.seed_sequence is None:
            raise InvalidParameter("frames need a sanitizer seeded by seed= (or from the OS), "
                                   "not rng=: their streams are spawned from the seed")
        self.rows = rows_per_stream
        if stream is None:  # a stream of its own: never shared with another call
            number = getattr(sanitizer, "_frame_calls", 0)
            sanitizer._frame_calls = number + 1
            self.key = (_CALL, number)
        else:
            digest = hashlib.sha256(str(stream).encode("utf-8", "surrogateescape")).digest()
            self.key = (_NAMED, int.from_bytes(digest[:8], "big"))

    def rewrite(self, sanitizer, values: list[list], indices, counts) -> list[list]:
        """Rewrite rows whose absolute indices are ``indices`` (ascending, contiguous when
        ``rows_per_stream`` > 1), each range of rows with its own generator."""
        n = len(values[0]) if values else 0
        if n == 0:
            return [list(col) for col in values]
        idx = np.asarray(indices, dtype=np.int64)
        if len(idx) != n:
            raise InvalidParameter(f"{len(idx)} indices for {n} rows")
        if idx[0] < 0:
            raise InvalidParameter("row indices start at 0")
        R = self.rows
        if R > 1:
            if not np.array_equal(idx, idx[0] + np.arange(n)):
                raise InvalidParameter("with rows_per_stream > 1 the rows of a batch must have "
                                       "consecutive indices; use rows_per_stream=1")
            if idx[0] % R:
                raise InvalidParameter(
                    f"this batch starts at row {int(idx[0])}, inside the range of rows "
                    f"{int(idx[0]) // R * R}..{int(idx[0]) // R * R + R - 1} that share one "
                    f"random stream (rows_per_stream={R}); sanitizing it would reuse the noise "
                    f"of the rows before it. Start every batch at a multiple of {R} (batch_size "
                    f"a multiple of it, or the whole frame at once), or pass rows_per_stream=1")
        elif np.any(np.diff(idx) <= 0):
            raise InvalidParameter("row indices must be strictly increasing")
        ranges = idx // R
        self._claim(sanitizer, ranges)
        cuts = np.flatnonzero(np.diff(ranges)) + 1
        bounds = [0, *cuts.tolist(), n]
        out = [[] for _ in values]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            rng = sanitizer.chunk_rng((*self.key, int(ranges[lo])))
            part = rewrite_values(sanitizer, [col[lo:hi] for col in values], rng, counts)
            for c, col in enumerate(part):
                out[c].extend(col)
        return out


    def _claim(self, sanitizer, ranges) -> None:
        """Refuse ranges of rows this sanitizer has already drawn noise for on this stream
        (two datasets through one batch function, or one stream name reused): their rows
        would get the same noise. Kept per process, as disjoint sorted [lo, hi) intervals."""
        import bisect

        used = sanitizer.__dict__.setdefault("_frame_ranges", {}).setdefault(self.key, [])
        grains = np.unique(ranges)
        breaks = np.flatnonzero(np.diff(grains) != 1) + 1
        runs = [(int(r[0]), int(r[-1]) + 1) for r in np.split(grains, breaks)]
        for lo, hi in runs:
            k = bisect.bisect_right(used, [lo, float("inf")])
            hit = [u for u in used[max(k - 1, 0):k + 1] if u[0] < hi and u[1] > lo]
            if hit:
                R = self.rows
                a, b = max(lo, hit[0][0]), min(hi, hit[0][1])
                raise InvalidParameter(
                    f"rows {a * R}..{b * R - 1} of this stream already drew their noise with "
                    f"this sanitizer; sanitizing them again would reuse it. Give each dataset "
                    f"its own stream name (or its own batch_function)")
        for lo, hi in runs:
            k = bisect.bisect_right(used, [lo, float("inf")])
            used.insert(k, [lo, hi])
            merged = []
            for interval in used:  # merge neighbours (few intervals: batches come in order)
                if merged and merged[-1][1] >= interval[0]:
                    merged[-1][1] = max(merged[-1][1], interval[1])
                else:
                    merged.append(interval)
            used[:] = merged


def _sanitizer(sanitizer, options: dict):
    if sanitizer is not None:
        if options:
            raise InvalidParameter(f"pass either sanitizer= or the Sanitizer options "
                                   f"({', '.join(sorted(options))}), not both")
        return sanitizer
    from .pipeline import Sanitizer

    return Sanitizer(**options)


def _columns(columns) -> list[str]:
    columns = [columns] if isinstance(columns, str) else list(columns)
    if not columns:
        raise InvalidParameter("name at least one column to sanitize")
    return list(dict.fromkeys(columns))  # a column named twice is rewritten once


def _note_format(sanitizer, name: str = "parquet") -> None:
    formats = getattr(sanitizer, "formats", None)  # what the report says is released as is
    if isinstance(formats, set):
        formats.add(name)


def _finish(sanitizer, counts) -> None:
    sanitizer.counters.add(counts)


def sanitize_arrow(table, columns, *, sanitizer=None, start: int = 0, stream=None,
                   rows_per_stream: int = ROWS_PER_STREAM, **options):
    """A new ``pyarrow.Table`` (or ``RecordBatch``) with the string ``columns`` sanitized.

    ``columns``: names, or dotted paths into struct columns. ``options``: the keyword arguments
    of :class:`.Sanitizer` (``mech``, ``epsilon``, ``embeddings``, ``seed``, ``oov``,
    mechanism options), or ``sanitizer=`` an existing one (its ``report()`` then covers this
    call). ``start``: the index of the first row (for a table that is one batch of a larger
    one, with a ``stream`` name shared by the batches).

    Example::

        clean = sanitize_arrow(table, ["review"], mech="gumbel", epsilon=120)
    """
    import pyarrow as pa

    if not isinstance(table, (pa.Table, pa.RecordBatch)):
        raise InvalidParameter("sanitize_arrow takes a pyarrow Table or RecordBatch")
    paths = resolve_columns(table.schema, _columns(columns))
    s = _sanitizer(sanitizer, options)
    streams = Streams(s, stream, rows_per_stream)
    from .rewrite import Counters

    counts = Counters()
    values = [column_values(table, p) for p in paths]
    new = streams.rewrite(s, values, range(start, start + table.num_rows), counts)
    out = replace_columns(table, paths, new)
    _finish(s, counts)
    _note_format(s)
    return out


# --------------------------------------------------------------------------------------------
# pandas


def sanitize_frame(df, columns, *, sanitizer=None, start: int = 0, stream=None,
                   rows_per_stream: int = ROWS_PER_STREAM, **options):
    """A new pandas ``DataFrame`` with the text ``columns`` sanitized; ``df`` is untouched.

    A named column must hold text (object or string dtype); missing values stay missing and
    are counted; other non-string values are kept and counted as ``non_string``. Rows are
    numbered by position from ``start`` (the frame's index is not used). Options as for
    :func:`sanitize_arrow`.

    Example::

        clean = sanitize_frame(df, ["review"], mech="gumbel", epsilon=120)
    """
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - a DataFrame comes with pandas
        raise InvalidParameter("sanitize_frame needs pandas") from None
    if not isinstance(df, pd.DataFrame):
        raise InvalidParameter("sanitize_frame takes a pandas DataFrame")
    names = _columns(columns)
    _check_frame(df, names)
    s = _sanitizer(sanitizer, options)
    return _frame_with(df, names, s, Streams(s, stream, rows_per_stream),
                       range(start, start + len(df)))


def _check_frame(df, names) -> None:
    import pandas as pd

    for name in names:
        if name not in df.columns:
            raise InputDataError(f"no column named {name!r} in the data frame")
        dtype = df[name].dtype
        if not (dtype == object or isinstance(dtype, pd.StringDtype)):
            raise InputDataError(f"column {name!r} has dtype {dtype}, not text (object or "
                                 f"string); only text columns can be sanitized")


def _frame_with(df, names, s, streams, indices):
    import pandas as pd

    from .rewrite import Counters

    counts = Counters()
    values = [df[name].tolist() for name in names]
    new = streams.rewrite(s, values, indices, counts)
    out = df.copy()
    for name, col in zip(names, new):
        out[name] = pd.Series(col, index=df.index, dtype=df[name].dtype, name=name)
    _finish(s, counts)
    _note_format(s)
    return out


# --------------------------------------------------------------------------------------------
# datasets.Dataset.map


class BatchFunction:
    """A function for ``datasets.Dataset.map(fn, batched=True, with_indices=True)``: for a
    batch that is a mapping of lists (what ``map`` passes), a dict of the sanitized ``columns``
    (``map`` keeps the others); for a pyarrow Table or pandas DataFrame (``with_format``), the
    batch with its ``columns`` sanitized. Its rows are keyed by their dataset indices, so the result does not depend on
    the batch size (a multiple of ``rows_per_stream``) or on ``num_proc`` (with
    ``rows_per_stream=1``, since shards start anywhere). It pickles as a recipe (store path,
    mechanism, seed sequence; no text) and rebuilds its sanitizer in each process;
    ``sanitizer.report()`` counts the batches of this process.
    """

    def __init__(self, columns, *, sanitizer=None, stream=None,
                 rows_per_stream: int = ROWS_PER_STREAM, **options):
        self.columns = _columns(columns)
        self.sanitizer = _sanitizer(sanitizer, options)
        self._streams = Streams(self.sanitizer, stream, rows_per_stream)

    def __call__(self, batch, indices=None):
        if indices is None:
            raise InvalidParameter("pass with_indices=True to Dataset.map: the random streams "
                                   "are keyed by row index, and a batch without its indices "
                                   "would reuse the noise of another batch")
        if isinstance(indices, int):
            indices = [indices]
        from .rewrite import Counters

        s = self.sanitizer
        if not isinstance(batch, Mapping):  # datasets passes a LazyBatch (a Mapping)
            import pyarrow as pa

            if isinstance(batch, (pa.Table, pa.RecordBatch)):
                paths = resolve_columns(batch.schema, self.columns)
                values = [column_values(batch, p) for p in paths]
                counts = Counters()
                new = self._streams.rewrite(s, values, indices, counts)
                _finish(s, counts)
                _note_format(s)
                return replace_columns(batch, paths, new)
            return self._frame(batch, indices)
        for name in self.columns:
            if name not in batch:
                raise InputDataError(f"no column named {name!r} in the batch")
        values = [list(batch[name]) for name in self.columns]
        n = len(values[0])
        if any(len(v) != n for v in values) or any(not isinstance(x, (str, type(None)))
                                                    for v in values for x in v):
            raise InputDataError("the named columns of a batch must hold strings (or None) "
                                 "and be of equal length")
        counts = Counters()
        new = self._streams.rewrite(s, values, indices, counts)
        _finish(s, counts)
        _note_format(s)
        return dict(zip(self.columns, new))  # Dataset.map keeps the other columns

    def _frame(self, df, indices):
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise InvalidParameter("a batch is a dict of lists, a pyarrow Table or a pandas "
                                   "DataFrame")
        _check_frame(df, self.columns)
        return _frame_with(df, self.columns, self.sanitizer, self._streams, indices)

    def __getstate__(self):
        return {"columns": self.columns, "spec": self.sanitizer.spec(),
                "key": self._streams.key, "rows": self._streams.rows}

    def __setstate__(self, state):
        from .pipeline import Sanitizer

        self.columns = state["columns"]
        self.sanitizer = Sanitizer.rebuild(state["spec"])
        self._streams = Streams.__new__(Streams)
        self._streams.key, self._streams.rows = state["key"], state["rows"]


def batch_function(columns, *, sanitizer=None, stream=None,
                   rows_per_stream: int = ROWS_PER_STREAM, **options) -> BatchFunction:
    """A batched function for ``datasets.Dataset.map`` (see :class:`BatchFunction`).

    Example::

        fn = batch_function(["text"], mech="gumbel", epsilon=120)
        clean = ds.map(fn, batched=True, with_indices=True)
        fn.sanitizer.report()
    """
    return BatchFunction(columns, sanitizer=sanitizer, stream=stream,
                         rows_per_stream=rows_per_stream, **options)
