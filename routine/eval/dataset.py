"""Gold datasets: user queries with their gold trajectories, built from templates.

A domain (``eval/datasets/<domain>/domain.py``) defines query templates, the
paper's way: 5-6 per sub-scenario, each with several phrasings, filled with
real entities sampled from the seeded database. The gold trajectory of a query
is produced by the **oracle**: the routine itself, run by the executor with a
model double (:class:`~routine.eval.players.OracleModel`) that calls what each
step says — every argument from a typed reference (``${inputs.x}``,
``${steps.id.output.f}``), every branch from its ``when`` expression. So the
gold data goes through the same run path as a live run. Each gold trajectory
runs against a fresh database and must succeed; its end state is recorded
(:mod:`routine.eval.endstate`) so task success can be judged by state, as
tau-bench does, with free-text columns matched like their arguments.

Splits are by template (never by query), so no test template is ever seen in
training; each template declares its split.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import string
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..errors import DatasetError
from ..run.approval import policy
from ..run.conversation import Conversation
from ..run.executor import Agent
from ..run.facts import unstated
from ..run.settings import RunSettings
from ..run.trace import RunTrace
from ..spec.loader import LoadedRoutine, load_routine, routine_files
from ..spec.project import Project
from ..spec.toolsets import import_toolsets
from ..spec.validate import check_routine
from ..tools.core import RunContext, ToolRegistry, to_jsonable
from .endstate import EndState, Snapshot, compare_end_states, end_state, snapshot_of
from .players import ConversationOracle, GoldPlayer, OracleModel
from .scoring import ArgMode
from .users import ScriptedUser, UserProfile, UserSpec

__all__ = ["UserProfile", "UserSpec", "GoldCall", "GoldExample", "Template", "Domain",
           "DatasetError", "load_domain", "build_dataset", "write_dataset", "load_dataset",
           "jsonl_lines",
           "replay", "dataset_stats",
           "oracle_run", "stats_table", "SPLITS", "ORACLE_SETTINGS", "deps_of", "gold_run",
           "seed_snapshot", "run_with_snapshot"]

Split = Literal["train", "dev", "test"]
MAX_GOLD_TURNS = 8  # user messages in a gold conversation
Kind = Literal["routine", "refuse", "ask"]
SPLITS: tuple[Split, ...] = ("train", "dev", "test")

# The oracle and the gold player follow the routine with step tracking; no limit of
# theirs may cut a gold trajectory short.
ORACLE_SETTINGS = RunSettings(routine_format="nl", step_tracking=True, max_steps=100,
                              max_repeats=100, max_retries=0, memory_threshold=600,
                              answer_facts=False)


class GoldCall(BaseModel):
    """One tool call of a gold trajectory, with the result it must produce."""

    # a key that is no field is a mistake, not something to drop ("step" for step_id)
    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any]
    result: Any = None
    step_id: str | None = None


class GoldExample(BaseModel):
    """A user query and what a perfect agent does with it."""

    # a misspelt optional key ("users", "end_text") was dropped, and the example measured
    # otherwise (no simulated user, no free-text columns) without a word
    model_config = ConfigDict(extra="forbid")

    id: str
    domain: str
    scenario: str = Field(description="The sub-scenario (leave, payroll, ...).")
    template: str
    split: Split
    kind: Kind = Field(description="routine: follow a routine; refuse: outside every "
                       "routine; ask: information is missing, ask the user back.")
    routine: str | None
    query: str
    inputs: dict[str, Any] = Field(description="The routine inputs the query states.")
    calls: list[GoldCall]
    answer: str = Field(description="A reference answer.")
    required_facts: list[str] = Field(description="Strings a correct answer must contain.")
    end_state: str = Field(description="Digest of the database after the gold calls, free-text "
                           "columns left out (routine.eval.endstate).")
    end_texts: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Free-text values the gold calls wrote: "
        "'table.column' -> row id -> value (matched with the argument's mode).")
    changes_state: bool = Field(description="Whether the gold calls write to the database.")
    user: UserProfile | None = Field(None, description="For a conversation: the simulated "
                                     "user who answers the agent's questions and confirmations "
                                     "(None: the whole request is in the query).")


AnswerFn = Callable[[dict[str, Any], dict[str, Any]], tuple[str, list[str]]]
SampleFn = Callable[[Any, random.Random], dict[str, Any] | None]


@dataclass
class Template:
    """A query template.

    Attributes:
        id: unique id, e.g. ``leave.balance.direct``.
        scenario: the sub-scenario.
        split: train, dev or test (splits are by template).
        routine: the routine that serves it (None for refuse/ask).
        phrasings: paraphrases, ``str.format`` strings over the sampled values.
        sample: ``(deps, rng) -> values`` picks real entities from the seeded database;
            keys that name routine inputs become the example's inputs. None: skip.
        answer: ``(values, outputs) -> (reference answer, required facts)``, where
            ``outputs`` maps step ids to their results.
        kind: routine, refuse or ask.
        count: how many queries to make.
        user: make conversations: what the user holds back and whether they confirm
            (evaluated by the conversation protocol only).
    """

    id: str
    scenario: str
    split: Split
    routine: str | None
    phrasings: list[str]
    sample: SampleFn
    answer: AnswerFn
    kind: Kind = "routine"
    count: int = 5
    user: UserSpec | None = None


@dataclass
class Domain:
    """A scenario: its tools, routines and query templates."""

    name: str
    toolsets: list[str]
    routines_dir: str
    templates: list[Template]
    seed: int = 0
    deps_toolset: str = ""  # the toolset whose deps hold the database (default: the first)
    arg_modes: dict[str, ArgMode] = field(default_factory=dict)  # "tool.arg" -> scoring mode
    # free-text columns: "table.column" -> the "tool.arg" it comes from (its arg_modes mode
    # applies in the end-state comparison); every other column must match exactly
    free_text: dict[str, str] = field(default_factory=dict)
    root: Path = field(default_factory=Path.cwd)
    project: Project | None = field(default=None, repr=False)  # set by load_domain

    def toolset_name(self) -> str:
        """The toolset whose deps hold the database."""
        return self.deps_toolset or self.registry().toolset_names()[0]

    def registry(self) -> ToolRegistry:
        """The domain's tools: each name resolved through the project (``[toolsets]``),
        else imported as a module reference."""
        registry = ToolRegistry()
        project = self.project
        for ref in self.toolsets:
            try:
                items = (project.resolve(ref) if project is not None and ref in project.toolsets
                         else import_toolsets(ref, project.root if project else None))
            except (ImportError, TypeError, AttributeError) as exc:
                known = ", ".join(project.toolsets) if project is not None else ""
                raise DatasetError(f"domain {self.name!r}: toolset {ref!r} (Domain(toolsets=[...]) "
                                   f"in domain.py) cannot be loaded: {exc}"
                                   + (f" (the project's toolsets: {known})" if known else ""))\
                    from None
            for item in items:
                registry.add(item)
        return registry

    def scoring_problems(self, registry: ToolRegistry, seed: Snapshot | None = None) -> list[str]:
        """What is wrong with ``arg_modes`` and ``free_text`` (a misspelt key or mode was
        silently scored another way): each names a tool and argument the registry has, a
        mode of ArgMode, and (given the seed snapshot) a table and column it has."""
        modes = get_args(ArgMode)
        problems = []

        def argument(ref: str, where: str) -> None:
            tool_name, _, arg = ref.partition(".")
            tool = registry.get(tool_name)
            if tool is None:
                problems.append(f"{where}: {ref!r} names no tool of the domain (tool.argument)")
            elif arg not in tool.parameters.get("properties", {}):
                problems.append(f"{where}: tool {tool_name!r} has no argument {arg!r} "
                                f"(it has {', '.join(tool.parameters.get('properties', {}))})")

        for ref, mode in self.arg_modes.items():
            argument(ref, "arg_modes")
            if mode not in modes:
                problems.append(f"arg_modes: {ref!r}: mode {mode!r} is not one of "
                                f"{', '.join(modes)}")
        for column, ref in self.free_text.items():
            argument(ref, f"free_text[{column!r}]")
            table, _, name = column.partition(".")
            if seed is not None and table not in seed:
                problems.append(f"free_text: {column!r} names no table of the database "
                                f"(it has {', '.join(sorted(seed)) or 'none'})")
            elif seed is not None and seed[table] and not any(
                    name in row for row in seed[table].values()):
                problems.append(f"free_text: table {table!r} has no column {name!r}")
        return [f"domain {self.name!r}: {p}" for p in problems]

    def end_state(self, snapshot: Snapshot, seed: Snapshot) -> EndState:
        """The end state of a run's snapshot (free text set apart)."""
        return end_state(snapshot, seed, self.free_text)

    def same_end_state(self, run: EndState, gold: EndState) -> tuple[bool, str]:
        """Whether a run ended in the gold state: exact but for free text (by its mode)."""
        return compare_end_states(run, gold, self.free_text, self.arg_modes)

    def routines(self) -> dict[str, LoadedRoutine]:
        out = {}
        for path in routine_files(self.root / self.routines_dir):
            loaded = load_routine(path)
            out[loaded.routine.name] = loaded
        return out


