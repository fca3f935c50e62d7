"""The scorecard's arithmetic, pure: a signal's 0-100 score, weighted means and trends (no I/O).

:func:`signal_score` is the formula the module docstring of
:mod:`alerts.scorecard` states in words; :func:`weighted_mean` combines signals
into dimensions and dimensions into the composite; :func:`slope` is a trend in
points per day. Values that cannot be scored (NaN, a zero baseline) give None,
never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from alerts.scorecard_config import Kind


def signal_score(kind: Kind, value: float, baseline: float, bad: float) -> float | None:
    """0-100 for one signal (see :mod:`alerts.scorecard`); None when it cannot be scored (NaN, no baseline)."""
    if not finite(value):
        return None
    if kind == "slo":  # ``baseline`` is the SLO here
        if not finite(baseline) or baseline <= 0:
            return None
        return _linear(value / baseline, 1.0, bad)
    if not finite(baseline):
        return None
    if kind == "drop":
        return _clip(100.0 * (1.0 - (baseline - value) / bad))
    if kind == "failure_rise":
        value, baseline = 1.0 - value, 1.0 - baseline
    if baseline <= 0:  # nothing to compare a ratio with: no score rather than infinity
        return None
    return _linear(value / baseline, 1.0, bad)


def _linear(x: float, good: float, bad: float) -> float:
    """100 at ``good`` (or better), 0 at ``bad`` (or worse), linear in between; works in both directions."""
    return _clip(100.0 * (bad - x) / (bad - good))


def _clip(x: float) -> float:
    return min(100.0, max(0.0, x))


def finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def weighted_mean(pairs: Iterable[tuple[float | None, float]]) -> float | None:
    """Mean of the finite values weighted by their positive weights; None when there is none."""
    num = den = 0.0
    for value, weight in pairs:
        if finite(value) and finite(weight) and weight > 0:
            num += value * weight  # type: ignore[operator]
            den += weight
    return num / den if den > 0 else None


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x (points per day); None with fewer than two distinct x."""
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def rounded(x: float | None, digits: int = 4) -> float | None:
    """``x`` rounded for people and JSON; None when it is not a finite number."""
    return round(x, digits) if finite(x) else None  # type: ignore[arg-type]
