"""The rewrite of text: tokens -> vocabulary ids -> mechanism -> text, and the counts of it.

No files, no processes: a :class:`Rewriter` takes a piece of text (whole lines) or the named
fields of many records, and a random generator, and returns the rewritten text; only word tokens
change, everything else is copied. :class:`Counters` count what happened, never what was said.

Example::

    r = Rewriter(mechanism, oov="mask")
    c = Counters()
    r.rewrite("Call me Ishmael.\n", rng, c)
    r.rewrite_records([["a review", "a title"]], rng, c)
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass
from itertools import repeat

import numpy as np

from . import text as tx
from .errors import InvalidParameter

SEGMENT_CHARS = 1 << 20  # a longer block (one long line) is rewritten piece by piece
US, RS = "\x1f", "\x1e"  # between the fields of a record, after each record (never in a word)


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
    annoy_fallbacks: int = 0  # Annoy queries answered short, decoded exactly instead

    def add(self, other: "Counters") -> None:
        for name, value in asdict(other).items():
            merged = max if name == "max_words_per_line" else operator.add
            setattr(self, name, merged(getattr(self, name), value))


class Rewriter:
    """A mechanism and its vocabulary, ready to rewrite the words of text.

    ``oov``: out-of-vocabulary words become ``oov_token`` ("mask"), a uniform vocabulary word
    ("random") or stay as they are ("keep").
    """

    def __init__(self, mechanism, *, oov: str = "mask", oov_token: str = "<unk>"):
        if oov not in tx.OOV_POLICIES:
            raise InvalidParameter(f"oov must be one of {', '.join(tx.OOV_POLICIES)}")
        if tx.has_control_characters(oov_token):  # they separate lines and records
            raise InvalidParameter("the OOV placeholder must not contain line breaks or other "
                                   "control characters")
        self.mechanism = mechanism
        self.oov, self.oov_token = oov, oov_token
        vocab = mechanism.store.vocab
        self._words = vocab.words
        self._lookup = vocab.id_of.get
        self._fold = vocab.lowercase

    def rewrite(self, text: str, rng: np.random.Generator, c: Counters, unit: str = "\n") -> str:
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
        per_line = words_per_unit(parts[0::2], unit)
        if n == 0:
            return text, per_line
        keys = list(map(str.lower, words)) if self._fold else words
        ids = np.fromiter(map(self._lookup, keys, repeat(-1)), dtype=np.int64, count=n)
        known = np.flatnonzero(ids >= 0)
        store = self.mechanism.store
        before = store.annoy_fallbacks
        out = self.mechanism.perturb(ids[known], rng)
        c.annoy_fallbacks += store.annoy_fallbacks - before
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
            new = self.rewrite(text, rng, c, RS).split(RS)[:-1]
            return [n.split(US) if r else [] for n, r in zip(new, records)]
        out = []  # a field holds one of the two separators: one record at a time
        for r in records:
            part = Counters()
            out.append([self.rewrite(f, rng, part, "") for f in r])
            c.add(part)
            c.max_words_per_line = max(c.max_words_per_line, part.words)
        return out


def words_per_unit(separators: list[str], unit: str) -> np.ndarray:
    """Words in each unit (line, record) of a piece, from the separators around its words."""
    if not unit:
        return np.array([len(separators) - 1])
    breaks = np.fromiter(map(str.count, separators, repeat(unit)), dtype=np.int64,
                         count=len(separators))
    line_of_word = np.cumsum(breaks[:-1])
    return np.bincount(line_of_word, minlength=int(breaks.sum()) + 1)


def count_lines(text: str) -> int:
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)
