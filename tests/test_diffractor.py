"""1-Diffractor (DESIGN 5.3, issue #20): the list rule against a brute-force walk, the sampler
against the closed-form law (chi-square, false-alarm rate 1e-6) with wrong variants it rejects,
the guarantee in the list metric, and the CLI."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import full_distances, run_cli
from dpsanitize.errors import InvalidParameter
from dpsanitize.mechanisms import create, diffractor
from dpsanitize.mechanisms.diffractor import Diffractor
from dpsanitize.rng import make_rng
from stats import ALPHA, assert_matches_closed_form, counts_of, goodness_of_fit

N_DRAWS = 150_000


def reference_walk(D, start, k=64):
    """The issue's rule, literally: the nearest unused word among the k nearest (by distance,
    then id), else the lowest unused id."""
    n = len(D)
    ranked = [[j for j in np.lexsort((np.arange(n), D[i])) if j != i][:k] for i in range(n)]
    order, used, cur = [], set(), start
    while True:
        order.append(cur)
        used.add(cur)
        if len(order) == n:
            return order
        free = [j for j in ranked[cur] if j not in used]
        cur = free[0] if free else min(set(range(n)) - used)


@pytest.mark.parametrize("lists", [1, 2, 3, 12])
def test_lists_equal_the_reference_walk(store, lists):
    mech = Diffractor(epsilon=1.0, store=store, diffractor_lists=lists)
    D = full_distances(store)
    n = len(D)
    assert mech.order.shape == (lists, n)
    for l in range(lists):
        assert mech.order[l, 0] == l * (n // lists)
        assert list(mech.order[l]) == reference_walk(D, l * (n // lists))
        assert (mech.order[l, mech.pos[l]] == np.arange(n)).all()


def test_dead_ends_continue_from_the_lowest_unused_id(stat_store, monkeypatch):
    """With 3 neighbours the walk on 12 words runs into dead ends."""
    monkeypatch.setattr(diffractor, "NEIGHBORS", 3)
    D = full_distances(stat_store)
    ref = reference_walk(D, 0, k=3)
    mech = Diffractor(epsilon=1.0, store=stat_store)
    assert list(mech.order[0]) == ref
    # the rule was exercised: some step is not to one of the 3 nearest of the previous word
    ranked = {i: set(np.lexsort((np.arange(12), D[i]))[1:4]) for i in range(12)}
    assert any(b not in ranked[a] for a, b in zip(ref, ref[1:]))


def test_lists_on_a_wider_vocabulary_use_only_64_neighbours(toy_store, toy_embeddings):
    """300 words: the 64-neighbour limit and the dead-end rule both matter."""
    mech = Diffractor(epsilon=1.0, store=toy_store, diffractor_lists=2)
    x = np.asarray(toy_embeddings[2], dtype=np.float64)
    D = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    for l, start in enumerate([0, 150]):
        assert list(mech.order[l]) == reference_walk(D, start)


def test_lists_are_cached_beside_the_index(stat_store, monkeypatch):
    first = Diffractor(epsilon=1.0, store=stat_store, diffractor_lists=2)

    def fail(*args):
        raise AssertionError("recomputed")

    monkeypatch.setattr(diffractor, "build_lists", fail)
    again = Diffractor(epsilon=2.0, store=stat_store, diffractor_lists=2)
    assert (again.order == first.order).all()


def reference_law(order, w, eps):
    """Pr[y | w] by enumerating k in [-400, 400] (the rest weighs < exp(-400 eps))."""
    n = order.shape[1]
    k = np.arange(-400, 401)
    weights = np.exp(-eps * np.abs(k))
    weights /= weights.sum()
    law = np.zeros(n)
    for row in order:
        i = int(np.flatnonzero(row == w)[0])
        np.add.at(law, row[np.clip(i + k, 0, n - 1)], weights / len(order))
    return law


@pytest.mark.statistical
@pytest.mark.parametrize("lists", [1, 3])
@pytest.mark.parametrize("w", [0, 5, 11])
def test_sampler_matches_closed_form(stat_store, lists, w):
    """Chi-square goodness of fit, n = 150000 per case, alpha = 1e-6."""
    eps = 0.7
    mech = Diffractor(epsilon=eps, store=stat_store, diffractor_lists=lists)
    law = reference_law(np.array([reference_walk(full_distances(stat_store), s)
                                  for s in range(0, 12, 12 // lists)][:lists]), w, eps)
    assert_matches_closed_form("diffractor", mech, w, law, N_DRAWS, make_rng(10 * w + lists),
                               rtol=1e-12)
    assert mech.probabilities(w).sum() == pytest.approx(1.0, abs=1e-15)


TWO_SIDED = diffractor.two_sided_geometric


def one_sided(rng, size, epsilon, cap=2.0**53):
    return np.abs(TWO_SIDED(rng, size, epsilon, cap))


def rounded_laplace(rng, size, epsilon, cap=2.0**53):
    """The continuous law rounded: Pr[0] = 1 - exp(-eps/2)."""
    return np.round(rng.laplace(0.0, 1.0 / epsilon, size))


@pytest.mark.statistical
@pytest.mark.parametrize("mutant", [one_sided, rounded_laplace])
def test_wrong_noise_is_detected(stat_store, monkeypatch, mutant):
    """The same test (n, alpha) rejects one-sided noise and rounded Laplace noise."""
    eps, w = 0.7, 5
    mech = Diffractor(epsilon=eps, store=stat_store)
    law = mech.probabilities(w)
    monkeypatch.setattr(diffractor, "two_sided_geometric", mutant)
    counts = counts_of(mech.perturb(np.full(N_DRAWS, w), make_rng(2)), 12)
    assert goodness_of_fit(counts, law) < ALPHA


def test_noise_law():
    """k itself: Pr[k] = (1-q)/(1+q) q^|k|, chi-square at alpha = 1e-6 over k in [-15, 15]."""
    eps = 0.9
    k = diffractor.two_sided_geometric(make_rng(5), 400_000, eps).astype(np.int64)
    q = math.exp(-eps)
    support = np.arange(-15, 16)
    probs = (1 - q) / (1 + q) * q ** np.abs(support)
    probs[0] = q ** 15 / (1 + q)  # tails pooled into the ends, as the clipping does
    probs[-1] = q ** 15 / (1 + q)
    counts = counts_of(np.clip(k, -15, 15) + 15, len(support))
    assert goodness_of_fit(counts, probs) > ALPHA


def test_guarantee_is_stated_in_the_list_metric(stat_store):
    from dpsanitize import privacy

    mech = create("diffractor", epsilon=1.5, store=stat_store, diffractor_lists=3)
    g = mech.guarantee
    assert g.kind == privacy.METRIC_DP and g.metric.name == "list"
    assert g.metric.params == {"lists": 3} and g.metric.diameter == 11
    pos = mech.pos
    a, b = np.array([0, 3, 7.0]), np.array([11, 4, 7.0])
    expected = np.abs(pos[:, [0, 3, 7]] - pos[:, [11, 4, 7]]).max(axis=0)
    np.testing.assert_array_equal(g.metric.distance(a, b), expected)
    assert g.pair_bound(0, 11)[0] == pytest.approx(1.5 * expected[0])
    assert "per word" in g.unit and "not comparable" in g.claim
    assert g.line_bound(4)["worst_case_log_ratio"] == pytest.approx(1.5 * 4 * 11)


def test_one_lists_metric_is_not_enough_for_the_mixture(stat_store):
    """The max over lists is needed: list 0's distance alone is broken by the law."""
    import dataclasses

    from dpsanitize.privacy import Metric
    from test_privacy import exact_law, violations

    mech = create("diffractor", epsilon=1.5, store=stat_store, diffractor_lists=3)
    pos0 = mech.pos[0]
    only_first = Metric("list", "list 0 only", 11.0, {"lists": 3},
                        distance=lambda a, b: np.abs(pos0[np.asarray(a, np.int64)]
                                                     - pos0[np.asarray(b, np.int64)]).astype(float))
    wrong = dataclasses.replace(mech.guarantee, metric=only_first)
    assert violations(exact_law(mech), wrong)
    assert violations(exact_law(mech), mech.guarantee) == []


