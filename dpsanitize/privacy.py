"""What a run promises: the ``Guarantee`` a mechanism owns, and the statements rendered from it.

Every mechanism builds one :class:`Guarantee` (in the spirit of OpenDP's privacy maps): its kind,
epsilon and delta per word, the metric it is stated in (with that metric's diameter over W),
which pairs of words it covers, and the bound it gives between two words and over a line.
Reports, summaries and the docs are rendered from it alone; nothing else decides what a run
promises. This module imports nothing from the package.

Example::

    g = mechanism.guarantee
    g.pair_bound(3, 17)            # (log-ratio bound, delta) or None where the pair is not covered
    g.line_bound(12)["worst_case_log_ratio"]
    statement(g, formats={"text"})["released_as_is"]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

# The kinds of guarantee, by what a bound between two words looks like.
METRIC_DP = "metric-dp"  # Pr[M(w)=y] <= exp(eps d(w,w')) Pr[M(w')=y] for all pairs
APPROXIMATE = "approximate-metric-dp"  # the same plus an additive delta(d) per pair
WITHIN_GROUPS = "dp-within-groups"  # Pr[M(w)=y] <= exp(eps) Pr[M(w')=y] for pairs of a group
CONDITIONAL = "conditional-metric-dp"  # metric DP between the words of one class only
NONE = "none"  # no formal guarantee
KINDS = (METRIC_DP, APPROXIMATE, WITHIN_GROUPS, CONDITIONAL, NONE)

NO_GUARANTEE = "no formal guarantee: approximate sampling"
REPEATED_RUNS = ("each run over the same text is a new release: the bounds add up (basic "
                 "composition); keep a --ledger to account for them")

# What leaves a run unprotected, per input format. Rendered into every report and the docs
# (docs/guarantee.md is tested against these strings).
RELEASED_AS_IS = {
    "common": (
        "the number of lines (records) and the number and positions of word tokens in each",
        "punctuation, whitespace, line endings and every other non-word byte",
        "the exact bytes, and so the casing, of every word the mechanism left unchanged",
        "the case shape (lower, Title, UPPER) of every replaced word",
        "split-off clitics (n't, 's, 'm, 're, 've, 'll, 'd) and standalone clitics",
        "the positions of out-of-vocabulary words (masked with --oov mask, replaced by a "
        "random word with --oov random, copied unprotected with --oov keep)",
    ),
    "text": (),
    "csv": (
        "every column not named by --column, the header, the quoting of each field and the "
        "number of fields of each record",
    ),
    "tsv": (
        "every column not named by --column, the header and the number of fields of each record",
    ),
    "jsonl": (
        "every key not named by --column, key order, spacing, escapes, blank lines, and values "
        "of named keys that are not strings",
    ),
    "parquet": (
        "every column not named by --column, the schema and the file's metadata, the number and "
        "sizes of row groups, and which values of the named columns are null",
    ),
}


def released_as_is(formats=("text",)) -> list[str]:
    """Everything released unprotected by a run over inputs of these formats."""
    items = list(RELEASED_AS_IS["common"])
    for name in sorted(set(formats) - {"text"}):
        items.extend(RELEASED_AS_IS.get(name, ()))
    return items


@dataclass(frozen=True)
class Metric:
    """The distance a guarantee is stated in, with its largest value over W.

    ``distance(a, b)`` takes two arrays of word ids and returns the float64 distances.
    """

    name: str  # euclidean, mahalanobis, list, groups
    description: str
    diameter: float
    params: dict = field(default_factory=dict)
    distance: Callable | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict:
        return {"name": self.name, **self.params, "diameter": self.diameter,
                "description": self.description}

    def key(self) -> str:
        """The identity of the metric for accounting: name and parameters."""
        extra = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in sorted(self.params.items()))
        return f"{self.name}({extra})" if extra else self.name


@dataclass(frozen=True)
class Guarantee:
    """What one application of a mechanism to one word guarantees.

    ``covered(a, b)`` says for arrays of word ids which pairs the bound covers (None: all).
    ``claim`` is the one-sentence statement; ``reason`` says why uncovered pairs (or a kind
    ``none``) have no bound.
    """

    kind: str
    epsilon: float
    metric: Metric
    claim: str
    covers: str
    unit: str
    delta: float = 0.0
    reason: str = ""
    covered: Callable | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown guarantee kind {self.kind!r}")
        if (self.delta > 0) != (self.kind == APPROXIMATE):
            raise ValueError("delta > 0 exactly for approximate guarantees")

    def as_dict(self) -> dict:
        """The report's top-level ``guarantee`` object."""
        return {"kind": self.kind, "epsilon": self.epsilon, "delta": self.delta,
                "metric": self.metric.as_dict(), "covers": self.covers, "statement": self.claim}

    def pair_bounds(self, a, b):
        """``(log_ratio, delta, covered)`` arrays for word pairs ``(a[i], b[i])``: the claim
        Pr[M(a) in S] <= exp(log_ratio) Pr[M(b) in S] + delta for every set S of outputs, where
        ``covered``. For an approximate guarantee ``self.delta`` is the total variation distance
        to a pure mechanism and a pair's DP delta is exp(eps d) delta / (1 - delta)."""
        import numpy as np

        a, b = np.atleast_1d(np.asarray(a, dtype=np.int64)), np.atleast_1d(np.asarray(b))
        if self.kind == NONE:
            nan = np.full(len(a), np.nan)
            return nan, nan, np.zeros(len(a), dtype=bool)
        d = self.metric.distance(a, b)
        covered = np.ones(len(a), dtype=bool) if self.covered is None else self.covered(a, b)
        log_ratio = self.epsilon * d
        delta = np.zeros(len(a))
        if self.kind == APPROXIMATE:
            # The truncated law is delta (total variation) from a pure one: see delta_of_pair.
            delta = np.exp(log_ratio) * self.delta / (1.0 - self.delta)
        return log_ratio, delta, covered

    def pair_bound(self, a: int, b: int):
        """``(log_ratio, delta)`` for one pair, or None where the guarantee does not cover it."""
        log_ratio, delta, covered = self.pair_bounds([a], [b])
        return (float(log_ratio[0]), float(delta[0])) if covered[0] else None

    def line_bound(self, max_words: int) -> dict:
        """The worst case, over two lines of ``max_words`` words differing word for word, of
        the composed bound (basic composition); ``worst_case_log_ratio`` None where no finite
        bound exists, with the reason."""
        eps, diameter = self.epsilon, self.metric.diameter
        out = {"rule": self.line_rule(), "max_words_per_line": max_words,
               "metric": self.metric.name, "diameter": diameter}
        if self.kind == NONE:
            return {**out, "rule": NO_GUARANTEE, "worst_case_log_ratio": None,
                    "reason": self.reason}
        worst = eps * max_words * diameter
        if self.kind in (WITHIN_GROUPS, CONDITIONAL):
            return {**out, "worst_case_log_ratio": None, "reason": self.reason,
                    "covered_log_ratio": worst,
                    "note": f"covered_log_ratio holds for two lines whose differing words are "
                            f"covered pairs ({self.covers})"}
        out["worst_case_log_ratio"] = worst
        out["note"] = (f"worst case: every word replaced by the farthest word of W "
                       f"({self.metric.name} diameter {diameter:.6g})")
        if self.kind == APPROXIMATE:
            per_pair = _approximate_delta(eps * diameter, self.delta)
            line_delta = min(1.0, max_words * per_pair)
            out["delta_per_word"] = self.delta
            out["delta_is"] = ("the total variation distance of one word's output to the pure "
                               "mechanism's; a pair at distance d gets DP delta "
                               "exp(eps d) delta / (1 - delta)")
            out["worst_case_delta"] = line_delta
            out["bounded_below_distance"] = self.bounded_below()
            if line_delta >= 1.0:
                out["note"] += ("; the composed delta reaches 1 at this line length, so the "
                                "worst case promises nothing for the farthest pairs")
        return out

    def bounded_below(self) -> float:
        """The distance below which a pair's DP delta stays under 1 (approximate guarantees)."""
        return math.log((1.0 - self.delta) / self.delta) / self.epsilon

    def line_rule(self) -> str:
        """How the per-word bound composes over a line, in one sentence."""
        eps = f"{self.epsilon:g}"
        if self.kind == NONE:
            return NO_GUARANTEE
        if self.kind == WITHIN_GROUPS:
            return (f"two lines of n in-vocabulary words are distinguishable by at most a factor "
                    f"exp({eps} * k), k the number of positions that differ, provided every "
                    f"differing pair of words shares a group (otherwise there is no bound)")
        line = (f"two lines of in-vocabulary words, differing word for word (w_i vs w'_i), are "
                f"distinguishable by at most a factor exp({eps} * sum_i d(w_i, w'_i)), d the "
                f"{self.metric.description}")
        if self.kind == CONDITIONAL:
            line += f", provided every differing pair is covered ({self.covers})"
        if self.kind == APPROXIMATE:
            line += (f", plus an additive sum_i exp({eps} * d(w_i, w'_i)) * {self.delta:.3g} / "
                     f"(1 - {self.delta:.3g}) (the deltas of the differing words add up)")
        return line


