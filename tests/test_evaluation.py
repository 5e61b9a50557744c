"""`routine eval`: both protocols under each condition, resumption and report files,
with model doubles that answer perfectly (the gold trajectory) or badly."""

from __future__ import annotations

import asyncio
import json

import pytest

from routine.errors import EvalResultsError
from routine.eval.conditions import CONDITIONS, pick_distractors
from routine.eval.config import EvalConfig
from routine.eval.dataset import load_dataset, load_domain
from routine.eval.report import CHARTS
from routine.eval.runner import run_evaluation
from routine.eval.stats import mean, paired_gain, wilson
from routine.eval.steps import build_step_samples, run_step_sample
from routine.eval.summary import load_summary, pass_hat_k
from routine.eval.tasks import facts_present
from routine.models.base import ModelReply
from routine.models.messages import AssistantMessage, UserMessage
from routine.models.testing import FunctionModel, Request, call

from .conftest import ROOT

HR = ROOT / "eval" / "datasets" / "hr"


def gold_model() -> FunctionModel:
    """Replies with the next gold call of the query's example (a perfect agent)."""
    by_query = {e.query: e for e in load_dataset(HR)}

    def reply(request: Request) -> ModelReply:
        query = next(m.content for m in request.messages if isinstance(m, UserMessage))
        example = by_query[query]
        if request.guide is not None and request.guide.label == "inputs":  # an ask step reads
            wanted = request.guide.schema["properties"]                   # the request
            return ModelReply(content=json.dumps({n: example.inputs.get(n) for n in wanted}))
        done = sum(1 for m in request.messages if isinstance(m, AssistantMessage) and m.tool_calls)
        if done < len(example.calls):
            gold = example.calls[done]
            return call(gold.name, **gold.arguments)
        return call("finish", answer=example.answer)

    return FunctionModel(reply, name="gold")


def lazy_model() -> FunctionModel:
    """Always looks up the same person, never answers."""
    return FunctionModel(lambda r: call("find_employee", name="Arjun Garcia"), name="lazy")


def config(tmp_path, **kw) -> EvalConfig:
    base = dict(dataset=HR, out=tmp_path / "run", split="test", conditions=["none", "nl+track"],
                step_limit=12, task_limit=3, seed=1)
    return EvalConfig(**{**base, **kw})


def test_step_samples_follow_the_condition():
    domain = load_domain(HR)
    registry = domain.registry()
    routines = {n: lr.routine for n, lr in domain.routines().items()}
    examples = [e for e in load_dataset(HR, ("test",)) if e.kind == "routine"][:3]
    plain = build_step_samples(examples, routines, registry, CONDITIONS["none"], seed=0)
    tracked = build_step_samples(examples, routines, registry, CONDITIONS["nl+track"], seed=0)
    distract = build_step_samples(examples, routines, registry, CONDITIONS["nl+distractor"],
                                  seed=0)
    assert [s.id for s in plain] == [s.id for s in tracked]
    assert len(plain) == sum(len(e.calls) + 1 for e in examples)  # every call + the answer
    assert "# Routine" not in plain[0].messages[0].content
    assert "Current step: Step 1" in tracked[0].messages[-1].content
    assert distract[0].messages[0].content.count("# Routine:") == 2
    # teacher forcing: step k sees the k gold calls before it and their results
    second = tracked[1]
    assert second.messages[2].tool_calls[0].function.name == examples[0].calls[0].name
    assert second.expected["name"] == examples[0].calls[1].name
    # the tool order is shuffled per sample, with a fixed seed
    names = [[t["function"]["name"] for t in s.tools] for s in plain[:3]]
    assert len({tuple(n) for n in names}) > 1
    again = build_step_samples(examples, routines, registry, CONDITIONS["none"], seed=0)
    assert [s.tools for s in again] == [s.tools for s in plain]
    fixed = build_step_samples(examples, routines, registry, CONDITIONS["none"], seed=0,
                               shuffle_tools=False)
    assert len({tuple(t["function"]["name"] for t in s.tools) for s in fixed}) == 1


