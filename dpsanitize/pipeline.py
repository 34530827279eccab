"""Stream text through a mechanism in batches; count what happened (never what was said).

Example::

    s = Sanitizer("gumbel", 120.0)                      # default embeddings, OS entropy
    s.sanitize_text("Call me Ishmael.\\n")
    with open("in.txt", "rb") as src, open("out.txt", "wb") as dst:
        s.sanitize_stream(src, dst)
    s.report()["counts"]
"""

from __future__ import annotations

import contextlib
import operator
import os
import stat
import time
import warnings
from dataclasses import asdict, dataclass
from itertools import chain, islice, repeat

import numpy as np

from . import text as tx
from .errors import InputDataError, InvalidParameter, PrivacyWarning

DEFAULT_MAX_LINE_BYTES = 10 << 20
BLOCK_BYTES = 1 << 18  # 256 KiB: enough words to vectorise, enough blocks to keep many workers busy
SEGMENT_CHARS = 1 << 20  # a longer block (one long line) is rewritten piece by piece
US, RS = "\x1f", "\x1e"  # between the fields of a record, after each record (never in a word)


@dataclass(frozen=True)
class Block:
    """Whole lines (or whole records of ``fmt``) of one input, and where they start."""

    index: object  # the block's random stream: an int, or (stream, i)
    first_line: object  # an int, or a formats.Position
    data: bytes
    fmt: object = None


