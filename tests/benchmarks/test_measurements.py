"""The capacity measurements run and measure what they say: small runs, checked for correctness, never for speed.

``workers_scaling.py`` (throughput of 1, 2, 3 workers on one ClickHouse server)
must store exact totals with every worker count, and ``store_size.py`` (bytes
per event with the real schema) must account for every event and every table.
The numbers themselves go to the README; the machine is shared and noisy, so no
test asserts them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def _run(script: str, *args: str, env: dict[str, str], timeout_s: float) -> dict:
    env = {**env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    done = subprocess.run(
        [sys.executable, str(HERE / script), *args, "--json"], env=env, capture_output=True, text=True,
        timeout=timeout_s,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(300)
def test_workers_scaling_stores_exact_totals_with_each_worker_count(settings):
    doc = _run(
        "workers_scaling.py", "--events", "6000", "--workers", "1,2", env={**os.environ, **settings.to_env()},
        timeout_s=290,
    )  # fmt: skip
    assert doc["correct"] is True
    assert [r["workers"] for r in doc["results"]] == [1, 2]
    for r in doc["results"]:
        assert r["status"] == "ok" and r["events"] == 6000
        assert r["events_per_s"] > 0 and r["server_cpu_s_per_million"] >= 0


@pytest.mark.timeout(180)
def test_store_size_accounts_for_every_event_and_table():
    doc = _run("store_size.py", "--events", "5000", "--days", "1", env=dict(os.environ), timeout_s=170)
    tables = doc["tables"]
    assert doc["events"] > 4000  # a day of synthetic traffic holds about 5,000 events
    assert tables["events"]["rows"] == doc["events"]
    assert {"product_metrics_1m", "breakdown_metrics_1m", "users_1d"} <= set(tables)
    assert doc["raw_bytes_on_disk_per_event"] > 0 and doc["aggregates_bytes_on_disk_per_event"] > 0