def test_distractors_are_fixed_per_routine_so_prompts_share_a_prefix():
    domain = load_domain(HR)
    registry = domain.registry()
    routines = {n: lr.routine for n, lr in domain.routines().items()}
    examples = [e for e in load_dataset(HR, ("test",)) if e.kind == "routine"]
    samples = build_step_samples(examples, routines, registry, CONDITIONS["nl+distractor"],
                                 seed=0, shuffle_tools=False)
    systems: dict[str, set[str]] = {}
    for sample in samples:
        systems.setdefault(sample.routine, set()).add(sample.messages[0].content)
    assert all(len(v) == 1 for v in systems.values())  # one system prompt per routine
    assert len(set().union(*systems.values())) == len(systems)
    for name, routine in routines.items():
        (other,), place = pick_distractors(routine, routines, 1, seed=0)
        assert other.name != name and place in (0, 1)
        assert pick_distractors(routine, routines, 1, seed=0) == ([other], place)
    firsts = [next(iter(v)).index(f"# Routine: {name}") == next(iter(v)).index("# Routine:")
              for name, v in systems.items()]
    assert 0 < sum(firsts) < len(firsts)  # the target is listed first in some, not all


def test_jobs_run_grouped_by_routine_then_by_shared_system_prompt(tmp_path):
    cfg = config(tmp_path, conditions=["none", "nl+track", "json", "nl"], step_limit=None,
                 task_limit=4)
    model = gold_model()
    asyncio.run(run_evaluation(cfg, model))
    # every request, step sample or task turn, in routine order: a routine's tasks run
    # beside its step samples (a task's first prompt is a step sample's), not at the end
    routine_of = {e.query: e.routine for e in load_dataset(HR)}
    asked = [routine_of[next(m.content for m in r.messages if isinstance(m, UserMessage))]
             if "# Routine" in r.messages[0].content else "" for r in model.requests]
    assert asked == sorted(asked)  # "": no routine shown, all of them first
    assert asked[0] == "" and asked[-1] != ""
    for name in ("steps", "tasks"):
        rows = [json.loads(line) for line in (tmp_path / "run" / f"{name}.jsonl").read_text()
                .splitlines()]
        assert {r["condition"] for r in rows[:4]} == {"none"}  # no routine shown: all first
        rows = [r for r in rows if r["condition"] != "none"]
        routines = [r["routine"] for r in rows]
        assert routines == sorted(routines)  # one routine after another
        for routine in set(routines):
            order = [r["condition"] for r in rows if r["routine"] == routine]
            blocks = [c for i, c in enumerate(order) if i == 0 or order[i - 1] != c]
            assert blocks == ["json", "nl", "nl+track"]  # nl beside nl+track


def test_conditions_with_other_prompts_run_in_blocks_of_their_own(tmp_path):
    """The compact style and memory off change the prompt: interleaved with nl+track, each
    sample replaced the server's cached prompt (26 s a sample on the 0.5B, 2 s grouped)."""
    conditions = ["nl+track", "nl+track+compact", "nl+track+nomemory", "nl+track+guided",
                  "nl+track+guided+inputs"]
    cfg = config(tmp_path, conditions=conditions, step_limit=None, protocols=("step",))
    asyncio.run(run_evaluation(cfg, gold_model()))
    rows = [json.loads(line) for line in (tmp_path / "run" / "steps.jsonl").read_text()
            .splitlines()]
    for routine in {r["routine"] for r in rows}:
        order = [r["condition"] for r in rows if r["routine"] == routine]
        blocks = [c for i, c in enumerate(order) if i == 0 or order[i - 1] != c]
        assert sorted(blocks) == sorted(conditions), (routine, blocks)  # one block each


