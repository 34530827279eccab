"""The library's front door: a Sanitizer rewrites text, streams and blocks, on any engine.

A :class:`Sanitizer` puts together what the floors below provide: the index (vectors, W),
the mechanism (built by name, with its guarantee), the rewrite of text (:mod:`.rewrite`), the
cutting of input into blocks (:mod:`.stream`, :mod:`.formats`), an engine that maps the rewrite
over blocks (:mod:`.engines`), and the report of what happened (counts, never text).

Example::

    s = Sanitizer("tem", 3.0)                      # default embeddings, OS entropy
    s.sanitize_text("Call me Ishmael.\\n")
    with open("in.txt", "rb") as src, open("out.txt", "wb") as dst:
        s.sanitize_stream(src, dst)
    s.report()["counts"]
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import asdict
from itertools import chain, islice

import numpy as np

from .errors import InputChanged, PrivacyWarning
from .rewrite import Counters, Rewriter, count_lines
from .engines.tasks import BlockTask, RewriterSpec
from .stream import (BLOCK_BYTES, DEFAULT_MAX_LINE_BYTES, Block, BlockRewriter, ChangedBlock,
                     FileSpan, LocalTask, read_chunks)

__all__ = ["Sanitizer", "Counters", "Block", "FileSpan", "read_chunks", "BLOCK_BYTES",
           "DEFAULT_MAX_LINE_BYTES"]


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
        Out-of-vocabulary words: a placeholder, a uniform vocabulary word, or kept (leaks them;
        a :class:`.errors.PrivacyWarning` says so).
    seed : int, optional
        Reproducible noise (tests, audits only; a :class:`.errors.PrivacyWarning` says so). None
        draws the seed from the OS. Streams give each chunk of input its own generator spawned
        from this seed, so the output does not depend on how many worker processes ran.
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
        from .mechanisms import create, warn_experimental
        from .rng import make_rng, seed_sequence, warn_if_seeded

        if not isinstance(mech, str):  # an already constructed mechanism: made on purpose
            mechanism, store = mech, mech.store
            if getattr(mechanism, "experimental", False):
                warn_experimental(mechanism.name)
        else:
            if store is None:
                from .index import BuildParams, open_index

                store = open_index(embeddings, embeddings_format, vocab_size, cache_dir=cache_dir,
                                   params=BuildParams(trees=trees), progress=progress,
                                   words_only=words_only)
            mechanism = create(mech, epsilon=epsilon, store=store, **mechanism_options)
        self.rewriter = Rewriter(mechanism, oov=oov, oov_token=oov_token)
        self.mechanism, self.store = mechanism, store
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
        self.block_rewriter = BlockRewriter(self.rewriter, self.seed_sequence, rng=self.rng,
                                            bit_generator=bit_generator)
        self.formats = set()  # the input formats seen: what a report says is released as is
        self.counters = Counters()
        self._next_block = 0  # block streams are never reused, even across sanitize_stream calls
        self._started = time.perf_counter()

    @classmethod
    def rebuild(cls, spec: RewriterSpec) -> "Sanitizer":
        """The sanitizer another process described by :meth:`spec` (same mechanism, index,
        OOV policy and seed), e.g. in a Dask worker or a pickled function."""
        built = spec.build()
        r = built.rewriter
        return cls(r.mechanism, seed=built.seed_sequence, oov=r.oov, oov_token=r.oov_token,
                   bit_generator=built.bit_generator)

    def spec(self) -> RewriterSpec:
        """What another process needs to rebuild this sanitizer's rewrite of blocks."""
        return RewriterSpec.of(self.block_rewriter)

    @property
    def oov(self) -> str:
        return self.rewriter.oov

    def __repr__(self) -> str:
        return f"Sanitizer({self.mechanism!r}, oov={self.oov!r})"

    # ---------------------------------------------------------------------------------------

    def sanitize_text(self, text: str) -> str:
        """Rewrite the words of ``text`` (any number of whole lines); the rest is kept."""
        self.counters.lines += count_lines(text)
        self.counters.bytes += len(text.encode("utf-8", "surrogatepass"))
        self.formats.add("text")
        return self.rewriter.rewrite(text, self.rng, self.counters)

    def rewrite_records(self, records: list[list[str]], rng: np.random.Generator,
                        c: Counters) -> list[list[str]]:
        """The named fields of many records (CSV rows, JSON lines) in one mechanism call; a
        record is one unit of the per-line budget (see :meth:`.rewrite.Rewriter.rewrite_records`)."""
        return self.rewriter.rewrite_records(records, rng, c)

    def chunk_rng(self, index) -> np.random.Generator:
        """The generator of block ``index`` (see :meth:`.stream.BlockRewriter.chunk_rng`)."""
        return self.block_rewriter.chunk_rng(index)

    def sanitize_chunk(self, index, first_line, chunk, encoding: str, fmt=None):
        """Block ``index`` of a stream: bytes out, counts (see :mod:`.stream`)."""
        return self.block_rewriter.sanitize_chunk(index, first_line, chunk, encoding, fmt)

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
        sanitizer's seed), so ``workers`` > 1 processes (see :mod:`.engines`) write exactly what
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
            for result in results:
                if isinstance(result, ChangedBlock):
                    raise InputChanged(result.message)
                data, counts = result
                dst.write(data)
                total.add(counts)
                if progress is not None:
                    progress(counts.bytes, counts.lines)
        self.counters.add(total)
        return total

    def blocks(self, src, *, encoding: str = "utf-8",
               max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, block: int = BLOCK_BYTES, fmt=None,
               stream: int | None = None, spans: bool = False):
        """The :class:`Block`s of one input (cut by :func:`.formats.cut`), numbered: indices
        continue from the last stream, or are ``(stream, i)`` for a named stream."""
        from .formats import cut, format_name

        self.formats.add(format_name(fmt))
        for i, (first_line, chunk) in enumerate(cut(src, fmt, encoding=encoding, block=block,
                                                    max_line_bytes=max_line_bytes, spans=spans)):
            if stream is None:
                index = self._next_block
                self._next_block += 1
            else:
                index = (stream, i)
            yield Block(index, first_line, chunk, fmt)

    def process(self, items, encoding: str, workers: int = 1, client=None):
        """``(bytes, Counters)`` for each :class:`Block` of ``items`` (a :class:`ChangedBlock`
        for one whose file changed before it was read), in order, on ``workers`` processes (or
        as tasks on a Dask ``client``'s cluster); any other item (a marker between files) is
        passed through in its place."""
        if client is not None:
            from .engines import dask

            return dask.run(BlockTask(self.spec(), encoding), items, client)
        if workers > 1:
            from .engines import pool

            return pool.run(BlockTask(self.spec(), encoding), items, workers)
        from .engines import local

        return local.run(LocalTask(self.block_rewriter, encoding), items)

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
            "annoy_exact_fallbacks": c["annoy_fallbacks"],
            "counts_note": "the replaced/unchanged counts compare the output with the input and "
                           "are not covered by the privacy guarantee: keep this report with the "
                           "input, not with the released output",
            "elapsed_seconds": round(elapsed, 3),
            "words_per_second": round(c["words"] / elapsed) if elapsed > 0 else None,
            "guarantee": guarantee.as_dict(),
            "privacy": statement,
            "per_line_bound": guarantee.line_bound(c["max_words_per_line"]),
        }


def summary_line(report: dict) -> str:
    """A run's report in one line for stderr: counts, the mechanism and what it guarantees."""
    from .privacy import summary_phrase

    c = report["counts"]
    oov_pct = 100.0 * c["oov"] / c["words"] if c["words"] else 0.0
    oov_what = {"mask": "masked", "random": "random words", "keep": "KEPT"}[report["oov_policy"]]
    lines = f"{c['lines']} line" + ("" if c["lines"] == 1 else "s")
    return (f"{lines}, {_human(c['words'])} words: {_human(c['replaced'])} replaced, "
            f"{_human(c['unchanged'])} unchanged, {_human(c['oov'])} out of vocabulary "
            f"({oov_pct:.1f}%, {oov_what}); {report['mechanism']} eps={report['epsilon']:g} "
            f"{report['epsilon_unit']}; {summary_phrase(report['guarantee'])}; "
            f"max {c['max_words_per_line']} words/line; {report['elapsed_seconds']:.1f} s, "
            f"{_human(report['words_per_second'] or 0)} words/s")


def _human(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:.0f}"
