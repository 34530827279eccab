"""CusText: greedy groups from exact neighbours, min-max utility, Pr ∝ exp(eps u / 2)."""

import numpy as np
import pytest

from conftest import full_distances
from dpsanitize.errors import InvalidParameter
from dpsanitize.mechanisms.custext import CusText
from dpsanitize.rng import make_rng
from stats import ALPHA, assert_matches_closed_form, counts_of, goodness_of_fit

N_DRAWS = 150_000


def reference_groups(D, k):
    """Greedy in id (frequency) order; nearest ungrouped by (distance, id)."""
    n = len(D)
    assigned = np.zeros(n, bool)
    groups = []
    for seed in range(n):
        if assigned[seed]:
            continue
        free = [j for j in np.lexsort((np.arange(n), D[seed])) if not assigned[j] and j != seed]
        group = [seed] + free[: k - 1]
        assigned[group] = True
        groups.append(group)
    return groups


def custext_probs(D, w, eps, groups):
    group = next(g for g in groups if w in g)
    d = D[w, group]
    span = d.max() - d.min()
    u = -(d - d.min()) / span if span > 0 else np.zeros(len(group))
    probs = np.zeros(len(D))
    probs[group] = np.exp(eps * u / 2)
    return probs / probs.sum()


@pytest.mark.parametrize("k", [1, 4, 5, 12])
def test_groups_equal_greedy_reference(store, k):
    mech = CusText(epsilon=1.0, store=store, custext_k=k)
    groups = reference_groups(full_distances(store), k)
    assert [list(mech.group_members(g)) for g in range(len(mech.members))] == groups
    assert all(mech.group_of[w] == gi for gi, g in enumerate(groups) for w in g)


@pytest.mark.statistical
@pytest.mark.parametrize("w", [0, 7, 11])
def test_custext_matches_closed_form(store, w):
    """Chi-square goodness of fit, n = 150000 per word, alpha = 1e-6."""
    eps, k = 3.0, 5
    mech = CusText(epsilon=eps, store=store, custext_k=k)
    probs = custext_probs(full_distances(store), w, eps, reference_groups(full_distances(store), k))
    assert_matches_closed_form("custext", mech, w, probs, N_DRAWS, make_rng(w), rtol=1e-12)


@pytest.mark.statistical
def test_unnormalised_utility_mutant_is_detected(stat_store):
    eps, k = 3.0, 5
    D = full_distances(stat_store)
    groups = reference_groups(D, k)
    mech = CusText(epsilon=eps, store=stat_store, custext_k=k)
    # mutant: u = -d (no min-max normalisation)
    group = mech.group_members(mech.group_of[0])
    w = np.exp(-eps * D[0, group] / 2)
    mech.cdf[0] = 1.0
    mech.cdf[0, : len(group)] = np.cumsum(w) / w.sum()
    counts = counts_of(mech.perturb(np.full(N_DRAWS, 0), make_rng(1)), 12)
    assert goodness_of_fit(counts, custext_probs(D, 0, eps, groups)) < ALPHA


def test_groups_are_cached_beside_the_index(stat_store_narrow):
    import os

    CusText(epsilon=1.0, store=stat_store_narrow, custext_k=3)
    derived = os.path.join(os.path.dirname(stat_store_narrow.path), "derived")
    assert any(name.endswith("custext-k3.npz") for name in os.listdir(derived))
    again = CusText(epsilon=1.0, store=stat_store_narrow, custext_k=3)
    assert again.members.shape == (4, 3)


def test_custext_statement_is_not_metric(stat_store):
    mech = CusText(epsilon=1.5, store=stat_store, custext_k=4)
    statement = mech.privacy_statement()
    assert "same group" in statement["unit"] and "1.5-DP" in statement["guarantee"]
    assert "positions that differ" in statement["per_line_composition"]
    assert "shares a group" in statement["per_line_composition"]
    with pytest.raises(InvalidParameter, match="--custext-k"):
        CusText(epsilon=1.0, store=stat_store, custext_k=0)
    assert CusText(epsilon=1.0, store=stat_store, custext_k=50).members.shape == (1, 12)


def test_the_one_off_group_build_is_announced(toy_store, caplog):
    import logging

    from dpsanitize.mechanisms import create

    with caplog.at_level(logging.INFO, logger="dpsanitize"):
        create("custext", epsilon=2.0, store=toy_store, custext_k=7)
    assert "building the groups" in caplog.text
