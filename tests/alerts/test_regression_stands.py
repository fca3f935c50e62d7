"""A severe release verdict stands once reached: the page does not resolve and fire again (issue 15).

The store holds two days of ``regression_and_decay`` ending at 17:00 UTC, the
hour at which the release judge flapped before: the bad release's latency
canary was severe at +3.5 h (ratio bound 1.21 to 23.4), not at +4.5 h (0.79
to ...), severe again at +7.5 h - so the page fired, resolved and fired
again. Two causes, two fixes: the judge looked at partial hours, which no later
look can make again (it now reads complete hours only), and a later look's
bound could dip back under the bar. The tests are sequential: the first look
that reaches the bar rejects, and a later look does not take that back - the
pure tests below fade the evidence on purpose.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from support.scenario_store import Scenario, close_scenario, open_scenario
from support.session_traffic import two_versions

from alerts.regression import (
    RegressionConfig,
    choose_sides,
    first_severe_look,
    judge_arrival,
    judge_sides,
    regression_samples,
    release_verdicts,
)
from alerts.traffic import ProductTraffic, arrivals


@pytest.fixture(scope="module")
def sc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    now = datetime.now(UTC)
    end = now.replace(hour=17, minute=0, second=0, microsecond=0)
    scenario = open_scenario(
        Path(tmp_path_factory.mktemp("stands")) / "store", days=2, users_per_product=150,
        end=end if end <= now else end - timedelta(days=1),
    )  # fmt: skip
    yield scenario
    close_scenario(scenario)


def test_the_bad_release_stays_severe_from_its_first_severe_look(sc: Scenario) -> None:
    product, version = sc.story["regressing_product"], sc.story["regressing_version"]
    released = datetime.fromisoformat(sc.story["regression_released_at"])
    seen = []
    now = released + timedelta(minutes=30)
    while now <= released + timedelta(hours=20):
        values = [s.value for s in regression_samples(sc.client, sc.database, now)
                  if (s.labels["product"], s.labels["version"]) == (product, version)]  # fmt: skip
        seen.append((now - released, values[0] if values else None))
        now += timedelta(minutes=30)
    first = next((i for i, (_, v) in enumerate(seen) if v == 1.0), None)
    assert first is not None, f"the bad release never paged: {seen}"
    assert all(v == 1.0 for _, v in seen[first:]), f"the page resolved after {seen[first][0]}: {seen}"


def test_a_standing_verdict_says_since_when(sc: Scenario) -> None:
    product, version = sc.story["regressing_product"], sc.story["regressing_version"]
    released = datetime.fromisoformat(sc.story["regression_released_at"])
    for hours in range(1, 21):
        verdicts = [v for v in release_verdicts(sc.client, sc.database, released + timedelta(hours=hours))
                    if (v.product, v.version) == (product, version) and v.severe]  # fmt: skip
        standing = [v for v in verdicts if "severe_since" in v.details]
        for v in standing:
            since = datetime.fromisoformat(v.details["severe_since"])
            assert released < since < released + timedelta(hours=hours)
            assert f"severe since {since:%Y-%m-%d %H:%M} UTC" in v.sentence()
            assert v.to_json()["severe_since"] == v.details["severe_since"]
    # The other releases in the span are healthy: standing verdicts add no page to them.
    at = released + timedelta(hours=20)
    others = [v for v in release_verdicts(sc.client, sc.database, at) if (v.product, v.version) != (product, version)]
    assert not any(v.severe for v in others), [v.to_json() for v in others if v.severe]


# ---------------------------------------------------------------------------------------------- the rule itself, pure

HOURS, NEW = 130, 48  # 1.0 serves hours [0, 48), 2.0 every hour after


def _traffic(spike: int) -> ProductTraffic:
    """100 sessions an hour; 1.0 crashes once an hour, 2.0 ``spike`` times in its first hour, then never."""
    zeros = np.zeros(HOURS, dtype=np.int64)
    old_s, new_s = zeros.copy(), zeros.copy()
    old_s[:NEW], new_s[NEW:] = 100, 100
    old_c, new_c = zeros.copy(), zeros.copy()
    old_c[:NEW], new_c[NEW] = 1, spike
    return two_versions((old_s, old_c), (new_s, new_c))


def test_a_verdict_severe_at_an_earlier_look_stands_when_the_evidence_fades() -> None:
    cfg = RegressionConfig()
    traffic = _traffic(spike=20)
    (arrival,) = [a for a in arrivals(traffic) if a.version == "2.0"]
    assert arrival.hour == NEW
    # 20 crashes in its first 100 sessions against 1%: severe at the first look; 20 in 6,000 by the last is not.
    assert judge_sides(choose_sides(traffic, arrival, NEW + 1, cfg), 0, cfg)["crash_rate"]["severe"]
    assert not judge_sides(choose_sides(traffic, arrival, HOURS, cfg), 0, cfg)["crash_rate"]["severe"]
    assert first_severe_look(traffic, arrival, HOURS, cfg) == NEW + 1
    crash = {v.signal: v for v in judge_arrival(traffic, arrival, HOURS, cfg)}["crash_rate"]
    assert (crash.verdict, crash.severe) == ("regression", True)
    assert crash.details["severe_since"] == traffic.at(NEW + 1).isoformat()
    assert crash.bounds[0] < cfg.severe_rate_ratio  # the bound shown is today's: it no longer says severe alone


def test_a_release_never_severe_has_no_standing_verdict() -> None:
    cfg = RegressionConfig()
    traffic = _traffic(spike=1)  # the same rate as its predecessor
    (arrival,) = [a for a in arrivals(traffic) if a.version == "2.0"]
    assert first_severe_look(traffic, arrival, HOURS, cfg) is None
    assert not any(v.severe or "severe_since" in v.details for v in judge_arrival(traffic, arrival, HOURS, cfg))
