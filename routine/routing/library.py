"""A routine library: the routines a router chooses among, with what it reads of each.

A :class:`Library` holds routines (from folders of YAML files, or registered in code) and,
for each, the texts retrieval reads: a **card** (the name in words, the description, the
inputs and the steps' names) and **example requests** (``query`` + ``routine`` pairs, e.g.
a dataset's train split). Example requests are the strongest signal a router has; keep the
requests you evaluate on out of them (:func:`load_examples` reads one split only).

    library = Library.from_folders("routines/hr").with_examples(
        load_examples("eval/datasets/hr/train.jsonl"))
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Problem, RoutineError, SpecError
from ..spec.format import Routine
from ..spec.loader import LoadedRoutine, load_routine, routine_files
from .decision import NONE

__all__ = ["Library", "Entry", "Example", "load_examples", "card_text", "retrieval_text"]


@dataclass(frozen=True)
class Example:
    """One example request and the routine that serves it."""

    query: str
    routine: str
    file: str = field(default="<examples>", compare=False)  # where it was read, for errors
    line: int = field(default=1, compare=False)


@dataclass(frozen=True)
class Entry:
    """One routine of a library and the texts retrieval reads of it.

    Attributes:
        name: the routine's name.
        description: its description (what the agent says it can help with).
        card: name, description, inputs and step names, as one text.
        examples: example requests it serves.
        routine: the routine itself (None only for a library built from texts).
        path: the file it came from, if any.
        source: the loaded file (its positions: the tools are looked up from it).
    """

    name: str
    description: str
    card: str
    examples: tuple[str, ...] = ()
    routine: Routine | None = None
    path: Path | None = None
    source: LoadedRoutine | None = None


def card_text(routine: Routine) -> str:
    """The routine as retrieval reads it: its name in words, its description, its inputs
    (names and descriptions) and its steps' names."""
    parts = [routine.name.replace("_", " ") + ".", routine.description]
    for name, spec in routine.inputs.items():
        parts.append(f"{name.replace('_', ' ')}: {spec.description or ''}".strip())
    parts += [step.name for step, _ in routine.walk()]
    return "\n".join(p for p in parts if p)


# (from the start of a run of such characters only: tried from every character of a long
# run without "@", the time grew with the square of its length: 3.9 s for 40,000 characters)
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NUMBER = re.compile(r"#?\b\d[\d.,:/-]*\b")
_WORDS = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")  # letters of any script, joined by - or '
_SENTENCE_ENDS = ".!?:;"  # the word before ends with one: this word starts a sentence
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_PERIODS = [  # a date says which period a request is about: a day, a month or a year
    (re.compile(rf"\b(?:{_MONTHS})(?:\s+(?:19|20)\d\d)?\b"), "month"),
    (re.compile(r"\b(?:19|20)\d\d-\d\d-\d\d\b"), "date"),
    (re.compile(r"\b(?:19|20)\d\d-\d\d\b"), "month"),
    # a bare 19xx/20xx is a year only after a word that says so ("in 2025", "for 2026");
    # "claim 2050", "about 2000 EUR" or a phone number are numbers, dropped like any other
    (re.compile(r"(?i)\b(in|of|for|since|until|from|during|year|before|after|by|to|and|"
                r"fy) (?:19|20)\d\d\b"), r"\1 year")]


def _is_name(word: str) -> bool:
    """A capitalised word: a capital and then small letters, in any script ("Ana", "Jörg",
    "Łukasz", "Émile"), maybe joined to more letters by ``-`` or ``'`` ("Jean-Luc",
    "O'Neil", "Ana's"); not an all-capital word ("IT") nor one with digits."""
    if not _WORDS.fullmatch(word):
        return False
    head = re.split(r"[-'’]", word, maxsplit=1)[0]
    return len(head) > 1 and head[0].isupper() and head[1:].islower()


def _title_case(line: str) -> bool:
    """Most words of the line start with a capital ("Please Reroute My Parcel To Lyon"):
    capitals there say nothing about names."""
    words = re.findall(r"[^\W\d_]+", line)
    return len(words) >= 3 and sum(w[0].isupper() for w in words) >= 0.6 * len(words)


