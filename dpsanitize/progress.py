"""Messages and progress on stderr: log lines (``dpsanitize: ...``), and a tqdm bar on a
terminal, elsewhere a progress line every half minute.

A long command run from cron or with stderr in a log file would otherwise say nothing for
minutes. The lines go to the ``dpsanitize`` logger at INFO, so ``-q`` silences them like every
other message; they hold counts only, never input text.

Example::

    setup_logging(quiet=False)
    with progress_bar(total=20, unit="run", desc="eval") as bar:
        bar.update(1)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time

log = logging.getLogger("dpsanitize")
EVERY_SECONDS = float(os.environ.get("DPSANITIZE_PROGRESS_SECONDS", "30"))


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (click's test runner swaps it per invocation)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def setup_logging(quiet: bool) -> None:
    """The ``dpsanitize`` logger to stderr: INFO and up, or WARNING and up when ``quiet``."""
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("dpsanitize: %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.WARNING if quiet else logging.INFO)


def progress_bar(total=None, *, unit: str = "", desc: str = "", enabled: bool | None = None,
                 scale: bool = False, every: float | None = None):
    """``enabled`` None: a bar when stderr is a terminal, else periodic lines; True: a bar;
    False: nothing."""
    if enabled is None and not _stderr_is_terminal():
        return _Lines(total, unit, desc, EVERY_SECONDS if every is None else every)
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc or None, unit_scale=scale, leave=False,
                dynamic_ncols=True, disable=not enabled if enabled is not None else None)


@contextlib.contextmanager
def file_progress(path: str, enabled: bool | None = None):
    """Progress over one input, in bytes for a file and in lines for a pipe; yields the
    callback ``tick(n_bytes, n_lines)``."""
    size = os.path.getsize(path) if path != "-" and os.path.isfile(path) else None
    with progress_bar(size, unit="B" if size is not None else " lines", scale=size is not None,
                      desc=os.path.basename(path), enabled=enabled) as bar:
        yield lambda n_bytes, n_lines: bar.update(n_bytes if size is not None else n_lines)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _Lines:
    """tqdm's ``update``/``close`` as a log line at most every ``every`` seconds."""

    def __init__(self, total, unit, desc, every):
        self.total, self.unit, self.desc, self.every = total, unit.strip(), desc, every
        self.n = 0
        self.started = self.last = time.monotonic()

    def update(self, n=1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            done = f"{self.n:,}" + (f" of {self.total:,}" if self.total else "")
            share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
            log.info("%s: %s %s%s, %.0f s", self.desc or "progress", done, self.unit, share,
                     now - self.started)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
