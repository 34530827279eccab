"""A privacy ledger across runs: every release of an input, its total, and a budget.

Each line of the ledger (JSON lines, append-only, fsynced) records one release of one input: the
input's SHA-256, its path when released, the mechanism, the guarantee's kind, epsilon and delta
per word, the metric it is stated in (with the vocabulary: an epsilon per unit of distance means
something only in one embedding), and the time. Totals add up per input and per metric under
basic composition (epsilons add, deltas add); guarantees in different metrics or vocabularies
are listed side by side and never summed. A budget refuses, before any input is read, a run that
would take an input's total over it in the run's metric, counting every copy of the input in
the run (diffprivlib's ``BudgetAccountant`` is the model). A release is recorded before its
output is published, so a crash can over-count but never under-count; a run holds an exclusive
lock on the ledger from the check to its end, so two runs cannot both spend the same budget.

Example::

    with Ledger("releases.jsonl", lock=True) as ledger:
        ledger.check([("in.txt", sha256)], mechanism, budget=40.0)   # OverBudget (exit 77)
        ledger.record("in.txt", sha256, mechanism)
    Ledger("releases.jsonl").totals()
"""

from __future__ import annotations

import collections
import json
import os
import time

from .errors import InvalidParameter, MissingInputError, OutputError, OverBudget, ResourceError
from .privacy import NONE


def metric_key(mechanism) -> str:
    """The metric of a mechanism's guarantee with its parameters and vocabulary."""
    vocabulary = mechanism.store.manifest["vocab_fingerprint"][:16]
    return f"{mechanism.guarantee.metric.key()}@{vocabulary}"


class Ledger:
    """The releases recorded in one JSON-lines file (a missing file is an empty ledger).

    ``lock=True`` opens the file for appending (creating it; OutputError, exit 73, if it cannot
    be) and holds an exclusive lock on it until :meth:`close`.
    """

    def __init__(self, path: str, *, lock: bool = False, must_exist: bool = False):
        self.path = path
        self.entries: list[dict] = []
        self._fd = None
        if must_exist and not os.path.isfile(path):
            raise MissingInputError(f"no ledger at {path}")
        if lock:
            self._open_locked()
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except FileNotFoundError:
            lines = []
        except OSError as exc:
            raise OutputError(f"cannot read the ledger {path} ({exc.strerror})") from None
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict) or "sha256" not in entry:
                    raise ValueError
            except ValueError:
                if n == len(lines):  # the last line, cut short by a crash
                    continue
                raise ResourceError(f"{path}: line {n} is not a ledger entry; a ledger is "
                                    f"only ever appended to by dpsanitize") from None
            self.entries.append(entry)

    def _open_locked(self) -> None:
        import fcntl

        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OutputError(f"cannot write the ledger {self.path} ({exc.strerror})") from None
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # waits for another run's release of it

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

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

    def check(self, inputs, mechanism, budget: float | None) -> None:
        """Refuse (OverBudget, exit 77) if releasing ``inputs`` (``(path, sha256)`` pairs, the
        same text counted as often as it appears) would take any text's total epsilon in this
        metric over ``budget``."""
        if budget is None:
            return
        guarantee = mechanism.guarantee
        if guarantee.kind == NONE:
            raise OverBudget("--budget cannot account for a mechanism with no formal guarantee")
        metric = metric_key(mechanism)
        copies = collections.Counter(sha for _, sha in inputs)
        for path, sha in inputs:
            before = self.spent(sha, metric)
            after = before + copies[sha] * guarantee.epsilon
            if after > budget * (1 + 1e-12):
                times = f" {copies[sha]} times" if copies[sha] > 1 else ""
                raise OverBudget(
                    f"{path}: releasing it{times} at eps {guarantee.epsilon:g} ({metric}) would "
                    f"take its total to {after:g}, over --budget {budget:g} ({before:g} spent "
                    f"in {self.path}); nothing was written")

    def record(self, path: str, sha256: str, mechanism) -> None:
        """Append one release and fsync it (before the output is published)."""
        g = mechanism.guarantee
        entry = {"sha256": sha256, "input": os.path.abspath(path), "mechanism": mechanism.name,
                 "kind": g.kind, "epsilon": g.epsilon, "delta": g.delta,
                 "metric": metric_key(mechanism),
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        data = (json.dumps(entry) + "\n").encode()
        try:
            fd = self._fd if self._fd is not None else \
                os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                if fd is not self._fd:
                    os.close(fd)
        except OSError as exc:
            raise OutputError(f"cannot write the ledger {self.path} ({exc.strerror})") from None
        self.entries.append(entry)


def check_budget(budget: float | None, ledger: str | None) -> None:
    if budget is not None and not ledger:
        raise InvalidParameter("--budget needs --ledger FILE (where the releases are counted)")
    if budget is not None and not budget > 0:
        raise InvalidParameter("--budget must be greater than 0")


def table(rows: list[dict]) -> str:
    """The rows of :meth:`Ledger.totals` as terminal lines: per input, then per metric."""
    lines = []
    for r in rows:
        lines.append(f"{r['sha256'][:16]}  {r['releases']} releases  {', '.join(r['inputs'])}")
        for metric, m in r["by_metric"].items():
            lines.append(f"    {metric:<28} eps {m['epsilon']:g}  delta {m['delta']:.3g}  "
                         f"({m['releases']} releases)")
        if r["no_guarantee_releases"]:
            lines.append(f"    {r['no_guarantee_releases']} releases with no formal guarantee")
    return "\n".join(lines)
