"""A real Prometheus scrapes a running worker: the counters it sees are the events sent, and lag returns to zero."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.net import free_port
from support.truth import emit_all, make_events

pytestmark = pytest.mark.integration


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A Prometheus on loopback whose scrape targets the test writes into ``targets.json``."""
    port = free_port()
    targets = tmp_path / "targets.json"
    targets.write_text("[]")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: pulse-worker\n"
        f"    file_sd_configs: [{{files: ['{targets}'], refresh_interval: 1s}}]\n"
    )
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        yield port, targets
    finally:
        proc.terminate()
        proc.wait(10)


def instant(port: int, expr: str) -> float | None:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    result = json.loads(urllib.request.urlopen(url, timeout=5).read())["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def wait_for(port: int, expr: str, want: float, timeout_s: float = 60) -> float | None:
    deadline = time.monotonic() + timeout_s
    got = None
    while time.monotonic() < deadline:
        got = instant(port, expr)
        if got == want:
            return got
        time.sleep(0.5)
    return got


def test_prometheus_sees_every_stored_event_and_lag_back_to_zero(settings, start_worker, prometheus):
    prom_port, targets = prometheus
    settings = settings.model_copy(update={"metrics_port": free_port()})
    targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{settings.metrics_port}"]}]))
    events = make_events(3_000, ["checkout", "search", "feed"], seed=73)
    worker = start_worker(settings)
    emit_all(settings, events)
    worker.wait_drained(settings.events_topic, timeout_s=120)

    assert wait_for(prom_port, "sum(pulse_events_ingested_total)", 3_000) == 3_000
    assert wait_for(prom_port, "max(pulse_consumer_lag_messages)", 0) == 0
    assert wait_for(prom_port, "sum(pulse_events_consumed_total)", 3_000) == 3_000
    assert instant(prom_port, 'sum(pulse_clickhouse_insert_rows_total{table="events"})') == 3_000
    assert (instant(prom_port, "sum(pulse_freshness_seconds_count)") or 0) > 0

    scrape = urllib.request.urlopen(f"http://127.0.0.1:{settings.metrics_port}/metrics", timeout=5).read()
    worker.stop()
    check = subprocess.run(["promtool", "check", "metrics"], input=scrape, capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
