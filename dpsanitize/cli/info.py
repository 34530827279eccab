"""Commands that inspect: the index, the cache, neighbours, the mechanisms, a calibration, the
ledger. Each calls the library and prints what it returns."""

from __future__ import annotations

import os

import click

from .group import cli
from ..cache import parse_duration
from .options import (cache_dir_option, parsed_by, echo_json, embeddings_options, eps_option,
                      json_option, log, mech_option, mechanism_options, progress_option,
                      quiet_option)


def _print(mapping: dict) -> None:
    for key, value in mapping.items():
        click.echo(f"{key:>20}: {value}")


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
@progress_option
@quiet_option
def index_build(open_store, rebuild, progress):
    """Build the index for these embeddings, or report that it is already cached.

    \b
    Example:
        dpsanitize index build --embeddings glove.6B.300d.txt --vocab-size 50000
    """
    store = open_store(progress, rebuild)
    log.info("%s %s (%d words, dim %d, d_min %.6g, d_max %.6g)",
             "built" if store.built_now else "already cached:", store.path, len(store.vocab),
             store.vocab.dim, store.d_min, store.d_max)


@index.command("info")
@embeddings_options
@json_option
@click.option("--verify", is_flag=True, help="Also checksum the large files.")
@quiet_option
def index_info(open_store, as_json, verify):
    """Print the index manifest (building the index first if needed).

    \b
    Example:
        dpsanitize index info --json
    """
    store = open_store()
    if verify:
        store.verify()
    echo_json(store.summary()) if as_json else _print(store.summary())


def _cache_path(cache_dir):
    from ..index import default_cache_dir

    return os.path.abspath(cache_dir or default_cache_dir())


@cli.group()
def cache():
    """List or remove cached index entries.

    \b
    Example:
        dpsanitize cache list
        dpsanitize cache clean --older-than 30d
    """


@cache.command("list")
@cache_dir_option
@json_option
def cache_list(cache_dir, as_json):
    """The entries: key, size, source embeddings, vocabulary size, creation and last use.

    \b
    Example:
        dpsanitize cache list --json
    """
    from ..cache import list_entries, table

    path = _cache_path(cache_dir)
    rows = [e.as_dict() for e in list_entries(path)]
    echo_json(rows) if as_json else click.echo(table(rows, path))


@cache.command("clean")
@cache_dir_option
@click.option("--older-than", metavar="DURATION", callback=parsed_by(parse_duration),
              help="Only entries not used for this long (30d, 12h, 2w). Default: every entry.")
@click.option("--dry-run", is_flag=True, help="Say what would go; remove nothing.")
@quiet_option
def cache_clean(cache_dir, older_than, dry_run):
    """Remove cached entries (all, or those unused for --older-than); a running build is kept.

    \b
    Example:
        dpsanitize cache clean --older-than 30d
    """
    from ..cache import clean

    path = _cache_path(cache_dir)
    removed = clean(path, older_than, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for e in removed:
        log.info("%s %s (%.1f MiB, %s)", verb, e.key[:16], e.size / 2**20, e.source)
    log.info("%s %d entries, %.1f MiB, from %s", verb, len(removed),
             sum(e.size for e in removed) / 2**20, path)


@cli.command()
@click.argument("word")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many neighbours.")
@embeddings_options
@json_option
@quiet_option
def neighbors(word, k, open_store, as_json):
    """The exact K nearest other words of WORD, with Euclidean distances.

    \b
    Example:
        dpsanitize neighbors house -k 5
    """
    rows = open_store().word_neighbors(word, k)
    echo_json(rows) if as_json else click.echo("\n".join(
        f"{r['distance']:10.6f}  {r['word']}" for r in rows))


@cli.command()
@json_option
def mechanisms(as_json):
    """List the mechanisms with their guarantees and useful epsilon ranges.

    \b
    Example:
        dpsanitize mechanisms --json
    """
    from ..mechanisms import describe_all, table

    rows = describe_all()
    echo_json(rows) if as_json else click.echo(table(rows))


@cli.command()
@mech_option("Mechanism to calibrate.")
@eps_option
@mechanism_options
@embeddings_options
@json_option
@quiet_option
def calibrate(mech, eps, mech_options, open_store, as_json):
    """What a mechanism does at this epsilon (noise scale, floor, expected noise).

    \b
    Example:
        dpsanitize calibrate --mech gumbel --eps 120 --json
    """
    from ..mechanisms import create

    info = create(mech, epsilon=eps, store=open_store(), **mech_options).calibration()
    echo_json(info) if as_json else _print(info)


@cli.group()
def ledger():
    """Read a privacy ledger written by `run --ledger`.

    \b
    Example:
        dpsanitize ledger show releases.jsonl
    """


@ledger.command("show")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
@json_option
def ledger_show(path, as_json):
    """Totals per input: releases, and eps and delta summed per metric (never across metrics).

    \b
    Example:
        dpsanitize ledger show releases.jsonl --json
    """
    from ..ledger import Ledger, table

    rows = Ledger(path, must_exist=True).totals()
    echo_json(rows) if as_json else click.echo(table(rows))
