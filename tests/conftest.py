"""Shared fixtures. Unit tests may not reach a real model (scripted doubles only);
tests marked ``embedded`` run the real embedded model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from routine.models.base import set_model_requests_allowed
from routine.tools.core import ToolRegistry

ROOT = Path(__file__).resolve().parent.parent
ROUTINES = ROOT / "routines"


@pytest.fixture(autouse=True)
def _no_real_models(request: pytest.FixtureRequest) -> Iterator[None]:
    allowed = request.node.get_closest_marker("embedded") is not None
    set_model_requests_allowed(allowed)
    yield
    set_model_requests_allowed(True)


@pytest.fixture
def hr_tools() -> ToolRegistry:
    from routine_tools.hr import toolset

    return ToolRegistry(toolset)
