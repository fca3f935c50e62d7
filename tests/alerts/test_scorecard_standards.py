"""Issue 19 item 5: products instrumented only through OpenTelemetry, or Sentry + Segment, on a real chDB store.

The events are the shapes the collector's standards' routes produce (pipeline/collector/otlp.py: server spans
-> ``request``; sentry.py: sessions -> ``session_ended``; segment.py / posthog.py: tracks -> ``feature_used``,
``Order Completed`` -> ``conversion``), three weeks of them. Each product gets the dimensions its data allows,
and its scorecard says which signals are missing - in its JSON and in a sentence.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.scenario_store import write_events

from alerts.scorecard import compute_scorecards
from pipeline import clickhouse
from pipeline.events import Conversion, Event, FeatureUsed, Request, SessionEnded
from pipeline.settings import Settings
from pipeline.usecases import schema

END = datetime(2026, 4, 23, tzinfo=UTC)
START = END - timedelta(days=21)


def _events(rng: random.Random) -> Iterator[Event]:
    t = START
    while t < END:
        t += timedelta(seconds=rng.expovariate(300 / 86_400))
        user = f"u{rng.randrange(120)}"
        # OpenTelemetry only: request spans
        yield Request(
            product="otel-only",
            version="2.1.0",
            ts=t,
            user_id=user,
            operation="GET /search",
            latency_ms=rng.lognormvariate(5.3, 0.4),
            status_code=500 if rng.random() < 0.01 else 200,
        )
        # Sentry release health + Segment tracks
        session = f"s{rng.getrandbits(40)}"
        yield SessionEnded(
            product="mobile",
            version="5.0.0",
            ts=t,
            user_id=user,
            session_id=session,
            status="crashed" if rng.random() < 0.01 else "exited",
            duration_ms=60_000.0,
        )
        yield FeatureUsed(
            product="mobile",
            version="5.0.0",
            ts=t,
            user_id=user,
            session_id=session,
            feature="Product_Viewed",
            success=True,
        )
        if rng.random() < 0.05:
            yield Conversion(product="mobile", version="5.0.0", ts=t, user_id=user, session_id=session,
                             goal="Order_Completed", value=20.0, currency="USD")  # fmt: skip


@pytest.fixture(scope="module")
def cards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict]]:  # type: ignore[type-arg]
    settings = Settings(data_dir=Path(tmp_path_factory.mktemp("standards")))
    client = clickhouse.connect(settings)
    schema.migrate(client, settings)
    write_events(client, settings.clickhouse_database, _events(random.Random(3)))
    yield {c.product: c.to_json() for c in compute_scorecards(client, settings.clickhouse_database, END)}
    client.close()
    clickhouse.release(settings)


def test_each_product_is_scored_where_its_data_allows(cards: dict[str, dict]) -> None:  # type: ignore[type-arg]
    otel, mobile = cards["otel-only"], cards["mobile"]
    assert otel["dimensions"]["performance"]["score"] is not None
    assert otel["dimensions"]["customer experience"]["score"] is None
    assert mobile["dimensions"]["customer experience"]["score"] is not None  # crash-free sessions, task success
    assert mobile["dimensions"]["business impact"]["score"] is not None  # users, conversion rate
    assert mobile["dimensions"]["performance"]["score"] is None  # no spans
    assert not otel["redesign_candidate"] and not mobile["redesign_candidate"]


def test_the_scorecard_says_which_signals_are_missing(cards: dict[str, dict]) -> None:  # type: ignore[type-arg]
    otel, mobile = cards["otel-only"], cards["mobile"]
    assert {"nps", "csat", "crash_free_sessions"} <= set(otel["missing_signals"]["customer experience"])
    assert "latency_p95_ms" in mobile["missing_signals"]["performance"]
    assert "nps" in mobile["missing_signals"]["customer experience"]
    sentence = otel["sentences"][-1]
    assert sentence.startswith("Not measured, no data yet: ") and "NPS" in sentence and "not scored" in sentence
