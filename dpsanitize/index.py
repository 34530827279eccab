"""The index store: exact neighbour table, global distance stats and an Annoy index, cached.

An entry lives in ``<cache>/<key>/`` where ``key`` fingerprints (vectors, words, vocab size,
build parameters). It is built in a temporary directory and renamed into place, so a reader never
sees half an entry; a manifest lists every file's size (and the checksum of the small ones) and
is checked on every load. A damaged or mismatched entry is rebuilt, never used. A small pointer
file per source (path, size, mtime) lets a warm run find its entry without parsing the source.

Example::

    store = open_index(None, vocab_size=100_000)       # default embeddings, builds on first use
    ids, dists = store.neighbors(store.vocab.id_of["house"], 10)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np

from . import geometry
from .embeddings import DEFAULT_VOCAB_SIZE, LoadInfo, Vocabulary, load_vocabulary, source_stamp
from .errors import CacheUnwritable, InvalidParameter, ResourceError

log = logging.getLogger("dpsanitize")

FORMAT_VERSION = 2  # 2: W drops words ending in a clitic (n't)
DEFAULT_TREES = 50
DEFAULT_SEARCH_K = 10_000
ANNOY_SEED = 20210519  # public data, so a fixed seed is fine: reproducible index files
SMALL_FILE = 4 << 20  # files up to this size are checksummed on every load
DECODERS = ("exact", "annoy")
_SOURCE = "_computed_from"  # the hash a derived file carries
DERIVED_VERSION = 1  # part of that hash: bump it when an algorithm behind a derived table changes
MANIFEST_KEYS = frozenset((
    "format_version", "key", "vocab_fingerprint", "source", "source_format",
    "requested_vocab_size", "vocab_size", "dim", "words_only", "rows_read", "dropped_duplicates",
    "dropped_non_words", "lowercase", "d_min", "d_max", "d_min_pair", "d_max_pair", "k_max",
    "annoy", "search_k", "build_seconds", "created", "files"))


@dataclass(frozen=True)
class BuildParams:
    """Everything besides the vocabulary that changes an entry's content."""

    k_max: int = geometry.K_MAX
    trees: int = DEFAULT_TREES
    annoy_seed: int = ANNOY_SEED


class CacheDamaged(Exception):
    """An entry failed verification; the message says why (no content)."""


