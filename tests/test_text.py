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
    assert str(exc.value) == "line 2: not valid utf-8 at byte offset 7"


def test_counters_and_max_words_per_line(sanitizer_factory, toy_embeddings):
    _, words, _ = toy_embeddings
    s = sanitizer_factory()
    s.sanitize_text(f"{words[0]} {words[1]} Qqq\n\n{words[2]}\n")
    s.sanitize_text(f"{words[3]} {words[4]} {words[5]} {words[6]}")
    c = s.counters
    assert (c.lines, c.words, c.oov, c.max_words_per_line) == (4, 8, 1, 4)
    assert c.perturbed + c.unchanged == 7


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
