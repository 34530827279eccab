"""`dpsanitize run`: files and pipes, line structure, output safety, reports, configs."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from dpsanitize.text import split

WORDS_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


@pytest.fixture(scope="session")
def toy_args(toy_store, toy_embeddings, toy_cache):
    return ["--embeddings", toy_embeddings[0], "--vocab-size", "0", "--cache-dir", toy_cache]


@pytest.fixture(scope="session")
def toy_text(toy_embeddings):
    """Lines mixing vocabulary words (some capitalised), OOV names, punctuation, CRLF, blanks."""
    _, words, _ = toy_embeddings
    w = words
    return (f"{w[0]} {w[1]}, {w[2].title()}!\r\n"
            f"\n"
            f"  {w[3].upper()}\t{w[4]} -- Zork42 {w[5]}...\n"
            f"{w[6]}'s {w[7]} (id_991) {w[8]}\n"
            f"last line without newline {w[9]}").encode()


def separators(data: bytes) -> list[str]:
    """Everything but the words (the default OOV placeholder counts as a word)."""
    return split(data.replace(b"<unk>", b"unk").decode())[0::2]


def test_line_structure_and_separators_preserved(runner, toy_args, toy_text, tmp_path):
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_bytes(toy_text)
    result = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", *toy_args, str(src), str(dst)])
    assert result.exit_code == 0, result.stderr
    out = dst.read_bytes()
    assert out.count(b"\n") == toy_text.count(b"\n") and out.count(b"\r\n") == 1
    assert not out.endswith(b"\n")
    assert separators(out) == separators(toy_text)
    assert len(WORDS_RE.findall(out.decode())) >= len(WORDS_RE.findall(toy_text.decode()))
    assert b"Zork42" not in out and b"<unk>" in out


def test_case_shape_carried_to_replacement(runner, toy_args, toy_embeddings, tmp_path):
    _, words, _ = toy_embeddings
    line = " ".join([words[10].upper(), words[11].title(), words[12]] * 20) + "\n"
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text(line)
    result = run_cli(runner, ["run", "--mech", "laplace", "--eps", "0.5", *toy_args, str(src), str(dst)])
    assert result.exit_code == 0, result.stderr
    out = dst.read_text().split()
    assert all(o.isupper() for o in out[0::3])
    assert all(o[0].isupper() and o[1:].islower() for o in out[1::3])
    assert all(o.islower() for o in out[2::3])


def test_stdin_to_stdout(runner, toy_args, toy_text):
    result = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", "-q", *toy_args, "-", "-"], input=toy_text)
    assert result.exit_code == 0, result.stderr
    assert separators(result.stdout_bytes) == separators(toy_text)
    assert result.stderr == ""


def test_existing_output_refused_without_force(runner, toy_args, tmp_path):
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("hello\n")
    dst.write_text("previous complete output\n")
    result = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", *toy_args, str(src), str(dst)])
    assert result.exit_code == 73 and "--force" in result.stderr
    assert dst.read_text() == "previous complete output\n"
    forced = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", "--force", *toy_args, str(src), str(dst)])
    assert forced.exit_code == 0 and dst.read_text() != "previous complete output\n"


def test_empty_input_gives_empty_output(runner, toy_args, tmp_path):
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_bytes(b"")
    result = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", *toy_args, str(src), str(dst)])
    assert result.exit_code == 0 and dst.read_bytes() == b""


@pytest.mark.parametrize("policy", ["mask", "random", "keep"])
def test_oov_policies(runner, toy_args, toy_embeddings, tmp_path, policy):
    _, words, _ = toy_embeddings
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text(f"{words[0]} Qwertyzz {words[1]}\n" * 50)
    result = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", "--oov", policy, "--oov-token", "[X]",
                              *toy_args, str(src), str(dst)])
    assert result.exit_code == 0, result.stderr
    middle = [line.split()[1] for line in dst.read_text().splitlines()]
    if policy == "mask":
        assert set(middle) == {"[X]"}
    elif policy == "random":
        assert set(middle) <= {w.title() for w in words} and len(set(middle)) > 10
    else:
        assert set(middle) == {"Qwertyzz"} and "--oov keep" in result.stderr


def test_report_json(runner, toy_args, toy_text, tmp_path):
    src, dst, rep = tmp_path / "in.txt", tmp_path / "out.txt", tmp_path / "report.json"
    src.write_bytes(toy_text)
    result = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", "--seed", "12345", "--report", str(rep),
                              *toy_args, str(src), str(dst)])
    assert result.exit_code == 0, result.stderr
    data = json.loads(rep.read_text())
    c = data["counts"]
    assert c["lines"] == 5 and c["words"] == c["replaced"] + c["unchanged"] + c["oov"]
    assert c["oov"] == 7  # Zork42 id 991 and "last line without newline" (wg's is wg + 's)
    assert data["mechanism"] == "gumbel" and data["epsilon"] == 200
    assert "Euclidean" in data["epsilon_unit"]
    assert len(data["vocabulary"]["fingerprint"]) == 64
    assert "per_line_composition" in data["privacy"] and "rule" in data["per_line_bound"]
    assert "not covered by the privacy guarantee" in data["counts_note"]
    text = rep.read_text()
    assert "12345" not in text and "Zork42" not in text and "seed" not in text
    assert "warning" in result.stderr and "12345" not in result.stderr


def test_seed_reproduces_and_no_seed_differs(runner, toy_args, toy_embeddings, tmp_path):
    _, words, _ = toy_embeddings
    src = tmp_path / "in.txt"
    src.write_text(" ".join(words[:200]) + "\n")
    outs = []
    for i, extra in enumerate([["--seed", "7"], ["--seed", "7"], [], []]):
        dst = tmp_path / f"o{i}.txt"
        assert run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", *extra, *toy_args, str(src), str(dst)]).exit_code == 0
        outs.append(dst.read_bytes())
    assert outs[0] == outs[1]
    assert outs[2] != outs[3] and outs[2] != outs[0]


def test_summary_on_stderr_without_text(runner, toy_args, tmp_path):
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("Secretname visited wqr\n")
    result = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", *toy_args, str(src), str(dst)])
    assert result.exit_code == 0
    assert "1 line," in result.stderr and "gumbel eps=200" in result.stderr
    assert "Secretname" not in result.stderr


def test_mechanism_option_for_other_mechanism_is_usage_error(runner, toy_args, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("x\n")
    result = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", "--tem-beta", "0.1", *toy_args, str(src),
                              str(tmp_path / "o.txt")])
    assert result.exit_code == 2 and "--tem-beta does not apply to --mech gumbel" in result.stderr
    assert not (tmp_path / "o.txt").exists()


# ---------------------------------------------------------------------------------------------
# configs


def write_config(path, body):
    path.write_text("[dpsanitize.run]\n" + body)
    return str(path)


def test_config_sets_options_and_flags_win(runner, toy_args, tmp_path, monkeypatch):
    src = tmp_path / "in.txt"
    src.write_text("Qwertyzz\n")
    cfg = write_config(tmp_path / "c.toml", 'eps = 200.0\noov = "mask"\noov-token = "[CFG]"\n')
    r1 = run_cli(runner, ["run", "--config", cfg, *toy_args, str(src), str(tmp_path / "o1")])
    assert r1.exit_code == 0, r1.stderr
    assert (tmp_path / "o1").read_text() == "[CFG]\n"
    r2 = run_cli(runner, ["run", "--config", cfg, "--oov-token", "[CLI]", *toy_args, str(src),
                          str(tmp_path / "o2")])
    assert r2.exit_code == 0 and (tmp_path / "o2").read_text() == "[CLI]\n"
    monkeypatch.setenv("DPSANITIZE_RUN_OOV_TOKEN", "[ENV]")
    r3 = run_cli(runner, ["run", "--config", cfg, *toy_args, str(src), str(tmp_path / "o3")])
    assert r3.exit_code == 0 and (tmp_path / "o3").read_text() == "[ENV]\n"
    r4 = run_cli(runner, ["run", "--config", cfg, "--oov-token", "[CLI]", *toy_args, str(src),
                          str(tmp_path / "o4")])
    assert r4.exit_code == 0 and (tmp_path / "o4").read_text() == "[CLI]\n"


@pytest.mark.parametrize("body,needle", [
    ("epss = 200.0\n", "did you mean eps"),
    ("seed = 4\n", "seed is never read"),
    ('eps = "lots"\n', "eps"),
    ("eps = 200.0\nmech = 'nope'\n", "mech"),
    ("eps = [1\n", "not valid TOML"),
])
def test_bad_config_exit_78(runner, toy_args, tmp_path, body, needle):
    src = tmp_path / "in.txt"
    src.write_text("x\n")
    cfg = write_config(tmp_path / "c.toml", body)
    result = run_cli(runner, ["run", "--config", cfg, *toy_args, str(src), str(tmp_path / "o")])
    assert result.exit_code == 78, result.stderr
    assert needle in result.stderr and not (tmp_path / "o").exists()


@pytest.mark.parametrize("body", ["[dpsanitize.runn]\neps = 200.0\n", "eps = 200.0\n",
                                  "[run]\neps = 200.0\n", ""])
def test_config_without_a_run_table_exit_78(runner, toy_args, tmp_path, body):
    src, cfg = tmp_path / "in.txt", tmp_path / "c.toml"
    src.write_text("x\n")
    cfg.write_text(body)
    result = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", "--config", str(cfg), *toy_args, str(src),
                              str(tmp_path / "o")])
    assert result.exit_code == 78 and "no [dpsanitize.run] table" in result.stderr
    assert not (tmp_path / "o").exists()


def test_seed_not_read_from_environment(runner, toy_args, toy_embeddings, tmp_path, monkeypatch):
    _, words, _ = toy_embeddings
    src = tmp_path / "in.txt"
    src.write_text(" ".join(words[:100]) + "\n")
    monkeypatch.setenv("DPSANITIZE_RUN_SEED", "3")
    monkeypatch.setenv("DPSANITIZE_SEED", "3")
    outs = []
    for i in range(2):
        r = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", *toy_args, str(src), str(tmp_path / f"o{i}")])
        assert r.exit_code == 0 and "seed" not in r.stderr
        outs.append((tmp_path / f"o{i}").read_bytes())
    assert outs[0] != outs[1]


@pytest.mark.parametrize("path", sorted(Path(ROOT, "configs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_load_and_validate(path):
    import click

    from dpsanitize.cli import run
    from dpsanitize.cli.options import load_config

    ctx = click.Context(run, info_name="run")
    load_config(ctx, None, str(path))
    assert ctx.default_map["eps"] > 0 and ctx.default_map["mech"] in ("gumbel", "laplace")


# ---------------------------------------------------------------------------------------------
# processes: pipes, python -m


def test_python_m_and_help_is_fast_and_light():
    code = ("import sys, dpsanitize.cli; "
            "print(any(m in sys.modules for m in ('gensim', 'annoy', 'numpy', 'scipy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    import time

    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "dpsanitize", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "run" in res.stdout and time.perf_counter() - t < 2.0


def test_pipe_closed_early_is_quiet(toy_args, toy_embeddings, tmp_path):
    _, words, _ = toy_embeddings
    src = tmp_path / "in.txt"
    src.write_text((" ".join(words[:40]) + "\n") * 20000)
    cmd = (f"cat {src} | {sys.executable} -m dpsanitize run --mech gumbel --eps 200 {' '.join(toy_args)} - - "
           f"2>{tmp_path / 'err'} | head -n 3; echo \"${{PIPESTATUS[1]}}\" > {tmp_path / 'status'}")
    res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert len(res.stdout.splitlines()) == 3
    assert int((tmp_path / "status").read_text()) in (0, 141)
    assert "Traceback" not in (tmp_path / "err").read_text()


# ---------------------------------------------------------------------------------------------
# default embeddings, end to end


@pytest.mark.slow
@pytest.mark.parametrize("mech,eps", [("gumbel", "120"), ("laplace", "10")])
def test_default_embeddings_end_to_end(runner, default_store, default_cache, tmp_path, mech, eps):
    src = Path(ROOT, "examples", "sample.txt")
    dst, rep = tmp_path / "out.txt", tmp_path / "rep.json"
    result = run_cli(runner, ["run", "--mech", mech, "--eps", eps, "--cache-dir", default_cache,
                              "--report", str(rep), str(src), str(dst)])
    assert result.exit_code == 0, result.stderr
    before, after = src.read_bytes(), dst.read_bytes()
    assert before.count(b"\n") == after.count(b"\n")
    assert separators(after) == separators(before)
    assert after != before
    data = json.loads(rep.read_text())
    assert data["vocabulary"]["size"] == 100_000 and data["counts"]["words"] > 150
    assert data["counts"]["oov"] < 0.1 * data["counts"]["words"]


@pytest.fixture
def umask():
    """Set the process umask for one test (the CLI runs in this process)."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_output_and_report_modes_follow_the_umask(runner, toy_args, tmp_path, umask, mask, mode):
    src, dst, rep = tmp_path / "in.txt", tmp_path / "out.txt", tmp_path / "report.json"
    src.write_text("hello\n")
    umask(mask)
    result = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", "--report", str(rep), *toy_args, str(src),
                              str(dst)])
    assert result.exit_code == 0, result.stderr
    assert (os.stat(dst).st_mode & 0o777, os.stat(rep).st_mode & 0o777) == (mode, mode)


