"""Every printed guarantee is checked by enumeration against the mechanism's exact law.

For each mechanism with a closed-form law (and the Laplace family on a 1-D vocabulary, where
the law of the decoded word is the Laplace CDF over Voronoi intervals), the test computes, for
every ordered pair of words, the worst output ratio max_y log(P[y|w] / P[y|w']) (for approximate
guarantees: the worst set's excess sum_y max(0, P[y|w] - e^L P[y|w'])) and asserts that it never
exceeds what the mechanism's ``Guarantee`` claims for the pairs it covers; gumbel's law comes
from numerical integration of its specification (``test_gumbel.exact_probabilities``).
Deliberately wrong guarantees (santext+ claiming pure metric DP, custext claiming every pair,
truncated laplace claiming delta 0 or a third of its delta) must fail the same check.
"""

import dataclasses
import math

import numpy as np
import pytest

from conftest import toy_words, write_glove
from dpsanitize import privacy
from dpsanitize.index import open_index
from dpsanitize.mechanisms import create
from dpsanitize.mechanisms.mahalanobis import regularized_sqrt

TOL = 1e-9  # float64 rounding of the closed forms


def violations(law: np.ndarray, guarantee: privacy.Guarantee) -> list:
    """(w, w', observed, claimed) for every covered pair whose claim the law breaks."""
    n = len(law)
    a, b = np.array([(i, j) for i in range(n) for j in range(n) if i != j]).T
    log_ratio, delta, covered = guarantee.pair_bounds(a, b)
    bad = []
    for i, j, bound, slack, ok in zip(a, b, log_ratio, delta, covered):
        if not ok:
            continue
        p, q = law[i], law[j]
        if guarantee.kind == privacy.APPROXIMATE:
            excess = float(np.maximum(p - math.exp(bound) * q, 0).sum())
            if excess > slack + TOL:
                bad.append((i, j, excess, slack))
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            worst = float(np.max(np.where(p > 0, np.log(p) - np.log(q), -np.inf)))
        if worst > bound + TOL:
            bad.append((i, j, worst, bound))
    return bad


def exact_law(mech) -> np.ndarray:
    return np.array([mech.probabilities(i) for i in range(mech.vocab_size)])


LINE = np.array([[0.0], [0.7], [1.9], [2.2], [3.6], [5.0], [5.3]], dtype=np.float32)


@pytest.fixture(scope="module")
def line_store(tmp_path_factory, toy_cache):
    """7 words on a line: the Laplace family's law has a closed form there."""
    path = write_glove(tmp_path_factory.mktemp("line") / "line.txt", toy_words(len(LINE)), LINE)
    return open_index(path, vocab_size=0, cache_dir=toy_cache)


def laplace_law_1d(store, eps: float, radius: float | None = None) -> np.ndarray:
    """P[y|w] of 1-D Laplace noise (density ~ exp(-eps|z|), optionally |z| <= R) decoded to the
    nearest word: the noise CDF over each word's Voronoi interval."""
    x = np.asarray(store.vocab.vectors, dtype=np.float64)[:, 0]
    order = np.argsort(x)
    mids = (x[order][1:] + x[order][:-1]) / 2
    edges = np.concatenate([[-np.inf], mids, [np.inf]])

    def cdf(t):
        t = np.asarray(t, dtype=np.float64)
        if radius is not None:
            t = np.clip(t, -radius, radius)
        full = np.where(t < 0, 0.5 * np.exp(eps * t), 1 - 0.5 * np.exp(-eps * t))
        if radius is None:
            return full
        lo, hi = 0.5 * math.exp(-eps * radius), 1 - 0.5 * math.exp(-eps * radius)
        return (full - lo) / (hi - lo)

    law = np.zeros((len(x), len(x)))
    for w in range(len(x)):
        mass = cdf(edges[1:] - x[w]) - cdf(edges[:-1] - x[w])
        law[w, order] = mass
    return law


