"""Confidence intervals for the scorecard's signals, pure (no I/O, no SciPy).

Each function returns an :class:`Estimate` - a point value with a two-sided
interval at the normal quantile ``z`` (:func:`z_of` turns a level such as 0.95
into it):

* :func:`wilson` - a proportion from ``k`` of ``n`` (Wilson's score interval:
  honest at 0 or ``n`` successes and at small ``n``, where the Wald interval
  collapses to a point);
* :func:`poisson` - a count's mean (the score interval of a Poisson mean,
  Wilson-style: the roots of ``(k - mu)^2 = z^2 mu``; never below 0, and
  ``[0, z^2]`` at ``k = 0``);
* :func:`normal` - a mean with a standard error, clipped to the metric's range;
* :func:`ratio` and :func:`difference` - two independent estimates compared
  by MOVER (Zou & Donner, 2008: "method of variance estimates recovery"),
  which recovers the comparison's interval from the two intervals - Newcombe's
  hybrid score interval for a difference of proportions is its special case;
  ratios are differences of logs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    @staticmethod
    def exact(x: float) -> Estimate:
        """A known number (an SLO): an interval of width zero."""
        return Estimate(x, x, x)

    def scaled(self, factor: float) -> Estimate:
        lo, hi = sorted((self.low * factor, self.high * factor))
        return Estimate(self.value * factor, lo, hi)

    def complement(self) -> Estimate:
        """``1 - x``: a success share's failure share, bounds swapped."""
        return Estimate(1.0 - self.value, 1.0 - self.high, 1.0 - self.low)


def z_of(level: float) -> float:
    """The normal quantile of a two-sided ``level`` (0.95 -> 1.96)."""
    if not 0 < level < 1:
        raise ValueError("level must be within (0, 1)")
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(k: float, n: float, z: float) -> Estimate | None:
    """Wilson's score interval for the proportion ``k / n``; None without trials."""
    if not n > 0:
        return None
    k = min(max(k, 0.0), n)
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    low = 0.0 if k == 0 else max(0.0, centre - half)  # exact ends where rounding would leave a crumb
    high = 1.0 if k == n else min(1.0, centre + half)
    return Estimate(p, low, high)


def poisson(k: float, z: float) -> Estimate:
    """The score interval of a Poisson mean from one count ``k``."""
    k = max(k, 0.0)
    z2 = z * z
    half = z * math.sqrt(k + z2 / 4)
    return Estimate(k, max(0.0, k + z2 / 2 - half), k + z2 / 2 + half)


def normal(mean: float, se: float, z: float, low: float = -math.inf, high: float = math.inf) -> Estimate:
    """``mean +- z se``, clipped to the metric's range ``[low, high]``."""
    return Estimate(mean, max(low, mean - z * se), min(high, mean + z * se))


def difference(a: Estimate, b: Estimate) -> Estimate:
    """``a - b`` with its MOVER interval (a and b independent)."""
    d = a.value - b.value
    lo = d - math.hypot(a.value - a.low, b.high - b.value)
    hi = d + math.hypot(a.high - a.value, b.value - b.low)
    return Estimate(d, lo, hi)


def ratio(a: Estimate, b: Estimate) -> Estimate | None:
    """``a / b`` (both >= 0) with its MOVER interval on the log scale; None when ``b`` is 0 (no ratio)."""
    if not b.value > 0 or a.value < 0:
        return None
    r = a.value / b.value
    if a.value == 0:  # no log: the interval of a zero numerator over the denominator's worst case
        return Estimate(0.0, 0.0, a.high / b.low if b.low > 0 else math.inf)
    la, lb = math.log(a.value), math.log(b.value)
    if a.low > 0 and b.high > 0:
        lo = math.exp(la - lb - math.hypot(la - math.log(a.low), math.log(b.high) - lb))
    else:
        lo = 0.0
    hi = math.exp(la - lb + math.hypot(math.log(a.high) - la, lb - math.log(b.low))) if b.low > 0 else math.inf
    return Estimate(r, min(lo, r), max(hi, r))
