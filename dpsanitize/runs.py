"""One `dpsanitize run`, as a library: plan it (every check that needs no index), then execute it.

:func:`plan` resolves the inputs and outputs, their formats, the lock and refuses what can be
refused before the index is opened (two roles for one file, an existing output, a missing
folder, a manifest or ledger on stdin). :func:`execute` takes the lock, opens the index, builds
the sanitizer, decides per input (manifest, ledger budget: every refusal before any work),
sanitizes on the chosen engine, writes the report and returns it with the one-line summary.

Example::

    request = RunRequest(("in.txt", "out.txt"), mech="tem", epsilon=3.0)
    report, line = execute(plan(request), open_store=open_index)
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass, field

from .errors import InvalidParameter, OutputError
from .formats import FORMATS
from .text import OOV_POLICIES


@dataclass
class RunRequest:
    """What a run was asked to do: the options of `dpsanitize run` (their meaning: OPTIONS)."""

    paths: tuple
    mech: str
    epsilon: float | None  # None: the mechanism's measured default (mechanisms.DEFAULT_EPSILON)
    mech_options: dict = field(default_factory=dict)
    fmt_name: str = "auto"
    columns: tuple = ()
    header: bool = True
    output_dir: str | None = None
    recursive: bool = False
    manifest: str | None = None
    ledger: str | None = None
    budget: float | None = None
    oov: str = "mask"
    oov_token: str = "<unk>"
    seed: int | None = None
    force: bool = False
    report: str | None = None
    encoding: str = "utf-8"
    max_line_bytes: int = 10 << 20
    lock: str | None = None
    workers: int = 1
    engine: str = "local"
    scheduler: str | None = None


# The options of `dpsanitize run` beyond the mechanism, the embeddings, the seed and the output
# on stderr, in --help order: (flags, RunRequest field, kind, help); defaults are RunRequest's.
# Flags are separated by spaces.
# Kinds: those of mechanisms.OPTIONS, and "file", "folder", "text" (optionally with a metavar),
# "many" (repeatable text), "off" (a flag that sets the field False), "workers" (N or 'auto').
OPTIONS = (
    ("--format", "fmt_name", ("choice", FORMATS),
     "Input format; auto: by extension (.csv, .tsv, .jsonl/.ndjson, .parquet/.pq; else text). "
     "Tables rewrite only the --column fields, keeping everything else."),
    ("--column", "columns", ("many",),
     "A column (header name; a number with --no-header; Parquet: a string column or dotted "
     "path into a struct) or JSON field (key or dotted path). Repeatable."),
    ("--no-header", "header", ("off",), "CSV/TSV: the first record is data."),
    ("--output-dir", "output_dir", ("folder",),
     "Many inputs: every argument is an INPUT; outputs go here under their relative paths, "
     "each written atomically."),
    ("-r --recursive", "recursive", ("flag",),
     "With --output-dir: the files below folder inputs (hidden names skipped)."),
    ("--manifest", "manifest", ("file",),
     "JSON-lines record of finished inputs: a re-run skips them, refuses (73) one that changed "
     "unless --force, and resumes after a crash."),
    ("--ledger", "ledger", ("file",),
     "JSON-lines privacy ledger: each release of an input (SHA-256, mechanism, kind, eps, "
     "delta, metric, time); `dpsanitize ledger show` sums them."),
    ("--budget", "budget", ("float", 0, None, True, False),
     "With --ledger: refuse (exit 77, before any work) a run that would take an input's total "
     "eps in the run's metric over this."),
    ("--oov", "oov", ("choice", OOV_POLICIES),
     "Out-of-vocabulary words: a placeholder, a uniform vocabulary word, or kept (NOT private; "
     "warns)."),
    ("--oov-token", "oov_token", ("text",), "Placeholder for --oov mask."),
    ("--force", "force", ("flag",),
     "Replace an existing OUTPUT or --report (keeping its permissions); sanitize again an input "
     "the --manifest says changed (a second release)."),
    ("--report", "report", ("file",),
     "JSON report: counts, the guarantee, what is released as is (no text, no seed). Written "
     "like OUTPUT."),
    ("--encoding", "encoding", ("text",),
     "Encoding of INPUT and OUTPUT; undecodable input is exit 65."),
    ("--max-line-bytes", "max_line_bytes", ("int", 1),
     "Longest accepted line (record); longer is exit 65."),
    ("--lock", "lock", ("file",),
     "Lock file (default: .OUTPUT.lock, or .dpsanitize.lock in --output-dir); an overlapping "
     "run exits 75."),
    ("--workers", "workers", ("workers",),
     "Worker processes for the 256 KiB blocks ('auto': one per CPU); with --seed every value "
     "writes the same bytes."),
    ("--engine", "engine", ("choice", ("local", "dask")),
     "dask: blocks as tasks on a Dask cluster (extra dpsanitize[dask]), same bytes."),
    ("--scheduler", "scheduler", ("text", "ADDRESS"),
     "With --engine dask: the scheduler (tcp://host:8786); default: a local cluster of "
     "--workers processes."),
)


@dataclass
class Plan:
    request: RunRequest
    jobs: list
    formats: dict
    lock: str | None


def plan(r: RunRequest) -> Plan:
    """The jobs of a run, after every check that needs no index (InvalidParameter: exit 2)."""
    from .batch import Job, decide, expand, formats_for
    from .io import check_output_path, default_lock_path
    from .ledger import check_budget

    if r.scheduler and r.engine != "dask":
        raise InvalidParameter("--scheduler needs --engine dask")
    _check_text_options(r)
    if r.epsilon is None:
        from .mechanisms import default_epsilon

        r.epsilon = default_epsilon(r.mech)
    check_budget(r.budget, r.ledger)
    if r.output_dir is None:
        if len(r.paths) != 2:
            raise InvalidParameter("give INPUT OUTPUT, or INPUT... --output-dir DIR")
        if r.recursive:
            raise InvalidParameter("--recursive needs --output-dir")
        src, dst = r.paths
        jobs = [Job(src, dst, os.path.basename(dst))]
        lock = r.lock or default_lock_path(dst)
    else:
        lock = r.lock or os.path.join(r.output_dir, ".dpsanitize.lock")
        jobs = expand(r.paths, r.output_dir, recursive=r.recursive,
                      exclude=(r.report, r.manifest, lock))
    _check_streams(r, jobs)
    roles = {"--report": r.report, "--lock": lock, "--manifest": r.manifest,
             "--ledger": r.ledger}
    for job in jobs:
        check_distinct({"INPUT": job.src, "OUTPUT": job.dst, **roles})
    formats = formats_for(jobs, r.fmt_name, r.columns, header=r.header, encoding=r.encoding,
                          many=r.output_dir is not None)
    if r.report and r.report != "-":
        check_output_path(r.report, r.force)
    if r.ledger:  # its folder must exist: a release is recorded before its output appears
        check_output_path(r.ledger, force=True)
    if r.output_dir is None and jobs[0].dst != "-":  # its folder (whether it exists: see decide)
        check_output_path(jobs[0].dst, force=True)
    if not r.manifest:  # existing outputs fail fast, before the index is opened
        decide(jobs, None, "", r.force)
    if r.output_dir is not None:
        try:
            os.makedirs(r.output_dir, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output folder {r.output_dir} "
                              f"({exc.strerror})") from None
    return Plan(r, jobs, formats, lock)


def _check_text_options(r: RunRequest) -> None:
    import codecs

    from .text import has_control_characters

    try:
        codecs.lookup(r.encoding)
    except LookupError:
        raise InvalidParameter(f"--encoding {r.encoding}: unknown encoding") from None
    if has_control_characters(r.oov_token):  # they separate lines and records
        raise InvalidParameter("--oov-token must not contain line breaks or other control "
                               "characters")


def _check_streams(r: RunRequest, jobs) -> None:
    if r.report == "-" and any(j.dst == "-" for j in jobs):
        raise InvalidParameter("--report - needs OUTPUT to be a file (stdout carries the text)")
    if r.manifest and any("-" in (j.src, j.dst) for j in jobs):
        raise InvalidParameter("--manifest needs files, not stdin or stdout")
    if r.ledger and any(j.src == "-" for j in jobs):
        raise InvalidParameter("--ledger needs input files (it records their SHA-256 before "
                               "any work), not stdin")
    special = [j.src for j in jobs if (r.ledger or r.manifest) and _special(j.src)]
    if special:
        raise InvalidParameter(f"--{'ledger' if r.ledger else 'manifest'} needs regular input "
                               f"files (their SHA-256 is taken before the run): {special[0]} "
                               f"is a pipe or a device")


def _special(path: str) -> bool:
    """A pipe, socket or device: it can be read only once (a missing path is not special)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def check_distinct(paths: dict) -> None:
    """Refuse two roles for one file (a report written over the input, say): exit 2."""
    from .io import same_file

    named = [(role, p) for role, p in paths.items()
             if p and (p != "-" or role == "INPUT")]  # stdin may be a file too
    for i, (role_a, a) in enumerate(named):
        for role_b, b in named[i + 1:]:
            if same_file(a, b):
                raise InvalidParameter(f"{role_a} and {role_b} are the same file: {b}")


