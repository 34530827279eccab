"""The ``dpsanitize`` command group, and the one place where library exceptions become exit
codes and privacy warnings become messages (the library decides both; the CLI only says them).

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
from ..errors import (EXIT_BROKEN_PIPE, DpsanitizeError, InvalidParameter, PrivacyWarning,
                      exit_code_of)
from .options import log

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
        dpsanitize run --mech tem --eps 3 in.txt out.txt
    """


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