def test_vectorized_and_deterministic(stat_store):
    mech = Diffractor(epsilon=1.0, store=stat_store, diffractor_lists=3)
    ids = np.arange(12).repeat(100)
    out = mech.perturb(ids, make_rng(4))
    assert out.dtype == np.int64 and out.shape == ids.shape
    assert (out == mech.perturb(ids, make_rng(4))).all()
    assert mech.perturb(np.array([], dtype=np.int64), make_rng(0)).shape == (0,)
    big = Diffractor(epsilon=50.0, store=stat_store)  # Pr[k != 0] ~ 4e-22
    assert (big.perturb(ids, make_rng(1)) == ids).all()
    tiny = Diffractor(epsilon=1e-300, store=stat_store)  # E / eps overflows: |k| capped at |W|
    out = tiny.perturb(ids, make_rng(1))
    ends = tiny.order[0, [0, -1]]
    assert set(out) == set(ends) and 0.45 < (out == ends[0]).mean() < 0.55


@pytest.mark.parametrize("bad", [0, -1, 1.5, 13, True])
def test_lists_validated(stat_store, bad):
    with pytest.raises(InvalidParameter, match="--diffractor-lists"):
        Diffractor(epsilon=1.0, store=stat_store, diffractor_lists=bad)


def test_option_refused_by_other_mechanisms(stat_store):
    with pytest.raises(InvalidParameter, match="--diffractor-lists does not apply to --mech tem"):
        create("tem", epsilon=1.0, store=stat_store, diffractor_lists=2)


