"""Exact geometry equals a brute-force float64 computation, ties broken by lower id."""

import numpy as np
import pytest

from conftest import brute_force_neighbors, nearest_reference, toy_vectors
from dpsanitize import geometry


@pytest.mark.parametrize("integer", [False, True], ids=["floats", "integer-ties"])
@pytest.mark.parametrize("block", [7, 4096])
def test_knn_table_equals_brute_force(integer, block):
    vecs = np.unique(toy_vectors(2600, 5, seed=3, integer=integer), axis=0)
    vecs = vecs[np.random.default_rng(0).permutation(len(vecs))]
    ref_ids, ref_d, _ = brute_force_neighbors(vecs, 24)
    ids, d = geometry.knn_table(vecs, 24, block=block)
    assert ids.dtype == np.int32 and d.dtype == np.float64
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(d, ref_d, rtol=1e-12)


def test_knn_table_with_more_copies_of_a_word_than_k():
    """Copies tie at distance 0: a word's nearest others are the lowest-id copies, itself left
    out even when it is not among its own k + 1 nearest."""
    vecs = np.vstack([np.ones((5, 3)), toy_vectors(40, 3, seed=4)])
    ids, d = geometry.knn_table(vecs, 2)
    assert ids[:5].tolist() == [[1, 2], [0, 2], [0, 1], [0, 1], [0, 1]]
    assert (d[:5] == 0).all()


def test_knn_table_k_capped_by_vocabulary():
    vecs = toy_vectors(10, 3, seed=2)
    ids, d = geometry.knn_table(vecs, 64)
    assert ids.shape == (10, 9)
    assert geometry.knn_table(vecs, 64, first=9)[0].shape == (10, 0)  # one candidate word
    ref_ids, _, _ = brute_force_neighbors(vecs, 9)
    np.testing.assert_array_equal(ids, ref_ids)


@pytest.mark.parametrize("integer", [False, True])
def test_max_distance_and_pair(integer):
    vecs = np.unique(toy_vectors(300, 4, seed=5, integer=integer), axis=0)
    _, _, full = brute_force_neighbors(vecs, 1)
    d_max, (i, j) = geometry.max_distance(vecs, block=32)
    assert d_max == pytest.approx(full.max(), rel=1e-14)
    assert full[i, j] == pytest.approx(d_max, rel=1e-14) and i < j


@pytest.mark.parametrize("integer", [False, True])
def test_max_distance_by_norms_equals_the_screen(integer):
    """The pruned search by norms and the full float32 screen give the same bits and pair,
    ties included (integer vectors, many equal norms, copies of the farthest pair)."""
    vecs = toy_vectors(300, 4, seed=5, integer=integer).astype(np.float64)
    _, (i, j) = geometry.max_distance(vecs, max_pairs=0)
    vecs = np.vstack([vecs, vecs[[j, i, j]]])  # the farthest pair three more times
    pruned = geometry.max_distance(vecs)
    screened = geometry.max_distance(vecs, block=32, max_pairs=0)
    assert pruned == screened
    assert geometry.max_distance(np.zeros((40, 3))) == (0.0, (0, 0))  # over budget: the screen


def test_max_distance_is_the_same_for_any_memory_layout():
    """Column-major input once summed in another order on the screen's path (1 ulp apart)."""
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(200, 50)) * rng.uniform(0.5, 2, size=(200, 1))
    assert geometry.max_distance(np.asfortranarray(vecs), max_pairs=0) == \
        geometry.max_distance(vecs)


def test_row_neighbors_beyond_the_table():
    vecs = np.unique(toy_vectors(200, 3, seed=7, integer=True), axis=0)
    k = len(vecs) - 5  # far beyond any table
    ref_ids, ref_d, _ = brute_force_neighbors(vecs, k)
    for i in (0, 5, len(vecs) - 1):
        ids, d = geometry.row_neighbors(vecs.astype(np.float64), i, k)
        np.testing.assert_array_equal(ids, ref_ids[i])
        np.testing.assert_allclose(d, ref_d[i], rtol=1e-12)


