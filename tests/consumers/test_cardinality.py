"""Cardinality is capped per product (issue 17, item 7): one request with 500 versions cannot make 500 of anything.

Values past a product's cap are stored and counted as ``__overflow__`` - in the raw rows and in
the partials, so the product's totals stay exact - and counted in
``pulse_cardinality_overflow_total{kind}``. The caps start from what the store holds, so a
restarted worker agrees with it; a value not seen for the window frees its place. A burst of
alerts goes out in POSTs of at most 64.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from alerts.notify.alertmanager import AlertmanagerNotifier
from alerts.notify.delivery import MAX_ALERTS_PER_POST, batches
from alerts.notify.message import Notification
from alerts.notify.webhook import WebhookNotifier
from consumers.aggregate import aggregate_decoded
from consumers.cardinality import OVERFLOW, CardinalityCaps
from consumers.decode import decode_batch
from consumers.dedup import SeenIds, Watermarks
from consumers.records import Message
from consumers.sink import ClickHouseSink
from pipeline import clickhouse
from pipeline.settings import Settings
from pipeline.telemetry import CARDINALITY_OVERFLOW
from pipeline.usecases import schema

NOW = datetime.now(UTC).replace(microsecond=0)
_offsets = itertools.count()
CAPS = {"version": 50, "feature": 5, "goal": 3, "operation": 4}


def event(type_: str = "session_started", **fields: Any) -> dict[str, Any]:
    base = {"event_id": str(uuid.uuid4()), "type": type_, "product": "checkout", "version": "1.0.0",
            "ts": (NOW - timedelta(minutes=1)).isoformat(), "user_id": "u1"}  # fmt: skip
    extra = {"feature_used": {"feature": "pay"}, "conversion": {"goal": "purchase"},
             "request": {"operation": "GET /x", "latency_ms": 5.0}}.get(type_, {})  # fmt: skip
    return base | extra | fields


def run(caps: CardinalityCaps, events: list[dict[str, Any]]) -> Any:
    pack = b"\n".join(json.dumps(e).encode() for e in events)
    decoded = decode_batch([Message(0, next(_offsets), None, pack, [("pulse.format", b"ndjson")])], 1 << 20)
    assert all(type(r) is tuple for r in decoded.results), decoded.results[:3]
    return aggregate_decoded(decoded, SeenIds(10**6), Watermarks(3600), NOW.timestamp(), 3600, caps=caps)


def column(result: Any, name: str) -> list[str]:
    return result.raw_rows.arrow_batch().column(name).to_pylist()


def overflowed(kind: str) -> float:
    return CARDINALITY_OVERFLOW.labels(kind)._value.get()


def test_500_versions_in_one_batch_become_50_and_the_overflow_bucket() -> None:
    before = overflowed("version")
    versions = [f"1.0.{i}" for i in range(500)]
    result = run(CardinalityCaps(CAPS), [event(version=v) for v in versions] + [event(product="search", version="9")])
    stored = Counter(column(result, "version"))
    assert len(stored) == 52 and stored[OVERFLOW] == 450 and stored["9"] == 1  # 50 + bucket, the other product's
    assert set(stored) - {OVERFLOW, "9"} == set(versions[:50])  # the first ones seen keep their names
    keys = {(k.product, k.version) for k in result.partial_table.keys}
    assert len({v for p, v in keys if p == "checkout"}) == 51
    assert int(result.partial_table.counters["sessions_started"].sum()) == 501  # totals stay exact
    assert overflowed("version") - before == 450


def test_features_goals_and_operations_are_capped_too() -> None:
    before = {kind: overflowed(kind) for kind in ("feature", "goal", "operation")}
    events = [event("feature_used", feature=f"f{i}") for i in range(8)]
    events += [event("conversion", goal=f"g{i}") for i in range(8)]
    events += [event("request", operation=f"GET /r{i}") for i in range(8)]
    result = run(CardinalityCaps(CAPS), events)
    assert Counter(column(result, "feature"))[OVERFLOW] == 3
    assert Counter(column(result, "goal"))[OVERFLOW] == 5
    assert Counter(column(result, "operation"))[OVERFLOW] == 4
    names = Counter((k.kind, k.name) for k in result.breakdown_table.keys)
    assert ("feature", OVERFLOW) in names and ("goal", OVERFLOW) in names
    assert len({n for kind, n in names if kind == "feature"}) == 6
    assert {kind: overflowed(kind) - before[kind] for kind in before} == {"feature": 3, "goal": 5, "operation": 4}


def test_known_values_keep_their_names_across_batches_and_new_ones_overflow() -> None:
    caps = CardinalityCaps(CAPS)
    run(caps, [event(version=f"2.{i}") for i in range(50)])
    later = run(caps, [event(version="2.7"), event(version="3.0")])
    assert column(later, "version") == ["2.7", OVERFLOW]


def test_a_value_unseen_for_the_window_frees_its_place() -> None:
    caps = CardinalityCaps({"version": 2}, window_days=30)
    caps.apply(run(CardinalityCaps({}), [event(version="a1"), event(version="a2")]).raw_rows.arrow_batch(),
               (NOW - timedelta(days=40)).timestamp())  # fmt: skip
    assert column(run(caps, [event(version="b1")]), "version") == ["b1"]  # a1 and a2 are 40 days old
    assert column(run(caps, [event(version="a1"), event(version="b2")]), "version") == ["a1", OVERFLOW]


def test_no_cap_means_no_cap() -> None:
    result = run(CardinalityCaps({"version": 0}), [event(version=f"v{i}") for i in range(100)])
    assert OVERFLOW not in column(result, "version")


def test_a_restarted_worker_starts_from_what_the_store_holds(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, max_versions_per_product=3)
    with clickhouse.opened(settings) as client:
        schema.migrate(client, settings)
        sink = ClickHouseSink(client, settings.clickhouse_database)
        first = CardinalityCaps.from_settings(settings)
        written = run(first, [event(version=v) for v in ("1", "2", "3", "4")])
        sink.write_raw(written.raw_rows)
        sink.write_partials(written)
        restarted = CardinalityCaps.from_settings(settings)
        assert restarted.seed(client, settings.clickhouse_database, NOW.timestamp()) == 3  # not __overflow__
        after = run(restarted, [event(version="2"), event(version="5")])
        assert column(after, "version") == ["2", OVERFLOW]
        stored = client.query("SELECT DISTINCT version FROM pulse.users_1d ORDER BY version").result_rows
        assert [r[0] for r in stored] == ["1", "2", "3", OVERFLOW]  # the unique-user views stay bounded too


class Receiver:
    """A local HTTP server that records the path and JSON body of every POST."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, Any]] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                bodies.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def notification(i: int) -> Notification:
    return Notification(f"fp{i}", "firing", {"alertname": "Regressed", "version": f"1.{i}"}, {}, NOW, NOW, "http://x")


