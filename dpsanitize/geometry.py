"""Exact Euclidean geometry of the vocabulary: neighbour tables, extreme distances, nearest words.

"Exact" means: the answer is what float64 arithmetic on the float32 vectors gives for
``d(u, v) = sqrt(sum((x_u - x_v)**2))``, with ties broken by the lower row index. Fast float32
matrix products only *screen* candidates; a rigorous rounding-error bound decides which candidates
must be re-checked in float64, and a row falls back to a full float64 scan when the screen cannot
certify it. No |W| x |W| matrix is ever held in memory.

Example::

    ids, dists = knn_table(vectors, k=64)      # 64 nearest other words of every word
    d_max = max_distance(vectors)
"""

from __future__ import annotations

import math
import os

import numpy as np

K_MAX = 64
_SCORE_CHUNK = 2048  # columns per score block: 256 x 2048 float32 (2 MiB) stays in cache
_U32 = 2.0**-24  # unit roundoff of float32


def dist64(a, b) -> np.ndarray:
    """Euclidean distance in float64 over the last axis (broadcasting). The reference metric."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return np.sqrt(np.einsum("...i,...i->...", d, d))


def top_k_by_distance(ids: np.ndarray, d: np.ndarray, k: int):
    """Per row, the k entries with the smallest (distance, id)."""
    order = np.lexsort((ids, d), axis=-1)[..., :k]
    return np.take_along_axis(ids, order, -1), np.take_along_axis(d, order, -1)


def row_neighbors(vectors: np.ndarray, i: int, k: int, *, first: int = 0):
    """The exact k nearest other words of word ``i`` among words ``first..``, by a full scan."""
    d = dist64(vectors, vectors[i])
    d[:first] = np.inf
    d[i] = np.inf
    k = min(k, int(np.isfinite(d).sum()))
    part = np.argpartition(d, k - 1)[:k]
    # Everything tied with the k-th distance must compete on id, so widen the partition to ties.
    cand = np.flatnonzero(d <= d[part].max())
    return top_k_by_distance(cand, d[cand], k)


def knn_table(vectors: np.ndarray, k: int = K_MAX, *, first: int = 0, block: int = 4096,
              progress=None):
    """Exact k nearest other words of every word: ``(ids int32 (N,k), dists float64 (N,k))``.

    Neighbours are taken among the words ``first..`` only (all words by default). Each word's
    k + 1 nearest come from :class:`BruteForce` (float32 screen, float64 ranking, ties by lower
    id), and the word itself is dropped (or the last one, when the word is not among them).
    ``vectors`` are W's float32 vectors (other input is taken as its float32 rounding, which
    :class:`BruteForce` ranks). Its bound is the (k + 1)-th smallest minimum of a column chunk:
    with fewer than k + 1 chunks it lets every word through, with many it comes close to the
    (k + 1)-th nearest word (4,096 words of the default 100k: 85 candidates per word on average,
    1,603 at most, with 8(k + 1) chunks; 246 and 10,090 with 2(k + 1)). So the chunks are cut
    for 8(k + 1) of them, but no narrower than 64 words while 2(k + 1) remain (narrow chunks
    cost a Python step each: a small candidate set would be slower) and never below 16.
    """
    x = np.asarray(vectors, dtype=np.float32).astype(np.float64)
    n_words = len(x)
    k = min(k, n_words - first - 1)
    if k < 1:  # one candidate word: no other one to name
        return np.empty((n_words, 0), dtype=np.int32), np.empty((n_words, 0))
    m = n_words - first  # candidate words
    chunk = max(min(64, m // (2 * (k + 1))), 16, min(_SCORE_CHUNK, m // (8 * (k + 1))))
    search = BruteForce(x[first:], chunk=chunk)
    ids = np.empty((n_words, k), dtype=np.int32)
    dists = np.empty((n_words, k), dtype=np.float64)
    for start in range(0, n_words, block):
        rows = np.arange(start, min(n_words, start + block))
        near, d = search.nearest(x[rows], k + 1)
        near += first
        keep = near != rows[:, None]
        keep[keep.all(axis=1), -1] = False
        ids[rows], dists[rows] = near[keep].reshape(-1, k), d[keep].reshape(-1, k)
        if progress is not None:
            progress(len(rows))
    return ids, dists


def max_distance(vectors: np.ndarray, *, block: int = 1024, progress=None,
                 max_pairs: int | None = None):
    """Exact largest distance between two words and the pair realising it (lowest ids).

    Since d(i, j) <= |x_i| + |x_j|, once a lower bound L is known (the farthest words from
    the four longest vectors), only pairs whose norms add up to L can realise the maximum:
    they are measured in float64 directly (about 10^5 pairs for GloVe's 100,000 words).
    When more than ``max_pairs`` (default 32 per word) pass, as for vectors of similar
    norms, a float32 screen over the upper triangle finds the rows that may hold the maximum,
    scanned in float64 over the vectors as given (float64 input, e.g. whitened vectors, is not
    rounded to float32 for that final scan).
    """
    x = np.ascontiguousarray(vectors, dtype=np.float64)  # both paths then sum in one order
    n_words, dim = x.shape
    sq = np.einsum("ij,ij->i", x, x)
    found = _max_distance_by_norms(x, sq, 32 * n_words if max_pairs is None else max_pairs)
    if found is not None:
        if progress is not None:
            progress(n_words)
        return found
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    # score_ij = |x_j|^2 - 2 x_i.x_j as one product of augmented matrices
    lhs = np.hstack([x32, np.ones((n_words, 1), np.float32)])
    rhs = np.hstack([-2 * x32, sq.astype(np.float32)[:, None]])
    # bound on |score32 - score|: the products in float32, plus rounding float64 input to float32
    # (at most 2u relative per coordinate product, u per squared norm)
    err = (4 * (dim + 2) * _U32 * 3 + 6 * _U32) * float(sq.max())
    est = np.empty(n_words)
    for start in range(0, n_words, block):
        stop = min(n_words, start + block)
        scores = lhs[start:stop] @ rhs[start:].T
        est[start:stop] = scores.max(axis=1) + sq[start:stop]
        if progress is not None:
            progress(stop - start)
    doubtful = np.flatnonzero(est >= est.max() - 2 * err)
    best, pair = -1.0, (0, 0)
    for r in doubtful:
        row = dist64(x, x[r])
        j = int(row.argmax())
        if row[j] > best:
            best, pair = float(row[j]), (min(int(r), j), max(int(r), j))
    return best, pair


def _max_distance_by_norms(x: np.ndarray, sq: np.ndarray, max_pairs: int, chunk: int = 1 << 17):
    """:func:`max_distance` over the pairs whose norms can reach it; None when over
    ``max_pairs``. Ties go to the lowest pair (i < j), as the full scan gives them."""
    norms = np.sqrt(sq)
    order = np.argsort(-norms, kind="stable")
    lower = max(float(dist64(x, x[r]).max()) for r in order[:4])
    cut = lower * (1.0 - 1e-9)  # far beyond the relative rounding of norms and distances
    desc = norms[order]
    partners = np.searchsorted(-desc, desc - cut, side="right")  # desc[q] >= cut - desc[p]
    total = int(partners.sum())
    if total > max_pairs:
        return None
    p = np.repeat(np.arange(len(x)), partners)
    q = np.arange(total) - np.repeat(np.cumsum(partners) - partners, partners)
    i, j = np.minimum(order[p], order[q]), np.maximum(order[p], order[q])
    d = np.concatenate([dist64(x[i[s:s + chunk]], x[j[s:s + chunk]])
                        for s in range(0, total, chunk)])
    top = np.flatnonzero(d == d.max())
    best = top[np.lexsort((j[top], i[top]))[0]]
    return float(d[best]), (int(i[best]), int(j[best]))


def distance_rows(x64: np.ndarray, sq: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Distances from each word in ``ids`` to every word, float64, shape (len(ids), N).

    Uses |a|^2 - 2ab + |b|^2 in float64 (within :func:`row_error_bound` of :func:`dist64`); a
    word's distance to itself is set to exactly 0. BLAS computes a lone row by another kernel (up
    to 10,037 of 100,000 entries differed), so a lone row is computed beside a copy of itself.
    A row's last bits still depend on the BLAS threads and on the rows asked with it (measured:
    2 of 3 and 32 of 33 rows of a block differed from the same rows alone with 2 threads, by
    about 1e-14 relative); whoever needs bits that do not, uses :func:`dist64` (the sampler
    does where a draw could tell the two apart).
    """
    ids = np.asarray(ids)
    if len(ids) == 1:
        return distance_rows(x64, sq, np.r_[ids, ids])[:1]
    d2 = x64[ids] @ x64.T
    d2 *= -2.0
    d2 += sq[ids][:, None]
    d2 += sq[None, :]
    np.maximum(d2, 0.0, out=d2)
    np.sqrt(d2, out=d2)
    d2[np.arange(len(ids)), ids] = 0.0
    return d2


def row_error_bound(dim: int, norm, max_norm: float, d_max: float, d_near):
    """Bound on |distance_rows - dist64| over the row of a word of norm ``norm``, whose other
    words are at least ``d_near`` away (a lower bound; 0 if unknown), among vectors of norm at
    most ``max_norm`` and distances at most ``d_max``. Arrays broadcast (one bound per word).

    |a|^2 - 2ab + |b|^2 is within (dim + 3) u (|a| + |b|)^2 of d^2 in any summation order, fused
    or not (u the float64 unit roundoff; taken twice here); since |sqrt(x) - sqrt(y)| <=
    |x - y| / sqrt(x), d is then within that over d_near (or its square root, near 0). dist64
    adds at most (dim + 5) u d (taken twice). Default 100k words: about 3e-12 for a typical
    word, against 9e-15 measured.
    """
    u = 2.0**-53
    err2 = 2 * (dim + 4) * u * (np.asarray(norm, dtype=np.float64) + max_norm) ** 2
    d_near = np.asarray(d_near, dtype=np.float64)
    near = np.where(d_near > 0, np.minimum(np.sqrt(err2), err2 / np.maximum(d_near, 1e-300)),
                    np.sqrt(err2))
    return near + 2 * (dim + 5) * u * d_max


def score_error_bound(dim: int, max_norm: float, ynorm: np.ndarray) -> np.ndarray:
    """Bound on |score32 - (|x|^2 - 2 y.x)| for the float32 product of ``[y, 1]`` and
    ``[-2x, |x|^2]`` (any summation order, fused or not; rounding y and |x|^2 to float32
    included), per query of norm ``ynorm``, over words of norm at most ``max_norm``."""
    return 4 * (dim + 3) * _U32 * (3 * max_norm**2 + 2 * ynorm * max_norm)


def usable_cpus() -> int:
    """The CPUs this process may use: DPSANITIZE_THREADS if set (worker processes get their
    share of the machine there), else the CPUs it may run on."""
    share = os.environ.get("DPSANITIZE_THREADS", "")
    if share.isdigit() and int(share) > 0:
        return int(share)
    if hasattr(os, "sched_getaffinity"):  # the CPUs this process may run on (Linux)
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class BruteForce:
    """Exact k nearest words of arbitrary float64 query points (noisy vectors).

    float32 scores ``|x|^2 - 2 y.x`` are computed in column chunks that stay in cache, keeping
    only each chunk's minimum (one pass over the scores). The k-th smallest chunk minimum bounds
    the k-th nearest score, so only the few chunks whose minimum is within the rounding margin of
    that bound are scored again for that query, and their candidates are ranked in float64.
    Blocks of queries run on all cores (one BLAS thread each, so the passes over the scores run in
    parallel too).

    Example::

        ids, d = BruteForce(vectors).nearest(y, k=2)
    """

    def __init__(self, vectors: np.ndarray, *, block: int = 256, chunk: int = _SCORE_CHUNK,
                 threads: int | None = None):
        x32 = np.ascontiguousarray(vectors, dtype=np.float32)
        self.x = x32
        sq = np.einsum("ij,ij->i", x32.astype(np.float64), x32.astype(np.float64))
        self._rhs_t = np.ascontiguousarray(
            np.hstack([-2 * x32, sq.astype(np.float32)[:, None]]).T)
        self._max_norm = math.sqrt(float(sq.max()))
        self._block = block
        self._chunk = chunk
        self._threads = threads or usable_cpus()

    def nearest(self, y: np.ndarray, k: int = 1):
        """``(ids int64 (B,k), dists float64 (B,k))``, nearest first, ties by lower id."""
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        y = np.asarray(y, dtype=np.float64)
        k = min(k, len(self.x))
        out_i = np.empty((len(y), k), dtype=np.int64)
        out_d = np.empty((len(y), k), dtype=np.float64)
        starts = range(0, len(y), self._block)

        def solve(start):
            part = slice(start, start + self._block)
            out_i[part], out_d[part] = self._nearest_block(y[part], k)

        if self._threads == 1 or len(starts) == 1:
            for start in starts:
                solve(start)
            return out_i, out_d
        pool = ThreadPoolExecutor(self._threads)
        try:
            with threadpool_limits(1, user_api="blas"):
                for _ in pool.map(solve, starts):
                    pass
        finally:  # on Ctrl-C, do not finish the queued blocks first
            pool.shutdown(wait=True, cancel_futures=True)
        return out_i, out_d

    def _nearest_block(self, y, k):
        n_words, dim = self.x.shape
        lhs = np.hstack([y.astype(np.float32), np.ones((len(y), 1), np.float32)])
        ynorm = np.sqrt(np.einsum("ij,ij->i", y, y))
        err = score_error_bound(dim, self._max_norm, ynorm)
        starts = np.arange(0, n_words, self._chunk)
        mins = np.empty((len(y), len(starts)), dtype=np.float32)
        for c, start in enumerate(starts):
            np.min(lhs @ self._rhs_t[:, start:start + self._chunk], axis=1, out=mins[:, c])
        # k words score at most the k-th smallest chunk minimum, so the k-th nearest word scores
        # at most that plus err, and every word of the top k at most that plus 2 err.
        if k <= len(starts):
            bound = np.partition(mins, k - 1, axis=1)[:, k - 1].astype(np.float64) + 2 * err
        else:
            bound = np.full(len(y), np.inf)
        rows, cols = [], []
        for c, start in enumerate(starts):
            hit = np.flatnonzero(mins[:, c] <= bound)
            if len(hit):
                scores = lhs[hit] @ self._rhs_t[:, start:start + self._chunk]
                r, j = np.divmod(np.flatnonzero(scores <= bound[hit, None]), scores.shape[1])
                rows.append(hit[r])
                cols.append(j + start)
        return rank_candidates(y, self.x, np.concatenate(rows), np.concatenate(cols), k)


def rank_candidates(y: np.ndarray, x: np.ndarray, rows: np.ndarray, cols: np.ndarray, k: int):
    """The k best candidates ``cols`` of each query row, by float64 distance then lower id.

    ``(rows[i], cols[i])`` pairs a query ``y[rows[i]]`` with a word ``x[cols[i]]``; every row
    must have at least k candidates. Returns ``(ids (len(y),k), dists (len(y),k))``. Both exact
    decoders (CPU and GPU) end here, so their answers agree bit for bit.
    """
    d = dist64(y[rows], x[cols])
    order = np.lexsort((cols, d, rows))
    rows, cols, d = rows[order], cols[order], d[order]
    first = np.searchsorted(rows, np.arange(len(y)))
    take = first[:, None] + np.arange(k)
    return cols[take].astype(np.int64, copy=False), d[take]
