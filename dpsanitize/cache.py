"""Look after the index cache: list its entries, remove old or all of them.

An entry is a folder named by its key (see :mod:`.index`) with a manifest; beside the entries the
cache holds derived arrays (``derived/``), source pointers (``sources/``), build locks and, while
a build runs, temporary folders. Last use is the entry folder's modification time, which every
load refreshes where the cache is writable.

Example::

    sizes = {e.key: e.size for e in list_entries(cache)}
    removed = clean(cache, older_than=30 * 86400)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

from .errors import CacheUnwritable


@dataclass
class Entry:
    """One cache entry, as ``cache list`` shows it (no text: the vocabulary is public data)."""

    key: str
    path: str
    size: int  # bytes, derived arrays included
    source: str
    vocab_size: int | None
    dim: int | None
    created: str
    last_used: float  # seconds since the epoch
    ok: bool  # the manifest could be read

    def as_dict(self) -> dict:
        used = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_used))
        return {"key": self.key, "path": self.path, "bytes": self.size, "source": self.source,
                "vocab_size": self.vocab_size, "dim": self.dim, "created": self.created,
                "last_used": used, "ok": self.ok}


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text) -> float:
    """Seconds in a time span written with a unit s, m, h, d or w: ``parse_duration("12h")``."""
    text = str(text).strip().lower()
    try:
        number = float(text[:-1]) if text[-1:] in DURATION_UNITS else None
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or number < 0:
        raise ValueError("expected a number with a unit s, m, h, d or w, e.g. 30d or 12h")
    return number * DURATION_UNITS[text[-1]]


def _is_key(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _tree_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total


def _derived_files(cache: str, key: str) -> list[str]:
    folder = os.path.join(cache, "derived")
    with contextlib.suppress(OSError):
        return [os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(key[:32] + "-")]
    return []


def list_entries(cache: str) -> list[Entry]:
    """The entries of ``cache``, most recently used first (an absent cache has none)."""
    entries = []
    try:
        names = os.listdir(cache)
    except FileNotFoundError:
        return []
    for name in names:
        path = os.path.join(cache, name)
        if not (_is_key(name) and os.path.isdir(path)):
            continue
        manifest, ok = {}, True
        try:
            with open(os.path.join(path, "manifest.json")) as f:
                manifest = json.load(f)
        except (OSError, ValueError):
            ok = False
        size = _tree_size(path) + sum(os.path.getsize(p) for p in _derived_files(cache, name))
        entries.append(Entry(name, path, size, str(manifest.get("source", "?")),
                             manifest.get("vocab_size"), manifest.get("dim"),
                             str(manifest.get("created", "?")), os.stat(path).st_mtime, ok))
    return sorted(entries, key=lambda e: -e.last_used)


def clean(cache: str, older_than: float | None = None, *, dry_run: bool = False) -> list[Entry]:
    """Remove the entries not used for ``older_than`` seconds (all with None); returns them.

    Entries go to a trash folder by one rename first, so a reader never sees half an entry, and
    an entry whose build lock is held (a build in progress) is left alone. Stale pointers, build
    locks and temporary folders of dead builders go too.
    """
    import fcntl

    from .index import remove_stale_temps

    now = time.time()
    doomed = [e for e in list_entries(cache)
              if older_than is None or now - e.last_used > older_than]
    if dry_run or not os.path.isdir(cache):
        return doomed
    removed = []
    try:
        trash = tempfile.mkdtemp(prefix=".trash-", dir=cache)
    except OSError as exc:
        raise CacheUnwritable.at(cache, exc) from None
    try:
        for entry in doomed:
            lock_path = os.path.join(cache, f".{entry.key[:32]}.lock")
            with open(lock_path, "a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # being built right now
                os.rename(entry.path, os.path.join(trash, entry.key))
                for path in _derived_files(cache, entry.key):
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                with contextlib.suppress(OSError):
                    os.unlink(lock_path)
            removed.append(entry)
        _remove_dangling_pointers(cache)
        remove_stale_temps(cache)
        if older_than is None:  # everything: the cached `eval` results too
            shutil.rmtree(os.path.join(cache, "eval"), ignore_errors=True)
    except OSError as exc:
        raise CacheUnwritable.at(cache, exc) from None
    finally:
        shutil.rmtree(trash, ignore_errors=True)
    return removed


def _remove_dangling_pointers(cache: str) -> None:
    folder = os.path.join(cache, "sources")
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            try:
                with open(path) as f:
                    key = json.load(f)["entry"]
                dangling = not os.path.isdir(os.path.join(cache, key))
            except (OSError, ValueError, KeyError, TypeError):
                dangling = True
            if dangling:
                with contextlib.suppress(OSError):
                    os.unlink(path)


def table(rows: list[dict], cache: str) -> str:
    """``Entry.as_dict()`` rows as terminal lines, with a total."""
    if not rows:
        return f"no entries in {cache}"
    lines = [f"{r['key'][:16]}  {r['bytes'] / 2**20:8.1f} MiB  used {r['last_used']}  "
             f"{r['vocab_size']} words x {r['dim']}  {r['source']}"
             f"{'' if r['ok'] else '  (damaged: no readable manifest)'}" for r in rows]
    total = sum(r["bytes"] for r in rows) / 2**20
    return "\n".join(lines + [f"{len(rows)} entries, {total:.1f} MiB in {cache}"])
