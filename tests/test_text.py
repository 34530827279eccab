"""Tokenizer and streaming: every non-word byte kept, for any Unicode (hypothesis)."""

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dpsanitize import text as tx
from dpsanitize.errors import InputDataError
from dpsanitize.pipeline import Sanitizer, read_chunks

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@given(st.text())
@SETTINGS
def test_split_join_round_trip(s):
    parts = tx.split(s)
    assert tx.join(parts) == s
    assert all(tx.split(w) == ["", w, ""] for w in parts[1::2])


@pytest.mark.parametrize("word,shape,out", [
    ("house", tx.LOWER, "barn"), ("House", tx.TITLE, "Barn"), ("HOUSE", tx.UPPER, "BARN"),
    ("I", tx.TITLE, "Barn"), ("McDonald", tx.TITLE, "Barn"), ("iPhone", tx.LOWER, "barn"),
])
def test_case_shapes(word, shape, out):
    assert tx.shape_of(word) == shape and tx.apply_shape("barn", shape) == out


@pytest.fixture(scope="module")
def sanitizer_factory(toy_store):
    def make(oov="mask", token="UNK"):
        return Sanitizer("laplace", 0.5, store=toy_store, oov=oov, oov_token=token, seed=3)
    return make


LINES = st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=40), max_size=8)
ENDINGS = st.sampled_from(["\n", "\r\n", ""])


@given(lines=LINES, endings=st.lists(ENDINGS, min_size=8, max_size=8), oov=st.sampled_from(["mask", "random"]))
@SETTINGS
def test_any_unicode_keeps_lines_and_non_word_characters(sanitizer_factory, lines, endings, oov):
    text = "".join(line.replace("\n", " ").replace("\r", " ") + end
                   for line, end in zip(lines, endings))
    out = sanitizer_factory(oov).sanitize_text(text)
    assert out.count("\n") == text.count("\n") and out.count("\r") == text.count("\r")
    assert tx.split(out)[0::2] == tx.split(text)[0::2]
    assert len(tx.split(out)) == len(tx.split(text))


@given(data=st.binary(max_size=300), block=st.integers(1, 64))
@SETTINGS
def test_streaming_any_bytes_either_works_or_is_a_data_error(sanitizer_factory, data, block):
    s = sanitizer_factory()
    out = io.BytesIO()
    try:
        s.sanitize_stream(io.BytesIO(data), out, max_line_bytes=1000)
    except InputDataError as exc:
        assert "line" in str(exc) and "byte offset" in str(exc)
        return
    assert out.getvalue().count(b"\n") == data.count(b"\n")
    assert tx.split(out.getvalue().decode())[0::2] == tx.split(data.decode())[0::2]


@given(data=st.binary(max_size=500), block=st.integers(1, 50), limit=st.integers(1, 80))
@SETTINGS
def test_read_chunks_are_whole_lines(data, block, limit):
    chunks = []
    try:
        for first, chunk in read_chunks(io.BytesIO(data), limit, block=block):
            chunks.append((first, chunk))
    except InputDataError as exc:
        longest = max(len(x) for x in data.split(b"\n"))
        assert longest > limit and "longer than --max-line-bytes" in str(exc)
        line = int(str(exc).split()[1].rstrip(":"))
        assert len(data.split(b"\n")[line - 1]) > limit
        return
    assert b"".join(c for _, c in chunks) == data
    assert all(c.endswith(b"\n") for _, c in chunks[:-1])
    expected_first = 1
    for first, chunk in chunks:
        assert first == expected_first
        expected_first += chunk.count(b"\n")


def test_decode_error_names_line_and_offset_only(sanitizer_factory):
    data = b"fine line\nsecret \xff\xfe token\n"
    with pytest.raises(InputDataError) as exc:
        sanitizer_factory().sanitize_stream(io.BytesIO(data), io.BytesIO())
    message = str(exc.value)
    assert message.startswith("line 2: not valid utf-8 at byte offset 7 (")
    assert "--encoding" in message and "zcat" in message and "secret" not in message


def test_gzip_input_is_named_as_such(sanitizer_factory):
    import gzip

    with pytest.raises(InputDataError, match="gzip-compressed: zcat FILE"):
        sanitizer_factory().sanitize_stream(io.BytesIO(gzip.compress(b"secret words\n")),
                                            io.BytesIO())


def test_counters_and_max_words_per_line(sanitizer_factory, toy_embeddings):
    _, words, _ = toy_embeddings
    s = sanitizer_factory()
    s.sanitize_text(f"{words[0]} {words[1]} Qqq\n\n{words[2]}\n")
    s.sanitize_text(f"{words[3]} {words[4]} {words[5]} {words[6]}")
    c = s.counters
    assert (c.lines, c.words, c.oov, c.max_words_per_line) == (4, 8, 1, 4)
    assert c.replaced + c.unchanged == 7


def test_empty_and_wordless_text(sanitizer_factory):
    s = sanitizer_factory()
    assert s.sanitize_text("") == "" and s.sanitize_text("... !!\n") == "... !!\n"
    assert s.counters.words == 0 and s.counters.lines == 1


