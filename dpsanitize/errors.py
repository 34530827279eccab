"""Exceptions and warnings that carry meaning, each exception with the exit code the CLI maps it to.

Plain Python classes (no click): the CLI maps them to exit codes in one place. Messages never
contain input text: they name line numbers and byte offsets only.

Example::

    raise InputDataError("line 12: not valid utf-8 at byte offset 3")
    warnings.warn("...", PrivacyWarning)
"""

import os

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_BROKEN_PIPE = 141


class PrivacyWarning(UserWarning):
    """A run that weakens its own guarantee: a fixed seed, kept out-of-vocabulary words, an
    experimental mechanism (diffprivlib's ``PrivacyLeakWarning`` is the model)."""


class DpsanitizeError(Exception):
    """Base class; exit code 70 (internal error) unless a subclass says otherwise."""

    exit_code = os.EX_SOFTWARE

    def __init__(self, message: str = ""):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


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


class InputChanged(InputDataError):
    """An input file changed while it was read (replaced, cut short, or, with --ledger or
    --manifest, another SHA-256 than before the run): run again once it is complete: exit 75."""

    exit_code = os.EX_TEMPFAIL


class OverBudget(DpsanitizeError):
    """The run would take an input's privacy loss over its --budget: exit 77 (EX_NOPERM)."""

    exit_code = os.EX_NOPERM


class ResourceError(DpsanitizeError):
    """Embeddings, index or configuration missing, malformed or inconsistent: exit 78."""

    exit_code = os.EX_CONFIG


class InvalidParameter(ValueError):
    """A parameter value is out of range; the CLI reports it as a usage error (exit 2)."""


class CalibrationError(InvalidParameter):
    """epsilon is too small for the mechanism's calibration to exist."""


def exit_code_of(exc: BaseException) -> int:
    """The exit code an exception ends a run with: the one table from meaning to code.

    Example::

        exit_code_of(InputDataError("line 3: ..."))   # 65
    """
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, SystemExit) and isinstance(exc.code, int):
        return exc.code
    if isinstance(exc, InvalidParameter):
        return EXIT_USAGE
    if isinstance(exc, BrokenPipeError):
        return EXIT_BROKEN_PIPE
    if isinstance(exc, MemoryError):
        return os.EX_OSERR
    return int(getattr(exc, "exit_code", os.EX_SOFTWARE))