def test_perfect_model_scores_everything(tmp_path):
    summary = asyncio.run(run_evaluation(config(tmp_path), gold_model()))
    for name in ("none", "nl+track"):
        entry = summary.conditions[name]
        assert entry.step.accuracy.rate == 1.0 and entry.step.accuracy.n == 12
        assert entry.task.success.rate == 1.0 and entry.task.tasks == 3
        assert (entry.task.tool_f1.n, entry.task.tool_f1.mean, entry.task.tool_f1.ci95) == \
            (3, 1.0, (1.0, 1.0))
    gain = summary.conditions["nl+track"].step.gain_vs_none
    assert (gain.n, gain.gain, gain.p) == (12, 0.0, 1.0)
    assert summary.conditions["none"].step.gain_vs_none is None


def test_bad_model_fails_in_the_right_layers(tmp_path):
    summary = asyncio.run(run_evaluation(config(tmp_path, conditions=["nl"]), lazy_model()))
    step = summary.conditions["nl"].step
    assert step.accuracy.rate < 0.5
    assert step.layers.format.rate == 1.0  # always a well-formed call
    assert step.errors.get("tool", 0) > 0
    lo, hi = step.accuracy.ci95
    assert lo <= step.accuracy.rate <= hi
    assert summary.conditions["nl"].task.success.rate == 0.0


def test_runs_resume_and_write_reports(tmp_path):
    cfg = config(tmp_path)
    model = gold_model()
    asyncio.run(run_evaluation(cfg, model))
    first = len(model.requests)
    assert first > 0
    asyncio.run(run_evaluation(cfg, model))
    assert len(model.requests) == first  # nothing pending: no new requests
    steps = (cfg.out / "steps.jsonl").read_text().splitlines()
    (cfg.out / "steps.jsonl").write_text("\n".join(steps[:-5]) + "\n")
    asyncio.run(run_evaluation(cfg, model))
    assert len(model.requests) == first + 5  # only the 5 removed samples ran again
    assert len((cfg.out / "steps.jsonl").read_text().splitlines()) == len(steps)
    summary = load_summary(cfg.out / "summary.json")
    assert summary.conditions["none"].step.accuracy.n == 12
    for name in CHARTS:
        assert (cfg.out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (cfg.out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "<script" not in html
    assert "nl+track" in (cfg.out / "report.md").read_text()


def test_resume_drops_a_half_written_last_line(tmp_path, caplog):
    cfg = config(tmp_path)
    model = gold_model()
    asyncio.run(run_evaluation(cfg, model))
    first = len(model.requests)
    path = cfg.out / "steps.jsonl"
    lines = path.read_text().splitlines()
    # a run killed mid-write: the last record is cut short, no newline after it
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:40])
    asyncio.run(run_evaluation(cfg, model))
    assert "dropped a half-written last line" in caplog.text
    assert len(model.requests) == first + 1  # the torn sample ran again, nothing else
    again = path.read_text().splitlines()
    assert len(again) == len(lines) and all(json.loads(line) for line in again)


def test_corrupt_results_line_names_file_and_line(tmp_path):
    cfg = config(tmp_path)
    asyncio.run(run_evaluation(cfg, gold_model()))
    path = cfg.out / "tasks.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = '{"example_id": "x"}'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(EvalResultsError, match=r"tasks\.jsonl:2: not a TaskResult record"):
        asyncio.run(run_evaluation(cfg, gold_model()))
    assert path.read_text().splitlines() == lines  # nothing rewritten or lost


def test_unknown_condition_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown condition"):
        asyncio.run(run_evaluation(config(tmp_path, conditions=["magic"]), gold_model()))
    with pytest.raises(ValueError, match="unknown routine.*nope.*the domain has"):
        asyncio.run(run_evaluation(config(tmp_path, routines=["nope"]), gold_model()))


