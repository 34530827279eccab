"""sanitize_arrow, sanitize_frame and the datasets.map batch function: new objects, inputs
untouched, nulls kept and counted, and noise keyed by row index (batch-independent, never
shared between two calls)."""

import pickle
import subprocess

import pyarrow as pa
import pytest

from conftest import PYTHON
from dpsanitize.errors import InputDataError, InvalidParameter
from dpsanitize.frames import batch_function, sanitize_arrow, sanitize_frame
from dpsanitize.pipeline import Sanitizer

pd = pytest.importorskip("pandas")


def texts(words, n, seed=0):
    import random

    r = random.Random(seed)
    return [None if i % 9 == 4 else "" if i % 13 == 6 else
            " ".join(r.choice(words[:200]) for _ in range(r.randint(1, 8))) + "."
            for i in range(n)]


@pytest.fixture
def table(toy_embeddings):
    words = toy_embeddings[1]
    n = 50
    return pa.table({
        "id": pa.array(range(n), pa.int32()),
        "text": texts(words, n),
        "user": pa.array([{"bio": b, "k": i} for i, b in enumerate(texts(words, n, 1))]),
        "long": pa.array(texts(words, n, 2), pa.large_string()),
    }, metadata={"m": "1"})


def make(toy_store, seed=3):
    return Sanitizer("tem", 0.05, store=toy_store, seed=seed)  # nearly every word replaced


def test_arrow_table_and_batch(toy_store, table):
    before = table.to_pydict()
    s = make(toy_store)
    out = sanitize_arrow(table, ["text", "user.bio", "long"], sanitizer=s)
    assert table.to_pydict() == before  # the input is untouched
    assert out is not table and out.schema.equals(table.schema, check_metadata=True)
    assert out.column("id").equals(table.column("id"))
    old, new = table.column("text").to_pylist(), out.column("text").to_pylist()
    assert [v is None for v in old] == [v is None for v in new]
    assert [v == "" for v in old] == [v == "" for v in new]
    assert sum(a != b for a, b in zip(old, new) if a) > 0.8 * sum(1 for a in old if a)
    assert out.column("user").combine_chunks().field("k").equals(
        table.column("user").combine_chunks().field("k"))
    c = s.report()["counts"]
    nulls = sum(v is None for v in old) + \
        sum(v is None for v in table.column("long").to_pylist()) + \
        sum(v is None for v in table.column("user").combine_chunks().field("bio").to_pylist())
    assert c["lines"] == 50 and c["nulls"] == nulls and c["words"] > 0
    batch = table.to_batches()[0]
    again = sanitize_arrow(batch, "text", sanitizer=make(toy_store), stream="x")
    assert isinstance(again, pa.RecordBatch) and again.schema.equals(batch.schema)


def test_same_stream_same_result_whatever_the_cut(toy_store, table):
    whole = sanitize_arrow(table, ["text", "long"], sanitizer=make(toy_store), stream="d",
                           rows_per_stream=5)
    s = make(toy_store)
    parts = [sanitize_arrow(table.slice(a, b - a), ["text", "long"], sanitizer=s, stream="d",
                            start=a, rows_per_stream=5) for a, b in [(0, 10), (10, 35), (35, 50)]]
    assert pa.concat_tables(parts).equals(whole)
    with pytest.raises(InvalidParameter, match="starts at row 12"):
        sanitize_arrow(table.slice(12, 5), "text", sanitizer=s, stream="d", start=12,
                       rows_per_stream=5)
    # one stream a row: any cut
    whole = sanitize_arrow(table, "text", sanitizer=make(toy_store), stream="d",
                           rows_per_stream=1)
    s = make(toy_store)
    parts = [sanitize_arrow(table.slice(a, b - a), "text", sanitizer=s, stream="d", start=a,
                            rows_per_stream=1) for a, b in [(0, 7), (7, 8), (8, 50)]]
    assert pa.concat_tables(parts).equals(whole)
    other = sanitize_arrow(table, "text", sanitizer=make(toy_store, seed=4), stream="d")
    assert not other.column("text").equals(whole.column("text"))


