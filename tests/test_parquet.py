"""--format parquet: named string columns change, row group by row group; the rest of the file
(schema, other columns, row groups, metadata, codecs) is kept; errors leave no output."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_cli
from dpsanitize.pipeline import Counters, Sanitizer

MECH = ["--mech", "tem", "--eps", "0.05", "--seed", "7"]  # nearly every vocabulary word replaced


@pytest.fixture
def toy(toy_embeddings, toy_cache):
    return ["--embeddings", toy_embeddings[0], "--vocab-size", "0", "--cache-dir", toy_cache]


def sentences(words, n, seed=0, nulls=True):
    import random

    r = random.Random(seed)
    out = []
    for i in range(n):
        if nulls and i % 7 == 3:
            out.append(None)
        elif i % 11 == 5:
            out.append("")
        else:
            out.append(" ".join(r.choice(words[:200]) for _ in range(r.randint(1, 9))) + ", Qzx.")
    return out


def make_table(words, n=60, seed=0):
    text = sentences(words, n, seed)
    bio = sentences(words, n, seed + 1)
    schema = pa.schema([
        pa.field("id", pa.int64(), nullable=False, metadata={"role": "key"}),
        pa.field("text", pa.string(), metadata={"lang": "toy"}),
        pa.field("label", pa.float32()),
        pa.field("user", pa.struct([pa.field("bio", pa.string()), pa.field("age", pa.int16())])),
        pa.field("tag", pa.dictionary(pa.int32(), pa.string())),
        pa.field("long", pa.large_string()),
    ], metadata={"origin": "test", "pandas_like": json.dumps({"x": 1})})
    users = [None if i % 13 == 4 else {"bio": bio[i], "age": i} for i in range(n)]
    return pa.Table.from_pydict({
        "id": list(range(n)), "text": text, "label": [i / 3 for i in range(n)], "user": users,
        "tag": pa.array([["red", "blue", None][i % 3] for i in range(n)]).dictionary_encode(),
        "long": pa.array(sentences(words, n, seed + 2), pa.large_string()),
    }, schema=schema)


def write(table, path, row_group_size=16, **kw):
    pq.write_table(table, path, row_group_size=row_group_size, **kw)
    return str(path)


def leftovers(folder):
    return [n for n in os.listdir(folder) if "dpsanitize-tmp" in n or n.endswith(".lock")]


def test_round_trip_keeps_everything_but_the_named_columns(runner, toy, toy_store,
                                                           toy_embeddings, tmp_path):
    words = toy_embeddings[1]
    table = make_table(words)
    src = write(table, tmp_path / "in.parquet", compression={"text": "zstd", "id": "gzip",
                                                            "label": "none", "user.bio": "zstd",
                                                            "user.age": "snappy",
                                                            "tag": "snappy", "long": "zstd"})
    dst = tmp_path / "out.parquet"
    report = tmp_path / "r.json"
    res = run_cli(runner, ["run", *MECH, *toy, "--column", "text", "--column", "user.bio",
                           "--column", "tag", "--column", "long", "--report", str(report),
                           src, str(dst)])
    assert res.exit_code == 0, res.stderr
    a, b = pq.ParquetFile(src), pq.ParquetFile(dst)
    assert b.schema_arrow.equals(a.schema_arrow, check_metadata=True)
    assert b.schema_arrow.field("id").metadata == {b"role": b"key"}
    assert not b.schema_arrow.field("id").nullable
    assert b.metadata.metadata == a.metadata.metadata  # key-value metadata, ARROW:schema too
    assert b.metadata.format_version == a.metadata.format_version
    assert [b.metadata.row_group(i).num_rows for i in range(b.metadata.num_row_groups)] == \
        [16, 16, 16, 12]
    for j in range(a.metadata.num_columns):
        ca, cb = a.metadata.row_group(0).column(j), b.metadata.row_group(0).column(j)
        assert (cb.path_in_schema, cb.compression) == (ca.path_in_schema, ca.compression)
    ta, tb = a.read(), b.read()
    for name in ("id", "label"):
        assert tb.column(name).equals(ta.column(name))
    assert tb.column("user").combine_chunks().field("age").equals(
        ta.column("user").combine_chunks().field("age"))
    assert tb.column("user").is_null().equals(ta.column("user").is_null())
    assert pa.types.is_dictionary(tb.schema.field("tag").type)
    for name, old, new in [
            ("text", ta.column("text").to_pylist(), tb.column("text").to_pylist()),
            ("bio", ta.column("user").combine_chunks().flatten()[0].to_pylist(),
             tb.column("user").combine_chunks().flatten()[0].to_pylist()),
            ("tag", ta.column("tag").to_pylist(), tb.column("tag").to_pylist()),
            ("long", ta.column("long").to_pylist(), tb.column("long").to_pylist())]:
        assert [v is None for v in old] == [v is None for v in new], name
        assert [v == "" for v in old] == [v == "" for v in new], name
        changed = sum(o != n for o, n in zip(old, new) if o)
        assert changed > 0.8 * sum(1 for o in old if o), name
        assert all(n.endswith(", <unk>.") for o, n in zip(old, new) if o and o.endswith(", Qzx."))
    counts = json.loads(report.read_text())["counts"]
    nulls = sum(v is None for v in ta.column("text").to_pylist()) + \
        sum(v is None for v in ta.column("user").combine_chunks().flatten()[0].to_pylist()) + \
        sum(v is None for v in ta.column("tag").to_pylist()) + \
        sum(v is None for v in ta.column("long").to_pylist())
    assert counts["lines"] == 60 and counts["nulls"] == nulls
    assert counts["bytes"] == sum(a.metadata.row_group(i).column(j).total_compressed_size
                                  for i in range(4) for j in range(a.metadata.num_columns))


def test_row_group_i_is_rewritten_with_block_i_stream(runner, toy, toy_store, toy_embeddings,
                                                      tmp_path):
    """The sanitized values are exactly rewrite_records of each row group with its own stream."""
    table = make_table(toy_embeddings[1], n=40)
    src = write(table, tmp_path / "in.pq", row_group_size=9)
    dst = tmp_path / "out.pq"
    res = run_cli(runner, ["run", *MECH, *toy, "--column", "text", "--column", "long", src,
                           str(dst)])
    assert res.exit_code == 0, res.stderr
    s = Sanitizer("tem", 0.05, store=toy_store, seed=7)
    expected_text, expected_long = [], []
    for i in range(5):
        rows = table.slice(9 * i, 9)
        records = [[v for v in (t, lg) if v is not None]
                   for t, lg in zip(rows.column("text").to_pylist(),
                                    rows.column("long").to_pylist())]
        new = iter(s.rewrite_records(records, s.chunk_rng(i), Counters()))
        for t, lg in zip(rows.column("text").to_pylist(), rows.column("long").to_pylist()):
            fields = iter(next(new))
            expected_text.append(next(fields) if t is not None else None)
            expected_long.append(next(fields) if lg is not None else None)
    out = pq.read_table(dst)
    assert out.column("text").to_pylist() == expected_text
    assert out.column("long").to_pylist() == expected_long


def test_small_shapes_one_row_groups_and_zero_rows(runner, toy, toy_embeddings, tmp_path):
    words = toy_embeddings[1]
    table = make_table(words, n=3)
    src = write(table, tmp_path / "ones.parquet", row_group_size=1)
    res = run_cli(runner, ["run", *MECH, *toy, "--column", "text", src,
                           str(tmp_path / "ones.out.parquet")])
    assert res.exit_code == 0, res.stderr
    out = pq.ParquetFile(tmp_path / "ones.out.parquet")
    assert [out.metadata.row_group(i).num_rows for i in range(3)] == [1, 1, 1]
    empty = write(table.slice(0, 0), tmp_path / "empty.parquet")
    res = run_cli(runner, ["run", *MECH, *toy, "--column", "text", empty,
                           str(tmp_path / "empty.out.parquet")])
    assert res.exit_code == 0, res.stderr
    a, b = pq.ParquetFile(empty), pq.ParquetFile(tmp_path / "empty.out.parquet")
    assert b.metadata.num_rows == 0 and b.metadata.num_row_groups == a.metadata.num_row_groups
    assert b.schema_arrow.equals(a.schema_arrow, check_metadata=True)
    nulls = pa.table({"text": pa.array([None, None], pa.string())})
    src = write(nulls, tmp_path / "nulls.parquet")
    res = run_cli(runner, ["run", *MECH, *toy, "--column", "text", src,
                           str(tmp_path / "nulls.out.parquet")])
    assert res.exit_code == 0, res.stderr
    assert pq.read_table(tmp_path / "nulls.out.parquet").equals(nulls)


@pytest.mark.parametrize("column,code", [("nope", 65), ("label", 65), ("user", 65),
                                         ("user.nope", 65), ("user.age", 65)])
def test_bad_columns_fail_before_any_work(runner, toy_embeddings, tmp_path, column, code):
    src = write(make_table(toy_embeddings[1], n=5), tmp_path / "in.parquet")
    cache = tmp_path / "cache"  # the index is never opened: nothing is built
    res = run_cli(runner, ["run", *MECH, "--embeddings", toy_embeddings[0], "--vocab-size", "0",
                           "--cache-dir", str(cache), "--column", column, src,
                           str(tmp_path / "out.parquet")])
    assert res.exit_code == code, res.stderr
    assert repr(column) in res.stderr
    assert not os.path.exists(tmp_path / "out.parquet") and not cache.exists()
    assert not leftovers(tmp_path)


def test_stdin_refused_and_no_column_refused(runner, toy, toy_embeddings, tmp_path):
    res = run_cli(runner, ["run", *MECH, *toy, "--format", "parquet", "--column", "text", "-",
                           str(tmp_path / "o.parquet")], input=b"PAR1")
    assert res.exit_code == 2 and "seekable" in res.stderr
    src = write(make_table(toy_embeddings[1], n=5), tmp_path / "in.parquet")
    res = run_cli(runner, ["run", *MECH, *toy, src, str(tmp_path / "o.parquet")])
    assert res.exit_code == 2 and "--column" in res.stderr


def test_output_to_stdout(runner, toy, toy_embeddings, tmp_path):
    src = write(make_table(toy_embeddings[1], n=20), tmp_path / "in.parquet")
    res = run_cli(runner, ["run", *MECH, *toy, "--column", "text", src, "-"])
    assert res.exit_code == 0, res.stderr
    (tmp_path / "o.parquet").write_bytes(res.stdout_bytes)
    to_file = run_cli(runner, ["run", *MECH, *toy, "--column", "text", src,
                               str(tmp_path / "f.parquet")])
    assert to_file.exit_code == 0
    assert pq.read_table(tmp_path / "o.parquet").equals(pq.read_table(tmp_path / "f.parquet"))


def corrupt_second_row_group(path):
    md = pq.ParquetFile(path).metadata
    col = md.row_group(1).column(1)
    with open(path, "r+b") as f:
        f.seek(col.data_page_offset)
        f.write(b"\xff" * 24)


@pytest.mark.parametrize("damage,workers", [("garbage", "1"), ("truncated", "1"),
                                            ("second row group", "1"),
                                            ("second row group", "2")])
def test_corrupt_or_truncated_file_is_exit_65_with_no_output(runner, toy, toy_embeddings,
                                                              tmp_path, damage, workers):
    table = make_table(toy_embeddings[1], n=40)
    src = write(table, tmp_path / "in.parquet", compression="none")
    secret = table.column("text")[0].as_py()
    data = (tmp_path / "in.parquet").read_bytes()
    if damage == "garbage":
        (tmp_path / "in.parquet").write_bytes(b"PAR1" + data[4:100] + b"\x00" * 64)
    elif damage == "truncated":
        (tmp_path / "in.parquet").write_bytes(data[:-40])
    else:
        corrupt_second_row_group(src)
    dst = tmp_path / "out.parquet"
    res = run_cli(runner, ["run", *MECH, *toy, "--column", "text", "--workers", workers, src,
                           str(dst)])
    assert res.exit_code == 65, res.stderr
    assert "Parquet" in res.stderr
    if damage == "second row group":
        assert "row group 1" in res.stderr
    assert secret not in res.stderr
    assert not dst.exists() and not leftovers(tmp_path)


def test_workers_write_what_one_process_writes(runner, toy, toy_embeddings, tmp_path):
    src = write(make_table(toy_embeddings[1], n=200), tmp_path / "in.parquet", row_group_size=20)
    outs = []
    for workers in ("1", "2"):
        dst = tmp_path / f"w{workers}.parquet"
        res = run_cli(runner, ["run", *MECH, *toy, "--column", "text", "--column", "user.bio",
                               "--workers", workers, src, str(dst)])
        assert res.exit_code == 0, res.stderr
        outs.append(pq.read_table(dst))
    assert outs[0].equals(outs[1])
    assert not outs[0].column("text").equals(pq.read_table(src).column("text"))


def test_output_dir_recursive_manifest(runner, toy, toy_embeddings, tmp_path):
    words = toy_embeddings[1]
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    write(make_table(words, n=30, seed=1), data / "a.parquet")
    write(make_table(words, n=30, seed=2), data / "sub" / "b.pq")
    (data / "c.csv").write_text("text,n\n" + "".join(f"{words[i]} {words[i + 1]},{i}\n"
                                                       for i in range(10)))
    out = tmp_path / "out"
    manifest = tmp_path / "m.jsonl"
    args = ["run", *MECH, *toy, "--column", "text", "-r", "--output-dir", str(out),
            "--manifest", str(manifest), str(data)]
    res = run_cli(runner, args)
    assert res.exit_code == 0, res.stderr
    for rel in ("a.parquet", "sub/b.pq"):
        a, b = pq.read_table(data / rel), pq.read_table(out / rel)
        assert b.schema.equals(a.schema, check_metadata=True)
        assert b.column("id").equals(a.column("id"))
        assert not b.column("text").equals(a.column("text"))
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert sorted(os.path.relpath(e["output"], out) for e in entries
                  if e["status"] == "done") == ["a.parquet", "c.csv", "sub/b.pq"]
    again = run_cli(runner, args)
    assert again.exit_code == 0 and "0 of 3 files sanitized" in again.stderr


def test_dask_engine_matches_local(runner, toy, toy_embeddings, tmp_path):
    pytest.importorskip("distributed")
    src = write(make_table(toy_embeddings[1], n=90), tmp_path / "in.parquet", row_group_size=10)
    outs = []
    for engine in ("local", "dask"):
        dst = tmp_path / f"{engine}.parquet"
        res = run_cli(runner, ["run", *MECH, *toy, "--column", "text", "--engine", engine,
                               "--workers", "2", src, str(dst)])
        assert res.exit_code == 0, res.stderr
        outs.append(pq.read_table(dst))
    assert outs[0].equals(outs[1])


def test_a_large_row_group_goes_through_in_slices(runner, toy, toy_store, toy_embeddings,
                                                  tmp_path, monkeypatch):
    """Slices of a row group share its stream, consumed in row order: the output is what
    rewriting the slices one after the other with that stream gives."""
    import dpsanitize.parquet as dp

    monkeypatch.setattr(dp, "SLICE_CHARS", 100)
    table = make_table(toy_embeddings[1], n=40)
    src = write(table, tmp_path / "in.parquet", row_group_size=40)
    dst = tmp_path / "out.parquet"
    res = run_cli(runner, ["run", *MECH, *toy, "--column", "text", src, str(dst)])
    assert res.exit_code == 0, res.stderr
    values = [table.column("text").to_pylist()]
    slices = dp.row_slices(values, 100)
    assert len(slices) > 5 and slices[0][0] == 0 and slices[-1][1] == 40
    assert all(a[1] == b[0] for a, b in zip(slices, slices[1:]))
    s = Sanitizer("tem", 0.05, store=toy_store, seed=7)
    rng = s.chunk_rng(0)
    expected = []
    for lo, hi in slices:
        records = [[v] if v is not None else [] for v in values[0][lo:hi]]
        expected += [r[0] if r else None for r in s.rewrite_records(records, rng, Counters())]
    assert pq.read_table(dst).column("text").to_pylist() == expected


def test_dictionary_and_statistics_choices_are_kept(runner, toy, toy_embeddings, tmp_path):
    table = make_table(toy_embeddings[1], n=30).select(["id", "text", "long"])
    src = write(table, tmp_path / "in.parquet", use_dictionary=["text"],
                write_statistics=["id"], version="2.4")
    dst = tmp_path / "out.parquet"
    res = run_cli(runner, ["run", *MECH, *toy, "--column", "text", "--column", "long", src,
                           str(dst)])
    assert res.exit_code == 0, res.stderr

    def layout(path):
        md = pq.ParquetFile(path).metadata
        cols = [md.row_group(0).column(j) for j in range(md.num_columns)]
        return md.format_version, [(c.path_in_schema, "RLE_DICTIONARY" in c.encodings
                                    or "PLAIN_DICTIONARY" in c.encodings, c.is_stats_set)
                                   for c in cols]

    assert layout(dst) == layout(src)
    assert layout(src)[1] == [("id", False, True), ("text", True, False), ("long", False, False)]


def test_a_file_without_row_groups(runner, toy, tmp_path):
    schema = pa.schema([pa.field("text", pa.string(), metadata={"k": "v"})], metadata={"a": "b"})
    pq.ParquetWriter(tmp_path / "none.parquet", schema).close()
    res = run_cli(runner, ["run", *MECH, *toy, "--column", "text", str(tmp_path / "none.parquet"),
                           str(tmp_path / "out.parquet")])
    assert res.exit_code == 0, res.stderr
    out = pq.ParquetFile(tmp_path / "out.parquet")
    assert out.metadata.num_row_groups == 0
    assert out.schema_arrow.equals(schema, check_metadata=True)