def load_domain(folder: str | Path, project: Project | None = None) -> Domain:
    """Import ``<folder>/domain.py`` and return its ``DOMAIN`` — only if the project trusts
    the folder (``[datasets] trusted`` in routine.toml): a domain is code."""
    folder = Path(folder)
    project = project if project is not None else Project.discover()
    if not (folder / "domain.py").is_file():
        raise DatasetError(f"{folder}/domain.py not found (a dataset folder holds domain.py "
                           "and its splits)")
    if not project.trusts_dataset(folder):
        raise DatasetError(f"{folder}/domain.py is code, and the project does not trust this "
                           f"folder: list it under [datasets] trusted in "
                           f"{project.file or 'a routine.toml at the project root'}")
    file = folder / "domain.py"
    spec = importlib.util.spec_from_file_location(f"routine_domain_{folder.name}", file)
    if spec is None or spec.loader is None:
        raise DatasetError(f"{file} not found")
    module = importlib.util.module_from_spec(spec)
    root = project.root or Path.cwd()
    if str(root) not in sys.path:  # the project's own modules import as in its toolsets
        sys.path.insert(0, str(root))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the domain's code failed: say where, once
        frame = next((f for f in reversed(traceback.extract_tb(exc.__traceback__))
                      if Path(f.filename) == file.resolve() or f.filename == str(file)), None)
        line = f":{frame.lineno}" if frame else ""
        raise DatasetError(f"{file}{line}: importing the domain failed: "
                           f"{type(exc).__name__}: {exc}") from None
    domain = getattr(module, "DOMAIN", None)
    if not isinstance(domain, Domain):
        found = "nothing" if domain is None else f"a {type(domain).__name__}"
        raise DatasetError(f"{file}: DOMAIN is {found}; a dataset's domain.py defines "
                           "DOMAIN = Domain(name=..., toolsets=[...], routines_dir=..., "
                           "templates=[Template(...), ...]) (see the guide: docs/guide.md)")
    domain.project = project
    # routines_dir is relative to the project root: the project file's folder, else the
    # first folder up that has it
    roots = [project.root] if project.root else []
    for root in (*roots, Path.cwd(), *folder.resolve().parents):
        if (root / domain.routines_dir).is_dir():
            domain.root = root
            break
    else:
        raise DatasetError(f"{file}: routines_dir {domain.routines_dir!r} is not a folder "
                           f"(relative to {project.root or Path.cwd()})")
    return domain


