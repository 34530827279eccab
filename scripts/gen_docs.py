"""Regenerate the blocks of docs/*.md that come from the code: every command's --help, each
mechanism's guarantee, and what a run releases as is.

A block sits between ``<!-- generated: NAME -->`` and ``<!-- /generated -->``;
``tests/test_docs.py`` fails when a block differs from what this script writes (the way
sqlite-utils keeps its docs in sync with cog).

Example::

    python scripts/gen_docs.py          # rewrite the blocks in place
    python scripts/gen_docs.py --check  # exit 1 if any block is stale
"""

from __future__ import annotations

import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /generated -->)",
                   re.S)


def _commands(group, prefix="dpsanitize"):
    import click

    for name in sorted(group.commands):
        cmd = group.commands[name]
        yield f"{prefix} {name}", cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, f"{prefix} {name}")


def cli_help() -> str:
    """Every command's --help, as a terminal 100 columns wide shows it."""
    import click

    from dpsanitize.cli import cli

    parts = []
    for path, cmd in [("dpsanitize", cli), *_commands(cli)]:
        with click.Context(cmd, info_name=path, terminal_width=100, max_content_width=100,
                           help_option_names=["-h", "--help"]) as ctx:
            text = cmd.get_help(ctx)
        parts.append(f"### `{path}`\n\n```text\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


def commands() -> str:
    """One row per command: its first help line, linked to its --help in cli.md."""
    import click

    from dpsanitize.cli import cli

    rows = ["| command | what it does |", "| --- | --- |"]
    for path, cmd in _commands(cli):
        if not isinstance(cmd, click.Group):
            anchor = path.replace(" ", "-")
            rows.append(f"| [`{path}`](cli.md#{anchor}) | {cmd.get_short_help_str(200)} |")
    return "\n".join(rows) + "\n"


def guarantees() -> str:
    """One row per mechanism: the guarantee with epsilon symbolic, its unit."""
    from dpsanitize.mechanisms import MECHANISMS, mechanism_class

    rows = ["| mechanism | guarantee (eps per word) | unit |", "| --- | --- | --- |"]
    for name in MECHANISMS:
        d = mechanism_class(name).describe()
        rows.append(f"| `{name}` | {d['guarantee']} | {d['unit']} |")
    return "\n".join(rows) + "\n"


def released() -> str:
    """What a run releases as is, per format."""
    from dpsanitize.privacy import RELEASED_AS_IS

    out = ["Every format:", ""]
    out += [f"- {item}" for item in RELEASED_AS_IS["common"]]
    for name in ("csv", "tsv", "jsonl", "parquet"):
        out += ["", f"Also for {name}:", ""] + [f"- {item}" for item in RELEASED_AS_IS[name]]
    return "\n".join(out) + "\n"


def layers() -> str:
    """The floors of the package and their rooms (scripts/layers.py prints their lines)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("layers", os.path.join(ROOT, "scripts",
                                                                         "layers.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    arrows, _ = module.graph()
    rows = ["| floor | job | rooms |", "| ---: | --- | --- |"]
    for floor, (job, _) in sorted(module.FLOORS.items()):
        rooms = sorted(m for m in arrows if module.floor_of(m) == floor)
        names = ", ".join(f"`{m.removeprefix('dpsanitize.')}`" for m in rooms)
        rows.append(f"| {floor} | {job} | {names} |")
    return "\n".join(rows) + "\n"


GENERATORS = {"cli-help": cli_help, "commands": commands, "guarantees": guarantees,
              "released-as-is": released, "layers": layers}


def render(text: str) -> str:
    """``text`` with every generated block rewritten."""
    return BLOCK.sub(lambda m: m.group(1) + GENERATORS[m.group("name")]() + m.group(4), text)


def doc_files():
    folder = os.path.join(ROOT, "docs")
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".md")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a block is stale")
    args = parser.parse_args()
    stale = []
    for path in doc_files():
        with open(path, encoding="utf-8") as f:
            old = f.read()
        new = render(old)
        if new != old:
            stale.append(path)
            if not args.check:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(new)
    for path in stale:
        print(("stale: " if args.check else "rewrote: ") + os.path.relpath(path, ROOT))
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    sys.exit(main())
