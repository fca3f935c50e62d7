"""Alert state in real chDB: rows round-trip, and a restarted evaluator continues where it was."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from alerts import statestore
from alerts.evaluator import Evaluator
from alerts.notify.message import Notification
from alerts.rules import load_rules
from alerts.sample import Sample
from alerts.statemachine import Alert
from alerts.statestore import status
from pipeline import clickhouse
from pipeline.settings import Settings
from pipeline.usecases import schema

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)

RULES = """
groups:
  - name: releases
    interval: 1m
    rules:
      - alert: Regressed
        signal: release_regression
        for: 2m
        keep_firing_for: 5m
        labels: {severity: page}
        annotations: {summary: "{{ product }} {{ version }} regressed"}
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, str]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("state"))
    client = clickhouse.connect(settings)
    clickhouse.migrate(client, settings.clickhouse_database, migrations=schema.MIGRATIONS)
    yield client, settings.clickhouse_database
    client.close()
    clickhouse.release(settings)


class Recorder:
    """A notifier that keeps what it was given."""

    name = "recorder"

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def notify(self, notifications: Sequence[Notification]) -> bool:
        self.sent += notifications
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        pass


class Signal:
    """A fake release_regression source whose value the test sets."""

    def __init__(self) -> None:
        self.value = 0.0

    def __call__(self, client: Any, database: str, now: datetime, *, store: bool = False) -> list[Sample]:
        return [Sample({"product": "search", "version": "1.10.0", "baseline_version": "1.9.0"}, self.value, 900.0)]


def test_rows_round_trip(store: tuple[Client, str]) -> None:
    client, db = store
    a = Alert(
        alertname="RoundTrip", group="g", fingerprint="f" * 16, labels={"product": "p", "alertname": "RoundTrip"},
        state="firing", active_at=T0, value=0.25, annotations={"summary": "s"}, fired_at=T0 + M,
        last_match_at=T0 + 2 * M, last_sent_at=T0 + M, evidence={"p_value": 0.001, "signals": ["crash_rate"]},
    )  # fmt: skip
    assert statestore.write(client, db, [(a, "firing")], T0 + 2 * M) == 1
    (back, at), *_ = [x for x in statestore.load(client, db) if x[0].alertname == "RoundTrip"]
    assert at == T0 + 2 * M
    for field in ("alertname", "group", "fingerprint", "labels", "state", "active_at", "fired_at", "last_match_at",
                  "last_sent_at", "annotations", "evidence", "value"):  # fmt: skip
        assert getattr(back, field) == getattr(a, field), field
    assert back.resolved_at is None
    # A newer row wins; an inactive newest row means the alert is gone.
    a.state = "inactive"
    statestore.write(client, db, [(a, "dropped")], T0 + 3 * M)
    assert not [x for x in statestore.load(client, db) if x[0].alertname == "RoundTrip"]


def make(tmp_path: Path, signal: Signal, db: str) -> tuple[Evaluator, Recorder]:
    (tmp_path / "rules.yaml").write_text(RULES)
    rec = Recorder()
    ev = Evaluator(
        load_rules([tmp_path / "rules.yaml"]), database=db, resend_delay_s=600, notifiers=[rec],
        signals={"release_regression": signal},
    )  # fmt: skip
    return ev, rec


def test_a_restart_neither_renotifies_nor_forgets_nor_resolves_early(store: tuple[Client, str], tmp_path: Path) -> None:
    client, db = store
    signal = Signal()
    timeline: list[tuple[int, str, int]] = []  # (minute, stored states, notifications) seen across restarts
    notifications: list[Notification] = []
    transitions: list[str] = []  # what the evaluations reported (`pulse alerts run` prints them)

    def step(ev: Evaluator, rec: Recorder, minute: int) -> None:
        before = len(rec.sent)
        report = ev.evaluate(client, T0 + minute * M)
        assert not report.errors, report.errors
        notifications.extend(rec.sent[before:])
        transitions.extend(t.state for t in report.transitions if t.alertname == "Regressed")
        # The states `pulse alerts status` shows: what the store holds, which the next restart continues from.
        stored = sorted(a["state"] for a in status(client, db) if a["alertname"] == "Regressed")
        timeline.append((minute, ",".join(stored), len(rec.sent) - before))

    signal.value = 1.0
    ev, rec = make(tmp_path, signal, db)
    step(ev, rec, 0)  # pending
    ev, rec = make(tmp_path, signal, db)  # restart while pending: active_at survives
    step(ev, rec, 1)
    step(ev, rec, 2)  # firing after for: 2m, notified once
    ev, rec = make(tmp_path, signal, db)  # restart while firing
    step(ev, rec, 3)  # no duplicate notification (resend delay 10m)
    signal.value = 0.0
    step(ev, rec, 4)  # stops matching: keep_firing_for 5m from the last match (3)
    ev, rec = make(tmp_path, signal, db)  # restart inside keep_firing_for
    step(ev, rec, 7)
    step(ev, rec, 8)  # 5m after the last match: still firing
    ev, rec = make(tmp_path, signal, db)
    step(ev, rec, 9)  # resolved now, not earlier, not later: one resolved notification
    ev, rec = make(tmp_path, signal, db)
    step(ev, rec, 10)  # restart after resolution: no second resolved notification
    assert timeline == [
        (0, "pending", 0), (1, "pending", 0), (2, "firing", 1), (3, "firing", 0), (4, "firing", 0),
        (7, "firing", 0), (8, "firing", 0), (9, "", 1), (10, "", 0),
    ]  # fmt: skip
    firing, resolved = notifications
    assert firing.status == "firing" and firing.starts_at == T0 + 2 * M
    assert resolved.status == "resolved" and resolved.ends_at == T0 + 9 * M and resolved.starts_at == T0 + 2 * M
    assert firing.labels == {
        "product": "search", "version": "1.10.0", "baseline_version": "1.9.0", "severity": "page",
        "alertname": "Regressed",
    }  # fmt: skip
    assert firing.annotations == {"summary": "search 1.10.0 regressed"}
    # Every transition happened once, in order, across the restarts: reported once and stored once.
    assert transitions == ["pending", "firing", "resolved"]
    stored = client.query(
        f"SELECT transition FROM {db}.alert_events FINAL WHERE fingerprint = {{fp:String}} AND transition != '' "
        "ORDER BY at",
        parameters={"fp": firing.fingerprint},
    ).result_rows
    assert [t for (t,) in stored] == ["pending", "firing", "resolved"]


def test_status_lists_pending_and_firing_alerts(store: tuple[Client, str], tmp_path: Path) -> None:
    client, db = store
    signal = Signal()
    signal.value = 1.0
    ev, _ = make(tmp_path, signal, db)
    t = T0 + timedelta(days=1)
    ev.evaluate(client, t)
    (st,) = [a for a in status(client, db) if a["alertname"] == "Regressed"]
    assert st["state"] == "pending" and st["since"] == t.isoformat()
    ev.evaluate(client, t + 2 * M)
    (st,) = [a for a in status(client, db) if a["alertname"] == "Regressed"]
    assert st["state"] == "firing" and st["since"] == (t + 2 * M).isoformat() and st["value"] == 1.0
    assert st["labels"]["product"] == "search" and st["labels"]["severity"] == "page"
    assert st["labels"]["version"] == "1.10.0" and st["annotations"] == {"summary": "search 1.10.0 regressed"}
    signal.value = math.nan  # nodata: no match, resolves after keep_firing_for
    ev.evaluate(client, t + 8 * M)
    assert not [a for a in status(client, db) if a["alertname"] == "Regressed"]
