"""The house's floors only look down: no import circle, no import that runs up a floor, and every
room of the package has a declared floor (scripts/layers.py, docs/design.md)."""

import importlib.util
from pathlib import Path

from conftest import ROOT


def _layers():
    spec = importlib.util.spec_from_file_location("layers", Path(ROOT, "scripts", "layers.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_circle_and_no_import_runs_up():
    layers = _layers()
    arrows, _ = layers.graph()
    assert layers.circles(arrows) == []
    assert layers.upward(arrows) == []
    assert [m for m in arrows if m != "dpsanitize" and layers.floor_of(m) is None] == []


def test_the_check_sees_an_import_that_runs_up():
    layers = _layers()
    arrows, _ = layers.graph()
    arrows = {**arrows, "dpsanitize.rewrite": arrows["dpsanitize.rewrite"] | {"dpsanitize.batch"}}
    assert ("dpsanitize.rewrite", "dpsanitize.batch") in layers.upward(arrows)
    arrows["dpsanitize.batch"] = arrows["dpsanitize.batch"] | {"dpsanitize.rewrite"}
    assert layers.circles(arrows)
