"""TEM against its specification: exact L_w, the bottom score, uniform outside (DESIGN 5.3)."""

import math

import numpy as np
import pytest

from conftest import full_distances
from dpsanitize.errors import InvalidParameter
from dpsanitize.mechanisms.tem import TruncatedExponential
from dpsanitize.rng import make_rng
from stats import ALPHA, assert_matches_closed_form, counts_of, goodness_of_fit, use_path

EPS, BETA, N_DRAWS = 4.0, 0.1, 150_000


def tem_probs(D, w, eps, beta):
    """Closed form from the algorithm: softmax of (eps/2)*score over L_w and bottom."""
    n = len(D)
    gamma = 2 / eps * math.log((1 - beta) * (n - 1) / beta)
    inside = D[w] <= gamma
    probs = np.where(inside, np.exp(-eps * D[w] / 2), 0.0)
    if not inside.all():
        bottom = np.exp(eps / 2 * (-gamma + 2 / eps * math.log(n - inside.sum())))
        probs = np.where(inside, probs, bottom / (n - inside.sum()))
    return probs / probs.sum()


def literal_tem(D, w, eps, beta, rng, draws, bottom_score):
    """The algorithm as written (Gumbel noise, argmax, bottom -> uniform), per draw."""
    n = len(D)
    gamma = 2 / eps * math.log((1 - beta) * (n - 1) / beta)
    inside = np.flatnonzero(D[w] <= gamma)
    outside = np.flatnonzero(D[w] > gamma)
    scores = np.append(-D[w, inside], bottom_score(gamma, n, len(inside)))
    out = np.empty(draws, dtype=np.int64)
    for t in range(draws):
        j = np.argmax(scores + rng.gumbel(0, 2 / eps, len(scores)))
        out[t] = inside[j] if j < len(inside) else outside[rng.integers(len(outside))]
    return out


def bottom_spec(gamma, n, size, eps=EPS):
    return -gamma + 2 / eps * math.log(n - size)


def bottom_mldp(gamma, n, size, eps=EPS):  # the mutant: ln(|W| / |L_w|)
    return -gamma + 2 / eps * math.log(n / size)


@pytest.mark.statistical
@pytest.mark.parametrize("path", ["rejection", "counted"])
@pytest.mark.parametrize("w", [0, 6, 10])
def test_tem_matches_closed_form(store, path, w):
    """Chi-square goodness of fit, n = 150000 per word, alpha = 1e-6."""
    mech = TruncatedExponential(epsilon=EPS, store=store, tem_beta=BETA)
    use_path(mech.sampler, path)
    D = full_distances(store)
    probs = tem_probs(D, w, EPS, BETA)
    assert 0 < (D[w] <= mech.gamma).sum() < 12  # both L_w and bottom matter here
    assert_matches_closed_form("tem", mech, w, probs, N_DRAWS, make_rng(w))


@pytest.mark.statistical
def test_literal_algorithm_agrees_and_mldp_bottom_is_detected(stat_store):
    """The written algorithm passes the same test; with MLDP's bottom score it fails."""
    D = full_distances(stat_store)
    probs = tem_probs(D, 0, EPS, BETA)
    good = counts_of(literal_tem(D, 0, EPS, BETA, np.random.default_rng(1), 60_000, bottom_spec), 12)
    assert goodness_of_fit(good, probs) > ALPHA
    bad = counts_of(literal_tem(D, 0, EPS, BETA, np.random.default_rng(1), 60_000, bottom_mldp), 12)
    assert goodness_of_fit(bad, probs) < ALPHA


@pytest.mark.statistical
def test_unclipped_mutant_is_detected(stat_store_narrow):
    mech = TruncatedExponential(epsilon=EPS, store=stat_store_narrow, tem_beta=BETA)
    mech.sampler.clip = np.inf  # SanText, not TEM
    probs = tem_probs(full_distances(stat_store_narrow), 0, EPS, BETA)
    counts = counts_of(mech.perturb(np.full(N_DRAWS, 0), make_rng(2)), 12)
    assert goodness_of_fit(counts, probs) < ALPHA


def test_gamma_formula_and_validation(stat_store):
    mech = TruncatedExponential(epsilon=2.0, store=stat_store, tem_beta=0.001)
    assert mech.gamma == pytest.approx(math.log(0.999 * 11 / 0.001))
    for bad in (0.0, 1.0, -1):
        with pytest.raises(InvalidParameter, match=r"--tem-beta must be in \(0, 1\)"):
            TruncatedExponential(epsilon=2.0, store=stat_store, tem_beta=bad)
    with pytest.raises(InvalidParameter, match="too large"):
        TruncatedExponential(epsilon=2.0, store=stat_store, tem_beta=0.95)
