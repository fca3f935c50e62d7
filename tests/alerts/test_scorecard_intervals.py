"""The scorecard's intervals (alerts/intervals.py), estimators (alerts/estimates.py) and trend test, pure."""

from __future__ import annotations

import math
import random

import pytest

from alerts.estimates import ESTIMATORS
from alerts.intervals import Estimate, difference, poisson, ratio, wilson, z_of
from alerts.scoring import score_interval, trend

Z = z_of(0.95)


def test_wilson_matches_the_textbook_values() -> None:
    e = wilson(0, 10, Z)  # no successes: still an upper bound (Wald would say [0, 0])
    assert e is not None and e.low == 0 and e.high == pytest.approx(0.2775, abs=1e-4)
    e = wilson(5, 10, Z)
    assert e is not None and (e.low, e.high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(3, 0, Z) is None


def test_poisson_score_interval() -> None:
    assert (poisson(0, Z).low, poisson(0, Z).high) == pytest.approx((0.0, Z * Z))
    e = poisson(100, Z)
    assert e.low == pytest.approx(82.2, abs=0.1) and e.high == pytest.approx(121.6, abs=0.1)


def test_mover_difference_and_ratio() -> None:
    exact = difference(Estimate.exact(5.0), Estimate.exact(3.0))
    assert (exact.value, exact.low, exact.high) == (2.0, 2.0, 2.0)
    d = difference(Estimate(10, 7, 13), Estimate(4, 0, 8))  # half-widths 3 and 4 add in squares: 5
    assert (d.low, d.high) == pytest.approx((1.0, 11.0))
    r = ratio(Estimate(2.0, 1.0, 4.0), Estimate(1.0, 1.0, 1.0))
    assert r is not None and (r.value, r.low, r.high) == pytest.approx((2.0, 1.0, 4.0))
    assert ratio(Estimate(1, 0.5, 2), Estimate(0, 0, 1)) is None  # nothing to compare with
    zero = ratio(Estimate(0, 0, 3), Estimate(2, 1, 3))
    assert zero is not None and (zero.value, zero.low, zero.high) == (0.0, 0.0, 3.0)


def test_score_interval_maps_the_comparison_monotonically() -> None:
    # rise: ratio 2 (CI 1..4) with bad = 3 -> score 50, its CI 0 (ratio 4) .. 100 (ratio 1)
    s = score_interval("rise", Estimate(2.0, 1.0, 4.0), Estimate.exact(1.0), 3.0)
    assert s is not None and (s.value, s.low, s.high) == pytest.approx((50.0, 0.0, 100.0))
    # slo: p95 1.5 s (1.4..1.6) against a 1 s SLO with bad = 2 -> 50 (40..60)
    s = score_interval("slo", Estimate(1500, 1400, 1600), Estimate.exact(1000), 2.0)
    assert s is not None and (s.value, s.low, s.high) == pytest.approx((50.0, 40.0, 60.0))


class _W:
    def __init__(self, days: int, **totals: float) -> None:
        self._d, self._t = days, totals

    def total(self, metric: str) -> float:
        return self._t.get(metric, 0.0)

    def mean(self, metric: str, weight: str | None = None) -> float | None:
        return self._t.get(metric)

    def days(self) -> int:
        return self._d


def test_estimators_from_counts() -> None:
    nps = ESTIMATORS["nps"].estimate(_W(7, nps_answers=3, nps_promoters=3, nps_detractors=0), Z)
    assert nps is not None and nps.value == 100 and nps.low < 20  # three alike answers still get a width
    csat = ESTIMATORS["csat"].estimate(_W(7, csat_answers=100, csat_points=420), Z)
    # the largest variance a 1-5 mean of 4.2 allows (Bhatia-Davis, ~1.6 sd): +-0.32 at 100 answers
    assert csat is not None and csat.value == 4.2 and (csat.low, csat.high) == pytest.approx((3.88, 4.52), abs=0.01)
    # with the squared scores (raw events) the answers' own spread, here sd 0.9: about +-0.18
    csat = ESTIMATORS["csat"].estimate(_W(7, csat_answers=100, csat_points=420, csat_squares=1844.2), Z)
    assert csat is not None and (csat.low, csat.high) == pytest.approx((4.02, 4.38), abs=0.005)
    dau = ESTIMATORS["dau"].estimate(_W(7, dau=700), Z)
    assert dau is not None and dau.value == 100 and 92 < dau.low < dau.high < 108
    p95 = ESTIMATORS["latency_p95_ms"].estimate(_W(7, requests=400, latency_p95_ms=900, latency_p99_ms=1400), Z)
    assert p95 is not None and p95.low < 900 < p95.high
    assert ESTIMATORS["nps"].estimate(_W(7), Z) is None  # no answers: no estimate, never a crash


def test_trend_test_is_calibrated_on_flat_noise_and_sees_a_fall() -> None:
    rng = random.Random(3)
    falling = [(float(i), 90 - 3 * i + rng.gauss(0, 3)) for i in range(14)]
    t = trend(falling)
    assert t is not None and t.slope == pytest.approx(-3, abs=0.5) and t.p < 0.001
    hits = 0
    for _ in range(400):
        flat = [(float(i), 80 + rng.gauss(0, 5)) for i in range(14)]
        t = trend(flat)
        hits += t is not None and t.p < 0.05
    assert hits / 400 == pytest.approx(0.05, abs=0.03)
    assert trend([(0.0, 1.0), (1.0, 2.0)]) is None and math.isfinite(Z)


def test_trend_test_on_moving_means_holds_its_level() -> None:
    """Scores of week-long trailing windows share days; a flat series of them says "falling" at about alpha.

    Scaling the ordinary standard error by the window length alone said so on
    2.8% of these series at a nominal 1%: a line fitted to a moving mean absorbs
    much of its slow noise, so the residuals understate it.
    """
    rng = random.Random(11)
    runs, hits = 3000, 0
    for _ in range(runs):
        days = [rng.gauss(0, 1) for _ in range(20)]
        scores = [(float(i), sum(days[i : i + 7]) / 7) for i in range(14)]
        t = trend(scores, overlap=7)
        hits += t is not None and t.p < 0.01
    assert hits / runs < 0.018  # binomial sd at 1% and 3,000 runs: 0.18 points
    gappy = [(float(i), sum(days[i : i + 7]) / 7) for i in (0, 1, 2, 4, 5, 8, 9, 10, 12, 13)]
    t = trend(gappy, overlap=7)
    assert t is not None and math.isfinite(t.se) and t.se > 0
