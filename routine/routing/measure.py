"""Measure routers on a dataset: top-1 accuracy, "none" on out-of-scope requests, and the
false-"none" rate on in-scope ones; tune a router's thresholds on the dev split.

Cases come from a dataset folder (``eval/datasets/<domain>``):

* in scope — every ``routine`` example of ``<split>.jsonl`` (its ``query`` and gold
  ``routine``; a conversation's first message too);
* out of scope — the ``refuse`` examples of that split, and the lines of
  ``out_of_scope.jsonl`` whose ``split`` is that split (requests no routine serves,
  near-misses that share words with a routine among them).

The library's example requests come from ``train.jsonl`` only (:func:`dataset_library`):
no dev or test request is ever in the index.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from ..errors import EvalConfigError, Problem, SpecError
from .decision import Candidate, RouteDecision, Thresholds, decide
from .library import Library, load_examples

__all__ = ["Case", "RoutingScores", "DecisionRecord", "load_cases", "dataset_library",
           "score", "tune", "tune_on_dev", "measure", "table", "OUT_OF_SCOPE_FILE", "INDEX_SPLIT"]

OUT_OF_SCOPE_FILE = "out_of_scope.jsonl"
INDEX_SPLIT = "train"  # the only split whose requests go into a library's index


@dataclass(frozen=True)
class Case:
    """One request to route and the right decision: its routine, or None (out of scope)."""

    id: str
    query: str
    gold: str | None
    split: str


def _rows(path: Path) -> list[tuple[int, dict]]:
    rows = []
    # (lines end at "\n" only: a U+2028 in a request is text; a BOM from Excel is dropped)
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").split("\n"), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SpecError([Problem(str(path), number, exc.colno, f"not JSON: {exc.msg}",
                                         "one JSON object per line")]) from None
            if not isinstance(row, dict):
                raise SpecError([Problem(str(path), number, 1, f"a JSON {type(row).__name__}"
                                         ", not an object", "one JSON object per line")])
            rows.append((number, row))
    return rows


def load_cases(dataset: str | Path, split: str,
               routines: Sequence[str] | None = None) -> list[Case]:
    """The in-scope and out-of-scope requests of one split of a dataset folder.
    ``routines``: the library's names; a request whose routine is not one of them is an
    error at its line (it could never be routed right, and it moved the tuned threshold)."""
    folder = Path(dataset)
    cases, unknown = [], []
    path = folder / f"{split}.jsonl"
    for number, row in _rows(path):
        if row.get("kind") in ("routine", "refuse") and not (
                isinstance(row.get("id"), str) and isinstance(row.get("query"), str)):
            raise SpecError([Problem(str(path), number, 1, "a request needs a string 'id' "
                                     "and 'query'", '{"id": "...", "kind": "routine", '
                                     '"routine": "...", "query": "..."}')])
        if row.get("kind") == "routine" and row.get("routine"):
            if routines is not None and row["routine"] not in routines:
                unknown.append(Problem(str(path), number, 1, "a request for a routine the "
                                       f"library does not have: {row['routine']}",
                                       f"one of {', '.join(routines)}"))
            cases.append(Case(row["id"], row["query"], row["routine"], split))
        elif row.get("kind") == "refuse":
            cases.append(Case(row["id"], row["query"], None, split))
    extra = folder / OUT_OF_SCOPE_FILE
    if extra.exists():
        for number, row in _rows(extra):
            if not isinstance(row.get("query"), str) or not isinstance(row.get("split"), str):
                raise SpecError([Problem(str(extra), number, 1, "an out-of-scope request "
                                         "needs a string 'query' and 'split'",
                                         '{"id": "...", "split": "dev", "query": "..."}')])
            if row["split"] == split:
                cases.append(Case(row.get("id") or f"{extra.name}:{number}", row["query"],
                                  None, split))
    if unknown:
        raise SpecError(unknown)
    return cases


def dataset_library(dataset: str | Path, routines: str | Path | None = None) -> Library:
    """The library of a dataset's domain: its routines (``routines``: the CLI gives the
    domain's ``routines_dir``, found as ``routine eval`` finds it; else
    ``routines/<folder name>`` beside ``eval/``), with the train split's requests as
    examples."""
    folder = Path(dataset)
    if routines is None:
        routines = folder.resolve().parents[2] / "routines" / folder.name
    return Library.from_folders(routines).with_examples(
        load_examples(folder / f"{INDEX_SPLIT}.jsonl"))


class RoutingScores(BaseModel):
    """How a router did on one split of one dataset."""

    router: str
    dataset: str
    split: str
    in_scope: int = Field(description="In-scope requests.")
    out_of_scope: int = Field(description="Out-of-scope requests.")
    top1: float = Field(description="In scope: the best-ranked routine is the right one.")
    top5: float = Field(0.0, description="In scope: the right routine is among the best five "
                        "ranked (what the LLM router's model gets to choose from).")
    routed: float = Field(description="In scope: decided for the right routine (not none, "
                          "not a question).")
    asked: float = Field(description="In scope: a question back (ambiguous).")
    false_none: float = Field(description="In scope: decided none.")
    none_ok: float = Field(description="Out of scope: decided none.")
    out_asked: float = Field(0.0, description="Out of scope: a question back.")
    thresholds: Thresholds | None = None
    tuning: str = Field("", description="How the thresholds were set, when not all tuned on "
                        "dev (a dev split without in-scope or out-of-scope requests).")
    wrong: list[str] = Field(default_factory=list, description="Cases decided wrongly: "
                             "'id: query -> decision'.")


def _rate(hits: int, total: int) -> float:
    return hits / total if total else 0.0


def score(cases: Sequence[Case], decisions: Sequence[RouteDecision], router: str = "",
          dataset: str = "", thresholds: Thresholds | None = None, split: str = "",
          tuning: str = "") -> RoutingScores:
    """The scores of decisions (one per case, same order); ``split`` names the split when
    it has no cases."""
    inside = [(c, d) for c, d in zip(cases, decisions, strict=True) if c.gold is not None]
    outside = [(c, d) for c, d in zip(cases, decisions, strict=True) if c.gold is None]
    wrong = [f"{c.id}: {c.query} -> {d.routine or d.kind} (gold {c.gold or 'none'})"
             for c, d in zip(cases, decisions, strict=True)
             if (d.routine if d.kind == "routine" else None) != c.gold]
    split = cases[0].split if cases else split
    return RoutingScores(
        router=router, dataset=dataset, split=split, in_scope=len(inside),
        out_of_scope=len(outside),
        top1=_rate(sum(d.best == c.gold for c, d in inside), len(inside)),
        top5=_rate(sum(c.gold in [x.name for x in d.candidates[:5]] for c, d in inside),
                   len(inside)),
        routed=_rate(sum(d.kind == "routine" and d.routine == c.gold for c, d in inside),
                     len(inside)),
        asked=_rate(sum(d.kind == "ambiguous" for _, d in inside), len(inside)),
        false_none=_rate(sum(d.kind == "none" for _, d in inside), len(inside)),
        none_ok=_rate(sum(d.kind == "none" for _, d in outside), len(outside)),
        out_asked=_rate(sum(d.kind == "ambiguous" for _, d in outside), len(outside)),
        thresholds=thresholds, tuning=tuning, wrong=wrong)


def _utility(case: Case, decision: RouteDecision) -> float:
    """1 for the right decision; 0.5 for a question whose two options hold the right
    routine (the user's answer then leads to it); else 0."""
    if case.gold is None:
        return float(decision.kind == "none")
    if decision.kind == "ambiguous":
        return 0.5 * (case.gold in decision.options)
    return float(decision.kind == "routine" and decision.routine == case.gold)


def tune_on_dev(cases: Sequence[Case], rankings: Sequence[list[Candidate]],
                default: Thresholds) -> tuple[Thresholds, str]:
    """:func:`tune` where the dev cases allow it, and what was not tuned (``""``: all was).
    Without out-of-scope requests the "none" threshold cannot be tuned (it would fall under
    every score, so "none" never comes): the router's default is kept and only the margin
    tuned; without in-scope requests (or without any) nothing is tuned."""
    inside = sum(c.gold is not None for c in cases)
    if not inside:
        what = "no requests" if not cases else "no in-scope requests"
        return default, f"default thresholds: the dev split has {what}"
    if inside == len(cases):
        tuned = tune(cases, rankings, cuts=[default.none_below])
        return tuned, "default none threshold: the dev split has no out-of-scope requests"
    return tune(cases, rankings), ""


def tune(cases: Sequence[Case], rankings: Sequence[list[Candidate]],
         margins: Sequence[float] | None = None, cuts: Sequence[float] | None = None
         ) -> Thresholds:
    """The thresholds that do best on these (dev) cases. The objective is a balanced
    accuracy: the mean of the in-scope utility (1 routed right, ½ a question whose two
    options hold the right routine, 0 otherwise, false "none" included) and the
    out-of-scope "none" rate, each side counting half whatever their sizes. The
    "none" threshold is tried between every two adjacent best scores; ties go to the
    smaller margin, then to the middle of the best thresholds (``cuts``: only these "none"
    thresholds are tried)."""
    tops = sorted({r[0].score for r in rankings if r})
    if cuts is None:
        cuts = [tops[0] - 1e-6] + [(a + b) / 2 for a, b in zip(tops, tops[1:], strict=False)] \
            + [tops[-1] + 1e-6] if tops else [0.0]
    if margins is None:
        spread = (tops[-1] - tops[0]) if len(tops) > 1 else 1.0
        margins = [0.0] + [spread * f for f in (0.005, 0.01, 0.02, 0.03, 0.05, 0.08)]
    inside = [i for i, c in enumerate(cases) if c.gold is not None]
    outside = [i for i, c in enumerate(cases) if c.gold is None]
    best: tuple[float, float] | None = None
    chosen: list[Thresholds] = []
    for margin in margins:
        for cut in cuts:
            thresholds = Thresholds(none_below=cut, margin=margin)
            values = [_utility(c, decide(r, thresholds)) for c, r in zip(cases, rankings,
                                                                          strict=True)]
            parts = [sum(values[i] for i in side) / len(side) for side in (inside, outside)
                     if side]
            value = sum(parts) / len(parts) if parts else 0.0
            key = (round(value, 9), -margin)
            if best is None or key > best:
                best, chosen = key, [thresholds]
            elif key == best:
                chosen.append(thresholds)
    middle = chosen[len(chosen) // 2]
    return Thresholds(none_below=round(middle.none_below, 4), margin=round(middle.margin, 4))


class DecisionRecord(BaseModel):
    """One routed case, as ``decisions.jsonl`` keeps it (a rerun skips recorded cases)."""

    router: str
    dataset: str
    case: str
    model: str = Field("", description="The LLM router's model (empty in records before it "
                       "was kept)")
    gold: str | None
    decision: RouteDecision


def _done(path: Path, model: str = "") -> dict[tuple[str, str, str], RouteDecision]:
    """The recorded decisions; those of another model than ``model`` are refused (a rerun
    into the same folder with another --model would report that model's decisions)."""
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").split("\n"):  # (U+2028 in a request: text)
        try:
            record = DecisionRecord.model_validate_json(line)
        except ValueError:
            continue  # a torn last line: that case runs again
        if model and record.model and record.model != model:
            raise EvalConfigError(f"{path} holds the decisions of model {record.model!r}, not "
                                  f"{model!r}: give another --out (or remove the file)")
        out[(record.router, record.dataset, record.case)] = record.decision
    return out


async def measure(datasets: Sequence[str | Path], routers: Sequence[str], out: str | Path,
                  model: object = None, *, limit: int = 0, sample: int = 0, k: int = 5,
                  index_examples: bool = False, progress: object = None,
                  routines: dict[str, Path] | None = None) -> list[RoutingScores]:
    """Every router on every dataset: score-based routers are tuned on dev and scored on
    dev and test; the LLM router (``model``) routes each case once, recorded in
    ``<out>/decisions.jsonl`` so a rerun resumes. ``limit`` > 0: only the first ``limit``
    cases of each split; ``sample`` > 0: a fixed random ``sample`` of each split's cases
    (seed 0, in file order: in scope and out of scope mixed). ``index_examples``: the lexical router also
    indexes the train requests (reported as ``lexical+examples``; the embedding router
    indexes them anyway, ``embedding+examples`` is the same router).
    Writes ``<out>/scores.json`` and ``<out>/routing.md``; returns the scores."""
    from .build import make_router, retriever

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "decisions.jsonl"
    model_name = str(getattr(model, "name", "") or "") if "llm" in routers else ""
    done = _done(log, model_name)
    results: list[RoutingScores] = []
    for dataset in datasets:
        name = Path(dataset).name
        library = dataset_library(dataset, (routines or {}).get(str(dataset)))
        splits = {s: load_cases(dataset, s, library.names) for s in ("dev", "test")}
        if limit:
            splits = {s: c[:limit] for s, c in splits.items()}
        if sample:
            splits = {s: [c[i] for i in sorted(random.Random(0).sample(range(len(c)),
                                                                       min(sample, len(c))))]
                      for s, c in splits.items()}
        for kind in routers:
            if kind == "llm":
                router = make_router("llm", library, model, k=k)  # type: ignore[arg-type]
                for split, cases in splits.items():
                    decisions = []
                    for case in cases:
                        key = ("llm", name, case.id)
                        if key not in done:
                            done[key] = await router.aroute(case.query)
                            with log.open("a", encoding="utf-8") as f:
                                f.write(DecisionRecord(router="llm", dataset=name, case=case.id,
                                                       gold=case.gold, decision=done[key],
                                                       model=model_name
                                                       ).model_dump_json() + "\n")
                            if callable(progress):
                                progress(f"{name} llm {split} {case.id}: "
                                         f"{done[key].routine or done[key].kind}")
                        decisions.append(done[key])
                    results.append(score(cases, decisions, "llm", name, split=split))
                continue
            scorer = retriever(library, kind)  # type: ignore[arg-type]
            if index_examples:
                scorer = type(scorer)(library, examples=True)
            label = f"{kind}+examples" if index_examples else kind
            rankings = {s: [scorer.rank(c.query) for c in cases] for s, cases in splits.items()}
            thresholds, tuning = tune_on_dev(splits["dev"], rankings["dev"],
                                             scorer.thresholds)
            if tuning and callable(progress):
                progress(f"{name} {label}: {tuning}")
            for split, cases in splits.items():
                results.append(score(cases, [decide(r, thresholds, kind) for r in
                                             rankings[split]], label, name, thresholds,
                                     split=split, tuning=tuning))
    (folder / "scores.json").write_text(json.dumps([r.model_dump() for r in results],
                                                   indent=1), encoding="utf-8")
    (folder / "routing.md").write_text(table(results), encoding="utf-8")
    return results


def table(results: Sequence[RoutingScores]) -> str:
    """The scores as a markdown table (one row per router, dataset and split)."""
    lines = ["| domain | split | router | top-1 | top-5 | routed right | asked | false none "
             "(in scope) | none right (out of scope) | thresholds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        th = (f"none < {r.thresholds.none_below:g}, margin {r.thresholds.margin:g}"
              if r.thresholds else "–") + (f" ({r.tuning})" if r.tuning else "")
        def rate(value: float, n: int) -> str:
            return f"{value:.1%}" if n else "–"  # (no case on that side: no rate)

        inside = r.in_scope
        lines.append(f"| {r.dataset} | {r.split} | {r.router} | {rate(r.top1, inside)} "
                     f"(n={inside}) | {rate(r.top5, inside)} | {rate(r.routed, inside)} | "
                     f"{rate(r.asked, inside)} | {rate(r.false_none, inside)} | "
                     f"{rate(r.none_ok, r.out_of_scope)} (n={r.out_of_scope}) | {th} |")
    return "\n".join(lines) + "\n"
