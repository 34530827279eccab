"""The density-aware exponential mechanism: a public density prior times exp(-eps d / 2).

Pr[y | w] = pi(y) exp(-eps d(w, y) / 2) / Z(w), Z(w) = sum_y pi(y) exp(-eps d(w, y) / 2), where pi
is a Gaussian kernel density estimate of the embedding at phi(y), computed from W alone (public):
outputs favour dense regions of the space. The prior is this project's own construction, in the
spirit of the density-aware idea of the seed paper (Xu et al., FLAIRS 2021), which reaches
density awareness differently (truncated Gumbel noise on neighbour distances).

Why it is eps*d metric DP for any public pi, and two lines suffice: for words w, w' and any y,
the numerators differ by pi(y) exp(-eps d(w,y)/2) / (pi(y) exp(-eps d(w',y)/2)) <= exp(eps d(w,w')/2)
(triangle inequality), and every term of the normaliser does too, so Z(w')/Z(w) <= exp(eps d(w,w')/2);
the product is at most exp(eps d(w, w')).

The prior: pi(y) = sum over every x of W of exp(-|phi(y) - phi(x)|^2 / (2 h^2)), h by Scott's
rule (h = sigma * |W|^(-1/(n+4)), sigma the mean per-dimension standard deviation of W) or given.
It is computed once per index (a |W| x |W| pass in row blocks; about a minute for 100k words on 2
cores) and cached beside it. Sampling is exact (:class:`.sampling.ExpSampler` with the prior
folded into the weights).

Example::

    DensityExp(epsilon=4.0, store=store).perturb(ids, rng)
"""

from __future__ import annotations

import logging

import numpy as np

from .base import Mechanism, check_range
from .sampling import ExpSampler

log = logging.getLogger("dpsanitize")


def scott_bandwidth(vectors: np.ndarray) -> float:
    """sigma * N^(-1/(n+4)), sigma the mean per-dimension standard deviation."""
    x = np.asarray(vectors, dtype=np.float64)
    n_words, dim = x.shape
    return float(x.std(axis=0).mean() * n_words ** (-1.0 / (dim + 4)))


def kde_prior(vectors: np.ndarray, bandwidth: float, block: int = 1024, progress=None) -> dict:
    """pi(y) = sum over every x of W of exp(-|phi(y) - phi(x)|^2 / (2 h^2)), in row blocks
    (float32 squared distances: pi only has to be a fixed public function of W)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    sq = np.einsum("ij,ij->i", x, x)
    scale = np.float32(-0.5 / bandwidth ** 2)
    prior = np.empty(len(x))
    for start in range(0, len(x), block):
        stop = min(len(x), start + block)
        d2 = x[start:stop] @ x.T
        d2 *= -2.0
        d2 += sq[start:stop, None]
        d2 += sq[None, :]
        np.maximum(d2, 0.0, out=d2)
        d2 *= scale
        np.exp(d2, out=d2)
        prior[start:stop] = d2.sum(axis=1, dtype=np.float64)
        if progress is not None:
            progress(stop - start)
    return {"prior": prior}


class DensityExp(Mechanism):
    """Exponential mechanism with a public KDE prior: Pr[y|w] proportional to
    pi(y) exp(-eps d(w, y) / 2) over all of W, exact sampling.

    Parameters
    ----------
    epsilon : float
        Privacy parameter per word, per unit of Euclidean distance.
    kde_bandwidth : float, optional
        Kernel bandwidth h; default Scott's rule.
    """

    name = "density"
    reference = ("this project's construction: the exponential mechanism (McSherry & Talwar, "
                 "FOCS 2007) weighted by a public Gaussian KDE prior over W, in the spirit of "
                 "the density-aware idea of Xu et al., FLAIRS 2021 (which uses truncated Gumbel "
                 "noise, not this prior)")

    def __init__(self, *, epsilon: float, store, kde_bandwidth: float | None = None):
        super().__init__(epsilon=epsilon, store=store)
        if kde_bandwidth is None:
            self.bandwidth = store.derived("scott-bandwidth", lambda: {
                "h": np.array([scott_bandwidth(store.vocab.vectors)])})["h"][0]
        else:
            self.bandwidth = check_range("--kde-bandwidth", kde_bandwidth, 0.0, float("inf"),
                                         open_low=True, open_high=True)
        key = f"kde-w-prior-{self.bandwidth:.17g}"
        self.prior = store.derived(key, lambda: self._compute_prior(store),
                                   valid=lambda a: a["prior"].shape == (len(store.vocab),))["prior"]
        self.sampler = ExpSampler(store, self.epsilon, prior=self.prior)

    def _compute_prior(self, store) -> dict:
        log.info("density: kernel density of the %d words (one-off, cached beside the index)",
                 len(store.vocab))
        return kde_prior(store.vocab.vectors, self.bandwidth)

    def params(self) -> dict:
        return {"kde_bandwidth": float(self.bandwidth)}

    def calibration(self) -> dict:
        return {**super().calibration(),
                "prior_ratio_max_min": float(self.prior.max() / self.prior.min())}

    def perturb(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.sampler.sample(np.asarray(ids, dtype=np.int64), rng)

    def probabilities(self, i: int) -> np.ndarray:
        return self.sampler.probabilities(i)

    def probability_rows(self, ids) -> np.ndarray:
        return self.sampler.probability_rows(ids)
