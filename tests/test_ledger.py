"""The privacy ledger: every release recorded, totals per input and metric, a budget (exit 77)."""

import json
import os

import pytest

from conftest import run_cli


def _toy(toy_embeddings, toy_cache):
    return ["--embeddings", toy_embeddings[0], "--vocab-size", "0", "--cache-dir", toy_cache]


def test_releases_add_up_and_the_budget_refuses_before_any_work(runner, toy_embeddings,
                                                                 toy_cache, tmp_path):
    toy = _toy(toy_embeddings, toy_cache)
    src, book = tmp_path / "in.txt", tmp_path / "ledger.jsonl"
    src.write_text("wa wb wc\nwd we\n")
    for n, eps in enumerate(["3", "4"]):
        ok = run_cli(runner, ["run", "--mech", "tem", "--eps", eps, "--ledger", str(book),
                              "--budget", "8", *toy, str(src), str(tmp_path / f"o{n}.txt")])
        assert ok.exit_code == 0, ok.stderr
    over = run_cli(runner, ["run", "--mech", "santext", "--eps", "2", "--ledger", str(book),
                            "--budget", "8", *toy, str(src), str(tmp_path / "o2.txt")])
    assert over.exit_code == 77 and "over --budget 8" in over.stderr
    assert not (tmp_path / "o2.txt").exists()
    # another metric is accounted apart: mahalanobis eps is per unit of d_RM
    other = run_cli(runner, ["run", "--mech", "mahalanobis", "--eps", "5", "--ledger", str(book),
                             "--budget", "8", *toy, str(src), str(tmp_path / "o3.txt")])
    assert other.exit_code == 0, other.stderr
    shown = json.loads(run_cli(runner, ["ledger", "show", str(book), "--json"]).stdout)
    assert len(shown) == 1 and shown[0]["releases"] == 3
    by_metric = {k.split("@")[0]: v for k, v in shown[0]["by_metric"].items()}
    assert len({k.split("@")[1] for k in shown[0]["by_metric"]}) == 1  # one vocabulary
    assert by_metric["euclidean"]["epsilon"] == 7 and by_metric["euclidean"]["releases"] == 2
    assert by_metric["mahalanobis(lam=0.2)"]["epsilon"] == 5
    entries = [json.loads(line) for line in book.read_text().splitlines()]
    assert {e["kind"] for e in entries} == {"metric-dp"}
    assert all(len(e["sha256"]) == 64 and "wa" not in json.dumps(e) for e in entries)
    text = run_cli(runner, ["ledger", "show", str(book)]).stdout
    assert "euclidean" in text and "eps 7" in text


