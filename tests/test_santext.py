"""SanText and SanText+ against their closed-form distributions (DESIGN 5.3), both sampling paths."""

import numpy as np
import pytest

from conftest import full_distances
from dpsanitize.mechanisms.santext import SanText, SanTextPlus
from dpsanitize.mechanisms.sampling import ExpSampler
from dpsanitize.rng import make_rng
from stats import ALPHA, assert_matches_closed_form, counts_of, goodness_of_fit, use_path

N_DRAWS = 150_000


def santext_probs(D, w, eps, columns=None):
    """Pr[y | w] proportional to exp(-eps d / 2), over `columns` (default: all)."""
    weights = np.exp(-eps * D[w] / 2)
    if columns is not None:
        mask = np.zeros(len(D), bool)
        mask[columns] = True
        weights = np.where(mask, weights, 0.0)
    return weights / weights.sum()


@pytest.mark.statistical
@pytest.mark.parametrize("path", ["rejection", "mixed", "rows"])
@pytest.mark.parametrize("w", [0, 9])
def test_santext_matches_closed_form(store, path, w):
    """Chi-square goodness of fit, n = 150000 per case, alpha = 1e-6."""
    eps = 2.0
    mech = SanText(epsilon=eps, store=store)
    use_path(mech.sampler, path)
    probs = santext_probs(full_distances(store), w, eps)
    assert_matches_closed_form("santext", mech, w, probs, N_DRAWS,
                               make_rng(w + mech.sampler.max_rounds))


@pytest.mark.statistical
def test_santext_mutant_without_the_half_is_detected(stat_store_narrow):
    probs = santext_probs(full_distances(stat_store_narrow), 0, 2.0)
    mutant = SanText(epsilon=2.0, store=stat_store_narrow)
    mutant.sampler = ExpSampler(stat_store_narrow, 4.0)  # exp(-eps d), the missing 1/2
    counts = counts_of(mutant.perturb(np.full(N_DRAWS, 0), make_rng(1)), 12)
    assert goodness_of_fit(counts, probs) < ALPHA


def santext_plus_probs(D, w, eps, first, p):
    q = santext_probs(D, w, eps, columns=np.arange(first, len(D)))
    if w >= first:
        return q
    out = p * q
    out[w] += 1 - p
    return out


@pytest.mark.statistical
@pytest.mark.parametrize("path", ["rejection", "counted"])
@pytest.mark.parametrize("w", [1, 5, 10])  # non-sensitive, non-sensitive, sensitive
def test_santext_plus_matches_closed_form(store, path, w):
    eps, frac, p = 2.0, 0.5, 0.3
    mech = SanTextPlus(epsilon=eps, store=store, santext_sensitive=frac, santext_p=p)
    use_path(mech.sampler, path)
    assert mech.first_sensitive == 6
    probs = santext_plus_probs(full_distances(store), w, eps, 6, p)
    assert_matches_closed_form("santext+", mech, w, probs, N_DRAWS, make_rng(100 + w))


@pytest.mark.statistical
def test_santext_plus_mutant_keeping_sensitive_words_is_detected(stat_store_narrow):
    eps, p = 2.0, 0.3
    mech = SanTextPlus(epsilon=eps, store=stat_store_narrow, santext_sensitive=0.5, santext_p=p)
    mech.first_sensitive = 12  # every word treated as non-sensitive: kept with 1 - p
    probs = santext_plus_probs(full_distances(stat_store_narrow), 10, eps, 6, p)
    counts = counts_of(mech.perturb(np.full(N_DRAWS, 10), make_rng(3)), 12)
    assert goodness_of_fit(counts, probs) < ALPHA


@pytest.mark.parametrize("kwargs,needle", [
    ({"santext_sensitive": 0.0}, "--santext-sensitive must be in (0, 1]"),
    ({"santext_sensitive": 1.5}, "--santext-sensitive must be in (0, 1]"),
    ({"santext_p": -0.1}, "--santext-p must be in [0, 1]"),
])
def test_santext_plus_validates(stat_store, kwargs, needle):
    from dpsanitize.errors import InvalidParameter

    with pytest.raises(InvalidParameter) as exc:
        SanTextPlus(epsilon=1.0, store=stat_store, **kwargs)
    assert needle in str(exc.value)