def test_force_keeps_the_replaced_files_mode(runner, toy_args, tmp_path, umask):
    src, dst, rep = tmp_path / "in.txt", tmp_path / "out.txt", tmp_path / "report.json"
    src.write_text("hello\n")
    for path, mode in ((dst, 0o640), (rep, 0o604)):
        path.write_text("old\n")
        path.chmod(mode)
    result = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", "--force", "--report", str(rep), *toy_args,
                              str(src), str(dst)])
    assert result.exit_code == 0, result.stderr
    assert dst.read_text() != "old\n" and json.loads(rep.read_text())["counts"]["words"] == 1
    assert (os.stat(dst).st_mode & 0o777, os.stat(rep).st_mode & 0o777) == (0o640, 0o604)


def test_existing_report_refused_without_force(runner, toy_args, tmp_path):
    src, dst, rep = tmp_path / "in.txt", tmp_path / "out.txt", tmp_path / "report.json"
    src.write_text("hello\n")
    rep.write_text("an older report\n")
    result = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", "--report", str(rep), *toy_args, str(src),
                              str(dst)])
    assert result.exit_code == 73 and "--force" in result.stderr
    assert rep.read_text() == "an older report\n" and not dst.exists()
    assert sorted(os.listdir(tmp_path)) == ["in.txt", "report.json"]


