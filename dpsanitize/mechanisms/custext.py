"""CusText: the exponential mechanism inside small disjoint groups of similar words.

Groups of K words are built greedily in public frequency order: the most frequent word not yet
grouped takes its K-1 nearest ungrouped words (exact neighbours; a full scan when the table runs
out). Every word of a group maps into that group: with d_lo, d_hi the smallest and largest
distance from w to the group's words, u(w, y) = -(d(w,y) - d_lo) / (d_hi - d_lo) in [-1, 0] and
Pr[M(w) = y] is proportional to exp(eps u / 2). The guarantee is plain eps-DP among the members of
one group; words in different groups have disjoint outputs and are not protected from each other.

Example::

    mech = CusText(epsilon=2.0, store=store, custext_k=20)
    mech.group_members(mech.group_of[5])

References
----------
Chen, Mo, Wang, Chen, Nie, Wang, Cui. "A customized text sanitization mechanism with
differential privacy." Findings of ACL 2023, Section 3 (mapping and sampling functions).
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import InvalidParameter
from ..geometry import dist64
from .. import privacy
from ..privacy import Guarantee, Metric
from .base import Mechanism, open_uniform


log = logging.getLogger("dpsanitize")


def build_groups(store, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy disjoint groups: ``(group_of (N,), members (G, k) padded with -1)``."""
    n = len(store.vocab)
    assigned = np.zeros(n, dtype=bool)
    group_of = np.empty(n, dtype=np.int64)
    members = []
    for seed in range(n):
        if assigned[seed]:
            continue
        nbr = np.asarray(store.nbr_ids[seed], dtype=np.int64)
        free = nbr[~assigned[nbr]][: k - 1]
        if len(free) < k - 1 and not store.table_is_complete:
            free = _nearest_free(store, seed, assigned, k - 1)
        group = np.concatenate([[seed], free])
        assigned[group] = True
        group_of[group] = len(members)
        members.append(np.pad(group, (0, k - len(group)), constant_values=-1))
    return group_of, np.array(members, dtype=np.int64).reshape(-1, k)


def _nearest_free(store, seed: int, assigned: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` nearest ungrouped words of ``seed`` by (distance, id), by a full scan."""
    approx = store.rows([seed])[0]  # screen with the fast row, then re-rank exactly
    approx[assigned] = np.inf
    approx[seed] = np.inf
    free = np.flatnonzero(np.isfinite(approx))
    if len(free) > count:
        cut = np.partition(approx[free], count - 1)[count - 1]
        free = free[approx[free] <= cut + 1e-6 * (1.0 + cut)]
    d = dist64(store.x64[free], store.x64[seed])
    return free[np.lexsort((free, d))][:count]


class CusText(Mechanism):
    """Exponential mechanism over the input word's group with min-max normalised utility.

    Parameters
    ----------
    custext_k : int
        Group size K (the last group may be smaller; capped at |W|).
    """

    name = "custext"
    unit = "per word, between words of the same group (plain epsilon-DP)"
    claim = ("{eps}-DP among the members of each group: Pr[M(w)=y] <= exp({eps})*Pr[M(w')=y] "
                 "for w, w' in the same group; different groups have disjoint outputs, so words "
                 "of different groups are not protected from each other")
    reference = "Chen et al., Findings of ACL 2023 (CusText)"

    def __init__(self, *, epsilon: float, store, custext_k: int = 20):
        super().__init__(epsilon=epsilon, store=store)
        if int(custext_k) != custext_k or int(custext_k) < 1:
            raise InvalidParameter("--custext-k must be an integer >= 1")
        self.k = min(int(custext_k), self.vocab_size)  # one group of everything at most
        n, k = self.vocab_size, self.k

        def compute():
            log.info("custext: building the groups of %d words (one-off, about half a minute "
                     "for 100,000 words; cached beside the index)", k)
            group_of, members = build_groups(store, k)
            return {"group_of": group_of, "members": members}

        def valid(a):
            return (a["group_of"].shape == (n,) and a["members"].ndim == 2
                    and a["members"].shape[1] == k and a["group_of"].max() < len(a["members"]))

        groups = store.derived(f"custext-k{k}", compute, valid)
        self.group_of, self.members = groups["group_of"], groups["members"]
        self.cdf = self._cdfs()

    def params(self) -> dict:
        return {"k": self.k, "groups": len(self.members)}

    def make_guarantee(self) -> Guarantee:
        group_of = self.group_of

        def same_group(a, b):
            return group_of[np.asarray(a)] == group_of[np.asarray(b)]

        def distance(a, b):  # the discrete metric: 1 between two different words
            return (np.asarray(a) != np.asarray(b)).astype(np.float64)

        metric = Metric("groups", "discrete metric (1 between two different words of a group)",
                        1.0, {"k": self.k}, distance=distance)
        return Guarantee(privacy.WITHIN_GROUPS, self.epsilon, metric,
                         self.claim.format(eps=f"{self.epsilon:g}"),
                         "pairs of words of the same group", self.unit,
                         reason="words of different groups have disjoint outputs: an output "
                                "tells which group the input word came from, so pairs across "
                                "groups have no bound", covered=same_group)

    def group_members(self, g: int) -> np.ndarray:
        row = self.members[g]
        return row[row >= 0]

    def _weights(self, ids: np.ndarray) -> np.ndarray:
        """Unnormalised Pr over each word's group members (member order of its group)."""
        mem = self.members[self.group_of[ids]]
        valid = mem >= 0
        x = self.store.vocab.vectors
        d = dist64(x[ids][:, None, :], x[np.where(valid, mem, 0)])
        d_lo = np.where(valid, d, np.inf).min(axis=1, keepdims=True)
        d_hi = np.where(valid, d, -np.inf).max(axis=1, keepdims=True)
        span = d_hi - d_lo
        u = np.where(span > 0, -(d - d_lo) / np.where(span > 0, span, 1.0), 0.0)
        return np.where(valid, np.exp(self.epsilon * u / 2.0), 0.0)

    def _cdfs(self, block: int = 8192) -> np.ndarray:
        cdf = np.empty((self.vocab_size, self.k))
        for s in range(0, self.vocab_size, block):
            ids = np.arange(s, min(self.vocab_size, s + block))
            w = np.cumsum(self._weights(ids), axis=1)
            cdf[ids] = w / w[:, -1:]
        return cdf

    def perturb(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        u = open_uniform(rng, len(ids))
        col = (self.cdf[ids] <= u[:, None]).sum(axis=1)
        mem = self.members[self.group_of[ids]]
        return mem[np.arange(len(ids)), np.minimum(col, self.k - 1)]

    def probabilities(self, i: int) -> np.ndarray:
        w = self._weights(np.array([i]))[0]
        mem = self.members[self.group_of[i]]
        p = np.zeros(self.vocab_size)
        p[mem[mem >= 0]] = w[mem >= 0] / w.sum()
        return p
