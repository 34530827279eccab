"""CSV, TSV and JSON lines: only the named fields change; every other byte of a record is kept."""

import csv
import io
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import run_cli
from dpsanitize.errors import InputDataError
from dpsanitize.formats import make_format
from dpsanitize.pipeline import Sanitizer

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
SST2 = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "sst2")


@pytest.fixture(scope="module")
def sanitizer(toy_store):
    # tem at a tiny epsilon: nearly every vocabulary word is replaced
    return lambda: Sanitizer("tem", 0.05, store=toy_store, seed=5)


class Identity:
    """A stand-in mechanism that returns every word unchanged."""

    name, epsilon, unit = "identity", 1.0, "test"

    def __init__(self, store):
        self.store = store

    def perturb(self, ids, rng):
        return ids


def unchanged(store):
    return Sanitizer(Identity(store), oov="keep", seed=1)


def run_format(sanitizer, data: bytes, fmt, **kw) -> tuple[bytes, object]:
    out = io.BytesIO()
    counts = sanitizer.sanitize_stream(io.BytesIO(data), out, fmt=fmt, **kw)
    return out.getvalue(), counts


# --------------------------------------------------------------------------------------------
# CSV

FIELD = st.text(alphabet=st.sampled_from(list('wab c,"\n\r\té\'’.-x0')), max_size=12)
ROWS = st.lists(st.lists(FIELD, min_size=3, max_size=3), min_size=1, max_size=8)


@given(rows=ROWS, quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
       block=st.integers(8, 64))
@SETTINGS
def test_csv_other_columns_round_trip_byte_for_byte(sanitizer, toy_store, rows, quoting, block):
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, quoting=quoting, lineterminator="\r\n")
    writer.writerow(["id", "text", "note"])
    writer.writerows(rows)
    data = buf.getvalue().encode()
    out, counts = run_format(sanitizer(), data, make_format("csv", ["text"]), block=block)
    before = list(csv.reader(io.StringIO(data.decode(), newline="")))
    after = list(csv.reader(io.StringIO(out.decode(), newline="")))
    assert len(after) == len(before) and after[0] == before[0]
    assert [(r[0], r[2]) for r in after] == [(r[0], r[2]) for r in before]
    assert counts.lines == len(rows)
    same, _ = run_format(unchanged(toy_store), data, make_format("csv", ["text"]), block=block)
    assert same == data  # parsing and writing back changes no byte


def test_csv_keeps_quoting_style_and_quotes_only_when_needed(sanitizer, toy_store):
    w = toy_store.vocab.words
    data = (f'id,text,label\n1,"{w[0]} {w[1]}",pos\n2,{w[2]} {w[3]},"neg"\n'
            f'3,"{w[4]}\n{w[5]} ""{w[6]}""",x\n4,,y').encode()
    out, counts = run_format(sanitizer(), data, make_format("csv", ["text"]))
    lines = out.decode().split("\n")
    assert lines[0] == "id,text,label"
    assert lines[1].startswith('1,"') and lines[1].endswith('",pos')
    assert lines[2].startswith("2,") and '"' not in lines[2][:-6] and lines[2].endswith(',"neg"')
    assert lines[3].startswith('3,"') and lines[4].endswith('""",x') and lines[5] == "4,,y"
    assert counts.lines == 4 and counts.words == 7 and counts.max_words_per_line == 3


def test_csv_no_header_takes_column_numbers(sanitizer, toy_store):
    w = toy_store.vocab.words
    data = f"{w[0]},{w[1]} {w[2]}\n{w[3]},{w[4]}\n".encode()
    out, counts = run_format(sanitizer(), data, make_format("csv", ["2"], header=False))
    assert [line.split(",")[0] for line in out.decode().splitlines()] == [w[0], w[3]]
    assert counts.words == 3


@pytest.mark.parametrize("data,message", [
    (b"a,b\n1,2\n", "no column named 'text' among its 2 columns"),
    (b'id,text\n1,"open\n2,x\n', "record 2: does not parse as CSV"),
    (b'id,text\n1,"closed"junk\n', "record 2: does not parse as CSV"),
    (b"id,text\n1,fine\n2\n", "record 3: has 1 columns; --column needs column 2"),
])
def test_csv_errors_name_the_record_never_the_content(sanitizer, data, message):
    with pytest.raises(InputDataError) as exc:
        run_format(sanitizer(), data, make_format("csv", ["text"]))
    assert message in str(exc.value)
    assert "junk" not in str(exc.value) and "open" not in str(exc.value)


