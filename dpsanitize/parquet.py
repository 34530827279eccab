"""``--format parquet``: sanitize string columns of a Parquet file, row group by row group.

A block is one row group: it is read alone (memory is bounded by a row group, not the file),
its named columns are rewritten with the block's own random stream (row group i of an input is
block i, as for text), in vectorised mechanism calls of about 256 Ki characters of rows each
(the stream consumed in row order), and it is written as one row group of
the output through pyarrow's ``ParquetWriter`` into the job's atomic output (a temporary file,
renamed into place only when the whole file is written). The output keeps the Arrow schema
(types, nullability, field metadata), every other column's values, the number and sizes of the
row groups, the file's key-value metadata, the compression codec of each column, the format
version, which columns are dictionary-encoded and which carry statistics. Not kept: compression
levels, page sizes, encodings other than dictionary, bloom filters, page indexes.

A row is the privacy unit (a CSV record's role): its named columns together spend the per-line
budget. Nulls stay null (``counts.nulls``). Columns are checked when the job list is made,
before the index is opened: a missing or non-string column is an InputDataError (exit 65), so is
a file whose footer cannot be read; ``-`` is refused (Parquet needs a seekable file).

Example::

    fmt = make_format("parquet", columns=["review"])
    fmt.bind_file("train.parquet")   # checks the columns; then sanitize_jobs(...) as for CSV
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from .errors import (InputChanged, InputDataError, InvalidParameter, MissingInputError,
                     WriteError)

EXTENSIONS = (".parquet", ".pq")
_CODECS = {"UNCOMPRESSED": "none", "SNAPPY": "snappy", "GZIP": "gzip", "BROTLI": "brotli",
           "ZSTD": "zstd", "LZ4": "lz4", "LZ4_RAW": "lz4"}
_DICTIONARY = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}
SLICE_CHARS = 1 << 18  # text per mechanism call, as a block of text input (stream.BLOCK_BYTES)


@dataclass(frozen=True)
class RowGroupAt:
    """Where a row group starts: its number, first row (from 0), rows and stored bytes."""

    row_group: int
    first_row: int
    rows: int
    size: int

    @property
    def line(self) -> int:  # what a record format's position reports (1-based)
        return self.first_row + 1

    @property
    def record(self) -> int:
        return self.first_row + 1

    def where(self) -> str:
        last = self.first_row + self.rows
        return f"row group {self.row_group} (rows {self.first_row + 1}-{last})"


@dataclass(frozen=True)
class RowGroupSpan:
    """Row group ``row_group`` of a regular file: what a worker process reads itself."""

    path: str
    identity: tuple  # (st_dev, st_ino, st_size, st_mtime_ns) when the main process opened it
    row_group: int


_OPEN: dict = {}  # this process's open file: (path, identity) -> ParquetFile


def _identity(st) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def open_parquet(source, what: str = "the input"):
    """A ``pyarrow.parquet.ParquetFile`` (its footer read); InputDataError for anything that
    is not a readable Parquet file (pyarrow's message is not repeated: it may quote bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source)
    except FileNotFoundError:
        raise MissingInputError(f"input file not found: {what}") from None
    except (pa.ArrowException, OSError, ValueError, IndexError):
        raise InputDataError(f"{what}: not a readable Parquet file (no valid footer: truncated, "
                             f"corrupt, or another format)") from None


def _read(pf, at: RowGroupAt):
    import pyarrow as pa

    try:
        return pf.read_row_group(at.row_group)
    except (pa.ArrowException, OSError, ValueError, IndexError, MemoryError):
        raise InputDataError(f"{at.where()}: cannot be read (corrupt or truncated Parquet "
                             f"data)") from None


def _read_span(span: RowGroupSpan, at: RowGroupAt):
    try:
        same = _identity(os.stat(span.path)) == span.identity
    except OSError:
        same = False
    if not same:
        raise InputChanged("the input file changed while it was being read")
    key = (span.path, span.identity)
    pf = _OPEN.get(key)
    if pf is None:
        for old in _OPEN.values():
            with contextlib.suppress(Exception):
                old.close()
        _OPEN.clear()
        pf = _OPEN[key] = open_parquet(span.path)
    return _read(pf, at)


@dataclass(frozen=True)
class Layout:
    """The writer settings that make the output look like the input."""

    options: tuple  # ParquetWriter keyword arguments, as (name, value) pairs

    @classmethod
    def of(cls, pf) -> "Layout":
        md = pf.metadata
        kv = md.metadata or {}
        opts = {"store_schema": b"ARROW:schema" in kv}
        if md.format_version in ("1.0", "2.4", "2.6"):
            opts["version"] = md.format_version
        if md.num_row_groups:
            rg = md.row_group(0)
            chunks = [rg.column(j) for j in range(md.num_columns)]
            codecs = {c.path_in_schema: _CODECS.get(c.compression, "snappy") for c in chunks}
            if len(set(codecs.values())) == 1:
                opts["compression"] = next(iter(codecs.values()))
            elif codecs:
                opts["compression"] = codecs
            dictionary = [c.path_in_schema for c in chunks if _DICTIONARY & set(c.encodings)]
            opts["use_dictionary"] = dictionary if len(dictionary) < len(chunks) else True
            stats = [c.path_in_schema for c in chunks if c.is_stats_set]
            opts["write_statistics"] = stats if len(stats) < len(chunks) else True
        return cls(tuple(sorted(opts.items(), key=lambda kv: kv[0])))


class ParquetFormat:
    """The record format of ``--format parquet`` (a block is a row group)."""

    name = "parquet"
    arrow = True  # blocks are row groups read by chunks(), rewritten by sanitize_block()
    header = False
    multiline = False

    def __init__(self, columns):
        self.columns = tuple(columns)
        self.paths = None
        self.schema = None
        self.layout = None
        self.identity = None

    def __repr__(self) -> str:
        return f"ParquetFormat(columns={self.columns!r})"

    # -- main process

    def bind_file(self, path: str) -> "ParquetFormat":
        """Open the footer, resolve and check the columns (before any work)."""
        from .arrow import resolve_columns

        if path == "-":
            raise InvalidParameter("Parquet input needs a file: '-' (stdin) cannot be read as "
                                   "Parquet (its footer is at the end; it needs a seekable "
                                   "file). Save it to a file first")
        if os.path.isdir(path):
            raise MissingInputError(f"input is a directory, not a file: {path}")
        with contextlib.closing(open_parquet(path, path)) as pf:
            try:
                self.paths = resolve_columns(pf.schema_arrow, self.columns)
            except InputDataError as exc:  # which input, in a batch of many
                raise InputDataError(f"{path}: {exc}") from None
            self.schema = pf.schema_arrow
            self.layout = Layout.of(pf)
        with contextlib.suppress(OSError):
            self.identity = _identity(os.stat(path))
        return self

    def chunks(self, src, spans: bool = False):
        """``(RowGroupAt, data)`` for each row group of the open file ``src``: ``data`` is the
        row group as a ``pyarrow.Table``, or with ``spans`` a :class:`RowGroupSpan`."""
        if self.paths is None:
            raise InvalidParameter("bind_file() the Parquet input before reading it")
        try:
            st = os.fstat(src.fileno())
        except (AttributeError, OSError, ValueError):
            raise InvalidParameter("Parquet input needs a regular file, not stdin or a "
                                   "pipe") from None
        if self.identity is not None and _identity(st) != self.identity:
            raise InputDataError("the input file changed since its columns were checked")
        pf = open_parquet(src, "the input")
        md = pf.metadata
        first = 0
        path = os.path.abspath(src.name) if spans and isinstance(src.name, str) else None
        for i in range(md.num_row_groups):
            rg = md.row_group(i)
            size = sum(rg.column(j).total_compressed_size for j in range(rg.num_columns))
            at = RowGroupAt(i, first, rg.num_rows, size)
            if path is not None:
                yield at, RowGroupSpan(path, _identity(st), i)
            else:
                yield at, _read(pf, at)
            first += rg.num_rows

    @contextlib.contextmanager
    def writer(self, out):
        """A writer of row groups (``write(table)``) into ``out``, a job's atomic output: the
        footer is written when the block completes; on failure nothing more is written."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = _Sink(out)
        w = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), self.schema,
                             **dict(self.layout.options))
        try:
            yield _RowGroups(w)
        except BaseException:
            sink.failed = True  # the temporary file is removed: close without writing
            with contextlib.suppress(Exception):
                w.close()
            raise
        try:
            w.close()
        except (pa.ArrowException, OSError) as exc:
            reason = getattr(exc, "strerror", None) or "the Parquet writer failed"
            raise WriteError(f"cannot write the output ({reason})") from None

    # -- any process

    def sanitize_block(self, sanitizer, index, at: RowGroupAt, data):
        """Row group ``at`` (a Table, or a span to read): the sanitized Table and counts."""
        from .arrow import column_values, replace_columns, rewrite_values
        from .rewrite import Counters

        table = _read_span(data, at) if isinstance(data, RowGroupSpan) else data
        counts = Counters(bytes=at.size)
        values = [column_values(table, p) for p in self.paths]
        rng = sanitizer.chunk_rng(index)
        new = [[] for _ in values]
        for lo, hi in row_slices(values, SLICE_CHARS):  # one stream, consumed in row order
            part = rewrite_values(sanitizer, [col[lo:hi] for col in values], rng, counts)
            for c, col in enumerate(part):
                new[c].extend(col)
        out = replace_columns(table, self.paths, new)
        del table, values, new
        _release()
        return out, counts


def row_slices(values: list[list], limit: int):
    """``(lo, hi)`` row ranges of about ``limit`` characters of text each (at least one row):
    a large row group goes through the mechanism piece by piece, as text goes by blocks."""
    import numpy as np

    n = len(values[0]) if values else 0
    if n == 0:
        return [(0, 0)]
    size = np.zeros(n, dtype=np.int64)
    for col in values:
        size += np.fromiter((len(v) if isinstance(v, str) else 0 for v in col), dtype=np.int64,
                            count=n)
    total = np.cumsum(size)
    if total[-1] <= limit:
        return [(0, n)]
    ends = np.searchsorted(total, np.arange(limit, total[-1], limit), side="left") + 1
    bounds = sorted({0, *np.minimum(ends, n).tolist(), n})
    return list(zip(bounds[:-1], bounds[1:]))


class _RowGroups:
    def __init__(self, w):
        self._w = w

    def write(self, table) -> None:
        self._w.write_table(table, row_group_size=max(1, table.num_rows))
        _release()


def _release() -> None:
    """Arrow's allocator (mimalloc) keeps freed row groups for reuse: about 45 MiB more peak
    memory on 1M words in 10 row groups (scripts/bench.py). Give them back after each one."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


class _Sink:
    """The file object pyarrow writes to: the atomic output, with a position."""

    closed = False

    def __init__(self, out):
        self._out, self._pos, self.failed = out, 0, False

    def write(self, data) -> int:
        if self.failed:
            return len(memoryview(data))
        self._out.write(data)
        n = memoryview(data).nbytes
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        if not self.failed:
            self._out.flush()

    def close(self) -> None:
        pass