def test_routines_option_narrows_a_report_and_draws_a_run_from_its_routines(tmp_path):
    full = asyncio.run(run_evaluation(config(tmp_path, task_limit=12), gold_model()))
    assert full.conditions["none"].task.tasks == 12
    rows = [json.loads(line) for line in (tmp_path / "run" / "tasks.jsonl").read_text()
            .splitlines()]
    some = sorted({r["routine"] for r in rows})[:2]
    expected = {r["example_id"] for r in rows if r["routine"] in some}
    cfg = config(tmp_path, routines=some, task_limit=12, report_only=True)
    summary = asyncio.run(run_evaluation(cfg, gold_model()))
    assert summary.config["routines"] == some
    assert summary.conditions["none"].task.tasks == len(expected) < 12
    # a new run of only those routines draws its --tasks N from their examples alone
    theirs = {e.id for e in load_dataset(HR, ("test",))
              if e.kind == "routine" and e.user is None and e.routine in some}
    asyncio.run(run_evaluation(config(tmp_path / "b", routines=some, task_limit=3),
                               gold_model()))
    again = [json.loads(line) for line in (tmp_path / "b" / "run" / "tasks.jsonl").read_text()
             .splitlines()]
    drawn = {r["example_id"] for r in again}
    assert len(drawn) == min(3, len(theirs)) and drawn <= theirs


def test_helpers():
    assert facts_present("Arjun has 7.0 days left", ["7"])
    assert facts_present("Claim 1,500 EUR filed", ["1500"])
    assert not facts_present("Arjun has 17 days", ["7"])
    assert not facts_present(None, ["x"])
    assert pass_hat_k([2, 1, 0], trials=2, k=1) == pytest.approx(0.5)
    assert pass_hat_k([2, 1, 0], trials=2, k=2) == pytest.approx(1 / 3)
    lo, hi = wilson(8, 10)
    assert 0.44 < lo < 0.5 and 0.94 < hi < 0.97


