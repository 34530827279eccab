"""The truncated Gumbel mechanism against its specification (DESIGN 5.1)."""

import math

import numpy as np
import pytest
from scipy import integrate, stats as sps

from conftest import full_distances, run_cli
from dpsanitize.errors import CalibrationError
from dpsanitize.mechanisms.gumbel import TruncatedGumbel, gumbel_scale, truncated_gumbel
from dpsanitize.rng import make_rng
from stats import ALPHA, counts_of, describe, goodness_of_fit, homogeneity

EPS = 400.0  # large enough on the toy vocabulary for b to be comparable with the distances


def lambert_w0(x: float) -> float:
    """Principal branch of Lambert W by Newton's method (independent of scipy)."""
    w = math.log1p(x)
    for _ in range(100):
        w -= (w * math.exp(w) - x) / (math.exp(w) * (w + 1))
    return w


def test_calibration_reproduces_the_formula_by_hand():
    n, d_min, d_max, eps = 100_000, 0.35136050749737757, 21.10359744295703, 120.0
    a = (eps - 2 * (1 + math.log(n)) / d_min) / 3
    expected = 2 * d_max / min(lambert_w0(2 * a * d_max), math.log(a * d_min))
    assert gumbel_scale(eps, n, d_min, d_max) == pytest.approx(expected, rel=1e-12)
    # the branch where ln(a d_min) is the smaller term, and the one where W0 is
    for eps in (85.0, 1e6):
        a = (eps - 2 * (1 + math.log(n)) / d_min) / 3
        hand = 2 * d_max / min(lambert_w0(2 * a * d_max), math.log(a * d_min))
        assert gumbel_scale(eps, n, d_min, d_max) == pytest.approx(hand, rel=1e-12)


def test_floor_is_refused_with_its_value():
    n, d_min = 100_000, 0.35136050749737757
    floor = (3 + 2 * (1 + math.log(n))) / d_min
    assert 79 < floor < 81
    for eps in (floor, floor * 0.999, 1.0):
        with pytest.raises(CalibrationError, match=f"{floor:.4g}"):
            gumbel_scale(eps, n, d_min, 21.1)
    assert gumbel_scale(floor * 1.0001, n, d_min, 21.1) > 0


def test_cli_calibrate_json_and_floor_exit_2(runner, stat_store):
    common = ["--embeddings", stat_store.vocab.source, "--vocab-size", "0",
              "--cache-dir", stat_store.path.rsplit("/", 1)[0]]
    ok = run_cli(runner, ["calibrate", "--mech", "gumbel", "--eps", str(EPS), "--json", *common])
    assert ok.exit_code == 0, ok.stderr
    import json

    data = json.loads(ok.stdout)
    n, d_min, d_max = 12, stat_store.d_min, stat_store.d_max
    floor = (3 + 2 * (1 + math.log(n))) / d_min
    a = (EPS - 2 * (1 + math.log(n)) / d_min) / 3
    assert data["b"] == pytest.approx(2 * d_max / min(lambert_w0(2 * a * d_max), math.log(a * d_min)))
    assert data["epsilon_floor"] == pytest.approx(floor)
    assert data["lambda"] == pytest.approx(math.log(11))
    assert {"epsilon", "vocab_size", "d_min", "d_max"} <= data.keys()
    low = run_cli(runner, ["calibrate", "--mech", "gumbel", "--eps", str(floor * 0.99), *common])
    assert low.exit_code == 2 and f"{floor:.4g}" in low.stderr and "Traceback" not in low.stderr


@pytest.mark.statistical
def test_truncated_gumbel_sampler_matches_its_cdf():
    """Kolmogorov-Smirnov against the truncated CDF, n = 200000, alpha = 1e-6."""
    b, bound = 1.7, 2.5
    x = truncated_gumbel(make_rng(1), 200_000, b, bound)
    assert x.min() >= -bound and x.max() <= bound
    F = lambda t: np.exp(-np.exp(-np.asarray(t) / b))  # noqa: E731
    cdf = lambda t: np.clip((F(t) - F(-bound)) / (F(bound) - F(-bound)), 0, 1)  # noqa: E731
    assert sps.kstest(x, cdf).pvalue > ALPHA
    wrong = truncated_gumbel(make_rng(1), 200_000, 2 * b, bound)
    assert sps.kstest(wrong, cdf).pvalue < ALPHA


def exact_probabilities(w: int, D: np.ndarray, lam: float, b: float, bound: float) -> np.ndarray:
    """Pr[M(w) = y] by numerical integration of the specification (independent of the code)."""
    n = len(D)
    F = lambda t: math.exp(-math.exp(-t / b))  # noqa: E731
    z = F(bound) - F(-bound)
    pdf = lambda t: (math.exp(-t / b) * F(t) / b / z) if -bound <= t <= bound else 0.0  # noqa: E731
    cdf = lambda t: min(1.0, max(0.0, (F(t) - F(-bound)) / z))  # noqa: E731
    order = sorted((j for j in range(n) if j != w), key=lambda j: (D[w, j], j))
    pk = sps.poisson.pmf(np.arange(n), lam) / sps.poisson.cdf(n - 1, lam)
    probs = np.zeros(n)
    for k in range(n):
        cand = [w] + order[:k]
        d = [D[w, c] for c in cand]
        for i, c in enumerate(cand):
            others = [dj for j, dj in enumerate(d) if j != i]

            def integrand(x, di=d[i], others=others):
                p = pdf(x - di)
                for dj in others:
                    p *= 1.0 - cdf(x - dj)
                return p

            brk = sorted({dj + s * bound for dj in d for s in (-1, 1)})
            val, _ = integrate.quad(integrand, d[i] - bound, d[i] + bound, points=brk, limit=400,
                                    epsabs=1e-13, epsrel=1e-10)
            probs[c] += pk[k] * val
    return probs


