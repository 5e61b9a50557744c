"""Every snippet in the README and the guides works: an example can never fail again.

* ``yaml`` blocks that are routines (they have ``steps``) validate with no problem
  against the bundled toolsets and the ``routine init`` project's; other YAML parses.
* ``toml`` blocks load as project files.
* ``python`` blocks compile and their imports resolve; those that start with
  ``# example: runs`` run, in a fresh ``routine init`` project.
* ``bash`` lines that call ``routine`` name a command that exists, with options it has.
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
import sys

import click
import pytest
import typer
import yaml

from routine.cli.commands import app
from routine.cli.project_init import init_project
from routine.spec.loader import load_routine_text
from routine.spec.project import Project
from routine.spec.toolsets import registry_for
from routine.spec.validate import check_routine

from .conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.M | re.S)


def blocks(language: str) -> list[tuple[str, str]]:
    """(where, text) of every fenced block in that language, in every document."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match[1] == language:
                line = text[:match.start()].count("\n") + 1
                found.append((f"{doc.relative_to(ROOT)}:{line}", match[2]))
    return found


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory):
    """A `routine init` project; its toolset module importable while the tests run."""
    folder = tmp_path_factory.mktemp("docs") / "helpdesk"
    init_project(folder)
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop("helpdesk_tools", None)


def test_the_documents_have_snippets_of_every_kind():
    assert len(blocks("yaml")) >= 3 and len(blocks("python")) >= 4
    assert blocks("toml") and len(blocks("bash")) >= 5


@pytest.mark.parametrize("where,text", blocks("yaml"), ids=[w for w, _ in blocks("yaml")])
def test_yaml_snippets_are_valid_routines(where, text, scaffold):
    data = yaml.safe_load(text)
    if not (isinstance(data, dict) and "steps" in data):
        return  # a fragment: parsing is the check
    loaded = load_routine_text(text, where)
    project = Project({**Project.bundled().toolsets, "helpdesk": "helpdesk_tools"})
    registry, problems = registry_for(loaded, project=project)
    problems += check_routine(loaded, registry)
    assert not problems, "\n".join(map(str, problems))


@pytest.mark.parametrize("where,text", blocks("toml"), ids=[w for w, _ in blocks("toml")])
def test_toml_snippets_are_project_files(where, text, tmp_path):
    (tmp_path / "routine.toml").write_text(text)
    Project.load(tmp_path / "routine.toml")  # raises ProjectError with the line if wrong


@pytest.mark.parametrize("where,text", blocks("python"), ids=[w for w, _ in blocks("python")])
def test_python_snippets_compile_import_and_run(where, text, scaffold, monkeypatch):
    tree = ast.parse(text, where)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(
                    f"{node.module}.{alias.name}"), f"{where}: {node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
    if text.startswith("# example: runs"):
        monkeypatch.chdir(scaffold)
        exec(compile(tree, where, "exec"), {"__name__": "snippet"})


def _commands() -> dict[str, click.Command]:
    root = typer.main.get_command(app)
    found: dict[str, click.Command] = {}

    def walk(command: click.Command, prefix: str) -> None:
        found[prefix] = command
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{prefix} {name}".strip())

    walk(root, "")
    return found


def _routine_lines() -> list[tuple[str, str]]:
    lines = []
    for where, text in blocks("bash"):
        for line in text.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            for part in re.split(r"&&|;", line):
                part = part.strip()
                if part.startswith("routine "):
                    lines.append((where, part))
    return lines


@pytest.mark.parametrize("where,line", _routine_lines(),
                         ids=[f"{w} {c.split()[1]}" for w, c in _routine_lines()])
def test_routine_commands_in_the_docs_exist(where, line):
    commands = _commands()
    words = shlex.split(line)[1:]
    name = ""
    while words and f"{name} {words[0]}".strip() in commands:
        name = f"{name} {words.pop(0)}".strip()
    command = commands[name]
    assert name and not isinstance(command, click.Group), f"{where}: {line}"
    options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    for word in words:
        if word.startswith("--"):
            assert word.split("=")[0] in options, f"{where}: {line}: no option {word}"
