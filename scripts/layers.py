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
    tree = ast.parse(open(path, encoding="utf-8").read())
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
    lines = {m: sum(1 for _ in open(p, encoding="utf-8")) for m, p in found.items()}
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