def test_library_sanitize_lines(toy_store, toy_embeddings):
    _, words, _ = toy_embeddings
    s = Sanitizer("gumbel", 400.0, store=toy_store, seed=1)
    out = s.sanitize_lines([f"{words[0]}, {words[1]}!", "no vocabulary here"])
    assert len(out) == 2 and out[0].endswith("!") and out[1] == "<unk> <unk> <unk>"
    assert s.counters.words == 5 and s.counters.lines == 2
    assert s.sanitize_lines([]) == []


def test_sanitize_lines_one_string_per_string(toy_store, toy_embeddings):
    """Batched (no string holds a newline) or not, strings map one to one, layout intact."""
    _, words, _ = toy_embeddings
    batched = ["", f" {words[4]} ", f"{words[5]}\r", "?!"]
    for lines in (batched, [*batched, f"{words[2]}\r\n{words[3]}", "\n"]):
        out = Sanitizer("gumbel", 400.0, store=toy_store, seed=1).sanitize_lines(lines)
        assert [tx.split(o)[0::2] for o in out] == [tx.split(line)[0::2] for line in lines]


@pytest.mark.parametrize("text,parts", [
    ("can't", ["", "ca", "n't"]),
    ("I won't, you'll see", ["", "I", " ", "wo", "n't, ", "you", "'ll ", "see", ""]),
    ("It’s O'Brien's", ["", "It", "’s ", "O'Brien", "'s"]),
    ("DON'T we'd've", ["", "DO", "N'T ", "we", "'d've"]),
    ("rock'n'roll l'homme", ["", "rock'n'roll", " ", "l'homme", ""]),
    ("n't 's", ["n't 's"]),
    ("it 's fine , is n't it", ["", "it", " 's ", "fine", " , ", "is", " n't ", "it", ""]),
    ("he said 'hello' to 'em", ["", "he", " ", "said", " '", "hello", "' ", "to", " '", "em", ""]),
])
def test_clitics_are_split_off_like_glove(text, parts):
    assert tx.split(text) == parts


def test_output_vocabulary_holds_only_whole_words():
    from dpsanitize.embeddings import make_vocabulary

    words = ["the", "n't", "ca", "'s", "o'brien", "it's", "u.s.", "house"]
    vocab, dropped = make_vocabulary(words, np.eye(len(words), dtype=np.float32), 0)
    assert vocab.words == ["the", "ca", "o'brien", "house"] and dropped["non_words"] == 4


@given(st.text(alphabet=st.sampled_from("ab'’ .\n_é-"), max_size=200), st.integers(1, 20))
@SETTINGS
def test_segments_tokenize_like_the_whole(text, size):
    pieces = list(tx.segments(text, size))
    assert "".join(pieces) == text
    assert [w for p in pieces for w in tx.split(p)[1::2]] == tx.split(text)[1::2]
    assert all(len(p) <= size or not any(c in " .\n_-" for c in p[size:]) for p in pieces)


class _NextWord:
    """A stand-in mechanism: word i -> word i+1 for the ids listed in ``move``, else unchanged."""

    name, epsilon, unit = "next", 1.0, "test"

    def __init__(self, store, move):
        self.store, self.move = store, set(move)

    def perturb(self, ids, rng):
        shift = np.array([i in self.move for i in ids.tolist()], dtype=np.int64)
        return (ids + shift) % len(self.store.vocab)


def test_unchanged_words_keep_their_bytes_replacements_take_the_case_shape(toy_store):
    words = toy_store.vocab.words
    a, b, c = (words[i] for i in (0, 1, 2))
    text = f"{a[0]}{a[1:].upper()} {b.upper()} {c.title()} {a}'s X{a}\n"
    # nothing replaced: every word comes back byte for byte, mixed case included
    s = Sanitizer(_NextWord(toy_store, []), seed=1)
    assert s.sanitize_text(text).replace("<unk>", f"X{a}") == text
    assert s.counters.replaced == 0
    # replaced: lower, UPPER and Title shapes carry over; mixed shapes follow the first letter
    s = Sanitizer(_NextWord(toy_store, [0, 1, 2]), seed=1)
    assert s.sanitize_text(text) == (f"{words[1]} {words[2].upper()} {words[3].title()} "
                                     f"{words[1]}'s <unk>\n")


def test_a_long_line_is_rewritten_in_pieces_with_the_same_result(toy_store, monkeypatch):
    from dpsanitize import rewrite

    words = toy_store.vocab.words
    line = " ".join(words[i % 40] for i in range(3000)) + ", Qq\n" + " ".join(words[:5]) + "\n"
    whole = Sanitizer(_NextWord(toy_store, range(0, 300, 2)), seed=1)
    expected = whole.sanitize_text(line)
    monkeypatch.setattr(rewrite, "SEGMENT_CHARS", 50)
    pieces = Sanitizer(_NextWord(toy_store, range(0, 300, 2)), seed=1)
    assert pieces.sanitize_text(line) == expected
    assert pieces.counters == whole.counters and whole.counters.max_words_per_line == 3001
