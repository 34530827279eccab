"""EXPERIMENTAL density-aware Laplace by Metropolis-Hastings: no formal guarantee.

Target: a noisy vector y with density proportional to pi(y) exp(-eps |y - phi(w)|), pi the
Gaussian kernel density estimate of W (see :mod:`.density`), decoded to its nearest word. The
chain is an independence sampler: proposals come from the multivariate Laplace around phi(w)
(exp(-eps |y - phi(w)|), sampled exactly), so the acceptance probability is min(1, pi(y')/pi(y)).
After finitely many steps (``mh_steps``) the output only approaches the target law, so no
privacy statement is made for it: every report says "no formal guarantee: approximate sampling",
and the CLI runs it only with --experimental. Each step scores the proposals against all of W
(the KDE), so it is slow on large vocabularies.

Example::

    DensityMH(epsilon=3.0, store=store, mh_steps=20).perturb(ids, rng)
"""

from __future__ import annotations

import numpy as np

from .. import privacy
from ..privacy import Guarantee
from .base import Mechanism, check_range, euclidean_metric, open_uniform
from .density import scott_bandwidth
from .laplace import unit_directions


class DensityMH(Mechanism):
    """Laplace noise reweighted by a KDE prior, sampled by ``mh_steps`` Metropolis-Hastings steps."""

    name = "density-mh"
    unit = "no formal guarantee: approximate sampling (experimental)"
    claim = ("no formal guarantee: approximate sampling (Metropolis-Hastings towards density "
             "pi(y) exp(-{eps} |y - phi(w)|), decoded to the nearest word)")
    reference = ("this project's experimental construction: Laplace noise reweighted by a KDE "
                 "prior, sampled by Metropolis-Hastings (no published mechanism)")
    experimental = True

    def __init__(self, *, epsilon: float, store, mh_steps: int = 20,
                 kde_bandwidth: float | None = None):
        super().__init__(epsilon=epsilon, store=store)
        self.steps = int(check_range("--mh-steps", mh_steps, 0, 1_000_000))
        self.bandwidth = (scott_bandwidth(store.vocab.vectors) if kde_bandwidth is None else
                          check_range("--kde-bandwidth", kde_bandwidth, 0.0, float("inf"),
                                      open_low=True, open_high=True))
        self.dim = store.vocab.dim
        x = np.asarray(store.vocab.vectors, dtype=np.float64)
        self._x, self._sq = x, np.einsum("ij,ij->i", x, x)

    def params(self) -> dict:
        return {"mh_steps": self.steps, "kde_bandwidth": float(self.bandwidth)}

    def make_guarantee(self) -> Guarantee:
        return Guarantee(privacy.NONE, self.epsilon, euclidean_metric(self.store),
                         self.claim.format(eps=f"{self.epsilon:g}"), "no pair of words",
                         self.unit, reason="the Metropolis-Hastings chain only approximates the "
                                           "target law, so no bound is proven for any pair")

    def log_prior(self, y: np.ndarray, block: int = 4096) -> np.ndarray:
        """log pi(y) for points y (float64, a log-sum-exp over all of W)."""
        out = np.empty(len(y))
        scale = -0.5 / self.bandwidth ** 2
        for s in range(0, len(y), block):
            part = y[s:s + block]
            d2 = np.einsum("ij,ij->i", part, part)[:, None] - 2 * part @ self._x.T + self._sq
            z = np.maximum(d2, 0.0) * scale
            top = z.max(axis=1)
            out[s:s + block] = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
        return out

    def _proposal(self, centers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        radius = rng.gamma(self.dim, 1.0 / self.epsilon, len(centers))
        return centers + unit_directions(rng, len(centers), self.dim) * radius[:, None]

    def noisy_points(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        centers = self._x[ids]
        y = self._proposal(centers, rng)
        logp = self.log_prior(y)
        for _ in range(self.steps):
            cand = self._proposal(centers, rng)
            logc = self.log_prior(cand)
            accept = np.log(open_uniform(rng, len(ids))) < logc - logp
            y[accept], logp[accept] = cand[accept], logc[accept]
        return y

    def perturb(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return ids.copy()
        nearest, _ = self.store.nearest(self.noisy_points(ids, rng), ids, 1)
        return nearest[:, 0]
