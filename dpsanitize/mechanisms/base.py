"""What every word-substitution mechanism is: a validated, keyword-only object with a privacy map.

A mechanism maps a batch of vocabulary ids to a batch of vocabulary ids (``perturb``), drawing all
randomness from the ``numpy.random.Generator`` it is given. Its constructor validates every
parameter (``InvalidParameter`` says the allowed range) and ``privacy_statement()`` says what the
output guarantees, in which unit, and how it composes over a line.

Example::

    mech = TruncatedGumbel(epsilon=120.0, store=store)
    out = mech.perturb(np.array([3, 17, 17]), rng)
    mech.privacy_statement()["guarantee"]
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar

import numpy as np

from .. import privacy
from ..errors import InvalidParameter
from ..privacy import METRIC_UNIT


def check_epsilon(epsilon) -> float:
    """A finite, strictly positive float, or InvalidParameter."""
    try:
        eps = float(epsilon)
    except (TypeError, ValueError):
        raise InvalidParameter("epsilon must be a number") from None
    if not (math.isfinite(eps) and eps > 0):
        raise InvalidParameter("epsilon must be a finite number greater than 0")
    return eps


def check_range(name: str, value, low: float, high: float, *, open_low=False, open_high=False) -> float:
    """``value`` as float inside [low, high] (ends open as asked), or InvalidParameter."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidParameter(f"{name} must be a number") from None
    ok = math.isfinite(x) and (x > low if open_low else x >= low) and (x < high if open_high else x <= high)
    if not ok:
        raise InvalidParameter(
            f"{name} must be in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}")
    return x


class Mechanism(abc.ABC):
    """Base class of word-level mechanisms (diffprivlib style: validate eagerly, state guarantees).

    Subclasses set ``name``, ``unit``, ``guarantee`` (a sentence with ``{eps}``) and
    ``reference``, and implement :meth:`perturb`.
    """

    name: ClassVar[str]
    unit: ClassVar[str] = METRIC_UNIT
    guarantee: ClassVar[str] = ("{eps}-metric-DP: Pr[M(w)=y] <= exp({eps}*d(w,w'))*Pr[M(w')=y] "
                                "for all words w, w', y; d is Euclidean distance in the embedding space")
    reference: ClassVar[str] = ""
    metric: ClassVar[bool] = True  # the bound scales with d(w, w')
    recipe: tuple[str, dict] | None = None  # (name, options), set by mechanisms.create

    def __init__(self, *, epsilon: float, store):
        self.epsilon = check_epsilon(epsilon)
        self.store = store
        self.vocab_size = len(store.vocab)

    @abc.abstractmethod
    def perturb(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Map vocabulary ids to vocabulary ids, independently per position."""

    def params(self) -> dict:
        """Parameters besides epsilon, for ``__repr__`` and reports."""
        return {}

    def calibration(self) -> dict:
        """What the mechanism will do at this epsilon (``dpsanitize calibrate``)."""
        return {"mechanism": self.name, "epsilon": self.epsilon, "vocab_size": self.vocab_size,
                "d_min": self.store.d_min, "d_max": self.store.d_max, **self.params()}

    def probabilities(self, i: int) -> np.ndarray | None:
        """Exact output distribution of word ``i`` over W when it has a closed form, else None."""
        return None

    @classmethod
    def describe(cls) -> dict:
        """The guarantee with epsilon left symbolic (``dpsanitize mechanisms``)."""
        from . import EPSILON_GUIDE

        return {"name": cls.name, "guarantee": cls.guarantee.format(eps="eps"), "unit": cls.unit,
                "reference": cls.reference, "typical_epsilon": "; ".join(EPSILON_GUIDE[cls.name])}

    def privacy_statement(self) -> dict:
        """The guarantee at this epsilon, its unit and its composition (see :mod:`..privacy`)."""
        return privacy.statement(self)

    def __repr__(self) -> str:  # never tokens or RNG state
        extra = "".join(f", {k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}(epsilon={self.epsilon!r}{extra})"


def open_uniform(rng: np.random.Generator, shape) -> np.ndarray:
    """Uniforms in the open interval (0, 1), safe to take logs of."""
    u = rng.random(shape)
    np.maximum(u, 2.0**-53, out=u)
    return u


def gumbel(rng: np.random.Generator, shape, scale: float) -> np.ndarray:
    """Gumbel(0, scale) noise (CDF exp(-exp(-x/scale)))."""
    u = open_uniform(rng, shape)
    return -scale * np.log(-np.log(u))
