"""Twelfth hostile round (a): an insurer's own project — its claims toolset, drafts from its
experts, a library of sixty near-identical claim routines — drafted and routed as a
demanding user would. Each problem is said in words, to the model or to the user, and
never as a traceback, a hang or a broken file."""

from __future__ import annotations

import itertools
import json
import sys

import pytest
import yaml

from routine.cli.commands import main
from routine.drafting import draft
from routine.errors import SpecError
from routine.models.testing import ScriptedModel
from routine.routing import Library, load_examples, make_router
from routine.routing.embedding import have_embeddings
from routine.routing.library import retrieval_text
from routine.spec.project import Project

from .conftest import ROUTINES
from .test_cli import ScriptedServer, scripted_server  # noqa: F401  (the endpoint fixture)

CLAIMS_TOOLS = '''
from __future__ import annotations
from typing import Literal
from pydantic import BaseModel
from routine import Toolset

toolset = Toolset("claims")


class Policy(BaseModel):
    policy_id: str
    holder: str


class Claim(BaseModel):
    claim_id: int
    status: str


@toolset.tool
def find_policy(policy_number: str) -> Policy:
    """Look a policy up by its number.

    Args:
        policy_number: the policy number, e.g. P-1234.
    """
    return Policy(policy_id=policy_number, holder="x")


@toolset.tool
def open_claim(policy_id: str, description: str,
               kind: Literal["auto", "home", "travel"] = "auto") -> Claim:
    """Open a claim on a policy.

    Args:
        policy_id: the policy.
        description: what happened.
        kind: the kind of claim.
    """
    return Claim(claim_id=1, status="open")
'''


@pytest.fixture
def claims(tmp_path):
    """An insurer's project: routine.toml, its claims toolset, an empty routines folder (its
    module forgotten before and after: another test file has a claims_tools of its own)."""
    (tmp_path / "claims_tools.py").write_text(CLAIMS_TOOLS)
    (tmp_path / "routine.toml").write_text('routines = ["routines"]\n[toolsets]\n'
                                           'claims = "claims_tools"\n')
    (tmp_path / "routines").mkdir()
    sys.modules.pop("claims_tools", None)
    yield tmp_path
    sys.modules.pop("claims_tools", None)
    sys.path[:] = [p for p in sys.path if p != str(tmp_path.resolve())]


def _reply(**changes) -> str:
    routine = {"name": "x", "description": "Open an auto claim on a policy.",
               "inputs": {"policy_number": {"type": "string",
                                            "description": "the policy number"}},
               "steps": [{"tool": "find_policy", "id": "find", "name": "Find the policy",
                          "description": "Find it.",
                          "args": {"policy_number": "${inputs.policy_number}"}}],
               "finish": {"id": "answer", "name": "Answer", "description": "Say."}}
    routine.update(changes)
    return json.dumps(routine)


def _library(folder, kinds=("auto", "home", "travel", "pet", "boat", "bike", "health",
                            "life", "farm", "renters"),
             acts=("open", "check", "close", "reopen", "appeal", "escalate")):
    """Sixty claim routines whose descriptions differ by one or two words."""
    folder.mkdir(exist_ok=True)
    for kind, act in itertools.product(kinds, acts):
        name = f"{act}_{kind}_claim"
        (folder / f"{name}.yaml").write_text(
            f"name: {name}\ndescription: {act.capitalize()} a {kind} insurance claim for a "
            "policy holder.\ntoolsets: [claims]\ninputs:\n  policy_number: {type: string, "
            "description: the policy number}\nsteps:\n  - id: find\n    name: Find the "
            "policy\n    description: Find it.\n    tool: find_policy\n    args: "
            "{policy_number: \"${inputs.policy_number}\"}\n  - id: answer\n    name: Answer\n"
            "    description: Answer.\n    finish: true\n")
    return folder


# ---------------------------------------------------------------- drafting
def test_a_reply_stuck_repeating_brackets_goes_back_to_the_model(claims):
    """A free reply of thousands of nested brackets raised RecursionError out of draft()."""
    project = Project.discover(claims / "routine.toml")
    model = ScriptedModel(['{"steps": ' + "[" * 3000 + "]" * 3000 + "}", _reply()])
    result = draft("Find the policy, then answer.", ["claims"], model, name="auto_claim",
                   rounds=1, project=project)
    model.assert_complete()
    assert result.ok and result.repairs == 1
    assert "nests" in result.attempts[0].problems[0].message