def _approximate_delta(log_ratio: float, delta: float) -> float:
    """exp(log_ratio) * delta / (1 - delta) without overflow (inf when it is astronomically large)."""
    exponent = log_ratio + math.log(delta) - math.log1p(-delta)
    return math.exp(exponent) if exponent < 700 else math.inf


def statement(guarantee: Guarantee, *, mechanism: str, parameters: dict, reference: str,
              formats=("text",)) -> dict:
    """The privacy statement of a run: the guarantee, its unit, composition, what is released."""
    records = any(f != "text" for f in formats)
    unit = ("a record: the --column fields of one row (CSV/TSV/Parquet) or JSON line together "
            "(the 'lines' counts are records)") if records else "a line of text"
    return {
        "mechanism": mechanism, "epsilon": guarantee.epsilon,
        "unit": guarantee.unit + (f"; the per-line budget is spent per {unit}" if records else ""),
        "kind": guarantee.kind, "delta": guarantee.delta,
        "guarantee": guarantee.claim, "per_line_composition": guarantee.line_rule(),
        "privacy_unit": unit,
        "released_as_is": "; ".join(released_as_is(formats)),
        "repeated_runs": REPEATED_RUNS, "parameters": parameters, "reference": reference,
    }


def summary_phrase(guarantee: dict) -> str:
    """A report's ``guarantee`` object in a few words, for the one-line summary of a run."""
    kind, metric = guarantee["kind"], guarantee["metric"]["name"]
    if kind == NONE:
        return NO_GUARANTEE.upper()
    if kind == APPROXIMATE:
        delta, eps = guarantee["delta"], guarantee["epsilon"]
        reach = math.log((1.0 - delta) / delta) / eps
        return (f"APPROXIMATE guarantee, NOT pure DP: delta={delta:.3g} per word (total "
                f"variation to the pure mechanism); pairs farther apart than {reach:.3g} "
                f"({metric}) have no bound")
    if kind == WITHIN_GROUPS:
        return "plain DP within groups only"
    if kind == CONDITIONAL:
        return f"metric DP only between {guarantee['covers']}"
    return f"metric DP ({metric})"