def reference_sampler(w, D, lam, b, bound, rng, draws):
    """Independent sampler written from the formulas: per draw loops, Gumbel by rejection."""
    n = len(D)
    order = sorted((j for j in range(n) if j != w), key=lambda j: (D[w, j], j))
    out = np.empty(draws, dtype=np.int64)
    for t in range(draws):
        k = rng.poisson(lam)
        while k > n - 1:
            k = rng.poisson(lam)
        cand = [w] + order[:k]
        best, best_score = None, math.inf
        for c in cand:
            g = rng.gumbel(0.0, b)
            while not -bound <= g <= bound:
                g = rng.gumbel(0.0, b)
            if D[w, c] + g < best_score:
                best, best_score = c, D[w, c] + g
        out[t] = best
    return out


@pytest.mark.statistical
@pytest.mark.parametrize("w", [0, 6, 11])
@pytest.mark.parametrize("narrow", [False, True], ids=["table", "on-demand"])
def test_output_distribution_matches_exact_probabilities(stat_store, stat_store_narrow, w, narrow):
    """Chi-square goodness of fit, n = 200000 draws, alpha = 1e-6 (per word and table width)."""
    store = stat_store_narrow if narrow else stat_store
    mech = TruncatedGumbel(epsilon=EPS, store=store)
    D = full_distances(store)
    probs = exact_probabilities(w, D, mech.lam, mech.b, store.d_max)
    assert probs.sum() == pytest.approx(1.0, abs=1e-8)
    counts = counts_of(mech.perturb(np.full(200_000, w), make_rng(10 + w)), len(D))
    p = goodness_of_fit(counts, probs)
    assert p > ALPHA, describe("gumbel", p, counts, probs * 200_000)


@pytest.mark.statistical
def test_output_distribution_matches_reference_sampler(stat_store):
    """Two-sample chi-square, 100000 implementation vs 40000 reference draws, alpha = 1e-6."""
    mech = TruncatedGumbel(epsilon=EPS, store=stat_store)
    D = full_distances(stat_store)
    for w in (3, 9):
        ours = counts_of(mech.perturb(np.full(100_000, w), make_rng(w)), 12)
        ref = counts_of(reference_sampler(w, D, mech.lam, mech.b, stat_store.d_max,
                                          np.random.default_rng(w), 40_000), 12)
        p = homogeneity(ours, ref)
        assert p > ALPHA, describe("gumbel vs reference", p, ours)


@pytest.mark.statistical
@pytest.mark.parametrize("mutant", ["b-doubled", "k-counts-input-word", "gumbel-max"])
def test_mutants_are_detected(stat_store, mutant):
    """The same goodness-of-fit test rejects wrong mechanisms (p < 1e-6)."""
    mech = TruncatedGumbel(epsilon=EPS, store=stat_store)
    D = full_distances(stat_store)
    w = 0
    probs = exact_probabilities(w, D, mech.lam, mech.b, stat_store.d_max)
    if mutant == "b-doubled":
        mech.b *= 2
    elif mutant == "k-counts-input-word":
        draw = mech.draw_k
        mech.draw_k = lambda rng, n: np.maximum(draw(rng, n) - 1, 0)
    elif mutant == "gumbel-max":  # noise subtracted and the maximum taken
        import dpsanitize.mechanisms.gumbel as g

        original = g.truncated_gumbel
        g.truncated_gumbel = lambda *a, **k: -original(*a, **k)
    try:
        counts = counts_of(mech.perturb(np.full(200_000, w), make_rng(5)), 12)
    finally:
        if mutant == "gumbel-max":
            g.truncated_gumbel = original
    assert goodness_of_fit(counts, probs) < ALPHA


def test_perturb_keeps_shape_and_handles_empty(stat_store):
    mech = TruncatedGumbel(epsilon=EPS, store=stat_store)
    assert mech.perturb(np.array([], dtype=np.int64), make_rng(0)).shape == (0,)
    out = mech.perturb(np.arange(12).repeat(3), make_rng(0))
    assert out.shape == (36,) and out.min() >= 0 and out.max() < 12
    assert "b=" in repr(mech) and "epsilon=400.0" in repr(mech)


def test_seeded_runs_repeat_and_unseeded_differ(stat_store):
    mech = TruncatedGumbel(epsilon=EPS, store=stat_store)
    ids = np.arange(12).repeat(50)
    a = mech.perturb(ids, make_rng(7))
    assert np.array_equal(a, mech.perturb(ids, make_rng(7)))
    assert not np.array_equal(mech.perturb(ids, make_rng()), mech.perturb(ids, make_rng()))
