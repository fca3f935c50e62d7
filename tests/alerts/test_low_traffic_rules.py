"""Latency and error rules at low volume, on a real chDB store: the window widens instead of going silent.

One product at about 450 requests a day - never 200 in the paging rules' 15 minutes - runs healthy for
three days, then its p95 goes over the 1,500 ms SLO. The shipped rules must ticket it within a day, and
must not page (the page needs volume the product never has) nor ticket the healthy days.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.scenario_store import write_events

from alerts.backtest import backtest
from alerts.rules import load_rules, shipped_rules_dir
from pipeline import clickhouse
from pipeline.events import Request
from pipeline.settings import Settings
from pipeline.usecases import schema

START = datetime(2026, 3, 2, tzinfo=UTC)
SLOW_FROM = START + timedelta(days=3, hours=7)  # any hour of the day
END = START + timedelta(days=5)


def _requests(rng: random.Random) -> Iterator[Request]:
    t = START
    while t < END:
        rate = 450 / 86_400 * (1 + 0.6 * math.sin((t.hour - 9) / 24 * 2 * math.pi))  # per second, diurnal
        t += timedelta(seconds=rng.expovariate(rate))
        median = 2_600.0 if t >= SLOW_FROM else 300.0
        yield Request(product="smallshop", version="1.0", ts=t, user_id=f"u{rng.randrange(80)}",
                      operation="GET /cart", latency_ms=min(rng.lognormvariate(math.log(median), 0.4), 60_000),
                      status_code=200)  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, object]]:
    settings = Settings(data_dir=Path(tmp_path_factory.mktemp("lowtraffic")))
    client = clickhouse.connect(settings)
    schema.migrate(client, settings)
    write_events(client, settings.clickhouse_database, _requests(random.Random(5)))
    yield settings, client
    client.close()
    clickhouse.release(settings)


def test_a_low_traffic_product_over_its_slo_gets_a_ticket_within_a_day(store: tuple[Settings, object]) -> None:
    settings, client = store
    rules = load_rules([shipped_rules_dir() / "performance.yaml"])  # the latency and error rules
    transitions = backtest(client, settings.clickhouse_database, rules, START + timedelta(days=2), END,
                           timedelta(minutes=15))  # fmt: skip
    firing = [t for t in transitions if t["state"] == "firing"]
    tickets = [t for t in firing if t["alertname"] == "LatencyP95OverSLOSustained"]
    assert tickets, transitions
    first = datetime.fromisoformat(tickets[0]["at"])
    assert SLOW_FROM < first <= SLOW_FROM + timedelta(hours=24), (first, SLOW_FROM)
    assert not [t for t in firing if t["alertname"] == "LatencyP95OverSLO"]  # never the volume to page
    assert {t["alertname"] for t in firing} <= {"LatencyP95OverSLOSustained"}, firing


def test_the_check_against_the_store_names_the_rules_that_could_never_fire(store: tuple[Settings, object]) -> None:
    from pipeline.usecases.reads import rule_volumes

    settings, client = store
    warnings = rule_volumes(client, settings, {"since": "400d"})  # the store's data lies in March 2026
    never = {(w["alert"], w["series"]["product"]) for w in warnings}
    assert ("LatencyP95OverSLO", "smallshop") in never and ("ErrorRateSpike", "smallshop") in never
    assert not {a for a, _ in never} & {"LatencyP95OverSLOSustained", "ErrorRateSustained"}, warnings
    page = next(w for w in warnings if w["alert"] == "LatencyP95OverSLO")
    assert page["window_s"] == 900 and 0 < page["most_seen"] < 200
