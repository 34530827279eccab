"""What a run's report says: the guarantee object, the per-line bound, the counts, what is
released as is; the same from the library and from the command line."""

import json

import pytest

from conftest import run_cli
from dpsanitize.pipeline import Sanitizer


def test_library_report_counts_bytes_and_states_the_guarantee(toy_store):
    s = Sanitizer("tem", 3.0, store=toy_store)
    s.sanitize_text("wa wb wc\nwd\n")
    r = s.report()
    assert r["counts"]["bytes"] == len("wa wb wc\nwd\n") and r["counts"]["words"] == 4
    assert r["guarantee"]["kind"] == "metric-dp" and r["guarantee"]["delta"] == 0.0
    assert set(r["guarantee"]) >= {"kind", "epsilon", "delta", "metric", "covers"}
    assert r["guarantee"]["metric"]["name"] == "euclidean"
    assert r["per_line_bound"]["worst_case_log_ratio"] == pytest.approx(
        3.0 * 3 * toy_store.d_max)


@pytest.mark.parametrize("mech,options,kind", [
    ("santext+", ["--santext-sensitive", "0.5"], "conditional-metric-dp"),
    ("custext", ["--custext-k", "5"], "dp-within-groups"),
])
def test_no_finite_bound_is_null_with_a_reason(runner, toy_embeddings, toy_cache, tmp_path,
                                               mech, options, kind):
    src, rep = tmp_path / "in.csv", tmp_path / "r.json"
    src.write_text("id,text\n1,wa wb wc\n")
    result = run_cli(runner, ["run", "--mech", mech, "--eps", "3", *options, "--column", "text",
                              "--embeddings", toy_embeddings[0], "--vocab-size", "0",
                              "--cache-dir", toy_cache, "--report", str(rep), str(src),
                              str(tmp_path / "out.csv")])
    assert result.exit_code == 0, result.stderr
    r = json.loads(rep.read_text())
    assert r["guarantee"]["kind"] == kind
    assert r["per_line_bound"]["worst_case_log_ratio"] is None and r["per_line_bound"]["reason"]
    assert "every column not named by --column" in r["privacy"]["released_as_is"]
    assert "record" in r["privacy"]["privacy_unit"]


def test_mahalanobis_report_uses_its_own_diameter(runner, toy_embeddings, toy_cache, tmp_path):
    rep = tmp_path / "r.json"
    result = run_cli(runner, ["run", "--mech", "mahalanobis", "--eps", "20", "--lam", "0.9",
                              "--embeddings", toy_embeddings[0], "--vocab-size", "0",
                              "--cache-dir", toy_cache, "--report", str(rep), "-", "-"],
                     input="wa wb\n")
    assert result.exit_code == 0, result.stderr
    r = json.loads(rep.read_text()) if rep.exists() else None
    bound = r["per_line_bound"]
    assert bound["metric"] == "mahalanobis" and r["guarantee"]["metric"]["lam"] == 0.9
    assert bound["worst_case_log_ratio"] == pytest.approx(20 * 2 * bound["diameter"])
