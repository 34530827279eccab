"""Many inputs in one run: expand files and folders into jobs, keep a manifest for cron.

Each input becomes a job with an output path under the output folder that keeps its relative
path. The manifest (JSON lines, append-only) records per input its SHA-256, size, output,
mechanism, epsilon, options fingerprint, time and exit status, so that a re-run skips what is
finished and unchanged, refuses an input that changed since (sanitizing it again is a second
release), and resumes after a crash without redoing finished files. Keep the manifest with the
input: a checksum of a small file can confirm a guess of its content.

Example::

    jobs = expand(["logs/", "extra.txt"], "clean/", recursive=True)
    manifest = Manifest("clean/manifest.jsonl")
    decision = manifest.decide(job, options_fingerprint, force=False)   # "run" or "skip"
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from itertools import chain, islice

from .errors import (InputChanged, InvalidParameter, MissingInputError, OutputError,
                     exit_code_of)
from .io import check_output_path


@dataclass
class Job:
    """One input file and where its output goes."""

    src: str  # as given or found
    dst: str
    rel: str  # the output's path relative to the output folder
    sha256: str = ""
    size: int = 0

    @property
    def stream(self) -> int:
        """A number naming this input (its relative path) that keys its random streams."""
        return int.from_bytes(hashlib.sha256(self.rel.encode("utf-8", "surrogateescape")).digest()[:8],
                              "big")


def expand(inputs, output_dir: str, *, recursive: bool = False, exclude=()) -> list[Job]:
    """Jobs for files and (with ``recursive``) the files below folders, in sorted order.

    A file keeps its path relative to the current folder when it lies below it, else its name;
    a file found in a folder keeps its path relative to that folder. Hidden files and folders
    (names starting with '.'), the output folder and the paths in ``exclude`` are skipped.
    """
    out_root = os.path.realpath(output_dir)
    skip = {os.path.realpath(p) for p in exclude if p}
    jobs = []
    for given in inputs:
        if given == "-":
            raise InvalidParameter("'-' (stdin) cannot be one of several inputs; pipe one input "
                                   "to `dpsanitize run ... - -` instead")
        if os.path.isdir(given):
            if not recursive:
                raise MissingInputError(f"input is a directory: {given}; add --recursive to "
                                        f"sanitize the files below it")
            for root, dirs, files in os.walk(given):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                                 and os.path.realpath(os.path.join(root, d)) != out_root)
                for name in sorted(files):
                    path = os.path.join(root, name)
                    if name.startswith(".") or os.path.realpath(path) in skip or \
                            not os.path.isfile(path):
                        continue
                    rel = os.path.relpath(path, given)
                    jobs.append(Job(path, os.path.join(output_dir, rel), rel))
        elif os.path.isfile(given):
            rel = os.path.relpath(given)
            if rel.startswith(os.pardir + os.sep):
                rel = os.path.basename(given)
            jobs.append(Job(given, os.path.join(output_dir, rel), rel))
        elif os.path.exists(given):
            raise MissingInputError(f"input is not a regular file: {given}")
        else:
            raise MissingInputError(f"input file not found: {given}")
    seen = {}
    for job in jobs:
        key = os.path.normpath(job.rel)
        if key in seen:
            raise InvalidParameter(f"two inputs would write the same output {job.dst}: "
                                   f"{seen[key]} and {job.src}")
        seen[key] = job.src
    return jobs


CHANGED = "changed during the run (not written)"


def checksum(path: str) -> tuple[str, int]:
    """SHA-256 and size of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def check_unchanged(job: Job) -> None:
    """InputChanged unless ``job.src`` still has the SHA-256 and size taken before the run
    (when one was taken): the manifest and the ledger must name the text actually released."""
    if not job.sha256:
        return
    try:
        same = checksum(job.src) == (job.sha256, job.size)
    except OSError as exc:
        raise InputChanged(f"{job.src} could not be read again after it was sanitized "
                           f"({exc.strerror}): no output was written for it") from None
    if not same:
        raise InputChanged(f"{job.src} changed while it was being sanitized: " + (
            "what went to stdout is recorded under its SHA-256 from before the run"
            if job.dst == "-" else "no output was written for it; run again once it is "
                                   "complete"))


def options_fingerprint(options: dict) -> str:
    """sha256 of what decides an output besides the input: mechanism, epsilon, options, W."""
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()


