"""The multivariate Laplace mechanism against its specification (DESIGN 5.2)."""

import numpy as np
import pytest

from conftest import run_cli
from dpsanitize.mechanisms.laplace import MultivariateLaplace, unit_directions
from dpsanitize.rng import make_rng
from stats import ALPHA, counts_of, describe, homogeneity

EPS = 3.0  # noise norm n/eps = 0.67 on the 2-D toy vocabulary: outputs spread over neighbours


def reference_sampler(w, x, eps, rng, draws):
    """Per draw, from the formulas: radius = sum of n Exp(1/eps) (= Gamma(n, 1/eps)), direction a
    normalised Gaussian, output the nearest word by a full scan (np.argmin: lowest id on ties)."""
    n = x.shape[1]
    out = np.empty(draws, dtype=np.int64)
    for t in range(draws):
        g = rng.normal(size=n)
        y = x[w] + rng.exponential(1.0 / eps, n).sum() * g / np.linalg.norm(g)
        out[t] = np.argmin(np.sqrt(((x - y) ** 2).sum(1)))
    return out


@pytest.mark.statistical
@pytest.mark.parametrize("decoder", ["exact", "annoy"])
def test_output_distribution_matches_reference_sampler(stat_store, decoder):
    """Two-sample chi-square, 100000 (Annoy, decoded one by one: 40000) vs 40000 draws per
    word, alpha = 1e-6 per word."""
    mech = MultivariateLaplace(epsilon=EPS, store=stat_store, decoder=decoder, search_k=10_000)
    x = stat_store.x64
    draws = 100_000 if decoder == "exact" else 40_000
    for w in (0, 6):
        ours = counts_of(mech.perturb(np.full(draws, w), make_rng(w)), 12)
        ref = counts_of(reference_sampler(w, x, EPS, np.random.default_rng(w), 40_000), 12)
        p = homogeneity(ours, ref)
        assert p > ALPHA, describe(f"laplace ({decoder}) vs reference", p, ours)


class PerCoordinateLaplace(MultivariateLaplace):
    """Mutant: independent Laplace(1/eps) noise per coordinate (an L1 mechanism)."""

    def noise(self, rng, n):
        return rng.laplace(0.0, 1.0 / self.epsilon, (n, self.dim))


class WrongShape(MultivariateLaplace):
    """Mutant: Gamma(n - 1) radius."""

    def noise(self, rng, n):
        return unit_directions(rng, n, self.dim) * rng.gamma(self.dim - 1, 1 / self.epsilon, n)[:, None]


class Unnormalised(MultivariateLaplace):
    """Mutant: Gaussian direction not normalised to the unit sphere."""

    def noise(self, rng, n):
        return rng.standard_normal((n, self.dim)) * rng.gamma(self.dim, 1 / self.epsilon, n)[:, None]


@pytest.mark.statistical
@pytest.mark.parametrize("mutant", [PerCoordinateLaplace, WrongShape, Unnormalised])
def test_mutants_are_detected(stat_store, mutant):
    mech = mutant(epsilon=EPS, store=stat_store)
    ref = counts_of(reference_sampler(0, stat_store.x64, EPS, np.random.default_rng(0), 40_000), 12)
    ours = counts_of(mech.perturb(np.full(100_000, 0), make_rng(3)), 12)
    assert homogeneity(ours, ref) < ALPHA


@pytest.mark.statistical
def test_noise_norm_is_gamma_and_direction_uniform():
    """KS tests (alpha = 1e-6): |z| ~ Gamma(n, 1/eps); each coordinate of v has the sphere's law."""
    from scipy import stats

    mech = MultivariateLaplace(epsilon=2.0, store=_five_dim_store())
    z = mech.noise(make_rng(4), 100_000)
    norms = np.linalg.norm(z, axis=1)
    assert stats.kstest(norms, stats.gamma(5, scale=0.5).cdf).pvalue > ALPHA
    # first coordinate of a uniform direction in R^5: (v1 + 1) / 2 ~ Beta(2, 2)
    v1 = z[:, 0] / norms
    assert stats.kstest((v1 + 1) / 2, stats.beta(2, 2).cdf).pvalue > ALPHA