def test_row_cache_is_bounded(stat_store_narrow):
    sampler = ExpSampler(stat_store_narrow, 1.0, max_rounds=0, cache_bytes=8 * 12 * 3)
    sampler.sample(np.arange(12).repeat(5), make_rng(0))
    assert len(sampler._cache) == 3


@pytest.mark.parametrize("name", ["santext", "tem", "density", "santext+"])
def test_a_block_of_probability_rows_has_the_bits_of_single_rows(stat_store_narrow, name):
    """exact_recovery and draw_outputs ask for rows 32 at a time; each row must be the one
    probabilities(i) gives alone, normalised on its own."""
    from dpsanitize.mechanisms import create

    mech = create(name, epsilon=2.0, store=stat_store_narrow)
    ids = np.arange(len(stat_store_narrow.vocab))[::-1]
    for i, row in zip(ids.tolist(), mech.probability_rows(ids)):
        np.testing.assert_array_equal(row, mech.probabilities(i))


def test_rows_used_chunk_after_chunk_stay_cached(stat_store_narrow, monkeypatch):
    """Three words drawn by row in every chunk and two that change, room for three rows: plain
    LRU keeps the last three computed and so evicts two of the recurring words each chunk
    (5, 4, 4 rows); rows the current chunk uses are never displaced, so the three recurring
    ones stay and only the two new words are computed (5, 2, 2). Rows of words that fell
    through rejection take only free room."""
    sampler = ExpSampler(stat_store_narrow, 1.0, cache_bytes=8 * 12 * 3)
    computed, real = [], ExpSampler._cdf_rows
    monkeypatch.setattr(ExpSampler, "_cdf_rows",
                        lambda self, words: computed.append(len(words)) or real(self, words))
    for k in range(3):
        sampler.sample(np.array([0, 1, 2, 5 + k, 8 + k]).repeat(16), make_rng(0))
    assert computed == [5, 2, 2] and list(sampler._cache) == [0, 1, 2]
    sampler._by_rows(np.array([7, 8]), make_rng(1), evict=False)
    assert list(sampler._cache) == [0, 1, 2]


def test_words_repeated_in_a_chunk_are_drawn_from_their_rows(stat_store_narrow, monkeypatch):
    """A word with row_draws draws or more in a chunk takes the row path; which path serves a
    word depends on the input alone, so a warm row cache changes no seeded output (every engine,
    whatever it sanitized before, writes the same bytes)."""
    ids = np.array([3] * 16 + [5] * 15 + [7])
    calls = []
    for name in ("_by_rows", "_by_rejection"):
        def spy(self, w, rng, real=getattr(ExpSampler, name), name=name, **kwargs):
            calls.append((name, sorted(set(w.tolist()))))
            return real(self, w, rng, **kwargs)
        monkeypatch.setattr(ExpSampler, name, spy)
    cold = ExpSampler(stat_store_narrow, 1.0).sample(ids, make_rng(4))
    assert calls == [("_by_rows", [3]), ("_by_rejection", [5, 7])]
    warm = ExpSampler(stat_store_narrow, 1.0)
    warm.sample(np.arange(12).repeat(16), make_rng(0))  # every row cached
    assert len(warm._cache) == 12
    np.testing.assert_array_equal(warm.sample(ids, make_rng(4)), cold)


class _Uniforms:
    """An rng whose uniforms are given: draws placed on the steps of a CDF."""

    def __init__(self, u):
        self.u = np.asarray(u, dtype=np.float64)

    def random(self, shape):
        assert shape == len(self.u)
        return self.u.copy()