def test_problems_quoting_the_model_s_line_breaks_and_escapes_stay_one_line(
        claims, scripted_server, capsys):  # noqa: F811
    """A problem quoting a name with a line break broke the --save-invalid file (its lines
    moved, YAML refused it) and escape sequences the model wrote reached the terminal."""
    ScriptedServer.script = [{"content": _reply(inputs={"policy\x1b[2J\nnumber": {
        "type": "string", "description": "the policy number"}})}]
    (claims / "auto_claim.md").write_text("Find the policy, then answer.")
    target = claims / "drafted" / "auto_claim.yaml"
    code = main(["--project", str(claims / "routine.toml"), "draft",
                 str(claims / "auto_claim.md"), "-t", "claims", "--rounds", "0", "--free",
                 "--save-invalid", "-o", str(target), "--model", "m",
                 "--base-url", scripted_server])
    err = capsys.readouterr().err
    assert code == 1 and "\x1b" not in err, err
    text = target.read_text()
    assert "\x1b" not in text
    header = text.split("\nname: ")[0].splitlines()
    assert all(line.startswith("#") for line in header), header
    yaml.safe_load(text)  # comments and YAML: it reads, and fails validate on purpose
    problems = [line.removeprefix("#   ") for line in header if ": error:" in line]
    # the input's name with the escapes in it, and the reference to the name it meant
    assert len(problems) == 2 and "cannot be read" in problems[0], problems
    problems = problems[1:]
    assert "names no input" in problems[0]
    # at its line in the saved file, as the header says and as validate finds it
    number = int(problems[0].split(": error:")[0].rsplit(":", 2)[1])
    assert "${inputs.policy_number}" in text.splitlines()[number - 1]
    capsys.readouterr()
    assert main(["--project", str(claims / "routine.toml"), "validate", str(target)]) == 1
    assert problems[0].split(": error:")[0] in capsys.readouterr().out


def test_a_folder_of_drafts_reads_upper_case_suffixes_and_skips_folders(
        claims, scripted_server, capsys):  # noqa: F811
    """A folder whose drafts were named Home-Claim.MD was "no drafts", and a sub-folder
    named notes.md refused the whole folder ("Is a directory")."""
    drafts = claims / "drafts"
    drafts.mkdir()
    (drafts / "Home-Claim.MD").write_text("Find the policy, then answer.")
    (drafts / "notes.md").mkdir()
    ScriptedServer.script = [{"content": _reply()}]
    code = main(["--project", str(claims / "routine.toml"), "draft", str(drafts),
                 "-t", "claims", "-o", str(claims / "routines"), "--model", "m",
                 "--base-url", scripted_server])
    err = capsys.readouterr().err
    assert code == 0, err
    assert (claims / "routines" / "home_claim.yaml").is_file()
    assert len(ScriptedServer.requests) == 1


# ---------------------------------------------------------------- routing
def test_an_examples_file_with_a_byte_order_mark_is_read(claims):
    """A JSONL file saved by Notepad or Excel (UTF-8 with a BOM) was 'not JSON' at line 1."""
    path = claims / "examples.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"query": "my car got hit",
                                                   "routine": "open_auto_claim"}).encode()
                     + b"\n")
    (example,) = load_examples(path)
    assert example.query == "my car got hit" and example.line == 1


def test_a_request_naming_a_routine_by_its_name_reaches_it_with_the_lexical_router(claims):
    """"run open_home_claim" was one token no card has: the lexical router said none."""
    library = Library.from_folders(_library(claims / "lib"))
    router = make_router("lexical", library)
    decision = router.route("please run open_home_claim for P-1234")
    assert decision.kind == "routine" and decision.routine == "open_home_claim", \
        decision.reason


@pytest.mark.timeout(60)
def test_a_long_run_of_word_characters_is_read_in_linear_time():
    """A long token (a pasted base64url blob) took time growing with the square of its
    length in the e-mail pattern (every start position scanned to the end): 3.9 s for
    40,000 characters, so this one would take minutes."""
    text = retrieval_text("Open a claim for " + "a" * 500_000)
    assert text.startswith("Open a claim for")
    assert retrieval_text("Mail ana.lima@example.com now") == "Mail now"


def test_a_folder_of_drafts_with_out_named_like_one_routine_file_is_refused(
        claims, scripted_server, capsys):  # noqa: F811
    """A folder of drafts with -o routines/all.yaml made a folder named all.yaml (even when
    the command was then refused) and wrote the routines inside it."""
    drafts = claims / "drafts"
    drafts.mkdir()
    (drafts / "auto_claim.md").write_text("Find the policy, then answer.")
    ScriptedServer.script = []
    code = main(["--project", str(claims / "routine.toml"), "draft", str(drafts),
                 "-t", "claims", "-o", str(claims / "routines" / "all.yaml"), "--model", "m",
                 "--base-url", scripted_server])
    err = capsys.readouterr().err
    assert code == 2 and "--out" in err and ScriptedServer.requests == [], err
    assert not (claims / "routines" / "all.yaml").exists()