def test_a_burst_of_501_alerts_goes_out_in_posts_of_at_most_64() -> None:
    assert [len(b) for b in batches(list(range(501)))] == [64] * 7 + [53]
    receiver = Receiver()
    try:
        for notifier in (WebhookNotifier(receiver.url + "/hook"), AlertmanagerNotifier(receiver.url)):
            assert notifier.notify([notification(i) for i in range(501)])
            notifier.close(10.0)
    finally:
        receiver.close()
    webhook = [len(body["alerts"]) for path, body in receiver.bodies if path == "/hook"]
    alertmanager = [len(body) for path, body in receiver.bodies if path == "/api/v2/alerts"]
    for sizes in (webhook, alertmanager):
        assert sum(sizes) == 501 and max(sizes) <= MAX_ALERTS_PER_POST


@pytest.mark.parametrize("size", [1, 64])
def test_batches_keep_every_item_in_order(size: int) -> None:
    items = list(range(130))
    assert [x for b in batches(items, size) for x in b] == items


def test_an_event_that_is_not_stored_takes_no_place_under_a_cap() -> None:
    future = (NOW + timedelta(days=2)).isoformat()  # dead-lettered as future_ts
    result = run(CardinalityCaps({"version": 1}), [event(version="x", ts=future), event(version="y")])
    assert [d.error.reason for d in result.dead] == ["future_ts"]
    assert column(result, "version") == ["y"]
