"""The docs (README.md and docs/*.md) document every command and option; every command has help
with an example."""

import re
from pathlib import Path

import click
import pytest

from conftest import ROOT
from dpsanitize.cli import cli
from dpsanitize.mechanisms import MECHANISMS

README = Path(ROOT, "README.md").read_text()
DOCS = README + "".join(p.read_text() for p in sorted(Path(ROOT, "docs").glob("*.md")))


def commands(group=cli, prefix=""):
    for name, cmd in group.commands.items():
        yield prefix + name, cmd
        if isinstance(cmd, click.Group):
            yield from commands(cmd, prefix + name + " ")


@pytest.mark.parametrize("name,cmd", list(commands()), ids=lambda x: x if isinstance(x, str) else "")
def test_command_documented(name, cmd):
    assert f"dpsanitize {name}" in DOCS
    assert cmd.help and "Example:" in cmd.help
    for param in cmd.params:
        if isinstance(param, click.Option) and not param.hidden:
            longest = max(param.opts, key=len)
            assert longest in DOCS, f"{longest} of `dpsanitize {name}` is not in the docs"
            assert param.help, f"{longest} has no help"


def test_readme_starts_with_the_two_commands():
    lines = [line.strip() for line in README.splitlines() if line.strip().startswith("pip install")]
    assert lines[0].startswith("pip install . && dpsanitize run ")
    assert lines[1] == "pip install '.[test]' && pytest"
    assert Path(ROOT, ".ci", "run").read_text().strip().splitlines()[-1] == lines[1]


def test_every_mechanism_and_exit_code_documented():
    for name in MECHANISMS:
        assert f"`{name}`" in DOCS
    for code in (0, 2, 65, 66, 70, 73, 74, 75, 77, 78, 130, 141, 143):
        assert f"| {code} |" in DOCS


def test_generated_doc_blocks_match_the_code():
    """--help of every command, the guarantees and what is released as is: regenerate with
    ``python scripts/gen_docs.py`` when this fails."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_docs", Path(ROOT, "scripts", "gen_docs.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    names = set()
    for path in gen.doc_files():
        text = Path(path).read_text()
        names.update(m.group("name") for m in gen.BLOCK.finditer(text))
        assert gen.render(text) == text, f"{path} is stale: run python scripts/gen_docs.py"
    assert names >= {"guarantees", "released-as-is"}


def test_reports_list_what_the_docs_say_is_released():
    from dpsanitize.privacy import RELEASED_AS_IS

    guarantee = Path(ROOT, "docs", "guarantee.md").read_text()
    for items in RELEASED_AS_IS.values():
        for item in items:
            assert item in guarantee


def _anchors(page: Path) -> set[str]:
    """The heading anchors a code host makes: lower case, punctuation dropped, spaces -> '-'."""
    return {re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            for m in re.finditer(r"^#+\s+(.*)$", page.read_text(), re.M)}


def test_relative_links_and_anchors_resolve():
    broken = []
    for page in [Path(ROOT, "README.md"), *sorted(Path(ROOT, "docs").glob("*.md"))]:
        for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", link):
                continue
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists() or (anchor and target.suffix == ".md"
                                       and anchor not in _anchors(target)):
                broken.append(f"{page.name}: {link}")
    assert not broken