def deps_of(contexts: dict[str, RunContext[Any]], name: str) -> Any:
    key = name or next((k for k in contexts if k), "")
    return contexts[key].deps


async def run_with_snapshot(agent: Agent, deps_toolset: str, query: str | None = None,
                            inputs: dict[str, Any] | None = None) -> tuple[RunTrace, Snapshot]:
    """Run ``agent`` and take the snapshot of the state it left (before the run's contexts
    close): what the oracle, the gold replay and the task protocol all judge by."""
    snapshots: list[Snapshot] = []
    if agent.approver is None:  # unattended: calls that need approval are approved, on record
        agent.approver = policy(True, by="evaluation policy (approve all)")
    trace = await agent.arun(query, inputs, on_end=lambda contexts: snapshots.append(
        snapshot_of(deps_of(contexts, deps_toolset))))
    return trace, snapshots[0]


async def oracle_run(loaded: LoadedRoutine, registry: ToolRegistry, inputs: dict[str, Any],
                     deps_toolset: str = "", written: list[str] | None = None
                     ) -> tuple[list[GoldCall], dict[str, Any], Snapshot]:
    """Run a routine with the oracle: (gold calls, outputs by step id, end snapshot).
    ``written`` receives the answer when the executor wrote it (see :func:`written_answer`)."""
    routine = loaded.routine
    agent = Agent(routine, registry, OracleModel(routine.name), ORACLE_SETTINGS, validate=False)
    trace, snapshot = await run_with_snapshot(agent, deps_toolset, None, inputs)
    if trace.outcome != "answered":
        raise DatasetError(f"{routine.name}: the oracle's run failed: {trace.failure}")
    if written is not None and (text := written_answer(trace)) is not None:
        written.append(text)
    return _gold_calls(trace.tool_calls), _outputs(trace), snapshot


