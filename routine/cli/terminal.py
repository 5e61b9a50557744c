"""Text from a model, a tool or a file, made safe to print on a terminal (the run's
terminal approver prints with the same function: :mod:`routine.run.printable`)."""

from __future__ import annotations

from ..run.printable import shown

__all__ = ["shown"]
