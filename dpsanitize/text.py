"""Tokenize and detokenize without losing a byte: words out, everything else kept in place.

A word token is a run of letters and digits, with apostrophes allowed inside (``O'Brien``,
``l’homme``). English clitics at the end of a word are split off the way GloVe's tokenizer
splits them (``can't`` → ``ca`` + ``n't``, ``it's`` → ``it`` + ``'s``; also ``'m 're 've 'll
'd``, with ``'`` or ``’``, in any case): the stem is the word, and the clitic is copied like
punctuation. A clitic that stands alone, as in text tokenized that way already (``is n't``,
``it 's``), is copied too. Everything between word tokens (spaces, punctuation, clitics, line endings, emoji,
control characters) is kept exactly. ``split`` and ``join`` are inverses.

Example::

    parts = split("Hello, World!")     # ['', 'Hello', ', ', 'World', '!']
    parts[1::2] = ["Howdy", "Earth"]
    join(parts)                        # 'Howdy, Earth!'
    split("I can't")                   # ['', 'I', ' ', 'ca', "n't"]
"""

from __future__ import annotations

import operator
import re
from itertools import compress, repeat

WORD_PATTERN = r"[^\W_]+(?:['’][^\W_]+)*"
CLITIC_PATTERN = r"(?:n['’]t|['’](?:s|m|d|re|ve|ll))"
_SPLIT = re.compile(f"({WORD_PATTERN})")
_WORD = re.compile(WORD_PATTERN)
_TRAILING_CLITICS = re.compile(rf"(?<=[^\W_]){CLITIC_PATTERN}+\Z", re.IGNORECASE)
_ENDS_WITH_CLITIC = re.compile(rf"{CLITIC_PATTERN}\Z", re.IGNORECASE)
_NOT_CLITIC = re.compile(r"n['’]t", re.IGNORECASE)
_SHORT_CLITICS = frozenset(("s", "m", "d", "re", "ve", "ll"))
_SAFE_CUT = re.compile(r"(?!['’])[\W_]")  # no word or clitic runs across such a character

LOWER, TITLE, UPPER = 0, 1, 2
OOV_POLICIES = ("mask", "random", "keep")


def split(text: str) -> list[str]:
    """Alternating [separator, word, separator, ..., separator]; words at odd positions."""
    parts = _SPLIT.split(text)
    absorbed = []  # word positions that are clitics standing alone (PTB text: "is n't", "it 's")
    for quote in ("'", "’"):
        if quote not in text:
            continue
        words = parts[1::2]  # only words holding an apostrophe can end in a clitic
        for j in compress(range(len(words)), map(operator.contains, words, repeat(quote))):
            word = parts[2 * j + 1]
            m = _TRAILING_CLITICS.search(word)
            if m and m.start():
                parts[2 * j + 1] = word[:m.start()]
                parts[2 * j + 2] = word[m.start():] + parts[2 * j + 2]
            elif _NOT_CLITIC.fullmatch(word):
                absorbed.append(2 * j + 1)
        seps = parts[0:-1:2]  # a separator ending in an apostrophe after a space: 's 're 'll ...
        for i in compress(range(len(seps)), map(str.endswith, seps, repeat(quote))):
            sep = seps[i]
            if (len(sep) == 1 and i == 0 or sep[-2:-1].isspace()) and \
                    parts[2 * i + 1].lower() in _SHORT_CLITICS:
                absorbed.append(2 * i + 1)
    return _absorb(parts, sorted(absorbed)) if absorbed else parts


def _absorb(parts: list[str], positions: list[int]) -> list[str]:
    """Merge the words at ``positions`` into the separators around them."""
    out: list[str] = []
    start = 0
    for w in positions:
        if w - 1 >= start:
            out.extend(parts[start:w])
        out[-1] += parts[w] + parts[w + 1]
        start = w + 2
    out.extend(parts[start:])
    return out


def join(parts: list[str]) -> str:
    return "".join(parts)


def is_whole_word(token: str) -> bool:
    """True when ``split`` returns ``token`` as one word: what an output word must be.

    ``n't``, ``'s``, ``u.s.`` and ``e-mail`` are not.
    """
    return bool(_WORD.fullmatch(token)) and not _ENDS_WITH_CLITIC.search(token)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def has_control_characters(text: str) -> bool:
    """Line breaks, record separators and the like: never allowed in a placeholder."""
    return bool(_CONTROL.search(text))


def segments(text: str, size: int):
    """Pieces of about ``size`` characters that tokenize exactly as the whole text does.

    Each cut falls on a character that no word or clitic can contain (space, punctuation), so
    a long line can be rewritten piece by piece in bounded memory.
    """
    start = 0
    while len(text) - start > size:
        m = _SAFE_CUT.search(text, start + size)
        if m is None:
            break
        yield text[start:m.start()]
        start = m.start()
    yield text[start:] if start else text


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