# ---------------------------------------------------------------- left by the helper, mended
def _draft_cli(claims, server, *more: str) -> int:
    (claims / "auto_claim.md").write_text("Find the policy, then answer.")
    return main(["--project", str(claims / "routine.toml"), "draft",
                 str(claims / "auto_claim.md"), "-t", "claims", "--model", "m",
                 "--base-url", server, *more])


def test_draft_out_dash_prints_and_an_upper_case_suffix_is_a_file(
        claims, scripted_server, capsys):  # noqa: F811
    """-o - wrote into a folder named "-", and -o AUTO.YAML made a folder of that name with
    auto_claim.yaml inside; -t claims -t claims wrote the toolset twice."""
    ScriptedServer.script = [{"content": _reply(name="auto_claim")}] * 2
    assert _draft_cli(claims, scripted_server, "-o", "-", "-t", "claims") == 0
    printed = capsys.readouterr().out
    assert "name: auto_claim" in printed and not (claims / "-").exists()
    assert yaml.safe_load(printed)["toolsets"] == ["claims"]
    target = claims / "drafted" / "AUTO.YAML"
    assert _draft_cli(claims, scripted_server, "-o", str(target)) == 0
    assert target.is_file() and "name: auto_claim" in target.read_text()


def test_a_refused_draft_command_leaves_no_folder_behind(claims, scripted_server, capsys):  # noqa: F811
    """A command refused by a later check (a routine file there, no --force) had already made
    the -o and --record folders."""
    (claims / "routines" / "auto_claim.yaml").write_text("name: auto_claim\n")
    ScriptedServer.script = []
    code = _draft_cli(claims, scripted_server, "-o", str(claims / "routines"),
                      "--record", str(claims / "runs" / "drafts.jsonl"))
    assert code == 2 and "--force" in capsys.readouterr().err
    assert not (claims / "runs").exists() and ScriptedServer.requests == []
    code = _draft_cli(claims, scripted_server, "-o", str(claims / "new" / "auto_claim.yaml"),
                      "--record", str(claims / "runs" / "drafts.jsonl"), "--diff",
                      str(claims / "missing.yaml"))
    assert code == 2 and not (claims / "new").exists() and not (claims / "runs").exists()


def test_validate_warns_of_a_routine_named_none(claims, capsys):
    """A routine named none validated clean, and then every `routine run --library` of the
    project was refused (none is the routers' answer)."""
    (claims / "routines" / "none.yaml").write_text(
        "name: none\ndescription: Nothing.\ntoolsets: [claims]\nsteps:\n"
        "  - {id: answer, name: Answer, description: Say so., finish: true}\n")
    assert main(["--project", str(claims / "routine.toml"), "validate",
                 str(claims / "routines")]) == 0
    err = capsys.readouterr()
    assert "none.yaml:1:1: warning: a routine named 'none' cannot be routed to" in \
        err.out + err.err


def test_a_blank_example_request_is_a_problem_at_its_line(tmp_path):
    """An example whose query was "" or blank was taken without a word."""
    examples = tmp_path / "examples.jsonl"
    examples.write_text('{"query": "Open a claim for P-1", "routine": "open_auto_claim"}\n'
                        '{"query": "  ", "routine": "open_auto_claim"}\n')
    with pytest.raises(SpecError) as info:
        load_examples(examples)
    problem, = info.value.problems
    assert problem.line == 2 and "'query' is empty" in problem.message


def test_a_request_no_routine_matches_says_so_not_one_routine_at_random(claims):
    """When every routine scored 0 the none reason named one of them ("appeal_auto_claim
    scores 0.000"), as if it had come nearest."""
    library = Library.from_folders(_library(claims / "lib"))
    decision = make_router("lexical", library).route("zzz qqq")
    assert decision.kind == "none"
    assert decision.reason.startswith("every routine scores 0.000"), decision.reason


def test_the_clarifying_question_reads_third_person_descriptions_as_requests(claims):
    """Descriptions in the docstring style ("Files a claim…") made "Do you want me to files
    a home claim, or to files a travel claim?"."""
    from routine.routing.reply import clarifying_question

    folder = claims / "lib"
    folder.mkdir()
    for name, description in (("open_home_claim", "Files a claim for damage to a home."),
                              ("open_travel_claim", "Applies for a refund of a trip."),
                              ("sales_report", "Sales report for a region."),
                              ("refund", "Process a refund.")):
        (folder / f"{name}.yaml").write_text(
            f"name: {name}\ndescription: {description}\ntoolsets: [claims]\nsteps:\n"
            "  - {id: answer, name: Answer, description: Say., finish: true}\n")
    library = Library.from_folders(folder)
    assert clarifying_question(library, "open_home_claim", "open_travel_claim") == \
        "Do you want me to file a claim for damage to a home, or to apply for a refund of a trip?"
    # an imperative, or a description that starts with a plural noun, is left as written
    assert clarifying_question(library, "refund", "sales_report") == \
        "Do you want me to process a refund, or to sales report for a region?"