def execute(p: Plan, *, open_store, progress: bool | None = False) -> tuple[dict, str]:
    """Run the plan; returns the report and the one-line summary. ``open_store()`` opens the
    index; ``progress``: per input, False none, True a bar, None a bar on a terminal and
    periodic log lines elsewhere (:func:`.progress.file_progress`)."""
    from .batch import (CHANGED, Manifest, check_none_changed, decide, open_ledger,
                        options_fingerprint, sanitize_jobs)
    from .io import atomic_output, output_lock
    from .mechanisms import create
    from .pipeline import Sanitizer, summary_line
    from .progress import file_progress, log

    r = p.request
    with contextlib.ExitStack() as stack:
        stack.enter_context(output_lock(p.lock))
        mechanism = create(r.mech, epsilon=r.epsilon, store=open_store(), **r.mech_options)
        sanitizer = Sanitizer(mechanism, oov=r.oov, oov_token=r.oov_token, seed=r.seed)
        fingerprint = options_fingerprint({
            "mechanism": r.mech, "epsilon": r.epsilon, "oov": r.oov,
            # the device changes the speed, never the output
            "options": {k: v for k, v in r.mech_options.items() if k != "device"},
            "oov_token": r.oov_token, "vocabulary": mechanism.store.manifest["key"],
            "format": r.fmt_name, "columns": list(r.columns), "header": r.header,
            "encoding": r.encoding})
        book = Manifest(r.manifest) if r.manifest else None
        decisions = decide(p.jobs, book, fingerprint, r.force)  # every refusal before any work
        releases = open_ledger(r.ledger, r.budget, p.jobs, decisions, mechanism)
        if releases is not None:
            stack.callback(releases.close)
        report_out = stack.enter_context(atomic_output(r.report, force=r.force)) \
            if r.report else None
        client = _dask_client(stack, r.scheduler, max(r.workers, 2)) \
            if r.engine == "dask" else None
        results = sanitize_jobs(
            sanitizer, p.jobs, formats=p.formats, decisions=decisions, force=r.force,
            manifest=book, ledger=releases, fingerprint=fingerprint,
            named_streams=r.output_dir is not None, encoding=r.encoding,
            progress=None if progress is False else lambda job: file_progress(job.src, progress),
            max_line_bytes=r.max_line_bytes, workers=r.workers, client=client)
        report = sanitizer.report()
        if r.output_dir is not None:
            report["files"] = results
        if report_out is not None:
            report_out.write(json.dumps(report, indent=1).encode() + b"\n")
    done = sum(row["status"] == "sanitized" for row in results)
    changed = sum(row["status"] == CHANGED for row in results)
    prefix = f"{done} of {len(results)} files sanitized ({len(results) - done - changed} " \
        "skipped" + (f", {changed} changed during the run" if changed else "") + "); " \
        if r.output_dir is not None or book is not None else ""
    line = prefix + summary_line(report)
    if changed:  # the rest is released and reported; the run still fails (75, retry)
        log.info("%s", line)
        check_none_changed(results)
    return report, line


def _dask_client(stack, scheduler, workers):
    from .engines.dask import close, connect

    client = connect(scheduler, workers)
    stack.callback(close, client)
    return client