def written_answer(trace: RunTrace) -> str | None:
    """The run's answer when the executor wrote it, not a model (a finish step's exact
    ``message``, "Nothing was changed…" after a decline): every agent gives that text, so
    a required fact it lacks is one no agent can state."""
    turns = trace.turns
    return trace.answer if turns and turns[-1].kind == "message" else None


def unstatable_facts(template: str, written: str, facts: list[str]) -> str | None:
    """The problem of facts an executor-written answer cannot state (None: it states them)."""
    missing = unstated(written, facts)  # (as the task protocol judges an answer)
    if not missing:
        return None
    return (f"template {template}: the run ends with a message the routine writes itself "
            f"({written[:120]!r}), which does not state the required fact(s) "
            f"{', '.join(map(repr, missing))}: no agent can, so answer() must require only "
            "what that message says (e.g. none when the user declines)")


def _gold_calls(records: list[Any]) -> list[GoldCall]:
    """The calls of a gold run that were made (not those waiting for, or refused, a yes)."""
    return [GoldCall(name=c.name, arguments=c.arguments, result=c.result, step_id=c.step_id)
            for c in records if c.error_kind not in ("denied", "awaiting_confirmation")]


def _outputs(trace: RunTrace) -> dict[str, Any]:
    """Outputs by step id, as the routine reads them: a call's result (a step called again,
    as in a loop's body: the last), a for_each's list of per-item outputs."""
    return {**{c.step_id: c.result for c in trace.tool_calls if c.step_id},
            **trace.loop_outputs}


async def gold_conversation(loaded: LoadedRoutine, registry: ToolRegistry, query: str,
                            stated: dict[str, Any], user: UserProfile, deps_toolset: str = "",
                            written: list[str] | None = None
                            ) -> tuple[list[GoldCall], dict[str, Any], Snapshot]:
    """A gold conversation: the oracle (reading only what the user said) talks with the
    scripted user until the routine ends. (gold calls, outputs, end snapshot)."""
    routine = loaded.routine
    oracle = ConversationOracle.for_user(stated, user, routine.name)
    agent = Agent(routine, registry, oracle, ORACLE_SETTINGS, validate=False,
                  approver=policy(True, by="evaluation policy (approve all)"))
    chat = Conversation(agent)
    scripted = ScriptedUser(user)
    try:
        reply = await chat.asend(query)
        for _ in range(MAX_GOLD_TURNS):
            if reply.status != "waiting":
                break
            reply = await chat.asend(await scripted.reply(reply))
        snapshot = snapshot_of(deps_of(chat.contexts, deps_toolset))
    finally:
        await chat.aclose()
    if reply.status != "answered":
        raise DatasetError(f"{routine.name}: the gold conversation did not end in an answer "
                           f"({reply.status}: {reply.trace.failure or reply.text})")
    records = [c for t in chat.traces for c in t.tool_calls]
    outputs = {k: v for t in chat.traces for k, v in _outputs(t).items()}
    if written is not None and (text := written_answer(chat.traces[-1])) is not None:
        written.append(text)
    return _gold_calls(records), outputs, snapshot


async def _build(domain: Domain) -> list[GoldExample]:
    registry = domain.registry()
    routines = domain.routines()
    for name in sorted(_used(domain, routines)):  # (others in the folder: not this domain's)
        problems = check_routine(routines[name], registry)
        if problems:
            raise DatasetError(
                f"routine {name!r}, which the domain's templates use, does not validate "
                f"against the domain's toolsets ({', '.join(domain.toolsets) or 'none'}):\n"
                + "\n".join(map(str, problems)))
    async with registry.session() as contexts:  # samplers only read: one seeded copy serves all
        deps = deps_of(contexts, domain.deps_toolset)
        problems = domain.scoring_problems(registry, snapshot_of(deps))
        if problems:
            raise DatasetError("\n".join(problems))
        return await _build_from(domain, registry, routines, deps)


