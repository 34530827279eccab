"""Many inputs: --output-dir, --recursive, per-file outputs and streams, the manifest for cron."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import PYTHON, ROOT, run_cli


@pytest.fixture(scope="module")
def toy(toy_store, toy_embeddings, toy_cache):
    return ["--embeddings", toy_embeddings[0], "--vocab-size", "0", "--cache-dir", toy_cache]


@pytest.fixture
def tree(tmp_path, toy_embeddings):
    """incoming/a.txt, incoming/sub/b.txt, incoming/c.csv, incoming/.hidden"""
    w = toy_embeddings[1]
    root = tmp_path / "incoming"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text(f"{w[0]} {w[1]}, {w[2]}.\n{w[3]}\n")
    (root / "sub" / "b.txt").write_text(f"{w[4]} {w[5]} {w[6]}\n")
    (root / "c.csv").write_text(f"id,text\n1,{w[7]} {w[8]}\n2,{w[9]}\n")
    (root / ".hidden").write_text("never read\n")
    return root


def files_below(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_recursive_folder_keeps_relative_paths(runner, toy, tree, tmp_path):
    out = tmp_path / "clean"
    rep = tmp_path / "report.json"
    result = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "400", "-r", "--output-dir", str(out), "--column",
                              "text", "--report", str(rep), *toy, str(tree)])
    assert result.exit_code == 0, result.stderr
    assert files_below(out) == ["a.txt", "c.csv", "sub/b.txt"]
    assert (out / "c.csv").read_text().startswith("id,text\n1,")
    assert "3 of 3 files sanitized" in result.stderr
    report = json.loads(rep.read_text())
    files = {os.path.relpath(f["input"], tree): f for f in report["files"]}
    assert files["a.txt"]["counts"]["words"] == 4 and files["c.csv"]["counts"]["lines"] == 2
    assert files["c.csv"]["format"] == "csv" and files["a.txt"]["format"] == "text"
    assert report["counts"]["words"] == sum(f["counts"]["words"] for f in files.values()) == 10
    assert "record" in report["privacy"]["unit"]


def test_folder_needs_recursive_and_many_inputs_need_output_dir(runner, toy, tree, tmp_path):
    res = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "400", "--output-dir", str(tmp_path / "o"), *toy,
                           str(tree)])
    assert res.exit_code == 66 and "--recursive" in res.stderr
    res = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "400", *toy, str(tree / "a.txt"),
                           str(tree / "sub" / "b.txt"), str(tmp_path / "x")])
    assert res.exit_code == 2 and "--output-dir" in res.stderr


def test_a_files_noise_does_not_depend_on_the_rest_of_the_batch(runner, toy, tree, tmp_path):
    args = ["run", "--mech", "gumbel", "--eps", "400", "--seed", "3", "-q", *toy]
    both = run_cli(runner, [*args, "--output-dir", str(tmp_path / "o1"), str(tree / "a.txt"),
                            str(tree / "sub" / "b.txt")])
    alone = run_cli(runner, [*args, "--output-dir", str(tmp_path / "o2"), str(tree / "sub" / "b.txt")])
    assert both.exit_code == alone.exit_code == 0
    # outside the current folder, a file keeps only its name
    assert (tmp_path / "o1" / "b.txt").read_bytes() == (tmp_path / "o2" / "b.txt").read_bytes()
    assert (tmp_path / "o1" / "a.txt").exists()


def test_existing_output_refused_before_any_work(runner, toy, tree, tmp_path):
    out = tmp_path / "clean"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "b.txt").write_text("older\n")
    res = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "400", "-r", "--output-dir", str(out), "--column",
                           "text", *toy, str(tree)])
    assert res.exit_code == 73 and "sub/b.txt" in res.stderr
    assert files_below(out) == ["sub/b.txt"] and (out / "sub" / "b.txt").read_text() == "older\n"


def manifest_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_manifest_skips_refuses_and_forces(runner, toy, tree, tmp_path):
    out, man = tmp_path / "clean", tmp_path / "manifest.jsonl"
    args = ["run", "--mech", "gumbel", "--eps", "400", "-r", "--output-dir", str(out), "--column", "text",
            "--manifest", str(man), *toy, str(tree)]
    first = run_cli(runner, args)
    assert first.exit_code == 0, first.stderr
    entries = manifest_lines(man)
    assert [e["status"] for e in entries] == ["done"] * 3
    a = next(e for e in entries if e["input"].endswith("a.txt"))
    assert a["sha256"] == __import__("hashlib").sha256((tree / "a.txt").read_bytes()).hexdigest()
    assert a["bytes"] == (tree / "a.txt").stat().st_size and a["exit"] == 0
    assert a["output"] == str(out / "a.txt") and a["mechanism"] == "gumbel" and a["epsilon"] == 400
    assert "seed" not in json.dumps(entries)
    before = {p: (out / p).read_bytes() for p in files_below(out)}

    second = run_cli(runner, args)
    assert second.exit_code == 0 and "0 of 3 files sanitized (3 skipped)" in second.stderr
    assert {p: (out / p).read_bytes() for p in files_below(out)} == before
    assert len(manifest_lines(man)) == 3

    (tree / "sub" / "b.txt").write_text("changed since\n")
    third = run_cli(runner, args)
    assert third.exit_code == 73 and "sub/b.txt has changed" in third.stderr
    assert "second release" in third.stderr and "changed since" not in third.stderr.replace(
        "has changed since the run", "")
    assert {p: (out / p).read_bytes() for p in files_below(out)} == before

    forced = run_cli(runner, [*args, "--force"])
    assert forced.exit_code == 0 and "1 of 3 files sanitized (2 skipped)" in forced.stderr
    assert (out / "sub" / "b.txt").read_bytes() != before["sub/b.txt"]

    other_eps = run_cli(runner, [a if a != "400" else "300" for a in args])
    assert other_eps.exit_code == 73 and "other options" in other_eps.stderr


def test_a_failure_leaves_finished_files_and_the_next_run_resumes(runner, toy, tree, tmp_path):
    (tree / "sub" / "b.txt").write_bytes(b"fine\n\xff broken\n")
    out, man = tmp_path / "clean", tmp_path / "manifest.jsonl"
    args = ["run", "--mech", "gumbel", "--eps", "400", "-r", "--output-dir", str(out), "--column", "text",
            "--manifest", str(man), *toy, str(tree)]
    failed = run_cli(runner, args)
    assert failed.exit_code == 65 and "broken" not in failed.stderr
    assert files_below(out) == ["a.txt", "c.csv"]  # sorted order: sub/ comes last
    assert [(Path(e["input"]).name, e["status"], e["exit"]) for e in manifest_lines(man)] == [
        ("a.txt", "done", 0), ("c.csv", "done", 0), ("b.txt", "failed", 65)]
    (tree / "sub" / "b.txt").write_text("fine now\n")
    resumed = run_cli(runner, args)
    assert resumed.exit_code == 0 and "1 of 3 files sanitized (2 skipped)" in resumed.stderr
    assert files_below(out) == ["a.txt", "c.csv", "sub/b.txt"]


def test_interrupt_in_the_middle_of_a_folder(tmp_path, toy, toy_embeddings):
    """SIGINT while the second file is written: the first stays, the second leaves nothing."""
    words = toy_embeddings[1]
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.txt").write_text(" ".join(words[:50]) + "\n")
    line = (" ".join(words[:100]) + "\n").encode()
    (src / "b.txt").write_bytes(line * (40_000_000 // len(line)))
    out, man = tmp_path / "out", tmp_path / "m.jsonl"
    cmd = [PYTHON, "-m", "dpsanitize", "run", "--mech", "laplace", "--eps", "3", "-r",
           "--output-dir", str(out), "--manifest", str(man), *toy, str(src)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            n.startswith(".b.txt.") for n in (os.listdir(out) if out.exists() else [])):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert sorted(os.listdir(out)) == ["a.txt"]
    assert [(Path(e["input"]).name, e["status"], e["exit"]) for e in manifest_lines(man)] == [
        ("a.txt", "done", 0), ("b.txt", "failed", 130)]


def test_cron_config_runs_a_folder_nightly(tmp_path, toy, tree):
    configs = tmp_path / "configs"
    configs.mkdir()
    shutil.copy(Path(ROOT, "configs", "cron-nightly.toml"), configs)
    cmd = [PYTHON, "-m", "dpsanitize", "run", "--config", str(configs / "cron-nightly.toml"),
           "--column", "text", *toy, str(tree)]
    for night in range(2):
        res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, timeout=120)
        assert res.returncode == 0 and res.stderr == b"", res.stderr
    assert files_below(tmp_path / "clean") == ["a.txt", "c.csv", "sub/b.txt"]
    assert [e["status"] for e in manifest_lines(tmp_path / "manifest.jsonl")] == ["done"] * 3


def test_workers_spread_over_files_and_write_what_one_process_writes(runner, toy, tmp_path,
                                                                    toy_embeddings):
    """Many small files (one block each): the processes work on the next files while the
    current one is written; the bytes are those of one process, and a failure in the middle
    keeps the files before it."""
    words = toy_embeddings[1]
    src = tmp_path / "in"
    src.mkdir()
    for i in range(12):
        (src / f"f{i:02}.txt").write_text(f"{words[i]} {words[i + 1]}, {words[i + 2]}.\n" * 50)
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        res = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "400", "--seed", "4", "-r", "--output-dir",
                               str(out), "--workers", workers, *toy, str(src)])
        assert res.exit_code == 0, res.stderr
        outs.append({p: (out / p).read_bytes() for p in files_below(out)})
    assert outs[0] == outs[1] and len(outs[0]) == 12
    import multiprocessing
    assert multiprocessing.active_children() == []

    (src / "f05.txt").write_bytes(b"ok\n\xff\n")
    man = tmp_path / "m.jsonl"
    res = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "400", "-r", "--output-dir", str(tmp_path / "o3"),
                           "--workers", "2", "--manifest", str(man), *toy, str(src)])
    assert res.exit_code == 65 and "line 2" in res.stderr
    assert files_below(tmp_path / "o3") == [f"f{i:02}.txt" for i in range(5)]
    assert [(Path(e["input"]).name, e["status"]) for e in manifest_lines(man)] == [
        *[(f"f{i:02}.txt", "done") for i in range(5)], ("f05.txt", "failed")]
    # an error found while reading (a CSV header without the column) comes in its turn too
    (src / "f05.txt").write_text("fine again\n")
    (src / "f05b.csv").write_text("id,other\n1,x\n")
    man.unlink()
    res = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "400", "-r", "--output-dir", str(tmp_path / "o4"),
                           "--workers", "2", "--column", "text", "--manifest", str(man), *toy,
                           str(src)])
    assert res.exit_code == 65 and "no column named 'text'" in res.stderr
    assert files_below(tmp_path / "o4") == [f"f{i:02}.txt" for i in range(6)]
    assert manifest_lines(man)[-1]["status"] == "failed" and len(manifest_lines(man)) == 7
