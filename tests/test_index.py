"""The index store: exact contents, cache reuse, damage detection, concurrent builders."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import (WRITERS, brute_force_neighbors, nearest_reference, run_cli, toy_vectors,
                      toy_words)
from dpsanitize.geometry import K_MAX
from dpsanitize.index import BuildParams, load_entry, open_index


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_store_contents_equal_brute_force_for_every_format(tmp_path, fmt):
    words = toy_words(150)
    vecs = np.unique(toy_vectors(400, 4, seed=21, integer=True), axis=0)[:150]
    vecs = vecs[np.random.default_rng(3).permutation(len(vecs))]
    path = WRITERS[fmt](tmp_path / "e", words, vecs)
    store = open_index(path, vocab_size=0, cache_dir=str(tmp_path / "cache"))
    ref_ids, ref_d, full = brute_force_neighbors(vecs, K_MAX)
    np.testing.assert_array_equal(store.nbr_ids, ref_ids)
    np.testing.assert_allclose(store.nbr_dist, ref_d, rtol=1e-12)
    np.fill_diagonal(full, np.inf)
    assert store.d_min == pytest.approx(full.min(), rel=1e-12)
    np.fill_diagonal(full, 0)
    assert store.d_max == pytest.approx(full.max(), rel=1e-12)
    assert store.vocab.words == words


def test_neighbors_beyond_table_are_exact(toy_store, toy_embeddings):
    _, _, vecs = toy_embeddings
    ref_ids, ref_d, _ = brute_force_neighbors(vecs, 200)
    ids, d = toy_store.neighbors(5, 200)
    np.testing.assert_array_equal(ids, ref_ids[5])
    np.testing.assert_array_equal(toy_store.neighbors(5, 10)[0], ref_ids[5, :10])


@pytest.mark.parametrize("scale", [0.05, 0.5, 3.0])
@pytest.mark.parametrize("k", [1, 2])
def test_exact_decoder_equals_brute_force(toy_store, scale, k):
    rng = np.random.default_rng(int(scale * 100) + k)
    anchors = rng.integers(0, len(toy_store.vocab), 500)
    y = toy_store.x64[anchors] + rng.normal(size=(500, toy_store.vocab.dim)) * scale
    ids, d = toy_store.nearest(y, anchors, k)
    np.testing.assert_array_equal(ids, nearest_reference(toy_store.x64, y, k)[0])


def test_annoy_decoder_recall_on_toy(toy_store):
    rng = np.random.default_rng(0)
    anchors = rng.integers(0, len(toy_store.vocab), 300)
    y = toy_store.x64[anchors] + rng.normal(size=(300, toy_store.vocab.dim)) * 0.5
    exact, _ = toy_store.nearest(y, anchors, 1)
    approx, _ = toy_store.nearest(y, anchors, 1, decoder="annoy", search_k=100_000)
    assert (exact == approx).mean() >= 0.99


def test_second_open_reuses_the_entry_without_parsing(toy_store, toy_embeddings, toy_cache,
                                                      monkeypatch):
    import dpsanitize.index as index_module

    def fail(*a, **k):
        raise AssertionError("the source was parsed again")

    monkeypatch.setattr(index_module, "load_vocabulary", fail)
    again = open_index(toy_embeddings[0], vocab_size=0, cache_dir=toy_cache)
    assert again.path == toy_store.path and not again.built_now


def _fresh(tmp_path, n=120):
    from conftest import write_glove

    path = write_glove(tmp_path / "e.txt", toy_words(n), toy_vectors(n, 6, seed=8))
    return path, str(tmp_path / "cache")


@pytest.mark.parametrize("victim", ["nbr_dist.npy", "words.json", "manifest.json", "annoy.ann"])
def test_damaged_entry_is_detected_and_rebuilt(tmp_path, caplog, victim):
    path, cache = _fresh(tmp_path)
    first = open_index(path, vocab_size=0, cache_dir=cache)
    reference = np.array(first.nbr_ids)
    target = os.path.join(first.path, victim)
    if victim == "words.json":  # same size, different content: only the checksum can tell
        from pathlib import Path

        data = bytearray(Path(target).read_bytes())
        data[5] ^= 1
        Path(target).write_bytes(bytes(data))
    else:
        with open(target, "r+b") as f:
            f.truncate(os.path.getsize(target) // 2)
    del first
    with caplog.at_level("WARNING", logger="dpsanitize"):
        second = open_index(path, vocab_size=0, cache_dir=cache)
    assert second.built_now
    assert "damaged" in caplog.text
    np.testing.assert_array_equal(second.nbr_ids, reference)
    load_entry(second.path, full_check=True)  # verifies every checksum
    assert [n for n in os.listdir(cache) if n.startswith((".tmp-", ".trash-"))] == []


def test_concurrent_builds_end_with_one_valid_entry(tmp_path):
    path, cache = _fresh(tmp_path, n=400)
    code = ("import sys; from dpsanitize.index import open_index; "
            "s = open_index(sys.argv[1], vocab_size=0, cache_dir=sys.argv[2]); print(s.path)")
    procs = [subprocess.Popen([sys.executable, "-c", code, path, cache], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    paths = {o[0].strip() for o in outs}
    assert len(paths) == 1
    entries = [n for n in os.listdir(cache) if not n.startswith(".") and n != "sources"]
    assert len(entries) == 1
    assert not [n for n in os.listdir(cache) if n.startswith((".tmp-", ".trash-"))]
    load_entry(paths.pop(), full_check=True)


def test_interrupted_build_leaves_no_entry(tmp_path, monkeypatch):
    import dpsanitize.index as index_module

    path, cache = _fresh(tmp_path)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(index_module, "_build_annoy", boom)
    with pytest.raises(KeyboardInterrupt):
        open_index(path, vocab_size=0, cache_dir=cache)
    leftovers = [n for n in os.listdir(cache) if not n.endswith(".lock")]
    assert leftovers == []


def test_build_parameters_are_part_of_the_key(tmp_path):
    path, cache = _fresh(tmp_path)
    a = open_index(path, vocab_size=0, cache_dir=cache)
    b = open_index(path, vocab_size=0, cache_dir=cache, params=BuildParams(trees=3))
    c = open_index(path, vocab_size=50, cache_dir=cache)
    assert len({a.path, b.path, c.path}) == 3
    assert b.manifest["annoy"]["trees"] == 3 and len(c.vocab) == 50


def test_changed_source_is_reparsed(tmp_path):
    from conftest import write_glove

    path, cache = _fresh(tmp_path)
    a = open_index(path, vocab_size=0, cache_dir=cache)
    write_glove(path, toy_words(120), toy_vectors(120, 6, seed=99))
    os.utime(path, ns=(1, 1))
    b = open_index(path, vocab_size=0, cache_dir=cache)
    assert a.path != b.path


def test_cli_index_info_json_and_neighbors(runner, toy_embeddings, toy_cache):
    path, words, vecs = toy_embeddings
    common = ["--embeddings", path, "--vocab-size", "0", "--cache-dir", toy_cache]
    info = run_cli(runner, ["index", "info", "--json", *common])
    assert info.exit_code == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["vocab_size"] == 300 and data["dim"] == 8
    for key in ("d_min", "d_max", "fingerprint", "path"):
        assert key in data
    result = run_cli(runner, ["neighbors", words[3].upper(), "-k", "4", "--json", *common])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    ref_ids, ref_d, _ = brute_force_neighbors(vecs, 4)
    assert [r["word"] for r in rows] == [words[i] for i in ref_ids[3]]
    assert [r["distance"] for r in rows] == pytest.approx(list(ref_d[3]))
    build = run_cli(runner, ["index", "build", *common])
    assert build.exit_code == 0 and "already cached" in build.stderr


def test_cli_unknown_word_is_usage_error_without_echo(runner, toy_embeddings, toy_cache):
    common = ["--embeddings", toy_embeddings[0], "--vocab-size", "0", "--cache-dir", toy_cache]
    result = run_cli(runner, ["neighbors", "qqsecretqq", *common])
    assert result.exit_code == 2
    assert "not in the vocabulary" in result.stderr and "qqsecretqq" not in result.stderr


@pytest.mark.slow
def test_default_embeddings_index(runner, default_store, default_cache):
    result = run_cli(runner, ["index", "info", "--json", "--cache-dir", default_cache])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["vocab_size"] == 100_000 and data["dim"] == 50
    # the recorded pairs realise the recorded extremes ...
    x = default_store.x64
    for key, value in (("d_min_pair", data["d_min"]), ("d_max_pair", data["d_max"])):
        i, j = default_store.manifest[key]
        assert np.sqrt(((x[i] - x[j]) ** 2).sum()) == pytest.approx(value, rel=1e-12)
    # ... and an independent numpy scan of 500 sampled rows (plus the pairs' rows) stays inside
    rows = np.concatenate([np.random.default_rng(0).choice(len(x), 500, replace=False),
                           default_store.manifest["d_min_pair"], default_store.manifest["d_max_pair"]])
    sq = (x * x).sum(1)
    for block in np.array_split(rows, 10):
        d = np.sqrt(np.maximum(sq[block, None] - 2 * x[block] @ x.T + sq[None, :], 0))
        d[np.arange(len(block)), block] = np.inf
        assert d.min() >= data["d_min"] * (1 - 1e-9)
        d[np.arange(len(block)), block] = 0
        assert d.max() <= data["d_max"] * (1 + 1e-9)
    floor = (3 + 2 * (1 + np.log(100_000))) / data["d_min"]
    assert 75 < floor < 85  # "about 80" for the default vocabulary


def test_an_empty_annoy_answer_is_decoded_exactly_never_the_input(toy_store, monkeypatch):
    """Annoy may answer a query with no words; the input word must never stand in for them."""
    from conftest import nearest_reference

    class Empty:
        def get_nns_by_vector(self, *args, **kwargs):
            return []

    monkeypatch.setitem(toy_store.__dict__, "annoy", Empty())
    rng = np.random.default_rng(5)
    anchors = rng.integers(0, len(toy_store.vocab), 20)
    y = toy_store.x64[anchors] + rng.normal(size=(20, toy_store.vocab.dim)) * 3
    before = toy_store.annoy_fallbacks
    ids, dists = toy_store.nearest(y, anchors, 2, decoder="annoy")
    ref_ids, ref_d = nearest_reference(toy_store.vocab.vectors, y, 2)
    assert (ids == ref_ids).all() and np.allclose(dists, ref_d)
    assert toy_store.annoy_fallbacks - before == 20


def test_derived_arrays_carry_what_they_were_computed_from(toy_store):
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(3)}

    name = "test-derived-hash"
    assert toy_store.derived(name, compute)["x"].tolist() == [0, 1, 2]
    toy_store.derived(name, compute)
    assert len(calls) == 1  # cached
    path = os.path.join(os.path.dirname(toy_store.path), "derived",
                        f"{toy_store.manifest['key'][:32]}-{name}.npz")
    np.savez(path, x=np.arange(5), _computed_from=np.array("something else"))  # stale
    assert toy_store.derived(name, compute)["x"].tolist() == [0, 1, 2] and len(calls) == 2
    np.savez(path, x=np.arange(5))  # written before hashes existed
    assert toy_store.derived(name, compute)["x"].tolist() == [0, 1, 2] and len(calls) == 3


def test_a_derived_array_that_cannot_be_cached_is_said(toy_store, monkeypatch, caplog):
    """Recomputed per process, a derived array (custext's groups, density's prior) can differ in
    its last bits between processes; the run goes on, and says so."""
    import tempfile

    def unwritable(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", unwritable)
    with caplog.at_level("WARNING", logger="dpsanitize"):
        out = toy_store.derived("test-derived-unwritable", lambda: {"x": np.arange(2)})
    assert out["x"].tolist() == [0, 1]
    assert "could not cache test-derived-unwritable beside the index (Permission denied)" \
        in caplog.text