def test_distance_rows_match_reference():
    vecs = toy_vectors(120, 6, seed=9)
    _, _, full = brute_force_neighbors(vecs, 1)
    x = vecs.astype(np.float64)
    rows = geometry.distance_rows(x, np.einsum("ij,ij->i", x, x), np.array([0, 7, 119]))
    np.testing.assert_allclose(rows, full[[0, 7, 119]], atol=1e-9)
    assert rows[0, 0] == 0.0 and rows[1, 7] == 0.0


@pytest.mark.parametrize("case", ["spread", "far from the origin", "with duplicates"])
def test_distance_rows_stay_within_the_bound_of_the_reference_metric(case):
    """row_error_bound must hold where |a|^2 - 2ab + |b|^2 cancels worst: long vectors close
    together (and copies of one word, d_min = 0); the sampler's tolerance rests on it."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 16))
    if case != "spread":
        x = 1.0 + 1e-3 * x
    if case == "with duplicates":
        x[200:] = x[:200]
    sq = np.einsum("ij,ij->i", x, x)
    ref = np.stack([geometry.dist64(x, x[i]) for i in range(len(x))])
    others = np.where(np.eye(len(x), dtype=bool), np.inf, ref)
    bound = geometry.row_error_bound(x.shape[1], np.sqrt(sq), float(np.sqrt(sq.max())),
                                     float(ref.max()), others.min(axis=1))
    gap = np.abs(geometry.distance_rows(x, sq, np.arange(len(x))) - ref).max(axis=1)
    assert gap.max() > 0 and (gap <= bound).all(), (gap / bound).max()


@pytest.mark.parametrize("chunk,threads", [(4096, 1), (16, 2), (7, 1)])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_brute_force_nearest_exact_with_ties(k, chunk, threads):
    """Many chunks (ties across and within them) and several threads give the same answer."""
    vecs = np.unique(toy_vectors(300, 4, seed=11, integer=True), axis=0)
    rng = np.random.default_rng(1)
    y = rng.normal(size=(400, 4)) * 2
    y[:150] = np.round(y[:150] * 2) / 2  # half-integer points: exact distance ties
    ids, d = geometry.BruteForce(vecs, block=37, chunk=chunk, threads=threads).nearest(y, k)
    ref, ref_d = nearest_reference(vecs, y, k)
    np.testing.assert_array_equal(ids, ref)
    np.testing.assert_allclose(d, ref_d, rtol=1e-12)


@pytest.mark.parametrize("first", [1, 100, 240])
def test_knn_table_restricted_to_a_suffix(first):
    vecs = np.unique(toy_vectors(260, 4, seed=13, integer=True), axis=0)
    vecs = vecs[np.random.default_rng(2).permutation(len(vecs))]
    x = vecs.astype(np.float64)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    d[:, :first] = np.inf
    k = min(10, len(x) - first - 1)
    ref = np.array([np.lexsort((np.arange(len(x)), d[i]))[:k] for i in range(len(x))])
    ids, dist = geometry.knn_table(vecs, 10, first=first, block=50)
    np.testing.assert_array_equal(ids, ref)
    np.testing.assert_allclose(dist, np.take_along_axis(d, ref, 1), rtol=1e-12)


@pytest.mark.slow
def test_a_lone_row_has_the_bits_of_a_block_of_four_on_one_blas_thread(default_store):
    """BLAS computes a lone row by another kernel (up to 10,037 of 100,000 entries differed);
    computed beside a copy of itself it has the bits of a full tile of four, on one thread.
    (With more threads or other block sizes rows can still differ: geometry.distance_rows.)"""
    from threadpoolctl import threadpool_limits

    words = np.array([5, 77, 1234, 99_999])
    with threadpool_limits(1, user_api="blas"):
        block = default_store.rows(words)
        for j in range(len(words)):
            np.testing.assert_array_equal(default_store.rows(words[j:j + 1])[0], block[j])


@pytest.mark.slow
def test_fast_rows_stay_within_their_bound_on_the_default_embeddings(default_store):
    """The per-word bound that the sampler's redraws rest on, on the real vectors (rows in a
    block, as the sampler computes them)."""
    words = np.array([0, 1, 17, 256, 4_321, 50_000, 99_998, 99_999])
    gap = np.abs(default_store.rows(words) - default_store.reference_rows(words)).max(axis=1)
    bound = default_store.row_error[words]
    assert (gap <= bound).all() and (bound < 1e-10).all(), (gap, bound)