def test_calls_without_a_stream_name_never_share_noise(toy_store, toy_embeddings):
    same = pa.table({"text": [" ".join(toy_embeddings[1][:30])] * 4})
    s = make(toy_store)
    a = sanitize_arrow(same, "text", sanitizer=s)
    b = sanitize_arrow(same, "text", sanitizer=s)
    assert a.column("text").to_pylist() != b.column("text").to_pylist()
    # a fresh sanitizer with the same seed repeats its first call exactly
    assert sanitize_arrow(same, "text", sanitizer=make(toy_store)).equals(a)


def test_bad_columns(toy_store, table):
    s = make(toy_store)
    for column, match in [("nope", "no column named 'nope'"), ("id", "not a string type"),
                          ("user", "not a string type"), ("user.k", "not a string type"),
                          ("user.nope", "no column named")]:
        with pytest.raises(InputDataError, match=match):
            sanitize_arrow(table, column, sanitizer=s)
    with pytest.raises(InvalidParameter, match="not both"):
        sanitize_arrow(table, "text", sanitizer=s, epsilon=3)


def test_dictionary_column_gets_noise_per_row(toy_store, toy_embeddings):
    word = " ".join(toy_embeddings[1][:20])
    t = pa.table({"tag": pa.array([word] * 30).dictionary_encode()
                  .cast(pa.dictionary(pa.int16(), pa.string()))})
    out = sanitize_arrow(t, "tag", sanitizer=make(toy_store))
    assert out.schema.field("tag").type == pa.dictionary(pa.int16(), pa.string())
    assert len(set(out.column("tag").to_pylist())) > 20  # not one draw for the dictionary


def test_frame_matches_arrow_and_keeps_dtypes(toy_store, table):
    df = pd.DataFrame({"id": range(50), "text": table.column("text").to_pylist(),
                       "long": pd.array(table.column("long").to_pylist(), dtype="string")},
                      index=[f"r{i}" for i in range(50)])
    copy = df.copy()
    s = make(toy_store)
    out = sanitize_frame(df, ["text", "long"], sanitizer=s, stream="z")
    pd.testing.assert_frame_equal(df, copy)
    assert list(out.dtypes) == list(df.dtypes) and list(out.index) == list(df.index)
    assert (out["id"] == df["id"]).all()
    arrow = sanitize_arrow(table, ["text", "long"], sanitizer=make(toy_store), stream="z")
    for name in ("text", "long"):  # pandas may hold the nulls as NaN
        assert [None if pd.isna(v) else v for v in out[name]] == \
            arrow.column(name).to_pylist()
    assert s.report()["counts"]["nulls"] == 2 * int(df["text"].isna().sum()) > 0
    with pytest.raises(InputDataError, match="dtype int64"):
        sanitize_frame(df, "id", sanitizer=s)
    mixed = pd.DataFrame({"t": ["wa wb", 3, float("nan"), None]})
    s = make(toy_store)
    res = sanitize_frame(mixed, "t", sanitizer=s)
    assert res["t"].iloc[1] == 3 and pd.isna(res["t"].iloc[2]) and res["t"].iloc[3] is None
    c = s.report()["counts"]
    assert (c["nulls"], c["non_string"], c["lines"]) == (2, 1, 4)


