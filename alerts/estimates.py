"""Each scorecard signal over a window of days: its value and interval, from the counts behind it (pure).

A signal's value over a window is computed from the window's summed counts,
never from a mean of daily rates, so a day weighs by its volume; its interval
(:mod:`alerts.intervals`) comes from the same counts, so thin data gives a wide
interval instead of a confident score:

=========================  ==================================================================
signal                     value and interval
=========================  ==================================================================
dau                        user-days / days; Poisson on the user-days
conversion_rate            conversions / sessions; Wilson
crash_free_sessions        1 - crashed / sessions; Wilson on the crashes
task_success_rate          successful / all feature uses; Wilson
error_rate                 failed / all requests; Wilson
nps                        100 (promoters - detractors) / answers; normal, the variance of an
                           answer scored +1 / 0 / -1 from its shares (one pseudo-answer per
                           class, so a few identical answers still get a width), within +-100
csat                       points / answers; normal, with the answers' variance from their sum
                           of squares (raw events) and the largest variance a 1-5 mean can
                           have (Bhatia-Davis: (m - 1)(5 - m), at a mean shrunk by one answer
                           of 3) as one pseudo-answer - or that bound alone without squares
tickets_per_1k_sessions    1000 tickets / sessions; Poisson on the tickets
time_to_resolve_h          tickets-resolved-weighted mean of daily means; a mean of n
                           exponential-like durations (coefficient of variation 1): value x
                           exp(+-z / sqrt(n))
latency_p95_ms             requests-weighted mean of daily p95s; the order-statistic interval
                           of a quantile (ranks 0.95 n +- z sqrt(0.0475 n)) mapped to ms by the
                           log-normal shape that the window's p95 and p99 imply
=========================  ==================================================================

A signal without data in the window (no answers, no requests) has no estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Protocol

from alerts.intervals import Estimate, normal, poisson, wilson


class Window(Protocol):
    """A window of days of one product: summed counts and weighted daily means."""

    def total(self, metric: str) -> float: ...

    def mean(self, metric: str, weight: str | None = None) -> float | None: ...

    def days(self) -> int: ...


@dataclass(frozen=True)
class Estimator:
    needs: tuple[str, ...]  # the catalog metrics it reads per day
    estimate: Callable[[Window, float], Estimate | None]


def _dau(w: Window, z: float) -> Estimate | None:
    days = w.days()
    if days == 0:
        return None
    return poisson(w.total("dau"), z).scaled(1.0 / days)


def _rate(num: str, den: str, *, failure: bool = False) -> Callable[[Window, float], Estimate | None]:
    def estimate(w: Window, z: float) -> Estimate | None:
        e = wilson(w.total(num), w.total(den), z)
        return e.complement() if failure and e is not None else e

    return estimate


def _conversion(w: Window, z: float) -> Estimate | None:
    sessions = w.total("sessions")
    conversions = w.total("conversions")
    if conversions > sessions > 0:  # several conversions per session: a count per session, not a share
        return poisson(conversions, z).scaled(1.0 / sessions)
    return wilson(conversions, sessions, z)


def _nps(w: Window, z: float) -> Estimate | None:
    n = w.total("nps_answers")
    if not n > 0:
        return None
    promoters, detractors = w.total("nps_promoters"), w.total("nps_detractors")
    p, d = (promoters + 1) / (n + 3), (detractors + 1) / (n + 3)
    var = p + d - (p - d) ** 2
    return normal(100 * (promoters - detractors) / n, 100 * math.sqrt(var / n), z, -100.0, 100.0)


def _csat(w: Window, z: float) -> Estimate | None:
    n = w.total("csat_answers")
    if not n > 0:
        return None
    points, squares = w.total("csat_points"), w.total("csat_squares")
    mean = points / n
    shrunk = (points + 3) / (n + 1)
    bound = (shrunk - 1) * (5 - shrunk)  # the largest variance a 1-5 mean can have (Bhatia-Davis)
    sample = (squares - n * mean * mean) / (n - 1) if n > 1 else -1.0
    # The answers' own variance when the squares are there for every answer (else sample < 0 or inconsistent),
    # with the bound as one pseudo-answer so that a few identical answers still get a width.
    var = ((n - 1) * sample + bound) / n if 0 <= sample <= 4 else bound
    return normal(mean, math.sqrt(max(var, 0.0) / n), z, 1.0, 5.0)


def _tickets(w: Window, z: float) -> Estimate | None:
    sessions = w.total("sessions")
    if not sessions > 0:
        return None
    return poisson(w.total("tickets_opened"), z).scaled(1000.0 / sessions)


def _time_to_resolve(w: Window, z: float) -> Estimate | None:
    n = w.total("tickets_resolved")
    value = w.mean("time_to_resolve_h", "tickets_resolved")
    if value is None or not n > 0:
        return None
    spread = math.exp(z / math.sqrt(n))
    return Estimate(value, value / spread, value * spread)


_Z95, _Z99 = NormalDist().inv_cdf(0.95), NormalDist().inv_cdf(0.99)


def _latency_p95(w: Window, z: float) -> Estimate | None:
    n = w.total("requests")
    p95 = w.mean("latency_p95_ms", "requests")
    if p95 is None or not n > 0 or p95 <= 0:
        return None
    p99 = w.mean("latency_p99_ms", "requests")
    # Without a p99 above the p95 there is no shape to map ranks to ms: a log-normal with sigma 1 stands in.
    sigma = 1.0 if p99 is None or p99 <= p95 else (math.log(p99) - math.log(p95)) / (_Z99 - _Z95)
    half = z * math.sqrt(0.95 * 0.05 / n)
    q_lo, q_hi = max(0.95 - half, 1e-6), min(0.95 + half, 1 - 1e-6)
    inv = NormalDist().inv_cdf
    return Estimate(p95, p95 * math.exp(sigma * (inv(q_lo) - _Z95)), p95 * math.exp(sigma * (inv(q_hi) - _Z95)))


ESTIMATORS: dict[str, Estimator] = {
    "dau": Estimator(("dau",), _dau),
    "conversion_rate": Estimator(("conversions", "sessions"), _conversion),
    "crash_free_sessions": Estimator(("crashed_sessions", "sessions"), _rate("crashed_sessions", "sessions",
                                                                              failure=True)),
    "task_success_rate": Estimator(("feature_successes_total", "feature_uses_total"),
                                   _rate("feature_successes_total", "feature_uses_total")),
    "error_rate": Estimator(("request_errors", "requests"), _rate("request_errors", "requests")),
    "nps": Estimator(("nps_answers", "nps_promoters", "nps_detractors"), _nps),
    "csat": Estimator(("csat_answers", "csat_points", "csat_squares"), _csat),
    "tickets_per_1k_sessions": Estimator(("tickets_opened", "sessions"), _tickets),
    "time_to_resolve_h": Estimator(("time_to_resolve_h", "tickets_resolved"), _time_to_resolve),
    "latency_p95_ms": Estimator(("latency_p95_ms", "latency_p99_ms", "requests"), _latency_p95),
}  # fmt: skip
