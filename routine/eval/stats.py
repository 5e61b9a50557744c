"""Statistics of an evaluation: rates with Wilson intervals, means, paired gains.

Wilson intervals and McNemar's exact test come from statsmodels; the paired
difference's interval is the Wald interval of a paired difference of proportions.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict

__all__ = ["Figure", "Rate", "Mean", "Gain", "wilson", "rate", "mean", "paired_gain"]


class Figure(BaseModel):
    """A record of figures; NaN (no samples) survives the JSON round trip."""

    model_config = ConfigDict(ser_json_inf_nan="constants")


class Rate(Figure):
    """k of n, with a 95% Wilson interval."""

    n: int
    k: int
    rate: float
    ci95: tuple[float, float]


class Mean(Figure):
    """The mean of a per-sample score in [0, 1], with a normal-approximation 95% interval."""

    n: int
    mean: float
    ci95: tuple[float, float]


class Gain(Figure):
    """How much a condition beats the baseline on the same samples, in points of rate."""

    n: int
    won: int = 0
    lost: int = 0
    gain: float
    ci95: tuple[float, float]
    p: float


def wilson(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The Wilson score interval of a proportion (statsmodels), always holding the rate."""
    if n == 0:
        return (math.nan, math.nan)
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(successes, n, alpha=alpha, method="wilson")
    p = successes / n  # rounding can put p a hair outside (0/11, 6/6)
    return (min(p, max(0.0, float(lo))), max(p, min(1.0, float(hi))))


def rate(items: list[bool]) -> Rate:
    k, n = sum(items), len(items)
    return Rate(n=n, k=k, rate=k / n if n else math.nan, ci95=wilson(k, n))


def mean(values: list[float], z: float = 1.96,
         bounds: tuple[float, float] = (0.0, 1.0)) -> Mean:
    """The mean and its normal 95% interval, kept within ``bounds`` (a score's 0..1; counts
    per task pass ``(0, math.inf)``)."""
    n = len(values)
    if n == 0:
        return Mean(n=0, mean=math.nan, ci95=(math.nan, math.nan))
    average = sum(values) / n
    sd = math.sqrt(sum((v - average) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = z * sd / math.sqrt(n)
    return Mean(n=n, mean=average,
                ci95=(max(bounds[0], average - half), min(bounds[1], average + half)))


def paired_gain(base: list[bool], other: list[bool], z: float = 1.96) -> Gain:
    """How much ``other`` beats ``base`` on the same samples (paired, in points of rate).

    The 95% interval is the Wald interval of a paired difference of proportions; ``p`` is
    the exact two-sided McNemar test on the discordant pairs (statsmodels)."""
    if len(base) != len(other):
        raise ValueError("paired_gain needs the same samples under both conditions")
    n = len(base)
    if n == 0:
        return Gain(n=0, gain=math.nan, ci95=(math.nan, math.nan), p=math.nan)
    won = sum(1 for a, b in zip(base, other, strict=True) if b and not a)
    lost = sum(1 for a, b in zip(base, other, strict=True) if a and not b)
    both = sum(1 for a, b in zip(base, other, strict=True) if a and b)
    gain = (won - lost) / n
    half = z * math.sqrt(max(0.0, won + lost - (won - lost) ** 2 / n)) / n
    p = 1.0
    if won + lost:
        from statsmodels.stats.contingency_tables import mcnemar

        p = min(1.0, float(mcnemar([[both, lost], [won, n - both - won - lost]],
                                   exact=True).pvalue))
    return Gain(n=n, won=won, lost=lost, gain=gain,
                ci95=(max(-1.0, gain - half), min(1.0, gain + half)), p=p)