def test_wilson_interval_always_holds_the_rate():
    # 0/11 and 6/6 came out a hair outside by rounding, and a chart's error bar
    # then went negative (matplotlib refuses it): the HR report crashed on that
    for n in range(1, 400):
        for k in range(n + 1):
            lo, hi = wilson(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0, (k, n)
    assert wilson(0, 11)[0] == 0.0 and wilson(6, 6)[1] == 1.0


def test_mean_scores_carry_an_interval():
    score = mean([0.0, 1.0, 1.0, 1.0])
    assert score.n == 4 and score.mean == 0.75
    assert score.ci95 == pytest.approx((0.75 - 1.96 * 0.5 / 2, 1.0))  # sd 0.5, clipped
    assert mean([]).n == 0


def test_paired_gain_counts_discordant_pairs():
    base = [False] * 10 + [True] * 10
    other = [True] * 8 + [False] * 2 + [False] + [True] * 9
    gain = paired_gain(base, other)
    assert (gain.n, gain.won, gain.lost) == (20, 8, 1)
    assert gain.gain == pytest.approx(0.35)
    assert gain.ci95 == pytest.approx((0.35 - 0.2508, 0.35 + 0.2508), abs=1e-3)
    assert gain.p == pytest.approx(2 * 10 / 512)  # exact McNemar, 1 of 9 discordant lost
    same = paired_gain(base, base)
    assert same.gain == 0 and same.p == 1.0
    with pytest.raises(ValueError):
        paired_gain(base, other[:-1])


def test_report_only_runs_nothing(tmp_path):
    cfg = config(tmp_path)
    asyncio.run(run_evaluation(cfg, gold_model()))
    (cfg.out / "report.html").unlink()
    model = gold_model()
    (cfg.out / "steps.jsonl").write_text(
        "\n".join((cfg.out / "steps.jsonl").read_text().splitlines()[:3]) + "\n")
    summary = asyncio.run(run_evaluation(cfg.model_copy(update={"report_only": True}), model))
    assert model.requests == [] and (cfg.out / "report.html").exists()
    assert sum(e.step.accuracy.n for e in summary.conditions.values() if e.step) == 3


def test_a_refused_request_is_a_failed_sample_not_a_crash(tmp_path):
    from routine.errors import ModelRequestError

    def refuse(request: Request) -> ModelReply:
        raise ModelRequestError("HTTP 400: prompt longer than the context")

    summary = asyncio.run(run_evaluation(config(tmp_path, conditions=["nl"], task_limit=2),
                                         FunctionModel(refuse)))
    step = summary.conditions["nl"].step
    assert step.accuracy.k == 0 and step.errors == {"format": 12}
    task = summary.conditions["nl"].task
    assert task.success.k == 0 and task.tasks == 2
    line = (tmp_path / "run" / "steps.jsonl").read_text().splitlines()[0]
    assert "prompt longer than the context" in line


def test_endpoint_failures_are_not_verdicts_and_rerun(tmp_path, caplog):
    """A failing endpoint (HTTP 5xx) says nothing about the model: the sample is not
    recorded, the run goes on, and the next run of the same command retries it."""
    from routine.errors import ModelServerError

    gold = gold_model()
    calls = {"n": 0}

    def flaky(request: Request) -> ModelReply:
        calls["n"] += 1
        if calls["n"] % 4 == 0:
            raise ModelServerError("the endpoint failed (HTTP 503): overloaded")
        return gold.function(request)

    cfg = config(tmp_path, conditions=["nl+track"], task_limit=2)
    first = asyncio.run(run_evaluation(cfg, FunctionModel(flaky)))
    assert "not recorded" in caplog.text
    recorded = first.conditions["nl+track"].step.accuracy.n
    assert 0 < recorded < 12 and first.conditions["nl+track"].step.accuracy.rate == 1.0
    second = asyncio.run(run_evaluation(cfg, gold_model()))
    assert second.conditions["nl+track"].step.accuracy.n == 12
    assert second.conditions["nl+track"].step.accuracy.rate == 1.0
    assert second.conditions["nl+track"].task.success.rate == 1.0


def test_report_reads_the_typed_summary_and_shows_failures_of_every_condition(tmp_path):
    cfg = config(tmp_path, conditions=["none", "nl"], task_limit=2)
    summary = asyncio.run(run_evaluation(cfg, lazy_model()))
    assert load_summary(cfg.out / "summary.json") == summary
    html = (cfg.out / "report.html").read_text()
    steps, tasks = html.split("<h2>Failed steps, per condition</h2>")[1].split(
        "<h2>Failed tasks, per condition</h2>")
    for part in (steps, tasks):  # failed steps AND tasks of both conditions
        for name in ("none", "nl"):
            section = part.split(f"<h3>{name}: ")[1].split("<h3>")[0]
            assert "<tr><td>hr-" in section, (name, section[:200])
    assert "<code>find_employee(" in tasks
    report = (cfg.out / "report.md").read_text()
    assert report.count("### none: ") == report.count("### nl: ") == 2


def test_rate_limits_and_lost_connections_leave_samples_for_the_next_resume(tmp_path):
    from routine.errors import ModelRateLimited, ModelUnreachable

    gold = gold_model()
    faults = iter([ModelRateLimited("429", 429), ModelUnreachable("no route")] * 3)

    class Flaky:
        name = "flaky"

        async def complete(self, messages, tools, **kw):
            fault = next(faults, None)
            if fault is not None:
                raise fault
            return await gold.complete(messages, tools, **kw)

    cfg = config(tmp_path, conditions=["nl+track"], protocols=["step"], step_limit=8)
    first = asyncio.run(run_evaluation(cfg, Flaky()))
    rows = [json.loads(line) for line in (cfg.out / "steps.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["correct"] for r in rows)  # 6 faults: not stored as 0%
    assert first.conditions["nl+track"].step.accuracy.n == 2
    again = asyncio.run(run_evaluation(cfg, gold_model()))  # the resume fills them in
    assert again.conditions["nl+track"].step.accuracy.n == 8
    assert again.conditions["nl+track"].step.accuracy.rate == 1.0


def test_one_evaluation_at_a_time_per_results_folder(tmp_path):
    from routine.errors import EvalConfigError

    cfg = config(tmp_path, conditions=["nl+track"], protocols=["step"], step_limit=2)
    started = asyncio.Event()

    class Slow:
        name = "slow"

        async def complete(self, messages, tools, **kw):
            started.set()
            await asyncio.sleep(0.3)
            return call("finish", answer="x")

    async def both():
        first = asyncio.create_task(run_evaluation(cfg, Slow()))
        await started.wait()
        with pytest.raises(EvalConfigError, match="another evaluation is writing"):
            await run_evaluation(cfg, Slow())
        await first

    asyncio.run(both())
    lines = (cfg.out / "steps.jsonl").read_text().splitlines()
    assert len(lines) == 2  # two processes on one --out doubled every record before


def test_guided_conditions_are_compared_with_plain_tracking_and_costed(tmp_path):
    cfg = config(tmp_path, conditions=["nl+track", "nl+track+compact", "nl+track+guided"],
                 step_limit=6, task_limit=2)
    summary = asyncio.run(run_evaluation(cfg, gold_model()))
    guided, compact = summary.conditions["nl+track+guided"], summary.conditions["nl+track+compact"]
    # guided decoding runs in the default compact style: paired with unguided compact tracking
    assert guided.tracking_baseline == "nl+track+compact"
    assert guided.step.gain_vs_track.n == 6 and guided.step.gain_vs_track.gain == 0
    assert guided.task.gain_vs_track.n == 2
    assert compact.tracking_baseline == "nl+track" and compact.step.gain_vs_track.n == 6
    assert summary.conditions["nl+track"].step.gain_vs_track is None
    assert summary.conditions["nl+track"].tracking_baseline is None
    assert guided.task.missing_facts == {}  # the gold answers state every fact
    report = (cfg.out / "report.md").read_text()
    assert "| nl+track+guided | nl+track+compact | +0.0 pt" in report
    assert "| nl+track+compact | nl+track | +0.0 pt" in report and "tokens/task" in report
    # without its baseline in the run, a guided condition has no gain vs tracking
    alone = config(tmp_path / "alone", conditions=["nl+track", "nl+track+guided"],
                   step_limit=2, protocols=["step"])
    lone = asyncio.run(run_evaluation(alone, gold_model())).conditions["nl+track+guided"]
    assert lone.tracking_baseline is None and lone.step.gain_vs_track is None


def test_the_interval_of_a_count_per_task_is_not_clipped_at_one():
    turns = mean([2.0, 3.0, 3.0, 4.0], bounds=(0.0, float("inf")))
    assert turns.ci95[0] < 3.0 < turns.ci95[1] and turns.ci95[1] > 1.0
    assert mean([0.9, 1.0, 1.0, 0.7]).ci95[1] == 1.0  # a score stays within 0..1


def test_step_scorer_reads_arguments_wrapped_in_the_schema_as_the_run_loop_does():
    domain = load_domain(HR)
    registry = domain.registry()
    routines = {n: lr.routine for n, lr in domain.routines().items()}
    example = [e for e in load_dataset(HR, ("test",)) if e.kind == "routine"][0]
    sample = build_step_samples([example], routines, registry, CONDITIONS["nl+track"],
                                seed=0)[0]
    name = sample.expected["name"]
    values = {k: v[0] if isinstance(v, list) else v  # the gold lists accepted values
              for k, v in sample.expected["arguments"].items()}
    schemas = {t.name: t.parameters for t in registry}

    def reply(wrapped):
        arguments = ({"type": "object", "properties": values, "required": list(values)}
                     if wrapped else values)
        return ModelReply(content=json.dumps({"name": name, "arguments": arguments}))

    results = [asyncio.run(run_step_sample(sample, "nl+track", FunctionModel(
        lambda request, w=w: reply(w)), schemas, domain.arg_modes)) for w in (False, True)]
    assert [r.correct for r in results] == [True, True]
    assert results[1].output == [(name, values)]
