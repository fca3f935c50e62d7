"""A read command against a store that does not exist, or holds nothing: a plain sentence, no folder created."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli.main import main

READS = [
    ["metrics", "query", "dau"],
    ["alerts", "status"],
    ["alerts", "backtest", "--since", "1d"],
    ["scorecard"],
    ["releases"],
]


@pytest.mark.parametrize("argv", READS, ids=lambda a: " ".join(a[:2]))
def test_a_missing_store_says_there_is_no_data_and_creates_nothing(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "typo"
    assert main([*argv, "--data-dir", str(store)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"pulse: no data yet: there is no store at {store.resolve() / 'clickhouse'}; run `pulse worker`"
    )
    assert f"`pulse demo --data-dir {store}` and read its store with --data-dir {store / 'demo'}" in err
    assert "Error" not in err
    assert not store.exists() and list(tmp_path.iterdir()) == []


def test_a_store_never_written_to_says_so_too(tmp_path: Path) -> None:
    """An existing but empty folder (or a server without the database): the engine's Code 81, in our words."""
    (tmp_path / "clickhouse").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "scorecard", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("pulse: no data yet: database 'pulse' in "), done.stderr
    assert "holds no ProductPulse tables; run `pulse worker`" in done.stderr
    assert "DatabaseError" not in done.stderr and "Code: 81" not in done.stderr
