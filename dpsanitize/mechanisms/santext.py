"""SanText and SanText+: the exponential mechanism over the whole vocabulary.

SanText outputs y with probability proportional to exp(-eps d(w, y) / 2) over all of W.
SanText+ splits W by public frequency rank: the least frequent fraction s is *sensitive*. A
sensitive word is resampled from the sensitive set (probability proportional to
exp(-eps d / 2) over that set); a non-sensitive word is kept with probability 1 - p and otherwise
resampled in the same way. Sampling is exact and never holds a |W| x |W| matrix (see
:mod:`.sampling`).

Example::

    SanText(epsilon=4.0, store=store).perturb(ids, rng)
    SanTextPlus(epsilon=4.0, store=store, santext_sensitive=0.9, santext_p=0.3)

References
----------
Yue, Du, Wang, Li, Sun, Chow. "Differential privacy for text analytics via natural text
sanitization." Findings of ACL 2021, Section 3 (SanText, Eq. 1) and 4 (SanText+).
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import InvalidParameter
from .. import privacy
from ..privacy import Guarantee
from .base import Mechanism, check_range, euclidean_metric
from .sampling import ExpSampler

log = logging.getLogger("dpsanitize")


def _sensitive_table(store, first: int) -> dict:
    """Every word's exact nearest words within the sensitive set (computed once, cached)."""
    from ..geometry import knn_table

    log.info("santext+: finding each word's nearest sensitive words (one-off, cached)")
    ids, dists = knn_table(store.vocab.vectors, store.k_max, first=first)
    return {"ids": ids, "dists": dists}


class SanText(Mechanism):
    """Exponential mechanism with utility -d(w, y) over all of W, exact sampling."""

    name = "santext"
    reference = "Yue et al., Findings of ACL 2021 (SanText)"

    def __init__(self, *, epsilon: float, store):
        super().__init__(epsilon=epsilon, store=store)
        self.sampler = ExpSampler(store, self.epsilon)

    def perturb(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.sampler.sample(np.asarray(ids, dtype=np.int64), rng)

    def probabilities(self, i: int) -> np.ndarray:
        return self.sampler.probabilities(i)

    def probability_rows(self, ids) -> np.ndarray:
        return self.sampler.probability_rows(ids)


class SanTextPlus(Mechanism):
    """SanText restricted to a public sensitive set, with non-sensitive words mostly kept.

    Parameters
    ----------
    santext_sensitive : float in (0, 1]
        Fraction of W, the least frequent words, treated as sensitive.
    santext_p : float in [0, 1]
        Probability that a non-sensitive word is resampled (else it is kept).
    """

    name = "santext+"
    unit = "per word, per unit of Euclidean distance, between two sensitive words only"
    claim = ("{eps}-metric-DP between two sensitive words only (Euclidean distance): "
             "Pr[M(w)=y] <= exp({eps}*d(w,w'))*Pr[M(w')=y] when w and w' are both sensitive; a "
             "non-sensitive word is kept with probability at least 1-p while every other word "
             "outputs only sensitive words, so pairs with a non-sensitive word have no bound "
             "(unless p = 1 or every word is sensitive: then all pairs are covered)")
    reference = "Yue et al., Findings of ACL 2021 (SanText+)"

    def __init__(self, *, epsilon: float, store, santext_sensitive: float = 0.9,
                 santext_p: float = 0.3):
        super().__init__(epsilon=epsilon, store=store)
        self.sensitive = check_range("--santext-sensitive", santext_sensitive, 0.0, 1.0,
                                     open_low=True)
        self.p = check_range("--santext-p", santext_p, 0.0, 1.0)
        n_sensitive = int(round(self.sensitive * self.vocab_size))
        if n_sensitive < 1:
            raise InvalidParameter("--santext-sensitive leaves no sensitive word; raise it")
        self.first_sensitive = first = self.vocab_size - n_sensitive
        table = None
        if first > 0:
            table = store.derived(f"neighbors-from-{first}", lambda: _sensitive_table(store, first),
                                  lambda a: a["ids"].shape[0] == self.vocab_size)
            table = (table["ids"], table["dists"])
        self.sampler = ExpSampler(store, self.epsilon, first=first, table=table)

    def params(self) -> dict:
        return {"sensitive_fraction": self.sensitive, "p": self.p,
                "first_sensitive_rank": self.first_sensitive}

    def make_guarantee(self) -> Guarantee:
        first = self.first_sensitive
        if first == 0 or self.p == 1.0:  # every word resampled from the sensitive set
            return Guarantee(privacy.METRIC_DP, self.epsilon, euclidean_metric(self.store),
                             self.claim.format(eps=f"{self.epsilon:g}"), "every pair of words",
                             self.unit)

        def both_sensitive(a, b):
            return (np.asarray(a) >= first) & (np.asarray(b) >= first)

        covers = (f"pairs of sensitive words (the {self.vocab_size - first} least frequent "
                  f"words of W, ranks {first} and up)")
        return Guarantee(privacy.CONDITIONAL, self.epsilon, euclidean_metric(self.store),
                         self.claim.format(eps=f"{self.epsilon:g}"), covers, self.unit,
                         reason="a non-sensitive word is kept with probability 1-p while a "
                                "sensitive word never outputs a non-sensitive one, so a line "
                                "with a non-sensitive word has no finite bound",
                         covered=both_sensitive)

    def perturb(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        resample = (ids >= self.first_sensitive) | (rng.random(len(ids)) < self.p)
        out = ids.copy()
        out[resample] = self.sampler.sample(ids[resample], rng)
        return out

    def probabilities(self, i: int) -> np.ndarray:
        q = self.sampler.probabilities(i)
        if i >= self.first_sensitive:
            return q
        p = self.p * q
        p[i] += 1.0 - self.p
        return p

    def probability_rows(self, ids) -> np.ndarray:
        rows = self.sampler.probability_rows(ids)
        for r, i in enumerate(np.asarray(ids).tolist()):
            if i < self.first_sensitive:  # as probabilities(i)
                rows[r] *= self.p
                rows[r, i] += 1.0 - self.p
        return rows
