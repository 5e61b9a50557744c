"""Hostile review, round 12 part C: what a user hits on a project of their own (`routine
init`) with gold files from other tools, odd `routine eval` / `routine distill` options and
MCP servers whose tool schemas are broken. Real HTTP endpoints that play the gold, no model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from routine.cli.commands import main
from routine.errors import RoutineWarning
from routine.eval.dataset import load_dataset
from routine.eval.jobs import append_record, read_records
from tests.servers.gold import gold_endpoint

from .test_init import init_project

SERVERS = Path(__file__).parent / "servers"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fresh `routine init` project with its gold data built, as the working directory."""
    for folder in init_project(tmp_path, monkeypatch):
        assert main(["dataset", "build", "eval/helpdesk"]) == 0
        yield folder


def _eval(url: str, *more: str) -> int:
    return main(["eval", "eval/helpdesk", "--out", "results", "--base-url", url, "--model",
                 "gold", "--conditions", "nl+track", "--steps", "0", "--tasks", "0", *more])


def test_a_gold_file_saved_with_a_byte_order_mark_is_evaluated(project, capsys):
    """A test.jsonl saved by Notepad or Excel (UTF-8 with a BOM) was 'not a gold example
    (Invalid JSON ...)' at line 1, though every line was right."""
    test = Path("eval/helpdesk/test.jsonl")
    with gold_endpoint(Path("eval/helpdesk")) as (url, _):
        test.write_bytes(b"\xef\xbb\xbf" + test.read_bytes().replace(b"\n", b"\r\n"))
        assert _eval(url) == 0, capsys.readouterr()
    tasks = read_records(Path("results/tasks.jsonl"), _Any)
    assert len(tasks) == 5


def test_a_gold_file_that_is_not_utf8_is_named_by_file_and_line(project, capsys):
    """A Latin-1 byte in test.jsonl ended `routine eval` with a bare UnicodeDecodeError
    ('not expected: ROUTINE_DEBUG=1 shows where'), naming neither the file nor the line."""
    test = Path("eval/helpdesk/test.jsonl")
    lines = test.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b" here", b" h\xe9re", 1)
    test.write_bytes(b"\n".join(lines))
    assert main(["eval", "eval/helpdesk", "--out", "results", "--base-url",
                 "http://127.0.0.1:9/v1", "--model", "m"]) == 1
    err = capsys.readouterr().err
    assert "test.jsonl:3: not UTF-8 text" in err and "not expected" not in err, err


class _Any(BaseModel, extra="allow"):
    pass


def test_a_line_separator_inside_a_json_string_is_text_not_a_line_end(project, capsys):
    """U+2028 (and NEL) in a request or an answer is valid inside a JSON string, but the gold
    file and the results files were split with str.splitlines(): the gold was 'not a gold
    example', and a results file whose answer held one stopped every resume and report."""
    domain = Path("eval/helpdesk/domain.py")
    domain.write_text(domain.read_text().replace(
        'is open ({ticket[\'priority\']} priority).",',
        'is open\\u2028({ticket[\'priority\']} priority)\\x85.",'))
    assert main(["dataset", "build", "eval/helpdesk"]) == 0
    examples = load_dataset("eval/helpdesk", ("test",))
    assert len(examples) == 5 and "\u2028" in examples[0].answer
    with gold_endpoint(Path("eval/helpdesk")) as (url, requests):
        assert _eval(url) == 0, capsys.readouterr()
        made = len(requests)
        assert _eval(url) == 0, capsys.readouterr()  # resumed: every record read back
        assert len(requests) == made
    assert main(["eval", "eval/helpdesk", "--out", "results", "--report-only"]) == 0


def test_a_results_line_holding_a_line_separator_reads_back(tmp_path):
    """read_records split on U+2028: the record a model's answer wrote could not be read."""
    path = tmp_path / "tasks.jsonl"
    append_record(path, _Any(answer="Refill 12 is ready\u2028at the counter\x85."))
    (record,) = read_records(path, _Any)
    assert record.answer == "Refill 12 is ready\u2028at the counter\x85."


def test_a_report_of_a_run_cut_inside_a_character_leaves_the_torn_line_out(tmp_path):
    """A last line cut inside a multi-byte character (an answer in German, Greek, Chinese)
    was 'not UTF-8 text' in `--report-only`, instead of the torn line being left out."""
    path = tmp_path / "tasks.jsonl"
    append_record(path, _Any(answer="ok"))
    cut = _Any(answer="Ihr Rezept für Ibuprofen ist abholbereit").model_dump_json().encode()
    path.write_bytes(path.read_bytes() + cut[:cut.index("ü".encode()) + 1])
    (record,) = read_records(path, _Any, torn_tail_ok=True)
    assert record.answer == "ok"


