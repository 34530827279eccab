"""The ``dpsanitize`` command line: parse, call the library, map its exceptions to exit codes.

The library decides (validation, gates, warnings, privacy units); this package only parses
options (shared bundles in :mod:`.options`), calls it, prints what it returns, and turns its
exceptions into exit codes in one place (:class:`_Group`, with :func:`..errors.exit_code_of`).
Heavy modules (numpy, gensim, annoy, scipy) are imported inside the commands, so
``dpsanitize --help`` stays instant.

Example::

    dpsanitize run --mech tem --eps 3 in.txt out.txt
"""

from __future__ import annotations

import os
import signal
import sys

import click

from ..errors import (EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_TERMINATED, DpsanitizeError,
                      InvalidParameter, exit_code_of)
from . import analysis, info  # noqa: F401  (they register their commands)
from .group import _silence_stdout, cli
from .options import DECODERS, FORMATS  # noqa: F401  (part of the interface)
from .run import run  # noqa: F401


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
    if isinstance(exc, (DpsanitizeError, InvalidParameter)):  # raised outside a command
        click.echo(f"Error: {exc}", err=True)
        return exit_code_of(exc)
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


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(EXIT_BROKEN_PIPE)
