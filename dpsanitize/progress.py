"""Progress on stderr: a tqdm bar on a terminal, elsewhere a line every half minute.

A long command run from cron or with stderr in a log file would otherwise say nothing for
minutes. The lines go to the ``dpsanitize`` logger at INFO, so ``-q`` silences them like every
other message; they hold counts only, never input text.

Example::

    with progress_bar(total=20, unit="run", desc="eval") as bar:
        bar.update(1)
"""

from __future__ import annotations

import logging
import os
import sys
import time

log = logging.getLogger("dpsanitize")
EVERY_SECONDS = float(os.environ.get("DPSANITIZE_PROGRESS_SECONDS", "30"))


def progress_bar(total=None, *, unit: str = "", desc: str = "", enabled: bool | None = None,
                 scale: bool = False, every: float | None = None):
    """``enabled`` None: a bar when stderr is a terminal, else periodic lines; True: a bar;
    False: nothing."""
    if enabled is None and not _stderr_is_terminal():
        return _Lines(total, unit, desc, EVERY_SECONDS if every is None else every)
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc or None, unit_scale=scale, leave=False,
                dynamic_ncols=True, disable=not enabled if enabled is not None else None)


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