@dataclass(frozen=True)
class FileSpan:
    """Bytes ``offset .. offset+size`` of a regular file: what a block sent to a worker process
    holds instead of the bytes themselves (the worker reads them: no input text through pipes).

    ``identity`` is the file's (st_dev, st_ino) when the main process read it: a file replaced
    or cut short in between is an error, never a block of other text.
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
            raise InputDataError("the input file changed while it was being read")
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


@dataclass
class Counters:
    """What a run did, in counts only."""

    lines: int = 0
    words: int = 0
    replaced: int = 0
    unchanged: int = 0
    oov: int = 0
    max_words_per_line: int = 0
    bytes: int = 0
    non_string: int = 0  # JSON values in a named field that are not strings (kept as they are)
    nulls: int = 0  # nulls in a named column of a Parquet file or data frame (kept)

    def add(self, other: "Counters") -> None:
        for name, value in asdict(other).items():
            merged = max if name == "max_words_per_line" else operator.add
            setattr(self, name, merged(getattr(self, name), value))


class Sanitizer:
    """A mechanism, its vocabulary and a random generator, ready to rewrite text.

    Parameters
    ----------
    mech : str or Mechanism
        Registered mechanism name (``dpsanitize mechanisms``), or a constructed mechanism.
    epsilon : float
        Privacy parameter per word (see the mechanism's unit).
    store : IndexStore, optional
        An opened index; otherwise one is opened from ``embeddings`` / ``vocab_size`` /
        ``cache_dir`` / ``trees`` (default embeddings when ``embeddings`` is None).
    oov : {"mask", "random", "keep"}
        Out-of-vocabulary words: a placeholder, a uniform vocabulary word, or kept (leaks them).
    seed : int, optional
        Reproducible noise (tests, audits only; a :class:`PrivacyWarning` says so). None draws
        the seed from the OS. Streams give each chunk of input its own generator spawned from
        this seed, so the output does not depend on how many worker processes ran.
    mechanism_options
        Passed to the mechanism (e.g. ``decoder="annoy"``, ``lam=0.3``, ``experimental=True``).
    """

    def __init__(self, mech="gumbel", epsilon: float | None = None, *, store=None,
                 embeddings: str | None = None, embeddings_format: str = "auto",
                 vocab_size: int = 100_000, cache_dir: str | None = None, trees: int = 50,
                 words_only: bool = True, oov: str = "mask", oov_token: str = "<unk>",
                 seed: int | None = None,
                 rng: np.random.Generator | None = None, bit_generator: str = "aes",
                 progress: bool | None = None, **mechanism_options):
        from .mechanisms import create
        from .rng import make_rng, seed_sequence, warn_if_seeded

        if oov not in tx.OOV_POLICIES:
            raise InvalidParameter(f"oov must be one of {', '.join(tx.OOV_POLICIES)}")
        if tx.has_control_characters(oov_token):  # they separate lines and records
            raise InvalidParameter("the OOV placeholder must not contain line breaks or other "
                                   "control characters")
        if not isinstance(mech, str):  # an already constructed mechanism
            self.mechanism, store = mech, mech.store
        else:
            if store is None:
                from .index import BuildParams, open_index

                store = open_index(embeddings, embeddings_format, vocab_size, cache_dir=cache_dir,
                                   params=BuildParams(trees=trees), progress=progress,
                                   words_only=words_only)
            self.mechanism = create(mech, epsilon=epsilon, store=store, **mechanism_options)
        self.store = store
        self.bit_generator = bit_generator
        if rng is None:
            self.seed_sequence = seed_sequence(seed)
            self.rng = make_rng(seq=self.seed_sequence, bit_generator=bit_generator)
        else:  # the caller's generator drives everything, streams included (one process)
            self.seed_sequence, self.rng = None, rng
        warn_if_seeded(seed)
        if oov == "keep":
            warnings.warn("--oov keep copies out-of-vocabulary words (names, identifiers) into "
                          "the output unprotected", PrivacyWarning, stacklevel=2)
        self.oov, self.oov_token = oov, oov_token
        self.formats = set()  # the input formats seen: what a report says is released as is
        self.counters = Counters()
        self._next_block = 0  # block streams are never reused, even across sanitize_stream calls
        self._words = store.vocab.words
        self._lookup = store.vocab.id_of.get
        self._fold = store.vocab.lowercase
        self._started = time.perf_counter()

    def __repr__(self) -> str:
        return f"Sanitizer({self.mechanism!r}, oov={self.oov!r})"

    # ---------------------------------------------------------------------------------------

    def sanitize_text(self, text: str) -> str:
        """Rewrite the words of ``text`` (any number of whole lines); the rest is kept."""
        self.counters.lines += _count_lines(text)
        self.counters.bytes += len(text.encode("utf-8", "surrogatepass"))
        self.formats.add("text")
        return self._rewrite(text, self.rng, self.counters)

    def _rewrite(self, text: str, rng: np.random.Generator, c: Counters, unit: str = "\n") -> str:
        """Rewrite the words of ``text``; ``unit`` ends one unit of the per-line budget."""
        pieces = []
        open_line = 0  # words already seen on the line a cut between pieces runs through
        # Pieces bound the memory a long line costs; normal blocks are a single piece.
        for piece in tx.segments(text, SEGMENT_CHARS):
            new, per_line = self._rewrite_piece(piece, rng, c, unit)
            per_line[0] += open_line
            c.max_words_per_line = max(c.max_words_per_line, int(per_line.max()))
            open_line = int(per_line[-1])
            pieces.append(new)
        return pieces[0] if len(pieces) == 1 else "".join(pieces)

    def _rewrite_piece(self, text: str, rng: np.random.Generator, c: Counters, unit: str):
        """``text`` with its words rewritten, and the number of words in each of its units."""
        parts = tx.split(text)
        words = parts[1::2]
        n = len(words)
        per_line = _words_per_unit(parts[0::2], unit)
        if n == 0:
            return text, per_line
        keys = list(map(str.lower, words)) if self._fold else words
        ids = np.fromiter(map(self._lookup, keys, repeat(-1)), dtype=np.int64, count=n)
        known = np.flatnonzero(ids >= 0)
        out = self.mechanism.perturb(ids[known], rng)
        same = out == ids[known]
        n_same = int(np.count_nonzero(same))
        c.words += n
        c.unchanged += n_same
        c.replaced += len(known) - n_same
        c.oov += n - len(known)

        new = np.empty(n, dtype=object)
        new[known] = list(map(self._words.__getitem__, out.tolist()))
        if len(known) < n:
            unknown = np.flatnonzero(ids < 0)
            if self.oov == "mask":
                new[unknown] = self.oov_token
            elif self.oov == "random":
                picks = rng.integers(0, len(self._words), len(unknown))
                new[unknown] = list(map(self._words.__getitem__, picks.tolist()))
            else:  # keep
                new[unknown] = [words[j] for j in unknown.tolist()]
        if self._fold:
            # Words with capitals: an unchanged one is written as it came (iPhone stays iPhone);
            # a replacement takes its case shape. Masks and kept words are already final.
            cased = np.fromiter(map(operator.ne, words, keys), dtype=bool, count=n)
            unchanged = np.zeros(n, dtype=bool)
            unchanged[known[same]] = True
            reshape = np.zeros(n, dtype=bool)
            reshape[known[~same]] = True
            if self.oov == "random":
                reshape[ids < 0] = True
            for j in np.flatnonzero(cased & unchanged).tolist():
                new[j] = words[j]
            for j in np.flatnonzero(cased & reshape).tolist():
                new[j] = tx.apply_shape(new[j], tx.shape_of(words[j]))
        parts[1::2] = new.tolist()
        return tx.join(parts), per_line

    def rewrite_records(self, records: list[list[str]], rng: np.random.Generator,
                        c: Counters) -> list[list[str]]:
        """The named fields of many records (CSV rows, JSON lines) in one mechanism call.

        A record is one unit of the per-line budget: its fields' words add up.
        """
        c.lines += len(records)
        text = "".join(US.join(r) + RS for r in records)
        if text.count(RS) == len(records) and \
                text.count(US) == sum(max(len(r) - 1, 0) for r in records):
            new = self._rewrite(text, rng, c, RS).split(RS)[:-1]
            return [n.split(US) if r else [] for n, r in zip(new, records)]
        out = []  # a field holds one of the two separators: one record at a time
        for r in records:
            part = Counters()
            out.append([self._rewrite(f, rng, part, "") for f in r])
            c.add(part)
            c.max_words_per_line = max(c.max_words_per_line, part.words)
        return out

    def sanitize_lines(self, lines: list[str]) -> list[str]:
        """For notebooks and Dask: one output string per input string, in one mechanism call.

        Example::

            s.sanitize_lines(["The quick brown fox.", "Call me Ishmael."])
        """
        lines = list(lines)
        if any("\n" in line for line in lines):  # cannot rejoin on newlines: one call per string
            return [self.sanitize_text(line) for line in lines]
        # Replacement words never hold a newline, so the joined text splits back line for line.
        return self.sanitize_text("".join(line + "\n" for line in lines)).split("\n")[:-1]

    def sanitize_stream(self, src, dst, *, encoding: str = "utf-8",
                        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, progress=None,
                        workers: int = 1, block: int = BLOCK_BYTES, fmt=None,
                        stream: int | None = None) -> Counters:
        """Read bytes from ``src``, write sanitized bytes to ``dst``, line structure intact.

        Input is cut into blocks of whole lines (whole records of ``fmt``, a record format from
        :func:`.formats.make_format`); block i gets its own generator (spawned from this
        sanitizer's seed), so ``workers`` > 1 processes (see :mod:`.workers`) write exactly what
        one would. With ``stream`` (a number that names the input, e.g. a hash of its path) the
        blocks' generators are keyed by it instead of by the order of streams, so a file of a
        batch gets the same noise whatever else the batch holds. ``progress`` is called with
        each block's byte and line counts. Returns this stream's counts (``counters`` keeps the
        sanitizer's total).
        """
        blocks = self.blocks(src, encoding=encoding, max_line_bytes=max_line_bytes, block=block,
                             fmt=fmt, stream=stream, spans=workers > 1)
        if workers > 1:  # worth starting processes only when there is more than one block
            head = list(islice(blocks, 2))
            blocks = chain(head, blocks)
            workers = workers if len(head) > 1 else 1
        results = self.process(blocks, encoding, workers)
        total = Counters()
        with contextlib.closing(results):  # stops the workers if writing fails
            for data, counts in results:
                dst.write(data)
                total.add(counts)
                if progress is not None:
                    progress(counts.bytes, counts.lines)
        self.counters.add(total)
        return total

    def blocks(self, src, *, encoding: str = "utf-8",
               max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, block: int = BLOCK_BYTES, fmt=None,
               stream: int | None = None, spans: bool = False):
        """The :class:`Block`s of one input, numbered: indices continue from the last stream,
        or are ``(stream, i)`` for a named stream. With ``spans`` the blocks of a regular text
        file hold :class:`FileSpan`s (for worker processes) instead of bytes."""
        if getattr(fmt, "arrow", False):  # Parquet: a block is a row group (parquet.py)
            yield from self._arrow_blocks(fmt.chunks(src, spans), fmt, stream)
            return
        raw = read_chunks(src, max_line_bytes, block)
        self.formats.add("text" if fmt is None else getattr(fmt, "name", "jsonl"))
        if fmt is not None:
            from .formats import record_chunks

            raw = record_chunks(raw, fmt, encoding, max_line_bytes)
        where = FileSpan.source(src) if spans and fmt is None else None
        for i, (first_line, chunk) in enumerate(raw):
            if stream is None:
                index = self._next_block
                self._next_block += 1
            else:
                index = (stream, i)
            if where is not None:  # the chunks are contiguous: each starts where the last ended
                path, identity, offset = where
                where = path, identity, offset + len(chunk)
                chunk = FileSpan(path, offset, len(chunk), identity)
            yield Block(index, first_line, chunk, fmt)

    def _arrow_blocks(self, chunks, fmt, stream):
        if isinstance(getattr(self, "formats", None), set):  # what the report releases
            self.formats.add(fmt.name)
        for i, (at, data) in enumerate(chunks):
            if stream is None:
                index = self._next_block
                self._next_block += 1
            else:
                index = (stream, i)
            yield Block(index, at, data, fmt)

    def process(self, items, encoding: str, workers: int = 1, client=None):
        """``(bytes, Counters)`` for each :class:`Block` of ``items``, in order, on ``workers``
        processes (or as tasks on a Dask ``client``'s cluster); any other item (a marker between
        files) is passed through in its place."""
        if client is not None:
            from .dask import sanitize_chunks

            return sanitize_chunks(self, items, encoding, client)
        if workers > 1:
            from .workers import sanitize_chunks

            return sanitize_chunks(self, items, encoding, workers)
        return (self.sanitize_chunk(b.index, b.first_line, b.data, encoding, b.fmt)
                if isinstance(b, Block) else b for b in items)

    def sanitize_chunk(self, index, first_line, chunk: bytes, encoding: str,
                       fmt=None) -> tuple[bytes, Counters]:
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
            counts.lines += _count_lines(decoded)
            out = self._rewrite(decoded, rng, counts)
        else:
            out = fmt.rewrite(decoded, first_line,
                              lambda records: self.rewrite_records(records, rng, counts), counts)
        return out.encode(encoding, errors="replace"), counts

    def chunk_rng(self, index) -> np.random.Generator:
        """The generator of block ``index``: the ``index``-th child of this sanitizer's seed
        (``index`` a tuple: a grandchild, e.g. (file key, block) for a file of many)."""
        from .rng import make_rng

        if self.seed_sequence is None:
            return self.rng
        root = self.seed_sequence
        key = index if isinstance(index, tuple) else (index,)
        seq = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, *key))
        return make_rng(seq=seq, bit_generator=self.bit_generator)

    # ---------------------------------------------------------------------------------------

    def report(self) -> dict:
        """Counts, privacy statement and vocabulary identity (no text, no seed)."""
        elapsed = time.perf_counter() - self._started
        c = asdict(self.counters)
        c["perturbed"] = c["replaced"]  # the name reports used before 0.2
        guarantee = self.mechanism.guarantee
        statement = self.mechanism.privacy_statement(self.formats or ("text",))
        return {
            "mechanism": self.mechanism.name, "epsilon": self.mechanism.epsilon,
            "epsilon_unit": self.mechanism.unit,
            "vocabulary": {"fingerprint": self.store.manifest["vocab_fingerprint"],
                           "index": self.store.manifest["key"], "size": len(self.store.vocab),
                           "dim": self.store.vocab.dim, "source": self.store.manifest["source"]},
            "oov_policy": self.oov, "counts": c,
            "annoy_exact_fallbacks": self.store.annoy_fallbacks,
            "counts_note": "the replaced/unchanged counts compare the output with the input and "
                           "are not covered by the privacy guarantee: keep this report with the "
                           "input, not with the released output",
            "elapsed_seconds": round(elapsed, 3),
            "words_per_second": round(c["words"] / elapsed) if elapsed > 0 else None,
            "guarantee": guarantee.as_dict(),
            "privacy": statement,
            "per_line_bound": guarantee.line_bound(c["max_words_per_line"]),
        }


def _words_per_unit(separators: list[str], unit: str) -> np.ndarray:
    """Words in each unit (line, record) of a piece, from the separators around its words."""
    if not unit:
        return np.array([len(separators) - 1])
    breaks = np.fromiter(map(str.count, separators, repeat(unit)), dtype=np.int64,
                         count=len(separators))
    line_of_word = np.cumsum(breaks[:-1])
    return np.bincount(line_of_word, minlength=int(breaks.sum()) + 1)


def _count_lines(text: str) -> int:
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


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
