"""Worker processes: the same bytes as one process for a seed, errors and counts intact."""

import io
import multiprocessing
import os

import pytest

from dpsanitize.errors import InputChanged, InputDataError, InvalidParameter
from dpsanitize.pipeline import Sanitizer


@pytest.fixture(scope="module")
def text(toy_embeddings):
    words = toy_embeddings[1]
    lines = [" ".join(words[(7 * i + j) % 120] for j in range(i % 13)) + ", Zqx.\r\n"
             for i in range(3000)]
    return "".join(lines).encode()


@pytest.fixture(scope="module")
def repetitive(toy_embeddings):
    """Every third word is the word of its 40 lines: in a block those take santext's row path,
    the rest its rejection path (a block's last lines may repeat the next word a few times)."""
    words = toy_embeddings[1]
    lines = [" ".join(words[i // 40 % 10] if j % 3 == 0 else words[(7 * i + j) % 120]
                      for j in range(i % 13)) + ", Zqx.\r\n" for i in range(3000)]
    return "".join(lines).encode()


def _stream(store, data, workers, seed=11, mech="gumbel", eps=400.0, **kw):
    s = Sanitizer(mech, eps, store=store, seed=seed)
    out = io.BytesIO()
    counts = s.sanitize_stream(io.BytesIO(data), out, workers=workers, block=4096, **kw)
    return out.getvalue(), counts


@pytest.mark.parametrize("mech,eps", [("gumbel", 400.0), ("laplace", 3.0), ("santext", 1.0)])
def test_same_bytes_and_counts_for_any_number_of_workers(toy_store, text, repetitive, mech, eps):
    text = repetitive if mech == "santext" else text
    one, counts_one = _stream(toy_store, text, 1, mech=mech, eps=eps)
    two, counts_two = _stream(toy_store, text, 2, mech=mech, eps=eps)
    assert len(text) > 20 * 4096  # many blocks, so the order of the blocks is tested too
    assert one == two and counts_one == counts_two
    assert counts_one.lines == 3000 and counts_one.bytes == len(text)
    assert _stream(toy_store, text, 2, seed=12, mech=mech, eps=eps)[0] != two
    assert multiprocessing.active_children() == []  # the workers are gone


def test_decode_error_in_a_worker_names_the_line(toy_store, text):
    bad = text + b"\xff\n" + text
    with pytest.raises(InputDataError, match="line 3001: not valid utf-8 at byte offset 0"):
        _stream(toy_store, bad, 2)
    assert multiprocessing.active_children() == []


def test_workers_need_a_seeded_sanitizer(toy_store, text):
    import numpy as np

    s = Sanitizer("gumbel", 400.0, store=toy_store, rng=np.random.default_rng(0))
    with pytest.raises(InvalidParameter, match="worker processes need a sanitizer seeded"):
        s.sanitize_stream(io.BytesIO(text), io.BytesIO(), workers=2, block=4096)


def test_cli_workers_flag(tmp_path, toy_embeddings, toy_cache, toy_store):
    """`run --workers 2` writes what `--workers 1` writes; no canary reaches stderr or the report."""
    import subprocess
    import sys

    from test_reliability import assert_no_canary, canaries, canary_text

    marks = canaries()
    src = tmp_path / "in.txt"
    src.write_bytes(canary_text(toy_embeddings[1], marks) * 400)  # > 1 MiB: two blocks
    outputs = []
    for workers in ("1", "2"):
        dst, rep = tmp_path / f"out{workers}.txt", tmp_path / f"report{workers}.json"
        res = subprocess.run(
            [sys.executable, "-m", "dpsanitize", "run", "--mech", "gumbel", "--eps", "400", "--seed", "3", "--workers",
             workers, "--report", str(rep), "--embeddings", toy_embeddings[0], "--vocab-size", "0",
             "--cache-dir", toy_cache, str(src), str(dst)], capture_output=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert_no_canary(marks, res.stdout, res.stderr, rep.read_bytes())
        outputs.append(dst.read_bytes())
    assert outputs[0] == outputs[1] and outputs[0].count(b"\n") == 80_000


def test_block_streams_are_not_reused_across_streams(toy_store, text):
    """A second stream through the same sanitizer draws fresh noise, not block 0's again."""
    s = Sanitizer("gumbel", 400.0, store=toy_store, seed=11)
    first, second = io.BytesIO(), io.BytesIO()
    s.sanitize_stream(io.BytesIO(text), first, block=4096)
    s.sanitize_stream(io.BytesIO(text), second, workers=2, block=4096)
    assert first.getvalue() != second.getvalue()
    assert first.getvalue() == _stream(toy_store, text, 2)[0]  # a fresh sanitizer starts at 0


def test_workers_auto_is_the_usable_cpus_and_workers_share_them(monkeypatch):
    from dpsanitize.engines import parse_workers
    from dpsanitize.geometry import usable_cpus

    assert parse_workers("auto") == len(os.sched_getaffinity(0)) == usable_cpus()
    assert parse_workers("3") == 3
    with pytest.raises(ValueError):
        parse_workers("0")
    monkeypatch.setenv("DPSANITIZE_THREADS", "1")  # what a worker process of a pool is given
    assert usable_cpus() == 1


def test_a_worker_process_gets_its_share_of_the_cpus(toy_store):
    """A worker started as the pool engine starts them decodes with the threads it is given
    (cpus // workers), so N workers never run N x cpus BLAS or decoder threads."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from dpsanitize.engines import pool as workers

    spec = (1,)
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=workers._start,
                             initargs=spec) as pool:
        assert pool.submit(_threads_here).result() == (1, 1)


def _threads_here():
    from threadpoolctl import threadpool_info

    from dpsanitize.geometry import usable_cpus

    return usable_cpus(), max(i["num_threads"] for i in threadpool_info())


def test_file_blocks_travel_as_spans_and_read_back_the_same_bytes(toy_store, text, tmp_path):
    """Blocks of a regular file hold (path, offset, size), never the text; read back, they are
    the file's bytes in order and the output matches a pipe's."""
    from dpsanitize.pipeline import FileSpan

    path = tmp_path / "in.txt"
    path.write_bytes(text)
    s = Sanitizer("gumbel", 400.0, store=toy_store, seed=11)
    with open(path, "rb") as f:
        blocks = list(s.blocks(f, block=4096, spans=True))
    assert len(blocks) > 20 and all(isinstance(b.data, FileSpan) for b in blocks)
    assert b"".join(b.data.read() for b in blocks) == text
    out = io.BytesIO()
    with open(path, "rb") as f:
        s2 = Sanitizer("gumbel", 400.0, store=toy_store, seed=11)
        s2.sanitize_stream(f, out, workers=2, block=4096)
    assert out.getvalue() == _stream(toy_store, text, 1)[0]
    with io.BytesIO(text) as pipe_like:  # no file behind it: bytes, as before
        assert all(isinstance(b.data, bytes) for b in s.blocks(pipe_like, block=4096, spans=True))


def test_a_file_changed_under_a_span_is_an_error(toy_store, text, tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(text)
    s = Sanitizer("gumbel", 400.0, store=toy_store, seed=11)
    with open(path, "rb") as f:
        last = list(s.blocks(f, block=4096, spans=True))[-1].data
    keep = tmp_path / "keep"
    keep.hardlink_to(path)  # the first file's inode stays in use, so it cannot be reused
    replaced = tmp_path / "other.txt"
    replaced.write_bytes(text)  # same bytes, another file
    replaced.replace(path)
    with pytest.raises(InputChanged, match="changed while it was being read"):
        last.read()
    keep.replace(path)
    assert last.read() == text[-last.size:]
    path.write_bytes(text[:-10])  # cut short: the last span cannot be read whole
    with pytest.raises(InputChanged, match="changed while it was being read"):
        last.read()


def test_stdin_redirected_from_a_file_travels_as_bytes(tmp_path, toy_embeddings, toy_cache,
                                                       toy_store, text):
    """`run - OUT < file` with workers: stdin's name is not a path, so its blocks are bytes."""
    import subprocess
    import sys

    src = tmp_path / "in.txt"
    src.write_bytes(text * 6)  # several 256 KiB blocks
    outs = []
    for workers, stdin in (("1", None), ("2", src)):
        dst = tmp_path / f"out{workers}.txt"
        with open(src, "rb") as f:
            args = ["-", str(dst)] if stdin else [str(src), str(dst)]
            res = subprocess.run(
                [sys.executable, "-m", "dpsanitize", "run", "--mech", "gumbel", "--eps", "400", "--seed", "3",
                 "--workers", workers, "--embeddings", toy_embeddings[0], "--vocab-size", "0",
                 "--cache-dir", toy_cache, *args], stdin=f, capture_output=True, timeout=120)
        assert res.returncode == 0, res.stderr
        outs.append(dst.read_bytes())
    assert outs[0] == outs[1]


def test_processes_started_for_a_pool_get_their_blas_share_in_the_environment(monkeypatch):
    """numpy sizes its BLAS pool on import, before any initializer: the share must be in the
    environment the worker starts with, and the caller's environment comes back afterwards."""
    import multiprocessing as mp

    from dpsanitize.engines.pool import BLAS_VARIABLES, spawn_environment

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with spawn_environment(3):
        child = ctx.Process(target=_report_environment, args=(queue,))
        child.start()
    assert queue.get(timeout=60) == dict.fromkeys(BLAS_VARIABLES, "3")
    child.join(60)
    assert os.environ["OMP_NUM_THREADS"] == "7" and "OPENBLAS_NUM_THREADS" not in os.environ


def _report_environment(queue):
    from dpsanitize.engines.pool import BLAS_VARIABLES

    queue.put({name: os.environ.get(name) for name in BLAS_VARIABLES})


def test_a_worker_that_dies_halfway_through_its_result_ends_the_run():
    """A worker killed while it writes its result leaves half a message in the pool's result
    pipe: the run ends with WorkerError (exit 70) all the same. It once waited for the rest of
    that message for ever (scripts/stress_pool.py: 6 runs in 16 hung)."""
    import threading

    from dpsanitize.engines import pool
    from dpsanitize.stream import Block

    ended = {}

    def run():
        try:
            list(pool.run(_HalfResult(), [Block(i, 1, b"") for i in range(6)], workers=2))
        except pool.WorkerError:
            ended["error"] = True

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the run hung"
    assert ended == {"error": True}


class _HalfResult:
    """Block 0's worker writes the start of a 1 MiB result message and dies."""

    def __call__(self, block):
        import signal
        import struct
        import sys
        import time

        if block.index != 0:
            time.sleep(0.2)
            return b""
        frame = sys._getframe()
        while "result_queue" not in frame.f_locals:  # concurrent.futures' worker loop
            frame = frame.f_back
        writer = frame.f_locals["result_queue"]._writer
        os.write(writer.fileno(), struct.pack("!i", 1 << 20) + b"x")  # a header, one byte
        os.kill(os.getpid(), signal.SIGKILL)
