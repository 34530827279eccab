"""TOML presets for commands: ``[dpsanitize.<command>]`` tables, validated key by key.

Values become click's ``default_map``, so command-line flags win, then ``DPSANITIZE_*``
environment variables, then the file, then built-in defaults. Unknown keys, bad values and a
``seed`` key are errors (exit 78); relative paths are taken relative to the file.

Example (``configs/gumbel.toml``)::

    [dpsanitize.run]
    mech = "gumbel"
    eps = 120.0
"""

from __future__ import annotations

import difflib
import os

import click

from ..errors import ResourceError

NOT_FROM_CONFIG = {"seed", "config", "paths"}


def load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """click callback for ``--config`` (eager, not exposed)."""
    if value is None:
        return
    import tomllib

    try:
        with open(value, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ResourceError(f"config {value}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ResourceError(f"config {value}: not valid TOML ({exc})") from None
    section = data.get("dpsanitize", {})
    if not isinstance(section, dict):
        raise ResourceError(f"config {value}: [dpsanitize] must be a table")
    table = section.get(ctx.command.name)
    if table is None:
        raise ResourceError(f"config {value}: no [dpsanitize.{ctx.command.name}] table; the file "
                            f"would change nothing (tables found: {_tables(data) or 'none'})")
    if not isinstance(table, dict):
        raise ResourceError(f"config {value}: [dpsanitize.{ctx.command.name}] must be a table")
    options = {p.name: p for p in ctx.command.params if isinstance(p, click.Option)}
    allowed = sorted(n.replace("_", "-") for n in options if n not in NOT_FROM_CONFIG)
    base = os.path.dirname(os.path.abspath(value))
    values = {}
    for key, raw in table.items():
        name = key.replace("-", "_")
        where = f"config {value}: [dpsanitize.{ctx.command.name}] {key}"
        if name == "seed":
            raise ResourceError(f"{where}: a seed is never read from a config file (anyone who "
                                f"reads the file could undo the noise); pass --seed explicitly")
        if name not in options or name in NOT_FROM_CONFIG:
            close = difflib.get_close_matches(key, allowed, n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ResourceError(f"{where}: unknown key{hint}")
        option = options[name]
        if isinstance(option.type, click.Path) and isinstance(raw, str) and raw != "-":
            raw = os.path.join(base, os.path.expanduser(raw))
        try:
            values[name] = option.type_cast_value(ctx, raw)
        except click.BadParameter as exc:
            raise ResourceError(f"{where}: {exc.message}") from None
    ctx.default_map = {**(ctx.default_map or {}), **values}


def _tables(data: dict, prefix: str = "") -> str:
    """The dotted names of the tables in a parsed TOML document (they are not secret)."""
    names = []
    for key, value in data.items():
        if isinstance(value, dict):
            names.append(f"[{prefix}{key}]")
            names.extend(filter(None, _tables(value, f"{prefix}{key}.").split(", ")))
    return ", ".join(names)
