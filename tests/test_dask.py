"""The Dask engine: the local engine's bytes, a killed worker, an interrupt, bags and dataframes.

A local cluster of 2 worker processes on the loopback interface stands in for a real cluster.
"""

import io
import os
import signal
import subprocess
import time

import pytest

from conftest import PYTHON, ROOT, run_cli

distributed = pytest.importorskip("distributed")

from dpsanitize.dask import close, connect, sanitize_bag, sanitize_dataframe  # noqa: E402
from dpsanitize.pipeline import Sanitizer  # noqa: E402


@pytest.fixture(scope="module")
def client():
    c = connect(None, 2)
    yield c
    close(c)


@pytest.fixture(scope="module")
def text(toy_embeddings):
    words = toy_embeddings[1]
    return "".join(" ".join(words[(5 * i + j) % 150] for j in range(i % 11)) + ", Qzx.\n"
                   for i in range(4000)).encode()


def run_engine(store, data, seed=21, mech="gumbel", eps=400.0, client=None, workers=1):
    s = Sanitizer(mech, eps, store=store, seed=seed)
    out = io.BytesIO()
    for item in s.process(s.blocks(io.BytesIO(data), block=4096), "utf-8", workers, client):
        out.write(item[0])
    return out.getvalue()


@pytest.mark.parametrize("mech,eps", [("gumbel", 400.0), ("laplace", 3.0)])
def test_dask_engine_writes_the_local_engines_bytes(client, toy_store, text, mech, eps):
    local = run_engine(toy_store, text, mech=mech, eps=eps)
    assert len(text) > 20 * 4096
    assert run_engine(toy_store, text, mech=mech, eps=eps, client=client) == local
    assert run_engine(toy_store, text, seed=22, mech=mech, eps=eps, client=client) != local


def test_a_killed_worker_changes_nothing(client, toy_store, text):
    """SIGKILL one worker while blocks are in flight: Dask runs its blocks again elsewhere; each
    block is written once, with the noise of its own stream."""
    local = run_engine(toy_store, text * 3)
    pids = list(client.run(os.getpid).values())
    s = Sanitizer("gumbel", 400.0, store=toy_store, seed=21)
    out = io.BytesIO()
    results = s.process(s.blocks(io.BytesIO(text * 3), block=4096), "utf-8", client=client)
    for k, (data, _) in enumerate(results):
        out.write(data)
        if k == 3:
            os.kill(pids[0], signal.SIGKILL)
    assert out.getvalue() == local
    deadline = time.monotonic() + 60  # the nanny brings a new worker up
    while time.monotonic() < deadline and len(client.scheduler_info()["workers"]) < 2:
        time.sleep(0.2)


def test_cli_engine_dask_matches_local(runner, toy_store, toy_embeddings, toy_cache, tmp_path,
                                       text):
    src = tmp_path / "in.txt"
    src.write_bytes(text)
    toy = ["--embeddings", toy_embeddings[0], "--vocab-size", "0", "--cache-dir", toy_cache]
    outs = []
    for engine in ("local", "dask"):
        dst = tmp_path / f"{engine}.txt"
        res = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "400", "--seed", "5", "--engine", engine, *toy,
                               str(src), str(dst)])
        assert res.exit_code == 0, res.stderr
        outs.append(dst.read_bytes())
    assert outs[0] == outs[1]
    bad = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "400", "--scheduler", "tcp://127.0.0.1:1", *toy,
                           str(src), str(tmp_path / "x.txt")])
    assert bad.exit_code == 2 and "--engine dask" in bad.stderr


def test_interrupt_with_the_dask_engine(tmp_path, toy_embeddings, toy_cache, toy_store):
    src = tmp_path / "in.txt"
    line = (" ".join(toy_embeddings[1][:100]) + "\n").encode()
    src.write_bytes(line * (30_000_000 // len(line)))
    cmd = [PYTHON, "-m", "dpsanitize", "run", "--mech", "laplace", "--eps", "3", "--engine",
           "dask", "--embeddings", toy_embeddings[0], "--vocab-size", "0", "--cache-dir",
           toy_cache, str(src), str(tmp_path / "out.txt")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not any(
            n.endswith(".dpsanitize-tmp") for n in os.listdir(tmp_path)):
        time.sleep(0.05)
    time.sleep(1.0)  # blocks are on the workers now
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    assert sorted(os.listdir(tmp_path)) == ["in.txt"]


def test_sanitize_bag(client, toy_store, toy_embeddings):
    import dask.bag as db

    words = toy_embeddings[1]
    lines = [f"{words[i]} {words[i + 1]}, Qzx {words[i + 2]}!" for i in range(200)]
    options = {"embeddings": toy_store.vocab.source, "vocab_size": 0,
               "cache_dir": os.path.dirname(toy_store.path)}
    bag = db.from_sequence(lines, npartitions=4)
    first = sanitize_bag(bag, mech="gumbel", eps=400.0, seed=3, **options).compute()
    again = sanitize_bag(bag, mech="gumbel", eps=400.0, seed=3, **options).compute()
    other = sanitize_bag(bag, mech="gumbel", eps=400.0, seed=4, **options).compute()
    assert first == again != other and len(first) == 200
    assert all(o.count(",") == 1 and o.endswith("!") and "<unk>" in o for o in first)


def test_sanitize_dataframe(client, toy_store, toy_embeddings):
    import dask.dataframe as dd
    import pandas as pd

    words = toy_embeddings[1]
    frame = pd.DataFrame({"id": range(100),
                          "text": [f"{words[i]} {words[i + 1]}" if i % 10 else None
                                   for i in range(100)],
                          "label": [i % 2 for i in range(100)]})
    options = {"embeddings": toy_store.vocab.source, "vocab_size": 0,
               "cache_dir": os.path.dirname(toy_store.path)}
    ddf = dd.from_pandas(frame, npartitions=3)
    out = sanitize_dataframe(ddf, column="text", mech="tem", eps=0.05, seed=1, **options).compute()
    assert out["id"].tolist() == frame["id"].tolist()
    assert out["label"].tolist() == frame["label"].tolist()
    assert out["text"].isna().tolist() == frame["text"].isna().tolist()
    changed = (out["text"] != frame["text"]) & frame["text"].notna()
    assert changed.sum() > 80
    with pytest.raises(Exception, match="no column named 'nope'"):
        sanitize_dataframe(ddf, column="nope", mech="tem", eps=0.05, **options)
