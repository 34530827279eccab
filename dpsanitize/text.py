"""Tokenize and detokenize without losing a byte: words out, everything else kept in place.

A word token is a run of letters and digits, with apostrophes allowed inside (``don't``,
``l’homme``). Everything between word tokens (spaces, punctuation, line endings, emoji, control
characters) is kept exactly. ``split`` and ``join`` are inverses.

Example::

    parts = split("Hello, World!")     # ['', 'Hello', ', ', 'World', '!']
    parts[1::2] = ["Howdy", "Earth"]
    join(parts)                        # 'Howdy, Earth!'
"""

from __future__ import annotations

import re

WORD_PATTERN = r"[^\W_]+(?:['’][^\W_]+)*"
_SPLIT = re.compile(f"({WORD_PATTERN})")

LOWER, TITLE, UPPER = 0, 1, 2
OOV_POLICIES = ("mask", "random", "keep")


def split(text: str) -> list[str]:
    """Alternating [separator, word, separator, ..., separator]; words at odd positions."""
    return _SPLIT.split(text)


def join(parts: list[str]) -> str:
    return "".join(parts)


def shape_of(word: str) -> int:
    """LOWER, TITLE (first letter upper) or UPPER (all cased letters upper, length > 1)."""
    if len(word) > 1 and word.isupper():
        return UPPER
    if word[:1].isupper():
        return TITLE
    return LOWER


def apply_shape(word: str, shape: int) -> str:
    if shape == UPPER:
        return word.upper()
    if shape == TITLE:
        return word[:1].upper() + word[1:]
    return word
