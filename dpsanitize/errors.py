"""Exceptions that carry meaning, each with the exit code the CLI maps it to.

Messages never contain input text: they name line numbers and byte offsets only.

Example::

    raise InputDataError("line 12: not valid utf-8 at byte offset 3")
"""

import os

import click

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_BROKEN_PIPE = 141


class DpsanitizeError(click.ClickException):
    """Base class; exit code 70 (internal error) unless a subclass says otherwise."""

    exit_code = os.EX_SOFTWARE


class InputDataError(DpsanitizeError):
    """The input text is not valid (encoding, line too long): exit 65."""

    exit_code = os.EX_DATAERR


class MissingInputError(DpsanitizeError):
    """An input file does not exist or cannot be opened: exit 66."""

    exit_code = os.EX_NOINPUT


class OutputError(DpsanitizeError):
    """The output (or its temporary file) cannot be created: exit 73."""

    exit_code = os.EX_CANTCREAT


class CacheUnwritable(OutputError):
    """The index cache folder cannot be created or written: exit 73, like any output."""

    @classmethod
    def at(cls, path: str, exc: OSError) -> "CacheUnwritable":
        return cls(f"cannot write the index cache in {path} ({exc.strerror or exc}); point "
                   f"--cache-dir or DPSANITIZE_CACHE at a writable folder")


class WriteError(DpsanitizeError):
    """Writing failed part-way (disk full, I/O error): exit 74."""

    exit_code = os.EX_IOERR


class Busy(DpsanitizeError):
    """Another run holds the lock; try again later: exit 75."""

    exit_code = os.EX_TEMPFAIL


class ResourceError(DpsanitizeError):
    """Embeddings, index or configuration missing, malformed or inconsistent: exit 78."""

    exit_code = os.EX_CONFIG


class InvalidParameter(ValueError):
    """A parameter value is out of range; the CLI reports it as a usage error (exit 2)."""


class CalibrationError(InvalidParameter):
    """epsilon is too small for the mechanism's calibration to exist."""
