"""`dpsanitize cache list|clean`: entries, sizes, sources; removal by age; builds in progress kept."""

import fcntl
import json
import os
import time
from pathlib import Path

import pytest

from conftest import run_cli
from dpsanitize.index import open_index


@pytest.fixture
def filled_cache(tmp_path, toy_embeddings):
    """Two entries of the toy embeddings (all words; the first 50), one last used 40 days ago."""
    cache = str(tmp_path / "cache")
    old = open_index(toy_embeddings[0], vocab_size=50, cache_dir=cache)
    new = open_index(toy_embeddings[0], vocab_size=0, cache_dir=cache)
    old.derived("probe", lambda: {"x": __import__("numpy").arange(3)})
    long_ago = time.time() - 40 * 86400
    os.utime(old.path, (long_ago, long_ago))
    return cache, old, new


def listing(runner, cache):
    result = run_cli(runner, ["cache", "list", "--json", "--cache-dir", cache])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_list_shows_entries_sizes_and_sources(runner, filled_cache, toy_embeddings):
    cache, old, new = filled_cache
    rows = listing(runner, cache)
    assert [r["path"] for r in rows] == [new.path, old.path]  # most recently used first
    assert [r["vocab_size"] for r in rows] == [300, 50] and all(r["ok"] for r in rows)
    assert all(r["source"] == os.path.abspath(toy_embeddings[0]) for r in rows)
    assert all(r["bytes"] > 1000 for r in rows)
    text = run_cli(runner, ["cache", "list", "--cache-dir", cache]).stdout
    assert "2 entries" in text and new.manifest["key"][:16] in text


def test_list_of_an_empty_or_absent_cache(runner, tmp_path):
    result = run_cli(runner, ["cache", "list", "--cache-dir", str(tmp_path / "none")])
    assert result.exit_code == 0 and "no entries" in result.stdout


def test_clean_older_than_removes_only_old_entries_and_their_files(runner, filled_cache,
                                                                    toy_embeddings):
    cache, old, new = filled_cache
    os.makedirs(os.path.join(cache, ".tmp-999999999-dead"))  # a builder that died long ago
    dry = run_cli(runner, ["cache", "clean", "--older-than", "30d", "--dry-run", "--cache-dir", cache])
    assert dry.exit_code == 0 and "would remove 1 entries" in dry.stderr
    assert len(listing(runner, cache)) == 2
    result = run_cli(runner, ["cache", "clean", "--older-than", "30d", "--cache-dir", cache])
    assert result.exit_code == 0 and "removed 1 entries" in result.stderr
    assert [r["path"] for r in listing(runner, cache)] == [new.path]
    assert not os.path.exists(old.path)
    assert not [n for n in os.listdir(os.path.join(cache, "derived"))
                if n.startswith(old.manifest["key"][:32])]
    sources = os.path.join(cache, "sources")
    pointers = [json.loads(Path(sources, n).read_text())["entry"]
                for n in os.listdir(sources)]
    assert pointers == [new.manifest["key"]]
    assert not [n for n in os.listdir(cache) if n.startswith((".tmp-", ".trash-"))]
    again = open_index(toy_embeddings[0], vocab_size=50, cache_dir=cache)  # rebuilt on demand
    assert again.built_now


def test_clean_everything_but_a_build_in_progress(runner, filled_cache):
    cache, old, new = filled_cache
    with open(os.path.join(cache, f".{new.manifest['key'][:32]}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = run_cli(runner, ["cache", "clean", "--cache-dir", cache])
    assert result.exit_code == 0 and "removed 1 entries" in result.stderr
    assert [r["path"] for r in listing(runner, cache)] == [new.path]
    os.makedirs(os.path.join(cache, "eval"))
    Path(cache, "eval", "result.json").write_text("{}")
    run_cli(runner, ["cache", "clean", "--cache-dir", cache])
    assert listing(runner, cache) == [] and not os.path.exists(os.path.join(cache, "eval"))


@pytest.mark.parametrize("bad", ["30", "x", "-1d", "1y"])
def test_bad_duration_is_a_usage_error(runner, tmp_path, bad):
    result = run_cli(runner, ["cache", "clean", "--older-than", bad, "--cache-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--older-than" in result.stderr


def test_version_flags(runner):
    from dpsanitize import __version__

    for flag in ("-V", "--version"):
        result = run_cli(runner, [flag])
        assert result.exit_code == 0 and __version__ in result.stdout
