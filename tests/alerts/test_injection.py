"""Event strings cannot forge log lines or notifications (issue 17, finding 5).

A version holding ``\\n... ERROR forged line``, a NUL or U+202E (RIGHT-TO-LEFT OVERRIDE) reaches
the evaluator through a rule's labels (a store written before identifiers were restricted, or a
signal that reads one). Its log line quotes the value (one line, escapes visible), and every
notification body - Alertmanager's and the webhook's - carries labels and annotations without
control or bidi characters.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alerts.evaluator import Evaluator
from alerts.notify.message import Notification
from alerts.notify.sanitize import clean_annotations, clean_labels, clean_text
from alerts.notify.webhook import webhook_alert
from alerts.rules import load_rules
from alerts.sample import Sample

T0 = datetime(2026, 5, 1, tzinfo=UTC)
FORGED = "1.0\n2026-05-01 00:00:00,000 ERROR pulse forged line"
HOSTILE_VERSIONS = [FORGED, "1.0\x00hidden", "pay\u202elapyap", "1.0\r\x1b[2J\u2028\u2066x\u2069\ufeff\u200b"]
RULES = """
groups:
  - name: fast
    rules:
      - alert: Regressed
        signal: release_regression
        labels: {severity: page}
        annotations: {summary: "{{ product }} {{ version }} regressed"}
"""
BAD = ("\n", "\r", "\x00", "\x1b", "\u202e", "\u2028", "\u2066", "\u2069", "\ufeff", "\u200b")


class Client:
    def insert(self, table: str, rows: list[Any], column_names: list[str]) -> None:
        pass

    def query(self, sql: str, parameters: Any = None) -> Any:
        return type("Result", (), {"result_rows": []})()


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def notify(self, notifications: Any) -> bool:
        self.sent += notifications
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        pass


def evaluate(tmp_path: Path, version: str) -> list[Notification]:
    def signal(client: Any, database: str, now: datetime, *, store: bool = False) -> list[Sample]:
        return [Sample({"product": "checkout", "version": version, "baseline_version": "0.9"}, 1.0)]

    (tmp_path / "r.yaml").write_text(RULES)
    rec = Recorder()
    ev = Evaluator(load_rules([tmp_path / "r.yaml"]), database="pulse", notifiers=[rec],
                   signals={"release_regression": signal})  # fmt: skip
    ev.evaluate(Client(), T0)  # type: ignore[arg-type]
    return rec.sent


@pytest.mark.parametrize("version", HOSTILE_VERSIONS, ids=["newline", "nul", "rlo", "mixed"])
def test_the_transition_log_line_quotes_the_version(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, version: str
) -> None:
    caplog.set_level(logging.INFO, logger="alerts.evaluator")
    evaluate(tmp_path, version)
    (line,) = [r.getMessage() for r in caplog.records if "event=alert_transition" in r.getMessage()]
    assert not any(ch in line for ch in BAD), repr(line)
    assert f"version={version!r}" in line  # quoted: the escapes show what was sent


@pytest.mark.parametrize("version", HOSTILE_VERSIONS, ids=["newline", "nul", "rlo", "mixed"])
def test_notification_bodies_carry_no_control_or_bidi_characters(tmp_path: Path, version: str) -> None:
    (notification,) = evaluate(tmp_path, version)
    for body in (notification.to_alertmanager(), webhook_alert(notification)):  # type: ignore[index]
        text = json.dumps(body, ensure_ascii=False)
        assert not any(ch in text for ch in BAD), text
        labels, annotations = body["labels"], body["annotations"]
        assert labels["version"] == clean_text(version) and labels["product"] == "checkout"
        assert "regressed" in annotations["summary"]


def test_clean_text_keeps_printable_text_and_drops_the_rest() -> None:
    assert clean_text("checkout 1.2.3-rc.1+b5 café 中 😀 <script>") == "checkout 1.2.3-rc.1+b5 café 中 😀 <script>"
    assert clean_text("pay\u202elapyap") == "paylapyap"
    assert clean_text("a\x00b\x07c\x1b[31md\x7f\x85e") == "abc[31mde"
    assert clean_text("a\u00a0b\u2003c") == "a b c"  # other spaces become plain spaces
    assert clean_text("line\nbreak\r\u2028\u2029") == "linebreak"
    assert clean_labels({"ver\u202esion": "1\n2"}) == {"version": "12"}
    assert clean_annotations({"description": "first\nsecond\r\n\u202ethird"}) == {"description": "first\nsecond\nthird"}
