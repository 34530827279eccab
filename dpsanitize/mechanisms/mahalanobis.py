"""The Mahalanobis mechanism: elliptical noise shaped by the vocabulary's covariance.

As the multivariate Laplace mechanism, but the noise is z = r S v with v uniform on the unit
sphere, r ~ Gamma(n, 1/eps), and S = (lam Sigma + (1 - lam) I)^(1/2), Sigma the covariance of W's
vectors scaled so that trace(Sigma) = n (float64 symmetric eigendecomposition, computed once).
S v is not renormalised. The guarantee is eps-metric-DP in the regularised Mahalanobis norm.

Example::

    mech = Mahalanobis(epsilon=20.0, store=store, lam=0.2)

References
----------
Xu, Aggarwal, Feyisetan, Teissier. "A differentially private text perturbation method using a
regularized Mahalanobis metric." PrivateNLP workshop at EMNLP 2020, Algorithm 1.
"""

from __future__ import annotations

import numpy as np

from .base import check_range
from .laplace import MultivariateLaplace, unit_directions


def regularized_sqrt(x: np.ndarray, lam: float) -> np.ndarray:
    """(lam Sigma + (1 - lam) I)^(1/2), Sigma = cov(x) scaled to trace = dim."""
    x = np.asarray(x, dtype=np.float64)
    cov = np.cov(x, rowvar=False)
    cov *= x.shape[1] / np.trace(cov)
    m = lam * cov + (1.0 - lam) * np.eye(x.shape[1])
    vals, vecs = np.linalg.eigh(m)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


class Mahalanobis(MultivariateLaplace):
    """Elliptical Laplace-type noise z = r S v, nearest-word decoding.

    Parameters
    ----------
    epsilon : float
        Privacy parameter per word, per unit of the regularised Mahalanobis distance.
    lam : float in [0, 1]
        Weight of the covariance (0 gives the multivariate Laplace mechanism).
    """

    name = "mahalanobis"
    unit = "per word, per unit of regularised Mahalanobis distance between word vectors"
    guarantee = ("{eps}-metric-DP in d_RM(x) = sqrt(x^T (lam Sigma + (1-lam) I)^-1 x): "
                 "Pr[M(w)=y] <= exp({eps}*d_RM(phi(w)-phi(w')))*Pr[M(w')=y]")
    reference = "Xu et al., PrivateNLP 2020 (regularised Mahalanobis)"

    def __init__(self, *, epsilon: float, store, lam: float = 0.2, decoder: str = "exact",
                 search_k: int | None = None, device: str = "cpu"):
        self.lam = check_range("--lam", lam, 0.0, 1.0)
        self.sqrt_m = regularized_sqrt(store.vocab.vectors, self.lam)
        super().__init__(epsilon=epsilon, store=store, decoder=decoder, search_k=search_k,
                         device=device)

    @property
    def noise_gain(self) -> float:
        return float(np.linalg.norm(self.sqrt_m, 2))

    def params(self) -> dict:
        return {"lam": self.lam, "decoder": self.decoder}

    def noise(self, rng: np.random.Generator, n: int) -> np.ndarray:
        radius = rng.gamma(self.dim, 1.0 / self.epsilon, n)
        return (unit_directions(rng, n, self.dim) @ self.sqrt_m) * radius[:, None]
