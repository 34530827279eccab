"""The stream: input cut into ordered blocks of whole lines (or records), and the rewrite of one
block in any process.

A :class:`Block` holds whole lines of one input (or whole records of a format: CSV, JSON lines,
a Parquet row group) and the name of its random stream. :class:`BlockRewriter` rewrites a block
with that stream's generator (block i of a run draws from the i-th child of the run's seed, so
any number of processes writes the same bytes); :class:`LocalTask` is that rewrite as the
function an engine maps over blocks in this process (:mod:`.engines.tasks` rebuilds it in
others).

Example::

    task = LocalTask(BlockRewriter(rewriter, seed_sequence), "utf-8")
    data, counts = task(Block(0, 1, b"Call me Ishmael.\n"))
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

import numpy as np

from .errors import InputChanged, InputDataError
from .rewrite import Counters, Rewriter, count_lines

DEFAULT_MAX_LINE_BYTES = 10 << 20
BLOCK_BYTES = 1 << 18  # 256 KiB: enough words to vectorise, enough blocks to keep many workers busy


@dataclass(frozen=True)
class Block:
    """Whole lines (or whole records of ``fmt``) of one input, and where they start."""

    index: object  # the block's random stream: an int, or (stream, i)
    first_line: object  # an int, or a formats.Position
    data: bytes = field(repr=False)  # input text: never in a log line or an error
    fmt: object = None


@dataclass(frozen=True)
class FileSpan:
    """Bytes ``offset .. offset+size`` of a regular file: what a block sent to a worker process
    holds instead of the bytes themselves (the worker reads them: no input text through pipes).

    ``identity`` is the file's (st_dev, st_ino) when the main process read it: a file replaced
    or cut short in between is an error (a file rewritten in place, same size, is not: only a
    SHA-256 taken before the run, with --manifest or --ledger, catches that).
    """

    path: str
    offset: int
    size: int
    identity: tuple

    def read(self) -> bytes:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise InputDataError(f"the input file could not be read again ({exc.strerror})") \
                from None
        try:
            st = os.fstat(fd)
            data = os.pread(fd, self.size, self.offset)
        finally:
            os.close(fd)
        if (st.st_dev, st.st_ino) != self.identity or len(data) != self.size:
            raise InputChanged("the input file changed while it was being read")
        return data

    @classmethod
    def source(cls, src):
        """``(path, identity, position)`` of a regular input file that its name opens again,
        else None (pipes; stdin redirected from a file, whose name is ``<stdin>``)."""
        try:
            st = os.fstat(src.fileno())
            path = os.path.abspath(src.name)
            again = os.stat(path)
            position = src.tell()
        except (AttributeError, OSError, TypeError, ValueError):
            return None
        identity = (st.st_dev, st.st_ino)
        if not stat.S_ISREG(st.st_mode) or (again.st_dev, again.st_ino) != identity:
            return None
        return path, identity, position


class BlockRewriter:
    """A :class:`Rewriter` and the run's seed: rewrites block i with stream i's generator.

    ``rng`` (no seed sequence) drives every block itself: one process, the caller's generator.
    """

    def __init__(self, rewriter: Rewriter, seed_sequence, *, rng=None, bit_generator="aes"):
        self.rewriter = rewriter
        self.seed_sequence, self.rng, self.bit_generator = seed_sequence, rng, bit_generator

    def chunk_rng(self, index) -> np.random.Generator:
        """The generator of block ``index``: the ``index``-th child of the run's seed
        (``index`` a tuple: a grandchild, e.g. (file key, block) for a file of many)."""
        from .rng import make_rng

        if self.seed_sequence is None:
            return self.rng
        root = self.seed_sequence
        key = index if isinstance(index, tuple) else (index,)
        seq = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, *key))
        return make_rng(seq=seq, bit_generator=self.bit_generator)

    def rewrite_records(self, records, rng, counts):
        return self.rewriter.rewrite_records(records, rng, counts)

    def sanitize_chunk(self, index, first_line, chunk, encoding: str, fmt=None):
        """Block ``index`` of a stream (whole lines, or whole records of ``fmt``, from
        ``first_line``, a :class:`.formats.Position` with a format): bytes out, counts."""
        if getattr(fmt, "arrow", False):  # a Parquet row group: Arrow in, Arrow out
            return fmt.sanitize_block(self, index, first_line, chunk)
        line = first_line.line if fmt is not None else first_line
        if isinstance(chunk, FileSpan):
            chunk = chunk.read()
        try:
            decoded = chunk.decode(encoding)
        except UnicodeDecodeError as exc:
            raise InputDataError(_decode_error(chunk, exc, line, encoding)) from None
        counts = Counters(bytes=len(chunk))
        rng = self.chunk_rng(index)
        if fmt is None:
            counts.lines += count_lines(decoded)
            out = self.rewriter.rewrite(decoded, rng, counts)
        else:
            out = fmt.rewrite(decoded, first_line,
                              lambda records: self.rewriter.rewrite_records(records, rng, counts),
                              counts)
        return out.encode(encoding, errors="replace"), counts


@dataclass(frozen=True)
class ChangedBlock:
    """What a block becomes when its file was replaced or cut short before it was read (by a
    worker, from its :class:`FileSpan`): a result, not an exception, so that the engine goes on
    and the caller decides whether that input fails alone or the run stops."""

    message: str  # no input text: the fixed words of the InputChanged it stands for


@dataclass(frozen=True)
class LocalTask:
    """The function an engine maps over blocks, on this process's own block rewriter."""

    rewriter: BlockRewriter
    encoding: str

    def __call__(self, block: Block):
        try:
            return self.rewriter.sanitize_chunk(block.index, block.first_line, block.data,
                                                self.encoding, block.fmt)
        except InputChanged as exc:
            return ChangedBlock(str(exc))


