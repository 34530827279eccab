"""EXPERIMENTAL density-mh: its output approaches the exact law as the steps grow (total variation)."""

import numpy as np
import pytest

from conftest import run_cli
from dpsanitize.mechanisms.density_mh import DensityMH
from dpsanitize.rng import make_rng
from stats import counts_of

EPS, H, W = 2.0, 0.5, 0


def exact_law(store, w, eps, h, half=9.0, cells=1500):
    """Pr[nearest word of y = j] for y with density pi(y) exp(-eps |y - phi(w)|), on a grid."""
    x = np.asarray(store.vocab.vectors, dtype=np.float64)
    axis = np.linspace(-half, half, cells)
    gx, gy = np.meshgrid(axis + x[w, 0], axis + x[w, 1])
    y = np.stack([gx.ravel(), gy.ravel()], axis=1)
    d2 = ((y[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    density = np.exp(-d2 / (2 * h * h)).sum(1) * np.exp(-eps * np.sqrt(((y - x[w]) ** 2).sum(1)))
    nearest = d2.argmin(axis=1)
    law = np.bincount(nearest, weights=density, minlength=len(x))
    return law / law.sum()


@pytest.mark.statistical
def test_total_variation_to_the_exact_law_falls_as_steps_grow(stat_store):
    exact = exact_law(stat_store, W, EPS, H)
    tv = {}
    for steps in (0, 2, 30):
        mech = DensityMH(epsilon=EPS, store=stat_store, mh_steps=steps, kde_bandwidth=H)
        counts = counts_of(mech.perturb(np.full(60_000, W), make_rng(steps)), len(exact))
        tv[steps] = 0.5 * np.abs(counts / counts.sum() - exact).sum()
    # steps = 0 is plain Laplace noise: far from the law; 30 steps: within sampling noise
    assert tv[0] > 0.05 and tv[30] < 0.015 and tv[0] > tv[2] > tv[30], tv


def test_density_mh_needs_experimental_and_says_so(runner, toy_embeddings, toy_cache, tmp_path):
    import json

    toy = ["--embeddings", toy_embeddings[0], "--vocab-size", "0", "--cache-dir", toy_cache]
    src, rep = tmp_path / "in.txt", tmp_path / "r.json"
    src.write_text("wa wb\n")
    refused = run_cli(runner, ["run", "--mech", "density-mh", "--eps", "3", *toy, str(src),
                               str(tmp_path / "o.txt")])
    assert refused.exit_code == 2 and "--experimental" in refused.stderr
    ok = run_cli(runner, ["run", "--mech", "density-mh", "--eps", "3", "--experimental",
                          "--mh-steps", "3", "--report", str(rep), *toy, str(src),
                          str(tmp_path / "o.txt")])
    assert ok.exit_code == 0, ok.stderr
    assert "no formal guarantee: approximate sampling" in ok.stderr
    report = json.loads(rep.read_text())
    assert "no formal guarantee: approximate sampling" in report["epsilon_unit"]
    assert report["per_line_bound"]["rule"] == "no formal guarantee: approximate sampling"
