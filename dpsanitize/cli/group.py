"""The ``dpsanitize`` command group, and :func:`exit_status`: the one place where exceptions
become exit codes and privacy warnings become messages (the library decides both; the CLI
only says them).

Example::

    @cli.command()
    def neighbors(...): ...
"""

from __future__ import annotations

import os
import sys
import warnings

import click

from .. import __version__
from ..errors import DpsanitizeError, InvalidParameter, PrivacyWarning, exit_code_of
from .options import log

CONTEXT = {"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "DPSANITIZE",
           "max_content_width": 100}

EXIT_CODES = """\b
Exit codes:
  0   success            65  bad input data (encoding, line too long)
  2   usage error        66  missing input          73  cannot create output
  70  internal error     74  I/O error while writing
  75  locked, or an input changed during the run (retry)
  77  over the privacy --budget
  78  bad embeddings, index or config
  130 SIGINT  143 SIGTERM  141 broken pipe
"""


class _Group(click.Group):
    """Privacy warnings become messages on stderr; library exceptions end the command through
    :func:`exit_status`."""

    def invoke(self, ctx):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", PrivacyWarning)
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except (BrokenPipeError, DpsanitizeError, InvalidParameter) as exc:
            raise click.exceptions.Exit(exit_status(exc)) from None


def exit_status(exc: BaseException) -> int:
    """The exit code of what ended a command (:func:`..errors.exit_code_of`), said on stderr
    without input text: the one place where exceptions become exit codes and messages."""
    if isinstance(exc, click.exceptions.Exit):
        return exc.exit_code
    if isinstance(exc, click.ClickException):
        exc.show()
        return exc.exit_code
    if isinstance(exc, InvalidParameter):
        click.UsageError(str(exc)).show()
    elif isinstance(exc, BrokenPipeError):  # the reader went away (e.g. `| head`): end quietly
        _silence_stdout()
    elif isinstance(exc, DpsanitizeError):
        click.echo(f"Error: {exc}", err=True)
    elif isinstance(exc, MemoryError):
        click.echo("dpsanitize: out of memory", err=True)
    elif os.environ.get("DPSANITIZE_DEBUG"):
        raise exc
    else:
        click.echo(f"dpsanitize: internal error ({type(exc).__name__}); set DPSANITIZE_DEBUG=1 "
                   f"for a traceback (it may contain input text)", err=True)
    return exit_code_of(exc)


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
        dpsanitize run --mech tem --eps 3 in.txt out.txt
    """


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
