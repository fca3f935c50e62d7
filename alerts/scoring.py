"""The scorecard's arithmetic, pure: a signal's 0-100 score, weighted means and trends (no I/O).

:func:`signal_score` is the formula the module docstring of
:mod:`alerts.scorecard` states in words; :func:`weighted_mean` combines signals
into dimensions and dimensions into the composite; :func:`score_interval` maps a
signal's interval (:mod:`alerts.intervals`) to its score's; :func:`slope` and
:func:`trend` give a trend in points per day and its significance. Values that
cannot be scored (NaN, a zero baseline) give None, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

from alerts.intervals import Estimate, difference, ratio
from alerts.scorecard_config import Kind


def signal_score(kind: Kind, value: float, baseline: float, bad: float) -> float | None:
    """0-100 for one signal (see :mod:`alerts.scorecard`); None when it cannot be scored (NaN, no baseline)."""
    if not (finite(value) and finite(baseline)):
        return None
    scored = score_interval(kind, Estimate.exact(value), Estimate.exact(baseline), bad)
    return scored.value if scored is not None else None


def comparison(kind: Kind, value: Estimate, reference: Estimate) -> Estimate | None:
    """What a signal's score is a function of, with its interval: a ratio to the reference, or points dropped.

    ``reference`` is the SLO for ``slo`` signals (an exact number). None when
    there is nothing to compare with (a zero reference).
    """
    if kind == "drop":
        return difference(reference, value)
    if kind == "failure_rise":
        return ratio(value.complement(), reference.complement())
    if kind == "slo" and not reference.value > 0:
        return None
    return ratio(value, reference)


def score_of(kind: Kind, x: float, bad: float) -> float:
    """The score of a comparison ``x`` (a ratio, or points dropped for ``drop``): 100 at no change, 0 at ``bad``."""
    if kind == "drop":
        return _clip(100.0 * (1.0 - x / bad))
    return _linear(x, 1.0, bad)


def score_interval(kind: Kind, value: Estimate, reference: Estimate, bad: float) -> Estimate | None:
    """The score with its interval: scores are monotone in the comparison, so its bounds map to the score's."""
    if not all(finite(x) for x in (value.value, reference.value)):
        return None
    c = comparison(kind, value, reference)
    if c is None or not finite(c.value):
        return None
    a, b = score_of(kind, c.low, bad), score_of(kind, c.high, bad)
    return Estimate(score_of(kind, c.value, bad), min(a, b), max(a, b))


def _linear(x: float, good: float, bad: float) -> float:
    """100 at ``good`` (or better), 0 at ``bad`` (or worse), linear in between; works in both directions."""
    if math.isinf(x):
        return 0.0 if (x > 0) == (bad > good) else 100.0
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


@dataclass(frozen=True)
class Trend:
    slope: float  # points per day
    se: float  # its standard error, corrected for the overlap of trailing windows
    p: float  # one-sided p-value of "declining" (Student's t, n - 2 degrees of freedom)
    n: int


def trend(points: Sequence[tuple[float, float]], overlap: int = 1) -> Trend | None:
    """Slope of daily scores, its standard error and the one-sided p-value of a decline.

    The scores are of trailing windows of ``overlap`` days, so neighbours
    share days: two scores ``h`` days apart share ``overlap - h`` of them, and
    under "a moving mean of independent days" their covariance is proportional
    to ``max(0, overlap - h)``. The slope is fitted by generalized least
    squares with that covariance (whitened by its Cholesky factor, the points
    are independent), so the t-test on it has its level: on 14 scores of
    week-long windows of flat noise it says "falling" on 1.0% of series at
    alpha 1%. (Ordinary least squares with its standard error scaled by
    sqrt(overlap), as before, said so on 2.8%: a line fitted to a moving mean
    absorbs much of its slow noise, so the residuals understated it.) With
    ``overlap`` 1 it is ordinary least squares. None with fewer than four
    points or no variation in x.
    """
    n = len(points)
    if n < 4 or slope(points) is None:
        return None
    chol, one, x = _whitened(tuple(x for x, _ in points), max(overlap, 1))
    y = _forward(chol, [v for _, v in points])
    # Least squares of y on (one, x) without intercept, in the whitened coordinates.
    s11, s12, s22 = _dot(one, one), _dot(one, x), _dot(x, x)
    det = s11 * s22 - s12 * s12
    if det <= 1e-12 * s11 * s22:
        return None
    t1, t2 = _dot(one, y), _dot(x, y)
    a0, b = (s22 * t1 - s12 * t2) / det, (s11 * t2 - s12 * t1) / det
    resid = sum((yi - a0 * oi - b * xi) ** 2 for yi, oi, xi in zip(y, one, x, strict=True))
    se = math.sqrt(resid / (n - 2) * s11 / det)
    if se == 0:
        return Trend(b, 0.0, 0.0 if b < 0 else 1.0, n)
    return Trend(b, se, _t_sf(-b / se, n - 2), n)


@lru_cache(maxsize=256)
def _whitened(xs: tuple[float, ...], k: int) -> tuple[list[list[float]], list[float], list[float]]:
    """The Cholesky factor of the moving mean's covariance at ``xs``, and the constant and ``xs`` whitened by it."""
    chol = _cholesky([[max(0.0, k - abs(a - b)) / k for b in xs] for a in xs])
    return chol, _forward(chol, [1.0] * len(xs)), _forward(chol, xs)


def _cholesky(a: list[list[float]]) -> list[list[float]]:
    """Lower-triangular L with L L' = a, for a small symmetric positive-definite matrix."""
    n = len(a)
    low = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            rest = a[i][j] - sum(low[i][t] * low[j][t] for t in range(j))
            low[i][j] = math.sqrt(max(rest, 1e-12)) if i == j else rest / low[j][j]
    return low


def _forward(low: list[list[float]], b: Sequence[float]) -> list[float]:
    """Solves L z = b for lower-triangular L."""
    z: list[float] = []
    for i, row in enumerate(low):
        z.append((b[i] - sum(row[t] * z[t] for t in range(i))) / row[i])
    return z


def _dot(u: Sequence[float], v: Sequence[float]) -> float:
    return sum(a * b for a, b in zip(u, v, strict=True))


def _t_sf(t: float, df: int) -> float:
    """Upper-tail probability of Student's t with ``df`` degrees of freedom (Fisher's normal approximation:
    z = t (1 - 1/(4 df)) / sqrt(1 + t^2 / (2 df)), within a few percent of the exact tail for df >= 5)."""
    df = max(df, 1)
    z = t * (1 - 1 / (4 * df)) / math.sqrt(1 + t * t / (2 * df))
    return 1 - NormalDist().cdf(z)