def test_cli_calibrate_laplace(runner, stat_store):
    import json

    common = ["--embeddings", stat_store.vocab.source, "--vocab-size", "0",
              "--cache-dir", stat_store.path.rsplit("/", 1)[0]]
    result = run_cli(runner, ["calibrate", "--mech", "laplace", "--eps", "4", "--json", *common])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["epsilon"] == 4 and data["dim"] == 2 and data["expected_noise_norm"] == 0.5


@pytest.mark.parametrize("bad", ["0", "-1", "inf", "nan", "abc"])
def test_cli_rejects_bad_epsilon(runner, bad):
    result = run_cli(runner, ["calibrate", "--mech", "laplace", "--eps", bad])
    assert result.exit_code == 2 and "--eps" in result.stderr


@pytest.mark.parametrize("mech", ["laplace", "mahalanobis", "vickrey"])
def test_tiny_epsilon_is_a_usage_error_naming_the_smallest_value(runner, toy_embeddings,
                                                                  toy_cache, tmp_path, mech):
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("wa wb\n")
    toy = ["--embeddings", toy_embeddings[0], "--vocab-size", "0", "--cache-dir", toy_cache]
    result = run_cli(runner, ["run", "--mech", mech, "--eps", "1e-100", *toy, str(src), str(dst)])
    assert result.exit_code == 2 and "smallest supported value" in result.stderr
    assert not dst.exists()
    calibrated = run_cli(runner, ["calibrate", "--mech", mech, "--eps", "1", "--json", *toy])
    low = float(__import__("json").loads(calibrated.stdout)["epsilon_min"])
    ok = run_cli(runner, ["run", "--mech", mech, "--eps", repr(low * 1.001), "--seed", "1", *toy,
                          str(src), str(dst)])
    assert ok.exit_code == 0, ok.stderr


