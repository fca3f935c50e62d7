"""Hostile event strings through the CLI's table and CSV output: shown as text, never obeyed."""

from __future__ import annotations

import csv
import io

import pytest

from pipeline.cli.escape import csv_cell, visible
from pipeline.cli.table import render

HOSTILE = ["[/x]", "[link=https://e.vil]x", "\x1b[2J", '=HYPERLINK("x")', "pay\u202elapyap", ":fire:"]
SHOWN = ["[/x]", "[link=https://e.vil]x", "\\x1b[2J", '=HYPERLINK("x")', "pay\\u202elapyap", ":fire:"]


def test_a_table_shows_hostile_features_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    render(["feature", "feature_uses"], [(name, 3.0) for name in HOSTILE])
    out = capsys.readouterr().out
    cells = [line.split("│")[1].strip() for line in out.splitlines() if line.count("│") == 3]
    assert cells == SHOWN
    assert "\x1b" not in out and "\u202e" not in out and "🔥" not in out


@pytest.mark.parametrize(
    ("char", "shown"),
    [("\x00", "\\x00"), ("\t", "\\x09"), ("\n", "\\x0a"), ("\x7f", "\\x7f"), ("\x9b", "\\x9b"),
     ("\u202a", "\\u202a"), ("\u202e", "\\u202e"), ("\u2066", "\\u2066"), ("\u2069", "\\u2069")],
)  # fmt: skip
def test_control_and_bidi_characters_are_shown_as_escapes(char: str, shown: str) -> None:
    assert visible(f"a{char}b") == f"a{shown}b"


def test_csv_neutralises_formulas_and_keeps_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [(name, 1.0) for name in HOSTILE]
    rows += [("-5", -5.0), ("+1.5e3", 0.0), ("-", 0.0), ("@SUM(A1)", 0.0), ("-2+3", 0.0), ("\t=1", 0.0)]
    render(["feature", "feature_uses"], rows, "csv")
    read = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert read[0] == ["feature", "feature_uses"]
    assert [r[0] for r in read[1:]] == [
        "[/x]", "[link=https://e.vil]x", "\\x1b[2J", "'=HYPERLINK(\"x\")", "pay\\u202elapyap", ":fire:",
        "-5", "+1.5e3", "'-", "'@SUM(A1)", "'-2+3", "\\x09=1",
    ]  # fmt: skip
    assert [r[1] for r in read[1:7]] == ["1.0"] * 6 and read[7][1] == "-5.0"


def test_csv_cells_that_are_numbers_stay_numbers() -> None:
    assert csv_cell(-3.5) == -3.5 and csv_cell(-7) == -7 and csv_cell("-3.5") == "-3.5"