@pytest.mark.parametrize("clash", ["report=input", "report=output", "output=input",
                                   "report=input via a link", "lock=report"])
def test_one_file_in_two_roles_is_a_usage_error(runner, toy_args, tmp_path, clash):
    src, dst, rep = tmp_path / "in.txt", tmp_path / "out.txt", tmp_path / "report.json"
    src.write_text("the input, kept\n")
    args = {"input": str(src), "output": str(dst), "report": str(rep), "lock": None}
    left, right = clash.split(" ")[0].split("=")
    args[left] = args[right]
    if clash.endswith("via a link"):
        (tmp_path / "link.txt").symlink_to(src)
        args["report"] = str(tmp_path / "link.txt")
    extra = ["--lock", args["lock"]] if args["lock"] else []
    before = sorted(os.listdir(tmp_path))
    result = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", "--force", "--report", args["report"],
                              *extra, *toy_args, args["input"], args["output"]])
    assert result.exit_code == 2 and "are the same file" in result.stderr
    assert src.read_text() == "the input, kept\n" and sorted(os.listdir(tmp_path)) == before


def test_missing_output_folder_is_named(runner, toy_args, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("hello\n")
    result = run_cli(runner, ["run", "--mech", "gumbel", "--eps", "200", *toy_args, str(src),
                              str(tmp_path / "nowhere" / "out.txt")])
    assert result.exit_code == 73
    assert f"output folder does not exist: {tmp_path / 'nowhere'}" in result.stderr
    assert "lock" not in result.stderr


def test_defaults_follow_the_measurement(runner, toy_args, tmp_path):
    """No --mech, no --eps: santext at 3.4 (docs/privacy-by-attack.md); another mechanism
    without --eps is asked for it, as before."""
    src, rep = tmp_path / "in.txt", tmp_path / "r.json"
    src.write_text("wa wb wc\n")
    ok = run_cli(runner, ["run", *toy_args, "--report", str(rep), str(src), str(tmp_path / "o")])
    assert ok.exit_code == 0, ok.stderr
    report = json.loads(rep.read_text())
    assert (report["mechanism"], report["epsilon"]) == ("santext", 3.4)
    gumbel = run_cli(runner, ["run", "--mech", "gumbel", *toy_args, str(src), str(tmp_path / "g")])
    assert gumbel.exit_code == 2 and "--mech gumbel needs --eps" in gumbel.stderr
