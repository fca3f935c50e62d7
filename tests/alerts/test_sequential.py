"""The release judge's always-valid tests (alerts.sequential): known values, validity under repeated looks, bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alerts.sequential import TAU, p_value, rate_evidence, ratio_bounds, tail_evidence


def _brute_rate(x1: int, n1: float, x0: int, n0: float, rho0: float) -> float:
    """The same mixture by a fine numerical integral of the half-normal prior (the reference)."""
    t = np.linspace(1e-6, 8 * TAU, 200_001)
    w = np.exp(-0.5 * (t / TAU) ** 2)
    s = n1 / (n1 + n0)
    pi = s * rho0 * np.exp(t) / (s * rho0 * np.exp(t) + 1 - s)
    pi0 = s * rho0 / (s * rho0 + 1 - s)
    lr = np.exp(x1 * np.log(pi / pi0) + x0 * np.log((1 - pi) / (1 - pi0)))
    return float(math.log((lr * w).sum() / w.sum()))


@pytest.mark.parametrize("case", [(10, 100, 14, 1400, 1.0), (10, 100, 14, 1400, 1.5), (3, 25, 20, 1500, 1.0),
                                  (0, 100, 5, 100, 1.0), (40, 500, 2, 500, 2.0)])  # fmt: skip
def test_rate_evidence_matches_the_integral(case: tuple[int, int, int, int, float]) -> None:
    assert rate_evidence(*case) == pytest.approx(_brute_rate(*case), abs=0.05)


def test_degenerate_inputs_carry_no_evidence() -> None:
    assert rate_evidence(0, 0, 5, 100) == 0.0
    assert rate_evidence(5, 100, 0, 0) == 0.0
    assert rate_evidence(0, 100, 0, 100) == 0.0
    assert tail_evidence(0, 0, 0.05) == 0.0
    assert ratio_bounds(0, 100, 0, 100, 0.01) == (0.0, math.inf)
    assert p_value(0.0) == 1.0 and p_value(math.log(200)) == pytest.approx(0.005)


def test_more_events_more_evidence() -> None:
    ev = [rate_evidence(x, 100, 10, 1000) for x in range(0, 30, 3)]
    assert all(b > a for a, b in zip(ev[2:], ev[3:], strict=False))
    assert rate_evidence(20, 100, 10, 1000, 2.0) < rate_evidence(20, 100, 10, 1000, 1.0)
    assert tail_evidence(30, 100, 0.05) > tail_evidence(10, 100, 0.05)


@pytest.mark.parametrize("share", [0.5, 0.1])
def test_false_alarms_stay_under_alpha_at_every_look(share: float) -> None:
    """1,000 A/A streams, looked at after every 20 sessions for 2,000 sessions: few ever cross 1/alpha."""
    rng = np.random.default_rng(11)
    alpha, runs, looks, step, rate = 0.05, 1_000, 100, 20, 0.02
    crossed = 0
    for _ in range(runs):
        n1 = rng.binomial(step, share, size=looks).cumsum()
        n0 = step * np.arange(1, looks + 1) - n1
        x1 = rng.binomial(np.diff(n1, prepend=0), rate).cumsum()
        x0 = rng.binomial(np.diff(n0, prepend=0), rate).cumsum()
        if any(rate_evidence(int(a), int(b), int(c), int(d)) >= math.log(1 / alpha)
               for a, b, c, d in zip(x1, n1, x0, n0, strict=True)):  # fmt: skip
            crossed += 1
    assert crossed / runs <= alpha, crossed / runs


def test_bounds_cover_the_true_ratio() -> None:
    rng = np.random.default_rng(3)
    misses = 0
    for _ in range(400):
        n1, n0, r0, rho = 300, 3000, 0.01, 4.0
        x1, x0 = rng.binomial(n1, r0 * rho), rng.binomial(n0, r0)
        lo, hi = ratio_bounds(int(x1), n1, int(x0), n0, 0.05)
        misses += not lo <= rho <= hi
    assert misses / 400 <= 0.05


def test_bounds_of_a_clear_regression() -> None:
    lo, hi = ratio_bounds(60, 1000, 20, 2000, 0.01)  # 6% against 1%: x6
    assert 2.2 < lo < 6 < hi < 20


def test_strata_compare_hour_by_hour() -> None:
    """A new version whose share grows into a bad hour for every version: its totals look worse, its hours do not.

    Three hours at 400 sessions each; the new version serves 5%, 10%, then 50%; the third hour is an incident
    (every version at 20% against 1%). Both versions have the same rate in every hour."""
    n1, n0 = np.array([20.0, 40.0, 200.0]), np.array([380.0, 360.0, 200.0])
    rate = np.array([0.01, 0.01, 0.20])
    x1, x0 = n1 * rate, n0 * rate  # expected counts: exactly equal rates
    assert rate_evidence(x1.sum(), n1.sum(), x0.sum(), n0.sum()) > math.log(100)  # totals: "x3 worse"
    assert rate_evidence(x1, n1, x0, n0) < 0  # hour by hour: no difference
    # One stratum is the totals; strata without exposure on a side or without events carry nothing.
    assert rate_evidence([10], [100], [14], [1400]) == rate_evidence(10, 100, 14, 1400)
    assert rate_evidence([10, 3, 0], [100, 5, 7], [14, 0, 0], [1400, 0, 9]) == rate_evidence(10, 100, 14, 1400)
    lo, hi = ratio_bounds(x1, n1, x0, n0, 0.01)
    assert lo < 1 < hi
