"""Acceptance: `pulse demo` runs end to end and its printed table is what ClickHouse holds."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import pytest

from pipeline import clickhouse

pytestmark = pytest.mark.integration


def test_demo_prints_what_clickhouse_holds(settings):
    env = {**os.environ, **settings.to_env()}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "demo", "--duration", "30", "--rate", "10000", "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    printed = {row["product"]: row for row in lines if row["table"] == "products"}
    assert set(printed) == {"checkout", "search", "profile", "feed", "billing"}
    sent = int(re.search(r"sent ([\d,]+) events", done.stderr).group(1).replace(",", ""))
    assert 280_000 <= sent <= 300_000  # the default: 30 s at 10,000/s, or all the compressed fortnight holds
    assert sum(r["events"] for r in printed.values()) == sent

    demo = settings.model_copy(update={"data_dir": settings.data_dir / "demo"})
    with clickhouse.opened(demo) as client:
        rows = client.query(
            "SELECT product, count(), countIf(type = 'session_ended'), countIf(status = 'crashed'), "
            "countIf(type = 'request' AND (status_code >= 500 OR error != '')), countIf(type = 'request'), "
            "sumIf(latency_ms, type = 'request') FROM pulse.events FINAL GROUP BY product"
        ).result_rows
    for product, events, sessions, crashed, failed, requests, latency_sum in rows:
        shown = printed[product]
        assert shown["events"] == events
        assert shown["sessions"] == sessions
        assert math.isclose(shown["crash_free_sessions"], 1 - crashed / sessions, rel_tol=1e-9)
        assert math.isclose(shown["error_rate"], failed / requests, rel_tol=1e-9)
        assert math.isclose(shown["latency_mean_ms"], latency_sum / requests, rel_tol=1e-9)

    # The scenario's story is in the summary: search's newest release crashes more and is slower than the one
    # before (latency is the robust signal at demo size: crashes are counted in tens), and profile has fewer
    # sessions in its last week than in its first.
    release = {r["version"]: r for r in lines if r["table"] == "regressing_release"}
    newest, previous = sorted(release, key=lambda v: tuple(map(int, v.split("."))))[-2:][::-1]
    assert release[newest]["crash_rate"] > release[previous]["crash_rate"]
    assert release[newest]["latency_p95_ms"] > 1.5 * release[previous]["latency_p95_ms"]
    decay = {r["period"]: r for r in lines if r["table"] == "decaying_product"}
    assert decay["last week"]["product"] == "profile"
    assert decay["last week"]["sessions"] < decay["first week"]["sessions"]

    # What the rules found, read from the pipeline's own output: the regressing release paged (after its release,
    # never before), no healthy product paged, and the decaying product - only it - is a redesign candidate.
    pages = [r for r in lines if r["table"] == "pages"]
    regression = [p for p in pages if p["alertname"] == "ReleaseRegression"]
    assert [(p["product"], p["version"]) for p in regression] == [("search", newest)]
    assert regression[0]["after_release"].endswith(" h") and float(regression[0]["after_release"][:-2]) > 0
    assert {p["product"] for p in pages} <= {"search", "profile"}, "no page for a healthy product"
    candidates = [r for r in lines if r["table"] == "redesign_candidates"]
    assert [c["product"] for c in candidates] == ["profile"]
    assert "below floor" in candidates[0]["evidence"]
