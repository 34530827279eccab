"""TOML presets for commands: a ``[dpsanitize.<command>]`` table, checked key by key.

The policy lives here, not in the command line: a seed is never read from a file (anyone who
reads the file could undo the noise), unknown keys are errors with a suggestion, and relative
paths are taken relative to the file. Every failure is a :class:`ResourceError` (exit 78).

Example (``configs/gumbel.toml``)::

    [dpsanitize.run]
    mech = "gumbel"
    eps = 120.0

    values = read_preset("configs/gumbel.toml", "run", {"mech": str, "eps": float})
"""

from __future__ import annotations

import difflib
import os

from .errors import ResourceError

NOT_FROM_PRESET = {"seed", "config", "paths"}


def read_preset(path: str, command: str, converters: dict, paths=()) -> dict:
    """The converted values of ``[dpsanitize.<command>]`` in the TOML file ``path``.

    ``converters`` maps each option name (underscores) to a function of the raw TOML value that
    raises ``ValueError`` on a bad one; names in ``paths`` are resolved against the file's folder.
    """
    import tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ResourceError(f"config {path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ResourceError(f"config {path}: not valid TOML ({exc})") from None
    section = data.get("dpsanitize", {})
    if not isinstance(section, dict):
        raise ResourceError(f"config {path}: [dpsanitize] must be a table")
    table = section.get(command)
    if table is None:
        raise ResourceError(f"config {path}: no [dpsanitize.{command}] table; the file would "
                            f"change nothing (tables found: {_tables(data) or 'none'})")
    if not isinstance(table, dict):
        raise ResourceError(f"config {path}: [dpsanitize.{command}] must be a table")
    allowed = sorted(n.replace("_", "-") for n in converters if n not in NOT_FROM_PRESET)
    base = os.path.dirname(os.path.abspath(path))
    values = {}
    for key, raw in table.items():
        name = key.replace("-", "_")
        where = f"config {path}: [dpsanitize.{command}] {key}"
        if name == "seed":
            raise ResourceError(f"{where}: a seed is never read from a config file (anyone who "
                                f"reads the file could undo the noise); pass --seed explicitly")
        if name not in converters or name in NOT_FROM_PRESET:
            close = difflib.get_close_matches(key, allowed, n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ResourceError(f"{where}: unknown key{hint}")
        if name in paths and isinstance(raw, str) and raw != "-":
            raw = os.path.join(base, os.path.expanduser(raw))
        try:
            values[name] = converters[name](raw)
        except ValueError as exc:
            raise ResourceError(f"{where}: {exc}") from None
    return values


def _tables(data: dict, prefix: str = "") -> str:
    """The dotted names of the tables in a parsed TOML document (they are not secret)."""
    names = []
    for key, value in data.items():
        if isinstance(value, dict):
            names.append(f"[{prefix}{key}]")
            names.extend(filter(None, _tables(value, f"{prefix}{key}.").split(", ")))
    return ", ".join(names)
