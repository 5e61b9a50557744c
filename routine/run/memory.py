"""Variable memory (the paper's): long tool results are kept under a key.

The model sees the key, the fields the value has and a short preview, passes the key as
an argument — or a path into it (``memory_1.items.0.product_id``), so what a later step
must take from a long result stays reachable — and the executor swaps the stored value in
before the tool runs. This saves context and avoids copy errors. Step outputs named in
the routine (``output:``) are kept under that name too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..spec.references import MISSING, value_at

__all__ = ["VariableMemory", "MemoryEntry"]


@dataclass
class MemoryEntry:
    key: str
    value: Any
    text: str
    tool: str
    step_id: str | None = None

    def preview(self, length: int = 160) -> str:
        flat = " ".join(self.text.split())
        return flat if len(flat) <= length else flat[:length] + "…"


@dataclass
class VariableMemory:
    """Keyed store of tool results.

    Attributes:
        threshold: results whose text is longer than this many characters are
            replaced in the conversation by their key and a preview.
    """

    threshold: int = 600
    entries: dict[str, MemoryEntry] = field(default_factory=dict)
    _counter: int = 0

    def store(self, value: Any, text: str, tool: str, step_id: str | None = None,
              name: str | None = None) -> MemoryEntry:
        if name is None:
            self._counter += 1
            name = f"memory_{self._counter}"
        entry = MemoryEntry(name, value, text, tool, step_id)
        self.entries[name] = entry
        return entry

    def is_long(self, text: str) -> bool:
        return len(text) > self.threshold

    def key_of(self, value: Any) -> str | None:
        """The key of the long result ``value`` is, if it is one: a prompt names the key
        (the model passes it, the tool gets the value) instead of repeating the text."""
        if value is None or isinstance(value, (bool, int, float)):
            return None
        for entry in self.entries.values():
            if (entry.value is value or entry.value == value) and self.is_long(entry.text):
                return entry.key
        return None

    def shown(self, entry: MemoryEntry) -> str:
        """What the model is shown instead of a long result: the key, the fields it has
        (a path into it is an argument too), and a preview."""
        fields = _fields(entry.value)
        where = f" Fields: {fields}; pass \"{entry.key}.FIELD\" for one of them." if fields \
            else ""
        return (f"[stored in variable memory as {entry.key!r}: {len(entry.text)} characters; "
                f"pass \"{entry.key}\" as an argument to use it.{where}] "
                f"Preview: {entry.preview()}")

    def substitute(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Replace argument values that are exactly a memory key (also inside lists/dicts)."""

        def swap(value: Any) -> Any:
            if isinstance(value, str):
                key = value.strip()
                if key.startswith("$"):
                    key = key.lstrip("${").rstrip("}")
                if key in self.entries:
                    return self.entries[key].value
                head, _, path = key.partition(".")
                if path and head in self.entries:
                    found = value_at(self.entries[head].value, path.split("."))
                    return value if found is MISSING else found
                return value
            if isinstance(value, list):
                return [swap(v) for v in value]
            if isinstance(value, dict):
                return {k: swap(v) for k, v in value.items()}
            return value

        return {k: swap(v) for k, v in arguments.items()}

    def __len__(self) -> int:
        return len(self.entries)


def _fields(value: Any) -> str:
    """The fields of a stored value, for the model: ``items[].{product_id, name}, total``."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return "[]." + "{" + ", ".join(list(value[0])[:12]) + "}"
    if not isinstance(value, dict):
        return ""
    parts = []
    for name, inner in list(value.items())[:12]:
        if isinstance(inner, list) and inner and isinstance(inner[0], dict):
            parts.append(f"{name}[].{{{', '.join(list(inner[0])[:8])}}}")
        else:
            parts.append(name)
    return ", ".join(parts)
