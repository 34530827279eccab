"""The GPU decoder: the same answers as float64 brute force and as the CPU decoder.

Everything runs with ``xp=numpy`` (the module's code, unchanged, on CPU arrays); the last tests
need CuPy and a CUDA device and are skipped without them.
"""

import sys

import numpy as np
import pytest

from conftest import nearest_reference, run_cli, toy_vectors, toy_words, write_glove
from dpsanitize import geometry, gpu
from dpsanitize.errors import ResourceError
from dpsanitize.mechanisms import create


def tie_heavy_queries(dim, n=400, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, dim)) * 2
    y[:150] = np.round(y[:150] * 2) / 2  # half-integer points: exact distance ties
    y[150:170] *= 40  # far from every word (large noise)
    return y


@pytest.mark.parametrize("chunk,batch", [(1024, None), (16, 37), (7, 400), (300, 1)])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_numpy_backend_exact_with_ties(k, chunk, batch):
    vecs = np.unique(toy_vectors(300, 4, seed=11, integer=True), axis=0)
    y = tie_heavy_queries(4)
    decoder = gpu.GpuBruteForce(vecs, xp=np, chunk=chunk, batch=batch)
    ids, d = decoder.nearest(y, k)
    ref, ref_d = nearest_reference(vecs, y, k)
    np.testing.assert_array_equal(ids, ref)
    np.testing.assert_allclose(d, ref_d, rtol=1e-12)
    cpu_ids, cpu_d = geometry.BruteForce(vecs, chunk=chunk, threads=1).nearest(y, k)
    np.testing.assert_array_equal(ids, cpu_ids)
    np.testing.assert_array_equal(d, cpu_d)  # bit for bit: both end in rank_candidates


def test_k_beyond_the_chunks_and_the_vocabulary():
    vecs = toy_vectors(20, 3, seed=4)
    y = np.random.default_rng(2).normal(size=(9, 3))
    ids, _ = gpu.GpuBruteForce(vecs, xp=np, chunk=4).nearest(y, 7)  # 5 chunks < k
    np.testing.assert_array_equal(ids, nearest_reference(vecs, y, 7)[0])
    ids, _ = gpu.GpuBruteForce(vecs, xp=np).nearest(y, 50)  # k capped at |W|
    assert ids.shape == (9, 20)
    assert gpu.GpuBruteForce(vecs, xp=np).nearest(y[:0], 2)[0].shape == (0, 2)


def test_the_rounding_margin_is_needed(monkeypatch):
    """With the margin removed, float32 screening misses true nearest words: the bound is live."""
    rng = np.random.default_rng(5)
    vecs = (rng.normal(size=(2000, 16)) * 3).astype(np.float32)
    # Queries exactly between two words: their float32 scores differ by rounding only.
    a, b = rng.integers(0, 2000, 3000), rng.integers(0, 2000, 3000)
    y = (vecs[a].astype(np.float64) + vecs[b]) / 2
    ref, _ = nearest_reference(vecs, y, 1)
    ids, _ = gpu.GpuBruteForce(vecs, xp=np).nearest(y, 1)
    np.testing.assert_array_equal(ids, ref)
    monkeypatch.setattr(gpu, "score_error_bound", lambda dim, m, ynorm: 0.0 * ynorm)
    ids, _ = gpu.GpuBruteForce(vecs, xp=np).nearest(y, 1)
    assert (ids[:, 0] != ref[:, 0]).any()


