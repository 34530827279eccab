"""The ``dpsanitize`` command line: parse, call the library, map its exceptions to exit codes.

The library decides (validation, gates, warnings, privacy units); this package only parses
options (shared bundles in :mod:`.options`), calls it, prints what it returns, and turns its
exceptions into exit codes in one place (:func:`.group.exit_status`).
Heavy modules (numpy, gensim, annoy, scipy) are imported inside the commands, so
``dpsanitize --help`` stays instant.

Example::

    dpsanitize run --mech tem --eps 3 in.txt out.txt
"""

from __future__ import annotations

import signal
import sys

import click

from ..errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_TERMINATED
from ..io import remove_unfinished
from . import analysis, info  # noqa: F401  (they register their commands)
from .group import _silence_stdout, cli, exit_status
from .run import run  # noqa: F401


# --------------------------------------------------------------------------------------------
# entry point

_signalled: int | None = None  # the exit code of the SIGINT/SIGTERM received, if any


def _on_signal(signum, frame):
    """The first SIGINT/SIGTERM ends the run through its cleanup; later ones are ignored, so
    that cleanup runs to its end."""
    global _signalled
    _signalled = EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    if signum == signal.SIGTERM:
        raise SystemExit(EXIT_TERMINATED)
    raise KeyboardInterrupt


def main(argv=None) -> None:
    """Console entry point: exit codes for signals, broken pipes and internal errors."""
    signal.signal(signal.SIGTERM, _on_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when ignored (nohup)
        signal.signal(signal.SIGINT, _on_signal)
    try:
        code = cli.main(args=argv, prog_name="dpsanitize", standalone_mode=False)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - never a traceback: it could quote input text
        sys.exit(_interrupted(exc) or exit_status(exc))
    finally:  # after the one signal we act on, the rest are ignored: this runs to its end
        remove_unfinished()
    _flush_stdout()
    if isinstance(code, int) and code:
        sys.exit(code)


def _interrupted(exc: BaseException) -> int | None:
    """The exit code of a signal, whatever it became on the way (an import of a Cython module
    that the signal interrupts raises ValueError, for one); None when no signal came."""
    if _signalled is None and not isinstance(exc, (click.exceptions.Abort, KeyboardInterrupt)):
        return None
    _forget_interrupt()
    if _signalled in (None, EXIT_INTERRUPTED):
        click.echo("dpsanitize: interrupted", err=True)
    return _signalled or EXIT_INTERRUPTED


def _forget_interrupt() -> None:
    """Let exit 130 stand. CPython remembers a KeyboardInterrupt that passed through exec() of
    a string (dataclasses do that while sklearn is imported lazily) and then ends the process
    by SIGINT (status -2) although the interrupt was handled; its next exec() of a string
    clears that memory."""
    exec("")  # noqa: S102 - a constant empty string


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(EXIT_BROKEN_PIPE)
