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
        bad_jumps: (YAML path, target) for ``next`` / ``on_error`` / ``on_decline``
            targets that do not exist.
        loops: for a ``for_each`` step, the entry of its body (whose end leads back to it).
        on_error: for a tool step with ``on_error``, where a failed call continues.
        on_decline: for a tool step with ``confirm``, where a declined call continues
            (FINISHED: the run ends).
        parent: for a step inside a loop body, the loop step (innermost).
    """

    steps: dict[str, Step] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    paths: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    succ: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, list[str]] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)
    entry: str = FELL_OFF
    bad_jumps: list[tuple[tuple[Any, ...], str]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    loops: dict[str, str] = field(default_factory=dict)
    on_error: dict[str, str] = field(default_factory=dict)
    on_decline: dict[str, str] = field(default_factory=dict)
    parent: dict[str, str] = field(default_factory=dict)
    _keys: dict[int, str] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, routine: Routine) -> Flow:
        flow = cls()
        flow._collect(routine.steps, "", ("steps",), None)
        flow.entry = flow.key(routine.steps[0])
        flow._link(routine.steps, FELL_OFF)
        return flow

    def _target(self, node: str, path: tuple[Any, ...], target: str, fallback: str) -> str:
        """A jump's target node; an unknown one is recorded, and ``fallback`` taken."""
        if target in self.steps:
            return target
        self.bad_jumps.append(((*self.paths[node], *path), target))
        return fallback

    def key(self, step: Step) -> str:
        """The node of a step: its id, or ``id#N`` for the N-th repeat of a duplicated id."""
        return self._keys[id(step)]

    def _collect(self, steps: list[Step], prefix: str, path: tuple[Any, ...],
                 loop: str | None) -> None:
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
            if loop is not None:
                self.parent[key] = loop
            for n, option in enumerate(step.branch or []):
                self._collect(option.steps, f"{label}-{n + 1}_",
                              (*path, index, "branch", n, "steps"), loop)
            if step.steps:
                self._collect(step.steps, f"{label}-each_", (*path, index, "steps"), key)
            if isinstance(step.on_error, list):
                self._collect(step.on_error, f"{label}-error_", (*path, index, "on_error"), loop)

    def _link(self, steps: list[Step], cont: str) -> None:
        for index, step in enumerate(steps):
            node = self.key(step)
            after = self.key(steps[index + 1]) if index + 1 < len(steps) else cont
            self.after[node] = after
            if step.finish or step.handoff:
                self.succ[node] = [FINISHED]
            elif step.branch:
                entries = []
                for n, option in enumerate(step.branch):
                    target = after
                    if option.next is not None:
                        target = self._target(node, ("branch", n, "next"), option.next, after)
                    entries.append(self.key(option.steps[0]) if option.steps else target)
                    self._link(option.steps, target)
                self.options[node] = entries
                self.succ[node] = list(dict.fromkeys(entries))
            elif step.steps:  # for_each: the body, then back here for the next item
                self.loops[node] = self.key(step.steps[0])
                self._link(step.steps, node)
                self.succ[node] = [self.loops[node], after]
            else:
                self.succ[node] = [after]
                if isinstance(step.on_error, list):
                    self.on_error[node] = self.key(step.on_error[0])
                    self._link(step.on_error, after)
                elif step.on_error is not None:
                    self.on_error[node] = self._target(node, ("on_error",), step.on_error, after)
                if step.confirm:
                    self.on_decline[node] = FINISHED if step.on_decline is None else \
                        self._target(node, ("on_decline",), step.on_decline, FINISHED)
                for extra in (self.on_error.get(node), self.on_decline.get(node)):
                    if extra is not None and extra not in self.succ[node]:
                        self.succ[node].append(extra)

    def back_edge(self, source: str, target: str) -> bool:
        """Whether ``source -> target`` is a loop allowed to repeat: the end of a for_each
        body going back to it, or a jump to a step with ``max_visits``."""
        return target in self.loops or (target in self.steps
                                        and self.steps[target].max_visits is not None)

    def ran_ok(self, node: str) -> str:
        """The node that stands for "``node`` ran and produced its output": the node itself,
        or for a tool step that can fail over (on_error) or be declined (confirm), a
        virtual ``node#ok`` on the dominance graph."""
        return f"{node}#ok" if node in self.on_error or node in self.on_decline else node

    def _dominance_graph(self) -> dict[str, list[str]]:
        """``succ`` with a virtual ``#ok`` node between a fallible tool step and its normal
        successor, so that "its output exists" can be asked of the dominators."""
        graph = {node: list(targets) for node, targets in self.succ.items()}
        for node in set(self.on_error) | set(self.on_decline):
            ok = self.ran_ok(node)
            graph[node] = [ok if t == self.after[node] else t for t in graph[node]]
            if ok not in graph[node]:
                graph[node].insert(0, ok)
            graph[ok] = [self.after[node]]
        return graph

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
                if self.back_edge(node, nxt):
                    continue  # a bounded loop (for_each, max_visits)
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
        """For each reachable step, the nodes that run on EVERY path to it (itself included);
        a fallible tool step's ``#ok`` node (:meth:`ran_ok`) is among them when its output
        must exist there."""
        graph = self._dominance_graph()
        reach: set[str] = set()
        stack = [self.entry]
        while stack:
            node = stack.pop()
            if node in reach or (node not in self.steps and not node.endswith("#ok")):
                continue
            reach.add(node)
            stack.extend(graph.get(node, []))
        preds: dict[str, set[str]] = {n: set() for n in reach}
        for node in reach:
            for nxt in graph.get(node, []):
                if nxt in preds:
                    preds[nxt].add(node)
        order = [n for o in self.order for n in (o, f"{o}#ok") if n in reach]
        dom = {n: set(reach) for n in reach}
        dom[self.entry] = {self.entry}
        changed = True
        while changed:
            changed = False
            for node in order:
                if node == self.entry:
                    continue
                incoming = [dom[p] for p in preds[node]]
                new = set.intersection(*incoming) if incoming else set()
                new = new | {node}
                if new != dom[node]:
                    dom[node] = new
                    changed = True
        return {n: d for n, d in dom.items() if n in self.steps}

    def covered(self, setters: set[str], target: str) -> bool:
        """Whether every path from the first step to ``target`` passes one of ``setters``
        having run (their ``#ok`` nodes): a name set on every path, whichever step set it."""
        graph = self._dominance_graph()
        done = {self.ran_ok(s) for s in setters}
        seen: set[str] = set()
        stack = [self.entry]
        while stack:
            node = stack.pop()
            if node in seen or node in done:
                continue
            if node == target:
                return False
            seen.add(node)
            stack.extend(graph.get(node, []))
        return True
