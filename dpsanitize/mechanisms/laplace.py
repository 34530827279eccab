"""The multivariate Laplace mechanism (baseline).

For an input word w: v uniform on the unit sphere (a normalised standard normal), radius
r ~ Gamma(shape n, scale 1/eps), y = phi(w) + r v, output the word of W nearest to y (w allowed).
The noise density is proportional to exp(-eps ||z||), which gives eps-metric-DP in the Euclidean
metric. Decoding y is post-processing: with ``decoder="exact"`` (default) it is the exact nearest
word; ``decoder="annoy"`` uses the Annoy index (approximate: costs utility, never privacy).

Example::

    mech = MultivariateLaplace(epsilon=20.0, store=store)
    mech.perturb(ids, rng)

References
----------
Feyisetan, Balle, Drake, Diethe. "Privacy- and utility-preserving textual analysis via calibrated
multivariate perturbations." WSDM 2020, Section 3 (sampling) and Theorem 1.
"""

from __future__ import annotations

import numpy as np

from .. import privacy
from ..errors import CalibrationError, InvalidParameter
from ..privacy import Guarantee
from .base import ALL_PAIRS, Mechanism, check_range, euclidean_metric, open_uniform

# Below the epsilon where the expected noise radius is this many vocabulary diameters, every
# pair of words is already indistinguishable to within exp(n * 1e-6), and float64 can no longer
# tell the noisy point's neighbours apart: such an epsilon is refused rather than computed wrongly.
MAX_NOISE_PER_DIAMETER = 1e6
# The largest delta per word a truncation may cost unless the user raises it: beyond it the
# output is too far (in total variation) from the private mechanism to call it one.
DEFAULT_MAX_DELTA = 0.05


