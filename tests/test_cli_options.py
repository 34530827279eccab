"""The CLI declares option defaults without importing the library (so --help stays light);
these tests hold them equal to the defaults of the library functions the commands call."""

import inspect

import pytest

from dpsanitize import attack, audit, evaluate, index
from dpsanitize.cli import cli


def _defaults(func):
    return {name: p.default for name, p in inspect.signature(func).parameters.items()}


def _option_defaults(path):
    command = cli
    for name in path.split():
        command = command.commands[name]
    return {p.name: p.default for p in command.params}


# (command, {option name: (library function, parameter)})
CALLS = [
    ("index build", {"vocab_size": (index.open_index, "vocab_size"),
                     "embeddings_format": (index.open_index, "fmt"),
                     "trees": (index.BuildParams, "trees")}),
    ("audit", {"sample": (audit.audit, "sample"), "draws": (audit.audit, "draws")}),
    ("attack", {"words": (attack.load_prior, "words"), "prior_format": (attack.load_prior, "fmt"),
                "draws": (attack.bayes_recovery, "draws"),
                "method": (attack.bayes_recovery, "method")}),
    ("tune", {"draws": (attack.tune, "draws"), "method": (attack.tune, "method")}),
    ("eval", {name: (evaluate.evaluate_files, name) for name in (
        "test_file", "test_text_column", "fmt_name", "repeats", "sanitize", "classifier",
        "draws", "plot_path", "force")}),
]


@pytest.mark.parametrize("path,calls", CALLS, ids=[c[0] for c in CALLS])
def test_option_defaults_are_the_librarys(path, calls):
    options = _option_defaults(path)
    for option, (func, parameter) in calls.items():
        assert options[option] == _defaults(func)[parameter], (path, option)
