"""Acceptance: every catalog metric, computed by the pipeline on real Kafka + chDB, equals the ground truth.

The truth is computed here, independently, from the events the test sent.
Counts and rates must match exactly (floating-point sums to 1e-9); unique
users are HyperLogLog-class sketches (stated error <= 2%); latency quantiles
come from log buckets (stated error <= 1%).
"""

from __future__ import annotations

import math
import random
import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka.partitioner.default import murmur2
from support.truth import make_events

from pipeline import catalog, clickhouse
from pipeline.kafka.emitter import Emitter

pytestmark = pytest.mark.integration

PRODUCTS = ["checkout", "search", "profile"]
USER_TOLERANCE = 0.02
QUANTILE_TOLERANCE = 0.01


def _events() -> list[dict[str, Any]]:
    events = make_events(20_000, PRODUCTS, seed=21, spread_s=900)
    rng = random.Random(5)
    now = datetime.now(UTC)
    # Ticket lifecycles: opened, and most of them resolved some minutes later.
    for i in range(60):
        product = PRODUCTS[i % 3]
        opened = now - timedelta(seconds=rng.uniform(600, 900))
        base = {"type": "support_ticket", "product": product, "version": "1.0.0", "user_id": f"t{i}",
                "ticket_id": f"T-{i}", "severity": "high"}  # fmt: skip
        events.append({**base, "event_id": f"00000000-0000-4000-8000-{i:012d}", "action": "opened",
                       "ts": opened.isoformat()})  # fmt: skip
        if i % 4:
            resolved = opened + timedelta(seconds=rng.uniform(30, 500))
            events.append({**base, "event_id": f"00000000-0000-4000-9000-{i:012d}", "action": "resolved",
                           "ts": resolved.isoformat()})  # fmt: skip
    return [e for e in events if not (e["type"] == "support_ticket" and not e["ticket_id"].startswith("T-"))]


def _ts(e: dict[str, Any]) -> datetime:
    """Event time as stored: ClickHouse keeps milliseconds."""
    t = datetime.fromisoformat(e["ts"])
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def _truth_by_product(events: list[dict[str, Any]], partitions: int, lateness_s: float) -> dict[str, dict[str, float]]:
    truth: dict[str, dict[str, float]] = {}
    for product in PRODUCTS:
        ev = [e for e in events if e["product"] == product]
        of = defaultdict(list)
        for e in ev:
            of[e["type"]].append(e)
        ended = of["session_ended"]
        crashed = [e for e in ended if e["status"] == "crashed"]
        reqs = of["request"]
        lat = sorted(e["latency_ms"] for e in reqs)
        failed = [e for e in reqs if e["status_code"] >= 500 or e["error"]]
        feats = of["feature_used"]
        nps = [e["score"] for e in of["feedback"] if e["kind"] == "nps"]
        csat = [e["score"] for e in of["feedback"] if e["kind"] == "csat"]
        tickets = of["support_ticket"]
        opened = {e["ticket_id"]: _ts(e) for e in tickets if e["action"] == "opened"}
        resolved = {e["ticket_id"]: _ts(e) for e in tickets if e["action"] == "resolved"}
        users_by_day: dict[Any, set[str]] = defaultdict(set)
        for e in ev:
            users_by_day[_ts(e).date()].add(e["user_id"])
        all_users = {e["user_id"] for e in ev}
        session_users = {e["user_id"] for e in ended}
        crashed_users = {e["user_id"] for e in crashed}
        dau = statistics.mean(len(u) for u in users_by_day.values())
        conv = of["conversion"]

        def q(p: float, lat: list[float] = lat) -> float:
            return lat[math.floor(p * (len(lat) - 1))]

        truth[product] = {
            "events": len(ev),
            "sessions": len(ended),
            "sessions_started": len(of["session_started"]),
            "active_users": len(all_users),
            "dau": dau,
            "stickiness": dau / len(all_users),
            "conversions": len(conv),
            "revenue": sum(e["value"] for e in conv),
            "conversion_rate": _ratio(len(conv), len(ended)),
            "crashed_sessions": len(crashed),
            "crash_free_sessions": 1 - _ratio(len(crashed), len(ended)),
            "crash_rate": _ratio(len(crashed), len(ended)),
            "errored_sessions_rate": _ratio(
                sum(1 for e in ended if e["errors"] > 0 and e["status"] != "crashed"), len(ended)
            ),
            "crash_free_users": 1 - _ratio(len(crashed_users), len(session_users)),
            "task_success_rate": _ratio(sum(e["success"] for e in feats), len(feats)),
            "feature_uses_total": len(feats),
            "feature_successes_total": sum(e["success"] for e in feats),
            "nps_answers": len(nps),
            "nps_promoters": sum(s >= 9 for s in nps),
            "nps_detractors": sum(s <= 6 for s in nps),
            "csat_answers": len(csat),
            "csat_points": sum(csat),
            "csat_squares": sum(s * s for s in csat),
            "nps": 100 * _ratio(sum(s >= 9 for s in nps) - sum(s <= 6 for s in nps), len(nps)),
            "csat": _ratio(sum(csat), len(csat)),
            "tickets_opened": len(opened),
            "tickets_resolved": len(resolved),
            "tickets_per_1k_sessions": 1000 * _ratio(len(opened), len(ended)),
            "open_tickets": len(set(opened) - set(resolved)),
            "time_to_resolve_h": statistics.mean(
                (resolved[t] - opened[t]).total_seconds() / 3600 for t in resolved if t in opened
            ),
            "requests": len(reqs),
            "request_errors": len(failed),
            "error_rate": _ratio(len(failed), len(reqs)),
            "latency_mean_ms": _ratio(sum(lat), len(lat)),
            "latency_p50_ms": q(0.5),
            "latency_p95_ms": q(0.95),
            "latency_p99_ms": q(0.99),
        }
    _add_late_events(truth, events, partitions, lateness_s)
    return truth


