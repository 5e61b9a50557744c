"""Small hostile routine files: each is refused with one clear error at file:line, fast and
in little memory, and a folder check goes on past it (issue 11's findings)."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

from routine.cli.commands import main
from routine.errors import SpecError
from routine.spec import load_routine
from routine.spec.format import MAX_STEPS
from routine.spec.loader import MAX_DEPTH, MAX_FILE_BYTES

ROOT = Path(__file__).resolve().parent.parent


def _laughs(levels: int = 9) -> str:
    """A "billion laughs": each anchor lists the previous one nine times (9^9 leaves)."""
    lines = ["name: bomb", "description: d", "a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines + ["steps: []"]) + "\n"


def _routine(steps: int) -> str:
    body = "".join(f"  - id: s{i}\n    name: S{i}\n    description: find {i}\n"
                   f"    tool: find_customer\n    args:\n      email: ${{inputs.email}}\n"
                   for i in range(steps))
    return ("name: long\ndescription: d\ntoolsets: [routine_tools.retail]\n"
            "inputs:\n  email: {type: string, description: e}\nsteps:\n" + body +
            "  - id: end\n    name: End\n    description: done\n    finish: true\n")


def _refused(path: Path, match: str) -> SpecError:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(SpecError, match=match) as caught:
        load_routine(path)
    assert time.perf_counter() - started < 5
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200  # the alias bomb took validate past 3.9 GB before
    assert len(caught.value.problems) == 1
    return caught.value


def test_an_alias_bomb_is_refused_where_it_expands(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_laughs())
    assert path.stat().st_size < 600
    problem = _refused(path, "expands to more than").problems[0]
    assert problem.file == str(path) and problem.line >= 4  # at an alias, not line 1


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("name: deep\ndescription: d\nsteps: " + "[" * 500 + "]" * 500 + "\n")
    problem = _refused(path, f"nests more than {MAX_DEPTH} levels").problems[0]
    assert problem.line == 3
    nested = tmp_path / "nested.yaml"  # block style too
    nested.write_text("name: n\ndescription: d\nsteps:\n" + "".join(
        "  " * i + "- \n" for i in range(300)))
    _refused(nested, "nests more than")


def test_step_count_is_bounded_and_a_long_routine_still_validates(tmp_path):
    long = tmp_path / "long.yaml"
    long.write_text(_routine(1000))
    problem = _refused(long, f"1001 steps .* at most {MAX_STEPS}").problems[0]
    assert problem.line == 6  # the steps key
    ok = tmp_path / "ok.yaml"
    ok.write_text(_routine(MAX_STEPS - 1))
    assert main(["validate", str(ok)]) == 0  # no RecursionError on the longest allowed


def test_non_utf8_and_huge_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: ok\ndescription: caf\xe9\n")
    problem = _refused(bad, "0xe9 is not UTF-8").problems[0]
    assert (problem.line, problem.column) == (2, 17)
    huge = tmp_path / "huge.yaml"
    huge.write_text("name: h\ndescription: " + "x" * (MAX_FILE_BYTES + 1) + "\n")
    _refused(huge, "bytes")


def test_a_folder_check_goes_on_past_bad_files(tmp_path, capsys):
    (tmp_path / "bomb.yaml").write_text(_laughs())
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe")
    (tmp_path / "good.yaml").write_text(
        (ROOT / "routines" / "retail" / "order_status.yaml").read_text())
    assert main(["validate", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "3 routine files checked: 2 problems" in captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize("argv, says", [
    (["validate", "--bogus"], "No such option"),
    (["run", "routines/retail/order_status.yaml", "hi", "--format", "xml"], "'xml'"),
    (["run", "routines/retail/order_status.yaml", "-i", "noequals"], "NAME=VALUE"),
    (["eval", "eval/datasets/retail", "--out", "/nonexistent/x", "--conditions", "magic",
      "--report-only"], "magic"),
])
def test_usage_errors_are_one_line_not_a_traceback(argv, says, capsys):
    assert main(argv) in (1, 2)
    captured = capsys.readouterr()
    assert says in captured.err and "Traceback" not in captured.out + captured.err
