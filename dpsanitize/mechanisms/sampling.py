"""Exact sampling from exponential-mechanism rows over the whole vocabulary, without |W|^2 memory.

Draws y with probability proportional to ``prior(y) * exp(-eps/2 * min(d(w, y), clip))`` over
the columns ``y >= first`` of W (SanText: clip = inf; TEM: clip = gamma; SanText+: first = start
of the sensitive set; density: a public prior, uniform otherwise). Two exact methods (the output distribution is the same either way, so which one
served a draw reveals nothing):

* **rejection** from an envelope built on an exact neighbour table: the near words (the word and
  its K nearest allowed words) get their exact weights; every other allowed word is at distance
  >= d_K(w), so ``prior(y) * exp(-eps/2 * min(d_K, clip))`` bounds its weight (far proposals are
  drawn in proportion to the prior). A proposal from the envelope is accepted
  with probability (true weight / envelope weight); accepted draws follow the target exactly.
  Cost: a few distance evaluations per draw.
* **full row**: a fresh draw from the word's full row of distances (one matrix product, inverse
  CDF); rows are cached within a memory budget. It serves every draw of a word that occurs at
  least ``row_draws`` times in a chunk of input (one row then costs less than their proposals),
  and a draw still rejected after ``max_rounds`` proposals (a loose envelope). Accepted
  proposals follow the target whatever the round they come in, so the mixture stays exact.
  Which path serves a word depends only on the ids it is given, never on the cache or earlier
  draws.

Seeded draws do not depend on BLAS: a fast row's last bits depend on the rows computed with it
and on the BLAS threads (:func:`..geometry.distance_rows`), but a draw whose uniform falls within
a proven bound of a step of the fast CDF (:meth:`ExpSampler._near_a_step`; 2 to 21 draws in a
million on the default words) is drawn again, with the same uniform, from the row of the
reference metric (:func:`..geometry.dist64`, whose bits depend on the two words alone). Every
row draw is therefore the reference row's inverse CDF at its uniform, and rejection compares
dist64 distances: one seed gives the same words whatever the cache, the engine or the thread
count, on one numpy build and CPU (given the same prior: density's is cached once per index).

Example::

    sampler = ExpSampler(store, epsilon=4.0)
    out = sampler.sample(ids, rng)
    p = sampler.probabilities(ids[0])
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from ..geometry import dist64
from .base import open_uniform


class ExpSampler:
    """Pr[y | w] proportional to prior(y) * exp(-epsilon/2 * min(d(w,y), clip)), y in W[first:]."""

    def __init__(self, store, epsilon: float, *, clip: float = np.inf, first: int = 0,
                 table=None, max_rounds: int = 1024, cache_bytes: int = 128 << 20,
                 row_block: int = 32, row_draws: int = 16, prior: np.ndarray | None = None):
        self.store = store
        # prior: positive public weights per word (None: uniform), scaled so its maximum is 1
        if prior is None:
            self.log_prior, self._prior_cum = None, None
        else:
            prior = np.asarray(prior, dtype=np.float64)
            if prior.shape != (len(store.vocab),) or not (prior > 0).all():
                raise ValueError("the prior needs one positive weight per word")
            prior = prior / prior.max()
            self.log_prior = np.log(prior)
            self._prior_cum = np.cumsum(prior[first:])
        # Near words: the store's table, or (for first > 0) a table of neighbours among the
        # allowed words, so that the envelope stays tight.
        self.nbr_ids, self.nbr_dist = table if table is not None else (store.nbr_ids,
                                                                        store.nbr_dist)
        self.complete = table is None and first == 0 and store.table_is_complete
        self.half_eps = epsilon / 2.0
        self.clip = clip
        self.first = first
        self.max_rounds = max_rounds
        self.row_draws = row_draws
        self.n = len(store.vocab)
        self._row_block = row_block
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_rows = max(1, cache_bytes // (8 * (self.n - first)))
        # log weights of a fast row and of its reference row differ by at most this, per word:
        # 2 half_eps row_error (the row's maximum moves too) plus rounding, exp included
        spread = self.half_eps * min(store.d_max, clip) + 1.0
        if self.log_prior is not None:
            spread -= float(self.log_prior.min())
        self._log_gap = 2 * self.half_eps * store.row_error + 32 * 2.0**-53 * spread
        self.reference_rows_used = 0  # draws settled by the reference row (tests, benchmarks)

    # -- exact distribution (tests, audits) -------------------------------------------------

    def probabilities(self, i: int) -> np.ndarray:
        """Pr[y | i] over all of W (zero before ``first``)."""
        return self.probability_rows([i])[0]

    def probability_rows(self, ids) -> np.ndarray:
        """:meth:`probabilities` of each word of ``ids``, as a fresh array (a block costs about
        what one row does: the vectors are read once; last bits as in distance_rows)."""
        w = self._weights(ids)
        w /= w.sum(axis=1, keepdims=True)
        if not self.first:
            return w
        p = np.zeros((len(w), self.n))
        p[:, self.first:] = w
        return p

    # -- sampling ---------------------------------------------------------------------------

    def sample(self, ids: np.ndarray, rng: np.random.Generator, chunk: int = 16384) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) <= chunk:
            return self._sample(ids, rng)
        return np.concatenate([self._sample(ids[s:s + chunk], rng)
                               for s in range(0, len(ids), chunk)])

    def _sample(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Words occurring ``row_draws`` times or more from their rows, the rest by rejection."""
        _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
        by_row = (counts >= self.row_draws)[inverse]
        if not by_row.any():
            return self._by_rejection(ids, rng)
        out = np.empty(len(ids), dtype=np.int64)
        out[by_row] = self._by_rows(ids[by_row], rng)
        out[~by_row] = self._by_rejection(ids[~by_row], rng)
        return out

    def _by_rejection(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if len(ids) == 0:
            return ids.copy()
        near, logw, far_logw, reach = self._envelope(ids)
        shift = np.maximum(logw.max(axis=1), far_logw)
        w_near = np.exp(logw - shift[:, None])           # 0 where masked (logw = -inf)
        z_near = w_near.sum(axis=1)
        far_mass = self.n - self.first if self._prior_cum is None else self._prior_cum[-1]
        z_env = z_near + far_mass * np.exp(far_logw - shift)
        out, pending = self._rejection(ids, near, reach, w_near, z_near, z_env,
                                       far_logw - shift, shift, rng)
        if len(pending):  # still rejected after max_rounds: a fresh exact draw from the row
            out[pending] = self._by_rows(ids[pending], rng, evict=False)
        return out

    def _envelope(self, ids):
        """Near candidates (masked to the allowed columns), their log weights, the far bound,
        and how far the near candidates reach (d_K, with a margin far above any rounding).

        The far branch proposes uniformly over all allowed columns and rejects near words, so
        its envelope mass is (allowed columns) x bound.
        """
        k = self.nbr_ids.shape[1]
        near = np.empty((len(ids), k + 1), dtype=np.int64)
        near[:, 0] = ids
        near[:, 1:] = self.nbr_ids[ids]
        d = np.zeros((len(ids), k + 1))
        d[:, 1:] = self.nbr_dist[ids]
        logw = np.where(near >= self.first, -self.half_eps * np.minimum(d, self.clip), -np.inf)
        if self.log_prior is not None:
            logw = logw + self.log_prior[near]
        if self.complete:
            far_logw = np.full(len(ids), -np.inf)
        else:
            far_logw = -self.half_eps * np.minimum(d[:, -1], self.clip)
        return near, logw, far_logw, d[:, -1] * (1 + 1e-6) + 1e-9

    def _rejection(self, ids, near, reach, w_near, z_near, z_env, far_logw_shifted, shift, rng):
        """Envelope rejection for up to ``max_rounds`` rounds; returns (out, still pending).

        Accepted values follow the target whatever the round, so handing the rest to an
        exact row draw keeps the output distribution exact.
        """
        out = np.empty(len(ids), dtype=np.int64)
        cum = np.cumsum(w_near, axis=1)
        pending = np.arange(len(ids))
        x = self.store.vocab.vectors
        for _ in range(self.max_rounds):
            if not len(pending):
                break
            u = open_uniform(rng, len(pending)) * z_env[pending]
            take_near = u < z_near[pending]
            if take_near.any():
                p = pending[take_near]
                col = (cum[p] <= u[take_near, None]).sum(axis=1)
                out[p] = near[p, np.minimum(col, near.shape[1] - 1)]
            p = pending[~take_near]
            if self._prior_cum is None:
                y = rng.integers(self.first, self.n, len(p))
            else:  # in proportion to the prior; the acceptance below then leaves it out
                v = open_uniform(rng, len(p)) * self._prior_cum[-1]
                y = self.first + np.minimum(np.searchsorted(self._prior_cum, v, side="right"),
                                            self.n - self.first - 1)
            d = dist64(x[ids[p]], x[y])
            # near words come from the near branch; only a proposal within d_K can be one
            fresh = d > reach[p]
            maybe = np.flatnonzero(~fresh)
            fresh[maybe] = ~(near[p[maybe]] == y[maybe, None]).any(axis=1)
            logw = -self.half_eps * np.minimum(d, self.clip) - shift[p]  # prior: in the proposal
            accept = fresh & (open_uniform(rng, len(p)) < np.exp(logw - far_logw_shifted[p]))
            out[p[accept]] = y[accept]
            pending = p[~accept]
        return out, pending

    def _by_rows(self, ids, rng, evict=True):
        """Inverse-CDF sampling from full rows, one row per distinct word, bounded memory
        (``evict``: a new row may displace cached rows this call does not use)."""
        out = np.empty(len(ids), dtype=np.int64)
        uniq, inverse = np.unique(ids, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
        u = open_uniform(rng, len(ids))

        def draw(j, cdf):
            pos = order[bounds[j]:bounds[j + 1]]
            t = u[pos] * cdf[-1]
            k = np.searchsorted(cdf, t, side="right")
            unsure = np.flatnonzero(self._near_a_step(words[j], cdf, t, k))
            if len(unsure):  # where the fast row's rounding could matter, the reference decides
                ref = self._cdf_of(self.store.reference_rows(uniq[j:j + 1]))[0]
                k[unsure] = np.searchsorted(ref, u[pos[unsure]] * ref[-1], side="right")
                self.reference_rows_used += len(unsure)
            out[pos] = self.first + k

        todo, words = [], uniq.tolist()
        keep = set(words) if evict else None
        for j, w in enumerate(words):
            if w in self._cache:
                self._cache.move_to_end(w)
                draw(j, self._cache[w])
            else:
                todo.append(j)
        for s in range(0, len(todo), self._row_block):
            block = todo[s:s + self._row_block]
            cdfs = self._cdf_rows(uniq[block])
            for j, cdf in zip(block, cdfs):
                draw(j, cdf)
                self._remember(words[j], cdf, keep)
        return np.minimum(out, self.n - 1)

    def _cdf_rows(self, words: np.ndarray) -> np.ndarray:
        """Unnormalised cumulative weights over the allowed columns, one row per word."""
        return self._cdf_of(self.store.rows(words))

    def _cdf_of(self, rows: np.ndarray) -> np.ndarray:
        w = self._weights_of(rows)
        return np.cumsum(w, axis=1, out=w)

    def _near_a_step(self, w: int, cdf: np.ndarray, t: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Where ``searchsorted(cdf, t, "right") = k`` could differ for the reference row of
        ``w``: t within the proven gap of the step below or above it.

        The weights of the two rows differ by a factor within exp(+-log_gap[w]); a partial sum
        of i of them, summed in the same order, by that plus 2 gamma_i, gamma_i = i u / (1 - i u)
        (t = u * total: gamma of all m); each bound is taken twice.
        """
        u, m = 2.0**-53, len(cdf)
        eta = math.expm1(min(self._log_gap[w], 50.0))  # beyond: every draw is near a step

        def gap(i):  # of cdf[i], a partial sum of i + 1 weights
            return 2 * (eta + 2.02 * u * (i + 1) + 4 * u) * cdf[i]

        t_gap = 2 * (eta + 2.02 * u * m + 6 * u) * t + 4 * m * 2.0**-1022  # subnormal weights
        below, above = np.maximum(k - 1, 0), np.minimum(k, m - 1)
        return ((k == m) | ((k > 0) & (t - cdf[below] <= gap(below) + t_gap))
                | ((k < m) & (cdf[above] - t <= gap(above) + t_gap)))

    def _weights(self, words) -> np.ndarray:
        """Weights over the allowed columns scaled so each row's largest is 1, one row per
        word (the rows of :meth:`probability_rows` and of the sampler's CDFs)."""
        return self._weights_of(self.store.rows(words))

    def _weights_of(self, rows: np.ndarray) -> np.ndarray:
        d = rows[:, self.first:]
        logw = -self.half_eps * np.minimum(d, self.clip)
        if self.log_prior is not None:
            logw += self.log_prior[self.first:]
        logw -= logw.max(axis=1, keepdims=True)
        return np.exp(logw, out=logw)

    def _remember(self, w: int, cdf: np.ndarray, keep: set | None) -> None:
        """Cache a row in place of the least recently used rows outside ``keep`` (None: in
        place of none); when there is no such row it is not cached. Plain LRU would evict
        every row before its next use when more words recur chunk after chunk than fit (at
        |W| = 337k, 128 MiB holds 49 rows; Zipf text draws about 80 words by row per chunk)."""
        while len(self._cache) >= self._cache_rows:
            oldest = next(iter(self._cache))
            if keep is None or oldest in keep:
                return
            del self._cache[oldest]
        self._cache[w] = cdf.copy()