def _used(domain: Domain, routines: dict[str, LoadedRoutine]) -> set[str]:
    """The routines the domain's templates name, and those their hand-offs reach: a
    routines folder may hold another domain's routines beside them (``routine init``'s)."""
    used: set[str] = set()
    todo = [t.routine for t in domain.templates if t.routine in routines]
    while todo:
        name = todo.pop()
        if name in used:
            continue
        used.add(name)
        todo += [s.handoff for s, _ in routines[name].routine.walk()
                 if s.handoff in routines]
    return used


async def seed_snapshot(domain: Domain, registry: ToolRegistry) -> Snapshot:
    """The state every run starts from."""
    async with registry.session() as contexts:
        return snapshot_of(deps_of(contexts, domain.deps_toolset))


async def _build_from(domain: Domain, registry: ToolRegistry,
                      routines: dict[str, LoadedRoutine], seed_deps: Any) -> list[GoldExample]:
    seed = snapshot_of(seed_deps)
    seed_state = domain.end_state(seed, seed)
    examples: list[GoldExample] = []
    seen_ids: set[str] = set()
    for template in domain.templates:
        if template.id in seen_ids:
            raise DatasetError(f"duplicate template id {template.id!r}")
        seen_ids.add(template.id)
        rng = random.Random(f"{domain.seed}:{template.id}")
        loaded = routines.get(template.routine or "")
        if template.kind == "routine" and loaded is None:
            raise DatasetError(f"template {template.id}: unknown routine {template.routine!r}")
        _check_template(template)
        if template.user is not None and loaded is not None:  # what the user holds back
            spec = template.user
            unknown = [k for k in (*spec.holds, *spec.first) if k not in loaded.routine.inputs]
            if unknown:
                raise DatasetError(f"template {template.id}: UserSpec names "
                                   f"{', '.join(map(repr, unknown))}, not inputs of routine "
                                   f"{loaded.routine.name!r} (it has "
                                   f"{', '.join(loaded.routine.inputs) or 'none'})")
        try:
            examples += await _template_examples(domain, registry, template, loaded, rng,
                                                 seed_deps, seed, seed_state)
        except DatasetError:
            raise
        except Exception as exc:  # the domain's code: named, where it is
            raise DatasetError(f"template {template.id} (domain.py): {type(exc).__name__}: "
                               f"{exc}") from exc
    return examples


def _check_template(template: Template) -> None:
    """What a template must be before it makes examples (a typo made queries of single
    letters, or a division by zero)."""
    phrasings = template.phrasings
    if isinstance(phrasings, str) or not isinstance(phrasings, (list, tuple)) or \
            not phrasings or not all(isinstance(p, str) for p in phrasings):
        raise DatasetError(f"template {template.id}: phrasings must be a non-empty list of "
                           f"strings, got {phrasings!r}")
    if template.split not in SPLITS:
        raise DatasetError(f"template {template.id}: split {template.split!r} is not one of "
                           f"{', '.join(SPLITS)}")
    if not isinstance(template.count, int) or template.count < 1:
        raise DatasetError(f"template {template.id}: count must be a whole number of at least "
                           f"1, got {template.count!r}")
    if template.user is not None:  # a value held back must not be in the first message
        for phrasing in phrasings:
            named = {field.split(".")[0].split("[")[0]
                     for _, field, _, _ in string.Formatter().parse(phrasing) if field}
            if stated := sorted(named & set(template.user.holds)):
                raise DatasetError(
                    f"template {template.id}: the phrasing {phrasing!r} states "
                    f"{', '.join(stated)}, which UserSpec(holds=...) holds back until the "
                    "agent asks: leave it out of the phrasing (or out of holds)")


