"""The package drawn from its own imports: rooms (modules), arrows (imports, lazy ones included),
floors (longest chain of imports below a room), circles, and lines per room.

Example::

    python scripts/layers.py            # a table of rooms by floor, arrows, circles
    python scripts/layers.py --json
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "dpsanitize")

# The floors of the house (DESIGN.md section 2): a room imports only rooms of its floor or below.
FLOORS = {
    1: ("plain pieces: exceptions, generators, tokenizer, exact distances, the Guarantee, "
        "log and progress lines, TOML presets, file I/O",
        ["errors", "rng", "text", "geometry", "privacy", "progress", "io", "presets"]),
    2: ("vectors, W, neighbour table, extreme distances, Annoy, the cache",
        ["embeddings", "index", "cache", "gpu"]),
    3: ("one module per mechanism; each owns its Guarantee, exact law, recipe",
        ["mechanisms", "mechanisms.*"]),
    4: ("the rewrite of text: tokens -> ids -> mechanism -> text, counters", ["rewrite"]),
    5: ("the stream: blocks, records, FileSpan, formats (text, CSV/TSV, JSONL, Parquet)",
        ["stream", "formats", "arrow", "parquet"]),
    6: ("engines: map the rewrite over ordered blocks (local, process pool, Dask)",
        ["engines", "engines.*"]),
    7: ("jobs: the Sanitizer, many files, manifest, ledger, frames, Dask collections",
        ["pipeline", "runs", "batch", "ledger", "frames", "dask"]),
    8: ("analysis: audit, attack, tune, eval", ["audit", "attack", "evaluate"]),
    9: ("the command line: parse, call the library, map exceptions to exit codes",
        ["cli", "cli.*", "__main__"]),
}


def floor_of(module: str) -> int | None:
    """The declared floor of ``dpsanitize.x`` (None for the package itself)."""
    name = module.removeprefix("dpsanitize.")
    for floor, (_, names) in FLOORS.items():
        for pattern in names:
            if name == pattern or (pattern.endswith(".*") and name.startswith(pattern[:-1])):
                return floor
    return None


# What each floor may import (DESIGN.md section 2's "may import" column, plus its own floor):
# the stream (5) reads text and cuts it, knowing nothing of vectors or mechanisms.
MAY_IMPORT = {1: {1}, 2: {1, 2}, 3: {1, 2, 3}, 4: {1, 2, 3, 4}, 5: {1, 4, 5},
              6: {1, 2, 3, 4, 5, 6}, 7: set(range(1, 8)), 8: set(range(1, 9)),
              9: set(range(1, 10))}


def upward(arrows: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports that run up a floor, or to a floor DESIGN does not allow (or touch an
    undeclared room)."""
    bad = []
    for module, targets in arrows.items():
        here = floor_of(module)
        for t in targets:
            there = floor_of(t)
            if module != "dpsanitize" and (here is None or there is None or
                                           there not in MAY_IMPORT[here]):
                bad.append((module, t))
    return sorted(bad)


def rooms() -> dict[str, str]:
    """Module name (``dpsanitize.x.y``) -> file path; a package is its ``__init__``."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            found[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return found


def imports(module: str, path: str, known: set[str]) -> set[str]:
    """The package modules ``module`` imports anywhere in its file (lazy imports count)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module and name != "dpsanitize":
                out.add(name)
                break
    return out


def graph() -> tuple[dict[str, set[str]], dict[str, int]]:
    found = rooms()
    known = set(found)
    arrows = {m: imports(m, p, known) for m, p in found.items()}
    lines = {}
    for m, p in found.items():
        with open(p, encoding="utf-8") as f:
            lines[m] = sum(1 for _ in f)
    return arrows, lines


def circles(arrows: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one room (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in arrows.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(arrows):
        if v not in index:
            visit(v)
    return out


def floors(arrows: dict[str, set[str]]) -> dict[str, int]:
    """1 + the longest chain below each room (rooms of a circle share the circle's floor)."""
    memo: dict[str, int] = {}

    def floor(v, seen):
        if v in memo:
            return memo[v]
        if v in seen:
            return 1
        seen = seen | {v}
        memo[v] = 1 + max((floor(w, seen) for w in arrows.get(v, ())), default=0)
        return memo[v]

    return {v: floor(v, frozenset()) for v in arrows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    arrows, lines = graph()
    level = floors(arrows)
    loops = circles(arrows)
    total = sum(lines.values())
    if args.json:
        print(json.dumps({"rooms": len(arrows), "floors": max(level.values()),
                          "arrows": sum(map(len, arrows.values())), "circles": loops,
                          "lines": total, "by_room": {m: {"floor": level[m], "lines": lines[m]}
                                                      for m in sorted(arrows)}}, indent=1))
        return 0
    for m in sorted(arrows, key=lambda m: (level[m], m)):
        print(f"{level[m]:>2}  {lines[m]:>5}  {m}")
    print(f"{len(arrows)} rooms, {max(level.values())} floors, "
          f"{sum(map(len, arrows.values()))} arrows, {len(loops)} circles, {total} lines")
    for loop in loops:
        print("circle:", " <-> ".join(loop))
    for a, b in upward(arrows):
        print(f"not allowed: {a} (floor {floor_of(a)}) imports {b} (floor {floor_of(b)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
