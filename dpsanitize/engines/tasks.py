"""What an engine maps over blocks in another process: a picklable description of the run's
block rewriter, rebuilt once per process.

:class:`RewriterSpec` names the index (a cache path, or the embeddings to open it from), the
vocabulary's fingerprint, the mechanism's :class:`..mechanisms.base.Recipe`, the OOV policy and
the seed; :class:`BlockTask` is the function ``block -> (bytes, Counters)`` built from it.

Example::

    task = BlockTask(RewriterSpec.of(sanitizer.block_rewriter), "utf-8")
    data, counts = task(block)       # in any process
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import ResourceError
from ..rewrite import Rewriter
from ..stream import Block, BlockRewriter, LocalTask

_BUILT: dict = {}  # per process: spec -> BlockRewriter


@dataclass(frozen=True)
class RewriterSpec:
    """What another process needs to rebuild a run's block rewriter (no text, no generator
    state): where the index is (a cache path, or the embeddings to open it from), the
    vocabulary's fingerprint, the mechanism's recipe, the OOV policy and the seed."""

    store_path: str
    source: tuple  # (name, value) pairs: embeddings, format, vocab size, words-only, trees
    vocab_fingerprint: str
    recipe: object  # mechanisms.Recipe
    options: tuple  # (("oov", ...), ("oov_token", ...))
    bit_generator: str
    entropy: int = field(repr=False)  # the run's seed: never in a log line
    spawn_key: tuple = field(repr=False)

    @classmethod
    def of(cls, block_rewriter: BlockRewriter) -> "RewriterSpec":
        from ..errors import InvalidParameter

        seq = block_rewriter.seed_sequence
        if seq is None:
            raise InvalidParameter("worker processes need a sanitizer seeded by seed=, not rng=")
        rewriter = block_rewriter.rewriter
        store = rewriter.mechanism.store
        m = store.manifest
        default = m["source_format"] == "default"
        source = (("embeddings", None if default else m["source"]),
                  ("fmt", "auto" if default else m["source_format"]),
                  ("vocab_size", m["requested_vocab_size"]), ("words_only", m["words_only"]),
                  ("trees", m["annoy"]["trees"]))
        return cls(store.path, source, m["vocab_fingerprint"], rewriter.mechanism.recipe,
                   (("oov", rewriter.oov), ("oov_token", rewriter.oov_token)),
                   block_rewriter.bit_generator, int(seq.entropy), tuple(seq.spawn_key))

    def open_store(self):
        """The index: the cache entry at ``store_path`` when this machine has it, else opened
        (or built) from the same embeddings; another vocabulary is an error."""
        from ..index import BuildParams, load_entry, open_index

        if os.path.isdir(self.store_path):
            store = load_entry(self.store_path)
        else:
            s = dict(self.source)
            store = open_index(s["embeddings"], s["fmt"], s["vocab_size"],
                               words_only=s["words_only"], params=BuildParams(trees=s["trees"]))
        if store.manifest["vocab_fingerprint"] != self.vocab_fingerprint:
            raise ResourceError("a worker opened another vocabulary than the client's (other "
                                "embeddings file?); give the workers the client's cache or file")
        return store

    def build(self) -> BlockRewriter:
        """This process's block rewriter for the spec, built on first use."""
        found = _BUILT.get(self)
        if found is None:
            mechanism = self.recipe.build(self.open_store())
            seq = np.random.SeedSequence(self.entropy, spawn_key=self.spawn_key)
            found = BlockRewriter(Rewriter(mechanism, **dict(self.options)), seq,
                                  bit_generator=self.bit_generator)
            _BUILT[self] = found
        return found


@dataclass(frozen=True)
class BlockTask:
    """The function the engines map over blocks: picklable, rebuilt once per process."""

    spec: RewriterSpec
    encoding: str

    def prepare(self) -> None:
        """Build this process's block rewriter now (a worker's start), not at its first block."""
        self.spec.build()

    def __call__(self, block: Block):
        return LocalTask(self.spec.build(), self.encoding)(block)