def default_cache_dir() -> str:
    env = os.environ.get("DPSANITIZE_CACHE")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dpsanitize")


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class IndexStore:
    """A loaded (memory-mapped) entry: the vocabulary and its exact geometry.

    Example::

        store.d_min, store.d_max, store.neighbors(0, 5), store.nearest(y, anchors)
    """

    def __init__(self, path: str, manifest: dict, vocab: Vocabulary, nbr_ids, nbr_dist):
        self.path = path
        self.manifest = manifest
        self.vocab = vocab
        self.nbr_ids = nbr_ids
        self.nbr_dist = nbr_dist
        self.d_min = float(manifest["d_min"])
        self.d_max = float(manifest["d_max"])
        self.search_k = int(manifest["search_k"])
        self.built_now = False  # set by open_index when this call built the entry
        self.annoy_fallbacks = 0  # Annoy queries answered short, decoded exactly instead

    def __repr__(self) -> str:
        return f"IndexStore(vocab_size={len(self.vocab)}, dim={self.vocab.dim}, path={self.path!r})"

    @property
    def k_max(self) -> int:
        return int(self.nbr_ids.shape[1])

    @property
    def table_is_complete(self) -> bool:
        """True when the table lists every other word (tiny vocabularies)."""
        return self.k_max >= len(self.vocab) - 1

    @cached_property
    def x64(self) -> np.ndarray:
        return np.asarray(self.vocab.vectors, dtype=np.float64)

    @cached_property
    def brute_force(self) -> geometry.BruteForce:
        return geometry.BruteForce(self.vocab.vectors)

    @cached_property
    def gpu_brute_force(self):
        from .gpu import GpuBruteForce

        return GpuBruteForce(self.vocab.vectors)

    @cached_property
    def annoy(self):
        from annoy import AnnoyIndex

        index = AnnoyIndex(self.vocab.dim, "euclidean")
        index.load(os.path.join(self.path, "annoy.ann"))  # memory-mapped by annoy
        return index

    def derived(self, name: str, compute, valid=lambda arrays: True) -> dict:
        """Arrays computed once from this entry's public data and cached beside it.

        ``compute()`` returns a dict of arrays. The file carries a hash of what it was computed
        from (the entry's full key, ``name``, which must name every parameter, and
        ``DERIVED_VERSION``, bumped when an algorithm changes); a cached copy
        that fails to load, carries another hash, or fails ``valid`` is recomputed and replaced.
        """
        path = os.path.join(os.path.dirname(self.path), "derived",
                            f"{self.manifest['key'][:32]}-{name}.npz")
        source = hashlib.sha256(f"{self.manifest['key']}\0{name}\0{DERIVED_VERSION}".encode()
                                ).hexdigest()
        with contextlib.suppress(Exception):
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            if str(arrays.pop(_SOURCE)) == source and valid(arrays):
                return arrays
        arrays = compute()
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, **arrays, **{_SOURCE: np.array(source)})
                os.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        except OSError as exc:  # the run goes on; only the sharing of these bits is lost
            log.warning("could not cache %s beside the index (%s): every process computes it "
                        "again, and worker processes may then not write the bytes one process "
                        "writes", name, exc.strerror or exc)
        return arrays

    def verify(self) -> None:
        """Checksum every file of the entry; ResourceError (exit 78) if one fails."""
        try:
            load_entry(self.path, self.manifest["key"], full_check=True)
        except CacheDamaged as exc:
            raise ResourceError(f"cache entry failed verification ({exc}); run "
                                "'dpsanitize index build --rebuild'") from None

    def summary(self) -> dict:
        """The manifest in words (``dpsanitize index info``): sizes, extremes, provenance."""
        m = self.manifest
        return {
            "vocab_size": m["vocab_size"], "dim": m["dim"], "d_min": m["d_min"],
            "d_max": m["d_max"],
            "d_min_pair": [self.vocab.words[i] for i in m["d_min_pair"]],
            "d_max_pair": [self.vocab.words[i] for i in m["d_max_pair"]],
            "fingerprint": m["key"], "vocab_fingerprint": m["vocab_fingerprint"],
            "path": self.path,
            "source": m["source"], "source_format": m["source_format"],
            "requested_vocab_size": m["requested_vocab_size"],
            "words_only": m["words_only"], "rows_read": m["rows_read"],
            "dropped_duplicates": m["dropped_duplicates"],
            "dropped_non_words": m["dropped_non_words"],
            "lowercase": m["lowercase"],
            "k_max": m["k_max"], "annoy": m["annoy"], "search_k": m["search_k"],
            "build_seconds": m["build_seconds"], "created": m["created"],
            "files": {name: meta["size"] for name, meta in m["files"].items()},
        }

    def neighbors(self, i: int, k: int):
        """Exact k nearest other words of word ``i``: ``(ids, dists)`` nearest first."""
        if k <= self.k_max:
            return np.asarray(self.nbr_ids[i, :k], dtype=np.int64), np.asarray(self.nbr_dist[i, :k])
        ids, d = geometry.row_neighbors(self.x64, int(i), k)
        return ids.astype(np.int64), d

    def word_neighbors(self, word: str, k: int) -> list[dict]:
        """The exact ``k`` nearest other words of ``word`` (case-folded like the vocabulary):
        ``[{"word", "distance"}]``, nearest first. A word outside W is an InvalidParameter
        (which never quotes it: it may be private)."""
        i = self.vocab.id_of.get(word.lower() if self.vocab.lowercase else word)
        if i is None:
            raise InvalidParameter(f"WORD: the word is not in the vocabulary of "
                                   f"{len(self.vocab)} words")
        ids, dists = self.neighbors(i, min(k, len(self.vocab) - 1))
        return [{"word": self.vocab.words[j], "distance": float(d)} for j, d in zip(ids, dists)]

    def rows(self, ids) -> np.ndarray:
        """Distances from each word of ``ids`` to all of W (float64, one row each; fast, last
        bits as BLAS gives them, within :meth:`row_error` of :meth:`reference_rows`)."""
        return geometry.distance_rows(self.x64, self.vocab.sq_norms, np.asarray(ids))

    def reference_rows(self, ids, chunk: int = 16384) -> np.ndarray:
        """:meth:`rows` by the reference metric :func:`geometry.dist64`, ``chunk`` words at a
        time (bounded temporaries): tens of times slower, but each entry's bits depend on its two
        words alone (and on the numpy build and CPU)."""
        ids = np.asarray(ids).tolist()
        out = np.empty((len(ids), len(self.x64)))
        for s in range(0, len(self.x64), chunk):
            for r, i in enumerate(ids):
                out[r, s:s + chunk] = geometry.dist64(self.x64[s:s + chunk], self.x64[i])
        return out

    @cached_property
    def row_error(self) -> np.ndarray:
        """Per word, the largest gap between an entry of its :meth:`rows` row and of its
        :meth:`reference_rows` row (:func:`geometry.row_error_bound`; its nearest other word,
        halved, bounds every other distance from below)."""
        norms = np.sqrt(self.vocab.sq_norms)
        near = 0.5 * (self.nbr_dist[:, 0] if self.nbr_dist.shape[1] else np.full(len(norms),
                                                                                 self.d_min))
        return geometry.row_error_bound(self.vocab.dim, norms, float(norms.max()),
                                        self.d_max * (1 + 1e-6), near)

    def nearest(self, y: np.ndarray, anchors: np.ndarray, k: int = 1, decoder: str = "exact",
                search_k: int | None = None, device: str = "cpu"):
        """The k nearest words of each noisy point ``y[i]`` (float64), nearest first.

        ``decoder="exact"`` returns the exact answer (ties by lower id), a function of ``y``
        alone: ``anchors[i]`` (the word ``y[i]`` was drawn around) only helps find it fast, by
        certifying the answer from the anchor's neighbour table; uncertified points are searched
        over all of W (on the GPU with ``device="cuda"``, which is faster than the table too, so
        every point goes there). ``decoder="annoy"`` asks Annoy (approximate).
        """
        y = np.asarray(y, dtype=np.float64)
        anchors = np.asarray(anchors, dtype=np.int64)
        if decoder == "annoy":
            return self._nearest_annoy(y, anchors, k, search_k or self.search_k)
        if device == "cuda":
            return self.gpu_brute_force.nearest(y, k)
        out_i = np.empty((len(y), k), dtype=np.int64)
        out_d = np.empty((len(y), k), dtype=np.float64)
        doubtful = np.ones(len(y), dtype=bool)
        for s in range(0, len(y), 1024):
            part = slice(s, s + 1024)
            out_i[part], out_d[part], doubtful[part] = self._nearest_in_table(y[part],
                                                                              anchors[part], k)
            # When the noise is large the table almost never certifies: stop paying for it.
            # (The answer is the same either way; only the time changes.)
            if doubtful[part].mean() > 0.8:
                break
        if doubtful.any():
            out_i[doubtful], out_d[doubtful] = self.brute_force.nearest(y[doubtful], k)
        return out_i, out_d

    def _nearest_in_table(self, y, anchors, k):
        """Best k among the anchor and its table, and whether that is not certified exact."""
        cands = np.concatenate([anchors[:, None], self.nbr_ids[anchors].astype(np.int64)], 1)
        d = geometry.dist64(y[:, None, :], self.vocab.vectors[cands])
        top_i, top_d = geometry.top_k_by_distance(cands, d, k)
        if self.table_is_complete:
            return top_i, top_d, np.zeros(len(y), dtype=bool)
        # A word outside the anchor's table is at least d_K(anchor) - |y - anchor| away from y.
        limit = self.nbr_dist[anchors, -1] - d[:, 0]
        return top_i, top_d, ~(top_d[:, -1] < limit - 1e-9 * (1.0 + limit))

    def _nearest_annoy(self, y, anchors, k, search_k):
        """Annoy's answer; a query it answers with fewer than k words goes to the exact decoder
        (never the input word in its place: that would release it unprotected), counted in
        ``annoy_fallbacks``."""
        index = self.annoy
        out_i = np.zeros((len(y), k), dtype=np.int64)  # rows answered short are replaced below
        short = []
        for r in range(len(y)):
            found = index.get_nns_by_vector(y[r], k, search_k=search_k)
            if len(found) < k:
                short.append(r)
                continue
            out_i[r] = found
        d = geometry.dist64(y[:, None, :], self.vocab.vectors[out_i])
        top_i, top_d = geometry.top_k_by_distance(out_i, d, k)
        if short:
            self.annoy_fallbacks += len(short)
            top_i[short], top_d[short] = self.brute_force.nearest(y[short], k)
        return top_i, top_d


