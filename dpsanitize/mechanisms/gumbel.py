"""The truncated Gumbel mechanism (headline).

For an input word w: draw k ~ Poisson(lambda), lambda = ln(|W|-1), conditioned on k <= |W|-1; the
candidates are w and its k exact nearest other words; each candidate c gets noise g_c from
Gumbel(0, b) truncated to [-d_max, d_max] (inverse CDF); the output is the candidate with the
smallest d(w, c) + g_c. This is not the Gumbel-max trick: noise is added to distances and the
*minimum* wins.

Calibration (the paper's theorem as the public re-implementation states it)::

    a = (eps - 2 (1 + ln|W|) / d_min) / 3
    b = 2 d_max / min(W0(2 a d_max), ln(a d_min))        valid only when a d_min > 1

so eps must exceed eps_floor = (3 + 2 (1 + ln|W|)) / d_min.

Example::

    mech = TruncatedGumbel(epsilon=120.0, store=store)
    mech.b, mech.calibration()["epsilon_floor"]

References
----------
Xu, Feyisetan, Aggarwal, Xu, Teissier. "Density-aware differentially private textual
perturbations using truncated Gumbel noise." FLAIRS 2021 (best paper), Algorithm 1 and Theorem 1.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import CalibrationError
from .base import Mechanism, open_uniform


def epsilon_floor(vocab_size: int, d_min: float) -> float:
    """Smallest epsilon (exclusive) for which the calibration exists."""
    return (3.0 + 2.0 * (1.0 + math.log(vocab_size))) / d_min


def gumbel_scale(epsilon: float, vocab_size: int, d_min: float, d_max: float) -> float:
    """The noise scale b for ``epsilon``; CalibrationError at or below the floor."""
    from scipy.special import lambertw

    floor = epsilon_floor(vocab_size, d_min)
    a = (epsilon - 2.0 * (1.0 + math.log(vocab_size)) / d_min) / 3.0
    if not (epsilon > floor and a * d_min > 1.0):
        raise CalibrationError(
            f"--eps {epsilon:g} is at or below the truncated Gumbel floor {floor:.4g} "
            f"(= (3 + 2(1 + ln|W|)) / d_min with |W| = {vocab_size}, d_min = {d_min:.6g}); "
            f"use --eps above the floor, or another mechanism (e.g. --mech laplace). A smaller "
            f"--vocab-size lowers the floor only through ln|W| and does not raise d_min on the "
            f"default vocabulary (its closest pair is among the first 1,000 words); embeddings "
            f"whose closest two words are farther apart do (scripts/gumbel_range.py)")
    w0 = complex(lambertw(2.0 * a * d_max, 0))
    log_term = math.log(a * d_min)
    if w0.imag != 0.0 or not math.isfinite(w0.real) or w0.real <= 0 or log_term <= 0:
        raise CalibrationError(f"--eps {epsilon:g}: the calibration has no valid real solution")
    b = 2.0 * d_max / min(w0.real, log_term)
    if not (math.isfinite(b) and b > 0):
        raise CalibrationError(f"--eps {epsilon:g}: the calibration gives no finite noise scale")
    return b


def truncated_gumbel(rng: np.random.Generator, shape, scale: float, bound: float) -> np.ndarray:
    """Gumbel(0, scale) conditioned on [-bound, bound], by inverse CDF on that interval."""
    lo = math.exp(-math.exp(bound / scale))   # F(-bound)
    hi = math.exp(-math.exp(-bound / scale))  # F(bound)
    u = open_uniform(rng, shape)
    u *= hi - lo
    u += lo
    x = np.log(u)
    np.negative(x, out=x)
    np.log(x, out=x)
    x *= -scale
    return np.clip(x, -bound, bound, out=x)


class TruncatedGumbel(Mechanism):
    """Truncated Gumbel noise on the distances to the input word's k ~ Poisson nearest words.

    Parameters
    ----------
    epsilon : float
        Privacy parameter per word, per unit of Euclidean distance; must exceed the floor.
    store : IndexStore
        Exact neighbour table and d_min / d_max of the vocabulary.

    Raises
    ------
    CalibrationError
        When ``epsilon`` is at or below ``epsilon_floor``.
    """

    name = "gumbel"
    reference = "Xu et al., FLAIRS 2021 (truncated Gumbel mechanism)"

    def __init__(self, *, epsilon: float, store):
        super().__init__(epsilon=epsilon, store=store)
        self.lam = math.log(self.vocab_size - 1)
        self.floor = epsilon_floor(self.vocab_size, store.d_min)
        self.b = gumbel_scale(self.epsilon, self.vocab_size, store.d_min, store.d_max)

    def params(self) -> dict:
        return {"b": self.b, "lambda": self.lam}

    def calibration(self) -> dict:
        return {**super().calibration(), "epsilon_floor": self.floor,
                "expected_candidates": self.lam + 1}

    def draw_k(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """k ~ Poisson(lambda) conditioned on k <= |W|-1 (by rejection; exact)."""
        k = rng.poisson(self.lam, n)
        over = np.flatnonzero(k > self.vocab_size - 1)
        while len(over):
            k[over] = rng.poisson(self.lam, len(over))
            over = over[k[over] > self.vocab_size - 1]
        return k

    def perturb(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        if n == 0:
            return ids.copy()
        k = self.draw_k(rng, n)
        store = self.store
        width = int(min(k.max(), store.k_max))
        dist = np.zeros((n, width + 1))
        dist[:, 1:] = store.nbr_dist[ids, :width]
        noise = truncated_gumbel(rng, dist.shape, self.b, store.d_max)
        dist += noise
        dist[np.arange(width + 1)[None, :] > k[:, None]] = np.inf
        win = dist.argmin(axis=1)
        out = ids.copy()
        moved = win > 0
        out[moved] = store.nbr_ids[ids[moved], win[moved] - 1]
        for r in np.flatnonzero(k > store.k_max):  # astronomically rare for |W| <= 1e7
            out[r] = self._perturb_wide(int(ids[r]), int(k[r]), rng)
        return out

    def _perturb_wide(self, i: int, k: int, rng: np.random.Generator) -> int:
        """One word whose k exceeds the table: exact neighbours computed on demand."""
        nbr, d = self.store.neighbors(i, k)
        cand = np.concatenate([[i], nbr])
        score = np.concatenate([[0.0], d]) + truncated_gumbel(rng, len(cand), self.b, self.store.d_max)
        return int(cand[score.argmin()])
