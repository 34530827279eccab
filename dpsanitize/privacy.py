"""Privacy statements and accounting: what a mechanism's output guarantees, over a word and a line.

Works on any object with ``name``, ``epsilon``, ``unit``, ``guarantee``, ``metric``,
``reference`` and ``params()`` (every registered mechanism), so it imports nothing.

Example::

    statement(mech)["per_line_composition"]
    per_line_bound(mech, max_words=12, d_max=store.d_max)["worst_case_log_ratio"]
"""

from __future__ import annotations

METRIC_UNIT = "per word, per unit of Euclidean distance between word vectors"

RELEASED_AS_IS = ("line count, line lengths in words, punctuation, whitespace and line endings; "
                  "out-of-vocabulary words only with --oov keep")
NO_GUARANTEE = "no formal guarantee: approximate sampling"
REPEATED_RUNS = "each run over the same text is a new release; the bounds add up"


def statement(mech) -> dict:
    """The guarantee at this epsilon, its unit, how it composes over a line and over runs."""
    eps = f"{mech.epsilon:g}"
    if getattr(mech, "experimental", False):
        line = NO_GUARANTEE
    elif mech.metric:
        line = (f"two lines of n in-vocabulary words, differing word for word (w_i vs w'_i), "
                f"are distinguishable by at most a factor exp({eps} * sum_i d(w_i, w'_i))")
    else:
        line = (f"two lines of n in-vocabulary words are distinguishable by at most a factor "
                f"exp({eps} * k), k the number of positions that differ, provided every "
                f"differing pair of words shares a group (otherwise there is no bound)")
    delta = getattr(mech, "delta", 0.0)
    if delta:  # a truncated mechanism: each differing word adds its own delta
        line += (f", plus an additive sum_i exp({eps} * d(w_i, w'_i)) * {delta:.3g} / "
                 f"(1 - {delta:.3g}) (the deltas of the differing words add up)")
    return {
        "mechanism": mech.name, "epsilon": mech.epsilon, "unit": mech.unit,
        "guarantee": mech.guarantee.format(eps=eps), "per_line_composition": line,
        "released_as_is": RELEASED_AS_IS, "repeated_runs": REPEATED_RUNS,
        "parameters": mech.params(), "reference": mech.reference,
    }


def per_line_bound(mech, max_words: int, d_max: float) -> dict:
    """The worst case, over a run's lines, of the per-line composition bound."""
    if getattr(mech, "experimental", False):
        return {"rule": NO_GUARANTEE, "max_words_per_line": max_words}
    if mech.metric:
        return {"rule": "exp(eps * sum_i d(w_i, w'_i)) for two lines differing word for word",
                "max_words_per_line": max_words,
                "worst_case_log_ratio": mech.epsilon * max_words * d_max,
                "note": "worst case: every word replaced by the farthest word (distance d_max)"}
    return {"rule": "exp(eps * k) for two lines differing in k positions", "max_words_per_line":
            max_words, "worst_case_log_ratio": mech.epsilon * max_words}
