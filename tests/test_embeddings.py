"""Loading embeddings: formats, detection, vocabulary cut, duplicates, clear errors."""

import numpy as np
import pytest

from conftest import WRITERS, run_cli, toy_vectors, toy_words, write_glove
from dpsanitize.embeddings import detect_format, load_vocabulary, make_vocabulary
from dpsanitize.errors import MissingInputError, ResourceError


@pytest.fixture
def words_vecs():
    return toy_words(40), toy_vectors(40, 5, seed=4)


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_formats_detected_and_loaded_identically(tmp_path, words_vecs, fmt):
    words, vecs = words_vecs
    path = WRITERS[fmt](tmp_path / f"e.{fmt}", words, vecs)
    assert detect_format(path) == fmt
    vocab, info = load_vocabulary(path, "auto", 0)
    assert vocab.words == words and info.format == fmt
    np.testing.assert_array_equal(vocab.vectors, vecs)
    forced, _ = load_vocabulary(path, fmt, 0)
    ref, _ = make_vocabulary(words, vecs, 0)
    assert vocab.fingerprint == forced.fingerprint == ref.fingerprint


def test_vocab_size_cut_and_duplicate_vectors_dropped(tmp_path, words_vecs):
    words, vecs = words_vecs
    vecs = vecs.copy()
    vecs[7] = vecs[2]          # exact repeat of an earlier vector: dropped
    vecs[9] = -0.0 * vecs[9]   # not a repeat of anything
    vecs[30] = vecs[3]         # beyond the cut: irrelevant
    path = write_glove(tmp_path / "e.txt", words, vecs)
    vocab, info = load_vocabulary(path, "auto", 20)
    assert len(vocab) == 20 and info.dropped_duplicates == 1
    assert vocab.words == words[:7] + words[8:21]  # W: the first 20 usable rows


def test_non_words_are_skipped_unless_asked(tmp_path, words_vecs):
    words, vecs = words_vecs
    words = list(words)
    words[1], words[4], words[6] = ",", "u.s.", "o'brien"
    path = write_glove(tmp_path / "e.txt", words, vecs)
    vocab, info = load_vocabulary(path, "auto", 10)
    assert "," not in vocab.id_of and "u.s." not in vocab.id_of and "o'brien" in vocab.id_of
    assert len(vocab) == 10 and info.dropped_non_words == 2
    everything, info = load_vocabulary(path, "auto", 10, words_only=False)
    assert everything.words == words[:10] and info.dropped_non_words == 0


def test_kv_is_never_auto_detected_but_loads_when_named(tmp_path, words_vecs):
    from gensim.models import KeyedVectors

    words, vecs = words_vecs
    kv = KeyedVectors(vecs.shape[1])
    kv.add_vectors(words, vecs)
    path = str(tmp_path / "e.kv")
    kv.save(path)
    with pytest.raises(ResourceError, match="pickle"):
        load_vocabulary(path, "auto", 0)
    vocab, _ = load_vocabulary(path, "kv", 0)
    assert vocab.words == words


def test_lowercase_detection(words_vecs):
    words, vecs = words_vecs
    assert make_vocabulary(words, vecs, 0)[0].lowercase
    assert not make_vocabulary(["Paris"] + words[1:], vecs, 0)[0].lowercase


def test_missing_file_is_missing_input(tmp_path):
    with pytest.raises(MissingInputError):
        load_vocabulary(str(tmp_path / "nope.txt"), "auto", 0)


CANARY = "zqxcanaryword"


def _malformed(tmp_path, kind):
    words, vecs = toy_words(12), toy_vectors(12, 4, seed=1)
    lines = [w + " " + " ".join(repr(float(x)) for x in v) for w, v in zip(words, vecs)]
    if kind == "short":
        lines[6] = CANARY + " 0.1 0.2 0.3"
        expect = "line 7"
    elif kind == "not-a-number":
        lines[6] = CANARY + " 0.1 0.2 " + CANARY + " 0.4"
        expect = "line 7"
    elif kind == "nan":
        lines[6] = CANARY + " 0.1 nan 0.3 0.4"
        expect = "line 7"
    elif kind == "bad-utf8":
        lines[6] = None
        expect = "line 7"
    elif kind == "w2v-truncated":
        lines = ["20 4"] + lines
        expect = "20 vectors"
    path = tmp_path / f"bad-{kind}.txt"
    with open(path, "wb") as f:
        for line in lines:
            f.write(b"\xff\xfe" + CANARY.encode() + b" 1 2 3 4\n" if line is None else line.encode() + b"\n")
    return str(path), expect


@pytest.mark.parametrize("kind", ["short", "not-a-number", "nan", "bad-utf8", "w2v-truncated"])
def test_malformed_embeddings_exit_78_with_line_and_no_content(runner, tmp_path, kind):
    path, expect = _malformed(tmp_path, kind)
    result = run_cli(runner, ["index", "info", "--embeddings", path, "--vocab-size", "0",
                              "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 78, result.output
    assert expect in result.stderr
    assert CANARY not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_missing_embeddings_exit_66(runner, tmp_path):
    result = run_cli(runner, ["index", "info", "--embeddings", str(tmp_path / "none.txt")])
    assert result.exit_code == 66 and "not found" in result.stderr


def test_negative_vocab_size_exit_2(runner):
    result = run_cli(runner, ["index", "info", "--vocab-size", "-1"])
    assert result.exit_code == 2 and "--vocab-size" in result.stderr


def test_unknown_format_text_exit_78(runner, tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("this is not a vector file\n")
    result = run_cli(runner, ["index", "info", "--embeddings", str(path),
                              "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 78 and "--embeddings-format" in result.stderr