@pytest.mark.skipif(not have_embeddings(), reason="the routing extra is not installed")
def test_a_question_in_the_middle_of_a_very_long_request_is_read():
    """A text longer than max_sentences was read by its first and last sentences only: a
    question asked in the middle of a pasted thread went to none."""
    router = make_router("embedding", Library.from_folders(ROUTINES / "hr"))
    filler = "The quarterly figures were shared with the board on Monday. " * 60
    ask = "Could you book meeting room Atlas for tomorrow at 10?"
    decision = router.route(filler + ask + " " + filler)
    assert decision.routine == "book_meeting_room", decision.reason
    assert router.route(filler + filler).kind == "none"


def test_a_folder_of_drafts_printed_is_one_yaml_stream(claims, scripted_server, capsys):  # noqa: F811
    """Without -o, a folder's drafted routines were printed one after another: their keys
    ran together (a second name:, steps:...) and the output read as no YAML at all."""
    drafts = claims / "drafts"
    drafts.mkdir()
    for name in ("auto_claim", "home_claim"):
        (drafts / f"{name}.md").write_text("Find the policy, then answer.")
    ScriptedServer.script = [{"content": _reply(name="auto_claim")},
                             {"content": _reply(name="home_claim")}]
    assert main(["--project", str(claims / "routine.toml"), "draft", str(drafts), "-t",
                 "claims", "--model", "m", "--base-url", scripted_server]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["name"] for d in documents] == ["auto_claim", "home_claim"]


class _RefusingServer(ScriptedServer):
    """An endpoint answering as llama.cpp's server answers a request past its context
    (HTTP 400, context_length_exceeded) for a_claim's requests and b_claim's repair; the
    first drafts of b_claim (with a problem) and c_claim (valid) are answered."""

    def do_POST(self) -> None:  # noqa: N802
        from .test_cli import send_completion

        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ScriptedServer.requests.append(body)
        said = json.dumps(body["messages"])
        repair = any(m["role"] == "assistant" for m in body["messages"])
        if "a_claim" in said or ("b_claim" in said and repair):
            data = json.dumps({"error": {
                "message": "This model's maximum context length is 8192 tokens. However, "
                           "you requested 11313 tokens.", "type": "invalid_request_error",
                "code": "context_length_exceeded"}}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        send_completion(self, body["model"], {"content": _reply(inputs={}) if "b_claim" in said
                                              else _reply()})


def test_a_request_the_endpoint_refuses_fails_that_draft_and_the_folder_goes_on(
        claims, capsys):
    """Measuring the drafting table, the 1.5B's repair prompt for one HR draft grew past the
    embedded server's 8,192-token context: the endpoint answered HTTP 400, and `routine
    draft` stopped the whole folder there ("error: the endpoint refused the request"), the
    drafts after it never drafted nor recorded. A refused request (the first one or a
    repair) fails that draft, said and recorded; the next ones are drafted."""
    import threading
    from http.server import ThreadingHTTPServer

    from routine.models.base import set_model_requests_allowed

    drafts = claims / "drafts"
    drafts.mkdir()
    for name in ("a_claim", "b_claim", "c_claim"):
        (drafts / f"{name}.md").write_text("Find the policy, then answer.")
    ScriptedServer.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    set_model_requests_allowed(True)
    try:
        code = main(["--project", str(claims / "routine.toml"), "draft", str(drafts),
                     "-t", "claims", "-o", str(claims / "routines"), "--model", "m",
                     "--base-url", f"http://127.0.0.1:{server.server_address[1]}/v1",
                     "--record", str(claims / "drafts.jsonl")])
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert code == 1, err  # a draft did not validate
    records = {r["name"]: r for r in map(json.loads,
                                         (claims / "drafts.jsonl").read_text().splitlines())}
    assert [records[n]["ok"] for n in ("a_claim", "b_claim", "c_claim")] == [False, False, True]
    assert records["a_claim"]["attempts"] == [] and "refused round 0" in \
        records["a_claim"]["stopped"]
    assert len(records["b_claim"]["attempts"]) == 1 and "refused round 1" in \
        records["b_claim"]["stopped"] and "context length" in records["b_claim"]["stopped"]
    assert sorted(p.name for p in (claims / "routines").iterdir()) == ["c_claim.yaml"]
    assert "stopped: the endpoint refused round 0" in err.replace("\n", " ")
    assert "Traceback" not in err