# --------------------------------------------------------------------------------------------
# Opening, verifying, building


def open_index(embeddings: str | None = None, fmt: str = "auto",
               vocab_size: int = DEFAULT_VOCAB_SIZE, *, cache_dir: str | None = None,
               params: BuildParams = BuildParams(), progress: bool | None = None,
               rebuild: bool = False, words_only: bool = True) -> IndexStore:
    """Find, verify or build the index entry for these embeddings; returns a loaded store.

    ``words_only=False`` keeps vocabulary entries that are not words (see make_vocabulary).
    """
    cache = os.path.abspath(cache_dir or default_cache_dir())
    stamp = source_stamp(embeddings, fmt, vocab_size, words_only)
    pointer = os.path.join(cache, "sources", _key(stamp, asdict(params), FORMAT_VERSION) + ".json")
    tried = None
    if not rebuild:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            with open(pointer) as f:
                tried = json.load(f)["entry"]
            store = _try_load(os.path.join(cache, tried), tried)
            if store is not None:
                return store
    vocab, info = load_vocabulary(embeddings, fmt, vocab_size, words_only=words_only)
    key = _key(vocab.fingerprint, vocab_size, words_only, asdict(params), FORMAT_VERSION)
    entry = os.path.join(cache, key)
    store = None if rebuild or key == tried else _try_load(entry, key)
    if store is None:
        try:  # an unwritable cache fails here, before any work
            os.makedirs(cache, exist_ok=True)
            lock_file = open(os.path.join(cache, f".{key[:32]}.lock"), "a")
        except OSError as exc:
            raise CacheUnwritable.at(cache, exc) from None
        with lock_file, _exclusive(lock_file):
            store = None if rebuild else _try_load(entry, key, quiet=True)
            if store is None:
                build_entry(vocab, info, vocab_size, words_only, params, cache, key,
                            progress=progress)
                store = _try_load(entry, key)
                if store is not None:
                    store.built_now = True
        if store is None:  # pragma: no cover - we just built and verified it
            raise ResourceError(f"index entry could not be built in {cache}")
    _write_pointer(pointer, key)
    return store