class Manifest:
    """The append-only record of finished (and failed) inputs; one JSON object a line."""

    def __init__(self, path: str):
        self.path = path
        self.entries: list[dict] = []
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    with contextlib.suppress(ValueError):  # a line cut short by a crash
                        entry = json.loads(line)
                        if isinstance(entry, dict):
                            self.entries.append(entry)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise OutputError(f"cannot read the manifest {path} ({exc.strerror})") from None
        self._done = {}
        for entry in self.entries:
            if entry.get("status") == "done" and isinstance(entry.get("input"), str):
                self._done[entry["input"]] = entry

    def decide(self, job: Job, fingerprint: str, force: bool) -> str:
        """"skip" (finished, unchanged), "run", or OutputError (changed since, no --force)."""
        previous = self._done.get(os.path.abspath(job.src))
        if previous is None:
            return "run"
        same = (previous.get("sha256") == job.sha256 and previous.get("options") == fingerprint
                and previous.get("output") == os.path.abspath(job.dst))
        if same and os.path.isfile(job.dst):
            return "skip"
        if force:
            return "run"
        what = "has changed" if previous.get("sha256") != job.sha256 else (
            "was sanitized with other options or to another output" if not same else
            "was sanitized, but its output is gone")
        raise OutputError(f"{job.src} {what} since the run of {previous.get('finished', '?')} "
                          f"recorded in {self.path}; sanitizing it again is a second release "
                          f"(the privacy loss adds up): add --force to do it anyway")

    def record(self, job: Job, *, status: str, code: int, fingerprint: str, mechanism: str,
               epsilon: float, seconds: float) -> None:
        """Append one entry and fsync it, so a crash never loses a finished file's line."""
        entry = {"input": os.path.abspath(job.src), "sha256": job.sha256, "bytes": job.size,
                 "output": os.path.abspath(job.dst), "mechanism": mechanism, "epsilon": epsilon,
                 "options": fingerprint, "status": status, "exit": code,
                 "seconds": round(seconds, 3),
                 "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, (json.dumps(entry) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise OutputError(f"cannot write the manifest {self.path} ({exc.strerror})") from None
        if status == "done":
            self._done[entry["input"]] = entry


def formats_for(jobs, fmt_name: str, columns, *, header: bool, encoding: str,
                many: bool) -> dict:
    """Each job's record format (None for text), by extension with ``auto``.

    In a batch (``many``) with ``auto``, text files are sanitized whole and ``columns`` apply
    to the CSV, TSV and JSONL files among them.
    """
    from .formats import check_encoding, detect, make_format

    formats = {}
    for job in jobs:
        name = detect(job.src, fmt_name)
        whole_text = many and fmt_name == "auto" and name == "text"
        formats[job.rel] = make_format(name, () if whole_text else columns, header=header)
        if hasattr(formats[job.rel], "bind_file"):  # Parquet: columns checked before any work
            formats[job.rel].bind_file(job.src)
    if any(formats.values()):
        check_encoding(encoding)
    return formats


def decide(jobs, manifest: Manifest | None, fingerprint: str, force: bool) -> dict:
    """"run" or "skip" per job; raises for an existing output or (manifest) a changed input."""
    decisions = {}
    for job in jobs:
        if manifest is not None:
            job.sha256, job.size = checksum(job.src)
        decisions[job.rel] = manifest.decide(job, fingerprint, force) if manifest else "run"
        if decisions[job.rel] == "run" and job.dst != "-" and \
                os.path.isdir(os.path.dirname(job.dst) or "."):
            check_output_path(job.dst, force)
    return decisions


@dataclass(frozen=True)
class _Start:
    job: Job


@dataclass(frozen=True)
class _End:
    job: Job


@dataclass(frozen=True)
class _Failed:
    job: Job
    error: BaseException


def open_ledger(path, budget, jobs, decisions, mechanism):
    """The privacy ledger of ``path``, opened and locked for the run (None without one), after
    refusing (OverBudget) a run that would take an input over ``budget``; the inputs to
    sanitize get their SHA-256. Close it (a context manager) when the run ends."""
    if not path:
        return None
    from .ledger import Ledger

    ledger = Ledger(path, lock=True)
    try:
        todo = [job for job in jobs if decisions[job.rel] == "run"]
        for job in todo:
            if not job.sha256:
                job.sha256, job.size = checksum(job.src)
        ledger.check([(job.src, job.sha256) for job in todo], mechanism, budget)
    except BaseException:
        ledger.close()
        raise
    return ledger


def sanitize_jobs(sanitizer, jobs, *, formats: dict, decisions: dict, force: bool,
                  manifest: Manifest | None = None, ledger=None, fingerprint: str = "",
                  named_streams=True,
                  progress=None, encoding: str = "utf-8", workers: int = 1, client=None,
                  **read_options) -> list[dict]:
    """Sanitize each job whose decision is "run", each output written atomically.

    The blocks of all inputs form one ordered stream, so ``workers`` processes rewrite the
    blocks of the next files while the current one is written; outputs still finish one after
    the other, in order; with a Dask ``client`` the blocks are tasks on its cluster.
    ``progress(job)`` gives a context manager yielding a callback for the
    job's progress. A file that fails leaves no output (and a "failed" manifest entry); the
    files finished before it stay. One of several inputs that changed while it was read (its
    SHA-256 differs after, or a worker found it replaced or cut short) fails alone (status
    CHANGED; :func:`check_none_changed`): the others go on. Returns one dict per job: input,
    output, status and counts.
    """
    from .io import atomic_output
    from .formats import format_name
    from .rewrite import Counters
    from .stream import Block, ChangedBlock

    rows = {job.rel: {"input": job.src, "output": job.dst,
                      "format": format_name(formats[job.rel]),
                      "status": "skipped (finished and unchanged, see the manifest)"}
            for job in jobs}
    todo = [job for job in jobs if decisions[job.rel] == "run"]
    spans = workers > 1 and client is None  # local workers read their blocks themselves
    items = _items(sanitizer, todo, formats, named_streams, encoding, spans, read_options)
    if workers > 1 and len(todo) == 1:  # processes pay only for more than one block
        head = list(islice(items, 3))
        items = chain(head, items)
        workers = workers if sum(isinstance(h, Block) for h in head) > 1 else 1
    results = sanitizer.process(items, encoding, workers if todo else 1, client)
    current, stack, counts, tick, started = None, None, None, None, 0.0

    def note(job, status, code):
        if manifest is not None:
            manifest.record(job, status=status, code=code, fingerprint=fingerprint,
                            mechanism=sanitizer.mechanism.name,
                            epsilon=sanitizer.mechanism.epsilon,
                            seconds=time.perf_counter() - started)

    def leave_unwritten(exc: InputChanged):
        """The current input changed while it was read: no output for it, the others go on
        (a single input stops the run at once)."""
        nonlocal current, stack
        if len(todo) == 1:
            raise exc
        stack.__exit__(type(exc), exc, exc.__traceback__)  # removes the partial output
        stack = None  # only now: an interrupt in there leaves the rest to the handler below
        job, current = current, None  # its remaining blocks and its end pass unread
        note(job, "failed", exc.exit_code)
        rows[job.rel]["status"] = CHANGED

    try:
        with contextlib.closing(results):
            for item in results:
                if isinstance(item, _Failed):  # reading failed: the inputs after it go unread
                    raise item.error
                if current is None and not isinstance(item, _Start):
                    continue  # the rest of an input left unwritten
                if isinstance(item, _Start):
                    current, counts, started = item.job, Counters(), time.perf_counter()
                    stack = contextlib.ExitStack()
                    if current.dst != "-":
                        _make_parent(current.dst)
                    out = stack.enter_context(atomic_output(current.dst, force=force))
                    if hasattr(formats[current.rel], "writer"):  # Parquet: row groups
                        out = stack.enter_context(formats[current.rel].writer(out))
                    tick = stack.enter_context(progress(current)) if progress else None
                    if ledger is not None and current.dst == "-":  # released as it is written
                        ledger.record(current.src, current.sha256, sanitizer.mechanism)
                elif isinstance(item, _End):
                    try:  # the manifest and the ledger name what was read
                        check_unchanged(current)
                    except InputChanged as exc:
                        leave_unwritten(exc)
                        continue
                    if ledger is not None and current.dst != "-":  # before the output exists
                        ledger.record(current.src, current.sha256, sanitizer.mechanism)
                    stack, done = None, stack
                    done.close()  # publishes the output
                    sanitizer.counters.add(counts)
                    note(current, "done", 0)
                    rows[current.rel].update(status="sanitized", counts=asdict(counts))
                    current = None
                elif isinstance(item, ChangedBlock):  # a worker found the file cut short
                    leave_unwritten(InputChanged(f"{current.src}: {item.message}"))
                else:
                    data, block_counts = item
                    out.write(data)
                    counts.add(block_counts)
                    if tick is not None:
                        tick(block_counts.bytes, block_counts.lines)
    except BaseException as exc:
        if stack is not None:
            stack.__exit__(type(exc), exc, exc.__traceback__)  # removes the partial output
        if current is not None:
            note(current, "failed", exit_code_of(exc))
        raise
    return list(rows.values())


def check_none_changed(rows: list[dict]) -> None:
    """InputChanged (exit 75) naming the inputs of a batch that :func:`sanitize_jobs` left
    unwritten because they changed while they were read (after the rest was published)."""
    changed = [row["input"] for row in rows if row["status"] == CHANGED]
    if changed:
        raise InputChanged(
            f"{len(changed)} input{'s' * (len(changed) > 1)} changed while being sanitized and "
            f"{'were' if len(changed) > 1 else 'was'} not written (the others were): "
            + ", ".join(changed[:3]) + (", ..." if len(changed) > 3 else "")
            + "; run again once complete")


def _items(sanitizer, jobs, formats, named_streams, encoding, spans, read_options):
    """Markers and blocks of every job, in order; reading errors become markers in place."""
    from .errors import DpsanitizeError
    from .io import open_input

    for job in jobs:
        yield _Start(job)
        try:
            src = open_input(job.src)
            with contextlib.ExitStack() as stack:
                if job.src != "-":
                    stack.enter_context(src)
                for block in sanitizer.blocks(src, encoding=encoding, fmt=formats[job.rel],
                                              stream=job.stream if named_streams else None,
                                              spans=spans, **read_options):
                    yield block
        except DpsanitizeError as exc:
            yield _Failed(job, exc)
            return
        yield _End(job)


def _make_parent(path: str) -> None:
    folder = os.path.dirname(path)
    if folder:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output folder {folder} ({exc.strerror})") from None
