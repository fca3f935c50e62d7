"""``pulse eval`` as a user runs it: the release judge's figures and the redesign flag's, as a table and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alerts.harness import redesign
from pipeline.cli.main import main

ONE_PRODUCT = """\
name: tiny
description: one product, one severe release
days: 20
products:
  - name: tiny
    users_per_day: 1000
    sessions_per_user: 1.0
    crash_rate: 0.01
    releases:
      - {version: "1.0.0", day: 0}
      - {version: "1.1.0", day: 14.6, crash: 20}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenarios")
    (path / "tiny.yaml").write_text(ONE_PRODUCT)
    return path


def test_eval_prints_the_redesign_flags_figures(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--seeds", "1", "--scenarios", str(folder)]) == 0
    out = capsys.readouterr().out
    for span in redesign.SPANS:
        line = next(t for t in out.splitlines() if t.startswith("redesign flag on ") and f" {span} days " in t)
        assert "precision" in line and "recall" in line and "flag flips per product-month" in line
        assert "on its typical draw (every count at its mean): flagged" in line


def test_eval_json_has_precision_recall_and_flips_per_span_and_seed(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "--seeds", "1", "--seed", "3", "--scenarios", str(folder), "--format", "json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["summary"]["severe"] == 1
    flags = result["redesign"]
    assert set(flags) == {str(s) for s in redesign.SPANS}
    old = flags["75"]
    # With 75 days of data: the strong decay on each of its 14 evaluations and the slow decay at the end.
    assert old["summary"]["candidates"] == 1 + redesign.EVALUATIONS and old["summary"]["products"] == len(
        redesign.CASES
    )
    assert old["summary"]["precision"] == 1.0 and old["summary"]["flips_per_product_month"] == 0
    assert set(old["per_seed"]) == {"3"} and old["per_seed"]["3"]["recall"] == old["summary"]["recall"]
    # Next to the seeds, the slow decay's typical draw: flagged with 75 days, its upper ends under both floors.
    assert old["typical"]["flagged"] and len(old["typical"]["margins"]) == 2 and min(old["typical"]["margins"]) > 0
    # With 28 days the strong decay's story does not fit: it is left out, not judged on missing days.
    assert flags["28"]["summary"]["products"] == len(redesign.CASES) - 1