def test_batch_function_like_datasets_map(toy_store, table):
    columns = {"id": table.column("id").to_pylist(), "text": table.column("text").to_pylist()}
    fn = batch_function(["text"], sanitizer=make(toy_store), stream="ds", rows_per_stream=10)
    whole = fn(columns, list(range(50)))["text"]
    fn = batch_function(["text"], sanitizer=make(toy_store), stream="ds", rows_per_stream=10)
    batched = []
    for a in range(0, 50, 20):
        batch = {k: v[a:a + 20] for k, v in columns.items()}
        out = fn(batch, list(range(a, min(a + 20, 50))))
        assert list(out) == ["text"]  # the sanitized columns: Dataset.map keeps the others
        batched += out["text"]
    assert batched == whole
    with pytest.raises(InvalidParameter, match="with_indices=True"):
        fn({"text": ["wa"]})
    # pickled (datasets' num_proc, fingerprinting): the copy rebuilds the same sanitizer
    copy = pickle.loads(pickle.dumps(fn))
    batch = {k: v[40:] for k, v in columns.items()}
    assert copy(batch, list(range(40, 50)))["text"] == whole[40:]
    tb = copy(table.slice(20, 20), list(range(20, 40)))
    assert tb.column("text").to_pylist() == whole[20:40]
    df = copy(table.slice(0, 20).to_pandas(), list(range(20)))
    assert [None if pd.isna(v) else v for v in df["text"]] == whole[:20]


def test_import_stays_light():
    code = ("import sys, dpsanitize; assert 'numpy' not in sys.modules and 'pyarrow' not in "
            "sys.modules; dpsanitize.sanitize_frame; dpsanitize.sanitize_arrow; "
            "dpsanitize.batch_function; assert 'pandas' not in sys.modules")
    subprocess.run([PYTHON, "-c", code], check=True)


def test_rows_never_draw_the_same_noise_twice(toy_store, table):
    s = make(toy_store)
    sanitize_arrow(table.slice(0, 20), "text", sanitizer=s, stream="a", rows_per_stream=10)
    with pytest.raises(InvalidParameter, match="rows 10..19 of this stream already"):
        sanitize_arrow(table.slice(10, 20), "text", sanitizer=s, stream="a", start=10,
                       rows_per_stream=10)
    sanitize_arrow(table.slice(20, 10), "text", sanitizer=s, stream="a", start=20,
                   rows_per_stream=10)
    sanitize_arrow(table.slice(0, 20), "text", sanitizer=s, stream="b", rows_per_stream=10)
    fn = batch_function(["text"], sanitizer=s)
    batch = {"text": table.column("text").to_pylist()[:5]}
    fn(batch, [0, 1, 2, 3, 4])
    with pytest.raises(InvalidParameter, match="its own batch_function"):
        fn(batch, [0, 1, 2, 3, 4])  # a second dataset through the same function
    one = batch_function(["text"], sanitizer=s, rows_per_stream=1)
    one(batch, [0, 2, 4, 6, 8])
    one(batch, [1, 3, 5, 7, 9])
    with pytest.raises(InvalidParameter, match="rows 4..4"):
        one(batch, [4, 10, 11, 12, 13])


def test_batch_function_takes_any_mapping(toy_store, table):
    from collections.abc import Mapping

    class Lazy(Mapping):
        def __init__(self, data):
            self._data = data

        def __getitem__(self, key):
            return self._data[key]

        def __iter__(self):
            return iter(self._data)

        def __len__(self):
            return len(self._data)

    text = table.column("text").to_pylist()[:10]
    fn = batch_function(["text"], sanitizer=make(toy_store), stream="m")
    out = fn(Lazy({"id": list(range(10)), "text": text}), list(range(10)))
    again = batch_function(["text"], sanitizer=make(toy_store), stream="m")
    assert out == again({"text": text}, list(range(10)))


def test_datasets_map_when_installed(toy_store, table):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"id": list(range(50)),
                                     "text": table.column("text").to_pylist()})
    fn = batch_function(["text"], sanitizer=make(toy_store), stream="d", rows_per_stream=10)
    out = ds.map(fn, batched=True, batch_size=20, with_indices=True,
                 load_from_cache_file=False)
    whole = batch_function(["text"], sanitizer=make(toy_store), stream="d",
                           rows_per_stream=10)({"text": ds["text"]}, list(range(50)))
    assert out["text"] == whole["text"] and out["id"] == list(range(50))
