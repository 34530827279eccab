"""The Vickrey mechanism: choose between the two nearest words of a noisy vector.

A noisy vector y comes from the multivariate Laplace (or Mahalanobis) mechanism; u1, u2 are the
two words nearest to y with true distances d1 <= d2; the output is u1 with probability
(1-t) d2 / (t d1 + (1-t) d2), else u2. This only post-processes y, so the guarantee is the base
mechanism's. The input word is never excluded.

Example::

    mech = Vickrey(epsilon=20.0, store=store, vickrey_t=0.75)

References
----------
Xu, Aggarwal, Feyisetan, Teissier. "On a utilitarian approach to privacy preserving text
generation." PrivateNLP workshop at NAACL 2021, Section 3.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameter
from .base import Mechanism, check_range
from .laplace import MultivariateLaplace
from .mahalanobis import Mahalanobis


class Vickrey(Mechanism):
    """Second-price-style choice between the two nearest words of a Laplace/Mahalanobis point.

    Parameters
    ----------
    vickrey_t : float in [0, 1]
        0 always takes the nearest word (the base mechanism); larger t favours the second.
    vickrey_base : {"laplace", "mahalanobis"}
        Noise it builds on; ``lam`` applies to the Mahalanobis base only.
    """

    name = "vickrey"
    reference = "Xu et al., PrivateNLP 2021 (Vickrey mechanism)"

    def __init__(self, *, epsilon: float, store, vickrey_t: float = 0.5,
                 vickrey_base: str = "laplace", lam: float | None = None,
                 decoder: str = "exact", search_k: int | None = None,
                 device: str = "cpu"):
        super().__init__(epsilon=epsilon, store=store)
        self.t = check_range("--vickrey-t", vickrey_t, 0.0, 1.0)
        common = {"epsilon": epsilon, "store": store, "decoder": decoder, "search_k": search_k,
                  "device": device}
        if vickrey_base == "mahalanobis":
            self.base = Mahalanobis(**common, lam=0.2 if lam is None else lam)
        elif vickrey_base == "laplace":
            if lam is not None:
                raise InvalidParameter("--lam applies to vickrey only with --vickrey-base mahalanobis")
            self.base = MultivariateLaplace(**common)
        else:
            raise InvalidParameter("--vickrey-base must be 'laplace' or 'mahalanobis'")
        self.unit, self.claim = self.base.unit, self.base.claim

    def make_guarantee(self):
        return self.base.guarantee  # post-processing of the base's noisy vector

    def params(self) -> dict:
        return {"t": self.t, "base": self.base.name, **self.base.params()}

    def calibration(self) -> dict:
        return {**self.base.calibration(), "mechanism": self.name, **self.params()}

    def perturb(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return ids.copy()
        near, dist = self.base.decode(self.base.noisy_points(ids, rng), ids, 2)
        d1, d2 = dist[:, 0], dist[:, 1]
        denom = self.t * d1 + (1.0 - self.t) * d2
        with np.errstate(invalid="ignore", divide="ignore"):
            p_first = np.where(denom > 0, (1.0 - self.t) * d2 / denom, 1.0)
        first = rng.random(len(ids)) < p_first
        return np.where(first, near[:, 0], near[:, 1])
