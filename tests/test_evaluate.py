"""`dpsanitize eval`: accuracy on sanitized text with N_w and S_w, a cache that resumes, the plot."""

import json

import pytest

from conftest import run_cli
from dpsanitize import evaluate as ev


@pytest.fixture(scope="module")
def toy(toy_store, toy_embeddings, toy_cache):
    return ["--embeddings", toy_embeddings[0], "--vocab-size", "0", "--cache-dir", toy_cache]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, toy_embeddings):
    """Label a: words 0-19, label b: words 40-59; a clean classifier separates them."""
    from conftest import write_labelled_tsv

    return write_labelled_tsv(tmp_path_factory.mktemp("eval") / "data.tsv", toy_embeddings[1],
                              300)


def run_eval(runner, toy, dataset, *extra):
    res = run_cli(runner, ["eval", str(dataset), "--text-column", "text", "--label-column",
                           "label", "--mech", "tem", "--eps", "0.05,50", "--repeats", "2",
                           "--draws", "50", "--json", *toy, *extra])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def test_eval_reports_accuracy_changes_and_plausible_deniability(runner, toy, dataset):
    out = run_eval(runner, toy, dataset)
    assert (out["train"], out["test"]) == (240, 60)
    clean, noisy, quiet = out["rows"]
    assert clean["mechanism"] == "none" and clean["accuracy_mean"] > 0.95
    assert (noisy["epsilon"], quiet["epsilon"]) == (0.05, 50)
    assert noisy["changed"] > 0.9 and noisy["N_w"] < 0.1 and noisy["S_w"] > 20
    assert quiet["changed"] < 0.05 and quiet["N_w"] > 0.95
    assert quiet["accuracy_mean"] > noisy["accuracy_mean"]
    assert len(noisy["accuracies"]) == 2


def test_results_are_cached_and_a_grid_resumes(toy_store, dataset, tmp_path, monkeypatch):
    from dpsanitize.formats import read_columns

    rows = read_columns(str(dataset), "tsv", ["text", "label"])
    train, test = ev.split(ev.Dataset([r[0] for r in rows], [r[1] for r in rows]), 0.2)
    first = ev.evaluate(train, test, [("tem", 0.05)], store=toy_store, repeats=2, draws=50,
                        cache_dir=str(tmp_path))
    # a longer grid: the finished setting comes from the cache, only the new one is computed
    calls = []
    real = ev.accuracy
    monkeypatch.setattr(ev, "accuracy", lambda *a: calls.append(1) or real(*a))
    second = ev.evaluate(train, test, [("tem", 0.05), ("tem", 50.0)], store=toy_store,
                         repeats=2, draws=50, cache_dir=str(tmp_path))
    assert second[:2] == first and len(calls) == 2  # two seeds of the new setting only


def test_plot_and_classifiers(runner, toy, dataset, tmp_path):
    png = tmp_path / "acc.png"
    out = run_eval(runner, toy, dataset, "--plot", str(png), "--classifier", "mean-vector")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out["classifier"] == "mean-vector"
    again = run_cli(runner, ["eval", str(dataset), "--text-column", "text", "--label-column",
                             "label", "--mech", "tem", "--eps", "1", "--plot", str(png), *toy])
    assert again.exit_code == 73 and "--force" in again.stderr


def test_eval_input_errors(runner, toy, dataset, tmp_path):
    res = run_cli(runner, ["eval", str(dataset), "--text-column", "nope", "--label-column",
                           "label", "--mech", "tem", "--eps", "1", *toy])
    assert res.exit_code == 65 and "no column named 'nope'" in res.stderr
    res = run_cli(runner, ["eval", str(dataset), "--text-column", "text", "--label-column",
                           "label", "--mech", "tem", "--mech", "gumbel", "--eps", "tem=1", *toy])
    assert res.exit_code == 2 and "no epsilon for --mech gumbel" in res.stderr
    res = run_cli(runner, ["eval", str(dataset), "--text-column", "text", "--label-column",
                           "label", "--mech", "tem", "--eps", "x", *toy])
    assert res.exit_code == 2


def test_a_missing_dataset_is_exit_66(runner, tmp_path):
    from conftest import run_cli

    result = run_cli(runner, ["eval", str(tmp_path / "nope.tsv"), "--text-column", "t",
                              "--label-column", "l", "--mech", "tem", "--eps", "3"])
    assert result.exit_code == 66 and "not found" in result.stderr


@pytest.mark.parametrize("module,extra", [("sklearn", []), ("matplotlib", ["--plot", "p.png"])])
def test_without_the_eval_extra_eval_says_what_to_install(runner, toy, dataset, tmp_path,
                                                          monkeypatch, module, extra):
    """scikit-learn and matplotlib come with the extra `eval`, not with a plain install."""
    import sys

    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    monkeypatch.chdir(tmp_path)
    res = run_cli(runner, ["eval", str(dataset), "--text-column", "text", "--label-column",
                           "label", "--mech", "tem", "--eps", "1", *toy, *extra])
    assert res.exit_code == 2 and "pip install 'dpsanitize[eval]'" in res.stderr
    assert not (tmp_path / "p.png").exists()
