"""The control flow of a routine as a graph: successors, reachability, dominators.

Used twice: by ``validate`` (unreachable steps, cycles, references to steps that
may not have run) and by the executor's step tracker (which step comes next).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .format import Routine, Step

__all__ = ["Flow", "FINISHED", "FELL_OFF"]

FINISHED = "<finished>"  # after a finish step
FELL_OFF = "<end>"  # a sequence ran out without a finish step


@dataclass
class Flow:
    """Nodes are step ids; ``succ`` lists where control may go after each step.

    Attributes:
        steps: every step by id.
        labels: paper-style numbers (``1``, ``3-2_1``).
        paths: the YAML path of each step (for error positions).
        order: step ids in document order.
        succ: successors of each step id (FINISHED / FELL_OFF as terminals).
        options: for a branch step, the entry of each option (by option index).
        after: where control goes when a step (or an option) completes normally.
        entry: the first step.
        bad_jumps: (branch id, option index, target) for ``next`` targets that do not exist.
    """

    steps: dict[str, Step] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    paths: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    succ: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, list[str]] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)
    entry: str = FELL_OFF
    bad_jumps: list[tuple[str, int, str]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    _keys: dict[int, str] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, routine: Routine) -> Flow:
        flow = cls()
        flow._collect(routine.steps, "", ("steps",))
        flow.entry = flow.key(routine.steps[0])
        flow._link(routine.steps, FELL_OFF)
        return flow

    def key(self, step: Step) -> str:
        """The node of a step: its id, or ``id#N`` for the N-th repeat of a duplicated id."""
        return self._keys[id(step)]

    def _collect(self, steps: list[Step], prefix: str, path: tuple[Any, ...]) -> None:
        for index, step in enumerate(steps):
            label = f"{prefix}{index + 1}"
            key = step.id
            if key in self.steps:
                key = f"{step.id}#{sum(k.split('#')[0] == step.id for k in self.steps) + 1}"
                self.duplicates.append(key)
            self._keys[id(step)] = key
            self.steps[key] = step
            self.labels[key] = label
            self.paths[key] = (*path, index)
            self.order.append(key)
            for n, option in enumerate(step.branch or []):
                self._collect(option.steps, f"{label}-{n + 1}_", (*path, index, "branch", n, "steps"))

    def _link(self, steps: list[Step], cont: str) -> None:
        for index, step in enumerate(steps):
            node = self.key(step)
            after = self.key(steps[index + 1]) if index + 1 < len(steps) else cont
            self.after[node] = after
            if step.finish:
                self.succ[node] = [FINISHED]
            elif step.branch:
                entries = []
                for n, option in enumerate(step.branch):
                    target = after
                    if option.next is not None:
                        if option.next in self.steps:
                            target = option.next
                        else:
                            self.bad_jumps.append((node, n, option.next))
                    entries.append(self.key(option.steps[0]) if option.steps else target)
                    self._link(option.steps, target)
                self.options[node] = entries
                self.succ[node] = list(dict.fromkeys(entries))
            else:
                self.succ[node] = [after]

    def reachable(self) -> set[str]:
        seen: set[str] = set()
        stack = [self.entry]
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            stack.extend(self.succ.get(node, []))
        return seen

    def find_cycle(self) -> list[str] | None:
        """A list of step ids forming a cycle, or None."""
        color: dict[str, int] = {}
        path: list[str] = []

        def dfs(node: str) -> list[str] | None:
            color[node] = 1
            path.append(node)
            for nxt in self.succ.get(node, []):
                if color.get(nxt) == 1:
                    return path[path.index(nxt):] + [nxt]
                if color.get(nxt) is None and nxt in self.steps:
                    found = dfs(nxt)
                    if found:
                        return found
            path.pop()
            color[node] = 2
            return None

        for node in self.order:
            if color.get(node) is None:
                found = dfs(node)
                if found:
                    return found
        return None

    def dominators(self) -> dict[str, set[str]]:
        """For each reachable step, the steps that run on EVERY path to it (itself included)."""
        reach = self.reachable() & set(self.steps)
        preds: dict[str, set[str]] = {n: set() for n in reach}
        for node in reach:
            for nxt in self.succ.get(node, []):
                if nxt in preds:
                    preds[nxt].add(node)
        dom = {n: set(reach) for n in reach}
        dom[self.entry] = {self.entry}
        changed = True
        while changed:
            changed = False
            for node in self.order:
                if node not in reach or node == self.entry:
                    continue
                incoming = [dom[p] for p in preds[node]]
                new = set.intersection(*incoming) if incoming else set()
                new = new | {node}
                if new != dom[node]:
                    dom[node] = new
                    changed = True
        return dom
