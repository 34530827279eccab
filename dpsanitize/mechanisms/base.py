"""What every word-substitution mechanism is: a validated, keyword-only object with a privacy map.

A mechanism maps a batch of vocabulary ids to a batch of vocabulary ids (``perturb``), drawing all
randomness from the ``numpy.random.Generator`` it is given. Its constructor validates every
parameter (``InvalidParameter`` says the allowed range), it owns its :class:`..privacy.Guarantee`
(``guarantee``: what one word's output promises, in which metric, for which pairs) and its
:class:`Recipe` (``recipe``: what another process needs to build the same mechanism).

Example::

    mech = TruncatedGumbel(epsilon=120.0, store=store)
    out = mech.perturb(np.array([3, 17, 17]), rng)
    mech.guarantee.pair_bound(3, 17)
"""

from __future__ import annotations

import abc
import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import privacy
from ..errors import InvalidParameter
from ..privacy import Guarantee, Metric

EUCLIDEAN_UNIT = "per word, per unit of Euclidean distance between word vectors"
EUCLIDEAN_CLAIM = ("{eps}-metric-DP: Pr[M(w)=y] <= exp({eps}*d(w,w'))*Pr[M(w')=y] for all words w, "
                   "w', y; d is Euclidean distance in the embedding space")
ALL_PAIRS = "every pair of words of W"


@dataclass(frozen=True)
class Recipe:
    """A picklable description of a mechanism: name, epsilon, options and the index it was made
    for. ``build(store)`` is the one place a mechanism is rebuilt (worker processes, Dask).

    Example::

        recipe = mech.recipe
        same = recipe.build(load_entry(store_path))
    """

    name: str
    epsilon: float
    options: tuple  # sorted (name, value) pairs, as given to the constructor
    index_key: str

    def build(self, store):
        from ..errors import ResourceError
        from . import mechanism_class

        if store.manifest["key"] != self.index_key:
            raise ResourceError("a worker opened another index than the one the mechanism was "
                                "made for (other embeddings file?)")
        return mechanism_class(self.name)(epsilon=self.epsilon, store=store, **dict(self.options))


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

    Subclasses set ``name``, ``unit``, ``claim`` (the guarantee in a sentence, with ``{eps}``)
    and ``reference``, implement :meth:`perturb`, and override :meth:`make_guarantee` when
    theirs is not pure Euclidean metric DP over all pairs.
    """

    name: ClassVar[str]
    unit: ClassVar[str] = EUCLIDEAN_UNIT
    claim: ClassVar[str] = EUCLIDEAN_CLAIM
    reference: ClassVar[str] = ""
    experimental: ClassVar[bool] = False  # no formal guarantee: runs only when asked for

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        # What the constructor was given is what another process needs to build it again.
        self._options = {k: v for k, v in kwargs.items() if k not in ("epsilon", "store")}
        return self

    def __init__(self, *, epsilon: float, store):
        self.epsilon = check_epsilon(epsilon)
        self.store = store
        self.vocab_size = len(store.vocab)

    @property
    def recipe(self) -> Recipe:
        return Recipe(type(self).name, self.epsilon, tuple(sorted(self._options.items())),
                      self.store.manifest["key"])

    @functools.cached_property
    def guarantee(self) -> Guarantee:
        """What one word's output promises (see :mod:`..privacy`)."""
        return self.make_guarantee()

    def make_guarantee(self) -> Guarantee:
        """Pure metric DP in the Euclidean metric, every pair of words covered."""
        return Guarantee(privacy.METRIC_DP, self.epsilon, euclidean_metric(self.store),
                         self.claim.format(eps=f"{self.epsilon:g}"), ALL_PAIRS, self.unit)

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

        return {"name": cls.name, "guarantee": cls.claim.format(eps="eps"), "unit": cls.unit,
                "reference": cls.reference, "typical_epsilon": "; ".join(EPSILON_GUIDE[cls.name])}

    def privacy_statement(self, formats=("text",)) -> dict:
        """The guarantee at this epsilon, its unit and its composition (see :mod:`..privacy`)."""
        return privacy.statement(self.guarantee, mechanism=self.name, parameters=self.params(),
                                 reference=self.reference, formats=formats)

    def __repr__(self) -> str:  # never tokens or RNG state
        extra = "".join(f", {k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}(epsilon={self.epsilon!r}{extra})"


def euclidean_metric(store) -> Metric:
    """Euclidean distance between word vectors; its diameter over W is the index's exact d_max."""
    def distance(a, b):
        from ..geometry import dist64

        x = store.vocab.vectors
        return dist64(x[np.asarray(a)], x[np.asarray(b)])

    return Metric("euclidean", "Euclidean distance between word vectors", float(store.d_max),
                  distance=distance)


def open_uniform(rng: np.random.Generator, shape) -> np.ndarray:
    """Uniforms in the open interval (0, 1), safe to take logs of."""
    u = rng.random(shape)
    np.maximum(u, 2.0**-53, out=u)
    return u


def gumbel(rng: np.random.Generator, shape, scale: float) -> np.ndarray:
    """Gumbel(0, scale) noise (CDF exp(-exp(-x/scale)))."""
    u = open_uniform(rng, shape)
    return -scale * np.log(-np.log(u))