def test_csv_multiline_record_across_blocks(sanitizer, toy_store):
    w = toy_store.vocab.words
    data = ("id,text\n" + "".join(f'{i},"{w[i]}\n{w[i + 1]}\n{w[i + 2]}"\n' for i in range(40))
            ).encode()
    whole, c1 = run_format(sanitizer(), data, make_format("csv", ["text"]))
    small, c2 = run_format(sanitizer(), data, make_format("csv", ["text"]), block=16)
    assert c1.lines == c2.lines == 40 and c1.words == c2.words == 120
    assert small.count(b"\n") == whole.count(b"\n") == data.count(b"\n")


# --------------------------------------------------------------------------------------------
# TSV


@pytest.mark.parametrize("name,column", [("train.tsv", "sentence"), ("dev.tsv", "content"),
                                         ("test.tsv", "content")])
def test_sst2_tsv_keeps_the_label_column_byte_for_byte(runner, toy_args_cli, tmp_path, name,
                                                        column):
    src = os.path.join(SST2, name)
    if not os.path.exists(src):
        pytest.skip("the shared SST-2 data is not beside this checkout")
    dst = tmp_path / "out.tsv"
    result = run_cli(runner, ["run", "--mech", "tem", "--eps", "0.05", "--format", "tsv",
                              "--column", column, *toy_args_cli, src, str(dst)])
    assert result.exit_code == 0, result.stderr
    before = Path(src).read_bytes().split(b"\n")
    after = dst.read_bytes().split(b"\n")
    assert len(after) == len(before) and after[0] == before[0]
    assert [b.split(b"\t")[0] for b in after] == [b.split(b"\t")[0] for b in before]
    assert sum(a != b for a, b in zip(after, before)) > 0.9 * (len(before) - 2)


@pytest.fixture(scope="module")
def toy_args_cli(toy_store, toy_embeddings, toy_cache):
    return ["--embeddings", toy_embeddings[0], "--vocab-size", "0", "--cache-dir", toy_cache]


def test_tsv_is_not_quoted(sanitizer, toy_store):
    w = toy_store.vocab.words
    data = f'label\tsentence\n0\t" {w[0]} "\n1\t{w[1]}, {w[2]}\n'.encode()
    out, counts = run_format(sanitizer(), data, make_format("tsv", ["sentence"]))
    rows = [line.split("\t") for line in out.decode().splitlines()]
    assert rows[1][1].startswith('" ') and rows[1][1].endswith(' "') and counts.words == 3


# --------------------------------------------------------------------------------------------
# JSON lines

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | FIELD,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(FIELD, inner, max_size=3),
    max_leaves=6)


@given(records=st.lists(st.fixed_dictionaries(
    {"text": FIELD}, optional={"id": st.integers(), "meta": st.fixed_dictionaries(
        {"bio": FIELD | st.integers()}, optional={"x": JSON_VALUES}), "other": JSON_VALUES}),
    min_size=1, max_size=6), ascii_only=st.booleans(), compact=st.booleans())
@SETTINGS
def test_jsonl_other_fields_round_trip_byte_for_byte(sanitizer, toy_store, records, ascii_only,
                                                      compact):
    seps = (",", ":") if compact else (", ", ": ")
    data = "".join(json.dumps(r, ensure_ascii=ascii_only, separators=seps) + "\n"
                   for r in records).encode()
    out, counts = run_format(sanitizer(), data, make_format("jsonl", ["text", "meta.bio"]))
    after = [json.loads(line) for line in out.decode().splitlines()]
    for a, b in zip(after, records):
        assert list(a) == list(b)  # key order
        a_rest = {k: v for k, v in a.items() if k not in ("text", "meta")}
        assert a_rest == {k: v for k, v in b.items() if k not in ("text", "meta")}
        if "meta" in b:
            assert {k: v for k, v in a["meta"].items() if k != "bio"} == \
                {k: v for k, v in b["meta"].items() if k != "bio"}
            if not isinstance(b["meta"]["bio"], str):
                assert a["meta"]["bio"] == b["meta"]["bio"]
    assert counts.non_string == sum(not isinstance(r.get("meta", {}).get("bio", ""), str)
                                    for r in records)
    same, _ = run_format(unchanged(toy_store), data, make_format("jsonl", ["text", "meta.bio"]))
    assert same == data  # parsing and writing back changes no byte


