"""Test data and ground truth shared by the test packages: random valid events and what ClickHouse should hold.

Plain functions, imported as ``from truth import ...`` (``tests/`` is on the
path); fixtures live in ``conftest.py``.
"""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from consumers.partials import COUNTERS
from pipeline import clickhouse
from pipeline.kafka.emitter import Emitter


def make_event(rng: random.Random, product: str, ts: datetime, **over: Any) -> dict[str, Any]:
    """One random valid event of a random type, as the JSON-ready dict a service would send."""
    kind = over.pop("type", None) or rng.choice(
        [
            "session_started",
            "session_ended",
            "feature_used",
            "request",
            "request",
            "error",
            "conversion",
            "feedback",
            "support_ticket",
        ]
    )
    body: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "type": kind,
        "product": product,
        "version": rng.choice(["1.0.0", "1.1.0"]),
        "ts": ts.isoformat(),
        "user_id": f"u{rng.randrange(500)}",
        "session_id": f"s{rng.randrange(5000)}",
    }
    if kind == "session_ended":
        body |= {
            "status": rng.choice(["ok", "ok", "ok", "exited", "crashed", "abnormal"]),
            "errors": rng.choice([0, 0, 0, 1, 3]),
            "duration_ms": rng.uniform(0, 6e5),
        }
    elif kind == "feature_used":
        body |= {"feature": rng.choice(["search", "share", "export"]), "success": rng.random() < 0.9}
    elif kind == "request":
        code = rng.choice([200] * 18 + [500, 503])
        body |= {
            "operation": "GET /x",
            "latency_ms": rng.lognormvariate(4, 1),
            "status_code": code,
            "error": "boom" if code >= 500 and rng.random() < 0.5 else "",
        }
    elif kind == "error":
        body |= {"kind": "TypeError", "handled": rng.random() < 0.5}
    elif kind == "conversion":
        body |= {"goal": "purchase", "value": round(rng.uniform(1, 100), 2)}
    elif kind == "feedback":
        if rng.random() < 0.7:
            body |= {"kind": "nps", "score": rng.randrange(11)}
        else:
            body |= {"kind": "csat", "score": rng.randrange(1, 6)}
    elif kind == "support_ticket":
        body |= {"ticket_id": f"t{rng.randrange(10**6)}", "action": rng.choice(["opened", "resolved"])}
    body.update(over)
    return body


def make_events(n: int, products: list[str], seed: int = 1, spread_s: int = 600) -> list[dict[str, Any]]:
    """``n`` random events over the last ``spread_s`` seconds, round-robin over products."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    return [
        make_event(rng, products[i % len(products)], now - timedelta(seconds=rng.uniform(0, spread_s)))
        for i in range(n)
    ]


def ground_truth(events: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per-product totals of product_metrics_1m's columns, computed straight from the sent events."""
    out: dict[str, dict[str, float]] = {}
    for e in events:
        t = out.setdefault(e["product"], {})

        def add(col: str, v: float = 1, t: dict[str, float] = t) -> None:
            t[col] = t.get(col, 0) + v

        add("events")
        kind = e["type"]
        if kind == "session_started":
            add("sessions_started")
        elif kind == "session_ended":
            add("sessions_ended")
            add(f"sessions_{e['status']}")
            if e["errors"] > 0 and e["status"] != "crashed":
                add("sessions_errored")
            add("session_duration_ms_sum", e["duration_ms"])
        elif kind == "feature_used":
            add("feature_uses")
            add("feature_successes", int(e["success"]))
        elif kind == "request":
            add("requests")
            add("request_errors", int(e["status_code"] >= 500 or bool(e["error"])))
            add("latency_ms_sum", e["latency_ms"])
        elif kind == "error":
            add("errors")
            add("errors_unhandled", int(not e["handled"]))
        elif kind == "conversion":
            add("conversions")
            add("revenue", e["value"])
        elif kind == "feedback":
            if e["kind"] == "nps":
                s = e["score"]
                add("nps_promoters" if s >= 9 else "nps_passives" if s >= 7 else "nps_detractors")
            else:
                add("csat_sum", e["score"])
                add("csat_count")
        elif kind == "support_ticket":
            add("tickets_opened" if e["action"] == "opened" else "tickets_resolved")
    return out


def stored_totals(settings) -> dict[str, dict[str, float]]:
    cols = [c for c in COUNTERS if c != "late_events"]
    with clickhouse.opened(settings) as client:
        sums = ", ".join(f"sum({c})" for c in cols)
        db = settings.clickhouse_database
        rows = client.query(f"SELECT product, {sums} FROM {db}.product_metrics_1m FINAL GROUP BY product").result_rows
    return {r[0]: {c: v for c, v in zip(cols, r[1:], strict=True) if v} for r in rows}


def assert_totals_equal(stored: dict[str, dict[str, float]], truth: dict[str, dict[str, float]]) -> None:
    assert set(stored) == set(truth)
    for product, want in truth.items():
        got = stored[product]
        want = {col: v for col, v in want.items() if v}  # stored_totals leaves zero sums out too
        assert set(got) == set(want), product
        for col, v in want.items():
            assert math.isclose(got[col], v, rel_tol=1e-9), (product, col, got[col], v)


def emit_all(settings, events) -> None:
    with Emitter(settings) as em:
        for e in events:
            em.emit(e)