@pytest.mark.parametrize("cls", ["laplace", "mahalanobis"])
def test_smallest_epsilon_still_decodes_exactly(toy_store, cls):
    """At the smallest supported epsilon (noise a million diameters wide) the decoder still
    returns the float64 brute-force nearest words of each noisy point, with no numpy warning."""
    from dpsanitize.mechanisms import create

    mech = create(cls, epsilon=1.0, store=toy_store)
    mech = create(cls, epsilon=mech.smallest_epsilon(), store=toy_store)
    ids = np.arange(300)
    y = mech.noisy_points(ids, make_rng(7))
    got, _ = mech.decode(y, ids, 2)
    x = toy_store.x64
    d = np.sqrt(((y[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    want = np.argsort(d, axis=1, kind="stable")[:, :2]
    assert (got == want).all()
    assert len(np.unique(got[:, 0])) > 20  # the extreme words in every direction, not one word


def _five_dim_store():
    from types import SimpleNamespace

    class FiveDimVocab(list):
        dim = 5

    return SimpleNamespace(vocab=FiveDimVocab(["a", "b"]), d_max=1.0)


@pytest.mark.parametrize("eps,radius", [(2.0, 1.5), (2.0, 4.0), (10.0, 0.3), (0.5, 30.0)])
def test_truncation_delta_is_the_gamma_tail(eps, radius):
    """delta = Pr[Gamma(5, 1/eps) > R] = Pr[Poisson(eps R) <= 4] (sum of 5 exponentials), and
    --truncate-delta finds the same R back."""
    import math

    mech = MultivariateLaplace(epsilon=eps, store=_five_dim_store(), truncate=radius, max_delta=1)
    lam = eps * radius
    poisson = sum(math.exp(-lam) * lam ** k / math.factorial(k) for k in range(5))
    assert mech.delta == pytest.approx(poisson, rel=1e-10)
    back = MultivariateLaplace(epsilon=eps, store=_five_dim_store(), truncate_delta=mech.delta,
                               max_delta=1)
    assert back.truncate == pytest.approx(radius, rel=1e-8)
    assert "NOT pure metric DP" in back.privacy_statement()["guarantee"]


class ClippedLaplace(MultivariateLaplace):
    """Mutant: radius min(r, R) instead of r conditioned on r <= R (a point mass at R)."""

    def radii(self, rng, n):
        return np.minimum(rng.gamma(self.dim, 1.0 / self.epsilon, n), self.truncate)


@pytest.mark.statistical
def test_truncated_radius_follows_the_conditioned_gamma_and_clipping_is_rejected():
    """KS test (alpha = 1e-6): radius ~ Gamma(5, 1/2) conditioned on <= R; the clipped mutant
    fails the same test."""
    from scipy import stats
    from scipy.special import gammainc

    R = 2.5  # delta = 0.44: a large truncation, so a wrong one shows
    def cdf(r):
        return gammainc(5, 2.0 * np.minimum(r, R)) / gammainc(5, 2.0 * R)
    mech = MultivariateLaplace(epsilon=2.0, store=_five_dim_store(), truncate=R, max_delta=1)
    z = mech.noise(make_rng(6), 100_000)
    norms = np.linalg.norm(z, axis=1)
    assert norms.max() <= R and stats.kstest(norms, cdf).pvalue > ALPHA
    bad = ClippedLaplace(epsilon=2.0, store=_five_dim_store(), truncate=R, max_delta=1)
    assert stats.kstest(np.linalg.norm(bad.noise(make_rng(6), 100_000), axis=1), cdf).pvalue < ALPHA


def test_cli_truncation_options(runner, toy_embeddings, toy_cache, tmp_path):
    import json

    toy = ["--embeddings", toy_embeddings[0], "--vocab-size", "0", "--cache-dir", toy_cache]
    src, rep = tmp_path / "in.txt", tmp_path / "r.json"
    src.write_text("wa wb wc\n")
    ok = run_cli(runner, ["run", "--mech", "laplace", "--eps", "3", "--truncate-delta", "1e-6",
                          "--report", str(rep), *toy, str(src), str(tmp_path / "o.txt")])
    assert ok.exit_code == 0, ok.stderr
    assert "APPROXIMATE guarantee, NOT pure DP: delta=1e-06" in ok.stderr  # the summary says so
    report = json.loads(rep.read_text())
    privacy = report["privacy"]
    assert "NOT pure metric DP" in privacy["guarantee"] and "deltas" in privacy["per_line_composition"]
    assert report["guarantee"]["kind"] == "approximate-metric-dp"
    assert report["guarantee"]["delta"] == pytest.approx(1e-6)
    assert report["per_line_bound"]["worst_case_delta"] > 0
    # a truncation that protects nothing is refused before any work, with the radius that would do
    loose = run_cli(runner, ["run", "--mech", "laplace", "--eps", "3", "--truncate", "1", *toy,
                             str(src), str(tmp_path / "o2.txt")])
    assert loose.exit_code == 2 and "above --max-delta 0.05" in loose.stderr
    assert "meets the limit" in loose.stderr and not (tmp_path / "o2.txt").exists()
    both = run_cli(runner, ["calibrate", "--mech", "laplace", "--eps", "3", "--truncate", "2",
                            "--truncate-delta", "0.1", *toy])
    assert both.exit_code == 2 and "not both" in both.stderr
    other = run_cli(runner, ["calibrate", "--mech", "tem", "--eps", "3", "--truncate", "2", *toy])
    assert other.exit_code == 2 and "does not apply" in other.stderr
    cal = json.loads(run_cli(runner, ["calibrate", "--mech", "laplace", "--eps", "3", "--truncate",
                                      "2", "--max-delta", "1", "--json", *toy]).stdout)
    assert cal["truncate"] == 2 and 0 < cal["delta"] < 1
    # the truncated noise norm, not the untruncated n/eps
    assert cal["expected_noise_norm"] < 2 < cal["untruncated_noise_norm"] == pytest.approx(8 / 3)
