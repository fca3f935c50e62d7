"""How long a release's verdict moves: until the next arrival, for a week at most (issue 15).

The judge's tests are always-valid, so looking longer costs no false-alarm
guarantee; a bake that stopped at 72 h left a crash x3 at 240 sessions a day
a ticket for good, although two more days of the same crashes reach the bar.
The next arrival (a successor, a hotfix, a rollback) ends the bake: from then
on the question is the newcomer's.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from alerts.regression import RegressionConfig, Verdict, first_severe_look, judge_arrival
from alerts.traffic import Counts, ProductTraffic, arrivals

NEW = 8 * 24  # 1.0 serves alone for eight days, then 2.0 serves everyone
HOURS = NEW + 8 * 24


def _traffic(next_at: int | None = None) -> ProductTraffic:
    """10 sessions an hour. 1.0 crashes once every 10 hours (1%), 2.0 once every 3 hours (3.3%); from
    ``next_at`` on, 3.0 serves everyone and crashes like 1.0."""
    h = np.arange(HOURS)
    end = HOURS if next_at is None else next_at
    serving = {"1.0": h < NEW, "2.0": (h >= NEW) & (h < end), "3.0": h >= end}
    crashes = {"1.0": h % 10 == 0, "2.0": (h - NEW) % 3 == 0, "3.0": h % 10 == 0}
    zero = np.zeros(HOURS, dtype=np.int64)

    def counts(sessions: np.ndarray, crashed: np.ndarray) -> Counts:
        return Counts.of({"sessions": sessions, "crashed": crashed, "requests": zero, "failed": zero},
                         np.zeros((HOURS, 4), dtype=np.int64))  # fmt: skip

    per = {v: (np.where(on, 10, 0), np.where(on, crashes[v], 0).astype(np.int64)) for v, on in serving.items()}
    versions = {v: counts(*sc) for v, sc in per.items() if sc[0].any()}
    total = counts(sum(s for s, _ in per.values()), sum(c for _, c in per.values()))
    return ProductTraffic("p", datetime(2026, 1, 1, tzinfo=UTC), HOURS, 0, versions, total)


def _crash(traffic: ProductTraffic, look_h: int, cfg: RegressionConfig | None = None) -> Verdict:
    (arrival,) = [a for a in arrivals(traffic) if a.version == "2.0"]
    verdicts = judge_arrival(traffic, arrival, NEW + look_h, cfg or RegressionConfig())
    return {v.signal: v for v in verdicts}["crash_rate"]


def test_a_slow_regression_pages_after_three_days() -> None:
    traffic = _traffic()
    at_72 = _crash(traffic, 72)  # 24 crashes in 720 sessions against 1.0's 17 in 1,680: worse, not yet x1.3
    assert (at_72.verdict, at_72.severe, at_72.candidate_volume) == ("regression", False, 720)
    late = _crash(traffic, 140)
    assert (late.verdict, late.severe, late.bake_s) == ("regression", True, 140 * 3600)
    (arrival,) = [a for a in arrivals(traffic) if a.version == "2.0"]
    first = first_severe_look(traffic, arrival, HOURS, RegressionConfig())
    assert first is not None and NEW + 72 < first <= NEW + 140
    # The bake of three days this replaces froze the verdict at 72 h: a ticket for good.
    frozen = _crash(traffic, 140, RegressionConfig(max_bake_s=72 * 3600))
    assert (frozen.severe, frozen.bake_s) == (False, 72 * 3600)


def test_the_next_arrival_ends_the_bake() -> None:
    traffic = _traffic(next_at=NEW + 96)
    (arrival,) = [a for a in arrivals(traffic) if a.version == "2.0"]
    assert arrival.superseded == NEW + 96
    crash = _crash(traffic, 160)  # 2.0 no longer serves: its verdict is the one at 3.0's arrival
    assert (crash.severe, crash.bake_s, crash.candidate_volume) == (False, 96 * 3600, 960)
    assert crash.details["bake_ended_by_next_arrival"] == traffic.at(NEW + 96).isoformat()
    assert crash.sentence().endswith(f"(final: the next version arrived {traffic.at(NEW + 96):%Y-%m-%d %H:%M} UTC)")
    # Without a successor the same look reads 160 hours of 2.0 (and its bar is reached by then).
    assert "bake_ended_by_next_arrival" not in _crash(_traffic(), 160).details


def test_the_bake_stops_at_a_week() -> None:
    assert RegressionConfig().max_bake_s == RegressionConfig().lookback_s == 7 * 86_400
    assert _crash(_traffic(), 8 * 24 - 1).bake_s == 7 * 86_400  # a look a day later reads the same week


def test_a_verdict_says_until_when_it_moves() -> None:
    traffic = _traffic()
    early, late = _crash(traffic, 72), _crash(traffic, 8 * 24 - 1)
    week_on = traffic.at(NEW + 7 * 24).isoformat()
    assert (early.details["moves_until"], early.details["final"]) == (week_on, False)
    assert (late.details["moves_until"], late.details["final"]) == (week_on, True)
    assert "final" not in early.sentence()
    assert late.sentence().endswith(f"(final since {traffic.at(NEW + 7 * 24):%Y-%m-%d %H:%M} UTC)")
    # Latency before/after compares the first day with the day before: final once that day is over.
    (arrival,) = [a for a in arrivals(traffic) if a.version == "2.0"]
    latency = {v.signal: v for v in judge_arrival(traffic, arrival, NEW + 30, RegressionConfig())}["latency"]
    assert (latency.details["moves_until"], latency.details["final"]) == (traffic.at(NEW + 24).isoformat(), True)
    # The next arrival ends it sooner, and the sentence names that arrival instead.
    ended = _crash(_traffic(next_at=NEW + 96), 160)
    assert (ended.details["moves_until"], ended.details["final"]) == (traffic.at(NEW + 96).isoformat(), True)
    assert "final since" not in ended.sentence()
