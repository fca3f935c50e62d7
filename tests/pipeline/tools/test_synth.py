"""Tests for the synthetic traffic generator: determinism, validity, realism and scenario ground truth."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline.events import EVENT_ADAPTER, EVENT_TYPES, Event
from pipeline.tools.demo import SPAN, demo_end
from pipeline.tools.load import traffic_config
from pipeline.tools.synth import SCENARIOS, TrafficConfig, releases, scenario_story, traffic

START = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday, midnight UTC
DAY = TrafficConfig(start=START)
# Big enough that a 5x crash ratio is never mistaken for less than 3x by sampling noise,
# and four whole days so the diurnal cycle cancels out of quarter-span comparisons.
SCENARIO = TrafficConfig(
    start=START,
    span=timedelta(days=4),
    products=("checkout", "search", "profile"),
    users_per_product=600,
    scenario="regression_and_decay",
)


@pytest.fixture(scope="module")
def day_events() -> list[Event]:
    return list(traffic(DAY))


@dataclass
class ScenarioStats:
    """Per-product aggregates of one pass over the scenario traffic."""

    ended: Counter[tuple[str, str]] = field(default_factory=Counter)  # (product, version)
    crashed: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies: defaultdict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    sessions: Counter[tuple[str, int]] = field(default_factory=Counter)  # (product, quarter of the span)
    nps: defaultdict[tuple[str, int], list[int]] = field(default_factory=lambda: defaultdict(list))
    features: Counter[tuple[str, int]] = field(default_factory=Counter)
    feature_successes: Counter[tuple[str, int]] = field(default_factory=Counter)


@pytest.fixture(scope="module")
def scenario_stats() -> ScenarioStats:
    stats = ScenarioStats()
    for e in traffic(SCENARIO):
        quarter = int((e.ts - SCENARIO.start) / SCENARIO.span * 4)
        if e.type == "session_started":
            stats.sessions[e.product, quarter] += 1
        elif e.type == "session_ended":
            stats.ended[e.product, e.version] += 1
            stats.crashed[e.product, e.version] += e.status == "crashed"
        elif e.type == "request":
            stats.latencies[e.product, e.version].append(e.latency_ms)
        elif e.type == "feedback" and e.kind == "nps":
            stats.nps[e.product, quarter].append(e.score)
        elif e.type == "feature_used":
            stats.features[e.product, quarter] += 1
            stats.feature_successes[e.product, quarter] += e.success
    return stats


def _nps(scores: list[int]) -> float:
    return 100.0 * (sum(s >= 9 for s in scores) - sum(s <= 6 for s in scores)) / len(scores)


def test_same_seed_gives_identical_events_including_ids() -> None:
    cfg = TrafficConfig(start=START, max_events=3000)
    first, second = list(traffic(cfg)), list(traffic(cfg))
    assert first == second
    assert [e.event_id for e in first] == [e.event_id for e in second]


def test_different_seed_gives_different_events() -> None:
    a = list(traffic(TrafficConfig(start=START, max_events=500)))
    b = list(traffic(TrafficConfig(start=START, seed=8, max_events=500)))
    assert {e.event_id for e in a}.isdisjoint(e.event_id for e in b)
    assert [e.ts for e in a] != [e.ts for e in b]


def test_max_events_is_a_prefix_of_the_full_run(day_events: list[Event]) -> None:
    assert list(traffic(TrafficConfig(start=START, max_events=777))) == day_events[:777]


def test_max_events_is_honoured_exactly_or_capped_by_traffic(day_events: list[Event]) -> None:
    assert len(list(traffic(TrafficConfig(start=START, max_events=1)))) == 1
    assert list(traffic(TrafficConfig(start=START, max_events=0))) == []
    assert len(list(traffic(TrafficConfig(start=START, max_events=10 * len(day_events))))) == len(day_events)


def test_every_event_validates_through_the_wire_contract(day_events: list[Event]) -> None:
    for e in day_events:
        assert EVENT_ADAPTER.validate_python(e.model_dump()) == e


def test_events_are_sorted_and_inside_the_span(day_events: list[Event]) -> None:
    timestamps = [e.ts for e in day_events]
    assert timestamps == sorted(timestamps)
    assert timestamps[0] >= START
    assert timestamps[-1] < START + DAY.span
    assert all(ts.utcoffset() == timedelta(0) for ts in timestamps)


def test_a_day_has_every_event_type_and_realistic_fields(day_events: list[Event]) -> None:
    assert {e.type for e in day_events} == set(EVENT_TYPES)
    assert {e.platform for e in day_events} == {"ios", "android", "web"}
    assert {e.environment for e in day_events} == {"production"}
    assert all(e.user_id.startswith(f"u-{e.product}-") for e in day_events)
    statuses = {e.status for e in day_events if e.type == "session_ended"}
    assert statuses == {"ok", "exited", "crashed", "abnormal"}
    requests = [e for e in day_events if e.type == "request"]
    assert all(e.error for e in requests if e.status_code >= 500)
    assert all(not e.error for e in requests if e.status_code < 500)
    assert sum(e.status_code == 200 for e in requests) > 0.9 * len(requests)
    purchases = [e for e in day_events if e.type == "conversion" and e.goal == "purchase"]
    assert purchases
    assert all(e.value > 0 and e.currency == "USD" for e in purchases)
    assert {e.kind for e in day_events if e.type == "feedback"} == {"nps", "csat"}


def test_sessions_are_unique_and_consistent(day_events: list[Event]) -> None:
    started = [e.session_id for e in day_events if e.type == "session_started"]
    assert len(started) == len(set(started))
    ended = {e.session_id: e for e in day_events if e.type == "session_ended"}
    assert set(ended) <= set(started)
    assert len(ended) > 0.95 * len(started)  # only sessions running into the end of the span are cut
    errors = Counter(e.session_id for e in day_events if e.type == "error")
    for sid, end in ended.items():
        assert end.errors == errors[sid]
    users = {e.session_id: (e.product, e.user_id, e.version) for e in day_events if e.type == "session_started"}
    for e in day_events:
        if e.session_id:
            assert (e.product, e.user_id, e.version) == users[e.session_id]


def test_support_tickets_are_resolved_later_under_the_same_id(day_events: list[Event]) -> None:
    opened = {e.ticket_id: e for e in day_events if e.type == "support_ticket" and e.action == "opened"}
    resolved = [e for e in day_events if e.type == "support_ticket" and e.action == "resolved"]
    assert resolved
    for e in resolved:
        assert e.ticket_id in opened
        assert e.ts > opened[e.ticket_id].ts
        assert e.user_id == opened[e.ticket_id].user_id


def test_releases_are_deterministic_and_cover_every_product() -> None:
    rels = releases(DAY)
    assert rels == releases(DAY)
    assert rels != releases(TrafficConfig(start=START, seed=99))
    assert [r.released_at for r in rels] == sorted(r.released_at for r in rels)
    per_product = Counter(r.product for r in rels)
    assert set(per_product) == set(DAY.products)
    assert all(1 <= n <= 3 for n in per_product.values())
    for product in DAY.products:
        oldest = min(r.released_at for r in rels if r.product == product)
        assert oldest < START


def test_events_run_a_release_that_was_already_out(day_events: list[Event]) -> None:
    released_at = {(r.product, r.version): r.released_at for r in releases(DAY)}
    for e in day_events:
        assert released_at[e.product, e.version] <= e.ts


def test_traffic_follows_a_day_curve(day_events: list[Event]) -> None:
    per_hour = Counter(e.ts.hour for e in day_events)
    assert len(per_hour) == 24
    assert max(per_hour.values()) > 2 * min(per_hour.values())
    assert 12 <= max(per_hour, key=lambda h: per_hour[h]) <= 18  # afternoon UTC


def test_config_is_validated_and_normalised_to_utc() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TrafficConfig(start=datetime(2025, 3, 3))
    with pytest.raises(ValueError, match="unknown scenario"):
        TrafficConfig(start=START, scenario="meltdown")
    with pytest.raises(ValueError, match="at least 3 products"):
        TrafficConfig(start=START, scenario="regression_and_decay", products=("a", "b"))
    cet = TrafficConfig(start=datetime(2025, 3, 3, 1, tzinfo=timezone(timedelta(hours=1))))
    assert cet.start == START
    assert cet.start.tzinfo == UTC


def test_unknown_products_get_a_generic_catalog() -> None:
    cfg = TrafficConfig(start=START, products=("maps", "chat"), users_per_product=20, span=timedelta(hours=6))
    events = list(traffic(cfg))
    assert {e.product for e in events} == {"maps", "chat"}
    for e in events:
        assert EVENT_ADAPTER.validate_python(e.model_dump()) == e


def test_scenarios_are_described_and_told() -> None:
    assert set(SCENARIOS) == {"steady", "regression_and_decay"}
    assert scenario_story(DAY) == {}
    story = scenario_story(SCENARIO)
    assert story["decaying_product"] == "profile"
    assert story["regressing_release"] == f"search {story['regressing_version']}"
    assert datetime.fromisoformat(story["regression_released_at"]) == START + SCENARIO.span / 2


def test_regressing_release_crashes_and_slows_down(scenario_stats: ScenarioStats) -> None:
    story = scenario_story(SCENARIO)
    bad = ("search", story["regressing_version"])
    previous = ("search", story["previous_version"])
    s = scenario_stats
    bad_rate = s.crashed[bad] / s.ended[bad]
    previous_rate = s.crashed[previous] / s.ended[previous]
    assert bad_rate > 3 * previous_rate
    assert statistics.median(s.latencies[bad]) > 1.6 * statistics.median(s.latencies[previous])


def test_decaying_product_loses_users_satisfaction_and_success(scenario_stats: ScenarioStats) -> None:
    s = scenario_stats
    assert s.sessions["profile", 3] < 0.7 * s.sessions["profile", 0]
    assert _nps(s.nps["profile", 3]) < _nps(s.nps["profile", 0]) - 20

    def success(quarter: int) -> float:
        return s.feature_successes["profile", quarter] / s.features["profile", quarter]

    assert success(3) < success(0) - 0.05


def test_steady_product_keeps_its_traffic(scenario_stats: ScenarioStats) -> None:
    first, last = scenario_stats.sessions["checkout", 0], scenario_stats.sessions["checkout", 3]
    assert 0.75 * first <= last <= 1.25 * first


def test_the_demo_sends_the_same_fortnight_at_any_hour_of_the_day():
    """The demo's data ends at the last UTC midnight, so runs hours apart on one day send identical events."""
    morning, evening = datetime(2026, 3, 4, 0, 5, tzinfo=UTC), datetime(2026, 3, 4, 23, 55, tzinfo=UTC)
    assert demo_end(morning) == demo_end(evening) == datetime(2026, 3, 4, tzinfo=UTC)
    first, second = (
        traffic_config(2_000, SPAN, "regression_and_decay", 7, end=demo_end(now)) for now in (morning, evening)
    )
    assert first.start + first.span == datetime(2026, 3, 4, tzinfo=UTC)
    assert list(traffic(first)) == list(traffic(second))
    assert releases(first) == releases(second)