async def _template_examples(domain: Domain, registry: ToolRegistry, template: Template,
                             loaded: LoadedRoutine | None, rng: random.Random, seed_deps: Any,
                             seed: Snapshot, seed_state: Any) -> list[GoldExample]:
    """One template's examples (its ``count`` distinct queries)."""
    examples: list[GoldExample] = []
    queries: set[str] = set()
    attempts = 0
    while len(queries) < template.count:
        attempts += 1
        if attempts > template.count * 20:
            raise DatasetError(f"template {template.id}: could not make {template.count} "
                               "distinct queries")
        values = template.sample(seed_deps, rng)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise DatasetError(f"template {template.id}: sample() must return a dict of "
                               f"values (or None), got {type(values).__name__}")
        phrasing = template.phrasings[len(queries) % len(template.phrasings)]
        try:
            query = phrasing.format(**values)
        except KeyError as exc:
            raise DatasetError(f"template {template.id}: the phrasing {phrasing!r} names "
                               f"{exc}, which sample() did not return (it returned "
                               f"{', '.join(values) or 'nothing'})") from None
        if query in queries:
            continue
        inputs = {k: v for k, v in values.items()
                  if loaded is not None and k in loaded.routine.inputs}
        spec = template.user
        user = None
        if spec is not None:  # a conversation: some values only come when asked
            user = UserProfile(facts=to_jsonable({k: inputs[k] for k in
                                                  (*spec.holds, *spec.first) if k in inputs}),
                               says=dict(spec.says), confirms=spec.confirms,
                               changes=to_jsonable({k: values[source] for k, source
                                                    in spec.changes.items()}))
            first = {k: values[source] for k, source in spec.first.items()}
            inputs = {**{k: v for k, v in inputs.items() if k not in spec.holds}, **first}
        written: list[str] = []  # the answer, when the routine writes it itself
        if loaded is not None and template.kind == "routine" and user is not None:
            calls, outputs, snapshot = await gold_conversation(
                loaded, registry, query, inputs, user, domain.deps_toolset, written)
            state = domain.end_state(snapshot, seed)
        elif loaded is not None and template.kind == "routine":
            if missing := [n for n, spec_ in loaded.routine.inputs.items()
                           if spec_.required and spec_.default is None and n not in inputs]:
                raise DatasetError(
                    f"template {template.id}: sample() returned no value for the required "
                    f"input(s) {', '.join(missing)} of routine {loaded.routine.name!r} (it "
                    f"returned {', '.join(values) or 'nothing'}): a task's request comes with "
                    "every required input's value")
            calls, outputs, snapshot = await oracle_run(loaded, registry, inputs,
                                                        domain.deps_toolset, written)
            state = domain.end_state(snapshot, seed)
        else:
            calls, outputs, state = [], {}, seed_state
        try:
            made = template.answer(values, outputs)
        except KeyError as exc:
            raise DatasetError(
                f"template {template.id}: answer(values, outputs) looked up {exc}, which is "
                f"not there: values has {', '.join(map(str, values)) or 'nothing'}; outputs "
                f"has the steps that ran: {', '.join(map(str, outputs)) or 'none'}") from None
        if not isinstance(made, tuple) or len(made) != 2:
            raise DatasetError(f"template {template.id}: answer() must return (reference "
                               f"answer, required facts), got {type(made).__name__}")
        answer, facts = made
        facts = _facts(template.id, facts)
        if written and (problem := unstatable_facts(template.id, written[0], facts)):
            raise DatasetError(problem)
        queries.add(query)
        examples.append(GoldExample(
            id=f"{domain.name}-{template.id}-{len(queries):02d}", domain=domain.name,
            scenario=template.scenario, template=template.id, split=template.split,
            kind=template.kind, routine=template.routine if template.kind == "routine"
            else None, query=query, inputs=to_jsonable(inputs), calls=calls,
            answer=answer, required_facts=facts, end_state=state.digest,
            end_texts=state.texts, changes_state=state != seed_state, user=user))
    return examples


def _facts(template: str, facts: Any) -> list[str]:
    """A template's required facts as text: numbers written as the answer writes them
    (``999.99`` -> ``"999.99"``); anything else is the domain's mistake, named."""
    if not isinstance(facts, (list, tuple)):
        raise DatasetError(f"template {template}: answer() must return (answer, facts) with "
                           f"facts a list of strings, got {type(facts).__name__}")
    out = []
    for fact in facts:
        if isinstance(fact, (int, float)) and not isinstance(fact, bool):
            fact = str(fact)
        if not isinstance(fact, str):
            raise DatasetError(f"template {template}: answer() returned the required fact "
                               f"{fact!r} ({type(fact).__name__}); a fact is text the answer "
                               "must contain (a string, or a number)")
        out.append(fact)
    return out


