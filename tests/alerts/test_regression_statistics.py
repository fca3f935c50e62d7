"""The release judge's pure statistics: the two-proportion z-test and the verdict rules."""

from __future__ import annotations

import math

import pytest

from alerts.regression import RegressionConfig, judge, ratio, two_proportion_z


def test_two_proportion_z_known_values() -> None:
    # 30/100 vs 20/100: pooled 0.25, se = sqrt(0.25 * 0.75 * 0.02) = 0.0612372, z = 1.632993, p = 0.102470
    z, p = two_proportion_z(30, 100, 20, 100)
    assert z == pytest.approx(1.632993, rel=1e-6)
    assert p == pytest.approx(0.102470, rel=1e-4)
    # 75/1000 vs 15/1000: pooled 0.045, se = sqrt(0.045 * 0.955 * 0.002) = 0.0092709, z = 6.47185, p = 9.68e-11
    z, p = two_proportion_z(75, 1000, 15, 1000)
    assert z == pytest.approx(6.47185, rel=1e-5)
    assert p == pytest.approx(9.681e-11, rel=1e-3)
    z2, p2 = two_proportion_z(15, 1000, 75, 1000)
    assert z2 == pytest.approx(-z) and p2 == pytest.approx(p)


def test_two_proportion_z_degenerate_inputs() -> None:
    assert two_proportion_z(0, 500, 0, 500) == (0.0, 1.0)
    assert two_proportion_z(0, 0, 3, 100) == (0.0, 1.0)
    assert two_proportion_z(100, 100, 50, 50) == (0.0, 1.0)


def test_ratio() -> None:
    assert ratio(2.0, 1.0) == 2.0
    assert ratio(0.0, 0.0) == 1.0
    assert ratio(1.0, 0.0) == math.inf
    assert math.isnan(ratio(math.nan, 1.0))


def test_judge_rates() -> None:
    cfg = RegressionConfig()
    assert judge(cfg, kind="rate", candidate=0.075, baseline=0.015, p_value=1e-9) == ("regression", True)
    # significant and doubled, but only +0.2 pp: a regression that does not page
    assert judge(cfg, kind="rate", candidate=0.004, baseline=0.002, p_value=1e-5) == ("regression", False)
    # large but not significant enough to page
    assert judge(cfg, kind="rate", candidate=0.075, baseline=0.015, p_value=0.005) == ("regression", False)
    assert judge(cfg, kind="rate", candidate=0.075, baseline=0.015, p_value=0.2) == ("no_change", False)
    # significant but under the effect floor
    assert judge(cfg, kind="rate", candidate=0.0105, baseline=0.0100, p_value=1e-6) == ("no_change", False)
    assert judge(cfg, kind="rate", candidate=0.005, baseline=0.015, p_value=1e-9) == ("improvement", False)
    assert judge(cfg, kind="rate", candidate=math.nan, baseline=0.015, p_value=1e-9) == ("no_change", False)


def test_judge_latency() -> None:
    cfg = RegressionConfig()
    assert judge(cfg, kind="latency", candidate=450.0, baseline=210.0, p_value=0.0) == ("regression", True)
    assert judge(cfg, kind="latency", candidate=250.0, baseline=210.0, p_value=0.0) == ("regression", False)
    assert judge(cfg, kind="latency", candidate=100.0, baseline=210.0, p_value=0.0) == ("improvement", False)
    assert judge(cfg, kind="latency", candidate=450.0, baseline=210.0, p_value=math.nan) == ("no_change", False)
