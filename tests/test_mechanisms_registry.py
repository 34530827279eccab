"""The registry, option routing, and the `mechanisms` / `calibrate` / `audit` commands."""

import json

import numpy as np
import pytest

from conftest import run_cli
from dpsanitize.audit import audit_words, plausible_deniability
from dpsanitize.errors import InvalidParameter
from dpsanitize.mechanisms import MECHANISMS, create, mechanism_class
from dpsanitize.rng import make_rng

ALL = ["gumbel", "laplace", "mahalanobis", "vickrey", "tem", "santext", "santext+", "custext",
       "density", "density-mh", "diffractor"]
EPS = {"gumbel": 400.0}


def test_mechanisms_json_lists_all_of_them(runner):
    result = run_cli(runner, ["mechanisms", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ALL == list(MECHANISMS)
    for r in rows:
        assert r["guarantee"] and r["unit"] and r["reference"]


@pytest.mark.parametrize("name", ALL)
def test_every_mechanism_runs_validates_and_states(stat_store, name):
    mech = create(name, epsilon=EPS.get(name, 3.0), store=stat_store,
                  experimental=name == "density-mh")
    out = mech.perturb(np.arange(12).repeat(10), make_rng(0))
    assert out.shape == (120,) and out.min() >= 0 and out.max() < 12
    assert mech.perturb(np.array([], dtype=np.int64), make_rng(0)).shape == (0,)
    statement = mech.privacy_statement()
    assert statement["mechanism"] == name
    assert "per word" in statement["unit"] or (  # only the experimental one has no guarantee
        name == "density-mh" and "no formal guarantee" in statement["unit"])
    assert repr(mech).startswith(type(mech).__name__ + "(epsilon=")
    assert mech.calibration()["epsilon"] == EPS.get(name, 3.0)
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidParameter):
            mechanism_class(name)(epsilon=bad, store=stat_store)


def test_the_library_gates_experimental_mechanisms_and_warns(stat_store):
    from dpsanitize.errors import PrivacyWarning
    from dpsanitize.pipeline import Sanitizer

    with pytest.raises(InvalidParameter, match="experimental"):
        create("density-mh", epsilon=3.0, store=stat_store)
    with pytest.raises(InvalidParameter, match="experimental"):
        Sanitizer("density-mh", 3.0, store=stat_store)
    with pytest.warns(PrivacyWarning, match="no formal guarantee"):
        Sanitizer("density-mh", 3.0, store=stat_store, experimental=True)
    made = mechanism_class("density-mh")(epsilon=3.0, store=stat_store)  # by class, on purpose
    with pytest.warns(PrivacyWarning, match="no formal guarantee"):
        Sanitizer(made, store=stat_store)
    with pytest.warns(PrivacyWarning, match="anyone who knows the seed"):
        Sanitizer("tem", 3.0, store=stat_store, seed=1)
    with pytest.warns(PrivacyWarning, match="unprotected"):
        Sanitizer("tem", 3.0, store=stat_store, oov="keep")


def test_a_users_fixed_seed_warns_in_the_measurements_too(stat_store):
    """audit, attack and tune warn for a user's int seed; a SeedSequence (eval's own
    measurement seeds) and no seed do not."""
    import warnings

    from dpsanitize import attack
    from dpsanitize.audit import audit
    from dpsanitize.errors import PrivacyWarning

    mech = create("tem", epsilon=3.0, store=stat_store)
    prior = attack.default_prior(len(stat_store.vocab), 6)
    calls = [lambda seed: audit(mech, sample=3, draws=5, seed=seed),
             lambda seed: attack.bayes_recovery(mech, prior, method="sampled", draws=8, seed=seed),
             lambda seed: attack.tune("tem", prior, 0.9, store=stat_store, draws=8,
                                      method="sampled", seed=seed)]
    for call in calls:
        with pytest.warns(PrivacyWarning, match="anyone who knows the seed"):
            call(1)
        with warnings.catch_warnings():
            warnings.simplefilter("error", PrivacyWarning)
            call(None)
            call(np.random.SeedSequence(1))


def test_recipes_rebuild_the_same_mechanism(stat_store):
    import pickle

    mech = create("vickrey", epsilon=7.0, store=stat_store, vickrey_t=0.25, decoder="exact")
    recipe = pickle.loads(pickle.dumps(mech.recipe))
    again = recipe.build(stat_store)
    assert repr(again) == repr(mech) and again.guarantee == mech.guarantee
    ids = np.arange(12).repeat(5)
    assert (again.perturb(ids, make_rng(3)) == mech.perturb(ids, make_rng(3))).all()


def test_cli_choices_match_the_library():
    """Copies kept where the library module is too heavy to import for --help."""
    from dpsanitize import embeddings, index
    from dpsanitize.cli.options import FORMATS
    from dpsanitize.mechanisms import OPTIONS

    decoder = next(spec for flag, spec, _ in OPTIONS if flag == "--decoder")
    assert FORMATS == embeddings.FORMATS and decoder[1] == index.DECODERS


def test_options_for_other_mechanisms_are_refused(stat_store):
    with pytest.raises(InvalidParameter, match="--custext-k does not apply to --mech tem"):
        create("tem", epsilon=1.0, store=stat_store, custext_k=5)
    assert create("tem", epsilon=1.0, store=stat_store, custext_k=None).name == "tem"


@pytest.mark.parametrize("name", ["tem", "santext", "santext+", "custext"])
def test_audit_exact_n_w_agrees_with_sampling(stat_store, name):
    mech = create(name, epsilon=3.0, store=stat_store)
    rows = plausible_deniability(mech, audit_words(12, 4), 20_000, make_rng(1))
    for r in rows:  # 20000 draws: sd <= 0.0036; 6 sd is a 1e-9 false alarm
        assert abs(r["N_w"] - r["N_w_exact"]) < 0.022
        assert 1 <= r["S_w"] <= 12


def test_cli_audit_json(runner, stat_store):
    common = ["--embeddings", stat_store.vocab.source, "--vocab-size", "0",
              "--cache-dir", stat_store.path.rsplit("/", 1)[0]]
    words = ",".join(stat_store.vocab.words[:3])
    result = run_cli(runner, ["audit", "--mech", "santext", "--eps", "3", "--words", words,
                              "--draws", "500", "--seed", "1", "--json", *common])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["word"] for r in data["rows"]] == stat_store.vocab.words[:3]
    assert data["draws"] == 500 and 0 <= data["mean_N_w"] <= 1
    bad = run_cli(runner, ["audit", "--mech", "santext", "--eps", "3", "--words", "zzzqqq",
                           *common])
    assert bad.exit_code == 2 and "zzzqqq" not in bad.stderr


def test_help_states_each_mechanisms_useful_epsilon(runner):
    from dpsanitize.mechanisms import EPSILON_GUIDE, MECHANISMS

    run_help = " ".join(run_cli(runner, ["run", "--help"]).stdout.split())
    listing = run_cli(runner, ["mechanisms", "--json"])
    rows = {r["name"]: r for r in json.loads(listing.stdout)}
    for name in MECHANISMS:
        span, detail = EPSILON_GUIDE[name]
        assert f"{name} {span}" in run_help
        assert span in rows[name]["typical_epsilon"] and detail in rows[name]["typical_epsilon"]


@pytest.mark.slow
def test_gumbel_floor_in_the_help_is_the_default_vocabularys(default_store):
    import re

    from dpsanitize.mechanisms import EPSILON_GUIDE
    from dpsanitize.mechanisms.gumbel import epsilon_floor

    stated = float(re.search(r"\d+\.\d", EPSILON_GUIDE["gumbel"][0]).group())
    assert stated == round(epsilon_floor(len(default_store.vocab), default_store.d_min), 1)