def test_missing_cupy_and_tf32_are_configuration_errors(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import fails
    with pytest.raises(ResourceError, match=r"dpsanitize\[gpu\]"):
        gpu.cuda_module()
    monkeypatch.setenv("CUPY_TF32", "1")
    with pytest.raises(ResourceError, match="CUPY_TF32"):
        gpu.cuda_module()


@pytest.fixture
def numpy_gpu(monkeypatch):
    """--device cuda, run by the GPU module's code on numpy arrays."""
    monkeypatch.setattr(gpu, "cuda_module", lambda: np)


@pytest.fixture
def tie_store(tmp_path):
    """200 words on an integer grid (many exact ties), a 3-column neighbour table."""
    from dpsanitize.index import BuildParams, open_index

    vecs = np.unique(toy_vectors(260, 3, seed=8, integer=True), axis=0)[:200]
    path = write_glove(tmp_path / "ties.txt", toy_words(len(vecs)), vecs)
    return open_index(path, vocab_size=0, cache_dir=str(tmp_path / "c"),
                      params=BuildParams(k_max=3))


@pytest.mark.parametrize("mech,options", [("laplace", {}), ("mahalanobis", {"lam": 0.5}),
                                          ("vickrey", {"vickrey_t": 0.6})])
@pytest.mark.parametrize("eps", [0.5, 3.0, 8.0])
def test_mechanisms_give_the_same_words_on_either_device(numpy_gpu, tie_store, mech, options,
                                                          eps):
    ids = np.random.default_rng(3).integers(0, len(tie_store.vocab), 3000)
    out = {}
    for device in ("cpu", "cuda"):
        m = create(mech, epsilon=eps, store=tie_store, device=device, **options)
        out[device] = m.perturb(ids, np.random.default_rng(7))
    np.testing.assert_array_equal(out["cpu"], out["cuda"])
    assert (out["cpu"] != ids).any()


def test_cli_device_cuda_same_bytes(numpy_gpu, runner, tmp_path, toy_store, toy_embeddings,
                                    toy_cache):
    _, words, _ = toy_embeddings
    src = tmp_path / "in.txt"
    src.write_text("\n".join(" ".join(words[i:i + 9]) for i in range(0, 270, 9)) + "\n")
    common = ["run", "--mech", "laplace", "--eps", "3", "--seed", "5", "--embeddings",
              toy_embeddings[0], "--vocab-size", "0", "--cache-dir", toy_cache, str(src)]
    for device in ("cpu", "cuda"):
        result = run_cli(runner, [*common, str(tmp_path / device), "--device", device])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "cpu").read_bytes() == (tmp_path / "cuda").read_bytes()


def test_cli_device_errors(runner, tmp_path, toy_store, toy_embeddings, toy_cache, monkeypatch):
    src = tmp_path / "in.txt"
    src.write_text("hello\n")
    common = ["run", "--mech", "gumbel", "--eps", "3", "--embeddings", toy_embeddings[0], "--vocab-size", "0",
              "--cache-dir", toy_cache, str(src), str(tmp_path / "out")]
    result = run_cli(runner, [*common, "--mech", "gumbel", "--eps", "120", "--device", "cpu"])
    assert result.exit_code == 2 and "--device does not apply to --mech gumbel" in result.output
    result = run_cli(runner, [*common, "--mech", "laplace", "--device", "cuda",
                              "--decoder", "annoy"])
    assert result.exit_code == 2 and "decodes exactly" in result.output
    monkeypatch.setitem(sys.modules, "cupy", None)
    result = run_cli(runner, [*common, "--mech", "laplace", "--device", "cuda"])
    assert result.exit_code == 78 and "dpsanitize[gpu]" in result.output
    assert not (tmp_path / "out").exists()


def _cuda_available():
    try:
        gpu.cuda_module()
    except ResourceError:
        return False
    return True


needs_cuda = pytest.mark.skipif(not _cuda_available(), reason="needs CuPy and a CUDA device")


@needs_cuda
@pytest.mark.parametrize("k", [1, 2])
def test_cuda_matches_float64_brute_force(k):
    vecs = np.unique(toy_vectors(3000, 6, seed=12, integer=True), axis=0)
    y = tie_heavy_queries(6, n=2000)
    ids, d = gpu.GpuBruteForce(vecs, batch=300).nearest(y, k)
    np.testing.assert_array_equal(ids, nearest_reference(vecs, y, k)[0])
    np.testing.assert_array_equal(d, geometry.BruteForce(vecs).nearest(y, k)[1])


@needs_cuda
def test_cuda_mechanism_same_words(tie_store):
    ids = np.random.default_rng(3).integers(0, len(tie_store.vocab), 5000)
    cpu = create("vickrey", epsilon=2.0, store=tie_store).perturb(ids, np.random.default_rng(1))
    cuda = create("vickrey", epsilon=2.0, store=tie_store, device="cuda").perturb(
        ids, np.random.default_rng(1))
    np.testing.assert_array_equal(cpu, cuda)