def test_jsonl_keeps_spacing_escapes_and_blank_lines(sanitizer, toy_store):
    w = toy_store.vocab.words
    data = (f'{{ "text" :  "{w[0]} {w[1]}" , "n": 1.50, "é": "\\u00e9"}}\n\n'
            f'{{"text": 7, "z": [1, 2]}}\n').encode()
    out, counts = run_format(sanitizer(), data, make_format("jsonl", ["text"]))
    lines = out.decode().split("\n")
    assert lines[0].startswith('{ "text" :  "') and lines[0].endswith('" , "n": 1.50, "é": "\\u00e9"}')
    assert lines[1] == "" and lines[2] == '{"text": 7, "z": [1, 2]}'
    assert counts.lines == 2 and counts.non_string == 1 and counts.words == 2


@pytest.mark.parametrize("data,message", [
    (b'{"text": "a"}\n[1, 2]\n', "record 2: not a JSON object"),
    (b'{"text": "a"}\n{"text": "secret"\n', "record 2: not a JSON object"),
    (b'{"text": "a"} trailing secret\n', "record 1: not a JSON object"),
])
def test_jsonl_errors_name_the_record_never_the_content(sanitizer, data, message):
    with pytest.raises(InputDataError) as exc:
        run_format(sanitizer(), data, make_format("jsonl", ["text"]))
    assert message in str(exc.value) and "secret" not in str(exc.value)


# --------------------------------------------------------------------------------------------
# the command line


def test_format_auto_by_extension_and_column_errors(runner, toy_args_cli, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,text\n1,wa\n")
    ok = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "400", "--column", "text", *toy_args_cli, str(src),
                          str(tmp_path / "o.csv")])
    assert ok.exit_code == 0, ok.stderr
    assert (tmp_path / "o.csv").read_text().startswith("id,text\n1,")
    missing = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "400", *toy_args_cli, str(src), str(tmp_path / "o2")])
    assert missing.exit_code == 2 and "needs at least one --column" in missing.stderr
    wrong = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "400", "--column", "nope", *toy_args_cli, str(src),
                             str(tmp_path / "o3")])
    assert wrong.exit_code == 65 and "record 1 (the header): no column named 'nope'" in wrong.stderr
    assert not (tmp_path / "o3").exists()
    text = tmp_path / "in.txt"
    text.write_text("wa\n")
    plain = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "400", "--column", "x", *toy_args_cli, str(text),
                             str(tmp_path / "o4")])
    assert plain.exit_code == 2 and "--column needs --format" in plain.stderr


@pytest.mark.parametrize("name", ["csv", "jsonl"])
def test_structured_workers_write_what_one_process_writes(toy_store, toy_embeddings, name):
    words = toy_embeddings[1]
    texts = [" ".join(words[i % 50:i % 50 + 9]) for i in range(3000)]
    if name == "csv":
        data = "id,text\n" + "".join(f'{i},"{t}\n{t}"\n' for i, t in enumerate(texts))
    else:
        data = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts))
    outs = []
    for workers in (1, 2):
        s = Sanitizer("gumbel", 400.0, store=toy_store, seed=9)
        out = io.BytesIO()
        s.sanitize_stream(io.BytesIO(data.encode()), out, workers=workers, block=4096,
                          fmt=make_format(name, ["text"]))
        outs.append((out.getvalue(), s.counters))
    assert len(data) > 20 * 4096
    assert outs[0] == outs[1] and outs[0][0] != data.encode() and outs[0][1].lines == 3000


@pytest.mark.parametrize("token", ["a\nb", "x\x1ey", "x\x1fy", "\x00"])
def test_placeholder_with_control_characters_is_refused(runner, toy_args_cli, tmp_path, token,
                                                        toy_store):
    """A placeholder must never carry the characters that separate lines and records."""
    src = tmp_path / "in.csv"
    src.write_text("id,text\n1,Qqq\n")
    res = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "400", "--column", "text", "--oov-token", token,
                           *toy_args_cli, str(src), str(tmp_path / "o.csv")])
    assert res.exit_code == 2 and "control characters" in res.stderr
    with pytest.raises(Exception, match="control characters"):
        Sanitizer("gumbel", 400.0, store=toy_store, oov_token=token)
