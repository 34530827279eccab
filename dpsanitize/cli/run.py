"""``dpsanitize run``: parse the options, then :mod:`..runs` plans and executes the run."""

from __future__ import annotations

import contextlib
import os

import click

from ..formats import FORMATS as INPUT_FORMATS
from .group import cli
from .config import load_config
from ..mechanisms import DEFAULT_MECHANISM
from .options import (MECH_EPS_HELP, WORKERS, check_encoding, check_oov_token,
                      embeddings_options, eps_default_option, log, mech_option,
                      mechanism_options, progress_option, quiet_option, seed_option)


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
@click.option("--format", "fmt_name", type=click.Choice(INPUT_FORMATS), default="auto",
              show_default=True,
              help="Input format; auto: by extension (.csv, .tsv, .jsonl/.ndjson, .parquet/.pq; "
                   "else text). Tables rewrite only the --column fields, keeping everything else.")
@click.option("--column", "columns", multiple=True,
              help="A column (header name; a number with --no-header; Parquet: a string column "
                   "or dotted path into a struct) or JSON field (key or dotted path). Repeatable.")
@click.option("--no-header", is_flag=True, help="CSV/TSV: the first record is data.")
@click.option("--output-dir", type=click.Path(file_okay=False),
              help="Many inputs: every argument is an INPUT; outputs go here under their "
                   "relative paths, each written atomically.")
@click.option("-r", "--recursive", is_flag=True,
              help="With --output-dir: the files below folder inputs (hidden names skipped).")
@click.option("--manifest", type=click.Path(dir_okay=False),
              help="JSON-lines record of finished inputs: a re-run skips them, refuses (73) "
                   "one that changed unless --force, and resumes after a crash.")
@click.option("--ledger", type=click.Path(dir_okay=False),
              help="JSON-lines privacy ledger: each release of an input (SHA-256, mechanism, "
                   "kind, eps, delta, metric, time); `dpsanitize ledger show` sums them.")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True),
              help="With --ledger: refuse (exit 77, before any work) a run that would take an "
                   "input's total eps in the run's metric over this.")
@click.option("--oov", type=click.Choice(["mask", "random", "keep"]), default="mask",
              show_default=True,
              help="Out-of-vocabulary words: a placeholder, a uniform vocabulary word, or kept "
                   "(NOT private; warns).")
@click.option("--oov-token", default="<unk>", show_default=True, callback=check_oov_token,
              help="Placeholder for --oov mask.")
@seed_option
@click.option("--force", is_flag=True,
              help="Replace an existing OUTPUT or --report (keeping its permissions); sanitize "
                   "again an input the --manifest says changed (a second release).")
@click.option("--report", type=click.Path(dir_okay=False),
              help="JSON report: counts, the guarantee, what is released as is (no text, no "
                   "seed). Written like OUTPUT.")
@progress_option
@click.option("--encoding", default="utf-8", show_default=True, callback=check_encoding,
              help="Encoding of INPUT and OUTPUT; undecodable input is exit 65.")
@click.option("--max-line-bytes", type=click.IntRange(min=1), default=10 << 20,
              show_default=True, help="Longest accepted line (record); longer is exit 65.")
@click.option("--lock", type=click.Path(dir_okay=False),
              help="Lock file (default: .OUTPUT.lock, or .dpsanitize.lock in --output-dir); an "
                   "overlapping run exits 75.")
@click.option("--workers", type=WORKERS, default="1", show_default=True,
              help="Worker processes for the 256 KiB blocks ('auto': one per CPU); with --seed "
                   "every value writes the same bytes.")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local",
              show_default=True,
              help="dask: blocks as tasks on a Dask cluster (extra dpsanitize[dask]), same bytes.")
@click.option("--scheduler", metavar="ADDRESS",
              help="With --engine dask: the scheduler (tcp://host:8786); default: a local "
                   "cluster of --workers processes.")
@quiet_option
def run(paths, mech, eps, open_store, mech_options, fmt_name, columns, no_header, progress,
        **options):
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
    from ..runs import RunRequest, execute, plan

    request = RunRequest(paths, mech, eps, mech_options, fmt_name, columns, not no_header,
                         **options)
    _, line = execute(plan(request), open_store=lambda: open_store(progress),
                      progress=lambda job: _progress_bar(job, progress))
    log.info("%s", line)


@contextlib.contextmanager
def _progress_bar(job, progress):
    """Progress over one input (bytes for files, lines for pipes), yielding its callback."""
    from ..progress import progress_bar

    size = os.path.getsize(job.src) if job.src != "-" and os.path.isfile(job.src) else None
    with progress_bar(size, unit="B" if size is not None else " lines", scale=size is not None,
                      desc=os.path.basename(job.src), enabled=progress) as bar:
        yield lambda n_bytes, n_lines: bar.update(n_bytes if size is not None else n_lines)
