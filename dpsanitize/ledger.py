"""A privacy ledger across runs: every release of an input, its total, and a budget.

Each line of the ledger (JSON lines, append-only, fsynced) records one release of one input: the
input's SHA-256, its path when released, the mechanism, the guarantee's kind, epsilon and delta
per word, the metric it is stated in, and the time. Totals add up per input and per metric under
basic composition (epsilons add, deltas add); guarantees in different metrics are listed side by
side and never summed, because an epsilon per unit of one distance says nothing in another. A
budget refuses, before any work, a run that would take an input's total over it in the run's
metric (diffprivlib's ``BudgetAccountant`` is the model).

Example::

    ledger = Ledger("releases.jsonl")
    ledger.check(["in.txt"], mechanism.guarantee, budget=40.0)   # OverBudget (exit 77) if not
    ledger.record("in.txt", sha256, mechanism.name, mechanism.guarantee)
    ledger.totals()
"""

from __future__ import annotations

import contextlib
import json
import os
import time

from .errors import InvalidParameter, OutputError, OverBudget
from .privacy import NONE, Guarantee


class Ledger:
    """The releases recorded in one JSON-lines file (a missing file is an empty ledger)."""

    def __init__(self, path: str, *, must_exist: bool = False):
        from .errors import MissingInputError

        self.path = path
        self.entries: list[dict] = []
        if must_exist and not os.path.isfile(path):
            raise MissingInputError(f"no ledger at {path}")
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    with contextlib.suppress(ValueError):  # a line cut short by a crash
                        entry = json.loads(line)
                        if isinstance(entry, dict) and "sha256" in entry:
                            self.entries.append(entry)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise OutputError(f"cannot read the ledger {path} ({exc.strerror})") from None

    def totals(self) -> list[dict]:
        """Per input (by SHA-256), per metric: releases, summed epsilon and delta."""
        inputs: dict[str, dict] = {}
        for e in self.entries:
            row = inputs.setdefault(e["sha256"], {"sha256": e["sha256"], "inputs": [],
                                                  "releases": 0, "by_metric": {},
                                                  "no_guarantee_releases": 0})
            if e.get("input") and e["input"] not in row["inputs"]:
                row["inputs"].append(e["input"])
            row["releases"] += 1
            if e.get("kind") == NONE:
                row["no_guarantee_releases"] += 1
                continue
            m = row["by_metric"].setdefault(e["metric"], {"epsilon": 0.0, "delta": 0.0,
                                                          "releases": 0})
            m["epsilon"] += float(e["epsilon"])
            m["delta"] += float(e.get("delta", 0.0))
            m["releases"] += 1
        return list(inputs.values())

    def spent(self, sha256: str, metric: str) -> float:
        return sum(float(e["epsilon"]) for e in self.entries
                   if e["sha256"] == sha256 and e.get("metric") == metric and e.get("kind") != NONE)

    def check(self, inputs, guarantee: Guarantee, budget: float | None) -> None:
        """Refuse (OverBudget, exit 77) if releasing any of ``inputs`` (``(path, sha256)``
        pairs) again would take its total epsilon in this metric over ``budget``."""
        if budget is None:
            return
        if guarantee.kind == NONE:
            raise OverBudget("--budget cannot account for a mechanism with no formal guarantee")
        metric = guarantee.metric.key()
        for path, sha in inputs:
            before = self.spent(sha, metric)
            if before + guarantee.epsilon > budget * (1 + 1e-12):
                raise OverBudget(
                    f"{path}: releasing it again at eps {guarantee.epsilon:g} ({metric}) would "
                    f"take its total to {before + guarantee.epsilon:g}, over --budget "
                    f"{budget:g} ({before:g} spent in {self.path}); nothing was written")

    def record(self, path: str, sha256: str, mechanism: str, guarantee: Guarantee) -> None:
        """Append one release and fsync it, so a crash never loses a published output's line."""
        entry = {"sha256": sha256, "input": os.path.abspath(path), "mechanism": mechanism,
                 "kind": guarantee.kind, "epsilon": guarantee.epsilon, "delta": guarantee.delta,
                 "metric": guarantee.metric.key(),
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, (json.dumps(entry) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise OutputError(f"cannot write the ledger {self.path} ({exc.strerror})") from None
        self.entries.append(entry)


def check_budget(budget: float | None, ledger: str | None) -> None:
    if budget is not None and not ledger:
        raise InvalidParameter("--budget needs --ledger FILE (where the releases are counted)")
    if budget is not None and not budget > 0:
        raise InvalidParameter("--budget must be greater than 0")
