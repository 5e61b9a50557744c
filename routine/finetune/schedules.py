"""Learning-rate schedules for budgeted LoRA runs, as multipliers of the peak rate.

A multiplier ``m(p)`` of the progress ``p = t / T`` after warm-up (``t`` optimizer
steps of ``T``); warm-up is linear from 0. Besides transformers' built-ins:

* ``rex`` — REX (arXiv 2107.04197): ``(1 - p) / (1 - p / 2)``;
* ``uba`` — UBA (arXiv 2505.24452) in a public re-implementation's form,
  ``2c / (2φ + (2 - φ) c)`` with ``c = 1 + cos(πp)``; φ = 2 is cosine. Experimental;
* ``refined`` — linear decay refined from a pilot run's gradient norms (arXiv
  2310.07831): weights ``w_t = g_t^-2`` (smoothed), ``s_t = w_t · Σ_{u>t} w_u``,
  normalised to a maximum of 1; it makes its own warm-up and final annealing.

Pure Python: :func:`multiplier` is what the trainer's ``LambdaLR`` calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

__all__ = ["SCHEDULES", "multiplier", "refined_from_grad_norms"]

SCHEDULES = ("linear", "cosine", "constant", "rex", "uba", "refined")


def _rex(p: float) -> float:
    return (1 - p) / (1 - p / 2)


def _uba(phi: float) -> Callable[[float], float]:
    def m(p: float) -> float:
        c = 1 + math.cos(math.pi * p)
        denominator = 2 * phi + (2 - phi) * c
        return 2 * c / denominator if denominator else 0.0

    return m


def refined_from_grad_norms(grad_norms: Sequence[float], points: int = 1000) -> list[float]:
    """The refined schedule (as multipliers at ``points`` evenly spaced progress values)
    from a pilot run's per-step gradient norms: median-smoothed over ~10% of the run
    (reflect padding), ``w = g^-2``, ``s_t = w_t · Σ_{u>t} w_u``, normalised to max 1."""
    norms = [g for g in grad_norms if g > 0 and math.isfinite(g)]
    if len(norms) < 2:
        raise ValueError("the refined schedule needs the gradient norms of a pilot run "
                         "(at least 2 steps, logged with logging_steps=1)")
    # interpolate the pilot's norms onto `points` positions
    grid = []
    for i in range(points):
        x = i * (len(norms) - 1) / (points - 1)
        lo = int(math.floor(x))
        hi = min(lo + 1, len(norms) - 1)
        grid.append(norms[lo] + (norms[hi] - norms[lo]) * (x - lo))
    half = max(1, points // 20)  # a window of ~10% of the run
    padded = grid[half:0:-1] + grid + grid[-2:-half - 2:-1]
    smooth = [sorted(padded[i:i + 2 * half + 1])[half] for i in range(points)]
    weights = [1 / (g * g) for g in smooth]
    tail = 0.0
    shape = [0.0] * points
    for i in range(points - 1, -1, -1):
        shape[i] = weights[i] * tail
        tail += weights[i]
    top = max(shape) or 1.0
    return [s / top for s in shape]


def multiplier(name: str, *, phi: float = 1.0,
               refined: Sequence[float] | None = None) -> Callable[[float], float]:
    """The multiplier ``m(p)`` of a schedule by name (p in [0, 1])."""
    if name == "linear":
        return lambda p: 1 - p
    if name == "cosine":
        return lambda p: 0.5 * (1 + math.cos(math.pi * p))
    if name == "constant":
        return lambda p: 1.0
    if name == "rex":
        return _rex
    if name == "uba":
        return _uba(phi)
    if name == "refined":
        if not refined:
            raise ValueError("schedule 'refined' needs the pilot run's shape (refined_from_grad_norms)")
        shape = list(refined)

        def m(p: float) -> float:
            return shape[min(len(shape) - 1, int(p * (len(shape) - 1) + 0.5))]

        return m
    raise ValueError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
