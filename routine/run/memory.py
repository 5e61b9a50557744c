"""Variable memory (the paper's): long tool results are kept under a key.

The model sees the key and a short preview, passes the key as an argument, and
the executor swaps the stored value in before the tool runs. This saves
context and avoids copy errors. Step outputs named in the routine (``output:``)
are kept under that name too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

    def shown(self, entry: MemoryEntry) -> str:
        """What the model is shown instead of a long result."""
        return (f"[stored in variable memory as {entry.key!r}: {len(entry.text)} characters; "
                f"pass \"{entry.key}\" as an argument to use it] Preview: {entry.preview()}")

    def substitute(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Replace argument values that are exactly a memory key (also inside lists/dicts)."""

        def swap(value: Any) -> Any:
            if isinstance(value, str):
                key = value.strip()
                if key.startswith("$"):
                    key = key.lstrip("${").rstrip("}")
                return self.entries[key].value if key in self.entries else value
            if isinstance(value, list):
                return [swap(v) for v in value]
            if isinstance(value, dict):
                return {k: swap(v) for k, v in value.items()}
            return value

        return {k: swap(v) for k, v in arguments.items()}

    def __len__(self) -> int:
        return len(self.entries)