def unit_directions(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """n directions uniform on the unit sphere in R^dim."""
    g = rng.standard_normal((n, dim))
    norm = np.sqrt(np.einsum("ij,ij->i", g, g))
    zero = norm == 0.0
    while zero.any():  # probability 0 in exact arithmetic; keep it exact anyway
        g[zero] = rng.standard_normal((int(zero.sum()), dim))
        norm[zero] = np.sqrt(np.einsum("ij,ij->i", g[zero], g[zero]))
        zero = norm == 0.0
    return g / norm[:, None]


def check_device(device: str, decoder: str, store) -> str:
    """``device`` if valid; opens the GPU decoder now, so a missing GPU fails before any work."""
    if device not in ("cpu", "cuda"):
        raise InvalidParameter("device must be 'cpu' or 'cuda'")
    if device == "cuda":
        if decoder != "exact":
            raise InvalidParameter("--device cuda decodes exactly; leave out --decoder annoy")
        store.gpu_brute_force  # noqa: B018 - opened for its errors (exit 78)
    return device


class MultivariateLaplace(Mechanism):
    """Spherical noise with density proportional to exp(-eps ||z||), nearest-word decoding.

    Parameters
    ----------
    epsilon : float
        Privacy parameter per word, per unit of Euclidean distance.
    store : IndexStore
        Vectors and the nearest-word search.
    decoder : {"exact", "annoy"}
        How the noisy vector is decoded (post-processing).
    device : {"cpu", "cuda"}
        Where exact decoding scores the vocabulary (:mod:`dpsanitize.gpu`); the output is the
        same on either, bit for bit. The noise is always drawn on the CPU.
    search_k : int, optional
        Annoy's search_k when ``decoder="annoy"``.
    truncate : float, optional
        Draw the noise radius from Gamma(n, 1/eps) conditioned on radius <= truncate (the
        seed's distance-based truncation). This is NOT pure metric DP: the mechanism is then
        delta = Pr[Gamma(n, 1/eps) > truncate] away (in total variation) from the exact one,
        and two words at distance d are (eps*d, exp(eps*d)*delta/(1-delta))-indistinguishable.
    truncate_delta : float, optional
        Pick ``truncate`` so that delta is this (instead of giving the radius).
    """

    name = "laplace"
    reference = "Feyisetan et al., WSDM 2020 (multivariate Laplace)"
    decode_k = 1

    def __init__(self, *, epsilon: float, store, decoder: str = "exact", search_k: int | None = None,
                 truncate: float | None = None, truncate_delta: float | None = None,
                 max_delta: float = DEFAULT_MAX_DELTA, device: str = "cpu"):
        super().__init__(epsilon=epsilon, store=store)
        if decoder not in ("exact", "annoy"):
            raise InvalidParameter("decoder must be 'exact' or 'annoy'")
        self.device = check_device(device, decoder, store)
        if search_k is not None and int(search_k) < 1:
            raise InvalidParameter("search_k must be >= 1")
        self.decoder, self.search_k = decoder, search_k
        self.dim = store.vocab.dim
        self.max_delta = check_range("--max-delta", max_delta, 0.0, 1.0)
        self.truncate, self.delta = None, 0.0
        self.truncate, self.delta = self._truncation(truncate, truncate_delta)
        low = self.smallest_epsilon()
        if self.epsilon < low:
            raise CalibrationError(
                f"--eps {self.epsilon:g} is below the smallest supported value {low:.3g} for "
                f"{self.name} noise on this vocabulary (dimension {self.dim}, d_max {store.d_max:.4g}): "
                f"the expected noise would exceed {MAX_NOISE_PER_DIAMETER:g} times the "
                f"vocabulary's diameter, where the output no longer depends on the input word; "
                f"use --eps {low:.3g} or more")

    def _truncation(self, radius, delta):
        """(R, delta) from either one; (None, 0.0) without truncation."""
        from scipy import stats

        if radius is not None and delta is not None:
            raise InvalidParameter("give --truncate or --truncate-delta, not both")
        law = stats.gamma(self.dim, scale=1.0 / self.epsilon)
        if delta is not None:
            delta = check_range("--truncate-delta", delta, 0.0, 1.0, open_low=True,
                                open_high=True)
            radius = float(law.isf(delta))
        elif radius is not None:
            radius = check_range("--truncate", radius, 0.0, float("inf"), open_low=True,
                                 open_high=True)
            delta = float(law.sf(radius))
        else:
            return None, 0.0
        if not (radius > 0 and delta < 1):
            raise InvalidParameter("the truncation keeps no noise at this epsilon; use a larger "
                                   "--truncate or a smaller --truncate-delta")
        if delta > self.max_delta:
            raise InvalidParameter(
                f"--truncate {radius:.6g} at --eps {self.epsilon:g} gives delta = {delta:.3g} "
                f"per word, above --max-delta {self.max_delta:g}: the output would be that far "
                f"(in total variation) from the private mechanism. --truncate "
                f"{float(law.isf(self.max_delta)):.6g} or more meets the limit (or raise "
                f"--max-delta if you accept a larger delta)")
        self.name = "laplace (truncated)"
        return radius, delta

    def make_guarantee(self) -> Guarantee:
        if self.truncate is None:
            return super().make_guarantee()
        eps = f"{self.epsilon:g}"
        claim = (f"NOT pure metric DP: the noise radius is truncated at R = {self.truncate:.6g}, "
                 f"so the output is delta = Pr[Gamma(n, 1/{eps}) > R] = {self.delta:.3g} away "
                 f"(total variation) from the {eps}-metric-DP Laplace mechanism, and two words "
                 f"at distance d are ({eps}*d, exp({eps}*d)*delta/(1-delta))-indistinguishable")
        return Guarantee(privacy.APPROXIMATE, self.epsilon, euclidean_metric(self.store), claim,
                         ALL_PAIRS, self.unit, delta=self.delta)

    @property
    def noise_gain(self) -> float:
        """Largest factor by which the noise shape stretches a radius (1 for spherical noise)."""
        return 1.0

    def smallest_epsilon(self) -> float:
        """The smallest epsilon computed faithfully (see MAX_NOISE_PER_DIAMETER)."""
        return self.dim * self.noise_gain / (MAX_NOISE_PER_DIAMETER * self.store.d_max)

    def params(self) -> dict:
        extra = {"truncate": self.truncate, "delta": self.delta,
                 "max_delta": self.max_delta} if self.truncate else {}
        return {"decoder": self.decoder, **extra}

    def calibration(self) -> dict:
        info = {**super().calibration(), "dim": self.dim, "epsilon_min": self.smallest_epsilon(),
                "expected_noise_norm": self.expected_radius()}
        if self.truncate is not None:
            info["untruncated_noise_norm"] = self.dim / self.epsilon
        return info

    def expected_radius(self) -> float:
        """E[r]: n/eps, or E[r | r <= R] = (n/eps) P(n+1, eps R) / P(n, eps R) when truncated."""
        if self.truncate is None:
            return self.dim / self.epsilon
        from scipy.special import gammainc

        x = self.epsilon * self.truncate
        return self.dim / self.epsilon * float(gammainc(self.dim + 1, x) / gammainc(self.dim, x))

    def radii(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n noise radii: Gamma(dim, 1/eps), conditioned on <= R when truncated (by the
        inverse CDF on [0, R], never by rejection)."""
        if self.truncate is None:
            return rng.gamma(self.dim, 1.0 / self.epsilon, n)
        from scipy.special import gammainc, gammaincinv

        top = gammainc(self.dim, self.epsilon * self.truncate)  # F(R)
        u = open_uniform(rng, n) * top
        return np.minimum(gammaincinv(self.dim, u) / self.epsilon, self.truncate)

    def noise(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n noise vectors z with density proportional to exp(-eps ||z||) (on ||z|| <= R)."""
        radius = self.radii(rng, n)
        return unit_directions(rng, n, self.dim) * radius[:, None]

    def noisy_points(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.store.x64[ids] + self.noise(rng, len(ids))

    def decode(self, y: np.ndarray, ids: np.ndarray, k: int = 1):
        return self.store.nearest(y, ids, k, decoder=self.decoder, search_k=self.search_k,
                                  device=self.device)

    def perturb(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return ids.copy()
        nearest, _ = self.decode(self.noisy_points(ids, rng), ids, 1)
        return nearest[:, 0]