@pytest.mark.parametrize("option", [["--max-tokens", "0"], ["--max-tokens", "-5"],
                                    ["--temperature", "-1"]])
def test_eval_refuses_a_sampling_setting_no_run_takes_before_it_starts(project, capsys,
                                                                       option):
    """`--max-tokens 0` or `--temperature -1` ran the step protocol's requests, then died in
    the task protocol with a pydantic ValidationError ('not expected')."""
    with gold_endpoint(Path("eval/helpdesk")) as (url, requests):
        assert _eval(url, *option) == 2
    err = capsys.readouterr().err
    assert option[0] in err and "not expected" not in err, err
    assert requests == [] and not Path("results").exists()


@pytest.mark.parametrize(("options", "said"), [
    (["--split", "tets"], "unknown split 'tets'"),
    (["--variants", ","], "no variant"),
])
def test_distill_says_what_is_wrong_with_its_options(project, capsys, options, said):
    """A misspelt --split or an empty --variants said 'no SFT examples from eval/helpdesk',
    as if the gold held nothing."""
    out = Path("sft.jsonl")
    assert main(["distill", "eval/helpdesk", "--out", str(out), "--no-count-tokens",
                 *options]) in (1, 2)
    err = capsys.readouterr().err
    assert said in err and "no SFT examples" not in err, err
    assert not out.exists()


def test_distill_of_a_dataset_never_built_says_to_build_it(project, capsys):
    """With train.jsonl missing the error was 'no SFT examples', not what to run."""
    Path("eval/helpdesk/train.jsonl").unlink()
    assert main(["distill", "eval/helpdesk", "--out", "sft.jsonl", "--no-count-tokens"]) == 1
    err = capsys.readouterr().err
    assert "train.jsonl is missing" in err and "routine dataset build" in err, err


def test_distill_refuses_an_out_folder_before_building_the_data(project, capsys, monkeypatch):
    """--out naming a folder built every row first (minutes on a real split), then died
    with 'Is a directory'."""
    import importlib

    distill = importlib.import_module("routine.finetune.distill")

    def never(*args, **kwargs):
        raise AssertionError("the data was built")

    monkeypatch.setattr(distill, "distill", never)
    Path("sft").mkdir()
    assert main(["distill", "eval/helpdesk", "--out", "sft", "--no-count-tokens"]) == 2
    assert "sft is a folder" in capsys.readouterr().err


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("kind", "said"), [
    ("pattern", "properties.q.pattern: '([' is not a 'regex'"),
    ("ref", "$ref '#/$defs/missing' points at nothing"),
    ("type", "properties.q.type: 'strng' is not valid"),
])
def test_an_mcp_tool_whose_schema_cannot_check_arguments_is_left_out_when_listed(
        monkeypatch, kind, said):
    """A server tool with an invalid regex `pattern` or a dangling `$ref` loaded fine, and
    the model's first call to it raised re.error / PointerToNowhere out of `agent.run()`
    (no trace); an unknown type was only 'takes strng (expected strng)' in validate: the
    tool is left out with a warning."""
    from routine.tools.mcp import McpServer, mcp_toolset

    monkeypatch.setenv("ODD_SCHEMA_MCP", kind)
    server = McpServer(command=sys.executable, args=[str(SERVERS / "odd_schema_mcp.py")])
    with pytest.warns(RoutineWarning, match="tool 'lookup' left out") as caught:
        toolset = mcp_toolset(server)
    assert list(toolset.tools) == []  # (a server's other tools load: one odd tool is left out)
    said_all = " ".join(str(w.message) for w in caught)
    assert said in said_all and "odd_schema_mcp.py" in said_all
    monkeypatch.setenv("ODD_SCHEMA_MCP", "good_ref")  # references that resolve still load
    assert list(mcp_toolset(server).tools) == ["lookup"]


