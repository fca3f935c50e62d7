"""A read command with nothing to show says so in one line on stderr, instead of printing an empty table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import pulse

from pipeline.cli.table import render


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
