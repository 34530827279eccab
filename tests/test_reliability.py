"""Faults and bad input, as real processes: exit codes, nothing partial left, nothing leaked."""

import fcntl
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

PY = [sys.executable, "-m", "dpsanitize"]


@pytest.fixture(scope="module")
def toy_args(toy_store, toy_embeddings, toy_cache):
    return ["--embeddings", toy_embeddings[0], "--vocab-size", "0", "--cache-dir", toy_cache]


def canaries(n=5):
    """Random out-of-vocabulary tokens: the names and identifiers a user wants hidden."""
    return ["Zq" + secrets.token_hex(6) for _ in range(n)]


def canary_text(words, marks):
    lines = [f"{words[i % 40]} {marks[i % len(marks)]} {words[(i + 1) % 40]}, said "
             f"{marks[(i + 2) % len(marks)]}." for i in range(200)]
    return ("\n".join(lines) + "\n").encode()


def leftovers(folder: Path, keep=("in.txt",)) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def assert_no_canary(marks, *texts, folders=()):
    blobs = [t if isinstance(t, bytes) else t.encode() for t in texts]
    for folder in folders:
        for path in Path(folder).rglob("*"):
            if path.is_file() and path.name != "in.txt":
                blobs.append(path.read_bytes())
    for mark in marks:
        assert not any(mark.encode() in b for b in blobs), "a canary leaked"


def run(args, **kw):
    return subprocess.run([*PY, *args], capture_output=True, timeout=120, **kw)


# ---------------------------------------------------------------------------------------------
# leaks


@pytest.mark.parametrize("oov", ["mask", "random"])
@pytest.mark.parametrize("mech", ["gumbel", "laplace"])
def test_canaries_never_leak(tmp_path, toy_args, toy_embeddings, toy_cache, oov, mech):
    marks = canaries()
    src, dst, rep = tmp_path / "in.txt", tmp_path / "out.txt", tmp_path / "report.json"
    src.write_bytes(canary_text(toy_embeddings[1], marks))
    eps = "400" if mech == "gumbel" else "5"
    res = run(["run", "--mech", mech, "--eps", eps, "--oov", oov, "--report", str(rep),
               "--progress", *toy_args, str(src), str(dst)])
    assert res.returncode == 0, res.stderr
    assert_no_canary(marks, res.stdout, res.stderr, folders=[tmp_path, toy_cache])
    piped = run(["run", "--mech", mech, "--eps", eps, "--oov", oov, *toy_args, "-", "-"],
                input=src.read_bytes())
    assert piped.returncode == 0
    assert_no_canary(marks, piped.stdout, piped.stderr)


def test_canaries_kept_only_with_oov_keep(tmp_path, toy_args, toy_embeddings):
    marks = canaries(1)
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_bytes(canary_text(toy_embeddings[1], marks))
    res = run(["run", "--mech", "gumbel", "--eps", "400", "--oov", "keep", *toy_args, str(src), str(dst)])
    assert res.returncode == 0 and marks[0].encode() in dst.read_bytes()
    assert b"--oov keep" in res.stderr and marks[0].encode() not in res.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_error_path_leaks_nothing(tmp_path, toy_args, toy_embeddings, toy_cache, workers):
    marks = canaries()
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_bytes(canary_text(toy_embeddings[1], marks) + marks[0].encode() + b" \xff\xfe\n")
    res = run(["run", "--mech", "gumbel", "--eps", "400", "--workers", workers, *toy_args, str(src), str(dst)])
    assert res.returncode == 65
    assert b"line 201: not valid utf-8 at byte offset 15" in res.stderr
    assert leftovers(tmp_path) == []
    assert_no_canary(marks, res.stdout, res.stderr, folders=[tmp_path, toy_cache])


