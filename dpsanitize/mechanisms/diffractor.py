"""1-Diffractor: the vocabulary ordered into lists, a word's position moved by geometric noise.

The lists (computed once per index and cached beside it): list l starts at vocabulary id
l * floor(|W| / L); from the current word the walk moves to the nearest word not yet in the list
among the current word's 64 exact nearest neighbours (ties: lower id); when all 64 are already in
the list it continues from the lowest id not yet in the list. Every list is a permutation of W.

The mechanism picks one of the L lists uniformly, takes the word's position i in it, draws k
with Pr[k] proportional to exp(-eps |k|) (k an integer: zero with probability tanh(eps/2), else
a random sign times 1 + a geometric variable) and outputs the word at position
min(max(i + k, 0), |W| - 1).

Guarantee: one list's law is a shift of the same two-sided geometric law (clipped tails are sums
of the same terms), so Pr[M(w)=y] <= exp(eps |pos(w) - pos(w')|) Pr[M(w')=y]; the mixture over L
lists is bounded by the worst list: d(w, w') = max_l |pos_l(w) - pos_l(w')|. The unit is one list
position, not a Euclidean distance (docs/diffractor.md says what one position is on the default
vocabulary).

Example::

    mech = Diffractor(epsilon=1.0, store=store, diffractor_lists=3)
    mech.perturb(ids, rng)
    mech.order[0][:10]          # the first ten words of list 0

References
----------
Meisenbacher, Chevli, Matthes. "1-Diffractor: Efficient and Utility-Preserving Text Obfuscation
Leveraging Word-Level Metric Differential Privacy." IWSPA 2024. The list rule here is the exact
one of issue #20 (64 exact neighbours, lowest unused id on a dead end, L start points in one
embedding), not the paper's code.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from .. import privacy
from ..errors import InvalidParameter
from ..geometry import dist64
from ..privacy import Guarantee, Metric
from .base import ALL_PAIRS, Mechanism

log = logging.getLogger("dpsanitize")

NEIGHBORS = 64  # how far the walk looks from the current word


def neighbor_table(store, k: int) -> np.ndarray:
    """Every word's k exact nearest other words (ties: lower id), nearest first."""
    if k <= store.k_max:
        return np.asarray(store.nbr_ids[:, :k])
    from ..geometry import knn_table

    return knn_table(store.vocab.vectors, k)[0]


def walk(table: np.ndarray, start: int) -> np.ndarray:
    """The list from ``start``: to the nearest unused word in the current word's row of
    ``table``, else to the lowest unused id. Returns the word ids in list order (int64)."""
    n = len(table)
    used = np.zeros(n, dtype=bool)
    order = np.empty(n, dtype=np.int64)
    lowest = 0  # every id below it is used
    cur = int(start)
    for t in range(n):
        order[t] = cur
        used[cur] = True
        row = table[cur]
        free = np.flatnonzero(~used[row])
        if len(free):
            cur = int(row[free[0]])
            continue
        while lowest < n and used[lowest]:
            lowest += 1
        cur = lowest
    return order


def build_lists(store, lists: int) -> np.ndarray:
    """The L lists as an (L, |W|) array of word ids in list order."""
    n = len(store.vocab)
    k = min(NEIGHBORS, n - 1)
    table = neighbor_table(store, k) if k > 0 else np.zeros((n, 0), dtype=np.int64)
    log.info("diffractor: ordering the vocabulary into %d list(s) (one-off, cached)", lists)
    step = n // lists
    return np.stack([walk(table, l * step) for l in range(lists)])


def two_sided_geometric(rng: np.random.Generator, size: int, epsilon: float,
                        cap: float = 2.0**53) -> np.ndarray:
    """Integers k with Pr[k] = (1-q)/(1+q) q^|k|, q = exp(-eps), |k| capped at ``cap`` (float64).

    One uniform U: k = 0 when U < (1-q)/(1+q) = tanh(eps/2), else the sign is the side of U
    above that; |k| = 1 + floor(E / eps) with E ~ Exp(1) (Pr[|k| > m | k != 0] = q^m). Capping
    |k| at the list length changes nothing once positions are clipped, and keeps a tiny eps
    (E / eps = inf) exact.
    """
    u = rng.random(size)
    with np.errstate(over="ignore"):
        m = 1.0 + np.minimum(np.floor(rng.standard_exponential(size) / epsilon), cap)
    keep = math.tanh(epsilon / 2.0)
    return np.where(u < keep, 0.0, np.where(u < (1.0 + keep) / 2.0, -m, m))