def _write_pointer(pointer: str, key: str) -> None:
    with contextlib.suppress(OSError):  # a pointer is only a shortcut
        os.makedirs(os.path.dirname(pointer), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(pointer), suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"entry": key}, f)
            os.replace(tmp, pointer)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _try_load(entry: str, key: str, quiet: bool = False) -> IndexStore | None:
    if not os.path.exists(entry):
        return None
    try:
        store = load_entry(entry, key)
        with contextlib.suppress(OSError):  # last use, for `dpsanitize cache clean --older-than`
            os.utime(entry)
        return store
    except CacheDamaged as exc:
        if not quiet:
            log.warning("cache entry %s is damaged (%s); rebuilding", os.path.basename(entry)[:16], exc)
        return None


def load_entry(entry: str, key: str | None = None, *, full_check: bool = False) -> IndexStore:
    """Verify and memory-map an entry; raises :class:`CacheDamaged` when anything is off."""
    try:
        with open(os.path.join(entry, "manifest.json")) as f:
            manifest = json.load(f)
        if manifest.get("format_version") != FORMAT_VERSION:
            raise CacheDamaged("format version differs")
        if key is not None and manifest.get("key") != key:
            raise CacheDamaged("manifest belongs to another entry")
        missing = MANIFEST_KEYS - manifest.keys()
        if missing:
            raise CacheDamaged(f"manifest lacks {sorted(missing)[0]}")
        for name, meta in manifest["files"].items():
            path = os.path.join(entry, name)
            if os.path.getsize(path) != meta["size"]:
                raise CacheDamaged(f"{name} has the wrong size")
            if (full_check or meta["size"] <= SMALL_FILE) and _sha256_file(path) != meta["sha256"]:
                raise CacheDamaged(f"{name} has the wrong checksum")
        n, dim, k = manifest["vocab_size"], manifest["dim"], manifest["k_max"]
        vectors = _load_array(entry, "vectors.npy", (n, dim), np.float32)
        nbr_ids = _load_array(entry, "nbr_ids.npy", (n, k), np.int32)
        nbr_dist = _load_array(entry, "nbr_dist.npy", (n, k), np.float64)
        with open(os.path.join(entry, "words.json"), encoding="utf-8") as f:
            words = json.load(f)
        if len(words) != n:
            raise CacheDamaged("word list has the wrong length")
    except CacheDamaged:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CacheDamaged(type(exc).__name__) from None
    vocab = Vocabulary(words, vectors, fingerprint=manifest["vocab_fingerprint"],
                       source=manifest.get("source", ""))
    return IndexStore(entry, manifest, vocab, nbr_ids, nbr_dist)


