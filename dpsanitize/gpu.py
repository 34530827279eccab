"""Exact nearest-word decoding with the scoring on a CUDA GPU (``--device cuda``).

The GPU only *screens*. For a batch of noisy points it computes every float32 score
``|x|^2 - 2 y.x`` (one matrix product), each 256-word chunk's minimum and the k-th smallest
chunk minimum plus twice the rounding bound of :func:`.geometry.score_error_bound`; in the
chunks whose minimum is under that bound it picks every word at or under it. Those few
candidates come back to the CPU and are ranked by :func:`.geometry.rank_candidates` in float64,
ties to the lower id: the same code, on the same numbers, that ends the CPU decoder, so both
devices give the same words and distances bit for bit (the proof that the true k nearest are
among the candidates is the CPU decoder's).

Why CuPy and not PyTorch: CuPy follows numpy's API, so this module's code runs unchanged on
numpy arrays (``xp=numpy``) and CI tests every step of it without a GPU; it is one wheel
(cupy-cuda12x 14.2.0: 137 MB); and its float32 products stay float32 unless ``CUPY_TF32=1``,
which is refused here because TF32's 10-bit mantissa would void the rounding bound.

Example::

    ids, d = GpuBruteForce(vectors).nearest(y, k=2)        # on the GPU
    ids, d = GpuBruteForce(vectors, xp=numpy).nearest(y)   # same code on the CPU (tests)
"""

from __future__ import annotations

import math
import os

import numpy as np

from .errors import ResourceError
from .geometry import rank_candidates, score_error_bound

CHUNK = 256  # words per chunk minimum
GPU_MEMORY_SHARE = 0.25  # of the free GPU memory the scores of two batches in flight may take


def cuda_module():
    """CuPy, checked: importable, a CUDA device present, TF32 off. Raises ResourceError (78)."""
    if os.environ.get("CUPY_TF32", "0") not in ("", "0"):
        raise ResourceError("--device cuda needs float32 products; unset CUPY_TF32 (TF32 rounds "
                            "to 10 bits and would break the exactness bound)")
    try:
        import cupy
    except ImportError:
        raise ResourceError("--device cuda needs CuPy: pip install 'dpsanitize[gpu]' (CUDA 12) "
                            "or 'dpsanitize[gpu-cuda13]'") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, driver too old for this CuPy, ...
        raise ResourceError(f"--device cuda: CUDA is not usable here ({type(exc).__name__}: "
                            f"{exc})") from None
    if count < 1:
        raise ResourceError("--device cuda: no CUDA device found")
    return cupy


class GpuBruteForce:
    """Exact k nearest words of float64 query points; scores on the device of ``xp``.

    Parameters
    ----------
    vectors : (N, dim) array
        The vocabulary's vectors (float32 values).
    xp : module, optional
        ``cupy`` (default, via :func:`cuda_module`) or ``numpy``.
    batch : int, optional
        Queries scored together; default: what fits in a quarter of the free GPU memory, at
        most 8192 (256 with numpy).
    chunk : int
        Words per chunk minimum. Small chunks keep the k-th smallest chunk minimum close to the
        k-th smallest score when k > 1 (frequent words and their neighbours share low ids).
    """

    def __init__(self, vectors: np.ndarray, *, xp=None, batch: int | None = None,
                 chunk: int = CHUNK):
        self.xp = xp = cuda_module() if xp is None else xp
        x32 = np.ascontiguousarray(vectors, dtype=np.float32)
        self.x = x32
        n_words, dim = x32.shape
        sq = np.einsum("ij,ij->i", x32.astype(np.float64), x32.astype(np.float64))
        self._max_norm = math.sqrt(float(sq.max()))
        self._chunk = chunk
        self._n_chunks = -(-n_words // chunk)
        # [-2x, |x|^2, 0...] as columns: the inner size padded to 16 for aligned rows (exact
        # zero terms add no rounding), padding words score +inf so chunks reshape evenly.
        self._inner = -(-(dim + 1) // 16) * 16
        rhs = np.zeros((self._inner, self._n_chunks * chunk), dtype=np.float32)
        rhs[:dim, :n_words] = -2 * x32.T
        rhs[dim, :n_words] = sq
        rhs[dim, n_words:] = np.inf
        self._rhs = xp.asarray(rhs)
        self.batch = batch or self._default_batch()

    def _default_batch(self) -> int:
        if self.xp is np:
            return 256
        free, _ = self.xp.cuda.runtime.memGetInfo()
        per_query = self._rhs.shape[1] * 4 * 2  # float32 scores of two batches in flight
        return int(max(256, min(8192, GPU_MEMORY_SHARE * free // per_query)))

    def nearest(self, y: np.ndarray, k: int = 1):
        """``(ids int64 (B,k), dists float64 (B,k))``, nearest first, ties by lower id.

        The device scores batch i+1 while the CPU ranks the candidates of batch i.
        """
        y = np.asarray(y, dtype=np.float64)
        k = min(k, len(self.x))
        out_i = np.empty((len(y), k), dtype=np.int64)
        out_d = np.empty((len(y), k), dtype=np.float64)
        scored = None  # (slice, device arrays) of the batch scored last
        for start in [*range(0, len(y), self.batch), None]:
            candidates = None if scored is None else (scored[0], self._candidates(*scored[1]))
            scored = None
            if start is not None:
                part = slice(start, start + self.batch)
                scored = part, self._score(y[part], k)
            if candidates is not None:
                part, (rows, cols) = candidates
                out_i[part], out_d[part] = rank_candidates(y[part], self.x, rows, cols, k)
        return out_i, out_d

    def _score(self, y: np.ndarray, k: int):
        """Queue the scoring of ``y`` on the device (no wait): the scores by chunk, the chunk
        minima and each query's bound."""
        xp = self.xp
        b, dim = y.shape
        lhs = np.zeros((b, self._inner), dtype=np.float32)
        lhs[:, :dim] = y
        lhs[:, dim] = 1
        err = score_error_bound(dim, self._max_norm, np.sqrt(np.einsum("ij,ij->i", y, y)))
        scores = (xp.asarray(lhs) @ self._rhs).reshape(b, self._n_chunks, self._chunk)
        mins = scores.min(axis=2)
        # k words score at most the k-th smallest chunk minimum: every word of the top k
        # scores at most that plus twice the rounding bound (see geometry.BruteForce).
        if k == 1:
            kth = mins.min(axis=1)
        elif k <= self._n_chunks:
            kth = xp.sort(mins, axis=1)[:, k - 1]
        else:
            kth = xp.full(b, xp.inf, dtype=xp.float32)
        bound = kth.astype(xp.float64) + xp.asarray(2 * err)
        return scores, mins, bound

    def _candidates(self, scores, mins, bound):
        """The (row, word) pairs at or under the bound, on the CPU, rows ascending: only the
        chunks whose minimum is under the bound are looked at again."""
        xp = self.xp
        hit = xp.flatnonzero(mins <= bound[:, None])
        rows, chunks = hit // self._n_chunks, hit % self._n_chunks
        inside = xp.flatnonzero(scores[rows, chunks] <= bound[rows, None])
        pair, offset = inside // self._chunk, inside % self._chunk
        rows, cols = _to_host(rows[pair]), _to_host(chunks[pair] * self._chunk + offset)
        real = cols < len(self.x)  # padding is marked only when the bound is infinite
        return rows[real], cols[real]


def _to_host(a) -> np.ndarray:
    return a.get() if hasattr(a, "get") else a
