"""The ``pulse`` command behaves like a Python CLI is expected to: version, exit codes, messages, durations."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

from pipeline.cli.main import main


def test_version_prints_the_package_version_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"pulse {version('productpulse')}"


@pytest.mark.parametrize(("text", "seconds"), [("1h30m", 5400), ("90s", 90), ("7d", 604_800), ("2w", 1_209_600)])
def test_the_command_line_reads_durations_as_the_rule_files_do(text: str, seconds: int) -> None:
    from alerts.durations import parse_duration as rule_duration
    from pipeline.catalog import parse_since

    assert parse_since(text).total_seconds() == rule_duration(text) == seconds


def test_there_is_one_duration_parser() -> None:
    import alerts.durations
    import alerts.rules
    import pipeline.durations

    assert alerts.durations.parse_duration is pipeline.durations.parse_duration
    assert alerts.rules.parse_duration is pipeline.durations.parse_duration


@pytest.mark.parametrize("text", ["0", "7x", "7", "1.5h", "999999999d"])
def test_a_window_that_means_nothing_is_refused_with_the_accepted_forms(text: str) -> None:
    from pipeline.catalog import parse_since

    with pytest.raises(ValueError, match="bad duration"):
        parse_since(text)


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["metrics", "query", "dau", "--since", "7x"], "argument --since: bad duration '7x'"),
        (["metrics", "query", "dau", "--step", "0"], "argument --step: bad duration '0'"),
        (["alerts", "backtest", "--step", "1.5h"], "argument --step: bad duration '1.5h'"),
        (["alerts", "backtest", "--until", "2026-01-01T00:00:00"], "argument --until: '2026-01-01T00:00:00': give"),
        (["scorecard", "--at", "yesterday"], "argument --at: Invalid isoformat string"),
        (["releases", "--at", "2026-01-01T00:00"], "argument --at: '2026-01-01T00:00': give a time with a timezone"),
    ],
)
def test_a_usage_error_exits_2_with_the_argparse_message(
    argv: list[str], complaint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like any argparse CLI: ``usage: ...`` and ``pulse ...: error: ...`` on stderr, exit 2, no exception name."""
    with pytest.raises(SystemExit) as exc:
        main(["--debug", *argv, "--data-dir", str(tmp_path / "store")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"pulse {argv[0]}" in err and f": error: {complaint}" in err, err
    assert "ValueError" not in err and "Traceback" not in err
    assert not (tmp_path / "store").exists()  # refused before anything was opened


def test_an_unknown_metric_gets_a_did_you_mean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["metrics", "query", "dau", "crashfree_sessions", "--data-dir", str(tmp_path / "store")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.splitlines()[-1]
    # the nearest names in the catalog, closest first (difflib), whatever else the catalog holds
    assert err.startswith(
        "pulse metrics query: error: argument names: unknown metric 'crashfree_sessions'; did you mean "
        "'crash_free_sessions', "
    ), err
    assert err.endswith("? (`pulse metrics list` shows them all)"), err
    assert not (tmp_path / "store").exists()


def test_one_near_name_is_suggested_alone() -> None:
    from pipeline.catalog import UnknownMetric, get

    with pytest.raises(UnknownMetric, match=r"^unknown metric 'dua'; did you mean 'dau'\? \("):
        get("dua")


def test_a_name_like_no_metric_lists_the_catalog() -> None:
    from pipeline.catalog import CATALOG, UnknownMetric, get

    with pytest.raises(UnknownMetric) as exc:
        get("zzzz")
    assert str(exc.value) == f"unknown metric 'zzzz'; known: {', '.join(sorted(CATALOG))}"


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["dau", "--by", "feature"], "metric 'dau' cannot be grouped by 'feature'"),
        (["feature_adoption", "--by", "feature", "--step", "1h"], "metric 'feature_adoption' has no time series"),
    ],
)
def test_a_query_the_catalog_cannot_answer_is_a_usage_error(empty_store: Path, argv: list[str], complaint: str) -> None:
    """Found once the query is built (in the store's process), and still argparse's form and exit 2."""
    from support.cli import pulse

    done = pulse(empty_store, "metrics", "query", *argv)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"pulse: error: {complaint}"), done.stderr
    assert "ValueError" not in done.stderr