def _load_array(entry, name, shape, dtype):
    arr = np.load(os.path.join(entry, name), mmap_mode="r", allow_pickle=False)
    if arr.shape != tuple(shape) or arr.dtype != dtype:
        raise CacheDamaged(f"{name} has the wrong shape or type")
    return np.asarray(arr)  # a plain view of the map: indexing it skips np.memmap's wrapper


@contextlib.contextmanager
def _exclusive(lock_file):
    """Serialise builders of one entry (the second one then finds it built)."""
    import fcntl

    fcntl.flock(lock_file, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(lock_file, fcntl.LOCK_UN)


def build_entry(vocab: Vocabulary, info: LoadInfo, vocab_size: int, words_only: bool,
                params: BuildParams, cache: str, key: str, *, progress: bool | None = None) -> str:
    """Compute every file of an entry in a temporary directory, then rename it into place."""
    from .progress import progress_bar

    try:
        remove_stale_temps(cache)
        tmp = tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=cache)
    except OSError as exc:
        raise CacheUnwritable.at(cache, exc) from None
    started = time.perf_counter()
    try:
        n = len(vocab)
        log.info("building the index for %d words (one-off; cached in %s)", n, cache)
        with progress_bar(n, unit=" words", desc="index", enabled=progress) as bar:
            nbr_ids, nbr_dist = geometry.knn_table(vocab.vectors, params.k_max, progress=bar.update)
        d_max, max_pair = geometry.max_distance(vocab.vectors)  # fast: norms prune most pairs
        closest = int(nbr_dist[:, 0].argmin())
        d_min = float(nbr_dist[closest, 0])
        min_pair = sorted((closest, int(nbr_ids[closest, 0])))
        np.save(os.path.join(tmp, "vectors.npy"), np.ascontiguousarray(vocab.vectors, np.float32))
        np.save(os.path.join(tmp, "nbr_ids.npy"), nbr_ids)
        np.save(os.path.join(tmp, "nbr_dist.npy"), nbr_dist)
        with open(os.path.join(tmp, "words.json"), "w", encoding="utf-8") as f:
            json.dump(vocab.words, f, ensure_ascii=False)
        _build_annoy(vocab, params, os.path.join(tmp, "annoy.ann"))
        files = {}
        for name in sorted(os.listdir(tmp)):
            path = os.path.join(tmp, name)
            files[name] = {"size": os.path.getsize(path), "sha256": _sha256_file(path)}
        manifest = {
            "format_version": FORMAT_VERSION, "key": key, "vocab_fingerprint": vocab.fingerprint,
            "source": info.source, "source_format": info.format,
            "requested_vocab_size": vocab_size, "vocab_size": n, "dim": vocab.dim,
            "words_only": words_only, "rows_read": info.rows_read,
            "dropped_duplicates": info.dropped_duplicates,
            "dropped_non_words": info.dropped_non_words, "lowercase": vocab.lowercase,
            "d_min": d_min, "d_max": d_max, "d_min_pair": min_pair, "d_max_pair": list(max_pair),
            "k_max": int(nbr_ids.shape[1]),
            "annoy": {"metric": "euclidean", "trees": params.trees, "seed": params.annoy_seed},
            "search_k": DEFAULT_SEARCH_K, "build_seconds": round(time.perf_counter() - started, 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": files,
        }
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        final = os.path.join(cache, key)
        if os.path.exists(final):  # damaged: move it out of the way first
            trash = tempfile.mkdtemp(prefix=".trash-", dir=cache)
            os.rename(final, os.path.join(trash, "old"))
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(tmp, final)
        return final
    except OSError as exc:
        raise CacheUnwritable.at(cache, exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build_annoy(vocab: Vocabulary, params: BuildParams, path: str) -> None:
    from annoy import AnnoyIndex

    index = AnnoyIndex(vocab.dim, "euclidean")
    index.set_seed(params.annoy_seed)
    vectors = np.asarray(vocab.vectors, dtype=np.float32)
    for i in range(len(vectors)):
        index.add_item(i, vectors[i])
    index.build(params.trees, n_jobs=1)  # one job: the file is then reproducible
    index.save(path)
    index.unload()


def remove_stale_temps(cache: str) -> None:
    """Remove temporary build directories whose builder process is gone."""
    for name in os.listdir(cache):
        if not name.startswith((".tmp-", ".trash-")):
            continue
        pid = name.split("-")[1] if name.startswith(".tmp-") else ""
        alive = pid.isdigit() and _pid_alive(int(pid))
        if not alive:
            shutil.rmtree(os.path.join(cache, name), ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