def test_a_run_manifest_left_empty_by_a_killed_run_is_named_or_written_anew(project, capsys):
    """An empty results/run.json (the run killed as it wrote it) stopped every later `routine
    eval` of the folder with a bare JSONDecodeError ('not expected')."""
    Path("results").mkdir()
    Path("results/run.json").write_text("")
    with gold_endpoint(Path("eval/helpdesk")) as (url, _):
        assert _eval(url) == 0, capsys.readouterr()  # no records: it speaks for nothing
        Path("results/run.json").write_text('{"model": "go')
        assert _eval(url) == 1
    err = capsys.readouterr().err
    assert "run.json: not the JSON object `routine eval` writes" in err, err
    assert "not expected" not in err


def test_distill_from_the_test_split_warns(project, capsys):
    """`routine distill --split test` built training data from the test split without a
    word: the tuned model's test figures would measure memory."""
    assert main(["distill", "eval/helpdesk", "--out", "sft.jsonl", "--no-count-tokens",
                 "--split", "test"]) == 0
    err = capsys.readouterr().err
    assert "warning: training data from the test split" in err, err
    assert Path("sft.jsonl").stat().st_size > 0
    assert main(["distill", "eval/helpdesk", "--out", "sft2.jsonl", "--no-count-tokens"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_route_eval_request_holding_a_line_separator_reads_back(tmp_path):
    """Route-eval's cases and decisions files were split at U+2028 inside a request (a
    valid JSON line became 'not JSON'), and an examples file the same."""
    from routine.routing import load_examples
    from routine.routing.measure import _rows

    path = tmp_path / "test.jsonl"
    path.write_text('\ufeff{"query": "refill my\\u2028prescription", "routine": "refill"}\n'
                    .replace("\\u2028", "\u2028"), encoding="utf-8")
    assert [row["query"] for _, row in _rows(path)] == ["refill my\u2028prescription"]
    assert [e.query for e in load_examples(path)] == ["refill my\u2028prescription"]


@pytest.mark.timeout(120)
def test_mcp_tool_names_with_dots_or_slashes_reach_the_model_as_names_it_takes(monkeypatch):
    """MCP allows `rx.lookup` and `files/read`; OpenAI's API refuses a request whose tool
    name is outside [A-Za-z0-9_-]{1,64}: every run with such a server would fail there."""
    from routine import Agent, ToolRegistry
    from routine.models.testing import ScriptedModel, call
    from routine.tools.mcp import McpServer, mcp_toolset, wire_name

    monkeypatch.setenv("ODD_SCHEMA_MCP", "dotted")
    server = McpServer(command=sys.executable, args=[str(SERVERS / "odd_schema_mcp.py")])
    toolset = mcp_toolset(server)
    assert sorted(toolset.tools) == ["files_read", "rx_lookup"]
    assert "MCP tool 'rx.lookup'" in toolset.tools["rx_lookup"].description
    model = ScriptedModel([call("rx_lookup", q="amoxicillin"), call("finish", answer="Done.")])
    trace = Agent(None, ToolRegistry(toolset), model).run("Look amoxicillin up")
    assert trace.tool_calls[0].result == "rx.lookup ran"  # the server's own name was called
    sent = [t["function"]["name"] for t in model.requests[0].tools]
    assert "rx_lookup" in sent and "rx.lookup" not in sent
    assert wire_name("a" * 80) != wire_name("a" * 81) and len(wire_name("a" * 80)) == 64


@pytest.mark.timeout(120)
def test_a_free_form_mcp_tool_takes_any_argument_in_validate(monkeypatch):
    """An MCP tool whose input schema is {"type": "object"} (any arguments) was "takes no
    argument 'q'" in validate, though the server and the run take them."""
    from routine import ToolRegistry
    from routine.spec import load_routine_text
    from routine.spec.validate import check_routine
    from routine.tools.mcp import McpServer, mcp_toolset

    monkeypatch.setenv("ODD_SCHEMA_MCP", "free")
    server = McpServer(command=sys.executable, args=[str(SERVERS / "odd_schema_mcp.py")])
    registry = ToolRegistry(mcp_toolset(server))
    text = ("name: rx\ndescription: Look a prescription up.\ninputs:\n"
            "  drug: {type: string, description: the drug}\nsteps:\n"
            "  - id: look\n    name: Look\n    description: Look it up.\n    tool: lookup\n"
            "    args: {q: '${inputs.drug}', limit: 3, field: '${inputs.missing}'}\n"
            "  - {id: answer, name: Answer, description: Say., finish: true}\n")
    problems = check_routine(load_routine_text(text, "rx.yaml"), registry)
    # any argument name, and its references still checked
    assert [p.message for p in problems] == ["${inputs.missing} names no input of this routine"]