def retrieval_text(text: str, vocabulary: frozenset[str] = frozenset(),
                   terms: frozenset[str] = frozenset()) -> str:
    """The text as retrieval compares it: without the request's particulars — e-mail
    addresses, numbers, and capitalised words inside a sentence (people's and products'
    names) — which say who or what, never which routine, yet dominate the similarity of
    two short requests (two requests naming the same person look alike). A date becomes
    the kind of period it names (``date``, ``month``, ``year``: a payslip for a month, a
    summary for a year). Each line on its own; a sentence's first word stays; all-capital
    words (``IT``) stay. In a title-cased line ("Please Reroute My Parcel") a capitalised
    word stays when the library writes it in lower case (``vocabulary``: "reroute"), or
    when there is no vocabulary. In any line a capitalised word stays when it is one of the
    library's own ``terms`` (words its cards write capitalised inside a sentence:
    German nouns such as "Urlaub"), which are never a request's particulars. The
    text itself when nothing would be left."""
    lines = []
    for line in text.splitlines():
        for pattern, period in _PERIODS:
            line = pattern.sub(period, line)
        line = _NUMBER.sub(" ", _EMAIL.sub(" ", line))
        words, titled, before = [], _title_case(line), ""
        for match in re.finditer(r"\S+", line):
            # (the word before ends a sentence: searching the whole line up to each word
            # took 13 s for an 86 KB request)
            first = not words or before[-1:] in _SENTENCE_ENDS
            before = match.group(0)
            bare = match.group(0).strip(",.!?;:()\"")
            known = (titled and (not vocabulary or bare.lower() in vocabulary)
                     or bare.lower() in terms)
            if first or known or not _is_name(bare):
                words.append(match.group(0))
        lines.append(" ".join(words))
    kept = "\n".join(line for line in lines if line.strip())
    return kept if kept.strip(" \n.,!?;:#()") else text


def capitalised_terms(text: str) -> frozenset[str]:
    """The words a text itself writes capitalised inside a sentence, lower-cased (German
    nouns: "Beantragt Urlaub für ..." gives "urlaub"): in a library's cards they are terms
    of its processes, so a request keeps them (:func:`retrieval_text`'s ``terms``). A
    sentence's first word is not one: English cards start with verbs that are also
    people's names ("Mark an onboarding task done" would keep "Mark" in "Which tasks has
    Mark left?" and send it to that write routine)."""
    found = set()
    for line in text.splitlines():
        before = ""
        for match in re.finditer(r"\S+", line):
            first = not before or before[-1:] in _SENTENCE_ENDS
            before = match.group(0)
            bare = match.group(0).strip(",.!?;:()\"")
            if not first and _is_name(bare):
                found.add(bare.lower())
    return frozenset(found)