def test_recipe_rebuilds_it(stat_store):
    import pickle

    mech = create("diffractor", epsilon=0.8, store=stat_store, diffractor_lists=2)
    again = pickle.loads(pickle.dumps(mech.recipe)).build(stat_store)
    assert repr(again) == repr(mech) == "Diffractor(epsilon=0.8, lists=2)"
    ids = np.arange(12).repeat(5)
    assert (again.perturb(ids, make_rng(3)) == mech.perturb(ids, make_rng(3))).all()


def _common(store):
    return ["--embeddings", store.vocab.source, "--vocab-size", "0",
            "--cache-dir", store.path.rsplit("/", 1)[0]]


def test_cli_calibrate_prints_the_list_and_its_steps(runner, stat_store):
    result = run_cli(runner, ["calibrate", "--mech", "diffractor", "--eps", "1",
                              "--diffractor-lists", "2", "--json", *_common(stat_store)])
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    mech = Diffractor(epsilon=1.0, store=stat_store, diffractor_lists=2)
    x = np.asarray(stat_store.vocab.vectors, dtype=np.float64)
    steps = np.linalg.norm(x[mech.order[:, 1:]] - x[mech.order[:, :-1]], axis=-1).ravel()
    assert info["list_length"] == 12 and info["lists"] == 2
    assert info["step_median"] == pytest.approx(np.median(steps), rel=1e-12)
    assert info["step_p99"] == pytest.approx(np.quantile(steps, 0.99), rel=1e-12)
    q = math.exp(-1.0)
    assert info["pr_same_position"] == pytest.approx((1 - q) / (1 + q))
    text = run_cli(runner, ["calibrate", "--mech", "diffractor", "--eps", "1",
                            *_common(stat_store)]).stdout
    assert "list_length: 12" in text and "step_p99" in text


def test_cli_mechanisms_lists_it(runner):
    rows = {r["name"]: r for r in json.loads(run_cli(runner, ["mechanisms", "--json"]).stdout)}
    row = rows["diffractor"]
    assert "list" in row["guarantee"] and "not comparable" in row["guarantee"]
    assert "IWSPA 2024" in row["reference"]


def test_audit_exact_n_w_agrees_with_sampling(stat_store):
    from dpsanitize.audit import audit_words, plausible_deniability

    mech = create("diffractor", epsilon=1.0, store=stat_store, diffractor_lists=3)
    for r in plausible_deniability(mech, audit_words(12, 4), 20_000, make_rng(1)):
        assert abs(r["N_w"] - r["N_w_exact"]) < 0.022  # 6 sd at 20000 draws: 1e-9 false alarm


def test_workers_write_the_same_bytes(tmp_path, toy_embeddings, toy_cache, toy_store):
    words = toy_embeddings[1]
    src = tmp_path / "in.txt"
    src.write_text("".join(" ".join(words[(7 * i + j) % 300] for j in range(i % 11)) + ".\n"
                           for i in range(30_000)))
    outputs = []
    for workers in ("1", "2"):
        dst = tmp_path / f"out{workers}.txt"
        res = subprocess.run(
            [sys.executable, "-m", "dpsanitize", "run", "--mech", "diffractor", "--eps", "1",
             "--diffractor-lists", "2", "--seed", "3", "--workers", workers, "--embeddings",
             toy_embeddings[0], "--vocab-size", "0", "--cache-dir", toy_cache, "--quiet",
             str(src), str(dst)], capture_output=True, timeout=120)
        assert res.returncode == 0, res.stderr
        outputs.append(dst.read_bytes())
    assert outputs[0] == outputs[1] and outputs[0] != src.read_bytes()
    assert len(src.read_bytes()) > 2 * 2**18  # more than two blocks of the pipeline (256 KiB)
