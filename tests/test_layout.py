"""The package's floor plan: no import circle, no import that runs back up a layer, and
a wheel that installs the library and the sample toolsets under their own names."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "routine"

# a layer may import only from layers below it (and from inside its own package)
# routing (3.5) sits on run: a routed run is an Agent run, and eval's routed condition uses it
LAYERS = {"errors": 0, "tools": 1, "models": 1, "spec": 2, "run": 3, "drafting": 3,
          "routing": 3.5, "eval": 4,
          "finetune": 5, "cli": 6, "__init__": 7, "__main__": 7}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every ``routine`` module a file imports (top level, in functions, under TYPE_CHECKING)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "routine"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] != "routine":
                continue
            found.add(target)
            for alias in node.names:  # `from . import x` may name a submodule
                candidate = f"{target}.{alias.name}"
                if _path_of(candidate) is not None:
                    found.add(candidate)
    return {m for m in found if _path_of(m) is not None}


def _path_of(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _graph() -> dict[str, set[str]]:
    files = [p for p in PACKAGE.rglob("*.py")  # the scaffold is a user's project, not ours
             if "__pycache__" not in p.parts and "scaffold" not in p.parts]
    return {_module_name(p): _imports(p) - {_module_name(p)} for p in files}


def _layer(module: str) -> tuple[str, int]:
    parts = module.split(".")
    room = parts[1] if len(parts) > 1 else "__init__"
    if room not in LAYERS:
        raise AssertionError(f"{module}: module outside the floor plan; give it a room in "
                             f"LAYERS ({', '.join(LAYERS)})")
    return room, LAYERS[room]


def test_no_module_imports_a_higher_or_sibling_layer():
    wrong = []
    for module, targets in _graph().items():
        room, rank = _layer(module)
        for target in targets:
            other, other_rank = _layer(target)
            if other == room or other_rank < rank:
                continue
            if module in ("routine", "routine.__main__") and other_rank < LAYERS["__init__"]:
                continue
            wrong.append(f"{module} ({room}) imports {target} ({other})")
    assert not wrong, "imports that run up or across the layers:\n" + "\n".join(sorted(wrong))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle():
    graph = _graph()
    # a package's __init__ re-exports its modules: that is not a circle unless a module
    # imports its own package back, which the layer test and this one both see
    cycles = _cycles({m: {t for t in ts if not (m.startswith(t + ".") and _path_of(t).name
                                                 == "__init__.py")}
                      for m, ts in graph.items()})
    assert not cycles, f"import circles: {cycles}"


def test_the_cycle_finder_can_fail():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_every_package_folder_is_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapped = config["package-dir"]
    folders = {_module_name(p.parent) for p in PACKAGE.rglob("__init__.py")}
    folders |= {"routine_tools" + _module_name(p.parent)[len("tools"):]
                for p in (ROOT / mapped["routine_tools"]).rglob("__init__.py")}
    assert listed == folders
    assert not (ROOT / "routine" / "templates").exists()


@pytest.mark.timeout(300)
def test_wheel_installs_library_and_sample_tools_under_their_own_names(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("routine-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "routine_tools/hr/__init__.py" in names
    assert "routine/run/templates/system.j2" in names
    assert "routine/models/templates/qwen2.5_tools.jinja" in names
    assert not any(n.startswith("tools/") for n in names)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    script = (
        "import importlib.util, routine, routine_tools.hr, routine_tools.retail\n"
        "from routine.run.prompts import Planner\n"
        "from routine.spec import load_routine\n"
        "assert routine.__file__.startswith({!r})\n"
        "assert importlib.util.find_spec('tools') is None\n"
        "loaded = load_routine({!r})\n"
        "assert 'Step 1' in Planner().system_prompt(loaded.routine)\n"
        "print(len(routine_tools.hr.toolset.tools))\n"
    ).format(str(site), str(ROOT / "routines" / "hr" / "leave_balance.yaml"))
    ran = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert int(ran.stdout.strip()) > 10


def test_every_error_class_is_in_the_error_tree():
    """errors.py's docstring draws every exception class the package defines."""
    import routine.errors

    tree = routine.errors.__doc__ or ""
    defined = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                    getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Exception"))
                    or getattr(b, "id", "") in defined for b in node.bases):
                defined.add(node.name)
    assert {"SpecError", "ModelServerError", "CallParseError", "McpToolError"} <= defined
    missing = sorted(name for name in defined if name not in tree)
    assert not missing, f"not in the tree of routine/errors.py: {missing}"
