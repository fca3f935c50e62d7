"""The scorecard's pure parts (alerts/scoring.py) and its policy file (alerts/scorecard_config.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from alerts import scorecard_config
from alerts.scorecard_config import Kind, ScorecardConfig, ScorecardConfigError
from alerts.scoring import signal_score, slope, weighted_mean


def test_signal_at_baseline_scores_100_and_at_bad_scores_0() -> None:
    assert signal_score("fall", 200.0, 200.0, 0.6) == 100.0
    assert signal_score("fall", 120.0, 200.0, 0.6) == 0.0
    assert signal_score("fall", 160.0, 200.0, 0.6) == pytest.approx(50.0)
    assert signal_score("rise", 20.0, 10.0, 3.0) == pytest.approx(50.0)
    assert signal_score("rise", 5.0, 10.0, 3.0) == 100.0  # better than baseline is clipped at 100
    assert signal_score("rise", 90.0, 10.0, 3.0) == 0.0  # far worse is clipped at 0


def test_failure_rise_scores_the_failure_share() -> None:
    # crash-free 0.97 against 0.99: crashes tripled -> 0 at bad = 3; doubled -> 50.
    assert signal_score("failure_rise", 0.97, 0.99, 3.0) == pytest.approx(0.0, abs=1e-9)
    assert signal_score("failure_rise", 0.98, 0.99, 3.0) == pytest.approx(50.0)


def test_drop_and_slo() -> None:
    assert signal_score("drop", 10.0, 30.0, 40.0) == pytest.approx(50.0)
    assert signal_score("drop", 40.0, 30.0, 40.0) == 100.0
    assert signal_score("slo", 800.0, 1000.0, 2.0) == 100.0
    assert signal_score("slo", 1500.0, 1000.0, 2.0) == pytest.approx(50.0)
    assert signal_score("slo", 2500.0, 1000.0, 2.0) == 0.0


@pytest.mark.parametrize(
    ("kind", "value", "baseline"),
    [
        ("fall", math.nan, 10.0),
        ("fall", 10.0, math.nan),
        ("rise", 3.0, 0.0),  # zero baseline: a ratio has no meaning
        ("failure_rise", 0.9, 1.0),  # no failures in the baseline
        ("drop", math.inf, 10.0),
        ("slo", 100.0, 0.0),
    ],
)
def test_unscorable_signals_have_no_score(kind: Kind, value: float, baseline: float) -> None:
    assert signal_score(kind, value, baseline, 0.5 if kind == "fall" else 3.0) is None


def test_weighted_mean_skips_nan_and_zero_volume() -> None:
    assert weighted_mean([(10.0, 1.0), (math.nan, 5.0), (30.0, 3.0), (99.0, 0.0), (None, 1.0)]) == 25.0
    assert weighted_mean([(math.nan, 1.0), (5.0, 0.0)]) is None
    assert weighted_mean([]) is None


def test_slope() -> None:
    assert slope([(0, 10.0), (1, 8.0), (2, 6.0)]) == pytest.approx(-2.0)
    assert slope([(0, 10.0)]) is None
    assert slope([(1, 10.0), (1, 5.0)]) is None


def test_shipped_policy_file_equals_the_defaults() -> None:
    assert scorecard_config.load_config() == ScorecardConfig()


def test_bad_policy_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "scorecard.yaml"
    bad.write_text(
        "floors: {business impact: 120, customer experience: 60, post-launch support: 60, performance: 60}\n"
    )
    with pytest.raises(ScorecardConfigError, match="scorecard.yaml.*floors"):
        scorecard_config.load_config(bad)
    bad.write_text("signals:\n  performance:\n    - {metric: no_such_metric, kind: rise, bad: 2}\n")
    with pytest.raises(ScorecardConfigError, match="no_such_metric"):
        scorecard_config.load_config(bad)
    bad.write_text("signals:\n  performance:\n    - {metric: error_rate, kind: rise, bad: 0.5}\n")
    with pytest.raises(ScorecardConfigError, match="bad > 1"):
        scorecard_config.load_config(bad)