def read_chunks(src, max_line_bytes: int, block: int = BLOCK_BYTES):
    """Yield ``(first_line_number, bytes)`` holding whole lines (the last may lack a newline).

    A line longer than ``block`` is gathered piece by piece and joined once, so reading it costs
    about twice its size, never more.
    """
    pending: list[bytes] = []  # the start of a line whose end has not been read yet
    pending_size = 0
    line_no = 1
    while True:
        data = src.read(block)
        if not data:
            if pending:
                yield line_no, b"".join(pending)
            return
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            pending.append(data)
            pending_size += len(data)
            _check_length(pending_size, line_no, max_line_bytes)
            continue
        head = data[:cut] if cut < len(data) else data
        chunk = b"".join([*pending, head]) if pending else head
        pending = [data[cut:]] if cut < len(data) else []
        pending_size = len(data) - cut
        _check_line_lengths(chunk, line_no, max_line_bytes)
        _check_length(pending_size, line_no + chunk.count(b"\n"), max_line_bytes)
        yield line_no, chunk
        line_no += chunk.count(b"\n")


def _check_line_lengths(chunk: bytes, line_no: int, max_line_bytes: int) -> None:
    if len(chunk) <= max_line_bytes:
        return
    start = 0
    while start < len(chunk):
        end = chunk.find(b"\n", start)
        end = len(chunk) if end < 0 else end
        _check_length(end - start, line_no, max_line_bytes)
        start, line_no = end + 1, line_no + 1


def _check_length(size: int, line_no: int, max_line_bytes: int) -> None:
    if size > max_line_bytes:
        raise InputDataError(f"line {line_no}: longer than --max-line-bytes ({max_line_bytes} bytes)")


def _decode_error(chunk: bytes, exc: UnicodeDecodeError, first_line: int, encoding: str) -> str:
    start = exc.start
    line = first_line + chunk.count(b"\n", 0, start)
    offset = start - (chunk.rfind(b"\n", 0, start) + 1)
    if first_line == 1 and chunk[:2] == b"\x1f\x8b":
        hint = "it looks gzip-compressed: zcat FILE | dpsanitize run ... - -"
    else:
        hint = "if the file has another encoding, name it with --encoding (e.g. latin-1); " \
               "for compressed input, zcat FILE | dpsanitize run ... - -"
    return f"line {line}: not valid {encoding} at byte offset {offset} ({hint})"
