"""Mahalanobis and Vickrey against independent reference samplers (DESIGN 5.3)."""

import numpy as np
import pytest
from scipy import linalg

from dpsanitize.errors import InvalidParameter
from dpsanitize.mechanisms.laplace import unit_directions
from dpsanitize.mechanisms.mahalanobis import Mahalanobis, regularized_sqrt
from dpsanitize.mechanisms.vickrey import Vickrey
from dpsanitize.rng import make_rng
from stats import ALPHA, counts_of, describe, homogeneity

EPS, LAM = 3.0, 0.8


def reference_sqrt(x, lam):
    cov = np.cov(np.asarray(x, float).T)
    cov = cov * x.shape[1] / np.trace(cov)
    return np.real(linalg.sqrtm(lam * cov + (1 - lam) * np.eye(x.shape[1])))


def test_regularized_sqrt_matches_scipy(stat_store):
    x = stat_store.x64
    s = regularized_sqrt(x, LAM)
    np.testing.assert_allclose(s, reference_sqrt(x, LAM), atol=1e-10)
    np.testing.assert_allclose(s @ s, s.T @ s, atol=1e-12)
    np.testing.assert_allclose(regularized_sqrt(x, 0.0), np.eye(2), atol=1e-12)


def reference_mahalanobis(w, x, eps, lam, rng, draws):
    """Per draw: Gamma radius as a sum of exponentials, normalised Gaussian direction, scipy's
    matrix square root, nearest word by a full scan."""
    s = reference_sqrt(x, lam)
    n = x.shape[1]
    out = np.empty(draws, dtype=np.int64)
    for t in range(draws):
        g = rng.normal(size=n)
        y = x[w] + rng.exponential(1 / eps, n).sum() * (s @ (g / np.linalg.norm(g)))
        out[t] = np.argmin(np.sqrt(((x - y) ** 2).sum(1)))
    return out


class Renormalised(Mahalanobis):
    """Mutant: S v rescaled to unit length."""

    def noise(self, rng, n):
        sv = unit_directions(rng, n, self.dim) @ self.sqrt_m
        sv /= np.linalg.norm(sv, axis=1, keepdims=True)
        return sv * rng.gamma(self.dim, 1 / self.epsilon, n)[:, None]


@pytest.mark.statistical
@pytest.mark.parametrize("w", [0, 6])
def test_mahalanobis_matches_reference(stat_store, w):
    """Two-sample chi-square, 100000 vs 40000 draws, alpha = 1e-6."""
    mech = Mahalanobis(epsilon=EPS, store=stat_store, lam=LAM)
    ours = counts_of(mech.perturb(np.full(100_000, w), make_rng(w)), 12)
    ref = counts_of(reference_mahalanobis(w, stat_store.x64, EPS, LAM, np.random.default_rng(w),
                                          40_000), 12)
    p = homogeneity(ours, ref)
    assert p > ALPHA, describe("mahalanobis", p, ours)


@pytest.mark.statistical
def test_renormalised_mahalanobis_is_detected(stat_store):
    mech = Renormalised(epsilon=EPS, store=stat_store, lam=LAM)
    ours = counts_of(mech.perturb(np.full(100_000, 0), make_rng(0)), 12)
    ref = counts_of(reference_mahalanobis(0, stat_store.x64, EPS, LAM, np.random.default_rng(0),
                                          40_000), 12)
    assert homogeneity(ours, ref) < ALPHA


def reference_vickrey(w, x, eps, t, rng, draws, exclude_input=False):
    """Per draw: Laplace noise, the two nearest words by a full scan, the Vickrey choice."""
    n = x.shape[1]
    out = np.empty(draws, dtype=np.int64)
    for k in range(draws):
        g = rng.normal(size=n)
        y = x[w] + rng.exponential(1 / eps, n).sum() * g / np.linalg.norm(g)
        d = np.sqrt(((x - y) ** 2).sum(1))
        if exclude_input:
            d[w] = np.inf
        u1, u2 = np.lexsort((np.arange(len(x)), d))[:2]
        p1 = (1 - t) * d[u2] / (t * d[u1] + (1 - t) * d[u2])
        out[k] = u1 if rng.random() < p1 else u2
    return out


@pytest.mark.statistical
@pytest.mark.parametrize("t", [0.25, 0.75])
def test_vickrey_matches_reference(stat_store, t):
    """Two-sample chi-square, 100000 vs 40000 draws, alpha = 1e-6."""
    mech = Vickrey(epsilon=EPS, store=stat_store, vickrey_t=t)
    ours = counts_of(mech.perturb(np.full(100_000, 3), make_rng(int(t * 100))), 12)
    ref = counts_of(reference_vickrey(3, stat_store.x64, EPS, t, np.random.default_rng(5), 40_000), 12)
    p = homogeneity(ours, ref)
    assert p > ALPHA, describe("vickrey", p, ours)


@pytest.mark.statistical
def test_vickrey_excluding_the_input_word_is_detected(stat_store):
    mech = Vickrey(epsilon=EPS, store=stat_store, vickrey_t=0.5)
    ours = counts_of(mech.perturb(np.full(100_000, 3), make_rng(9)), 12)
    bad = counts_of(reference_vickrey(3, stat_store.x64, EPS, 0.5, np.random.default_rng(9), 40_000,
                                      exclude_input=True), 12)
    assert homogeneity(ours, bad) < ALPHA


def test_vickrey_t_zero_is_the_base_mechanism_and_validation(stat_store):
    mech = Vickrey(epsilon=EPS, store=stat_store, vickrey_t=0.0)
    base = mech.base
    ids = np.arange(12).repeat(200)
    assert np.array_equal(mech.perturb(ids, make_rng(4)), base.perturb(ids, make_rng(4)))
    with pytest.raises(InvalidParameter, match="--lam applies"):
        Vickrey(epsilon=EPS, store=stat_store, lam=0.3)
    with pytest.raises(InvalidParameter, match=r"--vickrey-t must be in \[0, 1\]"):
        Vickrey(epsilon=EPS, store=stat_store, vickrey_t=1.5)
    maha = Vickrey(epsilon=EPS, store=stat_store, vickrey_base="mahalanobis", lam=0.5)
    assert maha.base.name == "mahalanobis" and "Mahalanobis" in maha.privacy_statement()["unit"]