@pytest.fixture(scope="module")
def far_store(toy_dir, toy_cache):
    """The 12 statistical words moved far from the origin, where |a|^2 - 2ab + |b|^2 cancels:
    the proven row error (about 1e-5) dwarfs the rounding of the weights and sums."""
    from conftest import STAT_COORDS, toy_words, write_glove
    from dpsanitize.index import open_index

    path = write_glove(toy_dir / "far.txt", toy_words(len(STAT_COORDS)), STAT_COORDS + 3e4)
    return open_index(path, vocab_size=0, cache_dir=toy_cache)


@pytest.mark.parametrize("where", ["near the origin", "far from it"])
def test_a_draw_near_a_step_is_settled_by_the_reference_row(stat_store_narrow, far_store,
                                                             monkeypatch, where):
    """A fast row's last bits depend on BLAS (threads, the rows computed with it): simulated here
    by moving the distances by 0.9 of the proven error bound, the words before a step nearer and
    those after it farther, which moves that step up. Uniforms placed from 1e-15 to 1e-6 (relative)
    above each step then fall on the word before it without the guard; with it, every draw is the
    reference row's inverse CDF. Far from the origin the bound is what the guard must cover
    (rounding alone would not); uniforms between the steps need no help."""
    store, w, eps = (stat_store_narrow, 4, 1.0) if where == "near the origin" else \
        (far_store, 4, 3.0)
    n = len(store.vocab)
    ref_cdf = ExpSampler(store, eps)._cdf_of(store.reference_rows([w]))[0]
    steps = ref_cdf[:-1] / ref_cdf[-1]
    between = (np.r_[0.0, steps] + np.r_[steps, 1.0]) / 2
    above = np.array([1e-15, 1e-13, 1e-11, 1e-9, 1e-7, 1e-6])
    real_rows = type(store).rows
    assert 0 < store.row_error[w] < (1e-12 if where == "near the origin" else 1e-4)

    def draws(u, moved_at, guard):
        sampler = ExpSampler(store, eps)
        if not guard:
            sampler._near_a_step = lambda w, cdf, t, k: np.zeros(len(t), dtype=bool)
        sign = np.where(np.arange(n) < moved_at, -0.9, 0.9)
        monkeypatch.setattr(type(store), "rows", lambda self, ids: real_rows(self, ids)
                            + sign * self.row_error[ids][:, None])
        out = sampler._by_rows(np.full(len(u), w), _Uniforms(u))
        monkeypatch.setattr(type(store), "rows", real_rows)
        return out, sampler.reference_rows_used

    unguarded_misses = 0
    for k, step in enumerate(steps, start=1):
        u = np.r_[step * (1 + above), between]
        expected = np.minimum(np.searchsorted(ref_cdf, u * ref_cdf[-1], side="right"), n - 1)
        out, used = draws(u, k, guard=True)
        np.testing.assert_array_equal(out, expected)
        assert used <= len(above) + 1  # the draws between the steps are left alone
        unguarded_misses += (draws(u, k, guard=False)[0] != expected).sum()
    assert unguarded_misses >= len(steps)  # without it, the moved rows show


def test_draws_from_fast_and_reference_rows_agree(stat_store_narrow):
    """Sending every draw to the reference row, a seed draws the same words: away from the
    steps the fast row decides as the reference would."""
    ids = np.arange(12).repeat(400)
    fast = ExpSampler(stat_store_narrow, 1.5, max_rounds=0)
    slow = ExpSampler(stat_store_narrow, 1.5, max_rounds=0)
    slow._near_a_step = lambda w, cdf, t, k: np.ones(len(t), dtype=bool)
    np.testing.assert_array_equal(fast.sample(ids, make_rng(2)), slow.sample(ids, make_rng(2)))
    assert slow.reference_rows_used == len(ids) and fast.reference_rows_used == 0


def test_each_word_of_a_mixed_chunk_gets_its_own_draw(stat_store_narrow):
    """At a huge epsilon every word is its own output, so any misplaced draw between the row
    path and the rejection path shows."""
    ids = np.array([3] * 16 + [5, 7, 1, 9] + [3] * 4 + [8, 2])
    sampler = ExpSampler(stat_store_narrow, 1e4)
    np.testing.assert_array_equal(sampler.sample(ids, make_rng(0)), ids)