def test_ledger_needs_files_and_budget_needs_ledger(runner, toy_embeddings, toy_cache, tmp_path):
    toy = _toy(toy_embeddings, toy_cache)
    src = tmp_path / "in.txt"
    src.write_text("wa\n")
    no_ledger = run_cli(runner, ["run", "--mech", "tem", "--eps", "3", "--budget", "8", *toy,
                                 str(src), str(tmp_path / "o.txt")])
    assert no_ledger.exit_code == 2 and "--ledger" in no_ledger.stderr
    piped = run_cli(runner, ["run", "--mech", "tem", "--eps", "3", "--ledger",
                             str(tmp_path / "l.jsonl"), *toy, "-", "-"], input="wa\n")
    assert piped.exit_code == 2 and "stdin" in piped.stderr
    missing = run_cli(runner, ["ledger", "show", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 66


def test_stdin_redirected_from_the_output_is_refused(tmp_path, toy_embeddings, toy_cache):
    import subprocess

    from conftest import PYTHON

    out = tmp_path / "out.txt"
    out.write_text("wa wb\n")
    with open(out, "rb") as stdin:
        done = subprocess.run([PYTHON, "-m", "dpsanitize", "run", "--force", "--mech", "tem",
                               "--eps", "3", *_toy(toy_embeddings, toy_cache), "-", str(out)],
                              stdin=stdin, capture_output=True, text=True)
    assert done.returncode == 2 and "same file" in done.stderr
    assert out.read_text() == "wa wb\n"


def test_copies_of_one_text_in_a_run_are_all_counted(runner, toy_embeddings, toy_cache, tmp_path):
    toy = _toy(toy_embeddings, toy_cache)
    (tmp_path / "in").mkdir()
    for name in ("a.txt", "b.txt"):
        (tmp_path / "in" / name).write_text("wa wb wc\n")
    book = tmp_path / "ledger.jsonl"
    over = run_cli(runner, ["run", "--mech", "tem", "--eps", "5", "--ledger", str(book),
                            "--budget", "6", *toy, "--output-dir", str(tmp_path / "out"),
                            "-r", str(tmp_path / "in")])
    assert over.exit_code == 77 and "2 times" in over.stderr
    assert not list((tmp_path / "out").glob("*.txt"))


def test_other_vocabularies_are_accounted_apart(runner, toy_embeddings, toy_cache, tmp_path):
    book = tmp_path / "ledger.jsonl"
    src = tmp_path / "in.txt"
    src.write_text("wa wb\n")
    for n, size in enumerate(["0", "100"]):
        ok = run_cli(runner, ["run", "--mech", "tem", "--eps", "5", "--ledger", str(book),
                              "--budget", "6", "--embeddings", toy_embeddings[0], "--vocab-size",
                              size, "--cache-dir", toy_cache, str(src), str(tmp_path / f"o{n}")])
        assert ok.exit_code == 0, ok.stderr
    shown = json.loads(run_cli(runner, ["ledger", "show", str(book), "--json"]).stdout)
    assert [m["epsilon"] for m in shown[0]["by_metric"].values()] == [5, 5]


def test_a_ledger_that_cannot_be_written_stops_the_run_before_any_output(
        runner, toy_embeddings, toy_cache, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("wa wb\n")
    out = tmp_path / "o.txt"
    missing = run_cli(runner, ["run", "--mech", "tem", "--eps", "3", "--ledger",
                               str(tmp_path / "nope" / "l.jsonl"), *_toy(toy_embeddings, toy_cache),
                               str(src), str(out)])
    assert missing.exit_code == 73 and not out.exists()
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text('{"sha256": "x", "epsilon": 1}\nnot json\n{"sha256": "y", "epsilon": 1}\n')
    bad = run_cli(runner, ["run", "--mech", "tem", "--eps", "3", "--ledger", str(damaged),
                           *_toy(toy_embeddings, toy_cache), str(src), str(out)])
    assert bad.exit_code == 78 and "line 2" in bad.stderr and not out.exists()


def _while_sanitizing(monkeypatch, action):
    """Run ``action()`` once, when this process first counts a rewritten block (with
    --workers, when the first block comes back)."""
    from dpsanitize.rewrite import Counters

    add, done = Counters.add, []

    def add_after(self, other):
        if not done:  # once: a reader would read on into what is appended
            done.append(action())
        return add(self, other)

    monkeypatch.setattr(Counters, "add", add_after)


def _append(path):
    def append():
        with path.open("a") as f:
            f.write("wd\n")
    return append


def test_an_input_that_changes_during_the_run_is_neither_released_nor_recorded(
        runner, toy_embeddings, toy_cache, tmp_path, monkeypatch):
    """The ledger and the manifest name an input by the SHA-256 taken before the run; a file
    that grows meanwhile (a log still being written) would be released under the wrong name,
    so the run fails with 75 (retry), writes no output and records no release."""
    src, book, out = tmp_path / "in.txt", tmp_path / "ledger.jsonl", tmp_path / "o.txt"
    src.write_text("wa wb wc\n" * 50)
    with monkeypatch.context() as patch:
        _while_sanitizing(patch, _append(src))
        changed = run_cli(runner, ["run", "--mech", "tem", "--eps", "3", "--ledger", str(book),
                                   "--manifest", str(tmp_path / "m.jsonl"),
                                   *_toy(toy_embeddings, toy_cache), str(src), str(out)])
    assert changed.exit_code == 75 and "changed while it was being sanitized" in changed.stderr
    assert not out.exists() and book.read_text() == ""
    entries = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [e["status"] for e in entries] == ["failed"]
    again = run_cli(runner, ["run", "--mech", "tem", "--eps", "3", "--ledger", str(book),
                             *_toy(toy_embeddings, toy_cache), str(src), str(out)])
    assert again.exit_code == 0 and len(book.read_text().splitlines()) == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_batch_goes_on_past_an_input_that_changes_and_exits_75_at_the_end(
        runner, toy_embeddings, toy_cache, tmp_path, monkeypatch, workers):
    """A cron job over a log folder must not stall at the one log still being written: that
    input is left unwritten (manifest "failed", no release) while the others are sanitized and
    reported, the run ends with 75, and the retry does only what is left."""
    logs, clean, report = tmp_path / "logs", tmp_path / "clean", tmp_path / "report.json"
    logs.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (logs / name).write_text("wa wb wc\n" * 50)
    args = ["run", "--mech", "tem", "--eps", "3", "--ledger", str(tmp_path / "ledger.jsonl"),
            "--manifest", str(tmp_path / "m.jsonl"), *_toy(toy_embeddings, toy_cache),
            "--workers", workers, "--output-dir", str(clean), "-r", str(logs)]
    with monkeypatch.context() as patch:
        _while_sanitizing(patch, _append(logs / "a.txt"))  # the first input in the run
        changed = run_cli(runner, [*args, "--report", str(report)])
    assert changed.exit_code == 75, changed.stderr
    assert f"1 input changed while being sanitized and was not written (the others were): " \
           f"{logs / 'a.txt'}; run again" in changed.stderr
    assert "2 of 3 files sanitized (0 skipped, 1 changed during the run)" in changed.stderr
    assert sorted(p.name for p in clean.iterdir()) == ["b.txt", "c.txt"]
    files = json.loads(report.read_text())["files"]
    assert [(os.path.basename(f["input"]), f["status"]) for f in files] == [
        ("a.txt", "changed during the run (not written)"), ("b.txt", "sanitized"),
        ("c.txt", "sanitized")]
    entries = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [(os.path.basename(e["input"]), e["status"]) for e in entries] == [
        ("a.txt", "failed"), ("b.txt", "done"), ("c.txt", "done")]
    released = (tmp_path / "ledger.jsonl").read_text().splitlines()
    assert sorted(os.path.basename(json.loads(r)["input"]) for r in released) == ["b.txt", "c.txt"]
    again = run_cli(runner, args)
    assert again.exit_code == 0 and "1 of 3 files sanitized (2 skipped)" in again.stderr
    assert (clean / "a.txt").exists()


@pytest.mark.parametrize("workers,manifest", [("1", True), ("2", True), ("2", False)])
def test_a_batch_goes_on_past_an_input_cut_short_before_its_blocks_are_read(
        runner, toy_embeddings, toy_cache, tmp_path, monkeypatch, workers, manifest):
    """Cut short once its blocks are handed out: worker processes read the spans past the new
    end and find it, manifest or not (one process has read them already; with a manifest the
    SHA-256 differs after). Either way that input alone is left unwritten and the run exits 75
    at the end."""
    from dpsanitize.pipeline import Sanitizer

    logs, clean = tmp_path / "logs", tmp_path / "clean"
    logs.mkdir()
    for name, lines in (("a.txt", 50), ("b.txt", 40_000), ("c.txt", 50)):  # b: 2 blocks
        (logs / name).write_text("wa wb wc\n" * lines)
    real = Sanitizer.blocks

    def blocks_then_cut(self, src, **kwargs):
        handed_out = list(real(self, src, **kwargs))
        if src.name.endswith("b.txt"):
            os.truncate(src.name, os.path.getsize(src.name) // 2)
        yield from handed_out

    args = ["run", "--mech", "gumbel", "--eps", "400", *_toy(toy_embeddings, toy_cache),
            "--workers", workers, "--output-dir", str(clean), "-r", str(logs)]
    if manifest:
        args += ["--manifest", str(tmp_path / "m.jsonl")]
    with monkeypatch.context() as patch:
        patch.setattr(Sanitizer, "blocks", blocks_then_cut)
        cut = run_cli(runner, args)
    assert cut.exit_code == 75, cut.stderr
    assert f"1 input changed while being sanitized and was not written (the others were): " \
           f"{logs / 'b.txt'}; run again" in cut.stderr
    assert sorted(p.name for p in clean.iterdir()) == ["a.txt", "c.txt"]
    if not manifest:
        return
    entries = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [(os.path.basename(e["input"]), e["status"], e["exit"]) for e in entries] == [
        ("a.txt", "done", 0), ("b.txt", "failed", 75), ("c.txt", "done", 0)]
    again = run_cli(runner, args)
    assert again.exit_code == 0 and "1 of 3 files sanitized (2 skipped)" in again.stderr


def test_a_release_to_stdout_is_recorded_before_its_first_byte(runner, toy_embeddings,
                                                              toy_cache, tmp_path, monkeypatch):
    """stdout cannot be taken back: the release is recorded when the input starts, so even a
    run that fails half-way (here: its input grew) leaves no unrecorded release."""
    src, book = tmp_path / "in.txt", tmp_path / "ledger.jsonl"
    src.write_text("wa wb wc\n" * 50)
    _while_sanitizing(monkeypatch, _append(src))
    grown = run_cli(runner, ["run", "--mech", "tem", "--eps", "3", "--ledger", str(book),
                             *_toy(toy_embeddings, toy_cache), str(src), "-"])
    assert grown.exit_code == 75 and "recorded under its SHA-256" in grown.stderr
    assert [json.loads(line)["input"] for line in book.read_text().splitlines()] == [str(src)]


def test_an_input_gone_before_the_second_hash_is_exit_75(runner, toy_embeddings, toy_cache,
                                                         tmp_path, monkeypatch):
    src, book, out = tmp_path / "in.txt", tmp_path / "ledger.jsonl", tmp_path / "o.txt"
    src.write_text("wa wb wc\n")
    _while_sanitizing(monkeypatch, src.unlink)
    gone = run_cli(runner, ["run", "--mech", "tem", "--eps", "3", "--ledger", str(book),
                            *_toy(toy_embeddings, toy_cache), str(src), str(out)])
    assert gone.exit_code == 75 and "could not be read again" in gone.stderr
    assert not out.exists() and book.read_text() == ""


@pytest.mark.parametrize("option", ["--ledger", "--manifest"])
def test_a_pipe_is_refused_where_a_sha256_is_taken_before_the_run(runner, toy_embeddings,
                                                                  toy_cache, tmp_path, option):
    """A FIFO would be read to its end by the first hash (and a writer-less one hang it)."""
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    refused = run_cli(runner, ["run", "--mech", "tem", "--eps", "3", option,
                               str(tmp_path / "book.jsonl"), *_toy(toy_embeddings, toy_cache),
                               str(fifo), str(tmp_path / "o.txt")])
    assert refused.exit_code == 2 and "is a pipe or a device" in refused.stderr