def build_dataset(domain: Domain) -> list[GoldExample]:
    """Make every example of a domain (deterministic: same seed, same dataset)."""
    return asyncio.run(_build(domain))


_ADAPTER = TypeAdapter(GoldExample)


def write_dataset(examples: list[GoldExample], folder: str | Path) -> dict[str, Path]:
    """Write ``<folder>/<split>.jsonl`` files; return them by split."""
    folder = Path(folder)
    paths = {}
    for split in SPLITS:
        path = folder / f"{split}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for example in examples:
                if example.split == split:
                    fh.write(_ADAPTER.dump_json(example).decode() + "\n")
        paths[split] = path
    return paths


def jsonl_lines(path: Path, data: bytes, error: type[Exception], expected: str
                ) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a JSONL file's ``data``, numbered from 1: split at "\\n" only
    (a U+2028 or NEL inside a JSON string is text, not a line end), a byte order mark
    (Notepad, Excel) dropped; a line that is not UTF-8 raises ``error`` naming file and line."""
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{path}:{number}: not UTF-8 text ({exc.reason} at byte {exc.start} of "
                        f"the line); expected {expected}") from None


def load_dataset(folder: str | Path, splits: tuple[str, ...] = SPLITS) -> list[GoldExample]:
    out = []
    for split in splits:
        path = Path(folder) / f"{split}.jsonl"
        if not path.exists():
            continue
        for number, line in jsonl_lines(path, path.read_bytes(), DatasetError,
                                        "one JSON object per line as `routine dataset build` "
                                        "writes it (save the file as UTF-8)"):
            try:
                out.append(_ADAPTER.validate_json(line))
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                where = ".".join(str(x) for x in first["loc"])
                said = f"unknown key {where!r}" if first["type"] == "extra_forbidden" else \
                    f"{where + ': ' if where else ''}{first['msg']}"
                raise DatasetError(
                    f"{path}:{number}: not a gold example ({said}); expected one JSON object "
                    "per line as `routine dataset build` writes it") from None
    return out


def duplicate_ids(examples: list[GoldExample]) -> dict[str, list[str]]:
    """Example ids used more than once, each with the splits of its uses (records are kept
    by id: one would stand for both)."""
    uses: dict[str, list[str]] = {}
    for example in examples:
        uses.setdefault(example.id, []).append(example.split)
    return {i: splits for i, splits in uses.items() if len(splits) > 1}


def hygiene(folder: str | Path, examples: list[GoldExample]) -> list[str]:
    """What is wrong with a dataset's files as a whole: a split file missing, an id used
    twice, one request in two splits (a model tested on what it trained on)."""
    folder = Path(folder)
    problems = [f"{folder / f'{split}.jsonl'} is missing (`routine dataset build` writes "
                f"{', '.join(SPLITS)})" for split in SPLITS
                if not (folder / f"{split}.jsonl").exists()]
    problems += [f"{i}: the id is used twice ({', '.join(splits)})"
                 for i, splits in duplicate_ids(examples).items()]
    splits_of: dict[str, set[str]] = {}
    for example in examples:
        if example.query:
            splits_of.setdefault(" ".join(example.query.lower().split()), set()).add(
                example.split)
    problems += [f"the request {query!r} is in {' and '.join(sorted(splits))}: a split must "
                 "not test what another trains on" for query, splits in splits_of.items()
                 if len(splits) > 1]
    return problems


async def gold_run(example: GoldExample, domain: Domain, registry: ToolRegistry,
                   routines: dict[str, LoadedRoutine], seed: Snapshot,
                   settings: RunSettings = ORACLE_SETTINGS) -> tuple[RunTrace, EndState]:
    """Play an example's gold calls and answer through the executor: (trace, end state)."""
    loaded = routines.get(example.routine or "")
    player = GoldPlayer([(c.name, c.arguments) for c in example.calls], example.answer,
                        inputs=example.inputs)
    agent = Agent(loaded.routine if loaded else None, registry, player, settings, validate=False)
    trace, snapshot = await run_with_snapshot(agent, domain.deps_toolset, example.query)
    return trace, domain.end_state(snapshot, seed)