@dataclass(frozen=True)
class Library:
    """The routines a router chooses among (by name, in a fixed order)."""

    entries: tuple[Entry, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        reserved = [e for e in self.entries if e.name == NONE]
        if reserved:  # the routers' answer when nothing fits: a routine of that name is lost
            raise SpecError([Problem(str(e.path or f"<routine {e.name}>"), 1, 1,
                                     f"routine name {NONE!r} is what a router answers when no "
                                     "routine fits", "another routine name")
                             for e in reserved])
        names = [e.name for e in self.entries]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise SpecError([Problem(str(e.path or f"<routine {e.name}>"), 1, 1,
                                     f"routine name {e.name!r} is used by more than one "
                                     "routine of the library", "one routine per name")
                             for e in self.entries if e.name in twice])

    @classmethod
    def of(cls, routines: Iterable[Routine | LoadedRoutine]) -> Library:
        """A library of routines registered in code."""
        entries = []
        for item in routines:
            routine = item.routine if isinstance(item, LoadedRoutine) else item
            path = item.path if isinstance(item, LoadedRoutine) else None
            entries.append(Entry(routine.name, routine.description, card_text(routine),
                                 routine=routine, path=path,
                                 source=item if isinstance(item, LoadedRoutine) else None))
        return cls(tuple(sorted(entries, key=lambda e: e.name)))

    @classmethod
    def from_folders(cls, *folders: str | Path) -> Library:
        """Every routine file (``*.yaml``, ``*.yml``) under the folders. A file that does not
        load is a :class:`SpecError` with its problems (every bad file, all at once)."""
        loaded, problems, seen = [], [], set()
        for folder in map(Path, folders):
            if not folder.is_dir():
                problems.append(Problem(str(folder), 1, 1, "not a folder of routines",
                                        "a folder with routine YAML files"))
                continue
            for path in routine_files(folder):
                if (real := path.resolve()) in seen:  # a folder given twice, or in another
                    continue
                seen.add(real)
                try:
                    loaded.append(load_routine(path))
                except SpecError as exc:
                    problems += exc.problems
        if not loaded and not problems:
            problems.append(Problem(str(folders[0]) if folders else "<library>", 1, 1,
                                    "no routine files found", "*.yaml routine files"))
        if problems:
            raise SpecError(problems)
        return cls.of(loaded)

    def with_examples(self, examples: Iterable[Example] | Mapping[str, Iterable[str]]
                      ) -> Library:
        """The library with these example requests added to their routines. An example
        for a routine the library does not have is an error."""
        if isinstance(examples, Mapping) and any(isinstance(qs, str)
                                                 for qs in examples.values()):
            raise RoutineError("examples by routine name take a list of requests per name "
                               "(a string would be read one character at a time)")
        pairs = ([Example(q, name) for name, qs in examples.items() for q in qs]
                 if isinstance(examples, Mapping) else list(examples))
        names = set(self.names)
        unknown = [e for e in pairs if e.routine not in names]
        if unknown:  # each at its file and line, when it was read from one
            raise SpecError([Problem(e.file, e.line, 1, f"an example for a routine the "
                                     f"library does not have: {e.routine}",
                                     f"one of {', '.join(self.names)}") for e in unknown])
        added: dict[str, list[str]] = {}
        for example in pairs:
            added.setdefault(example.routine, []).append(example.query)
        return Library(tuple(
            Entry(e.name, e.description, e.card, (*e.examples, *added.get(e.name, [])),
                  e.routine, e.path, e.source) for e in self.entries))

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def __getitem__(self, name: str) -> Entry:
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.entries)


def load_examples(path: str | Path, split: str | None = None) -> list[Example]:
    """Example requests from a JSONL file: one object per line with ``query`` and
    ``routine`` (lines whose ``routine`` is null are skipped: nothing serves them). With
    ``split``, only lines whose ``split`` field is that split (a dataset file keeps one
    split anyway). A line that is not such an object is a :class:`SpecError` at its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # (a BOM from Notepad or Excel)
    except OSError as exc:
        raise SpecError([Problem(str(path), 1, 1, f"cannot read file: {exc}")]) from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise SpecError([Problem(str(path), line, 1, f"byte 0x{exc.object[exc.start]:02x} is "
                                 "not UTF-8", "a UTF-8 JSONL file")]) from None
    examples, problems = [], []
    for number, line in enumerate(text.split("\n"), 1):  # (U+2028 in a request: text)
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(str(path), number, exc.colno, f"not JSON: {exc.msg}",
                                    'a JSON object like {"query": "...", "routine": "..."}'))
            continue
        if not isinstance(row, dict) or not isinstance(row.get("query"), str) \
                or not isinstance(row.get("routine"), str | None):
            problems.append(Problem(str(path), number, 1, "an example needs a string "
                                    "'query' and a 'routine' (a name, or null)",
                                    '{"query": "...", "routine": "..."}'))
            continue
        if not row["query"].strip():  # an empty request teaches nothing, and hides a slip
            problems.append(Problem(str(path), number, 1, "the example's 'query' is empty",
                                    "a request a user would write"))
            continue
        if row["routine"] is None or (split is not None and row.get("split") != split):
            continue
        examples.append(Example(row["query"], row["routine"], str(path), number))
    if problems:
        raise SpecError(problems)
    return examples
