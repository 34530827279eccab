"""Opening input, writing output atomically, and run locks.

The output goes to a temporary file beside the target (mode 0600 while it is written), is
fsynced, given its final mode (what ``open(path, "w")`` would give under the umask, or the
replaced file's mode with ``force``) and only then renamed over the target: a failed or
interrupted run leaves no partial output, and an existing output is always a complete one.
``-`` means stdin / stdout.

Example::

    with output_lock("out.txt"), atomic_output("out.txt", force=False) as out:
        out.write(b"sanitized\\n")
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys

from .errors import Busy, MissingInputError, OutputError, WriteError

TEMP_SUFFIX = ".dpsanitize-tmp"


def open_input(path: str):
    """A binary file object for ``path`` (``-`` = stdin); MissingInputError (66) if unreadable."""
    if path == "-":
        return sys.stdin.buffer
    if os.path.isdir(path):
        raise MissingInputError(f"input is a directory, not a file: {path}")
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise MissingInputError(f"input file not found: {path}") from None
    except OSError as exc:
        raise MissingInputError(f"cannot open input {path} ({exc.strerror})") from None


def input_size(f) -> int | None:
    """Size in bytes of a regular input file, else None (pipes, terminals)."""
    try:
        st = os.fstat(f.fileno())
    except (OSError, ValueError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


class _Output:
    """A binary writer that turns OSError into WriteError (74); BrokenPipeError passes through."""

    def __init__(self, f):
        self._f = f

    def write(self, data: bytes) -> None:
        try:
            self._f.write(data)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise WriteError(f"cannot write the output ({exc.strerror or 'I/O error'})") from None

    def flush(self) -> None:
        try:
            self._f.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise WriteError(f"cannot write the output ({exc.strerror or 'I/O error'})") from None


def check_output_path(path: str, force: bool) -> str:
    """Resolve the target; refuse an existing output without --force, or a directory."""
    target = os.path.realpath(path)  # keep a symlink pointing at the new file
    if os.path.isdir(target):
        raise OutputError(f"output is a directory: {path}")
    if not os.path.isdir(os.path.dirname(target)):
        raise OutputError(f"output folder does not exist: {output_folder(path)}")
    if os.path.lexists(target) and not force:
        raise OutputError(f"output exists: {path}; use --force to replace it")
    return target


@contextlib.contextmanager
def atomic_output(path: str, *, force: bool = False):
    """Yield a writer; publish the data at ``path`` only if the block completes."""
    if path == "-":
        out = _Output(sys.stdout.buffer)
        yield out
        out.flush()
        return
    target = check_output_path(path, force)
    directory = os.path.dirname(target) or "."
    # Named before it exists, so the cleanup below knows it wherever a signal lands (one that
    # comes while os.open runs is raised before its result is stored): 64 random bits, so the
    # name is no other file's.
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{os.urandom(8).hex()}{TEMP_SUFFIX}")
    _UNFINISHED.add(tmp)
    try:
        with os.fdopen(_create_private(tmp, path), "wb") as f:
            out = _Output(f)
            yield out
            out.flush()
            try:
                os.fsync(f.fileno())
                os.fchmod(f.fileno(), final_mode(target))
            except OSError as exc:
                raise WriteError(f"cannot write the output ({exc.strerror})") from None
        try:
            _publish(tmp, target, force)
        except FileExistsError:
            raise OutputError(f"output appeared while running: {path}; not replaced") from None
        except OSError as exc:
            raise OutputError(f"cannot move the output into place ({exc.strerror})") from None
        _UNFINISHED.discard(tmp)
        _fsync_dir(directory)
    except BaseException:  # includes KeyboardInterrupt and SystemExit from signals
        with contextlib.suppress(OSError):  # never created, or a read-only file system (EROFS)
            os.unlink(tmp)
        _UNFINISHED.discard(tmp)
        raise


_UNFINISHED: set[str] = set()  # temporary outputs of this process not yet published or removed


def remove_unfinished() -> None:
    """Remove the temporary outputs whose own cleanup an interrupt cut short (a signal that
    lands inside a cleanup ends it early); the command line calls this last."""
    for tmp in list(_UNFINISHED):
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _UNFINISHED.discard(tmp)


def _create_private(tmp: str, path: str) -> int:
    """A new file only this user can read (0600), never one that existed before."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(tmp, flags, 0o600)
    except FileNotFoundError:
        raise OutputError(f"output folder does not exist: {output_folder(path)}") from None
    except OSError as exc:
        raise OutputError(f"cannot create the output in {output_folder(path)} "
                          f"({exc.strerror})") from None


def output_folder(path: str) -> str:
    return os.path.dirname(path) or "."


def final_mode(target: str) -> int:
    """The replaced file's permission bits, else what ``open(target, "w")`` would create."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # elsewhere: set and restore (briefly, the stricter mask)
    os.umask(mask)
    return mask


def same_file(a: str, b: str) -> bool:
    """True when two paths name the same file (or would, once created); ``-`` as ``a`` is
    standard input, which may be a file redirected with ``<``."""
    if a == "-":
        try:
            here, there = os.fstat(0), os.stat(b)
        except OSError:
            return False
        return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _publish(tmp: str, target: str, force: bool) -> None:
    if force:
        os.replace(tmp, target)
        return
    try:  # a hard link never replaces a file that appeared while we ran
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system
        if os.path.lexists(target):
            raise FileExistsError(target) from None
        os.replace(tmp, target)
    else:
        os.unlink(tmp)


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def default_lock_path(output: str) -> str | None:
    """The lock that guards an output file (None for stdout)."""
    if output == "-":
        return None
    target = os.path.realpath(output)
    return os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.lock")


@contextlib.contextmanager
def output_lock(lock_path: str | None):
    """Hold an exclusive, non-blocking lock; Busy (75) if another run holds it.

    The lock file is removed on release. A run that opened the file just before it was removed
    notices (the path no longer names the file it locked) and tries again.
    """
    import fcntl

    if lock_path is None:
        yield
        return
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise OutputError(f"lock folder does not exist: {output_folder(lock_path)}") from None
            raise OutputError(f"cannot create the lock file {lock_path} ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Busy(f"another dpsanitize run holds the lock {lock_path}; try again later") from None
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)
        os.close(fd)