async def _replay(examples: list[GoldExample], domain: Domain) -> dict[str, list[str]]:
    registry = domain.registry()
    routines = domain.routines()
    seed = await seed_snapshot(domain, registry)
    out: dict[str, list[str]] = {}
    for example in examples:
        problems = []
        try:
            written: list[str] = []
            if example.user is not None:  # a conversation: talk it through again
                loaded = routines[example.routine or ""]
                calls, _, snapshot = await gold_conversation(
                    loaded, registry, example.query, example.inputs, example.user,
                    domain.deps_toolset, written)
                made: list[Any] = calls
                state = domain.end_state(snapshot, seed)
            else:
                trace, state = await gold_run(example, domain, registry, routines, seed)
                made = trace.tool_calls
                if (text := written_answer(trace)) is not None:
                    written.append(text)
        except DatasetError as exc:
            out[example.id] = [str(exc)]
            continue
        if written and (problem := unstatable_facts(example.template, written[0],
                                                    example.required_facts)):
            problems.append(problem)
        if [c.name for c in made] != [c.name for c in example.calls]:
            problems.append(f"calls {[c.name for c in made]} differ from the gold "
                            f"{[c.name for c in example.calls]}")
        for index, (call, gold) in enumerate(zip(made, example.calls, strict=False)):
            if getattr(call, "error", None) and gold.result is not None:
                problems.append(f"call {index} {call.name}: {call.error}")
            elif call.result != gold.result:
                problems.append(f"call {index} {call.name}: result differs from the gold one")
        same, why = domain.same_end_state(state, EndState(example.end_state, example.end_texts))
        if not same:
            problems.append(f"end state differs from the recorded one: {why}")
        out[example.id] = problems
    return out


def replay(examples: list[GoldExample], domain: Domain) -> dict[str, list[str]]:
    """Play gold trajectories through the executor on fresh databases; return what differs
    per example (empty lists: all good)."""
    return asyncio.run(_replay(examples, domain))


def dataset_stats(domain: Domain, examples: list[GoldExample]) -> dict[str, Any]:
    """Counts to quote: tools, routines, branches, queries and steps per split."""
    registry = domain.registry()
    routines = domain.routines()
    branching = [n for n, r in routines.items() if any(s.branch for s, _ in r.routine.walk())]
    per_split: dict[str, Any] = {}
    for split in SPLITS:
        chosen = [e for e in examples if e.split == split]
        per_split[split] = {
            "queries": len(chosen),
            "steps": sum(len(e.calls) for e in chosen),
            "answer_steps": sum(e.kind == "routine" for e in chosen),
            "templates": len({e.template for e in chosen}),
            "kinds": dict(Counter(e.kind for e in chosen)),
            "writes": sum(e.changes_state for e in chosen),
        }
    return {
        "domain": domain.name,
        "tools": len(registry),
        "routines": len(routines),
        "routines_with_branches": len(branching),
        "scenarios": sorted({t.scenario for t in domain.templates}),
        "templates": len(domain.templates),
        "queries": len(examples),
        "steps": sum(len(e.calls) for e in examples),
        "splits": per_split,
    }


def stats_table(stats: dict[str, Any]) -> str:
    """The stats as a short markdown table."""
    lines = [f"domain {stats['domain']}: {stats['tools']} tools, {stats['routines']} routines "
             f"({stats['routines_with_branches']} with branches), {len(stats['scenarios'])} "
             f"sub-scenarios, {stats['templates']} templates, {stats['queries']} queries, "
             f"{stats['steps']} gold tool calls", "",
             "| split | templates | queries | tool calls | + finish steps | routine / refuse / ask "
             "| writes |",
             "|---|---|---|---|---|---|---|"]
    for split, s in stats["splits"].items():
        kinds = s["kinds"]
        lines.append(f"| {split} | {s['templates']} | {s['queries']} | {s['steps']} | "
                     f"{s['answer_steps']} | "
                     f"{kinds.get('routine', 0)} / {kinds.get('refuse', 0)} / "
                     f"{kinds.get('ask', 0)} | {s['writes']} |")
    return "\n".join(lines)