@pytest.mark.parametrize("name,eps,options", [
    ("santext", 1.5, {}), ("santext", 4.0, {}), ("tem", 2.0, {}), ("density", 1.5, {}),
    ("santext+", 1.5, {"santext_sensitive": 0.5, "santext_p": 0.3}),
    ("santext+", 1.5, {"santext_sensitive": 0.5, "santext_p": 1.0}),
    ("santext+", 1.5, {"santext_sensitive": 1.0, "santext_p": 0.3}),
    ("custext", 2.0, {"custext_k": 4}),
    ("diffractor", 0.8, {"diffractor_lists": 1}), ("diffractor", 0.8, {"diffractor_lists": 3}),
])
def test_closed_form_laws_keep_their_guarantee(stat_store, name, eps, options):
    mech = create(name, epsilon=eps, store=stat_store, **options)
    assert violations(exact_law(mech), mech.guarantee) == []


@pytest.mark.parametrize("factor", [1.01, 3.0])
def test_gumbel_keeps_its_guarantee_by_numerical_integration(stat_store, factor):
    """The truncated Gumbel law by numerical integration of the specification (test_gumbel's
    independent reference), just above the calibration's floor and well above it."""
    from test_gumbel import exact_probabilities

    from dpsanitize.mechanisms.gumbel import epsilon_floor

    eps = factor * epsilon_floor(len(stat_store.vocab), stat_store.d_min)
    mech = create("gumbel", epsilon=eps, store=stat_store)
    d = mech.guarantee.metric.distance(*np.indices((12, 12)).reshape(2, -1)).reshape(12, 12)
    law = np.array([exact_probabilities(w, d, mech.lam, mech.b, stat_store.d_max)
                    for w in range(12)])
    assert np.allclose(law.sum(1), 1, atol=1e-8)
    assert violations(law, mech.guarantee) == []


def test_a_delta_too_small_is_caught(line_store):
    eps, radius = 1.3, 3.0
    mech = create("laplace", epsilon=eps, store=line_store, truncate=radius, max_delta=0.5)
    law = laplace_law_1d(line_store, eps, radius)
    understated = dataclasses.replace(mech.guarantee, delta=mech.guarantee.delta / 3)
    assert violations(law, understated)


def test_laplace_on_a_line_keeps_its_guarantee(line_store):
    mech = create("laplace", epsilon=1.3, store=line_store)
    law = laplace_law_1d(line_store, 1.3)
    # the formula is the sampler's law (chi-square, false-alarm rate 1e-6 per word)
    from scipy import stats

    rng = np.random.default_rng(7)
    for w in range(len(LINE)):
        out = mech.perturb(np.full(40_000, w), rng)
        observed = np.bincount(out, minlength=len(LINE))
        expected = law[w] * len(out)
        keep = expected > 5
        chi2 = (((observed - expected)[keep]) ** 2 / expected[keep]).sum()
        assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-6
    assert violations(law, mech.guarantee) == []


def test_truncated_laplace_keeps_its_approximate_guarantee(line_store):
    eps, radius = 1.3, 3.0
    mech = create("laplace", epsilon=eps, store=line_store, truncate=radius, max_delta=0.5)
    g = mech.guarantee
    assert g.kind == privacy.APPROXIMATE and g.delta == pytest.approx(math.exp(-eps * radius))
    law = laplace_law_1d(line_store, eps, radius)
    assert violations(law, g) == []
    # the words' outputs really differ by more than exp(eps d) alone allows: delta is needed
    pure = dataclasses.replace(g, kind=privacy.METRIC_DP, delta=0.0)
    assert violations(law, pure)


def test_wrong_guarantees_fail_the_check(stat_store, line_store):
    plus = create("santext+", epsilon=1.5, store=stat_store, santext_sensitive=0.5, santext_p=0.3)
    claims_everything = dataclasses.replace(plus.guarantee, kind=privacy.METRIC_DP, covered=None)
    assert violations(exact_law(plus), claims_everything)

    groups = create("custext", epsilon=2.0, store=stat_store, custext_k=4)
    every_pair = dataclasses.replace(groups.guarantee, covered=None)
    assert violations(exact_law(groups), every_pair)


def test_pairs_outside_the_cover_are_not_claimed(stat_store):
    plus = create("santext+", epsilon=1.5, store=stat_store, santext_sensitive=0.5, santext_p=0.3)
    first = plus.first_sensitive
    assert plus.guarantee.pair_bound(0, first) is None  # a non-sensitive word
    assert plus.guarantee.pair_bound(first, first + 1) is not None
    groups = create("custext", epsilon=2.0, store=stat_store, custext_k=4)
    other = int(np.flatnonzero(groups.group_of != groups.group_of[0])[0])
    assert groups.guarantee.pair_bound(0, other) is None


