"""A read command with nothing to show says so in one line on stderr, instead of printing an empty table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli.table import render

ROOT = Path(__file__).resolve().parents[3]


def pulse(data_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *argv, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated store that holds no events."""
    data_dir = tmp_path_factory.mktemp("empty-store")
    done = pulse(data_dir, "db", "migrate")
    assert done.returncode == 0, done.stderr
    return data_dir


@pytest.mark.parametrize(
    ("argv", "sentence"),
    [
        (["alerts", "status"], "no alerts pending or firing"),
        (["scorecard"], "no products to score: no product has traffic in the scoring window"),
        (["releases"], "no releases to judge: no version started serving in the judged window"),
        (
            ["metrics", "query", "dau", "--product", "search", "--since", "1h30m"],
            "no data for dau of product search in the last 1h30m",
        ),
    ],  # fmt: skip
    ids=["alerts status", "scorecard", "releases", "metrics query"],
)
def test_an_empty_answer_is_one_sentence_on_stderr(empty_store: Path, argv: list[str], sentence: str) -> None:
    done = pulse(empty_store, *argv)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == sentence + "\n"


def test_the_sentence_leaves_json_and_csv_on_stdout_intact(capsys: pytest.CaptureFixture[str]) -> None:
    render(["product", "dau"], [], "csv", empty="no data for dau")
    out, err = capsys.readouterr()
    assert out.splitlines() == ["product,dau"] and err == "no data for dau\n"
    render(["product", "dau"], [], "table", empty="no data for dau")
    out, err = capsys.readouterr()
    assert out == "" and err == "no data for dau\n"
    render(["product", "dau"], [], "json", empty="no data for dau")
    out, err = capsys.readouterr()
    assert err == "no data for dau\n" and (json.loads(out) if out else []) == []
