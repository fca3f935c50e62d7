"""What the read commands print: one JSON array per command, and a quiet exit when the reader goes away."""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from support.cli import ROOT, pulse

from pipeline.cli.table import render

CET = timezone(timedelta(hours=1))
READS = [
    ["metrics", "query", "dau", "requests"],
    ["alerts", "status"],
    ["alerts", "backtest", "--since", "2h"],
    ["scorecard"],
    ["releases"],
]


def test_json_rows_are_one_array_and_nan_is_null(capsys: pytest.CaptureFixture[str]) -> None:
    t = datetime(2026, 3, 1, 12, tzinfo=UTC)
    render(["product", "t", "dau", "nps"], [("search", t, 120.0, math.nan), ("pay", t, 3.0, 41.0)], "json")
    assert json.loads(capsys.readouterr().out) == [
        {"product": "search", "t": "2026-03-01T12:00:00Z", "dau": 120.0, "nps": None},
        {"product": "pay", "t": "2026-03-01T12:00:00Z", "dau": 3.0, "nps": 41.0},
    ]


@pytest.mark.parametrize(
    "when",
    [datetime(2026, 3, 1, 12, tzinfo=UTC), datetime(2026, 3, 1, 12), datetime(2026, 3, 1, 13, tzinfo=CET)],
    ids=["utc", "naive (the store's UTC)", "another zone"],
)
@pytest.mark.parametrize("fmt_name", ["table", "csv", "json"])
def test_times_print_in_iso_8601_with_their_zone(
    when: datetime, fmt_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    render(["t", "product"], [(when, "search")], fmt_name)
    assert "2026-03-01T12:00:00Z" in capsys.readouterr().out


def test_a_time_that_came_back_from_the_worker_as_text_prints_with_its_zone(capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import _cell

    render(["at", "product"], [(_cell("2026-03-01 12:00:00"), "a"), (_cell("2026-03-01T12:00:00+00:00"), "b")])
    assert capsys.readouterr().out.count("2026-03-01T12:00:00Z") == 2


@pytest.mark.parametrize("argv", READS, ids=lambda a: " ".join(a[:2]))
def test_every_read_command_prints_a_json_array(empty_store: Path, argv: list[str]) -> None:
    done = pulse(empty_store, *argv, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_a_reader_that_went_away_ends_the_command_quietly(empty_store: Path) -> None:
    """``pulse scorecard --format json`` into a pipe nobody reads: exit 141 (SIGPIPE's), no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as stdout:
        done = pulse(empty_store, "scorecard", "--format", "json", stdout=stdout)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr and "Exception" not in done.stderr


@pytest.mark.parametrize("lines", [1, 0])
def test_piping_into_head_ends_without_broken_pipe_error(lines: int) -> None:
    """``| head -1`` usually leaves before the last write; ``| head -0`` always leaves before the first."""
    from pipeline.catalog import CATALOG

    command = shlex.join([sys.executable, "-m", "pipeline.cli", "metrics", "list"])
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {command} | head -n {lines}"], capture_output=True,
                          text=True, timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode in (0, 141), done.stderr
    assert done.stderr == ""
    assert done.stdout.split()[:1] == [next(iter(CATALOG))][:lines]