def _add_late_events(truth: dict[str, dict[str, float]], events: list[dict[str, Any]], n: int, lateness: float) -> None:
    """Late = older than the partition's max event time so far minus the allowed lateness, in send order."""
    high: dict[int, float] = {}
    for p in truth:
        truth[p]["late_events"] = 0
    for e in events:
        partition = (murmur2(f"{e['product']}:{e['user_id']}".encode()) & 0x7FFFFFFF) % n
        ts = _ts(e).timestamp()
        if partition in high and ts < high[partition] - lateness:
            truth[e["product"]]["late_events"] += 1
        high[partition] = max(high.get(partition, ts), ts)


def _close(name: str, got: float, want: float) -> bool:
    if isinstance(want, float) and math.isnan(want):
        return math.isnan(got)
    if name in ("active_users", "dau", "stickiness", "crash_free_users", "feature_users"):
        return math.isclose(got, want, rel_tol=USER_TOLERANCE)
    if name.startswith("latency_p"):
        return math.isclose(got, want, rel_tol=QUANTILE_TOLERANCE)
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


def test_every_catalog_metric_equals_ground_truth(settings, start_worker):
    events = _events()
    # Push some events behind the watermark so late_events is exercised too.
    rng = random.Random(8)
    for e in rng.sample(events, 200):
        if e["type"] != "support_ticket":
            e["ts"] = (_ts(e) - timedelta(minutes=30)).isoformat()
    worker = start_worker(settings)
    with Emitter(settings) as em:
        for e in events:
            em.emit(e)
    worker.wait_drained(settings.events_topic, timeout_s=180)
    worker.stop()

    since = datetime.now(UTC) - timedelta(days=1)
    truth = _truth_by_product(events, settings.topic_partitions, settings.allowed_lateness_s)
    checked: set[str] = set()
    with clickhouse.opened(settings) as client:
        per_product = [
            m.name for m in catalog.CATALOG.values() if m.source in ("minute", "users", "tickets", "feedback")
        ]
        per_product.remove("release_adoption")
        cols, rows = catalog.query(client, "pulse", per_product, since)
        for row in rows:
            got = dict(zip(cols, row, strict=True))
            for name in per_product:
                want = truth[got["product"]][name]
                assert _close(name, got[name], want), (got["product"], name, got[name], want)
        checked |= set(per_product)

        checked |= _check_release_adoption(client, since, events)
        checked |= _check_features_and_goals(client, since, events)
    assert checked == set(catalog.CATALOG), f"metrics without a ground-truth check: {set(catalog.CATALOG) - checked}"


def _check_release_adoption(client, since, events) -> set[str]:
    cols, rows = catalog.query(client, "pulse", ["release_adoption"], since, by=("product", "version"))
    started: dict[tuple[str, str], int] = defaultdict(int)
    for e in events:
        if e["type"] == "session_started":
            started[(e["product"], e["version"])] += 1
    for product, version, share in rows:
        total = sum(n for (p, _), n in started.items() if p == product)
        assert math.isclose(share, started[(product, version)] / total, rel_tol=1e-9), (product, version)
    assert len(rows) == len(started)
    return {"release_adoption"}


def _check_features_and_goals(client, since, events) -> set[str]:
    feats: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    goals: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["type"] == "feature_used":
            feats[(e["product"], e["feature"])].append(e)
        elif e["type"] == "conversion":
            goals[(e["product"], e["goal"])].append(e)
    _, rows = catalog.query(client, "pulse", ["feature_adoption"], since, by=("product", "feature"))
    assert len(rows) == len(feats)
    for product, feature, adoption in rows:
        active = len({e["user_id"] for e in events if e["product"] == product})
        want = len({e["user_id"] for e in feats[(product, feature)]}) / active
        assert math.isclose(adoption, want, rel_tol=USER_TOLERANCE), (product, feature, adoption, want)
    names = ["feature_uses", "feature_success_rate", "feature_users"]
    cols, rows = catalog.query(client, "pulse", names, since, by=("product", "feature"))
    assert len(rows) == len(feats)
    for product, feature, uses, rate, users in rows:
        fe = feats[(product, feature)]
        assert uses == len(fe)
        assert math.isclose(rate, sum(e["success"] for e in fe) / len(fe), rel_tol=1e-9)
        assert _close("feature_users", users, len({e["user_id"] for e in fe}))
    cols, rows = catalog.query(client, "pulse", ["goal_conversions", "goal_revenue"], since, by=("product", "goal"))
    assert len(rows) == len(goals)
    for product, goal, n, revenue in rows:
        ge = goals[(product, goal)]
        assert n == len(ge)
        assert math.isclose(revenue, sum(e["value"] for e in ge), rel_tol=1e-9)
    return set(names) | {"goal_conversions", "goal_revenue", "feature_adoption"}
