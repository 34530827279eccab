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

import logging

import numpy as np

from .. import privacy
from ..privacy import Guarantee, Metric
from .base import ALL_PAIRS, check_range
from .laplace import MultivariateLaplace, unit_directions

log = logging.getLogger("dpsanitize")


def _regularized_eigh(x: np.ndarray, lam: float):
    """Eigenvalues and eigenvectors of lam Sigma + (1 - lam) I, Sigma = cov(x) scaled to
    trace = dim (float64)."""
    x = np.asarray(x, dtype=np.float64)
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    cov *= x.shape[1] / np.trace(cov)
    vals, vecs = np.linalg.eigh(lam * cov + (1.0 - lam) * np.eye(x.shape[1]))
    return np.clip(vals, 0.0, None), vecs


def regularized_sqrt(x: np.ndarray, lam: float) -> np.ndarray:
    """(lam Sigma + (1 - lam) I)^(1/2): the noise shape S."""
    vals, vecs = _regularized_eigh(x, lam)
    return (vecs * np.sqrt(vals)) @ vecs.T


def whitening(x: np.ndarray, lam: float) -> np.ndarray:
    """(lam Sigma + (1 - lam) I)^(-1/2): d_RM(u - v) = |(u - v) @ whitening|, Euclidean.

    A direction the noise never takes (an eigenvalue 0, only at lam = 1 with a singular
    covariance) gets a tiny eigenvalue instead: its distances, and so the bound, come out
    very large rather than infinite, which overstates the bound, never understates it.
    """
    vals, vecs = _regularized_eigh(x, lam)
    vals = np.maximum(vals, 1e-12 * max(float(vals.max()), 1e-300))
    return (vecs / np.sqrt(vals)) @ vecs.T


def mahalanobis_metric(store, lam: float) -> Metric:
    """d_RM between word vectors, with its exact diameter over W (computed once per index and
    lambda, cached beside it: the whitened vectors' largest Euclidean distance, float64)."""
    from ..geometry import dist64, max_distance

    t = whitening(store.vocab.vectors, lam)

    def compute():
        log.info("mahalanobis: the diameter of W in d_RM at lam %g (one-off, cached)", lam)
        d, pair = max_distance(np.asarray(store.vocab.vectors, dtype=np.float64) @ t)
        return {"diameter": np.array([d]), "pair": np.array(pair)}

    diameter = float(store.derived(f"mahalanobis-diameter-{lam:.17g}", compute)["diameter"][0])

    def distance(a, b):
        x = store.vocab.vectors
        return dist64(x[np.asarray(a)] @ t, x[np.asarray(b)] @ t)

    return Metric("mahalanobis", "regularised Mahalanobis distance d_RM between word vectors",
                  diameter, {"lam": lam}, distance=distance)


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
    claim = ("{eps}-metric-DP in d_RM(x) = sqrt(x^T (lam Sigma + (1-lam) I)^-1 x): "
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

    def make_guarantee(self) -> Guarantee:
        return Guarantee(privacy.METRIC_DP, self.epsilon, mahalanobis_metric(self.store, self.lam),
                         self.claim.format(eps=f"{self.epsilon:g}"), ALL_PAIRS, self.unit)

    def noise(self, rng: np.random.Generator, n: int) -> np.ndarray:
        radius = rng.gamma(self.dim, 1.0 / self.epsilon, n)
        return (unit_directions(rng, n, self.dim) @ self.sqrt_m) * radius[:, None]
