"""A list of Alertmanagers (``PULSE_ALERTMANAGER_URL=url1,url2``): every alert reaches every Alertmanager, as
Prometheus sends; one that is down does not block or delay the others; deliveries are counted per URL.

Two real ``prometheus-alertmanager`` processes and a dead port, driven by the notifiers the settings build.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from support.alertmanager import Alertmanager, Hooks, config_for_tests, running_alertmanager, wait_for
from support.net import free_port

from alerts.evaluator import build_notifiers
from alerts.notify.alertmanager import AlertmanagerNotifier
from alerts.notify.message import Notification
from pipeline.settings import Settings, describe_invalid
from pipeline.telemetry import NOTIFICATIONS


def count(target: str, result: str) -> float:
    value = NOTIFICATIONS.labels("alertmanager", target, result)._value.get()
    return float(value)


def test_one_url_still_works_and_a_list_is_split(tmp_path: Path) -> None:
    one = Settings(data_dir=tmp_path, alertmanager_url="http://127.0.0.1:9093")
    assert one.alertmanager_urls == ("http://127.0.0.1:9093",)
    two = Settings(data_dir=tmp_path, alertmanager_url=" http://am-a:9093 , https://am-b:9093/ ")
    assert two.alertmanager_urls == ("http://am-a:9093", "https://am-b:9093/")
    assert Settings(data_dir=tmp_path).alertmanager_urls == ()
    notifiers = build_notifiers(two)
    try:
        assert [type(n) for n in notifiers] == [AlertmanagerNotifier, AlertmanagerNotifier]
        assert [n.endpoint for n in notifiers] == ["http://am-a:9093/api/v2/alerts", "https://am-b:9093/api/v2/alerts"]  # type: ignore[attr-defined]
    finally:
        for n in notifiers:
            n.close(1)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("http://a:9093,am-b:9093", "each entry must be an http(s) URL"),
        ("http://a:9093,", "each entry must be an http(s) URL"),
        ("http://a:9093,http://a:9093/", "listed twice"),
    ],
)
def test_a_bad_list_fails_with_one_clear_line(tmp_path: Path, value: str, says: str) -> None:
    with pytest.raises(ValidationError) as err:
        Settings(data_dir=tmp_path, alertmanager_url=value)
    (line,) = describe_invalid(err.value)
    assert line.startswith("PULSE_ALERTMANAGER_URL: ") and says in line, line


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Alertmanager, Alertmanager]]:
    hooks = Hooks()
    try:
        with (
            running_alertmanager(tmp_path / "a", config_for_tests(hooks.url)) as a,
            running_alertmanager(tmp_path / "b", config_for_tests(hooks.url)) as b,
        ):
            yield a, b
    finally:
        hooks.close()


def page(product: str) -> Notification:
    now = datetime.now(UTC)
    labels = {"alertname": "ErrorRateSpike", "product": product, "severity": "page"}
    return Notification(
        fingerprint=product, status="firing", labels=labels, annotations={"summary": f"{product} fails"},
        starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(minutes=10), generator_url="http://x/",
    )  # fmt: skip


@pytest.mark.integration
def test_every_alertmanager_gets_every_alert_and_a_dead_one_blocks_nobody(
    tmp_path: Path, pair: tuple[Alertmanager, Alertmanager]
) -> None:
    a, b = pair
    dead = f"http://127.0.0.1:{free_port()}"
    settings = Settings(data_dir=tmp_path / "d", alertmanager_url=f"{a.url},{dead},{b.url}")
    notifiers = build_notifiers(settings)
    assert len(notifiers) == 3
    before = {(u, r): count(u, r) for u in (a.url, b.url, dead) for r in ("sent", "failed")}
    started = time.monotonic()
    try:
        for n in notifiers:
            assert n.notify([page("search"), page("checkout")])
        assert time.monotonic() - started < 0.5  # queued, never waited on
        for am in (a, b):
            wait_for(f"both alerts at {am.url}", lambda am=am: len(am.alerts(alertname="ErrorRateSpike")) == 2)
        # The live pair has them while the dead one is still being retried (4 attempts, backoff 0.5s+1s+2s).
        assert time.monotonic() - started < 3.0
    finally:
        for n in notifiers:
            n.close(10)
    for am in (a, b):
        assert {x["labels"]["product"] for x in am.alerts(alertname="ErrorRateSpike")} == {"search", "checkout"}
        assert (
            count(am.url, "sent") == before[(am.url, "sent")] + 1
            and count(am.url, "failed") == before[(am.url, "failed")]
        )
    assert count(dead, "failed") == before[(dead, "failed")] + 1 and count(dead, "sent") == before[(dead, "sent")]
