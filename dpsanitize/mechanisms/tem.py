"""The truncated exponential mechanism (TEM).

gamma = (2/eps) ln((1-beta)(|W|-1)/beta); L_w = {y : d(w, y) <= gamma}, found exactly. Scores are
-d(w, y) for y in L_w and -gamma + (2/eps) ln(|W| - |L_w|) for a special output "bottom" (absent
when L_w = W); Gumbel(0, 2/eps) noise is added and the argmax wins; "bottom" becomes a uniform word
outside L_w. That is exactly the exponential mechanism with utility -min(d, gamma), which is how it
is sampled here (exactly, see :mod:`.sampling`); the guarantee is eps-metric-DP.

Example::

    TruncatedExponential(epsilon=10.0, store=store, tem_beta=0.001).perturb(ids, rng)

References
----------
Carvalho, Vasiloudis, Feyisetan, Wang. "TEM: High utility metric differential privacy on text."
SDM 2023, Algorithm 1 and Theorem 3.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidParameter
from .base import Mechanism, check_range
from .sampling import ExpSampler


class TruncatedExponential(Mechanism):
    """Exponential mechanism on -min(d, gamma): exact neighbours inside gamma, uniform outside.

    Parameters
    ----------
    tem_beta : float in (0, 1)
        Sets the truncation radius gamma; smaller beta, larger gamma.
    """

    name = "tem"
    reference = "Carvalho et al., SDM 2023 (TEM)"

    def __init__(self, *, epsilon: float, store, tem_beta: float = 0.001):
        super().__init__(epsilon=epsilon, store=store)
        self.beta = check_range("--tem-beta", tem_beta, 0.0, 1.0, open_low=True, open_high=True)
        ratio = (1.0 - self.beta) * (self.vocab_size - 1) / self.beta
        if ratio <= 1.0:
            raise InvalidParameter("--tem-beta is too large for this vocabulary (gamma <= 0); "
                                   "use a smaller --tem-beta")
        self.gamma = 2.0 / self.epsilon * math.log(ratio)
        self.sampler = ExpSampler(store, self.epsilon, clip=self.gamma)

    def params(self) -> dict:
        return {"beta": self.beta, "gamma": self.gamma}

    def perturb(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.sampler.sample(np.asarray(ids, dtype=np.int64), rng)

    def probabilities(self, i: int) -> np.ndarray:
        return self.sampler.probabilities(i)

    def probability_rows(self, ids) -> np.ndarray:
        return self.sampler.probability_rows(ids)
