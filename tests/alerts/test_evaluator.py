"""The evaluator's orchestration (alerts/evaluator.py) with fake sources and a fake store client.

The state store itself is tested on real chDB in test_state.py; here: group
intervals, one insert per evaluation, failing rules and notifiers, settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from alerts.evaluator import Evaluator, build_evaluator
from alerts.notify.alertmanager import AlertmanagerNotifier
from alerts.notify.message import Notification
from alerts.notify.webhook import WebhookNotifier
from alerts.rules import load_rules
from alerts.sample import Sample
from pipeline.settings import Settings
from pipeline.telemetry import ALERT_EVALUATION_FAILURES, ALERT_EVALUATIONS, ALERTS_ACTIVE

T0 = datetime(2026, 5, 1, tzinfo=UTC)
M = timedelta(minutes=1)

RULES = """
groups:
  - name: fast
    rules:
      - alert: Regressed
        signal: release_regression
        labels: {severity: page}
  - name: slow
    interval: 5m
    rules:
      - alert: Redesign
        signal: redesign_candidate
        labels: {severity: ticket, audience: pm}
"""


class FakeClient:
    """Records inserts; every query answers no rows (no stored state)."""

    def __init__(self, fail_inserts: bool = False) -> None:
        self.inserts: list[tuple[str, int]] = []
        self.fail_inserts = fail_inserts

    def insert(self, table: str, rows: list[Any], column_names: list[str]) -> None:
        if self.fail_inserts:
            raise ConnectionError("store down")
        self.inserts.append((table, len(rows)))

    def query(self, sql: str, parameters: Any = None) -> Any:
        class Result:
            result_rows: list[Any] = []

        return Result()


class Recorder:
    name = "recorder"

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[Notification] = []
        self.fail = fail

    def notify(self, notifications: Sequence[Notification]) -> bool:
        if self.fail:
            raise RuntimeError("notifier bug")
        self.sent += notifications
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        pass


def flagged(product: str) -> Any:
    def source(client: Any, database: str, now: datetime, *, store: bool = False) -> list[Sample]:
        assert store is True  # the live evaluator lets signal sources persist their results
        return [Sample({"product": product, "version": "2", "baseline_version": "1"}, 1.0)]

    return source


def broken(client: Any, database: str, now: datetime, *, store: bool = False) -> list[Sample]:
    raise TimeoutError("scorecard query timed out")


def evaluator(tmp_path: Path, notifiers: list[Any], signals: dict[str, Any]) -> Evaluator:
    (tmp_path / "r.yaml").write_text(RULES)
    return Evaluator(load_rules([tmp_path / "r.yaml"]), database="pulse", notifiers=notifiers, signals=signals)


def test_groups_run_when_due_and_each_evaluation_is_one_insert(tmp_path: Path) -> None:
    rec = Recorder()
    ev = evaluator(tmp_path, [rec], {"release_regression": flagged("a"), "redesign_candidate": flagged("b")})
    client = FakeClient()
    runs = ALERT_EVALUATIONS.labels("slow")._value.get()
    assert ev.evaluate(client, T0).groups == ["fast", "slow"]  # type: ignore[arg-type]
    assert ev.evaluate(client, T0 + M).groups == ["fast"]  # type: ignore[arg-type]
    assert ev.evaluate(client, T0 + 5 * M).groups == ["fast", "slow"]  # type: ignore[arg-type]
    assert ALERT_EVALUATIONS.labels("slow")._value.get() == runs + 2
    assert client.inserts == [("pulse.alert_events", 2), ("pulse.alert_events", 1), ("pulse.alert_events", 2)]
    # Both fire at T0; the fast group re-sends every evaluation (resend delay 60s); the slow one only when it runs.
    assert [n.labels["alertname"] for n in rec.sent] == ["Regressed", "Redesign", "Regressed", "Regressed", "Redesign"]
    assert ALERTS_ACTIVE.labels("Regressed", "firing")._value.get() == 1


def test_a_failing_rule_or_notifier_or_store_never_stops_the_rest(tmp_path: Path) -> None:
    good = Recorder()
    ev = evaluator(
        tmp_path, [Recorder(fail=True), good], {"release_regression": flagged("a"), "redesign_candidate": broken}
    )
    failures = ALERT_EVALUATION_FAILURES.labels("slow")._value.get()
    report = ev.evaluate(FakeClient(fail_inserts=True), T0)  # type: ignore[arg-type]
    assert [t.alertname for t in report.transitions] == ["Regressed"]
    assert len(report.errors) == 2
    assert "rule 'Redesign': TimeoutError: scorecard query timed out" in report.errors[0]
    assert "persisting alert state: ConnectionError" in report.errors[1]
    assert ALERT_EVALUATION_FAILURES.labels("slow")._value.get() == failures + 1
    assert len(good.sent) == 1 and good.sent[0].labels["alertname"] == "Regressed"
    assert report.to_json()["transitions"][0]["state"] == "firing"


def test_firing_notifications_end_four_resend_delays_after_the_wall_clock(tmp_path: Path) -> None:
    rec = Recorder()
    wall = datetime(2026, 11, 1, tzinfo=UTC)
    (tmp_path / "r.yaml").write_text(RULES)
    ev = Evaluator(
        load_rules([tmp_path / "r.yaml"]), database="pulse", notifiers=[rec], resend_delay_s=120, interval_s=60,
        signals={"release_regression": flagged("a"), "redesign_candidate": flagged("b")}, clock=lambda: wall,
        dashboard_url="http://dash:1",
    )  # fmt: skip
    ev.evaluate(FakeClient(), T0)  # type: ignore[arg-type]
    page = next(n for n in rec.sent if n.labels["alertname"] == "Regressed")
    ticket = next(n for n in rec.sent if n.labels["alertname"] == "Redesign")
    assert page.starts_at == T0 and page.ends_at == wall + timedelta(minutes=8)  # 4 x max(60s, 120s)
    assert ticket.ends_at == wall + timedelta(minutes=20)  # 4 x max(5m group interval, 120s)
    assert page.generator_url == "http://dash:1/products/a?version=2"


def test_build_evaluator_from_settings(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(RULES)
    s = Settings(
        data_dir=tmp_path / "d", alert_rules_dir=tmp_path, alertmanager_url="http://127.0.0.1:1",
        alert_webhook_url=SecretStr("http://127.0.0.1:2/x"), alert_resend_delay_s=30, alert_eval_interval_s=15,
    )  # fmt: skip
    ev = build_evaluator(s)
    try:
        assert [type(n) for n in ev.notifiers] == [AlertmanagerNotifier, WebhookNotifier]
        assert ev.resend_delay_s == 30 and ev.interval_s == 15 and ev.database == s.clickhouse_database
        assert [r.name for r in ev.rules.rules] == ["Regressed", "Redesign"]
    finally:
        ev.close(1)
    shipped = build_evaluator(Settings(data_dir=tmp_path / "d", web_port=7123))
    assert shipped.notifiers == [] and "ReleaseRegression" in shipped.alerts
    assert shipped.dashboard_url == "http://127.0.0.1:7123"  # links follow the web port unless a URL is given


def test_bad_rules_dir_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(RULES.replace("release_regression", "release_regresion"))
    from alerts.errors import RuleFileError

    with pytest.raises(RuleFileError, match="field 'signal'"):
        build_evaluator(Settings(data_dir=tmp_path / "d", alert_rules_dir=tmp_path))
