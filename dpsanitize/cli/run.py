"""``dpsanitize run``: parse the options, then :mod:`..runs` plans and executes the run."""

from __future__ import annotations

from dataclasses import fields

import click

from ..mechanisms import DEFAULT_MECHANISM
from ..runs import OPTIONS, RunRequest, execute, plan
from .group import cli
from .options import (MECH_EPS_HELP, embeddings_options, eps_default_option, load_config, log,
                      mech_option, mechanism_options, options, progress_option, quiet_option,
                      seed_option)


def run_options(f):
    """The options of ``runs.OPTIONS``, with RunRequest's defaults."""
    defaults = {f.name: f.default for f in fields(RunRequest)}
    return options(*[(flags, dest, kind, defaults[dest], text)
                     for flags, dest, kind, text in OPTIONS])(f)


@cli.command()
@click.argument("paths", metavar="INPUT... OUTPUT", nargs=-1, required=True,
                type=click.Path(allow_dash=True))
@click.option("--config", type=click.Path(exists=True, dir_okay=False), callback=load_config,
              is_eager=True, expose_value=False,
              help="TOML preset ([dpsanitize.run] table); command-line flags override it.")
@mech_option("Mechanism for every in-vocabulary word. " + MECH_EPS_HELP, required=False,
             default=DEFAULT_MECHANISM, show_default=True)
@eps_default_option
@mechanism_options
@embeddings_options
@run_options
@seed_option
@progress_option
@quiet_option
def run(paths, mech, eps, open_store, mech_options, progress, **options):
    """Sanitize INPUT into OUTPUT word by word. "-" means stdin / stdout.

    Only words change: spaces, punctuation and line endings are copied byte for byte (in
    tables, only the --column fields). OUTPUT appears only when the run succeeds.

    \b
    Example:
        dpsanitize run in.txt out.txt              # santext at eps 3.4
        dpsanitize run --mech tem --eps 3 in.txt out.txt
        zcat logs.gz | dpsanitize run --mech laplace --eps 10 - - | gzip > clean.gz
        dpsanitize run --mech tem --eps 3 --column review reviews.csv reviews.clean.csv
        dpsanitize run --mech tem --eps 3 -r --output-dir clean/ --manifest m.jsonl logs/
    """
    request = RunRequest(paths, mech, eps, mech_options, **options)
    _, line = execute(plan(request), open_store=lambda: open_store(progress), progress=progress)
    log.info("%s", line)

