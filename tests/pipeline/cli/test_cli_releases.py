"""``pulse releases`` on a filled store: each verdict says until when a later look can still change it."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from support.cli import pulse
from support.scenario_store import close_scenario, fixed_end, open_scenario


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, datetime, dict[str, str]]:
    """Ten days of ``regression_and_decay``: its bad release went out halfway, five days before the end."""
    data_dir, end = tmp_path_factory.mktemp("releases-store"), fixed_end()
    sc = open_scenario(data_dir, days=10, users_per_product=60, end=end, seed=3)
    close_scenario(sc)
    return data_dir, end, sc.story


def test_the_bad_releases_verdicts_say_until_when_they_move(store: tuple[Path, datetime, dict[str, str]]) -> None:
    data_dir, end, story = store
    done = pulse(data_dir, "releases", "--at", end.isoformat(), "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = {r["signal"]: r for r in json.loads(done.stdout) if r["version"] == story["regressing_version"]}
    released = datetime.fromisoformat(story["regression_released_at"])
    assert end - released < timedelta(days=7)  # within the lookback: judged, and still moving
    crash, latency = rows["crash_rate"], rows["latency"]
    assert crash["final"] is False and latency["final"] is True, (crash, latency)
    crash_until = datetime.fromisoformat(crash["moves_until"])  # a week after the hour it arrived in traffic
    assert end < crash_until and timedelta(days=6) < crash_until - released <= timedelta(days=7)
    assert datetime.fromisoformat(latency["moves_until"]) < end  # latency before/after: its first day
    assert latency["sentence"].endswith(f"(final since {latency['moves_until'][:16].replace('T', ' ')} UTC)")

    table = pulse(data_dir, "releases", "--at", end.isoformat())
    assert table.returncode == 0, table.stderr
    assert "moves_until" in table.stdout
    cells = {row[5]: row for row in _rows(table.stdout) if row[1] == story["regressing_version"]}
    assert cells["crash_rate"][-1] == crash_until.strftime("%Y-%m-%dT%H:%M:%SZ"), cells
    assert cells["latency"][-1] == "final", cells
    lo, hi = crash["ratio_bounds"]  # about x2.5 to x100 here: read as a range, not x1e+02
    assert re.fullmatch(r"x\d\.?\d? to x(\d\.?\d?|\d+|inf)", cells["crash_rate"][8]), cells["crash_rate"]
    assert float(cells["crash_rate"][8].split()[0][1:]) == pytest.approx(lo, rel=0.05)


def _rows(table: str) -> list[list[str]]:
    """The table's rows as lists of cells (the frame's characters and padding left out)."""
    return [[c.strip() for c in line.strip().strip("│").split("│")] for line in table.splitlines() if "│" in line]
