"""Progress: a bar on a terminal; elsewhere (cron, log files) a periodic line on stderr."""

import logging

from dpsanitize.progress import _Lines, progress_bar


def test_not_a_terminal_gets_periodic_lines_with_counts_only(caplog):
    with caplog.at_level(logging.INFO, logger="dpsanitize"):
        bar = progress_bar(10, unit="run", desc="eval", every=0.0)
        assert isinstance(bar, _Lines)  # pytest's stderr is not a terminal
        with bar:
            bar.update(3)
    assert "eval: 3 of 10 run (30%)" in caplog.text


def test_disabled_progress_says_nothing(caplog):
    with caplog.at_level(logging.INFO, logger="dpsanitize"):
        with progress_bar(10, desc="eval", enabled=False, every=0.0) as bar:
            bar.update(3)
    assert "eval" not in caplog.text


def test_run_logs_progress_lines_when_stderr_is_a_file(tmp_path, toy_embeddings, toy_cache):
    import os
    import subprocess

    from conftest import PYTHON

    src = tmp_path / "in.txt"
    src.write_text("wa wb wc\n" * 2000)
    env = {**os.environ, "DPSANITIZE_PROGRESS_SECONDS": "0"}
    done = subprocess.run([PYTHON, "-m", "dpsanitize", "run", "--mech", "tem", "--eps", "3",
                           "--embeddings", toy_embeddings[0], "--vocab-size", "0",
                           "--cache-dir", toy_cache, str(src), str(tmp_path / "out.txt")],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert "in.txt: " in done.stderr and "wa" not in done.stderr
    quiet = subprocess.run([PYTHON, "-m", "dpsanitize", "run", "-q", "--force", "--mech", "tem",
                            "--eps", "3", "--embeddings", toy_embeddings[0], "--vocab-size", "0",
                            "--cache-dir", toy_cache, str(src), str(tmp_path / "out.txt")],
                           capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert quiet.returncode == 0 and "in.txt: " not in quiet.stderr