class Diffractor(Mechanism):
    """Two-sided geometric noise on a word's position in one of L greedy nearest-neighbour lists.

    Parameters
    ----------
    diffractor_lists : int
        Number of lists L (default 1); list l starts at id l * floor(|W| / L).
    """

    name = "diffractor"
    unit = ("per word, per list position: d(w,w') = max over the diffractor lists of "
            "|pos(w) - pos(w')| (not a Euclidean distance)")
    claim = ("{eps}-metric-DP in the list metric: Pr[M(w)=y] <= exp({eps}*d(w,w'))*Pr[M(w')=y] "
             "for all words w, w', y; d(w,w') is the largest |pos(w) - pos(w')| over the "
             "diffractor lists, a count of list positions that is not comparable with the "
             "Euclidean epsilon of other mechanisms")
    reference = ("Meisenbacher, Chevli, Matthes, 1-Diffractor, IWSPA 2024; lists built by the "
                 "exact rule of dpsanitize issue #20 (not the paper's code)")

    def __init__(self, *, epsilon: float, store, diffractor_lists: int = 1):
        super().__init__(epsilon=epsilon, store=store)
        if isinstance(diffractor_lists, bool) or int(diffractor_lists) != diffractor_lists \
                or int(diffractor_lists) < 1:
            raise InvalidParameter("--diffractor-lists must be an integer >= 1")
        self.lists = int(diffractor_lists)
        n, lists = self.vocab_size, self.lists
        if lists > n:
            raise InvalidParameter(f"--diffractor-lists must be at most the vocabulary size "
                                   f"({n})")

        def valid(a):
            order = a.get("order")
            return (order is not None and order.shape == (lists, n)
                    and all((np.bincount(row, minlength=n) == 1).all() for row in order))

        self.order = store.derived(f"diffractor-walk1-L{lists}-k{NEIGHBORS}",
                                   lambda: {"order": build_lists(store, lists)}, valid)["order"]
        self.pos = np.empty_like(self.order)
        rows = np.arange(lists)[:, None]
        self.pos[rows, self.order] = np.arange(n)
        self.q = math.exp(-self.epsilon)

    def params(self) -> dict:
        return {"lists": self.lists}

    def make_guarantee(self) -> Guarantee:
        pos = self.pos

        def distance(a, b):
            a = np.asarray(a).astype(np.int64)
            b = np.asarray(b).astype(np.int64)
            return np.abs(pos[:, a] - pos[:, b]).max(axis=0).astype(np.float64)

        metric = Metric("list", "distance in list positions, the largest over the diffractor "
                                "lists (max_l |pos_l(w) - pos_l(w')|)",
                        float(self.vocab_size - 1), {"lists": self.lists}, distance=distance)
        return Guarantee(privacy.METRIC_DP, self.epsilon, metric,
                         self.claim.format(eps=f"{self.epsilon:g}"), ALL_PAIRS, self.unit)

    def perturb(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        m = len(ids)
        lst = rng.integers(0, self.lists, size=m) if self.lists > 1 else np.zeros(m, np.int64)
        k = two_sided_geometric(rng, m, self.epsilon, cap=float(self.vocab_size))
        target = np.clip(self.pos[lst, ids] + k, 0, self.vocab_size - 1).astype(np.int64)
        return self.order[lst, target]

    def position_law(self, p: int) -> np.ndarray:
        """Pr of each output position for input position ``p`` in one list (float64)."""
        n, eps, q = self.vocab_size, self.epsilon, self.q
        if n == 1:
            return np.ones(1)
        j = np.arange(n)
        law = (-math.expm1(-eps)) / (1.0 + q) * np.exp(-eps * np.abs(j - p))
        law[0] = math.exp(-eps * p) / (1.0 + q)  # Pr[k <= -p]
        law[-1] = math.exp(-eps * (n - 1 - p)) / (1.0 + q)  # Pr[k >= n - 1 - p]
        return law

    def probabilities(self, i: int) -> np.ndarray:
        out = np.zeros(self.vocab_size)
        for l in range(self.lists):
            out[self.order[l]] += self.position_law(int(self.pos[l, i])) / self.lists
        return out

    def calibration(self) -> dict:
        x = self.store.vocab.vectors
        steps = dist64(x[self.order[:, :-1]], x[self.order[:, 1:]]).ravel()
        q = self.q
        info = {"list_length": self.vocab_size,
                "step_median": float(np.median(steps)) if len(steps) else 0.0,
                "step_p99": float(np.quantile(steps, 0.99)) if len(steps) else 0.0,
                "pr_same_position": (1.0 - q) / (1.0 + q),
                "mean_abs_shift": 2.0 * q / (1.0 - q * q)}
        return {**super().calibration(), **info}