def test_internal_error_shows_no_traceback_or_text(tmp_path, toy_args):
    code = ("import sys; import dpsanitize.rewrite as r\n"
            "def boom(self, text, rng, counts, unit='\\n'): raise KeyError(text)\n"
            "r.Rewriter.rewrite = boom\n"
            "from dpsanitize.cli import main; sys.argv[0] = 'dpsanitize'; main()")
    src = tmp_path / "in.txt"
    src.write_text("Zqsecretvalue here\n")
    res = subprocess.run([sys.executable, "-c", code, "run", "--mech", "gumbel", "--eps", "400", *toy_args, str(src),
                          str(tmp_path / "out.txt")], capture_output=True, timeout=60)
    assert res.returncode == 70
    assert b"internal error (KeyError)" in res.stderr and b"Traceback" not in res.stderr
    assert b"Zqsecretvalue" not in res.stderr and leftovers(tmp_path) == []


def test_package_never_prints():
    offenders = [str(p) for p in Path(ROOT, "dpsanitize").rglob("*.py")
                 if re.search(r"\bprint\(", p.read_text())]
    assert offenders == []


# ---------------------------------------------------------------------------------------------
# signals


def _wait_for(predicate, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def default_sigint():
    """A test runner started in the background hands its children an ignored SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _temp_outputs(folder):
    return [p for p in os.listdir(folder) if p.endswith(".dpsanitize-tmp")]


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_streaming(tmp_path, toy_args, toy_embeddings, toy_cache, sig, code, workers):
    marks = canaries()
    fifo, dst = tmp_path / "in.fifo", tmp_path / "out.txt"
    os.mkfifo(fifo)
    proc = subprocess.Popen([*PY, "run", "--mech", "gumbel", "--eps", "400", "--workers", workers, *toy_args,
                             str(fifo), str(dst)],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            preexec_fn=default_sigint)
    with open(fifo, "wb") as writer:
        # with workers: more than one block, so a worker holds a block when the signal comes
        writer.write(canary_text(toy_embeddings[1], marks) * (1 if workers == "1" else 300))
        writer.flush()
        assert _wait_for(lambda: _temp_outputs(tmp_path)), "the run never started its output"
        if workers != "1":
            assert _wait_for(lambda: _children(proc.pid)), "no worker started"
        time.sleep(0.3)
        children = _children(proc.pid)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == code
    assert not dst.exists() and _temp_outputs(tmp_path) == []
    assert b"Traceback" not in err
    assert_no_canary(marks, err, folders=[tmp_path, toy_cache])
    assert _wait_for(lambda: not any(os.path.exists(f"/proc/{c}") for c in children), 5)


def test_signal_as_the_output_is_created_leaves_nothing(tmp_path, monkeypatch):
    """A signal that comes while the temporary output is created is raised as os.open returns,
    before its file descriptor is stored: the cleanup must know the file all the same."""
    from dpsanitize.io import atomic_output

    real_open = os.open

    def open_then_interrupted(path, flags, mode=0o777, **kwargs):
        real_open(path, flags, mode, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "open", open_then_interrupted)
    with pytest.raises(KeyboardInterrupt), atomic_output(str(tmp_path / "out.txt")):
        pass
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_a_cleanup_cut_short_by_the_signal_is_finished_by_the_command_line(tmp_path,
                                                                            monkeypatch, capsys):
    """The one signal the command line acts on can land inside a cleanup and end it before the
    temporary output is removed; the output stays listed, and main's last act removes it."""
    from dpsanitize import io
    from dpsanitize.cli import main

    real_unlink = os.unlink

    def interrupted(path, *args, **kwargs):
        if str(path).endswith(io.TEMP_SUFFIX):
            raise KeyboardInterrupt
        return real_unlink(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "unlink", interrupted)
        with pytest.raises(KeyboardInterrupt), io.atomic_output(str(tmp_path / "out.txt")):
            raise ValueError("the run failed")
    assert len(os.listdir(tmp_path)) == 1  # the cleanup was cut short
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # keep pytest's handlers
    main(["--version"])
    assert os.listdir(tmp_path) == [] and not io._UNFINISHED


def test_a_read_only_file_system_is_exit_73_for_every_output(tmp_path, monkeypatch):
    """On a read-only mount the cleanup's unlink of the never-created temporary file fails too
    (EROFS before the name is looked up); the error must stay the OutputError (73)."""
    import errno

    from dpsanitize.errors import OutputError
    from dpsanitize.io import atomic_output

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "open", read_only)
    monkeypatch.setattr(os, "unlink", read_only)
    with pytest.raises(OutputError, match="Read-only file system"):
        with atomic_output(str(tmp_path / "report.json")):
            pass