def test_mahalanobis_is_stated_in_its_own_metric(stat_store):
    lam = 0.9
    mech = create("mahalanobis", epsilon=2.0, store=stat_store, lam=lam)
    g = mech.guarantee
    # d_RM from the noise shape S itself: |S^-1 (u - v)|, independent of the code's whitening
    shape = regularized_sqrt(stat_store.vocab.vectors, lam)
    x = np.linalg.solve(shape, np.asarray(stat_store.vocab.vectors, dtype=np.float64).T).T
    brute = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    assert g.metric.name == "mahalanobis" and g.metric.params == {"lam": lam}
    assert g.metric.diameter == pytest.approx(brute.max(), rel=1e-12)
    assert g.pair_bound(0, 5)[0] == pytest.approx(2.0 * brute[0, 5], rel=1e-12)
    line = g.line_bound(12)
    assert line["worst_case_log_ratio"] == pytest.approx(2.0 * 12 * brute.max(), rel=1e-12)
    # not the Euclidean d_max, which the old report multiplied by
    assert abs(brute.max() - stat_store.d_max) > 0.1
    vickrey = create("vickrey", epsilon=2.0, store=stat_store, vickrey_base="mahalanobis", lam=lam)
    assert vickrey.guarantee == g


def test_line_bounds_by_kind(stat_store, line_store):
    laplace = create("laplace", epsilon=8, store=stat_store)
    bound = laplace.guarantee.line_bound(12)
    assert bound["worst_case_log_ratio"] == pytest.approx(8 * 12 * stat_store.d_max)
    assert "exp(8 * sum_i d(w_i, w'_i))" in bound["rule"]

    groups = create("custext", epsilon=3, store=stat_store, custext_k=4).guarantee.line_bound(12)
    assert groups["worst_case_log_ratio"] is None and "group" in groups["reason"]
    assert groups["covered_log_ratio"] == pytest.approx(3 * 12)

    plus = create("santext+", epsilon=2, store=stat_store).guarantee.line_bound(5)
    assert plus["worst_case_log_ratio"] is None and "non-sensitive" in plus["reason"]

    eps, radius = 1.3, 3.0
    trunc = create("laplace", epsilon=eps, store=line_store, truncate=radius, max_delta=0.5)
    line = trunc.guarantee.line_bound(4)
    per_word = math.exp(eps * line_store.d_max) * trunc.delta / (1 - trunc.delta)
    assert line["delta_per_word"] == trunc.delta
    assert line["worst_case_delta"] == pytest.approx(min(1.0, 4 * per_word))


def test_statement_renders_the_guarantee_and_what_is_released(stat_store):
    mech = create("laplace", epsilon=8, store=stat_store)
    s = mech.privacy_statement()
    assert s["epsilon"] == 8 and s["unit"] == mech.guarantee.unit and s["kind"] == "metric-dp"
    assert "exp(8 * sum_i d(w_i, w'_i))" in s["per_line_composition"]
    assert s["repeated_runs"] == privacy.REPEATED_RUNS and "--oov keep" in s["released_as_is"]
    tables = mech.privacy_statement({"csv", "jsonl"})
    assert "every column not named" in tables["released_as_is"]
    assert "every key not named" in tables["released_as_is"]
    assert "record" in tables["privacy_unit"] and "record" in tables["unit"]
    assert "exp(3 * k)" in create("custext", epsilon=3, store=stat_store).privacy_statement()[
        "per_line_composition"]


def test_every_mechanism_owns_a_valid_guarantee(stat_store):
    from dpsanitize.mechanisms import MECHANISMS

    for name in MECHANISMS:
        mech = create(name, epsilon=150.0 if name == "gumbel" else 3.0, store=stat_store,
                      **({"experimental": True} if name == "density-mh" else {}))
        g = mech.guarantee
        assert g.kind in privacy.KINDS and g.epsilon == mech.epsilon
        assert set(g.as_dict()) >= {"kind", "epsilon", "delta", "metric", "covers"}
        assert g.metric.diameter > 0
