"""The CLI's read commands work while a worker holds the embedded store: they ask its read-only API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from support.net import free_port
from support.truth import emit_all, ground_truth, make_events

pytestmark = pytest.mark.integration


def test_metrics_query_while_the_worker_runs_on_the_embedded_store(settings, start_worker):
    settings = settings.model_copy(update={"web_port": free_port()})
    events = make_events(2_000, ["checkout", "search"], seed=71)
    worker = start_worker(settings)
    emit_all(settings, events)
    worker.wait_drained(settings.events_topic, timeout_s=120)

    env = {**os.environ, **settings.to_env()}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "metrics", "query", "events", "requests", "--since", "1d",
         "--format", "json"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = {row["product"]: row for row in json.loads(done.stdout)}
    truth = ground_truth(events)
    assert {p: (r["events"], r["requests"]) for p, r in shown.items()} == {
        p: (t["events"], t["requests"]) for p, t in truth.items()
    }

    # A bad request is a 400 with the reason, and the worker goes on.
    url = f"http://127.0.0.1:{settings.web_port}/api/metrics/query?names=no_such_metric"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=10)
    assert info.value.code == 400 and "no_such_metric" in info.value.read().decode()
    assert worker.alive()
    worker.stop()