def test_dead_worker_exit_70_without_output(tmp_path, toy_args, toy_embeddings):
    """A worker killed mid-run (as the OOM killer would): exit 70, no output, no traceback."""
    fifo, dst = tmp_path / "in.fifo", tmp_path / "out.txt"
    os.mkfifo(fifo)
    proc = subprocess.Popen([*PY, "run", "--mech", "gumbel", "--eps", "400", "--workers", "2", *toy_args, str(fifo),
                             str(dst)], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            preexec_fn=default_sigint)
    with open(fifo, "wb") as writer:
        writer.write(canary_text(toy_embeddings[1], canaries()) * 300)  # two blocks and a bit
        writer.flush()

        def workers():
            return [c for c in _children(proc.pid)
                    if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]

        assert _wait_for(workers), "no worker started"
        os.kill(workers()[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 70, err
    assert b"worker process" in err and b"Traceback" not in err
    assert not dst.exists() and _temp_outputs(tmp_path) == []


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_building_the_index(tmp_path, sig, code):
    from conftest import toy_vectors, toy_words, write_glove

    emb = write_glove(tmp_path / "emb.txt", toy_words(20000), toy_vectors(20000, 50, seed=2))
    cache, out = tmp_path / "cache", tmp_path / "out"
    out.mkdir()
    (out / "in.txt").write_text("hello\n")
    proc = subprocess.Popen([*PY, "run", "--mech", "gumbel", "--eps", "400", "--embeddings", emb, "--vocab-size", "0",
                             "--cache-dir", str(cache), str(out / "in.txt"), str(out / "o.txt")],
                            stderr=subprocess.PIPE, preexec_fn=default_sigint)
    assert _wait_for(lambda: cache.exists() and any(n.startswith(".tmp-") for n in os.listdir(cache)))
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code and b"Traceback" not in err, err
    assert leftovers(out) == []
    assert [n for n in os.listdir(cache) if not n.endswith(".lock")] == []


# ---------------------------------------------------------------------------------------------
# locks and --force


def test_overlapping_run_exits_75(tmp_path, toy_args):
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("hello\n")
    lock = tmp_path / ".out.txt.lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        res = run(["run", "--mech", "gumbel", "--eps", "400", *toy_args, str(src), str(dst)])
    assert res.returncode == 75 and b"lock" in res.stderr and not dst.exists()
    custom = tmp_path / "cron.lock"
    with open(custom, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        res = run(["run", "--mech", "gumbel", "--eps", "400", "--lock", str(custom), *toy_args, str(src), str(dst)])
    assert res.returncode == 75
    res = run(["run", "--mech", "gumbel", "--eps", "400", *toy_args, str(src), str(dst)])
    assert res.returncode == 0  # and its own lock file is gone:
    assert leftovers(tmp_path, keep=("in.txt", "cron.lock")) == ["out.txt"]


def test_failed_forced_run_keeps_the_previous_output(tmp_path, toy_args):
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    dst.write_text("complete previous output\n")
    src.write_bytes(b"ok\nbad \xc3\n")
    res = run(["run", "--mech", "gumbel", "--eps", "400", "--force", *toy_args, str(src), str(dst)])
    assert res.returncode == 65 and dst.read_text() == "complete previous output\n"
    assert leftovers(tmp_path) == ["out.txt"]


# ---------------------------------------------------------------------------------------------
# bad input and output places


def test_input_cases(tmp_path, toy_args):
    out = tmp_path / "o"
    out.mkdir()
    res = run(["run", "--mech", "gumbel", "--eps", "400", *toy_args, str(tmp_path), str(out / "a")])
    assert res.returncode == 66 and b"directory" in res.stderr
    res = run(["run", "--mech", "gumbel", "--eps", "400", *toy_args, str(tmp_path / "missing.txt"), str(out / "b")])
    assert res.returncode == 66
    res = run(["run", "--mech", "gumbel", "--eps", "400", *toy_args, "/dev/null", str(out / "c")])
    assert res.returncode == 0 and (out / "c").read_bytes() == b""
    long_line = tmp_path / "long.txt"
    long_line.write_bytes(b"x" * 5000 + b"\n")
    res = run(["run", "--mech", "gumbel", "--eps", "400", "--max-line-bytes", "4096", *toy_args, str(long_line),
               str(out / "d")])
    assert res.returncode == 65 and b"line 1: longer than --max-line-bytes" in res.stderr
    assert sorted(os.listdir(out)) == ["c"]


def test_other_encoding(tmp_path, toy_args, toy_embeddings):
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_bytes(f"{toy_embeddings[1][0]} café à bientôt\n".encode("latin-1"))
    assert run(["run", "--mech", "gumbel", "--eps", "400", *toy_args, str(src), str(dst)]).returncode == 65
    res = run(["run", "--mech", "gumbel", "--eps", "400", "--encoding", "latin-1", "--oov", "keep", *toy_args,
               str(src), str(dst)])
    assert res.returncode == 0 and dst.read_bytes().endswith(" café à bientôt\n".encode("latin-1"))


def test_output_places(tmp_path, toy_args):
    src = tmp_path / "in.txt"
    src.write_text("hello\n")
    res = run(["run", "--mech", "gumbel", "--eps", "400", *toy_args, str(src), str(tmp_path / "nope" / "out.txt")])
    assert res.returncode == 73 and b"does not exist" in res.stderr
    res = run(["run", "--mech", "gumbel", "--eps", "400", *toy_args, str(src), str(tmp_path)])
    assert res.returncode == 73 and b"directory" in res.stderr


def _without_override() -> list[str] | None:
    """A command prefix under which file permissions apply: root keeps its uid (so it can still read
    its own site-packages) but loses the capabilities that bypass permission checks."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        return None
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def _private_mounts() -> bool:
    return bool(shutil.which("unshare")) and subprocess.run(
        ["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.parametrize("how", ["permissions", "read-only mount"])
def test_unwritable_output_folder_exit_73(tmp_path, toy_args, how):
    """A folder the user may not write to, or a read-only file system."""
    (tmp_path / "in.txt").write_text("hello\n")
    ro = tmp_path / "ro"
    ro.mkdir()
    cmd = [*PY, "run", "--mech", "gumbel", "--eps", "400", *toy_args, str(tmp_path / "in.txt"), str(ro / "out.txt")]
    if how == "permissions":
        prefix = _without_override()
        if prefix is None:
            pytest.skip("running as root without setpriv")
        cmd = [*prefix, *cmd]
        ro.chmod(0o555)
        expected = b"Permission denied"
    else:
        if not _private_mounts():
            pytest.skip("no private mount namespaces here")
        cmd = ["unshare", "-m", "sh", "-c",
               f'mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && exec "$@"', "sh", *cmd]
        expected = b"Read-only file system"
    res = subprocess.run(cmd, capture_output=True, timeout=60, cwd=ROOT)
    ro.chmod(0o755)
    assert res.returncode == 73, res.stderr
    assert expected in res.stderr and os.listdir(ro) == []


@pytest.mark.parametrize("how", ["read-only empty folder", "path under a file", "read-only mount"])
def test_unwritable_cache_exit_73(tmp_path, toy_embeddings, how):
    """An index cache that cannot be created or written: exit 73, the path and the way out."""
    (tmp_path / "in.txt").write_text("hello\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    cmd = [*PY, "run", "--mech", "gumbel", "--eps", "400", "--embeddings", toy_embeddings[0], "--vocab-size", "0",
           str(tmp_path / "in.txt"), str(tmp_path / "out.txt")]
    if how == "read-only empty folder":
        prefix = _without_override()
        if prefix is None:
            pytest.skip("running as root without setpriv")
        cmd = [*prefix, *cmd, "--cache-dir", str(cache)]
        cache.chmod(0o555)
    elif how == "path under a file":
        (tmp_path / "plain-file").write_text("")
        cache = tmp_path / "plain-file" / "cache"
        cmd = [*cmd, "--cache-dir", str(cache)]
    else:
        if not _private_mounts():
            pytest.skip("no private mount namespaces here")
        cmd = ["unshare", "-m", "sh", "-c", f'mount --bind {cache} {cache} && '
               f'mount -o remount,bind,ro {cache} && exec "$@"', "sh", *cmd]
    res = subprocess.run(cmd, capture_output=True, timeout=60, cwd=ROOT,
                         env={**os.environ, "DPSANITIZE_CACHE": str(cache)})
    if cache.is_dir():
        cache.chmod(0o755)
    assert res.returncode == 73, res.stderr
    assert f"cannot write the index cache in {cache}".encode() in res.stderr
    assert b"--cache-dir or DPSANITIZE_CACHE" in res.stderr
    assert not (tmp_path / "out.txt").exists()


def test_disk_full_exit_74_without_partial_file(tmp_path, toy_args, toy_embeddings):
    """A real full file system: a 64 KiB tmpfs in a private mount namespace (unshare)."""
    if not _private_mounts():
        pytest.skip("no private mount namespaces here (see test_write_error_exit_74 for the "
                    "simulated fault)")
    src = tmp_path / "in.txt"
    src.write_bytes(canary_text(toy_embeddings[1], ["Zqx"]) * 50)  # ~200 KiB of output
    small = tmp_path / "small"
    small.mkdir()
    args = " ".join([*toy_args, str(src), str(small / "out.txt")])
    script = (f"mount -t tmpfs -o size=64k none {small} && "
              f"{sys.executable} -m dpsanitize run --mech gumbel --eps 400 {args}; rc=$?; "
              f"ls -A {small}; exit $rc")
    res = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, timeout=60)
    assert res.returncode == 74, res.stderr
    assert b"No space left" in res.stderr and res.stdout.strip() == b""


def test_write_error_exit_74(runner, tmp_path, toy_args, monkeypatch):
    import errno

    import dpsanitize.io as dio

    real_fdopen = os.fdopen

    class Failing:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.EIO, "Input/output error")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    monkeypatch.setattr(dio.os, "fdopen", lambda *a, **k: Failing(real_fdopen(*a, **k)))
    src = tmp_path / "in.txt"
    src.write_text("hello\n")
    result = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "400", *toy_args, str(src), str(tmp_path / "o.txt")])
    assert result.exit_code == 74 and "Input/output error" in result.stderr
    assert leftovers(tmp_path) == []


INTERRUPTED_INSIDE = """
import os, signal, sys, time
import dpsanitize.cli as cli

def interrupted(**kwargs):
    if sys.argv[1] == "exec":  # KeyboardInterrupt raised inside exec() of a string
        exec("import os, signal, time; os.kill(os.getpid(), signal.SIGINT); time.sleep(5)")
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    except KeyboardInterrupt:  # what an interrupted import of a Cython module does
        raise ValueError("not a valid PEP 3118 buffer format string") from None

cli.cli.main = interrupted
cli.main([])
"""


@pytest.mark.parametrize("where", ["exec", "mangled"])
def test_sigint_is_130_whatever_the_interrupt_became(tmp_path, where):
    """A SIGINT ends the run with 130 and 'interrupted' even when it surfaced inside exec() of a
    string (run with -m, as `python -m dpsanitize`, CPython then ends the process by SIGINT, -2,
    unless told otherwise) or was turned into another exception by a library (seen: ValueError
    from sklearn's Cython import while the index was being built)."""
    (tmp_path / "interrupted_run.py").write_text(INTERRUPTED_INSIDE)
    res = subprocess.run([sys.executable, "-m", "interrupted_run", where], cwd=tmp_path,
                         capture_output=True, timeout=60, preexec_fn=default_sigint)
    assert res.returncode == 130, res.stderr
    assert b"dpsanitize: interrupted" in res.stderr and b"internal error" not in res.stderr
