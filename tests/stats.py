"""Statistical test helpers with a stated false-alarm rate.

Every test here has false-alarm rate ALPHA = 1e-6: a correct mechanism fails it with probability
at most 1e-6 (for a random seed; the suite uses fixed seeds, so it is also deterministic).
"""

import numpy as np
from scipy import stats

ALPHA = 1e-6


def _pool(expected_or_counts: np.ndarray, minimum: float = 5.0) -> list[np.ndarray]:
    """Groups of categories, each with at least `minimum` expected mass (rare ones pooled)."""
    order = np.argsort(-expected_or_counts, kind="stable")
    groups, current, mass = [], [], 0.0
    for i in order:
        if expected_or_counts[i] >= minimum:
            groups.append(np.array([i]))
        else:
            current.append(i)
            mass += expected_or_counts[i]
            if mass >= minimum:
                groups.append(np.array(current))
                current, mass = [], 0.0
    if current:
        if groups:
            groups[-1] = np.concatenate([groups[-1], current])
        else:
            groups.append(np.array(current))
    return groups


def goodness_of_fit(counts: np.ndarray, probs: np.ndarray) -> float:
    """p-value of Pearson's chi-square test of `counts` against exact probabilities `probs`."""
    counts = np.asarray(counts, dtype=float)
    n = counts.sum()
    expected = n * np.asarray(probs, dtype=float)
    assert counts[expected == 0].sum() == 0, "an output with probability 0 occurred"
    groups = _pool(expected)
    obs = np.array([counts[g].sum() for g in groups])
    exp = np.array([expected[g].sum() for g in groups])
    if len(groups) < 2:
        return 1.0
    chi2 = ((obs - exp) ** 2 / exp).sum()
    return float(stats.chi2.sf(chi2, len(groups) - 1))


def homogeneity(counts_a: np.ndarray, counts_b: np.ndarray) -> float:
    """p-value of the chi-square test that two samples come from the same distribution."""
    a, b = np.asarray(counts_a, float), np.asarray(counts_b, float)
    pooled = (a + b) * min(a.sum(), b.sum()) / (a.sum() + b.sum())
    groups = _pool(pooled)
    table = np.array([[a[g].sum() for g in groups], [b[g].sum() for g in groups]])
    table = table[:, table.sum(0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def counts_of(outputs, size: int) -> np.ndarray:
    return np.bincount(np.asarray(outputs, dtype=np.int64), minlength=size)


def assert_matches_closed_form(name, mech, w, probs, n, rng, rtol=1e-9):
    """Goodness of fit of n draws of mech(w) against `probs`, and mech.probabilities(w) == probs."""
    counts = counts_of(mech.perturb(np.full(n, w), rng), len(probs))
    p = goodness_of_fit(counts, probs)
    assert p > ALPHA, describe(name, p, counts, np.asarray(probs) * n)
    np.testing.assert_allclose(mech.probabilities(w), probs, rtol=rtol)


def describe(name, p, counts, expected=None) -> str:
    msg = f"{name}: p={p:.3g} (alpha={ALPHA:g}), n={int(np.sum(counts))}, counts={list(counts)}"
    if expected is not None:
        msg += f", expected={list(np.round(expected, 1))}"
    return msg


# How ExpSampler (santext, tem, density, santext+) serves the draws of a word, as
# (max_rounds, row_draws): rejection alone; rejection then a row for the rejected; a row after no
# proposal at all; a row because the word repeats in its chunk (the default for n repeats: the
# same row function as "rows", reached by another route).
SAMPLER_PATHS = {"rejection": (48, 2**62), "mixed": (1, 2**62), "rows": (0, 2**62),
                 "counted": (1024, 16)}


def use_path(sampler, path: str) -> None:
    sampler.max_rounds, sampler.row_draws = SAMPLER_PATHS[path]
