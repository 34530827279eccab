"""The local engine: the blocks in this process, one after the other.

Example::

    results = run(LocalTask(block_rewriter, "utf-8"), blocks)
"""

from __future__ import annotations


def run(task, items):
    """``task(block)`` for each block of ``items``, every other item as it is, in order."""
    from ..stream import Block

    return (task(b) if isinstance(b, Block) else b for b in items)
