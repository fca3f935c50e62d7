"""Backtest acceptance on the synthetic scenario (real chDB, shipped rules, real signal sources).

The regressing release must page after its release and never before; no healthy
product may page. The detection delay (release -> firing, in event time) is
printed: run with ``-s`` to see it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from support.scenario_store import Scenario, close_scenario, fixed_end, open_scenario

from alerts.backtest import backtest
from alerts.rules import LoadedRule, load_rules
from alerts.sources import StoreSource
from pipeline import catalog

pytestmark = pytest.mark.integration
HEALTHY = ("checkout", "feed", "billing")
END = fixed_end()


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    sc = open_scenario(tmp_path_factory.mktemp("backtest"), days=3, users_per_product=150, end=END)
    yield sc
    close_scenario(sc)


def test_backtest_pages_for_the_regression_after_release_and_never_for_healthy_products(scenario: Scenario) -> None:
    story = scenario.story
    released = datetime.fromisoformat(story["regression_released_at"])
    end = scenario.cfg.start + scenario.cfg.span
    since = released - timedelta(hours=6)
    calls: list[tuple[int, int]] = []
    transitions = backtest(
        scenario.client, scenario.database, None, since, end, timedelta(minutes=30),
        progress=lambda done, total: calls.append((done, total)),
    )  # fmt: skip
    assert calls[-1] == (len(calls), len(calls)) and len(calls) == int((end - since) / timedelta(minutes=30)) + 1
    regression = [
        t for t in transitions
        if t["alertname"] == "ReleaseRegression" and t["labels"]["product"] == story["regressing_product"]
    ]  # fmt: skip
    firing = [t for t in regression if t["state"] == "firing"]
    assert firing, transitions
    first = datetime.fromisoformat(firing[0]["at"])
    assert first > released
    assert firing[0]["labels"]["version"] == story["regressing_version"]
    assert firing[0]["labels"]["baseline_version"] == story["previous_version"]
    assert firing[0]["labels"]["severity"] == "page"
    assert all(datetime.fromisoformat(t["at"]) > released for t in regression)
    # Every page is for the regressing product; none for a healthy one (tickets may exist, they never page).
    pages = [t for t in transitions if t["labels"].get("severity") == "page" and t["state"] in ("pending", "firing")]
    assert {t["labels"]["product"] for t in pages} == {story["regressing_product"]}, pages
    assert not [t for t in transitions if t["labels"]["product"] in HEALTHY and t["labels"].get("severity") == "page"]
    for t in transitions:
        assert set(t) >= {"alertname", "labels", "state", "at", "value"} and "severity" in t["labels"]
    print(f"\ndetection delay (event time, 30m steps): {first - released} (release {released}, firing {first})")


def test_backtest_validates_its_step(scenario: Scenario, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="step must be positive"):
        backtest(scenario.client, scenario.database, None, datetime.now(), datetime.now(), 0)


def _rule(tmp_path: Path, body: str) -> LoadedRule:
    (tmp_path / "r.yaml").write_text("groups:\n  - name: g\n    rules:\n" + body)
    return load_rules([tmp_path / "r.yaml"]).rules[0]


def test_store_source_reads_the_catalog_for_the_window_ending_now(scenario: Scenario, tmp_path: Path) -> None:
    released = datetime.fromisoformat(scenario.story["regression_released_at"])
    now = (released + timedelta(hours=20)).replace(second=0, microsecond=0)  # minute partials align with raw rows
    rule = _rule(
        tmp_path,
        "      - {alert: A, metric: crash_rate, window: 6h, op: '>', threshold: 0.1, by: [product, version],\n"
        "         min_volume: {metric: sessions, min: 20}}\n",
    )
    samples = StoreSource(scenario.client, scenario.database).samples(rule, now)
    # The expectation, independent of the catalog: crashed / ended sessions counted in the raw events of the
    # six hours before ``now`` (not the minute aggregates the catalog reads), the volume being the ended sessions.
    rows = scenario.client.query(
        f"SELECT product, version, countIf(type = 'session_ended' AND status = 'crashed'), "
        f"countIf(type = 'session_ended') FROM {scenario.database}.events FINAL "
        "WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)} GROUP BY product, version",
        parameters={"since": now - timedelta(hours=6), "until": now},
    ).result_rows
    want = {(p, v): (crashed / ended if ended else math.nan, float(ended)) for p, v, crashed, ended in rows}
    got = {(s.labels["product"], s.labels["version"]): (s.value, s.volume) for s in samples}
    assert got.keys() == want.keys() and len(got) >= 5
    for key, (value, volume) in want.items():
        assert got[key][1] == volume, key
        assert got[key][0] == pytest.approx(value, rel=1e-9) or (math.isnan(value) and math.isnan(got[key][0])), key
    regressing = (scenario.story["regressing_product"], scenario.story["regressing_version"])
    assert regressing in got and got[regressing][0] > 0.1  # the regressing release crashes: the rule would match


def test_store_source_burn_rate_is_the_smaller_burn_of_both_windows(scenario: Scenario, tmp_path: Path) -> None:
    now = datetime.fromisoformat(scenario.story["regression_released_at"]) + timedelta(hours=20)
    rule = _rule(
        tmp_path,
        "      - alert: B\n        burn_rate: {metric: crash_free_sessions, ratio: good, objective: 0.98, long: 6h,"
        " short: 1h, factor: 2}\n        min_volume: {metric: sessions, min: 1}\n",
    )
    samples = {s.labels["product"]: s for s in StoreSource(scenario.client, scenario.database).samples(rule, now)}
    for window, key in ((timedelta(hours=6), "burn_long"), (timedelta(hours=1), "burn_short")):
        _, rows = catalog.query(scenario.client, scenario.database, ["crash_rate"], now - window, until=now)
        for product, crash_rate in rows:
            assert samples[product].evidence[key] == pytest.approx(crash_rate / 0.02)
    for s in samples.values():
        assert s.value == min(s.evidence["burn_long"], s.evidence["burn_short"])
