"""Release verdicts on a real chDB store with two weeks of ``regression_and_decay``: the bad release is caught.

``search`` ships 1.10.0 mid-span (about 5x the crash rate, 2x the latency); every other release is healthy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from support.scenario_store import Scenario, SharedStores, close_scenario, fixed_end

from alerts.regression import SIGNALS, Verdict, regression_samples, release_verdicts, store_verdicts

END = fixed_end()


@pytest.fixture(scope="module")
def sc(shared_stores: SharedStores) -> Iterator[Scenario]:
    scenario = shared_stores.scenario(scenario="regression_and_decay", users_per_product=150, end=END)
    yield scenario
    close_scenario(scenario)


def _released(sc: Scenario) -> datetime:
    return datetime.fromisoformat(sc.story["regression_released_at"])


def _of(verdicts: list[Verdict], product: str, version: str) -> dict[str, Verdict]:
    return {v.signal: v for v in verdicts if v.product == product and v.version == version}


def test_the_bad_release_is_severe_on_crash_rate_and_latency(sc: Scenario) -> None:
    product, version = sc.story["regressing_product"], sc.story["regressing_version"]
    now = _released(sc) + timedelta(days=3)
    verdicts = release_verdicts(sc.client, sc.database, now)
    bad = _of(verdicts, product, version)
    assert set(bad) == set(SIGNALS)
    assert all(v.baseline_version == sc.story["previous_version"] for v in bad.values())
    for signal in ("crash_rate", "latency"):
        v = bad[signal]
        assert (v.verdict, v.severe) == ("regression", True), v.to_json()
        assert v.p_value < 0.001
    assert bad["crash_rate"].candidate_value >= 2 * bad["crash_rate"].baseline_value
    assert bad["latency"].candidate_value >= 1.5 * bad["latency"].baseline_value
    assert bad["latency"].test == "msprt_tail_share" and bad["crash_rate"].test == "msprt_rate_ratio"
    # the new version served everyone by then: before/after against the week before, the predecessor named
    assert {v.comparison for v in bad.values()} == {"before/after"}
    assert bad["crash_rate"].bounds[0] >= 1.5, bad["crash_rate"].bounds
    assert "crash rate" in bad["crash_rate"].sentence() and sc.story["previous_version"] in bad["crash_rate"].sentence()
    # every other release in the lookback is healthy: nothing pages
    others = [v for v in verdicts if (v.product, v.version) != (product, version)]
    assert not any(v.severe for v in others), [v.to_json() for v in others if v.severe]


def test_no_verdict_before_the_release_exists(sc: Scenario) -> None:
    before = release_verdicts(sc.client, sc.database, _released(sc) - timedelta(minutes=1))
    assert _of(before, sc.story["regressing_product"], sc.story["regressing_version"]) == {}


def test_right_after_the_release_nothing_pages(sc: Scenario) -> None:
    # No minimum volume: whatever the first hours hold is judged, and cannot reach the evidence bar.
    for minutes in (30, 60):
        verdicts = release_verdicts(sc.client, sc.database, _released(sc) + timedelta(minutes=minutes))
        bad = _of(verdicts, sc.story["regressing_product"], sc.story["regressing_version"])
        assert set(bad) in (set(), set(SIGNALS))
        assert not any(v.severe for v in bad.values()), [v.to_json() for v in bad.values()]


def test_severe_within_hours_of_the_release(sc: Scenario) -> None:
    # At 150 users per product the new version has served ~100 sessions and ~200 requests in its first 12 h.
    verdicts = release_verdicts(sc.client, sc.database, _released(sc) + timedelta(hours=12))
    bad = _of(verdicts, sc.story["regressing_product"], sc.story["regressing_version"])
    assert bad["latency"].severe and bad["latency"].bake_s == 12 * 3600


def test_samples_and_stored_rows_round_trip(sc: Scenario) -> None:
    now = _released(sc) + timedelta(days=3)
    samples = regression_samples(sc.client, sc.database, now, store=True)
    key = (sc.story["regressing_product"], sc.story["regressing_version"])
    by_release = {(s.labels["product"], s.labels["version"]): s for s in samples}
    assert all(set(s.labels) == {"product", "version", "baseline_version"} for s in samples)
    bad = by_release[key]
    assert bad.value == 1.0 and bad.labels["baseline_version"] == sc.story["previous_version"]
    assert bad.volume >= 100 and set(bad.evidence["severe_signals"]) >= {"crash_rate", "latency"}
    assert bad.evidence["signals"]["crash_rate"]["verdict"] == "regression"
    assert all(s.value == 0.0 for k, s in by_release.items() if k != key)

    verdicts = release_verdicts(sc.client, sc.database, now)
    at = now + timedelta(seconds=1)
    store_verdicts(sc.client, sc.database, verdicts, at)
    rows = sc.client.query(
        f"SELECT product, version, baseline_version, bake_s, signal, candidate_value, baseline_value, test, p_value, "
        f"verdict, severe, evidence FROM {sc.database}.release_verdicts FINAL WHERE at = {{at:DateTime64(3)}}",
        parameters={"at": at},
    ).result_rows
    assert len(rows) == len(verdicts)
    stored = {(r[0], r[1], r[4]): r for r in rows}
    for v in verdicts:
        r = stored[(v.product, v.version, v.signal)]
        assert (r[2], r[3], r[7], r[9], r[10]) == (v.baseline_version, v.bake_s, v.test, v.verdict, int(v.severe))
        assert r[5] == pytest.approx(v.candidate_value, nan_ok=True)
        assert (math.isnan(r[8]) and math.isnan(v.p_value)) or r[8] == pytest.approx(v.p_value)
        assert json.loads(r[11])["candidate_volume"] == v.candidate_volume
