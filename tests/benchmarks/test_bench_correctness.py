"""`pulse bench` compares contenders that stored the right answer: a small run checks correctness, not speed.

Speeds are reported by `pulse bench` itself, never asserted here (the machine is shared and noisy).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_small_bench_stores_every_event_in_every_contender(settings):
    env = {**os.environ, **settings.to_env()}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "bench", "--events", "20000", "--json"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("pulse", "naive"):
        assert result[name]["events"] == 20_000
        assert result[name]["rows_stored"] == 20_000
        assert result[name]["events_per_s"] > 0
    assert result["ratio"] > 0
