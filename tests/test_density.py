"""The density-aware exponential mechanism against its closed form (issue 12), both sampling paths."""

import numpy as np
import pytest

from conftest import full_distances, run_cli
from dpsanitize.mechanisms.density import DensityExp, kde_prior, scott_bandwidth
from dpsanitize.mechanisms.sampling import ExpSampler
from dpsanitize.rng import make_rng
from stats import ALPHA, assert_matches_closed_form, counts_of, goodness_of_fit, use_path

N_DRAWS = 150_000


def reference_prior(x, h):
    """Gaussian KDE at every word over all words, in float64 from the formula."""
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * h * h)).sum(axis=1)


def density_probs(store, w, eps, h):
    x = np.asarray(store.vocab.vectors, dtype=np.float64)
    weights = reference_prior(x, h) * np.exp(-eps * full_distances(store)[w] / 2)
    return weights / weights.sum()


def test_prior_and_bandwidth_follow_their_formulas(stat_store):
    x = np.asarray(stat_store.vocab.vectors, dtype=np.float64)
    h = scott_bandwidth(x)
    assert h == pytest.approx(x.std(axis=0).mean() * len(x) ** (-1 / 6))
    got = kde_prior(x, h, block=5)["prior"]
    np.testing.assert_allclose(got, reference_prior(x, h), rtol=1e-5)


@pytest.mark.statistical
@pytest.mark.parametrize("path", ["rejection", "mixed", "rows"])
@pytest.mark.parametrize("w", [0, 9])
@pytest.mark.parametrize("h", [None, 0.4])
def test_density_matches_closed_form(store, path, w, h):
    """Chi-square goodness of fit, n = 150000 per case, alpha = 1e-6."""
    eps = 2.0
    mech = DensityExp(epsilon=eps, store=store, kde_bandwidth=h)
    use_path(mech.sampler, path)
    probs = density_probs(store, w, eps, mech.bandwidth)
    np.testing.assert_allclose(mech.probabilities(w), probs, rtol=1e-5)
    assert_matches_closed_form("density", mech, w, probs, N_DRAWS,
                               make_rng(w + mech.sampler.max_rounds), rtol=1e-5)


@pytest.mark.statistical
@pytest.mark.parametrize("mutant", ["prior ignored", "eps without the 1/2"])
def test_wrong_variants_are_detected(stat_store_narrow, mutant):
    store = stat_store_narrow
    mech = DensityExp(epsilon=2.0, store=store, kde_bandwidth=0.4)
    probs = density_probs(store, 3, 2.0, 0.4)
    if mutant == "prior ignored":
        mech.sampler = ExpSampler(store, 2.0)
    else:
        mech.sampler = ExpSampler(store, 4.0, prior=mech.prior)
    counts = counts_of(mech.perturb(np.full(N_DRAWS, 3), make_rng(1)), 12)
    assert goodness_of_fit(counts, probs) < ALPHA


def test_density_is_metric_dp_on_the_closed_form(stat_store):
    """Pr[M(w)=y] <= exp(eps d(w,w')) Pr[M(w')=y] for every pair and output (the proof's claim)."""
    eps = 1.5
    mech = DensityExp(epsilon=eps, store=stat_store, kde_bandwidth=0.3)
    D = full_distances(stat_store)
    P = np.array([mech.probabilities(w) for w in range(12)])
    ratio = np.log(P[:, None, :]) - np.log(P[None, :, :])
    assert (ratio <= eps * D[:, :, None] + 1e-9).all()


def test_cli_density(runner, toy_embeddings, toy_cache, tmp_path):
    toy = ["--embeddings", toy_embeddings[0], "--vocab-size", "0", "--cache-dir", toy_cache]
    src = tmp_path / "in.txt"
    src.write_text("wa wb wc\n")
    ok = run_cli(runner, ["run", "--mech", "density", "--eps", "2", "--kde-bandwidth", "0.5",
                          *toy, str(src), str(tmp_path / "o.txt")])
    assert ok.exit_code == 0, ok.stderr
    bad = run_cli(runner, ["run", "--mech", "laplace", "--eps", "2", "--kde-bandwidth", "0.5",
                           *toy, str(src), str(tmp_path / "o2.txt")])
    assert bad.exit_code == 2 and "does not apply" in bad.stderr
